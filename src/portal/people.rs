//! Users: the organisation's people, inviting one (with roles no more than
//! the inviter holds, as the service decides) and deactivating one behind a
//! warning.

use http::{Request, StatusCode};
use hyper::body::Incoming;
use maud::html;

use super::context::Ctx;
use super::form::posted;
use super::layout::{csrf_field, date, ok, page, warning, Page};
use super::profiles::wire;
use super::Answer;
use crate::admin::routes::Endpoint;
use crate::model::{PersonStatus, Role};
use crate::service::people::{
    deactivate as deactivate_person, invite as invite_person, list_people, visible_person,
    NewPerson,
};

const OFFERED: [Role; 3] = [Role::UserAdmin, Role::OrgAdmin, Role::RightsAdmin];

fn role_name(ctx: &Ctx, r: Role) -> &'static str {
    match r {
        Role::UserAdmin => ctx.t("User administrator", "Brugeradministrator"),
        Role::OrgAdmin => ctx.t("Organisation administrator", "Organisationsadministrator"),
        Role::RightsAdmin => ctx.t("Rights administrator", "Rettighedsadministrator"),
        Role::Operator => ctx.t("Server operator", "Serveroperatør"),
    }
}

fn people_page(ctx: &Ctx, notice: Option<maud::Markup>, status: StatusCode) -> Answer {
    let s = ctx.may(Endpoint::ListPeople)?;
    let Some(cvr) = s.person.cvr.as_deref() else {
        return Err(Page::status(
            StatusCode::NOT_FOUND,
            ctx.t(
                "A server operator has no organisation's users here.",
                "En serveroperatør har ingen organisations brugere her.",
            ),
        ));
    };
    let people = list_people(ctx.svc(), &s.actor, Some(cvr))?;
    let body = html! {
        @if let Some(n) = notice { (n) }
        table {
            thead { tr {
                th scope="col" { (ctx.t("Name", "Navn")) }
                th scope="col" { "E-mail" }
                th scope="col" { (ctx.t("Roles", "Roller")) }
                th scope="col" { (ctx.t("State", "Status")) }
                th scope="col" { (ctx.t("Invited", "Inviteret")) }
                th scope="col" { span.visually-hidden { (ctx.t("Actions", "Handlinger")) } }
            } }
            tbody {
                @for p in &people {
                    tr {
                        td { (p.name) }
                        td { (p.email) }
                        td { (p.roles.iter().map(|r| role_name(ctx, *r)).collect::<Vec<_>>().join(", ")) }
                        td { (wire(&p.status())) }
                        td { (date(p.created_at)) }
                        td { @if p.status() != PersonStatus::Deactivated && ctx.can(Endpoint::DeactivatePerson) {
                            a href={ "/portal/people/" (p.id) "/deactivate" } { (ctx.t("Deactivate", "Deaktivér")) " " span.visually-hidden { (p.email) } }
                        } }
                    }
                }
            }
        }
        @if ctx.can(Endpoint::InvitePerson) {
            h2 { (ctx.t("Invite a user", "Invitér en bruger")) }
            form.card method="post" action="/portal/people" {
                (csrf_field(ctx))
                div.field { label for="name" { (ctx.t("Name", "Navn")) } input id="name" name="name" required; }
                div.field { label for="email" { "E-mail" } input id="email" name="email" type="email" required; }
                fieldset {
                    legend { (ctx.t("Roles (none: a user)", "Roller (ingen: en bruger)")) }
                    @for r in OFFERED {
                        div.check {
                            input id={ "role-" (r.as_str()) } type="checkbox" name="roles" value=(r.as_str());
                            label for={ "role-" (r.as_str()) } { (role_name(ctx, r)) }
                        }
                    }
                }
                button type="submit" { (ctx.t("Send invitation", "Send invitation")) }
            }
        }
    };
    Ok(page(ctx, status, ctx.t("Users", "Brugere"), body))
}

/// `GET /portal/people`.
pub fn list(ctx: &Ctx) -> Answer {
    people_page(ctx, None, StatusCode::OK)
}

/// `POST /portal/people`: invites.
pub async fn invite(ctx: &Ctx<'_>, req: Request<Incoming>) -> Answer {
    let s = ctx.may(Endpoint::InvitePerson)?;
    if s.person.cvr.is_none() {
        return people_page(ctx, None, StatusCode::OK);
    }
    let f = posted(ctx, req).await?;
    let roles: Vec<Role> = OFFERED
        .into_iter()
        .filter(|r| f.all("roles").contains(&r.as_str()))
        .collect();
    let new = NewPerson {
        cvr: s.person.cvr.clone(),
        name: f.get("name").to_owned(),
        email: f.get("email").to_owned(),
        roles,
    };
    match invite_person(ctx.svc(), &s.actor, &new).await {
        Ok(p) => people_page(
            ctx,
            Some(
                html! { p.done role="status" { (ctx.t("The invitation is sent to", "Invitationen er sendt til")) " " (p.email) } },
            ),
            StatusCode::OK,
        ),
        Err(e) if crate::http::error::status(&e).is_client_error() => people_page(
            ctx,
            Some(html! { p.alert role="alert" { (e.to_string()) } }),
            crate::http::error::status(&e),
        ),
        Err(e) => Err(e.into()),
    }
}

/// `GET /portal/people/{id}/deactivate`: the warning.
pub fn deactivate_warning(ctx: &Ctx, id: &str) -> Answer {
    let s = ctx.may(Endpoint::DeactivatePerson)?;
    let p = visible_person(ctx.svc(), &s.actor, id)?;
    warning(
        ctx,
        ctx.t("Deactivate the user?", "Deaktivér brugeren?"),
        &format!(
            "{} {} <{}>. {}",
            ctx.t("Deactivate", "Deaktivér"),
            p.name,
            p.email,
            ctx.t(
                "They are logged out and can never log in again.",
                "Brugeren logges ud og kan aldrig logge ind igen."
            )
        ),
        &format!("/portal/people/{}/deactivate", p.id),
        ctx.t("Deactivate", "Deaktivér"),
        html! {},
    )
}

/// `POST /portal/people/{id}/deactivate`.
pub async fn deactivate(ctx: &Ctx<'_>, id: &str, req: Request<Incoming>) -> Answer {
    let s = ctx.may(Endpoint::DeactivatePerson)?;
    posted(ctx, req).await?;
    let p = deactivate_person(ctx.svc(), &s.actor, id).await?;
    ok(
        ctx,
        ctx.t("User deactivated", "Bruger deaktiveret"),
        html! { p.done role="status" { (p.email) } p { a href="/portal/people" { (ctx.t("Users", "Brugere")) } } },
    )
}
