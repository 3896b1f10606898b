//! Reads: the lists and searches the protocols answer with. Each applies the
//! visibility rules (who may see what) and the filters here, so a handler
//! only parses its query and encodes the answer.

use std::collections::HashMap;

use super::orders::OrderShown;
use super::tokens::token_owner;
use super::{visible_profile, Error, Services};
use crate::model::{
    Actor, CertRecord, CertState, Notification, Order, OrderHolder, OrderStatus, Organisation,
    Profile, ProfileState, Serial, TokenRecord, UnixSeconds,
};

/// Which orders [`list_orders`] answers; `None` matches any.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter<'a> {
    /// The order's profile.
    pub profile_id: Option<&'a str>,
    /// The order's organisation.
    pub cvr: Option<&'a str>,
    /// The user's e-mail (case-insensitive); profile orders never match.
    pub user_email: Option<&'a str>,
}

/// The orders the actor may see that match `filter`, deleted ones left out,
/// oldest first.
pub fn list_orders(
    svc: Services<'_>,
    actor: &Actor,
    filter: &OrderFilter<'_>,
    now: UnixSeconds,
) -> Result<Vec<(Order, OrderShown)>, Error> {
    let mut orders = Vec::new();
    for order in svc.store.orders() {
        let order = order?;
        let user_matches = filter.user_email.is_none_or(|wanted| match &order.holder {
            OrderHolder::User { email, .. } => email.eq_ignore_ascii_case(wanted),
            OrderHolder::Profile => false,
        });
        if order.status != OrderStatus::Deleted
            && actor.may_access(&order.cvr)
            && filter.profile_id.is_none_or(|p| p == order.profile_id)
            && filter.cvr.is_none_or(|c| c == order.cvr)
            && user_matches
        {
            orders.push(order);
        }
    }
    orders.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(orders
        .into_iter()
        .map(|o| {
            let shown = super::orders::order_shown(svc, &o, now);
            (o, shown)
        })
        .collect())
}

/// The organisations the actor may see, by CVR.
pub fn list_orgs(svc: Services<'_>, actor: &Actor) -> Result<Vec<Organisation>, Error> {
    let mut orgs = Vec::new();
    for org in svc.store.orgs() {
        let org = org?;
        if actor.may_access(&org.cvr) {
            orgs.push(org);
        }
    }
    orgs.sort_by(|a, b| a.cvr.cmp(&b.cvr));
    Ok(orgs)
}

/// Which profiles [`search_profiles`] answers; `None` matches any.
#[derive(Debug, Clone, Default)]
pub struct ProfileFilter<'a> {
    /// Text (lower case) found in the profile's UUID, name, contact person's
    /// name or e-mail, or the e-mail in its certificates.
    pub text: Option<&'a str>,
    /// The profile's organisation.
    pub cvr: Option<&'a str>,
    /// The profile's state now.
    pub state: Option<ProfileState>,
}

/// How a profile is used now: its valid certificates and open orders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProfileUse {
    /// Certificates valid now (issued, not expired, not revoked or blocked).
    pub valid_certs: usize,
    /// Orders pending or approved.
    pub open_orders: usize,
}

impl ProfileUse {
    /// The profile's state.
    pub fn state(self) -> ProfileState {
        ProfileState::of(self.valid_certs, self.open_orders)
    }
}

/// How every profile the actor may see (of organisation `cvr` only, if
/// given) is used at `now`, by profile id: one pass over the certificates
/// and one over the orders, whatever the number of profiles. A profile
/// without certificates or orders has no entry (its use is the default).
fn profile_uses(
    svc: Services<'_>,
    actor: &Actor,
    cvr: Option<&str>,
    now: UnixSeconds,
) -> Result<HashMap<String, ProfileUse>, Error> {
    let wanted = |c: &str| actor.may_access(c) && cvr.is_none_or(|w| w == c);
    let mut uses: HashMap<String, ProfileUse> = HashMap::new();
    for c in svc.store.certs() {
        let c = c?;
        if wanted(&c.cvr) && c.state(now) == CertState::Issued {
            uses.entry(c.profile_id).or_default().valid_certs += 1;
        }
    }
    for o in svc.store.orders() {
        let o = o?;
        if wanted(&o.cvr) && matches!(o.status, OrderStatus::Pending | OrderStatus::Approved) {
            uses.entry(o.profile_id).or_default().open_orders += 1;
        }
    }
    Ok(uses)
}

/// The profiles the actor may see that match `filter`, by name
/// (case-insensitive), CVR and id.
pub fn search_profiles(
    svc: Services<'_>,
    actor: &Actor,
    filter: &ProfileFilter<'_>,
    now: UnixSeconds,
) -> Result<Vec<Profile>, Error> {
    // Certificates and orders are read only when the state is asked about.
    let uses = match filter.state {
        Some(_) => Some(profile_uses(svc, actor, filter.cvr, now)?),
        None => None,
    };
    let state_matches = |p: &Profile| match (filter.state, &uses) {
        (Some(wanted), Some(uses)) => {
            uses.get(&p.id).copied().unwrap_or_default().state() == wanted
        }
        _ => true,
    };
    let mut found = Vec::new();
    for p in svc.store.profiles() {
        let p = p?;
        if actor.may_access(&p.cvr)
            && filter.cvr.is_none_or(|c| c == p.cvr)
            && filter.text.is_none_or(|n| matches_text(&p, n))
            && state_matches(&p)
        {
            found.push(p);
        }
    }
    sort_profiles(&mut found);
    Ok(found)
}

/// Profiles by name (case-insensitive), CVR and id.
fn sort_profiles(profiles: &mut [Profile]) {
    profiles.sort_by(|a, b| {
        (a.name.to_lowercase(), &a.cvr, &a.id).cmp(&(b.name.to_lowercase(), &b.cvr, &b.id))
    });
}

/// Profiles for an export, each with its use now, sorted as the search sorts.
#[derive(Debug, Clone, Default)]
pub struct ProfileExport {
    /// The profiles with their use.
    pub profiles: Vec<(Profile, ProfileUse)>,
}

/// The profiles of organisation `cvr` (which the actor must see and which
/// must exist); without `cvr`, the actor's own organisation's, or for an
/// operator every profile; in state `state` if given. Each comes with its
/// use at `now`; profiles without certificates are there too. Sorted as the
/// search sorts; answers the CVR exported, if any.
pub fn export_profiles(
    svc: Services<'_>,
    actor: &Actor,
    cvr: Option<&str>,
    state: Option<ProfileState>,
    now: UnixSeconds,
) -> Result<(Option<String>, ProfileExport), Error> {
    let cvr = export_scope(svc, actor, cvr)?;
    let uses = profile_uses(svc, actor, cvr.as_deref(), now)?;
    let mut found = Vec::new();
    for p in svc.store.profiles() {
        let p = p?;
        if actor.may_access(&p.cvr) && cvr.as_deref().is_none_or(|c| c == p.cvr) {
            found.push(p);
        }
    }
    sort_profiles(&mut found);
    let profiles = found
        .into_iter()
        .map(|p| {
            let used = uses.get(&p.id).copied().unwrap_or_default();
            (p, used)
        })
        .filter(|(_, used)| state.is_none_or(|s| used.state() == s))
        .collect();
    Ok((cvr, ProfileExport { profiles }))
}

/// Whether `p` matches a search text (lower case).
fn matches_text(p: &Profile, needle: &str) -> bool {
    let has = |s: &str| s.to_lowercase().contains(needle);
    has(&p.id)
        || has(&p.name)
        || p.contact
            .as_ref()
            .is_some_and(|c| has(&c.name) || has(&c.email))
        || p.email.as_deref().is_some_and(has)
}

/// The tokens of organisation `cvr` (which the actor must see), or the
/// operators' own for `None` (operators only), with their hashes; unsorted.
pub fn list_tokens(
    svc: Services<'_>,
    actor: &Actor,
    cvr: Option<&str>,
) -> Result<Vec<([u8; 32], TokenRecord)>, Error> {
    let owner = token_owner(svc, actor, cvr, false, "list the operators' tokens")?;
    let mut tokens = Vec::new();
    for item in svc.store.tokens() {
        let (hash, rec) = item?;
        if rec.cvr == owner {
            tokens.push((hash, rec));
        }
    }
    Ok(tokens)
}

/// The notification outbox the actor may see, of organisation `cvr` if
/// given, in the store's order (oldest first).
pub fn list_notifications(
    svc: Services<'_>,
    actor: &Actor,
    cvr: Option<&str>,
) -> Result<Vec<Notification>, Error> {
    let mut items = Vec::new();
    for n in svc.store.notifications() {
        let n = n?;
        if actor.may_access(&n.cvr) && cvr.is_none_or(|c| c == n.cvr) {
            items.push(n);
        }
    }
    Ok(items)
}

/// Certificates for an export, each with its profile's name (empty if the
/// profile is gone), sorted by profile name, notAfter and serial.
#[derive(Debug, Clone, Default)]
pub struct CertExport {
    /// The certificates with their profile names.
    pub certs: Vec<(CertRecord, String)>,
}

impl CertExport {
    fn of(svc: Services<'_>, certs: Vec<CertRecord>) -> Result<CertExport, Error> {
        let mut names: HashMap<String, String> = HashMap::new();
        for p in svc.store.profiles() {
            let p = p?;
            names.insert(p.id, p.name);
        }
        let mut certs: Vec<(CertRecord, String)> = certs
            .into_iter()
            .map(|c| {
                let name = names.get(&c.profile_id).cloned().unwrap_or_default();
                (c, name)
            })
            .collect();
        certs.sort_by(|(a, an), (b, bn)| {
            (an.as_str(), a.not_after, a.serial).cmp(&(bn.as_str(), b.not_after, b.serial))
        });
        Ok(CertExport { certs })
    }
}

/// The certificates of profile `profile_id`, which the actor must see.
pub fn export_profile_certs(
    svc: Services<'_>,
    actor: &Actor,
    profile_id: &str,
) -> Result<(Profile, CertExport), Error> {
    let profile = visible_profile(svc, actor, profile_id)?;
    let mut certs = Vec::new();
    for c in svc.store.certs() {
        let c = c?;
        if c.profile_id == profile.id {
            certs.push(c);
        }
    }
    let export = CertExport::of(svc, certs)?;
    Ok((profile, export))
}

/// The organisation an export is of: `cvr` (which the actor must see and
/// which must exist); without it, the actor's own, or for an operator none
/// (everything).
fn export_scope(
    svc: Services<'_>,
    actor: &Actor,
    cvr: Option<&str>,
) -> Result<Option<String>, Error> {
    Ok(match (cvr, actor.cvr.as_deref()) {
        (Some(c), _) if !actor.may_access(c) || svc.store.org(c)?.is_none() => {
            return Err(Error::NotFound("organisation"))
        }
        (Some(c), _) => Some(c.to_owned()),
        (None, own) => own.map(str::to_owned),
    })
}

/// The certificates of organisation `cvr` (which the actor must see and
/// which must exist); without `cvr`, the actor's own organisation's, or for
/// an operator every certificate. Answers the CVR exported, if any.
pub fn export_org_certs(
    svc: Services<'_>,
    actor: &Actor,
    cvr: Option<&str>,
) -> Result<(Option<String>, CertExport), Error> {
    let cvr = export_scope(svc, actor, cvr)?;
    let mut certs = Vec::new();
    for c in svc.store.certs() {
        let c = c?;
        if cvr.as_deref().is_none_or(|wanted| wanted == c.cvr) {
            certs.push(c);
        }
    }
    let export = CertExport::of(svc, certs)?;
    Ok((cvr, export))
}

/// What the public certificate database is asked for; all given must match.
#[derive(Debug, Clone, Default)]
pub struct PublicFilter<'a> {
    /// The certificate's e-mail (case-insensitive).
    pub email: Option<&'a str>,
    /// The certificate's organisation.
    pub cvr: Option<&'a str>,
    /// The certificate's serial: a direct look-up.
    pub serial: Option<Serial>,
}

/// Published certificates matching `filter`: at most `max` of them, in the
/// store's order, and how many matched in all.
pub fn search_public_certs(
    svc: Services<'_>,
    filter: &PublicFilter<'_>,
    max: usize,
) -> Result<(Vec<CertRecord>, usize), Error> {
    let wanted = |c: &CertRecord| {
        c.published
            && filter.cvr.is_none_or(|w| w == c.cvr)
            && filter.email.is_none_or(|w| {
                c.email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(w))
            })
    };
    let mut items = Vec::new();
    let mut total = 0;
    if let Some(serial) = filter.serial {
        // A direct look-up; no need to scan.
        if let Some(c) = svc.store.cert(&serial)?.filter(|c| wanted(c)) {
            total = 1;
            items.push(c);
        }
    } else {
        for c in svc.store.certs() {
            let c = c?;
            if wanted(&c) {
                total += 1;
                if items.len() < max {
                    items.push(c);
                }
            }
        }
    }
    Ok((items, total))
}

/// The profile whose CSR attributes an EST client gets: the one labelled
/// `label`, else the default profile of organisation `cvr`. `Ok(None)` when
/// there is none.
pub fn csrattrs_profile(
    svc: Services<'_>,
    label: Option<&str>,
    cvr: Option<&str>,
) -> Result<Option<Profile>, Error> {
    match (label, cvr) {
        (Some(l), _) => Ok(svc.store.profile_by_label(l)?),
        (None, Some(c)) => Ok(svc.store.default_profile(c)?),
        (None, None) => Ok(None),
    }
}

/// The organisation `cvr`, for a `/csrattrs` template that names the
/// caller's own organisation.
pub fn csrattrs_organisation(svc: Services<'_>, cvr: &str) -> Result<Option<Organisation>, Error> {
    Ok(svc.store.org(cvr)?)
}
