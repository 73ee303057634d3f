//! Where the demo's story runs: the API double (the default: in-process, ready at once) or, with
//! `--real`, the real control plane of tests/kube (etcd, kube-apiserver and
//! kube-controller-manager built by `tests/kube/build.sh`), the controller then running in a test
//! host (a network namespace; needs root) that the API server's service proxy reaches as it
//! reaches a controller pod.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind, GroupVersionResource};
use sealbox_tests::real::{Binaries, RealControlPlane, TestHost};
use sealbox_tests::{ApiServer, Served};
use serde_json::{Value, json};

use crate::processes::{Controller, wait_for};

/// The controller's API port inside its test host (the host has ports of its own).
const HOST_PORT: u16 = 8080;
/// The field manager of what the demo applies to the real API server.
const MANAGER: &str = "sealbox-demo";
/// How long the real API server may take to serve a new CRD.
const CRD_TIMEOUT: Duration = Duration::from_secs(60);

/// The two kinds the story reads and writes.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Secret,
    SealedSecret,
}

impl Kind {
    fn gvr(self) -> GroupVersionResource {
        match self {
            Kind::Secret => GroupVersionResource::gvr("", "v1", "secrets"),
            Kind::SealedSecret => {
                GroupVersionResource::gvr("bitnami.com", "v1alpha1", "sealedsecrets")
            }
        }
    }

    fn resource(self) -> ApiResource {
        let (gvk, plural) = match self {
            Kind::Secret => (GroupVersionKind::gvk("", "v1", "Secret"), "secrets"),
            Kind::SealedSecret => (
                GroupVersionKind::gvk("bitnami.com", "v1alpha1", "SealedSecret"),
                "sealedsecrets",
            ),
        };
        ApiResource::from_gvk_with_plural(&gvk, plural)
    }
}

/// The cluster the story runs on.
pub enum Cluster {
    Double {
        server: ApiServer,
        // Kept for its drop, which stops serving.
        served: Served,
        kubeconfig: PathBuf,
    },
    Real {
        plane: Box<RealControlPlane>,
        client: kube::Client,
        runtime: tokio::runtime::Handle,
    },
}

/// The controller, running locally (double) or in a test host (real); stopped when dropped.
#[derive(Debug)]
pub enum Running {
    Local(Controller),
    Host {
        host: Box<TestHost>,
        http: SocketAddr,
        args: Vec<String>,
    },
}

impl Cluster {
    /// The API double, served on 127.0.0.1 with a kubeconfig in `dir`.
    pub fn double(runtime: &tokio::runtime::Runtime, dir: &Path) -> anyhow::Result<Cluster> {
        let server = ApiServer::new();
        let served = runtime
            .block_on(server.serve_local())
            .context("cannot serve the API double")?;
        let kubeconfig = served
            .write_kubeconfig(dir.join("kubeconfig"))
            .context("cannot write the kubeconfig")?;
        Ok(Cluster::Double {
            server,
            served,
            kubeconfig,
        })
    }

    /// The real control plane, started from `target/kube/bin` (or `$SEALBOX_KUBE_BIN`).
    pub fn real(runtime: &tokio::runtime::Runtime) -> anyhow::Result<Cluster> {
        let binaries = Binaries::find().context("--real needs the real control plane")?;
        let plane = runtime
            .block_on(RealControlPlane::start_with(binaries))
            .context("cannot start the real control plane")?;
        let client = runtime
            .block_on(plane.client())
            .context("cannot make a client for the real control plane")?;
        Ok(Cluster::Real {
            plane: Box::new(plane),
            client,
            runtime: runtime.handle().clone(),
        })
    }

    /// One line naming what runs where.
    pub fn describe(&self) -> String {
        match self {
            Cluster::Double { served, .. } => format!(
                "Starting a Kubernetes API double on {} — an in-process stand-in for a cluster's API server.",
                served.url()
            ),
            Cluster::Real { plane, .. } => format!(
                "Starting a real control plane on {}: etcd, kube-apiserver and kube-controller-manager \
                 (built by tests/kube/build.sh), ready after {:.1} s. No kubelet: the controller runs \
                 as a process on this machine.",
                plane.url(),
                plane.startup_time().as_secs_f64()
            ),
        }
    }

    pub fn kubeconfig(&self) -> &Path {
        match self {
            Cluster::Double { kubeconfig, .. } => kubeconfig,
            Cluster::Real { plane, .. } => plane.kubeconfig(),
        }
    }

    /// Installs the CRD and, on the double, the controller's Service (on the real plane
    /// [`start_controller`](Self::start_controller) makes it, with its endpoint).
    pub fn install(&self, crd: Value, namespace: &str, service: &str) -> anyhow::Result<()> {
        match self {
            Cluster::Double { server, .. } => {
                server
                    .apply_crd(crd)
                    .context("the API double refused the CRD")?;
                server
                    .put_object(
                        &GroupVersionResource::gvr("", "v1", "services"),
                        json!({
                            "apiVersion": "v1",
                            "kind": "Service",
                            "metadata": { "name": service, "namespace": namespace },
                            "spec": { "ports": [{ "name": "http", "port": 8080, "targetPort": 8080 }] },
                        }),
                    )
                    .context("the API double refused the Service")?;
                Ok(())
            }
            Cluster::Real {
                client, runtime, ..
            } => {
                let resource = ApiResource::from_gvk_with_plural(
                    &GroupVersionKind::gvk(
                        "apiextensions.k8s.io",
                        "v1",
                        "CustomResourceDefinition",
                    ),
                    "customresourcedefinitions",
                );
                let crds = Api::<DynamicObject>::all_with(client.clone(), &resource);
                let name = crd
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .context("the CRD has no name")?
                    .to_owned();
                runtime
                    .block_on(crds.patch(
                        &name,
                        &PatchParams::apply(MANAGER).force(),
                        &Patch::Apply(crd),
                    ))
                    .context("the API server refused the CRD")?;
                wait_for("the CRD to be established", CRD_TIMEOUT, || {
                    let crd = runtime.block_on(crds.get(&name))?;
                    let established = crd.data["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c["type"] == "Established" && c["status"] == "True");
                    Ok(established.then_some(()))
                })
            }
        }
    }

    /// Starts the controller with its keys in `namespace`, reachable through the service proxy
    /// as Service `namespace/service`.
    pub fn start_controller(
        &self,
        binary: &Path,
        namespace: &str,
        service: &str,
        key_size: &str,
        log: PathBuf,
    ) -> anyhow::Result<Running> {
        match self {
            Cluster::Double {
                server, kubeconfig, ..
            } => {
                let controller = Controller::start(binary, kubeconfig, namespace, key_size, log)?;
                server.proxy_service(namespace, service, &format!("http://{}", controller.http));
                Ok(Running::Local(controller))
            }
            Cluster::Real { plane, runtime, .. } => {
                let mut host = TestHost::start_required(plane, "sealbox-controller")
                    .context("--real runs the controller in a network namespace")?;
                let http = SocketAddr::from((host.address(), HOST_PORT));
                let args: Vec<String> = [
                    "--namespace",
                    namespace,
                    "--listen-addr",
                    &http.to_string(),
                    // The host's own loopback.
                    "--listen-metrics-addr",
                    "127.0.0.1:8081",
                    "--key-size",
                    key_size,
                    "--leader-elect=false",
                ]
                .map(str::to_owned)
                .into();
                let mut command = std::process::Command::new(binary);
                command
                    .args(&args)
                    .env("KUBECONFIG", host.kubeconfig())
                    .env_remove("POD_NAMESPACE")
                    .env_remove("POD_NAME");
                host.spawn("sealbox-controller", &command)?;
                runtime
                    .block_on(plane.expose_service(namespace, service, HOST_PORT, &host))
                    .context("cannot expose the controller through the API server")?;
                Ok(Running::Host {
                    host: Box::new(host),
                    http,
                    args,
                })
            }
        }
    }

    /// The object, if it exists.
    pub fn get(&self, kind: Kind, namespace: &str, name: &str) -> anyhow::Result<Option<Value>> {
        match self {
            Cluster::Double { server, .. } => {
                Ok(server.get_object(&kind.gvr(), Some(namespace), name))
            }
            Cluster::Real {
                client, runtime, ..
            } => {
                let api = Api::<DynamicObject>::namespaced_with(
                    client.clone(),
                    namespace,
                    &kind.resource(),
                );
                let object = runtime.block_on(api.get_opt(name))?;
                Ok(object.map(serde_json::to_value).transpose()?)
            }
        }
    }

    pub fn list(&self, kind: Kind, namespace: &str) -> anyhow::Result<Vec<Value>> {
        match self {
            Cluster::Double { server, .. } => Ok(server.objects(&kind.gvr(), Some(namespace))),
            Cluster::Real {
                client, runtime, ..
            } => {
                let api = Api::<DynamicObject>::namespaced_with(
                    client.clone(),
                    namespace,
                    &kind.resource(),
                );
                let list = runtime.block_on(api.list(&ListParams::default()))?;
                Ok(list
                    .items
                    .into_iter()
                    .map(serde_json::to_value)
                    .collect::<Result<_, _>>()?)
            }
        }
    }

    /// Creates or replaces the object (as `kubectl apply` does).
    pub fn put(&self, kind: Kind, object: Value) -> anyhow::Result<()> {
        match self {
            Cluster::Double { server, .. } => {
                server.put_object(&kind.gvr(), object)?;
                Ok(())
            }
            Cluster::Real {
                client, runtime, ..
            } => {
                let field = |name: &str| {
                    object
                        .pointer(&format!("/metadata/{name}"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .with_context(|| format!("the object has no metadata.{name}"))
                };
                let (namespace, name) = (field("namespace")?, field("name")?);
                // A real API server stores nothing in a namespace that does not exist (the
                // double does): made first, as `kubectl create namespace` would.
                let namespaces = Api::<DynamicObject>::all_with(
                    client.clone(),
                    &ApiResource::from_gvk_with_plural(
                        &GroupVersionKind::gvk("", "v1", "Namespace"),
                        "namespaces",
                    ),
                );
                runtime
                    .block_on(namespaces.patch(
                        &namespace,
                        &PatchParams::apply(MANAGER),
                        &Patch::Apply(json!({
                            "apiVersion": "v1", "kind": "Namespace",
                            "metadata": {"name": namespace}
                        })),
                    ))
                    .with_context(|| format!("cannot create the namespace {namespace}"))?;
                let api = Api::<DynamicObject>::namespaced_with(
                    client.clone(),
                    &namespace,
                    &kind.resource(),
                );
                runtime.block_on(api.patch(
                    &name,
                    &PatchParams::apply(MANAGER).force(),
                    &Patch::Apply(object),
                ))?;
                Ok(())
            }
        }
    }

    pub fn delete(&self, kind: Kind, namespace: &str, name: &str) -> anyhow::Result<()> {
        match self {
            Cluster::Double { server, .. } => {
                server.delete_object(&kind.gvr(), Some(namespace), name);
                Ok(())
            }
            Cluster::Real {
                client, runtime, ..
            } => {
                let api = Api::<DynamicObject>::namespaced_with(
                    client.clone(),
                    namespace,
                    &kind.resource(),
                );
                runtime.block_on(api.delete(name, &DeleteParams::default()))?;
                Ok(())
            }
        }
    }
}

impl Running {
    /// Where the controller's HTTP API listens.
    pub fn http(&self) -> SocketAddr {
        match self {
            Running::Local(controller) => controller.http,
            Running::Host { http, .. } => *http,
        }
    }

    pub fn args(&self) -> &[String] {
        match self {
            Running::Local(controller) => &controller.args,
            Running::Host { args, .. } => args,
        }
    }

    /// Where the proxy's requests go, in words.
    pub fn reached(&self, namespace: &str, service: &str) -> String {
        let path = format!("/api/v1/namespaces/{namespace}/services/http:{service}:http/proxy/");
        match self {
            Running::Local(controller) => format!(
                "Its HTTP API is on http://{}; the API double's service proxy forwards\n\
                 {path} to it, as a Service would.\nIts log: {}",
                controller.http,
                controller.log.display()
            ),
            Running::Host { host, http, .. } => format!(
                "It runs in the network namespace {} at {http} (a veth pair; the API server reaches\n\
                 it there, never on loopback); a Pod, a Service and an EndpointSlice make the real\n\
                 service proxy forward {path} to it.\nIts log: {}",
                host.netns(),
                host.dir().join("sealbox-controller.log").display()
            ),
        }
    }

    /// Fails, with the end of the controller's log, if it has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        match self {
            Running::Local(controller) => controller.check_running(),
            Running::Host { host, .. } => {
                if let Err(e) = host.check_running("sealbox-controller") {
                    bail!("{e}");
                }
                Ok(())
            }
        }
    }

    pub fn log_tail(&self, lines: usize) -> String {
        match self {
            Running::Local(controller) => controller.log_tail(lines),
            Running::Host { host, .. } => {
                let text = host.log_tail("sealbox-controller");
                let all: Vec<&str> = text.lines().collect();
                all[all.len().saturating_sub(lines)..]
                    .iter()
                    .map(|line| format!("    {line}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
    }
}
