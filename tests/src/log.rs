//! The request log: what clients asked for, in the terms RBAC uses.

use std::collections::BTreeSet;

/// One request the double answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// HTTP method, upper case.
    pub method: String,
    /// URL path without the query.
    pub path: String,
    /// The query string, without `?` (empty if none).
    pub query: String,
    /// Kubernetes RBAC verb: get, list, watch, create, update, patch, delete,
    /// deletecollection; `get` for non-resource paths such as `/api` or `/version`.
    pub verb: String,
    /// API group, empty for the core group.
    pub group: String,
    /// Resource, with the subresource if any (`sealedsecrets/status`); empty for
    /// non-resource paths.
    pub resource: String,
    /// Namespace from the path, if any.
    pub namespace: Option<String>,
    /// Object name from the path, if any.
    pub name: Option<String>,
    /// HTTP status of the response (200 for watches that started).
    pub status: u16,
}

impl RequestRecord {
    /// Whether this was a request for an API resource (as opposed to discovery and the like).
    pub fn is_resource_request(&self) -> bool {
        !self.resource.is_empty()
    }
}

/// `(group, resource, verb)` for every resource request in `log`.
pub(crate) fn rbac_summary(log: &[RequestRecord]) -> BTreeSet<(String, String, String)> {
    log.iter()
        .filter(|r| r.is_resource_request())
        .map(|r| (r.group.clone(), r.resource.clone(), r.verb.clone()))
        .collect()
}
