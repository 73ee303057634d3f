//! What the controller's test binaries share: test keys, the API double with the CRD and key
//! Secrets installed, the controller started from flags, SealedSecrets and Secrets to feed it,
//! polling, and a plain HTTP client for the controller's own ports.
//!
//! Included with `mod support;` from each binary in `controller/tests/`.

// Each test binary compiles its own copy of this module and uses only part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::CustomResourceExt as _;
use kube::api::{Api, PostParams};
use kube::core::ObjectMeta;
use sealbox_controller::{Config, Running};
use sealbox_crds::{SealedSecret, SealedSecretSpec, SecretTemplateSpec, TemplateMetadata};
use sealbox_crypto::key_secret::KeySecret;
use sealbox_crypto::{Certificate, KeyPair};
use sealbox_tests::ApiServer;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type TestResult<T = ()> = Result<T, BoxError>;

/// The controller's namespace (as in the kustomize base): its key Secrets and its Lease.
pub const CONTROLLER_NS: &str = "kube-system";
/// Where the SealedSecrets live: not the controller's namespace, so that what exists for the
/// controller's own namespace (its Role's rules) and for everyone else's (the ClusterRole's) are
/// each exercised.
pub const NS: &str = "app";
/// How long to wait for anything the controller does eventually.
pub const WAIT: Duration = Duration::from_secs(20);
/// How often [`until`] and [`until_some`] look again (cheap in-process reads; the HA tests time
/// handovers with it).
const POLL: Duration = Duration::from_millis(10);

// ---------------------------------------------------------------------------------------------
// Logs

/// Test logs, off unless `RUST_LOG` asks for them.
pub fn init_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

// ---------------------------------------------------------------------------------------------
// Keys

/// How many test key pairs there are.
const KEYS: usize = 12;

/// Test key pair `index` (2048-bit): newest first, an hour apart. Each is generated once per
/// test binary, when first used.
pub fn pair(index: usize) -> &'static KeyPair {
    static NOW: OnceLock<SystemTime> = OnceLock::new();
    static PAIRS: [OnceLock<KeyPair>; KEYS] = [const { OnceLock::new() }; KEYS];
    let now = *NOW.get_or_init(|| SystemTime::now() - Duration::from_secs(60));
    PAIRS[index].get_or_init(|| {
        let age = Duration::from_secs(3600 * index as u64);
        KeyPair::generate_with_bits(2048, "test", now - age).expect("key generation")
    })
}

/// The key Secret (Bitnami's format, in [`CONTROLLER_NS`]) named `name` holding `pair`.
pub fn key_secret(pair: &KeyPair, name: &str) -> Secret {
    let mut manifest =
        KeySecret::from_key_pair(pair, CONTROLLER_NS, "sealed-secrets-key").to_json();
    manifest["metadata"]["name"] = json!(name);
    serde_json::from_value(manifest).expect("key Secret")
}

/// The key Secret `sealed-secrets-key-test{index}` of test key pair `index`.
pub fn test_key_secret(index: usize) -> Secret {
    key_secret(pair(index), &format!("sealed-secrets-key-test{index}"))
}

// ---------------------------------------------------------------------------------------------
// The API double and the controller

/// A fresh API double with our CRD installed and the key Secrets of test keys `keys` stored.
pub async fn api_server(keys: &[usize]) -> TestResult<ApiServer> {
    api_server_with_crd(serde_json::to_value(SealedSecret::crd())?, keys).await
}

/// A fresh API double with `crd` installed and the key Secrets of test keys `keys` stored.
pub async fn api_server_with_crd(crd: Value, keys: &[usize]) -> TestResult<ApiServer> {
    init_logs();
    let server = ApiServer::new();
    server.apply_crd(crd)?;
    let secrets: Api<Secret> = Api::namespaced(server.client(), CONTROLLER_NS);
    for &index in keys {
        secrets
            .create(&PostParams::default(), &test_key_secret(index))
            .await?;
    }
    Ok(server)
}

/// The controller's configuration from its flags: no fixed ports (several replicas may run in
/// one process), [`CONTROLLER_NS`], 2048-bit keys, no key renewal; then `args`, which override
/// these (`args_override_self`).
pub fn config(args: &[&str]) -> TestResult<Config> {
    let mut argv = vec![
        "sealbox-controller",
        "--listen-addr=127.0.0.1:0",
        "--listen-metrics-addr=127.0.0.1:0",
        "--namespace",
        CONTROLLER_NS,
        "--key-size=2048",
        "--key-renew-period=0",
    ];
    argv.extend_from_slice(args);
    Ok(<Config as clap::Parser>::try_parse_from(&argv)?)
}

/// The controller started against `server` with [`config`]`(args)`.
pub async fn start_controller(server: &ApiServer, args: &[&str]) -> TestResult<Running> {
    Ok(sealbox_controller::start(server.client(), &config(args)?).await?)
}

// ---------------------------------------------------------------------------------------------
// Waiting

/// Waits until `check()` holds.
pub async fn until(what: &str, mut check: impl FnMut() -> bool) -> TestResult {
    until_some(what, || check().then_some(())).await
}

/// Polls `probe` until it returns something or [`WAIT`] passes.
pub async fn until_some<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> TestResult<T> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = probe() {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("timed out waiting for {what}").into());
        }
        tokio::time::sleep(POLL).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Objects

pub fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// `plaintext` sealed for `certificate` with `label`, base64 as in `encryptedData`.
pub fn seal(certificate: &Certificate, plaintext: &str, label: &[u8]) -> String {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let sealed = sealbox_crypto::seal(&rng, certificate.public_key(), plaintext.as_bytes(), label)
        .expect("seal");
    STANDARD.encode(sealed)
}

/// A SealedSecret `namespace/name` with `values` sealed for `certificate`, in the scope its
/// `annotations` give (strict without them).
pub fn sealed_secret_for(
    certificate: &Certificate,
    namespace: &str,
    name: &str,
    values: &[(&str, &str)],
    annotations: &[(&str, &str)],
) -> SealedSecret {
    let mut sealed = SealedSecret::new(name, SealedSecretSpec::default());
    sealed.metadata.namespace = Some(namespace.into());
    if !annotations.is_empty() {
        sealed.metadata.annotations = Some(map(annotations));
    }
    let label = sealed.label();
    sealed.spec.encrypted_data = values
        .iter()
        .map(|(k, v)| ((*k).to_owned(), seal(certificate, v, &label)))
        .collect();
    sealed
}

/// A SealedSecret template with these labels and annotations (none where empty).
pub fn template(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> SecretTemplateSpec {
    SecretTemplateSpec {
        metadata: Some(TemplateMetadata {
            labels: (!labels.is_empty()).then(|| map(labels)),
            annotations: (!annotations.is_empty()).then(|| map(annotations)),
            ..TemplateMetadata::default()
        }),
        ..SecretTemplateSpec::default()
    }
}

/// Someone else's Secret `NS/name`; an empty list leaves its field out.
pub fn plain_secret(
    name: &str,
    annotations: &[(&str, &str)],
    labels: &[(&str, &str)],
    data: &[(&str, &str)],
) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            annotations: (!annotations.is_empty()).then(|| map(annotations)),
            labels: (!labels.is_empty()).then(|| map(labels)),
            ..ObjectMeta::default()
        },
        data: (!data.is_empty()).then(|| {
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                .collect()
        }),
        ..Secret::default()
    }
}

/// A Secret's data as text.
pub fn secret_data(secret: &Secret) -> BTreeMap<String, String> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect()
}

/// Successful writes (create, update, patch) of Secret `namespace/name`, from the request log.
pub fn secret_writes(server: &ApiServer, namespace: &str, name: &str) -> usize {
    server
        .request_log()
        .iter()
        .filter(|r| {
            r.resource == "secrets"
                && r.namespace.as_deref() == Some(namespace)
                && r.name.as_deref() == Some(name)
                && matches!(r.verb.as_str(), "create" | "update" | "patch")
                && r.status < 300
        })
        .count()
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// A plain HTTP/1.1 request to a controller's own port (not through a Service), with a JSON
/// `body` unless it is empty: the status code and the body of the answer.
pub async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> TestResult<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = if body.is_empty() {
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    } else {
        format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let code = response
        .split_whitespace()
        .nth(1)
        .ok_or("no status line")?
        .parse()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((code, body))
}

/// [`http`] GET.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> TestResult<(u16, String)> {
    http(addr, "GET", path, "").await
}
