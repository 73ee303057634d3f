//! The process figures Prometheus' client_golang exposes for every Go program (Bitnami's
//! controller included), read from Linux's /proc at each scrape: `process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`,
//! `process_max_fds` and `process_start_time_seconds`. Where /proc is missing (not Linux) or a
//! file cannot be read, the figures it gives are left out rather than made up.
//!
//! Parsing is pure ([`Stat::parse`] and friends); [`ProcessFigures`] only reads the files.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Clock ticks per second in /proc's time fields: Linux's USER_HZ, which the kernel keeps at
/// 100 in what it shows userspace on every architecture Kubernetes nodes run (x86-64, arm64,
/// ppc64le, s390x), whatever its internal tick rate.
const USER_HZ: f64 = 100.0;

/// What `/proc/self/stat` says that client_golang reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    /// User plus system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Start time in seconds after boot.
    pub start_after_boot: f64,
    /// Virtual memory size in bytes.
    pub virtual_bytes: u64,
}

impl Stat {
    /// Parses `/proc/<pid>/stat`. The command name (field 2) may hold spaces and
    /// parentheses, so the fields are counted after its last `)`.
    pub fn parse(text: &str) -> Option<Stat> {
        let rest = &text[text.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // Field n of proc(5) is fields[n - 3]: utime 14, stime 15, starttime 22, vsize 23.
        let number = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        let ticks = number(14)?.saturating_add(number(15)?);
        Some(Stat {
            cpu_seconds: ticks as f64 / USER_HZ,
            start_after_boot: number(22)? as f64 / USER_HZ,
            virtual_bytes: number(23)?,
        })
    }
}

/// `VmRSS` of `/proc/self/status`, in bytes.
pub fn resident_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line.split_whitespace().skip(1);
    let value: u64 = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then(|| value.saturating_mul(1024))
}

/// `btime` of `/proc/stat`: the boot time in seconds since the epoch.
pub fn boot_time(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// The soft limit of "Max open files" in `/proc/self/limits`; `None` when unlimited.
pub fn max_fds(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Reads the figures at each scrape.
#[derive(Debug, Default)]
pub struct ProcessFigures;

impl Collector for ProcessFigures {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        let stat = read("/proc/self/stat").as_deref().and_then(Stat::parse);
        if let Some(stat) = stat {
            let cpu = ConstCounter::new(stat.cpu_seconds);
            cpu.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                cpu.metric_type(),
            )?)?;
            gauge(
                &mut encoder,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                stat.virtual_bytes as f64,
            )?;
            let boot = read("/proc/stat").as_deref().and_then(boot_time);
            if let Some(boot) = boot {
                gauge(
                    &mut encoder,
                    "process_start_time_seconds",
                    "Start time of the process since unix epoch in seconds.",
                    boot as f64 + stat.start_after_boot,
                )?;
            }
        }
        if let Some(rss) = read("/proc/self/status")
            .as_deref()
            .and_then(resident_bytes)
        {
            let help = "Resident memory size in bytes.";
            gauge(
                &mut encoder,
                "process_resident_memory_bytes",
                help,
                rss as f64,
            )?;
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            // The directory's own descriptor, open while counting, is one of the entries.
            let open = fds.count().saturating_sub(1);
            let help = "Number of open file descriptors.";
            gauge(&mut encoder, "process_open_fds", help, open as f64)?;
        }
        if let Some(max) = read("/proc/self/limits").as_deref().and_then(max_fds) {
            let help = "Maximum number of open file descriptors.";
            gauge(&mut encoder, "process_max_fds", help, max as f64)?;
        }
        Ok(())
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), fmt::Error> {
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A command name with a space and a parenthesis, as proc(5) allows.
        let text = "4242 (sealbox (x) c) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    250 50 0 0 20 0 9 0 123456 987654321 4321 18446744073709551615";
        let stat = Stat::parse(text).expect("parses");
        assert_eq!(stat.cpu_seconds, 3.0);
        assert_eq!(stat.start_after_boot, 1234.56);
        assert_eq!(stat.virtual_bytes, 987_654_321);
        assert_eq!(Stat::parse("4242 (truncated) S 1"), None);
        assert_eq!(Stat::parse("no parenthesis"), None);
    }

    #[test]
    fn status_limits_and_boot_time() {
        let status = "Name:\tsealbox\nVmPeak:\t  9000 kB\nVmRSS:\t   61234 kB\nThreads:\t9\n";
        assert_eq!(resident_bytes(status), Some(61_234 * 1024));
        assert_eq!(resident_bytes("VmRSS: 12 pages"), None);
        let stat = "cpu  1 2 3\nintr 5\nbtime 1764979200\nprocesses 9\n";
        assert_eq!(boot_time(stat), Some(1_764_979_200));
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             127307               127307               processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(max_fds(limits), Some(1024));
        assert_eq!(
            max_fds("Max open files            unlimited            unlimited            files"),
            None
        );
    }

    #[test]
    fn this_process_figures_are_exposed() {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(ProcessFigures));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        if !std::path::Path::new("/proc/self/stat").exists() {
            return;
        }
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_virtual_memory_bytes ",
            "process_open_fds ",
            "process_max_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(name)),
                "{name} in\n{text}"
            );
        }
    }
}
