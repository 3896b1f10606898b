//! Certificate profiles: create (optionally ordering a certificate in the same
//! call), read, change, and search.

use http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};

use super::organisations::visible_org;
use super::problem::ApiError;
use super::request::ApiRequest;
use super::response::{created, json, ApiResult};
use super::views::CreatedOrderView;
use super::{catalogue_lock, commit};
use crate::app::App;
use crate::est::is_valid_label;
use crate::model::{
    email_problem, is_allowed_method_pair, is_valid_cvr, now_unix, subject_text_problem,
    AuditAction, AuditOutcome, CertKind, Contact, Identification, Issuance, KeyAlgorithm,
    KeyPolicy, Organisation, Profile, SystemRight, CVR_RULE,
};
use crate::orders::{audit, create_order, visible_profile, Actor, OrderRequest};
use crate::policy::is_host_name;

/// Default certificate lifetime, days.
const DEFAULT_VALIDITY_DAYS: u32 = 1095;
/// Longest certificate lifetime a profile may ask for, days (three years).
const MAX_VALIDITY_DAYS: u32 = 1095;
/// Longest profile name.
const MAX_NAME: usize = 200;
/// What a profile change answers when rights or seal changed.
pub const RIGHTS_NOTICE: &str =
    "changes to system rights and seal take effect only in certificates issued from now on";

/// `{name, email}` of a person.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonInput {
    name: String,
    email: String,
}

/// The key policy as the API takes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPolicyInput {
    allowed: Vec<String>,
    #[serde(default)]
    min_rsa_bits: Option<u32>,
}

/// "Create certificate profile and order certificate": `{}` for the profile's
/// own certificate, `{"user": {...}}` for a user certificate.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderInput {
    #[serde(default)]
    user: Option<PersonInput>,
}

/// The body of `POST /profiles`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewProfile {
    /// Defaults to the actor's own organisation.
    #[serde(default)]
    cvr: Option<String>,
    name: String,
    kind: String,
    contact: PersonInput,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    p_number: Option<String>,
    #[serde(default)]
    se_number: Option<String>,
    #[serde(default)]
    rights: Vec<String>,
    #[serde(default)]
    seal: bool,
    #[serde(default)]
    publish: bool,
    identification: String,
    issuance: String,
    est_label: String,
    #[serde(default)]
    key_policy: Option<KeyPolicyInput>,
    #[serde(default)]
    validity_days: Option<u32>,
    #[serde(default)]
    dns_names: Vec<String>,
    #[serde(default)]
    allow_ip_sans: bool,
    #[serde(default)]
    approval_required: bool,
    #[serde(default)]
    require_pop_linking: bool,
    #[serde(default)]
    org_default: bool,
    #[serde(default)]
    order: Option<OrderInput>,
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// The body of `PATCH /profiles/{id}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProfileChanges {
    name: Option<String>,
    contact: Option<PersonInput>,
    #[serde(default, deserialize_with = "nullable")]
    email: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    p_number: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    se_number: Option<Option<String>>,
    rights: Option<Vec<String>>,
    seal: Option<bool>,
    publish: Option<bool>,
    identification: Option<String>,
    issuance: Option<String>,
    /// Accepted only unchanged: a label cannot change.
    est_label: Option<String>,
    /// Accepted only unchanged.
    kind: Option<String>,
    /// Accepted only unchanged.
    cvr: Option<String>,
    key_policy: Option<KeyPolicyInput>,
    validity_days: Option<u32>,
    dns_names: Option<Vec<String>>,
    allow_ip_sans: Option<bool>,
    approval_required: Option<bool>,
    require_pop_linking: Option<bool>,
    org_default: Option<bool>,
}

#[derive(Debug, Serialize)]
struct CreatedProfile {
    profile: Profile,
    #[serde(skip_serializing_if = "Option::is_none")]
    order: Option<CreatedOrderView>,
}

#[derive(Debug, Serialize)]
struct ChangedProfile {
    profile: Profile,
    #[serde(skip_serializing_if = "Option::is_none")]
    notice: Option<&'static str>,
}

#[derive(Debug, Serialize)]
struct ProfilePage {
    items: Vec<Profile>,
    page: u64,
    per_page: u64,
    total: usize,
}

/// Parses an API enum value by its wire name, naming `field` if it is unknown.
fn parse_named<T: for<'de> Deserialize<'de>>(
    field: &str,
    value: &str,
    known: &str,
) -> Result<T, ApiError> {
    serde_json::from_value(serde_json::Value::String(value.to_owned()))
        .map_err(|_| ApiError::invalid(field, format!("{value:?} is not one of {known}")))
}

/// Parses an identification method.
pub fn parse_identification(field: &str, value: &str) -> Result<Identification, ApiError> {
    parse_named(field, value, "user-login, one-time-code, api")
}

/// Parses an issuance method.
pub fn parse_issuance(field: &str, value: &str) -> Result<Issuance, ApiError> {
    parse_named(field, value, "browser, hardware, est")
}

fn parse_kind(value: &str) -> Result<CertKind, ApiError> {
    match value {
        "organisation" => Ok(CertKind::Organisation),
        "system" => Ok(CertKind::System),
        "user" => Err(ApiError::invalid(
            "kind",
            "a profile is \"organisation\" or \"system\"; user certificates are ordered for a \
             person under a profile (POST /orders with \"user\")",
        )),
        other => Err(ApiError::invalid(
            "kind",
            format!("{other:?} is not one of organisation, system"),
        )),
    }
}

fn parse_rights(values: &[String]) -> Result<Vec<SystemRight>, ApiError> {
    let mut rights = Vec::with_capacity(values.len());
    for v in values {
        let right = SystemRight::parse(v).ok_or_else(|| {
            ApiError::invalid(
                "rights",
                format!("{v:?} is not a system right (known: est-enroll, admin-api)"),
            )
        })?;
        if !rights.contains(&right) {
            rights.push(right);
        }
    }
    Ok(rights)
}

fn parse_key_policy(input: &KeyPolicyInput) -> Result<KeyPolicy, ApiError> {
    let mut allowed = Vec::with_capacity(input.allowed.len());
    for a in &input.allowed {
        let alg: KeyAlgorithm = parse_named("key_policy.allowed", a, "p256, p384, rsa, ed25519")?;
        if !allowed.contains(&alg) {
            allowed.push(alg);
        }
    }
    Ok(KeyPolicy {
        allowed,
        min_rsa_bits: input
            .min_rsa_bits
            .unwrap_or(KeyPolicy::default().min_rsa_bits),
    })
}

fn contact_of(input: &PersonInput) -> Contact {
    Contact {
        name: input.name.trim().to_owned(),
        email: input.email.trim().to_owned(),
    }
}

fn optional_text(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// Whether `rule` is a DNS name, or `.suffix` for any name below it.
fn is_dns_rule(rule: &str) -> bool {
    is_host_name(rule.strip_prefix('.').unwrap_or(rule))
}

/// Checks a whole profile against its organisation's rules.
fn validate(p: &Profile, org: &Organisation) -> Result<(), ApiError> {
    if p.name.is_empty() {
        return Err(ApiError::invalid("name", "is required"));
    }
    if p.name.chars().count() > MAX_NAME {
        return Err(ApiError::invalid(
            "name",
            format!("must be at most {MAX_NAME} printable characters"),
        ));
    }
    // A profile's name becomes the CN of its ordered certificates.
    if let Some(problem) = subject_text_problem(&p.name) {
        return Err(ApiError::invalid("name", problem));
    }
    if !is_valid_label(&p.est_label) {
        return Err(ApiError::invalid(
            "est_label",
            "must be 1 to 64 characters of A-Z, a-z, 0-9, '-', '_' and '.'",
        ));
    }
    let Some(contact) = &p.contact else {
        return Err(ApiError::invalid("contact", "is required"));
    };
    if contact.name.is_empty() {
        return Err(ApiError::invalid("contact.name", "is required"));
    }
    if let Some(problem) = subject_text_problem(&contact.name) {
        return Err(ApiError::invalid("contact.name", problem));
    }
    if let Some(problem) = email_problem(&contact.email) {
        return Err(ApiError::invalid("contact.email", problem));
    }
    if let Some(problem) = p.email.as_deref().and_then(email_problem) {
        return Err(ApiError::invalid("email", problem));
    }
    if !p.rights.is_empty() && p.kind != CertKind::System {
        return Err(ApiError::invalid(
            "rights",
            "only system certificates carry system rights",
        ));
    }
    if !is_allowed_method_pair(p.identification, p.issuance) {
        return Err(ApiError::invalid(
            "issuance",
            format!(
                "{} is not offered with identification {}",
                wire_name(&p.issuance),
                wire_name(&p.identification)
            ),
        ));
    }
    if p.seal && !org.allow_seal {
        return Err(ApiError::invalid(
            "seal",
            format!("organisation {} does not allow seal generation", org.cvr),
        ));
    }
    if let Some(n) = p.p_number.as_ref().filter(|n| !org.p_numbers.contains(n)) {
        return Err(ApiError::invalid(
            "p_number",
            format!("{n} is not one of organisation {}'s P numbers", org.cvr),
        ));
    }
    if let Some(n) = p.se_number.as_ref().filter(|n| !org.se_numbers.contains(n)) {
        return Err(ApiError::invalid(
            "se_number",
            format!("{n} is not one of organisation {}'s SE numbers", org.cvr),
        ));
    }
    if p.key_policy.allowed.is_empty() {
        return Err(ApiError::invalid(
            "key_policy.allowed",
            "must name at least one key algorithm",
        ));
    }
    if !(2048..=4096).contains(&p.key_policy.min_rsa_bits) {
        return Err(ApiError::invalid(
            "key_policy.min_rsa_bits",
            "must be from 2048 to 4096",
        ));
    }
    if !(1..=MAX_VALIDITY_DAYS).contains(&p.validity_days) {
        return Err(ApiError::invalid(
            "validity_days",
            format!("must be from 1 to {MAX_VALIDITY_DAYS}"),
        ));
    }
    if let Some(bad) = p.dns_names.iter().find(|r| !is_dns_rule(r)) {
        return Err(ApiError::invalid(
            "dns_names",
            format!("{bad:?} is not a DNS name (or .suffix for names below it)"),
        ));
    }
    Ok(())
}

/// The wire name of an API enum value (`one-time-code`, `est`, ...).
fn wire_name<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "?".into(),
    }
}

/// Refuses a name already used in the organisation, or a second default profile.
fn check_unique(app: &App, p: &Profile) -> Result<(), ApiError> {
    for other in app.store.profiles() {
        let other = other?;
        if other.cvr != p.cvr || other.id == p.id {
            continue;
        }
        if other.name.eq_ignore_ascii_case(&p.name) {
            return Err(ApiError::Conflict(format!(
                "a profile named {:?} already exists in organisation {}; profile names are unique within an organisation",
                other.name, p.cvr
            )));
        }
        if p.org_default && other.org_default {
            return Err(ApiError::Conflict(format!(
                "profile {:?} ({}) is already the organisation's default; clear org_default there first",
                other.name, other.id
            )));
        }
    }
    Ok(())
}

/// The organisation a new profile belongs to: given, or the actor's own.
/// An unknown or invisible one is a 400 on `cvr`.
fn target_org(app: &App, actor: &Actor, cvr: Option<&str>) -> Result<Organisation, ApiError> {
    let cvr = match (cvr.map(str::trim), actor.cvr.as_deref()) {
        (Some(c), _) => c.to_owned(),
        (None, Some(own)) => own.to_owned(),
        (None, None) => return Err(ApiError::invalid("cvr", "is required")),
    };
    if !is_valid_cvr(&cvr) {
        return Err(ApiError::invalid("cvr", CVR_RULE));
    }
    visible_org(app, actor, &cvr)
        .map_err(|_| ApiError::invalid("cvr", format!("no organisation with CVR {cvr}")))
}

/// The profile a `POST /profiles` body describes for `org`, checked.
pub(super) fn profile_from(
    input: &NewProfile,
    org: &Organisation,
    id: String,
) -> Result<Profile, ApiError> {
    let profile = Profile {
        id,
        cvr: org.cvr.clone(),
        name: input.name.trim().to_owned(),
        kind: parse_kind(&input.kind)?,
        // Labels are compared without regard to case; one spelling is kept.
        est_label: input.est_label.trim().to_ascii_lowercase(),
        org_default: input.org_default,
        rights: parse_rights(&input.rights)?,
        key_policy: match &input.key_policy {
            Some(k) => parse_key_policy(k)?,
            None => KeyPolicy::default(),
        },
        validity_days: input.validity_days.unwrap_or(DEFAULT_VALIDITY_DAYS),
        identification: parse_identification("identification", &input.identification)?,
        issuance: parse_issuance("issuance", &input.issuance)?,
        email: optional_text(input.email.clone()),
        dns_names: input.dns_names.clone(),
        allow_ip_sans: input.allow_ip_sans,
        contact: Some(contact_of(&input.contact)),
        p_number: optional_text(input.p_number.clone()),
        se_number: optional_text(input.se_number.clone()),
        seal: input.seal,
        publish: input.publish,
        approval_required: input.approval_required,
        require_pop_linking: input.require_pop_linking,
    };
    validate(&profile, org)?;
    Ok(profile)
}

impl NewProfile {
    /// The order that comes with the profile, if the body asks for one.
    pub(super) fn order(&self) -> Option<&OrderInput> {
        self.order.as_ref()
    }
}

impl OrderInput {
    /// The order request for `profile`, with the profile's methods.
    pub(super) fn request(&self, profile: &Profile) -> OrderRequest {
        OrderRequest {
            profile_id: profile.id.clone(),
            user: self
                .user
                .as_ref()
                .map(|u| (u.name.clone(), u.email.trim().to_owned())),
            identification: None,
            issuance: None,
        }
    }
}

/// `POST /profiles`, with an optional order in the same call.
pub async fn create(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    let input: NewProfile = req.json()?;
    let org = target_org(app, actor, input.cvr.as_deref())?;
    let profile = profile_from(&input, &org, uuid::Uuid::new_v4().to_string())?;
    let order = {
        let _guard = catalogue_lock();
        check_unique(app, &profile)?;
        app.store.put_profile(&profile)?;
        let order = match &input.order {
            None => None,
            Some(o) => {
                let request = o.request(&profile);
                match create_order(app, actor, &request, None) {
                    Ok(created) => Some(created),
                    Err(e) => {
                        // The call fails as a whole: the profile goes again.
                        app.store.remove_profile(&profile.id)?;
                        return Err(e.into());
                    }
                }
            }
        };
        audit(
            app,
            &actor.name,
            AuditAction::Configure,
            AuditOutcome::Done,
            Some(&profile.cvr),
            Some(&profile.id),
            None,
            None,
            format!(
                "profile created: {:?} (label {})",
                profile.name, profile.est_label
            ),
        )?;
        order
    };
    commit(app).await?;
    let now = now_unix();
    created(
        &format!("/api/v1/profiles/{}", profile.id),
        &CreatedProfile {
            order: order.map(|o| CreatedOrderView::new(app, o, now)),
            profile,
        },
    )
}

/// `GET /profiles/{id}`.
pub fn get(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    req.query.only(&[])?;
    json(StatusCode::OK, &visible_profile(app, actor, req.param(0))?)
}

/// Applies `changes` to `p` and checks the result against `org`.
pub(super) fn apply_changes(
    p: &mut Profile,
    changes: ProfileChanges,
    org: &Organisation,
) -> Result<(), ApiError> {
    apply(p, changes)?;
    validate(p, org)
}

/// Applies `changes` to `p`, refusing changes to what cannot change.
fn apply(p: &mut Profile, changes: ProfileChanges) -> Result<(), ApiError> {
    if let Some(label) = changes.est_label {
        if !label.trim().eq_ignore_ascii_case(&p.est_label) {
            return Err(ApiError::invalid(
                "est_label",
                "cannot be changed: EST clients are configured with it; create a new profile instead",
            ));
        }
    }
    if let Some(kind) = changes.kind {
        if parse_kind(&kind)? != p.kind {
            return Err(ApiError::invalid("kind", "cannot be changed"));
        }
    }
    if let Some(cvr) = changes.cvr {
        if cvr.trim() != p.cvr {
            return Err(ApiError::invalid("cvr", "cannot be changed"));
        }
    }
    if let Some(v) = changes.name {
        p.name = v.trim().to_owned();
    }
    if let Some(v) = changes.contact {
        p.contact = Some(contact_of(&v));
    }
    if let Some(v) = changes.email {
        p.email = optional_text(v);
    }
    if let Some(v) = changes.p_number {
        p.p_number = optional_text(v);
    }
    if let Some(v) = changes.se_number {
        p.se_number = optional_text(v);
    }
    if let Some(v) = changes.rights {
        p.rights = parse_rights(&v)?;
    }
    if let Some(v) = changes.seal {
        p.seal = v;
    }
    if let Some(v) = changes.publish {
        p.publish = v;
    }
    if let Some(v) = changes.identification {
        p.identification = parse_identification("identification", &v)?;
    }
    if let Some(v) = changes.issuance {
        p.issuance = parse_issuance("issuance", &v)?;
    }
    if let Some(v) = changes.key_policy {
        p.key_policy = parse_key_policy(&v)?;
    }
    if let Some(v) = changes.validity_days {
        p.validity_days = v;
    }
    if let Some(v) = changes.dns_names {
        p.dns_names = v;
    }
    if let Some(v) = changes.allow_ip_sans {
        p.allow_ip_sans = v;
    }
    if let Some(v) = changes.approval_required {
        p.approval_required = v;
    }
    if let Some(v) = changes.require_pop_linking {
        p.require_pop_linking = v;
    }
    if let Some(v) = changes.org_default {
        p.org_default = v;
    }
    Ok(())
}

/// `PATCH /profiles/{id}`: master data, rights, seal, contact, publishing,
/// approval, proof-of-possession linking; the label stays.
pub async fn update(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    let changes: ProfileChanges = req.json()?;
    let (profile, notice) = {
        let _guard = catalogue_lock();
        let before = visible_profile(app, actor, req.param(0))?;
        let org = app
            .store
            .org(&before.cvr)?
            .ok_or_else(|| ApiError::Internal(format!("organisation {} missing", before.cvr)))?;
        let mut profile = before.clone();
        apply_changes(&mut profile, changes, &org)?;
        let rights_or_seal = profile.rights != before.rights || profile.seal != before.seal;
        if profile != before {
            check_unique(app, &profile)?;
            app.store.put_profile(&profile)?;
            audit(
                app,
                &actor.name,
                AuditAction::Configure,
                AuditOutcome::Done,
                Some(&profile.cvr),
                Some(&profile.id),
                None,
                None,
                format!("profile changed: {:?}", profile.name),
            )?;
        }
        (profile, rights_or_seal.then_some(RIGHTS_NOTICE))
    };
    commit(app).await?;
    json(StatusCode::OK, &ChangedProfile { profile, notice })
}

/// Whether `p` matches a search text (lower case): its UUID, name, contact
/// person's name or e-mail, or the e-mail in its certificates.
fn matches_text(p: &Profile, needle: &str) -> bool {
    let has = |s: &str| s.to_lowercase().contains(needle);
    has(&p.id)
        || has(&p.name)
        || p.contact
            .as_ref()
            .is_some_and(|c| has(&c.name) || has(&c.email))
        || p.email.as_deref().is_some_and(has)
}

/// `GET /profiles?q=&cvr=&page=&per_page=`.
pub fn search(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    let q = &req.query;
    q.only(&["q", "cvr", "page", "per_page"])?;
    let needle = q.get("q").map(|s| s.trim().to_lowercase());
    let cvr = q.get("cvr");
    if cvr.is_some_and(|c| !is_valid_cvr(c)) {
        return Err(ApiError::invalid("cvr", CVR_RULE));
    }
    let page = q.number("page", 1, 1, u64::from(u32::MAX))?;
    let per_page = q.number("per_page", 50, 1, 500)?;
    let mut found = Vec::new();
    for p in app.store.profiles() {
        let p = p?;
        if actor.may_access(&p.cvr)
            && cvr.map_or(true, |c| c == p.cvr)
            && needle.as_deref().map_or(true, |n| matches_text(&p, n))
        {
            found.push(p);
        }
    }
    found.sort_by(|a, b| {
        (a.name.to_lowercase(), &a.cvr, &a.id).cmp(&(b.name.to_lowercase(), &b.cvr, &b.id))
    });
    let total = found.len();
    let skip = usize::try_from((page - 1).saturating_mul(per_page)).unwrap_or(usize::MAX);
    let items = found
        .into_iter()
        .skip(skip)
        .take(per_page as usize)
        .collect();
    json(
        StatusCode::OK,
        &ProfilePage {
            items,
            page,
            per_page,
            total,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_rules() {
        assert!(is_dns_rule("example.com"));
        assert!(is_dns_rule(".devices.example"));
        assert!(!is_dns_rule("*.example.com"));
        assert!(!is_dns_rule("."));
        assert!(!is_dns_rule("a..b"));
        assert!(!is_dns_rule("-a.b"));
    }

    #[test]
    fn enum_names() {
        assert_eq!(
            parse_identification("identification", "one-time-code").ok(),
            Some(Identification::OneTimeCode)
        );
        assert!(parse_issuance("issuance", "paper").is_err());
        assert_eq!(wire_name(&Issuance::Est), "est");
        assert!(parse_rights(&["est-enroll".into(), "root".into()]).is_err());
        assert_eq!(
            parse_rights(&["admin-api".into(), "admin-api".into()]).ok(),
            Some(vec![SystemRight::AdminApi])
        );
    }
}
