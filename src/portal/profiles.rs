//! Certificate profiles: search (name, e-mail, UUID, state) with paging, one
//! profile with its certificates, and "create profile": the form, a review
//! that the server checks by the API's own rules (a refusal is shown beside
//! the field at fault), confirmation, and the receipt with the order's
//! reference number and one-time code, shown once.

use http::{Request, StatusCode};
use hyper::body::Incoming;
use maud::{html, Markup};
use serde_json::{json, Value};

use super::context::Ctx;
use super::form::{posted, query, Form};
use super::layout::{csrf_field, date, ok, page, secret, Page};
use super::Answer;
use crate::admin::problem::ApiError;
use crate::admin::profiles::{check_new_profile, create_profile, parse_new_profile};
use crate::admin::routes::Endpoint;
use crate::model::{now_unix, Profile, ProfileState};
use crate::service::orders::{create_order, OrderRequest};
use crate::service::queries::{export_profile_certs, search_profiles, ProfileFilter};

const PER_PAGE: usize = 20;

/// A model value by its API name (`user-login`, `est`, ...).
pub fn wire<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

/// `GET /portal/profiles?q=&state=&page=`.
pub fn list(ctx: &Ctx, req: &Request<Incoming>) -> Answer {
    let s = ctx.may(Endpoint::SearchProfiles)?;
    let q = query(req);
    let text = q.get("q").to_lowercase();
    let state = ProfileState::ALL
        .into_iter()
        .find(|st| wire(st) == q.get("state"));
    let page_no = q
        .get("page")
        .parse::<usize>()
        .unwrap_or(1)
        .clamp(1, 100_000);
    let found = search_profiles(
        ctx.svc(),
        &s.actor,
        &ProfileFilter {
            text: Some(text.as_str()).filter(|t| !t.is_empty()),
            cvr: None,
            state,
        },
        now_unix(),
    )?;
    let pages = found.len().div_ceil(PER_PAGE).max(1);
    let shown: Vec<&Profile> = found
        .iter()
        .skip((page_no - 1) * PER_PAGE)
        .take(PER_PAGE)
        .collect();
    let link = |p: usize| {
        format!(
            "/portal/profiles?q={}&state={}&page={p}",
            form_urlencoded::byte_serialize(q.get("q").as_bytes()).collect::<String>(),
            q.get("state")
        )
    };
    ok(
        ctx,
        ctx.t("Certificate profiles", "Certifikatprofiler"),
        html! {
            @if ctx.can(Endpoint::CreateProfile) {
                p { a.button href="/portal/profiles/new" { (ctx.t("Create profile", "Opret profil")) } }
            }
            form.search method="get" action="/portal/profiles" role="search" {
                div.field {
                    label for="q" { (ctx.t("Name, e-mail or UUID", "Navn, e-mail eller UUID")) }
                    input id="q" name="q" type="search" value=(q.get("q"));
                }
                div.field {
                    label for="state" { (ctx.t("State", "Status")) }
                    select id="state" name="state" {
                        option value="" { (ctx.t("Any", "Alle")) }
                        @for st in ProfileState::ALL {
                            option value=(wire(&st)) selected[state == Some(st)] { (wire(&st)) }
                        }
                    }
                }
                button type="submit" { (ctx.t("Search", "Søg")) }
            }
            p { (found.len()) " " (ctx.t("profiles", "profiler")) " · "
                a href="/api/v1/profiles.csv" download { (ctx.t("Download CSV", "Hent CSV")) } }
            table {
                caption.visually-hidden { (ctx.t("Profiles found", "Fundne profiler")) }
                thead { tr { th scope="col" { (ctx.t("Name", "Navn")) } th scope="col" { (ctx.t("Type", "Type")) } th scope="col" { (ctx.t("Method", "Metode")) } th scope="col" { "UUID" } } }
                tbody {
                    @for p in &shown {
                        tr {
                            td { a href={ "/portal/profiles/" (p.id) } { (p.name) } }
                            td { (wire(&p.kind)) }
                            td { (wire(&p.identification)) " × " (wire(&p.issuance)) }
                            td { code { (p.id) } }
                        }
                    }
                }
            }
            @if pages > 1 {
                nav.paging aria-label=(ctx.t("Pages", "Sider")) {
                    @if page_no > 1 { a href=(link(page_no - 1)) rel="prev" { (ctx.t("Previous", "Forrige")) } }
                    span { (page_no) " / " (pages) }
                    @if page_no < pages { a href=(link(page_no + 1)) rel="next" { (ctx.t("Next", "Næste")) } }
                }
            }
        },
    )
}

/// `GET /portal/profiles/{id}`.
pub fn show(ctx: &Ctx, id: &str) -> Answer {
    let s = ctx.may(Endpoint::GetProfile)?;
    let (p, export) = export_profile_certs(ctx.svc(), &s.actor, id)?;
    let now = now_unix();
    ok(
        ctx,
        &p.name,
        html! {
            dl {
                dt { "UUID" } dd { code { (p.id) } }
                dt { "CVR" } dd { (p.cvr) }
                dt { (ctx.t("Type", "Type")) } dd { (wire(&p.kind)) }
                dt { (ctx.t("Identification × issuance", "Identifikation × udstedelse")) } dd { (wire(&p.identification)) " × " (wire(&p.issuance)) }
                dt { (ctx.t("EST label", "EST-label")) } dd { code { (p.est_label) } }
                dt { (ctx.t("Rights", "Rettigheder")) } dd { (p.rights.iter().map(wire).collect::<Vec<_>>().join(", ")) }
                dt { (ctx.t("Seal", "Segl")) } dd { (yes(ctx, p.seal)) }
                dt { (ctx.t("Published", "Offentliggjort")) } dd { (yes(ctx, p.publish)) }
                @if let Some(c) = &p.contact { dt { (ctx.t("Contact", "Kontakt")) } dd { (c.name) " <" (c.email) ">" } }
            }
            @if ctx.can(Endpoint::CreateOrder) {
                h2 { (ctx.t("Order a certificate", "Bestil et certifikat")) }
                form.card method="post" action={ "/portal/profiles/" (p.id) "/order" } {
                    (csrf_field(ctx))
                    p.hint { (ctx.t("For a user certificate, name the user (an active user of the organisation); leave both empty for the profile's own certificate.",
                        "Til et medarbejdercertifikat angives brugeren (en aktiv bruger i organisationen); lad begge felter stå tomme til profilens eget certifikat.")) }
                    div.field { label for="user_name" { (ctx.t("User's name", "Brugerens navn")) } input id="user_name" name="user_name"; }
                    div.field { label for="user_email" { (ctx.t("User's e-mail", "Brugerens e-mail")) } input id="user_email" name="user_email" type="email"; }
                    div.check { input id="publish" type="checkbox" name="publish" value="on" checked[p.publish]; label for="publish" { (ctx.t("Publish the user's certificate in the certificate database", "Offentliggør brugerens certifikat i certifikatdatabasen")) } }
                    button type="submit" { (ctx.t("Order", "Bestil")) }
                }
            }
            h2 { (ctx.t("Certificates", "Certifikater")) }
            p { a href={ "/api/v1/profiles/" (p.id) "/certificates.csv" } download { (ctx.t("Download CSV", "Hent CSV")) } }
            (cert_table(ctx, export.certs.iter().map(|(c, _)| c), now))
        },
    )
}

/// `POST /portal/profiles/{id}/order`: orders a certificate (a user's, if
/// one is named) and shows the receipt.
pub async fn order(ctx: &Ctx<'_>, id: &str, req: Request<Incoming>) -> Answer {
    let s = ctx.may(Endpoint::CreateOrder)?;
    let f = posted(ctx, req).await?;
    let user = match (f.optional("user_name"), f.optional("user_email")) {
        (None, None) => None,
        (name, email) => Some((
            name.unwrap_or("").to_owned(),
            email.unwrap_or("").to_owned(),
        )),
    };
    let request = OrderRequest {
        profile_id: id.to_owned(),
        publish: user.as_ref().map(|_| f.ticked("publish")),
        user,
        identification: None,
        issuance: None,
    };
    let o = create_order(ctx.svc(), &s.actor, &request).await?;
    ok(
        ctx,
        ctx.t("Receipt", "Kvittering"),
        receipt_of_order(ctx, &o),
    )
}

/// The reference number and one-time code of a new order, shown once.
pub fn receipt_of_order(ctx: &Ctx, o: &crate::service::CreatedOrder) -> Markup {
    html! {
        p.done role="status" { (ctx.t("The certificate is ordered.", "Certifikatet er bestilt.")) }
        (secret(ctx, "reference", ctx.t("Reference number", "Referencenummer"), &o.order.id))
        @if let Some(code) = &o.code {
            (secret(ctx, "code", ctx.t("One-time code", "Engangskode"), code))
            p.warning { (ctx.t(
                "The one-time code is shown only now. Copy it and hand it to whoever collects the certificate; estd keeps only its hash.",
                "Engangskoden vises kun nu. Kopiér den og giv den til den, der skal hente certifikatet; estd gemmer kun dens hash.")) }
        }
        p { a href={ "/portal/orders/" (o.order.id) } { (ctx.t("Follow the order", "Følg bestillingen")) } }
    }
}

/// A table of certificates, each linking to its page.
pub fn cert_table<'c>(
    ctx: &Ctx,
    certs: impl Iterator<Item = &'c crate::model::CertRecord>,
    now: u64,
) -> Markup {
    html! {
        table {
            thead { tr { th scope="col" { (ctx.t("Serial", "Serienummer")) } th scope="col" { (ctx.t("Subject", "Emne")) } th scope="col" { (ctx.t("State", "Status")) } th scope="col" { (ctx.t("Expires", "Udløber")) } } }
            tbody {
                @for c in certs {
                    tr {
                        td { a href={ "/portal/certificates/" (c.serial.to_string()) } { code { (c.serial.to_string()) } } }
                        td { (c.subject) }
                        td { (c.state(now).as_str()) }
                        td { (date(c.not_after)) }
                    }
                }
            }
        }
    }
}

fn yes(ctx: &Ctx, b: bool) -> &'static str {
    if b {
        ctx.t("Yes", "Ja")
    } else {
        ctx.t("No", "Nej")
    }
}

/// The form's fields, as the API's JSON.
fn to_json(f: &Form) -> Value {
    let opt = |name: &str| f.optional(name).map(|v| Value::String(v.to_owned()));
    let mut v = json!({
        "name": f.get("name"),
        "kind": f.get("kind"),
        "contact": { "name": f.get("contact_name"), "email": f.get("contact_email") },
        "rights": f.all("rights"),
        "seal": f.ticked("seal"),
        "publish": f.ticked("publish"),
        "identification": f.get("identification"),
        "issuance": f.get("issuance"),
        "est_label": f.get("est_label"),
        "dns_names": f.get("dns_names").split_whitespace().collect::<Vec<_>>(),
        "approval_required": f.ticked("approval_required"),
    });
    for name in ["email", "p_number", "se_number"] {
        if let Some(x) = opt(name) {
            v[name] = x;
        }
    }
    if let Some(days) = f.optional("validity_days") {
        // A number the API checks; anything else is refused beside the field.
        v["validity_days"] = days
            .parse::<u64>()
            .map(Value::from)
            .unwrap_or(Value::String(days.to_owned()));
    }
    if f.ticked("order") {
        v["order"] = json!({});
    }
    v
}

/// The field a refusal names, as the form's field.
fn field_of(e: &ApiError) -> Option<String> {
    let field = match e {
        ApiError::InvalidField { field, .. } => field.as_str(),
        ApiError::Service(crate::service::Error::Invalid { field, .. }) => field,
        _ => return None,
    };
    Some(field.replace('.', "_"))
}

fn message_of(e: &ApiError) -> String {
    match e {
        ApiError::InvalidField { message, .. } => message.clone(),
        ApiError::Service(crate::service::Error::Invalid { message, .. }) => message.clone(),
        other => other.to_string(),
    }
}

/// `GET /portal/profiles/new`.
pub fn new_form(ctx: &Ctx) -> Answer {
    ctx.may(Endpoint::CreateProfile)?;
    let person = &ctx.person()?.person;
    let seed = format!(
        "kind=system&identification=one-time-code&issuance=est&order=on&contact_name={}&contact_email={}",
        form_urlencoded::byte_serialize(person.name.as_bytes()).collect::<String>(),
        form_urlencoded::byte_serialize(person.email.as_bytes()).collect::<String>(),
    );
    Ok(page(
        ctx,
        StatusCode::OK,
        ctx.t("Create profile", "Opret profil"),
        profile_form(ctx, &Form::parse(seed.as_bytes()), None),
    ))
}

fn profile_form(ctx: &Ctx, f: &Form, problem: Option<(Option<String>, String)>) -> Markup {
    let (bad_field, message) = match &problem {
        Some((field, m)) => (field.clone(), Some(m.clone())),
        None => (None, None),
    };
    let known = [
        "name",
        "kind",
        "contact_name",
        "contact_email",
        "email",
        "p_number",
        "se_number",
        "rights",
        "seal",
        "publish",
        "identification",
        "issuance",
        "est_label",
        "validity_days",
        "dns_names",
        "order",
    ];
    let general = match (&bad_field, &message) {
        (Some(f), Some(m)) if !known.contains(&f.as_str()) => Some(format!("{f}: {m}")),
        (None, Some(m)) => Some(m.clone()),
        _ => None,
    };
    let err = |name: &str| -> Option<String> {
        match (&bad_field, &message) {
            (Some(f), Some(m)) if f == name => Some(m.clone()),
            _ => None,
        }
    };
    let text = |name: &'static str, label: &str, kind: &'static str, hint: Option<&str>| {
        let e = err(name);
        html! {
            div.field.invalid[e.is_some()] {
                label for=(name) { (label) }
                input id=(name) name=(name) type=(kind) value=(f.get(name))
                    aria-invalid=[e.as_ref().map(|_| "true")]
                    aria-describedby=[e.as_ref().map(|_| format!("{name}-error"))];
                @if let Some(h) = hint { p.hint { (h) } }
                @if let Some(e) = e { p.error id={ (name) "-error" } { (e) } }
            }
        }
    };
    let choice = |name: &'static str, label: &str, options: &[(&str, &str)]| {
        let e = err(name);
        html! {
            div.field.invalid[e.is_some()] {
                label for=(name) { (label) }
                select id=(name) name=(name)
                    aria-invalid=[e.as_ref().map(|_| "true")]
                    aria-describedby=[e.as_ref().map(|_| format!("{name}-error"))] {
                    @for (value, text) in options {
                        option value=(value) selected[f.get(name) == *value] { (text) }
                    }
                }
                @if let Some(e) = e { p.error id={ (name) "-error" } { (e) } }
            }
        }
    };
    let check = |name: &'static str, value: &'static str, label: &str, on: bool| {
        html! {
            div.check {
                input id={ (name) "-" (value) } type="checkbox" name=(name) value=(value) checked[on];
                label for={ (name) "-" (value) } { (label) }
            }
        }
    };
    let rights = f.all("rights");
    html! {
        @if let Some(g) = general { p.alert role="alert" { (g) } }
        form.card method="post" action="/portal/profiles/new" novalidate {
            (csrf_field(ctx))
            input type="hidden" name="step" value="review";
            fieldset {
                legend { (ctx.t("Details", "Oplysninger")) }
                (text("name", ctx.t("Name", "Navn"), "text", Some(ctx.t("Becomes the certificate's common name.", "Bliver certifikatets navn (CN)."))))
                (choice("kind", ctx.t("Type", "Type"), &[("system", ctx.t("System certificate", "Systemcertifikat")), ("organisation", ctx.t("Organisation certificate", "Organisationscertifikat"))]))
                (text("contact_name", ctx.t("Contact person", "Kontaktperson"), "text", None))
                (text("contact_email", ctx.t("Contact e-mail", "Kontaktpersonens e-mail"), "email", None))
                (text("email", ctx.t("E-mail in the certificate (optional)", "E-mail i certifikatet (valgfri)"), "email", None))
                (text("p_number", ctx.t("P number (optional)", "P-nummer (valgfri)"), "text", None))
                (text("se_number", ctx.t("SE number (optional)", "SE-nummer (valgfri)"), "text", None))
            }
            fieldset {
                legend { (ctx.t("Method", "Metode")) }
                (choice("identification", ctx.t("Identification", "Identifikation"), &[("one-time-code", ctx.t("Reference number and one-time code", "Referencenummer og engangskode")), ("user-login", ctx.t("User login", "Brugerlogin")), ("api", "API (IdM)")]))
                (choice("issuance", ctx.t("Issuance", "Udstedelse"), &[("est", "EST"), ("browser", ctx.t("In the browser", "I browseren")), ("hardware", ctx.t("Hardware token", "Hardware-token"))]))
                (text("est_label", ctx.t("EST label", "EST-label"), "text", Some(ctx.t("The path segment under /.well-known/est/.", "Stiens led under /.well-known/est/."))))
                (text("validity_days", ctx.t("Validity, days (optional)", "Gyldighed, dage (valgfri)"), "text", None))
                div.field.invalid[err("dns_names").is_some()] {
                    label for="dns_names" { (ctx.t("DNS names allowed (one per line; optional)", "Tilladte DNS-navne (ét pr. linje; valgfri)")) }
                    textarea id="dns_names" name="dns_names" rows="2" { (f.get("dns_names")) }
                    @if let Some(e) = err("dns_names") { p.error id="dns_names-error" { (e) } }
                }
            }
            fieldset {
                legend { (ctx.t("Rights, seal and publishing", "Rettigheder, segl og offentliggørelse")) }
                (check("rights", "est-enroll", ctx.t("Right: enrol over EST for others (IdM)", "Rettighed: udstede over EST for andre (IdM)"), rights.contains(&"est-enroll")))
                (check("rights", "admin-api", ctx.t("Right: the admin API", "Rettighed: administrations-API'et"), rights.contains(&"admin-api")))
                @if let Some(e) = err("rights") { p.error id="rights-error" { (e) } }
                (check("seal", "on", ctx.t("Seal (organisation certificates)", "Segl (organisationscertifikater)"), f.ticked("seal")))
                @if let Some(e) = err("seal") { p.error id="seal-error" { (e) } }
                (check("publish", "on", ctx.t("Publish in the certificate database", "Offentliggør i certifikatdatabasen"), f.ticked("publish")))
                (check("approval_required", "on", ctx.t("Orders need approval", "Bestillinger kræver godkendelse"), f.ticked("approval_required")))
                (check("order", "on", ctx.t("Order a certificate now", "Bestil et certifikat nu"), f.ticked("order")))
            }
            button type="submit" { (ctx.t("Review", "Gennemse")) }
        }
    }
}

/// `POST /portal/profiles/new`: `step=review` checks and asks to confirm;
/// `step=confirm` creates and shows the receipt.
pub async fn submit(ctx: &Ctx<'_>, req: Request<Incoming>) -> Answer {
    let s = ctx.may(Endpoint::CreateProfile)?;
    let f = posted(ctx, req).await?;
    let title = ctx.t("Create profile", "Opret profil");
    let refused = |e: ApiError| -> Answer {
        if e.status().is_server_error() {
            return Err(Page::from(e));
        }
        Ok(page(
            ctx,
            StatusCode::BAD_REQUEST,
            title,
            profile_form(ctx, &f, Some((field_of(&e), message_of(&e)))),
        ))
    };
    let input = match parse_new_profile(&to_json(&f)) {
        Ok(i) => i,
        Err(e) => return refused(e),
    };
    if f.get("step") != "confirm" {
        let profile = match check_new_profile(ctx.app, &s.actor, &input) {
            Ok(p) => p,
            Err(e) => return refused(e),
        };
        return ok(
            ctx,
            ctx.t("Confirm the profile", "Bekræft profilen"),
            confirm(ctx, &f, &profile),
        );
    }
    let (profile, order) = match create_profile(ctx.app, &s.actor, &input).await {
        Ok(done) => done,
        Err(e) => return refused(e),
    };
    ok(
        ctx,
        ctx.t("Receipt", "Kvittering"),
        html! {
            p.done role="status" { (ctx.t("The profile is created.", "Profilen er oprettet.")) }
            dl {
                dt { (ctx.t("Profile", "Profil")) } dd { a href={ "/portal/profiles/" (profile.id) } { (profile.name) } }
                dt { "UUID" } dd { code id="profile-id" { (profile.id) } }
                dt { (ctx.t("EST label", "EST-label")) } dd { code { (profile.est_label) } }
            }
            @if let Some(o) = order {
                h2 { (ctx.t("The order", "Bestillingen")) }
                (receipt_of_order(ctx, &o))
            }
        },
    )
}

fn confirm(ctx: &Ctx, f: &Form, p: &Profile) -> Markup {
    html! {
        p { (ctx.t("Check the profile, then confirm.", "Kontrollér profilen, og bekræft derefter.")) }
        dl {
            dt { (ctx.t("Name", "Navn")) } dd { (p.name) }
            dt { (ctx.t("Type", "Type")) } dd { (wire(&p.kind)) }
            dt { (ctx.t("Identification × issuance", "Identifikation × udstedelse")) } dd { (wire(&p.identification)) " × " (wire(&p.issuance)) }
            dt { (ctx.t("EST label", "EST-label")) } dd { code { (p.est_label) } }
            dt { (ctx.t("Rights", "Rettigheder")) } dd { (p.rights.iter().map(wire).collect::<Vec<_>>().join(", ")) }
            dt { (ctx.t("Seal", "Segl")) } dd { (yes(ctx, p.seal)) }
            dt { (ctx.t("Published", "Offentliggjort")) } dd { (yes(ctx, p.publish)) }
            dt { (ctx.t("Validity", "Gyldighed")) } dd { (p.validity_days) " " (ctx.t("days", "dage")) }
            dt { (ctx.t("Order a certificate now", "Bestil et certifikat nu")) } dd { (yes(ctx, f.ticked("order"))) }
        }
        form method="post" action="/portal/profiles/new" {
            @for (k, v) in f.pairs() {
                @if k != "step" && k != "csrf" { input type="hidden" name=(k) value=(v); }
            }
            (csrf_field(ctx))
            input type="hidden" name="step" value="confirm";
            div.actions {
                button type="submit" { (ctx.t("Confirm", "Bekræft")) }
                a.button href="/portal/profiles/new" { (ctx.t("Start again", "Start forfra")) }
            }
        }
        p.hint { (ctx.t("Created", "Oprettes")) " " (date(now_unix())) }
    }
}
