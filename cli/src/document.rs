//! Reading Kubernetes manifests: multi-document YAML or a stream of JSON objects, `v1/List`s
//! flattened, each document remembered with where it came from so every error can name the file,
//! the document and the field.
//!
//! Documents are held as [`serde_json::Value`] and checked field by field with [`Object`], so
//! error messages name fields and never quote values (a serde type error would print the
//! offending string, which may be a plaintext). Every string in a [`Document`] is zeroized when
//! it is dropped.
//!
//! Inputs are untrusted (in CI, a pull request writes them): they are read up to
//! [`MAX_INPUT_BYTES`] and decoded by [`sealbox_crds::decode`], which bounds depth and alias
//! expansion before and while parsing. [`parse`] is the reader's entry point (fuzzed as such).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::Path;

use sealbox_crds::decode::{self, DecodeError, Limits};
use serde_json::{Map, Value};
use zeroize::{Zeroize, Zeroizing};

use crate::bounded::{Limit, read_bounded, read_bounded_from};
use crate::error::{Error, Result};
use crate::origin::{Origin, field_path};

/// The name used for standard input in messages.
pub const STDIN: &str = "<stdin>";

/// Largest input file (or standard input) read as documents. One Kubernetes object is at most
/// ~1.5 MiB (etcd's request limit); 64 MiB holds a repository's worth of them in one stream
/// while keeping a hostile file from filling memory.
pub const MAX_INPUT_BYTES: usize = 64 * 1024 * 1024;

/// The syntax an input was written in; output of `merge` keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syntax {
    /// One or more YAML documents separated by `---`.
    Yaml,
    /// One or more JSON values, whitespace-separated.
    Json,
}

/// One Kubernetes object from the input. Its strings are zeroized on drop; `Debug` shows only
/// where it came from and its kind.
pub struct Document {
    /// Where it came from.
    pub origin: Origin,
    /// The object as parsed.
    pub value: Value,
}

impl fmt::Debug for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Document")
            .field("origin", &self.origin)
            .field("kind", &self.kind())
            .finish_non_exhaustive()
    }
}

impl Drop for Document {
    fn drop(&mut self) {
        scrub(&mut self.value);
    }
}

impl Document {
    /// The document as a top-level object, or an error naming what it is instead.
    pub fn object(&self) -> Result<Object<'_>> {
        match &self.value {
            Value::Object(map) => Ok(Object {
                origin: &self.origin,
                path: String::new(),
                map,
            }),
            other => Err(Error::InvalidDocument {
                origin: self.origin.clone(),
                field: "(document)".to_owned(),
                problem: format!(
                    "expected a Kubernetes object (a mapping), found {}",
                    kind_of(other)
                ),
            }),
        }
    }

    /// The `kind` field, when it is a string.
    pub fn kind(&self) -> Option<&str> {
        self.value.get("kind").and_then(Value::as_str)
    }
}

/// Zeroizes every string in a JSON value, in place.
pub fn scrub(value: &mut Value) {
    match value {
        Value::String(s) => s.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(scrub),
        Value::Object(map) => map.values_mut().for_each(scrub),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// A parsed input: its name, its syntax and its documents, in order.
#[derive(Debug)]
pub struct Input {
    /// The file, or `<stdin>`.
    pub name: String,
    /// YAML or JSON.
    pub syntax: Syntax,
    /// The documents, `List`s flattened, empty YAML documents skipped.
    pub documents: Vec<Document>,
}

/// What one input of Secret or SealedSecret documents may hold; see [`MAX_INPUT_BYTES`].
pub const DOCUMENTS: Limit = Limit {
    bytes: MAX_INPUT_BYTES as u64,
    what: "one input of documents (split it into several files)",
};

/// Reads all of `file` (or `reader` when `file` is `None` or `-`) into a zeroized buffer, at
/// most [`MAX_INPUT_BYTES`]. Returns the input's display name with the bytes.
pub fn read_input(file: Option<&Path>, reader: impl Read) -> Result<(String, Zeroizing<Vec<u8>>)> {
    match file {
        Some(path) if path != Path::new("-") => {
            let name = path.display().to_string();
            let bytes = read_file(path).map_err(|source| read_error(&name, path, source))?;
            Ok((name, bytes))
        }
        _ => {
            let bytes =
                read_bounded_from(reader, DOCUMENTS).map_err(|source| Error::ReadInput {
                    input: STDIN.to_owned(),
                    source,
                })?;
            Ok((STDIN.to_owned(), bytes))
        }
    }
}

/// Reads a whole file of documents into a zeroized buffer, at most [`MAX_INPUT_BYTES`]: the
/// files `check` and `reencrypt` walk come from whoever writes the repository.
pub fn read_file(path: &Path) -> std::io::Result<Zeroizing<Vec<u8>>> {
    read_bounded(path, DOCUMENTS)
}

fn read_error(name: &str, path: &Path, source: std::io::Error) -> Error {
    if path.is_dir() {
        Error::InputIsDirectory {
            input: name.to_owned(),
        }
    } else {
        Error::ReadInput {
            input: name.to_owned(),
            source,
        }
    }
}

/// [`read_input`] then [`parse`], refusing an input without documents; `expected` names what
/// the command wants, e.g. "a Secret".
pub fn read_documents(
    file: Option<&Path>,
    reader: impl Read,
    expected: &'static str,
) -> Result<Input> {
    let (name, bytes) = read_input(file, reader)?;
    let input = parse(&name, &bytes)?;
    if input.documents.is_empty() {
        return Err(Error::NoDocuments {
            input: name,
            expected,
        });
    }
    Ok(input)
}

/// Parses YAML (several `---`-separated documents) or JSON (several objects in a row); JSON is
/// recognised by a leading `{` or `[`. `kind: List` documents are replaced by their items.
/// Decoding is bounded by [`MAX_INPUT_BYTES`] and [`sealbox_crds::decode`]'s depth and alias
/// bounds; errors name the input and the document, never a value.
pub fn parse(name: &str, bytes: &[u8]) -> Result<Input> {
    let decoded = decode::decode_documents(bytes, &Limits::new(MAX_INPUT_BYTES))
        .map_err(|e| decode_error(name, decode::Syntax::of(bytes), e))?;
    let syntax = match decoded.syntax {
        decode::Syntax::Json => Syntax::Json,
        decode::Syntax::Yaml => Syntax::Yaml,
    };

    let mut documents = Vec::with_capacity(decoded.documents.len());
    for (index, value) in decoded.documents {
        let origin = Origin {
            input: name.to_owned(),
            document: index,
            item: None,
        };
        let document = Document { origin, value };
        if is_list(&document.value) {
            flatten_list(document, &mut documents)?;
        } else {
            documents.push(document);
        }
    }
    Ok(Input {
        name: name.to_owned(),
        syntax,
        documents,
    })
}

/// The CLI's error for a decoding error; `syntax` is what the input looked like.
fn decode_error(name: &str, syntax: decode::Syntax, error: DecodeError) -> Error {
    let input = name.to_owned();
    match error {
        DecodeError::NotUtf8 { offset } => Error::NotUtf8 { input, offset },
        DecodeError::Syntax {
            syntax: decode::Syntax::Json,
            document,
            problem,
            ..
        } => Error::ParseJson {
            input,
            document,
            reason: if document <= 1 {
                problem
            } else {
                format!("{problem} (trailing data after document {}?)", document - 1)
            },
        },
        DecodeError::Syntax {
            document, problem, ..
        } => Error::ParseYaml {
            input,
            document,
            reason: problem,
        },
        other => {
            let document = other.document().unwrap_or(1);
            let reason = other.to_string();
            if syntax == decode::Syntax::Json {
                Error::ParseJson {
                    input,
                    document,
                    reason,
                }
            } else {
                Error::ParseYaml {
                    input,
                    document,
                    reason,
                }
            }
        }
    }
}

fn is_list(value: &Value) -> bool {
    value
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|kind| kind == "List")
        && value.get("items").is_some()
}

fn flatten_list(mut list: Document, out: &mut Vec<Document>) -> Result<()> {
    let origin = list.origin.clone();
    let Some(Value::Array(items)) = list.value.get_mut("items").map(Value::take) else {
        return Err(Error::InvalidDocument {
            origin,
            field: "items".to_owned(),
            problem: "a List's items must be a list".to_owned(),
        });
    };
    for (i, value) in items.into_iter().enumerate() {
        out.push(Document {
            origin: Origin {
                item: Some(i),
                ..origin.clone()
            },
            value,
        });
    }
    Ok(())
}

/// "a string", "a number", …: what a value is, for messages that must not show the value.
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// A JSON object inside a [`Document`], with typed getters whose errors name the field path
/// and the document, never the value.
#[derive(Clone, Debug)]
pub struct Object<'a> {
    origin: &'a Origin,
    path: String,
    map: &'a Map<String, Value>,
}

impl<'a> Object<'a> {
    /// The document this object belongs to.
    pub fn origin(&self) -> &'a Origin {
        self.origin
    }

    /// The path of `key` inside this object.
    pub fn path_of(&self, key: &str) -> String {
        field_path(&self.path, key)
    }

    /// An [`Error::InvalidDocument`] about `key`.
    pub fn error(&self, key: &str, problem: impl Into<String>) -> Error {
        Error::InvalidDocument {
            origin: self.origin.clone(),
            field: self.path_of(key),
            problem: problem.into(),
        }
    }

    fn wrong_type(&self, key: &str, expected: &str, found: &Value) -> Error {
        self.error(
            key,
            format!("expected {expected}, found {}", kind_of(found)),
        )
    }

    /// The raw value of `key`; `null` counts as absent.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// Keys of this object, in order.
    pub fn keys(&self) -> impl Iterator<Item = &'a String> + use<'a> {
        self.map.keys()
    }

    /// The underlying map.
    pub fn map(&self) -> &'a Map<String, Value> {
        self.map
    }

    /// A string field.
    pub fn str(&self, key: &str) -> Result<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong_type(key, "a string", other)),
        }
    }

    /// A boolean field.
    pub fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.wrong_type(key, "true or false", other)),
        }
    }

    /// A nested object.
    pub fn object(&self, key: &str) -> Result<Option<Object<'a>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Object {
                origin: self.origin,
                path: self.path_of(key),
                map,
            })),
            Some(other) => Err(self.wrong_type(key, "a mapping", other)),
        }
    }

    /// A map of strings (labels, annotations, data); a non-string value is an error naming its
    /// key. `hint` is appended to that error (e.g. "quote the value").
    pub fn string_map(&self, key: &str, hint: &str) -> Result<Option<BTreeMap<String, &'a str>>> {
        let Some(inner) = self.object(key)? else {
            return Ok(None);
        };
        let mut out = BTreeMap::new();
        for (k, v) in inner.map {
            match v {
                Value::String(s) => {
                    out.insert(k.clone(), s.as_str());
                }
                other => {
                    let mut problem = format!("expected a string, found {}", kind_of(other));
                    if !hint.is_empty() {
                        problem.push_str("; ");
                        problem.push_str(hint);
                    }
                    return Err(inner.error(k, problem));
                }
            }
        }
        Ok(Some(out))
    }

    /// A list of strings.
    pub fn string_list(&self, key: &str) -> Result<Option<Vec<String>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(self.error(
                        key,
                        format!("items[{i}]: expected a string, found {}", kind_of(other)),
                    )),
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(other) => Err(self.wrong_type(key, "a list of strings", other)),
        }
    }
}

/// Checks `kind` (and `apiVersion`) of a document, with errors that say what was found.
pub fn expect_kind(object: &Object<'_>, kind: &str, api_version: &str, hint: &str) -> Result<()> {
    match object.str("kind")? {
        None => return Err(object.error("kind", format!("missing; expected {kind}"))),
        Some(found) if found != kind => {
            let mut problem = format!("expected {kind}, found {found}");
            if !hint.is_empty() {
                problem.push_str("; ");
                problem.push_str(hint);
            }
            return Err(object.error("kind", problem));
        }
        Some(_) => {}
    }
    match object.str("apiVersion")? {
        Some(found) if found != api_version => Err(object.error(
            "apiVersion",
            format!("expected {api_version}, found {found}"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_documents_are_split_and_empty_ones_skipped() {
        let input = parse("x.yaml", b"---\na: 1\n---\n---\nb: 2\n---\n").unwrap();
        assert_eq!(input.syntax, Syntax::Yaml);
        let origins: Vec<String> = input
            .documents
            .iter()
            .map(|d| d.origin.to_string())
            .collect();
        assert_eq!(origins, ["x.yaml, document 1", "x.yaml, document 3"]);
    }

    #[test]
    fn json_stream_and_trailing_garbage() {
        let input = parse("x.json", br#"{"a":1} {"b":2}"#).unwrap();
        assert_eq!(input.syntax, Syntax::Json);
        assert_eq!(input.documents.len(), 2);
        let err = parse("x.json", br#"{"a":1} garbage"#).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("x.json"), "{message}");
        assert!(message.contains("document 2"), "{message}");
    }

    #[test]
    fn lists_are_flattened() {
        let yaml = b"apiVersion: v1\nkind: List\nitems:\n- kind: Secret\n- kind: Secret\n";
        let input = parse("l.yaml", yaml).unwrap();
        assert_eq!(input.documents.len(), 2);
        assert_eq!(
            input.documents[1].origin.to_string(),
            "l.yaml, document 1, items[1]"
        );
    }

    #[test]
    fn non_utf8_names_the_offset() {
        let err = parse("bad.yaml", b"a: \xff\n").unwrap_err();
        assert!(err.to_string().contains("offset 3"), "{err}");
    }

    #[test]
    fn field_errors_name_the_path_not_the_value() {
        let input = parse("s.yaml", b"stringData:\n  port: 5432\n  \"a.b\": [x]\n").unwrap();
        let object = input.documents[0].object().unwrap();
        let err = object.string_map("stringData", "quote it").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("stringData[\"a.b\"]"), "{message}");
        assert!(message.contains("found a list"), "{message}");
    }

    #[test]
    fn debug_never_shows_values() {
        let input = parse("s.yaml", b"kind: Secret\nstringData: {a: hunter2}\n").unwrap();
        let debug = format!("{input:?}");
        assert!(debug.contains("Secret"), "{debug}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn deep_documents_are_refused_before_parsing() {
        // 100 KB of nested flow mappings made `sealbox seal` parse for 8.4 s.
        let deep = format!("kind: Secret\nstringData: {}", "{a: ".repeat(25_000));
        let err = parse("deep.yaml", deep.as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot parse deep.yaml as YAML (document 1): document nested deeper than 64 levels \
             at line 2 (Kubernetes objects are far shallower)"
        );
        let json = format!("{{\"kind\": \"Secret\", \"data\": {}", "[".repeat(1000));
        let err = parse("deep.json", json.as_bytes()).unwrap_err();
        assert!(
            err.to_string()
                .contains("as JSON (document 1): document nested deeper than 64"),
            "{err}"
        );
        // A later document is named.
        let second = format!("a: 1\n---\nb: {}", "[".repeat(100));
        let err = parse("two.yaml", second.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
    }

    #[test]
    fn tagged_values_are_not_echoed() {
        let err = parse(
            "s.yaml",
            b"kind: Secret\nstringData:\n  password: !!int hunter2\n",
        )
        .unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(err.to_string().contains("s.yaml"), "{err}");
    }

    #[test]
    fn inputs_past_the_size_bound_are_refused() {
        let big = std::io::repeat(b' ').take(u64::try_from(MAX_INPUT_BYTES).unwrap() + 1);
        let err = read_input(None, big).unwrap_err();
        let source = std::error::Error::source(&err).map(ToString::to_string);
        assert!(
            source
                .as_deref()
                .is_some_and(|s| s.contains("larger than 64 MiB")),
            "{err}: {source:?}"
        );
    }
}
