//! Organisations: created and changed by server operators. Their profiles'
//! fit to the organisation is checked here, under the catalogue lock.

use std::sync::{Mutex, MutexGuard, PoisonError};

use super::journal::{audit, Subject};
use super::{Error, Services};
use crate::model::{Actor, AuditAction, AuditOutcome, Organisation, Role};

/// Serialises changes to organisations and profiles, so that a uniqueness or
/// consistency check and the write after it are one step.
static CATALOGUE_WRITES: Mutex<()> = Mutex::new(());

pub(super) fn catalogue_lock() -> MutexGuard<'static, ()> {
    CATALOGUE_WRITES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// The organisation `cvr` if the actor may see it.
pub fn visible_org(svc: Services<'_>, actor: &Actor, cvr: &str) -> Result<Organisation, Error> {
    match svc.store.org(cvr)? {
        Some(o) if actor.may_access(&o.cvr) => Ok(o),
        _ => Err(Error::NotFound("organisation")),
    }
}

/// Creates an organisation (server operators only) and audits it; durable
/// when it returns.
pub async fn create_org(svc: Services<'_>, actor: &Actor, org: &Organisation) -> Result<(), Error> {
    if !actor.is_operator() {
        return Err(Error::Forbidden(
            "only a server operator can create organisations".into(),
        ));
    }
    if !svc.store.insert_new_org(org)? {
        return Err(Error::Conflict(format!(
            "an organisation with CVR {} already exists",
            org.cvr
        )));
    }
    audit(
        svc,
        &actor.id,
        AuditAction::Configure,
        AuditOutcome::Done,
        Subject {
            cvr: Some(&org.cvr),
            ..Subject::default()
        },
        format!("organisation created: {}", org.name),
    )?;
    svc.store.durable().await?;
    Ok(())
}

/// Changes organisation `cvr` with `change` (server operators, and the
/// organisation's logged-in organisation administrators but for its name), refuses
/// a change its profiles no longer fit, and audits what changed; durable when
/// it returns. `change` checks the result as the protocol requires.
pub async fn update_org<E, F>(
    svc: Services<'_>,
    actor: &Actor,
    cvr: &str,
    change: F,
) -> Result<Organisation, E>
where
    E: From<Error>,
    F: FnOnce(&mut Organisation) -> Result<(), E>,
{
    let org = {
        let _guard = catalogue_lock();
        let mut org = visible_org(svc, actor, cvr)?;
        // An organisation administrator, logged in, changes its certificate
        // settings; a machine credential of the organisation never does.
        let org_admin = actor.person.is_some() && actor.roles.has(Role::OrgAdmin);
        if !actor.is_operator() && !org_admin {
            return Err(Error::Forbidden(
                "an organisation's settings are changed by its organisation administrators \
                 (logged in) or a server operator, not by a machine credential"
                    .into(),
            )
            .into());
        }
        let before = org.clone();
        change(&mut org)?;
        if !actor.is_operator() && org.name != before.name {
            return Err(Error::Forbidden(
                "only a server operator changes an organisation's name (it is the CVR register's)"
                    .into(),
            )
            .into());
        }
        check_profiles_still_fit(svc, &org)?;
        if org != before {
            svc.store.put_org(&org).map_err(Error::from)?;
            audit(
                svc,
                &actor.id,
                AuditAction::Configure,
                AuditOutcome::Done,
                Subject {
                    cvr: Some(&org.cvr),
                    ..Subject::default()
                },
                format!("organisation changed: {}", changed_fields(&before, &org)),
            )?;
        }
        org
    };
    svc.store.durable().await.map_err(Error::from)?;
    Ok(org)
}

/// The names of the fields that differ, for the audit log.
fn changed_fields(before: &Organisation, after: &Organisation) -> String {
    let changed: Vec<&str> = [
        ("name", after.name != before.name),
        (
            "allow_user_certs",
            after.allow_user_certs != before.allow_user_certs,
        ),
        ("allow_seal", after.allow_seal != before.allow_seal),
        ("p_numbers", after.p_numbers != before.p_numbers),
        ("se_numbers", after.se_numbers != before.se_numbers),
    ]
    .into_iter()
    .filter_map(|(name, differs)| differs.then_some(name))
    .collect();
    changed.join(", ")
}

/// Refuses a change that would leave a profile with a seal, P number or SE
/// number the organisation no longer has.
fn check_profiles_still_fit(svc: Services<'_>, org: &Organisation) -> Result<(), Error> {
    for p in svc.store.profiles() {
        let p = p?;
        if p.cvr != org.cvr {
            continue;
        }
        if p.seal && !org.allow_seal {
            return Err(Error::Conflict(format!(
                "profile {:?} ({}) has seal generation on; turn it off there first",
                p.name, p.id
            )));
        }
        if let Some(n) = p.p_number.as_ref().filter(|n| !org.p_numbers.contains(n)) {
            return Err(Error::Conflict(format!(
                "P number {n} is used by profile {:?} ({}); change the profile first",
                p.name, p.id
            )));
        }
        if let Some(n) = p.se_number.as_ref().filter(|n| !org.se_numbers.contains(n)) {
            return Err(Error::Conflict(format!(
                "SE number {n} is used by profile {:?} ({}); change the profile first",
                p.name, p.id
            )));
        }
    }
    Ok(())
}
