//! RBAC coverage: the rules deploy/kustomize/base grants the controller's ServiceAccount are
//! exactly what the controller needs.
//!
//! One representative run of the real controller (`sealbox_controller::start`) against the API
//! double: first key generated; SealedSecrets created, updated, drifted (deleted and edited),
//! taken over (`managed`), merged (`patch`), refused (foreign Secret), failing to unseal until a
//! key is added, without an ownerReference; repeated events; status; the HTTP API on leader and
//! follower; a leader-election failover between two replicas; key renewal. Every API request
//! the controller made is in the double's request log as a (group, resource, verb); the rules
//! are read from the kustomize base and bound the way the API server binds them. The test
//! fails when a request is not granted (the controller would be forbidden in a cluster) or a
//! granted verb is never needed (more privilege than the controller uses), naming each one.
//!
//! The test's own writes and reads go straight to the double's store (`put`, `get_object`, …),
//! which bypasses the request log: only the controller's requests are counted.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::extract::Request;
use axum::http;
use axum::middleware::{self, Next};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::core::GroupVersionResource;
use kube::{Client, ResourceExt as _};
use sealbox_controller::Running;
use sealbox_crds::{
    MANAGED_ANNOTATION, PATCH_ANNOTATION, SKIP_SET_OWNER_REFERENCES_ANNOTATION, SealedSecret,
};
use sealbox_crypto::key_secret::KEY_LABEL;
use sealbox_crypto::{Certificate, KeyPair};
use sealbox_tests::{ApiServer, RequestRecord};
use serde::Deserialize as _;
use serde_json::{Value, json};
use support::{
    CONTROLLER_NS, NS, TestResult, http, http_get, map, secret_data, template, until, until_some,
};

// ---------------------------------------------------------------------------------------------
// The shipped rules

/// One verb on one resource, granted by one role.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Grant {
    /// `ClusterRole secrets-unsealer` or `Role kube-system/sealed-secrets-key-admin`.
    role: String,
    /// The namespace a Role applies in; `None` for a ClusterRole bound cluster-wide.
    namespace: Option<String>,
    group: String,
    resource: String,
    verb: String,
    /// `resourceNames`, empty when the rule is not limited to named objects.
    names: Vec<String>,
}

impl Grant {
    fn triple(&self) -> (&str, &str, &str) {
        (&self.group, &self.resource, &self.verb)
    }

    fn grants(&self, need: &Need) -> bool {
        self.triple() == need.triple()
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| need.namespace.as_ref() == Some(ns))
            && (self.names.is_empty() || need.name.as_ref().is_some_and(|n| self.names.contains(n)))
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} {}",
            self.role,
            group_resource(&self.group, &self.resource),
            self.verb
        )?;
        if !self.names.is_empty() {
            write!(f, " (resourceNames {:?})", self.names)?;
        }
        Ok(())
    }
}

fn group_resource(group: &str, resource: &str) -> String {
    if group.is_empty() {
        format!("core/{resource}")
    } else {
        format!("{group}/{resource}")
    }
}

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kustomize/base")
}

/// Every YAML document of the files the kustomization lists (directories, such as the CRD
/// base, hold no RBAC and are skipped), with the kustomization's `namespace:` applied.
fn kustomize_documents(dir: &Path) -> TestResult<(Vec<Value>, Option<String>)> {
    let kustomization: Value = parse_yaml_documents(&dir.join("kustomization.yaml"))?
        .into_iter()
        .next()
        .ok_or("empty kustomization.yaml")?;
    let namespace = kustomization["namespace"].as_str().map(str::to_owned);
    let mut documents = Vec::new();
    for resource in kustomization["resources"]
        .as_array()
        .ok_or("kustomization.yaml has no resources")?
    {
        let path = dir.join(resource.as_str().ok_or("a resource is not a string")?);
        if path.is_dir() {
            continue;
        }
        for mut document in parse_yaml_documents(&path)? {
            if let (Some(ns), Some(kind)) = (&namespace, document["kind"].as_str())
                && !matches!(kind, "ClusterRole" | "ClusterRoleBinding")
            {
                document["metadata"]["namespace"] = json!(ns);
            }
            documents.push(document);
        }
    }
    Ok((documents, namespace))
}

fn parse_yaml_documents(path: &Path) -> TestResult<Vec<Value>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut documents = Vec::new();
    for document in serde_norway::Deserializer::from_str(&text) {
        let value = Value::deserialize(document).map_err(|e| format!("{}: {e}", path.display()))?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// What the base grants the controller's ServiceAccount: the rules of every role a binding
/// names with that ServiceAccount as a subject. ClusterRoles bound by a ClusterRoleBinding
/// apply everywhere, roles bound by a RoleBinding only in the binding's namespace.
fn controller_grants() -> TestResult<(Vec<Grant>, String)> {
    let (documents, kustomize_ns) = kustomize_documents(&deploy_dir())?;
    let service_account = documents
        .iter()
        .find(|d| d["kind"] == "ServiceAccount")
        .ok_or("no ServiceAccount in the kustomize base")?;
    let sa_name = service_account["metadata"]["name"]
        .as_str()
        .ok_or("the ServiceAccount has no name")?
        .to_owned();
    let sa_namespace = service_account["metadata"]["namespace"]
        .as_str()
        .map(str::to_owned)
        .or(kustomize_ns)
        .ok_or("the ServiceAccount has no namespace")?;

    let role = |kind: &str, name: &str, namespace: Option<&str>| {
        documents.iter().find(|d| {
            d["kind"] == kind
                && d["metadata"]["name"] == name
                && (kind == "ClusterRole" || d["metadata"]["namespace"].as_str() == namespace)
        })
    };
    let mut grants = Vec::new();
    for binding in documents.iter().filter(|d| {
        matches!(
            d["kind"].as_str(),
            Some("ClusterRoleBinding" | "RoleBinding")
        )
    }) {
        let is_ours = binding["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| {
                s["kind"] == "ServiceAccount"
                    && s["name"] == sa_name.as_str()
                    && s["namespace"].as_str().unwrap_or(&sa_namespace) == sa_namespace
            });
        if !is_ours {
            continue;
        }
        let binding_ns = binding["metadata"]["namespace"].as_str();
        let scope = match binding["kind"].as_str() {
            Some("RoleBinding") => Some(
                binding_ns
                    .ok_or("a RoleBinding without namespace")?
                    .to_owned(),
            ),
            _ => None,
        };
        let ref_kind = binding["roleRef"]["kind"].as_str().unwrap_or_default();
        let ref_name = binding["roleRef"]["name"].as_str().unwrap_or_default();
        let role = role(ref_kind, ref_name, binding_ns).ok_or_else(|| {
            format!(
                "binding {} names {ref_kind} {ref_name}, which the base lacks",
                binding["metadata"]["name"]
            )
        })?;
        let label = match (&scope, ref_kind) {
            (Some(ns), "Role") => format!("Role {ns}/{ref_name}"),
            (Some(ns), _) => format!("ClusterRole {ref_name} (bound in {ns})"),
            (None, _) => format!("ClusterRole {ref_name}"),
        };
        for rule in role["rules"].as_array().into_iter().flatten() {
            if rule.get("nonResourceURLs").is_some() {
                return Err(format!(
                    "{label} grants nonResourceURLs, which the controller never needs"
                )
                .into());
            }
            let names = strings(&rule["resourceNames"]);
            for group in strings(&rule["apiGroups"]) {
                for resource in strings(&rule["resources"]) {
                    for verb in strings(&rule["verbs"]) {
                        if [&group, &resource, &verb].iter().any(|s| s.contains('*')) {
                            return Err(format!(
                                "{label} grants a wildcard ({group:?}, {resource:?}, {verb:?}): \
                                 name the verbs the controller uses"
                            )
                            .into());
                        }
                        grants.push(Grant {
                            role: label.clone(),
                            namespace: scope.clone(),
                            group: group.clone(),
                            resource: resource.clone(),
                            verb,
                            names: names.clone(),
                        });
                    }
                }
            }
        }
    }
    grants.sort();
    grants.dedup();
    Ok((grants, sa_namespace))
}

// ---------------------------------------------------------------------------------------------
// What the controller needed

/// One authorization the API server would make for the controller.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Need {
    group: String,
    resource: String,
    verb: String,
    namespace: Option<String>,
    name: Option<String>,
    /// The request, e.g. `PATCH /api/v1/namespaces/app/secrets/db`, and why when it is not
    /// the request's own verb.
    example: String,
}

impl Need {
    fn triple(&self) -> (&str, &str, &str) {
        (&self.group, &self.resource, &self.verb)
    }

    fn from_record(record: &RequestRecord) -> Need {
        Need {
            group: record.group.clone(),
            resource: record.resource.clone(),
            verb: record.verb.clone(),
            namespace: record.namespace.clone(),
            name: record.name.clone(),
            example: format!("{} {}", record.method, record.path),
        }
    }
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            group_resource(&self.group, &self.resource),
            self.verb
        )?;
        match &self.namespace {
            Some(ns) => write!(f, " in namespace {ns}")?,
            None => write!(f, " in all namespaces")?,
        }
        write!(f, " (e.g. {})", self.example)
    }
}

/// Server-side apply requests that created their object. The API server authorizes such a
/// request as `patch` and, because it creates, also as `create` (the apply handler checks
/// `create` before creating); the double's log only shows the `patch`.
#[derive(Clone, Debug, Default)]
struct ApplyCreates(Arc<Mutex<Vec<Need>>>);

impl ApplyCreates {
    fn take(&self) -> Vec<Need> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// `/api/v1/namespaces/<ns>/<resource>/<name>` or
/// `/apis/<group>/<version>/namespaces/<ns>/<resource>/<name>`: (gvr, namespace, name).
fn named_object_path(path: &str) -> Option<(GroupVersionResource, String, String)> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["api", version, "namespaces", ns, resource, name] => Some((
            GroupVersionResource::gvr("", version, resource),
            (*ns).to_owned(),
            (*name).to_owned(),
        )),
        ["apis", group, version, "namespaces", ns, resource, name] => Some((
            GroupVersionResource::gvr(group, version, resource),
            (*ns).to_owned(),
            (*name).to_owned(),
        )),
        _ => None,
    }
}

/// A client for the controller that notes each server-side apply creating its object.
fn recording_client(server: &ApiServer, creates: &ApplyCreates) -> Client {
    let server_for_layer = server.clone();
    let creates = creates.clone();
    let layer = middleware::from_fn(move |request: Request, next: Next| {
        let server = server_for_layer.clone();
        let creates = creates.clone();
        async move {
            let is_apply = request.method() == http::Method::PATCH
                && request
                    .headers()
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("application/apply-patch"));
            let creating = if is_apply {
                named_object_path(request.uri().path())
                    .filter(|(gvr, ns, name)| server.get_object(gvr, Some(ns), name).is_none())
            } else {
                None
            };
            let path = request.uri().path().to_owned();
            let response = next.run(request).await;
            if let Some((gvr, ns, name)) = creating
                && response.status().is_success()
                && let Ok(mut creates) = creates.0.lock()
            {
                creates.push(Need {
                    group: gvr.group,
                    resource: gvr.resource,
                    verb: "create".into(),
                    namespace: Some(ns),
                    name: Some(name),
                    example: format!("PATCH {path} (server-side apply creating the object)"),
                });
            }
            response
        }
    });
    Client::new(server.router().layer(layer), "default")
}

// ---------------------------------------------------------------------------------------------
// Allowances: rules that may go unused, and why

/// Why a granted verb may go unused in the run, or `None` if it may not.
fn allowance(grant: &Grant, grants: &[Grant], used: &BTreeMap<Grant, String>) -> Option<String> {
    // `get` next to `list` in the same role: list already discloses every object, and a
    // single-object read (kubectl-style tooling, a future code path) should not be forbidden.
    if grant.verb == "get"
        && grant.names.is_empty()
        && grants.iter().any(|g| {
            g.role == grant.role
                && g.group == grant.group
                && g.resource == grant.resource
                && g.verb == "list"
                && used.contains_key(g)
        })
    {
        return Some("get alongside a used list in the same role".into());
    }
    // Only a warning repeated within six minutes patches its event's series (kube-rs's Recorder
    // cache); the controller itself publishes a warning once until the object changes or
    // succeeds, so a run seldom shows it. Normal events are always created afresh.
    if grant.group == "events.k8s.io" && grant.resource == "events" && grant.verb == "patch" {
        return Some("series of a repeated warning".into());
    }
    None
}

/// The verdict: missing needs, unused grants, and the allowances applied.
#[derive(Debug, Default)]
struct Coverage {
    used_triples: BTreeSet<(String, String, String)>,
    missing: BTreeMap<(String, String, String, Option<String>), Need>,
    /// Each grant a need was attributed to, with an example of the need.
    used_grants: BTreeMap<Grant, String>,
    unused: Vec<Grant>,
    allowed_unused: Vec<(Grant, String)>,
}

/// Compares needs with grants. A need is attributed to the narrowest grants that cover it:
/// Role rules in the controller's namespace before ClusterRole rules. So a ClusterRole verb
/// counts as used only if some request outside what the Roles cover needs it (the key
/// Secrets in the controller's namespace do not justify cluster-wide Secret writes).
fn coverage(needs: &[Need], grants: &[Grant]) -> Coverage {
    let mut result = Coverage::default();
    for need in needs {
        result
            .used_triples
            .insert((need.group.clone(), need.resource.clone(), need.verb.clone()));
        let matching: Vec<&Grant> = grants.iter().filter(|g| g.grants(need)).collect();
        if matching.is_empty() {
            result
                .missing
                .entry((
                    need.group.clone(),
                    need.resource.clone(),
                    need.verb.clone(),
                    need.namespace.clone(),
                ))
                .or_insert_with(|| need.clone());
            continue;
        }
        let narrowest = if matching.iter().any(|g| g.namespace.is_some()) {
            matching
                .into_iter()
                .filter(|g| g.namespace.is_some())
                .collect::<Vec<_>>()
        } else {
            matching
        };
        for grant in narrowest {
            result
                .used_grants
                .entry(grant.clone())
                .or_insert_with(|| need.example.clone());
        }
    }
    for grant in grants {
        if result.used_grants.contains_key(grant) {
            continue;
        }
        match allowance(grant, grants, &result.used_grants) {
            Some(reason) => result.allowed_unused.push((grant.clone(), reason)),
            None => result.unused.push(grant.clone()),
        }
    }
    result
}

impl Coverage {
    fn report(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "requests the controller made, as (group, resource, verb):"
        );
        for (group, resource, verb) in &self.used_triples {
            let _ = writeln!(out, "  {} {verb}", group_resource(group, resource));
        }
        let _ = writeln!(out, "grants needed:");
        for (grant, example) in &self.used_grants {
            let _ = writeln!(out, "  {grant}, e.g. {example}");
        }
        let _ = writeln!(out, "grants unused by allowance:");
        for (grant, reason) in &self.allowed_unused {
            let _ = writeln!(out, "  {grant} — {reason}");
        }
        out
    }

    fn failure(&self) -> Option<String> {
        if self.missing.is_empty() && self.unused.is_empty() {
            return None;
        }
        let mut out = String::from(
            "deploy/kustomize/base does not grant the controller exactly what it uses\n",
        );
        if !self.missing.is_empty() {
            let _ = writeln!(
                out,
                "MISSING: requests the controller made that no rule bound to its ServiceAccount grants \
                 (forbidden in a cluster; add the verb to cluster-role.yaml, or to role.yaml for \
                 the controller's namespace, and to the Helm chart's copy):"
            );
            for need in self.missing.values() {
                let _ = writeln!(out, "  - {need}");
            }
        }
        if !self.unused.is_empty() {
            let _ = writeln!(
                out,
                "UNUSED: granted but never needed in the run (remove the verb here and in the Helm \
                 chart, or document an allowance in controller/tests/rbac.rs):"
            );
            for grant in &self.unused {
                let _ = writeln!(out, "  - {grant}");
            }
        }
        out.push_str(&self.report());
        Some(out)
    }
}

// ---------------------------------------------------------------------------------------------
// The run

/// Starts a controller replica named `identity` (its name in the leader-election Lease).
async fn start_controller(
    server: &ApiServer,
    creates: &ApplyCreates,
    identity: &str,
    args: &[&str],
) -> TestResult<Running> {
    let identity = format!("--leader-elect-identity={identity}");
    let mut argv = vec![
        // As deployed (two replicas), with short periods so a takeover happens quickly.
        "--leader-elect=true",
        identity.as_str(),
        "--leader-elect-lease-duration=2s",
        "--leader-elect-renew-deadline=1s",
        "--leader-elect-retry-period=200ms",
    ];
    argv.extend_from_slice(args);
    let config = support::config(&argv)?;
    Ok(sealbox_controller::start(recording_client(server, creates), &config).await?)
}

fn gvr(group: &str, version: &str, resource: &str) -> GroupVersionResource {
    GroupVersionResource::gvr(group, version, resource)
}

/// A SealedSecret `NS/name` with `values` sealed for `cert` (strict scope).
fn sealed_secret(cert: &Certificate, name: &str, values: &[(&str, &str)]) -> SealedSecret {
    support::sealed_secret(cert, NS, name, values, &[])
}

fn with_template(
    mut sealed: SealedSecret,
    labels: &[(&str, &str)],
    annotations: &[(&str, &str)],
) -> SealedSecret {
    sealed.spec.template = Some(template(labels, annotations));
    sealed
}

/// Someone else's Secret `NS/name` with `data`, labelled.
fn plain_secret(name: &str, annotations: &[(&str, &str)], data: &[(&str, &str)]) -> Secret {
    support::plain_secret(name, annotations, &[("existing", "label")], data)
}

fn key_secrets(server: &ApiServer) -> Vec<Secret> {
    server
        .objects(&gvr("", "v1", "secrets"), Some(CONTROLLER_NS))
        .into_iter()
        .filter_map(|v| serde_json::from_value::<Secret>(v).ok())
        .filter(|s| s.labels().contains_key(KEY_LABEL))
        .collect()
}

fn newest_certificate(server: &ApiServer) -> TestResult<Certificate> {
    let mut certs = key_secrets(server)
        .iter()
        .filter_map(|s| s.data.as_ref()?.get("tls.crt").cloned())
        .map(|crt| Certificate::from_pem(&crt.0))
        .collect::<Result<Vec<_>, _>>()?;
    certs.sort_by_key(Certificate::not_before);
    certs.pop().ok_or_else(|| "no key Secret".into())
}

fn synced(server: &ApiServer, name: &str) -> Option<String> {
    let sealed: SealedSecret = server.get(Some(NS), name)?;
    let condition = sealed.synced_condition()?;
    (sealed.status.as_ref()?.observed_generation == sealed.metadata.generation)
        .then(|| condition.status.clone())
}

async fn wait_synced(server: &ApiServer, name: &str, status: &str) -> TestResult {
    until(&format!("{name} Synced={status}"), || {
        synced(server, name).as_deref() == Some(status)
    })
    .await
}

async fn wait_secret(
    server: &ApiServer,
    name: &str,
    check: impl Fn(&Secret) -> bool,
) -> TestResult<Secret> {
    until_some(&format!("Secret {NS}/{name}"), || {
        server.get::<Secret>(Some(NS), name).filter(|s| check(s))
    })
    .await
}

fn event_count(server: &ApiServer, name: &str, reason: &str) -> i64 {
    server
        .objects(&gvr("events.k8s.io", "v1", "events"), Some(NS))
        .iter()
        .filter(|e| e["regarding"]["name"] == name && e["reason"] == reason)
        .map(|e| 1 + e["series"]["count"].as_i64().unwrap_or(0))
        .sum()
}

fn lease_holders(server: &ApiServer) -> BTreeMap<String, Option<String>> {
    server
        .objects(
            &gvr("coordination.k8s.io", "v1", "leases"),
            Some(CONTROLLER_NS),
        )
        .iter()
        .map(|l| {
            (
                l["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                l["spec"]["holderIdentity"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

/// The scenarios, run once, with every controller stopped at the end.
async fn representative_run(server: &ApiServer, creates: &ApplyCreates) -> TestResult {
    let secrets = gvr("", "v1", "secrets");
    let sealed_gvr = gvr("bitnami.com", "v1alpha1", "sealedsecrets");

    // First start with no key: one is generated and stored as a key Secret.
    let first = start_controller(server, creates, "replica-1", &["--key-renew-period=0"]).await?;
    until("the first key", || first.keys().is_ready()).await?;
    until("readiness", || first.is_ready()).await?;
    // A second replica follows (and later takes over).
    let second = start_controller(server, creates, "replica-2", &["--key-renew-period=0"]).await?;
    until("the second replica's keys", || second.keys().is_ready()).await?;
    let cert = newest_certificate(server)?;

    // New SealedSecret → Secret, status, event Unsealed.
    server.put(&with_template(
        sealed_secret(&cert, "db", &[("password", "one")]),
        &[("app", "web")],
        &[("note", "sealed")],
    ))?;
    let db = wait_secret(server, "db", |s| {
        secret_data(s) == map(&[("password", "one")])
    })
    .await?;
    wait_synced(server, "db", "True").await?;
    until("event Unsealed", || {
        event_count(server, "db", "Unsealed") > 0
    })
    .await?;

    // Update.
    let mut current: SealedSecret = server.get(Some(NS), "db").ok_or("db")?;
    current.spec.encrypted_data = sealed_secret(&cert, "db", &[("password", "two")])
        .spec
        .encrypted_data;
    server.put(&current)?;
    wait_secret(server, "db", |s| {
        secret_data(s) == map(&[("password", "two")])
    })
    .await?;
    // A second Unsealed for the same object: a second event (Normal events bypass the
    // Recorder's cache, so they are not merged into a series).
    until("a repeated Unsealed", || {
        event_count(server, "db", "Unsealed") > 1
    })
    .await?;

    // Drift: deleted → recreated; edited → restored.
    server.delete_object(&secrets, Some(NS), "db");
    let recreated = wait_secret(server, "db", |s| s.uid() != db.uid()).await?;
    let mut edited = recreated.clone();
    edited.data = Some(BTreeMap::from([(
        "password".to_owned(),
        ByteString(b"wrong".to_vec()),
    )]));
    server.put(&edited)?;
    wait_secret(server, "db", |s| {
        secret_data(s) == map(&[("password", "two")])
    })
    .await?;

    // managed → taken over; managed + patch → merged and owned; patch → merged, no owner.
    server.put(&plain_secret(
        "managed",
        &[(MANAGED_ANNOTATION, "true")],
        &[("old", "x")],
    ))?;
    server.put(&plain_secret(
        "managed-patch",
        &[(MANAGED_ANNOTATION, "true"), (PATCH_ANNOTATION, "true")],
        &[("kept", "x")],
    ))?;
    server.put(&plain_secret(
        "patch",
        &[(PATCH_ANNOTATION, "true")],
        &[("kept", "x")],
    ))?;
    for name in ["managed", "managed-patch", "patch"] {
        server.put(&sealed_secret(&cert, name, &[("password", "new")]))?;
    }
    wait_secret(server, "managed", |s| {
        secret_data(s) == map(&[("password", "new")])
    })
    .await?;
    for name in ["managed-patch", "patch"] {
        wait_secret(server, name, |s| {
            secret_data(s) == map(&[("kept", "x"), ("password", "new")])
        })
        .await?;
    }

    // Foreign Secret → refused, status False, ErrUpdateFailed.
    server.put(&plain_secret("foreign", &[], &[("theirs", "x")]))?;
    server.put(&sealed_secret(&cert, "foreign", &[("password", "ours")]))?;
    wait_synced(server, "foreign", "False").await?;
    until("event ErrUpdateFailed", || {
        event_count(server, "foreign", "ErrUpdateFailed") > 0
    })
    .await?;

    // Sealed for a key the controller lacks → ErrUnsealFailed; the key added → unsealed.
    let extra =
        KeyPair::generate_with_bits(2048, "rbac", SystemTime::now() - Duration::from_secs(3600))?;
    server.put(&sealed_secret(
        &extra.certificate,
        "later",
        &[("password", "later")],
    ))?;
    wait_synced(server, "later", "False").await?;
    until("event ErrUnsealFailed", || {
        event_count(server, "later", "ErrUnsealFailed") > 0
    })
    .await?;
    server.put(&support::key_secret(&extra, "sealed-secrets-key-extra"))?;
    wait_secret(server, "later", |_| true).await?;

    // No ownerReference (skip-set-owner-references).
    server.put(&with_template(
        sealed_secret(&cert, "unowned", &[("a", "1")]),
        &[],
        &[(SKIP_SET_OWNER_REFERENCES_ANNOTATION, "true")],
    ))?;
    wait_secret(server, "unowned", |_| true).await?;
    for name in [
        "db",
        "managed",
        "managed-patch",
        "patch",
        "later",
        "unowned",
    ] {
        wait_synced(server, name, "True").await?;
    }

    // The HTTP API, on the leader and on the follower: if any of it needs the API server, the
    // log shows it.
    let sealed_json = serde_json::to_string(&server.get_object(&sealed_gvr, Some(NS), "db"))?;
    for replica in [&first, &second] {
        let addr = replica.local_addr();
        http_get(addr, "/v1/cert.pem").await?;
        http(addr, "POST", "/v1/verify", &sealed_json).await?;
        http(addr, "POST", "/v1/rotate", &sealed_json).await?;
    }

    // Leader election: the leader goes away, the other replica takes the Lease over and
    // unseals.
    let holder = |name: &str| {
        lease_holders(server)
            .values()
            .any(|holder| holder.as_deref() == Some(name))
    };
    let (leader, follower, follower_name) = if holder("replica-2") {
        (second, first, "replica-1")
    } else {
        (first, second, "replica-2")
    };
    leader.shutdown().await?;
    until(&format!("{follower_name} taking the Lease over"), || {
        holder(follower_name)
    })
    .await?;
    server.put(&sealed_secret(&cert, "after-failover", &[("a", "1")]))?;
    wait_secret(server, "after-failover", |_| true).await?;
    follower.shutdown().await?;

    // Key renewal: a short period adds a key (the old ones stay).
    let keys_before = key_secrets(server).len();
    let renewing =
        start_controller(server, creates, "replica-3", &["--key-renew-period=1s"]).await?;
    until("a renewed key", || key_secrets(server).len() > keys_before).await?;
    renewing.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_rules_match_the_requests_the_controller_makes() -> TestResult {
    let (grants, controller_ns) = controller_grants()?;
    assert_eq!(
        controller_ns, CONTROLLER_NS,
        "the kustomize base installs the controller in {controller_ns}; this test assumes {CONTROLLER_NS}"
    );

    let server = support::api_server(&[]).await?;
    server.clear_request_log();
    let creates = ApplyCreates::default();
    representative_run(&server, &creates).await?;

    let mut needs: Vec<Need> = server
        .request_log()
        .iter()
        .filter(|r| r.is_resource_request())
        .map(Need::from_record)
        .collect();
    needs.extend(creates.take());
    let coverage = coverage(&needs, &grants);
    if let Some(failure) = coverage.failure() {
        panic!("{failure}");
    }
    // Shown with --nocapture: what the run covered.
    eprintln!("{}", coverage.report());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The comparison itself, on made-up data

fn grant(role: &str, namespace: Option<&str>, group: &str, resource: &str, verb: &str) -> Grant {
    Grant {
        role: role.into(),
        namespace: namespace.map(str::to_owned),
        group: group.into(),
        resource: resource.into(),
        verb: verb.into(),
        names: Vec::new(),
    }
}

fn need(group: &str, resource: &str, verb: &str, namespace: Option<&str>) -> Need {
    Need {
        group: group.into(),
        resource: resource.into(),
        verb: verb.into(),
        namespace: namespace.map(str::to_owned),
        name: None,
        example: format!("{verb} {resource}"),
    }
}

#[test]
fn coverage_names_missing_and_unused_rules() {
    let grants = vec![
        grant("ClusterRole c", None, "", "secrets", "get"),
        grant("ClusterRole c", None, "", "secrets", "list"),
        grant("ClusterRole c", None, "", "secrets", "create"),
        grant("ClusterRole c", None, "", "secrets", "delete"),
        grant(
            "Role kube-system/r",
            Some("kube-system"),
            "",
            "secrets",
            "create",
        ),
        grant(
            "Role kube-system/r",
            Some("kube-system"),
            "coordination.k8s.io",
            "leases",
            "update",
        ),
    ];
    let needs = vec![
        need("", "secrets", "list", None),
        // Covered by the Role: does not make the ClusterRole's create used.
        need("", "secrets", "create", Some("kube-system")),
        need("events.k8s.io", "events", "create", Some("app")),
        need("coordination.k8s.io", "leases", "update", Some("other")),
    ];
    let result = coverage(&needs, &grants);
    let missing: Vec<String> = result.missing.values().map(ToString::to_string).collect();
    assert_eq!(
        missing,
        [
            "coordination.k8s.io/leases update in namespace other (e.g. update leases)",
            "events.k8s.io/events create in namespace app (e.g. create events)",
        ]
    );
    let unused: Vec<String> = result.unused.iter().map(ToString::to_string).collect();
    assert_eq!(
        unused,
        [
            "ClusterRole c: core/secrets create",
            "ClusterRole c: core/secrets delete",
            "Role kube-system/r: coordination.k8s.io/leases update",
        ]
    );
    // get next to a used list is an allowance.
    assert_eq!(result.allowed_unused.len(), 1);
    assert_eq!(result.allowed_unused[0].0.verb, "get");
    let failure = result.failure().expect("a failure");
    assert!(
        failure.contains("MISSING") && failure.contains("UNUSED"),
        "{failure}"
    );
}

#[test]
fn resource_names_limit_a_grant() {
    let mut named = grant("Role ns/r", Some("ns"), "", "services", "get");
    named.names = vec!["svc".into()];
    let mut request = need("", "services", "get", Some("ns"));
    assert!(!named.grants(&request));
    request.name = Some("svc".into());
    assert!(named.grants(&request));
    request.namespace = Some("other".into());
    assert!(!named.grants(&request));
}

#[test]
fn object_paths() {
    assert_eq!(
        named_object_path("/api/v1/namespaces/app/secrets/db"),
        Some((gvr("", "v1", "secrets"), "app".into(), "db".into()))
    );
    assert_eq!(
        named_object_path("/apis/bitnami.com/v1alpha1/namespaces/app/sealedsecrets/db"),
        Some((
            gvr("bitnami.com", "v1alpha1", "sealedsecrets"),
            "app".into(),
            "db".into()
        ))
    );
    assert_eq!(
        named_object_path("/apis/bitnami.com/v1alpha1/namespaces/app/sealedsecrets/db/status"),
        None
    );
    assert_eq!(named_object_path("/api/v1/secrets"), None);
}
