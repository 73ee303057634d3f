//! A skeletal OpenAPI v3: the index and, per group-version, the PATCH operations with their
//! query parameters. That is what kubectl reads to decide that the server validates fields
//! itself (`fieldValidation`), so `kubectl apply` works with its default `--validate`.
//! No schemas: `kubectl explain` and client-side validation are out of scope.

use serde_json::{Map, Value, json};

use crate::registry::Registry;

/// `/openapi/v3`: one entry per served group-version.
pub(crate) fn index(registry: &Registry, hash: u64) -> Value {
    let mut paths = Map::new();
    for (group, versions) in registry.groups() {
        for version in versions {
            let key = group_version_path(&group, &version);
            paths.insert(
                key.clone(),
                json!({ "serverRelativeURL": format!("/openapi/v3/{key}?hash={hash:016X}") }),
            );
        }
    }
    json!({ "paths": paths })
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/<group>/<version>`, if served.
pub(crate) fn group_version(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    if !registry.serves(group, version) {
        return None;
    }
    let prefix = group_version_path(group, version);
    let mut paths = Map::new();
    for t in registry
        .types()
        .iter()
        .filter(|t| t.group == group && t.versions.iter().any(|v| v == version))
    {
        let collection = if t.namespaced {
            format!("/{prefix}/namespaces/{{namespace}}/{}", t.plural)
        } else {
            format!("/{prefix}/{}", t.plural)
        };
        let parameters: Vec<Value> = ["dryRun", "fieldManager", "fieldValidation", "force"]
            .iter()
            .map(|name| json!({ "name": name, "in": "query", "schema": { "type": "string" } }))
            .collect();
        let patch = json!({
            "operationId": format!("patch{}", t.kind),
            "parameters": parameters,
            "responses": { "200": { "description": "OK" } },
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": { "group": group, "version": version, "kind": t.kind },
        });
        paths.insert(format!("{collection}/{{name}}"), json!({ "patch": patch }));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": "v1.33.0" },
        "paths": paths,
        "components": { "schemas": {} },
    }))
}

fn group_version_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}
