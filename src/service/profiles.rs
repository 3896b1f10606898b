//! Certificate profiles: created (with an optional first order, as one
//! call) and changed, unique by name within an organisation.

use super::journal::{audit, Subject};
use super::orders::{place_order, visible_profile, CreatedOrder, OrderRequest};
use super::organisations::{catalogue_lock, visible_org};
use super::{Error, Services};
use crate::model::{Actor, AuditAction, AuditOutcome, Organisation, Profile};

/// Refuses a name already used in the organisation, or a second default profile.
fn check_unique(svc: Services<'_>, p: &Profile) -> Result<(), Error> {
    for other in svc.store.profiles() {
        let other = other?;
        if other.cvr != p.cvr || other.id == p.id {
            continue;
        }
        if other.name.eq_ignore_ascii_case(&p.name) {
            return Err(Error::Conflict(format!(
                "a profile named {:?} already exists in organisation {}; profile names are unique within an organisation",
                other.name, p.cvr
            )));
        }
        if p.org_default && other.org_default {
            return Err(Error::Conflict(format!(
                "profile {:?} ({}) is already the organisation's default; clear org_default there first",
                other.name, other.id
            )));
        }
    }
    Ok(())
}

/// Creates a profile in organisation `cvr` (which the actor must see), as
/// `build` makes it from the organisation, and, if `build` asks for one,
/// orders a certificate for it: both or neither (a refused order removes the
/// profile again). Audited; durable when it returns.
pub async fn create_profile<E, F>(
    svc: Services<'_>,
    actor: &Actor,
    cvr: &str,
    build: F,
) -> Result<(Profile, Option<CreatedOrder>), E>
where
    E: From<Error>,
    F: FnOnce(&Organisation) -> Result<(Profile, Option<OrderRequest>), E>,
{
    let org = visible_org(svc, actor, cvr)
        .map_err(|_| Error::invalid("cvr", format!("no organisation with CVR {cvr}")))?;
    let (profile, order) = build(&org)?;
    let created = store_profile(svc, actor, &profile, order.as_ref()).await?;
    Ok((profile, created))
}

/// Stores a new profile, with its order if one comes with it, as one unit:
/// if the order is refused, the profile goes again.
async fn store_profile(
    svc: Services<'_>,
    actor: &Actor,
    profile: &Profile,
    order: Option<&OrderRequest>,
) -> Result<Option<CreatedOrder>, Error> {
    let created = {
        let _guard = catalogue_lock();
        check_unique(svc, profile)?;
        svc.store.put_profile(profile)?;
        let created = match order.map(|req| place_order(svc, actor, req, None)) {
            None => None,
            Some(Ok(created)) => Some(created),
            Some(Err(e)) => {
                // The call fails as a whole: the profile goes again.
                svc.store.remove_profile(&profile.id)?;
                return Err(e);
            }
        };
        audit(
            svc,
            &actor.id,
            AuditAction::Configure,
            AuditOutcome::Done,
            Subject {
                cvr: Some(&profile.cvr),
                profile_id: Some(&profile.id),
                ..Subject::default()
            },
            format!(
                "profile created: {:?} (label {})",
                profile.name, profile.est_label
            ),
        )?;
        created
    };
    svc.store.durable().await?;
    Ok(created)
}

/// A profile after a change, and whether its rights or seal changed.
#[derive(Debug, Clone)]
pub struct ChangedProfile {
    /// The profile as stored now.
    pub profile: Profile,
    /// Whether its rights or seal setting changed (certificates already
    /// issued keep the old ones).
    pub rights_or_seal: bool,
}

/// Changes profile `id` with `change` (given the profile and its
/// organisation; it checks the result as the protocol requires), keeps names
/// unique, and audits it; durable when it returns.
pub async fn update_profile<E, F>(
    svc: Services<'_>,
    actor: &Actor,
    id: &str,
    change: F,
) -> Result<ChangedProfile, E>
where
    E: From<Error>,
    F: FnOnce(&mut Profile, &Organisation) -> Result<(), E>,
{
    let changed = {
        let _guard = catalogue_lock();
        let before = visible_profile(svc, actor, id)?;
        let org = svc
            .store
            .org(&before.cvr)
            .map_err(Error::from)?
            .ok_or_else(|| {
                Error::Inconsistent(format!(
                    "profile {} belongs to organisation {}, which is missing",
                    before.id, before.cvr
                ))
            })?;
        let mut profile = before.clone();
        change(&mut profile, &org)?;
        let rights_or_seal = profile.rights != before.rights || profile.seal != before.seal;
        if profile != before {
            check_unique(svc, &profile)?;
            svc.store.put_profile(&profile).map_err(Error::from)?;
            audit(
                svc,
                &actor.id,
                AuditAction::Configure,
                AuditOutcome::Done,
                Subject {
                    cvr: Some(&profile.cvr),
                    profile_id: Some(&profile.id),
                    ..Subject::default()
                },
                format!("profile changed: {:?}", profile.name),
            )?;
        }
        ChangedProfile {
            profile,
            rights_or_seal,
        }
    };
    svc.store.durable().await.map_err(Error::from)?;
    Ok(changed)
}
