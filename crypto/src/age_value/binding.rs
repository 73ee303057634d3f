//! The scope line: how a multi-recipient value is bound to the Secret it may become.
//!
//! An age file has no associated data, so the scope travels inside the authenticated payload,
//! as its first line:
//!
//! ```text
//! sealbox/v1 strict <namespace>/<name>\n     (then the value's bytes)
//! sealbox/v1 namespace-wide <namespace>\n
//! sealbox/v1 cluster-wide\n
//! ```
//!
//! The label is exactly the Bitnami RSA-OAEP label of the scope, so the rules are the same:
//! a value copied into another SealedSecret decrypts, but its line names another Secret and it
//! is refused. A break-glass holder drops the line with `tail -n +2`.

use std::fmt;

use zeroize::Zeroizing;

use crate::error::{Error, Result, quoted};
use crate::scope::Scope;

/// The first word of the scope line; a new framing would get a new word.
const MAGIC: &str = "sealbox/v1";

/// The longest scope line read: the magic, the longest scope word, a 63-character namespace,
/// `/` and a 253-character name, spaces and the newline (about 340), with room to spare. Past it
/// the payload is refused without scanning further.
pub const MAX_SCOPE_LINE: usize = 512;

/// Kubernetes names are at most 253 characters (namespaces 63); longer is not a Secret's name.
const MAX_NAME_LEN: usize = 253;

/// The Secret a value may become: a scope and its label (`"ns/name"`, `"ns"` or empty).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Binding {
    scope: Scope,
    label: String,
}

impl Binding {
    /// The binding for a Secret `namespace/name` under `scope`. Names must be non-empty, without
    /// `/`, whitespace or control characters, as Kubernetes names are; the ones a scope ignores
    /// are not checked.
    pub fn new(scope: Scope, namespace: &str, name: &str) -> Result<Binding> {
        match scope {
            Scope::Strict => {
                check_name(scope, "namespace", namespace)?;
                check_name(scope, "name", name)?;
            }
            Scope::NamespaceWide => check_name(scope, "namespace", namespace)?,
            Scope::ClusterWide => {}
        }
        let label =
            String::from_utf8(scope.label(namespace, name)).map_err(|_| Error::InvalidBinding {
                scope,
                what: quoted(namespace),
                reason: "not UTF-8",
            })?;
        Ok(Binding { scope, label })
    }

    /// The binding whose label is `label` (as [`Scope::label`] makes it): empty is
    /// cluster-wide, `ns/name` strict, `ns` namespace-wide. Kubernetes names hold no `/`, so the
    /// label alone says the scope; this lets readers that hold only the label check a value.
    pub fn from_label(label: &[u8]) -> Result<Binding> {
        let text = std::str::from_utf8(label).map_err(|_| Error::InvalidBinding {
            scope: Scope::Strict,
            what: "a label".to_owned(),
            reason: "not UTF-8",
        })?;
        match text.split_once('/') {
            _ if text.is_empty() => Binding::new(Scope::ClusterWide, "", ""),
            Some((namespace, name)) => Binding::new(Scope::Strict, namespace, name),
            None => Binding::new(Scope::NamespaceWide, text, ""),
        }
    }

    /// The scope.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// The label, as the Bitnami format would use it for RSA-OAEP.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The scope line followed by `plaintext`: the age payload.
    pub(crate) fn frame(&self, plaintext: &[u8]) -> Zeroizing<Vec<u8>> {
        let line = self.line();
        let mut payload = Zeroizing::new(Vec::with_capacity(line.len() + plaintext.len()));
        payload.extend_from_slice(line.as_bytes());
        payload.extend_from_slice(plaintext);
        payload
    }

    fn line(&self) -> String {
        match self.scope {
            Scope::ClusterWide => format!("{MAGIC} {}\n", self.scope),
            _ => format!("{MAGIC} {} {}\n", self.scope, self.label),
        }
    }

    /// Reads the scope line at the start of a decrypted payload: the binding and the length of
    /// the line (the value starts right after it).
    pub(crate) fn parse_line(payload: &[u8]) -> Result<(Binding, usize)> {
        let missing = |reason: &str| Error::AgeMalformed {
            reason: format!("the payload does not start with a Sealbox scope line ({reason})"),
        };
        let window = &payload[..payload.len().min(MAX_SCOPE_LINE)];
        let end = window
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| missing("no line end in the first 512 bytes"))?;
        let line = std::str::from_utf8(&window[..end]).map_err(|_| missing("not UTF-8"))?;
        let mut words = line.split(' ');
        if words.next() != Some(MAGIC) {
            return Err(missing("expected \"sealbox/v1 SCOPE [LABEL]\""));
        }
        let scope: Scope = words
            .next()
            .unwrap_or_default()
            .parse()
            .map_err(|_| missing("unknown scope"))?;
        let label = words.next();
        if words.next().is_some() {
            return Err(missing("extra words"));
        }
        let binding = match (scope, label) {
            (Scope::ClusterWide, None) => Binding::new(scope, "", ""),
            (Scope::NamespaceWide, Some(namespace)) => Binding::new(scope, namespace, ""),
            (Scope::Strict, Some(label)) => match label.split_once('/') {
                Some((namespace, name)) => Binding::new(scope, namespace, name),
                None => return Err(missing("a strict label is NAMESPACE/NAME")),
            },
            _ => return Err(missing("wrong number of words for the scope")),
        }
        .map_err(|_| missing("invalid namespace or name"))?;
        Ok((binding, end + 1))
    }

    /// Refuses a value bound to another Secret than `expected`.
    pub fn check(&self, expected: &Binding) -> Result<()> {
        if self == expected {
            return Ok(());
        }
        Err(Error::ScopeMismatch {
            sealed: self.to_string(),
            expected: expected.to_string(),
        })
    }
}

fn check_name(scope: Scope, what: &'static str, value: &str) -> Result<()> {
    let reason = if value.is_empty() {
        Some("it is empty")
    } else if value.len() > MAX_NAME_LEN {
        Some("longer than 253 characters")
    } else if value.contains('/') {
        Some("it contains '/'")
    } else if !value.bytes().all(|b| b.is_ascii_graphic()) {
        Some("only printable ASCII without spaces is allowed")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(Error::InvalidBinding {
            scope,
            what: format!("{what} {:?}", quoted(value)),
            reason,
        }),
    }
}

impl fmt::Display for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scope {
            Scope::ClusterWide => write!(f, "{}", self.scope),
            _ => write!(f, "{} {:?}", self.scope, quoted(&self.label)),
        }
    }
}

impl fmt::Debug for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Binding({self})")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn lines_per_scope() {
        let cases = [
            (Scope::Strict, "sealbox/v1 strict default/db\n"),
            (Scope::NamespaceWide, "sealbox/v1 namespace-wide default\n"),
            (Scope::ClusterWide, "sealbox/v1 cluster-wide\n"),
        ];
        for (scope, line) in cases {
            let binding = Binding::new(scope, "default", "db").unwrap();
            assert_eq!(binding.line(), line);
            assert_eq!(binding.label().as_bytes(), scope.label("default", "db"));
            let payload = binding.frame(b"v\nalue");
            assert_eq!(&payload[..line.len()], line.as_bytes());
            let (parsed, len) = Binding::parse_line(&payload).unwrap();
            assert_eq!(parsed, binding);
            assert_eq!(&payload[len..], b"v\nalue");
        }
    }

    #[test]
    fn the_label_says_the_scope() {
        for scope in Scope::ALL {
            let binding = Binding::new(scope, "default", "db").unwrap();
            let label = scope.label("default", "db");
            assert_eq!(Binding::from_label(&label).unwrap(), binding);
        }
        assert!(Binding::from_label(b"/db").is_err());
        assert!(Binding::from_label(b"a/b/c").is_err());
        assert!(Binding::from_label(b"\xff").is_err());
    }

    #[test]
    fn malformed_lines_are_refused() {
        for payload in [
            &b""[..],
            b"value without a line",
            b"sealbox/v2 strict a/b\n",
            b"sealbox/v1 strict\n",
            b"sealbox/v1 strict ab\n",
            b"sealbox/v1 strict a/b/c\n",
            b"sealbox/v1 strict /b\n",
            b"sealbox/v1 namespace-wide\n",
            b"sealbox/v1 namespace-wide a/b\n",
            b"sealbox/v1 cluster-wide x\n",
            b"sealbox/v1 cluster-wide \n",
            b"sealbox/v1  strict a/b\n",
            b"sealbox/v1 strict a/b extra\n",
            b"sealbox/v1 global\n",
            b"sealbox/v1 strict a\xff/b\n",
        ] {
            let err = Binding::parse_line(payload).unwrap_err();
            assert!(
                matches!(err, Error::AgeMalformed { .. }),
                "{payload:?}: {err}"
            );
        }
        let long = [b"sealbox/v1 strict a/".as_slice(), &[b'b'; 600], b"\n"].concat();
        let err = Binding::parse_line(&long).unwrap_err().to_string();
        assert!(err.contains("no line end in the first 512 bytes"), "{err}");
    }

    #[test]
    fn names_are_checked_where_the_scope_uses_them() {
        assert!(Binding::new(Scope::Strict, "", "db").is_err());
        assert!(Binding::new(Scope::Strict, "ns", "").is_err());
        assert!(Binding::new(Scope::Strict, "ns", "a b").is_err());
        assert!(Binding::new(Scope::Strict, "n/s", "db").is_err());
        assert!(Binding::new(Scope::NamespaceWide, "", "db").is_err());
        assert!(Binding::new(Scope::NamespaceWide, "ns", "").is_ok());
        assert!(Binding::new(Scope::ClusterWide, "", "").is_ok());
        let err = Binding::new(Scope::Strict, &"n".repeat(300), "db")
            .unwrap_err()
            .to_string();
        assert!(err.len() < 200, "{err}");
    }

    #[test]
    fn check_names_both_bindings() {
        let sealed = Binding::new(Scope::Strict, "default", "db").unwrap();
        let other = Binding::new(Scope::Strict, "prod", "db").unwrap();
        sealed.check(&sealed.clone()).unwrap();
        let err = sealed.check(&other).unwrap_err();
        assert!(matches!(err, Error::ScopeMismatch { .. }));
        let text = err.to_string();
        assert!(text.contains("strict \"default/db\""), "{text}");
        assert!(text.contains("strict \"prod/db\""), "{text}");
        // Same label text, other scope: still refused (namespace-wide "ns" vs strict "ns/x").
        let wide = Binding::new(Scope::NamespaceWide, "default", "").unwrap();
        assert!(wide.check(&sealed).is_err());
        assert!(sealed.check(&wide).is_err());
    }
}
