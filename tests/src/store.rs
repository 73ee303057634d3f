//! Storage: objects as JSON keyed by (group, resource, namespace, name), one global
//! resourceVersion counter, and the change history watches replay from.
//!
//! Every write goes through [`Store::commit`], which keeps what the API server owns
//! (`uid`, `creationTimestamp`, `generation`, `deletionTimestamp`), refuses edits Kubernetes
//! refuses, and skips writes that change nothing: no new resourceVersion, no watch event.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::fields::{Managers, Scope};
use crate::object::{self, check_shape, meta_str, remove_meta};
use crate::registry::{Registry, ResourceType, crd_resource_type};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::{ApiError, Subject};
use crate::validation::{
    check_apply_identity, check_immutable, check_immutable_selector, check_name, check_namespace,
    normalize_secret, normalize_secret_config,
};

/// How many changes watches can replay before the oldest are forgotten (like the API
/// server's watch cache window).
const HISTORY_LIMIT: usize = 50_000;

/// Where an object lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ObjectKey {
    pub(crate) group: String,
    pub(crate) resource: String,
    /// Empty for cluster-scoped objects.
    pub(crate) namespace: String,
    pub(crate) name: String,
}

#[derive(Debug, Clone)]
struct Entry {
    object: Value,
    managers: Managers,
}

/// The kind of a recorded change, as watch events name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeType {
    Added,
    Modified,
    Deleted,
}

/// One committed change, kept for watch replay.
#[derive(Debug)]
pub(crate) struct Change {
    pub(crate) resource_version: u64,
    pub(crate) group: String,
    pub(crate) resource: String,
    pub(crate) namespace: String,
    pub(crate) kind: ChangeType,
    pub(crate) object: Value,
    /// The object before a modification, so selector-filtered watches can tell an object
    /// entering or leaving the selection.
    pub(crate) previous: Option<Value>,
}

/// What a request is about: a resource type, the version it was addressed through, and the
/// namespace from the path (`None` for cluster-scoped types and all-namespace lists).
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) resource: Arc<ResourceType>,
    pub(crate) version: String,
    pub(crate) namespace: Option<String>,
}

impl Target {
    fn key(&self, name: &str) -> ObjectKey {
        ObjectKey {
            group: self.resource.group.clone(),
            resource: self.resource.plural.clone(),
            namespace: self.namespace.clone().unwrap_or_default(),
            name: name.to_owned(),
        }
    }

    pub(crate) fn subject<'a>(&'a self, name: &'a str) -> Subject<'a> {
        Subject {
            group: &self.resource.group,
            resource: &self.resource.plural,
            name,
        }
    }
}

/// Options shared by writes.
#[derive(Debug, Clone, Default)]
pub(crate) struct WriteOptions {
    pub(crate) manager: String,
    pub(crate) dry_run: bool,
    /// The write addresses the `/status` subresource.
    pub(crate) status: bool,
}

/// The body of a PATCH.
#[derive(Debug, Clone)]
pub(crate) enum PatchBody {
    /// `application/merge-patch+json`, and strategic merge patches treated the same way.
    Merge(Value),
    /// `application/json-patch+json`.
    Json(json_patch::Patch),
    /// `application/apply-patch+yaml`: server-side apply.
    Apply { config: Value, force: bool },
}

/// How dependents of a deleted object are treated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Propagation {
    #[default]
    Background,
    Foreground,
    Orphan,
}

/// `DeleteOptions`, the parts the double honours.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeleteOptions {
    pub(crate) dry_run: bool,
    pub(crate) propagation: Propagation,
    pub(crate) precondition_uid: Option<String>,
    pub(crate) precondition_resource_version: Option<String>,
}

/// List parameters.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListQuery {
    pub(crate) labels: LabelSelector,
    pub(crate) fields: FieldSelector,
    pub(crate) limit: Option<usize>,
    pub(crate) continue_token: Option<String>,
    pub(crate) resource_version: Option<String>,
    pub(crate) exact: bool,
}

/// One page of a list.
#[derive(Debug, Clone)]
pub(crate) struct ListPage {
    pub(crate) items: Vec<Value>,
    pub(crate) resource_version: u64,
    pub(crate) continue_token: Option<String>,
    pub(crate) remaining: Option<usize>,
}

/// All objects, the registry of served types, and the change history.
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) registry: Registry,
    objects: BTreeMap<ObjectKey, Entry>,
    resource_version: u64,
    history: VecDeque<Arc<Change>>,
    /// Changes at or below this resourceVersion can no longer be replayed.
    compacted: u64,
    /// Whether a namespaced object can only be created in an existing namespace, as a real
    /// cluster's NamespaceLifecycle admission requires ([`crate::ApiServer::require_namespaces`]).
    pub(crate) require_namespaces: bool,
}

impl Default for Store {
    fn default() -> Self {
        let mut store = Self {
            registry: Registry::default(),
            objects: BTreeMap::new(),
            resource_version: 0,
            history: VecDeque::new(),
            compacted: 0,
            require_namespaces: false,
        };
        store.bootstrap();
        store
    }
}

impl Store {
    /// The namespaces every cluster starts with.
    fn bootstrap(&mut self) {
        let Some(resource) = self.registry.find("", "v1", "namespaces") else {
            return;
        };
        let target = Target {
            resource,
            version: "v1".into(),
            namespace: None,
        };
        let options = WriteOptions {
            manager: "sealbox-api-double".into(),
            ..WriteOptions::default()
        };
        for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let namespace =
                json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name } });
            // Cannot fail on an empty store; ignoring keeps construction infallible.
            let _ = self.create(&target, namespace, &options);
        }
    }

    /// The latest resourceVersion.
    pub(crate) fn resource_version(&self) -> u64 {
        self.resource_version
    }

    pub(crate) fn get(&self, target: &Target, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&target.key(name))
            .map(|entry| entry.object.clone())
            .ok_or_else(|| ApiError::not_found(target.subject(name)))
    }

    /// Field ownership of an object, for tests that look at server-side apply.
    pub(crate) fn managers(&self, target: &Target, name: &str) -> Option<Managers> {
        self.objects
            .get(&target.key(name))
            .map(|entry| entry.managers.clone())
    }

    pub(crate) fn list(&self, target: &Target, query: &ListQuery) -> Result<ListPage, ApiError> {
        let (snapshot, start) = match &query.continue_token {
            Some(token) => {
                let (rv, start) = decode_continue(token)?;
                if rv < self.compacted {
                    return Err(ApiError::gone(
                        "The provided continue parameter is too old to display a consistent list \
                         result. You can start a new list without the continue parameter.",
                    ));
                }
                (rv, Some(start))
            }
            None => {
                if query.exact
                    && let Some(rv) = query
                        .resource_version
                        .as_deref()
                        .and_then(|v| v.parse::<u64>().ok())
                    && rv < self.compacted
                {
                    return Err(ApiError::gone(format!(
                        "too old resource version: {rv} ({})",
                        self.compacted
                    )));
                }
                (self.resource_version, None)
            }
        };
        let matching: Vec<(&ObjectKey, &Entry)> = self
            .objects
            .iter()
            .filter(|(key, _)| {
                key.group == target.resource.group
                    && key.resource == target.resource.plural
                    && target
                        .namespace
                        .as_ref()
                        .is_none_or(|ns| *ns == key.namespace)
            })
            .filter(|(key, _)| {
                start
                    .as_ref()
                    .is_none_or(|s| (&key.namespace, &key.name) > (&s.0, &s.1))
            })
            .filter(|(_, entry)| {
                query.labels.matches(&entry.object) && query.fields.matches(&entry.object)
            })
            .collect();
        let limit = query
            .limit
            .filter(|&l| l > 0)
            .unwrap_or(usize::MAX)
            .min(matching.len());
        let (page, rest) = matching.split_at(limit);
        let continue_token = match (page.last(), rest.is_empty()) {
            (Some((key, _)), false) => Some(encode_continue(snapshot, &key.namespace, &key.name)),
            _ => None,
        };
        Ok(ListPage {
            items: page.iter().map(|(_, entry)| entry.object.clone()).collect(),
            resource_version: snapshot,
            remaining: continue_token.as_ref().map(|_| rest.len()),
            continue_token,
        })
    }

    pub(crate) fn create(
        &mut self,
        target: &Target,
        mut body: Value,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        check_shape(&body)?;
        check_namespace(target, &body)?;
        if let Some(rv) = object::resource_version(&body) {
            let subject = target.subject(object::name(&body).unwrap_or(""));
            return Err(ApiError::invalid(
                &target.resource.kind,
                subject,
                &[(
                    "metadata.resourceVersion".into(),
                    format!("Invalid value: \"{rv}\": must be empty"),
                )],
            ));
        }
        let name = match object::name(&body) {
            Some(name) => name.to_owned(),
            None => {
                let prefix = meta_str(&body, "generateName").ok_or_else(|| {
                    ApiError::invalid(
                        &target.resource.kind,
                        target.subject(""),
                        &[(
                            "metadata.name".into(),
                            "Required value: name or generateName is required".into(),
                        )],
                    )
                })?;
                let prefix = prefix.to_owned();
                let mut name = format!("{prefix}{}", object::name_suffix());
                while self.objects.contains_key(&target.key(&name)) {
                    name = format!("{prefix}{}", object::name_suffix());
                }
                body["metadata"]["name"] = Value::String(name.clone());
                name
            }
        };
        if self.objects.contains_key(&target.key(&name)) {
            return Err(ApiError::already_exists(target.subject(&name)));
        }
        if target.resource.status_subresource && target.resource.crd.is_some() {
            // Custom resources with a status subresource ignore status on create.
            if let Some(map) = body.as_object_mut() {
                map.remove("status");
            }
        }
        let mut managers = Managers::default();
        managers.record_update(&options.manager, None, &body);
        self.commit(target, &name, body, managers, options.dry_run)
    }

    pub(crate) fn replace(
        &mut self,
        target: &Target,
        name: &str,
        body: Value,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        check_shape(&body)?;
        check_namespace(target, &body)?;
        if object::name(&body).is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                object::name(&body).unwrap_or("")
            )));
        }
        let entry = self.entry(target, name)?;
        if let Some(rv) = object::resource_version(&body)
            && Some(rv) != object::resource_version(&entry.object)
        {
            return Err(ApiError::conflict(target.subject(name)));
        }
        let desired = scoped(target, options, &entry.object, body);
        let mut managers = entry.managers.clone();
        managers.record_update(&options.manager, Some(&entry.object), &desired);
        self.commit(target, name, desired, managers, options.dry_run)
    }

    pub(crate) fn patch(
        &mut self,
        target: &Target,
        name: &str,
        patch: PatchBody,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let existing = self.objects.get(&target.key(name)).cloned();
        let Some(entry) = existing else {
            return match patch {
                // Server-side apply creates what does not exist yet.
                PatchBody::Apply { config, .. } if !options.status => {
                    self.apply_create(target, name, config, options)
                }
                _ => Err(ApiError::not_found(target.subject(name))),
            };
        };
        let current = entry.object;
        let mut managers = entry.managers;
        let mut patched = current.clone();
        let applied = match patch {
            PatchBody::Merge(patch) => {
                json_patch::merge(&mut patched, &patch);
                false
            }
            PatchBody::Json(patch) => {
                json_patch::patch(&mut patched, &patch).map_err(|e| {
                    ApiError::new(
                        422,
                        "Invalid",
                        format!(
                            "the server rejected our request due to an error in our request: {e}"
                        ),
                    )
                })?;
                false
            }
            PatchBody::Apply { config, force } => {
                check_shape(&config)?;
                check_apply_identity(target, name, &config)?;
                let config = normalize_secret_config(target, config)?;
                let scope = apply_scope(target, options);
                patched = managers
                    .apply(&current, &config, &options.manager, force, scope)
                    .map_err(|conflicts| {
                        ApiError::apply_conflicts(target.subject(name), &conflicts)
                    })?;
                true
            }
        };
        check_shape(&patched)?;
        if object::resource_version(&patched) != object::resource_version(&current) {
            return Err(ApiError::conflict(target.subject(name)));
        }
        if object::name(&patched) != Some(name) {
            return Err(ApiError::bad_request(
                "metadata.name cannot be changed by a patch",
            ));
        }
        let desired = scoped(target, options, &current, patched);
        if !applied {
            managers.record_update(&options.manager, Some(&current), &desired);
        }
        self.commit(target, name, desired, managers, options.dry_run)
    }

    fn apply_create(
        &mut self,
        target: &Target,
        name: &str,
        config: Value,
        options: &WriteOptions,
    ) -> Result<Value, ApiError> {
        check_shape(&config)?;
        check_namespace(target, &config)?;
        check_apply_identity(target, name, &config)?;
        let config = normalize_secret_config(target, config)?;
        let mut managers = Managers::default();
        let scope = apply_scope(target, options);
        let mut created = managers
            .apply(&json!({}), &config, &options.manager, false, scope)
            .map_err(|conflicts| ApiError::apply_conflicts(target.subject(name), &conflicts))?;
        created["metadata"]["name"] = Value::String(name.to_owned());
        remove_meta(&mut created, "resourceVersion");
        self.commit(target, name, created, managers, options.dry_run)
    }

    pub(crate) fn delete(
        &mut self,
        target: &Target,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let entry = self.entry(target, name)?;
        let object = entry.object;
        if options
            .precondition_uid
            .as_deref()
            .is_some_and(|u| Some(u) != object::uid(&object))
            || options
                .precondition_resource_version
                .as_deref()
                .is_some_and(|rv| Some(rv) != object::resource_version(&object))
        {
            return Err(ApiError::conflict(target.subject(name)));
        }
        if options.dry_run {
            return Ok(object);
        }
        let finalizers = object["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if finalizers {
            if object["metadata"]["deletionTimestamp"].is_string() {
                return Ok(object);
            }
            return Ok(self.mark_deleting(target, name));
        }
        if options.propagation == Propagation::Foreground
            && let Some(uid) = object::uid(&object)
        {
            self.collect_dependents(uid, Propagation::Foreground);
        }
        Ok(self.remove(target, name, options.propagation))
    }

    pub(crate) fn delete_collection(
        &mut self,
        target: &Target,
        query: &ListQuery,
        options: &DeleteOptions,
    ) -> Result<Vec<Value>, ApiError> {
        let page = self.list(
            target,
            &ListQuery {
                limit: None,
                continue_token: None,
                ..query.clone()
            },
        )?;
        let mut deleted = Vec::new();
        for item in page.items {
            let Some(name) = object::name(&item) else {
                continue;
            };
            let mut per_object = target.clone();
            if target.resource.namespaced {
                per_object.namespace = meta_str(&item, "namespace").map(str::to_owned);
            }
            deleted.push(self.delete(&per_object, name, options)?);
        }
        Ok(deleted)
    }

    /// Changes after `resource_version`, or 410 Gone if some of them were compacted away.
    pub(crate) fn changes_after(
        &self,
        resource_version: u64,
    ) -> Result<Vec<Arc<Change>>, ApiError> {
        if resource_version < self.compacted {
            return Err(ApiError::gone(format!(
                "too old resource version: {resource_version} ({})",
                self.compacted
            )));
        }
        let start = self
            .history
            .partition_point(|c| c.resource_version <= resource_version);
        Ok(self.history.range(start..).cloned().collect())
    }

    /// Forgets the change history: resuming from any older resourceVersion gets 410 Gone.
    pub(crate) fn compact(&mut self) {
        self.compacted = self.resource_version;
        self.history.clear();
    }

    /// Whether watches positioned at `resource_version` can still be served.
    pub(crate) fn is_compacted(&self, resource_version: u64) -> bool {
        resource_version < self.compacted
    }

    /// Deletion of an object with finalizers: it stays, with a deletionTimestamp, until the
    /// last finalizer is removed.
    fn mark_deleting(&mut self, target: &Target, name: &str) -> Value {
        let key = target.key(name);
        let Some(entry) = self.objects.get(&key) else {
            return Value::Null;
        };
        let previous = entry.object.clone();
        let mut object = previous.clone();
        self.resource_version += 1;
        object["metadata"]["deletionTimestamp"] = Value::String(object::now());
        object["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        object["metadata"]["resourceVersion"] = Value::String(self.resource_version.to_string());
        if let Some(entry) = self.objects.get_mut(&key) {
            entry.object = object.clone();
        }
        self.record(ChangeType::Modified, &key, object.clone(), Some(previous));
        object
    }

    fn entry(&self, target: &Target, name: &str) -> Result<Entry, ApiError> {
        self.objects
            .get(&target.key(name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(target.subject(name)))
    }

    /// The single write path: keeps server-owned metadata, validates, skips no-ops, assigns a
    /// resourceVersion and records the change.
    fn commit(
        &mut self,
        target: &Target,
        name: &str,
        mut desired: Value,
        managers: Managers,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let key = target.key(name);
        let old = self.objects.get(&key).map(|e| e.object.clone());
        if old.is_none() {
            self.check_namespace_exists(target)?;
        }
        self.prepare(target, name, old.as_ref(), &mut desired)?;

        if let Some(old) = &old {
            let mut unversioned = old.clone();
            remove_meta(&mut unversioned, "resourceVersion");
            remove_meta(&mut unversioned, "managedFields");
            if unversioned == desired {
                if !dry_run && let Some(entry) = self.objects.get_mut(&key) {
                    set_managed_fields(&mut entry.object, &managers);
                    entry.managers = managers;
                    return Ok(entry.object.clone());
                }
                return Ok(old.clone());
            }
        }
        set_managed_fields(&mut desired, &managers);
        if dry_run {
            if let Some(rv) = old.as_ref().and_then(object::resource_version) {
                desired["metadata"]["resourceVersion"] = Value::String(rv.to_owned());
            }
            return Ok(desired);
        }

        let deleting = desired["metadata"]["deletionTimestamp"].is_string()
            && desired["metadata"]["finalizers"]
                .as_array()
                .is_none_or(Vec::is_empty);
        if deleting {
            // The last finalizer is gone: the deletion completes now.
            self.objects.insert(
                key,
                Entry {
                    object: desired,
                    managers,
                },
            );
            return Ok(self.remove(target, name, Propagation::Background));
        }

        if target.resource.is_crd() {
            self.registry.register_crd(&desired)?;
        }
        self.resource_version += 1;
        desired["metadata"]["resourceVersion"] = Value::String(self.resource_version.to_string());
        let kind = if old.is_some() {
            ChangeType::Modified
        } else {
            ChangeType::Added
        };
        self.record(kind, &key, desired.clone(), old);
        self.objects.insert(
            key,
            Entry {
                object: desired.clone(),
                managers,
            },
        );
        Ok(desired)
    }

    /// With [`Store::require_namespaces`]: a namespaced object is created only in a namespace
    /// that exists, as the real API server answers (404 naming the namespace).
    fn check_namespace_exists(&self, target: &Target) -> Result<(), ApiError> {
        let Some(namespace) = target.namespace.as_deref() else {
            return Ok(());
        };
        if !self.require_namespaces || !target.resource.namespaced {
            return Ok(());
        }
        let Some(resource) = self.registry.find("", "v1", "namespaces") else {
            return Ok(());
        };
        let namespaces = Target {
            resource,
            version: "v1".into(),
            namespace: None,
        };
        if self.objects.contains_key(&namespaces.key(namespace)) {
            return Ok(());
        }
        Err(ApiError::new(
            404,
            "NotFound",
            format!("namespaces \"{namespace}\" not found"),
        ))
    }

    /// Fills and checks what the server owns. `old` is the stored object on updates.
    fn prepare(
        &self,
        target: &Target,
        name: &str,
        old: Option<&Value>,
        object: &mut Value,
    ) -> Result<(), ApiError> {
        let resource = &target.resource;
        if let Some(kind) = object["kind"].as_str()
            && kind != resource.kind
        {
            return Err(ApiError::bad_request(format!(
                "the kind of the object ({kind}) does not match the resource ({})",
                resource.kind
            )));
        }
        object["apiVersion"] = Value::String(resource.api_version(&target.version));
        object["kind"] = Value::String(resource.kind.clone());
        object["metadata"]["name"] = Value::String(name.to_owned());
        match &target.namespace {
            Some(namespace) if resource.namespaced => {
                object["metadata"]["namespace"] = Value::String(namespace.clone());
            }
            _ => {
                remove_meta(object, "namespace");
            }
        }
        for field in ["resourceVersion", "selfLink", "managedFields"] {
            remove_meta(object, field);
        }
        if old.is_none() {
            check_name(target, name)?;
        }
        for field in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            remove_meta(object, field);
            if let Some(value) = old.and_then(|o| o["metadata"].get(field)) {
                object["metadata"][field] = value.clone();
            }
        }
        if old.is_none() {
            object["metadata"]["uid"] = Value::String(object::new_uid());
            object["metadata"]["creationTimestamp"] = Value::String(object::now());
        }
        if let Some(map) = object["metadata"].as_object_mut() {
            map.retain(|_, v| !v.is_null());
        }

        if resource.is_secret() {
            normalize_secret(object)?;
        }
        if resource.has_immutable_data()
            && let Some(old) = old
        {
            check_immutable(target, name, old, object)?;
        }
        if resource.has_immutable_selector()
            && let Some(old) = old
        {
            check_immutable_selector(target, name, old, object)?;
        }
        let status_without_phase = object["status"].is_null()
            || object["status"]
                .as_object()
                .is_some_and(|s| !s.contains_key("phase"));
        if resource.is_namespace() && status_without_phase {
            object["status"]["phase"] = Value::String("Active".into());
        }
        if resource.is_crd() {
            self.prepare_crd(old, object)?;
        }
        if let Some(schema) = resource.schema(&target.version) {
            let problems = crate::schema::validate_and_prune(schema, object);
            if !problems.is_empty() {
                return Err(ApiError::invalid(
                    &resource.kind,
                    target.subject(name),
                    &problems,
                ));
            }
        }
        if resource.generation {
            let generation = match old {
                None => 1,
                Some(old) => {
                    let previous = old["metadata"]["generation"].as_i64().unwrap_or(1);
                    if content(old) == content(object) {
                        previous
                    } else {
                        previous + 1
                    }
                }
            };
            object["metadata"]["generation"] = json!(generation);
        }
        Ok(())
    }

    /// Checks a CRD and gives it the status a real API server reaches within moments:
    /// names accepted, established.
    fn prepare_crd(&self, old: Option<&Value>, crd: &mut Value) -> Result<(), ApiError> {
        let resource = crd_resource_type(crd)?;
        if let Some(existing) = self
            .registry
            .find_any_version(&resource.group, &resource.plural)
            && existing.crd.is_none()
        {
            return Err(ApiError::bad_request(format!(
                "{} is a built-in resource",
                resource.plural
            )));
        }
        let since = old
            .and_then(|o| o["status"]["conditions"][0]["lastTransitionTime"].as_str())
            .map_or_else(object::now, str::to_owned);
        let condition = |kind: &str, reason: &str, message: &str| {
            json!({
                "type": kind,
                "status": "True",
                "lastTransitionTime": since,
                "reason": reason,
                "message": message,
            })
        };
        crd["status"] = json!({
            "conditions": [
                condition("NamesAccepted", "NoConflicts", "no conflicts found"),
                condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
            ],
            "acceptedNames": crd["spec"]["names"].clone(),
            "storedVersions": [resource.preferred_version()],
        });
        Ok(())
    }

    /// Removes an object now, records the deletion, and collects what depended on it.
    fn remove(&mut self, target: &Target, name: &str, propagation: Propagation) -> Value {
        let key = target.key(name);
        let Some(entry) = self.objects.remove(&key) else {
            return Value::Null;
        };
        self.resource_version += 1;
        let mut object = entry.object;
        object["metadata"]["resourceVersion"] = Value::String(self.resource_version.to_string());
        self.record(ChangeType::Deleted, &key, object.clone(), None);

        if target.resource.is_crd()
            && let Some(removed) = self.registry.unregister_crd(name)
        {
            self.remove_all(|key| key.group == removed.group && key.resource == removed.plural);
        }
        if target.resource.is_namespace() {
            self.remove_all(|key| key.namespace == name);
        }
        if let Some(uid) = object::uid(&object) {
            self.collect_dependents(uid, propagation);
        }
        object
    }

    fn remove_all(&mut self, matches: impl Fn(&ObjectKey) -> bool) {
        let keys: Vec<ObjectKey> = self
            .objects
            .keys()
            .filter(|k| matches(k))
            .cloned()
            .collect();
        for key in keys {
            if let Some(target) = self.target_for(&key) {
                self.remove(&target, &key.name, Propagation::Background);
            }
        }
    }

    fn target_for(&self, key: &ObjectKey) -> Option<Target> {
        let resource = self.registry.find_any_version(&key.group, &key.resource)?;
        let version = resource.preferred_version().to_owned();
        let namespace = (!key.namespace.is_empty()).then(|| key.namespace.clone());
        Some(Target {
            resource,
            version,
            namespace,
        })
    }

    /// Garbage collection: dependents naming `owner_uid` in their ownerReferences are deleted
    /// (or, when orphaned or still owned by a live object, lose that reference).
    fn collect_dependents(&mut self, owner_uid: &str, propagation: Propagation) {
        let dependents: Vec<ObjectKey> = self
            .objects
            .iter()
            .filter(|(_, e)| owner_uids(&e.object).any(|u| u == owner_uid))
            .map(|(k, _)| k.clone())
            .collect();
        let live_uids: Vec<String> = self
            .objects
            .values()
            .filter_map(|e| object::uid(&e.object).map(str::to_owned))
            .collect();
        for key in dependents {
            let Some(target) = self.target_for(&key) else {
                continue;
            };
            let Some(entry) = self.objects.get(&key).cloned() else {
                continue;
            };
            let other_live_owner = owner_uids(&entry.object)
                .any(|u| u != owner_uid && live_uids.iter().any(|l| l == u));
            if propagation == Propagation::Orphan || other_live_owner {
                let mut orphaned = entry.object.clone();
                if let Some(refs) = orphaned["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|r| r["uid"].as_str() != Some(owner_uid));
                }
                let mut managers = entry.managers.clone();
                managers.record_update("garbage-collector", Some(&entry.object), &orphaned);
                // Only server-owned fields change; this cannot fail validation.
                let _ = self.commit(&target, &key.name, orphaned, managers, false);
            } else {
                let _ = self.delete(
                    &target,
                    &key.name,
                    &DeleteOptions {
                        propagation,
                        ..DeleteOptions::default()
                    },
                );
            }
        }
    }

    fn record(
        &mut self,
        kind: ChangeType,
        key: &ObjectKey,
        object: Value,
        previous: Option<Value>,
    ) {
        self.history.push_back(Arc::new(Change {
            resource_version: self.resource_version,
            group: key.group.clone(),
            resource: key.resource.clone(),
            namespace: key.namespace.clone(),
            kind,
            object,
            previous,
        }));
        while self.history.len() > HISTORY_LIMIT {
            if let Some(dropped) = self.history.pop_front() {
                self.compacted = dropped.resource_version;
            }
        }
    }
}

fn owner_uids(object: &Value) -> impl Iterator<Item = &str> {
    object["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str())
}

/// Everything generation tracks: the object without metadata and status.
fn content(object: &Value) -> Value {
    let mut content = object.clone();
    if let Some(map) = content.as_object_mut() {
        for field in ["metadata", "status", "apiVersion", "kind"] {
            map.remove(field);
        }
    }
    content
}

/// Applies the status-subresource rules: writes to `/status` change only `.status`; writes
/// to the main resource of a type with a status subresource leave `.status` alone.
fn scoped(target: &Target, options: &WriteOptions, current: &Value, mut desired: Value) -> Value {
    if options.status {
        let mut merged = current.clone();
        merged["status"] = desired.get("status").cloned().unwrap_or(Value::Null);
        if let Some(map) = merged.as_object_mut() {
            map.retain(|k, v| k != "status" || !v.is_null());
        }
        // Preconditions travel in metadata.resourceVersion and were checked by the caller.
        merged
    } else if target.resource.status_subresource {
        match current.get("status") {
            Some(status) => desired["status"] = status.clone(),
            None => {
                if let Some(map) = desired.as_object_mut() {
                    map.remove("status");
                }
            }
        }
        desired
    } else {
        desired
    }
}

fn apply_scope(target: &Target, options: &WriteOptions) -> Scope {
    if options.status {
        Scope::Status
    } else if target.resource.status_subresource {
        Scope::AllButStatus
    } else {
        Scope::All
    }
}

fn encode_continue(resource_version: u64, namespace: &str, name: &str) -> String {
    STANDARD.encode(
        json!({ "v": "meta.k8s.io/v1", "rv": resource_version, "start": [namespace, name] })
            .to_string(),
    )
}

fn decode_continue(token: &str) -> Result<(u64, (String, String)), ApiError> {
    let invalid = || ApiError::bad_request("continue key is not valid");
    let bytes = STANDARD.decode(token).map_err(|_| invalid())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let rv = value["rv"].as_u64().ok_or_else(invalid)?;
    let namespace = value["start"][0].as_str().ok_or_else(invalid)?.to_owned();
    let name = value["start"][1].as_str().ok_or_else(invalid)?.to_owned();
    Ok((rv, (namespace, name)))
}

/// Serves the managers in `metadata.managedFields`, as the real API server does; none when no
/// manager owns a field.
fn set_managed_fields(object: &mut Value, managers: &Managers) {
    let api_version = object["apiVersion"].as_str().unwrap_or_default().to_owned();
    let entries = managers.to_managed_fields(&api_version);
    if entries.as_array().is_some_and(|e| !e.is_empty()) {
        object["metadata"]["managedFields"] = entries;
    } else {
        remove_meta(object, "managedFields");
    }
}
