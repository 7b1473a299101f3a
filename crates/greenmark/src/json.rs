//! Reading JSON documents that hold secrets (key files, vLLM and SynthID configs) field by
//! field, with errors that name the field and what it must be, and never quote a value.
//!
//! serde's own messages quote what they read (`invalid value: string "..."`, `invalid type:
//! integer 123`), and in these documents any value may be a secret, or a secret pasted into the
//! wrong field. So the text is parsed into a [`Value`] (a syntax error names a line and column,
//! never content) and each field is taken out here; an error says which field, what it must be
//! and what *kind* of value it holds (`got a string`), never the value itself. Unknown field
//! names are shown only when they look like a field name (letters and `_`, at most 32), so a
//! secret pasted as a name is not echoed either.

use serde_json::{Map, Value};

use crate::error::{Document, Error, Result};

/// Parses `text` as JSON, with a syntax error's position but no content.
pub(crate) fn parse(what: Document, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| Error::Parse {
        what,
        message: match e.classify() {
            // serde_json's syntax messages are fixed texts plus a position.
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                format!("not valid JSON: {e}")
            }
            _ => format!("not valid JSON (line {}, column {})", e.line(), e.column()),
        },
    })
}

/// What kind of value `v` is, for errors ("got a string").
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "an integer",
        Value::Number(_) => "a number with a fraction or exponent",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A field name as errors may show it: as written when it looks like a field name, else a
/// placeholder (it may be a secret pasted in the wrong place).
fn shown_name(name: &str) -> String {
    if !name.is_empty()
        && name.len() <= 32
        && name.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_')
    {
        format!("`{name}`")
    } else {
        "whose name is not shown (it is not a field name and may be a secret)".into()
    }
}

/// A JSON object being read: the document kind and the path to it (`""` for the top level,
/// `"config."` inside a key file), for errors.
pub(crate) struct Object<'a> {
    what: Document,
    path: String,
    map: &'a Map<String, Value>,
}

impl<'a> Object<'a> {
    /// `value` as an object at `path` (`""` or `"config"`).
    pub(crate) fn new(what: Document, path: &str, value: &'a Value) -> Result<Object<'a>> {
        match value {
            Value::Object(map) => Ok(Object {
                what,
                path: if path.is_empty() {
                    String::new()
                } else {
                    format!("{path}.")
                },
                map,
            }),
            other => Err(Error::Parse {
                what,
                message: format!(
                    "{} must be a JSON object {{...}}, got {}",
                    if path.is_empty() {
                        "the document"
                    } else {
                        path
                    },
                    kind(other)
                ),
            }),
        }
    }

    /// An error about `field` of this object (`""`: the object itself).
    pub(crate) fn error(&self, field: &str, message: impl std::fmt::Display) -> Error {
        let name = if field.is_empty() {
            match self.path.trim_end_matches('.') {
                "" => "the document".to_string(),
                path => path.to_string(),
            }
        } else {
            format!("{}{field}", self.path)
        };
        Error::Parse {
            what: self.what,
            message: format!("{name} {message}"),
        }
    }

    /// The object `v` held in `field` of this one.
    pub(crate) fn child(&self, field: &str, v: &'a Value) -> Result<Object<'a>> {
        Object::new(self.what, &format!("{}{field}", self.path), v)
    }

    /// Refuses any field not in `known`, so a typo does not silently fall back to a default.
    pub(crate) fn only(&self, known: &[&str]) -> Result<()> {
        match self.map.keys().find(|k| !known.contains(&k.as_str())) {
            None => Ok(()),
            Some(name) => Err(Error::Parse {
                what: self.what,
                message: format!(
                    "unknown field {} in {}: the fields are {}",
                    shown_name(name),
                    if self.path.is_empty() {
                        "the document".to_string()
                    } else {
                        format!("`{}`", self.path.trim_end_matches('.'))
                    },
                    known.join(", ")
                ),
            }),
        }
    }

    /// The field as written, `None` when absent (null included).
    pub(crate) fn raw(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field)
    }

    /// The field, `None` when absent or null.
    pub(crate) fn get(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    /// A required field (null counts as missing).
    pub(crate) fn require(&self, field: &str, expected: &str) -> Result<&'a Value> {
        self.get(field)
            .ok_or_else(|| self.error(field, format!("is missing: it must be {expected}")))
    }

    /// The error "`field` must be `expected`, got <kind of v>".
    pub(crate) fn wrong(&self, field: &str, expected: &str, v: &Value) -> Error {
        self.error(field, format!("must be {expected}, got {}", kind(v)))
    }

    /// An optional string field.
    pub(crate) fn str(&self, field: &str, expected: &str) -> Result<Option<&'a str>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.wrong(field, expected, v)),
        }
    }

    /// An optional boolean field.
    pub(crate) fn bool(&self, field: &str) -> Result<Option<bool>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.wrong(field, "true or false", v)),
        }
    }

    /// An optional number field (any finite JSON number).
    pub(crate) fn f64(&self, field: &str, expected: &str) -> Result<Option<f64>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(x) if x.is_finite() => Ok(Some(x)),
                _ => Err(self.error(field, format!("must be {expected}, got an unusable number"))),
            },
            Some(v) => Err(self.wrong(field, expected, v)),
        }
    }

    /// An optional integer field in `min ..= max`; `expected` says so in words.
    pub(crate) fn int(
        &self,
        field: &str,
        min: i128,
        max: i128,
        expected: &str,
    ) -> Result<Option<i128>> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => int_value(v, min, max)
                .map(Some)
                .map_err(|got| self.error(field, format!("must be {expected}, got {got}"))),
        }
    }
}

/// `v` as an integer in `min ..= max`, or what it is instead (for "got ...").
pub(crate) fn int_value(
    v: &Value,
    min: i128,
    max: i128,
) -> std::result::Result<i128, &'static str> {
    let n = match v {
        Value::Number(n) => n,
        other => return Err(kind(other)),
    };
    let x = if let Some(x) = n.as_u64() {
        i128::from(x)
    } else if let Some(x) = n.as_i64() {
        i128::from(x)
    } else {
        return Err("a number with a fraction or exponent, or beyond 64 bits");
    };
    if x < min {
        Err("an integer below that range")
    } else if x > max {
        Err("an integer above that range")
    } else {
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field_and_kind_but_not_the_value() {
        let v = parse(
            Document::Config,
            r#"{"a": "SECRETVALUE", "b": 123456789, "c": 1.5}"#,
        )
        .unwrap();
        let o = Object::new(Document::Config, "", &v).unwrap();
        let e = o.bool("a").unwrap_err().to_string();
        assert!(e.contains("a must be true or false, got a string"), "{e}");
        assert!(!e.contains("SECRETVALUE"), "{e}");
        let e = o.int("b", 0, 10, "from 0 to 10").unwrap_err().to_string();
        assert!(
            e.contains("b must be from 0 to 10, got an integer above"),
            "{e}"
        );
        assert!(!e.contains("123456789"), "{e}");
        let e = o.int("c", 0, 10, "from 0 to 10").unwrap_err().to_string();
        assert!(e.contains("fraction"), "{e}");
        let e = o.only(&["a", "b"]).unwrap_err().to_string();
        assert!(e.contains("unknown field `c`"), "{e}");
        let v = parse(Document::Config, r#"{"5a5a5a5a": 1}"#).unwrap();
        let e = Object::new(Document::Config, "", &v)
            .unwrap()
            .only(&["a"])
            .unwrap_err()
            .to_string();
        assert!(!e.contains("5a5a") && e.contains("not shown"), "{e}");
        let e = parse(Document::Config, r#"{"a": "SECRET"#)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("SECRET"), "{e}");
    }
}
