//! History: the audit log of the organisation (newest first), as the API's
//! `GET /audit` filters it.

use maud::html;

use super::context::Ctx;
use super::layout::ok;
use super::Answer;
use crate::admin::routes::Endpoint;
use crate::model::{rfc3339, AuditEvent};

/// Events shown.
const SHOWN: usize = 200;

/// The audit events, as a table.
pub fn table(ctx: &Ctx, events: &[(u64, AuditEvent)]) -> maud::Markup {
    html! {
        table {
            thead { tr {
                th scope="col" { (ctx.t("When (UTC)", "Hvornår (UTC)")) }
                th scope="col" { (ctx.t("Who", "Hvem")) }
                th scope="col" { (ctx.t("What", "Hvad")) }
                th scope="col" { (ctx.t("Outcome", "Udfald")) }
                th scope="col" { (ctx.t("Detail", "Detaljer")) }
            } }
            tbody {
                @for (_, e) in events {
                    tr {
                        td { (rfc3339(e.at_ms / 1000)) }
                        td { (e.actor) }
                        td { (super::profiles::wire(&e.action)) }
                        td { (super::profiles::wire(&e.outcome)) }
                        td { (e.detail) }
                    }
                }
            }
        }
    }
}

/// `GET /portal/history`.
pub fn show(ctx: &Ctx) -> Answer {
    let s = ctx.may(Endpoint::AuditLog)?;
    let actor = &s.actor;
    let page = ctx
        .svc()
        .store
        .audit_page(None, SHOWN, &|e: &AuditEvent| match e.cvr.as_deref() {
            Some(c) => actor.may_access(c),
            None => actor.is_operator(),
        })
        .map_err(crate::service::Error::from)?;
    ok(ctx, ctx.t("History", "Historik"), table(ctx, &page.0))
}
