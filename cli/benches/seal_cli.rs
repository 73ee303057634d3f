//! Wall time of the built `sealbox` binary sealing a 5-key Secret from a certificate file
//! (examples/cert.pem, RSA-4096), the median of N runs, next to the cost of merely starting the
//! process (`sealbox --version`) and of unsealing the result with the example key.
//!
//! Run: `cargo bench -p sealbox --bench seal_cli` (release build). `SEALBOX_BENCH_RUNS` sets N
//! (default 50).

// Printing the figures is the point of this binary.
#![allow(clippy::print_stdout)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "apiVersion: v1
kind: Secret
metadata:
  name: bench
  namespace: default
stringData:
  username: admin
  password: correct-horse-battery-staple
  host: db.internal.example.com
  port: \"5432\"
  url: postgres://admin:correct-horse-battery-staple@db.internal.example.com:5432/app
";

fn main() {
    let runs: usize = std::env::var("SEALBOX_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
        .max(1);
    let bin = Path::new(env!("CARGO_BIN_EXE_sealbox"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cert = root.join("examples/cert.pem");
    let key = root.join("examples/sealing-key.yaml");
    let dir = std::env::temp_dir().join(format!("sealbox-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let secret = dir.join("secret.yaml");
    let sealed = dir.join("sealed.yaml");
    std::fs::write(&secret, SECRET).expect("write the Secret");

    let run = |args: &[&std::ffi::OsStr]| -> Duration {
        let start = Instant::now();
        let status = Command::new(bin)
            .args(args)
            .env("KUBECONFIG", "/nonexistent")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .expect("run sealbox");
        let elapsed = start.elapsed();
        assert!(status.success(), "sealbox {args:?} failed");
        elapsed
    };
    let seal_args = [
        "seal".as_ref(),
        "--cert".as_ref(),
        cert.as_os_str(),
        "-f".as_ref(),
        secret.as_os_str(),
        "-w".as_ref(),
        sealed.as_os_str(),
    ];
    // Warm the page cache and produce the file unseal reads.
    run(&seal_args);
    let unseal_args = [
        "unseal".as_ref(),
        "--key".as_ref(),
        key.as_os_str(),
        "-f".as_ref(),
        sealed.as_os_str(),
    ];

    let startup = measure(runs, || run(&["--version".as_ref()]));
    let seal = measure(runs, || run(&seal_args));
    let unseal = measure(runs, || run(&unseal_args));
    let _ = std::fs::remove_dir_all(&dir);

    println!("sealbox CLI wall time, median of {runs} runs (min..max):");
    report("process start (sealbox --version)", &startup);
    report("seal a 5-key Secret from a cert file", &seal);
    report("unseal it with the key Secret", &unseal);
    println!(
        "seal minus process start: {:.2} ms",
        ms(seal.median.saturating_sub(startup.median))
    );
}

struct Stats {
    median: Duration,
    min: Duration,
    max: Duration,
}

fn measure(runs: usize, mut f: impl FnMut() -> Duration) -> Stats {
    let mut times: Vec<Duration> = (0..runs).map(|_| f()).collect();
    times.sort();
    Stats {
        median: times[times.len() / 2],
        min: times[0],
        max: times[times.len() - 1],
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(what: &str, stats: &Stats) {
    println!(
        "  {what:<40} {:>7.2} ms  ({:.2}..{:.2})",
        ms(stats.median),
        ms(stats.min),
        ms(stats.max)
    );
}
