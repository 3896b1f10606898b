//! Admin API tokens: made (shown once, stored hashed), resolved to an actor,
//! revoked.

use std::sync::Arc;

use aws_lc_rs::digest;

use super::codes::random_bytes;
use super::journal::{audit, Subject};
use super::organisations::visible_org;
use super::{Error, Services};
use crate::model::{
    now_unix, rfc3339, Actor, ActorId, AuditAction, AuditOutcome, TokenRecord, UnixSeconds,
};
use crate::store::Store;

/// SHA-256 of an admin token: what is stored instead of the token.
pub fn token_hash(token: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, token.trim().as_bytes()).as_ref());
    out
}

/// A fresh admin API token (`estd_` and 43 base64url characters, 256 bits).
pub fn new_token() -> Result<String, Error> {
    use base64::Engine;
    let b = random_bytes::<32>()?;
    Ok(format!(
        "estd_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    ))
}

/// The public id of the token stored under `hash`: 20 hex digits of a hash
/// of that hash. Old records get one too, with no change to the store; it
/// names the token in lists, the audit log and revocation, and says nothing
/// about the token itself.
pub fn token_id(hash: &[u8; 32]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"estd admin token id:");
    ctx.update(hash);
    ctx.finish().as_ref()[..10]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A token just made: the token itself (shown once) and what is stored.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// The bearer token.
    pub token: String,
    /// Its public id.
    pub id: String,
    /// The hash it is stored under.
    pub hash: [u8; 32],
    /// Its stored record.
    pub record: TokenRecord,
}

/// Stores a new admin token for `cvr` (or an operator token for `None`),
/// refused from `expires_at` on, and returns it, once. Not yet durable: for
/// start-up, which flushes the store itself, and for [`create_token`].
pub fn mint_token(
    store: &Arc<dyn Store>,
    cvr: Option<&str>,
    name: &str,
    expires_at: UnixSeconds,
) -> Result<NewToken, Error> {
    let token = new_token()?;
    let hash = token_hash(&token);
    let record = TokenRecord {
        cvr: cvr.map(str::to_owned),
        name: name.to_owned(),
        created_at: now_unix(),
        expires_at: Some(expires_at),
        revoked_at: None,
    };
    store.put_token(&hash, &record)?;
    Ok(NewToken {
        token,
        id: token_id(&hash),
        hash,
        record,
    })
}

/// Creates an admin token for `cvr` (an operator's for `None`) on behalf of
/// `actor` (server operators only; another organisation's is not found),
/// with the name and expiry `input` reads from the request, and audits it;
/// durable when it returns.
pub async fn create_token<E, F>(
    svc: Services<'_>,
    actor: &Actor,
    cvr: Option<&str>,
    input: F,
) -> Result<NewToken, E>
where
    E: From<Error>,
    F: FnOnce() -> Result<(String, UnixSeconds), E>,
{
    let owner = token_owner(svc, actor, cvr, true, "create admin tokens")?;
    let cvr = owner.as_deref();
    // The request is read only once access is settled, so a caller who may
    // not make tokens learns that before anything about its input.
    let (name, expires_at) = input()?;
    let name = name.as_str();
    let made = mint_token(svc.store, cvr, name, expires_at)?;
    audit(
        svc,
        &actor.id,
        AuditAction::Configure,
        AuditOutcome::Done,
        Subject {
            cvr,
            ..Subject::default()
        },
        format!(
            "admin token {name:?} (id {}) created, expires {}",
            made.id,
            rfc3339(expires_at)
        ),
    )?;
    svc.store.durable().await.map_err(Error::from)?;
    Ok(made)
}

/// Revokes the token `id` of `cvr` (an operator's for `None`) and audits it;
/// durable when it returns. Returns its hash and record.
pub async fn revoke_token<E, F>(
    svc: Services<'_>,
    actor: &Actor,
    cvr: Option<&str>,
    id: &str,
    check: F,
) -> Result<([u8; 32], TokenRecord), E>
where
    E: From<Error>,
    F: FnOnce() -> Result<(), E>,
{
    let owner = token_owner(svc, actor, cvr, false, "revoke the operators' tokens")?;
    let cvr = owner.as_deref();
    // The protocol's own checks of the request come after access, as for
    // every other call.
    check()?;
    revoke_owned_token(svc, actor, cvr, id)
        .await
        .map_err(E::from)
}

async fn revoke_owned_token(
    svc: Services<'_>,
    actor: &Actor,
    cvr: Option<&str>,
    id: &str,
) -> Result<([u8; 32], TokenRecord), Error> {
    let mut found = None;
    for item in svc.store.tokens() {
        let (hash, rec) = item?;
        if rec.cvr.as_deref() == cvr && token_id(&hash) == id {
            found = Some((hash, rec));
            break;
        }
    }
    let Some((hash, mut rec)) = found else {
        return Err(Error::NotFound("token"));
    };
    if rec.revoked_at.is_some() {
        return Err(Error::Conflict(format!("token {id} is already revoked")));
    }
    rec.revoked_at = Some(now_unix());
    svc.store.put_token(&hash, &rec)?;
    audit(
        svc,
        &actor.id,
        AuditAction::Configure,
        AuditOutcome::Done,
        Subject {
            cvr,
            ..Subject::default()
        },
        format!("admin token {:?} (id {id}) revoked", rec.name),
    )?;
    svc.store.durable().await?;
    Ok((hash, rec))
}

/// Whose tokens a call is about: organisation `cvr`, which the actor must see
/// (and, if `org_needs_operator`, be a server operator), or the operators'
/// own for `None` (operators only). `what` ends "only a server operator can
/// …".
pub(super) fn token_owner(
    svc: Services<'_>,
    actor: &Actor,
    cvr: Option<&str>,
    org_needs_operator: bool,
    what: &str,
) -> Result<Option<String>, Error> {
    let owner = match cvr {
        // Another organisation's stays a 404, as everywhere else.
        Some(c) => Some(visible_org(svc, actor, c)?.cvr),
        None => None,
    };
    if (owner.is_none() || org_needs_operator) && !actor.is_operator() {
        return Err(Error::Forbidden(format!(
            "only a server operator can {what}"
        )));
    }
    Ok(owner)
}

/// The actor a bearer token stands for, if the token is known, not revoked
/// and not expired. The lookup is by hash, so no stored token is ever
/// compared with what the caller sent.
pub fn token_actor(svc: Services<'_>, token: &str) -> Result<Option<Actor>, Error> {
    Ok(svc
        .store
        .token(&token_hash(token))?
        .filter(|rec| rec.is_usable(now_unix()))
        .map(|rec| Actor::machine(ActorId::Token(rec.name), rec.cvr)))
}
