//! Structural-schema checks for custom resources: types, `required`, `enum`, and pruning of
//! unknown fields unless `x-kubernetes-preserve-unknown-fields` says otherwise.
//!
//! A deliberately small subset of what the API server does: no formats, patterns, CEL
//! rules, defaults or numeric bounds.

use serde_json::Value;

/// Validates `object` against a CRD version's `openAPIV3Schema`, pruning unknown fields in
/// place. Returns `(field path, problem)` pairs; empty means valid.
pub(crate) fn validate_and_prune(schema: &Value, object: &mut Value) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let Some(map) = object.as_object_mut() else {
        problems.push((
            String::new(),
            "Invalid value: the object must be a map".to_owned(),
        ));
        return problems;
    };
    let properties = schema.get("properties").and_then(Value::as_object);
    let preserve = preserves_unknown(schema);
    map.retain(|key, _| {
        matches!(key.as_str(), "apiVersion" | "kind" | "metadata")
            || preserve
            || properties.is_some_and(|p| p.contains_key(key))
    });
    for (key, value) in map.iter_mut() {
        if matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if let Some(child) = properties.and_then(|p| p.get(key)) {
            check(child, value, key, &mut problems);
        }
    }
    required(schema, object, "", &mut problems);
    problems
}

fn preserves_unknown(schema: &Value) -> bool {
    schema["x-kubernetes-preserve-unknown-fields"].as_bool() == Some(true)
}

fn check(schema: &Value, value: &mut Value, path: &str, problems: &mut Vec<(String, String)>) {
    if value.is_null() {
        // Nulls inside objects are dropped by the parent, as pruning does.
        return;
    }
    if schema["x-kubernetes-int-or-string"].as_bool() == Some(true) {
        if !(value.is_i64() || value.is_u64() || value.is_string()) {
            problems.push(type_problem(path, value, "integer or string"));
        }
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        let listed: Vec<String> = allowed.iter().map(Value::to_string).collect();
        problems.push((
            path.to_owned(),
            format!(
                "Unsupported value: {value}: supported values: {}",
                listed.join(", ")
            ),
        ));
    }
    match schema["type"].as_str() {
        Some("object") => {
            let Some(map) = value.as_object_mut() else {
                problems.push(type_problem(path, value, "object"));
                return;
            };
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let keep_unknown = preserves_unknown(schema)
                || additional.is_some_and(|a| a.is_object() || a.as_bool() == Some(true));
            map.retain(|key, v| {
                let known = properties.is_some_and(|p| p.contains_key(key));
                (known || keep_unknown) && !v.is_null()
            });
            for (key, child) in map.iter_mut() {
                let child_path = format!("{path}.{key}");
                match properties.and_then(|p| p.get(key)) {
                    Some(child_schema) => check(child_schema, child, &child_path, problems),
                    None => {
                        if let Some(additional) = additional.filter(|a| a.is_object()) {
                            check(additional, child, &child_path, problems);
                        }
                    }
                }
            }
            required(schema, value, path, problems);
        }
        Some("array") => {
            let Some(items) = value.as_array_mut() else {
                problems.push(type_problem(path, value, "array"));
                return;
            };
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    check(item_schema, item, &format!("{path}[{i}]"), problems);
                }
            }
        }
        Some("string") if !value.is_string() => problems.push(type_problem(path, value, "string")),
        Some("integer") if !is_integer(value) => {
            problems.push(type_problem(path, value, "integer"))
        }
        Some("number") if !value.is_number() => problems.push(type_problem(path, value, "number")),
        Some("boolean") if !value.is_boolean() => {
            problems.push(type_problem(path, value, "boolean"))
        }
        _ => {}
    }
}

fn required(schema: &Value, value: &Value, path: &str, problems: &mut Vec<(String, String)>) {
    for field in schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if value.get(field).is_none_or(Value::is_null) {
            let field_path = if path.is_empty() {
                field.to_owned()
            } else {
                format!("{path}.{field}")
            };
            problems.push((field_path, "Required value".to_owned()));
        }
    }
}

fn is_integer(value: &Value) -> bool {
    value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_problem(path: &str, value: &Value, expected: &str) -> (String, String) {
    let actual = type_name(value);
    (
        path.to_owned(),
        format!(
            "Invalid value: \"{actual}\": {path} in body must be of type {expected}: \"{actual}\""
        ),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["encryptedData"],
                    "properties": {
                        "encryptedData": { "type": "object", "additionalProperties": { "type": "string" } },
                        "template": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
                        "replicas": { "type": "integer" },
                        "mode": { "type": "string", "enum": ["a", "b"] },
                    },
                },
                "status": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
            },
        })
    }

    #[test]
    fn prunes_unknown_fields_and_keeps_preserved_ones() {
        let mut object = json!({
            "apiVersion": "x/v1", "kind": "X", "metadata": { "name": "n" },
            "spec": { "encryptedData": { "k": "v" }, "template": { "anything": 1 }, "bogus": true },
            "junk": 1,
        });
        assert!(validate_and_prune(&schema(), &mut object).is_empty());
        assert_eq!(
            object["spec"],
            json!({ "encryptedData": { "k": "v" }, "template": { "anything": 1 } })
        );
        assert!(object.get("junk").is_none());
    }

    #[test]
    fn reports_types_required_and_enums() {
        let mut object = json!({ "spec": { "replicas": "three", "mode": "c" } });
        let problems = validate_and_prune(&schema(), &mut object);
        let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["spec.mode", "spec.replicas", "spec.encryptedData"]);
        let mut object = json!({ "spec": { "encryptedData": { "k": 1 } } });
        assert_eq!(validate_and_prune(&schema(), &mut object).len(), 1);
    }
}
