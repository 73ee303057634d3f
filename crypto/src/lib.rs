//! sealbox-crypto: the Bitnami Sealed Secrets wire format, sealing scopes, RSA keys,
//! certificates, key fingerprints and which key seals ([`key_order`]).
//!
//! Pure: no kube, no tokio, no IO beyond what callers hand in (and the OS's random generator,
//! [`OsRandom`]). Every RSA private-key operation (decryption, certificate signing) goes through
//! aws-lc-rs; the `rsa` crate's private-key code is not constant-time (RUSTSEC-2023-0071) and is
//! not used here. Sealing, a public-key operation, uses the `rsa` crate's OAEP encryption with the
//! caller's generator, so a cold CLI process does not wait for aws-lc to seed its own.
//!
//! ```no_run
//! # fn main() -> sealbox_crypto::Result<()> {
//! use std::time::SystemTime;
//! use sealbox_crypto::{KeyPair, OsRandom, Scope, seal, unseal};
//!
//! let key_pair = KeyPair::generate("", SystemTime::now())?;
//! let label = Scope::Strict.label("default", "db");
//! let sealed = seal(&OsRandom, key_pair.certificate.public_key(), b"hunter2", &label)?;
//! assert_eq!(&*unseal(&key_pair.private_key, &sealed, &label)?, b"hunter2");
//! # Ok(()) }
//! ```
//!
//! Multi-recipient values ([`age_value`]) are age files: each cluster's RSA key as an `ssh-rsa`
//! stanza (unwrapped here with aws-lc-rs, never age's `rsa`-crate identity) plus X25519
//! break-glass keys, the scope bound inside the payload. [`ValueFormat::of`] tells the formats
//! apart.
//!
//! Secret hygiene: plaintexts come back as `Zeroizing<Vec<u8>>`, key PEM as
//! `Zeroizing<String>`, every intermediate buffer holding a session key, plaintext or key is
//! wiped, `Debug` of key types prints `<redacted>`, and no error text carries key material,
//! plaintext or ciphertext.

pub mod age_value;
pub mod certificate;
pub mod error;
pub mod fingerprint;
pub mod key_order;
pub mod key_pair;
pub mod key_secret;
mod pem;
pub mod private_key;
pub mod public_key;
pub mod random;
pub mod scope;
pub mod value_format;
pub mod wire;

pub use age_value::{Binding, Recipients, RsaKeyRing};
pub use certificate::Certificate;
pub use error::{Error, Result};
pub use fingerprint::Fingerprint;
pub use key_pair::KeyPair;
pub use key_secret::{KeySecret, parse_key_secrets, parse_private_keys};
pub use private_key::PrivateKey;
pub use public_key::PublicKey;
pub use random::{OsRandom, SealRandom};
pub use scope::Scope;
pub use value_format::ValueFormat;
pub use wire::{seal, sealed_len, unseal, unseal_with_keys};

#[cfg(test)]
mod tests {
    use super::*;

    /// The controller shares keys across tasks and threads.
    #[test]
    fn key_types_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<PublicKey>();
        assert_send_sync::<PrivateKey>();
        assert_send_sync::<Certificate>();
        assert_send_sync::<KeyPair>();
        assert_send_sync::<KeySecret>();
        assert_send_sync::<Fingerprint>();
        assert_send_sync::<Error>();
    }
}
