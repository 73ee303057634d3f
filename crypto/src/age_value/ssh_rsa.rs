//! age's standard `ssh-rsa` recipient stanza over aws-lc-rs, both ways.
//!
//! ```text
//! -> ssh-rsa <base64 of the first 4 bytes of the key's SHA-256 fingerprint>
//! <base64 of RSA-OAEP(SHA-256, MGF1-SHA-256, label "age-encryption.org/v1/ssh-rsa")(file key)>
//! ```
//!
//! The age crate's own `ssh` feature unwraps this stanza with the `rsa` crate's private-key code,
//! which is not constant-time (RUSTSEC-2023-0071); Sealbox never enables it. [`RsaKeyRing`]
//! implements [`age::Identity`] with aws-lc-rs and picks keys by the stanza's tag in O(1).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::fmt;

use age::{DecryptError, EncryptError};
use age_core::format::{FILE_KEY_BYTES, FileKey, Stanza};
use age_core::secrecy::ExposeSecret as _;
use aws_lc_rs::rsa::OAEP_SHA256_MGF1SHA256;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use zeroize::Zeroizing;

use crate::private_key::PrivateKey;
use crate::public_key::PublicKey;

/// The stanza type.
pub(crate) const SSH_RSA_TAG: &str = "ssh-rsa";
/// The RSA-OAEP label age binds the file key to. No Bitnami scope label can equal it (names
/// cannot hold `/`), so a stanza body never opens as a Bitnami value, nor the reverse.
const OAEP_LABEL: &[u8] = b"age-encryption.org/v1/ssh-rsa";

/// A cluster's sealing key as an age recipient.
pub(crate) struct RsaRecipient<'a>(pub(crate) &'a PublicKey);

impl age::Recipient for RsaRecipient<'_> {
    fn wrap_file_key(
        &self,
        file_key: &FileKey,
    ) -> Result<(Vec<Stanza>, HashSet<String>), EncryptError> {
        let key = self.0;
        let mut body = vec![0u8; key.modulus_len()];
        key.encrypt_session_key(
            &crate::random::OsRandom,
            file_key.expose_secret(),
            OAEP_LABEL,
            &mut body,
        )
        .map_err(|_| EncryptError::Io(std::io::Error::other("RSA-OAEP encryption failed")))?;
        let stanza = Stanza {
            tag: SSH_RSA_TAG.to_owned(),
            args: vec![STANDARD_NO_PAD.encode(key.fingerprint().age_tag())],
            body,
        };
        // No labels: ssh-rsa mixes with any classic recipient (X25519).
        Ok((vec![stanza], HashSet::new()))
    }
}

/// A controller's RSA private keys, indexed by their age stanza tag.
///
/// Positions are the order the keys were given in (the controller's newest-first order).
#[derive(Clone, Default)]
pub struct RsaKeyRing {
    keys: Vec<PrivateKey>,
    by_tag: HashMap<[u8; 4], Vec<usize>>,
}

impl RsaKeyRing {
    /// Indexes `keys`; their positions in this order are what [`RsaKeyRing::identity`] reports.
    pub fn new(keys: impl IntoIterator<Item = PrivateKey>) -> RsaKeyRing {
        let keys: Vec<PrivateKey> = keys.into_iter().collect();
        let mut by_tag: HashMap<[u8; 4], Vec<usize>> = HashMap::with_capacity(keys.len());
        for (position, key) in keys.iter().enumerate() {
            by_tag
                .entry(key.fingerprint().age_tag())
                .or_default()
                .push(position);
        }
        RsaKeyRing { keys, by_tag }
    }

    /// How many keys the ring holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the ring holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether a key with this stanza tag is in the ring.
    pub fn has_tag(&self, tag: &[u8; 4]) -> bool {
        self.by_tag.contains_key(tag)
    }

    /// An [`age::Identity`] over the ring that records which key worked and how many
    /// private-key operations it spent.
    pub(crate) fn identity(&self) -> RingIdentity<'_> {
        RingIdentity {
            ring: self,
            used: Cell::new(None),
            operations: Cell::new(0),
            file_key: RefCell::new(None),
        }
    }
}

impl fmt::Debug for RsaKeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(PrivateKey::fingerprint))
            .finish()
    }
}

/// The ring during one decryption.
pub(crate) struct RingIdentity<'r> {
    ring: &'r RsaKeyRing,
    used: Cell<Option<usize>>,
    operations: Cell<usize>,
    /// A copy of the file key it unwrapped, for re-wrapping; wiped with the identity.
    file_key: RefCell<Option<Zeroizing<[u8; FILE_KEY_BYTES]>>>,
}

impl RingIdentity<'_> {
    /// The position of the key that unwrapped the file key.
    pub(crate) fn used(&self) -> Option<usize> {
        self.used.get()
    }

    /// RSA private-key operations spent.
    pub(crate) fn operations(&self) -> usize {
        self.operations.get()
    }

    /// The file key it unwrapped, if it did.
    pub(crate) fn take_file_key(&self) -> Option<Zeroizing<[u8; FILE_KEY_BYTES]>> {
        self.file_key.borrow_mut().take()
    }

    fn unwrap_with(&self, position: usize, body: &[u8]) -> Option<FileKey> {
        self.operations.set(self.operations.get() + 1);
        let oaep = self.ring.keys[position].oaep();
        if body.len() != oaep.key_size_bytes() {
            return None;
        }
        let mut out = Zeroizing::new(vec![0u8; oaep.min_output_size()]);
        let plain = oaep
            .decrypt(
                &OAEP_SHA256_MGF1SHA256,
                body,
                &mut out[..],
                Some(OAEP_LABEL),
            )
            .ok()?;
        let plain: &[u8; FILE_KEY_BYTES] = (&*plain).try_into().ok()?;
        *self.file_key.borrow_mut() = Some(Zeroizing::new(*plain));
        Some(FileKey::init_with_mut(|key| key.copy_from_slice(plain)))
    }
}

impl age::Identity for RingIdentity<'_> {
    /// `None` unless the stanza is ssh-rsa with a tag of one of the ring's keys; then the file
    /// key, or an error when no key with that tag opens it (tampered, or a 32-bit tag
    /// collision with a key of another cluster).
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, DecryptError>> {
        if stanza.tag != SSH_RSA_TAG {
            return None;
        }
        let [arg] = stanza.args.as_slice() else {
            return None;
        };
        let tag: [u8; 4] = STANDARD_NO_PAD.decode(arg).ok()?.try_into().ok()?;
        let positions = self.ring.by_tag.get(&tag)?;
        for &position in positions {
            if let Some(file_key) = self.unwrap_with(position, &stanza.body) {
                self.used.set(Some(position));
                return Some(Ok(file_key));
            }
        }
        Some(Err(DecryptError::DecryptionFailed))
    }

    /// Unlike age's default, a stanza that fails does not stop the others: a file sealed for two
    /// clusters whose tags collide still opens with the right one.
    fn unwrap_stanzas(&self, stanzas: &[Stanza]) -> Option<Result<FileKey, DecryptError>> {
        let mut failed = None;
        for stanza in stanzas {
            match self.unwrap_stanza(stanza) {
                Some(Ok(file_key)) => return Some(Ok(file_key)),
                Some(Err(e)) => failed = Some(Err(e)),
                None => {}
            }
        }
        failed
    }
}
