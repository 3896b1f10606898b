//! Notification delivery end to end: a real estd on loopback, a real SMTP
//! conversation with a minimal sink written here, and the sled outbox.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use estd::model::{
    now_unix, CertKind, Contact, Identification, Notification, NotificationKind, Profile,
    RevocationReason, Serial, LANGUAGE_SEPARATOR,
};
use estd::notify::{deliver_pending, write_expiry_notices, MAX_DELIVERY_ATTEMPTS};
use estd::service::{block, create_order, renew, revoke, OrderRequest};
use estd::App;
use estd_testkit::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const CONTACT: &str = "contact@demo.example";

/// One message as the sink received it.
#[derive(Debug, Clone)]
pub(crate) struct ReceivedMail {
    /// The MAIL FROM address.
    sender: String,
    /// The RCPT TO addresses.
    pub(crate) recipients: Vec<String>,
    /// Everything between DATA and the final ".", dot-stuffing undone.
    data: String,
}

impl ReceivedMail {
    /// A header's value, folded lines joined and RFC 2047 encoded words
    /// (as lettre writes non-ASCII subjects) decoded.
    fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        let head = self.data.split("\r\n\r\n").next()?;
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            match &mut value {
                None if line.to_ascii_lowercase().starts_with(&prefix) => {
                    value = Some(line[prefix.len()..].trim().to_owned());
                }
                Some(v) if line.starts_with(' ') || line.starts_with('\t') => {
                    v.push(' ');
                    v.push_str(line.trim());
                }
                Some(_) => break,
                None => {}
            }
        }
        value.map(|v| decode_encoded_words(&v))
    }

    /// The body with its Content-Transfer-Encoding undone.
    pub(crate) fn body_text(&self) -> String {
        let body = self
            .data
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or("");
        let encoding = self
            .header("Content-Transfer-Encoding")
            .unwrap_or_default()
            .to_ascii_lowercase();
        match encoding.as_str() {
            "base64" => {
                let compact: String = body.split_whitespace().collect();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .expect("base64 body");
                String::from_utf8(bytes).expect("utf-8 body")
            }
            "quoted-printable" => decode_quoted_printable(body),
            _ => body.to_owned(),
        }
    }
}

/// Undoes RFC 2047 encoded words (`=?utf-8?b?...?=`, `=?utf-8?q?...?=`);
/// the space between two adjacent encoded words is not part of the text.
fn decode_encoded_words(v: &str) -> String {
    let mut out: Vec<u8> = Vec::new();
    let mut rest = v;
    let mut after_word = false;
    while !rest.is_empty() {
        let Some(start) = rest.find("=?") else {
            out.extend_from_slice(rest.as_bytes());
            break;
        };
        let between = &rest[..start];
        if !(after_word && between.trim().is_empty()) {
            out.extend_from_slice(between.as_bytes());
        }
        let word = &rest[start + 2..];
        let mut parts = word.splitn(3, '?');
        let (_charset, encoding, tail) = (
            parts.next().expect("charset"),
            parts.next().expect("encoding"),
            parts.next().expect("text"),
        );
        let end = tail.find("?=").expect("end of encoded word");
        let text = &tail[..end];
        match encoding.to_ascii_lowercase().as_str() {
            "b" => out.extend(
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .expect("base64 word"),
            ),
            _ => out.extend(decode_quoted_printable(&text.replace('_', " ")).into_bytes()),
        }
        rest = &tail[end + 2..];
        after_word = true;
    }
    String::from_utf8(out).expect("utf-8 header")
}

fn decode_quoted_printable(s: &str) -> String {
    let unfolded = s.replace("=\r\n", "");
    let bytes = unfolded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
            out.push(u8::from_str_radix(hex, 16).expect("QP escape"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("utf-8 body")
}

/// A minimal SMTP server on 127.0.0.1 that accepts and records every message.
/// A minimal SMTP server on loopback that records what it receives (also
/// the multi-node test's, `multinode.rs`).
pub(crate) struct SmtpSink {
    port: u16,
    mails: Arc<Mutex<Vec<ReceivedMail>>>,
}

impl SmtpSink {
    pub(crate) async fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
        let port = listener.local_addr().expect("sink addr").port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let recorded = mails.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_smtp(stream, recorded.clone()));
            }
        });
        SmtpSink { port, mails }
    }

    pub(crate) fn received(&self) -> Vec<ReceivedMail> {
        self.mails.lock().expect("sink lock").clone()
    }

    pub(crate) fn received_by(&self, address: &str) -> Vec<ReceivedMail> {
        self.received()
            .into_iter()
            .filter(|m| m.recipients.iter().any(|r| r == address))
            .collect()
    }

    pub(crate) fn config(&self) -> String {
        format!(
            "[smtp]\nenabled = true\nhost = \"127.0.0.1\"\nport = {}\ninterval_secs = 1\n",
            self.port
        )
    }
}

fn angle_address(arg: &str) -> String {
    let arg = arg.trim();
    let start = arg.find('<').map_or(0, |i| i + 1);
    let end = arg.find('>').unwrap_or(arg.len());
    arg[start..end].to_owned()
}

async fn serve_smtp(stream: TcpStream, mails: Arc<Mutex<Vec<ReceivedMail>>>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    if write.write_all(b"220 sink ESMTP\r\n").await.is_err() {
        return;
    }
    let mut sender = String::new();
    let mut recipients = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let command = line.trim_end().to_owned();
        let upper = command.to_ascii_uppercase();
        let answer: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            b"250 sink\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            sender = angle_address(&command["MAIL FROM:".len()..]);
            recipients.clear();
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            recipients.push(angle_address(&command["RCPT TO:".len()..]));
            b"250 OK\r\n"
        } else if upper == "DATA" {
            if write.write_all(b"354 go ahead\r\n").await.is_err() {
                return;
            }
            let mut data = String::new();
            loop {
                line.clear();
                match lines.read_line(&mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            mails.lock().expect("sink lock").push(ReceivedMail {
                sender: sender.clone(),
                recipients: std::mem::take(&mut recipients),
                data,
            });
            b"250 queued\r\n"
        } else if upper == "QUIT" {
            let _ = write.write_all(b"221 bye\r\n").await;
            return;
        } else if upper == "RSET" || upper == "NOOP" {
            b"250 OK\r\n"
        } else {
            b"502 not implemented\r\n"
        };
        if write.write_all(answer).await.is_err() {
            return;
        }
    }
}

/// A port on 127.0.0.1 where nothing listens.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}

/// Stores a one-time-code profile in the demo organisation with `contact`.
fn contact_profile(app: &App, label: &str, contact: Option<&str>) -> Profile {
    let profile = Profile {
        identification: Identification::OneTimeCode,
        contact: contact.map(|email| Contact {
            name: "Contact Person".into(),
            email: email.into(),
        }),
        ..Profile::system(DEMO_CVR, &format!("Profile {label}"), label)
    };
    app.store.put_profile(&profile).expect("profile");
    profile
}

fn outbox(app: &App) -> Vec<Notification> {
    app.store
        .notifications()
        .collect::<Result<_, _>>()
        .expect("outbox")
}

fn notices_for(app: &App, kind: NotificationKind, serial: Serial) -> Vec<Notification> {
    outbox(app)
        .into_iter()
        .filter(|n| n.kind == kind && n.serial == Some(serial))
        .collect()
}

#[tokio::test]
async fn order_notice_is_delivered_without_the_code() {
    let sink = SmtpSink::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start_with(dir.path(), &sink.config()).await;
    let app = ts.app();
    let profile = contact_profile(app, "mailed", Some(CONTACT));
    let created = order_for(app, &profile.id).await;
    let code = created.code.clone().expect("one-time code");
    let reference = created.order.id.clone();

    let report = deliver_pending(app).await.expect("delivery round");
    assert_eq!(report.failed, 0, "{report:?}");

    let mails = sink.received_by(CONTACT);
    assert_eq!(mails.len(), 1, "exactly one message to the contact");
    let mail = &mails[0];
    assert_eq!(mail.sender, "estd@localhost");
    assert_eq!(mail.header("To").as_deref(), Some(CONTACT));
    assert!(mail.header("Message-ID").is_some(), "{}", mail.data);
    let subject = mail.header("Subject").expect("subject header");
    assert_eq!(
        subject,
        "Download systemcertifikat / Download a system certificate"
    );
    let body = mail.body_text();
    assert!(body.contains(&reference), "body names the order: {body}");
    assert!(
        body.contains(&profile.name),
        "body names the profile: {body}"
    );
    let link = format!("http://{}/collect?ref={reference}", ts.server.public_addr);
    assert!(body.contains(&link), "body links to the collection: {body}");
    assert!(!mail.data.contains(&code), "code in the raw message");
    assert!(!body.contains(&code), "code in the body");
    for m in sink.received() {
        assert!(!m.data.contains(&code) && !m.body_text().contains(&code));
    }

    let stored: Vec<_> = outbox(app)
        .into_iter()
        .filter(|n| n.order_id.as_deref() == Some(reference.as_str()))
        .collect();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].kind, NotificationKind::Ordered);
    assert!(stored[0].delivered_at.is_some(), "marked delivered");
    assert_eq!(stored[0].attempts, 0);

    // A second round sends nothing again.
    let again = deliver_pending(app).await.expect("second round");
    assert_eq!(again.delivered, 0);
    assert_eq!(sink.received_by(CONTACT).len(), 1);
    ts.shutdown().await;
}

#[tokio::test]
async fn revocation_notice_is_delivered() {
    let sink = SmtpSink::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start_with(dir.path(), &sink.config()).await;
    let app = ts.app();
    let profile = contact_profile(app, "revoked", Some(CONTACT));
    let (serial, _) = ts.issue_direct(&demo_org(app), &profile, "device-1", 365);

    revoke(
        app.services(),
        &operator(),
        &serial,
        RevocationReason::Superseded,
    )
    .await
    .expect("revoke");
    let report = deliver_pending(app).await.expect("delivery round");
    assert_eq!(report.failed, 0, "{report:?}");

    let mails = sink.received_by(CONTACT);
    assert_eq!(mails.len(), 1, "{mails:?}");
    let subject = mails[0].header("Subject").expect("subject");
    assert!(
        subject.starts_with("Certifikat spærret: ") && subject.contains(" / Certificate revoked: "),
        "subject: {subject}"
    );
    let body = mails[0].body_text();
    assert!(body.contains(&serial.to_string()), "{body}");
    assert!(body.contains("erstattet af et nyt certifikat"), "{body}");
    assert!(body.contains("superseded by a new certificate"), "{body}");

    let notices = notices_for(app, NotificationKind::Revoked, serial);
    assert_eq!(notices.len(), 1);
    assert!(notices[0].delivered_at.is_some());
    ts.shutdown().await;
}

#[tokio::test]
async fn expiry_notice_is_written_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let app = ts.app();
    let org = demo_org(app);
    let profile = contact_profile(app, "expiring", Some(CONTACT));
    // Revoked first: the revocation awaits its commit, and the server's own
    // delivery job may scan for expiring certificates meanwhile; by then
    // nothing but the revoked one exists, so the scans below find what
    // they find on their own.
    let (revoked, _) = ts.issue_direct(&org, &profile, "revoked-soon", 10);
    revoke(
        app.services(),
        &operator(),
        &revoked,
        RevocationReason::Other,
    )
    .await
    .expect("revoke");
    let (soon, _) = ts.issue_direct(&org, &profile, "soon", 10);
    let (later, _) = ts.issue_direct(&org, &profile, "later", 365);
    let mut unknown_profile = profile.clone();
    unknown_profile.id = "estd-tls-server".into();
    let (foreign, _) = ts.issue_direct(&org, &unknown_profile, "tls", 5);
    let silent = contact_profile(app, "no-contact", None);
    let (uncontactable, _) = ts.issue_direct(&org, &silent, "quiet", 5);

    let now = now_unix();
    assert_eq!(write_expiry_notices(app, now).expect("scan"), 1);
    assert_eq!(write_expiry_notices(app, now).expect("rescan"), 0);

    let notices = notices_for(app, NotificationKind::Expiring, soon);
    assert_eq!(notices.len(), 1, "exactly one notice");
    assert_eq!(notices[0].to, CONTACT);
    let subject = &notices[0].subject;
    assert!(
        subject.starts_with("Dit certifikat udløber snart: ")
            && subject.contains(" / Your certificate expires soon: "),
        "{subject}"
    );
    let body = &notices[0].body;
    let (danish, english) = body
        .split_once(LANGUAGE_SEPARATOR)
        .expect("Danish, then English");
    for text in [danish, english] {
        assert!(text.contains(&soon.to_string()), "{text}");
    }
    assert!(
        danish.contains("udløber") && danish.contains("Forny"),
        "{danish}"
    );
    assert!(
        english.contains("expires on") && english.contains("Renew"),
        "{english}"
    );
    for other in [later, revoked, foreign, uncontactable] {
        assert!(notices_for(app, NotificationKind::Expiring, other).is_empty());
    }

    // Once expired, a certificate gets no notice either.
    let after_expiry = now + 400 * 86_400;
    assert_eq!(
        write_expiry_notices(app, after_expiry).expect("late scan"),
        0
    );
    ts.shutdown().await;
}

#[tokio::test]
async fn expiry_notice_of_a_user_certificate_goes_to_the_user() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let app = ts.app();
    let profile = contact_profile(app, "users", Some(CONTACT));
    let created = create_order(
        app.services(),
        &operator(),
        &OrderRequest {
            profile_id: profile.id.clone(),
            user: Some(("Ulla User".into(), "ulla@demo.example".into())),
            publish: None,
            identification: None,
            issuance: None,
        },
    )
    .await
    .expect("user order");
    let (serial, _) = ts.issue_direct(&demo_org(app), &profile, "Ulla User", 10);
    app.store
        .update_cert(&serial, |rec| {
            rec.order_id = Some(created.order.id.clone());
            Ok::<(), ()>(())
        })
        .expect("store")
        .expect("update");

    assert_eq!(write_expiry_notices(app, now_unix()).expect("scan"), 1);
    let notices = notices_for(app, NotificationKind::Expiring, serial);
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].to, "ulla@demo.example");
    assert_eq!(
        notices[0].order_id.as_deref(),
        Some(created.order.id.as_str())
    );
    ts.shutdown().await;
}

#[tokio::test]
async fn failed_delivery_is_counted_and_backed_off() {
    let port = closed_port().await;
    let dir = tempfile::tempdir().expect("tmp");
    // Delivery is disabled so that no background task races this test's rounds.
    let extra = format!("[smtp]\nenabled = false\nhost = \"127.0.0.1\"\nport = {port}\n");
    let ts = TestServer::start_with(dir.path(), &extra).await;
    let app = ts.app();
    let profile = contact_profile(app, "unreachable", Some(CONTACT));
    let created = order_for(app, &profile.id).await;
    let ours = |app: &App| {
        outbox(app)
            .into_iter()
            .find(|n| n.order_id.as_deref() == Some(created.order.id.as_str()))
            .expect("notice in outbox")
    };

    let report = deliver_pending(app).await.expect("round");
    assert_eq!(report.failed, 1, "{report:?}");
    assert_eq!(report.delivered, 0);
    let notice = ours(app);
    assert_eq!(notice.attempts, 1);
    assert_eq!(notice.delivered_at, None);

    // Right after a failure the notice waits for its retry delay.
    let report = deliver_pending(app).await.expect("round");
    assert_eq!((report.failed, report.deferred), (0, 1), "{report:?}");
    assert_eq!(ours(app).attempts, 1);

    // After the last allowed attempt it is no longer tried.
    let mut exhausted = ours(app);
    exhausted.attempts = MAX_DELIVERY_ATTEMPTS;
    app.store.put_notification(&exhausted).expect("put");
    let report = deliver_pending(app).await.expect("round");
    assert_eq!((report.failed, report.abandoned), (0, 1), "{report:?}");
    assert_eq!(ours(app).attempts, MAX_DELIVERY_ATTEMPTS);
    ts.shutdown().await;
}

#[tokio::test]
async fn run_delivers_and_stops_on_shutdown() {
    let sink = SmtpSink::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start_with(dir.path(), &sink.config()).await;
    let app = ts.app().clone();
    let profile = contact_profile(&app, "background", Some(CONTACT));
    let (serial, _) = ts.issue_direct(&demo_org(&app), &profile, "bg", 10);

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(estd::notify::run(app.clone(), stopped));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sink.received_by(CONTACT).is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "run delivered nothing"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mails = sink.received_by(CONTACT);
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(mails[0]
        .header("Subject")
        .is_some_and(|s| s.contains("expires")));
    let notices = notices_for(&app, NotificationKind::Expiring, serial);
    assert_eq!(notices.len(), 1);

    stop.send(true).expect("signal");
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("run stops promptly")
        .expect("run did not panic");
    ts.shutdown().await;
}

const USER: &str = "ulla@demo.example";

/// A user order of `profile` for Ulla, and a certificate issued for it.
async fn user_certificate(ts: &TestServer, profile: &Profile) -> (String, Serial) {
    let app = ts.app();
    let created = create_order(
        app.services(),
        &operator(),
        &OrderRequest {
            profile_id: profile.id.clone(),
            user: Some(("Ulla User".into(), USER.into())),
            publish: None,
            identification: None,
            issuance: None,
        },
    )
    .await
    .expect("user order");
    let (serial, _) = ts.issue_direct(&demo_org(app), profile, "Ulla User", 365);
    app.store
        .update_cert(&serial, |rec| {
            rec.order_id = Some(created.order.id.clone());
            Ok::<(), ()>(())
        })
        .expect("store")
        .expect("update");
    (created.order.id, serial)
}

fn notices_of_order(app: &App, kind: NotificationKind, reference: &str) -> Vec<Notification> {
    outbox(app)
        .into_iter()
        .filter(|n| n.kind == kind && n.order_id.as_deref() == Some(reference))
        .collect()
}

/// Each order event names itself as the service does, in Danish then
/// English, links to the collection page under the configured base URL
/// (never with the code), and is sent from the configured sender.
#[tokio::test]
async fn order_notices_name_the_event_in_both_languages_with_the_configured_link_and_sender() {
    let sink = SmtpSink::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let extra = format!(
        "{}from = \"MitID Erhverv <noreply@certs.example.dk>\"\n\
         [notices]\nbase_url = \"https://certs.example.dk/portal/\"\n",
        sink.config()
    );
    let ts = TestServer::start_with(dir.path(), &extra).await;
    let app = ts.app();
    let system = contact_profile(app, "texts-system", Some(CONTACT));
    let organisation = Profile {
        kind: CertKind::Organisation,
        ..contact_profile(app, "texts-org", Some(CONTACT))
    };
    app.store.put_profile(&organisation).expect("profile");
    let user_profile = Profile {
        kind: CertKind::User,
        ..contact_profile(app, "texts-user", Some(CONTACT))
    };
    app.store.put_profile(&user_profile).expect("profile");

    let (user_ref, _) = user_certificate(&ts, &user_profile).await;
    let sys = order_for(app, &system.id).await;
    let org = order_for(app, &organisation.id).await;
    let expected = [
        (
            user_ref.as_str(),
            USER,
            "Udsted og download medarbejdercertifikat / Issue and download a user certificate",
            ["Kære Ulla User", "Dear Ulla User"],
        ),
        (
            sys.order.id.as_str(),
            CONTACT,
            "Download systemcertifikat / Download a system certificate",
            [
                "Der er bestilt et systemcertifikat",
                "A system certificate has been ordered",
            ],
        ),
        (
            org.order.id.as_str(),
            CONTACT,
            "Download organisationscertifikat / Download an organisation certificate",
            [
                "Der er bestilt et organisationscertifikat",
                "An organisation certificate has been ordered",
            ],
        ),
    ];
    for (reference, to, subject, [danish_text, english_text]) in expected {
        let notices = notices_of_order(app, NotificationKind::Ordered, reference);
        assert_eq!(notices.len(), 1, "{notices:?}");
        let n = &notices[0];
        assert_eq!(n.to, to);
        assert_eq!(n.subject, subject);
        let (danish, english) = n.body.split_once(LANGUAGE_SEPARATOR).expect("both");
        let link = format!("https://certs.example.dk/portal/collect?ref={reference}");
        assert!(
            danish.contains(danish_text) && danish.contains(&link),
            "{danish}"
        );
        assert!(
            danish.contains(&format!("Referencenummer: {reference}")),
            "{danish}"
        );
        assert!(
            english.contains(english_text) && english.contains(&link),
            "{english}"
        );
        assert!(
            english.contains(&format!("Reference number: {reference}")),
            "{english}"
        );
    }
    let codes = [sys.code.expect("code"), org.code.expect("code")];

    // The server's own delivery task may send some of them first.
    let report = deliver_pending(app).await.expect("delivery round");
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(sink.received().len(), 3);
    for mail in sink.received() {
        assert_eq!(mail.sender, "noreply@certs.example.dk");
        let from = mail.header("From").expect("From");
        assert!(
            from.contains("MitID Erhverv") && from.ends_with("<noreply@certs.example.dk>"),
            "{from}"
        );
        let body = mail.body_text();
        assert!(
            body.contains("https://certs.example.dk/portal/collect?ref="),
            "{body}"
        );
        for code in &codes {
            assert!(!mail.data.contains(code.as_str()) && !body.contains(code.as_str()));
        }
    }
    let to_user = sink.received_by(USER);
    assert_eq!(to_user.len(), 1);
    assert_eq!(
        to_user[0].header("Subject").as_deref(),
        Some("Udsted og download medarbejdercertifikat / Issue and download a user certificate")
    );
    ts.shutdown().await;
}

/// `[notices] language` picks Danish or English alone.
#[tokio::test]
async fn one_language_alone_when_configured() {
    for (language, subject, body_has, body_lacks) in [
        (
            "da",
            "Download systemcertifikat",
            "Download certifikatet her",
            "Download the certificate here",
        ),
        (
            "en",
            "Download a system certificate",
            "Download the certificate here",
            "Download certifikatet her",
        ),
    ] {
        let dir = tempfile::tempdir().expect("tmp");
        let extra = format!("[notices]\nlanguage = \"{language}\"\n");
        let ts = TestServer::start_with(dir.path(), &extra).await;
        let app = ts.app();
        let profile = contact_profile(app, "one-language", Some(CONTACT));
        let created = order_for(app, &profile.id).await;
        let notices = notices_of_order(app, NotificationKind::Ordered, &created.order.id);
        assert_eq!(notices.len(), 1);
        assert_eq!(notices[0].subject, subject, "{language}");
        assert!(notices[0].body.contains(body_has), "{}", notices[0].body);
        assert!(!notices[0].body.contains(body_lacks), "{}", notices[0].body);
        assert!(!notices[0].body.contains(LANGUAGE_SEPARATOR.trim()));
        ts.shutdown().await;
    }
}

/// The user of a revoked or blocked user certificate is told, and so is the
/// profile's contact; both get the same text.
#[tokio::test]
async fn the_user_and_the_contact_are_told_of_revocation_and_blocking() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let app = ts.app();
    let profile = Profile {
        kind: CertKind::User,
        ..contact_profile(app, "revoked-users", Some(CONTACT))
    };
    app.store.put_profile(&profile).expect("profile");

    let (_, revoked) = user_certificate(&ts, &profile).await;
    revoke(
        app.services(),
        &operator(),
        &revoked,
        RevocationReason::SuspectedMisuse,
    )
    .await
    .expect("revoke");
    let notices = notices_for(app, NotificationKind::Revoked, revoked);
    let mut to: Vec<&str> = notices.iter().map(|n| n.to.as_str()).collect();
    to.sort_unstable();
    assert_eq!(to, [CONTACT, USER]);
    for n in &notices {
        assert!(
            n.subject.starts_with("Certifikat spærret: ")
                && n.subject.contains(" / Certificate revoked: "),
            "{}",
            n.subject
        );
        let (danish, english) = n.body.split_once(LANGUAGE_SEPARATOR).expect("both");
        assert!(danish.contains(&revoked.to_string()) && danish.contains("mistanke om misbrug"));
        assert!(english.contains(&revoked.to_string()) && english.contains("suspected misuse"));
    }

    let (_, blocked) = user_certificate(&ts, &profile).await;
    block(app.services(), &operator(), &blocked)
        .await
        .expect("block");
    let notices = notices_for(app, NotificationKind::Blocked, blocked);
    let mut to: Vec<&str> = notices.iter().map(|n| n.to.as_str()).collect();
    to.sort_unstable();
    assert_eq!(to, [CONTACT, USER]);
    for n in &notices {
        assert!(
            n.subject.starts_with("Medarbejdercertifikat blokeret: ")
                && n.subject.contains(" / User certificate blocked: "),
            "{}",
            n.subject
        );
        let (danish, english) = n.body.split_once(LANGUAGE_SEPARATOR).expect("both");
        assert!(danish.contains(&blocked.to_string()) && danish.contains("endelig"));
        assert!(english.contains(&blocked.to_string()) && english.contains("final"));
    }

    // A user whose address is also the contact's gets one notice, not two.
    let shared = Profile {
        kind: CertKind::User,
        ..contact_profile(app, "self-contact", Some(USER))
    };
    app.store.put_profile(&shared).expect("profile");
    let (_, own) = user_certificate(&ts, &shared).await;
    revoke(app.services(), &operator(), &own, RevocationReason::Other)
        .await
        .expect("revoke");
    let notices = notices_for(app, NotificationKind::Revoked, own);
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0].to, USER);
    ts.shutdown().await;
}

/// A renewal order is announced like an order, naming what it renews.
#[tokio::test]
async fn renewal_order_notice_names_the_renewed_certificate() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let app = ts.app();
    let profile = contact_profile(app, "renewed", Some(CONTACT));
    let (serial, _) = ts.issue_direct(&demo_org(app), &profile, "renew-me", 365);
    let created = renew(app.services(), &operator(), &serial)
        .await
        .expect("renew");
    let notices = notices_of_order(app, NotificationKind::Renewed, &created.order.id);
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(
        notices[0].subject,
        "Download systemcertifikat / Download a system certificate"
    );
    let (danish, english) = notices[0]
        .body
        .split_once(LANGUAGE_SEPARATOR)
        .expect("both");
    assert!(
        danish.contains(&format!("som fornyelse af certifikat {serial}")),
        "{danish}"
    );
    assert!(
        english.contains(&format!("to renew certificate {serial}")),
        "{english}"
    );
    ts.shutdown().await;
}
