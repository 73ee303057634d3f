//! The controller's flags. Names follow Bitnami's controller where one exists, so existing
//! Deployments keep working; every flag also reads `SEALBOX_<NAME>` from the environment, and
//! Bitnami's `SEALED_SECRETS_<NAME>` ([`crate::flag_env`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};
use jiff::Timestamp;

use sealbox_crypto::key_order::KeyOrder;

use crate::client_rate::ClientRate;
use crate::leader::RETRY_JITTER;

/// Where the service account's namespace is mounted in a pod.
const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// Unseals SealedSecrets into Secrets and keeps them that way.
#[derive(Debug, Clone, Parser)]
// Like Go's flag package, a repeated flag takes its last value.
#[command(name = "sealbox-controller", version, args_override_self = true)]
pub struct Config {
    /// Prefix of the key Secrets' generateName.
    #[arg(long, env = "SEALBOX_KEY_PREFIX", default_value = "sealed-secrets-key")]
    pub key_prefix: String,

    /// Size in bits of generated RSA keys: 2048, 3072 or 4096.
    #[arg(long, env = "SEALBOX_KEY_SIZE", default_value_t = 4096)]
    pub key_size: usize,

    /// How often a new sealing key is generated, as a Go duration (e.g. 720h); 0 disables
    /// renewal. Old keys are kept: they still unseal.
    /// `--rotate-period` is Bitnami's deprecated name for it.
    #[arg(long, env = "SEALBOX_KEY_RENEW_PERIOD", default_value = "720h", value_parser = parse_duration,
          alias = "rotate-period")]
    pub key_renew_period: Duration,

    /// Generate a new key at start if the newest is older than this time, in RFC 1123 format
    /// with a numeric zone ("Mon, 02 Jan 2006 15:04:05 -0700").
    #[arg(long, env = "SEALBOX_KEY_CUTOFF_TIME", value_parser = parse_cutoff_time)]
    pub key_cutoff_time: Option<Timestamp>,

    /// Common name of the generated certificates' subject and issuer.
    #[arg(long, env = "SEALBOX_MY_CN", default_value = "")]
    pub my_cn: String,

    /// Watch SealedSecrets in all namespaces; when false, only the controller's namespace. As
    /// Bitnami's, any --additional-namespaces also narrows the watch to the controller's
    /// namespace and those.
    #[arg(long, env = "SEALBOX_ALL_NAMESPACES", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", value_parser = parse_go_bool)]
    pub all_namespaces: bool,

    /// Comma-separated namespaces to watch besides the controller's; when given, only these
    /// and the controller's namespace are watched, whatever --all-namespaces says.
    #[arg(long, env = "SEALBOX_ADDITIONAL_NAMESPACES", value_delimiter = ',')]
    pub additional_namespaces: Vec<String>,

    /// Only SealedSecrets matching this label selector are unsealed.
    #[arg(long, env = "SEALBOX_LABEL_SELECTOR")]
    pub label_selector: Option<String>,

    /// Report the outcome in each SealedSecret's status subresource.
    #[arg(long, env = "SEALBOX_UPDATE_STATUS", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", value_parser = parse_go_bool)]
    pub update_status: bool,

    /// Accept SealedSecrets in the deprecated single-blob format (spec.data).
    #[arg(long, env = "SEALBOX_ACCEPT_DEPRECATED_V1_DATA", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", value_parser = parse_go_bool)]
    pub accept_deprecated_v1_data: bool,

    /// Namespace holding the key Secrets. Defaults to $POD_NAMESPACE, then the service
    /// account's namespace, then kube-system.
    #[arg(long, env = "SEALBOX_NAMESPACE")]
    pub namespace: Option<String>,

    /// Address of the HTTP server (/healthz, /readyz, /v1/cert.pem, /v1/verify, /v1/rotate),
    /// e.g. ":8080" or "127.0.0.1:8080".
    #[arg(long, env = "SEALBOX_LISTEN_ADDR", default_value = ":8080", value_parser = parse_listen_addr)]
    pub listen_addr: SocketAddr,

    /// Address of the metrics server (/metrics), e.g. ":8081".
    #[arg(long, env = "SEALBOX_LISTEN_METRICS_ADDR", default_value = ":8081", value_parser = parse_listen_addr)]
    pub listen_metrics_addr: SocketAddr,

    /// Longest time a client may take to send a request's headers, and again its body.
    #[arg(long, env = "SEALBOX_READ_TIMEOUT", default_value = "2m", value_parser = parse_duration)]
    pub read_timeout: Duration,

    /// Longest time to answer a request once it has arrived; 503 after that.
    #[arg(long, env = "SEALBOX_WRITE_TIMEOUT", default_value = "2m", value_parser = parse_duration)]
    pub write_timeout: Duration,

    /// Sustained requests per second one client may make to /v1/verify and to /v1/rotate
    /// (429 above); 0 disables the limit.
    #[arg(long, env = "SEALBOX_RATE_LIMIT", default_value_t = 2)]
    pub rate_limit: u32,

    /// Requests one client may make above the sustained rate in a burst.
    #[arg(long, env = "SEALBOX_RATE_LIMIT_BURST", default_value_t = 2)]
    pub rate_limit_burst: u32,

    /// Rate-limit by the last address in X-Forwarded-For instead of the connection's peer.
    /// Only behind a proxy of yours that overwrites the header: clients can write anything
    /// there. Behind the API server's service proxy, leave it off: every request comes from
    /// the API server, and the limit is per API server.
    #[arg(long, env = "SEALBOX_RATE_LIMIT_TRUST_FORWARDED_FOR", default_value_t = false,
          action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          value_parser = parse_go_bool)]
    pub rate_limit_trust_forwarded_for: bool,

    /// Most connections open at once on each listener (the HTTP API and the metrics); a new
    /// connection past it makes the oldest close (after its request, if it is in one). The
    /// default keeps 128 bodies of at most 1 MiB each within half of the Deployment's 256Mi
    /// memory limit.
    #[arg(long, env = "SEALBOX_MAX_CONNECTIONS", default_value_t = 128,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub max_connections: u16,

    /// Elect one leader among the replicas through a coordination.k8s.io/v1 Lease in the
    /// controller namespace: only the leader unseals and generates keys, every replica serves
    /// the HTTP API. --leader-elect=false for a single replica without a Lease.
    #[arg(long, env = "SEALBOX_LEADER_ELECT", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", value_parser = parse_go_bool)]
    pub leader_elect: bool,

    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "SEALBOX_LEADER_ELECT_RESOURCE_NAME",
        default_value = "sealed-secrets-controller"
    )]
    pub leader_elect_resource_name: String,

    /// Namespace of the leader-election Lease. Defaults to the controller's namespace
    /// (--namespace); elsewhere the controller needs get, create and update on leases there
    /// (deploy/'s Role grants them in the controller's namespace only).
    #[arg(long, env = "SEALBOX_LEADER_ELECT_RESOURCE_NAMESPACE")]
    pub leader_elect_resource_namespace: Option<String>,

    /// Kind of object the election holds; only "leases" (coordination.k8s.io/v1), the default
    /// of client-go's components since Kubernetes 1.24. Accepted so that the flags of a
    /// kube-controller-manager-style Deployment carry over.
    #[arg(long, env = "SEALBOX_LEADER_ELECT_RESOURCE_LOCK", default_value = "leases",
          value_parser = ["leases"])]
    pub leader_elect_resource_lock: String,

    /// How long a Lease not renewed stays with its holder before another replica takes it over.
    #[arg(long, env = "SEALBOX_LEADER_ELECT_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub leader_elect_lease_duration: Duration,

    /// How long the leader keeps leading while it cannot renew the Lease (failed and
    /// conflicting renewals are retried every retry period until then); then it stops
    /// unsealing. Shorter than the lease duration, so it stops before anyone else starts.
    #[arg(long, env = "SEALBOX_LEADER_ELECT_RENEW_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    pub leader_elect_renew_deadline: Duration,

    /// How often the leader renews the Lease and retries a failed renewal; the others read it
    /// every half retry period and try to take it the moment it expires.
    #[arg(long, env = "SEALBOX_LEADER_ELECT_RETRY_PERIOD", default_value = "2s", value_parser = parse_duration)]
    pub leader_elect_retry_period: Duration,

    /// This replica's name in the Lease. Defaults to $POD_NAME, else the host name with a
    /// random suffix.
    #[arg(long, env = "SEALBOX_LEADER_ELECT_IDENTITY")]
    pub leader_elect_identity: Option<String>,

    /// SealedSecrets reconciled at once (unsealing itself is bounded by the CPU cores).
    #[arg(long, env = "SEALBOX_RECONCILE_CONCURRENCY", default_value_t = 64)]
    pub reconcile_concurrency: u16,

    /// How often every SealedSecret is reconciled again whatever the watches showed, as a Go
    /// duration (each wait jittered by 10%); 0 disables. The backstop for a change no watch
    /// delivered; one whose Secret is as it was written costs no request.
    #[arg(long, env = "SEALBOX_RESYNC_PERIOD", default_value = "5m", value_parser = parse_duration)]
    pub resync_period: Duration,

    /// Log line format.
    #[arg(long, env = "SEALBOX_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log level or tracing filter directives (e.g. "info" or "sealbox_controller=debug").
    /// The kube client's own record of each failed request (kube_client::client::builder) is
    /// off unless named here: the controller logs each failure once, naming the object.
    #[arg(long, env = "SEALBOX_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Write info and debug lines to stdout and warnings and errors to stderr (Bitnami's
    /// default); false writes everything to stderr.
    #[arg(long, env = "SEALBOX_LOG_INFO_STDOUT", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", value_parser = parse_go_bool)]
    pub log_info_stdout: bool,

    /// How long the certificate of a generated key is valid (NotAfter = NotBefore + this), as
    /// a Go duration; at least 1s. Sealing refuses an expired certificate (kubeseal does too);
    /// unsealing never looks at it.
    #[arg(long, env = "SEALBOX_KEY_TTL", default_value = "87600h", value_parser = parse_duration)]
    pub key_ttl: Duration,

    /// Which key seals: the one whose certificate NotBefore is newest (CertNotBefore) or the
    /// one whose key Secret was created last (SecretCreationTimestamp, e.g. so that a key
    /// restored from a backup seals at once).
    #[arg(
        long,
        env = "SEALBOX_KEY_ORDER_PRIORITY",
        default_value = "CertNotBefore",
        value_parser = KEY_ORDER_PRIORITIES
    )]
    pub key_order_priority: String,

    /// Comma-separated key=value labels put on the key Secrets the controller generates.
    #[arg(long, env = "SEALBOX_PRIVATEKEY_LABELS", default_value = "")]
    pub privatekey_labels: String,

    /// Comma-separated key=value annotations put on the key Secrets the controller generates.
    #[arg(long, env = "SEALBOX_PRIVATEKEY_ANNOTATIONS", default_value = "")]
    pub privatekey_annotations: String,

    /// Leave `sealed_secrets_controller_condition_info` empty, so /metrics does not list the
    /// SealedSecrets' namespaces and names.
    #[arg(long, env = "SEALBOX_METRICS_OMIT_SECRET_LABELS", default_value_t = false,
          action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          value_parser = parse_go_bool)]
    pub metrics_omit_secret_labels: bool,

    /// Do not watch the Secrets the controller wrote, so one deleted or changed by hand is
    /// not put back until its SealedSecret changes (for installs that may not watch Secrets).
    #[arg(long, env = "SEALBOX_SKIP_RECREATE", default_value_t = false, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", value_parser = parse_go_bool)]
    pub skip_recreate: bool,

    /// Bitnami's (beta): watch the key Secrets for ones created outside the controller.
    /// Sealbox always does, so both values behave as true.
    #[arg(long, env = "SEALBOX_WATCH_FOR_SECRETS", default_value_t = false, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", value_parser = parse_go_bool)]
    pub watch_for_secrets: bool,

    /// Bitnami's: delete a SealedSecret's Secret itself. Ignored with a warning: the Secret's
    /// owner reference lets Kubernetes' garbage collector delete it, as Bitnami now does.
    #[arg(long, env = "SEALBOX_OLD_GC_BEHAVIOR", default_value_t = false, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", value_parser = parse_go_bool)]
    pub old_gc_behavior: bool,

    /// Retries of a SealedSecret whose reconcile failed (an API error), with backoff from 1s
    /// doubling, before giving up until it changes, the keys change or the next resync; 0 or
    /// less: no retry. One that no key decrypts is not retried until it or the keys change.
    #[arg(
        long,
        env = "SEALBOX_MAX_UNSEAL_RETRIES",
        default_value_t = 5,
        allow_hyphen_values = true
    )]
    pub max_unseal_retries: i64,

    /// Most requests per second, sustained, the controller makes to the API server (a token
    /// bucket on its client); 0 or less: no ceiling. The default is far above what a cold
    /// start of 10,000 SealedSecrets asks for (Bitnami's default of 5 throttles one).
    #[arg(long, env = "SEALBOX_KUBECLIENT_QPS", default_value_t = DEFAULT_KUBECLIENT_QPS,
          allow_hyphen_values = true)]
    pub kubeclient_qps: f32,

    /// Requests the controller may make at once above --kubeclient-qps (the bucket's size).
    #[arg(long, env = "SEALBOX_KUBECLIENT_BURST", default_value_t = DEFAULT_KUBECLIENT_BURST)]
    pub kubeclient_burst: u32,
}

/// Bitnami's --key-order-priority values.
pub const KEY_ORDER_PRIORITIES: [&str; 2] = KeyOrder::NAMES;

/// --kubeclient-qps's default. A cold start makes 6 requests per SealedSecret (the cold-start
/// bench counts them) at about 330 SealedSecrets/s on 2 cores (BENCHMARKS.md): some 2,000
/// requests/s. A warm restart asks for one Secret each, 10,000 in about 1.4 s. Neither comes
/// near it.
pub const DEFAULT_KUBECLIENT_QPS: f32 = 5000.0;
/// --kubeclient-burst's default: a warm restart's 10,000 GETs pass without waiting.
pub const DEFAULT_KUBECLIENT_BURST: u32 = 10_000;
/// Longest --key-ttl: a thousand years (X.509 times end with the year 9999).
const MAX_KEY_TTL: Duration = Duration::from_secs(1000 * 365 * 24 * 3600);

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Config {
    /// The log filter's directives: --log-level, with the kube client's own record of each
    /// failed request turned off. The controller logs every failure once, naming the object
    /// and the operation; the client's record names neither and doubled each line.
    pub fn log_directives(&self) -> String {
        log_directives(&self.log_level)
    }

    /// The namespace of the leader-election Lease.
    pub fn lease_namespace(&self) -> String {
        self.leader_elect_resource_namespace
            .clone()
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| self.controller_namespace())
    }

    /// The namespace holding the key Secrets (and the only one watched without
    /// --all-namespaces).
    pub fn controller_namespace(&self) -> String {
        self.namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .filter(|ns| !ns.is_empty())
            .or_else(|| read_namespace_file(Path::new(SERVICE_ACCOUNT_NAMESPACE)))
            .unwrap_or_else(|| "kube-system".to_owned())
    }

    /// The namespaces to watch, or `None` for all of them.
    pub fn watched_namespaces(&self) -> Option<Vec<String>> {
        // Bitnami's rule: additional namespaces narrow the watch even with --all-namespaces.
        let additional = self
            .additional_namespaces
            .iter()
            .any(|n| !n.trim().is_empty());
        if self.all_namespaces && !additional {
            return None;
        }
        let mut namespaces = vec![self.controller_namespace()];
        for ns in &self.additional_namespaces {
            let ns = ns.trim();
            if !ns.is_empty() && !namespaces.iter().any(|n| n == ns) {
                namespaces.push(ns.to_owned());
            }
        }
        Some(namespaces)
    }

    /// Checks what flags cannot check one at a time.
    pub fn validate(&self) -> Result<(), String> {
        if self.leader_elect {
            let lease = self.leader_elect_lease_duration;
            let renew = self.leader_elect_renew_deadline;
            let retry = self.leader_elect_retry_period;
            if lease < Duration::from_secs(1) {
                return Err(format!(
                    "--leader-elect-lease-duration must be at least 1s (it is {lease:?})"
                ));
            }
            if renew >= lease {
                return Err(format!(
                    "--leader-elect-renew-deadline ({renew:?}) must be shorter than \
                     --leader-elect-lease-duration ({lease:?}): a leader must stop before \
                     another replica may take over"
                ));
            }
            if retry.is_zero() || retry.mul_f64(RETRY_JITTER) >= renew {
                return Err(format!(
                    "--leader-elect-retry-period ({retry:?}) must be positive and shorter than \
                     --leader-elect-renew-deadline ({renew:?}) divided by {RETRY_JITTER}"
                ));
            }
        }
        if self.key_ttl < Duration::from_secs(1) || self.key_ttl > MAX_KEY_TTL {
            return Err(format!(
                "--key-ttl must be between 1s and 8760000h (it is {:?})",
                self.key_ttl
            ));
        }
        parse_pairs("--privatekey-labels", &self.privatekey_labels)?;
        parse_pairs("--privatekey-annotations", &self.privatekey_annotations)?;
        if self.listen_addr == self.listen_metrics_addr && self.listen_addr.port() != 0 {
            return Err(format!(
                "--listen-addr and --listen-metrics-addr are both {}",
                self.listen_addr
            ));
        }
        Ok(())
    }

    /// The labels --privatekey-labels puts on generated key Secrets.
    pub fn key_labels(&self) -> BTreeMap<String, String> {
        parse_pairs("--privatekey-labels", &self.privatekey_labels).unwrap_or_default()
    }

    /// The annotations --privatekey-annotations puts on generated key Secrets.
    pub fn key_annotations(&self) -> BTreeMap<String, String> {
        parse_pairs("--privatekey-annotations", &self.privatekey_annotations).unwrap_or_default()
    }

    /// Retries of a failing SealedSecret before it waits for a change (Bitnami's: none for a
    /// negative value).
    pub fn unseal_retries(&self) -> u32 {
        u32::try_from(self.max_unseal_retries.max(0)).unwrap_or(u32::MAX)
    }

    /// Which key seals (--key-order-priority; clap admits only Bitnami's two names).
    pub fn key_order(&self) -> KeyOrder {
        KeyOrder::from_name(&self.key_order_priority).unwrap_or_default()
    }

    /// The ceiling on the client's requests, `None` for none (--kubeclient-qps ≤ 0).
    pub fn client_rate(&self) -> Option<ClientRate> {
        ClientRate::new(self.kubeclient_qps.into(), self.kubeclient_burst)
    }
}

/// Most pairs --privatekey-labels or --privatekey-annotations may list.
const MAX_PAIRS: usize = 64;

/// Bitnami's `k1=v1,k2=v2`; empty items are skipped, a later duplicate key wins.
pub fn parse_pairs(flag: &str, text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut pairs = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((key, value)) = item.split_once('=') else {
            return Err(format!("{flag}: {item:?} is not key=value"));
        };
        if key.is_empty() {
            return Err(format!("{flag}: {item:?} has an empty key"));
        }
        pairs.insert(key.to_owned(), value.to_owned());
    }
    if pairs.len() > MAX_PAIRS {
        return Err(format!("{flag}: more than {MAX_PAIRS} pairs"));
    }
    Ok(pairs)
}

/// A boolean as Go's strconv.ParseBool reads it: 1, t, T, TRUE, true, True, 0, f, F, FALSE,
/// false, False.
pub fn parse_go_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!(
            "invalid boolean {text:?} (expected true, false, 1, 0, t, f, TRUE, FALSE, True or False)"
        )),
    }
}

/// Where kube's client logs every failed request at ERROR, whatever the caller does with it.
const KUBE_CLIENT_FAILURES: &str = "kube_client::client::builder";

/// `level` with [`KUBE_CLIENT_FAILURES`] off, unless `level` names that target itself.
pub fn log_directives(level: &str) -> String {
    if level.contains(KUBE_CLIENT_FAILURES) {
        level.to_owned()
    } else {
        format!("{level},{KUBE_CLIENT_FAILURES}=off")
    }
}

fn read_namespace_file(path: &Path) -> Option<String> {
    let ns = std::fs::read_to_string(path).ok()?;
    let ns = ns.trim();
    (!ns.is_empty()).then(|| ns.to_owned())
}

/// A Go-style duration: "720h", "1h30m", "90s", or "0".
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let parsed: jiff::SignedDuration = text
        .parse()
        .map_err(|_| format!("invalid duration {text:?} (expected e.g. 720h, 30m, 90s or 0)"))?;
    Duration::try_from(parsed).map_err(|_| format!("duration {text:?} must not be negative"))
}

/// RFC 1123 with a numeric zone, as Bitnami's --key-cutoff-time.
pub fn parse_cutoff_time(text: &str) -> Result<Timestamp, String> {
    jiff::fmt::rfc2822::parse(text.trim())
        .map(|zoned| zoned.timestamp())
        .map_err(|_| {
            format!(
                "invalid cutoff time {text:?} (expected RFC 1123 with a numeric zone, \
                 e.g. \"Mon, 02 Jan 2006 15:04:05 -0700\")"
            )
        })
}

/// A listen address; Go's ":8080" means every interface.
pub fn parse_listen_addr(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Some(port) = text.strip_prefix(':') {
        let port = port
            .parse()
            .map_err(|_| format!("invalid port in listen address {text:?}"))?;
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    text.parse().map_err(|_| {
        format!("invalid listen address {text:?} (expected e.g. :8080 or 127.0.0.1:8080)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_is_consistent() {
        Config::command().debug_assert();
    }

    #[test]
    fn defaults_match_bitnami() {
        let config = Config::try_parse_from(["sealbox-controller"]).expect("parses");
        assert_eq!(config.key_prefix, "sealed-secrets-key");
        assert_eq!(config.key_renew_period, Duration::from_secs(720 * 3600));
        assert!(config.all_namespaces && config.update_status);
        assert!(config.accept_deprecated_v1_data);
        assert!(config.log_info_stdout && !config.skip_recreate && !config.watch_for_secrets);
        assert_eq!(config.max_unseal_retries, 5);
        assert_eq!(config.key_order_priority, "CertNotBefore");
        assert_eq!(config.key_ttl, Duration::from_secs(87600 * 3600));
        assert_eq!(config.listen_addr, "0.0.0.0:8080".parse().expect("addr"));
        assert_eq!(config.key_size, 4096);
        assert_eq!(config.watched_namespaces(), None);
        assert_eq!(
            config.listen_metrics_addr,
            "0.0.0.0:8081".parse().expect("addr")
        );
        assert_eq!((config.rate_limit, config.rate_limit_burst), (2, 2));
        assert_eq!(config.read_timeout, Duration::from_secs(120));
        assert_eq!(config.write_timeout, Duration::from_secs(120));
        assert!(config.leader_elect);
        assert_eq!(
            config.leader_elect_resource_name,
            "sealed-secrets-controller"
        );
        assert_eq!(config.leader_elect_lease_duration, Duration::from_secs(15));
        assert_eq!(config.leader_elect_renew_deadline, Duration::from_secs(10));
        assert_eq!(config.leader_elect_retry_period, Duration::from_secs(2));
        assert_eq!(config.resync_period, Duration::from_secs(300));
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn leader_election_timings_must_nest() {
        let parse = |args: &[&str]| {
            let mut argv = vec!["sealbox-controller"];
            argv.extend_from_slice(args);
            Config::try_parse_from(argv).expect("parses")
        };
        let short = parse(&[
            "--leader-elect-lease-duration=2s",
            "--leader-elect-renew-deadline=1500ms",
            "--leader-elect-retry-period=200ms",
        ]);
        assert_eq!(
            short.leader_elect_renew_deadline,
            Duration::from_millis(1500)
        );
        assert_eq!(short.validate(), Ok(()));
        let e = parse(&["--leader-elect-renew-deadline=15s"])
            .validate()
            .expect_err("renew deadline = lease duration");
        assert!(e.contains("--leader-elect-renew-deadline"), "{e}");
        let e = parse(&["--leader-elect-retry-period=9s"])
            .validate()
            .expect_err("retry too long");
        assert!(e.contains("--leader-elect-retry-period"), "{e}");
        // Without leader election the timings do not matter.
        let off = parse(&["--leader-elect=false", "--leader-elect-renew-deadline=1h"]);
        assert_eq!(off.validate(), Ok(()));
    }

    #[test]
    fn client_go_leader_election_flags() {
        // As kube-controller-manager and controller-runtime managers spell them.
        let config = Config::try_parse_from([
            "sealbox-controller",
            "--namespace=sealbox",
            "--leader-elect=true",
            "--leader-elect-lease-duration=30s",
            "--leader-elect-renew-deadline=20s",
            "--leader-elect-retry-period=4s",
            "--leader-elect-resource-lock=leases",
            "--leader-elect-resource-name=sealbox-leader",
            "--leader-elect-resource-namespace=leader-election",
        ])
        .expect("parses");
        assert_eq!(config.leader_elect_lease_duration, Duration::from_secs(30));
        assert_eq!(config.leader_elect_renew_deadline, Duration::from_secs(20));
        assert_eq!(config.leader_elect_retry_period, Duration::from_secs(4));
        assert_eq!(config.leader_elect_resource_name, "sealbox-leader");
        assert_eq!(config.lease_namespace(), "leader-election");
        assert_eq!(config.validate(), Ok(()));
        let defaults =
            Config::try_parse_from(["sealbox-controller", "--namespace=sealbox"]).expect("parses");
        assert_eq!(defaults.lease_namespace(), "sealbox");
        assert_eq!(defaults.leader_elect_resource_lock, "leases");
        let e = Config::try_parse_from([
            "sealbox-controller",
            "--leader-elect-resource-lock=configmapsleases",
        ])
        .expect_err("only Leases");
        assert!(e.to_string().contains("leases"), "{e}");
    }

    #[test]
    fn go_style_flags() {
        let config = Config::try_parse_from([
            "sealbox-controller",
            "--all-namespaces=false",
            "--additional-namespaces=team-a,team-b",
            "--namespace=sealbox",
            "--key-renew-period=0",
            "--resync-period=0",
            "--key-cutoff-time=Mon, 02 Jan 2006 15:04:05 -0700",
            "--update-status",
            "--listen-addr=127.0.0.1:9090",
        ])
        .expect("parses");
        assert_eq!(
            config.watched_namespaces(),
            Some(vec!["sealbox".into(), "team-a".into(), "team-b".into()])
        );
        assert_eq!(config.key_renew_period, Duration::ZERO);
        assert_eq!(config.resync_period, Duration::ZERO);
        assert_eq!(
            config.key_cutoff_time,
            Some("2006-01-02T22:04:05Z".parse().expect("timestamp"))
        );
        assert!(config.update_status);
    }

    #[test]
    fn go_booleans_and_bitnamis_namespace_rule() {
        for (text, value) in [
            ("1", true),
            ("T", true),
            ("True", true),
            ("f", false),
            ("FALSE", false),
        ] {
            let flag = format!("--update-status={text}");
            let config = Config::try_parse_from(["c", flag.as_str()]).expect("parses");
            assert_eq!(config.update_status, value, "{text}");
        }
        assert!(Config::try_parse_from(["c", "--update-status=yes"]).is_err());
        // Additional namespaces narrow the watch even with --all-namespaces (Bitnami's rule).
        let config =
            Config::try_parse_from(["c", "--namespace=ss", "--additional-namespaces=a,ss,b"])
                .expect("parses");
        assert_eq!(
            config.watched_namespaces(),
            Some(vec!["ss".into(), "a".into(), "b".into()])
        );
        let config =
            Config::try_parse_from(["c", "--all-namespaces=0", "--namespace=ss"]).expect("parses");
        assert_eq!(config.watched_namespaces(), Some(vec!["ss".into()]));
    }

    #[test]
    fn bitnamis_key_and_client_flags() {
        let parse = |args: &[&str]| {
            let mut argv = vec!["c"];
            argv.extend_from_slice(args);
            Config::try_parse_from(argv).expect("parses")
        };
        let defaults = parse(&[]);
        assert_eq!(defaults.key_order(), KeyOrder::CertNotBefore);
        assert_eq!(defaults.unseal_retries(), 5);
        assert_eq!(
            defaults.client_rate(),
            ClientRate::new(f64::from(DEFAULT_KUBECLIENT_QPS), DEFAULT_KUBECLIENT_BURST)
        );
        let set = parse(&[
            "--key-order-priority=SecretCreationTimestamp",
            "--max-unseal-retries=-1",
            "--kubeclient-qps=-1",
            "--key-ttl=1h",
        ]);
        assert_eq!(set.key_order(), KeyOrder::SecretCreationTimestamp);
        assert_eq!(set.unseal_retries(), 0, "Bitnami's: no retry");
        assert_eq!(set.client_rate(), None, "Bitnami's: negative disables");
        assert_eq!(set.validate(), Ok(()));
        for ttl in ["0", "900ms", "8760001h"] {
            let e = parse(&[&format!("--key-ttl={ttl}")])
                .validate()
                .expect_err("out of range");
            assert!(e.contains("--key-ttl"), "{e}");
        }
        assert!(Config::try_parse_from(["c", "--key-order-priority=Newest"]).is_err());
    }

    #[test]
    fn private_key_labels_are_pairs() {
        let config =
            Config::try_parse_from(["c", "--privatekey-labels=a=1,b=x=y,,a=2"]).expect("parses");
        assert_eq!(
            config.key_labels(),
            BTreeMap::from([("a".into(), "2".into()), ("b".into(), "x=y".into())])
        );
        let bad =
            Config::try_parse_from(["c", "--privatekey-annotations=novalue"]).expect("parses");
        let e = bad.validate().expect_err("not a pair");
        assert!(e.contains("--privatekey-annotations"), "{e}");
    }

    #[test]
    fn the_kube_clients_failure_records_are_off_unless_asked_for() {
        assert_eq!(
            log_directives("info"),
            "info,kube_client::client::builder=off"
        );
        let asked = "info,kube_client::client::builder=debug";
        assert_eq!(log_directives(asked), asked);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1h").is_err());
    }

    #[test]
    fn bad_cutoff_time_says_the_format() {
        let e = parse_cutoff_time("2006-01-02").expect_err("rejected");
        assert!(e.contains("RFC 1123"), "{e}");
    }
}
