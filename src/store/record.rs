//! The record codec, shared by the engines: every stored value is one
//! version byte, then the record in postcard. postcard writes a struct as its
//! fields in order, without names or a count, so a record's layout is its
//! version; a layout change bumps [`RECORD_VERSION`] and each engine migrates
//! its stored records (sled keeps the old layouts in `sled/codec.rs`).

use serde::{de::DeserializeOwned, Serialize};

use crate::model::AuditEvent;
use crate::store::StoreError;

/// The layout version written in front of every record.
pub(crate) const RECORD_VERSION: u8 = 1;

/// A record that is not one this estd can read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RecordError {
    /// An empty value where a record was expected.
    #[error("empty record")]
    Empty,
    /// A record of a layout version this estd does not know.
    #[error("record layout version {0} is unknown (this estd writes {RECORD_VERSION})")]
    UnknownVersion(u8),
    /// postcard failed.
    #[error(transparent)]
    Postcard(#[from] postcard::Error),
}

impl From<RecordError> for StoreError {
    fn from(e: RecordError) -> StoreError {
        StoreError::codec(e)
    }
}

/// Encodes a record with its version.
pub(crate) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_extend(v, vec![RECORD_VERSION]).map_err(|e| RecordError::from(e).into())
}

/// The postcard body of a record of the current version.
pub(crate) fn body(b: &[u8]) -> Result<&[u8], RecordError> {
    match b.split_first() {
        Some((&RECORD_VERSION, rest)) => Ok(rest),
        Some((&v, _)) => Err(RecordError::UnknownVersion(v)),
        None => Err(RecordError::Empty),
    }
}

/// Decodes a record of the current version.
pub(crate) fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, StoreError> {
    Ok(postcard::from_bytes(body(b)?).map_err(RecordError::from)?)
}

/// The time of an audit record (its first field) without decoding the rest.
pub(crate) fn audit_at_ms(b: &[u8]) -> Result<u64, StoreError> {
    let (at_ms, _) = postcard::take_from_bytes::<u64>(body(b)?).map_err(RecordError::from)?;
    Ok(at_ms)
}

/// The event with every text cut to [`crate::clip::MAX_CHARS`]: much of it
/// comes from clients (error texts quoting their input, names, subjects).
pub(crate) fn bounded_event(event: &AuditEvent) -> AuditEvent {
    use crate::clip::clip_in_place;
    let mut e = event.clone();
    clip_in_place(&mut e.actor);
    clip_in_place(&mut e.detail);
    for s in [&mut e.cvr, &mut e.profile_id, &mut e.order_id]
        .into_iter()
        .flatten()
    {
        clip_in_place(s);
    }
    e
}
