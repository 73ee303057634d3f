//! How the template's own text appears in an error message: a name quoted and cut short, a
//! byte offset as line and column. Errors found before running come from the template text
//! and the key names only, never from a value.

/// A name from the template text as shown in an error: quoted, escaped, and cut to a length
/// that keeps the message short.
pub(crate) fn shown(name: &str) -> String {
    /// Names in messages: long enough for any real key or function name.
    const MAX_SHOWN_CHARS: usize = 64;
    let mut cut: String = name.chars().take(MAX_SHOWN_CHARS).collect();
    if cut.len() < name.len() {
        cut.push('…');
    }
    format!("{:?}", cut)
}

/// Line and column (both from 1, columns in characters) of a byte offset, for syntax errors.
pub(crate) fn position(text: &str, offset: usize) -> String {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}")
}
