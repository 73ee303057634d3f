//! Integration tests of sealbox-crypto's public API: one binary, so RSA test keys are generated
//! once and aws-lc is linked once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod age_value;
mod fixtures;
mod key_secret;
mod keys;
mod properties;
mod python_interop;
mod wire;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::SystemTime;

use sealbox_crypto::KeyPair;

/// A 2048-bit key pair shared by the tests where the size does not matter.
pub fn key_pair() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(|| KeyPair::generate_with_bits(2048, "test", SystemTime::now()).unwrap())
}

/// Another 2048-bit key pair, for wrong-key and key-order tests.
pub fn other_key_pair() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(|| KeyPair::generate_with_bits(2048, "", SystemTime::now()).unwrap())
}

/// A file from tests/fixtures/ (made by make_fixtures.py, see the README there).
pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

pub fn fixture_text(name: &str) -> String {
    String::from_utf8(fixture(name)).unwrap()
}
