//! The CLI library's one error type.
//!
//! Every message names what failed and the file, document or field it was about, and says what
//! to do next where there is something to do. None carries a plaintext value, a ciphertext or
//! key material: fields and keys are named, values never are.

use std::io;
use std::path::PathBuf;

use crate::origin::Origin;
use crate::redact;

/// A `Result` with the CLI's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: the input was read but does not check out (`verify` found problems, `unseal`
/// could not decrypt).
pub const EXIT_PROBLEMS: u8 = 1;
/// Exit code: usage, input, certificate, key or I/O error (clap's own usage errors use 2 too).
pub const EXIT_USAGE: u8 = 2;

/// Everything that can make a `sealbox` command fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An input file (or stdin) could not be read.
    #[error("cannot read {input}")]
    ReadInput {
        /// The file, or `<stdin>`.
        input: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// A path given as an input file is a directory.
    #[error("cannot read {input}: it is a directory; pass a file")]
    InputIsDirectory {
        /// The path.
        input: String,
    },

    /// YAML and JSON input must be UTF-8.
    #[error(
        "{input} is not UTF-8 text (invalid byte at offset {offset}); YAML and JSON input must be UTF-8"
    )]
    NotUtf8 {
        /// The file, or `<stdin>`.
        input: String,
        /// Offset of the first invalid byte.
        offset: usize,
    },

    /// The input is not valid YAML.
    #[error(
        "cannot parse {input} as YAML (document {document}): {}",
        redact::parser_message(reason)
    )]
    ParseYaml {
        /// The file, or `<stdin>`.
        input: String,
        /// 1-based index of the document that failed.
        document: usize,
        /// The parser's message: position and kind of error, never the data.
        reason: String,
    },

    /// The input is not valid JSON.
    #[error(
        "cannot parse {input} as JSON (document {document}): {}",
        redact::parser_message(reason)
    )]
    ParseJson {
        /// The file, or `<stdin>`.
        input: String,
        /// 1-based index of the document that failed.
        document: usize,
        /// The parser's message: position and kind of error, never the data.
        reason: String,
    },

    /// The input holds no document at all.
    #[error("{input} holds no document; expected {expected}")]
    NoDocuments {
        /// The file, or `<stdin>`.
        input: String,
        /// What the command wanted, e.g. "a Secret".
        expected: &'static str,
    },

    /// A document is not what the command needs, or one of its fields is invalid.
    #[error("{origin}: {field}: {problem}")]
    InvalidDocument {
        /// Which document.
        origin: Origin,
        /// The field path, e.g. `data.password` or `kind`.
        field: String,
        /// What is wrong, without the field's value.
        problem: String,
    },

    /// A Secret without data: usually a mistake (an empty export, a typo'd key).
    #[error(
        "{origin}: the Secret has no data or stringData; add keys, or pass --allow-empty-data to seal it anyway"
    )]
    EmptyData {
        /// Which document.
        origin: Origin,
    },

    /// `--raw` with an empty value.
    #[error("the value to seal is empty; pass --allow-empty-data to seal it anyway")]
    EmptyRawValue,

    /// A flag the chosen operation needs is missing.
    #[error("{flag} is required: {why}")]
    MissingFlag {
        /// The flag, e.g. `--namespace`.
        flag: &'static str,
        /// Why it is needed.
        why: String,
    },

    /// The KEY argument of `set` or `unset` is not a valid Secret key.
    #[error("KEY: {problem}")]
    InvalidKeyArgument {
        /// What is wrong, showing the key only up to its first bad character.
        problem: String,
    },

    /// `--name` with several documents.
    #[error(
        "--name renames a single Secret, but the input holds {count} documents; seal them one by one or drop --name"
    )]
    NameForManyDocuments {
        /// How many documents the input holds.
        count: usize,
    },

    /// No certificate was given.
    #[error(
        "no certificate: pass --cert FILE|URL or set SEALBOX_CERT (get it from the controller's /v1/cert.pem)"
    )]
    NoCertificate,

    /// A certificate file could not be read.
    #[error("cannot read the certificate {cert}")]
    ReadCertificate {
        /// The file.
        cert: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// A certificate could not be fetched over HTTP(S).
    #[error(
        "cannot fetch the certificate from {url}: {reason}; check the URL, or pass --cert FILE"
    )]
    FetchCertificate {
        /// The URL.
        url: String,
        /// What went wrong (connection, TLS, HTTP status, size).
        reason: String,
    },

    /// The certificate is not a PEM certificate or public key.
    #[error("cannot use the certificate; pass the controller's PEM certificate (its /v1/cert.pem)")]
    ParseCertificate {
        /// The file or URL.
        cert: String,
        /// Why sealbox-crypto rejected it (its message names the file).
        #[source]
        source: Box<sealbox_crypto::Error>,
    },

    /// The certificate has expired.
    #[error("cannot seal with {cert}")]
    CertificateExpired {
        /// The file or URL.
        cert: String,
        /// sealbox-crypto's error, which carries the date.
        #[source]
        source: Box<sealbox_crypto::Error>,
    },

    /// A private-key file could not be read.
    #[error("cannot read the key file {path}")]
    ReadKey {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// A private-key file holds no usable key.
    #[error("cannot load private keys")]
    ParseKey {
        /// The file.
        path: PathBuf,
        /// Why sealbox-crypto rejected it.
        #[source]
        source: Box<sealbox_crypto::Error>,
    },

    /// Sealing one value failed.
    #[error("{origin}: cannot seal {field}")]
    Seal {
        /// Which document (or `--raw`).
        origin: Origin,
        /// The field, e.g. `data.password`.
        field: String,
        /// sealbox-crypto's error.
        #[source]
        source: Box<sealbox_crypto::Error>,
    },

    /// Some values of a SealedSecret could not be decrypted.
    #[error(
        "{origin}: cannot unseal SealedSecret {object}: {}; {}",
        failures.iter().map(|(key, why)| format!("{}: {why}", crate::origin::field_path("encryptedData", key))).collect::<Vec<_>>().join(", "),
        if failures.iter().all(|(_, why)| why.contains("too short") || why.contains("base64")) {
            "the values are damaged (truncated or edited); seal them again".to_owned()
        } else {
            format!("check the --key files, and that the object was not renamed or moved (its scope is {scope})")
        }
    )]
    Unseal {
        /// Which document.
        origin: Origin,
        /// `namespace/name`.
        object: String,
        /// The scope read from the annotations.
        scope: sealbox_crypto::Scope,
        /// Every key that failed, with sealbox-crypto's coarse reason.
        failures: Vec<(String, String)>,
    },

    /// A kubeconfig file could not be read.
    #[error("cannot read the kubeconfig {path}; pass --namespace to skip it")]
    ReadKubeconfig {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// A kubeconfig file is not valid YAML of the expected shape.
    #[error(
        "cannot parse the kubeconfig {path}: {}; pass --namespace to skip it",
        redact::parser_message(reason)
    )]
    ParseKubeconfig {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },

    /// A sealed file to edit in place (`merge --into`, `set`, `unset`) cannot be edited.
    #[error("cannot {action} {path}: {problem}")]
    EditTarget {
        /// What was to be done: "merge into", "set a key in", "remove a key from".
        action: &'static str,
        /// The sealed file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },

    /// A Secret over Kubernetes' size limit: it would seal, but could never be applied.
    #[error(
        "{what}: {problem}; split it into several Secrets, or pass --allow-oversize to seal it anyway"
    )]
    SecretTooLarge {
        /// Which Secret or SealedSecret, with its input.
        what: String,
        /// The sizes.
        problem: String,
    },

    /// The output could not be rendered.
    #[error("cannot render the output as {format}: {reason}")]
    Render {
        /// `YAML` or `JSON`.
        format: &'static str,
        /// The serializer's message.
        reason: String,
    },

    /// An output file could not be written (the target is left as it was).
    #[error("cannot write {path}")]
    WriteFile {
        /// The target file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// The output path cannot be a file: its directory is missing, or it is a directory.
    #[error("cannot write {path}: {problem}")]
    OutputPath {
        /// The target path.
        path: PathBuf,
        /// What is wrong with it and what to do.
        problem: &'static str,
    },

    /// A Tokio runtime for a cluster command could not be started.
    #[error("cannot start the runtime for talking to the cluster")]
    Runtime {
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// No kubeconfig and no in-cluster configuration.
    #[error(
        "no cluster configured: pass --kubeconfig FILE (or set KUBECONFIG), or run inside a pod{}",
        offline.map(|hint| format!("; to work offline {hint}")).unwrap_or_default()
    )]
    NoCluster {
        /// How the command at hand works without a cluster, if it can (`cert fetch` and `keys`
        /// cannot, so they must not be told to pass `--cert`).
        offline: Option<&'static str>,
    },

    /// A kubeconfig file could not be read or merged.
    #[error(
        "cannot load the kubeconfig {path}: {}; fix it or pass --kubeconfig FILE",
        redact::parser_message(reason)
    )]
    ReadKubeconfigFile {
        /// The file.
        path: PathBuf,
        /// kube's message.
        reason: String,
    },

    /// The cluster configuration is unusable (unknown context, bad server URL, credentials).
    #[error(
        "cannot configure the cluster client: {}; check --kubeconfig and --context",
        redact::parser_message(reason)
    )]
    ClusterConfig {
        /// What went wrong.
        reason: String,
    },

    /// The API server could not be reached.
    #[error(
        "cannot reach the Kubernetes API server at {server}: {reason}; check that the cluster is up and that --kubeconfig/--context (or KUBECONFIG) point at it"
    )]
    ClusterUnreachable {
        /// The server URL.
        server: String,
        /// The connection error.
        reason: String,
    },

    /// The API server answered a request with an error.
    #[error("cannot {what}: the API server answered {code}: {reason}")]
    ClusterRequest {
        /// What was attempted, e.g. "list key Secrets in kube-system".
        what: String,
        /// The HTTP status.
        code: u16,
        /// The API server's message, with advice.
        reason: String,
    },

    /// The controller's Service does not exist (or has no ports).
    #[error(
        "cannot find the controller's Service {namespace}/{name}: {reason}; pass --controller-name and --controller-namespace (or set SEALBOX_CONTROLLER_NAME and SEALBOX_CONTROLLER_NAMESPACE) to where the controller runs"
    )]
    ControllerNotFound {
        /// The namespace searched.
        namespace: String,
        /// The Service name.
        name: String,
        /// What was found instead.
        reason: String,
    },

    /// The controller answered with an error (through the service proxy).
    #[error("the controller {controller} answered {code} to {request}: {reason}")]
    ControllerRequest {
        /// `namespace/name`.
        controller: String,
        /// `GET /v1/cert.pem`.
        request: String,
        /// The HTTP status.
        code: u16,
        /// Its message, with advice.
        reason: String,
    },

    /// The controller's answer could not be understood.
    #[error("the controller {controller} answered {request} with something unexpected: {reason}")]
    ControllerAnswer {
        /// `namespace/name`.
        controller: String,
        /// `POST /v1/rotate`.
        request: String,
        /// What is wrong with it (never its content).
        reason: String,
    },

    /// No sealing keys where they were looked for.
    #[error(
        "no sealing keys in namespace {namespace} (Secrets labelled sealedsecrets.bitnami.com/sealed-secrets-key, or named sealed-secrets-key); pass --controller-namespace where the controller keeps them"
    )]
    NoKeys {
        /// The namespace.
        namespace: String,
    },

    /// A new key could not be generated.
    #[error("cannot generate a new sealing key")]
    GenerateKey {
        /// sealbox-crypto's error.
        #[source]
        source: Box<sealbox_crypto::Error>,
    },

    /// `keys backup` was given no way to encrypt.
    #[error(
        "keys backup needs a way to encrypt the keys: pass -r AGE_RECIPIENT, --passphrase-file FILE or set SEALBOX_BACKUP_PASSPHRASE (on a terminal you are asked); --unencrypted writes plaintext private keys"
    )]
    NoBackupEncryption,

    /// Both a passphrase and recipients were given.
    #[error(
        "a backup is encrypted either to a passphrase or to recipients, not both: drop --passphrase-file/SEALBOX_BACKUP_PASSPHRASE or -r"
    )]
    PassphraseAndRecipients,

    /// An age recipient does not parse.
    #[error("{recipient:?} is not an age X25519 recipient (age1…); generate one with `age-keygen`")]
    InvalidRecipient {
        /// The recipient as given (public information).
        recipient: String,
    },

    /// The passphrase could not be read.
    #[error("cannot read the passphrase from {from}")]
    ReadPassphrase {
        /// The file, or "the terminal".
        from: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// The passphrase is empty.
    #[error("the passphrase from {from} is empty; choose a long passphrase")]
    EmptyPassphrase {
        /// Where it came from.
        from: String,
    },

    /// The two passphrases typed on the terminal differ.
    #[error("the passphrases differ; run the command again")]
    PassphraseMismatch,

    /// age refused to encrypt.
    #[error("cannot encrypt the backup: {reason}")]
    EncryptBackup {
        /// age's message.
        reason: String,
    },

    /// A backup file could not be read.
    #[error("cannot read the backup {path}")]
    ReadBackup {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// The passphrase does not open the backup.
    #[error(
        "cannot decrypt the backup {path}: wrong passphrase; check --passphrase-file or SEALBOX_BACKUP_PASSPHRASE"
    )]
    WrongPassphrase {
        /// The file.
        path: PathBuf,
    },

    /// The backup is encrypted to recipients and no identity opens it.
    #[error(
        "cannot decrypt the backup {path}: it is encrypted to age recipients and {}; pass -i IDENTITY_FILE with the matching age secret key",
        if *identities == 0 { "no identity was given".to_owned() } else { format!("none of the {identities} identities matches") }
    )]
    NoMatchingIdentity {
        /// The file.
        path: PathBuf,
        /// How many identities were tried.
        identities: usize,
    },

    /// The backup is encrypted to a passphrase but none is available.
    #[error(
        "the backup {path} is encrypted with a passphrase: pass --passphrase-file FILE or set SEALBOX_BACKUP_PASSPHRASE (on a terminal it is asked for)"
    )]
    NeedsPassphrase {
        /// The file.
        path: PathBuf,
    },

    /// The backup is damaged or not a backup.
    #[error("cannot decrypt the backup {path}: {reason}")]
    DecryptBackup {
        /// The file.
        path: PathBuf,
        /// What is wrong (age's coarse message).
        reason: String,
    },

    /// A multi-recipient recipient (`--recipient`, a recipients file, a rule) is not usable.
    #[error("{origin}: cannot seal for this recipient")]
    InvalidAgeRecipient {
        /// Where it was given: the flag, or a file and line.
        origin: String,
        /// sealbox-crypto's reason (the public recipient, bounded; never a secret).
        #[source]
        source: Box<sealbox_crypto::Error>,
    },

    /// A recipients file could not be read.
    #[error("cannot read the recipients file {path}: {reason}")]
    ReadRecipients {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// An age identity file could not be read.
    #[error("cannot read the age identity file {path}: {reason}")]
    ReadIdentity {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// The decrypted backup holds no usable key Secrets.
    #[error("the backup {path} does not hold sealing keys")]
    BackupContents {
        /// The file.
        path: PathBuf,
        /// Why sealbox-crypto rejected it (names the Secret, never the key).
        #[source]
        source: Box<sealbox_crypto::Error>,
    },

    /// A directory could not be walked.
    #[error("cannot read {path}")]
    Walk {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// A path given on the command line does not exist.
    #[error("{path} does not exist")]
    MissingPath {
        /// The path.
        path: PathBuf,
    },

    /// `.sealbox.yaml` could not be read.
    #[error("cannot read the repository config {path}")]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// `.sealbox.yaml` is invalid.
    #[error("invalid repository config {path}: {}", redact::parser_message(reason))]
    ParseConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A glob pattern does not parse.
    #[error("{origin}: {pattern:?} is not a valid glob pattern: {reason}")]
    InvalidPattern {
        /// The flag or file it came from.
        origin: String,
        /// The pattern.
        pattern: String,
        /// The parser's message.
        reason: String,
    },

    /// A failure in kubeseal mode, worded as kubeseal words it (scripts match on these words),
    /// with Sealbox's explanation; kubeseal mode exits 1 on every failure but bad flags.
    #[error("{message}")]
    Kubeseal {
        /// The message, already in kubeseal's words.
        message: String,
        /// The category of the failure, for logs.
        category: &'static str,
    },

    /// Writing to stdout failed.
    #[error("cannot write to stdout")]
    WriteStdout {
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// A short, stable name for logs.
    pub fn category(&self) -> &'static str {
        match self {
            Error::ReadInput { .. } | Error::InputIsDirectory { .. } | Error::NotUtf8 { .. } => {
                "read_input"
            }
            Error::ParseYaml { .. } | Error::ParseJson { .. } | Error::NoDocuments { .. } => {
                "parse_input"
            }
            Error::InvalidDocument { .. } | Error::EmptyData { .. } | Error::EmptyRawValue => {
                "invalid_input"
            }
            Error::MissingFlag { .. }
            | Error::NameForManyDocuments { .. }
            | Error::InvalidKeyArgument { .. } => "usage",
            Error::NoCertificate
            | Error::ReadCertificate { .. }
            | Error::FetchCertificate { .. }
            | Error::ParseCertificate { .. } => "certificate",
            Error::CertificateExpired { .. } => "certificate_expired",
            Error::ReadKey { .. } | Error::ParseKey { .. } => "private_key",
            Error::Seal { .. } => "seal",
            Error::Unseal { .. } => "unseal",
            Error::ReadKubeconfig { .. } | Error::ParseKubeconfig { .. } => "kubeconfig",
            Error::EditTarget { .. } => "edit_target",
            Error::SecretTooLarge { .. } => "too_large",
            Error::Render { .. } => "render",
            Error::WriteFile { .. } | Error::OutputPath { .. } | Error::WriteStdout { .. } => {
                "write_output"
            }
            Error::Runtime { .. } => "runtime",
            Error::NoCluster { .. }
            | Error::ReadKubeconfigFile { .. }
            | Error::ClusterConfig { .. } => "cluster_config",
            Error::ClusterUnreachable { .. } => "cluster_unreachable",
            Error::ClusterRequest { .. } => "cluster_request",
            Error::ControllerNotFound { .. } => "controller_not_found",
            Error::ControllerRequest { .. } | Error::ControllerAnswer { .. } => "controller",
            Error::NoKeys { .. } | Error::GenerateKey { .. } => "keys",
            Error::NoBackupEncryption
            | Error::PassphraseAndRecipients
            | Error::InvalidRecipient { .. }
            | Error::ReadPassphrase { .. }
            | Error::EmptyPassphrase { .. }
            | Error::PassphraseMismatch
            | Error::EncryptBackup { .. } => "backup",
            Error::InvalidAgeRecipient { .. } | Error::ReadRecipients { .. } => "recipients",
            Error::ReadBackup { .. }
            | Error::WrongPassphrase { .. }
            | Error::NoMatchingIdentity { .. }
            | Error::NeedsPassphrase { .. }
            | Error::DecryptBackup { .. }
            | Error::ReadIdentity { .. }
            | Error::BackupContents { .. } => "restore",
            Error::InvalidPattern { .. } => "usage",
            Error::Walk { .. } | Error::MissingPath { .. } => "read_input",
            Error::ReadConfig { .. } | Error::ParseConfig { .. } => "config",
            Error::Kubeseal { category, .. } => category,
        }
    }

    /// The process exit code for this error (see [`EXIT_PROBLEMS`] and [`EXIT_USAGE`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Unseal { .. } | Error::Kubeseal { .. } => EXIT_PROBLEMS,
            _ => EXIT_USAGE,
        }
    }

    /// For a command that can work offline: a missing cluster says how (`pass --cert FILE`).
    pub fn offline_hint(self, hint: &'static str) -> Error {
        match self {
            Error::NoCluster { .. } => Error::NoCluster {
                offline: Some(hint),
            },
            other => other,
        }
    }

    /// Whether this is stdout closed under us (`sealbox seal | head`): a clean exit, not an error.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::WriteStdout { source } if source.kind() == io::ErrorKind::BrokenPipe)
    }

    /// The message with its chain of causes, `: `-separated, as printed by the binary.
    pub fn report(&self) -> String {
        chain(self)
    }
}

/// An error and its causes, `: `-separated (kube's own messages repeat their source, so
/// repeated text is skipped). A base64 error inside names the byte and offset where a
/// credential (`client-key-data`) stops being base64: that text is replaced by "not valid
/// base64", so no part of a key reaches the message.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut hidden = Vec::new();
    let mut cause = error.source();
    while let Some(err) = cause {
        if let Some(kube::config::LoadDataError::DecodeBase64(inner)) = err.downcast_ref() {
            hidden.push(inner.to_string());
        }
        let text = err.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = err.source();
    }
    for text in hidden.iter().filter(|t| !t.is_empty()) {
        message = message.replace(text.as_str(), "not valid base64");
    }
    message
}
