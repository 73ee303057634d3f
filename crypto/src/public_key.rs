//! RSA public keys: the sealing side.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey};

use crate::certificate::Certificate;
use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::pem;
use crate::random::{RsaRng, SealRandom};

/// The largest modulus the sealing side takes: aws-lc-rs accepts RSA keys up to 8192 bits; the
/// `rsa` crate's own default ceiling (4096) would refuse a valid 8192-bit key.
const MAX_MODULUS_BITS: usize = 8192;

/// How many values one key seals through the `rsa` crate before it moves to aws-lc-rs's OAEP.
///
/// The `rsa` crate takes the OAEP seed from the caller's generator, so a short-lived process
/// (`sealbox seal` of a Secret, with [`OsRandom`](crate::OsRandom)) never seeds aws-lc's DRBG:
/// about 30 ms of CPU-jitter sampling, once per process. But its public-key operation is about
/// 11× slower than aws-lc's (0.70 ms against 0.06 ms for RSA-4096, `cargo bench -p
/// sealbox-crypto`), so past about 45 values the seeding pays for itself. A Secret has a few
/// keys; sealing a whole repository or thousands of Secrets has many more.
const SEALS_BEFORE_AWS_LC: usize = 32;

/// PEM labels [`PublicKey::from_pem`] accepts.
const PUBLIC_PEM_LABELS: &str = "CERTIFICATE, PUBLIC KEY or RSA PUBLIC KEY";

/// An RSA public key that seals values. Cheap to clone.
#[derive(Clone)]
pub struct PublicKey {
    inner: Arc<Inner>,
}

struct Inner {
    /// Seals a key's first [`SEALS_BEFORE_AWS_LC`] values (the OAEP seed from the caller's
    /// generator): see [`crate::random`].
    rsa: rsa::RsaPublicKey,
    /// aws-lc-rs's OAEP, for the values after those, and for the labels the `rsa` crate cannot
    /// take (not UTF-8; no scope makes one); it draws its seed from aws-lc's own generator.
    oaep: OaepPublicEncryptingKey,
    /// Values sealed with this key (and its clones) so far in this process.
    sealed: AtomicUsize,
    spki_der: Vec<u8>,
    fingerprint: Fingerprint,
    bits: usize,
    len: usize,
}

impl PublicKey {
    /// Reads the first `CERTIFICATE`, `PUBLIC KEY` (SPKI) or `RSA PUBLIC KEY` (PKCS#1) block.
    ///
    /// A certificate's validity is NOT checked here; use [`Certificate::from_pem`] and
    /// [`Certificate::check_valid_at`] where expiry matters.
    pub fn from_pem(pem: &[u8]) -> Result<PublicKey> {
        PublicKey::from_pem_with_origin(pem, "public key")
    }

    /// Like [`PublicKey::from_pem`]; `origin` (e.g. a file name) prefixes error messages.
    pub fn from_pem_with_origin(pem: &[u8], origin: &str) -> Result<PublicKey> {
        let blocks = pem::parse(pem, origin)?;
        for block in &blocks {
            match block.label.as_str() {
                "CERTIFICATE" => {
                    return Ok(Certificate::from_der_with_origin(&block.der, origin)?
                        .public_key()
                        .clone());
                }
                "PUBLIC KEY" | "RSA PUBLIC KEY" => return PublicKey::from_der(&block.der, origin),
                _ => {}
            }
        }
        Err(match blocks.first() {
            Some(block) => Error::UnsupportedPemLabel {
                origin: origin.to_owned(),
                label: block.label.clone(),
                expected: PUBLIC_PEM_LABELS,
            },
            None => Error::NoPemBlock {
                origin: origin.to_owned(),
                expected: PUBLIC_PEM_LABELS,
            },
        })
    }

    /// Reads a DER `SubjectPublicKeyInfo` or PKCS#1 `RSAPublicKey`.
    pub fn from_der(der: &[u8], origin: &str) -> Result<PublicKey> {
        let rejected = |reason: &'static str| Error::ParsePublicKey {
            origin: origin.to_owned(),
            reason,
        };
        let parsed =
            aws_lc_rs::rsa::PublicKey::from_der(der).map_err(|e| rejected(e.description_()))?;
        let spki = parsed
            .as_der()
            .map_err(|_| rejected("cannot re-encode as SubjectPublicKeyInfo"))?;
        let encrypting =
            PublicEncryptingKey::from_der(spki.as_ref()).map_err(|e| rejected(e.description_()))?;
        PublicKey::from_parts(&parsed, encrypting, spki.as_ref().to_vec())
            .map_err(|()| rejected("unusable for RSA-OAEP"))
    }

    pub(crate) fn from_encrypting_key(encrypting: PublicEncryptingKey) -> Result<PublicKey> {
        let rejected = |reason: &'static str| Error::ParsePublicKey {
            origin: "generated key".to_owned(),
            reason,
        };
        let spki = encrypting
            .as_der()
            .map_err(|_| rejected("cannot encode as SubjectPublicKeyInfo"))?;
        let parsed = aws_lc_rs::rsa::PublicKey::from_der(spki.as_ref())
            .map_err(|e| rejected(e.description_()))?;
        PublicKey::from_parts(&parsed, encrypting, spki.as_ref().to_vec())
            .map_err(|()| rejected("unusable for RSA-OAEP"))
    }

    fn from_parts(
        parsed: &aws_lc_rs::rsa::PublicKey,
        encrypting: PublicEncryptingKey,
        spki_der: Vec<u8>,
    ) -> std::result::Result<PublicKey, ()> {
        let fingerprint = Fingerprint::of_rsa(
            parsed.modulus().big_endian_without_leading_zero(),
            parsed.exponent().big_endian_without_leading_zero(),
        );
        let bits = encrypting.key_size_bits();
        let len = encrypting.key_size_bytes();
        let rsa = rsa::RsaPublicKey::new_with_max_size(
            rsa::BigUint::from_bytes_be(parsed.modulus().big_endian_without_leading_zero()),
            rsa::BigUint::from_bytes_be(parsed.exponent().big_endian_without_leading_zero()),
            MAX_MODULUS_BITS,
        )
        .map_err(|_| ())?;
        let oaep = OaepPublicEncryptingKey::new(encrypting).map_err(|_| ())?;
        Ok(PublicKey {
            inner: Arc::new(Inner {
                rsa,
                oaep,
                sealed: AtomicUsize::new(0),
                spki_der,
                fingerprint,
                bits,
                len,
            }),
        })
    }

    /// The key's fingerprint, `SHA256:…` as `ssh-keygen -lf` prints it.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.inner.fingerprint
    }

    /// Size of the modulus in bits (4096 for Bitnami-compatible keys).
    pub fn modulus_bits(&self) -> usize {
        self.inner.bits
    }

    /// Size of the modulus in bytes: the length of the RSA part of every sealed value.
    pub fn modulus_len(&self) -> usize {
        self.inner.len
    }

    /// The DER `SubjectPublicKeyInfo`.
    pub fn spki_der(&self) -> &[u8] {
        &self.inner.spki_der
    }

    /// PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
    pub fn to_pem(&self) -> String {
        pem::encode("PUBLIC KEY", &self.inner.spki_der).to_string()
    }

    /// RSA-OAEP (SHA-256, MGF1-SHA-256, `label`) of `session_key` into `out`, which is exactly
    /// [`PublicKey::modulus_len`] bytes, by the `rsa` crate for a key's first values and by
    /// aws-lc-rs after them ([`SEALS_BEFORE_AWS_LC`]); the bytes have the same form either way.
    /// Public-key only, so constant time is not needed here (RUSTSEC-2023-0071 concerns the
    /// `rsa` crate's private-key operations, which Sealbox never uses).
    pub(crate) fn encrypt_session_key<R: SealRandom + ?Sized>(
        &self,
        rng: &R,
        session_key: &[u8],
        label: &[u8],
        out: &mut [u8],
    ) -> Result<()> {
        // Counting stops at the bound, so it never wraps back to the slow path.
        let sealed = &self.inner.sealed;
        let first_seals = sealed.load(Ordering::Relaxed) < SEALS_BEFORE_AWS_LC
            && sealed.fetch_add(1, Ordering::Relaxed) < SEALS_BEFORE_AWS_LC;
        let (true, Ok(label)) = (first_seals, std::str::from_utf8(label)) else {
            let written = self
                .inner
                .oaep
                .encrypt(&OAEP_SHA256_MGF1SHA256, session_key, out, Some(label))
                .map_err(|_| Error::Seal)?
                .len();
            return if written == out.len() {
                Ok(())
            } else {
                Err(Error::Seal)
            };
        };
        let mut rng = RsaRng::new(rng);
        let padding = rsa::Oaep::new_with_label::<sha2::Sha256, _>(label);
        let ciphertext = self
            .inner
            .rsa
            .encrypt(&mut rng, padding, session_key)
            .map_err(|_| Error::Seal)?;
        if rng.failed() || ciphertext.len() != out.len() {
            return Err(Error::Seal);
        }
        out.copy_from_slice(&ciphertext);
        Ok(())
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &PublicKey) -> bool {
        self.inner.spki_der == other.inner.spki_der
    }
}

impl Eq for PublicKey {}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("fingerprint", &format_args!("{}", self.inner.fingerprint))
            .field("bits", &self.inner.bits)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PrivateKey, Scope, seal, unseal};

    const KEY: &[u8] = include_bytes!("../tests/fixtures/key-pkcs1.pem");
    const CERT: &[u8] = include_bytes!("../tests/fixtures/cert.pem");

    /// A key's first values go through the `rsa` crate, the rest through aws-lc-rs; the
    /// private key opens both alike, and the count stops at the bound.
    #[test]
    fn a_key_moves_to_aws_lc_after_its_first_values_and_both_unseal() {
        let private = PrivateKey::from_pem(KEY).unwrap();
        let public = PublicKey::from_pem(CERT).unwrap();
        let clone = public.clone();
        let rng = crate::OsRandom;
        for i in 0..SEALS_BEFORE_AWS_LC + 8 {
            let label = Scope::ALL[i % Scope::ALL.len()].label("default", "db");
            let plaintext = format!("value {i}");
            // Clones share the count: it is the key's, not the handle's.
            let key = if i % 2 == 0 { &public } else { &clone };
            let sealed = seal(&rng, key, plaintext.as_bytes(), &label).unwrap();
            assert_eq!(
                &unseal(&private, &sealed, &label).unwrap()[..],
                plaintext.as_bytes(),
                "value {i}"
            );
        }
        assert_eq!(
            public.inner.sealed.load(Ordering::Relaxed),
            SEALS_BEFORE_AWS_LC
        );
    }
}
