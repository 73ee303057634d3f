//! A test host: a network namespace of its own, joined to the root namespace by a veth pair on a
//! private /30, in which a test runs processes (the controller). It exists because the API
//! server's service proxy only proxies to an EndpointSlice address that is a Pod's IP, and
//! refuses loopback ones: the controller needs an address of its own, which the API server (in
//! the root namespace) reaches.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use sealbox_tests::real::{RealControlPlane, TestHost};
//!
//! let Some(plane) = RealControlPlane::shared().await? else { return Ok(()) };
//! // None (and a message on stderr) when not root or `ip netns` fails.
//! let Some(mut host) = TestHost::start(plane, "controller")? else { return Ok(()) };
//! let mut controller = std::process::Command::new("target/debug/sealbox-controller");
//! controller
//!     .env("KUBECONFIG", host.kubeconfig()) // the plane's admin, through the veth
//!     .args(["--listen-addr", &format!("{}:8080", host.address())]);
//! host.spawn("sealbox-controller", &controller)?;
//! plane.expose_service("kube-system", "sealed-secrets-controller", 8080, &host).await?;
//! // .../services/http:sealed-secrets-controller:http/proxy/v1/cert.pem now reaches it.
//! # Ok(())
//! # }
//! ```
//!
//! Addresses come from 10.213.0.0/16, one /30 per host: index `i` gives the root side
//! `10.213.x.y+1` and the host `10.213.x.y+2` (see [`subnet`]). The index is claimed by creating
//! the namespace `sealbox-host-<i>` (the kernel refuses a second one of that name), so parallel
//! tests and parallel test processes never share an address. Only these addresses, in
//! namespaces the test made, are ever a target.
//!
//! Dropping the host kills every process in its namespace, deletes the veth pair and the
//! namespace, and stops the forwarder to the API server. A test process killed outright leaves
//! nothing either: a watchdog (`sh`, waiting on a pipe the kernel closes when the test process
//! ends) does the same then.

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::forward::Forwarder;
use super::process::Process;
use super::{Error, REQUIRED_ENV, RealControlPlane};

/// The /16 the hosts' /30s are carved from: private, and more specific than any default route,
/// so a host's address is reached through its veth even if the machine uses other 10/8 nets.
const SUBNETS: Ipv4Addr = Ipv4Addr::new(10, 213, 0, 0);
/// How many /30s fit in [`SUBNETS`].
const SUBNET_COUNT: u16 = 1 << 14;
/// How many indices are tried before giving up (each taken one is skipped).
const CLAIM_ATTEMPTS: u16 = 64;
/// Where `ip netns add` makes its namespaces.
const NETNS_DIR: &str = "/run/netns";
/// The host side of the veth pair.
const HOST_INTERFACE: &str = "eth0";

/// The root-side and host-side addresses of subnet `index` (below [`SUBNET_COUNT`]), each in a
/// /30 of its own.
pub(crate) fn subnet(index: u16) -> (Ipv4Addr, Ipv4Addr) {
    let base = u32::from(SUBNETS) + u32::from(index % SUBNET_COUNT) * 4;
    (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2))
}

/// The namespace's and the root-side interface's names of index `index` (an interface name has
/// at most 15 bytes).
fn names(index: u16) -> (String, String) {
    (format!("sealbox-host-{index}"), format!("sbx{index}"))
}

/// A network namespace with a veth pair, processes in it, and a way out to the API server. See
/// the module docs.
pub struct TestHost {
    // Dropped by hand, in order (see Drop).
    processes: Vec<Process>,
    forwarder: Option<Forwarder>,
    watchdog: Option<std::process::Child>,
    name: String,
    netns: String,
    veth: String,
    gateway: Ipv4Addr,
    address: Ipv4Addr,
    kubeconfig: PathBuf,
    tls_server_name: String,
    dir: tempfile::TempDir,
}

impl TestHost {
    /// A host for `plane`, called `name` (in its log files and in
    /// [`RealControlPlane::expose_service`]'s Pod). `None`, with a message on stderr, when
    /// network namespaces cannot be made here (not root, no `ip`), unless [`REQUIRED_ENV`] is
    /// `1`, which makes that an error.
    pub fn start(plane: &RealControlPlane, name: &str) -> Result<Option<Self>, Error> {
        match Self::start_required(plane, name) {
            Err(Error::HostUnavailable { reason })
                if std::env::var_os(REQUIRED_ENV).is_none_or(|v| v != "1") =>
            {
                eprintln!("skipping: {reason}; set {REQUIRED_ENV}=1 to make this an error");
                Ok(None)
            }
            result => result.map(Some),
        }
    }

    /// As [`start`](Self::start), but [`Error::HostUnavailable`] instead of `None` wherever it
    /// runs (for a program, which has no skip).
    pub fn start_required(plane: &RealControlPlane, name: &str) -> Result<Self, Error> {
        let dir = tempfile::Builder::new()
            .prefix("sealbox-host.")
            .tempdir()
            .map_err(|source| Error::TempDir { source })?;
        let (netns, index) = claim_namespace()?;
        // From here on, `Cleanup` removes what exists if a later step fails.
        let mut cleanup = Cleanup {
            netns: Some(netns.clone()),
            veth: None,
        };
        let (_, veth) = names(index);
        let (gateway, address) = subnet(index);
        // The peer is made inside the namespace: the root namespace has an eth0 of its own.
        ip(&[
            "link",
            "add",
            &veth,
            "type",
            "veth",
            "peer",
            "name",
            HOST_INTERFACE,
            "netns",
            &netns,
        ])
        .and_then(|()| {
            cleanup.veth = Some(veth.clone());
            ip(&["addr", "add", &format!("{gateway}/30"), "dev", &veth])
        })
        .and_then(|()| ip(&["link", "set", &veth, "up"]))
        .and_then(|()| {
            let cidr = format!("{address}/30");
            ip(&["-n", &netns, "addr", "add", &cidr, "dev", HOST_INTERFACE])
        })
        .and_then(|()| ip(&["-n", &netns, "link", "set", HOST_INTERFACE, "up"]))
        .and_then(|()| ip(&["-n", &netns, "link", "set", "lo", "up"]))?;

        let (api, tls_server_name) = api_address(plane.url())?;
        let forwarder =
            Forwarder::start(SocketAddrV4::new(gateway, 0).into(), api).map_err(|source| {
                Error::Host {
                    what: format!("listen on {gateway} for the API server"),
                    source,
                }
            })?;
        let admin = std::fs::read_to_string(plane.kubeconfig()).map_err(|source| Error::Read {
            path: plane.kubeconfig().to_path_buf(),
            source,
        })?;
        let server = format!("https://{}", forwarder.address());
        let kubeconfig = super::write(
            dir.path(),
            "admin.kubeconfig",
            &through(&admin, &server, &tls_server_name)?,
        )?;
        // Last: a watchdog dropped by a failed start would clean up behind `cleanup`'s back.
        let watchdog = watchdog(&netns, &veth, dir.path())?;
        cleanup.disarm();
        Ok(Self {
            processes: Vec::new(),
            forwarder: Some(forwarder),
            watchdog: Some(watchdog),
            name: name.to_owned(),
            netns,
            veth,
            gateway,
            address,
            kubeconfig,
            tls_server_name,
            dir,
        })
    }

    /// The host's own address (inside its namespace): where its servers listen, and what the
    /// API server dials.
    pub fn address(&self) -> Ipv4Addr {
        self.address
    }

    /// The root namespace's end of the veth pair, where the forwarder to the API server
    /// listens.
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// The name given to [`start`](Self::start).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The network namespace's name (`ip netns exec NAME ...`).
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// The plane's admin kubeconfig, pointing at the forwarder: what a process in the host uses
    /// to reach the API server.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A copy of another kubeconfig of the plane (e.g.
    /// [`RealControlPlane::service_account_kubeconfig`]) pointing at the forwarder, written
    /// into the host's directory as `file_name`.
    pub fn reach(&self, kubeconfig: &Path, file_name: &str) -> Result<PathBuf, Error> {
        let yaml = std::fs::read_to_string(kubeconfig).map_err(|source| Error::Read {
            path: kubeconfig.to_path_buf(),
            source,
        })?;
        let server = self
            .forwarder
            .as_ref()
            .map(|f| format!("https://{}", f.address()))
            .unwrap_or_default();
        super::write(
            self.dir.path(),
            file_name,
            &through(&yaml, &server, &self.tls_server_name)?,
        )
    }

    /// Runs `command` inside the host's namespace (its program, arguments, environment and
    /// working directory), output into `NAME.log` in the host's directory; killed when the
    /// host is dropped. Returns its process id.
    pub fn spawn(&mut self, name: &'static str, command: &Command) -> Result<u32, Error> {
        let log = self.dir.path().join(format!("{name}.log"));
        let process = Process::spawn(
            name,
            Path::new("ip"),
            in_namespace(&self.netns, command),
            log,
        )?;
        let pid = process.pid();
        self.processes.push(process);
        Ok(pid)
    }

    /// An error quoting its log if the process `name` has exited.
    pub fn check_running(&mut self, name: &str) -> Result<(), Error> {
        self.processes
            .iter_mut()
            .filter(|p| p.name() == name)
            .try_for_each(Process::check_running)
    }

    /// The end of the log of process `name`, for a failure message.
    pub fn log_tail(&self, name: &str) -> String {
        self.processes
            .iter()
            .find(|p| p.name() == name)
            .map(Process::log_tail)
            .unwrap_or_default()
    }

    /// The host's directory: its kubeconfigs and each process's `NAME.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl std::fmt::Debug for TestHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestHost")
            .field("name", &self.name)
            .field("netns", &self.netns)
            .field("address", &self.address)
            .field("gateway", &self.gateway)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl Drop for TestHost {
    /// The watchdog goes first: once it is dead it cannot delete a namespace of the same name
    /// that another host claims after this one is gone.
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        self.processes.clear();
        kill_namespace_processes(&self.netns);
        self.forwarder = None;
        let _ = ip(&["link", "del", &self.veth]);
        let _ = ip(&["netns", "del", &self.netns]);
    }
}

/// Removes a half-made host when start-up fails.
struct Cleanup {
    netns: Option<String>,
    veth: Option<String>,
}

impl Cleanup {
    fn disarm(&mut self) {
        self.netns = None;
        self.veth = None;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(veth) = &self.veth {
            let _ = ip(&["link", "del", veth]);
        }
        if let Some(netns) = &self.netns {
            let _ = ip(&["netns", "del", netns]);
        }
    }
}

/// Creates a namespace for the first free index from a random start: its name is the claim.
fn claim_namespace() -> Result<(String, u16), Error> {
    let start = fastrand::u16(..SUBNET_COUNT);
    for step in 0..CLAIM_ATTEMPTS {
        let index = (start + step) % SUBNET_COUNT;
        let (netns, veth) = names(index);
        // A leftover interface of a killed run would make `ip link add` fail later.
        if Path::new(NETNS_DIR).join(&netns).exists()
            || Path::new("/sys/class/net").join(&veth).exists()
        {
            continue;
        }
        match run_ip(&["netns", "add", &netns]) {
            Ok(()) => return Ok((netns, index)),
            // Another test claimed it between the check and the add.
            Err(stderr) if stderr.contains("File exists") => {}
            Err(stderr) => {
                return Err(Error::HostUnavailable {
                    reason: format!(
                        "cannot create a network namespace for a test host (`ip netns add` needs \
                         root: CAP_SYS_ADMIN and CAP_NET_ADMIN): {}",
                        stderr.trim()
                    ),
                });
            }
        }
    }
    Err(Error::HostUnavailable {
        reason: format!("no free test host subnet after {CLAIM_ATTEMPTS} tries"),
    })
}

/// `ip ARGS`, with its stderr as the error.
fn run_ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ip (iproute2): {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn ip(args: &[&str]) -> Result<(), Error> {
    run_ip(args).map_err(|stderr| Error::Ip {
        command: format!("ip {}", args.join(" ")),
        stderr: stderr.trim().to_owned(),
    })
}

/// SIGKILL to every process in namespace `netns`: all were started by this host (a namespace
/// the test made), so this kills exactly its own.
fn kill_namespace_processes(netns: &str) {
    let Ok(output) = Command::new("ip").args(["netns", "pids", netns]).output() else {
        return;
    };
    let pids: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_owned)
        .collect();
    if !pids.is_empty() {
        let _ = Command::new("kill").arg("-9").args(&pids).status();
    }
}

/// A `sh` that waits for its stdin to close (when the test process ends, however it ends), then
/// kills the processes in `netns` and removes the veth pair, the namespace and the host's
/// directory `dir`. It ignores the signals a terminal sends the whole process group (Ctrl-C),
/// so it outlives the test process.
fn watchdog(netns: &str, veth: &str, dir: &Path) -> Result<std::process::Child, Error> {
    Command::new("sh")
        .args([
            "-c",
            r#"trap "" INT TERM HUP; read -r _; pids=$(ip netns pids "$0"); [ -z "$pids" ] || kill -9 $pids; ip link del "$1"; ip netns del "$0"; rm -rf -- "$2""#,
        ])
        .args([std::ffi::OsStr::new(netns), std::ffi::OsStr::new(veth), dir.as_os_str()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| Error::Watchdog { source })
}

/// The arguments of `ip` that run `command` in `netns`, through `env` so that its environment
/// and working directory come along: `netns exec NETNS env [-C DIR] [-u VAR]... -- [VAR=VALUE]...
/// PROGRAM ARGS...` (a program whose path holds `=` would be read as one more variable). (`ip netns exec` and `env` both exec, so the process id is the
/// program's.)
fn in_namespace(netns: &str, command: &Command) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["netns", "exec", netns, "env"].map(OsString::from).into();
    if let Some(dir) = command.get_current_dir() {
        args.extend(["-C".into(), dir.as_os_str().to_owned()]);
    }
    // env reads its options, then NAME=VALUE operands, then the program: an option after an
    // assignment would be taken for the program.
    let envs: Vec<_> = command.get_envs().collect();
    for (key, _) in envs.iter().filter(|(_, value)| value.is_none()) {
        args.extend(["-u".into(), (*key).to_owned()]);
    }
    args.push("--".into());
    for (key, value) in &envs {
        if let Some(value) = value {
            let mut pair = (*key).to_owned();
            pair.push("=");
            pair.push(value);
            args.push(pair);
        }
    }
    args.push(command.get_program().to_owned());
    args.extend(command.get_args().map(ToOwned::to_owned));
    args
}

/// The API server's address and the name its certificate is checked against, from the plane's
/// URL (`https://127.0.0.1:PORT`).
fn api_address(url: &str) -> Result<(SocketAddr, String), Error> {
    let authority = url.strip_prefix("https://").unwrap_or(url);
    let address: SocketAddr = authority.parse().map_err(|_| Error::HostUnavailable {
        reason: format!("the API server's URL {url} is not https://IP:PORT"),
    })?;
    Ok((address, address.ip().to_string()))
}

/// `kubeconfig` with every cluster's server set to `server`, the certificate still checked
/// against `tls_server_name` (the name the API server's certificate carries).
fn through(kubeconfig: &str, server: &str, tls_server_name: &str) -> Result<String, Error> {
    let invalid = |reason: String| Error::HostUnavailable {
        reason: format!("cannot rewrite a kubeconfig for a test host: {reason}"),
    };
    let mut config: serde_json::Value =
        serde_norway::from_str(kubeconfig).map_err(|e| invalid(e.to_string()))?;
    let clusters = config
        .get_mut("clusters")
        .and_then(serde_json::Value::as_array_mut)
        .ok_or_else(|| invalid("no clusters".to_owned()))?;
    for cluster in clusters {
        let fields = cluster
            .get_mut("cluster")
            .and_then(serde_json::Value::as_object_mut)
            .ok_or_else(|| invalid("a cluster without fields".to_owned()))?;
        fields.insert("server".to_owned(), server.into());
        fields.insert("tls-server-name".to_owned(), tls_server_name.into());
    }
    serde_norway::to_string(&config).map_err(|e| invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_are_disjoint_30s_in_the_test_range() {
        assert_eq!(
            subnet(0),
            (Ipv4Addr::new(10, 213, 0, 1), Ipv4Addr::new(10, 213, 0, 2))
        );
        assert_eq!(
            subnet(64),
            (Ipv4Addr::new(10, 213, 1, 1), Ipv4Addr::new(10, 213, 1, 2))
        );
        assert_eq!(
            subnet(SUBNET_COUNT - 1),
            (
                Ipv4Addr::new(10, 213, 255, 253),
                Ipv4Addr::new(10, 213, 255, 254)
            )
        );
        // Out of range wraps instead of leaving the /16.
        assert_eq!(subnet(SUBNET_COUNT), subnet(0));
        let (netns, veth) = names(SUBNET_COUNT - 1);
        assert!(veth.len() <= 15, "{veth}");
        assert_eq!(netns, "sealbox-host-16383");
    }

    #[test]
    fn a_command_runs_in_the_namespace_with_its_environment_and_directory() {
        let mut command = Command::new("sealbox-controller");
        command
            .args(["--listen-addr", "10.213.0.2:8080"])
            .env("KUBECONFIG", "/tmp/k")
            .env_remove("SEALBOX_LOG")
            .current_dir("/tmp");
        let args = in_namespace("sealbox-host-7", &command);
        let args: Vec<&str> = args.iter().filter_map(|a| a.to_str()).collect();
        assert_eq!(
            args,
            [
                "netns",
                "exec",
                "sealbox-host-7",
                "env",
                "-C",
                "/tmp",
                "-u",
                "SEALBOX_LOG",
                "--",
                "KUBECONFIG=/tmp/k",
                "sealbox-controller",
                "--listen-addr",
                "10.213.0.2:8080"
            ]
        );
    }

    #[test]
    fn a_kubeconfig_through_the_forwarder_still_checks_the_api_servers_name() -> Result<(), Error> {
        let (address, name) = api_address("https://127.0.0.1:6443")?;
        assert_eq!(address, SocketAddr::from(([127, 0, 0, 1], 6443)));
        assert_eq!(name, "127.0.0.1");
        assert!(api_address("http://127.0.0.1:6443").is_err());

        let original = crate::kubeconfig::kubeconfig(
            "c",
            "https://127.0.0.1:6443",
            Some("Q0E="),
            "u",
            serde_json::json!({"token": "t"}),
            "default",
        );
        let rewritten = through(&original, "https://10.213.0.1:4000", &name)?;
        let config: serde_json::Value =
            serde_norway::from_str(&rewritten).map_err(|e| Error::HostUnavailable {
                reason: e.to_string(),
            })?;
        let cluster = &config["clusters"][0]["cluster"];
        assert_eq!(cluster["server"], "https://10.213.0.1:4000");
        assert_eq!(cluster["tls-server-name"], "127.0.0.1");
        assert_eq!(cluster["certificate-authority-data"], "Q0E=");
        assert_eq!(config["users"][0]["user"]["token"], "t");
        assert!(through("kind: Config\n", "https://x", "y").is_err());
        Ok(())
    }
}
