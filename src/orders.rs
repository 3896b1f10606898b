//! Moved: the certificate lifecycle is now the units of work in
//! [`crate::service`]. What is left here are thin forwards for the EST
//! handlers, which move to `service/` on their own (see issue 12); remove
//! this module once nothing calls it.

use crate::app::App;
use crate::model::{ActorId, AuditAction, AuditOutcome, Order, Serial, UnixSeconds};

pub use crate::service::codes::{new_api_reference, CodeCheck};
pub use crate::service::Error as OpError;

/// Forwards to [`crate::service::try_code`].
pub fn try_code(
    app: &App,
    order_id: &str,
    code: &str,
    now: UnixSeconds,
) -> Result<Option<(Order, CodeCheck)>, OpError> {
    crate::service::try_code(app.services(), order_id, code, now)
}

/// Forwards to [`crate::service::audit`]; `actor` is the audit log's text.
#[allow(clippy::too_many_arguments)]
pub fn audit(
    app: &App,
    actor: &str,
    action: AuditAction,
    outcome: AuditOutcome,
    cvr: Option<&str>,
    profile_id: Option<&str>,
    serial: Option<Serial>,
    order_id: Option<&str>,
    detail: impl Into<String>,
) -> Result<(), OpError> {
    crate::service::audit(
        app.services(),
        &ActorId::Named(actor.to_owned()),
        action,
        outcome,
        crate::service::Subject {
            cvr,
            profile_id,
            serial,
            order_id,
        },
        detail,
    )
}
