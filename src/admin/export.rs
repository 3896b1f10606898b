//! CSV exports of certificates: one profile's, or an organisation's (or, for
//! operators, everyone's).

use super::problem::ApiError;
use super::request::ApiRequest;
use super::response::{csv, ApiResult};
use super::views::rfc3339;
use crate::app::App;
use crate::model::Actor;
use crate::model::{is_valid_cvr, now_unix, CVR_RULE};
use crate::service::{self, CertExport};

/// The header row of every export.
pub const CSV_HEADER: [&str; 6] = [
    "profile_id",
    "profile_name",
    "status",
    "serial",
    "not_after",
    "subject",
];

/// Writes an export (already sorted by profile name, notAfter, serial) as CSV.
fn to_csv(export: &CertExport) -> Result<Vec<u8>, ApiError> {
    let now = now_unix();
    let fail = |e: csv::Error| ApiError::Encoding(Box::new(e));
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_HEADER).map_err(fail)?;
    for (c, profile_name) in &export.certs {
        w.write_record([
            c.profile_id.as_str(),
            profile_name.as_str(),
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
    let (profile, export) = service::export_profile_certs(app.services(), actor, req.param(0))?;
    Ok(csv(
        &format!("certificates-{}.csv", profile.id),
        to_csv(&export)?,
    ))
}

/// `GET /export.csv?cvr=`: the organisation's certificates; an operator
/// without `cvr` gets every certificate.
pub fn export(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    req.query.only(&["cvr"])?;
    let wanted = req.query.get("cvr");
    if wanted.is_some_and(|c| !is_valid_cvr(c)) {
        return Err(ApiError::invalid("cvr", CVR_RULE));
    }
    let (cvr, export) = service::export_org_certs(app.services(), actor, wanted)?;
    let filename = match &cvr {
        Some(c) => format!("certificates-{c}.csv"),
        None => "certificates.csv".into(),
    };
    Ok(csv(&filename, to_csv(&export)?))
}
