//! Tier 4 (TESTING.md): `helm upgrade` from a Bitnami release to deploy/helm/sealbox on the real
//! control plane, as docs/USAGE.md's migration section tells a Bitnami user to do it.
//!
//! Bitnami's chart comes from its Go module at run time (`SEALBOX_BITNAMI_CHART`, else
//! `.ci/bitnami-chart.sh`); nothing of it is committed. Skips (passing, with a message on
//! stderr) when the plane's binaries, helm or Bitnami's chart are missing, unless
//! `SEALBOX_REAL_REQUIRED=1`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, PostParams};
use kube::{Client, ResourceExt as _};
use sealbox_crds::SealedSecret;
use sealbox_tests::real::{REQUIRED_ENV, RealControlPlane};
use serde_json::json;

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const RELEASE: &str = "sealed-secrets";
const NAMESPACE: &str = "kube-system";
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

/// helm: on PATH, else where .ci/tools.sh installs it.
fn helm() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("helm"))
            .find(|helm| helm.is_file())
    });
    on_path.or_else(|| {
        let installed = repository().join("target/ci-tools/bin/helm");
        installed.is_file().then_some(installed)
    })
}

/// Bitnami's chart directory, from its Go module.
fn bitnami_chart() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("SEALBOX_BITNAMI_CHART") {
        return Ok(PathBuf::from(dir));
    }
    let out = Command::new("bash")
        .arg(repository().join(".ci/bitnami-chart.sh"))
        .output()
        .map_err(|e| format!(".ci/bitnami-chart.sh: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            ".ci/bitnami-chart.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Runs `command`; Ok(stdout) or Err with its output.
fn run(mut command: Command, what: &str) -> Result<String, String> {
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

fn helm_command(helm: &Path, plane: &RealControlPlane, args: &[&str]) -> Command {
    let mut command = Command::new(helm);
    command
        .args(args)
        .args(["--namespace", NAMESPACE, "--kubeconfig"])
        .arg(plane.kubeconfig());
    command
}

/// The Deployment's selector, as the API server holds it.
async fn selector(client: &Client, name: &str) -> TestResult<serde_json::Value> {
    let deployment = Api::<Deployment>::namespaced(client.clone(), NAMESPACE)
        .get(name)
        .await?;
    Ok(serde_json::to_value(deployment.spec.map(|s| s.selector))?)
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

/// Bitnami's chart installed as its README says (fullnameOverride=sealed-secrets-controller),
/// a SealedSecret under its CRD; then docs/USAGE.md's steps: `helm upgrade` to Sealbox's chart
/// is refused until the CRD is adopted (Bitnami's chart installs it from crds/, outside the
/// release), then succeeds, keeping the Deployment's selector and the SealedSecret.
#[tokio::test]
async fn helm_upgrade_from_a_bitnami_release() -> TestResult {
    let Some(helm) = helm() else {
        return skip("helm is not installed (.ci/tools.sh installs it under target/ci-tools/bin)");
    };
    let bitnami = match bitnami_chart() {
        Ok(dir) => dir,
        Err(why) => return skip(&format!("no Bitnami chart: {why}")),
    };
    let Some(plane) = RealControlPlane::start().await? else {
        return Ok(());
    };
    let client = plane.client().await?;

    let bitnami_chart = bitnami.to_string_lossy().into_owned();
    run(
        helm_command(
            &helm,
            &plane,
            &[
                "install",
                RELEASE,
                &bitnami_chart,
                "--set-string",
                "fullnameOverride=sealed-secrets-controller",
            ],
        ),
        "helm install Bitnami's chart",
    )?;
    crd_established(&client).await?;
    let name = "sealed-secrets-controller";
    let before = selector(&client, name).await?;
    assert_eq!(
        before,
        json!({"matchLabels": {"app.kubernetes.io/name": "sealed-secrets", "app.kubernetes.io/instance": RELEASE}}),
        "Bitnami's selector"
    );
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

    let sealbox_chart = repository()
        .join("deploy/helm/sealbox")
        .to_string_lossy()
        .into_owned();
    let upgrade = ["upgrade", RELEASE, sealbox_chart.as_str()];
    // Without adoption Helm refuses to take over the CRD it did not install as a template.
    match run(
        helm_command(&helm, &plane, &upgrade),
        "helm upgrade before adoption",
    ) {
        Ok(out) => return Err(format!("helm upgrade took the CRD without adoption: {out}").into()),
        Err(error) => assert!(
            error.contains("invalid ownership metadata") && error.contains(CRD),
            "{error}"
        ),
    }

    // docs/USAGE.md: adopt the CRD into the release, then upgrade.
    let mut label = plane.kubectl();
    label.args([
        "label",
        "crd",
        CRD,
        "app.kubernetes.io/managed-by=Helm",
        "--overwrite",
    ]);
    run(label, "kubectl label crd")?;
    let mut annotate = plane.kubectl();
    annotate.args([
        "annotate",
        "crd",
        CRD,
        &format!("meta.helm.sh/release-name={RELEASE}"),
        &format!("meta.helm.sh/release-namespace={NAMESPACE}"),
        "--overwrite",
    ]);
    run(annotate, "kubectl annotate crd")?;
    run(
        helm_command(&helm, &plane, &upgrade),
        "helm upgrade to Sealbox's chart",
    )?;

    assert_eq!(selector(&client, name).await?, before, "the selector stays");
    let deployment = Api::<Deployment>::namespaced(client.clone(), NAMESPACE)
        .get(name)
        .await?;
    let images: Vec<String> = deployment
        .spec
        .and_then(|s| s.template.spec)
        .map(|p| p.containers.into_iter().filter_map(|c| c.image).collect())
        .unwrap_or_default();
    assert!(
        images.len() == 1 && images[0].contains("sealbox-controller"),
        "Sealbox's image: {images:?}"
    );
    let crd = Api::<CustomResourceDefinition>::all(client.clone())
        .get(CRD)
        .await?;
    assert!(
        crd.labels()
            .get("helm.sh/chart")
            .is_some_and(|c| c.starts_with("sealbox-")),
        "the CRD is the chart's now: {:?}",
        crd.labels()
    );
    assert_eq!(
        crd.annotations()
            .get("helm.sh/resource-policy")
            .map(String::as_str),
        Some("keep")
    );
    sealed_secrets.get("kept").await?;
    let history = run(
        helm_command(&helm, &plane, &["history", RELEASE, "-o", "json"]),
        "helm history",
    )?;
    assert!(history.contains("\"deployed\""), "{history}");
    Ok(())
}
