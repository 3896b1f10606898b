//! Enrolment by API identification: an IdM system, known by its client
//! certificate, enrols under its organisation's API profiles; each issuance
//! creates an order that is already Issued. Profiles that require approval
//! hold the request instead (see [`super::held`]).

use super::email;
use super::held::{self, Enrolled, HeldRequest};
use super::issue::{self, cpu, AuditNote, NOT_PERMITTED};
use super::{Error, Services};
use crate::auth::Principal;
use crate::ca::csr;
use crate::model::{now_unix, SystemRight};
use crate::model::{AuditAction, Identification, Issuance, OrderHolder, Organisation, Profile};
use crate::policy;
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
    let binding = binding.clone();
    let ticket = s.store.expect_issuance();
    let (template, profile, der, linked) = cpu(s.ca.active(), move || {
        let csr = csr::parse_and_verify(&csr_der)?;
        let linked = policy::check_pop_linking(&profile, &csr, &binding);
        let template = policy::enroll_template(&csr, &org, &profile)?;
        Ok((template, profile, csr_der, linked))
    })
    .await?;
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
