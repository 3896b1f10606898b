//! The rules for text that goes into certificates: subject attribute
//! values and e-mail addresses.

/// The Unicode format characters (general category Cf) as inclusive ranges,
/// from Unicode's DerivedGeneralCategory.txt (Unicode 14.0 as Python's
/// unicodedata lists it, plus U+13439 to U+1343F added in 15.0): the soft hyphen,
/// bidirectional controls (U+202A to U+202E, U+2066 to U+2069), zero-width
/// characters (U+200B to U+200F, U+2060 to U+2064, U+FEFF), tags and the
/// like. They are invisible or reorder text, so a name holding one can look
/// like another.
const FORMAT_CHARACTERS: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// Whether `c` is a Unicode format character (general category Cf).
pub fn is_format_character(c: char) -> bool {
    let c = u32::from(c);
    FORMAT_CHARACTERS
        .iter()
        .any(|&(first, last)| (first..=last).contains(&c))
}

/// Why a name that goes into a certificate's subject (and so into logs, the
/// audit log, the admin API and CSV exports) is refused, or `None`: no
/// control characters, no line or paragraph separators, no format characters
/// (right-to-left overrides, zero-width spaces: display spoofing), and no
/// spaces before or after it.
pub fn subject_text_problem(v: &str) -> Option<&'static str> {
    if v.chars().any(char::is_control) {
        return Some("contains a control character");
    }
    if v.chars()
        .any(|c| is_format_character(c) || matches!(c, '\u{2028}' | '\u{2029}'))
    {
        return Some(
            "contains an invisible formatting character (Unicode category Cf, such as U+202E \
             or U+200B, or a line separator)",
        );
    }
    if v.trim() != v {
        return Some("has leading or trailing spaces");
    }
    None
}

/// Whether `c` is one of the Danish letters Æ, Ø or Å (either case).
fn is_danish_letter(c: char) -> bool {
    matches!(c, 'æ' | 'ø' | 'å' | 'Æ' | 'Ø' | 'Å')
}

/// Why an e-mail address is refused, or `None` if it is acceptable.
///
/// Addresses with Æ, Ø or Å (either case) are refused for any certificate:
/// they must be changed first. That holds for a domain spelt as IDNA A-labels
/// too (`xn--blbr-roah.dk` is blåbær.dk), so those are decoded first. The
/// domain must be a host name (RFC 1034 3.5): labels of 1 to 63 letters,
/// digits and inner hyphens, at least two of them, at most 253 characters.
pub fn email_problem(email: &str) -> Option<&'static str> {
    const CHANGE_FIRST: &str = "contains Æ, Ø or Å; the e-mail address must be changed first";
    if email.chars().any(is_danish_letter) {
        return Some(CHANGE_FIRST);
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Some("is not an e-mail address");
    };
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c);
    if local.is_empty() || local.len() > 64 || !local.chars().all(ok_char) {
        return Some("is not a valid e-mail address");
    }
    let labels_ok = domain.split('.').all(|label| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    if domain.len() > 253 || !domain.contains('.') || !labels_ok {
        return Some(
            "is not a valid e-mail address: the domain must be labels of 1 to 63 letters, \
             digits and inner hyphens, separated by dots, at most 253 characters",
        );
    }
    let has_a_label = domain
        .split('.')
        .any(|l| l.len() >= 4 && l[..4].eq_ignore_ascii_case("xn--"));
    if has_a_label {
        let (unicode, result) = idna::domain_to_unicode(domain);
        if result.is_err() {
            return Some("is not a valid e-mail address: the domain has an invalid xn-- label");
        }
        if unicode.chars().any(is_danish_letter) {
            return Some(CHANGE_FIRST);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_rules() {
        assert_eq!(email_problem("a@b.dk"), None);
        assert!(email_problem("søren@b.dk").is_some_and(|m| m.contains("changed first")));
        assert!(email_problem("x@ÆBLE.dk").is_some_and(|m| m.contains("changed first")));
        assert!(email_problem("åse@b.dk").is_some());
        assert!(email_problem("nope").is_some());
        assert!(email_problem("a@b").is_some());
    }

    /// Spot checks of the table, and its shape.
    #[test]
    fn format_character_table() {
        for c in [
            '\u{AD}',
            '\u{600}',
            '\u{61C}',
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{200E}',
            '\u{200F}',
            '\u{202A}',
            '\u{202E}',
            '\u{2060}',
            '\u{2064}',
            '\u{2066}',
            '\u{2069}',
            '\u{206F}',
            '\u{FEFF}',
            '\u{FFF9}',
            '\u{FFFB}',
            '\u{110BD}',
            '\u{1343F}',
            '\u{1D173}',
            '\u{E0001}',
            '\u{E0020}',
            '\u{E007F}',
        ] {
            assert!(is_format_character(c), "U+{:04X}", u32::from(c));
        }
        for c in [
            'a',
            'Æ',
            ' ',
            '\u{A0}',
            '\u{2065}',
            '\u{2010}',
            '\u{FFFC}',
            '\u{E0080}',
        ] {
            assert!(!is_format_character(c), "U+{:04X}", u32::from(c));
        }
        let mut last = 0;
        for &(first, end) in FORMAT_CHARACTERS {
            assert!(first > last && end >= first, "sorted and disjoint");
            last = end;
        }
    }

    /// Found by the outside test: a CN with U+202E, zero-width characters or
    /// surrounding spaces was accepted.
    #[test]
    fn subject_text_rules() {
        assert_eq!(subject_text_problem("Jens Jensen"), None);
        assert_eq!(subject_text_problem("Ærø Åbenrå"), None);
        assert_eq!(subject_text_problem("a b"), None);
        for bad in [
            "evil\u{202E}gpj.exe",
            "ad\u{200B}min",
            "\u{FEFF}admin",
            "soft\u{AD}hyphen",
            "word\u{2060}joiner",
            "a\u{2028}b",
        ] {
            assert!(
                subject_text_problem(bad).is_some_and(|m| m.contains("formatting")),
                "{bad:?}"
            );
        }
        for bad in [" admin", "admin ", "\u{A0}admin", "admin\u{3000}"] {
            assert_eq!(
                subject_text_problem(bad),
                Some("has leading or trailing spaces"),
                "{bad:?}"
            );
        }
        assert_eq!(
            subject_text_problem("a\nb"),
            Some("contains a control character")
        );
    }

    /// Found by the outside test: these were issued as rfc822Name SANs.
    #[test]
    fn email_domains_are_host_names() {
        let long_label = "a".repeat(63);
        assert_eq!(email_problem(&format!("a@{long_label}.dk")), None);
        let three = vec!["b".repeat(62); 3].join(".");
        let near_limit = format!("a@{three}.{}.dk", "b".repeat(61));
        assert_eq!(near_limit.len() - 2, 253);
        assert_eq!(email_problem(&near_limit), None);
        assert_eq!(email_problem("a@b-c.d-e.dk"), None);
        let too_long_label = format!("a@{}.dk", "a".repeat(64));
        let three_hundred = format!("a@{}.dk", vec!["c".repeat(59); 5].join("."));
        assert!(three_hundred.len() > 300);
        let over_limit = format!("a@{three}.{}.dk", "b".repeat(62));
        for bad in [
            "a@b..dk",
            "a@-b.dk",
            "a@-b-.dk",
            "a@b-.dk",
            "a@.b.dk",
            "a@b.dk.",
            "a@b_c.dk",
            "a@b.dk@c.dk",
            too_long_label.as_str(),
            three_hundred.as_str(),
            over_limit.as_str(),
        ] {
            assert!(
                email_problem(bad).is_some_and(|m| m.contains("not a valid e-mail")),
                "{bad} was accepted"
            );
        }
    }

    /// Found by the outside test: the punycode form of blåbær.dk passed the Æ/Ø/Å rule.
    #[test]
    fn email_domains_are_decoded_before_the_danish_letter_rule() {
        for bad in [
            "x@xn--blbr-roah.dk",
            "x@XN--BLBR-ROAH.DK",
            "x@mail.xn--blbr-roah.dk",
            "x@xn--rr-lka.dk",
            "x@xn--r-3fa9c.dk",
        ] {
            assert!(
                email_problem(bad).is_some_and(|m| m.contains("changed first")),
                "{bad} was accepted: {:?}",
                email_problem(bad)
            );
        }
        // Other IDNs are fine, and so is "xn" that is not an A-label.
        assert_eq!(email_problem("x@xn--mller-kva.de"), None, "müller.de");
        assert_eq!(email_problem("x@xnet.dk"), None);
        assert!(email_problem("x@xn--.dk").is_some(), "an empty A-label");
        assert!(
            email_problem("x@xn--a-99999999999.dk").is_some(),
            "not punycode"
        );
    }
}
