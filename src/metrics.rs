//! Prometheus metrics, served at `/metrics` on the admin listener.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// At most one log line per this period sums up anonymous refusals.
const REFUSAL_SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// The metrics estd exports.
pub struct Metrics {
    registry: Registry,
    /// `estd_http_requests_total{listener, endpoint, status}`.
    pub requests: IntCounterVec,
    /// `estd_enrollment_duration_seconds`: request received to certificate answered.
    pub enroll_latency: Histogram,
    /// `estd_certificates_issued_total{profile, operation}`.
    pub issued: IntCounterVec,
    /// `estd_store_certificates`: certificates in the store.
    pub stored: IntGauge,
    /// `estd_ocsp_responses_total{status}`.
    pub ocsp_responses: IntCounterVec,
    /// `estd_crl_generations_total`.
    pub crl_generations: prometheus::IntCounter,
    /// `estd_crl_size_bytes`: size of the current CRL.
    pub crl_size_bytes: IntGauge,
    /// `estd_certificate_expiry_timestamp_seconds{certificate, generation}`:
    /// the notAfter of each certificate estd itself depends on (`tls`,
    /// `ocsp_signer`, `ca_issuing`, `ca_root`), and the nextUpdate of each
    /// generation's CRL (`crl_next_update`), in Unix seconds.
    pub expiries: IntGaugeVec,
    /// `estd_rate_limited_total{kind}`: EST requests refused with 429, by the
    /// kind of limit (client, reference, ip, label), never by identity; `public`
    /// counts the plain-HTTP listener's refusals.
    pub rate_limited: IntCounterVec,
    /// `estd_est_anonymous_refusals_total{endpoint, status}`: EST refusals of
    /// callers who are not identified, counted instead of audited one by one.
    pub anonymous_refusals: IntCounterVec,
    /// `estd_store_writable`: 1 while the store's last write succeeded.
    pub store_writable: IntGauge,
    /// `estd_store_write_errors_total`: batches the store failed to write.
    pub store_write_errors: IntCounter,
    /// `estd_connections_refused_total{listener, reason}`: connections closed
    /// before TLS or HTTP (reason `per_source_cap` or `first_byte_timeout`).
    pub connections_refused: IntCounterVec,
    /// `estd_ocsp_signing_in_progress`: OCSP requests being answered now.
    pub ocsp_in_progress: IntGauge,
    /// `estd_ocsp_signing_peak`: the most OCSP requests ever answered at once
    /// (never above `revocation.ocsp_signing_concurrency`).
    pub ocsp_peak: IntGauge,
    refusal_summary: Mutex<RefusalSummary>,
}

/// Anonymous refusals since the last summary line.
struct RefusalSummary {
    since: Instant,
    counts: BTreeMap<(&'static str, u16), u64>,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "estd_http_requests_total",
                "HTTP requests answered, by listener, endpoint and status.",
            ),
            &["listener", "endpoint", "status"],
        )?;
        let enroll_latency = Histogram::with_opts(
            HistogramOpts::new(
                "estd_enrollment_duration_seconds",
                "Time from an enrolment request's arrival to its answer, successful or not.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
        )?;
        let issued = IntCounterVec::new(
            Opts::new(
                "estd_certificates_issued_total",
                "Certificates issued, by profile label and operation.",
            ),
            &["profile", "operation"],
        )?;
        let stored = IntGauge::new("estd_store_certificates", "Certificates in the store.")?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(enroll_latency.clone()))?;
        registry.register(Box::new(issued.clone()))?;
        registry.register(Box::new(stored.clone()))?;
        let ocsp_responses = IntCounterVec::new(
            Opts::new(
                "estd_ocsp_responses_total",
                "OCSP responses, by status (good, revoked, unknown, malformed, error).",
            ),
            &["status"],
        )?;
        let crl_generations =
            prometheus::IntCounter::new("estd_crl_generations_total", "CRLs signed.")?;
        let crl_size_bytes =
            IntGauge::new("estd_crl_size_bytes", "Size of the current CRL in bytes.")?;
        registry.register(Box::new(ocsp_responses.clone()))?;
        registry.register(Box::new(crl_generations.clone()))?;
        registry.register(Box::new(crl_size_bytes.clone()))?;
        let expiries = IntGaugeVec::new(
            Opts::new(
                "estd_certificate_expiry_timestamp_seconds",
                "When each certificate estd depends on expires (tls, ocsp_signer, ca_issuing, ca_root), and when each CRL's nextUpdate falls (crl_next_update), Unix seconds.",
            ),
            &["certificate", "generation"],
        )?;
        registry.register(Box::new(expiries.clone()))?;
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "estd_rate_limited_total",
                "Requests refused with 429, by kind of limit (EST: client, reference, ip, label; plain-HTTP listener: public).",
            ),
            &["kind"],
        )?;
        registry.register(Box::new(rate_limited.clone()))?;
        for kind in ["client", "reference", "ip", "label", "public"] {
            // Present at 0 from the start, so that rate() works before the first refusal.
            rate_limited.with_label_values(&[kind]);
        }
        let anonymous_refusals = IntCounterVec::new(
            Opts::new(
                "estd_est_anonymous_refusals_total",
                "EST requests refused to callers without a trusted certificate or a known order, by endpoint and status (not stored in the audit log).",
            ),
            &["endpoint", "status"],
        )?;
        let store_writable = IntGauge::new(
            "estd_store_writable",
            "1 while the store can write (its last write succeeded), else 0.",
        )?;
        let store_write_errors = IntCounter::new(
            "estd_store_write_errors_total",
            "Writes (group commits) the store failed to make durable.",
        )?;
        registry.register(Box::new(anonymous_refusals.clone()))?;
        registry.register(Box::new(store_writable.clone()))?;
        registry.register(Box::new(store_write_errors.clone()))?;
        store_writable.set(1);
        let connections_refused = IntCounterVec::new(
            Opts::new(
                "estd_connections_refused_total",
                "Connections closed before TLS or HTTP, by listener and reason (per_source_cap, first_byte_timeout).",
            ),
            &["listener", "reason"],
        )?;
        registry.register(Box::new(connections_refused.clone()))?;
        for listener in ["est", "admin", "public"] {
            for reason in ["per_source_cap", "first_byte_timeout"] {
                connections_refused.with_label_values(&[listener, reason]);
            }
        }
        let ocsp_in_progress = IntGauge::new(
            "estd_ocsp_signing_in_progress",
            "OCSP requests being looked up and signed now.",
        )?;
        let ocsp_peak = IntGauge::new(
            "estd_ocsp_signing_peak",
            "The most OCSP requests looked up and signed at once since start.",
        )?;
        registry.register(Box::new(ocsp_in_progress.clone()))?;
        registry.register(Box::new(ocsp_peak.clone()))?;
        Ok(Metrics {
            anonymous_refusals,
            store_writable,
            store_write_errors,
            refusal_summary: Mutex::new(RefusalSummary {
                since: Instant::now(),
                counts: BTreeMap::new(),
            }),
            rate_limited,
            connections_refused,
            ocsp_in_progress,
            ocsp_peak,
            registry,
            requests,
            enroll_latency,
            issued,
            stored,
            ocsp_responses,
            crl_generations,
            crl_size_bytes,
            expiries,
        })
    }

    /// Counts an anonymous EST refusal, and at most once a minute logs how
    /// many there were (a log line each would be its own flood).
    pub fn anonymous_refusal(&self, endpoint: &'static str, status: http::StatusCode) {
        self.anonymous_refusals
            .with_label_values(&[endpoint, status.as_str()])
            .inc();
        let Ok(mut summary) = self.refusal_summary.lock() else {
            return;
        };
        *summary
            .counts
            .entry((endpoint, status.as_u16()))
            .or_default() += 1;
        if summary.since.elapsed() >= REFUSAL_SUMMARY_EVERY {
            let total: u64 = summary.counts.values().sum();
            let by_kind = summary
                .counts
                .iter()
                .map(|((endpoint, status), n)| format!("{endpoint} {status}: {n}"))
                .collect::<Vec<_>>()
                .join(", ");
            tracing::warn!(
                total,
                seconds = summary.since.elapsed().as_secs(),
                "anonymous EST requests refused (not audited one by one): {by_kind}"
            );
            summary.since = Instant::now();
            summary.counts.clear();
        }
    }

    /// Copies the store's health into its gauges (at each scrape).
    pub fn observe_store(&self, health: &crate::store::StoreHealth) {
        self.store_writable.set(i64::from(health.writable));
        let seen = self.store_write_errors.get();
        if health.write_errors > seen {
            self.store_write_errors.inc_by(health.write_errors - seen);
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4096);
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// The `estd_…` names in `text`, without a histogram's series suffixes.
    fn metric_names(text: &str) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        let bytes = text.as_bytes();
        let mut i = 0;
        while let Some(at) = text[i..].find("estd_") {
            let start = i + at;
            let mut end = start;
            while end < bytes.len() && (bytes[end].is_ascii_lowercase() || bytes[end] == b'_') {
                end += 1;
            }
            let name = &text[start..end];
            let name = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            names.insert(name.to_owned());
            i = end;
        }
        names
    }

    #[test]
    fn the_shipped_alerts_and_dashboard_name_only_metrics_estd_exports() {
        // The registrations only: this test's own text names metrics too.
        let source = include_str!("metrics.rs");
        let registrations = source.split("#[cfg(test)]").next().unwrap_or(source);
        let exported: BTreeSet<String> = metric_names(registrations)
            .into_iter()
            .filter(|n| !n.ends_with('_'))
            .collect();
        for (file, text) in [
            (
                "deploy/prometheus/estd-alerts.yml",
                include_str!("../deploy/prometheus/estd-alerts.yml"),
            ),
            (
                "deploy/grafana/estd.json",
                include_str!("../deploy/grafana/estd.json"),
            ),
        ] {
            let used = metric_names(text);
            assert!(!used.is_empty(), "{file} names no metric");
            let unknown: Vec<&String> = used.difference(&exported).collect();
            assert!(
                unknown.is_empty(),
                "{file} names metrics estd does not export: {unknown:?}"
            );
        }
        let alerts = metric_names(include_str!("../deploy/prometheus/estd-alerts.yml"));
        for needed in [
            "estd_certificate_expiry_timestamp_seconds",
            "estd_store_writable",
            "estd_http_requests_total",
            "estd_rate_limited_total",
        ] {
            assert!(alerts.contains(needed), "an alert watches {needed}");
        }
    }
}
