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

/// RFC 3339 in UTC, whole seconds (`2026-05-01T12:00:00Z`), as the admin
/// API and the audit log write times.
pub fn rfc3339(secs: UnixSeconds) -> String {
    let t = i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}
