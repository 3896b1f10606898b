//! Admin API tokens beyond storing and fetching one (`orders.rs`): the
//! record's decoding across versions, listing, and whether an operator
//! token is still usable.

use super::{decode, encode, Store, StoreError};
use crate::model::{TokenRecord, UnixSeconds};

/// Decodes an admin token's record, also one stored before tokens had an
/// expiry and could be revoked (estd 6dd7785 and earlier): postcard stores
/// fields in order without names, so the old record is the new one cut
/// short, and the missing tail is supplied as the encoding of `None, None`
/// (no expiry, not revoked), as `decode_profile` does for profiles.
pub(super) fn decode_token(b: &[u8]) -> Result<TokenRecord, StoreError> {
    match postcard::from_bytes::<TokenRecord>(b) {
        Err(postcard::Error::DeserializeUnexpectedEnd) => {
            let mut padded = b.to_vec();
            padded.extend(encode(&None::<UnixSeconds>)?); // expires_at
            padded.extend(encode(&None::<UnixSeconds>)?); // revoked_at
            decode(&padded)
        }
        other => Ok(other?),
    }
}

impl Store {
    /// Every admin token's record with its hash (there are few).
    pub fn tokens(&self) -> impl Iterator<Item = Result<([u8; 32], TokenRecord), StoreError>> + '_ {
        // sled's iterator holds its own handle; an unavailable store is one error item.
        let (iter, unavailable) = match self.trees() {
            Ok(t) => (Some(t.tokens.iter()), None),
            Err(e) => (None, Some(Err(e))),
        };
        unavailable
            .into_iter()
            .chain(iter.into_iter().flatten().map(|r| {
                let (k, v) = r?;
                let hash: [u8; 32] = k
                    .as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Codec(postcard::Error::DeserializeBadEncoding))?;
                Ok((hash, decode_token(&v)?))
            }))
    }

    /// Whether an operator token that is still usable at `now` exists.
    pub fn has_usable_operator_token(&self, now: UnixSeconds) -> Result<bool, StoreError> {
        for item in self.tokens() {
            let (_, rec) = item?;
            if rec.cvr.is_none() && rec.is_usable(now) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record as estd 6dd7785 wrote it.
    #[derive(serde::Serialize)]
    struct TokenRecordBeforeExpiry {
        cvr: Option<String>,
        name: String,
        created_at: UnixSeconds,
    }

    #[test]
    fn a_token_record_from_before_expiry_decodes() {
        let old = encode(&TokenRecordBeforeExpiry {
            cvr: Some("12345678".into()),
            name: "idm".into(),
            created_at: 1_780_000_000,
        })
        .expect("encode");
        let rec = decode_token(&old).expect("decodes");
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
        assert_eq!(new.state_name(3), "revoked");
        let expired = TokenRecord {
            revoked_at: None,
            ..new
        };
        assert_eq!(expired.state_name(4), "active");
        assert_eq!(expired.state_name(5), "expired");
    }
}
