//! Notification delivery: the mail queue and the expiry scan, in rounds.

use std::sync::Arc;

use tokio::sync::watch;

use crate::app::App;

/// Delivers notifications until shutdown (the rounds live beside the queue
/// in [`crate::notify`]).
pub async fn run(app: Arc<App>, shutdown: watch::Receiver<bool>) {
    crate::notify::run(app, shutdown).await
}
