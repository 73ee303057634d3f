//! The Bitnami wire format (`u16` RSA length, RSA-OAEP session key, AES-256-GCM body) unsealed
//! with the fixed test key: any bytes must come back as `Err`, never a panic.
//!
//! Input: the first byte picks the scope (and so the label) modulo 3, the rest is the sealed
//! value. The seeds are values sealed for each scope, so the fuzzer starts from ciphertexts the
//! key really opens.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealbox_crypto::{unseal, unseal_with_keys};
use sealbox_fuzz::{SCOPES, label, private_key};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, ciphertext)) = data.split_first() else {
        return;
    };
    let scope = SCOPES[usize::from(selector) % SCOPES.len()];
    let label = label(scope);
    let key = private_key();
    let one = unseal(key, ciphertext, &label);
    // The same answer through the several-keys path the controller uses.
    let many = unseal_with_keys([key, key], ciphertext, &label);
    assert_eq!(
        one.as_ref().ok().map(|plaintext| plaintext.as_slice()),
        many.as_ref()
            .ok()
            .map(|(plaintext, _)| plaintext.as_slice()),
        "unseal and unseal_with_keys disagree"
    );
});
