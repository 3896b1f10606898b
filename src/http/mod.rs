//! What every listener shares between the socket and a protocol handler:
//! the connection context ([`Connection`]), the one body reader
//! ([`read_body`], with [`BodyRead`] so that an early answer says
//! `Connection: close`), the request log as a tracing span with its metric
//! ([`RequestLog`], [`answer`]), and the [`Router`] seam through which the
//! server hands requests to EST, admin or the public listener.
//!
//! Nothing here knows a protocol: the server imports this module, and so do
//! the handlers, but this module imports neither.

mod body;
mod connection;
pub mod error;
pub mod html;
mod log;
mod router;
mod spelling;

pub use body::{read_body, BodyError, BodyRead};
pub use connection::Connection;
pub use log::{answer, RequestLog};
pub use router::{Answer, Router};
pub use spelling::prepare_spellings;
