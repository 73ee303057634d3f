//! A real Kubernetes control plane for tier-4 tests (TESTING.md): etcd, kube-apiserver and
//! kube-controller-manager as processes on free loopback ports, each plane in its own
//! temporary directory, built by `tests/kube/build.sh` into `target/kube/bin/`.
//!
//! What it runs: kube-apiserver with client-certificate authentication, RBAC authorization, its
//! default admission plugins and ServiceAccount tokens (issuer and signing key made at start);
//! kube-controller-manager with the garbage collector, namespace lifecycle, Deployment and
//! ReplicaSet controllers, ServiceAccounts and the root CA publisher, each controller acting as
//! its own ServiceAccount. No kubelet, scheduler or kube-proxy: Pods stay Pending and Service
//! IPs route nowhere.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use sealbox_tests::real::RealControlPlane;
//!
//! // None (and a message on stderr) when target/kube/bin is not built.
//! let Some(plane) = RealControlPlane::start().await? else { return Ok(()) };
//! let client = plane.client().await?; // cluster-admin
//! let status = plane.kubectl().args(["get", "ns"]).status()?;
//! # let _ = (client, status);
//! # Ok(())
//! # }
//! ```
//!
//! Dropping the plane kills exactly its three processes and then removes its directory
//! (certificates, etcd's data, the logs). A test process killed outright leaves them behind,
//! except for the plane of [`RealControlPlane::shared`], which a watchdog removes whenever the
//! test process ends.
//!
//! Every request is written to an audit log (metadata only), read with
//! [`RealControlPlane::audit_events`]: who asked for what, and the answer's status.

mod audit;
mod expose;
mod forward;
mod netns;
mod pki;
pub(crate) mod process;

pub use audit::{AuditEvent, AuditOffset, service_account_user};
pub use expose::PORT_NAME;
pub use netns::TestHost;
/// The admin's user name (in group `system:masters`), as the audit log names it.
pub use pki::ADMIN_USER;

use crate::kubeconfig::kubeconfig;
use std::ffi::OsString;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};

use process::Process;

/// Overrides where the binaries are looked for (default: `kube/bin` under `CARGO_TARGET_DIR`,
/// else `target/kube/bin` in the repository).
pub const BIN_DIR_ENV: &str = "SEALBOX_KUBE_BIN";
/// When `1`, missing binaries are an error instead of a skip (CI, after the build).
pub const REQUIRED_ENV: &str = "SEALBOX_REAL_REQUIRED";
/// Cluster, user and context name in the admin kubeconfig.
pub const CONTEXT: &str = "sealbox-real";
/// The command that builds the binaries, for messages.
const BUILD_COMMAND: &str = "tests/kube/build.sh";
/// What `tests/kube/build.sh` writes.
const BINARIES: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kubectl",
];

/// How long start-up may take. /readyz comes after about 4 s on an idle 2-core machine; a
/// loaded CI machine (other builds, planes of other tests starting at once) is many times
/// slower, and a hang must still end in an error that quotes the logs.
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// Where the plane's process ids are kept for the watchdog of the shared plane.
const PIDS_FILE: &str = "pids";
/// How often start-up is checked: short against a start of seconds, cheap for the processes.
const POLL: Duration = Duration::from_millis(100);
/// Ports are found free (bound to port 0, released) before a process binds them, so another
/// process may take one in between; a start that loses the race is retried with new ports.
const START_ATTEMPTS: usize = 3;
/// Lifetime asked for ServiceAccount tokens: longer than any test, and above the API server's
/// minimum of ten minutes.
const TOKEN_LIFETIME_SECONDS: i64 = 3600;
/// Service IPs: allocated by the API server, routed by nothing (there is no kube-proxy).
const SERVICE_CLUSTER_IP_RANGE: &str = "10.96.0.0/24";
/// The ServiceAccount token issuer, as a cluster's default names it.
const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc";
/// The controllers a test can rely on (`--controllers`); the others (nodes, volumes, jobs...)
/// have nothing to do without a kubelet and would only cost start-up time and memory.
const CONTROLLERS: &str = "garbage-collector-controller,namespace-controller,\
                           deployment-controller,replicaset-controller,serviceaccount-controller,\
                           root-ca-certificate-publisher-controller";

/// Failures to find, start or reach the control plane.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The binaries are missing and [`REQUIRED_ENV`] asks for them.
    #[error(
        "the real control plane is not built: {} has no {missing} (run {BUILD_COMMAND})",
        dir.display()
    )]
    NotBuilt { dir: PathBuf, missing: &'static str },
    /// The plane's temporary directory could not be made.
    #[error("cannot create a temporary directory for the control plane")]
    TempDir {
        #[source]
        source: std::io::Error,
    },
    /// A file of the plane could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file of the plane could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The watchdog of the shared plane could not be started.
    #[error("cannot start the watchdog of the shared control plane")]
    Watchdog {
        #[source]
        source: std::io::Error,
    },
    /// A key or certificate could not be made.
    #[error("cannot make the {what}")]
    Certificate {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    /// No free loopback port could be found.
    #[error("cannot find a free port on 127.0.0.1")]
    FreePort {
        #[source]
        source: std::io::Error,
    },
    /// A binary could not be started.
    #[error("cannot start {}", program.display())]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The state of a process could not be read.
    #[error("cannot check whether {process} is running")]
    Wait {
        process: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A process stopped during start-up or while a test waited on it.
    #[error("{process} exited ({status}); the end of its log:\n{log_tail}")]
    Exited {
        process: &'static str,
        status: String,
        log_tail: String,
    },
    /// The plane did not become ready in time.
    #[error(
        "{what} not ready after {waited:?} (last: {last}); the end of {process}'s log:\n{log_tail}"
    )]
    NotReady {
        what: &'static str,
        waited: Duration,
        last: String,
        process: &'static str,
        log_tail: String,
    },
    /// The API server did not issue a token for a ServiceAccount.
    #[error("cannot get a token for ServiceAccount {service_account}")]
    TokenRequest {
        service_account: String,
        #[source]
        source: kube::Error,
    },
    /// The API server answered a TokenRequest without a token.
    #[error("the TokenRequest for ServiceAccount {service_account} returned no token")]
    NoToken { service_account: String },
    /// The admin kubeconfig did not make a client.
    #[error("cannot make a client from the admin kubeconfig")]
    Kubeconfig {
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The client could not be built.
    #[error("cannot make a client for the control plane")]
    Client {
        #[source]
        source: kube::Error,
    },
    /// A [`TestHost`] cannot be made on this machine (and [`REQUIRED_ENV`] asks for one).
    #[error("{reason}")]
    HostUnavailable { reason: String },
    /// An `ip` command setting up a [`TestHost`] failed.
    #[error("`{command}` failed: {stderr}")]
    Ip { command: String, stderr: String },
    /// A [`TestHost`] could not do `what`.
    #[error("test host: cannot {what}")]
    Host {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// An object of [`RealControlPlane::expose_service`] was refused.
    #[error("cannot apply the {what} exposing a test host")]
    Expose {
        what: String,
        #[source]
        source: kube::Error,
    },
}

/// The cargo target directory the test tiers' tools are built into: `CARGO_TARGET_DIR` as the
/// test runs, else as it was when the tests were built, else `target/` of this repository. A
/// relative one is taken from the repository's root, as cargo takes it.
pub(crate) fn target_dir() -> PathBuf {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = tests.parent().unwrap_or(tests);
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| option_env!("CARGO_TARGET_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("target"));
    root.join(target)
}

/// The directory holding the control plane's binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    dir: PathBuf,
}

impl Binaries {
    /// [`BIN_DIR_ENV`], else `kube/bin` in the target directory: `CARGO_TARGET_DIR` as the
    /// test runs, else as it was when the tests were built, else `target/` of this repository
    /// (where `tests/kube/build.sh` writes, honouring `CARGO_TARGET_DIR` too). A relative
    /// target directory is taken from the repository's root, as cargo takes it.
    pub fn dir() -> PathBuf {
        match std::env::var_os(BIN_DIR_ENV) {
            Some(dir) => PathBuf::from(dir),
            None => target_dir().join("kube/bin"),
        }
    }

    /// The binaries, or why they cannot be used: `Err(NotBuilt)` names the first one missing.
    pub fn find() -> Result<Self, Error> {
        let dir = Self::dir();
        for name in BINARIES {
            if !dir.join(name).is_file() {
                return Err(Error::NotBuilt { dir, missing: name });
            }
        }
        Ok(Self { dir })
    }

    /// The path of one binary (`etcd`, `kube-apiserver`, `kube-controller-manager`, `kubectl`).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// A running control plane: three processes and their directory. See the module docs.
pub struct RealControlPlane {
    // Fields drop in this order: the processes die (dependents first) before their directory
    // is removed.
    // Behind locks so that a test holding the shared plane can restart one
    // ([`restart`](Self::restart)).
    controller_manager: Mutex<Process>,
    apiserver: Mutex<Process>,
    etcd: Mutex<Process>,
    binaries: Binaries,
    url: String,
    kubeconfig: PathBuf,
    kubeconfig_yaml: String,
    ca_cert: String,
    audit_log: PathBuf,
    startup: Duration,
    dir: tempfile::TempDir,
}

/// The plane [`RealControlPlane::shared`] started, and the watchdog that ends it with the test
/// process (statics are never dropped).
struct Shared {
    plane: RealControlPlane,
    /// Holds the write end of the watchdog's stdin: the kernel closes it when this process
    /// ends, however it ends, and the watchdog then kills the plane and removes its directory.
    _watchdog: std::process::Child,
}

impl RealControlPlane {
    /// Starts a plane if the binaries are built; otherwise prints why the caller should skip and
    /// returns `None`, or fails with [`Error::NotBuilt`] when [`REQUIRED_ENV`] is `1`.
    pub async fn start() -> Result<Option<Self>, Error> {
        match Binaries::find() {
            Ok(binaries) => Self::start_with(binaries).await.map(Some),
            Err(e @ Error::NotBuilt { .. })
                if std::env::var_os(REQUIRED_ENV).is_none_or(|v| v != "1") =>
            {
                eprintln!("skipping: {e}; set {REQUIRED_ENV}=1 to make this an error");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// One plane for the whole test process, started by the first caller (later callers wait
    /// for it): each plane costs about 420 MiB and 5 s, so a test binary with many tests shares
    /// one, each test in namespaces of its own or taking turns. `None` as for
    /// [`start`](Self::start). The plane lives until the test process ends; a watchdog process
    /// then kills its three processes and removes its directory. Its clients must be made by
    /// each test (a client belongs to the runtime that made it).
    pub async fn shared() -> Result<Option<&'static Self>, Error> {
        static SHARED: tokio::sync::OnceCell<Option<Shared>> = tokio::sync::OnceCell::const_new();
        let shared = SHARED
            .get_or_try_init(|| async {
                let Some(plane) = Self::start().await? else {
                    return Ok(None);
                };
                let watchdog = plane.watchdog()?;
                Ok::<_, Error>(Some(Shared {
                    plane,
                    _watchdog: watchdog,
                }))
            })
            .await?;
        Ok(shared.as_ref().map(|s| &s.plane))
    }

    /// A `sh` that waits for its stdin to close, then kills exactly this plane's processes (by
    /// process id) and removes its directory. It ignores the signals a terminal sends the
    /// whole process group (Ctrl-C), so it outlives the test process it watches.
    /// The process ids are read from [`PIDS_FILE`] when it fires: a restarted process has a new
    /// one.
    fn watchdog(&self) -> Result<std::process::Child, Error> {
        self.write_pids()?;
        Command::new("sh")
            .args([
                "-c",
                r#"trap "" INT TERM HUP; read -r _; kill -9 $(cat "$0/pids") 2>/dev/null; rm -rf -- "$0""#,
            ])
            .arg(self.dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|source| Error::Watchdog { source })
    }

    /// Starts a plane from `binaries`; returns once /readyz answers and the controller manager
    /// has made the `default` ServiceAccount of namespace `default`.
    pub async fn start_with(binaries: Binaries) -> Result<Self, Error> {
        let mut attempt = 1;
        loop {
            match Self::start_once(binaries.clone()).await {
                Err(Error::Exited { log_tail, .. })
                    if attempt < START_ATTEMPTS && log_tail.contains("address already in use") =>
                {
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn start_once(binaries: Binaries) -> Result<Self, Error> {
        let began = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("sealbox-real.")
            .tempdir()
            .map_err(|source| Error::TempDir { source })?;
        let root = dir.path().to_path_buf();
        let pki_dir = root.join("pki");
        std::fs::create_dir(&pki_dir).map_err(|source| Error::Write {
            path: pki_dir.clone(),
            source,
        })?;
        let pki = pki::generate(&pki_dir)?;
        let [etcd_port, peer_port, api_port] = free_ports()?;
        let audit_policy = write(&root, "audit-policy.yaml", audit::POLICY)?;
        let audit_log = root.join("audit.log");
        let url = format!("https://127.0.0.1:{api_port}");

        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut etcd = Process::spawn(
            "etcd",
            &binaries.path("etcd"),
            args(&[
                ("--name", "sealbox".into()),
                ("--data-dir", root.join("etcd").into()),
                ("--listen-client-urls", etcd_url.clone().into()),
                ("--advertise-client-urls", etcd_url.clone().into()),
                ("--listen-peer-urls", peer_url.clone().into()),
                ("--initial-advertise-peer-urls", peer_url.clone().into()),
                ("--initial-cluster", format!("sealbox={peer_url}").into()),
                // The data is thrown away with the directory.
                ("--unsafe-no-fsync", "true".into()),
                ("--log-level", "warn".into()),
            ]),
            root.join("etcd.log"),
        )?;

        let files = &pki.files;
        let mut apiserver = Process::spawn(
            "kube-apiserver",
            &binaries.path("kube-apiserver"),
            args(&[
                ("--etcd-servers", etcd_url.into()),
                ("--bind-address", "127.0.0.1".into()),
                ("--advertise-address", "127.0.0.1".into()),
                ("--secure-port", api_port.to_string().into()),
                // The default (lease) reconciler refuses a loopback advertise address.
                ("--endpoint-reconciler-type", "none".into()),
                ("--tls-cert-file", files.serving_cert.clone().into()),
                ("--tls-private-key-file", files.serving_key.clone().into()),
                ("--client-ca-file", files.ca_cert.clone().into()),
                ("--authorization-mode", "RBAC".into()),
                ("--service-account-issuer", SERVICE_ACCOUNT_ISSUER.into()),
                (
                    "--service-account-signing-key-file",
                    files.service_account_key.clone().into(),
                ),
                (
                    "--service-account-key-file",
                    files.service_account_public_key.clone().into(),
                ),
                (
                    "--service-cluster-ip-range",
                    SERVICE_CLUSTER_IP_RANGE.into(),
                ),
                ("--cert-dir", root.join("apiserver-certs").into()),
                ("--audit-policy-file", audit_policy.into()),
                ("--audit-log-path", audit_log.clone().into()),
                // Written as each request completes, so a test reads what it just did.
                ("--audit-log-mode", "blocking".into()),
                // Never rotated (0; the default rotates at 100 MB, which the benchmark of 10,000
                // SealedSecrets passes): a reader's offset must stay valid. The log goes with
                // the plane's directory.
                ("--audit-log-maxsize", "0".into()),
            ]),
            root.join("kube-apiserver.log"),
        )?;

        let kubeconfig_yaml = admin_kubeconfig(&url, &pki);
        let kubeconfig = write(&root, "admin.kubeconfig", &kubeconfig_yaml)?;
        let controller_manager_kubeconfig = write(
            &root,
            "controller-manager.kubeconfig",
            &controller_manager_kubeconfig(&url, &pki.files),
        )?;
        let client = client(&kubeconfig_yaml).await?;

        wait_for(
            &mut [&mut etcd, &mut apiserver],
            began,
            "/readyz",
            || async {
                let request = http::Request::get("/readyz")
                    .body(Vec::new())
                    .map_err(|e| e.to_string())?;
                client
                    .request_text(request)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
        )
        .await?;

        let mut controller_manager = Process::spawn(
            "kube-controller-manager",
            &binaries.path("kube-controller-manager"),
            args(&[
                ("--kubeconfig", controller_manager_kubeconfig.into()),
                ("--use-service-account-credentials", "true".into()),
                ("--controllers", CONTROLLERS.into()),
                ("--root-ca-file", files.ca_cert.clone().into()),
                ("--leader-elect", "false".into()),
                // No health endpoint: nothing reads it, and no port to race for.
                ("--secure-port", "0".into()),
                // Its default is under /usr/libexec.
                ("--flex-volume-plugin-dir", root.join("flexvolume").into()),
            ]),
            root.join("kube-controller-manager.log"),
        )?;
        let accounts = Api::<ServiceAccount>::namespaced(client, "default");
        wait_for(
            &mut [&mut etcd, &mut apiserver, &mut controller_manager],
            began,
            "the default ServiceAccount",
            || async {
                match accounts.get_opt("default").await {
                    Ok(Some(_)) => Ok(()),
                    Ok(None) => Err("not created yet".to_owned()),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await?;

        Ok(Self {
            controller_manager: Mutex::new(controller_manager),
            apiserver: Mutex::new(apiserver),
            etcd: Mutex::new(etcd),
            binaries,
            url,
            kubeconfig,
            kubeconfig_yaml,
            ca_cert: pki.ca_cert.clone(),
            audit_log,
            startup: began.elapsed(),
            dir,
        })
    }

    /// A client with cluster-admin rights (group `system:masters`), namespace `default`.
    pub async fn client(&self) -> Result<kube::Client, Error> {
        client(&self.kubeconfig_yaml).await
    }

    /// A kubeconfig acting as ServiceAccount `namespace/name` (which must exist), with a token
    /// from the TokenRequest API: what the real authorizer decides for it is what it decides
    /// for a Pod running as that ServiceAccount (e.g. the controller under deploy/'s RBAC).
    /// Written into the plane's directory as `sa-NAMESPACE-NAME.kubeconfig`.
    pub async fn service_account_kubeconfig(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<PathBuf, Error> {
        let service_account = format!("{namespace}/{name}");
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: vec![SERVICE_ACCOUNT_ISSUER.to_owned()],
                expiration_seconds: Some(TOKEN_LIFETIME_SECONDS),
                ..Default::default()
            },
            ..Default::default()
        };
        let issued = Api::<ServiceAccount>::namespaced(self.client().await?, namespace)
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .map_err(|source| Error::TokenRequest {
                service_account: service_account.clone(),
                source,
            })?;
        let token = issued
            .status
            .map(|s| s.token)
            .filter(|t| !t.is_empty())
            .ok_or(Error::NoToken { service_account })?;
        let yaml = token_kubeconfig(&self.url, &self.ca_cert, namespace, name, &token);
        write(
            self.dir.path(),
            &format!("sa-{namespace}-{name}.kubeconfig"),
            &yaml,
        )
    }

    /// A client acting as ServiceAccount `namespace/name`; see
    /// [`service_account_kubeconfig`](Self::service_account_kubeconfig).
    pub async fn service_account_client(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<kube::Client, Error> {
        let path = self.service_account_kubeconfig(namespace, name).await?;
        let yaml =
            std::fs::read_to_string(&path).map_err(|source| Error::Write { path, source })?;
        client(&yaml).await
    }

    /// The admin kubeconfig file (credentials inline), for kubectl and the binaries under test.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The requests the API server has answered since `from` (the start with
    /// `AuditOffset::default()`), and where to read from next time.
    pub fn audit_events(&self, from: AuditOffset) -> Result<(Vec<AuditEvent>, AuditOffset), Error> {
        audit::read(&self.audit_log, from)
    }

    /// Where the audit log ends now: read from here to see only what comes next. (A line being
    /// written at this moment is skipped by the next read.)
    pub fn audit_end(&self) -> AuditOffset {
        AuditOffset(std::fs::metadata(&self.audit_log).map_or(0, |m| m.len()))
    }

    /// The API server's URL (`https://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// kubectl of the plane's own version, pointed at it as the admin.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new(self.binaries.path("kubectl"));
        command.arg("--kubeconfig").arg(&self.kubeconfig);
        command
    }

    /// How long [`start`](Self::start) took until the plane was ready.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// The plane's directory: certificates, etcd's data and each process's `NAME.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Name and process id of each process, etcd first.
    pub fn processes(&self) -> [(&'static str, u32); 3] {
        [
            ("etcd", lock(&self.etcd).pid()),
            ("kube-apiserver", lock(&self.apiserver).pid()),
            (
                "kube-controller-manager",
                lock(&self.controller_manager).pid(),
            ),
        ]
    }

    /// An error if any of the three processes has exited.
    pub fn check_running(&mut self) -> Result<(), Error> {
        for process in [&self.etcd, &self.apiserver, &self.controller_manager] {
            lock(process).check_running()?;
        }
        Ok(())
    }

    /// The log file of `process` (`etcd`, `kube-apiserver`, `kube-controller-manager`).
    pub fn log(&self, process: &str) -> Option<PathBuf> {
        [&self.etcd, &self.apiserver, &self.controller_manager]
            .into_iter()
            .map(|p| lock(p).log().to_path_buf())
            .zip(["etcd", "kube-apiserver", "kube-controller-manager"])
            .find(|(_, name)| *name == process)
            .map(|(log, _)| log)
    }

    /// Kills `component` (SIGKILL), leaves it down for `downtime`, starts it again with the
    /// same arguments, data and ports, and waits until the API server answers /readyz again
    /// (it checks etcd). Returns how long that took after the start. What the plane stored
    /// survives: etcd's data directory stays, and a killed process loses nothing the kernel
    /// already holds (`--unsafe-no-fsync` only matters if the machine goes down).
    pub async fn restart(
        &self,
        component: Component,
        downtime: Duration,
    ) -> Result<Duration, Error> {
        let process = match component {
            Component::Etcd => &self.etcd,
            Component::ApiServer => &self.apiserver,
        };
        lock(process).stop();
        tokio::time::sleep(downtime).await;
        lock(process).start_again()?;
        self.write_pids()?;
        let began = Instant::now();
        let client = self.client().await?;
        loop {
            for process in [&self.etcd, &self.apiserver] {
                lock(process).check_running()?;
            }
            let ready = async {
                let request = http::Request::get("/readyz")
                    .body(Vec::new())
                    .map_err(|e| e.to_string())?;
                client
                    .request_text(request)
                    .await
                    .map_err(|e| e.to_string())
            };
            let last = match ready.await {
                Ok(_) => return Ok(began.elapsed()),
                Err(last) => last,
            };
            if began.elapsed() > START_TIMEOUT {
                let apiserver = lock(&self.apiserver);
                return Err(Error::NotReady {
                    what: "/readyz after a restart",
                    waited: began.elapsed(),
                    last,
                    process: apiserver.name(),
                    log_tail: apiserver.log_tail(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Writes the processes' ids where the watchdog of the shared plane reads them.
    fn write_pids(&self) -> Result<(), Error> {
        let pids: Vec<String> = self
            .processes()
            .iter()
            .map(|(_, pid)| pid.to_string())
            .collect();
        write(self.dir.path(), PIDS_FILE, &pids.join(" ")).map(|_| ())
    }
}

/// A process of the plane that [`RealControlPlane::restart`] can restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// etcd: the API server fails every request that reaches storage until it is back.
    Etcd,
    /// kube-apiserver: every connection and watch ends.
    ApiServer,
}

/// A process's lock; a test that panicked while holding one leaves the process as usable.
fn lock(process: &Mutex<Process>) -> std::sync::MutexGuard<'_, Process> {
    process
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Names where it runs, never the kubeconfig (it holds the admin's key).
impl std::fmt::Debug for RealControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealControlPlane")
            .field("url", &self.url)
            .field("dir", &self.dir.path())
            .field("processes", &self.processes())
            .finish_non_exhaustive()
    }
}

/// Polls `probe` until it succeeds. Fails as soon as one of `processes` exits, and after
/// [`START_TIMEOUT`] (counted from `began`) quoting the log of the last one, the newest.
/// On failure the caller drops the processes, which kills them.
async fn wait_for<F, Fut>(
    processes: &mut [&mut Process],
    began: Instant,
    what: &'static str,
    probe: F,
) -> Result<(), Error>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    loop {
        for process in processes.iter_mut() {
            process.check_running()?;
        }
        let last = match probe().await {
            Ok(()) => return Ok(()),
            Err(last) => last,
        };
        if began.elapsed() > START_TIMEOUT {
            let blamed = processes.last();
            return Err(Error::NotReady {
                what,
                waited: began.elapsed(),
                last,
                process: blamed.map_or("", |p| p.name()),
                log_tail: blamed.map(|p| p.log_tail()).unwrap_or_default(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `N` ports free on 127.0.0.1 at the time of the call (all bound at once, so distinct).
fn free_ports<const N: usize>() -> Result<[u16; N], Error> {
    let listeners = (0..N)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::FreePort { source })?;
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener
            .local_addr()
            .map_err(|source| Error::FreePort { source })?
            .port();
    }
    Ok(ports)
}

/// `(--flag, value)` pairs as `--flag=value` arguments: Go's flag packages read a boolean only
/// in that form (`--leader-elect false` would leave it true and pass `false` as an argument).
fn args(pairs: &[(&str, OsString)]) -> Vec<OsString> {
    pairs
        .iter()
        .map(|(flag, value)| {
            let mut arg = OsString::from(flag);
            arg.push("=");
            arg.push(value);
            arg
        })
        .collect()
}

fn write(dir: &Path, name: &str, contents: &str) -> Result<PathBuf, Error> {
    let path = dir.join(name);
    std::fs::write(&path, contents).map_err(|source| Error::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

async fn client(kubeconfig_yaml: &str) -> Result<kube::Client, Error> {
    let kubeconfig =
        Kubeconfig::from_yaml(kubeconfig_yaml).map_err(|source| Error::Kubeconfig { source })?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|source| Error::Kubeconfig { source })?;
    kube::Client::try_from(config).map_err(|source| Error::Client { source })
}

/// The admin's kubeconfig, self-contained (certificates and key inline).
fn admin_kubeconfig(url: &str, pki: &pki::Pki) -> String {
    let user = serde_json::json!({
        "client-certificate-data": BASE64.encode(&pki.admin.cert),
        "client-key-data": BASE64.encode(&pki.admin.key),
    });
    let ca = BASE64.encode(&pki.ca_cert);
    kubeconfig(CONTEXT, url, Some(&ca), pki::ADMIN_USER, user, "default")
}

/// A kubeconfig with a bearer token (a ServiceAccount's), namespace `namespace`.
fn token_kubeconfig(url: &str, ca_cert: &str, namespace: &str, name: &str, token: &str) -> String {
    let ca = BASE64.encode(ca_cert);
    let user = serde_json::json!({ "token": token });
    kubeconfig(
        CONTEXT,
        url,
        Some(&ca),
        &format!("{namespace}-{name}"),
        user,
        namespace,
    )
}

/// The controller manager's kubeconfig, pointing at the certificate files.
fn controller_manager_kubeconfig(url: &str, files: &pki::PkiFiles) -> String {
    let ca = files.ca_cert.display();
    let cert = files.controller_manager_cert.display();
    let key = files.controller_manager_key.display();
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {CONTEXT}
  cluster:
    server: {url}
    certificate-authority: {ca}
users:
- name: kube-controller-manager
  user:
    client-certificate: {cert}
    client-key: {key}
contexts:
- name: {CONTEXT}
  context:
    cluster: {CONTEXT}
    user: kube-controller-manager
current-context: {CONTEXT}
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_passed_in_the_form_go_reads_booleans_in() {
        assert_eq!(
            args(&[("--leader-elect", "false".into()), ("--x", "a b".into())]),
            [OsString::from("--leader-elect=false"), "--x=a b".into()]
        );
    }

    #[test]
    fn free_ports_are_distinct() -> Result<(), Error> {
        let ports: [u16; 3] = free_ports()?;
        assert!(ports.iter().all(|p| *p != 0));
        assert!(ports[0] != ports[1] && ports[1] != ports[2] && ports[0] != ports[2]);
        Ok(())
    }

    /// The generated certificates and key make a working client configuration (no server
    /// needed: kube parses the PEM when it builds the TLS configuration).
    #[tokio::test]
    async fn the_admin_kubeconfig_makes_a_client() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let pki = pki::generate(dir.path())?;
        let yaml = admin_kubeconfig("https://127.0.0.1:6443", &pki);
        let kubeconfig = Kubeconfig::from_yaml(&yaml)?;
        assert_eq!(kubeconfig.current_context.as_deref(), Some(CONTEXT));
        let client = client(&yaml).await?;
        assert_eq!(client.default_namespace(), "default");
        for file in [
            &pki.files.ca_cert,
            &pki.files.serving_cert,
            &pki.files.serving_key,
            &pki.files.service_account_key,
            &pki.files.service_account_public_key,
            &pki.files.controller_manager_cert,
            &pki.files.controller_manager_key,
        ] {
            assert!(std::fs::read_to_string(file)?.starts_with("-----BEGIN "));
        }
        Ok(())
    }
}
