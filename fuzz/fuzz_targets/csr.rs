//! The CSR path: `ca::csr::parse_and_verify` (PKCS#10 parse, key and
//! signature algorithm checks, proof of possession, extensionRequest and
//! challengePassword), then the policy against demo-like profiles
//! (`enroll_template`, `collect_template` for a user order,
//! `reenroll_template`), then signing by a real CA.
//!
//! Input: a DER CSR. Each input is tried twice:
//! - as it is, so that malformed DER, odd keys and algorithms, and bad
//!   signatures are exercised;
//! - re-signed: if it parses as PKCS#10, its public key is replaced by a
//!   fixed key of the same type (P-256 if the type is not one estd accepts)
//!   and it is signed again, so that what the fuzzer does to the subject,
//!   attributes and extensions reaches the policy instead of stopping at the
//!   signature check.
//!
//! Checks: no panic; a re-signed CSR never fails proof of possession; a
//! template the policy accepts keeps the CSR's subject and key, and only
//! names the profile allows; the CA signs every accepted template.

#![no_main]

use std::sync::OnceLock;

use der::asn1::BitString;
use der::{Any, Decode, Encode};
use estd::ca::csr::{classify_key, parse_and_verify, CsrError, SubjectKey, VerifiedCsr};
use estd::ca::Ca;
use estd::config::CertificatePoliciesConfig;
use estd::model::{CertKind, OrderHolder, Organisation, Profile};
use estd::policy;
use estd_fuzz::{config, demo_org, demo_profile, scratch_dir, strict_profile};
use libfuzzer_sys::fuzz_target;
use rcgen::{KeyPair, PublicKeyData, SigningKey};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::certificate::Certificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::request::CertReq;

struct Key {
    pair: KeyPair,
    spki: SubjectPublicKeyInfoOwned,
    sig_alg: AlgorithmIdentifierOwned,
}

struct Fixture {
    ca: Ca,
    policies: CertificatePoliciesConfig,
    org: Organisation,
    demo: Profile,
    strict: Profile,
    user: OrderHolder,
    old: Certificate,
    p256: Key,
    p384: Key,
    rsa: Key,
    ed25519: Key,
}

fn key(alg: &'static rcgen::SignatureAlgorithm, sig_oid: &str, null_params: bool) -> Key {
    let pair = KeyPair::generate_for(alg).expect("key");
    let spki = SubjectPublicKeyInfoOwned::from_der(&pair.subject_public_key_info()).expect("spki");
    Key {
        pair,
        spki,
        sig_alg: AlgorithmIdentifierOwned {
            oid: sig_oid.parse().expect("oid"),
            parameters: null_params.then(Any::null),
        },
    }
}

/// A certificate with the demo subject and a DNS name, to renew.
fn old_certificate(org: &Organisation) -> Certificate {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params =
        rcgen::CertificateParams::new(vec!["dev1.devices.demo.example".into()]).expect("params");
    let dn = &mut params.distinguished_name;
    dn.push(rcgen::DnType::CountryName, "DK");
    dn.push(rcgen::DnType::OrganizationName, org.name.as_str());
    dn.push(
        rcgen::DnType::CustomDnType(vec![2, 5, 4, 97]),
        format!("NTRDK-{}", org.cvr),
    );
    dn.push(rcgen::DnType::CommonName, "dev1");
    let cert = params.self_signed(&key).expect("cert");
    Certificate::from_der(cert.der()).expect("parse cert")
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let cfg = config("");
        let ca = estd::ca::bootstrap::load_or_create_ca(&scratch_dir("csr"), &cfg.ca)
            .expect("CA")
            .ca;
        let org = demo_org();
        Fixture {
            ca,
            policies: cfg.certificate_policies,
            user: OrderHolder::User {
                name: "Jens Hansen".into(),
                email: "jens@demo.example".into(),
                publish: None,
            },
            old: old_certificate(&org),
            org,
            demo: demo_profile(),
            strict: strict_profile(),
            p256: key(&rcgen::PKCS_ECDSA_P256_SHA256, "1.2.840.10045.4.3.2", false),
            p384: key(&rcgen::PKCS_ECDSA_P384_SHA384, "1.2.840.10045.4.3.3", false),
            rsa: key(&rcgen::PKCS_RSA_SHA256, "1.2.840.113549.1.1.11", true),
            ed25519: key(&rcgen::PKCS_ED25519, "1.3.101.112", false),
        }
    })
}

/// `req` with its key replaced by `key` and signed by it, DER.
fn resign(mut req: CertReq, key: &Key) -> Option<Vec<u8>> {
    req.info.public_key = key.spki.clone();
    let info = req.info.to_der().ok()?;
    let signature = key.pair.sign(&info).expect("sign");
    req.algorithm = key.sig_alg.clone();
    req.signature = BitString::from_bytes(&signature).ok()?;
    req.to_der().ok()
}

/// A host name in preferred name syntax (RFC 1034 3.5, RFC 5280 4.2.1.6):
/// letters, digits and hyphens in labels of 1 to 63, at most 253 in all.
fn is_host_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn dns_allowed(profile: &Profile, name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    profile
        .dns_names
        .iter()
        .any(|rule| match rule.strip_prefix('.') {
            Some(suffix) => name.len() > suffix.len() + 1 && name.ends_with(&format!(".{suffix}")),
            None => name == *rule,
        })
}

/// The policy and the CA on a CSR whose signature verified.
fn apply_policy(f: &Fixture, csr: &VerifiedCsr) {
    let _ = policy::display_name(&csr.subject);
    let _ = policy::name_values(&csr.subject);
    for profile in [&f.demo, &f.strict] {
        if let Ok(t) = policy::enroll_template(csr, &f.org, profile, &f.policies) {
            assert_eq!(t.subject, csr.subject);
            for (_, value) in policy::name_values(&t.subject).expect("accepted subject") {
                assert!(
                    estd::model::subject_text_problem(&value).is_none(),
                    "{value:?} let through"
                );
            }
            assert_eq!(t.spki, csr.spki);
            assert!(profile.key_policy.allowed.contains(&csr.key.algorithm()));
            for san in &t.sans {
                match san {
                    GeneralName::DnsName(n) => {
                        assert!(is_host_name(n.as_str()), "{n:?} let through");
                        assert!(dns_allowed(profile, n.as_str()), "{n:?} let through");
                    }
                    GeneralName::IpAddress(_) => assert!(profile.allow_ip_sans),
                    GeneralName::Rfc822Name(m) => {
                        assert_eq!(Some(m.as_str()), profile.email.as_deref())
                    }
                    other => panic!("{other:?} let through"),
                }
            }
            let issued = f.ca.issue(&t).expect("the CA signs an accepted template");
            Certificate::from_der(&issued.der).expect("issued certificate parses");
        }
    }
    let user = policy::effective_profile(&f.strict, &f.user);
    assert_eq!(user.kind, CertKind::User);
    if let Ok(t) = policy::collect_template(csr, &f.org, &user, &f.user, &f.policies) {
        f.ca.issue(&t).expect("the CA signs an accepted order");
    }
    if let Ok(t) = policy::reenroll_template(csr, &f.old, &f.demo, &f.policies) {
        assert_eq!(t.subject, f.old.tbs_certificate.subject);
        f.ca.issue(&t).expect("the CA signs a renewal");
    }
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    if let Ok(csr) = parse_and_verify(data) {
        apply_policy(f, &csr);
    }
    let Ok(req) = CertReq::from_der(data) else {
        return;
    };
    let key = match classify_key(&req.info.public_key) {
        Ok(SubjectKey::P384) => &f.p384,
        Ok(SubjectKey::Rsa { .. }) => &f.rsa,
        Ok(SubjectKey::Ed25519) => &f.ed25519,
        Ok(SubjectKey::P256) | Err(_) => &f.p256,
    };
    let Some(der) = resign(req, key) else {
        return;
    };
    match parse_and_verify(&der) {
        Ok(csr) => apply_policy(f, &csr),
        Err(CsrError::Malformed(_)) => {}
        Err(e) => panic!("a re-signed CSR was refused: {e:?}"),
    }
});
