//! Collection of a one-time-code order with `simpleenroll`: the reference
//! number and code are checked (wrong codes are counted durably and lock the
//! order after five), then the certificate is issued for the order, once its
//! e-mail address is confirmed if it carries one (until then the client is
//! told to retry, and the code stays unspent).

use super::codes::{self, CodeCheck};
use super::email;
use super::held::{Awaiting, Enrolled};
use super::issue::{self, audit_event, cpu, AuditNote, BAD_CODE};
use super::{Error, Services};
use crate::ca::csr;
use crate::model::{now_unix, ActorId, AuditAction, AuditOutcome, Issuance, Order};
use crate::policy;
use crate::tls::ChannelBinding;

/// Collects the one-time-code order `reference` with `code` and the CSR
/// `csr_der` sent on a connection with `binding`, under `label` if given
/// (which must be the order's profile's). Durable when it returns, refusals
/// included: a wrong code's count survives a restart.
pub async fn collect(
    s: Services<'_>,
    reference: &str,
    code: &str,
    label: Option<&str>,
    csr_der: Vec<u8>,
    binding: &ChannelBinding,
) -> Result<Enrolled, Error> {
    let order = code_order(s, reference, code).await?;
    if order.issuance != Issuance::Est {
        return Err(Error::Forbidden(
            "this order is collected with serverkeygen, not simpleenroll".into(),
        ));
    }
    let (org, profile) = issue::order_profile(s, &order, label)?;
    let holder = order.holder.clone();
    let binding = binding.clone();
    let ticket = s.store.expect_issuance();
    let policies = s.config.certificate_policies;
    let (template, effective) = cpu(s.ca.active(), move || {
        let csr = csr::parse_and_verify(&csr_der)?;
        let effective = policy::effective_profile(&profile, &holder);
        // Refused before the order moves: a failed link spends no code.
        policy::check_pop_linking(&effective, &csr, &binding)?;
        let template = policy::collect_template(&csr, &org, &effective, &holder, &policies)?;
        Ok((template, effective))
    })
    .await?;
    let actor = ActorId::Order(order.id.clone()).to_string();
    // The order waits (pending, code unspent) until its address is confirmed.
    if policy::email_of(&template.sans).is_some()
        && email::must_wait(s, &actor, &effective, &order.holder, Some(&order.id))?
    {
        s.store.durable().await?;
        return Ok(Enrolled::Held {
            retry_after: s.config.orders.approval_retry_after_secs,
            awaiting: Awaiting::EmailValidation,
        });
    }
    let note = AuditNote {
        actor,
        action: AuditAction::Collect,
        detail: "collected with one-time code".into(),
    };
    let issued = issue::issue_for_order(s, template, &effective, &order, note, ticket).await?;
    issue::count_issued(s, &effective.est_label, "collect");
    Ok(Enrolled::Issued(issued.into()))
}

/// Checks a reference number and one-time code; the order if they match.
/// Wrong codes are counted, audited and made durable before the refusal, and
/// lock the order after five.
pub(super) async fn code_order(
    s: Services<'_>,
    reference: &str,
    code: &str,
) -> Result<Order, Error> {
    let Some((order, check)) = codes::try_code(s, reference, code, now_unix())? else {
        // Counted (see `try_code`) and committed as a wrong code's count is,
        // so that an unknown reference answers after the same work.
        s.store.durable().await?;
        return Err(Error::Unauthenticated(BAD_CODE.into()));
    };
    match check {
        CodeCheck::Valid => Ok(order),
        CodeCheck::Wrong => {
            s.store.audit(&audit_event(
                &ActorId::Order(order.id.clone()).to_string(),
                AuditAction::Collect,
                AuditOutcome::Refused,
                &order.cvr,
                &order.profile_id,
                None,
                &order.id,
                "wrong one-time code",
            ))?;
            // Counted durably, so that a restart does not reset the lockout.
            s.store.durable().await?;
            Err(Error::Unauthenticated(BAD_CODE.into()))
        }
        CodeCheck::Expired => Err(Error::Unauthenticated(
            "the one-time code has expired; ask an administrator for a new code".into(),
        )),
        CodeCheck::Locked => Err(Error::Forbidden(
            "the order is locked after 5 wrong codes; ask an administrator for a new code".into(),
        )),
        CodeCheck::Unusable => {
            s.store.durable().await?;
            Err(Error::Unauthenticated(BAD_CODE.into()))
        }
    }
}
