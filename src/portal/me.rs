//! The person's own certificates: collect what was ordered for them with
//! "User login" (accept the terms, then a PKCS#12 and its password, shown
//! once; or a certificate for a CSR from a hardware token), download one,
//! block one (final) and renew one, each behind a warning; their history.
//!
//! The PKCS#12 travels inside the one answer to the POST (a `data:` link
//! the browser saves), so estd holds no copy of it, not even for a moment
//! after the answer, and nothing secret is ever in a URL.

use base64::Engine;
use http::{Request, StatusCode};
use hyper::body::Incoming;
use maud::html;

use super::certificates::{details, file_of, pem_of, serial, warning_page};
use super::context::Ctx;
use super::form::posted;
use super::layout::{csrf_field, date, ok, page, secret, Page};
use super::profiles::wire;
use super::Answer;
use crate::model::{now_unix, CertState, Issuance, Order};
use crate::service::own::{
    block_own, issue_from_csr, issue_pkcs12, own_cert, own_certs, own_history, own_orders,
    renew_own,
};

/// Events shown in the person's history.
const HISTORY: usize = 200;

/// `GET /portal/me`.
pub fn certificates(ctx: &Ctx) -> Answer {
    let s = ctx.person()?;
    let orders = own_orders(ctx.svc(), &s.person)?;
    let certs = own_certs(ctx.svc(), &s.person)?;
    let now = now_unix();
    ok(
        ctx,
        ctx.t("My certificates", "Mine certifikater"),
        html! {
            h2 { (ctx.t("Ready to collect", "Klar til at hente")) }
            @if orders.is_empty() {
                p { (ctx.t("Nothing waits for you.", "Intet venter på dig.")) }
            } @else {
                ul {
                    @for o in &orders {
                        li { a href={ "/portal/me/orders/" (o.id) } { (ctx.t("Collect", "Hent")) " " code { (o.id) } } " (" (wire(&o.issuance)) ")" }
                    }
                }
            }
            h2 { (ctx.t("Certificates", "Certifikater")) }
            table {
                thead { tr {
                    th scope="col" { (ctx.t("Serial", "Serienummer")) }
                    th scope="col" { (ctx.t("State", "Status")) }
                    th scope="col" { (ctx.t("Expires", "Udløber")) }
                } }
                tbody {
                    @for c in &certs {
                        tr {
                            td { a href={ "/portal/me/certificates/" (c.serial.to_string()) } { code { (c.serial.to_string()) } } }
                            td { (c.state(now).as_str()) }
                            td { (date(c.not_after)) }
                        }
                    }
                }
            }
            p { a href="/portal/me/history" { (ctx.t("My history", "Min historik")) } }
        },
    )
}

fn own_order(ctx: &Ctx, reference: &str) -> Result<Order, Page> {
    let s = ctx.person()?;
    own_orders(ctx.svc(), &s.person)?
        .into_iter()
        .find(|o| o.id == reference)
        .ok_or_else(|| Page::not_found(ctx))
}

/// `GET /portal/me/orders/{reference}`: the terms, or the CSR form.
pub fn collect_form(ctx: &Ctx, reference: &str) -> Answer {
    let o = own_order(ctx, reference)?;
    let terms = &ctx.app.config.people;
    ok(
        ctx,
        ctx.t("Collect your certificate", "Hent dit certifikat"),
        html! {
            p { (ctx.t("Order", "Bestilling")) " " code { (o.id) } }
            form.card method="post" action={ "/portal/me/orders/" (o.id) } {
                (csrf_field(ctx))
                @match o.issuance {
                    Issuance::Hardware => {
                        div.field {
                            label for="csr" { (ctx.t("Certificate request (PEM) made on your token", "Certifikatanmodning (PEM) lavet på dit token")) }
                            textarea id="csr" name="csr" rows="10" required {}
                            p.hint { (ctx.t("The key stays on the token; only the request is sent.", "Nøglen bliver på tokenet; kun anmodningen sendes.")) }
                        }
                        button type="submit" { (ctx.t("Issue the certificate", "Udsted certifikatet")) }
                    }
                    _ => {
                        h2 { (ctx.t("Terms", "Vilkår")) " " small { "(" (terms.terms_version) ")" } }
                        div.terms id="terms" tabindex="0" { p { (terms.terms_text) } }
                        input type="hidden" name="terms_version" value=(terms.terms_version);
                        div.check {
                            input id="accept" type="checkbox" name="accept" value="yes" required;
                            label for="accept" { (ctx.t("I accept the terms", "Jeg accepterer vilkårene")) }
                        }
                        p.hint { (ctx.t(
                            "estd makes a key and your certificate, and gives you both in a PKCS#12 file protected by a password shown once. estd keeps no copy of the key.",
                            "estd laver en nøgle og dit certifikat og giver dig begge i en PKCS#12-fil, beskyttet af en adgangskode, der vises én gang. estd gemmer ingen kopi af nøglen.")) }
                        button type="submit" { (ctx.t("Accept and issue", "Acceptér og udsted")) }
                    }
                }
            }
        },
    )
}

/// `POST /portal/me/orders/{reference}`: issues.
pub async fn collect(ctx: &Ctx<'_>, reference: &str, req: Request<Incoming>) -> Answer {
    let s = ctx.person()?;
    let f = posted(ctx, req).await?;
    let o = own_order(ctx, reference)?;
    let b64 = base64::engine::general_purpose::STANDARD;
    if o.issuance == Issuance::Hardware {
        // The API's own parser: PEM of a certificate request, or base64 DER.
        let der = crate::admin::me::csr_der(f.get("csr")).map_err(Page::from)?;
        let cert = issue_from_csr(ctx.svc(), &s.actor, &s.person, &o.id, der).await?;
        let pem = pem_of(&cert.der);
        return ok(
            ctx,
            ctx.t("Your certificate", "Dit certifikat"),
            html! {
                p.done role="status" { (ctx.t("The certificate is issued.", "Certifikatet er udstedt.")) }
                p { a id="download" href={ "data:application/x-pem-file;base64," (b64.encode(pem.as_bytes())) } download={ (cert.serial.to_string()) ".pem" } { (ctx.t("Download the certificate (PEM)", "Hent certifikatet (PEM)")) } }
                pre { (pem) }
            },
        );
    }
    if f.get("accept") != "yes" {
        return Err(Page::status(
            StatusCode::BAD_REQUEST,
            ctx.t(
                "Accept the terms to collect the certificate.",
                "Acceptér vilkårene for at hente certifikatet.",
            ),
        ));
    }
    let issued = issue_pkcs12(
        ctx.svc(),
        &s.actor,
        &s.person,
        &o.id,
        f.get("terms_version"),
    )
    .await?;
    let file = format!("{}.p12", issued.serial);
    Ok(page(
        ctx,
        StatusCode::OK,
        ctx.t("Your certificate", "Dit certifikat"),
        html! {
            p.done role="status" { (ctx.t("The certificate is issued.", "Certifikatet er udstedt.")) }
            p.warning { (ctx.t(
                "The password is shown only now, and this page is the only copy of the file. Save the file and keep the password before you leave the page.",
                "Adgangskoden vises kun nu, og denne side er filens eneste kopi. Gem filen og adgangskoden, før du forlader siden.")) }
            details id="show-password" {
                summary { (ctx.t("Show password", "Vis adgangskode")) }
                (secret(ctx, "password", ctx.t("Password", "Adgangskode"), &issued.password))
            }
            p { a.button id="download" href={ "data:application/x-pkcs12;base64," (b64.encode(&issued.pkcs12)) } download=(file) { (ctx.t("Download the PKCS#12 file", "Hent PKCS#12-filen")) } }
        },
    ))
}

/// `GET /portal/me/certificates/{serial}[?format=pem|der]`.
pub fn certificate(ctx: &Ctx, hex: &str, req: &Request<Incoming>) -> Answer {
    let s = ctx.person()?;
    let c = own_cert(ctx.svc(), &s.person, &serial(ctx, hex)?)?;
    if let Some(file) = file_of(ctx, &c, req)? {
        return Ok(file);
    }
    let name = c.serial.to_string();
    let valid = c.state(now_unix()) == CertState::Issued;
    let base = format!("/portal/me/certificates/{name}");
    ok(
        ctx,
        ctx.t("My certificate", "Mit certifikat"),
        html! {
            (details(ctx, &c))
            p {
                a href={ (base) "?format=pem" } { (ctx.t("Download PEM", "Hent PEM")) } " · "
                a href={ (base) "?format=der" } { (ctx.t("Download DER", "Hent DER")) }
            }
            @if valid {
                div.actions {
                    a.button href={ (base) "/renew" } { (ctx.t("Renew", "Forny")) }
                    a.button.danger href={ (base) "/block" } { (ctx.t("Block", "Spær")) }
                }
            }
        },
    )
}

/// `GET /portal/me/certificates/{serial}/{renew|block}`: the warning.
pub fn warning(ctx: &Ctx, hex: &str, action: &str) -> Answer {
    let s = ctx.person()?;
    own_cert(ctx.svc(), &s.person, &serial(ctx, hex)?)?;
    if !matches!(action, "renew" | "block") {
        return Err(Page::not_found(ctx));
    }
    warning_page(ctx, hex, action, "/portal/me/certificates")
}

/// `POST /portal/me/certificates/{serial}/{renew|block}`.
pub async fn act(ctx: &Ctx<'_>, hex: &str, action: &str, req: Request<Incoming>) -> Answer {
    let s = ctx.person()?;
    let serial = serial(ctx, hex)?;
    let f = posted(ctx, req).await?;
    match action {
        "block" => {
            let c = block_own(
                ctx.svc(),
                &s.actor,
                &s.person,
                &serial,
                f.get("confirm") == "yes",
            )
            .await?;
            ok(
                ctx,
                ctx.t("Certificate blocked", "Certifikat spærret"),
                html! { p.done role="status" { (ctx.t("The certificate is blocked.", "Certifikatet er spærret.")) } (details(ctx, &c)) },
            )
        }
        "renew" => {
            let o = renew_own(ctx.svc(), &s.actor, &s.person, &serial).await?;
            ok(
                ctx,
                ctx.t("Renewal ordered", "Fornyelse bestilt"),
                html! {
                    p.done role="status" { (ctx.t("The renewal is ordered; collect it here:", "Fornyelsen er bestilt; hent den her:")) " "
                        a href={ "/portal/me/orders/" (o.order.id) } { code { (o.order.id) } } }
                },
            )
        }
        _ => Err(Page::not_found(ctx)),
    }
}

/// `GET /portal/me/history`.
pub fn history(ctx: &Ctx) -> Answer {
    let s = ctx.person()?;
    let events = own_history(ctx.svc(), &s.actor, &s.person, HISTORY)?;
    Ok(page(
        ctx,
        StatusCode::OK,
        ctx.t("My history", "Min historik"),
        super::history::table(ctx, &events),
    ))
}
