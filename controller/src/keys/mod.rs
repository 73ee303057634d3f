//! Sealing keys: the immutable snapshot reconciles unseal with ([`Keys`]), the shared registry
//! that swaps snapshots ([`registry`]), which Secrets may be keys ([`trust`]), and the IO that
//! loads, watches, generates and renews the key Secrets ([`lifecycle`]).

pub mod lifecycle;
pub mod registry;
pub mod trust;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use aws_lc_rs::{hkdf, hmac};
use k8s_openapi::api::core::v1::Secret;
use sealbox_crypto::key_order::{self, KeyAge, KeyOrder};
use sealbox_crypto::{Certificate, Fingerprint, KeyPair, PrivateKey, RsaKeyRing};
use zeroize::Zeroize as _;

pub use registry::KeyRegistry;

use sealbox_crypto::key_secret::{TLS_CERT_KEY, TLS_PRIVATE_KEY_KEY};

/// The legacy key Secret Bitnami's first releases created, loaded whatever its labels.
pub const LEGACY_KEY_SECRET: &str = sealbox_crypto::key_secret::DEFAULT_KEY_PREFIX;

/// One sealing key as loaded from its key Secret. `Debug` shows the fingerprint only.
#[derive(Clone)]
pub struct KeyEntry {
    /// The key Secret it came from.
    pub secret_name: String,
    /// The key Secret's creationTimestamp (`None` for a key not read from the API).
    pub created: Option<SystemTime>,
    /// The private key and its certificate.
    pub pair: KeyPair,
}

impl KeyEntry {
    /// Reads a key Secret (`tls.key` PKCS#1 or PKCS#8, `tls.crt`), refusing a certificate made
    /// for another key. The Secret's data is wiped once read.
    pub fn from_secret(mut secret: Secret) -> Result<KeyEntry, sealbox_crypto::Error> {
        let name = secret.metadata.name.clone().unwrap_or_default();
        let created = secret
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|time| SystemTime::from(time.0));
        let origin = format!(
            "key Secret {}/{}",
            secret.metadata.namespace.as_deref().unwrap_or_default(),
            name
        );
        let parsed = (|| {
            let data = secret.data.as_ref();
            let key = data
                .and_then(|d| d.get(TLS_PRIVATE_KEY_KEY))
                .map(|v| v.0.as_slice());
            let cert = data
                .and_then(|d| d.get(TLS_CERT_KEY))
                .map(|v| v.0.as_slice());
            let private_key = PrivateKey::from_pem_with_origin(key.unwrap_or_default(), &origin)?;
            let certificate = Certificate::from_pem_with_origin(cert.unwrap_or_default(), &origin)?;
            KeyPair::new(private_key, certificate)
        })();
        wipe_secret_data(&mut secret);
        Ok(KeyEntry {
            secret_name: name,
            created,
            pair: parsed?,
        })
    }

    /// The key's fingerprint.
    pub fn fingerprint(&self) -> &Fingerprint {
        self.pair.fingerprint()
    }

    /// The private key.
    pub fn private_key(&self) -> &PrivateKey {
        &self.pair.private_key
    }

    /// The certificate sealers use.
    pub fn certificate(&self) -> &Certificate {
        &self.pair.certificate
    }

    /// The certificate's NotBefore: the newest key seals.
    pub fn not_before(&self) -> SystemTime {
        self.pair.certificate.not_before()
    }

    /// What [`key_order`] decides the sealing key by.
    pub fn age(&self) -> KeyAge<'_> {
        KeyAge {
            not_before: self.not_before(),
            created: self.created,
            secret_name: &self.secret_name,
        }
    }
}

impl fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyEntry")
            .field("secret_name", &self.secret_name)
            .field("fingerprint", &self.fingerprint().to_string())
            .finish_non_exhaustive()
    }
}

/// Overwrites every value of a Secret's `data` and `stringData` before it is dropped.
pub fn wipe_secret_data(secret: &mut Secret) {
    if let Some(data) = secret.data.as_mut() {
        data.values_mut().for_each(|v| v.0.zeroize());
    }
    if let Some(data) = secret.string_data.as_mut() {
        data.values_mut().for_each(|v| v.zeroize());
    }
}

/// Counts RSA private-key operations across every snapshot of one registry.
#[derive(Debug, Default)]
pub struct PrivateKeyOps(AtomicU64);

impl PrivateKeyOps {
    /// Records one private-key operation.
    pub fn record(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Operations so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// An immutable set of sealing keys, newest first (by certificate NotBefore).
///
/// Every key unseals; the first one seals. Reconciles hold an `Arc<Keys>` for the duration of
/// one unseal, so a concurrent reload never changes the keys under them.
#[derive(Clone, Default)]
pub struct Keys {
    entries: Vec<KeyEntry>,
    /// Each entry's [`authorship_key`], in the same order.
    authorship: Vec<hmac::Key>,
    by_fingerprint: HashMap<Fingerprint, usize>,
    /// The same keys (same positions) indexed by their age `ssh-rsa` stanza tag, for
    /// multi-recipient values.
    ring: RsaKeyRing,
    ops: Arc<PrivateKeyOps>,
}

/// HKDF salt and info of [`authorship_key`]: a key derived for this purpose only.
const AUTHORSHIP_SALT: &[u8] = b"sealbox.dev/authorship";
const AUTHORSHIP_INFO: &[u8] = b"secret-proof-v1";

/// The HMAC-SHA256 key that proves a Secret was written by the holder of `private` (see
/// [`crate::authorship`]): HKDF-SHA256 over the private key's PKCS#1 encoding. Every replica
/// that loads the key derives the same one, a restart too; nobody without the private key can,
/// and the HMAC key reveals nothing of the RSA key it came from.
fn authorship_key(private: &PrivateKey) -> hmac::Key {
    let pkcs1 = private.to_pkcs1_pem();
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, AUTHORSHIP_SALT).extract(pkcs1.as_bytes());
    match prk.expand(&[AUTHORSHIP_INFO], hmac::HMAC_SHA256) {
        Ok(okm) => hmac::Key::from(okm),
        // HKDF refuses only outputs longer than 255 hash lengths; this one is one.
        Err(_) => unreachable!("HKDF-SHA256 yields a 32-byte key"),
    }
}

impl Keys {
    /// Orders `entries` newest first by certificate NotBefore ([`key_order`]) and drops
    /// duplicates of the same key (a key may be stored twice, e.g. as the legacy Secret and as
    /// a labelled copy).
    pub fn new(entries: Vec<KeyEntry>, ops: Arc<PrivateKeyOps>) -> Keys {
        Keys::ordered(entries, ops, KeyOrder::CertNotBefore)
    }

    /// Like [`Keys::new`], newest first by `order` (--key-order-priority).
    pub fn ordered(mut entries: Vec<KeyEntry>, ops: Arc<PrivateKeyOps>, order: KeyOrder) -> Keys {
        key_order::sort_newest_first_by(order, &mut entries, KeyEntry::age);
        let mut by_fingerprint = HashMap::with_capacity(entries.len());
        let mut unique = Vec::with_capacity(entries.len());
        for entry in entries {
            if !by_fingerprint.contains_key(entry.fingerprint()) {
                by_fingerprint.insert(entry.fingerprint().clone(), unique.len());
                unique.push(entry);
            }
        }
        let ring = RsaKeyRing::new(unique.iter().map(|e| e.private_key().clone()));
        Keys {
            authorship: unique
                .iter()
                .map(|e| authorship_key(e.private_key()))
                .collect(),
            entries: unique,
            by_fingerprint,
            ring,
            ops,
        }
    }

    /// The keys, newest first.
    pub fn entries(&self) -> &[KeyEntry] {
        &self.entries
    }

    /// The key new values are sealed with: the first, as [`key_order`] sorted them.
    pub fn sealing_key(&self) -> Option<&KeyEntry> {
        self.entries.first()
    }

    /// Whether no key is loaded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many keys are loaded.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The position (newest = 0) of the key with this fingerprint.
    pub fn position(&self, fingerprint: &Fingerprint) -> Option<usize> {
        self.by_fingerprint.get(fingerprint).copied()
    }

    /// The key that proves authorship of Secrets written with the newest key, and that key's
    /// fingerprint (see [`crate::authorship`]).
    pub fn newest_authorship_key(&self) -> Option<(&Fingerprint, &hmac::Key)> {
        Some((
            self.entries.first()?.fingerprint(),
            self.authorship.first()?,
        ))
    }

    /// The key that proves authorship under the key with this fingerprint, if it is loaded.
    pub fn authorship_key(&self, fingerprint: &Fingerprint) -> Option<&hmac::Key> {
        self.authorship.get(self.position(fingerprint)?)
    }

    /// The fingerprints, newest first.
    pub fn fingerprints(&self) -> Vec<Fingerprint> {
        self.entries
            .iter()
            .map(|e| e.fingerprint().clone())
            .collect()
    }

    /// The keys indexed by age stanza tag; positions are those of [`Keys::entries`].
    pub fn ring(&self) -> &RsaKeyRing {
        &self.ring
    }

    /// The private-key operation counter shared by every snapshot of the registry.
    pub fn ops(&self) -> &PrivateKeyOps {
        &self.ops
    }

    /// Whether both snapshots hold the same keys in the same order.
    pub fn same_keys(&self, other: &Keys) -> bool {
        self.entries.len() == other.entries.len()
            && self
                .entries
                .iter()
                .zip(&other.entries)
                .all(|(a, b)| a.fingerprint() == b.fingerprint())
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.entries).finish()
    }
}

/// Test keys, generated once per test binary (2048-bit: the size does not matter here).
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::{Arc, OnceLock};
    use std::time::{Duration, SystemTime};

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use sealbox_crypto::KeyPair;

    use super::{KeyEntry, Keys, PrivateKeyOps};

    /// Twelve key pairs, newest first, an hour apart.
    pub(crate) fn pairs() -> &'static [KeyPair] {
        static PAIRS: OnceLock<Vec<KeyPair>> = OnceLock::new();
        PAIRS.get_or_init(|| {
            let now = SystemTime::now();
            (0..12u64)
                .map(|i| {
                    KeyPair::generate_with_bits(2048, "test", now - Duration::from_secs(3600 * i))
                        .expect("key generation")
                })
                .collect()
        })
    }

    /// A registry snapshot of the newest `n` test keys with a fresh operation counter.
    pub(crate) fn keys(n: usize) -> Keys {
        keys_of(&(0..n).collect::<Vec<_>>())
    }

    /// A registry snapshot of the test keys at `positions` (another cluster's controller).
    pub(crate) fn keys_of(positions: &[usize]) -> Keys {
        let entries = positions
            .iter()
            .map(|&i| KeyEntry {
                secret_name: format!("sealed-secrets-key{i}"),
                created: None,
                pair: pairs()[i].clone(),
            })
            .collect();
        Keys::new(entries, Arc::new(PrivateKeyOps::default()))
    }

    /// Seals `plaintext` as one multi-recipient (age) value for the test keys at `clusters`
    /// and the age recipients `age`, bound to `label`'s scope; base64 as in `encryptedData`.
    pub(crate) fn seal_age(
        clusters: &[usize],
        age: &[String],
        plaintext: &[u8],
        label: &[u8],
    ) -> String {
        let mut recipients = sealbox_crypto::Recipients::new();
        for &i in clusters {
            recipients.add_rsa(pairs()[i].certificate.public_key().clone());
        }
        for recipient in age {
            recipients.add_age(recipient).expect("age recipient");
        }
        let binding = sealbox_crypto::Binding::from_label(label).expect("label");
        let value =
            sealbox_crypto::age_value::seal(&recipients, &binding, plaintext).expect("seal");
        STANDARD.encode(value)
    }

    /// Seals `plaintext` for `pair` with `label`, base64 as in `encryptedData`.
    pub(crate) fn seal(pair: &KeyPair, plaintext: &[u8], label: &[u8]) -> String {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let sealed = sealbox_crypto::seal(&rng, pair.certificate.public_key(), plaintext, label)
            .expect("seal");
        STANDARD.encode(sealed)
    }

    #[test]
    fn keys_are_ordered_newest_first() {
        let keys = keys(3);
        assert_eq!(
            keys.sealing_key().map(|k| k.fingerprint()),
            Some(pairs()[0].fingerprint())
        );
        let fingerprints = keys.fingerprints();
        assert_eq!(fingerprints.len(), 3);
        assert_eq!(keys.position(pairs()[2].fingerprint()), Some(2));
    }

    #[test]
    fn duplicate_keys_are_loaded_once() {
        let pair = &pairs()[0];
        let entry = |name: &str| KeyEntry {
            secret_name: name.to_owned(),
            created: None,
            pair: pair.clone(),
        };
        let keys = Keys::new(
            vec![entry("sealed-secrets-key"), entry("sealed-secrets-keyabc")],
            Arc::default(),
        );
        assert_eq!(keys.len(), 1);
    }

    #[test]
    fn the_key_order_priority_picks_the_sealing_key() {
        use sealbox_crypto::key_order::KeyOrder;
        // pairs()[0] has the newest certificate; pairs()[2]'s Secret was created last (a key
        // restored from a backup).
        let now = SystemTime::now();
        let entries = || {
            [(0, 100), (1, 50), (2, 10)]
                .iter()
                .map(|&(i, age)| KeyEntry {
                    secret_name: format!("sealed-secrets-key{i}"),
                    created: Some(now - Duration::from_secs(age)),
                    pair: pairs()[i].clone(),
                })
                .collect::<Vec<_>>()
        };
        let by_cert = Keys::ordered(entries(), Arc::default(), KeyOrder::CertNotBefore);
        assert_eq!(
            by_cert.sealing_key().map(|k| k.fingerprint()),
            Some(pairs()[0].fingerprint())
        );
        let by_secret = Keys::ordered(entries(), Arc::default(), KeyOrder::SecretCreationTimestamp);
        assert_eq!(
            by_secret.sealing_key().map(|k| k.fingerprint()),
            Some(pairs()[2].fingerprint())
        );
        assert_eq!(by_secret.position(pairs()[0].fingerprint()), Some(2));
    }
}
