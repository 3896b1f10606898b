//! People (issue 16): users and administrator roles, login with password and
//! TOTP, sessions, collection after "User login" and self-service, over the
//! real admin API on loopback (real TLS, the real store, real CSRs), with
//! openssl opening the PKCS#12 and asking OCSP.
//!
//! - The seeds' flow end to end: `a_user_is_invited_logs_in_collects_a_pkcs12_and_blocks_it`.
//! - Hardware issuance, downloads, renewal, history and tasks:
//!   `a_user_collects_with_a_csr_and_serves_themselves`.
//! - Session rules (idle and absolute expiry, logout, CSRF, TOTP replay,
//!   lockout): `sessions_end_and_refuse_what_they_must`.
//! - The role table, role × route: `every_route_admits_exactly_its_roles`.
//! - Accounts' rules: `orders_need_an_active_user_and_roles_are_not_gained`.
//! - The invitation's link, a page: `the_invitation_link_opens_a_page_that_activates`.

use std::time::Duration;

use estd::admin::routes::ROUTES;
use estd::model::{AuditAction, Serial};
use estd_testkit::api::{assert_problem, Api};
use estd_testkit::people::{
    invitation_token, invite_and_activate, session_cookie, Person, PASSWORD,
};
use estd_testkit::relying::{openssl_in, write_pem};
use estd_testkit::*;
use serde_json::{json, Value};

const DEMO: Option<&str> = Some(DEMO_CVR);

/// A profile of the demo organisation under which user certificates are
/// ordered for its people and collected after login, issued in the browser
/// or on hardware.
async fn user_login_profile(op: &mut Api, label: &str, issuance: &str) -> String {
    let r = op
        .post(
            "/profiles",
            json!({
                "cvr": DEMO_CVR,
                "name": format!("Employees {label}"),
                "kind": "organisation",
                "contact": {"name": "Karen Hansen", "email": "karen@demo.example"},
                "rights": [],
                "identification": "user-login",
                "issuance": issuance,
                "est_label": label,
            }),
        )
        .await;
    assert_eq!(r.status, 201, "profile: {}", r.text);
    r.body["profile"]["id"].as_str().expect("id").to_owned()
}

/// A user administrator of the demo organisation, logged in.
async fn user_admin(ts: &TestServer) -> (Person, Api) {
    let mut op = Api::operator(ts).await;
    let mut ulla = invite_and_activate(
        ts,
        &mut op,
        DEMO,
        "Ulla Admin",
        "ulla@demo.example",
        &["user-admin"],
    )
    .await;
    let api = ulla.login(ts).await;
    (ulla, api)
}

fn reference(r: &estd_testkit::api::Reply) -> String {
    assert_eq!(r.status, 201, "order: {}", r.text);
    r.body["reference"].as_str().expect("reference").to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_is_invited_logs_in_collects_a_pkcs12_and_blocks_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;
    let profile_id = user_login_profile(&mut op, "staff", "browser").await;

    // A user administrator invites a user, who activates and logs in with TOTP.
    let (_ulla, mut ulla_api) = user_admin(&ts).await;
    let mut bo =
        invite_and_activate(&ts, &mut ulla_api, DEMO, "Bo Berg", "bo@demo.example", &[]).await;
    let mut bo_api = bo.login(&ts).await;
    let session = bo_api.get("/session").await;
    assert_eq!(session.status, 200, "{}", session.text);
    assert_eq!(session.body["person"]["email"], "bo@demo.example");

    // The administrator orders with user login; the notice has no code.
    let order = ulla_api
        .post(
            "/orders",
            json!({"profile_id": profile_id, "user": {"name": "Bo Berg", "email": "bo@demo.example"}}),
        )
        .await;
    let reference = reference(&order);
    assert!(order.body.get("code").is_none(), "{}", order.text);

    // The user sees it, and a task to collect it.
    let mine = bo_api.get("/me/orders").await;
    assert_eq!(
        mine.body["items"][0]["reference"],
        reference.as_str(),
        "{}",
        mine.text
    );
    let tasks = bo_api.get("/me/tasks").await;
    assert_eq!(
        tasks.body["items"][0]["kind"], "collect-certificate",
        "{}",
        tasks.text
    );

    // Terms must be accepted, in their current version.
    let terms = Api::anonymous(&ts).await.get("/terms").await;
    let version = terms.body["version"].as_str().expect("version").to_owned();
    let path = format!("/me/orders/{reference}/pkcs12");
    let wrong = bo_api.post(&path, json!({"accept_terms": "0"})).await;
    assert_problem(&wrong, 400, "accept the terms");
    let issued = bo_api.post(&path, json!({"accept_terms": version})).await;
    assert_eq!(issued.status, 201, "issue: {}", issued.text);
    let password = issued.body["password"]
        .as_str()
        .expect("password")
        .to_owned();
    let serial = issued.body["serial"].as_str().expect("serial").to_owned();
    let p12 = base64_decode(issued.body["pkcs12"].as_str().expect("pkcs12"));
    assert_eq!(issued.resp.header("cache-control"), Some("no-store"));

    // openssl opens it with the shown password, and only with it.
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
    assert!(pem.contains("BEGIN PRIVATE KEY"), "{pem}");
    assert!(
        pem.matches("BEGIN CERTIFICATE").count() >= 2,
        "leaf and chain: {pem}"
    );
    let (ok, out) = openssl_in(
        dir.path(),
        &[
            "pkcs12",
            "-in",
            "bo.p12",
            "-passin",
            "pass:not-the-password",
            "-nodes",
            "-noout",
        ],
    );
    assert!(!ok, "a wrong password must fail: {out}");
    let (ok, out) = openssl_in(
        dir.path(),
        &["x509", "-in", "bo.pem", "-noout", "-serial", "-subject"],
    );
    assert!(ok, "{out}");
    assert!(
        out.to_uppercase().contains(&serial.to_uppercase()),
        "{out} vs {serial}"
    );
    assert!(out.contains("Bo Berg"), "{out}");

    // The order is spent; the key was not kept; the terms are in the audit log.
    let again = bo_api.post(&path, json!({"accept_terms": version})).await;
    assert_problem(&again, 409, "the order is issued");
    let audit: Vec<_> = ts
        .app()
        .store
        .audit_events()
        .collect::<Result<Vec<_>, _>>()
        .expect("audit");
    assert!(audit.iter().any(|e| e.action == AuditAction::AcceptTerms
        && e.actor == "person:12345674/bo@demo.example"
        && e.detail.contains(&version)));

    // The user blocks it, with explicit confirmation, and OCSP says revoked.
    let block = format!("/me/certificates/{serial}/block");
    let unconfirmed = bo_api.post(&block, json!({})).await;
    assert_problem(&unconfirmed, 400, "final");
    let blocked = bo_api.post(&block, json!({"confirm": true})).await;
    assert_eq!(blocked.status, 200, "{}", blocked.text);
    assert_eq!(blocked.body["status"], "blocked");
    let ca = ts.app().ca.active().clone();
    write_pem(dir.path(), "issuing.pem", &[ca.issuing_der()]);
    write_pem(dir.path(), "root.pem", &[&ts.root_der()]);
    let url = format!("http://{}/ocsp", ts.server.public_addr);
    let (ok, out) = openssl_in(
        dir.path(),
        &[
            "ocsp",
            "-issuer",
            "issuing.pem",
            "-cert",
            "bo.pem",
            "-url",
            &url,
            "-CAfile",
            "root.pem",
        ],
    );
    assert!(ok, "openssl ocsp: {out}");
    assert!(out.contains("bo.pem: revoked"), "{out}");
    ts.shutdown().await;
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_collects_with_a_csr_and_serves_themselves() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;
    let profile_id = user_login_profile(&mut op, "tokens", "hardware").await;
    let (_ulla, mut ulla_api) = user_admin(&ts).await;
    let mut anna = invite_and_activate(
        &ts,
        &mut ulla_api,
        DEMO,
        "Anna Holm",
        "anna@demo.example",
        &[],
    )
    .await;
    let mut other = invite_and_activate(
        &ts,
        &mut ulla_api,
        DEMO,
        "Carl Dahl",
        "carl@demo.example",
        &[],
    )
    .await;
    let mut anna_api = anna.login(&ts).await;
    let mut carl_api = other.login(&ts).await;
    let order = |name: &str, email: &str| json!({"profile_id": profile_id, "user": {"name": name, "email": email}});
    let reference = reference(
        &ulla_api
            .post("/orders", order("Anna Holm", "anna@demo.example"))
            .await,
    );

    // Not another user's order; not as a PKCS#12; a CSR from the token.
    let csr_path = format!("/me/orders/{reference}/csr");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let csr = csr_with_key(&key, DEMO_ORG, DEMO_CVR, "Anna Holm");
    let pem = pem_csr(&csr);
    let r = carl_api.post(&csr_path, json!({"csr": pem})).await;
    assert_problem(&r, 404, "order not found");
    let r = anna_api
        .post(
            &format!("/me/orders/{reference}/pkcs12"),
            json!({"accept_terms": "1"}),
        )
        .await;
    assert_problem(&r, 409, "hardware token");
    let r = anna_api.post(&csr_path, json!({"csr": "not a csr"})).await;
    assert_problem(&r, 400, "PKCS#10");
    let wrong_cn = csr_with_key(&key, DEMO_ORG, DEMO_CVR, "Someone Else");
    let r = anna_api
        .post(&csr_path, json!({"csr": pem_csr(&wrong_cn)}))
        .await;
    assert_eq!(r.status, 403, "the CN must be the user's: {}", r.text);
    let r = anna_api.post(&csr_path, json!({"csr": pem})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let serial = r.body["serial"].as_str().expect("serial").to_owned();
    assert_eq!(r.body["email"], "anna@demo.example");

    // Listed and downloaded by its user only, as JSON, PEM or DER.
    let list = anna_api.get("/me/certificates").await;
    assert_eq!(list.body["total"], 1, "{}", list.text);
    assert_eq!(list.body["items"][0]["serial"], serial.as_str());
    assert_eq!(carl_api.get("/me/certificates").await.body["total"], 0);
    let one = format!("/me/certificates/{serial}");
    assert_eq!(carl_api.get(&one).await.status, 404);
    let pem_dl = anna_api.get(&format!("{one}?format=pem")).await;
    assert_eq!(pem_dl.status, 200);
    assert_eq!(
        pem_dl.resp.header("content-type"),
        Some("application/x-pem-file")
    );
    assert!(pem_dl.text.starts_with("-----BEGIN CERTIFICATE-----"));
    let der_dl = anna_api.get(&format!("{one}?format=der")).await;
    assert_eq!(
        der_dl.resp.header("content-type"),
        Some("application/pkix-cert")
    );
    let parsed = Serial::from_hex(&serial).expect("serial");
    let stored = ts.app().store.cert(&parsed).expect("db").expect("cert");
    assert_eq!(der_dl.resp.body.as_ref(), stored.der.as_slice());
    assert_problem(
        &anna_api.get(&format!("{one}?format=xml")).await,
        400,
        "json, pem or der",
    );

    // Renewal before expiry: a new order the user collects again.
    let renewal = anna_api.post(&format!("{one}/renew"), json!({})).await;
    assert_eq!(renewal.status, 201, "{}", renewal.text);
    let renewal_ref = renewal.body["reference"]
        .as_str()
        .expect("reference")
        .to_owned();
    let mine = anna_api.get("/me/orders").await;
    assert_eq!(
        mine.body["items"][0]["reference"],
        renewal_ref.as_str(),
        "{}",
        mine.text
    );
    let second = anna_api.post(&format!("{one}/renew"), json!({})).await;
    assert_eq!(second.status, 409, "one renewal at a time: {}", second.text);

    // Her history: her login, the collection, the renewal order.
    let history = anna_api.get("/me/history").await;
    let actions: Vec<&str> = history.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for wanted in ["login", "collect", "order"] {
        assert!(actions.contains(&wanted), "{wanted} in {actions:?}");
    }
    let carl_history = carl_api.get("/me/history").await;
    assert!(
        !carl_history.text.contains(&serial),
        "another user's history is not shown: {}",
        carl_history.text
    );
    // A machine credential has no account.
    assert_problem(&op.get("/me/certificates").await, 403, "logged-in person");
    ts.shutdown().await;
}

fn pem_csr(der: &[u8]) -> String {
    der::pem::encode_string("CERTIFICATE REQUEST", der::pem::LineEnding::CRLF, der).expect("pem")
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_end_and_refuse_what_they_must() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start_with(
        dir.path(),
        "[people]\nsession_idle_secs = 3\nsession_absolute_secs = 6\nmax_failed_logins = 3\nlockout_secs = 3600\n",
    )
    .await;
    let mut op = Api::operator(&ts).await;
    let mut eva = invite_and_activate(
        &ts,
        &mut op,
        DEMO,
        "Eva Lund",
        "eva@demo.example",
        &["user-admin"],
    )
    .await;

    // The cookie is HttpOnly, Secure and SameSite=Strict.
    let mut anon = Api::anonymous(&ts).await;
    let body = eva.login_body(PASSWORD).await;
    let r = anon.post("/login", body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let set = r.resp.header("set-cookie").expect("cookie").to_owned();
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/", "__Host-"] {
        assert!(set.contains(attribute), "{attribute} in {set}");
    }
    let csrf = r.body["csrf_token"].as_str().expect("csrf").to_owned();
    let cookie = session_cookie(&r);

    // CSRF: a state change needs the session's token; a read does not.
    let invite = json!({"name": "Finn", "email": "finn@demo.example"});
    let path = format!("/organisations/{DEMO_CVR}/people");
    let mut no_csrf = Api::anonymous(&ts).await;
    no_csrf.session = Some((cookie.clone(), None));
    assert_eq!(no_csrf.get(&path).await.status, 200);
    assert_problem(&no_csrf.post(&path, invite.clone()).await, 403, "CSRF");
    no_csrf.session = Some((cookie.clone(), Some(csrf_of_other())));
    assert_problem(&no_csrf.post(&path, invite.clone()).await, 403, "CSRF");
    no_csrf.session = Some((cookie.clone(), Some(csrf.clone())));
    assert_eq!(no_csrf.post(&path, invite).await.status, 201);

    // Idle: a session unused for longer than session_idle_secs has ended.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    // A new connection: the server may close an idle one meanwhile.
    let mut later = Api::anonymous(&ts).await;
    later.session = no_csrf.session.clone();
    assert_problem(&later.get(&path).await, 401, "session has ended");

    // Absolute: a session used every second (never idle) ends
    // session_absolute_secs after login (times are whole seconds, so the
    // checks keep a second clear of each edge).
    let mut busy = eva.login(&ts).await;
    let logged_in = std::time::Instant::now();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let r = busy.get("/session").await;
        assert_eq!(
            r.status,
            200,
            "{:?} after login: {}",
            logged_in.elapsed(),
            r.text
        );
    }
    while logged_in.elapsed() < Duration::from_secs(7) {
        tokio::time::sleep(Duration::from_millis(900)).await;
        busy.get("/session").await;
    }
    assert_problem(&busy.get("/session").await, 401, "session has ended");

    // Logout ends it at once.
    let mut short = eva.login(&ts).await;
    assert_eq!(short.post("/logout", json!({})).await.status, 204);
    assert_problem(&short.get("/session").await, 401, "session has ended");

    // A code is good once: a replay of the last login's code is refused.
    let replay = json!({"cvr": DEMO_CVR, "email": "eva@demo.example", "password": PASSWORD,
        "code": estd::service::credentials::totp_code(&eva.secret, eva.last_step * 30)});
    assert_problem(
        &anon.post("/login", replay).await,
        401,
        "wrong address, password or code",
    );

    // Lockout: after max_failed_logins (3) wrong ones in a row, the replay
    // above being the first, even the right one is refused.
    for _ in 0..2 {
        let wrong = eva.login_body("not the password at all").await;
        assert_problem(&anon.post("/login", wrong).await, 401, "wrong address");
    }
    // Answered as a wrong one, so a lockout tells no one the account
    // exists; the audit log and the person's view say why.
    let right = eva.login_body(PASSWORD).await;
    assert_problem(
        &anon.post("/login", right).await,
        401,
        "wrong address, password or code",
    );
    let view = op.get(&format!("/people/{}", eva.id)).await;
    assert!(view.body["locked_until"].is_string(), "{}", view.text);
    let locked = ts
        .app()
        .store
        .audit_events()
        .collect::<Result<Vec<_>, _>>()
        .expect("audit");
    assert!(locked
        .iter()
        .any(|e| e.action == AuditAction::Login && e.detail == "account locked"));
    // An unknown address answers as a wrong password does.
    let unknown = json!({"cvr": DEMO_CVR, "email": "nobody@demo.example", "password": PASSWORD, "code": "123456"});
    assert_problem(
        &anon.post("/login", unknown).await,
        401,
        "wrong address, password or code",
    );
    ts.shutdown().await;
}

fn csrf_of_other() -> String {
    estd::service::login::csrf_token("another session's cookie")
}

#[tokio::test(flavor = "multi_thread")]
async fn orders_need_an_active_user_and_roles_are_not_gained() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;
    let profile_id = user_login_profile(&mut op, "staff", "browser").await;
    let (ulla, mut ulla_api) = user_admin(&ts).await;
    let order =
        |email: &str| json!({"profile_id": profile_id, "user": {"name": "X Y", "email": email}});

    // No account, or an account not yet active: no order.
    assert_problem(
        &ulla_api.post("/orders", order("ghost@demo.example")).await,
        409,
        "no account",
    );
    let r = ulla_api
        .post(
            &format!("/organisations/{DEMO_CVR}/people"),
            json!({"name": "Ida", "email": "ida@demo.example"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let ida_id = r.body["id"].as_str().expect("id").to_owned();
    assert_eq!(r.body["state"], "invited");
    assert_problem(
        &ulla_api.post("/orders", order("ida@demo.example")).await,
        409,
        "invited",
    );
    // The same address twice is one person.
    let dup = ulla_api
        .post(
            &format!("/organisations/{DEMO_CVR}/people"),
            json!({"name": "Ida 2", "email": "IDA@demo.example"}),
        )
        .await;
    assert_problem(&dup, 409, "already a person");

    // The activation link works once, and not with a code from another secret.
    let token = invitation_token(&ts, "ida@demo.example");
    // The link's token is a credential: no one reads it from the outbox.
    let shown = ulla_api.get("/notifications").await;
    assert_eq!(shown.status, 200, "{}", shown.text);
    assert!(shown.text.contains("activate?token="), "{}", shown.text);
    assert!(!shown.text.contains(&token), "{}", shown.text);
    let mut anon = Api::anonymous(&ts).await;
    let bad = anon
        .post(
            "/activation",
            json!({"token": token, "password": PASSWORD, "code": "000000"}),
        )
        .await;
    assert_problem(&bad, 400, "code");
    let short = anon
        .post(
            "/activation",
            json!({"token": token, "password": "short", "code": "000000"}),
        )
        .await;
    assert_eq!(short.status, 400, "{}", short.text);
    let mut ida = estd_testkit::people::activate(&ts, DEMO, "ida@demo.example", &ida_id).await;
    assert_problem(
        &anon.get(&format!("/activation?token={token}")).await,
        401,
        "not valid",
    );
    assert_eq!(
        ulla_api
            .post("/orders", order("ida@demo.example"))
            .await
            .status,
        201
    );

    // No one grants a role they do not hold.
    let r = ulla_api
        .post(
            &format!("/organisations/{DEMO_CVR}/people"),
            json!({"name": "Jon", "email": "jon@demo.example", "roles": ["org-admin"]}),
        )
        .await;
    assert_problem(&r, 403, "do not hold");
    let r = ulla_api
        .post(
            "/operators",
            json!({"name": "Jon", "email": "jon@demo.example"}),
        )
        .await;
    assert_problem(&r, 403, "needs one of the roles");
    // Nor, through a certificate with the admin-api right (which acts with
    // every role of the organisation), gains the roles she does not hold.
    let idm_profile = profile(&ts, estd::seed::DEMO_IDM_LABEL).id;
    let r = ulla_api
        .post(
            "/orders",
            json!({"profile_id": idm_profile, "user": {"name": "Ulla Admin", "email": "ulla@demo.example"}}),
        )
        .await;
    assert_problem(&r, 403, "admin-api");
    // Nor deactivates a person who holds a role she does not.
    let mut olaf = invite_and_activate(
        &ts,
        &mut op,
        DEMO,
        "Olaf Org",
        "olaf@demo.example",
        &["org-admin"],
    )
    .await;
    let r = ulla_api
        .post(&format!("/people/{}/deactivate", olaf.id), json!({}))
        .await;
    assert_problem(&r, 403, "role you do not hold");
    let _ = olaf.next_code().await;
    // Nor sees another organisation's people.
    ts.add_org("11223346", "Other ApS", "other", vec![]);
    assert_eq!(
        ulla_api.get("/organisations/11223346/people").await.status,
        404
    );

    // Deactivation is final, ends the person's sessions, and stops orders.
    let mut ida_api = ida.login(&ts).await;
    assert_eq!(ida_api.get("/session").await.status, 200);
    let r = ulla_api
        .post(&format!("/people/{ida_id}/deactivate"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["state"], "deactivated");
    assert_problem(&ida_api.get("/session").await, 401, "session has ended");
    assert_problem(
        &ulla_api.post("/orders", order("ida@demo.example")).await,
        409,
        "deactivated",
    );
    let again = ulla_api
        .post(&format!("/people/{ida_id}/deactivate"), json!({}))
        .await;
    assert_eq!(again.status, 409, "{}", again.text);
    let body = ida.login_body(PASSWORD).await;
    assert_problem(&anon.post("/login", body).await, 401, "wrong address");
    // Nor can a user administrator deactivate themselves.
    let me = ulla_api
        .post(&format!("/people/{}/deactivate", ulla.id), json!({}))
        .await;
    assert_problem(&me, 409, "yourself");

    // An organisation administrator changes the organisation's settings;
    // a user administrator cannot.
    let mut olga = invite_and_activate(
        &ts,
        &mut op,
        DEMO,
        "Olga Org",
        "olga@demo.example",
        &["org-admin"],
    )
    .await;
    let mut olga_api = olga.login(&ts).await;
    let change = json!({"allow_seal": true, "p_numbers": ["1234567890"]});
    let org = format!("/organisations/{DEMO_CVR}");
    assert_problem(
        &ulla_api.patch(&org, change.clone()).await,
        403,
        "org-admin",
    );
    let r = olga_api.patch(&org, change).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["allow_seal"], true);
    let rename = olga_api.patch(&org, json!({"name": "Renamed ApS"})).await;
    assert_problem(&rename, 403, "name");
    let mut idm = Api::with_cert(&ts, &ts.demo_identity()).await;
    assert_problem(
        &idm.patch(&org, json!({"allow_seal": false})).await,
        403,
        "machine credential",
    );
    ts.shutdown().await;
}

/// Who calls in the role table.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Who {
    UserAdmin,
    OrgAdmin,
    RightsAdmin,
    User,
    Operator,
}

const EVERY: &[Who] = &[
    Who::UserAdmin,
    Who::OrgAdmin,
    Who::RightsAdmin,
    Who::User,
    Who::Operator,
];
const ADMINS: &[Who] = &[
    Who::UserAdmin,
    Who::OrgAdmin,
    Who::RightsAdmin,
    Who::Operator,
];
const UA: &[Who] = &[Who::UserAdmin, Who::Operator];
const OA: &[Who] = &[Who::OrgAdmin, Who::Operator];
const OP: &[Who] = &[Who::Operator];

/// The role table: each route with the people who may call it (a person's
/// own routes are everyone's, and no machine credential's). Written out
/// here, not read from the server's table, so that a change to either shows.
fn role_table() -> Vec<(&'static str, &'static str, &'static [Who])> {
    vec![
        ("GET", "/organisations", ADMINS),
        ("POST", "/organisations", OP),
        ("GET", "/organisations/{cvr}", ADMINS),
        ("PATCH", "/organisations/{cvr}", OA),
        ("POST", "/organisations/{cvr}/tokens", OP),
        ("GET", "/organisations/{cvr}/tokens", ADMINS),
        ("DELETE", "/organisations/{cvr}/tokens/{id}", OA),
        ("GET", "/organisations/{cvr}/email-validations", ADMINS),
        ("GET", "/organisations/{cvr}/people", ADMINS),
        ("POST", "/organisations/{cvr}/people", UA),
        ("GET", "/operators", OP),
        ("POST", "/operators", OP),
        ("GET", "/people/{id}", ADMINS),
        ("POST", "/people/{id}/deactivate", UA),
        ("POST", "/people/{id}/invitation", UA),
        ("GET", "/tokens", OP),
        ("POST", "/tokens", OP),
        ("DELETE", "/tokens/{id}", OP),
        ("GET", "/profiles", ADMINS),
        ("POST", "/profiles", OA),
        ("GET", "/profiles/{id}", ADMINS),
        ("PATCH", "/profiles/{id}", OA),
        ("GET", "/profiles/{id}/certificates.csv", ADMINS),
        ("GET", "/export.csv", ADMINS),
        ("GET", "/profiles.csv", ADMINS),
        ("GET", "/orders", ADMINS),
        ("POST", "/orders", UA),
        ("GET", "/orders/{reference}", ADMINS),
        ("DELETE", "/orders/{reference}", UA),
        ("POST", "/orders/{reference}/approve", UA),
        ("POST", "/orders/{reference}/reject", UA),
        ("POST", "/orders/{reference}/code", UA),
        ("GET", "/certificates/{serial}", ADMINS),
        ("POST", "/certificates/{serial}/renew", UA),
        ("POST", "/certificates/{serial}/revoke", UA),
        ("POST", "/certificates/{serial}/block", UA),
        ("GET", "/audit", ADMINS),
        ("GET", "/notifications", ADMINS),
        ("GET", "/crl", ADMINS),
        ("POST", "/crl", OP),
        ("POST", "/backup", OP),
        ("GET", "/session", EVERY),
        ("GET", "/me/orders", EVERY),
        ("POST", "/me/orders/{reference}/pkcs12", EVERY),
        ("POST", "/me/orders/{reference}/csr", EVERY),
        ("GET", "/me/certificates", EVERY),
        ("GET", "/me/certificates/{serial}", EVERY),
        ("POST", "/me/certificates/{serial}/block", EVERY),
        ("POST", "/me/certificates/{serial}/renew", EVERY),
        ("GET", "/me/history", EVERY),
        ("GET", "/me/tasks", EVERY),
        // Ends the caller's session: called last, by each, below.
        ("POST", "/logout", EVERY),
    ]
}

/// Routes anyone may call without credentials.
const PUBLIC: &[(&str, &str)] = &[
    ("GET", "/openapi.json"),
    ("GET", "/public/certificates"),
    ("GET", "/terms"),
    ("GET", "/activation"),
    ("POST", "/activation"),
    ("POST", "/login"),
];

/// A template with placeholders that name nothing that exists, so that an
/// admitted call is refused for its content (400, 404), never done.
fn concrete(template: &str) -> String {
    template
        .replace("{cvr}", DEMO_CVR)
        .replace("{id}", "00000000-0000-4000-8000-000000000000")
        .replace("{reference}", "000000000000")
        .replace("{serial}", "00000000000000000000000000000001")
}

fn is_role_refusal(status: u16, body: &Value) -> bool {
    let detail = body["detail"].as_str().unwrap_or_default();
    status == 403
        && (detail.contains("needs one of the roles") || detail.contains("logged-in person"))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_admits_exactly_its_roles() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let table = role_table();
    // The table covers the server's every route.
    for r in ROUTES {
        let listed = table
            .iter()
            .any(|(m, t, _)| *m == r.method && *t == r.template)
            || PUBLIC.contains(&(r.method, r.template));
        assert!(
            listed,
            "{} {} is missing from the role table",
            r.method, r.template
        );
    }
    assert_eq!(table.len() + PUBLIC.len(), ROUTES.len());

    let mut op = Api::operator(&ts).await;
    let mut people = Vec::new();
    for (who, email, roles) in [
        (Who::UserAdmin, "ua@demo.example", vec!["user-admin"]),
        (Who::OrgAdmin, "oa@demo.example", vec!["org-admin"]),
        (Who::RightsAdmin, "ra@demo.example", vec!["rights-admin"]),
        (Who::User, "user@demo.example", vec![]),
    ] {
        let p = invite_and_activate(&ts, &mut op, DEMO, "Table Person", email, &roles).await;
        people.push((who, p));
    }
    people.push((
        Who::Operator,
        invite_and_activate(
            &ts,
            &mut op,
            None,
            "Olaf Operator",
            "olaf@ops.example",
            &["operator"],
        )
        .await,
    ));
    for (who, person) in &mut people {
        let mut api = person.login(&ts).await;
        for (method, template, allowed) in &table {
            let r = api
                .call(method, &concrete(template), body_for(method))
                .await;
            assert_ne!(r.status, 401, "{who:?} {method} {template}: {}", r.text);
            if allowed.contains(who) {
                assert!(
                    !is_role_refusal(r.status, &r.body),
                    "{who:?} may call {method} {template}: {} {}",
                    r.status,
                    r.text
                );
            } else {
                assert!(
                    is_role_refusal(r.status, &r.body),
                    "{who:?} may not call {method} {template}: {} {}",
                    r.status,
                    r.text
                );
            }
        }
    }
    // Machine credentials: an organisation's token holds its three roles,
    // an operator's the operator's; neither has an account of its own.
    let org_token = {
        let r = op
            .post(
                &format!("/organisations/{DEMO_CVR}/tokens"),
                json!({"name": "idm"}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.body["token"].as_str().expect("token").to_owned()
    };
    for (mut api, name, as_who) in [
        (
            Api::token(&ts, &org_token).await,
            "organisation token",
            ADMINS,
        ),
        (Api::operator(&ts).await, "operator token", OP),
    ] {
        for (method, template, allowed) in &table {
            let r = api
                .call(method, &concrete(template), body_for(method))
                .await;
            let admitted = if allowed == &EVERY {
                false
            } else if name == "organisation token" {
                allowed
                    .iter()
                    .any(|w| *w != Who::Operator && as_who.contains(w))
            } else {
                allowed.contains(&Who::Operator)
            };
            assert_eq!(
                !is_role_refusal(r.status, &r.body),
                admitted,
                "{name} {method} {template}: {} {}",
                r.status,
                r.text
            );
        }
    }
    // Anyone calls the public routes.
    let mut anon = Api::anonymous(&ts).await;
    for (method, template) in PUBLIC {
        let r = anon
            .call(method, &concrete(template), body_for(method))
            .await;
        assert!(
            r.status != 401 && r.status != 403,
            "{method} {template}: {}",
            r.text
        );
    }
    // No credentials: 401 on every other route.
    for (method, template, _) in &table {
        let r = anon
            .call(method, &concrete(template), body_for(method))
            .await;
        assert_eq!(r.status, 401, "{method} {template}: {}", r.text);
    }
    ts.shutdown().await;
}

fn body_for(method: &str) -> Option<Value> {
    (method != "GET" && method != "DELETE").then(|| json!({}))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_invitation_link_opens_a_page_that_activates() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;
    let r = op
        .post(
            &format!("/organisations/{DEMO_CVR}/people"),
            json!({"name": "Page <Person>", "email": "page@demo.example"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    // The e-mail's link points at the admin listener's page.
    let notice = ts
        .app()
        .store
        .notifications()
        .collect::<Result<Vec<_>, _>>()
        .expect("outbox")
        .into_iter()
        .rfind(|n| n.to == "page@demo.example")
        .expect("invitation");
    // (The test's listener is bound to port 0, so the link names the host only.)
    assert!(
        notice.body.contains("https://127.0.0.1:") && notice.body.contains("/activate?token="),
        "{}",
        notice.body
    );
    let token = invitation_token(&ts, "page@demo.example");

    let mut browser = ts.admin_client(None).await;
    let shown = browser.get(&format!("/activate?token={token}")).await;
    assert_eq!(shown.status, 200, "{}", shown.text());
    assert_eq!(
        shown.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(shown.header("cache-control"), Some("no-store"));
    let html = shown.text();
    assert!(
        html.contains("Page &lt;Person&gt;"),
        "names are escaped: {html}"
    );
    let start = html.find("<code id=\"totp-secret\">").expect("secret") + 23;
    let secret_text = &html[start..start + html[start..].find('<').expect("end")];
    let secret = estd::service::credentials::TotpSecret::from_base32(secret_text).expect("base32");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let code = estd::service::credentials::totp_code(&secret, now);
    let form = |password: &str, code: &str| {
        format!(
            "token={token}&password={}&code={code}",
            password.replace(' ', "+")
        )
        .into_bytes()
    };
    let headers = [("content-type", "application/x-www-form-urlencoded")];
    // A short password shows the form again, with the reason.
    let short = browser
        .send("POST", "/activate", &headers, form("short", &code))
        .await;
    assert_eq!(short.status, 400, "{}", short.text());
    assert!(short.text().contains("totp-secret"), "{}", short.text());
    let done = browser
        .send("POST", "/activate", &headers, form(PASSWORD, &code))
        .await;
    assert_eq!(done.status, 200, "{}", done.text());
    assert!(done.text().contains("page@demo.example"));
    let again = browser.get(&format!("/activate?token={token}")).await;
    assert_eq!(again.status, 401, "the link works once: {}", again.text());
    let person = ts
        .app()
        .store
        .person(&estd::model::person_key(
            Some(DEMO_CVR),
            "page@demo.example",
        ))
        .expect("store")
        .expect("person");
    assert!(person.is_active());
    ts.shutdown().await;
}
