//! `sealbox-tests`: an in-process Kubernetes API server double, for running kube-rs's real
//! `Controller`, `watcher` and `Api` (and real binaries, and kubectl) without a cluster.
//!
//! # What it is
//! An HTTP implementation of the slice of the Kubernetes API that Sealbox and kube-rs rely
//! on, over a JSON object store:
//! - get, list (label and field selectors, `limit`/`continue`, list resourceVersion), watch
//!   (replay from a resourceVersion, ADDED/MODIFIED/DELETED/BOOKMARK, `timeoutSeconds`,
//!   `sendInitialEvents`, 410 Gone after [`ApiServer::compact`]), create (`generateName`),
//!   replace, merge/strategic/JSON patches, server-side apply with field managers, conflicts
//!   and `force`, delete with finalizers and ownerReference garbage collection;
//! - one global resourceVersion; uid, creationTimestamp, `generation` bumped only by changes
//!   outside metadata and status; writes that change nothing are not writes;
//! - status subresources, immutable Secrets and ConfigMaps, `stringData`;
//! - metadata-only (`PartialObjectMetadata`) and `Table` responses;
//! - discovery, legacy and aggregated, for kube's dynamic APIs and kubectl;
//! - CRDs (`apiextensions.k8s.io/v1`) that become `Established` and serve their custom
//!   resources, validated and pruned against their `openAPIV3Schema`;
//! - the services proxy, forwarding to a URL a test registers ([`ApiServer::proxy_service`]);
//! - test controls: injected failures (the next N requests, an outage window, or at seeded
//!   random rates), requests held until released, latency, cut watch streams and
//!   compactions (by hand or on a random schedule: [`Chaos`]), a tally of what was injected,
//!   a request log and the RBAC verbs it implies.
//!
//! Use it in process with [`ApiServer::client`], or on 127.0.0.1 with [`ApiServer::serve`]
//! and a generated kubeconfig ([`Served::write_kubeconfig`]).
//!
//! ```no_run
//! # async fn demo(crd: serde_json::Value) -> Result<(), Box<dyn std::error::Error>> {
//! use k8s_openapi::api::core::v1::Secret;
//! use kube::Api;
//! use sealbox_tests::{ApiServer, FaultRule};
//!
//! let server = ApiServer::new();
//! server.apply_crd(crd)?; // e.g. serde_json::to_value(SealedSecret::crd())?
//! let client = server.client(); // hand this to the controller under test
//!
//! // The next two PATCHes of Secrets fail with 500, the one after with 409.
//! server.fail_next(FaultRule::status(500).method("PATCH").resource("secrets").times(2));
//! server.fail_next(FaultRule::status(409).method("PATCH").resource("secrets"));
//!
//! // ... run the controller, then inspect the store directly ...
//! let secret: Option<Secret> = server.get(Some("default"), "my-secret");
//! let _ = (secret, Api::<Secret>::default_namespaced(client));
//!
//! // What the controller did, as RBAC rules would name it.
//! for (group, resource, verb) in server.rbac_summary() {
//!     println!("{group}/{resource}: {verb}");
//! }
//!
//! // Real binaries and kubectl: serve on 127.0.0.1 and write a kubeconfig.
//! let served = server.serve_local().await?;
//! served.write_kubeconfig("target/double.kubeconfig")?;
//! println!("{}", served.url());
//! # Ok(())
//! # }
//! ```
//!
//! # What it is not
//! Not a conformant API server: no authentication or authorization (everything is allowed;
//! the request log tells what RBAC would need), no admission, no defaulting beyond a few
//! fields, no version conversion (all versions of a resource share one JSON object), no
//! protobuf, no `managedFields` in responses (ownership is tracked internally, lists are
//! atomic), strategic merge patches are plain merge patches, and no namespace lifecycle
//! (objects may be created in namespaces that do not exist).
//!
//! The setup the workspace's tests share (test keys, the double with the CRD, namespaces and
//! Secrets, a served double's kubeconfig, waiting) is in [`fixtures`].
//!
//! This crate must not depend on the other Sealbox crates' internals: it is a test fixture
//! for all of them. Only [`fixtures`] knows Sealbox's types, through the public APIs of
//! `sealbox-crds` and `sealbox-crypto`; nothing here depends on the controller or the CLI.

pub mod bench;
mod chaos;
mod discovery;
mod error;
mod faults;
mod fields;
pub mod fixtures;
pub mod kubeconfig;
mod log;
mod object;
mod openapi;
pub mod peers;
mod proxy;
pub mod real;
mod registry;
mod route;
mod router;
mod schema;
mod selector;
mod server;
mod status;
mod store;
mod table;
mod validation;
mod watch;

pub use chaos::{Chaos, ChaosGuard};
pub use error::Error;
pub use faults::{FaultReport, FaultRule, Requests};
pub use log::RequestRecord;
pub use server::{ApiServer, Paused, Served};
