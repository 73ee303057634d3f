//! The values a template computes with: Go's basic kinds, strings as bytes, and the value map.

use std::collections::BTreeMap;
use std::rc::Rc;

use zeroize::Zeroizing;

/// The decrypted values, keyed as in the Secret.
pub(crate) type Data = BTreeMap<String, Zeroizing<Vec<u8>>>;

/// A value while rendering. Strings borrow from the values or the template where they can;
/// built ones are wiped on drop. `Debug` never shows a string's bytes.
#[derive(Clone)]
pub(crate) enum Value<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Text<'a>),
    /// The value map (what `.` is at the top of the template).
    Data(&'a Data),
}

/// A Go string: bytes, borrowed or built.
#[derive(Clone)]
pub(crate) enum Text<'a> {
    Borrowed(&'a [u8]),
    Built(Rc<Zeroizing<Vec<u8>>>),
}

impl Text<'_> {
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Text::Borrowed(b) => b,
            Text::Built(b) => b,
        }
    }
}

impl std::fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

impl<'a> Value<'a> {
    pub(crate) fn built(bytes: Zeroizing<Vec<u8>>) -> Self {
        Value::Str(Text::Built(Rc::new(bytes)))
    }

    pub(crate) fn borrowed(bytes: &'a [u8]) -> Self {
        Value::Str(Text::Borrowed(bytes))
    }

    /// The Go kind, for reasons in tests (never a value).
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::Data(_) => "map",
        }
    }

    /// Go's truth: false, 0, nil and empty strings and maps are false.
    pub(crate) fn truth(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.bytes().is_empty(),
            Value::Data(d) => !d.is_empty(),
        }
    }

    /// The string's bytes, if it is one.
    pub(crate) fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Str(s) => Some(s.bytes()),
            _ => None,
        }
    }

    /// How many bytes this value holds, for the budget.
    pub(crate) fn size(&self) -> usize {
        match self {
            Value::Str(s) => s.bytes().len(),
            _ => 8,
        }
    }
}

/// Appends to a buffer that holds values without leaving copies behind: when it must grow, the
/// bytes move to a new buffer (doubling) and the old one is wiped, where `Vec`'s own growth
/// would free it unwiped.
pub(crate) fn append_wiped(buffer: &mut Zeroizing<Vec<u8>>, bytes: &[u8]) {
    let needed = buffer.len().saturating_add(bytes.len());
    if needed > buffer.capacity() {
        let mut bigger = Zeroizing::new(Vec::with_capacity(needed.max(buffer.capacity() * 2)));
        bigger.extend_from_slice(buffer);
        *buffer = bigger;
    }
    buffer.extend_from_slice(bytes);
}

/// Appends Go's `%v` form of a value (`fmt.Sprint` of one operand).
pub(crate) fn write_value(out: &mut Vec<u8>, value: &Value<'_>) {
    match value {
        Value::Nil => out.extend_from_slice(b"<nil>"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::Float(f) => out.extend_from_slice(go_float(*f).as_bytes()),
        Value::Str(s) => out.extend_from_slice(s.bytes()),
        Value::Data(d) => {
            out.extend_from_slice(b"map[");
            for (i, (k, v)) in d.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                out.extend_from_slice(k.as_bytes());
                out.push(b':');
                out.extend_from_slice(v);
            }
            out.push(b']');
        }
    }
}

/// The bytes `write_value` appends, counted without building them.
pub(crate) fn value_len(value: &Value<'_>) -> usize {
    match value {
        Value::Str(s) => s.bytes().len(),
        Value::Data(d) => 5 + d.iter().map(|(k, v)| k.len() + v.len() + 2).sum::<usize>(),
        _ => 32,
    }
}

/// Go's `%v` for a float64: the shortest representation, in exponent form when the exponent is
/// below -4 or at least 6 (`strconv.FormatFloat(f, 'g', -1, 64)`).
pub(crate) fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    let exponent_form = format!("{f:e}");
    let (mantissa, exponent) = exponent_form
        .split_once('e')
        .unwrap_or((exponent_form.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if f != 0.0 && !(-4..6).contains(&exponent) {
        go_exponent(mantissa, exponent)
    } else {
        format!("{f}")
    }
}

/// Go's exponent notation from Rust's: `1.5e21` becomes `1.5e+21`, `1e-7` becomes `1e-07`.
pub(crate) fn go_exponent(mantissa: &str, exponent: i32) -> String {
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
}
