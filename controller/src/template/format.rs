//! `printf`'s format strings and Go's quoting, with widths and precisions bounded.

use zeroize::Zeroizing;

use super::budget::{MAX_FORMAT_WIDTH, Reason};
use super::value::{Value, append_wiped, go_exponent, go_float, value_len, write_value};

/// One part of a format string.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Piece<'f> {
    Literal(&'f [u8]),
    Verb(Spec),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Spec {
    minus: bool,
    plus: bool,
    space: bool,
    zero: bool,
    sharp: bool,
    width: Option<Count>,
    precision: Option<Count>,
    verb: u8,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Count {
    Fixed(usize),
    /// `*`: taken from the arguments.
    Star,
}

/// The verbs implemented (Go has more; these are the ones templates use).
const VERBS: &[u8] = b"vsqdxXctfeEgob%";

/// Splits a format string. The reasons describe the format, which the caller shows only when
/// the format is a literal in the template.
pub(crate) fn parse(format: &[u8]) -> Result<Vec<Piece<'_>>, &'static str> {
    let mut pieces = Vec::new();
    let mut i = 0;
    while i < format.len() {
        let Some(offset) = format[i..].iter().position(|b| *b == b'%') else {
            pieces.push(Piece::Literal(&format[i..]));
            break;
        };
        if offset > 0 {
            pieces.push(Piece::Literal(&format[i..i + offset]));
        }
        i += offset + 1;
        let mut spec = Spec::default();
        while let Some(&flag) = format.get(i) {
            match flag {
                b'-' => spec.minus = true,
                b'+' => spec.plus = true,
                b' ' => spec.space = true,
                b'0' => spec.zero = true,
                b'#' => spec.sharp = true,
                _ => break,
            }
            i += 1;
        }
        spec.width = count(format, &mut i)?;
        if format.get(i) == Some(&b'.') {
            i += 1;
            spec.precision = Some(count(format, &mut i)?.unwrap_or(Count::Fixed(0)));
        }
        let verb = *format.get(i).ok_or("the format ends inside a verb")?;
        if !VERBS.contains(&verb) {
            return Err(
                "unsupported printf verb (supported: %v %s %q %d %x %X %c %t %f %e %E %g %o %b %%)",
            );
        }
        i += 1;
        spec.verb = verb;
        if verb == b'%' {
            pieces.push(Piece::Literal(b"%"));
        } else {
            pieces.push(Piece::Verb(spec));
        }
    }
    Ok(pieces)
}

fn count(format: &[u8], i: &mut usize) -> Result<Option<Count>, &'static str> {
    if format.get(*i) == Some(&b'*') {
        *i += 1;
        return Ok(Some(Count::Star));
    }
    let start = *i;
    let mut n: usize = 0;
    while let Some(d) = format.get(*i).filter(|d| d.is_ascii_digit()) {
        n = n.saturating_mul(10).saturating_add(usize::from(d - b'0'));
        if n > MAX_FORMAT_WIDTH {
            return Err("printf width or precision too large");
        }
        *i += 1;
    }
    Ok((*i > start).then_some(Count::Fixed(n)))
}

/// How many arguments the format takes.
pub(crate) fn arguments(pieces: &[Piece<'_>]) -> usize {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Literal(_) => 0,
            Piece::Verb(spec) => {
                1 + usize::from(spec.width == Some(Count::Star))
                    + usize::from(spec.precision == Some(Count::Star))
            }
        })
        .sum()
}

/// Formats `args` as Go's `fmt.Sprintf` would, refusing output past `max` bytes.
pub(crate) fn sprintf(
    pieces: &[Piece<'_>],
    args: &[Value<'_>],
    max: usize,
) -> Result<Zeroizing<Vec<u8>>, Reason> {
    if arguments(pieces) != args.len() {
        return Err(Reason("printf: wrong number of arguments"));
    }
    let mut next = args.iter();
    let take_count = |c: Option<Count>, next: &mut std::slice::Iter<'_, Value<'_>>| match c {
        None => Ok(None),
        Some(Count::Fixed(n)) => Ok(Some(n)),
        Some(Count::Star) => match next.next() {
            Some(Value::Int(n)) => usize::try_from(*n)
                .ok()
                .filter(|n| *n <= MAX_FORMAT_WIDTH)
                .map(Some)
                .ok_or(Reason("printf: * width out of range")),
            _ => Err(Reason("printf: * width is not an int")),
        },
    };
    let mut out = Zeroizing::new(Vec::new());
    for piece in pieces {
        match piece {
            Piece::Literal(text) => {
                if out.len() + text.len() > max {
                    return Err(Reason("printf: output too long"));
                }
                append_wiped(&mut out, text);
            }
            Piece::Verb(spec) => {
                let width = take_count(spec.width, &mut next)?;
                let precision = take_count(spec.precision, &mut next)?;
                let arg = next.next().ok_or(Reason("printf: missing argument"))?;
                // Every verb's text is at most 4 bytes per byte of its argument (`%q` of
                // control bytes), plus the precision, plus a number's digits.
                let bound = value_len(arg)
                    .saturating_mul(4)
                    .saturating_add(precision.unwrap_or(0))
                    .saturating_add(400)
                    .max(width.unwrap_or(0));
                if out.len().saturating_add(bound) > max {
                    return Err(Reason("printf: output too long"));
                }
                let mut piece = Zeroizing::new(Vec::new());
                verb(&mut piece, spec, width, precision, arg)?;
                append_wiped(&mut out, &piece);
            }
        }
    }
    Ok(out)
}

fn verb(
    out: &mut Vec<u8>,
    spec: &Spec,
    width: Option<usize>,
    precision: Option<usize>,
    arg: &Value<'_>,
) -> Result<(), Reason> {
    let mut body = Zeroizing::new(Vec::new());
    let mut numeric = false;
    match (spec.verb, arg) {
        (b'v', Value::Int(_) | Value::Float(_)) | (b'd', Value::Int(_)) => {
            numeric = true;
            match arg {
                Value::Int(n) => integer(&mut body, spec, precision, *n, 10),
                _ => write_value(&mut body, arg),
            }
        }
        (b'v', _) => write_value(&mut body, arg),
        (b's', Value::Str(s)) => {
            let text = s.bytes();
            match precision {
                Some(p) => body.extend_from_slice(first_chars(text, p)),
                None => body.extend_from_slice(text),
            }
        }
        (b's', Value::Int(_) | Value::Float(_) | Value::Bool(_) | Value::Nil) => {
            write_value(&mut body, arg)
        }
        (b'q', Value::Str(s)) => {
            body.reserve(s.bytes().len() * 4 + 2);
            quote(&mut body, s.bytes(), b'"');
        }
        (b'q' | b'c', Value::Int(n)) => {
            let c = u32::try_from(*n)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{fffd}');
            let mut buf = [0; 4];
            if spec.verb == b'q' {
                quote(&mut body, c.encode_utf8(&mut buf).as_bytes(), b'\'');
            } else {
                body.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
        (b'x' | b'X', Value::Str(s)) => {
            let digits: &[u8; 16] = if spec.verb == b'x' {
                b"0123456789abcdef"
            } else {
                b"0123456789ABCDEF"
            };
            let bytes = match precision {
                Some(p) => &s.bytes()[..p.min(s.bytes().len())],
                None => s.bytes(),
            };
            body.reserve(bytes.len() * 2);
            for b in bytes {
                body.push(digits[usize::from(b >> 4)]);
                body.push(digits[usize::from(b & 15)]);
            }
        }
        (b'x' | b'X' | b'o' | b'b', Value::Int(n)) => {
            numeric = true;
            let radix = match spec.verb {
                b'o' => 8,
                b'b' => 2,
                _ => 16,
            };
            integer(&mut body, spec, precision, *n, radix);
        }
        (b't', Value::Bool(b)) => write_value(&mut body, &Value::Bool(*b)),
        (b'f' | b'e' | b'E' | b'g', Value::Float(f)) => {
            numeric = true;
            let p = precision.unwrap_or(6);
            let text = match spec.verb {
                b'f' => format!("{f:.p$}"),
                b'g' if precision.is_none() => go_float(*f),
                b'g' => format!("{f}"),
                _ => {
                    let e = format!("{f:.p$e}");
                    let (m, x) = e.split_once('e').unwrap_or((e.as_str(), "0"));
                    let text = go_exponent(m, x.parse().unwrap_or(0));
                    if spec.verb == b'E' {
                        text.to_uppercase()
                    } else {
                        text
                    }
                }
            };
            if spec.plus && *f >= 0.0 {
                body.push(b'+');
            } else if spec.space && *f >= 0.0 {
                body.push(b' ');
            }
            body.extend_from_slice(text.as_bytes());
        }
        _ => return Err(Reason("printf: verb does not apply to the argument's type")),
    }
    pad(out, &body, spec, width, numeric);
    Ok(())
}

fn integer(body: &mut Vec<u8>, spec: &Spec, precision: Option<usize>, n: i64, radix: u32) {
    let magnitude = n.unsigned_abs();
    let mut digits = match radix {
        16 => format!("{magnitude:x}"),
        8 => format!("{magnitude:o}"),
        2 => format!("{magnitude:b}"),
        _ => magnitude.to_string(),
    };
    if spec.verb == b'X' {
        digits = digits.to_uppercase();
    }
    if n < 0 {
        body.push(b'-');
    } else if spec.plus {
        body.push(b'+');
    } else if spec.space {
        body.push(b' ');
    }
    if spec.sharp {
        match spec.verb {
            b'x' => body.extend_from_slice(b"0x"),
            b'X' => body.extend_from_slice(b"0X"),
            b'o' => body.push(b'0'),
            b'b' => body.extend_from_slice(b"0b"),
            _ => {}
        }
    }
    for _ in digits.len()..precision.unwrap_or(0) {
        body.push(b'0');
    }
    body.extend_from_slice(digits.as_bytes());
}

/// Pads to `width` characters: spaces on the left (or right with `-`), zeros after the sign
/// for numbers with `0`.
fn pad(out: &mut Vec<u8>, body: &[u8], spec: &Spec, width: Option<usize>, numeric: bool) {
    let chars = char_count(body);
    let fill = width.unwrap_or(0).saturating_sub(chars);
    // One allocation: growing would leave unwiped copies.
    out.reserve(body.len() + fill);
    if spec.minus {
        out.extend_from_slice(body);
        out.extend(std::iter::repeat_n(b' ', fill));
    } else if spec.zero && numeric {
        let sign = usize::from(matches!(body.first(), Some(b'-' | b'+' | b' ')));
        out.extend_from_slice(&body[..sign]);
        out.extend(std::iter::repeat_n(b'0', fill));
        out.extend_from_slice(&body[sign..]);
    } else {
        out.extend(std::iter::repeat_n(b' ', fill));
        out.extend_from_slice(body);
    }
}

/// Characters as Go counts runes: each invalid byte is one.
fn char_count(bytes: &[u8]) -> usize {
    bytes
        .utf8_chunks()
        .map(|c| c.valid().chars().count() + c.invalid().len())
        .sum()
}

/// The first `n` characters (runes) of `bytes`.
fn first_chars(bytes: &[u8], n: usize) -> &[u8] {
    let mut end = 0;
    let mut left = n;
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if left == 0 {
                return &bytes[..end];
            }
            left -= 1;
            end += c.len_utf8();
        }
        for _ in chunk.invalid() {
            if left == 0 {
                return &bytes[..end];
            }
            left -= 1;
            end += 1;
        }
    }
    &bytes[..end]
}

/// Go's `strconv.Quote` (or `QuoteRune` with `'`): escapes, `\xNN` for invalid bytes.
pub(crate) fn quote(out: &mut Vec<u8>, bytes: &[u8], q: u8) {
    out.push(q);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\x07' => out.extend_from_slice(b"\\a"),
                '\x08' => out.extend_from_slice(b"\\b"),
                '\x0c' => out.extend_from_slice(b"\\f"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                '\x0b' => out.extend_from_slice(b"\\v"),
                '\\' => out.extend_from_slice(b"\\\\"),
                _ if c as u32 == u32::from(q) => {
                    out.push(b'\\');
                    out.push(q);
                }
                _ if c == ' ' || !(c.is_control() || c.is_whitespace()) => {
                    out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                }
                _ if (c as u32) < 0x80 => {
                    out.extend_from_slice(format!("\\x{:02x}", c as u32).as_bytes())
                }
                _ if (c as u32) < 0x10000 => {
                    out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
                }
                _ => out.extend_from_slice(format!("\\U{:08x}", c as u32).as_bytes()),
            }
        }
        for b in chunk.invalid() {
            out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
        }
    }
    out.push(q);
}
