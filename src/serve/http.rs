//! HTTP plumbing for `gathm serve`: the request and reply types the
//! handlers use, JSON error bodies, the security headers every response
//! carries, and validation of the JSON fields requests carry. The body is
//! read (bounded to 1 MiB, chunked bodies included) by the front-end in
//! `serve/mod.rs`.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::bodies::ErrorBody;

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
        let mut b = Vec::with_capacity(512);
        if serde_json::to_writer(&mut b, v).is_err() {
            b = b"{}".to_vec();
        }
        Reply::json_bytes(status, b)
    }

    /// A reply of JSON already serialised.
    pub fn json_bytes(status: u16, body: Vec<u8>) -> Reply {
        Reply {
            status,
            body,
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
    Reply::json(
        status,
        &ErrorBody {
            error: msg.to_string(),
            ..ErrorBody::default()
        },
    )
}

/// `{"error": msg, …extra}`: an [`ErrorBody`] (`extra` holds some of its
/// fields; a field it lacks is a bug, caught by debug builds and tests).
pub fn error_with(status: u16, msg: &str, extra: Value) -> Reply {
    let mut o = Map::new();
    o.insert("error".into(), msg.into());
    if let Value::Object(e) = extra {
        for (k, v) in e {
            o.entry(k).or_insert(v);
        }
    }
    let o = Value::Object(o);
    match ErrorBody::deserialize(&o) {
        Ok(body) => Reply::json(status, &body),
        Err(e) => {
            debug_assert!(false, "an error field ErrorBody does not describe: {e}");
            Reply::json(status, &o)
        }
    }
}

/// A request as the handlers see it: the head, the peer, and the body as
/// read by the front-end (bounded; an over-long body is kept as its 413).
#[derive(Debug)]
pub struct Req {
    /// Method (`GET`, …).
    pub method: axum::http::Method,
    /// Path, without the query.
    pub path: String,
    /// Query string (may be empty).
    pub query: String,
    /// Request headers.
    pub headers: axum::http::HeaderMap,
    /// The peer's address.
    pub peer: SocketAddr,
    /// The body, or the reply its reading produced (413, 400, 408).
    pub body: Result<Vec<u8>, Reply>,
}

/// The value of a request header (first occurrence, case-insensitive).
pub fn header<K: axum::http::header::AsHeaderName>(req: &Req, name: K) -> Option<&str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

/// `Sec-Fetch-Site` (the `http` crate has no constant for it; a
/// `HeaderName` looks up without parsing a name per request).
pub const SEC_FETCH_SITE: axum::http::HeaderName =
    axum::http::HeaderName::from_static("sec-fetch-site");

/// The reply for a body over [`MAX_BODY`].
pub fn too_large() -> Reply {
    error(413, "Request body too large").header("Connection", "close")
}

/// The body, at most [`MAX_BODY`] bytes (413 beyond, even when chunked).
pub fn read_body(req: &mut Req) -> Result<Vec<u8>, Reply> {
    std::mem::replace(&mut req.body, Ok(Vec::new()))
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
        Some(Value::String(s)) => split_args(s),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(error(400, "args must be an array of strings or a string")),
            })
            .collect::<Result<Vec<String>, Reply>>()
            .and_then(no_nul),
        Some(_) => Err(error(400, "args must be an array of strings or a string")),
    }
}

/// Split the string form of `args` like a shell would (`crate::words`:
/// quotes and backslashes, no expansion).
fn split_args(s: &str) -> Result<Vec<String>, Reply> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(Vec::new());
    }
    if s.contains('\0') {
        return Err(nul_error());
    }
    // NUL never appears in `s`, so it is one item.
    let mut items =
        crate::words::split_items(s, '\0').map_err(|e| error(400, &format!("args: {e}")))?;
    Ok(items.pop().unwrap_or_default())
}

fn nul_error() -> Reply {
    error(
        400,
        "args: an argument contains a NUL byte, which cannot be passed to a program",
    )
}

/// Refuse arguments the OS cannot pass (a NUL byte), before anything runs.
pub fn no_nul(args: Vec<String>) -> Result<Vec<String>, Reply> {
    if args.iter().any(|a| a.contains('\0')) {
        Err(nul_error())
    } else {
        Ok(args)
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn splits_like_a_shell_without_expansion() {
        let o = |v: Value| v.as_object().unwrap().clone();
        let split = |s: &str| args_field(&o(json!({ "args": s })));
        assert_eq!(split("a  b").unwrap(), ["a", "b"]);
        assert_eq!(
            split("'a b' \"c \\\"d\\\"\" e\\ f").unwrap(),
            ["a b", "c \"d\"", "e f"]
        );
        assert_eq!(split("'' $HOME").unwrap(), ["", "$HOME"]);
        assert!(split("'open").is_err());
        assert!(split("\"open").is_err());
        assert!(split("x\\").is_err());
        assert!(split("  ").unwrap().is_empty());
        assert_eq!(split("a\u{0}b").unwrap_err().status, 400);
        assert_eq!(
            args_field(&o(json!({"args": ["a\u{0}b"]})))
                .unwrap_err()
                .status,
            400
        );
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
