//! The organisation's certificate settings: anyone with a role sees them;
//! an organisation administrator changes whether user certificates and seal
//! are allowed and the P and SE numbers (the service decides who may).

use http::{Request, StatusCode};
use hyper::body::Incoming;
use maud::{html, Markup};
use serde_json::json;

use super::context::Ctx;
use super::form::posted;
use super::layout::{csrf_field, page, Page};
use super::Answer;
use crate::admin::organisations::apply_json_changes;
use crate::admin::problem::ApiError;
use crate::admin::routes::Endpoint;
use crate::model::Organisation;
use crate::service::{update_org, visible_org};

fn own_cvr<'c>(ctx: &'c Ctx) -> Result<&'c str, Page> {
    ctx.person()?.person.cvr.as_deref().ok_or_else(|| {
        Page::status(
            StatusCode::NOT_FOUND,
            ctx.t(
                "A server operator has no organisation here.",
                "En serveroperatør har ingen organisation her.",
            ),
        )
    })
}

fn settings(ctx: &Ctx, org: &Organisation, notice: Option<Markup>, status: StatusCode) -> Answer {
    let editable = ctx.can(Endpoint::UpdateOrganisation);
    let body = html! {
        @if let Some(n) = notice { (n) }
        form.card method="post" action="/portal/organisation" {
            (csrf_field(ctx))
            fieldset disabled[!editable] {
                legend { (org.name) " · CVR " (org.cvr) }
                div.check {
                    input id="allow_user_certs" type="checkbox" name="allow_user_certs" value="on" checked[org.allow_user_certs];
                    label for="allow_user_certs" { (ctx.t("Allow user certificates", "Tillad medarbejdercertifikater")) }
                }
                div.check {
                    input id="allow_seal" type="checkbox" name="allow_seal" value="on" checked[org.allow_seal];
                    label for="allow_seal" { (ctx.t("Allow seal generation", "Tillad seglgenerering")) }
                }
                div.field {
                    label for="p_numbers" { (ctx.t("P numbers (10 digits, separated by spaces)", "P-numre (10 cifre, adskilt af mellemrum)")) }
                    input id="p_numbers" name="p_numbers" value=(org.p_numbers.join(" "));
                }
                div.field {
                    label for="se_numbers" { (ctx.t("SE numbers (8 digits, separated by spaces)", "SE-numre (8 cifre, adskilt af mellemrum)")) }
                    input id="se_numbers" name="se_numbers" value=(org.se_numbers.join(" "));
                }
            }
            @if editable { button type="submit" { (ctx.t("Save", "Gem")) } }
        }
    };
    Ok(page(
        ctx,
        status,
        ctx.t("Organisation settings", "Organisationens indstillinger"),
        body,
    ))
}

/// `GET /portal/organisation`.
pub fn show(ctx: &Ctx, notice: Option<Markup>) -> Answer {
    let s = ctx.may(Endpoint::GetOrganisation)?;
    let org = visible_org(ctx.svc(), &s.actor, own_cvr(ctx)?)?;
    settings(ctx, &org, notice, StatusCode::OK)
}

/// `POST /portal/organisation`.
pub async fn save(ctx: &Ctx<'_>, req: Request<Incoming>) -> Answer {
    let s = ctx.may(Endpoint::UpdateOrganisation)?;
    let cvr = own_cvr(ctx)?.to_owned();
    let f = posted(ctx, req).await?;
    let words = |name: &str| {
        f.get(name)
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let changes = json!({
        "allow_user_certs": f.ticked("allow_user_certs"),
        "allow_seal": f.ticked("allow_seal"),
        "p_numbers": words("p_numbers"),
        "se_numbers": words("se_numbers"),
    });
    match update_org(ctx.svc(), &s.actor, &cvr, |org| {
        apply_json_changes(org, &changes)
    })
    .await
    {
        Ok(org) => settings(
            ctx,
            &org,
            Some(html! { p.done role="status" { (ctx.t("Saved.", "Gemt.")) } }),
            StatusCode::OK,
        ),
        Err(e) if e.status().is_client_error() => {
            let org = visible_org(ctx.svc(), &s.actor, &cvr)?;
            let status = e.status();
            settings(
                ctx,
                &org,
                Some(html! { p.alert role="alert" { (e.to_string()) } }),
                status,
            )
        }
        Err(e) => Err(Page::from(e as ApiError)),
    }
}
