//! RSA public keys: the sealing side.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::{OaepPublicEncryptingKey, PublicEncryptingKey};

use crate::certificate::Certificate;
use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::pem;

/// PEM labels [`PublicKey::from_pem`] accepts.
const PUBLIC_PEM_LABELS: &str = "CERTIFICATE, PUBLIC KEY or RSA PUBLIC KEY";

/// An RSA public key that seals values. Cheap to clone.
#[derive(Clone)]
pub struct PublicKey {
    inner: Arc<Inner>,
}

struct Inner {
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
        let oaep = OaepPublicEncryptingKey::new(encrypting).map_err(|_| ())?;
        Ok(PublicKey {
            inner: Arc::new(Inner {
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

    pub(crate) fn oaep(&self) -> &OaepPublicEncryptingKey {
        &self.inner.oaep
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
