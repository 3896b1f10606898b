//! Prometheus metrics, served at `/metrics` on the admin listener.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

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
    /// `estd_rate_limited_total{kind}`: EST requests refused with 429, by the
    /// kind of limit (client, reference, ip, label), never by identity.
    pub rate_limited: IntCounterVec,
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
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "estd_rate_limited_total",
                "EST requests refused with 429, by kind of limit (client, reference, ip, label).",
            ),
            &["kind"],
        )?;
        registry.register(Box::new(rate_limited.clone()))?;
        for kind in ["client", "reference", "ip", "label"] {
            // Present at 0 from the start, so that rate() works before the first refusal.
            rate_limited.with_label_values(&[kind]);
        }
        Ok(Metrics {
            rate_limited,
            registry,
            requests,
            enroll_latency,
            issued,
            stored,
            ocsp_responses,
            crl_generations,
            crl_size_bytes,
        })
    }

    /// The text exposition format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4096);
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}
