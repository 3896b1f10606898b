//! The domain model: organisations, profiles, orders, certificates, tokens and
//! audit events, with their states and the moves between them. No I/O.
//!
//! Records are plain data; the rules that move them between states live here as
//! methods, so that no other module can put a record in an illegal state.

mod actor;
mod audit;
mod cert;
mod email_validation;
mod ids;
mod notice;
mod notification;
mod order;
mod org;
mod person;
mod profile;
mod text;
mod time;
mod token;
mod transition;

pub use actor::{Actor, ActorId};
pub use audit::*;
pub use cert::*;
pub use email_validation::*;
pub use ids::*;
pub use notice::*;
pub use notification::*;
pub use order::*;
pub use org::*;
pub use person::*;
pub use profile::*;
pub use text::*;
pub use time::*;
pub use token::*;
pub use transition::*;
