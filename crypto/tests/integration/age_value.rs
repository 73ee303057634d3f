//! Multi-recipient (age) values: round trips through both kinds of recipient, the scope binding,
//! the bad inputs the format must refuse, the golden vector written by the reference age tool,
//! and the reference tool opening Sealbox's values (the break-glass recovery of docs/FORMAT.md).

use std::io::Write as _;
use std::process::{Command, Stdio};

use sealbox_crypto::age_value::{
    self, MAX_PLAINTEXT_LEN, RecipientKind, header, open_with_identities, open_with_keys,
    parse_identity_file, rewrap,
};
use sealbox_crypto::{
    Binding, Error, PrivateKey, PublicKey, Recipients, RsaKeyRing, Scope, ValueFormat,
};

use crate::{fixture, fixture_path, key_pair, other_key_pair};

fn binding(scope: Scope, namespace: &str, name: &str) -> Binding {
    Binding::new(scope, namespace, name).unwrap()
}

fn strict() -> Binding {
    binding(Scope::Strict, "default", "db")
}

fn ring(keys: &[&PrivateKey]) -> RsaKeyRing {
    RsaKeyRing::new(keys.iter().map(|&k| k.clone()))
}

fn breakglass() -> age::x25519::Identity {
    parse_identity_file(&fixture("age-identity.txt"), "age-identity.txt")
        .unwrap()
        .remove(0)
}

fn recipients(keys: &[&PublicKey], age: &[String]) -> Recipients {
    let mut recipients = Recipients::new();
    for key in keys {
        recipients.add_rsa((*key).clone());
    }
    for recipient in age {
        recipients.add_age(recipient).unwrap();
    }
    recipients
}

/// Two clusters and the break-glass key.
fn two_clusters_and_breakglass() -> Recipients {
    recipients(
        &[
            key_pair().certificate.public_key(),
            other_key_pair().certificate.public_key(),
        ],
        &[breakglass().to_public().to_string()],
    )
}

fn open_keys(ring: &RsaKeyRing, value: &[u8], expected: &Binding) -> Result<Vec<u8>, Error> {
    let mut operations = 0;
    open_with_keys(ring, value, expected, &mut operations).map(|o| o.plaintext.to_vec())
}

#[test]
fn every_recipient_opens_the_same_value() {
    let value = age_value::seal(&two_clusters_and_breakglass(), &strict(), b"hunter2").unwrap();
    assert_eq!(ValueFormat::of(&value), ValueFormat::Age);
    for cluster in [&key_pair().private_key, &other_key_pair().private_key] {
        assert_eq!(
            open_keys(&ring(&[cluster]), &value, &strict()).unwrap(),
            b"hunter2"
        );
    }
    let identity = breakglass();
    let (bound, plaintext) = open_with_identities(&[&identity], &value).unwrap();
    assert_eq!(bound, strict());
    assert_eq!(&plaintext[..], b"hunter2");

    // The header lists both clusters by their fingerprints' first bytes, and the X25519 key.
    let header = header::parse(&value).unwrap();
    let kinds: Vec<_> = header.stanzas.iter().map(|s| s.kind.clone()).collect();
    for pair in [key_pair(), other_key_pair()] {
        let key_tag = pair.fingerprint().age_tag();
        assert!(
            kinds.contains(&RecipientKind::SshRsa { key_tag }),
            "{kinds:?}"
        );
    }
    assert!(kinds.contains(&RecipientKind::X25519));
}

#[test]
fn a_value_moved_to_another_secret_is_refused_by_every_recipient() {
    let value = age_value::seal(&two_clusters_and_breakglass(), &strict(), b"hunter2").unwrap();
    let elsewhere = [
        binding(Scope::Strict, "prod", "db"),
        binding(Scope::Strict, "default", "other"),
        binding(Scope::NamespaceWide, "default", ""),
        binding(Scope::ClusterWide, "", ""),
    ];
    for cluster in [&key_pair().private_key, &other_key_pair().private_key] {
        for expected in &elsewhere {
            let err = open_keys(&ring(&[cluster]), &value, expected).unwrap_err();
            assert!(
                matches!(err, Error::ScopeMismatch { .. }),
                "{expected}: {err}"
            );
            assert!(err.to_string().contains("strict \"default/db\""), "{err}");
        }
    }
    // Wider scopes bind too: a namespace-wide value opens for any name there, nowhere else.
    let wide = binding(Scope::NamespaceWide, "default", "");
    let value = age_value::seal(&two_clusters_and_breakglass(), &wide, b"x").unwrap();
    let keys = ring(&[&key_pair().private_key]);
    assert_eq!(open_keys(&keys, &value, &wide).unwrap(), b"x");
    assert!(open_keys(&keys, &value, &strict()).is_err());
    assert!(open_keys(&keys, &value, &binding(Scope::NamespaceWide, "prod", "")).is_err());
}

#[test]
fn the_key_is_chosen_by_its_tag_with_one_private_key_operation() {
    let fixture_keys: Vec<PrivateKey> =
        sealbox_crypto::parse_private_keys(&fixture("keys-list.yaml"), "keys-list.yaml").unwrap();
    // The sealing key last of four: trying keys in turn would cost four operations.
    let mut keys: Vec<&PrivateKey> = fixture_keys.iter().collect();
    keys.push(&other_key_pair().private_key);
    keys.push(&key_pair().private_key);
    let ring = ring(&keys);
    let value = age_value::seal(
        &recipients(&[key_pair().certificate.public_key()], &[]),
        &strict(),
        b"v",
    )
    .unwrap();
    let mut operations = 0;
    let opened = open_with_keys(&ring, &value, &strict(), &mut operations).unwrap();
    assert_eq!(opened.key, 3);
    assert_eq!(opened.operations, 1);
    assert_eq!(operations, 1);
}

#[test]
fn keys_and_identities_that_are_not_recipients_are_told_so() {
    let value = age_value::seal(
        &recipients(&[key_pair().certificate.public_key()], &[]),
        &strict(),
        b"v",
    )
    .unwrap();
    let mut operations = 0;
    let err = open_with_keys(
        &ring(&[&other_key_pair().private_key]),
        &value,
        &strict(),
        &mut operations,
    )
    .unwrap_err();
    assert!(matches!(err, Error::AgeNotARecipient { .. }), "{err}");
    // No private-key operation for a key whose tag is not in the file.
    assert_eq!(operations, 0);
    let tag = &err.to_string();
    assert!(tag.contains("ssh-rsa "), "{tag}");

    let stranger = age::x25519::Identity::generate();
    let err = open_with_identities(&[&stranger], &value).unwrap_err();
    assert!(matches!(err, Error::AgeNotARecipient { .. }), "{err}");
    assert!(
        err.to_string().starts_with("no key could decrypt secret"),
        "{err}"
    );
}

#[test]
fn bad_inputs_are_refused_with_clear_errors() {
    let value = age_value::seal(&two_clusters_and_breakglass(), &strict(), b"hunter2").unwrap();
    let keys = ring(&[&key_pair().private_key]);
    let header_len = header::parse(&value).unwrap().len;

    // Truncated inside the header, right after it, and inside the payload.
    for cut in [
        30,
        header_len / 2,
        header_len,
        header_len + 20,
        value.len() - 1,
    ] {
        let err = open_keys(&keys, &value[..cut], &strict()).unwrap_err();
        assert!(
            matches!(err, Error::AgeMalformed { .. }),
            "cut at {cut}: {err}"
        );
    }

    // An unknown stanza type only: nothing this controller could open.
    let text = String::from_utf8_lossy(&value[..header_len]).into_owned();
    let unknown = text
        .replace("-> ssh-rsa ", "-> ssh-foo ")
        .replace("-> X25519 ", "-> X25520 ");
    let mut forged = unknown.into_bytes();
    forged.extend_from_slice(&value[header_len..]);
    let err = open_keys(&keys, &forged, &strict()).unwrap_err();
    assert!(matches!(err, Error::AgeNotARecipient { .. }), "{err}");
    assert!(
        err.to_string().contains("other (age grease or unknown)"),
        "{err}"
    );

    // A flipped payload byte: the payload no longer authenticates.
    let mut tampered = value.clone();
    *tampered.last_mut().unwrap() ^= 1;
    let err = open_keys(&keys, &tampered, &strict()).unwrap_err();
    assert!(matches!(err, Error::AgeMalformed { .. }), "{err}");

    // A flipped header byte (inside the RSA block): the header MAC or the unwrap fails.
    let rsa_line = text.find("-> ssh-rsa").unwrap();
    let body_start = rsa_line + text[rsa_line..].find('\n').unwrap() + 1;
    let mut tampered = value.clone();
    tampered[body_start + 10] = if tampered[body_start + 10] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let err = open_keys(&keys, &tampered, &strict()).unwrap_err();
    assert!(matches!(err, Error::NoKeyCouldDecrypt), "{err}");

    // Too many recipients to seal; an oversized value is refused before it is parsed.
    let mut many = Recipients::new();
    for _ in 0..header::MAX_STANZAS {
        many.add_age(&age::x25519::Identity::generate().to_public().to_string())
            .unwrap();
    }
    let err = age_value::seal(&many, &strict(), b"v").unwrap_err();
    assert!(
        matches!(
            err,
            Error::LimitExceeded {
                what: "recipients",
                ..
            }
        ),
        "{err}"
    );
    let err = age_value::seal(&Recipients::new(), &strict(), b"v").unwrap_err();
    assert!(matches!(err, Error::NoRecipients), "{err}");
    let err = age_value::seal(
        &two_clusters_and_breakglass(),
        &strict(),
        &vec![0; MAX_PLAINTEXT_LEN + 1],
    )
    .unwrap_err();
    assert!(matches!(err, Error::LimitExceeded { .. }), "{err}");
    let mut huge = value.clone();
    huge.resize(age_value::MAX_VALUE_LEN + 1, 0);
    let err = open_keys(&keys, &huge, &strict()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::LimitExceeded {
                what: "the value (bytes)",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn age_recipients_are_checked() {
    let mut recipients = Recipients::new();
    for bad in ["", "age1", "ssh-rsa AAAA", "AGE-SECRET-KEY-1QQQ"] {
        let err = recipients.add_age(bad).unwrap_err();
        assert!(
            matches!(err, Error::ParseAgeRecipient { .. }),
            "{bad}: {err}"
        );
    }
    let pq = format!("age1pq1{}", "q".repeat(1900));
    let err = recipients.add_age(&pq).unwrap_err().to_string();
    assert!(err.contains("post-quantum"), "{err}");
    assert!(err.len() < 300, "{}", err.len());
    // Duplicates count once.
    let public = breakglass().to_public().to_string();
    recipients.add_age(&public).unwrap();
    recipients.add_age(&format!(" {public}\n")).unwrap();
    recipients.add_rsa(key_pair().certificate.public_key().clone());
    recipients.add_rsa(key_pair().certificate.public_key().clone());
    assert_eq!(recipients.len(), 2);
}

/// Written by the reference age tool (make_age_fixtures.sh): its ssh-rsa stanza opens with our
/// aws-lc-rs unwrap, its X25519 stanza with the test identity.
#[test]
fn opens_the_golden_vector_written_by_the_reference_age_tool() {
    let value = fixture("age-value.bin");
    let key0 = PrivateKey::from_pem(&fixture("key-pkcs1.pem")).unwrap();
    let expected = binding(Scope::Strict, "default", "mysecret");
    let plaintext = b"hunter2\n\0binary";
    assert_eq!(
        open_keys(&ring(&[&key0]), &value, &expected).unwrap(),
        plaintext
    );
    let identity = breakglass();
    let (bound, opened) = open_with_identities(&[&identity], &value).unwrap();
    assert_eq!(bound, expected);
    assert_eq!(&opened[..], plaintext);
    let err = open_keys(&ring(&[&key0]), &value, &strict()).unwrap_err();
    assert!(matches!(err, Error::ScopeMismatch { .. }), "{err}");
}

fn age_tool() -> bool {
    let found = Command::new("age")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found && std::env::var_os("SEALBOX_AGE_REQUIRED").is_some() {
        panic!(
            "SEALBOX_AGE_REQUIRED is set but the age tool is missing (.ci/tools.sh installs it)"
        );
    }
    found
}

/// `age -d -i IDENTITY` over `value`: the tool's stdout.
fn age_decrypt(identity: &std::path::Path, value: &[u8]) -> Vec<u8> {
    let mut child = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(identity)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(value).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "age -d failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// The documented recovery: `age -d -i KEY | tail -n +2` gives the value back.
#[test]
fn the_reference_age_tool_opens_sealbox_values_plus_one_documented_step() {
    if !age_tool() {
        eprintln!("skipped: the age tool is not installed (apt-get install age)");
        return;
    }
    let key0_public = PublicKey::from_pem(&fixture("public-spki.pem")).unwrap();
    let plaintext: Vec<u8> = (0..=255).chain(*b"\nlast line\n").collect();
    let value = age_value::seal(
        &recipients(&[&key0_public], &[breakglass().to_public().to_string()]),
        &strict(),
        &plaintext,
    )
    .unwrap();

    for identity in ["age-identity.txt", "key-pkcs1.pem"] {
        let payload = age_decrypt(&fixture_path(identity), &value);
        assert!(
            payload.starts_with(b"sealbox/v1 strict default/db\n"),
            "{identity}"
        );
        let tail = Command::new("sh")
            .args(["-c", "tail -n +2"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut tail = tail;
        tail.stdin.take().unwrap().write_all(&payload).unwrap();
        let recovered = tail.wait_with_output().unwrap().stdout;
        assert_eq!(recovered, plaintext, "{identity}");
    }
}

fn kinds(value: &[u8]) -> Vec<RecipientKind> {
    header::parse(value)
        .unwrap()
        .stanzas
        .into_iter()
        .map(|s| s.kind)
        .collect()
}

/// A cluster moves its values to its new key: its own stanza replaced, the other cluster's, the
/// break-glass key's and the payload kept byte for byte; the reference age tool agrees.
#[test]
fn a_cluster_rewraps_a_value_for_its_new_key_keeping_the_other_recipients() {
    let value = age_value::seal(&two_clusters_and_breakglass(), &strict(), b"hunter2").unwrap();
    let old = ring(&[&key_pair().private_key]);
    let new_key = PrivateKey::from_pem(&fixture("key-pkcs1.pem")).unwrap();
    let rewrapped = rewrap(&old, &value, &strict(), new_key.public_key())
        .unwrap()
        .expect("the new key was not a recipient");

    let tag = |key: &PrivateKey| RecipientKind::SshRsa {
        key_tag: key.fingerprint().age_tag(),
    };
    let after = kinds(&rewrapped);
    assert!(!after.contains(&tag(&key_pair().private_key)), "{after:?}");
    assert!(after.contains(&tag(&new_key)), "{after:?}");
    assert!(
        after.contains(&tag(&other_key_pair().private_key)),
        "{after:?}"
    );
    assert_eq!(after.len(), kinds(&value).len());
    let payload = |v: &[u8]| v[header::parse(v).unwrap().len..].to_vec();
    assert_eq!(payload(&rewrapped), payload(&value));

    for cluster in [&new_key, &other_key_pair().private_key] {
        assert_eq!(
            open_keys(&ring(&[cluster]), &rewrapped, &strict()).unwrap(),
            b"hunter2"
        );
    }
    let identity = breakglass();
    assert_eq!(
        &open_with_identities(&[&identity], &rewrapped).unwrap().1[..],
        b"hunter2"
    );
    let err = open_keys(&old, &rewrapped, &strict()).unwrap_err();
    assert!(matches!(err, Error::AgeNotARecipient { .. }), "{err}");

    // Done once: the new key is a recipient now.
    assert!(
        rewrap(
            &ring(&[&new_key]),
            &rewrapped,
            &strict(),
            new_key.public_key()
        )
        .unwrap()
        .is_none()
    );
    // A value bound elsewhere, or one the ring cannot open, is refused.
    let elsewhere = binding(Scope::Strict, "prod", "db");
    let err = rewrap(&old, &value, &elsewhere, new_key.public_key()).unwrap_err();
    assert!(matches!(err, Error::ScopeMismatch { .. }), "{err}");
    let stranger = ring(&[&new_key]);
    let err = rewrap(&stranger, &value, &strict(), new_key.public_key()).unwrap_err();
    assert!(matches!(err, Error::AgeNotARecipient { .. }), "{err}");

    if age_tool() {
        for identity in ["key-pkcs1.pem", "age-identity.txt"] {
            let payload = age_decrypt(&fixture_path(identity), &rewrapped);
            assert_eq!(
                payload, b"sealbox/v1 strict default/db\nhunter2",
                "{identity}"
            );
        }
    }
}
