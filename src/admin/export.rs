//! CSV exports: certificates (one profile's, or an organisation's, or for
//! operators everyone's) and the certificate profiles themselves.
//!
//! Every export goes through one writer, [`write_csv`]: RFC 4180 (fields
//! with a comma, a quote, CR or LF quoted, quotes doubled, CRLF line ends),
//! UTF-8 with a byte order mark so that a spreadsheet reads the encoding
//! right, and cells that a spreadsheet would take for a formula neutralised.

use std::borrow::Cow;

use super::problem::ApiError;

use super::request::ApiRequest;
use super::response::{csv, ApiResult};
use super::views::{rfc3339, wire_name};
use crate::app::App;
use crate::model::{is_valid_cvr, now_unix, Actor, ProfileState, CVR_RULE};
use crate::service::{self, CertExport};

/// The header row of every certificate export.
pub const CSV_HEADER: [&str; 6] = [
    "profile_id",
    "profile_name",
    "status",
    "serial",
    "not_after",
    "subject",
];

/// The header row of the profile export.
pub const PROFILE_CSV_HEADER: [&str; 16] = [
    "profile_id",
    "cvr",
    "name",
    "kind",
    "est_label",
    "identification",
    "issuance",
    "contact_name",
    "contact_email",
    "email",
    "p_number",
    "se_number",
    "seal",
    "publish",
    "state",
    "valid_certificates",
];

/// The UTF-8 byte order mark every export starts with.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A cell as written: one that starts like a formula (`=`, `+`, `-`, `@`,
/// or a tab or CR, which some spreadsheets skip before one) gets a leading
/// `'`, so that a spreadsheet shows it as text instead of evaluating it
/// (CSV injection). Client text reaches exports (names, contacts, subjects).
fn cell(value: &str) -> Cow<'_, str> {
    match value.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{value}")),
        _ => Cow::Borrowed(value),
    }
}

/// Writes `header` and `rows` as CSV: the one CSV writer of the exports.
fn write_csv<I, R>(header: &[&str], rows: I) -> Result<Vec<u8>, ApiError>
where
    I: IntoIterator<Item = R>,
    R: IntoIterator,
    R::Item: AsRef<str>,
{
    let fail = |e: csv::Error| ApiError::Encoding(Box::new(e));
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(BOM.to_vec());
    w.write_record(header.iter().map(|h| cell(h).into_owned()))
        .map_err(fail)?;
    for row in rows {
        let cells: Vec<String> = row
            .into_iter()
            .map(|v| cell(v.as_ref()).into_owned())
            .collect();
        w.write_record(&cells).map_err(fail)?;
    }
    w.into_inner()
        .map_err(|e| ApiError::Encoding(Box::new(e.into_error())))
}

/// Writes a certificate export (already sorted by profile name, notAfter, serial).
fn certs_csv(export: &CertExport) -> Result<Vec<u8>, ApiError> {
    let now = now_unix();
    let rows = export.certs.iter().map(|(c, profile_name)| {
        [
            c.profile_id.clone(),
            profile_name.clone(),
            c.state(now).as_str().to_owned(),
            c.serial.to_string(),
            rfc3339(c.not_after),
            c.subject.clone(),
        ]
    });
    write_csv(&CSV_HEADER, rows)
}

/// `GET /profiles/{id}/certificates.csv`.
pub fn profile_certificates(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    req.query.only(&[])?;
    let (profile, export) = service::export_profile_certs(app.services(), actor, req.param(0))?;
    Ok(csv(
        &format!("certificates-{}.csv", profile.id),
        certs_csv(&export)?,
    ))
}

/// The `cvr` query parameter of an export, checked.
fn wanted_cvr(req: &ApiRequest) -> Result<Option<&str>, ApiError> {
    let wanted = req.query.get("cvr");
    if wanted.is_some_and(|c| !is_valid_cvr(c)) {
        return Err(ApiError::invalid("cvr", CVR_RULE));
    }
    Ok(wanted)
}

/// The `state` query parameter of a profile search or export, checked.
pub(super) fn wanted_state(req: &ApiRequest) -> Result<Option<ProfileState>, ApiError> {
    match req.query.get("state") {
        None => Ok(None),
        Some(s) => ProfileState::parse(s).map(Some).ok_or_else(|| {
            let names: Vec<&str> = ProfileState::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::invalid("state", format!("must be one of {}", names.join(", ")))
        }),
    }
}

/// `GET /export.csv?cvr=`: the organisation's certificates; an operator
/// without `cvr` gets every certificate.
pub fn export(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    req.query.only(&["cvr"])?;
    let wanted = wanted_cvr(req)?;
    let (cvr, export) = service::export_org_certs(app.services(), actor, wanted)?;
    let filename = match &cvr {
        Some(c) => format!("certificates-{c}.csv"),
        None => "certificates.csv".into(),
    };
    Ok(csv(&filename, certs_csv(&export)?))
}

/// `GET /profiles.csv?cvr=&state=`: the organisation's profiles, those
/// without certificates included, with their state and number of valid
/// certificates; an operator without `cvr` gets every profile.
pub fn profiles(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    req.query.only(&["cvr", "state"])?;
    let wanted = wanted_cvr(req)?;
    let state = wanted_state(req)?;
    let (cvr, export) = service::export_profiles(app.services(), actor, wanted, state, now_unix())?;
    let yes_no = |b: bool| if b { "true" } else { "false" }.to_owned();
    let rows = export.profiles.iter().map(|(p, used)| {
        let (contact_name, contact_email) = match &p.contact {
            Some(c) => (c.name.clone(), c.email.clone()),
            None => (String::new(), String::new()),
        };
        [
            p.id.clone(),
            p.cvr.clone(),
            p.name.clone(),
            wire_name(&p.kind),
            p.est_label.clone(),
            wire_name(&p.identification),
            wire_name(&p.issuance),
            contact_name,
            contact_email,
            p.email.clone().unwrap_or_default(),
            p.p_number.clone().unwrap_or_default(),
            p.se_number.clone().unwrap_or_default(),
            yes_no(p.seal),
            yes_no(p.publish),
            used.state().as_str().to_owned(),
            used.valid_certs.to_string(),
        ]
    });
    let body = write_csv(&PROFILE_CSV_HEADER, rows)?;
    let filename = match &cvr {
        Some(c) => format!("profiles-{c}.csv"),
        None => "profiles.csv".into(),
    };
    Ok(csv(&filename, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_is_rfc_4180_with_a_bom_and_no_formulas() {
        let rows = vec![
            vec!["plain", "a, b", "say \"hi\""],
            vec!["line\nbreak", "=1+1", "-2"],
            vec!["@SUM(A1)", "+3", "\tx"],
            vec!["", "CN=x,O=y", "ok"],
        ];
        let out = write_csv(&["h1", "h2", "h3"], rows).expect("csv");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            text,
            "\u{feff}h1,h2,h3\r\n\
             plain,\"a, b\",\"say \"\"hi\"\"\"\r\n\
             \"line\nbreak\",'=1+1,'-2\r\n\
             '@SUM(A1),'+3,'\tx\r\n\
             ,\"CN=x,O=y\",ok\r\n"
        );
        // No rows: the BOM and the header only.
        let empty = write_csv(&PROFILE_CSV_HEADER, Vec::<Vec<String>>::new()).expect("csv");
        assert!(empty.starts_with(BOM));
        assert!(empty.ends_with(b"valid_certificates\r\n"));
    }
}
