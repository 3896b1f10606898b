//! One-time codes and reference numbers: how they are made, stored (hashed)
//! and checked, and the one unit of work that judges a presented code.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest;

use super::{Error, Services};
use crate::model::{now_unix, CodeState, Order, OrderStatus, UnixSeconds, MAX_CODE_FAILURES};

const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// SHA-256 of the reference number and code: what is stored instead of the code.
pub fn code_hash(order_id: &str, code: &str) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(order_id.as_bytes());
    ctx.update(b":");
    ctx.update(code.trim().to_ascii_uppercase().as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// `N` random bytes from the system's generator.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], Error> {
    let mut b = [0u8; N];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| Error::Randomness)?;
    Ok(b)
}

/// A fresh one-time code (16 characters, 80 bits) and its stored state.
pub fn new_code(
    order_id: &str,
    ttl_days: u32,
    now: UnixSeconds,
) -> Result<(String, CodeState), Error> {
    let code: String = random_bytes::<16>()?
        .iter()
        .map(|b| CODE_ALPHABET[usize::from(*b) % CODE_ALPHABET.len()] as char)
        .collect();
    let state = CodeState {
        hash: code_hash(order_id, &code),
        expires_at: now + u64::from(ttl_days) * 86_400,
        failures: 0,
    };
    Ok((code, state))
}

/// A fresh 12-digit reference number, random throughout: for orders that a
/// person reads and types together with their one-time code.
pub fn new_reference() -> Result<String, Error> {
    let n = u64::from_be_bytes(random_bytes::<8>()?) % 1_000_000_000_000;
    Ok(format!("{n:012}"))
}

/// A fresh 12-digit reference number for an order made by an API enrolment:
/// the minute (mod 10,000, so it turns over every 6.9 days) and then 8
/// random digits.
///
/// An API enrolment makes one order, so on a large store random references
/// would send every issuance to a random, probably uncached, page of the
/// order tree; with the minute in front, the orders of one minute share a
/// few pages. A clash (at 3,600 issuances/s, at most 0.2% by the end of a
/// minute) is refused by the store and the caller draws again.
pub fn new_api_reference() -> Result<String, Error> {
    let minute = now_unix() / 60 % 10_000;
    let random = u64::from_be_bytes(random_bytes::<8>()?) % 100_000_000;
    Ok(format!("{minute:04}{random:08}"))
}

/// The verdict on a presented one-time code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeCheck {
    /// Right code, usable.
    Valid,
    /// Wrong code (counted).
    Wrong,
    /// Past its expiry.
    Expired,
    /// Locked after too many wrong codes.
    Locked,
    /// The order has no outstanding code (already used, or another method).
    Unusable,
}

/// Stands in for a stored code hash where there is none, so that every
/// presented code is hashed and compared (see [`try_code`]).
const NO_CODE_HASH: [u8; 32] = [0; 32];

/// Hashes `code` for `order_id` and compares it, in constant time, with
/// `stored`: done on every path of a code check, whether or not there is an
/// order with a code, so that the time taken does not tell them apart.
fn code_matches(order_id: &str, code: &str, stored: &[u8; 32]) -> bool {
    let presented = code_hash(order_id, code);
    verify_slices_are_equal(&presented, std::hint::black_box(stored)).is_ok()
}

/// Checks `code` against `order` in constant time.
pub fn check_code(order: &Order, code: &str, now: UnixSeconds) -> CodeCheck {
    let stored = order.code.as_ref().map_or(&NO_CODE_HASH, |c| &c.hash);
    let matches = code_matches(&order.id, code, stored);
    let Some(state) = &order.code else {
        return CodeCheck::Unusable;
    };
    if order.status != OrderStatus::Pending {
        return CodeCheck::Unusable;
    }
    if state.failures >= MAX_CODE_FAILURES {
        return CodeCheck::Locked;
    }
    if !matches {
        return CodeCheck::Wrong;
    }
    if now > state.expires_at {
        return CodeCheck::Expired;
    }
    CodeCheck::Valid
}

/// Checks `code` against order `order_id` and, if it is wrong, counts it, in
/// one atomic step: simultaneous guesses are each judged against the count
/// the one before left, so no more than five are ever tried. The count is
/// durable with the next commit. `None` if there is no such order.
///
/// An unknown reference, or an order without an outstanding code, gets the
/// same answer as a wrong code, and does the same work: the code is hashed
/// and compared, and a count is written (the store's count of unmatched
/// codes, a single fixed-size value), which the caller commits before
/// answering as it does a wrong code's failure count.
pub fn try_code(
    svc: Services<'_>,
    order_id: &str,
    code: &str,
    now: UnixSeconds,
) -> Result<Option<(Order, CodeCheck)>, Error> {
    let mut verdict = CodeCheck::Unusable;
    let mut unchanged = None;
    let outcome = svc.store.update_order(order_id, |o| {
        verdict = check_code(o, code, now);
        match (verdict, o.code.as_mut()) {
            (CodeCheck::Wrong, Some(c)) => {
                c.failures = c.failures.saturating_add(1);
                Ok(())
            }
            _ => {
                // Nothing to write: the order as it was judged.
                unchanged = Some(o.clone());
                Err(())
            }
        }
    })?;
    Ok(match outcome {
        None => {
            code_matches(order_id, code, &NO_CODE_HASH);
            svc.store.count_unmatched_code()?;
            None
        }
        Some(Ok(counted)) => Some((counted, CodeCheck::Wrong)),
        Some(Err(())) => {
            if verdict == CodeCheck::Unusable {
                svc.store.count_unmatched_code()?;
            }
            unchanged.map(|o| (o, verdict))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Identification, Issuance, OrderHolder};

    #[test]
    fn api_references_are_twelve_digits_led_by_the_minute() {
        let before = now_unix() / 60 % 10_000;
        let refs: Vec<String> = (0..1000)
            .map(|_| new_api_reference().expect("reference"))
            .collect();
        let after = now_unix() / 60 % 10_000;
        let mut distinct = refs.clone();
        distinct.sort();
        distinct.dedup();
        assert!(distinct.len() > 990, "8 random digits: {}", distinct.len());
        for r in &refs {
            assert_eq!(r.len(), 12, "{r}");
            assert!(r.bytes().all(|b| b.is_ascii_digit()), "{r}");
            let minute: u64 = r[..4].parse().expect("digits");
            assert!(
                minute == before || minute == after,
                "{r} ({before}..{after})"
            );
        }
    }

    #[test]
    fn codes_are_checked_by_hash() {
        let (code, state) = new_code("123", 14, 1000).expect("code");
        assert_eq!(code.len(), 16);
        let mut order = Order {
            id: "123".into(),
            cvr: "12345674".into(),
            profile_id: "p".into(),
            holder: OrderHolder::Profile,
            identification: Identification::OneTimeCode,
            issuance: Issuance::Est,
            status: OrderStatus::Pending,
            created_at: 0,
            created_by: "t".into(),
            code: Some(state),
            renews: None,
            held_csr: None,
        };
        assert_eq!(check_code(&order, &code, 1000), CodeCheck::Valid);
        assert_eq!(
            check_code(&order, &code.to_lowercase(), 1000),
            CodeCheck::Valid
        );
        assert_eq!(check_code(&order, "WRONG", 1000), CodeCheck::Wrong);
        assert_eq!(
            check_code(&order, &code, 1000 + 15 * 86_400),
            CodeCheck::Expired
        );
        if let Some(c) = order.code.as_mut() {
            c.failures = MAX_CODE_FAILURES;
        }
        assert_eq!(check_code(&order, &code, 1000), CodeCheck::Locked);
        order.code = None;
        assert_eq!(check_code(&order, &code, 1000), CodeCheck::Unusable);
    }
}
