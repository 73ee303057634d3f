//! Controllers' cold start on the REAL control plane (etcd, kube-apiserver and
//! kube-controller-manager from `tests/kube/build.sh`), Sealbox and Bitnami side by side in one
//! run (issue 14 item 6, issue 15 item 5).
//!
//! One plane for the whole run, with deploy/kustomize/base's CRD and RBAC, 12 RSA-4096 key
//! Secrets in kube-system (NotBefore a month apart) and 10,000 unrelated Secrets in
//! `unrelated-NN`. For each size (1,000 and 10,000) and each run, the SealedSecrets (3 values,
//! strict scope, round-robin over the 12 keys; see `sealbox_tests::bench`) are created in 20
//! fresh namespaces `bench-NN` (concurrent creates through kube), then one controller starts
//! with every namespace watched; the clock runs from its start until a watch of the
//! SealedSecrets has seen every one `Synced=True`. Then the controller stops and the namespaces
//! are deleted (and waited for) before the next run.
//!
//! Runs (`SEALBOX_BENCH_RUNS`, comma-separated, in this order by default):
//! - `sealbox/hint`, `sealbox/nohint`: the release `sealbox-controller` with its defaults, as
//!   deploy/'s ServiceAccount (its RBAC), over files sealed by the release `sealbox seal` (the
//!   key hint annotation) and by Bitnami's `kubeseal` (no hint), the binaries themselves: one
//!   process per key over that key's Secrets (`sealbox_tests::bench::seal_with_cli`);
//! - `bitnami-tuned/…`: Bitnami's `controller` (`target/peers/bin`, `tests/peers/build.sh`)
//!   with `--kubeclient-qps 500 --kubeclient-burst 1000`;
//! - `bitnami/…`: Bitnami's controller with its client defaults (QPS 5, burst 10).
//!
//! Every controller runs with `--key-renew-period=0` (the keys are fresh; no key is made during
//! a run). A run that has not finished after `SEALBOX_BENCH_BOUND_SECONDS` (180) is stopped
//! there; its time is extrapolated from the rate it kept after its first `Synced` and marked so.
//!
//! Per run: time to all `Synced`, rate, the rate's ratio to the raw aws-lc-rs RSA-4096 decrypt
//! rate × cores ÷ 3 values (measured on one thread before and after each run), the controller's
//! CPU seconds and peak RSS (`VmHWM`), its API requests per SealedSecret (the API server's
//! audit log, by its ServiceAccount), and the CPU seconds of kube-apiserver and etcd.
//!
//! ```sh
//! SEALBOX_KUBE_BIN=…/kube/bin SEALBOX_PEERS_BIN=…/peers/bin \
//!   cargo bench -p sealbox-tests --bench real_control_plane
//! ```
//! Environment: `SEALBOX_BENCH_SIZES` (`1000,10000`), `SEALBOX_BENCH_KEYS` (12),
//! `SEALBOX_BENCH_UNRELATED_SECRETS` (10000), `SEALBOX_BENCH_RUNS`,
//! `SEALBOX_BENCH_BOUND_SECONDS` (180), `SEALBOX_BENCH_BIN_DIR` (where `sealbox` and
//! `sealbox-controller` are; default: next to the bench's binary, after `cargo build --release
//! -p sealbox -p sealbox-controller`, which the bench runs first).

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt as _, stream};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ObjectMeta, PostParams,
};
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt as _};
use sealbox_crypto::KeySecret;
use sealbox_tests::bench::{
    self, MachineCpu, NAMESPACES, RawDecrypt, VALUES, peak_rss_kib, process_cpu,
};
use sealbox_tests::peers::{Controller, Peers, Sealbox};
use sealbox_tests::real::{RealControlPlane, service_account_user};
use serde_json::Value;

const KUBE_SYSTEM: &str = "kube-system";
/// deploy/kustomize/base's ServiceAccount: Sealbox's controller runs as it, under its RBAC.
const SEALBOX_SERVICE_ACCOUNT: &str = "sealed-secrets-controller";
/// Bitnami's controller runs as this one, bound to cluster-admin.
const BITNAMI_SERVICE_ACCOUNT: &str = "bitnami-peer";
/// Creates in flight at once while filling the API server.
const CREATE_CONCURRENCY: usize = 48;
/// How long the deleted namespaces of a run may take to go.
const NAMESPACE_GONE_TIMEOUT: Duration = Duration::from_secs(900);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Sealbox,
    BitnamiTuned,
    Bitnami,
}

impl Who {
    fn name(self) -> &'static str {
        match self {
            Who::Sealbox => "Sealbox (defaults)",
            Who::BitnamiTuned => "Bitnami (QPS 500, burst 1000)",
            Who::Bitnami => "Bitnami (defaults: QPS 5, burst 10)",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Files {
    /// `sealbox seal`: the key hint annotation.
    Hint,
    /// `kubeseal`: no hint.
    NoHint,
}

impl Files {
    fn name(self) -> &'static str {
        match self {
            Files::Hint => "sealbox seal (hint)",
            Files::NoHint => "kubeseal (no hint)",
        }
    }
}

struct Settings {
    sizes: Vec<usize>,
    keys: usize,
    unrelated: usize,
    runs: Vec<(Who, Files)>,
    bound: Duration,
    cores: usize,
}

impl Settings {
    fn from_env() -> Settings {
        let list = |name: &str, default: &str| -> Vec<String> {
            std::env::var(name)
                .unwrap_or_else(|_| default.to_owned())
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let sizes = list("SEALBOX_BENCH_SIZES", "1000,10000")
            .iter()
            .map(|s| s.parse().expect("SEALBOX_BENCH_SIZES: numbers"))
            .collect();
        let runs = list(
            "SEALBOX_BENCH_RUNS",
            "sealbox/hint,sealbox/nohint,bitnami-tuned/nohint,bitnami-tuned/hint,bitnami/nohint,bitnami/hint",
        )
        .iter()
        .map(|run| parse_run(run))
        .collect();
        Settings {
            sizes,
            keys: bench::number("SEALBOX_BENCH_KEYS", 12).max(1),
            unrelated: bench::number("SEALBOX_BENCH_UNRELATED_SECRETS", 10_000),
            runs,
            bound: Duration::from_secs(bench::number("SEALBOX_BENCH_BOUND_SECONDS", 180) as u64),
            cores: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

fn parse_run(run: &str) -> (Who, Files) {
    let (who, files) = run
        .split_once('/')
        .unwrap_or_else(|| panic!("SEALBOX_BENCH_RUNS: {run:?} is not WHO/FILES"));
    let who = match who {
        "sealbox" => Who::Sealbox,
        "bitnami-tuned" => Who::BitnamiTuned,
        "bitnami" => Who::Bitnami,
        _ => panic!("SEALBOX_BENCH_RUNS: {who:?} is not sealbox, bitnami-tuned or bitnami"),
    };
    let files = match files {
        "hint" => Files::Hint,
        "nohint" => Files::NoHint,
        _ => panic!("SEALBOX_BENCH_RUNS: {files:?} is not hint or nohint"),
    };
    (who, files)
}

fn main() {
    let settings = Settings::from_env();
    let started = Instant::now();
    println!("controllers on the real control plane, side by side");
    println!(
        "  machine: {} cores, {}; load average {}",
        settings.cores,
        bench::cpu_model(),
        bench::load_average()
    );
    if std::env::var_os("SEALBOX_BENCH_BIN_DIR").is_none() {
        build_sealbox();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.cores.max(2))
        .enable_all()
        .build()
        .unwrap();
    let rows = runtime.block_on(bench_all(&settings));
    println!("\nsummary (load average now {})", bench::load_average());
    print_tables(&rows, &settings);
    println!("total bench time: {:.0} s", started.elapsed().as_secs_f64());
}

/// Sealbox's release binaries next to this bench's (`Sealbox::find` looks there), built
/// before anything is measured.
fn build_sealbox() {
    let Some(cargo) = std::env::var_os("CARGO") else {
        return;
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    println!("  building: cargo build --release -p sealbox -p sealbox-controller");
    let status = Command::new(cargo)
        .args([
            "build",
            "-q",
            "--release",
            "-p",
            "sealbox",
            "-p",
            "sealbox-controller",
        ])
        .current_dir(workspace)
        .status()
        .unwrap();
    assert!(status.success(), "building Sealbox failed");
}

/// Everything the runs share.
struct Setup {
    plane: RealControlPlane,
    client: Client,
    peers: Option<Peers>,
    sealbox: Sealbox,
    /// SealedSecrets `0..largest` as `sealbox seal` wrote them (the key hint).
    hinted: Vec<Value>,
    /// The same Secrets as `kubeseal` sealed them (no hint); empty if no run uses them.
    kubeseal: Vec<Value>,
    raw: RawDecrypt,
    raw_parallel: f64,
}

async fn bench_all(settings: &Settings) -> Vec<Row> {
    let setup = setup(settings).await;
    let mut rows = Vec::new();
    for &size in &settings.sizes {
        for &(who, files) in &settings.runs {
            let objects = match files {
                Files::Hint => &setup.hinted[..size],
                Files::NoHint => &setup.kubeseal[..size],
            };
            let row = run(&setup, settings, who, files, objects).await;
            print_row(&row, settings);
            rows.push(row);
        }
    }
    rows
}

async fn setup(settings: &Settings) -> Setup {
    let phase = Instant::now();
    let plane = RealControlPlane::start()
        .await
        .expect("the real control plane did not start")
        .expect("the real control plane is not built: tests/kube/build.sh or SEALBOX_KUBE_BIN");
    println!(
        "  control plane ready in {:.1} s",
        phase.elapsed().as_secs_f64()
    );
    let needs_peers = settings
        .runs
        .iter()
        .any(|&(who, files)| who != Who::Sealbox || files == Files::NoHint);
    let peers = needs_peers.then(|| {
        Peers::find()
            .expect("Bitnami's peers are not built: tests/peers/build.sh or SEALBOX_PEERS_BIN")
    });
    let sealbox = match std::env::var_os("SEALBOX_BENCH_BIN_DIR") {
        Some(dir) => Sealbox::in_dir(Path::new(&dir)),
        None => Sealbox::find(),
    }
    .expect("Sealbox's release binaries");
    install(&plane);
    let client = plane.client().await.unwrap();

    let phase = Instant::now();
    let pairs = bench::generate_keys(settings.keys, settings.cores);
    let keys: Vec<Value> = pairs
        .iter()
        .map(|pair| KeySecret::from_key_pair(pair, KUBE_SYSTEM, "sealed-secrets-key").to_json())
        .collect();
    create_all(&client, &secrets(), &keys).await;
    println!(
        "  {} RSA-4096 key Secrets made in {:.1} s",
        keys.len(),
        phase.elapsed().as_secs_f64()
    );
    let largest = settings.sizes.iter().copied().max().unwrap_or(0);
    let certs = tempfile::tempdir().unwrap();
    let seal = |name: &str, command: &(dyn Fn(&Path) -> Command + Sync)| {
        let phase = Instant::now();
        let command = |cert: &Path| {
            let mut command = command(cert);
            command.current_dir(certs.path());
            command
        };
        let objects = bench::seal_with_cli(command, &pairs, largest, settings.cores, certs.path());
        println!(
            "  {largest} Secrets × {} values sealed by {name} in {:.1} s ({} processes)",
            VALUES.len(),
            phase.elapsed().as_secs_f64(),
            pairs.len().min(largest),
        );
        objects
    };
    let uses = |wanted: Files| settings.runs.iter().any(|&(_, files)| files == wanted);
    let hinted = if uses(Files::Hint) {
        seal("sealbox seal", &|cert| {
            let mut command = Command::new(sealbox.cli());
            command
                .arg("seal")
                .arg("--cert")
                .arg(cert)
                .args(["-o", "json"]);
            command
        })
    } else {
        Vec::new()
    };
    let kubeseal = match &peers {
        Some(peers) if uses(Files::NoHint) => seal("kubeseal", &|cert| {
            let mut command = Command::new(peers.kubeseal());
            command.arg("--cert").arg(cert).args(["-o", "json"]);
            command
        }),
        _ => Vec::new(),
    };

    let phase = Instant::now();
    let unrelated = bench::unrelated_secrets(settings.unrelated);
    let namespaces: Vec<String> = (0..NAMESPACES.min(settings.unrelated.max(1)))
        .map(|i| format!("unrelated-{i:02}"))
        .collect();
    create_namespaces(&client, &namespaces).await;
    create_all(&client, &secrets(), &unrelated).await;
    println!(
        "  {} unrelated Secrets created in {:.1} s",
        unrelated.len(),
        phase.elapsed().as_secs_f64()
    );

    let raw = RawDecrypt::new(&pairs[0]);
    let raw_parallel =
        tokio::task::block_in_place(|| raw.rate_parallel(settings.cores, Duration::from_secs(3)));
    Setup {
        plane,
        client,
        peers,
        sealbox,
        hinted,
        kubeseal,
        raw,
        raw_parallel,
    }
}

/// deploy/kustomize/base as a user installs it, but its Deployment, PodDisruptionBudget and
/// Service (no kubelet: the controllers run as processes here); and the ServiceAccount
/// Bitnami's controller runs as, bound to cluster-admin. Returns once the CRD is Established.
fn install(plane: &RealControlPlane) {
    const LEFT_OUT: [&str; 3] = ["Deployment", "PodDisruptionBudget", "Service"];
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kustomize/base");
    let rendered = plane
        .kubectl()
        .arg("kustomize")
        .arg(&base)
        .output()
        .unwrap();
    assert!(rendered.status.success(), "kubectl kustomize failed");
    let mut documents: Vec<String> = String::from_utf8(rendered.stdout)
        .unwrap()
        .split("\n---\n")
        .filter(|document| {
            let value: Value = serde_norway::from_str(document).unwrap();
            !LEFT_OUT.contains(&value["kind"].as_str().unwrap_or_default())
        })
        .map(|document| document.trim().to_owned())
        .collect();
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
    let mut apply = plane
        .kubectl()
        .args([
            "apply",
            "--server-side",
            "--field-manager=sealbox-bench",
            "-f",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        apply.stdin.as_mut().unwrap(),
        documents.join("\n---\n").as_bytes(),
    )
    .unwrap();
    drop(apply.stdin.take());
    assert!(apply.wait().unwrap().success(), "kubectl apply failed");
    let established = plane
        .kubectl()
        .args([
            "wait",
            "--for=condition=Established",
            "crd/sealedsecrets.bitnami.com",
            "--timeout=180s",
        ])
        .status()
        .unwrap();
    assert!(established.success(), "the CRD was not Established");
}

fn secrets() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Secret"))
}

fn sealed_secrets() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "bitnami.com",
        "v1alpha1",
        "SealedSecret",
    ))
}

/// Creates `objects` (namespaced, JSON) concurrently; a create that fails is retried a few
/// times (a loaded API server may answer 429 or time out), one that finds its object there is
/// done.
async fn create_all(client: &Client, resource: &ApiResource, objects: &[Value]) {
    stream::iter(objects)
        .map(|object| async move {
            let object: DynamicObject = serde_json::from_value(object.clone()).unwrap();
            let namespace = object.namespace().unwrap();
            let api = Api::<DynamicObject>::namespaced_with(client.clone(), &namespace, resource);
            let mut attempt = 0;
            loop {
                match api.create(&PostParams::default(), &object).await {
                    Ok(_) => return,
                    Err(kube::Error::Api(status)) if status.code == 409 => return,
                    Err(e) if attempt < 5 => {
                        attempt += 1;
                        eprintln!("  create failed ({e}); retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    Err(e) => panic!("cannot create {}/{}: {e}", namespace, object.name_any()),
                }
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .collect::<()>()
        .await;
}

async fn create_namespaces(client: &Client, names: &[String]) {
    let api = Api::<Namespace>::all(client.clone());
    for name in names {
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        api.create(&PostParams::default(), &namespace)
            .await
            .unwrap();
    }
}

/// Deletes namespaces `names` and waits until they are gone (the namespace controller deletes
/// what is in them first).
async fn delete_namespaces(client: &Client, names: &[String]) {
    let api = Api::<Namespace>::all(client.clone());
    for name in names {
        api.delete(name, &DeleteParams::background()).await.unwrap();
    }
    let began = Instant::now();
    for name in names {
        while api.get_opt(name).await.unwrap().is_some() {
            assert!(
                began.elapsed() < NAMESPACE_GONE_TIMEOUT,
                "namespace {name} not gone after {NAMESPACE_GONE_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Watching SealedSecrets become Synced.

/// A watch of every SealedSecret, noting when each first reports `Synced=True`.
struct SyncedWatch {
    times: Arc<Mutex<Vec<Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SyncedWatch {
    /// Returns once the watch has listed what exists.
    async fn start(client: Client) -> SyncedWatch {
        let api = Api::<DynamicObject>::all_with(client, &sealed_secrets());
        let times = Arc::new(Mutex::new(Vec::new()));
        let (listed, on_listed) = tokio::sync::oneshot::channel();
        let noted = times.clone();
        let task = tokio::spawn(async move {
            let mut listed = Some(listed);
            let mut synced = HashSet::new();
            let mut events = std::pin::pin!(watcher::watcher(api, watcher::Config::default()));
            while let Some(event) = events.next().await {
                let object = match event {
                    Ok(Event::InitDone) => {
                        if let Some(listed) = listed.take() {
                            let _ = listed.send(());
                        }
                        continue;
                    }
                    Ok(Event::Apply(object) | Event::InitApply(object)) => object,
                    Ok(_) => continue,
                    Err(e) => {
                        eprintln!("  watch: {e}");
                        continue;
                    }
                };
                let key = format!(
                    "{}/{}",
                    object.namespace().unwrap_or_default(),
                    object.name_any()
                );
                if is_synced(&object) && synced.insert(key) {
                    noted.lock().unwrap().push(Instant::now());
                }
            }
        });
        on_listed.await.expect("the watch ended before it listed");
        SyncedWatch { times, task }
    }

    fn count(&self) -> usize {
        self.times.lock().unwrap().len()
    }

    /// When each became Synced, counted from `started`, in order.
    fn since(&self, started: Instant) -> Vec<Duration> {
        let mut times: Vec<Duration> = self
            .times
            .lock()
            .unwrap()
            .iter()
            .map(|t| t.saturating_duration_since(started))
            .collect();
        times.sort();
        times
    }
}

impl Drop for SyncedWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn is_synced(object: &DynamicObject) -> bool {
    object.data["status"]["conditions"]
        .as_array()
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c["type"] == "Synced" && c["status"] == "True")
        })
}

// ---------------------------------------------------------------------------------------------
// One run.

/// What one run showed.
struct Row {
    who: Who,
    files: Files,
    count: usize,
    /// When each SealedSecret first reported Synced, from the controller's start.
    synced: Vec<Duration>,
    /// Until the controller served its certificate (keys loaded).
    ready: Duration,
    wall: Duration,
    created_in: Duration,
    raw_single: f64,
    raw_parallel: f64,
    controller_cpu: f64,
    peak_rss_kib: u64,
    apiserver_cpu: f64,
    etcd_cpu: f64,
    controller_manager_cpu: f64,
    bench_cpu: f64,
    machine: MachineCpu,
    requests: Vec<(String, usize)>,
}

impl Row {
    fn done(&self) -> bool {
        self.synced.len() >= self.count
    }

    /// The time to all Synced: measured, or extrapolated (first Synced + the rest at the rate
    /// kept after it) for a bounded run.
    fn time(&self) -> Option<f64> {
        if self.done() {
            return self.synced.last().map(Duration::as_secs_f64);
        }
        let first = self.synced.first()?.as_secs_f64();
        let span = self.wall.as_secs_f64() - first;
        let after_first = self.synced.len().saturating_sub(1) as f64;
        (after_first > 0.0 && span > 0.0)
            .then(|| first + (self.count - 1) as f64 * span / after_first)
    }

    fn rate(&self) -> Option<f64> {
        self.time().map(|t| self.count as f64 / t)
    }

    /// Rate ÷ (raw decrypt on one thread × cores ÷ values).
    fn ratio(&self, cores: usize) -> Option<f64> {
        let ideal = self.raw_single * cores as f64 / VALUES.len() as f64;
        self.rate().map(|rate| rate / ideal)
    }

    fn total_requests(&self) -> usize {
        self.requests.iter().map(|(_, n)| n).sum()
    }

    /// CPU other processes took meanwhile: the machine's busy time less the plane's, the
    /// controller's and this bench's (its watch and polls).
    fn others(&self) -> f64 {
        (self.machine.busy
            - self.controller_cpu
            - self.apiserver_cpu
            - self.etcd_cpu
            - self.controller_manager_cpu
            - self.bench_cpu)
            .max(0.0)
            + self.machine.steal
    }
}

async fn run(setup: &Setup, settings: &Settings, who: Who, files: Files, objects: &[Value]) -> Row {
    let count = objects.len();
    println!(
        "\n{} over {} files, {count} SealedSecrets",
        who.name(),
        files.name()
    );
    let namespaces: Vec<String> = (0..NAMESPACES.min(count.max(1)))
        .map(bench::bench_namespace)
        .collect();
    let phase = Instant::now();
    create_namespaces(&setup.client, &namespaces).await;
    create_all(&setup.client, &sealed_secrets(), objects).await;
    let created_in = phase.elapsed();
    println!("  created in {:.1} s", created_in.as_secs_f64());

    let raw_before = tokio::task::block_in_place(|| setup.raw.rate(Duration::from_secs(2)));
    let watch = SyncedWatch::start(setup.client.clone()).await;
    let pids = setup.plane.processes();
    let plane_before = pids.map(|(_, pid)| process_cpu(pid).unwrap_or_default());
    let bench_before = process_cpu(std::process::id()).unwrap_or_default();
    let audit_from = setup.plane.audit_end();
    let machine_before = MachineCpu::now();
    let started = Instant::now();

    let (mut controller, user) = start_controller(setup, who).await;
    let ready = started.elapsed();
    let pid = controller.pid().expect("the controller runs as a process");
    loop {
        if watch.count() >= count {
            break;
        }
        if started.elapsed() >= settings.bound {
            break;
        }
        if let Err(e) = controller.check_running() {
            panic!("{} stopped: {e}", who.name());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let wall = started.elapsed();
    let synced = watch.since(started);
    let controller_cpu = process_cpu(pid).unwrap_or_default();
    let peak_rss_kib = peak_rss_kib(pid).unwrap_or_default();
    let machine = MachineCpu::now().since(machine_before);
    let bench_cpu = process_cpu(std::process::id()).unwrap_or_default() - bench_before;
    let plane_after = pids.map(|(_, pid)| process_cpu(pid).unwrap_or_default());
    drop(controller);
    drop(watch);
    let raw_after = tokio::task::block_in_place(|| setup.raw.rate(Duration::from_secs(2)));

    let (events, _) = setup.plane.audit_events(audit_from).unwrap();
    let mut requests = BTreeMap::<String, usize>::new();
    for event in events.iter().filter(|e| e.user == user) {
        let request = &event.request;
        *requests
            .entry(format!("{} {}", request.verb, request.resource))
            .or_default() += 1;
    }
    let mut requests: Vec<(String, usize)> = requests.into_iter().collect();
    requests.sort_by_key(|kind| std::cmp::Reverse(kind.1));

    let phase = Instant::now();
    delete_namespaces(&setup.client, &namespaces).await;
    println!(
        "  namespaces deleted in {:.1} s",
        phase.elapsed().as_secs_f64()
    );
    Row {
        who,
        files,
        count,
        synced,
        ready,
        wall,
        created_in,
        raw_single: (raw_before + raw_after) / 2.0,
        raw_parallel: setup.raw_parallel,
        controller_cpu,
        peak_rss_kib,
        etcd_cpu: plane_after[0] - plane_before[0],
        apiserver_cpu: plane_after[1] - plane_before[1],
        controller_manager_cpu: plane_after[2] - plane_before[2],
        bench_cpu,
        machine,
        requests,
    }
}

/// Starts `who`'s controller; returns it and the user its requests carry in the audit log.
async fn start_controller(setup: &Setup, who: Who) -> (Controller, String) {
    let renew = "--key-renew-period=0";
    match who {
        Who::Sealbox => {
            let kubeconfig = setup
                .plane
                .service_account_kubeconfig(KUBE_SYSTEM, SEALBOX_SERVICE_ACCOUNT)
                .await
                .unwrap();
            let controller = setup
                .sealbox
                .start_controller(&kubeconfig, KUBE_SYSTEM, &[renew])
                .await
                .unwrap();
            (
                controller,
                service_account_user(KUBE_SYSTEM, SEALBOX_SERVICE_ACCOUNT),
            )
        }
        Who::Bitnami | Who::BitnamiTuned => {
            let mut args = vec![renew];
            if who == Who::BitnamiTuned {
                args.extend(["--kubeclient-qps=500", "--kubeclient-burst=1000"]);
            }
            let peers = setup.peers.as_ref().expect("peers found for Bitnami runs");
            let controller = peers
                .start_controller(
                    &setup.plane,
                    KUBE_SYSTEM,
                    BITNAMI_SERVICE_ACCOUNT,
                    KUBE_SYSTEM,
                    &args,
                )
                .await
                .unwrap();
            (
                controller,
                service_account_user(KUBE_SYSTEM, BITNAMI_SERVICE_ACCOUNT),
            )
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reports.

fn print_row(row: &Row, settings: &Settings) {
    let at = |fraction: f64| -> String {
        let index = ((row.count as f64 * fraction).ceil() as usize).max(1) - 1;
        row.synced
            .get(index)
            .map_or("—".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()))
    };
    if row.done() {
        println!(
            "  all {} Synced after {} (serving its cert after {:.1} s; first {}, 10 % {}, 90 % {})",
            row.count,
            at(1.0),
            row.ready.as_secs_f64(),
            at(0.0),
            at(0.1),
            at(0.9)
        );
    } else {
        println!(
            "  STOPPED at the bound of {:.0} s with {} of {} Synced (first {}); extrapolated: {}",
            row.wall.as_secs_f64(),
            row.synced.len(),
            row.count,
            at(0.0),
            row.time()
                .map_or("— (too few to extrapolate)".to_owned(), |t| format!(
                    "{t:.0} s"
                ))
        );
    }
    let ideal = row.raw_single * settings.cores as f64 / VALUES.len() as f64;
    println!(
        "  rate {} SealedSecrets/s; ideal (raw {:.0}/s one thread × {} cores ÷ {} values) {ideal:.0}/s → ratio {}",
        fmt(row.rate(), 0),
        row.raw_single,
        settings.cores,
        VALUES.len(),
        fmt(row.ratio(settings.cores), 3)
    );
    let per = |n: usize| n as f64 / row.synced.len().max(1) as f64;
    let kinds: Vec<String> = row
        .requests
        .iter()
        .filter(|(_, n)| per(*n) >= 0.01)
        .map(|(kind, n)| format!("{kind} {:.2}", per(*n)))
        .collect();
    println!(
        "  API requests per Synced SealedSecret: {:.2} ({})",
        per(row.total_requests()),
        kinds.join(", ")
    );
    let available = row.wall.as_secs_f64() * settings.cores as f64;
    println!(
        "  CPU over {:.1} s × {} cores = {available:.0} s: controller {:.1} s, kube-apiserver {:.1} s, \
         etcd {:.1} s, kube-controller-manager {:.1} s, this bench (watch) {:.1} s, other processes \
         {:.1} s ({:.0} %), idle {:.1} s",
        row.wall.as_secs_f64(),
        settings.cores,
        row.controller_cpu,
        row.apiserver_cpu,
        row.etcd_cpu,
        row.controller_manager_cpu,
        row.bench_cpu,
        row.others(),
        100.0 * row.others() / available,
        row.machine.idle
    );
    println!(
        "  controller peak RSS {:.1} MiB; raw decrypt on all cores at the start {:.0}/s; created in {:.1} s",
        row.peak_rss_kib as f64 / 1024.0,
        row.raw_parallel,
        row.created_in.as_secs_f64()
    );
}

fn fmt(value: Option<f64>, decimals: usize) -> String {
    value.map_or("—".to_owned(), |v| format!("{v:.decimals$}"))
}

/// One Markdown table per size; "÷ Sealbox" divides a run's time by Sealbox's over the same
/// files in this run.
fn print_tables(rows: &[Row], settings: &Settings) {
    for &size in &settings.sizes {
        println!(
            "\n{size} SealedSecrets × {} values, {} keys, {} unrelated Secrets; bound {} s",
            VALUES.len(),
            settings.keys,
            settings.unrelated,
            settings.bound.as_secs()
        );
        println!(
            "| controller | files | time to all Synced | SealedSecrets/s | ratio to raw decrypt × cores | \
             time ÷ Sealbox's | controller CPU | peak RSS | API requests / SealedSecret | \
             kube-apiserver CPU | etcd CPU |"
        );
        println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        let of_size: Vec<&Row> = rows.iter().filter(|r| r.count == size).collect();
        for row in &of_size {
            let sealbox = of_size
                .iter()
                .find(|r| r.who == Who::Sealbox && r.files == row.files)
                .and_then(|r| r.time());
            let time = match (row.time(), row.done()) {
                (Some(t), true) => format!("{t:.1} s"),
                (Some(t), false) => format!(
                    "**stopped at {:.0} s** ({} Synced); ≈ {t:.0} s extrapolated",
                    row.wall.as_secs_f64(),
                    row.synced.len()
                ),
                (None, _) => format!(
                    "stopped at {:.0} s, {} Synced",
                    row.wall.as_secs_f64(),
                    row.synced.len()
                ),
            };
            let versus = row
                .time()
                .zip(sealbox)
                .map_or("—".to_owned(), |(t, s)| format!("{:.1}×", t / s));
            println!(
                "| {} | {} | {time} | {} | {} | {versus} | {:.1} s | {:.1} MiB | {:.2} | {:.1} s | {:.1} s |",
                row.who.name(),
                row.files.name(),
                fmt(row.rate(), 1),
                fmt(row.ratio(settings.cores), 3),
                row.controller_cpu,
                row.peak_rss_kib as f64 / 1024.0,
                row.total_requests() as f64 / row.synced.len().max(1) as f64,
                row.apiserver_cpu,
                row.etcd_cpu,
            );
        }
    }
}
