//! Units of work: each public function here is one thing a caller asks estd
//! to do (enrol, re-enrol, collect, order, approve, renew, revoke, block, a
//! token, …), and each is durable when it returns: whatever it answers is on
//! disk.
//!
//! Protocol handlers (`est/`, `admin/`, `public.rs`) parse a request, call
//! one function here, and encode its result. Services decide nothing about
//! HTTP: they return domain values or a [`Error`], and the protocols map
//! errors to statuses once ([`crate::http::error`]).
//!
//! Services reach the rest of estd only through [`Services`]: the store
//! trait, the CA (which signs through its `Signer` seam), revocation state,
//! the configuration and metrics. They never import `crate::app`, so the
//! lifecycle can be used and tested without the whole application.

use std::sync::Arc;

use crate::ca::CaSet;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::revocation::Revocation;
use crate::store::Store;

pub mod backup;
pub mod certificates;
pub mod codes;
mod collect;
pub mod credentials;
pub mod email;
mod enrol;
mod error;
mod held;
pub mod infrastructure;
mod issue;
pub mod journal;
pub mod login;
pub mod orders;
pub mod organisations;
pub mod own;
pub mod people;
pub mod profiles;
pub mod queries;
mod reenrol;
mod serverkeygen;
pub mod store_check;
pub mod tokens;

pub use certificates::{
    block, regenerate_crl, renew, revoke, revoke_with_successors, visible_cert,
};
pub use codes::{try_code, CodeCheck};
pub use collect::collect;
pub use email::{
    address_to_validate, awaits_validation, confirm_email, email_link, list_email_validations,
    VALIDATE_EMAIL_PATH,
};
pub use enrol::enrol;
pub use error::Error;
pub use held::{Awaiting, Enrolled};
pub use issue::Certificate;
pub use journal::{audit, notice_text, notify, recipient, revocation_recipients, Notice, Subject};
pub use orders::{
    approve, create_order, delete_order, display_status, order_shown, reject, renew_code,
    show_order, visible_order, visible_profile, CreatedOrder, OrderRequest, OrderShown,
};
pub use organisations::{create_org, update_org, visible_org};
pub use profiles::{create_profile, update_profile, ChangedProfile};
pub use queries::{
    csrattrs_organisation, csrattrs_profile, export_org_certs, export_profile_certs,
    export_profiles, list_notifications, list_orders, list_orgs, list_tokens, search_profiles,
    search_public_certs, CertExport, OrderFilter, ProfileExport, ProfileFilter, ProfileUse,
    PublicFilter,
};
pub use reenrol::reenrol;
pub use serverkeygen::{not_browser, serverkeygen, KeyAndCertificate, Keygen};
pub use tokens::{create_token, mint_token, revoke_token, token_actor, NewToken};

/// What a unit of work may use. Cheap to copy: it borrows from the
/// application state, which outlives every request.
#[derive(Clone, Copy)]
pub struct Services<'a> {
    /// The store: every write a service makes goes through its units of work.
    pub store: &'a Arc<dyn Store>,
    /// The CA, every generation; [`CaSet::active`] issues.
    pub ca: &'a CaSet,
    /// CRL and OCSP state, told about revocations.
    pub revocation: &'a Revocation,
    /// The configuration in force.
    pub config: &'a Config,
    /// Metrics.
    pub metrics: &'a Metrics,
}
