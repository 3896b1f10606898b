//! Orders and their states; one order, with Delete (before issue) behind a
//! warning.

use http::Request;
use hyper::body::Incoming;
use maud::html;

use super::context::Ctx;
use super::form::posted;
use super::layout::{date, ok, warning};
use super::profiles::wire;
use super::Answer;
use crate::admin::routes::Endpoint;
use crate::model::{now_unix, OrderHolder, OrderStatus};
use crate::service::orders::{delete_order, show_order};
use crate::service::queries::{list_orders, OrderFilter};

fn holder(h: &OrderHolder) -> String {
    match h {
        OrderHolder::Profile => "—".into(),
        OrderHolder::User { name, email, .. } => format!("{name} <{email}>"),
    }
}

/// `GET /portal/orders`: newest first.
pub fn list(ctx: &Ctx) -> Answer {
    let s = ctx.may(Endpoint::ListOrders)?;
    let mut orders = list_orders(ctx.svc(), &s.actor, &OrderFilter::default(), now_unix())?;
    orders.reverse();
    ok(
        ctx,
        ctx.t("Orders", "Bestillinger"),
        html! {
            table {
                thead { tr {
                    th scope="col" { (ctx.t("Reference", "Reference")) }
                    th scope="col" { (ctx.t("State", "Status")) }
                    th scope="col" { (ctx.t("For", "Til")) }
                    th scope="col" { (ctx.t("Method", "Metode")) }
                    th scope="col" { (ctx.t("Ordered", "Bestilt")) }
                } }
                tbody {
                    @for (o, shown) in orders.iter().take(500) {
                        tr {
                            td { a href={ "/portal/orders/" (o.id) } { code { (o.id) } } }
                            td.state { (shown.status) }
                            td { (holder(&o.holder)) }
                            td { (wire(&o.identification)) " × " (wire(&o.issuance)) }
                            td { (date(o.created_at)) }
                        }
                    }
                }
            }
        },
    )
}

/// `GET /portal/orders/{reference}`.
pub fn show(ctx: &Ctx, reference: &str) -> Answer {
    let s = ctx.may(Endpoint::GetOrder)?;
    let (o, shown) = show_order(ctx.svc(), &s.actor, reference, now_unix())?;
    let open = matches!(o.status, OrderStatus::Pending | OrderStatus::Approved);
    ok(
        ctx,
        &format!("{} {}", ctx.t("Order", "Bestilling"), o.id),
        html! {
            dl {
                dt { (ctx.t("State", "Status")) } dd id="order-state" { (shown.status) }
                dt { (ctx.t("For", "Til")) } dd { (holder(&o.holder)) }
                dt { (ctx.t("Profile", "Profil")) } dd { a href={ "/portal/profiles/" (o.profile_id) } { code { (o.profile_id) } } }
                dt { (ctx.t("Method", "Metode")) } dd { (wire(&o.identification)) " × " (wire(&o.issuance)) }
                dt { (ctx.t("Ordered", "Bestilt")) } dd { (date(o.created_at)) " · " (o.created_by) }
                @if let OrderStatus::Issued { serial } = o.status {
                    dt { (ctx.t("Certificate", "Certifikat")) } dd { a href={ "/portal/certificates/" (serial.to_string()) } { code { (serial.to_string()) } } }
                }
                @if let Some(na) = shown.not_after { dt { (ctx.t("Expires", "Udløber")) } dd { (date(na)) } }
            }
            @if open && ctx.can(Endpoint::DeleteOrder) {
                p { a.button.danger href={ "/portal/orders/" (o.id) "/delete" } { (ctx.t("Delete order", "Slet bestilling")) } }
            }
        },
    )
}

/// `GET /portal/orders/{reference}/delete`: the warning.
pub fn delete_warning(ctx: &Ctx, reference: &str) -> Answer {
    let s = ctx.may(Endpoint::DeleteOrder)?;
    let (o, _) = show_order(ctx.svc(), &s.actor, reference, now_unix())?;
    warning(
        ctx,
        ctx.t("Delete the order?", "Slet bestillingen?"),
        ctx.t(
            "The order and its one-time code stop working. This cannot be undone.",
            "Bestillingen og dens engangskode holder op med at virke. Det kan ikke fortrydes.",
        ),
        &format!("/portal/orders/{}/delete", o.id),
        ctx.t("Delete order", "Slet bestilling"),
        html! {},
    )
}

/// `POST /portal/orders/{reference}/delete`.
pub async fn delete(ctx: &Ctx<'_>, reference: &str, req: Request<Incoming>) -> Answer {
    let s = ctx.may(Endpoint::DeleteOrder)?;
    posted(ctx, req).await?;
    let o = delete_order(ctx.svc(), &s.actor, reference).await?;
    ok(
        ctx,
        ctx.t("Order deleted", "Bestilling slettet"),
        html! { p.done role="status" { (ctx.t("The order is deleted:", "Bestillingen er slettet:")) " " code { (o.id) } } p { a href="/portal/orders" { (ctx.t("Orders", "Bestillinger")) } } },
    )
}
