//! The overview: the person's tasks (the service's notification bell), each
//! with a link that handles it. A task is worked out from the state, so it
//! is gone once handled.

use maud::html;

use super::context::Ctx;
use super::layout::{date, ok};
use super::Answer;
use crate::service::own::{tasks, Task};

/// `GET /portal/`.
pub async fn show(ctx: &Ctx<'_>) -> Answer {
    let s = ctx.person()?;
    let tasks = tasks(ctx.svc(), &s.person)?;
    let roles: Vec<&str> = s.person.roles.iter().map(|r| r.as_str()).collect();
    ok(
        ctx,
        ctx.t("Overview", "Overblik"),
        html! {
            p { (s.person.name) " · " (s.person.email)
                @if let Some(cvr) = &s.person.cvr { " · CVR " (cvr) }
                @if !roles.is_empty() { " · " (roles.join(", ")) } }
            section aria-labelledby="tasks-h" {
                h2 id="tasks-h" { (ctx.t("Tasks", "Opgaver")) " (" (tasks.len()) ")" }
                @if tasks.is_empty() {
                    p { (ctx.t("You have no tasks.", "Du har ingen opgaver.")) }
                } @else {
                    ul.tasks {
                        @for t in &tasks { li { (task(ctx, t)) } }
                    }
                }
            }
        },
    )
}

fn task(ctx: &Ctx, t: &Task) -> maud::Markup {
    let handle = ctx.t("Handle task", "Håndtér opgave");
    match t {
        Task::CollectCertificate { reference } => html! {
            (ctx.t("A certificate is ready to collect:", "Et certifikat er klar til at blive hentet:")) " " code { (reference) } " "
            a.button href={ "/portal/me/orders/" (reference) } { (handle) }
        },
        Task::RenewCertificate { serial, not_after } => html! {
            (ctx.t("A certificate expires on", "Et certifikat udløber den")) " " (date(*not_after)) ": " code { (serial) } " "
            a.button href={ "/portal/me/certificates/" (serial) } { (handle) }
        },
        Task::ApproveOrder { reference } => html! {
            (ctx.t("An order awaits approval:", "En bestilling afventer godkendelse:")) " " code { (reference) } " "
            a.button href={ "/portal/orders/" (reference) } { (handle) }
        },
        Task::ConfirmEmail { address } => html! {
            (ctx.t("Confirm your e-mail address through the link sent to", "Bekræft din e-mailadresse via linket sendt til")) " " (address)
        },
    }
}
