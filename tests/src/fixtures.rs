//! What the workspace's tests set up again and again, written once: test keys and their key
//! Secrets ([`keys`]), the API double with the SealedSecret CRD, namespaces and Secrets, served
//! with a kubeconfig where binaries need one ([`cluster`]), the objects fed to a controller and
//! read back ([`objects`]), waiting until something holds ([`wait`]), and the test process's
//! logs, runtime, ports and children ([`process`]).
//!
//! Used by `controller/tests`, `cli/tests` and this crate's own tests. Unlike the rest of the
//! crate it knows Sealbox's types (the `sealbox-crds` and `sealbox-crypto` public APIs); it
//! never depends on the controller or the CLI, which test against it.
//!
//! ```
//! use k8s_openapi::api::core::v1::Secret;
//! use sealbox_tests::fixtures::{self, CONTROLLER_NAMESPACE, TestResult, Wait};
//! use std::time::Duration;
//!
//! # fn main() -> TestResult { fixtures::test_runtime()?.block_on(demo()) }
//! async fn demo() -> TestResult {
//!     // The CRD, namespace `app`, and test key 0's key Secret in kube-system.
//!     let server = fixtures::double_with(
//!         fixtures::sealed_secret_crd(),
//!         &["app"],
//!         &[fixtures::test_key_secret(0)],
//!     )
//!     .await?;
//!     let key: Secret = server
//!         .get(Some(CONTROLLER_NAMESPACE), "sealed-secrets-key-test0")
//!         .ok_or("no key Secret")?;
//!     assert!(fixtures::secret_data(&key).contains_key("tls.crt"));
//!
//!     // A SealedSecret for that key; a controller would unseal it into `app/db`.
//!     let certificate = &fixtures::test_pair(0).certificate;
//!     let sealed = fixtures::sealed_secret(certificate, "app", "db", &[("password", "p")], &[]);
//!     server.put(&sealed)?;
//!     let wait = Wait::new(Duration::from_secs(5), Duration::from_millis(10));
//!     wait.until("the SealedSecret stored", || server.count(&fixtures::sealed_secrets_gvr(), None) == 1)
//!         .await
//! }
//! ```

pub mod cluster;
pub mod keys;
pub mod objects;
pub mod process;
pub mod wait;

pub use cluster::{
    ServedDouble, create_namespaces, create_secrets, double_with, double_with_crd, kube_client,
    sealed_secret_crd, sealed_secret_crd_established,
};
pub use keys::{TEST_KEYS, key_secret, test_key_secret, test_pair};
pub use objects::{
    map, namespace, owner_uid, seal_value, sealed_secret, sealed_secrets_gvr, secret, secret_data,
    secrets_gvr, template,
};
pub use process::{KillOnDrop, free_port, init_logs, test_runtime};
pub use wait::Wait;

/// Any error a test step may end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// What a test (or a step of one) returns.
pub type TestResult<T = ()> = Result<T, BoxError>;

/// The controller's namespace, as deploy/ installs it: its key Secrets, its Lease, its Service.
pub const CONTROLLER_NAMESPACE: &str = "kube-system";
/// The controller's name, as deploy/ installs it: its ServiceAccount, Service and Lease.
pub const CONTROLLER_NAME: &str = "sealed-secrets-controller";
