//! People's accounts: invitation, activation, deactivation, new links.
//!
//! An invitation stores the SHA-256 of its link's token and a TOTP secret;
//! activation takes the token, a new password (stored as argon2id) and a
//! first code from the authenticator, which proves the secret was enrolled.
//! A person may be granted only roles the one who invites them holds, so no
//! one gains through an invitation a right they do not have.

use super::credentials::{
    check_new_password, hash_password, new_totp_secret, random_token, same_hash, token_hash,
    totp_uri, verify_totp, CredentialError, TotpSecret,
};
use super::issue::blocking;
use super::journal::{audit, notice_text, notify, Notice, Subject};
use super::login::PEOPLE_WRITES;
use super::{Error, Services};
use crate::model::{
    email_problem, normalised_address, now_unix, subject_text_problem, Actor, ActorId, AuditAction,
    AuditOutcome, LoginGuard, NoticeEvent, NotificationKind, Person, PersonState, Role,
    UnixSeconds,
};

/// The path of the activation page under `people.portal_url`.
pub const ACTIVATE_PATH: &str = "/activate";

/// Longest invitation token accepted (a real one is 43 characters).
const MAX_TOKEN_CHARS: usize = 64;

/// Longest name accepted.
const MAX_NAME_CHARS: usize = 200;

impl From<CredentialError> for Error {
    fn from(e: CredentialError) -> Error {
        match e {
            CredentialError::Random => Error::Randomness,
            other => Error::invalid("password", other.to_string()),
        }
    }
}

/// Whom to invite.
#[derive(Debug, Clone)]
pub struct NewPerson {
    /// Organisation; `None` for a server operator.
    pub cvr: Option<String>,
    /// Name.
    pub name: String,
    /// E-mail address: the login name.
    pub email: String,
    /// Roles.
    pub roles: Vec<Role>,
}

/// What an activation link shows before the person sets a password.
#[derive(Debug)]
pub struct Activation {
    /// The invited person.
    pub person: Person,
    /// The secret to add to an authenticator app.
    pub totp_secret: TotpSecret,
    /// The same as an `otpauth://` URI (for a QR code).
    pub totp_uri: String,
}

/// Checks a new person's fields and roles against the actor's.
fn check_new_person(actor: &Actor, new: &NewPerson) -> Result<(), Error> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(Error::invalid(
            "name",
            format!("must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    if let Some(problem) = subject_text_problem(name) {
        return Err(Error::invalid("name", problem));
    }
    if let Some(problem) = email_problem(&new.email) {
        return Err(Error::invalid("email", problem));
    }
    match &new.cvr {
        Some(cvr) => {
            if !actor.may_access(cvr) {
                return Err(Error::NotFound("organisation"));
            }
            if let Some(r) = new.roles.iter().find(|r| !r.is_organisation_role()) {
                return Err(Error::invalid(
                    "roles",
                    format!("{r} is a role of the server, not of an organisation"),
                ));
            }
        }
        None => {
            if !actor.is_operator() {
                return Err(Error::Forbidden(
                    "only a server operator invites server operators".into(),
                ));
            }
            if new.roles != [Role::Operator] {
                return Err(Error::invalid(
                    "roles",
                    "a person without an organisation is a server operator: roles [\"operator\"]",
                ));
            }
        }
    }
    // A server operator grants any organisation role; anyone else only what
    // they hold themselves.
    let grantable =
        |r: &Role| actor.roles.has(*r) || (actor.is_operator() && r.is_organisation_role());
    if let Some(r) = new.roles.iter().find(|r| !grantable(r)) {
        return Err(Error::Forbidden(format!(
            "you cannot grant the role {r}, which you do not hold"
        )));
    }
    Ok(())
}

/// Invites a person: stores them invited and sends the activation link.
/// Durable when it returns.
pub async fn invite(svc: Services<'_>, actor: &Actor, new: &NewPerson) -> Result<Person, Error> {
    check_new_person(actor, new)?;
    let org_name = match &new.cvr {
        Some(cvr) => Some(
            svc.store
                .org(cvr)?
                .filter(|_| actor.may_access(cvr))
                .ok_or(Error::NotFound("organisation"))?
                .name,
        ),
        None => None,
    };
    let now = now_unix();
    let token = random_token()?;
    let mut roles = new.roles.clone();
    roles.sort();
    roles.dedup();
    let person = Person {
        id: uuid::Uuid::new_v4().to_string(),
        cvr: new.cvr.clone(),
        name: new.name.trim().to_owned(),
        email: normalised_address(&new.email),
        roles,
        state: PersonState::Invited {
            token_hash: token_hash(&token),
            expires_at: now.saturating_add(svc.config.people.invitation_ttl_secs()),
            totp_secret: new_totp_secret()?.as_bytes().to_vec(),
        },
        guard: LoginGuard::default(),
        created_at: now,
        created_by: actor.id.to_string(),
    };
    if !svc.store.insert_new_person(&person)? {
        return Err(Error::Conflict(format!(
            "{} is already a person of this organisation",
            person.email
        )));
    }
    let roles: Vec<&str> = person.roles.iter().map(|r| r.as_str()).collect();
    record(
        svc,
        &actor.id,
        &person,
        &format!("invited with roles {roles:?}"),
    )?;
    send_invitation(svc, &person, org_name.as_deref(), &token)?;
    svc.store.durable().await?;
    Ok(person)
}

/// Sends a new activation link to an invited person (the old one stops
/// working). Durable when it returns.
pub async fn reinvite(svc: Services<'_>, actor: &Actor, id: &str) -> Result<Person, Error> {
    let _one_at_a_time = PEOPLE_WRITES.lock().await;
    let mut person = visible_person(svc, actor, id)?;
    let token = random_token()?;
    let expires = now_unix().saturating_add(svc.config.people.invitation_ttl_secs());
    person
        .reinvite(token_hash(&token), expires)
        .map_err(|e| Error::Conflict(e.to_string()))?;
    svc.store.put_person(&person)?;
    record(svc, &actor.id, &person, "sent a new invitation link")?;
    let org_name = match &person.cvr {
        Some(cvr) => svc.store.org(cvr)?.map(|o| o.name),
        None => None,
    };
    send_invitation(svc, &person, org_name.as_deref(), &token)?;
    svc.store.durable().await?;
    Ok(person)
}

fn send_invitation(
    svc: Services<'_>,
    person: &Person,
    organisation: Option<&str>,
    token: &str,
) -> Result<(), Error> {
    let link = svc
        .config
        .people
        .portal_link(&format!("{ACTIVATE_PATH}?token={token}"));
    let text = notice_text(
        svc,
        &NoticeEvent::Invitation {
            name: &person.name,
            organisation,
            link: &link,
            valid_hours: svc.config.people.invitation_ttl_hours,
        },
    );
    notify(
        svc,
        Notice {
            kind: NotificationKind::Invitation,
            cvr: person.cvr.as_deref().unwrap_or(""),
            to: Some(person.email.clone()),
            subject: text.subject,
            body: text.body,
            serial: None,
            order_id: None,
        },
    )
}

/// Deactivates a person, for good, and ends their sessions. Durable when
/// it returns.
pub async fn deactivate(svc: Services<'_>, actor: &Actor, id: &str) -> Result<Person, Error> {
    let _one_at_a_time = PEOPLE_WRITES.lock().await;
    let mut person = visible_person(svc, actor, id)?;
    // As with granting: no one removes a person who holds a role they do not.
    if !actor.is_operator() && !actor.roles.contains(person.role_set()) {
        return Err(Error::Forbidden(
            "you cannot deactivate a person who holds a role you do not hold".into(),
        ));
    }
    if actor.person.as_deref() == Some(person.key().as_str()) {
        return Err(Error::Conflict(
            "you cannot deactivate yourself; ask another administrator".into(),
        ));
    }
    person
        .deactivate(now_unix(), &actor.id.to_string())
        .map_err(|e| Error::Conflict(e.to_string()))?;
    svc.store.put_person(&person)?;
    end_sessions(svc, &person.key())?;
    record(svc, &actor.id, &person, "deactivated")?;
    svc.store.durable().await?;
    Ok(person)
}

/// Removes every session of the person under `key`.
pub(super) fn end_sessions(svc: Services<'_>, key: &str) -> Result<(), Error> {
    let mut ended = Vec::new();
    for item in svc.store.sessions() {
        let (hash, session) = item?;
        if session.person == key {
            ended.push(hash);
        }
    }
    for hash in ended {
        svc.store.remove_session(&hash)?;
    }
    Ok(())
}

/// The invited person whose link carries `token`, still working at `now`.
/// Every invited person's hash is compared, whether or not one matched.
fn invited_by_token(svc: Services<'_>, token: &str, now: UnixSeconds) -> Result<Person, Error> {
    let bad = || Error::Unauthenticated("the activation link is not valid".into());
    if token.is_empty() || token.len() > MAX_TOKEN_CHARS {
        return Err(bad());
    }
    let hash = token_hash(token);
    let mut found = None;
    for item in svc.store.people() {
        let person = item?;
        if let PersonState::Invited { token_hash, .. } = &person.state {
            if same_hash(token_hash, &hash) {
                found = Some(person);
            }
        }
    }
    let person = found.ok_or_else(bad)?;
    match person.state {
        PersonState::Invited { expires_at, .. } if now < expires_at => Ok(person),
        _ => Err(Error::Unauthenticated(
            "the activation link has expired; ask your administrator for a new one".into(),
        )),
    }
}

/// What the activation link `token` shows: who is invited, and the TOTP
/// secret to enrol.
pub fn activation(svc: Services<'_>, token: &str) -> Result<Activation, Error> {
    let person = invited_by_token(svc, token, now_unix())?;
    let PersonState::Invited { totp_secret, .. } = &person.state else {
        return Err(Error::Inconsistent(
            "an invitation without its secret".into(),
        ));
    };
    let secret = TotpSecret::from_bytes(totp_secret.clone());
    let uri = totp_uri(&secret, &svc.config.people.totp_issuer, &person.email);
    Ok(Activation {
        person,
        totp_secret: secret,
        totp_uri: uri,
    })
}

/// Activates the account invited by `token` with `password` and the first
/// `code` of the enrolled authenticator. Durable when it returns.
pub async fn activate(
    svc: Services<'_>,
    token: &str,
    password: &str,
    code: &str,
) -> Result<Person, Error> {
    check_new_password(password)?;
    let _one_at_a_time = PEOPLE_WRITES.lock().await;
    let now = now_unix();
    let mut person = invited_by_token(svc, token, now)?;
    let PersonState::Invited { totp_secret, .. } = &person.state else {
        return Err(Error::Inconsistent(
            "an invitation without its secret".into(),
        ));
    };
    let secret = TotpSecret::from_bytes(totp_secret.clone());
    let step = verify_totp(&secret, code, now, None).ok_or_else(|| {
        Error::invalid(
            "code",
            "is not the code your authenticator shows now for this account",
        )
    })?;
    let password = zeroize::Zeroizing::new(password.to_owned());
    let hash = blocking("password hashing", move || Ok(hash_password(&password)?)).await?;
    person
        .activate(hash, step, now)
        .map_err(|e| Error::Conflict(e.to_string()))?;
    svc.store.put_person(&person)?;
    record(
        svc,
        &ActorId::Person(person.audit_name()),
        &person,
        "activated",
    )?;
    svc.store.durable().await?;
    Ok(person)
}

/// The person with public id `id`, if the actor may see them.
pub fn visible_person(svc: Services<'_>, actor: &Actor, id: &str) -> Result<Person, Error> {
    for item in svc.store.people() {
        let person = item?;
        if person.id == id {
            let visible = match &person.cvr {
                Some(cvr) => actor.may_access(cvr),
                None => actor.is_operator(),
            };
            return if visible {
                Ok(person)
            } else {
                Err(Error::NotFound("person"))
            };
        }
    }
    Err(Error::NotFound("person"))
}

/// The people the actor may see: an organisation's, or the operators
/// (`cvr` `None` for an operator asks for the operators).
pub fn list_people(
    svc: Services<'_>,
    actor: &Actor,
    cvr: Option<&str>,
) -> Result<Vec<Person>, Error> {
    match cvr {
        Some(cvr) if !actor.may_access(cvr) => return Err(Error::NotFound("organisation")),
        None if !actor.is_operator() => return Err(Error::NotFound("organisation")),
        _ => {}
    }
    let mut out = Vec::new();
    for item in svc.store.people() {
        let person = item?;
        if person.cvr.as_deref() == cvr {
            out.push(person);
        }
    }
    Ok(out)
}

fn record(svc: Services<'_>, actor: &ActorId, person: &Person, what: &str) -> Result<(), Error> {
    audit(
        svc,
        actor,
        AuditAction::Person,
        AuditOutcome::Done,
        Subject {
            cvr: person.cvr.as_deref(),
            profile_id: None,
            serial: None,
            order_id: None,
        },
        format!("{} ({}): {what}", person.email, person.id),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Roles;

    fn actor(cvr: Option<&str>, roles: &[Role]) -> Actor {
        Actor {
            id: ActorId::Named("t".into()),
            cvr: cvr.map(str::to_owned),
            roles: Roles::of(roles),
            person: None,
        }
    }

    fn new(cvr: Option<&str>, roles: &[Role]) -> NewPerson {
        NewPerson {
            cvr: cvr.map(str::to_owned),
            name: "Ann Andersen".into(),
            email: "ann@example.dk".into(),
            roles: roles.to_vec(),
        }
    }

    #[test]
    fn no_one_grants_a_role_they_do_not_hold() {
        let user_admin = actor(Some("12345678"), &[Role::UserAdmin]);
        assert!(check_new_person(&user_admin, &new(Some("12345678"), &[])).is_ok());
        assert!(check_new_person(&user_admin, &new(Some("12345678"), &[Role::UserAdmin])).is_ok());
        assert!(matches!(
            check_new_person(&user_admin, &new(Some("12345678"), &[Role::OrgAdmin])),
            Err(Error::Forbidden(_))
        ));
        assert!(matches!(
            check_new_person(&user_admin, &new(Some("87654321"), &[])),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            check_new_person(&user_admin, &new(None, &[Role::Operator])),
            Err(Error::Forbidden(_))
        ));
        let operator = actor(None, &[Role::Operator]);
        assert!(check_new_person(&operator, &new(Some("1"), &[Role::OrgAdmin])).is_ok());
        assert!(check_new_person(&operator, &new(None, &[Role::Operator])).is_ok());
        assert!(matches!(
            check_new_person(&operator, &new(Some("1"), &[Role::Operator])),
            Err(Error::Invalid { field: "roles", .. })
        ));
        let mut bad = new(Some("12345678"), &[]);
        bad.email = "blåbær@example.dk".into();
        assert!(matches!(
            check_new_person(&user_admin, &bad),
            Err(Error::Invalid { field: "email", .. })
        ));
    }
}
