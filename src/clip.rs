//! Bounding client-controlled text before it is stored, logged or echoed.
//!
//! Anything a client can choose (a Content-Type, a subject, a user name in
//! Basic credentials, a path) may be up to the 16 KiB head limit long; a
//! record or log line quoting it whole lets an anonymous client fill the disk.

use std::borrow::Cow;

/// The longest client text kept, in characters (a cut one ends in `…`).
pub const MAX_CHARS: usize = 200;

/// `s` cut to at most [`MAX_CHARS`] characters.
pub fn clip(s: &str) -> Cow<'_, str> {
    clip_to(s, MAX_CHARS)
}

/// `s` cut to at most `max` characters (`max` ≥ 1), on a character boundary;
/// a cut text ends in `…` (counted in `max`).
pub fn clip_to(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => Cow::Borrowed(s),
        Some(_) => {
            let keep = max.saturating_sub(1);
            let end = s.char_indices().nth(keep).map_or(s.len(), |(i, _)| i);
            Cow::Owned(format!("{}…", &s[..end]))
        }
    }
}

/// Clips `s` in place (see [`clip`]).
pub fn clip_in_place(s: &mut String) {
    if let Cow::Owned(c) = clip(s) {
        *s = c;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_whole() {
        assert!(matches!(clip("application/pkcs10"), Cow::Borrowed(_)));
        let exact = "a".repeat(MAX_CHARS);
        assert_eq!(clip(&exact), exact.as_str());
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary_and_marked() {
        let long = "æ".repeat(MAX_CHARS + 1);
        let c = clip(&long);
        assert_eq!(c.chars().count(), MAX_CHARS);
        assert!(c.ends_with('…'));
        assert!(c[..c.len() - '…'.len_utf8()].chars().all(|ch| ch == 'æ'));
        assert_eq!(clip_to("abcdef", 4), "abc…");
        assert_eq!(clip_to("abcd", 4), "abcd");
        let mut s = "x".repeat(10_000);
        clip_in_place(&mut s);
        assert_eq!(s.chars().count(), MAX_CHARS);
    }
}
