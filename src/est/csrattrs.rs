//! `GET [/<label>]/csrattrs` (RFC 7030 4.5): what the profile expects in a
//! CSR, namely the key algorithms it accepts, the subject attributes it
//! requires and, for a profile requiring proof-of-possession linking, the
//! challengePassword OID (RFC 7030 4.5.2: how a client learns it must link).
//! Without a label and without a profile of the caller's own (anonymous
//! clients, libest among them, which cannot send a label), the answer is
//! what holds for every organisation: the key algorithms estd accepts at all,
//! and CN, O and organizationIdentifier as the subject's attributes.

use bytes::Bytes;
use const_oid::db::{rfc4519, rfc5912, rfc8410};
use der::asn1::ObjectIdentifier;
use der::Any;
use http::{Request, Response, StatusCode};
use http_body_util::Full;

use super::codec::{self, AttrOrOid};
use super::{base64_response, certificate_principal, require_method, EstError};
use crate::app::App;
use crate::ca::csr::CHALLENGE_PASSWORD;
use crate::http::Connection;
use crate::model::{KeyAlgorithm, KeyPolicy, Profile};
use crate::policy::ORGANIZATION_IDENTIFIER;
use crate::service;

/// Content type of `/csrattrs`.
pub const CONTENT_TYPE: &str = "application/csrattrs";

const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// Answers for the label's profile, or the caller's organisation's default.
pub async fn handle<B>(
    app: &App,
    conn: &Connection,
    req: &Request<B>,
    label: Option<&str>,
) -> Result<Response<Full<Bytes>>, EstError> {
    require_method(req, http::Method::GET, "GET")?;
    // Without a label the profile depends on who asks.
    let cvr = match label {
        Some(_) => None,
        None => certificate_principal(app, conn)
            .await
            .ok()
            .map(|p| p.cvr().to_owned()),
    };
    let profile = service::csrattrs_profile(app.services(), label, cvr.as_deref())?;
    if label.is_some() && profile.is_none() {
        return Ok(no_content());
    }
    let der = match &profile {
        Some(profile) => attributes(profile),
        None => common_attributes(),
    }
    .map_err(EstError::Encoding)?;
    Ok(base64_response(
        CONTENT_TYPE,
        Bytes::from(codec::encode_base64_wrapped(&der)),
    ))
}

fn no_content() -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

/// The CsrAttrs DER for a profile.
pub fn attributes(profile: &Profile) -> Result<Vec<u8>, der::Error> {
    attributes_for(&profile.key_policy, profile.require_pop_linking)
}

/// The CsrAttrs DER that holds for every profile: every key algorithm estd
/// accepts at all (a profile may narrow them), RSA from 2048 bits, the
/// subject attributes every certificate carries, and no linking (a property
/// of one profile).
pub fn common_attributes() -> Result<Vec<u8>, der::Error> {
    attributes_for(&KeyPolicy::default(), false)
}

fn attributes_for(
    key_policy: &KeyPolicy,
    require_pop_linking: bool,
) -> Result<Vec<u8>, der::Error> {
    let allowed = &key_policy.allowed;
    let mut entries = Vec::new();
    let curves: Vec<Any> = [
        (KeyAlgorithm::P256, SECP256R1),
        (KeyAlgorithm::P384, SECP384R1),
    ]
    .iter()
    .filter(|(a, _)| allowed.contains(a))
    .map(|(_, oid)| Any::encode_from(oid))
    .collect::<Result<_, _>>()?;
    if !curves.is_empty() {
        entries.push(AttrOrOid::Attribute(rfc5912::ID_EC_PUBLIC_KEY, curves));
        entries.push(AttrOrOid::Oid(rfc5912::ECDSA_WITH_SHA_256));
    }
    if allowed.contains(&KeyAlgorithm::Rsa) {
        let min_bits = key_policy.min_rsa_bits.max(2048);
        entries.push(AttrOrOid::Attribute(
            rfc5912::RSA_ENCRYPTION,
            vec![Any::encode_from(&min_bits)?],
        ));
        entries.push(AttrOrOid::Oid(rfc5912::SHA_256_WITH_RSA_ENCRYPTION));
    }
    if allowed.contains(&KeyAlgorithm::Ed25519) {
        entries.push(AttrOrOid::Oid(rfc8410::ID_ED_25519));
    }
    for oid in [rfc4519::CN, rfc4519::O, ORGANIZATION_IDENTIFIER] {
        entries.push(AttrOrOid::Oid(oid));
    }
    if require_pop_linking {
        entries.push(AttrOrOid::Oid(CHALLENGE_PASSWORD));
    }
    codec::csr_attrs(&entries)
}
