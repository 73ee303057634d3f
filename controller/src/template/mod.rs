//! `spec.template.data`: Go text/template rendered over the decrypted values, as Bitnami does.
//!
//! Values are reached as `{{ .key }}` or, for keys Go cannot name, `{{ index . "key-with-dash" }}`.
//! The language is Go's text/template: actions with `{{-`/`-}}` trim markers, comments,
//! pipelines, variables, `if`/`with`/`range` (over the values in key order, or over an integer)
//! with `else`, `break`/`continue`, `define`/`template`/`block`, and Go's builtins (`and`, `or`,
//! `not`, `len`, `index`, `slice`, `print`, `printf`, `println`, `eq`, `ne`, `lt`, `le`, `gt`,
//! `ge`, `html`, `js`, `urlquery`). The Sprig helpers users write in sealed templates are provided
//! with Sprig's argument order: `b64enc`, `b64dec`, `upper`, `lower`, `trim`, `trimAll`,
//! `trimPrefix`, `trimSuffix`, `replace`, `quote`, `squote`, `default`, `empty`, `coalesce`,
//! `contains`, `hasPrefix`, `hasSuffix`, `indent`, `nindent`, `repeat`, `sha256sum`. Like Bitnami
//! (which removes Sprig's `env`, `expandenv` and `getHostByName`), nothing reaches the
//! environment, files or the network.
//!
//! Deliberate differences from Go: a missing key is an error, where Go prints `<no value>` into
//! the Secret (and a key written in the template, `.key` or `index . "key"`, is checked before
//! running, even in a branch that would not run); a `printf` verb applied to a value of the wrong type, or with missing or extra
//! arguments, is an error where Go prints `%!d(string=…)` into the output.
//!
//! # Why our own interpreter
//! A SealedSecret's author is not trusted (see SECURITY.md): the template is attacker input,
//! run on an unseal thread of the controller. The library used before (gtmpl) could not be
//! bounded from outside: a 265-byte recursive `define` or 1,000 nested parentheses overflowed the
//! thread's stack and aborted the process, nested `repeat`/`indent` exhausted memory, a wide
//! `printf` width panicked, and nothing counted steps. This one is small (lexer, parser, static
//! check, evaluator) and runs under a [`Budget`] whose every bound is checked where the work
//! happens.
//!
//! # What errors may say (finding 5 of issue 12)
//! The template text is plaintext in the SealedSecret, and key names are not secret, so errors
//! found before execution are detailed: syntax errors with line and column, unknown functions,
//! wrong argument counts, references to keys that are not in the data, `printf` formats that
//! cannot work. Anything that fails while running (a function refusing a value, a budget run out,
//! a missing key reached through a computed name) gives one fixed message, [`RUN_TIME_FAILURE`],
//! whatever the reason or the branch taken, so that the status cannot tell one value from
//! another.
//!
//! One bit remains: whether a template renders at all may depend on a value (`{{ if hasPrefix
//! "h" .password }}{{ .password | b64dec }}{{ end }}`), and the status shows success or failure.
//! A tenant who may edit a SealedSecret but not read the Secret it produces can so learn one
//! bit per edit: about 8 edits per byte of the value by bisection, each one a visible update of
//! the object (a new generation, a status change, an event). Closing it would mean hiding
//! whether a template rendered, which users need to see. The time a render takes also depends
//! on the values; it is bounded by the budget and not reported.

//! # Memory
//! The values are copied once into [`TemplateValues`] (wiped on drop); strings built while
//! rendering are wiped when dropped. The output and `printf` buffers grow by moving to a new
//! buffer and wiping the old one; other strings are sized before they are built. What remains:
//! case mapping (`upper`, `lower`) and base64 decoding grow their own buffers inside the library
//! that does them, and may leave fragments in freed memory.

mod budget;
mod check;
mod eval;
mod format;
mod funcs;
mod lexer;
mod message;
mod parser;
mod value;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use zeroize::Zeroizing;

pub use budget::{Budget, Reason};

/// The one message for every failure found while running a template. It must never vary with
/// the values, so it names no reason: the caller adds the template's data key.
pub const RUN_TIME_FAILURE: &str = "rendering failed at run time (a function refused a value, a key computed at run time is missing, or the template ran past its bounds); the reason is withheld because it may depend on the decrypted values";

/// The decrypted values a template sees, as Go strings (bytes, not necessarily UTF-8).
/// Wiped on drop; its `Debug` shows the keys only.
#[derive(Default)]
pub struct TemplateValues(BTreeMap<String, Zeroizing<Vec<u8>>>);

impl std::fmt::Debug for TemplateValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl TemplateValues {
    /// The values of `data` keyed as in the Secret.
    pub fn new(data: &BTreeMap<String, Zeroizing<Vec<u8>>>) -> Self {
        TemplateValues(data.clone())
    }
}

/// Renders one template under the default [`Budget`]. The error text is safe to show: it
/// depends on the template text and the key names only, never on a value. `_name` is the
/// template's data key, which the caller puts before the error.
pub fn render(
    _name: &str,
    template: &str,
    values: &TemplateValues,
) -> Result<Zeroizing<Vec<u8>>, String> {
    render_with(template, values, &Budget::default()).map_err(|e| e.to_string())
}

/// Why a render failed. Only [`Failure::Invalid`] carries detail, and that detail comes from the
/// template text and the key names. Its `Display` is what [`render`] returns.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// Found before running: syntax, unknown functions, argument counts, unknown keys.
    Invalid(String),
    /// Found while running; the reason is for tests only and never shown.
    RunTime(Reason),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Invalid(message) => write!(f, "invalid template: {message}"),
            Failure::RunTime(_) => f.write_str(RUN_TIME_FAILURE),
        }
    }
}

/// Renders one template under `budget` (for fuzzing and tests with smaller bounds).
pub fn render_with(
    template: &str,
    values: &TemplateValues,
    budget: &Budget,
) -> Result<Zeroizing<Vec<u8>>, Failure> {
    if template.len() > budget.max_template_bytes {
        return Err(Failure::Invalid(format!(
            "the template is {} bytes, more than the {} allowed",
            template.len(),
            budget.max_template_bytes
        )));
    }
    let tree = parser::parse(template, budget.max_nesting).map_err(Failure::Invalid)?;
    check::check(&tree, &values.0, template).map_err(Failure::Invalid)?;
    eval::run(&tree, &values.0, budget).map_err(Failure::RunTime)
}
