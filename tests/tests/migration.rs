//! Tier 4c (TESTING.md): in-place migration from Bitnami's controller (v0.40.0, built by
//! `tests/peers/build.sh`) to Sealbox's and back, on the real control plane.
//!
//! 1. Bitnami's controller makes the key and unseals 200 SealedSecrets of every kind (strict,
//!    namespace-wide and cluster-wide scopes; a template with labels, annotations and a type;
//!    a Secret handed over with `managed`, merged into with `patch`, both; a Secret without an
//!    owner (`skip-set-owner-references`, with `managed` as Bitnami's README asks); immutable; a
//!    custom type), half sealed by kubeseal, half by `sealbox seal`, until every one is Synced.
//!    It stops; every Secret's resourceVersion and every SealedSecret's status is recorded.
//! 2. Sealbox's controller starts on the same key Secrets, its Service under the same name
//!    (`sealed-secrets-controller`, which kubeseal finds): once it has reconciled every
//!    SealedSecret, no Secret and no status was written (resourceVersions unchanged), every
//!    SealedSecret is Synced and Healthy for Argo CD's health check
//!    (deploy/argocd/sealedsecret-health.lua, run with `lua5.4`). Then `sealbox keys rotate`
//!    makes a key, and two new SealedSecrets are sealed to it alone (by `sealbox seal`, with its
//!    hint, and by kubeseal).
//! 3. Bitnami's controller starts again: it serves the key Sealbox made, unseals the two new
//!    SealedSecrets with it and a third sealed to its certificate; no status is written, and the
//!    only Secrets it writes are the two Sealbox wrote, from which it removes Sealbox's
//!    proof-of-authorship annotations (its replace of a Secret's annotations with the
//!    template's, `pkg/controller/controller.go`) and nothing else.
//!
//! The Bitnami controller runs with `--kubeclient-qps 500 --kubeclient-burst 1000`: with its
//! defaults (5 and 10) 200 objects take minutes, and the rate changes nothing else.
//!
//! Skips (passing, with a message on stderr) when the control plane, the peers or test hosts are
//! not there, unless `SEALBOX_REAL_REQUIRED=1`; the health check is skipped the same way without
//! `lua5.4` and `lua-cjson`, unless `SEALBOX_LUA_REQUIRED=1`. Sealbox's binaries must be built
//! next to this test (`cargo test --workspace` does).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, ObjectMeta, PostParams};
use kube::{Client, ResourceExt as _};
use sealbox_crds::SealedSecret;
use sealbox_tests::peers::{Controller, HOSTED_PORT, Peers, Sealbox, http_get};
use sealbox_tests::real::{RealControlPlane, TestHost};
use serde_json::{Value, json};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A failure whose message spans lines (controller logs): printed as written.
struct Failure(String);

impl std::fmt::Debug for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

/// The controllers' keys, their Service and most SealedSecrets.
const NS: &str = "migration";
/// Where the cluster-wide SealedSecrets go.
const OTHER: &str = "migration-other";
/// SealedSecrets Bitnami's controller unseals first.
const COUNT: usize = 200;
const KUBE_SYSTEM: &str = "kube-system";
/// deploy/kustomize/base's ServiceAccount: Sealbox's controller runs as it.
const SEALBOX_SERVICE_ACCOUNT: &str = "sealed-secrets-controller";
/// Bitnami's controller runs as this one, bound to cluster-admin.
const BITNAMI_SERVICE_ACCOUNT: &str = "bitnami-peer";
/// The Service both controllers' users (and kubeseal) know.
const SERVICE: &str = "sealed-secrets-controller";
const KEY_LABEL: &str = "sealedsecrets.bitnami.com/sealed-secrets-key";
const NAMESPACE_WIDE: &str = "sealedsecrets.bitnami.com/namespace-wide";
const CLUSTER_WIDE: &str = "sealedsecrets.bitnami.com/cluster-wide";
const MANAGED: &str = "sealedsecrets.bitnami.com/managed";
const PATCH: &str = "sealedsecrets.bitnami.com/patch";
const SKIP_OWNER: &str = "sealedsecrets.bitnami.com/skip-set-owner-references";
/// Sealbox's hint naming the key a value is sealed to.
const HINT_ANNOTATION: &str = "sealbox.dev/sealing-key";
/// Sealbox's proof of authorship on the Secrets it writes (controller/src/authorship.rs).
const PROOF_ANNOTATIONS: [&str; 2] = ["sealbox.dev/sealed-digest", "sealbox.dev/proof"];
const SCRIPT: &str = "deploy/argocd/sealedsecret-health.lua";
/// How long a controller may take over all the SealedSecrets: seconds idle, but the machine
/// runs other tests; only has to tell "slow" from "never".
const WAIT: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(500);

// ---------------------------------------------------------------------------------------------
// The SealedSecrets.

/// Every kind of SealedSecret, one in ten each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Strict,
    NamespaceWide,
    ClusterWide,
    Template,
    Managed,
    Patch,
    PatchManaged,
    SkipOwner,
    Immutable,
    CustomType,
}

const KINDS: [Kind; 10] = [
    Kind::Strict,
    Kind::NamespaceWide,
    Kind::ClusterWide,
    Kind::Template,
    Kind::Managed,
    Kind::Patch,
    Kind::PatchManaged,
    Kind::SkipOwner,
    Kind::Immutable,
    Kind::CustomType,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Strict => "strict",
            Kind::NamespaceWide => "namespace-wide",
            Kind::ClusterWide => "cluster-wide",
            Kind::Template => "template",
            Kind::Managed => "managed",
            Kind::Patch => "patch",
            Kind::PatchManaged => "patch-managed",
            Kind::SkipOwner => "skip-owner",
            Kind::Immutable => "immutable",
            Kind::CustomType => "custom-type",
        }
    }

    /// The sealing scope, for both CLIs' `--scope`.
    fn scope(self) -> &'static str {
        match self {
            Kind::NamespaceWide => "namespace-wide",
            Kind::ClusterWide => "cluster-wide",
            _ => "strict",
        }
    }

    /// The Secret that is there before the SealedSecret (its annotations hand it over).
    fn existing(self, name: &str) -> Option<Value> {
        let annotations = match self {
            Kind::Managed => json!({MANAGED: "true"}),
            Kind::Patch => json!({PATCH: "true"}),
            Kind::PatchManaged => json!({MANAGED: "true", PATCH: "true"}),
            _ => return None,
        };
        Some(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": NS, "annotations": annotations,
                "labels": {"kept": "yes"}},
            "type": "Opaque",
            "data": {"kept": STANDARD.encode("from before")},
        }))
    }
}

/// Who seals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sealer {
    Kubeseal,
    Sealbox,
}

/// One SealedSecret of the test.
#[derive(Debug)]
struct Object {
    kind: Kind,
    sealer: Sealer,
    namespace: &'static str,
    name: String,
    /// The values sealed.
    values: BTreeMap<String, String>,
}

impl Object {
    fn key(&self) -> (String, String) {
        (self.namespace.to_owned(), self.name.clone())
    }

    /// The Secret given to the sealer: namespace-wide and cluster-wide ones under another
    /// name, as a user seals once and applies the file under several.
    fn input(&self) -> Value {
        let kind = self.kind;
        let name = match kind {
            Kind::NamespaceWide | Kind::ClusterWide => "sealed-as",
            _ => &self.name,
        };
        let mut annotations = json!({});
        let mut labels = json!({});
        match kind {
            Kind::NamespaceWide => annotations[NAMESPACE_WIDE] = "true".into(),
            Kind::ClusterWide => annotations[CLUSTER_WIDE] = "true".into(),
            Kind::Template => {
                labels = json!({"app": "web", "tier": "backend"});
                annotations = json!({"team": "payments", "note": "from the template"});
            }
            Kind::SkipOwner => annotations = json!({SKIP_OWNER: "true", MANAGED: "true"}),
            _ => {}
        }
        let type_ = match kind {
            Kind::Template => "kubernetes.io/basic-auth",
            Kind::CustomType => "example.com/custom",
            _ => "Opaque",
        };
        let data: BTreeMap<&str, String> = self
            .values
            .iter()
            .map(|(k, v)| (k.as_str(), STANDARD.encode(v)))
            .collect();
        let mut secret = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": NS, "annotations": annotations,
                "labels": labels},
            "type": type_,
            "data": data,
        });
        if kind == Kind::Immutable {
            secret["immutable"] = true.into();
        }
        secret
    }
}

/// The [`COUNT`] SealedSecrets: kinds in turn, ten of a kind by kubeseal then ten by sealbox.
fn objects() -> Vec<Object> {
    (0..COUNT)
        .map(|i| {
            let kind = KINDS[i % KINDS.len()];
            let values = match kind {
                Kind::Template => [
                    ("username", format!("user{i}")),
                    ("password", format!("pw{i}")),
                ]
                .map(|(k, v)| (k.to_owned(), v))
                .into(),
                _ => [("a", format!("value {i}")), ("b", format!("{i}\u{1}bytes"))]
                    .map(|(k, v)| (k.to_owned(), v))
                    .into(),
            };
            Object {
                kind,
                sealer: if (i / KINDS.len()).is_multiple_of(2) {
                    Sealer::Kubeseal
                } else {
                    Sealer::Sealbox
                },
                namespace: if kind == Kind::ClusterWide { OTHER } else { NS },
                name: format!("s{i:03}-{}", kind.name()),
                values,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The environment.

struct Env {
    plane: &'static RealControlPlane,
    peers: Peers,
    sealbox: Sealbox,
    client: Client,
    dir: tempfile::TempDir,
}

/// The environment, or `None` when the plane or the peers are not built (and not required).
async fn env() -> TestResult<Option<Env>> {
    let Some(plane) = RealControlPlane::shared().await? else {
        return Ok(None);
    };
    let Some(peers) = Peers::find_or_skip()? else {
        return Ok(None);
    };
    let sealbox = Sealbox::find()?;
    install(plane).await?;
    Ok(Some(Env {
        plane,
        peers,
        sealbox,
        client: plane.client().await?,
        dir: tempfile::tempdir()?,
    }))
}

/// deploy/kustomize/base as a user installs it, but its Deployment, PodDisruptionBudget and
/// Service (the controllers run in the test; the Service is made by `expose_service`), and the
/// ServiceAccount Bitnami's controller runs as. Returns once the CRD is served.
async fn install(plane: &RealControlPlane) -> TestResult {
    const LEFT_OUT: [&str; 3] = ["Deployment", "PodDisruptionBudget", "Service"];
    let base = repository().join("deploy/kustomize/base");
    let rendered = run(
        plane.kubectl().arg("kustomize").arg(&base),
        None,
        "kubectl kustomize",
    )?;
    let mut documents = Vec::new();
    for document in String::from_utf8(rendered)?.split("\n---\n") {
        let value: Value = serde_norway::from_str(document)?;
        if !LEFT_OUT.contains(&value["kind"].as_str().unwrap_or_default()) {
            documents.push(document.trim().to_owned());
        }
    }
    documents.push(format!(
        "apiVersion: v1
kind: ServiceAccount
metadata: {{name: {BITNAMI_SERVICE_ACCOUNT}, namespace: {KUBE_SYSTEM}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {BITNAMI_SERVICE_ACCOUNT}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}}
subjects: [{{kind: ServiceAccount, name: {BITNAMI_SERVICE_ACCOUNT}, namespace: {KUBE_SYSTEM}}}]"
    ));
    run(
        plane.kubectl().args([
            "apply",
            "--server-side",
            "--field-manager=sealbox-tests",
            "-f",
            "-",
        ]),
        Some(documents.join("\n---\n").as_bytes()),
        "kubectl apply --server-side",
    )?;
    let crds = Api::<CustomResourceDefinition>::all(plane.client().await?);
    eventually("the SealedSecret CRD Established", || async {
        let conditions = crds
            .get_opt("sealedsecrets.bitnami.com")
            .await?
            .and_then(|c| c.status)
            .and_then(|s| s.conditions)
            .unwrap_or_default();
        Ok(conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
            .then_some(()))
    })
    .await
}

/// A running controller and where its metrics are served.
struct Running {
    controller: Controller,
    metrics: SocketAddr,
}

impl Env {
    async fn namespaces(&self, names: &[&str]) -> TestResult {
        let api = Api::<Namespace>::all(self.client.clone());
        for name in names {
            let namespace = Namespace {
                metadata: ObjectMeta {
                    name: Some((*name).to_owned()),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            };
            api.create(&PostParams::default(), &namespace).await?;
        }
        Ok(())
    }

    /// Bitnami's controller, its keys in [`NS`], watching [`NS`] and [`OTHER`].
    async fn bitnami(&self) -> TestResult<Running> {
        let metrics = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?;
        // After the peer's own: pflag keeps the last value.
        let metrics_flag = format!("--listen-metrics-addr={metrics}");
        let args = [
            "--all-namespaces=false",
            &format!("--additional-namespaces={OTHER}"),
            "--kubeclient-qps=500",
            "--kubeclient-burst=1000",
            &metrics_flag,
        ];
        let controller = self
            .peers
            .start_controller(self.plane, KUBE_SYSTEM, BITNAMI_SERVICE_ACCOUNT, NS, &args)
            .await?;
        Ok(Running {
            controller,
            metrics,
        })
    }

    /// Sealbox's controller in `host` as deploy/'s ServiceAccount, its keys in [`NS`], watching
    /// [`NS`] and [`OTHER`], with the Service [`SERVICE`] in [`NS`] pointing at it.
    async fn sealbox(&self, host: TestHost) -> TestResult<Running> {
        let kubeconfig = self
            .plane
            .service_account_kubeconfig(KUBE_SYSTEM, SEALBOX_SERVICE_ACCOUNT)
            .await?;
        let kubeconfig = host.reach(&kubeconfig, "controller.kubeconfig")?;
        let args = [
            "--all-namespaces=false",
            &format!("--additional-namespaces={OTHER}"),
        ];
        let controller = self
            .sealbox
            .start_controller_in(host, &kubeconfig, NS, &args)
            .await?;
        let host = controller.host().ok_or("the controller runs in no host")?;
        self.plane
            .expose_service(NS, SERVICE, HOSTED_PORT, host)
            .await?;
        // deploy/'s port for metrics: the next one (`Sealbox::start_controller_in`).
        let metrics = SocketAddr::new(controller.addr().ip(), HOSTED_PORT + 1);
        Ok(Running {
            controller,
            metrics,
        })
    }

    fn file(&self, name: &str, contents: &[u8]) -> TestResult<PathBuf> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents)?;
        Ok(path)
    }

    fn admin_kubeconfig(&self) -> TestResult<&str> {
        Ok(self
            .plane
            .kubeconfig()
            .to_str()
            .ok_or("kubeconfig path is not UTF-8")?)
    }

    /// `sealer` seals `input` (a Secret) to `cert` in `scope`; the SealedSecret as JSON.
    fn seal(&self, sealer: Sealer, cert: &Path, scope: &str, input: &Value) -> TestResult<Value> {
        let cert = cert.to_str().ok_or("temp path is not UTF-8")?;
        let (program, args) = match sealer {
            Sealer::Kubeseal => (
                self.peers.kubeseal(),
                vec!["--cert", cert, "--scope", scope, "-o", "json"],
            ),
            Sealer::Sealbox => (
                self.sealbox.cli().to_owned(),
                vec!["seal", "--cert", cert, "--scope", scope],
            ),
        };
        let mut command = Command::new(program);
        command.args(&args).env_remove("KUBECONFIG");
        let out = run(
            &mut command,
            Some(&serde_json::to_vec(input)?),
            &format!("{sealer:?} {args:?}"),
        )?;
        Ok(serde_norway::from_slice(&out)?)
    }

    /// Creates the SealedSecret `sealed` (as it came from a sealer, possibly edited).
    async fn create(&self, sealed: &Value) -> TestResult {
        let namespace = sealed["metadata"]["namespace"]
            .as_str()
            .ok_or("a SealedSecret without namespace")?;
        let resource = ApiResource::erase::<SealedSecret>(&());
        let api = Api::<DynamicObject>::namespaced_with(self.client.clone(), namespace, &resource);
        api.create(
            &PostParams::default(),
            &serde_json::from_value(sealed.clone())?,
        )
        .await?;
        Ok(())
    }

    /// The key Secrets in [`NS`], oldest first, as (name, tls.crt).
    async fn keys(&self) -> TestResult<Vec<(String, String)>> {
        let secrets = Api::<Secret>::namespaced(self.client.clone(), NS);
        let mut keys = secrets
            .list(&ListParams::default().labels(KEY_LABEL))
            .await?
            .items;
        keys.sort_by_key(|k| k.metadata.creation_timestamp.clone());
        Ok(keys
            .iter()
            .map(|k| (k.name_any(), text(k, "tls.crt")))
            .collect())
    }
}

/// The SealedSecret `object`, sealed by its sealer to `cert`, named and placed as the test
/// wants it.
fn sealed_object(env: &Env, object: &Object, cert: &Path) -> TestResult<Value> {
    let mut sealed = env.seal(object.sealer, cert, object.kind.scope(), &object.input())?;
    sealed["metadata"]["name"] = object.name.clone().into();
    sealed["metadata"]["namespace"] = object.namespace.into();
    let template = &mut sealed["spec"]["template"];
    if let Some(meta) = template["metadata"].as_object_mut() {
        meta.remove("name");
        meta.remove("namespace");
    }
    if object.kind == Kind::Immutable {
        template["immutable"] = true.into();
    }
    Ok(sealed)
}

// ---------------------------------------------------------------------------------------------
// What the cluster holds.

/// Every Secret (but the keys) and every SealedSecret in [`NS`] and [`OTHER`].
#[derive(Debug, Clone)]
struct Snapshot {
    secrets: BTreeMap<(String, String), Secret>,
    sealed: BTreeMap<(String, String), Value>,
}

async fn snapshot(client: &Client) -> TestResult<Snapshot> {
    let mut secrets = BTreeMap::new();
    let mut sealed = BTreeMap::new();
    let resource = ApiResource::erase::<SealedSecret>(&());
    for ns in [NS, OTHER] {
        let not_keys = ListParams::default().labels(&format!("!{KEY_LABEL}"));
        for secret in Api::<Secret>::namespaced(client.clone(), ns)
            .list(&not_keys)
            .await?
        {
            secrets.insert((ns.to_owned(), secret.name_any()), secret);
        }
        let api = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &resource);
        for object in api.list(&ListParams::default()).await? {
            sealed.insert(
                (ns.to_owned(), object.name_any()),
                serde_json::to_value(object)?,
            );
        }
    }
    Ok(Snapshot { secrets, sealed })
}

impl Snapshot {
    /// Secrets whose resourceVersion differs from `before`'s (or that are new).
    fn secrets_written_since(&self, before: &Snapshot) -> BTreeSet<(String, String)> {
        self.secrets
            .iter()
            .filter(|(key, s)| {
                before
                    .secrets
                    .get(*key)
                    .map(|b| &b.metadata.resource_version)
                    != Some(&s.metadata.resource_version)
            })
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// SealedSecrets whose resourceVersion or status differs from `before`'s (or that are new).
    fn sealed_changed_since(&self, before: &Snapshot) -> BTreeSet<(String, String)> {
        self.sealed
            .iter()
            .filter(|(key, s)| {
                before.sealed.get(*key).is_none_or(|b| {
                    b["metadata"]["resourceVersion"] != s["metadata"]["resourceVersion"]
                        || b["status"] != s["status"]
                })
            })
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// SealedSecrets not `Synced=True` for their generation, with their status.
    fn not_synced(&self) -> Vec<String> {
        self.sealed
            .iter()
            .filter(|(_, s)| {
                let synced = s["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Synced" && c["status"] == "True");
                !synced || s["status"]["observedGeneration"] != s["metadata"]["generation"]
            })
            .map(|((ns, name), s)| format!("{ns}/{name}: {}", s["status"]))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The migration.

#[tokio::test]
async fn bitnami_to_sealbox_and_back_in_place() -> TestResult {
    let Some(env) = env().await? else {
        return Ok(());
    };
    let Some(host) = TestHost::start(env.plane, NS)? else {
        return Ok(());
    };
    env.namespaces(&[NS, OTHER]).await?;
    let objects = objects();

    let (bitnami_cert, after_bitnami) = bitnami_unseals_them_all(&env, &objects).await?;
    let rotated = sealbox_adopts_them(&env, host, &objects, &bitnami_cert, &after_bitnami).await?;
    bitnami_adopts_them_back(&env, &rotated).await
}

/// Phase 1: Bitnami's controller makes the key and unseals every object; it stops. The
/// certificate and the snapshot after.
async fn bitnami_unseals_them_all(env: &Env, objects: &[Object]) -> TestResult<(String, Snapshot)> {
    let secrets = Api::<Secret>::namespaced(env.client.clone(), NS);
    for object in objects {
        if let Some(existing) = object.kind.existing(&object.name) {
            secrets
                .create(&PostParams::default(), &serde_json::from_value(existing)?)
                .await?;
        }
    }
    let bitnami = env.bitnami().await?;
    let cert = bitnami.controller.cert()?;
    let cert_file = env.file("bitnami.pem", cert.as_bytes())?;
    with_logs(&[&bitnami.controller], || async {
        for object in objects {
            env.create(&sealed_object(env, object, &cert_file)?).await?;
        }
        let all = objects.iter().map(Object::key).collect();
        synced_in_metrics(&bitnami, &all, None, "Bitnami's controller").await
    })
    .await?;
    drop(bitnami);

    let after = snapshot(&env.client).await?;
    assert_eq!(after.sealed.len(), COUNT);
    assert_eq!(after.secrets.len(), COUNT);
    assert_eq!(after.not_synced(), Vec::<String>::new());
    for object in objects {
        let secret = after
            .secrets
            .get(&object.key())
            .ok_or_else(|| format!("no Secret {:?}", object.key()))?;
        for (key, value) in &object.values {
            assert_eq!(text(secret, key), *value, "{:?} {key}", object.key());
        }
    }
    let keys = env.keys().await?;
    assert_eq!(keys.len(), 1, "Bitnami's controller made one key: {keys:?}");
    assert_eq!(pem_body(&keys[0].1), pem_body(&cert));
    all_healthy(&after, "after Bitnami's controller")?;
    Ok((cert, after))
}

/// What phase 2 leaves for phase 3: the key Sealbox made, the SealedSecrets sealed to it, and
/// the snapshot once Sealbox stopped.
struct Rotated {
    cert: String,
    objects: Vec<(String, String)>,
    after: Snapshot,
}

/// Phase 2: Sealbox's controller adopts everything without a write, rotates, and unseals two
/// SealedSecrets sealed to the new key alone.
async fn sealbox_adopts_them(
    env: &Env,
    host: TestHost,
    objects: &[Object],
    bitnami_cert: &str,
    before: &Snapshot,
) -> TestResult<Rotated> {
    let sealbox = env.sealbox(host).await?;
    let all: BTreeSet<_> = objects.iter().map(Object::key).collect();
    let admin = env.admin_kubeconfig()?;
    let online = ["--kubeconfig", admin, "--controller-namespace", NS];
    let rotated = with_logs(&[&sealbox.controller], || async {
        // The Service's name is what kubeseal knows: it reaches Sealbox, which serves
        // Bitnami's key and made none.
        let mut command = Command::new(env.peers.kubeseal());
        command
            .args(online)
            .arg("--fetch-cert")
            .env_remove("KUBECONFIG");
        let fetched = run(&mut command, None, "kubeseal --fetch-cert")?;
        assert_eq!(
            pem_body(&String::from_utf8(fetched)?),
            pem_body(bitnami_cert)
        );
        synced_in_metrics(&sealbox, &all, Some(COUNT), "Sealbox's controller").await?;
        let adopted = snapshot(&env.client).await?;
        assert_eq!(adopted.secrets_written_since(before), BTreeSet::new());
        assert_eq!(adopted.sealed_changed_since(before), BTreeSet::new());
        assert_eq!(env.keys().await?.len(), 1, "Sealbox made a key of its own");
        all_healthy(&adopted, "after Sealbox's controller adopted them")?;
        rotate_and_seal(env, &sealbox, &online, &all).await
    })
    .await?;
    drop(sealbox);

    // Stopped: whatever it did is in.
    let after = snapshot(&env.client).await?;
    let new: BTreeSet<_> = rotated.1.iter().cloned().collect();
    assert_eq!(after.secrets_written_since(before), new);
    assert_eq!(after.sealed_changed_since(before), new);
    assert_eq!(after.not_synced(), Vec::<String>::new());
    for key in &new {
        let annotations = after.secrets[key].annotations().clone();
        assert!(
            PROOF_ANNOTATIONS
                .iter()
                .all(|a| annotations.contains_key(*a)),
            "Sealbox's proof on {key:?}: {annotations:?}"
        );
    }
    all_healthy(&after, "after Sealbox's controller")?;
    Ok(Rotated {
        cert: rotated.0,
        objects: rotated.1,
        after,
    })
}

/// `sealbox keys rotate` through the Service, then a SealedSecret sealed to the new key alone
/// by each CLI, unsealed by Sealbox. The new certificate and the new objects.
async fn rotate_and_seal(
    env: &Env,
    sealbox: &Running,
    online: &[&str],
    before: &BTreeSet<(String, String)>,
) -> TestResult<(String, Vec<(String, String)>)> {
    let old = sealbox.controller.cert()?;
    let mut command = Command::new(env.sealbox.cli());
    command
        .args(["keys", "rotate"])
        .args(online)
        .env_remove("KUBECONFIG");
    run(&mut command, None, "sealbox keys rotate")?;
    let cert = eventually("Sealbox serving the new key", || async {
        let cert = sealbox.controller.cert()?;
        Ok((pem_body(&cert) != pem_body(&old)).then_some(cert))
    })
    .await?;
    let keys = env.keys().await?;
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(pem_body(&keys[1].1), pem_body(&cert));
    let cert_file = env.file("sealbox.pem", cert.as_bytes())?;

    let mut new = Vec::new();
    for (sealer, name) in [
        (Sealer::Sealbox, "rotated-sealbox"),
        (Sealer::Kubeseal, "rotated-kubeseal"),
    ] {
        let input = json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": NS},
            "data": {"k": STANDARD.encode(name)}});
        let sealed = env.seal(sealer, &cert_file, "strict", &input)?;
        if sealer == Sealer::Sealbox {
            assert!(
                sealed["metadata"]["annotations"][HINT_ANNOTATION].is_string(),
                "sealbox seal's hint: {sealed}"
            );
        }
        env.create(&sealed).await?;
        new.push((NS.to_owned(), name.to_owned()));
    }
    let mut all = before.clone();
    all.extend(new.iter().cloned());
    synced_in_metrics(sealbox, &all, None, "Sealbox's controller").await?;
    Ok((cert, new))
}

/// Phase 3: Bitnami's controller again, on the two keys: it serves and uses the one Sealbox
/// made; it writes no status and no Secret but the two Sealbox wrote, from which it removes
/// Sealbox's proof and nothing else.
async fn bitnami_adopts_them_back(env: &Env, rotated: &Rotated) -> TestResult {
    let before = &rotated.after;
    let keys = env.keys().await?;
    let bitnami = env.bitnami().await?;
    let all: BTreeSet<_> = before.sealed.keys().cloned().collect();
    let after_rollback = (NS.to_owned(), "after-rollback".to_owned());
    with_logs(&[&bitnami.controller], || async {
        assert_eq!(
            pem_body(&bitnami.controller.cert()?),
            pem_body(&rotated.cert),
            "Bitnami's controller seals with the key Sealbox made"
        );
        synced_in_metrics(&bitnami, &all, None, "Bitnami's controller").await?;
        // kubeseal, the certificate from Bitnami's controller: the key Sealbox made.
        let cert_file = env.file("bitnami-again.pem", bitnami.controller.cert()?.as_bytes())?;
        let input = json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": after_rollback.1, "namespace": NS},
            "data": {"k": STANDARD.encode("after")}});
        env.create(&env.seal(Sealer::Kubeseal, &cert_file, "strict", &input)?)
            .await?;
        let mut everything = all.clone();
        everything.insert(after_rollback.clone());
        synced_in_metrics(&bitnami, &everything, None, "Bitnami's controller").await
    })
    .await?;
    drop(bitnami);

    let after = snapshot(&env.client).await?;
    assert_eq!(after.not_synced(), Vec::<String>::new());
    assert_eq!(text(&after.secrets[&after_rollback], "k"), "after");
    for (_, name) in &rotated.objects {
        assert_eq!(
            text(&after.secrets[&(NS.to_owned(), name.clone())], "k"),
            *name
        );
    }
    assert_eq!(env.keys().await?, keys, "Bitnami's controller made a key");
    let mut expected: BTreeSet<_> = rotated.objects.iter().cloned().collect();
    expected.insert(after_rollback.clone());
    assert_eq!(after.secrets_written_since(before), expected);
    assert_eq!(
        after.sealed_changed_since(before),
        BTreeSet::from([after_rollback])
    );
    for key in &rotated.objects {
        assert_only_proof_removed(&before.secrets[key], &after.secrets[key]);
    }
    all_healthy(&after, "after Bitnami's controller again")
}

/// `after` is `before` without Sealbox's proof annotations, and otherwise the same.
fn assert_only_proof_removed(before: &Secret, after: &Secret) {
    let mut expected = before.clone();
    for annotation in PROOF_ANNOTATIONS {
        expected.annotations_mut().remove(annotation);
    }
    let comparable = |s: &Secret| {
        let mut s = s.clone();
        s.metadata.resource_version = None;
        s.metadata.managed_fields = None;
        if s.metadata
            .annotations
            .as_ref()
            .is_some_and(BTreeMap::is_empty)
        {
            s.metadata.annotations = None;
        }
        s
    };
    assert_eq!(
        comparable(&expected),
        comparable(after),
        "Bitnami's controller changed more than Sealbox's proof"
    );
}

// ---------------------------------------------------------------------------------------------
// Checks.

/// Waits until `controller`'s metrics show every SealedSecret in `want` `Synced` (Bitnami's
/// controller sets the series once it has written the status, or found it right; Sealbox's as
/// it reports) and, with `reconciles`, at least that many ended (Sealbox's
/// `sealbox_reconciles_total`).
async fn synced_in_metrics(
    controller: &Running,
    want: &BTreeSet<(String, String)>,
    reconciles: Option<usize>,
    who: &str,
) -> TestResult {
    let what = format!("{who} reporting {} SealedSecrets Synced", want.len());
    eventually(&what, || async {
        let (status, text) = http_get(controller.metrics, "/metrics")?;
        if status != 200 {
            return Ok(None);
        }
        let synced = synced_series(&text);
        let ended = text
            .lines()
            .find_map(|l| l.strip_prefix("sealbox_reconciles_total{result=\"success\"} "))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let done = want.is_subset(&synced) && reconciles.is_none_or(|n| ended >= n);
        Ok(done.then_some(()))
    })
    .await
}

/// (namespace, name) of every `sealed_secrets_controller_condition_info` series of the
/// `Synced` condition at 1 (True).
fn synced_series(metrics: &str) -> BTreeSet<(String, String)> {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix("sealed_secrets_controller_condition_info{"))
        .filter_map(|rest| {
            let (labels, value) = rest.split_once('}')?;
            if value.trim().parse::<f64>().ok()? != 1.0 {
                return None;
            }
            let label = |name: &str| {
                labels.split(',').find_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    (k.trim() == name).then(|| v.trim().trim_matches('"').to_owned())
                })
            };
            (label("condition")? == "Synced").then_some((label("namespace")?, label("name")?))
        })
        .collect()
}

/// Runs deploy/argocd/sealedsecret-health.lua on each SealedSecret of `snapshot`, as Argo CD
/// does; every one must be Healthy. Skipped without lua5.4 and lua-cjson (unless required).
fn all_healthy(snapshot: &Snapshot, when: &str) -> TestResult {
    const DRIVER: &str = r#"
local cjson = require("cjson")
local objects = cjson.decode(io.read("a"))
local check = assert(loadfile(os.getenv("SEALBOX_HEALTH_SCRIPT")))
local out = {}
for i, o in ipairs(objects) do
  obj = o
  local health = check()
  out[i] = health.status .. " " .. (health.message or "")
end
io.write(cjson.encode(out))
"#;
    if !lua_usable()? {
        return Ok(());
    }
    let objects: Vec<Value> = snapshot
        .sealed
        .values()
        .cloned()
        .map(without_nulls)
        .collect();
    let mut command = Command::new("lua5.4");
    command
        .args(["-e", DRIVER])
        .env("SEALBOX_HEALTH_SCRIPT", repository().join(SCRIPT));
    let out = run(
        &mut command,
        Some(&serde_json::to_vec(&objects)?),
        "lua5.4 (the health check)",
    )?;
    let health: Vec<String> = serde_json::from_slice(&out)?;
    let unhealthy: Vec<_> = snapshot
        .sealed
        .keys()
        .zip(&health)
        .filter(|(_, h)| !h.starts_with("Healthy"))
        .collect();
    assert_eq!(health.len(), objects.len());
    assert!(unhealthy.is_empty(), "{when}: {unhealthy:?}");
    Ok(())
}

/// Whether `lua5.4` with cjson runs; without, says so and returns false unless
/// `SEALBOX_LUA_REQUIRED=1`.
fn lua_usable() -> TestResult<bool> {
    let probe = Command::new("lua5.4")
        .args(["-e", "require('cjson')"])
        .output();
    match probe {
        Ok(out) if out.status.success() => Ok(true),
        other => {
            let why = format!("lua5.4 with lua-cjson is not usable ({other:?})");
            if std::env::var_os("SEALBOX_LUA_REQUIRED").is_some_and(|v| v == "1") {
                return Err(why.into());
            }
            eprintln!("skipping the Argo CD health check: {why}");
            Ok(false)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new(".."))
}

/// Runs `command` with `stdin`, failing with its stderr when it fails; returns stdout.
fn run(command: &mut Command, stdin: Option<&[u8]>, what: &str) -> TestResult<Vec<u8>> {
    let mut child = command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input)?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(format!(
            "{what}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(out.stdout)
}

/// Polls `check` until it returns `Some`, or fails naming `what` after [`WAIT`].
async fn eventually<T, F, Fut>(what: &str, check: F) -> TestResult<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = TestResult<Option<T>>>,
{
    sealbox_tests::fixtures::Wait::new(WAIT, POLL)
        .until_found(what, check)
        .await
}

/// Runs `body`; on failure, appends the end of each controller's log to the error.
async fn with_logs<T, F, Fut>(controllers: &[&Controller], body: F) -> TestResult<T>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = TestResult<T>>,
{
    body().await.map_err(|e| {
        let mut message = e.to_string();
        for controller in controllers {
            message.push_str(&format!(
                "\n--- the end of {}:\n{}",
                controller.log().display(),
                controller.log_tail()
            ));
        }
        Failure(message).into()
    })
}

/// A Secret's `key` as UTF-8 (lossy; empty when absent).
fn text(secret: &Secret, key: &str) -> String {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        .unwrap_or_default()
}

/// A PEM's base64 body, for comparing certificates across line wrapping.
fn pem_body(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

/// Drops JSON nulls: Argo CD's Lua sees an absent field as nil, cjson would give `cjson.null`.
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}
