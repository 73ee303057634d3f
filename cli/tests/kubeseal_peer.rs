//! kubeseal mode against real kubeseal: one table of invocations, each run through Bitnami's
//! `kubeseal` (v0.40.0, built by tests/peers/build.sh) and through sealbox invoked as
//! `kubeseal` (a symlink), in the same directory with the same input, and the results
//! compared: exit code, output format, metadata, scope annotations, template, and the values
//! each output decrypts to (with the test key, under the label its own metadata gives).
//!
//! Offline rows need no cluster; the cluster rows (`--fetch-cert`, sealing without `--cert`,
//! `--validate`, `--re-encrypt`) run both against the API double on 127.0.0.1 with a stub
//! controller behind its service proxy. Known, deliberate differences are normalised away
//! and listed in docs/USAGE.md (kubeseal mode): sealbox's `sealbox.dev/sealing-key` hint annotation,
//! scope annotations kept off the template, and error wording after `error:`.
//!
//! Skips with a message when kubeseal is not built, unless `SEALBOX_REAL_REQUIRED=1`.

// Helpers outside #[test] fns panic on broken fixtures too; clippy.toml only covers the fns.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use kube::api::ObjectMeta;
use sealbox_crds::SealedSecret;
use sealbox_crypto::{KeyPair, KeySecret, Scope};
use sealbox_tests::fixtures::{self, CONTROLLER_NAME, CONTROLLER_NAMESPACE, ServedDouble};
use sealbox_tests::peers::Peers;
use serde_json::{Value, json};

const HINT: &str = "sealbox.dev/sealing-key";
const SCOPE_ANNOTATIONS: [&str; 2] = [
    "sealedsecrets.bitnami.com/cluster-wide",
    "sealedsecrets.bitnami.com/namespace-wide",
];

/// The test key (2048 bits: the size does not matter here), made once.
fn key() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(|| {
        KeyPair::generate_with_bits(2048, "", SystemTime::now() - Duration::from_secs(3600))
            .unwrap()
    })
}

/// What a row's outputs are compared on.
#[derive(Clone, Copy, Debug)]
enum Check {
    /// SealedSecrets on stdout.
    Sealed,
    /// SealedSecrets in this file (`-w`, `--merge-into`, `--re-encrypt` in place).
    SealedFile(&'static str),
    /// One raw value for this namespace, name and scope.
    Raw(&'static str, &'static str, Scope),
    /// Secrets (`--recovery-unseal`).
    Unsealed,
    /// stdout byte for byte (`--fetch-cert`), or nothing.
    Same,
    /// Only the exit code (and `error:` on stderr when it fails).
    Status,
}

/// One invocation.
struct Row {
    name: &'static str,
    args: &'static [&'static str],
    /// A file of the work directory fed as stdin.
    stdin: Option<&'static str>,
    /// Set before each run: `(copy, from)`.
    fresh: Option<(&'static str, &'static str)>,
    /// No kubeconfig at all (else `kc`, whose context names namespace `team`).
    no_kubeconfig: bool,
    check: Check,
}

const fn row(name: &'static str, args: &'static [&'static str], check: Check) -> Row {
    Row {
        name,
        args,
        stdin: None,
        fresh: None,
        no_kubeconfig: false,
        check,
    }
}

const fn piped(
    name: &'static str,
    args: &'static [&'static str],
    stdin: &'static str,
    check: Check,
) -> Row {
    Row {
        stdin: Some(stdin),
        ..row(name, args, check)
    }
}

fn offline_rows() -> Vec<Row> {
    use Check::*;
    vec![
        row(
            "strict, -f",
            &["--cert", "cert.pem", "-f", "secret.yaml"],
            Sealed,
        ),
        row(
            "-o yaml",
            &["--cert", "cert.pem", "-f", "secret.yaml", "-o", "yaml"],
            Sealed,
        ),
        piped(
            "JSON on stdin",
            &["--cert", "cert.pem"],
            "secret.json",
            Sealed,
        ),
        row(
            "namespace-wide by annotation",
            &["--cert", "cert.pem", "-f", "wide.yaml"],
            Sealed,
        ),
        row(
            "--scope cluster-wide",
            &[
                "--cert",
                "cert.pem",
                "-f",
                "secret.yaml",
                "--scope",
                "cluster-wide",
            ],
            Sealed,
        ),
        row(
            "--scope namespace-wide -n",
            &[
                "--cert",
                "cert.pem",
                "-f",
                "secret.yaml",
                "--scope=namespace-wide",
                "-n",
                "prod",
            ],
            Sealed,
        ),
        row(
            "--scope strict keeps the annotation's scope",
            &["--cert", "cert.pem", "-f", "wide.yaml", "--scope", "strict"],
            Sealed,
        ),
        row(
            "multi-document input",
            &["--cert", "cert.pem", "-f", "many.yaml", "-o", "yaml"],
            Sealed,
        ),
        row(
            "namespace from the kubeconfig context",
            &["--cert", "cert.pem", "-f", "nons.yaml"],
            Sealed,
        ),
        row(
            "-n for a Secret without one",
            &["--cert", "cert.pem", "-f", "nons.yaml", "-n", "argns"],
            Sealed,
        ),
        row(
            "--name renames",
            &[
                "--cert",
                "cert.pem",
                "-f",
                "secret.yaml",
                "--name",
                "renamed",
            ],
            Sealed,
        ),
        row(
            "-w FILE.yaml writes YAML",
            &["--cert", "cert.pem", "-f", "secret.yaml", "-w", "out.yaml"],
            SealedFile("out.yaml"),
        ),
        row(
            "--allow-empty-data",
            &[
                "--cert",
                "cert.pem",
                "-f",
                "empty.yaml",
                "--allow-empty-data",
            ],
            Sealed,
        ),
        row(
            "--raw strict, key=path",
            &[
                "--cert",
                "cert.pem",
                "--raw",
                "-n",
                "prod",
                "--name",
                "db",
                "--from-file=password=value.txt",
            ],
            Raw("prod", "db", Scope::Strict),
        ),
        piped(
            "--raw namespace-wide from stdin",
            &["--cert", "cert.pem", "--raw", "--scope", "namespace-wide"],
            "value.txt",
            Raw("team", "", Scope::NamespaceWide),
        ),
        row(
            "--raw cluster-wide",
            &[
                "--cert",
                "cert.pem",
                "--raw",
                "--scope",
                "cluster-wide",
                "--from-file",
                "value.txt",
            ],
            Raw("", "", Scope::ClusterWide),
        ),
        Row {
            fresh: Some(("target.json", "base.json")),
            ..row(
                "--merge-into",
                &[
                    "--cert",
                    "cert.pem",
                    "--merge-into",
                    "target.json",
                    "-f",
                    "extra.yaml",
                ],
                SealedFile("target.json"),
            )
        },
        piped(
            "--recovery-unseal, PEM key",
            &["--recovery-unseal", "--recovery-private-key", "key.pem"],
            "base.json",
            Unsealed,
        ),
        piped(
            "--recovery-unseal, key Secret and List, comma-separated",
            &[
                "--recovery-unseal",
                "--recovery-private-key",
                "other.pem,keys.yaml",
                "--recovery-private-key=list.json",
                "-o",
                "yaml",
            ],
            "base.json",
            Unsealed,
        ),
        piped(
            "--recovery-unseal, a kind-less SecretList",
            &[
                "--recovery-unseal",
                "--recovery-private-key",
                "typed-list.json",
            ],
            "base.json",
            Unsealed,
        ),
        row(
            "--fetch-cert --cert",
            &["--fetch-cert", "--cert", "cert.pem"],
            Same,
        ),
        // Failures: same exit code, `error:` on stderr.
        row(
            "empty data",
            &["--cert", "cert.pem", "-f", "empty.yaml"],
            Status,
        ),
        row(
            "namespace mismatch",
            &["--cert", "cert.pem", "-f", "secret.yaml", "-n", "other"],
            Status,
        ),
        row(
            "--from-file without --raw",
            &[
                "--cert",
                "cert.pem",
                "--from-file",
                "value.txt",
                "-f",
                "secret.yaml",
            ],
            Status,
        ),
        row(
            "missing certificate",
            &["--cert", "no-such.pem", "-f", "secret.yaml"],
            Status,
        ),
        row(
            "--raw strict without --name",
            &["--cert", "cert.pem", "--raw", "--from-file", "value.txt"],
            Status,
        ),
        Row {
            no_kubeconfig: true,
            ..row(
                "no namespace, no kubeconfig",
                &["--cert", "cert.pem", "-f", "nons.yaml"],
                Status,
            )
        },
        piped(
            "--recovery-unseal with the wrong key",
            &["--recovery-unseal", "--recovery-private-key", "other.pem"],
            "base.json",
            Status,
        ),
        row(
            "unknown flag",
            &["--cert", "cert.pem", "--no-such-flag"],
            Status,
        ),
        row(
            "bad scope",
            &["--cert", "cert.pem", "--scope", "everywhere"],
            Status,
        ),
        row(
            "missing input file",
            &["--cert", "cert.pem", "-f", "no-such.yaml"],
            Status,
        ),
    ]
}

fn cluster_rows() -> Vec<Row> {
    use Check::*;
    vec![
        row("--fetch-cert from the controller", &["--fetch-cert"], Same),
        row(
            "sealing with the controller's certificate",
            &["-f", "secret.yaml"],
            Sealed,
        ),
        row(
            "--validate a good SealedSecret",
            &["--validate", "-f", "base.json"],
            Same,
        ),
        row(
            "--validate a renamed SealedSecret",
            &["--validate", "-f", "renamed.json"],
            Status,
        ),
        row(
            "--re-encrypt to stdout",
            &["--re-encrypt", "-f", "base.json"],
            Sealed,
        ),
        Row {
            fresh: Some(("rotated.yaml", "base.json")),
            ..row(
                "--re-encrypt in place",
                &["--re-encrypt", "-f", "rotated.yaml"],
                SealedFile("rotated.yaml"),
            )
        },
        row(
            "wrong --controller-name",
            &["--fetch-cert", "--controller-name", "nope"],
            Status,
        ),
    ]
}

/// The work directory: certificate, keys, inputs, a kubeconfig.
fn workdir(kubeconfig: Option<&Path>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    let pair = key();
    write("cert.pem", &pair.certificate.to_pem());
    write("key.pem", &pair.private_key.to_pkcs1_pem());
    let other = KeyPair::generate_with_bits(2048, "", SystemTime::now()).unwrap();
    write("other.pem", &other.private_key.to_pkcs1_pem());
    let secret = KeySecret::from_key_pair(pair, CONTROLLER_NAMESPACE, "sealed-secrets-key");
    write("keys.yaml", &secret.to_yaml().unwrap());
    write(
        "list.json",
        &json!({"apiVersion": "v1", "kind": "List", "items": [secret.to_json()]}).to_string(),
    );
    // What Bitnami's suite writes: a typed client's SecretList marshalled as is, without kinds.
    let mut kindless = secret.to_json();
    kindless
        .as_object_mut()
        .unwrap()
        .retain(|k, _| k != "kind" && k != "apiVersion");
    write(
        "typed-list.json",
        &json!({"metadata": {"resourceVersion": "7"}, "items": [kindless]}).to_string(),
    );
    write("value.txt", "raw-PLAINTEXT\n");
    write(
        "secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\n  labels: {app: web}\n  annotations: {team: core}\ntype: Opaque\ndata:\n  user: YWRtaW4=\nstringData:\n  password: PLAINTEXT-1\n",
    );
    write(
        "secret.json",
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"api","namespace":"prod"},"data":{"token":"dG9rZW4="}}"#,
    );
    write(
        "wide.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: shared\n  namespace: prod\n  annotations: {sealedsecrets.bitnami.com/namespace-wide: \"true\"}\nstringData: {k: v}\n",
    );
    write(
        "many.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: a, namespace: one}\nstringData: {k: one}\n---\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: b\n  annotations: {sealedsecrets.bitnami.com/cluster-wide: \"true\"}\nstringData: {k: two}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: c, namespace: three, labels: {x: z}}\ntype: kubernetes.io/basic-auth\ndata: {username: dQ==, password: cA==}\n",
    );
    write(
        "nons.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: nons}\nstringData: {k: v}\n",
    );
    write(
        "empty.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: empty, namespace: prod}\n",
    );
    write(
        "extra.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: ignored, labels: {tier: db}}\nstringData: {password: NEW-PLAINTEXT, extra: more}\n",
    );
    let label = b"prod/db";
    let sealed = |plain: &str| fixtures::seal_value(&pair.certificate, plain, label);
    let base = json!({
        "apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
        "metadata": {"name": "db", "namespace": "prod"},
        "spec": {
            "encryptedData": {"password": sealed("OLD"), "user": sealed("admin")},
            "template": {"metadata": {"name": "db", "namespace": "prod", "labels": {"app": "web"}}, "type": "Opaque"}
        }
    });
    write("base.json", &base.to_string());
    let mut renamed = base.clone();
    renamed["metadata"]["name"] = json!("moved");
    write("renamed.json", &renamed.to_string());
    let kubeconfig_text = match kubeconfig {
        Some(path) => std::fs::read_to_string(path).unwrap(),
        None => "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts:\n- name: c\n  context: {cluster: x, user: u, namespace: team}\nclusters:\n- name: x\n  cluster: {server: \"http://0.0.0.0:1\"}\nusers:\n- name: u\n  user: {}\n".to_owned(),
    };
    write("kc", &kubeconfig_text);
    dir
}

/// A `kubeseal` symlink to the built sealbox binary.
fn sealbox_as_kubeseal(dir: &Path) -> PathBuf {
    let link = dir.join("kubeseal");
    if !link.exists() {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_sealbox"), &link).unwrap();
    }
    link
}

fn run(binary: &Path, dir: &Path, row: &Row) -> Output {
    if let Some((copy, from)) = row.fresh {
        std::fs::copy(dir.join(from), dir.join(copy)).unwrap();
    }
    let mut command = Command::new(binary);
    command
        .args(row.args)
        .current_dir(dir)
        .env("HOME", "/nonexistent/kubeseal-peer-home")
        .env_remove("SEALBOX_LOG")
        .stdin(match row.stdin {
            Some(file) => Stdio::from(std::fs::File::open(dir.join(file)).unwrap()),
            None => Stdio::null(),
        });
    for (var, _) in std::env::vars().filter(|(k, _)| k.starts_with("SEALED_SECRETS_")) {
        command.env_remove(var);
    }
    if row.no_kubeconfig {
        command.env("KUBECONFIG", dir.join("no-such-kubeconfig"));
    } else {
        command.env("KUBECONFIG", dir.join("kc"));
    }
    command.output().unwrap()
}

/// The documents of an output and its format (`json` or `yaml`).
fn documents(text: &str) -> (&'static str, Vec<Value>) {
    let text = text.trim_start();
    if text.starts_with('{') {
        let docs = serde_json::Deserializer::from_str(text)
            .into_iter::<Value>()
            .map(Result::unwrap)
            .collect();
        ("json", docs)
    } else {
        let docs = serde_norway::Deserializer::from_str(text)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .filter(|v: &Value| !v.is_null())
            .collect();
        ("yaml", docs)
    }
}

fn open(value: &str, label: &[u8]) -> String {
    let ciphertext = STANDARD.decode(value).unwrap();
    let (plain, _) =
        sealbox_crypto::unseal_with_keys([&key().private_key], &ciphertext, label).unwrap();
    String::from_utf8(plain.to_vec()).unwrap()
}

/// What must be equal between the two outputs of one SealedSecret.
fn normalise_sealed(document: &Value) -> Value {
    let sealed: SealedSecret = serde_json::from_value(document.clone()).unwrap();
    let label = sealed.label();
    let values: BTreeMap<&String, String> = sealed
        .spec
        .encrypted_data
        .iter()
        .map(|(k, v)| (k, open(v, &label)))
        .collect();
    let mut annotations = sealed.metadata.annotations.clone().unwrap_or_default();
    annotations.remove(HINT);
    let template = sealed.spec.template.clone().unwrap_or_default();
    let template_metadata = template.metadata.clone().unwrap_or_default();
    let mut template_annotations = template_metadata.annotations.clone().unwrap_or_default();
    for scope in SCOPE_ANNOTATIONS {
        template_annotations.remove(scope);
    }
    json!({
        "kind": document["kind"], "apiVersion": document["apiVersion"],
        "name": sealed.metadata.name, "namespace": sealed.metadata.namespace,
        "annotations": annotations,
        "template": {
            "name": template_metadata.name, "namespace": template_metadata.namespace,
            "labels": template_metadata.labels.unwrap_or_default(),
            "annotations": template_annotations,
            "type": template.type_, "immutable": template.immutable,
        },
        "values": values,
    })
}

fn normalise_unsealed(document: &Value) -> Value {
    let data: BTreeMap<String, String> = document["data"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let plain = STANDARD.decode(v.as_str().unwrap()).unwrap();
            (k.clone(), String::from_utf8(plain).unwrap())
        })
        .collect();
    let metadata = &document["metadata"];
    json!({
        "kind": document["kind"], "apiVersion": document["apiVersion"],
        "name": metadata["name"], "namespace": metadata["namespace"],
        "labels": metadata["labels"], "ownerReferences": metadata["ownerReferences"],
        "type": document["type"], "data": data,
    })
}

/// What the row's outputs are compared on.
fn observe(row: &Row, dir: &Path, output: &Output) -> Value {
    let code = output.status.code();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if code != Some(0) {
        let shape = match code {
            Some(1) => stderr.starts_with("error: ") || stderr.contains("\nerror: "),
            _ => !stderr.is_empty(),
        };
        return json!({"code": code, "explained": shape});
    }
    let observed = match row.check {
        Check::Sealed | Check::SealedFile(_) => {
            let text = match row.check {
                Check::SealedFile(file) => std::fs::read_to_string(dir.join(file)).unwrap(),
                _ => stdout,
            };
            let (format, docs) = documents(&text);
            json!({"format": format, "documents": docs.iter().map(normalise_sealed).collect::<Vec<_>>()})
        }
        Check::Unsealed => {
            let (format, docs) = documents(&stdout);
            json!({"format": format, "documents": docs.iter().map(normalise_unsealed).collect::<Vec<_>>()})
        }
        Check::Raw(namespace, name, scope) => {
            json!({"value": open(stdout.trim_end(), &scope.label(namespace, name)), "newline": stdout.ends_with('\n')})
        }
        Check::Same => json!({"stdout": stdout}),
        Check::Status => json!({}),
    };
    json!({"code": code, "observed": observed})
}

/// Runs every row through both binaries; returns the rows that differ, with both sides.
fn compare(rows: &[Row], kubeseal: &Path, dir: &Path) -> Vec<String> {
    let sealbox = sealbox_as_kubeseal(dir);
    let mut differences = Vec::new();
    for row in rows {
        let theirs = observe(row, dir, &run(kubeseal, dir, row));
        let ours = observe(row, dir, &run(&sealbox, dir, row));
        eprintln!(
            "{:<55} kubeseal {} | sealbox {}",
            row.name, theirs["code"], ours["code"]
        );
        if theirs != ours {
            differences.push(format!(
                "{}: kubeseal {:?}\n  kubeseal: {theirs}\n  sealbox:  {ours}",
                row.name, row.args
            ));
        }
    }
    differences
}

#[test]
fn offline_invocations_match_real_kubeseal() {
    let Some(peers) = Peers::find_or_skip().unwrap() else {
        return;
    };
    let dir = workdir(None);
    let rows = offline_rows();
    let differences = compare(&rows, &peers.kubeseal(), dir.path());
    assert!(
        differences.is_empty(),
        "{} of {} rows differ:\n{}",
        differences.len(),
        rows.len(),
        differences.join("\n")
    );
}

#[test]
fn cluster_invocations_match_real_kubeseal() {
    let Some(peers) = Peers::find_or_skip().unwrap() else {
        return;
    };
    let runtime = fixtures::test_runtime().unwrap();
    let server = fixtures::double_with_crd().unwrap();
    let double = runtime.block_on(ServedDouble::start(server)).unwrap();
    let url = runtime.block_on(stub_controller());
    double
        .server
        .proxy_service(CONTROLLER_NAMESPACE, CONTROLLER_NAME, &url);
    double
        .server
        .put(&Service {
            metadata: ObjectMeta {
                name: Some(CONTROLLER_NAME.to_owned()),
                namespace: Some(CONTROLLER_NAMESPACE.to_owned()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                ports: Some(vec![ServicePort {
                    name: Some("http".to_owned()),
                    port: 8080,
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        })
        .unwrap();
    let dir = workdir(Some(&double.kubeconfig));
    let rows = cluster_rows();
    let differences = compare(&rows, &peers.kubeseal(), dir.path());
    assert!(
        differences.is_empty(),
        "{} of {} rows differ:\n{}",
        differences.len(),
        rows.len(),
        differences.join("\n")
    );
}

/// The controller's HTTP API for the test key: its certificate, `/v1/verify` (200 when every
/// value opens, else 409) and `/v1/rotate` (every value re-sealed).
async fn stub_controller() -> String {
    fn open_all(body: &[u8]) -> Option<(SealedSecret, BTreeMap<String, Vec<u8>>)> {
        let sealed: SealedSecret = serde_json::from_slice(body).ok()?;
        let label = sealed.label();
        let values = sealed
            .spec
            .encrypted_data
            .iter()
            .map(|(k, v)| {
                let ciphertext = STANDARD.decode(v).ok()?;
                let (plain, _) =
                    sealbox_crypto::unseal_with_keys([&key().private_key], &ciphertext, &label)
                        .ok()?;
                Some((k.clone(), plain.to_vec()))
            })
            .collect::<Option<_>>()?;
        Some((sealed, values))
    }
    async fn cert() -> String {
        key().certificate.to_pem()
    }
    async fn verify(body: Bytes) -> StatusCode {
        match open_all(&body) {
            Some(_) => StatusCode::OK,
            None => StatusCode::CONFLICT,
        }
    }
    async fn rotate(body: Bytes) -> (StatusCode, String) {
        let Some((mut sealed, values)) = open_all(&body) else {
            return (StatusCode::CONFLICT, "cannot decrypt\n".to_owned());
        };
        let label = sealed.label();
        for (name, plain) in values {
            let value = String::from_utf8(plain).unwrap();
            let resealed = fixtures::seal_value(&key().certificate, &value, &label);
            sealed.spec.encrypted_data.insert(name, resealed);
        }
        (StatusCode::OK, serde_json::to_string(&sealed).unwrap())
    }
    let app = axum::Router::new()
        .route("/v1/cert.pem", get(cert))
        .route("/v1/verify", post(verify))
        .route("/v1/rotate", post(rotate));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}
