//! Orders, one-time codes, held enrolments, admin tokens and the notification
//! outbox. Issuance itself (certificate and order in one write) is in `commit.rs`.

use super::codec::{decode, decode_token, encode};
use super::snapshot::Kept;
use super::trees::read_count;
use super::SledStore;
use crate::model::{Notification, Order, TokenRecord};
use crate::store::StoreError;

/// Key in `meta` of the number of one-time codes presented for no order with
/// an outstanding code (an unknown reference number, or a code already
/// used). Written as a wrong code's failure count is, so that every
/// "unknown reference number or wrong one-time code" answer costs the same
/// store work (see `orders::try_code`).
pub(super) const UNMATCHED_CODE_KEY: &[u8] = b"unmatched_code_attempts";

impl SledStore {
    /// Inserts a new order; `Ok(false)` if the reference number is taken.
    pub(super) fn insert_new_order(&self, order: &Order) -> Result<bool, StoreError> {
        let v = encode(order)?;
        let t = self.trees()?;
        let _w = self
            .shared
            .snapshots
            .changing(Kept::Orders, &t.orders, order.id.as_bytes())?;
        Ok(t.orders
            .compare_and_swap(order.id.as_bytes(), None as Option<&[u8]>, Some(v))?
            .is_ok())
    }

    /// Looks an order up by reference number.
    pub(super) fn order(&self, id: &str) -> Result<Option<Order>, StoreError> {
        match self.trees()?.orders.get(id.as_bytes())? {
            Some(v) => Ok(Some(decode(&v)?)),
            None => Ok(None),
        }
    }

    /// See [`crate::store::Store::change_order`].
    pub(super) fn change_order(
        &self,
        id: &str,
        change: &mut dyn FnMut(&mut Order) -> bool,
    ) -> Result<Option<Option<Order>>, StoreError> {
        loop {
            let t = self.trees()?;
            let Some(old) = t.orders.get(id.as_bytes())? else {
                return Ok(None);
            };
            let mut order: Order = decode(&old)?;
            if !change(&mut order) {
                return Ok(Some(None));
            }
            let new = encode(&order)?;
            let _w = self
                .shared
                .snapshots
                .changing(Kept::Orders, &t.orders, id.as_bytes())?;
            if t.orders
                .compare_and_swap(id.as_bytes(), Some(old), Some(new))?
                .is_ok()
            {
                return Ok(Some(Some(order)));
            }
        }
    }

    /// Counts a code presented for no order with an outstanding code
    /// (durable with the next commit); returns the new count.
    pub(super) fn count_unmatched_code(&self) -> Result<u64, StoreError> {
        let t = self.trees()?;
        let _w = self.shared.snapshots.write();
        let v = t.meta.update_and_fetch(UNMATCHED_CODE_KEY, |v| {
            Some((read_count(v) + 1).to_be_bytes().to_vec())
        })?;
        Ok(read_count(v.as_deref()))
    }

    /// How many codes were presented for no order with an outstanding code.
    pub(super) fn unmatched_code_attempts(&self) -> Result<u64, StoreError> {
        Ok(read_count(
            self.trees()?.meta.get(UNMATCHED_CODE_KEY)?.as_deref(),
        ))
    }

    /// Remembers the order that holds a CSR (approval-required enrolment).
    pub(super) fn put_held(&self, csr_hash: &[u8; 32], order_id: &str) -> Result<(), StoreError> {
        let t = self.trees()?;
        let _w = self
            .shared
            .snapshots
            .changing(Kept::Held, &t.held, csr_hash)?;
        t.held.insert(csr_hash, order_id.as_bytes())?;
        Ok(())
    }

    /// The order holding a CSR, if any.
    pub(super) fn held_order(&self, csr_hash: &[u8; 32]) -> Result<Option<Order>, StoreError> {
        match self.trees()?.held.get(csr_hash)? {
            Some(id) => self.order(&String::from_utf8_lossy(&id)),
            None => Ok(None),
        }
    }

    /// Stores an admin token's record under the token's hash.
    pub(super) fn put_token(&self, hash: &[u8; 32], rec: &TokenRecord) -> Result<(), StoreError> {
        let t = self.trees()?;
        let _w = self
            .shared
            .snapshots
            .changing(Kept::Tokens, &t.tokens, hash)?;
        t.tokens.insert(hash, encode(rec)?)?;
        Ok(())
    }

    /// The record of the token with this hash.
    pub(super) fn token(&self, hash: &[u8; 32]) -> Result<Option<TokenRecord>, StoreError> {
        match self.trees()?.tokens.get(hash)? {
            Some(v) => Ok(Some(decode_token(&v)?)),
            None => Ok(None),
        }
    }

    /// Appends a notification to the outbox; its `id` is assigned here.
    pub(super) fn push_notification(&self, mut n: Notification) -> Result<u64, StoreError> {
        let t = self.trees()?;
        let id = t.db.generate_id()?;
        n.id = id;
        let _w = self
            .shared
            .snapshots
            .changing(Kept::Outbox, &t.outbox, &id.to_be_bytes())?;
        t.outbox.insert(id.to_be_bytes(), encode(&n)?)?;
        Ok(id)
    }

    /// Replaces a notification (delivery bookkeeping).
    pub(super) fn put_notification(&self, n: &Notification) -> Result<(), StoreError> {
        let t = self.trees()?;
        let _w = self
            .shared
            .snapshots
            .changing(Kept::Outbox, &t.outbox, &n.id.to_be_bytes())?;
        t.outbox.insert(n.id.to_be_bytes(), encode(n)?)?;
        Ok(())
    }
}
