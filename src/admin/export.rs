//! CSV exports of certificates: one profile's, or an organisation's (or, for
//! operators, everyone's).

use std::collections::HashMap;

use super::problem::ApiError;
use super::request::ApiRequest;
use super::response::{csv, ApiResult};
use super::views::rfc3339;
use crate::app::App;
use crate::model::Actor;
use crate::model::{is_valid_cvr, now_unix, CertRecord, CVR_RULE};
use crate::service::visible_profile;

/// The header row of every export.
pub const CSV_HEADER: [&str; 6] = [
    "profile_id",
    "profile_name",
    "status",
    "serial",
    "not_after",
    "subject",
];

/// Writes `certs` (sorted by profile name, notAfter, serial) as CSV.
fn to_csv(app: &App, mut certs: Vec<CertRecord>) -> Result<Vec<u8>, ApiError> {
    let mut names: HashMap<String, String> = HashMap::new();
    for p in app.store.profiles() {
        let p = p?;
        names.insert(p.id, p.name);
    }
    let name_of = |id: &str| names.get(id).map(String::as_str).unwrap_or("");
    certs.sort_by(|a, b| {
        (name_of(&a.profile_id), a.not_after, a.serial).cmp(&(
            name_of(&b.profile_id),
            b.not_after,
            b.serial,
        ))
    });
    let now = now_unix();
    let fail = |e: csv::Error| ApiError::Encoding(Box::new(e));
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_HEADER).map_err(fail)?;
    for c in &certs {
        w.write_record([
            c.profile_id.as_str(),
            name_of(&c.profile_id),
            c.state(now).as_str(),
            &c.serial.to_string(),
            &rfc3339(c.not_after),
            c.subject.as_str(),
        ])
        .map_err(fail)?;
    }
    w.into_inner()
        .map_err(|e| ApiError::Encoding(Box::new(e.into_error())))
}

/// `GET /profiles/{id}/certificates.csv`.
pub fn profile_certificates(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    req.query.only(&[])?;
    let profile = visible_profile(app.services(), actor, req.param(0))?;
    let mut certs = Vec::new();
    for c in app.store.certs() {
        let c = c?;
        if c.profile_id == profile.id {
            certs.push(c);
        }
    }
    Ok(csv(
        &format!("certificates-{}.csv", profile.id),
        to_csv(app, certs)?,
    ))
}

/// `GET /export.csv?cvr=`: the organisation's certificates; an operator
/// without `cvr` gets every certificate.
pub fn export(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    req.query.only(&["cvr"])?;
    let cvr = match (req.query.get("cvr"), actor.cvr.as_deref()) {
        (Some(c), _) if !is_valid_cvr(c) => return Err(ApiError::invalid("cvr", CVR_RULE)),
        (Some(c), _) if !actor.may_access(c) || app.store.org(c)?.is_none() => {
            return Err(ApiError::NotFound("organisation not found".into()))
        }
        (Some(c), _) => Some(c.to_owned()),
        (None, own) => own.map(str::to_owned),
    };
    let mut certs = Vec::new();
    for c in app.store.certs() {
        let c = c?;
        if cvr.as_deref().is_none_or(|wanted| wanted == c.cvr) {
            certs.push(c);
        }
    }
    let filename = match &cvr {
        Some(c) => format!("certificates-{c}.csv"),
        None => "certificates.csv".into(),
    };
    Ok(csv(&filename, to_csv(app, certs)?))
}
