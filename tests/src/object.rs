//! Small helpers over objects as JSON: metadata access, generated values, response shapes.

use serde_json::{Map, Value, json};

use crate::registry::ResourceType;
use crate::status::ApiError;

/// Checks the shape indexing relies on: the object is a map and its `metadata`, if present, too.
/// After this, `object["metadata"]["x"] = ...` cannot panic.
pub(crate) fn check_shape(object: &Value) -> Result<(), ApiError> {
    if !object.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    if !(object["metadata"].is_object() || object["metadata"].is_null()) {
        return Err(ApiError::bad_request("metadata must be an object"));
    }
    Ok(())
}

/// Removes `metadata.<field>`.
pub(crate) fn remove_meta(object: &mut Value, field: &str) -> Option<Value> {
    object.get_mut("metadata")?.as_object_mut()?.remove(field)
}

pub(crate) fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object["metadata"][field].as_str().filter(|s| !s.is_empty())
}

pub(crate) fn name(object: &Value) -> Option<&str> {
    meta_str(object, "name")
}

pub(crate) fn resource_version(object: &Value) -> Option<&str> {
    meta_str(object, "resourceVersion")
}

pub(crate) fn uid(object: &Value) -> Option<&str> {
    meta_str(object, "uid")
}

/// Now, as Kubernetes writes timestamps (`2006-01-02T15:04:05Z`).
pub(crate) fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A random version-4 UUID.
pub(crate) fn new_uid() -> String {
    let hex = |n: usize| -> String {
        (0..n)
            .map(|_| char::from_digit(fastrand::u32(0..16), 16).unwrap_or('0'))
            .collect()
    };
    let variant = char::from_digit(fastrand::u32(8..12), 16).unwrap_or('8');
    format!(
        "{}-{}-4{}-{variant}{}-{}",
        hex(8),
        hex(4),
        hex(3),
        hex(3),
        hex(12)
    )
}

/// Five characters from the alphabet Kubernetes uses for `generateName` suffixes.
pub(crate) fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| char::from(ALPHABET[fastrand::usize(..ALPHABET.len())]))
        .collect()
}

/// The object as served through `version`: the stored JSON with that `apiVersion`.
pub(crate) fn for_version(object: &Value, resource: &ResourceType, version: &str) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.insert(
            "apiVersion".into(),
            Value::String(resource.api_version(version)),
        );
        map.insert("kind".into(), Value::String(resource.kind.clone()));
    }
    object
}

/// An item of a full list: a custom resource's items carry `apiVersion` and `kind` (they are
/// unstructured), a built-in type's do not — the real API server leaves them off, and a client
/// that needs them must not count on them (`sealbox keys backup` once did).
fn list_item(object: &Value, resource: &ResourceType, version: &str) -> Value {
    let mut item = for_version(object, resource, version);
    if resource.crd.is_none()
        && let Some(map) = item.as_object_mut()
    {
        map.remove("apiVersion");
        map.remove("kind");
    }
    item
}

/// The `PartialObjectMetadata` view of an object.
pub(crate) fn partial_metadata(object: &Value) -> Value {
    json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": object["metadata"].clone(),
    })
}

/// How the client asked to see objects, from its `Accept` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum View {
    Full,
    /// `as=PartialObjectMetadata` / `as=PartialObjectMetadataList`.
    Metadata,
    /// `as=Table`, what `kubectl get` asks for.
    Table,
}

impl View {
    pub(crate) fn from_accept(accept: &str) -> Self {
        // The first acceptable media type wins, as in the API server's negotiation.
        for media in accept.split(',') {
            if media.contains("as=PartialObjectMetadata") {
                return Self::Metadata;
            }
            if media.contains("as=Table") {
                return Self::Table;
            }
            if media.trim().starts_with("application/json") || media.trim().starts_with("*/*") {
                return Self::Full;
            }
        }
        Self::Full
    }

    /// Renders one object for this view.
    pub(crate) fn object(self, object: &Value, resource: &ResourceType, version: &str) -> Value {
        match self {
            Self::Metadata => partial_metadata(object),
            Self::Full | Self::Table => for_version(object, resource, version),
        }
    }
}

/// A list response: `SecretList`, `PartialObjectMetadataList` or a `Table`.
pub(crate) fn list(
    view: View,
    resource: &ResourceType,
    version: &str,
    items: &[Value],
    resource_version: u64,
    continue_token: Option<String>,
    remaining: Option<usize>,
) -> Value {
    let mut metadata = Map::new();
    metadata.insert(
        "resourceVersion".into(),
        Value::String(resource_version.to_string()),
    );
    if let Some(token) = continue_token {
        metadata.insert("continue".into(), Value::String(token));
    }
    if let Some(remaining) = remaining {
        metadata.insert("remainingItemCount".into(), json!(remaining));
    }
    match view {
        View::Table => crate::table::table(resource, version, items, metadata),
        View::Metadata => json!({
            "apiVersion": "meta.k8s.io/v1",
            "kind": "PartialObjectMetadataList",
            "metadata": metadata,
            "items": items.iter().map(partial_metadata).collect::<Vec<_>>(),
        }),
        View::Full => json!({
            "apiVersion": resource.api_version(version),
            "kind": format!("{}List", resource.kind),
            "metadata": metadata,
            "items": items.iter().map(|o| list_item(o, resource, version)).collect::<Vec<_>>(),
        }),
    }
}
