//! The record codec: every stored value is one version byte, then the record
//! in postcard. postcard writes a struct as its fields in order, without
//! names or a count, so a record's layout is its version; a layout change
//! bumps [`RECORD_VERSION`] and the old layout moves to [`legacy`], from
//! which `migrate.rs` re-encodes stores when they are opened.

use crate::model::{Profile, TokenRecord};
use crate::store::StoreError;

pub(super) use crate::store::record::{audit_at_ms, bounded_event, decode, encode, RecordError};

/// Layouts of stores written before records carried a version (store
/// schema "2": estd b1190f4 and earlier). Read only by the migration.
pub(super) mod legacy {
    use serde::de::DeserializeOwned;

    use super::RecordError;
    use crate::model::{Profile, TokenRecord, UnixSeconds};

    /// A record of a type whose layout did not change: bare postcard.
    pub(in crate::store::sled) fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, RecordError> {
        Ok(postcard::from_bytes(b)?)
    }

    /// A profile, also one stored before `require_pop_linking` existed
    /// (estd 6dd7785 and earlier): the older record is the newer one cut
    /// short, so the missing tail is supplied as the encoding of its default
    /// (off for profiles made before it existed).
    pub(in crate::store::sled) fn profile(b: &[u8]) -> Result<Profile, RecordError> {
        match postcard::from_bytes::<Profile>(b) {
            Err(postcard::Error::DeserializeUnexpectedEnd) => {
                let mut padded = b.to_vec();
                padded.extend(postcard::to_stdvec(&false)?);
                Ok(postcard::from_bytes(&padded)?)
            }
            other => Ok(other?),
        }
    }

    /// An admin token's record, also one stored before tokens had an expiry
    /// and could be revoked (estd 6dd7785 and earlier): the tail is `None,
    /// None` (no expiry, not revoked).
    pub(in crate::store::sled) fn token(b: &[u8]) -> Result<TokenRecord, RecordError> {
        match postcard::from_bytes::<TokenRecord>(b) {
            Err(postcard::Error::DeserializeUnexpectedEnd) => {
                let mut padded = b.to_vec();
                padded.extend(postcard::to_stdvec(&None::<UnixSeconds>)?); // expires_at
                padded.extend(postcard::to_stdvec(&None::<UnixSeconds>)?); // revoked_at
                Ok(postcard::from_bytes(&padded)?)
            }
            other => Ok(other?),
        }
    }
}

/// Decodes a profile.
pub(super) fn decode_profile(b: &[u8]) -> Result<Profile, StoreError> {
    decode(b)
}

/// Decodes an admin token's record.
pub(super) fn decode_token(b: &[u8]) -> Result<TokenRecord, StoreError> {
    decode(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        CertKind, Contact, Identification, Issuance, KeyPolicy, SystemRight, UnixSeconds,
    };
    use serde::Serialize;

    /// `Profile` as it was before `require_pop_linking`, field for field.
    #[derive(Serialize)]
    struct ProfileBeforePopLinking<'a> {
        id: &'a str,
        cvr: &'a str,
        name: &'a str,
        kind: CertKind,
        est_label: &'a str,
        org_default: bool,
        rights: &'a [SystemRight],
        key_policy: &'a KeyPolicy,
        validity_days: u32,
        identification: Identification,
        issuance: Issuance,
        email: &'a Option<String>,
        dns_names: &'a [String],
        allow_ip_sans: bool,
        contact: &'a Option<Contact>,
        p_number: &'a Option<String>,
        se_number: &'a Option<String>,
        seal: bool,
        publish: bool,
        approval_required: bool,
    }

    #[test]
    fn profiles_stored_before_pop_linking_still_read() {
        let p = Profile {
            id: "0b0b7a3e-1111-4222-8333-944445555666".into(),
            cvr: "12345674".into(),
            name: "Old profile".into(),
            kind: CertKind::System,
            est_label: "old".into(),
            org_default: true,
            rights: vec![SystemRight::EstEnroll],
            key_policy: KeyPolicy::default(),
            validity_days: 365,
            identification: Identification::Api,
            issuance: Issuance::Est,
            email: Some("ops@demo.example".into()),
            dns_names: vec![".devices.example".into()],
            allow_ip_sans: true,
            contact: Some(Contact {
                name: "Kontakt".into(),
                email: "kontakt@demo.example".into(),
            }),
            p_number: None,
            se_number: Some("87654311".into()),
            seal: false,
            publish: true,
            approval_required: true,
            require_pop_linking: false,
        };
        let old = postcard::to_stdvec(&ProfileBeforePopLinking {
            id: &p.id,
            cvr: &p.cvr,
            name: &p.name,
            kind: p.kind,
            est_label: &p.est_label,
            org_default: p.org_default,
            rights: &p.rights,
            key_policy: &p.key_policy,
            validity_days: p.validity_days,
            identification: p.identification,
            issuance: p.issuance,
            email: &p.email,
            dns_names: &p.dns_names,
            allow_ip_sans: p.allow_ip_sans,
            contact: &p.contact,
            p_number: &p.p_number,
            se_number: &p.se_number,
            seal: p.seal,
            publish: p.publish,
            approval_required: p.approval_required,
        })
        .expect("encode");
        // serde's default alone does not make postcard accept the short record.
        assert!(legacy::decode::<Profile>(&old).is_err());
        assert_eq!(legacy::profile(&old).expect("old record"), p);

        // New records round-trip, with the flag either way.
        for flag in [false, true] {
            let q = Profile {
                require_pop_linking: flag,
                ..p.clone()
            };
            assert_eq!(
                legacy::profile(&postcard::to_stdvec(&q).expect("encode")).expect("new"),
                q
            );
        }
        // A record cut anywhere else is still an error, not a default.
        let new = postcard::to_stdvec(&p).expect("encode");
        assert!(legacy::profile(&new[..new.len() / 2]).is_err());
        // Today's records carry their version and round-trip.
        assert_eq!(
            decode_profile(&encode(&p).expect("encode")).expect("decode"),
            p
        );
        assert!(
            decode_profile(&new).is_err(),
            "a record without a version is refused"
        );
    }

    /// The record as estd 6dd7785 wrote it.
    #[derive(serde::Serialize)]
    struct TokenRecordBeforeExpiry {
        cvr: Option<String>,
        name: String,
        created_at: UnixSeconds,
    }

    #[test]
    fn a_token_record_from_before_expiry_decodes() {
        let old = postcard::to_stdvec(&TokenRecordBeforeExpiry {
            cvr: Some("12345678".into()),
            name: "idm".into(),
            created_at: 1_780_000_000,
        })
        .expect("encode");
        let rec = legacy::token(&old).expect("decodes");
        assert_eq!(
            rec,
            TokenRecord {
                cvr: Some("12345678".into()),
                name: "idm".into(),
                created_at: 1_780_000_000,
                expires_at: None,
                revoked_at: None,
            }
        );
        assert!(rec.is_usable(u64::MAX - 1));
        // A new record round-trips as itself.
        let new = TokenRecord {
            expires_at: Some(5),
            revoked_at: Some(4),
            ..rec
        };
        assert_eq!(
            decode_token(&encode(&new).expect("encode")).expect("decode"),
            new
        );
        assert_eq!(new.state(3), crate::model::TokenState::Revoked);
        let expired = TokenRecord {
            revoked_at: None,
            ..new
        };
        assert_eq!(expired.state(4), crate::model::TokenState::Active);
        assert_eq!(expired.state(5), crate::model::TokenState::Expired);
    }

    #[test]
    fn a_record_of_an_unknown_version_is_an_error() {
        let mut v = encode(&5u64).expect("encode");
        assert_eq!(decode::<u64>(&v).expect("decode"), 5);
        v[0] = crate::store::record::RECORD_VERSION + 1;
        assert!(decode::<u64>(&v).is_err());
        assert!(decode::<u64>(&[]).is_err());
    }
}
