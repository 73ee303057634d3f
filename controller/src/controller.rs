//! Wiring of one leader term's kube-rs `Controller`s over the process's warm caches
//! ([`caches`](crate::caches)): what triggers a reconcile (a SealedSecret or an owned Secret the
//! watches hand on, a Secret gone missing unseen, the term's start, a change of the keys, the
//! resync), what a finished reconcile leaves to do, and shutdown.
//!
//! SealedSecrets are parsed as they arrive into [`WatchedSealedSecret`]s, which carry a malformed
//! object's problem instead of failing (one object that does not fit the schema fails alone
//! instead of breaking the list and the watch), and leave the sealed values out of the cache.

use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc;
use futures::future::join_all;
use futures::{Stream, StreamExt as _, stream};
use kube::ResourceExt as _;
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use tokio::sync::watch;
use tracing::{debug, warn};

pub use crate::caches::WatchSettings;
use crate::caches::{Caches, Subscription};
use crate::keys::KeyRegistry;
use crate::object::{ObjectKey, error_chain};
use crate::reconcile::{Context, error_policy, reconcile_object};
use crate::resync;
use crate::watched::WatchedSealedSecret;

/// How often memory (and the condition metric) of deleted SealedSecrets is dropped. Deletions
/// that garbage-collect an owned Secret are noticed at once; this catches the rest.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);
/// Longest wait at shutdown for running reconciles to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Runs one leader term's controllers over the process's warm caches until `shutdown` turns
/// true: everything in the caches is reconciled once when the term begins, then whatever the
/// watches hand on.
pub async fn run(
    ctx: Arc<Context>,
    caches: &Caches,
    settings: &WatchSettings,
    shutdown: watch::Receiver<bool>,
) {
    let mut stores = Vec::new();
    let mut controllers = Vec::new();
    for subscription in caches.subscribe() {
        stores.push(subscription.store.clone());
        let (controller, gone) = scope_controller(&ctx, settings, subscription, &shutdown);
        let gone = forget_gone(ctx.clone(), gone);
        let ctx = ctx.clone();
        controllers.push(async move {
            let forget = ctx.clone();
            let run = controller
                .run(reconcile_object, error_policy, ctx)
                .for_each(|result| {
                    on_result(&forget, result);
                    std::future::ready(())
                });
            tokio::select! {
                () = run => {}
                () = gone => {}
            }
        });
    }
    let prune = prune_memory(ctx.clone(), stores, shutdown.clone());
    // kube's Controller drains its whole queue on shutdown, delayed retries included, and
    // never ends while its cache is unsynced; only running reconciles are worth waiting for.
    let controllers = async move {
        tokio::select! {
            _ = join_all(controllers) => {}
            _ = drained(&ctx, shutdown) => debug!("stopped with reconciles still queued"),
        }
    };
    tokio::join!(controllers, prune);
}

/// The controller of one watched scope (a namespace, or `None` for all) over what the
/// process's watches hand on: SealedSecrets, the Secrets they own, the owners of Secrets that
/// went missing unseen; everything once when the term begins (as soon as the cache has
/// listed), again when the keys change, and at every resync. Also hands back the keys of
/// SealedSecrets the watch saw deleted, for [`forget_gone`].
fn scope_controller(
    ctx: &Arc<Context>,
    settings: &WatchSettings,
    subscription: Subscription,
    shutdown: &watch::Receiver<bool>,
) -> (Controller<WatchedSealedSecret>, mpsc::Receiver<ObjectKey>) {
    let Subscription {
        store,
        mut listed,
        sealed,
        owned,
        missing,
        gone,
        ..
    } = subscription;
    // Not `Store::wait_until_ready`: kube-runtime 5 wakes only the last of its waiters, and the
    // `Controller` below is one.
    let begins =
        stream::once(async move { listed.wait_for(|listed| *listed).await.ok().map(drop) })
            .filter_map(std::future::ready);
    let controller = Controller::for_shared_stream(sealed, store);
    let controller = match owned {
        None => controller,
        Some(owned) => controller.owns_shared_stream(owned),
    };
    let mut controller = controller
        .reconcile_on(missing)
        .reconcile_all_on(begins)
        .reconcile_all_on(key_changes(ctx.keys()))
        .with_config(controller::Config::default().concurrency(settings.concurrency))
        .graceful_shutdown_on(stopped(shutdown.clone()));
    if !settings.resync_period.is_zero() {
        controller = controller.reconcile_all_on(resync::ticks(settings.resync_period));
    }
    (controller, gone)
}

/// Forgets each SealedSecret the watch saw deleted at once: its memory and its condition
/// series (kube's controller reconciles no deleted object; the prune would catch it only up to
/// [`PRUNE_INTERVAL`] later). Runs until the term's controller ends.
async fn forget_gone(ctx: Arc<Context>, mut gone: mpsc::Receiver<ObjectKey>) {
    while let Some(key) = gone.next().await {
        ctx.forget(&key);
    }
    // The watch stopped handing on (shutdown): wait for the controller to end the term.
    std::future::pending::<()>().await;
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
