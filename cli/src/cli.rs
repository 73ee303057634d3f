//! Command-line flags, as clap derive types. Doc comments are the help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sealbox_crypto::Scope;

use crate::cert::CertSource;
use crate::output::Format;

/// Printed at the end of `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  the input was read but does not check out: `verify` found problems, `unseal` could not
     decrypt a value
  2  usage, input, certificate, key or I/O error (nothing was written)

Environment:
  SEALBOX_CERT        default for --cert
  SEALBOX_LOG         log filter for diagnostics on stderr (e.g. debug), default warn
  KUBECONFIG          kubeconfig files for the default namespace, as kubectl reads them";

/// Seal Kubernetes Secrets into SealedSecrets that are safe to commit to Git.
///
/// Compatible with Bitnami Sealed Secrets: files sealed here are unsealed by either controller,
/// and kubeseal's files work here. Everything in this version runs offline from a certificate.
#[derive(Debug, Parser)]
#[command(name = "sealbox", version, propagate_version = true, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// Format of log lines on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = LogFormat::Text,
        env = "SEALBOX_LOG_FORMAT"
    )]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Whether the command will read its input from stdin (no `-f FILE`, or `-f -`).
    pub fn reads_stdin(&self) -> bool {
        let from_stdin = |file: &Option<PathBuf>| {
            file.as_deref()
                .is_none_or(|f| f == std::path::Path::new("-"))
        };
        match &self.command {
            Command::Seal(args) if args.raw => from_stdin(&args.from_file),
            Command::Seal(args) => from_stdin(&args.input.file),
            Command::Merge(args) => from_stdin(&args.input.file),
            Command::Unseal(args) => from_stdin(&args.input.file),
            Command::Verify(args) => from_stdin(&args.input.file),
            Command::Completions(_) => false,
        }
    }
}

/// Format of log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Seal Secrets (YAML or JSON, one or more documents) into SealedSecrets.
    ///
    /// Each Secret document becomes one SealedSecret. Values from `data` (base64) and
    /// `stringData` (plain text, wins on conflicts) are sealed with the certificate's key, bound
    /// to the scope: strict binds namespace and name, namespace-wide the namespace, cluster-wide
    /// nothing. Server-set metadata and kubectl's last-applied-configuration annotation (a
    /// plaintext copy) are dropped; labels, annotations, type and immutable go to
    /// spec.template.
    #[command(after_help = EXIT_CODES_HELP)]
    Seal(SealArgs),

    /// Seal the keys of a Secret into an existing sealed file, in place.
    ///
    /// The file keeps its name, namespace and scope (read from its own annotations); keys the
    /// input does not mention keep their ciphertext byte for byte. The file is replaced
    /// atomically and keeps its format (YAML or JSON).
    #[command(after_help = EXIT_CODES_HELP)]
    Merge(MergeArgs),

    /// Recover Secrets from SealedSecrets with private keys, offline.
    ///
    /// Keys are tried in order, the one named by the sealbox.dev/sealing-key hint first. The
    /// output holds plaintext: it goes to stdout or to a new file readable only by you (-w).
    /// spec.template.data is rendered by the controller, not here: templated keys are listed on
    /// stderr and left out.
    #[command(after_help = EXIT_CODES_HELP)]
    Unseal(UnsealArgs),

    /// Check SealedSecrets offline against a certificate.
    ///
    /// Checks structure (kind, apiVersion, name, encryptedData), that each value is base64 of
    /// the right length for the certificate's key, that scope annotations are consistent, and
    /// that the sealing-key hint names the certificate's key. Problems are listed on stderr.
    #[command(after_help = EXIT_CODES_HELP)]
    Verify(VerifyArgs),

    /// Print a shell completion script to stdout.
    ///
    /// For example: `sealbox completions bash > /etc/bash_completion.d/sealbox`.
    Completions(CompletionsArgs),
}

/// Where documents are read from.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// File to read (YAML or JSON, several documents allowed); stdin when absent or `-`.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// The certificate to seal or verify with.
#[derive(Debug, Args)]
pub struct CertArgs {
    /// The controller's certificate: a PEM file, a file:// or an http(s):// URL (a bare PEM
    /// public key works too).
    #[arg(long, env = "SEALBOX_CERT", value_name = "FILE|URL")]
    pub cert: Option<CertSource>,
}

/// Where and how documents are written.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Yaml)]
    pub format: Format,

    /// Write to FILE (atomically: it is replaced only once everything succeeded) instead of
    /// stdout.
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: Option<PathBuf>,
}

/// Flags of `sealbox seal`.
#[derive(Debug, Args)]
pub struct SealArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub input: InputArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub cert: CertArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,

    /// Sealing scope. Default: the scope the Secret's own sealedsecrets.bitnami.com annotations
    /// ask for, else strict.
    #[arg(long, value_enum, value_name = "SCOPE")]
    pub scope: Option<ScopeArg>,

    /// Name of the SealedSecret, instead of the Secret's metadata.name (one document only).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Namespace of the SealedSecret. Default: the Secret's metadata.namespace, else the
    /// kubeconfig's current context, else `default` (cluster-wide: only what is given).
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// Kubeconfig to read the default namespace from (instead of KUBECONFIG or ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// Seal a Secret without keys (or, with --raw, an empty value) instead of refusing.
    #[arg(long)]
    pub allow_empty_data: bool,

    /// Seal one raw value (stdin or --from-file, bytes as they are) and print only its base64,
    /// for pasting into encryptedData. Strict scope needs --namespace and --name,
    /// namespace-wide needs --namespace.
    #[arg(long, conflicts_with_all = ["file", "format"])]
    pub raw: bool,

    /// With --raw: read the value from FILE instead of stdin.
    #[arg(long, value_name = "FILE", requires = "raw")]
    pub from_file: Option<PathBuf>,
}

/// Flags of `sealbox merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub input: InputArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub cert: CertArgs,

    /// The sealed file to update in place (one SealedSecret).
    #[arg(long, value_name = "FILE")]
    pub into: PathBuf,

    /// Accept an input Secret without keys (nothing changes but the hint).
    #[arg(long)]
    pub allow_empty_data: bool,
}

/// Flags of `sealbox unseal`.
#[derive(Debug, Args)]
pub struct UnsealArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub input: InputArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,

    /// Private key file: PEM (PKCS#1 or PKCS#8), a key Secret (YAML or JSON, as backed up with
    /// `kubectl get secret -l sealedsecrets.bitnami.com/sealed-secrets-key -o yaml`) or a List
    /// of them. Repeat for several.
    #[arg(long = "key", value_name = "FILE", required = true)]
    pub keys: Vec<PathBuf>,
}

/// Flags of `sealbox verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub input: InputArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub cert: CertArgs,
}

/// Flags of `sealbox completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// The scopes as command-line values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    /// Only this name in this namespace.
    Strict,
    /// Any name in this namespace.
    NamespaceWide,
    /// Any name in any namespace.
    ClusterWide,
}

impl From<ScopeArg> for Scope {
    fn from(scope: ScopeArg) -> Scope {
        match scope {
            ScopeArg::Strict => Scope::Strict,
            ScopeArg::NamespaceWide => Scope::NamespaceWide,
            ScopeArg::ClusterWide => Scope::ClusterWide,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn command_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn scope_values_match_the_crypto_names() {
        for scope in ScopeArg::value_variants() {
            let name = scope.to_possible_value().unwrap().get_name().to_owned();
            assert_eq!(Scope::from(*scope).to_string(), name);
        }
    }

    #[test]
    fn raw_needs_no_file_and_from_file_needs_raw() {
        assert!(Cli::try_parse_from(["sealbox", "seal", "--raw", "-f", "x"]).is_err());
        assert!(Cli::try_parse_from(["sealbox", "seal", "--from-file", "x"]).is_err());
        assert!(Cli::try_parse_from(["sealbox", "seal", "--raw", "--from-file", "x"]).is_ok());
        assert!(Cli::try_parse_from(["sealbox", "seal", "--raw", "-o", "json"]).is_err());
    }
}
