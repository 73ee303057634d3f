//! sealbox_cli: the library behind the `sealbox` command.
//!
//! Seals Kubernetes Secrets into Bitnami-compatible SealedSecrets offline from the controller's
//! certificate (`seal`, `seal --raw`, `merge`, `set`; `unset` removes a key), checks sealed
//! files (`verify`) and, for recovery, unseals them with backed-up private keys or the
//! encrypted backup itself (`unseal`). The binary only parses flags,
//! sets up logging and calls [`run`]; everything else is here, testable with in-memory
//! readers and writers.
//!
//! With a cluster (kubeconfig or in-cluster), it fetches the certificate (`cert fetch`, `seal`
//! without `--cert`), asks the controller through the API server's service proxy (`verify
//! --online`, `reencrypt`), and manages the key Secrets (`keys list|rotate|backup|restore|
//! prune`). Over a repository it guards against plaintext Secrets (`check`) and re-seals files
//! to the newest key (`reencrypt`), following `.sealbox.yaml` rules.
//!
//! Crypto comes from `sealbox-crypto`, the resource types from `sealbox-crds`; the cluster is
//! reached with `kube`. Only commands that talk to a cluster start a (single-threaded) Tokio
//! runtime, inside [`cluster::block_on`]; offline commands stay synchronous. Plaintext and
//! private keys live in `Zeroizing` buffers and never reach an error message or a log line.
//!
//! Invoked as `kubeseal` (a symlink or a copy) or as `sealbox kubeseal`, the binary takes
//! kubeseal's command line instead ([`kubeseal`]), with kubeseal's exit codes (1 for every
//! failure, 2 for bad flags).
//!
//! Exit codes: 0 success; 1 the input was read but does not check out (`verify` found
//! problems, `unseal` could not decrypt a value, `check` found a plaintext Secret or a broken
//! file, `reencrypt` could not re-seal a file, `keys prune` refused); 2 usage, input,
//! certificate, key, cluster or I/O error.

pub mod backup;
pub mod bounded;
pub mod cert;
pub mod cert_choice;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod document;
pub mod error;
pub mod inspect;
pub mod key_store;
pub mod key_usage;
pub mod keyring;
pub mod kube_overrides;
pub mod kubeconfig;
pub mod kubeseal;
pub mod origin;
pub mod output;
pub mod recipients;
pub mod redact;
pub mod sealed;
pub mod sealed_file;
pub mod sealing;
pub mod secret;
pub mod secret_size;
pub mod walk;

use std::io::{Read, Write};

pub use cert::CertSource;
pub use cli::{Cli, Command};
pub use error::{EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, Error, Result};

/// How a command that did not fail ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// All good.
    Success,
    /// The command ran to the end and found problems (`verify`).
    ProblemsFound,
}

impl Outcome {
    /// The process exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Success => EXIT_OK,
            Outcome::ProblemsFound => EXIT_PROBLEMS,
        }
    }
}

/// Runs one command with the given standard streams.
pub fn run(cli: &Cli, stdin: impl Read, stdout: impl Write, stderr: impl Write) -> Result<Outcome> {
    match &cli.command {
        Command::Seal(args) => commands::seal::run(args, stdin, stdout, stderr),
        Command::Merge(args) => commands::merge::run(args, stdin, stderr),
        Command::Set(args) => commands::set::run(args, stdin, stderr),
        Command::Unset(args) => commands::unset::run(args, stderr),
        Command::Unseal(args) => commands::unseal::run(args, stdin, stdout, stderr),
        Command::Verify(args) => return commands::verify::run(args, stdin, stderr),
        Command::Cert(command) => commands::cert::run(command, stdout, stderr),
        Command::Keys(command) => return commands::keys::run(command, stdout, stderr),
        Command::Check(args) => return commands::check::run(args, stdout, stderr),
        Command::Reencrypt(args) => return commands::reencrypt::run(args, stdout, stderr),
        Command::Completions(args) => commands::completions::run(args, stdout),
        Command::Kubeseal(args) => kubeseal::run(args, stdin, stdout, stderr),
    }
    .map(|()| Outcome::Success)
}
