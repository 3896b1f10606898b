//! The OCSP responder: `public::decode_ocsp_get` (the GET form) and
//! `Revocation::ocsp` (request parsing, issuer matching, store look-up,
//! response cache, signing), on a real `App` with a CA and a sled store in a
//! scratch folder. One of its certificates is revoked, so that good, revoked
//! and unknown answers are all reachable.
//!
//! Input: a DER OCSPRequest (the POST form). Each input is tried as it is;
//! as the path of a GET if it is text; and, if it parses, rewritten so that
//! every CertID names this run's issuing CA (its hashes are of keys made at
//! start-up, which no committed seed can know) and a one-byte serial k names
//! the k-th certificate in the store.
//!
//! Checks: no panic; every answer is a DER OCSPResponse; an answer is
//! `successful` exactly when the request parses with 1 to 16 CertIDs.

#![no_main]

use std::sync::{Arc, OnceLock};

use aws_lc_rs::digest;
use der::asn1::OctetString;
use der::{Decode, Encode};
use estd::ca::ocsp::MAX_REQUESTS;
use estd::public::decode_ocsp_get;
use estd::model::{now_unix, RevocationReason, Serial};
use estd::App;
use estd_fuzz::{config, scratch_dir};
use libfuzzer_sys::fuzz_target;
use x509_cert::certificate::Certificate;
use x509_ocsp::{OcspRequest, OcspResponse, OcspResponseStatus};

struct Fixture {
    app: Arc<App>,
    /// SHA-1 and SHA-256 of the issuing CA's name and key.
    sha1: (Vec<u8>, Vec<u8>),
    sha256: (Vec<u8>, Vec<u8>),
    serials: Vec<Serial>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = scratch_dir("ocsp");
        let layer = format!(
            "[paths]\ncerts_dir = \"{}\"\ndata_dir = \"{}\"\n",
            dir.join("certs").display(),
            dir.join("data").display()
        );
        let app = App::init(config(&layer)).expect("app").app;
        let issuing = Certificate::from_der(app.ca.active().issuing_der()).expect("issuing CA");
        let name = issuing.tbs_certificate.subject.to_der().expect("name");
        let key = issuing
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes()
            .to_vec();
        let hash = |alg: &'static digest::Algorithm, data: &[u8]| {
            digest::digest(alg, data).as_ref().to_vec()
        };
        let mut serials: Vec<Serial> = app
            .store
            .certs()
            .map(|c| c.expect("stored cert").serial)
            .collect();
        serials.sort();
        let revoked = serials.first().copied().expect("a stored certificate");
        app.store
            .revoke_cert(&revoked, RevocationReason::SuspectedMisuse, now_unix())
            .expect("store")
            .expect("revocable");
        app.revocation
            .after_revocation(&revoked, &app.store, &app.metrics)
            .expect("after revocation");
        Fixture {
            sha1: (
                hash(&digest::SHA1_FOR_LEGACY_USE_ONLY, &name),
                hash(&digest::SHA1_FOR_LEGACY_USE_ONLY, &key),
            ),
            sha256: (hash(&digest::SHA256, &name), hash(&digest::SHA256, &key)),
            app,
            serials,
        }
    })
}

/// `der` with every CertID pointed at this run's issuer and stored serials.
fn rewrite(f: &Fixture, der: &[u8]) -> Option<Vec<u8>> {
    let mut req = OcspRequest::from_der(der).ok()?;
    for r in req.tbs_request.request_list.iter_mut() {
        let id = &mut r.req_cert;
        let (name, key) = if id.hash_algorithm.oid.to_string() == "2.16.840.1.101.3.4.2.1" {
            &f.sha256
        } else {
            &f.sha1
        };
        id.issuer_name_hash = OctetString::new(name.clone()).ok()?;
        id.issuer_key_hash = OctetString::new(key.clone()).ok()?;
        if let [k] = id.serial_number.as_bytes() {
            if let Some(serial) = f.serials.get(usize::from(*k).wrapping_sub(1)) {
                id.serial_number = x509_cert::serial_number::SerialNumber::new(&serial.0).ok()?;
            }
        }
    }
    req.to_der().ok()
}

fn answer(f: &Fixture, der: &[u8]) {
    let body = f.app.revocation.ocsp(&f.app.store, der).body;
    let resp = OcspResponse::from_der(&body).expect("the answer is an OCSPResponse");
    let parses = OcspRequest::from_der(der).is_ok_and(|r| {
        let n = r.tbs_request.request_list.len();
        (1..=MAX_REQUESTS).contains(&n)
    });
    let successful = resp.response_status == OcspResponseStatus::Successful;
    assert_eq!(parses, successful, "{:?}", resp.response_status);
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    answer(f, data);
    if let Ok(path) = std::str::from_utf8(data) {
        if let Some(der) = decode_ocsp_get(path) {
            answer(f, &der);
        }
    }
    if let Some(der) = rewrite(f, data) {
        answer(f, &der);
    }
});
