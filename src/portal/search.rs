//! The public certificate database: published certificates, searched by
//! e-mail, CVR or serial, without login.

use http::Request;
use hyper::body::Incoming;
use maud::html;

use super::context::Ctx;
use super::form::query;
use super::layout::{date, ok};
use super::Answer;
use crate::model::{is_valid_cvr, now_unix, Serial};
use crate::service::queries::{search_public_certs, PublicFilter};

/// Most shown.
const SHOWN: usize = 50;

/// `GET /portal/search?email=&cvr=&serial=`.
pub fn show(ctx: &Ctx, req: &Request<Incoming>) -> Answer {
    let q = query(req);
    let (email, cvr, serial) = (q.optional("email"), q.optional("cvr"), q.optional("serial"));
    let asked = email.is_some() || cvr.is_some() || serial.is_some();
    let bad_cvr = cvr.is_some_and(|c| !is_valid_cvr(c));
    let parsed_serial = serial.map(Serial::from_hex);
    let bad_serial = matches!(parsed_serial, Some(None));
    let found = if asked && !bad_cvr && !bad_serial {
        Some(search_public_certs(
            ctx.svc(),
            &PublicFilter {
                email,
                cvr,
                serial: parsed_serial.flatten(),
            },
            SHOWN,
        )?)
    } else {
        None
    };
    let now = now_unix();
    ok(
        ctx,
        ctx.t("Public certificate search", "Offentlig certifikatsøgning"),
        html! {
            p { (ctx.t("Find published certificates by e-mail, CVR number or serial number.", "Find offentliggjorte certifikater efter e-mail, CVR-nummer eller serienummer.")) }
            form.search method="get" action="/portal/search" role="search" {
                div.field { label for="email" { "E-mail" } input id="email" name="email" type="email" value=(email.unwrap_or("")); }
                div.field.invalid[bad_cvr] {
                    label for="cvr" { (ctx.t("CVR number", "CVR-nummer")) }
                    input id="cvr" name="cvr" inputmode="numeric" value=(cvr.unwrap_or("")) aria-invalid=[bad_cvr.then_some("true")] aria-describedby=[bad_cvr.then_some("cvr-error")];
                    @if bad_cvr { p.error id="cvr-error" { (ctx.t("A CVR number is 8 digits.", "Et CVR-nummer er 8 cifre.")) } }
                }
                div.field.invalid[bad_serial] {
                    label for="serial" { (ctx.t("Serial number (hex)", "Serienummer (hex)")) }
                    input id="serial" name="serial" value=(serial.unwrap_or("")) aria-invalid=[bad_serial.then_some("true")] aria-describedby=[bad_serial.then_some("serial-error")];
                    @if bad_serial { p.error id="serial-error" { (ctx.t("A serial number is 32 hexadecimal digits.", "Et serienummer er 32 hexadecimale cifre.")) } }
                }
                button type="submit" { (ctx.t("Search", "Søg")) }
            }
            @if let Some((certs, total)) = found {
                p role="status" { (total) " " (ctx.t("found", "fundet")) }
                table {
                    thead { tr {
                        th scope="col" { (ctx.t("Subject", "Emne")) }
                        th scope="col" { (ctx.t("Serial", "Serienummer")) }
                        th scope="col" { (ctx.t("State", "Status")) }
                        th scope="col" { (ctx.t("Expires", "Udløber")) }
                    } }
                    tbody {
                        @for c in &certs {
                            tr.found {
                                td { (c.subject) }
                                td { code { (c.serial.to_string()) } }
                                td { (c.state(now).as_str()) }
                                td { (date(c.not_after)) }
                            }
                        }
                    }
                }
            }
        },
    )
}
