//! The web portal in a real browser (headless Chromium through chromedriver,
//! `estd_testkit::browser`), as its users walk through it:
//! - an organisation administrator logs in with TOTP, creates a profile and
//!   orders (a refusal shown beside the field at fault, then the review,
//!   the confirmation and the receipt with the one-time code); curl
//!   collects it over EST; the order then shows `issued`; the administrator
//!   revokes it through the warning, and OCSP says revoked;
//! - a user administrator invites a user, who activates, logs in with TOTP,
//!   handles the task, accepts the terms and downloads a PKCS#12 that
//!   `openssl pkcs12` opens with the shown password; the public search finds
//!   only published certificates;
//! - every page a walkthrough visits is screenshotted under
//!   `<target>/portal-screenshots/` and scanned with axe-core: no serious or
//!   critical finding.
//!
//! Skipped, with the reason, where chromedriver is missing (never under CI).

use std::process::Command;

use estd_testkit::api::Api;
use estd_testkit::browser::{Browser, SKIP_REASON};
use estd_testkit::people::{invitation_token, invite_and_activate, Person, PASSWORD};
use estd_testkit::relying::{openssl_in, write_pem};
use estd_testkit::*;

const DEMO: Option<&str> = Some(DEMO_CVR);

fn base(ts: &TestServer) -> String {
    format!("https://127.0.0.1:{}", ts.server.admin_addr.port())
}

/// Screenshots the page as `name` and asserts axe finds nothing serious.
async fn look(browser: &Browser, name: &str) {
    browser.screenshot(name).await;
    let v = browser.axe().await;
    assert!(v.is_empty(), "axe on {name}: {v:#?}");
}

/// Logs `who` in through the login page.
async fn log_in(browser: &Browser, ts: &TestServer, who: &mut Person) {
    browser.goto(&format!("{}/portal/login", base(ts))).await;
    browser.fill("#cvr", who.cvr.as_deref().unwrap_or("")).await;
    browser.fill("#email", &who.email).await;
    browser.fill("#password", PASSWORD).await;
    let code = who.next_code().await;
    browser.fill("#code", &code).await;
    browser.click("main button[type=submit]").await;
    browser.wait_for_text("h1", "Overview").await;
}

async fn log_out(browser: &Browser) {
    browser.click("header form button[type=submit]").await;
    browser.wait_for_text("h1", "Log in").await;
}

/// The OCSP answer's status line for the certificate `der`.
fn ocsp_status(ts: &TestServer, dir: &std::path::Path, der: &[u8]) -> String {
    let ca = ts.app().ca.active().clone();
    write_pem(dir, "issuing.pem", &[ca.issuing_der()]);
    write_pem(dir, "root.pem", &[&ts.root_der()]);
    write_pem(dir, "leaf.pem", &[der]);
    let url = format!("http://{}/ocsp", ts.server.public_addr);
    let (ok, out) = openssl_in(
        dir,
        &[
            "ocsp",
            "-issuer",
            "issuing.pem",
            "-cert",
            "leaf.pem",
            "-url",
            &url,
            "-CAfile",
            "root.pem",
        ],
    );
    assert!(ok, "openssl ocsp: {out}");
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn an_administrator_creates_a_profile_curl_collects_it_and_it_is_revoked() {
    let Some(browser) = Browser::start().await else {
        eprintln!("portal skipped: {SKIP_REASON}");
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;
    let mut admin = invite_and_activate(
        &ts,
        &mut op,
        DEMO,
        "Olga Admin",
        "olga@demo.example",
        &["user-admin", "org-admin", "rights-admin"],
    )
    .await;

    // Not logged in: to the login page, which is in the browser's language.
    browser.goto(&format!("{}/portal/", base(&ts))).await;
    browser.wait_for_text("h1", "Log in").await;
    look(&browser, "01-login").await;
    log_in(&browser, &ts, &mut admin).await;
    look(&browser, "02-overview").await;

    // The language switch.
    browser.click("a[hreflang=da]").await;
    browser.wait_for_text("h1", "Overblik").await;
    look(&browser, "03-overview-da").await;
    browser.click("a[hreflang=en]").await;
    browser.wait_for_text("h1", "Overview").await;

    // Create a profile: a rule broken is shown beside the field at fault.
    browser
        .goto(&format!("{}/portal/profiles/new", base(&ts)))
        .await;
    look(&browser, "04-profile-form").await;
    browser.fill("#name", "Web server").await;
    browser.fill("#est_label", "websrv").await;
    browser.select("#identification", "api").await;
    browser.select("#issuance", "browser").await;
    browser.click("form.card button[type=submit]").await;
    let error = browser.text("#issuance-error").await;
    assert!(error.contains("not offered"), "{error}");
    assert_eq!(
        browser.attr("#issuance", "aria-invalid").await.as_deref(),
        Some("true")
    );
    look(&browser, "05-profile-form-refused").await;
    browser.select("#identification", "one-time-code").await;
    browser.select("#issuance", "est").await;
    browser.click("form.card button[type=submit]").await;
    browser.wait_for_text("h1", "Confirm the profile").await;
    look(&browser, "06-profile-confirm").await;
    browser.click("main form button[type=submit]").await;
    browser.wait_for_text("h1", "Receipt").await;
    look(&browser, "07-profile-receipt").await;
    let reference = browser.text("#reference").await.trim().to_owned();
    let code = browser.text("#code").await.trim().to_owned();
    assert_eq!(code.len(), 16, "{code}");
    // Shown once: the stored order has only the hash.
    let stored = format!("{:?}", ts.app().store.order(&reference).expect("store"));
    assert!(!stored.contains(&code), "the code is not stored");

    // curl collects it over EST with the reference number and the code.
    write_pem(dir.path(), "root.pem", &[&ts.root_der()]);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let csr = csr_with_key(&key, DEMO_ORG, DEMO_CVR, "Web server");
    // RFC 7030: the body is the DER CSR in base64.
    std::fs::write(dir.path().join("web.csr"), b64(&csr)).expect("csr");
    let out = Command::new("curl")
        .current_dir(dir.path())
        .args([
            "-s",
            "--fail-with-body",
            "--cacert",
            "root.pem",
            "-u",
            &format!("{reference}:{code}"),
            "-H",
            "Content-Type: application/pkcs10",
            "--data-binary",
            "@web.csr",
            &format!(
                "https://localhost:{}/.well-known/est/websrv/simpleenroll",
                ts.server.est_addr.port()
            ),
        ])
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let certs = pkcs7_certs(&out.stdout);
    let leaf = der_of(&certs[0]);

    // The order shows issued; its certificate is a click away.
    browser.goto(&format!("{}/portal/orders", base(&ts))).await;
    look(&browser, "08-orders").await;
    browser
        .click(&format!("a[href='/portal/orders/{reference}']"))
        .await;
    assert_eq!(browser.text("#order-state").await, "issued");
    look(&browser, "09-order-issued").await;
    browser.click("main a[href^='/portal/certificates/']").await;
    assert_eq!(browser.text("#cert-state").await, "issued");
    look(&browser, "10-certificate").await;

    // Revoke, through the warning, with a reason; OCSP then says revoked.
    assert!(ocsp_status(&ts, dir.path(), &leaf).contains("leaf.pem: good"));
    browser.click("a[href$='/revoke']").await;
    browser.wait_for_text("h1", "Revoke the certificate?").await;
    look(&browser, "11-revoke-warning").await;
    browser.select("#reason", "suspected-misuse").await;
    browser.click("main form button[type=submit]").await;
    assert_eq!(browser.text("#cert-state").await, "revoked");
    let ocsp = ocsp_status(&ts, dir.path(), &leaf);
    assert!(ocsp.contains("leaf.pem: revoked"), "{ocsp}");
    assert!(ocsp.contains("keyCompromise"), "{ocsp}");

    // The other pages: profiles (search), organisation, history.
    browser
        .goto(&format!("{}/portal/profiles?q=web", base(&ts)))
        .await;
    assert!(browser.text("main table").await.contains("Web server"));
    look(&browser, "12-profiles").await;
    browser
        .goto(&format!("{}/portal/profiles?q=no-such-profile", base(&ts)))
        .await;
    assert!(!browser.text("main table").await.contains("Web server"));
    browser
        .goto(&format!("{}/portal/organisation", base(&ts)))
        .await;
    look(&browser, "13-organisation").await;
    browser.fill("#p_numbers", "123").await;
    browser.click("main form button[type=submit]").await;
    assert!(browser.text("[role=alert]").await.contains("10 digits"));
    browser.fill("#p_numbers", "1234567890").await;
    browser.click("main form button[type=submit]").await;
    browser.wait_for_text("[role=status]", "Saved").await;
    let org = ts.app().store.org(DEMO_CVR).expect("store").expect("org");
    assert_eq!(org.p_numbers, vec!["1234567890".to_owned()]);
    browser.goto(&format!("{}/portal/history", base(&ts))).await;
    assert!(browser
        .text("main table")
        .await
        .contains("olga@demo.example"));
    look(&browser, "14-history").await;

    // A form without its CSRF token is refused.
    let mut anon = ts.admin_client(None).await;
    let r = anon
        .send(
            "POST",
            "/portal/profiles/new",
            &[("content-type", "application/x-www-form-urlencoded")],
            b"step=confirm&name=x".to_vec(),
        )
        .await;
    assert_eq!(r.status, 303, "no session: to the login page");
    log_out(&browser).await;
    browser
        .goto(&format!("{}/portal/profiles", base(&ts)))
        .await;
    browser.wait_for_text("h1", "Log in").await;

    browser.close().await;
    ts.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_is_invited_activates_and_downloads_a_pkcs12() {
    let Some(browser) = Browser::start().await else {
        eprintln!("portal skipped: {SKIP_REASON}");
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;
    let mut ulla = invite_and_activate(
        &ts,
        &mut op,
        DEMO,
        "Ulla Admin",
        "ulla@demo.example",
        &["user-admin"],
    )
    .await;
    // A profile for employees, collected after login in the browser, published.
    let r = op
        .post(
            "/profiles",
            serde_json::json!({
                "cvr": DEMO_CVR, "name": "Employees", "kind": "organisation",
                "contact": {"name": "Karen Hansen", "email": "karen@demo.example"},
                "identification": "user-login", "issuance": "browser",
                "est_label": "staff", "publish": true,
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let profile_id = r.body["profile"]["id"].as_str().expect("id").to_owned();

    // The user administrator invites a user.
    log_in(&browser, &ts, &mut ulla).await;
    browser.goto(&format!("{}/portal/people", base(&ts))).await;
    browser.fill("#name", "Bo Berg").await;
    browser.fill("#email", "bo@demo.example").await;
    browser.click("form.card button[type=submit]").await;
    browser
        .wait_for_text("[role=status]", "bo@demo.example")
        .await;
    look(&browser, "20-users").await;
    log_out(&browser).await;

    // The user activates with the e-mail's link and the TOTP key shown.
    let token = invitation_token(&ts, "bo@demo.example");
    browser
        .goto(&format!("{}/activate?token={token}", base(&ts)))
        .await;
    let secret = estd::service::credentials::TotpSecret::from_base32(
        browser.text("#totp-secret").await.trim(),
    )
    .expect("the key on the page");
    let bo_id = ts
        .app()
        .store
        .person(&estd::model::person_key(DEMO, "bo@demo.example"))
        .expect("store")
        .expect("bo")
        .id;
    let mut bo = Person {
        cvr: Some(DEMO_CVR.into()),
        email: "bo@demo.example".into(),
        id: bo_id,
        secret,
        last_step: 0,
    };
    browser.fill("input[name=password]", PASSWORD).await;
    let code = bo.next_code().await;
    browser.fill("input[name=code]", &code).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_text("h1", "Activated").await;

    // The administrator orders for the user, with user login (no code).
    log_in(&browser, &ts, &mut ulla).await;
    browser
        .goto(&format!("{}/portal/profiles/{profile_id}", base(&ts)))
        .await;
    look(&browser, "21-profile").await;
    browser.fill("#user_name", "Bo Berg").await;
    browser.fill("#user_email", "bo@demo.example").await;
    browser.click("form.card button[type=submit]").await;
    browser.wait_for_text("h1", "Receipt").await;
    assert!(!browser.exists("#code").await, "user login has no code");
    log_out(&browser).await;

    // The user logs in and handles the task: terms, then the PKCS#12.
    log_in(&browser, &ts, &mut bo).await;
    assert!(browser.text("main").await.contains("ready to collect"));
    look(&browser, "22-user-tasks").await;
    browser.click("ul.tasks a.button").await;
    browser
        .wait_for_text("h1", "Collect your certificate")
        .await;
    look(&browser, "23-terms").await;
    browser.click("#accept").await;
    browser.click("form.card button[type=submit]").await;
    browser.wait_for_text("h1", "Your certificate").await;
    browser.click("#show-password summary").await;
    let password = browser.text("#password").await.trim().to_owned();
    assert!(password.len() >= 16, "{password:?}");
    look(&browser, "24-pkcs12").await;
    let href = browser.attr("#download", "href").await.expect("href");
    let b64 = href
        .strip_prefix("data:application/x-pkcs12;base64,")
        .expect("a data link");
    use base64::Engine;
    let p12 = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64");
    std::fs::write(dir.path().join("bo.p12"), &p12).expect("write");
    let (ok, out) = openssl_in(
        dir.path(),
        &[
            "pkcs12",
            "-in",
            "bo.p12",
            "-passin",
            &format!("pass:{password}"),
            "-nodes",
            "-out",
            "bo.pem",
        ],
    );
    assert!(ok, "openssl pkcs12: {out}");
    let pem = std::fs::read_to_string(dir.path().join("bo.pem")).expect("pem");
    assert!(
        pem.contains("BEGIN PRIVATE KEY") && pem.contains("Bo Berg"),
        "{pem}"
    );

    // The task is done; the certificate is the user's, and theirs to block.
    browser.goto(&format!("{}/portal/", base(&ts))).await;
    assert!(browser.text("main").await.contains("You have no tasks"));
    browser.goto(&format!("{}/portal/me", base(&ts))).await;
    look(&browser, "25-my-certificates").await;
    browser.click("main table a").await;
    let serial_url = browser.current_url().await;
    let serial = serial_url.rsplit('/').next().expect("serial").to_owned();
    look(&browser, "26-my-certificate").await;

    // The public search, without login, finds the published certificate,
    // and not the demo IdM system's, which is not published.
    log_out(&browser).await;
    browser
        .goto(&format!("{}/portal/search?cvr={DEMO_CVR}", base(&ts)))
        .await;
    let found = browser.text("main table").await;
    assert!(found.contains(&serial), "{found}");
    let mut unpublished = 0;
    for c in ts.app().store.certs() {
        let c = c.expect("cert");
        if !c.published {
            unpublished += 1;
            assert!(
                !found.contains(&c.serial.to_string()),
                "unpublished: {found}"
            );
        }
    }
    assert!(
        unpublished > 0,
        "the demo IdM system's certificate is not published"
    );
    look(&browser, "27-public-search").await;

    // Back in: block it through the warning; OCSP says revoked.
    log_in(&browser, &ts, &mut bo).await;
    browser.goto(&serial_url).await;
    browser.click("a[href$='/block']").await;
    browser.wait_for_text("h1", "Block the certificate?").await;
    look(&browser, "28-block-warning").await;
    browser.click("main form button[type=submit]").await;
    assert_eq!(browser.text("#cert-state").await, "blocked");
    let leaf = pem_certs(&pem).remove(0);
    let ocsp = ocsp_status(&ts, dir.path(), &leaf);
    assert!(ocsp.contains("leaf.pem: revoked"), "{ocsp}");

    browser.close().await;
    ts.shutdown().await;
}

/// The DER of each certificate in `pem`, in order.
fn pem_certs(pem: &str) -> Vec<Vec<u8>> {
    use base64::Engine;
    pem.split("-----BEGIN CERTIFICATE-----")
        .skip(1)
        .filter_map(|block| block.split("-----END CERTIFICATE-----").next())
        .map(|b64| {
            let text: String = b64.chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .expect("base64")
        })
        .collect()
}

/// Without a browser: every page answers with the security headers; a page
/// refuses a role the API route beside it refuses; a form without the
/// session's CSRF token changes nothing; the language follows
/// `Accept-Language`; bad requests get their status.
#[tokio::test(flavor = "multi_thread")]
async fn pages_check_roles_csrf_and_send_the_security_headers() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;
    let mut rita = invite_and_activate(
        &ts,
        &mut op,
        DEMO,
        "Rita Reader",
        "rita@demo.example",
        &["rights-admin"],
    )
    .await;
    let mut olga = invite_and_activate(
        &ts,
        &mut op,
        DEMO,
        "Olga Admin",
        "olga@demo.example",
        &["user-admin", "org-admin"],
    )
    .await;
    let cookie_of = |api: &Api| {
        let (value, _) = api.session.clone().expect("session");
        format!("__Host-estd-session={value}")
    };
    let rita_cookie = cookie_of(&rita.login(&ts).await);
    let olga_cookie = cookie_of(&olga.login(&ts).await);
    let mut c = ts.admin_client(None).await;

    // Not logged in: to the login page. Logged in: the page, with its headers.
    let r = c.send("GET", "/portal/profiles", &[], vec![]).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/portal/login"));
    let r = c
        .send(
            "GET",
            "/portal/profiles",
            &[
                ("cookie", &rita_cookie),
                ("accept-language", "en-GB,en;q=0.9"),
            ],
            vec![],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let csp = r.header("content-security-policy").expect("CSP");
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(r.header("strict-transport-security").is_some());
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(r.text().contains("<html lang=\"en\">"));
    assert!(!r.text().contains("<script>"), "no inline script");
    let r = c
        .send(
            "GET",
            "/portal/profiles",
            &[("cookie", &rita_cookie), ("accept-language", "da,en;q=0.5")],
            vec![],
        )
        .await;
    assert!(r.text().contains("<html lang=\"da\">"));
    assert!(r.text().contains("Certifikatprofiler"));

    // A rights administrator reads, and may not create (as POST /profiles).
    let r = c
        .send(
            "GET",
            "/portal/profiles/new",
            &[("cookie", &rita_cookie)],
            vec![],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("org-admin"), "{}", r.text());

    // A form without the CSRF token, or with a wrong one, changes nothing.
    let form = [
        ("cookie", olga_cookie.as_str()),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    for body in ["allow_seal=on", "allow_seal=on&csrf=wrong"] {
        let r = c
            .send(
                "POST",
                "/portal/organisation",
                &form,
                body.as_bytes().to_vec(),
            )
            .await;
        assert_eq!(r.status, 403, "{body}: {}", r.text());
    }
    let org = ts.app().store.org(DEMO_CVR).expect("store").expect("org");
    assert!(!org.allow_seal, "unchanged");

    // With the token (from the page's form) it does.
    let page = c
        .send(
            "GET",
            "/portal/organisation",
            &[("cookie", &olga_cookie)],
            vec![],
        )
        .await
        .text();
    let start = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    let csrf: String = page[start..].chars().take_while(|c| *c != '"').collect();
    let r = c
        .send(
            "POST",
            "/portal/organisation",
            &form,
            format!("allow_user_certs=on&allow_seal=on&csrf={csrf}").into_bytes(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let org = ts.app().store.org(DEMO_CVR).expect("store").expect("org");
    assert!(org.allow_seal);

    // Bad requests.
    // Refused on its Content-Length, before a byte of it is read.
    let big = format!(
        "POST /portal/organisation HTTP/1.1\r\nHost: localhost\r\nCookie: {olga_cookie}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        70 * 1024
    );
    let raw = raw_exchange(ts.server.admin_addr, &ts.root_der(), None, big.as_bytes()).await;
    let head = String::from_utf8_lossy(&raw);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    let r = c
        .send(
            "GET",
            "/portal/no-such-page",
            &[("cookie", &olga_cookie)],
            vec![],
        )
        .await;
    assert_eq!(r.status, 404);
    let r = c.send("PUT", "/portal/profiles", &[], vec![]).await;
    assert_eq!(r.status, 405);
    let r = c
        .send(
            "GET",
            "/portal/certificates/not-a-serial",
            &[("cookie", &olga_cookie)],
            vec![],
        )
        .await;
    assert_eq!(r.status, 404);
    // The language switch goes back only to a page of the portal's own.
    let r = c
        .send(
            "GET",
            "/portal/lang?set=en&back=//evil.example/",
            &[],
            vec![],
        )
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/portal/"));
    // The public search needs no login and checks its input.
    let r = c.send("GET", "/portal/search?cvr=12", &[], vec![]).await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("aria-invalid=\"true\""));
    ts.shutdown().await;
}
