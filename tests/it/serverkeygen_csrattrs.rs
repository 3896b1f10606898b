//! Interoperability with what real EST clients send and expect: serverkeygen
//! (RFC 7030 4.4) with CN-only, badly signed and placeholder-key CSRs, the
//! key type following the CSR, and anonymous `/csrattrs` without a label
//! (RFC 7030 4.5). Against a real estd on loopback with real TLS; the last
//! tests run Cisco libest's `estclient` where it is installed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use const_oid::db::{rfc4519, rfc5912, rfc8410};
use der::asn1::{BitString, ObjectIdentifier, SetOfVec};
use der::{Any, Decode, Encode, Tag, Tagged};
use estd::model::{Identification, Issuance, KeyAlgorithm, Profile};
use estd_testkit::*;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::name::Name;
use x509_cert::request::{CertReq, CertReqInfo, Version};

const KEYGEN: &str = "/.well-known/est/serverkeygen";
const OI: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.97");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const CHALLENGE_PASSWORD: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.7");

/// A one-time-code, browser-issuance profile "Laptop" of the demo organisation.
fn keygen_profile(ts: &TestServer, label: &str, allowed: Option<Vec<KeyAlgorithm>>) -> Profile {
    let mut p = Profile {
        identification: Identification::OneTimeCode,
        issuance: Issuance::Browser,
        ..Profile::system(DEMO_CVR, "Laptop", label)
    };
    if let Some(a) = allowed {
        p.key_policy.allowed = a;
    }
    ts.app().store.put_profile(&p).expect("profile");
    p
}

/// A CSR over `spki` with a signature that is only filler: what a client
/// sends with a placeholder key, or with a signature that does not verify.
fn unsigned_csr(
    subject: Name,
    spki: SubjectPublicKeyInfoOwned,
    sig_alg: ObjectIdentifier,
) -> Vec<u8> {
    let null = if sig_alg == rfc5912::SHA_256_WITH_RSA_ENCRYPTION {
        Some(Any::null())
    } else {
        None
    };
    CertReq {
        info: CertReqInfo {
            version: Version::V1,
            subject,
            public_key: spki,
            attributes: SetOfVec::new(),
        },
        algorithm: AlgorithmIdentifierOwned {
            oid: sig_alg,
            parameters: null,
        },
        signature: BitString::from_bytes(&[0x42; 128]).expect("bits"),
    }
    .to_der()
    .expect("csr")
}

/// A placeholder RSA-1024 public key (not even a real modulus).
fn rsa_1024_placeholder() -> SubjectPublicKeyInfoOwned {
    let mut modulus = vec![0x02, 0x81, 0x81, 0x00, 0xc1];
    modulus.extend([0x5a; 126]);
    modulus.push(0x01);
    let mut rsa = vec![0x30, 0x81, 0x89];
    rsa.extend(modulus);
    rsa.extend([0x02, 0x03, 0x01, 0x00, 0x01]);
    SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: rfc5912::RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
        subject_public_key: BitString::from_bytes(&rsa).expect("bits"),
    }
}

fn spki_of(key: &rcgen::KeyPair) -> SubjectPublicKeyInfoOwned {
    SubjectPublicKeyInfoOwned::from_der(&rcgen::PublicKeyData::subject_public_key_info(key))
        .expect("spki")
}

/// A properly signed CSR whose subject is only `CN=<cn>` (libest's kind).
fn cn_only_csr(cn: &str, alg: &'static rcgen::SignatureAlgorithm) -> Vec<u8> {
    let key = rcgen::KeyPair::generate_for(alg).expect("key");
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.serialize_request(&key).expect("csr").der().to_vec()
}

/// One part of a multipart answer: its header lines and its decoded body.
struct Part {
    headers: Vec<String>,
    body: Vec<u8>,
}

impl Part {
    fn has_header(&self, line: &str) -> bool {
        self.headers.iter().any(|h| h.eq_ignore_ascii_case(line))
    }
}

/// The parts of a multipart/mixed answer (RFC 2046), in order.
fn multipart(r: &Resp) -> Vec<Part> {
    let ct = r.header("content-type").expect("content type").to_owned();
    assert!(ct.starts_with("multipart/mixed"), "{ct}");
    let boundary = ct
        .split("boundary=")
        .nth(1)
        .expect("boundary")
        .trim_matches('"');
    let text = r.text();
    let mut parts = Vec::new();
    for chunk in text.split(&format!("--{boundary}")).skip(1) {
        if chunk.starts_with("--") {
            break;
        }
        let (head, body) = chunk
            .trim_start_matches("\r\n")
            .split_once("\r\n\r\n")
            .expect("part headers end with a blank line");
        parts.push(Part {
            headers: head.lines().map(str::to_owned).collect(),
            body: estd::est::codec::decode_body(body.as_bytes(), false).expect("base64 part"),
        });
    }
    parts
}

/// POSTs `csr` to serverkeygen with the order's one-time code.
async fn serverkeygen(ts: &TestServer, reference: &str, code: &str, csr: &[u8]) -> Resp {
    let mut c = ts.client(None).await;
    let auth = basic(reference, code);
    c.send(
        "POST",
        KEYGEN,
        &[
            ("content-type", "application/pkcs10"),
            ("authorization", &auth),
        ],
        b64(csr).into_bytes(),
    )
    .await
}

/// The key's algorithm, the key (PKCS#8) and the certificate of a
/// serverkeygen answer, after checking that both parts carry
/// `Content-Transfer-Encoding: base64`.
fn key_and_cert(r: &Resp) -> (ObjectIdentifier, Vec<u8>, x509_cert::Certificate) {
    assert_eq!(r.status, 200, "{}", r.text());
    let parts = multipart(r);
    assert_eq!(parts.len(), 2, "a key part and a certificate part");
    for p in &parts {
        assert!(
            p.has_header("Content-Transfer-Encoding: base64"),
            "each part says base64 (libest ignores a part that does not): {:?}",
            p.headers
        );
    }
    assert!(parts[0].has_header("Content-Type: application/pkcs8"));
    assert!(parts[1].has_header("Content-Type: application/pkcs7-mime; smime-type=certs-only"));
    let key_der = parts[0].body.clone();
    let algorithm = pkcs8::PrivateKeyInfo::try_from(key_der.as_slice())
        .expect("PKCS#8")
        .algorithm
        .oid;
    let cert = pkcs7_certs(b64(&parts[1].body).as_bytes()).remove(0);
    (algorithm, key_der, cert)
}

/// The subject's attributes as (OID, text).
fn subject_values(cert: &x509_cert::Certificate) -> Vec<(ObjectIdentifier, String)> {
    estd::policy::name_values(&cert.tbs_certificate.subject).expect("subject")
}

#[tokio::test]
async fn serverkeygen_fills_in_the_organisation_of_a_cn_only_csr() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let profile = keygen_profile(&ts, "laptops", None);
    let (reference, code) = order_code(ts.app(), &profile.id).await;
    let r = serverkeygen(
        &ts,
        &reference,
        &code,
        &cn_only_csr("Laptop", &rcgen::PKCS_ECDSA_P256_SHA256),
    )
    .await;
    let (_key, _, cert) = key_and_cert(&r);
    assert_eq!(
        subject_values(&cert),
        vec![
            (rfc4519::O, DEMO_ORG.to_owned()),
            (OI, format!("NTRDK-{DEMO_CVR}")),
            (rfc4519::CN, "Laptop".to_owned()),
        ]
    );

    // A CSR that names another organisation is still refused.
    let (reference, code) = order_code(ts.app(), &profile.id).await;
    let (_k, foreign) = csr_for(
        "Another A/S",
        DEMO_CVR,
        "Laptop",
        &rcgen::PKCS_ECDSA_P256_SHA256,
    );
    let r = serverkeygen(&ts, &reference, &code, &foreign).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("another organisation"), "{}", r.text());
    ts.shutdown().await;
}

#[tokio::test]
async fn serverkeygen_ignores_the_csrs_key_and_signature() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let profile = keygen_profile(&ts, "laptops", None);
    let subject = estd::seed::system_subject(
        &ts.app().store.org(DEMO_CVR).expect("store").expect("demo"),
        "Laptop",
    )
    .expect("subject");

    // A P-256 CSR whose signature does not verify: a P-256 key comes back.
    let (reference, code) = order_code(ts.app(), &profile.id).await;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let bad = unsigned_csr(subject.clone(), spki_of(&key), rfc5912::ECDSA_WITH_SHA_256);
    assert!(
        estd::ca::csr::parse_and_verify(&bad).is_err(),
        "not a valid signature"
    );
    let (generated, der, cert) = key_and_cert(&serverkeygen(&ts, &reference, &code, &bad).await);
    assert_eq!(generated, rfc5912::ID_EC_PUBLIC_KEY);
    let pair = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &der,
    )
    .expect("a P-256 key");
    use aws_lc_rs::signature::KeyPair;
    assert_eq!(
        cert.tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes(),
        pair.public_key().as_ref()
    );
    assert_ne!(
        cert.tbs_certificate.subject_public_key_info,
        spki_of(&key),
        "the CSR's key is not certified"
    );

    // A placeholder RSA-1024 key with a filler signature: an RSA-2048 key comes back.
    let (reference, code) = order_code(ts.app(), &profile.id).await;
    let placeholder = unsigned_csr(
        subject,
        rsa_1024_placeholder(),
        rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
    );
    let (generated, der, cert) =
        key_and_cert(&serverkeygen(&ts, &reference, &code, &placeholder).await);
    assert_eq!(generated, rfc5912::RSA_ENCRYPTION);
    let rsa = aws_lc_rs::rsa::KeyPair::from_pkcs8(&der).expect("an RSA key");
    assert_eq!(rsa.public_modulus_len() * 8, 2048);
    assert_eq!(
        cert.tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes(),
        rsa.public_key().as_ref()
    );

    // What is not a CSR at all is still a 400.
    let (reference, code) = order_code(ts.app(), &profile.id).await;
    let r = serverkeygen(&ts, &reference, &code, b"\x30\x03abc").await;
    assert_eq!(r.status, 400, "{}", r.text());
    ts.shutdown().await;
}

#[tokio::test]
async fn serverkeygen_makes_a_key_of_the_csrs_type_within_the_profile() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let profile = keygen_profile(&ts, "laptops", None);
    for (alg, want_oid, want_curve) in [
        (&rcgen::PKCS_RSA_SHA256, rfc5912::RSA_ENCRYPTION, None),
        (
            &rcgen::PKCS_ECDSA_P256_SHA256,
            rfc5912::ID_EC_PUBLIC_KEY,
            Some(SECP256R1),
        ),
        (
            &rcgen::PKCS_ECDSA_P384_SHA384,
            rfc5912::ID_EC_PUBLIC_KEY,
            Some(SECP384R1),
        ),
        (&rcgen::PKCS_ED25519, rfc8410::ID_ED_25519, None),
    ] {
        let (reference, code) = order_code(ts.app(), &profile.id).await;
        let (_k, csr) = csr_for(DEMO_ORG, DEMO_CVR, "Laptop", alg);
        let (key, _, cert) = key_and_cert(&serverkeygen(&ts, &reference, &code, &csr).await);
        let spki = &cert.tbs_certificate.subject_public_key_info;
        assert_eq!(key, want_oid, "{alg:?}");
        assert_eq!(spki.algorithm.oid, want_oid, "{alg:?}");
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .filter(|p| p.tag() == Tag::ObjectIdentifier)
            .map(|p| p.decode_as::<ObjectIdentifier>().expect("curve"));
        assert_eq!(curve, want_curve, "{alg:?}");
    }

    // A key type the profile does not allow is refused with the reason. The
    // first "Laptop" profile goes first: profile names are unique within an
    // organisation (PostgreSQL's store enforces it too).
    ts.app().store.remove_profile(&profile.id).expect("remove");
    let p256_only = keygen_profile(&ts, "p256-laptops", Some(vec![KeyAlgorithm::P256]));
    let (reference, code) = order_code(ts.app(), &p256_only.id).await;
    let r = serverkeygen(
        &ts,
        &reference,
        &code,
        &unsigned_csr(
            Name::from_str("CN=Laptop").expect("name"),
            rsa_1024_placeholder(),
            rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
        ),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.text()
            .contains("Rsa key, which the profile does not allow"),
        "{}",
        r.text()
    );
    // The order is untouched: the same code still works with an allowed type.
    let r = serverkeygen(
        &ts,
        &reference,
        &code,
        &cn_only_csr("Laptop", &rcgen::PKCS_ECDSA_P256_SHA256),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    ts.shutdown().await;
}

/// The entries of a CsrAttrs answer: bare OIDs, and attributes with their values.
fn csr_attrs(body: &[u8]) -> (Vec<ObjectIdentifier>, Vec<(ObjectIdentifier, Vec<Any>)>) {
    let der = estd::est::codec::decode_body(body, false).expect("base64");
    let entries: Vec<Any> = Vec::from_der(&der).expect("SEQUENCE OF AttrOrOID");
    let (mut oids, mut attrs) = (Vec::new(), Vec::new());
    for e in entries {
        match e.tag() {
            Tag::ObjectIdentifier => oids.push(e.decode_as().expect("oid")),
            Tag::Sequence => {
                let a: x509_cert::attr::Attribute = e.decode_as().expect("attribute");
                attrs.push((a.oid, a.values.into_vec()));
            }
            other => panic!("unexpected entry {other}"),
        }
    }
    (oids, attrs)
}

#[tokio::test]
async fn anonymous_csrattrs_without_a_label_names_what_holds_for_every_organisation() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let mut c = ts.client(None).await;
    let r = c.get("/.well-known/est/csrattrs").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/csrattrs"));
    let (oids, attrs) = csr_attrs(&r.body);
    for required in [rfc4519::CN, rfc4519::O, OI] {
        assert!(oids.contains(&required), "{required} in {oids:?}");
    }
    assert!(oids.contains(&rfc8410::ID_ED_25519), "{oids:?}");
    assert!(
        !oids.contains(&CHALLENGE_PASSWORD),
        "nothing profile-specific"
    );
    let ec = attrs
        .iter()
        .find(|(oid, _)| *oid == rfc5912::ID_EC_PUBLIC_KEY)
        .expect("id-ecPublicKey");
    let mut curves: Vec<ObjectIdentifier> =
        ec.1.iter().map(|v| v.decode_as().expect("curve")).collect();
    curves.sort(); // a SET OF, in DER order
    let mut want = vec![SECP256R1, SECP384R1];
    want.sort();
    assert_eq!(curves, want);
    let rsa = attrs
        .iter()
        .find(|(oid, _)| *oid == rfc5912::RSA_ENCRYPTION)
        .expect("rsaEncryption");
    assert_eq!(rsa.1[0].decode_as::<u32>().expect("bits"), 2048);

    // A label still answers for its profile, and an unknown label as before.
    let labelled = c.get("/.well-known/est/demo/csrattrs").await;
    assert_eq!(labelled.status, 200);
    ts.shutdown().await;
}

// ---- Cisco libest's estclient, where it is installed ----

fn libest() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/clients/libest/estclient");
    let p = if p.exists() {
        p
    } else {
        PathBuf::from("/work/shared/clients/libest/estclient")
    };
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipped: libest estclient not found at ../shared/clients/libest/estclient");
        None
    }
}

/// Runs libest's estclient against the test server; (stdout+stderr, output folder).
async fn run_libest(ts: &TestServer, bin: &Path, args: &[&str]) -> (String, tempfile::TempDir) {
    let out = tempfile::tempdir().expect("out dir");
    let mut cmd = Command::new(bin);
    cmd.env(
        "EST_OPENSSL_CACERT",
        ts.dir.join("certs").join("root-ca.pem"),
    )
    .args([
        "-s",
        "127.0.0.1",
        "-p",
        &ts.server.est_addr.port().to_string(),
    ])
    .args(args)
    .arg("-o")
    .arg(out.path());
    let output = tokio::task::spawn_blocking(move || cmd.output().expect("run estclient"))
        .await
        .expect("join");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (text, out)
}

fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether estd challenges with the registered spelling `WWW-Authenticate`,
/// which libest matches case-sensitively before it sends credentials.
async fn challenge_spelled_exactly(ts: &TestServer) -> bool {
    let raw = raw_exchange(
        ts.server.est_addr,
        &ts.root_der(),
        None,
        b"POST /.well-known/est/serverkeygen HTTP/1.1\r\nHost: localhost\r\n\
          Content-Type: application/pkcs10\r\nContent-Length: 4\r\nConnection: close\r\n\r\nMAA=",
    )
    .await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    text.contains("\r\nWWW-Authenticate: Basic")
}

/// libest's serverkeygen (`-q`, with an RSA key of its own for the CSR, as
/// it requires): a CN-only CSR, Basic credentials sent after the 401
/// challenge. It needs an RSA key back: it refuses a key part under 256 bytes.
/// libest finds the challenge only under the exact spelling
/// `WWW-Authenticate` (issue 11, interoperability item 1, fixed apart from
/// this); until estd sends that, this test says so and stops.
#[tokio::test]
async fn libest_serverkeygen_gets_an_rsa_key_and_its_certificate() {
    let Some(bin) = libest() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    if !challenge_spelled_exactly(&ts).await {
        eprintln!(
            "skipped: estd does not yet send `WWW-Authenticate` spelled exactly, without \
             which libest never sends its credentials (issue 11, interoperability item 1)"
        );
        ts.shutdown().await;
        return;
    }
    let profile = keygen_profile(&ts, "laptops", None);
    let (reference, code) = order_code(ts.app(), &profile.id).await;
    let csr_key =
        rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            .expect("RSA key");
    let key_path = dir.path().join("libest-csr.key");
    std::fs::write(&key_path, csr_key.serialize_pem()).expect("write key");
    let key_arg = key_path.display().to_string();
    let (log, out) = run_libest(
        &ts,
        &bin,
        &[
            "-q",
            "-u",
            &reference,
            "-h",
            &code,
            "--common-name",
            "Laptop",
            "-x",
            &key_arg,
        ],
    )
    .await;
    let files = files_in(out.path());
    let cert_file = files
        .iter()
        .find(|f| f.starts_with("cert-") && f.ends_with(".pkcs7"))
        .unwrap_or_else(|| panic!("no certificate written: {files:?}\n{log}"));
    let key_file = files
        .iter()
        .find(|f| f.starts_with("key-"))
        .unwrap_or_else(|| panic!("no key written: {files:?}\n{log}"));
    let cert = pkcs7_certs(&std::fs::read(out.path().join(cert_file)).expect("cert")).remove(0);
    assert_eq!(
        subject_values(&cert),
        vec![
            (rfc4519::O, DEMO_ORG.to_owned()),
            (OI, format!("NTRDK-{DEMO_CVR}")),
            (rfc4519::CN, "Laptop".to_owned()),
        ]
    );
    let spki = &cert.tbs_certificate.subject_public_key_info;
    assert_eq!(spki.algorithm.oid, rfc5912::RSA_ENCRYPTION);
    assert_ne!(*spki, spki_of(&csr_key), "the CSR's key is not certified");
    let key = std::fs::read(out.path().join(key_file)).expect("key");
    assert!(key.len() >= 256, "{key_file}: {} bytes", key.len());
    ts.shutdown().await;
}

/// libest's csrattrs (`-a`): it cannot send a label, so it asks anonymously
/// and writes the answer's base64 to `csr-0-0.base64`.
#[tokio::test]
async fn libest_csrattrs_learns_the_subject_convention() {
    let Some(bin) = libest() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start(dir.path()).await;
    let (log, out) = run_libest(&ts, &bin, &["-a"]).await;
    assert!(!log.contains("failed"), "{log}");
    let body = std::fs::read(out.path().join("csr-0-0.base64")).unwrap_or_default();
    assert!(!body.is_empty(), "no attributes written: {log}");
    let (oids, _) = csr_attrs(&body);
    for required in [rfc4519::CN, rfc4519::O, OI] {
        assert!(oids.contains(&required), "{required} in {oids:?}");
    }
    ts.shutdown().await;
}
