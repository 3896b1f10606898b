//! `estd admin ...`: the admin API from the command line, over HTTPS, so
//! that an operator needs no curl. Every command is a thin client of one
//! admin API route: it builds the path and body, calls the route, and prints
//! the answer as text for people or as the API's JSON for scripts.

use std::io::{self, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use http::Method;
use serde_json::{json, Map, Value};

use super::client::{encode_component, query_string, read_token_file, AdminClient, ClientError};

/// Connection options and the admin command to run.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Base URL of the admin listener.
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        value_name = "URL",
        default_value = "https://127.0.0.1:9443"
    )]
    pub url: String,
    /// Trust anchor (PEM) the admin listener's TLS certificate chains to.
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        value_name = "PATH",
        default_value = "certs/root-ca.pem"
    )]
    pub ca: PathBuf,
    /// Admin API token. Other local users can see it in the process list; prefer --token-file.
    #[arg(long, global = true, help_heading = "Connection", value_name = "TOKEN")]
    pub token: Option<String>,
    /// File holding the admin API token; used unless --token is given.
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        value_name = "PATH",
        default_value = "certs/admin-token"
    )]
    pub token_file: PathBuf,
    /// How to print answers: `text` (tables and lines, for people) or `json`
    /// (the API's JSON answer, pretty-printed, for scripts).
    #[arg(
        long,
        global = true,
        help_heading = "Output",
        value_enum,
        default_value_t = Output::Text
    )]
    pub output: Output,
    /// The same as --output json.
    #[arg(long, global = true, help_heading = "Output")]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// How answers are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Tables and lines, for people.
    Text,
    /// The API's JSON answer, pretty-printed, for scripts.
    Json,
}

/// The admin commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a certificate profile; with --order (or --order-user-*) also order a certificate.
    CreateProfile(Box<CreateProfileArgs>),
    /// Order a certificate for a profile, or a user certificate for a person.
    Order(OrderArgs),
    /// List profiles (search with --query), or with --profile that profile's orders.
    List(ListArgs),
    /// Revoke a certificate, for good.
    Revoke(RevokeArgs),
    /// Write certificates (or, with --profiles, the profiles) as CSV to standard output.
    ///
    /// The output is always CSV; --output does not apply.
    Export(ExportArgs),
    /// Orders: show one, approve or reject a held enrolment, a new one-time code, delete.
    #[command(subcommand)]
    Orders(OrdersCommand),
    /// Certificates: show one (or its PEM), order a renewal, block a user certificate.
    #[command(subcommand)]
    Certificates(CertificatesCommand),
    /// The audit log: who did what and when (the latest events, printed oldest first).
    ///
    /// Calls GET /api/v1/audit. The filters narrow it; all given must match.
    /// A full page ends with the --before value that reads the older page.
    Audit(AuditArgs),
    /// The notification outbox: notices to contact persons and their delivery.
    ///
    /// Calls GET /api/v1/notifications, oldest first. The text output lists
    /// recipient, subject and delivery; --output json has the bodies too.
    Notifications(NotificationsArgs),
    /// Organisations: create and change (operators only), show, list.
    #[command(subcommand)]
    Organisations(OrganisationsCommand),
    /// Admin API tokens: create (operators only), list, revoke.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// The public certificate database: published certificates; needs no token.
    #[command(subcommand)]
    Public(PublicCommand),
}

/// An order's reference number.
#[derive(Debug, Args)]
pub struct OrderRef {
    /// The order's reference number, as `order` or `list --profile` shows it.
    #[arg(long, value_name = "REFERENCE")]
    pub reference: String,
}

/// `orders ...`.
#[derive(Debug, Subcommand)]
pub enum OrdersCommand {
    /// Show an order: status, profile, user, methods, certificate; deleted ones too.
    ///
    /// Calls GET /api/v1/orders/{reference}.
    Show(OrderRef),
    /// Approve an API enrolment held for approval; the client's next retry is issued.
    ///
    /// Calls POST /api/v1/orders/{reference}/approve. Only for orders of a
    /// profile with approval_required whose enrolment is waiting.
    Approve(OrderRef),
    /// Reject an API enrolment held for approval; the client's retries are refused.
    ///
    /// Calls POST /api/v1/orders/{reference}/reject.
    Reject(OrderRef),
    /// Give a one-time-code order a new code (the old one stops working; unlocks a locked order).
    ///
    /// Calls POST /api/v1/orders/{reference}/code. The code is printed once;
    /// hand it to the holder separately from the reference number.
    NewCode(OrderRef),
    /// Delete an order that is not issued yet; it stays readable with `orders show`.
    ///
    /// Calls DELETE /api/v1/orders/{reference}.
    Delete(OrderRef),
}

/// A certificate's serial number.
#[derive(Debug, Args)]
pub struct SerialArg {
    /// The certificate's serial number (hex, as `openssl x509 -serial` prints it).
    #[arg(long, value_name = "HEX")]
    pub serial: String,
}

/// `certificates show`.
#[derive(Debug, Args)]
pub struct CertShowArgs {
    /// The certificate.
    #[command(flatten)]
    pub serial: SerialArg,
    /// Print only the certificate, PEM (e.g. to pipe into `openssl x509`); overrides --output.
    #[arg(long)]
    pub pem: bool,
}

/// `certificates ...`.
#[derive(Debug, Subcommand)]
pub enum CertificatesCommand {
    /// Show a certificate: state, subject, profile, order, renewals; --pem for the certificate.
    ///
    /// Calls GET /api/v1/certificates/{serial}.
    Show(CertShowArgs),
    /// Order a renewal of a certificate (before it expires or is revoked).
    ///
    /// Calls POST /api/v1/certificates/{serial}/renew and prints the new
    /// order, with its one-time code if the profile uses codes. A certificate
    /// of an API profile gets an order without a code, which its next
    /// re-enrolment over EST fulfils (a user certificate's also the IdM
    /// system's enrolment of a CSR naming the user).
    Renew(SerialArg),
    /// Block a user certificate, for good (revocation reason "blocked").
    ///
    /// Calls POST /api/v1/certificates/{serial}/block. Other certificates are
    /// revoked with `revoke`.
    Block(SerialArg),
}

/// `audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only this organisation's events.
    #[arg(long, value_name = "CVR")]
    pub cvr: Option<String>,
    /// Only this profile's events.
    #[arg(long, value_name = "UUID")]
    pub profile: Option<String>,
    /// Only this certificate's events (hex).
    #[arg(long, value_name = "HEX")]
    pub serial: Option<String>,
    /// Only this order's events.
    #[arg(long, value_name = "REFERENCE")]
    pub order: Option<String>,
    /// How many events at most (1 to 10000, default 1000).
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Only events older than the event with this id (the page before).
    #[arg(long, value_name = "ID")]
    pub before: Option<u64>,
}

/// `notifications`.
#[derive(Debug, Args)]
pub struct NotificationsArgs {
    /// Only this organisation's notices.
    #[arg(long, value_name = "CVR")]
    pub cvr: Option<String>,
}

/// An organisation's CVR number.
#[derive(Debug, Args)]
pub struct CvrArg {
    /// The organisation's CVR number.
    #[arg(long, value_name = "CVR")]
    pub cvr: String,
}

/// `organisations create`.
#[derive(Debug, Args)]
pub struct OrgCreateArgs {
    /// The organisation's CVR number (8 digits, valid check digit).
    #[arg(long, value_name = "CVR")]
    pub cvr: String,
    /// Legal name: the O attribute of every certificate of the organisation.
    #[arg(long)]
    pub name: String,
    /// Allow user certificates to be ordered.
    #[arg(long)]
    pub allow_user_certs: bool,
    /// Allow profiles with seal generation.
    #[arg(long)]
    pub allow_seal: bool,
    /// A P number (10 digits; repeatable).
    #[arg(long = "p-number", value_name = "NUMBER")]
    pub p_numbers: Vec<String>,
    /// An SE number (8 digits; repeatable).
    #[arg(long = "se-number", value_name = "NUMBER")]
    pub se_numbers: Vec<String>,
}

/// `organisations change`.
#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("changes")
        .required(true)
        .multiple(true)
        .args(["name", "allow_user_certs", "allow_seal", "p_numbers", "no_p_numbers",
               "se_numbers", "no_se_numbers"])
))]
pub struct OrgChangeArgs {
    /// The organisation's CVR number.
    #[arg(long, value_name = "CVR")]
    pub cvr: String,
    /// New legal name.
    #[arg(long)]
    pub name: Option<String>,
    /// Whether user certificates may be ordered.
    #[arg(long, value_name = "true|false")]
    pub allow_user_certs: Option<bool>,
    /// Whether profiles may enable seal generation.
    #[arg(long, value_name = "true|false")]
    pub allow_seal: Option<bool>,
    /// The P numbers (repeatable; replaces the list).
    #[arg(
        long = "p-number",
        value_name = "NUMBER",
        conflicts_with = "no_p_numbers"
    )]
    pub p_numbers: Vec<String>,
    /// Remove every P number.
    #[arg(long)]
    pub no_p_numbers: bool,
    /// The SE numbers (repeatable; replaces the list).
    #[arg(
        long = "se-number",
        value_name = "NUMBER",
        conflicts_with = "no_se_numbers"
    )]
    pub se_numbers: Vec<String>,
    /// Remove every SE number.
    #[arg(long)]
    pub no_se_numbers: bool,
}

/// `organisations ...`.
#[derive(Debug, Subcommand)]
pub enum OrganisationsCommand {
    /// Create an organisation (operators only).
    ///
    /// Calls POST /api/v1/organisations.
    Create(OrgCreateArgs),
    /// Show an organisation: name, permissions, P and SE numbers.
    ///
    /// Calls GET /api/v1/organisations/{cvr}.
    Show(CvrArg),
    /// Change an organisation (operators only); only the options given change.
    ///
    /// Calls PATCH /api/v1/organisations/{cvr}.
    Change(OrgChangeArgs),
    /// List the organisations the token may see.
    ///
    /// Calls GET /api/v1/organisations.
    List,
}

/// `public search`.
#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("filter")
        .required(true)
        .multiple(true)
        .args(["email", "cvr", "serial"])
))]
pub struct PublicSearchArgs {
    /// Certificates with this e-mail address.
    #[arg(long, value_name = "EMAIL")]
    pub email: Option<String>,
    /// Certificates of this organisation.
    #[arg(long, value_name = "CVR")]
    pub cvr: Option<String>,
    /// The certificate with this serial number (hex).
    #[arg(long, value_name = "HEX")]
    pub serial: Option<String>,
    /// Print only the certificates, PEM, one after the other; overrides --output.
    #[arg(long)]
    pub pem: bool,
}

/// `public ...`.
#[derive(Debug, Subcommand)]
pub enum PublicCommand {
    /// Search the published certificates by e-mail, CVR and/or serial (all given must match).
    ///
    /// Calls GET /api/v1/public/certificates without credentials: no token
    /// file is read.
    Search(PublicSearchArgs),
}

/// `tokens ...`.
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token for an organisation (or, without --cvr, an operator token); prints it once.
    Create(TokenCreateArgs),
    /// List an organisation's tokens (or, without --cvr, the operators' tokens).
    List(TokenListArgs),
    /// Revoke a token by its id; it is refused from then on.
    Revoke(TokenRevokeArgs),
}

/// `tokens create`.
#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// The organisation's CVR number; without it, an operator token.
    #[arg(long, value_name = "CVR")]
    pub cvr: Option<String>,
    /// A name for people (1 to 64 characters).
    #[arg(long)]
    pub name: String,
    /// Lifetime in days (default: the server's admin_tokens.default_days).
    #[arg(long, value_name = "DAYS", conflicts_with = "expires_at")]
    pub expires_in_days: Option<u64>,
    /// Expiry moment, UTC, e.g. 2026-05-01T12:00:00Z.
    #[arg(long, value_name = "TIME")]
    pub expires_at: Option<String>,
}

/// `tokens list`.
#[derive(Debug, Args)]
pub struct TokenListArgs {
    /// The organisation's CVR number; without it, the operators' tokens.
    #[arg(long, value_name = "CVR")]
    pub cvr: Option<String>,
}

/// `tokens revoke`.
#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// The organisation's CVR number; without it, an operator token.
    #[arg(long, value_name = "CVR")]
    pub cvr: Option<String>,
    /// The token's id, as `tokens list` shows it.
    #[arg(long, value_name = "ID")]
    pub id: String,
}

/// `create-profile`.
#[derive(Debug, Args)]
pub struct CreateProfileArgs {
    /// Organisation's CVR number (default: the token's own organisation).
    #[arg(long, value_name = "CVR")]
    pub cvr: Option<String>,
    /// Profile name, unique within the organisation.
    #[arg(long)]
    pub name: String,
    /// Certificate kind.
    #[arg(long, default_value = "system", value_parser = ["organisation", "system"])]
    pub kind: String,
    /// EST label, unique on the server: clients enrol at /.well-known/est/LABEL/.
    #[arg(long, value_name = "LABEL")]
    pub label: String,
    /// Contact person's name (receives notices about the certificates).
    #[arg(long, value_name = "NAME")]
    pub contact_name: String,
    /// Contact person's e-mail address.
    #[arg(long, value_name = "EMAIL")]
    pub contact_email: String,
    /// E-mail address to put in the certificates.
    #[arg(long, value_name = "EMAIL")]
    pub email: Option<String>,
    /// A system right for the certificates (repeatable).
    #[arg(long = "right", value_name = "RIGHT", value_parser = ["est-enroll", "admin-api"])]
    pub rights: Vec<String>,
    /// How the holder is identified.
    #[arg(long, default_value = "api", value_parser = ["user-login", "one-time-code", "api"])]
    pub identification: String,
    /// How the certificate is delivered.
    #[arg(long, default_value = "est", value_parser = ["browser", "hardware", "est"])]
    pub issuance: String,
    /// Certificate lifetime in days (default 1095).
    #[arg(long, value_name = "DAYS")]
    pub validity_days: Option<u32>,
    /// A DNS name the certificates may carry; `.example.com` allows any name below it (repeatable).
    #[arg(long = "dns-name", value_name = "NAME")]
    pub dns_names: Vec<String>,
    /// Allow IP addresses in the certificates.
    #[arg(long)]
    pub allow_ip_sans: bool,
    /// Hold API enrolments until an administrator approves them.
    #[arg(long)]
    pub approval_required: bool,
    /// Require proof-of-possession linking: CSRs carry the TLS channel binding
    /// in challengePassword (RFC 7030 3.5).
    #[arg(long)]
    pub require_pop_linking: bool,
    /// Make this the organisation's profile for EST requests without a label.
    #[arg(long)]
    pub org_default: bool,
    /// Seal generation (only if the organisation allows it).
    #[arg(long)]
    pub seal: bool,
    /// Publish the certificates in the public certificate database.
    #[arg(long)]
    pub publish: bool,
    /// P number (one of the organisation's).
    #[arg(long, value_name = "NUMBER")]
    pub p_number: Option<String>,
    /// SE number (one of the organisation's).
    #[arg(long, value_name = "NUMBER")]
    pub se_number: Option<String>,
    /// Also order a certificate of the new profile.
    #[arg(long)]
    pub order: bool,
    /// Order a user certificate for this person (with --order-user-email).
    #[arg(long, value_name = "NAME", requires = "order_user_email")]
    pub order_user_name: Option<String>,
    /// The person's e-mail address (with --order-user-name).
    #[arg(long, value_name = "EMAIL", requires = "order_user_name")]
    pub order_user_email: Option<String>,
}

/// `order`.
#[derive(Debug, Args)]
pub struct OrderArgs {
    /// The profile's UUID.
    #[arg(long, value_name = "UUID")]
    pub profile: String,
    /// For a user certificate: the person's name (with --user-email).
    #[arg(long, value_name = "NAME", requires = "user_email")]
    pub user_name: Option<String>,
    /// For a user certificate: the person's e-mail address (with --user-name).
    #[arg(long, value_name = "EMAIL", requires = "user_name")]
    pub user_email: Option<String>,
    /// For a user certificate: whether it goes into the public certificate
    /// database, true or false (default: as the profile says).
    #[arg(long, value_name = "BOOL", requires = "user_name")]
    pub publish: Option<bool>,
    /// Identification method (default: the profile's).
    #[arg(long, value_parser = ["user-login", "one-time-code", "api"])]
    pub identification: Option<String>,
    /// Issuance method (default: the profile's).
    #[arg(long, value_parser = ["browser", "hardware", "est"])]
    pub issuance: Option<String>,
}

/// `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Search profiles by UUID, name, contact person's name or e-mail, or certificate e-mail.
    #[arg(long, value_name = "TEXT", conflicts_with = "profile")]
    pub query: Option<String>,
    /// Only this organisation's profiles or orders.
    #[arg(long, value_name = "CVR")]
    pub cvr: Option<String>,
    /// List this profile's orders instead of profiles.
    #[arg(long, value_name = "UUID")]
    pub profile: Option<String>,
    /// Only profiles in this state now: active (a certificate is valid), ordered
    /// (none is, but an order is open), inactive (neither).
    #[arg(long, value_name = "STATE", conflicts_with = "profile",
          value_parser = ["active", "ordered", "inactive"])]
    pub state: Option<String>,
    /// Page of profiles (from 1).
    #[arg(long, value_name = "N", conflicts_with = "profile")]
    pub page: Option<u64>,
    /// Profiles per page (1 to 500, default 50).
    #[arg(long, value_name = "N", conflicts_with = "profile")]
    pub per_page: Option<u64>,
}

/// `revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The certificate's serial number (hex, as `openssl x509 -serial` prints it).
    #[arg(long, value_name = "HEX")]
    pub serial: String,
    /// Why.
    #[arg(long, value_parser = [
        "organisation-ceased", "suspected-misuse", "information-changed", "superseded", "other",
    ])]
    pub reason: String,
}

/// `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The organisation (default: the token's own; for an operator, every certificate or profile).
    #[arg(long, value_name = "CVR", conflicts_with = "profile")]
    pub cvr: Option<String>,
    /// Only this profile's certificates.
    #[arg(long, value_name = "UUID", conflicts_with = "profiles")]
    pub profile: Option<String>,
    /// Export the certificate profiles (with their state and number of valid
    /// certificates) instead of certificates.
    #[arg(long)]
    pub profiles: bool,
    /// With --profiles: only profiles in this state now.
    #[arg(long, value_name = "STATE", requires = "profiles",
          value_parser = ["active", "ordered", "inactive"])]
    pub state: Option<String>,
}

/// Runs an admin command, writing its output to `out`.
pub async fn run(args: AdminArgs, out: &mut dyn Write) -> Result<(), ClientError> {
    let token = match (&args.command, &args.token) {
        // The public database takes no credentials.
        (AdminCommand::Public(_), _) => None,
        (_, Some(t)) => Some(t.clone()),
        (_, None) => Some(read_token_file(&args.token_file)?),
    };
    let client = AdminClient::new(&args.url, &args.ca, token.as_deref())?;
    let mut s = Session {
        client,
        out,
        json: args.json || args.output == Output::Json,
    };
    match args.command {
        AdminCommand::CreateProfile(a) => create_profile(&mut s, *a).await,
        AdminCommand::Order(a) => order(&mut s, a).await,
        AdminCommand::List(a) => list(&mut s, a).await,
        AdminCommand::Revoke(a) => revoke(&mut s, a).await,
        AdminCommand::Export(a) => export(&mut s, a).await,
        AdminCommand::Orders(c) => orders(&mut s, c).await,
        AdminCommand::Certificates(c) => certificates(&mut s, c).await,
        AdminCommand::Audit(a) => audit(&mut s, a).await,
        AdminCommand::Notifications(a) => notifications(&mut s, a).await,
        AdminCommand::Organisations(c) => organisations(&mut s, c).await,
        AdminCommand::Tokens(c) => tokens(&mut s, c).await,
        AdminCommand::Public(PublicCommand::Search(a)) => public_search(&mut s, a).await,
    }
}

/// The client, where output goes, and how it is printed.
struct Session<'a> {
    client: AdminClient,
    out: &'a mut dyn Write,
    /// `--output json`: print the API's JSON answer as it is.
    json: bool,
}

impl Session<'_> {
    /// Calls a route that answers JSON.
    async fn fetch(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        self.client.call(method, path, body).await?.json()
    }

    /// Calls a route and prints its answer: the JSON itself with
    /// `--output json`, else what `text` writes.
    async fn show(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        text: impl FnOnce(&mut dyn Write, &Value) -> io::Result<()>,
    ) -> Result<(), ClientError> {
        let answer = self.fetch(method, path, body).await?;
        if self.json {
            writeln!(self.out, "{}", pretty(&answer))?;
        } else {
            text(&mut *self.out, &answer)?;
        }
        Ok(())
    }
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("-")
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// A JSON value as one line of text: `-` for none, a list comma-separated,
/// a person as `name <email>`; tabs and line breaks become spaces.
fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.replace(['\t', '\n', '\r'], " "),
        Some(Value::Array(a)) if a.is_empty() => "-".into(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| cell(Some(v)))
            .collect::<Vec<_>>()
            .join(", "),
        Some(o @ Value::Object(_)) => match (o.get("name"), o.get("email")) {
            (Some(name), Some(email)) => format!("{} <{}>", cell(Some(name)), cell(Some(email))),
            _ => o.to_string(),
        },
        Some(other) => other.to_string(),
    }
}

/// An object as `key: value` lines: the keys in `first` first (those it
/// has), then the others by name, leaving out the keys in `skip`.
fn fields(out: &mut dyn Write, v: &Value, first: &[&str], skip: &[&str]) -> io::Result<()> {
    let Some(map) = v.as_object() else {
        return Ok(());
    };
    let leading = first.iter().filter_map(|k| map.get_key_value(*k));
    let rest = map
        .iter()
        .filter(|(k, _)| !first.contains(&k.as_str()) && !skip.contains(&k.as_str()));
    for (k, val) in leading.chain(rest) {
        writeln!(out, "{k}: {}", cell(Some(val)))?;
    }
    Ok(())
}

fn items(v: &Value) -> &[Value] {
    v.get("items")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// A list answer's items as a table: a header line, then one tab-separated
/// line an item; `columns` are (heading, key).
fn table(out: &mut dyn Write, answer: &Value, columns: &[(&str, &str)]) -> io::Result<()> {
    let heads: Vec<&str> = columns.iter().map(|(h, _)| *h).collect();
    writeln!(out, "{}", heads.join("\t"))?;
    for item in items(answer) {
        let row: Vec<String> = columns.iter().map(|(_, k)| cell(item.get(*k))).collect();
        writeln!(out, "{}", row.join("\t"))?;
    }
    Ok(())
}

/// [`table`] and a last line that counts the items, e.g. `3 orders`.
fn counted_table(
    out: &mut dyn Write,
    answer: &Value,
    columns: &[(&str, &str)],
    noun: &str,
) -> io::Result<()> {
    table(out, answer, columns)?;
    writeln!(out, "{} {noun}", items(answer).len())
}

/// The PEM of a certificate view, as it is.
fn write_pem(out: &mut dyn Write, cert: &Value) -> Result<(), ClientError> {
    let pem = cert
        .get("pem")
        .and_then(Value::as_str)
        .ok_or_else(|| ClientError::Answer("the certificate has no pem".into()))?;
    out.write_all(pem.as_bytes())?;
    if !pem.ends_with('\n') {
        writeln!(out)?;
    }
    Ok(())
}

/// A path segment: trimmed and percent-encoded.
fn segment(s: &str) -> String {
    encode_component(s.trim())
}

fn print_order(out: &mut dyn Write, order: &Value) -> io::Result<()> {
    writeln!(out, "reference: {}", text(order, "reference"))?;
    writeln!(out, "status: {}", text(order, "status"))?;
    if let Some(renews) = order.get("renews").and_then(Value::as_str) {
        writeln!(out, "renews: {renews}")?;
    }
    if let Some(code) = order.get("code").and_then(Value::as_str) {
        writeln!(
            out,
            "one-time code: {code}  (shown once; hand it over separately)"
        )?;
    }
    Ok(())
}

async fn create_profile(s: &mut Session<'_>, a: CreateProfileArgs) -> Result<(), ClientError> {
    let mut body = Map::new();
    let mut put = |k: &str, v: Value| {
        body.insert(k.to_owned(), v);
    };
    if let Some(cvr) = a.cvr {
        put("cvr", json!(cvr));
    }
    put("name", json!(a.name));
    put("kind", json!(a.kind));
    put("est_label", json!(a.label));
    put(
        "contact",
        json!({"name": a.contact_name, "email": a.contact_email}),
    );
    if let Some(e) = a.email {
        put("email", json!(e));
    }
    put("rights", json!(a.rights));
    put("identification", json!(a.identification));
    put("issuance", json!(a.issuance));
    if let Some(d) = a.validity_days {
        put("validity_days", json!(d));
    }
    put("dns_names", json!(a.dns_names));
    put("allow_ip_sans", json!(a.allow_ip_sans));
    put("approval_required", json!(a.approval_required));
    put("require_pop_linking", json!(a.require_pop_linking));
    put("org_default", json!(a.org_default));
    put("seal", json!(a.seal));
    put("publish", json!(a.publish));
    if let Some(n) = a.p_number {
        put("p_number", json!(n));
    }
    if let Some(n) = a.se_number {
        put("se_number", json!(n));
    }
    match (a.order_user_name, a.order_user_email) {
        (Some(name), Some(email)) => put("order", json!({"user": {"name": name, "email": email}})),
        _ if a.order => put("order", json!({})),
        _ => {}
    }
    s.show(
        Method::POST,
        "/profiles",
        Some(&Value::Object(body)),
        |out, answer| {
            writeln!(out, "{}", pretty(answer.get("profile").unwrap_or(answer)))?;
            match answer.get("order") {
                Some(order) => print_order(out, order),
                None => Ok(()),
            }
        },
    )
    .await
}

async fn order(s: &mut Session<'_>, a: OrderArgs) -> Result<(), ClientError> {
    let mut body = json!({"profile_id": a.profile});
    if let (Some(name), Some(email)) = (a.user_name, a.user_email) {
        body["user"] = json!({"name": name, "email": email});
    }
    if let Some(p) = a.publish {
        body["publish"] = json!(p);
    }
    if let Some(i) = a.identification {
        body["identification"] = json!(i);
    }
    if let Some(i) = a.issuance {
        body["issuance"] = json!(i);
    }
    s.show(Method::POST, "/orders", Some(&body), print_order)
        .await
}

async fn list(s: &mut Session<'_>, a: ListArgs) -> Result<(), ClientError> {
    if let Some(profile) = &a.profile {
        let path = format!(
            "/orders{}",
            query_string(&[("profile_id", Some(profile)), ("cvr", a.cvr.as_deref())])
        );
        let columns = [
            ("REFERENCE", "reference"),
            ("STATUS", "status"),
            ("SERIAL", "serial"),
            ("NOT_AFTER", "not_after"),
            ("USER", "user"),
        ];
        return s
            .show(Method::GET, &path, None, |out, answer| {
                counted_table(out, answer, &columns, "orders")
            })
            .await;
    }
    let page = a.page.map(|n| n.to_string());
    let per_page = a.per_page.map(|n| n.to_string());
    let path = format!(
        "/profiles{}",
        query_string(&[
            ("q", a.query.as_deref()),
            ("cvr", a.cvr.as_deref()),
            ("state", a.state.as_deref()),
            ("page", page.as_deref()),
            ("per_page", per_page.as_deref()),
        ])
    );
    let columns = [
        ("ID", "id"),
        ("CVR", "cvr"),
        ("LABEL", "est_label"),
        ("NAME", "name"),
    ];
    s.show(Method::GET, &path, None, |out, answer| {
        table(out, answer, &columns)?;
        writeln!(
            out,
            "page {} of profiles: {} shown, {} in all",
            answer.get("page").and_then(Value::as_u64).unwrap_or(1),
            items(answer).len(),
            answer.get("total").and_then(Value::as_u64).unwrap_or(0)
        )
    })
    .await
}

async fn revoke(s: &mut Session<'_>, a: RevokeArgs) -> Result<(), ClientError> {
    let path = format!("/certificates/{}/revoke", segment(&a.serial));
    let body = json!({"reason": a.reason});
    s.show(Method::POST, &path, Some(&body), |out, answer| {
        writeln!(
            out,
            "certificate {} is {} ({})",
            text(answer, "serial"),
            text(answer, "status"),
            text(answer, "revocation_reason")
        )?;
        let also = answer.get("also_revoked").filter(|v| cell(Some(v)) != "-");
        if let Some(also) = also {
            writeln!(out, "also revoked, as its successors: {}", cell(Some(also)))?;
        }
        Ok(())
    })
    .await
}

async fn export(s: &mut Session<'_>, a: ExportArgs) -> Result<(), ClientError> {
    let path = match &a.profile {
        _ if a.profiles => format!(
            "/profiles.csv{}",
            query_string(&[("cvr", a.cvr.as_deref()), ("state", a.state.as_deref())])
        ),
        Some(p) => format!("/profiles/{}/certificates.csv", segment(p)),
        None => format!("/export.csv{}", query_string(&[("cvr", a.cvr.as_deref())])),
    };
    let answer = s.client.call(Method::GET, &path, None).await?;
    s.out.write_all(&answer.body)?;
    s.out.flush()?;
    Ok(())
}

async fn orders(s: &mut Session<'_>, command: OrdersCommand) -> Result<(), ClientError> {
    let (method, action, order) = match &command {
        OrdersCommand::Show(o) => (Method::GET, "", o),
        OrdersCommand::Approve(o) => (Method::POST, "/approve", o),
        OrdersCommand::Reject(o) => (Method::POST, "/reject", o),
        OrdersCommand::NewCode(o) => (Method::POST, "/code", o),
        OrdersCommand::Delete(o) => (Method::DELETE, "", o),
    };
    let path = format!("/orders/{}{action}", segment(&order.reference));
    match command {
        OrdersCommand::Show(_) => {
            s.show(method, &path, None, |out, v| {
                fields(out, v, &["reference", "status"], &[])
            })
            .await
        }
        OrdersCommand::NewCode(_) => {
            s.show(method, &path, None, |out, v| {
                writeln!(out, "reference: {}", text(v, "reference"))?;
                writeln!(
                    out,
                    "one-time code: {}  (shown once; hand it over separately)",
                    text(v, "code")
                )?;
                writeln!(out, "code expires: {}", text(v, "code_expires_at"))
            })
            .await
        }
        _ => {
            s.show(method, &path, None, |out, v| {
                writeln!(
                    out,
                    "order {} is {}",
                    text(v, "reference"),
                    text(v, "status")
                )
            })
            .await
        }
    }
}

async fn certificates(
    s: &mut Session<'_>,
    command: CertificatesCommand,
) -> Result<(), ClientError> {
    let cert_path = |serial: &SerialArg, action: &str| {
        format!("/certificates/{}{action}", segment(&serial.serial))
    };
    match command {
        CertificatesCommand::Show(a) if a.pem => {
            let cert = s
                .fetch(Method::GET, &cert_path(&a.serial, ""), None)
                .await?;
            write_pem(s.out, &cert)
        }
        CertificatesCommand::Show(a) => {
            s.show(Method::GET, &cert_path(&a.serial, ""), None, |out, v| {
                fields(out, v, &["serial", "status", "subject"], &["pem"])
            })
            .await
        }
        CertificatesCommand::Renew(a) => {
            s.show(Method::POST, &cert_path(&a, "/renew"), None, print_order)
                .await
        }
        CertificatesCommand::Block(a) => {
            s.show(Method::POST, &cert_path(&a, "/block"), None, |out, v| {
                writeln!(
                    out,
                    "certificate {} is {}",
                    text(v, "serial"),
                    text(v, "status")
                )
            })
            .await
        }
    }
}

async fn audit(s: &mut Session<'_>, a: AuditArgs) -> Result<(), ClientError> {
    let limit = a.limit.map(|n| n.to_string());
    let before = a.before.map(|n| n.to_string());
    let path = format!(
        "/audit{}",
        query_string(&[
            ("cvr", a.cvr.as_deref()),
            ("profile_id", a.profile.as_deref()),
            ("serial", a.serial.as_deref()),
            ("order", a.order.as_deref()),
            ("limit", limit.as_deref()),
            ("before", before.as_deref()),
        ])
    );
    let columns = [
        ("ID", "id"),
        ("AT", "at"),
        ("ACTOR", "actor"),
        ("ACTION", "action"),
        ("OUTCOME", "outcome"),
        ("CVR", "cvr"),
        ("SERIAL", "serial"),
        ("ORDER", "order_reference"),
        ("DETAIL", "detail"),
    ];
    s.show(Method::GET, &path, None, |out, answer| {
        counted_table(out, answer, &columns, "events")?;
        match answer.get("next_before").and_then(Value::as_u64) {
            Some(n) => writeln!(out, "older events: --before {n}"),
            None => Ok(()),
        }
    })
    .await
}

async fn notifications(s: &mut Session<'_>, a: NotificationsArgs) -> Result<(), ClientError> {
    let path = format!(
        "/notifications{}",
        query_string(&[("cvr", a.cvr.as_deref())])
    );
    let columns = [
        ("ID", "id"),
        ("AT", "at"),
        ("KIND", "kind"),
        ("TO", "to"),
        ("SERIAL", "serial"),
        ("DELIVERED", "delivered_at"),
        ("ATTEMPTS", "attempts"),
        ("SUBJECT", "subject"),
    ];
    s.show(Method::GET, &path, None, |out, answer| {
        counted_table(out, answer, &columns, "notifications")
    })
    .await
}

async fn organisations(
    s: &mut Session<'_>,
    command: OrganisationsCommand,
) -> Result<(), ClientError> {
    let show = |out: &mut dyn Write, v: &Value| fields(out, v, &["cvr", "name"], &[]);
    match command {
        OrganisationsCommand::Create(a) => {
            let body = json!({
                "cvr": a.cvr.trim(),
                "name": a.name,
                "allow_user_certs": a.allow_user_certs,
                "allow_seal": a.allow_seal,
                "p_numbers": a.p_numbers,
                "se_numbers": a.se_numbers,
            });
            s.show(Method::POST, "/organisations", Some(&body), show)
                .await
        }
        OrganisationsCommand::Show(a) => {
            let path = format!("/organisations/{}", segment(&a.cvr));
            s.show(Method::GET, &path, None, show).await
        }
        OrganisationsCommand::Change(a) => {
            let path = format!("/organisations/{}", segment(&a.cvr));
            s.show(Method::PATCH, &path, Some(&org_changes(a)), show)
                .await
        }
        OrganisationsCommand::List => {
            let columns = [
                ("CVR", "cvr"),
                ("NAME", "name"),
                ("USER_CERTS", "allow_user_certs"),
                ("SEAL", "allow_seal"),
            ];
            s.show(Method::GET, "/organisations", None, |out, answer| {
                counted_table(out, answer, &columns, "organisations")
            })
            .await
        }
    }
}

/// The body of `PATCH /organisations/{cvr}`: only what the options change.
fn org_changes(a: OrgChangeArgs) -> Value {
    let mut body = Map::new();
    if let Some(name) = a.name {
        body.insert("name".into(), json!(name));
    }
    if let Some(v) = a.allow_user_certs {
        body.insert("allow_user_certs".into(), json!(v));
    }
    if let Some(v) = a.allow_seal {
        body.insert("allow_seal".into(), json!(v));
    }
    if a.no_p_numbers || !a.p_numbers.is_empty() {
        body.insert("p_numbers".into(), json!(a.p_numbers));
    }
    if a.no_se_numbers || !a.se_numbers.is_empty() {
        body.insert("se_numbers".into(), json!(a.se_numbers));
    }
    Value::Object(body)
}

async fn public_search(s: &mut Session<'_>, a: PublicSearchArgs) -> Result<(), ClientError> {
    let path = format!(
        "/public/certificates{}",
        query_string(&[
            ("email", a.email.as_deref()),
            ("cvr", a.cvr.as_deref()),
            ("serial", a.serial.as_deref()),
        ])
    );
    if a.pem {
        let answer = s.fetch(Method::GET, &path, None).await?;
        for cert in items(&answer) {
            write_pem(s.out, cert)?;
        }
        return Ok(());
    }
    let columns = [
        ("SERIAL", "serial"),
        ("STATUS", "status"),
        ("NOT_AFTER", "not_after"),
        ("SUBJECT", "subject"),
    ];
    s.show(Method::GET, &path, None, |out, answer| {
        counted_table(out, answer, &columns, "certificates")
    })
    .await
}

/// The path of an organisation's tokens, or the operators'.
fn tokens_path(cvr: Option<&str>) -> String {
    match cvr {
        Some(c) => format!("/organisations/{}/tokens", segment(c)),
        None => "/tokens".to_owned(),
    }
}

async fn tokens(s: &mut Session<'_>, command: TokensCommand) -> Result<(), ClientError> {
    match command {
        TokensCommand::Create(a) => {
            let mut body = json!({"name": a.name});
            if let Some(d) = a.expires_in_days {
                body["expires_in_days"] = json!(d);
            }
            if let Some(t) = a.expires_at {
                body["expires_at"] = json!(t);
            }
            let path = tokens_path(a.cvr.as_deref());
            s.show(Method::POST, &path, Some(&body), |out, answer| {
                writeln!(out, "id: {}", text(answer, "id"))?;
                writeln!(
                    out,
                    "token: {}  (shown once; only its hash is kept)",
                    text(answer, "token")
                )?;
                writeln!(out, "expires: {}", text(answer, "expires_at"))
            })
            .await
        }
        TokensCommand::List(a) => {
            let columns = [
                ("ID", "id"),
                ("STATE", "state"),
                ("CREATED", "created_at"),
                ("EXPIRES", "expires_at"),
                ("NAME", "name"),
            ];
            s.show(
                Method::GET,
                &tokens_path(a.cvr.as_deref()),
                None,
                |out, answer| counted_table(out, answer, &columns, "tokens"),
            )
            .await
        }
        TokensCommand::Revoke(a) => {
            let path = format!("{}/{}", tokens_path(a.cvr.as_deref()), segment(&a.id));
            s.show(Method::DELETE, &path, None, |out, answer| {
                writeln!(
                    out,
                    "token {} ({}) is {}",
                    text(answer, "id"),
                    text(answer, "name"),
                    text(answer, "state")
                )
            })
            .await
        }
    }
}
