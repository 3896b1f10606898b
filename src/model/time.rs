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

/// `YYYY-MM-DDTHH:MM:SSZ` (what [`rfc3339`] writes) as seconds since the epoch.
pub fn parse_rfc3339(text: &str) -> Option<UnixSeconds> {
    let b = text.as_bytes();
    let shape_ok = b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        });
    if !shape_ok {
        return None;
    }
    let n = |from: usize, to: usize| text[from..to].parse::<u16>().ok();
    let month = time::Month::try_from(u8::try_from(n(5, 7)?).ok()?).ok()?;
    let date =
        time::Date::from_calendar_date(i32::from(n(0, 4)?), month, u8::try_from(n(8, 10)?).ok()?)
            .ok()?;
    let at = date
        .with_hms(
            u8::try_from(n(11, 13)?).ok()?,
            u8::try_from(n(14, 16)?).ok()?,
            u8::try_from(n(17, 19)?).ok()?,
        )
        .ok()?;
    u64::try_from(at.assume_utc().unix_timestamp()).ok()
}
