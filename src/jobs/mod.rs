//! Background jobs, started beside the listeners (not by them), one file
//! per job. Each runs until the shutdown signal turns `true`; the caller
//! awaits their handles before it flushes the store.

mod audit_retention;
mod notify;
pub mod own_certificates;
mod rate_limits;
mod revocation;
mod store_events;

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::App;

/// Spawns every background job; each stops when `shutdown` turns `true`.
pub fn spawn_all(app: &Arc<App>, shutdown: &watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(notify::run(app.clone(), shutdown.clone())),
        tokio::spawn(revocation::run(app.clone(), shutdown.clone())),
        tokio::spawn(audit_retention::run(app.clone(), shutdown.clone())),
        tokio::spawn(rate_limits::run(app.clone(), shutdown.clone())),
        tokio::spawn(own_certificates::run(app.clone(), shutdown.clone())),
        tokio::spawn(store_events::run(
            app.clone(),
            app.store.events(),
            shutdown.clone(),
        )),
    ]
}
