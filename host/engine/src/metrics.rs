//! Prometheus metrics: runs started and ended by type and status,
//! activations and their duration, commit latency, inbox depth, plugin loads
//! and rejections. Served as text at `GET /metrics`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use std::collections::HashSet;
use std::sync::Mutex;

use wasmflow_core::RunStatus;
use wasmflow_core::limits::{MAX_METRIC_TYPES, METRICS_OVERFLOW_LABEL};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    workflow_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndLabel {
    workflow_type: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActivationLabel {
    workflow_type: String,
    outcome: String,
}

/// The host's metrics.
pub struct Metrics {
    registry: Registry,
    runs_started: Family<TypeLabel, Counter>,
    runs_ended: Family<EndLabel, Counter>,
    activations: Family<ActivationLabel, Counter>,
    activation_seconds: Family<TypeLabel, Histogram>,
    commit_seconds: Histogram,
    inbox_depth: Gauge,
    plugin_loads: Counter,
    plugin_rejections: Counter,
    /// The workflow types labelled so far: at most `max_types`; runs of
    /// further types count under [`METRICS_OVERFLOW_LABEL`].
    labelled: Mutex<HashSet<String>>,
    max_types: usize,
}

fn seconds_histogram() -> Histogram {
    // 10 µs .. ~10 s.
    Histogram::new(exponential_buckets(0.000_01, 4.0, 11))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("wasmflow");
        let runs_started = Family::<TypeLabel, Counter>::default();
        let runs_ended = Family::<EndLabel, Counter>::default();
        let activations = Family::<ActivationLabel, Counter>::default();
        let activation_seconds =
            Family::<TypeLabel, Histogram>::new_with_constructor(seconds_histogram as fn() -> _);
        let commit_seconds = seconds_histogram();
        let inbox_depth = Gauge::default();
        let plugin_loads = Counter::default();
        let plugin_rejections = Counter::default();
        registry.register(
            "runs_started",
            "Runs started (root and child runs), by workflow type",
            runs_started.clone(),
        );
        registry.register(
            "runs_ended",
            "Runs that reached a terminal state, by workflow type and status",
            runs_ended.clone(),
        );
        registry.register(
            "activations",
            "Activations executed, by workflow type and outcome (ok, failed)",
            activations.clone(),
        );
        registry.register(
            "activation_duration_seconds",
            "Time in the sandbox per activation, by workflow type",
            activation_seconds.clone(),
        );
        registry.register(
            "commit_duration_seconds",
            "Time from handing an activation's commit to storage to its durable acknowledgement",
            commit_seconds.clone(),
        );
        registry.register(
            "inbox_depth",
            "Events waiting in inboxes, all runs together",
            inbox_depth.clone(),
        );
        registry.register("plugin_loads", "Plugin files loaded", plugin_loads.clone());
        registry.register(
            "plugin_rejections",
            "Plugin files rejected",
            plugin_rejections.clone(),
        );
        Metrics {
            registry,
            runs_started,
            runs_ended,
            activations,
            activation_seconds,
            commit_seconds,
            inbox_depth,
            plugin_loads,
            plugin_rejections,
            labelled: Mutex::default(),
            max_types: MAX_METRIC_TYPES,
        }
    }
}

impl Metrics {
    /// Metrics that label at most `max_types` workflow types.
    #[cfg(test)]
    fn with_max_types(max_types: usize) -> Self {
        Metrics {
            max_types,
            ..Metrics::default()
        }
    }

    /// The label of `workflow_type`: itself for the first `max_types`
    /// types seen, the overflow label after that. Type names come from
    /// guests; this keeps the number of series bounded.
    fn type_label(&self, workflow_type: &str) -> String {
        let Ok(mut labelled) = self.labelled.lock() else {
            return METRICS_OVERFLOW_LABEL.to_owned();
        };
        if labelled.contains(workflow_type) {
            return workflow_type.to_owned();
        }
        if labelled.len() < self.max_types {
            labelled.insert(workflow_type.to_owned());
            return workflow_type.to_owned();
        }
        METRICS_OVERFLOW_LABEL.to_owned()
    }

    pub fn run_started(&self, workflow_type: &str) {
        self.runs_started
            .get_or_create(&TypeLabel {
                workflow_type: self.type_label(workflow_type),
            })
            .inc();
    }

    pub fn run_ended(&self, workflow_type: &str, status: RunStatus) {
        self.runs_ended
            .get_or_create(&EndLabel {
                workflow_type: self.type_label(workflow_type),
                status: status.as_str().to_owned(),
            })
            .inc();
    }

    pub fn activation(&self, workflow_type: &str, ok: bool, took: Duration) {
        self.activations
            .get_or_create(&ActivationLabel {
                workflow_type: self.type_label(workflow_type),
                outcome: if ok { "ok" } else { "failed" }.to_owned(),
            })
            .inc();
        self.activation_seconds
            .get_or_create(&TypeLabel {
                workflow_type: self.type_label(workflow_type),
            })
            .observe(took.as_secs_f64());
    }

    pub fn commit(&self, took: Duration) {
        self.commit_seconds.observe(took.as_secs_f64());
    }

    pub fn plugin_loaded(&self) {
        self.plugin_loads.inc();
    }

    pub fn plugin_rejected(&self) {
        self.plugin_rejections.inc();
    }

    /// The text exposition format, with the inbox depth as of now.
    pub fn encode(&self, inbox_depth: u64) -> String {
        self.inbox_depth
            .set(i64::try_from(inbox_depth).unwrap_or(i64::MAX));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_as_prometheus_text() {
        let m = Metrics::default();
        m.run_started("Order");
        m.run_ended("Order", RunStatus::Completed);
        m.activation("Order", true, Duration::from_micros(50));
        m.commit(Duration::from_millis(2));
        m.plugin_loaded();
        let text = m.encode(7);
        assert!(
            text.contains(r#"wasmflow_runs_started_total{workflow_type="Order"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"wasmflow_runs_ended_total{workflow_type="Order",status="completed"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"wasmflow_activations_total{workflow_type="Order",outcome="ok"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("wasmflow_commit_duration_seconds_count 1"),
            "{text}"
        );
        assert!(text.contains("wasmflow_inbox_depth 7"), "{text}");
        assert!(text.contains("wasmflow_plugin_loads_total 1"), "{text}");
    }

    #[test]
    fn workflow_types_beyond_the_bound_share_one_label() {
        let m = Metrics::with_max_types(2);
        for ty in ["A", "B", "C", "D", "A"] {
            m.run_started(ty);
            m.activation(ty, true, Duration::from_micros(5));
        }
        m.run_ended("E", RunStatus::Failed);
        let text = m.encode(0);
        assert!(
            text.contains(r#"wasmflow_runs_started_total{workflow_type="A"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"wasmflow_runs_started_total{workflow_type="B"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"wasmflow_runs_started_total{workflow_type="_other"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"wasmflow_runs_ended_total{workflow_type="_other",status="failed"} 1"#),
            "{text}"
        );
        assert!(
            !text.contains(r#""C""#) && !text.contains(r#""E""#),
            "{text}"
        );
    }
}
