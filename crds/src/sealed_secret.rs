use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use sealbox_crypto::{Fingerprint, Scope, scope::SEALING_KEY_ANNOTATION};
use serde::{Deserialize, Serialize};

/// The one condition type SealedSecrets report.
pub const SYNCED_CONDITION: &str = "Synced";

/// A Secret sealed with the controller's public key, safe to commit to Git.
///
/// The controller unseals it into a Secret of the same name and namespace.
// Clippy mistakes the repeated `type_ = "string"` of two printer columns for a duplicate.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Default, PartialEq, JsonSchema)]
#[kube(
    group = "bitnami.com",
    version = "v1alpha1",
    kind = "SealedSecret",
    plural = "sealedsecrets",
    namespaced,
    status = "SealedSecretStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "SealedSecret is the K8s representation of a \"sealed Secret\" - a regular k8s Secret that has been sealed (encrypted) using the controller's key.",
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[0].message"
    ),
    printcolumn(
        name = "Synced",
        type_ = "string",
        json_path = ".status.conditions[0].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretSpec {
    /// Sealed values, one per Secret data key: base64 of the Bitnami wire format.
    pub encrypted_data: BTreeMap<String, String>,

    /// Template for the Secret the controller creates: metadata, type, immutability and
    /// templated data rendered with the decrypted values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<SecretTemplateSpec>,

    /// Deprecated: a single legacy sealed blob holding a whole Secret. Refused unless the
    /// controller is told to accept it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// Names the sealed keys, never the sealed values (no ciphertext in logs or errors).
impl fmt::Debug for SealedSecretSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedSecretSpec")
            .field(
                "encrypted_data",
                &self.encrypted_data.keys().collect::<Vec<_>>(),
            )
            .field("template", &self.template)
            .field("data", &self.data.as_ref().map(|_| "<sealed>"))
            .finish()
    }
}

/// The shape of the Secret to create.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplateSpec {
    /// Metadata for the Secret; name and namespace are always those of the SealedSecret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TemplateMetadata>,

    /// The Secret type, e.g. `kubernetes.io/dockerconfigjson`; `Opaque` when absent.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,

    /// Whether the Secret is immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,

    /// Keys rendered from templates over the decrypted values; they override decrypted keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("nullable" = true))]
    pub data: Option<BTreeMap<String, String>>,
}

/// Metadata of the Secret template. Unknown fields are preserved.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true, "nullable" = true))]
pub struct TemplateMetadata {
    /// Ignored: the Secret always takes the SealedSecret's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Ignored: the Secret always lives in the SealedSecret's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels of the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations of the Secret. They never influence the sealing scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Finalizers of the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalizers: Option<Vec<String>>,
    /// Any other metadata field, kept as written.
    #[serde(flatten)]
    #[schemars(skip)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// The observed state of a SealedSecret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretStatus {
    /// The generation of the spec the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions; Sealbox, like Bitnami, reports one: `Synced`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<SealedSecretCondition>,
}

/// One status condition.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretCondition {
    /// Condition type: `Synced`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Last time the condition was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    /// Last time the status moved from one value to another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// Machine-readable reason for the last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl SealedSecret {
    /// The sealing scope, read only from the top-level annotations: a template annotation can
    /// never widen it.
    pub fn scope(&self) -> Scope {
        self.metadata
            .annotations
            .as_ref()
            .map(Scope::from_annotations)
            .unwrap_or_default()
    }

    /// The OAEP label every value of this object was sealed with.
    pub fn label(&self) -> Vec<u8> {
        let namespace = self.metadata.namespace.as_deref().unwrap_or_default();
        let name = self.metadata.name.as_deref().unwrap_or_default();
        self.scope().label(namespace, name)
    }

    /// The fingerprint of the key the CLI sealed with, when it left the hint annotation.
    pub fn sealing_key_hint(&self) -> Option<Fingerprint> {
        self.metadata
            .annotations
            .as_ref()?
            .get(SEALING_KEY_ANNOTATION)?
            .parse()
            .ok()
    }

    /// The `Synced` condition, if the controller has reported one.
    pub fn synced_condition(&self) -> Option<&SealedSecretCondition> {
        self.status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == SYNCED_CONDITION)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealbox_crypto::scope::{CLUSTER_WIDE_ANNOTATION, NAMESPACE_WIDE_ANNOTATION};

    #[test]
    fn debug_names_sealed_keys_but_never_shows_sealed_values() {
        let mut object = SealedSecret::new(
            "db",
            SealedSecretSpec {
                encrypted_data: [("password".to_owned(), "AgCiphertextCanary".to_owned())].into(),
                data: Some("AgLegacyCanary".to_owned()),
                ..SealedSecretSpec::default()
            },
        );
        object.metadata.namespace = Some("prod".to_owned());
        let text = format!("{object:?}");
        assert!(text.contains("password"), "{text}");
        assert!(!text.contains("Canary"), "{text}");
    }

    fn sealed(annotations: &[(&str, &str)], template_annotations: &[(&str, &str)]) -> SealedSecret {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        let mut ss = SealedSecret::new("db", SealedSecretSpec::default());
        ss.metadata.namespace = Some("prod".into());
        ss.metadata.annotations = Some(map(annotations));
        ss.spec.template = Some(SecretTemplateSpec {
            metadata: Some(TemplateMetadata {
                annotations: Some(map(template_annotations)),
                ..Default::default()
            }),
            ..Default::default()
        });
        ss
    }

    #[test]
    fn scope_comes_from_top_level_annotations() {
        assert_eq!(sealed(&[], &[]).label(), b"prod/db");
        assert_eq!(
            sealed(&[(NAMESPACE_WIDE_ANNOTATION, "true")], &[]).label(),
            b"prod"
        );
        assert_eq!(
            sealed(&[(CLUSTER_WIDE_ANNOTATION, "true")], &[]).label(),
            b""
        );
        let both = [
            (NAMESPACE_WIDE_ANNOTATION, "true"),
            (CLUSTER_WIDE_ANNOTATION, "true"),
        ];
        assert_eq!(sealed(&both, &[]).scope(), Scope::ClusterWide);
    }

    #[test]
    fn template_annotations_never_widen_the_scope() {
        let ss = sealed(&[], &[(CLUSTER_WIDE_ANNOTATION, "true")]);
        assert_eq!(ss.scope(), Scope::Strict);
        assert_eq!(ss.label(), b"prod/db");
    }

    #[test]
    fn only_the_exact_string_true_counts() {
        let ss = sealed(&[(CLUSTER_WIDE_ANNOTATION, "True")], &[]);
        assert_eq!(ss.scope(), Scope::Strict);
    }

    #[test]
    fn parses_a_bitnami_sealed_secret_and_keeps_unknown_template_metadata() {
        let yaml = r#"
apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
metadata:
  name: mysecret
  namespace: mynamespace
spec:
  encryptedData:
    foo: AgBy3i4OJSWK+PiTySYZZA==
  template:
    metadata:
      name: mysecret
      labels: {app: web}
      generateName: ignored-
    type: kubernetes.io/dockerconfigjson
    immutable: true
    data:
      config: "{{ .foo }}"
"#;
        let ss: SealedSecret = serde_norway::from_str(yaml).expect("parses");
        let template = ss.spec.template.as_ref().expect("template");
        assert_eq!(
            template.type_.as_deref(),
            Some("kubernetes.io/dockerconfigjson")
        );
        assert_eq!(template.immutable, Some(true));
        let metadata = template.metadata.as_ref().expect("metadata");
        assert_eq!(metadata.other["generateName"], "ignored-");
        let back = serde_json::to_value(&ss).expect("serializes");
        assert_eq!(
            back["spec"]["template"]["metadata"]["generateName"],
            "ignored-"
        );
        assert_eq!(
            back["spec"]["encryptedData"]["foo"],
            "AgBy3i4OJSWK+PiTySYZZA=="
        );
    }
}
