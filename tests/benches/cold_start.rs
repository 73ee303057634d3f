//! Cold start of the controller: 10,000 SealedSecrets × 3 values, sealed round-robin to a
//! registry of 12 RSA-4096 keys, already stored when the controller starts; the clock runs
//! from `start` until every Secret exists. The yardstick is measured in the same run: the raw
//! aws-lc-rs RSA-4096 OAEP decrypt rate on one thread, times the cores, divided by the 3 values
//! of a SealedSecret, is what a perfect controller would reach (ratio 1.0).
//!
//! Four runs:
//! 1. **hinted** — every SealedSecret names its key (`sealbox.dev/sealing-key`, as `sealbox
//!    seal` writes it): one private-key operation per value. In process: the controller's
//!    library (`sealbox_controller::start`) over `ApiServer::client()`.
//!    **warm** follows it on the same double: once every SealedSecret reports `Synced`, the
//!    controller stops and a new one starts with leader election (a restart or upgrade: cold
//!    caches, as a new process); the clock runs until it has reported every SealedSecret
//!    `Synced`, and its private-key operations are counted (the target is none: each Secret's
//!    proof of authorship shows it unchanged). Then a standby replica starts, keeps its caches
//!    warm, and the leader crashes (`Running::kill`: the Lease is not released): the time until
//!    the standby holds the Lease, and from then until it has reported everything `Synced`.
//!    The three are printed side by side.
//! 2. **unhinted** — the same objects without the hint (as `kubeseal` writes them): the first
//!    value tries the keys newest first, the others reuse the key that worked.
//! 3. **rss** — the release `sealbox-controller` binary as a child process against the double
//!    served on 127.0.0.1, with as many unrelated Secrets besides: peak RSS (`VmHWM`), and the
//!    controller's own CPU time apart from the API double's.
//!
//! `cargo bench -p sealbox-tests --bench cold_start` (about 5 minutes on 2 cores; it first runs
//! `cargo build --release -p sealbox-controller` for the rss run). Environment:
//! - `SEALBOX_BENCH_SEALED_SECRETS` (10000), `SEALBOX_BENCH_KEYS` (12),
//!   `SEALBOX_BENCH_UNRELATED_SECRETS` (as many as SealedSecrets);
//! - `SEALBOX_BENCH_RUNS` (`hinted,warm,unhinted,rss`; `warm` needs `hinted`);
//! - `SEALBOX_BENCH_CONTROLLER`: the controller binary for the rss run (no build);
//! - `SEALBOX_BENCH_CONTROLLER_ARGS`: more controller flags, for experiments;
//! - `SEALBOX_BENCH_WORKER_THREADS`: async worker threads of the in-process runs (the cores).
//!
//! Both the double and the controller share this machine's cores in the in-process runs, so
//! the API server's work counts against the ratio; in a cluster it runs elsewhere.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::{CommandFactory as _, Parser as _};
use sealbox_controller::Config;
use sealbox_crypto::KeySecret;
use sealbox_tests::ApiServer;
use sealbox_tests::bench::{
    MachineCpu, RawDecrypt, VALUES, cpu_model, expected_unhinted_operations, generate_keys,
    load_average, number, process_cpu, seal_objects, unrelated_secrets, without_hint,
};
use sealbox_tests::fixtures::{
    self, CONTROLLER_NAMESPACE, KillOnDrop, free_port, sealed_secrets_gvr, secrets_gvr,
};
use serde_json::Value;

/// Linux's USER_HZ, the unit of /proc/<pid>/stat CPU times.
const CLOCK_TICKS: f64 = 100.0;

struct Settings {
    sealed: usize,
    keys: usize,
    unrelated: usize,
    runs: BTreeSet<String>,
    cores: usize,
}

impl Settings {
    fn from_env() -> Settings {
        let sealed = number("SEALBOX_BENCH_SEALED_SECRETS", 10_000);
        let runs = std::env::var("SEALBOX_BENCH_RUNS")
            .unwrap_or_else(|_| "hinted,warm,unhinted,rss".to_owned())
            .split(',')
            .map(|run| run.trim().to_owned())
            .filter(|run| !run.is_empty())
            .collect();
        Settings {
            sealed,
            keys: number("SEALBOX_BENCH_KEYS", 12).max(1),
            unrelated: number("SEALBOX_BENCH_UNRELATED_SECRETS", sealed),
            runs,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

fn main() {
    // `cargo bench` passes `--bench`; this harness takes no arguments.
    let settings = Settings::from_env();
    let started = Instant::now();
    println!("cold-start benchmark");
    println!(
        "  machine: {} cores, {}; load average {}",
        settings.cores,
        cpu_model(),
        load_average()
    );
    println!(
        "  {} SealedSecrets × {} values, {} RSA-4096 keys, {} unrelated Secrets (rss run)",
        settings.sealed,
        VALUES.len(),
        settings.keys,
        settings.unrelated
    );

    // The rss run's binary is built before anything is measured, so the build does not compete.
    let controller = settings
        .runs
        .contains("rss")
        .then(controller_binary)
        .flatten();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(number("SEALBOX_BENCH_WORKER_THREADS", settings.cores).max(1))
        .enable_all()
        .build()
        .unwrap();
    // The binary logs at info; so does the in-process controller, into the void.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(std::io::sink)
        .init();

    let phase = Instant::now();
    let pairs = generate_keys(settings.keys, settings.cores);
    println!(
        "  generated {} keys in {:.1} s",
        pairs.len(),
        phase.elapsed().as_secs_f64()
    );
    let key_secrets: Vec<Value> = pairs
        .iter()
        .map(|pair| {
            KeySecret::from_key_pair(pair, CONTROLLER_NAMESPACE, "sealed-secrets-key").to_json()
        })
        .collect();
    let phase = Instant::now();
    let hinted = seal_objects(&pairs, settings.sealed, settings.cores);
    println!(
        "  sealed {} values in {:.1} s",
        settings.sealed * VALUES.len(),
        phase.elapsed().as_secs_f64()
    );
    let raw = RawDecrypt::new(&pairs[0]);

    let mut summary = Vec::new();
    if settings.runs.contains("hinted") {
        let warm = settings.runs.contains("warm");
        let mut server = None;
        let run = bracketed(&raw, settings.cores, || {
            let (run, kept) =
                runtime.block_on(in_process(&hinted, &key_secrets, settings.sealed, warm));
            server = Some(kept);
            run
        });
        summary.push(report("hinted", &run, &settings, None));
        if let Some(server) = server.filter(|_| warm) {
            let (restart, failover) = runtime.block_on(warm_runs(&server, settings.sealed));
            summary.extend(report_warm(&run, &restart, &failover));
        }
    }
    if settings.runs.contains("unhinted") {
        let unhinted: Vec<Value> = hinted.iter().cloned().map(without_hint).collect();
        let run = bracketed(&raw, settings.cores, || {
            runtime
                .block_on(in_process(&unhinted, &key_secrets, settings.sealed, false))
                .0
        });
        let expected = expected_unhinted_operations(settings.sealed, settings.keys);
        summary.push(report("unhinted", &run, &settings, Some(expected)));
    }
    if let Some(binary) = controller {
        let unrelated = unrelated_secrets(settings.unrelated);
        let run = bracketed(&raw, settings.cores, || {
            binary_run(
                &runtime,
                &binary,
                &hinted,
                &unrelated,
                &key_secrets,
                settings.sealed,
            )
        });
        summary.push(report_binary(&run, &settings));
    }

    println!("\nsummary (load average now {})", load_average());
    for line in summary {
        println!("  {line}");
    }
    println!("total bench time: {:.0} s", started.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------------------------
// Keys and SealedSecrets.

/// A double holding the CRD, the key Secrets and `objects` (and `others`), before any
/// controller runs.
fn populated_double(keys: &[Value], objects: &[Value], others: &[Value]) -> ApiServer {
    let server = fixtures::double_with_crd().unwrap();
    for key in keys {
        server.put_object(&secrets_gvr(), key.clone()).unwrap();
    }
    for object in objects {
        server
            .put_object(&sealed_secrets_gvr(), object.clone())
            .unwrap();
    }
    for other in others {
        server.put_object(&secrets_gvr(), other.clone()).unwrap();
    }
    server
}

// ---------------------------------------------------------------------------------------------
// The yardstick: raw aws-lc-rs decrypts (`sealbox_tests::bench::RawDecrypt`).

/// The yardstick around one run: single-thread rate before and after, all cores once.
#[derive(Debug, Clone, Copy)]
struct Yardstick {
    before: f64,
    after: f64,
    parallel: f64,
}

impl Yardstick {
    fn single(&self) -> f64 {
        (self.before + self.after) / 2.0
    }
}

// ---------------------------------------------------------------------------------------------
// Runs.

/// What one cold start showed.
struct Run {
    count: usize,
    done: Option<Duration>,
    first: Option<Duration>,
    /// 10 % and 90 % of the Secrets existed at these times.
    tenth: Option<Duration>,
    ninetieth: Option<Duration>,
    /// Start, first Secret, 10 %, 90 %, all: for the phases' rates and idle cores.
    marks: Vec<Mark>,
    wall: Duration,
    /// Core-seconds no process used (/proc/stat idle + iowait).
    idle: f64,
    /// CPU seconds of this process (the in-process runs: controller and double together).
    cpu: f64,
    /// CPU seconds other processes on the machine used meanwhile, and time stolen by the
    /// hypervisor: cores this run could not have.
    others: f64,
    steal: f64,
    operations: Option<u64>,
    /// Until every SealedSecret reported `Synced` (the runs that wait for it).
    synced: Option<Duration>,
    /// API requests by verb and resource, in the in-process runs.
    requests: Vec<(String, usize)>,
    yardstick: Yardstick,
    /// The controller process, in the rss run.
    child: Option<ChildFigures>,
}

struct ChildFigures {
    peak_rss_kib: u64,
    rss_after_kib: u64,
    cpu: f64,
    /// CPU seconds per thread, busiest first: the unsealing (blocking-pool) threads stand out.
    threads: Vec<(String, f64)>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.done
            .map_or(0.0, |done| self.count as f64 / done.as_secs_f64())
    }

    fn steady_rate(&self) -> Option<f64> {
        let span = self.ninetieth?.checked_sub(self.tenth?)?.as_secs_f64();
        (span > 0.0).then(|| 0.8 * self.count as f64 / span)
    }
}

/// Generous: 4 ms of CPU per private-key operation of the unhinted run on one core, plus a minute.
fn deadline(count: usize) -> Duration {
    Duration::from_secs(60) + Duration::from_millis(40 * count as u64)
}

/// Watches the count of Secrets grow from `baseline` to `baseline + count`, noting when the
/// first, 10 %, 90 % and all exist and how idle the machine's cores were in between.
struct Progress {
    started: Instant,
    baseline: usize,
    count: usize,
    marks: Vec<Mark>,
}

/// A moment of the run: how many Secrets existed, and the machine's CPU counters.
#[derive(Debug, Clone, Copy)]
struct Mark {
    at: Duration,
    made: usize,
    machine: MachineCpu,
}

impl Progress {
    fn new(started: Instant, baseline: usize, count: usize, machine: MachineCpu) -> Progress {
        Progress {
            started,
            baseline,
            count,
            marks: vec![Mark {
                at: Duration::ZERO,
                made: 0,
                machine,
            }],
        }
    }

    /// Records `total` Secrets now; true when all exist.
    fn observe(&mut self, total: usize) -> bool {
        let made = total.saturating_sub(self.baseline);
        let thresholds = [1, self.count.div_ceil(10), self.count * 9 / 10, self.count];
        let reached = thresholds.iter().filter(|&&t| made >= t.max(1)).count();
        while self.marks.len() <= reached {
            self.marks.push(Mark {
                at: self.started.elapsed(),
                made,
                machine: MachineCpu::now(),
            });
        }
        made >= self.count
    }

    /// How long to wait before looking again: finer near the end, where it sets the result.
    fn poll_interval(&self) -> Duration {
        if self.marks.len() > 3 {
            Duration::from_millis(25)
        } else {
            Duration::from_millis(250)
        }
    }

    fn at(&self, mark: usize) -> Option<Duration> {
        self.marks.get(mark).map(|m| m.at)
    }
}

/// Arguments for the controller: keys in kube-system, free ports, no renewal (the keys are
/// months old), no leader election (one replica) when the build has it.
fn controller_args(http: &str, metrics: &str) -> Vec<String> {
    let command = Config::command();
    let has = |name: &str| command.get_arguments().any(|a| a.get_long() == Some(name));
    let mut args: Vec<String> = [
        "sealbox-controller",
        "--namespace",
        CONTROLLER_NAMESPACE,
        "--listen-addr",
        http,
        "--key-renew-period",
        "0",
    ]
    .map(str::to_owned)
    .to_vec();
    if has("listen-metrics-addr") {
        args.extend(["--listen-metrics-addr".to_owned(), metrics.to_owned()]);
    }
    if has("leader-elect") {
        args.push("--leader-elect=false".to_owned());
    }
    // Experiments, e.g. SEALBOX_BENCH_CONTROLLER_ARGS="--reconcile-concurrency 256".
    if let Ok(extra) = std::env::var("SEALBOX_BENCH_CONTROLLER_ARGS") {
        args.extend(extra.split_whitespace().map(str::to_owned));
    }
    args
}

/// Measures the yardstick around `cold_start`: single-thread decrypts before and after, all
/// cores before.
fn bracketed(raw: &RawDecrypt, cores: usize, cold_start: impl FnOnce() -> Run) -> Run {
    let parallel = raw.rate_parallel(cores, Duration::from_secs(2));
    let before = raw.rate(Duration::from_secs(3));
    let mut run = cold_start();
    let after = raw.rate(Duration::from_secs(3));
    run.yardstick = Yardstick {
        before,
        after,
        parallel,
    };
    run
}

/// The controller library against the in-process double; with `settle`, it stops only once
/// every SealedSecret reports `Synced` (for the warm run, which gets the double back).
async fn in_process(
    objects: &[Value],
    keys: &[Value],
    count: usize,
    settle: bool,
) -> (Run, ApiServer) {
    let server = populated_double(keys, objects, &[]);
    let baseline = server.count(&secrets_gvr(), None);
    let config = Config::try_parse_from(controller_args("127.0.0.1:0", "127.0.0.1:0")).unwrap();

    let cpu_before = process_cpu(std::process::id()).unwrap_or_default();
    let machine_before = MachineCpu::now();
    let started = Instant::now();
    let running = sealbox_controller::start(server.client(), &config)
        .await
        .unwrap();
    let mut progress = Progress::new(started, baseline, count, machine_before);
    let limit = deadline(count);
    let mut done = None;
    while started.elapsed() < limit {
        if progress.observe(server.count(&secrets_gvr(), None)) {
            done = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(progress.poll_interval()).await;
    }
    let wall = started.elapsed();
    let cpu = process_cpu(std::process::id()).unwrap_or_default() - cpu_before;
    let machine = MachineCpu::now().since(machine_before);
    let operations = running.keys().private_key_operations();
    let requests = requests_by_kind(&server);
    let mut synced = None;
    if settle {
        synced = until_synced(&running, count, started, limit).await.1;
        assert!(
            synced.is_some(),
            "the cold start never reported every SealedSecret Synced"
        );
    }
    running.shutdown().await.unwrap();
    let run = Run {
        count,
        done,
        first: progress.at(1),
        tenth: progress.at(2),
        ninetieth: progress.at(3),
        marks: progress.marks.clone(),
        idle: machine.idle,
        wall,
        cpu,
        others: wall.as_secs_f64() * cores() - machine.idle - machine.steal - cpu,
        steal: machine.steal,
        operations: Some(operations),
        synced,
        requests,
        yardstick: Yardstick {
            before: 0.0,
            after: 0.0,
            parallel: 0.0,
        },
        child: None,
    };
    (run, server)
}

/// How many SealedSecrets `running` reports `Synced=True` (its condition metric). Encoding
/// 10,000 series costs milliseconds: not before as many reconciles have succeeded.
fn synced_count(running: &sealbox_controller::Running, count: usize) -> usize {
    if running.metrics().reconciles("success") < count as u64 {
        return 0;
    }
    let text = running.metrics().encode().unwrap_or_default();
    text.lines()
        .filter(|l| {
            l.starts_with("sealed_secrets_controller_condition_info{")
                && l.contains("condition=\"Synced\"")
                && l.ends_with(" 1")
        })
        .count()
}

/// Waits until `running` reports all `count` SealedSecrets `Synced`, or `limit` passes: when,
/// counted from `started`, the first reconcile succeeded (the caches had synced) and all were
/// `Synced`.
async fn until_synced(
    running: &sealbox_controller::Running,
    count: usize,
    started: Instant,
    limit: Duration,
) -> (Option<Duration>, Option<Duration>) {
    let mut first = None;
    while started.elapsed() < limit {
        if first.is_none() && running.metrics().reconciles("success") > 0 {
            first = Some(started.elapsed());
        }
        if synced_count(running, count) >= count {
            return (first, Some(started.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (first, None)
}

/// What a warm restart or a failover showed.
struct WarmRun {
    count: usize,
    /// Failover: from the leader's crash until the standby held the Lease.
    takeover: Option<Duration>,
    /// Until the controller's first successful reconcile (restart: from its start; failover:
    /// from taking the Lease).
    first: Option<Duration>,
    /// Until it reported every SealedSecret `Synced` (counted as `first`).
    done: Option<Duration>,
    operations: u64,
    unseals: u64,
    /// Secrets written and SealedSecret statuses patched.
    writes: usize,
    /// SealedSecrets whose status says `Synced=True` afterwards.
    synced_status: usize,
    cpu: f64,
    requests: Vec<(String, usize)>,
}

/// Leader election with short timings, so the failover's wait for the crashed leader's Lease
/// to expire stays short; it is reported apart from the time to all `Synced`.
const BENCH_LEASE: [&str; 3] = [
    "--leader-elect-lease-duration=4s",
    "--leader-elect-renew-deadline=3s",
    "--leader-elect-retry-period=500ms",
];

/// A replica with leader election, named `identity`.
fn replica_config(identity: &str) -> Config {
    let mut args: Vec<String> = controller_args("127.0.0.1:0", "127.0.0.1:0")
        .into_iter()
        .filter(|a| a != "--leader-elect=false")
        .collect();
    args.push("--leader-elect=true".to_owned());
    args.push(format!("--leader-elect-identity={identity}"));
    args.extend(BENCH_LEASE.map(str::to_owned));
    Config::try_parse_from(args).unwrap()
}

/// Over `server`, where every SealedSecret is synced already: a warm restart (a new controller
/// with cold caches, as a new process; it takes the free Lease at once), then a failover (a
/// standby that has kept its caches warm takes over when the restarted leader crashes).
async fn warm_runs(server: &ApiServer, count: usize) -> (WarmRun, WarmRun) {
    server.clear_request_log();
    let cpu_before = process_cpu(std::process::id()).unwrap_or_default();
    let started = Instant::now();
    let leader = sealbox_controller::start(server.client(), &replica_config("bench-a"))
        .await
        .unwrap();
    let (first, done) = until_synced(&leader, count, started, deadline(count)).await;
    let restart = warm_figures(server, &leader, count, cpu_before, (None, first, done));

    let standby = sealbox_controller::start(server.client(), &replica_config("bench-b"))
        .await
        .unwrap();
    while !(standby.caches_synced() && standby.keys().is_ready()) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!standby.is_leader());
    server.clear_request_log();
    let cpu_before = process_cpu(std::process::id()).unwrap_or_default();
    let crashed = Instant::now();
    leader.kill();
    while !standby.is_leader() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let takeover = crashed.elapsed();
    let (first, done) = until_synced(&standby, count, Instant::now(), deadline(count)).await;
    let failover = warm_figures(
        server,
        &standby,
        count,
        cpu_before,
        (Some(takeover), first, done),
    );
    standby.shutdown().await.unwrap();
    (restart, failover)
}

/// The figures of `running`'s work on `server` since the request log was cleared.
fn warm_figures(
    server: &ApiServer,
    running: &sealbox_controller::Running,
    count: usize,
    cpu_before: f64,
    (takeover, first, done): (Option<Duration>, Option<Duration>, Option<Duration>),
) -> WarmRun {
    let cpu = process_cpu(std::process::id()).unwrap_or_default() - cpu_before;
    let unseals = running
        .metrics()
        .encode()
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("sealed_secrets_controller_unseal_requests_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(u64::MAX);
    let writes = server
        .request_log()
        .iter()
        .filter(|r| {
            r.is_resource_request()
                && matches!(r.verb.as_str(), "create" | "update" | "patch")
                && (r.resource.starts_with("secrets") || r.resource.starts_with("sealedsecrets"))
        })
        .count();
    let synced_status = server
        .objects(&sealed_secrets_gvr(), None)
        .iter()
        .filter(|o| o["status"]["conditions"][0]["status"] == "True")
        .count();
    WarmRun {
        count,
        takeover,
        first,
        done,
        operations: running.keys().private_key_operations(),
        unseals,
        writes,
        synced_status,
        cpu,
        requests: requests_by_kind(server),
    }
}

/// Prints the cold start, the warm restart and the failover side by side; returns their
/// summary lines.
fn report_warm(cold: &Run, restart: &WarmRun, failover: &WarmRun) -> Vec<String> {
    let secs =
        |d: Option<Duration>| d.map_or("—".to_owned(), |d| format!("{:.2} s", d.as_secs_f64()));
    println!(
        "\nwarm: {} SealedSecrets, hinted cold start vs. restart vs. failover on the same double",
        restart.count
    );
    println!(
        "  {:<40} {:>18} {:>16} {:>16} {:>10} {:>8}",
        "", "to all Synced", "first reconcile", "private-key ops", "API req/SS", "writes"
    );
    let per = |requests: &[(String, usize)], count: usize| {
        requests.iter().map(|(_, n)| n).sum::<usize>() as f64 / count as f64
    };
    println!(
        "  {:<40} {:>18} {:>16} {:>16} {:>10.2} {:>8}",
        "cold start (from the controller's start)",
        secs(cold.synced),
        secs(cold.first),
        cold.operations.unwrap_or_default(),
        per(&cold.requests, cold.count),
        "—",
    );
    for (name, run) in [
        ("warm restart (cold caches, new process)", restart),
        ("failover (warm standby; from the Lease)", failover),
    ] {
        println!(
            "  {:<40} {:>18} {:>16} {:>16} {:>10.2} {:>8}",
            name,
            secs(run.done),
            secs(run.first),
            run.operations,
            per(&run.requests, run.count),
            run.writes,
        );
    }
    for (name, run) in [("warm restart", restart), ("failover", failover)] {
        let kinds: Vec<String> = run
            .requests
            .iter()
            .filter(|(_, n)| *n as f64 / run.count as f64 >= 0.05)
            .map(|(kind, n)| format!("{kind} {:.2}", *n as f64 / run.count as f64))
            .collect();
        println!(
            "  {name}: unseals {}; statuses Synced=True afterwards {}; requests per SealedSecret: {}; \
             CPU of this process (controller and double) {:.1} s",
            run.unseals,
            run.synced_status,
            kinds.join(", "),
            run.cpu
        );
    }
    println!(
        "  failover: the crashed leader's Lease was taken after {} (lease {}, retry period {})",
        secs(failover.takeover),
        BENCH_LEASE[0].rsplit('=').next().unwrap_or_default(),
        BENCH_LEASE[2].rsplit('=').next().unwrap_or_default(),
    );
    let line = |name: &str, run: &WarmRun| {
        format!(
            "{name}: {} synced SealedSecrets all Synced after {}, {} private-key operations",
            run.count,
            run.done.map_or("— (NOT DONE)".to_owned(), |d| format!(
                "{:.2} s",
                d.as_secs_f64()
            )),
            run.operations
        )
    };
    vec![
        line("warm restart", restart),
        format!(
            "{} after taking the Lease ({} after the crash)",
            line("failover", failover),
            secs(failover.takeover)
        ),
    ]
}

/// Resource requests the double answered, counted by verb and resource, most first.
fn requests_by_kind(server: &ApiServer) -> Vec<(String, usize)> {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for record in server.request_log() {
        if record.is_resource_request() {
            *counts
                .entry(format!("{} {}", record.verb, record.resource))
                .or_default() += 1;
        }
    }
    let mut counts: Vec<(String, usize)> = counts.into_iter().collect();
    counts.sort_by_key(|kind| std::cmp::Reverse(kind.1));
    counts
}

/// The release binary as a child process against the served double, with unrelated Secrets.
fn binary_run(
    runtime: &tokio::runtime::Runtime,
    binary: &Path,
    objects: &[Value],
    unrelated: &[Value],
    keys: &[Value],
    count: usize,
) -> Run {
    let server = populated_double(keys, objects, unrelated);
    let baseline = server.count(&secrets_gvr(), None);
    let served = runtime.block_on(server.serve_local()).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let kubeconfig = served
        .write_kubeconfig(scratch.path().join("kubeconfig"))
        .unwrap();
    let http = format!("127.0.0.1:{}", free_port());
    let metrics = format!("127.0.0.1:{}", free_port());
    let log = std::fs::File::create(scratch.path().join("controller.log")).unwrap();

    let bench_cpu_before = process_cpu(std::process::id()).unwrap_or_default();
    let machine_before = MachineCpu::now();
    let started = Instant::now();
    let child = Command::new(binary)
        .args(&controller_args(&http, &metrics)[1..])
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("POD_NAMESPACE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let pid = child.0.id();
    let mut progress = Progress::new(started, baseline, count, machine_before);
    let limit = deadline(count);
    let mut done = None;
    while started.elapsed() < limit {
        if let Some(status) = child.0.try_wait().unwrap() {
            let log =
                std::fs::read_to_string(scratch.path().join("controller.log")).unwrap_or_default();
            panic!("the controller exited ({status}):\n{log}");
        }
        if progress.observe(server.count(&secrets_gvr(), None)) {
            done = Some(started.elapsed());
            break;
        }
        std::thread::sleep(progress.poll_interval());
    }
    let wall = started.elapsed();
    let bench_cpu = process_cpu(std::process::id()).unwrap_or_default() - bench_cpu_before;
    let child_cpu = process_cpu(pid).unwrap_or_default();
    let threads = thread_cpu(pid);
    let machine = MachineCpu::now().since(machine_before);
    let operations = scrape_private_key_operations(&metrics);
    // Settle: the status writes and events of the last objects, then the steady state.
    std::thread::sleep(Duration::from_secs(3));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |field: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let figures = ChildFigures {
        peak_rss_kib: kib("VmHWM:"),
        rss_after_kib: kib("VmRSS:"),
        cpu: child_cpu,
        threads,
    };
    drop(child);
    drop(served);
    Run {
        count,
        done,
        first: progress.at(1),
        tenth: progress.at(2),
        ninetieth: progress.at(3),
        marks: progress.marks.clone(),
        idle: machine.idle,
        wall,
        cpu: bench_cpu,
        others: wall.as_secs_f64() * cores() - machine.idle - machine.steal - bench_cpu - child_cpu,
        steal: machine.steal,
        operations,
        synced: None,
        requests: Vec::new(),
        yardstick: Yardstick {
            before: 0.0,
            after: 0.0,
            parallel: 0.0,
        },
        child: Some(figures),
    }
}

// ---------------------------------------------------------------------------------------------
// Reports.

fn seconds(duration: Option<Duration>) -> String {
    duration.map_or("—".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()))
}

/// Prints one in-process run; returns its summary line.
fn report(name: &str, run: &Run, settings: &Settings, expected_operations: Option<u64>) -> String {
    let values = VALUES.len() as f64;
    let cores = settings.cores as f64;
    let raw = run.yardstick.single();
    let ideal = raw * cores / values;
    let rate = run.rate();
    let ratio = rate / ideal;
    println!("\n{name}: the controller library in process, over ApiServer::client()");
    match run.done {
        Some(done) => println!(
            "  all {} Secrets after {:.1} s (first after {}; 10 % → 90 % in {})",
            run.count,
            done.as_secs_f64(),
            seconds(run.first),
            seconds(
                run.ninetieth
                    .zip(run.tenth)
                    .map(|(b, a)| b.saturating_sub(a))
            ),
        ),
        None => println!("  NOT DONE: gave up after {:.0} s", run.wall.as_secs_f64()),
    }
    println!(
        "  rate: {rate:.0} SealedSecrets/s (10–90 %: {})",
        run.steady_rate()
            .map_or("—".to_owned(), |r| format!("{r:.0}/s"))
    );
    println!(
        "  raw aws-lc-rs RSA-4096 OAEP decrypt, one thread: {raw:.0}/s (before {:.0}, after {:.0}); \
         all {} cores at once: {:.0}/s",
        run.yardstick.before, run.yardstick.after, settings.cores, run.yardstick.parallel
    );
    println!(
        "  ideal = raw × {} cores ÷ {} values = {ideal:.0} SealedSecrets/s → ratio {ratio:.3}",
        settings.cores,
        VALUES.len()
    );
    let mut summary =
        format!("{name}: {rate:.0} SealedSecrets/s, ratio to raw decrypt × cores {ratio:.3}");
    if let Some(operations) = run.operations {
        let per_object = operations as f64 / run.count as f64;
        print!("  private-key operations: {operations} ({per_object:.2} per SealedSecret");
        if let Some(expected) = expected_operations {
            print!(
                "; expected {expected}, {:.2} per SealedSecret",
                expected as f64 / run.count as f64
            );
        }
        println!(")");
        let op_rate = operations as f64 / run.done.unwrap_or(run.wall).as_secs_f64();
        let op_ratio = op_rate / (raw * cores);
        println!("  private-key operations/s: {op_rate:.0} = {op_ratio:.3} of raw × cores");
        // Where the time went: the CPU the RSA operations needed at the raw rate, the rest of
        // this process's CPU (controller and double), other processes, and idle cores.
        let available = run.wall.as_secs_f64() * cores;
        let rsa = operations as f64 / raw;
        let rest = run.cpu - rsa;
        let others = (run.others + run.steal).max(0.0);
        let idle = run.idle;
        let share = |seconds: f64| 100.0 * seconds / available;
        println!(
            "  CPU over {:.1} s × {} cores = {available:.1} s: RSA at the raw rate {rsa:.1} s ({:.0} %), \
             the rest of this process {rest:.1} s ({:.0} %), other processes {others:.1} s ({:.0} %), \
             idle {idle:.1} s ({:.0} %)",
            run.wall.as_secs_f64(),
            settings.cores,
            share(rsa),
            share(rest),
            share(others),
            share(idle),
        );
        summary.push_str(&format!(
            ", {per_object:.2} private-key ops each, ops/s ÷ (raw × cores) {op_ratio:.3}"
        ));
    }
    if !run.requests.is_empty() {
        let total: usize = run.requests.iter().map(|(_, n)| n).sum();
        let per = |n: usize| n as f64 / run.count as f64;
        let kinds: Vec<String> = run
            .requests
            .iter()
            .filter(|(_, n)| per(*n) >= 0.05)
            .map(|(kind, n)| format!("{kind} {:.2}", per(*n)))
            .collect();
        println!(
            "  API requests per SealedSecret: {:.2} ({})",
            per(total),
            kinds.join(", ")
        );
    }
    let (line, adjusted) = contention(run, settings);
    println!("  {line}");
    println!("  phases: {}", phases(run, settings.cores));
    summary.push_str(&format!(
        "; {:.0} % of the cores went to other processes, ratio over the rest {:.3}",
        100.0 * (run.others + run.steal) / (run.wall.as_secs_f64() * cores),
        ratio * adjusted
    ));
    summary
}

/// Prints the rss run; returns its summary line.
fn report_binary(run: &Run, settings: &Settings) -> String {
    let child = run.child.as_ref().expect("the rss run has a child");
    let mib = |kib: u64| kib as f64 / 1024.0;
    let raw = run.yardstick.single();
    let ideal = raw * settings.cores as f64 / VALUES.len() as f64;
    println!(
        "\nrss: the release sealbox-controller binary, the double served on 127.0.0.1, \
         {} unrelated Secrets besides",
        settings.unrelated
    );
    match run.done {
        Some(done) => println!(
            "  all {} Secrets after {:.1} s: {:.0} SealedSecrets/s, ratio {:.3} (raw one thread {raw:.0}/s)",
            run.count,
            done.as_secs_f64(),
            run.rate(),
            run.rate() / ideal
        ),
        None => println!("  NOT DONE: gave up after {:.0} s", run.wall.as_secs_f64()),
    }
    println!(
        "  controller peak RSS (VmHWM): {:.1} MiB; RSS 3 s after: {:.1} MiB",
        mib(child.peak_rss_kib),
        mib(child.rss_after_kib)
    );
    let rsa = (run.count * VALUES.len()) as f64 / raw;
    let available = run.wall.as_secs_f64() * settings.cores as f64;
    println!(
        "  CPU over {:.1} s × {} cores = {available:.1} s: controller process {:.1} s (RSA at the \
         raw rate ≈ {rsa:.1} s, the rest {:.1} s); API double (bench process) {:.1} s; idle {:.1} s",
        run.wall.as_secs_f64(),
        settings.cores,
        child.cpu,
        child.cpu - rsa,
        run.cpu,
        run.idle,
    );
    if let Some(operations) = run.operations {
        println!("  private-key operations (metrics): {operations}");
    }
    println!("  {}", contention(run, settings).0);
    println!("  phases: {}", phases(run, settings.cores));
    let threads: Vec<String> = child
        .threads
        .iter()
        .filter(|(_, cpu)| *cpu >= 0.05)
        .map(|(name, cpu)| format!("{name} {cpu:.1} s"))
        .collect();
    println!("  controller threads by CPU: {}", threads.join(", "));
    format!(
        "rss: controller peak RSS {:.1} MiB with {} SealedSecrets + {} unrelated Secrets; \
         binary over HTTP {:.0} SealedSecrets/s (ratio {:.3})",
        mib(child.peak_rss_kib),
        run.count,
        settings.unrelated,
        run.rate(),
        run.rate() / ideal
    )
}

/// The run in phases (start → first Secret → 10 % → 90 % → all): rate and idle cores in each.
fn phases(run: &Run, cores: usize) -> String {
    let names = ["start → first Secret", "→ 10 %", "10 → 90 %", "→ all"];
    run.marks
        .windows(2)
        .zip(names)
        .map(|(pair, name)| {
            let seconds = pair[1].at.saturating_sub(pair[0].at).as_secs_f64();
            let made = pair[1].made.saturating_sub(pair[0].made);
            let idle = pair[1].machine.since(pair[0].machine).idle;
            let idle_share = if seconds > 0.0 {
                100.0 * idle / (seconds * cores as f64)
            } else {
                0.0
            };
            let rate = if seconds > 0.0 {
                made as f64 / seconds
            } else {
                0.0
            };
            format!("{name} {seconds:.1} s ({rate:.0}/s, cores idle {idle_share:.0} %)")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What other processes took from this run, and the factor that turns a ratio over all cores
/// into one over the cores that were left.
fn contention(run: &Run, settings: &Settings) -> (String, f64) {
    let available = run.wall.as_secs_f64() * settings.cores as f64;
    let taken = (run.others + run.steal).clamp(0.0, available * 0.99);
    let line = format!(
        "other processes on the machine meanwhile: {:.1} s of CPU, steal {:.1} s = {:.0} % of \
         the {available:.1} core-seconds (ratio over what was left: × {:.3})",
        run.others,
        run.steal,
        100.0 * taken / available,
        available / (available - taken)
    );
    (line, available / (available - taken))
}

// ---------------------------------------------------------------------------------------------
// Processes.

/// The controller binary for the rss run: `SEALBOX_BENCH_CONTROLLER`, else the release build
/// next to this bench (built first when cargo runs the bench).
fn controller_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SEALBOX_BENCH_CONTROLLER") {
        return Some(PathBuf::from(path));
    }
    let exe = std::env::current_exe().ok()?;
    // target/release/deps/cold_start-<hash> → target/release
    let dir = exe.parent()?.parent()?;
    let binary = dir.join(format!(
        "sealbox-controller{}",
        std::env::consts::EXE_SUFFIX
    ));
    if let Some(cargo) = std::env::var_os("CARGO") {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
        println!("  building the controller: cargo build --release -p sealbox-controller");
        let status = Command::new(cargo)
            .args(["build", "-q", "--release", "-p", "sealbox-controller"])
            .current_dir(workspace)
            .status()
            .ok()?;
        assert!(status.success(), "building the controller failed");
    }
    if binary.is_file() {
        Some(binary)
    } else {
        println!(
            "  SKIPPING the rss run: {} does not exist (cargo build --release -p sealbox-controller, \
             or set SEALBOX_BENCH_CONTROLLER)",
            binary.display()
        );
        None
    }
}

/// CPU seconds of each thread of process `pid` so far, busiest first.
fn thread_cpu(pid: u32) -> Vec<(String, f64)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut threads: Vec<(String, f64)> = tasks
        .filter_map(|task| {
            let path = task.ok()?.path();
            let stat = std::fs::read_to_string(path.join("stat")).ok()?;
            let name = stat.split_once('(')?.1.rsplit_once(')')?.0.to_owned();
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let ticks =
                fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
            Some((name, ticks / CLOCK_TICKS))
        })
        .collect();
    threads.sort_by(|a, b| b.1.total_cmp(&a.1));
    threads
}

fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1, usize::from) as f64
}

/// The controller's private-key operation counter from its metrics endpoint, if it has one.
fn scrape_private_key_operations(metrics: &str) -> Option<u64> {
    let addr: SocketAddr = metrics.parse().ok()?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    body.lines()
        .filter(|line| !line.starts_with('#') && line.contains("private_key"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|value| value as u64)
        .max()
}
