//! deploy/argocd/sealedsecret-health.lua, Sealbox's Argo CD health check for SealedSecrets, run
//! with Debian's `lua5.4` and `lua-cjson` (as Argo CD runs it: the object in the global `obj`,
//! the script's return value the health): over the situations of Argo CD's own tests
//! (tests/argocd/cases.yaml), and over SealedSecrets as the controller leaves them, the
//! controller's library running against the API double.
//!
//! Skipped, saying why, when `lua5.4` or its cjson module is missing, unless
//! `SEALBOX_LUA_REQUIRED=1` (.ci/manifests.sh installs both and sets it).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser as _;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, CustomResourceExt as _};
use sealbox_crds::SealedSecret;
use sealbox_tests::ApiServer;
use serde_json::{Value, json};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const SCRIPT: &str = "deploy/argocd/sealedsecret-health.lua";
const NAMESPACE: &str = "team-a";
const WAIT: Duration = Duration::from_secs(60);

/// Runs the health script on `obj` the way Argo CD does, printing the result as JSON.
const DRIVER: &str = r#"
local cjson = require("cjson")
obj = cjson.decode(io.read("a"))
local health = assert(loadfile(os.getenv("SEALBOX_HEALTH_SCRIPT")))()
io.write(cjson.encode(health))
"#;

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new(".."))
}

/// `lua5.4` with cjson, or None (after saying why) when the test should be skipped.
fn lua() -> TestResult<Option<PathBuf>> {
    let probe = Command::new("lua5.4")
        .args(["-e", "require('cjson')"])
        .output();
    match probe {
        Ok(out) if out.status.success() => Ok(Some(PathBuf::from("lua5.4"))),
        other => {
            let why = format!(
                "lua5.4 with lua-cjson is not usable ({other:?}); apt-get install lua5.4 lua-cjson"
            );
            if std::env::var_os("SEALBOX_LUA_REQUIRED").is_some_and(|v| v == "1") {
                return Err(why.into());
            }
            eprintln!("skipping: {why}");
            Ok(None)
        }
    }
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

/// The health (status, message) the script gives `object`.
fn health(lua: &Path, object: &Value) -> TestResult<(String, String)> {
    let mut child = Command::new(lua)
        .args(["-e", DRIVER])
        .env("SEALBOX_HEALTH_SCRIPT", repository().join(SCRIPT))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(&serde_json::to_vec(&without_nulls(object.clone()))?)?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(format!(
            "the health script failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let result: Value = serde_json::from_slice(&out.stdout)?;
    let field = |name: &str| result[name].as_str().unwrap_or_default().to_owned();
    Ok((field("status"), field("message")))
}

#[test]
fn argo_cd_cases() -> TestResult {
    let Some(lua) = lua()? else { return Ok(()) };
    let cases: Vec<Value> = serde_norway::from_str(&std::fs::read_to_string(
        repository().join("tests/tests/argocd/cases.yaml"),
    )?)?;
    assert!(cases.len() >= 7, "{} cases", cases.len());
    for case in cases {
        let got = health(&lua, &case["object"])?;
        let want = (
            case["health"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            case["health"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        assert_eq!(got, want, "case {}", case["name"]);
    }
    Ok(())
}

/// The ConfigMap users merge into argocd-cm carries the script unchanged.
#[test]
fn argocd_cm_carries_the_script() -> TestResult {
    let script = std::fs::read_to_string(repository().join(SCRIPT))?;
    let config_map: Value = serde_norway::from_str(&std::fs::read_to_string(
        repository().join("deploy/argocd/argocd-cm.yaml"),
    )?)?;
    let embedded = config_map["data"]["resource.customizations.health.bitnami.com_SealedSecret"]
        .as_str()
        .unwrap_or_default();
    assert!(
        embedded == script,
        "deploy/argocd/argocd-cm.yaml does not carry {SCRIPT} as it is: copy the script into it"
    );
    Ok(())
}

async fn start_controller(server: &ApiServer) -> TestResult<sealbox_controller::Running> {
    let config = sealbox_controller::Config::try_parse_from([
        "sealbox-controller",
        "--namespace=kube-system",
        "--listen-addr=127.0.0.1:0",
        "--listen-metrics-addr=127.0.0.1:0",
        "--leader-elect=false",
        "--key-size=2048",
        "--key-renew-period=0",
    ])?;
    let running = sealbox_controller::start(server.client(), &config).await?;
    let began = Instant::now();
    while !running.is_ready() {
        if began.elapsed() > WAIT {
            return Err("the controller was not ready".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(running)
}

/// Seals `value` for NAMESPACE/`name` (strict scope) with the controller's newest key.
fn sealed(running: &sealbox_controller::Running, name: &str, value: &str) -> TestResult<String> {
    use base64::Engine as _;
    let keys = running.keys().snapshot();
    let key = keys.sealing_key().ok_or("the controller has no key")?;
    let label = sealbox_crypto::Scope::Strict.label(NAMESPACE, name);
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let ciphertext = sealbox_crypto::seal(
        &rng,
        key.certificate().public_key(),
        value.as_bytes(),
        &label,
    )?;
    Ok(base64::engine::general_purpose::STANDARD.encode(ciphertext))
}

/// Polls the SealedSecret until `done` says its status is what the test waits for.
async fn settled(
    api: &Api<SealedSecret>,
    name: &str,
    done: impl Fn(&Value) -> bool,
) -> TestResult<Value> {
    let began = Instant::now();
    loop {
        let object = serde_json::to_value(api.get(name).await?)?;
        if done(&object) {
            return Ok(object);
        }
        if began.elapsed() > WAIT {
            return Err(format!("SealedSecret {name}: not settled: {object}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn synced(object: &Value, status: &str, generation: i64) -> bool {
    object["status"]["observedGeneration"] == json!(generation)
        && object["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Synced" && c["status"] == status)
        })
}

/// The controller's own objects: unsealed → Healthy; unsealable → Degraded with the status's
/// message; a spec changed while the controller is down → Progressing (Argo CD's built-in check
/// says Healthy there); processed again → Healthy.
#[tokio::test]
async fn objects_as_the_controller_leaves_them() -> TestResult {
    let Some(lua) = lua()? else { return Ok(()) };
    let server = ApiServer::new();
    let client: Client = server.client();
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &SealedSecret::crd())
        .await?;
    let api = Api::<SealedSecret>::namespaced(client.clone(), NAMESPACE);
    let running = start_controller(&server).await?;

    let object = |name: &str, data: Value| -> TestResult<SealedSecret> {
        Ok(serde_json::from_value(json!({
            "apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"encryptedData": data}
        }))?)
    };
    let password = sealed(&running, "good", "hunter2")?;
    api.create(
        &PostParams::default(),
        &object("good", json!({"password": password}))?,
    )
    .await?;
    api.create(
        &PostParams::default(),
        &object("bad", json!({"password": "AgBy3i4OJSWK+PiTySYZZA=="}))?,
    )
    .await?;

    let good = settled(&api, "good", |o| synced(o, "True", 1)).await?;
    assert_eq!(health(&lua, &good)?.0, "Healthy", "{good}");
    let bad = settled(&api, "bad", |o| synced(o, "False", 1)).await?;
    let message = bad["status"]["conditions"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!message.is_empty(), "{bad}");
    assert_eq!(health(&lua, &bad)?, ("Degraded".to_owned(), message));

    // A new spec the controller has not seen: the old Synced=True no longer speaks for it.
    let token = sealed(&running, "good", "s3cr3t")?;
    running.shutdown().await?;
    let patch = json!({"spec": {"encryptedData": {"token": token}}});
    api.patch("good", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let stale = serde_json::to_value(api.get("good").await?)?;
    assert!(synced(&stale, "True", 1), "{stale}");
    assert_eq!(stale["metadata"]["generation"], json!(2), "{stale}");
    assert_eq!(
        health(&lua, &stale)?,
        (
            "Progressing".to_owned(),
            "Waiting for the controller to unseal generation 2 (it has processed 1)".to_owned()
        )
    );

    let running = start_controller(&server).await?;
    let good = settled(&api, "good", |o| synced(o, "True", 2)).await?;
    assert_eq!(health(&lua, &good)?.0, "Healthy", "{good}");
    running.shutdown().await?;
    Ok(())
}
