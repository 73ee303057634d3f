//! `spec.template.data`: Go text/template rendered over the decrypted values, as Bitnami does.
//!
//! Values are reached as `{{ .key }}` or, for keys Go cannot name, `{{ index . "key-with-dash" }}`.
//! Besides Go's builtins (`printf`, `index`, `eq`, `and`, ...), the Sprig helpers users write in
//! sealed templates are provided: `b64enc`, `b64dec`, `upper`, `lower`, `trim`, `trimAll`,
//! `trimPrefix`, `trimSuffix`, `replace`, `quote`, `squote`, `default`, `empty`, `coalesce`,
//! `contains`, `hasPrefix`, `hasSuffix`, `indent`, `nindent`, `repeat`, `sha256sum`. Like Bitnami
//! (which removes Sprig's `env`, `expandenv` and `getHostByName`), nothing reaches the
//! environment, files or the network.
//!
//! One deliberate difference: a missing key is an error naming it, where Go prints
//! `<no value>` into the Secret.
//!
//! Error messages never contain decrypted values: the template engine's own messages can embed
//! them, so only the parts that cannot are kept.
//!
//! The engine copies its input while rendering; those copies are freed, not wiped.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use gtmpl::error::{ExecError, ParseError, TemplateError};
use gtmpl::{Context, Func, FuncError, Template, Value};
use zeroize::Zeroizing;

/// Helpers available to templates on top of Go's builtins.
const HELPERS: &[(&str, Func)] = &[
    ("b64enc", b64enc),
    ("b64dec", b64dec),
    ("upper", upper),
    ("lower", lower),
    ("trim", trim),
    ("trimAll", trim_all),
    ("trimPrefix", trim_prefix),
    ("trimSuffix", trim_suffix),
    ("replace", replace),
    ("quote", quote),
    ("squote", squote),
    ("default", default),
    ("empty", empty),
    ("coalesce", coalesce),
    ("contains", contains),
    ("hasPrefix", has_prefix),
    ("hasSuffix", has_suffix),
    ("indent", indent),
    ("nindent", nindent),
    ("repeat", repeat),
    ("sha256sum", sha256sum),
];

/// Longest output one template may produce; a template is not a way to exhaust memory.
const MAX_OUTPUT: usize = 1 << 20;

/// The decrypted values a template sees, as Go strings (non-UTF-8 bytes are replaced).
#[derive(Default)]
pub struct TemplateValues(HashMap<String, Value>);

impl std::fmt::Debug for TemplateValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl TemplateValues {
    /// The values of `data` keyed as in the Secret.
    pub fn new(data: &BTreeMap<String, Zeroizing<Vec<u8>>>) -> Self {
        TemplateValues(
            data.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        Value::String(String::from_utf8_lossy(v).into_owned()),
                    )
                })
                .collect(),
        )
    }
}

impl Drop for TemplateValues {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        for value in self.0.values_mut() {
            if let Value::String(s) = value {
                s.zeroize();
            }
        }
    }
}

/// Renders one template. The error text is safe to show: it never holds a value.
pub fn render(
    name: &str,
    template: &str,
    values: &TemplateValues,
) -> Result<Zeroizing<Vec<u8>>, String> {
    let mut tmpl = Template::with_name(name);
    tmpl.add_funcs(HELPERS);
    tmpl.parse(template)
        .map_err(|e| describe(&TemplateError::ParseError(e)))?;
    // An object (not a map): a missing key is an error rather than "<no value>".
    let context = Context::from(Value::Object(values.0.clone()));
    let output = tmpl
        .render(&context)
        .map_err(|e| describe(&TemplateError::ExecError(e)))?;
    let output = Zeroizing::new(output.into_bytes());
    if output.len() > MAX_OUTPUT {
        return Err(format!("output exceeds {MAX_OUTPUT} bytes"));
    }
    Ok(output)
}

/// Describes a template error without any value that could have come from the decrypted data.
fn describe(error: &TemplateError) -> String {
    let text = describe_unsanitized(error);
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn describe_unsanitized(error: &TemplateError) -> String {
    match error {
        TemplateError::ParseError(e) => match e {
            // Parse errors describe the template text, which is plaintext in the SealedSecret.
            ParseError::WithContext(..) | ParseError::UnexpectedEnd | ParseError::NoTree => {
                format!("invalid template: {e}")
            }
            _ => "invalid template".to_owned(),
        },
        TemplateError::ExecError(e) => match e {
            ExecError::NoFiledFor(field, _) => format!("no key {field:?} in the decrypted data"),
            ExecError::UndefinedFunction(name) => format!("{name} is not a defined function"),
            ExecError::VariableNotFound(name) => format!("variable {name} not found"),
            ExecError::TemplateNotDefined(name) => format!("template {name} not defined"),
            ExecError::MaxTemplateDepth => "exceeded max template depth".to_owned(),
            ExecError::OnlyMapsAndObjectsHaveFields => "only maps have fields".to_owned(),
            ExecError::IncompleteTemplate(_) => "incomplete or empty template".to_owned(),
            ExecError::FuncError(f) => match f {
                FuncError::AtLeastXArgs(..)
                | FuncError::ExactlyXArgs(..)
                | FuncError::UnableToConvertFromValue => format!("function call failed: {f}"),
                FuncError::Generic(message) if message.starts_with(SAFE) => {
                    format!("function call failed: {}", &message[SAFE.len()..])
                }
                _ => "function call failed".to_owned(),
            },
            _ => "template execution failed".to_owned(),
        },
    }
}

/// Prefix marking our helpers' error messages as free of values.
const SAFE: &str = "\u{0}safe:";

fn safe_error(message: &str) -> FuncError {
    FuncError::Generic(format!("{SAFE}{message}"))
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::NoValue | Value::Nil => Some(String::new()),
        _ => None,
    }
}

fn string_arg(name: &str, args: &[Value], index: usize) -> Result<String, FuncError> {
    let value = args
        .get(index)
        .ok_or_else(|| FuncError::AtLeastXArgs(name.to_owned(), index + 1))?;
    text(value)
        .ok_or_else(|| safe_error(&format!("{name}: argument {} is not a string", index + 1)))
}

fn int_arg(name: &str, args: &[Value], index: usize) -> Result<usize, FuncError> {
    let value = args
        .get(index)
        .ok_or_else(|| FuncError::AtLeastXArgs(name.to_owned(), index + 1))?;
    let n = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    n.and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n <= MAX_OUTPUT)
        .ok_or_else(|| {
            safe_error(&format!(
                "{name}: argument {} is not a small count",
                index + 1
            ))
        })
}

fn exactly(name: &str, args: &[Value], n: usize) -> Result<(), FuncError> {
    if args.len() == n {
        Ok(())
    } else {
        Err(FuncError::ExactlyXArgs(name.to_owned(), n))
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::NoValue | Value::Nil => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) | Value::Map(o) => o.is_empty(),
        Value::Function(_) => false,
    }
}

fn unary(name: &str, args: &[Value], f: impl Fn(&str) -> String) -> Result<Value, FuncError> {
    exactly(name, args, 1)?;
    Ok(Value::String(f(&string_arg(name, args, 0)?)))
}

fn b64enc(args: &[Value]) -> Result<Value, FuncError> {
    unary("b64enc", args, |s| STANDARD.encode(s))
}

fn b64dec(args: &[Value]) -> Result<Value, FuncError> {
    exactly("b64dec", args, 1)?;
    let decoded = STANDARD
        .decode(string_arg("b64dec", args, 0)?.trim())
        .map_err(|_| safe_error("b64dec: invalid base64"))?;
    String::from_utf8(decoded)
        .map(Value::String)
        .map_err(|_| safe_error("b64dec: the decoded bytes are not UTF-8 text"))
}

fn upper(args: &[Value]) -> Result<Value, FuncError> {
    unary("upper", args, str::to_uppercase)
}

fn lower(args: &[Value]) -> Result<Value, FuncError> {
    unary("lower", args, str::to_lowercase)
}

fn trim(args: &[Value]) -> Result<Value, FuncError> {
    unary("trim", args, |s| s.trim().to_owned())
}

fn trim_all(args: &[Value]) -> Result<Value, FuncError> {
    exactly("trimAll", args, 2)?;
    let cutset = string_arg("trimAll", args, 0)?;
    let s = string_arg("trimAll", args, 1)?;
    Ok(Value::String(
        s.trim_matches(|c| cutset.contains(c)).to_owned(),
    ))
}

fn trim_prefix(args: &[Value]) -> Result<Value, FuncError> {
    exactly("trimPrefix", args, 2)?;
    let prefix = string_arg("trimPrefix", args, 0)?;
    let s = string_arg("trimPrefix", args, 1)?;
    Ok(Value::String(
        s.strip_prefix(prefix.as_str()).unwrap_or(&s).to_owned(),
    ))
}

fn trim_suffix(args: &[Value]) -> Result<Value, FuncError> {
    exactly("trimSuffix", args, 2)?;
    let suffix = string_arg("trimSuffix", args, 0)?;
    let s = string_arg("trimSuffix", args, 1)?;
    Ok(Value::String(
        s.strip_suffix(suffix.as_str()).unwrap_or(&s).to_owned(),
    ))
}

fn replace(args: &[Value]) -> Result<Value, FuncError> {
    exactly("replace", args, 3)?;
    let old = string_arg("replace", args, 0)?;
    let new = string_arg("replace", args, 1)?;
    let s = string_arg("replace", args, 2)?;
    Ok(Value::String(s.replace(old.as_str(), &new)))
}

fn quote_with(name: &str, args: &[Value], q: char) -> Result<Value, FuncError> {
    let quoted = (0..args.len())
        .map(|i| {
            let s = string_arg(name, args, i)?;
            Ok(if q == '"' {
                format!("{s:?}")
            } else {
                format!("{q}{s}{q}")
            })
        })
        .collect::<Result<Vec<_>, FuncError>>()?;
    Ok(Value::String(quoted.join(" ")))
}

fn quote(args: &[Value]) -> Result<Value, FuncError> {
    quote_with("quote", args, '"')
}

fn squote(args: &[Value]) -> Result<Value, FuncError> {
    quote_with("squote", args, '\'')
}

fn default(args: &[Value]) -> Result<Value, FuncError> {
    match args {
        [fallback] => Ok(fallback.clone()),
        [fallback, given] if is_empty(given) => Ok(fallback.clone()),
        [_, given] => Ok(given.clone()),
        _ => Err(FuncError::AtLeastXArgs("default".to_owned(), 1)),
    }
}

fn empty(args: &[Value]) -> Result<Value, FuncError> {
    exactly("empty", args, 1)?;
    Ok(Value::Bool(is_empty(&args[0])))
}

fn coalesce(args: &[Value]) -> Result<Value, FuncError> {
    Ok(args
        .iter()
        .find(|v| !is_empty(v))
        .cloned()
        .unwrap_or(Value::Nil))
}

fn predicate(
    name: &str,
    args: &[Value],
    f: impl Fn(&str, &str) -> bool,
) -> Result<Value, FuncError> {
    exactly(name, args, 2)?;
    let needle = string_arg(name, args, 0)?;
    let s = string_arg(name, args, 1)?;
    Ok(Value::Bool(f(&s, &needle)))
}

fn contains(args: &[Value]) -> Result<Value, FuncError> {
    predicate("contains", args, |s, n| s.contains(n))
}

fn has_prefix(args: &[Value]) -> Result<Value, FuncError> {
    predicate("hasPrefix", args, |s, n| s.starts_with(n))
}

fn has_suffix(args: &[Value]) -> Result<Value, FuncError> {
    predicate("hasSuffix", args, |s, n| s.ends_with(n))
}

fn indent_by(name: &str, args: &[Value]) -> Result<String, FuncError> {
    exactly(name, args, 2)?;
    let pad = " ".repeat(int_arg(name, args, 0)?);
    let s = string_arg(name, args, 1)?;
    Ok(s.split('\n')
        .map(|line| format!("{pad}{line}"))
        .collect::<Vec<_>>()
        .join("\n"))
}

fn indent(args: &[Value]) -> Result<Value, FuncError> {
    indent_by("indent", args).map(Value::String)
}

fn nindent(args: &[Value]) -> Result<Value, FuncError> {
    indent_by("nindent", args).map(|s| Value::String(format!("\n{s}")))
}

fn repeat(args: &[Value]) -> Result<Value, FuncError> {
    exactly("repeat", args, 2)?;
    let count = int_arg("repeat", args, 0)?;
    let s = string_arg("repeat", args, 1)?;
    if s.len().saturating_mul(count) > MAX_OUTPUT {
        return Err(safe_error("repeat: result too large"));
    }
    Ok(Value::String(s.repeat(count)))
}

fn sha256sum(args: &[Value]) -> Result<Value, FuncError> {
    exactly("sha256sum", args, 1)?;
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        string_arg("sha256sum", args, 0)?.as_bytes(),
    );
    Ok(Value::String(
        digest.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> TemplateValues {
        let data = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Zeroizing::new(v.as_bytes().to_vec())))
            .collect();
        TemplateValues::new(&data)
    }

    fn ok(template: &str, pairs: &[(&str, &str)]) -> String {
        let out = render("t", template, &values(pairs)).expect("renders");
        String::from_utf8(out.to_vec()).expect("utf-8")
    }

    fn err(template: &str, pairs: &[(&str, &str)]) -> String {
        render("t", template, &values(pairs)).expect_err("fails")
    }

    #[test]
    fn dot_access_and_index_for_keys_with_dashes() {
        let vals = [("user", "admin"), ("pass-word", "s3cr3t")];
        assert_eq!(
            ok("{{ .user }}:{{ index . \"pass-word\" }}", &vals),
            "admin:s3cr3t"
        );
        assert_eq!(
            ok("postgres://{{ .user }}@db/{{ printf \"%s\" .user }}", &vals),
            "postgres://admin@db/admin"
        );
    }

    #[test]
    fn templates_without_values_render_as_text() {
        assert_eq!(ok("plain text", &[]), "plain text");
        assert_eq!(ok("", &[]), "");
    }

    #[test]
    fn sprig_helpers() {
        let vals = [("a", "  Hello "), ("b", ""), ("c", "aGk=")];
        assert_eq!(ok("{{ .a | trim | upper }}", &vals), "HELLO");
        assert_eq!(ok("{{ .a | trim | lower }}", &vals), "hello");
        assert_eq!(ok("{{ .b | default \"fallback\" }}", &vals), "fallback");
        assert_eq!(ok("{{ .a | trim | default \"fallback\" }}", &vals), "Hello");
        assert_eq!(ok("{{ .c | b64dec }}", &vals), "hi");
        assert_eq!(ok("{{ \"hi\" | b64enc }}", &vals), "aGk=");
        assert_eq!(ok("{{ .a | trim | quote }}", &vals), "\"Hello\"");
        assert_eq!(ok("{{ .a | trim | squote }}", &vals), "'Hello'");
        assert_eq!(ok("{{ replace \"l\" \"L\" .a }}", &vals), "  HeLLo ");
        assert_eq!(ok("{{ .a | trim | trimPrefix \"He\" }}", &vals), "llo");
        assert_eq!(ok("{{ .a | trim | trimSuffix \"lo\" }}", &vals), "Hel");
        assert_eq!(ok("{{ \"x\\ny\" | indent 2 }}", &vals), "  x\n  y");
        assert_eq!(ok("{{ \"x\" | nindent 2 }}", &vals), "\n  x");
        assert_eq!(ok("{{ if contains \"ell\" .a }}yes{{ end }}", &vals), "yes");
        assert_eq!(
            ok("{{ if hasPrefix \"  H\" .a }}yes{{ end }}", &vals),
            "yes"
        );
        assert_eq!(ok("{{ if empty .b }}empty{{ end }}", &vals), "empty");
        assert_eq!(ok("{{ coalesce .b \"z\" }}", &vals), "z");
        assert_eq!(ok("{{ repeat 3 \"ab\" }}", &vals), "ababab");
        assert_eq!(
            ok("{{ sha256sum \"abc\" }}", &vals),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn no_environment_access() {
        for template in [
            "{{ env \"HOME\" }}",
            "{{ expandenv \"$HOME\" }}",
            "{{ getHostByName \"x\" }}",
        ] {
            let e = err(template, &[]);
            assert!(e.contains("not defined"), "{e}");
        }
    }

    #[test]
    fn errors_never_show_values() {
        let vals = [("password", "hunter2-super-secret")];
        for template in [
            "{{ .missing }}",
            "{{ index . \"missing\" }}",
            "{{ .password.inner }}",
            "{{ .password | b64dec }}",
            "{{ printf \"%d\" .password }}",
            "{{ range .password }}{{ end }}",
            "{{ len 1 2 }}",
        ] {
            if let Err(e) = render("t", template, &values(&vals)) {
                assert!(!e.contains("hunter2"), "{template}: {e}");
            }
        }
        let e = err("{{ .missing }}", &vals);
        assert!(e.contains("\"missing\""), "{e}");
    }

    #[test]
    fn parse_errors_name_the_problem() {
        let e = err("{{ .foo", &[]);
        assert!(e.starts_with("invalid template"), "{e}");
    }

    #[test]
    fn output_is_bounded() {
        let e = err("{{ repeat 1048576 \"ab\" }}", &[]);
        assert!(e.contains("too large"), "{e}");
    }
}
