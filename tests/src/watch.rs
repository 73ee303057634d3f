//! Watch streams: newline-delimited JSON watch events, replayed from a resourceVersion and
//! then followed live, with bookmarks, timeouts, cuts and 410 Gone.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::object::{View, for_version, partial_metadata};
use crate::selector::{FieldSelector, LabelSelector};
use crate::server::{Shared, Subscriptions};
use crate::status::ApiError;
use crate::store::{Change, ChangeType, ListQuery, Store, Target};
use crate::table;

/// Annotation marking the bookmark that ends the initial events of a streaming list.
const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// A parsed watch request.
#[derive(Debug, Clone)]
pub(crate) struct WatchRequest {
    pub(crate) target: Target,
    pub(crate) labels: LabelSelector,
    pub(crate) fields: FieldSelector,
    /// `None` for an unset or `"0"` resourceVersion: start with the current state.
    pub(crate) from: Option<u64>,
    pub(crate) send_initial_events: bool,
    pub(crate) bookmarks: bool,
    pub(crate) timeout: Duration,
    pub(crate) view: View,
}

struct WatchState {
    shared: Arc<Shared>,
    request: WatchRequest,
    /// The resourceVersion this stream has delivered everything up to.
    position: u64,
    queue: VecDeque<Bytes>,
    subscriptions: Subscriptions,
    deadline: Instant,
    next_bookmark: Instant,
    finished: bool,
}

/// The body of a watch response.
pub(crate) fn stream(
    shared: Arc<Shared>,
    request: WatchRequest,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    // Subscribe before reading so no change slips between the snapshot and the live feed.
    let subscriptions = shared.subscribe();
    let now = Instant::now();
    let interval = shared.bookmark_interval();
    let mut state = WatchState {
        deadline: now + request.timeout,
        next_bookmark: now + interval,
        shared,
        request,
        position: 0,
        queue: VecDeque::new(),
        subscriptions,
        finished: false,
    };
    state.start();
    futures::stream::unfold(state, |mut state| async move {
        let line = state.next_line().await?;
        Some((Ok(line), state))
    })
}

impl WatchState {
    fn start(&mut self) {
        let shared = self.shared.clone();
        shared.read(|store| {
            let current = store.resource_version();
            match self.request.from {
                Some(from) if !self.request.send_initial_events => {
                    self.position = from;
                    self.catch_up(store);
                }
                _ => {
                    self.initial_events(store);
                    self.position = current;
                    if self.request.send_initial_events && self.request.bookmarks {
                        self.push_bookmark(true);
                    }
                }
            }
        });
    }

    /// Synthetic ADDED events for everything that currently matches.
    fn initial_events(&mut self, store: &Store) {
        let query = ListQuery {
            labels: self.request.labels.clone(),
            fields: self.request.fields.clone(),
            ..ListQuery::default()
        };
        if let Ok(page) = store.list(&self.request.target, &query) {
            for object in &page.items {
                self.push_event("ADDED", object);
            }
        }
    }

    /// Queues the changes after `position`, or a 410 if they are gone.
    fn catch_up(&mut self, store: &Store) {
        match store.changes_after(self.position) {
            Ok(changes) => {
                for change in changes {
                    self.push_change(&change);
                }
                self.position = store.resource_version();
            }
            Err(gone) => self.push_error_and_finish(&gone),
        }
    }

    async fn next_line(&mut self) -> Option<Bytes> {
        loop {
            if let Some(line) = self.queue.pop_front() {
                return Some(line);
            }
            if self.finished {
                return None;
            }
            let bookmarks = self.request.bookmarks;
            tokio::select! {
                biased;
                _ = self.subscriptions.cuts.changed() => return None,
                _ = self.subscriptions.expirations.changed() => {
                    let gone = ApiError::gone("the watch cache was compacted; relist");
                    self.push_error_and_finish(&gone);
                }
                changed = self.subscriptions.changes.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    let shared = self.shared.clone();
                    shared.read(|store| {
                        if store.is_compacted(self.position) {
                            let gone = ApiError::gone(format!("too old resource version: {}", self.position));
                            self.push_error_and_finish(&gone);
                        } else {
                            self.catch_up(store);
                        }
                    });
                }
                () = tokio::time::sleep_until(self.deadline) => {
                    if bookmarks {
                        self.push_bookmark(false);
                    }
                    self.finished = true;
                }
                () = tokio::time::sleep_until(self.next_bookmark), if bookmarks => {
                    self.push_bookmark(false);
                    self.next_bookmark = Instant::now() + self.shared.bookmark_interval();
                }
            }
        }
    }

    fn matches(&self, object: &Value) -> bool {
        let namespace_ok = self
            .request
            .target
            .namespace
            .as_deref()
            .is_none_or(|ns| object["metadata"]["namespace"].as_str() == Some(ns));
        namespace_ok && self.request.labels.matches(object) && self.request.fields.matches(object)
    }

    fn push_change(&mut self, change: &Change) {
        let resource = &self.request.target.resource;
        let namespace = self.request.target.namespace.as_deref();
        if change.group != resource.group
            || change.resource != resource.plural
            || namespace.is_some_and(|ns| ns != change.namespace)
        {
            return;
        }
        let now = self.matches(&change.object);
        let event = match change.kind {
            ChangeType::Added => now.then_some("ADDED"),
            ChangeType::Deleted => now.then_some("DELETED"),
            ChangeType::Modified => {
                let before = change.previous.as_ref().map_or(now, |p| self.matches(p));
                match (before, now) {
                    (true, true) => Some("MODIFIED"),
                    (false, true) => Some("ADDED"),
                    (true, false) => Some("DELETED"),
                    (false, false) => None,
                }
            }
        };
        if let Some(event) = event {
            self.push_event(event, &change.object);
        }
    }

    fn push_event(&mut self, event: &str, object: &Value) {
        let target = &self.request.target;
        let object = match self.request.view {
            View::Full => for_version(object, &target.resource, &target.version),
            View::Metadata => partial_metadata(object),
            View::Table => table::table(
                &target.resource,
                &target.version,
                std::slice::from_ref(object),
                Default::default(),
            ),
        };
        self.push(&json!({ "type": event, "object": object }));
    }

    fn push_bookmark(&mut self, initial_events_end: bool) {
        let target = &self.request.target;
        let (api_version, kind) = match self.request.view {
            View::Full => (
                target.resource.api_version(&target.version),
                target.resource.kind.clone(),
            ),
            View::Metadata => (
                "meta.k8s.io/v1".to_owned(),
                "PartialObjectMetadata".to_owned(),
            ),
            View::Table => ("meta.k8s.io/v1".to_owned(), "Table".to_owned()),
        };
        let mut metadata = json!({ "resourceVersion": self.position.to_string() });
        if initial_events_end {
            metadata["annotations"] = json!({ INITIAL_EVENTS_END: "true" });
        }
        self.push(&json!({
            "type": "BOOKMARK",
            "object": { "apiVersion": api_version, "kind": kind, "metadata": metadata },
        }));
    }

    fn push_error_and_finish(&mut self, error: &ApiError) {
        self.push(&json!({ "type": "ERROR", "object": error.to_status() }));
        self.finished = true;
    }

    fn push(&mut self, event: &Value) {
        let mut line = event.to_string().into_bytes();
        line.push(b'\n');
        self.queue.push_back(Bytes::from(line));
    }
}
