//! Round trips through the built `sealbox` binary: seal → unseal for every scope and format,
//! scope binding, merge, the committed independent fixtures, interoperability with the
//! pyca/cryptography implementation, and what failures must not do (touch `-w` targets, print
//! plaintext).

// Helpers outside #[test] fns panic on broken fixtures too; clippy.toml only covers the fns.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use assert_cmd::Command;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use predicates::prelude::*;
use sealbox_crypto::{KeyPair, KeySecret};
use serde::Deserialize as _;
use serde_json::{Value, json};

const CANARY: &str = "PLAINTEXT-CANARY-d41d8cd98f";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn example_cert() -> PathBuf {
    repo("examples/cert.pem")
}

fn example_key() -> PathBuf {
    repo("examples/sealing-key.yaml")
}

fn fixture(name: &str) -> PathBuf {
    repo("crypto/tests/fixtures").join(name)
}

/// The binary with an environment that cannot leak in from the developer's shell.
fn sealbox() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sealbox"));
    cmd.env_remove("SEALBOX_CERT")
        .env_remove("SEALBOX_LOG")
        .env("KUBECONFIG", "/nonexistent/sealbox-test/kubeconfig")
        .env("HOME", "/nonexistent/sealbox-test/home");
    cmd
}

/// A second key pair (2048-bit, generated once per test binary): the "wrong key".
fn other_key() -> &'static (tempfile::TempDir, PathBuf, PathBuf) {
    static KEY: OnceLock<(tempfile::TempDir, PathBuf, PathBuf)> = OnceLock::new();
    KEY.get_or_init(|| {
        let pair = KeyPair::generate_with_bits(2048, "", SystemTime::now()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("other-cert.pem");
        let key = dir.path().join("other-key.yaml");
        std::fs::write(&cert, pair.certificate.to_pem()).unwrap();
        let secret = KeySecret::from_key_pair(&pair, "kube-system", "sealed-secrets-key");
        std::fs::write(&key, secret.to_yaml().unwrap()).unwrap();
        (dir, cert, key)
    })
}

fn secret_yaml(name: &str, namespace: Option<&str>) -> String {
    let namespace = namespace
        .map(|ns| format!("  namespace: {ns}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n{namespace}  labels:\n    app: web\n  annotations:\n    team: core\ntype: Opaque\ndata:\n  username: YWRtaW4=\n  binary: AAEC/w==\nstringData:\n  password: {CANARY}\n"
    )
}

fn expected_data() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("username".to_owned(), "YWRtaW4=".to_owned()),
        ("binary".to_owned(), "AAEC/w==".to_owned()),
        ("password".to_owned(), STANDARD.encode(CANARY)),
    ])
}

/// Parses YAML (multi-document) or a JSON stream into values.
fn documents(text: &str) -> Vec<Value> {
    if text.trim_start().starts_with('{') {
        serde_json::Deserializer::from_str(text)
            .into_iter::<Value>()
            .map(Result::unwrap)
            .collect()
    } else {
        serde_norway::Deserializer::from_str(text)
            .map(|d| Value::deserialize(d).unwrap())
            .filter(|v| !v.is_null())
            .collect()
    }
}

fn to_yaml(value: &Value) -> String {
    serde_norway::to_string(value).unwrap()
}

fn string_map(value: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(value.clone()).unwrap()
}

fn seal(args: &[&str], input: &str) -> String {
    let out = sealbox()
        .arg("seal")
        .arg("--cert")
        .arg(example_cert())
        .args(args)
        .write_stdin(input)
        .assert()
        .success()
        .stdout(predicate::str::contains(CANARY).not())
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap()
}

fn unseal_with(key: &Path, sealed: &str, extra: &[&str]) -> assert_cmd::assert::Assert {
    sealbox()
        .arg("unseal")
        .arg("--key")
        .arg(key)
        .args(extra)
        .write_stdin(sealed.to_owned())
        .assert()
}

fn unseal(sealed: &str) -> Vec<Value> {
    let out = unseal_with(&example_key(), sealed, &[]).success();
    documents(std::str::from_utf8(&out.get_output().stdout).unwrap())
}

#[test]
fn seal_unseal_round_trips_for_every_scope_and_format() {
    let fingerprint = {
        let pem = std::fs::read(example_cert()).unwrap();
        sealbox_crypto::Certificate::from_pem(&pem)
            .unwrap()
            .public_key()
            .fingerprint()
            .to_string()
    };
    for scope in ["strict", "namespace-wide", "cluster-wide"] {
        for format in ["yaml", "json"] {
            let sealed = seal(
                &["--scope", scope, "-o", format],
                &secret_yaml("db", Some("prod")),
            );
            assert_eq!(sealed.trim_start().starts_with('{'), format == "json");
            let docs = documents(&sealed);
            assert_eq!(docs.len(), 1);
            let doc = &docs[0];
            assert_eq!(doc["apiVersion"], "bitnami.com/v1alpha1");
            assert_eq!(doc["kind"], "SealedSecret");
            assert_eq!(doc["metadata"]["name"], "db");
            assert_eq!(doc["metadata"]["namespace"], "prod");
            assert!(doc.get("status").is_none());
            assert!(doc["metadata"].get("creationTimestamp").is_none());
            assert!(!sealed.contains("null"), "no null fields: {sealed}");
            let annotations = string_map(&doc["metadata"]["annotations"]);
            assert_eq!(annotations["sealbox.dev/sealing-key"], fingerprint);
            let scope_annotation = format!("sealedsecrets.bitnami.com/{scope}");
            match scope {
                "strict" => assert_eq!(annotations.len(), 1, "{annotations:?}"),
                _ => assert_eq!(annotations[&scope_annotation], "true"),
            }
            let template = &doc["spec"]["template"];
            assert_eq!(template["metadata"]["labels"]["app"], "web");
            assert_eq!(template["metadata"]["annotations"]["team"], "core");
            assert_eq!(template["type"], "Opaque");
            let keys: Vec<String> = string_map(&doc["spec"]["encryptedData"])
                .into_keys()
                .collect();
            assert_eq!(keys, ["binary", "password", "username"]);

            let secrets = unseal(&sealed);
            assert_eq!(secrets.len(), 1);
            let secret = &secrets[0];
            assert_eq!(secret["kind"], "Secret");
            assert_eq!(secret["metadata"]["name"], "db");
            assert_eq!(secret["metadata"]["namespace"], "prod");
            assert_eq!(secret["metadata"]["labels"]["app"], "web");
            assert_eq!(secret["type"], "Opaque");
            assert_eq!(
                string_map(&secret["data"]),
                expected_data(),
                "{scope} {format}"
            );
        }
    }
}

#[test]
fn several_documents_seal_and_unseal_in_order() {
    let input = format!(
        "{}---\n{}",
        secret_yaml("one", Some("a")),
        secret_yaml("two", Some("b"))
    );
    let sealed = seal(&[], &input);
    assert_eq!(sealed.matches("\n---\n").count(), 1, "{sealed}");
    let secrets = unseal(&sealed);
    let names: Vec<&str> = secrets
        .iter()
        .map(|s| s["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["one", "two"]);

    // JSON input, a v1 List of two Secrets, JSON output.
    let list = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x", "namespace": "n"}, "stringData": {"k": "v"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "y", "namespace": "n"}, "data": {"k": "dw=="}}
    ]});
    let sealed = seal(&["-o", "json"], &list.to_string());
    let secrets = unseal(&sealed);
    assert_eq!(secrets.len(), 2);
    assert_eq!(secrets[1]["data"]["k"], "dw==");
}

#[test]
fn server_fields_and_last_applied_are_stripped() {
    let input = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: n\n  uid: 0a1b\n  resourceVersion: \"42\"\n  creationTimestamp: \"2024-01-01T00:00:00Z\"\n  generation: 3\n  selfLink: /api/v1/x\n  managedFields: [{{manager: kubectl}}]\n  ownerReferences: [{{kind: X, name: y, uid: z, apiVersion: v1}}]\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: '{{\"stringData\":{{\"p\":\"{CANARY}\"}}}}'\nstringData:\n  p: x\nstatus: {{}}\n"
    );
    let sealed = seal(&[], &input);
    for field in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "generation",
        "selfLink",
        "managedFields",
        "ownerReferences",
        "last-applied",
        "status",
    ] {
        assert!(!sealed.contains(field), "{field} leaked into {sealed}");
    }
}

/// Rewrites one metadata field of a sealed YAML document.
fn edit_metadata(sealed: &str, field: &str, value: &str) -> String {
    let mut doc = documents(sealed).remove(0);
    doc["metadata"][field] = Value::from(value);
    to_yaml(&doc)
}

fn assert_unseal_fails(sealed: &str) {
    unseal_with(&example_key(), sealed, &[])
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains("no key could decrypt"))
        .stderr(predicate::str::contains(CANARY).not());
}

#[test]
fn scope_binds_values_to_namespace_and_name() {
    let input = secret_yaml("db", Some("prod"));

    let strict = seal(&["--scope", "strict"], &input);
    assert_unseal_fails(&edit_metadata(&strict, "name", "other"));
    assert_unseal_fails(&edit_metadata(&strict, "namespace", "staging"));

    let namespace_wide = seal(&["--scope", "namespace-wide"], &input);
    let renamed = unseal(&edit_metadata(&namespace_wide, "name", "other"));
    assert_eq!(renamed[0]["metadata"]["name"], "other");
    assert_eq!(string_map(&renamed[0]["data"]), expected_data());
    assert_unseal_fails(&edit_metadata(&namespace_wide, "namespace", "staging"));

    let cluster_wide = seal(&["--scope", "cluster-wide"], &input);
    let moved = edit_metadata(&edit_metadata(&cluster_wide, "namespace", "x"), "name", "y");
    let secrets = unseal(&moved);
    assert_eq!(secrets[0]["metadata"]["namespace"], "x");
    assert_eq!(string_map(&secrets[0]["data"]), expected_data());

    // A scope annotation smuggled into the template never widens a strict object.
    let mut doc = documents(&strict).remove(0);
    doc["metadata"]["name"] = Value::from("other");
    doc["spec"]["template"]["metadata"]["annotations"]["sealedsecrets.bitnami.com/cluster-wide"] =
        Value::from("true");
    assert_unseal_fails(&to_yaml(&doc));
}

#[test]
fn wrong_key_fails_and_hint_orders_keys() {
    let sealed = seal(&[], &secret_yaml("db", Some("prod")));
    let (_, _, other) = other_key();
    unseal_with(other, &sealed, &[])
        .code(1)
        .stderr(predicate::str::contains(
            "encryptedData.password: no key could decrypt",
        ))
        .stderr(predicate::str::contains("encryptedData.username"))
        .stderr(predicate::str::contains(CANARY).not());
    // With both keys, in either order, the hinted key is found.
    let out = sealbox()
        .arg("unseal")
        .arg("--key")
        .arg(other)
        .arg("--key")
        .arg(example_key())
        .write_stdin(sealed)
        .assert()
        .success();
    let secret = documents(std::str::from_utf8(&out.get_output().stdout).unwrap()).remove(0);
    assert_eq!(string_map(&secret["data"]), expected_data());
}

#[test]
fn scope_from_the_secrets_own_annotation_when_no_flag() {
    let input = "kind: Secret\napiVersion: v1\nmetadata:\n  name: a\n  namespace: b\n  annotations:\n    sealedsecrets.bitnami.com/namespace-wide: \"true\"\nstringData: {k: v}\n";
    let doc = documents(&seal(&[], input)).remove(0);
    assert_eq!(
        doc["metadata"]["annotations"]["sealedsecrets.bitnami.com/namespace-wide"],
        "true"
    );
    assert!(
        doc["spec"]["template"]["metadata"]
            .get("annotations")
            .is_none()
    );
}

#[test]
fn merge_keeps_scope_name_and_untouched_ciphertexts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sealed.yaml");
    let input = "apiVersion: v1\nkind: Secret\nmetadata: {name: app, namespace: team}\nstringData: {a: one, b: two}\n";
    let sealed = seal(&["--scope", "namespace-wide"], input);
    std::fs::write(&file, &sealed).unwrap();
    let before = string_map(&documents(&sealed)[0]["spec"]["encryptedData"]);

    // The input names another Secret; the file's name, namespace and scope win.
    let update = "apiVersion: v1\nkind: Secret\nmetadata: {name: elsewhere, namespace: other}\nstringData: {b: TWO, c: three}\n";
    sealbox()
        .args(["merge", "--into"])
        .arg(&file)
        .arg("--cert")
        .arg(example_cert())
        .write_stdin(update)
        .assert()
        .success()
        .stdout("")
        .stderr(predicate::str::contains(
            "added [c], replaced [b], 1 unchanged",
        ));

    let merged_text = std::fs::read_to_string(&file).unwrap();
    let merged = documents(&merged_text).remove(0);
    assert_eq!(merged["metadata"]["name"], "app");
    assert_eq!(merged["metadata"]["namespace"], "team");
    assert_eq!(
        merged["metadata"]["annotations"]["sealedsecrets.bitnami.com/namespace-wide"],
        "true"
    );
    let after = string_map(&merged["spec"]["encryptedData"]);
    assert_eq!(
        after["a"], before["a"],
        "untouched key keeps its ciphertext"
    );
    assert_ne!(after["b"], before["b"]);
    let secret = unseal(&merged_text).remove(0);
    let data = string_map(&secret["data"]);
    assert_eq!(data["a"], STANDARD.encode("one"));
    assert_eq!(data["b"], STANDARD.encode("TWO"));
    assert_eq!(data["c"], STANDARD.encode("three"));

    // JSON files stay JSON.
    let json_file = dir.path().join("sealed.json");
    std::fs::write(&json_file, seal(&["-o", "json"], input)).unwrap();
    sealbox()
        .args(["merge", "--into"])
        .arg(&json_file)
        .arg("--cert")
        .arg(example_cert())
        .write_stdin(update)
        .assert()
        .success();
    let text = std::fs::read_to_string(&json_file).unwrap();
    assert!(text.starts_with('{'), "{text}");
}

#[derive(serde::Deserialize)]
struct FixtureValue {
    scope: String,
    secret_key: String,
    key_index: usize,
    plaintext_b64: String,
}

#[test]
fn independent_fixtures_unseal_with_every_key_form() {
    let facts: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("sealed.json")).unwrap()).unwrap();
    let values: Vec<FixtureValue> = serde_json::from_value(facts["values"].clone()).unwrap();
    for scope in ["strict", "namespace-wide", "cluster-wide"] {
        let sealed =
            std::fs::read_to_string(fixture(&format!("sealedsecret-{scope}.yaml"))).unwrap();
        for key in [
            "key-secret.yaml",
            "key-secret.json",
            "keys-list.yaml",
            "key-pkcs1.pem",
            "key-pkcs8.pem",
        ] {
            let out = unseal_with(&fixture(key), &sealed, &[]).success();
            let secret =
                documents(std::str::from_utf8(&out.get_output().stdout).unwrap()).remove(0);
            let data = string_map(&secret["data"]);
            let expected: BTreeMap<String, String> = values
                .iter()
                .filter(|v| {
                    v.scope == scope && v.key_index == 0 && data.contains_key(&v.secret_key)
                })
                .map(|v| (v.secret_key.clone(), v.plaintext_b64.clone()))
                .collect();
            assert!(!expected.is_empty(), "{scope}: fixture values found");
            assert_eq!(data, expected, "{scope} with {key}");
        }
    }
}

fn python_with_cryptography() -> Option<&'static str> {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import cryptography"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some("python3")
}

#[test]
fn sealbox_output_unseals_with_pyca_cryptography() {
    let Some(python) = python_with_cryptography() else {
        println!(
            "SKIPPED sealbox_output_unseals_with_pyca_cryptography: python3 with the `cryptography` package is not available (pip install cryptography)"
        );
        return;
    };
    let mut requests = Vec::new();
    let mut expected = Vec::new();
    for scope in ["strict", "namespace-wide", "cluster-wide"] {
        let out = sealbox()
            .args(["seal", "--scope", scope, "-o", "json", "--cert"])
            .arg(fixture("cert.pem"))
            .write_stdin(secret_yaml("db", Some("prod")))
            .assert()
            .success();
        let doc = documents(std::str::from_utf8(&out.get_output().stdout).unwrap()).remove(0);
        let label = match scope {
            "strict" => "prod/db",
            "namespace-wide" => "prod",
            _ => "",
        };
        for (key, value) in string_map(&doc["spec"]["encryptedData"]) {
            requests.push(json!({"label_b64": STANDARD.encode(label), "ciphertext_b64": value}));
            expected.push(expected_data()[&key].clone());
        }
    }
    // Raw values too.
    let raw = sealbox()
        .args(["seal", "--raw", "-n", "prod", "--name", "db", "--cert"])
        .arg(fixture("cert.pem"))
        .write_stdin(CANARY)
        .assert()
        .success();
    let raw = String::from_utf8(raw.get_output().stdout.clone()).unwrap();
    requests.push(json!({"label_b64": STANDARD.encode("prod/db"), "ciphertext_b64": raw.trim()}));
    expected.push(STANDARD.encode(CANARY));

    let request = json!({
        "private_key_pem": std::fs::read_to_string(fixture("key-pkcs1.pem")).unwrap(),
        "values": requests,
    });
    let mut child = std::process::Command::new(python)
        .arg(fixture("check_sealed.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "check_sealed.py failed");
    let result: Value = serde_json::from_slice(&output.stdout).unwrap();
    let plaintexts: Vec<String> = serde_json::from_value(result["plaintexts_b64"].clone()).unwrap();
    assert_eq!(plaintexts, expected);
}

#[test]
fn raw_values_unseal_inside_a_sealed_secret() {
    let raw = |args: &[&str]| {
        let out = sealbox()
            .args(["seal", "--raw", "--cert"])
            .arg(example_cert())
            .args(args)
            .write_stdin(CANARY)
            .assert()
            .success();
        String::from_utf8(out.get_output().stdout.clone())
            .unwrap()
            .trim()
            .to_owned()
    };
    let strict = raw(&["-n", "prod", "--name", "db"]);
    let cluster = raw(&["--scope", "cluster-wide"]);
    let sealed = format!(
        "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata:\n  name: db\n  namespace: prod\nspec:\n  encryptedData:\n    token: {strict}\n---\napiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata:\n  name: any\n  namespace: where\n  annotations:\n    sealedsecrets.bitnami.com/cluster-wide: \"true\"\nspec:\n  encryptedData:\n    token: {cluster}\n"
    );
    let secrets = unseal(&sealed);
    for secret in &secrets {
        assert_eq!(secret["data"]["token"], STANDARD.encode(CANARY));
    }

    // From a file, to a file.
    let dir = tempfile::tempdir().unwrap();
    let value = dir.path().join("value");
    let out = dir.path().join("value.sealed");
    std::fs::write(&value, b"\x00\x01binary").unwrap();
    sealbox()
        .args([
            "seal",
            "--raw",
            "--scope",
            "namespace-wide",
            "-n",
            "prod",
            "--cert",
        ])
        .arg(example_cert())
        .arg("--from-file")
        .arg(&value)
        .arg("-w")
        .arg(&out)
        .assert()
        .success()
        .stdout("");
    let sealed_value = std::fs::read_to_string(&out).unwrap();
    assert!(sealed_value.starts_with("Ag"), "{sealed_value}");
}

#[test]
fn namespace_falls_back_to_kubeconfig_then_default() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    let second = dir.path().join("second");
    std::fs::write(&first, "apiVersion: v1\nkind: Config\ncontexts:\n- name: dev\n  context: {cluster: c, namespace: team-a}\n").unwrap();
    std::fs::write(&second, "current-context: dev\n").unwrap();
    let list = std::env::join_paths([&first, &second]).unwrap();
    let input = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {k: v}\n";
    let namespace_of = |cmd: &mut Command| {
        let out = cmd.write_stdin(input).assert().success();
        let doc = documents(std::str::from_utf8(&out.get_output().stdout).unwrap()).remove(0);
        doc["metadata"]["namespace"].clone()
    };

    let mut cmd = sealbox();
    cmd.env("KUBECONFIG", &list)
        .arg("seal")
        .arg("--cert")
        .arg(example_cert());
    assert_eq!(namespace_of(&mut cmd), "team-a");

    let explicit = dir.path().join("explicit");
    std::fs::write(
        &explicit,
        "current-context: x\ncontexts:\n- name: x\n  context: {namespace: team-b}\n",
    )
    .unwrap();
    let mut cmd = sealbox();
    cmd.env("KUBECONFIG", &list)
        .args(["seal", "--kubeconfig"])
        .arg(&explicit)
        .arg("--cert")
        .arg(example_cert());
    assert_eq!(namespace_of(&mut cmd), "team-b");

    let mut cmd = sealbox();
    cmd.args(["seal", "-n", "flag-ns", "--cert"])
        .arg(example_cert());
    assert_eq!(namespace_of(&mut cmd), "flag-ns");

    let mut cmd = sealbox();
    cmd.arg("seal").arg("--cert").arg(example_cert());
    assert_eq!(namespace_of(&mut cmd), "default");

    // Cluster-wide needs no namespace and never reads the kubeconfig (this one is broken).
    let broken = dir.path().join("broken");
    std::fs::write(&broken, "current-context: [").unwrap();
    let mut cmd = sealbox();
    cmd.env("KUBECONFIG", &broken)
        .args(["seal", "--scope", "cluster-wide", "--cert"])
        .arg(example_cert());
    assert_eq!(namespace_of(&mut cmd), Value::Null);
    sealbox()
        .env("KUBECONFIG", &broken)
        .args(["seal", "--cert"])
        .arg(example_cert())
        .write_stdin(input)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot parse the kubeconfig"))
        .stderr(predicate::str::contains("pass --namespace"));
}

#[test]
fn cert_comes_from_env_and_from_http() {
    let input = secret_yaml("db", Some("prod"));
    sealbox()
        .env("SEALBOX_CERT", example_cert())
        .arg("seal")
        .write_stdin(input.clone())
        .assert()
        .success();

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let pem = std::fs::read(example_cert()).unwrap();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                break;
            }
        }
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-pem-file\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            pem.len()
        )
        .unwrap();
        stream.write_all(&pem).unwrap();
        request_line
    });
    sealbox()
        .args(["seal", "--cert"])
        .arg(format!("http://127.0.0.1:{port}/v1/cert.pem"))
        .write_stdin(input)
        .assert()
        .success();
    assert!(server.join().unwrap().starts_with("GET /v1/cert.pem "));
}

#[test]
fn verify_passes_good_files_and_lists_problems() {
    let sealed = seal(
        &["--scope", "namespace-wide"],
        &secret_yaml("db", Some("prod")),
    );
    sealbox()
        .args(["verify", "--cert"])
        .arg(example_cert())
        .write_stdin(sealed.clone())
        .assert()
        .success()
        .stdout("")
        .stderr(predicate::str::starts_with(
            "ok (offline): 1 SealedSecret(s), 3 value(s)",
        ));

    let (_, other_cert, _) = other_key();
    sealbox()
        .args(["verify", "--cert"])
        .arg(other_cert)
        .write_stdin(sealed.clone())
        .assert()
        .code(1)
        .stderr(predicate::str::contains("sealed to another key"))
        .stderr(predicate::str::contains(
            "the length prefix says 512 bytes of RSA ciphertext, but the certificate's 2048-bit key makes 256",
        ));

    let mut doc = documents(&sealed).remove(0);
    let value = doc["spec"]["encryptedData"]["password"]
        .as_str()
        .unwrap()
        .to_owned();
    doc["spec"]["encryptedData"]["password"] = Value::from(&value[..value.len() / 2]);
    doc["metadata"]["annotations"]["sealedsecrets.bitnami.com/namespace-wide"] = Value::from("yes");
    sealbox()
        .args(["verify", "--cert"])
        .arg(example_cert())
        .write_stdin(to_yaml(&doc))
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "<stdin>, document 1: spec.encryptedData.password:",
        ))
        .stderr(predicate::str::contains("set, but not to \"true\""))
        .stderr(predicate::str::contains("metadata.namespace").not())
        .stderr(predicate::str::contains("2 problem(s) in 1 document(s)"));
}

#[test]
fn committed_example_is_consistent() {
    let sealed = std::fs::read_to_string(repo("examples/sealed-secret.yaml")).unwrap();
    let secret = unseal(&sealed).remove(0);
    let plain =
        documents(&std::fs::read_to_string(repo("examples/secret.yaml")).unwrap()).remove(0);
    assert_eq!(secret["metadata"]["name"], plain["metadata"]["name"]);
    let data = string_map(&secret["data"]);
    for (key, value) in string_map(&plain["stringData"]) {
        assert_eq!(data[&key], STANDARD.encode(value));
    }
    sealbox()
        .args(["verify", "--cert"])
        .arg(example_cert())
        .arg("-f")
        .arg(repo("examples/sealed-secret.yaml"))
        .assert()
        .success();
}

#[test]
fn failures_leave_write_targets_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out.yaml");
    let original = "original: content\n";
    let (_, _, other) = other_key();
    let sealed = seal(&[], &secret_yaml("db", Some("prod")));
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec![
                "seal".into(),
                "--cert".into(),
                example_cert().display().to_string(),
            ],
            "kind: Secret\ndata: {password: '!!'}\n".into(),
        ),
        (
            vec![
                "seal".into(),
                "--cert".into(),
                fixture("cert-expired.pem").display().to_string(),
            ],
            secret_yaml("db", Some("prod")),
        ),
        (
            vec![
                "seal".into(),
                "--cert".into(),
                "http://127.0.0.1:1/v1/cert.pem".into(),
            ],
            secret_yaml("db", Some("prod")),
        ),
        (
            vec![
                "seal".into(),
                "--cert".into(),
                example_cert().display().to_string(),
            ],
            format!("{}---\nkind: ConfigMap\n", secret_yaml("a", Some("b"))),
        ),
        (
            vec!["unseal".into(), "--key".into(), other.display().to_string()],
            sealed.clone(),
        ),
        (
            vec![
                "seal".into(),
                "--raw".into(),
                "--cert".into(),
                example_cert().display().to_string(),
            ],
            CANARY.into(),
        ),
    ];
    for (args, stdin) in cases {
        std::fs::write(&target, original).unwrap();
        sealbox()
            .args(&args)
            .arg("-w")
            .arg(&target)
            .write_stdin(stdin)
            .assert()
            .failure()
            .stdout("")
            .stderr(predicate::str::contains(CANARY).not());
        assert_eq!(
            std::fs::read_to_string(&target).unwrap(),
            original,
            "{args:?}"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    // merge: a failing merge leaves the sealed file as it was.
    std::fs::write(&target, &sealed).unwrap();
    sealbox()
        .args(["merge", "--cert"])
        .arg(fixture("cert-expired.pem"))
        .arg("--into")
        .arg(&target)
        .write_stdin(secret_yaml("db", Some("prod")))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("expired on"));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), sealed);
}

#[test]
fn errors_never_print_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.yaml");
    std::fs::write(&plain, secret_yaml("db", Some("prod"))).unwrap();
    let canary_b64 = STANDARD.encode(CANARY);
    let inputs = [
        // Bad base64 next to a plaintext canary; the canary itself as a data value.
        format!("kind: Secret\nmetadata: {{name: a}}\ndata:\n  bad: '{CANARY}'\n"),
        format!("kind: Secret\nmetadata: {{name: a}}\nstringData:\n  a: {CANARY}\n  b: 5\n"),
        format!("kind: Secret\nmetadata: {{name: a}}\nstringData:\n  a: [{CANARY}]\n"),
        format!("kind: Secret\nmetadata: {{name: a}}\nimmutable: {CANARY}\nstringData: {{a: b}}\n"),
        format!("kind: Secret\nmetadata: {{name: a, labels: {{x: [{CANARY}]}}}}\n"),
        format!("kind: Secret\nmetadata: {{name: a}}\nstringData: {{a: {CANARY}}}\n: : bad yaml\n"),
        format!("{{\"kind\":\"Secret\",\"stringData\":{{\"a\":\"{CANARY}\"}}}} trailing"),
        format!("kind: ConfigMap\ndata: {{a: {CANARY}}}\n"),
        format!("kind: Secret\ntype: [{CANARY}]\n"),
    ];
    for input in &inputs {
        for args in [
            vec!["seal"],
            vec!["merge", "--into", plain.to_str().unwrap()],
        ] {
            sealbox()
                .args(&args)
                .arg("--cert")
                .arg(example_cert())
                .write_stdin(input.clone())
                .assert()
                .code(2)
                .stdout("")
                .stderr(predicate::str::contains(CANARY).not())
                .stderr(predicate::str::contains(&canary_b64).not());
        }
    }
    // merge into a plaintext Secret must not echo it.
    sealbox()
        .args(["merge", "--into"])
        .arg(&plain)
        .arg("--cert")
        .arg(example_cert())
        .write_stdin(secret_yaml("db", Some("prod")))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "expected SealedSecret, found Secret",
        ))
        .stderr(predicate::str::contains(CANARY).not());
    // unseal of a plaintext Secret, and with the plaintext file as a key.
    sealbox()
        .args(["unseal", "--key"])
        .arg(&plain)
        .write_stdin(secret_yaml("db", Some("prod")))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(CANARY).not())
        .stderr(predicate::str::contains(&canary_b64).not());
}

/// Finding 7 of issue 12: a value the parser cannot type (`!!int`, `!!float`, … on a string,
/// or a string where a list belongs) must be named by its field, never quoted, in every file the
/// CLI reads: Secrets (`seal`, `check`, `merge`), SealedSecrets (`unseal`, `verify`), kubeconfigs
/// (both the namespace lookup and the cluster client) and `.sealbox.yaml`.
#[test]
fn mistyped_values_are_named_never_quoted() {
    let dir = tempfile::tempdir().unwrap();
    let not_leaked = |assert: assert_cmd::assert::Assert| {
        let stderr = stderr_text(&assert);
        assert!(!stderr.contains(CANARY), "{stderr}");
        assert!(!stderr.contains(&STANDARD.encode(CANARY)), "{stderr}");
        stderr
    };
    let documents = [
        format!("kind: Secret\nmetadata: {{name: a}}\nstringData:\n  password: !!int {CANARY}\n"),
        format!("kind: Secret\nmetadata: {{name: a}}\nstringData:\n  password: !!float {CANARY}\n"),
        format!("kind: Secret\nmetadata: {{name: a}}\ndata:\n  password: !!bool {CANARY}\n"),
        format!("kind: Secret\nmetadata: {{name: a}}\ndata:\n  password: !!null {CANARY}\n"),
        format!(
            "kind: Secret\nmetadata: {{name: a}}\ndata:\n  nested: {{deeper: !!int {CANARY}}}\n"
        ),
        format!(
            "kind: SealedSecret\napiVersion: bitnami.com/v1alpha1\nmetadata: {{name: a, namespace: b}}\nspec:\n  encryptedData:\n    password: !!int {CANARY}\n"
        ),
    ];
    for (index, document) in documents.iter().enumerate() {
        let file = dir.path().join(format!("doc-{index}.yaml"));
        std::fs::write(&file, document).unwrap();
        let stderr = not_leaked(
            sealbox()
                .args(["seal", "-n", "x", "--cert"])
                .arg(example_cert())
                .arg("-f")
                .arg(&file)
                .assert()
                .code(2),
        );
        assert!(
            stderr.contains("password") || stderr.contains("nested"),
            "{stderr}"
        );
        not_leaked(sealbox().arg("check").arg(&file).assert());
        not_leaked(
            sealbox()
                .args(["unseal", "--key"])
                .arg(example_key())
                .arg("-f")
                .arg(&file)
                .assert()
                .code(2),
        );
        not_leaked(
            sealbox()
                .args(["verify", "--cert"])
                .arg(example_cert())
                .arg("-f")
                .arg(&file)
                .assert(),
        );
    }

    // Kubeconfigs: the namespace lookup of `seal`, and the cluster client of `cert fetch`.
    let kubeconfigs = [
        format!("current-context: dev\ncontexts: {CANARY}\n"),
        format!("current-context: dev\ncontexts:\n- name: dev\n  context: {CANARY}\n"),
        format!("current-context: !!int {CANARY}\n"),
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: dev\ncontexts:\n- name: dev\n  context: {{cluster: c, user: u, namespace: team}}\nclusters:\n- name: c\n  cluster: {{server: \"https://127.0.0.1:1\"}}\nusers:\n- name: u\n  user:\n    token: !!int {CANARY}\n"
        ),
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: dev\ncontexts:\n- name: dev\n  context: {{cluster: c, user: u, namespace: team}}\nclusters:\n- name: c\n  cluster: {{server: \"https://127.0.0.1:1\"}}\nusers:\n- name: u\n  user:\n    token: {CANARY}\n    password: [unclosed\n"
        ),
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: dev\ncontexts:\n- name: dev\n  context: {{cluster: c, user: u, namespace: team}}\nclusters:\n- name: c\n  cluster: {{server: \"https://127.0.0.1:1\"}}\nusers:\n- name: u\n  user:\n    client-key-data: \"{CANARY}\"\n    client-certificate-data: \"{CANARY}\"\n"
        ),
    ];
    for (index, kubeconfig) in kubeconfigs.iter().enumerate() {
        let file = dir.path().join(format!("kubeconfig-{index}"));
        std::fs::write(&file, kubeconfig).unwrap();
        not_leaked(
            sealbox()
                .args(["seal", "--kubeconfig"])
                .arg(&file)
                .arg("--cert")
                .arg(example_cert())
                .write_stdin(secret_yaml("db", None))
                .assert(),
        );
        let stderr = not_leaked(
            sealbox()
                .args(["cert", "fetch", "--kubeconfig"])
                .arg(&file)
                .assert()
                .code(2),
        );
        // A bad base64 value is named by its field, without the offending byte or offset.
        assert!(!stderr.contains("Invalid symbol"), "{stderr}");
    }

    // .sealbox.yaml.
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    std::fs::write(
        repo.join("sealed.yaml"),
        seal(&["-n", "x"], &secret_yaml("db", None)),
    )
    .unwrap();
    for config in [
        format!("rules: {CANARY}\n"),
        format!("rules:\n- path: \"*\"\n  scope: {CANARY}\n"),
        format!("ignore: [{{a: {CANARY}}}]\n"),
    ] {
        std::fs::write(repo.join(".sealbox.yaml"), config).unwrap();
        let stderr = not_leaked(sealbox().arg("check").arg(&repo).assert().code(2));
        assert!(stderr.contains(".sealbox.yaml"), "{stderr}");
    }
}

/// Finding 7 of issue 12: `unseal -w` over an existing 0644 file leaves the plaintext 0600.
#[cfg(unix)]
#[test]
fn unseal_write_is_owner_only_over_an_existing_file() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("unsealed.yaml");
    std::fs::write(&target, "old\n").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
    let sealed = seal(&[], &secret_yaml("db", Some("prod")));
    unseal_with(&example_key(), &sealed, &["-w", target.to_str().unwrap()]).success();
    let mode = std::fs::metadata(&target).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    assert!(
        std::fs::read_to_string(&target)
            .unwrap()
            .contains("password")
    );
}

#[test]
fn completions_and_version() {
    for shell in ["bash", "zsh", "fish"] {
        sealbox()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains("unseal"));
    }
    sealbox()
        .arg("--version")
        .assert()
        .success()
        .stdout(format!("sealbox {}\n", env!("CARGO_PKG_VERSION")));
    sealbox()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Exit codes:"));
}

#[test]
fn broken_pipe_is_a_clean_exit() {
    let input = (0..200)
        .map(|i| secret_yaml(&format!("s{i}"), Some("n")))
        .collect::<Vec<_>>()
        .join("---\n");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sealbox"))
        .args(["seal", "--cert"])
        .arg(example_cert())
        .env("KUBECONFIG", "/nonexistent")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{:?}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Regenerates examples/: a new RSA-4096 key pair. Run by hand, then re-seal
/// examples/sealed-secret.yaml (examples/README.md has both commands).
#[test]
#[ignore = "writes a new example key pair into examples/"]
fn regenerate_example_key() {
    let pair = KeyPair::generate("", SystemTime::now()).unwrap();
    let mut secret = KeySecret::from_key_pair(&pair, "kube-system", "sealed-secrets-key");
    secret.name = Some("sealed-secrets-keyexample".to_owned());
    let header = "# EXAMPLE KEY, PUBLISHED WITH SEALBOX: anyone can unseal what is sealed with it.\n# For demos and tests only; never use it (or examples/cert.pem) for real secrets.\n";
    std::fs::write(
        example_key(),
        format!("{header}{}", secret.to_yaml().unwrap()),
    )
    .unwrap();
    std::fs::write(example_cert(), pair.certificate.to_pem()).unwrap();
}

/// Seals `secret_yaml(name, ns)` with `cert`, returning the YAML.
fn seal_with(cert: &Path, name: &str, namespace: &str) -> String {
    let out = sealbox()
        .arg("seal")
        .arg("--cert")
        .arg(cert)
        .write_stdin(secret_yaml(name, Some(namespace)))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap()
}

fn stderr_text(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&assert.get_output().stderr).into_owned()
}

#[test]
fn check_catches_a_hidden_plaintext_secret_and_passes_a_clean_repo() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    std::fs::create_dir_all(repo.join("apps/.git")).unwrap();
    std::fs::create_dir_all(repo.join("charts")).unwrap();
    std::fs::write(
        repo.join("apps/db.yaml"),
        seal_with(&example_cert(), "db", "prod"),
    )
    .unwrap();
    std::fs::write(
        repo.join("apps/old.yaml"),
        seal_with(&other_key().1, "old", "prod"),
    )
    .unwrap();
    // Skipped: .git, and what the ignore list names.
    std::fs::write(
        repo.join("apps/.git/leak.yaml"),
        secret_yaml("git", Some("x")),
    )
    .unwrap();
    std::fs::write(
        repo.join("charts/leak.yaml"),
        secret_yaml("chart", Some("x")),
    )
    .unwrap();
    std::fs::write(repo.join("notes.txt"), secret_yaml("txt", Some("x"))).unwrap();
    let cert = example_cert().display().to_string();
    let check = |extra: &[&str]| {
        let mut cmd = sealbox();
        cmd.current_dir(repo)
            .arg("check")
            .args(["--ignore", "charts/"])
            .args(extra)
            .arg(".");
        cmd
    };

    // Clean (structure only without a certificate).
    check(&[]).assert().success().stdout("");
    // With the certificate: the file sealed to the other key is stale, reported, not fatal.
    let out = check(&["--cert", &cert]).assert().success();
    let stderr = stderr_text(&out);
    assert!(
        stderr.contains("warning: ./apps/old.yaml, document 1 (prod/old): sealed to SHA256:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("check passed: 2 file(s), 2 SealedSecret(s)"),
        "{stderr}"
    );
    check(&["--fail-on-stale", "--cert", &cert])
        .assert()
        .code(1);

    // A plaintext Secret hidden as the third document of a manifest bundle.
    let bundle = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\ndata: {{a: b}}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: s}}\n---\n{}",
        secret_yaml("hidden", Some("prod"))
    );
    std::fs::write(repo.join("apps/bundle.yaml"), bundle).unwrap();
    let out = check(&[]).assert().code(1).stdout("");
    let stderr = stderr_text(&out);
    assert!(
        stderr.contains("error: ./apps/bundle.yaml, document 3 (prod/hidden): plaintext Secret (keys: data.binary, data.username, stringData.password)"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(CANARY) && !stderr.contains("YWRtaW4="),
        "{stderr}"
    );

    // --json: one object on stdout.
    let out = check(&["--json"]).assert().code(1);
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["plaintextSecrets"], 1);
    assert_eq!(report["findings"][0]["kind"], "plaintext-secret");
    assert_eq!(report["findings"][0]["document"], 3);
    assert!(!String::from_utf8_lossy(&out.get_output().stdout).contains(CANARY));

    // A damaged sealed file fails too.
    std::fs::remove_file(repo.join("apps/bundle.yaml")).unwrap();
    let db = std::fs::read_to_string(repo.join("apps/db.yaml")).unwrap();
    let value = documents(&db)[0]["spec"]["encryptedData"]["password"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::write(repo.join("apps/db.yaml"), db.replace(&value, &value[..40])).unwrap();
    let out = check(&["--cert", &cert]).assert().code(1);
    assert!(
        stderr_text(&out).contains("spec.encryptedData.password: truncated"),
        "{}",
        stderr_text(&out)
    );
}

#[test]
fn reencrypt_offline_keeps_current_files_and_other_documents() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    let (_, other_cert, other_key_file) = other_key();
    let current = seal_with(&example_cert(), "current", "prod");
    std::fs::write(repo.join("current.yaml"), &current).unwrap();
    // Two stale SealedSecrets between a comment and a ConfigMap: edited in place.
    let bundle = format!(
        "# managed by hand: keep this comment\n{}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}  # and this one\ndata: {{a: b}}\n---\n{}",
        seal_with(other_cert, "one", "prod"),
        seal_with(other_cert, "two", "prod")
    );
    std::fs::write(repo.join("bundle.yaml"), &bundle).unwrap();
    // JSON keeps JSON.
    let json_sealed = sealbox()
        .args(["seal", "-o", "json", "--cert"])
        .arg(other_cert)
        .write_stdin(secret_yaml("json", Some("prod")))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    std::fs::write(repo.join("sealed.json"), &json_sealed).unwrap();
    std::fs::write(repo.join("plain.yaml"), secret_yaml("plain", Some("prod"))).unwrap();

    let out = sealbox()
        .current_dir(repo)
        .args(["reencrypt", "--key"])
        .arg(other_key_file)
        .arg("--cert")
        .arg(example_cert())
        .arg(".")
        .assert()
        .success()
        .stdout("");
    let stderr = stderr_text(&out);
    assert!(
        stderr.contains("4 file(s): 2 re-sealed (9 value(s)), 1 already current, 1 skipped (not sealed), 0 failed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("skipped ./plain.yaml: no SealedSecret (holds Secret)"),
        "{stderr}"
    );
    assert!(!stderr.contains(CANARY));
    assert_eq!(
        std::fs::read_to_string(repo.join("current.yaml")).unwrap(),
        current
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("plain.yaml")).unwrap(),
        secret_yaml("plain", Some("prod"))
    );

    let fingerprint =
        documents(&current)[0]["metadata"]["annotations"]["sealbox.dev/sealing-key"].clone();
    let edited = std::fs::read_to_string(repo.join("bundle.yaml")).unwrap();
    assert!(
        edited.starts_with("# managed by hand: keep this comment\n"),
        "{edited}"
    );
    assert!(
        edited.contains("metadata: {name: c}  # and this one"),
        "{edited}"
    );
    let docs = documents(&edited);
    assert_eq!(docs.len(), 3);
    assert_eq!(docs[1]["kind"], "ConfigMap");
    for doc in [&docs[0], &docs[2]] {
        assert_eq!(
            doc["metadata"]["annotations"]["sealbox.dev/sealing-key"],
            fingerprint
        );
        let secret = unseal(&to_yaml(doc)).remove(0);
        assert_eq!(string_map(&secret["data"]), expected_data());
    }
    // Only the ciphertext and hint lines changed.
    let changed = bundle
        .lines()
        .zip(edited.lines())
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(changed, 2 * (3 + 1), "{edited}");

    let json_text = std::fs::read_to_string(repo.join("sealed.json")).unwrap();
    assert!(json_text.starts_with('{'));
    let secret = unseal(&json_text).remove(0);
    assert_eq!(string_map(&secret["data"]), expected_data());
}

#[test]
fn sealbox_yaml_rules_choose_cert_and_scope_for_seal_check_and_reencrypt() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    let (_, other_cert, other_key_file) = other_key();
    for sub in ["certs", "prod", "dev", "vendor"] {
        std::fs::create_dir_all(repo.join(sub)).unwrap();
    }
    std::fs::copy(example_cert(), repo.join("certs/prod.pem")).unwrap();
    std::fs::write(
        repo.join(".sealbox.yaml"),
        "rules:\n  - path: \"prod/**\"\n    cert: certs/prod.pem\n    scope: namespace-wide\nignore:\n  - \"vendor/**\"\n",
    )
    .unwrap();
    std::fs::write(
        repo.join("prod/secret.yaml"),
        secret_yaml("db", Some("prod")),
    )
    .unwrap();

    // seal: the rule's certificate and default scope, from a subdirectory too.
    let out = sealbox()
        .current_dir(repo.join("prod"))
        .args(["seal", "-f", "secret.yaml", "-w", "db.yaml"])
        .assert()
        .success();
    drop(out);
    std::fs::remove_file(repo.join("prod/secret.yaml")).unwrap();
    let sealed = std::fs::read_to_string(repo.join("prod/db.yaml")).unwrap();
    let doc = documents(&sealed).remove(0);
    assert_eq!(
        doc["metadata"]["annotations"]["sealedsecrets.bitnami.com/namespace-wide"],
        "true"
    );
    assert_eq!(string_map(&unseal(&sealed)[0]["data"]), expected_data());
    // Outside the rule's paths there is no certificate.
    sealbox()
        .current_dir(repo.join("dev"))
        .arg("seal")
        .write_stdin(secret_yaml("x", Some("dev")))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no certificate"));

    // check: the rule's certificate tells staleness; vendor/ is ignored.
    std::fs::write(repo.join("vendor/leak.yaml"), secret_yaml("v", Some("x"))).unwrap();
    std::fs::write(
        repo.join("prod/stale.yaml"),
        seal_with(other_cert, "stale", "prod"),
    )
    .unwrap();
    let out = sealbox()
        .current_dir(repo)
        .args(["check", "."])
        .assert()
        .success();
    let stderr = stderr_text(&out);
    assert!(
        stderr.contains("./prod/stale.yaml, document 1 (prod/stale): sealed to"),
        "{stderr}"
    );
    assert!(stderr.contains("1 stale"), "{stderr}");

    // reencrypt: to the rule's certificate, without --cert.
    sealbox()
        .current_dir(repo)
        .args(["reencrypt", "--key"])
        .arg(other_key_file)
        .arg("prod")
        .assert()
        .success()
        .stderr(predicate::str::contains("1 re-sealed"));
    let stale = std::fs::read_to_string(repo.join("prod/stale.yaml")).unwrap();
    assert_eq!(string_map(&unseal(&stale)[0]["data"]), expected_data());
    sealbox()
        .current_dir(repo)
        .args(["check", "--fail-on-stale", "."])
        .assert()
        .success();

    // A broken config is an error naming the file.
    std::fs::write(
        repo.join(".sealbox.yaml"),
        "rules:\n  - path: x\n    cert: a\n    context: b\n",
    )
    .unwrap();
    sealbox()
        .current_dir(repo)
        .args(["check", "."])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            ".sealbox.yaml: rules[0]: give either cert or context",
        ));
}

#[test]
fn pre_commit_hook_runs_check() {
    let hooks = std::fs::read_to_string(repo(".pre-commit-hooks.yaml")).unwrap();
    let hooks: Vec<Value> = serde_norway::from_str(&hooks).unwrap();
    assert_eq!(hooks[0]["id"], "sealbox-check");
    assert_eq!(hooks[0]["entry"], "sealbox check");
}

/// The break-glass identity of the crypto fixtures and its public recipient.
fn breakglass() -> (PathBuf, String) {
    let path = fixture("age-identity.txt");
    let text = std::fs::read_to_string(&path).unwrap();
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_owned();
    (path, recipient)
}

fn encrypted_data(sealed: &str) -> BTreeMap<String, String> {
    string_map(&documents(sealed)[0]["spec"]["encryptedData"])
}

/// Issue 18: one sealed file for two clusters and a break-glass key. Each cluster's key and the
/// identity open it; moved to another namespace it opens for nobody and nothing is written; a
/// wrong identity is told so; `verify` and `check` understand it; the reference age tool
/// recovers a value with the documented `tail -n +2`.
#[test]
fn multi_recipient_files_open_for_every_cluster_and_the_breakglass_key() {
    let (identity, recipient) = breakglass();
    let (_dir, other_cert, other_key) = other_key();
    let sealed = seal(
        &["--add-cert", other_cert.to_str().unwrap(), "-r", &recipient],
        &secret_yaml("db", Some("prod")),
    );
    for value in encrypted_data(&sealed).values() {
        assert!(value.starts_with("YWdlLWVuY3J5cHRpb24ub3JnL3Yx"), "{value}");
    }
    for key in [example_key(), other_key.clone()] {
        let out = unseal_with(&key, &sealed, &[]).success();
        let secret = &documents(std::str::from_utf8(&out.get_output().stdout).unwrap())[0];
        assert_eq!(string_map(&secret["data"]), expected_data());
    }
    let out = sealbox()
        .args(["unseal", "--identity"])
        .arg(&identity)
        .write_stdin(sealed.clone())
        .assert()
        .success();
    let secret = &documents(std::str::from_utf8(&out.get_output().stdout).unwrap())[0];
    assert_eq!(string_map(&secret["data"]), expected_data());

    // Moved: refused by the keys and the identity, naming the Secret it is bound to; the -w
    // target is not written.
    let moved = edit_metadata(&sealed, "namespace", "staging");
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out.yaml");
    for opener in [
        vec!["--key".to_owned(), example_key().display().to_string()],
        vec!["--identity".to_owned(), identity.display().to_string()],
    ] {
        let assert = sealbox()
            .arg("unseal")
            .args(&opener)
            .arg("-w")
            .arg(&target)
            .write_stdin(moved.clone())
            .assert()
            .code(1);
        let stderr = stderr_text(&assert);
        assert!(stderr.contains("sealed for strict \"prod/db\""), "{stderr}");
        assert!(!stderr.contains(CANARY), "{stderr}");
        assert!(!target.exists(), "{opener:?} wrote {}", target.display());
    }

    // A wrong identity: not a recipient.
    let stranger = dir.path().join("stranger.txt");
    std::fs::write(
        &stranger,
        std::fs::read(repo("fuzz/keys/age-identity.txt")).unwrap(),
    )
    .unwrap();
    let assert = sealbox()
        .args(["unseal", "--identity"])
        .arg(&stranger)
        .write_stdin(sealed.clone())
        .assert()
        .code(1);
    let stderr = stderr_text(&assert);
    assert!(stderr.contains("not sealed for these keys"), "{stderr}");

    // verify: each cluster's certificate is a recipient; another certificate is not.
    for cert in [example_cert(), other_cert.clone()] {
        sealbox()
            .args(["verify", "--cert"])
            .arg(&cert)
            .write_stdin(sealed.clone())
            .assert()
            .success();
    }
    let assert = sealbox()
        .args(["verify", "--cert"])
        .arg(fixture("cert.pem"))
        .write_stdin(sealed.clone())
        .assert()
        .code(1);
    assert!(stderr_text(&assert).contains("not sealed for this certificate's key"));

    // check: who opens it, and that a Bitnami controller cannot.
    let file = dir.path().join("db-sealed.yaml");
    std::fs::write(&file, &sealed).unwrap();
    let assert = sealbox()
        .args(["check", "--cert"])
        .arg(example_cert())
        .arg(&file)
        .assert()
        .success();
    let stderr = stderr_text(&assert);
    assert!(
        stderr.contains("a Bitnami controller cannot read them"),
        "{stderr}"
    );
    assert!(stderr.contains("1 X25519"), "{stderr}");
    assert!(
        stderr.contains("the current certificate's key is one of them"),
        "{stderr}"
    );

    // The reference age tool and one documented step.
    if std::process::Command::new("age")
        .arg("--version")
        .output()
        .is_ok()
    {
        let value = STANDARD
            .decode(&encrypted_data(&sealed)["password"])
            .unwrap();
        let mut age = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("age -d -i '{}' | tail -n +2", identity.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        age.stdin.take().unwrap().write_all(&value).unwrap();
        let out = age.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, CANARY.as_bytes());
    } else if std::env::var_os("SEALBOX_AGE_REQUIRED").is_some() {
        panic!("SEALBOX_AGE_REQUIRED is set but the age tool is missing");
    }
}

/// `.sealbox.yaml` rules name the clusters and age keys per path; files elsewhere stay in the
/// Bitnami format.
#[test]
fn sealbox_yaml_rules_make_multi_recipient_files_per_path() {
    let (identity, recipient) = breakglass();
    let (_keys, other_cert, other_key) = other_key();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("team.txt"),
        format!("# security team\n{recipient}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join(".sealbox.yaml"),
        format!(
            "rules:\n  - path: \"shared/**\"\n    cert: {}\n    certs: [{}]\n    recipientsFiles: [team.txt]\n  - path: \"**\"\n    cert: {}\n",
            example_cert().display(),
            other_cert.display(),
            example_cert().display()
        ),
    )
    .unwrap();
    for sub in ["shared", "single"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
        std::fs::write(
            dir.path().join(sub).join("db.yaml"),
            secret_yaml("db", Some("prod")),
        )
        .unwrap();
        sealbox()
            .current_dir(dir.path())
            .args(["seal", "-f"])
            .arg(format!("{sub}/db.yaml"))
            .arg("-w")
            .arg(format!("{sub}/db-sealed.yaml"))
            .assert()
            .success();
    }
    let shared = std::fs::read_to_string(dir.path().join("shared/db-sealed.yaml")).unwrap();
    let single = std::fs::read_to_string(dir.path().join("single/db-sealed.yaml")).unwrap();
    assert!(
        encrypted_data(&shared)
            .values()
            .all(|v| v.starts_with("YWdl"))
    );
    assert!(
        encrypted_data(&single)
            .values()
            .all(|v| !v.starts_with("YWdl"))
    );
    for opener in [
        ["--key".to_owned(), other_key.display().to_string()],
        ["--identity".to_owned(), identity.display().to_string()],
    ] {
        let out = sealbox()
            .arg("unseal")
            .args(&opener)
            .write_stdin(shared.clone())
            .assert()
            .success();
        let secret = &documents(std::str::from_utf8(&out.get_output().stdout).unwrap())[0];
        assert_eq!(string_map(&secret["data"]), expected_data());
    }
}

/// `reencrypt` moves a multi-recipient file to the cluster's current key and keeps its other
/// recipients: the break-glass key still opens it, the old key no longer does.
#[test]
fn reencrypt_rewraps_multi_recipient_files_keeping_the_other_recipients() {
    let (identity, recipient) = breakglass();
    let (_keys, other_cert, other_key) = other_key();
    let dir = tempfile::tempdir().unwrap();
    let sealed = sealbox()
        .args(["seal", "--cert"])
        .arg(other_cert)
        .args(["-r", &recipient])
        .write_stdin(secret_yaml("db", Some("prod")))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let file = dir.path().join("db-sealed.yaml");
    std::fs::write(&file, &sealed).unwrap();
    let out = sealbox()
        .args(["reencrypt", "--key"])
        .arg(other_key)
        .arg("--cert")
        .arg(example_cert())
        .arg(&file)
        .assert()
        .success();
    assert!(
        stderr_text(&out).contains("1 re-sealed (3 value(s))"),
        "{}",
        stderr_text(&out)
    );
    let rewrapped = std::fs::read_to_string(&file).unwrap();
    assert!(
        encrypted_data(&rewrapped)
            .values()
            .all(|v| v.starts_with("YWdl"))
    );
    for opener in [
        ["--key".to_owned(), example_key().display().to_string()],
        ["--identity".to_owned(), identity.display().to_string()],
    ] {
        let out = sealbox()
            .arg("unseal")
            .args(&opener)
            .write_stdin(rewrapped.clone())
            .assert()
            .success();
        let secret = &documents(std::str::from_utf8(&out.get_output().stdout).unwrap())[0];
        assert_eq!(string_map(&secret["data"]), expected_data());
    }
    unseal_with(other_key, &rewrapped, &[]).code(1);
}

/// `merge` into a multi-recipient file needs its recipients again; with them, the new key opens
/// for every cluster and the break-glass key like the others.
#[test]
fn merge_into_a_multi_recipient_file_keeps_its_recipients() {
    let (identity, recipient) = breakglass();
    let (_keys, other_cert, other_key) = other_key();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("db-sealed.yaml");
    let sealed = seal(
        &["--add-cert", other_cert.to_str().unwrap(), "-r", &recipient],
        &secret_yaml("db", Some("prod")),
    );
    std::fs::write(&file, &sealed).unwrap();
    let extra = "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: prod}\nstringData: {token: t0ken}\n";

    let assert = sealbox()
        .args(["merge", "--cert"])
        .arg(example_cert())
        .arg("--into")
        .arg(&file)
        .write_stdin(extra)
        .assert()
        .code(2);
    assert!(stderr_text(&assert).contains("it holds multi-recipient values"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), sealed);
    // `set` the same.
    let assert = sealbox()
        .arg("set")
        .arg(&file)
        .arg("token")
        .arg("--cert")
        .arg(example_cert())
        .write_stdin("t0ken")
        .assert()
        .code(2);
    assert!(
        stderr_text(&assert).contains("cannot set a key in"),
        "{}",
        stderr_text(&assert)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), sealed);

    sealbox()
        .args(["merge", "--cert"])
        .arg(example_cert())
        .args([
            "--add-cert",
            other_cert.to_str().unwrap(),
            "-r",
            &recipient,
            "--into",
        ])
        .arg(&file)
        .write_stdin(extra)
        .assert()
        .success();
    let merged = std::fs::read_to_string(&file).unwrap();
    let mut expected = expected_data();
    expected.insert("token".to_owned(), STANDARD.encode("t0ken"));
    for opener in [
        ["--key".to_owned(), other_key.display().to_string()],
        ["--identity".to_owned(), identity.display().to_string()],
    ] {
        let out = sealbox()
            .arg("unseal")
            .args(&opener)
            .write_stdin(merged.clone())
            .assert()
            .success();
        let secret = &documents(std::str::from_utf8(&out.get_output().stdout).unwrap())[0];
        assert_eq!(string_map(&secret["data"]), expected);
    }
}
