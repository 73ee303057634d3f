//! The demo's child processes: finding (and building) the binaries, the controller, CLI runs
//! with a time limit, and waiting without hanging. Every wait polls, so Ctrl-C (a flag set by the
//! runtime's signal handler) ends the demo through its normal error path, where drops clean up.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// Set when the user pressed Ctrl-C.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// How often waits look again.
const POLL: Duration = Duration::from_millis(50);

/// Longest a single CLI command may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(120);

/// Marks the demo interrupted; every wait then fails promptly.
pub fn interrupt() {
    INTERRUPTED.store(true, Ordering::Release);
}

fn check_interrupted() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::Acquire) {
        bail!("interrupted");
    }
    Ok(())
}

/// Polls `probe` until it yields a value, fails, or `timeout` passes.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        check_interrupted()?;
        if let Some(found) = probe()? {
            return Ok(found);
        }
        if Instant::now() > deadline {
            bail!("gave up after {} s waiting for {what}", timeout.as_secs());
        }
        std::thread::sleep(POLL);
    }
}

/// The two binaries the demo drives.
#[derive(Debug)]
pub struct Binaries {
    pub sealbox: PathBuf,
    pub controller: PathBuf,
}

impl Binaries {
    /// Finds `sealbox` and `sealbox-controller` in `bin_dir` (default: next to this binary).
    /// Started by `cargo run` and not told otherwise, builds them first with the same profile,
    /// so one command always shows the current code.
    pub fn locate(bin_dir: Option<&Path>, build: bool) -> anyhow::Result<Binaries> {
        let own_dir = std::env::current_exe()
            .context("cannot tell where this binary is")?
            .parent()
            .map(Path::to_owned)
            .context("this binary has no parent directory")?;
        let dir = bin_dir.map_or(own_dir.clone(), Path::to_owned);
        let binaries = Binaries {
            sealbox: dir.join(format!("sealbox{}", std::env::consts::EXE_SUFFIX)),
            controller: dir.join(format!(
                "sealbox-controller{}",
                std::env::consts::EXE_SUFFIX
            )),
        };
        // `cargo run` sets CARGO for the program it runs; a copied binary does not build.
        if build
            && bin_dir.is_none()
            && let Some(cargo) = std::env::var_os("CARGO")
        {
            cargo_build(&cargo, &own_dir)?;
        }
        for binary in [&binaries.sealbox, &binaries.controller] {
            if !binary.is_file() {
                bail!(
                    "{} does not exist: build it with `cargo build -p sealbox -p sealbox-controller` \
                     or pass --bin-dir",
                    binary.display()
                );
            }
        }
        Ok(binaries)
    }
}

/// `cargo build -p sealbox -p sealbox-controller`, in release when `own_dir` is a release
/// directory.
fn cargo_build(cargo: &std::ffi::OsStr, own_dir: &Path) -> anyhow::Result<()> {
    let mut command = Command::new(cargo);
    // Not -q: on a first run this compiles for minutes, and cargo's progress shows it is.
    command.args(["build", "-p", "sealbox", "-p", "sealbox-controller"]);
    if own_dir.file_name().is_some_and(|name| name == "release") {
        command.arg("--release");
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."));
    let status = command
        .current_dir(workspace)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("`cargo build -p sealbox -p sealbox-controller` failed ({status})");
    }
    Ok(())
}

/// A free TCP port on 127.0.0.1 (free when asked; the controller binds it right after).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener
        .local_addr()
        .context("cannot find a free port")?
        .port())
}

/// The status code and body of `GET path` on `addr`, if anything answers.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let status = std::str::from_utf8(response.get(9..12)?)
        .ok()?
        .parse()
        .ok()?;
    let body_start = response.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    Some((status, response.split_off(body_start)))
}

/// The controller binary, running; killed when dropped.
#[derive(Debug)]
pub struct Controller {
    child: Child,
    pub http: SocketAddr,
    pub log: PathBuf,
    pub args: Vec<String>,
}

impl Controller {
    /// Starts `binary` with `KUBECONFIG`, its keys in `namespace`, the HTTP server on a free
    /// port, any metrics listener on another, leader election off when it has such a flag, and
    /// its log in `log`.
    pub fn start(
        binary: &Path,
        kubeconfig: &Path,
        namespace: &str,
        key_size: &str,
        log: PathBuf,
    ) -> anyhow::Result<Controller> {
        let help = Command::new(binary)
            .arg("--help")
            .output()
            .with_context(|| format!("cannot run {}", binary.display()))?;
        let help = String::from_utf8_lossy(&help.stdout).into_owned();
        let http = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let mut args = vec![
            "--namespace".to_owned(),
            namespace.to_owned(),
            "--listen-addr".to_owned(),
            http.to_string(),
            "--key-size".to_owned(),
            key_size.to_owned(),
        ];
        for flag in help
            .split_whitespace()
            .filter(|w| w.starts_with("--") && w.contains("metrics") && w.ends_with("addr"))
        {
            args.extend([flag.to_owned(), format!("127.0.0.1:{}", free_port()?)]);
        }
        if help.split_whitespace().any(|w| w == "--leader-elect") {
            args.push("--leader-elect=false".to_owned());
        }
        let stderr = File::create(&log)
            .with_context(|| format!("cannot create the controller log {}", log.display()))?;
        let child = Command::new(binary)
            .args(&args)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("POD_NAMESPACE")
            .env_remove("POD_NAME")
            .stdin(Stdio::null())
            .stdout(
                stderr
                    .try_clone()
                    .context("cannot share the controller log")?,
            )
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        Ok(Controller {
            child,
            http,
            log,
            args,
        })
    }

    /// Fails, with the end of the controller's log, if the controller has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self
            .child
            .try_wait()
            .context("cannot check the controller")?
        {
            bail!(
                "the controller exited ({status}); the end of its log:\n{}",
                self.log_tail(20)
            );
        }
        Ok(())
    }

    /// The last `lines` lines of the controller's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..]
            .iter()
            .map(|line| format!("    {line}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a CLI run printed.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the `sealbox` CLI in the scratch directory against the double's kubeconfig.
#[derive(Debug)]
pub struct Sealbox {
    pub binary: PathBuf,
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
}

impl Sealbox {
    /// Runs `sealbox ARGS`; fails with its stderr when it does not exit 0.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<Output> {
        let output = self.run_unchecked(args)?;
        if !output.status.success() {
            bail!(
                "`sealbox {}` failed ({}):\n{}",
                args.join(" "),
                output.status,
                indent(&output.stderr)
            );
        }
        Ok(output)
    }

    /// Runs `sealbox ARGS` with a time limit, whatever its exit code.
    pub fn run_unchecked(&self, args: &[&str]) -> anyhow::Result<Output> {
        let run = format!("cli-{}", std::process::id());
        let (out_path, err_path) = (
            self.dir.join(format!(".{run}.out")),
            self.dir.join(format!(".{run}.err")),
        );
        let mut command = Command::new(&self.binary);
        // The user's own SEALBOX_* settings (a --cert, a context) must not leak into the demo.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SEALBOX_") {
                command.env_remove(name);
            }
        }
        let mut child = command
            .args(args)
            .current_dir(&self.dir)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::null())
            .stdout(File::create(&out_path).context("cannot capture the CLI's output")?)
            .stderr(File::create(&err_path).context("cannot capture the CLI's output")?)
            .spawn()
            .with_context(|| format!("cannot start {}", self.binary.display()))?;
        let deadline = Instant::now() + CLI_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().context("cannot wait for the CLI")? {
                break status;
            }
            if INTERRUPTED.load(Ordering::Acquire) || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                check_interrupted()?;
                bail!(
                    "`sealbox {}` did not finish within {} s",
                    args.join(" "),
                    CLI_TIMEOUT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
        let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
        let _ = std::fs::remove_file(&out_path);
        let _ = std::fs::remove_file(&err_path);
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }
}

/// `text` with every line indented for the demo's output.
pub fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("     {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}
