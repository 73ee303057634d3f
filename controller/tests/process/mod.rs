//! The controller binary as a process of its own, for the tests that kill one (`kill -9`: no
//! Lease release, nothing drained): HA failover and the fault test, on either backend.
//!
//! Included with `mod process;` from the test binaries that need it (beside `mod support;`).

// Each test binary compiles its own copy of this module and uses only part of it.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::support::{CONTROLLER_NS, TestResult};

/// Leader-election timings short enough for a test: lease 2s, renew deadline 1.5s, retry
/// period 200ms. Flags given after them win.
pub const SHORT_LEASE: [&str; 3] = [
    "--leader-elect-lease-duration=2s",
    "--leader-elect-renew-deadline=1500ms",
    "--leader-elect-retry-period=200ms",
];

/// A `sealbox-controller` process, killed with SIGKILL (a crash: no Lease release) when dropped
/// or [`kill`](Self::kill)ed. Its stdout and stderr go to `log`.
pub struct ControllerProcess {
    pub identity: String,
    pub http: SocketAddr,
    pub metrics: SocketAddr,
    pub log: PathBuf,
    child: Child,
}

impl ControllerProcess {
    /// Starts the controller with `kubeconfig`, [`CONTROLLER_NS`], 2048-bit keys, no key
    /// renewal, free ports on 127.0.0.1, leader identity `identity` and then `args`; its log is
    /// `dir/<identity>.log`.
    pub fn spawn(kubeconfig: &Path, dir: &Path, identity: &str, args: &[&str]) -> TestResult<Self> {
        let [http, metrics] = [(); 2].map(|()| TcpListener::bind("127.0.0.1:0"));
        let (http, metrics) = (http?.local_addr()?, metrics?.local_addr()?);
        let log = dir.join(format!("{identity}.log"));
        let out = std::fs::File::create(&log)?;
        let child = Command::new(env!("CARGO_BIN_EXE_sealbox-controller"))
            .env("KUBECONFIG", kubeconfig)
            .args([
                &format!("--listen-addr={http}"),
                &format!("--listen-metrics-addr={metrics}"),
                &format!("--namespace={CONTROLLER_NS}"),
                "--key-size=2048",
                "--key-renew-period=0",
                &format!("--leader-elect-identity={identity}"),
            ])
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        Ok(Self {
            identity: identity.to_owned(),
            http,
            metrics,
            log,
            child,
        })
    }

    /// What the process logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, and reaps the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The process's peak resident set size (`VmHWM`) in KiB, while it runs (Linux only).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fresh directory for one test's kubeconfig and logs, under Cargo's scratch space for
/// integration tests (a failing test leaves it for a look; a passing one removes it).
pub fn scratch_dir(name: &str) -> TestResult<PathBuf> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
