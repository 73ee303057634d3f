//! The demo's steps, in the order a user meets them: a cluster (the API double), the controller,
//! sealing, unsealing, drift correction, key rotation and re-encryption.
//!
//! The demo prints the decoded values of its own made-up Secret (examples/secret.yaml) to show
//! the round trip; Sealbox itself never prints or logs a Secret's values.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::Cli;
use crate::cluster::{Cluster, Kind};
use crate::processes::{Binaries, Sealbox, http_get, indent, interrupt, wait_for};

/// The generated CRD, as a user installs it.
const CRD_YAML: &str = include_str!("../../../../deploy/crds/sealedsecrets.bitnami.com.yaml");
/// The example Secret the demo seals.
const SECRET_YAML: &str = include_str!("../../../../examples/secret.yaml");

/// Where the controller keeps its keys and runs, and the Service `sealbox` reaches it through:
/// the defaults of the deploy manifests and of `kubeseal`.
const CONTROLLER_NAMESPACE: &str = "kube-system";
const CONTROLLER_SERVICE: &str = "sealed-secrets-controller";
const KEY_LABEL: &str = "sealedsecrets.bitnami.com/sealed-secrets-key";
const HINT_ANNOTATION: &str = "sealbox.dev/sealing-key";

/// Generous: an RSA-4096 key takes seconds, more on a busy machine.
const KEY_TIMEOUT: Duration = Duration::from_secs(180);
const RECONCILE_TIMEOUT: Duration = Duration::from_secs(60);

/// Prints numbered steps and what they showed.
#[derive(Debug, Default)]
struct Narrator {
    steps: usize,
}

// The demo's narrative is its output.
#[allow(clippy::print_stdout)]
impl Narrator {
    fn step(&mut self, text: impl Display) {
        self.steps += 1;
        println!("\n{}. {text}", self.steps);
    }

    fn say(&self, text: impl Display) {
        for line in text.to_string().lines() {
            println!("   {line}");
        }
    }

    fn command(&self, args: &[&str]) {
        println!("   $ sealbox {}", args.join(" "));
    }

    fn output(&self, text: &str) {
        if !text.trim().is_empty() {
            println!("{}", indent(text.trim_end()));
        }
    }
}

/// Runs the demo from start to end; every process it started is stopped on return.
pub fn run(cli: &Cli) -> anyhow::Result<()> {
    let mut say = Narrator::default();
    let started = Instant::now();

    let build = !cli.no_build && cli.bin_dir.is_none() && std::env::var_os("CARGO").is_some();
    if build {
        say.step("Building the `sealbox` CLI and the `sealbox-controller` (cargo build -p sealbox -p sealbox-controller).");
    }
    let binaries = Binaries::locate(cli.bin_dir.as_deref(), build)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            interrupt();
        }
    });
    let scratch = tempfile::Builder::new()
        .prefix("sealbox-demo-")
        .tempdir()
        .context("cannot create a scratch directory")?;
    let dir = scratch.path();

    // 1. A cluster.
    let cluster = if cli.real {
        Cluster::real(&runtime)?
    } else {
        Cluster::double(&runtime, dir)?
    };
    let kubeconfig = cluster.kubeconfig().to_owned();
    say.step(cluster.describe());
    say.say(format!(
        "Everything below talks to it through the kubeconfig {}.",
        kubeconfig.display()
    ));

    say.step(
        "Installing the SealedSecret CRD (deploy/crds/sealedsecrets.bitnami.com.yaml) and the controller's Service.",
    );
    let crd: Value = serde_norway::from_str(CRD_YAML).context("the bundled CRD does not parse")?;
    cluster.install(crd, CONTROLLER_NAMESPACE, CONTROLLER_SERVICE)?;

    // 2. The controller.
    let mut controller = cluster.start_controller(
        &binaries.controller,
        CONTROLLER_NAMESPACE,
        CONTROLLER_SERVICE,
        &cli.key_size,
        dir.join("controller.log"),
    )?;
    say.step(format!(
        "Starting the real controller: {} {}",
        binaries.controller.display(),
        controller.args().join(" ")
    ));
    say.say(controller.reached(CONTROLLER_NAMESPACE, CONTROLLER_SERVICE));

    say.step(format!(
        "Waiting for the controller to create its first sealing key (RSA-{}; this takes a few seconds).",
        cli.key_size
    ));
    let waiting = Instant::now();
    let first_key = wait_for("the controller's first key", KEY_TIMEOUT, || {
        controller.check_running()?;
        Ok(active_keys(&cluster)?.into_iter().next())
    })
    .map_err(|e| e.context(format!("controller log:\n{}", controller.log_tail(20))))?;
    let first_key_at = Instant::now();
    say.say(format!(
        "Key Secret {CONTROLLER_NAMESPACE}/{} appeared after {:.1} s.",
        first_key.name,
        waiting.elapsed().as_secs_f64()
    ));
    wait_for("the controller's certificate", RECONCILE_TIMEOUT, || {
        controller.check_running()?;
        match http_get(controller.http(), "/v1/cert.pem") {
            Some((200, _)) => Ok(Some(())),
            Some((404, _)) => bail!(
                "{} does not serve /v1/cert.pem: rebuild it (cargo build -p sealbox-controller)",
                binaries.controller.display()
            ),
            _ => Ok(None),
        }
    })?;

    let cli_runner = Sealbox {
        binary: binaries.sealbox.clone(),
        dir: dir.to_owned(),
        kubeconfig: kubeconfig.clone(),
    };

    // 3. Sealing.
    say.step("Fetching the controller's certificate through the API server's service proxy, as kubeseal does.");
    let args = ["cert", "fetch", "-w", "cert.pem"];
    say.command(&args);
    let out = cli_runner.run(&args)?;
    say.output(&out.stderr);
    let cert = std::fs::read_to_string(dir.join("cert.pem")).context("cannot read cert.pem")?;
    say.say(format!(
        "cert.pem: {} ({} bytes) — public, safe to share; it can only seal.",
        cert.lines().next().unwrap_or_default(),
        cert.len()
    ));

    say.step("Sealing examples/secret.yaml, a plain Secret that must never be committed:");
    std::fs::write(dir.join("secret.yaml"), SECRET_YAML).context("cannot write secret.yaml")?;
    say.output(
        &SECRET_YAML
            .lines()
            .filter(|line| !line.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let args = [
        "seal",
        "--cert",
        "cert.pem",
        "-f",
        "secret.yaml",
        "-w",
        "sealed-secret.yaml",
    ];
    say.command(&args);
    let out = cli_runner.run(&args)?;
    say.output(&out.stderr);
    let sealed = read_yaml(&dir.join("sealed-secret.yaml"))?;
    say.say("sealed-secret.yaml, safe to commit (ciphertexts shortened here):");
    say.output(&summarize_sealed(&sealed));

    // 4. Unsealing.
    let (namespace, name) = namespaced_name(&sealed)?;
    say.step(format!(
        "Applying the SealedSecret {namespace}/{name} to the cluster (what `kubectl apply -f sealed-secret.yaml` does)."
    ));
    cluster
        .put(Kind::SealedSecret, sealed.clone())
        .context("the cluster refused the SealedSecret")?;
    let waiting = Instant::now();
    let secret = wait_for(
        "the controller to unseal the SealedSecret",
        RECONCILE_TIMEOUT,
        || {
            controller.check_running()?;
            cluster.get(Kind::Secret, &namespace, &name)
        },
    )?;
    let status = wait_for("the SealedSecret's status", RECONCILE_TIMEOUT, || {
        controller.check_running()?;
        synced_status(&cluster, &namespace, &name)
    })?;
    let data = decoded_data(&secret)?;
    say.say(format!(
        "The controller created Secret {namespace}/{name} after {:.1} s (owned by the SealedSecret; status: {status}).",
        waiting.elapsed().as_secs_f64()
    ));
    say.say(
        "Its data, decoded — printed only because these are the demo's made-up values;\n\
         Sealbox itself never prints or logs a Secret's values:",
    );
    say.output(&show_data(&data));

    // 5. Drift correction.
    say.step(format!(
        "Deleting the Secret {namespace}/{name}, as a stray `kubectl delete secret` would."
    ));
    let old_uid = uid(&secret);
    cluster.delete(Kind::Secret, &namespace, &name)?;
    let waiting = Instant::now();
    let restored = wait_for(
        "the controller to restore the Secret",
        RECONCILE_TIMEOUT,
        || {
            controller.check_running()?;
            Ok(cluster
                .get(Kind::Secret, &namespace, &name)?
                .filter(|secret| uid(secret) != old_uid))
        },
    )?;
    if decoded_data(&restored)? != data {
        bail!("the restored Secret's data differs from the original's");
    }
    say.say(format!(
        "The controller noticed and restored it after {:.1} s, with the same data.",
        waiting.elapsed().as_secs_f64()
    ));

    // 6. Rotation. Certificates have one-second resolution and keys with the same NotBefore tie
    // (broken by Secret name), so a rotation in the same second as the first key might not
    // change the sealing key; people do not rotate that fast, the demo with 2048-bit keys does.
    std::thread::sleep(Duration::from_millis(1100).saturating_sub(first_key_at.elapsed()));
    say.step("Rotating the sealing key: a new key seals from now on; the old one keeps unsealing.");
    let args = ["keys", "rotate", "--key-size", cli.key_size.as_str()];
    say.command(&args);
    let out = cli_runner.run(&args)?;
    say.output(&out.stderr);
    say.output(&out.stdout);
    let new_key = wait_for("the new key Secret", RECONCILE_TIMEOUT, || {
        Ok(active_keys(&cluster)?
            .into_iter()
            .find(|key| key.name != first_key.name))
    })?;
    wait_for(
        "the controller to load the new key",
        RECONCILE_TIMEOUT,
        || {
            controller.check_running()?;
            Ok(http_get(controller.http(), "/v1/cert.pem")
                .filter(|(code, body)| *code == 200 && body.as_slice() == new_key.certificate)
                .map(|_| ()))
        },
    )?;
    say.say("The controller picked up the new key: /v1/cert.pem now serves its certificate.");
    let args = ["keys", "list"];
    say.command(&args);
    let out = cli_runner.run(&args)?;
    say.output(&out.stdout);

    // 7. Re-encryption.
    say.step("Re-encrypting sealed-secret.yaml to the new key, in place.");
    let old_hint = hint(&sealed);
    say.say("The controller's /v1/rotate re-seals each value; the plaintext never leaves it.");
    let args = ["reencrypt", "sealed-secret.yaml"];
    say.command(&args);
    let out = cli_runner.run(&args)?;
    say.output(&out.stderr);
    let resealed = read_yaml(&dir.join("sealed-secret.yaml"))?;
    let new_hint = hint(&resealed);
    if new_hint == old_hint {
        bail!("re-encrypting did not change the sealing key of sealed-secret.yaml");
    }
    say.say(format!(
        "{HINT_ANNOTATION}: {} → {}",
        old_hint.as_deref().unwrap_or("(none)"),
        new_hint.as_deref().unwrap_or("(none)")
    ));
    cluster
        .put(Kind::SealedSecret, resealed)
        .context("the cluster refused the re-encrypted SealedSecret")?;
    let generation = cluster
        .get(Kind::SealedSecret, &namespace, &name)?
        .and_then(|object| {
            object
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
        });
    wait_for(
        "the controller to unseal the re-encrypted SealedSecret",
        RECONCILE_TIMEOUT,
        || {
            controller.check_running()?;
            let object = cluster.get(Kind::SealedSecret, &namespace, &name)?;
            let observed = object
                .as_ref()
                .and_then(|o| o.pointer("/status/observedGeneration"))
                .and_then(Value::as_i64);
            if observed.is_none() || observed != generation {
                return Ok(None);
            }
            synced_status(&cluster, &namespace, &name)
        },
    )?;
    let secret = cluster
        .get(Kind::Secret, &namespace, &name)?
        .context("the Secret is gone")?;
    if decoded_data(&secret)? != data {
        bail!("the Secret's data changed after re-encryption");
    }
    say.say("Applied again: the controller unsealed it with the new key; the Secret's data is unchanged.");
    let args = ["keys", "list"];
    say.command(&args);
    let out = cli_runner.run(&args)?;
    say.output(&out.stdout);

    say.step(format!(
        "Done in {:.1} s. Stopping the controller and the cluster; removing {}.",
        started.elapsed().as_secs_f64(),
        dir.display()
    ));
    drop(controller);
    drop(cluster);
    scratch
        .close()
        .context("cannot remove the scratch directory")?;
    Ok(())
}

/// An active key Secret: its name and certificate (PEM).
#[derive(Debug)]
struct KeySecret {
    name: String,
    certificate: Vec<u8>,
}

/// Active key Secrets in the controller's namespace, oldest first.
fn active_keys(cluster: &Cluster) -> anyhow::Result<Vec<KeySecret>> {
    let mut keys: Vec<(String, KeySecret)> = cluster
        .list(Kind::Secret, CONTROLLER_NAMESPACE)?
        .into_iter()
        .filter(|secret| {
            secret
                .pointer("/metadata/labels")
                .and_then(|labels| labels.get(KEY_LABEL))
                .and_then(Value::as_str)
                == Some("active")
        })
        .filter_map(|secret| {
            let name = secret.pointer("/metadata/name")?.as_str()?.to_owned();
            let created = secret
                .pointer("/metadata/resourceVersion")?
                .as_str()?
                .parse::<u64>()
                .ok()?;
            let certificate = STANDARD
                .decode(secret.pointer("/data/tls.crt")?.as_str()?)
                .ok()?;
            Some((format!("{created:020}"), KeySecret { name, certificate }))
        })
        .collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(keys.into_iter().map(|(_, key)| key).collect())
}

fn read_yaml(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_norway::from_str(&text).with_context(|| format!("{} does not parse", path.display()))
}

fn namespaced_name(object: &Value) -> anyhow::Result<(String, String)> {
    let field = |name: &str| {
        object
            .pointer(&format!("/metadata/{name}"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .with_context(|| format!("the SealedSecret has no metadata.{name}"))
    };
    Ok((field("namespace")?, field("name")?))
}

fn hint(sealed: &Value) -> Option<String> {
    sealed
        .pointer("/metadata/annotations")
        .and_then(|annotations| annotations.get(HINT_ANNOTATION))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn uid(object: &Value) -> Option<String> {
    object
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// "Synced=True (message)" once the SealedSecret reports success.
fn synced_status(cluster: &Cluster, namespace: &str, name: &str) -> anyhow::Result<Option<String>> {
    let Some(object) = cluster.get(Kind::SealedSecret, namespace, name)? else {
        return Ok(None);
    };
    Ok(synced_condition(&object))
}

fn synced_condition(object: &Value) -> Option<String> {
    let condition = object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Synced"))?;
    (condition.get("status").and_then(Value::as_str) == Some("True")).then(|| {
        let message = condition
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if message.is_empty() {
            "Synced=True".to_owned()
        } else {
            format!("Synced=True, {message:?}")
        }
    })
}

/// The Secret's data, base64-decoded.
fn decoded_data(secret: &Value) -> anyhow::Result<BTreeMap<String, String>> {
    let Some(data) = secret.get("data").and_then(Value::as_object) else {
        return Ok(BTreeMap::new());
    };
    data.iter()
        .map(|(key, value)| {
            let bytes = STANDARD
                .decode(value.as_str().unwrap_or_default())
                .with_context(|| format!("data[{key:?}] of the Secret is not base64"))?;
            Ok((key.clone(), String::from_utf8_lossy(&bytes).into_owned()))
        })
        .collect()
}

fn show_data(data: &BTreeMap<String, String>) -> String {
    data.iter()
        .map(|(key, value)| format!("{key}: {value}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The sealed document with each ciphertext cut to its first characters.
fn summarize_sealed(sealed: &Value) -> String {
    let mut shown = sealed.clone();
    if let Some(data) = shown
        .pointer_mut("/spec/encryptedData")
        .and_then(Value::as_object_mut)
    {
        for value in data.values_mut() {
            if let Some(text) = value.as_str() {
                *value = Value::String(format!(
                    "{}… ({} characters)",
                    text.chars().take(24).collect::<String>(),
                    text.len()
                ));
            }
        }
    }
    serde_norway::to_string(&shown).unwrap_or_default()
}
