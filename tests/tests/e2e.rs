//! Real-cluster end-to-end test: the controller scenarios of issue 4, against a Sealbox
//! controller installed in a local test cluster (kind, k3d, minikube, Docker Desktop, Rancher
//! Desktop, OrbStack).
//!
//! Ignored by default and never run in CI (there is no cluster there); CI compiles it. To run:
//!
//! ```sh
//! SEALBOX_E2E=1 cargo test -p sealbox-tests -- --ignored e2e
//! ```
//!
//! with the kubeconfig's current context pointing at the test cluster and the controller
//! installed with `kubectl apply -k deploy/kustomize/base` (deploy/README.md has the steps).
//! The test refuses any other context: it creates and deletes namespaces and Secrets.
//!
//! It seals the way a user does, with the `sealbox` CLI library: `sealbox cert fetch` (the
//! controller's certificate through the API server's service proxy) then `sealbox seal
//! --cert`. Everything happens in two fresh namespaces, `sealbox-e2e-<random>` and
//! `sealbox-e2e-<random>-b`, deleted at the end whatever the outcome.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, ResourceExt as _};
use sealbox_crds::{
    MANAGED_ANNOTATION, PATCH_ANNOTATION, SKIP_SET_OWNER_REFERENCES_ANNOTATION, SealedSecret,
};
use sealbox_tests::fixtures::{TestResult, map, owner_uid, secret_data};
use serde_json::{Value, json};

/// The switch: the test does nothing unless this is `1`.
const SWITCH: &str = "SEALBOX_E2E";
/// Context names of local, disposable clusters, as their tools name them.
const LOCAL_CONTEXT_PREFIXES: &[&str] = &[
    "kind-",
    "k3d-",
    "minikube",
    "docker-desktop",
    "rancher-desktop",
    "orbstack",
];
/// A live cluster is slower than the API double: image pulls, a leader election, a busy node.
const WAIT: Duration = Duration::from_secs(90);
/// How long "nothing happens" is watched for.
const QUIET: Duration = Duration::from_secs(5);
const CLUSTER_WIDE: &str = "sealedsecrets.bitnami.com/cluster-wide";

// ---------------------------------------------------------------------------------------------
// Guards

/// Whether `context` names a local test cluster.
fn is_local_test_context(context: &str) -> bool {
    LOCAL_CONTEXT_PREFIXES
        .iter()
        .any(|prefix| context.starts_with(prefix))
}

/// The current context of the kubeconfig (`KUBECONFIG`, else `~/.kube/config`), if it names a
/// local test cluster; otherwise an error saying why nothing was done.
fn local_test_context(kubeconfig: &Kubeconfig) -> Result<String, String> {
    let context = kubeconfig
        .current_context
        .clone()
        .filter(|c| !c.is_empty())
        .ok_or("the kubeconfig has no current context; point it at a kind/k3d test cluster")?;
    if is_local_test_context(&context) {
        Ok(context)
    } else {
        Err(format!(
            "refusing to run against kubeconfig context {context:?}: the e2e test creates and \
             deletes namespaces and Secrets, so it only runs against a local test cluster whose \
             context name starts with one of {LOCAL_CONTEXT_PREFIXES:?} (e.g. `kubectl config \
             use-context kind-sealbox`)"
        ))
    }
}

#[test]
fn only_local_test_contexts_are_accepted() {
    for context in [
        "kind-sealbox",
        "k3d-sealbox",
        "minikube",
        "docker-desktop",
        "rancher-desktop",
        "orbstack",
    ] {
        assert!(is_local_test_context(context), "{context}");
    }
    for context in [
        "prod",
        "gke_project_zone_cluster",
        "kind",
        "my-kind-sealbox",
        "",
    ] {
        assert!(!is_local_test_context(context), "{context}");
    }
    let kubeconfig = |current: &str| Kubeconfig {
        current_context: Some(current.to_owned()),
        ..Kubeconfig::default()
    };
    let refused = local_test_context(&kubeconfig("arn:aws:eks:eu-west-1:1:cluster/prod"))
        .expect_err("refused");
    assert!(
        refused.contains("refusing") && refused.contains("kind-"),
        "{refused}"
    );
    assert_eq!(
        local_test_context(&kubeconfig("kind-sealbox")),
        Ok("kind-sealbox".to_owned())
    );
    assert!(local_test_context(&Kubeconfig::default()).is_err());
}

// ---------------------------------------------------------------------------------------------
// The cluster and the CLI

struct E2e {
    client: Client,
    context: String,
    /// The controller's certificate, fetched by `sealbox cert fetch`.
    cert: PathBuf,
    /// The test namespace, and a second one for scopes.
    ns: String,
    other_ns: String,
}

/// Runs one `sealbox` command through the CLI library; returns its stdout. The library starts
/// its own runtime for cluster commands, so it runs on a blocking thread.
async fn sealbox(args: Vec<String>, stdin: Vec<u8>) -> TestResult<String> {
    let shown = args.join(" ");
    tokio::task::spawn_blocking(move || -> TestResult<String> {
        let cli = <sealbox_cli::Cli as clap::Parser>::try_parse_from(&args)?;
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let outcome =
            sealbox_cli::run(&cli, stdin.as_slice(), &mut stdout, &mut stderr).map_err(|e| {
                format!(
                    "`{shown}` failed: {e}; stderr: {}",
                    String::from_utf8_lossy(&stderr)
                )
            })?;
        if outcome != sealbox_cli::Outcome::Success {
            return Err(format!(
                "`{shown}` found problems: {}",
                String::from_utf8_lossy(&stderr)
            )
            .into());
        }
        Ok(String::from_utf8(stdout)?)
    })
    .await?
}

impl E2e {
    fn sealed(&self, namespace: &str) -> Api<SealedSecret> {
        Api::namespaced(self.client.clone(), namespace)
    }

    fn secrets(&self, namespace: &str) -> Api<Secret> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Seals a Secret manifest with `sealbox seal --cert <fetched cert> --scope <scope>`.
    async fn seal(&self, secret: &Value, scope: &str) -> TestResult<SealedSecret> {
        let args = vec![
            "sealbox".to_owned(),
            "seal".to_owned(),
            "--cert".to_owned(),
            self.cert.display().to_string(),
            "--scope".to_owned(),
            scope.to_owned(),
            "-o".to_owned(),
            "json".to_owned(),
        ];
        let out = sealbox(args, serde_json::to_vec(secret)?).await?;
        Ok(serde_json::from_str(&out)?)
    }

    async fn create(
        &self,
        mut sealed: SealedSecret,
        namespace: &str,
        name: &str,
    ) -> TestResult<SealedSecret> {
        sealed.metadata.namespace = Some(namespace.to_owned());
        sealed.metadata.name = Some(name.to_owned());
        Ok(self
            .sealed(namespace)
            .create(&PostParams::default(), &sealed)
            .await?)
    }

    async fn create_secret(&self, secret: &Value) -> TestResult<Secret> {
        let secret: Secret = serde_json::from_value(secret.clone())?;
        Ok(self
            .secrets(&self.ns)
            .create(&PostParams::default(), &secret)
            .await?)
    }

    /// Waits until the Secret exists and satisfies `check`.
    async fn secret_where(
        &self,
        namespace: &str,
        name: &str,
        check: impl Fn(&Secret) -> bool,
    ) -> TestResult<Secret> {
        let api = self.secrets(namespace);
        let found = eventually(&format!("Secret {namespace}/{name}"), || async {
            Ok(api.get_opt(name).await?.filter(|s| check(s)))
        })
        .await;
        match found {
            Ok(secret) => Ok(secret),
            Err(error) => Err(format!("{error}; {}", self.explain(namespace, name).await).into()),
        }
    }

    /// What the SealedSecret's status says, for a failure message (never a value).
    async fn explain(&self, namespace: &str, name: &str) -> String {
        match self.sealed(namespace).get_opt(name).await {
            Ok(Some(sealed)) => match sealed.synced_condition() {
                Some(c) => format!(
                    "SealedSecret {namespace}/{name} generation {:?}, observedGeneration {:?}, \
                     Synced={} {:?}",
                    sealed.metadata.generation,
                    sealed.status.as_ref().and_then(|s| s.observed_generation),
                    c.status,
                    c.message.as_deref().unwrap_or_default()
                ),
                None => format!(
                    "SealedSecret {namespace}/{name} has no Synced condition (is the controller \
                     running and leading? `kubectl -n kube-system logs deploy/sealed-secrets-controller`)"
                ),
            },
            Ok(None) => format!("SealedSecret {namespace}/{name} does not exist"),
            Err(error) => format!("SealedSecret {namespace}/{name} unreadable: {error}"),
        }
    }

    /// Waits until the SealedSecret's Synced condition is `status` for its current generation.
    async fn synced(&self, namespace: &str, name: &str, status: &str) -> TestResult<SealedSecret> {
        let api = self.sealed(namespace);
        let found = eventually(
            &format!("SealedSecret {namespace}/{name} Synced={status}"),
            || async {
                Ok(api.get_opt(name).await?.filter(|s| {
                    s.synced_condition().is_some_and(|c| c.status == status)
                        && s.status.as_ref().and_then(|st| st.observed_generation)
                            == s.metadata.generation
                }))
            },
        )
        .await;
        match found {
            Ok(sealed) => Ok(sealed),
            Err(error) => Err(format!("{error}; {}", self.explain(namespace, name).await).into()),
        }
    }

    /// Waits for an events.k8s.io/v1 event about `name` with `reason`.
    async fn event(&self, name: &str, reason: &str) -> TestResult<Event> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.ns);
        eventually(&format!("event {reason} for {name}"), || async {
            Ok(api
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .find(|e| {
                    e.reason.as_deref() == Some(reason)
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                }))
        })
        .await
    }

    /// Asserts that no Secret `namespace/name` appears for a while.
    async fn no_secret(&self, namespace: &str, name: &str) -> TestResult {
        let deadline = tokio::time::Instant::now() + QUIET;
        while tokio::time::Instant::now() < deadline {
            if self.secrets(namespace).get_opt(name).await?.is_some() {
                return Err(format!("Secret {namespace}/{name} exists but must not").into());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Ok(())
    }
}

/// Polls `probe` until it yields a value or [`WAIT`] passes; API errors are retried too.
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> TestResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = TestResult<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut last_error = None;
    loop {
        match probe().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last_error = Some(e.to_string()),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(match last_error {
                Some(e) => format!("timed out waiting for {what} (last error: {e})"),
                None => format!("timed out waiting for {what}"),
            }
            .into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn ensure(condition: bool, message: impl FnOnce() -> String) -> TestResult {
    if condition {
        Ok(())
    } else {
        Err(message().into())
    }
}

fn secret_manifest(namespace: &str, name: &str, string_data: &[(&str, &str)]) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": name, "namespace": namespace },
        "stringData": map(string_data),
    })
}

fn condition_message(sealed: &SealedSecret) -> String {
    sealed
        .synced_condition()
        .and_then(|c| c.message.clone())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Scenarios (numbered as in issue 4)

/// Scenarios 1 and 2: a new SealedSecret becomes a Secret with its data, template labels and
/// annotations and owner, status Synced=True and event Unsealed; an updated value updates the
/// Secret, observedGeneration 2, lastTransitionTime unchanged.
async fn new_and_updated(e: &E2e) -> TestResult {
    let mut secret = secret_manifest(&e.ns, "db", &[("password", "hunter2"), ("user", "admin")]);
    secret["metadata"]["labels"] = json!({ "app": "web" });
    secret["metadata"]["annotations"] = json!({ "note": "sealed" });
    let created = e
        .create(e.seal(&secret, "strict").await?, &e.ns, "db")
        .await?;

    let unsealed = e.secret_where(&e.ns, "db", |_| true).await?;
    ensure(
        secret_data(&unsealed) == map(&[("password", "hunter2"), ("user", "admin")]),
        || format!("db data: {:?}", secret_data(&unsealed).keys()),
    )?;
    ensure(
        unsealed.labels().get("app").map(String::as_str) == Some("web"),
        || format!("db labels: {:?}", unsealed.labels()),
    )?;
    ensure(
        unsealed.annotations().get("note").map(String::as_str) == Some("sealed"),
        || format!("db annotations: {:?}", unsealed.annotations()),
    )?;
    ensure(owner_uid(&unsealed) == created.uid(), || {
        "db is not owned by its SealedSecret".into()
    })?;

    let status = e.synced(&e.ns, "db", "True").await?;
    let condition = status.synced_condition().ok_or("no condition")?.clone();
    ensure(
        condition.last_transition_time == condition.last_update_time,
        || format!("first sync: {condition:?}"),
    )?;
    let event = e.event("db", "Unsealed").await?;
    ensure(event.type_.as_deref() == Some("Normal"), || {
        format!("{event:?}")
    })?;

    let update = e
        .seal(
            &secret_manifest(&e.ns, "db", &[("password", "two"), ("user", "admin")]),
            "strict",
        )
        .await?;
    let patch = json!({ "spec": { "encryptedData": update.spec.encrypted_data } });
    e.sealed(&e.ns)
        .patch("db", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    e.secret_where(&e.ns, "db", |s| {
        secret_data(s) == map(&[("password", "two"), ("user", "admin")])
    })
    .await?;
    let updated = e.synced(&e.ns, "db", "True").await?;
    let after = updated.synced_condition().ok_or("no condition")?;
    ensure(updated.metadata.generation == Some(2), || {
        format!("generation {:?}", updated.metadata.generation)
    })?;
    ensure(
        after.last_transition_time == condition.last_transition_time,
        || format!("lastTransitionTime moved: {condition:?} → {after:?}"),
    )?;
    Ok(())
}

/// Scenarios 4 to 7: `managed` is taken over; `managed` + `patch` is merged and owned; `patch`
/// alone is merged, not owned; an unannotated Secret is refused, untouched, ErrUpdateFailed.
async fn existing_secrets(e: &E2e) -> TestResult {
    let existing = |name: &str, annotations: Value| {
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {
                "name": name, "namespace": e.ns,
                "annotations": annotations, "labels": { "existing": "label" },
            },
            "stringData": { "existing-key": "1" },
        })
    };
    e.create_secret(&existing("managed", json!({ MANAGED_ANNOTATION: "true" })))
        .await?;
    e.create_secret(&existing(
        "managed-patch",
        json!({ MANAGED_ANNOTATION: "true", PATCH_ANNOTATION: "true", "kept": "yes" }),
    ))
    .await?;
    e.create_secret(&existing("patch-only", json!({ PATCH_ANNOTATION: "true" })))
        .await?;
    let foreign = e.create_secret(&existing("foreign", json!({}))).await?;

    let mut uids = BTreeMap::new();
    for name in ["managed", "managed-patch", "patch-only", "foreign"] {
        let mut secret = secret_manifest(&e.ns, name, &[("password", "new")]);
        secret["metadata"]["labels"] = json!({ "app": "web" });
        let created = e
            .create(e.seal(&secret, "strict").await?, &e.ns, name)
            .await?;
        uids.insert(name, created.uid());
    }

    let managed = e
        .secret_where(&e.ns, "managed", |s| owner_uid(s).is_some())
        .await?;
    ensure(owner_uid(&managed) == uids["managed"], || {
        "managed: wrong owner".into()
    })?;
    let managed = e
        .secret_where(&e.ns, "managed", |s| {
            secret_data(s) == map(&[("password", "new")])
        })
        .await?;
    ensure(!managed.labels().contains_key("existing"), || {
        format!("managed: labels not replaced: {:?}", managed.labels())
    })?;

    let merged = e
        .secret_where(&e.ns, "managed-patch", |s| {
            secret_data(s).contains_key("password")
        })
        .await?;
    ensure(
        secret_data(&merged) == map(&[("existing-key", "1"), ("password", "new")]),
        || format!("managed-patch data: {:?}", secret_data(&merged).keys()),
    )?;
    ensure(owner_uid(&merged) == uids["managed-patch"], || {
        "managed-patch: not owned".into()
    })?;
    ensure(
        merged.labels().get("existing").is_some() && merged.labels().get("app").is_some(),
        || format!("managed-patch labels: {:?}", merged.labels()),
    )?;
    ensure(
        merged.annotations().get("kept").map(String::as_str) == Some("yes"),
        || "managed-patch: annotation lost".into(),
    )?;

    let patched = e
        .secret_where(&e.ns, "patch-only", |s| {
            secret_data(s).contains_key("password")
        })
        .await?;
    ensure(
        secret_data(&patched) == map(&[("existing-key", "1"), ("password", "new")]),
        || format!("patch-only data: {:?}", secret_data(&patched).keys()),
    )?;
    ensure(owner_uid(&patched).is_none(), || {
        "patch-only: owner set".into()
    })?;
    for name in ["managed", "managed-patch", "patch-only"] {
        e.synced(&e.ns, name, "True").await?;
    }

    let refused = e.synced(&e.ns, "foreign", "False").await?;
    let message = condition_message(&refused);
    ensure(
        message == "Resource \"foreign\" already exists and is not managed by SealedSecret",
        || format!("foreign: {message}"),
    )?;
    let event = e.event("foreign", "ErrUpdateFailed").await?;
    ensure(event.type_.as_deref() == Some("Warning"), || {
        format!("{event:?}")
    })?;
    let after = e.secrets(&e.ns).get("foreign").await?;
    ensure(
        after.resource_version() == foreign.resource_version(),
        || "the controller wrote a foreign Secret".into(),
    )?;
    Ok(())
}

/// Scenario 8: an owned Secret deleted is recreated, its data edited is restored; an unowned
/// Secret deleted is left alone.
async fn drift(e: &E2e) -> TestResult {
    let secret = secret_manifest(&e.ns, "drift", &[("password", "right")]);
    e.create(e.seal(&secret, "strict").await?, &e.ns, "drift")
        .await?;
    let first = e.secret_where(&e.ns, "drift", |_| true).await?;
    e.synced(&e.ns, "drift", "True").await?;

    e.secrets(&e.ns)
        .delete("drift", &DeleteParams::default())
        .await?;
    let recreated = e
        .secret_where(&e.ns, "drift", |s| s.uid() != first.uid())
        .await?;
    ensure(
        secret_data(&recreated) == map(&[("password", "right")]),
        || "recreated with other data".into(),
    )?;

    let edit = json!({ "stringData": { "password": "wrong" } });
    e.secrets(&e.ns)
        .patch("drift", &PatchParams::default(), &Patch::Merge(&edit))
        .await?;
    e.secret_where(&e.ns, "drift", |s| {
        secret_data(s) == map(&[("password", "right")])
    })
    .await?;

    let mut unowned = e
        .seal(&secret_manifest(&e.ns, "unowned", &[("a", "1")]), "strict")
        .await?;
    let template = unowned.spec.template.get_or_insert_with(Default::default);
    template
        .metadata
        .get_or_insert_with(Default::default)
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(
            SKIP_SET_OWNER_REFERENCES_ANNOTATION.to_owned(),
            "true".to_owned(),
        );
    e.create(unowned, &e.ns, "unowned").await?;
    let secret = e.secret_where(&e.ns, "unowned", |_| true).await?;
    ensure(owner_uid(&secret).is_none(), || "unowned: owner set".into())?;
    e.synced(&e.ns, "unowned", "True").await?;
    e.secrets(&e.ns)
        .delete("unowned", &DeleteParams::default())
        .await?;
    e.no_secret(&e.ns, "unowned").await
}

/// Scenario 11: strict moved (name or namespace) is refused; namespace-wide renamed works,
/// moved namespace is refused; cluster-wide works anywhere; a template annotation cannot widen
/// the scope.
async fn scopes(e: &E2e) -> TestResult {
    let values = [("password", "scoped")];
    let strict = e
        .seal(&secret_manifest(&e.ns, "strict", &values), "strict")
        .await?;
    let namespace_wide = e
        .seal(&secret_manifest(&e.ns, "nsw", &values), "namespace-wide")
        .await?;
    let cluster_wide = e
        .seal(&secret_manifest(&e.ns, "cw", &values), "cluster-wide")
        .await?;

    let mut widened = strict.clone();
    widened
        .spec
        .template
        .get_or_insert_with(Default::default)
        .metadata
        .get_or_insert_with(Default::default)
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(CLUSTER_WIDE.to_owned(), "true".to_owned());

    let refused = [
        (strict.clone(), e.ns.clone(), "strict-renamed"),
        (strict.clone(), e.other_ns.clone(), "strict"),
        (namespace_wide.clone(), e.other_ns.clone(), "nsw"),
        (widened, e.ns.clone(), "widened"),
    ];
    let works = [
        (strict, e.ns.clone(), "strict"),
        (namespace_wide, e.ns.clone(), "nsw-renamed"),
        (cluster_wide.clone(), e.ns.clone(), "cw-renamed"),
        (cluster_wide, e.other_ns.clone(), "cw-moved"),
    ];
    for (sealed, namespace, name) in refused.iter().chain(&works) {
        e.create(sealed.clone(), namespace, name).await?;
    }
    for (_, namespace, name) in &works {
        let secret = e.secret_where(namespace, name, |_| true).await?;
        ensure(secret_data(&secret) == map(&values), || {
            format!("{namespace}/{name}: wrong data")
        })?;
    }
    for (_, namespace, name) in &refused {
        let status = e.synced(namespace, name, "False").await?;
        let message = condition_message(&status);
        ensure(message.contains("no key could decrypt"), || {
            format!("{namespace}/{name}: {message}")
        })?;
        ensure(e.secrets(namespace).get_opt(name).await?.is_none(), || {
            format!("{namespace}/{name}: unsealed out of scope")
        })?;
    }
    Ok(())
}

/// Scenario 12: template.data renders with the decrypted values, including a key with a dash,
/// and a template over no encryptedData.
async fn template_data(e: &E2e) -> TestResult {
    let secret = secret_manifest(
        &e.ns,
        "templated",
        &[
            ("user", "admin"),
            ("password", "hunter2"),
            ("api-key", "k-123"),
        ],
    );
    let mut sealed = e.seal(&secret, "strict").await?;
    sealed
        .spec
        .template
        .get_or_insert_with(Default::default)
        .data = Some(map(&[
        ("dsn", "postgres://{{ .user }}:{{ .password }}@db:5432/app"),
        ("header", "Bearer {{ index . \"api-key\" }}"),
    ]));
    e.create(sealed, &e.ns, "templated").await?;
    let rendered = e
        .secret_where(&e.ns, "templated", |s| secret_data(s).contains_key("dsn"))
        .await?;
    let values = secret_data(&rendered);
    ensure(
        values.get("dsn").map(String::as_str) == Some("postgres://admin:hunter2@db:5432/app")
            && values.get("header").map(String::as_str) == Some("Bearer k-123")
            && values.get("user").map(String::as_str) == Some("admin"),
        || {
            format!(
                "templated: keys {:?} not rendered as expected",
                values.keys()
            )
        },
    )?;

    let mut static_only = SealedSecret::new("static", Default::default());
    static_only.spec.template = Some(sealbox_crds::SecretTemplateSpec {
        data: Some(map(&[("config", "mode: static")])),
        ..Default::default()
    });
    e.create(static_only, &e.ns, "static").await?;
    let secret = e.secret_where(&e.ns, "static", |_| true).await?;
    ensure(
        secret_data(&secret) == map(&[("config", "mode: static")]),
        || format!("static: {:?}", secret_data(&secret).keys()),
    )?;
    e.synced(&e.ns, "static", "True").await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The test

async fn create_namespace(client: &Client, name: &str) -> TestResult {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": { "name": name, "labels": { "app.kubernetes.io/created-by": "sealbox-e2e" } },
    }))?;
    namespaces
        .create(&PostParams::default(), &namespace)
        .await?;
    Ok(())
}

async fn delete_namespace(client: &Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    match namespaces.delete(name, &DeleteParams::background()).await {
        Ok(_) => eprintln!("e2e: deleted namespace {name}"),
        Err(kube::Error::Api(status)) if status.is_not_found() => {}
        Err(error) => {
            eprintln!("e2e: could not delete namespace {name}: {error} (delete it by hand)")
        }
    }
}

/// `sealbox cert fetch` until the controller answers (it may still be starting).
async fn fetch_cert(context: &str, path: &Path) -> TestResult {
    let args = vec![
        "sealbox".to_owned(),
        "cert".to_owned(),
        "fetch".to_owned(),
        "--context".to_owned(),
        context.to_owned(),
        "-o".to_owned(),
        path.display().to_string(),
    ];
    eventually(
        "the controller's certificate (is the controller installed and ready?)",
        || {
            let args = args.clone();
            async move { sealbox(args, Vec::new()).await.map(Some) }
        },
    )
    .await?;
    Ok(())
}

/// Runs one scenario, naming it in the error and saying how long it took.
async fn step(name: &str, scenario: impl Future<Output = TestResult>) -> TestResult {
    let started = std::time::Instant::now();
    scenario
        .await
        .map_err(|error| format!("scenario {name:?}: {error}"))?;
    eprintln!("e2e: {name}: ok ({:.1?})", started.elapsed());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a local test cluster with the controller installed; SEALBOX_E2E=1 (deploy/README.md)"]
async fn e2e_controller_scenarios_on_a_local_cluster() -> TestResult {
    if std::env::var(SWITCH).as_deref() != Ok("1") {
        eprintln!(
            "e2e: skipped; set {SWITCH}=1 to run against the local test cluster of the current \
             kubeconfig context (see deploy/README.md)"
        );
        return Ok(());
    }
    let kubeconfig = Kubeconfig::read().map_err(|e| {
        format!("cannot read the kubeconfig (KUBECONFIG, else ~/.kube/config): {e}")
    })?;
    let context = local_test_context(&kubeconfig)?;
    // The client is pinned to the context that was checked, whatever the environment says;
    // the CLI gets it as --context.
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &KubeConfigOptions {
            context: Some(context.clone()),
            ..KubeConfigOptions::default()
        },
    )
    .await?;
    let client = Client::try_from(config)?;

    let id = format!("{:08x}", fastrand::u32(..));
    let e2e = E2e {
        client: client.clone(),
        context,
        cert: std::env::temp_dir().join(format!("sealbox-e2e-{id}.pem")),
        ns: format!("sealbox-e2e-{id}"),
        other_ns: format!("sealbox-e2e-{id}-b"),
    };
    eprintln!(
        "e2e: context {}, namespaces {} and {}",
        e2e.context, e2e.ns, e2e.other_ns
    );
    let namespaces = [e2e.ns.clone(), e2e.other_ns.clone()];
    let mut created: Vec<&String> = Vec::new();
    for namespace in &namespaces {
        if let Err(error) = create_namespace(&client, namespace).await {
            for namespace in &created {
                delete_namespace(&client, namespace).await;
            }
            return Err(format!("cannot create namespace {namespace}: {error}").into());
        }
        created.push(namespace);
    }

    // The scenarios run in a task, so that a panic still lets the namespaces be deleted.
    let outcome = tokio::spawn(async move {
        let e = &e2e;
        let result = async {
            fetch_cert(&e.context, &e.cert).await?;
            step("new and updated", new_and_updated(e)).await?;
            step("managed, patch, foreign", existing_secrets(e)).await?;
            step("drift", drift(e)).await?;
            step("scopes", scopes(e)).await?;
            step("template data", template_data(e)).await?;
            TestResult::Ok(())
        }
        .await;
        let _ = std::fs::remove_file(&e.cert);
        result
    })
    .await;

    for namespace in &namespaces {
        delete_namespace(&client, namespace).await;
    }
    match outcome {
        Ok(result) => result,
        Err(join) => match join.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(join) => Err(join.into()),
        },
    }
}
