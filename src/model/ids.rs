//! Identifiers: CVR numbers, certificate serial numbers, profile ids and
//! order reference numbers.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a valid CVR number is, for error messages.
pub const CVR_RULE: &str = "must be a CVR number: 8 digits, not starting with 0, modulus-11 check";

/// Whether `s` is a CVR number: 8 ASCII digits, the first not 0, whose
/// weighted sum (weights 2, 7, 6, 5, 4, 3, 2, 1) is divisible by 11 (the
/// CVR register's check, which also catches one mistyped or two swapped digits).
pub fn is_valid_cvr(s: &str) -> bool {
    const WEIGHTS: [u32; 8] = [2, 7, 6, 5, 4, 3, 2, 1];
    let b = s.as_bytes();
    if b.len() != 8 || !b.iter().all(u8::is_ascii_digit) || b[0] == b'0' {
        return false;
    }
    let sum: u32 = b
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    sum % 11 == 0
}

/// The subject attribute value that names an organisation by CVR
/// (ETSI EN 319 412-1 semantics identifier, as in Danish OCES certificates).
pub fn organization_identifier(cvr: &str) -> String {
    format!("NTRDK-{cvr}")
}

/// A string that is not a CVR number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} {}", CVR_RULE)]
pub struct InvalidCvr {
    /// What was given.
    pub value: String,
}

/// A CVR number, checked by [`is_valid_cvr`] when made with [`Cvr::parse`].
///
/// Serialized as the bare string, so records that hold one are stored as
/// they were with a `String`. Decoding does not check it again: a record
/// written before a rule tightened must still open (inputs from outside are
/// checked by `parse`).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(transparent)]
pub struct Cvr(String);

impl Cvr {
    /// `s` as a CVR number, if it is one.
    pub fn parse(s: &str) -> Result<Cvr, InvalidCvr> {
        if is_valid_cvr(s) {
            Ok(Cvr(s.to_owned()))
        } else {
            Err(InvalidCvr {
                value: s.to_owned(),
            })
        }
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Cvr {
    type Err = InvalidCvr;
    fn from_str(s: &str) -> Result<Cvr, InvalidCvr> {
        Cvr::parse(s)
    }
}

impl TryFrom<String> for Cvr {
    type Error = InvalidCvr;
    fn try_from(s: String) -> Result<Cvr, InvalidCvr> {
        if is_valid_cvr(&s) {
            Ok(Cvr(s))
        } else {
            Err(InvalidCvr { value: s })
        }
    }
}

/// Plain-string newtypes: an id with no rule of its own beyond being text,
/// kept apart by type so one cannot be passed for another.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            schemars::JsonSchema,
        )]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id's text, owned.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> $name {
                $name(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> $name {
                $name(s.to_owned())
            }
        }
    };
}

string_id!(
    /// A profile's id: a UUID, hyphenated lower case, for profiles made by
    /// this server ([`ProfileId::generate`]).
    ProfileId
);

impl ProfileId {
    /// A fresh random id.
    pub fn generate() -> ProfileId {
        ProfileId(uuid::Uuid::new_v4().to_string())
    }
}

string_id!(
    /// An order's reference number (also the EST user name for one-time
    /// codes). Made by the order service; no rule checked here, since older
    /// orders have other shapes.
    OrderRef
);

/// Display, `AsRef<str>`, and comparison with plain strings for every id.
macro_rules! text_impls {
    ($($name:ident),*) => {$(
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    )*};
}

text_impls!(Cvr, ProfileId, OrderRef);

/// The value of one hex digit, `[0-9A-Fa-f]` only.
fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The byte two hex digits spell, or `None` for anything else. Unlike
/// `u8::from_str_radix`, which takes a sign (`"+B"` is 11), only digits pass.
pub fn hex_byte(pair: &[u8]) -> Option<u8> {
    match pair {
        [hi, lo] => Some(hex_digit(*hi)? << 4 | hex_digit(*lo)?),
        _ => None,
    }
}

/// A certificate serial number: 16 bytes, positive, never starting with a zero byte.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Serial(pub [u8; 16]);

impl Serial {
    /// Parses the hex form (as printed by `openssl x509 -serial`): exactly 32
    /// hex digits, either case. Surrounding whitespace is tolerated (URLs and
    /// pasted text), nothing inside it: no sign, no separators.
    pub fn from_hex(s: &str) -> Option<Serial> {
        let s = s.trim().as_bytes();
        if s.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, pair) in s.chunks(2).enumerate() {
            out[i] = hex_byte(pair)?;
        }
        Some(Serial(out))
    }

    /// From the big-endian content bytes of a DER INTEGER, if it has our shape.
    pub fn from_der_bytes(bytes: &[u8]) -> Option<Serial> {
        <[u8; 16]>::try_from(bytes).ok().map(Serial)
    }
}

impl fmt::Display for Serial {
    /// 32 upper-case hex digits, written at once: a serial is printed in
    /// every request's log line and audit record.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
        let mut hex = [0u8; 32];
        for (pair, b) in hex.chunks_exact_mut(2).zip(self.0) {
            pair[0] = DIGITS[usize::from(b >> 4)];
            pair[1] = DIGITS[usize::from(b & 0x0f)];
        }
        // Only ASCII digits were written.
        f.write_str(std::str::from_utf8(&hex).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cvr_validation() {
        assert!(is_valid_cvr("12345674"));
        assert!(is_valid_cvr("87654311"));
        // Fails the modulus-11 check (the old demo CVR).
        assert!(!is_valid_cvr("12345678"));
        // Passes modulus 11 trivially, but no CVR number starts with 0.
        assert!(!is_valid_cvr("00000000"));
        assert!(!is_valid_cvr("01234567"));
        assert!(!is_valid_cvr("1234567"));
        assert!(!is_valid_cvr("1234567a"));
        assert!(!is_valid_cvr("123456789"));
    }

    #[test]
    fn cvr_is_checked_on_construction() {
        let c = Cvr::parse("12345674").expect("valid");
        assert_eq!(c.as_str(), "12345674");
        assert_eq!(c.to_string(), "12345674");
        assert_eq!(AsRef::<str>::as_ref(&c), "12345674");
        assert_eq!(c, "12345674");
        assert_eq!("12345674".parse::<Cvr>(), Ok(c.clone()));
        assert_eq!(Cvr::try_from(String::from("12345674")), Ok(c));
        for bad in [
            "12345678",
            "00000000",
            "1234567",
            "1234567a",
            "",
            " 12345674",
        ] {
            let e = Cvr::parse(bad).unwrap_err();
            assert_eq!(e.value, bad);
            assert!(e.to_string().contains(CVR_RULE), "{e}");
            assert!(Cvr::try_from(bad.to_owned()).is_err());
        }
    }

    /// The ids are stored and sent as the bare string they replace.
    #[test]
    fn ids_serialize_as_their_string() {
        let c = Cvr::parse("12345674").expect("valid");
        let as_string = postcard::to_stdvec("12345674").expect("encode");
        assert_eq!(postcard::to_stdvec(&c).expect("encode"), as_string);
        assert_eq!(
            postcard::from_bytes::<Cvr>(&as_string).ok(),
            Some(c.clone())
        );
        assert_eq!(serde_json::to_value(&c).ok(), Some("12345674".into()));
        let p = ProfileId::from("p-1");
        assert_eq!(
            postcard::to_stdvec(&p).expect("encode"),
            postcard::to_stdvec("p-1").expect("encode")
        );
        assert_eq!(
            serde_json::from_str::<ProfileId>("\"p-1\"").ok(),
            Some(p.clone())
        );
        let o = OrderRef::from(String::from("123456789012"));
        assert_eq!(o.to_string(), "123456789012");
        assert_eq!(o.clone().into_string(), "123456789012");
        assert_eq!(
            postcard::from_bytes::<OrderRef>(&postcard::to_stdvec("123456789012").expect("e")).ok(),
            Some(o)
        );
        let fresh = ProfileId::generate();
        assert_eq!(fresh.as_str().len(), 36);
        assert_ne!(fresh, ProfileId::generate());
    }

    #[test]
    fn serial_hex_round_trip() {
        let s = Serial([0x4a; 16]);
        assert_eq!(Serial::from_hex(&s.to_string()), Some(s));
        let mut bytes = [0u8; 16];
        bytes[0] = 0x01;
        bytes[1] = 0xf0;
        bytes[15] = 0x9c;
        assert_eq!(
            Serial(bytes).to_string(),
            "01F0000000000000000000000000009C"
        );
        assert_eq!(Serial::from_hex("zz"), None);
        let lower = s.to_string().to_ascii_lowercase();
        assert_eq!(Serial::from_hex(&lower), Some(s));
        assert_eq!(Serial::from_hex(&format!(" {s}\n")), Some(s));
    }

    /// Found by the outside test: `+B` was read as `0B` (from_str_radix takes a sign).
    #[test]
    fn serial_hex_is_strict() {
        let s = "4A4A4A4A4A4A4A4A4A4A4A4A4A4A4A0B";
        assert!(Serial::from_hex(s).is_some());
        for bad in [
            "4A4A4A4A4A4A4A4A4A4A4A4A4A4A4A+B",
            "+A4A4A4A4A4A4A4A4A4A4A4A4A4A4A0B",
            "4A4A4A4A4A4A4A4A4A4A4A4A4A4A4A-0",
            "-04A4A4A4A4A4A4A4A4A4A4A4A4A4A0B",
            "4A4A4A4A4A4A4A4A4A4A4A4A4A4A4A 0B",
            "4A4A4A4A4A4A4A4A4A4A4A4A4A4A4A B",
            "4A4A4A4A4A4A4A4A4A4A4A4A4A4A4A\tB",
            "4A4A4A4A4A4A4A4A4A4A4A4A4A4A4A0x",
            "4A:4A:4A:4A:4A:4A:4A:4A:4A:4A:4A:4A:4A:4A:4A:0B",
        ] {
            assert_eq!(Serial::from_hex(bad), None, "{bad:?} was accepted");
        }
        assert_eq!(hex_byte(b"+B"), None);
        assert_eq!(hex_byte(b"-0"), None);
        assert_eq!(hex_byte(b" B"), None);
        assert_eq!(hex_byte(b"0B"), Some(0x0b));
        assert_eq!(hex_byte(b"fF"), Some(0xff));
        assert_eq!(hex_byte(b"F"), None);
    }
}
