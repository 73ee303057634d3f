//! Sealing scopes: which Secrets a sealed value may become.
//!
//! The scope is bound into every value as the RSA-OAEP label, so a value sealed for
//! `default/db` cannot be replayed as `prod/db`. It is read only from the SealedSecret's
//! top-level annotations, never from `spec.template` (a Bitnami CVE-class bug).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// Annotation that makes a SealedSecret cluster-wide when set to `"true"`.
pub const CLUSTER_WIDE_ANNOTATION: &str = "sealedsecrets.bitnami.com/cluster-wide";
/// Annotation that makes a SealedSecret namespace-wide when set to `"true"`.
pub const NAMESPACE_WIDE_ANNOTATION: &str = "sealedsecrets.bitnami.com/namespace-wide";
/// Sealbox's hint: the fingerprint of the key that sealed the object, tried first.
pub const SEALING_KEY_ANNOTATION: &str = "sealbox.dev/sealing-key";

/// Which Secrets a sealed value may be unsealed into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Scope {
    /// Only a Secret of the same name in the same namespace (label `"<namespace>/<name>"`).
    #[default]
    Strict,
    /// Any Secret name in the same namespace (label `"<namespace>"`).
    NamespaceWide,
    /// Any name in any namespace (empty label).
    ClusterWide,
}

impl Scope {
    /// Every scope, strictest first.
    pub const ALL: [Scope; 3] = [Scope::Strict, Scope::NamespaceWide, Scope::ClusterWide];

    /// The scope that a SealedSecret's top-level `metadata.annotations` select.
    ///
    /// `cluster-wide: "true"` wins over `namespace-wide: "true"`; only the exact string
    /// `"true"` counts; anything else is strict.
    pub fn from_annotations(annotations: &BTreeMap<String, String>) -> Scope {
        let is_true = |key: &str| annotations.get(key).is_some_and(|v| v == "true");
        if is_true(CLUSTER_WIDE_ANNOTATION) {
            Scope::ClusterWide
        } else if is_true(NAMESPACE_WIDE_ANNOTATION) {
            Scope::NamespaceWide
        } else {
            Scope::Strict
        }
    }

    /// The annotation to set to `"true"` to select this scope (`None` for strict).
    pub fn annotation(self) -> Option<&'static str> {
        match self {
            Scope::Strict => None,
            Scope::NamespaceWide => Some(NAMESPACE_WIDE_ANNOTATION),
            Scope::ClusterWide => Some(CLUSTER_WIDE_ANNOTATION),
        }
    }

    /// The RSA-OAEP label that binds a value to a Secret: `"ns/name"`, `"ns"` or empty.
    pub fn label(self, namespace: &str, name: &str) -> Vec<u8> {
        match self {
            Scope::Strict => format!("{namespace}/{name}").into_bytes(),
            Scope::NamespaceWide => namespace.as_bytes().to_vec(),
            Scope::ClusterWide => Vec::new(),
        }
    }

    /// The name used on the command line and in [`Display`](fmt::Display).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Strict => "strict",
            Scope::NamespaceWide => "namespace-wide",
            Scope::ClusterWide => "cluster-wide",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = Error;

    fn from_str(s: &str) -> Result<Scope, Error> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| Error::ParseScope {
                value: crate::error::quoted(s),
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn annotations_select_the_scope() {
        assert_eq!(Scope::from_annotations(&annotations(&[])), Scope::Strict);
        assert_eq!(
            Scope::from_annotations(&annotations(&[(NAMESPACE_WIDE_ANNOTATION, "true")])),
            Scope::NamespaceWide
        );
        assert_eq!(
            Scope::from_annotations(&annotations(&[(CLUSTER_WIDE_ANNOTATION, "true")])),
            Scope::ClusterWide
        );
    }

    #[test]
    fn cluster_wide_wins_over_namespace_wide() {
        let both = annotations(&[
            (NAMESPACE_WIDE_ANNOTATION, "true"),
            (CLUSTER_WIDE_ANNOTATION, "true"),
        ]);
        assert_eq!(Scope::from_annotations(&both), Scope::ClusterWide);
    }

    #[test]
    fn only_the_exact_string_true_counts() {
        for value in ["True", "TRUE", "yes", "1", "", " true", "false"] {
            let a = annotations(&[
                (CLUSTER_WIDE_ANNOTATION, value),
                (NAMESPACE_WIDE_ANNOTATION, value),
            ]);
            assert_eq!(Scope::from_annotations(&a), Scope::Strict, "{value:?}");
        }
        let a = annotations(&[
            (CLUSTER_WIDE_ANNOTATION, "false"),
            (NAMESPACE_WIDE_ANNOTATION, "true"),
        ]);
        assert_eq!(Scope::from_annotations(&a), Scope::NamespaceWide);
    }

    #[test]
    fn labels() {
        assert_eq!(Scope::Strict.label("ns", "name"), b"ns/name");
        assert_eq!(Scope::NamespaceWide.label("ns", "name"), b"ns");
        assert_eq!(Scope::ClusterWide.label("ns", "name"), b"");
    }

    #[test]
    fn annotation_round_trips_through_from_annotations() {
        for scope in Scope::ALL {
            let a = match scope.annotation() {
                Some(key) => annotations(&[(key, "true")]),
                None => annotations(&[]),
            };
            assert_eq!(Scope::from_annotations(&a), scope);
        }
    }

    #[test]
    fn parse_and_display() {
        for scope in Scope::ALL {
            assert_eq!(scope.to_string().parse::<Scope>().unwrap(), scope);
        }
        assert_eq!("cluster-wide".parse::<Scope>().unwrap(), Scope::ClusterWide);
        let err = "cluster".parse::<Scope>().unwrap_err().to_string();
        assert!(err.contains("\"cluster\""), "{err}");
        for accepted in ["strict", "namespace-wide", "cluster-wide"] {
            assert!(err.contains(accepted), "{err}");
        }
    }

    #[test]
    fn default_is_strict() {
        assert_eq!(Scope::default(), Scope::Strict);
    }
}
