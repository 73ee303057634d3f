//! `meta.k8s.io/v1` Tables, the server-side printing `kubectl get` asks for.
//!
//! Columns are Name, the CRD's `additionalPrinterColumns` (simple JSONPaths only) and Age.

use serde_json::{Map, Value, json};

use crate::object::partial_metadata;
use crate::registry::ResourceType;

pub(crate) fn table(
    resource: &ResourceType,
    version: &str,
    items: &[Value],
    metadata: Map<String, Value>,
) -> Value {
    let printer_columns: Vec<&Value> = resource
        .printer_columns(version)
        .and_then(Value::as_array)
        .map(|columns| {
            columns
                .iter()
                .filter(|c| c["priority"].as_i64().unwrap_or(0) == 0)
                .collect()
        })
        .unwrap_or_default();
    let age_is_printed = printer_columns
        .iter()
        .any(|c| c["jsonPath"] == ".metadata.creationTimestamp");

    let mut definitions = vec![column("Name", "string", "name")];
    definitions.extend(printer_columns.iter().map(|c| {
        let kind = c["type"].as_str().unwrap_or("string");
        column(
            c["name"].as_str().unwrap_or(""),
            if kind == "date" { "string" } else { kind },
            "",
        )
    }));
    if !age_is_printed {
        definitions.push(column("Age", "string", ""));
    }

    let rows: Vec<Value> = items
        .iter()
        .map(|item| {
            let mut cells = vec![item["metadata"]["name"].clone()];
            for c in &printer_columns {
                let path = c["jsonPath"].as_str().unwrap_or("");
                let value = lookup(item, path).cloned().unwrap_or(Value::Null);
                let cell = if c["type"] == "date" {
                    Value::String(age(value.as_str()))
                } else {
                    value
                };
                cells.push(cell);
            }
            if !age_is_printed {
                cells.push(Value::String(age(
                    item["metadata"]["creationTimestamp"].as_str()
                )));
            }
            json!({ "cells": cells, "object": partial_metadata(item) })
        })
        .collect();

    json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "Table",
        "metadata": metadata,
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

fn column(name: &str, kind: &str, format: &str) -> Value {
    json!({ "name": name, "type": kind, "format": format, "description": "", "priority": 0 })
}

/// Evaluates `.a.b[0].c`.
fn lookup<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut current = object;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (field, indexes) = part
            .split_once('[')
            .map_or((part, ""), |(f, rest)| (f, rest));
        if !field.is_empty() {
            current = current.get(field)?;
        }
        for index in indexes.split('[').filter(|i| !i.is_empty()) {
            let index: usize = index.trim_end_matches(']').parse().ok()?;
            current = current.get(index)?;
        }
    }
    Some(current)
}

/// `kubectl`'s short age: `42s`, `5m`, `3h`, `12d`.
fn age(timestamp: Option<&str>) -> String {
    let Some(then) = timestamp.and_then(|t| t.parse::<jiff::Timestamp>().ok()) else {
        return "<unknown>".to_owned();
    };
    let seconds = jiff::Timestamp::now()
        .as_second()
        .saturating_sub(then.as_second())
        .max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_follows_fields_and_indexes() {
        let object = json!({ "status": { "conditions": [{ "message": "ok" }] } });
        assert_eq!(
            lookup(&object, ".status.conditions[0].message"),
            Some(&json!("ok"))
        );
        assert_eq!(lookup(&object, ".status.missing"), None);
    }
}
