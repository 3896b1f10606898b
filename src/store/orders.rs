//! Orders, one-time codes, held enrolments, admin tokens and the notification
//! outbox. Issuance itself (certificate and order in one write) is in `commit.rs`.

use super::model::{Notification, Order, TokenRecord, UnixSeconds};
use super::{decode, encode, Store, StoreError};

/// Decodes an admin token's record, also one stored before tokens had an
/// expiry and could be revoked (estd 6dd7785 and earlier): postcard stores
/// fields in order without names, so the old record is the new one cut
/// short, and the missing tail is supplied as the encoding of `None, None`
/// (no expiry, not revoked), as `decode_profile` does for profiles.
fn decode_token(b: &[u8]) -> Result<TokenRecord, StoreError> {
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
    /// Inserts a new order; `Ok(false)` if the reference number is taken.
    pub fn insert_new_order(&self, order: &Order) -> Result<bool, StoreError> {
        let v = encode(order)?;
        Ok(self
            .inner
            .orders
            .compare_and_swap(order.id.as_bytes(), None as Option<&[u8]>, Some(v))?
            .is_ok())
    }

    /// Looks an order up by reference number.
    pub fn order(&self, id: &str) -> Result<Option<Order>, StoreError> {
        match self.inner.orders.get(id.as_bytes())? {
            Some(v) => Ok(Some(decode(&v)?)),
            None => Ok(None),
        }
    }

    /// Applies `change` to an order atomically; `Ok(None)` if there is no such order.
    pub fn update_order<E, F>(
        &self,
        id: &str,
        mut change: F,
    ) -> Result<Option<Result<Order, E>>, StoreError>
    where
        F: FnMut(&mut Order) -> Result<(), E>,
    {
        loop {
            let Some(old) = self.inner.orders.get(id.as_bytes())? else {
                return Ok(None);
            };
            let mut order: Order = decode(&old)?;
            if let Err(e) = change(&mut order) {
                return Ok(Some(Err(e)));
            }
            let new = encode(&order)?;
            if self
                .inner
                .orders
                .compare_and_swap(id.as_bytes(), Some(old), Some(new))?
                .is_ok()
            {
                return Ok(Some(Ok(order)));
            }
        }
    }

    /// All orders, deleted ones included (callers filter).
    pub fn orders(&self) -> impl Iterator<Item = Result<Order, StoreError>> + '_ {
        self.inner
            .orders
            .iter()
            .map(|r| r.map_err(StoreError::from).and_then(|(_, v)| decode(&v)))
    }

    /// Remembers the order that holds a CSR (approval-required enrolment).
    pub fn put_held(&self, csr_hash: &[u8; 32], order_id: &str) -> Result<(), StoreError> {
        self.inner.held.insert(csr_hash, order_id.as_bytes())?;
        Ok(())
    }

    /// The order holding a CSR, if any.
    pub fn held_order(&self, csr_hash: &[u8; 32]) -> Result<Option<Order>, StoreError> {
        match self.inner.held.get(csr_hash)? {
            Some(id) => self.order(&String::from_utf8_lossy(&id)),
            None => Ok(None),
        }
    }

    /// Stores an admin token's record under the token's hash.
    pub fn put_token(&self, hash: &[u8; 32], rec: &TokenRecord) -> Result<(), StoreError> {
        self.inner.tokens.insert(hash, encode(rec)?)?;
        Ok(())
    }

    /// The record of the token with this hash.
    pub fn token(&self, hash: &[u8; 32]) -> Result<Option<TokenRecord>, StoreError> {
        match self.inner.tokens.get(hash)? {
            Some(v) => Ok(Some(decode_token(&v)?)),
            None => Ok(None),
        }
    }

    /// Every admin token's record with its hash (there are few).
    pub fn tokens(&self) -> impl Iterator<Item = Result<([u8; 32], TokenRecord), StoreError>> + '_ {
        self.inner.tokens.iter().map(|r| {
            let (k, v) = r?;
            let hash: [u8; 32] = k
                .as_ref()
                .try_into()
                .map_err(|_| StoreError::Codec(postcard::Error::DeserializeBadEncoding))?;
            Ok((hash, decode_token(&v)?))
        })
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

    /// Appends a notification to the outbox; its `id` is assigned here.
    pub fn push_notification(&self, mut n: Notification) -> Result<u64, StoreError> {
        let id = self.inner.db.generate_id()?;
        n.id = id;
        self.inner.outbox.insert(id.to_be_bytes(), encode(&n)?)?;
        Ok(id)
    }

    /// Replaces a notification (delivery bookkeeping).
    pub fn put_notification(&self, n: &Notification) -> Result<(), StoreError> {
        self.inner.outbox.insert(n.id.to_be_bytes(), encode(n)?)?;
        Ok(())
    }

    /// The outbox, oldest first.
    pub fn notifications(&self) -> impl Iterator<Item = Result<Notification, StoreError>> + '_ {
        self.inner
            .outbox
            .iter()
            .map(|r| r.map_err(StoreError::from).and_then(|(_, v)| decode(&v)))
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
