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

/// The longest key a path shows; keys are names, not values, but a path must stay a line.
const MAX_KEY_SHOWN: usize = 64;

/// `data.password`, or `data["tls.crt"]` when the key is not a plain word. A key is shown only
/// up to its first character that Kubernetes allows in no key or name (a pasted
/// `DB_PASSWORD=hunter2` line shows as `"DB_PASSWORD…"`), and at most [`MAX_KEY_SHOWN`]
/// characters of it.
pub fn field_path(parent: &str, key: &str) -> String {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/');
    let cut = key
        .char_indices()
        .find(|&(i, c)| !allowed(c) || i >= MAX_KEY_SHOWN)
        .map(|(i, _)| i);
    let shown;
    let key = match cut {
        Some(at) => {
            shown = format!("{}…", &key[..at]);
            shown.as_str()
        }
        None => key,
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_show_keys_only_up_to_a_character_no_key_may_hold() {
        assert_eq!(field_path("data", "password"), "data.password");
        assert_eq!(field_path("data", "tls.crt"), r#"data["tls.crt"]"#);
        assert_eq!(field_path("", "a/b"), r#"["a/b"]"#);
        assert_eq!(
            field_path("data", "DB_PASSWORD=hunter2"),
            r#"data["DB_PASSWORD…"]"#
        );
        let long = "k".repeat(1000);
        assert_eq!(
            field_path("data", &long).len(),
            "data[\"\"]".len() + 64 + '…'.len_utf8()
        );
    }
}
