//! In-process counters for `GET /metrics` and their Prometheus text
//! rendering: requests by route template and status, a request-latency
//! histogram per route, executions by tool and outcome. Gauges that describe
//! state (queue depth, running jobs, breakers) are passed in at render time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::api::Envelope;

/// Upper bounds (seconds) of the latency buckets.
pub const BUCKETS: [f64; 11] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0,
];

#[derive(Debug, Default, Clone)]
struct Hist {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The server's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, &'static str, u16), u64>>,
    latency: Mutex<BTreeMap<&'static str, Hist>>,
    executions: Mutex<BTreeMap<(String, String), u64>>,
    /// Access-log lines dropped because the log writer fell behind.
    pub access_log_dropped: AtomicU64,
}

/// A gauge sample added at render time.
#[derive(Debug, Clone)]
pub struct Gauge {
    /// Metric name.
    pub name: &'static str,
    /// Help text.
    pub help: &'static str,
    /// Samples: labels and value.
    pub samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

/// Escape a label value (backslash, quote, newline).
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(l: &[(&str, String)]) -> String {
    if l.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = l
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// The outcome label of a run: its reason, else its status.
pub fn outcome(env: &Envelope) -> String {
    match env.reason {
        Some(r) => serde_json::to_value(r)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_else(|| "error".into()),
        None => match env.status {
            crate::api::RunStatus::Success => "success".into(),
            crate::api::RunStatus::Error => "error".into(),
        },
    }
}

impl Metrics {
    /// Count one request and its latency.
    pub fn request(&self, method: &str, route: &'static str, status: u16, secs: f64) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((method.to_string(), route, status)).or_insert(0) += 1;
        }
        if let Ok(mut m) = self.latency.lock() {
            let h = m.entry(route).or_default();
            for (i, b) in BUCKETS.iter().enumerate() {
                if secs <= *b {
                    h.counts[i] += 1;
                }
            }
            h.count += 1;
            h.sum += secs;
        }
    }

    /// Count one execution (sync or job). A tool that does not exist gets
    /// an empty tool label, so invented names add no series.
    pub fn execution(&self, env: &Envelope) {
        let tool = if env.reason == Some(crate::api::Reason::NotFound) {
            String::new()
        } else {
            env.tool.clone()
        };
        if let Ok(mut m) = self.executions.lock() {
            *m.entry((tool, outcome(env))).or_insert(0) += 1;
        }
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self, gauges: &[Gauge]) -> String {
        let mut s = String::with_capacity(4096);
        s.push_str("# HELP gathm_http_requests_total HTTP requests by method, route template and status.\n# TYPE gathm_http_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((method, route, status), n) in m.iter() {
                let _ = writeln!(
                    s,
                    "gathm_http_requests_total{} {n}",
                    labels(&[
                        ("method", method.clone()),
                        ("route", route.to_string()),
                        ("status", status.to_string())
                    ])
                );
            }
        }
        s.push_str("# HELP gathm_http_request_duration_seconds Request latency by route template.\n# TYPE gathm_http_request_duration_seconds histogram\n");
        if let Ok(m) = self.latency.lock() {
            for (route, h) in m.iter() {
                for (i, b) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        s,
                        "gathm_http_request_duration_seconds_bucket{} {}",
                        labels(&[("route", route.to_string()), ("le", b.to_string())]),
                        h.counts[i]
                    );
                }
                let _ = writeln!(
                    s,
                    "gathm_http_request_duration_seconds_bucket{} {}",
                    labels(&[("route", route.to_string()), ("le", "+Inf".into())]),
                    h.count
                );
                let l = labels(&[("route", route.to_string())]);
                let _ = writeln!(s, "gathm_http_request_duration_seconds_sum{l} {}", h.sum);
                let _ = writeln!(
                    s,
                    "gathm_http_request_duration_seconds_count{l} {}",
                    h.count
                );
            }
        }
        s.push_str("# HELP gathm_executions_total Tool runs (sync and jobs) by tool and outcome.\n# TYPE gathm_executions_total counter\n");
        if let Ok(m) = self.executions.lock() {
            for ((tool, outcome), n) in m.iter() {
                let _ = writeln!(
                    s,
                    "gathm_executions_total{} {n}",
                    labels(&[("tool", tool.clone()), ("outcome", outcome.clone())])
                );
            }
        }
        let _ = writeln!(
            s,
            "# HELP gathm_access_log_dropped_total Access-log lines dropped under load.\n# TYPE gathm_access_log_dropped_total counter\ngathm_access_log_dropped_total {}",
            self.access_log_dropped.load(Ordering::Relaxed)
        );
        for g in gauges {
            let _ = writeln!(s, "# HELP {} {}\n# TYPE {} gauge", g.name, g.help, g.name);
            for (l, v) in &g.samples {
                let _ = writeln!(s, "{}{} {v}", g.name, labels(l));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.request("GET", "/api/v1/ping", 200, 0.0001);
        m.request("GET", "/api/v1/ping", 200, 2.0);
        let text = m.render(&[Gauge {
            name: "gathm_jobs_running",
            help: "Running jobs.",
            samples: vec![(vec![], 3.0)],
        }]);
        assert!(text.contains(
            "gathm_http_requests_total{method=\"GET\",route=\"/api/v1/ping\",status=\"200\"} 2"
        ));
        assert!(text.contains(
            "gathm_http_request_duration_seconds_bucket{route=\"/api/v1/ping\",le=\"0.0005\"} 1"
        ));
        assert!(text.contains("gathm_jobs_running 3"));
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
