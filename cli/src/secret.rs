//! The plaintext Secret a user hands to `seal` and `merge`, read from a [`Document`].
//!
//! Server-set metadata (uid, resourceVersion, managedFields, ownerReferences, …) is dropped, and
//! so is `kubectl.kubernetes.io/last-applied-configuration`, which holds the whole Secret in
//! plaintext. `stringData` is merged over `data` like the API server does.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::document::{Document, Object, expect_kind};
use crate::error::Result;
use crate::origin::Origin;

/// The annotation `kubectl apply` writes: a full copy of the object, plaintext included.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Metadata fields the API server sets; they never go into a sealed file.
pub const SERVER_SET_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "ownerReferences",
];

/// Metadata fields read into their own [`SecretInput`] fields.
const KNOWN_METADATA: &[&str] = &["name", "namespace", "labels", "annotations", "finalizers"];

/// A Secret to seal: metadata without server-set fields, and decoded data.
pub struct SecretInput {
    /// Where it came from.
    pub origin: Origin,
    /// `metadata.name`.
    pub name: Option<String>,
    /// `metadata.namespace`.
    pub namespace: Option<String>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`, without last-applied-configuration.
    pub annotations: BTreeMap<String, String>,
    /// `metadata.finalizers`.
    pub finalizers: Option<Vec<String>>,
    /// Any other metadata field the user wrote (e.g. `generateName`), kept for the template.
    pub other_metadata: BTreeMap<String, Value>,
    /// `type`.
    pub type_: Option<String>,
    /// `immutable`.
    pub immutable: Option<bool>,
    /// `data` decoded, with `stringData` merged over it.
    pub data: BTreeMap<String, Zeroizing<Vec<u8>>>,
}

impl fmt::Debug for SecretInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretInput")
            .field("origin", &self.origin)
            .field("name", &self.name)
            .field("namespace", &self.namespace)
            .field("labels", &self.labels)
            .field("type_", &self.type_)
            .field("data", &self.data.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl SecretInput {
    /// Reads a Secret from a document, checking every field it uses.
    pub fn from_document(document: &Document) -> Result<SecretInput> {
        let root = document.object()?;
        expect_kind(
            &root,
            "Secret",
            "v1",
            if document.kind() == Some("SealedSecret") {
                "this document is already sealed"
            } else {
                "sealbox seals Secrets"
            },
        )?;

        let mut secret = SecretInput {
            origin: document.origin.clone(),
            name: None,
            namespace: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            finalizers: None,
            other_metadata: BTreeMap::new(),
            type_: root.str("type")?.map(str::to_owned),
            immutable: root.bool("immutable")?,
            data: BTreeMap::new(),
        };

        if let Some(metadata) = root.object("metadata")? {
            secret.name = metadata.str("name")?.map(str::to_owned);
            secret.namespace = metadata.str("namespace")?.map(str::to_owned);
            secret.labels = owned(metadata.string_map("labels", "")?);
            secret.annotations = owned(metadata.string_map("annotations", "")?);
            secret.annotations.remove(LAST_APPLIED_ANNOTATION);
            secret.finalizers = metadata.string_list("finalizers")?;
            for (key, value) in metadata.map() {
                if !KNOWN_METADATA.contains(&key.as_str())
                    && !SERVER_SET_METADATA.contains(&key.as_str())
                    && !value.is_null()
                {
                    secret.other_metadata.insert(key.clone(), value.clone());
                }
            }
        }
        if secret.name.as_deref() == Some("") {
            secret.name = None;
        }
        if secret.namespace.as_deref() == Some("") {
            secret.namespace = None;
        }

        if let Some(data) = root.string_map("data", "")? {
            for (key, encoded) in data {
                check_key(&root, "data", &key)?;
                let value = decode_base64(encoded).ok_or_else(|| {
                    root.error(
                        "data",
                        format!(
                            "{key:?} is not valid base64 (data values are standard base64 with padding; put plain text under stringData instead)"
                        ),
                    )
                })?;
                secret.data.insert(key, value);
            }
        }
        if let Some(string_data) = root.string_map(
            "stringData",
            "stringData values must be strings, quote the value",
        )? {
            for (key, text) in string_data {
                check_key(&root, "stringData", &key)?;
                secret
                    .data
                    .insert(key, Zeroizing::new(text.as_bytes().to_vec()));
            }
        }
        Ok(secret)
    }

    /// `namespace/name` for messages (`?` for what is unknown).
    pub fn display_name(&self) -> String {
        format!(
            "{}/{}",
            self.namespace.as_deref().unwrap_or("?"),
            self.name.as_deref().unwrap_or("?")
        )
    }
}

fn owned(map: Option<BTreeMap<String, &str>>) -> BTreeMap<String, String> {
    map.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.to_owned()))
        .collect()
}

/// The longest Secret key the API server accepts.
const MAX_KEY_LEN: usize = 253;
/// The most characters of an invalid key an error shows (before its first bad character).
const MAX_SHOWN_KEY_CHARS: usize = 64;

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Secret keys: non-empty, at most 253 characters of `[-._a-zA-Z0-9]`, as the API server wants.
fn check_key(root: &Object<'_>, field: &str, key: &str) -> Result<()> {
    match key_problem(key) {
        Some(problem) => Err(root.error(field, problem)),
        None => Ok(()),
    }
}

/// What makes `key` an invalid Secret key, if anything, with what to do. An invalid key is
/// shown only up to its first bad character: a pasted env-file line (`DB_PASSWORD=hunter2`)
/// must not put its value in a CI log.
pub fn key_problem(key: &str) -> Option<String> {
    let bad_char = key.char_indices().find(|(_, c)| !is_key_char(*c));
    let problem = if key.is_empty() {
        "an empty key is not a valid Secret key".to_owned()
    } else if key == "." || key == ".." {
        format!("{key:?} is not a valid Secret key")
    } else if let Some((at, _)) = bad_char {
        let shown: String = key[..at].chars().take(MAX_SHOWN_KEY_CHARS).collect();
        format!(
            "the key starting {shown:?} is not a valid Secret key: character {} is not allowed",
            key[..at].chars().count() + 1
        )
    } else if key.len() > MAX_KEY_LEN {
        format!("a key longer than {MAX_KEY_LEN} characters is not a valid Secret key")
    } else {
        return None;
    };
    Some(format!(
        "{problem} (use letters, digits, '-', '_' and '.', at most {MAX_KEY_LEN})"
    ))
}

/// Standard base64 with padding; line breaks are ignored like the API server's decoder does.
pub fn decode_base64(encoded: &str) -> Option<Zeroizing<Vec<u8>>> {
    let compact: Zeroizing<Vec<u8>> = Zeroizing::new(
        encoded
            .bytes()
            .filter(|b| !matches!(b, b'\n' | b'\r'))
            .collect(),
    );
    let mut out = Zeroizing::new(Vec::with_capacity(compact.len() / 4 * 3 + 3));
    STANDARD.decode_vec(&*compact, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::parse;

    fn secret(yaml: &str) -> Result<SecretInput> {
        let input = parse("s.yaml", yaml.as_bytes()).unwrap();
        SecretInput::from_document(&input.documents[0])
    }

    #[test]
    fn string_data_wins_over_data_and_server_fields_are_dropped() {
        let s = secret(
            r#"
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
  uid: 1234
  resourceVersion: "9"
  managedFields: []
  ownerReferences: [{}]
  generateName: db-
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{"stringData":{"a":"leak"}}'
    team: core
data:
  a: YmFzZTY0
  b: Yg==
stringData:
  a: plain
type: Opaque
immutable: true
"#,
        )
        .unwrap();
        assert_eq!(&s.data["a"][..], b"plain");
        assert_eq!(&s.data["b"][..], b"b");
        assert_eq!(s.annotations.len(), 1);
        assert_eq!(
            s.other_metadata.keys().collect::<Vec<_>>(),
            ["generateName"]
        );
        assert_eq!(s.immutable, Some(true));
        assert!(!format!("{s:?}").contains("plain"));
    }

    #[test]
    fn errors_name_the_field_not_the_value() {
        let err = secret("kind: Secret\ndata:\n  password: 'hunter2!!'\n").unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("\"password\" is not valid base64"),
            "{message}"
        );
        assert!(!message.contains("hunter2"), "{message}");

        let err = secret("kind: Secret\nstringData:\n  port: 5432\n").unwrap_err();
        assert!(err.to_string().contains("stringData.port"), "{err}");

        let err = secret("kind: ConfigMap\n").unwrap_err();
        assert!(
            err.to_string().contains("expected Secret, found ConfigMap"),
            "{err}"
        );

        let err = secret("kind: Secret\ndata:\n  'a b': eA==\n").unwrap_err();
        assert!(err.to_string().contains("not a valid Secret key"), "{err}");
    }

    /// An env-file line pasted as a key (`KEY=value`) must not print the value.
    #[test]
    fn invalid_keys_are_shown_up_to_the_first_bad_character() {
        let err = secret("kind: Secret\nstringData:\n  'DB_PASSWORD=hunter2': x\n").unwrap_err();
        let message = err.to_string();
        assert!(!message.contains("hunter2"), "{message}");
        assert!(message.contains("DB_PASSWORD"), "{message}");
        assert!(message.contains("character 12"), "{message}");
        let long = "k".repeat(300);
        let err = secret(&format!("kind: Secret\ndata:\n  {long}: eA==\n")).unwrap_err();
        assert!(!err.to_string().contains(&long), "{err}");
        assert!(err.to_string().contains("longer than 253"), "{err}");
    }
}
