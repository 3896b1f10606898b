//! Danish and English: chosen by a cookie the language switch sets, else by
//! `Accept-Language`, else Danish.

/// A page's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Dansk.
    Da,
    /// English.
    En,
}

impl Lang {
    /// `da` or `en`.
    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "da" => Some(Lang::Da),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The code for `lang=` and the cookie.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Da => "da",
            Lang::En => "en",
        }
    }

    /// The other language (the switch offers it).
    pub fn other(self) -> Lang {
        match self {
            Lang::Da => Lang::En,
            Lang::En => Lang::Da,
        }
    }

    /// The language's own name.
    pub fn name(self) -> &'static str {
        match self {
            Lang::Da => "Dansk",
            Lang::En => "English",
        }
    }

    /// `en` or `da`.
    pub fn pick(self, en: &'static str, da: &'static str) -> &'static str {
        match self {
            Lang::Da => da,
            Lang::En => en,
        }
    }

    /// The first of Danish or English that `Accept-Language` names, by
    /// order and weight; Danish when it names neither.
    pub fn from_accept(header: Option<&str>) -> Lang {
        let mut best: Option<(f32, Lang)> = None;
        for item in header.unwrap_or("").split(',').take(20) {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("");
            let Some(lang) = Lang::parse(primary) else {
                continue;
            };
            // q=0: not acceptable.
            if q <= 0.0 {
                continue;
            }
            if best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map(|(_, l)| l).unwrap_or(Lang::Da)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_chooses_by_weight_and_defaults_to_danish() {
        assert_eq!(Lang::from_accept(Some("en-GB,en;q=0.9")), Lang::En);
        assert_eq!(Lang::from_accept(Some("de,en;q=0.5,da;q=0.8")), Lang::Da);
        assert_eq!(Lang::from_accept(Some("da-DK")), Lang::Da);
        assert_eq!(Lang::from_accept(Some("fr")), Lang::Da);
        assert_eq!(Lang::from_accept(None), Lang::Da);
        assert_eq!(Lang::from_accept(Some("en;q=abc")), Lang::En);
        assert_eq!(Lang::from_accept(Some("en-GB,en;q=0.9,da;q=0")), Lang::En);
        assert_eq!(Lang::from_accept(Some("en;q=0")), Lang::Da);
    }
}
