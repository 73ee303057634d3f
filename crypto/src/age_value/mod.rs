//! Multi-recipient sealed values: one value that several clusters and offline (break-glass) keys
//! can open, in the standard age format.
//!
//! A value is a binary age v1 file (base64 in `encryptedData`, like Bitnami values) whose
//! recipients are each cluster's RSA sealing key as age's `ssh-rsa` stanza and any number of
//! X25519 `age1…` keys; its payload is a scope line ([`Binding`]) followed by the value. The
//! framing is specified in docs/FORMAT.md. [`crate::ValueFormat`] tells it from a Bitnami value.
//!
//! Bounds: [`MAX_VALUE_LEN`] for the whole value, [`header::MAX_HEADER_LEN`] and
//! [`header::MAX_STANZAS`] for its header, [`MAX_PLAINTEXT_LEN`] for the value inside; each is
//! checked before the work it bounds.

pub mod binding;
pub mod header;
pub mod identity;
pub mod rewrap;
pub mod ssh_rsa;

use std::io::{Read as _, Write as _};

use zeroize::Zeroizing;

use crate::error::{Error, Result, quoted};
use crate::public_key::PublicKey;

pub use binding::Binding;
pub use header::{AGE_MAGIC, Header, RecipientKind};
pub use identity::parse_identity_file;
pub use rewrap::rewrap;
pub use ssh_rsa::RsaKeyRing;

/// The largest value sealed or opened: a Kubernetes Secret holds at most 1 MiB in all.
pub const MAX_PLAINTEXT_LEN: usize = 1024 * 1024;

/// age's payload: a 16-byte nonce, then 64 KiB chunks each with a 16-byte tag.
const NONCE_LEN: usize = 16;
const CHUNK_LEN: usize = 64 * 1024;
const CHUNK_TAG_LEN: usize = 16;

/// The largest age payload: the largest plaintext with its scope line, nonce and chunk tags.
const MAX_PAYLOAD_LEN: usize = NONCE_LEN
    + MAX_PLAINTEXT_LEN
    + binding::MAX_SCOPE_LINE
    + (MAX_PLAINTEXT_LEN + binding::MAX_SCOPE_LINE).div_ceil(CHUNK_LEN) * CHUNK_TAG_LEN;

/// The largest multi-recipient value read (decoded bytes).
pub const MAX_VALUE_LEN: usize = header::MAX_HEADER_LEN + MAX_PAYLOAD_LEN;

/// The prefix of post-quantum age recipients (`mlkem768x25519`, age 1.3). Refused with a clear
/// error until a maintained Rust implementation exists (docs/FORMAT.md, "Post-quantum").
const PQ_RECIPIENT_PREFIX: &str = "age1pq1";

/// Who a multi-recipient value is sealed for.
#[derive(Clone, Default)]
pub struct Recipients {
    rsa: Vec<PublicKey>,
    x25519: Vec<age::x25519::Recipient>,
}

impl Recipients {
    /// No recipients yet.
    pub fn new() -> Recipients {
        Recipients::default()
    }

    /// Adds a cluster's sealing key (its certificate's public key); a key already added is
    /// skipped.
    pub fn add_rsa(&mut self, key: PublicKey) {
        if !self.rsa.contains(&key) {
            self.rsa.push(key);
        }
    }

    /// Adds an age recipient, `age1…`; a recipient already added is skipped.
    pub fn add_age(&mut self, recipient: &str) -> Result<()> {
        let recipient = recipient.trim();
        let refuse = |reason| Error::ParseAgeRecipient {
            value: quoted(recipient),
            reason,
        };
        if recipient.starts_with(PQ_RECIPIENT_PREFIX) {
            return Err(refuse(
                "post-quantum age recipients are not supported yet (see docs/FORMAT.md)",
            ));
        }
        let parsed: age::x25519::Recipient = recipient
            .parse()
            .map_err(|_| refuse("not an age X25519 recipient (age1 followed by 58 characters)"))?;
        if !self
            .x25519
            .iter()
            .any(|r| r.to_string() == parsed.to_string())
        {
            self.x25519.push(parsed);
        }
        Ok(())
    }

    /// The RSA keys, in the order added.
    pub fn rsa(&self) -> &[PublicKey] {
        &self.rsa
    }

    /// The age recipients (`age1…`), in the order added.
    pub fn age(&self) -> Vec<String> {
        self.x25519.iter().map(ToString::to_string).collect()
    }

    /// How many recipients there are.
    pub fn len(&self) -> usize {
        self.rsa.len() + self.x25519.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for Recipients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recipients")
            .field(
                "rsa",
                &self
                    .rsa
                    .iter()
                    .map(PublicKey::fingerprint)
                    .collect::<Vec<_>>(),
            )
            .field("age", &self.age())
            .finish()
    }
}

/// Seals `plaintext` for every recipient, bound to `binding`. The age crate draws the file key,
/// nonce and X25519 ephemerals from the OS, and so do the RSA-OAEP seeds (public-key only).
pub fn seal(recipients: &Recipients, binding: &Binding, plaintext: &[u8]) -> Result<Vec<u8>> {
    if recipients.is_empty() {
        return Err(Error::NoRecipients);
    }
    // The recipients plus age's grease stanza must fit what readers accept.
    if recipients.len() >= header::MAX_STANZAS {
        return Err(Error::LimitExceeded {
            origin: "multi-recipient value".to_owned(),
            what: "recipients",
            limit: header::MAX_STANZAS - 1,
        });
    }
    if plaintext.len() > MAX_PLAINTEXT_LEN {
        return Err(Error::LimitExceeded {
            origin: "multi-recipient value".to_owned(),
            what: "the value (bytes)",
            limit: MAX_PLAINTEXT_LEN,
        });
    }
    let rsa: Vec<ssh_rsa::RsaRecipient<'_>> =
        recipients.rsa.iter().map(ssh_rsa::RsaRecipient).collect();
    let all = rsa
        .iter()
        .map(|r| r as &dyn age::Recipient)
        .chain(recipients.x25519.iter().map(|r| r as &dyn age::Recipient));
    let encryptor = age::Encryptor::with_recipients(all).map_err(|_| Error::Seal)?;
    let payload = binding.frame(plaintext);
    let mut out = Vec::with_capacity(recipients.len() * 800 + payload.len() + 256);
    let mut writer = encryptor.wrap_output(&mut out).map_err(|_| Error::Seal)?;
    writer.write_all(&payload).map_err(|_| Error::Seal)?;
    writer.finish().map_err(|_| Error::Seal)?;
    Ok(out)
}

/// A value opened by a controller's keys.
#[derive(Debug)]
pub struct OpenedWithKeys {
    /// The value (the scope line removed).
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The position in the ring of the key that opened it.
    pub key: usize,
    /// RSA private-key operations spent (1 unless tags collide or the value was tampered with).
    pub operations: usize,
}

/// Opens `value` with the ring's keys, the key chosen by the stanza tags, and refuses it unless
/// it is bound to `expected`.
///
/// On error the operations spent are still reported through `operations`, for the caller's
/// budget and counters.
pub fn open_with_keys(
    ring: &RsaKeyRing,
    value: &[u8],
    expected: &Binding,
    operations: &mut usize,
) -> Result<OpenedWithKeys> {
    let identity = ring.identity();
    let opened = open(&identity, value);
    *operations += identity.operations();
    let (binding, plaintext) = opened?;
    binding.check(expected)?;
    Ok(OpenedWithKeys {
        plaintext,
        key: identity.used().ok_or(Error::NoKeyCouldDecrypt)?,
        operations: identity.operations(),
    })
}

/// Opens `value` with any age identities (a break-glass or developer key file). The binding is
/// returned, not checked: the caller compares it with the Secret it is unsealing.
pub fn open_with_identities(
    identities: &[&dyn age::Identity],
    value: &[u8],
) -> Result<(Binding, Zeroizing<Vec<u8>>)> {
    let many = Identities(identities);
    open(&many, value)
}

/// Several identities as one, so [`open`] takes a single `&dyn Identity`.
struct Identities<'a>(&'a [&'a dyn age::Identity]);

impl age::Identity for Identities<'_> {
    fn unwrap_stanza(
        &self,
        stanza: &age_core::format::Stanza,
    ) -> Option<std::result::Result<age_core::format::FileKey, age::DecryptError>> {
        self.0.iter().find_map(|i| i.unwrap_stanza(stanza))
    }

    fn unwrap_stanzas(
        &self,
        stanzas: &[age_core::format::Stanza],
    ) -> Option<std::result::Result<age_core::format::FileKey, age::DecryptError>> {
        self.0.iter().find_map(|i| i.unwrap_stanzas(stanzas))
    }
}

/// Bounds, header, decryption, scope line: the binding and the value after it.
fn open(identity: &dyn age::Identity, value: &[u8]) -> Result<(Binding, Zeroizing<Vec<u8>>)> {
    if value.len() > MAX_VALUE_LEN {
        return Err(Error::LimitExceeded {
            origin: "age value".to_owned(),
            what: "the value (bytes)",
            limit: MAX_VALUE_LEN,
        });
    }
    let header = header::parse(value)?;
    let payload_len = value.len() - header.len;
    if payload_len < NONCE_LEN + CHUNK_TAG_LEN {
        return Err(Error::AgeMalformed {
            reason: "truncated payload".to_owned(),
        });
    }
    if payload_len > MAX_PAYLOAD_LEN {
        return Err(Error::LimitExceeded {
            origin: "age value".to_owned(),
            what: "the payload (bytes)",
            limit: MAX_PAYLOAD_LEN,
        });
    }
    let decryptor = age::Decryptor::new_buffered(value).map_err(|e| decrypt_error(&e, &header))?;
    let mut reader = decryptor
        .decrypt(std::iter::once(identity))
        .map_err(|e| decrypt_error(&e, &header))?;
    // Sized so it never reallocates (a reallocation would leave plaintext behind).
    let mut payload = Zeroizing::new(Vec::with_capacity(payload_len + 64));
    reader
        .read_to_end(&mut payload)
        .map_err(|_| Error::AgeMalformed {
            reason: "the payload does not authenticate (truncated or altered)".to_owned(),
        })?;
    let (binding, line_len) = binding::Binding::parse_line(&payload)?;
    payload.drain(..line_len);
    Ok((binding, payload))
}

/// The age crate's decryption errors, as coarse as the Bitnami format's where they concern keys.
fn decrypt_error(error: &age::DecryptError, header: &Header) -> Error {
    match error {
        age::DecryptError::NoMatchingKeys => Error::AgeNotARecipient {
            recipients: header.summary(),
        },
        age::DecryptError::InvalidHeader | age::DecryptError::UnknownFormat => {
            Error::AgeMalformed {
                reason: "the age crate refused the header".to_owned(),
            }
        }
        age::DecryptError::Io(_) => Error::AgeMalformed {
            reason: "truncated header or payload".to_owned(),
        },
        // DecryptionFailed, KeyDecryptionFailed, InvalidMac and anything newer.
        _ => Error::NoKeyCouldDecrypt,
    }
}
