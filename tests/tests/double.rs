//! kube-rs, unmodified, against the API double: Api calls, watcher, Controller, Recorder,
//! discovery, and (when installed) kubectl over TCP.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::ByteString;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind, GroupVersionResource, ObjectMeta};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event as RecordedEvent, EventType, Recorder, Reporter};
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource, ResourceExt};
use sealbox_tests::fixtures::{TestResult, Wait, sealed_secrets_gvr, secrets_gvr};
use sealbox_tests::{ApiServer, FaultRule};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);
/// [`WAIT`], looking again every 20 ms.
const WAITING: Wait = Wait::new(WAIT, Duration::from_millis(20));

/// A SealedSecret-shaped CRD: namespaced, status subresource, a structural schema.
fn sealed_secret_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": "sealedsecrets.bitnami.com" },
        "spec": {
            "group": "bitnami.com",
            "names": { "kind": "SealedSecret", "listKind": "SealedSecretList", "plural": "sealedsecrets", "singular": "sealedsecret" },
            "scope": "Namespaced",
            "versions": [{
                "name": "v1alpha1",
                "served": true,
                "storage": true,
                "subresources": { "status": {} },
                "additionalPrinterColumns": [
                    { "name": "Status", "type": "string", "jsonPath": ".status.conditions[0].message" },
                    { "name": "Synced", "type": "string", "jsonPath": ".status.conditions[0].status" },
                    { "name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp" },
                ],
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "required": ["encryptedData"],
                            "properties": {
                                "encryptedData": { "type": "object", "additionalProperties": { "type": "string" } },
                                "template": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
                            },
                        },
                        "status": {
                            "type": "object",
                            "properties": {
                                "observedGeneration": { "type": "integer" },
                                "conditions": { "type": "array", "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true } },
                            },
                        },
                    },
                } },
            }],
        },
    })
}

fn sealed_secret_api(client: Client, namespace: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("bitnami.com", "v1alpha1", "SealedSecret"),
        "sealedsecrets",
    );
    Api::namespaced_with(client, namespace, &resource)
}

fn config_map(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ),
        ..ConfigMap::default()
    }
}

fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// Polls `check` until it is true or [`WAIT`] passes.
async fn eventually<F, Fut>(what: &str, mut check: F) -> TestResult
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    WAITING
        .until_found(what, || {
            let checked = check();
            async { Ok(checked.await.then_some(())) }
        })
        .await
}

async fn next<S, T>(stream: &mut S) -> TestResult<T>
where
    S: Stream<Item = T> + Unpin,
{
    tokio::time::timeout(WAIT, stream.next())
        .await?
        .ok_or_else(|| "stream ended".into())
}

fn api_code(result: Result<impl std::fmt::Debug, kube::Error>) -> Option<u16> {
    match result {
        Err(kube::Error::Api(status)) => Some(status.code),
        _ => None,
    }
}

#[tokio::test]
async fn crud_concurrency_and_errors() -> TestResult {
    let server = ApiServer::new();
    let secrets: Api<Secret> = Api::default_namespaced(server.client());

    let missing = secrets.get("nope").await;
    assert!(
        matches!(&missing, Err(kube::Error::Api(s)) if s.is_not_found()),
        "{missing:?}"
    );

    let created = secrets
        .create(&PostParams::default(), &secret("s", &[("k", "v")]))
        .await?;
    assert!(created.uid().is_some());
    assert!(created.creation_timestamp().is_some());
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
    assert_eq!(
        created.metadata.generation, None,
        "built-ins like Secrets have no generation"
    );
    assert_eq!(
        api_code(
            secrets
                .create(&PostParams::default(), &secret("s", &[]))
                .await
        ),
        Some(409)
    );

    // Replace with the current resourceVersion works; with a stale one it conflicts.
    let mut changed = created.clone();
    changed.data = Some(BTreeMap::from([("k".into(), ByteString(b"w".to_vec()))]));
    let replaced = secrets
        .replace("s", &PostParams::default(), &changed)
        .await?;
    assert_ne!(replaced.resource_version(), created.resource_version());
    let stale = secrets.replace("s", &PostParams::default(), &changed).await;
    assert!(
        matches!(&stale, Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "Conflict"),
        "{stale:?}"
    );
    let stale_patch = json!({ "metadata": { "resourceVersion": created.resource_version() }, "data": { "x": "eA==" } });
    assert_eq!(
        api_code(
            secrets
                .patch("s", &PatchParams::default(), &Patch::Merge(&stale_patch))
                .await
        ),
        Some(409)
    );

    // A write that changes nothing is not a write.
    let before = server.resource_version();
    let again = secrets
        .replace("s", &PostParams::default(), &replaced)
        .await?;
    assert_eq!(again.resource_version(), replaced.resource_version());
    let same = secrets
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({ "data": { "k": "dw==" } })),
        )
        .await?;
    assert_eq!(same.resource_version(), replaced.resource_version());
    assert_eq!(server.resource_version(), before);

    // generateName.
    let generated = Secret {
        metadata: ObjectMeta {
            generate_name: Some("sealed-secrets-key".into()),
            ..ObjectMeta::default()
        },
        ..Secret::default()
    };
    let generated = secrets.create(&PostParams::default(), &generated).await?;
    let name = generated.name_any();
    assert!(
        name.starts_with("sealed-secrets-key") && name.len() == "sealed-secrets-key".len() + 5,
        "{name}"
    );

    // JSON patch, and the direct store view.
    let ops: json_patch::Patch = serde_json::from_value(
        json!([{ "op": "add", "path": "/metadata/labels", "value": { "a": "b" } }]),
    )?;
    secrets
        .patch("s", &PatchParams::default(), &Patch::<()>::Json(ops))
        .await?;
    let stored = server
        .get_object(&secrets_gvr(), Some("default"), "s")
        .ok_or("stored")?;
    assert_eq!(stored["metadata"]["labels"], json!({ "a": "b" }));

    // stringData folds into data; immutable Secrets refuse data changes.
    let immutable = Secret {
        metadata: ObjectMeta {
            name: Some("frozen".into()),
            ..ObjectMeta::default()
        },
        string_data: Some(BTreeMap::from([("k".into(), "v".into())])),
        immutable: Some(true),
        ..Secret::default()
    };
    let frozen = secrets.create(&PostParams::default(), &immutable).await?;
    assert_eq!(
        frozen.data.as_ref().and_then(|d| d.get("k")),
        Some(&ByteString(b"v".to_vec()))
    );
    let refused = secrets
        .patch(
            "frozen",
            &PatchParams::default(),
            &Patch::Merge(json!({ "data": { "k": "eA==" } })),
        )
        .await;
    match refused {
        Err(kube::Error::Api(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
            assert!(
                status
                    .message
                    .contains("field is immutable when `immutable` is set"),
                "{}",
                status.message
            );
        }
        other => return Err(format!("expected 422, got {other:?}").into()),
    }
    let relabel = json!({ "metadata": { "labels": { "ok": "yes" } } });
    let relabelled = secrets
        .patch("frozen", &PatchParams::default(), &Patch::Merge(&relabel))
        .await;
    assert!(
        relabelled.is_ok(),
        "metadata of immutable Secrets may change"
    );

    secrets.delete("s", &DeleteParams::default()).await?;
    assert!(secrets.get_opt("s").await?.is_none());
    Ok(())
}

#[tokio::test]
async fn lists_paginate_filter_and_return_metadata_only() -> TestResult {
    let server = ApiServer::new();
    let client = server.client();
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "lists");
    for i in 0..7 {
        let mut cm = config_map(&format!("cm-{i}"), &[("i", &i.to_string())]);
        let tier = if i % 2 == 0 { "even" } else { "odd" };
        let mut labels = BTreeMap::from([("tier".to_owned(), tier.to_owned())]);
        if i < 3 {
            labels.insert("small".into(), "true".into());
        }
        cm.metadata.labels = Some(labels);
        maps.create(&PostParams::default(), &cm).await?;
    }
    Api::<ConfigMap>::namespaced(client.clone(), "elsewhere")
        .create(&PostParams::default(), &config_map("other", &[]))
        .await?;

    let first = maps.list(&ListParams::default().limit(3)).await?;
    assert_eq!(first.items.len(), 3);
    assert_eq!(first.metadata.remaining_item_count, Some(4));
    let token = first.metadata.continue_.clone().ok_or("continue token")?;
    let rest = maps
        .list(&ListParams::default().limit(10).continue_token(&token))
        .await?;
    assert_eq!(rest.items.len(), 4);
    assert!(rest.metadata.continue_.is_none());
    assert_eq!(
        rest.metadata.resource_version, first.metadata.resource_version,
        "pages share the list resourceVersion"
    );

    let names = |list: kube::core::ObjectList<ConfigMap>| {
        list.items
            .iter()
            .map(ResourceExt::name_any)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(maps.list(&ListParams::default().labels("tier=odd")).await?),
        ["cm-1", "cm-3", "cm-5"]
    );
    assert_eq!(
        names(
            maps.list(&ListParams::default().labels("tier!=odd,!small"))
                .await?
        ),
        ["cm-4", "cm-6"]
    );
    assert_eq!(
        names(
            maps.list(&ListParams::default().labels("small,tier in (odd)"))
                .await?
        ),
        ["cm-1"]
    );
    assert_eq!(
        names(
            maps.list(&ListParams::default().labels("tier notin (odd,even)"))
                .await?
        )
        .len(),
        0
    );
    assert_eq!(
        names(
            maps.list(&ListParams::default().fields("metadata.name=cm-2"))
                .await?
        ),
        ["cm-2"]
    );

    let all: Api<ConfigMap> = Api::all(client.clone());
    assert_eq!(all.list(&ListParams::default()).await?.items.len(), 8);
    assert_eq!(
        server
            .objects(&GroupVersionResource::gvr("", "v1", "configmaps"), None)
            .len(),
        8
    );

    // A continue token from before a compaction has expired.
    maps.create(&PostParams::default(), &config_map("late", &[]))
        .await?;
    server.compact();
    let expired = maps
        .list(&ListParams::default().limit(3).continue_token(&token))
        .await;
    assert_eq!(api_code(expired), Some(410));

    let metadata = maps
        .list_metadata(&ListParams::default().labels("small"))
        .await?;
    assert_eq!(metadata.items.len(), 3);
    assert_eq!(metadata.types.kind, "PartialObjectMetadataList");
    let one = maps.get_metadata("cm-0").await?;
    assert_eq!(
        one.types.as_ref().map(|t| t.kind.as_str()),
        Some("PartialObjectMetadata")
    );
    assert_eq!(
        one.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("tier"))
            .map(String::as_str),
        Some("even")
    );
    Ok(())
}

#[tokio::test]
async fn server_side_apply_tracks_managers() -> TestResult {
    let server = ApiServer::new();
    let secrets: Api<Secret> = Api::default_namespaced(server.client());
    let apply = |manager: &str| PatchParams::apply(manager);
    let config = |pairs: &[(&str, &str)]| {
        let mut s = secret("applied", pairs);
        s.metadata.labels = Some(BTreeMap::from([("app".into(), "x".into())]));
        json!({ "apiVersion": "v1", "kind": "Secret", "metadata": s.metadata, "data": s.data })
    };

    // Apply creates, and a repeated apply is a no-op.
    let created = secrets
        .patch(
            "applied",
            &apply("alice"),
            &Patch::Apply(config(&[("a", "1"), ("b", "2")])),
        )
        .await?;
    let again = secrets
        .patch(
            "applied",
            &apply("alice"),
            &Patch::Apply(config(&[("a", "1"), ("b", "2")])),
        )
        .await?;
    assert_eq!(again.resource_version(), created.resource_version());

    // Another manager changing alice's field conflicts, unless forced.
    let conflict = secrets
        .patch(
            "applied",
            &apply("bob"),
            &Patch::Apply(config(&[("a", "changed")])),
        )
        .await;
    match conflict {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 409);
            assert!(
                status.message.contains("alice") && status.message.contains(".data.a"),
                "{}",
                status.message
            );
        }
        other => return Err(format!("expected a conflict, got {other:?}").into()),
    }
    let forced = secrets
        .patch(
            "applied",
            &apply("bob").force(),
            &Patch::Apply(config(&[("a", "changed")])),
        )
        .await?;
    assert_eq!(
        forced.data.as_ref().and_then(|d| d.get("a")),
        Some(&ByteString(b"changed".to_vec()))
    );
    let owners = server.field_managers(&secrets_gvr(), Some("default"), "applied");
    assert!(
        owners["bob"].contains(".data.a") && !owners["alice"].contains(".data.a"),
        "{owners:?}"
    );

    // Fields alice stops applying go away; fields she never owned stay.
    let trimmed = secrets
        .patch("applied", &apply("alice"), &Patch::Apply(config(&[])))
        .await?;
    let keys: Vec<&String> = trimmed
        .data
        .as_ref()
        .map(|d| d.keys().collect())
        .unwrap_or_default();
    assert_eq!(keys, ["a"], "b was removed, a belongs to bob");
    assert_eq!(trimmed.labels().get("app").map(String::as_str), Some("x"));

    // A merge patch by another manager takes ownership without conflicts.
    secrets
        .patch(
            "applied",
            &PatchParams {
                field_manager: Some("carol".into()),
                ..PatchParams::default()
            },
            &Patch::Merge(json!({ "data": { "a": "Yw==" } })),
        )
        .await?;
    let owners = server.field_managers(&secrets_gvr(), Some("default"), "applied");
    assert!(owners["carol"].contains(".data.a"), "{owners:?}");

    let missing_manager = secrets
        .patch(
            "applied",
            &PatchParams::default(),
            &Patch::Apply(config(&[])),
        )
        .await;
    assert!(missing_manager.is_err(), "apply requires a field manager");
    Ok(())
}

#[tokio::test]
async fn custom_resources_status_generation_and_schema() -> TestResult {
    let server = ApiServer::new();
    let crd = server.apply_crd(sealed_secret_crd())?;
    assert_eq!(crd["status"]["conditions"][1]["type"], "Established");
    let client = server.client();
    let api = sealed_secret_api(client.clone(), "app");

    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "bitnami.com/v1alpha1",
        "kind": "SealedSecret",
        "metadata": { "name": "s" },
        "spec": { "encryptedData": { "k": "AgA=" }, "unknown": "pruned" },
        "status": { "observedGeneration": 99 },
    }))?;
    let created = api.create(&PostParams::default(), &object).await?;
    assert_eq!(created.metadata.generation, Some(1));
    assert!(
        created.data.get("status").is_none(),
        "status is ignored on create"
    );
    assert!(
        created.data["spec"].get("unknown").is_none(),
        "unknown fields are pruned"
    );

    // Spec changes bump generation; metadata changes do not.
    let spec_patch = json!({ "spec": { "encryptedData": { "k": "AgB=" } } });
    let patched = api
        .patch("s", &PatchParams::default(), &Patch::Merge(&spec_patch))
        .await?;
    assert_eq!(patched.metadata.generation, Some(2));
    let label_patch = json!({ "metadata": { "labels": { "a": "b" } } });
    let labelled = api
        .patch("s", &PatchParams::default(), &Patch::Merge(&label_patch))
        .await?;
    assert_eq!(labelled.metadata.generation, Some(2));

    // Status goes through the subresource only, and does not bump generation.
    let status = json!({ "status": { "observedGeneration": 2, "conditions": [{ "type": "Synced", "status": "True" }] }, "spec": { "encryptedData": {} } });
    let with_status = api
        .patch_status("s", &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    assert_eq!(with_status.data["status"]["observedGeneration"], 2);
    assert_eq!(
        with_status.data["spec"]["encryptedData"]["k"], "AgB=",
        "status writes ignore spec"
    );
    assert_eq!(with_status.metadata.generation, Some(2));
    let main_write = api
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "observedGeneration": 7 } })),
        )
        .await?;
    assert_eq!(
        main_write.data["status"]["observedGeneration"], 2,
        "main resource writes ignore status"
    );
    assert_eq!(
        main_write.resource_version(),
        with_status.resource_version()
    );

    // Server-side apply on the status subresource, as controllers write status.
    let applied_status = json!({ "apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret", "status": { "observedGeneration": 2, "conditions": [] } });
    api.patch_status(
        "s",
        &PatchParams::apply("controller").force(),
        &Patch::Apply(&applied_status),
    )
    .await?;
    let stored = server
        .get_object(&sealed_secrets_gvr(), Some("app"), "s")
        .ok_or("stored")?;
    assert_eq!(stored["status"]["conditions"], json!([]));

    // Schema validation: wrong type and missing required field.
    let invalid: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
        "metadata": { "name": "bad" }, "spec": { "encryptedData": { "k": 1 } },
    }))?;
    assert_eq!(
        api_code(api.create(&PostParams::default(), &invalid).await),
        Some(422)
    );
    let no_spec: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret", "metadata": { "name": "bad" }, "spec": {},
    }))?;
    assert_eq!(
        api_code(api.create(&PostParams::default(), &no_spec).await),
        Some(422)
    );

    // Discovery sees the new type; deleting the CRD removes it and its objects.
    for discovery in [
        kube::Discovery::new(client.clone()).run().await?,
        kube::Discovery::new(client.clone())
            .run_aggregated()
            .await?,
    ] {
        let gvk = GroupVersionKind::gvk("bitnami.com", "v1alpha1", "SealedSecret");
        let (resource, capabilities) = discovery
            .resolve_gvk(&gvk)
            .ok_or("SealedSecret discovered")?;
        assert_eq!(resource.plural, "sealedsecrets");
        assert!(
            !capabilities.subresources.is_empty(),
            "the status subresource is advertised"
        );
        assert!(
            discovery
                .groups()
                .any(|g| g.name() == "coordination.k8s.io")
        );
    }
    server.delete_object(
        &GroupVersionResource::gvr("apiextensions.k8s.io", "v1", "customresourcedefinitions"),
        None,
        "sealedsecrets.bitnami.com",
    );
    assert_eq!(api_code(api.get("s").await), Some(404));
    Ok(())
}

#[tokio::test]
async fn garbage_collection_and_finalizers() -> TestResult {
    let server = ApiServer::new();
    let client = server.client();
    let maps: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let owner = maps
        .create(&PostParams::default(), &config_map("owner", &[]))
        .await?;
    let owner_ref = owner.controller_owner_ref(&()).ok_or("owner ref")?;
    let mut child = secret("child", &[]);
    child.metadata.owner_references = Some(vec![owner_ref.clone()]);
    secrets.create(&PostParams::default(), &child).await?;
    let mut shared_child = secret("shared", &[]);
    let other = maps
        .create(&PostParams::default(), &config_map("other-owner", &[]))
        .await?;
    shared_child.metadata.owner_references = Some(vec![
        owner_ref,
        other.controller_owner_ref(&()).ok_or("ref")?,
    ]);
    secrets
        .create(&PostParams::default(), &shared_child)
        .await?;

    maps.delete("owner", &DeleteParams::background()).await?;
    assert!(
        secrets.get_opt("child").await?.is_none(),
        "dependents are collected"
    );
    let survivor = secrets.get("shared").await?;
    assert_eq!(
        survivor.owner_references().len(),
        1,
        "a dependent with another live owner only loses the reference"
    );

    // Finalizers hold deletion until removed.
    let mut guarded = secret("guarded", &[]);
    guarded.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    secrets.create(&PostParams::default(), &guarded).await?;
    secrets.delete("guarded", &DeleteParams::default()).await?;
    let pending = secrets.get("guarded").await?;
    assert!(pending.metadata.deletion_timestamp.is_some());
    secrets
        .patch(
            "guarded",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
        )
        .await?;
    assert!(secrets.get_opt("guarded").await?.is_none());
    Ok(())
}

#[tokio::test]
async fn watcher_sees_changes_and_recovers_from_cuts_and_compaction() -> TestResult {
    let server = ApiServer::new();
    let maps: Api<ConfigMap> = Api::namespaced(server.client(), "watched");
    maps.create(&PostParams::default(), &config_map("before", &[]))
        .await?;
    let mut events = watcher::watcher(maps.clone(), watcher::Config::default()).boxed();

    assert!(matches!(next(&mut events).await??, Event::Init));
    assert!(matches!(next(&mut events).await??, Event::InitApply(cm) if cm.name_any() == "before"));
    assert!(matches!(next(&mut events).await??, Event::InitDone));

    maps.create(&PostParams::default(), &config_map("a", &[("v", "1")]))
        .await?;
    assert!(matches!(next(&mut events).await??, Event::Apply(cm) if cm.name_any() == "a"));
    maps.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "v": "2" } })),
    )
    .await?;
    assert!(
        matches!(next(&mut events).await??, Event::Apply(cm) if cm.data.as_ref().and_then(|d| d.get("v")).map(String::as_str) == Some("2"))
    );
    maps.delete("a", &DeleteParams::default()).await?;
    assert!(matches!(next(&mut events).await??, Event::Delete(cm) if cm.name_any() == "a"));

    // A cut stream is resumed from the last resourceVersion: no relist, nothing missed.
    server.cut_watches();
    maps.create(&PostParams::default(), &config_map("after-cut", &[]))
        .await?;
    assert!(matches!(next(&mut events).await??, Event::Apply(cm) if cm.name_any() == "after-cut"));

    // After compaction the watch gets 410 Gone and the watcher relists.
    server.compact();
    assert!(
        matches!(next(&mut events).await?, Err(watcher::Error::WatchError(status)) if status.code == 410)
    );
    assert!(matches!(next(&mut events).await??, Event::Init));
    let mut relisted = Vec::new();
    loop {
        match next(&mut events).await?? {
            Event::InitApply(cm) => relisted.push(cm.name_any()),
            Event::InitDone => break,
            other => return Err(format!("unexpected {other:?}").into()),
        }
    }
    assert_eq!(relisted, ["after-cut", "before"]);
    maps.create(&PostParams::default(), &config_map("later", &[]))
        .await?;
    assert!(matches!(next(&mut events).await??, Event::Apply(cm) if cm.name_any() == "later"));

    // Watching from a compacted resourceVersion is refused with 410 too.
    let old = maps
        .watch(&kube::api::WatchParams::default(), "1")
        .await?
        .boxed();
    let first = old.into_future().await.0.ok_or("an event")??;
    assert!(matches!(first, kube::core::WatchEvent::Error(status) if status.code == 410));

    // Streaming lists (sendInitialEvents) end their initial events with a bookmark.
    let streaming = watcher::watcher(maps.clone(), watcher::Config::default().streaming_lists());
    let initial: Vec<Event<ConfigMap>> = streaming.take(5).try_collect().await?;
    assert!(
        matches!(initial.last(), Some(Event::InitDone)),
        "{initial:?}"
    );
    Ok(())
}

#[tokio::test]
async fn watch_filters_by_label_and_sends_bookmarks() -> TestResult {
    let server = ApiServer::new();
    server.set_bookmark_interval(Duration::from_millis(50));
    let maps: Api<ConfigMap> = Api::default_namespaced(server.client());
    let start = maps
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .ok_or("rv")?;
    let params = kube::api::WatchParams::default()
        .labels("app=web")
        .timeout(1);
    let mut stream = maps
        .watch(&params.clone().disable_bookmarks(), &start)
        .await?
        .boxed();
    let mut bookmarks = maps.watch(&params, &start).await?.boxed();

    let mut cm = config_map("m", &[]);
    maps.create(&PostParams::default(), &cm).await?;
    cm.metadata.labels = Some(BTreeMap::from([("app".into(), "web".into())]));
    maps.patch("m", &PatchParams::default(), &Patch::Merge(&cm))
        .await?;
    maps.patch(
        "m",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "labels": { "app": "db" } } })),
    )
    .await?;
    use kube::core::WatchEvent as W;
    assert!(
        matches!(next(&mut stream).await??, W::Added(_)),
        "entering the selection is ADDED"
    );
    assert!(
        matches!(next(&mut stream).await??, W::Deleted(_)),
        "leaving it is DELETED"
    );
    let saw_bookmark = loop {
        match next(&mut bookmarks).await?? {
            W::Bookmark(_) => break true,
            W::Error(e) => return Err(format!("{e:?}").into()),
            _ => {}
        }
    };
    assert!(saw_bookmark);
    // timeoutSeconds ends the stream.
    let rest: Vec<_> = tokio::time::timeout(WAIT, stream.collect::<Vec<_>>()).await?;
    assert!(rest.is_empty());
    Ok(())
}

/// The controller under test: every ConfigMap gets a Secret child with the same data.
struct Context {
    client: Client,
    reconciles: AtomicUsize,
}

async fn reconcile(parent: Arc<ConfigMap>, ctx: Arc<Context>) -> Result<Action, kube::Error> {
    ctx.reconciles.fetch_add(1, Ordering::SeqCst);
    let namespace = parent.namespace().unwrap_or_default();
    let owner: Option<OwnerReference> = parent.controller_owner_ref(&());
    let name = format!("{}-child", parent.name_any());
    let data: BTreeMap<String, ByteString> = parent
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), ByteString(v.as_bytes().to_vec())))
        .collect();
    let child = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": name, "ownerReferences": owner.into_iter().collect::<Vec<_>>() },
        "data": data,
    });
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    secrets
        .patch(
            &name,
            &PatchParams::apply("test-controller").force(),
            &Patch::Apply(&child),
        )
        .await?;
    Ok(Action::await_change())
}

fn error_policy(_: Arc<ConfigMap>, _: &kube::Error, _: Arc<Context>) -> Action {
    Action::requeue(Duration::from_millis(20))
}

#[tokio::test]
async fn controller_owns_children_and_converges_under_faults() -> TestResult {
    let server = ApiServer::new();
    let client = server.client();
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "ctl");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "ctl");
    let context = Arc::new(Context {
        client: client.clone(),
        reconciles: AtomicUsize::new(0),
    });
    let controller = Controller::new(maps.clone(), watcher::Config::default())
        .owns(secrets.clone(), watcher::Config::default())
        .run(reconcile, error_policy, context.clone())
        .for_each(|_| async {});
    let running = tokio::spawn(controller);

    maps.create(
        &PostParams::default(),
        &config_map("app", &[("password", "hunter2")]),
    )
    .await?;
    let child_value = |secret: Option<Secret>, key: &str| {
        secret.and_then(|s| s.data).and_then(|d| {
            d.get(key)
                .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        })
    };
    eventually("the child Secret", || async {
        child_value(
            secrets.get_opt("app-child").await.ok().flatten(),
            "password",
        )
        .as_deref()
            == Some("hunter2")
    })
    .await?;
    let first_uid = secrets.get("app-child").await?.uid();

    // Deleting the child re-triggers the owner through the metadata watch of owned objects.
    secrets
        .delete("app-child", &DeleteParams::default())
        .await?;
    eventually("the child to be recreated", || async {
        secrets
            .get_opt("app-child")
            .await
            .ok()
            .flatten()
            .is_some_and(|s| s.uid() != first_uid)
    })
    .await?;

    // Writes fail for a while: 500s, then 409s. The controller retries and converges.
    server.fail_next(
        FaultRule::status(500)
            .method("PATCH")
            .resource("secrets")
            .times(3),
    );
    server.fail_next(
        FaultRule::status(409)
            .method("PATCH")
            .resource("secrets")
            .times(2),
    );
    maps.patch(
        "app",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "password": "correct horse" } })),
    )
    .await?;
    eventually("the child to converge", || async {
        child_value(
            secrets.get_opt("app-child").await.ok().flatten(),
            "password",
        )
        .as_deref()
            == Some("correct horse")
    })
    .await?;
    let failed: Vec<u16> = server
        .request_log()
        .iter()
        .filter(|r| r.method == "PATCH" && r.resource == "secrets" && r.status >= 400)
        .map(|r| r.status)
        .collect();
    assert_eq!(failed, [500, 500, 500, 409, 409]);

    // Settled: after the reconcile its own write triggers, the controller goes quiet (its
    // no-op applies produce no watch events). A feedback loop would never settle.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let before = context.reconciles.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        if context.reconciles.load(Ordering::SeqCst) == before {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            return Err("the controller keeps reconciling: a write feedback loop".into());
        }
    }

    let rbac = server.rbac_summary();
    let has = |resource: &str, verb: &str| {
        rbac.contains(&(String::new(), resource.to_owned(), verb.to_owned()))
    };
    for (resource, verb) in [
        ("configmaps", "list"),
        ("configmaps", "watch"),
        ("secrets", "list"),
        ("secrets", "watch"),
        ("secrets", "patch"),
    ] {
        assert!(
            has(resource, verb),
            "{resource} {verb} missing from {rbac:?}"
        );
    }
    let watch_of_secrets = server
        .request_log()
        .into_iter()
        .find(|r| r.resource == "secrets" && r.verb == "watch");
    assert!(watch_of_secrets.is_some(), "owned objects are watched");
    running.abort();
    Ok(())
}

#[tokio::test]
async fn events_recorder_and_leases() -> TestResult {
    let server = ApiServer::new();
    let client = server.client();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "sealbox".into(),
            instance: Some("pod-0".into()),
        },
    );
    let reference = ObjectReference {
        api_version: Some("bitnami.com/v1alpha1".into()),
        kind: Some("SealedSecret".into()),
        name: Some("s".into()),
        namespace: Some("app".into()),
        ..ObjectReference::default()
    };
    let event = RecordedEvent {
        type_: EventType::Normal,
        reason: "Unsealed".into(),
        note: Some("SealedSecret unsealed successfully".into()),
        action: "Unseal".into(),
        secondary: None,
    };
    recorder.publish(&event, &reference).await?;
    recorder.publish(&event, &reference).await?;
    let events = server.objects(
        &GroupVersionResource::gvr("events.k8s.io", "v1", "events"),
        Some("app"),
    );
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["reason"], "Unsealed");
    assert_eq!(
        events[0]["series"]["count"], 2,
        "the second publish patches the series"
    );
    let verbs: Vec<String> = server
        .request_log()
        .into_iter()
        .filter(|r| r.group == "events.k8s.io")
        .map(|r| r.verb)
        .collect();
    assert_eq!(verbs, ["create", "patch"]);

    let leases: Api<Lease> = Api::namespaced(client, "kube-system");
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some("sealbox-leader".into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("pod-0".into()),
            lease_duration_seconds: Some(15),
            acquire_time: Some(MicroTime(jiff::Timestamp::now())),
            ..LeaseSpec::default()
        }),
    };
    let created = leases.create(&PostParams::default(), &lease).await?;
    let mut renewed = created.clone();
    if let Some(spec) = renewed.spec.as_mut() {
        spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
    }
    leases
        .replace("sealbox-leader", &PostParams::default(), &renewed)
        .await?;
    let mut takeover = created;
    if let Some(spec) = takeover.spec.as_mut() {
        spec.holder_identity = Some("pod-1".into());
    }
    assert_eq!(
        api_code(
            leases
                .replace("sealbox-leader", &PostParams::default(), &takeover)
                .await
        ),
        Some(409),
        "a stale lease update loses the race"
    );
    let held = leases.get("sealbox-leader").await?;
    assert_eq!(
        held.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("pod-0")
    );
    Ok(())
}

#[tokio::test]
async fn faults_latency_and_request_log() -> TestResult {
    let server = ApiServer::new();
    let secrets: Api<Secret> = Api::default_namespaced(server.client());
    server.fail_next(FaultRule::status(503).verb("list").times(2));
    assert_eq!(
        api_code(secrets.list(&ListParams::default()).await),
        Some(503)
    );
    assert_eq!(
        api_code(secrets.list(&ListParams::default()).await),
        Some(503)
    );
    secrets.list(&ListParams::default()).await?;
    server.fail_next(FaultRule::status(500).path_contains("/secrets/x"));
    assert_eq!(api_code(secrets.get("x").await), Some(500));
    assert_eq!(api_code(secrets.get("x").await), Some(404));

    server.set_latency(Duration::from_millis(100));
    let started = std::time::Instant::now();
    secrets.list(&ListParams::default()).await?;
    assert!(started.elapsed() >= Duration::from_millis(100));
    server.set_latency(Duration::ZERO);

    let log = server.request_log();
    let statuses: Vec<(String, u16)> = log.iter().map(|r| (r.verb.clone(), r.status)).collect();
    assert_eq!(
        statuses,
        [
            ("list".into(), 503),
            ("list".into(), 503),
            ("list".into(), 200),
            ("get".into(), 500),
            ("get".into(), 404),
            ("list".into(), 200)
        ]
    );
    assert_eq!(log[3].name.as_deref(), Some("x"));
    assert_eq!(log[3].namespace.as_deref(), Some("default"));
    Ok(())
}

#[tokio::test]
async fn served_over_tcp_with_a_kubeconfig() -> TestResult {
    let server = ApiServer::new();
    let served = server.serve_local().await?;
    let dir = tempfile::tempdir()?;
    let path = served.write_kubeconfig(dir.path().join("kubeconfig"))?;
    let kubeconfig = kube::config::Kubeconfig::read_from(&path)?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    assert_eq!(config.default_namespace, "default");
    let client = Client::try_from(config)?;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );

    // Watches work over TCP too.
    let maps: Api<ConfigMap> = Api::default_namespaced(client);
    let mut events = watcher::watcher(maps.clone(), watcher::Config::default()).boxed();
    assert!(matches!(next(&mut events).await??, Event::Init));
    assert!(matches!(next(&mut events).await??, Event::InitDone));
    maps.create(&PostParams::default(), &config_map("over-tcp", &[]))
        .await?;
    assert!(matches!(next(&mut events).await??, Event::Apply(cm) if cm.name_any() == "over-tcp"));
    server.cut_watches();
    Ok(())
}

/// kubectl, when installed, can apply, get and wait on a CRD against the served double.
#[tokio::test]
async fn kubectl_applies_and_waits_on_a_crd() -> TestResult {
    let Some(kubectl) = find_kubectl() else {
        eprintln!("skipping: kubectl not found");
        return Ok(());
    };
    let server = ApiServer::new();
    let served = server.serve_local().await?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = served.write_kubeconfig(dir.path().join("kubeconfig"))?;
    let crd_file = dir.path().join("crd.json");
    std::fs::write(&crd_file, sealed_secret_crd().to_string())?;
    let objects_file = dir.path().join("objects.yaml");
    std::fs::write(
        &objects_file,
        "apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
metadata:
  name: mysecret
  namespace: default
spec:
  encryptedData:
    password: AgBy3i4OJSWK+PiTySYZZA==
---
apiVersion: v1
kind: Secret
metadata:
  name: plain
  namespace: default
stringData:
  user: admin
",
    )?;
    let run = |args: Vec<String>| {
        let kubectl = kubectl.clone();
        let kubeconfig = kubeconfig.clone();
        async move {
            let command_args = args.clone();
            let output = tokio::task::spawn_blocking(move || {
                std::process::Command::new(kubectl)
                    .arg("--kubeconfig")
                    .arg(kubeconfig)
                    .args(command_args)
                    .output()
            })
            .await??;
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            if !output.status.success() {
                return Err(format!("kubectl {args:?} failed: {stderr}{stdout}").into());
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(stdout)
        }
    };
    let args = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    let file = |f: &std::path::Path| f.display().to_string();

    let applied = run([args("apply --server-side -f"), vec![file(&crd_file)]].concat()).await?;
    assert!(applied.contains("serverside-applied"), "{applied}");
    let crds = run(args("get crd")).await?;
    assert!(crds.contains("sealedsecrets.bitnami.com"), "{crds}");
    run(args(
        "wait --for=condition=established --timeout=10s crd/sealedsecrets.bitnami.com",
    ))
    .await?;
    run([args("apply --server-side -f"), vec![file(&objects_file)]].concat()).await?;
    let listed = run(args("get sealedsecrets")).await?;
    assert!(listed.contains("mysecret"), "{listed}");
    let secret: Value = serde_json::from_str(&run(args("get secret plain -o json")).await?)?;
    assert_eq!(secret["data"]["user"], "YWRtaW4=");
    // Re-applying the same file changes nothing.
    let rv = server.resource_version();
    run([args("apply --server-side -f"), vec![file(&objects_file)]].concat()).await?;
    assert_eq!(server.resource_version(), rv);
    assert!(
        server
            .get_object(&sealed_secrets_gvr(), Some("default"), "mysecret")
            .is_some()
    );

    // Server-side dry runs validate without storing.
    let dry_run_file = dir.path().join("dry-run.yaml");
    std::fs::write(
        &dry_run_file,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dry\n  namespace: default\n",
    )?;
    let dry = run([
        args("apply --server-side --dry-run=server -f"),
        vec![file(&dry_run_file)],
    ]
    .concat())
    .await?;
    assert!(dry.contains("server dry run"), "{dry}");
    assert!(
        server
            .get_object(
                &GroupVersionResource::gvr("", "v1", "configmaps"),
                Some("default"),
                "dry"
            )
            .is_none()
    );
    Ok(())
}

fn find_kubectl() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("kubectl"))
        .find(|candidate| candidate.is_file())
}

#[tokio::test]
async fn services_proxy_forwards_to_a_registered_url() -> TestResult {
    use axum::routing::{get, post};
    let upstream = axum::Router::new()
        .route(
            "/v1/cert.pem",
            get(|| async { "-----BEGIN CERTIFICATE-----\n" }),
        )
        .route(
            "/v1/verify",
            post(|body: String| async move { (axum::http::StatusCode::CONFLICT, body) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let upstream_url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, upstream).await });

    let server = ApiServer::new();
    let client = server.client();
    let base = "/api/v1/namespaces/kube-system/services/http:sealed-secrets-controller:http/proxy";
    let request = |method: &str, path: &str, body: &str| {
        http::Request::builder()
            .method(method)
            .uri(format!("{base}{path}"))
            .body(body.as_bytes().to_vec())
    };
    let unavailable = client
        .request_text(request("GET", "/v1/cert.pem", "")?)
        .await;
    assert!(
        matches!(&unavailable, Err(kube::Error::Api(s)) if s.code == 503),
        "{unavailable:?}"
    );

    server.proxy_service("kube-system", "sealed-secrets-controller", &upstream_url);
    let cert = client
        .request_text(request("GET", "/v1/cert.pem", "")?)
        .await?;
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
    let verify = client
        .request_text(request("POST", "/v1/verify", "kind: SealedSecret")?)
        .await;
    assert!(
        matches!(&verify, Err(kube::Error::Api(s)) if s.code == 409),
        "upstream status passes through: {verify:?}"
    );

    let rbac = server.rbac_summary();
    assert!(
        rbac.contains(&(String::new(), "services/proxy".into(), "get".into())),
        "{rbac:?}"
    );
    assert!(
        rbac.contains(&(String::new(), "services/proxy".into(), "create".into())),
        "{rbac:?}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Differences from the real API server (found by the controller's scenarios on the real control
// plane, tests/src/real.rs), fixed in the double

/// The managers of a Secret as served in its `metadata.managedFields`:
/// `(manager, operation, fieldsV1)`.
fn served_managers(secret: &Secret) -> Vec<(String, String, Value)> {
    secret
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|m| {
            assert_eq!(m.fields_type.as_deref(), Some("FieldsV1"));
            assert_eq!(m.api_version.as_deref(), Some("v1"));
            (
                m.manager.clone().unwrap_or_default(),
                m.operation.clone().unwrap_or_default(),
                m.fields_v1
                    .as_ref()
                    .map(|f| f.0.clone())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

/// `metadata.managedFields` is served, as the real API server serves it: one entry per manager
/// and operation (`Apply` for server-side apply, `Update` for other writes), `FieldsV1` naming
/// the fields it owns; what a client sends there is ignored. (The double used to keep managers
/// aside and serve none: a client reading who manages a field from the object saw nothing.)
#[tokio::test]
async fn managed_fields_are_served_in_metadata() -> TestResult {
    let server = ApiServer::new();
    let secrets: Api<Secret> = Api::namespaced(server.client(), "default");
    let applied = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": "s", "labels": { "app": "web" } },
        "data": { "a": "MQ==" },
    });
    let created = secrets
        .patch("s", &PatchParams::apply("alice"), &Patch::Apply(&applied))
        .await?;
    let alice = (
        "alice".to_owned(),
        "Apply".to_owned(),
        json!({ "f:data": { "f:a": {} }, "f:metadata": { "f:labels": { "f:app": {} } } }),
    );
    assert_eq!(served_managers(&created), std::slice::from_ref(&alice));

    let patch = json!({ "data": { "b": "Mg==" } });
    let by_bob = PatchParams {
        field_manager: Some("bob".into()),
        ..PatchParams::default()
    };
    secrets.patch("s", &by_bob, &Patch::Merge(&patch)).await?;
    let read = secrets.get("s").await?;
    let bob = (
        "bob".to_owned(),
        "Update".to_owned(),
        json!({ "f:data": { "f:b": {} } }),
    );
    assert_eq!(served_managers(&read), [alice.clone(), bob.clone()]);

    // Sent back as read (managedFields included), a replace changes nothing it names.
    let mut replaced = read.clone();
    replaced.metadata.managed_fields = Some(Vec::new());
    let replaced = secrets
        .replace("s", &PostParams::default(), &replaced)
        .await?;
    assert_eq!(
        replaced.resource_version(),
        read.resource_version(),
        "a no-op"
    );
    assert_eq!(served_managers(&replaced), [alice, bob]);
    Ok(())
}

/// With [`ApiServer::require_namespaces`], as on a real cluster (its NamespaceLifecycle
/// admission): nothing is created in a namespace that does not exist (404 naming the
/// namespace); objects that exist still update. (The double used to
/// create anything anywhere, so a test could pass on it and fail on the real plane for want of
/// a namespace.) Off by default: the double's other users create where they like.
#[tokio::test]
async fn creates_need_an_existing_namespace_when_required() -> TestResult {
    let server = ApiServer::new();
    let client = server.client();
    let in_ns = |ns: &str| Api::<ConfigMap>::namespaced(client.clone(), ns);
    in_ns("lenient")
        .create(&PostParams::default(), &config_map("before", &[]))
        .await?;

    server.require_namespaces(true);
    let missing = in_ns("missing")
        .create(&PostParams::default(), &config_map("c", &[]))
        .await;
    match &missing {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 404, "{status:?}");
            assert_eq!(status.message, "namespaces \"missing\" not found");
        }
        other => panic!("created in a missing namespace: {other:?}"),
    }
    let applied = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "c" } });
    let apply = in_ns("missing")
        .patch("c", &PatchParams::apply("t"), &Patch::Apply(&applied))
        .await;
    assert_eq!(api_code(apply), Some(404), "an apply that would create");

    // The bootstrap namespaces exist; a new one can be made and used.
    in_ns("default")
        .create(&PostParams::default(), &config_map("c", &[]))
        .await?;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let namespace = serde_json::from_value(json!({ "metadata": { "name": "made" } }))?;
    namespaces
        .create(&PostParams::default(), &namespace)
        .await?;
    in_ns("made")
        .create(&PostParams::default(), &config_map("c", &[]))
        .await?;
    // What already exists in a namespace that does not still updates.
    let patch = json!({ "data": { "k": "v" } });
    in_ns("lenient")
        .patch("before", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// A Deployment's `spec.selector` is immutable in apps/v1, as the real API server enforces
/// (422 "field is immutable" for a replace, a merge patch and a server-side apply alike): a
/// chart upgrade that changes the selector fails on a cluster, so it must fail here too. (The
/// double used to accept the change, so a `helm upgrade` over Bitnami's release passed here
/// and failed on the real plane.) The pod template's labels may still change.
#[tokio::test]
async fn deployment_selector_is_immutable() -> TestResult {
    let server = ApiServer::new();
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::default_namespaced(server.client());
    let deployment = |selector: Value, labels: Value| {
        serde_json::from_value::<k8s_openapi::api::apps::v1::Deployment>(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "controller" },
            "spec": {
                "selector": { "matchLabels": selector },
                "template": {
                    "metadata": { "labels": labels },
                    "spec": { "containers": [{ "name": "c", "image": "busybox" }] }
                }
            }
        }))
    };
    let bitnami = json!({ "app.kubernetes.io/name": "sealed-secrets" });
    let other = json!({ "app.kubernetes.io/name": "sealbox" });
    let created = deployments
        .create(
            &PostParams::default(),
            &deployment(bitnami.clone(), bitnami.clone())?,
        )
        .await?;

    let immutable = |what: &str, result: Result<_, kube::Error>| match result {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{what}: {status:?}");
            assert!(
                status
                    .message
                    .starts_with("Deployment.apps \"controller\" is invalid: ")
                    && status.message.contains("spec.selector: Invalid value: ")
                    && status.message.ends_with("field is immutable"),
                "{what}: {}",
                status.message
            );
        }
        Ok(changed) => panic!("{what}: the selector changed: {changed:?}"),
        Err(other) => panic!("{what}: {other:?}"),
    };
    let mut replaced = deployment(other.clone(), other.clone())?;
    replaced.metadata.resource_version = created.resource_version();
    immutable(
        "replace",
        deployments
            .replace("controller", &PostParams::default(), &replaced)
            .await,
    );
    let patch = json!({ "spec": { "selector": { "matchLabels": other } } });
    immutable(
        "merge patch",
        deployments
            .patch("controller", &PatchParams::default(), &Patch::Merge(&patch))
            .await,
    );
    let applied = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "controller" },
        "spec": { "selector": { "matchLabels": other } }
    });
    immutable(
        "server-side apply",
        deployments
            .patch(
                "controller",
                &PatchParams::apply("t").force(),
                &Patch::Apply(&applied),
            )
            .await,
    );
    let kept = deployments.get("controller").await?;
    assert_eq!(
        serde_json::to_value(kept.spec.map(|s| s.selector))?,
        json!({ "matchLabels": bitnami }),
        "a refused change leaves the selector as it was"
    );

    // The same selector with more pod labels is an ordinary update.
    let mut relabelled = deployment(
        bitnami.clone(),
        json!({ "app.kubernetes.io/name": "sealed-secrets", "app.kubernetes.io/part-of": "sealbox" }),
    )?;
    relabelled.metadata.resource_version = kept.metadata.resource_version;
    deployments
        .replace("controller", &PostParams::default(), &relabelled)
        .await?;
    Ok(())
}
