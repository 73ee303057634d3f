//! Field ownership for server-side apply, a lite version of Kubernetes' managedFields.
//!
//! Ownership is tracked per field manager and operation as a set of leaf paths: every scalar,
//! array (lists are atomic here) and empty map under the object's content, plus
//! `metadata.labels.*`, `metadata.annotations.*`, `metadata.ownerReferences` and
//! `metadata.finalizers`. That is enough for the semantics controllers depend on:
//! conflicts between managers, `force`, and removal of fields a manager stops applying.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// A path of map keys from the object root, e.g. `["data", "password"]`.
pub(crate) type FieldPath = Vec<String>;

/// How a manager last wrote its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Operation {
    Apply,
    Update,
}

/// Which part of an object a write may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The whole object.
    All,
    /// Everything but `.status` (main resource of a type with a status subresource).
    AllButStatus,
    /// Only `.status` (the status subresource).
    Status,
}

impl Scope {
    fn contains(self, path: &[String]) -> bool {
        let status = path.first().is_some_and(|p| p == "status");
        match self {
            Self::All => true,
            Self::AllButStatus => !status,
            Self::Status => status,
        }
    }
}

/// Which manager owns which fields of one object.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Managers(BTreeMap<(String, Operation), BTreeSet<FieldPath>>);

/// A field another manager owns with a different value: `(manager, ".path.to.field")`.
pub(crate) type Conflict = (String, String);

impl Managers {
    /// Records a non-apply write (create, update, merge or JSON patch): `manager` takes every
    /// field that changed, whoever owned it before. Updates never conflict.
    pub(crate) fn record_update(&mut self, manager: &str, old: Option<&Value>, new: &Value) {
        let empty = Value::Object(Map::new());
        let old = old.unwrap_or(&empty);
        let changed: BTreeSet<FieldPath> = owned_paths(old, Scope::All)
            .union(&owned_paths(new, Scope::All))
            .filter(|p| value_at(old, p) != value_at(new, p))
            .cloned()
            .collect();
        if changed.is_empty() {
            return;
        }
        for paths in self.0.values_mut() {
            paths.retain(|q| !changed.iter().any(|p| related(p, q)));
        }
        let mine = self
            .0
            .entry((manager.to_owned(), Operation::Update))
            .or_default();
        mine.extend(changed.into_iter().filter(|p| value_at(new, p).is_some()));
        self.retain_existing(new);
    }

    /// Server-side apply of `config` by `manager` over `current` (an empty object when the
    /// apply creates it). Returns the merged object, or the conflicts when `force` is off.
    pub(crate) fn apply(
        &mut self,
        current: &Value,
        config: &Value,
        manager: &str,
        force: bool,
        scope: Scope,
    ) -> Result<Value, Vec<Conflict>> {
        let applied = owned_paths(config, scope);
        let clashes = |q: &FieldPath| {
            applied.iter().any(|p| {
                touches(config, current, p, q) && value_at(config, p) != value_at(current, p)
            })
        };

        let mut conflicts = Vec::new();
        for ((other, _), paths) in &self.0 {
            if other != manager {
                conflicts.extend(
                    paths
                        .iter()
                        .filter(|q| clashes(q))
                        .map(|q| (other.clone(), display(q))),
                );
            }
        }
        if !conflicts.is_empty() {
            if !force {
                return Err(conflicts);
            }
            for ((other, _), paths) in &mut self.0 {
                if other != manager {
                    paths.retain(|q| !clashes(q));
                }
            }
        }

        let key = (manager.to_owned(), Operation::Apply);
        let previous = self.0.get(&key).cloned().unwrap_or_default();
        let mut merged = current.clone();
        for dropped in previous.difference(&applied) {
            let still_wanted = applied.iter().any(|p| touches(config, current, p, dropped));
            let owned_elsewhere = self
                .0
                .iter()
                .filter(|(k, _)| **k != key)
                .any(|(_, paths)| paths.iter().any(|q| related(q, dropped)));
            if !still_wanted && !owned_elsewhere {
                remove_path(&mut merged, dropped);
            }
        }
        merge_config(&mut merged, config, scope);

        self.0.insert(key, applied);
        self.retain_existing(&merged);
        Ok(merged)
    }

    /// Drops ownership of fields that no longer exist, and managers left with nothing.
    fn retain_existing(&mut self, object: &Value) {
        for paths in self.0.values_mut() {
            paths.retain(|p| value_at(object, p).is_some());
        }
        self.0.retain(|_, paths| !paths.is_empty());
    }

    /// The managers and their fields, for debugging and `managedFields`-like views.
    /// `metadata.managedFields` as the API server serves it: one entry per manager and
    /// operation that owns a field, in `FieldsV1` (`{"f:data": {"f:key": {}}}`). No `time`:
    /// the double keeps none, and a time changing on every write would make no-ops writes.
    pub(crate) fn to_managed_fields(&self, api_version: &str) -> Value {
        let entries = self
            .entries()
            .filter(|(_, _, paths)| !paths.is_empty())
            .map(|(manager, operation, paths)| {
                let mut fields = Map::new();
                for path in paths {
                    let mut node = &mut fields;
                    for segment in path {
                        node = match node
                            .entry(format!("f:{segment}"))
                            .or_insert_with(|| Value::Object(Map::new()))
                        {
                            Value::Object(child) => child,
                            // Only objects are inserted above.
                            _ => break,
                        };
                    }
                }
                serde_json::json!({
                    "manager": manager,
                    "operation": match operation {
                        Operation::Apply => "Apply",
                        Operation::Update => "Update",
                    },
                    "apiVersion": api_version,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": fields,
                })
            })
            .collect();
        Value::Array(entries)
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = (&str, Operation, &BTreeSet<FieldPath>)> {
        self.0
            .iter()
            .map(|((m, op), paths)| (m.as_str(), *op, paths))
    }
}

/// Whether one path is a prefix of the other (they name overlapping fields).
fn related(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Whether applying `config`'s field `p` sets the field `q`. An (empty) map in the config
/// claims the map, not the keys others put in it; a key set inside a map another manager
/// claimed is not a change of that map.
fn touches(config: &Value, current: &Value, p: &[String], q: &[String]) -> bool {
    if p.len() < q.len() && q.starts_with(p) {
        !value_at(config, p).is_some_and(Value::is_object)
    } else if q.len() < p.len() && p.starts_with(q) {
        !value_at(current, q).is_some_and(Value::is_object)
    } else {
        p == q
    }
}

/// `.data.password`, the way Kubernetes prints field paths in conflicts.
fn display(path: &[String]) -> String {
    path.iter().map(|p| format!(".{p}")).collect()
}

/// The leaf paths of `object` that ownership tracks, limited to `scope`.
pub(crate) fn owned_paths(object: &Value, scope: Scope) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    let Some(map) = object.as_object() else {
        return out;
    };
    for (key, value) in map {
        match key.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                for field in ["labels", "annotations"] {
                    if let Some(entries) = value.get(field).and_then(Value::as_object) {
                        for entry in entries.keys() {
                            out.insert(vec!["metadata".into(), field.into(), entry.clone()]);
                        }
                    }
                }
                for field in ["ownerReferences", "finalizers"] {
                    if value.get(field).is_some() {
                        out.insert(vec!["metadata".into(), field.into()]);
                    }
                }
            }
            _ => leaves(value, vec![key.clone()], &mut out),
        }
    }
    out.retain(|p| scope.contains(p));
    out
}

fn leaves(value: &Value, path: FieldPath, out: &mut BTreeSet<FieldPath>) {
    match value.as_object() {
        Some(map) if !map.is_empty() => {
            for (key, child) in map {
                let mut child_path = path.clone();
                child_path.push(key.clone());
                leaves(child, child_path, out);
            }
        }
        _ => {
            out.insert(path);
        }
    }
}

pub(crate) fn value_at<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(object, |v, key| v.as_object()?.get(key))
}

/// Removes the field at `path` and any maps the removal leaves empty.
fn remove_path(object: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let Some(parent) = parents
        .iter()
        .try_fold(&mut *object, |v, key| v.as_object_mut()?.get_mut(key))
    else {
        return;
    };
    if let Some(map) = parent.as_object_mut() {
        map.remove(last);
        if map.is_empty() && !parents.is_empty() && parents != ["metadata"] {
            remove_path(object, parents);
        }
    }
}

/// Merges an applied configuration into an object: maps merge key by key, anything else
/// (scalars, lists) replaces, `null` removes.
fn merge_config(object: &mut Value, config: &Value, scope: Scope) {
    let (Some(target), Some(source)) = (object.as_object_mut(), config.as_object()) else {
        return;
    };
    for (key, value) in source {
        if !scope.contains(std::slice::from_ref(key)) {
            continue;
        }
        merge_value(target, key, value);
    }
}

fn merge_value(target: &mut Map<String, Value>, key: &str, value: &Value) {
    match value {
        Value::Null => {
            target.remove(key);
        }
        Value::Object(source) => {
            let slot = target
                .entry(key.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Some(inner) = slot.as_object_mut() {
                for (k, v) in source {
                    merge_value(inner, k, v);
                }
            }
        }
        other => {
            target.insert(key.to_owned(), other.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn secret(data: Value) -> Value {
        json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "s" }, "data": data })
    }

    #[test]
    fn paths_cover_content_and_tracked_metadata() {
        let object = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": { "name": "s", "labels": { "a": "1" }, "ownerReferences": [] },
            "data": { "k": "dg==" },
            "type": "Opaque",
            "spec": {},
        });
        let paths: Vec<String> = owned_paths(&object, Scope::All)
            .iter()
            .map(|p| display(p))
            .collect();
        assert_eq!(
            paths,
            [
                ".data.k",
                ".metadata.labels.a",
                ".metadata.ownerReferences",
                ".spec",
                ".type"
            ]
        );
    }

    #[test]
    fn apply_conflicts_unless_forced() {
        let mut managers = Managers::default();
        let first = managers.apply(
            &json!({}),
            &secret(json!({ "k": "MQ==" })),
            "alice",
            false,
            Scope::All,
        );
        let Ok(object) = first else {
            panic!("first apply: {first:?}")
        };

        // Same value: shared ownership, no conflict.
        assert!(
            managers
                .clone()
                .apply(
                    &object,
                    &secret(json!({ "k": "MQ==" })),
                    "bob",
                    false,
                    Scope::All
                )
                .is_ok()
        );

        let conflict = managers.apply(
            &object,
            &secret(json!({ "k": "Mg==" })),
            "bob",
            false,
            Scope::All,
        );
        assert_eq!(
            conflict,
            Err(vec![("alice".to_owned(), ".data.k".to_owned())])
        );

        let forced = managers.apply(
            &object,
            &secret(json!({ "k": "Mg==" })),
            "bob",
            true,
            Scope::All,
        );
        let Ok(forced) = forced else {
            panic!("forced apply: {forced:?}")
        };
        assert_eq!(forced["data"], json!({ "k": "Mg==" }));
        // alice lost the field: her next apply of the old value conflicts with bob.
        let back = managers.apply(
            &forced,
            &secret(json!({ "k": "MQ==" })),
            "alice",
            false,
            Scope::All,
        );
        assert_eq!(back, Err(vec![("bob".to_owned(), ".data.k".to_owned())]));
    }

    #[test]
    fn apply_removes_fields_the_manager_stopped_applying() {
        let mut managers = Managers::default();
        let object = managers
            .apply(
                &json!({}),
                &secret(json!({ "a": "MQ==", "b": "Mg==" })),
                "me",
                false,
                Scope::All,
            )
            .unwrap_or_default();
        managers.record_update("editor", Some(&object), &{
            let mut edited = object.clone();
            edited["data"]["c"] = json!("Mw==");
            edited
        });
        let mut current = object.clone();
        current["data"]["c"] = json!("Mw==");
        let next = managers.apply(
            &current,
            &secret(json!({ "a": "MQ==" })),
            "me",
            false,
            Scope::All,
        );
        assert_eq!(
            next.ok().map(|o| o["data"].clone()),
            Some(json!({ "a": "MQ==", "c": "Mw==" }))
        );
    }

    #[test]
    fn status_scope_only_touches_status() {
        let mut managers = Managers::default();
        let current = json!({ "spec": { "x": 1 }, "status": { "phase": "old" } });
        let config = json!({ "spec": { "x": 2 }, "status": { "phase": "new" } });
        let merged = managers.apply(&current, &config, "ctl", false, Scope::Status);
        assert_eq!(
            merged,
            Ok(json!({ "spec": { "x": 1 }, "status": { "phase": "new" } }))
        );
    }
}
