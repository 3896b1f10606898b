//! What a certificate carries, and how a client learns it (issue 15, items
//! 2, 3 and 11): seal certificates carry contentCommitment and the seal
//! policy, organisation and user certificates can encrypt (keyAgreement for
//! EC keys, keyEncipherment for RSA), every certificate carries its kind's
//! configured policy OID, and `/csrattrs` answers a client that asks for it
//! with an RFC 9908 template from which it builds the CSR the profile wants.
//! Against a real estd on loopback with real TLS and real CSRs.

use const_oid::db::{rfc4519, rfc5912};
use const_oid::AssociatedOid;
use der::asn1::ObjectIdentifier;
use der::flagset::FlagSet;
use der::{Any, Decode, Encode, Tag, Tagged};
use estd::est::codec::{
    CertificationRequestInfoTemplate, ExtensionTemplate, ID_AA_CERTIFICATION_REQUEST_INFO_TEMPLATE,
    ID_AA_EXTENSION_REQ_TEMPLATE,
};
use estd::model::{CertKind, KeyAlgorithm, Profile};
use estd_testkit::*;
use x509_cert::certificate::Certificate;
use x509_cert::ext::pkix::{
    CertificatePolicies, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectAltName,
};
use x509_cert::ext::Extension;

/// A seal policy of the operator's own, to see that the configuration is what
/// certificates carry; the other kinds keep the shipped placeholders.
const SEAL_POLICY: &str = "1.2.208.169.1.1.1.9";
const CONFIG: &str = "[certificate_policies]\nseal = \"1.2.208.169.1.1.1.9\"\n";
const SYSTEM_POLICY: &str = "1.3.6.1.5.5.7.13.1";
const ORGANISATION_POLICY: &str = "1.3.6.1.5.5.7.13.2";
const USER_POLICY: &str = "1.3.6.1.5.5.7.13.3";
const TEMPLATE_ACCEPT: (&str, &str) = ("accept", "application/csrattrs; template=rfc9908");

/// An API profile of the demo organisation enrolled by the demo IdM system.
fn api_profile(ts: &TestServer, label: &str, kind: CertKind, seal: bool) -> Profile {
    let p = Profile {
        kind,
        seal,
        email: (kind == CertKind::User).then(|| "jens@demo.example".into()),
        ..Profile::system(DEMO_CVR, label, label)
    };
    ts.app().store.put_profile(&p).expect("profile");
    p
}

/// Lets the demo organisation have seals.
fn allow_seal(ts: &TestServer) {
    let mut org = demo_org(ts.app());
    org.allow_seal = true;
    ts.app().store.put_org(&org).expect("organisation");
}

fn extension(cert: &Certificate, oid: ObjectIdentifier) -> Option<Extension> {
    cert.tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == oid)
        .cloned()
}

fn key_usage(cert: &Certificate) -> FlagSet<KeyUsages> {
    let e = extension(cert, KeyUsage::OID).expect("key usage");
    KeyUsage::from_der(e.extn_value.as_bytes()).expect("ku").0
}

/// The policy OIDs a certificate carries.
fn policies(cert: &Certificate) -> Vec<String> {
    let e = extension(cert, CertificatePolicies::OID).expect("certificate policies");
    CertificatePolicies::from_der(e.extn_value.as_bytes())
        .expect("policies")
        .0
        .iter()
        .map(|p| p.policy_identifier.to_string())
        .collect()
}

/// Enrols a fresh key of `alg` named `cn` under `label`, with `params` changed by `more`.
async fn enrol(
    c: &mut Client,
    label: &str,
    cn: &str,
    alg: &'static rcgen::SignatureAlgorithm,
    more: impl FnOnce(&mut rcgen::CertificateParams),
) -> Resp {
    let key = rcgen::KeyPair::generate_for(alg).expect("key");
    let mut params = csr_params(DEMO_ORG, DEMO_CVR, cn);
    more(&mut params);
    let csr = params.serialize_request(&key).expect("csr").der().to_vec();
    c.enroll(&format!("/.well-known/est/{label}/simpleenroll"), &csr)
        .await
}

/// A custom requested extension of `value` (rcgen writes it into the CSR's
/// extension request).
fn asked<T: AssociatedOid + Encode>(value: &T) -> rcgen::CustomExtension {
    let arcs: Vec<u64> = T::OID.arcs().map(u64::from).collect();
    rcgen::CustomExtension::from_oid_content(&arcs, value.to_der().expect("der"))
}

fn policy_asking(oid: &str) -> CertificatePolicies {
    CertificatePolicies(vec![x509_cert::ext::pkix::certpolicy::PolicyInformation {
        policy_identifier: ObjectIdentifier::new_unwrap(oid),
        policy_qualifiers: None,
    }])
}

#[tokio::test]
async fn seal_and_encryption_decide_key_usage_and_every_kind_carries_its_policy() {
    use KeyUsages::{
        DigitalSignature as Ds, KeyAgreement as Ka, KeyEncipherment as Ke, NonRepudiation as Cc,
    };
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start_with(dir.path(), CONFIG).await;
    allow_seal(&ts);
    api_profile(&ts, "seals", CertKind::Organisation, true);
    api_profile(&ts, "org-certs", CertKind::Organisation, false);
    api_profile(&ts, "people", CertKind::User, false);
    let mut idm = ts.client(Some(&ts.demo_identity())).await;
    let none = |_: &mut rcgen::CertificateParams| {};
    let cases: [(
        &str,
        &'static rcgen::SignatureAlgorithm,
        FlagSet<KeyUsages>,
        &str,
    ); 9] = [
        (
            "seals",
            &rcgen::PKCS_ECDSA_P256_SHA256,
            Ds | Cc,
            SEAL_POLICY,
        ),
        ("seals", &rcgen::PKCS_RSA_SHA256, Ds | Cc, SEAL_POLICY),
        ("seals", &rcgen::PKCS_ED25519, Ds | Cc, SEAL_POLICY),
        (
            "org-certs",
            &rcgen::PKCS_ECDSA_P256_SHA256,
            Ds | Ka,
            ORGANISATION_POLICY,
        ),
        (
            "org-certs",
            &rcgen::PKCS_ECDSA_P384_SHA384,
            Ds | Ka,
            ORGANISATION_POLICY,
        ),
        (
            "org-certs",
            &rcgen::PKCS_RSA_SHA256,
            Ds | Ke,
            ORGANISATION_POLICY,
        ),
        (
            "org-certs",
            &rcgen::PKCS_ED25519,
            Ds.into(),
            ORGANISATION_POLICY,
        ),
        (
            "people",
            &rcgen::PKCS_ECDSA_P256_SHA256,
            Ds | Ka,
            USER_POLICY,
        ),
        (
            "demo",
            &rcgen::PKCS_ECDSA_P256_SHA256,
            Ds.into(),
            SYSTEM_POLICY,
        ),
    ];
    for (i, (label, alg, want_ku, want_policy)) in cases.into_iter().enumerate() {
        let r = enrol(&mut idm, label, &format!("contents-{i}"), alg, none).await;
        assert_eq!(r.status, 200, "{label} {alg:?}: {}", r.text());
        let cert = issued_cert(&r);
        assert_eq!(key_usage(&cert), want_ku, "{label} {alg:?}");
        assert_eq!(policies(&cert), vec![want_policy.to_owned()], "{label}");
        let eku = extension(&cert, ExtendedKeyUsage::OID).expect("eku");
        let eku = ExtendedKeyUsage::from_der(eku.extn_value.as_bytes()).expect("eku");
        assert!(eku.0.contains(&const_oid::db::rfc5280::ID_KP_CLIENT_AUTH));
    }

    // A CSR may ask for what the profile gives: keyAgreement on an
    // organisation certificate, contentCommitment on a seal, the profile's policy.
    let ku = |f: FlagSet<KeyUsages>| asked(&KeyUsage(f));
    let ask = |exts: Vec<rcgen::CustomExtension>| {
        move |p: &mut rcgen::CertificateParams| p.custom_extensions = exts
    };
    let p256 = &rcgen::PKCS_ECDSA_P256_SHA256;
    for (label, exts) in [
        (
            "org-certs",
            vec![ku(Ds | Ka), asked(&policy_asking(ORGANISATION_POLICY))],
        ),
        (
            "seals",
            vec![ku(Ds | Cc), asked(&policy_asking(SEAL_POLICY))],
        ),
    ] {
        let r = enrol(&mut idm, label, "asks-for-its-own", p256, ask(exts)).await;
        assert_eq!(r.status, 200, "{label}: {}", r.text());
    }
    // Beyond it: refused, naming what. contentCommitment is the seal's, a
    // seal does not encrypt, and a policy is the kind's own.
    for (label, exts, why) in [
        (
            "org-certs",
            vec![ku(Ds | Cc)],
            "keyUsage beyond the profile's",
        ),
        ("seals", vec![ku(Ds | Ka)], "keyUsage beyond the profile's"),
        (
            "org-certs",
            vec![asked(&policy_asking(SEAL_POLICY))],
            "certificatePolicies 1.2.208.169.1.1.1.9 (the profile's certificates carry \
             1.3.6.1.5.5.7.13.2)",
        ),
    ] {
        let r = enrol(&mut idm, label, "asks-for-more", p256, ask(exts)).await;
        assert_refused(&r, 403, why);
    }

    // A seal is an organisation certificate's: the admin API refuses it on
    // another kind, and a profile stored with it anyway issues nothing.
    let (status, body) = ts
        .admin(
            "POST",
            "/profiles",
            Some(serde_json::json!({
                "cvr": DEMO_CVR, "name": "System seal", "kind": "system", "seal": true,
                "contact": {"name": "Karen Hansen", "email": "karen@demo.example"},
                "identification": "api", "issuance": "est", "est_label": "system-seal",
            })),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.to_string()
            .contains("only organisation certificates can be seals"),
        "{body}"
    );
    api_profile(&ts, "stored-system-seal", CertKind::System, true);
    let r = enrol(&mut idm, "stored-system-seal", "x", p256, none).await;
    assert_refused(&r, 403, "only organisation certificates can be seals");
    ts.shutdown().await;
}

/// The CertificationRequestInfoTemplate in a template answer, and the bare
/// OIDs beside it.
fn template_of(body: &[u8]) -> (CertificationRequestInfoTemplate, Vec<ObjectIdentifier>) {
    let der = estd::est::codec::decode_body(body, false).expect("base64");
    let entries: Vec<Any> = Vec::from_der(&der).expect("SEQUENCE OF AttrOrOID");
    let (mut template, mut oids) = (None, Vec::new());
    for e in entries {
        match e.tag() {
            Tag::ObjectIdentifier => oids.push(e.decode_as().expect("oid")),
            Tag::Sequence => {
                let a: x509_cert::attr::Attribute = e.decode_as().expect("attribute");
                assert_eq!(a.oid, ID_AA_CERTIFICATION_REQUEST_INFO_TEMPLATE);
                assert_eq!(a.values.len(), 1, "exactly one template");
                template = Some(
                    a.values
                        .get(0)
                        .expect("value")
                        .decode_as()
                        .expect("template"),
                );
            }
            other => panic!("unexpected entry {other}"),
        }
    }
    (template.expect("a template"), oids)
}

/// The subject of a template: (type, value as text if given).
fn template_subject(
    t: &CertificationRequestInfoTemplate,
) -> Vec<(ObjectIdentifier, Option<String>)> {
    t.subject
        .iter()
        .flatten()
        .flat_map(|rdn| rdn.iter())
        .map(|a| {
            let value = a
                .value
                .as_ref()
                .map(|v| String::from_utf8(v.value().to_vec()).expect("UTF-8 value"));
            (a.attr_type, value)
        })
        .collect()
}

/// The template's extension request: (extension templates, whether it is
/// the template form).
fn template_extensions(t: &CertificationRequestInfoTemplate) -> (Vec<ExtensionTemplate>, bool) {
    assert_eq!(t.attributes.len(), 1, "one extension request");
    let a = t.attributes.get(0).expect("attribute");
    let value = a.values.get(0).expect("value");
    if a.oid == ID_AA_EXTENSION_REQ_TEMPLATE {
        (value.decode_as().expect("ExtensionTemplates"), true)
    } else {
        assert_eq!(a.oid, rfc5912::ID_EXTENSION_REQ);
        let given: Vec<Extension> = value.decode_as().expect("Extensions");
        let as_templates = given
            .into_iter()
            .map(|e| ExtensionTemplate {
                extn_id: e.extn_id,
                critical: e.critical,
                extn_value: Some(e.extn_value),
            })
            .collect();
        (as_templates, false)
    }
}

#[tokio::test]
async fn a_csr_built_from_the_csrattrs_template_gets_the_certificate_it_describes() {
    let dir = tempfile::tempdir().expect("tmp");
    let ts = TestServer::start_with(dir.path(), CONFIG).await;
    allow_seal(&ts);
    api_profile(&ts, "seals", CertKind::Organisation, true);
    let mut idm = ts.client(Some(&ts.demo_identity())).await;

    // Today's answer for everyone who does not ask: no template attribute.
    let legacy = idm.get("/.well-known/est/seals/csrattrs").await;
    assert_eq!(legacy.status, 200);
    assert_eq!(legacy.header("vary"), Some("Accept"));
    let der = estd::est::codec::decode_body(&legacy.body, false).expect("base64");
    let entries: Vec<Any> = Vec::from_der(&der).expect("CsrAttrs");
    let legacy_types: Vec<ObjectIdentifier> = entries
        .iter()
        .map(|e| match e.tag() {
            Tag::Sequence => {
                e.decode_as::<x509_cert::attr::Attribute>()
                    .expect("attribute")
                    .oid
            }
            _ => e.decode_as().expect("oid"),
        })
        .collect();
    assert!(legacy_types.contains(&rfc5912::ID_EC_PUBLIC_KEY));
    assert!(!legacy_types.contains(&ID_AA_CERTIFICATION_REQUEST_INFO_TEMPLATE));

    // The template, to the organisation's own system.
    let r = idm
        .send(
            "GET",
            "/.well-known/est/seals/csrattrs",
            &[TEMPLATE_ACCEPT],
            vec![],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/csrattrs"));
    assert_eq!(r.header("vary"), Some("Accept"));
    let (template, beside) = template_of(&r.body);
    assert!(beside.is_empty(), "no linking on this profile: {beside:?}");
    assert_eq!(template.version, 0);
    let oi = ObjectIdentifier::new_unwrap("2.5.4.97");
    assert_eq!(
        template_subject(&template),
        vec![
            (rfc4519::C, Some("DK".to_owned())),
            (rfc4519::O, Some(DEMO_ORG.to_owned())),
            (oi, Some(format!("NTRDK-{DEMO_CVR}"))),
            (rfc4519::CN, None),
        ]
    );
    let key = template.subject_pk_info.as_ref().expect("key type");
    assert_eq!(key.algorithm.oid, rfc5912::ID_EC_PUBLIC_KEY);
    assert_eq!(
        key.algorithm
            .parameters
            .as_ref()
            .expect("curve")
            .decode_as::<ObjectIdentifier>()
            .expect("oid"),
        ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7")
    );
    assert!(key.subject_public_key.is_none());
    let (wanted, is_template) = template_extensions(&template);
    assert!(!is_template, "every value given: a plain id-ExtensionReq");
    let ids: Vec<ObjectIdentifier> = wanted.iter().map(|e| e.extn_id).collect();
    assert_eq!(
        ids,
        vec![
            KeyUsage::OID,
            ExtendedKeyUsage::OID,
            CertificatePolicies::OID
        ]
    );

    // A CSR exactly as the template says: its subject with CN filled in, a
    // P-256 key, and its extensions.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    for (oid, value) in template_subject(&template) {
        let arcs: Vec<u64> = oid.arcs().map(u64::from).collect();
        let value = value.unwrap_or_else(|| "sealed by template".to_owned());
        params
            .distinguished_name
            .push(rcgen::DnType::CustomDnType(arcs), value);
    }
    for e in &wanted {
        let arcs: Vec<u64> = e.extn_id.arcs().map(u64::from).collect();
        let value = e.extn_value.as_ref().expect("value given");
        let mut custom = rcgen::CustomExtension::from_oid_content(&arcs, value.as_bytes().to_vec());
        custom.set_criticality(e.critical);
        params.custom_extensions.push(custom);
    }
    let csr = params.serialize_request(&key).expect("csr").der().to_vec();
    let r = idm
        .enroll("/.well-known/est/seals/simpleenroll", &csr)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let cert = issued_cert(&r);
    for e in &wanted {
        let got = extension(&cert, e.extn_id).expect("the certificate carries it");
        assert_eq!(got.critical, e.critical, "{}", e.extn_id);
        assert_eq!(
            Some(&got.extn_value),
            e.extn_value.as_ref(),
            "{}",
            e.extn_id
        );
    }
    assert_eq!(policies(&cert), vec![SEAL_POLICY.to_owned()]);
    let asked = x509_cert::request::CertReq::from_der(&csr).expect("csr");
    assert_eq!(cert.tbs_certificate.subject, asked.info.subject);
    assert_eq!(
        estd::policy::name_values(&cert.tbs_certificate.subject).expect("names")[3],
        (rfc4519::CN, "sealed by template".to_owned())
    );

    // A profile with DNS names leaves the subjectAltName to the client
    // (id-aa-extensionReqTemplate); an RSA-first profile asks for the size
    // with a dummy key; a label alone names no organisation's values.
    let mut anon = ts.client(None).await;
    let mut demo = profile(&ts, "demo");
    demo.key_policy.allowed = vec![KeyAlgorithm::Rsa, KeyAlgorithm::P256];
    demo.key_policy.min_rsa_bits = 3072;
    demo.require_pop_linking = true;
    ts.app().store.put_profile(&demo).expect("profile");
    let r = anon
        .send(
            "GET",
            "/.well-known/est/demo/csrattrs",
            &[TEMPLATE_ACCEPT],
            vec![],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (template, beside) = template_of(&r.body);
    assert_eq!(
        beside,
        vec![ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.7")],
        "challengePassword beside the template, for linking"
    );
    let subject = template_subject(&template);
    assert_eq!(subject[1], (rfc4519::O, None));
    assert_eq!(subject[2], (oi, None));
    let key = template.subject_pk_info.as_ref().expect("key type");
    assert_eq!(key.algorithm.oid, rfc5912::RSA_ENCRYPTION);
    let dummy = key
        .subject_public_key
        .as_ref()
        .expect("dummy key")
        .raw_bytes();
    let fields: Vec<der::asn1::Uint> = Vec::from_der(dummy).expect("RSAPublicKey");
    assert_eq!(fields[0].as_bytes().len() * 8, 3072, "a 3072-bit modulus");
    let (wanted, is_template) = template_extensions(&template);
    assert!(is_template, "the subjectAltName is the client's to fill in");
    let san = wanted
        .iter()
        .find(|e| e.extn_id == SubjectAltName::OID)
        .expect("subjectAltName");
    assert!(san.extn_value.is_none());
    let ku = wanted
        .iter()
        .find(|e| e.extn_id == KeyUsage::OID)
        .and_then(|e| e.extn_value.as_ref())
        .expect("key usage");
    assert_eq!(
        KeyUsage::from_der(ku.as_bytes()).expect("ku").0,
        KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment,
        "a system certificate's, for the template's RSA key"
    );
    ts.shutdown().await;
}
