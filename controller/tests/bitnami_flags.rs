//! Bitnami's full controller flag set, on the command line and as `SEALED_SECRETS_`
//! variables: every flag is accepted, and the ones Sealbox acts on take effect (API double).
//! Then the flags whose effect takes a scenario of its own: --max-unseal-retries,
//! --kubeclient-qps/--kubeclient-burst, and the metrics Bitnami's dashboards read.

mod support;

use std::collections::BTreeMap;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use sealbox_controller::client_rate::{self, ClientRate};
use sealbox_controller::flag_env;
use sealbox_crds::SealedSecret;
use sealbox_crypto::key_secret::KEY_LABEL;
use sealbox_tests::{ApiServer, FaultRule};
use support::{
    CONTROLLER_NS, NS, TestResult, api_server, pair, start_controller, until, until_some,
};

/// Bitnami v0.40.0's flags (cmd/controller and pkg/controller) with values of our own, and
/// Sealbox's test settings (no fixed ports, 2048-bit keys).
fn bitnami_flags(cutoff: &str) -> Vec<(&'static str, String)> {
    [
        ("key-prefix", "sealed-secrets-key"),
        ("key-size", "2048"),
        ("key-ttl", "43800h"),
        ("my-cn", "flags-test"),
        ("key-renew-period", "0"),
        ("key-order-priority", "SecretCreationTimestamp"),
        ("accept-deprecated-v1-data", "T"),
        ("key-cutoff-time", cutoff),
        ("all-namespaces", "true"),
        ("additional-namespaces", NS),
        ("label-selector", "team=a"),
        ("rate-limit", "3"),
        ("rate-limit-burst", "4"),
        ("metrics-omit-secret-labels", "1"),
        ("privatekey-annotations", "owner=sec,note=x"),
        ("privatekey-labels", "backup=yes"),
        ("old-gc-behavior", "false"),
        ("update-status", "True"),
        ("watch-for-secrets", "true"),
        ("skip-recreate", "t"),
        ("log-info-stdout", "F"),
        ("log-level", "INFO"),
        ("log-format", "json"),
        ("max-unseal-retries", "3"),
        ("kubeclient-qps", "5"),
        ("kubeclient-burst", "10"),
        ("listen-addr", "127.0.0.1:0"),
        ("listen-metrics-addr", "127.0.0.1:0"),
        ("read-timeout", "90s"),
        ("write-timeout", "1m"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect()
}

#[tokio::test]
async fn bitnami_flags_on_the_command_line() -> TestResult {
    let cutoff = cutoff_now().await?;
    let mut args = vec![
        "sealbox-controller".to_owned(),
        format!("--namespace={CONTROLLER_NS}"),
    ];
    args.extend(
        bitnami_flags(&cutoff)
            .into_iter()
            .map(|(k, v)| format!("--{k}={v}")),
    );
    check(flag_env::parse(args, &BTreeMap::new())?).await
}

#[tokio::test]
async fn bitnami_flags_as_sealed_secrets_variables() -> TestResult {
    let cutoff = cutoff_now().await?;
    let vars = bitnami_flags(&cutoff)
        .into_iter()
        .map(|(k, v)| (flag_env::env_name(k), v))
        .collect();
    let args = [
        "sealbox-controller".to_owned(),
        format!("--namespace={CONTROLLER_NS}"),
    ];
    check(flag_env::parse(args, &vars)?).await
}

/// Now, in --key-cutoff-time's format, a second after the test key's NotBefore.
async fn cutoff_now() -> TestResult<String> {
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    Ok(jiff::fmt::rfc2822::to_string(&jiff::Zoned::now())?)
}

async fn check(parsed: flag_env::Parsed) -> TestResult {
    // Every flag given a value is one Sealbox acts on.
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    let config = parsed.config;
    // The settings the controller reads from its configuration.
    assert_eq!(
        config.watched_namespaces(),
        Some(vec![CONTROLLER_NS.to_owned(), NS.to_owned()]),
        "additional namespaces narrow the watch, as Bitnami's"
    );
    assert_eq!(config.label_selector.as_deref(), Some("team=a"));
    assert_eq!((config.rate_limit, config.rate_limit_burst), (3, 4));
    assert!(config.accept_deprecated_v1_data && config.update_status);
    assert!(config.skip_recreate && !config.log_info_stdout);
    assert_eq!(config.read_timeout.as_secs(), 90);
    assert_eq!(config.my_cn, "flags-test");
    assert_eq!(config.unseal_retries(), 3);
    assert_eq!(config.client_rate(), ClientRate::new(5.0, 10));
    assert!(tracing_subscriber::EnvFilter::try_new(config.log_directives()).is_ok());

    // What the running controller does with them.
    let server = api_server(&[0]).await?;
    let running = sealbox_controller::start(server.client(), &config).await?;
    let keys: Api<Secret> = Api::namespaced(server.client(), CONTROLLER_NS);
    let list = ListParams::default().labels(KEY_LABEL);
    until("a key forced by --key-cutoff-time", || {
        running.keys().snapshot().len() == 2
    })
    .await?;
    let generated: Vec<Secret> = keys
        .list(&ListParams::default().labels("backup=yes"))
        .await?
        .items;
    assert_eq!(
        generated.len(),
        1,
        "the new key carries --privatekey-labels"
    );
    let annotations = generated[0]
        .metadata
        .annotations
        .clone()
        .unwrap_or_default();
    assert_eq!(annotations.get("owner").map(String::as_str), Some("sec"));
    assert_eq!(annotations.get("note").map(String::as_str), Some("x"));
    // --key-ttl: the new key's certificate is valid for 43800h.
    let newest = running.keys().snapshot();
    let cert = newest.sealing_key().ok_or("a sealing key")?.certificate();
    let validity = cert.not_after().duration_since(cert.not_before())?;
    assert_eq!(validity, Duration::from_secs(43_800 * 3600));

    // SIGUSR1's rotation.
    until("leading", || running.is_leader()).await?;
    running.rotate_now();
    until("a key on request", || running.keys().snapshot().len() == 3).await?;
    assert_eq!(keys.list(&list).await?.items.len(), 3);

    // --key-order-priority=SecretCreationTimestamp: a key restored from a backup (an older
    // certificate in a Secret created last) seals; by CertNotBefore the rotated one would.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let restored = support::key_secret(pair(1), "sealed-secrets-keyrestored");
    keys.create(&Default::default(), &restored).await?;
    until("the restored key loaded", || {
        running.keys().snapshot().len() == 4
    })
    .await?;
    let (_, served) = support::http_get(running.local_addr(), "/v1/cert.pem").await?;
    assert_eq!(
        served,
        pair(1).certificate.to_pem(),
        "the restored key seals"
    );

    let (_, metrics) = support::http_get(running.metrics_addr(), "/metrics").await?;
    assert!(metrics.contains("sealed_secrets_controller_unseal_requests"));
    running.shutdown().await?;
    Ok(())
}

/// SealedSecret `NS/name` sealed for test key `key`, labelled for Bitnami's instance label.
fn sealed(key: usize, name: &str) -> SealedSecret {
    let mut sealed = sealbox_tests::fixtures::sealed_secret(
        &pair(key).certificate,
        NS,
        name,
        &[("value", "v")],
        &[],
    );
    sealed.metadata.labels = Some(support::map(&[("app.kubernetes.io/instance", "shop")]));
    sealed
}

fn sealed_secrets(server: &ApiServer) -> Api<SealedSecret> {
    Api::namespaced(server.client(), NS)
}

/// The Synced condition's status of SealedSecret `NS/name` once its observedGeneration is
/// current.
fn synced(server: &ApiServer, name: &str) -> Option<String> {
    let sealed = server.get::<SealedSecret>(Some(NS), name)?;
    let status = sealed.status.as_ref()?;
    (status.observed_generation == sealed.metadata.generation)
        .then(|| sealed.synced_condition().map(|c| c.status.clone()))
        .flatten()
}

/// Bitnami's rule: a failing reconcile is retried --max-unseal-retries times, then the
/// controller gives up (the status says why) until the SealedSecret changes.
#[tokio::test]
async fn max_unseal_retries_then_it_gives_up_until_a_change() -> TestResult {
    let server = api_server(&[0]).await?;
    let running = start_controller(
        &server,
        &[
            "--leader-elect=false",
            "--max-unseal-retries=1",
            "--resync-period=0",
        ],
    )
    .await?;
    until("ready", || running.is_ready()).await?;
    server.fail_next(
        FaultRule::status(500)
            .resource("secrets")
            .path_contains("/flaky")
            .times(usize::MAX),
    );
    sealed_secrets(&server)
        .create(&PostParams::default(), &sealed(0, "flaky"))
        .await?;
    // One attempt and one retry fail; the second failure gives up and is reported (that
    // status write is no change that starts another round).
    until("two failed reconciles", || {
        running.metrics().reconciles("error") == 2
    })
    .await?;
    until("Synced=False reported", || {
        synced(&server, "flaky").as_deref() == Some("False")
    })
    .await?;
    // A third attempt would come 2 s after the second (backoff 1 s, 2 s, ...); none comes.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(running.metrics().reconciles("error"), 2, "gave up");

    // A change brings it back, with its retries afresh.
    server.clear_faults();
    let touch = serde_json::json!({"metadata": {"annotations": {"touched": "yes"}}});
    sealed_secrets(&server)
        .patch("flaky", &PatchParams::default(), &Patch::Merge(&touch))
        .await?;
    until("Synced after the change", || {
        synced(&server, "flaky").as_deref() == Some("True")
    })
    .await?;
    running.shutdown().await?;
    Ok(())
}

/// --kubeclient-qps/--kubeclient-burst: however many requests wait, at most `burst + qps × t`
/// have reached the API double `t` seconds after the first, and no fewer go than the rate
/// lets through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeclient_qps_is_a_ceiling_on_the_clients_requests() -> TestResult {
    let server = api_server(&[0]).await?;
    let (qps, burst, requests) = (20.0, 5u32, 40usize);
    let client = client_rate::limit(server.client(), ClientRate::new(qps, burst).ok_or("rate")?);
    let secrets: Api<Secret> = Api::namespaced(client, CONTROLLER_NS);
    server.clear_request_log();
    let start = Instant::now();
    let all = futures::future::join_all((0..requests).map(|_| {
        let secrets = secrets.clone();
        async move { secrets.list(&ListParams::default()).await }
    }));
    let sampling = async {
        loop {
            let seen = server.request_log().len();
            let allowed = f64::from(burst) + qps * start.elapsed().as_secs_f64();
            assert!(
                seen as f64 <= allowed,
                "{seen} requests after {:?}",
                start.elapsed()
            );
            if seen >= requests {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let (results, ()) = tokio::join!(all, sampling);
    for result in results {
        result?;
    }
    let least = Duration::from_secs_f64((requests as f64 - f64::from(burst)) / qps);
    assert!(start.elapsed() >= least, "{:?}", start.elapsed());
    Ok(())
}

/// The controller's own requests go through the flags' bucket from its first request on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_keeps_under_kubeclient_qps() -> TestResult {
    let server = api_server(&[0]).await?;
    server.clear_request_log();
    let start = Instant::now();
    let running = start_controller(
        &server,
        &[
            "--leader-elect=false",
            "--kubeclient-qps=4",
            "--kubeclient-burst=4",
        ],
    )
    .await?;
    // Its start-up asks for a dozen lists and watches at once.
    while start.elapsed() < Duration::from_secs(2) {
        let seen = server.request_log().len();
        let allowed = 4.0 + 4.0 * start.elapsed().as_secs_f64();
        assert!(
            seen as f64 <= allowed,
            "{seen} requests after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    until("ready", || running.is_ready()).await?;
    running.shutdown().await?;
    Ok(())
}

/// Bitnami's series: condition_info with the instance label, build_info, the process
/// figures; and a deleted SealedSecret's series goes with it, not a minute later.
#[tokio::test]
async fn metrics_as_bitnamis_and_a_deleted_sealed_secrets_series_goes() -> TestResult {
    let server = api_server(&[0]).await?;
    let running = start_controller(&server, &["--leader-elect=false"]).await?;
    until("ready", || running.is_ready()).await?;
    // Sealed for a key the controller lacks: no Secret, so no owned object announces its end.
    sealed_secrets(&server)
        .create(&PostParams::default(), &sealed(3, "unsealable"))
        .await?;
    let series = "sealed_secrets_controller_condition_info{namespace=\"app\",name=\"unsealable\",\
                  condition=\"Synced\",ss_app_kubernetes_io_instance=\"shop\"} -1";
    let metrics = running.metrics_addr();
    let text = until_some("the condition series", || {
        let text = running.metrics().encode().ok()?;
        text.lines().any(|l| l == series).then_some(text)
    })
    .await?;
    let revision = format!(
        "sealed_secrets_controller_build_info{{revision=\"v{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    assert!(text.lines().any(|l| l == revision), "{text}");
    let (_, served) = support::http_get(metrics, "/metrics").await?;
    for name in [
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_max_fds ",
        "process_start_time_seconds ",
    ] {
        assert!(
            served.lines().any(|l| l.starts_with(name)),
            "{name}: {served}"
        );
    }

    sealed_secrets(&server)
        .delete("unsealable", &DeleteParams::default())
        .await?;
    until("the deleted SealedSecret's series gone", || {
        running
            .metrics()
            .encode()
            .is_ok_and(|text| !text.contains("name=\"unsealable\""))
    })
    .await?;
    running.shutdown().await?;
    Ok(())
}
