//! The controller's flags. Names follow Bitnami's controller where one exists, so existing
//! Deployments keep working; every flag also reads `SEALBOX_<NAME>` from the environment.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};
use jiff::Timestamp;

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
    #[arg(long, env = "SEALBOX_KEY_RENEW_PERIOD", default_value = "720h", value_parser = parse_duration)]
    pub key_renew_period: Duration,

    /// Generate a new key at start if the newest is older than this time, in RFC 1123 format
    /// with a numeric zone ("Mon, 02 Jan 2006 15:04:05 -0700").
    #[arg(long, env = "SEALBOX_KEY_CUTOFF_TIME", value_parser = parse_cutoff_time)]
    pub key_cutoff_time: Option<Timestamp>,

    /// Common name of the generated certificates' subject and issuer.
    #[arg(long, env = "SEALBOX_MY_CN", default_value = "")]
    pub my_cn: String,

    /// Watch SealedSecrets in all namespaces; when false, only the controller's namespace and
    /// --additional-namespaces.
    #[arg(long, env = "SEALBOX_ALL_NAMESPACES", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub all_namespaces: bool,

    /// Comma-separated namespaces to watch besides the controller's when --all-namespaces=false.
    #[arg(long, env = "SEALBOX_ADDITIONAL_NAMESPACES", value_delimiter = ',')]
    pub additional_namespaces: Vec<String>,

    /// Only SealedSecrets matching this label selector are unsealed.
    #[arg(long, env = "SEALBOX_LABEL_SELECTOR")]
    pub label_selector: Option<String>,

    /// Report the outcome in each SealedSecret's status subresource.
    #[arg(long, env = "SEALBOX_UPDATE_STATUS", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub update_status: bool,

    /// Accept SealedSecrets in the deprecated single-blob format (spec.data).
    #[arg(long, env = "SEALBOX_ACCEPT_DEPRECATED_V1_DATA", default_value_t = false, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub accept_deprecated_v1_data: bool,

    /// Namespace holding the key Secrets. Defaults to $POD_NAMESPACE, then the service
    /// account's namespace, then kube-system.
    #[arg(long, env = "SEALBOX_NAMESPACE")]
    pub namespace: Option<String>,

    /// Address of the HTTP server (/healthz, /readyz), e.g. ":8080" or "127.0.0.1:8080".
    #[arg(long, env = "SEALBOX_LISTEN_ADDR", default_value = ":8080", value_parser = parse_listen_addr)]
    pub listen_addr: SocketAddr,

    /// SealedSecrets reconciled at once (unsealing itself is bounded by the CPU cores).
    #[arg(long, env = "SEALBOX_RECONCILE_CONCURRENCY", default_value_t = 64)]
    pub reconcile_concurrency: u16,

    /// Log line format.
    #[arg(long, env = "SEALBOX_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log level or tracing filter directives (e.g. "info" or "sealbox_controller=debug").
    #[arg(long, env = "SEALBOX_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Config {
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
        if self.all_namespaces {
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
        assert!(!config.accept_deprecated_v1_data);
        assert_eq!(config.listen_addr, "0.0.0.0:8080".parse().expect("addr"));
        assert_eq!(config.key_size, 4096);
        assert_eq!(config.watched_namespaces(), None);
    }

    #[test]
    fn go_style_flags() {
        let config = Config::try_parse_from([
            "sealbox-controller",
            "--all-namespaces=false",
            "--additional-namespaces=team-a,team-b",
            "--namespace=sealbox",
            "--key-renew-period=0",
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
        assert_eq!(
            config.key_cutoff_time,
            Some("2006-01-02T22:04:05Z".parse().expect("timestamp"))
        );
        assert!(config.update_status);
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
