//! The browser harness (`estd_testkit::browser`) against a real page: the
//! invitation's activation page on the admin listener, in headless Chromium,
//! as a person uses it (read the TOTP key, type the password and a code,
//! submit), with axe-core's accessibility checks on the page. The page sends
//! `Content-Security-Policy: default-src 'none'`, so this also shows that the
//! harness's scripts (axe) run under a strict CSP.
//!
//! Skipped, with the reason, where chromedriver is missing (never under CI:
//! `Browser::start` panics there). Screenshots:
//! `<target dir>/portal-screenshots/activation-*.png`.

use estd::service::credentials::{totp_code, TotpSecret};
use estd_testkit::api::Api;
use estd_testkit::browser::{Browser, SKIP_REASON};
use estd_testkit::people::{invitation_token, PASSWORD};
use estd_testkit::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_person_activates_their_account_in_a_real_browser() {
    let Some(browser) = Browser::start().await else {
        eprintln!("browser_smoke skipped: {SKIP_REASON}");
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;
    let email = "browser@demo.example";
    let r = op
        .post(
            &format!("/organisations/{DEMO_CVR}/people"),
            json!({"name": "Browser Person", "email": email}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let token = invitation_token(&ts, email);
    let base = format!("https://127.0.0.1:{}", ts.server.admin_addr.port());

    browser
        .goto(&format!("{base}/activate?token={token}"))
        .await;
    assert_eq!(browser.title().await, "Activate your account");
    browser.screenshot("activation-form").await;

    // The harness's scripts run although the page allows no script at all.
    let csp = browser
        .execute("return document.querySelectorAll('script').length;", vec![])
        .await;
    assert_eq!(csp, json!(0), "the page has no script of its own");
    let violations = browser.axe().await;
    assert!(
        violations.is_empty(),
        "axe on the activation page: {violations:#?}"
    );

    let secret_text = browser.text("#totp-secret").await;
    let secret = TotpSecret::from_base32(secret_text.trim()).expect("the key on the page");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    browser.fill("input[name=password]", PASSWORD).await;
    browser
        .fill("input[name=code]", &totp_code(&secret, now))
        .await;
    browser.click("button[type=submit]").await;

    browser.wait_for_text("h1", "Activated").await;
    assert_eq!(browser.title().await, "Activated");
    assert!(
        browser.text("body").await.contains(email),
        "the page names the account"
    );
    assert_eq!(browser.current_url().await, format!("{base}/activate"));
    browser.screenshot("activation-done").await;
    let violations = browser.axe().await;
    assert!(
        violations.is_empty(),
        "axe on the activated page: {violations:#?}"
    );

    let person = ts
        .app()
        .store
        .person(&estd::model::person_key(Some(DEMO_CVR), email))
        .expect("store")
        .expect("person");
    assert!(person.is_active(), "{person:?}");

    browser.close().await;
    ts.shutdown().await;
}

/// The checks are not vacuous: on a page with a strict CSP (no script of
/// its own runs) axe still runs and finds an unlabelled field and an image
/// without a text alternative, both "critical".
#[tokio::test(flavor = "multi_thread")]
async fn axe_runs_under_a_strict_csp_and_finds_what_is_wrong() {
    let Some(browser) = Browser::start().await else {
        eprintln!("browser_smoke skipped: {SKIP_REASON}");
        return;
    };
    let html = "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
                <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'\">\
                <title>Bad page</title></head><body><main><h1>Bad page</h1>\
                <script>document.title = 'script ran';</script>\
                <form><input name=\"q\"></form><img src=\"data:,\"></main></body></html>";
    let url = format!(
        "data:text/html;charset=utf-8,{}",
        html.replace('%', "%25")
            .replace('#', "%23")
            .replace('"', "%22")
            .replace('<', "%3C")
            .replace('>', "%3E")
            .replace(' ', "%20")
    );
    browser.goto(&url).await;
    assert_eq!(browser.title().await, "Bad page", "the page's CSP holds");
    let violations = browser.axe().await;
    let ids: Vec<&str> = violations.iter().map(|v| v.id.as_str()).collect();
    assert!(ids.contains(&"label"), "{violations:#?}");
    assert!(ids.contains(&"image-alt"), "{violations:#?}");
    let label = violations.iter().find(|v| v.id == "label").expect("label");
    assert_eq!(label.impact, "critical");
    assert_eq!(label.targets, vec!["input".to_owned()], "{label:#?}");
    browser.close().await;
}
