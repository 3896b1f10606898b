//! Notification delivery: writes "expiring" notices to the durable outbox and
//! delivers outbox notices by plain SMTP to the configured relay.
//!
//! The outbox is the source of truth: a notice is marked delivered only after
//! the relay accepted it, and a failed attempt is counted on the notice. Retries
//! back off exponentially; the time of the last failed attempt is kept in memory
//! only, so after a restart every undelivered notice is tried once at once.
//!
//! Rounds for one store are serialised (a process-wide lock per data directory),
//! so a background [`run`] loop and a direct [`deliver_pending`] call never send
//! the same notice twice, and two expiry scans never write the same notice twice.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::watch;

use crate::app::App;
use crate::model::{
    now_unix, redact_validation_token, CertRecord, NoticeEvent, Notification, NotificationKind,
    OrderHolder, UnixSeconds,
};
use crate::service::{notice_text, notify, recipient, Notice};
use crate::store::{Exclusive, StoreError};

/// Failed attempts after which a notice is no longer tried.
pub const MAX_DELIVERY_ATTEMPTS: u32 = 10;

/// How long a node keeps the notices it claimed for a round before another
/// node may take them (only if this one died while sending).
const CLAIM_LEASE_SECS: u64 = 300;

/// The most notices one round claims.
const MAX_NOTICES_PER_ROUND: usize = 1000;

/// Wait after the first failed attempt; it doubles with each further failure.
const FIRST_RETRY_DELAY: Duration = Duration::from_secs(30);

/// Longest wait between two attempts at the same notice.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);

/// How long one SMTP conversation may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);

/// Least time between two expiry scans in [`run`].
const EXPIRY_SCAN_INTERVAL: Duration = Duration::from_secs(60);

const SECONDS_PER_DAY: u64 = 86_400;

/// Why a delivery round or an expiry scan failed as a whole.
///
/// A single notice that cannot be delivered is not an error: it is counted
/// in [`DeliveryReport::failed`] and on the notice itself.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing a notice to the outbox failed.
    #[error("writing a notice: {0}")]
    Notice(#[from] crate::service::Error),
    /// `smtp.from` is not a mailbox such as `estd <estd@example.com>`.
    #[error("smtp.from {from:?} is not a valid sender: {reason}")]
    InvalidSender {
        /// The configured value.
        from: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// What one delivery round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Accepted by the relay and marked delivered.
    pub delivered: usize,
    /// Tried and failed; the attempt is counted on the notice.
    pub failed: usize,
    /// Not tried this round: the last failed attempt was too recent.
    pub deferred: usize,
    /// Not tried: [`MAX_DELIVERY_ATTEMPTS`] failed attempts already.
    pub abandoned: usize,
}

/// In-memory state shared by all rounds on one store.
#[derive(Default)]
struct OutboxLocks {
    /// Held for a whole delivery round; maps notice id → last failed attempt.
    last_failure: tokio::sync::Mutex<HashMap<u64, Instant>>,
    /// Held for a whole expiry scan.
    expiry_scan: Mutex<()>,
}

/// The locks of the store `app` uses, keyed by its data directory (the embedded
/// engine lets only one handle open a directory, so the key is unique within the process).
fn outbox_locks(app: &App) -> Arc<OutboxLocks> {
    static BY_DATA_DIR: OnceLock<Mutex<HashMap<PathBuf, Arc<OutboxLocks>>>> = OnceLock::new();
    let registry = BY_DATA_DIR.get_or_init(Default::default);
    let mut map = registry.lock().unwrap_or_else(PoisonError::into_inner);
    map.entry(app.config.paths.data_dir.clone())
        .or_default()
        .clone()
}

/// How long to wait after a notice's `failed_attempts`-th failure.
fn retry_delay(failed_attempts: u32) -> Duration {
    if failed_attempts == 0 {
        return Duration::ZERO;
    }
    let doublings = (failed_attempts - 1).min(16);
    FIRST_RETRY_DELAY
        .saturating_mul(1u32 << doublings)
        .min(MAX_RETRY_DELAY)
}

/// Sends every undelivered outbox notice that is due, by plain SMTP to the
/// relay in `[smtp]`, and makes the bookkeeping durable.
///
/// This does not look at `smtp.enabled`: that switch governs [`run`]; a direct
/// call always delivers.
pub async fn deliver_pending(app: &App) -> Result<DeliveryReport, NotifyError> {
    let live = app.live.load_full();
    let smtp = &live.smtp;
    let sender: Mailbox = smtp
        .from
        .parse()
        .map_err(
            |e: lettre::address::AddressError| NotifyError::InvalidSender {
                from: smtp.from.clone(),
                reason: e.to_string(),
            },
        )?;
    let locks = outbox_locks(app);
    let mut last_failure = locks.last_failure.lock().await;

    // Claimed, so that another node sharing the store does not send them
    // too; writing a notice back (below, also when it is skipped) releases it.
    let undelivered =
        app.store
            .claim_notifications(now_unix(), CLAIM_LEASE_SECS, MAX_NOTICES_PER_ROUND)?;

    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.as_str())
        .port(smtp.port)
        .timeout(Some(SMTP_TIMEOUT))
        .build();
    let mut report = DeliveryReport::default();
    for mut notice in undelivered {
        if notice.attempts >= MAX_DELIVERY_ATTEMPTS {
            last_failure.remove(&notice.id);
            report.abandoned += 1;
            app.store.put_notification(&notice)?;
            continue;
        }
        if let Some(at) = last_failure.get(&notice.id) {
            if at.elapsed() < retry_delay(notice.attempts) {
                report.deferred += 1;
                app.store.put_notification(&notice)?;
                continue;
            }
        }
        match send_one(&transport, &sender, &notice).await {
            Ok(()) => {
                notice.delivered_at = Some(now_unix());
                // Once sent, the link's token is needed nowhere in estd.
                if notice.kind.carries_token() {
                    notice.body = redact_validation_token(&notice.body);
                }
                last_failure.remove(&notice.id);
                report.delivered += 1;
                tracing::info!(notice = notice.id, kind = ?notice.kind, "notice delivered");
            }
            Err(reason) => {
                notice.attempts = notice.attempts.saturating_add(1);
                last_failure.insert(notice.id, Instant::now());
                report.failed += 1;
                tracing::warn!(
                    notice = notice.id,
                    kind = ?notice.kind,
                    attempts = notice.attempts,
                    error = %reason,
                    "notice not delivered"
                );
            }
        }
        app.store.put_notification(&notice)?;
    }
    if report.delivered + report.failed > 0 {
        app.store.durable().await?;
    }
    Ok(report)
}

/// Why one notice was not delivered (never contains its body).
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("recipient {to:?} is not a valid address: {source}")]
    Recipient {
        to: String,
        source: lettre::address::AddressError,
    },
    #[error("building the message: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("SMTP: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
}

async fn send_one(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    sender: &Mailbox,
    notice: &Notification,
) -> Result<(), SendError> {
    let to: Mailbox = notice.to.parse().map_err(|source| SendError::Recipient {
        to: notice.to.clone(),
        source,
    })?;
    let message = Message::builder()
        .from(sender.clone())
        .to(to)
        .subject(notice.subject.as_str())
        .message_id(None)
        .header(ContentType::TEXT_PLAIN)
        .body(notice.body.clone())?;
    transport.send(message).await?;
    Ok(())
}

/// Writes one [`NotificationKind::Expiring`] notice for each certificate that
/// is issued (not revoked, not expired) at `now` and expires within
/// `orders.expiry_notice_days`, unless the outbox already has one for its
/// serial. Certificates without a stored profile (such as estd's own TLS
/// certificate) or without anyone to tell are skipped. Returns how many
/// notices were written; they become durable with the next store commit.
pub fn write_expiry_notices(app: &App, now: UnixSeconds) -> Result<usize, NotifyError> {
    let locks = outbox_locks(app);
    let _scan = locks
        .expiry_scan
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    // One node at a time, so that two nodes never both write a notice.
    let _one_node = app.store.exclusive(Exclusive::ExpiryScan)?;

    let horizon =
        now.saturating_add(u64::from(app.config.orders.expiry_notice_days) * SECONDS_PER_DAY);
    let mut already_noticed = HashSet::new();
    for notice in app.store.notifications() {
        let notice = notice?;
        if notice.kind == NotificationKind::Expiring {
            if let Some(serial) = notice.serial {
                already_noticed.insert(serial);
            }
        }
    }

    let mut written = 0;
    for rec in app.store.certs_expiring(now, horizon.saturating_add(1)) {
        let rec = rec?;
        if rec.state(now) != crate::model::CertState::Issued
            || rec.not_after > horizon
            || already_noticed.contains(&rec.serial)
        {
            continue;
        }
        let Some(to) = expiry_recipient(app, &rec)? else {
            continue;
        };
        let expires_on = utc_date(rec.not_after);
        let text = notice_text(
            app.services(),
            &NoticeEvent::RenewalDue {
                subject: &rec.subject,
                serial: rec.serial,
                expires_on: &expires_on,
                days_left: rec.not_after.saturating_sub(now) / SECONDS_PER_DAY,
            },
        );
        notify(
            app.services(),
            Notice {
                kind: NotificationKind::Expiring,
                cvr: &rec.cvr,
                to: Some(to),
                subject: text.subject,
                body: text.body,
                serial: Some(rec.serial),
                order_id: rec.order_id.as_deref(),
            },
        )?;
        already_noticed.insert(rec.serial);
        written += 1;
    }
    Ok(written)
}

/// Who is told about `rec`: the user of a user certificate's order, otherwise
/// the profile's contact. `None` if the profile is unknown or has no contact.
fn expiry_recipient(app: &App, rec: &CertRecord) -> Result<Option<String>, NotifyError> {
    let Some(profile) = app.store.profile(&rec.profile_id)? else {
        return Ok(None);
    };
    let holder = match rec.order_id.as_deref() {
        Some(order_id) => app
            .store
            .order(order_id)?
            .map(|order| order.holder)
            .unwrap_or(OrderHolder::Profile),
        None => OrderHolder::Profile,
    };
    Ok(recipient(&profile, &holder))
}

/// `YYYY-MM-DD` (UTC) of a Unix time.
fn utc_date(at: UnixSeconds) -> String {
    let seconds = i64::try_from(at).unwrap_or(i64::MAX);
    match time::OffsetDateTime::from_unix_timestamp(seconds) {
        Ok(t) => format!("{}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
        Err(_) => format!("Unix time {at}"),
    }
}

/// The notification task: every `smtp.interval_secs`, writes expiry notices
/// (at most once a minute) and, if `smtp.enabled`, delivers pending notices.
/// Returns promptly once `shutdown` changes (or its sender is dropped); a
/// round cut short leaves undelivered notices for the next start.
pub async fn run(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let mut last_expiry_scan: Option<Instant> = None;
    loop {
        // Read each round: a reload may change it.
        let interval = Duration::from_secs(app.live.load().smtp.interval_secs.max(1));
        if *shutdown.borrow_and_update() {
            return;
        }
        let round = one_round(&app, &mut last_expiry_scan);
        tokio::select! {
            () = round => {}
            _ = shutdown.changed() => return,
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn one_round(app: &App, last_expiry_scan: &mut Option<Instant>) {
    if last_expiry_scan.is_none_or(|at| at.elapsed() >= EXPIRY_SCAN_INTERVAL) {
        *last_expiry_scan = Some(Instant::now());
        match write_expiry_notices(app, now_unix()) {
            Ok(0) => {}
            Ok(written) => {
                tracing::info!(written, "expiry notices written");
                if let Err(e) = app.store.durable().await {
                    tracing::error!(error = %e, "committing expiry notices");
                }
            }
            Err(e) => tracing::error!(error = %e, "writing expiry notices"),
        }
    }
    if app.live.load().smtp.enabled {
        match deliver_pending(app).await {
            Ok(report) if report.failed > 0 => {
                tracing::warn!(?report, "some notices were not delivered");
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "delivering notices"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_up_to_an_hour() {
        assert_eq!(retry_delay(0), Duration::ZERO);
        assert_eq!(retry_delay(1), Duration::from_secs(30));
        assert_eq!(retry_delay(2), Duration::from_secs(60));
        assert_eq!(retry_delay(4), Duration::from_secs(240));
        assert_eq!(retry_delay(9), MAX_RETRY_DELAY);
        assert_eq!(retry_delay(u32::MAX), MAX_RETRY_DELAY);
    }

    #[test]
    fn utc_date_formats_the_day() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(1_700_000_000), "2023-11-14");
    }
}
