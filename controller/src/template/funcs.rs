//! Go's builtins and the Sprig helpers, over [`Value`]s, each string sized before it is built.
//!
//! `and` and `or` are not here: they evaluate their arguments lazily, in the evaluator.

use std::cmp::Ordering;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use super::budget::{Meter, Reason};
use super::format;
use super::value::{Value, value_len, write_value};

/// Every function and its argument count (least, most). Sprig's argument order: the value a
/// pipeline passes comes last.
pub(crate) const FUNCTIONS: &[(&str, usize, Option<usize>)] = &[
    ("and", 1, None),
    ("or", 1, None),
    ("not", 1, Some(1)),
    ("len", 1, Some(1)),
    ("index", 1, None),
    ("slice", 1, Some(3)),
    ("print", 0, None),
    ("printf", 1, None),
    ("println", 0, None),
    ("eq", 2, None),
    ("ne", 2, Some(2)),
    ("lt", 2, Some(2)),
    ("le", 2, Some(2)),
    ("gt", 2, Some(2)),
    ("ge", 2, Some(2)),
    ("html", 0, None),
    ("js", 0, None),
    ("urlquery", 0, None),
    ("b64enc", 1, Some(1)),
    ("b64dec", 1, Some(1)),
    ("upper", 1, Some(1)),
    ("lower", 1, Some(1)),
    ("trim", 1, Some(1)),
    ("trimAll", 2, Some(2)),
    ("trimPrefix", 2, Some(2)),
    ("trimSuffix", 2, Some(2)),
    ("replace", 3, Some(3)),
    ("quote", 0, None),
    ("squote", 0, None),
    ("default", 1, Some(2)),
    ("empty", 1, Some(1)),
    ("coalesce", 0, None),
    ("contains", 2, Some(2)),
    ("hasPrefix", 2, Some(2)),
    ("hasSuffix", 2, Some(2)),
    ("indent", 2, Some(2)),
    ("nindent", 2, Some(2)),
    ("repeat", 2, Some(2)),
    ("sha256sum", 1, Some(1)),
];

pub(crate) fn arity(name: &str) -> Option<(usize, Option<usize>)> {
    FUNCTIONS
        .iter()
        .find(|(n, ..)| *n == name)
        .map(|(_, min, max)| (*min, *max))
}

type Result<T> = std::result::Result<T, Reason>;

/// Calls `name` (not `and`/`or`); the argument count was checked before running.
pub(crate) fn call<'a>(name: &str, args: &[Value<'a>], meter: &mut Meter<'_>) -> Result<Value<'a>> {
    meter.work(args.iter().map(Value::size).sum())?;
    let arg = |i: usize| args.get(i).ok_or(Reason("missing argument"));
    let result = match name {
        "not" => Value::Bool(!arg(0)?.truth()),
        "len" => match arg(0)? {
            Value::Str(s) => Value::Int(to_int(s.bytes().len())),
            Value::Data(d) => Value::Int(to_int(d.len())),
            _ => return Err(Reason("len of a value that has no length")),
        },
        "index" => index(args)?,
        "slice" => slice(args)?,
        "print" => print(args, false, meter)?,
        "println" => print(args, true, meter)?,
        "printf" => {
            let format = arg(0)?
                .as_bytes()
                .ok_or(Reason("printf: the format is not a string"))?;
            let pieces = format::parse(format).map_err(Reason)?;
            Value::built(format::sprintf(
                &pieces,
                &args[1..],
                meter.budget.max_string,
            )?)
        }
        "eq" => {
            let first = arg(0)?;
            let mut equal = false;
            for other in &args[1..] {
                equal |= compare(first, other, true)? == Ordering::Equal;
            }
            Value::Bool(equal)
        }
        "ne" => Value::Bool(compare(arg(0)?, arg(1)?, true)? != Ordering::Equal),
        "lt" => Value::Bool(compare(arg(0)?, arg(1)?, false)? == Ordering::Less),
        "le" => Value::Bool(compare(arg(0)?, arg(1)?, false)? != Ordering::Greater),
        "gt" => Value::Bool(compare(arg(0)?, arg(1)?, false)? == Ordering::Greater),
        "ge" => Value::Bool(compare(arg(0)?, arg(1)?, false)? != Ordering::Less),
        "html" => escape(args, meter, 6, html)?,
        "js" => escape(args, meter, 6, js)?,
        "urlquery" => escape(args, meter, 3, urlquery)?,
        "b64enc" => {
            let s = text(arg(0)?)?;
            meter.string(s.len().div_ceil(3) * 4)?;
            Value::built(Zeroizing::new(STANDARD.encode(&*s).into_bytes()))
        }
        "b64dec" => {
            let s = text(arg(0)?)?;
            let trimmed = s.trim_ascii();
            meter.string(trimmed.len())?;
            let decoded = STANDARD
                .decode(trimmed)
                .map_err(|_| Reason("b64dec: invalid base64"))?;
            Value::built(Zeroizing::new(decoded))
        }
        "upper" => mapped(arg(0)?, meter, str::to_uppercase)?,
        "lower" => mapped(arg(0)?, meter, str::to_lowercase)?,
        "trim" => {
            let s = text(arg(0)?)?;
            built(meter, s.trim_ascii())?
        }
        "trimAll" => {
            let cutset: std::collections::BTreeSet<char> =
                String::from_utf8_lossy(&text(arg(0)?)?).chars().collect();
            let s = text(arg(1)?)?;
            let lossy = Zeroizing::new(String::from_utf8_lossy(&s).into_owned());
            built(
                meter,
                lossy.trim_matches(|c| cutset.contains(&c)).as_bytes(),
            )?
        }
        "trimPrefix" => {
            let (prefix, s) = (text(arg(0)?)?, text(arg(1)?)?);
            built(meter, s.strip_prefix(prefix.as_slice()).unwrap_or(&s))?
        }
        "trimSuffix" => {
            let (suffix, s) = (text(arg(0)?)?, text(arg(1)?)?);
            built(meter, s.strip_suffix(suffix.as_slice()).unwrap_or(&s))?
        }
        "replace" => replace(&text(arg(0)?)?, &text(arg(1)?)?, &text(arg(2)?)?, meter)?,
        "quote" => quote(args, b'"', meter)?,
        "squote" => quote(args, b'\'', meter)?,
        "default" => match args {
            [fallback] => fallback.clone(),
            [fallback, given] if empty(given) => fallback.clone(),
            [_, given] => given.clone(),
            _ => return Err(Reason("default: wrong number of arguments")),
        },
        "empty" => Value::Bool(empty(arg(0)?)),
        "coalesce" => args
            .iter()
            .find(|v| !empty(v))
            .cloned()
            .unwrap_or(Value::Nil),
        "contains" => Value::Bool(contains(&text(arg(1)?)?, &text(arg(0)?)?)),
        "hasPrefix" => Value::Bool(text(arg(1)?)?.starts_with(&text(arg(0)?)?)),
        "hasSuffix" => Value::Bool(text(arg(1)?)?.ends_with(&text(arg(0)?)?)),
        "indent" => indent(count(arg(0)?, meter)?, &text(arg(1)?)?, false, meter)?,
        "nindent" => indent(count(arg(0)?, meter)?, &text(arg(1)?)?, true, meter)?,
        "repeat" => {
            let n = count(arg(0)?, meter)?;
            let s = text(arg(1)?)?;
            meter.string(s.len().saturating_mul(n))?;
            Value::built(Zeroizing::new(s.repeat(n)))
        }
        "sha256sum" => {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &text(arg(0)?)?);
            let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
            Value::built(Zeroizing::new(hex.into_bytes()))
        }
        _ => return Err(Reason("unknown function")),
    };
    Ok(result)
}

fn to_int(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A string argument as Sprig's `toString` sees it: numbers and booleans in Go's form, nil empty.
fn text(value: &Value<'_>) -> Result<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::new());
    match value {
        Value::Nil => {}
        Value::Data(_) => return Err(Reason("a map where a string is expected")),
        other => {
            out.reserve(value_len(other));
            write_value(&mut out, other);
        }
    }
    Ok(out)
}

fn built<'a>(meter: &mut Meter<'_>, bytes: &[u8]) -> Result<Value<'a>> {
    meter.string(bytes.len())?;
    Ok(Value::built(Zeroizing::new(bytes.to_vec())))
}

fn mapped<'a>(
    value: &Value<'_>,
    meter: &mut Meter<'_>,
    f: fn(&str) -> String,
) -> Result<Value<'a>> {
    let s = text(value)?;
    meter.string(s.len())?;
    let lossy = Zeroizing::new(String::from_utf8_lossy(&s).into_owned());
    // Changing case makes a character at most three times longer: bounded before it is checked.
    let out = Zeroizing::new(f(&lossy).into_bytes());
    meter.string(out.len())?;
    Ok(Value::built(out))
}

/// A count argument: an int, or a string holding one (as Sprig converts), at most the string
/// bound.
fn count(value: &Value<'_>, meter: &Meter<'_>) -> Result<usize> {
    let n = match value {
        Value::Int(n) => usize::try_from(*n).ok(),
        Value::Str(s) => std::str::from_utf8(s.bytes())
            .ok()
            .and_then(|s| s.trim().parse().ok()),
        _ => None,
    };
    n.filter(|n| *n <= meter.budget.max_string)
        .ok_or(Reason("not a small count"))
}

/// Substring search in linear time (a naive search is quadratic in attacker input).
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// Go's `index`: keys into the value map, byte positions into strings.
fn index<'a>(args: &[Value<'a>]) -> Result<Value<'a>> {
    let mut current = args.first().cloned().ok_or(Reason("index: no argument"))?;
    for key in &args[1..] {
        current = match (&current, key) {
            (Value::Data(d), Value::Str(k)) => {
                let k = std::str::from_utf8(k.bytes()).map_err(|_| Reason("index: missing key"))?;
                let v = d.get(k).ok_or(Reason("index: missing key"))?;
                Value::borrowed(v)
            }
            (Value::Str(s), Value::Int(i)) => {
                let byte = usize::try_from(*i)
                    .ok()
                    .and_then(|i| s.bytes().get(i))
                    .ok_or(Reason("index: out of range"))?;
                Value::Int(i64::from(*byte))
            }
            _ => return Err(Reason("index: cannot index this value with this key")),
        };
    }
    Ok(current)
}

/// Go's `slice` on strings: byte positions, `slice s i j`.
fn slice<'a>(args: &[Value<'a>]) -> Result<Value<'a>> {
    let Some(Value::Str(s)) = args.first() else {
        return Err(Reason("slice: not a string"));
    };
    let bound = |v: &Value<'_>| match v {
        Value::Int(i) => usize::try_from(*i).map_err(|_| Reason("slice: negative index")),
        _ => Err(Reason("slice: index is not an int")),
    };
    let bytes = s.bytes();
    let start = args.get(1).map(bound).transpose()?.unwrap_or(0);
    let end = args.get(2).map(bound).transpose()?.unwrap_or(bytes.len());
    if start > end || end > bytes.len() {
        return Err(Reason("slice: out of range"));
    }
    Ok(match s {
        super::value::Text::Borrowed(b) => Value::borrowed(&b[start..end]),
        super::value::Text::Built(b) => Value::built(Zeroizing::new(b[start..end].to_vec())),
    })
}

/// `fmt.Sprint` (spaces between operands when neither is a string) or `fmt.Sprintln`.
fn print<'a>(args: &[Value<'a>], line: bool, meter: &mut Meter<'_>) -> Result<Value<'a>> {
    let len: usize = args.iter().map(|a| value_len(a) + 1).sum::<usize>() + 1;
    meter.string(len)?;
    let mut out = Zeroizing::new(Vec::with_capacity(len));
    for (i, arg) in args.iter().enumerate() {
        let strings = matches!(arg, Value::Str(_))
            || matches!(args.get(i.wrapping_sub(1)), Some(Value::Str(_)));
        if i > 0 && (line || !strings) {
            out.push(b' ');
        }
        write_value(&mut out, arg);
    }
    if line {
        out.push(b'\n');
    }
    Ok(Value::built(out))
}

/// Go's comparisons: integers with integers, floats with floats, strings, and (for equality)
/// booleans and nil.
fn compare(a: &Value<'_>, b: &Value<'_>, equality: bool) -> Result<Ordering> {
    let incomparable = Err(Reason("incompatible types for comparison"));
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(x.cmp(y)),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y).map_or(incomparable, Ok),
        (Value::Str(x), Value::Str(y)) => Ok(x.bytes().cmp(y.bytes())),
        (Value::Bool(x), Value::Bool(y)) if equality => Ok(x.cmp(y)),
        (Value::Nil, Value::Nil) if equality => Ok(Ordering::Equal),
        (Value::Nil, _) | (_, Value::Nil) if equality => Ok(Ordering::Less),
        _ => incomparable,
    }
}

/// Sprig's `empty`: Go's zero values.
fn empty(value: &Value<'_>) -> bool {
    !value.truth()
}

fn replace<'a>(old: &[u8], new: &[u8], s: &[u8], meter: &mut Meter<'_>) -> Result<Value<'a>> {
    let matches = if old.is_empty() {
        // Go inserts `new` around every character.
        String::from_utf8_lossy(s).chars().count() + 1
    } else {
        let mut n = 0;
        let mut i = 0;
        while let Some(p) = find(&s[i..], old) {
            n += 1;
            i += p + old.len();
        }
        n
    };
    meter.string(s.len().saturating_add(matches.saturating_mul(new.len())))?;
    let mut out = Zeroizing::new(Vec::with_capacity(s.len() + matches * new.len()));
    if old.is_empty() {
        out.extend_from_slice(new);
        for chunk in s.utf8_chunks() {
            for c in chunk.valid().chars() {
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                out.extend_from_slice(new);
            }
            for b in chunk.invalid() {
                out.push(*b);
                out.extend_from_slice(new);
            }
        }
    } else {
        let mut i = 0;
        while let Some(p) = find(&s[i..], old) {
            out.extend_from_slice(&s[i..i + p]);
            out.extend_from_slice(new);
            i += p + old.len();
        }
        out.extend_from_slice(&s[i..]);
    }
    Ok(Value::built(out))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// Sprig's `quote`/`squote`: each non-nil argument quoted (`%q`, or in single quotes), joined by
/// spaces.
fn quote<'a>(args: &[Value<'_>], q: u8, meter: &mut Meter<'_>) -> Result<Value<'a>> {
    let len: usize = args.iter().map(|a| value_len(a) * 4 + 3).sum();
    meter.string(len)?;
    let mut out = Zeroizing::new(Vec::with_capacity(len));
    for arg in args.iter().filter(|a| !matches!(a, Value::Nil)) {
        if !out.is_empty() {
            out.push(b' ');
        }
        let s = text(arg)?;
        if q == b'"' {
            format::quote(&mut out, &s, b'"');
        } else {
            out.push(q);
            out.extend_from_slice(&s);
            out.push(q);
        }
    }
    Ok(Value::built(out))
}

fn indent<'a>(
    n: usize,
    s: &[u8],
    leading_newline: bool,
    meter: &mut Meter<'_>,
) -> Result<Value<'a>> {
    let lines = s.iter().filter(|b| **b == b'\n').count() + 1;
    let len = lines
        .saturating_mul(n)
        .saturating_add(s.len())
        .saturating_add(1);
    meter.string(len)?;
    let mut out = Zeroizing::new(Vec::with_capacity(len));
    if leading_newline {
        out.push(b'\n');
    }
    for (i, line) in s.split(|b| *b == b'\n').enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        out.extend(std::iter::repeat_n(b' ', n));
        out.extend_from_slice(line);
    }
    Ok(Value::built(out))
}

/// `html`, `js`, `urlquery`: the arguments printed as `print` does (a lone string as is), then
/// escaped; `growth` bounds the bytes one input byte becomes.
fn escape<'a>(
    args: &[Value<'_>],
    meter: &mut Meter<'_>,
    growth: usize,
    f: fn(&mut Vec<u8>, &[u8]),
) -> Result<Value<'a>> {
    let input = match args {
        [Value::Str(s)] => Zeroizing::new(s.bytes().to_vec()),
        _ => match print(args, false, meter)? {
            Value::Str(s) => Zeroizing::new(s.bytes().to_vec()),
            _ => Zeroizing::new(Vec::new()),
        },
    };
    meter.string(input.len().saturating_mul(growth))?;
    let mut out = Zeroizing::new(Vec::with_capacity(input.len() * growth));
    f(&mut out, &input);
    Ok(Value::built(out))
}

/// Go's `HTMLEscapeString`.
fn html(out: &mut Vec<u8>, input: &[u8]) {
    for &b in input {
        match b {
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'&' => out.extend_from_slice(b"&amp;"),
            b'\'' => out.extend_from_slice(b"&#39;"),
            b'"' => out.extend_from_slice(b"&#34;"),
            0 => out.extend_from_slice("\u{fffd}".as_bytes()),
            _ => out.push(b),
        }
    }
}

/// Go's `JSEscapeString` for ASCII; other characters pass through.
fn js(out: &mut Vec<u8>, input: &[u8]) {
    for &b in input {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\'' => out.extend_from_slice(b"\\'"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'<' => out.extend_from_slice(b"\\u003C"),
            b'>' => out.extend_from_slice(b"\\u003E"),
            b'&' => out.extend_from_slice(b"\\u0026"),
            b'=' => out.extend_from_slice(b"\\u003D"),
            0..0x20 => out.extend_from_slice(format!("\\u{b:04X}").as_bytes()),
            _ => out.push(b),
        }
    }
}

/// Go's `url.QueryEscape`.
fn urlquery(out: &mut Vec<u8>, input: &[u8]) {
    for &b in input {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b),
            b' ' => out.push(b'+'),
            _ => out.extend_from_slice(format!("%{b:02X}").as_bytes()),
        }
    }
}
