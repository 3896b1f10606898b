//! What a logged-in person does with their own certificates: collect what
//! was ordered for them with "User login" (a key made here and handed over
//! as PKCS#12, or a CSR from their hardware token), list and download their
//! certificates, block one, renew one, read their history and their tasks.
//!
//! A person's certificates are the user certificates of their organisation
//! that carry their address. A user administrator also collects the
//! organisation and system certificates ordered with "User login".

use super::issue::{self, blocking, AuditNote};
use super::journal::{audit, Subject};
use super::serverkeygen::{generate_key, with_organisation};
use super::{email, Error, Services};
use crate::ca::bootstrap::append_rdn;
use crate::ca::csr::{self, classify_key, VerifiedCsr};
use crate::ca::pkcs12;
use crate::model::RevocationReason;
use crate::model::{
    now_unix, Actor, AuditAction, AuditEvent, AuditOutcome, CertKind, CertRecord, CertState,
    EmailValidationStatus, Identification, Issuance, Order, OrderHolder, OrderStatus, Person, Role,
    Serial,
};
use crate::policy;

/// A certificate issued in the browser: the key only inside the PKCS#12.
pub struct BrowserIssued {
    /// The certificate's serial.
    pub serial: Serial,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Key, certificate and chain, encrypted with `password`.
    pub pkcs12: Vec<u8>,
    /// Shown to the person once; estd keeps no copy.
    pub password: String,
}

/// Something a person should do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Task {
    /// A certificate ordered for them (or, for a user administrator, for
    /// the organisation) is ready to issue.
    CollectCertificate {
        /// The order's reference number.
        reference: String,
    },
    /// One of their certificates expires soon.
    RenewCertificate {
        /// The certificate.
        serial: String,
        /// Its notAfter, Unix seconds.
        not_after: u64,
    },
    /// An order waits for an administrator's approval.
    ApproveOrder {
        /// The order's reference number.
        reference: String,
    },
    /// A certificate waits for their address to be confirmed through the
    /// link sent to it.
    ConfirmEmail {
        /// The address.
        address: String,
    },
}

fn same_person(person: &Person, cvr: &str, email: &str) -> bool {
    person.cvr.as_deref() == Some(cvr) && person.email.eq_ignore_ascii_case(email)
}

/// Whether `order` is one the person collects after login.
fn collects(person: &Person, order: &Order) -> bool {
    if order.identification != Identification::UserLogin
        || person.cvr.as_deref() != Some(order.cvr.as_str())
    {
        return false;
    }
    match &order.holder {
        OrderHolder::User { email, .. } => same_person(person, &order.cvr, email),
        OrderHolder::Profile => person.role_set().has(Role::UserAdmin),
    }
}

/// The open orders the person collects, oldest first.
pub fn own_orders(svc: Services<'_>, person: &Person) -> Result<Vec<Order>, Error> {
    let mut out = Vec::new();
    for item in svc.store.orders() {
        let order = item?;
        let open = matches!(order.status, OrderStatus::Pending | OrderStatus::Approved);
        if open && collects(person, &order) {
            out.push(order);
        }
    }
    out.sort_by_key(|o| o.created_at);
    Ok(out)
}

/// The open order `reference` the person collects, issued as `issuance`.
fn own_open_order(
    svc: Services<'_>,
    person: &Person,
    reference: &str,
    issuance: Issuance,
) -> Result<Order, Error> {
    let order = svc
        .store
        .order(reference)?
        .filter(|o| collects(person, o))
        .ok_or(Error::NotFound("order"))?;
    if !matches!(order.status, OrderStatus::Pending | OrderStatus::Approved) {
        return Err(Error::Conflict(format!(
            "the order is {}; there is nothing to collect",
            order.status.name()
        )));
    }
    if order.issuance != issuance {
        return Err(Error::Conflict(match order.issuance {
            Issuance::Hardware => {
                "this order is issued on a hardware token: upload a CSR made on it".into()
            }
            _ => "this order's key is made in the browser: ask for the PKCS#12".into(),
        }));
    }
    Ok(order)
}

/// Refuses while the certificate waits for its profile's address to be
/// confirmed (an organisation or system certificate with an e-mail).
fn refuse_while_awaiting_email(
    svc: Services<'_>,
    actor: &Actor,
    order: &Order,
    profile: &crate::model::Profile,
) -> Result<(), Error> {
    if email::must_wait(
        svc,
        &actor.id.to_string(),
        profile,
        &order.holder,
        Some(&order.id),
    )? {
        return Err(Error::Conflict(
            "the profile's e-mail address must be confirmed first: follow the link sent to it, \
             then try again"
                .into(),
        ));
    }
    Ok(())
}

/// Issues the browser order `reference`: a key of the profile's first
/// allowed type, made here, and a certificate for it, handed over as a
/// PKCS#12 encrypted with a one-time password. The person must accept the
/// terms of version `terms_version`, which the audit log records. Durable
/// when it returns; the key is not kept.
pub async fn issue_pkcs12(
    svc: Services<'_>,
    actor: &Actor,
    person: &Person,
    reference: &str,
    terms_version: &str,
) -> Result<BrowserIssued, Error> {
    let current = &svc.config.people.terms_version;
    if terms_version != current {
        return Err(Error::invalid(
            "accept_terms",
            format!("accept the terms of version {current:?} (GET /api/v1/terms)"),
        ));
    }
    let order = own_open_order(svc, person, reference, Issuance::Browser)?;
    let (org, profile) = issue::order_profile(svc, &order, None)?;
    refuse_while_awaiting_email(svc, actor, &order, &profile)?;
    audit(
        svc,
        &actor.id,
        AuditAction::AcceptTerms,
        AuditOutcome::Done,
        Subject {
            cvr: Some(&order.cvr),
            profile_id: Some(&order.profile_id),
            serial: None,
            order_id: Some(&order.id),
        },
        format!("accepted the terms, version {current}"),
    )?;
    let ticket = svc.store.expect_issuance();
    let holder = order.holder.clone();
    let policies = svc.config.certificate_policies;
    let (template, effective, pkcs8) = blocking("key generation task", move || {
        let effective = policy::effective_profile(&profile, &holder);
        let algorithm = *effective.key_policy.allowed.first().ok_or_else(|| {
            Error::Conflict("the profile allows no key type; ask an administrator".into())
        })?;
        let (pkcs8, spki) = generate_key(algorithm, effective.key_policy.min_rsa_bits)?;
        let cn = match &holder {
            OrderHolder::User { name, .. } => name.clone(),
            OrderHolder::Profile => effective.name.clone(),
        };
        let subject = append_rdn(
            x509_cert::name::Name::default(),
            const_oid::db::rfc4519::CN,
            &cn,
        )?;
        let keyed = VerifiedCsr {
            subject: with_organisation(&subject, &org)?,
            key: classify_key(&spki)?,
            spki,
            requested_extensions: Vec::new(),
            challenge_password: None,
        };
        let template = policy::collect_template(&keyed, &org, &effective, &holder, &policies)?;
        Ok((template, effective, zeroize::Zeroizing::new(pkcs8)))
    })
    .await?;
    // Everything the file needs is made before the certificate is, so that
    // nothing can fail between issuing and handing over the only key. A
    // name PKCS#12 cannot carry (above U+FFFF) is shown with '?'.
    let password = pkcs12::one_time_password().map_err(|e| Error::internal("a password", e))?;
    let friendly: String = match &order.holder {
        OrderHolder::User { name, .. } => name.clone(),
        OrderHolder::Profile => effective.name.clone(),
    }
    .chars()
    .map(|c| {
        if pkcs12::is_bmp(c.encode_utf8(&mut [0; 4])) {
            c
        } else {
            '?'
        }
    })
    .collect();
    let ca = svc.ca.active();
    let mut chain = vec![ca.issuing_der().to_vec()];
    chain.extend(ca.chain().iter().cloned());
    let note = AuditNote {
        actor: actor.id.to_string(),
        action: AuditAction::ServerKeygen,
        detail: "key made for the browser; handed over as PKCS#12, no copy kept".into(),
    };
    let issued = issue::issue_for_order(svc, template, &effective, &order, note, ticket).await?;
    issue::count_issued(svc, &effective.est_label, "browser");
    let der = issued.der.clone();
    let pw = password.clone();
    let made = blocking("PKCS#12", move || {
        pkcs12::pkcs12(&pkcs8, &der, &chain, &friendly, &pw)
            .map_err(|e| Error::internal("PKCS#12", e))
    })
    .await;
    let pkcs12 = match made {
        Ok(file) => file,
        Err(e) => {
            // The key is gone with this call: the certificate must not stay valid.
            super::certificates::revoke(svc, actor, &issued.serial, RevocationReason::Other)
                .await?;
            return Err(e);
        }
    };
    Ok(BrowserIssued {
        serial: issued.serial,
        der: issued.der,
        pkcs12,
        password,
    })
}

/// Issues the hardware order `reference` for the CSR `csr_der` made on the
/// person's token. Durable when it returns.
pub async fn issue_from_csr(
    svc: Services<'_>,
    actor: &Actor,
    person: &Person,
    reference: &str,
    csr_der: Vec<u8>,
) -> Result<issue::Certificate, Error> {
    let order = own_open_order(svc, person, reference, Issuance::Hardware)?;
    let (org, profile) = issue::order_profile(svc, &order, None)?;
    refuse_while_awaiting_email(svc, actor, &order, &profile)?;
    let ticket = svc.store.expect_issuance();
    let holder = order.holder.clone();
    let policies = svc.config.certificate_policies;
    let (template, effective) = issue::cpu(svc.ca.active(), move || {
        let csr = csr::parse_and_verify(&csr_der)?;
        let effective = policy::effective_profile(&profile, &holder);
        let template = policy::collect_template(&csr, &org, &effective, &holder, &policies)?;
        Ok((template, effective))
    })
    .await?;
    let note = AuditNote {
        actor: actor.id.to_string(),
        action: AuditAction::Collect,
        detail: "collected after login with a CSR from a hardware token".into(),
    };
    let issued = issue::issue_for_order(svc, template, &effective, &order, note, ticket).await?;
    issue::count_issued(svc, &effective.est_label, "hardware");
    Ok(issued.into())
}

/// The person's certificates, newest first.
pub fn own_certs(svc: Services<'_>, person: &Person) -> Result<Vec<CertRecord>, Error> {
    let mut out = Vec::new();
    for item in svc.store.certs() {
        let c = item?;
        if is_own(person, &c) {
            out.push(c);
        }
    }
    out.sort_by_key(|c| std::cmp::Reverse(c.issued_at));
    Ok(out)
}

fn is_own(person: &Person, c: &CertRecord) -> bool {
    c.kind == CertKind::User
        && c.email
            .as_deref()
            .is_some_and(|e| same_person(person, &c.cvr, e))
}

/// The person's certificate `serial`.
pub fn own_cert(svc: Services<'_>, person: &Person, serial: &Serial) -> Result<CertRecord, Error> {
    svc.store
        .cert(serial)?
        .filter(|c| is_own(person, c))
        .ok_or(Error::NotFound("certificate"))
}

/// Blocks the person's certificate `serial`, for good. `confirmed` must be
/// true: blocking cannot be undone. Durable when it returns.
pub async fn block_own(
    svc: Services<'_>,
    actor: &Actor,
    person: &Person,
    serial: &Serial,
    confirmed: bool,
) -> Result<CertRecord, Error> {
    own_cert(svc, person, serial)?;
    if !confirmed {
        return Err(Error::invalid(
            "confirm",
            "blocking is final and cannot be undone; send \"confirm\": true",
        ));
    }
    super::certificates::block(svc, actor, serial).await
}

/// Orders the renewal of the person's certificate `serial` (before it
/// expires). Durable when it returns.
pub async fn renew_own(
    svc: Services<'_>,
    actor: &Actor,
    person: &Person,
    serial: &Serial,
) -> Result<super::CreatedOrder, Error> {
    own_cert(svc, person, serial)?;
    super::certificates::renew(svc, actor, serial).await
}

/// The audit events about the person: their own acts, and those on their
/// certificates and orders; newest first, at most `limit`.
pub fn own_history(
    svc: Services<'_>,
    actor: &Actor,
    person: &Person,
    limit: usize,
) -> Result<Vec<(u64, AuditEvent)>, Error> {
    let serials: Vec<Serial> = own_certs(svc, person)?.iter().map(|c| c.serial).collect();
    let mut orders = Vec::new();
    for item in svc.store.orders() {
        let o = item?;
        if matches!(&o.holder, OrderHolder::User { email, .. } if same_person(person, &o.cvr, email))
        {
            orders.push(o.id);
        }
    }
    let me = actor.id.to_string();
    let cvr = person.cvr.clone();
    let page = svc.store.audit_page(None, limit, &|e: &AuditEvent| {
        e.cvr == cvr
            && (e.actor == me
                || e.serial.is_some_and(|s| serials.contains(&s))
                || e.order_id.as_ref().is_some_and(|o| orders.contains(o)))
    })?;
    Ok(page.0)
}

/// The person's tasks now: orders to collect, certificates to renew, and,
/// by role, orders to approve; addresses to confirm. A task is gone once
/// done, as it is worked out from what it is about.
pub fn tasks(svc: Services<'_>, person: &Person) -> Result<Vec<Task>, Error> {
    let now = now_unix();
    let mut out: Vec<Task> = own_orders(svc, person)?
        .into_iter()
        .map(|o| Task::CollectCertificate { reference: o.id })
        .collect();
    let soon = now + u64::from(svc.config.orders.expiry_notice_days) * 86_400;
    for c in own_certs(svc, person)? {
        if c.state(now) == CertState::Issued && c.not_after <= soon && c.renewed_by.is_none() {
            out.push(Task::RenewCertificate {
                serial: c.serial.to_string(),
                not_after: c.not_after,
            });
        }
    }
    let Some(cvr) = person.cvr.as_deref() else {
        return Ok(out);
    };
    if person.role_set().has(Role::UserAdmin) {
        // Pending orders of profiles that require approval wait for it.
        let mut approval = std::collections::HashMap::new();
        for item in svc.store.orders() {
            let o = item?;
            if o.cvr != cvr || o.status != OrderStatus::Pending {
                continue;
            }
            let required = match approval.get(&o.profile_id) {
                Some(r) => *r,
                None => {
                    let r = svc
                        .store
                        .profile(&o.profile_id)?
                        .is_some_and(|p| p.approval_required);
                    approval.insert(o.profile_id.clone(), r);
                    r
                }
            };
            if required || o.held_csr.is_some() {
                out.push(Task::ApproveOrder { reference: o.id });
            }
        }
    }
    let window = svc.config.email_validation.valid_for_secs();
    for item in svc.store.email_validations() {
        let v = item?;
        if v.cvr == cvr
            && v.address.eq_ignore_ascii_case(&person.email)
            && v.status(now, window) == EmailValidationStatus::Pending
        {
            out.push(Task::ConfirmEmail { address: v.address });
        }
    }
    Ok(out)
}
