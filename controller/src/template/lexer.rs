//! Template text into tokens: text between actions, and the words inside `{{ }}`.
//!
//! One pass over the text, no backtracking: linear in its length.

use super::message::{position, shown};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    /// Text outside actions, trim markers applied.
    Text(String),
    /// `{{` (a comment produces no tokens).
    Open,
    /// `}}`
    Close,
    /// A function name or a keyword.
    Ident(String),
    /// `.name`
    Field(String),
    /// `.` alone.
    Dot,
    /// `$` or `$name`, with the `$`.
    Variable(String),
    Str(Vec<u8>),
    /// An integer or character constant.
    Int(i64),
    Float(f64),
    LParen,
    RParen,
    Pipe,
    Declare,
    Assign,
    Comma,
    Eof,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) kind: Kind,
    /// Byte offset in the template, for errors.
    pub(crate) pos: usize,
    /// Whether space separates it from the previous token (`.a.b` is a chain, `.a .b` two
    /// operands).
    pub(crate) spaced: bool,
}

/// Whitespace as Go's trim markers and actions see it.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_word(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

pub(crate) fn lex(text: &str) -> Result<Vec<Token>, String> {
    Lexer {
        text,
        bytes: text.as_bytes(),
        at: 0,
        tokens: Vec::new(),
        trim_next_text: false,
    }
    .run()
}

struct Lexer<'t> {
    text: &'t str,
    bytes: &'t [u8],
    at: usize,
    tokens: Vec<Token>,
    /// The previous action ended with `-}}`.
    trim_next_text: bool,
}

impl Lexer<'_> {
    fn error(&self, at: usize, message: &str) -> String {
        format!("{}: {message}", position(self.text, at))
    }

    fn push(&mut self, kind: Kind, pos: usize, spaced: bool) {
        self.tokens.push(Token { kind, pos, spaced });
    }

    fn run(mut self) -> Result<Vec<Token>, String> {
        loop {
            let rest = &self.text[self.at..];
            let (text_end, found) = match rest.find("{{") {
                Some(i) => (self.at + i, true),
                None => (self.text.len(), false),
            };
            let left_trim = found
                && self.bytes.get(text_end + 2) == Some(&b'-')
                && self.bytes.get(text_end + 3).is_some_and(|c| is_space(*c));
            let mut text = &self.text[self.at..text_end];
            if self.trim_next_text {
                text = text.trim_start_matches(|c: char| c.is_ascii() && is_space(c as u8));
            }
            if left_trim {
                text = text.trim_end_matches(|c: char| c.is_ascii() && is_space(c as u8));
            }
            if !text.is_empty() {
                self.push(Kind::Text(text.to_owned()), self.at, false);
            }
            self.trim_next_text = false;
            if !found {
                self.push(Kind::Eof, self.text.len(), false);
                return Ok(self.tokens);
            }
            self.at = text_end + if left_trim { 3 } else { 2 };
            self.action(text_end)?;
        }
    }

    /// Whether the action ends here: `}}`, or ` -}}` (which also trims the next text).
    fn close_at(&self, at: usize) -> Option<(usize, bool)> {
        let rest = &self.bytes[at..];
        if rest.starts_with(b"}}") {
            Some((2, false))
        } else if rest.len() >= 4 && is_space(rest[0]) && rest[1..].starts_with(b"-}}") {
            Some((4, true))
        } else {
            None
        }
    }

    /// Skips a comment that fills the whole action opened at `open` (`{{/* … */}}`, trim
    /// markers allowed); whether there was one.
    fn comment(&mut self, open: usize) -> Result<bool, String> {
        let after_space = {
            let mut i = self.at;
            while i < self.bytes.len() && is_space(self.bytes[i]) {
                i += 1;
            }
            i
        };
        if self.bytes[after_space..].starts_with(b"/*") {
            let body = after_space + 2;
            let end = self.text[body..]
                .find("*/")
                .map(|i| body + i + 2)
                .ok_or_else(|| self.error(open, "unclosed comment"))?;
            let mut close = end;
            while close < self.bytes.len()
                && is_space(self.bytes[close])
                && self.close_at(close).is_none()
            {
                close += 1;
            }
            let (len, trim) = self
                .close_at(close)
                .ok_or_else(|| self.error(end, "comment ends before closing delimiter"))?;
            self.at = close + len;
            self.trim_next_text = trim;
            return Ok(true);
        }
        Ok(false)
    }

    /// Lexes the action opened at `open`: a comment, or tokens up to the closing delimiter.
    fn action(&mut self, open: usize) -> Result<(), String> {
        if self.comment(open)? {
            return Ok(());
        }
        self.push(Kind::Open, open, false);
        let mut spaced = true;
        loop {
            if let Some((len, trim)) = self.close_at(self.at) {
                self.push(Kind::Close, self.at, spaced);
                self.at += len;
                self.trim_next_text = trim;
                return Ok(());
            }
            let Some(&c) = self.bytes.get(self.at) else {
                return Err(self.error(open, "unclosed action"));
            };
            let start = self.at;
            if is_space(c) {
                self.at += 1;
                spaced = true;
                continue;
            }
            let kind = match c {
                b'(' => self.single(Kind::LParen),
                b')' => self.single(Kind::RParen),
                b'|' => self.single(Kind::Pipe),
                b',' => self.single(Kind::Comma),
                b'=' => self.single(Kind::Assign),
                b':' if self.bytes.get(self.at + 1) == Some(&b'=') => {
                    self.at += 2;
                    Kind::Declare
                }
                b'"' => Kind::Str(self.quoted()?),
                b'`' => Kind::Str(self.raw()?),
                b'\'' => Kind::Int(self.char_constant()?),
                b'$' => {
                    self.at += 1;
                    Kind::Variable(format!("${}", self.word()))
                }
                b'.' if !self.bytes.get(self.at + 1).is_some_and(u8::is_ascii_digit) => {
                    self.at += 1;
                    let name = self.word();
                    if name.is_empty() {
                        Kind::Dot
                    } else {
                        Kind::Field(name)
                    }
                }
                b'0'..=b'9' | b'+' | b'-' | b'.' => self.number()?,
                _ => {
                    let name = self.word();
                    if name.is_empty() {
                        let shown = self.text[self.at..].chars().next().unwrap_or(' ');
                        return Err(self.error(self.at, &format!("unexpected {shown:?} in action")));
                    }
                    Kind::Ident(name)
                }
            };
            self.push(kind, start, spaced);
            spaced = false;
        }
    }

    fn single(&mut self, kind: Kind) -> Kind {
        self.at += 1;
        kind
    }

    fn word(&mut self) -> String {
        let rest = &self.text[self.at..];
        let len = rest.find(|c: char| !is_word(c)).unwrap_or(rest.len());
        self.at += len;
        rest[..len].to_owned()
    }

    fn number(&mut self) -> Result<Kind, String> {
        let start = self.at;
        let rest = &self.text[start..];
        let mut len = 0;
        let mut prev = ' ';
        for c in rest.chars() {
            let sign_ok =
                (c == '+' || c == '-') && (len == 0 || matches!(prev, 'e' | 'E' | 'p' | 'P'));
            if !(c.is_ascii_alphanumeric() || c == '.' || c == '_' || sign_ok) {
                break;
            }
            // A hex literal's `e` is a digit, not an exponent; `1e+5` needs the sign.
            prev = c;
            len += c.len_utf8();
        }
        self.at += len;
        let literal = &rest[..len];
        parse_number(literal)
            .ok_or_else(|| self.error(start, &format!("bad number syntax: {}", shown(literal))))
    }

    /// An interpreted string with Go's escapes.
    fn quoted(&mut self) -> Result<Vec<u8>, String> {
        let start = self.at;
        self.at += 1;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.bytes.get(self.at) else {
                return Err(self.error(start, "unterminated quoted string"));
            };
            match c {
                b'"' => {
                    self.at += 1;
                    return Ok(out);
                }
                b'\n' => return Err(self.error(start, "unterminated quoted string")),
                b'\\' => self.escape(b'"', &mut out, start)?,
                _ => {
                    out.push(c);
                    self.at += 1;
                }
            }
        }
    }

    fn raw(&mut self) -> Result<Vec<u8>, String> {
        let start = self.at;
        let body = start + 1;
        let end = self.text[body..]
            .find('`')
            .ok_or_else(|| self.error(start, "unterminated raw quoted string"))?;
        self.at = body + end + 1;
        // Go drops carriage returns from raw strings.
        Ok(self.text[body..body + end]
            .bytes()
            .filter(|b| *b != b'\r')
            .collect())
    }

    fn char_constant(&mut self) -> Result<i64, String> {
        let start = self.at;
        self.at += 1;
        let mut out = Vec::new();
        match self.bytes.get(self.at) {
            Some(b'\\') => self.escape(b'\'', &mut out, start)?,
            Some(b'\'') | Some(b'\n') | None => {
                return Err(self.error(start, "bad character constant"));
            }
            Some(_) => {
                let c = self.text[self.at..].chars().next().unwrap_or('\0');
                self.at += c.len_utf8();
                return self.close_char(start, c as i64);
            }
        }
        let value = match std::str::from_utf8(&out)
            .ok()
            .and_then(|s| s.chars().next())
        {
            Some(c) if out.len() == c.len_utf8() => c as i64,
            _ if out.len() == 1 => i64::from(out[0]),
            _ => return Err(self.error(start, "bad character constant")),
        };
        self.close_char(start, value)
    }

    fn close_char(&mut self, start: usize, value: i64) -> Result<i64, String> {
        if self.bytes.get(self.at) == Some(&b'\'') {
            self.at += 1;
            Ok(value)
        } else {
            Err(self.error(start, "unterminated character constant"))
        }
    }

    /// One escape sequence of a Go string or character literal (at the backslash).
    fn escape(&mut self, quote: u8, out: &mut Vec<u8>, start: usize) -> Result<(), String> {
        let bad = |l: &Self| l.error(start, "invalid escape sequence");
        let c = *self.bytes.get(self.at + 1).ok_or_else(|| bad(self))?;
        self.at += 2;
        let simple = match c {
            b'a' => Some(7),
            b'b' => Some(8),
            b'f' => Some(12),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(11),
            b'\\' => Some(b'\\'),
            _ if c == quote => Some(c),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            return Ok(());
        }
        let (digits, radix) = match c {
            b'x' => (2, 16),
            b'u' => (4, 16),
            b'U' => (8, 16),
            b'0'..=b'7' => {
                self.at -= 1;
                (3, 8)
            }
            _ => return Err(bad(self)),
        };
        let hex = self
            .text
            .get(self.at..self.at + digits)
            .ok_or_else(|| bad(self))?;
        let n = u32::from_str_radix(hex, radix).map_err(|_| bad(self))?;
        self.at += digits;
        if c == b'x' || radix == 8 {
            out.push(u8::try_from(n).map_err(|_| bad(self))?);
        } else {
            let ch = char::from_u32(n).ok_or_else(|| bad(self))?;
            out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
        }
        Ok(())
    }
}

/// A Go number literal: integers in any base with `_` separators, else a float.
fn parse_number(literal: &str) -> Option<Kind> {
    let (negative, unsigned) = match literal.as_bytes().first() {
        Some(b'-') => (true, &literal[1..]),
        Some(b'+') => (false, &literal[1..]),
        _ => (false, literal),
    };
    let digits = unsigned.replace('_', "");
    let lower = digits.to_ascii_lowercase();
    let int = if let Some(hex) = lower.strip_prefix("0x") {
        u64::from_str_radix(hex, 16).ok()
    } else if let Some(oct) = lower.strip_prefix("0o") {
        u64::from_str_radix(oct, 8).ok()
    } else if let Some(bin) = lower.strip_prefix("0b") {
        u64::from_str_radix(bin, 2).ok()
    } else if lower.len() > 1 && lower.starts_with('0') && lower.bytes().all(|b| b.is_ascii_digit())
    {
        u64::from_str_radix(&lower[1..], 8).ok()
    } else if !lower.is_empty() && lower.bytes().all(|b| b.is_ascii_digit()) {
        lower.parse().ok()
    } else {
        None
    };
    if let Some(n) = int {
        let n = i64::try_from(n).ok()?;
        return Some(Kind::Int(if negative { -n } else { n }));
    }
    if lower.starts_with("0x") || lower.contains("inf") || lower.contains("nan") {
        return None;
    }
    let f: f64 = lower.parse().ok()?;
    Some(Kind::Float(if negative { -f } else { f }))
}
