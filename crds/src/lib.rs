//! sealbox-crds: the `bitnami.com/v1alpha1` SealedSecret custom resource.
//!
//! The types here are the API contract shared by the CLI and the controller, and the source the
//! CRD in `deploy/crds/` is generated from (`cargo run -p sealbox-crds --bin crdgen`). They follow
//! Bitnami Sealed Secrets field for field so existing sealed files, dashboards and health checks
//! keep working.
//!
//! [`decode`] is the bounded reader of untrusted JSON and YAML that the controller's API and
//! the CLI share.
//!
//! Depends on `sealbox-crypto` only for the sealing scope; no client, no runtime.

pub mod decode;
mod sealed_secret;

pub use sealed_secret::{
    SYNCED_CONDITION, SealedSecret, SealedSecretCondition, SealedSecretSpec, SealedSecretStatus,
    SecretTemplateSpec, TemplateMetadata,
};

/// The `apiVersion` group of SealedSecrets.
pub const GROUP: &str = "bitnami.com";
/// The served and stored version.
pub const VERSION: &str = "v1alpha1";

/// Annotation on a pre-existing Secret that lets a SealedSecret take it over.
pub const MANAGED_ANNOTATION: &str = "sealedsecrets.bitnami.com/managed";
/// Annotation on a pre-existing Secret that lets a SealedSecret merge into it.
pub const PATCH_ANNOTATION: &str = "sealedsecrets.bitnami.com/patch";
/// Template annotation that stops the controller from setting an ownerReference.
pub const SKIP_SET_OWNER_REFERENCES_ANNOTATION: &str =
    "sealedsecrets.bitnami.com/skip-set-owner-references";

/// Renders the CRD as YAML, exactly what `crdgen` prints and `deploy/crds/` holds.
pub fn crd_yaml() -> Result<String, serde_norway::Error> {
    use kube::CustomResourceExt;
    serde_norway::to_string(&SealedSecret::crd())
}
