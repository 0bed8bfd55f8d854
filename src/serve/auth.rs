//! HTTP authentication for `gathm serve`: API keys from `GATHM_API_KEYS`
//! (`token:role,…`) and the legacy `GATHM_API_KEY` (admin), bearer tokens
//! compared in constant time, principals (a hash of the token, never the token
//! itself), and the browser defences: loopback-only service without keys
//! (DNS rebinding) and refusal of cross-origin requests.

use std::net::IpAddr;

use sha2::{Digest, Sha256};

/// The configured keys: digests of tokens and their roles.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    entries: Vec<([u8; 32], String)>,
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// A stable identifier: hex SHA-256 of the token, or `local` without keys.
    pub id: String,
    /// The role policies apply to.
    pub role: String,
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

impl Keys {
    /// Parse `GATHM_API_KEYS` and `GATHM_API_KEY`. A malformed entry (no `:`,
    /// empty token or role) is an error: the server must not start.
    pub fn parse(keys: Option<&str>, legacy: Option<&str>) -> Result<Keys, String> {
        let mut out = Keys::default();
        if let Some(keys) = keys {
            for (i, entry) in keys.split(',').enumerate() {
                let entry = entry.trim();
                if entry.is_empty() {
                    continue;
                }
                let Some((token, role)) = entry.split_once(':') else {
                    return Err(format!(
                        "GATHM_API_KEYS entry {} has no ':' (expected token:role)",
                        i + 1
                    ));
                };
                let (token, role) = (token.trim(), role.trim());
                if token.is_empty() || role.is_empty() {
                    return Err(format!(
                        "GATHM_API_KEYS entry {} has an empty {} (expected token:role)",
                        i + 1,
                        if token.is_empty() { "token" } else { "role" }
                    ));
                }
                out.entries
                    .push((digest(token.as_bytes()), role.to_string()));
            }
        }
        if out.entries.is_empty() && keys.is_some_and(|k| !k.is_empty()) {
            return Err(
                "GATHM_API_KEYS is set but has no token:role entry (unset it for loopback-only mode)"
                    .into(),
            );
        }
        if let Some(t) = legacy.map(str::trim).filter(|t| !t.is_empty()) {
            let d = digest(t.as_bytes());
            if !out.entries.iter().any(|(x, _)| *x == d) {
                out.entries.push((d, "admin".into()));
            }
        }
        Ok(out)
    }

    /// Whether any key is configured (auth on).
    pub fn enabled(&self) -> bool {
        !self.entries.is_empty()
    }

    /// How many keys are configured.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is configured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Resolve an `Authorization` header value. Every stored key is compared
    /// (in constant time, over fixed-length digests) whatever matches first.
    pub fn authenticate(&self, authorization: Option<&str>) -> Option<Principal> {
        let token = authorization?.trim();
        let token = token
            .strip_prefix("Bearer ")
            .or_else(|| token.strip_prefix("bearer "))?
            .trim();
        if token.is_empty() {
            return None;
        }
        let d = digest(token.as_bytes());
        let mut found: Option<&str> = None;
        for (k, role) in &self.entries {
            if constant_time_eq::constant_time_eq_32(k, &d) && found.is_none() {
                found = Some(role);
            }
        }
        found.map(|role| Principal {
            id: hex::encode(d),
            role: role.to_string(),
        })
    }
}

/// The principal used when no keys are configured (loopback only).
pub fn local() -> Principal {
    Principal {
        id: "local".into(),
        role: "admin".into(),
    }
}

/// The host part of a `Host` header (port and IPv6 brackets removed).
pub fn host_name(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// `localhost` or a loopback address.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host_name(host);
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Why a browser-originated request is refused, if it is.
pub fn cross_origin(
    origin: Option<&str>,
    sec_fetch_site: Option<&str>,
    host: Option<&str>,
) -> Option<&'static str> {
    if sec_fetch_site.is_some_and(|s| s.trim().eq_ignore_ascii_case("cross-site")) {
        return Some("Cross-site requests are not allowed");
    }
    let origin = origin?.trim();
    let own = host.map(|h| format!("http://{}", h.trim()));
    if origin.eq_ignore_ascii_case("null") || own.is_none_or(|o| !o.eq_ignore_ascii_case(origin)) {
        return Some("Cross-origin requests are not allowed");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_malformed_keys() {
        let k = Keys::parse(Some(" a:admin , b:readonly,"), Some("c")).unwrap();
        assert_eq!(k.len(), 3);
        for bad in [":admin", "a:", "admin", "a:b,:c", ",", " ", " , "] {
            assert!(Keys::parse(Some(bad), None).is_err(), "{bad}");
        }
        assert!(!Keys::parse(Some(""), None).unwrap().enabled());
        let k = Keys::parse(None, Some("a")).unwrap();
        assert_eq!(k.authenticate(Some("Bearer a")).unwrap().role, "admin");
        let k = Keys::parse(Some("a:user"), Some("a")).unwrap();
        assert_eq!(k.len(), 1);
        assert_eq!(k.authenticate(Some("Bearer a")).unwrap().role, "user");
        assert!(k.authenticate(Some("Bearer b")).is_none());
        assert!(k.authenticate(Some("a")).is_none());
        assert!(k.authenticate(None).is_none());
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:1",
            "127.9.9.9",
            "[::1]:80",
            "[::1]",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "evil.com",
            "evil.com:8080",
            "10.0.0.1",
            "localhost.evil.com",
            "",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn origins() {
        let h = Some("127.0.0.1:8080");
        assert_eq!(cross_origin(None, None, h), None);
        assert_eq!(cross_origin(Some("http://127.0.0.1:8080"), None, h), None);
        assert!(cross_origin(Some("http://evil.com"), None, h).is_some());
        assert!(cross_origin(Some("null"), None, h).is_some());
        assert!(cross_origin(None, Some("cross-site"), h).is_some());
        assert_eq!(cross_origin(None, Some("same-origin"), h), None);
    }
}
