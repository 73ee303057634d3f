//! The CLI library's one error type.
//!
//! Every message names what failed and the file, document or field it was about, and says what
//! to do next where there is something to do. None carries a plaintext value, a ciphertext or
//! key material: fields and keys are named, values never are.

use std::io;
use std::path::PathBuf;

use crate::document::Origin;

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
    #[error("cannot parse {input} as YAML (document {document}): {reason}")]
    ParseYaml {
        /// The file, or `<stdin>`.
        input: String,
        /// 1-based index of the document that failed.
        document: usize,
        /// The parser's message: position and kind of error, never the data.
        reason: String,
    },

    /// The input is not valid JSON.
    #[error("cannot parse {input} as JSON (document {document}): {reason}")]
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
        failures.iter().map(|(key, why)| format!("{}: {why}", crate::document::field_path("encryptedData", key))).collect::<Vec<_>>().join(", "),
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
    #[error("cannot parse the kubeconfig {path}: {reason}; pass --namespace to skip it")]
    ParseKubeconfig {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },

    /// `merge --into` was pointed at something it cannot merge into.
    #[error("cannot merge into {path}: {problem}")]
    MergeTarget {
        /// The `--into` file.
        path: PathBuf,
        /// What is wrong with it.
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
            Error::MissingFlag { .. } | Error::NameForManyDocuments { .. } => "usage",
            Error::NoCertificate
            | Error::ReadCertificate { .. }
            | Error::FetchCertificate { .. }
            | Error::ParseCertificate { .. } => "certificate",
            Error::CertificateExpired { .. } => "certificate_expired",
            Error::ReadKey { .. } | Error::ParseKey { .. } => "private_key",
            Error::Seal { .. } => "seal",
            Error::Unseal { .. } => "unseal",
            Error::ReadKubeconfig { .. } | Error::ParseKubeconfig { .. } => "kubeconfig",
            Error::MergeTarget { .. } => "merge_target",
            Error::Render { .. } => "render",
            Error::WriteFile { .. } | Error::OutputPath { .. } | Error::WriteStdout { .. } => {
                "write_output"
            }
        }
    }

    /// The process exit code for this error (see [`EXIT_PROBLEMS`] and [`EXIT_USAGE`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Unseal { .. } => EXIT_PROBLEMS,
            _ => EXIT_USAGE,
        }
    }

    /// Whether this is stdout closed under us (`sealbox seal | head`): a clean exit, not an error.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::WriteStdout { source } if source.kind() == io::ErrorKind::BrokenPipe)
    }

    /// The message with its chain of causes, `: `-separated, as printed by the binary.
    pub fn report(&self) -> String {
        let mut message = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(err) = cause {
            message.push_str(": ");
            message.push_str(&err.to_string());
            cause = err.source();
        }
        message
    }
}
