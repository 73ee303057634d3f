//! PEM, private keys and key Secrets: every reader the controller and CLI use on key material
//! they did not write (`tls.key`, key backups, `--key` files, key Secrets in the controller's
//! namespace). Any bytes must come back as `Err`, never a panic.
#![no_main]

use k8s_openapi::api::core::v1::Secret;
use libfuzzer_sys::fuzz_target;
use sealbox_controller::keys::KeyEntry;
use sealbox_crypto::{PrivateKey, PublicKey, parse_key_secrets, parse_private_keys};

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = PrivateKey::from_pem(data) {
        // A key that parsed is a usable key: its public half and fingerprint are consistent.
        assert_eq!(key.public_key().fingerprint(), key.fingerprint());
        let _ = key.to_pkcs8_pem();
    }
    let _ = PrivateKey::from_pkcs1_der(data, "fuzz");
    let _ = PrivateKey::from_pkcs8_der(data, "fuzz");
    let _ = PublicKey::from_pem(data);
    let _ = PublicKey::from_der(data, "fuzz");
    if let Ok(secrets) = parse_key_secrets(data, "fuzz") {
        for secret in &secrets {
            let _ = secret.display_name();
            let _ = secret.key_pair();
        }
    }
    let _ = parse_private_keys(data, "fuzz");

    // The controller's key registry reads key Secrets as the API server sends them (JSON).
    if let Ok(secret) = serde_json::from_slice::<Secret>(data) {
        let _ = KeyEntry::from_secret(secret);
    }
});
