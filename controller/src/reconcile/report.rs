//! How a reconcile's outcome is told: the `Synced` condition metric, a Warning event once per
//! distinct failure (a Normal event when the Secret is written), and the status subresource,
//! written only when [`status::next_status`] says it changed.

use jiff::Timestamp;
use kube::Resource as _;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use sealbox_crds::{SYNCED_CONDITION, SealedSecret};
use tracing::{debug, warn};

use crate::bounds::{self, MAX_MESSAGE};
use crate::error::{Error, Result};
use crate::object::{FIELD_MANAGER, ObjectKey, error_chain};
use crate::reconcile::context::Context;
use crate::reconcile::memory::{Memory, Reported, WrittenStatus};
use crate::status::{self, Outcome};

/// Reports a permanent failure: log line and event once per distinct failure (the status it
/// writes brings the object back, and the reconcile finds the same failure), and status.
pub(super) async fn fail(
    ctx: &Context,
    sealed: &SealedSecret,
    key: &ObjectKey,
    uid: &str,
    reason: &'static str,
    message: String,
) -> Result<()> {
    let outcome = Outcome::failed(reason, &message);
    if let Outcome::Failed { message, .. } = &outcome {
        let reported = Some(Reported::Failed {
            message: message.clone(),
        });
        if ctx.memory.recall(key, uid).reported == reported {
            debug!(reason, error = %message, "cannot sync SealedSecret (reported already)");
        } else {
            // The reconcile's span names the object.
            warn!(reason, error = %message, "cannot sync SealedSecret");
        }
    }
    report(ctx, sealed, key, uid, &outcome).await
}

/// The SealedSecret's `app.kubernetes.io/instance` label, which Bitnami's condition metric
/// carries as `ss_app_kubernetes_io_instance` (empty without one).
fn instance_label(sealed: &SealedSecret) -> &str {
    sealed
        .metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get("app.kubernetes.io/instance"))
        .map_or("", String::as_str)
}

/// Records `outcome`: a Warning event when it is a failure not reported yet, and the status
/// when it changed.
pub(super) async fn report(
    ctx: &Context,
    sealed: &SealedSecret,
    key: &ObjectKey,
    uid: &str,
    outcome: &Outcome,
) -> Result<()> {
    ctx.metrics.set_condition(
        &key.namespace,
        &key.name,
        SYNCED_CONDITION,
        instance_label(sealed),
        Some(matches!(outcome, Outcome::Synced)),
    );
    let memory = ctx.memory.recall(key, uid);
    if let Outcome::Failed { reason, message } = outcome {
        let already = memory.reported
            == Some(Reported::Failed {
                message: message.clone(),
            });
        if !already {
            publish(ctx, sealed, EventType::Warning, reason, message).await;
            ctx.memory.update(key, uid, |m| {
                m.reported = Some(Reported::Failed {
                    message: message.clone(),
                })
            });
        }
    }
    if !ctx.settings.update_status {
        return Ok(());
    }
    write_status(ctx, sealed, key, uid, &memory, outcome).await
}

/// Writes the status `outcome` calls for, unless the object already shows it.
async fn write_status(
    ctx: &Context,
    sealed: &SealedSecret,
    key: &ObjectKey,
    uid: &str,
    memory: &Memory,
    outcome: &Outcome,
) -> Result<()> {
    // Until the watch delivers our last status write, the cached object predates it. Once it
    // has, the copy is dropped: kept for every object, it would be most of what the controller
    // remembers about them.
    let cached = sealed.status.as_ref();
    let current = match &memory.written_status {
        Some(written) if written.version == sealed.metadata.resource_version => {
            Some(&written.status)
        }
        Some(_) => {
            ctx.memory.update(key, uid, |m| m.written_status = None);
            cached
        }
        None => cached,
    };
    let Some(next) = status::next_status(
        current,
        sealed.metadata.generation,
        outcome,
        Timestamp::now(),
    ) else {
        return Ok(());
    };
    // Dynamic, not typed: the response of a malformed object must not fail to parse.
    let resource = ApiResource::erase::<SealedSecret>(&());
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &key.namespace, &resource);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    let patch = serde_json::json!({ "status": next });
    match api
        .patch_status(&key.name, &params, &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.is_not_found() => return Ok(()),
        Err(source) => {
            return Err(Error::PatchStatus {
                sealed_secret: format!("{}/{}", key.namespace, key.name),
                source,
            });
        }
    }
    let written = WrittenStatus {
        version: sealed.metadata.resource_version.clone(),
        status: next,
    };
    ctx.memory
        .update(key, uid, |m| m.written_status = Some(Box::new(written)));
    Ok(())
}

/// Publishes an event about `sealed`; a failure to publish is logged, never fatal.
pub(super) async fn publish(
    ctx: &Context,
    sealed: &SealedSecret,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(event_note(note)),
        action: "Unseal".to_owned(),
        secondary: None,
    };
    let result = match type_ {
        EventType::Warning => ctx.recorder.publish(&event, &sealed.object_ref(&())).await,
        EventType::Normal => {
            Recorder::new(ctx.client.clone(), ctx.reporter.clone())
                .publish(&event, &sealed.object_ref(&()))
                .await
        }
    };
    if let Err(error) = result {
        warn!(error = %error_chain(&error), reason, "publishing an event failed");
    }
}

/// An event's note: at most [`MAX_MESSAGE`] bytes, the longest the events API accepts.
fn event_note(note: &str) -> String {
    bounds::truncate(note, MAX_MESSAGE).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_notes_are_bounded() {
        assert_eq!(
            event_note("SealedSecret unsealed successfully"),
            "SealedSecret unsealed successfully"
        );
        let note = event_note(&"é".repeat(MAX_MESSAGE));
        assert!(note.len() <= MAX_MESSAGE && note.ends_with("..."));
    }
}
