//! A sealing key and its certificate, as the controller generates and stores them.

use std::fmt;
use std::time::{Duration, SystemTime};

use aws_lc_rs::rsa::{KeySize, PrivateDecryptingKey};

use crate::certificate::{CERTIFICATE_VALIDITY, Certificate};
use crate::error::{Error, Result};
use crate::fingerprint::Fingerprint;
use crate::private_key::PrivateKey;

/// The key size Bitnami generates and Sealbox defaults to.
pub const DEFAULT_KEY_BITS: usize = 4096;

/// A private key and the self-signed certificate for it. `Debug` redacts the key.
#[derive(Clone)]
pub struct KeyPair {
    /// The private key (unseals).
    pub private_key: PrivateKey,
    /// The certificate for its public half (seals; served at `/v1/cert.pem`).
    pub certificate: Certificate,
}

impl KeyPair {
    /// A new RSA-4096 key with a certificate per [`Certificate::self_signed`].
    pub fn generate(common_name: &str, now: SystemTime) -> Result<KeyPair> {
        KeyPair::generate_with_bits(DEFAULT_KEY_BITS, common_name, now)
    }

    /// Like [`KeyPair::generate`] with another key size: 2048, 3072 or 4096 bits.
    pub fn generate_with_bits(bits: usize, common_name: &str, now: SystemTime) -> Result<KeyPair> {
        KeyPair::generate_valid_for(bits, common_name, now, CERTIFICATE_VALIDITY)
    }

    /// Like [`KeyPair::generate_with_bits`] with a certificate valid for `validity` from `now`
    /// ([`Certificate::self_signed_valid_for`]; Bitnami's `--key-ttl`).
    pub fn generate_valid_for(
        bits: usize,
        common_name: &str,
        now: SystemTime,
        validity: Duration,
    ) -> Result<KeyPair> {
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            _ => return Err(Error::UnsupportedKeySize { bits }),
        };
        let key =
            PrivateDecryptingKey::generate(size).map_err(|_| Error::KeyGeneration { bits })?;
        let private_key = PrivateKey::from_decrypting_key(key, "generated key")?;
        let certificate =
            Certificate::self_signed_valid_for(&private_key, common_name, now, validity)?;
        Ok(KeyPair {
            private_key,
            certificate,
        })
    }

    /// Pairs a key with a certificate, refusing a certificate made for another key.
    pub fn new(private_key: PrivateKey, certificate: Certificate) -> Result<KeyPair> {
        KeyPair::checked(private_key, certificate, "key pair")
    }

    pub(crate) fn checked(
        private_key: PrivateKey,
        certificate: Certificate,
        origin: &str,
    ) -> Result<KeyPair> {
        if certificate.public_key() != private_key.public_key() {
            return Err(Error::CertificateKeyMismatch {
                origin: origin.to_owned(),
                certificate: certificate.public_key().fingerprint().to_string(),
                private_key: private_key.fingerprint().to_string(),
            });
        }
        Ok(KeyPair {
            private_key,
            certificate,
        })
    }

    /// The key's fingerprint.
    pub fn fingerprint(&self) -> &Fingerprint {
        self.private_key.fingerprint()
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("private_key", &self.private_key)
            .field("certificate", &self.certificate)
            .finish()
    }
}
