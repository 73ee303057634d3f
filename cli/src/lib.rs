//! sealbox_cli: the library behind the `sealbox` command.
//!
//! Seals Kubernetes Secrets into Bitnami-compatible SealedSecrets offline from the controller's
//! certificate (`seal`, `seal --raw`, `merge`), checks sealed files (`verify`) and, for
//! recovery, unseals them with backed-up private keys (`unseal`). The binary only parses flags,
//! sets up logging and calls [`run`]; everything else is here, testable with in-memory
//! readers and writers.
//!
//! Crypto comes from `sealbox-crypto`, the resource types from `sealbox-crds`. This crate must
//! not talk to a cluster yet: no kube client, no async runtime. Plaintext lives in `Zeroizing`
//! buffers and never reaches an error message or a log line.
//!
//! Exit codes: 0 success; 1 the input was read but does not check out (`verify` found
//! problems, `unseal` could not decrypt a value); 2 usage, input, certificate, key or I/O error.

pub mod cert;
pub mod cli;
pub mod commands;
pub mod document;
pub mod error;
pub mod kubeconfig;
pub mod output;
pub mod sealed;
pub mod secret;

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
        Command::Unseal(args) => commands::unseal::run(args, stdin, stdout, stderr),
        Command::Verify(args) => return commands::verify::run(args, stdin, stderr),
        Command::Completions(args) => commands::completions::run(args, stdout),
    }
    .map(|()| Outcome::Success)
}
