//! What the controller's test binaries share: test keys, the API double with the CRD and key
//! Secrets installed, the controller started from flags, SealedSecrets and Secrets to feed it,
//! polling, and a plain HTTP client for the controller's own ports.
//!
//! [`Backend`] runs one test body against either the API double or the real control plane
//! (`sealbox_tests::real`, tier 4): [`both_backends!`] makes a `double` and a `real` test of
//! each scenario function.
//!
//! What is not the controller's own (test keys, the double with the CRD, objects, waiting) comes
//! from `sealbox_tests::fixtures` and is re-exported here, at this crate's timings.
//!
//! Included with `mod support;` from each binary in `controller/tests/`.

// Each test binary compiles its own copy of this module and uses only part of it.
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams};
use sealbox_controller::{Config, Running};
use sealbox_crds::SealedSecret;
use sealbox_crypto::KeyPair;
use sealbox_tests::fixtures::{self, Wait};
use sealbox_tests::real::{AuditOffset, RealControlPlane, service_account_user};
use sealbox_tests::{ApiServer, RequestRecord};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

// Each binary uses a part of these too.
#[allow(unused_imports)]
pub use sealbox_tests::fixtures::{
    BoxError, TestResult, init_logs, kube_client, map, seal_value, sealed_secret, secret_data,
    template, test_key_secret, test_pair as pair,
};

/// The controller's namespace (as in the kustomize base): its key Secrets and its Lease.
pub const CONTROLLER_NS: &str = sealbox_tests::fixtures::CONTROLLER_NAMESPACE;
/// Where the SealedSecrets live: not the controller's namespace, so that what exists for the
/// controller's own namespace (its Role's rules) and for everyone else's (the ClusterRole's) are
/// each exercised.
pub const NS: &str = "app";
/// How long to wait for anything the controller does eventually.
pub const WAIT: Duration = Duration::from_secs(20);
/// [`WAIT`], looking again every 10 ms (cheap in-process reads; the HA tests time handovers with
/// it).
const WAITING: Wait = Wait::new(WAIT, Duration::from_millis(10));

// ---------------------------------------------------------------------------------------------
// The API double and the controller

/// A fresh API double with our CRD installed and the key Secrets of test keys `keys` stored.
pub async fn api_server(keys: &[usize]) -> TestResult<ApiServer> {
    api_server_with_crd(fixtures::sealed_secret_crd(), keys).await
}

/// A fresh API double with `crd` installed, [`NS`] and [`OTHER_NAMESPACES`] created (as on the
/// real plane, objects only in namespaces that exist) and the key Secrets of test keys `keys`
/// stored.
pub async fn api_server_with_crd(crd: Value, keys: &[usize]) -> TestResult<ApiServer> {
    init_logs();
    let key_secrets: Vec<Secret> = keys.iter().map(|&index| test_key_secret(index)).collect();
    fixtures::double_with(crd, &namespaces(), &key_secrets).await
}

/// The key Secret (Bitnami's format, in [`CONTROLLER_NS`]) named `name` holding `pair`.
pub fn key_secret(pair: &KeyPair, name: &str) -> Secret {
    fixtures::key_secret(pair, CONTROLLER_NS, name)
}

/// [`NS`] and [`OTHER_NAMESPACES`].
fn namespaces() -> Vec<&'static str> {
    std::iter::once(NS).chain(OTHER_NAMESPACES).collect()
}

// ---------------------------------------------------------------------------------------------
// Backends

/// The controller's ServiceAccount in deploy/kustomize/base.
pub const SERVICE_ACCOUNT: &str = sealbox_tests::fixtures::CONTROLLER_NAME;
/// The namespaces the tests use besides [`NS`] (moved SealedSecrets; http.rs's `prod`), made
/// on either backend: a namespace must exist before anything is created in it.
pub const OTHER_NAMESPACES: [&str; 3] = ["other", "elsewhere", "prod"];
/// How long the real plane may take to make a change visible to a new reader (RBAC bindings,
/// an Established CRD): its informers lag by milliseconds, a loaded machine by seconds.
const REAL_SETTLING: Wait = Wait::new(Duration::from_secs(60), Duration::from_millis(50));

/// Which API server a test body runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The in-process API double (`sealbox_tests::ApiServer`).
    Double,
    /// The real control plane shared by the test binary ([`RealControlPlane::shared`]).
    Real,
}

/// An API server with the CRD installed and test key Secrets stored, and the clients a test
/// and its controller use.
pub enum Backend {
    Double(ApiServer),
    Real(Box<RealBackend>),
}

/// One test's turn on the shared real plane: the cluster-admin client for the test, the
/// controller's client with the ServiceAccount token of deploy/'s RBAC, and where the test's
/// requests begin in the audit log.
pub struct RealBackend {
    plane: &'static RealControlPlane,
    admin: Client,
    controller: Client,
    controller_kubeconfig: PathBuf,
    audit_from: Mutex<AuditOffset>,
}

impl Backend {
    /// [`Kind::Double`]: a fresh double; [`Kind::Real`]: the shared plane, emptied of what
    /// earlier tests left. Either with our CRD and the key Secrets of test keys `keys`.
    pub async fn start(kind: Kind, keys: &[usize]) -> TestResult<Backend> {
        match kind {
            Kind::Double => Ok(Backend::Double(api_server(keys).await?)),
            Kind::Real => Ok(Backend::Real(Box::new(RealBackend::start(keys).await?))),
        }
    }

    /// A client with every right (the double's, or the real plane's cluster-admin).
    pub fn client(&self) -> Client {
        match self {
            Backend::Double(server) => server.client(),
            Backend::Real(real) => real.admin.clone(),
        }
    }

    /// The client the controller runs with: on the real plane, ServiceAccount
    /// [`SERVICE_ACCOUNT`] bound by deploy/kustomize/base's RBAC and nothing else.
    pub fn controller_client(&self) -> Client {
        match self {
            Backend::Double(server) => server.client(),
            Backend::Real(real) => real.controller.clone(),
        }
    }

    /// The double, for what only it can do (faults, latency, storing what validation refuses).
    pub fn double(&self) -> Option<&ApiServer> {
        match self {
            Backend::Double(server) => Some(server),
            Backend::Real(_) => None,
        }
    }

    /// The real plane and its ServiceAccount kubeconfig for the controller binary.
    pub fn real(&self) -> Option<&RealBackend> {
        match self {
            Backend::Double(_) => None,
            Backend::Real(real) => Some(real),
        }
    }

    /// The controller started with [`controller_client`](Self::controller_client) and
    /// [`config`]`(args)`.
    pub async fn start_controller(&self, args: &[&str]) -> TestResult<Running> {
        Ok(sealbox_controller::start(self.controller_client(), &config(args)?).await?)
    }

    /// Every request answered since the test began (or since
    /// [`clear_request_log`](Self::clear_request_log)): the double's request log, or the real
    /// API server's audit log of the controller's requests.
    pub fn request_log(&self) -> Vec<RequestRecord> {
        match self {
            Backend::Double(server) => server.request_log(),
            Backend::Real(real) => real.requests().expect("the audit log"),
        }
    }

    /// Forgets the requests so far.
    pub fn clear_request_log(&self) {
        match self {
            Backend::Double(server) => server.clear_request_log(),
            Backend::Real(real) => {
                *real
                    .audit_from
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = real.plane.audit_end();
            }
        }
    }
}

impl RealBackend {
    async fn start(keys: &[usize]) -> TestResult<RealBackend> {
        init_logs();
        let plane = RealControlPlane::shared()
            .await?
            .ok_or("the real control plane is not built (tests/kube/build.sh)")?;
        let admin = plane.client().await?;
        static INSTALLED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
        INSTALLED.get_or_try_init(|| install(plane, &admin)).await?;
        empty(&admin).await?;
        let audit_from = plane.audit_end();
        let key_secrets: Vec<Secret> = keys.iter().map(|&index| test_key_secret(index)).collect();
        fixtures::create_secrets(&admin, &key_secrets).await?;
        let controller_kubeconfig = plane
            .service_account_kubeconfig(CONTROLLER_NS, SERVICE_ACCOUNT)
            .await?;
        let controller = kube_client(&controller_kubeconfig).await?;
        Ok(RealBackend {
            plane,
            admin,
            controller,
            controller_kubeconfig,
            audit_from: Mutex::new(audit_from),
        })
    }

    pub fn plane(&self) -> &'static RealControlPlane {
        self.plane
    }

    /// A kubeconfig acting as the controller's ServiceAccount, for the controller binary.
    pub fn controller_kubeconfig(&self) -> &std::path::Path {
        &self.controller_kubeconfig
    }

    /// The controller's requests since the test began. (The double's log holds the test's own
    /// requests too, but names no object on a create, whose path has no name; the audit log
    /// names it, so counting a test's creates would differ. Scenarios count only what the
    /// controller did.)
    fn requests(&self) -> TestResult<Vec<RequestRecord>> {
        let from = *self
            .audit_from
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let controller = service_account_user(CONTROLLER_NS, SERVICE_ACCOUNT);
        Ok(self
            .plane
            .audit_events(from)?
            .0
            .into_iter()
            .filter(|e| e.user == controller)
            .map(|e| e.request)
            .collect())
    }
}

/// What deploy/kustomize/base installs that the controller's permissions consist of — the CRD,
/// the ServiceAccount, the ClusterRole, the Role and their bindings — applied with kubectl as
/// a user would (`kubectl kustomize` then `kubectl apply --server-side`); its Deployment,
/// Service and PodDisruptionBudget are left out (no kubelet runs Pods here: the controller runs
/// in the test). Then the namespaces the scenarios use; returns once the CRD is served and the
/// ServiceAccount's permissions are in force.
async fn install(plane: &RealControlPlane, admin: &Client) -> TestResult {
    const KINDS: [&str; 6] = [
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
    ];
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kustomize/base");
    let rendered = plane.kubectl().arg("kustomize").arg(&base).output()?;
    if !rendered.status.success() {
        return Err(format!(
            "kubectl kustomize {}: {}",
            base.display(),
            String::from_utf8_lossy(&rendered.stderr)
        )
        .into());
    }
    let mut selected = Vec::new();
    let mut found = std::collections::BTreeSet::new();
    for document in String::from_utf8(rendered.stdout)?.split("\n---\n") {
        let value: Value = serde_norway::from_str(document)?;
        let kind = value["kind"].as_str().unwrap_or_default();
        if let Some(kind) = KINDS.iter().find(|k| **k == kind) {
            found.insert(*kind);
            selected.push(document.trim().to_owned());
        }
    }
    if found.len() != KINDS.len() {
        return Err(format!("deploy/kustomize/base has only {found:?} of {KINDS:?}").into());
    }
    let manifest = plane.dir().join("sealbox-rbac.yaml");
    std::fs::write(&manifest, selected.join("\n---\n"))?;
    let applied = plane
        .kubectl()
        .args([
            "apply",
            "--server-side",
            "--field-manager=sealbox-tests",
            "-f",
        ])
        .arg(&manifest)
        .output()?;
    if !applied.status.success() {
        return Err(format!(
            "kubectl apply --server-side: {}",
            String::from_utf8_lossy(&applied.stderr)
        )
        .into());
    }
    fixtures::create_namespaces(admin, &namespaces()).await?;
    fixtures::sealed_secret_crd_established(admin, REAL_SETTLING).await?;
    let kubeconfig = plane
        .service_account_kubeconfig(CONTROLLER_NS, SERVICE_ACCOUNT)
        .await?;
    let controller = kube_client(&kubeconfig).await?;
    REAL_SETTLING
        .until_found("deploy/'s RBAC in force for the controller", || async {
            let secrets: Api<Secret> = Api::namespaced(controller.clone(), CONTROLLER_NS);
            let sealed: Api<SealedSecret> = Api::namespaced(controller.clone(), NS);
            let in_force = secrets.list(&ListParams::default()).await.is_ok()
                && sealed.list(&ListParams::default()).await.is_ok();
            Ok(in_force.then_some(()))
        })
        .await
}

/// Deletes what an earlier test on the shared plane left: SealedSecrets, Secrets and events in
/// the scenarios' namespaces and the controller's, and the controller's Lease. (The plane's own
/// components keep nothing in these: kube-system holds no Secret of theirs.)
async fn empty(admin: &Client) -> TestResult {
    let all = DeleteParams::default();
    let every = ListParams::default();
    for namespace in [NS, CONTROLLER_NS].into_iter().chain(OTHER_NAMESPACES) {
        Api::<SealedSecret>::namespaced(admin.clone(), namespace)
            .delete_collection(&all, &every)
            .await?;
        Api::<Secret>::namespaced(admin.clone(), namespace)
            .delete_collection(&all, &every)
            .await?;
        Api::<Event>::namespaced(admin.clone(), namespace)
            .delete_collection(&all, &every)
            .await?;
    }
    let leases: Api<Lease> = Api::namespaced(admin.clone(), CONTROLLER_NS);
    if leases.get_opt(SERVICE_ACCOUNT).await?.is_some() {
        leases.delete(SERVICE_ACCOUNT, &all).await?;
    }
    Ok(())
}

/// The real plane's tests take turns: they share the controller's namespace and names. Tests
/// that time handovers on the double take this turn too ([`run_alone`]), so a plane starting
/// beside them does not take their CPU.
static REAL_TURN: Mutex<()> = Mutex::new(());

/// Runs `body` on its own runtime while no real-plane test runs (see [`REAL_TURN`]).
pub fn run_alone<F, Fut>(body: F) -> TestResult
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = TestResult>,
{
    let _turn = REAL_TURN.lock().unwrap_or_else(PoisonError::into_inner);
    let runtime = fixtures::test_runtime()?;
    runtime.block_on(body())
}

/// Runs `body` against the real plane, on its own runtime, in its turn: the runtime is dropped
/// (ending the controller's every task) before the next test's turn begins. Then fails if the
/// API server refused any of the controller's requests (403): deploy/'s RBAC must grant all it
/// does. Passes with a message when the plane is not built (see `SEALBOX_REAL_REQUIRED`).
pub fn run_real<F, Fut>(body: F) -> TestResult
where
    F: FnOnce(Kind) -> Fut,
    Fut: Future<Output = TestResult>,
{
    let _turn = REAL_TURN.lock().unwrap_or_else(PoisonError::into_inner);
    let runtime = fixtures::test_runtime()?;
    let Some(plane) = runtime.block_on(RealControlPlane::shared())? else {
        return Ok(());
    };
    let from = plane.audit_end();
    let result = runtime.block_on(body(Kind::Real));
    drop(runtime);
    let controller = service_account_user(CONTROLLER_NS, SERVICE_ACCOUNT);
    // Each refused request once (the controller retries), as RBAC names it. A request that was
    // also allowed (before or after: RBAC does not change during a test; a watch is audited
    // when it ends) is not one RBAC lacks: an API server just restarted refuses everything
    // until its authorizer has read the RBAC objects.
    let controller_requests: Vec<RequestRecord> = plane
        .audit_events(from)?
        .0
        .into_iter()
        .filter(|e| e.user == controller)
        .map(|e| e.request)
        .collect();
    let id = |r: &RequestRecord| format!("{} {}", r.verb, r.path);
    let allowed: std::collections::BTreeSet<String> = controller_requests
        .iter()
        .filter(|r| r.status < 400)
        .map(id)
        .collect();
    let forbidden: std::collections::BTreeSet<String> = controller_requests
        .iter()
        .filter(|r| r.status == 403)
        .map(id)
        .filter(|refused| !allowed.contains(refused))
        .collect();
    if !forbidden.is_empty() {
        let outcome = match result {
            Ok(()) => "the test passed".to_owned(),
            Err(e) => format!("the test failed: {e}"),
        };
        return Err(format!(
            "the API server refused the controller (403), so deploy/'s RBAC lacks: \
             {forbidden:?}; {outcome}"
        )
        .into());
    }
    result
}

/// For each scenario function `NAME(kind: Kind) -> TestResult`, a module `NAME` with two tests:
/// `double` (against the API double) and `real` (against the real control plane, see
/// [`run_real`]).
#[allow(unused_macros)]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn double() -> crate::support::TestResult {
                super::$name(crate::support::Kind::Double).await
            }

            #[test]
            fn real() -> crate::support::TestResult {
                crate::support::run_real(super::$name)
            }
        }
    )*};
}
#[allow(unused_imports)]
pub(crate) use both_backends;

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

/// Waits until `check()` holds, for at most [`WAIT`].
pub async fn until(what: &str, check: impl FnMut() -> bool) -> TestResult {
    WAITING.until(what, check).await
}

/// Polls `probe` until it returns something, for at most [`WAIT`].
pub async fn until_some<T>(what: &str, probe: impl FnMut() -> Option<T>) -> TestResult<T> {
    WAITING.until_some(what, probe).await
}

// ---------------------------------------------------------------------------------------------
// Objects

/// Someone else's Secret `NS/name`; an empty list leaves its field out.
pub fn plain_secret(
    name: &str,
    annotations: &[(&str, &str)],
    labels: &[(&str, &str)],
    data: &[(&str, &str)],
) -> Secret {
    fixtures::secret(NS, name, annotations, labels, data)
}

/// Successful writes (create, update, patch) of Secret `namespace/name`, from the request log.
pub fn secret_writes(server: &ApiServer, namespace: &str, name: &str) -> usize {
    secret_writes_in(&server.request_log(), namespace, name)
}

/// Successful writes (create, update, patch) of Secret `namespace/name` in `log`.
pub fn secret_writes_in(log: &[RequestRecord], namespace: &str, name: &str) -> usize {
    log.iter()
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
