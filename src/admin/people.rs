//! People: an organisation's (`/organisations/{cvr}/people`), the server's
//! operators (`/operators`), and one person (`/people/{id}`). The rules live
//! in [`crate::service::people`].

use http::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::orders::NoFields;
use super::request::ApiRequest;
use super::response::{created, json, ApiResult};
use super::views::{rfc3339, Items};
use crate::app::App;
use crate::model::{now_unix, Actor, Person, PersonState, PersonStatus, Role};
use crate::service::people::{self as service, NewPerson};

/// The body of `POST /organisations/{cvr}/people` and `POST /operators`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Invitation {
    /// The person's name.
    name: String,
    /// Their e-mail address: where the invitation goes, and their login name.
    email: String,
    /// Roles (none: a user, who has only their own certificates). An
    /// operator's is `["operator"]`, the default at `/operators`.
    #[serde(default)]
    roles: Vec<Role>,
}

/// A person.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Person")]
pub(super) struct PersonView {
    id: String,
    /// Organisation; none for a server operator.
    cvr: Option<String>,
    name: String,
    email: String,
    roles: Vec<Role>,
    state: PersonStatus,
    created_at: String,
    created_by: String,
    /// While invited: when the activation link stops working.
    #[serde(skip_serializing_if = "Option::is_none")]
    invitation_expires_at: Option<String>,
    /// While locked after wrong logins: until when.
    #[serde(skip_serializing_if = "Option::is_none")]
    locked_until: Option<String>,
}

impl PersonView {
    pub(super) fn of(p: &Person) -> PersonView {
        let now = now_unix();
        PersonView {
            id: p.id.clone(),
            cvr: p.cvr.clone(),
            name: p.name.clone(),
            email: p.email.clone(),
            roles: p.roles.clone(),
            state: p.status(),
            created_at: rfc3339(p.created_at),
            created_by: p.created_by.clone(),
            invitation_expires_at: match p.state {
                PersonState::Invited { expires_at, .. } => Some(rfc3339(expires_at)),
                _ => None,
            },
            locked_until: p
                .guard
                .locked_until
                .filter(|_| p.guard.is_locked(now))
                .map(rfc3339),
        }
    }
}

/// The organisation in the path, or none at `/operators`.
fn path_cvr(req: &ApiRequest) -> Option<&str> {
    req.params.first().map(String::as_str)
}

/// `GET /organisations/{cvr}/people`, `GET /operators`.
pub fn list(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    req.query.only(&[])?;
    let people = service::list_people(app.services(), actor, path_cvr(req))?;
    json(
        StatusCode::OK,
        &Items::all(people.iter().map(PersonView::of).collect()),
    )
}

/// `POST /organisations/{cvr}/people`, `POST /operators`: invites a person.
pub async fn invite(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    req.query.only(&[])?;
    let input: Invitation = req.json()?;
    let cvr = path_cvr(req).map(str::to_owned);
    let roles = match (&cvr, input.roles.is_empty()) {
        (None, true) => vec![Role::Operator],
        _ => input.roles,
    };
    let person = service::invite(
        app.services(),
        actor,
        &NewPerson {
            cvr,
            name: input.name,
            email: input.email,
            roles,
        },
    )
    .await?;
    created(
        &format!("/api/v1/people/{}", person.id),
        &PersonView::of(&person),
    )
}

/// `GET /people/{id}`.
pub fn get(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    req.query.only(&[])?;
    let person = service::visible_person(app.services(), actor, req.param(0))?;
    json(StatusCode::OK, &PersonView::of(&person))
}

/// `POST /people/{id}/deactivate`: for good; their sessions end.
pub async fn deactivate(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    req.query.only(&[])?;
    let _: NoFields = req.json_or_default()?;
    let person = service::deactivate(app.services(), actor, req.param(0)).await?;
    json(StatusCode::OK, &PersonView::of(&person))
}

/// `POST /people/{id}/invitation`: a new activation link.
pub async fn reinvite(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    req.query.only(&[])?;
    let _: NoFields = req.json_or_default()?;
    let person = service::reinvite(app.services(), actor, req.param(0)).await?;
    json(StatusCode::OK, &PersonView::of(&person))
}
