//! Re-enrolment: the holder of a certificate of this CA renews it. A
//! certificate has one successor (until that one is revoked), and the
//! renewal is judged against the profile and organisation as they are now.

use x509_cert::Certificate as X509;

use super::email;
use super::held::Enrolled;
use super::held::{self, HeldRequest};
use super::issue::{self, cpu, AuditNote, Certificate};
use super::orders::open_api_renewal;
use super::{Error, Services};
use crate::auth::Principal;
use crate::ca::{csr, CertTemplate};
use crate::model::{
    ActorId, AuditAction, CertRecord, CertStatus, Identification, OrderHolder, Organisation,
    Profile, Serial,
};
use crate::policy;
use crate::store::StoreError;
use crate::tls::ChannelBinding;

/// Renews the certificate `principal` holds with the CSR `csr_der` sent on
/// a connection with `binding`, under `label` if given (which must be the
/// certificate's profile's). Durable when it returns.
pub async fn reenrol(
    s: Services<'_>,
    principal: Principal,
    label: Option<&str>,
    csr_der: Vec<u8>,
    binding: &ChannelBinding,
) -> Result<Enrolled, Error> {
    let Principal::Holder { record, cert } = principal else {
        return Err(Error::Forbidden(
            "only certificates issued by this CA can be re-enrolled".into(),
        ));
    };
    let (org, profile, holder) = current_policy(s, &record, label)?;
    let old_serial = record.serial;
    let own_rights = record.rights;
    let renewal_holder = holder.clone();
    let binding = binding.clone();
    let ticket = s.store.expect_issuance();
    let policies = s.config.certificate_policies;
    let (template, effective, der, linked) = cpu(s.ca.active(), move || {
        let csr = csr::parse_and_verify(&csr_der)?;
        let mut effective = policy::effective_profile(&profile, &holder);
        // The profile's rights as they are now, but never one the
        // certificate does not hold itself (its rights were fixed at issuance).
        effective.rights.retain(|r| own_rights.contains(r));
        let linked = policy::check_pop_linking(&effective, &csr, &binding);
        let template = policy::reenroll_template(&csr, &cert, &effective, &policies)?;
        policy::check_names_still_allowed(&cert, &org, &effective)?;
        Ok((template, effective, csr_der, linked))
    })
    .await?;
    // A renewal that carries the profile's address waits for it to be
    // confirmed (as an enrolment does) unless it was within the window.
    let carries_address = policy::email_of(&template.sans).is_some();
    // An administrator's renewal order (API profiles) is fulfilled by this
    // re-enrolment rather than left open beside it; it is the decision an
    // approval-required profile asks for, so it is not held for approval.
    let renewal_order = if effective.identification == Identification::Api {
        open_api_renewal(s, &old_serial)?
    } else {
        None
    };
    let held = (effective.approval_required && renewal_order.is_none())
        || (carries_address
            && email::awaits_validation(s, &effective, &renewal_holder, crate::model::now_unix()))
        || held::is_held(s, &der)?;
    if !held {
        linked.clone()?;
    }
    if let Some(again) = existing_successor(s, &old_serial, &template)? {
        return Ok(Enrolled::Issued(again));
    }
    let actor = ActorId::Cert(old_serial).to_string();
    if held {
        let request = HeldRequest {
            der: &der,
            template,
            linked,
            holder: renewal_holder,
            renews: Some(old_serial),
        };
        return held::answer(s, &actor, request, &effective, ticket).await;
    }
    // The old certificate is linked to its renewal in the same write; it stays
    // valid until it expires.
    let issuing = match renewal_order {
        Some(order) => {
            let note = AuditNote {
                actor,
                action: AuditAction::Reenroll,
                detail: format!("renews {old_serial}; fulfils renewal order {}", order.id),
            };
            issue::issue_for_order(s, template.clone(), &effective, &order, note, ticket).await
        }
        None => {
            let note = AuditNote {
                actor,
                action: AuditAction::Reenroll,
                detail: format!("renews {old_serial}"),
            };
            let renewal = Some((old_serial, renewal_holder));
            issue::issue_with_new_order(s, template.clone(), &effective, note, renewal, ticket)
                .await
        }
    };
    match issuing {
        Ok(issued) => {
            issue::count_issued(s, &effective.est_label, "reenroll");
            Ok(Enrolled::Issued(issued.into()))
        }
        // A simultaneous re-enrolment got there first: if it was this very
        // request (a client retrying), its certificate is the answer.
        Err(Error::Conflict(why)) => match existing_successor(s, &old_serial, &template)? {
            Some(again) => Ok(Enrolled::Issued(again)),
            None => Err(Error::Conflict(why)),
        },
        Err(e) => Err(e),
    }
}

/// The certificate's profile and organisation as they are now, and whom the
/// certificate is for; refused if either is gone, the label is another
/// profile's, or the organisation no longer allows it.
fn current_policy(
    s: Services<'_>,
    record: &CertRecord,
    label: Option<&str>,
) -> Result<(Organisation, Profile, OrderHolder), Error> {
    let profile = s
        .store
        .profile(&record.profile_id)?
        .ok_or_else(|| Error::Forbidden("the certificate's profile no longer exists".into()))?;
    if label.is_some_and(|l| !l.eq_ignore_ascii_case(&profile.est_label)) {
        return Err(Error::Forbidden(
            "re-enrol under the label of the certificate's own profile".into(),
        ));
    }
    let org = s.store.org(&record.cvr)?.ok_or_else(|| {
        Error::Forbidden("the certificate's organisation no longer exists".into())
    })?;
    let old_order = record
        .order_id
        .as_deref()
        .map(|id| s.store.order(id))
        .transpose()?
        .flatten();
    let holder = old_order.map(|o| o.holder).unwrap_or(OrderHolder::Profile);
    // Judged against the profile and organisation as they are now: a
    // permission, name or right withdrawn since issuance is not renewed.
    issue::check_permissions(&org, &profile, &holder)?;
    Ok((org, profile, holder))
}

/// A certificate has at most one successor (until that one is revoked): the
/// same request again (same key, subject and SANs, e.g. a client whose answer
/// was lost) gets that successor again; any other is refused with a conflict.
/// `None` when `old` has no valid successor.
fn existing_successor(
    s: Services<'_>,
    old: &Serial,
    template: &CertTemplate,
) -> Result<Option<Certificate>, Error> {
    let Some(successor) = s.store.cert(old)?.and_then(|r| r.renewed_by) else {
        return Ok(None);
    };
    let Some(rec) = s.store.cert(&successor)? else {
        return Ok(None);
    };
    if rec.status != CertStatus::Issued {
        return Ok(None);
    }
    let cert = <X509 as der::Decode>::from_der(&rec.der).map_err(StoreError::codec)?;
    let sans = policy::cert_sans(&cert);
    let same = cert.tbs_certificate.subject_public_key_info == template.spki
        && cert.tbs_certificate.subject == template.subject
        && sans.len() == template.sans.len()
        && sans.iter().all(|n| template.sans.contains(n));
    if !same {
        return Err(issue::renewed_already(successor));
    }
    Ok(Some(Certificate {
        serial: successor,
        der: rec.der,
    }))
}
