//! A YAML document as a tree with the parser's locations (serde-saphyr's
//! `Spanned`), for diagnostics: unknown keys at every depth checked against
//! the JSON Schema derived from the serde types (`schema.rs`), and type
//! errors reported per key with their key path, each at its own line and
//! column. Pure: text in, diagnostics out.

use std::fmt;
use std::path::Path;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_saphyr::Spanned;

use crate::manifest::{Diagnostic, Severity};

/// A node: its location (line, column) and what it holds.
#[derive(Debug, Clone)]
pub struct Node {
    /// 1-based line and column of the value.
    pub at: (u64, u64),
    /// Byte range of the value in the text, when the parser knows it.
    pub bytes: Option<(usize, usize)>,
    /// The value.
    pub kind: Kind,
}

/// What a node holds.
#[derive(Debug, Clone)]
pub enum Kind {
    /// A mapping: key, the key's location, value.
    Map(Vec<(String, (u64, u64), Node)>),
    /// A sequence.
    Seq(Vec<Node>),
    /// A scalar (typed as the parser read it).
    Scalar(Value),
}

/// The un-located shape, deserialized by serde-saphyr.
enum Raw {
    Map(Vec<(Spanned<KeyText>, Spanned<Raw>)>),
    Seq(Vec<Spanned<Raw>>),
    Scalar(Value),
}

/// A mapping key as text (numbers and booleans as written by serde).
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(KeyText(match Raw::deserialize(d)? {
            Raw::Scalar(Value::String(s)) => s,
            Raw::Scalar(v) => v.to_string(),
            _ => "<complex key>".into(),
        }))
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Raw;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Raw, E> {
                Ok(Raw::Scalar(v.into()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw, E> {
                Ok(Raw::Scalar(v.into()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
                Ok(Raw::Scalar(v.into()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw, E> {
                Ok(Raw::Scalar(
                    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number),
                ))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw, E> {
                Ok(Raw::Scalar(v.into()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Raw, E> {
                Ok(Raw::Scalar(v.into()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Raw, E> {
                Ok(Raw::Scalar(Value::Null))
            }
            fn visit_none<E: de::Error>(self) -> Result<Raw, E> {
                Ok(Raw::Scalar(Value::Null))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
                Raw::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Raw, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(Raw::Seq(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Raw, A::Error> {
                let mut v = Vec::new();
                while let Some((k, x)) = a.next_entry()? {
                    v.push((k, x));
                }
                Ok(Raw::Map(v))
            }
        }
        d.deserialize_any(V)
    }
}

fn node(s: Spanned<Raw>) -> Node {
    let span = s.referenced.span();
    let bytes = span
        .byte_offset()
        .zip(span.byte_len())
        .map(|(o, l)| (o as usize, (o + l) as usize));
    let at = (s.referenced.line(), s.referenced.column());
    let kind = match s.value {
        Raw::Scalar(v) => Kind::Scalar(v),
        Raw::Seq(v) => Kind::Seq(v.into_iter().map(node).collect()),
        Raw::Map(v) => Kind::Map(
            v.into_iter()
                .map(|(k, x)| {
                    (
                        k.value.0,
                        (k.referenced.line(), k.referenced.column()),
                        node(x),
                    )
                })
                .collect(),
        ),
    };
    Node { at, bytes, kind }
}

/// Parse a document into a located tree (`None`: not YAML; the caller
/// reports the parser's own error).
pub fn parse(text: &str) -> Option<Node> {
    let mut o = serde_saphyr::Options::default();
    o.strict_booleans = true;
    serde_saphyr::from_str_with_options::<Spanned<Raw>>(text, o)
        .ok()
        .map(node)
}

impl Node {
    /// The value as JSON (for per-key type checks).
    pub fn to_json(&self) -> Value {
        match &self.kind {
            Kind::Scalar(v) => v.clone(),
            Kind::Seq(v) => Value::Array(v.iter().map(Node::to_json).collect()),
            Kind::Map(v) => {
                Value::Object(v.iter().map(|(k, _, x)| (k.clone(), x.to_json())).collect())
            }
        }
    }

    /// The value's text exactly as written (scalars), when known.
    pub fn raw<'t>(&self, text: &'t str) -> Option<&'t str> {
        let (a, b) = self.bytes?;
        text.get(a..b).map(str::trim)
    }

    /// The node at a key path (`retry.attempts`, `apis.0.name`).
    pub fn at_path(&self, path: &[String]) -> Option<(&Node, (u64, u64))> {
        let mut cur = self;
        let mut at = self.at;
        for seg in path {
            match &cur.kind {
                Kind::Map(v) => {
                    let (_, kat, x) = v.iter().find(|(k, ..)| k == seg)?;
                    at = *kat;
                    cur = x;
                }
                Kind::Seq(v) => {
                    cur = v.get(seg.parse::<usize>().ok()?)?;
                    at = cur.at;
                }
                Kind::Scalar(_) => return None,
            }
        }
        Some((cur, at))
    }
}

/// Resolve `$ref`s into `$defs` of the root schema.
fn resolve<'a>(root: &'a Value, s: &'a Value) -> &'a Value {
    let mut s = s;
    for _ in 0..16 {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => match r
                .strip_prefix("#/$defs/")
                .and_then(|n| root.get("$defs").and_then(|d| d.get(n)))
            {
                Some(t) => s = t,
                None => return s,
            },
            None => return s,
        }
    }
    s
}

/// The alternatives of a schema (`anyOf`/`oneOf` flattened, refs resolved).
fn variants<'a>(root: &'a Value, s: &'a Value, out: &mut Vec<&'a Value>) {
    let s = resolve(root, s);
    let mut any = false;
    for k in ["anyOf", "oneOf", "allOf"] {
        if let Some(list) = s.get(k).and_then(Value::as_array) {
            any = true;
            for v in list {
                variants(root, v, out);
            }
        }
    }
    if !any || s.get("properties").is_some() {
        out.push(s);
    }
}

/// Known keys of a mapping and the schema of each.
type Keys<'a> = Vec<(&'a str, &'a Value)>;

/// What a mapping may hold at this schema: `None` any key; `Some(keys)`
/// exactly these, with the schema of each.
fn keys_of<'a>(root: &'a Value, s: &'a Value) -> (Option<Keys<'a>>, Option<&'a Value>) {
    let mut vs = Vec::new();
    variants(root, s, &mut vs);
    let mut keys: Vec<(&str, &Value)> = Vec::new();
    let mut closed = false;
    let mut extra = None;
    for v in vs {
        if let Some(p) = v.get("properties").and_then(Value::as_object) {
            closed = true;
            keys.extend(p.iter().map(|(k, s)| (k.as_str(), s)));
        }
        match v.get("additionalProperties") {
            Some(Value::Bool(false)) | None => {}
            Some(a) => extra = Some(a),
        }
        if v.get("properties").is_none() && v.get("type").and_then(Value::as_str) == Some("object")
        {
            // A free map (`env`, `install_hints`).
            return (None, extra);
        }
    }
    if closed && extra.is_none() {
        (Some(keys), None)
    } else {
        (None, extra)
    }
}

fn items_of<'a>(root: &'a Value, s: &'a Value) -> Option<&'a Value> {
    let mut vs = Vec::new();
    variants(root, s, &mut vs);
    vs.into_iter().find_map(|v| v.get("items"))
}

/// "did you mean": the closest known key, if close enough.
pub fn suggest<'a>(key: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    known
        .map(|k| (strsim::jaro_winkler(key, k), k))
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// Keys the schema does not know, at every depth: (key path, location,
/// message).
pub fn unknown_keys(tree: &Node, schema: &Value) -> Vec<(String, (u64, u64), String)> {
    let mut out = Vec::new();
    walk(schema, schema, tree, &mut Vec::new(), &mut out);
    out
}

fn walk(
    root: &Value,
    s: &Value,
    n: &Node,
    path: &mut Vec<String>,
    out: &mut Vec<(String, (u64, u64), String)>,
) {
    match &n.kind {
        Kind::Map(entries) => {
            let (known, extra) = keys_of(root, s);
            for (k, at, v) in entries {
                path.push(k.clone());
                match &known {
                    Some(keys) => match keys.iter().find(|(name, _)| name == k) {
                        Some((_, ks)) => walk(root, ks, v, path, out),
                        None => {
                            let full = path.join(".");
                            let hint = suggest(k, keys.iter().map(|(name, _)| *name))
                                .map(|m| format!("; did you mean `{m}`?"))
                                .unwrap_or_default();
                            out.push((full.clone(), *at, format!("unknown key `{full}`{hint}")));
                        }
                    },
                    None => {
                        if let Some(e) = extra {
                            walk(root, e, v, path, out);
                        }
                    }
                }
                path.pop();
            }
        }
        Kind::Seq(items) => {
            if let Some(is) = items_of(root, s) {
                for (i, v) in items.iter().enumerate() {
                    path.push(i.to_string());
                    walk(root, is, v, path, out);
                    path.pop();
                }
            }
        }
        Kind::Scalar(_) => {}
    }
}

/// Type errors, one per top-level key (so every bad key is reported), each
/// at the location of the offending value with its key path:
/// `retry.attempts: expected a number, found "ten"`.
pub fn type_errors<T: serde::de::DeserializeOwned>(file: &Path, tree: &Node) -> Vec<Diagnostic> {
    let Kind::Map(entries) = &tree.kind else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, at, v) in entries {
        let mut one = serde_json::Map::new();
        one.insert(k.clone(), v.to_json());
        let res: Result<T, _> = serde_path_to_error::deserialize(Value::Object(one));
        if let Err(e) = res {
            let path: Vec<String> = e
                .path()
                .iter()
                .filter_map(|seg| match seg {
                    serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                    serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                    serde_path_to_error::Segment::Enum { variant } => Some(variant.clone()),
                    serde_path_to_error::Segment::Unknown => None,
                })
                .collect();
            let path = if path.is_empty() {
                vec![k.clone()]
            } else {
                path
            };
            let inner = e.into_inner().to_string();
            // An unknown key is pointed at the key, a bad value at the value.
            let on_key = inner.starts_with("unknown field");
            let (line, column) = tree.at_path(&path).map_or(*at, |(n, kat)| {
                if matches!(n.kind, Kind::Scalar(_)) && !on_key {
                    n.at
                } else {
                    kat
                }
            });
            out.push(Diagnostic {
                severity: Severity::Error,
                file: file.to_path_buf(),
                line,
                column,
                message: format!("{}: {}", path.join("."), friendly(&inner)),
            });
        }
    }
    out
}

/// serde_json's wording, in the terms of a YAML file:
/// `invalid type: string "ten", expected f64` → `expected a number, found "ten"`.
fn friendly(m: &str) -> String {
    let m = m.split(" at line ").next().unwrap_or(m);
    let Some((found, expected)) = m
        .strip_prefix("invalid type: ")
        .or_else(|| m.strip_prefix("invalid value: "))
        .and_then(|r| r.split_once(", expected "))
    else {
        return m.to_string();
    };
    let found = found
        .strip_prefix("string ")
        .or_else(|| found.strip_prefix("integer "))
        .or_else(|| found.strip_prefix("floating point "))
        .or_else(|| found.strip_prefix("boolean "))
        .unwrap_or(found);
    let expected = match expected {
        "f64" | "f32" => "a number",
        "u8" | "u16" | "u32" | "u64" | "usize" | "i32" | "i64" => "a whole number",
        "a string" => "text",
        "a sequence" => "a list",
        "a boolean" => "true or false",
        other => other,
    };
    format!("expected {expected}, found {found}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_are_located() {
        let t = parse("name: t\nretry:\n  atempts: 3\nlist:\n  - a: 1\n").unwrap();
        let Kind::Map(m) = &t.kind else { panic!() };
        assert_eq!(m[0].0, "name");
        assert_eq!(m[0].1, (1, 1));
        assert_eq!(m[1].1, (2, 1));
        let (n, at) = t.at_path(&["retry".into(), "atempts".into()]).unwrap();
        assert_eq!(at, (3, 3));
        assert_eq!(n.at, (3, 12));
        let (n, _) = t.at_path(&["list".into(), "0".into(), "a".into()]).unwrap();
        assert_eq!(n.at.0, 5);
    }

    #[test]
    fn raw_text_is_kept() {
        let text = "version: 1.0\n";
        let t = parse(text).unwrap();
        let (n, _) = t.at_path(&["version".into()]).unwrap();
        assert_eq!(n.raw(text), Some("1.0"));
    }
}
