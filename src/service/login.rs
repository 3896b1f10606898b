//! Login, sessions and logout.
//!
//! A login presents address, password and the authenticator's current code.
//! Wrong logins are counted on the person and lock the account for a while
//! after `people.max_failed_logins` in a row; an unknown address costs the
//! same password check. A good login makes a session: a random cookie value
//! of which only the SHA-256 is stored, ending after a time idle or a time
//! in all. The CSRF token of a session is derived from its cookie value, so
//! nothing more is stored and only the cookie's holder can compute it.

use aws_lc_rs::digest;

use super::credentials::{
    burn_password_check, random_token, token_hash, verify_password, verify_totp, TotpSecret,
};
use super::issue::blocking;
use super::journal::{audit, Subject};
use super::{Error, Services};
use crate::model::{
    normalised_address, now_unix, person_key, Actor, ActorId, AuditAction, AuditOutcome, Person,
    PersonState, Role, Roles, Session,
};

/// The one answer to a wrong address, password or code.
const BAD_LOGIN: &str = "wrong address, password or code";

/// Longest password or cookie value looked at.
const MAX_SECRET_CHARS: usize = 1024;

/// Longest address looked at (RFC 5321's path limit).
const MAX_EMAIL_CHARS: usize = 254;

/// Serialises the read-check-write of people's records on this node (see
/// [`login`]); across nodes the last write wins.
pub(super) static PEOPLE_WRITES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Removes the sessions past their absolute or idle end.
fn prune_sessions(svc: Services<'_>, now: u64) -> Result<(), Error> {
    let cfg = &svc.config.people;
    let mut ended = Vec::new();
    for item in svc.store.sessions() {
        let (hash, s) = item?;
        if !s.is_live(now, cfg.session_idle_secs, cfg.session_absolute_secs) {
            ended.push(hash);
        }
    }
    for hash in ended {
        svc.store.remove_session(&hash)?;
    }
    Ok(())
}

/// A logged-in person's session, as made by [`login`].
#[derive(Debug)]
pub struct NewSession {
    /// The cookie value (given to the browser once, never stored).
    pub cookie: String,
    /// The CSRF token that goes with it.
    pub csrf: String,
    /// Who logged in.
    pub person: Person,
}

/// The CSRF token of the session whose cookie value is `cookie`.
pub fn csrf_token(cookie: &str) -> String {
    use base64::Engine;
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"estd csrf:");
    ctx.update(cookie.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ctx.finish().as_ref())
}

/// Whether `presented` is the CSRF token of the session `cookie`, compared
/// in constant time.
pub fn csrf_matches(cookie: &str, presented: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(
        csrf_token(cookie).as_bytes(),
        presented.as_bytes(),
    )
    .is_ok()
}

fn login_audit(
    svc: Services<'_>,
    email: &str,
    cvr: Option<&str>,
    outcome: AuditOutcome,
    detail: &str,
) -> Result<(), Error> {
    let name = format!("{}/{}", cvr.unwrap_or("-"), email);
    audit(
        svc,
        &ActorId::Person(crate::clip::clip(&name).into_owned()),
        AuditAction::Login,
        outcome,
        Subject {
            cvr,
            profile_id: None,
            serial: None,
            order_id: None,
        },
        detail,
    )
}

/// Logs a person in. Durable when it returns, refusals included (a wrong
/// login's count survives a restart).
pub async fn login(
    svc: Services<'_>,
    cvr: Option<&str>,
    email: &str,
    password: &str,
    code: &str,
) -> Result<NewSession, Error> {
    let cfg = &svc.config.people;
    let plausible = cvr.is_none_or(|c| c.len() == 8 && c.bytes().all(|b| b.is_ascii_digit()))
        && email.len() <= MAX_EMAIL_CHARS
        && password.len() <= MAX_SECRET_CHARS;
    if !plausible {
        return Err(Error::Unauthenticated(BAD_LOGIN.into()));
    }
    // One login (and one change of a person) at a time on this node: the
    // read, the password check and the write of the failure count or the
    // TOTP step are one step, and password hashing cannot pile up.
    let _one_at_a_time = PEOPLE_WRITES.lock().await;
    let now = now_unix();
    prune_sessions(svc, now)?;
    let email = normalised_address(email);
    let key = person_key(cvr, &email);
    let found = svc.store.person(&key)?;
    let password = zeroize::Zeroizing::new(password.to_owned());
    let burn = |password: zeroize::Zeroizing<String>| {
        // The same work as a known address's check, so time tells nothing.
        blocking("password check", move || {
            burn_password_check(&password);
            Ok(())
        })
    };
    let Some(mut person) = found.filter(Person::is_active) else {
        burn(password).await?;
        login_audit(svc, &email, cvr, AuditOutcome::Refused, "no active account")?;
        svc.store.durable().await?;
        return Err(Error::Unauthenticated(BAD_LOGIN.into()));
    };
    if person.guard.is_locked(now) {
        // Answered as a wrong password is, so a lockout tells no one that
        // the address has an account; the audit log says why.
        burn(password).await?;
        login_audit(svc, &email, cvr, AuditOutcome::Refused, "account locked")?;
        svc.store.durable().await?;
        return Err(Error::Unauthenticated(BAD_LOGIN.into()));
    }
    let PersonState::Active {
        password_hash,
        totp_secret,
        totp_last_step,
        ..
    } = &person.state
    else {
        return Err(Error::Inconsistent(
            "an active person without credentials".into(),
        ));
    };
    let phc = password_hash.clone();
    let password_ok = blocking("password check", move || {
        Ok(verify_password(&phc, &password))
    })
    .await?;
    let secret = TotpSecret::from_bytes(totp_secret.clone());
    let step = verify_totp(&secret, code, now, *totp_last_step);
    let Some(step) = step.filter(|_| password_ok) else {
        person
            .guard
            .fail(now, cfg.max_failed_logins, cfg.lockout_secs);
        svc.store.put_person(&person)?;
        let what = if person.guard.is_locked(now) {
            "wrong password or code; account locked"
        } else {
            "wrong password or code"
        };
        login_audit(svc, &email, cvr, AuditOutcome::Refused, what)?;
        svc.store.durable().await?;
        return Err(Error::Unauthenticated(BAD_LOGIN.into()));
    };
    person.guard.succeed();
    person.used_totp_step(step);
    svc.store.put_person(&person)?;
    let cookie = random_token()?;
    svc.store.put_session(
        &token_hash(&cookie),
        &Session {
            person: person.key(),
            created_at: now,
            last_seen: now,
        },
    )?;
    login_audit(svc, &email, cvr, AuditOutcome::Done, "logged in")?;
    svc.store.durable().await?;
    Ok(NewSession {
        csrf: csrf_token(&cookie),
        cookie,
        person,
    })
}

/// The actor the session cookie `cookie` stands for, if the session is live
/// and its person still active. A live session's idle clock restarts.
pub fn session_actor(svc: Services<'_>, cookie: &str) -> Result<Option<(Actor, Person)>, Error> {
    if cookie.is_empty() || cookie.len() > MAX_SECRET_CHARS {
        return Ok(None);
    }
    let cfg = &svc.config.people;
    let hash = token_hash(cookie);
    let Some(mut session) = svc.store.session(&hash)? else {
        return Ok(None);
    };
    let now = now_unix();
    if !session.is_live(now, cfg.session_idle_secs, cfg.session_absolute_secs) {
        svc.store.remove_session(&hash)?;
        return Ok(None);
    }
    let Some(person) = svc.store.person(&session.person)?.filter(Person::is_active) else {
        svc.store.remove_session(&hash)?;
        return Ok(None);
    };
    if now > session.last_seen {
        session.last_seen = now;
        svc.store.touch_session(&hash, &session)?;
    }
    Ok(Some((person_actor(&person), person)))
}

/// The actor a person is: their roles, their organisation (none for an
/// operator, who holds only [`Role::Operator`]).
pub fn person_actor(person: &Person) -> Actor {
    let roles = match person.cvr {
        Some(_) => person.role_set(),
        None => Roles::of(&[Role::Operator]),
    };
    Actor {
        id: ActorId::Person(person.audit_name()),
        cvr: person.cvr.clone(),
        roles,
        person: Some(person.key()),
    }
}

/// Ends the session `cookie` (nothing if there is none). Durable when it
/// returns.
pub async fn logout(svc: Services<'_>, cookie: &str, person: &Person) -> Result<(), Error> {
    svc.store.remove_session(&token_hash(cookie))?;
    login_audit(
        svc,
        &person.email,
        person.cvr.as_deref(),
        AuditOutcome::Done,
        "logged out",
    )?;
    svc.store.durable().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_belong_to_their_session() {
        let a = csrf_token("cookie-a");
        assert_eq!(a, csrf_token("cookie-a"));
        assert_ne!(a, csrf_token("cookie-b"));
        assert!(csrf_matches("cookie-a", &a));
        assert!(!csrf_matches("cookie-b", &a));
        assert!(!csrf_matches("cookie-a", ""));
    }
}
