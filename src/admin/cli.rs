//! `estd admin ...`: the admin API from the command line, over HTTPS, so
//! that an operator needs no curl.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
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
    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
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
    Export(ExportArgs),
    /// Admin API tokens: create (operators only), list, revoke.
    #[command(subcommand)]
    Tokens(TokensCommand),
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
    /// Print the API's JSON answer instead of a table.
    #[arg(long)]
    pub json: bool,
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
    /// Print the API's JSON answer instead of a table.
    #[arg(long)]
    pub json: bool,
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
    let token = match &args.token {
        Some(t) => t.clone(),
        None => read_token_file(&args.token_file)?,
    };
    let client = AdminClient::new(&args.url, &args.ca, &token)?;
    match args.command {
        AdminCommand::CreateProfile(a) => create_profile(&client, *a, out).await,
        AdminCommand::Order(a) => order(&client, a, out).await,
        AdminCommand::List(a) => list(&client, a, out).await,
        AdminCommand::Revoke(a) => revoke(&client, a, out).await,
        AdminCommand::Export(a) => export(&client, a, out).await,
        AdminCommand::Tokens(c) => tokens(&client, c, out).await,
    }
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("-")
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

fn print_order(out: &mut dyn Write, order: &Value) -> Result<(), ClientError> {
    writeln!(out, "reference: {}", text(order, "reference"))?;
    writeln!(out, "status: {}", text(order, "status"))?;
    if let Some(code) = order.get("code").and_then(Value::as_str) {
        writeln!(
            out,
            "one-time code: {code}  (shown once; hand it over separately)"
        )?;
    }
    Ok(())
}

async fn create_profile(
    client: &AdminClient,
    a: CreateProfileArgs,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
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
    let answer = client
        .call(Method::POST, "/profiles", Some(&Value::Object(body)))
        .await?
        .json()?;
    writeln!(out, "{}", pretty(answer.get("profile").unwrap_or(&answer)))?;
    if let Some(order) = answer.get("order") {
        print_order(out, order)?;
    }
    Ok(())
}

async fn order(client: &AdminClient, a: OrderArgs, out: &mut dyn Write) -> Result<(), ClientError> {
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
    let answer = client
        .call(Method::POST, "/orders", Some(&body))
        .await?
        .json()?;
    print_order(out, &answer)
}

fn items(v: &Value) -> &[Value] {
    v.get("items")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

async fn list(client: &AdminClient, a: ListArgs, out: &mut dyn Write) -> Result<(), ClientError> {
    let page = a.page.map(|n| n.to_string());
    let per_page = a.per_page.map(|n| n.to_string());
    let (path, orders) = match &a.profile {
        Some(profile) => (
            format!(
                "/orders{}",
                query_string(&[("profile_id", Some(profile)), ("cvr", a.cvr.as_deref())])
            ),
            true,
        ),
        None => (
            format!(
                "/profiles{}",
                query_string(&[
                    ("q", a.query.as_deref()),
                    ("cvr", a.cvr.as_deref()),
                    ("state", a.state.as_deref()),
                    ("page", page.as_deref()),
                    ("per_page", per_page.as_deref()),
                ])
            ),
            false,
        ),
    };
    let answer = client.call(Method::GET, &path, None).await?.json()?;
    if a.json {
        writeln!(out, "{}", pretty(&answer))?;
        return Ok(());
    }
    if orders {
        writeln!(out, "REFERENCE\tSTATUS\tSERIAL\tNOT_AFTER\tUSER")?;
        for o in items(&answer) {
            let user = o
                .get("user")
                .map(|u| format!("{} <{}>", text(u, "name"), text(u, "email")))
                .unwrap_or_else(|| "-".into());
            writeln!(
                out,
                "{}\t{}\t{}\t{}\t{user}",
                text(o, "reference"),
                text(o, "status"),
                text(o, "serial"),
                text(o, "not_after"),
            )?;
        }
        writeln!(out, "{} orders", items(&answer).len())?;
    } else {
        writeln!(out, "ID\tCVR\tLABEL\tNAME")?;
        for p in items(&answer) {
            writeln!(
                out,
                "{}\t{}\t{}\t{}",
                text(p, "id"),
                text(p, "cvr"),
                text(p, "est_label"),
                text(p, "name")
            )?;
        }
        writeln!(
            out,
            "page {} of profiles: {} shown, {} in all",
            answer.get("page").and_then(Value::as_u64).unwrap_or(1),
            items(&answer).len(),
            answer.get("total").and_then(Value::as_u64).unwrap_or(0)
        )?;
    }
    Ok(())
}

async fn revoke(
    client: &AdminClient,
    a: RevokeArgs,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    let path = format!("/certificates/{}/revoke", encode_component(a.serial.trim()));
    let answer = client
        .call(Method::POST, &path, Some(&json!({"reason": a.reason})))
        .await?
        .json()?;
    writeln!(
        out,
        "certificate {} is {} ({})",
        text(&answer, "serial"),
        text(&answer, "status"),
        text(&answer, "revocation_reason")
    )?;
    let also: Vec<&str> = answer
        .get("also_revoked")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !also.is_empty() {
        writeln!(out, "also revoked, as its successors: {}", also.join(", "))?;
    }
    Ok(())
}

async fn export(
    client: &AdminClient,
    a: ExportArgs,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    let path = match &a.profile {
        _ if a.profiles => format!(
            "/profiles.csv{}",
            query_string(&[("cvr", a.cvr.as_deref()), ("state", a.state.as_deref())])
        ),
        Some(p) => format!("/profiles/{}/certificates.csv", encode_component(p)),
        None => format!("/export.csv{}", query_string(&[("cvr", a.cvr.as_deref())])),
    };
    let answer = client.call(Method::GET, &path, None).await?;
    out.write_all(&answer.body)?;
    out.flush()?;
    Ok(())
}

/// The path of an organisation's tokens, or the operators'.
fn tokens_path(cvr: Option<&str>) -> String {
    match cvr {
        Some(c) => format!("/organisations/{}/tokens", encode_component(c.trim())),
        None => "/tokens".to_owned(),
    }
}

async fn tokens(
    client: &AdminClient,
    command: TokensCommand,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    match command {
        TokensCommand::Create(a) => {
            let mut body = json!({"name": a.name});
            if let Some(d) = a.expires_in_days {
                body["expires_in_days"] = json!(d);
            }
            if let Some(t) = a.expires_at {
                body["expires_at"] = json!(t);
            }
            let answer = client
                .call(Method::POST, &tokens_path(a.cvr.as_deref()), Some(&body))
                .await?
                .json()?;
            writeln!(out, "id: {}", text(&answer, "id"))?;
            writeln!(
                out,
                "token: {}  (shown once; only its hash is kept)",
                text(&answer, "token")
            )?;
            writeln!(out, "expires: {}", text(&answer, "expires_at"))?;
        }
        TokensCommand::List(a) => {
            let answer = client
                .call(Method::GET, &tokens_path(a.cvr.as_deref()), None)
                .await?
                .json()?;
            if a.json {
                writeln!(out, "{}", pretty(&answer))?;
                return Ok(());
            }
            writeln!(out, "ID\tSTATE\tCREATED\tEXPIRES\tNAME")?;
            for t in items(&answer) {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}",
                    text(t, "id"),
                    text(t, "state"),
                    text(t, "created_at"),
                    text(t, "expires_at"),
                    text(t, "name")
                )?;
            }
            writeln!(out, "{} tokens", items(&answer).len())?;
        }
        TokensCommand::Revoke(a) => {
            let path = format!(
                "{}/{}",
                tokens_path(a.cvr.as_deref()),
                encode_component(a.id.trim())
            );
            let answer = client.call(Method::DELETE, &path, None).await?.json()?;
            writeln!(
                out,
                "token {} ({}) is {}",
                text(&answer, "id"),
                text(&answer, "name"),
                text(&answer, "state")
            )?;
        }
    }
    Ok(())
}
