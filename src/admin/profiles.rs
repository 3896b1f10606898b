//! Certificate profiles: create (optionally ordering a certificate in the same
//! call), read, change, and search.

use http::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use super::problem::ApiError;
use super::request::ApiRequest;
use super::response::{created, json, ApiResult};
use super::views::{wire_name, CreatedOrderView};
use crate::app::App;
use crate::est::is_valid_label;
use crate::model::{
    email_problem, is_allowed_method_pair, is_valid_cvr, now_unix, subject_text_problem, Actor,
    CertKind, Contact, Identification, Issuance, KeyAlgorithm, KeyPolicy, Organisation, Profile,
    SystemRight, CVR_RULE,
};
use crate::policy::is_host_name;
use crate::service::{self, visible_profile, OrderRequest};

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
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonInput {
    name: String,
    email: String,
}

/// The key policy as the API takes it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyPolicyInput {
    allowed: Vec<KeyAlgorithm>,
    #[serde(default)]
    min_rsa_bits: Option<u32>,
}

/// "Create certificate profile and order certificate": `{}` for the profile's
/// own certificate, `{"user": {...}}` for a user certificate.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderInput {
    #[serde(default)]
    user: Option<PersonInput>,
    /// With `user` only: whether the certificate goes into the public
    /// certificate database. Absent: as the profile says (`publish`).
    #[serde(default)]
    publish: Option<bool>,
}

/// The body of `POST /profiles`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProfile {
    /// Defaults to the actor's own organisation.
    #[serde(default)]
    cvr: Option<String>,
    name: String,
    #[serde(deserialize_with = "profile_kind")]
    kind: ProfileKind,
    contact: PersonInput,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    p_number: Option<String>,
    #[serde(default)]
    se_number: Option<String>,
    #[serde(default)]
    rights: Vec<SystemRight>,
    #[serde(default)]
    /// Seal: certificates carry contentCommitment (nonRepudiation) with
    /// digitalSignature, no encryption usage, and the seal policy OID, so the
    /// organisation signs without a person's name. Organisation profiles
    /// only, and only if the organisation allows seal generation.
    seal: bool,
    #[serde(default)]
    publish: bool,
    identification: Identification,
    issuance: Issuance,
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
#[derive(Debug, Default, Deserialize, JsonSchema)]
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
    rights: Option<Vec<SystemRight>>,
    /// Seal: certificates carry contentCommitment (nonRepudiation) with
    /// digitalSignature, no encryption usage, and the seal policy OID, so the
    /// organisation signs without a person's name. Organisation profiles
    /// only, and only if the organisation allows seal generation.
    seal: Option<bool>,
    publish: Option<bool>,
    identification: Option<Identification>,
    issuance: Option<Issuance>,
    /// Accepted only unchanged: a label cannot change.
    est_label: Option<String>,
    /// Accepted only unchanged.
    #[serde(default, deserialize_with = "optional_profile_kind")]
    kind: Option<ProfileKind>,
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

#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct CreatedProfile {
    profile: Profile,
    #[serde(skip_serializing_if = "Option::is_none")]
    order: Option<CreatedOrderView>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct ChangedProfile {
    profile: Profile,
    #[serde(skip_serializing_if = "Option::is_none")]
    notice: Option<&'static str>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct ProfilePage {
    items: Vec<Profile>,
    page: u64,
    per_page: u64,
    total: usize,
}

/// What a profile is for: a [`CertKind`] without `user`, since user
/// certificates are ordered for a person under a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProfileKind {
    /// Organisation certificates.
    Organisation,
    /// System certificates.
    System,
}

impl From<ProfileKind> for CertKind {
    fn from(kind: ProfileKind) -> CertKind {
        match kind {
            ProfileKind::Organisation => CertKind::Organisation,
            ProfileKind::System => CertKind::System,
        }
    }
}

/// The refusal of `"kind": "user"`, which points to where user certificates come from.
const USER_KIND: &str = "a profile is \"organisation\" or \"system\"; user certificates are \
     ordered for a person under a profile (POST /orders with \"user\")";

/// Deserialises `T` by its wire name, but refuses `refused` (a name of the
/// model that this call does not take) with `why`.
pub(super) fn refusing<'de, D, T>(d: D, refused: &str, why: &str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    use serde::de::{value::StringDeserializer, Error, IntoDeserializer};
    let name = String::deserialize(d)?;
    if name == refused {
        return Err(D::Error::custom(why));
    }
    let name: StringDeserializer<D::Error> = name.into_deserializer();
    T::deserialize(name)
}

fn profile_kind<'de, D: Deserializer<'de>>(d: D) -> Result<ProfileKind, D::Error> {
    refusing(d, "user", USER_KIND)
}

/// As [`profile_kind`]; `null` counts as absent, as for every other change.
fn optional_profile_kind<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ProfileKind>, D::Error> {
    use serde::de::{value::StringDeserializer, IntoDeserializer};
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(name) => {
            let name: StringDeserializer<D::Error> = name.into_deserializer();
            profile_kind(name).map(Some)
        }
    }
}

/// `values` without repeats, in their first order.
fn distinct<T: PartialEq + Copy>(values: &[T]) -> Vec<T> {
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        if !out.contains(v) {
            out.push(*v);
        }
    }
    out
}

fn key_policy_of(input: &KeyPolicyInput) -> KeyPolicy {
    KeyPolicy {
        allowed: distinct(&input.allowed),
        min_rsa_bits: input
            .min_rsa_bits
            .unwrap_or(KeyPolicy::default().min_rsa_bits),
    }
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

/// Checks a whole profile against its organisation's rules, field by field
/// in the order a person reads the form.
fn validate(p: &Profile, org: &Organisation) -> Result<(), ApiError> {
    validate_names(p)?;
    validate_methods(p, org)?;
    validate_contents(p)
}

/// The texts: name, label, contact and e-mail.
fn validate_names(p: &Profile) -> Result<(), ApiError> {
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
    Ok(())
}

/// What the organisation and the kind allow: rights, methods, seal, P and SE numbers.
fn validate_methods(p: &Profile, org: &Organisation) -> Result<(), ApiError> {
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
    // A seal lets the organisation sign without a person's name: it is an
    // organisation certificate's, never a system's or a person's.
    if p.seal && p.kind != CertKind::Organisation {
        return Err(ApiError::invalid(
            "seal",
            "only organisation certificates can be seals (kind \"organisation\")",
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
    Ok(())
}

/// The certificate's contents: key policy, lifetime and DNS names.
fn validate_contents(p: &Profile) -> Result<(), ApiError> {
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

/// The CVR number of the organisation a new profile belongs to: given, or
/// the actor's own (the service answers 400 on `cvr` if it cannot see it).
fn target_cvr(actor: &Actor, cvr: Option<&str>) -> Result<String, ApiError> {
    let cvr = match (cvr.map(str::trim), actor.cvr.as_deref()) {
        (Some(c), _) => c.to_owned(),
        (None, Some(own)) => own.to_owned(),
        (None, None) => return Err(ApiError::invalid("cvr", "is required")),
    };
    if !is_valid_cvr(&cvr) {
        return Err(ApiError::invalid("cvr", CVR_RULE));
    }
    Ok(cvr)
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
        kind: input.kind.into(),
        // Labels are compared without regard to case; one spelling is kept.
        est_label: input.est_label.trim().to_ascii_lowercase(),
        org_default: input.org_default,
        rights: distinct(&input.rights),
        key_policy: input
            .key_policy
            .as_ref()
            .map_or_else(KeyPolicy::default, key_policy_of),
        validity_days: input.validity_days.unwrap_or(DEFAULT_VALIDITY_DAYS),
        identification: input.identification,
        issuance: input.issuance,
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
            publish: self.publish,
            identification: None,
            issuance: None,
        }
    }
}

/// `POST /profiles`, with an optional order in the same call.
pub async fn create(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    let input: NewProfile = req.json()?;
    let (profile, order) = create_profile(app, actor, &input).await?;
    let now = now_unix();
    created(
        &format!("/api/v1/profiles/{}", profile.id),
        &CreatedProfile {
            order: order.map(|o| CreatedOrderView::new(app.services(), o, now)),
            profile,
        },
    )
}

/// The body of `POST /profiles` as JSON, parsed by the API's own rules (the
/// portal turns its form into it, so that both take one set of rules).
pub fn parse_new_profile(input: &serde_json::Value) -> Result<NewProfile, ApiError> {
    let bytes = serde_json::to_vec(input).map_err(|e| ApiError::Encoding(Box::new(e)))?;
    super::request::parse_json(&bytes)
}

/// Checks a new profile (and its order) as `POST /profiles` would, without
/// storing anything: the portal's review step.
pub fn check_new_profile(
    app: &App,
    actor: &Actor,
    input: &NewProfile,
) -> Result<Profile, ApiError> {
    let cvr = target_cvr(actor, input.cvr.as_deref())?;
    let org = service::visible_org(app.services(), actor, &cvr)
        .map_err(|_| ApiError::invalid("cvr", format!("no organisation with CVR {cvr}")))?;
    let profile = profile_from(input, &org, uuid::Uuid::new_v4().to_string())?;
    if let Some(order) = input.order() {
        service::orders::check_order_request(&order.request(&profile), &org, &profile)?;
    }
    Ok(profile)
}

/// Creates a profile, and its order if it asks for one: `POST /profiles`.
pub async fn create_profile(
    app: &App,
    actor: &Actor,
    input: &NewProfile,
) -> Result<(Profile, Option<service::CreatedOrder>), ApiError> {
    let cvr = target_cvr(actor, input.cvr.as_deref())?;
    service::create_profile(app.services(), actor, &cvr, |org| {
        let profile = profile_from(input, org, uuid::Uuid::new_v4().to_string())?;
        let request = input.order().map(|o| o.request(&profile));
        Ok::<_, ApiError>((profile, request))
    })
    .await
}

/// `GET /profiles/{id}`.
pub fn get(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    req.query.only(&[])?;
    json(
        StatusCode::OK,
        &visible_profile(app.services(), actor, req.param(0))?,
    )
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
        if CertKind::from(kind) != p.kind {
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
        p.rights = distinct(&v);
    }
    if let Some(v) = changes.seal {
        p.seal = v;
    }
    if let Some(v) = changes.publish {
        p.publish = v;
    }
    if let Some(v) = changes.identification {
        p.identification = v;
    }
    if let Some(v) = changes.issuance {
        p.issuance = v;
    }
    if let Some(v) = changes.key_policy {
        p.key_policy = key_policy_of(&v);
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
    let changed = service::update_profile(app.services(), actor, req.param(0), |p, org| {
        apply_changes(p, changes, org)
    })
    .await?;
    let profile = changed.profile;
    let notice = changed.rights_or_seal.then_some(RIGHTS_NOTICE);
    json(StatusCode::OK, &ChangedProfile { profile, notice })
}

/// `GET /profiles?q=&cvr=&state=&page=&per_page=`.
pub fn search(app: &App, actor: &Actor, req: &ApiRequest) -> ApiResult {
    let q = &req.query;
    q.only(&["q", "cvr", "state", "page", "per_page"])?;
    let needle = q.get("q").map(|s| s.trim().to_lowercase());
    let cvr = q.get("cvr");
    if cvr.is_some_and(|c| !is_valid_cvr(c)) {
        return Err(ApiError::invalid("cvr", CVR_RULE));
    }
    let state = super::export::wanted_state(req)?;
    let page = q.number("page", 1, 1, u64::from(u32::MAX))?;
    let per_page = q.number("per_page", 50, 1, 500)?;
    let filter = service::ProfileFilter {
        text: needle.as_deref(),
        cvr,
        state,
    };
    let found = service::search_profiles(app.services(), actor, &filter, now_unix())?;
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

    /// A body with every enum given; `patch` replaces fields.
    fn changes(patch: serde_json::Value) -> Result<ProfileChanges, ApiError> {
        super::super::request::parse_json(patch.to_string().as_bytes())
    }

    fn refused(patch: serde_json::Value) -> (String, String) {
        match changes(patch) {
            Err(ApiError::InvalidField { field, message }) => (field, message),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn enum_names() {
        let c = changes(serde_json::json!({"identification": "one-time-code"})).expect("parse");
        assert_eq!(c.identification, Some(Identification::OneTimeCode));
        let (field, message) = refused(serde_json::json!({"issuance": "paper"}));
        assert_eq!(field, "issuance");
        assert_eq!(message, "\"paper\" is not one of browser, hardware, est");
        assert_eq!(wire_name(&Issuance::Est), "est");
        let (field, message) = refused(serde_json::json!({"rights": ["est-enroll", "root"]}));
        assert_eq!(field, "rights");
        assert_eq!(message, "\"root\" is not one of est-enroll, admin-api");
        let c = changes(serde_json::json!({"rights": ["admin-api", "admin-api"]})).expect("parse");
        assert_eq!(
            c.rights.as_deref().map(distinct),
            Some(vec![SystemRight::AdminApi])
        );
        let (field, message) =
            refused(serde_json::json!({"key_policy": {"allowed": ["p256", "dsa"]}}));
        assert_eq!(field, "key_policy.allowed");
        assert_eq!(message, "\"dsa\" is not one of p256, p384, rsa, ed25519");
        let (field, message) = refused(serde_json::json!({"kind": "user"}));
        assert_eq!((field.as_str(), message.as_str()), ("kind", USER_KIND));
        let c = changes(serde_json::json!({"kind": null, "issuance": null})).expect("parse");
        assert_eq!((c.kind, c.issuance), (None, None), "null is absent");
        let (field, message) = refused(serde_json::json!({"kind": "robot"}));
        assert_eq!(field, "kind");
        assert_eq!(message, "\"robot\" is not one of organisation, system");
        // Not a string at all: the body is malformed, as before.
        assert!(matches!(
            changes(serde_json::json!({"kind": 5})),
            Err(ApiError::MalformedBody(_))
        ));
    }
}
