//! The reconcile loop body: SealedSecret → Secret, status and events.
//!
//! Shape of kube-rs's controller-rs: [`reconcile`] + [`error_policy`] over a shared [`Context`].
//! Decisions are made by the pure modules ([`desired`](crate::desired),
//! [`ownership`](crate::ownership), [`status`](crate::status)); this module only reads and
//! writes. Permanent failures become a `Synced=False` condition and a Warning event and wait for
//! a change; transient ones (API errors) are retried with backoff.
//!
//! Watch events arrive for our own writes (the Secret we applied, the status we patched). To keep
//! those from costing a second unseal, each object's last successful result is remembered with a
//! digest of everything the Secret depends on and the Secret's resourceVersion after our write:
//! while both match, a reconcile costs no request when the Secret watch has shown that version
//! ([`OwnedSecrets`]), else one metadata-only GET.
//!
//! The cache holds SealedSecrets without their sealed values
//! ([`WatchedSealedSecret`]); a reconcile that has to unseal reads the object whole first. Unsealing runs on the [`UnsealPool`]'s threads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource as _, ResourceExt as _};
use sealbox_crds::{SYNCED_CONDITION, SealedSecret, SealedSecretStatus};
use sealbox_crypto::Fingerprint;
use tracing::{Span, debug, info, instrument, warn};

use crate::bounds::{self, MAX_MESSAGE};
use crate::desired::{SecretWithData, UnsealOptions, check_key_trust, desired_secret};
use crate::error::{Error, Result};
use crate::keys::KeyRegistry;
use crate::metrics::Metrics;
use crate::object::{FIELD_MANAGER, ObjectKey, error_chain};
use crate::owned::OwnedSecrets;
use crate::ownership::{self, Leftovers, Plan};
use crate::pool::UnsealPool;
use crate::status::{self, Outcome, REASON_UNSEAL_FAILED, REASON_UNSEALED, REASON_UPDATE_FAILED};
use crate::unseal::UnsealError;
use crate::watched::WatchedSealedSecret;

/// `reason` labels of `sealed_secrets_controller_unseal_errors_total` that Bitnami uses too:
/// values that do not decrypt (or a malformed object), a Secret that is not ours, a write the
/// API server refused. Transient failures are labelled with [`Error::category`].
const REASON_METRIC_UNSEAL: &str = "unseal";
const REASON_METRIC_UNMANAGED: &str = "unmanaged";
const REASON_METRIC_UPDATE: &str = "update";

/// Transient failures in a row after which the status reports them.
const FAILURES_BEFORE_REPORTING: u32 = 3;
/// Longest wait between retries of a transient failure.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Behaviour chosen by flags.
#[derive(Debug, Clone, Copy)]
pub struct ReconcileSettings {
    /// Write the status subresource.
    pub update_status: bool,
    /// Accept the deprecated `spec.data`.
    pub accept_deprecated_v1_data: bool,
}

/// What every reconcile shares.
pub struct Context {
    client: Client,
    keys: KeyRegistry,
    /// The namespace of the key Secrets: no SealedSecret produces a Secret loadable as a key.
    key_namespace: String,
    /// Warnings go through one `Recorder`, whose cache turns a repeated warning into a series
    /// (it keeps every event for six minutes, with no bound).
    recorder: Recorder,
    /// Normal events, one per unsealed object and rarely repeated, bypass that cache: at cold
    /// start it would hold one event per SealedSecret (~2 KB each).
    reporter: Reporter,
    settings: ReconcileSettings,
    unseal_pool: UnsealPool,
    memory: Mutex<HashMap<ObjectKey, Memory>>,
    owned: OwnedSecrets,
    in_flight: AtomicUsize,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// What the controller remembers about one SealedSecret between reconciles.
#[derive(Debug, Clone, Default)]
struct Memory {
    uid: String,
    /// Digest of the inputs the last outcome was computed from.
    digest: u64,
    /// The key that last unsealed the object.
    key: Option<Fingerprint>,
    /// The last outcome reported (event and status).
    reported: Option<Reported>,
    /// Transient failures in a row.
    failures: u32,
    /// The key-set epoch at which unsealing the inputs of `digest` failed (and was reported):
    /// until the object or the keys change, trying again cannot succeed.
    unseal_failed_at: Option<u64>,
    /// The status last written, until the cache shows it.
    written_status: Option<Box<WrittenStatus>>,
}

/// A status write the cache may not have seen yet.
#[derive(Debug, Clone)]
struct WrittenStatus {
    /// The object's resourceVersion just before the write: while the cache still shows this
    /// version, it predates the write.
    version: Option<String>,
    status: SealedSecretStatus,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Reported {
    /// The Secret matched; its resourceVersion then.
    Synced { secret_version: Option<String> },
    /// This failure was reported.
    Failed { message: String },
}

impl Context {
    /// A context unsealing with `keys` (kept in `key_namespace`) on `unseal_threads` threads,
    /// counting in `metrics`.
    pub fn new(
        client: Client,
        keys: KeyRegistry,
        key_namespace: String,
        reporter: Reporter,
        settings: ReconcileSettings,
        unseal_threads: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        Context {
            recorder: Recorder::new(client.clone(), reporter.clone()),
            reporter,
            client,
            keys,
            key_namespace,
            settings,
            unseal_pool: UnsealPool::new(unseal_threads),
            memory: Mutex::new(HashMap::new()),
            owned: OwnedSecrets::default(),
            in_flight: AtomicUsize::new(0),
            metrics,
        }
    }

    /// Reconciles running right now (shutdown waits for them, not for queued ones).
    pub fn reconciles_in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// The key registry.
    pub fn keys(&self) -> &KeyRegistry {
        &self.keys
    }

    /// The owned Secrets' versions as the watch shows them; [`controller::run`] feeds it.
    ///
    /// [`controller::run`]: crate::controller::run
    pub fn owned_secrets(&self) -> &OwnedSecrets {
        &self.owned
    }

    /// Forgets objects that no longer exist, and their condition metric.
    pub fn retain_objects(&self, live: impl Fn(&ObjectKey, &str) -> bool) {
        self.lock().retain(|key, memory| {
            let keep = live(key, &memory.uid);
            if !keep {
                self.metrics
                    .forget_condition(&key.namespace, &key.name, SYNCED_CONDITION);
            }
            keep
        });
    }

    /// Forgets a SealedSecret that was deleted, and its condition metric.
    pub fn forget(&self, key: &ObjectKey) {
        self.lock().remove(key);
        self.metrics
            .forget_condition(&key.namespace, &key.name, SYNCED_CONDITION);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, Memory>> {
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The memory of `key` for the object with `uid` (a recreated object starts afresh).
    fn recall(&self, key: &ObjectKey, uid: &str) -> Memory {
        match self.lock().get(key) {
            Some(memory) if memory.uid == uid => memory.clone(),
            _ => Memory {
                uid: uid.to_owned(),
                ..Memory::default()
            },
        }
    }

    fn update(&self, key: &ObjectKey, uid: &str, f: impl FnOnce(&mut Memory)) {
        let mut map = self.lock();
        let memory = map.entry(key.clone()).or_default();
        if memory.uid != uid {
            *memory = Memory {
                uid: uid.to_owned(),
                ..Memory::default()
            };
        }
        f(memory);
    }
}

/// Entry point for the controller: reconciles a well-formed SealedSecret, reports a malformed
/// one.
pub async fn reconcile_object(
    object: Arc<WatchedSealedSecret>,
    ctx: Arc<Context>,
) -> Result<Action> {
    let _in_flight = InFlight::enter(&ctx);
    let result = match object.malformed() {
        None => reconcile(object.clone(), ctx.clone()).await,
        Some(problem) => report_malformed(object.sealed(), problem, &ctx).await,
    };
    ctx.metrics.reconciled(result.is_ok());
    result
}

/// Reports a SealedSecret that does not fit the schema; it waits for a change.
async fn report_malformed(sealed: &SealedSecret, problem: &str, ctx: &Context) -> Result<Action> {
    let key = object_key(sealed);
    let uid = sealed.metadata.uid.clone().unwrap_or_default();
    let outcome = Outcome::failed(REASON_UNSEAL_FAILED, problem);
    if let Outcome::Failed { message, .. } = &outcome {
        warn!(namespace = %key.namespace, name = %key.name, error = %message, "malformed SealedSecret");
    }
    ctx.metrics
        .unseal_failed(REASON_METRIC_UNSEAL, &key.namespace);
    report(ctx, sealed, &key, &uid, &outcome).await?;
    Ok(Action::await_change())
}

/// Counts a running reconcile until dropped.
struct InFlight(Arc<Context>);

impl InFlight {
    fn enter(ctx: &Arc<Context>) -> Self {
        ctx.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(ctx.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Reconciles one well-formed SealedSecret.
#[instrument(skip_all, fields(namespace, name))]
pub async fn reconcile(object: Arc<WatchedSealedSecret>, ctx: Arc<Context>) -> Result<Action> {
    let sealed = object.sealed();
    let key = object_key(sealed);
    Span::current().record("namespace", key.namespace.as_str());
    Span::current().record("name", key.name.as_str());
    let uid = sealed.metadata.uid.clone().unwrap_or_default();
    if sealed.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }

    match sync(&object, &ctx, &key, &uid).await {
        Ok(action) => {
            ctx.update(&key, &uid, |m| m.failures = 0);
            Ok(action)
        }
        Err(error) => {
            ctx.metrics.unseal_failed(error.category(), &key.namespace);
            let mut failures = 0;
            ctx.update(&key, &uid, |m| {
                m.failures = m.failures.saturating_add(1);
                failures = m.failures;
            });
            if failures >= FAILURES_BEFORE_REPORTING && !matches!(error, Error::NoKeys) {
                let outcome = Outcome::failed(REASON_UPDATE_FAILED, &error_chain(&error));
                if let Err(e) = report(&ctx, sealed, &key, &uid, &outcome).await {
                    debug!(error = %error_chain(&e), "reporting a transient failure failed");
                }
            }
            Err(error)
        }
    }
}

/// Retries transient failures with exponential backoff per object.
pub fn error_policy(object: Arc<WatchedSealedSecret>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = ObjectKey::new(object.namespace().unwrap_or_default(), object.name_any());
    let failures = ctx.lock().get(&key).map_or(1, |m| m.failures.max(1));
    let delay = backoff(failures);
    let error = error_chain(error);
    warn!(
        namespace = %key.namespace, name = %key.name, error = %bounds::truncate(&error, MAX_MESSAGE),
        retry_in = ?delay, "reconcile failed"
    );
    Action::requeue(delay)
}

/// 1s, 2s, 4s, ... capped at five minutes.
pub fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    Duration::from_secs(1u64 << exponent).min(MAX_BACKOFF)
}

async fn sync(
    cached: &WatchedSealedSecret,
    ctx: &Context,
    key: &ObjectKey,
    uid: &str,
) -> Result<Action> {
    let keys = ctx.keys.snapshot();
    if keys.is_empty() {
        return Err(Error::NoKeys);
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let digest = cached.digest(ctx.settings.accept_deprecated_v1_data);
    let memory = ctx.recall(key, uid);

    // Fast path: nothing this Secret depends on changed since we last made it match, and the
    // Secret is still as we left it: the watch shows it so, or else the API server does.
    if memory.digest == digest
        && let Some(Reported::Synced { secret_version }) = &memory.reported
    {
        let unchanged = match secret_version {
            Some(version) if ctx.owned.is_at(key, version) => true,
            _ => secrets
                .get_metadata_opt(&key.name)
                .await
                .map_err(|source| Error::GetSecret {
                    secret: format!("{}/{}", key.namespace, key.name),
                    source,
                })?
                .is_some_and(|m| m.metadata.resource_version == *secret_version),
        };
        if unchanged {
            report(ctx, cached.sealed(), key, uid, &Outcome::Synced).await?;
            return Ok(Action::await_change());
        }
    }

    let epoch = ctx.keys.epoch();
    if memory.digest == digest && memory.unseal_failed_at == Some(epoch) {
        return Ok(Action::await_change());
    }

    // Unsealing needs the sealed values, which the cache leaves out: read the object afresh. It
    // may be newer than the cache; what follows is about it.
    let Some(fetched) = fetch(ctx, key).await? else {
        // Deleted meanwhile.
        return Ok(Action::await_change());
    };
    if fetched.malformed().is_some() || fetched.sealed().metadata.uid.as_deref() != Some(uid) {
        // Changed into a malformed object, or deleted and created again: the watch delivers
        // that version next, and its reconcile deals with it.
        return Ok(Action::await_change());
    }
    let digest = fetched.digest(ctx.settings.accept_deprecated_v1_data);
    let sealed = fetched.sealed();

    let unsealed = match check_key_trust(sealed, Some(&ctx.key_namespace)) {
        Ok(()) => unseal(ctx, sealed, memory.key.clone()).await?,
        Err(refused) => Err(refused),
    };
    let desired = match unsealed {
        Ok(desired) => desired,
        Err(error) => {
            ctx.metrics
                .unseal_failed(REASON_METRIC_UNSEAL, &key.namespace);
            ctx.update(key, uid, |m| {
                m.digest = digest;
                m.unseal_failed_at = None;
            });
            fail(
                ctx,
                sealed,
                key,
                uid,
                REASON_UNSEAL_FAILED,
                error.to_string(),
            )
            .await?;
            ctx.update(key, uid, |m| m.unseal_failed_at = Some(epoch));
            return Ok(Action::await_change());
        }
    };
    ctx.update(key, uid, |m| {
        m.digest = digest;
        m.unseal_failed_at = None;
        if desired.decrypted_with.is_some() {
            m.key = desired.decrypted_with.clone();
        }
    });

    match write_secret(&secrets, desired.secret, uid).await? {
        Written::Refused { metric, message } => {
            ctx.metrics.unseal_failed(metric, &key.namespace);
            fail(ctx, sealed, key, uid, REASON_UPDATE_FAILED, message).await?;
        }
        Written::Unchanged(version) => {
            ctx.update(key, uid, |m| {
                m.reported = Some(Reported::Synced {
                    secret_version: version,
                })
            });
            report(ctx, sealed, key, uid, &Outcome::Synced).await?;
        }
        Written::Changed(version) => {
            info!("Secret written");
            ctx.update(key, uid, |m| {
                m.reported = Some(Reported::Synced {
                    secret_version: version,
                })
            });
            publish(
                ctx,
                sealed,
                EventType::Normal,
                REASON_UNSEALED,
                "SealedSecret unsealed successfully",
            )
            .await;
            report(ctx, sealed, key, uid, &Outcome::Synced).await?;
        }
    }
    Ok(Action::await_change())
}

/// Reads the SealedSecret `key` whole, or `None` when it is gone.
async fn fetch(ctx: &Context, key: &ObjectKey) -> Result<Option<WatchedSealedSecret>> {
    // Dynamic, not typed: a malformed object must not fail to parse.
    let resource = ApiResource::erase::<SealedSecret>(&());
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &key.namespace, &resource);
    let object = api
        .get_opt(&key.name)
        .await
        .map_err(|source| Error::GetSealedSecret {
            sealed_secret: format!("{}/{}", key.namespace, key.name),
            source,
        })?;
    Ok(object.map(WatchedSealedSecret::whole))
}

/// Unseals on one of the unseal threads.
async fn unseal(
    ctx: &Context,
    sealed: &Arc<SealedSecret>,
    remembered: Option<Fingerprint>,
) -> Result<std::result::Result<crate::desired::DesiredSecret, UnsealError>> {
    let keys = ctx.keys.snapshot();
    let accept_deprecated_v1_data = ctx.settings.accept_deprecated_v1_data;
    let object = sealed.clone();
    let metrics = ctx.metrics.clone();
    ctx.unseal_pool
        .run(move || {
            let _timer = metrics.unseal_started();
            desired_secret(
                &object,
                &keys,
                &UnsealOptions {
                    accept_deprecated_v1_data,
                    remembered_key: remembered.as_ref(),
                },
            )
        })
        .await
        .map_err(|source| Error::UnsealTask {
            sealed_secret: format!(
                "{}/{}",
                sealed.namespace().unwrap_or_default(),
                sealed.name_any()
            ),
            source,
        })
}

enum Written {
    /// Written; the Secret's resourceVersion afterwards.
    Changed(Option<String>),
    /// Already right; its resourceVersion.
    Unchanged(Option<String>),
    /// Not ours to write, or the API refused it for good.
    Refused {
        /// The `reason` label of the unseal error metric.
        metric: &'static str,
        /// For the status and the event.
        message: String,
    },
}

/// Brings the Secret in line with `desired`, if it is ours to write.
async fn write_secret(
    secrets: &Api<Secret>,
    mut desired: SecretWithData,
    uid: &str,
) -> Result<Written> {
    let name = desired.get().metadata.name.clone().unwrap_or_default();
    let namespace = desired.get().metadata.namespace.clone().unwrap_or_default();
    let id = format!("{namespace}/{name}");
    let existing = secrets
        .get_opt(&name)
        .await
        .map_err(|source| Error::GetSecret {
            secret: id.clone(),
            source,
        })?
        .map(SecretWithData::new);

    let plan = ownership::plan(
        existing.as_ref().map(SecretWithData::get),
        desired.get(),
        Some(uid),
    );
    let write = match plan {
        Err(refusal) => {
            return Ok(Written::Refused {
                metric: REASON_METRIC_UNMANAGED,
                message: refusal.to_string(),
            });
        }
        Ok(Plan::InSync) => {
            let version = existing.and_then(|e| e.get().metadata.resource_version.clone());
            return Ok(Written::Unchanged(version));
        }
        Ok(Plan::Write(write)) => write,
    };
    drop(existing);

    write.prepare(desired.get_mut());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let applied = match secrets
        .patch(&name, &params, &Patch::Apply(desired.get()))
        .await
    {
        Ok(applied) => SecretWithData::new(applied),
        Err(kube::Error::Api(status)) if status.is_invalid() => {
            return Ok(Written::Refused {
                metric: REASON_METRIC_UPDATE,
                message: format!(
                    "the API server rejected Secret {name:?}: {}",
                    status.message
                ),
            });
        }
        Err(source) => return Err(Error::ApplySecret { secret: id, source }),
    };

    let mut version = applied.get().metadata.resource_version.clone();
    if !write.leftovers.is_empty() {
        // Keys our apply did not own (another writer's) survive it; a replace removes them.
        let remaining = Leftovers::between(applied.get(), desired.get());
        if !remaining.is_empty() {
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                ..PatchParams::default()
            };
            let pruned = secrets
                .patch(&name, &params, &Patch::Merge(remaining.merge_patch()))
                .await
                .map_err(|source| Error::PruneSecret { secret: id, source })?;
            version = SecretWithData::new(pruned)
                .get()
                .metadata
                .resource_version
                .clone();
        }
    }
    Ok(Written::Changed(version))
}

/// Reports a permanent failure: event (once per distinct failure) and status.
async fn fail(
    ctx: &Context,
    sealed: &SealedSecret,
    key: &ObjectKey,
    uid: &str,
    reason: &'static str,
    message: String,
) -> Result<()> {
    let outcome = Outcome::failed(reason, &message);
    if let Outcome::Failed { message, .. } = &outcome {
        warn!(reason, error = %message, "cannot sync SealedSecret");
    }
    report(ctx, sealed, key, uid, &outcome).await
}

/// Records `outcome`: a Warning event when it is a failure not reported yet, and the status
/// when it changed.
async fn report(
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
        Some(matches!(outcome, Outcome::Synced)),
    );
    let memory = ctx.recall(key, uid);
    if let Outcome::Failed { reason, message } = outcome {
        let already = memory.reported
            == Some(Reported::Failed {
                message: message.clone(),
            });
        if !already {
            publish(ctx, sealed, EventType::Warning, reason, message).await;
            ctx.update(key, uid, |m| {
                m.reported = Some(Reported::Failed {
                    message: message.clone(),
                })
            });
        }
    }
    if !ctx.settings.update_status {
        return Ok(());
    }

    // Until the watch delivers our last status write, the cached object predates it. Once it
    // has, the copy is dropped: kept for every object, it would be most of what the controller
    // remembers about them.
    let cached = sealed.status.as_ref();
    let current = match &memory.written_status {
        Some(written) if written.version == sealed.metadata.resource_version => {
            Some(&written.status)
        }
        Some(_) => {
            ctx.update(key, uid, |m| m.written_status = None);
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
    ctx.update(key, uid, |m| m.written_status = Some(Box::new(written)));
    Ok(())
}

/// Publishes an event about `sealed`; a failure to publish is logged, never fatal.
async fn publish(ctx: &Context, sealed: &SealedSecret, type_: EventType, reason: &str, note: &str) {
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

fn object_key(sealed: &SealedSecret) -> ObjectKey {
    ObjectKey::new(sealed.namespace().unwrap_or_default(), sealed.name_any())
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

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }
}
