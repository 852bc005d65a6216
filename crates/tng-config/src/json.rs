//! A JSON tree that remembers key order and refuses duplicate keys, plus a small reader that
//! tracks the path of every value and which keys were consumed.
//!
//! Upstream flattens several structs into one object, which defeats serde's
//! `deny_unknown_fields` and its error paths. Reading the tree by hand lets every level be strict
//! and every message name the exact field.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};

use crate::error::{ConfigError, Result};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Uint(u64),
    Int(i64),
    Float(f64),
    Str(String),
    Arr(Vec<Json>),
    /// Entries in document order (so "first" and "both" messages follow what the user wrote).
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn describe(&self) -> String {
        match self {
            Json::Null => "null".to_owned(),
            Json::Bool(b) => format!("boolean `{b}`"),
            Json::Uint(n) => format!("integer `{n}`"),
            Json::Int(n) => format!("integer `{n}`"),
            Json::Float(x) => format!("floating point `{x}`"),
            Json::Str(s) => format!("string {s:?}"),
            Json::Arr(_) => "array".to_owned(),
            Json::Obj(_) => "object".to_owned(),
        }
    }
}

pub(crate) fn child_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

pub(crate) fn index_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// Parses strict JSON. A duplicate key is reported with the path of the object holding it.
pub(crate) fn parse_document(text: &str) -> Result<Json> {
    let duplicate = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = Seed {
        path: String::new(),
        duplicate: &duplicate,
    }
    .deserialize(&mut de);
    let result = parsed.and_then(|value| de.end().map(|()| value));
    result.map_err(|e| {
        duplicate
            .into_inner()
            .unwrap_or_else(|| ConfigError::new("", format!("invalid JSON: {e}")))
    })
}

struct Seed<'d> {
    path: String,
    // serde_json appends line/column to custom errors; the side channel keeps our path-based one.
    duplicate: &'d RefCell<Option<ConfigError>>,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Json;

    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<Json, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> std::result::Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_u64<E>(self, v: u64) -> std::result::Result<Json, E> {
        Ok(Json::Uint(v))
    }

    fn visit_i64<E>(self, v: i64) -> std::result::Result<Json, E> {
        Ok(match u64::try_from(v) {
            Ok(u) => Json::Uint(u),
            Err(_) => Json::Int(v),
        })
    }

    fn visit_f64<E>(self, v: f64) -> std::result::Result<Json, E> {
        Ok(Json::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> std::result::Result<Json, E> {
        Ok(Json::Str(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> std::result::Result<Json, E> {
        Ok(Json::Str(v))
    }

    fn visit_unit<E>(self) -> std::result::Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> std::result::Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Json, A::Error> {
        let mut items = Vec::new();
        loop {
            let seed = Seed {
                path: index_path(&self.path, items.len()),
                duplicate: self.duplicate,
            };
            match seq.next_element_seed(seed)? {
                Some(item) => items.push(item),
                None => return Ok(Json::Arr(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Json, A::Error> {
        let mut entries = Vec::new();
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                let message = format!("duplicate field `{key}`");
                *self.duplicate.borrow_mut() =
                    Some(ConfigError::new(self.path.clone(), message.clone()));
                return Err(A::Error::custom(message));
            }
            let seed = Seed {
                path: child_path(&self.path, &key),
                duplicate: self.duplicate,
            };
            let value = map.next_value_seed(seed)?;
            entries.push((key, value));
        }
        Ok(Json::Obj(entries))
    }
}

/// One value of the tree together with its path.
#[derive(Debug, Clone)]
pub(crate) struct Field<'a> {
    pub(crate) path: String,
    pub(crate) value: &'a Json,
}

const PORT: &str = "an integer from 0 to 65535";

impl<'a> Field<'a> {
    pub(crate) fn root(value: &'a Json) -> Self {
        Field {
            path: String::new(),
            value,
        }
    }

    pub(crate) fn err(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.path.clone(), message)
    }

    pub(crate) fn invalid_type(&self, expected: &str) -> ConfigError {
        self.err(format!(
            "invalid type: {}, expected {expected}",
            self.value.describe()
        ))
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(self.value, Json::Null)
    }

    pub(crate) fn str(&self) -> Result<&'a str> {
        match self.value {
            Json::Str(s) => Ok(s),
            _ => Err(self.invalid_type("a string")),
        }
    }

    pub(crate) fn string(&self) -> Result<String> {
        self.str().map(str::to_owned)
    }

    pub(crate) fn bool(&self) -> Result<bool> {
        match self.value {
            Json::Bool(b) => Ok(*b),
            _ => Err(self.invalid_type("a boolean")),
        }
    }

    fn uint(&self, max: u64, expected: &str) -> Result<u64> {
        match *self.value {
            Json::Uint(n) if n <= max => Ok(n),
            Json::Uint(n) => Err(self.err(format!("invalid value: {n}, expected {expected}"))),
            Json::Int(n) => Err(self.err(format!("invalid value: {n}, expected {expected}"))),
            _ => Err(self.invalid_type(expected)),
        }
    }

    pub(crate) fn u16(&self) -> Result<u16> {
        let n = self.uint(u64::from(u16::MAX), PORT)?;
        u16::try_from(n).map_err(|_| self.err(format!("invalid value: {n}, expected {PORT}")))
    }

    pub(crate) fn u32(&self) -> Result<u32> {
        let expected = "an integer from 0 to 4294967295";
        let n = self.uint(u64::from(u32::MAX), expected)?;
        u32::try_from(n).map_err(|_| self.err(format!("invalid value: {n}, expected {expected}")))
    }

    pub(crate) fn u64(&self) -> Result<u64> {
        self.uint(u64::MAX, "a non-negative integer")
    }

    pub(crate) fn array(&self) -> Result<Vec<Field<'a>>> {
        match self.value {
            Json::Arr(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, value)| Field {
                    path: index_path(&self.path, i),
                    value,
                })
                .collect()),
            _ => Err(self.invalid_type("an array")),
        }
    }

    /// Upstream's `OneOrMany`: a lone object stands for a one-element array (and keeps its path).
    pub(crate) fn one_or_many(&self) -> Result<Vec<Field<'a>>> {
        match self.value {
            Json::Obj(_) => Ok(vec![self.clone()]),
            Json::Arr(_) => self.array(),
            _ => Err(self.invalid_type("an object or an array of objects")),
        }
    }

    pub(crate) fn object(&self) -> Result<Obj<'a>> {
        match self.value {
            Json::Obj(entries) => Ok(Obj {
                path: self.path.clone(),
                entries,
                used: vec![false; entries.len()],
            }),
            _ => Err(self.invalid_type("an object")),
        }
    }

    pub(crate) fn strings(&self) -> Result<Vec<String>> {
        self.array()?.iter().map(Field::string).collect()
    }

    /// A string-to-string object in document order (where order is visible on the wire).
    pub(crate) fn string_pairs(&self) -> Result<Vec<(String, String)>> {
        let obj = self.object()?;
        obj.entries
            .iter()
            .map(|(key, value)| {
                let field = Field {
                    path: child_path(&self.path, key),
                    value,
                };
                Ok((key.clone(), field.string()?))
            })
            .collect()
    }

    pub(crate) fn string_map(&self) -> Result<BTreeMap<String, String>> {
        let obj = self.object()?;
        let mut map = BTreeMap::new();
        for (key, value) in obj.entries {
            let field = Field {
                path: child_path(&self.path, key),
                value,
            };
            map.insert(key.clone(), field.string()?);
        }
        Ok(map)
    }
}

/// An object being read. Every key must be consumed before [`Obj::finish`], which is how
/// unknown keys become errors at every level.
#[derive(Debug)]
pub(crate) struct Obj<'a> {
    pub(crate) path: String,
    entries: &'a [(String, Json)],
    used: Vec<bool>,
}

impl<'a> Obj<'a> {
    pub(crate) fn err(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.path.clone(), message)
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k == key)
    }

    /// Keys in document order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &'a str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// The raw value, `null` included (for fields whose `null` is a type error).
    pub(crate) fn field(&mut self, key: &str) -> Option<Field<'a>> {
        let index = self.entries.iter().position(|(k, _)| k == key)?;
        if let Some(used) = self.used.get_mut(index) {
            *used = true;
        }
        let value = &self.entries.get(index)?.1;
        Some(Field {
            path: child_path(&self.path, key),
            value,
        })
    }

    /// An `Option` field: `null` means absent.
    pub(crate) fn opt(&mut self, key: &str) -> Option<Field<'a>> {
        self.field(key).filter(|f| !f.is_null())
    }

    pub(crate) fn req(&mut self, key: &str) -> Result<Field<'a>> {
        self.field(key)
            .ok_or_else(|| ConfigError::new(child_path(&self.path, key), "required"))
    }

    /// A field that also has an alias; giving both is the same field twice.
    pub(crate) fn aliased(&mut self, name: &str, alias: &str) -> Result<Option<Field<'a>>> {
        match (self.field(name), self.field(alias)) {
            (Some(_), Some(_)) => Err(self.err(format!(
                "duplicate field `{name}` (given both as `{name}` and as its alias `{alias}`)"
            ))),
            (a, b) => Ok(a.or(b)),
        }
    }

    pub(crate) fn finish(self, expected: &[&str]) -> Result<()> {
        for ((key, _), used) in self.entries.iter().zip(&self.used) {
            if !used {
                return Err(self.err(format!(
                    "unknown field `{key}`, expected {}",
                    expected_list(expected)
                )));
            }
        }
        Ok(())
    }
}

fn expected_list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.as_slice() {
        [one] => one.clone(),
        _ => format!("one of {}", quoted.join(", ")),
    }
}

/// One line from a regex error (the crate's own text spans several lines with a caret diagram).
pub(crate) fn regex_error(error: &regex::Error) -> String {
    let text = error.to_string();
    text.lines()
        .rev()
        .find_map(|line| line.strip_prefix("error: "))
        .map(str::to_owned)
        .unwrap_or_else(|| text.split_whitespace().collect::<Vec<_>>().join(" "))
}

pub(crate) fn compile_regex(field: &Field<'_>) -> Result<regex::Regex> {
    let pattern = field.str()?;
    regex::Regex::new(pattern).map_err(|e| field.err(format!("invalid regex: {}", regex_error(&e))))
}
