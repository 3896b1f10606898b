//! The admin API's OpenAPI 3.0 document, derived rather than kept by hand:
//! the paths, methods and who may call them come from the route table
//! ([`ROUTES`]); each operation's words and status codes from [`operation`]
//! (a `match` on [`Endpoint`], so a route cannot be added without them); and
//! every schema from the Rust type that serde reads or writes (schemars), so
//! a field or an enum's names have one copy. A unit test holds the document
//! against the committed snapshot `openapi.snapshot.json`
//! (`UPDATE_SNAPSHOTS=1 cargo test --lib openapi` rewrites it).

use std::sync::LazyLock;

use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::{JsonSchema, Schema};
use serde_json::{json, Map, Value};

use super::auth::SESSION_COOKIE;
use super::backup::{BackupRequest, BackupWritten};
use super::certificates::{Revocation, RevokedView};
use super::crl::CrlInfo;
use super::history::AuditPage;
use super::login::{Activate, ActivationView, Login, SessionView, TermsView};
use super::me::{BrowserIssuance, Confirm, HardwareIssuance, IssuedPkcs12};
use super::orders::{NewCode, NewOrder};
use super::organisations::{NewOrganisation, OrganisationChanges};
use super::people::{Invitation, PersonView};
use super::profiles::{ChangedProfile, CreatedProfile, NewProfile, ProfileChanges, ProfilePage};
use super::routes::{Access, Endpoint, Route, ROUTES};
use super::tokens::{CreatedToken, NewToken, TokenView};
use super::views::{
    AuditView, CertView, CreatedOrderView, EmailValidationView, Items, NotificationView, OrderView,
    PublicCertView,
};
use crate::model::{Organisation, Profile};
use crate::problem::{Problem, PROBLEM_JSON};
use crate::service::own::Task;
use Endpoint as E;

/// The document as served, made once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    // Serialising a `Value` cannot fail; the fallback keeps the request path panic-free.
    serde_json::to_string(&document()).unwrap_or_else(|_| "{}".into())
});

/// The document as JSON text, served at `/api/v1/openapi.json` and `/openapi.json`.
pub fn json_text() -> &'static str {
    &DOCUMENT
}

/// A schema of `T`: a reference into `components/schemas`.
type SchemaOf = fn(&mut SchemaGenerator) -> Schema;

fn of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// What a successful answer carries.
enum Content {
    /// JSON of a type.
    Json(SchemaOf),
    /// Any JSON object (this document).
    AnyJson,
    /// A CSV file.
    Csv,
    /// A DER CRL.
    Crl,
    /// No body (204).
    Empty,
    /// A certificate, by the `format` parameter: JSON of a type, or the
    /// certificate itself as PEM or DER.
    Certificate(SchemaOf),
}

/// A query parameter.
enum Query {
    /// Text: name, description.
    Text(&'static str, &'static str),
    /// Text that must be given: name, description.
    TextRequired(&'static str, &'static str),
    /// A whole number: name, description, minimum, maximum, default.
    Number(&'static str, &'static str, u64, Option<u64>, Option<u64>),
    /// One of a few names: name, description, the names, the default.
    Choice(
        &'static str,
        &'static str,
        &'static [&'static str],
        Option<&'static str>,
    ),
}

/// The names of [`ProfileState`], as the `state` parameter takes them.
const PROFILE_STATES: &[&str] = &["active", "ordered", "inactive"];

/// The `format`s of a person's certificate download.
const CERT_FORMATS: &[&str] = &["json", "pem", "der"];

/// What the `state` parameter of the profile search and export says.
const STATE_PARAMETER: &str = "Only profiles in this state now: `active` (a certificate of it is \
    valid), `ordered` (none is, but an order is open), `inactive` (neither). Another value answers \
    400 naming `state`.";

/// One operation's words and status codes.
struct Operation {
    summary: &'static str,
    description: Option<&'static str>,
    tag: &'static str,
    query: &'static [Query],
    /// The JSON body it takes (always required).
    body: Option<SchemaOf>,
    /// The success status, its description and content.
    ok: (u16, &'static str, Content),
    /// The problem+json answers it gives, with their descriptions.
    errors: &'static [(u16, &'static str)],
}

const E400: (u16, &str) = (
    400,
    "Invalid field (the problem names it in `field`) or malformed JSON.",
);
const E401: (u16, &str) = (
    401,
    "No or invalid credentials (with `WWW-Authenticate: Bearer realm=\"estd-admin\"`).",
);
const E403: (u16, &str) = (403, "Authenticated but not permitted.");
const E404: (u16, &str) = (404, "No such resource, or one of another organisation.");
const E409: (u16, &str) = (
    409,
    "Conflict: a duplicate, or an illegal state change (the detail names the current state).",
);
/// 401 of a logged-in person's own call.
const E401_SESSION: (u16, &str) = (
    401,
    "No credentials, or the session has ended (logged out, idle or too old, or the person \
     deactivated): log in again.",
);
/// 403 of a logged-in person's own call.
const E403_PERSON: (u16, &str) = (
    403,
    "Not a logged-in person: a bearer token or client certificate has no account.",
);
const E413: (u16, &str) = (413, "Body larger than 64 KiB.");
const E415: (u16, &str) = (415, "Body is not application/json.");

/// The words and status codes of each endpoint (a test holds it against
/// the route table: one entry per route).
static OPERATIONS: &[(Endpoint, Operation)] = &[
    (E::OpenApi, Operation {
        summary: "This document",
        description: None,
        tag: "meta",
        query: &[],
        body: None,
        ok: (200, "The OpenAPI document.", Content::AnyJson),
        errors: &[],
    }),
    (E::ListOrganisations, Operation {
        summary: "List the organisations the caller may see",
        description: None,
        tag: "organisations",
        query: &[],
        body: None,
        ok: (200, "Organisations.", Content::Json(of::<Items<Organisation>>)),
        errors: &[E401, E403],
    }),
    (E::CreateOrganisation, Operation {
        summary: "Create an organisation (server operators only)",
        description: None,
        tag: "organisations",
        query: &[],
        body: Some(of::<NewOrganisation>),
        ok: (201, "Created.", Content::Json(of::<Organisation>)),
        errors: &[E401, E403, E400, E409, E413, E415],
    }),
    (E::GetOrganisation, Operation {
        summary: "Read an organisation",
        description: None,
        tag: "organisations",
        query: &[],
        body: None,
        ok: (200, "The organisation.", Content::Json(of::<Organisation>)),
        errors: &[E401, E403, E404],
    }),
    (E::UpdateOrganisation, Operation {
        summary: "Change an organisation's certificate settings (organisation administrators)",
        description: Some("The name, permissions and P and SE numbers are the CA's registration data: an organisation's own token or certificate is refused with 403. Refused with 409 if a profile still uses a removed P or SE number, or has seal on while seal is being disallowed."),
        tag: "organisations",
        query: &[],
        body: Some(of::<OrganisationChanges>),
        ok: (200, "Changed.", Content::Json(of::<Organisation>)),
        errors: &[E401, E403, E400, E404, E409, E413, E415],
    }),
    (E::ListTokens, Operation {
        summary: "List the organisation's admin tokens (never the tokens themselves)",
        description: None,
        tag: "tokens",
        query: &[],
        body: None,
        ok: (200, "The tokens, newest first, active, expired and revoked.", Content::Json(of::<Items<TokenView>>)),
        errors: &[E401, E403, E404],
    }),
    (E::EmailValidations, Operation {
        summary: "List where the validation of the organisation's certificate e-mail addresses stands",
        description: Some("An organisation or system certificate whose profile carries an e-mail address is issued only once the address was confirmed through a link sent to it (see [email_validation] in the configuration); until then its order shows awaiting-email-validation and EST answers 202 with Retry-After. One entry per address, never the link's token."),
        tag: "organisations",
        query: &[],
        body: None,
        ok: (200, "The addresses, in order.", Content::Json(of::<Items<EmailValidationView>>)),
        errors: &[E401, E403, E404],
    }),
    (E::CreateToken, Operation {
        summary: "Create an admin API token for the organisation (operators only; shown once)",
        description: None,
        tag: "tokens",
        query: &[],
        body: Some(of::<NewToken>),
        ok: (201, "The token, shown this once (only its hash is stored), with its id and expiry.", Content::Json(of::<CreatedToken>)),
        errors: &[E401, (403, "Not a server operator: an organisation's own token or certificate cannot create tokens."), E400, E404, E413, E415],
    }),
    (E::SearchProfiles, Operation {
        summary: "Search profiles",
        description: None,
        tag: "profiles",
        query: &[Query::Text("q", "Case-insensitive substring of the UUID, name, contact person's name or e-mail, or the e-mail in the certificate."), Query::Text("cvr", "Only this organisation."), Query::Choice("state", STATE_PARAMETER, PROFILE_STATES, None), Query::Number("page", "Page, from 1.", 1, None, Some(1)), Query::Number("per_page", "Profiles per page.", 1, Some(500), Some(50))],
        body: None,
        ok: (200, "One page of profiles.", Content::Json(of::<ProfilePage>)),
        errors: &[E401, E403, E400],
    }),
    (E::CreateProfile, Operation {
        summary: "Create a certificate profile, optionally ordering a certificate in the same call",
        description: Some("A duplicate name within the organisation, a second default profile, or an EST label in use answer 409. If the order fails, the profile is not created either. `seal` is refused with 400 unless the organisation allows seal generation and the kind is `organisation`; a seal profile's certificates carry keyUsage digitalSignature and contentCommitment (nonRepudiation) and the seal certificate policy (`[certificate_policies] seal`), where an organisation profile's carry digitalSignature with keyAgreement (EC) or keyEncipherment (RSA) and the organisation policy."),
        tag: "profiles",
        query: &[],
        body: Some(of::<NewProfile>),
        ok: (201, "Created.", Content::Json(of::<CreatedProfile>)),
        errors: &[E401, E403, E400, E409, E413, E415],
    }),
    (E::GetProfile, Operation {
        summary: "Read a profile",
        description: None,
        tag: "profiles",
        query: &[],
        body: None,
        ok: (200, "The profile.", Content::Json(of::<Profile>)),
        errors: &[E401, E403, E404],
    }),
    (E::UpdateProfile, Operation {
        summary: "Change a profile (its EST label cannot change)",
        description: None,
        tag: "profiles",
        query: &[],
        body: Some(of::<ProfileChanges>),
        ok: (200, "Changed; `notice` says that changes to rights and seal apply to certificates issued from now on.", Content::Json(of::<ChangedProfile>)),
        errors: &[E401, E403, E400, E404, E409, E413, E415],
    }),
    (E::ProfileCertificatesCsv, Operation {
        summary: "The profile's certificates as CSV",
        description: None,
        tag: "export",
        query: &[],
        body: None,
        ok: (200, "CSV with header row `profile_id,profile_name,status,serial,not_after,subject`, one row per certificate.", Content::Csv),
        errors: &[E401, E403, E404],
    }),
    (E::ExportCsv, Operation {
        summary: "An organisation's certificates as CSV (an operator without cvr: every certificate)",
        description: None,
        tag: "export",
        query: &[Query::Text("cvr", "The organisation.")],
        body: None,
        ok: (200, "CSV with header row `profile_id,profile_name,status,serial,not_after,subject`, one row per certificate.", Content::Csv),
        errors: &[E401, E403, E400, E404],
    }),
    (E::ProfilesCsv, Operation {
        summary: "An organisation's certificate profiles as CSV, those without certificates too (an operator without cvr: every profile)",
        description: Some("UTF-8 with a byte order mark, CRLF line ends, RFC 4180 quoting; a cell that starts with =, +, -, @, tab or CR gets a leading ' so that a spreadsheet does not take it for a formula (so do the certificate exports). `state` is the profile's state now (see the profile search); `valid_certificates` counts its certificates that are issued, not expired and not revoked or blocked."),
        tag: "export",
        query: &[Query::Text("cvr", "The organisation."), Query::Choice("state", STATE_PARAMETER, PROFILE_STATES, None)],
        body: None,
        ok: (200, "CSV with header row `profile_id,cvr,name,kind,est_label,identification,issuance,contact_name,contact_email,email,p_number,se_number,seal,publish,state,valid_certificates`, one row per profile.", Content::Csv),
        errors: &[E401, E403, E400, E404],
    }),
    (E::ListOrders, Operation {
        summary: "List orders that are not deleted",
        description: None,
        tag: "orders",
        query: &[Query::Text("profile_id", "Only this profile."), Query::Text("cvr", "Only this organisation."), Query::Text("user_email", "Only user certificates for this e-mail address (case-insensitive).")],
        body: None,
        ok: (200, "Orders.", Content::Json(of::<Items<OrderView>>)),
        errors: &[E401, E403, E400],
    }),
    (E::CreateOrder, Operation {
        summary: "Order a certificate",
        description: Some("403 if the organisation does not allow user certificates. `publish` (user certificates only; 400 naming `publish` for others) decides whether the issued certificate is in the public certificate database; absent, the profile's `publish` decides when it is issued. A renewal keeps the choice. Under a profile with identification `api` (the default for such a profile) only a user certificate is ordered (409 without `user`: the IdM system enrols the profile's own certificates itself); the order has no one-time code, and the organisation's IdM system collects it with its est-enroll client certificate by `simpleenroll` at the profile's EST label, with a CSR whose CN is the user's name and whose subjectAltName carries the user's e-mail address as rfc822Name (case-insensitive). That enrolment issues a user certificate with the ordered e-mail address, linked to this order, which becomes `issued`; it is refused if no pending order or several match. Identification `api` for a profile the IdM system does not enrol (its identification is not `api`, or it issues by serverkeygen) answers 409."),
        tag: "orders",
        query: &[],
        body: Some(of::<NewOrder>),
        ok: (201, "Ordered; `code` (one-time-code orders) is shown once.", Content::Json(of::<CreatedOrderView>)),
        errors: &[E401, E403, E400, E404, E413, E415],
    }),
    (E::GetOrder, Operation {
        summary: "Read an order (deleted ones too, for history)",
        description: None,
        tag: "orders",
        query: &[],
        body: None,
        ok: (200, "The order.", Content::Json(of::<OrderView>)),
        errors: &[E401, E403, E404],
    }),
    (E::DeleteOrder, Operation {
        summary: "Delete a certificate order (before issue only)",
        description: None,
        tag: "orders",
        query: &[],
        body: None,
        ok: (200, "Deleted.", Content::Json(of::<OrderView>)),
        errors: &[E401, E403, E404, E409],
    }),
    (E::ApproveOrder, Operation {
        summary: "Approve a held API enrolment",
        description: None,
        tag: "orders",
        query: &[],
        body: None,
        ok: (200, "Approved.", Content::Json(of::<OrderView>)),
        errors: &[E401, E403, E404, E409],
    }),
    (E::RejectOrder, Operation {
        summary: "Reject a held API enrolment",
        description: None,
        tag: "orders",
        query: &[],
        body: None,
        ok: (200, "Rejected.", Content::Json(of::<OrderView>)),
        errors: &[E401, E403, E404, E409],
    }),
    (E::NewCode, Operation {
        summary: "Issue a new one-time code (also unlocks the order)",
        description: None,
        tag: "orders",
        query: &[],
        body: None,
        ok: (200, "The new code, shown once.", Content::Json(of::<NewCode>)),
        errors: &[E401, E403, E404, E409],
    }),
    (E::GetCertificate, Operation {
        summary: "Read a certificate",
        description: None,
        tag: "certificates",
        query: &[],
        body: None,
        ok: (200, "The certificate.", Content::Json(of::<CertView>)),
        errors: &[E401, E403, E400, E404],
    }),
    (E::RenewCertificate, Operation {
        summary: "Order a renewal (before expiry and revocation only)",
        description: Some("Refused with 409 for a certificate that already has a valid successor, and while another renewal order for it is open. A certificate of an API profile (identification `api`) gets a renewal order without a one-time code: the certificate's next `simplereenroll` fulfils it (the order becomes `issued`, the new certificate renews the old), and for a user certificate so does the IdM system's `simpleenroll` of a CSR naming the user. A user's renewal is shown `in-progress`, an organisation's or system's `pending`; an order nobody fulfils can be deleted."),
        tag: "certificates",
        query: &[],
        body: None,
        ok: (201, "Ordered.", Content::Json(of::<CreatedOrderView>)),
        errors: &[E401, E403, E400, E404, E409],
    }),
    (E::RevokeCertificate, Operation {
        summary: "Revoke a certificate, for good",
        description: Some("With reason suspected-misuse (keyCompromise), the certificate's successors (renewed_by, followed along the chain) are revoked too, since whoever held the key could have re-enrolled with it; they are listed in also_revoked. Other reasons leave the successors valid."),
        tag: "certificates",
        query: &[],
        body: Some(of::<Revocation>),
        ok: (200, "Revoked. The certificate, its successor in renewed_by, and the successors revoked with it in also_revoked.", Content::Json(of::<RevokedView>)),
        errors: &[E401, E403, E400, E404, E409, E413, E415],
    }),
    (E::BlockCertificate, Operation {
        summary: "Block a user certificate, for good",
        description: Some("Only user certificates can be blocked (400 otherwise)."),
        tag: "certificates",
        query: &[],
        body: None,
        ok: (200, "Blocked.", Content::Json(of::<CertView>)),
        errors: &[E401, E403, E400, E404, E409],
    }),
    (E::AuditLog, Operation {
        summary: "The audit log, paged from the newest (each page oldest first)",
        description: Some("Reads the log backwards from its newest event and stops when `limit` matching events are found. To read further back, pass the page's `next_before` as `before`. Records older than the configured retention (`store.audit_retention_days`) are pruned. Refusals of anonymous EST callers are counted in the metric `estd_est_anonymous_refusals_total`, not stored here."),
        tag: "history",
        query: &[Query::Text("cvr", "Only this organisation."), Query::Text("profile_id", "Only this profile."), Query::Text("serial", "Only this certificate."), Query::Text("order", "Only this order reference."), Query::Number("limit", "At most this many (the newest matching ones, older than `before` if given).", 1, Some(10000), Some(1000)), Query::Number("before", "Only events older than this event id: the `next_before` of the previous page.", 1, None, None)],
        body: None,
        ok: (200, "Events.", Content::Json(of::<AuditPage>)),
        errors: &[E401, E403, E400],
    }),
    (E::Notifications, Operation {
        summary: "The notification outbox",
        description: None,
        tag: "history",
        query: &[Query::Text("cvr", "Only this organisation.")],
        body: None,
        ok: (200, "Notices.", Content::Json(of::<Items<NotificationView>>)),
        errors: &[E401, E403, E400],
    }),
    (E::PublicCertificates, Operation {
        summary: "Public certificate database: published certificates only",
        description: Some("At least one parameter is required."),
        tag: "public",
        query: &[Query::Text("email", "E-mail address in the certificate (case-insensitive)."), Query::Text("cvr", "Organisation."), Query::Text("serial", "Serial number (hex).")],
        body: None,
        ok: (200, "Matching published certificates (all given parameters must match).", Content::Json(of::<Items<PublicCertView>>)),
        errors: &[E400],
    }),
    (E::GetCrl, Operation {
        summary: "The current CRL (DER), as served at the CRL distribution point",
        description: None,
        tag: "revocation",
        query: &[],
        body: None,
        ok: (200, "The CRL.", Content::Crl),
        errors: &[(401, "No or invalid credentials."), (404, "No CRL has been signed yet.")],
    }),
    (E::RegenerateCrl, Operation {
        summary: "Sign a new CRL now (server operators only)",
        description: None,
        tag: "revocation",
        query: &[],
        body: None,
        ok: (200, "The new CRL's number and times.", Content::Json(of::<CrlInfo>)),
        errors: &[(401, "No or invalid credentials."), (403, "Not a server operator.")],
    }),
    (E::WriteBackup, Operation {
        summary: "Write a backup of the store and the certificate folder to a new file on estd's host, while estd serves (server operators only)",
        description: Some("Every record committed before the call is in it, and the CA material (unless its key is in an HSM). With a passphrase it is encrypted (age, scrypt). `estd restore --from FILE` restores it into an empty store."),
        tag: "operations",
        query: &[],
        body: Some(of::<BackupRequest>),
        ok: (200, "Written.", Content::Json(of::<BackupWritten>)),
        errors: &[(400, "The file name or passphrase is not usable, or writing failed."), (401, "No or invalid credentials."), (403, "Not a server operator.")],
    }),
    (E::RevokeToken, Operation {
        summary: "Revoke one of the organisation's admin tokens (operators, or the organisation's own actors); it is refused (401) from then on",
        description: None,
        tag: "tokens",
        query: &[],
        body: None,
        ok: (200, "Revoked.", Content::Json(of::<TokenView>)),
        errors: &[E401, E403, E404, E409],
    }),
    (E::ListOperatorTokens, Operation {
        summary: "List the server operators' admin tokens (operators only; never the tokens themselves)",
        description: None,
        tag: "tokens",
        query: &[],
        body: None,
        ok: (200, "The tokens, newest first, active, expired and revoked.", Content::Json(of::<Items<TokenView>>)),
        errors: &[E401, E403],
    }),
    (E::CreateOperatorToken, Operation {
        summary: "Create an operator token (operators only; shown once)",
        description: None,
        tag: "tokens",
        query: &[],
        body: Some(of::<NewToken>),
        ok: (201, "The token, shown this once (only its hash is stored), with its id and expiry.", Content::Json(of::<CreatedToken>)),
        errors: &[E401, (403, "Not a server operator: an organisation's own token or certificate cannot create tokens."), E400, E413, E415],
    }),
    (E::RevokeOperatorToken, Operation {
        summary: "Revoke an operator token (operators only); it is refused (401) from then on",
        description: None,
        tag: "tokens",
        query: &[],
        body: None,
        ok: (200, "Revoked.", Content::Json(of::<TokenView>)),
        errors: &[E401, E403, E404, E409],
    }),
    (E::ListPeople, Operation {
        summary: "List the organisation's people",
        description: Some("Everyone invited to the organisation: invited, active and deactivated; never a password or an authenticator's secret."),
        tag: "people",
        query: &[],
        body: None,
        ok: (200, "People.", Content::Json(of::<Items<PersonView>>)),
        errors: &[E401, E403, E404],
    }),
    (E::InvitePerson, Operation {
        summary: "Invite a person to the organisation",
        description: Some("Stores them invited and e-mails them an activation link (valid `[people] invitation_ttl_hours`); their e-mail address is their login name within the organisation. `roles` are organisation roles (a server role answers 400 naming `roles`); none makes a user, who has only their own certificates. A caller grants only roles they hold themselves (403 otherwise); a server operator grants any organisation role."),
        tag: "people",
        query: &[],
        body: Some(of::<Invitation>),
        ok: (201, "Invited; the activation link went by e-mail, never in this answer.", Content::Json(of::<PersonView>)),
        errors: &[E401, (403, "A role this call needs is missing, or a role is granted that the caller does not hold."), E400, (404, "No such organisation, or one of another organisation."), (409, "The address is already a person of this organisation."), E413, E415],
    }),
    (E::ListOperators, Operation {
        summary: "List the server operators (people without an organisation)",
        description: None,
        tag: "people",
        query: &[],
        body: None,
        ok: (200, "People.", Content::Json(of::<Items<PersonView>>)),
        errors: &[E401, E403],
    }),
    (E::InviteOperator, Operation {
        summary: "Invite a server operator",
        description: Some("Stores them invited and e-mails them an activation link (valid `[people] invitation_ttl_hours`). `roles` is `[\"operator\"]`, the default; anything else answers 400 naming `roles`."),
        tag: "people",
        query: &[],
        body: Some(of::<Invitation>),
        ok: (201, "Invited; the activation link went by e-mail, never in this answer.", Content::Json(of::<PersonView>)),
        errors: &[E401, (403, "Not a server operator."), E400, (409, "The address is already a server operator."), E413, E415],
    }),
    (E::GetPerson, Operation {
        summary: "Read a person",
        description: None,
        tag: "people",
        query: &[],
        body: None,
        ok: (200, "The person.", Content::Json(of::<PersonView>)),
        errors: &[E401, E403, (404, "No such person, or one of another organisation (an operator is seen by operators only).")],
    }),
    (E::DeactivatePerson, Operation {
        summary: "Deactivate a person, for good; their sessions end",
        description: Some("Takes no fields (an empty body, or `{}`). Their certificates stay as they are."),
        tag: "people",
        query: &[],
        body: None,
        ok: (200, "Deactivated.", Content::Json(of::<PersonView>)),
        errors: &[E401, E403, (404, "No such person, or one of another organisation."), (409, "Already deactivated, or the caller themselves.")],
    }),
    (E::Reinvite, Operation {
        summary: "Send an invited person a new activation link (the old one stops working)",
        description: Some("Takes no fields (an empty body, or `{}`). The link is valid `[people] invitation_ttl_hours` from now."),
        tag: "people",
        query: &[],
        body: None,
        ok: (200, "Sent; the link went by e-mail, never in this answer.", Content::Json(of::<PersonView>)),
        errors: &[E401, E403, (404, "No such person, or one of another organisation."), (409, "The person is not invited (already active, or deactivated).")],
    }),
    (E::GetActivation, Operation {
        summary: "What an activation link shows: who is invited, and the authenticator's secret to enrol",
        description: Some("The first step of activation: enrol the TOTP secret in an authenticator app (or scan `totp_uri` as a QR code), then `POST /activation`."),
        tag: "login",
        query: &[Query::TextRequired("token", "The activation link's token.")],
        body: None,
        ok: (200, "The invitation.", Content::Json(of::<ActivationView>)),
        errors: &[(400, "No `token`."), (401, "The link is not valid, or has expired (ask for a new one).")],
    }),
    (E::Activate, Operation {
        summary: "Activate an account: set the password and confirm the authenticator",
        description: Some("The link stops working; the person logs in with `POST /login`."),
        tag: "login",
        query: &[],
        body: Some(of::<Activate>),
        ok: (200, "Activated.", Content::Json(of::<PersonView>)),
        errors: &[(400, "Invalid field (the problem names it in `field`: a `password` not 12 to 128 characters, a `code` the authenticator does not show now) or malformed JSON."), (401, "The link is not valid, or has expired (ask for a new one)."), E413, E415],
    }),
    (E::Login, Operation {
        summary: "Log in with e-mail address, password and the authenticator's code",
        description: Some("The session is the cookie `__Host-estd-session` in `Set-Cookie` (Secure, HttpOnly, SameSite=Strict); send the answer's `csrf_token` in `X-CSRF-Token` with every call that changes something. The session ends after `idle_timeout_secs` without a call, and `[people] session_absolute_secs` after login. Wrong logins in a row (`[people] max_failed_logins`) lock the account for `[people] lockout_secs`."),
        tag: "login",
        query: &[],
        body: Some(of::<Login>),
        ok: (200, "Logged in: the session cookie is in `Set-Cookie` (the answer is `Cache-Control: no-store`).", Content::Json(of::<SessionView>)),
        errors: &[E400, (401, "Wrong organisation, address, password or code, or no active account: one answer for all."), (403, "The account is locked after too many wrong logins; try again later."), E413, E415],
    }),
    (E::Logout, Operation {
        summary: "Log out: end the session",
        description: Some("Takes no fields (an empty body, or `{}`)."),
        tag: "login",
        query: &[],
        body: None,
        ok: (204, "Logged out; `Set-Cookie` removes the cookie.", Content::Empty),
        errors: &[E401_SESSION, E403_PERSON],
    }),
    (E::GetSession, Operation {
        summary: "The session: who is logged in, and the CSRF token",
        description: None,
        tag: "login",
        query: &[],
        body: None,
        ok: (200, "The session.", Content::Json(of::<SessionView>)),
        errors: &[E401_SESSION, E403_PERSON],
    }),
    (E::Terms, Operation {
        summary: "The terms a user accepts before a certificate is issued in the browser",
        description: None,
        tag: "login",
        query: &[],
        body: None,
        ok: (200, "The terms and their version.", Content::Json(of::<TermsView>)),
        errors: &[],
    }),
    (E::MyOrders, Operation {
        summary: "The open orders the person collects (ordered with identification user-login), oldest first",
        description: Some("A user's own user certificates; a user administrator's also the organisation and system certificates ordered with user login."),
        tag: "me",
        query: &[],
        body: None,
        ok: (200, "Orders.", Content::Json(of::<Items<OrderView>>)),
        errors: &[E401_SESSION, E403_PERSON],
    }),
    (E::IssuePkcs12, Operation {
        summary: "Collect an order in the browser: a key made here, handed over as PKCS#12",
        description: Some("For an order whose key is made in the browser (a hardware order answers 409). `accept_terms` must name the current version of `GET /terms` (400 naming `accept_terms` otherwise); the acceptance is in the audit log. The answer (`Cache-Control: no-store`) is shown once: estd keeps no copy of the key or the password."),
        tag: "me",
        query: &[],
        body: Some(of::<BrowserIssuance>),
        ok: (201, "Issued; `Location` is the certificate's.", Content::Json(of::<IssuedPkcs12>)),
        errors: &[E401_SESSION, (403, "Not a logged-in person, or the profile's policy refuses the certificate."), E400, (404, "No such open order that the person collects."), (409, "The order is not open, is a hardware order, or waits for the profile's e-mail address to be confirmed."), E413, E415],
    }),
    (E::IssueFromCsr, Operation {
        summary: "Collect an order with a CSR made on the person's hardware token",
        description: Some("For a hardware order (one whose key is made in the browser answers 409). The CSR's key and names are held against the profile's policy; the certificate's names are the order's."),
        tag: "me",
        query: &[],
        body: Some(of::<HardwareIssuance>),
        ok: (201, "Issued; `Location` is the certificate's.", Content::Json(of::<CertView>)),
        errors: &[E401_SESSION, (403, "Not a logged-in person, or the profile's policy refuses the CSR (key type or size)."), (400, "Invalid field (`csr` is not a PKCS#10 CSR, PEM or base64 DER, or its signature does not verify) or malformed JSON."), (404, "No such open order that the person collects."), (409, "The order is not open, is issued in the browser, or waits for the profile's e-mail address to be confirmed."), E413, E415],
    }),
    (E::MyCertificates, Operation {
        summary: "The person's certificates, newest first",
        description: Some("The user certificates of their organisation that carry their address, in every state."),
        tag: "me",
        query: &[],
        body: None,
        ok: (200, "Certificates.", Content::Json(of::<Items<CertView>>)),
        errors: &[E401_SESSION, E403_PERSON],
    }),
    (E::MyCertificate, Operation {
        summary: "Read or download one of the person's certificates",
        description: None,
        tag: "me",
        query: &[Query::Choice("format", "`json` (the default): the certificate's record; `pem` or `der`: the certificate itself, as a download.", CERT_FORMATS, Some("json"))],
        body: None,
        ok: (200, "The certificate, in the `format` asked for.", Content::Certificate(of::<CertView>)),
        errors: &[E401_SESSION, E403_PERSON, (400, "Invalid `serial` or `format`."), (404, "No such certificate of the person.")],
    }),
    (E::BlockMyCertificate, Operation {
        summary: "Block one of the person's certificates, for good",
        description: Some("Blocking cannot be undone: the body must say `\"confirm\": true` (400 naming `confirm` otherwise)."),
        tag: "me",
        query: &[],
        body: Some(of::<Confirm>),
        ok: (200, "Blocked.", Content::Json(of::<CertView>)),
        errors: &[E401_SESSION, E403_PERSON, E400, (404, "No such certificate of the person."), E409, E413, E415],
    }),
    (E::RenewMyCertificate, Operation {
        summary: "Order the renewal of one of the person's certificates (before expiry and revocation only)",
        description: Some("Takes no fields (an empty body, or `{}`). As `POST /certificates/{serial}/renew`: refused with 409 for a certificate that already has a valid successor, and while another renewal order for it is open. The new order is collected like the first (`GET /me/orders`)."),
        tag: "me",
        query: &[],
        body: None,
        ok: (201, "Ordered; `Location` is the order's.", Content::Json(of::<CreatedOrderView>)),
        errors: &[E401_SESSION, E403_PERSON, (400, "Invalid `serial`."), (404, "No such certificate of the person."), E409],
    }),
    (E::MyHistory, Operation {
        summary: "The person's history: their own acts, and those on their certificates and orders; newest first",
        description: None,
        tag: "me",
        query: &[Query::Number("limit", "At most this many (the newest).", 1, Some(500), Some(100))],
        body: None,
        ok: (200, "Events.", Content::Json(of::<Items<AuditView>>)),
        errors: &[E401_SESSION, E403_PERSON, (400, "Invalid `limit`.")],
    }),
    (E::MyTasks, Operation {
        summary: "What the person should do now",
        description: Some("Orders to collect, certificates that expire within `[orders] expiry_notice_days` to renew, for a user administrator held API enrolments to approve, and e-mail addresses to confirm. A task is gone once done."),
        tag: "me",
        query: &[],
        body: None,
        ok: (200, "Tasks.", Content::Json(of::<Items<Task>>)),
        errors: &[E401_SESSION, E403_PERSON],
    }),
];

/// The words and status codes of `endpoint`.
fn operation(endpoint: Endpoint) -> Option<&'static Operation> {
    OPERATIONS
        .iter()
        .find(|(e, _)| *e == endpoint)
        .map(|(_, op)| op)
}

/// A path parameter, described by its name (and, for `id`, by whose id it is).
fn path_parameter(template: &str, name: &str) -> Value {
    let (description, schema) = match name {
        "cvr" => (
            "CVR number (8 digits).",
            json!({"type": "string", "pattern": "^[0-9]{8}$"}),
        ),
        "id" if template.starts_with("/profiles") => ("Profile UUID.", json!({"type": "string"})),
        "id" if template.starts_with("/people") => (
            "The person's UUID (`id` of a person).",
            json!({"type": "string", "format": "uuid"}),
        ),
        "id" => (
            "The token's id (20 hex digits), as lists show it; not the token.",
            json!({"type": "string"}),
        ),
        "reference" => (
            "Order reference number (12 digits).",
            json!({"type": "string"}),
        ),
        "serial" => (
            "Serial number, 32 hex digits as `openssl x509 -serial` prints it.",
            json!({"type": "string", "pattern": "^[0-9A-Fa-f]{32}$"}),
        ),
        _ => ("", json!({"type": "string"})),
    };
    json!({"name": name, "in": "path", "required": true, "description": description, "schema": schema})
}

fn query_parameter(q: &Query) -> Value {
    let (name, description, schema) = match *q {
        Query::Text(name, description) | Query::TextRequired(name, description) => {
            (name, description, json!({"type": "string"}))
        }
        Query::Choice(name, description, names, default) => {
            let mut schema = json!({"type": "string", "enum": names});
            if let Some(default) = default {
                schema["default"] = json!(default);
            }
            (name, description, schema)
        }
        Query::Number(name, description, min, max, default) => {
            let mut schema = json!({"type": "integer", "minimum": min});
            if let Some(max) = max {
                schema["maximum"] = json!(max);
            }
            if let Some(default) = default {
                schema["default"] = json!(default);
            }
            (name, description, schema)
        }
    };
    let required = matches!(q, Query::TextRequired(..));
    json!({"name": name, "in": "query", "required": required, "description": description, "schema": schema})
}

/// The two schema generators: bodies as serde reads them, answers as it writes them.
struct Generators {
    input: SchemaGenerator,
    output: SchemaGenerator,
}

fn success(ok: &(u16, &'static str, Content), output: &mut SchemaGenerator) -> Value {
    let binary = || json!({"type": "string", "format": "binary"});
    let content = match &ok.2 {
        Content::Json(schema_of) => {
            json!({"application/json": {"schema": schema_of(output).to_value()}})
        }
        Content::AnyJson => json!({"application/json": {"schema": {"type": "object"}}}),
        Content::Csv => json!({"text/csv": {"schema": {"type": "string"}}}),
        Content::Crl => json!({"application/pkix-crl": {"schema": binary()}}),
        Content::Empty => Value::Null,
        Content::Certificate(schema_of) => json!({
            "application/json": {"schema": schema_of(output).to_value()},
            "application/x-pem-file": {"schema": {"type": "string"}},
            "application/pkix-cert": {"schema": binary()},
        }),
    };
    let mut response = json!({"description": ok.1});
    if !content.is_null() {
        response["content"] = content;
    }
    // Every 201 is made by `response::created`, which sets `Location`.
    if ok.0 == 201 {
        response["headers"] = json!({"Location": {
            "description": "The path of what was created (for a token, of the token list).",
            "schema": {"type": "string"},
        }});
    }
    response
}

/// Who may call a route, as the `x-estd-access` extension says it:
/// `"public"`, `"person"`, or the role names.
fn access_value(access: Access) -> Value {
    match access {
        Access::Public => json!("public"),
        Access::Person => json!("person"),
        Access::Roles(roles) => roles.iter().map(|r| r.as_str()).collect(),
    }
}

/// Who may call a route, as a sentence of its description.
fn access_sentence(access: Access) -> String {
    match access {
        Access::Public => "No credentials.".into(),
        Access::Person => "A logged-in person's own call.".into(),
        Access::Roles(roles) => {
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            format!("Roles: {}.", names.join(", "))
        }
    }
}

/// The security requirements of a route: none for a public one, only the
/// session cookie for a person's own call, else a bearer token or the
/// cookie (a client certificate with the admin-api right is not an
/// OpenAPI 3.0 scheme; see `bearerToken`).
fn security(access: Access) -> Value {
    match access {
        Access::Public => json!([]),
        Access::Person => json!([{"sessionCookie": []}]),
        Access::Roles(_) => json!([{"bearerToken": []}, {"sessionCookie": []}]),
    }
}

/// What the 403 of a call that changes something also covers.
const CSRF_403: &str = "Also: a call with a session cookie that lacks the session's CSRF token \
    in `X-CSRF-Token`.";

/// The operation object of one route.
fn operation_object(route: &Route, generators: &mut Generators) -> Value {
    let Some(op) = operation(route.endpoint) else {
        // Kept out of the test's reach only by a missing entry, which
        // `every_route_is_documented` catches; the server still answers.
        return json!({"responses": {"default": {"description": "Not documented."}}});
    };
    let mut responses = Map::new();
    responses.insert(op.ok.0.to_string(), success(&op.ok, &mut generators.output));
    let problem = generators.output.subschema_for::<Problem>().to_value();
    // A cookie-authenticated call that changes something must carry the CSRF token.
    let csrf = route.access != Access::Public && route.method != "GET";
    let mut errors: Vec<(u16, String)> = op
        .errors
        .iter()
        .map(|&(status, description)| match status {
            403 if csrf => (status, format!("{description} {CSRF_403}")),
            _ => (status, description.to_owned()),
        })
        .collect();
    if csrf && !op.errors.iter().any(|&(status, _)| status == 403) {
        errors.push((403, CSRF_403.to_owned()));
    }
    for (status, description) in errors {
        responses.insert(
            status.to_string(),
            json!({"description": description, "content": {PROBLEM_JSON: {"schema": problem}}}),
        );
    }
    let mut parameters: Vec<Value> = route
        .template
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| path_parameter(route.template, name))
        .collect();
    parameters.extend(op.query.iter().map(query_parameter));
    let mut object = json!({"summary": op.summary, "tags": [op.tag], "responses": responses});
    if !parameters.is_empty() {
        object["parameters"] = Value::Array(parameters);
    }
    let access = access_sentence(route.access);
    object["description"] = match op.description {
        Some(description) => json!(format!("{description} {access}")),
        None => json!(access),
    };
    object["x-estd-access"] = access_value(route.access);
    if let Some(body) = op.body {
        let schema = body(&mut generators.input).to_value();
        object["requestBody"] =
            json!({"required": true, "content": {"application/json": {"schema": schema}}});
    }
    object["security"] = security(route.access);
    object
}

/// Builds the whole document.
pub fn document() -> Value {
    let settings = SchemaSettings::openapi3().with(|s| s.meta_schema = None);
    let mut generators = Generators {
        input: settings.clone().for_deserialize().into_generator(),
        output: settings.for_serialize().into_generator(),
    };
    let mut paths = Map::new();
    for route in ROUTES {
        let item = paths
            .entry(route.template)
            .or_insert_with(|| Value::Object(Map::new()));
        item[route.method.to_ascii_lowercase()] = operation_object(route, &mut generators);
    }
    // Both generators name a type the same way; a type read and written
    // (an enum) has the same schema in both.
    let mut schemas = generators.output.take_definitions(true);
    schemas.extend(generators.input.take_definitions(true));
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "estd admin API",
            "version": "1",
            "description": DESCRIPTION,
        },
        "servers": [{"url": super::routes::API_PREFIX}],
        "security": [{"bearerToken": []}, {"sessionCookie": []}],
        "tags": TAGS.iter().map(|t| json!({"name": t})).collect::<Vec<_>>(),
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An admin token (the operator's is in certs/admin-token). \
                        Alternatively a TLS client certificate with the admin-api right.",
                },
                "sessionCookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": SESSION_COOKIE,
                    "description": "A person's session, set by `POST /login` (Secure, HttpOnly, \
                        SameSite=Strict). A call with it that changes something (any method but \
                        GET) must carry the session's CSRF token, `csrf_token` of the login \
                        answer or of `GET /session`, in the `X-CSRF-Token` header; without it \
                        the call is refused with 403. Sent with an `Authorization` header, the \
                        cookie is ignored.",
                },
            },
            "schemas": schemas,
        },
    })
}

const DESCRIPTION: &str = "Organisations, people, certificate profiles, orders and certificates \
    of estd, in the model of MitID Erhverv. Authenticate with `Authorization: Bearer <token>`, a \
    TLS client certificate whose profile carries the system right `admin-api`, or a person's \
    session cookie (`POST /login`; see `sessionCookie`). An organisation's token, certificate or \
    person sees only that organisation (others answer 404); an operator sees everything. Each \
    operation's `x-estd-access` says who may call it: `public`, `person` (a logged-in person's \
    own call, with the session cookie only), or the roles of which the caller needs one. Errors are RFC 9457 problem documents \
    (application/problem+json). Request bodies are JSON, at most 64 KiB, unknown fields refused.";

const TAGS: &[&str] = &[
    "meta",
    "organisations",
    "people",
    "login",
    "me",
    "tokens",
    "profiles",
    "orders",
    "certificates",
    "export",
    "history",
    "public",
    "revocation",
    "operations",
];

#[cfg(test)]
mod tests {
    use super::*;

    const SNAPSHOT: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/admin/openapi.snapshot.json"
    );

    /// The lines that differ between `old` and `new`, with the common
    /// beginning and end left out: enough to see what changed.
    fn diff(old: &str, new: &str) -> String {
        let old: Vec<&str> = old.lines().collect();
        let new: Vec<&str> = new.lines().collect();
        let head = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
        let tail = old[head..]
            .iter()
            .rev()
            .zip(new[head..].iter().rev())
            .take_while(|(a, b)| a == b)
            .count();
        let mut out = format!("@@ line {} @@\n", head + 1);
        for line in &old[head..old.len() - tail] {
            out.push_str(&format!("-{line}\n"));
        }
        for line in &new[head..new.len() - tail] {
            out.push_str(&format!("+{line}\n"));
        }
        out
    }

    #[test]
    fn openapi_document_matches_its_snapshot() {
        let generated = serde_json::to_string_pretty(&document()).expect("json") + "\n";
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(SNAPSHOT, &generated).expect("write the snapshot");
            return;
        }
        let committed = std::fs::read_to_string(SNAPSHOT).unwrap_or_default();
        assert!(
            committed == generated,
            "the OpenAPI document differs from {SNAPSHOT}; if the change is meant, \
             rerun with UPDATE_SNAPSHOTS=1 and commit the file:\n{}",
            diff(&committed, &generated)
        );
    }

    #[test]
    fn every_route_is_documented() {
        for route in ROUTES {
            let entries = OPERATIONS.iter().filter(|(e, _)| *e == route.endpoint);
            assert_eq!(entries.count(), 1, "{:?}", route.endpoint);
        }
        assert_eq!(OPERATIONS.len(), ROUTES.len());
    }

    /// The operation of `method` `template` in `doc`.
    fn op<'a>(doc: &'a Value, method: &str, template: &str) -> &'a Value {
        let op = &doc["paths"][template][method.to_ascii_lowercase()];
        assert!(op.is_object(), "{method} {template} is not documented");
        op
    }

    /// Who may call each operation is the route table's, in the extension,
    /// the description and the security requirements.
    #[test]
    fn access_is_the_route_tables() {
        let doc = document();
        for route in ROUTES {
            let op = op(&doc, route.method, route.template);
            assert_eq!(op["x-estd-access"], access_value(route.access), "{route:?}");
            assert_eq!(op["security"], security(route.access), "{route:?}");
            let description = op["description"].as_str().expect("description");
            assert!(
                description.ends_with(&access_sentence(route.access)),
                "{route:?}: {description}"
            );
        }
        let cases = [
            ("POST", "/organisations", json!(["operator"])),
            (
                "GET",
                "/organisations",
                json!(["user-admin", "org-admin", "rights-admin", "operator"]),
            ),
            (
                "POST",
                "/organisations/{cvr}/people",
                json!(["user-admin", "operator"]),
            ),
            ("GET", "/me/tasks", json!("person")),
            ("POST", "/logout", json!("person")),
            ("POST", "/login", json!("public")),
            ("GET", "/activation", json!("public")),
        ];
        for (method, template, access) in cases {
            assert_eq!(
                op(&doc, method, template)["x-estd-access"],
                access,
                "{method} {template}"
            );
        }
        assert!(op(&doc, "POST", "/organisations")["description"]
            .as_str()
            .is_some_and(|d| d.ends_with("Roles: operator.")));
        assert_eq!(op(&doc, "POST", "/login")["security"], json!([]));
        assert_eq!(
            op(&doc, "GET", "/me/tasks")["security"],
            json!([{"sessionCookie": []}])
        );
        assert_eq!(
            op(&doc, "POST", "/organisations")["security"],
            json!([{"bearerToken": []}, {"sessionCookie": []}])
        );
        let cookie = &doc["components"]["securitySchemes"]["sessionCookie"];
        assert_eq!(cookie["in"], "cookie");
        assert_eq!(cookie["name"], "__Host-estd-session");
        assert!(cookie["description"]
            .as_str()
            .is_some_and(|d| d.contains("X-CSRF-Token")));
    }

    /// A call that changes something with a session names the CSRF rule in
    /// its 403; a read does not.
    #[test]
    fn state_changing_calls_name_the_csrf_rule() {
        let doc = document();
        for route in ROUTES.iter().filter(|r| r.access != Access::Public) {
            let forbidden = &op(&doc, route.method, route.template)["responses"]["403"];
            let names = forbidden["description"]
                .as_str()
                .is_some_and(|d| d.contains("X-CSRF-Token"));
            assert_eq!(names, route.method != "GET", "{route:?}");
        }
    }

    /// The answers the people's routes give, as their handlers make them.
    #[test]
    fn people_routes_answer_as_their_handlers() {
        let doc = document();
        for (method, template) in [
            ("POST", "/organisations/{cvr}/people"),
            ("POST", "/operators"),
            ("POST", "/me/orders/{reference}/pkcs12"),
            ("POST", "/me/orders/{reference}/csr"),
            ("POST", "/me/certificates/{serial}/renew"),
        ] {
            let created = &op(&doc, method, template)["responses"]["201"];
            assert!(
                created["headers"]["Location"].is_object(),
                "{method} {template}"
            );
        }
        let logout = &op(&doc, "POST", "/logout")["responses"];
        assert!(logout["204"].is_object() && logout["204"].get("content").is_none());
        let content = &op(&doc, "GET", "/me/certificates/{serial}")["responses"]["200"]["content"];
        for media_type in [
            "application/json",
            "application/x-pem-file",
            "application/pkix-cert",
        ] {
            assert!(content[media_type].is_object(), "{media_type}");
        }
        let id = &op(&doc, "GET", "/people/{id}")["parameters"][0];
        assert_eq!(id["schema"]["format"], "uuid");
        let token = &op(&doc, "GET", "/activation")["parameters"][0];
        assert_eq!(
            (&token["name"], &token["required"]),
            (&json!("token"), &json!(true))
        );
        let limit = &op(&doc, "GET", "/me/history")["parameters"][0]["schema"];
        assert_eq!(
            (&limit["minimum"], &limit["maximum"], &limit["default"]),
            (&json!(1), &json!(500), &json!(100))
        );
    }

    /// Every operation's tag is one the document lists.
    #[test]
    fn tags_are_listed() {
        for (endpoint, op) in OPERATIONS {
            assert!(TAGS.contains(&op.tag), "{endpoint:?}: {}", op.tag);
        }
    }

    /// The served text is the derived document.
    #[test]
    fn served_text_is_the_document() {
        let served: Value = serde_json::from_str(json_text()).expect("json");
        assert_eq!(served, document());
    }

    /// Every route's operation answers something, and every schema a
    /// reference names is there.
    #[test]
    fn references_resolve() {
        let doc = document();
        fn refs(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        out.push(r.clone());
                    }
                    m.values().for_each(|v| refs(v, out));
                }
                Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        refs(&doc, &mut all);
        for r in all {
            let name = r.strip_prefix("#/components/schemas/").expect("local");
            assert!(doc["components"]["schemas"].get(name).is_some(), "{r}");
        }
    }

    /// The names an enum schema allows, whether listed at once or one
    /// documented variant at a time.
    fn enum_names(schema: &Value) -> Vec<Value> {
        match (&schema["enum"], &schema["oneOf"]) {
            (Value::Array(names), _) => names.clone(),
            (_, Value::Array(variants)) => variants.iter().flat_map(enum_names).collect(),
            _ => Vec::new(),
        }
    }

    /// The `state` parameter lists the model's profile states.
    #[test]
    fn profile_state_names_are_the_models() {
        let model: Vec<&str> = crate::model::ProfileState::ALL
            .iter()
            .map(|s| s.as_str())
            .collect();
        assert_eq!(PROFILE_STATES, model.as_slice());
    }

    /// Enum names in the schemas are serde's: the one copy.
    #[test]
    fn enum_schemas_list_the_wire_names() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        for (name, wire) in [
            (
                "Identification",
                json!(["user-login", "one-time-code", "api"]),
            ),
            ("ProfileKind", json!(["organisation", "system"])),
            ("SystemRight", json!(["est-enroll", "admin-api"])),
            ("KeyAlgorithm", json!(["p256", "p384", "rsa", "ed25519"])),
            (
                "RevokeReason",
                json!([
                    "organisation-ceased",
                    "suspected-misuse",
                    "information-changed",
                    "superseded",
                    "other"
                ]),
            ),
        ] {
            assert_eq!(Value::Array(enum_names(&schemas[name])), wire, "{name}");
        }
    }
}
