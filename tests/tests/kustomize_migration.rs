//! Tier 4 (TESTING.md): a Bitnami install made from its release's `controller.yaml` (`kubectl
//! apply -f`), replaced by `kubectl apply --server-side -k deploy/kustomize/base` on the real
//! control plane, with docs/USAGE.md's steps ("Installed from Bitnami's `controller.yaml` or
//! with kustomize").
//!
//! Bitnami's `controller.yaml` is rendered at run time from the jsonnet in its Go module
//! (`SEALBOX_BITNAMI_CONTROLLER_YAML`, else `.ci/bitnami-controller-yaml.sh`); nothing of it is
//! committed. Skips (passing, with a message on stderr) when the plane's binaries or the
//! rendering are missing, unless `SEALBOX_REAL_REQUIRED=1`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, PostParams};
use kube::{Client, ResourceExt as _};
use sealbox_crds::SealedSecret;
use sealbox_tests::real::{REQUIRED_ENV, RealControlPlane};
use serde_json::json;

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const NAMESPACE: &str = "kube-system";
const NAME: &str = "sealed-secrets-controller";
const CRD: &str = "sealedsecrets.bitnami.com";
const WAIT: Duration = Duration::from_secs(120);

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new(".."))
}

/// Fails when the real tier is required, else says why the test is skipped.
fn skip(why: &str) -> TestResult {
    if std::env::var_os(REQUIRED_ENV).is_some_and(|v| v == "1") {
        return Err(why.into());
    }
    eprintln!("skipping: {why}");
    Ok(())
}

/// Bitnami's controller.yaml (as a v1 List in JSON), rendered from its Go module.
fn bitnami_controller_yaml() -> Result<PathBuf, String> {
    if let Some(file) = std::env::var_os("SEALBOX_BITNAMI_CONTROLLER_YAML") {
        return Ok(PathBuf::from(file));
    }
    let out = Command::new("bash")
        .arg(repository().join(".ci/bitnami-controller-yaml.sh"))
        .output()
        .map_err(|e| format!(".ci/bitnami-controller-yaml.sh: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            ".ci/bitnami-controller-yaml.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Runs `command`; Ok(stdout) or Err with its output.
fn run(command: &mut Command, what: &str) -> Result<String, String> {
    let out = command.output().map_err(|e| format!("{what}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{what}: {}\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

async fn crd_established(client: &Client) -> TestResult {
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    let began = Instant::now();
    loop {
        let established = crds.get_opt(CRD).await?.is_some_and(|crd| {
            crd.status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        });
        if established {
            return Ok(());
        }
        if began.elapsed() > WAIT {
            return Err(format!("CRD {CRD} not established after {WAIT:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Bitnami's controller.yaml applied as its README says, a SealedSecret under its CRD; then
/// docs/USAGE.md's steps replace it with deploy/kustomize/base in place: the Deployment keeps
/// its selector and runs Sealbox, the Services keep theirs, the CRD is Sealbox's, the
/// SealedSecret is still there, and what the base does not have is what the docs say to delete.
#[tokio::test]
async fn kustomize_apply_over_bitnamis_controller_yaml() -> TestResult {
    let bitnami = match bitnami_controller_yaml() {
        Ok(file) => file,
        Err(why) => return skip(&format!("no Bitnami controller.yaml: {why}")),
    };
    let Some(plane) = RealControlPlane::start().await? else {
        return Ok(());
    };
    let client = plane.client().await?;

    // Bitnami's install: `kubectl apply -f controller.yaml` (client-side apply).
    run(
        plane.kubectl().args(["apply", "-f"]).arg(&bitnami),
        "kubectl apply -f controller.yaml",
    )?;
    crd_established(&client).await?;
    let deployments = Api::<Deployment>::namespaced(client.clone(), NAMESPACE);
    let selector = |d: Deployment| serde_json::to_value(d.spec.map(|s| s.selector));
    let before = selector(deployments.get(NAME).await?)?;
    assert_eq!(before, json!({"matchLabels": {"name": NAME}}), "Bitnami's");
    let resource = kube::api::ApiResource::erase::<SealedSecret>(&());
    let sealed_secrets =
        Api::<DynamicObject>::namespaced_with(client.clone(), "default", &resource);
    let existing: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
        "metadata": {"name": "kept", "namespace": "default"},
        "spec": {"encryptedData": {"password": "AgBy3i4OJSWK+PiTySYZZA=="}}
    }))?;
    sealed_secrets
        .create(&PostParams::default(), &existing)
        .await?;

    // docs/USAGE.md, step 2: stop Bitnami's controller.
    run(
        plane
            .kubectl()
            .args(["-n", NAMESPACE, "scale", "deployment", NAME, "--replicas=0"]),
        "kubectl scale",
    )?;
    // Step 3: without --force-conflicts, server-side apply refuses to take the fields
    // `kubectl apply -f` set to other values (the image, the probes, the CRD's schema, ...).
    let base = repository().join("deploy/kustomize/base");
    let apply = |force: bool| {
        let mut command = plane.kubectl();
        command.args(["apply", "--server-side"]);
        if force {
            command.arg("--force-conflicts");
        }
        command.arg("-k").arg(&base);
        command
    };
    match run(&mut apply(false), "kubectl apply --server-side -k") {
        Ok(out) => {
            return Err(
                format!("applied over Bitnami's fields without --force-conflicts: {out}").into(),
            );
        }
        // The fields `kubectl apply -f` owns with other values: only defaults of the probes.
        Err(error) => assert!(
            error.contains("conflicts with \"kubectl-client-side-apply\"")
                && error.contains("readinessProbe"),
            "{error}"
        ),
    }
    run(
        &mut apply(true),
        "kubectl apply --server-side --force-conflicts -k",
    )?;

    // What stays and what changes.
    let deployment = deployments.get(NAME).await?;
    assert_eq!(selector(deployment.clone())?, before, "the selector stays");
    let pod = deployment
        .spec
        .and_then(|s| s.template.spec)
        .ok_or("a pod template")?;
    let images: Vec<_> = pod
        .containers
        .iter()
        .filter_map(|c| c.image.clone())
        .collect();
    assert!(
        images.len() == 1 && images[0].contains("sealbox-controller"),
        "Sealbox's image only: {images:?}"
    );
    // Nothing of Bitnami's pod is left over: kubectl moves what `kubectl apply -f` owned to
    // the server-side apply, so what the base leaves out goes (its command, its /tmp volume,
    // its fsGroup).
    assert_eq!(
        pod.containers[0].command.as_deref(),
        Some(&["/usr/local/bin/sealbox-controller".to_owned()][..])
    );
    assert_eq!(pod.volumes, None, "Bitnami's /tmp volume is gone");
    assert_eq!(pod.security_context.and_then(|c| c.fs_group), None);
    let services = Api::<Service>::namespaced(client.clone(), NAMESPACE);
    let service = services.get(NAME).await?;
    let spec = service.spec.unwrap_or_default();
    assert_eq!(
        spec.selector,
        Some([("name".to_owned(), NAME.to_owned())].into()),
        "the Service still selects the controller's pods"
    );
    assert!(
        spec.ports
            .unwrap_or_default()
            .iter()
            .any(|p| p.name.as_deref() == Some("http")),
        "kubeseal's port name"
    );
    let crd = Api::<CustomResourceDefinition>::all(client.clone())
        .get(CRD)
        .await?;
    let managers: Vec<String> = crd
        .managed_fields()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(
        managers.iter().any(|m| m == "kubectl"),
        "the CRD is applied by the base now: {managers:?}"
    );
    sealed_secrets.get("kept").await?;
    Ok(())
}
