//! Private keys held by the CLI (`--key` files, encrypted key backups, the cluster's key Secrets) and
//! which of them a SealedSecret's values are sealed to.
//!
//! Keys are tried the way the controller tries them: the one the `sealbox.dev/sealing-key`
//! hint names first, then the others in order (newest first when the caller sorted them), so a
//! value costs one private-key operation in the common case.

use std::collections::BTreeSet;
use std::path::PathBuf;

use sealbox_crds::SealedSecret;
use sealbox_crypto::{Fingerprint, PrivateKey};
use zeroize::Zeroizing;

use crate::backup::{self, Openers};
use crate::bounded;
use crate::error::{Error, Result};
use crate::secret::decode_base64;

/// Reads every key from every `--key` file, in order. A file may be the age-encrypted backup
/// `keys backup` writes: it is decrypted with `openers` (passphrase or identities) first, so
/// the backup itself is the offline recovery path.
pub fn load_keys(paths: &[PathBuf], openers: &Openers<'_>) -> Result<Vec<PrivateKey>> {
    let mut keys = Vec::new();
    for path in paths {
        // An armored backup is larger than the keys it holds; the plaintext bound applies to
        // what it decrypts to, and sealbox-crypto bounds a plaintext key file itself.
        let bytes =
            bounded::read_bounded(path, bounded::BACKUP_FILE).map_err(|source| Error::ReadKey {
                path: path.clone(),
                source,
            })?;
        let bytes = if backup::is_age(&bytes) {
            backup::decrypt(&bytes, path, openers)?
        } else {
            bytes
        };
        let found = sealbox_crypto::parse_private_keys(&bytes, &path.display().to_string())
            .map_err(|source| Error::ParseKey {
                path: path.clone(),
                source: Box::new(source),
            })?;
        tracing::debug!(path = %path.display(), keys = found.len(), "loaded private keys");
        keys.extend(found);
    }
    Ok(keys)
}

/// `keys` in order, the one `hint` names moved first: the controller's order, so that a value
/// sealed by Sealbox costs one private-key operation however many keys are held.
pub fn hinted_first<'k>(keys: &'k [PrivateKey], hint: Option<&Fingerprint>) -> Vec<&'k PrivateKey> {
    let (hinted, others): (Vec<&PrivateKey>, Vec<&PrivateKey>) =
        keys.iter().partition(|k| Some(k.fingerprint()) == hint);
    hinted.into_iter().chain(others).collect()
}

/// Private keys, in the order to try them after the hinted one.
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    keys: Vec<PrivateKey>,
}

/// Which keys the values of one SealedSecret are sealed to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// The keys that decrypt at least one value.
    pub keys: BTreeSet<Fingerprint>,
    /// Values no key here decrypts (sealed to a key not held, for another name, or damaged).
    pub undecryptable: Vec<String>,
}

impl Keyring {
    /// A keyring trying `keys` in this order (after the hinted key).
    pub fn new(keys: Vec<PrivateKey>) -> Self {
        let mut seen = BTreeSet::new();
        let keys = keys
            .into_iter()
            .filter(|k| seen.insert(k.fingerprint().clone()))
            .collect();
        Keyring { keys }
    }

    /// The same keys indexed by age stanza tag, for multi-recipient values.
    pub fn age_ring(&self) -> sealbox_crypto::RsaKeyRing {
        sealbox_crypto::RsaKeyRing::new(self.keys.iter().cloned())
    }

    /// Whether the keyring holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it holds the key with this fingerprint.
    pub fn contains(&self, fingerprint: &Fingerprint) -> bool {
        self.keys.iter().any(|k| k.fingerprint() == fingerprint)
    }

    /// The keys, the hinted one first.
    fn ordered(&self, hint: Option<&Fingerprint>) -> Vec<&PrivateKey> {
        hinted_first(&self.keys, hint)
    }

    /// Decrypts one base64 value: the plaintext and the key that opened it.
    pub fn open(
        &self,
        encoded: &str,
        label: &[u8],
        hint: Option<&Fingerprint>,
    ) -> Option<(Zeroizing<Vec<u8>>, Fingerprint)> {
        let ciphertext = decode_base64(encoded)?;
        let ordered = self.ordered(hint);
        let (plaintext, index) =
            sealbox_crypto::unseal_with_keys(ordered.iter().copied(), &ciphertext, label).ok()?;
        let key = ordered.get(index)?;
        Some((plaintext, key.fingerprint().clone()))
    }

    /// Which keys decrypt the values of `sealed` (every value is tried, the hinted key first,
    /// then the key that opened the previous value).
    pub fn usage(&self, sealed: &SealedSecret) -> Usage {
        let mut hint = sealed.sealing_key_hint();
        let label = sealed.label();
        let mut usage = Usage::default();
        for (name, value) in &sealed.spec.encrypted_data {
            match self.open(value, &label, hint.as_ref()) {
                Some((_, fingerprint)) => {
                    hint = Some(fingerprint.clone());
                    usage.keys.insert(fingerprint);
                }
                None => usage.undecryptable.push(name.clone()),
            }
        }
        usage
    }

    /// The key one value of `sealed` (the first that decrypts) is sealed to: a cheap guess at
    /// the key of a SealedSecret without a hint.
    pub fn first_key(&self, sealed: &SealedSecret) -> Option<Fingerprint> {
        let label = sealed.label();
        sealed
            .spec
            .encrypted_data
            .values()
            .find_map(|value| self.open(value, &label, None).map(|(_, f)| f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three different keys from the committed fixtures.
    fn keys() -> Vec<PrivateKey> {
        let files: [(&str, &[u8]); 4] = [
            (
                "keys-list.yaml",
                include_bytes!("../../crypto/tests/fixtures/keys-list.yaml"),
            ),
            (
                "key-pkcs1.pem",
                include_bytes!("../../crypto/tests/fixtures/key-pkcs1.pem"),
            ),
            (
                "other-key.pem",
                include_bytes!("../tests/cmd/fixtures.in/other-key.pem"),
            ),
            (
                "sealing-key.yaml",
                include_bytes!("../../examples/sealing-key.yaml"),
            ),
        ];
        let mut seen = BTreeSet::new();
        let keys: Vec<PrivateKey> = files
            .iter()
            .flat_map(|(name, bytes)| sealbox_crypto::parse_private_keys(bytes, name).unwrap())
            .filter(|k| seen.insert(k.fingerprint().clone()))
            .take(3)
            .collect();
        assert_eq!(keys.len(), 3, "the fixtures hold three different keys");
        keys
    }

    #[test]
    fn the_hinted_key_comes_first_and_the_others_keep_their_order() {
        let keys = keys();
        let fingerprints: Vec<Fingerprint> = keys.iter().map(|k| k.fingerprint().clone()).collect();
        let order = |hint: Option<&Fingerprint>| -> Vec<Fingerprint> {
            hinted_first(&keys, hint)
                .into_iter()
                .map(|k| k.fingerprint().clone())
                .collect()
        };
        assert_eq!(order(None), fingerprints);
        assert_eq!(
            order(Some(&fingerprints[2])),
            [
                fingerprints[2].clone(),
                fingerprints[0].clone(),
                fingerprints[1].clone()
            ]
        );
        let held_nowhere: Fingerprint = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            .parse()
            .unwrap();
        assert_eq!(order(Some(&held_nowhere)), fingerprints);
    }
}
