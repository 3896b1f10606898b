//! People: the administrators and users of an organisation, and the server's
//! operators. A person is invited, activates their account (password and a
//! TOTP authenticator), logs in, and may be deactivated. What they may do
//! through the admin API is their roles'; what they may do with their own
//! certificates needs only an active account of the organisation.
//!
//! A person is keyed by organisation and address ([`person_key`]), so one
//! address is one person per organisation, on every engine and node.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{IllegalTransition, UnixSeconds};

/// What a person may do beyond their own certificates.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Users; ordering, renewing, revoking and blocking certificates;
    /// approving and cancelling orders.
    UserAdmin,
    /// The organisation's certificate settings: user certificates, seals,
    /// P/SE numbers, contact; profiles.
    OrgAdmin,
    /// Reads profiles, their rights and certificates; changes nothing.
    RightsAdmin,
    /// Runs the server: organisations, operator tokens, CRLs; every
    /// organisation's data.
    Operator,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [
        Role::UserAdmin,
        Role::OrgAdmin,
        Role::RightsAdmin,
        Role::Operator,
    ];

    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::UserAdmin => "user-admin",
            Role::OrgAdmin => "org-admin",
            Role::RightsAdmin => "rights-admin",
            Role::Operator => "operator",
        }
    }

    /// Whether a person of an organisation (`true`) or of the server
    /// (`false`) may hold it.
    pub fn is_organisation_role(self) -> bool {
        self != Role::Operator
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of roles (small: one bit each).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Roles(u8);

impl Roles {
    /// No role: a plain user.
    pub const NONE: Roles = Roles(0);

    fn bit(role: Role) -> u8 {
        1 << (role as u8)
    }

    /// The three roles of an organisation: what an organisation's machine
    /// token or `admin-api` certificate has always been able to do.
    pub fn organisation() -> Roles {
        Roles::of(&[Role::UserAdmin, Role::OrgAdmin, Role::RightsAdmin])
    }

    /// The set holding `roles`.
    pub fn of(roles: &[Role]) -> Roles {
        Roles(roles.iter().fold(0, |acc, r| acc | Roles::bit(*r)))
    }

    /// Whether it holds `role`.
    pub fn has(self, role: Role) -> bool {
        self.0 & Roles::bit(role) != 0
    }

    /// Whether it holds every role of `other`.
    pub fn contains(self, other: Roles) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether it holds any of `roles`.
    pub fn any(self, roles: &[Role]) -> bool {
        roles.iter().any(|r| self.has(*r))
    }

    /// Its roles, in [`Role::ALL`]'s order.
    pub fn list(self) -> Vec<Role> {
        Role::ALL.into_iter().filter(|r| self.has(*r)).collect()
    }

    /// Whether it holds none.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// The store key of a person: organisation (`-` for the server's operators)
/// and address in lower case.
pub fn person_key(cvr: Option<&str>, email: &str) -> String {
    format!("{} {}", cvr.unwrap_or("-"), email.to_lowercase())
}

/// Where a person's account stands. Only the transitions on [`Person`] exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PersonState {
    /// An invitation was sent; its link activates the account.
    Invited {
        /// SHA-256 of the token in the link (the token itself is never stored).
        token_hash: [u8; 32],
        /// When the link stops working.
        expires_at: UnixSeconds,
        /// The TOTP secret the person enrols in their authenticator while activating.
        totp_secret: Vec<u8>,
    },
    /// The person logs in.
    Active {
        /// argon2id, PHC string.
        password_hash: String,
        /// The TOTP secret.
        totp_secret: Vec<u8>,
        /// The last TOTP time step accepted: a code is good once.
        totp_last_step: Option<u64>,
        /// When the account was activated.
        activated_at: UnixSeconds,
    },
    /// Final: no login, no new certificate orders.
    Deactivated {
        /// When.
        at: UnixSeconds,
        /// By whom (the audit log's name).
        by: String,
    },
}

/// A person's state as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PersonStatus {
    /// Invited, not yet activated.
    Invited,
    /// Logs in.
    Active,
    /// Deactivated.
    Deactivated,
}

impl PersonStatus {
    /// The name the API shows.
    pub fn as_str(self) -> &'static str {
        match self {
            PersonStatus::Invited => "invited",
            PersonStatus::Active => "active",
            PersonStatus::Deactivated => "deactivated",
        }
    }
}

/// Wrong logins in a row, and the lockout they lead to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginGuard {
    /// Failed logins since the last good one.
    pub failures: u32,
    /// Refused until then, whatever is presented.
    pub locked_until: Option<UnixSeconds>,
}

impl LoginGuard {
    /// Whether logins are refused at `now`.
    pub fn is_locked(&self, now: UnixSeconds) -> bool {
        self.locked_until.is_some_and(|until| now < until)
    }

    /// Counts a failure; the `max`-th in a row locks for `lock_secs`.
    pub fn fail(&mut self, now: UnixSeconds, max: u32, lock_secs: u64) {
        self.failures = self.failures.saturating_add(1);
        if self.failures >= max {
            self.locked_until = Some(now.saturating_add(lock_secs));
            self.failures = 0;
        }
    }

    /// A good login clears the count.
    pub fn succeed(&mut self) {
        *self = LoginGuard::default();
    }
}

/// A person of an organisation, or an operator of the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// Public id: UUID, hyphenated lower case.
    pub id: String,
    /// Organisation; `None` for a server operator.
    pub cvr: Option<String>,
    /// Name.
    pub name: String,
    /// E-mail address, lower case: the login name within the organisation.
    pub email: String,
    /// Roles held (a plain user holds none).
    pub roles: Vec<Role>,
    /// Account state.
    pub state: PersonState,
    /// Failed logins and lockout.
    pub guard: LoginGuard,
    /// When invited.
    pub created_at: UnixSeconds,
    /// Who invited them.
    pub created_by: String,
}

impl Person {
    /// Its store key.
    pub fn key(&self) -> String {
        person_key(self.cvr.as_deref(), &self.email)
    }

    /// The audit log's name for them: `<CVR or ->/<address>`, so that one
    /// address in two organisations (or an operator's) is two names.
    pub fn audit_name(&self) -> String {
        format!("{}/{}", self.cvr.as_deref().unwrap_or("-"), self.email)
    }

    /// Its roles as a set.
    pub fn role_set(&self) -> Roles {
        Roles::of(&self.roles)
    }

    /// Its state as the API shows it.
    pub fn status(&self) -> PersonStatus {
        match self.state {
            PersonState::Invited { .. } => PersonStatus::Invited,
            PersonState::Active { .. } => PersonStatus::Active,
            PersonState::Deactivated { .. } => PersonStatus::Deactivated,
        }
    }

    /// Whether they may log in and have certificates ordered for them.
    pub fn is_active(&self) -> bool {
        matches!(self.state, PersonState::Active { .. })
    }

    fn illegal(&self, attempted: &'static str) -> IllegalTransition {
        IllegalTransition {
            current: self.status().as_str(),
            attempted,
        }
    }

    /// Invited → Invited with a new link (the old one stops working).
    pub fn reinvite(
        &mut self,
        token_hash: [u8; 32],
        expires_at: UnixSeconds,
    ) -> Result<(), IllegalTransition> {
        match &mut self.state {
            PersonState::Invited {
                token_hash: h,
                expires_at: e,
                ..
            } => {
                *h = token_hash;
                *e = expires_at;
                Ok(())
            }
            _ => Err(self.illegal("reinvite")),
        }
    }

    /// Invited → Active, with the password hash; the TOTP secret is the
    /// invitation's. The caller has checked the link's token and the first
    /// TOTP code (`first_step`).
    pub fn activate(
        &mut self,
        password_hash: String,
        first_step: u64,
        now: UnixSeconds,
    ) -> Result<(), IllegalTransition> {
        match &self.state {
            PersonState::Invited { totp_secret, .. } => {
                self.state = PersonState::Active {
                    password_hash,
                    totp_secret: totp_secret.clone(),
                    totp_last_step: Some(first_step),
                    activated_at: now,
                };
                Ok(())
            }
            _ => Err(self.illegal("activate")),
        }
    }

    /// Invited or Active → Deactivated (final).
    pub fn deactivate(&mut self, now: UnixSeconds, by: &str) -> Result<(), IllegalTransition> {
        match self.state {
            PersonState::Invited { .. } | PersonState::Active { .. } => {
                self.state = PersonState::Deactivated {
                    at: now,
                    by: by.to_owned(),
                };
                Ok(())
            }
            PersonState::Deactivated { .. } => Err(self.illegal("deactivate")),
        }
    }

    /// Records the TOTP step of a good login, so that its code is not
    /// accepted again.
    pub fn used_totp_step(&mut self, step: u64) {
        if let PersonState::Active { totp_last_step, .. } = &mut self.state {
            *totp_last_step = Some(step);
        }
    }
}

/// A logged-in person's session, stored under the SHA-256 of its cookie
/// value (the value itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The person's store key ([`person_key`]).
    pub person: String,
    /// Logged in at: the absolute expiry counts from here.
    pub created_at: UnixSeconds,
    /// Last request: the idle expiry counts from here.
    pub last_seen: UnixSeconds,
}

impl Session {
    /// Whether it is still good at `now`.
    pub fn is_live(&self, now: UnixSeconds, idle_secs: u64, absolute_secs: u64) -> bool {
        now < self.created_at.saturating_add(absolute_secs)
            && now < self.last_seen.saturating_add(idle_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invited() -> Person {
        Person {
            id: "p".into(),
            cvr: Some("12345678".into()),
            name: "Ann".into(),
            email: "ann@example.dk".into(),
            roles: vec![Role::UserAdmin],
            state: PersonState::Invited {
                token_hash: [1; 32],
                expires_at: 100,
                totp_secret: vec![7; 20],
            },
            guard: LoginGuard::default(),
            created_at: 0,
            created_by: "token:ops".into(),
        }
    }

    #[test]
    fn an_account_moves_only_forward() {
        let mut p = invited();
        assert!(!p.is_active());
        p.reinvite([2; 32], 200).expect("reinvite");
        p.activate("$argon2id$x".into(), 5, 10).expect("activate");
        assert!(p.is_active());
        assert!(p.activate("h".into(), 6, 11).is_err());
        assert!(p.reinvite([3; 32], 300).is_err());
        p.used_totp_step(9);
        assert!(matches!(
            p.state,
            PersonState::Active {
                totp_last_step: Some(9),
                ..
            }
        ));
        p.deactivate(20, "token:ops").expect("deactivate");
        assert_eq!(p.status(), PersonStatus::Deactivated);
        assert!(p.deactivate(21, "x").is_err());
        assert!(p.activate("h".into(), 6, 22).is_err());
        let mut q = invited();
        q.deactivate(1, "x")
            .expect("an invitation can be withdrawn");
    }

    #[test]
    fn lockout_after_max_failures_then_clear() {
        let mut g = LoginGuard::default();
        for _ in 0..4 {
            g.fail(100, 5, 900);
            assert!(!g.is_locked(100));
        }
        g.fail(100, 5, 900);
        assert!(g.is_locked(100));
        assert!(g.is_locked(999));
        assert!(!g.is_locked(1000));
        g.succeed();
        assert_eq!(g, LoginGuard::default());
    }

    #[test]
    fn role_sets() {
        let r = Roles::of(&[Role::OrgAdmin, Role::Operator]);
        assert!(r.has(Role::OrgAdmin) && r.has(Role::Operator));
        assert!(!r.has(Role::UserAdmin));
        assert!(r.any(&[Role::UserAdmin, Role::Operator]));
        assert!(!r.any(&[Role::UserAdmin, Role::RightsAdmin]));
        assert_eq!(r.list(), vec![Role::OrgAdmin, Role::Operator]);
        assert!(Roles::NONE.is_empty());
        assert!(!Roles::organisation().has(Role::Operator));
        assert!(Roles::organisation().contains(Roles::of(&[Role::UserAdmin])));
        assert!(!Roles::of(&[Role::UserAdmin]).contains(Roles::organisation()));
        for role in Role::ALL {
            assert_eq!(serde_json::to_value(role).ok(), Some(role.as_str().into()));
        }
    }

    #[test]
    fn sessions_expire_idle_and_absolute() {
        let s = Session {
            person: "k".into(),
            created_at: 0,
            last_seen: 100,
        };
        assert!(s.is_live(150, 60, 1000));
        assert!(!s.is_live(160, 60, 1000));
        let s = Session {
            last_seen: 995,
            ..s
        };
        assert!(!s.is_live(1000, 60, 1000));
        assert_eq!(person_key(None, "A@B.dk"), "- a@b.dk");
    }
}
