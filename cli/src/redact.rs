//! Parser messages with the values they quote taken out.
//!
//! serde's type errors print the offending value: `invalid value: string "hunter2", expected an
//! integer` (a YAML `!!int hunter2`), `invalid type: integer `5`, expected a sequence`. The value
//! may be a password, a token or a private key, and `seal` and `check` run in CI logs, so every
//! message a parser hands us is shown through [`parser_message`]: the field path, the position
//! and the kind of the value stay, the value itself does not. Some parsers (serde-saphyr, inside
//! kube) append a snippet of the input under the first line; only the first line is kept.

/// The longest parser message shown; past it the text is cut (a message is one line about one
/// field, a few hundred characters at most, so this only stops a pathological key name).
const MAX_MESSAGE_CHARS: usize = 400;

/// How serde's `Unexpected` shows each kind of scalar value, and the words that replace it.
const QUOTED_SCALARS: &[(&str, &str)] = &[
    ("integer `", "an integer"),
    ("floating point `", "a floating point number"),
    ("boolean `", "a boolean"),
    ("character `", "a character"),
];

/// Markers after which serde prints a value.
const VALUE_MARKERS: &[&str] = &["invalid type: ", "invalid value: ", "unknown variant "];

/// `message` without any value serde quoted in it, on one line, at most [`MAX_MESSAGE_CHARS`].
pub fn parser_message(message: &str) -> String {
    let first_line = message.lines().next().unwrap_or_default().trim_end();
    let mut out = String::with_capacity(first_line.len());
    let mut rest = first_line;
    while let Some((at, marker)) = VALUE_MARKERS
        .iter()
        .filter_map(|marker| rest.find(marker).map(|at| (at, *marker)))
        .min_by_key(|(at, _)| *at)
    {
        let after = at + marker.len();
        out.push_str(&rest[..after]);
        let (replacement, consumed) = unquote(&rest[after..]);
        out.push_str(replacement);
        rest = &rest[after + consumed..];
    }
    out.push_str(rest);
    if out.chars().count() > MAX_MESSAGE_CHARS {
        out = out.chars().take(MAX_MESSAGE_CHARS).collect();
        out.push('…');
    }
    out
}

/// The words for the value at the start of `text` and how many bytes of `text` it took;
/// `("", 0)` when no value is quoted there.
fn unquote(text: &str) -> (&'static str, usize) {
    if let Some(quoted) = text.strip_prefix("string \"") {
        // Debug-escaped: a backslash escapes the next character, an unescaped quote ends it.
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => return ("a string", "string \"".len() + i + 1),
                _ => {}
            }
        }
        return ("a string", text.len());
    }
    if let Some(quoted) = text.strip_prefix('`') {
        // `unknown variant `x`, expected …`
        return match quoted.find("`, expected").or_else(|| quoted.find('`')) {
            Some(end) => ("(not shown)", 1 + end + 1),
            None => ("(not shown)", text.len()),
        };
    }
    for (prefix, words) in QUOTED_SCALARS {
        if let Some(quoted) = text.strip_prefix(prefix) {
            let end = quoted
                .find("`, expected")
                .or_else(|| quoted.find('`'))
                .map_or(text.len(), |end| prefix.len() + end + 1);
            return (words, end);
        }
    }
    ("", 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_are_replaced_by_their_kind() {
        let cases = [
            (
                "stringData.password: invalid value: string \"hunter2\", expected an integer at line 5 column 13",
                "stringData.password: invalid value: a string, expected an integer at line 5 column 13",
            ),
            (
                "invalid type: string \"a \\\"quoted\\\" hunter2\", expected a sequence",
                "invalid type: a string, expected a sequence",
            ),
            (
                "contexts[0].context.namespace: invalid type: integer `12345`, expected a string",
                "contexts[0].context.namespace: invalid type: an integer, expected a string",
            ),
            (
                "invalid type: floating point `1.5`, expected a string",
                "invalid type: a floating point number, expected a string",
            ),
            (
                "invalid type: boolean `true`, expected a map",
                "invalid type: a boolean, expected a map",
            ),
            (
                "invalid type: character ```, expected a map",
                "invalid type: a character, expected a map",
            ),
            (
                "rules[0].scope: unknown variant `hunter2`, expected `strict`",
                "rules[0].scope: unknown variant (not shown), expected `strict`",
            ),
            (
                "invalid type: sequence, expected a string at line 3 column 1",
                "invalid type: sequence, expected a string at line 3 column 1",
            ),
            (
                "did not find expected key at line 2 column 3, while parsing a block mapping",
                "did not find expected key at line 2 column 3, while parsing a block mapping",
            ),
            (
                "unknown field `rulez`, expected `rules` or `ignore`",
                "unknown field `rulez`, expected `rules` or `ignore`",
            ),
        ];
        for (message, expected) in cases {
            assert_eq!(parser_message(message), expected);
        }
    }

    #[test]
    fn snippets_after_the_first_line_are_dropped() {
        let message = "error: line 13 column 18: cannot deserialize tagged scalar into string\n  --> <input>:13:18\n13 |     token: !!int hunter2\n";
        assert_eq!(
            parser_message(message),
            "error: line 13 column 18: cannot deserialize tagged scalar into string"
        );
    }

    #[test]
    fn unterminated_quotes_drop_the_rest() {
        assert_eq!(
            parser_message("invalid value: string \"hunter2"),
            "invalid value: a string"
        );
        assert_eq!(
            parser_message("invalid value: integer `12"),
            "invalid value: an integer"
        );
    }

    #[test]
    fn long_messages_are_cut() {
        let message = "x".repeat(10 * MAX_MESSAGE_CHARS);
        assert_eq!(
            parser_message(&message).chars().count(),
            MAX_MESSAGE_CHARS + 1
        );
    }
}
