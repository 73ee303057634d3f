//! Certificates (PEM and DER) and their fingerprints: what `sealbox seal --cert` reads from a
//! file or URL and what the controller reads from `tls.crt`. Any bytes must come back as `Err`,
//! never a panic.
#![no_main]

use std::time::SystemTime;

use libfuzzer_sys::fuzz_target;
use sealbox_crypto::{Certificate, Fingerprint};

fn exercise(certificate: &Certificate) {
    let key = certificate.public_key();
    let fingerprint = key.fingerprint().to_string();
    // The printed fingerprint reads back as itself.
    let parsed: Fingerprint = fingerprint.parse().expect("a printed fingerprint parses");
    assert_eq!(&parsed, key.fingerprint());
    let _ = key.modulus_bits();
    let _ = key.to_pem();
    let _ = certificate.common_name();
    let _ = certificate.serial();
    let _ = certificate.not_before();
    let _ = certificate.not_after();
    let _ = certificate.check_valid_at(SystemTime::now());
    // Its PEM reads back as the same certificate.
    let again = Certificate::from_pem(certificate.to_pem().as_bytes()).expect("to_pem parses");
    assert_eq!(again.der(), certificate.der());
}

fuzz_target!(|data: &[u8]| {
    if let Ok(certificate) = Certificate::from_pem(data) {
        exercise(&certificate);
    }
    if let Ok(certificate) = Certificate::from_der(data) {
        exercise(&certificate);
    }
    // Fingerprints come from flags and annotations too.
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<Fingerprint>();
    }
});
