//! Checks and normalisations the API server applies to objects before storing them.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use crate::object::{self, meta_str};
use crate::status::ApiError;
use crate::store::Target;

/// An applied configuration must say what it is and which object it is for.
pub(crate) fn check_apply_identity(
    target: &Target,
    name: &str,
    config: &Value,
) -> Result<(), ApiError> {
    if config["apiVersion"].as_str().is_none_or(str::is_empty)
        || config["kind"].as_str().is_none_or(str::is_empty)
    {
        return Err(ApiError::bad_request(
            "apiVersion and kind must be set in an applied configuration",
        ));
    }
    if object::name(config).is_some_and(|n| n != name) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            object::name(config).unwrap_or("")
        )));
    }
    check_namespace(target, config)
}

/// The object's namespace, if it names one, must be the one in the path.
pub(crate) fn check_namespace(target: &Target, object: &Value) -> Result<(), ApiError> {
    match (meta_str(object, "namespace"), &target.namespace) {
        (Some(ns), Some(path_ns)) if target.resource.namespaced && ns != path_ns => {
            Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ))
        }
        _ => Ok(()),
    }
}

/// DNS-subdomain-like names; Events are allowed the dots and digits they use.
pub(crate) fn check_name(target: &Target, name: &str) -> Result<(), ApiError> {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid(
            &target.resource.kind,
            target.subject(name),
            &[(
                "metadata.name".into(),
                format!(
                    "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case \
                     alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
                ),
            )],
        ))
    }
}

/// Secrets: `stringData` is folded into `data`, `type` defaults to `Opaque`, and `data`
/// must be base64.
pub(crate) fn normalize_secret(secret: &mut Value) -> Result<(), ApiError> {
    if !(secret["data"].is_object() || secret["data"].is_null()) {
        return Err(ApiError::bad_request(
            "data must be a map of base64 strings",
        ));
    }
    if let Some(Value::Object(string_data)) =
        secret.as_object_mut().and_then(|m| m.remove("stringData"))
    {
        for (key, value) in string_data {
            let text = value.as_str().unwrap_or_default();
            secret["data"][key] = Value::String(STANDARD.encode(text));
        }
    }
    if secret["type"].as_str().is_none_or(str::is_empty) {
        secret["type"] = Value::String("Opaque".into());
    }
    if let Some(data) = secret["data"].as_object() {
        for (key, value) in data {
            let decodes = value.as_str().is_some_and(|v| STANDARD.decode(v).is_ok());
            if !decodes {
                return Err(ApiError::bad_request(format!(
                    "data[{key}]: illegal base64 data"
                )));
            }
        }
    }
    Ok(())
}

/// For server-side apply, `stringData` becomes `data` before ownership is computed, so the
/// manager owns the `data` keys it wrote.
pub(crate) fn normalize_secret_config(
    target: &Target,
    mut config: Value,
) -> Result<Value, ApiError> {
    if target.resource.is_secret() && config.get("stringData").is_some() {
        let had_type = config.get("type").is_some();
        normalize_secret(&mut config)?;
        if !had_type && let Some(map) = config.as_object_mut() {
            map.remove("type");
        }
    }
    Ok(config)
}

/// `immutable: true` Secrets and ConfigMaps keep their data and the flag forever.
pub(crate) fn check_immutable(
    target: &Target,
    name: &str,
    old: &Value,
    new: &Value,
) -> Result<(), ApiError> {
    if old["immutable"].as_bool() != Some(true) {
        return Ok(());
    }
    let mut problems = Vec::new();
    let forbidden = "Forbidden: field is immutable when `immutable` is set".to_owned();
    for field in ["data", "binaryData"] {
        let empty = |v: &Value| v.is_null() || v.as_object().is_some_and(Map::is_empty);
        let same = old[field] == new[field] || (empty(&old[field]) && empty(&new[field]));
        if !same {
            problems.push((field.to_owned(), forbidden.clone()));
        }
    }
    if new["immutable"].as_bool() != Some(true) {
        problems.push(("immutable".to_owned(), forbidden));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            &target.resource.kind,
            target.subject(name),
            &problems,
        ))
    }
}

/// apps/v1 workloads keep the `spec.selector` they were created with: the real API server
/// refuses any change ("field is immutable"), so an upgrade that changes a Deployment's
/// selector fails there and must fail here. (Only the extensions/v1beta1 and apps/v1beta1
/// versions of old allowed it; the double serves neither.)
pub(crate) fn check_immutable_selector(
    target: &Target,
    name: &str,
    old: &Value,
    new: &Value,
) -> Result<(), ApiError> {
    let selector = &new["spec"]["selector"];
    if old["spec"]["selector"] == *selector {
        return Ok(());
    }
    Err(ApiError::invalid(
        &target.resource.kind,
        target.subject(name),
        &[(
            "spec.selector".to_owned(),
            format!("Invalid value: {selector}: field is immutable"),
        )],
    ))
}
