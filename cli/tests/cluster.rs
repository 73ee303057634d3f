//! The cluster-facing commands of the built `sealbox` binary against the Kubernetes API double
//! (sealbox-tests) served on 127.0.0.1 with a generated kubeconfig: `cert fetch`, `seal`
//! without `--cert`, `verify --online`, `keys list|rotate|backup|restore|prune`, `reencrypt`
//! offline and online, and the failures (unreachable cluster, wrong controller name, wrong
//! passphrase, unreadable backup).
//!
//! The controller's HTTP API is played by a small stub behind the double's service proxy that
//! implements the contract of DESIGN.md (`/v1/cert.pem` = newest active key Secret's
//! certificate, `/v1/verify` 200/409, `/v1/rotate` = the SealedSecret re-sealed to the newest
//! key), reading the key Secrets from the double like the controller does. The end-to-end test
//! with the real controller binary lives at the end and skips, saying why, while the binary
//! does not serve `/v1/*`.

// Helpers outside #[test] fns panic on broken fixtures too; clippy.toml only covers the fns.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use assert_cmd::Command;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use kube::api::ObjectMeta;
use predicates::prelude::*;
use sealbox_crds::SealedSecret;
use sealbox_crypto::{KeyPair, KeySecret};
use sealbox_tests::ApiServer;
use sealbox_tests::fixtures::{
    self, CONTROLLER_NAME, CONTROLLER_NAMESPACE, KillOnDrop, ServedDouble, Wait, free_port,
    sealed_secrets_gvr, secrets_gvr,
};
use serde_json::{Value, json};

const CANARY: &str = "PLAINTEXT-CANARY-cluster";
const DAY: Duration = Duration::from_secs(86_400);
/// How long the controller binary may take to generate a key or unseal (it starts cold), looking
/// every 100 ms.
const CONTROLLER_WAIT: Wait = Wait::new(Duration::from_secs(60), Duration::from_millis(100));
/// The backups' passphrase, in the file `pass` or in `SEALBOX_BACKUP_PASSPHRASE`.
const PASSPHRASE: &str = "correct horse battery staple";

/// The runtime the served doubles and the controller stubs of every test run on.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| fixtures::test_runtime().unwrap())
}

/// 2048-bit keys (the size does not matter here), made once: an old one (NotBefore 100 days
/// ago) and a new one.
fn keys() -> &'static (KeyPair, KeyPair) {
    static KEYS: OnceLock<(KeyPair, KeyPair)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let old = KeyPair::generate_with_bits(2048, "", SystemTime::now() - 100 * DAY).unwrap();
        let new = KeyPair::generate_with_bits(2048, "", SystemTime::now() - DAY).unwrap();
        (old, new)
    })
}

/// An API double on 127.0.0.1 with the SealedSecret CRD, a kubeconfig for it, and a scratch
/// directory; what the tests do with it.
struct Cluster(ServedDouble);

/// The served double's fields (`server`, `kubeconfig`, ...) and scratch paths.
impl std::ops::Deref for Cluster {
    type Target = ServedDouble;

    fn deref(&self) -> &ServedDouble {
        &self.0
    }
}

impl Cluster {
    fn new() -> Cluster {
        let server = fixtures::double_with_crd().unwrap();
        Cluster(runtime().block_on(ServedDouble::start(server)).unwrap())
    }

    /// Also runs the controller stub and routes the service proxy to it, with the Service the
    /// CLI reads the port name from.
    fn with_controller() -> Cluster {
        let cluster = Cluster::new();
        let url = runtime().block_on(stub_controller(cluster.server.clone()));
        cluster
            .server
            .proxy_service(CONTROLLER_NAMESPACE, CONTROLLER_NAME, &url);
        cluster.put_service(CONTROLLER_NAMESPACE, CONTROLLER_NAME, Some("http"));
        cluster
    }

    fn put_service(&self, namespace: &str, name: &str, port_name: Option<&str>) {
        let service = Service {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                ports: Some(vec![ServicePort {
                    name: port_name.map(str::to_owned),
                    port: 8080,
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        };
        self.server.put(&service).unwrap();
    }

    fn put_key(&self, namespace: &str, pair: &KeyPair) -> String {
        let name = format!(
            "sealed-secrets-key{}",
            &pair.fingerprint().to_string()[7..12]
                .to_ascii_lowercase()
                .replace(['+', '/'], "x")
        );
        self.server
            .put(&fixtures::key_secret(pair, namespace, &name))
            .unwrap();
        name
    }

    fn key_fingerprints(&self, namespace: &str) -> Vec<String> {
        let mut found: Vec<String> = self
            .server
            .objects(&secrets_gvr(), Some(namespace))
            .into_iter()
            .filter_map(|secret| {
                let bytes = serde_json::to_vec(&secret).unwrap();
                let parsed = sealbox_crypto::parse_key_secrets(&bytes, "double").ok()?;
                Some(parsed[0].key_pair().ok()?.fingerprint().to_string())
            })
            .collect();
        found.sort();
        found
    }

    /// The binary, pointed at this cluster, with nothing leaking in from the shell.
    fn sealbox(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sealbox"));
        for var in [
            "SEALBOX_CERT",
            "SEALBOX_LOG",
            "SEALBOX_CONTEXT",
            "SEALBOX_CONTROLLER_NAMESPACE",
            "SEALBOX_CONTROLLER_NAME",
            "SEALBOX_BACKUP_PASSPHRASE",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", "/nonexistent/sealbox-test/home")
            .current_dir(self.dir.path());
        cmd
    }

    /// `keys backup -o keys.age --passphrase-file pass`, with [`PASSPHRASE`] written to `pass`.
    fn backup_with_passphrase_file(&self) -> Command {
        std::fs::write(self.path("pass"), format!("{PASSPHRASE}\n")).unwrap();
        let mut cmd = self.sealbox();
        cmd.args([
            "keys",
            "backup",
            "-o",
            "keys.age",
            "--passphrase-file",
            "pass",
        ]);
        cmd
    }

    /// `keys restore BACKUP --controller-namespace NAMESPACE` with [`PASSPHRASE`] from the
    /// environment.
    fn restore_with_env_passphrase(&self, backup: &str, namespace: &str) -> Command {
        let mut cmd = self.sealbox();
        cmd.env("SEALBOX_BACKUP_PASSPHRASE", PASSPHRASE).args([
            "keys",
            "restore",
            backup,
            "--controller-namespace",
            namespace,
        ]);
        cmd
    }
}

/// The active key Secrets of a namespace of the double, newest last.
fn active_keys(server: &ApiServer, namespace: &str) -> Vec<KeyPair> {
    let mut pairs: Vec<KeyPair> = server
        .objects(&secrets_gvr(), Some(namespace))
        .into_iter()
        .filter(|s| {
            s.pointer("/metadata/labels/sealedsecrets.bitnami.com~1sealed-secrets-key")
                == Some(&json!("active"))
        })
        .filter_map(|s| {
            let bytes = serde_json::to_vec(&s).unwrap();
            sealbox_crypto::parse_key_secrets(&bytes, "double").ok()?[0]
                .key_pair()
                .ok()
        })
        .collect();
    pairs.sort_by_key(|p| p.certificate.not_before());
    pairs
}

/// Decrypts every value of `sealed` with `pairs`: the plaintexts, or `None`.
fn open_all(sealed: &SealedSecret, pairs: &[KeyPair]) -> Option<BTreeMap<String, Vec<u8>>> {
    let label = sealed.label();
    sealed
        .spec
        .encrypted_data
        .iter()
        .map(|(name, value)| {
            let ciphertext = STANDARD.decode(value).ok()?;
            let (plaintext, _) = sealbox_crypto::unseal_with_keys(
                pairs.iter().map(|p| &p.private_key),
                &ciphertext,
                &label,
            )
            .ok()?;
            Some((name.clone(), plaintext.to_vec()))
        })
        .collect()
}

/// The stand-in for the controller's HTTP API; returns its URL.
async fn stub_controller(server: ApiServer) -> String {
    async fn cert(State(server): State<ApiServer>) -> (StatusCode, String) {
        match active_keys(&server, CONTROLLER_NAMESPACE).last() {
            Some(pair) => (StatusCode::OK, pair.certificate.to_pem()),
            None => (StatusCode::SERVICE_UNAVAILABLE, "no key yet\n".to_owned()),
        }
    }
    async fn verify(State(server): State<ApiServer>, body: Bytes) -> StatusCode {
        let Ok(sealed) = serde_json::from_slice::<SealedSecret>(&body) else {
            return StatusCode::BAD_REQUEST;
        };
        match open_all(&sealed, &active_keys(&server, CONTROLLER_NAMESPACE)) {
            Some(_) => StatusCode::OK,
            None => StatusCode::CONFLICT,
        }
    }
    async fn rotate(State(server): State<ApiServer>, body: Bytes) -> (StatusCode, String) {
        let Ok(mut sealed) = serde_json::from_slice::<SealedSecret>(&body) else {
            return (StatusCode::BAD_REQUEST, "not a SealedSecret\n".to_owned());
        };
        let pairs = active_keys(&server, CONTROLLER_NAMESPACE);
        let Some(plaintexts) = open_all(&sealed, &pairs) else {
            return (StatusCode::CONFLICT, "cannot decrypt\n".to_owned());
        };
        let newest = pairs.last().unwrap();
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let label = sealed.label();
        for (name, plaintext) in plaintexts {
            let value =
                sealbox_crypto::seal(&rng, newest.certificate.public_key(), &plaintext, &label)
                    .unwrap();
            sealed
                .spec
                .encrypted_data
                .insert(name, STANDARD.encode(value));
        }
        (StatusCode::OK, serde_json::to_string(&sealed).unwrap())
    }
    let app = axum::Router::new()
        .route("/v1/cert.pem", get(cert))
        .route("/v1/verify", post(verify))
        .route("/v1/rotate", post(rotate))
        .with_state(server);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// A SealedSecret sealed offline to `pair`, as `sealbox seal` writes it (with or without the
/// hint, which kubeseal does not write).
fn sealed_to(pair: &KeyPair, namespace: &str, name: &str, hint: bool) -> Value {
    let label = format!("{namespace}/{name}");
    let value = fixtures::seal_value(
        &pair.certificate,
        &format!("{CANARY}-{name}"),
        label.as_bytes(),
    );
    let mut annotations = serde_json::Map::new();
    if hint {
        annotations.insert(
            "sealbox.dev/sealing-key".to_owned(),
            json!(pair.fingerprint().to_string()),
        );
    }
    json!({
        "apiVersion": "bitnami.com/v1alpha1",
        "kind": "SealedSecret",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": {
            "encryptedData": {"password": value},
            "template": {"metadata": {"name": name, "namespace": namespace, "labels": {"app": "web"}}, "type": "Opaque"}
        }
    })
}

/// Writes [`sealed_to`]`(pair, "prod", name, hint)` to `dir/name.yaml`; the text written.
fn write_sealed(dir: &Path, pair: &KeyPair, name: &str, hint: bool) -> String {
    let text = yaml(&sealed_to(pair, "prod", name, hint));
    std::fs::write(dir.join(format!("{name}.yaml")), &text).unwrap();
    text
}

fn yaml(value: &Value) -> String {
    serde_norway::to_string(value).unwrap()
}

fn stderr_of(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&assert.get_output().stderr).into_owned()
}

#[test]
fn cert_fetch_seal_and_online_verify_through_the_service_proxy() {
    let cluster = Cluster::with_controller();
    let (_, new) = keys();
    cluster.put_key(CONTROLLER_NAMESPACE, new);

    // The port name comes from the Service's first port, as kubeseal does.
    cluster.put_service(CONTROLLER_NAMESPACE, CONTROLLER_NAME, Some("web"));
    let out = cluster.sealbox().args(["cert", "fetch"]).assert().success();
    let pem = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert_eq!(pem, new.certificate.to_pem());
    let proxied: Vec<String> = cluster
        .server
        .request_log()
        .into_iter()
        .map(|r| r.path)
        .filter(|p| p.contains("/proxy/"))
        .collect();
    assert_eq!(
        proxied,
        [
            "/api/v1/namespaces/kube-system/services/http:sealed-secrets-controller:web/proxy/v1/cert.pem"
        ]
    );
    // An unnamed port is addressed by its number.
    cluster.put_service(CONTROLLER_NAMESPACE, CONTROLLER_NAME, None);
    cluster.server.clear_request_log();
    cluster.sealbox().args(["cert", "fetch"]).assert().success();
    assert!(cluster.server.request_log().iter().any(|r| {
        r.path
            .contains("services/http:sealed-secrets-controller:8080/proxy/")
    }),);
    assert!(stderr_of(&out).contains(&new.fingerprint().to_string()));
    cluster
        .sealbox()
        .args(["cert", "fetch", "-o", "cert.pem"])
        .assert()
        .success()
        .stdout("");
    assert_eq!(
        std::fs::read_to_string(cluster.path("cert.pem")).unwrap(),
        pem
    );

    // No --cert: the certificate comes from the controller, the namespace from the context.
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: db}}\nstringData: {{password: {CANARY}}}\n"
    );
    let out = cluster
        .sealbox()
        .arg("seal")
        .write_stdin(secret)
        .assert()
        .success()
        .stdout(predicate::str::contains(CANARY).not());
    let sealed_text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let sealed: SealedSecret = serde_norway::from_str(&sealed_text).unwrap();
    assert_eq!(sealed.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(sealed.sealing_key_hint().as_ref(), Some(new.fingerprint()));
    std::fs::write(cluster.path("sealed.yaml"), &sealed_text).unwrap();

    // Rate-limited once (the controller limits /v1/verify): waited out and retried.
    cluster.server.fail_next(
        sealbox_tests::FaultRule::status(429)
            .path_contains("/proxy/v1/verify")
            .times(1),
    );
    let out = cluster
        .sealbox()
        .args(["verify", "--online", "-f", "sealed.yaml"])
        .assert()
        .success();
    assert!(
        stderr_of(&out).contains("can decrypt all 1"),
        "{}",
        stderr_of(&out)
    );
    let verifies = cluster
        .server
        .request_log()
        .iter()
        .filter(|r| r.path.ends_with("/proxy/v1/verify"))
        .count();
    assert_eq!(verifies, 2, "one 429, one retry");

    // Moved to another namespace, the controller cannot decrypt it: exit 1, named.
    let moved = sealed_text.replace("namespace: default", "namespace: other");
    std::fs::write(
        cluster.path("moved.yaml"),
        format!("{sealed_text}---\n{moved}"),
    )
    .unwrap();
    let out = cluster
        .sealbox()
        .args(["verify", "--online", "-f", "moved.yaml"])
        .assert()
        .code(1);
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("document 2") && stderr.contains("other/db"),
        "{stderr}"
    );
    assert!(stderr.contains("1 of 2"), "{stderr}");

    // Offline verify and check take the certificate from the cluster too (check only when
    // asked).
    cluster
        .sealbox()
        .args(["verify", "-f", "sealed.yaml"])
        .assert()
        .success();
    cluster
        .sealbox()
        .args(["check", "--fetch-cert", "sealed.yaml"])
        .assert()
        .success();
}

#[test]
fn cluster_failures_say_what_to_do() {
    let cluster = Cluster::with_controller();
    cluster.put_key(CONTROLLER_NAMESPACE, &keys().1);

    // Nothing listens on port 1.
    let unreachable = cluster.path("unreachable.kubeconfig");
    std::fs::write(
        &unreachable,
        std::fs::read_to_string(&cluster.kubeconfig)
            .unwrap()
            .replace(&cluster.served.url(), "http://127.0.0.1:1"),
    )
    .unwrap();
    let out = cluster
        .sealbox()
        .arg("cert")
        .arg("fetch")
        .arg("--kubeconfig")
        .arg(&unreachable)
        .assert()
        .code(2)
        .stdout("");
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("cannot reach the Kubernetes API server at http://127.0.0.1:1"),
        "{stderr}"
    );
    assert!(stderr.contains("--kubeconfig"), "{stderr}");

    // A wrong controller name: the message names the flags.
    let out = cluster
        .sealbox()
        .args(["cert", "fetch", "--controller-name", "sealed-secrets"])
        .assert()
        .code(2);
    let stderr = stderr_of(&out);
    assert!(stderr.contains("kube-system/sealed-secrets"), "{stderr}");
    assert!(
        stderr.contains("--controller-name") && stderr.contains("--controller-namespace"),
        "{stderr}"
    );

    // A Service without endpoints (the controller is not running).
    cluster.put_service("sealbox", CONTROLLER_NAME, Some("http"));
    let out = cluster
        .sealbox()
        .args(["cert", "fetch", "--controller-namespace", "sealbox"])
        .assert()
        .code(2);
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("503") && stderr.contains("running"),
        "{stderr}"
    );

    // A controller answering a 2 MiB "certificate": read up to the limit, then refused.
    let huge = runtime().block_on(async {
        let app = axum::Router::new().route(
            "/v1/cert.pem",
            get(|| async { "-----BEGIN CERTIFICATE-----\n".repeat(80_000) }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    });
    cluster.server.proxy_service("huge", CONTROLLER_NAME, &huge);
    cluster.put_service("huge", CONTROLLER_NAME, Some("http"));
    let out = cluster
        .sealbox()
        .args(["cert", "fetch", "--controller-namespace", "huge"])
        .assert()
        .code(2)
        .stdout("");
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("larger than 1 MiB, the limit for a certificate"),
        "{stderr}"
    );

    // An unknown context.
    let out = cluster
        .sealbox()
        .args(["keys", "list", "--context", "nope"])
        .assert()
        .code(2);
    assert!(stderr_of(&out).contains("nope"), "{}", stderr_of(&out));

    // No kubeconfig at all: sealing without --cert keeps its offline message.
    cluster
        .sealbox()
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .arg("seal")
        .write_stdin("apiVersion: v1\nkind: Secret\nmetadata: {name: a}\nstringData: {a: b}\n")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no certificate"));
}

#[test]
fn keys_list_rotate_backup_and_restore_into_an_empty_namespace() {
    let cluster = Cluster::with_controller();
    let (old, new) = keys();
    let old_name = cluster.put_key(CONTROLLER_NAMESPACE, old);
    let new_name = cluster.put_key(CONTROLLER_NAMESPACE, new);
    // In the cluster: two SealedSecrets sealed to the new key (one with the hint, one without,
    // as kubeseal writes them) and one to the old key.
    for object in [
        sealed_to(new, "prod", "a", true),
        sealed_to(new, "prod", "b", false),
        sealed_to(old, "prod", "c", false),
    ] {
        cluster
            .server
            .put_object(&sealed_secrets_gvr(), object)
            .unwrap();
    }

    let out = cluster.sealbox().args(["keys", "list"]).assert().success();
    let table = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(
        lines[0].starts_with("NAME") && lines[0].ends_with("SEALEDSECRETS"),
        "{table}"
    );
    assert!(
        lines[1].starts_with(&new_name) && lines[1].contains(" * "),
        "{table}"
    );
    assert!(lines[1].ends_with(" 2"), "{table}");
    assert!(
        lines[2].starts_with(&old_name) && lines[2].ends_with(" 1"),
        "{table}"
    );
    assert!(
        lines[2].contains(&rfc3339_date(old.certificate.not_before())),
        "{table}"
    );
    assert!(stderr_of(&out).contains("1 counted by their sealing-key hint, 2 by trying"));

    // Rotate: a third key, newest, sealing; the controller stub serves it.
    let out = cluster
        .sealbox()
        .args(["keys", "rotate", "--key-size", "2048"])
        .assert()
        .success()
        .stdout("");
    assert!(stderr_of(&out).contains("created the key Secret kube-system/sealed-secrets-key"));
    let out = cluster
        .sealbox()
        .args(["keys", "list", "-o", "json"])
        .assert()
        .success();
    let rows: Vec<Value> = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["sealing"], true);
    assert_eq!(rows[0]["sealedSecrets"], 0);
    let rotated = rows[0]["fingerprint"].as_str().unwrap().to_owned();
    let fetched = cluster.sealbox().args(["cert", "fetch"]).assert().success();
    assert!(stderr_of(&fetched).contains(&rotated));

    // Backup with a passphrase: armored age, 0600, no key material in any form.
    let out = cluster
        .backup_with_passphrase_file()
        .assert()
        .success()
        .stdout("");
    assert!(
        stderr_of(&out).contains("backed up 3 key(s)"),
        "{}",
        stderr_of(&out)
    );
    let backup = std::fs::read_to_string(cluster.path("keys.age")).unwrap();
    assert!(backup.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
    assert_no_key_material(&backup, &[old, new]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(cluster.path("keys.age"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The wrong passphrase: a clear message, nothing created.
    std::fs::write(cluster.path("wrong"), "tr0ub4dor&3\n").unwrap();
    let out = cluster
        .sealbox()
        .args(["keys", "restore", "keys.age", "--passphrase-file", "wrong"])
        .args(["--controller-namespace", "restored"])
        .assert()
        .code(2);
    let stderr = stderr_of(&out);
    assert!(stderr.contains("wrong passphrase"), "{stderr}");
    assert!(cluster.key_fingerprints("restored").is_empty());

    // Into an empty namespace, with the passphrase from the environment.
    let out = cluster
        .restore_with_env_passphrase("keys.age", "restored")
        .assert()
        .success();
    assert!(
        stderr_of(&out).contains("3 of 3 key(s)"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(
        cluster.key_fingerprints("restored"),
        cluster.key_fingerprints(CONTROLLER_NAMESPACE)
    );
    // Again: every key is there already.
    let out = cluster
        .restore_with_env_passphrase("keys.age", "restored")
        .assert()
        .success();
    assert!(stderr_of(&out).contains("0 of 3"), "{}", stderr_of(&out));

    // To an age recipient, restored with the identity.
    let identity = age::x25519::Identity::generate();
    use age::secrecy::ExposeSecret as _;
    std::fs::write(
        cluster.path("identity.txt"),
        identity.to_string().expose_secret(),
    )
    .unwrap();
    cluster
        .sealbox()
        .args(["keys", "backup", "-o", "keys-r.age", "-r"])
        .arg(identity.to_public().to_string())
        .assert()
        .success();
    assert_no_key_material(
        &std::fs::read_to_string(cluster.path("keys-r.age")).unwrap(),
        &[old, new],
    );
    cluster
        .sealbox()
        .args([
            "keys",
            "restore",
            "keys-r.age",
            "-i",
            "identity.txt",
            "--dry-run",
        ])
        .args(["--controller-namespace", "again"])
        .assert()
        .success()
        .stderr(predicate::str::contains("would restore"));
    let out = cluster
        .sealbox()
        .args([
            "keys",
            "restore",
            "keys-r.age",
            "--controller-namespace",
            "again",
        ])
        .assert()
        .code(2);
    assert!(
        stderr_of(&out).contains("-i IDENTITY_FILE"),
        "{}",
        stderr_of(&out)
    );

    // No way to encrypt: refused before anything is read; --unencrypted is explicit.
    let out = cluster
        .sealbox()
        .args(["keys", "backup", "-o", "plain.yaml"])
        .assert()
        .code(2);
    assert!(
        stderr_of(&out).contains("--unencrypted"),
        "{}",
        stderr_of(&out)
    );
    assert!(!cluster.path("plain.yaml").exists());
    cluster
        .sealbox()
        .args(["keys", "backup", "-o", "plain.yaml", "--unencrypted"])
        .assert()
        .success()
        .stderr(predicate::str::contains("PLAINTEXT"));
    // A plaintext backup is a List that `unseal --key` reads.
    let plain = cluster.path("plain.yaml");
    write_sealed(cluster.dir.path(), old, "c", true);
    cluster
        .sealbox()
        .args(["unseal", "-f", "c.yaml", "--key"])
        .arg(&plain)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            STANDARD.encode(format!("{CANARY}-c")),
        ));

    // Unreadable backups.
    for (file, expected) in [
        ("missing.age", "cannot read the backup missing.age"),
        ("pass", "does not hold sealing keys"),
    ] {
        let out = cluster
            .sealbox()
            .args(["keys", "restore", file, "--controller-namespace", "x"])
            .assert()
            .code(2);
        assert!(stderr_of(&out).contains(expected), "{}", stderr_of(&out));
    }
    let truncated = &backup[..backup.len() / 2];
    std::fs::write(cluster.path("truncated.age"), truncated).unwrap();
    let out = cluster
        .restore_with_env_passphrase("truncated.age", "x")
        .assert()
        .code(2);
    assert!(
        stderr_of(&out).contains("cannot decrypt the backup truncated.age"),
        "{}",
        stderr_of(&out)
    );
}

fn rfc3339_date(time: SystemTime) -> String {
    let ts = jiff::Timestamp::try_from(time).unwrap();
    ts.strftime("%Y-%m-%d").to_string()
}

/// No PEM markers, no PEM body line, no base64 of the key PEM (as in a Secret's data).
fn assert_no_key_material(text: &str, pairs: &[&KeyPair]) {
    assert!(!text.contains("PRIVATE KEY"));
    assert!(!text.contains("tls.key"));
    for pair in pairs {
        let pem = pair.private_key.to_pkcs1_pem();
        for line in pem.lines().filter(|l| !l.starts_with("-----")).take(5) {
            assert!(
                !text.contains(line),
                "a PEM line of the key is in the backup"
            );
        }
        let encoded = STANDARD.encode(pem.as_bytes());
        assert!(
            !text.contains(&encoded[..40]),
            "base64 of the key is in the backup"
        );
    }
}

/// 200 sealed files (150 sealed to the old key, 50 to the new), plus files that are not
/// sealed: prune refuses while the old key is used; offline reencrypt rewrites exactly the
/// stale files; then prune deletes the old key.
#[test]
fn reencrypt_a_directory_then_prune_refuses_then_succeeds() {
    let cluster = Cluster::with_controller();
    let (old, new) = keys();
    let old_name = cluster.put_key(CONTROLLER_NAMESPACE, old);
    cluster.put_key(CONTROLLER_NAMESPACE, new);
    let repo = cluster.path("repo");
    std::fs::create_dir_all(repo.join("apps")).unwrap();
    for i in 0..200 {
        let (pair, hint) = match i % 4 {
            0 => (new, true),
            1 | 2 => (old, true),
            _ => (old, false),
        };
        write_sealed(&repo.join("apps"), pair, &format!("s{i:03}"), hint);
    }
    let others = [
        (
            "apps/config.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n",
        ),
        ("apps/broken.yaml", "kind: [\n"),
        ("apps/values.json", "{\"replicas\": 2}\n"),
    ];
    for (file, text) in others {
        std::fs::write(repo.join(file), text).unwrap();
    }
    // The cluster still has one object sealed to the old key.
    cluster
        .server
        .put_object(&sealed_secrets_gvr(), sealed_to(old, "prod", "live", true))
        .unwrap();
    let before = snapshot(&repo);

    let out = cluster
        .sealbox()
        .args(["keys", "prune", "--older-than", "30d", "repo"])
        .assert()
        .code(1);
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains(&format!("refuse to prune {old_name}")),
        "{stderr}"
    );
    assert!(stderr.contains("cluster: prod/live"), "{stderr}");
    assert!(stderr.contains("s001.yaml"), "{stderr}");
    assert!(
        stderr.contains("still used by 151 SealedSecret(s)"),
        "{stderr}"
    );
    assert_eq!(cluster.key_fingerprints(CONTROLLER_NAMESPACE).len(), 2);

    // The old and new keys as a plaintext List, as a decrypted backup is.
    let list = json!({"apiVersion": "v1", "kind": "List", "items": [
        KeySecret::from_key_pair(old, CONTROLLER_NAMESPACE, "sealed-secrets-key").to_json(),
        KeySecret::from_key_pair(new, CONTROLLER_NAMESPACE, "sealed-secrets-key").to_json(),
    ]});
    std::fs::write(cluster.path("keys.yaml"), yaml(&list)).unwrap();
    std::fs::write(cluster.path("new.pem"), new.certificate.to_pem()).unwrap();

    let started = std::time::Instant::now();
    let reencrypt_offline = || {
        let mut cmd = cluster.sealbox();
        cmd.args([
            "reencrypt",
            "--key",
            "keys.yaml",
            "--cert",
            "new.pem",
            "repo",
        ]);
        cmd
    };
    let out = reencrypt_offline().assert().success().stdout("");
    let elapsed = started.elapsed();
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("203 file(s): 150 re-sealed (150 value(s)), 50 already current, 3 skipped"),
        "{stderr}"
    );
    assert!(
        stderr.contains("skipped repo/apps/config.yaml: no SealedSecret (holds ConfigMap)"),
        "{stderr}"
    );
    assert!(!stderr.contains(CANARY));
    eprintln!("reencrypt of 200 files took {elapsed:?}");

    let after = snapshot(&repo);
    let changed: Vec<&String> = before
        .keys()
        .filter(|name| before[*name] != after[*name])
        .collect();
    assert_eq!(changed.len(), 150, "only the stale files change");
    for (name, text) in &after {
        if !name.starts_with("apps/s") {
            assert_eq!(
                text, &before[name],
                "{name} is not sealed and must not change"
            );
            continue;
        }
        let sealed: SealedSecret = serde_norway::from_str(text).unwrap();
        assert_eq!(
            sealed.sealing_key_hint().as_ref(),
            Some(new.fingerprint()),
            "{name}"
        );
        let values = open_all(&sealed, std::slice::from_ref(new)).expect("sealed to the new key");
        let object = name.trim_start_matches("apps/").trim_end_matches(".yaml");
        assert_eq!(
            values["password"],
            format!("{CANARY}-{object}").into_bytes()
        );
        // Template and scope kept.
        let before_doc: Value = serde_norway::from_str(&before[name]).unwrap();
        let after_doc: Value = serde_norway::from_str(text).unwrap();
        assert_eq!(
            before_doc["spec"]["template"],
            after_doc["spec"]["template"]
        );
    }
    // A file that had a hint keeps its layout: only the ciphertext and the hint changed.
    let diff = line_diff(&before["apps/s001.yaml"], &after["apps/s001.yaml"]);
    assert_eq!(diff, 2, "one ciphertext line and one hint line");

    // Idempotent.
    reencrypt_offline()
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "0 re-sealed (0 value(s)), 200 already current",
        ));
    assert_eq!(snapshot(&repo), after);

    // Once the cluster has synced the re-sealed object, the old key can go.
    cluster
        .server
        .put_object(&sealed_secrets_gvr(), sealed_to(new, "prod", "live", true))
        .unwrap();
    let out = cluster
        .sealbox()
        .args(["keys", "prune", "--older-than", "30d", "repo"])
        .assert()
        .success();
    assert!(
        stderr_of(&out).contains(&format!("would delete {old_name}")),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(
        cluster.key_fingerprints(CONTROLLER_NAMESPACE).len(),
        2,
        "a dry run deletes nothing"
    );
    cluster
        .sealbox()
        .args(["keys", "prune", "--older-than", "30d", "--yes", "repo"])
        .assert()
        .success()
        .stderr(predicate::str::contains(format!("deleted {old_name}")));
    assert_eq!(
        cluster.key_fingerprints(CONTROLLER_NAMESPACE),
        [new.fingerprint().to_string()]
    );
}

fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    for entry in walk(dir) {
        let name = entry.strip_prefix(dir).unwrap().display().to_string();
        files.insert(name, std::fs::read_to_string(&entry).unwrap());
    }
    files
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn line_diff(a: &str, b: &str) -> usize {
    a.lines().zip(b.lines()).filter(|(x, y)| x != y).count()
        + a.lines().count().abs_diff(b.lines().count())
}

#[test]
fn reencrypt_online_asks_the_controller_to_rotate() {
    let cluster = Cluster::with_controller();
    let (old, new) = keys();
    cluster.put_key(CONTROLLER_NAMESPACE, old);
    cluster.put_key(CONTROLLER_NAMESPACE, new);
    let repo = cluster.path("repo");
    std::fs::create_dir_all(&repo).unwrap();
    write_sealed(&repo, old, "stale", true);
    write_sealed(&repo, old, "nohint", false);
    let current = write_sealed(&repo, new, "current", true);
    // Sealed for another cluster: the controller cannot decrypt it; the file stays.
    let foreign = KeyPair::generate_with_bits(2048, "", SystemTime::now()).unwrap();
    let foreign_text = write_sealed(&repo, &foreign, "foreign", true);

    let out = cluster
        .sealbox()
        .args(["reencrypt", "repo"])
        .assert()
        .code(1);
    let stderr = stderr_of(&out);
    assert!(stderr.contains("4 file(s): 2 re-sealed"), "{stderr}");
    assert!(
        stderr.contains("foreign.yaml: the controller cannot decrypt"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("current.yaml")).unwrap(),
        current
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("foreign.yaml")).unwrap(),
        foreign_text
    );
    for name in ["stale", "nohint"] {
        let text = std::fs::read_to_string(repo.join(format!("{name}.yaml"))).unwrap();
        let sealed: SealedSecret = serde_norway::from_str(&text).unwrap();
        assert_eq!(
            sealed.sealing_key_hint().as_ref(),
            Some(new.fingerprint()),
            "{name}"
        );
        assert!(
            open_all(&sealed, std::slice::from_ref(new)).is_some(),
            "{name}"
        );
    }
}

/// The real controller binary, serving the double, driven by the CLI: skipped (with the reason)
/// while the controller is not built or does not serve its HTTP API (`/v1/cert.pem` answers
/// 404).
#[test]
fn end_to_end_with_the_controller_binary() {
    let Some(controller) = controller_binary("end_to_end_with_the_controller_binary") else {
        return;
    };
    let cluster = Cluster::new();
    let (_controller, port) = start_controller(&controller, &cluster, CONTROLLER_NAMESPACE);
    cluster.server.proxy_service(
        CONTROLLER_NAMESPACE,
        CONTROLLER_NAME,
        &format!("http://127.0.0.1:{port}"),
    );
    cluster.put_service(CONTROLLER_NAMESPACE, CONTROLLER_NAME, Some("http"));

    // Wait for the certificate: 200 once a key exists, 404 if there is no such endpoint.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match http_status(port, "/v1/cert.pem") {
            Some(200) => break,
            Some(404) => {
                eprintln!(
                    "SKIPPED end_to_end_with_the_controller_binary: {} answers 404 to GET /v1/cert.pem: the controller does not serve its HTTP API (/v1/cert.pem, /v1/verify, /v1/rotate) yet",
                    controller.display()
                );
                return;
            }
            _ => {}
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the controller never served its certificate"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    cluster
        .sealbox()
        .args(["cert", "fetch", "-o", "cert.pem"])
        .assert()
        .success();
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: db, namespace: prod}}\nstringData: {{password: {CANARY}}}\n"
    );
    cluster
        .sealbox()
        .args(["seal", "-w", "sealed.yaml"])
        .write_stdin(secret)
        .assert()
        .success();
    cluster
        .sealbox()
        .args(["verify", "--online", "-f", "sealed.yaml"])
        .assert()
        .success();
    cluster
        .sealbox()
        .args(["keys", "rotate", "--key-size", "2048"])
        .assert()
        .success();
    cluster
        .sealbox()
        .args(["reencrypt", "sealed.yaml"])
        .assert()
        .success();
}

/// Backup → restore into an empty namespace → a controller that only has the restored keys
/// unseals the old SealedSecret again. Uses the real controller binary (its reconcile loop, not
/// its HTTP API); skipped when the binary is not built.
#[test]
fn restored_keys_let_a_new_controller_unseal_old_files() {
    let Some(controller) = controller_binary("restored_keys_let_a_new_controller_unseal_old_files")
    else {
        return;
    };
    let cluster = Cluster::new();
    let (first, _) = start_controller(&controller, &cluster, CONTROLLER_NAMESPACE);
    let key = CONTROLLER_WAIT
        .blocking_until_some(|| active_keys(&cluster.server, CONTROLLER_NAMESPACE).pop())
        .expect("the controller generated no key");
    std::fs::write(cluster.path("cert.pem"), key.certificate.to_pem()).unwrap();
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: db, namespace: prod}}\nstringData: {{password: {CANARY}}}\n"
    );
    let out = cluster
        .sealbox()
        .args(["seal", "--cert", "cert.pem", "-o", "json"])
        .write_stdin(secret)
        .assert()
        .success();
    let sealed: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    cluster
        .server
        .put_object(&sealed_secrets_gvr(), sealed)
        .unwrap();
    let unsealed = |server: &ApiServer| {
        let secret = server.get_object(&secrets_gvr(), Some("prod"), "db")?;
        let password = secret.pointer("/data/password")?.as_str()?.to_owned();
        Some(password)
    };
    let password = CONTROLLER_WAIT
        .blocking_until_some(|| unsealed(&cluster.server))
        .expect("the first controller never unsealed the SealedSecret");
    assert_eq!(password, STANDARD.encode(CANARY));
    drop(first);

    cluster.backup_with_passphrase_file().assert().success();
    cluster
        .sealbox()
        .args(["keys", "restore", "keys.age", "--passphrase-file", "pass"])
        .args(["--controller-namespace", "restored"])
        .assert()
        .success()
        .stderr(predicate::str::contains("1 of 1 key(s)"));

    // The Secret is gone; a controller that has only the restored keys brings it back.
    cluster
        .server
        .delete_object(&secrets_gvr(), Some("prod"), "db")
        .unwrap();
    let (_second, _) = start_controller(&controller, &cluster, "restored");
    let password = CONTROLLER_WAIT
        .blocking_until_some(|| unsealed(&cluster.server))
        .expect("the controller with the restored keys never unsealed the old SealedSecret");
    assert_eq!(password, STANDARD.encode(CANARY));
    assert_eq!(
        cluster.key_fingerprints("restored"),
        [key.fingerprint().to_string()],
        "no new key was generated: the restored one is used"
    );
}

/// Starts the controller binary against the double, keys in `namespace`, on free ports; the
/// HTTP server's port is in `.1`.
fn start_controller(binary: &Path, cluster: &Cluster, namespace: &str) -> (KillOnDrop, u16) {
    let port = free_port();
    let help = std::process::Command::new(binary)
        .arg("--help")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut command = std::process::Command::new(binary);
    command
        .env("KUBECONFIG", &cluster.kubeconfig)
        .env("POD_NAMESPACE", namespace)
        .args(["--listen-addr", &format!("127.0.0.1:{port}")])
        .args(["--key-size", "2048"]);
    // Any other listener (metrics) gets a free port too, whatever its flag is called.
    for flag in help
        .split_whitespace()
        .filter(|w| w.starts_with("--") && w.contains("metrics") && w.ends_with("addr"))
    {
        command.args([flag, &format!("127.0.0.1:{}", free_port())]);
    }
    let child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    (KillOnDrop(child), port)
}

/// The status code of `GET path` on 127.0.0.1:`port`, if anything answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// The controller binary next to `sealbox`; `None`, saying that `test` is skipped, when it is
/// not built.
fn controller_binary(test: &str) -> Option<PathBuf> {
    let binary = Path::new(env!("CARGO_BIN_EXE_sealbox"))
        .parent()
        .map(|dir| {
            dir.join(format!(
                "sealbox-controller{}",
                std::env::consts::EXE_SUFFIX
            ))
        })
        .filter(|path| path.is_file());
    if binary.is_none() {
        eprintln!(
            "SKIPPED {test}: the sealbox-controller binary is not built next to sealbox (cargo build -p sealbox-controller)"
        );
    }
    binary
}
