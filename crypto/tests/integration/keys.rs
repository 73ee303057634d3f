//! Key generation, the generated certificate, PEM parsing errors and Debug redaction.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sealbox_crypto::{Certificate, Error, KeyPair, PrivateKey, PublicKey};
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::{fixture, key_pair, other_key_pair};

const TEN_YEARS: Duration = Duration::from_secs(3650 * 86_400);

#[test]
fn generated_certificate_has_bitnamis_fields() {
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let kp = KeyPair::generate_with_bits(2048, "sealed-secret", now).unwrap();
    let (rest, x509) = X509Certificate::from_der(kp.certificate.der()).unwrap();
    assert!(rest.is_empty());

    assert_eq!(x509.version().0, 2, "X.509 v3");
    let basic = x509.basic_constraints().unwrap().unwrap();
    assert!(basic.critical);
    assert!(basic.value.ca);
    assert_eq!(basic.value.path_len_constraint, None);
    let usage = x509.key_usage().unwrap().unwrap();
    assert!(usage.critical);
    assert!(usage.value.encipher_only());
    assert_eq!(usage.value.flags, 1 << 7, "encipherOnly and nothing else");

    assert_eq!(x509.validity().not_before.timestamp(), 1_700_000_000);
    assert_eq!(
        x509.validity().not_after.timestamp(),
        1_700_000_000 + TEN_YEARS.as_secs() as i64
    );
    assert_eq!(kp.certificate.not_before(), now);
    assert_eq!(kp.certificate.not_after(), now + TEN_YEARS);

    let cn: Vec<_> = x509
        .subject()
        .iter_common_name()
        .map(|cn| cn.as_str().unwrap())
        .collect();
    assert_eq!(cn, ["sealed-secret"]);
    assert_eq!(x509.subject(), x509.issuer(), "self-signed");
    assert_eq!(kp.certificate.common_name(), Some("sealed-secret"));

    // Serial: a positive integer of at most 128 bits (DER adds a zero byte when the top bit is set).
    let serial = x509.raw_serial();
    assert!(serial.len() <= 17, "{serial:02x?}");
    assert!(serial.len() < 17 || serial[0] == 0);
    assert!(x509.serial.bits() <= 128 && x509.serial.bits() > 64);
    assert_eq!(kp.certificate.serial(), serial);

    // Signed by the key itself (SHA256-RSA), and carrying that key.
    assert_eq!(
        x509.signature_algorithm.algorithm.to_id_string(),
        "1.2.840.113549.1.1.11"
    );
    let spki_bits = &x509.public_key().subject_public_key.data;
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
        spki_bits,
    )
    .verify(x509.tbs_certificate.as_ref(), &x509.signature_value.data)
    .unwrap();
    assert_eq!(
        PublicKey::from_der(x509.public_key().raw, "cert").unwrap(),
        *kp.private_key.public_key()
    );
    assert_eq!(kp.certificate.public_key(), kp.private_key.public_key());
}

#[test]
fn an_empty_common_name_gives_an_empty_subject_like_go() {
    let kp = other_key_pair();
    let (_, x509) = X509Certificate::from_der(kp.certificate.der()).unwrap();
    assert_eq!(x509.subject().iter().count(), 0);
    assert_eq!(kp.certificate.common_name(), None);
}

#[test]
fn serials_differ_between_certificates() {
    assert_ne!(
        key_pair().certificate.serial(),
        other_key_pair().certificate.serial()
    );
    let again =
        Certificate::self_signed(&key_pair().private_key, "test", SystemTime::now()).unwrap();
    assert_ne!(again.serial(), key_pair().certificate.serial());
    assert_eq!(again.public_key(), key_pair().certificate.public_key());
}

#[test]
fn a_certificate_is_valid_for_the_ttl_asked_for() {
    let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    let hour = std::time::Duration::from_secs(3600);
    let cert = Certificate::self_signed_valid_for(&key_pair().private_key, "", now, hour).unwrap();
    assert_eq!(cert.not_before(), now);
    assert_eq!(cert.not_after(), now + hour);
    // Parsed back from its DER, as a reader of tls.crt sees it.
    let parsed = Certificate::from_der(cert.der()).unwrap();
    assert_eq!(parsed.not_after(), now + hour);
    assert!(parsed.check_valid_at(now + 2 * hour).is_err());
    let default = Certificate::self_signed(&key_pair().private_key, "", now).unwrap();
    assert_eq!(
        default.not_after(),
        now + std::time::Duration::from_secs(87_600 * 3600)
    );
    let err = Certificate::self_signed_valid_for(
        &key_pair().private_key,
        "",
        now,
        std::time::Duration::ZERO,
    )
    .unwrap_err();
    assert!(err.to_string().contains("validity"), "{err}");
}

#[test]
fn default_generation_is_rsa_4096() {
    let kp = KeyPair::generate("", SystemTime::now()).unwrap();
    assert_eq!(kp.certificate.public_key().modulus_bits(), 4096);
    assert_eq!(kp.certificate.public_key().modulus_len(), 512);
    assert_eq!(kp.fingerprint(), kp.certificate.public_key().fingerprint());
}

#[test]
fn unsupported_key_sizes_are_refused() {
    for bits in [0, 1024, 2047, 8192] {
        let err = KeyPair::generate_with_bits(bits, "", SystemTime::now()).unwrap_err();
        assert!(matches!(err, Error::UnsupportedKeySize { .. }), "{err}");
        assert!(err.to_string().contains("2048, 3072 or 4096"));
    }
}

#[test]
fn a_key_pair_refuses_a_foreign_certificate() {
    let err = KeyPair::new(
        key_pair().private_key.clone(),
        other_key_pair().certificate.clone(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::CertificateKeyMismatch { .. }), "{err}");
    KeyPair::new(
        key_pair().private_key.clone(),
        key_pair().certificate.clone(),
    )
    .unwrap();
}

#[test]
fn exported_pem_reads_back() {
    let kp = key_pair();
    let pkcs1 = kp.private_key.to_pkcs1_pem();
    assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
    assert!(pkcs1.ends_with("-----END RSA PRIVATE KEY-----\n"));
    let again = PrivateKey::from_pem(pkcs1.as_bytes()).unwrap();
    assert_eq!(again.fingerprint(), kp.fingerprint());
    let pkcs8 = kp.private_key.to_pkcs8_pem().unwrap();
    assert!(pkcs8.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert_eq!(
        PrivateKey::from_pem(pkcs8.as_bytes())
            .unwrap()
            .fingerprint(),
        kp.fingerprint()
    );
    let cert = Certificate::from_pem(kp.certificate.to_pem().as_bytes()).unwrap();
    assert_eq!(cert.der(), kp.certificate.der());
    let public = PublicKey::from_pem(kp.certificate.to_pem().as_bytes()).unwrap();
    assert_eq!(public.fingerprint(), kp.fingerprint());
    let spki = PublicKey::from_pem(public.to_pem().as_bytes()).unwrap();
    assert_eq!(spki, public);
}

#[test]
fn pem_errors_name_the_problem() {
    let err = PublicKey::from_pem(&fixture("key-pkcs1.pem")).unwrap_err();
    assert!(matches!(err, Error::UnsupportedPemLabel { .. }), "{err}");
    assert!(err.to_string().contains("RSA PRIVATE KEY"), "{err}");
    assert!(
        err.to_string()
            .contains("CERTIFICATE, PUBLIC KEY or RSA PUBLIC KEY")
    );

    let err = PrivateKey::from_pem(&fixture("cert.pem")).unwrap_err();
    assert!(matches!(err, Error::UnsupportedPemLabel { .. }), "{err}");

    let err = PrivateKey::from_pem(b"").unwrap_err();
    assert!(matches!(err, Error::NoPemBlock { .. }), "{err}");

    let err = Certificate::from_pem(&fixture("public-spki.pem")).unwrap_err();
    assert!(err.to_string().contains("\"PUBLIC KEY\""), "{err}");

    let err = PrivateKey::from_pem(
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap_err();
    assert!(matches!(err, Error::EncryptedPem { .. }), "{err}");

    // Valid PEM around garbage DER.
    let err = PrivateKey::from_pem(
        b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
    )
    .unwrap_err();
    assert!(matches!(err, Error::ParsePrivateKey { .. }), "{err}");
    let err = PublicKey::from_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
        .unwrap_err();
    assert!(matches!(err, Error::ParsePublicKey { .. }), "{err}");
    let err =
        Certificate::from_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
            .unwrap_err();
    assert!(matches!(err, Error::ParseCertificate { .. }), "{err}");

    let err = PrivateKey::from_pem_with_origin(b"nothing here", "my-key.pem").unwrap_err();
    assert!(err.to_string().starts_with("my-key.pem: "), "{err}");
}

#[test]
fn debug_output_is_redacted() {
    let kp = key_pair();
    let fingerprint = kp.fingerprint().to_string();
    let pem = kp.private_key.to_pkcs1_pem();
    // A line from the middle of the key body must appear in no Debug output.
    let key_line = pem.lines().nth(5).unwrap().to_owned();

    let private = format!("{:?}", kp.private_key);
    assert_eq!(private, format!("PrivateKey(<redacted>, {fingerprint})"));
    let pair = format!("{kp:?}");
    assert!(pair.contains("<redacted>"), "{pair}");
    assert!(pair.contains(&fingerprint), "{pair}");
    let pretty = format!("{kp:#?}");
    for text in [&private, &pair, &pretty] {
        assert!(!text.contains(&key_line));
    }
    let public = format!("{:?}", kp.certificate.public_key());
    assert_eq!(
        public,
        format!("PublicKey {{ fingerprint: {fingerprint}, bits: 2048 }}")
    );
}
