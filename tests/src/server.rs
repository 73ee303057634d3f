//! The public handle: [`ApiServer`], its test controls, and [`Served`] for the TCP listener.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use kube::core::GroupVersionResource;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{oneshot, watch};

use crate::chaos::{self, Chaos, ChaosGuard};
use crate::error::Error;
use crate::faults::{FaultReport, FaultRule, Faults, Requests};
use crate::log::{self, RequestRecord};
use crate::object;
use crate::status::ApiError;
use crate::store::{DeleteOptions, ListQuery, Store, Target, WriteOptions};

/// Field manager used by the direct store helpers.
const DIRECT_MANAGER: &str = "sealbox-api-double";

/// State shared by the handle, the router and open watches.
#[derive(Debug)]
pub(crate) struct Shared {
    store: Mutex<Store>,
    /// Latest resourceVersion, so watches wake up on every change.
    changes: watch::Sender<u64>,
    /// Bumped by [`ApiServer::cut_watches`].
    cuts: watch::Sender<u64>,
    /// Bumped by [`ApiServer::compact`].
    expirations: watch::Sender<u64>,
    /// Bumped whenever a pause is lifted, so held requests look again.
    unpaused: watch::Sender<u64>,
    controls: Mutex<Controls>,
    log: Mutex<Vec<RequestRecord>>,
}

#[derive(Debug)]
struct Controls {
    faults: Faults,
    latency: Duration,
    bookmark_interval: Duration,
    /// (namespace, service) → base URL for the services proxy.
    proxies: HashMap<(String, String), String>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not take the double down for everyone else.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Reads the store.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        f(&lock(&self.store))
    }

    /// Changes the store and wakes watches if a new resourceVersion was committed.
    pub(crate) fn write<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let (result, before, after) = {
            let mut store = lock(&self.store);
            let before = store.resource_version();
            let result = f(&mut store);
            (result, before, store.resource_version())
        };
        if after != before {
            self.changes.send_replace(after);
        }
        result
    }

    pub(crate) fn subscribe(&self) -> Subscriptions {
        Subscriptions {
            changes: self.changes.subscribe(),
            cuts: self.cuts.subscribe(),
            expirations: self.expirations.subscribe(),
        }
    }

    pub(crate) fn latency(&self) -> Duration {
        lock(&self.controls).latency
    }

    pub(crate) fn bookmark_interval(&self) -> Duration {
        lock(&self.controls).bookmark_interval
    }

    pub(crate) fn take_fault(&self, request: &RequestRecord) -> Option<u16> {
        lock(&self.controls)
            .faults
            .take(request, tokio::time::Instant::now())
    }

    /// Returns once no pause holds `request`.
    pub(crate) async fn wait_while_paused(&self, request: &RequestRecord) {
        // Subscribe before looking, so a release between the look and the wait is not missed.
        let mut unpaused = self.unpaused.subscribe();
        let mut counted = false;
        loop {
            {
                let mut controls = lock(&self.controls);
                if !controls.faults.is_paused(request) {
                    return;
                }
                if !counted {
                    controls.faults.report_mut().paused += 1;
                    counted = true;
                }
            }
            if unpaused.changed().await.is_err() {
                return;
            }
        }
    }

    fn unpause(&self, id: u64) {
        lock(&self.controls).faults.unpause(id);
        self.unpaused.send_modify(|n| *n += 1);
    }

    pub(crate) fn proxy_target(&self, namespace: &str, service: &str) -> Option<String> {
        lock(&self.controls)
            .proxies
            .get(&(namespace.to_owned(), service.to_owned()))
            .cloned()
    }

    pub(crate) fn record(&self, request: RequestRecord) {
        lock(&self.log).push(request);
    }
}

/// Receivers a watch stream selects on.
#[derive(Debug)]
pub(crate) struct Subscriptions {
    pub(crate) changes: watch::Receiver<u64>,
    pub(crate) cuts: watch::Receiver<u64>,
    pub(crate) expirations: watch::Receiver<u64>,
}

/// An in-process Kubernetes API server double. Cheap to clone; clones share everything.
///
/// ```
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use k8s_openapi::api::core::v1::Secret;
/// use kube::Api;
/// use sealbox_tests::{ApiServer, FaultRule};
///
/// let server = ApiServer::new();
/// let secrets: Api<Secret> = Api::default_namespaced(server.client());
/// server.fail_next(FaultRule::status(500).verb("list"));
/// assert!(secrets.list(&Default::default()).await.is_err());
/// assert!(secrets.list(&Default::default()).await?.items.is_empty());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ApiServer {
    shared: Arc<Shared>,
}

impl Default for ApiServer {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiServer {
    /// A fresh API server with the namespaces `default`, `kube-system`, `kube-public` and
    /// `kube-node-lease`.
    pub fn new() -> Self {
        let store = Store::default();
        let (changes, _) = watch::channel(store.resource_version());
        let (cuts, _) = watch::channel(0);
        let (expirations, _) = watch::channel(0);
        let (unpaused, _) = watch::channel(0);
        let controls = Controls {
            faults: Faults::default(),
            latency: Duration::ZERO,
            bookmark_interval: Duration::from_secs(1),
            proxies: HashMap::new(),
        };
        let shared = Shared {
            store: Mutex::new(store),
            changes,
            cuts,
            expirations,
            unpaused,
            controls: Mutex::new(controls),
            log: Mutex::new(Vec::new()),
        };
        Self {
            shared: Arc::new(shared),
        }
    }

    /// The HTTP service, for [`axum::serve()`] or a custom client stack.
    pub fn router(&self) -> axum::Router {
        crate::router::router(self.shared.clone())
    }

    /// A `kube::Client` talking to this server in process, default namespace `default`.
    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.router(), "default")
    }

    /// Serves the API on `addr` (use `127.0.0.1:0` for a random port) until the returned
    /// [`Served`] is dropped. Must be called within a Tokio runtime.
    pub async fn serve(&self, addr: SocketAddr) -> Result<Served, Error> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| Error::Bind { addr, source })?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = self.router();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(error) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::warn!(%error, "API double listener failed");
            }
        });
        Ok(Served {
            addr: local,
            _stop: stop,
        })
    }

    /// Serves on `127.0.0.1` with a random port.
    pub async fn serve_local(&self) -> Result<Served, Error> {
        self.serve(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Makes the next `rule.count` requests matching `rule` fail with `rule.status` (or, for a
    /// [`lasting`](FaultRule::lasting) rule, every matching request in its window). Rules are
    /// tried in the order they were added; the first that matches decides.
    pub fn fail_next(&self, rule: FaultRule) {
        lock(&self.shared.controls)
            .faults
            .add(rule, tokio::time::Instant::now());
    }

    /// Forgets all fault rules not used up yet and the random error rates of a running
    /// [`Chaos`] (its schedule runs on until its guard is dropped). Pauses stay.
    pub fn clear_faults(&self) {
        lock(&self.shared.controls).faults.clear();
    }

    /// Puts `chaos` in force until the returned guard is dropped: its random error rates at
    /// once, its schedule (watch cuts, compactions, list outages) in a task on the current Tokio
    /// runtime. Replaces the rates of an earlier plan.
    pub fn start_chaos(&self, chaos: Chaos) -> ChaosGuard {
        lock(&self.shared.controls)
            .faults
            .set_rates(chaos.rates(), chaos.seed());
        let task = tokio::spawn(chaos::run(self.clone(), chaos));
        ChaosGuard {
            server: self.clone(),
            task,
        }
    }

    pub(crate) fn stop_random_errors(&self) {
        lock(&self.shared.controls).faults.set_rates(Vec::new(), 0);
    }

    pub(crate) fn count_list_outage(&self) {
        lock(&self.shared.controls).faults.report_mut().list_outages += 1;
    }

    /// Holds every request `requests` matches (before it is handled, as if the API server hung)
    /// until the returned guard is released or dropped. Watch streams already open keep
    /// flowing; [`cut_watches`](Self::cut_watches) ends them.
    ///
    /// ```
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use k8s_openapi::api::core::v1::Secret;
    /// use kube::Api;
    /// use sealbox_tests::{ApiServer, Requests};
    ///
    /// let server = ApiServer::new();
    /// let secrets: Api<Secret> = Api::default_namespaced(server.client());
    /// let paused = server.pause(Requests::any().resource("secrets").verb("get"));
    /// let get = tokio::spawn(async move { secrets.get_opt("x").await });
    /// while server.fault_report().paused == 0 {
    ///     tokio::task::yield_now().await;
    /// }
    /// assert!(!get.is_finished());
    /// paused.release();
    /// assert!(get.await??.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn pause(&self, requests: Requests) -> Paused {
        let id = lock(&self.shared.controls).faults.pause(requests);
        Paused {
            shared: self.shared.clone(),
            id,
        }
    }

    /// What was injected so far: failed requests by status, watch cuts, compactions, list
    /// outages, paused requests.
    pub fn fault_report(&self) -> FaultReport {
        lock(&self.shared.controls).faults.report()
    }

    /// When `required`, a namespaced object is only created in a namespace that exists (404
    /// otherwise), as on a real cluster; off by default, so a test may use any namespace
    /// without making it first.
    pub fn require_namespaces(&self, required: bool) {
        self.shared
            .write(|store| store.require_namespaces = required);
    }

    /// Delays every request by `latency` before it is handled.
    pub fn set_latency(&self, latency: Duration) {
        lock(&self.shared.controls).latency = latency;
    }

    /// How often open watches that allow bookmarks receive one (default 1s).
    pub fn set_bookmark_interval(&self, interval: Duration) {
        lock(&self.shared.controls).bookmark_interval = interval.max(Duration::from_millis(10));
    }

    /// Routes the services proxy for `namespace/service`
    /// (`/api/v1/namespaces/<ns>/services/[http:]<service>[:<port>]/proxy/<path>`) to
    /// `base_url` (e.g. `http://127.0.0.1:8080`), standing in for the Service's endpoints.
    /// Without a target the proxy answers 503, as for a Service without endpoints.
    pub fn proxy_service(&self, namespace: &str, service: &str, base_url: &str) {
        lock(&self.shared.controls).proxies.insert(
            (namespace.to_owned(), service.to_owned()),
            base_url.to_owned(),
        );
    }

    /// Ends every open watch stream now, as a dropped connection would.
    pub fn cut_watches(&self) {
        lock(&self.shared.controls).faults.report_mut().watch_cuts += 1;
        self.shared.cuts.send_modify(|n| *n += 1);
    }

    /// Forgets the change history, as etcd compaction does. Lists and watches from an older
    /// resourceVersion (including continue tokens) get 410 Gone, and every open watch
    /// receives a 410 `ERROR` event and ends, so informers must relist.
    pub fn compact(&self) {
        lock(&self.shared.controls).faults.report_mut().compactions += 1;
        self.shared.write(Store::compact);
        self.shared.expirations.send_modify(|n| *n += 1);
    }

    /// The latest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.read(Store::resource_version)
    }

    /// Every request answered so far, oldest first.
    pub fn request_log(&self) -> Vec<RequestRecord> {
        lock(&self.shared.log).clone()
    }

    /// Empties the request log.
    pub fn clear_request_log(&self) {
        lock(&self.shared.log).clear();
    }

    /// `(group, resource, verb)` for every resource request so far, e.g.
    /// `("bitnami.com", "sealedsecrets/status", "patch")`, to compare with a ClusterRole.
    pub fn rbac_summary(&self) -> BTreeSet<(String, String, String)> {
        log::rbac_summary(&lock(&self.shared.log))
    }

    /// The stored object, if any. `namespace` is ignored for cluster-scoped resources and
    /// defaults to `default` for namespaced ones.
    pub fn get_object(
        &self,
        gvr: &GroupVersionResource,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let target = self.target(gvr, namespace).ok()?;
        self.shared.read(|store| store.get(&target, name).ok())
    }

    /// Stores `object` (its namespace from `metadata.namespace`, else `default`), creating or
    /// unconditionally replacing it, as an ordinary write: watches see it, resourceVersion
    /// moves, validation applies. Registering a CRD this way serves its custom resources.
    pub fn put_object(&self, gvr: &GroupVersionResource, object: Value) -> Result<Value, Error> {
        let namespace = object::meta_str(&object, "namespace")
            .unwrap_or("default")
            .to_owned();
        let target = self
            .target(gvr, Some(&namespace))
            .map_err(|e| api_error(gvr, e))?;
        let options = WriteOptions {
            manager: DIRECT_MANAGER.into(),
            ..WriteOptions::default()
        };
        let name = object::name(&object).map(str::to_owned);
        self.shared
            .write(|store| match name.as_deref() {
                Some(name) if store.get(&target, name).is_ok() => {
                    let mut object = object;
                    object::remove_meta(&mut object, "resourceVersion");
                    store.replace(&target, name, object, &options)
                }
                _ => store.create(&target, object, &options),
            })
            .map_err(|e| api_error(gvr, e))
    }

    /// Deletes an object (with garbage collection of its dependents); `None` if absent.
    pub fn delete_object(
        &self,
        gvr: &GroupVersionResource,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let target = self.target(gvr, namespace).ok()?;
        self.shared
            .write(|store| store.delete(&target, name, &DeleteOptions::default()).ok())
    }

    /// Stored objects of a resource, in one namespace or (with `None`) all of them.
    pub fn objects(&self, gvr: &GroupVersionResource, namespace: Option<&str>) -> Vec<Value> {
        let Ok(mut target) = self.target(gvr, namespace) else {
            return Vec::new();
        };
        if namespace.is_none() {
            target.namespace = None;
        }
        self.shared
            .read(|store| {
                store
                    .list(&target, &ListQuery::default())
                    .map(|page| page.items)
            })
            .unwrap_or_default()
    }

    /// How many objects of a resource are stored, in one namespace or (with `None`) all of
    /// them. Unlike [`objects`](Self::objects) it copies at most one, so benchmarks can poll it.
    ///
    /// ```
    /// use kube::core::GroupVersionResource;
    /// use sealbox_tests::ApiServer;
    ///
    /// let server = ApiServer::new();
    /// let namespaces = GroupVersionResource::gvr("", "v1", "namespaces");
    /// let config_maps = GroupVersionResource::gvr("", "v1", "configmaps");
    /// for name in ["a", "b"] {
    ///     let map = serde_json::json!({"metadata": {"name": name, "namespace": "team"}});
    ///     server.put_object(&config_maps, map).expect("stored");
    /// }
    /// assert_eq!(server.count(&namespaces, None), 4); // default, kube-system, kube-public, kube-node-lease
    /// assert_eq!(server.count(&config_maps, None), 2);
    /// assert_eq!(server.count(&config_maps, Some("team")), 2);
    /// assert_eq!(server.count(&config_maps, Some("default")), 0);
    /// ```
    pub fn count(&self, gvr: &GroupVersionResource, namespace: Option<&str>) -> usize {
        let Ok(mut target) = self.target(gvr, namespace) else {
            return 0;
        };
        if namespace.is_none() {
            target.namespace = None;
        }
        let query = ListQuery {
            limit: Some(1),
            ..ListQuery::default()
        };
        self.shared
            .read(|store| store.list(&target, &query))
            .map_or(0, |page| page.items.len() + page.remaining.unwrap_or(0))
    }

    /// Registers a CustomResourceDefinition (JSON or parsed YAML), so its resources are
    /// served. It is immediately `Established`.
    pub fn apply_crd(&self, crd: Value) -> Result<Value, Error> {
        self.put_object(
            &GroupVersionResource::gvr("apiextensions.k8s.io", "v1", "customresourcedefinitions"),
            crd,
        )
    }

    /// Typed [`get_object`](Self::get_object) for built-in and derived resource types.
    pub fn get<K>(&self, namespace: Option<&str>, name: &str) -> Option<K>
    where
        K: kube::Resource<DynamicType = ()> + DeserializeOwned,
    {
        let value = self.get_object(&gvr_of::<K>(), namespace, name)?;
        serde_json::from_value(value).ok()
    }

    /// Typed [`put_object`](Self::put_object).
    pub fn put<K>(&self, object: &K) -> Result<K, Error>
    where
        K: kube::Resource<DynamicType = ()> + Serialize + DeserializeOwned,
    {
        let gvr = gvr_of::<K>();
        let mut value = serde_json::to_value(object).map_err(|source| Error::Serde {
            what: gvr.resource.clone(),
            source,
        })?;
        value["apiVersion"] = Value::String(K::api_version(&()).into_owned());
        value["kind"] = Value::String(K::kind(&()).into_owned());
        let stored = self.put_object(&gvr, value)?;
        serde_json::from_value(stored).map_err(|source| Error::Serde {
            what: gvr.resource,
            source,
        })
    }

    /// Which fields each field manager owns on an object: manager → `.data.key`-style paths.
    pub fn field_managers(
        &self,
        gvr: &GroupVersionResource,
        namespace: Option<&str>,
        name: &str,
    ) -> BTreeMap<String, BTreeSet<String>> {
        let Ok(target) = self.target(gvr, namespace) else {
            return BTreeMap::new();
        };
        let Some(managers) = self.shared.read(|store| store.managers(&target, name)) else {
            return BTreeMap::new();
        };
        let mut owned: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (manager, _, paths) in managers.entries() {
            owned.entry(manager.to_owned()).or_default().extend(
                paths
                    .iter()
                    .map(|p| p.iter().map(|s| format!(".{s}")).collect::<String>()),
            );
        }
        owned
    }

    fn target(
        &self,
        gvr: &GroupVersionResource,
        namespace: Option<&str>,
    ) -> Result<Target, ApiError> {
        let resource = self
            .shared
            .read(|store| store.registry.find(&gvr.group, &gvr.version, &gvr.resource))
            .ok_or_else(ApiError::no_such_path)?;
        let namespace = if resource.namespaced {
            Some(namespace.unwrap_or("default").to_owned())
        } else {
            None
        };
        Ok(Target {
            resource,
            version: gvr.version.clone(),
            namespace,
        })
    }
}

fn gvr_of<K: kube::Resource<DynamicType = ()>>() -> GroupVersionResource {
    GroupVersionResource::gvr(&K::group(&()), &K::version(&()), &K::plural(&()))
}

fn api_error(gvr: &GroupVersionResource, error: ApiError) -> Error {
    Error::Rejected {
        resource: gvr.resource.clone(),
        code: error.code,
        reason: error.reason,
        message: error.message,
    }
}

/// Holds the requests of an [`ApiServer::pause`] until released or dropped.
#[derive(Debug)]
pub struct Paused {
    shared: Arc<Shared>,
    id: u64,
}

impl Paused {
    /// Lets the held requests (and later ones) through; the same as dropping the guard.
    pub fn release(self) {}
}

impl Drop for Paused {
    fn drop(&mut self) {
        self.shared.unpause(self.id);
    }
}

/// A running TCP listener for an [`ApiServer`]; stops accepting when dropped.
#[derive(Debug)]
pub struct Served {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl Served {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig (context `sealbox-double`, namespace `default`) pointing at this server.
    pub fn kubeconfig(&self) -> String {
        crate::kubeconfig::render(&self.url())
    }

    /// Writes [`kubeconfig`](Self::kubeconfig) to `path` and returns the path.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> Result<PathBuf, Error> {
        let path = path.as_ref();
        std::fs::write(path, self.kubeconfig()).map_err(|source| Error::WriteKubeconfig {
            path: path.to_owned(),
            source,
        })?;
        Ok(path.to_owned())
    }
}
