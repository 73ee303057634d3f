//! Sealbox output checked by pyca/cryptography (tests/fixtures/check_sealed.py): values sealed
//! here unseal there, and the generated certificate verifies there. Skipped, with a message,
//! when python3 or the cryptography package is missing.

use std::io::Write as _;
use std::process::{Command, Stdio};

use aws_lc_rs::rand::SystemRandom;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sealbox_crypto::{Scope, seal};
use serde_json::{Value, json};

use crate::{fixture_path, key_pair};

fn python_with_cryptography() -> bool {
    Command::new("python3")
        .args(["-c", "import cryptography"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

#[test]
fn pyca_cryptography_unseals_sealbox_values_and_verifies_the_certificate() {
    if !python_with_cryptography() {
        eprintln!("skipped: python3 with the `cryptography` package is not available");
        return;
    }
    let kp = key_pair();
    let plaintexts: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"admin".to_vec(),
        (0..=255).collect(),
        vec![b'x'; 5000],
    ];
    let mut values = Vec::new();
    let mut expected = Vec::new();
    for scope in Scope::ALL {
        let label = scope.label("default", "mysecret");
        for plaintext in &plaintexts {
            let sealed = seal(
                &SystemRandom::new(),
                kp.certificate.public_key(),
                plaintext,
                &label,
            )
            .unwrap();
            values.push(json!({
                "label_b64": STANDARD.encode(&label),
                "ciphertext_b64": STANDARD.encode(&sealed),
            }));
            expected.push(STANDARD.encode(plaintext));
        }
    }
    let request = json!({
        "private_key_pem": &*kp.private_key.to_pkcs1_pem(),
        "certificate_pem": kp.certificate.to_pem(),
        "values": values,
    });

    let mut child = Command::new("python3")
        .arg(fixture_path("check_sealed.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(&request).unwrap())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "check_sealed.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&output.stdout).unwrap();
    let got: Vec<&str> = result["plaintexts_b64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(got, expected);

    let cert = &result["certificate"];
    assert_eq!(cert["self_signed_verified"], true);
    assert_eq!(cert["public_key_matches"], true);
    assert_eq!(cert["key_usage_encipher_only_critical"], true);
    assert_eq!(cert["basic_constraints_ca_critical"], true);
    assert_eq!(cert["subject"], "CN=test");
    assert_eq!(cert["issuer"], "CN=test");
    let lifetime = cert["not_after"].as_i64().unwrap() - cert["not_before"].as_i64().unwrap();
    assert_eq!(lifetime, 3650 * 86_400);
    let serial_bits = cert["serial_bits"].as_u64().unwrap();
    assert!(serial_bits > 64 && serial_bits <= 128, "{serial_bits}");
}
