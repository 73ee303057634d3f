//! Bounded decoding of untrusted JSON and YAML into [`serde_json::Value`]: the one reader the
//! controller's HTTP API (`/v1/verify`, `/v1/rotate`) and the CLI's document reader share.
//!
//! Three bounds, each checked before the work it guards:
//!
//! - **Size**: the caller's `max_bytes`, checked before anything is read.
//! - **Depth**: [`MAX_DEPTH`] levels, checked by a linear pre-scan *before* the parser runs. The
//!   YAML parser (libyaml, through serde_norway) spends time proportional to the flow nesting
//!   depth on every token, so a deep document costs the square of its size: 200 KB of `{a: `
//!   took 12.8 s, 400 KB 51 s, before serde_norway's own recursion limit said no. The pre-scan
//!   follows libyaml's tokenizer (quoted, plain and block scalars, comments, flow and block
//!   collections) and over-counts rather than under-counts where it must guess.
//! - **Expansion**: YAML aliases replay their anchor's nodes. serde_norway stops at 100 times the
//!   document's events, which still let a 276 KB document of 50,000 aliases build 100 million
//!   nodes (36 s). The decoded value here may hold at most twice the input's bytes in nodes
//!   plus string bytes, plus [`ALIAS_ALLOWANCE`]; a document without aliases never comes near.
//!
//! Errors locate the problem (document, line, column) and never quote the input: a value in a
//! Secret manifest is a plaintext.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Deepest nesting accepted, counting every mapping and sequence from the document's root.
/// Kubernetes objects are shallow: a Pod template in a Deployment, the deepest common object,
/// is about 12 levels; a CRD's OpenAPI schema rarely passes 30. 64 leaves room for any real
/// manifest and keeps libyaml's per-token cost (proportional to flow depth) small.
pub const MAX_DEPTH: usize = 64;

/// Decoded units (nodes plus string bytes) allowed beyond twice the input's size, for YAML
/// aliases and merge keys (`<<: *defaults`) in hand-written files. Without aliases each node
/// takes at least one input byte and each string byte one input byte, so twice the input is
/// the most a document can decode to; 256 Ki more units (a few MiB of memory) is generous for
/// anchors and small enough that a billion-laughs document stops early.
pub const ALIAS_ALLOWANCE: usize = 256 * 1024;

/// The bounds of one decode.
#[derive(Debug, Clone, Copy)]
pub struct Limits<'a> {
    /// Largest input accepted, in bytes.
    pub max_bytes: usize,
    /// Deepest nesting accepted; see [`MAX_DEPTH`].
    pub max_depth: usize,
    /// When set and true, decoding stops with [`DecodeError::Cancelled`] at the next value.
    pub cancel: Option<&'a AtomicBool>,
}

impl Limits<'static> {
    /// `max_bytes` of input, [`MAX_DEPTH`] levels, no cancellation.
    pub const fn new(max_bytes: usize) -> Self {
        Limits {
            max_bytes,
            max_depth: MAX_DEPTH,
            cancel: None,
        }
    }
}

impl Limits<'_> {
    /// The same limits, stopping when `cancel` turns true.
    pub fn cancelled_by(self, cancel: &AtomicBool) -> Limits<'_> {
        Limits {
            max_bytes: self.max_bytes,
            max_depth: self.max_depth,
            cancel: Some(cancel),
        }
    }
}

/// The syntax of an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syntax {
    /// One or more JSON values (an input whose first character is `{` or `[`).
    Json,
    /// One or more YAML documents separated by `---`.
    Yaml,
}

impl Syntax {
    /// JSON when the first non-blank character (after a byte-order mark) is `{` or `[`.
    pub fn of(bytes: &[u8]) -> Syntax {
        let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{' | b'[') => Syntax::Json,
            _ => Syntax::Yaml,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Syntax::Json => "JSON",
            Syntax::Yaml => "YAML",
        }
    }
}

/// Why untrusted bytes were not decoded. Never holds any of the input's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// More bytes than `max_bytes`.
    TooLarge {
        /// The input's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// YAML that is not UTF-8.
    NotUtf8 {
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// Nested deeper than `max_depth`, found before parsing.
    TooDeep {
        /// The limit.
        limit: usize,
        /// 1-based line where the limit was passed (known to the pre-scan).
        line: Option<usize>,
    },
    /// The parser refused the text.
    Syntax {
        /// JSON or YAML.
        syntax: Syntax,
        /// 1-based index of the document.
        document: usize,
        /// 1-based line, when the parser knows it.
        line: Option<usize>,
        /// 1-based column, when the parser knows it.
        column: Option<usize>,
        /// The parser's message (it says where) with every quoted fragment of input replaced
        /// by `…`.
        problem: String,
    },
    /// Aliases expand to more than the expansion bound.
    TooLargeDecoded {
        /// 1-based index of the document.
        document: usize,
        /// The bound, in nodes plus string bytes.
        limit: usize,
    },
    /// More than one document where one was expected.
    SeveralDocuments,
    /// The cancel flag was set.
    Cancelled,
}

impl DecodeError {
    /// The 1-based index of the document the error is about, when it is about one.
    pub fn document(&self) -> Option<usize> {
        match self {
            DecodeError::Syntax { document, .. }
            | DecodeError::TooLargeDecoded { document, .. } => Some(*document),
            _ => None,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooLarge { size, limit } => write!(
                f,
                "the input is {size} bytes, more than the {limit} bytes accepted"
            ),
            DecodeError::NotUtf8 { offset } => {
                write!(
                    f,
                    "the input is not UTF-8 (invalid byte at offset {offset})"
                )
            }
            DecodeError::TooDeep { limit, line } => {
                write!(f, "document nested deeper than {limit} levels")?;
                if let Some(line) = line {
                    write!(f, " at line {line}")?;
                }
                f.write_str(" (Kubernetes objects are far shallower)")
            }
            DecodeError::Syntax {
                syntax, problem, ..
            } => write!(f, "invalid {}: {problem}", syntax.name()),
            DecodeError::TooLargeDecoded { limit, .. } => write!(
                f,
                "the document's aliases expand to more than {limit} nodes and string bytes"
            ),
            DecodeError::SeveralDocuments => f.write_str("expected one document, found several"),
            DecodeError::Cancelled => f.write_str("decoding was cancelled"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// The documents of an input, in order, with their 1-based index. Empty YAML documents (a
/// leading or trailing `---`) are left out.
#[derive(Debug)]
pub struct Documents {
    /// JSON or YAML.
    pub syntax: Syntax,
    /// The documents and their 1-based index in the input.
    pub documents: Vec<(usize, Value)>,
}

/// Decodes exactly one document (JSON, or YAML; an empty input is `null`).
pub fn decode_document(bytes: &[u8], limits: &Limits<'_>) -> Result<Value, DecodeError> {
    let mut decoded = decode_documents(bytes, limits)?;
    match decoded.documents.len() {
        0 => Ok(Value::Null),
        1 => Ok(decoded.documents.remove(0).1),
        _ => Err(DecodeError::SeveralDocuments),
    }
}

/// Decodes every document of a JSON stream (values one after another) or a multi-document YAML
/// input, within `limits`.
pub fn decode_documents(bytes: &[u8], limits: &Limits<'_>) -> Result<Documents, DecodeError> {
    if bytes.len() > limits.max_bytes {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| DecodeError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let syntax = Syntax::of(text.as_bytes());
    let depth = match syntax {
        Syntax::Json => json_depth(text.as_bytes(), limits.max_depth),
        Syntax::Yaml => yaml_depth(text.as_bytes(), limits.max_depth),
    };
    if let Err(line) = depth {
        return Err(DecodeError::TooDeep {
            limit: limits.max_depth,
            line: Some(line),
        });
    }
    let mut budget = Budget {
        units_left: bytes
            .len()
            .saturating_mul(2)
            .saturating_add(ALIAS_ALLOWANCE),
        limit: bytes
            .len()
            .saturating_mul(2)
            .saturating_add(ALIAS_ALLOWANCE),
        max_depth: limits.max_depth,
        cancel: limits.cancel,
        stopped: None,
    };
    let mut documents = Vec::new();
    match syntax {
        Syntax::Json => {
            let mut stream = serde_json::Deserializer::from_str(text);
            let mut index = 0;
            loop {
                // Skip whitespace; stop at the end.
                if stream.end().is_ok() {
                    break;
                }
                index += 1;
                let value = Bounded {
                    budget: &mut budget,
                    depth: 0,
                }
                .deserialize(&mut stream)
                .map_err(|e| {
                    budget.error(index).unwrap_or_else(|| DecodeError::Syntax {
                        syntax,
                        document: index,
                        line: Some(e.line()),
                        column: Some(e.column()),
                        problem: redact(&e.to_string()),
                    })
                })?;
                documents.push((index, value));
            }
        }
        Syntax::Yaml => {
            for (i, document) in serde_norway::Deserializer::from_str(text).enumerate() {
                let index = i + 1;
                let value = Bounded {
                    budget: &mut budget,
                    depth: 0,
                }
                .deserialize(document)
                .map_err(|e| {
                    budget.error(index).unwrap_or_else(|| {
                        let at = e.location();
                        DecodeError::Syntax {
                            syntax,
                            document: index,
                            line: at.as_ref().map(serde_norway::Location::line),
                            column: at.as_ref().map(serde_norway::Location::column),
                            problem: redact(&e.to_string()),
                        }
                    })
                })?;
                if !value.is_null() {
                    documents.push((index, value));
                }
            }
        }
    }
    Ok(Documents { syntax, documents })
}

// ---------------------------------------------------------------------------------------------
// Error messages

/// Replaces every `"…"` and `` `…` `` fragment (how serde quotes an unexpected value, e.g.
/// `invalid value: string "hunter2", expected an integer` for `!!int hunter2`) by `…`.
fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        if c != '"' && c != '`' {
            out.push(c);
            continue;
        }
        let close = c;
        out.push(close);
        out.push('…');
        let mut escaped = false;
        for inner in chars.by_ref() {
            if escaped {
                escaped = false;
            } else if inner == '\\' {
                escaped = true;
            } else if inner == close {
                break;
            }
        }
        out.push(close);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The value builder: serde_json's Value, with a node budget, a depth bound and cancellation.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Expansion,
    Depth,
    Cancelled,
}

struct Budget<'a> {
    units_left: usize,
    limit: usize,
    max_depth: usize,
    cancel: Option<&'a AtomicBool>,
    stopped: Option<Stop>,
}

impl Budget<'_> {
    /// Takes `units` for one node; says why not when the decode must stop.
    fn take<E: de::Error>(&mut self, units: usize) -> Result<(), E> {
        if self.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(self.stop(Stop::Cancelled));
        }
        match self.units_left.checked_sub(units) {
            Some(left) => {
                self.units_left = left;
                Ok(())
            }
            None => Err(self.stop(Stop::Expansion)),
        }
    }

    fn stop<E: de::Error>(&mut self, why: Stop) -> E {
        self.stopped = Some(why);
        E::custom("decoding stopped at a bound")
    }

    fn error(&self, document: usize) -> Option<DecodeError> {
        Some(match self.stopped? {
            Stop::Expansion => DecodeError::TooLargeDecoded {
                document,
                limit: self.limit,
            },
            // The pre-scan over-counts, so this is a safety net; it has no line to give.
            Stop::Depth => DecodeError::TooDeep {
                limit: self.max_depth,
                line: None,
            },
            Stop::Cancelled => DecodeError::Cancelled,
        })
    }
}

struct Bounded<'b, 'a> {
    budget: &'b mut Budget<'a>,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Bounded<'_, '_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Bounded<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.budget.take(1)?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.budget.take(1)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.budget.take(1)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.budget.take(1)?;
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.budget.take(1 + v.len())?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.budget.take(1 + v.len())?;
        Ok(Value::String(v))
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.budget.take(1)?;
        Ok(Value::Null)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.budget.take(1)?;
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_newtype_struct<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Value, A::Error> {
        let depth = self.enter::<A::Error>()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Bounded {
            budget: &mut *self.budget,
            depth,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Value, A::Error> {
        let depth = self.enter::<A::Error>()?;
        let mut object = Map::new();
        while let Some(key) = map.next_key_seed(Key {
            budget: &mut *self.budget,
        })? {
            let value = map.next_value_seed(Bounded {
                budget: &mut *self.budget,
                depth,
            })?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

impl Bounded<'_, '_> {
    /// Takes a node for a collection one level deeper; its depth.
    fn enter<E: de::Error>(&mut self) -> Result<usize, E> {
        let depth = self.depth + 1;
        if depth > self.budget.max_depth {
            return Err(self.budget.stop(Stop::Depth));
        }
        self.budget.take(1)?;
        Ok(depth)
    }
}

/// A mapping key: a string, as JSON requires (YAML's other scalars become their text).
struct Key<'b, 'a> {
    budget: &'b mut Budget<'a>,
}

impl<'de> DeserializeSeed<'de> for Key<'_, '_> {
    type Value = String;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_, '_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        self.budget.take(1 + v.len())?;
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        self.budget.take(1 + v.len())?;
        Ok(v)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        self.visit_string(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        self.visit_string(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        self.visit_string(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        self.visit_string(v.to_string())
    }

    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        self.visit_string("null".to_owned())
    }
}

// ---------------------------------------------------------------------------------------------
// The depth pre-scans. Both return the 1-based line where the depth passes `max`.

/// JSON: every `[`/`{` outside a string opens a level, every `]`/`}` closes one. Exact for
/// valid JSON, and linear.
fn json_depth(text: &[u8], max: usize) -> Result<(), usize> {
    let (mut depth, mut line) = (0usize, 1usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in text {
        if b == b'\n' {
            line += 1;
        }
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(line);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// YAML: flow levels (`[`, `{`) plus block levels (a mapping at its first key's column, a
/// sequence at its first `- `'s column), following libyaml's tokenizer closely enough that text it reads as
/// a scalar or comment is skipped and everything it may read as structure is counted. Where
/// the two could disagree (plain scalars continued on the next line, tags) this counts more,
/// never less. Linear: each byte is looked at a bounded number of times.
fn yaml_depth(text: &[u8], max: usize) -> Result<(), usize> {
    YamlScan {
        text,
        max,
        pos: 0,
        line: 1,
        line_start: 0,
        flow: 0,
        blocks: Vec::new(),
        parent: -1,
        node_col: 0,
        plain: false,
        block_scalar: None,
    }
    .run()
}

struct YamlScan<'t> {
    text: &'t [u8],
    max: usize,
    pos: usize,
    line: usize,
    line_start: usize,
    /// Open flow collections.
    flow: usize,
    /// Columns of the open block collections, increasing.
    blocks: Vec<usize>,
    /// Indentation of the collection holding the node being scanned (libyaml's `indent`); -1
    /// at the top level.
    parent: isize,
    /// Column of the first token of the current node on this line (a key's column).
    node_col: usize,
    /// Inside a plain scalar that may continue on the next line.
    plain: bool,
    /// Inside a block scalar (`|`, `>`): the indentation its lines must exceed, and the
    /// content indentation once known.
    block_scalar: Option<(isize, Option<usize>)>,
}

fn is_blank_or_end(b: Option<u8>) -> bool {
    matches!(b, None | Some(b' ' | b'\t' | b'\r' | b'\n'))
}

fn is_flow_indicator(b: u8) -> bool {
    matches!(b, b',' | b'[' | b']' | b'{' | b'}')
}

impl YamlScan<'_> {
    fn at(&self, offset: usize) -> Option<u8> {
        self.text.get(self.pos + offset).copied()
    }

    fn column(&self) -> usize {
        self.pos - self.line_start
    }

    fn depth_check(&self) -> Result<(), usize> {
        if self.blocks.len() + self.flow > self.max {
            Err(self.line)
        } else {
            Ok(())
        }
    }

    fn open_flow(&mut self) -> Result<(), usize> {
        self.flow += 1;
        self.depth_check()
    }

    fn push_block(&mut self, column: usize) -> Result<(), usize> {
        if self.blocks.last().is_none_or(|&top| top < column) {
            self.blocks.push(column);
        }
        self.depth_check()
    }

    /// Moves past the end of the current line.
    fn next_line(&mut self) {
        while let Some(b) = self.at(0) {
            self.pos += 1;
            if b == b'\n' {
                break;
            }
        }
        self.line += 1;
        self.line_start = self.pos;
    }

    fn run(mut self) -> Result<(), usize> {
        while self.pos < self.text.len() {
            self.start_line()?;
        }
        Ok(())
    }

    /// Handles one line from its first byte, leaving `pos` at the start of the next.
    fn start_line(&mut self) -> Result<(), usize> {
        let indent = self.text[self.pos..]
            .iter()
            .take_while(|&&b| b == b' ')
            .count();
        let first = self.text.get(self.pos + indent).copied();
        let blank = matches!(first, None | Some(b'\n' | b'\r' | b'#'));

        if let Some((parent, content)) = self.block_scalar {
            let blank_line = self.text[self.pos..]
                .iter()
                .take_while(|&&b| b != b'\n')
                .all(|&b| b == b' ' || b == b'\r');
            let needed = content.unwrap_or_else(|| usize::try_from(parent + 1).unwrap_or(0).max(1));
            if blank_line || indent >= needed {
                if !blank_line && content.is_none() {
                    self.block_scalar = Some((parent, Some(indent)));
                }
                self.next_line();
                return Ok(());
            }
            self.block_scalar = None;
        }

        // Document markers end everything open.
        if self.column() == 0
            && (self.text[self.pos..].starts_with(b"---")
                || self.text[self.pos..].starts_with(b"..."))
            && is_blank_or_end(self.at(3))
        {
            self.blocks.clear();
            self.flow = 0;
            self.plain = false;
            self.parent = -1;
            self.pos += 3;
            return self.tokens();
        }
        if indent == 0 && first == Some(b'%') && self.flow == 0 {
            self.next_line();
            return Ok(());
        }
        if blank {
            // A comment ends a plain scalar; an empty line does not.
            if first == Some(b'#') {
                self.plain = false;
            }
            self.next_line();
            return Ok(());
        }

        self.pos += indent;
        if self.flow == 0 {
            // libyaml continues a plain scalar on a line indented past its collection.
            if self.plain && isize::try_from(indent).unwrap_or(isize::MAX) > self.parent {
                return if self.plain_scalar() {
                    self.tokens()
                } else {
                    Ok(())
                };
            }
            self.plain = false;
            while self.blocks.last().is_some_and(|&top| top > indent) {
                self.blocks.pop();
            }
            self.parent = self
                .blocks
                .iter()
                .rev()
                .find(|&&c| c < indent)
                .map_or(-1, |&c| isize::try_from(c).unwrap_or(isize::MAX));
            self.node_col = indent;
        } else if self.plain && !self.plain_scalar() {
            return Ok(());
        }
        self.tokens()
    }

    /// Tokens until the end of the line (or of a scalar that ends it).
    fn tokens(&mut self) -> Result<(), usize> {
        loop {
            while matches!(self.at(0), Some(b' ' | b'\t' | b'\r')) {
                self.pos += 1;
            }
            let Some(b) = self.at(0) else {
                return Ok(());
            };
            match b {
                b'\n' => {
                    self.next_line();
                    return Ok(());
                }
                b'#' => {
                    self.next_line();
                    return Ok(());
                }
                b'[' | b'{' => {
                    self.pos += 1;
                    self.open_flow()?;
                }
                b']' | b'}' => {
                    self.pos += 1;
                    self.flow = self.flow.saturating_sub(1);
                }
                b',' if self.flow > 0 => self.pos += 1,
                b'-' | b'?' if self.flow == 0 && is_blank_or_end(self.at(1)) => {
                    // A block sequence (or complex key) opens at the marker's column.
                    let marker = self.column();
                    self.push_block(marker)?;
                    self.parent = isize::try_from(marker).unwrap_or(isize::MAX);
                    self.pos += 1;
                    while matches!(self.at(0), Some(b' ' | b'\t')) {
                        self.pos += 1;
                    }
                    self.node_col = self.column();
                }
                b'?' if self.flow > 0 => self.pos += 1,
                b':' if self.flow > 0 || is_blank_or_end(self.at(1)) => {
                    if self.flow == 0 {
                        // A block mapping opens at its first key's column.
                        self.push_block(self.node_col)?;
                        self.parent = isize::try_from(self.node_col).unwrap_or(isize::MAX);
                    }
                    self.pos += 1;
                }
                b'|' | b'>' if self.flow == 0 => {
                    self.block_scalar = Some((self.parent, None));
                    self.next_line();
                    return Ok(());
                }
                b'\'' => self.single_quoted(),
                b'"' => self.double_quoted(),
                b'&' | b'*' | b'!' => self.property()?,
                _ => {
                    if !self.plain_scalar() {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// An anchor, alias or tag: up to the next blank. A `[` or `{` inside counts as opening a
    /// level (libyaml may end the tag there); a `]` or `}` does not close one.
    fn property(&mut self) -> Result<(), usize> {
        self.pos += 1;
        while let Some(b) = self.at(0) {
            if matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
                break;
            }
            if self.flow > 0 && matches!(b, b',' | b']' | b'}') {
                break;
            }
            if b == b'[' || b == b'{' {
                self.open_flow()?;
            }
            self.pos += 1;
        }
        Ok(())
    }

    fn single_quoted(&mut self) {
        self.pos += 1;
        while let Some(b) = self.at(0) {
            self.pos += 1;
            match b {
                b'\'' if self.at(0) == Some(b'\'') => self.pos += 1,
                b'\'' => return,
                b'\n' => {
                    self.line += 1;
                    self.line_start = self.pos;
                }
                _ => {}
            }
        }
    }

    fn double_quoted(&mut self) {
        self.pos += 1;
        while let Some(b) = self.at(0) {
            self.pos += 1;
            match b {
                b'\\' => {
                    if self.at(0) == Some(b'\n') {
                        self.line += 1;
                        self.line_start = self.pos + 1;
                    }
                    self.pos += 1;
                }
                b'"' => return,
                b'\n' => {
                    self.line += 1;
                    self.line_start = self.pos;
                }
                _ => {}
            }
        }
    }

    /// A plain scalar from here to its end on this line: `: ` or ` #` end it, and in a flow
    /// collection a flow indicator does too. At the end of the line it may continue. Returns
    /// whether tokens follow on this line.
    fn plain_scalar(&mut self) -> bool {
        self.plain = true;
        let mut previous_blank = true;
        while let Some(b) = self.at(0) {
            match b {
                b'\n' => {
                    self.next_line();
                    return false;
                }
                b':' if is_blank_or_end(self.at(1))
                    || (self.flow > 0 && self.at(1).is_some_and(is_flow_indicator)) =>
                {
                    self.plain = false;
                    return true;
                }
                b'#' if previous_blank => {
                    self.plain = false;
                    self.next_line();
                    return false;
                }
                _ if self.flow > 0 && is_flow_indicator(b) => {
                    self.plain = false;
                    return true;
                }
                _ => {}
            }
            previous_blank = matches!(b, b' ' | b'\t');
            self.pos += 1;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    fn decode(text: &str) -> Result<Value, DecodeError> {
        decode_document(text.as_bytes(), &Limits::new(MIB))
    }

    fn too_deep(text: &str) -> bool {
        matches!(decode(text), Err(DecodeError::TooDeep { .. }))
    }

    #[test]
    fn ordinary_manifests_decode_as_before() {
        let yaml = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  labels: {app: web}\n\
                    stringData:\n  password: hunter2\n  config: |\n    - - - [[[[ not structure\n    \
                    'quoted\nlist:\n- a\n- - b\n  - c\n- key: 'it''s'\n  other: \"x # y\" # comment\n";
        let value = decode(yaml).expect("decodes");
        let expected: Value = serde_norway::from_str(yaml).expect("serde_norway");
        assert_eq!(value, expected);
        let json = r#"{"a": [1, 2.5, true, null, {"b": "c]]]}"}], "d": {}}"#;
        assert_eq!(
            decode(json).expect("decodes"),
            serde_json::from_str::<Value>(json).expect("json")
        );
    }

    #[test]
    fn nesting_at_the_limit_passes_and_past_it_fails_before_parsing() {
        // JSON, and YAML flow collections inside a one-level block mapping.
        for (prefix, open, close, levels) in [
            ("", "[", "]", MAX_DEPTH),
            ("", "{\"a\": ", "}", MAX_DEPTH),
            ("x: ", "{a: ", "}", MAX_DEPTH - 1),
            ("x: ", "[", "]", MAX_DEPTH - 1),
        ] {
            let at = format!("{prefix}{}1{}", open.repeat(levels), close.repeat(levels));
            assert!(decode(&at).is_ok(), "{open} x {levels}");
            let past = format!(
                "{prefix}{}1{}",
                open.repeat(levels + 1),
                close.repeat(levels + 1)
            );
            assert!(too_deep(&past), "{open} x {}", levels + 1);
        }
        // Block nesting by indentation and by sequence markers.
        let mut indented = String::new();
        for i in 0..=MAX_DEPTH {
            indented.push_str(&format!("{}a:\n", " ".repeat(i)));
        }
        assert!(too_deep(&indented));
        assert!(too_deep(&"- ".repeat(MAX_DEPTH + 1)));
        assert!(decode(&"- ".repeat(MAX_DEPTH - 1)).is_ok());
        // Flow inside block.
        let mixed = format!("a:\n  b: {}\n", "[".repeat(MAX_DEPTH));
        assert!(too_deep(&mixed));
        let message = decode(&format!("a: 1\nb: {}", "{c: ".repeat(100)))
            .expect_err("deep")
            .to_string();
        assert_eq!(
            message,
            "document nested deeper than 64 levels at line 2 (Kubernetes objects are far shallower)"
        );
    }

    #[test]
    fn a_deep_body_is_refused_before_the_parser_sees_it() {
        // 400 KB of `{a: `: serde_norway alone spent 51 s on this (quadratic in the depth).
        let body = format!("x: {}", "{a: ".repeat(100_000));
        let e = decode(&body).expect_err("deep");
        assert_eq!(
            e,
            DecodeError::TooDeep {
                limit: MAX_DEPTH,
                line: Some(1)
            }
        );
        let json = "[".repeat(400_000);
        assert!(too_deep(&json));
    }

    #[test]
    fn scalars_and_comments_that_look_like_nesting_do_not_count() {
        let deep = "[".repeat(200);
        for text in [
            format!("a: '{deep}'\n"),
            format!("a: \"{deep}\\\" {deep}\"\n"),
            format!("a: b{deep}\n"),
            format!("a: 1 # {deep}\n"),
            format!("# {deep}\na: 1\n"),
            format!("a: |\n  {deep}\n  more\nb: 1\n"),
            format!("- >-\n   {deep}\n- x\n"),
            format!("{{\"a\": \"{deep}\"}}"),
        ] {
            assert!(decode(&text).is_ok(), "{text}");
        }
    }

    #[test]
    fn quotes_that_libyaml_reads_as_plain_text_hide_nothing() {
        let deep = "{a: ".repeat(MAX_DEPTH + 1);
        for text in [
            // A quote inside a plain scalar is text, not the start of a quoted scalar.
            format!("a: it's\nb: {deep}\nc: 'x'\n"),
            // A plain scalar continued on the next line, starting with a quote.
            format!("a: word\n  'more\nb: {deep}\nc: 'x'\n"),
            // In a flow collection.
            format!("a: [x'y, {deep}\n"),
            // A block scalar ends at the first line indented no further than its parent.
            format!("- - |\n    text\n  - {deep}\n"),
            format!("a: |\n  text\nb: {deep}\n"),
        ] {
            assert!(too_deep(&text), "{text}");
        }
    }

    #[test]
    fn aliases_are_bounded_by_the_input_size() {
        // A billion laughs stops early (serde_norway's own limit or this one).
        let mut laughs = String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
        let mut previous = "a".to_owned();
        for name in ["b", "c", "d", "e", "f", "g", "h", "i"] {
            let refs = vec![format!("*{previous}"); 9].join(",");
            laughs.push_str(&format!("{name}: &{name} [{refs}]\n"));
            previous = name.to_owned();
        }
        assert!(decode(&laughs).is_err());
        // Many aliases of one large anchor: within serde_norway's limit, past this one.
        let mut wide = String::from("a: &a [");
        wide.push_str(&"\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\",".repeat(2000));
        wide.push_str("]\nb: [");
        wide.push_str(&"*a,".repeat(5000));
        wide.push_str("]\n");
        let e = decode(&wide).expect_err("too large");
        assert!(
            matches!(e, DecodeError::TooLargeDecoded { document: 1, .. }),
            "{e}"
        );
        // Merge-key style reuse stays well inside.
        let merge = "base: &base {image: x, replicas: 2}\na: *base\nb: *base\nc: *base\n";
        assert!(decode(merge).is_ok());
    }

    #[test]
    fn dense_documents_without_aliases_fit_the_expansion_bound() {
        let json = format!("[{}0]", "0,".repeat(400_000));
        assert!(decode_document(json.as_bytes(), &Limits::new(MIB)).is_ok());
        let yaml = "-\n".repeat(400_000);
        assert!(decode_document(yaml.as_bytes(), &Limits::new(MIB)).is_ok());
        let keys = format!(
            "a: {{{}}}",
            (0..100_000)
                .map(|i| format!("k{i:x}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert!(decode_document(keys.as_bytes(), &Limits::new(MIB)).is_ok());
    }

    #[test]
    fn size_cancellation_and_documents() {
        let e = decode_document(b"a: 1\n", &Limits::new(4)).expect_err("large");
        assert_eq!(e, DecodeError::TooLarge { size: 5, limit: 4 });
        let cancel = AtomicBool::new(true);
        let e = decode_document(b"a: 1\n", &Limits::new(MIB).cancelled_by(&cancel))
            .expect_err("cancelled");
        assert_eq!(e, DecodeError::Cancelled);
        assert_eq!(
            decode("---\na: 1\n---\nb: 2\n"),
            Err(DecodeError::SeveralDocuments)
        );
        let all = decode_documents(b"---\na: 1\n---\n---\nb: 2\n", &Limits::new(MIB)).expect("ok");
        assert_eq!(all.syntax, Syntax::Yaml);
        assert_eq!(
            all.documents.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            [1, 3]
        );
        let stream = decode_documents(br#"{"a":1} {"b":2}"#, &Limits::new(MIB)).expect("ok");
        assert_eq!((stream.syntax, stream.documents.len()), (Syntax::Json, 2));
        assert_eq!(
            decode_document(b"a: \xff", &Limits::new(MIB)),
            Err(DecodeError::NotUtf8 { offset: 3 })
        );
    }

    #[test]
    fn errors_never_quote_the_input() {
        for text in [
            "a: !!int hunter2\n",
            "a: !!float hunter2\n",
            "a: !!bool hunter2\n",
            "a: [hunter2\n",
            "{\"a\": \"hunter2\" x}",
            "a: b: hunter2\n",
        ] {
            let e = decode(text).expect_err(text).to_string();
            assert!(!e.contains("hunter2"), "{text:?}: {e}");
            assert!(e.contains(" at line "), "{text:?}: {e}");
        }
        let e = decode("a: !!int hunter2\n").expect_err("tag").to_string();
        assert_eq!(
            e,
            "invalid YAML: a: invalid value: string \"…\", expected an integer at line 1 column 4"
        );
    }
}
