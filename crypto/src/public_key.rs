//! RSA public keys: the sealing side.

use std::fmt;
use std::sync::Arc;

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

/// PEM labels [`PublicKey::from_pem`] accepts.
const PUBLIC_PEM_LABELS: &str = "CERTIFICATE, PUBLIC KEY or RSA PUBLIC KEY";

/// An RSA public key that seals values. Cheap to clone.
#[derive(Clone)]
pub struct PublicKey {
    inner: Arc<Inner>,
}

struct Inner {
    /// Seals (the OAEP seed from the caller's generator): see [`crate::random`].
    rsa: rsa::RsaPublicKey,
    /// aws-lc-rs's OAEP, for the labels the `rsa` crate cannot take (not UTF-8; no scope makes
    /// one); it draws its seed from aws-lc's own generator.
    oaep: OaepPublicEncryptingKey,
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
    /// [`PublicKey::modulus_len`] bytes. Public-key only, so constant time is not needed here
    /// (RUSTSEC-2023-0071 concerns the `rsa` crate's private-key operations, which Sealbox never
    /// uses).
    pub(crate) fn encrypt_session_key<R: SealRandom + ?Sized>(
        &self,
        rng: &R,
        session_key: &[u8],
        label: &[u8],
        out: &mut [u8],
    ) -> Result<()> {
        let Ok(label) = std::str::from_utf8(label) else {
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
