//! Where something in the input is: the document it came from ([`Origin`]) and the path of a
//! field inside it ([`field_path`]). Errors and documents both use these, so they live below
//! both.

use std::fmt;

/// Where a document came from: `secret.yaml, document 2` or `<stdin>, document 1, items[3]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The file, or `<stdin>`.
    pub input: String,
    /// 1-based index of the document in the input.
    pub document: usize,
    /// 0-based index in a `List`'s `items`, when the document came from one.
    pub item: Option<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, document {}", self.input, self.document)?;
        if let Some(item) = self.item {
            write!(f, ", items[{item}]")?;
        }
        Ok(())
    }
}

/// `data.password`, or `data["tls.crt"]` when the key is not a plain word.
pub fn field_path(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (parent.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (true, false) => format!("[{key:?}]"),
        (false, true) => format!("{parent}.{key}"),
        (false, false) => format!("{parent}[{key:?}]"),
    }
}
