//! The reconcile flow: SealedSecret → Secret, status and events.
//!
//! Shape of kube-rs's controller-rs: [`reconcile`] + [`error_policy`] over a shared [`Context`].
//! Decisions are made by pure functions ([`skip`] here; [`desired`](crate::desired),
//! [`ownership`](crate::ownership), [`status`](crate::status)); this module only reads and
//! writes, in the order a SealedSecret goes through: decide whether unsealing can be skipped,
//! read the object whole, unseal it, write the Secret ([`write`]), tell the outcome
//! ([`report`]). Permanent failures become a `Synced=False` condition and a Warning event and
//! wait for a change; transient ones (API errors) are retried with backoff, at most
//! --max-unseal-retries times in a row (Bitnami's rule), then wait for a change too.
//!
//! The cache holds SealedSecrets without their sealed values ([`WatchedSealedSecret`]); a
//! reconcile that has to unseal reads the object whole first. Unsealing runs on the
//! [`UnsealPool`](crate::pool::UnsealPool)'s threads.

mod context;
mod memory;
mod recheck;
mod report;
mod skip;
mod write;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt as _;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use sealbox_crds::SealedSecret;
use sealbox_crypto::Fingerprint;
use tracing::{Span, debug, error, info, instrument, warn};

use self::context::InFlight;
pub use self::context::{Context, ReconcileSettings};
use self::memory::{GaveUp, Memory, Reported};
use self::recheck::Owner;
use self::report::{fail, publish, report};
use self::skip::{SecretSeen, Seen, Step};
use self::write::{Written, write_secret};
use crate::authorship::{Author, Identity};
use crate::bounds::{self, MAX_MESSAGE};
use crate::desired::{
    DesiredSecret, SecretWithData, UnsealOptions, check_key_trust, desired_secret,
};
use crate::error::{Error, Result};
use crate::object::{ObjectKey, error_chain};
use crate::owned::ListMark;
use crate::status::{Outcome, REASON_UNSEAL_FAILED, REASON_UNSEALED, REASON_UPDATE_FAILED};
use crate::unseal::UnsealError;
use crate::watched::WatchedSealedSecret;

/// `reason` label of `sealed_secrets_controller_unseal_errors_total` that Bitnami uses too, for
/// values that do not decrypt (or a malformed object); [`write`] has the others. Transient
/// failures are labelled with [`Error::category`].
const REASON_METRIC_UNSEAL: &str = "unseal";

/// Transient failures in a row after which the status reports them.
const FAILURES_BEFORE_REPORTING: u32 = 3;
/// When a reconcile looks again at a Secret a watch list may have missed the deletion of.
const LOOK_AGAIN: Duration = Duration::from_secs(1);
/// Longest wait between retries of a transient failure.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

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
    if given_up(&object, &ctx, &key, &uid) {
        return Ok(Action::await_change());
    }

    match sync(&object, &ctx, &key, &uid).await {
        Ok(action) => {
            ctx.memory.update(&key, &uid, |m| m.failures = 0);
            Ok(action)
        }
        // Not this object's failure but the controller's state while it starts: the SealedSecrets
        // were listed before the key Secrets were read (or the first key made). Every
        // SealedSecret is reconciled again as soon as the keys change (`key_changes`), so wait
        // for that, without a warning, a retry or a failure counted per object.
        Err(Error::NoKeys) => {
            debug!("no sealing key is loaded yet: waiting for the keys");
            Ok(Action::await_change())
        }
        Err(error) => {
            ctx.metrics.unseal_failed(error.category(), &key.namespace);
            let mut failures = 0;
            ctx.memory.update(&key, &uid, |m| {
                m.failures = m.failures.saturating_add(1);
                failures = m.failures;
            });
            let retries = ctx.settings.max_retries;
            if report_transient(failures, retries) {
                let outcome = Outcome::failed(REASON_UPDATE_FAILED, &error_chain(&error));
                if let Err(e) = report(&ctx, sealed, &key, &uid, &outcome).await {
                    debug!(error = %error_chain(&e), "reporting a transient failure failed");
                }
            }
            Err(error)
        }
    }
}

/// Retries transient failures with exponential backoff per object, at most
/// --max-unseal-retries times in a row; then gives up until the object or the keys change or
/// the resync comes, as Bitnami's controller does (its status and event already tell).
pub fn error_policy(object: Arc<WatchedSealedSecret>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = ObjectKey::new(object.namespace().unwrap_or_default(), object.name_any());
    let failures = ctx.memory.failures(&key);
    let error = bounds::truncate(&error_chain(error), MAX_MESSAGE).into_owned();
    match retry_after(failures, ctx.settings.max_retries) {
        Some(delay) => {
            warn!(namespace = %key.namespace, name = %key.name, %error, retry_in = ?delay,
                  "reconcile failed; will retry");
            Action::requeue(delay)
        }
        None => {
            // The next round (a change, new keys, the resync) gets its retries afresh.
            let uid = object.uid().unwrap_or_default();
            let gave_up = GaveUp {
                digest: object.digest(ctx.settings.accept_deprecated_v1_data),
                key_epoch: ctx.keys.epoch(),
                at: std::time::Instant::now(),
            };
            ctx.memory.update(&key, &uid, |m| {
                m.failures = 0;
                m.gave_up = Some(gave_up);
            });
            error!(namespace = %key.namespace, name = %key.name, %error, failures,
                   "reconcile failed; giving up until the SealedSecret or the keys change or \
                    the next resync (--max-unseal-retries)");
            Action::await_change()
        }
    }
}

/// Whether the controller has given up on the object as it is now (see [`error_policy`]): a
/// reconcile then starts no new round of retries.
fn given_up(object: &WatchedSealedSecret, ctx: &Context, key: &ObjectKey, uid: &str) -> bool {
    let Some(gave_up) = ctx.memory.recall(key, uid).gave_up else {
        return false;
    };
    let digest = object.digest(ctx.settings.accept_deprecated_v1_data);
    let now = std::time::Instant::now();
    if gave_up.holds(digest, ctx.keys.epoch(), now, ctx.settings.resync_period) {
        debug!("given up on until it or the keys change (--max-unseal-retries)");
        return true;
    }
    ctx.memory.update(key, uid, |m| m.gave_up = None);
    false
}

/// When to try again after `failures` transient failures in a row, given `max_retries`
/// (--max-unseal-retries): the backoff while retries are left, `None` to give up.
pub fn retry_after(failures: u32, max_retries: u32) -> Option<Duration> {
    (failures <= max_retries).then(|| backoff(failures))
}

/// Whether the `failures`-th transient failure in a row is reported in the status and an
/// event: from the [`FAILURES_BEFORE_REPORTING`]th on (one blip is not worth a warning), and
/// always the last one before giving up.
pub fn report_transient(failures: u32, max_retries: u32) -> bool {
    failures >= FAILURES_BEFORE_REPORTING || failures > max_retries
}

/// 1s, 2s, 4s, ... capped at five minutes.
pub fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    Duration::from_secs(1u64 << exponent).min(MAX_BACKOFF)
}

/// Brings the Secret of `cached` in line, or confirms it is.
async fn sync(
    cached: &WatchedSealedSecret,
    ctx: &Context,
    key: &ObjectKey,
    uid: &str,
) -> Result<Action> {
    if ctx.keys.snapshot().is_empty() {
        return Err(Error::NoKeys);
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &key.namespace);
    // Before anything is read: whether the Secret watch listed meanwhile (see `settle`).
    let mark = ctx.owned.mark();
    let memory = ctx.memory.recall(key, uid);
    let (step, seen) = next_step(ctx, &secrets, cached, key, &memory).await?;
    match step {
        Step::Skip => {
            ctx.memory.update(key, uid, |m| {
                m.digest = seen.digest;
                m.unseal_failed_at = None;
                m.reported = Some(Reported::Synced {
                    secret_version: seen.secret.version(),
                });
            });
            report(ctx, cached.sealed(), key, uid, &Outcome::Synced).await?;
            return Ok(settle(ctx, key, mark));
        }
        Step::Wait => return Ok(Action::await_change()),
        // `next_step` has asked already: the API server's answer and the proof are final.
        Step::AskApiServer | Step::CheckProof | Step::Unseal => {}
    }
    let epoch = seen.key_epoch;

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
    let sealed = fetched.sealed();
    let remembered = memory.key;
    let digest = fetched.digest(ctx.settings.accept_deprecated_v1_data);
    let Some(desired) = unseal_or_fail(ctx, sealed, key, uid, remembered, digest, epoch).await?
    else {
        return Ok(Action::await_change());
    };
    let keys = ctx.keys.snapshot();
    let sealed_digest = fetched.sealed_digest(ctx.settings.accept_deprecated_v1_data);
    let author = Author {
        keys: &keys,
        identity: identity(key, uid),
        digest: &sealed_digest,
    };
    let owner = Owner::new(ctx, key, uid);
    let written = write_secret(&secrets, desired.secret, &author, &owner).await?;
    let in_place = matches!(written, Written::Changed(_) | Written::Unchanged(_));
    report_written(ctx, sealed, key, uid, written).await?;
    Ok(match in_place {
        true => settle(ctx, key, mark),
        false => Action::await_change(),
    })
}

/// What a reconcile that left the Secret in place (as the API server showed it) waits for: a
/// change, unless the Secret watch listed meanwhile without it, when a deletion after the
/// reconcile's read may never come as an event: then it looks again soon. While the watch
/// lists, [`OwnedSecrets::found`](crate::owned::OwnedSecrets::found) keeps the Secret aside,
/// and the list hands the SealedSecret back if it does not show it.
fn settle(ctx: &Context, key: &ObjectKey, mark: ListMark) -> Action {
    // The Secret has its SealedSecret's name.
    match ctx.owned.found(key, &key.name, mark) {
        true => Action::requeue(LOOK_AGAIN),
        false => Action::await_change(),
    }
}

/// The step [`skip::decide`] chooses and what it was chosen on; the API server is asked for the
/// Secret's version only when the watch cannot tell, and for the Secret whole (its proof of
/// authorship) only when memory cannot.
async fn next_step(
    ctx: &Context,
    secrets: &Api<Secret>,
    cached: &WatchedSealedSecret,
    key: &ObjectKey,
    memory: &Memory,
) -> Result<(Step, Seen)> {
    let uid = cached.sealed().metadata.uid.as_deref().unwrap_or_default();
    let mut seen = Seen {
        digest: cached.digest(ctx.settings.accept_deprecated_v1_data),
        key_epoch: ctx.keys.epoch(),
        secret: match ctx.owned.version(key) {
            None if ctx.owned.listed(&key.namespace) => SecretSeen::Unwritten,
            version => SecretSeen::Watched(version),
        },
    };
    loop {
        match skip::decide(memory, &seen) {
            Step::AskApiServer => {
                seen.secret = secret_version(secrets, key).await?;
                // The keys may have changed while the API server answered.
                seen.key_epoch = ctx.keys.epoch();
            }
            Step::CheckProof => {
                let keys = ctx.keys.snapshot();
                let digest = cached.sealed_digest(ctx.settings.accept_deprecated_v1_data);
                let author = Author {
                    keys: &keys,
                    identity: identity(key, uid),
                    digest: &digest,
                };
                seen.secret = secret_proof(secrets, key, &author).await?;
                seen.key_epoch = ctx.keys.epoch();
            }
            step => return Ok((step, seen)),
        }
    }
}

/// The Secret as the API server has it, and what its proof of authorship shows (a GET with the
/// data, wiped once checked).
async fn secret_proof(
    secrets: &Api<Secret>,
    key: &ObjectKey,
    author: &Author<'_>,
) -> Result<SecretSeen> {
    let secret = secrets
        .get_opt(&key.name)
        .await
        .map_err(|source| Error::GetSecret {
            secret: format!("{}/{}", key.namespace, key.name),
            source,
        })?
        .map(SecretWithData::new);
    Ok(match secret {
        Some(secret) => SecretSeen::Proven {
            version: secret.get().metadata.resource_version.clone(),
            authorship: author.verify(secret.get()),
        },
        None => SecretSeen::Gone,
    })
}

/// The SealedSecret `key` with `uid`, whose Secret a proof of authorship is about.
fn identity<'a>(key: &'a ObjectKey, uid: &'a str) -> Identity<'a> {
    Identity {
        namespace: &key.namespace,
        name: &key.name,
        uid,
    }
}

/// The Secret's resourceVersion as the API server has it (a metadata-only GET).
async fn secret_version(secrets: &Api<Secret>, key: &ObjectKey) -> Result<SecretSeen> {
    let metadata = secrets
        .get_metadata_opt(&key.name)
        .await
        .map_err(|source| Error::GetSecret {
            secret: format!("{}/{}", key.namespace, key.name),
            source,
        })?;
    Ok(match metadata {
        Some(m) => SecretSeen::Read(m.metadata.resource_version),
        None => SecretSeen::Gone,
    })
}

/// Unseals `sealed` (whose inputs have `digest`) and remembers the key that did. A failure is
/// reported and remembered at the key-set `epoch` (the same inputs are not tried again with
/// the same keys), and gives `None`.
async fn unseal_or_fail(
    ctx: &Context,
    sealed: &Arc<SealedSecret>,
    key: &ObjectKey,
    uid: &str,
    remembered: Option<Fingerprint>,
    digest: u64,
    epoch: u64,
) -> Result<Option<DesiredSecret>> {
    let unsealed = match check_key_trust(sealed, Some(&ctx.key_namespace)) {
        Ok(()) => unseal(ctx, sealed, remembered).await?,
        Err(refused) => Err(refused),
    };
    let desired = match unsealed {
        Ok(desired) => desired,
        Err(error) => {
            ctx.metrics
                .unseal_failed(REASON_METRIC_UNSEAL, &key.namespace);
            ctx.memory.update(key, uid, |m| {
                m.digest = digest;
                m.unseal_failed_at = None;
            });
            let message = error.to_string();
            fail(ctx, sealed, key, uid, REASON_UNSEAL_FAILED, message).await?;
            ctx.memory
                .update(key, uid, |m| m.unseal_failed_at = Some(epoch));
            return Ok(None);
        }
    };
    ctx.memory.update(key, uid, |m| {
        m.digest = digest;
        m.unseal_failed_at = None;
        if desired.decrypted_with.is_some() {
            m.key = desired.decrypted_with.clone();
        }
        // The Secret matched other inputs: until it is written for these, nothing may be
        // skipped (a failed write would otherwise leave it with the old values, Synced).
        if matches!(m.reported, Some(Reported::Synced { .. })) {
            m.reported = None;
        }
    });
    Ok(Some(desired))
}

/// Tells what became of the Secret: `Synced` (with a Normal event when it was written), or
/// the failure.
async fn report_written(
    ctx: &Context,
    sealed: &SealedSecret,
    key: &ObjectKey,
    uid: &str,
    written: Written,
) -> Result<()> {
    let (secret_version, changed) = match written {
        Written::Refused { metric, message } => {
            ctx.metrics.unseal_failed(metric, &key.namespace);
            return fail(ctx, sealed, key, uid, REASON_UPDATE_FAILED, message).await;
        }
        Written::OwnerGone => {
            debug!("deleted before its Secret was written; nothing written");
            return Ok(());
        }
        Written::Unchanged(version) => (version, false),
        Written::Changed(version) => {
            info!("Secret written");
            (version, true)
        }
    };
    ctx.memory.update(key, uid, |m| {
        m.reported = Some(Reported::Synced { secret_version })
    });
    if changed {
        let note = "SealedSecret unsealed successfully";
        publish(ctx, sealed, EventType::Normal, REASON_UNSEALED, note).await;
    }
    report(ctx, sealed, key, uid, &Outcome::Synced).await
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
) -> Result<std::result::Result<DesiredSecret, UnsealError>> {
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

fn object_key(sealed: &SealedSecret) -> ObjectKey {
    ObjectKey::new(sealed.namespace().unwrap_or_default(), sealed.name_any())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_failures_are_retried_max_unseal_retries_times() {
        // Bitnami's default of 5: six attempts in all, then it gives up.
        let delays: Vec<_> = (1..=6).map(|f| retry_after(f, 5)).collect();
        assert_eq!(delays[..5].iter().flatten().count(), 5);
        assert_eq!(delays[5], None);
        assert_eq!(retry_after(1, 0), None, "0: no retry");
        assert_eq!(retry_after(2, 1), None);
        assert_eq!(retry_after(1, 1), Some(Duration::from_secs(1)));
        // Reported from the third failure on, and always the one that gives up.
        let reported: Vec<bool> = (1..=6).map(|f| report_transient(f, 5)).collect();
        assert_eq!(reported, [false, false, true, true, true, true]);
        assert!(report_transient(1, 0));
        assert!(!report_transient(1, 1) && report_transient(2, 1));
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }
}
