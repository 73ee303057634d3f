//! A Service of the real API server whose one endpoint is a [`TestHost`], so that the API
//! server's service proxy (`/api/v1/namespaces/NS/services/http:NAME:http/proxy/...`) reaches a
//! process in the host, as kubeseal's and `sealbox cert fetch`'s requests reach a controller
//! pod in a cluster.
//!
//! With no kubelet, the objects a cluster would make are written by the test: the API server
//! proxies only to an EndpointSlice address that is the IP of the Pod its `targetRef` names
//! (Kubernetes 1.37, `pkg/registry/core/service/storage`), so there is a Pod (never scheduled)
//! whose status carries the host's address, a Service without a selector, and an EndpointSlice
//! labelled with the Service's name. The proxy reads EndpointSlices only, not Endpoints.

use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::{Error, RealControlPlane, TestHost};

/// The field manager of everything written here.
const MANAGER: &str = "sealbox-tests";
/// The Service port's name, as deploy/'s Service names the controller's API port (and so as
/// the CLI and kubeseal address it: `http:NAME:http`).
pub const PORT_NAME: &str = "http";

impl RealControlPlane {
    /// Makes Service `namespace/name` (and the namespace, if need be) with one TCP port named
    /// [`PORT_NAME`], number `port`, served by `host` on `host.address():port`. Applied
    /// server-side, so calling it again (another host, another port) moves the Service.
    pub async fn expose_service(
        &self,
        namespace: &str,
        name: &str,
        port: u16,
        host: &TestHost,
    ) -> Result<(), Error> {
        let client = self.client().await?;
        let apply = PatchParams::apply(MANAGER).force();
        let failed = |what: String| move |source| Error::Expose { what, source };
        let address = host.address().to_string();
        let pod_name = format!("{name}-{}", host.name());

        Api::<Namespace>::all(client.clone())
            .patch(
                namespace,
                &apply,
                &Patch::Apply(json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": namespace}})),
            )
            .await
            .map_err(failed(format!("namespace {namespace}")))?;

        let pods = Api::<Pod>::namespaced(client.clone(), namespace);
        pods.patch(&pod_name, &apply, &Patch::Apply(pod(&pod_name, name)))
            .await
            .map_err(failed(format!("Pod {namespace}/{pod_name}")))?;
        pods.patch_status(
            &pod_name,
            &apply,
            &Patch::Apply(pod_status(&pod_name, &address)),
        )
        .await
        .map_err(failed(format!("the status of Pod {namespace}/{pod_name}")))?;

        Api::<Service>::namespaced(client.clone(), namespace)
            .patch(name, &apply, &Patch::Apply(service(name, port)))
            .await
            .map_err(failed(format!("Service {namespace}/{name}")))?;

        let slice = endpoint_slice(namespace, name, &pod_name, &address, port);
        Api::<EndpointSlice>::namespaced(client, namespace)
            .patch(name, &apply, &Patch::Apply(slice))
            .await
            .map_err(failed(format!("EndpointSlice {namespace}/{name}")))?;
        Ok(())
    }
}

/// The Pod standing for the host: never scheduled (there is no scheduler), its image never
/// pulled; hardened so a namespace enforcing the `restricted` Pod Security Standard admits it.
fn pod(name: &str, service: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"sealbox.dev/test-host-for": service}},
        "spec": {
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "host",
                "image": "registry.invalid/sealbox-test-host:0",
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"]}
                }
            }]
        }
    })
}

/// What a kubelet would report for the host's Pod: running, ready, at the host's address.
fn pod_status(name: &str, address: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "status": {
            "phase": "Running",
            "podIP": address,
            "podIPs": [{"ip": address}],
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    })
}

/// A Service without a selector: its endpoints are the EndpointSlice's, written by the test.
fn service(name: &str, port: u16) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "type": "ClusterIP",
            "ports": [{"name": PORT_NAME, "port": port, "targetPort": port, "protocol": "TCP"}]
        }
    })
}

/// The Service's one endpoint: `address`, Pod `pod`. The `managed-by` label keeps the
/// EndpointSlice controllers off it (none runs here; a cluster's would).
fn endpoint_slice(
    namespace: &str,
    service: &str,
    pod: &str,
    address: &str,
    port: u16,
) -> serde_json::Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {
            "name": service,
            "labels": {
                "kubernetes.io/service-name": service,
                "endpointslice.kubernetes.io/managed-by": MANAGER
            }
        },
        "addressType": "IPv4",
        "endpoints": [{
            "addresses": [address],
            "conditions": {"ready": true},
            "targetRef": {"kind": "Pod", "namespace": namespace, "name": pod}
        }],
        "ports": [{"name": PORT_NAME, "port": port, "protocol": "TCP"}]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields the API server's proxy reads (storage.go's ResourceLocation and
    /// isValidAddress) line up: the port name, the Service label, the Pod the endpoint names and
    /// the Pod's IP.
    #[test]
    fn the_endpoint_slice_names_the_pod_whose_ip_it_carries() {
        let slice = endpoint_slice("kube-system", "ctl", "ctl-h", "10.213.0.2", 8080);
        let status = pod_status("ctl-h", "10.213.0.2");
        let service = service("ctl", 8080);
        assert_eq!(
            slice["metadata"]["labels"]["kubernetes.io/service-name"],
            "ctl"
        );
        assert_eq!(
            slice["ports"][0]["name"],
            service["spec"]["ports"][0]["name"]
        );
        assert_eq!(slice["ports"][0]["port"], 8080);
        let endpoint = &slice["endpoints"][0];
        assert_eq!(endpoint["targetRef"]["name"], status["metadata"]["name"]);
        assert_eq!(endpoint["targetRef"]["namespace"], "kube-system");
        assert_eq!(
            endpoint["addresses"][0],
            status["status"]["podIPs"][0]["ip"]
        );
        assert!(service["spec"].get("selector").is_none());
        // The objects deserialize into their types (field names and shapes are right).
        let _: EndpointSlice = serde_json::from_value(slice).expect("an EndpointSlice");
        let _: Pod = serde_json::from_value(status).expect("a Pod");
        let _: Service = serde_json::from_value(service).expect("a Service");
    }
}
