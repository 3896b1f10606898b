//! E-mail validation before issuance: an organisation or system certificate
//! that carries an e-mail address (its profile's `email`) is issued only once
//! the address was confirmed through a link sent to it, within
//! `email_validation.valid_for_days`.
//!
//! The link carries a random token (256 bits); only its SHA-256 is stored,
//! in the organisation's record for the address, and the token is compared
//! in constant time. A link works once and for `link_ttl_hours`. Issuance
//! paths ask [`must_wait`]: if the address is not confirmed, it sends a link
//! unless one is still working, and the caller holds the request durably
//! (the EST client gets 202 with Retry-After and tries again).
//!
//! Records are few (one per organisation and address), so a token is found
//! by reading them all; every pending record's hash is compared, whether or
//! not an earlier one matched.

use std::sync::Mutex;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest;

use super::codes::random_bytes;
use super::journal::{audit, notice_text, notify, Notice, Subject};
use super::{Error, Services};
use crate::model::{
    normalised_address, now_unix, Actor, ActorId, AuditAction, AuditOutcome, CertKind,
    EmailValidation, EmailValidationStatus, NoticeEvent, NotificationKind, OrderHolder, Profile,
    UnixSeconds,
};

/// Serialises confirmations and new links on this node, so that one link
/// confirms once and two enrolments at once send one link.
static VALIDATIONS: Mutex<()> = Mutex::new(());

/// Longest token accepted (a real one is 43 characters).
const MAX_TOKEN_CHARS: usize = 64;

/// The path of the confirmation page under `notices.base_url` (served by the
/// public listener).
pub const VALIDATE_EMAIL_PATH: &str = "/validate-email";

/// SHA-256 of a validation token: what is stored instead of it.
fn token_hash(token: &str) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"estd e-mail validation:");
    ctx.update(token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// A fresh token: 43 base64url characters (256 bits).
fn new_token() -> Result<String, Error> {
    use base64::Engine;
    let b = random_bytes::<32>()?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// The address a certificate of `profile` for `holder` must have confirmed
/// before it is issued: the profile's e-mail, for organisation and system
/// certificates, while the check is enabled.
pub fn address_to_validate<'a>(
    s: Services<'_>,
    profile: &'a Profile,
    holder: &OrderHolder,
) -> Option<&'a str> {
    if !s.config.email_validation.enabled
        || profile.kind == CertKind::User
        || matches!(holder, OrderHolder::User { .. })
    {
        return None;
    }
    profile.email.as_deref()
}

/// Whether issuing for `profile` and `holder` must wait for the address to
/// be confirmed. When it must and no link is working, a new link is sent
/// (the record and the notice are written, not yet durable: the caller
/// commits before it answers).
pub(super) fn must_wait(
    s: Services<'_>,
    actor: &str,
    profile: &Profile,
    holder: &OrderHolder,
    order_id: Option<&str>,
) -> Result<bool, Error> {
    let Some(address) = address_to_validate(s, profile, holder) else {
        return Ok(false);
    };
    let cfg = &s.config.email_validation;
    let address = normalised_address(address);
    let _one_at_a_time = VALIDATIONS.lock().unwrap_or_else(|e| e.into_inner());
    let now = now_unix();
    let existing = s.store.email_validation(&profile.cvr, &address)?;
    if existing
        .as_ref()
        .is_some_and(|v| v.is_confirmed(now, cfg.valid_for_secs()))
    {
        return Ok(false);
    }
    if existing
        .as_ref()
        .is_some_and(|v| v.status(now, cfg.valid_for_secs()) == EmailValidationStatus::Pending)
    {
        return Ok(true); // a link is out and still works
    }
    let token = new_token()?;
    let hash = token_hash(&token);
    let record = match existing {
        None => EmailValidation::pending(&profile.cvr, &address, hash, now, cfg.link_ttl_secs()),
        Some(mut v) => {
            v.resend(hash, now, cfg.link_ttl_secs(), cfg.valid_for_secs())
                .map_err(|e| Error::Conflict(e.to_string()))?;
            v
        }
    };
    s.store.put_email_validation(&record)?;
    send_link(s, actor, profile, &record, &token, order_id)?;
    Ok(true)
}

/// Writes the notice with the link, and its audit record (without the token).
fn send_link(
    s: Services<'_>,
    actor: &str,
    profile: &Profile,
    record: &EmailValidation,
    token: &str,
    order_id: Option<&str>,
) -> Result<(), Error> {
    let organisation = s
        .store
        .org(&profile.cvr)?
        .map(|o| o.name)
        .unwrap_or_else(|| profile.cvr.clone());
    let link = s
        .config
        .notices
        .link(&format!("{VALIDATE_EMAIL_PATH}?token={token}"));
    let text = notice_text(
        s,
        &NoticeEvent::ValidateEmail {
            address: &record.address,
            organisation: &organisation,
            profile: &profile.name,
            link: &link,
            valid_hours: s.config.email_validation.link_ttl_hours,
        },
    );
    notify(
        s,
        Notice {
            kind: NotificationKind::EmailValidation,
            cvr: &profile.cvr,
            to: Some(record.address.clone()),
            subject: text.subject,
            body: text.body,
            serial: None,
            order_id,
        },
    )?;
    audit(
        s,
        &ActorId::Named(actor.to_owned()),
        AuditAction::ValidateEmail,
        AuditOutcome::Done,
        Subject {
            cvr: Some(&profile.cvr),
            profile_id: Some(&profile.id),
            serial: None,
            order_id,
        },
        format!("validation link sent to {}", record.address),
    )
}

/// The record whose working or expired link carries `token`.
fn find(s: Services<'_>, token: &str) -> Result<EmailValidation, Error> {
    let token = token.trim();
    if token.is_empty()
        || token.len() > MAX_TOKEN_CHARS
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Error::NotFound("validation link"));
    }
    let presented = token_hash(token);
    let mut found = None;
    for v in s.store.email_validations() {
        let v = v?;
        if let crate::model::EmailValidationState::Pending { token_hash, .. } = &v.state {
            let same =
                verify_slices_are_equal(&presented, std::hint::black_box(token_hash)).is_ok();
            if same && found.is_none() {
                found = Some(v);
            }
        }
    }
    found.ok_or(Error::NotFound("validation link"))
}

/// What the confirmation page shows for `token` without using it: the
/// record if the link works now.
pub fn email_link(s: Services<'_>, token: &str) -> Result<EmailValidation, Error> {
    let v = find(s, token)?;
    if v.pending_hash(now_unix()).is_none() {
        return Err(expired());
    }
    Ok(v)
}

fn expired() -> Error {
    Error::Conflict(
        "this link has expired; a new one is sent when the certificate is next requested".into(),
    )
}

/// Confirms the address whose link carries `token`: once, and only before
/// the link expires. Durable when it returns.
pub async fn confirm_email(s: Services<'_>, token: &str) -> Result<EmailValidation, Error> {
    let confirmed = confirm_locked(s, token);
    // Written either way: the confirmation, or the refusal's audit record.
    if !matches!(confirmed, Err(Error::NotFound(_))) {
        s.store.durable().await?;
    }
    confirmed
}

/// The writes of a confirmation, under the lock, not yet durable.
fn confirm_locked(s: Services<'_>, token: &str) -> Result<EmailValidation, Error> {
    let record = {
        let _one_at_a_time = VALIDATIONS.lock().unwrap_or_else(|e| e.into_inner());
        let mut v = find(s, token)?;
        let now = now_unix();
        if v.confirm(now).is_err() {
            audit(
                s,
                &ActorId::Named(format!("email:{}", v.address)),
                AuditAction::ValidateEmail,
                AuditOutcome::Refused,
                Subject {
                    cvr: Some(&v.cvr),
                    ..Subject::default()
                },
                format!("expired validation link of {}", v.address),
            )?;
            return Err(expired());
        }
        s.store.put_email_validation(&v)?;
        audit(
            s,
            &ActorId::Named(format!("email:{}", v.address)),
            AuditAction::ValidateEmail,
            AuditOutcome::Done,
            Subject {
                cvr: Some(&v.cvr),
                ..Subject::default()
            },
            format!("{} confirmed", v.address),
        )?;
        v
    };
    Ok(record)
}

/// The e-mail validations of organisation `cvr`, with their status at `now`.
pub fn list_email_validations(
    s: Services<'_>,
    actor: &Actor,
    cvr: &str,
    now: UnixSeconds,
) -> Result<Vec<(EmailValidation, EmailValidationStatus)>, Error> {
    super::organisations::visible_org(s, actor, cvr)?;
    let valid_for = s.config.email_validation.valid_for_secs();
    let mut out = Vec::new();
    for v in s.store.email_validations() {
        let v = v?;
        if v.cvr == cvr {
            let status = v.status(now, valid_for);
            out.push((v, status));
        }
    }
    out.sort_by(|a, b| a.0.address.cmp(&b.0.address));
    Ok(out)
}

/// Whether an open order of `profile` for `holder` waits for its address
/// (for the order's display status; no writes).
pub fn awaits_validation(
    s: Services<'_>,
    profile: &Profile,
    holder: &OrderHolder,
    now: UnixSeconds,
) -> bool {
    let Some(address) = address_to_validate(s, profile, holder) else {
        return false;
    };
    let valid_for = s.config.email_validation.valid_for_secs();
    !matches!(
        s.store.email_validation(&profile.cvr, &normalised_address(address)),
        Ok(Some(v)) if v.is_confirmed(now, valid_for)
    )
}
