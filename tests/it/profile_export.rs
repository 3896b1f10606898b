//! The profile export (`GET /profiles.csv`, `estd admin export --profiles`),
//! the profile search by state, and publishing chosen per user order: a real
//! estd on loopback with real TLS, called over HTTPS, certificates collected
//! over EST, the public certificate database asked anonymously.

use std::collections::BTreeSet;

use estd::model::{OrderHolder, Serial};
use estd_testkit::api::{Api, Reply};
use estd_testkit::process::estd_cli;
use estd_testkit::*;
use serde_json::{json, Value};

const PROFILE_HEADER: &str = "profile_id,cvr,name,kind,est_label,identification,issuance,\
    contact_name,contact_email,email,p_number,se_number,seal,publish,state,valid_certificates";

/// A one-time-code profile of the demo organisation, collected over EST.
fn code_profile(name: &str, label: &str) -> Value {
    json!({
        "cvr": DEMO_CVR,
        "name": name,
        "kind": "system",
        "contact": {"name": "Karen Hansen", "email": "karen@demo.example"},
        "identification": "one-time-code",
        "issuance": "est",
        "est_label": label,
    })
}

async fn create(op: &mut Api, body: Value) -> Value {
    let r = op.post("/profiles", body).await;
    assert_eq!(r.status, 201, "create profile: {}", r.text);
    r.body
}

/// Asserts a 400 problem naming `field`.
#[track_caller]
fn assert_field(r: &Reply, field: &str) {
    assert_eq!(r.status, 400, "answer: {}", r.text);
    assert_eq!(
        r.resp.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(r.body["field"].as_str(), Some(field), "{}", r.body);
}

/// The rows of a CSV export, header first, as a spreadsheet reads them.
fn rows(body: &[u8]) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(body);
    reader
        .records()
        .map(|r| r.expect("row").iter().map(str::to_owned).collect())
        .collect()
}

/// The row of profile `id` (its first cell).
fn row_of<'a>(rows: &'a [Vec<String>], id: &str) -> &'a [String] {
    rows.iter()
        .find(|r| r[0] == id)
        .unwrap_or_else(|| panic!("no row for {id} in {rows:?}"))
}

/// Asserts the export is UTF-8 with a BOM, has CRLF line ends only, and
/// starts with the profile header.
#[track_caller]
fn assert_spreadsheet_csv(body: &[u8]) {
    assert!(body.starts_with(b"\xEF\xBB\xBF"), "no BOM: {body:?}");
    let text = std::str::from_utf8(&body[3..]).expect("UTF-8");
    assert!(
        text.starts_with(&format!("{PROFILE_HEADER}\r\n")),
        "header: {text}"
    );
    assert!(text.ends_with("\r\n"), "last line: {text}");
    // No line feed without its carriage return (no field here holds one).
    assert_eq!(
        text.matches('\n').count(),
        text.matches("\r\n").count(),
        "{text:?}"
    );
}

fn ids(r: &Reply) -> BTreeSet<String> {
    r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| p["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn profiles_are_exported_as_csv_and_searched_by_state() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;

    // Active: two certificates issued, one revoked. Its name needs quoting.
    let tricky = "Export, \"quoted\" one";
    let mut body = code_profile(tricky, "x-active");
    body["contact"] = json!({"name": "=HYPERLINK(\"x\")", "email": "karen@demo.example"});
    body["publish"] = json!(true);
    let active = create(&mut op, body).await["profile"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let org = demo_org(ts.app());
    let profile = ts.app().store.profile(&active).expect("store").expect("p");
    let (first, _) = ts.issue_direct(&org, &profile, "one", 30);
    let (_second, _) = ts.issue_direct(&org, &profile, "two", 30);
    let r = op
        .post(
            &format!("/certificates/{first}/revoke"),
            json!({"reason": "other"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Ordered: an open order, no certificate.
    let mut body = code_profile("Export ordered", "x-ordered");
    body["order"] = json!({});
    let ordered = create(&mut op, body).await["profile"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // Inactive: nothing at all.
    let inactive = create(&mut op, code_profile("Export empty", "x-empty")).await["profile"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // Another organisation's profile, with its IdM certificate.
    ts.add_org("87654318", "Other Org", "x-other", vec![]);
    let other = ts
        .app()
        .store
        .profile_by_label("x-other")
        .expect("store")
        .expect("profile")
        .id;

    let r = op.get(&format!("/profiles.csv?cvr={DEMO_CVR}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r
        .resp
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/csv")));
    assert_spreadsheet_csv(&r.resp.body);
    let raw = std::str::from_utf8(&r.resp.body).expect("utf-8");
    assert!(
        raw.contains("\"Export, \"\"quoted\"\" one\""),
        "RFC 4180 quoting: {raw}"
    );
    assert!(
        raw.contains(",\"'=HYPERLINK(\"\"x\"\")\","),
        "a formula is neutralised: {raw}"
    );
    let all = rows(&r.resp.body);
    let demo_profiles = ts
        .app()
        .store
        .profiles()
        .map(|p| p.expect("profile"))
        .filter(|p| p.cvr == DEMO_CVR)
        .count();
    assert_eq!(all.len(), 1 + demo_profiles, "one row per profile: {all:?}");
    assert!(
        all.iter().all(|r| r[0] != other),
        "only the asked organisation"
    );

    let row = row_of(&all, &active);
    assert_eq!(row[1], DEMO_CVR);
    assert_eq!(row[2], tricky, "the name reads back as it was");
    assert_eq!(row[3], "system");
    assert_eq!(row[4], "x-active");
    assert_eq!((row[5].as_str(), row[6].as_str()), ("one-time-code", "est"));
    assert_eq!(row[7], "'=HYPERLINK(\"x\")");
    assert_eq!(row[8], "karen@demo.example");
    assert_eq!((row[12].as_str(), row[13].as_str()), ("false", "true"));
    assert_eq!(row[14], "active");
    assert_eq!(row[15], "1", "two issued, one revoked");
    let row = row_of(&all, &ordered);
    assert_eq!((row[14].as_str(), row[15].as_str()), ("ordered", "0"));
    let row = row_of(&all, &inactive);
    assert_eq!((row[14].as_str(), row[15].as_str()), ("inactive", "0"));
    assert_eq!(row[9], "", "no e-mail: an empty cell");

    // The operator without cvr: every organisation's.
    let r = op.get("/profiles.csv").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let everyone = rows(&r.resp.body);
    assert_eq!(row_of(&everyone, &other)[1], "87654318");
    assert_eq!(row_of(&everyone, &other)[15], "1", "its IdM certificate");
    assert!(everyone.iter().any(|r| r[0] == active));
    // An organisation's token: its own only, also when it names another.
    let r = op
        .post(
            "/organisations/87654318/tokens",
            json!({"name": "other idm"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let mut theirs = Api::token(&ts, r.body["token"].as_str().expect("token")).await;
    let r = theirs.get("/profiles.csv").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let own = rows(&r.resp.body);
    assert_eq!(own.len(), 2, "header and its one profile: {own:?}");
    assert_eq!(own[1][0], other);
    assert_eq!(
        theirs
            .get(&format!("/profiles.csv?cvr={DEMO_CVR}"))
            .await
            .status,
        404
    );

    // The export filtered by state.
    let r = op
        .get(&format!("/profiles.csv?cvr={DEMO_CVR}&state=inactive"))
        .await;
    let got: BTreeSet<String> = rows(&r.resp.body)[1..]
        .iter()
        .map(|r| r[0].clone())
        .collect();
    assert!(got.contains(&inactive) && !got.contains(&active) && !got.contains(&ordered));
    assert!(rows(&r.resp.body)[1..].iter().all(|r| r[14] == "inactive"));

    // The search by state.
    let search = |state: &str| format!("/profiles?cvr={DEMO_CVR}&q=export&state={state}");
    let r = op.get(&search("active")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ids(&r), BTreeSet::from([active.clone()]));
    assert_eq!(r.body["total"], json!(1));
    assert_eq!(
        ids(&op.get(&search("ordered")).await),
        BTreeSet::from([ordered.clone()])
    );
    assert_eq!(
        ids(&op.get(&search("inactive")).await),
        BTreeSet::from([inactive.clone()])
    );
    let r = op.get(&format!("/profiles?cvr={DEMO_CVR}&q=export")).await;
    assert_eq!(ids(&r).len(), 3, "no state: all three");
    // Revoking the last valid certificate makes the profile inactive.
    let serials: Vec<Serial> = ts
        .app()
        .store
        .certs()
        .map(|c| c.expect("cert"))
        .filter(|c| c.profile_id == active && c.serial != first)
        .map(|c| c.serial)
        .collect();
    assert_eq!(serials.len(), 1);
    let r = op
        .post(
            &format!("/certificates/{}/revoke", serials[0]),
            json!({"reason": "other"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(ids(&op.get(&search("active")).await).is_empty());
    assert!(ids(&op.get(&search("inactive")).await).contains(&active));

    // A state that does not exist is a 400 naming the field.
    for path in [
        "/profiles?state=bogus",
        "/profiles?state=Active",
        "/profiles.csv?state=revoked",
    ] {
        assert_field(&op.get(path).await, "state");
    }

    // The CLI: export --profiles, and list --state.
    let conn = ts.admin_cli_args();
    let cli = |extra: &[&str]| {
        let mut a = conn.clone();
        a.extend(extra.iter().map(|s| s.to_string()));
        estd_cli(a)
    };
    let (ok, out, err) = cli(&[
        "export",
        "--profiles",
        "--cvr",
        DEMO_CVR,
        "--state",
        "ordered",
    ])
    .await;
    assert!(ok, "export --profiles failed: {err}");
    let printed = rows(out.as_bytes());
    assert!(out.starts_with('\u{feff}'), "the BOM on standard output");
    assert_eq!(printed[0].join(","), PROFILE_HEADER);
    assert_eq!(row_of(&printed, &ordered)[14], "ordered");
    assert!(
        printed[1..].iter().all(|r| r[14] == "ordered"),
        "{printed:?}"
    );
    let (ok, out, err) = cli(&["list", "--cvr", DEMO_CVR, "--state", "ordered"]).await;
    assert!(ok, "list --state failed: {err}");
    assert!(out.contains(&ordered), "{out}");
    assert!(!out.contains(&inactive) && !out.contains(&active), "{out}");
    ts.shutdown().await;
}

/// A user order for `profile_id` with `publish` as given (absent if `None`);
/// collects it over EST and answers the certificate's serial and the
/// holder's identity.
async fn order_and_collect(
    ts: &TestServer,
    op: &mut Api,
    profile_id: &str,
    label: &str,
    user: &str,
    publish: Option<bool>,
) -> (String, Identity) {
    let email = format!("{}@demo.example", user.to_lowercase().replace(' ', "."));
    let mut body = json!({"profile_id": profile_id, "user": {"name": user, "email": email}});
    if let Some(p) = publish {
        body["publish"] = json!(p);
    }
    let r = op.post("/orders", body).await;
    assert_eq!(r.status, 201, "order: {}", r.text);
    assert_eq!(
        r.body["user"].get("publish").and_then(Value::as_bool),
        publish
    );
    let reference = r.body["reference"].as_str().expect("reference").to_owned();
    let code = r.body["code"].as_str().expect("code").to_owned();
    let (key, csr) = demo_csr(user);
    let resp = collect(ts, label, &reference, &code, &csr).await;
    assert_eq!(resp.status, 200, "collect: {}", resp.text());
    let cert = issued_cert(&resp);
    (
        serial_of(&cert).to_string(),
        Identity::new(der_of(&cert), &key),
    )
}

/// Whether the public certificate database finds `serial`.
async fn is_public(anonymous: &mut Api, serial: &str) -> bool {
    let r = anonymous
        .get(&format!("/public/certificates?serial={serial}"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    match r.body["items"].as_array().map(Vec::as_slice) {
        Some([]) => false,
        Some([one]) => one["serial"].as_str() == Some(serial),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_user_order_chooses_whether_its_certificate_is_published() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut op = Api::operator(&ts).await;
    let mut anonymous = Api::anonymous(&ts).await;
    let mut ids = Vec::new();
    for (name, label, publish) in [
        ("Staff public", "staff-pub", true),
        ("Staff private", "staff-priv", false),
    ] {
        let mut b = code_profile(name, label);
        b["publish"] = json!(publish);
        ids.push(
            create(&mut op, b).await["profile"]["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    let (public_profile, private_profile) = (&ids[0], &ids[1]);

    let cases = [
        (public_profile, "staff-pub", "Ann Public", None, true),
        (public_profile, "staff-pub", "Bo Hidden", Some(false), false),
        (private_profile, "staff-priv", "Cai Private", None, false),
        (private_profile, "staff-priv", "Dea Shown", Some(true), true),
    ];
    let mut serials = Vec::new();
    let mut holders = Vec::new();
    for (profile, label, user, publish, _) in cases {
        let (serial, holder) = order_and_collect(&ts, &mut op, profile, label, user, publish).await;
        serials.push(serial);
        holders.push(holder);
    }
    for ((_, _, user, publish, expected), serial) in cases.iter().zip(&serials) {
        assert_eq!(
            is_public(&mut anonymous, serial).await,
            *expected,
            "{user}: publish {publish:?}"
        );
    }
    // Searching by organisation shows exactly the published ones.
    let r = anonymous
        .get(&format!("/public/certificates?cvr={DEMO_CVR}"))
        .await;
    let shown: BTreeSet<&str> = r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|c| c["serial"].as_str())
        .collect();
    let expected: BTreeSet<&str> = cases
        .iter()
        .zip(&serials)
        .filter(|((.., e), _)| *e)
        .map(|(_, s)| s.as_str())
        .collect();
    assert_eq!(shown, expected);

    // A re-enrolment over EST keeps the order's choice, either way.
    let mut successors = Vec::new();
    for (i, user) in [(1, "Bo Hidden"), (3, "Dea Shown")] {
        let (_key, csr) = demo_csr(user);
        let resp = ts
            .client(Some(&holders[i]))
            .await
            .enroll("/.well-known/est/simplereenroll", &csr)
            .await;
        assert_eq!(resp.status, 200, "re-enrol {user}: {}", resp.text());
        let successor = serial_of(&issued_cert(&resp)).to_string();
        assert_ne!(successor, serials[i]);
        assert_eq!(
            is_public(&mut anonymous, &successor).await,
            cases[i].4,
            "{user}'s successor"
        );
        successors.push(successor);
    }

    // A renewal order keeps the choice (of Bo's re-enrolled certificate),
    // and the lack of one (Cai's).
    let r = op
        .post(&format!("/certificates/{}/renew", successors[0]), json!({}))
        .await;
    assert_eq!(r.status, 201, "renew: {}", r.text);
    assert_eq!(r.body["user"]["name"], json!("Bo Hidden"), "{}", r.body);
    assert_eq!(r.body["user"]["publish"], json!(false), "{}", r.body);
    let r = op
        .post(&format!("/certificates/{}/renew", serials[2]), json!({}))
        .await;
    assert_eq!(r.status, 201, "renew: {}", r.text);
    assert_eq!(r.body["user"]["name"], json!("Cai Private"), "{}", r.body);
    assert!(r.body["user"].get("publish").is_none(), "{}", r.body);

    // Only a user certificate's order chooses.
    let r = op
        .post(
            "/orders",
            json!({"profile_id": public_profile, "publish": false}),
        )
        .await;
    assert_field(&r, "publish");
    let mut b = code_profile("Staff refused", "staff-refused");
    b["order"] = json!({"publish": true});
    assert_field(&op.post("/profiles", b).await, "publish");
    let r = op
        .post(
            "/orders",
            json!({"profile_id": public_profile, "user": {"name": "X Y", "email": "xy@demo.example"}, "publish": "no"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);

    // The CLI's order --publish.
    let mut args = ts.admin_cli_args();
    args.extend(
        [
            "order",
            "--profile",
            public_profile.as_str(),
            "--user-name",
            "Eva Cli",
            "--user-email",
            "eva@demo.example",
            "--publish",
            "false",
        ]
        .map(String::from),
    );
    let (ok, out, err) = estd_cli(args).await;
    assert!(ok, "order --publish failed: {err}");
    let reference = out
        .lines()
        .find_map(|l| l.strip_prefix("reference: "))
        .expect("reference line");
    let order = ts
        .app()
        .store
        .order(reference)
        .expect("store")
        .expect("order");
    assert!(
        matches!(
            order.holder,
            OrderHolder::User {
                publish: Some(false),
                ..
            }
        ),
        "{:?}",
        order.holder
    );
    ts.shutdown().await;
}
