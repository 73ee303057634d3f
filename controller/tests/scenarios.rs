//! The controller's scenarios with the real `sealbox_controller::start` (kube-rs `Controller`,
//! watchers, key lifecycle, HTTP server), each against the in-process API double
//! (`NAME::double`) and against the real control plane (`NAME::real`, see `support::run_real`:
//! deploy/'s RBAC only, any 403 fails), made by `both_backends!` at the end of this file. Two
//! stay on the double alone: `rbac_verbs_and_legacy_key` (the double's request log; the real
//! authorizer checks the same on every real test) and
//! `shutdown_is_prompt_even_when_the_crd_is_missing` (the shared plane has the CRD).
//!
//! One test binary; each RSA test key (2048-bit) is generated once for all of it.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, CustomResourceExt as _, ResourceExt as _};
use sealbox_controller::authorship::{PROOF_ANNOTATION, SEALED_DIGEST_ANNOTATION};
use sealbox_controller::{FIELD_MANAGER, Running};
use sealbox_crds::{
    MANAGED_ANNOTATION, PATCH_ANNOTATION, SKIP_SET_OWNER_REFERENCES_ANNOTATION, SealedSecret,
    SealedSecretSpec, SecretTemplateSpec,
};
use sealbox_crypto::key_secret::KEY_LABEL;
use sealbox_crypto::scope::{
    CLUSTER_WIDE_ANNOTATION, NAMESPACE_WIDE_ANNOTATION, SEALING_KEY_ANNOTATION,
};
use sealbox_tests::fixtures::{owner_uid, sealed_secrets_gvr};
use sealbox_tests::{ApiServer, FaultRule};
use serde_json::json;
use support::{
    Backend, BoxError, CONTROLLER_NS, Kind, NS, TestResult, WAIT, both_backends, http_get,
    init_logs, map, pair, plain_secret, seal_value, secret_data, start_controller, template,
    test_key_secret, until,
};

// ---------------------------------------------------------------------------------------------
// Sealing

/// A SealedSecret `namespace/name` with `values` sealed (strict scope unless annotated) for
/// test key `key`.
fn sealed_secret(namespace: &str, name: &str, key: usize, values: &[(&str, &str)]) -> SealedSecret {
    sealed_secret_with(namespace, name, key, values, &[])
}

fn sealed_secret_with(
    namespace: &str,
    name: &str,
    key: usize,
    values: &[(&str, &str)],
    annotations: &[(&str, &str)],
) -> SealedSecret {
    support::sealed_secret(&pair(key).certificate, namespace, name, values, annotations)
}

// ---------------------------------------------------------------------------------------------
// Harness

struct Harness {
    backend: Backend,
    client: Client,
    running: Option<Running>,
}

impl Harness {
    /// A backend of `kind` with the CRD and the given test keys stored, and the controller
    /// started with `args`.
    async fn start(kind: Kind, keys: &[usize], args: &[&str]) -> Result<Harness, BoxError> {
        let harness = Harness::without_controller(kind, keys).await?;
        harness.with_controller(args).await
    }

    async fn without_controller(kind: Kind, keys: &[usize]) -> Result<Harness, BoxError> {
        Ok(Harness::on(Backend::start(kind, keys).await?))
    }

    /// A harness on `backend`, no controller started yet.
    fn on(backend: Backend) -> Harness {
        Harness {
            client: backend.client(),
            backend,
            running: None,
        }
    }

    /// The double, for what only it can do; `None` on the real plane.
    fn double(&self) -> Option<&ApiServer> {
        self.backend.double()
    }

    async fn with_controller(mut self, args: &[&str]) -> Result<Harness, BoxError> {
        self.running = Some(self.backend.start_controller(args).await?);
        Ok(self)
    }

    fn running(&self) -> &Running {
        self.running.as_ref().expect("controller started")
    }

    async fn stop(&mut self) -> TestResult {
        if let Some(running) = self.running.take() {
            running.shutdown().await?;
        }
        Ok(())
    }

    fn sealed(&self, namespace: &str) -> Api<SealedSecret> {
        Api::namespaced(self.client.clone(), namespace)
    }

    fn secrets(&self, namespace: &str) -> Api<Secret> {
        Api::namespaced(self.client.clone(), namespace)
    }

    async fn create(&self, sealed: &SealedSecret) -> Result<SealedSecret, kube::Error> {
        let namespace = sealed.namespace().unwrap_or_else(|| NS.into());
        self.sealed(&namespace)
            .create(&PostParams::default(), sealed)
            .await
    }

    /// Waits until the Secret exists and satisfies `check`.
    async fn secret_where(
        &self,
        namespace: &str,
        name: &str,
        check: impl Fn(&Secret) -> bool,
    ) -> Result<Secret, BoxError> {
        let mut last = None;
        let found = get_eventually(&self.secrets(namespace), name, check, &mut last).await;
        found.ok_or_else(|| {
            format!("Secret {namespace}/{name} never matched; last seen: {last:?}").into()
        })
    }

    /// Waits until the SealedSecret's Synced condition has `status` (and observedGeneration
    /// matches the object's generation).
    async fn synced(
        &self,
        namespace: &str,
        name: &str,
        status: &str,
    ) -> Result<SealedSecret, BoxError> {
        let mut last = None;
        let found = get_eventually(
            &self.sealed(namespace),
            name,
            |s: &SealedSecret| {
                s.synced_condition().is_some_and(|c| c.status == status)
                    && s.status.as_ref().and_then(|st| st.observed_generation)
                        == s.metadata.generation
            },
            &mut last,
        )
        .await;
        found.ok_or_else(|| {
            format!(
                "SealedSecret {namespace}/{name} never reached Synced={status}; status: {:?}",
                last.and_then(|s| s.status)
            )
            .into()
        })
    }

    /// Waits until the SealedSecret is Synced=False; the condition's message.
    async fn failure_message(&self, namespace: &str, name: &str) -> Result<String, BoxError> {
        let failed = self.synced(namespace, name, "False").await?;
        Ok(failed
            .synced_condition()
            .and_then(|c| c.message.clone())
            .unwrap_or_default())
    }

    async fn events(&self, namespace: &str, name: &str) -> Vec<Event> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        api.list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .collect()
    }

    async fn event_reasons(&self, namespace: &str, name: &str) -> Vec<String> {
        self.events(namespace, name)
            .await
            .into_iter()
            .filter_map(|e| e.reason)
            .collect()
    }

    async fn wait_event(
        &self,
        namespace: &str,
        name: &str,
        reason: &str,
    ) -> Result<Event, BoxError> {
        let mut last = None;
        eventually(
            || async {
                self.events(namespace, name)
                    .await
                    .into_iter()
                    .find(|e| e.reason.as_deref() == Some(reason))
            },
            |_| true,
            &mut last,
        )
        .await
        .ok_or_else(|| format!("no {reason} event for {namespace}/{name}").into())
    }

    /// Sets the key label of key Secret `name` to `value`.
    async fn label_key(&self, name: &str, value: &str) -> TestResult {
        let relabel = json!({ "metadata": { "labels": { KEY_LABEL: value } } });
        self.secrets(CONTROLLER_NS)
            .patch(name, &PatchParams::default(), &Patch::Merge(&relabel))
            .await?;
        Ok(())
    }

    /// Successful writes (create, update, patch) of one Secret, from the request log.
    fn secret_writes(&self, namespace: &str, name: &str) -> usize {
        support::secret_writes_in(&self.backend.request_log(), namespace, name)
    }

    /// Successful status writes of one SealedSecret.
    fn status_writes(&self, namespace: &str, name: &str) -> usize {
        self.backend
            .request_log()
            .iter()
            .filter(|r| {
                r.resource == "sealedsecrets/status"
                    && r.namespace.as_deref() == Some(namespace)
                    && r.name.as_deref() == Some(name)
                    && r.verb != "get"
                    && r.status < 300
            })
            .count()
    }

    /// Requests about Secrets in `namespace` so far.
    fn secret_requests(&self, namespace: &str) -> usize {
        self.backend
            .request_log()
            .iter()
            .filter(|r| {
                r.resource == "secrets"
                    && r.namespace.as_deref() == Some(namespace)
                    && r.verb != "watch"
            })
            .count()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            // Best effort: the runtime may already be shutting down.
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = running.shutdown().await;
                });
            }
        }
    }
}

/// Polls `fetch` until `check` accepts a value or [`WAIT`] passes; `last` keeps the last value.
/// Each try is an API request, so it tries less often than [`until`].
async fn eventually<T, F, Fut>(
    mut fetch: F,
    check: impl Fn(&T) -> bool,
    last: &mut Option<T>,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let value = fetch().await;
        if let Some(v) = value {
            if check(&v) {
                return Some(v);
            }
            *last = Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// [`eventually`] for object `name` read through `api`.
async fn get_eventually<K>(
    api: &Api<K>,
    name: &str,
    check: impl Fn(&K) -> bool,
    last: &mut Option<K>,
) -> Option<K>
where
    K: Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    eventually(
        || async { api.get_opt(name).await.ok().flatten() },
        check,
        last,
    )
    .await
}

/// The Secret's annotations but the controller's proof of authorship, which every Secret it
/// writes carries (checked apart).
fn annotations_but_proof(secret: &Secret) -> Option<BTreeMap<String, String>> {
    let mut annotations = secret.metadata.annotations.clone()?;
    let digest = annotations.remove(SEALED_DIGEST_ANNOTATION);
    let proof = annotations.remove(PROOF_ANNOTATION);
    assert!(
        digest.is_some() && proof.is_some(),
        "no proof of authorship: {:?}",
        secret.metadata.annotations
    );
    Some(annotations)
}

// ---------------------------------------------------------------------------------------------
// Scenarios

/// Scenario 1: New SealedSecret → Secret with data and template labels; Synced=True with equal times;
/// event Unsealed.
async fn s01_new_sealed_secret_becomes_a_secret(kind: Kind) -> TestResult {
    let h = Harness::start(kind, &[0], &[]).await?;
    let mut sealed = sealed_secret(NS, "db", 0, &[("password", "hunter2"), ("user", "admin")]);
    sealed.spec.template = Some(template(&[("app", "web")], &[("note", "sealed")]));
    let created = h.create(&sealed).await?;

    let secret = h.secret_where(NS, "db", |_| true).await?;
    assert_eq!(
        secret_data(&secret),
        map(&[("password", "hunter2"), ("user", "admin")])
    );
    assert_eq!(secret.metadata.labels, Some(map(&[("app", "web")])));
    assert_eq!(
        annotations_but_proof(&secret),
        Some(map(&[("note", "sealed")]))
    );
    assert_eq!(owner_uid(&secret), created.uid());
    // The field manager of the server-side apply, as both backends serve it.
    let managers: BTreeSet<String> = secret
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(managers.contains(FIELD_MANAGER), "{managers:?}");

    let status = h.synced(NS, "db", "True").await?;
    let condition = status.synced_condition().ok_or("condition")?;
    assert_eq!(condition.last_transition_time, condition.last_update_time);
    assert!(condition.last_transition_time.is_some());
    assert_eq!(
        status.status.as_ref().and_then(|s| s.observed_generation),
        Some(1)
    );

    let event = h.wait_event(NS, "db", "Unsealed").await?;
    assert_eq!(event.type_.as_deref(), Some("Normal"));
    // Exactly one write for one content, and no event or status noise afterwards.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.secret_writes(NS, "db"), 1);
    assert_eq!(h.status_writes(NS, "db"), 1);
    let unsealed = h.event_reasons(NS, "db").await;
    assert_eq!(unsealed, vec!["Unsealed".to_string()]);

    // A reconcile with nothing to do (a new label) reads nothing: the Secret watch has shown
    // the Secret at the version the controller wrote.
    let requests = h.secret_requests(NS);
    let reconciles = h.running().metrics().reconciles("success");
    let patch = serde_json::json!({"metadata": {"labels": {"team": "payments"}}});
    h.sealed(NS)
        .patch("db", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    until("a reconcile after the label", || {
        h.running().metrics().reconciles("success") > reconciles
    })
    .await?;
    assert_eq!(h.secret_requests(NS), requests);
    assert_eq!(h.secret_writes(NS, "db"), 1);

    // A restart finds everything in sync: no write, no status change, no new event.
    let mut h = h;
    h.stop().await?;
    h = h.with_controller(&[]).await?;
    until("readiness after restart", || h.running().is_ready()).await?;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(h.secret_writes(NS, "db"), 1);
    assert_eq!(h.status_writes(NS, "db"), 1);
    assert_eq!(
        h.event_reasons(NS, "db").await,
        vec!["Unsealed".to_string()]
    );
    Ok(())
}

/// Scenario 2: Updating a value updates the Secret; observedGeneration 2; lastTransitionTime unchanged.
async fn s02_updated_value_updates_the_secret(kind: Kind) -> TestResult {
    let h = Harness::start(kind, &[0], &[]).await?;
    h.create(&sealed_secret(NS, "db", 0, &[("password", "one")]))
        .await?;
    let first = h.synced(NS, "db", "True").await?;
    let first_transition = first
        .synced_condition()
        .and_then(|c| c.last_transition_time.clone());

    let update = sealed_secret(NS, "db", 0, &[("password", "two")]);
    let patch = json!({ "spec": { "encryptedData": update.spec.encrypted_data } });
    h.sealed(NS)
        .patch("db", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;

    h.secret_where(NS, "db", |s| secret_data(s) == map(&[("password", "two")]))
        .await?;
    let mut last = None;
    let second = get_eventually(
        &h.sealed(NS),
        "db",
        |s: &SealedSecret| s.status.as_ref().and_then(|st| st.observed_generation) == Some(2),
        &mut last,
    )
    .await
    .ok_or("observedGeneration never reached 2")?;
    let condition = second.synced_condition().ok_or("condition")?;
    assert_eq!(condition.status, "True");
    assert_eq!(condition.last_transition_time, first_transition);
    assert_eq!(second.metadata.generation, Some(2));
    Ok(())
}

/// Scenario 3: A renamed encrypted key and an appended key sealed separately both appear.
async fn s03_renamed_and_appended_keys(kind: Kind) -> TestResult {
    let h = Harness::start(kind, &[0], &[]).await?;
    let original = sealed_secret(NS, "db", 0, &[("old-name", "value-1")]);
    h.create(&original).await?;
    h.secret_where(NS, "db", |s| {
        secret_data(s) == map(&[("old-name", "value-1")])
    })
    .await?;
    // The status is written after the Secret: read the SealedSecret for the replace below only
    // then, or the replace conflicts (409) with the status write (seen on the real plane).
    h.synced(NS, "db", "True").await?;

    let appended = sealed_secret(NS, "db", 0, &[("appended", "value-2")]);
    let mut data = BTreeMap::new();
    data.insert(
        "new-name".to_string(),
        original.spec.encrypted_data["old-name"].clone(),
    );
    data.insert(
        "appended".to_string(),
        appended.spec.encrypted_data["appended"].clone(),
    );
    let mut current = h.sealed(NS).get("db").await?;
    current.spec.encrypted_data = data;
    h.sealed(NS)
        .replace("db", &PostParams::default(), &current)
        .await?;

    h.secret_where(NS, "db", |s| {
        secret_data(s) == map(&[("new-name", "value-1"), ("appended", "value-2")])
    })
    .await?;
    Ok(())
}

/// Scenario 4: An existing Secret annotated `managed` is taken over: owner set; data, labels and
/// annotations replaced.
async fn s04_managed_secret_is_taken_over(kind: Kind) -> TestResult {
    let h = Harness::start(kind, &[0], &[]).await?;
    let existing = plain_secret(
        "db",
        &[(MANAGED_ANNOTATION, "true"), ("someone", "else")],
        &[("old", "label")],
        &[("password", "old"), ("stale", "x")],
    );
    h.secrets(NS)
        .create(&PostParams::default(), &existing)
        .await?;

    let mut sealed = sealed_secret(NS, "db", 0, &[("password", "new")]);
    sealed.spec.template = Some(template(&[("app", "web")], &[("note", "sealed")]));
    let created = h.create(&sealed).await?;

    let secret = h.secret_where(NS, "db", |s| owner_uid(s).is_some()).await?;
    assert_eq!(owner_uid(&secret), created.uid());
    let secret = h
        .secret_where(NS, "db", |s| secret_data(s) == map(&[("password", "new")]))
        .await?;
    assert_eq!(secret.metadata.labels, Some(map(&[("app", "web")])));
    assert_eq!(
        annotations_but_proof(&secret),
        Some(map(&[("note", "sealed")]))
    );
    h.synced(NS, "db", "True").await?;
    Ok(())
}

/// Scenario 5: `managed` + `patch`: owner set, keys and labels merged, annotations kept.
async fn s05_managed_and_patch_merges_and_takes_ownership(kind: Kind) -> TestResult {
    let h = Harness::start(kind, &[0], &[]).await?;
    let existing = plain_secret(
        "db",
        &[
            (MANAGED_ANNOTATION, "true"),
            (PATCH_ANNOTATION, "true"),
            ("kept", "yes"),
        ],
        &[("existing", "label")],
        &[("existing-key", "1")],
    );
    h.secrets(NS)
        .create(&PostParams::default(), &existing)
        .await?;
    let mut sealed = sealed_secret(NS, "db", 0, &[("password", "new")]);
    sealed.spec.template = Some(template(&[("app", "web")], &[]));
    let created = h.create(&sealed).await?;

    let secret = h.secret_where(NS, "db", |s| owner_uid(s).is_some()).await?;
    assert_eq!(owner_uid(&secret), created.uid());
    assert_eq!(
        secret_data(&secret),
        map(&[("existing-key", "1"), ("password", "new")])
    );
    assert_eq!(
        secret.metadata.labels,
        Some(map(&[("existing", "label"), ("app", "web")]))
    );
    let annotations = secret.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations.get("kept").map(String::as_str), Some("yes"));
    assert_eq!(
        annotations.get(PATCH_ANNOTATION).map(String::as_str),
        Some("true")
    );
    h.synced(NS, "db", "True").await?;
    Ok(())
}

/// Scenario 6: `patch` alone: merged without an owner; also into an empty existing Secret.
async fn s06_patch_merges_without_owner(kind: Kind) -> TestResult {
    let h = Harness::start(kind, &[0], &[]).await?;
    let existing = plain_secret(
        "db",
        &[(PATCH_ANNOTATION, "true")],
        &[("existing", "label")],
        &[("existing-key", "1")],
    );
    h.secrets(NS)
        .create(&PostParams::default(), &existing)
        .await?;
    let empty = plain_secret("empty", &[(PATCH_ANNOTATION, "true")], &[], &[]);
    h.secrets(NS).create(&PostParams::default(), &empty).await?;

    let mut sealed = sealed_secret(NS, "db", 0, &[("password", "new")]);
    sealed.spec.template = Some(template(&[("app", "web")], &[]));
    h.create(&sealed).await?;
    h.create(&sealed_secret(NS, "empty", 0, &[("only", "value")]))
        .await?;

    let secret = h
        .secret_where(NS, "db", |s| secret_data(s).contains_key("password"))
        .await?;
    assert_eq!(
        secret_data(&secret),
        map(&[("existing-key", "1"), ("password", "new")])
    );
    assert_eq!(
        secret.metadata.labels,
        Some(map(&[("existing", "label"), ("app", "web")]))
    );
    assert_eq!(owner_uid(&secret), None);

    let secret = h
        .secret_where(NS, "empty", |s| !secret_data(s).is_empty())
        .await?;
    assert_eq!(secret_data(&secret), map(&[("only", "value")]));
    assert_eq!(owner_uid(&secret), None);
    h.synced(NS, "db", "True").await?;
    h.synced(NS, "empty", "True").await?;
    Ok(())
}

/// Scenario 7: An existing unannotated Secret is left untouched; status False "already exists and is
/// not managed".
async fn s07_foreign_secret_is_refused(kind: Kind) -> TestResult {
    let h = Harness::start(kind, &[0], &[]).await?;
    let existing = plain_secret(
        "db",
        &[],
        &[("owner", "someone")],
        &[("password", "theirs")],
    );
    let before = h
        .secrets(NS)
        .create(&PostParams::default(), &existing)
        .await?;
    h.create(&sealed_secret(NS, "db", 0, &[("password", "ours")]))
        .await?;

    let message = h.failure_message(NS, "db").await?;
    // Bitnami's text, with its "failed update:" prefix: alerts and greps match on it.
    assert_eq!(
        message,
        "failed update: Resource \"db\" already exists and is not managed by SealedSecret"
    );
    let event = h.wait_event(NS, "db", "ErrUpdateFailed").await?;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    let after = h.secrets(NS).get("db").await?;
    assert_eq!(after.resource_version(), before.resource_version());
    assert_eq!(secret_data(&after), map(&[("password", "theirs")]));
    assert_eq!(
        h.secret_writes(NS, "db"),
        0,
        "the controller wrote a foreign Secret"
    );
    Ok(())
}

/// Scenario 8: Drift: a deleted owned Secret is recreated, edited data is restored, an unowned Secret's
/// deletion is left alone.
async fn s08_drift_is_corrected_for_owned_secrets_only(kind: Kind) -> TestResult {
    let h = Harness::start(kind, &[0], &[]).await?;
    h.create(&sealed_secret(NS, "db", 0, &[("password", "right")]))
        .await?;
    let first = h.secret_where(NS, "db", |_| true).await?;
    h.synced(NS, "db", "True").await?;

    h.secrets(NS).delete("db", &DeleteParams::default()).await?;
    let recreated = h.secret_where(NS, "db", |s| s.uid() != first.uid()).await?;
    assert_eq!(secret_data(&recreated), map(&[("password", "right")]));

    let edit = json!({ "data": { "password": STANDARD.encode("wrong") } });
    h.secrets(NS)
        .patch("db", &PatchParams::default(), &Patch::Merge(&edit))
        .await?;
    h.secret_where(NS, "db", |s| {
        secret_data(s) == map(&[("password", "right")])
    })
    .await?;

    // Not owned (the template opts out of the ownerReference): its deletion is left alone.
    let mut unowned = sealed_secret(NS, "unowned", 0, &[("a", "1")]);
    unowned.spec.template = Some(template(
        &[],
        &[(SKIP_SET_OWNER_REFERENCES_ANNOTATION, "true")],
    ));
    h.create(&unowned).await?;
    let secret = h.secret_where(NS, "unowned", |_| true).await?;
    assert_eq!(owner_uid(&secret), None);
    h.synced(NS, "unowned", "True").await?;
    h.secrets(NS)
        .delete("unowned", &DeleteParams::default())
        .await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        h.secrets(NS).get_opt("unowned").await?.is_none(),
        "an unowned Secret was recreated"
    );
    Ok(())
}

/// Scenario 9: Sealed with a key the controller lacks → no Secret, status False, ErrUnsealFailed; once
/// that key is added as a key Secret (no restart) → the Secret appears.
async fn s09_missing_key_then_key_added_without_restart(kind: Kind) -> TestResult {
    let h = Harness::start(kind, &[0], &[]).await?;
    h.create(&sealed_secret(NS, "db", 5, &[("password", "later")]))
        .await?;
    let message = h.failure_message(NS, "db").await?;
    assert!(
        message.contains("encryptedData[\"password\"]: no key could decrypt")
            && message.starts_with("no key could decrypt secret (password)"),
        "{message}"
    );
    assert!(!message.contains("later"));
    h.wait_event(NS, "db", "ErrUnsealFailed").await?;
    assert!(h.secrets(NS).get_opt("db").await?.is_none());

    h.secrets(CONTROLLER_NS)
        .create(&PostParams::default(), &test_key_secret(5))
        .await?;
    let secret = h.secret_where(NS, "db", |_| true).await?;
    assert_eq!(secret_data(&secret), map(&[("password", "later")]));
    h.synced(NS, "db", "True").await?;
    assert_eq!(h.running().keys().snapshot().len(), 2);

    // Relabelled away from `active`, the key is dropped (and kept in the cluster).
    h.label_key("sealed-secrets-key-test5", "compromised")
        .await?;
    until("the relabelled key to be dropped", || {
        h.running().keys().snapshot().len() == 1
    })
    .await?;
    assert!(
        h.secrets(CONTROLLER_NS)
            .get_opt("sealed-secrets-key-test5")
            .await?
            .is_some()
    );
    // Back to active, then deleted by someone: picked up and dropped again.
    h.label_key("sealed-secrets-key-test5", "active").await?;
    until("the key to be back", || {
        h.running().keys().snapshot().len() == 2
    })
    .await?;
    h.secrets(CONTROLLER_NS)
        .delete("sealed-secrets-key-test5", &DeleteParams::default())
        .await?;
    until("the deleted key to be dropped", || {
        h.running().keys().snapshot().len() == 1
    })
    .await?;
    // The Secret it produced stays.
    assert!(h.secrets(NS).get_opt("db").await?.is_some());
    Ok(())
}

/// Scenario 10: Custom type and immutable; updating an immutable target → ErrUpdateFailed naming
/// immutability, no retry storm.
async fn s10_custom_type_and_immutable_secrets(kind: Kind) -> TestResult {
    let h = Harness::start(kind, &[0], &[]).await?;
    let config = r#"{"auths":{"registry.example":{"auth":"dXNlcjpwYXNz"}}}"#;
    let mut sealed = sealed_secret(NS, "pull", 0, &[(".dockerconfigjson", config)]);
    sealed.spec.template = Some(SecretTemplateSpec {
        type_: Some("kubernetes.io/dockerconfigjson".into()),
        immutable: Some(true),
        ..SecretTemplateSpec::default()
    });
    h.create(&sealed).await?;
    let secret = h.secret_where(NS, "pull", |_| true).await?;
    assert_eq!(
        secret.type_.as_deref(),
        Some("kubernetes.io/dockerconfigjson")
    );
    assert_eq!(secret.immutable, Some(true));
    assert_eq!(secret_data(&secret), map(&[(".dockerconfigjson", config)]));
    h.synced(NS, "pull", "True").await?;

    let changed = sealed_secret(NS, "pull", 0, &[(".dockerconfigjson", "{}")]);
    let patch = json!({ "spec": { "encryptedData": changed.spec.encrypted_data } });
    h.sealed(NS)
        .patch("pull", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let message = h.failure_message(NS, "pull").await?;
    assert!(message.contains("immutable"), "{message}");
    let event = h.wait_event(NS, "pull", "ErrUpdateFailed").await?;
    assert!(event.note.unwrap_or_default().contains("immutable"));

    // No retry storm: nothing more happens until something changes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let requests = h.secret_requests(NS);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(
        h.secret_requests(NS),
        requests,
        "the controller kept retrying"
    );
    assert_eq!(
        secret_data(&h.secrets(NS).get("pull").await?),
        map(&[(".dockerconfigjson", config)])
    );
    Ok(())
}

/// Scenario 11: Scopes: strict moved → refused; namespace-wide renamed → works, moved namespace →
/// refused; cluster-wide moved anywhere → works; a template annotation cannot widen the scope.
async fn s11_scopes_bind_values_to_names_and_namespaces(kind: Kind) -> TestResult {
    let h = Harness::start(kind, &[0], &[]).await?;
    let moved = |from: SealedSecret, namespace: &str, name: &str| {
        let mut to = SealedSecret::new(name, from.spec.clone());
        to.metadata.namespace = Some(namespace.into());
        to.metadata.annotations = from.metadata.annotations.clone();
        to
    };

    let strict = sealed_secret(NS, "strict", 0, &[("a", "1")]);
    h.create(&moved(strict.clone(), "other", "strict")).await?;
    h.create(&moved(strict, NS, "strict-renamed")).await?;

    let ns_wide = sealed_secret_with(
        NS,
        "nsw",
        0,
        &[("a", "2")],
        &[(NAMESPACE_WIDE_ANNOTATION, "true")],
    );
    h.create(&moved(ns_wide.clone(), NS, "nsw-renamed")).await?;
    h.create(&moved(ns_wide, "other", "nsw")).await?;

    let cluster = sealed_secret_with(
        NS,
        "cw",
        0,
        &[("a", "3")],
        &[(CLUSTER_WIDE_ANNOTATION, "true")],
    );
    h.create(&moved(cluster, "elsewhere", "anything")).await?;

    // Sealed strict, with a template annotation claiming cluster-wide, moved.
    let mut widened = sealed_secret(NS, "widened", 0, &[("a", "4")]);
    widened.spec.template = Some(template(&[], &[(CLUSTER_WIDE_ANNOTATION, "true")]));
    h.create(&moved(widened, "other", "widened")).await?;

    for (namespace, name) in [
        ("other", "strict"),
        (NS, "strict-renamed"),
        ("other", "nsw"),
        ("other", "widened"),
    ] {
        let message = h.failure_message(namespace, name).await?;
        assert!(
            message.contains("no key could decrypt"),
            "{namespace}/{name}: {message}"
        );
        assert!(
            h.secrets(namespace).get_opt(name).await?.is_none(),
            "{namespace}/{name}"
        );
    }
    let secret = h.secret_where(NS, "nsw-renamed", |_| true).await?;
    assert_eq!(secret_data(&secret), map(&[("a", "2")]));
    let secret = h.secret_where("elsewhere", "anything", |_| true).await?;
    assert_eq!(secret_data(&secret), map(&[("a", "3")]));
    Ok(())
}

/// Scenario 12: template.data renders with the values, including a key with a dash, and over no
/// encryptedData at all.
async fn s12_template_data(kind: Kind) -> TestResult {
    let h = Harness::start(kind, &[0], &[]).await?;
    let mut sealed = sealed_secret(NS, "db", 0, &[("user", "admin"), ("pass-word", "pw")]);
    sealed.spec.template = Some(SecretTemplateSpec {
        data: Some(map(&[
            (
                "url",
                "postgres://{{ .user }}:{{ index . \"pass-word\" }}@db:5432",
            ),
            (
                "config.yaml",
                "user: {{ .user | quote }}\nsecret: {{ index . \"pass-word\" | b64enc }}",
            ),
        ])),
        ..SecretTemplateSpec::default()
    });
    h.create(&sealed).await?;
    let secret = h.secret_where(NS, "db", |_| true).await?;
    assert_eq!(
        secret_data(&secret),
        map(&[
            ("user", "admin"),
            ("pass-word", "pw"),
            ("url", "postgres://admin:pw@db:5432"),
            ("config.yaml", "user: \"admin\"\nsecret: cHc="),
        ])
    );

    let mut static_only = SealedSecret::new("static", SealedSecretSpec::default());
    static_only.metadata.namespace = Some(NS.into());
    static_only.spec.template = Some(SecretTemplateSpec {
        data: Some(map(&[("config", "mode: static")])),
        ..SecretTemplateSpec::default()
    });
    h.create(&static_only).await?;
    let secret = h.secret_where(NS, "static", |_| true).await?;
    assert_eq!(secret_data(&secret), map(&[("config", "mode: static")]));
    h.synced(NS, "static", "True").await?;
    Ok(())
}

/// Scenario 13: Invalid base64, legacy spec.data and an object of the wrong shape each get status False
/// naming the key or field; other SealedSecrets keep reconciling.
async fn s13_malformed_sealed_secrets_fail_alone(kind: Kind) -> TestResult {
    // A looser schema than ours, so an object of the wrong shape can be stored at all (a CRD
    // from another release, or one edited by hand).
    let mut crd = serde_json::to_value(SealedSecret::crd())?;
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"] =
        json!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true });
    // The real plane keeps deploy/'s CRD, whose schema refuses that object.
    let backend = match kind {
        Kind::Double => Backend::Double(support::api_server_with_crd(crd, &[0]).await?),
        Kind::Real => Backend::start(kind, &[0]).await?,
    };
    // spec.data is accepted by default, as Bitnami's; refused here to see the refusal.
    let h = Harness::on(backend)
        .with_controller(&["--accept-deprecated-v1-data=false"])
        .await?;

    let mut bad_base64 = sealed_secret(NS, "bad-base64", 0, &[("good", "1")]);
    bad_base64
        .spec
        .encrypted_data
        .insert("broken".into(), "%%% not base64 %%%".into());
    h.create(&bad_base64).await?;

    let mut legacy = sealed_secret(NS, "legacy", 0, &[]);
    legacy.spec.data = Some(seal_value(
        &pair(0).certificate,
        r#"{"apiVersion":"v1","kind":"Secret"}"#,
        b"app/legacy",
    ));
    h.create(&legacy).await?;

    let wrong_shape = json!({
        "apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
        "metadata": { "name": "wrong-shape", "namespace": NS },
        "spec": { "encryptedData": { "password": 42 } }
    });
    let sealed_gvr = sealed_secrets_gvr();
    match h.double() {
        Some(server) => {
            server.put_object(&sealed_gvr, wrong_shape)?;
        }
        None => {
            let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
                h.client.clone(),
                NS,
                &kube::api::ApiResource::from_gvk_with_plural(
                    &kube::api::GroupVersionKind::gvk("bitnami.com", "v1alpha1", "SealedSecret"),
                    "sealedsecrets",
                ),
            );
            let refused = api
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(wrong_shape)?,
                )
                .await;
            assert!(
                matches!(&refused, Err(kube::Error::Api(s)) if s.code == 422),
                "the CRD's schema refuses a number as a value: {refused:?}"
            );
        }
    }

    h.create(&sealed_secret(NS, "fine", 0, &[("ok", "yes")]))
        .await?;

    let m = h.failure_message(NS, "bad-base64").await?;
    assert!(
        m.contains("encryptedData[\"broken\"]: invalid base64"),
        "{m}"
    );
    assert!(!m.contains("good"), "{m}");
    let m = h.failure_message(NS, "legacy").await?;
    assert!(m.contains("spec.data"), "{m}");
    if let Some(server) = h.double() {
        // Not readable as a typed SealedSecret: read the stored object.
        let mut last = None;
        let stored = eventually(
            || async { server.get_object(&sealed_gvr, Some(NS), "wrong-shape") },
            |o| o["status"]["conditions"][0]["status"] == "False",
            &mut last,
        )
        .await
        .ok_or_else(|| format!("wrong-shape never got Synced=False: {last:?}"))?;
        let m = stored["status"]["conditions"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(m.contains("spec.encryptedData.password"), "{m}");
        assert!(!m.contains("42"), "{m}");
        assert_eq!(
            stored["status"]["observedGeneration"],
            stored["metadata"]["generation"]
        );
    }

    let secret = h.secret_where(NS, "fine", |_| true).await?;
    assert_eq!(secret_data(&secret), map(&[("ok", "yes")]));
    h.synced(NS, "fine", "True").await?;
    // And later objects still reconcile: the watch is intact.
    h.create(&sealed_secret(NS, "later", 0, &[("ok", "too")]))
        .await?;
    h.secret_where(NS, "later", |_| true).await?;
    for name in ["bad-base64", "legacy", "wrong-shape"] {
        assert!(h.secrets(NS).get_opt(name).await?.is_none(), "{name}");
    }
    Ok(())
}

/// Scenario 14: First start without keys: /healthz answers while the key is generated; the key Secret
/// has Bitnami's shape; a second start reuses it; renewal adds keys and keeps the old ones;
/// a cutoff time forces a new key.
async fn s14_key_generation_reuse_renewal_and_cutoff(kind: Kind) -> TestResult {
    let mut h = Harness::without_controller(kind, &[]).await?;
    // Slow API (the double only): the key cannot be stored for a while, and /healthz must not
    // wait for it.
    if let Some(server) = h.double() {
        server.set_latency(Duration::from_millis(300));
    }
    h = h.with_controller(&[]).await?;
    let addr = h.running().local_addr();
    assert_eq!(http_get(addr, "/healthz").await?.0, 200);
    if let Some(server) = h.double() {
        assert_eq!(http_get(addr, "/readyz").await?.0, 503);
        assert!(!h.running().keys().is_ready());
        server.set_latency(Duration::ZERO);
    }
    until("the first key", || h.running().keys().is_ready()).await?;
    until("readiness", || h.running().is_ready()).await?;
    assert_eq!(http_get(addr, "/readyz").await?.0, 200);

    let keys: Api<Secret> = h.secrets(CONTROLLER_NS);
    let listed = keys
        .list(&ListParams::default().labels(KEY_LABEL))
        .await?
        .items;
    assert_eq!(listed.len(), 1);
    let key = &listed[0];
    assert_eq!(key.type_.as_deref(), Some("kubernetes.io/tls"));
    assert_eq!(
        key.metadata.generate_name.as_deref(),
        Some("sealed-secrets-key")
    );
    assert!(key.name_any().starts_with("sealed-secrets-key"));
    assert_eq!(
        key.labels().get(KEY_LABEL).map(String::as_str),
        Some("active")
    );
    let data = key.data.clone().unwrap_or_default();
    let tls_key = String::from_utf8(data.get("tls.key").ok_or("tls.key")?.0.clone())?;
    let tls_crt = String::from_utf8(data.get("tls.crt").ok_or("tls.crt")?.0.clone())?;
    assert!(tls_key.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    assert!(tls_crt.starts_with("-----BEGIN CERTIFICATE-----"));
    let first = h.running().keys().snapshot().fingerprints();

    // It unseals what is sealed for its certificate.
    let cert = sealbox_crypto::Certificate::from_pem(tls_crt.as_bytes())?;
    h.create(&support::sealed_secret(
        &cert,
        NS,
        "db",
        &[("v", "generated")],
        &[],
    ))
    .await?;
    h.secret_where(NS, "db", |s| secret_data(s) == map(&[("v", "generated")]))
        .await?;

    // A second start reuses the key.
    h.stop().await?;
    h = h.with_controller(&[]).await?;
    until("keys loaded again", || h.running().keys().is_ready()).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.running().keys().snapshot().fingerprints(), first);
    assert_eq!(
        keys.list(&ListParams::default().labels(KEY_LABEL))
            .await?
            .items
            .len(),
        1
    );

    // Renewal with a short period adds a key and keeps the old one.
    h.stop().await?;
    h = h.with_controller(&["--key-renew-period=2s"]).await?;
    until("a renewed key", || h.running().keys().snapshot().len() >= 2).await?;
    let renewed = h.running().keys().snapshot();
    assert!(renewed.fingerprints().contains(&first[0]));
    assert_ne!(
        renewed.sealing_key().map(|k| k.fingerprint()),
        Some(&first[0])
    );
    assert!(
        keys.list(&ListParams::default().labels(KEY_LABEL))
            .await?
            .items
            .len()
            >= 2
    );

    // A cutoff after the newest key forces one at start.
    h.stop().await?;
    let count = keys
        .list(&ListParams::default().labels(KEY_LABEL))
        .await?
        .items
        .len();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let cutoff = jiff::fmt::rfc2822::to_string(&jiff::Zoned::now())?;
    h = h.with_controller(&["--key-cutoff-time", &cutoff]).await?;
    until("a key forced by the cutoff", || {
        h.running().keys().snapshot().len() > count
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        keys.list(&ListParams::default().labels(KEY_LABEL))
            .await?
            .items
            .len(),
        count + 1
    );
    // Nothing was deleted.
    assert!(
        h.running()
            .keys()
            .snapshot()
            .fingerprints()
            .contains(&first[0])
    );
    h.secret_where(NS, "db", |s| secret_data(s) == map(&[("v", "generated")]))
        .await?;
    Ok(())
}

/// Scenario 15: Under injected API faults every SealedSecret converges and no Secret is written twice
/// for the same content.
async fn s15_converges_under_faults_without_duplicate_writes(kind: Kind) -> TestResult {
    let h = Harness::start(kind, &[0], &[]).await?;
    // Faults on the double only: the real plane shows the same without them.
    let double = h.double();
    if let Some(server) = double {
        inject_faults(server);
    }

    let names: Vec<String> = (0..8).map(|i| format!("s{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        h.create(&sealed_secret(NS, name, 0, &[("value", &format!("v{i}"))]))
            .await?;
        if let (3, Some(server)) = (i, double) {
            server.cut_watches();
        }
        if let (5, Some(server)) = (i, double) {
            server.compact();
        }
    }
    for (i, name) in names.iter().enumerate() {
        h.secret_where(NS, name, |s| {
            secret_data(s) == map(&[("value", &format!("v{i}"))])
        })
        .await?;
        h.synced(NS, name, "True").await?;
    }
    // More disruption after convergence: relists must not rewrite anything.
    if let Some(server) = double {
        server.cut_watches();
        server.compact();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for name in &names {
        assert_eq!(
            h.secret_writes(NS, name),
            1,
            "Secret {name} written more than once"
        );
    }
    Ok(())
}

fn inject_faults(server: &ApiServer) {
    server.fail_next(
        FaultRule::status(500)
            .resource("secrets")
            .method("PATCH")
            .times(3),
    );
    server.fail_next(
        FaultRule::status(500)
            .resource("secrets")
            .verb("get")
            .times(2),
    );
    server.fail_next(
        FaultRule::status(409)
            .resource("sealedsecrets/status")
            .times(3),
    );
    server.fail_next(FaultRule::status(500).resource("events").times(2));
}

/// A SealedSecret sealed for a 12-key registry with the hint costs one private-key operation
/// per value; without the hint, keys are tried newest first.
async fn private_key_operations_with_and_without_hint(kind: Kind) -> TestResult {
    let all: Vec<usize> = (0..12).collect();
    let h = Harness::start(kind, &all, &[]).await?;
    until("twelve keys", || h.running().keys().snapshot().len() == 12).await?;
    let ops = || h.running().keys().private_key_operations();

    let hinted_key = 7;
    let hint = pair(hinted_key).fingerprint().to_string();
    let values = [("a", "1"), ("b", "2"), ("c", "3")];
    let before = ops();
    h.create(&sealed_secret_with(
        NS,
        "hinted",
        hinted_key,
        &values,
        &[(SEALING_KEY_ANNOTATION, &hint)],
    ))
    .await?;
    h.synced(NS, "hinted", "True").await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ops() - before, 3, "one private-key operation per value");

    // No hint, sealed with the oldest key: twelve tries for the first value (newest first),
    // then the key that worked is tried first.
    let before = ops();
    h.create(&sealed_secret(NS, "unhinted", 11, &values))
        .await?;
    h.synced(NS, "unhinted", "True").await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ops() - before, 12 + 1 + 1);
    Ok(())
}

/// The API requests the controller makes, as RBAC verbs: what deploy/'s ClusterRole must grant.
/// Also the legacy `sealed-secrets-key` Secret is loaded whatever its labels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_verbs_and_legacy_key() -> TestResult {
    let h = Harness::without_controller(Kind::Double, &[]).await?;
    let mut legacy = test_key_secret(3);
    legacy.metadata.name = Some("sealed-secrets-key".into());
    legacy.metadata.labels = None;
    h.secrets(CONTROLLER_NS)
        .create(&PostParams::default(), &legacy)
        .await?;
    h.double().ok_or("the double")?.clear_request_log();
    let h = h.with_controller(&[]).await?;
    let server = h.double().ok_or("the double")?;
    until("the legacy key", || h.running().keys().is_ready()).await?;
    assert_eq!(
        h.running()
            .keys()
            .snapshot()
            .sealing_key()
            .map(|k| k.fingerprint()),
        Some(pair(3).fingerprint())
    );

    // The test's own requests go around the log: only the controller's are counted.
    server.put(&sealed_secret(NS, "db", 3, &[("a", "1")]))?;
    server.put(&sealed_secret(NS, "broken", 0, &[("a", "1")]))?;
    let condition = |name: &str| {
        server
            .get::<SealedSecret>(Some(NS), name)
            .and_then(|s| s.synced_condition().map(|c| c.status.clone()))
    };
    until("db synced", || condition("db").as_deref() == Some("True")).await?;
    until("broken failed", || {
        condition("broken").as_deref() == Some("False")
    })
    .await?;
    assert!(server.get::<Secret>(Some(NS), "db").is_some());

    let used: Vec<(String, String, String)> = server.rbac_summary().into_iter().collect();
    let allowed = [
        ("", "secrets", "get"),
        ("", "secrets", "list"),
        ("", "secrets", "watch"),
        ("", "secrets", "create"),
        ("", "secrets", "patch"),
        ("bitnami.com", "sealedsecrets", "list"),
        ("bitnami.com", "sealedsecrets", "watch"),
        // Read whole to unseal: the cache leaves the sealed values out.
        ("bitnami.com", "sealedsecrets", "get"),
        ("bitnami.com", "sealedsecrets/status", "patch"),
        ("events.k8s.io", "events", "create"),
        ("events.k8s.io", "events", "patch"),
        // Leader election (on by default): read, made by the first replica, renewed.
        ("coordination.k8s.io", "leases", "get"),
        ("coordination.k8s.io", "leases", "create"),
        ("coordination.k8s.io", "leases", "update"),
    ];
    for (group, resource, verb) in &used {
        assert!(
            allowed.contains(&(group.as_str(), resource.as_str(), verb.as_str())),
            "unexpected request: {group}/{resource} {verb}; all: {used:?}"
        );
    }
    assert!(
        !used
            .iter()
            .any(|(_, resource, verb)| verb == "delete"
                || (verb == "update" && resource != "leases")),
        "{used:?}"
    );
    Ok(())
}

/// Without the CRD the caches never sync: /readyz says so, the watch failure is retried, and
/// shutdown is still prompt (kube's Controller alone would wait for its cache forever).
/// One multi-recipient (age) value for the test keys `clusters`, strict-bound to
/// `namespace/name`, base64 as in `encryptedData`.
fn multi_recipient_value(clusters: &[usize], namespace: &str, name: &str, value: &str) -> String {
    let mut recipients = sealbox_crypto::Recipients::new();
    for &key in clusters {
        recipients.add_rsa(pair(key).certificate.public_key().clone());
    }
    let binding = sealbox_crypto::Binding::new(sealbox_crypto::Scope::Strict, namespace, name)
        .expect("binding");
    STANDARD.encode(
        sealbox_crypto::age_value::seal(&recipients, &binding, value.as_bytes()).expect("seal"),
    )
}

/// Issue 18: two clusters (two API doubles, controllers holding keys 0 and 1) unseal the same
/// multi-recipient file, A's copy mixing in a Bitnami value; the file moved to another name or
/// namespace is refused by both, with status, event and metric as for a Bitnami value, and no
/// Secret written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_unseal_one_multi_recipient_file() -> TestResult {
    let clusters = [
        Harness::start(Kind::Double, &[0], &[]).await?,
        Harness::start(Kind::Double, &[1], &[]).await?,
    ];
    let shared = multi_recipient_value(&[0, 1], NS, "db", "hunter2");
    for (index, h) in clusters.iter().enumerate() {
        // Cluster A's copy mixes formats: a Bitnami value only A can open beside the shared one.
        let mut file = if index == 0 {
            sealed_secret(NS, "db", 0, &[("bitnami", "for A")])
        } else {
            SealedSecret::new("db", SealedSecretSpec::default())
        };
        file.metadata.namespace = Some(NS.into());
        file.spec
            .encrypted_data
            .insert("password".into(), shared.clone());
        h.create(&file).await?;

        for (namespace, name) in [("other", "db"), (NS, "db-copy")] {
            let mut moved = SealedSecret::new(name, SealedSecretSpec::default());
            moved.metadata.namespace = Some(namespace.into());
            moved.spec.encrypted_data = map(&[("password", &shared)]);
            h.create(&moved).await?;
        }
    }
    for (index, h) in clusters.iter().enumerate() {
        let expected = if index == 0 {
            map(&[("bitnami", "for A"), ("password", "hunter2")])
        } else {
            map(&[("password", "hunter2")])
        };
        let secret = h.secret_where(NS, "db", |_| true).await?;
        assert_eq!(secret_data(&secret), expected, "cluster {index}");
        h.synced(NS, "db", "True").await?;
        h.wait_event(NS, "db", "Unsealed").await?;

        for (namespace, name) in [("other", "db"), (NS, "db-copy")] {
            let message = h.failure_message(namespace, name).await?;
            assert!(
                message.contains("password") && message.contains("sealed for strict \"app/db\""),
                "cluster {index}, {namespace}/{name}: {message}"
            );
            h.wait_event(namespace, name, "ErrUnsealFailed").await?;
            assert!(
                h.secrets(namespace).get_opt(name).await?.is_none(),
                "cluster {index}: {namespace}/{name} was written"
            );
        }
        let metrics = h.running().metrics().encode().unwrap_or_default();
        assert!(
            metrics.contains("sealed_secrets_controller_unseal_errors_total{reason=\"unseal\",namespace=\"other\"}"),
            "cluster {index}: {metrics}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_prompt_even_when_the_crd_is_missing() -> TestResult {
    init_logs();
    let server = ApiServer::new();
    let running = start_controller(&server, &[]).await?;
    until("a generated key", || running.keys().is_ready()).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!running.is_ready());
    assert_eq!(http_get(running.local_addr(), "/readyz").await?.0, 503);
    tokio::time::timeout(Duration::from_secs(5), running.shutdown()).await??;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Key trust

/// A key pair newer than every test key: loaded, it would become the sealing key.
fn attacker_pair() -> &'static sealbox_crypto::KeyPair {
    static PAIR: std::sync::OnceLock<sealbox_crypto::KeyPair> = std::sync::OnceLock::new();
    PAIR.get_or_init(|| {
        let later = std::time::SystemTime::now() + Duration::from_secs(3600);
        sealbox_crypto::KeyPair::generate_with_bits(2048, "attacker", later).expect("key")
    })
}

/// Asserts the controller still seals with test key 0 only: /v1/cert.pem serves its certificate
/// and /v1/rotate re-seals a value for it.
async fn still_sealing_with_key_0(h: &Harness) -> TestResult {
    let keys = h.running().keys().snapshot().fingerprints();
    assert_eq!(keys, vec![pair(0).fingerprint().clone()], "loaded keys");
    let addr = h.running().local_addr();
    let (code, cert) = http_get(addr, "/v1/cert.pem").await?;
    assert_eq!(code, 200);
    assert_eq!(cert.trim(), pair(0).certificate.to_pem().trim());

    let victim = sealed_secret(NS, "victim", 0, &[("password", "victim-plaintext")]);
    let body = serde_json::to_string(&victim)?;
    let (code, rotated) = support::http(addr, "POST", "/v1/rotate", &body).await?;
    assert_eq!(code, 200, "{rotated}");
    let rotated: serde_json::Value = serde_json::from_str(&rotated)?;
    assert_eq!(
        rotated["metadata"]["annotations"][SEALING_KEY_ANNOTATION],
        pair(0).fingerprint().to_string()
    );
    let value = rotated["spec"]["encryptedData"]["password"]
        .as_str()
        .ok_or("rotated value")?;
    let ciphertext = STANDARD.decode(value)?;
    let attacker = sealbox_crypto::unseal(&attacker_pair().private_key, &ciphertext, b"app/victim");
    assert!(attacker.is_err(), "re-sealed for the attacker's key");
    let plaintext = sealbox_crypto::unseal(&pair(0).private_key, &ciphertext, b"app/victim")?;
    assert_eq!(plaintext.as_slice(), b"victim-plaintext");
    Ok(())
}

/// Finding 3 of issue 12: a tenant who may create SealedSecrets in the controller's namespace
/// seals an attacker's key (for the controller's own certificate: anyone can) with a template
/// that labels the output as an active sealing key. The controller refuses to unseal it
/// (Synced=False, ErrUnsealFailed, no Secret), /v1/cert.pem keeps serving the real certificate and
/// /v1/rotate keeps re-sealing to the real key. The legacy key name is refused the same way.
async fn key_injection_through_a_sealed_secret_is_refused(kind: Kind) -> TestResult {
    let h = Harness::start(kind, &[0], &[]).await?;
    until("keys", || h.running().keys().is_ready()).await?;
    let attacker = attacker_pair();
    let tls_key = attacker.private_key.to_pkcs1_pem();
    let tls_crt = attacker.certificate.to_pem();
    let values = [("tls.key", tls_key.as_str()), ("tls.crt", tls_crt.as_str())];

    let mut labelled = sealed_secret(CONTROLLER_NS, "innocent", 0, &values);
    let mut injected = template(&[(KEY_LABEL, "active"), ("app", "web")], &[]);
    injected.type_ = Some("kubernetes.io/tls".into());
    labelled.spec.template = Some(injected.clone());
    h.create(&labelled).await?;

    // The label with another value is refused too: it takes one relabel to activate it.
    let mut retired = sealed_secret(CONTROLLER_NS, "retired", 0, &values);
    let mut retired_template = template(&[(KEY_LABEL, "compromised")], &[]);
    retired_template.type_ = Some("kubernetes.io/tls".into());
    retired.spec.template = Some(retired_template);
    h.create(&retired).await?;

    // The legacy key Secret is loaded whatever its labels.
    let mut legacy = sealed_secret(CONTROLLER_NS, "sealed-secrets-key", 0, &values);
    legacy.spec.template = Some(SecretTemplateSpec {
        type_: Some("kubernetes.io/tls".into()),
        ..SecretTemplateSpec::default()
    });
    h.create(&legacy).await?;

    // A SealedSecret elsewhere with the legacy name is an ordinary one.
    h.create(&sealed_secret(NS, "sealed-secrets-key", 0, &[("a", "1")]))
        .await?;
    h.synced(NS, "sealed-secrets-key", "True").await?;

    for name in ["innocent", "retired", "sealed-secrets-key"] {
        let message = h.failure_message(CONTROLLER_NS, name).await?;
        assert!(message.contains("sealing key"), "{name}: {message}");
        assert!(!message.contains("BEGIN"), "{name}: {message}");
        let event = h.wait_event(CONTROLLER_NS, name, "ErrUnsealFailed").await?;
        assert_eq!(event.type_.as_deref(), Some("Warning"));
        assert!(
            h.secrets(CONTROLLER_NS).get_opt(name).await?.is_none(),
            "Secret {name} was written"
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    still_sealing_with_key_0(&h).await?;
    for name in ["innocent", "retired", "sealed-secrets-key"] {
        assert!(h.secrets(CONTROLLER_NS).get_opt(name).await?.is_none());
    }
    Ok(())
}

/// The registry side of key trust: Secrets a SealedSecret produced (ownerReference to a
/// SealedSecret, or a SealedSecret's hand-over annotations) are never loaded as keys, even when
/// they carry the active label or the legacy name (written by Bitnami's controller or by an
/// earlier Sealbox). The controller's own and an operator's key Secrets still are.
async fn secrets_from_sealed_secrets_are_never_loaded_as_keys(kind: Kind) -> TestResult {
    let h = Harness::without_controller(kind, &[0]).await?;
    let owner = json!([{
        "apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
        "name": "innocent", "uid": "3f1c5f4e-0000-4000-8000-000000000001", "controller": true
    }]);
    let mut owned = support::key_secret(attacker_pair(), "innocent");
    owned.metadata.owner_references = Some(serde_json::from_value(owner.clone())?);
    let mut legacy = support::key_secret(attacker_pair(), "sealed-secrets-key");
    legacy.metadata.owner_references = Some(serde_json::from_value(owner)?);
    // skip-set-owner-references: no owner, but the template's annotation is on the Secret.
    let mut unowned = support::key_secret(attacker_pair(), "unowned");
    unowned.metadata.annotations = Some(map(&[(SKIP_SET_OWNER_REFERENCES_ANNOTATION, "true")]));
    for secret in [owned, legacy, unowned] {
        h.secrets(CONTROLLER_NS)
            .create(&PostParams::default(), &secret)
            .await?;
    }
    let h = h.with_controller(&[]).await?;
    until("keys", || h.running().keys().is_ready()).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    still_sealing_with_key_0(&h).await?;

    // Added while running: the same.
    let mut managed = support::key_secret(attacker_pair(), "managed");
    managed.metadata.annotations = Some(map(&[(MANAGED_ANNOTATION, "true")]));
    h.secrets(CONTROLLER_NS)
        .create(&PostParams::default(), &managed)
        .await?;
    // An operator's key is still loaded, so the watch has seen what came before it.
    h.secrets(CONTROLLER_NS)
        .create(&PostParams::default(), &test_key_secret(1))
        .await?;
    until("the operator's key", || {
        h.running().keys().snapshot().len() == 2
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let keys = h.running().keys().snapshot().fingerprints();
    assert_eq!(
        keys,
        vec![pair(0).fingerprint().clone(), pair(1).fingerprint().clone()]
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Bounds

/// Huge SealedSecrets fail alone with bounded reports: 2,000 encryptedData keys with 1-byte
/// values, and keys with 10 KB names, each get a status message and an event note of at most
/// 1 KiB that still names failing keys and counts the rest; another SealedSecret syncs meanwhile.
async fn huge_sealed_secrets_fail_alone_with_bounded_reports(kind: Kind) -> TestResult {
    const MAX_MESSAGE: usize = 1024;
    let h = Harness::start(kind, &[0], &[]).await?;

    let mut many = sealed_secret(NS, "many-keys", 0, &[]);
    many.spec.encrypted_data = (0..2000)
        .map(|i| (format!("key-{i:04}"), "A".into()))
        .collect();
    h.create(&many).await?;
    let mut long = sealed_secret(NS, "long-names", 0, &[]);
    long.spec.encrypted_data = (0..5)
        .map(|i| (format!("{i}{}", "n".repeat(10_000)), "A".into()))
        .collect();
    h.create(&long).await?;
    h.create(&sealed_secret(NS, "fine", 0, &[("ok", "yes")]))
        .await?;

    for (name, shown) in [
        ("many-keys", "encryptedData[\"key-0000\"]"),
        ("long-names", "nnnn"),
    ] {
        let message = h.failure_message(NS, name).await?;
        assert!(
            message.len() <= MAX_MESSAGE,
            "{name}: {} bytes",
            message.len()
        );
        assert!(message.starts_with("failed to unseal: "), "{message}");
        assert!(message.contains(shown), "{message}");
        assert!(message.contains("invalid base64"), "{message}");
        let event = h.wait_event(NS, name, "ErrUnsealFailed").await?;
        let note = event.note.unwrap_or_default();
        assert!(
            note.len() <= MAX_MESSAGE,
            "{name}: note of {} bytes",
            note.len()
        );
        assert!(h.secrets(NS).get_opt(name).await?.is_none());
    }
    let message = h.failure_message(NS, "many-keys").await?;
    let shown = message.matches("encryptedData[").count();
    assert!(
        message.ends_with(&format!(" and {} more", 2000 - shown)),
        "{message}"
    );

    let secret = h.secret_where(NS, "fine", |_| true).await?;
    assert_eq!(secret_data(&secret), map(&[("ok", "yes")]));
    h.synced(NS, "fine", "True").await?;
    Ok(())
}

/// Key trust on takeovers: a Secret carrying the key label (here a retired key handed over with
/// `patch` and `managed`) is never written by a SealedSecret, so its data cannot be swapped for
/// an attacker's key and its label cannot be flipped back to active by a later template.
async fn a_labelled_secret_is_never_taken_over(kind: Kind) -> TestResult {
    let h = Harness::without_controller(kind, &[0]).await?;
    let mut retired = test_key_secret(1);
    retired.metadata.name = Some("retired".into());
    retired.metadata.labels = Some(map(&[(KEY_LABEL, "retired")]));
    retired.metadata.annotations = Some(map(&[
        (PATCH_ANNOTATION, "true"),
        (MANAGED_ANNOTATION, "true"),
    ]));
    h.secrets(CONTROLLER_NS)
        .create(&PostParams::default(), &retired)
        .await?;
    let h = h.with_controller(&[]).await?;

    let tls_key = attacker_pair().private_key.to_pkcs1_pem();
    let mut takeover = sealed_secret(CONTROLLER_NS, "retired", 0, &[("tls.key", &tls_key)]);
    takeover.spec.template = Some(SecretTemplateSpec {
        type_: Some("kubernetes.io/tls".into()),
        ..SecretTemplateSpec::default()
    });
    h.create(&takeover).await?;
    let message = h.failure_message(CONTROLLER_NS, "retired").await?;
    assert!(message.contains("sealing key"), "{message}");
    assert_eq!(h.secret_writes(CONTROLLER_NS, "retired"), 0);
    let stored = h.secrets(CONTROLLER_NS).get("retired").await?;
    assert_eq!(stored.data, test_key_secret(1).data);
    still_sealing_with_key_0(&h).await?;
    Ok(())
}

/// Hostile templates (issue 12, finding 1): each attack the review found — unbounded recursion
/// through `define`, a thousand nested parentheses, huge `printf` widths, nested `repeat`,
/// nested ranges — fails its own SealedSecret with a bounded message, through the watch and
/// through `/v1/verify`, while the controller keeps serving and a good SealedSecret beside them
/// syncs. On gtmpl the first two aborted the whole process (stack overflow).
async fn hostile_templates_fail_alone(kind: Kind) -> TestResult {
    let h = Harness::start(kind, &[0], &["--rate-limit=0"]).await?;
    let nested_parentheses = format!("{{{{ {}.x{} }}}}", "(".repeat(1000), ")".repeat(1000));
    let attacks = [
        (
            "recursion",
            r#"{{ define "loop" }}{{ template "loop" . }}{{ end }}{{ template "loop" . }}"#
                .to_owned(),
        ),
        ("parentheses", nested_parentheses),
        ("printf", r#"{{ printf "%99999999s" .x }}"#.to_owned()),
        (
            "repeat",
            "{{ repeat 1000000 (repeat 1000000 (repeat 1000000 .x)) }}".to_owned(),
        ),
        (
            "ranges",
            "{{ range . }}{{ range . }}{{ range . }}{{ range . }}{{ range . }}{{ range . }}\
             {{ range . }}{{ range . }}x{{ end }}{{ end }}{{ end }}{{ end }}{{ end }}{{ end }}\
             {{ end }}{{ end }}"
                .to_owned(),
        ),
    ];
    let values: Vec<(String, String)> = (0..12).map(|i| (format!("k{i}"), "v".into())).collect();
    let mut values: Vec<(&str, &str)> = values
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    values.push(("x", "hello"));
    // /v1/verify needs the sealing key, which the controller loads through its watch after start.
    let addr = h.running().local_addr();
    sealbox_tests::fixtures::Wait::new(WAIT, Duration::from_millis(100))
        .until_found("the controller to serve its certificate", || async move {
            Ok((http_get(addr, "/v1/cert.pem").await?.0 == 200).then_some(()))
        })
        .await?;
    for (name, text) in &attacks {
        let mut sealed = sealed_secret(NS, name, 0, &values);
        sealed.spec.template = Some(SecretTemplateSpec {
            data: Some(map(&[("out", text)])),
            ..SecretTemplateSpec::default()
        });
        h.create(&sealed).await?;

        let body = serde_json::to_string(&sealed)?;
        let (code, answer) =
            support::http(h.running().local_addr(), "POST", "/v1/verify", &body).await?;
        assert_eq!(code, 409, "{name}: {answer}");
        assert!(answer.len() <= 1024, "{name}: {} bytes", answer.len());
    }
    h.create(&sealed_secret(NS, "fine", 0, &[("ok", "yes")]))
        .await?;
    let secret = h.secret_where(NS, "fine", |_| true).await?;
    assert_eq!(secret_data(&secret), map(&[("ok", "yes")]));

    for (name, _) in &attacks {
        let message = h.failure_message(NS, name).await?;
        assert!(message.len() <= 1024, "{name}: {} bytes", message.len());
        assert!(message.contains("out"), "{name}: {message}");
        assert!(!message.contains("hello"), "{name}: {message}");
        assert!(h.secrets(NS).get_opt(name).await?.is_none(), "{name}");
    }
    assert_eq!(http_get(h.running().local_addr(), "/healthz").await?.0, 200);
    Ok(())
}

/// How long the garbage collector may take. The real one (kube-controller-manager's) watches a
/// new resource type such as SealedSecrets only after its next discovery, every 30 s, and a
/// loaded machine is slower still; the double's collects at once.
const GC_WAIT: Duration = Duration::from_secs(120);

/// The garbage collector (the double's, or kube-controller-manager's on the real plane) deletes
/// the Secret of a deleted SealedSecret through the controller's ownerReference; a Secret the
/// SealedSecret only merged into (annotated `patch`, no owner) stays.
async fn s16_garbage_collector_deletes_the_secret_of_a_deleted_sealed_secret(
    kind: Kind,
) -> TestResult {
    let h = Harness::start(kind, &[0], &[]).await?;
    h.secrets(NS)
        .create(
            &PostParams::default(),
            &plain_secret(
                "merged",
                &[(PATCH_ANNOTATION, "true")],
                &[],
                &[("theirs", "x")],
            ),
        )
        .await?;
    h.create(&sealed_secret(NS, "owned", 0, &[("a", "1")]))
        .await?;
    h.create(&sealed_secret(NS, "merged", 0, &[("a", "2")]))
        .await?;
    let owned = h.secret_where(NS, "owned", |_| true).await?;
    assert!(owner_uid(&owned).is_some());
    h.secret_where(NS, "merged", |s| {
        secret_data(s) == map(&[("a", "2"), ("theirs", "x")])
    })
    .await?;
    h.synced(NS, "merged", "True").await?;

    for name in ["owned", "merged"] {
        h.sealed(NS).delete(name, &DeleteParams::default()).await?;
    }
    let deadline = tokio::time::Instant::now() + GC_WAIT;
    while h.secrets(NS).get_opt("owned").await?.is_some() {
        if tokio::time::Instant::now() >= deadline {
            return Err(
                format!("the owned Secret outlived its SealedSecret by {GC_WAIT:?}").into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let merged = h.secrets(NS).get("merged").await?;
    assert_eq!(secret_data(&merged), map(&[("a", "2"), ("theirs", "x")]));
    Ok(())
}

/// The status code of a failed request, or 0 when it succeeded.
fn code<T>(result: &Result<T, kube::Error>) -> u16 {
    match result {
        Ok(_) => 0,
        Err(kube::Error::Api(status)) => status.code,
        Err(_) => 1,
    }
}

/// What the controller relies on from the API server, asked of both backends alike (no
/// controller runs): the double must answer as the real API server does.
async fn api_answers_the_controller_relies_on(kind: Kind) -> TestResult {
    let h = Harness::without_controller(kind, &[]).await?;
    let post = PostParams::default();
    let sealed = h.sealed(NS);

    // The CRD's schema refuses a value of the wrong type (422), with no object stored.
    let wrong: SealedSecret = serde_json::from_value(json!({
        "apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
        "metadata": { "name": "wrong", "namespace": NS },
        "spec": { "encryptedData": {} },
    }))?;
    let mut wrong_json = serde_json::to_value(&wrong)?;
    wrong_json["spec"]["encryptedData"] = json!({ "password": 42 });
    let dynamic: Api<kube::api::DynamicObject> = Api::namespaced_with(
        h.client.clone(),
        NS,
        &kube::api::ApiResource::erase::<SealedSecret>(&()),
    );
    let refused = dynamic
        .create(&post, &serde_json::from_value(wrong_json)?)
        .await;
    assert_eq!(code(&refused), 422, "{refused:?}");
    assert!(sealed.get_opt("wrong").await?.is_none());

    // A namespace in the body that is not the one in the path: 400.
    let elsewhere = sealed_secret("other", "moved", 0, &[("a", "1")]);
    let mismatched = sealed.create(&post, &elsewhere).await;
    assert_eq!(code(&mismatched), 400, "{mismatched:?}");

    // generation: 1 on create, unchanged by metadata, bumped by spec.
    let created = h.create(&sealed_secret(NS, "db", 0, &[("a", "1")])).await?;
    assert_eq!(created.metadata.generation, Some(1));
    let labelled = sealed
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { "x": "y" } } })),
        )
        .await?;
    assert_eq!(labelled.metadata.generation, Some(1));
    let respec = sealed
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "encryptedData": { "b": "AgA=" } } })),
        )
        .await?;
    assert_eq!(respec.metadata.generation, Some(2));

    // The status subresource writes only status; the main resource ignores status.
    let status = json!({ "status": { "observedGeneration": 2 }, "spec": { "encryptedData": {} } });
    let after_status = sealed
        .patch_status("db", &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    assert_eq!(
        after_status
            .status
            .as_ref()
            .and_then(|s| s.observed_generation),
        Some(2)
    );
    assert_eq!(after_status.spec.encrypted_data.len(), 2, "spec untouched");
    assert_eq!(after_status.metadata.generation, Some(2));
    let main = json!({ "status": { "observedGeneration": 7 } });
    let after_main = sealed
        .patch("db", &PatchParams::default(), &Patch::Merge(&main))
        .await?;
    assert_eq!(
        after_main
            .status
            .as_ref()
            .and_then(|s| s.observed_generation),
        Some(2),
        "status untouched"
    );

    // Secrets: stringData lands in data; type defaults to Opaque; immutable refuses changes.
    let secrets = h.secrets(NS);
    let mut plain = plain_secret("plain", &[], &[], &[]);
    plain.string_data = Some(map(&[("k", "v")]));
    plain.immutable = Some(true);
    let stored = secrets.create(&post, &plain).await?;
    assert_eq!(secret_data(&stored), map(&[("k", "v")]));
    assert_eq!(stored.string_data, None);
    assert_eq!(stored.type_.as_deref(), Some("Opaque"));
    let changed = secrets
        .patch(
            "plain",
            &PatchParams::default(),
            &Patch::Merge(json!({ "data": { "k": "dw==" } })),
        )
        .await;
    assert_eq!(code(&changed), 422, "{changed:?}");

    // Server-side apply by two managers of one field conflicts (409) unless forced.
    let config = |value: &str| {
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": "shared", "namespace": NS },
            "data": { "k": STANDARD.encode(value) },
        })
    };
    secrets
        .patch(
            "shared",
            &PatchParams::apply("first"),
            &Patch::Apply(config("1")),
        )
        .await?;
    let conflict = secrets
        .patch(
            "shared",
            &PatchParams::apply("second"),
            &Patch::Apply(config("2")),
        )
        .await;
    assert_eq!(code(&conflict), 409, "{conflict:?}");
    secrets
        .patch(
            "shared",
            &PatchParams::apply("second").force(),
            &Patch::Apply(config("2")),
        )
        .await?;

    // Missing objects: 404 on get, replace and patch alike.
    let missing = secrets.get("missing").await;
    assert_eq!(code(&missing), 404);
    let patch_missing = secrets
        .patch("missing", &PatchParams::default(), &Patch::Merge(json!({})))
        .await;
    assert_eq!(code(&patch_missing), 404);
    Ok(())
}

both_backends!(
    s01_new_sealed_secret_becomes_a_secret,
    s02_updated_value_updates_the_secret,
    s03_renamed_and_appended_keys,
    s04_managed_secret_is_taken_over,
    s05_managed_and_patch_merges_and_takes_ownership,
    s06_patch_merges_without_owner,
    s07_foreign_secret_is_refused,
    s08_drift_is_corrected_for_owned_secrets_only,
    s09_missing_key_then_key_added_without_restart,
    s10_custom_type_and_immutable_secrets,
    s11_scopes_bind_values_to_names_and_namespaces,
    s12_template_data,
    s13_malformed_sealed_secrets_fail_alone,
    s14_key_generation_reuse_renewal_and_cutoff,
    s15_converges_under_faults_without_duplicate_writes,
    s16_garbage_collector_deletes_the_secret_of_a_deleted_sealed_secret,
    api_answers_the_controller_relies_on,
    private_key_operations_with_and_without_hint,
    key_injection_through_a_sealed_secret_is_refused,
    secrets_from_sealed_secrets_are_never_loaded_as_keys,
    huge_sealed_secrets_fail_alone_with_bounded_reports,
    a_labelled_secret_is_never_taken_over,
    hostile_templates_fail_alone,
);
