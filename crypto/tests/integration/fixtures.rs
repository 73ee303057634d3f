//! Golden vectors made by an independent implementation (pyca/cryptography, see
//! tests/fixtures/make_fixtures.py and its README).

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sealbox_crypto::{
    Certificate, Error, Fingerprint, PrivateKey, PublicKey, Scope, parse_private_keys, unseal,
    unseal_with_keys,
};
use serde_json::Value;

use crate::{fixture, fixture_path, fixture_text};

fn sealed_json() -> Value {
    serde_json::from_slice(&fixture("sealed.json")).unwrap()
}

fn fixture_fingerprints() -> Vec<String> {
    sealed_json()["fingerprints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn unseals_values_sealed_by_pyca_cryptography() {
    let keys = parse_private_keys(&fixture("keys-list.yaml"), "keys-list.yaml").unwrap();
    assert_eq!(keys.len(), 2);
    let sealed = sealed_json();
    let values = sealed["values"].as_array().unwrap();
    assert_eq!(values.len(), 2 * 3 * 5);
    for value in values {
        let scope: Scope = value["scope"].as_str().unwrap().parse().unwrap();
        let label = scope.label(
            value["namespace"].as_str().unwrap(),
            value["name"].as_str().unwrap(),
        );
        assert_eq!(label, value["label"].as_str().unwrap().as_bytes());
        let ciphertext = STANDARD
            .decode(value["ciphertext"].as_str().unwrap())
            .unwrap();
        let expected = STANDARD
            .decode(value["plaintext_b64"].as_str().unwrap())
            .unwrap();
        let key_index = value["key_index"].as_u64().unwrap() as usize;

        let (plaintext, index) = unseal_with_keys(&keys, &ciphertext, &label).unwrap();
        assert_eq!(&plaintext[..], &expected[..], "{value}");
        assert_eq!(index, key_index);
        assert_eq!(ciphertext.len(), 530 + expected.len());

        // The other key must not open it, nor the right key under another scope's label.
        let other = &keys[1 - key_index];
        assert!(matches!(
            unseal(other, &ciphertext, &label),
            Err(Error::NoKeyCouldDecrypt)
        ));
        if scope != Scope::ClusterWide {
            assert!(unseal(&keys[key_index], &ciphertext, b"").is_err());
        }
    }
}

#[test]
fn fingerprints_match_the_openssh_computation() {
    let expected = fixture_fingerprints();
    let keys = parse_private_keys(&fixture("keys-list.yaml"), "keys-list.yaml").unwrap();
    for (key, expected) in keys.iter().zip(&expected) {
        assert_eq!(&key.fingerprint().to_string(), expected);
        assert_eq!(&expected.parse::<Fingerprint>().unwrap(), key.fingerprint());
    }
}

#[test]
fn fingerprint_matches_ssh_keygen_when_available() {
    let Ok(output) = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(fixture_path("public.ssh"))
        .output()
    else {
        eprintln!("skipped: ssh-keygen is not installed");
        return;
    };
    assert!(output.status.success(), "{output:?}");
    let line = String::from_utf8(output.stdout).unwrap();
    let printed = line.split_whitespace().nth(1).unwrap();
    let key = PublicKey::from_pem(&fixture("public-spki.pem")).unwrap();
    assert_eq!(key.fingerprint().to_string(), printed);

    // And for a key Sealbox generated: convert its SPKI PEM with ssh-keygen itself.
    let generated = crate::key_pair().certificate.public_key();
    let dir = tempfile::tempdir().unwrap();
    let pem_path = dir.path().join("key.pem");
    std::fs::write(&pem_path, generated.to_pem()).unwrap();
    let converted = Command::new("ssh-keygen")
        .args(["-i", "-m", "PKCS8", "-f"])
        .arg(&pem_path)
        .output()
        .unwrap();
    assert!(converted.status.success(), "{converted:?}");
    let ssh_path = dir.path().join("key.pub");
    std::fs::write(&ssh_path, &converted.stdout).unwrap();
    let output = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&ssh_path)
        .output()
        .unwrap();
    let line = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        line.split_whitespace().nth(1).unwrap(),
        generated.fingerprint().to_string()
    );
}

#[test]
fn every_pem_form_reads_as_the_same_key() {
    let fingerprint = &fixture_fingerprints()[0];
    let pkcs1 = PrivateKey::from_pem(&fixture("key-pkcs1.pem")).unwrap();
    let pkcs8 = PrivateKey::from_pem(&fixture("key-pkcs8.pem")).unwrap();
    assert_eq!(&pkcs1.fingerprint().to_string(), fingerprint);
    assert_eq!(&pkcs8.fingerprint().to_string(), fingerprint);
    for name in [
        "cert.pem",
        "public-spki.pem",
        "public-pkcs1.pem",
        "cert-expired.pem",
    ] {
        let key = PublicKey::from_pem(&fixture(name)).unwrap();
        assert_eq!(&key.fingerprint().to_string(), fingerprint, "{name}");
        assert_eq!(key.modulus_bits(), 4096);
        assert_eq!(key.modulus_len(), 512);
        assert_eq!(&key, pkcs1.public_key());
    }
    // Export matches the independent encodings byte for byte.
    assert_eq!(*pkcs1.to_pkcs1_pem(), fixture_text("key-pkcs1.pem"));
    assert_eq!(*pkcs8.to_pkcs1_pem(), fixture_text("key-pkcs1.pem"));
    assert_eq!(
        *pkcs1.to_pkcs8_pem().unwrap(),
        fixture_text("key-pkcs8.pem")
    );
    assert_eq!(pkcs1.public_key().to_pem(), fixture_text("public-spki.pem"));
    let cert = Certificate::from_pem(&fixture("cert.pem")).unwrap();
    assert_eq!(cert.to_pem(), fixture_text("cert.pem"));
}

#[test]
fn private_keys_read_from_every_container() {
    let fingerprint = &fixture_fingerprints()[0];
    for name in [
        "key-pkcs1.pem",
        "key-pkcs8.pem",
        "key-secret.yaml",
        "key-secret.json",
    ] {
        let keys = parse_private_keys(&fixture(name), name).unwrap();
        assert_eq!(keys.len(), 1, "{name}");
        assert_eq!(&keys[0].fingerprint().to_string(), fingerprint, "{name}");
    }
    // A PEM bundle with a certificate in front (tls.crt + tls.key concatenated).
    let bundle = [fixture("cert.pem"), fixture("key-pkcs8.pem")].concat();
    let keys = parse_private_keys(&bundle, "bundle.pem").unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(&keys[0].fingerprint().to_string(), fingerprint);
}

#[test]
fn the_certificate_reads_like_bitnami_wrote_it() {
    let cert = Certificate::from_pem(&fixture("cert.pem")).unwrap();
    assert_eq!(cert.common_name(), None);
    let not_after = sealed_json()["cert_not_after"].as_str().unwrap().to_owned();
    let lifetime = cert.not_after().duration_since(cert.not_before()).unwrap();
    assert_eq!(lifetime, Duration::from_secs(3650 * 86_400));
    cert.check_valid_at(cert.not_before()).unwrap();
    cert.check_valid_at(cert.not_after()).unwrap();
    let err = cert
        .check_valid_at(cert.not_after() + Duration::from_secs(1))
        .unwrap_err();
    assert!(err.to_string().contains(&not_after), "{err}");
}

#[test]
fn an_expired_certificate_is_refused_with_its_date() {
    let cert = Certificate::from_pem(&fixture("cert-expired.pem")).unwrap();
    assert_eq!(
        cert.not_after(),
        UNIX_EPOCH + Duration::from_secs(1_577_836_800)
    );
    let err = cert.check_valid_at(SystemTime::now()).unwrap_err();
    assert!(matches!(err, Error::CertificateExpired { .. }), "{err}");
    assert!(err.to_string().contains("2020-01-01T00:00:00Z"), "{err}");
    assert!(err.to_string().contains("expired"), "{err}");
    // Reading the key from it is still possible (no expiry check in PublicKey::from_pem).
    PublicKey::from_pem(&fixture("cert-expired.pem")).unwrap();
}

#[test]
fn the_fixture_sealed_secrets_carry_their_scope() {
    // The SealedSecret fixtures are for the CLI; check they agree with sealed.json here.
    for scope in Scope::ALL {
        let text = fixture_text(&format!("sealedsecret-{scope}.yaml"));
        let doc: Value = serde_norway::from_str(&text).unwrap();
        let annotations = doc["metadata"]["annotations"]
            .as_object()
            .map(|a| {
                a.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(Scope::from_annotations(&annotations), scope);
        let key = PrivateKey::from_pem(&fixture("key-pkcs1.pem")).unwrap();
        let password = doc["spec"]["encryptedData"]["password"].as_str().unwrap();
        let plaintext = unseal(
            &key,
            &STANDARD.decode(password).unwrap(),
            &scope.label("default", "mysecret"),
        )
        .unwrap();
        assert_eq!(&plaintext[..], b"s3cr3t!");
    }
}
