//! Stores written by older estd versions open, are upgraded to today's
//! format (records versioned, old layouts migrated), reopen unchanged, and
//! serve. Each fixture is a `data/` directory of an older `estd serve`.

use std::path::Path;
use std::sync::Arc;

use estd::model::{CertStatus, Serial};
use estd::store::Store;
use estd_testkit::api::Api;
use estd_testkit::TestServer;

/// Copies a fixture into `<tmp>/data`, as the test server's data directory.
fn copy_fixture(name: &str) -> tempfile::TempDir {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("blobs")).expect("blobs");
    for f in ["conf", "db"] {
        std::fs::copy(fixture.join(f), data.join(f)).expect("copy fixture");
    }
    dir
}

fn serial(hex: &str) -> Serial {
    let mut s = [0u8; 16];
    for (i, b) in s.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex");
    }
    Serial(s)
}

/// What a fixture's README lists.
struct Expected {
    /// Serials and whether each is revoked.
    certs: &'static [(&'static str, bool)],
    /// An order's reference number.
    order: &'static str,
    /// A profile's EST label and name.
    label: (&'static str, &'static str),
    /// Token names (operator first).
    tokens: &'static [&'static str],
    /// The organisation.
    cvr: &'static str,
}

/// Everything listed is there and readable; returns a summary to compare
/// across opens.
fn check(store: &Arc<dyn Store>, e: &Expected) -> (usize, usize, usize, usize, usize) {
    for (hex, revoked) in e.certs {
        let rec = store
            .cert(&serial(hex))
            .expect("read")
            .unwrap_or_else(|| panic!("certificate {hex} is missing"));
        assert_eq!(
            matches!(rec.status, CertStatus::Revoked { .. }),
            *revoked,
            "{hex}"
        );
        assert!(!rec.der.is_empty(), "{hex}");
    }
    let order = store.order(e.order).expect("read").expect("the order");
    assert_eq!(order.id, e.order);
    let profile = store
        .profile_by_label(e.label.0)
        .expect("read")
        .expect("the profile");
    assert_eq!(profile.name, e.label.1);
    assert!(store.org(e.cvr).expect("read").is_some());
    let mut names: Vec<String> = store.tokens().map(|t| t.expect("decodes").1.name).collect();
    names.sort();
    for t in e.tokens {
        assert!(names.iter().any(|n| n == t), "token {t} in {names:?}");
    }
    let certs = store
        .certs()
        .collect::<Result<Vec<_>, _>>()
        .expect("decodes")
        .len();
    assert_eq!(certs, store.cert_count());
    (
        certs,
        store
            .orders()
            .collect::<Result<Vec<_>, _>>()
            .expect("decodes")
            .len(),
        store
            .profiles()
            .collect::<Result<Vec<_>, _>>()
            .expect("decodes")
            .len(),
        store
            .audit_events()
            .collect::<Result<Vec<_>, _>>()
            .expect("decodes")
            .len(),
        store
            .revoked_entries()
            .collect::<Result<Vec<_>, _>>()
            .expect("decodes")
            .len(),
    )
}

async fn upgrades_and_serves(name: &str, e: Expected) {
    let dir = copy_fixture(name);
    let data = dir.path().join("data");
    let first = {
        let store = estd::store::open_sled(&data, 8 << 20).expect("open the old store");
        let summary = check(&store, &e);
        assert!(store.crl(1).expect("the CRL decodes").is_some());
        // From before e-mail validation: none stored, and one can be.
        assert_eq!(store.email_validations().count(), 0);
        let v = estd::model::EmailValidation::pending(e.cvr, "ops@upgrade.example", [3; 32], 1, 60);
        store
            .put_email_validation(&v)
            .expect("a new kind of record");
        assert_eq!(
            store
                .email_validation(e.cvr, "ops@upgrade.example")
                .expect("read"),
            Some(v)
        );
        store.flush().expect("flush");
        summary
    };
    // Reopening the upgraded store changes nothing.
    {
        let store = estd::store::open_sled(&data, 8 << 20).expect("reopen");
        assert_eq!(check(&store, &e), first);
    }
    // And a real server starts on it and serves what it holds.
    let ts = TestServer::start(dir.path()).await;
    let made = estd::service::mint_token(&ts.app().store, None, "upgrade test", u64::MAX / 2)
        .expect("token");
    let mut api = Api::token(&ts, &made.token).await;
    for (hex, revoked) in e.certs {
        let r = api.get(&format!("/certificates/{hex}")).await;
        assert_eq!(r.status, 200, "{hex}: {}", r.text);
        assert_eq!(r.body["status"] == "revoked", *revoked, "{hex}: {}", r.text);
    }
    let r = api.get(&format!("/orders/{}", e.order)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["reference"], e.order, "{}", r.text);
    let r = api
        .get(&format!("/organisations/{}/email-validations", e.cvr))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["items"][0]["status"], "expired", "{}", r.text);
    let r = api.get("/profiles?per_page=500").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains(e.label.0), "{}", r.text);
    ts.shutdown().await;
}

#[tokio::test]
async fn a_store_written_by_6dd7785_upgrades_and_serves() {
    upgrades_and_serves(
        "store-6dd7785",
        Expected {
            certs: &[
                ("41A236CB570ACF62DD7E4973B1E02059", false),
                ("41A236CB573219E0B28E91DD4EB9AAAA", true),
                ("41A236CB5764BD349FB3966A4620A8D1", false),
                ("41A236CB5793AE33EA7C26CBABF58E0A", false),
            ],
            order: "229059930800",
            label: ("door-sensors", "Door sensors"),
            tokens: &["operator", "idm"],
            cvr: "12345678",
        },
    )
    .await;
}

#[tokio::test]
async fn a_store_written_by_b1190f4_upgrades_and_serves() {
    upgrades_and_serves(
        "store-b1190f4",
        Expected {
            certs: &[("41A237994DF06BC797FD07FD7D0B223B", false)],
            order: "715249150039",
            label: ("demo", "Demo devices"),
            tokens: &["operator"],
            cvr: "12345674",
        },
    )
    .await;
}
