//! Wiring of kube-rs's `Controller`: which SealedSecrets are watched, the owned Secrets
//! (metadata only: no Secret data is cached), re-queuing everything when the keys change, and
//! shutdown.
//!
//! SealedSecrets are parsed as they arrive into [`WatchedSealedSecret`]s, which carry a malformed
//! object's problem instead of failing (one object that does not fit the schema fails alone
//! instead of breaking the list and the watch), and leave the sealed values out of the cache.

use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc;
use futures::future::join_all;
use futures::{Stream, StreamExt as _, TryStreamExt as _, stream};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::keys::KeyRegistry;
use crate::object::{ObjectKey, error_chain};
use crate::reconcile::{Context, error_policy, reconcile_object};
use crate::resync;
use crate::server::Readiness;
use crate::watched::WatchedSealedSecret;

/// How often memory (and the condition metric) of deleted SealedSecrets is dropped. Deletions
/// that garbage-collect an owned Secret are noticed at once; this catches the rest.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);
/// Longest wait at shutdown for running reconciles to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Which SealedSecrets to reconcile, and how many at once.
#[derive(Debug, Clone, Default)]
pub struct WatchSettings {
    /// Namespaces to watch; `None` for all.
    pub namespaces: Option<Vec<String>>,
    /// Label selector on SealedSecrets.
    pub label_selector: Option<String>,
    /// Concurrent reconciles per watched scope (0 = unbounded).
    pub concurrency: u16,
    /// --skip-recreate: do not watch the Secrets written, so a changed or deleted one waits
    /// for its SealedSecret to change.
    pub skip_recreate: bool,
    /// How often every SealedSecret is reconciled whatever the watches showed (jittered; zero
    /// for never): the backstop for a change no watch delivered.
    pub resync_period: Duration,
}

/// Runs the controllers until `shutdown` turns true.
pub async fn run(
    client: Client,
    ctx: Arc<Context>,
    settings: WatchSettings,
    readiness: Readiness,
    shutdown: watch::Receiver<bool>,
) {
    let scopes = match &settings.namespaces {
        None => vec![None],
        Some(namespaces) => namespaces.iter().cloned().map(Some).collect(),
    };

    let mut stores = Vec::new();
    let mut controllers = Vec::new();
    for scope in scopes {
        let controller = scope_controller(&client, &ctx, &settings, scope, &shutdown);
        stores.push(controller.store());
        let ctx = ctx.clone();
        controllers.push(async move {
            let forget = ctx.clone();
            controller
                .run(reconcile_object, error_policy, ctx)
                .for_each(|result| {
                    on_result(&forget, result);
                    std::future::ready(())
                })
                .await;
        });
    }
    info!(namespaces = ?settings.namespaces, "watching SealedSecrets");

    let ready = {
        let stores = stores.clone();
        let mut shutdown = shutdown.clone();
        async move {
            let all_ready = join_all(stores.iter().map(Store::wait_until_ready));
            tokio::select! {
                _ = all_ready => {
                    info!("caches synced");
                    readiness.set_caches_synced();
                }
                _ = shutdown.wait_for(|stop| *stop) => {}
            }
        }
    };
    let prune = prune_memory(ctx.clone(), stores, shutdown.clone());
    // kube's Controller drains its whole queue on shutdown, delayed retries included, and
    // never ends while its cache is unsynced; only running reconciles are worth waiting for.
    let controllers = async move {
        tokio::select! {
            _ = join_all(controllers) => {}
            _ = drained(&ctx, shutdown) => debug!("stopped with reconciles still queued"),
        }
    };
    tokio::join!(controllers, ready, prune);
}

/// The controller of one watched scope (a namespace, or `None` for all): SealedSecrets, the
/// Secrets they own, and a reconcile of everything when the keys change.
fn scope_controller(
    client: &Client,
    ctx: &Arc<Context>,
    settings: &WatchSettings,
    scope: Option<String>,
    shutdown: &watch::Receiver<bool>,
) -> Controller<WatchedSealedSecret> {
    let (sealed, secrets): (Api<WatchedSealedSecret>, Api<PartialObjectMeta<Secret>>) = match &scope
    {
        None => (Api::all(client.clone()), Api::all(client.clone())),
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
    };
    let mut config = watcher::Config::default();
    if let Some(selector) = &settings.label_selector {
        config = config.labels(selector);
    }
    // Owned Secrets are watched metadata only (their data never enters the controller's
    // memory), and their versions noted on the way, so that the reconciles our own writes
    // cause need not ask the API server whether the Secret is still as written. A relist
    // names the SealedSecrets whose Secrets went missing unseen; they are reconciled too.
    let (missing_tx, missing_rx) = mpsc::unbounded();
    let owned = {
        let ctx = ctx.clone();
        watcher(secrets, watcher::Config::default())
            .inspect_ok(move |event| {
                for owner in ctx.owned_secrets().observe(scope.as_deref(), event) {
                    debug!(namespace = %owner.namespace, name = %owner.name,
                           "its Secret went missing while the Secret watch was away");
                    // The receiver lives as long as the controller.
                    let _ = missing_tx.unbounded_send(
                        ObjectRef::<WatchedSealedSecret>::new(&owner.name).within(&owner.namespace),
                    );
                }
            })
            .touched_objects()
    };
    let controller = sealed_secrets(sealed, config, ctx);
    let controller = match settings.skip_recreate {
        true => controller,
        false => controller.owns_stream(owned),
    };
    let mut controller = controller
        .reconcile_on(missing_rx)
        .reconcile_all_on(key_changes(ctx.keys()))
        .with_config(controller::Config::default().concurrency(settings.concurrency))
        .graceful_shutdown_on(stopped(shutdown.clone()));
    if !settings.resync_period.is_zero() {
        controller = controller.reconcile_all_on(resync::ticks(settings.resync_period));
    }
    controller
}

/// A controller over the SealedSecrets of `api`, as `Controller::new` makes it, that also
/// forgets a deleted SealedSecret at once: its memory and its condition series go when the
/// watch shows the deletion (kube's controller reconciles no deleted object; the prune would
/// catch it only up to [`PRUNE_INTERVAL`] later).
fn sealed_secrets(
    api: Api<WatchedSealedSecret>,
    config: watcher::Config,
    ctx: &Arc<Context>,
) -> Controller<WatchedSealedSecret> {
    let (reader, writer) = reflector::store();
    let ctx = ctx.clone();
    let trigger = reflector(writer, watcher(api, config))
        .inspect_ok(move |event| {
            if let watcher::Event::Delete(gone) = event {
                ctx.forget(&ObjectKey::new(
                    gone.namespace().unwrap_or_default(),
                    gone.name_any(),
                ));
            }
        })
        .applied_objects();
    Controller::for_stream(trigger, reader)
}

/// What a finished reconcile leaves to do: forget a SealedSecret that is gone, log a failing
/// watch.
fn on_result<T>(
    ctx: &Context,
    result: Result<T, controller::Error<crate::error::Error, watcher::Error>>,
) {
    match result {
        Ok(_) => {}
        // A request for an object that is gone: the SealedSecret was deleted.
        Err(controller::Error::ObjectNotFound(object)) => {
            ctx.forget(&ObjectKey::new(
                object.namespace.clone().unwrap_or_default(),
                object.name.clone(),
            ));
        }
        // Watch failures: a missing CRD, missing RBAC, an unreachable API server.
        Err(e @ (controller::Error::QueueError(_) | controller::Error::RunnerError(_))) => {
            warn!(error = %error_chain(&e), "watching SealedSecrets or Secrets failed; retrying")
        }
        // Reconcile failures are logged by the error policy.
        Err(e) => debug!(error = %error_chain(&e), "reconcile did not complete"),
    }
}

/// Resolves once shutdown was asked for and no reconcile is running (or the grace is over).
async fn drained(ctx: &Context, shutdown: watch::Receiver<bool>) {
    stopped(shutdown).await;
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    while ctx.reconciles_in_flight() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Emits once every time the set of keys changes: SealedSecrets that could not be unsealed get
/// another chance with the new keys.
fn key_changes(keys: &KeyRegistry) -> impl Stream<Item = ()> + Send + 'static {
    stream::unfold(keys.subscribe(), |mut receiver| async move {
        receiver.changed().await.ok()?;
        Some(((), receiver))
    })
}

/// Resolves when `shutdown` turns true (or its sender is gone).
async fn stopped(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Drops what the context remembers about SealedSecrets no store holds any more.
async fn prune_memory(
    ctx: Arc<Context>,
    stores: Vec<Store<WatchedSealedSecret>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PRUNE_INTERVAL) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        ctx.retain_objects(|key, uid| {
            let reference = ObjectRef::<WatchedSealedSecret>::new(&key.name).within(&key.namespace);
            stores.iter().any(|store| {
                store
                    .get(&reference)
                    .is_some_and(|o| o.uid().as_deref() == Some(uid))
            })
        });
    }
}
