//! The two sides of the tier-5 tests (TESTING.md: "Bitnami as the peer"): Bitnami's
//! `kubeseal`, `controller` and integration suite, built by `tests/peers/build.sh` into
//! `target/peers/bin/`, and Sealbox's own `sealbox` and `sealbox-controller` binaries, both
//! controllers run as processes against a [`RealControlPlane`].
//!
//! ```no_run
//! # async fn demo(plane: &sealbox_tests::real::RealControlPlane) -> Result<(), Box<dyn std::error::Error>> {
//! use sealbox_tests::peers::{Peers, Sealbox};
//!
//! // None (and a message on stderr) when target/peers/bin is not built.
//! let Some(peers) = Peers::find_or_skip()? else { return Ok(()) };
//! let sealbox = Sealbox::find()?;
//! let bitnami = peers
//!     .start_controller(plane, "kube-system", "bitnami-peer", "keys", &["--all-namespaces=false"])
//!     .await?;
//! let cert = bitnami.cert()?; // GET /v1/cert.pem on 127.0.0.1
//! # let _ = (sealbox, cert);
//! # Ok(())
//! # }
//! ```
//!
//! Bitnami's controller knows only the in-cluster configuration: the API server from
//! `KUBERNETES_SERVICE_HOST`/`_PORT`, its token and CA from the fixed directory
//! `/var/run/secrets/kubernetes.io/serviceaccount`. So it runs in a mount namespace of its own
//! (`unshare --mount`, as root; with `--map-root-user` otherwise) where a tmpfs over `/var/run`
//! holds a ServiceAccount token from the TokenRequest API: the machine's own `/var/run` is never
//! touched. Dropping a [`Controller`] kills exactly its process and removes its directory.

use std::ffi::OsString;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::real::process::Process;
use crate::real::{REQUIRED_ENV, RealControlPlane, TestHost};

/// Overrides where Bitnami's binaries are looked for (default: `peers/bin` under
/// `CARGO_TARGET_DIR`, else `target/peers/bin` in the repository).
pub const BIN_DIR_ENV: &str = "SEALBOX_PEERS_BIN";
/// The command that builds them, for messages.
const BUILD_COMMAND: &str = "tests/peers/build.sh";
/// What `tests/peers/build.sh` writes.
const BINARIES: [&str; 3] = ["kubeseal", "controller", "integration.test"];
/// Where client-go's `rest.InClusterConfig` reads the token, CA and namespace (fixed paths).
const IN_CLUSTER_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// How long a controller may take to serve its certificate: key generation (RSA-4096) plus
/// the first list of keys, many times slower on a loaded 2-core CI machine than idle.
const START_TIMEOUT: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(100);
/// Bounds of one plain HTTP exchange with a controller on 127.0.0.1.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
const HTTP_MAX_BYTES: u64 = 1 << 20;

/// Failures to find, start or reach the peers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bitnami's binaries are missing and [`REQUIRED_ENV`] asks for them.
    #[error("Bitnami's peers are not built: {} has no {missing} (run {BUILD_COMMAND})", dir.display())]
    NotBuilt { dir: PathBuf, missing: &'static str },
    /// Sealbox's binaries are not next to the test binary.
    #[error(
        "{} is not built (cargo build -p sealbox -p sealbox-controller; `cargo test --workspace` builds it)",
        path.display()
    )]
    SealboxNotBuilt { path: PathBuf },
    /// The running test binary's path is unknown.
    #[error("cannot tell where the test binary is")]
    CurrentExe {
        #[source]
        source: std::io::Error,
    },
    /// Starting or watching a process, or a file of it.
    #[error(transparent)]
    Process(#[from] crate::real::Error),
    /// A controller's directory or a file in it could not be made.
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The ServiceAccount kubeconfig of the plane lacks what the in-cluster files need.
    #[error("the kubeconfig {} has no {what}", path.display())]
    Kubeconfig { path: PathBuf, what: &'static str },
    /// No free loopback port.
    #[error("cannot find a free port on 127.0.0.1")]
    FreePort {
        #[source]
        source: std::io::Error,
    },
    /// A controller did not serve its certificate in time (or stopped).
    #[error(
        "{process} did not serve /v1/cert.pem within {waited:?} (last: {last}); the end of its log:\n{log_tail}"
    )]
    NotReady {
        process: &'static str,
        waited: Duration,
        last: String,
        log_tail: String,
    },
    /// An HTTP request to a controller failed.
    #[error("GET http://{addr}{path}: {reason}")]
    Http {
        addr: SocketAddr,
        path: String,
        reason: String,
    },
}

/// Bitnami's binaries, built by [`BUILD_COMMAND`].
#[derive(Debug, Clone)]
pub struct Peers {
    dir: PathBuf,
}

impl Peers {
    /// [`BIN_DIR_ENV`], else `peers/bin` in the target directory (`CARGO_TARGET_DIR` as the
    /// test runs, else as the tests were built, else `target/` of this repository).
    pub fn dir() -> PathBuf {
        match std::env::var_os(BIN_DIR_ENV) {
            Some(dir) => PathBuf::from(dir),
            None => crate::real::target_dir().join("peers/bin"),
        }
    }

    /// The binaries, or `Err(NotBuilt)` naming the first one missing.
    pub fn find() -> Result<Self, Error> {
        let dir = Self::dir();
        for name in BINARIES {
            if !dir.join(name).is_file() {
                return Err(Error::NotBuilt { dir, missing: name });
            }
        }
        Ok(Self { dir })
    }

    /// As [`find`](Self::find), but when they are missing and [`REQUIRED_ENV`] is not `1`,
    /// prints why the caller should skip and returns `None`.
    pub fn find_or_skip() -> Result<Option<Self>, Error> {
        match Self::find() {
            Ok(peers) => Ok(Some(peers)),
            Err(e @ Error::NotBuilt { .. })
                if std::env::var_os(REQUIRED_ENV).is_none_or(|v| v != "1") =>
            {
                eprintln!("skipping: {e}; set {REQUIRED_ENV}=1 to make this an error");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Bitnami's `kubeseal`.
    pub fn kubeseal(&self) -> PathBuf {
        self.dir.join("kubeseal")
    }

    /// Bitnami's `controller`.
    pub fn controller(&self) -> PathBuf {
        self.dir.join("controller")
    }

    /// Bitnami's integration suite, compiled (`go test -c -tags integration`).
    pub fn integration_suite(&self) -> PathBuf {
        self.dir.join("integration.test")
    }

    /// Starts Bitnami's controller against `plane` as ServiceAccount `sa_namespace/sa_name`
    /// (which must exist, with the rights the controller needs), its keys in `namespace` (its
    /// `POD_NAMESPACE`), its HTTP server on a free port of 127.0.0.1, and `args` after that.
    /// Returns once it serves `/v1/cert.pem`.
    pub async fn start_controller(
        &self,
        plane: &RealControlPlane,
        sa_namespace: &str,
        sa_name: &str,
        namespace: &str,
        args: &[&str],
    ) -> Result<Controller, Error> {
        let kubeconfig = plane
            .service_account_kubeconfig(sa_namespace, sa_name)
            .await?;
        let dir = tempfile::Builder::new()
            .prefix("sealbox-bitnami-controller.")
            .tempdir()
            .map_err(|source| Error::Write {
                path: std::env::temp_dir(),
                source,
            })?;
        let in_cluster = dir.path().join("serviceaccount");
        write_in_cluster_files(&kubeconfig, &in_cluster, namespace)?;
        let (host, port) = api_server_host_port(plane.url());
        let [http, metrics] = free_ports()?;

        let mut command = in_mount_namespace(&in_cluster);
        command
            .arg(self.controller())
            .arg(format!("--listen-addr=127.0.0.1:{}", http.port()))
            .arg(format!(
                "--listen-metrics-addr=127.0.0.1:{}",
                metrics.port()
            ))
            .args(args)
            .env("KUBERNETES_SERVICE_HOST", host)
            .env("KUBERNETES_SERVICE_PORT", port)
            .env("POD_NAMESPACE", namespace);
        let log = dir.path().join("controller.log");
        let process = Process::spawn_command("bitnami-controller", command, log)?;
        Controller::ready(Runner::Process { process, _dir: dir }, http).await
    }
}

/// Sealbox's own binaries, next to the test binary (`target/debug/`), where `cargo test
/// --workspace` builds them.
#[derive(Debug, Clone)]
pub struct Sealbox {
    cli: PathBuf,
    controller: PathBuf,
}

impl Sealbox {
    /// `sealbox` and `sealbox-controller` in the directory above the running test binary's
    /// (`target/debug/deps/NAME-HASH` → `target/debug`).
    pub fn find() -> Result<Self, Error> {
        let exe = std::env::current_exe().map_err(|source| Error::CurrentExe { source })?;
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .map(Path::to_owned)
            .unwrap_or_default();
        Self::in_dir(&dir)
    }

    /// `sealbox` and `sealbox-controller` in `dir` (e.g. `target/release`, for a benchmark).
    pub fn in_dir(dir: &Path) -> Result<Self, Error> {
        let found = Self {
            cli: dir.join(format!("sealbox{}", std::env::consts::EXE_SUFFIX)),
            controller: dir.join(format!(
                "sealbox-controller{}",
                std::env::consts::EXE_SUFFIX
            )),
        };
        for path in [&found.cli, &found.controller] {
            if !path.is_file() {
                return Err(Error::SealboxNotBuilt { path: path.clone() });
            }
        }
        Ok(found)
    }

    /// The `sealbox` CLI.
    pub fn cli(&self) -> &Path {
        &self.cli
    }

    /// The `sealbox-controller` binary.
    pub fn controller_binary(&self) -> &Path {
        &self.controller
    }

    /// Starts `sealbox-controller` with `kubeconfig` (`KUBECONFIG`), its keys in `namespace`,
    /// leader election off, its HTTP servers on free ports of 127.0.0.1, and `args` after that.
    /// Returns once it serves `/v1/cert.pem`.
    pub async fn start_controller(
        &self,
        kubeconfig: &Path,
        namespace: &str,
        args: &[&str],
    ) -> Result<Controller, Error> {
        let dir = tempfile::Builder::new()
            .prefix("sealbox-controller.")
            .tempdir()
            .map_err(|source| Error::Write {
                path: std::env::temp_dir(),
                source,
            })?;
        let [http, metrics] = free_ports()?;
        let command = self.controller_command(kubeconfig, namespace, http, metrics, args);
        let log = dir.path().join("controller.log");
        let process = Process::spawn_command(SEALBOX_CONTROLLER, command, log)?;
        Controller::ready(Runner::Process { process, _dir: dir }, http).await
    }

    /// As [`start_controller`](Self::start_controller), but inside `host` (which the controller
    /// then owns), listening on the host's address at [`HOSTED_PORT`] (metrics on the next
    /// port), so that the API server's service proxy reaches it once
    /// [`RealControlPlane::expose_service`] points a Service there. `kubeconfig` must reach the
    /// API server from inside the host ([`TestHost::reach`]).
    pub async fn start_controller_in(
        &self,
        mut host: TestHost,
        kubeconfig: &Path,
        namespace: &str,
        args: &[&str],
    ) -> Result<Controller, Error> {
        let http = SocketAddr::from((host.address(), HOSTED_PORT));
        let metrics = SocketAddr::from((host.address(), HOSTED_PORT + 1));
        let command = self.controller_command(kubeconfig, namespace, http, metrics, args);
        host.spawn(SEALBOX_CONTROLLER, &command)?;
        Controller::ready(Runner::Host(Box::new(host)), http).await
    }

    fn controller_command(
        &self,
        kubeconfig: &Path,
        namespace: &str,
        http: SocketAddr,
        metrics: SocketAddr,
        args: &[&str],
    ) -> Command {
        let mut command = Command::new(&self.controller);
        command
            .arg(format!("--namespace={namespace}"))
            .arg("--leader-elect=false")
            .arg(format!("--listen-addr={http}"))
            .arg(format!("--listen-metrics-addr={metrics}"))
            .args(args)
            .env("KUBECONFIG", kubeconfig);
        command
    }
}

/// The process name of Sealbox's controller, in logs and in a [`TestHost`].
const SEALBOX_CONTROLLER: &str = "sealbox-controller";
/// The port a controller in a [`TestHost`] serves on: its namespace is its own, so the
/// port a Deployment's container uses is free.
pub const HOSTED_PORT: u16 = 8080;

/// How a [`Controller`] runs: a process of its own (with its directory), or inside a test host.
enum Runner {
    // Fields drop in order: the process dies before its directory goes.
    Process {
        process: Process,
        /// Held only to be removed after the process dies.
        _dir: tempfile::TempDir,
    },
    /// Boxed: a host is large. Its processes are named [`SEALBOX_CONTROLLER`].
    Host(Box<TestHost>),
}

impl Runner {
    fn name(&self) -> &'static str {
        match self {
            Runner::Process { process, .. } => process.name(),
            Runner::Host(_) => SEALBOX_CONTROLLER,
        }
    }

    fn check_running(&mut self) -> Result<(), crate::real::Error> {
        match self {
            Runner::Process { process, .. } => process.check_running(),
            Runner::Host(host) => host.check_running(SEALBOX_CONTROLLER),
        }
    }

    fn log_tail(&self) -> String {
        match self {
            Runner::Process { process, .. } => process.log_tail(),
            Runner::Host(host) => host.log_tail(SEALBOX_CONTROLLER),
        }
    }

    fn log(&self) -> PathBuf {
        match self {
            Runner::Process { process, .. } => process.log().to_owned(),
            Runner::Host(host) => host.dir().join(format!("{SEALBOX_CONTROLLER}.log")),
        }
    }
}

/// A running controller (Bitnami's or Sealbox's). Dropping it kills the process, then removes
/// its directory (log, in-cluster files), or drops its test host.
pub struct Controller {
    runner: Runner,
    http: SocketAddr,
}

/// Names the process and where it listens; nothing else it holds is of interest.
impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("process", &self.runner.name())
            .field("http", &self.http)
            .finish_non_exhaustive()
    }
}

impl Controller {
    async fn ready(mut runner: Runner, http: SocketAddr) -> Result<Self, Error> {
        let began = Instant::now();
        loop {
            runner.check_running()?;
            let last = match http_get(http, "/v1/cert.pem") {
                Ok((200, _)) => return Ok(Self { runner, http }),
                Ok((status, body)) => format!("{status} {}", body.trim()),
                Err(e) => e.to_string(),
            };
            if began.elapsed() > START_TIMEOUT {
                return Err(Error::NotReady {
                    process: runner.name(),
                    waited: began.elapsed(),
                    last,
                    log_tail: runner.log_tail(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The HTTP server's address (127.0.0.1, or the test host's).
    pub fn addr(&self) -> SocketAddr {
        self.http
    }

    /// `http://ADDR/v1/cert.pem`: what `--cert URL` of either CLI reads.
    pub fn cert_url(&self) -> String {
        format!("http://{}/v1/cert.pem", self.http)
    }

    /// The certificate it seals with now (`GET /v1/cert.pem`).
    pub fn cert(&self) -> Result<String, Error> {
        match http_get(self.http, "/v1/cert.pem")? {
            (200, body) => Ok(body),
            (status, body) => Err(Error::Http {
                addr: self.http,
                path: "/v1/cert.pem".to_owned(),
                reason: format!("{status} {}", body.trim()),
            }),
        }
    }

    /// Its process id, when it runs as a process of its own (not in a test host): for its CPU
    /// time and peak RSS from /proc (the benchmarks). Bitnami's is the controller itself:
    /// `unshare` and its `sh` exec it.
    pub fn pid(&self) -> Option<u32> {
        match &self.runner {
            Runner::Process { process, .. } => Some(process.pid()),
            Runner::Host(_) => None,
        }
    }

    /// The test host it runs in, if any (for [`RealControlPlane::expose_service`]).
    pub fn host(&self) -> Option<&TestHost> {
        match &self.runner {
            Runner::Host(host) => Some(host),
            Runner::Process { .. } => None,
        }
    }

    /// An error quoting its log if it has exited.
    pub fn check_running(&mut self) -> Result<(), Error> {
        Ok(self.runner.check_running()?)
    }

    /// The end of its log (stdout and stderr), for a failing test's message.
    pub fn log_tail(&self) -> String {
        self.runner.log_tail()
    }

    /// Its log file.
    pub fn log(&self) -> PathBuf {
        self.runner.log()
    }
}

/// `unshare` running a `sh` that mounts a tmpfs over `/var/run` (in its own mount namespace
/// only), puts `files` (token, ca.crt, namespace) at [`IN_CLUSTER_DIR`] and then execs the
/// program and arguments the caller appends.
fn in_mount_namespace(files: &Path) -> Command {
    let mut command = Command::new("unshare");
    command.args(["--mount", "--propagation", "private"]);
    // Root can mount in a new mount namespace; anyone else needs a user namespace too.
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root {
        command.arg("--map-root-user");
    }
    command.args([
        "--",
        "sh",
        "-c",
        r#"set -e
files=$0
mount -t tmpfs -o mode=0755,size=1m sealbox-in-cluster /var/run
mkdir -p "$IN_CLUSTER_DIR"
cp "$files/token" "$files/ca.crt" "$files/namespace" "$IN_CLUSTER_DIR/"
exec "$@""#,
    ]);
    command.arg(files).env("IN_CLUSTER_DIR", IN_CLUSTER_DIR);
    command
}

/// Writes `token`, `ca.crt` and `namespace` into `dir` from a ServiceAccount kubeconfig of the
/// plane (token and CA inline, as [`RealControlPlane::service_account_kubeconfig`] writes them).
fn write_in_cluster_files(kubeconfig: &Path, dir: &Path, namespace: &str) -> Result<(), Error> {
    let missing = |what| Error::Kubeconfig {
        path: kubeconfig.to_owned(),
        what,
    };
    let yaml = std::fs::read_to_string(kubeconfig).map_err(|_| missing("readable YAML"))?;
    let config: serde_json::Value =
        serde_norway::from_str(&yaml).map_err(|_| missing("readable YAML"))?;
    let token = config["users"][0]["user"]["token"]
        .as_str()
        .ok_or_else(|| missing("user token"))?;
    let ca = config["clusters"][0]["cluster"]["certificate-authority-data"]
        .as_str()
        .ok_or_else(|| missing("certificate-authority-data"))?;
    let ca = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, ca)
        .map_err(|_| missing("base64 certificate-authority-data"))?;
    let write = |name: &str, contents: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, contents).map_err(|source| Error::Write { path, source })
    };
    std::fs::create_dir(dir).map_err(|source| Error::Write {
        path: dir.to_owned(),
        source,
    })?;
    write("token", token.as_bytes())?;
    write("ca.crt", &ca)?;
    write("namespace", namespace.as_bytes())
}

/// Host and port of the API server's `https://HOST:PORT` URL, as `KUBERNETES_SERVICE_HOST` and
/// `_PORT` name them.
fn api_server_host_port(url: &str) -> (OsString, OsString) {
    let authority = url.trim_start_matches("https://");
    let (host, port) = authority.rsplit_once(':').unwrap_or((authority, "443"));
    (host.into(), port.trim_end_matches('/').into())
}

/// `N` distinct free ports on 127.0.0.1 at the time of the call.
fn free_ports<const N: usize>() -> Result<[SocketAddr; N], Error> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::FreePort { source })?;
    let mut addrs = [SocketAddr::from((Ipv4Addr::LOCALHOST, 0)); N];
    for (addr, listener) in addrs.iter_mut().zip(&listeners) {
        *addr = listener
            .local_addr()
            .map_err(|source| Error::FreePort { source })?;
    }
    Ok(addrs)
}

/// Status and body of a plain `GET path` (HTTP/1.0, so the answer ends with the connection),
/// bounded in time and size. Blocking: a controller on loopback answers in milliseconds.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), Error> {
    let fail = |reason: String| Error::Http {
        addr,
        path: path.to_owned(),
        reason,
    };
    let mut stream =
        TcpStream::connect_timeout(&addr, HTTP_TIMEOUT).map_err(|e| fail(e.to_string()))?;
    stream
        .set_read_timeout(Some(HTTP_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(HTTP_TIMEOUT)))
        .map_err(|e| fail(e.to_string()))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")
        .map_err(|e| fail(e.to_string()))?;
    let mut response = Vec::new();
    stream
        .take(HTTP_MAX_BYTES)
        .read_to_end(&mut response)
        .map_err(|e| fail(e.to_string()))?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| fail("no end of headers".to_owned()))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| fail(format!("no status in {:?}", head.lines().next())))?;
    Ok((status, body.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_server_url_names_host_and_port() {
        assert_eq!(
            api_server_host_port("https://127.0.0.1:36443"),
            ("127.0.0.1".into(), "36443".into())
        );
    }

    /// The in-cluster files come out of a kubeconfig like the plane writes: the token as it
    /// is, the CA decoded from base64.
    #[test]
    fn in_cluster_files_come_from_a_token_kubeconfig() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let ca_pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let yaml = crate::kubeconfig::kubeconfig(
            "c",
            "https://127.0.0.1:1",
            Some(&base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                ca_pem,
            )),
            "u",
            serde_json::json!({"token": "t0ken"}),
            "ns",
        );
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, yaml)?;
        let files = dir.path().join("sa");
        write_in_cluster_files(&kubeconfig, &files, "keys")?;
        assert_eq!(std::fs::read_to_string(files.join("token"))?, "t0ken");
        assert_eq!(std::fs::read_to_string(files.join("ca.crt"))?, ca_pem);
        assert_eq!(std::fs::read_to_string(files.join("namespace"))?, "keys");
        Ok(())
    }
}
