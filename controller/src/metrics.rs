//! The controller's Prometheus metrics: one registry per controller, served on
//! `--listen-metrics-addr` at `/metrics`.
//!
//! Bitnami's names, labels and values are kept so existing dashboards and alerts work:
//! `sealed_secrets_controller_unseal_requests_total`, `…_unseal_errors_total{reason,namespace}`,
//! `…_condition_info{namespace,name,condition,ss_app_kubernetes_io_instance}` (1 True, 0 Unknown,
//! -1 False; the last label is the SealedSecret's `app.kubernetes.io/instance` label, empty
//! without one), `…_http_requests_total{path,code,method}`,
//! `…_http_request_duration_seconds{path,method}`, `…_build_info{revision}` and the process
//! figures of client_golang's process collector ([`process`]). Go's runtime series (`go_*`,
//! `go_build_info`) have no equivalent and are absent. Sealbox adds `sealbox_unseal_duration_seconds`, `sealbox_private_key_operations_total`,
//! `sealbox_keys_loaded`, `sealbox_leader` and `sealbox_reconciles_total{result}`.
//!
//! prometheus-client appends `_total` to counter samples itself, so counters are registered
//! without it.

pub mod process;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::bounds::label_value;
use crate::keys::KeyRegistry;

/// Prometheus client_golang's default buckets, which Bitnami's HTTP histogram uses.
const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The OpenMetrics text format prometheus-client writes.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of `sealed_secrets_controller_unseal_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UnsealErrorLabels {
    /// Bitnami's reasons (`unseal`, `unmanaged`, `update`, `status`) or an error category.
    pub reason: String,
    /// The SealedSecret's namespace.
    pub namespace: String,
}

/// The series of `sealed_secrets_controller_condition_info` that identify one: a
/// SealedSecret's namespace, name and condition type, each bounded by
/// [`MAX_LABEL_VALUE`](crate::bounds::MAX_LABEL_VALUE). The instance label is not part of
/// it: a SealedSecret has one series per condition, whatever its instance label was before.
type ConditionKey = (String, String, String);

/// Each condition's instance label and value (1 True, 0 Unknown, -1 False).
type Conditions = Arc<Mutex<BTreeMap<ConditionKey, (String, i64)>>>;

fn condition_key(namespace: &str, name: &str, condition: &str) -> ConditionKey {
    (
        label_value(namespace).into_owned(),
        label_value(name).into_owned(),
        label_value(condition).into_owned(),
    )
}

/// Bitnami's name of the label that carries the SealedSecret's `app.kubernetes.io/instance`.
pub const INSTANCE_LABEL: &str = "ss_app_kubernetes_io_instance";

/// What `sealed_secrets_controller_build_info`'s `revision` says: the release, as Bitnami's
/// says its tag (`v0.40.0`).
pub const REVISION: &str = concat!("v", env!("CARGO_PKG_VERSION"));

/// Labels of `sealbox_reconciles_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// `success` or `error` (an error is retried).
    pub result: &'static str,
}

/// Labels of `sealed_secrets_controller_http_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The route (`/v1/cert.pem`), never the raw request path.
    pub path: String,
    /// The status code, e.g. `200`.
    pub code: String,
    /// The method in lower case, as client_golang's promhttp writes it.
    pub method: String,
}

/// Labels of `sealed_secrets_controller_http_request_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpDurationLabels {
    /// The route.
    pub path: String,
    /// The method in lower case.
    pub method: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn default_histogram() -> Histogram {
    Histogram::new(DEFAULT_BUCKETS)
}

/// Every metric of one controller and the registry that exposes them.
pub struct Metrics {
    registry: Registry,
    unseal_requests: Counter,
    unseal_errors: Family<UnsealErrorLabels, Counter>,
    conditions: Conditions,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: HistogramFamily<HttpDurationLabels>,
    unseal_duration: Histogram,
    leader: Gauge,
    reconciles: Family<ReconcileLabels, Counter>,
    /// --metrics-omit-secret-labels: condition_info stays empty.
    omit_conditions: AtomicBool,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    /// Metrics that count but whose key figures read an empty registry (tests, tools).
    fn default() -> Self {
        Metrics::new(KeyRegistry::new())
    }
}

impl Metrics {
    /// Registers every metric; the key figures are read from `keys` at each scrape.
    pub fn new(keys: KeyRegistry) -> Metrics {
        let mut registry = Registry::default();
        let metrics = Metrics {
            unseal_requests: Counter::default(),
            unseal_errors: Family::default(),
            conditions: Conditions::default(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(default_histogram),
            unseal_duration: default_histogram(),
            leader: Gauge::default(),
            reconciles: Family::default(),
            omit_conditions: AtomicBool::new(false),
            registry: Registry::default(),
        };
        registry.register(
            "sealed_secrets_controller_unseal_requests",
            "Total number of sealed secret unseal requests",
            metrics.unseal_requests.clone(),
        );
        registry.register(
            "sealed_secrets_controller_unseal_errors",
            "Total number of sealed secret unseal errors by reason",
            metrics.unseal_errors.clone(),
        );
        registry.register(
            "sealed_secrets_controller_http_requests",
            "A counter for requests to the wrapped handler.",
            metrics.http_requests.clone(),
        );
        registry.register(
            "sealed_secrets_controller_http_request_duration_seconds",
            "A histogram of latencies for requests.",
            metrics.http_duration.clone(),
        );
        registry.register(
            "sealbox_unseal_duration_seconds",
            "Time to decrypt one SealedSecret and render its Secret",
            metrics.unseal_duration.clone(),
        );
        registry.register(
            "sealbox_leader",
            "1 while this replica leads (unseals and renews keys), else 0",
            metrics.leader.clone(),
        );
        registry.register(
            "sealbox_reconciles",
            "Reconciles of SealedSecrets that ran to the end, by result",
            metrics.reconciles.clone(),
        );
        registry.register_collector(Box::new(KeyFigures { keys }));
        registry.register_collector(Box::new(ConditionFigures(metrics.conditions.clone())));
        registry.register_collector(Box::new(process::ProcessFigures));
        Metrics {
            registry,
            ..metrics
        }
    }

    /// One unseal of a SealedSecret by the reconciler.
    pub fn unseal_started(&self) -> UnsealTimer<'_> {
        self.unseal_requests.inc();
        UnsealTimer {
            histogram: &self.unseal_duration,
            started: Instant::now(),
        }
    }

    /// A reconcile ended: `ok` when it succeeded.
    pub fn reconciled(&self, ok: bool) {
        let result = if ok { "success" } else { "error" };
        self.reconciles
            .get_or_create(&ReconcileLabels { result })
            .inc();
    }

    /// Reconciles that ended with `result` (`success` or `error`) so far.
    pub fn reconciles(&self, result: &'static str) -> u64 {
        self.reconciles
            .get_or_create(&ReconcileLabels { result })
            .get()
    }

    /// A reconcile of a SealedSecret in `namespace` failed for `reason`.
    pub fn unseal_failed(&self, reason: &str, namespace: &str) {
        self.unseal_errors
            .get_or_create(&UnsealErrorLabels {
                reason: label_value(reason).into_owned(),
                namespace: label_value(namespace).into_owned(),
            })
            .inc();
    }

    /// The `condition` of a SealedSecret is now `status` (`Some(true)` True, `Some(false)`
    /// False, `None` Unknown); `instance` is its `app.kubernetes.io/instance` label (empty
    /// without one).
    pub fn set_condition(
        &self,
        namespace: &str,
        name: &str,
        condition: &str,
        instance: &str,
        status: Option<bool>,
    ) {
        if self.omit_conditions.load(Ordering::Relaxed) {
            return;
        }
        let value = match status {
            Some(true) => 1,
            Some(false) => -1,
            None => 0,
        };
        self.lock_conditions().insert(
            condition_key(namespace, name, condition),
            (label_value(instance).into_owned(), value),
        );
    }

    /// The SealedSecret is gone: its condition series go too.
    pub fn forget_condition(&self, namespace: &str, name: &str, condition: &str) {
        self.lock_conditions()
            .remove(&condition_key(namespace, name, condition));
    }

    /// Leaves condition_info empty from now on (--metrics-omit-secret-labels), so /metrics
    /// does not list the SealedSecrets.
    pub fn omit_conditions(&self) {
        self.omit_conditions.store(true, Ordering::Relaxed);
        self.lock_conditions().clear();
    }

    /// This replica stopped reconciling: another one reports conditions now.
    pub fn forget_all_conditions(&self) {
        self.lock_conditions().clear();
    }

    fn lock_conditions(&self) -> std::sync::MutexGuard<'_, BTreeMap<ConditionKey, (String, i64)>> {
        self.conditions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether this replica leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// One answered HTTP request.
    pub fn observe_http(&self, path: &str, method: &str, code: StatusCode, seconds: f64) {
        let method = method.to_ascii_lowercase();
        self.http_requests
            .get_or_create(&HttpLabels {
                path: path.to_owned(),
                code: code.as_u16().to_string(),
                method: method.clone(),
            })
            .inc();
        self.http_duration
            .get_or_create(&HttpDurationLabels {
                path: path.to_owned(),
                method,
            })
            .observe(seconds);
    }

    /// The exposition text.
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Observes the unseal duration when dropped.
#[derive(Debug)]
pub struct UnsealTimer<'m> {
    histogram: &'m Histogram,
    started: Instant,
}

impl Drop for UnsealTimer<'_> {
    fn drop(&mut self) {
        self.histogram.observe(self.started.elapsed().as_secs_f64());
    }
}

/// Figures read from the key registry at each scrape.
#[derive(Debug)]
struct KeyFigures {
    keys: KeyRegistry,
}

impl Collector for KeyFigures {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let operations = ConstCounter::new(self.keys.private_key_operations());
        operations.encode(encoder.encode_descriptor(
            "sealbox_private_key_operations",
            "RSA private-key operations (decryption attempts) so far",
            None,
            operations.metric_type(),
        )?)?;
        let loaded = ConstGauge::new(i64::try_from(self.keys.snapshot().len()).unwrap_or(i64::MAX));
        loaded.encode(encoder.encode_descriptor(
            "sealbox_keys_loaded",
            "Sealing keys loaded (every one unseals; the newest seals)",
            None,
            loaded.metric_type(),
        )?)?;
        Ok(())
    }
}

/// `sealed_secrets_controller_condition_info`, written from the conditions at each scrape, and
/// `sealed_secrets_controller_build_info`.
struct ConditionFigures(Conditions);

impl fmt::Debug for ConditionFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConditionFigures").finish_non_exhaustive()
    }
}

impl Collector for ConditionFigures {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        // Bitnami's gauge carries its revision as a constant label; the value is the usual 1.
        let build = ConstGauge::new(1i64);
        build.encode(
            encoder
                .encode_descriptor(
                    "sealed_secrets_controller_build_info",
                    "Build information.",
                    None,
                    build.metric_type(),
                )?
                .encode_family(&[("revision", REVISION)])?,
        )?;
        // Copied out first: the scrape must not hold the lock reconciles write through.
        let conditions: Vec<(ConditionKey, (String, i64))> = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut family = encoder.encode_descriptor(
            "sealed_secrets_controller_condition_info",
            "Current SealedSecret condition status. Values are -1 (false), 0 (unknown or absent), 1 (true)",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for ((namespace, name, condition), (instance, value)) in &conditions {
            let labels = [
                ("namespace", namespace.as_str()),
                ("name", name.as_str()),
                ("condition", condition.as_str()),
                (INSTANCE_LABEL, instance.as_str()),
            ];
            ConstGauge::new(*value).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// The metrics server's routes: `/metrics`.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(metrics)
}

async fn scrape(State(metrics): State<Arc<Metrics>>) -> Response {
    match metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding the metrics failed\n",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_from_objects_are_bounded() {
        let metrics = Metrics::default();
        let long = "n".repeat(10_000);
        metrics.unseal_failed("unseal", &long);
        metrics.set_condition(&long, &long, "Synced", &long, Some(false));
        let text = metrics.encode().expect("encodes");
        assert!(text.len() < 4096, "{}", text.len());
        for line in text.lines().filter(|l| l.contains("nnnn")) {
            for value in line.split('"').skip(1).step_by(2) {
                assert!(value.len() <= crate::bounds::MAX_LABEL_VALUE, "{line}");
            }
        }
        // The same name maps to the same series: forgetting it removes it.
        metrics.forget_condition(&long, &long, "Synced");
        let text = metrics.encode().expect("encodes");
        assert!(!text.contains("condition_info{"), "{text}");
    }

    #[test]
    fn exposes_bitnami_names_and_values() {
        let metrics = Metrics::default();
        drop(metrics.unseal_started());
        metrics.unseal_failed("unseal", "prod");
        metrics.set_condition("prod", "db", "Synced", "", Some(false));
        metrics.set_condition("prod", "web", "Synced", "shop", Some(true));
        metrics.observe_http("/v1/verify", "POST", StatusCode::CONFLICT, 0.01);
        metrics.set_leader(true);
        metrics.reconciled(true);
        metrics.reconciled(true);
        metrics.reconciled(false);
        let text = metrics.encode().expect("encodes");
        for line in [
            "sealed_secrets_controller_unseal_requests_total 1",
            "sealed_secrets_controller_unseal_errors_total{reason=\"unseal\",namespace=\"prod\"} 1",
            "sealed_secrets_controller_condition_info{namespace=\"prod\",name=\"db\",condition=\"Synced\",ss_app_kubernetes_io_instance=\"\"} -1",
            "sealed_secrets_controller_condition_info{namespace=\"prod\",name=\"web\",condition=\"Synced\",ss_app_kubernetes_io_instance=\"shop\"} 1",
            "sealed_secrets_controller_http_requests_total{path=\"/v1/verify\",code=\"409\",method=\"post\"} 1",
            "sealed_secrets_controller_http_request_duration_seconds_count{path=\"/v1/verify\",method=\"post\"} 1",
            "sealbox_unseal_duration_seconds_count 1",
            "sealbox_private_key_operations_total 0",
            "sealbox_keys_loaded 0",
            "sealbox_leader 1",
            "sealbox_reconciles_total{result=\"success\"} 2",
            "sealbox_reconciles_total{result=\"error\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }

        let build = format!("sealed_secrets_controller_build_info{{revision=\"{REVISION}\"}} 1");
        assert!(text.lines().any(|l| l == build), "{text}");

        metrics.forget_condition("prod", "db", "Synced");
        let text = metrics.encode().expect("encodes");
        assert!(!text.contains("name=\"db\""), "{text}");
        metrics.forget_all_conditions();
        let text = metrics.encode().expect("encodes");
        assert!(!text.contains("name=\"web\""), "{text}");
    }

    #[test]
    fn a_new_instance_label_replaces_the_series() {
        let metrics = Metrics::default();
        metrics.set_condition("prod", "db", "Synced", "blue", Some(true));
        metrics.set_condition("prod", "db", "Synced", "green", Some(false));
        let text = metrics.encode().expect("encodes");
        let series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("sealed_secrets_controller_condition_info{"))
            .collect();
        assert_eq!(
            series,
            [
                "sealed_secrets_controller_condition_info{namespace=\"prod\",name=\"db\",condition=\"Synced\",ss_app_kubernetes_io_instance=\"green\"} -1"
            ]
        );
    }
}
