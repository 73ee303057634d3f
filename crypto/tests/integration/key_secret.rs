//! Key Secrets: rendering, parsing (Secret, List, multi-document, JSON, stringData), errors.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sealbox_crypto::key_secret::{
    DEFAULT_KEY_PREFIX, KEY_LABEL, KEY_LABEL_ACTIVE, KeySecret, parse_key_secrets,
};
use sealbox_crypto::{Error, parse_private_keys};
use serde_json::json;

use crate::{fixture, key_pair, other_key_pair};

#[test]
fn from_key_pair_is_bitnamis_stored_form() {
    let kp = key_pair();
    let secret = KeySecret::from_key_pair(kp, "kube-system", DEFAULT_KEY_PREFIX);
    assert!(secret.is_active());
    let json = secret.to_json();
    assert_eq!(json["apiVersion"], "v1");
    assert_eq!(json["kind"], "Secret");
    assert_eq!(json["type"], "kubernetes.io/tls");
    assert_eq!(json["metadata"]["generateName"], "sealed-secrets-key");
    assert_eq!(json["metadata"]["namespace"], "kube-system");
    assert!(json["metadata"].get("name").is_none());
    assert_eq!(json["metadata"]["labels"][KEY_LABEL], KEY_LABEL_ACTIVE);
    let key_pem = STANDARD
        .decode(json["data"]["tls.key"].as_str().unwrap())
        .unwrap();
    assert!(key_pem.starts_with(b"-----BEGIN RSA PRIVATE KEY-----\n"));
    let crt_pem = STANDARD
        .decode(json["data"]["tls.crt"].as_str().unwrap())
        .unwrap();
    assert_eq!(crt_pem, kp.certificate.to_pem().as_bytes());
}

#[test]
fn yaml_and_json_render_then_parse_round_trip() {
    let kp = key_pair();
    let mut secret = KeySecret::from_key_pair(kp, "sealbox", "my-keys");
    let yaml = secret.to_yaml().unwrap();
    assert!(
        yaml.starts_with("apiVersion: v1\nkind: Secret\nmetadata:\n"),
        "{yaml}"
    );
    let parsed = parse_key_secrets(yaml.as_bytes(), "rendered.yaml").unwrap();
    assert_eq!(parsed.len(), 1);
    let parsed = &parsed[0];
    assert_eq!(parsed.generate_name.as_deref(), Some("my-keys"));
    assert_eq!(parsed.namespace.as_deref(), Some("sealbox"));
    assert_eq!(parsed.name, None);
    assert!(parsed.is_active());
    assert_eq!(*parsed.tls_key, *secret.tls_key);
    assert_eq!(parsed.tls_crt, secret.tls_crt);
    let again = parsed.key_pair().unwrap();
    assert_eq!(again.fingerprint(), kp.fingerprint());
    assert_eq!(again.certificate.der(), kp.certificate.der());

    secret.name = Some("my-keys7x2qp".to_owned());
    let json = serde_json::to_vec_pretty(&secret.to_json()).unwrap();
    let parsed = parse_key_secrets(&json, "rendered.json").unwrap();
    assert_eq!(parsed[0].name.as_deref(), Some("my-keys7x2qp"));
    assert_eq!(parsed[0].display_name(), "Secret sealbox/my-keys7x2qp");
    assert_eq!(
        parsed[0].key_pair().unwrap().fingerprint(),
        kp.fingerprint()
    );
}

#[test]
fn reads_the_bitnami_fixture_secret() {
    let secrets = parse_key_secrets(&fixture("key-secret.yaml"), "key-secret.yaml").unwrap();
    assert_eq!(secrets.len(), 1);
    let secret = &secrets[0];
    assert_eq!(secret.name.as_deref(), Some("sealed-secrets-keyfx001"));
    assert_eq!(secret.generate_name.as_deref(), Some(DEFAULT_KEY_PREFIX));
    assert_eq!(secret.namespace.as_deref(), Some("kube-system"));
    assert!(secret.is_active());
    let kp = secret.key_pair().unwrap();
    assert_eq!(kp.certificate.public_key().modulus_bits(), 4096);

    let list = parse_key_secrets(&fixture("keys-list.yaml"), "keys-list.yaml").unwrap();
    let names: Vec<_> = list.iter().map(|s| s.name.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        ["sealed-secrets-keyfx001", "sealed-secrets-keyfx002"]
    );
}

fn secret_json(name: &str, key_pem: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "kube-system"},
        "type": "kubernetes.io/tls",
        "data": {"tls.key": STANDARD.encode(key_pem)},
    })
}

#[test]
fn reads_lists_multi_document_yaml_and_string_data() {
    let first = key_pair().private_key.to_pkcs1_pem();
    let second = other_key_pair().private_key.to_pkcs8_pem().unwrap();
    let expected = [key_pair().fingerprint(), other_key_pair().fingerprint()];

    // kubectl get secret -o json: a v1 List.
    let list = json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [secret_json("a", &first), secret_json("b", &second)],
    });
    let keys = parse_private_keys(&serde_json::to_vec(&list).unwrap(), "list.json").unwrap();
    let got: Vec<_> = keys.iter().map(|k| k.fingerprint()).collect();
    assert_eq!(got, expected);

    // SecretList, as YAML.
    let mut secret_list = list.clone();
    secret_list["kind"] = json!("SecretList");
    let yaml = serde_norway::to_string(&secret_list).unwrap();
    assert_eq!(
        parse_private_keys(yaml.as_bytes(), "list.yaml")
            .unwrap()
            .len(),
        2
    );

    // Multi-document YAML, one stringData, with an empty document in between.
    let string_data = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "b", "namespace": "kube-system"},
        "stringData": {"tls.key": &*second},
    });
    let multi = format!(
        "---\n{}---\n---\n{}",
        serde_norway::to_string(&secret_json("a", &first)).unwrap(),
        serde_norway::to_string(&string_data).unwrap()
    );
    let keys = parse_private_keys(multi.as_bytes(), "multi.yaml").unwrap();
    let got: Vec<_> = keys.iter().map(|k| k.fingerprint()).collect();
    assert_eq!(got, expected);
}

#[test]
fn parse_errors_say_where_and_never_echo_the_data() {
    let pem = key_pair().private_key.to_pkcs1_pem();
    let key_line = pem.lines().nth(3).unwrap().to_owned();

    let no_key = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x", "namespace": "ns"}, "data": {"other": "AAAA"}});
    let err = parse_private_keys(&serde_json::to_vec(&no_key).unwrap(), "f.json").unwrap_err();
    assert!(matches!(err, Error::InvalidKeySecret { .. }), "{err}");
    assert!(err.to_string().contains("f.json: Secret ns/x"), "{err}");
    assert!(err.to_string().contains("tls.key"), "{err}");

    let wrong_kind = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n";
    let err = parse_private_keys(wrong_kind.as_bytes(), "cm.yaml").unwrap_err();
    assert!(err.to_string().contains("kind ConfigMap"), "{err}");

    let bad_base64 = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\ndata:\n  tls.key: \"{key_line}!\"\n"
    );
    let err = parse_private_keys(bad_base64.as_bytes(), "s.yaml").unwrap_err();
    assert!(err.to_string().contains("not valid base64"), "{err}");
    assert!(!err.to_string().contains(&key_line), "{err}");

    let broken_yaml = format!("kind: Secret\ndata: [\n  {key_line}: {{\n");
    let err = parse_private_keys(broken_yaml.as_bytes(), "broken.yaml").unwrap_err();
    assert!(matches!(err, Error::ParseManifest { .. }), "{err}");
    assert!(!err.to_string().contains(&key_line), "{err}");

    let broken_json = format!("{{\"kind\": \"Secret\", \"data\": {{\"tls.key\": \"{key_line}\"");
    let err = parse_private_keys(broken_json.as_bytes(), "broken.json").unwrap_err();
    assert!(err.to_string().contains("not valid JSON"), "{err}");
    assert!(!err.to_string().contains(&key_line), "{err}");

    let err = parse_private_keys(b"", "empty.yaml").unwrap_err();
    assert!(matches!(err, Error::NoPrivateKey { .. }), "{err}");
    let err = parse_private_keys(b"just some text", "text").unwrap_err();
    assert!(matches!(err, Error::InvalidKeySecret { .. }), "{err}");

    // A key Secret whose certificate belongs to another key.
    let mut secret = KeySecret::from_key_pair(key_pair(), "ns", DEFAULT_KEY_PREFIX);
    secret.tls_crt = other_key_pair().certificate.to_pem();
    let err = secret.key_pair().unwrap_err();
    assert!(matches!(err, Error::CertificateKeyMismatch { .. }), "{err}");
}

#[test]
fn debug_redacts_the_key() {
    let secret = KeySecret::from_key_pair(key_pair(), "kube-system", DEFAULT_KEY_PREFIX);
    let key_line = secret.tls_key.lines().nth(4).unwrap().to_owned();
    let debug = format!("{secret:?} {secret:#?}");
    assert!(debug.contains("tls_key: <redacted>"), "{debug}");
    assert!(!debug.contains(&key_line));
    assert!(!debug.contains(&STANDARD.encode(secret.tls_key.as_bytes())[..40]));
}

/// Issue 12: key inputs are bounded in size, in the number of Secrets and in field length,
/// and refused past a bound before any key is parsed.
mod bounds {
    use sealbox_crypto::Error;
    use sealbox_crypto::key_secret::{
        MAX_KEY_FIELD_BYTES, MAX_KEY_INPUT_BYTES, MAX_KEY_SECRETS, MAX_YAML_FLOW_OPENINGS,
        parse_key_secrets,
    };
    use sealbox_crypto::parse_private_keys;

    fn is_limit(err: &Error, expected: usize) -> bool {
        matches!(err, Error::LimitExceeded { limit, .. } if *limit == expected)
    }

    #[test]
    fn input_size_is_bounded() {
        let mut input = b"kind: Secret\n".to_vec();
        input.resize(MAX_KEY_INPUT_BYTES + 1, b' ');
        let err = parse_key_secrets(&input, "big.yaml").unwrap_err();
        assert!(is_limit(&err, MAX_KEY_INPUT_BYTES), "{err}");
        assert!(err.to_string().starts_with("big.yaml: "), "{err}");
        let err = parse_private_keys(&input, "big.yaml").unwrap_err();
        assert!(is_limit(&err, MAX_KEY_INPUT_BYTES), "{err}");
    }

    fn minimal_secret() -> &'static str {
        r#"{"kind": "Secret", "stringData": {"tls.key": "k"}}"#
    }

    #[test]
    fn list_items_are_bounded() {
        let list = |n: usize| {
            format!(
                r#"{{"kind": "List", "items": [{}]}}"#,
                vec![minimal_secret(); n].join(",")
            )
        };
        let secrets = parse_key_secrets(list(MAX_KEY_SECRETS).as_bytes(), "l.json").unwrap();
        assert_eq!(secrets.len(), MAX_KEY_SECRETS);
        let err = parse_key_secrets(list(MAX_KEY_SECRETS + 1).as_bytes(), "l.json").unwrap_err();
        assert!(is_limit(&err, MAX_KEY_SECRETS), "{err}");
    }

    #[test]
    fn yaml_documents_are_bounded() {
        let documents =
            |n: usize| vec!["kind: Secret\nstringData: {tls.key: k}"; n].join("\n---\n");
        let secrets = parse_key_secrets(documents(MAX_KEY_SECRETS).as_bytes(), "d.yaml").unwrap();
        assert_eq!(secrets.len(), MAX_KEY_SECRETS);
        let err =
            parse_key_secrets(documents(MAX_KEY_SECRETS + 1).as_bytes(), "d.yaml").unwrap_err();
        assert!(is_limit(&err, MAX_KEY_SECRETS), "{err}");
    }

    /// 100 KB of nested flow sequences took 12 s of CPU in libyaml (quadratic in depth); the
    /// count of flow openings bounds the depth before parsing.
    #[test]
    fn yaml_flow_nesting_is_bounded_before_parsing() {
        let deep = |depth: usize| {
            format!(
                "kind: Secret\nx: {}{}\nstringData: {{tls.key: k}}\n",
                "[".repeat(depth),
                "]".repeat(depth)
            )
        };
        let err = parse_key_secrets(deep(50_000).as_bytes(), "deep.yaml").unwrap_err();
        assert!(is_limit(&err, MAX_YAML_FLOW_OPENINGS), "{err}");
        let err = parse_private_keys(deep(50_000).as_bytes(), "deep.yaml").unwrap_err();
        assert!(is_limit(&err, MAX_YAML_FLOW_OPENINGS), "{err}");
        // Within the bound the parser's own recursion limit answers, quickly.
        let err =
            parse_key_secrets(deep(MAX_YAML_FLOW_OPENINGS - 1).as_bytes(), "d.yaml").unwrap_err();
        assert!(!is_limit(&err, MAX_YAML_FLOW_OPENINGS), "{err}");
        // JSON is parsed linearly and not counted.
        let list = format!(
            r#"{{"kind": "List", "items": [{}]}}"#,
            vec![r#"{"kind": "Secret", "stringData": {"tls.key": "k"}, "x": [{}, {}]}"#; 1000]
                .join(",")
        );
        assert_eq!(
            parse_key_secrets(list.as_bytes(), "l.json").unwrap().len(),
            1000
        );
    }

    #[test]
    fn lists_do_not_nest() {
        let nested = format!(
            r#"{{"kind": "List", "items": [{{"kind": "List", "items": [{}]}}]}}"#,
            minimal_secret()
        );
        let err = parse_key_secrets(nested.as_bytes(), "n.json").unwrap_err();
        assert!(err.to_string().contains("a List inside a List"), "{err}");
    }

    #[test]
    fn key_fields_are_bounded() {
        let long = "A".repeat(MAX_KEY_FIELD_BYTES + 1);
        for secret in [
            format!(r#"{{"kind": "Secret", "stringData": {{"tls.key": "{long}"}}}}"#),
            format!(r#"{{"kind": "Secret", "data": {{"tls.key": "{long}"}}}}"#),
            format!(
                r#"{{"kind": "Secret", "stringData": {{"tls.key": "k"}}, "data": {{"tls.crt": "{long}"}}}}"#
            ),
        ] {
            let err = parse_key_secrets(secret.as_bytes(), "f.json").unwrap_err();
            let message = err.to_string();
            assert!(
                message.contains(&format!("longer than {MAX_KEY_FIELD_BYTES} bytes")),
                "{message}"
            );
            assert!(!message.contains("AAAA"), "{message}");
        }
    }

    #[test]
    fn rejected_annotations_are_quoted_short() {
        let long = "x".repeat(10_000);
        let err = long
            .parse::<sealbox_crypto::Fingerprint>()
            .unwrap_err()
            .to_string();
        assert!(err.len() < 200, "{err}");
        let err = long
            .parse::<sealbox_crypto::Scope>()
            .unwrap_err()
            .to_string();
        assert!(err.len() < 200, "{err}");
    }
}
