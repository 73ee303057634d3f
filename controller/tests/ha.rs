//! Several replicas of the real controller (`sealbox_controller::start`, leader election on)
//! against one API double: exactly one leads (reconciles, generates keys), every one serves the
//! HTTP API, and leadership moves on release, on a crash (after the Lease expires) and when the
//! leader cannot renew — without losing a SealedSecret or writing a Secret twice.
//!
//! Short timings for the test: lease 2s, renew deadline 1.5s, retry period 200ms.

mod process;
mod support;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams};
use process::{ControllerProcess, SHORT_LEASE};
use sealbox_controller::Running;
use sealbox_crds::SealedSecret;
use sealbox_crypto::Certificate;
use sealbox_crypto::key_secret::KEY_LABEL;
use sealbox_tests::fixtures::Wait;
use sealbox_tests::{ApiServer, FaultRule};
use support::{BoxError, CONTROLLER_NS, NS, TestResult, http_get, secret_writes, until};
use tokio::time::Instant;

/// The Lease the replicas take turns holding, named after the controller as deployed.
const LEASE: &str = sealbox_tests::fixtures::CONTROLLER_NAME;
const LEASE_DURATION: Duration = Duration::from_secs(2);
const RETRY_PERIOD: Duration = Duration::from_millis(200);

/// A replica named `identity` with the test's short leader-election timings.
async fn replica(server: &ApiServer, identity: &str) -> Result<Running, BoxError> {
    let identity = format!("--leader-elect-identity={identity}");
    support::start_controller(
        server,
        &[
            "--leader-elect-lease-duration=2s",
            "--leader-elect-renew-deadline=1500ms",
            "--leader-elect-retry-period=200ms",
            identity.as_str(),
        ],
    )
    .await
}

fn holder(server: &ApiServer) -> Option<String> {
    server
        .get::<Lease>(Some(CONTROLLER_NS), LEASE)
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

/// `sealed_secrets_controller_unseal_requests_total` of one replica.
fn unseals(running: &Running) -> u64 {
    let text = running.metrics().encode().unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("sealed_secrets_controller_unseal_requests_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Creates SealedSecret `NS/name` with its own name as `value`, sealed for `certificate` as the
/// CLI would with the fetched cert.
async fn create_sealed(server: &ApiServer, certificate: &Certificate, name: &str) -> TestResult {
    let sealed = support::sealed_secret(certificate, NS, name, &[("value", name)], &[]);
    Api::<SealedSecret>::namespaced(server.client(), NS)
        .create(&PostParams::default(), &sealed)
        .await?;
    Ok(())
}

/// The `value` of Secret `NS/name`.
fn unsealed(server: &ApiServer, name: &str) -> Option<String> {
    let secret = server.get::<Secret>(Some(NS), name)?;
    let value = secret.data?.remove("value")?;
    String::from_utf8(value.0).ok()
}

/// Two replicas from scratch: one leads and alone generates the first key and unseals; both
/// load the key and serve it; a graceful shutdown of the leader releases the Lease and the
/// other takes over at its next try; a crashed leader is replaced once its Lease expires. Every
/// SealedSecret's Secret is written exactly once throughout.
///
/// Alone: it times handovers, and the real-plane test of this binary must not run beside it.
#[test]
fn one_leader_reconciles_and_hands_over_on_release_and_on_crash() -> TestResult {
    support::run_alone(one_leader_reconciles_and_hands_over_on_release_and_on_crash_on_the_double)
}

async fn one_leader_reconciles_and_hands_over_on_release_and_on_crash_on_the_double() -> TestResult
{
    let server = support::api_server(&[]).await?;
    let a = replica(&server, "replica-a").await?;
    let b = replica(&server, "replica-b").await?;

    until("a leader", || a.is_leader() || b.is_leader()).await?;
    until("both ready", || a.is_ready() && b.is_ready()).await?;
    let (leader, follower) = if a.is_leader() { (a, b) } else { (b, a) };
    assert!(!follower.is_leader());
    assert_eq!(holder(&server).as_deref(), leader.identity());

    // The leader generated exactly one key; the follower loaded it and serves it too.
    let keys = Api::<Secret>::namespaced(server.client(), CONTROLLER_NS)
        .list(&ListParams::default().labels(KEY_LABEL))
        .await?;
    assert_eq!(keys.items.len(), 1, "exactly one replica generates keys");
    let (code, pem) = http_get(follower.local_addr(), "/v1/cert.pem").await?;
    assert_eq!(code, 200);
    assert_eq!(http_get(leader.local_addr(), "/v1/cert.pem").await?.1, pem);
    let certificate = Certificate::from_pem(pem.as_bytes())?;

    // Only the leader unseals.
    let names: Vec<String> = (0..5).map(|i| format!("db{i}")).collect();
    for name in &names {
        create_sealed(&server, &certificate, name).await?;
    }
    until("every Secret", || {
        names
            .iter()
            .all(|n| unsealed(&server, n).as_deref() == Some(n))
    })
    .await?;
    assert_eq!(unseals(&leader), 5);
    assert_eq!(unseals(&follower), 0, "the follower must not reconcile");
    // The follower verifies as well as the leader would.
    assert!(follower.is_ready());

    // Graceful shutdown: running reconciles finish, the Lease is released, the other takes it.
    let stopping = Instant::now();
    let stopped = leader.identity().map(str::to_owned);
    leader.shutdown().await?;
    assert_ne!(holder(&server), stopped, "released on shutdown");
    until("the follower to take over", || follower.is_leader()).await?;
    let handover = stopping.elapsed();
    eprintln!("handover after a graceful shutdown (Lease released): {handover:?}");
    assert!(
        handover < LEASE_DURATION,
        "a released Lease is taken at the next try, not after expiry: {handover:?}"
    );
    let new_leader = follower;
    assert_eq!(holder(&server).as_deref(), new_leader.identity());

    // The new leader re-reads everything and writes nothing that is in sync.
    create_sealed(&server, &certificate, "after-release").await?;
    until("the Secret made after the handover", || {
        unsealed(&server, "after-release").as_deref() == Some("after-release")
    })
    .await?;
    until("the new leader's caches", || new_leader.is_ready()).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for name in &names {
        assert_eq!(secret_writes(&server, NS, name), 1, "{name} written once");
    }
    // ... and unseals only the new one: the others' proofs of authorship hold.
    assert_eq!(
        unseals(&new_leader),
        1,
        "the new leader re-unsealed synced objects"
    );

    // A third replica joins as a follower; then the leader crashes without releasing.
    let c = replica(&server, "replica-c").await?;
    until("replica c ready", || c.is_ready()).await?;
    assert!(!c.is_leader());
    // Let c observe the Lease being renewed for a while, as a long-running follower would.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let crashed_at = Instant::now();
    let crashed = new_leader.identity().map(str::to_owned);
    new_leader.kill();
    assert_eq!(holder(&server), crashed, "a crash releases nothing");
    until("replica c to take over", || c.is_leader()).await?;
    let takeover = crashed_at.elapsed();
    eprintln!("takeover after a crash (no release): {takeover:?} (lease 2s, retry 200ms)");
    assert!(
        takeover >= LEASE_DURATION - RETRY_PERIOD * 2,
        "the Lease must expire first: {takeover:?}"
    );
    assert!(
        takeover <= LEASE_DURATION + RETRY_PERIOD * 5,
        "within the lease duration of the last renewal (+ a retry, + slack for a busy machine): \
         {takeover:?}"
    );
    assert_eq!(holder(&server).as_deref(), Some("replica-c"));
    let lease = server
        .get::<Lease>(Some(CONTROLLER_NS), LEASE)
        .ok_or("lease")?;
    assert_eq!(lease.spec.and_then(|s| s.lease_transitions), Some(2));

    create_sealed(&server, &certificate, "after-crash").await?;
    until("the Secret made after the crash", || {
        unsealed(&server, "after-crash").as_deref() == Some("after-crash")
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(unseals(&c), 1, "the new leader re-unsealed synced objects");
    for name in names
        .iter()
        .map(String::as_str)
        .chain(["after-release", "after-crash"])
    {
        assert_eq!(
            secret_writes(&server, NS, name),
            1,
            "{name} written exactly once"
        );
        assert_eq!(
            unsealed(&server, name).as_deref(),
            Some(name),
            "{name} kept"
        );
    }
    c.shutdown().await?;
    Ok(())
}

/// A leader that cannot renew its Lease stops reconciling once the renew deadline passes —
/// before the Lease could expire for anyone else — and leadership resumes when the API does.
///
/// Alone: it times handovers, and the real-plane test of this binary must not run beside it.
#[test]
fn a_leader_that_cannot_renew_stops_reconciling() -> TestResult {
    support::run_alone(a_leader_that_cannot_renew_stops_reconciling_on_the_double)
}

async fn a_leader_that_cannot_renew_stops_reconciling_on_the_double() -> TestResult {
    let server = support::api_server(&[]).await?;
    let a = replica(&server, "replica-a").await?;
    until("a to lead", || a.is_leader() && a.is_ready()).await?;
    let b = replica(&server, "replica-b").await?;
    until("b ready", || b.is_ready()).await?;
    let pem = http_get(a.local_addr(), "/v1/cert.pem").await?.1;
    let certificate = Certificate::from_pem(pem.as_bytes())?;

    // Every Lease request fails from now on.
    server.fail_next(FaultRule::status(500).resource("leases").times(usize::MAX));
    let cut_off = Instant::now();
    until("a to step down", || !a.is_leader()).await?;
    let stepped_down = cut_off.elapsed();
    eprintln!(
        "leader stepped down {stepped_down:?} after its renewals started failing (renew deadline 1.5s)"
    );
    assert!(
        stepped_down < LEASE_DURATION,
        "it stops before the Lease expires for the others: {stepped_down:?}"
    );
    assert!(!b.is_leader());

    // Leaderless: nothing is unsealed, but both replicas still serve the API.
    let (unseals_a, unseals_b) = (unseals(&a), unseals(&b));
    create_sealed(&server, &certificate, "waiting").await?;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(unsealed(&server, "waiting"), None);
    assert_eq!((unseals(&a), unseals(&b)), (unseals_a, unseals_b));
    assert_eq!(http_get(a.local_addr(), "/v1/cert.pem").await?.0, 200);
    assert_eq!(http_get(b.local_addr(), "/v1/cert.pem").await?.0, 200);

    // The API server is back: one replica leads again and unseals what waited, once.
    server.clear_faults();
    until("a leader again", || a.is_leader() || b.is_leader()).await?;
    until("the waiting Secret", || {
        unsealed(&server, "waiting").as_deref() == Some("waiting")
    })
    .await?;
    assert!(!(a.is_leader() && b.is_leader()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(secret_writes(&server, NS, "waiting"), 1);
    a.shutdown().await?;
    b.shutdown().await?;
    Ok(())
}

/// Successful Lease writes (renewals, takeovers) in the request log after the `skip` first.
fn lease_writes_after(server: &ApiServer, skip: usize) -> usize {
    server
        .request_log()
        .iter()
        .skip(skip)
        .filter(|r| r.resource == "leases" && r.method == "PUT" && r.status == 200)
        .count()
}

/// client-go's rule: a renewal that fails — a 500, or a 409 because the Lease changed since it
/// was read — is tried again every retry period until the renew deadline passes; the leader
/// steps down only then. (Issue 20, finding 3: one 409 used to make it step down.)
#[test]
fn a_failed_or_conflicting_renewal_is_retried_until_the_renew_deadline() -> TestResult {
    support::run_alone(a_failed_or_conflicting_renewal_is_retried_on_the_double)
}

async fn a_failed_or_conflicting_renewal_is_retried_on_the_double() -> TestResult {
    let server = support::api_server(&[0]).await?;
    let a = replica(&server, "replica-a").await?;
    until("a to lead", || a.is_leader() && a.is_ready()).await?;
    let terms = a.leader_terms();
    let transitions = || {
        server
            .get::<Lease>(Some(CONTROLLER_NS), LEASE)
            .and_then(|l| l.spec)
            .and_then(|s| s.lease_transitions)
    };
    let transitions_before = transitions();

    // Two renewals in a row fail (0.4s of the 1.5s deadline): a 500, then a 409.
    server.fail_next(FaultRule::status(500).resource("leases").method("PUT"));
    server.fail_next(FaultRule::status(409).resource("leases").method("PUT"));
    until("both faults to strike", || {
        server.fault_report().errors(409) == 1
    })
    .await?;
    let struck = server.request_log().len();
    // Three renewals later, a new term would have listed SealedSecrets long since.
    until("three renewals after the faults", || {
        lease_writes_after(&server, struck) >= 3
    })
    .await?;
    assert!(a.is_leader());
    assert_eq!(
        a.leader_terms(),
        terms,
        "the leader stepped down and began a new term after a failed renewal"
    );
    assert_eq!(transitions(), transitions_before);
    assert_eq!(holder(&server).as_deref(), Some("replica-a"));
    a.shutdown().await?;
    Ok(())
}

/// How many SealedSecrets in `NS` replica `running` reports `Synced=True` (its condition
/// metric, which a replica sets only for what it reconciled itself).
fn synced_by(running: &Running) -> usize {
    let namespace = format!("namespace=\"{NS}\"");
    running
        .metrics()
        .encode()
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            l.starts_with("sealed_secrets_controller_condition_info{")
                && l.contains(&namespace)
                && l.contains("condition=\"Synced\"")
                && l.ends_with(" 1")
        })
        .count()
}

/// Issue 20, finding 4: a standby keeps its caches warm. While another replica leads, the
/// follower lists and watches SealedSecrets and their Secrets and writes nothing; when the
/// leader crashes, the follower's term starts from those caches: after the takeover nothing is
/// listed again, nothing is unsealed or written, each SealedSecret costs one read of its Secret
/// (the proof of authorship), and all of them are reported Synced.
#[test]
fn a_warm_standby_takes_over_without_listing_or_unsealing() -> TestResult {
    support::run_alone(a_warm_standby_takes_over_on_the_double)
}

async fn a_warm_standby_takes_over_on_the_double() -> TestResult {
    let server = support::api_server(&[0]).await?;
    let a = replica(&server, "replica-a").await?;
    until("a to lead", || a.is_leader() && a.is_ready()).await?;
    let b = replica(&server, "replica-b").await?;
    until("b ready", || b.is_ready()).await?;
    let pem = http_get(a.local_addr(), "/v1/cert.pem").await?.1;
    let certificate = Certificate::from_pem(pem.as_bytes())?;

    // Made while b follows: b sees them come and their Secrets written, and does nothing.
    let names: Vec<String> = (0..20).map(|i| format!("warm{i}")).collect();
    for name in &names {
        create_sealed(&server, &certificate, name).await?;
    }
    until("every Secret, Synced", || synced_by(&a) == names.len()).await?;
    until("b's caches", || b.caches_synced()).await?;
    assert_eq!((b.leader_terms(), unseals(&b), synced_by(&b)), (0, 0, 0));

    a.kill();
    // The takeover waits for the Lease to expire (2s): b's first Lease write comes after this.
    server.clear_request_log();
    until("b to take over", || b.is_leader()).await?;
    until("b to report every SealedSecret Synced", || {
        synced_by(&b) == names.len()
    })
    .await?;
    let log = server.request_log();

    let takeover = log
        .iter()
        .position(|r| r.resource == "leases" && r.method == "PUT" && r.status == 200)
        .ok_or("no Lease write by the new leader")?;
    let lists: Vec<String> = log
        .iter()
        .filter(|r| r.verb == "list")
        .map(|r| format!("{} {:?}", r.resource, r.namespace))
        .collect();
    assert_eq!(lists, Vec::<String>::new(), "the new leader listed again");
    for name in &names {
        let reads: Vec<usize> = log
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                r.resource == "secrets" && r.verb == "get" && r.name.as_deref() == Some(name)
            })
            .map(|(i, _)| i)
            .collect();
        assert_eq!(
            reads.len(),
            1,
            "{name}: one read of its Secret for the proof"
        );
        assert!(reads[0] > takeover, "{name} read before the takeover");
        assert_eq!(secret_writes(&server, NS, name), 0, "{name} written again");
    }
    let writes = log
        .iter()
        .filter(|r| {
            matches!(r.verb.as_str(), "create" | "update" | "patch")
                && (r.resource.starts_with("secrets") || r.resource.starts_with("sealedsecrets"))
        })
        .count();
    assert_eq!(writes, 0, "Secret or status writes after the takeover");
    assert_eq!(b.keys().private_key_operations(), 0);
    assert_eq!((b.leader_terms(), unseals(&b)), (1, 0));
    b.shutdown().await?;
    Ok(())
}

/// Issue 20, finding 3: after `kill -9` of the leader, another replica leads within the lease
/// duration plus 2 s. Two controller processes against the served double with the default
/// retry period (2s; lease 5s and renew deadline 4s keep the test short: the retry period,
/// not the lease, decides the overshoot). Three rounds, each killing the leader just after it
/// renewed, as the worst case: a follower that saw the renewal late counts the lease from then.
#[test]
fn failover_after_kill_takes_at_most_the_lease_duration_plus_two_seconds() -> TestResult {
    support::run_alone(failover_after_kill_on_the_double)
}

const FAILOVER_LEASE: Duration = Duration::from_secs(5);
const FAILOVER_TIMINGS: [&str; 3] = [
    "--leader-elect-lease-duration=5s",
    "--leader-elect-renew-deadline=4s",
    "--leader-elect-retry-period=2s",
];

async fn failover_after_kill_on_the_double() -> TestResult {
    let server = support::api_server(&[0]).await?;
    let served = server.serve_local().await?;
    let dir = process::scratch_dir("ha-failover")?;
    let kubeconfig = served.write_kubeconfig(dir.join("kubeconfig"))?;
    let spawn =
        |identity: &str| ControllerProcess::spawn(&kubeconfig, &dir, identity, &FAILOVER_TIMINGS);
    let mut replicas = vec![spawn("replica-0")?, spawn("replica-1")?];
    let mut failovers = Vec::new();
    for round in 0..3 {
        let leader = until_some_within("a leader", REAL_WAIT.timeout, || holder(&server)).await?;
        // The follower(s) watch a few renewals, as long-running followers would.
        tokio::time::sleep(FAILOVER_LEASE).await;
        let renewed = renew_time(&server);
        until_some_within("a renewal", REAL_WAIT.timeout, || {
            (renew_time(&server) != renewed).then_some(())
        })
        .await?;
        let killed_at = Instant::now();
        let index = replicas
            .iter()
            .position(|r| r.identity == leader)
            .ok_or_else(|| format!("the Lease holder {leader:?} is no replica"))?;
        replicas.remove(index).kill();
        let next = until_some_within("another leader", REAL_WAIT.timeout, || {
            holder(&server).filter(|h| *h != leader)
        })
        .await?;
        let failover = killed_at.elapsed();
        eprintln!("round {round}: {next} took over {failover:?} after {leader} was killed");
        failovers.push(failover);
        replicas.push(spawn(&format!("replica-{}", round + 2))?);
    }
    let worst = failovers.iter().max().copied().unwrap_or_default();
    assert!(
        worst <= FAILOVER_LEASE + Duration::from_secs(2),
        "failover took {worst:?} (all: {failovers:?}), more than the lease duration \
         ({FAILOVER_LEASE:?}) + 2s; logs in {}",
        dir.display()
    );
    drop(replicas);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn renew_time(server: &ApiServer) -> Option<String> {
    server
        .get::<Lease>(Some(CONTROLLER_NS), LEASE)
        .and_then(|l| l.spec)
        .and_then(|s| s.renew_time)
        .map(|t| t.0.to_string())
}

/// Polls `probe` (cheap in-process reads) until it returns something, for at most `wait`.
async fn until_some_within<T>(
    what: &str,
    wait: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> TestResult<T> {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(value) = probe() {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out after {wait:?} waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The real control plane

/// Two replicas of the controller binary on the real control plane, each with the
/// ServiceAccount token of deploy/'s RBAC: one takes the real Lease and alone generates the
/// first key and unseals; the follower serves the same certificate; when the leader process is
/// killed the follower takes the Lease once it expires and unseals what comes next. Every
/// Secret is written exactly once (the API server's audit log), and no request is refused
/// (`run_real`).
async fn two_controller_processes_fail_over_through_a_real_lease(
    kind: support::Kind,
) -> TestResult {
    let backend = support::Backend::start(kind, &[]).await?;
    let real = backend.real().ok_or("the real plane")?;
    let client = backend.client();
    // Logs go into the plane's directory, removed with it.
    let dir = real.plane().dir();
    let mut replicas = vec![
        ControllerProcess::spawn(real.controller_kubeconfig(), dir, "replica-a", &SHORT_LEASE)?,
        ControllerProcess::spawn(real.controller_kubeconfig(), dir, "replica-b", &SHORT_LEASE)?,
    ];
    let leases: Api<Lease> = Api::namespaced(client.clone(), CONTROLLER_NS);
    let holder = || async {
        Ok(leases
            .get_opt(LEASE)
            .await?
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity))
    };
    let first = REAL_WAIT
        .until_found("a leader", holder)
        .await
        .map_err(|e| {
            format!(
                "{e}; logs:\n{}\n{}",
                replicas[0].log_text(),
                replicas[1].log_text()
            )
        })?;
    let keys: Api<Secret> = Api::namespaced(client.clone(), CONTROLLER_NS);
    let key_names = REAL_WAIT
        .until_found("the first key", || async {
            let listed = keys.list(&ListParams::default().labels(KEY_LABEL)).await?;
            Ok((!listed.items.is_empty()).then_some(listed.items.len()))
        })
        .await?;
    let leader_index = replicas
        .iter()
        .position(|r| r.identity == first)
        .ok_or_else(|| format!("the Lease holder {first:?} is neither replica"))?;
    let follower = &replicas[1 - leader_index];
    let pem = REAL_WAIT
        .until_found("the follower serving the certificate", || async {
            Ok(match http_get(follower.http, "/v1/cert.pem").await {
                Ok((200, pem)) => Some(pem),
                _ => None,
            })
        })
        .await?;
    assert_eq!(
        http_get(replicas[leader_index].http, "/v1/cert.pem")
            .await?
            .1,
        pem,
        "both replicas serve the one key"
    );
    let certificate = Certificate::from_pem(pem.as_bytes())?;

    let sealed: Api<SealedSecret> = Api::namespaced(client.clone(), NS);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let create = |name: &'static str| {
        let sealed = sealed.clone();
        let certificate = &certificate;
        async move {
            let object = support::sealed_secret(certificate, NS, name, &[("value", name)], &[]);
            sealed.create(&PostParams::default(), &object).await?;
            Ok::<_, BoxError>(())
        }
    };
    let unsealed = |name: &'static str| {
        let secrets = secrets.clone();
        async move {
            let value = secrets
                .get_opt(name)
                .await?
                .and_then(|s| s.data)
                .and_then(|mut d| d.remove("value"))
                .map(|v| String::from_utf8_lossy(&v.0).into_owned());
            Ok::<_, BoxError>((value.as_deref() == Some(name)).then_some(()))
        }
    };
    for name in ["before-a", "before-b"] {
        create(name).await?;
    }
    for name in ["before-a", "before-b"] {
        REAL_WAIT.until_found(name, || unsealed(name)).await?;
    }

    // The leader crashes: nothing is released, the follower waits for the Lease to expire.
    let killed = replicas.remove(leader_index);
    let killed_at = Instant::now();
    drop(killed);
    let second = REAL_WAIT
        .until_found("the follower to take the Lease", || async {
            Ok(holder().await?.filter(|h| *h != first))
        })
        .await?;
    let failover = killed_at.elapsed();
    eprintln!(
        "failover after kill -9 through the real Lease: {failover:?} (lease 2s, retry 200ms)"
    );
    assert!(
        failover <= LEASE_DURATION + Duration::from_secs(2),
        "failover after kill -9 took {failover:?}, more than the lease duration + 2s"
    );
    assert_eq!(second, replicas[0].identity);
    let lease = leases.get(LEASE).await?;
    assert_eq!(lease.spec.and_then(|s| s.lease_transitions), Some(1));
    create("after-crash").await?;
    REAL_WAIT
        .until_found("after-crash", || unsealed("after-crash"))
        .await?;
    // The new leader generates no key: it loaded the first.
    let listed = keys.list(&ListParams::default().labels(KEY_LABEL)).await?;
    assert_eq!(listed.items.len(), key_names, "no second key");

    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = backend.request_log();
    for name in ["before-a", "before-b", "after-crash"] {
        assert_eq!(
            support::secret_writes_in(&log, NS, name),
            1,
            "{name} written exactly once"
        );
    }
    drop(replicas);
    Ok(())
}

/// How long the real plane's controllers may take (a Lease expiry, key generation, a loaded
/// machine).
const REAL_WAIT: Wait = Wait::new(Duration::from_secs(60), Duration::from_millis(100));

#[test]
fn real_two_controller_processes_fail_over_through_a_real_lease() -> TestResult {
    support::run_real(two_controller_processes_fail_over_through_a_real_lease)
}
