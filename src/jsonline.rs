//! JSON objects assembled by hand for what is written on every run (the
//! audit and metrics records, the access log, the execute envelope). Keys are literals written as
//! they are; a string value is copied in one piece when it has nothing to
//! escape and goes through serde_json otherwise, so a line is byte for byte
//! what serde_json prints for the same fields (the records' tests compare
//! the two). serde_json escapes key and value a byte at a time, which was
//! an eighth of a `gathm serve` execute's instructions.

use serde::Serialize;

/// Append `s` as a JSON string.
pub fn push_str(buf: &mut Vec<u8>, s: &str) {
    if plain(s) {
        quote(buf, s);
    } else {
        let _ = serde_json::to_writer(&mut *buf, s);
    }
}

/// Append `s` between quotes, as it is.
fn quote(buf: &mut Vec<u8>, s: &str) {
    buf.reserve(s.len() + 2);
    buf.push(b'"');
    buf.extend_from_slice(s.as_bytes());
    buf.push(b'"');
}

/// Whether serde_json would copy `s` unchanged: no control character, quote
/// or backslash. Eight bytes at a time (the usual bit tricks: a byte below
/// 0x20, or a zero byte after xor with a quote or a backslash, sets its top
/// bit).
fn plain(s: &str) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH;
    let mut words = s.as_bytes().chunks_exact(8);
    for c in &mut words {
        let w = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        if below(w, 0x20) | below(w ^ (ONES * 0x22), 1) | below(w ^ (ONES * 0x5c), 1) != 0 {
            return false;
        }
    }
    !words
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// One JSON object being appended to a buffer, field by field, in the
/// order the fields are given.
pub struct Object<'a> {
    buf: &'a mut Vec<u8>,
    empty: bool,
}

impl<'a> Object<'a> {
    /// Open an object at the end of `buf`.
    pub fn start(buf: &'a mut Vec<u8>) -> Object<'a> {
        buf.push(b'{');
        Object { buf, empty: true }
    }

    fn key(&mut self, key: &'static str) -> &mut Vec<u8> {
        debug_assert!(plain(key), "a key with something to escape: {key:?}");
        if !self.empty {
            self.buf.push(b',');
        }
        self.empty = false;
        self.buf.push(b'"');
        self.buf.extend_from_slice(key.as_bytes());
        self.buf.extend_from_slice(b"\":");
        self.buf
    }

    /// A string field.
    pub fn str(&mut self, key: &'static str, v: &str) -> &mut Self {
        push_str(self.key(key), v);
        self
    }

    /// A string with nothing to escape by construction (a literal, an
    /// enum's name, an id, a timestamp): copied without the check.
    pub fn plain(&mut self, key: &'static str, v: &str) -> &mut Self {
        debug_assert!(plain(v), "a plain string to escape: {v:?}");
        quote(self.key(key), v);
        self
    }

    /// A string field, `null` when absent.
    pub fn opt_str(&mut self, key: &'static str, v: Option<&str>) -> &mut Self {
        match v {
            Some(s) => self.str(key, s),
            None => self.raw(key, "null"),
        }
    }

    /// An array of strings.
    pub fn strs(&mut self, key: &'static str, v: &[String]) -> &mut Self {
        let buf = self.key(key);
        buf.push(b'[');
        for (i, s) in v.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            push_str(buf, s);
        }
        buf.push(b']');
        self
    }

    /// An unsigned integer.
    pub fn u64(&mut self, key: &'static str, v: u64) -> &mut Self {
        let mut n = itoa::Buffer::new();
        self.key(key).extend_from_slice(n.format(v).as_bytes());
        self
    }

    /// A signed integer.
    pub fn i64(&mut self, key: &'static str, v: i64) -> &mut Self {
        let mut n = itoa::Buffer::new();
        self.key(key).extend_from_slice(n.format(v).as_bytes());
        self
    }

    /// `true` or `false`.
    pub fn bool(&mut self, key: &'static str, v: bool) -> &mut Self {
        self.raw(key, if v { "true" } else { "false" })
    }

    /// Any other value, through serde_json (enums, floats).
    pub fn value<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> &mut Self {
        let buf = self.key(key);
        let at = buf.len();
        if serde_json::to_writer(&mut *buf, v).is_err() {
            buf.truncate(at);
            buf.extend_from_slice(b"null");
        }
        self
    }

    /// A value already written as JSON.
    pub fn raw(&mut self, key: &'static str, json: &str) -> &mut Self {
        self.key(key).extend_from_slice(json.as_bytes());
        self
    }

    /// An array of objects, each written by `f`.
    pub fn objects<T>(
        &mut self,
        key: &'static str,
        items: &[T],
        mut f: impl FnMut(&mut Object<'_>, &T),
    ) -> &mut Self {
        let buf = self.key(key);
        buf.push(b'[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            let mut o = Object::start(buf);
            f(&mut o, item);
            o.end();
        }
        buf.push(b']');
        self
    }

    /// Close the object.
    pub fn end(self) {
        self.buf.push(b'}');
    }

    /// Close the object and end the line.
    pub fn end_line(self) {
        self.buf.extend_from_slice(b"}\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_what_serde_json_prints() {
        for s in [
            "",
            "plain",
            "a \"quoted\" word",
            "back\\slash",
            "line\nbreak\ttab\r",
            "nul\u{0}and\u{1f}unit",
            "del\u{7f} é ✓ 🙂",
            "</script>",
            &"x".repeat(100),
            &format!("{}\"", "y".repeat(70)),
            "12345678\\2345678",
            "1234567\u{1f}",
            "\u{80}\u{ff}\u{7ff} 0123456789abcdef",
            "aaaaaaa\u{0}bbbbbbbb",
        ] {
            let mut buf = Vec::new();
            push_str(&mut buf, s);
            assert_eq!(buf, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn every_ascii_byte_at_every_place_in_a_word() {
        for b in 0u8..0x80 {
            for at in 0..17 {
                for fill in ["a", "é"] {
                    let mut s = fill.repeat(at);
                    s.push(char::from(b));
                    s.push_str(&fill.repeat(9));
                    let mut buf = Vec::new();
                    push_str(&mut buf, &s);
                    assert_eq!(buf, serde_json::to_vec(&s).unwrap(), "{s:?}");
                    assert_eq!(plain(&s), b >= 0x20 && b != b'"' && b != b'\\', "{s:?}");
                }
            }
        }
    }

    #[test]
    fn an_object_is_what_serde_json_prints() {
        let mut buf = b"x".to_vec();
        let mut o = Object::start(&mut buf);
        o.str("a", "1\n")
            .plain("aa", "x")
            .opt_str("b", None)
            .opt_str("c", Some("d"))
            .strs("e", &["f".into(), "g\"".into()])
            .strs("h", &[])
            .u64("i", u64::MAX)
            .i64("j", -3)
            .bool("k", true)
            .value("l", &1.5f64)
            .raw("m", "{}")
            .objects("o", &[1u64, 2], |o, v| {
                o.u64("y", *v).bool("z", false);
            });
        o.end_line();
        let want = serde_json::json!({
            "a": "1\n", "aa": "x", "b": null, "c": "d", "e": ["f", "g\""], "h": [], "i": u64::MAX,
            "j": -3, "k": true, "l": 1.5, "m": {},
            "o": [{"y": 1, "z": false}, {"y": 2, "z": false}],
        });
        assert_eq!(String::from_utf8(buf).unwrap(), format!("x{want}\n"));
        let mut buf = Vec::new();
        Object::start(&mut buf).end_line();
        assert_eq!(buf, b"{}\n");
    }
}
