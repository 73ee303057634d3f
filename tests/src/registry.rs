//! Which resources the double serves: a fixed set of built-ins plus whatever CRDs register.

use std::sync::Arc;

use serde_json::Value;

use crate::status::ApiError;

/// One served resource: what discovery advertises and what storage needs to know.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ResourceType {
    pub(crate) group: String,
    /// Served versions, preferred first. Storage is version-agnostic: objects are the same
    /// JSON whatever version they are read through (no conversion).
    pub(crate) versions: Vec<String>,
    pub(crate) plural: String,
    pub(crate) singular: String,
    pub(crate) kind: String,
    pub(crate) namespaced: bool,
    pub(crate) short_names: Vec<String>,
    pub(crate) categories: Vec<String>,
    pub(crate) status_subresource: bool,
    /// Whether `metadata.generation` is maintained (custom resources, CRDs, workloads).
    pub(crate) generation: bool,
    /// Per version `openAPIV3Schema`, only for custom resources.
    pub(crate) schemas: Vec<(String, Value)>,
    /// Per version `additionalPrinterColumns`, only for custom resources.
    pub(crate) printer_columns: Vec<(String, Value)>,
    /// The CRD that registered this type, if any.
    pub(crate) crd: Option<String>,
}

impl ResourceType {
    fn builtin(group: &str, version: &str, plural: &str, kind: &str, namespaced: bool) -> Self {
        Self {
            group: group.to_owned(),
            versions: vec![version.to_owned()],
            plural: plural.to_owned(),
            singular: kind.to_lowercase(),
            kind: kind.to_owned(),
            namespaced,
            short_names: Vec::new(),
            categories: Vec::new(),
            status_subresource: false,
            generation: false,
            schemas: Vec::new(),
            printer_columns: Vec::new(),
            crd: None,
        }
    }

    fn short(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|n| (*n).to_owned()).collect();
        self
    }

    fn with_status(mut self) -> Self {
        self.status_subresource = true;
        self
    }

    fn with_generation(mut self) -> Self {
        self.generation = true;
        self
    }

    /// `v1` for the core group, `group/version` otherwise.
    pub(crate) fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_owned()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    pub(crate) fn preferred_version(&self) -> &str {
        self.versions.first().map_or("v1", String::as_str)
    }

    pub(crate) fn schema(&self, version: &str) -> Option<&Value> {
        self.schemas
            .iter()
            .find(|(v, _)| v == version)
            .map(|(_, s)| s)
    }

    pub(crate) fn printer_columns(&self, version: &str) -> Option<&Value> {
        self.printer_columns
            .iter()
            .find(|(v, _)| v == version)
            .map(|(_, s)| s)
    }

    pub(crate) fn is_secret(&self) -> bool {
        self.group.is_empty() && self.plural == "secrets"
    }

    pub(crate) fn is_crd(&self) -> bool {
        self.group == "apiextensions.k8s.io" && self.plural == "customresourcedefinitions"
    }

    pub(crate) fn is_namespace(&self) -> bool {
        self.group.is_empty() && self.plural == "namespaces"
    }

    /// Whether `spec.selector` is fixed at creation, as for apps/v1 workloads.
    pub(crate) fn has_immutable_selector(&self) -> bool {
        self.group == "apps"
            && matches!(
                self.plural.as_str(),
                "deployments" | "replicasets" | "statefulsets" | "daemonsets"
            )
    }

    /// Whether the resource has the `immutable` flag of Secrets and ConfigMaps.
    pub(crate) fn has_immutable_data(&self) -> bool {
        self.group.is_empty() && (self.plural == "secrets" || self.plural == "configmaps")
    }
}

/// All served resource types.
#[derive(Debug, Clone)]
pub(crate) struct Registry {
    types: Vec<Arc<ResourceType>>,
}

impl Default for Registry {
    fn default() -> Self {
        let b = ResourceType::builtin;
        let types = vec![
            b("", "v1", "namespaces", "Namespace", false)
                .short(&["ns"])
                .with_status(),
            b("", "v1", "secrets", "Secret", true),
            b("", "v1", "configmaps", "ConfigMap", true).short(&["cm"]),
            b("", "v1", "services", "Service", true)
                .short(&["svc"])
                .with_status(),
            b("", "v1", "serviceaccounts", "ServiceAccount", true).short(&["sa"]),
            b("", "v1", "events", "Event", true).short(&["ev"]),
            b("", "v1", "pods", "Pod", true)
                .short(&["po"])
                .with_status(),
            b("apps", "v1", "deployments", "Deployment", true)
                .short(&["deploy"])
                .with_status()
                .with_generation(),
            b(
                "policy",
                "v1",
                "poddisruptionbudgets",
                "PodDisruptionBudget",
                true,
            )
            .short(&["pdb"])
            .with_status()
            .with_generation(),
            b(
                "networking.k8s.io",
                "v1",
                "networkpolicies",
                "NetworkPolicy",
                true,
            )
            .short(&["netpol"])
            .with_generation(),
            b("events.k8s.io", "v1", "events", "Event", true).short(&["ev"]),
            b("coordination.k8s.io", "v1", "leases", "Lease", true),
            b(
                "rbac.authorization.k8s.io",
                "v1",
                "clusterroles",
                "ClusterRole",
                false,
            ),
            b(
                "rbac.authorization.k8s.io",
                "v1",
                "clusterrolebindings",
                "ClusterRoleBinding",
                false,
            ),
            b("rbac.authorization.k8s.io", "v1", "roles", "Role", true),
            b(
                "rbac.authorization.k8s.io",
                "v1",
                "rolebindings",
                "RoleBinding",
                true,
            ),
            b(
                "apiextensions.k8s.io",
                "v1",
                "customresourcedefinitions",
                "CustomResourceDefinition",
                false,
            )
            .short(&["crd", "crds"])
            .with_status()
            .with_generation(),
        ];
        Self {
            types: types.into_iter().map(Arc::new).collect(),
        }
    }
}

impl Registry {
    /// The type served at `group/version` under `plural`.
    pub(crate) fn find(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<Arc<ResourceType>> {
        self.types
            .iter()
            .find(|t| {
                t.group == group && t.plural == plural && t.versions.iter().any(|v| v == version)
            })
            .cloned()
    }

    /// The type of `group` named `plural`, whatever its versions.
    pub(crate) fn find_any_version(&self, group: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.types
            .iter()
            .find(|t| t.group == group && t.plural == plural)
            .cloned()
    }

    /// Whether anything is served at `group/version`.
    pub(crate) fn serves(&self, group: &str, version: &str) -> bool {
        self.types
            .iter()
            .any(|t| t.group == group && t.versions.iter().any(|v| v == version))
    }

    pub(crate) fn types(&self) -> &[Arc<ResourceType>] {
        &self.types
    }

    /// Groups in registration order, each with its versions (preferred first).
    pub(crate) fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for t in &self.types {
            if !groups.iter().any(|(g, _)| *g == t.group) {
                groups.push((t.group.clone(), Vec::new()));
            }
            if let Some((_, versions)) = groups.iter_mut().find(|(g, _)| *g == t.group) {
                for v in &t.versions {
                    if !versions.contains(v) {
                        versions.push(v.clone());
                    }
                }
            }
        }
        groups
    }

    /// Changes whenever the set of served types does, for cache-busting URLs.
    pub(crate) fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for t in &self.types {
            (&t.group, &t.versions, &t.plural, t.namespaced).hash(&mut hasher);
        }
        hasher.finish()
    }

    /// Registers (or re-registers) the custom resource a CRD describes.
    pub(crate) fn register_crd(&mut self, crd: &Value) -> Result<(), ApiError> {
        let resource = Arc::new(crd_resource_type(crd)?);
        if let Some(existing) = self
            .types
            .iter()
            .position(|t| t.group == resource.group && t.plural == resource.plural)
        {
            if self.types[existing].crd.is_none() {
                return Err(ApiError::bad_request(format!(
                    "{}.{} is a built-in resource",
                    resource.plural, resource.group
                )));
            }
            self.types[existing] = resource;
        } else {
            self.types.push(resource);
        }
        Ok(())
    }

    /// Forgets the custom resource a deleted CRD described.
    pub(crate) fn unregister_crd(&mut self, crd_name: &str) -> Option<Arc<ResourceType>> {
        let position = self
            .types
            .iter()
            .position(|t| t.crd.as_deref() == Some(crd_name))?;
        Some(self.types.remove(position))
    }
}

/// Reads the served type out of an `apiextensions.k8s.io/v1` CRD.
pub(crate) fn crd_resource_type(crd: &Value) -> Result<ResourceType, ApiError> {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().filter_map(text).collect())
            .unwrap_or_default()
    };
    let spec = &crd["spec"];
    let names = &spec["names"];
    let invalid =
        |what: &str| ApiError::bad_request(format!("invalid CustomResourceDefinition: {what}"));
    let group = text(&spec["group"]).ok_or_else(|| invalid("spec.group is required"))?;
    let plural = text(&names["plural"]).ok_or_else(|| invalid("spec.names.plural is required"))?;
    let kind = text(&names["kind"]).ok_or_else(|| invalid("spec.names.kind is required"))?;
    let expected_name = format!("{plural}.{group}");
    if crd["metadata"]["name"].as_str() != Some(expected_name.as_str()) {
        return Err(invalid(&format!("metadata.name must be {expected_name}")));
    }
    let namespaced = match spec["scope"].as_str() {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        _ => return Err(invalid("spec.scope must be Namespaced or Cluster")),
    };
    let mut versions: Vec<String> = Vec::new();
    let mut schemas = Vec::new();
    let mut printer_columns = Vec::new();
    let mut status_subresource = false;
    let mut storage_first: Option<String> = None;
    for version in spec["versions"].as_array().into_iter().flatten() {
        let Some(name) = text(&version["name"]) else {
            continue;
        };
        if version["served"].as_bool() == Some(false) {
            continue;
        }
        if version["storage"].as_bool() == Some(true) {
            storage_first = Some(name.clone());
        }
        if version["subresources"]["status"].is_object() {
            status_subresource = true;
        }
        if let Some(schema) = version["schema"].get("openAPIV3Schema") {
            schemas.push((name.clone(), schema.clone()));
        }
        if let Some(columns) = version.get("additionalPrinterColumns") {
            printer_columns.push((name.clone(), columns.clone()));
        }
        versions.push(name);
    }
    if versions.is_empty() {
        return Err(invalid(
            "spec.versions must name at least one served version",
        ));
    }
    if let Some(storage) = storage_first
        && let Some(i) = versions.iter().position(|v| *v == storage)
    {
        let preferred = versions.remove(i);
        versions.insert(0, preferred);
    }
    Ok(ResourceType {
        singular: text(&names["singular"]).unwrap_or_else(|| kind.to_lowercase()),
        short_names: strings(&names["shortNames"]),
        categories: strings(&names["categories"]),
        crd: Some(expected_name),
        group,
        versions,
        plural,
        kind,
        namespaced,
        status_subresource,
        generation: true,
        schemas,
        printer_columns,
    })
}
