//! The texts of the notices estd sends, per event and language. No I/O: a
//! notice is rendered from a [`NoticeEvent`] (what happened, with its data)
//! and the configured [`NoticeLanguages`], and the result is what goes into
//! the outbox and, unchanged, into the e-mail.
//!
//! Subjects follow the MitID Erhverv e-mails ("Udsted og download
//! medarbejdercertifikat" / "Issue and download a user certificate",
//! "Download organisationscertifikat" / "Download an organisation
//! certificate", …). With both languages (the default) the subject is
//! "Danish / English" and the body the Danish text, a separator, then the
//! English text, as Danish public services write to recipients whose
//! language they do not know; estd keeps no language per user or
//! organisation.
//!
//! A notice never contains a one-time code or any other secret except the
//! e-mail validation link, whose token is the point of that notice (it is
//! stored only hashed, see [`super::EmailValidation`]).

use serde::{Deserialize, Serialize};

use super::{CertKind, RevocationReason, Serial};

/// Which languages notices are written in (`[notices] language`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoticeLanguages {
    /// Danish only.
    #[serde(rename = "da")]
    Danish,
    /// English only.
    #[serde(rename = "en")]
    English,
    /// Danish first, then English, in one message.
    #[serde(rename = "da+en")]
    Both,
}

/// One language of a notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// Dansk.
    Danish,
    /// English.
    English,
}

impl NoticeLanguages {
    /// The languages, in the order they appear.
    pub fn languages(self) -> &'static [Language] {
        match self {
            NoticeLanguages::Danish => &[Language::Danish],
            NoticeLanguages::English => &[Language::English],
            NoticeLanguages::Both => &[Language::Danish, Language::English],
        }
    }
}

/// What a notice tells, with the data it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoticeEvent<'a> {
    /// A user certificate was ordered: the user issues and downloads it
    /// ("Issue and download a user certificate").
    UserCertificateOrdered {
        /// The user's name.
        user: &'a str,
        /// The profile's name.
        profile: &'a str,
        /// The order's reference number.
        reference: &'a str,
        /// Where it is collected.
        link: &'a str,
        /// The certificate the order renews, if it is a renewal.
        renews: Option<Serial>,
    },
    /// An organisation or system certificate was ordered: the contact
    /// downloads it ("Download an organisation/system certificate").
    CertificateOrdered {
        /// Organisation or system (a user certificate is the other event).
        kind: CertKind,
        /// The profile's name.
        profile: &'a str,
        /// The order's reference number.
        reference: &'a str,
        /// Where it is collected.
        link: &'a str,
        /// The certificate the order renews, if it is a renewal.
        renews: Option<Serial>,
    },
    /// A certificate expires soon and should be renewed.
    RenewalDue {
        /// The certificate's subject.
        subject: &'a str,
        /// The certificate.
        serial: Serial,
        /// Its expiry date, `YYYY-MM-DD` (UTC).
        expires_on: &'a str,
        /// Whole days from now.
        days_left: u64,
    },
    /// A certificate was revoked.
    Revoked {
        /// The certificate's subject.
        subject: &'a str,
        /// The certificate.
        serial: Serial,
        /// Why.
        reason: RevocationReason,
    },
    /// A user certificate was blocked.
    Blocked {
        /// The certificate's subject.
        subject: &'a str,
        /// The certificate.
        serial: Serial,
    },
    /// A certificate was ordered under an API profile: the organisation's
    /// IdM system issues it over EST; there is no code and nothing to collect.
    OrderedForIdmSystem {
        /// The user's name, for a user certificate.
        user: Option<&'a str>,
        /// What is ordered.
        kind: CertKind,
        /// The profile's name.
        profile: &'a str,
        /// The order's reference number.
        reference: &'a str,
        /// The certificate the order renews, if it is a renewal.
        renews: Option<Serial>,
    },
    /// An e-mail address is to be confirmed before a certificate carrying
    /// it is issued.
    ValidateEmail {
        /// The address to confirm (the recipient).
        address: &'a str,
        /// The organisation's name.
        organisation: &'a str,
        /// The profile's name.
        profile: &'a str,
        /// The confirmation link (carries the token).
        link: &'a str,
        /// Hours the link works.
        valid_hours: u32,
    },
    /// A person was invited: the link activates their account.
    Invitation {
        /// Their name.
        name: &'a str,
        /// The organisation's name; `None` for a server operator.
        organisation: Option<&'a str>,
        /// The activation link (carries the token).
        link: &'a str,
        /// Hours the link works.
        valid_hours: u32,
    },
    /// A certificate was ordered for collection after login: the user (or,
    /// for an organisation or system certificate, a user administrator) logs
    /// in and issues it; there is no code.
    OrderedForLogin {
        /// The user's name, for a user certificate.
        user: Option<&'a str>,
        /// What is ordered.
        kind: CertKind,
        /// The profile's name.
        profile: &'a str,
        /// The order's reference number.
        reference: &'a str,
        /// Where to log in and collect it.
        link: &'a str,
        /// The certificate the order renews, if it is a renewal.
        renews: Option<Serial>,
    },
}

/// A rendered notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeText {
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// The line between the Danish and the English text.
pub const LANGUAGE_SEPARATOR: &str = "\n\n--- English version below ---\n\n";

/// Renders `event` in `languages`.
pub fn render_notice(event: &NoticeEvent<'_>, languages: NoticeLanguages) -> NoticeText {
    let parts: Vec<NoticeText> = languages
        .languages()
        .iter()
        .map(|l| render_one(event, *l))
        .collect();
    NoticeText {
        subject: parts
            .iter()
            .map(|p| p.subject.as_str())
            .collect::<Vec<_>>()
            .join(" / "),
        body: parts
            .iter()
            .map(|p| p.body.as_str())
            .collect::<Vec<_>>()
            .join(LANGUAGE_SEPARATOR),
    }
}

fn kind_da(kind: CertKind) -> &'static str {
    match kind {
        CertKind::Organisation => "organisationscertifikat",
        CertKind::System => "systemcertifikat",
        CertKind::User => "medarbejdercertifikat",
    }
}

fn kind_en(kind: CertKind) -> &'static str {
    match kind {
        CertKind::Organisation => "organisation certificate",
        CertKind::System => "system certificate",
        CertKind::User => "user certificate",
    }
}

/// The English kind with its article ("an organisation certificate").
fn a_kind_en(kind: CertKind) -> &'static str {
    match kind {
        CertKind::Organisation => "an organisation certificate",
        CertKind::System => "a system certificate",
        CertKind::User => "a user certificate",
    }
}

/// `text` with its first letter in upper case (for a subject that starts with it).
fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn reason_da(reason: RevocationReason) -> &'static str {
    match reason {
        RevocationReason::OrganisationCeased => "organisationen er ophørt",
        RevocationReason::SuspectedMisuse => "mistanke om misbrug",
        RevocationReason::InformationChanged => "oplysningerne er ikke længere korrekte",
        RevocationReason::Superseded => "erstattet af et nyt certifikat",
        RevocationReason::Other => "anden årsag",
        RevocationReason::Blocked => "spærret",
    }
}

fn reason_en(reason: RevocationReason) -> &'static str {
    match reason {
        RevocationReason::OrganisationCeased => "the organisation has ceased",
        RevocationReason::SuspectedMisuse => "suspected misuse",
        RevocationReason::InformationChanged => "the information is no longer correct",
        RevocationReason::Superseded => "superseded by a new certificate",
        RevocationReason::Other => "other reason",
        RevocationReason::Blocked => "blocked",
    }
}

fn render_one(event: &NoticeEvent<'_>, language: Language) -> NoticeText {
    use Language::{Danish, English};
    let (subject, body) = match (event, language) {
        (
            NoticeEvent::UserCertificateOrdered {
                user,
                profile,
                reference,
                link,
                renews,
            },
            Danish,
        ) => (
            "Udsted og download medarbejdercertifikat".to_owned(),
            format!(
                "Kære {user}\n\n\
                 Der er bestilt et medarbejdercertifikat til dig (profil \"{profile}\"){}.\n\n\
                 Referencenummer: {reference}\n\n\
                 Udsted og download certifikatet her:\n{link}\n\n\
                 Du skal bruge referencenummeret og den engangskode, du får udleveret separat. \
                 Koden står aldrig i en e-mail.",
                renews
                    .map(|s| format!(" som fornyelse af certifikat {s}"))
                    .unwrap_or_default()
            ),
        ),
        (
            NoticeEvent::UserCertificateOrdered {
                user,
                profile,
                reference,
                link,
                renews,
            },
            English,
        ) => (
            "Issue and download a user certificate".to_owned(),
            format!(
                "Dear {user}\n\n\
                 A user certificate has been ordered for you (profile \"{profile}\"){}.\n\n\
                 Reference number: {reference}\n\n\
                 Issue and download the certificate here:\n{link}\n\n\
                 You need the reference number and the one-time code handed to you separately. \
                 The code is never sent by e-mail.",
                renews
                    .map(|s| format!(" to renew certificate {s}"))
                    .unwrap_or_default()
            ),
        ),
        (
            NoticeEvent::CertificateOrdered {
                kind,
                profile,
                reference,
                link,
                renews,
            },
            Danish,
        ) => (
            format!("Download {}", kind_da(*kind)),
            format!(
                "Der er bestilt et {} til profilen \"{profile}\"{}.\n\n\
                 Referencenummer: {reference}\n\n\
                 Download certifikatet her:\n{link}\n\n\
                 Du skal bruge referencenummeret og den engangskode, du får udleveret separat. \
                 Koden står aldrig i en e-mail.",
                kind_da(*kind),
                renews
                    .map(|s| format!(" som fornyelse af certifikat {s}"))
                    .unwrap_or_default()
            ),
        ),
        (
            NoticeEvent::CertificateOrdered {
                kind,
                profile,
                reference,
                link,
                renews,
            },
            English,
        ) => (
            format!("Download {}", a_kind_en(*kind)),
            format!(
                "{} has been ordered for profile \"{profile}\"{}.\n\n\
                 Reference number: {reference}\n\n\
                 Download the certificate here:\n{link}\n\n\
                 You need the reference number and the one-time code handed to you separately. \
                 The code is never sent by e-mail.",
                capitalised(a_kind_en(*kind)),
                renews
                    .map(|s| format!(" to renew certificate {s}"))
                    .unwrap_or_default()
            ),
        ),
        (
            NoticeEvent::RenewalDue {
                subject,
                serial,
                expires_on,
                days_left,
            },
            Danish,
        ) => (
            format!("Dit certifikat udløber snart: {subject}"),
            format!(
                "Certifikat {serial} ({subject}) udløber {expires_on} (om {days_left} dage).\n\n\
                 Forny det inden da for at kunne blive ved med at bruge det."
            ),
        ),
        (
            NoticeEvent::RenewalDue {
                subject,
                serial,
                expires_on,
                days_left,
            },
            English,
        ) => (
            format!("Your certificate expires soon: {subject}"),
            format!(
                "Certificate {serial} ({subject}) expires on {expires_on} ({days_left} days from now).\n\n\
                 Renew it before then to keep using it."
            ),
        ),
        (
            NoticeEvent::Revoked {
                subject,
                serial,
                reason,
            },
            Danish,
        ) => (
            format!("Certifikat spærret: {subject}"),
            format!(
                "Certifikat {serial} ({subject}) er spærret (tilbagekaldt) og kan ikke længere bruges.\n\n\
                 Årsag: {}.\n\n\
                 Kontakt din administrator, hvis du ikke kender årsagen.",
                reason_da(*reason)
            ),
        ),
        (
            NoticeEvent::Revoked {
                subject,
                serial,
                reason,
            },
            English,
        ) => (
            format!("Certificate revoked: {subject}"),
            format!(
                "Certificate {serial} ({subject}) has been revoked and can no longer be used.\n\n\
                 Reason: {}.\n\n\
                 Contact your administrator if you do not know why.",
                reason_en(*reason)
            ),
        ),
        (NoticeEvent::Blocked { subject, serial }, Danish) => (
            format!("Medarbejdercertifikat blokeret: {subject}"),
            format!(
                "Medarbejdercertifikat {serial} ({subject}) er blokeret og kan ikke længere bruges. \
                 En blokering er endelig; bestil et nyt certifikat, hvis du skal bruge et.\n\n\
                 Kontakt din administrator, hvis du ikke selv har blokeret certifikatet."
            ),
        ),
        (NoticeEvent::Blocked { subject, serial }, English) => (
            format!("User certificate blocked: {subject}"),
            format!(
                "User certificate {serial} ({subject}) has been blocked and can no longer be used. \
                 A block is final; order a new certificate if you need one.\n\n\
                 Contact your administrator if you did not block it yourself."
            ),
        ),
        (
            NoticeEvent::OrderedForIdmSystem {
                user,
                kind,
                profile,
                reference,
                renews,
            },
            Danish,
        ) => (
            format!("{} bestilt til udstedelse via IdM-system", capitalised(kind_da(*kind))),
            format!(
                "{}Der er bestilt et {} (profil \"{profile}\"){}.\n\n\
                 Referencenummer: {reference}\n\n\
                 Certifikatet udstedes, når organisationens IdM-system henter det over EST. \
                 Der er ingen engangskode, og intet skal hentes her.",
                user.map(|u| format!("Kære {u}\n\n")).unwrap_or_default(),
                kind_da(*kind),
                renews
                    .map(|s| format!(" som fornyelse af certifikat {s}"))
                    .unwrap_or_default()
            ),
        ),
        (
            NoticeEvent::OrderedForIdmSystem {
                user,
                kind,
                profile,
                reference,
                renews,
            },
            English,
        ) => (
            format!("{} ordered for issuance by your IdM system", capitalised(kind_en(*kind))),
            format!(
                "{}{} has been ordered (profile \"{profile}\"){}.\n\n\
                 Reference number: {reference}\n\n\
                 It is issued when your organisation's IdM system enrols it over EST. \
                 There is no one-time code and nothing to collect here.",
                user.map(|u| format!("Dear {u}\n\n")).unwrap_or_default(),
                capitalised(a_kind_en(*kind)),
                renews
                    .map(|s| format!(" to renew certificate {s}"))
                    .unwrap_or_default()
            ),
        ),
        (
            NoticeEvent::ValidateEmail {
                address,
                organisation,
                profile,
                link,
                valid_hours,
            },
            Danish,
        ) => (
            "Bekræft e-mailadresse til certifikat".to_owned(),
            format!(
                "{organisation} har bestilt et certifikat (profil \"{profile}\"), der skal \
                 indeholde e-mailadressen {address}.\n\n\
                 Bekræft, at adressen er jeres, ved at åbne linket og trykke \"Bekræft\":\n{link}\n\n\
                 Linket virker i {valid_hours} timer og kun én gang. Har I ikke bestilt et \
                 certifikat, kan I se bort fra denne e-mail; så udstedes intet."
            ),
        ),
        (
            NoticeEvent::ValidateEmail {
                address,
                organisation,
                profile,
                link,
                valid_hours,
            },
            English,
        ) => (
            "Confirm the e-mail address for a certificate".to_owned(),
            format!(
                "{organisation} has ordered a certificate (profile \"{profile}\") that is to \
                 contain the e-mail address {address}.\n\n\
                 Confirm that the address is yours by opening the link and pressing \"Confirm\":\n{link}\n\n\
                 The link works for {valid_hours} hours and only once. If you did not order a \
                 certificate, ignore this e-mail; nothing will be issued."
            ),
        ),
        (
            NoticeEvent::Invitation {
                name,
                organisation,
                link,
                valid_hours,
            },
            Danish,
        ) => (
            "Aktivér din bruger".to_owned(),
            format!(
                "Kære {name}\n\n\
                 Du er oprettet som bruger{} i certifikatservicen.\n\n\
                 Aktivér din bruger her: vælg en adgangskode og tilføj en \
                 autentifikator-app (TOTP):\n{link}\n\n\
                 Linket virker i {valid_hours} timer og kun én gang.",
                organisation
                    .map(|o| format!(" hos {o}"))
                    .unwrap_or_else(|| " (driftsansvarlig)".into())
            ),
        ),
        (
            NoticeEvent::Invitation {
                name,
                organisation,
                link,
                valid_hours,
            },
            English,
        ) => (
            "Activate your account".to_owned(),
            format!(
                "Dear {name}\n\n\
                 You have been added as a user{} of the certificate service.\n\n\
                 Activate your account here: choose a password and add an authenticator \
                 app (TOTP):\n{link}\n\n\
                 The link works for {valid_hours} hours and only once.",
                organisation
                    .map(|o| format!(" for {o}"))
                    .unwrap_or_else(|| " (server operator)".into())
            ),
        ),
        (
            NoticeEvent::OrderedForLogin {
                user,
                kind,
                profile,
                reference,
                link,
                renews,
            },
            Danish,
        ) => (
            format!("Udsted og download {}", kind_da(*kind)),
            format!(
                "{}Der er bestilt et {} (profil \"{profile}\"){}.\n\n\
                 Referencenummer: {reference}\n\n\
                 Log ind og udsted certifikatet her:\n{link}",
                user.map(|u| format!("Kære {u}\n\n")).unwrap_or_default(),
                kind_da(*kind),
                renews
                    .map(|s| format!(" som fornyelse af certifikat {s}"))
                    .unwrap_or_default()
            ),
        ),
        (
            NoticeEvent::OrderedForLogin {
                user,
                kind,
                profile,
                reference,
                link,
                renews,
            },
            English,
        ) => (
            format!("Issue and download {}", a_kind_en(*kind)),
            format!(
                "{}{} has been ordered (profile \"{profile}\"){}.\n\n\
                 Reference number: {reference}\n\n\
                 Log in and issue the certificate here:\n{link}",
                user.map(|u| format!("Dear {u}\n\n")).unwrap_or_default(),
                capitalised(a_kind_en(*kind)),
                renews
                    .map(|s| format!(" to renew certificate {s}"))
                    .unwrap_or_default()
            ),
        ),
    };
    NoticeText { subject, body }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_languages_put_danish_first() {
        let event = NoticeEvent::Blocked {
            subject: "CN=Ulla",
            serial: Serial([1; 16]),
        };
        let both = render_notice(&event, NoticeLanguages::Both);
        let da = render_notice(&event, NoticeLanguages::Danish);
        let en = render_notice(&event, NoticeLanguages::English);
        assert_eq!(both.subject, format!("{} / {}", da.subject, en.subject));
        assert_eq!(
            both.body,
            format!("{}{LANGUAGE_SEPARATOR}{}", da.body, en.body)
        );
    }

    /// Every event, in each language: its own subject, the data it names,
    /// and text in that language only.
    #[test]
    fn every_event_renders_in_each_language() {
        let serial = Serial([0x42; 16]);
        let events = [
            (
                NoticeEvent::UserCertificateOrdered {
                    user: "Ulla",
                    profile: "Medarbejdere",
                    reference: "REF1",
                    link: "https://x.dk/collect?ref=REF1",
                    renews: None,
                },
                "Udsted og download medarbejdercertifikat",
                "Issue and download a user certificate",
                vec![
                    "REF1",
                    "https://x.dk/collect?ref=REF1",
                    "Ulla",
                    "Medarbejdere",
                ],
            ),
            (
                NoticeEvent::CertificateOrdered {
                    kind: CertKind::System,
                    profile: "Integration",
                    reference: "REF2",
                    link: "https://x.dk/collect?ref=REF2",
                    renews: Some(serial),
                },
                "Download systemcertifikat",
                "Download a system certificate",
                vec![
                    "REF2",
                    "https://x.dk/collect?ref=REF2",
                    "Integration",
                    "4242",
                ],
            ),
            (
                NoticeEvent::OrderedForIdmSystem {
                    user: Some("Ulla"),
                    kind: CertKind::User,
                    profile: "IdM-brugere",
                    reference: "REF3",
                    renews: Some(serial),
                },
                "Medarbejdercertifikat bestilt til udstedelse via IdM-system",
                "User certificate ordered for issuance by your IdM system",
                vec!["REF3", "Ulla", "IdM-brugere", "4242", "EST"],
            ),
            (
                NoticeEvent::RenewalDue {
                    subject: "CN=dev",
                    serial,
                    expires_on: "2027-01-02",
                    days_left: 12,
                },
                "Dit certifikat udløber snart: CN=dev",
                "Your certificate expires soon: CN=dev",
                vec!["2027-01-02", "12", "4242"],
            ),
            (
                NoticeEvent::Revoked {
                    subject: "CN=dev",
                    serial,
                    reason: RevocationReason::OrganisationCeased,
                },
                "Certifikat spærret: CN=dev",
                "Certificate revoked: CN=dev",
                vec!["4242", "CN=dev"],
            ),
            (
                NoticeEvent::Blocked {
                    subject: "CN=Ulla",
                    serial,
                },
                "Medarbejdercertifikat blokeret: CN=Ulla",
                "User certificate blocked: CN=Ulla",
                vec!["4242", "CN=Ulla"],
            ),
            (
                NoticeEvent::ValidateEmail {
                    address: "ops@x.dk",
                    organisation: "Demo A/S",
                    profile: "Signing",
                    link: "https://x.dk/validate-email?token=T",
                    valid_hours: 72,
                },
                "Bekræft e-mailadresse til certifikat",
                "Confirm the e-mail address for a certificate",
                vec!["ops@x.dk", "Demo A/S", "Signing", "token=T", "72"],
            ),
        ];
        for (event, da_subject, en_subject, data) in events {
            let da = render_notice(&event, NoticeLanguages::Danish);
            let en = render_notice(&event, NoticeLanguages::English);
            assert_eq!(da.subject, da_subject);
            assert_eq!(en.subject, en_subject);
            for d in &data {
                assert!(da.body.contains(d), "{d} in {}", da.body);
                assert!(en.body.contains(d), "{d} in {}", en.body);
            }
            assert!(!da.body.contains(" the ") && !da.body.contains("certificate "));
            assert!(!en.body.contains(" og ") && !en.body.contains("certifikat"));
        }
    }

    #[test]
    fn articles_are_right() {
        for (kind, en) in [
            (
                CertKind::Organisation,
                "Download an organisation certificate",
            ),
            (CertKind::System, "Download a system certificate"),
        ] {
            let event = NoticeEvent::CertificateOrdered {
                kind,
                profile: "P",
                reference: "R",
                link: "L",
                renews: None,
            };
            let t = render_notice(&event, NoticeLanguages::English);
            assert_eq!(t.subject, en);
            assert!(!t.body.contains("A organisation"), "{}", t.body);
            let idm = NoticeEvent::OrderedForIdmSystem {
                user: None,
                kind,
                profile: "P",
                reference: "R",
                renews: None,
            };
            let t = render_notice(&idm, NoticeLanguages::English);
            assert!(!t.body.contains("A organisation"), "{}", t.body);
            assert!(!t.body.contains("collect?ref"), "{}", t.body);
        }
    }
}
