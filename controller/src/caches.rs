//! The watches that run for the life of the process, leader or not: SealedSecrets (into the
//! cache every reconcile reads) and the Secrets they own (metadata only, into
//! [`OwnedSecrets`]). A standby replica keeps them warm without writing anything, so that when
//! it takes the Lease its reconciler starts at once instead of listing every SealedSecret and
//! every Secret again (10,000 of each took 9 s of a restart; see BENCHMARKS.md).
//!
//! Each leader term [`subscribe`](Caches::subscribe)s: from then on the watches hand it what
//! they see (the objects to reconcile), and the term reconciles everything in the cache once
//! when it begins. Only the term writes; these watches only read.
//!
//! SealedSecrets are handed on as kube's shared reflector does it: each changed object at
//! once, and after a (re)list every object in the cache, once the list has replaced it (an
//! object handed on while the list is still being read could not be found in the cache yet).
//! The owned Secrets are handed on as they change or go (so that a deleted or edited Secret
//! is restored), and a relist names the SealedSecrets whose Secrets went missing unseen
//! ([`OwnedSecrets::observe`]).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::channel::mpsc;
use futures::future::BoxFuture;
use futures::future::join_all;
use futures::{FutureExt as _, SinkExt as _, StreamExt as _};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt as _, watcher as watch_objects};
use kube::{Client, ResourceExt as _};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::object::{ObjectKey, error_chain};
use crate::owned::OwnedSecrets;
use crate::server::Readiness;
use crate::watched::WatchedSealedSecret;

/// How many objects a watch hands on before it waits for the term to take them: the term's
/// controller only moves each into its queue (keyed by object, so it holds each once), so
/// this only bounds what sits in between.
const HANDOFF_BUFFER: usize = 1024;

/// Which SealedSecrets to watch and reconcile, and how many at once.
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

/// What the watches hand a leader term, per watched scope.
#[derive(Debug)]
pub struct Subscription {
    /// The scope (a namespace, or `None` for all).
    pub scope: Option<String>,
    /// The SealedSecrets of the scope as the watch shows them.
    pub store: Store<WatchedSealedSecret>,
    /// Turns true once the store holds its first complete list.
    pub listed: watch::Receiver<bool>,
    /// SealedSecrets that changed (or were listed again).
    pub sealed: mpsc::Receiver<Arc<WatchedSealedSecret>>,
    /// Owned Secrets that changed or went away (`None` with `--skip-recreate`: not watched).
    pub owned: Option<mpsc::Receiver<Arc<PartialObjectMeta<Secret>>>>,
    /// SealedSecrets whose Secrets went missing while the Secret watch was away.
    pub missing: mpsc::Receiver<ObjectRef<WatchedSealedSecret>>,
    /// SealedSecrets the watch saw deleted (the term forgets them at once).
    pub gone: mpsc::Receiver<ObjectKey>,
}

/// The process's watches: their caches, and where they hand objects on to.
#[derive(Debug, Clone)]
pub struct Caches {
    scopes: Vec<ScopeCache>,
    owned: Arc<OwnedSecrets>,
}

/// The watches of one scope.
#[derive(Debug, Clone)]
struct ScopeCache {
    scope: Option<String>,
    store: Store<WatchedSealedSecret>,
    listed: watch::Receiver<bool>,
    sealed: Handoff<Arc<WatchedSealedSecret>>,
    owned: Option<Handoff<Arc<PartialObjectMeta<Secret>>>>,
    missing: Handoff<ObjectRef<WatchedSealedSecret>>,
    gone: Handoff<ObjectKey>,
}

impl Caches {
    /// Starts the watches of every scope `settings` names; they run until `shutdown` turns true
    /// (or their tasks are aborted), and mark `readiness` once every SealedSecret cache has
    /// listed.
    pub fn start(
        client: &Client,
        settings: &WatchSettings,
        readiness: Readiness,
        shutdown: &watch::Receiver<bool>,
    ) -> (Caches, Vec<JoinHandle<()>>) {
        let scopes = match &settings.namespaces {
            None => vec![None],
            Some(namespaces) => namespaces.iter().cloned().map(Some).collect(),
        };
        let owned = Arc::new(OwnedSecrets::default());
        let mut tasks = Vec::new();
        let mut caches = Vec::new();
        for scope in scopes {
            let (cache, mut scope_tasks) = ScopeCache::start(client, settings, scope, &owned);
            tasks.append(&mut scope_tasks);
            caches.push(cache);
        }
        info!(namespaces = ?settings.namespaces, "watching SealedSecrets");
        let listed: Vec<_> = caches.iter().map(|c| c.listed.clone()).collect();
        tasks.push(mark_synced(listed, readiness).boxed());
        let caches = Caches {
            scopes: caches,
            owned,
        };
        let tasks = tasks
            .into_iter()
            .map(|task| tokio::spawn(until_shutdown(task, shutdown.clone())))
            .collect();
        (caches, tasks)
    }

    /// The owned Secrets' versions as the Secret watches show them.
    pub fn owned_secrets(&self) -> &Arc<OwnedSecrets> {
        &self.owned
    }

    /// The SealedSecret caches, one per scope.
    pub fn stores(&self) -> Vec<Store<WatchedSealedSecret>> {
        self.scopes.iter().map(|s| s.store.clone()).collect()
    }

    /// Hands everything the watches see from now on to a new leader term (and no longer to the
    /// previous one).
    pub fn subscribe(&self) -> Vec<Subscription> {
        self.scopes
            .iter()
            .map(|cache| Subscription {
                scope: cache.scope.clone(),
                store: cache.store.clone(),
                listed: cache.listed.clone(),
                sealed: cache.sealed.subscribe(),
                owned: cache.owned.as_ref().map(Handoff::subscribe),
                missing: cache.missing.subscribe(),
                gone: cache.gone.subscribe(),
            })
            .collect()
    }
}

impl ScopeCache {
    /// Starts the SealedSecret watch of `scope` and, unless `--skip-recreate`, its owned-Secret
    /// watch.
    fn start(
        client: &Client,
        settings: &WatchSettings,
        scope: Option<String>,
        owned: &Arc<OwnedSecrets>,
    ) -> (ScopeCache, Vec<BoxFuture<'static, ()>>) {
        let (sealed_api, secrets_api): (Api<WatchedSealedSecret>, Api<PartialObjectMeta<Secret>>) =
            match &scope {
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
        let (store, writer) = reflector::store();
        let (lists, listed) = watch::channel(false);
        let cache = ScopeCache {
            scope: scope.clone(),
            store: store.clone(),
            listed,
            sealed: Handoff::default(),
            owned: (!settings.skip_recreate).then(Handoff::default),
            missing: Handoff::default(),
            gone: Handoff::default(),
        };
        let mut tasks = vec![
            watch_sealed_secrets(
                sealed_api,
                config,
                (writer, store, lists),
                cache.sealed.clone(),
                cache.gone.clone(),
            )
            .boxed(),
        ];
        if let Some(handoff) = &cache.owned {
            tasks.push(
                watch_owned_secrets(
                    secrets_api,
                    scope,
                    owned.clone(),
                    handoff.clone(),
                    cache.missing.clone(),
                )
                .boxed(),
            );
        }
        (cache, tasks)
    }
}

/// Runs the SealedSecret watch into the cache, handing changed objects on and deleted ones'
/// keys.
async fn watch_sealed_secrets(
    api: Api<WatchedSealedSecret>,
    config: watcher::Config,
    (writer, store, listed): (
        reflector::store::Writer<WatchedSealedSecret>,
        Store<WatchedSealedSecret>,
        watch::Sender<bool>,
    ),
    handoff: Handoff<Arc<WatchedSealedSecret>>,
    gone: Handoff<ObjectKey>,
) {
    let mut events = watch_objects(api, config)
        .default_backoff()
        .reflect(writer)
        .boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Apply(object)) => handoff.send(Arc::new(object)).await,
            // The list has replaced the cache: everything in it may have changed meanwhile.
            Ok(Event::InitDone) => {
                listed.send_replace(true);
                for object in store.state() {
                    handoff.send(object).await;
                }
            }
            // A deleted SealedSecret's Secret goes with it (garbage collection); the term forgets
            // its memory and condition series at once (kube's controller reconciles no deleted
            // object, and the prune would catch it only a minute later).
            Ok(Event::Delete(object)) => {
                let key = ObjectKey::new(object.namespace().unwrap_or_default(), object.name_any());
                gone.send(key).await;
            }
            Ok(Event::Init | Event::InitApply(_)) => {}
            Err(e) => warn!(error = %error_chain(&e), "watching SealedSecrets failed; retrying"),
        }
    }
}

/// Runs the owned-Secret metadata watch into `owned`, handing changed Secrets and the owners of
/// Secrets that went missing unseen on.
async fn watch_owned_secrets(
    api: Api<PartialObjectMeta<Secret>>,
    scope: Option<String>,
    owned: Arc<OwnedSecrets>,
    handoff: Handoff<Arc<PartialObjectMeta<Secret>>>,
    missing: Handoff<ObjectRef<WatchedSealedSecret>>,
) {
    let mut events = watch_objects(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                warn!(error = %error_chain(&e), "watching Secrets failed; retrying");
                continue;
            }
        };
        for owner in owned.observe(scope.as_deref(), &event) {
            debug!(namespace = %owner.namespace, name = %owner.name,
                   "its Secret went missing while the Secret watch was away");
            missing
                .send(ObjectRef::new(&owner.name).within(&owner.namespace))
                .await;
        }
        match event {
            Event::Apply(secret) | Event::InitApply(secret) | Event::Delete(secret) => {
                handoff.send(Arc::new(secret)).await;
            }
            Event::Init | Event::InitDone => {}
        }
    }
}

/// Marks the caches synced once every SealedSecret cache has listed. (Not with
/// `Store::wait_until_ready`: kube-runtime 5 wakes only the last of several waiters on it, and
/// each term's `Controller` already waits there.)
async fn mark_synced(listed: Vec<watch::Receiver<bool>>, readiness: Readiness) {
    join_all(listed.into_iter().map(|mut listed| async move {
        // An error means the watch is gone (shutdown): nothing to mark then.
        let _ = listed.wait_for(|listed| *listed).await;
    }))
    .await;
    info!("caches synced");
    readiness.set_caches_synced();
}

/// Runs `task` until `shutdown` turns true, then drops it (a watch ends with its stream).
async fn until_shutdown(task: BoxFuture<'static, ()>, mut shutdown: watch::Receiver<bool>) {
    tokio::select! {
        () = task => {}
        _ = shutdown.wait_for(|stop| *stop) => {}
    }
}

/// Where a watch hands objects on to: the current leader term, if any. A standby's watches
/// hand nothing on; a term that ended stops taking.
#[derive(Debug)]
struct Handoff<T> {
    term: Arc<Mutex<Option<mpsc::Sender<T>>>>,
}

impl<T> Default for Handoff<T> {
    fn default() -> Self {
        Self {
            term: Arc::new(Mutex::new(None)),
        }
    }
}

impl<T> Clone for Handoff<T> {
    fn clone(&self) -> Self {
        Self {
            term: self.term.clone(),
        }
    }
}

impl<T> Handoff<T> {
    /// From now on, hands on to the returned receiver (and no longer to an earlier one).
    fn subscribe(&self) -> mpsc::Receiver<T> {
        let (sender, receiver) = mpsc::channel(HANDOFF_BUFFER);
        *self.term.lock().unwrap_or_else(PoisonError::into_inner) = Some(sender);
        receiver
    }

    /// Hands `item` to the current term, waiting while its buffer is full; drops it when there
    /// is no term (the next one reconciles everything when it begins).
    async fn send(&self, item: T) {
        let sender = self
            .term
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(mut sender) = sender
            && sender.send(item).await.is_err()
        {
            // The term ended: forget it, unless a new one subscribed meanwhile.
            let mut term = self.term.lock().unwrap_or_else(PoisonError::into_inner);
            if term
                .as_ref()
                .is_some_and(|current| current.same_receiver(&sender))
            {
                *term = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_handoff_reaches_only_the_current_term() {
        let handoff = Handoff::<u32>::default();
        // No term: dropped, without waiting.
        handoff.send(1).await;
        let mut first = handoff.subscribe();
        handoff.send(2).await;
        let mut second = handoff.subscribe();
        handoff.send(3).await;
        assert_eq!(first.next().await, Some(2));
        // The first term's sender is gone: its stream ends.
        assert_eq!(first.next().await, None);
        assert_eq!(second.next().await, Some(3));
        drop(second);
        handoff.send(4).await;
        assert!(
            handoff
                .term
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_none(),
            "an ended term is forgotten"
        );
    }
}
