//! Prometheus metrics: deliveries by outcome, attempt latency, per-endpoint failures, and
//! queue depth and lag read from the store at scrape time.
//!
//! Two registries: what anyone may scrape (installation-wide totals), and the per-endpoint
//! series, which name endpoints of every shop and are served only with `HERALD_METRICS_TOKEN`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::Mutex;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabel {
    pub endpoint_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    /// Per-endpoint series: served only to scrapers holding the metrics token.
    private: Mutex<Registry>,
    /// Attempts by outcome: succeeded, retrying, failed, held.
    pub attempts: Family<OutcomeLabel, Counter>,
    pub attempt_seconds: Histogram,
    pub endpoint_failures: Family<EndpointLabel, Counter>,
    pub events_published: Counter,
    /// Publish requests per group commit, and how long each group's transaction took.
    pub publish_group_requests: Histogram,
    pub publish_commit_seconds: Histogram,
    /// Claim queries run: steady when idle, so a busy loop shows.
    pub claim_rounds: Counter,
    /// Rows retention removed (deliveries, attempts, events, alerts).
    pub purged: Counter,
    pub queue_depth: Family<StatusLabel, Gauge>,
    pub queue_lag_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("herald");
        let attempts = Family::<OutcomeLabel, Counter>::default();
        let attempt_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let endpoint_failures = Family::<EndpointLabel, Counter>::default();
        let events_published = Counter::default();
        let publish_group_requests = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        let publish_commit_seconds = Histogram::new(exponential_buckets(0.000_1, 2.0, 16));
        let claim_rounds = Counter::default();
        let purged = Counter::default();
        let queue_depth = Family::<StatusLabel, Gauge>::default();
        let queue_lag_seconds = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "delivery_attempts",
            "Delivery attempts by outcome",
            attempts.clone(),
        );
        registry.register(
            "attempt_duration_seconds",
            "HTTP attempt latency",
            attempt_seconds.clone(),
        );
        let mut private = Registry::with_prefix("herald");
        private.register(
            "endpoint_failures",
            "Failed attempts per endpoint",
            endpoint_failures.clone(),
        );
        registry.register(
            "events_published",
            "Events accepted",
            events_published.clone(),
        );
        registry.register(
            "publish_group_requests",
            "Publish requests committed together in one transaction",
            publish_group_requests.clone(),
        );
        registry.register(
            "publish_commit_duration_seconds",
            "Time to write and commit one publish group",
            publish_commit_seconds.clone(),
        );
        registry.register(
            "claim_rounds",
            "Claim queries run by the dispatcher",
            claim_rounds.clone(),
        );
        registry.register("purged_rows", "Rows removed by retention", purged.clone());
        registry.register("queue_depth", "Deliveries by status", queue_depth.clone());
        registry.register(
            "queue_lag_seconds",
            "Age of the oldest due delivery",
            queue_lag_seconds.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            private: Mutex::new(private),
            attempts,
            attempt_seconds,
            endpoint_failures,
            events_published,
            publish_group_requests,
            publish_commit_seconds,
            claim_rounds,
            purged,
            queue_depth,
            queue_lag_seconds,
        }
    }
}

impl Metrics {
    /// Adds the store's own series: how long SQLite's writer is held at a time and how long
    /// its WAL takes to sync.
    pub fn register_store(&self, store: &crate::store::Store) {
        let mut registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        registry.register(
            "store_writer_hold_seconds",
            "How long the database's one writer was held at a time (SQLite)",
            store.writer_holds().clone(),
        );
        registry.register(
            "store_wal_sync_seconds",
            "How long each sync of the WAL to disk took (SQLite, synchronous=full); one sync \
             serves every commit that finished before it began",
            store.wal_syncs().clone(),
        );
    }

    /// The text exposition: the installation-wide series, and the per-endpoint ones when
    /// `with_endpoints` (the scraper showed the metrics token).
    pub fn encode(&self, with_endpoints: bool) -> String {
        let mut out = String::new();
        let lock = |m: &'_ Mutex<Registry>| {
            let mut text = String::new();
            let registry = m.lock().unwrap_or_else(|p| p.into_inner());
            let _ = prometheus_client::encoding::text::encode_registry(&mut text, &registry);
            text
        };
        out.push_str(&lock(&self.registry));
        if with_endpoints {
            out.push_str(&lock(&self.private));
        }
        let _ = prometheus_client::encoding::text::encode_eof(&mut out);
        out
    }

    /// An endpoint is gone: its series go too, so label sets do not grow without bound.
    pub fn forget_endpoint(&self, endpoint_id: &str) {
        self.endpoint_failures.remove(&EndpointLabel {
            endpoint_id: endpoint_id.to_string(),
        });
    }
}
