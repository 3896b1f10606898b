//! Demo data for a first start: an organisation, two profiles and an IdM
//! system certificate, so that a newcomer can enrol at once. Idempotent.

use std::path::{Path, PathBuf};

use const_oid::db::rfc4519;
use x509_cert::name::Name;

use crate::ca::bootstrap::{self, append_rdn};
use crate::ca::csr::classify_key;
use crate::ca::layout;
use crate::ca::{Ca, CaError, CertTemplate};
use crate::config::Config;
use crate::files::{cert_pem, key_pem, write_file, FileError};
use crate::model::{
    now_unix, organization_identifier, AuditAction, AuditEvent, AuditOutcome, CertKind, CertRecord,
    CertStatus, Identification, Organisation, Profile, SystemRight,
};
use crate::policy::ORGANIZATION_IDENTIFIER;
use std::sync::Arc;

use crate::store::{Store, StoreError};

/// Why the first-start data could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// CA material or signing.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// A file beside the CA material (the admin token, the demo credentials).
    #[error(transparent)]
    File(#[from] FileError),
    /// The operator's admin token could not be created.
    #[error("creating the operator's admin token: {0}")]
    OperatorToken(#[source] crate::service::Error),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No randomness for the demo administrator's credentials.
    #[error("making the demo administrator's invitation: {0}")]
    Credential(String),
    /// The demo IdM profile cannot have certificates (its seal setting).
    #[error("the demo IdM profile: {0}")]
    Profile(#[source] crate::policy::PolicyError),
}

/// EST label of the demo IdM system's own profile.
pub const DEMO_IDM_LABEL: &str = "demo-idm";

/// Where the demo credentials are.
#[derive(Debug, Clone)]
pub struct DemoIdentity {
    /// Demo IdM certificate (PEM).
    pub cert: PathBuf,
    /// Its key (PEM, mode 0600).
    pub key: PathBuf,
    /// The profile label to enrol under.
    pub label: String,
    /// Organisation name (the O attribute).
    pub organisation: String,
    /// CVR.
    pub cvr: String,
    /// The portal's demo administrator.
    pub admin: DemoAdmin,
}

/// The demo organisation's administrator: a person who holds the three
/// organisation roles, so that a newcomer can log in to the portal.
#[derive(Debug, Clone)]
pub struct DemoAdmin {
    /// The login address.
    pub email: String,
    /// The organisation.
    pub cvr: String,
    /// While the account is not yet activated: the file (mode 0600) that
    /// holds the activation link (a secret, so never printed or logged).
    pub activation_file: Option<PathBuf>,
}

/// The demo administrator's address.
pub const DEMO_ADMIN_EMAIL: &str = "admin@demo.example";
/// The file, beside the CA material, that holds their activation link.
pub const DEMO_ADMIN_LINK_FILE: &str = "demo-admin-activation.txt";

/// Invites the demo administrator if they are not yet active, writing the
/// activation link to [`DEMO_ADMIN_LINK_FILE`]; a link that still works is
/// kept, an expired or lost one replaced (the old one stops working).
pub fn ensure_demo_admin(config: &Config, store: &Arc<dyn Store>) -> Result<DemoAdmin, SeedError> {
    use crate::model::{person_key, LoginGuard, Person, PersonState, Role};
    use crate::service::credentials::{new_totp_secret, random_token, token_hash};
    let cvr = config.demo.cvr.clone();
    let link_file = config.paths.certs_dir.join(DEMO_ADMIN_LINK_FILE);
    let key = person_key(Some(&cvr), DEMO_ADMIN_EMAIL);
    let existing = store.person(&key)?;
    let now = now_unix();
    let fresh = |person: Option<Person>| -> Result<(Person, String), SeedError> {
        let token = random_token().map_err(|e| SeedError::Credential(e.to_string()))?;
        let secret = new_totp_secret().map_err(|e| SeedError::Credential(e.to_string()))?;
        let state = PersonState::Invited {
            token_hash: token_hash(&token),
            expires_at: now.saturating_add(config.people.invitation_ttl_secs()),
            totp_secret: secret.as_bytes().to_vec(),
        };
        let person = match person {
            Some(p) => Person { state, ..p },
            None => Person {
                id: uuid::Uuid::new_v4().to_string(),
                cvr: Some(cvr.clone()),
                name: "Demo Administrator".into(),
                email: DEMO_ADMIN_EMAIL.into(),
                roles: vec![Role::UserAdmin, Role::OrgAdmin, Role::RightsAdmin],
                state,
                guard: LoginGuard::default(),
                created_at: now,
                created_by: "estd-init".into(),
            },
        };
        Ok((person, token))
    };
    let (person, token) = match existing {
        Some(p) if !matches!(p.state, PersonState::Invited { .. }) => {
            // Active (or deactivated): the link, if any, has served.
            let _ = std::fs::remove_file(&link_file);
            return Ok(DemoAdmin {
                email: DEMO_ADMIN_EMAIL.into(),
                cvr,
                activation_file: None,
            });
        }
        // Invited, and the link written at an earlier start still works:
        // keep it (a new one would end the old, perhaps open elsewhere).
        Some(p)
            if matches!(p.state, PersonState::Invited { expires_at, .. } if expires_at > now)
                && link_file.exists() =>
        {
            return Ok(DemoAdmin {
                email: p.email,
                cvr,
                activation_file: Some(link_file),
            });
        }
        Some(p) => {
            let (p, token) = fresh(Some(p))?;
            store.put_person(&p)?;
            (p, token)
        }
        None => {
            let (p, token) = fresh(None)?;
            // Another node may seed at the same moment: the first wins.
            if !store.insert_new_person(&p)? {
                return Ok(DemoAdmin {
                    email: DEMO_ADMIN_EMAIL.into(),
                    cvr,
                    activation_file: None,
                });
            }
            (p, token)
        }
    };
    store.audit(&AuditEvent {
        at_ms: now * 1000,
        actor: "estd-init".into(),
        action: AuditAction::Person,
        outcome: AuditOutcome::Done,
        cvr: Some(cvr.clone()),
        profile_id: None,
        serial: None,
        order_id: None,
        detail: format!("demo administrator {} invited", person.email),
    })?;
    let link = config.people.portal_link(&format!(
        "{}?token={token}",
        crate::service::people::ACTIVATE_PATH
    ));
    write_file(&link_file, format!("{link}\n").as_bytes(), true)?;
    Ok(DemoAdmin {
        email: person.email,
        cvr,
        activation_file: Some(link_file),
    })
}

/// The subject of a system certificate of `org` named `cn`.
pub fn system_subject(org: &Organisation, cn: &str) -> Result<Name, CaError> {
    let mut name = Name::default();
    name = append_rdn(name, rfc4519::C, "DK")?;
    name = append_rdn(name, rfc4519::O, &org.name)?;
    name = append_rdn(
        name,
        ORGANIZATION_IDENTIFIER,
        &organization_identifier(&org.cvr),
    )?;
    append_rdn(name, rfc4519::CN, cn)
}

/// File under `certs/` that holds the operator's admin token (mode 0600).
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// Creates the server operator's admin API token on first start, and again
/// on a start that finds no usable one (all expired or revoked), writing it
/// to `certs/admin-token` with mode 0600; only its hash is stored. It lives
/// `admin_tokens.operator_token_days`.
pub fn ensure_operator_token(
    config: &Config,
    store: &Arc<dyn Store>,
) -> Result<PathBuf, SeedError> {
    let path = config.paths.certs_dir.join(ADMIN_TOKEN_FILE);
    let now = now_unix();
    if !store.has_usable_operator_token(now)? {
        let days = u64::from(config.admin_tokens.operator_token_days);
        let created = crate::service::mint_token(store, None, "operator", now + days * 86_400)
            .map_err(SeedError::OperatorToken)?;
        write_file(&path, format!("{}\n", created.token).as_bytes(), true)?;
    }
    Ok(path)
}

/// Creates whatever part of the demo data is missing.
pub fn ensure_demo(
    config: &Config,
    ca: &Ca,
    store: &Arc<dyn Store>,
) -> Result<DemoIdentity, SeedError> {
    let d = &config.demo;
    let (org, idm_profile) = ensure_demo_catalogue(config, store)?;

    let dir = &config.paths.certs_dir;
    let cert_path = dir.join(layout::DEMO_CERT);
    let key_path = dir.join(layout::DEMO_KEY);
    if !cert_path.exists() || !key_path.exists() {
        issue_demo_idm(ca, store, config, &org, &idm_profile, &cert_path, &key_path)?;
    }
    Ok(DemoIdentity {
        cert: cert_path,
        key: key_path,
        label: d.est_label.clone(),
        organisation: org.name,
        cvr: org.cvr,
        admin: ensure_demo_admin(config, store)?,
    })
}

/// The demo organisation, its enrolment profile and the IdM system's
/// profile, made where missing; returns the organisation and the IdM profile.
fn ensure_demo_catalogue(
    config: &Config,
    store: &Arc<dyn Store>,
) -> Result<(Organisation, Profile), SeedError> {
    let d = &config.demo;
    let org = match store.org(&d.cvr)? {
        Some(o) => o,
        None => {
            let o = Organisation {
                cvr: d.cvr.clone(),
                name: d.organisation_name.clone(),
                allow_user_certs: true,
                allow_seal: false,
                p_numbers: vec![],
                se_numbers: vec![],
            };
            // Another node sharing the store may seed at the same moment:
            // the first write wins, and this node takes what it wrote.
            if !store.insert_new_org(&o)? {
                store.org(&d.cvr)?.unwrap_or(o)
            } else {
                o
            }
        }
    };
    if store.profile_by_label(&d.est_label)?.is_none() {
        seed_profile(
            store,
            Profile {
                org_default: true,
                validity_days: 3 * 365,
                dns_names: vec![".devices.demo.example".into()],
                ..Profile::system(&org.cvr, &d.profile_name, &d.est_label)
            },
        )?;
    }
    let idm_profile = match store.profile_by_label(DEMO_IDM_LABEL)? {
        Some(p) => p,
        None => seed_profile(
            store,
            Profile {
                rights: vec![SystemRight::EstEnroll, SystemRight::AdminApi],
                validity_days: 3 * 365,
                // Not enrollable by API: the IdM certificate is handed out, not self-served.
                identification: Identification::OneTimeCode,
                ..Profile::system(&org.cvr, "Demo IdM system", DEMO_IDM_LABEL)
            },
        )?,
    };

    Ok((org, idm_profile))
}

/// Stores a demo profile, or takes the one with its label that another node
/// sharing the store wrote first (the label is unique in the store).
fn seed_profile(store: &Arc<dyn Store>, p: Profile) -> Result<Profile, SeedError> {
    match store.put_profile(&p) {
        Ok(()) => Ok(p),
        Err(StoreError::Conflict(why)) => match store.profile_by_label(&p.est_label)? {
            Some(theirs) => Ok(theirs),
            None => Err(StoreError::Conflict(why).into()),
        },
        Err(e) => Err(e.into()),
    }
}

/// Issues the demo IdM system's certificate, records it, and writes it (with
/// the issuing CA) and its key to `cert_path` and `key_path`.
fn issue_demo_idm(
    ca: &Ca,
    store: &Arc<dyn Store>,
    config: &Config,
    org: &Organisation,
    idm_profile: &Profile,
    cert_path: &Path,
    key_path: &Path,
) -> Result<(), SeedError> {
    let (pkcs8, spki) = bootstrap::generate_p256_key()?;
    let key = classify_key(&spki).map_err(CaError::GeneratedKey)?;
    let subject = system_subject(org, "Demo IdM system")?;
    let template = CertTemplate {
        subject: subject.clone(),
        spki,
        key,
        usage: crate::policy::cert_usage(idm_profile, &config.certificate_policies)
            .map_err(SeedError::Profile)?,
        sans: vec![],
        validity_days: idm_profile.validity_days,
    };
    let issued = ca.issue(&template)?;
    store.insert_new_cert(&CertRecord {
        serial: issued.serial,
        der: issued.der.clone(),
        subject: crate::policy::display_name(&subject),
        profile_id: idm_profile.id.clone(),
        cvr: org.cvr.clone(),
        kind: CertKind::System,
        rights: idm_profile.rights.clone(),
        issued_at: now_unix(),
        not_after: issued.not_after,
        status: CertStatus::Issued,
        renews: None,
        renewed_by: None,
        order_id: None,
        published: false,
        email: None,
    })?;
    store.audit(&AuditEvent {
        at_ms: now_unix() * 1000,
        actor: "estd-init".into(),
        action: AuditAction::Enroll,
        outcome: AuditOutcome::Done,
        cvr: Some(org.cvr.clone()),
        profile_id: Some(idm_profile.id.clone()),
        serial: Some(issued.serial),
        order_id: None,
        detail: "demo IdM system certificate".into(),
    })?;
    write_file(key_path, key_pem(&pkcs8).as_bytes(), true)?;
    let pem = format!("{}{}", cert_pem(&issued.der), cert_pem(ca.issuing_der()));
    write_file(cert_path, pem.as_bytes(), false)?;
    Ok(())
}
