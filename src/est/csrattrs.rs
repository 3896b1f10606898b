//! `GET [/<label>]/csrattrs` (RFC 7030 4.5): what the profile expects in a
//! CSR, namely the key algorithms it accepts, the subject attributes it
//! requires and, for a profile requiring proof-of-possession linking, the
//! challengePassword OID (RFC 7030 4.5.2: how a client learns it must link).
//! Without a label and without a profile of the caller's own (anonymous
//! clients, libest among them, which cannot send a label), the answer is
//! what holds for every organisation: the key algorithms estd accepts at all,
//! and CN, O and organizationIdentifier as the subject's attributes.
//!
//! A client that asks for it gets the answer as an RFC 9908 template
//! instead: a CertificationRequestInfoTemplate naming the subject (with the
//! values the CSR must carry), the key type, and the extensions the
//! certificate will carry with their values, from which it can build exactly
//! the CSR the profile wants. RFC 9908 defines no way for a client to say it
//! understands templates (it lets servers send both forms side by side), so
//! estd uses HTTP content negotiation on the one resource: a request with
//! `Accept: application/csrattrs; template=rfc9908` gets the template, every
//! other request today's answer, unchanged for the clients in the field
//! (libest, GlobalSign's est client), which have never seen the template
//! attribute. The answer carries `Vary: Accept`.

use bytes::Bytes;
use const_oid::db::{rfc4519, rfc5912, rfc8410};
use const_oid::AssociatedOid;
use der::asn1::{BitString, ObjectIdentifier, OctetString, SetOfVec, Uint};
use der::{Any, Encode};
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::Extension;

use super::codec::{
    self, AttrOrOid, CertificationRequestInfoTemplate, ExtensionTemplate, SingleAttributeTemplate,
    SubjectPublicKeyInfoTemplate, ID_AA_CERTIFICATION_REQUEST_INFO_TEMPLATE,
    ID_AA_EXTENSION_REQ_TEMPLATE,
};
use super::{base64_response, certificate_principal, require_method, EstError};
use crate::app::App;
use crate::ca::csr::{SubjectKey, CHALLENGE_PASSWORD};
use crate::ca::KEY_USAGE_CRITICAL;
use crate::http::Connection;
use crate::model::{KeyAlgorithm, KeyPolicy, Profile};
use crate::policy::{self, CsrTemplate, ORGANIZATION_IDENTIFIER};
use crate::service;

/// Content type of `/csrattrs`.
pub const CONTENT_TYPE: &str = "application/csrattrs";

const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// The `Accept` media-type parameter that asks for the RFC 9908 template.
pub const TEMPLATE_PARAMETER: (&str, &str) = ("template", "rfc9908");

/// Answers for the label's profile, or the caller's organisation's default.
pub async fn handle<B>(
    app: &App,
    conn: &Connection,
    req: &Request<B>,
    label: Option<&str>,
) -> Result<Response<Full<Bytes>>, EstError> {
    require_method(req, http::Method::GET, "GET")?;
    let template = wants_template(req.headers());
    // Without a label the profile depends on who asks; with one, who asks
    // decides only whether a template names the organisation's values.
    let cvr = if label.is_none() || template {
        certificate_principal(app, conn)
            .await
            .ok()
            .map(|p| p.cvr().to_owned())
    } else {
        None
    };
    let services = app.services();
    let lookup_cvr = if label.is_some() {
        None
    } else {
        cvr.as_deref()
    };
    let profile = service::csrattrs_profile(services, label, lookup_cvr)?;
    if label.is_some() && profile.is_none() {
        return Ok(no_content());
    }
    let der = if template {
        let (csr_template, linking) = match &profile {
            Some(profile) => {
                // O and organizationIdentifier are filled in only for the
                // organisation's own callers: a label alone names no one.
                let org = match cvr.as_deref() {
                    Some(c) if c == profile.cvr => service::csrattrs_organisation(services, c)?,
                    _ => None,
                };
                let t =
                    policy::csr_template(profile, org.as_ref(), &app.config.certificate_policies)
                        .map_err(|e| EstError::Service(e.into()))?;
                (t, profile.require_pop_linking)
            }
            None => (policy::common_csr_template(), false),
        };
        template_attributes(&csr_template, linking)
    } else {
        match &profile {
            Some(profile) => attributes(profile),
            None => common_attributes(),
        }
    }
    .map_err(EstError::Encoding)?;
    let mut resp = base64_response(
        CONTENT_TYPE,
        Bytes::from(codec::encode_base64_wrapped(&der)),
    );
    // The answer depends on Accept: caches must not hand one form to the other.
    resp.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    Ok(resp)
}

/// Whether `Accept` asks for the template: a media range
/// `application/csrattrs` with the parameter `template=rfc9908` (names and
/// values in any case, the value possibly quoted).
pub fn wants_template(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default();
            media.eq_ignore_ascii_case(CONTENT_TYPE)
                && parts.any(|param| {
                    param.split_once('=').is_some_and(|(name, value)| {
                        name.trim().eq_ignore_ascii_case(TEMPLATE_PARAMETER.0)
                            && value
                                .trim()
                                .trim_matches('"')
                                .eq_ignore_ascii_case(TEMPLATE_PARAMETER.1)
                    })
                })
        })
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

/// The CsrAttrs DER of the template answer: one
/// id-aa-certificationRequestInfoTemplate attribute, and for a profile
/// requiring proof-of-possession linking the challengePassword OID beside
/// it (a template's attributes carry values, and this one's value is the
/// client's to compute on its connection).
pub fn template_attributes(
    template: &CsrTemplate,
    require_pop_linking: bool,
) -> Result<Vec<u8>, der::Error> {
    let cri = certification_request_info_template(template)?;
    let mut entries = vec![AttrOrOid::Attribute(
        ID_AA_CERTIFICATION_REQUEST_INFO_TEMPLATE,
        vec![Any::encode_from(&cri)?],
    )];
    if require_pop_linking {
        entries.push(AttrOrOid::Oid(CHALLENGE_PASSWORD));
    }
    codec::csr_attrs(&entries)
}

/// The CertificationRequestInfoTemplate for `template`.
pub fn certification_request_info_template(
    template: &CsrTemplate,
) -> Result<CertificationRequestInfoTemplate, der::Error> {
    let mut subject = Vec::with_capacity(template.subject.len());
    for (attr_type, value) in &template.subject {
        let value = value
            .as_deref()
            .map(|v| Any::new(der::Tag::Utf8String, v.as_bytes()))
            .transpose()?;
        subject.push(SetOfVec::try_from(vec![SingleAttributeTemplate {
            attr_type: *attr_type,
            value,
        }])?);
    }
    let subject_pk_info = template.key.map(key_template).transpose()?;
    let mut attributes = SetOfVec::new();
    if let Some(ext) = &template.extensions {
        // Criticality as the CA writes them.
        let given = [
            value_extension(&ext.key_usage, KEY_USAGE_CRITICAL)?,
            value_extension(&ext.extended_key_usage, false)?,
            value_extension(&ext.policies, false)?,
        ];
        let attribute = if template.san_to_fill_in {
            // One value is the client's: the template form of the request.
            let mut all: Vec<ExtensionTemplate> = given
                .into_iter()
                .map(|e| ExtensionTemplate {
                    extn_id: e.extn_id,
                    critical: e.critical,
                    extn_value: Some(e.extn_value),
                })
                .collect();
            all.push(ExtensionTemplate {
                extn_id: SubjectAltName::OID,
                critical: false,
                extn_value: None,
            });
            Attribute {
                oid: ID_AA_EXTENSION_REQ_TEMPLATE,
                values: SetOfVec::try_from(vec![Any::encode_from(&all)?])?,
            }
        } else {
            // Every value given: the plain extension request (RFC 9908 asks
            // for id-ExtensionReq whenever no value is left open).
            Attribute {
                oid: rfc5912::ID_EXTENSION_REQ,
                values: SetOfVec::try_from(vec![Any::encode_from(&given.to_vec())?])?,
            }
        };
        attributes.insert(attribute)?;
    }
    Ok(CertificationRequestInfoTemplate {
        version: 0,
        subject: Some(subject),
        subject_pk_info,
        attributes,
    })
}

fn value_extension<T: AssociatedOid + Encode>(
    value: &T,
    critical: bool,
) -> Result<Extension, der::Error> {
    Ok(Extension {
        extn_id: T::OID,
        critical,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

/// The key part of the template: the algorithm (and curve); for RSA also a
/// dummy key of the wanted modulus length, which is how RFC 9908 asks for a
/// size.
fn key_template(key: SubjectKey) -> Result<SubjectPublicKeyInfoTemplate, der::Error> {
    let ec = |curve: ObjectIdentifier| -> Result<AlgorithmIdentifierOwned, der::Error> {
        Ok(AlgorithmIdentifierOwned {
            oid: rfc5912::ID_EC_PUBLIC_KEY,
            parameters: Some(Any::encode_from(&curve)?),
        })
    };
    Ok(match key {
        SubjectKey::P256 => SubjectPublicKeyInfoTemplate {
            algorithm: ec(SECP256R1)?,
            subject_public_key: None,
        },
        SubjectKey::P384 => SubjectPublicKeyInfoTemplate {
            algorithm: ec(SECP384R1)?,
            subject_public_key: None,
        },
        SubjectKey::Ed25519 => SubjectPublicKeyInfoTemplate {
            algorithm: AlgorithmIdentifierOwned {
                oid: rfc8410::ID_ED_25519,
                parameters: None,
            },
            subject_public_key: None,
        },
        SubjectKey::Rsa { bits } => SubjectPublicKeyInfoTemplate {
            algorithm: AlgorithmIdentifierOwned {
                oid: rfc5912::RSA_ENCRYPTION,
                parameters: Some(Any::null()),
            },
            subject_public_key: Some(BitString::from_bytes(&dummy_rsa_key(bits)?)?),
        },
    })
}

/// An RSAPublicKey whose modulus has exactly `bits` bits (top bit set, odd)
/// and exponent 65537: a size, not a key.
fn dummy_rsa_key(bits: u32) -> Result<Vec<u8>, der::Error> {
    let len = usize::try_from(bits.div_ceil(8)).map_err(|_| der::ErrorKind::Overflow)?;
    let mut modulus = vec![0u8; len.max(1)];
    let top = bits.saturating_sub(1) % 8;
    modulus[0] = 1 << top;
    if let Some(last) = modulus.last_mut() {
        *last |= 1;
    }
    let fields = [
        Any::encode_from(&Uint::new(&modulus)?)?,
        Any::encode_from(&Uint::new(&[1, 0, 1])?)?,
    ];
    fields.to_vec().to_der()
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Decode;

    #[test]
    fn only_an_accept_naming_the_template_gets_it() {
        let asks = |values: &[&str]| {
            let mut h = http::HeaderMap::new();
            for v in values {
                h.append(header::ACCEPT, HeaderValue::from_str(v).expect("header"));
            }
            wants_template(&h)
        };
        for yes in [
            &["application/csrattrs; template=rfc9908"][..],
            &["Application/CSRattrs;Template=\"RFC9908\""],
            &["text/plain, application/csrattrs; q=0.9; template=rfc9908"],
            &["*/*", "application/csrattrs;template=rfc9908"],
        ] {
            assert!(asks(yes), "{yes:?}");
        }
        for no in [
            &[][..],
            &["*/*"],
            &["application/csrattrs"],
            &["application/csrattrs; template=rfc7030"],
            &["application/pkcs10; template=rfc9908"],
            &["application/csrattrs; templates=rfc9908"],
        ] {
            assert!(!asks(no), "{no:?}");
        }
    }

    #[test]
    fn the_rsa_size_is_a_dummy_modulus_of_exactly_that_many_bits() {
        for bits in [2048u32, 3072, 4096, 2049] {
            let der = dummy_rsa_key(bits).expect("key");
            let fields: Vec<Uint> = Vec::from_der(&der).expect("RSAPublicKey");
            let modulus = fields[0].as_bytes();
            let len = modulus.len() * 8 - modulus[0].leading_zeros() as usize;
            assert_eq!(len, bits as usize);
            assert_eq!(fields[1].as_bytes(), &[1, 0, 1]);
        }
    }
}
