//! One certificate, as an administrator sees it: its details and downloads,
//! and Renew, Block and Revoke (with a reason), each behind a warning.

use base64::Engine;
use http::{Request, StatusCode};
use hyper::body::Incoming;
use maud::{html, Markup};

use super::context::Ctx;
use super::form::{posted, query};
use super::layout::{date, download, ok, Page};
use super::profiles::wire;
use super::Answer;
use crate::admin::routes::Endpoint;
use crate::model::{now_unix, CertKind, CertRecord, CertState, RevocationReason, Serial};
use crate::service::{self, visible_cert};

/// Revocation reasons offered (blocking has a button of its own).
const REASONS: [RevocationReason; 5] = [
    RevocationReason::Other,
    RevocationReason::SuspectedMisuse,
    RevocationReason::InformationChanged,
    RevocationReason::OrganisationCeased,
    RevocationReason::Superseded,
];

/// A serial from a path, or 404.
pub fn serial(ctx: &Ctx, hex: &str) -> Result<Serial, Page> {
    Serial::from_hex(hex).ok_or_else(|| Page::not_found(ctx))
}

/// The details every certificate page shows.
pub fn details(ctx: &Ctx, c: &CertRecord) -> Markup {
    let now = now_unix();
    html! {
        dl {
            dt { (ctx.t("State", "Status")) } dd id="cert-state" { (c.state(now).as_str()) }
            dt { (ctx.t("Serial", "Serienummer")) } dd { code { (c.serial.to_string()) } }
            dt { (ctx.t("Subject", "Emne")) } dd { (c.subject) }
            dt { (ctx.t("Type", "Type")) } dd { (wire(&c.kind)) }
            @if let Some(e) = &c.email { dt { "E-mail" } dd { (e) } }
            dt { (ctx.t("Issued", "Udstedt")) } dd { (date(c.issued_at)) }
            dt { (ctx.t("Expires", "Udløber")) } dd { (date(c.not_after)) }
            @if !c.rights.is_empty() { dt { (ctx.t("Rights", "Rettigheder")) } dd { (c.rights.iter().map(wire).collect::<Vec<_>>().join(", ")) } }
            dt { (ctx.t("Published", "Offentliggjort")) } dd { (if c.published { ctx.t("Yes", "Ja") } else { ctx.t("No", "Nej") }) }
        }
    }
}

/// `GET /portal/certificates/{serial}`.
pub fn show(ctx: &Ctx, hex: &str, req: &Request<Incoming>) -> Answer {
    let s = ctx.may(Endpoint::GetCertificate)?;
    let c = visible_cert(ctx.svc(), &s.actor, &serial(ctx, hex)?)?;
    if let Some(file) = file_of(ctx, &c, req)? {
        return Ok(file);
    }
    let valid = c.state(now_unix()) == CertState::Issued;
    let base = format!("/portal/certificates/{}", c.serial);
    ok(
        ctx,
        ctx.t("Certificate", "Certifikat"),
        html! {
            (details(ctx, &c))
            p {
                a href={ "/api/v1/certificates/" (c.serial.to_string()) "?format=pem" } download { (ctx.t("Download PEM", "Hent PEM")) } " · "
                a href={ "/api/v1/certificates/" (c.serial.to_string()) "?format=der" } download { (ctx.t("Download DER", "Hent DER")) }
            }
            @if valid && ctx.can(Endpoint::RevokeCertificate) {
                div.actions {
                    a.button href={ (base) "/renew" } { (ctx.t("Renew", "Forny")) }
                    @if c.kind == CertKind::User { a.button.danger href={ (base) "/block" } { (ctx.t("Block", "Spær")) } }
                    a.button.danger href={ (base) "/revoke" } { (ctx.t("Revoke", "Tilbagekald")) }
                }
            }
        },
    )
}

/// `GET /portal/certificates/{serial}/{renew|block|revoke}`: the warning.
pub fn warning_page(ctx: &Ctx, hex: &str, action: &str, base: &str) -> Answer {
    let (title, text, confirm) = match action {
        "renew" => (
            ctx.t("Renew the certificate?", "Forny certifikatet?"),
            ctx.t(
                "A renewal order is placed; the new certificate is collected like the first. The current one stays valid until it expires.",
                "Der oprettes en fornyelsesbestilling; det nye certifikat hentes som det første. Det nuværende er gyldigt, til det udløber.",
            ),
            ctx.t("Renew", "Forny"),
        ),
        "block" => (
            ctx.t("Block the certificate?", "Spær certifikatet?"),
            ctx.t(
                "A blocked certificate can never be used again. This cannot be undone.",
                "Et spærret certifikat kan aldrig bruges igen. Det kan ikke fortrydes.",
            ),
            ctx.t("Block for good", "Spær endeligt"),
        ),
        "revoke" => (
            ctx.t("Revoke the certificate?", "Tilbagekald certifikatet?"),
            ctx.t(
                "A revoked certificate can never be used again, and relying parties are told through the CRL and OCSP. This cannot be undone.",
                "Et tilbagekaldt certifikat kan aldrig bruges igen, og modtagere får det at vide via CRL og OCSP. Det kan ikke fortrydes.",
            ),
            ctx.t("Revoke for good", "Tilbagekald endeligt"),
        ),
        _ => return Err(Page::not_found(ctx)),
    };
    let fields = if action == "revoke" {
        html! {
            div.field {
                label for="reason" { (ctx.t("Reason", "Årsag")) }
                select id="reason" name="reason" {
                    @for r in REASONS { option value=(wire(&r)) { (wire(&r)) } }
                }
            }
        }
    } else {
        html! { input type="hidden" name="confirm" value="yes"; }
    };
    super::layout::warning(
        ctx,
        title,
        text,
        &format!("{base}/{hex}/{action}"),
        confirm,
        fields,
    )
}

/// The warning, for an administrator.
pub fn warning(ctx: &Ctx, hex: &str, action: &str) -> Answer {
    let s = ctx.may(Endpoint::RevokeCertificate)?;
    visible_cert(ctx.svc(), &s.actor, &serial(ctx, hex)?)?;
    warning_page(ctx, hex, action, "/portal/certificates")
}

/// `POST /portal/certificates/{serial}/{renew|block|revoke}`.
pub async fn act(ctx: &Ctx<'_>, hex: &str, action: &str, req: Request<Incoming>) -> Answer {
    let s = ctx.may(match action {
        "renew" => Endpoint::RenewCertificate,
        "block" => Endpoint::BlockCertificate,
        _ => Endpoint::RevokeCertificate,
    })?;
    let serial = serial(ctx, hex)?;
    let f = posted(ctx, req).await?;
    let svc = ctx.svc();
    let done = match action {
        "renew" => {
            let o = service::renew(svc, &s.actor, &serial).await?;
            return ok(
                ctx,
                ctx.t("Renewal ordered", "Fornyelse bestilt"),
                html! {
                    p.done role="status" { (ctx.t("The renewal is ordered:", "Fornyelsen er bestilt:")) " " a href={ "/portal/orders/" (o.order.id) } { code { (o.order.id) } } }
                    @if let Some(code) = &o.code { (super::layout::secret(ctx, "code", ctx.t("One-time code", "Engangskode"), code)) }
                },
            );
        }
        "block" => service::block(svc, &s.actor, &serial).await?,
        "revoke" => {
            let reason = serde_json::from_value::<RevocationReason>(serde_json::Value::String(
                f.get("reason").to_owned(),
            ))
            .ok()
            .filter(|r| REASONS.contains(r))
            .ok_or_else(|| {
                Page::status(
                    StatusCode::BAD_REQUEST,
                    ctx.t("Choose a reason.", "Vælg en årsag."),
                )
            })?;
            service::revoke(svc, &s.actor, &serial, reason).await?
        }
        _ => return Err(Page::not_found(ctx)),
    };
    ok(
        ctx,
        ctx.t("Certificate", "Certifikat"),
        html! {
            p.done role="status" { (ctx.t("Done. The certificate is now:", "Udført. Certifikatet er nu:")) " " (done.state(now_unix()).as_str()) }
            (details(ctx, &done))
        },
    )
}

/// The certificate as a file when `?format=pem|der` asks for one.
pub fn file_of(
    ctx: &Ctx,
    c: &crate::model::CertRecord,
    req: &Request<Incoming>,
) -> Result<Option<http::Response<http_body_util::Full<bytes::Bytes>>>, Page> {
    let name = c.serial.to_string();
    match query(req).get("format") {
        "pem" => Ok(Some(download(
            "application/x-pem-file",
            &format!("{name}.pem"),
            pem_of(&c.der).into_bytes(),
        ))),
        "der" => Ok(Some(download(
            "application/pkix-cert",
            &format!("{name}.cer"),
            c.der.clone(),
        ))),
        "" => Ok(None),
        _ => Err(Page::status(
            StatusCode::BAD_REQUEST,
            ctx.t("format: pem or der", "format: pem eller der"),
        )),
    }
}

/// The certificate `der` as PEM.
pub fn pem_of(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}
