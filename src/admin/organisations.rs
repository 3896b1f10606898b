//! Organisations: create and change (operators), read, list. Their admin
//! tokens are in `tokens`.

use http::StatusCode;
use schemars::JsonSchema;
use serde::Deserialize;

use super::problem::ApiError;
use super::request::ApiRequest;
use super::response::{created, json, ApiResult};
use super::views::{EmailValidationView, Items};
use crate::app::App;
use crate::model::{is_valid_cvr, Actor, Organisation, CVR_RULE};
use crate::service;

/// `GET /organisations/{cvr}/email-validations`: where the validation of
/// each of the organisation's certificate e-mail addresses stands.
pub fn email_validations(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    let cvr = req.param(0);
    let found =
        service::list_email_validations(app.services(), actor, cvr, crate::model::now_unix())?;
    req.query.only(&[])?;
    let views = found
        .iter()
        .map(|(v, status)| EmailValidationView::of(v, *status))
        .collect();
    json(StatusCode::OK, &Items::all(views))
}

/// Longest organisation name: X.520's upper bound for the O attribute.
const MAX_ORG_NAME: usize = 64;

/// The body of `POST /organisations`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewOrganisation {
    cvr: String,
    name: String,
    #[serde(default)]
    allow_user_certs: bool,
    #[serde(default)]
    allow_seal: bool,
    #[serde(default)]
    p_numbers: Vec<String>,
    #[serde(default)]
    se_numbers: Vec<String>,
}

/// The body of `PATCH /organisations/{cvr}`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct OrganisationChanges {
    name: Option<String>,
    allow_user_certs: Option<bool>,
    allow_seal: Option<bool>,
    p_numbers: Option<Vec<String>>,
    se_numbers: Option<Vec<String>>,
}

fn check_numbers(field: &str, numbers: &[String], digits: usize) -> Result<(), ApiError> {
    for (i, n) in numbers.iter().enumerate() {
        if n.len() != digits || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::invalid(
                field,
                format!("{n:?} is not {digits} digits"),
            ));
        }
        if numbers[..i].contains(n) {
            return Err(ApiError::invalid(field, format!("{n} is listed twice")));
        }
    }
    Ok(())
}

/// Checks an organisation's own fields (P numbers are 10 digits, SE numbers 8).
fn validate(org: &Organisation) -> Result<(), ApiError> {
    if !is_valid_cvr(&org.cvr) {
        return Err(ApiError::invalid("cvr", CVR_RULE));
    }
    if org.name.is_empty() {
        return Err(ApiError::invalid("name", "is required"));
    }
    if org.name.chars().count() > MAX_ORG_NAME || org.name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "name",
            format!("must be at most {MAX_ORG_NAME} printable characters"),
        ));
    }
    // The name is the O attribute of every certificate of the organisation.
    if let Some(problem) = crate::model::subject_text_problem(&org.name) {
        return Err(ApiError::invalid("name", problem));
    }
    check_numbers("p_numbers", &org.p_numbers, 10)?;
    check_numbers("se_numbers", &org.se_numbers, 8)
}

/// The organisation a create call describes, checked.
pub(super) fn organisation_from(input: NewOrganisation) -> Result<Organisation, ApiError> {
    let org = Organisation {
        cvr: input.cvr.trim().to_owned(),
        name: input.name.trim().to_owned(),
        allow_user_certs: input.allow_user_certs,
        allow_seal: input.allow_seal,
        p_numbers: input.p_numbers,
        se_numbers: input.se_numbers,
    };
    validate(&org)?;
    Ok(org)
}

/// Applies a change to `org` and checks the result (what the store says
/// about the organisation's profiles is checked by the caller).
pub(super) fn apply_changes(
    org: &mut Organisation,
    changes: OrganisationChanges,
) -> Result<(), ApiError> {
    if let Some(name) = changes.name {
        org.name = name.trim().to_owned();
    }
    if let Some(v) = changes.allow_user_certs {
        org.allow_user_certs = v;
    }
    if let Some(v) = changes.allow_seal {
        org.allow_seal = v;
    }
    if let Some(v) = changes.p_numbers {
        org.p_numbers = v;
    }
    if let Some(v) = changes.se_numbers {
        org.se_numbers = v;
    }
    validate(org)
}

/// Applies the JSON body of `PATCH /organisations/{cvr}` to `org`, by the
/// API's own rules (the portal's settings form is turned into it).
pub fn apply_json_changes(
    org: &mut Organisation,
    changes: &serde_json::Value,
) -> Result<(), ApiError> {
    let bytes = serde_json::to_vec(changes).map_err(|e| ApiError::Encoding(Box::new(e)))?;
    apply_changes(org, super::request::parse_json(&bytes)?)
}

/// The organisation `cvr` if the actor may see it; 404 otherwise.
pub fn visible_org(app: &App, actor: &Actor, cvr: &str) -> Result<Organisation, ApiError> {
    Ok(service::visible_org(app.services(), actor, cvr)?)
}

/// `GET /organisations`: those the actor may see.
pub fn list(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    req.query.only(&[])?;
    let orgs = service::list_orgs(app.services(), actor)?;
    json(StatusCode::OK, &Items::all(orgs))
}

/// `POST /organisations` (operators only).
pub async fn create(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    if !actor.is_operator() {
        return Err(ApiError::Forbidden(
            "only a server operator can create organisations".into(),
        ));
    }
    let input: NewOrganisation = req.json()?;
    let org = organisation_from(input)?;
    service::create_org(app.services(), actor, &org).await?;
    created(&format!("/api/v1/organisations/{}", org.cvr), &org)
}

/// `GET /organisations/{cvr}`.
pub fn get(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    req.query.only(&[])?;
    json(StatusCode::OK, &visible_org(app, actor, req.param(0))?)
}

/// `PATCH /organisations/{cvr}` (operators only). The legal name, the
/// permissions and the P and SE numbers are what the CA has registered and
/// allows; an organisation's own token or certificate must not lift them.
pub async fn update(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    // The service refuses another organisation's with 404 and a
    // non-operator with 403 before the body is read, as the API promises.
    let org = service::update_org(app.services(), actor, req.param(0), |org| {
        let changes: OrganisationChanges = req.json()?;
        apply_changes(org, changes)
    })
    .await?;
    json(StatusCode::OK, &org)
}
