//! Shared fixtures of the fuzz targets: the committed 2048-bit test key (a key Secret, as the
//! controller loads it) and the labels the wire target unseals under.
//!
//! Loaded once per process, so each execution costs only the work under test. The key is test
//! data published in this repository; never use it for anything real.

use std::sync::{Arc, LazyLock};

use k8s_openapi::api::core::v1::Secret;
use sealbox_controller::keys::{KeyEntry, Keys, PrivateKeyOps};
use sealbox_crypto::{KeyPair, PrivateKey, RsaKeyRing, Scope};

/// The test key as a Bitnami key Secret (`kubernetes.io/tls`, PKCS#1 `tls.key`), written once by
/// `cargo run --example make_seeds` in fuzz/.
pub const KEY_SECRET_YAML: &str = include_str!("../keys/key-secret.yaml");

/// Namespace and name the seeds and the wire target seal for.
pub const NAMESPACE: &str = "default";
/// See [`NAMESPACE`].
pub const NAME: &str = "mysecret";

static KEY_PAIR: LazyLock<KeyPair> = LazyLock::new(|| {
    let secrets = sealbox_crypto::parse_key_secrets(KEY_SECRET_YAML.as_bytes(), "fuzz key")
        .expect("fuzz/keys/key-secret.yaml is a key Secret");
    secrets
        .first()
        .expect("fuzz/keys/key-secret.yaml holds one key")
        .key_pair()
        .expect("fuzz/keys/key-secret.yaml's key matches its certificate")
});

static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    let value: serde_json::Value =
        serde_norway::from_str(KEY_SECRET_YAML).expect("fuzz/keys/key-secret.yaml is YAML");
    let secret: Secret = serde_json::from_value(value).expect("a Secret");
    let entry = KeyEntry::from_secret(secret).expect("the controller loads the fuzz key");
    Keys::new(vec![entry], Arc::new(PrivateKeyOps::default()))
});

/// The test key pair.
pub fn key_pair() -> &'static KeyPair {
    &KEY_PAIR
}

/// The X25519 test identity the age_value target opens values with (test data, published).
pub const AGE_IDENTITY: &str = include_str!("../keys/age-identity.txt");

static AGE: LazyLock<age::x25519::Identity> = LazyLock::new(|| {
    sealbox_crypto::age_value::parse_identity_file(AGE_IDENTITY.as_bytes(), "fuzz identity")
        .expect("fuzz/keys/age-identity.txt holds an age identity")
        .remove(0)
});

static RING: LazyLock<RsaKeyRing> = LazyLock::new(|| RsaKeyRing::new([private_key().clone()]));

/// The age test identity.
pub fn age_identity() -> &'static age::x25519::Identity {
    &AGE
}

/// The test key as a ring, for multi-recipient values.
pub fn ring() -> &'static RsaKeyRing {
    &RING
}

/// The test private key.
pub fn private_key() -> &'static PrivateKey {
    &KEY_PAIR.private_key
}

/// The test key as the controller holds it.
pub fn keys() -> &'static Keys {
    &KEYS
}

/// The scopes by the number the wire target reads from its first input byte.
pub const SCOPES: [Scope; 3] = [Scope::Strict, Scope::NamespaceWide, Scope::ClusterWide];

/// The label values of `scope` are sealed under for [`NAMESPACE`]/[`NAME`].
pub fn label(scope: Scope) -> Vec<u8> {
    scope.label(NAMESPACE, NAME)
}
