//! The HTTP API and the metrics, end to end: the router in process (`tower::ServiceExt::oneshot`)
//! for every status code, and the real `sealbox_controller::start` behind the API double's
//! service proxy for what `kubeseal` does, the timeouts and the `/metrics` scrape.
//!
//! One test binary; each RSA test key (2048-bit) is generated once for all of it.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http_body_util::BodyExt as _;
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use sealbox_controller::keys::KeyEntry;
use sealbox_controller::server::{self, ApiSettings, Readiness, ServerState};
use sealbox_controller::{KeyRegistry, Metrics, Running};
use sealbox_crds::SealedSecret;
use sealbox_crypto::Certificate;
use sealbox_crypto::scope::{
    CLUSTER_WIDE_ANNOTATION, NAMESPACE_WIDE_ANNOTATION, SEALING_KEY_ANNOTATION,
};
use sealbox_tests::ApiServer;
use serde_json::{Value, json};
use support::{BoxError, CONTROLLER_NS, TestResult, WAIT, pair};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tower::ServiceExt as _;

/// The controller's Service, named as deployed.
const SERVICE: &str = sealbox_tests::fixtures::CONTROLLER_NAME;

// ---------------------------------------------------------------------------------------------
// Keys, sealing, documents

fn registry(keys: &[usize]) -> KeyRegistry {
    KeyRegistry::with_entries(
        keys.iter()
            .map(|&i| KeyEntry {
                secret_name: format!("sealed-secrets-key{i}"),
                created: None,
                pair: pair(i).clone(),
            })
            .collect(),
    )
}

fn seal(key: usize, plaintext: &str, label: &[u8]) -> String {
    support::seal_value(&pair(key).certificate, plaintext, label)
}

fn unseal(key: usize, value: &Value, label: &[u8]) -> Option<String> {
    let ciphertext = STANDARD.decode(value.as_str()?).ok()?;
    let plaintext = sealbox_crypto::unseal(&pair(key).private_key, &ciphertext, label).ok()?;
    String::from_utf8(plaintext.to_vec()).ok()
}

/// A SealedSecret `prod/db` with `values` sealed for `key` with `label`, carrying `annotations`
/// and a template whose own annotations claim cluster-wide scope (they must not count).
fn sealed_document(annotations: Value, values: &[(&str, &str)], key: usize, label: &[u8]) -> Value {
    let encrypted: BTreeMap<&str, String> = values
        .iter()
        .map(|(k, v)| (*k, seal(key, v, label)))
        .collect();
    json!({
        "apiVersion": "bitnami.com/v1alpha1",
        "kind": "SealedSecret",
        "metadata": {"name": "db", "namespace": "prod", "annotations": annotations},
        "spec": {
            "encryptedData": encrypted,
            "template": {
                "metadata": {
                    "labels": {"app": "web"},
                    "annotations": {CLUSTER_WIDE_ANNOTATION: "true"}
                },
                "type": "Opaque",
                "data": {"url": "postgres://admin:{{ .password }}@db:5432/app"}
            }
        }
    })
}

fn tamper(document: &mut Value, key: &str) {
    let value = &mut document["spec"]["encryptedData"][key];
    let mut bytes = STANDARD
        .decode(value.as_str().expect("a sealed value"))
        .expect("base64");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    *value = json!(STANDARD.encode(bytes));
}

// ---------------------------------------------------------------------------------------------
// In-process router

fn settings() -> ApiSettings {
    ApiSettings {
        rate_limit: 2,
        rate_limit_burst: 2,
        read_timeout: Duration::from_secs(5),
        write_timeout: Duration::from_secs(30),
        accept_deprecated_v1_data: false,
        trust_forwarded_for: false,
    }
}

struct InProcess {
    router: Router,
    metrics: Arc<Metrics>,
}

fn api(keys: KeyRegistry, settings: ApiSettings) -> InProcess {
    let metrics = Arc::new(Metrics::new(keys.clone()));
    let state = ServerState::new(keys, Readiness::default(), metrics.clone(), settings);
    InProcess {
        router: server::router(state),
        metrics,
    }
}

/// An answer: status, content type, body text.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    content_type: Option<String>,
    retry_after: Option<String>,
    body: String,
}

async fn call(router: &Router, request: Request<Body>) -> Answer {
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let status = response.status();
    let header_text = |name: header::HeaderName| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header_text(header::CONTENT_TYPE);
    let retry_after = header_text(header::RETRY_AFTER);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Answer {
        status,
        content_type,
        retry_after,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

async fn get(router: &Router, path: &str) -> Answer {
    call(
        router,
        Request::get(path).body(Body::empty()).expect("request"),
    )
    .await
}

async fn post(router: &Router, path: &str, content_type: &str, body: impl Into<Body>) -> Answer {
    let request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, content_type)
        .body(body.into())
        .expect("request");
    call(router, request).await
}

async fn post_json(router: &Router, path: &str, document: &Value) -> Answer {
    post(router, path, "application/json", document.to_string()).await
}

/// A fresh router per test step where the rate limit (2/s, burst 2) must not interfere.
fn unlimited() -> ApiSettings {
    ApiSettings {
        rate_limit: 0,
        ..settings()
    }
}

// ---------------------------------------------------------------------------------------------
// Endpoints in process

#[tokio::test]
async fn healthz_answers_before_any_key_and_the_rest_wait_for_one() {
    let api = api(KeyRegistry::new(), settings());
    let health = get(&api.router, "/healthz").await;
    assert_eq!(
        (health.status, health.body.as_str()),
        (StatusCode::OK, "ok")
    );
    assert_eq!(
        get(&api.router, "/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let cert = get(&api.router, "/v1/cert.pem").await;
    assert_eq!(cert.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(cert.body.contains("no sealing key yet"), "{}", cert.body);
    let document = sealed_document(json!({}), &[("password", "hunter2")], 0, b"prod/db");
    for path in ["/v1/verify", "/v1/rotate"] {
        let answer = post_json(&api.router, path, &document).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
    }
}

#[tokio::test]
async fn cert_is_the_newest_key_as_pem() {
    let api = api(registry(&[2, 0, 1]), settings());
    let answer = get(&api.router, "/v1/cert.pem").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.content_type.as_deref(),
        Some("application/x-pem-file")
    );
    assert!(answer.body.starts_with("-----BEGIN CERTIFICATE-----"));
    let certificate = Certificate::from_pem(answer.body.as_bytes()).expect("a certificate");
    assert_eq!(
        certificate.public_key().fingerprint(),
        pair(0).fingerprint()
    );
    assert_eq!(get(&api.router, "/readyz").await.status, StatusCode::OK);
    // Methods the route does not serve.
    let wrong = post(&api.router, "/v1/cert.pem", "text/plain", "").await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn verify_good_tampered_and_wrong_scope_in_json_and_yaml() {
    let api = api(registry(&[0, 1]), unlimited());
    let good = sealed_document(
        json!({}),
        &[("password", "hunter2"), ("user", "admin")],
        1,
        b"prod/db",
    );
    let answer = post_json(&api.router, "/v1/verify", &good).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);

    let yaml = serde_norway::to_string(&good).expect("yaml");
    let answer = post(&api.router, "/v1/verify", "application/yaml", yaml.clone()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);

    let mut tampered = good.clone();
    tamper(&mut tampered, "password");
    let answer = post_json(&api.router, "/v1/verify", &tampered).await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert!(
        answer
            .body
            .contains("encryptedData[\"password\"]: no key could decrypt"),
        "{}",
        answer.body
    );
    assert!(
        !answer.body.contains("user"),
        "only failing keys: {}",
        answer.body
    );
    let sealed_value = tampered["spec"]["encryptedData"]["password"]
        .as_str()
        .expect("value");
    assert!(!answer.body.contains(sealed_value));

    // Sealed namespace-wide; posted without the annotation it is strict, and the label differs.
    let namespace_wide = sealed_document(json!({}), &[("password", "hunter2")], 0, b"prod");
    let answer = post_json(&api.router, "/v1/verify", &namespace_wide).await;
    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.body);
    // The template's cluster-wide annotation never widens the scope either.
    let mut annotated = namespace_wide.clone();
    annotated["metadata"]["annotations"] = json!({NAMESPACE_WIDE_ANNOTATION: "true"});
    let answer = post_json(&api.router, "/v1/verify", &annotated).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let cluster_wide = sealed_document(json!({}), &[("password", "hunter2")], 0, b"");
    let answer = post_json(&api.router, "/v1/verify", &cluster_wide).await;
    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.body);

    // Not a SealedSecret at all.
    for (body, expected) in [
        (
            "{\"kind\": \"SealedSecret\", \"spec\": ",
            "not a JSON or YAML document",
        ),
        (
            "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\n",
            "not a SealedSecret",
        ),
        ("[1, 2, 3]", "expected a JSON or YAML object"),
    ] {
        let answer = post(&api.router, "/v1/verify", "application/json", body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(answer.body.contains(expected), "{}", answer.body);
    }
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let api = api(registry(&[0]), unlimited());
    let big = vec![b' '; server::MAX_BODY_BYTES + 1];
    for path in ["/v1/verify", "/v1/rotate"] {
        // Declared up front.
        let answer = post(&api.router, path, "application/json", big.clone()).await;
        assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        // Streamed without a length.
        let chunks = big
            .chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(axum::body::Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>();
        let streamed = Body::from_stream(futures::stream::iter(chunks));
        let answer = post(&api.router, path, "application/json", streamed).await;
        assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
    }
    // Just under the limit is read (and then found not to be a SealedSecret).
    let mut fits = vec![b' '; server::MAX_BODY_BYTES - 2];
    fits.extend_from_slice(b"{}");
    let answer = post(&api.router, "/v1/verify", "application/json", fits).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
}

#[tokio::test]
async fn rotate_reseals_with_the_newest_key_keeping_scope_and_templates() {
    let api = api(registry(&[0, 1, 2]), unlimited());
    let original = sealed_document(
        json!({NAMESPACE_WIDE_ANNOTATION: "true", "team": "payments"}),
        &[("password", "hunter2"), ("user", "admin")],
        2,
        b"prod",
    );
    for (content_type, body) in [
        ("application/json", original.to_string()),
        (
            "application/yaml",
            serde_norway::to_string(&original).expect("yaml"),
        ),
    ] {
        let answer = post(&api.router, "/v1/rotate", content_type, body).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(answer.content_type.as_deref(), Some("application/json"));
        let rotated: Value = serde_json::from_str(&answer.body).expect("JSON");

        let annotations = &rotated["metadata"]["annotations"];
        assert_eq!(
            annotations[SEALING_KEY_ANNOTATION],
            json!(pair(0).fingerprint().to_string())
        );
        assert_eq!(annotations[NAMESPACE_WIDE_ANNOTATION], json!("true"));
        assert_eq!(annotations["team"], json!("payments"));
        // Templates come back verbatim, template.data included (not flattened into values).
        assert_eq!(rotated["spec"]["template"], original["spec"]["template"]);
        let values = rotated["spec"]["encryptedData"]
            .as_object()
            .expect("encryptedData");
        assert_eq!(values.len(), 2);
        // The newest key alone decrypts them, for the namespace-wide label.
        assert_eq!(
            unseal(0, &values["password"], b"prod").as_deref(),
            Some("hunter2")
        );
        assert_eq!(
            unseal(0, &values["user"], b"prod").as_deref(),
            Some("admin")
        );
        assert_eq!(unseal(0, &values["password"], b"prod/db"), None);
        assert_eq!(unseal(2, &values["password"], b"prod"), None);

        // What rotate answers, verify accepts.
        let verified = post_json(&api.router, "/v1/verify", &rotated).await;
        assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    }
}

#[tokio::test]
async fn rotate_that_cannot_decrypt_answers_409_naming_the_keys() {
    let api = api(registry(&[0, 1]), unlimited());
    // Sealed for another name: the strict label is prod/db, these were sealed for prod/web.
    let mut foreign = sealed_document(
        json!({}),
        &[("password", "hunter2"), ("token", "t0k3n")],
        1,
        b"prod/web",
    );
    foreign["spec"]["encryptedData"]["good"] = json!(seal(0, "fine", b"prod/db"));
    let answer = post_json(&api.router, "/v1/rotate", &foreign).await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert!(answer.body.contains("cannot re-seal"), "{}", answer.body);
    assert!(
        answer.body.contains("encryptedData[\"password\"]"),
        "{}",
        answer.body
    );
    assert!(
        answer.body.contains("encryptedData[\"token\"]"),
        "{}",
        answer.body
    );
    assert!(!answer.body.contains("\"good\""), "{}", answer.body);
    assert!(!answer.body.contains("hunter2") && !answer.body.contains("t0k3n"));

    let mut tampered = sealed_document(json!({}), &[("password", "hunter2")], 1, b"prod/db");
    tamper(&mut tampered, "password");
    let answer = post_json(&api.router, "/v1/rotate", &tampered).await;
    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.body);

    let oversized = vec![b'x'; server::MAX_BODY_BYTES * 2];
    let answer = post(&api.router, "/v1/rotate", "application/yaml", oversized).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn verify_and_rotate_are_rate_limited_per_route() {
    let api = api(registry(&[0]), settings());
    let document = sealed_document(json!({}), &[("password", "hunter2")], 0, b"prod/db");
    // Bitnami's defaults: 2 per second, bursts of 2 more than the first.
    for _ in 0..3 {
        let answer = post_json(&api.router, "/v1/verify", &document).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    }
    let limited = post_json(&api.router, "/v1/verify", &document).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.retry_after.as_deref(), Some("1"));
    assert!(
        limited.body.contains("too many requests"),
        "{}",
        limited.body
    );
    // Rotate has its own bucket; the certificate is never limited.
    assert_eq!(
        post_json(&api.router, "/v1/rotate", &document).await.status,
        StatusCode::OK
    );
    for _ in 0..10 {
        assert_eq!(
            get(&api.router, "/v1/cert.pem").await.status,
            StatusCode::OK
        );
    }
    // Half a second refills one request.
    tokio::time::sleep(Duration::from_millis(550)).await;
    assert_eq!(
        post_json(&api.router, "/v1/verify", &document).await.status,
        StatusCode::OK
    );
    assert_eq!(
        post_json(&api.router, "/v1/verify", &document).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );

    let text = api.metrics.encode().expect("metrics");
    for line in [
        "sealed_secrets_controller_http_requests_total{path=\"/v1/verify\",code=\"200\",method=\"post\"} 4",
        "sealed_secrets_controller_http_requests_total{path=\"/v1/verify\",code=\"429\",method=\"post\"} 2",
        "sealed_secrets_controller_http_requests_total{path=\"/v1/rotate\",code=\"200\",method=\"post\"} 1",
        "sealed_secrets_controller_http_requests_total{path=\"/v1/cert.pem\",code=\"200\",method=\"get\"} 10",
        "sealed_secrets_controller_http_request_duration_seconds_count{path=\"/v1/verify\",method=\"post\"} 6",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
}

/// `count` values that are valid base64 and long enough to reach RSA, but that no key
/// decrypts: the body that made every value try every key.
fn undecryptable_document(count: usize) -> Value {
    // A 2048-bit RSA block's length (256, big-endian), the block, an AES-GCM part.
    let mut blob = vec![1u8, 0];
    blob.extend_from_slice(&[7u8; 256 + 40]);
    let garbage = STANDARD.encode(blob);
    let values: BTreeMap<String, &str> = (0..count)
        .map(|i| (format!("v{i:05}"), garbage.as_str()))
        .collect();
    json!({"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
           "metadata": {"name": "db", "namespace": "prod"},
           "spec": {"encryptedData": values}})
}

/// The value of `sealbox_private_key_operations_total` in a metrics text.
fn key_operations(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("sealbox_private_key_operations_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// A body nested 200 levels deep, in YAML flow mappings (quadratic for libyaml).
fn deep_body(levels: usize) -> String {
    format!(
        "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nspec: {}",
        "{a: ".repeat(levels)
    )
}

#[tokio::test]
async fn deep_bodies_and_too_many_values_are_refused_without_quoting_them() {
    let api = api(registry(&[0]), unlimited());
    for path in ["/v1/verify", "/v1/rotate"] {
        let answer = post(&api.router, path, "application/yaml", deep_body(200)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
        assert!(
            answer
                .body
                .contains("document nested deeper than 64 levels at line 3"),
            "{}",
            answer.body
        );
        assert!(!answer.body.contains("{a:"), "{}", answer.body);
        assert!(answer.body.len() < 512, "{}", answer.body);

        // 1,500 values that fail, with long names: the 409 names failing keys, and its body
        // stays bounded.
        let mut short = undecryptable_document(0);
        for i in 0..1_500 {
            short["spec"]["encryptedData"][format!("{}{i}", "k".repeat(200))] = json!("AAAA");
        }
        let answer = post_json(&api.router, path, &short).await;
        assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.body);
        assert!(
            answer.body.len() <= server::MAX_ERROR_BODY_BYTES + 16,
            "{}",
            answer.body.len()
        );

        let many = undecryptable_document(1_501);
        let answer = post_json(&api.router, path, &many).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
        assert!(answer.body.contains("1501 values"), "{}", answer.body);
        assert!(answer.body.contains("at most 1500"), "{}", answer.body);
    }
}

/// Values no key decrypts used to try every key each (values x keys operations); now the
/// request stops at 2 x values + keys and says why.
#[tokio::test]
async fn values_no_key_decrypts_cost_a_bounded_number_of_key_operations() {
    let api = api(registry(&[0, 1, 2, 3]), unlimited());
    let body = undecryptable_document(300);
    let answer = post_json(&api.router, "/v1/verify", &body).await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.body
    );
    assert!(
        answer
            .body
            .contains("stopped after 604 private-key operations"),
        "{}",
        answer.body
    );
    let ops = key_operations(&api.metrics.encode().expect("metrics"));
    assert_eq!(ops, 604, "2 x 300 values + 4 keys, not 300 x 4");
    let answer = post_json(&api.router, "/v1/rotate", &body).await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.body
    );
    assert_eq!(
        key_operations(&api.metrics.encode().expect("metrics")),
        1208
    );
}

/// X-Forwarded-For is the client's own text: 1000 made-up addresses are one client.
#[tokio::test]
async fn forwarded_for_headers_do_not_make_new_clients() {
    let api = api(registry(&[0]), settings());
    let mut passed = 0;
    for i in 0..1000u32 {
        let request = Request::builder()
            .method(Method::POST)
            .uri("/v1/verify")
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                "x-forwarded-for",
                format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
            )
            .body(Body::from("{}"))
            .expect("request");
        if call(&api.router, request).await.status != StatusCode::TOO_MANY_REQUESTS {
            passed += 1;
        }
    }
    // The burst (2 + 1) and what the rate (2/s) refills while the loop runs.
    assert!(passed <= 10, "{passed} of 1000 passed the limit");

    // Trusted only when asked to.
    let trusting = api_with_trust();
    let mut passed = 0;
    for i in 0..20u32 {
        let request = Request::builder()
            .method(Method::POST)
            .uri("/v1/verify")
            .header("x-forwarded-for", format!("10.0.0.{i}"))
            .body(Body::from("{}"))
            .expect("request");
        if call(&trusting.router, request).await.status != StatusCode::TOO_MANY_REQUESTS {
            passed += 1;
        }
    }
    assert_eq!(passed, 20);
}

fn api_with_trust() -> InProcess {
    api(
        registry(&[0]),
        ApiSettings {
            trust_forwarded_for: true,
            ..settings()
        },
    )
}

// ---------------------------------------------------------------------------------------------
// The real controller behind the API double

/// The API double with the CRD and the key Secrets of `keys`, and the controller started with
/// `args`, its HTTP API behind the double's service proxy as the Service `kube-system/
/// sealed-secrets-controller`.
async fn controller_behind_proxy(
    keys: &[usize],
    args: &[&str],
) -> Result<(ApiServer, Running), BoxError> {
    let server = support::api_server(keys).await?;
    let running = support::start_controller(&server, args).await?;
    server.proxy_service(
        CONTROLLER_NS,
        SERVICE,
        &format!("http://{}", running.local_addr()),
    );
    support::until("the controller to be ready", || running.is_ready()).await?;
    Ok((server, running))
}

/// A request through the API server's service proxy, as kubeseal makes it.
async fn through_proxy(
    client: &Client,
    method: Method,
    path: &str,
    body: Vec<u8>,
) -> Result<Answer, BoxError> {
    let uri =
        format!("/api/v1/namespaces/{CONTROLLER_NS}/services/http:{SERVICE}:http/proxy/{path}");
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(kube::client::Body::from(body))?;
    let response = client.send(request).await?;
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.into_body().collect_bytes().await?;
    Ok(Answer {
        status,
        content_type,
        retry_after: None,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A JSON document POSTed through the API server's service proxy.
async fn post_json_through_proxy(
    client: &Client,
    path: &str,
    document: &Value,
) -> Result<Answer, BoxError> {
    through_proxy(
        client,
        Method::POST,
        path,
        document.to_string().into_bytes(),
    )
    .await
}

/// kubeseal's requests (`--fetch-cert`, `--validate`, `--re-encrypt`) through the service proxy
/// path `/api/v1/namespaces/kube-system/services/http:sealed-secrets-controller:http/proxy/…`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeseal_shaped_requests_through_the_service_proxy() -> TestResult {
    let (server, running) = controller_behind_proxy(&[1, 0], &[]).await?;
    let client = server.client();

    let cert = through_proxy(&client, Method::GET, "v1/cert.pem", Vec::new()).await?;
    assert_eq!(cert.status, StatusCode::OK, "{}", cert.body);
    assert_eq!(cert.content_type.as_deref(), Some("application/x-pem-file"));
    assert_eq!(cert.body, pair(0).certificate.to_pem());

    let good = sealed_document(json!({}), &[("password", "hunter2")], 1, b"prod/db");
    let verified = post_json_through_proxy(&client, "v1/verify", &good).await?;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    let mut tampered = good.clone();
    tamper(&mut tampered, "password");
    let refused = post_json_through_proxy(&client, "v1/verify", &tampered).await?;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert!(refused.body.contains("password"), "{}", refused.body);

    let rotated = post_json_through_proxy(&client, "v1/rotate", &good).await?;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    assert_eq!(rotated.content_type.as_deref(), Some("application/json"));
    let rotated: Value = serde_json::from_str(&rotated.body)?;
    assert_eq!(
        unseal(0, &rotated["spec"]["encryptedData"]["password"], b"prod/db").as_deref(),
        Some("hunter2")
    );

    // The proxy's client is the API server: one bucket for it; the fourth verify in a row is
    // refused and the proxy passes the 429 on.
    let mut codes = Vec::new();
    for _ in 0..4 {
        let answer = post_json_through_proxy(&client, "v1/verify", &good).await?;
        codes.push(answer.status.as_u16());
    }
    assert_eq!(codes.last(), Some(&429), "{codes:?}");

    running.shutdown().await?;
    Ok(())
}

/// Headers and bodies must arrive within --read-timeout: a stalled client is cut off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_by_the_read_timeout() -> TestResult {
    let (_server, running) = controller_behind_proxy(&[0], &["--read-timeout=300ms"]).await?;
    let addr = running.local_addr();

    // Headers never finished: the connection is closed.
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        .await?;
    let started = tokio::time::Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await??;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert!(!String::from_utf8_lossy(&rest).contains("200 OK"));

    // A body that stops half-way: 408.
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(
            b"POST /v1/verify HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"kind\":",
        )
        .await?;
    let mut head = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut head)).await??;
    assert_eq!(&head[9..12], b"408");

    running.shutdown().await?;
    Ok(())
}

/// One scrape of /metrics shows every metric by its exact name; a deleted SealedSecret's
/// condition series goes away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_scraped_with_bitnamis_names() -> TestResult {
    let (server, running) = controller_behind_proxy(&[0], &[]).await?;
    let client = server.client();
    let sealed: Api<SealedSecret> = Api::namespaced(client.clone(), "prod");
    let good = sealed_document(json!({}), &[("password", "hunter2")], 0, b"prod/db");
    sealed
        .create(&PostParams::default(), &serde_json::from_value(good)?)
        .await?;
    let mut broken = sealed_document(json!({}), &[("password", "hunter2")], 0, b"elsewhere");
    broken["metadata"]["name"] = json!("broken");
    sealed
        .create(&PostParams::default(), &serde_json::from_value(broken)?)
        .await?;
    through_proxy(&client, Method::GET, "v1/cert.pem", Vec::new()).await?;

    let condition = |name: &str, value: &str| {
        format!(
            "sealed_secrets_controller_condition_info{{namespace=\"prod\",name=\"{name}\",condition=\"Synced\",ss_app_kubernetes_io_instance=\"\"}} {value}"
        )
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    let text = loop {
        let text = scrape(running.metrics_addr()).await?;
        if text.contains(&condition("db", "1")) && text.contains(&condition("broken", "-1")) {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "conditions never reported:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for name in [
        "sealed_secrets_controller_unseal_requests_total",
        "sealed_secrets_controller_unseal_errors_total{reason=\"unseal\",namespace=\"prod\"}",
        "sealed_secrets_controller_condition_info{",
        "sealed_secrets_controller_http_requests_total{path=\"/v1/cert.pem\",code=\"200\",method=\"get\"}",
        "sealed_secrets_controller_http_request_duration_seconds_bucket{",
        "sealed_secrets_controller_http_request_duration_seconds_sum{path=\"/v1/cert.pem\",method=\"get\"}",
        "sealbox_unseal_duration_seconds_bucket{",
        "sealbox_unseal_duration_seconds_count",
        "sealbox_private_key_operations_total",
        "sealbox_keys_loaded 1",
        "sealbox_leader 1",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "no {name} in\n{text}"
        );
    }
    for family in [
        "sealed_secrets_controller_unseal_requests counter",
        "sealed_secrets_controller_unseal_errors counter",
        "sealed_secrets_controller_condition_info gauge",
        "sealed_secrets_controller_http_requests counter",
        "sealed_secrets_controller_http_request_duration_seconds histogram",
        "sealbox_unseal_duration_seconds histogram",
        "sealbox_private_key_operations counter",
        "sealbox_keys_loaded gauge",
        "sealbox_leader gauge",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family}\n")),
            "no type {family} in\n{text}"
        );
    }

    // Deleting the SealedSecret garbage-collects its Secret, which drops its condition series.
    sealed.delete("db", &DeleteParams::default()).await?;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = scrape(running.metrics_addr()).await?;
        if !text.contains("name=\"db\"") {
            assert!(text.contains(&condition("broken", "-1")), "{text}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the deleted object's series stayed:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.shutdown().await?;
    Ok(())
}

/// GET /metrics over TCP; checks the status and the OpenMetrics content type.
async fn scrape(addr: std::net::SocketAddr) -> Result<String, BoxError> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response.split_once("\r\n\r\n").ok_or("no header end")?;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    Ok(body.to_owned())
}

/// A raw HTTP/1.1 POST of `body` to `path`, the connection left open.
async fn send_post(
    addr: std::net::SocketAddr,
    path: &str,
    body: &[u8],
) -> Result<tokio::net::TcpStream, BoxError> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    Ok(stream)
}

/// GET /healthz on a new connection; the status line.
async fn healthz_status(addr: std::net::SocketAddr) -> Result<String, BoxError> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response.lines().next().unwrap_or_default().to_owned())
}

/// Hostile bodies (deep YAML, values no key decrypts) in flight do not stop /healthz: parsing
/// and unsealing run off the async runtime. (Before: deep YAML was parsed on the runtime and
/// /healthz stopped answering.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_while_hostile_bodies_are_in_flight() -> TestResult {
    let (_server, running) = controller_behind_proxy(&[0, 1, 2], &["--rate-limit=0"]).await?;
    let addr = running.local_addr();
    let deep = deep_body(50_000).into_bytes();
    let many = undecryptable_document(1_500).to_string().into_bytes();
    let mut hostile = Vec::new();
    for i in 0..6 {
        let body = if i % 2 == 0 {
            deep.clone()
        } else {
            many.clone()
        };
        hostile.push(tokio::spawn(async move {
            let mut stream = send_post(addr, "/v1/verify", &body).await?;
            let mut response = String::new();
            stream.read_to_string(&mut response).await?;
            Ok::<_, BoxError>(response.lines().next().unwrap_or_default().to_owned())
        }));
    }
    for _ in 0..10 {
        let status = tokio::time::timeout(Duration::from_secs(5), healthz_status(addr))
            .await
            .map_err(|_| "/healthz did not answer within 5 s")??;
        assert_eq!(status, "HTTP/1.1 200 OK");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for task in hostile {
        let status = tokio::time::timeout(WAIT, task).await???;
        assert!(
            status.contains(" 400 ") || status.contains(" 422 "),
            "{status}"
        );
    }
    running.shutdown().await?;
    Ok(())
}

/// A client that goes away stops its request's private-key work. (Before: the work went on
/// for every value and every key after the client left.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_stops_when_the_client_goes_away() -> TestResult {
    let keys: Vec<usize> = (0..12).collect();
    let (_server, running) = controller_behind_proxy(&keys, &["--rate-limit=0"]).await?;
    let body = undecryptable_document(1_500).to_string().into_bytes();
    let stream = send_post(running.local_addr(), "/v1/verify", &body).await?;
    // Let the work start, then hang up.
    let deadline = tokio::time::Instant::now() + WAIT;
    while key_operations(&scrape(running.metrics_addr()).await?) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no work started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(stream);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_leaving = key_operations(&scrape(running.metrics_addr()).await?);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let later = key_operations(&scrape(running.metrics_addr()).await?);
    assert_eq!(later, after_leaving, "work went on after the client left");
    assert!(
        later < 3_012,
        "{later} operations: the whole budget was spent"
    );
    running.shutdown().await?;
    Ok(())
}

/// Past --max-connections, a new connection makes the oldest one close (after its request, if
/// it is in one) and is served; connections that stay idle (never sent anything, or finished
/// a request and kept the connection) are closed after --read-timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_bound_close_the_oldest_and_idle_ones_time_out() -> TestResult {
    let (_server, running) =
        controller_behind_proxy(&[0], &["--max-connections=4", "--read-timeout=2s"]).await?;
    let addr = running.local_addr();
    // The oldest finishes a request and stays open; three more never send a byte.
    let mut kept = tokio::net::TcpStream::connect(addr).await?;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut answer = [0u8; 15];
    kept.read_exact(&mut answer).await?;
    assert_eq!(&answer, b"HTTP/1.1 200 OK");
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(tokio::net::TcpStream::connect(addr).await?);
    }
    let opened = tokio::time::Instant::now();
    // A fifth connection is served: the oldest makes room.
    let status = tokio::time::timeout(WAIT, healthz_status(addr)).await??;
    assert_eq!(status, "HTTP/1.1 200 OK");
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, kept.read_to_end(&mut rest)).await??;
    // The idle ones are closed by the server after --read-timeout.
    for mut stream in idle {
        let mut rest = Vec::new();
        tokio::time::timeout(WAIT, stream.read_to_end(&mut rest)).await??;
    }
    assert!(
        opened.elapsed() >= Duration::from_millis(1500),
        "closed before the read timeout: {:?}",
        opened.elapsed()
    );
    running.shutdown().await?;
    Ok(())
}

/// A client that stops reading its answers loses its connection after --read-timeout without
/// progress, so it cannot hold a connection slot (here the only one) forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_loses_its_connection() -> TestResult {
    let (_server, running) =
        controller_behind_proxy(&[0], &["--max-connections=1", "--read-timeout=1s"]).await?;
    let addr = running.local_addr();
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let mut stuck = socket.connect(addr).await?;
    // Pipelined requests whose answers (~15 MB) fill every buffer on the way.
    let requests = "GET /v1/cert.pem HTTP/1.1\r\nHost: localhost\r\n\r\n".repeat(10_000);
    let writing = tokio::spawn(async move {
        let _ = stuck.write_all(requests.as_bytes()).await;
        stuck
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = tokio::time::timeout(WAIT, healthz_status(addr)).await??;
    assert_eq!(status, "HTTP/1.1 200 OK");
    drop(writing);
    running.shutdown().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Measurements (run by hand: `cargo test --release -p sealbox-controller --test http --
// --ignored --nocapture measure_`); they print figures and assert nothing about time.

/// CPU seconds this process has used (user + system), from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command name.
    (ticks(11) + ticks(12)) / 100.0
}

/// Resident memory of this process in KiB, from /proc/self/status.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement"]
async fn measure_hostile_request_cost() {
    for (values, keys) in [(10_000usize, 1usize), (1_500, 1), (1_500, 12)] {
        let key_indexes: Vec<usize> = (0..keys).collect();
        let api = api(registry(&key_indexes), unlimited());
        let mut body = undecryptable_document(values);
        // Short values as in the review's 209 KB body of 10,000 values.
        if values > 1_500 {
            for v in body["spec"]["encryptedData"]
                .as_object_mut()
                .expect("values")
                .values_mut()
            {
                *v = json!(STANDARD.encode([0u8, 4, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]));
            }
        }
        let text = body.to_string();
        let started = cpu_seconds();
        let answer = post(&api.router, "/v1/verify", "application/json", text.clone()).await;
        let cpu = cpu_seconds() - started;
        let ops = key_operations(&api.metrics.encode().expect("metrics"));
        eprintln!(
            "{values} values, {keys} keys, {} KB: {} in {cpu:.2} CPU s, {ops} private-key operations \
             (values x keys = {})",
            text.len() / 1000,
            answer.status,
            values * keys
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement"]
async fn measure_idle_connection_memory() -> TestResult {
    let max = std::env::var("MEASURE_MAX_CONNECTIONS").unwrap_or_else(|_| "128".to_owned());
    let flag = format!("--max-connections={max}");
    let (_server, running) = controller_behind_proxy(&[0], &[flag.as_str()]).await?;
    let addr = running.local_addr();
    let before = rss_kib();
    let mut open = Vec::new();
    for _ in 0..8_000 {
        if let Ok(Ok(stream)) = tokio::time::timeout(
            Duration::from_millis(50),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            open.push(stream);
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = rss_kib();
    let healthz = tokio::time::timeout(Duration::from_secs(5), healthz_status(addr)).await;
    drop(open);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib();
    eprintln!(
        "--max-connections={max}: RSS {} MiB before, {} MiB with 8,000 idle connections, {} MiB \
         after they closed; /healthz meanwhile: {healthz:?}",
        before / 1024,
        held / 1024,
        after / 1024
    );
    running.shutdown().await?;
    Ok(())
}
