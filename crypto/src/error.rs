//! The crate's one error type.
//!
//! Display texts name what failed and the object it was about (a file, a Secret), never key
//! material, plaintext or ciphertext. Decryption failures are deliberately coarse: "too short"
//! or "no key could decrypt", never which step failed.

/// The most characters of a rejected text (a scope or fingerprint annotation) an error quotes:
/// enough to recognise it (a fingerprint is 50), never an attacker-sized message.
const MAX_QUOTED_CHARS: usize = 64;

/// `text` as an error quotes it: at most [`MAX_QUOTED_CHARS`] characters, `…` when cut.
pub(crate) fn quoted(text: &str) -> String {
    let mut out: String = text.chars().take(MAX_QUOTED_CHARS).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in sealbox-crypto.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Text that looked like PEM could not be decoded.
    #[error("{origin}: invalid PEM: {reason}")]
    ParsePem {
        /// Where the PEM came from (a file name, a Secret).
        origin: String,
        /// What was wrong, without the data itself.
        reason: String,
    },

    /// The input holds no PEM block at all.
    #[error("{origin}: no PEM block found (expected {expected})")]
    NoPemBlock {
        /// Where the input came from.
        origin: String,
        /// The PEM labels that would have been accepted.
        expected: &'static str,
    },

    /// The input holds PEM blocks, but none with a label this operation accepts.
    #[error("{origin}: unsupported PEM block \"{label}\" (expected {expected})")]
    UnsupportedPemLabel {
        /// Where the input came from.
        origin: String,
        /// The first label found.
        label: String,
        /// The PEM labels that would have been accepted.
        expected: &'static str,
    },

    /// A password-protected PEM key; Sealbox reads only unencrypted keys.
    #[error(
        "{origin}: the private key is encrypted; decrypt it first (e.g. `openssl rsa -in KEY -out KEY.plain`)"
    )]
    EncryptedPem {
        /// Where the key came from.
        origin: String,
    },

    /// DER that should hold an RSA public key does not, or the key is unacceptable.
    #[error("{origin}: not an acceptable RSA public key ({reason})")]
    ParsePublicKey {
        /// Where the key came from.
        origin: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// DER that should hold an RSA private key does not, or the key is unacceptable.
    #[error("{origin}: not an acceptable RSA private key ({reason})")]
    ParsePrivateKey {
        /// Where the key came from.
        origin: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// DER that should hold an X.509 certificate does not.
    #[error("{origin}: not a valid X.509 certificate: {reason}")]
    ParseCertificate {
        /// Where the certificate came from.
        origin: String,
        /// Why it was rejected.
        reason: String,
    },

    /// The certificate's NotAfter lies in the past.
    #[error(
        "the sealing certificate expired on {not_after}; fetch the current one from the controller"
    )]
    CertificateExpired {
        /// NotAfter as an RFC 3339 timestamp (UTC).
        not_after: String,
    },

    /// A key Secret's certificate belongs to another key.
    #[error(
        "{origin}: tls.crt does not belong to tls.key (certificate key {certificate}, private key {private_key})"
    )]
    CertificateKeyMismatch {
        /// The key Secret.
        origin: String,
        /// Fingerprint of the certificate's public key.
        certificate: String,
        /// Fingerprint of the private key.
        private_key: String,
    },

    /// Only 2048, 3072 and 4096-bit keys are generated.
    #[error("unsupported RSA key size {bits} (expected 2048, 3072 or 4096)")]
    UnsupportedKeySize {
        /// The size asked for.
        bits: usize,
    },

    /// aws-lc-rs could not generate a key.
    #[error("generating an RSA-{bits} key failed")]
    KeyGeneration {
        /// The size asked for.
        bits: usize,
    },

    /// Building or signing the self-signed certificate failed.
    #[error("creating the self-signed certificate failed: {reason}")]
    CreateCertificate {
        /// Why.
        reason: String,
    },

    /// Serializing a private key failed.
    #[error("encoding the private key failed")]
    EncodePrivateKey,

    /// Sealing a value failed (random source or encryption).
    #[error("sealing a value failed")]
    Seal,

    /// The sealed value is shorter than its own header says.
    #[error("sealed data is too short")]
    TooShort,

    /// No key could decrypt the value (wrong key, wrong scope or name, or tampered data).
    #[error("no key could decrypt secret")]
    NoKeyCouldDecrypt,

    /// An input passed one of the crate's bounds (size, count); nothing past it was parsed.
    #[error("{origin}: {what} is limited to {limit}; this input has more")]
    LimitExceeded {
        /// Where the input came from.
        origin: String,
        /// What is counted, e.g. "the input (bytes)", "PEM blocks".
        what: &'static str,
        /// The bound.
        limit: usize,
    },

    /// A key file or manifest could not be read as YAML or JSON.
    #[error("{origin}: {reason}")]
    ParseManifest {
        /// Where the manifest came from.
        origin: String,
        /// What was wrong (position and kind of error, never the data).
        reason: String,
    },

    /// A manifest was readable but is not a usable key Secret.
    #[error("{origin}: {object}: {reason}")]
    InvalidKeySecret {
        /// Where the manifest came from.
        origin: String,
        /// Which object in it (`Secret kube-system/name`, `items[2]`).
        object: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The input holds no private key.
    #[error("{origin}: no private key found (expected PEM, a key Secret or a List of them)")]
    NoPrivateKey {
        /// Where the input came from.
        origin: String,
    },

    /// Rendering a key Secret manifest failed.
    #[error("rendering the key Secret manifest failed")]
    RenderKeySecret {
        /// The serializer's error.
        #[source]
        source: serde_norway::Error,
    },

    /// A scope name other than `strict`, `namespace-wide` or `cluster-wide`.
    #[error("unknown scope {value:?} (expected strict, namespace-wide or cluster-wide)")]
    ParseScope {
        /// The rejected text.
        value: String,
    },

    /// A multi-recipient (age) value whose framing is broken: truncated, a malformed or refused
    /// stanza, a payload without its scope line. Says which part, never the data.
    #[error("age value: {reason}")]
    AgeMalformed {
        /// What is wrong.
        reason: String,
    },

    /// None of the keys or identities tried is a recipient of the age value.
    #[error(
        "no key could decrypt secret: this age value is not sealed for these keys (its recipients: {recipients})"
    )]
    AgeNotARecipient {
        /// A bounded summary of the value's recipient stanzas (types, ssh-rsa key tags).
        recipients: String,
    },

    /// An age value decrypted, but it is bound to another Secret than the one asked for.
    #[error(
        "the value is sealed for {sealed}, not for {expected}: a value copied into another \
         SealedSecret is refused; re-seal it for this one"
    )]
    ScopeMismatch {
        /// The scope and label bound inside the value (quoted, bounded).
        sealed: String,
        /// The scope and label the SealedSecret asks for.
        expected: String,
    },

    /// A scope that cannot be bound into an age value (empty or unusual names).
    #[error("cannot bind {scope} scope to {what}: {reason}")]
    InvalidBinding {
        /// The scope.
        scope: crate::Scope,
        /// The name or namespace (quoted, bounded).
        what: String,
        /// Why.
        reason: &'static str,
    },

    /// Sealing a multi-recipient value without any recipient.
    #[error(
        "no recipients: a multi-recipient value needs at least one certificate or age recipient"
    )]
    NoRecipients,

    /// An age recipient string that cannot be used.
    #[error("age recipient {value:?}: {reason}")]
    ParseAgeRecipient {
        /// The rejected text (bounded).
        value: String,
        /// Why.
        reason: &'static str,
    },

    /// An age identity file that cannot be used.
    #[error("{origin}: {reason}")]
    ParseAgeIdentity {
        /// Where the identity came from.
        origin: String,
        /// Why (never the key).
        reason: String,
    },

    /// A fingerprint that is not `SHA256:` followed by 43 characters of base64.
    #[error("invalid key fingerprint {value:?} (expected SHA256:<base64 of 32 bytes>)")]
    ParseFingerprint {
        /// The rejected text.
        value: String,
    },
}

impl Error {
    /// A short, stable, low-cardinality name for metrics labels and logs.
    pub fn category(&self) -> &'static str {
        match self {
            Error::ParsePem { .. }
            | Error::NoPemBlock { .. }
            | Error::UnsupportedPemLabel { .. }
            | Error::EncryptedPem { .. } => "pem",
            Error::ParsePublicKey { .. } => "public_key",
            Error::ParsePrivateKey { .. } | Error::EncodePrivateKey => "private_key",
            Error::ParseCertificate { .. } | Error::CreateCertificate { .. } => "certificate",
            Error::CertificateExpired { .. } => "certificate_expired",
            Error::CertificateKeyMismatch { .. } => "certificate_mismatch",
            Error::UnsupportedKeySize { .. } | Error::KeyGeneration { .. } => "key_generation",
            Error::Seal => "seal",
            Error::TooShort => "too_short",
            Error::NoKeyCouldDecrypt => "no_key",
            Error::ParseManifest { .. }
            | Error::InvalidKeySecret { .. }
            | Error::NoPrivateKey { .. }
            | Error::RenderKeySecret { .. } => "key_secret",
            Error::ParseScope { .. } => "scope",
            Error::LimitExceeded { .. } => "limit",
            Error::ParseFingerprint { .. } => "fingerprint",
            Error::AgeMalformed { .. } => "age_format",
            Error::AgeNotARecipient { .. } => "no_key",
            Error::ScopeMismatch { .. } | Error::InvalidBinding { .. } => "scope_mismatch",
            Error::NoRecipients | Error::ParseAgeRecipient { .. } => "age_recipient",
            Error::ParseAgeIdentity { .. } => "age_identity",
        }
    }
}
