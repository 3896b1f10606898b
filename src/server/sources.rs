//! Connections per source address, for `server.max_connections_per_source`.
//!
//! A source is an IPv4 address or an IPv6 /64 (one host usually holds a whole
//! /64, so counting single IPv6 addresses would cap nothing). Each listener
//! keeps its own count; a connection's [`SourceSlot`] gives its place back
//! when the connection task ends.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Open connections per source on one listener.
pub struct Sources {
    held: Mutex<HashMap<IpAddr, usize>>,
    cap: usize,
}

/// The key a connection from `ip` is counted under.
fn source_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

impl Sources {
    /// At most `cap` connections per source.
    pub fn new(cap: usize) -> Arc<Sources> {
        Arc::new(Sources {
            held: Mutex::new(HashMap::new()),
            cap,
        })
    }

    /// A place for one more connection from `ip`, or `None` at the cap.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<SourceSlot> {
        let source = source_of(ip);
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let n = held.get(&source).copied().unwrap_or(0);
        if n >= self.cap {
            return None;
        }
        held.insert(source, n + 1);
        Some(SourceSlot {
            sources: self.clone(),
            source,
        })
    }

    #[cfg(test)]
    fn held(&self, ip: IpAddr) -> usize {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.get(&source_of(ip)).copied().unwrap_or(0)
    }
}

/// One connection's place in its source's count.
pub struct SourceSlot {
    sources: Arc<Sources>,
    source: IpAddr,
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut held = self.sources.held.lock().unwrap_or_else(|p| p.into_inner());
        // Sources with nothing open are forgotten, so the map follows current connections.
        match held.get_mut(&self.source) {
            Some(n) if *n > 1 => *n -= 1,
            _ => {
                held.remove(&self.source);
            }
        }
    }
}

/// How often, at most, refusals are logged per listener.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Logs refusals at a bounded rate: the first at once, then one line per
/// [`LOG_EVERY`] with the number refused meanwhile.
pub struct RefusalLog {
    listener: &'static str,
    last: Option<Instant>,
    unlogged: u64,
}

impl RefusalLog {
    /// For the listener named `listener`.
    pub fn new(listener: &'static str) -> RefusalLog {
        RefusalLog {
            listener,
            last: None,
            unlogged: 0,
        }
    }

    /// Counts one refused connection from `ip`, and logs if it is time.
    pub fn note(&mut self, ip: IpAddr, cap: usize) {
        self.unlogged += 1;
        if self.last.is_some_and(|t| t.elapsed() < LOG_EVERY) {
            return;
        }
        tracing::warn!(
            listener = self.listener,
            source = %source_of(ip),
            refused = self.unlogged,
            cap,
            "connections past the per-source cap refused (logged at most every 10 s; refused counts all sources since the last line)"
        );
        self.last = Some(Instant::now());
        self.unlogged = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_capped_and_its_places_come_back() {
        let sources = Sources::new(2);
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        let first = sources.admit(a).expect("first");
        let _second = sources.admit(a).expect("second");
        assert!(sources.admit(a).is_none(), "third is over the cap");
        assert!(sources.admit(b).is_some(), "another source");
        drop(first);
        assert_eq!(sources.held(a), 1);
        assert!(sources.admit(a).is_some(), "a place came back");
    }

    #[test]
    fn ipv6_is_counted_per_64_and_mapped_ipv4_as_ipv4() {
        let sources = Sources::new(1);
        let one: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let other_64: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        let _held = sources.admit(one).expect("first");
        assert!(sources.admit(same_64).is_none());
        assert!(sources.admit(other_64).is_some());
        let v4: IpAddr = "192.0.2.7".parse().expect("ip");
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
        let _v4 = sources.admit(v4).expect("v4");
        assert!(sources.admit(mapped).is_none(), "the same source");
    }

    #[test]
    fn forgotten_when_nothing_is_open() {
        let sources = Sources::new(3);
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        drop(sources.admit(a));
        assert!(sources.held.lock().expect("lock").is_empty());
    }
}
