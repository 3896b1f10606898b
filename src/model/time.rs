//! Time as the model counts it: whole seconds since the Unix epoch.

/// Seconds since the Unix epoch.
pub type UnixSeconds = u64;

/// The current time in seconds since the Unix epoch.
pub fn now_unix() -> UnixSeconds {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
