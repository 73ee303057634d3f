//! Tier 4 (TESTING.md): the CLI's cluster commands through the real API server's service proxy
//! to the real controller binary, as kubeseal's users reach a controller: `cert fetch`, `seal`
//! without `--cert`, `verify --online`, `keys rotate` and online `reencrypt`. The expectations
//! are those of cli/tests/cluster.rs, where a stub plays the controller behind the double.
//!
//! The controller runs in a [`TestHost`] (a network namespace with a veth pair): the API server
//! proxies only to a Pod's IP, never to a loopback address. The CLI runs in the root namespace
//! with the plane's admin kubeconfig; the audit log proves each call went through the proxy.
//!
//! Skips, saying why, when the plane is not built, when network namespaces cannot be made (not
//! root), or when `sealbox` and `sealbox-controller` are not built next to this test
//! (`cargo build -p sealbox -p sealbox-controller`); `SEALBOX_REAL_REQUIRED=1` makes each of
//! those a failure.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams};
use sealbox_crds::SealedSecret;
use sealbox_crypto::KeyPair;
use sealbox_tests::real::{AuditOffset, PORT_NAME, REQUIRED_ENV, RealControlPlane, TestHost};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const CANARY: &str = "PLAINTEXT-CANARY-service-proxy";
const CONTROLLER: &str = "sealed-secrets-controller";
/// The controller's API port, inside its host (each host has its own ports).
const PORT: u16 = 8080;
const CRD_YAML: &str = include_str!("../../deploy/crds/sealedsecrets.bitnami.com.yaml");
/// How long the controller may take to make its first key and serve it (start-up, a 2048-bit
/// key, a watch event), or to serve a key added at run time: long enough to tell "slow" on a
/// loaded 2-core machine from "never".
const WAIT: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(250);

/// The plane, a host running the controller with its keys in its own namespace, exposed as
/// Service `NAMESPACE/sealed-secrets-controller`, and a scratch directory for the CLI.
struct Story {
    plane: &'static RealControlPlane,
    host: TestHost,
    namespace: String,
    binaries: Binaries,
    dir: tempfile::TempDir,
}

struct Binaries {
    sealbox: PathBuf,
    controller: PathBuf,
}

/// `sealbox` and `sealbox-controller` next to this test's directory (target/debug), or why not.
fn binaries() -> TestResult<Option<Binaries>> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("the test binary has no target directory")?;
    let path = |name: &str| dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let binaries = Binaries {
        sealbox: path("sealbox"),
        controller: path("sealbox-controller"),
    };
    for binary in [&binaries.sealbox, &binaries.controller] {
        if !binary.is_file() {
            let reason = format!(
                "{} is not built (cargo build -p sealbox -p sealbox-controller)",
                binary.display()
            );
            if std::env::var_os(REQUIRED_ENV).is_some_and(|v| v == "1") {
                return Err(reason.into());
            }
            eprintln!("skipping: {reason}; set {REQUIRED_ENV}=1 to make this an error");
            return Ok(None);
        }
    }
    Ok(Some(binaries))
}

impl Story {
    /// `None` when the test should skip (the reason is on stderr).
    async fn start(namespace: &str) -> TestResult<Option<Story>> {
        let Some(binaries) = binaries()? else {
            return Ok(None);
        };
        let Some(plane) = RealControlPlane::shared().await? else {
            return Ok(None);
        };
        let Some(mut host) = TestHost::start(plane, namespace)? else {
            return Ok(None);
        };
        // The controller watches SealedSecrets: the CRD must be served. Applied, so each test
        // of the binary may do it.
        let crd: CustomResourceDefinition = serde_norway::from_str(CRD_YAML)?;
        Api::<CustomResourceDefinition>::all(plane.client().await?)
            .patch(
                "sealedsecrets.bitnami.com",
                &PatchParams::apply("sealbox-tests").force(),
                &Patch::Apply(&crd),
            )
            .await?;
        plane
            .expose_service(namespace, CONTROLLER, PORT, &host)
            .await?;

        let mut controller = Command::new(&binaries.controller);
        controller
            .env("KUBECONFIG", host.kubeconfig())
            .args(["--namespace", namespace])
            .args(["--listen-addr", &format!("{}:{PORT}", host.address())])
            // The host's own loopback: nobody else's port.
            .args(["--listen-metrics-addr", "127.0.0.1:8081"])
            .args(["--key-size", "2048", "--leader-elect=false"]);
        host.spawn("sealbox-controller", &controller)?;
        Ok(Some(Story {
            plane,
            host,
            namespace: namespace.to_owned(),
            binaries,
            dir: tempfile::tempdir()?,
        }))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `sealbox ARGS` as a user in the root namespace runs it: the admin kubeconfig, the
    /// controller's namespace from the environment, nothing else leaking in from the shell.
    fn sealbox(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binaries.sealbox);
        for var in [
            "SEALBOX_CERT",
            "SEALBOX_LOG",
            "SEALBOX_CONTEXT",
            "SEALBOX_CONTROLLER_NAME",
            "SEALBOX_BACKUP_PASSPHRASE",
        ] {
            command.env_remove(var);
        }
        command
            .env("KUBECONFIG", self.plane.kubeconfig())
            .env("SEALBOX_CONTROLLER_NAMESPACE", &self.namespace)
            .env("HOME", "/nonexistent/sealbox-test/home")
            .current_dir(self.dir.path())
            .args(args)
            .stdin(Stdio::null());
        command
    }

    /// Runs `sealbox ARGS` (with `stdin`), expecting exit code `code`; its output.
    fn run(&self, args: &[&str], stdin: Option<&str>, code: i32) -> TestResult<Output> {
        let mut command = self.sealbox(args);
        let output = match stdin {
            None => command.output()?,
            Some(text) => {
                use std::io::Write as _;
                let mut child = command
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()?;
                child
                    .stdin
                    .take()
                    .ok_or("no stdin")?
                    .write_all(text.as_bytes())?;
                child.wait_with_output()?
            }
        };
        if output.status.code() != Some(code) {
            return Err(format!(
                "sealbox {}: expected exit {code}, got {}\nstderr: {}\ncontroller log:\n{}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr),
                self.host.log_tail("sealbox-controller")
            )
            .into());
        }
        Ok(output)
    }

    /// Waits until `sealbox cert fetch` answers with a certificate that `accept`s; returns it.
    async fn fetch_cert_until(&mut self, accept: impl Fn(&str) -> bool) -> TestResult<String> {
        let began = Instant::now();
        loop {
            self.host.check_running("sealbox-controller")?;
            let output = self.sealbox(&["cert", "fetch"]).output()?;
            let pem = String::from_utf8_lossy(&output.stdout).into_owned();
            if output.status.success() && accept(&pem) {
                return Ok(pem);
            }
            if began.elapsed() > WAIT {
                return Err(format!(
                    "sealbox cert fetch through the service proxy: nothing acceptable after \
                     {WAIT:?}; last: {}\n{}\ncontroller log:\n{}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr),
                    self.host.log_tail("sealbox-controller")
                )
                .into());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The active key Secrets of the controller's namespace, oldest first.
    async fn active_keys(&self) -> TestResult<Vec<KeyPair>> {
        let secrets = Api::<Secret>::namespaced(self.plane.client().await?, &self.namespace)
            .list(&ListParams::default().labels("sealedsecrets.bitnami.com/sealed-secrets-key"))
            .await?;
        let mut pairs = Vec::new();
        for secret in secrets.items {
            let bytes = serde_json::to_vec(&secret)?;
            for parsed in sealbox_crypto::parse_key_secrets(&bytes, "the API server")? {
                pairs.push(parsed.key_pair()?);
            }
        }
        pairs.sort_by_key(|p| p.certificate.not_before());
        Ok(pairs)
    }

    /// The proxied requests the API server answered since `from`: (method, path after
    /// `/proxy`, status).
    fn proxied(&self, from: AuditOffset) -> TestResult<Vec<(String, String, u16)>> {
        let prefix = format!(
            "/api/v1/namespaces/{}/services/http:{CONTROLLER}:{PORT_NAME}/proxy",
            self.namespace
        );
        let (events, _) = self.plane.audit_events(from)?;
        Ok(events
            .into_iter()
            .filter_map(|e| {
                let rest = e.request.path.strip_prefix(&prefix)?.to_owned();
                Some((e.request.method, rest, e.request.status))
            })
            .collect())
    }
}

/// Polls `check` until it returns `Some`, or fails naming `what` after [`WAIT`].
async fn eventually<T, F, Fut>(what: &str, check: F) -> TestResult<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = TestResult<Option<T>>>,
{
    sealbox_tests::fixtures::Wait::new(WAIT, POLL)
        .until_found(what, check)
        .await
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Decrypts every value of `sealed` with `pair`: the plaintexts, or `None`.
fn open_all(sealed: &SealedSecret, pair: &KeyPair) -> Option<Vec<Vec<u8>>> {
    let label = sealed.label();
    sealed
        .spec
        .encrypted_data
        .values()
        .map(|value| {
            let ciphertext = STANDARD.decode(value).ok()?;
            let (plaintext, _) = sealbox_crypto::unseal_with_keys(
                std::iter::once(&pair.private_key),
                &ciphertext,
                &label,
            )
            .ok()?;
            Some(plaintext.to_vec())
        })
        .collect()
}

fn secret_yaml(name: &str, namespace: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
         stringData: {{password: {CANARY}-{name}}}\n"
    )
}

#[tokio::test]
async fn cert_fetch_seal_and_online_verify_through_the_real_service_proxy() -> TestResult {
    let Some(mut story) = Story::start("proxy-seal").await? else {
        return Ok(());
    };
    let from = story.plane.audit_end();

    // The first key the controller made, served through the proxy.
    let pem = story.fetch_cert_until(|pem| !pem.is_empty()).await?;
    let keys = story.active_keys().await?;
    let [key] = keys.as_slice() else {
        return Err(format!("expected one key Secret, found {}", keys.len()).into());
    };
    assert_eq!(pem, key.certificate.to_pem());
    let fetched = story.run(&["cert", "fetch", "-o", "cert.pem"], None, 0)?;
    assert!(
        stderr(&fetched).contains(&key.fingerprint().to_string()),
        "{}",
        stderr(&fetched)
    );
    assert_eq!(std::fs::read_to_string(story.path("cert.pem"))?, pem);

    // No --cert: the certificate comes from the controller.
    let sealed = story.run(&["seal"], Some(&secret_yaml("db", "prod")), 0)?;
    let sealed_text = String::from_utf8(sealed.stdout)?;
    assert!(!sealed_text.contains(CANARY));
    let object: SealedSecret = serde_norway::from_str(&sealed_text)?;
    assert_eq!(object.sealing_key_hint().as_ref(), Some(key.fingerprint()));
    assert_eq!(
        open_all(&object, key),
        Some(vec![format!("{CANARY}-db").into_bytes()])
    );
    std::fs::write(story.path("sealed.yaml"), &sealed_text)?;

    // The controller says it can decrypt it (the CLI retries a 429 of its rate limit).
    let verified = story.run(&["verify", "--online", "-f", "sealed.yaml"], None, 0)?;
    assert!(
        stderr(&verified).contains("can decrypt all 1"),
        "{}",
        stderr(&verified)
    );
    // Moved to another namespace, it cannot: exit 1, the document named.
    let moved = sealed_text.replace("namespace: prod", "namespace: other");
    std::fs::write(
        story.path("moved.yaml"),
        format!("{sealed_text}---\n{moved}"),
    )?;
    let refused = story.run(&["verify", "--online", "-f", "moved.yaml"], None, 1)?;
    let text = stderr(&refused);
    assert!(
        text.contains("document 2") && text.contains("other/db") && text.contains("1 of 2"),
        "{text}"
    );

    // Every call went through the API server's service proxy, and the controller answered.
    let proxied = story.proxied(from)?;
    let answered = |method: &str, path: &str, status: u16| {
        proxied
            .iter()
            .any(|(m, p, s)| m == method && p == path && *s == status)
    };
    assert!(answered("GET", "/v1/cert.pem", 200), "{proxied:?}");
    assert!(answered("POST", "/v1/verify", 200), "{proxied:?}");
    assert!(answered("POST", "/v1/verify", 409), "{proxied:?}");
    Ok(())
}

#[tokio::test]
async fn keys_rotate_and_online_reencrypt_through_the_real_service_proxy() -> TestResult {
    let Some(mut story) = Story::start("proxy-rotate").await? else {
        return Ok(());
    };
    let first = story.fetch_cert_until(|pem| !pem.is_empty()).await?;
    std::fs::write(story.path("first.pem"), &first)?;
    let repo = story.path("repo");
    std::fs::create_dir(&repo)?;
    for name in ["stale", "also-stale"] {
        let sealed = story.run(
            &["seal", "--cert", "first.pem"],
            Some(&secret_yaml(name, "prod")),
            0,
        )?;
        std::fs::write(repo.join(format!("{name}.yaml")), sealed.stdout)?;
    }
    // Sealed for another cluster: the controller cannot decrypt it; the file stays.
    let foreign_key = KeyPair::generate_with_bits(2048, "", SystemTime::now())?;
    std::fs::write(story.path("foreign.pem"), foreign_key.certificate.to_pem())?;
    let foreign = story.run(
        &["seal", "--cert", "foreign.pem"],
        Some(&secret_yaml("foreign", "prod")),
        0,
    )?;
    std::fs::write(repo.join("foreign.yaml"), &foreign.stdout)?;

    // Certificates have one-second resolution and keys of the same NotBefore tie (broken by
    // Secret name): a key made in the first key's second might not become the sealing one.
    let first_key = story.active_keys().await?;
    let not_before = first_key
        .first()
        .ok_or("no key Secret")?
        .certificate
        .not_before();
    let next_second = not_before + Duration::from_millis(1100);
    if let Ok(wait) = next_second.duration_since(SystemTime::now()) {
        tokio::time::sleep(wait).await;
    }

    // A new key, made by the CLI; the controller picks it up and serves it.
    let rotated = story.run(&["keys", "rotate", "--key-size", "2048"], None, 0)?;
    let text = stderr(&rotated);
    assert!(
        text.contains(&format!(
            "created the key Secret {}/sealed-secrets-key",
            story.namespace
        )),
        "{text}"
    );
    let newest = story.fetch_cert_until(|pem| pem != first).await?;
    let keys = story.active_keys().await?;
    let [old, new] = keys.as_slice() else {
        return Err(format!("expected two key Secrets, found {}", keys.len()).into());
    };
    assert_eq!(first, old.certificate.to_pem());
    assert_eq!(newest, new.certificate.to_pem());

    // Online reencrypt: each file POSTed to /v1/rotate through the proxy.
    let from = story.plane.audit_end();
    let out = story.run(&["reencrypt", "repo"], None, 1)?;
    let text = stderr(&out);
    assert!(text.contains("3 file(s): 2 re-sealed"), "{text}");
    assert!(
        text.contains("foreign.yaml: the controller cannot decrypt"),
        "{text}"
    );
    assert_eq!(std::fs::read(repo.join("foreign.yaml"))?, foreign.stdout);
    for name in ["stale", "also-stale"] {
        let text = std::fs::read_to_string(repo.join(format!("{name}.yaml")))?;
        let sealed: SealedSecret = serde_norway::from_str(&text)?;
        assert_eq!(
            sealed.sealing_key_hint().as_ref(),
            Some(new.fingerprint()),
            "{name}"
        );
        assert_eq!(
            open_all(&sealed, new),
            Some(vec![format!("{CANARY}-{name}").into_bytes()]),
            "{name} is sealed to the new key"
        );
    }
    let proxied = story.proxied(from)?;
    let rotations = |status: u16| {
        proxied
            .iter()
            .filter(|(m, p, s)| m == "POST" && p == "/v1/rotate" && *s == status)
            .count()
    };
    assert_eq!(rotations(200), 2, "{proxied:?}");
    assert!(rotations(409) >= 1, "{proxied:?}");

    // The re-sealed files verify online against the new key.
    eventually("verify --online of a re-sealed file", || async {
        let output = story
            .sealbox(&["verify", "--online", "-f", "repo/stale.yaml"])
            .output()?;
        Ok(output.status.success().then_some(()))
    })
    .await
}

/// `sealbox keys list` reads the key Secrets with a list request: the real API server's list
/// items carry no `kind` or `apiVersion`.
#[tokio::test]
async fn keys_list_reads_the_real_api_servers_list() -> TestResult {
    let Some(mut story) = Story::start("proxy-list").await? else {
        return Ok(());
    };
    story.fetch_cert_until(|pem| !pem.is_empty()).await?;
    let keys = story.active_keys().await?;
    let [key] = keys.as_slice() else {
        return Err(format!("expected one key Secret, found {}", keys.len()).into());
    };
    let listed = story.run(&["keys", "list", "-o", "json"], None, 0)?;
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout)?;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["fingerprint"], key.fingerprint().to_string());
    assert_eq!(rows[0]["sealing"], true);
    Ok(())
}
