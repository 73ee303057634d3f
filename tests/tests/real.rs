//! Tier 4 (TESTING.md): the real control plane of `sealbox_tests::real`, built by
//! `tests/kube/build.sh`. Each test starts its own plane and skips (passing, with a message on
//! stderr) when the binaries are not built, unless `SEALBOX_REAL_REQUIRED=1`.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, ReplicaSet};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, Pod, PodSpec, PodTemplateSpec, Secret, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Client, ResourceExt as _};
use sealbox_crds::{SealedSecret, SealedSecretSpec};
use sealbox_tests::fixtures::{self, TestResult, Wait};
use sealbox_tests::real::RealControlPlane;

/// The committed CRD, as `kubectl apply -k deploy/crds` installs it.
const CRD_YAML: &str = include_str!("../../deploy/crds/sealedsecrets.bitnami.com.yaml");
/// How long a controller of the plane may take to act. The garbage collector first syncs its
/// graph of every resource type, which takes seconds on a busy 2-core machine; this only has to
/// be long enough to tell "slow" from "never".
const WAIT: Wait = Wait::new(Duration::from_secs(120), Duration::from_millis(200));

/// Polls `check` until it returns `Some`, or fails naming `what` after [`WAIT`].
async fn eventually<T, F, Fut>(what: &str, check: F) -> TestResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = TestResult<Option<T>>>,
{
    WAIT.until_found(what, check).await
}

/// Prints what the plane cost, for the record (not asserted: machines differ).
fn report(plane: &RealControlPlane) {
    let mut total_kib = 0;
    for (name, pid) in plane.processes() {
        let rss_kib = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .unwrap_or(0);
        total_kib += rss_kib;
        eprintln!("{name}: RSS {} MiB", rss_kib / 1024);
    }
    eprintln!(
        "real control plane at {}: ready in {:.1?}, RSS {} MiB",
        plane.url(),
        plane.startup_time(),
        total_kib / 1024
    );
}

async fn create_namespace(client: &Client, name: &str) -> TestResult {
    fixtures::create_namespaces(client, &[name]).await
}

#[tokio::test]
async fn real_control_plane_stores_sealed_secrets_under_the_deploy_crd() -> TestResult {
    let Some(plane) = RealControlPlane::start().await? else {
        return Ok(());
    };
    report(&plane);
    let client = plane.client().await?;

    // kubectl of the plane's version, through the admin kubeconfig.
    let out = plane.kubectl().args(["get", "ns", "-o", "name"]).output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.lines().any(|l| l == "namespace/kube-system"),
        "kubectl get ns: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    let crd: CustomResourceDefinition = serde_norway::from_str(CRD_YAML)?;
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    crds.create(&PostParams::default(), &crd).await?;
    fixtures::sealed_secret_crd_established(&client, WAIT).await?;

    create_namespace(&client, "sealed").await?;
    let mut sealed = SealedSecret::new(
        "db",
        SealedSecretSpec {
            // Not a real ciphertext: the API server stores what the schema admits.
            encrypted_data: BTreeMap::from([(
                "password".to_owned(),
                "AgBy3i4OJSWK+PiTySYZZA==".to_owned(),
            )]),
            ..Default::default()
        },
    );
    sealed.metadata.namespace = Some("sealed".to_owned());
    let api = Api::<SealedSecret>::namespaced(client.clone(), "sealed");
    let created = api.create(&PostParams::default(), &sealed).await?;
    assert!(
        created.uid().is_some(),
        "the API server gives the object a uid"
    );

    let read = api.get("db").await?;
    assert_eq!(read.spec.encrypted_data, sealed.spec.encrypted_data);
    assert_eq!(read.uid(), created.uid());
    let listed = api.list(&Default::default()).await?;
    assert_eq!(
        listed
            .items
            .iter()
            .map(|s| s.name_any())
            .collect::<Vec<_>>(),
        ["db"]
    );
    Ok(())
}

#[tokio::test]
async fn real_garbage_collector_deletes_a_secret_owned_by_a_deleted_config_map() -> TestResult {
    let Some(plane) = RealControlPlane::start().await? else {
        return Ok(());
    };
    let client = plane.client().await?;
    create_namespace(&client, "gc").await?;
    let config_maps = Api::<ConfigMap>::namespaced(client.clone(), "gc");
    let secrets = Api::<Secret>::namespaced(client.clone(), "gc");

    let owner = config_maps
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("owner".to_owned()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await?;
    let secret = |name: &str, owners: Option<Vec<OwnerReference>>| Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            owner_references: owners,
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "k".to_owned(),
            ByteString(b"v".to_vec()),
        )])),
        ..Default::default()
    };
    let reference = OwnerReference {
        api_version: "v1".to_owned(),
        kind: "ConfigMap".to_owned(),
        name: owner.name_any(),
        uid: owner.uid().ok_or("the ConfigMap has no uid")?,
        ..Default::default()
    };
    secrets
        .create(
            &PostParams::default(),
            &secret("dependent", Some(vec![reference])),
        )
        .await?;
    secrets
        .create(&PostParams::default(), &secret("bystander", None))
        .await?;
    assert!(
        secrets.get_opt("dependent").await?.is_some(),
        "the dependent exists while its owner does"
    );

    config_maps
        .delete("owner", &DeleteParams::default())
        .await?;
    eventually(
        "the garbage collector deleting the dependent Secret",
        || async { Ok(secrets.get_opt("dependent").await?.is_none().then_some(())) },
    )
    .await?;
    assert!(
        secrets.get_opt("bystander").await?.is_some(),
        "a Secret without owners is not collected"
    );
    Ok(())
}

/// The other controllers the plane runs: a Deployment gets its ReplicaSet and Pods (Pending: no
/// scheduler, no kubelet), and a deleted namespace is emptied and then removed.
#[tokio::test]
async fn real_controllers_roll_out_deployments_and_finalize_namespaces() -> TestResult {
    let Some(plane) = RealControlPlane::start().await? else {
        return Ok(());
    };
    let client = plane.client().await?;
    create_namespace(&client, "apps").await?;
    let labels = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
    let deployment = Deployment {
        metadata: ObjectMeta {
            name: Some("web".to_owned()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(2),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "web".to_owned(),
                        // Never pulled: there is no kubelet.
                        image: Some("registry.invalid/web:1".to_owned()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    let deployment = Api::<Deployment>::namespaced(client.clone(), "apps")
        .create(&PostParams::default(), &deployment)
        .await?;
    let replica_sets = Api::<ReplicaSet>::namespaced(client.clone(), "apps");
    eventually("a ReplicaSet owned by the Deployment", || async {
        let list = replica_sets.list(&ListParams::default()).await?;
        Ok(list
            .items
            .iter()
            .any(|rs| {
                rs.owner_references()
                    .iter()
                    .any(|o| Some(&o.uid) == deployment.uid().as_ref())
            })
            .then_some(()))
    })
    .await?;
    let pods = Api::<Pod>::namespaced(client.clone(), "apps");
    eventually("two Pods of the ReplicaSet", || async {
        let list = pods.list(&ListParams::default().labels("app=web")).await?;
        Ok((list.items.len() == 2).then_some(()))
    })
    .await?;

    Api::<Namespace>::all(client.clone())
        .delete("apps", &DeleteParams::default())
        .await?;
    let namespaces = Api::<Namespace>::all(client.clone());
    eventually("the namespace emptied and removed", || async {
        Ok(namespaces.get_opt("apps").await?.is_none().then_some(()))
    })
    .await?;
    Ok(())
}

/// Whether `result` is the API server's 403.
fn is_forbidden<T>(result: &Result<T, kube::Error>) -> bool {
    matches!(result, Err(kube::Error::Api(status)) if status.code == 403)
}

/// The real authorizer: a ServiceAccount (token from the TokenRequest API) may do what its
/// RoleBinding grants, once bound, and nothing else.
#[tokio::test]
async fn real_rbac_grants_a_service_account_exactly_its_bindings() -> TestResult {
    let Some(plane) = RealControlPlane::start().await? else {
        return Ok(());
    };
    let admin = plane.client().await?;
    create_namespace(&admin, "rbac").await?;
    let named = |name: &str| ObjectMeta {
        name: Some(name.to_owned()),
        ..Default::default()
    };
    let post = PostParams::default();
    Api::<ServiceAccount>::namespaced(admin.clone(), "rbac")
        .create(
            &post,
            &ServiceAccount {
                metadata: named("reader"),
                ..Default::default()
            },
        )
        .await?;
    Api::<ConfigMap>::namespaced(admin.clone(), "rbac")
        .create(
            &post,
            &ConfigMap {
                metadata: named("visible"),
                ..Default::default()
            },
        )
        .await?;

    let reader = plane.service_account_client("rbac", "reader").await?;
    let config_maps = Api::<ConfigMap>::namespaced(reader.clone(), "rbac");
    let secrets = Api::<Secret>::namespaced(reader, "rbac");
    assert!(
        is_forbidden(&config_maps.get("visible").await),
        "an unbound ServiceAccount reads nothing"
    );

    Api::<Role>::namespaced(admin.clone(), "rbac")
        .create(
            &post,
            &Role {
                metadata: named("read-config-maps"),
                rules: Some(vec![PolicyRule {
                    api_groups: Some(vec![String::new()]),
                    resources: Some(vec!["configmaps".to_owned()]),
                    verbs: vec!["get".to_owned()],
                    ..Default::default()
                }]),
            },
        )
        .await?;
    Api::<RoleBinding>::namespaced(admin.clone(), "rbac")
        .create(
            &post,
            &RoleBinding {
                metadata: named("reader"),
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".to_owned(),
                    kind: "Role".to_owned(),
                    name: "read-config-maps".to_owned(),
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".to_owned(),
                    name: "reader".to_owned(),
                    namespace: Some("rbac".to_owned()),
                    ..Default::default()
                }]),
            },
        )
        .await?;
    // The authorizer reads bindings from its informers: allowed soon after, not at once.
    eventually("the bound ServiceAccount reading the ConfigMap", || async {
        let got = config_maps.get("visible").await;
        if is_forbidden(&got) {
            return Ok(None);
        }
        Ok(Some(got?))
    })
    .await?;
    assert!(
        is_forbidden(&config_maps.list(&ListParams::default()).await),
        "get does not grant list"
    );
    assert!(
        is_forbidden(&secrets.get_opt("anything").await),
        "configmaps do not grant secrets"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// deploy/, installed for real under the `restricted` Pod Security Standard

/// The labels that make the API server's Pod Security admission refuse, in a namespace, every
/// pod that does not meet the `restricted` profile.
const RESTRICTED: [(&str, &str); 2] = [
    ("pod-security.kubernetes.io/enforce", "restricted"),
    ("pod-security.kubernetes.io/enforce-version", "latest"),
];

/// The repository's root (deploy/ lives there).
fn repository() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(std::path::Path::new(".."))
}

/// Runs `command`, failing with its output when it fails.
fn run(mut command: std::process::Command, what: &str) -> TestResult<String> {
    let out = command.output().map_err(|e| format!("{what}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "{what}: {}\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(stdout)
}

/// Labels `namespace` (creating it if need be) to enforce the restricted profile, and proves the
/// enforcement is on: a pod with no security context (allowed by `baseline`, not by
/// `restricted`) is refused there.
async fn enforce_restricted(client: &Client, name: &str) -> TestResult {
    let namespaces = Api::<Namespace>::all(client.clone());
    if namespaces.get_opt(name).await?.is_none() {
        create_namespace(client, name).await?;
    }
    let labels: BTreeMap<&str, &str> = RESTRICTED.into_iter().collect();
    namespaces
        .patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"metadata": {"labels": labels}})),
        )
        .await?;
    let unhardened: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "unhardened"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))?;
    match Api::<Pod>::namespaced(client.clone(), name)
        .create(&PostParams::default(), &unhardened)
        .await
    {
        Err(kube::Error::Api(status))
            if status.code == 403 && status.message.contains("PodSecurity") =>
        {
            Ok(())
        }
        other => Err(format!(
            "an unhardened pod in {name}: expected 403 from Pod Security admission, got {other:?}"
        )
        .into()),
    }
}

/// Waits for the pods `selector` picks in `namespace`: the controller-manager creates them from
/// the Deployment and they stay Pending (no kubelet), so they exist only if Pod Security
/// admission accepted them. A ReplicaSet whose pods were refused fails at once with the reason.
async fn pods_admitted(client: &Client, namespace: &str, selector: &str) -> TestResult<Vec<Pod>> {
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    let sets = Api::<ReplicaSet>::namespaced(client.clone(), namespace);
    let select = ListParams::default().labels(selector);
    eventually("the controller's pods, admitted", || async {
        let listed = pods.list(&select).await?.items;
        if !listed.is_empty() {
            return Ok(Some(listed));
        }
        for set in sets.list(&select).await?.items {
            let conditions = set
                .status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default();
            if let Some(failure) = conditions.iter().find(|c| c.type_ == "ReplicaFailure") {
                return Err(format!(
                    "ReplicaSet {} could not create its pods: {}",
                    set.name_any(),
                    failure.message.clone().unwrap_or_default()
                )
                .into());
            }
        }
        Ok(None)
    })
    .await
}

/// The CRD's schema admits a well-formed SealedSecret and refuses a misshapen one (422).
async fn sealed_secrets_validate(client: &Client, namespace: &str) -> TestResult {
    let resource = kube::api::ApiResource::erase::<SealedSecret>(&());
    let api =
        Api::<kube::api::DynamicObject>::namespaced_with(client.clone(), namespace, &resource);
    let object = |name: &str, encrypted_data: serde_json::Value| {
        serde_json::from_value::<kube::api::DynamicObject>(serde_json::json!({
            "apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"encryptedData": encrypted_data}
        }))
    };
    api.create(
        &PostParams::default(),
        &object(
            "good",
            serde_json::json!({"password": "AgBy3i4OJSWK+PiTySYZZA=="}),
        )?,
    )
    .await?;
    match api
        .create(
            &PostParams::default(),
            &object("bad", serde_json::json!("not a map"))?,
        )
        .await
    {
        Err(kube::Error::Api(status)) if status.code == 422 => Ok(()),
        other => Err(format!("a misshapen SealedSecret: expected 422, got {other:?}").into()),
    }
}

/// `kubectl apply --server-side -k deploy/kustomize/base` into a kube-system that enforces the
/// restricted profile: the controller-manager creates the controller's pods and admission
/// accepts them; the CRD is established and validates SealedSecrets.
#[tokio::test]
async fn deploy_kustomize_base_installs_under_restricted_pod_security() -> TestResult {
    let Some(plane) = RealControlPlane::start().await? else {
        return Ok(());
    };
    let client = plane.client().await?;
    enforce_restricted(&client, "kube-system").await?;

    let mut apply = plane.kubectl();
    apply
        .args(["apply", "--server-side", "-k"])
        .arg(repository().join("deploy/kustomize/base"));
    run(
        apply,
        "kubectl apply --server-side -k deploy/kustomize/base",
    )?;

    fixtures::sealed_secret_crd_established(&client, WAIT).await?;
    let pods = pods_admitted(&client, "kube-system", "name=sealed-secrets-controller").await?;
    assert!(
        pods.iter()
            .all(|p| p.name_any().starts_with("sealed-secrets-controller-")),
        "{:?}",
        pods.iter().map(|p| p.name_any()).collect::<Vec<_>>()
    );
    sealed_secrets_validate(&client, "kube-system").await
}

/// `helm install` of deploy/helm/sealbox into a namespace that enforces the restricted profile,
/// with the same checks as the kustomize base.
#[tokio::test]
async fn deploy_helm_chart_installs_under_restricted_pod_security() -> TestResult {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("helm"))
            .find(|helm| helm.is_file())
    });
    let Some(helm) = on_path else {
        if std::env::var_os("SEALBOX_REAL_REQUIRED").is_some_and(|v| v == "1") {
            return Err(
                "helm is not on PATH (.ci/tools.sh installs it under target/ci-tools/bin)".into(),
            );
        }
        eprintln!("skipping: helm is not on PATH");
        return Ok(());
    };
    let Some(plane) = RealControlPlane::start().await? else {
        return Ok(());
    };
    let client = plane.client().await?;
    enforce_restricted(&client, "sealbox").await?;

    let mut install = std::process::Command::new(helm);
    install
        .args(["install", "sealbox"])
        .arg(repository().join("deploy/helm/sealbox"))
        .args(["--namespace", "sealbox", "--kubeconfig"])
        .arg(plane.kubeconfig());
    run(install, "helm install sealbox deploy/helm/sealbox")?;

    fixtures::sealed_secret_crd_established(&client, WAIT).await?;
    pods_admitted(&client, "sealbox", "app.kubernetes.io/instance=sealbox").await?;
    sealed_secrets_validate(&client, "sealbox").await
}
