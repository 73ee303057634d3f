//! Bounds on what the controller builds from SealedSecret content: status messages, event
//! notes, log fields and metric label values. A SealedSecret's key names are not validated by
//! the API server (`encryptedData` is a free map), so one object could otherwise make every
//! message, event and log line about it as large as itself.
//!
//! Everything here cuts on a character boundary, is linear in what it keeps (never in what it
//! drops), and says that it cut.

use std::borrow::Cow;
use std::hash::{DefaultHasher, Hash as _, Hasher as _};

/// Longest status condition message and event note, in bytes. events.k8s.io/v1 refuses notes
/// over 1 KiB, and the condition message is the event's note: bounded alike, both say the same
/// thing whole. It also keeps `kubectl get sealedsecrets` (whose Status column prints it) usable.
pub const MAX_MESSAGE: usize = 1024;

/// Longest key name (or other name from the object) quoted in a message, in characters. Secret
/// data keys may be 253 characters; 64 shows any real key name in full and lets a message list
/// about a dozen of them.
pub const MAX_NAME_IN_MESSAGE: usize = 64;

/// Longest field path quoted in a message, in characters: a path ends in a key name, so twice
/// [`MAX_NAME_IN_MESSAGE`] leaves room for the fields before it.
pub const MAX_PATH_IN_MESSAGE: usize = 2 * MAX_NAME_IN_MESSAGE;

/// Longest single reason (e.g. a template error) in a message, in bytes: a quarter of
/// [`MAX_MESSAGE`], so one failing key cannot crowd out the others.
pub const MAX_REASON: usize = MAX_MESSAGE / 4;

/// Longest metric label value, in bytes: the longest valid object name (a DNS subdomain, 253
/// characters; namespaces are at most 63). The API server refuses longer names, so only a
/// broken or hostile API server reaches this bound.
pub const MAX_LABEL_VALUE: usize = 253;

/// What a cut text ends with.
const ELLIPSIS: &str = "...";

/// `text` cut to at most `max` bytes (ellipsis included) on a character boundary.
pub fn truncate(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut end = max.saturating_sub(ELLIPSIS.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{ELLIPSIS}", &text[..end]))
}

/// `name` cut to at most `max` characters, for quoting in a message.
pub fn truncate_chars(name: &str, max: usize) -> Cow<'_, str> {
    match name.char_indices().nth(max) {
        None => Cow::Borrowed(name),
        Some(_) => {
            let keep = max.saturating_sub(ELLIPSIS.len());
            let end = name.char_indices().nth(keep).map_or(name.len(), |(i, _)| i);
            Cow::Owned(format!("{}{ELLIPSIS}", &name[..end]))
        }
    }
}

/// Joins `items` (of which there are `total`) with `separator` into at most `budget` bytes; the
/// items that do not fit are counted: "a; b and 7 more". Items are only formatted while they
/// fit, so the work is linear in what is kept.
pub fn join_within(
    items: impl IntoIterator<Item = String>,
    total: usize,
    separator: &str,
    budget: usize,
) -> String {
    let mut text = String::new();
    let mut kept = 0;
    for item in items {
        let remaining = total.saturating_sub(kept + 1);
        // Room for what follows if this is not the last one kept: " and N more".
        let tail = if remaining > 0 {
            more(remaining).len()
        } else {
            0
        };
        let needed = if kept == 0 { 0 } else { separator.len() } + item.len() + tail;
        if text.len() + needed > budget {
            break;
        }
        if kept > 0 {
            text.push_str(separator);
        }
        text.push_str(&item);
        kept += 1;
    }
    if kept < total {
        text.push_str(&more(total - kept));
    }
    text
}

fn more(count: usize) -> String {
    format!(" and {count} more")
}

/// A metric label value from an object's name or namespace: itself when it fits
/// [`MAX_LABEL_VALUE`], else a prefix and a digest of the whole, so that two long names stay two
/// series and the same name always gives the same value.
pub fn label_value(value: &str) -> Cow<'_, str> {
    if value.len() <= MAX_LABEL_VALUE {
        return Cow::Borrowed(value);
    }
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    let suffix = format!("~{:016x}", hasher.finish());
    let mut end = MAX_LABEL_VALUE - suffix.len();
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{suffix}", &value[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_cuts_on_a_character_boundary_and_says_so() {
        assert_eq!(truncate("short", MAX_MESSAGE), "short");
        let long = "é".repeat(MAX_MESSAGE);
        let cut = truncate(&long, MAX_MESSAGE);
        assert!(
            cut.len() <= MAX_MESSAGE && cut.ends_with(ELLIPSIS),
            "{}",
            cut.len()
        );
        assert_eq!(truncate("abcdef", 5), "ab...");
    }

    #[test]
    fn names_are_cut_by_characters() {
        let name = "k".repeat(10_000);
        let cut = truncate_chars(&name, MAX_NAME_IN_MESSAGE);
        assert_eq!(cut.chars().count(), MAX_NAME_IN_MESSAGE);
        assert!(cut.ends_with(ELLIPSIS));
        assert_eq!(truncate_chars("password", MAX_NAME_IN_MESSAGE), "password");
        let wide = "日".repeat(MAX_NAME_IN_MESSAGE + 1);
        assert_eq!(
            truncate_chars(&wide, MAX_NAME_IN_MESSAGE).chars().count(),
            MAX_NAME_IN_MESSAGE
        );
    }

    #[test]
    fn lists_stop_within_the_budget_and_count_the_rest() {
        let items = |n: usize| (0..n).map(|i| format!("key-{i}"));
        assert_eq!(join_within(items(3), 3, "; ", 100), "key-0; key-1; key-2");
        let text = join_within(items(2000), 2000, "; ", 60);
        assert!(text.len() <= 60, "{text}");
        assert!(text.starts_with("key-0; key-1"), "{text}");
        let shown = text.matches("key-").count();
        assert!(
            text.ends_with(&format!(" and {} more", 2000 - shown)),
            "{text}"
        );
        // Nothing fits: only the count.
        assert_eq!(join_within(items(2), 2, "; ", 3), " and 2 more");
    }

    #[test]
    fn label_values_are_bounded_stable_and_distinct() {
        assert_eq!(label_value("prod"), "prod");
        let a = format!("{}a", "n".repeat(10_000));
        let b = format!("{}b", "n".repeat(10_000));
        assert!(label_value(&a).len() <= MAX_LABEL_VALUE);
        assert_eq!(label_value(&a), label_value(&a));
        assert_ne!(label_value(&a), label_value(&b));
        let exact = "x".repeat(MAX_LABEL_VALUE);
        assert_eq!(label_value(&exact), exact.as_str());
    }
}
