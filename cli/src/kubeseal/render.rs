//! Documents written the way kubeseal writes them: JSON pretty-printed with `kind` and
//! `apiVersion` first, one object after another with a newline after each; YAML with keys in
//! sorted order (kubeseal converts its JSON to YAML), each document introduced by `---`.

use serde::Serialize;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::kubeseal::flags::KubesealFormat;

/// Renders objects (each a JSON object with `kind` and `apiVersion`) in `format`; the buffer
/// is wiped on drop since unsealed Secrets hold plaintext.
pub fn render<T: Serialize>(objects: &[T], format: KubesealFormat) -> Result<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::new());
    for object in objects {
        let value = Zeroizing::new(ZeroizingValue(
            serde_json::to_value(object).map_err(|e| render_error("JSON", &e))?,
        ));
        match format {
            KubesealFormat::Json => {
                let text = Zeroizing::new(
                    serde_json::to_string_pretty(&KindFirst(&value.0))
                        .map_err(|e| render_error("JSON", &e))?,
                );
                out.extend_from_slice(text.as_bytes());
                out.push(b'\n');
            }
            KubesealFormat::Yaml => {
                let text = Zeroizing::new(
                    serde_norway::to_string(&value.0).map_err(|e| render_error("YAML", &e))?,
                );
                out.extend_from_slice(b"---\n");
                out.extend_from_slice(text.as_bytes());
            }
        }
    }
    Ok(out)
}

fn render_error(format: &'static str, error: &dyn std::fmt::Display) -> Error {
    Error::Render {
        format,
        reason: error.to_string(),
    }
}

/// A JSON object serialized with `kind`, `apiVersion`, `metadata` first, as Go's struct order
/// puts them; the other keys follow sorted.
struct KindFirst<'a>(&'a Value);

const LEADING_KEYS: [&str; 3] = ["kind", "apiVersion", "metadata"];

impl Serialize for KindFirst<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let Value::Object(object) = self.0 else {
            return self.0.serialize(serializer);
        };
        let mut map = serializer.serialize_map(Some(object.len()))?;
        for key in LEADING_KEYS {
            if let Some(value) = object.get(key) {
                map.serialize_entry(key, value)?;
            }
        }
        for (key, value) in object {
            if !LEADING_KEYS.contains(&key.as_str()) {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

/// A JSON value whose strings are wiped on drop (it may hold plaintext).
#[derive(Default)]
struct ZeroizingValue(Value);

impl zeroize::Zeroize for ZeroizingValue {
    fn zeroize(&mut self) {
        wipe(&mut self.0);
    }
}

fn wipe(value: &mut Value) {
    match value {
        Value::String(s) => zeroize::Zeroize::zeroize(s),
        Value::Array(items) => items.iter_mut().for_each(wipe),
        Value::Object(map) => map.values_mut().for_each(wipe),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Drops `null` and empty-object fields of `metadata`, as Go's `omitempty` does.
pub fn compact_metadata(metadata: &mut Map<String, Value>) {
    metadata.retain(|_, v| match v {
        Value::Null => false,
        Value::Object(m) => !m.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => true,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_puts_kind_first_and_yaml_sorts_and_separates() {
        let docs = [
            json!({"apiVersion": "v1", "kind": "Secret", "data": {"b": "1", "a": "2"}}),
            json!({"apiVersion": "v1", "kind": "Secret"}),
        ];
        let json = render(&docs, KubesealFormat::Json).unwrap();
        assert_eq!(
            std::str::from_utf8(&json).unwrap(),
            "{\n  \"kind\": \"Secret\",\n  \"apiVersion\": \"v1\",\n  \"data\": {\n    \"a\": \"2\",\n    \"b\": \"1\"\n  }\n}\n\
             {\n  \"kind\": \"Secret\",\n  \"apiVersion\": \"v1\"\n}\n"
        );
        let yaml = render(&docs, KubesealFormat::Yaml).unwrap();
        assert_eq!(
            std::str::from_utf8(&yaml).unwrap(),
            "---\napiVersion: v1\ndata:\n  a: '2'\n  b: '1'\nkind: Secret\n---\napiVersion: v1\nkind: Secret\n"
        );
    }
}
