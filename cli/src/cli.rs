//! Command-line flags, as clap derive types. Doc comments are the help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sealbox_crypto::Scope;

use crate::cert::CertSource;
use crate::cluster::ClusterOptions;
use crate::output::Format;

/// Printed at the end of `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  the input was read but does not check out: `verify` found problems, `unseal` could not
     decrypt a value, `check` found a plaintext Secret or a broken sealed file, `reencrypt`
     could not re-seal a file, `keys prune` refused to delete a key still in use
  2  usage, input, certificate, key, cluster or I/O error (nothing was written)

Environment:
  SEALBOX_CERT                   default for --cert
  SEALBOX_CONTEXT                default for --context
  SEALBOX_CONTROLLER_NAMESPACE   default for --controller-namespace (kube-system)
  SEALBOX_CONTROLLER_NAME        default for --controller-name (sealed-secrets-controller)
  SEALBOX_BACKUP_PASSPHRASE      passphrase of `keys backup`, and of a backup read by `keys
                                 restore`, `unseal --key` or `reencrypt --key`
  SEALBOX_LOG                    log filter for diagnostics on stderr (e.g. debug), default warn
  KUBECONFIG                     kubeconfig files, as kubectl reads them";

/// Seal Kubernetes Secrets into SealedSecrets that are safe to commit to Git.
///
/// Compatible with Bitnami Sealed Secrets: files sealed here are unsealed by either controller,
/// and kubeseal's files work here. Sealing works offline from a certificate; without one, the
/// certificate is fetched from the controller through the cluster of the kubeconfig.
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
    /// Parses the process's arguments like `Cli::parse`, adding a hint naming sealbox's
    /// equivalent when an unknown flag is kubeseal's.
    pub fn parse_with_hints() -> Cli {
        use clap::Parser as _;
        Cli::try_parse().unwrap_or_else(|e| crate::kubeseal::hints::with_hint(e).exit())
    }

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
            // `set` prompts on a terminal instead of waiting for Ctrl-D.
            Command::Set(_) | Command::Unset(_) => false,
            Command::Unseal(args) => from_stdin(&args.input.file),
            Command::Verify(args) => from_stdin(&args.input.file),
            Command::Kubeseal(args) => crate::kubeseal::reads_stdin(args),
            Command::Cert(_)
            | Command::Keys(_)
            | Command::Check(_)
            | Command::Reencrypt(_)
            | Command::Completions(_) => false,
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
// Parsed once per process: the size of the largest variant (kubeseal's many flags) costs nothing.
#[allow(clippy::large_enum_variant)]
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

    /// Seal one value into an existing sealed file as KEY, in place (adds or replaces it).
    ///
    /// The value is read from --from-file, else from stdin, else (stdin a terminal) asked for
    /// without echo; its bytes are sealed as they are, so no plaintext file is needed. The file
    /// keeps its name, namespace and scope (read from its own annotations) and every other key
    /// byte for byte; it is replaced atomically in its format (YAML or JSON). The certificate:
    /// --cert, else the file's .sealbox.yaml rule, else the cluster's controller.
    #[command(after_help = EXIT_CODES_HELP)]
    Set(SetArgs),

    /// Remove KEY from an existing sealed file, in place.
    ///
    /// Needs no certificate. Every other key, the name, namespace, scope and hint stay as they
    /// are; the file is replaced atomically in its format.
    #[command(after_help = EXIT_CODES_HELP)]
    Unset(UnsetArgs),

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
    /// the right length for the certificate's key, that scope annotations are consistent, that
    /// the sealing-key hint names the certificate's key, that name and namespace are the ones
    /// the template says it was sealed for, and that the Secret stays under Kubernetes' 1 MiB
    /// limit. Problems are listed on stderr. Nothing is decrypted offline: a file renamed
    /// together with its template, or a value altered past its RSA part, still passes; --online
    /// asks the controller.
    #[command(after_help = EXIT_CODES_HELP)]
    Verify(VerifyArgs),

    /// Work with the controller's certificate.
    #[command(subcommand)]
    Cert(CertCommand),

    /// Manage the sealing keys in the cluster: list, rotate, back up, restore, prune.
    ///
    /// Keys are the Secrets the controller keeps in its namespace (--controller-namespace),
    /// labelled sealedsecrets.bitnami.com/sealed-secrets-key. These commands read and write
    /// them through the Kubernetes API, so they need RBAC on Secrets in that namespace.
    #[command(subcommand)]
    Keys(KeysCommand),

    /// Guard a repository: fail on plaintext Secrets, report stale and broken sealed files.
    ///
    /// Walks the given files and directories (.yaml, .yml, .json; .git, what .gitignore and the
    /// other ignore files exclude, --ignore globs and Helm chart templates are skipped). Exits 1 when a Secret with data or stringData is found (in any document of a
    /// file) or a SealedSecret fails the offline checks of `verify`. SealedSecrets whose
    /// sealing-key hint is not the current certificate's key are reported as stale. Meant for
    /// pre-commit and CI.
    #[command(after_help = EXIT_CODES_HELP)]
    Check(CheckArgs),

    /// Re-seal sealed files to the newest key, in place.
    ///
    /// Offline with the old private keys (--key, e.g. a decrypted backup) and the current
    /// certificate; online (no --key) by asking the controller's /v1/rotate. Only values not
    /// yet sealed to the current key change; everything else in a file, its other documents,
    /// templates and scope stay byte for byte. Files are replaced atomically; files that hold
    /// no SealedSecret are skipped and reported.
    #[command(after_help = EXIT_CODES_HELP)]
    Reencrypt(ReencryptArgs),

    /// Run kubeseal's command line: its flags, output and exit codes (also what a `kubeseal`
    /// link to this binary runs).
    ///
    /// For pipelines, Makefiles and plugins written for kubeseal. `--install-link DIR` creates
    /// the link (`ln -s "$(command -v sealbox)" DIR/kubeseal` does the same).
    #[command(
        disable_version_flag = true,
        after_help = crate::kubeseal::flags::KUBESEAL_HELP
    )]
    Kubeseal(crate::kubeseal::KubesealArgs),

    /// Print a shell completion script to stdout.
    ///
    /// For example: `sealbox completions bash > /etc/bash_completion.d/sealbox`.
    Completions(CompletionsArgs),
}

/// Subcommands of `sealbox cert`.
#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Fetch the controller's current (newest) certificate from the cluster.
    ///
    /// Through the API server's service proxy, like `kubeseal --fetch-cert`. Commit it (or keep
    /// it next to the repository) to seal offline with --cert.
    Fetch(CertFetchArgs),
}

/// Flags of `sealbox cert fetch`.
#[derive(Debug, Args)]
pub struct CertFetchArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub cluster: ClusterArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub file: FileArgs,
}

/// The file a command writes (`cert fetch`, `keys backup`): `-w FILE`, as for `seal` and
/// `unseal`. `-o` means an output format everywhere, as in kubectl; `-o FILE`, the spelling of
/// earlier versions, keeps working with a deprecation note.
#[derive(Debug, Args)]
pub struct FileArgs {
    /// Write to FILE (atomically: it is replaced only once everything succeeded).
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: Option<PathBuf>,

    /// Deprecated spelling of -w FILE (-o names an output format, as in kubectl).
    #[arg(
        short = 'o',
        long = "output",
        value_name = "FILE",
        hide = true,
        conflicts_with = "write"
    )]
    pub output: Option<PathBuf>,
}

impl FileArgs {
    /// The file, and whether it was given with the deprecated `-o`.
    pub fn target(&self) -> Option<(&std::path::Path, bool)> {
        match (&self.write, &self.output) {
            (Some(write), _) => Some((write, false)),
            (None, Some(output)) => Some((output, true)),
            (None, None) => None,
        }
    }
}

/// How to reach the cluster and the controller in it.
#[derive(Clone, Debug, Args)]
pub struct ClusterArgs {
    /// Kubeconfig file (instead of KUBECONFIG or ~/.kube/config; inside a pod the service
    /// account is used when there is none).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// Kubeconfig context to use instead of the current one.
    #[arg(long, value_name = "NAME", env = "SEALBOX_CONTEXT")]
    pub context: Option<String>,

    /// Namespace of the controller, which also holds its key Secrets.
    #[arg(
        long,
        value_name = "NAMESPACE",
        env = "SEALBOX_CONTROLLER_NAMESPACE",
        default_value = crate::cluster::DEFAULT_CONTROLLER_NAMESPACE
    )]
    pub controller_namespace: String,

    /// Name of the controller's Service.
    #[arg(
        long,
        value_name = "NAME",
        env = "SEALBOX_CONTROLLER_NAME",
        default_value = crate::cluster::DEFAULT_CONTROLLER_NAME
    )]
    pub controller_name: String,
}

impl ClusterArgs {
    /// The options these flags describe.
    pub fn options(&self) -> ClusterOptions {
        ClusterOptions {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            controller_namespace: self.controller_namespace.clone(),
            controller_name: self.controller_name.clone(),
            overrides: Default::default(),
        }
    }
}

/// Subcommands of `sealbox keys`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the sealing keys: fingerprint, created, active, which one seals, and how many
    /// SealedSecrets in the cluster are sealed to each.
    ///
    /// The count follows each SealedSecret's sealbox.dev/sealing-key hint; SealedSecrets
    /// without one (sealed by kubeseal) are counted by trying the keys on one value.
    List(KeysListArgs),

    /// Create a new sealing key now, in the Bitnami shape; the controller picks it up and
    /// seals with it from then on. Old keys keep unsealing.
    Rotate(KeysRotateArgs),

    /// Write every key to an age-encrypted file (a passphrase or age recipients).
    ///
    /// The file, once decrypted, is a v1 List of the key Secrets: what `kubectl apply`,
    /// `sealbox unseal --key` and `sealbox reencrypt --key` read. It is created readable only
    /// by you and written atomically.
    Backup(KeysBackupArgs),

    /// Create the keys of a backup that the cluster does not have yet.
    ///
    /// Keys are matched by fingerprint: a key already present (under any name) is skipped.
    /// Accepts files from `keys backup` and plaintext key Secrets (`kubectl get secret -l
    /// sealedsecrets.bitnami.com/sealed-secrets-key -o yaml`).
    Restore(KeysRestoreArgs),

    /// Delete keys older than a duration that nothing is sealed to any more.
    ///
    /// The newest key is never pruned. A key is kept (and listed with its users) while any
    /// SealedSecret in the cluster, or in the given repository paths, has a value that only
    /// it can decrypt or a hint naming it. Dry run unless --yes.
    #[command(after_help = EXIT_CODES_HELP)]
    Prune(KeysPruneArgs),
}

/// Output of `keys list`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    /// An aligned table.
    #[default]
    Table,
    /// A JSON array.
    Json,
}

/// Flags of `sealbox keys list`.
#[derive(Debug, Args)]
pub struct KeysListArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub cluster: ClusterArgs,

    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
}

/// Flags of `sealbox keys rotate`.
#[derive(Debug, Args)]
pub struct KeysRotateArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub cluster: ClusterArgs,

    /// Size of the new RSA key in bits: 2048, 3072 or 4096.
    #[arg(long, value_name = "BITS", default_value_t = 4096, value_parser = parse_key_size)]
    pub key_size: usize,

    /// Common name of the new certificate (the controller's --my-cn).
    #[arg(long, value_name = "CN", default_value = "")]
    pub my_cn: String,

    /// generateName of the new key Secret (the controller's --key-prefix).
    #[arg(long, value_name = "PREFIX", default_value = sealbox_crypto::key_secret::DEFAULT_KEY_PREFIX)]
    pub key_prefix: String,
}

/// How a backup is encrypted or decrypted with a passphrase.
#[derive(Debug, Args)]
pub struct PassphraseArgs {
    /// Read the backup passphrase from the first line of FILE (else SEALBOX_BACKUP_PASSPHRASE,
    /// else a prompt on the terminal).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

/// How `--key` files that are encrypted backups (`keys backup`) are opened.
#[derive(Debug, Args)]
pub struct KeyBackupArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub passphrase: PassphraseArgs,

    /// age identity file (AGE-SECRET-KEY-…) for a --key backup encrypted to recipients; for
    /// `unseal`, also for multi-recipient values sealed for it (a break-glass key). Repeatable.
    #[arg(short = 'i', long = "identity", value_name = "FILE")]
    pub identities: Vec<PathBuf>,
}

impl KeyBackupArgs {
    /// The openers these flags give.
    pub fn openers(&self) -> crate::backup::Openers<'_> {
        crate::backup::Openers {
            passphrase_file: self.passphrase.passphrase_file.as_deref(),
            identities: &self.identities,
        }
    }
}

/// Flags of `sealbox keys backup`.
#[derive(Debug, Args)]
pub struct KeysBackupArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub cluster: ClusterArgs,

    /// The backup file to write with -w FILE (created with mode 0600, replaced atomically).
    #[command(flatten)]
    pub file: FileArgs,

    /// Encrypt to this age recipient (age1…) instead of a passphrase. Repeat for several.
    #[arg(short = 'r', long = "recipient", value_name = "RECIPIENT")]
    pub recipients: Vec<String>,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub passphrase: PassphraseArgs,

    /// Write the private keys in plaintext. Anyone who can read the file can unseal every
    /// secret sealed to these keys.
    #[arg(long, conflicts_with_all = ["recipients", "passphrase_file"])]
    pub unencrypted: bool,
}

/// Flags of `sealbox keys restore`.
#[derive(Debug, Args)]
pub struct KeysRestoreArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub cluster: ClusterArgs,

    /// The backup file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub passphrase: PassphraseArgs,

    /// age identity file (AGE-SECRET-KEY-…) for a backup encrypted to recipients. Repeatable.
    #[arg(short = 'i', long = "identity", value_name = "FILE")]
    pub identities: Vec<PathBuf>,

    /// Show what would be created without creating it.
    #[arg(long)]
    pub dry_run: bool,
}

/// Flags of `sealbox keys prune`.
#[derive(Debug, Args)]
pub struct KeysPruneArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub cluster: ClusterArgs,

    /// Prune keys whose certificate is older than this (e.g. 90d, 720h, 2w).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub older_than: std::time::Duration,

    /// Repository files or directories whose SealedSecrets must keep their keys too.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Delete the keys (without it, only shows what would be deleted).
    #[arg(long)]
    pub yes: bool,
}

/// How `check` and `reencrypt` choose files.
#[derive(Debug, Args)]
pub struct WalkArgs {
    /// Files and directories to look at (.yaml, .yml, .json inside directories).
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,

    /// Skip paths matching this glob (relative to the current directory, e.g. 'charts/**').
    /// Repeatable; adds to the ignore list of .sealbox.yaml.
    #[arg(long = "ignore", value_name = "GLOB")]
    pub ignore: Vec<String>,
}

/// Flags of `sealbox check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub walk: WalkArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub cert: CertArgs,

    /// Fetch the current certificate from the controller when neither --cert nor
    /// .sealbox.yaml gives one (check never contacts a cluster otherwise).
    #[arg(long)]
    pub fetch_cert: bool,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub cluster: ClusterArgs,

    /// Print the findings as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,

    /// Exit 1 on stale SealedSecrets too (sealed to a key other than the current one).
    #[arg(long)]
    pub fail_on_stale: bool,
}

/// Flags of `sealbox reencrypt`.
#[derive(Debug, Args)]
pub struct ReencryptArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub walk: WalkArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub cert: CertArgs,

    /// Private keys to decrypt with (offline mode): PEM, key Secrets or a List of them, or the
    /// age-encrypted file of `keys backup` as it is. Repeatable. Without --key the controller
    /// re-seals (/v1/rotate).
    #[arg(long = "key", value_name = "FILE")]
    pub keys: Vec<PathBuf>,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub backup: KeyBackupArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub cluster: ClusterArgs,

    /// Report what would change without writing.
    #[arg(long)]
    pub dry_run: bool,
}

/// 2048, 3072 or 4096.
fn parse_key_size(text: &str) -> Result<usize, String> {
    match text {
        "2048" => Ok(2048),
        "3072" => Ok(3072),
        "4096" => Ok(4096),
        _ => Err(format!(
            "{text:?} is not a supported key size: 2048, 3072 or 4096"
        )),
    }
}

/// Parses `90d`, `720h`, `1h30m`, `2w`, `45s`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let invalid = || format!("{text:?} is not a duration; write it like 720h, 90d, 1h30m or 2w");
    let mut total: u64 = 0;
    let mut number = String::new();
    let mut any = false;
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(invalid()),
        };
        let value: u64 = number.parse().map_err(|_| invalid())?;
        total = value
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(invalid)?;
        number.clear();
        any = true;
    }
    if !number.is_empty() || !any {
        return Err(invalid());
    }
    Ok(std::time::Duration::from_secs(total))
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
    /// public key works too). Without it, a rule of .sealbox.yaml decides, else the
    /// certificate is fetched from the controller when a kubeconfig is found.
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
    /// ask for, else the scope of the matching .sealbox.yaml rule, else strict.
    #[arg(long, value_enum, value_name = "SCOPE")]
    pub scope: Option<ScopeArg>,

    /// Name of the SealedSecret, instead of the Secret's metadata.name (one document only).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Namespace of the SealedSecret. Default: the Secret's metadata.namespace, else the
    /// kubeconfig's current context, else `default` (cluster-wide: only what is given).
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// How to reach the cluster: for the default namespace (the context's) and, without
    /// --cert, for the certificate.
    #[command(flatten)]
    pub cluster: ClusterArgs,

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

    /// Seal a Secret over Kubernetes' 1 MiB limit (which the API server refuses) with a warning
    /// instead of refusing.
    #[arg(long)]
    pub allow_oversize: bool,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub recipients: RecipientArgs,
}

/// Recipients beyond the one certificate: any of them makes every value a multi-recipient (age)
/// value that each cluster and age key opens (docs/FORMAT.md). Only Sealbox controllers read
/// those; a .sealbox.yaml rule may name the same (certs, contexts, recipients, recipientsFiles).
#[derive(Debug, Args, Default)]
pub struct RecipientArgs {
    /// Also seal for this cluster's certificate: a PEM file or an http(s) URL. Repeat for several.
    #[arg(long = "add-cert", value_name = "FILE|URL")]
    pub add_certs: Vec<CertSource>,

    /// Also seal for the controller of this kubeconfig context. Repeat for several.
    #[arg(long = "add-context", value_name = "CONTEXT")]
    pub add_contexts: Vec<String>,

    /// Also seal for this age X25519 recipient (`age1…`), e.g. a break-glass key kept offline.
    /// Repeat for several.
    #[arg(short = 'r', long = "recipient", value_name = "AGE1...")]
    pub recipients: Vec<String>,

    /// Also seal for every age recipient in FILE (one per line, `#` comments), as `age -R`
    /// reads them. Repeat for several.
    #[arg(long = "recipients-file", value_name = "FILE")]
    pub recipients_files: Vec<PathBuf>,
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

    #[command(flatten)]
    #[allow(missing_docs)]
    pub cluster: ClusterArgs,

    /// The sealed file to update in place (one SealedSecret).
    #[arg(long, value_name = "FILE")]
    pub into: PathBuf,

    /// Accept an input Secret without keys (nothing changes but the hint).
    #[arg(long)]
    pub allow_empty_data: bool,

    /// Recipients for the merged keys; required (the same as the file's) when the file holds
    /// multi-recipient values, so the new keys open for the same clusters and age keys.
    #[command(flatten)]
    pub recipients: RecipientArgs,

    /// Write the file even when the Secret it unseals to is over Kubernetes' 1 MiB limit.
    #[arg(long)]
    pub allow_oversize: bool,
}

/// Flags of `sealbox set`.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// The sealed file to change (one SealedSecret).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// The key of spec.encryptedData to add or replace.
    #[arg(value_name = "KEY")]
    pub key: String,

    /// Read the value from FILE (bytes as they are; `-` is stdin) instead of stdin or a prompt.
    #[arg(long, value_name = "FILE")]
    pub from_file: Option<PathBuf>,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub cert: CertArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub cluster: ClusterArgs,

    /// Seal an empty value instead of refusing.
    #[arg(long)]
    pub allow_empty_data: bool,

    /// Write the file even when the Secret it unseals to is over Kubernetes' 1 MiB limit.
    #[arg(long)]
    pub allow_oversize: bool,

    /// Recipients for the new value; required (the same as the file's) when the file holds
    /// multi-recipient values.
    #[command(flatten)]
    pub recipients: RecipientArgs,
}

/// Flags of `sealbox unset`.
#[derive(Debug, Args)]
pub struct UnsetArgs {
    /// The sealed file to change (one SealedSecret).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// The key of spec.encryptedData to remove.
    #[arg(value_name = "KEY")]
    pub key: String,
}

/// Flags of `sealbox unseal`: at least one private key or age identity.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("openers").required(true).multiple(true).args(["keys", "identities"]))]
pub struct UnsealArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub input: InputArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,

    /// Private key file: PEM (PKCS#1 or PKCS#8), a key Secret (YAML or JSON, as backed up with
    /// `kubectl get secret -l sealedsecrets.bitnami.com/sealed-secrets-key -o yaml`), a List
    /// of them, or the age-encrypted file of `keys backup` as it is (passphrase from
    /// --passphrase-file, SEALBOX_BACKUP_PASSPHRASE or a prompt; --identity for a backup to
    /// recipients). Repeat for several.
    #[arg(long = "key", value_name = "FILE")]
    pub keys: Vec<PathBuf>,

    /// The passphrase or `--identity` of `--key` backups; `--identity` (the break-glass key,
    /// say) also opens multi-recipient values sealed for it.
    #[command(flatten)]
    pub backup: KeyBackupArgs,
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

    #[command(flatten)]
    #[allow(missing_docs)]
    pub cluster: ClusterArgs,

    /// Ask the controller whether it can decrypt each SealedSecret (POST /v1/verify through
    /// the service proxy) instead of checking offline against a certificate.
    #[arg(long, conflicts_with = "cert")]
    pub online: bool,
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

    #[test]
    fn durations() {
        let secs = |t: &str| parse_duration(t).map(|d| d.as_secs());
        assert_eq!(secs("90d"), Ok(90 * 86_400));
        assert_eq!(secs("1h30m"), Ok(5400));
        assert_eq!(secs("2w"), Ok(14 * 86_400));
        assert!(secs("90").is_err());
        assert!(secs("d").is_err());
        assert!(secs("1y").is_err());
        assert!(secs("").is_err());
    }
}
