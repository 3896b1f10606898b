//! Rate limits: keyed token buckets (GCRA, from the `governor` crate) per
//! client certificate, reference number, IP address and EST label on the EST
//! listener, and per IP address on the plain-HTTP (CRL and OCSP) listener,
//! configured under `[rate_limit]`.
//!
//! A check is a lock-free read of one sharded map entry and an atomic update,
//! so it costs little on the hot path. Keys whose bucket has refilled are
//! forgotten by [`RateLimits::evict_idle`], which the server runs periodically,
//! so memory follows recent traffic, not history.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, MonotonicClock};
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

/// The OS monotonic clock (`std::time::Instant`): guaranteed monotonic and
/// cheap through the vDSO; spares the TSC-based `quanta` dependency.
type Clk = MonotonicClock;

/// A keyed limiter over a sharded concurrent map.
type Keyed<K> = RateLimiter<K, DashMapStateStore<K>, Clk>;

use crate::config::{BucketConfig, RateLimitConfig};

/// What a request is counted against (a bounded set: also a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A trusted client certificate.
    Client,
    /// A reference number (one-time-code collection).
    Reference,
    /// An IP address (no trusted certificate).
    Ip,
    /// An EST label.
    Label,
    /// An IP address on the plain-HTTP listener.
    Public,
}

impl Kind {
    /// The name used in configuration and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Client => "client",
            Kind::Reference => "reference",
            Kind::Ip => "ip",
            Kind::Label => "label",
            Kind::Public => "public",
        }
    }
}

/// Who is calling, for rate limiting.
#[derive(Debug, Clone, Copy)]
pub enum Caller<'a> {
    /// A trusted client certificate, by SHA-256 of its DER.
    Client(&'a [u8; 32]),
    /// HTTP Basic without a trusted certificate: a reference number, from this address.
    Reference(&'a str, IpAddr),
    /// Nobody in particular, from this address.
    Anonymous(IpAddr),
}

/// A request refused for its rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Which limit it hit.
    pub kind: Kind,
    /// Whole seconds until a request would be allowed, at least 1.
    pub retry_after: u64,
}

/// Reference numbers are 12 digits; anything else shares one key, so that
/// invented user names cannot make new buckets.
const MALFORMED_REFERENCE: u64 = u64::MAX;

/// The configured limiters; a kind that is switched off has none.
pub struct RateLimits {
    client: Option<Keyed<[u8; 32]>>,
    reference: Option<Keyed<u64>>,
    ip: Option<Keyed<IpAddr>>,
    label: Option<Keyed<String>>,
    public: Option<Keyed<IpAddr>>,
    clock: Clk,
    evict_every: Duration,
}

/// A configuration that cannot be turned into a limiter.
#[derive(Debug, thiserror::Error)]
#[error("rate_limit.{0}: per_second and burst do not make a valid quota")]
pub struct QuotaError(&'static str);

fn limiter<K: Hash + Eq + Clone>(
    kind: Kind,
    cfg: &BucketConfig,
    clock: &Clk,
) -> Result<Option<Keyed<K>>, QuotaError> {
    if !cfg.enabled {
        return Ok(None);
    }
    let period =
        Duration::try_from_secs_f64(1.0 / cfg.per_second).map_err(|_| QuotaError(kind.name()))?;
    let burst = NonZeroU32::new(cfg.burst).ok_or(QuotaError(kind.name()))?;
    let quota = Quota::with_period(period)
        .ok_or(QuotaError(kind.name()))?
        .allow_burst(burst);
    Ok(Some(RateLimiter::dashmap_with_clock(quota, clock.clone())))
}

impl RateLimits {
    /// Builds the limiters from `[rate_limit]`.
    pub fn new(cfg: &RateLimitConfig) -> Result<RateLimits, QuotaError> {
        let clock = Clk::default();
        Ok(RateLimits {
            client: limiter(Kind::Client, &cfg.client, &clock)?,
            reference: limiter(Kind::Reference, &cfg.reference, &clock)?,
            ip: limiter(Kind::Ip, &cfg.ip, &clock)?,
            label: limiter(Kind::Label, &cfg.label, &clock)?,
            public: limiter(Kind::Public, &cfg.public, &clock)?,
            clock,
            evict_every: Duration::from_secs(cfg.evict_interval_secs.max(1)),
        })
    }

    /// How often keys whose bucket refilled are forgotten.
    pub fn evict_every(&self) -> Duration {
        self.evict_every
    }

    fn one<K: Hash + Eq + Clone>(
        &self,
        kind: Kind,
        limiter: &Option<Keyed<K>>,
        key: &K,
    ) -> Result<(), Limited> {
        let Some(l) = limiter else { return Ok(()) };
        l.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            // Whole seconds, rounded up, never 0: "retry now" would be wrong.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            Limited {
                kind,
                retry_after: secs.max(1),
            }
        })
    }

    /// Counts one request by `caller` under `label` (`""` for the unlabelled
    /// path); the first limit it is over refuses it.
    pub fn check(&self, caller: Caller<'_>, label: &String) -> Result<(), Limited> {
        match caller {
            Caller::Client(fp) => self.one(Kind::Client, &self.client, fp)?,
            Caller::Reference(user, ip) => {
                let key = if user.len() == 12 && user.bytes().all(|b| b.is_ascii_digit()) {
                    user.parse().unwrap_or(MALFORMED_REFERENCE)
                } else {
                    MALFORMED_REFERENCE
                };
                self.one(Kind::Reference, &self.reference, &key)?;
                self.one(Kind::Ip, &self.ip, &ip)?;
            }
            Caller::Anonymous(ip) => self.one(Kind::Ip, &self.ip, &ip)?,
        }
        self.one(Kind::Label, &self.label, label)
    }

    /// Counts one request on the plain-HTTP listener from `ip`.
    pub fn check_public(&self, ip: IpAddr) -> Result<(), Limited> {
        self.one(Kind::Public, &self.public, &ip)
    }

    /// Forgets keys whose bucket is full again (indistinguishable from a new key).
    pub fn evict_idle(&self) {
        fn sweep<K: Hash + Eq + Clone>(l: &Option<Keyed<K>>) {
            if let Some(l) = l {
                l.retain_recent();
                l.shrink_to_fit();
            }
        }
        sweep(&self.client);
        sweep(&self.reference);
        sweep(&self.ip);
        sweep(&self.label);
        sweep(&self.public);
    }

    /// Keys currently held, over all kinds.
    pub fn keys(&self) -> usize {
        fn len<K: Hash + Eq + Clone>(l: &Option<Keyed<K>>) -> usize {
            l.as_ref().map_or(0, |l| l.len())
        }
        len(&self.client)
            + len(&self.reference)
            + len(&self.ip)
            + len(&self.label)
            + len(&self.public)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> RateLimitConfig {
        crate::config::Config::from_toml_layers(&[crate::config::DEFAULT_TOML, extra])
            .expect("config")
            .rate_limit
    }

    #[test]
    fn buckets_are_per_key_and_kind() {
        let limits = RateLimits::new(&config(
            "[rate_limit.client]\nper_second = 0.01\nburst = 2\n[rate_limit.reference]\nper_second = 0.01\nburst = 1\n",
        ))
        .expect("limits");
        let label = String::new();
        let (a, b) = ([1u8; 32], [2u8; 32]);
        assert!(limits.check(Caller::Client(&a), &label).is_ok());
        assert!(limits.check(Caller::Client(&a), &label).is_ok());
        let refused = limits
            .check(Caller::Client(&a), &label)
            .expect_err("third is over the burst");
        assert_eq!(refused.kind, Kind::Client);
        assert!(refused.retry_after >= 1 && refused.retry_after <= 100);
        assert!(
            limits.check(Caller::Client(&b), &label).is_ok(),
            "another key"
        );

        let ip = IpAddr::from([127, 0, 0, 1]);
        assert!(limits
            .check(Caller::Reference("000000000001", ip), &label)
            .is_ok());
        assert_eq!(
            limits
                .check(Caller::Reference("000000000001", ip), &label)
                .map_err(|l| l.kind),
            Err(Kind::Reference)
        );
        // Invented user names share one bucket.
        assert!(limits.check(Caller::Reference("x", ip), &label).is_ok());
        assert!(limits.check(Caller::Reference("y", ip), &label).is_err());
        assert!(limits.keys() > 0);
    }

    #[test]
    fn a_kind_can_be_switched_off() {
        let limits = RateLimits::new(&config(
            "[rate_limit.ip]\nenabled = false\nper_second = 0.01\nburst = 1\n",
        ))
        .expect("limits");
        let ip = IpAddr::from([127, 0, 0, 1]);
        for _ in 0..1000 {
            assert!(limits.check(Caller::Anonymous(ip), &String::new()).is_ok());
        }
    }

    #[test]
    fn bad_quotas_are_refused_by_the_config() {
        for bad in [
            "[rate_limit.ip]\nper_second = 0.0\n",
            "[rate_limit.ip]\nper_second = -1.0\n",
            "[rate_limit.ip]\nper_second = nan\n",
            "[rate_limit.ip]\nburst = 0\n",
        ] {
            assert!(
                crate::config::Config::from_toml_layers(&[crate::config::DEFAULT_TOML, bad])
                    .is_err(),
                "{bad}"
            );
        }
    }
}
