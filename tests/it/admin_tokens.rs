//! Admin API tokens: created only by a server operator, listed (never the
//! token itself), revoked, and expired; a revoked or expired token is 401.
//! Over HTTPS against a real estd with a real sled store, and through the
//! `estd admin tokens` CLI; and the tokens of a store an older estd wrote.

use estd_testkit::api::{Api, Reply};
use estd_testkit::process::estd_cli;
use estd_testkit::*;
use serde_json::{json, Value};

/// The listed token with `id`, if listed.
fn listed<'a>(list: &'a Reply, id: &str) -> Option<&'a Value> {
    list.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|t| t["id"] == json!(id))
}

/// Seconds since the epoch of the API's `YYYY-MM-DDTHH:MM:SSZ`.
fn unix(rfc3339: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| -> i64 {
        rfc3339
            .get(r)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{rfc3339:?}"))
    };
    assert_eq!(rfc3339.len(), 20, "{rfc3339:?}");
    let month = time::Month::try_from(n(5..7) as u8).expect("month");
    let date = time::Date::from_calendar_date(n(0..4) as i32, month, n(8..10) as u8).expect("date");
    let t = date
        .with_hms(n(11..13) as u8, n(14..16) as u8, n(17..19) as u8)
        .expect("time");
    t.assume_utc().unix_timestamp()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[tokio::test]
async fn tokens_are_listed_and_revoked_and_a_revoked_token_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;
    let tokens = format!("/organisations/{DEMO_CVR}/tokens");

    let r = op
        .post(&tokens, json!({"name": "idm-sync", "expires_in_days": 30}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let token = r.body["token"].as_str().expect("token").to_owned();
    let id = r.body["id"].as_str().expect("id").to_owned();
    assert_eq!(r.body["name"], json!("idm-sync"));
    assert_eq!(r.body["cvr"], json!(DEMO_CVR));
    let expires = unix(r.body["expires_at"].as_str().expect("expires_at"));
    assert!((expires - (now() + 30 * 86_400)).abs() < 120, "{}", r.text);

    // Without a lifetime: the configured default (90 days).
    let r = op.post(&tokens, json!({"name": "default-life"})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let expires = unix(r.body["expires_at"].as_str().expect("expires_at"));
    assert!((expires - (now() + 90 * 86_400)).abs() < 120, "{}", r.text);
    // Bad lifetimes are refused.
    for bad in [
        json!({"name": "x", "expires_in_days": 0}),
        json!({"name": "x", "expires_in_days": 100000}),
        json!({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}),
        json!({"name": "x", "expires_at": "tomorrow"}),
        json!({"name": "x", "expires_in_days": 3, "expires_at": "2999-01-01T00:00:00Z"}),
    ] {
        let r = op.post(&tokens, bad.clone()).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }

    // The token works; the list shows it, never the token itself.
    let mut idm_sync = Api::token(&ts, &token).await;
    assert_eq!(idm_sync.get("/profiles").await.status, 200);
    let list = op.get(&tokens).await;
    assert_eq!(list.status, 200, "{}", list.text);
    let item = listed(&list, &id).expect("listed");
    assert_eq!(item["name"], json!("idm-sync"));
    assert_eq!(item["state"], json!("active"));
    assert!(item["created_at"].is_string() && item["expires_at"].is_string());
    assert!(item.get("token").is_none());
    assert!(
        !list.text.contains(&token[5..]),
        "the token is never listed"
    );
    // The organisation's own actors see its tokens too.
    let own = idm_sync.get(&tokens).await;
    assert_eq!(own.status, 200, "{}", own.text);
    assert!(listed(&own, &id).is_some());

    // The operator's own tokens: the one from the first start.
    let ops = op.get("/tokens").await;
    assert_eq!(ops.status, 200, "{}", ops.text);
    let items = ops.body["items"].as_array().expect("items");
    assert!(items.iter().any(|t| t["name"] == json!("operator")
        && t["cvr"].is_null()
        && t["state"] == json!("active")));
    assert!(!ops.text.contains(&ts.operator_token()[5..]));

    // Revoked: refused from then on, shown as revoked, and revoking again is a conflict.
    let r = op.delete(&format!("{tokens}/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["state"], json!("revoked"));
    let r = idm_sync.get("/profiles").await;
    assert_eq!(r.status, 401, "{}", r.text);
    let mut fresh = Api::token(&ts, &token).await;
    assert_eq!(fresh.get("/profiles").await.status, 401);
    let list = op.get(&tokens).await;
    let item = listed(&list, &id).expect("still listed");
    assert_eq!(item["state"], json!("revoked"));
    assert!(item["revoked_at"].is_string());
    assert_eq!(op.delete(&format!("{tokens}/{id}")).await.status, 409);
    assert_eq!(op.delete(&format!("{tokens}/0000000000")).await.status, 404);

    // Both changes are in the audit log, without the token.
    let audit = op.get("/audit?limit=500").await;
    assert_eq!(audit.status, 200, "{}", audit.text);
    let details: Vec<&str> = audit.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["detail"].as_str())
        .collect();
    assert!(
        details
            .iter()
            .any(|d| d.contains("admin token \"idm-sync\"")
                && d.contains(&id)
                && d.contains("created")),
        "{details:?}"
    );
    assert!(
        details
            .iter()
            .any(|d| d.contains("admin token \"idm-sync\"")
                && d.contains(&id)
                && d.contains("revoked")),
        "{details:?}"
    );
    assert!(!audit.text.contains(&token[5..]));
    ts.shutdown().await;
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;
    let soon = time::OffsetDateTime::from_unix_timestamp(now() + 3).expect("time");
    let soon = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        soon.year(),
        u8::from(soon.month()),
        soon.day(),
        soon.hour(),
        soon.minute(),
        soon.second()
    );
    let r = op
        .post(
            &format!("/organisations/{DEMO_CVR}/tokens"),
            json!({"name": "short-lived", "expires_at": soon}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["expires_at"], json!(soon));
    let id = r.body["id"].as_str().expect("id").to_owned();
    let mut short = Api::token(&ts, r.body["token"].as_str().expect("token")).await;
    assert_eq!(short.get("/profiles").await.status, 200);
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let r = short.get("/profiles").await;
    assert_eq!(r.status, 401, "{}", r.text);
    let list = op.get(&format!("/organisations/{DEMO_CVR}/tokens")).await;
    assert_eq!(
        listed(&list, &id).expect("listed")["state"],
        json!("expired")
    );
    ts.shutdown().await;
}

#[tokio::test]
async fn only_an_operator_creates_tokens() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;
    let tokens = format!("/organisations/{DEMO_CVR}/tokens");
    let r = op.post(&tokens, json!({"name": "demo-admin"})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let org_token = r.body["token"].as_str().expect("token").to_owned();
    let org_token_id = r.body["id"].as_str().expect("id").to_owned();

    // An organisation's token, and its IdM certificate with admin-api, may not.
    let mut org = Api::token(&ts, &org_token).await;
    let mut idm = Api::with_cert(&ts, &ts.demo_identity()).await;
    for api in [&mut org, &mut idm] {
        let r = api.post(&tokens, json!({"name": "another"})).await;
        assert_eq!(r.status, 403, "{}", r.text);
        assert!(r.text.contains("operator"), "{}", r.text);
        assert_eq!(api.post("/tokens", json!({"name": "op"})).await.status, 403);
        assert_eq!(api.get("/tokens").await.status, 403);
    }
    let list = op.get(&tokens).await;
    assert_eq!(list.body["total"], json!(1), "{}", list.text);

    // Another organisation neither sees nor revokes the demo's tokens.
    let r = op
        .post(
            "/organisations",
            json!({"cvr": "55667780", "name": "Bravo A/S"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = op
        .post("/organisations/55667780/tokens", json!({"name": "bravo"}))
        .await;
    let mut bravo = Api::token(&ts, r.body["token"].as_str().expect("token")).await;
    assert_eq!(bravo.get(&tokens).await.status, 404);
    assert_eq!(
        bravo
            .delete(&format!("{tokens}/{org_token_id}"))
            .await
            .status,
        404
    );
    assert_eq!(
        bravo
            .delete(&format!("/organisations/55667780/tokens/{org_token_id}"))
            .await
            .status,
        404,
        "a token is revoked under its own organisation only"
    );
    assert_eq!(org.get("/profiles").await.status, 200, "still valid");

    // An organisation may revoke its own token (a leaked one, say).
    let r = org.delete(&format!("{tokens}/{org_token_id}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(org.get("/profiles").await.status, 401);

    // An operator token made through the API works as an operator.
    let r = op
        .post(
            "/tokens",
            json!({"name": "second operator", "expires_in_days": 7}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.body["cvr"].is_null());
    let mut op2 = Api::token(&ts, r.body["token"].as_str().expect("token")).await;
    assert_eq!(
        op2.post(&tokens, json!({"name": "by op2"})).await.status,
        201
    );
    let id2 = r.body["id"].as_str().expect("id").to_owned();
    assert_eq!(op.delete(&format!("/tokens/{id2}")).await.status, 200);
    assert_eq!(op2.get("/profiles").await.status, 401);
    ts.shutdown().await;
}

/// The operator token of certs/admin-token lives admin_tokens.operator_token_days;
/// a start that finds no usable operator token writes a new one there.
#[tokio::test]
async fn a_start_without_a_usable_operator_token_writes_a_new_one() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let first = ts.operator_token();
    let mut op = Api::operator(&ts).await;
    let list = op.get("/tokens").await;
    let item = &list.body["items"][0];
    assert_eq!(item["name"], json!("operator"));
    let expires = unix(item["expires_at"].as_str().expect("expires_at"));
    assert!(
        (expires - (now() + 365 * 86_400)).abs() < 120,
        "{}",
        list.text
    );
    let id = item["id"].as_str().expect("id").to_owned();
    // A restart with the token still usable keeps it.
    ts.shutdown().await;
    let ts = TestServer::start(dir.path()).await;
    assert_eq!(ts.operator_token(), first);
    let mut op = Api::operator(&ts).await;
    assert_eq!(op.delete(&format!("/tokens/{id}")).await.status, 200);
    assert_eq!(op.get("/tokens").await.status, 401);
    ts.shutdown().await;

    let ts = TestServer::start(dir.path()).await;
    let second = ts.operator_token();
    assert_ne!(second, first);
    let mut op = Api::operator(&ts).await;
    let list = op.get("/tokens").await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(list.body["total"], json!(2), "the revoked one stays listed");
    assert_eq!(
        Api::token(&ts, &first).await.get("/profiles").await.status,
        401
    );
    ts.shutdown().await;
}

#[tokio::test]
async fn the_cli_creates_lists_and_revokes_tokens() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let conn = ts.admin_cli_args();
    let cli = |extra: &[&str]| {
        let mut a = conn.clone();
        a.extend(extra.iter().map(|s| s.to_string()));
        estd_cli(a)
    };
    let (ok, out, err) = cli(&[
        "tokens",
        "create",
        "--cvr",
        DEMO_CVR,
        "--name",
        "cli made",
        "--expires-in-days",
        "5",
    ])
    .await;
    assert!(ok, "tokens create failed: {err}");
    let token = out
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .unwrap_or_else(|| panic!("token line in {out}"))
        .split_whitespace()
        .next()
        .expect("token")
        .to_owned();
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap_or_else(|| panic!("id line in {out}"))
        .to_owned();
    let mut made = Api::token(&ts, &token).await;
    assert_eq!(made.get("/profiles").await.status, 200);

    let (ok, out, err) = cli(&["tokens", "list", "--cvr", DEMO_CVR]).await;
    assert!(ok, "tokens list failed: {err}");
    assert!(
        out.contains(&id) && out.contains("cli made") && out.contains("active"),
        "{out}"
    );
    assert!(!out.contains(&token[5..]), "{out}");
    let (ok, out, err) = cli(&["tokens", "list"]).await;
    assert!(ok, "tokens list (operator) failed: {err}");
    assert!(out.contains("operator"), "{out}");

    let (ok, out, err) = cli(&["tokens", "revoke", "--cvr", DEMO_CVR, "--id", &id]).await;
    assert!(ok, "tokens revoke failed: {err}");
    assert!(out.contains("revoked"), "{out}");
    assert_eq!(made.get("/profiles").await.status, 401);
    ts.shutdown().await;
}

/// The store in tests/fixtures/store-6dd7785 was written before tokens had
/// an expiry or could be revoked: its tokens still decode and are listed.
#[test]
fn tokens_of_a_store_written_by_6dd7785_are_listed() {
    if estd_testkit::postgres::sled_only(
        "reads a sled store written by an older estd (tests/fixtures)",
    ) {
        return;
    }
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-6dd7785");
    let dir = tempfile::tempdir().expect("tmp");
    for f in ["conf", "db"] {
        std::fs::copy(fixture.join(f), dir.path().join(f)).expect("copy fixture");
    }
    std::fs::create_dir(dir.path().join("blobs")).expect("blobs");
    let store = estd::store::open_sled(dir.path(), 8 << 20).expect("open the old store");
    // (cvr, name, expires_at, revoked_at) of each stored token.
    type Row = (Option<String>, String, Option<u64>, Option<u64>);
    let mut tokens: Vec<Row> = store
        .tokens()
        .map(|t| t.expect("decodes"))
        .map(|(_, t)| (t.cvr, t.name, t.expires_at, t.revoked_at))
        .collect();
    tokens.sort();
    assert_eq!(
        tokens,
        vec![
            (None, "operator".to_owned(), None, None),
            (Some("12345678".to_owned()), "idm".to_owned(), None, None),
        ]
    );
    assert!(
        store
            .has_usable_operator_token(estd::model::now_unix())
            .expect("store"),
        "an old operator token stays usable: no new one is written over it"
    );
}
