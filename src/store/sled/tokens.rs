//! Admin API tokens beyond storing and fetching one (`orders.rs`): listing,
//! and whether an operator token is still usable.

use super::codec::decode_token;
use super::SledStore;
use crate::model::{TokenRecord, UnixSeconds};
use crate::store::{BoxIter, StoreError};

impl SledStore {
    /// Every admin token's record with its hash (there are few).
    pub(super) fn tokens(&self) -> BoxIter<'static, ([u8; 32], TokenRecord)> {
        self.entries(
            |t| &t.tokens,
            |k, v| Ok((SledStore::hash_key(k, "token")?, decode_token(v)?)),
        )
    }

    /// Whether an operator token that is still usable at `now` exists.
    pub(super) fn has_usable_operator_token(&self, now: UnixSeconds) -> Result<bool, StoreError> {
        for item in self.tokens() {
            let (_, rec) = item?;
            if rec.cvr.is_none() && rec.is_usable(now) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
