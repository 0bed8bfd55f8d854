//! HTTP plumbing for `gathm serve` on top of tiny_http: the reply type, JSON
//! error bodies, the security headers every response carries, bounded body
//! reading (1 MiB, checked while reading, chunked bodies included), request
//! headers, and validation of the JSON fields requests carry.

use std::io::Read;

use serde::Serialize;
use serde_json::{Map, Value, json};

/// Largest accepted request body.
pub const MAX_BODY: usize = 1 << 20;

/// Headers on every response.
pub const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
    (
        "Content-Security-Policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
];

/// A complete response.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Content type.
    pub content_type: &'static str,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
}

impl Reply {
    /// A JSON reply.
    pub fn json<T: Serialize + ?Sized>(status: u16, v: &T) -> Reply {
        Reply {
            status,
            body: serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec()),
            content_type: "application/json",
            headers: Vec::new(),
        }
    }

    /// A plain-text reply.
    pub fn text(status: u16, content_type: &'static str, s: String) -> Reply {
        Reply {
            status,
            body: s.into_bytes(),
            content_type,
            headers: Vec::new(),
        }
    }

    /// Add a header.
    pub fn header(mut self, k: &str, v: impl Into<String>) -> Reply {
        self.headers.push((k.to_string(), v.into()));
        self
    }
}

/// `{"error": msg}`.
pub fn error(status: u16, msg: &str) -> Reply {
    Reply::json(status, &json!({ "error": msg }))
}

/// `{"error": msg, …extra}`.
pub fn error_with(status: u16, msg: &str, extra: Value) -> Reply {
    let mut o = Map::new();
    o.insert("error".into(), msg.into());
    if let Value::Object(e) = extra {
        for (k, v) in e {
            o.entry(k).or_insert(v);
        }
    }
    Reply::json(status, &Value::Object(o))
}

/// The value of a request header (first occurrence, case-insensitive).
pub fn header<'a>(req: &'a tiny_http::Request, name: &str) -> Option<&'a str> {
    req.headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// Read the body, at most [`MAX_BODY`] bytes (413 beyond, even when chunked).
pub fn read_body(req: &mut tiny_http::Request) -> Result<Vec<u8>, Reply> {
    let too_large = || error(413, "Request body too large").header("Connection", "close");
    if req.body_length().is_some_and(|n| n > MAX_BODY) {
        return Err(too_large());
    }
    let mut buf = Vec::new();
    if let Err(e) = req
        .as_reader()
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut buf)
    {
        return Err(error(400, &format!("could not read the request body: {e}")));
    }
    if buf.len() > MAX_BODY {
        return Err(too_large());
    }
    Ok(buf)
}

/// Parse a JSON object body; an empty body is `{}` when `optional`.
pub fn json_object(body: &[u8], optional: bool) -> Result<Map<String, Value>, Reply> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return if optional {
            Ok(Map::new())
        } else {
            Err(error(400, "a JSON object body is required"))
        };
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(error(400, "the body must be a JSON object")),
        Err(e) => Err(error(400, &format!("malformed JSON: {e}"))),
    }
}

/// `args`: absent/null → `[]`; an array of strings; or a string split like a
/// shell would (quotes and backslashes, no expansion).
pub fn args_field(o: &Map<String, Value>) -> Result<Vec<String>, Reply> {
    match o.get("args") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => split_args(s).map_err(|m| error(400, &format!("args: {m}"))),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(error(400, "args must be an array of strings or a string")),
            })
            .collect(),
        Some(_) => Err(error(400, "args must be an array of strings or a string")),
    }
}

/// `timeout`: absent/null → `None`; a number of seconds in 1..=600.
pub fn timeout_field(o: &Map<String, Value>) -> Result<Option<f64>, Reply> {
    match o.get("timeout") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(t) if (1.0..=600.0).contains(&t) => Ok(Some(t)),
            _ => Err(error(400, "timeout must be between 1 and 600 seconds")),
        },
        Some(_) => Err(error(400, "timeout must be a number of seconds")),
    }
}

/// An optional string field.
pub fn string_field(o: &Map<String, Value>, key: &str) -> Result<Option<String>, Reply> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(error(400, &format!("{key} must be a string"))),
    }
}

/// Split a string into arguments: whitespace separates; `'…'` is literal;
/// `"…"` allows `\"` and `\\`; a backslash outside quotes escapes the next
/// character. Nothing is expanded.
pub fn split_args(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(x @ ('"' | '\\')) => cur.push(x),
                            Some(x) => {
                                cur.push('\\');
                                cur.push(x);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(x) => cur.push(x),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(x) => cur.push(x),
                    None => return Err("trailing backslash".into()),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_a_shell_without_expansion() {
        assert_eq!(split_args("a  b").unwrap(), ["a", "b"]);
        assert_eq!(
            split_args("'a b' \"c \\\"d\\\"\" e\\ f").unwrap(),
            ["a b", "c \"d\"", "e f"]
        );
        assert_eq!(split_args("'' $HOME").unwrap(), ["", "$HOME"]);
        assert!(split_args("'open").is_err());
        assert!(split_args("\"open").is_err());
        assert!(split_args("x\\").is_err());
        assert!(split_args("  ").unwrap().is_empty());
    }

    #[test]
    fn field_validation() {
        let o = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(args_field(&o(json!({}))).unwrap(), Vec::<String>::new());
        assert_eq!(
            args_field(&o(json!({"args": ["a", "b c"]}))).unwrap(),
            ["a", "b c"]
        );
        assert!(args_field(&o(json!({"args": [1]}))).is_err());
        assert!(args_field(&o(json!({"args": 5}))).is_err());
        assert_eq!(timeout_field(&o(json!({"timeout": 5}))).unwrap(), Some(5.0));
        assert!(timeout_field(&o(json!({"timeout": 0}))).is_err());
        assert!(timeout_field(&o(json!({"timeout": 601}))).is_err());
        assert!(timeout_field(&o(json!({"timeout": "5"}))).is_err());
        assert!(json_object(b"[1]", false).is_err());
        assert!(json_object(b"{", false).is_err());
        assert!(json_object(b"", false).is_err());
        assert!(json_object(b"", true).unwrap().is_empty());
    }
}
