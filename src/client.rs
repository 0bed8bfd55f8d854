//! The outbound HTTP client (health probes, job callbacks): reqwest over
//! rustls with the `ring` crypto provider.
//!
//! reqwest's default provider, aws-lc, registers a static constructor that
//! probes the CPU at every process start, `gathm run` included, whether or
//! not any HTTP is done; with `ring` nothing runs until a client is built.

use std::time::Duration;

/// A blocking client with `timeout` for the whole request and for the
/// connection. `None` only if the TLS stack cannot be set up.
pub fn build(timeout: Duration) -> Option<reqwest::blocking::Client> {
    // Err means a provider is installed already (ours, from an earlier call).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("gathm/", env!("CARGO_PKG_VERSION")))
        .build()
        .ok()
}

/// An error with its chain of causes, innermost last: reqwest's own message
/// ("error sending request") hides the reason (refused, TLS, DNS).
pub fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn builds_with_the_ring_provider() {
        assert!(super::build(std::time::Duration::from_secs(1)).is_some());
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }

    #[test]
    fn describe_walks_the_cause_chain() {
        let inner = std::io::Error::other("connection refused");
        let outer = std::io::Error::other(Wrap(inner));
        assert_eq!(super::describe(&outer), "wrapped: connection refused");
    }

    #[derive(Debug)]
    struct Wrap(std::io::Error);
    impl std::fmt::Display for Wrap {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("wrapped")
        }
    }
    impl std::error::Error for Wrap {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
}
