//! Enrolment by API identification: an IdM system, known by its client
//! certificate, enrols under its organisation's API profiles; each issuance
//! creates an order that is already Issued. Profiles that require approval
//! hold the request instead (see [`super::held`]). A CSR that names a user
//! (an e-mail address in its subjectAltName) collects that user's pending
//! order instead, as a user certificate ([`pending_user_order`]).

use x509_cert::Certificate as X509;

use super::email;
use super::held::{self, Enrolled, HeldRequest};
use super::issue::{self, cpu, AuditNote, Certificate, NOT_PERMITTED};
use super::{Error, Services};
use crate::auth::Principal;
use crate::ca::csr::{self, VerifiedCsr};
use crate::ca::CertTemplate;
use crate::model::{now_unix, CertState, Serial, SystemRight};
use crate::model::{
    AuditAction, Identification, Issuance, Order, OrderHolder, OrderStatus, Organisation, Profile,
};
use crate::policy::{self, NamedUser};
use crate::store::{PendingIssuance, StoreError};
use crate::tls::ChannelBinding;

/// Enrols `principal` (an IdM system's certificate) under the profile of
/// `label`, or its organisation's default, with the CSR `csr_der` sent on a
/// connection with `binding`. Durable when it returns.
pub async fn enrol(
    s: Services<'_>,
    principal: Principal,
    label: Option<&str>,
    csr_der: Vec<u8>,
    binding: &ChannelBinding,
) -> Result<Enrolled, Error> {
    if !principal.has_right(SystemRight::EstEnroll) {
        return Err(Error::Forbidden(
            "the client certificate does not carry the est-enroll right".into(),
        ));
    }
    let (org, profile) = api_profile(s, &principal, label)?;
    check_rights_held(&principal, &profile)?;
    let held = profile.approval_required
        || email::awaits_validation(s, &profile, &OrderHolder::Profile, now_unix());
    let actor = principal.describe();
    let ticket = s.store.expect_issuance();
    let policies = s.config.certificate_policies;
    let checked_binding = binding.clone();
    let checked = cpu(s.ca.active(), move || {
        let csr = csr::parse_and_verify(&csr_der)?;
        if let Some(user) = policy::named_user(&csr, &profile)? {
            return Ok(Checked::User {
                csr,
                user,
                org,
                profile,
            });
        }
        let linked = policy::check_pop_linking(&profile, &csr, &checked_binding);
        let template = policy::enroll_template(&csr, &org, &profile, &policies)?;
        Ok(Checked::Profile {
            template,
            profile,
            der: csr_der,
            linked,
        })
    });
    let (template, profile, der, linked) = match checked.await? {
        Checked::User {
            csr,
            user,
            org,
            profile,
        } => {
            return enrol_user(s, actor, org, &profile, csr, &user, binding, ticket).await;
        }
        Checked::Profile {
            template,
            profile,
            der,
            linked,
        } => (template, profile, der, linked),
    };
    // A retry of a held request is answered by its order, also once nothing
    // is left to wait for.
    let held = held || held::is_held(s, &der)?;
    if !held {
        linked.clone()?;
    }
    if held {
        let request = HeldRequest {
            der: &der,
            template,
            linked,
            holder: OrderHolder::Profile,
            renews: None,
        };
        return held::answer(s, &actor, request, &profile, ticket).await;
    }
    let note = AuditNote {
        actor,
        action: AuditAction::Enroll,
        detail: format!("issued to {}", policy::display_name(&template.subject)),
    };
    let issued = issue::issue_with_new_order(s, template, &profile, note, None, ticket).await?;
    issue::count_issued(s, &profile.est_label, "enroll");
    Ok(Enrolled::Issued(issued.into()))
}

/// A CSR checked for an API profile: the profile's own certificate, or a
/// user's.
enum Checked {
    /// The profile's certificate, as the profile allows it.
    Profile {
        template: CertTemplate,
        profile: Profile,
        der: Vec<u8>,
        linked: Result<(), policy::LinkingError>,
    },
    /// A user certificate: collects the user's pending order.
    User {
        csr: VerifiedCsr,
        user: NamedUser,
        org: Organisation,
        profile: Profile,
    },
}

/// Issues the user certificate that `csr` asks for (it names `user`) for
/// the one pending order of that user under `profile`: the order becomes
/// Issued, and the certificate is linked to it, in one durable write.
///
/// The order was placed by an administrator, which is the decision an
/// approval-required profile asks for, so it is not held a second time;
/// the CSR must still be exactly what was ordered (CN the user's name, the
/// user's e-mail), and the user certificate carries no system rights.
#[allow(clippy::too_many_arguments)]
async fn enrol_user(
    s: Services<'_>,
    actor: String,
    org: Organisation,
    profile: &Profile,
    csr: VerifiedCsr,
    user: &NamedUser,
    binding: &ChannelBinding,
    ticket: PendingIssuance,
) -> Result<Enrolled, Error> {
    let orders = user_orders(s, profile, user)?;
    if orders.pending.is_empty() {
        // A client whose answer was lost retries with the same CSR: it gets
        // the certificate its order already got, not a refusal.
        if let Some(again) = earlier_answer(s, &orders.issued, &csr)? {
            return Ok(Enrolled::Issued(again));
        }
    }
    let order = one_pending_order(orders.pending, profile)?;
    // The organisation's permissions as they are now, as at every collection.
    issue::check_permissions(&org, profile, &order.holder)?;
    let effective = policy::effective_profile(profile, &order.holder);
    let (holder, binding) = (order.holder.clone(), binding.clone());
    let policies = s.config.certificate_policies;
    let template = cpu(s.ca.active(), {
        let effective = effective.clone();
        move || {
            policy::check_pop_linking(&effective, &csr, &binding)?;
            Ok(policy::collect_template(
                &csr, &org, &effective, &holder, &policies,
            )?)
        }
    })
    .await?;
    let note = AuditNote {
        actor,
        action: AuditAction::Enroll,
        detail: match order.renews {
            Some(old) => format!(
                "user certificate issued for renewal order {}; renews {old}",
                order.id
            ),
            None => format!("user certificate issued for order {}", order.id),
        },
    };
    let issued = issue::issue_for_order(s, template, &effective, &order, note, ticket).await?;
    issue::count_issued(s, &effective.est_label, "enroll");
    Ok(Enrolled::Issued(issued.into()))
}

/// The API-identification orders of `user` under `profile`: the holder's
/// name is the CSR's CN exactly, and the e-mail address matches
/// case-insensitively.
struct UserOrders {
    /// Pending ones. Orders holding a CSR for approval are not among them
    /// (their CSR collects them).
    pending: Vec<Order>,
    /// The certificates of issued ones.
    issued: Vec<Serial>,
}

fn user_orders(s: Services<'_>, profile: &Profile, user: &NamedUser) -> Result<UserOrders, Error> {
    let mut found = UserOrders {
        pending: Vec::new(),
        issued: Vec::new(),
    };
    // A scan, made only for CSRs that name a user; an organisation's or
    // system's enrolment never reaches it.
    for order in s.store.orders() {
        let order = order?;
        let candidate = order.profile_id == profile.id
            && order.cvr == profile.cvr
            && order.identification == Identification::Api;
        let is_users = matches!(&order.holder, OrderHolder::User { name, email, .. }
            if *name == user.name && email.eq_ignore_ascii_case(&user.email));
        if !candidate || !is_users {
            continue;
        }
        match order.status {
            OrderStatus::Pending if order.held_csr.is_none() => found.pending.push(order),
            OrderStatus::Issued { serial } => found.issued.push(serial),
            _ => {}
        }
    }
    Ok(found)
}

/// The certificate one of `issued` already is for `csr` (same key and
/// subject), if it is still valid: the answer to a retry.
fn earlier_answer(
    s: Services<'_>,
    issued: &[Serial],
    csr: &VerifiedCsr,
) -> Result<Option<Certificate>, Error> {
    for serial in issued {
        let Some(rec) = s.store.cert(serial)? else {
            continue;
        };
        if rec.state(now_unix()) != CertState::Issued {
            continue;
        }
        let cert = <X509 as der::Decode>::from_der(&rec.der).map_err(StoreError::codec)?;
        let tbs = &cert.tbs_certificate;
        if tbs.subject_public_key_info == csr.spki && tbs.subject == csr.subject {
            return Ok(Some(Certificate {
                serial: rec.serial,
                der: rec.der,
            }));
        }
    }
    Ok(None)
}

/// The one pending order among `matching`; none or several are refused,
/// naming why. The CSR's own text is not repeated in the answer.
fn one_pending_order(mut matching: Vec<Order>, profile: &Profile) -> Result<Order, Error> {
    if matching.len() > 1 {
        return Err(Error::Conflict(format!(
            "{} pending orders of profile {:?} are for this user ({}); one must be deleted \
             before the certificate can be issued",
            matching.len(),
            profile.name,
            matching
                .iter()
                .map(|o| o.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    matching.pop().ok_or_else(|| {
        Error::Forbidden(format!(
            "the CSR names a user (its rfc822Name is not the profile's e-mail address), and no \
             pending order of profile {:?} is for a user of this name (CN) and e-mail address; \
             an administrator orders the user certificate first (identification api), or the \
             CSR leaves the e-mail address out to enrol the profile's own certificate",
            profile.name
        ))
    })
}

/// A caller never obtains through EST a right it does not hold itself (an
/// est-enroll certificate must not mint admin-api). Refused rather than
/// issued with fewer rights, so that nobody gets a certificate that silently
/// lacks what its profile promises.
fn check_rights_held(principal: &Principal, profile: &Profile) -> Result<(), Error> {
    let lacking: Vec<&str> = profile
        .rights
        .iter()
        .filter(|r| !principal.has_right(**r))
        .map(|r| right_name(*r))
        .collect();
    if lacking.is_empty() {
        return Ok(());
    }
    Err(Error::Forbidden(format!(
        "the profile grants {}, which the client certificate does not hold itself; \
         a certificate cannot pass on a right it lacks",
        lacking.join(", ")
    )))
}

/// The API name of a right.
fn right_name(right: SystemRight) -> &'static str {
    match right {
        SystemRight::EstEnroll => "est-enroll",
        SystemRight::AdminApi => "admin-api",
    }
}

/// The profile an IdM system enrols under: the label's, or its organisation's
/// default; it must be its own organisation's and offer API identification.
fn api_profile(
    s: Services<'_>,
    principal: &Principal,
    label: Option<&str>,
) -> Result<(Organisation, Profile), Error> {
    let cvr = principal.cvr();
    let profile = match label {
        Some(l) => s.store.profile_by_label(l)?,
        None => s.store.default_profile(cvr)?,
    };
    let profile = profile
        .filter(|p| p.cvr == cvr)
        .ok_or_else(|| Error::Forbidden(NOT_PERMITTED.into()))?;
    if profile.identification != Identification::Api || profile.issuance != Issuance::Est {
        return Err(Error::Forbidden(
            "this profile is not issued by API enrolment".into(),
        ));
    }
    let org = s
        .store
        .org(cvr)?
        .ok_or_else(|| Error::Forbidden(NOT_PERMITTED.into()))?;
    Ok((org, profile))
}
