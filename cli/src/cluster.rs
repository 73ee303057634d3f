//! Talking to a cluster: a `kube::Client` from the kubeconfig (or the pod's service account),
//! and requests to the controller through the API server's service proxy, as `kubeseal` makes
//! them.
//!
//! Only the commands that need a cluster call [`block_on`], which starts a single-threaded Tokio
//! runtime for the duration of the call; offline commands never start one.
//!
//! The controller is reached at
//! `/api/v1/namespaces/<namespace>/services/http:<name>:<port>/proxy/<path>`, where `<port>` is
//! the name of the Service's first port (kubeseal's rule), so no port-forward or ingress is
//! needed, only RBAC for `services/proxy`.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{Method, Request, header};
use k8s_openapi::api::core::v1::Service;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use zeroize::Zeroizing;

use crate::bounded;
use crate::error::{Error, Result, chain};
use crate::kube_overrides::ClientOverrides;
use crate::kubeconfig;

/// Default namespace of the controller (kubeseal's and Bitnami's default).
pub const DEFAULT_CONTROLLER_NAMESPACE: &str = "kube-system";
/// Default name of the controller's Service.
pub const DEFAULT_CONTROLLER_NAME: &str = "sealed-secrets-controller";
/// The port name used when the Service cannot be read (RBAC may allow only the proxy).
const FALLBACK_PORT_NAME: &str = "http";
/// A request to the controller or the API server that takes longer is abandoned.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A controller request (with its retries) that has not completed in this time is abandoned.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How often a rate-limited (429) controller request is retried, waiting 1s, 2s, … in between.
const RATE_LIMIT_RETRIES: u32 = 5;
const RATE_LIMIT_WAIT: Duration = Duration::from_secs(1);
/// Where a pod's service account token lives: its presence means in-cluster config may work.
const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// Which cluster, and where the controller runs in it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ClusterOptions {
    /// An explicit kubeconfig file (else `KUBECONFIG`, else `~/.kube/config`, else in-cluster).
    pub kubeconfig: Option<PathBuf>,
    /// A kubeconfig context other than the current one.
    pub context: Option<String>,
    /// The controller's namespace, which also holds the key Secrets.
    pub controller_namespace: String,
    /// The controller's Service.
    pub controller_name: String,
    /// kubectl's client flags (`kubeseal` mode only), applied over the kubeconfig. Boxed: the
    /// flags are many and rarely set, and a `CertSource` carries these options by value.
    pub overrides: Box<ClientOverrides>,
}

impl ClusterOptions {
    /// Defaults: the environment's kubeconfig and current context, the default controller.
    pub fn new() -> Self {
        ClusterOptions {
            kubeconfig: None,
            context: None,
            controller_namespace: DEFAULT_CONTROLLER_NAMESPACE.to_owned(),
            controller_name: DEFAULT_CONTROLLER_NAME.to_owned(),
            overrides: Box::default(),
        }
    }

    /// Whether anything tells where a cluster is: an explicit kubeconfig or context, a
    /// kubeconfig file that exists, or a pod's service account. Commands that fall back to the
    /// cluster (sealing without `--cert`) do so only then.
    pub fn is_configured(&self) -> bool {
        self.kubeconfig.is_some()
            || self.context.is_some()
            || self.overrides.names_a_server()
            || !existing_kubeconfig_files().is_empty()
            || in_cluster_available()
    }

    /// `kube-system/sealed-secrets-controller`.
    pub fn controller(&self) -> String {
        format!("{}/{}", self.controller_namespace, self.controller_name)
    }
}

impl fmt::Display for ClusterOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "controller {}", self.controller())?;
        if let Some(context) = &self.context {
            write!(f, " (context {context})")?;
        }
        Ok(())
    }
}

fn existing_kubeconfig_files() -> Vec<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    kubeconfig::candidate_files(
        None,
        std::env::var_os("KUBECONFIG").as_deref(),
        home.as_deref(),
    )
    .into_iter()
    .filter(|p| p.is_file())
    .collect()
}

fn in_cluster_available() -> bool {
    std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
        && Path::new(SERVICE_ACCOUNT_TOKEN).is_file()
}

/// Runs `future` to completion on a fresh single-threaded runtime.
pub fn block_on<F: Future>(future: F) -> Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Runtime { source })?;
    Ok(runtime.block_on(future))
}

/// A client for one cluster, with what is needed to explain failures.
#[derive(Clone)]
pub struct Cluster {
    /// The client.
    pub client: Client,
    /// The API server's URL, for messages.
    pub server: String,
    /// Which controller.
    pub options: ClusterOptions,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("server", &self.server)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Loads the configuration and builds a client. Nothing is sent yet.
    pub async fn connect(options: &ClusterOptions) -> Result<Cluster> {
        let mut config = load_config(options).await?;
        config.default_retry = false;
        config.read_timeout = Some(READ_TIMEOUT);
        config.connect_timeout = Some(CONNECT_TIMEOUT);
        let server = config.cluster_url.to_string();
        let client = Client::try_from(config).map_err(|e| Error::ClusterConfig {
            reason: format!("cannot build a client for {server}: {}", chain(&e)),
        })?;
        Ok(Cluster {
            client,
            server,
            options: options.clone(),
        })
    }

    /// Turns a failed API request into an error that names what was attempted and what to do.
    pub fn api_error(&self, what: impl Into<String>, error: kube::Error) -> Error {
        match error {
            kube::Error::Api(status) => Error::ClusterRequest {
                what: what.into(),
                code: status.code,
                reason: match status.code {
                    401 => format!(
                        "unauthorized ({}); refresh your credentials for this cluster",
                        status.message
                    ),
                    403 => format!(
                        "forbidden ({}); your user needs RBAC permission for it",
                        status.message
                    ),
                    404 => format!(
                        "not found ({}); check --controller-namespace and that the resource is installed",
                        status.message
                    ),
                    _ => status.message.clone(),
                },
            },
            other => Error::ClusterUnreachable {
                server: self.server.clone(),
                reason: chain(&other),
            },
        }
    }

    /// The name of the controller Service's first port, as `kubeseal` picks it (the port
    /// number when the port has no name). When the Service cannot be read for lack of
    /// permission, `http` (the name the manifests give it).
    pub async fn controller_port(&self) -> Result<String> {
        let ClusterOptions {
            controller_namespace: namespace,
            controller_name: name,
            ..
        } = &self.options;
        let services: Api<Service> = Api::namespaced(self.client.clone(), namespace);
        let not_found = |reason: String| Error::ControllerNotFound {
            namespace: namespace.clone(),
            name: name.clone(),
            reason,
        };
        let service = match services.get(name).await {
            Ok(service) => service,
            Err(kube::Error::Api(status)) if status.code == 404 => {
                return Err(not_found("no such Service".to_owned()));
            }
            Err(kube::Error::Api(status)) if status.code == 403 => {
                tracing::debug!(
                    message = %status.message,
                    "cannot read the controller's Service; assuming port name http"
                );
                return Ok(FALLBACK_PORT_NAME.to_owned());
            }
            Err(e) => {
                return Err(self.api_error(format!("read the Service {namespace}/{name}"), e));
            }
        };
        let port = service
            .spec
            .and_then(|spec| spec.ports)
            .and_then(|ports| ports.into_iter().next())
            .ok_or_else(|| not_found("the Service has no ports".to_owned()))?;
        Ok(match port.name.filter(|n| !n.is_empty()) {
            Some(name) => name,
            None => port.port.to_string(),
        })
    }

    /// Sends `method path` (e.g. `v1/cert.pem`) to the controller through the service proxy
    /// and returns the body of a successful answer, read up to `limit`; an error status becomes
    /// an error naming the controller, the path and the status. The whole exchange is bounded
    /// by [`REQUEST_TIMEOUT`] (kube's read timeout is per read: a trickling answer would
    /// reset it forever).
    pub async fn controller_request(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        content_type: &str,
        limit: bounded::Limit,
    ) -> Result<String> {
        let request = format!("{method} /{path}");
        tokio::time::timeout(
            REQUEST_TIMEOUT,
            self.controller_exchange(method, path, body, content_type, limit),
        )
        .await
        .map_err(|_| Error::ControllerAnswer {
            controller: self.options.controller(),
            request,
            reason: format!("no complete answer within {} s", REQUEST_TIMEOUT.as_secs()),
        })?
    }

    async fn controller_exchange(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        content_type: &str,
        limit: bounded::Limit,
    ) -> Result<String> {
        let port = self.controller_port().await?;
        let ClusterOptions {
            controller_namespace: namespace,
            controller_name: name,
            ..
        } = &self.options;
        let uri =
            format!("/api/v1/namespaces/{namespace}/services/http:{name}:{port}/proxy/{path}");
        let request = Request::builder()
            .method(method.clone())
            .uri(&uri)
            .header(
                header::ACCEPT,
                "application/x-pem-file, application/json, */*",
            )
            .header(header::CONTENT_TYPE, content_type)
            .body(body)
            .map_err(|e| Error::ClusterConfig {
                reason: format!("cannot build the request {uri}: {e}"),
            })?;
        let mut attempt = 0;
        loop {
            tracing::debug!(%method, uri, attempt, "controller request");
            match self.client.request_stream(request.clone()).await {
                Ok(stream) => return self.read_answer(stream, &method, path, limit).await,
                // The controller rate-limits /v1/verify (and may others): wait and retry.
                Err(kube::Error::Api(status))
                    if status.code == 429 && attempt < RATE_LIMIT_RETRIES =>
                {
                    attempt += 1;
                    tokio::time::sleep(RATE_LIMIT_WAIT * attempt).await;
                }
                Err(kube::Error::Api(status)) => {
                    return Err(Error::ControllerRequest {
                        controller: self.options.controller(),
                        request: format!("{method} /{path}"),
                        code: status.code,
                        reason: controller_failure(status.code, &status.message),
                    });
                }
                Err(e) => {
                    return Err(self.api_error(format!("{method} /{path} on the controller"), e));
                }
            }
        }
    }
}

impl Cluster {
    /// The body of a controller's answer, at most `limit` bytes of UTF-8.
    async fn read_answer(
        &self,
        stream: impl futures::AsyncBufRead + Unpin,
        method: &Method,
        path: &str,
        limit: bounded::Limit,
    ) -> Result<String> {
        use futures::AsyncReadExt as _;
        let unexpected = |reason: String| Error::ControllerAnswer {
            controller: self.options.controller(),
            request: format!("{method} /{path}"),
            reason,
        };
        let mut body = Vec::new();
        stream
            .take(limit.bytes.saturating_add(1))
            .read_to_end(&mut body)
            .await
            .map_err(|e| unexpected(format!("the answer broke off ({})", e.kind())))?;
        if body.len() as u64 > limit.bytes {
            return Err(unexpected(format!(
                "the answer is {}",
                bounded::TooLarge { limit }
            )));
        }
        String::from_utf8(body).map_err(|_| unexpected("the answer is not UTF-8 text".to_owned()))
    }

    /// GETs an API path; `None` for 404. The text is wiped when dropped (it may hold keys).
    pub async fn get_text(&self, path: &str, what: &str) -> Result<Option<Zeroizing<String>>> {
        let request = Request::get(path)
            .header(header::ACCEPT, "application/json")
            .body(Vec::new())
            .map_err(|e| Error::ClusterConfig {
                reason: format!("cannot build the request {path}: {e}"),
            })?;
        match self.client.request_text(request).await {
            Ok(text) => Ok(Some(Zeroizing::new(text))),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
            Err(e) => Err(self.api_error(what, e)),
        }
    }

    /// Sends a JSON body (or none) with `method` to an API path; returns the answer's text,
    /// wiped when dropped.
    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        what: &str,
    ) -> Result<Zeroizing<String>> {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .map_err(|e| Error::ClusterConfig {
                reason: format!("cannot build the request {path}: {e}"),
            })?;
        self.client
            .request_text(request)
            .await
            .map(Zeroizing::new)
            .map_err(|e| self.api_error(what, e))
    }

    /// Every SealedSecret in the cluster (all namespaces), as JSON, page by page; `None` when
    /// the SealedSecret resource is not installed.
    pub async fn sealed_secrets(&self) -> Result<Option<Vec<serde_json::Value>>> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut path = format!(
                "/apis/{}/{}/sealedsecrets?limit={LIST_PAGE}",
                sealbox_crds::GROUP,
                sealbox_crds::VERSION
            );
            if let Some(token) = &token {
                path.push_str("&continue=");
                path.push_str(&percent_encode(token));
            }
            let Some(text) = self
                .get_text(&path, "list SealedSecrets in all namespaces")
                .await?
            else {
                return Ok(None);
            };
            let mut page: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| Error::ClusterRequest {
                    what: "list SealedSecrets in all namespaces".to_owned(),
                    code: 200,
                    reason: format!("the answer is not a list: {e}"),
                })?;
            if let Some(serde_json::Value::Array(page_items)) =
                page.get_mut("items").map(serde_json::Value::take)
            {
                items.extend(page_items);
            }
            token = page
                .pointer("/metadata/continue")
                .and_then(serde_json::Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if token.is_none() {
                return Ok(Some(items));
            }
        }
    }
}

/// Items per page when listing.
const LIST_PAGE: usize = 500;

/// Percent-encodes a query value (continue tokens are base64 with `=`, `+`, `/`).
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// What a failed controller answer means, and what to do about it.
fn controller_failure(code: u16, message: &str) -> String {
    let message = message.trim();
    match code {
        503 | 502 => format!(
            "{message}; is the controller running and ready? (kubectl get pods in its namespace), or pass --cert FILE"
        ),
        404 => format!(
            "{message}; is this a Sealbox or Sealed Secrets controller? pass --controller-name and --controller-namespace"
        ),
        _ => message.to_owned(),
    }
}

async fn load_config(options: &ClusterOptions) -> Result<Config> {
    let config_error = |reason: String| Error::ClusterConfig { reason };
    let files = match &options.kubeconfig {
        Some(path) => vec![path.clone()],
        None => existing_kubeconfig_files(),
    };
    if files.is_empty() && !options.overrides.names_a_server() {
        if options.context.is_none() && in_cluster_available() {
            return Config::incluster().map_err(|e| {
                config_error(format!(
                    "cannot use the pod's service account: {}",
                    chain(&e)
                ))
            });
        }
        return Err(Error::NoCluster { offline: None });
    }
    let mut merged: Option<Kubeconfig> = None;
    for path in &files {
        let config = read_kubeconfig(path)?;
        merged = Some(match merged {
            None => config,
            Some(previous) => previous
                .merge(config)
                .map_err(|e| Error::ReadKubeconfigFile {
                    path: path.clone(),
                    reason: chain(&e),
                })?,
        });
    }
    // No kubeconfig at all is no cluster, unless kubectl's flags name a server (kubeseal mode).
    let mut kubeconfig = match merged {
        Some(merged) => merged,
        None if options.overrides.names_a_server() => Kubeconfig::default(),
        None => return Err(Error::NoCluster { offline: None }),
    };
    // kubectl's client flags (kubeseal mode) edit the entries the context points at.
    let context = options
        .overrides
        .apply(&mut kubeconfig, options.context.as_deref());
    let kube_options = KubeConfigOptions {
        context,
        cluster: None,
        user: None,
    };
    Config::from_custom_kubeconfig(kubeconfig, &kube_options)
        .await
        .map_err(|e| {
            config_error(match &options.context {
                Some(context) => format!("context {context}: {}", chain(&e)),
                None => chain(&e),
            })
        })
}

/// One kubeconfig file, read through [`bounded::KUBECONFIG`] and parsed by kube, with relative
/// file references made absolute against the file's directory as kubectl (and kube's own
/// `Kubeconfig::read_from`, which reads without a bound) does.
fn read_kubeconfig(path: &Path) -> Result<Kubeconfig> {
    let fail = |reason: String| Error::ReadKubeconfigFile {
        path: path.to_owned(),
        reason,
    };
    let bytes =
        bounded::read_bounded(path, bounded::KUBECONFIG).map_err(|e| fail(e.to_string()))?;
    let text =
        kubeconfig_text(&bytes).ok_or_else(|| fail("not UTF-8 or UTF-16 text".to_owned()))?;
    let mut config = Kubeconfig::from_yaml(&text).map_err(|e| fail(chain(&e)))?;
    if let Some(dir) = path.parent() {
        absolute_file_references(&mut config, dir);
    }
    Ok(config)
}

/// The text of a kubeconfig: UTF-8 (with or without a byte order mark) or UTF-16 with one, as
/// kube and kubectl accept. Wiped when dropped: it holds credentials.
fn kubeconfig_text(bytes: &[u8]) -> Option<Zeroizing<String>> {
    let utf16 = |rest: &[u8], decode: fn([u8; 2]) -> u16| {
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|pair| decode([pair[0], pair[1]]))
            .collect();
        String::from_utf16(&units).ok()
    };
    let text = match bytes {
        [0xFF, 0xFE, rest @ ..] => utf16(rest, u16::from_le_bytes)?,
        [0xFE, 0xFF, rest @ ..] => utf16(rest, u16::from_be_bytes)?,
        [0xEF, 0xBB, 0xBF, rest @ ..] => std::str::from_utf8(rest).ok()?.to_owned(),
        _ => std::str::from_utf8(bytes).ok()?.to_owned(),
    };
    Some(Zeroizing::new(text))
}

/// Makes relative certificate, key, token-file and exec-command paths absolute against `dir`
/// (exec commands only when they hold a path separator: a bare name is looked up in `PATH`).
fn absolute_file_references(config: &mut Kubeconfig, dir: &Path) {
    let absolute = |file: &mut Option<String>| {
        if let Some(path) = file.as_deref().filter(|p| Path::new(p).is_relative())
            && let Some(joined) = dir.join(path).to_str()
        {
            *file = Some(joined.to_owned());
        }
    };
    for named in &mut config.clusters {
        if let Some(cluster) = &mut named.cluster {
            absolute(&mut cluster.certificate_authority);
        }
    }
    for named in &mut config.auth_infos {
        if let Some(auth_info) = &mut named.auth_info {
            absolute(&mut auth_info.client_certificate);
            absolute(&mut auth_info.client_key);
            absolute(&mut auth_info.token_file);
            if let Some(exec) = &mut auth_info.exec
                && exec
                    .command
                    .as_deref()
                    .is_some_and(|c| c.contains(std::path::MAIN_SEPARATOR))
            {
                absolute(&mut exec.command);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_controller_and_context() {
        let mut options = ClusterOptions::new();
        assert_eq!(
            options.to_string(),
            "controller kube-system/sealed-secrets-controller"
        );
        options.context = Some("prod".to_owned());
        assert!(options.to_string().ends_with("(context prod)"));
    }

    #[test]
    fn continue_tokens_are_encoded() {
        assert_eq!(percent_encode("a+b/c=="), "a%2Bb%2Fc%3D%3D");
    }

    #[test]
    fn failures_say_what_to_do() {
        assert!(controller_failure(404, "not found").contains("--controller-name"));
        assert!(controller_failure(503, "no endpoints").contains("running"));
    }
}
