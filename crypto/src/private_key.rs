//! RSA private keys: the unsealing side. Every private-key operation goes through aws-lc-rs.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::{OaepPrivateDecryptingKey, PrivateDecryptingKey};
use x509_parser::der_parser;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::pem;
use crate::public_key::PublicKey;

/// PEM labels [`PrivateKey::from_pem`] accepts.
pub(crate) const PRIVATE_PEM_LABELS: &str = "RSA PRIVATE KEY or PRIVATE KEY";

/// An RSA private key that unseals values.
///
/// Clones share one key (an `Arc`). The key lives in aws-lc, which wipes it when freed; the
/// PKCS#1 copy kept for export is zeroized on drop. `Debug` shows only the fingerprint.
#[derive(Clone)]
pub struct PrivateKey {
    inner: Arc<Inner>,
}

struct Inner {
    key: PrivateDecryptingKey,
    oaep: OaepPrivateDecryptingKey,
    pkcs1_der: Zeroizing<Vec<u8>>,
    public: PublicKey,
}

impl PrivateKey {
    /// Reads the first `RSA PRIVATE KEY` (PKCS#1) or `PRIVATE KEY` (PKCS#8) block.
    pub fn from_pem(pem: &[u8]) -> Result<PrivateKey> {
        PrivateKey::from_pem_with_origin(pem, "private key")
    }

    /// Like [`PrivateKey::from_pem`]; `origin` (e.g. a file name) prefixes error messages.
    pub fn from_pem_with_origin(pem: &[u8], origin: &str) -> Result<PrivateKey> {
        let mut keys = PrivateKey::all_from_pem(pem, origin)?;
        // all_from_pem never returns an empty list.
        Ok(keys.swap_remove(0))
    }

    /// Every private key block in `pem`, in order; other blocks (certificates) are skipped.
    pub(crate) fn all_from_pem(pem: &[u8], origin: &str) -> Result<Vec<PrivateKey>> {
        let blocks = pem::parse(pem, origin)?;
        let mut keys = Vec::new();
        for block in &blocks {
            match block.label.as_str() {
                "RSA PRIVATE KEY" => keys.push(PrivateKey::from_pkcs1_der(&block.der, origin)?),
                "PRIVATE KEY" => keys.push(PrivateKey::from_pkcs8_der(&block.der, origin)?),
                "ENCRYPTED PRIVATE KEY" => {
                    return Err(Error::EncryptedPem {
                        origin: origin.to_owned(),
                    });
                }
                _ => {}
            }
        }
        if !keys.is_empty() {
            return Ok(keys);
        }
        Err(match blocks.first() {
            Some(block) => Error::UnsupportedPemLabel {
                origin: origin.to_owned(),
                label: block.label.clone(),
                expected: PRIVATE_PEM_LABELS,
            },
            None => Error::NoPemBlock {
                origin: origin.to_owned(),
                expected: PRIVATE_PEM_LABELS,
            },
        })
    }

    /// Reads a DER PKCS#1 `RSAPrivateKey`.
    pub fn from_pkcs1_der(der: &[u8], origin: &str) -> Result<PrivateKey> {
        let rejected = |reason| Error::ParsePrivateKey {
            origin: origin.to_owned(),
            reason,
        };
        let key_pair =
            aws_lc_rs::rsa::KeyPair::from_der(der).map_err(|e| rejected(e.description_()))?;
        let pkcs8 = key_pair
            .as_der()
            .map_err(|_| rejected("cannot re-encode as PKCS#8"))?;
        PrivateKey::from_pkcs8_der(pkcs8.as_ref(), origin)
    }

    /// Reads a DER PKCS#8 `PrivateKeyInfo` holding an RSA key.
    pub fn from_pkcs8_der(der: &[u8], origin: &str) -> Result<PrivateKey> {
        let key = PrivateDecryptingKey::from_pkcs8(der).map_err(|e| Error::ParsePrivateKey {
            origin: origin.to_owned(),
            reason: e.description_(),
        })?;
        PrivateKey::from_decrypting_key(key, origin)
    }

    pub(crate) fn from_decrypting_key(
        key: PrivateDecryptingKey,
        origin: &str,
    ) -> Result<PrivateKey> {
        let rejected = |reason| Error::ParsePrivateKey {
            origin: origin.to_owned(),
            reason,
        };
        let pkcs8 = key
            .as_der()
            .map_err(|_| rejected("cannot encode as PKCS#8"))?;
        let pkcs1_der = pkcs1_from_pkcs8(pkcs8.as_ref())
            .ok_or_else(|| rejected("PKCS#8 does not wrap an RSA key"))?;
        let public = PublicKey::from_encrypting_key(key.public_key())?;
        let oaep = OaepPrivateDecryptingKey::new(key.clone())
            .map_err(|_| rejected("unusable for RSA-OAEP"))?;
        Ok(PrivateKey {
            inner: Arc::new(Inner {
                key,
                oaep,
                pkcs1_der,
                public,
            }),
        })
    }

    /// The matching public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.inner.public
    }

    /// The fingerprint of the matching public key.
    pub fn fingerprint(&self) -> &Fingerprint {
        self.inner.public.fingerprint()
    }

    /// PEM `RSA PRIVATE KEY` (PKCS#1), the form Bitnami stores in `tls.key`.
    pub fn to_pkcs1_pem(&self) -> Zeroizing<String> {
        pem::encode("RSA PRIVATE KEY", &self.inner.pkcs1_der)
    }

    /// PEM `PRIVATE KEY` (PKCS#8).
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>> {
        Ok(pem::encode("PRIVATE KEY", &self.pkcs8_der()?))
    }

    /// DER PKCS#8, for handing the key to aws-lc-rs signing.
    pub(crate) fn pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>> {
        let pkcs8 = self
            .inner
            .key
            .as_der()
            .map_err(|_| Error::EncodePrivateKey)?;
        Ok(Zeroizing::new(pkcs8.as_ref().to_vec()))
    }

    pub(crate) fn oaep(&self) -> &OaepPrivateDecryptingKey {
        &self.inner.oaep
    }
}

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo`:
/// `SEQUENCE { INTEGER 0, SEQUENCE { OID rsaEncryption, NULL }, OCTET STRING pkcs1 }`.
fn pkcs1_from_pkcs8(pkcs8: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
    let (_, info) = der_parser::der::parse_der_sequence(pkcs8).ok()?;
    let fields = info.as_sequence().ok()?;
    let algorithm = fields.get(1)?.as_sequence().ok()?;
    if algorithm.first()?.as_oid().ok()?.to_id_string() != RSA_ENCRYPTION {
        return None;
    }
    let pkcs1 = fields.get(2)?.as_slice().ok()?;
    Some(Zeroizing::new(pkcs1.to_vec()))
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey(<redacted>, {})", self.fingerprint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs1_from_pkcs8_rejects_other_structures() {
        assert!(pkcs1_from_pkcs8(b"").is_none());
        assert!(pkcs1_from_pkcs8(&[0x30, 0x03, 0x02, 0x01, 0x00]).is_none());
        // PrivateKeyInfo for an EC key (id-ecPublicKey), with a dummy key.
        let ec = [
            0x30, 0x13, 0x02, 0x01, 0x00, 0x30, 0x09, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d,
            0x02, 0x01, 0x04, 0x03, 0x01, 0x02, 0x03,
        ];
        assert!(pkcs1_from_pkcs8(&ec).is_none());
        // The same shape with rsaEncryption yields the wrapped bytes.
        let rsa = [
            0x30, 0x16, 0x02, 0x01, 0x00, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7,
            0x0d, 0x01, 0x01, 0x01, 0x05, 0x00, 0x04, 0x02, 0xab, 0xcd,
        ];
        assert_eq!(
            pkcs1_from_pkcs8(&rsa).as_deref().map(Vec::as_slice),
            Some(&[0xab, 0xcd][..])
        );
    }
}
