//! What a request path addresses, parsed the way the API server's RequestInfo does.

use http::Method;

/// A parsed request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    Version,
    /// `/api`
    CoreVersions,
    /// `/api/v1`
    CoreResources(String),
    /// `/apis`
    Groups,
    /// `/apis/<group>`
    Group(String),
    /// `/apis/<group>/<version>`
    GroupResources(String, String),
    /// `/openapi/v3`
    OpenApiIndex,
    /// `/openapi/v3/api/<version>` or `/openapi/v3/apis/<group>/<version>`
    OpenApiGroupVersion(String, String),
    /// Other `/openapi/...` paths (v2 is not served).
    OpenApi,
    /// `/healthz`, `/livez`, `/readyz`
    Health,
    Resource(ResourcePath),
    Unknown,
}

/// A path under `/api/v1` or `/apis/<group>/<version>` naming a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResourcePath {
    pub(crate) group: String,
    pub(crate) version: String,
    pub(crate) namespace: Option<String>,
    pub(crate) resource: String,
    pub(crate) name: Option<String>,
    pub(crate) subresource: Option<String>,
    /// What follows the subresource, e.g. `v1/cert.pem` in `.../services/x/proxy/v1/cert.pem`.
    pub(crate) tail: String,
}

impl ResourcePath {
    /// `secrets`, or `sealedsecrets/status` for a subresource.
    pub(crate) fn resource_with_subresource(&self) -> String {
        match &self.subresource {
            Some(sub) => format!("{}/{sub}", self.resource),
            None => self.resource.clone(),
        }
    }
}

/// Namespace subresources, which are not namespaced paths: `/api/v1/namespaces/x/status`.
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

impl Route {
    pub(crate) fn parse(path: &str) -> Self {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        match segments.as_slice() {
            ["version"] => Self::Version,
            ["healthz" | "livez" | "readyz", ..] => Self::Health,
            ["openapi", "v3"] => Self::OpenApiIndex,
            ["openapi", "v3", "api", version] => {
                Self::OpenApiGroupVersion(String::new(), (*version).to_owned())
            }
            ["openapi", "v3", "apis", group, version] => {
                Self::OpenApiGroupVersion((*group).to_owned(), (*version).to_owned())
            }
            ["openapi", ..] => Self::OpenApi,
            ["api"] => Self::CoreVersions,
            ["api", version] => Self::CoreResources((*version).to_owned()),
            ["api", version, rest @ ..] => resource("", version, rest),
            ["apis"] => Self::Groups,
            ["apis", group] => Self::Group((*group).to_owned()),
            ["apis", group, version] => {
                Self::GroupResources((*group).to_owned(), (*version).to_owned())
            }
            ["apis", group, version, rest @ ..] => resource(group, version, rest),
            _ => Self::Unknown,
        }
    }
}

fn resource(group: &str, version: &str, rest: &[&str]) -> Route {
    let (namespace, rest) = match rest {
        ["namespaces", namespace, tail @ ..]
            if !tail.is_empty() && !NAMESPACE_SUBRESOURCES.contains(&tail[0]) =>
        {
            (Some((*namespace).to_owned()), tail)
        }
        _ => (None, rest),
    };
    let Some((resource, rest)) = rest.split_first() else {
        return Route::Unknown;
    };
    Route::Resource(ResourcePath {
        group: group.to_owned(),
        version: version.to_owned(),
        namespace,
        resource: (*resource).to_owned(),
        name: rest.first().map(|s| (*s).to_owned()),
        subresource: rest.get(1).map(|s| (*s).to_owned()),
        tail: rest.get(2..).map(|t| t.join("/")).unwrap_or_default(),
    })
}

/// The RBAC verb of a resource request.
pub(crate) fn verb(method: &Method, path: &ResourcePath, watch: bool) -> &'static str {
    let named = path.name.is_some();
    match *method {
        Method::GET | Method::HEAD if watch => "watch",
        Method::GET | Method::HEAD if named => "get",
        Method::GET | Method::HEAD => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource_path(path: &str) -> Option<ResourcePath> {
        match Route::parse(path) {
            Route::Resource(p) => Some(p),
            _ => None,
        }
    }

    #[test]
    fn parses_namespaced_cluster_and_subresource_paths() {
        let p = resource_path("/apis/bitnami.com/v1alpha1/namespaces/app/sealedsecrets/s/status");
        assert_eq!(
            p.as_ref().map(|p| p.resource_with_subresource()),
            Some("sealedsecrets/status".into())
        );
        assert_eq!(p.and_then(|p| p.namespace), Some("app".into()));

        let ns = resource_path("/api/v1/namespaces/app");
        assert_eq!(
            ns.as_ref()
                .map(|p| (p.resource.as_str(), p.name.as_deref())),
            Some(("namespaces", Some("app")))
        );
        let ns_status = resource_path("/api/v1/namespaces/app/status");
        assert_eq!(ns_status.and_then(|p| p.subresource), Some("status".into()));

        let all = resource_path("/api/v1/secrets");
        assert_eq!(all.map(|p| (p.namespace, p.name)), Some((None, None)));
        assert_eq!(
            Route::parse("/apis/coordination.k8s.io/v1"),
            Route::GroupResources("coordination.k8s.io".into(), "v1".into())
        );
    }
}
