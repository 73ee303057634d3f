//! Bitnami's full controller flag set, on the command line and as `SEALED_SECRETS_`
//! variables: every flag is accepted, and the ones Sealbox acts on take effect (API double).

mod support;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use sealbox_controller::flag_env;
use sealbox_crypto::key_secret::KEY_LABEL;
use support::{CONTROLLER_NS, NS, TestResult, api_server, until};

/// Bitnami v0.40.0's flags (cmd/controller and pkg/controller) with values of our own, and
/// Sealbox's test settings (no fixed ports, 2048-bit keys).
fn bitnami_flags(cutoff: &str) -> Vec<(&'static str, String)> {
    [
        ("key-prefix", "sealed-secrets-key"),
        ("key-size", "2048"),
        ("key-ttl", "87600h"),
        ("my-cn", "flags-test"),
        ("key-renew-period", "0"),
        ("key-order-priority", "CertNotBefore"),
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
        ("max-unseal-retries", "5"),
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
    // The only flag given a value Sealbox does not act on: its client has no rate limit.
    assert_eq!(parsed.warnings.len(), 1, "{:?}", parsed.warnings);
    assert!(
        parsed.warnings[0].contains("--kubeclient-qps"),
        "{:?}",
        parsed.warnings
    );
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

    // SIGUSR1's rotation.
    until("leading", || running.is_leader()).await?;
    running.rotate_now();
    until("a key on request", || running.keys().snapshot().len() == 3).await?;
    assert_eq!(keys.list(&list).await?.items.len(), 3);

    let (_, metrics) = support::http_get(running.metrics_addr(), "/metrics").await?;
    assert!(metrics.contains("sealed_secrets_controller_unseal_requests"));
    running.shutdown().await?;
    Ok(())
}
