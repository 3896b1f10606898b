//! The store contract for several nodes, on both engines, through the
//! public opening functions (`estd::store::open_location`): what every
//! engine promises about notification claims, CRL numbers, exclusive work and
//! the event feed. On PostgreSQL the two handles are two stores opened on one
//! database (two nodes, as far as the database can tell); sled opens one
//! folder once, so there both handles are the same store.
//!
//! Plus `estd store copy` (the CLI) from sled to PostgreSQL and back, with
//! equal summaries (counts and checksum) on all three stores.

use std::collections::BTreeSet;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use estd::model::{
    now_unix, AuditAction, AuditEvent, AuditOutcome, CertKind, CertRecord, CertStatus,
    EmailValidation, EmailValidationState, Notification, NotificationKind, RevocationReason,
    Serial,
};
use estd::store::{Exclusive, Store, StoreEvent};
use estd_testkit::postgres;
use estd_testkit::process::estd_cli;
use estd_testkit::*;

/// Two handles on one store: (A, B, engine name, temp dir kept alive).
struct Pair {
    a: Arc<dyn Store>,
    b: Arc<dyn Store>,
    engine: &'static str,
    _dir: Option<tempfile::TempDir>,
}

fn sled_pair() -> Pair {
    let dir = tempfile::tempdir().expect("tmp");
    let a = estd::store::open_location(&dir.path().display().to_string(), 1).expect("sled");
    Pair {
        b: a.clone(),
        a,
        engine: "sled",
        _dir: Some(dir),
    }
}

fn pg_pair() -> Pair {
    let url = postgres::fresh_database();
    let a = estd::store::open_location(&url, 4).expect("postgres A");
    let b = estd::store::open_location(&url, 4).expect("postgres B");
    Pair {
        a,
        b,
        engine: "postgres",
        _dir: None,
    }
}

fn pairs() -> Vec<Pair> {
    vec![sled_pair(), pg_pair()]
}

fn notice(n: u64) -> Notification {
    Notification {
        id: 0,
        at: now_unix(),
        kind: NotificationKind::Revoked,
        cvr: DEMO_CVR.into(),
        to: format!("contract-{n}@example.dk"),
        subject: format!("notice {n}"),
        body: "body".into(),
        serial: None,
        order_id: None,
        delivered_at: None,
        attempts: 0,
    }
}

fn cert(n: u8) -> CertRecord {
    let mut serial = [0x5a; 16];
    serial[15] = n;
    CertRecord {
        serial: Serial(serial),
        der: vec![0x30, 0x03, 0x02, 0x01, n],
        subject: format!("CN=contract {n}"),
        profile_id: "contract".into(),
        cvr: DEMO_CVR.into(),
        kind: CertKind::System,
        rights: vec![],
        issued_at: now_unix(),
        not_after: now_unix() + 86_400,
        status: CertStatus::Issued,
        renews: None,
        renewed_by: None,
        order_id: None,
        published: false,
        email: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_claims_are_exclusive_across_handles() {
    for p in pairs() {
        let mut all = BTreeSet::new();
        for n in 0..40 {
            all.insert(p.a.push_notification(notice(n)).expect("push"));
        }
        assert_eq!(all.len(), 40, "{}: ids are unique", p.engine);
        // Both handles claim at once, a few at a time, until nothing is left.
        let claim = |s: Arc<dyn Store>| {
            std::thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    let batch = s.claim_notifications(now_unix(), 600, 3).expect("claim");
                    // More claims than notices: some were claimed again (the
                    // check below says which), so stop rather than spin.
                    if batch.is_empty() || got.len() > 100 {
                        return got;
                    }
                    got.extend(batch.into_iter().map(|n| n.id));
                }
            })
        };
        let (ta, tb) = (claim(p.a.clone()), claim(p.b.clone()));
        let (ga, gb) = (ta.join().expect("A"), tb.join().expect("B"));
        let sa: BTreeSet<u64> = ga.iter().copied().collect();
        let sb: BTreeSet<u64> = gb.iter().copied().collect();
        assert_eq!(sa.len(), ga.len(), "{}: A claimed a notice twice", p.engine);
        assert_eq!(sb.len(), gb.len(), "{}: B claimed a notice twice", p.engine);
        assert!(
            sa.is_disjoint(&sb),
            "{}: a notice was claimed by both handles: {:?}",
            p.engine,
            sa.intersection(&sb).collect::<Vec<_>>()
        );
        let union: BTreeSet<u64> = sa.union(&sb).copied().collect();
        assert_eq!(union, all, "{}: every notice claimed once", p.engine);
        // Leased: nobody gets them again before the lease ends ...
        assert!(p
            .b
            .claim_notifications(now_unix(), 600, 100)
            .expect("claim")
            .is_empty());
        // ... and after it, they can be claimed again (a node died while sending).
        let later =
            p.a.claim_notifications(now_unix() + 601, 600, 100)
                .expect("claim");
        assert_eq!(
            later.len(),
            40,
            "{}: expired leases are claimable",
            p.engine
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crl_numbers_strictly_increase_across_handles() {
    for p in pairs() {
        // Taking turns: every number is above the one before, whoever took it.
        let mut last = 0;
        for i in 0..20 {
            let s = if i % 2 == 0 { &p.a } else { &p.b };
            let n = s.next_crl_number().expect("number");
            assert!(n > last, "{}: CRL number {n} after {last}", p.engine);
            last = n;
        }
        // At the same time: never repeated, and each handle sees its own rise.
        let take = |s: Arc<dyn Store>| {
            std::thread::spawn(move || {
                (0..50)
                    .map(|_| s.next_crl_number().expect("number"))
                    .collect::<Vec<u64>>()
            })
        };
        let (ta, tb) = (take(p.a.clone()), take(p.b.clone()));
        let (na, nb) = (ta.join().expect("A"), tb.join().expect("B"));
        for ns in [&na, &nb] {
            assert!(ns.windows(2).all(|w| w[0] < w[1]), "{}: {ns:?}", p.engine);
            assert!(ns[0] > last, "{}: below an earlier number", p.engine);
        }
        let all: BTreeSet<u64> = na.iter().chain(&nb).copied().collect();
        assert_eq!(
            all.len(),
            100,
            "{}: a CRL number was handed out twice",
            p.engine
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_work_excludes_across_handles() {
    for p in pairs() {
        let held =
            p.a.exclusive(Exclusive::CrlSigning)
                .expect("A takes the lock");
        // Other work is not held up by it.
        drop(p.b.exclusive(Exclusive::ExpiryScan).expect("other work"));
        let (tx, rx) = mpsc::channel();
        let b = p.b.clone();
        let waiter = std::thread::spawn(move || {
            let guard = b
                .exclusive(Exclusive::CrlSigning)
                .expect("B takes the lock");
            tx.send(Instant::now()).expect("send");
            drop(guard);
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(500)).is_err(),
            "{}: B got CRL signing while A held it",
            p.engine
        );
        let released = Instant::now();
        drop(held);
        let got = rx
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("{}: B never got the lock after A let go", p.engine));
        assert!(got >= released);
        waiter.join().expect("waiter");
        // And back: A can take it again once B let go.
        drop(p.a.exclusive(Exclusive::CrlSigning).expect("A again"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_handle_is_an_event_on_the_other_within_a_second() {
    for p in pairs() {
        let rec = cert(1);
        p.a.insert_new_cert(&rec).expect("insert");
        let mut events = p.b.events();
        let started = Instant::now();
        let revoked =
            p.a.revoke_cert(&rec.serial, RevocationReason::SuspectedMisuse, now_unix())
                .expect("store")
                .expect("revocable");
        assert!(matches!(revoked.status, CertStatus::Revoked { .. }));
        let deadline = started + Duration::from_secs(1);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, events.recv()).await {
                Ok(Ok(StoreEvent::Revoked(s))) if s == rec.serial => break,
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => panic!("{}: event feed: {e}", p.engine),
                Err(_) => panic!(
                    "{}: no Revoked event on handle B within 1 s of the revocation on A",
                    p.engine
                ),
            }
        }
        // B reads the revocation too (no stale cache).
        let seen = p.b.cert(&rec.serial).expect("read").expect("there");
        assert!(matches!(seen.status, CertStatus::Revoked { .. }));
    }
}

/// `estd store copy`, run as the CLI; panics with its output on failure.
/// E-mail validations: one record per organisation and address, replaced
/// as a whole, seen from the other handle, listed; on both engines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_validations_are_kept_per_organisation_and_address() {
    for p in pairs() {
        let engine = p.engine;
        assert!(p
            .a
            .email_validation(DEMO_CVR, "a@x.dk")
            .expect("read")
            .is_none());
        let mut v = EmailValidation::pending(DEMO_CVR, "a@x.dk", [1; 32], 100, 3600);
        p.a.put_email_validation(&v).expect("put");
        let other = EmailValidation::pending("87654311", "a@x.dk", [2; 32], 100, 3600);
        p.a.put_email_validation(&other).expect("put");
        assert_eq!(
            p.b.email_validation(DEMO_CVR, "a@x.dk").expect("read"),
            Some(v.clone()),
            "{engine}"
        );
        v.confirm(200).expect("confirm");
        p.a.put_email_validation(&v).expect("replace");
        let read = p.b.email_validation(DEMO_CVR, "a@x.dk").expect("read");
        assert!(
            matches!(
                read.map(|r| r.state),
                Some(EmailValidationState::Confirmed { at: 200 })
            ),
            "{engine}"
        );
        let all: Vec<EmailValidation> =
            p.b.email_validations()
                .collect::<Result<_, _>>()
                .expect("list");
        assert_eq!(all.len(), 2, "{engine}: {all:?}");
        assert!(p
            .b
            .email_validation(DEMO_CVR, "b@x.dk")
            .expect("read")
            .is_none());
    }
}

fn audit_event(at_ms: u64) -> AuditEvent {
    AuditEvent {
        at_ms,
        actor: "token:contract".into(),
        action: AuditAction::Configure,
        outcome: AuditOutcome::Done,
        cvr: Some(DEMO_CVR.into()),
        profile_id: None,
        serial: None,
        order_id: None,
        detail: format!("at {at_ms}"),
    }
}

/// Every record of an export, as comparable text, sorted.
fn records(
    it: impl Iterator<Item = Result<estd::store::Record, estd::store::StoreError>>,
) -> Vec<String> {
    let mut all: Vec<String> = it.map(|r| format!("{:?}", r.expect("export"))).collect();
    all.sort();
    all
}

/// An export (what `estd backup` and `estd store copy` read) is the store at
/// one moment, taken when the export begins: writes made while it is read,
/// through the other handle (another node, on PostgreSQL), are not in it,
/// whether they add, change or remove records, and whether the export has
/// read past their keys yet or not. A fresh export afterwards has them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_is_the_store_at_one_moment_while_writes_go_on() {
    for p in pairs() {
        let engine = p.engine;
        for n in 1..=6 {
            p.a.insert_new_cert(&cert(n)).expect("cert");
        }
        p.a.revoke_cert(
            &cert(3).serial,
            RevocationReason::SuspectedMisuse,
            now_unix(),
        )
        .expect("revoke")
        .expect("issued");
        p.a.push_notification(notice(1)).expect("notice");
        let mut v = EmailValidation::pending(DEMO_CVR, "moment@x.dk", [3; 32], 100, 3600);
        p.a.put_email_validation(&v).expect("validation");
        let old_ms = 1_000;
        p.a.audit(&audit_event(old_ms)).expect("audit");
        p.a.audit(&audit_event(old_ms + 1)).expect("audit");
        p.a.flush().expect("flush");
        let at_start = records(p.a.export());

        // Begin, and read the first certificates (in key order: 1 and 2).
        let mut export = p.a.export();
        let mut read: Vec<estd::store::Record> = Vec::new();
        for _ in 0..2 {
            read.push(export.next().expect("a record").expect("export"));
        }
        // Meanwhile, through the other handle: a certificate before the
        // export's position and one after it; a change to one already read
        // and one not yet read (a revocation, which also adds a CRL entry);
        // a new notice; a changed validation; old audit records removed and
        // a new one added.
        p.b.insert_new_cert(&cert(0)).expect("cert 0");
        p.b.insert_new_cert(&cert(9)).expect("cert 9");
        p.b.change_cert(&cert(1).serial, &mut |c| {
            c.published = true;
            true
        })
        .expect("change 1");
        p.b.revoke_cert(&cert(5).serial, RevocationReason::Superseded, now_unix())
            .expect("revoke 5")
            .expect("issued");
        p.b.push_notification(notice(2)).expect("notice");
        v.confirm(200).expect("confirm");
        p.b.put_email_validation(&v).expect("validation");
        assert_eq!(
            p.b.prune_audit(old_ms + 10, 100).expect("prune"),
            2,
            "{engine}"
        );
        p.b.audit(&audit_event(now_unix() * 1000)).expect("audit");
        p.b.flush().expect("flush");

        let mut during: Vec<String> = read.iter().map(|r| format!("{r:?}")).collect();
        during.extend(records(export));
        during.sort();
        assert_eq!(
            during, at_start,
            "{engine}: the export holds the store as it was when it began"
        );

        let after = records(p.a.export());
        assert_ne!(after, at_start, "{engine}: the writes happened");
        let has = |needle: &str| after.iter().filter(|r| r.contains(needle)).count();
        assert_eq!(has("CN=contract 0"), 1, "{engine}: cert 0 in a new export");
        assert_eq!(has("CN=contract 9"), 1, "{engine}: cert 9 in a new export");
        assert_eq!(has("detail: \"at 1000\""), 0, "{engine}: pruned audit gone");
        assert_eq!(has("Revoked(RevokedEntry"), 2, "{engine}: two CRL entries");
    }
}

async fn store_copy(from: &str, to: &str) -> String {
    let (ok, out, err) = estd_cli(vec![
        "store".into(),
        "copy".into(),
        "--from".into(),
        from.into(),
        "--to".into(),
        to.into(),
    ])
    .await;
    assert!(ok, "estd store copy {from} → {to} failed:\n{out}\n{err}");
    format!("{out}{err}")
}

fn summary_of(location: &str) -> estd::store::copy::Summary {
    let store = estd::store::open_location(location, 2).expect("open");
    estd::store::copy::summary(store.as_ref()).expect("summary")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_copy_sled_to_postgres_and_back_keeps_every_record() {
    let dir = tempfile::tempdir().expect("tmp");
    let sled_dir = dir.path().join("data");
    {
        // A sled installation with a bit of everything: the seeded catalogue
        // and tokens, certificates (one revoked, on a CRL), an order, the
        // audit log and a notice in the outbox.
        let ts = TestServer::start_with(dir.path(), "[store]\nengine = \"sled\"\n").await;
        let app = ts.app().clone();
        let mut serials = Vec::new();
        for i in 0..3 {
            let mut c = ts.client(Some(&ts.demo_identity())).await;
            let (_k, csr) = demo_csr(&format!("copy-{i}"));
            let r = c.enroll("/.well-known/est/demo/simpleenroll", &csr).await;
            serials.push(serial_of(&issued_cert(&r)));
        }
        let (status, body) = ts
            .admin(
                "POST",
                &format!("/certificates/{}/revoke", serials[0]),
                Some(serde_json::json!({"reason": "superseded"})),
            )
            .await;
        assert_eq!(status, 200, "revoke: {body}");
        let idm_profile = profile(&ts, estd::seed::DEMO_IDM_LABEL);
        let _order = order_code(&app, &idm_profile.id).await;
        app.store.push_notification(notice(1)).expect("notice");
        app.store
            .put_email_validation(&EmailValidation::pending(
                DEMO_CVR,
                "ops@demo.example",
                [7; 32],
                now_unix(),
                3600,
            ))
            .expect("validation");
        drop(app);
        ts.shutdown().await;
    }
    let sled = sled_dir.display().to_string();
    let before = summary_of(&sled);
    for kind in [
        "certs",
        "revoked",
        "orgs",
        "profiles",
        "orders",
        "tokens",
        "audit",
        "email_validations",
    ] {
        assert!(
            before.counts.get(kind).is_some_and(|n| *n > 0),
            "the source has no {kind}: {before}"
        );
    }
    let pg = postgres::fresh_database();
    let said = store_copy(&sled, &pg).await;
    assert!(said.contains("verified"), "{said}");
    let back = dir.path().join("back");
    store_copy(&pg, &back.display().to_string()).await;
    let on_pg = summary_of(&pg);
    let on_sled_again = summary_of(&back.display().to_string());
    assert_eq!(before, on_pg, "sled → postgres");
    assert_eq!(before, on_sled_again, "postgres → sled");
    // Copying into a store that is not empty is refused.
    let (ok, _, err) = estd_cli(vec![
        "store".into(),
        "copy".into(),
        "--from".into(),
        sled.clone(),
        "--to".into(),
        pg.clone(),
    ])
    .await;
    assert!(!ok, "a copy into a non-empty store must fail");
    assert!(err.contains("not empty"), "{err}");
}

/// `estd store copy` refuses what would copy nothing or copy a store onto
/// itself, says why, and creates nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_copy_refuses_a_missing_source_and_the_same_location() {
    let dir = tempfile::tempdir().expect("tmp");
    let missing = dir.path().join("no-store-here").display().to_string();
    let target = dir.path().join("target").display().to_string();
    let copy = |from: &str, to: &str| {
        estd_cli(vec![
            "store".into(),
            "copy".into(),
            "--from".into(),
            from.into(),
            "--to".into(),
            to.into(),
        ])
    };
    let (ok, _, err) = copy(&missing, &target).await;
    assert!(!ok, "a copy from a directory without a store must fail");
    assert!(err.contains("no estd store there"), "{err}");
    assert!(
        !dir.path().join("no-store-here").exists() && !dir.path().join("target").exists(),
        "a refused copy creates nothing"
    );
    let (ok, _, err) = copy(&target, &target).await;
    assert!(!ok, "a copy onto itself must fail");
    assert!(err.contains("both name"), "{err}");
}
