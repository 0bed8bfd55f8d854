//! The server's metrics for `GET /metrics`, kept in a `prometheus-client`
//! registry with typed label sets, so cardinality is bounded by
//! construction: the method is one of the known methods or `other`, the
//! route is a static template or `unmatched`, the status a number, the tool
//! label only a tool that exists (an unknown one is counted with an empty
//! tool), the outcome one of a fixed set. Gauges that describe state (queue
//! depth, running jobs, streams, breakers) are set from a [`Snapshot`] at
//! render time. The exposition is the Prometheus text format 0.0.4 (what
//! `promtool check metrics` reads).

use std::sync::Mutex;

use axum::http::Method;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::api::{Envelope, Reason, RunStatus};

/// Upper bounds (seconds) of the latency buckets.
pub const BUCKETS: [f64; 11] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0,
];

/// A request method as a label: the known ones, else `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
pub enum MethodLabel {
    GET,
    POST,
    PUT,
    DELETE,
    HEAD,
    OPTIONS,
    PATCH,
    TRACE,
    CONNECT,
    other,
}

impl From<&Method> for MethodLabel {
    fn from(m: &Method) -> MethodLabel {
        match *m {
            Method::GET => MethodLabel::GET,
            Method::POST => MethodLabel::POST,
            Method::PUT => MethodLabel::PUT,
            Method::DELETE => MethodLabel::DELETE,
            Method::HEAD => MethodLabel::HEAD,
            Method::OPTIONS => MethodLabel::OPTIONS,
            Method::PATCH => MethodLabel::PATCH,
            Method::TRACE => MethodLabel::TRACE,
            Method::CONNECT => MethodLabel::CONNECT,
            _ => MethodLabel::other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: MethodLabel,
    route: &'static str,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ExecutionLabels {
    tool: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SlotLabels {
    schedule: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ScheduleLabels {
    schedule: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct GroupLabels {
    group: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct MonitorLabels {
    tool: String,
    what: &'static str,
    to: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BreakerLabels {
    tool: String,
    state: &'static str,
}

/// State gauges read at render time.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Jobs waiting to run.
    pub queued: usize,
    /// Jobs running now.
    pub running: usize,
    /// Stored jobs by status.
    pub by_status: Vec<(&'static str, usize)>,
    /// Open SSE streams.
    pub streams: usize,
    /// Tool runs from requests holding an execution slot.
    pub executions_running: usize,
    /// Open HTTP connections.
    pub connections_open: usize,
    /// Accepting work.
    pub ready: bool,
    /// Breaker state per tool (`closed`, `half_open`, `open`).
    pub breakers: Vec<(String, String)>,
    /// Concurrency groups of gathm.yaml: (name, slots held, runs waiting, max).
    pub groups: Vec<(String, u32, usize, u32)>,
}

#[derive(Default)]
struct StateGauges {
    queued: Gauge,
    running: Gauge,
    jobs: Family<StatusLabels, Gauge>,
    streams: Gauge,
    executions_running: Gauge,
    connections_open: Gauge,
    ready: Gauge,
    breakers: Family<BreakerLabels, Gauge>,
    group_held: Family<GroupLabels, Gauge>,
    group_waiting: Family<GroupLabels, Gauge>,
    group_max: Family<GroupLabels, Gauge>,
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    executions: Family<ExecutionLabels, Counter>,
    monitor: Family<MonitorLabels, Counter>,
    slots: Family<SlotLabels, Counter>,
    lag: Family<ScheduleLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Access-log lines dropped because the log writer fell behind.
    pub access_log_dropped: Counter,
    /// Connections refused at `GATHM_MAX_CONNECTIONS`.
    pub connections_refused: Counter,
    state: StateGauges,
    /// Rendering sets the state gauges: one render at a time.
    render: Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: Family<RouteLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        let executions = Family::<ExecutionLabels, Counter>::default();
        let monitor = Family::<MonitorLabels, Counter>::default();
        let slots = Family::<SlotLabels, Counter>::default();
        let lag = Family::<ScheduleLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let access_log_dropped = Counter::default();
        let connections_refused = Counter::default();
        let state = StateGauges::default();
        registry.register(
            "gathm_http_requests",
            "HTTP requests by method, route template and status.",
            requests.clone(),
        );
        registry.register(
            "gathm_http_request_duration_seconds",
            "Request latency by route template.",
            latency.clone(),
        );
        registry.register(
            "gathm_executions",
            "Tool runs (sync and jobs) by tool and outcome.",
            executions.clone(),
        );
        registry.register(
            "gathm_schedule_slots",
            "Schedule slots by schedule and outcome (submitted, skipped, missed, failed).",
            slots.clone(),
        );
        registry.register(
            "gathm_schedule_lag_seconds",
            "Seconds between a schedule's last slot time and its submission.",
            lag.clone(),
        );
        registry.register(
            "gathm_group_slots_held",
            "Concurrency-group slots held now, across processes.",
            state.group_held.clone(),
        );
        registry.register(
            "gathm_group_waiters",
            "Runs waiting for a concurrency-group slot, across processes.",
            state.group_waiting.clone(),
        );
        registry.register(
            "gathm_group_max_concurrent",
            "A concurrency group's max_concurrent.",
            state.group_max.clone(),
        );
        registry.register(
            "gathm_monitor_transitions",
            "Health and breaker transitions seen by the monitor (GATHM_MONITOR_INTERVAL), by tool, kind and new state.",
            monitor.clone(),
        );
        registry.register(
            "gathm_access_log_dropped",
            "Access-log lines dropped under load.",
            access_log_dropped.clone(),
        );
        registry.register(
            "gathm_http_connections_refused",
            "Connections refused with a 503 at GATHM_MAX_CONNECTIONS.",
            connections_refused.clone(),
        );
        let gauges: [(&str, &str, &Gauge); 6] = [
            (
                "gathm_jobs_queue_depth",
                "Jobs waiting to run.",
                &state.queued,
            ),
            ("gathm_jobs_running", "Jobs running now.", &state.running),
            ("gathm_sse_streams", "Open SSE streams.", &state.streams),
            (
                "gathm_executions_running",
                "Tool runs from requests holding an execution slot now.",
                &state.executions_running,
            ),
            (
                "gathm_http_connections_open",
                "Open HTTP connections.",
                &state.connections_open,
            ),
            (
                "gathm_ready",
                "1 while accepting work, 0 while shutting down.",
                &state.ready,
            ),
        ];
        for (name, help, g) in gauges {
            registry.register(name, help, g.clone());
        }
        registry.register("gathm_jobs", "Stored jobs by status.", state.jobs.clone());
        registry.register(
            "gathm_breaker_state",
            "Circuit-breaker state per tool (1 for the current state).",
            state.breakers.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            executions,
            monitor,
            slots,
            lag,
            access_log_dropped,
            connections_refused,
            state,
            render: Mutex::new(()),
        }
    }
}

/// The outcome label of a run: its reason, else its status.
pub fn outcome_label(env: &Envelope) -> &'static str {
    match env.reason {
        Some(Reason::Timeout) => "timeout",
        Some(Reason::CircuitOpen) => "circuit_open",
        Some(Reason::RateLimited) => "rate_limited",
        Some(Reason::Denied) => "denied",
        Some(Reason::ApprovalRequired) => "approval_required",
        Some(Reason::NotFound) => "not_found",
        Some(Reason::FallbackExhausted) => "fallback_exhausted",
        Some(Reason::Interrupted) => "interrupted",
        Some(Reason::NotExecutable) => "not_executable",
        Some(Reason::ConcurrencyLimit) => "concurrency_limit",
        Some(Reason::OutputLimit) => "output_limit",
        Some(Reason::StateUnavailable) => "state_unavailable",
        Some(Reason::StorageFull) => "storage_full",
        None => match env.status {
            RunStatus::Success => "success",
            RunStatus::Error => "error",
        },
    }
}

/// The outcome of a run as text (the job store's failure reason).
pub fn outcome(env: &Envelope) -> String {
    outcome_label(env).to_string()
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Metrics {
    /// Count one request and its latency.
    pub fn request(&self, method: &Method, route: &'static str, status: u16, secs: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.into(),
                route,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels { route })
            .observe(secs);
    }

    /// Count one execution (sync or job). A tool that does not exist gets
    /// an empty tool label, so invented names add no series.
    /// A schedule slot's outcome (`submitted`, `skipped`, `missed`,
    /// `failed`), and for a submitted slot its lag in seconds. Schedules come
    /// from gathm.yaml, so the cardinality is bounded.
    pub fn schedule_slot(&self, schedule: &str, outcome: &str, lag: Option<f64>) {
        let outcome: &'static str = match outcome {
            "submitted" => "submitted",
            "skipped" => "skipped",
            "missed" => "missed",
            "failed" => "failed",
            _ => "other",
        };
        self.slots
            .get_or_create(&SlotLabels {
                schedule: schedule.to_string(),
                outcome,
            })
            .inc();
        if let Some(l) = lag {
            self.lag
                .get_or_create(&ScheduleLabels {
                    schedule: schedule.to_string(),
                })
                .set(l);
        }
    }

    /// A monitor transition (`what`: `health` or `breaker`; `to`: the new
    /// state). Tools come from the registry and states from a fixed set, so
    /// the cardinality is bounded.
    pub fn monitor_transition(&self, tool: &str, what: &str, to: &str) {
        let what = if what == "breaker" {
            "breaker"
        } else {
            "health"
        };
        let to = match to {
            "closed" | "open" | "half_open" | "healthy" | "degraded" | "unhealthy" => to,
            _ => "other",
        };
        self.monitor
            .get_or_create(&MonitorLabels {
                tool: tool.to_string(),
                what,
                to: to.to_string(),
            })
            .inc();
    }

    pub fn execution(&self, env: &Envelope) {
        let tool = if env.reason == Some(Reason::NotFound) {
            String::new()
        } else {
            env.tool.clone()
        };
        self.executions
            .get_or_create(&ExecutionLabels {
                tool,
                outcome: outcome_label(env),
            })
            .inc();
    }

    /// The Prometheus text exposition (format 0.0.4) with `snap`'s gauges.
    pub fn render(&self, snap: &Snapshot) -> String {
        let _one = self.render.lock().unwrap_or_else(|e| e.into_inner());
        let s = &self.state;
        s.queued.set(count(snap.queued));
        s.running.set(count(snap.running));
        s.streams.set(count(snap.streams));
        s.executions_running.set(count(snap.executions_running));
        s.connections_open.set(count(snap.connections_open));
        s.ready.set(i64::from(snap.ready));
        s.jobs.clear();
        for (status, n) in &snap.by_status {
            s.jobs
                .get_or_create(&StatusLabels { status })
                .set(count(*n));
        }
        s.breakers.clear();
        for (tool, current) in &snap.breakers {
            for state in ["closed", "half_open", "open"] {
                s.breakers
                    .get_or_create(&BreakerLabels {
                        tool: tool.clone(),
                        state,
                    })
                    .set(i64::from(current == state));
            }
        }
        s.group_held.clear();
        s.group_waiting.clear();
        s.group_max.clear();
        for (group, held, waiting, max) in &snap.groups {
            let l = GroupLabels {
                group: group.clone(),
            };
            s.group_held.get_or_create(&l).set(i64::from(*held));
            s.group_waiting.get_or_create(&l).set(count(*waiting));
            s.group_max.get_or_create(&l).set(i64::from(*max));
        }
        let mut om = String::with_capacity(4096);
        let _ = prometheus_client::encoding::text::encode_registry(&mut om, &self.registry);
        to_prometheus_text(&om)
    }
}

/// OpenMetrics text (what `prometheus-client` writes) to the Prometheus text
/// format 0.0.4: counters are described under their `_total` sample name,
/// and `# UNIT` / `# EOF` lines go.
fn to_prometheus_text(om: &str) -> String {
    let counters: Vec<&str> = om
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(om.len() + 64);
    for line in om.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let described = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{p}{name}_total {tail}"))
        });
        match described {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.request(&Method::GET, "/api/v1/ping", 200, 0.0001);
        m.request(&Method::GET, "/api/v1/ping", 200, 2.0);
        m.request(
            &Method::from_bytes(b"BREW").unwrap(),
            "/api/v1/ping",
            405,
            0.0001,
        );
        let text = m.render(&Snapshot {
            running: 3,
            ready: true,
            ..Snapshot::default()
        });
        assert!(text.contains(
            "gathm_http_requests_total{method=\"GET\",route=\"/api/v1/ping\",status=\"200\"} 2"
        ));
        assert!(text.contains("method=\"other\""));
        assert!(text.contains("# TYPE gathm_http_requests_total counter"));
        assert!(
            text.contains(
                "gathm_http_request_duration_seconds_bucket{le=\"0.0005\",route=\"/api/v1/ping\"} 2"
            ) || text.contains(
                "gathm_http_request_duration_seconds_bucket{route=\"/api/v1/ping\",le=\"0.0005\"} 2"
            )
        );
        assert!(text.contains("gathm_jobs_running 3"));
        assert!(!text.contains("# EOF"));
    }
}
