//! The event feed across nodes: a revocation or a new CRL is announced with
//! `NOTIFY` in the transaction that stores it, so it reaches every node's
//! listener when (and only if) it commits. Each node keeps one connection
//! outside the pool that `LISTEN`s and forwards what it hears to the local
//! [`StoreEvent`] channel. When that connection breaks, the listener
//! reconnects and announces [`StoreEvent::Resync`], since events sent in
//! between are lost.

use std::time::Duration;

use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, NoTls};

use std::sync::Arc;

use super::cache::{Catalogue, CATALOGUE_PAYLOAD};
use super::EVENTS_CHANNEL;
use crate::model::Serial;
use crate::store::StoreEvent;

/// The payload announcing a new CRL.
pub(super) const CRL_PAYLOAD: &str = "crl";

/// How long the listener waits before connecting again.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// The payload announcing that `serial` was revoked.
pub(super) fn revoked_payload(serial: &Serial) -> String {
    format!("revoked:{serial}")
}

fn parse(payload: &str) -> Option<StoreEvent> {
    if payload == CRL_PAYLOAD {
        return Some(StoreEvent::CrlChanged);
    }
    let hex = payload.strip_prefix("revoked:")?;
    Serial::from_hex(hex).map(StoreEvent::Revoked)
}

/// Starts the listener on `handle`; it runs until the runtime stops.
/// `listening` is told once the first `LISTEN` is in place, from when on no
/// event is missed without a [`StoreEvent::Resync`].
pub(super) fn listen(
    handle: &tokio::runtime::Handle,
    config: tokio_postgres::Config,
    events: broadcast::Sender<StoreEvent>,
    catalogue: Arc<Catalogue>,
    listening: tokio::sync::oneshot::Sender<()>,
) {
    let mut listening = Some(listening);
    handle.spawn(async move {
        let mut listened_before = false;
        loop {
            match config.connect(NoTls).await {
                Ok((client, mut connection)) => {
                    // The connection must be polled for LISTEN to be answered,
                    // so it is driven here while the client asks.
                    let ready = {
                        let statement = format!("LISTEN {EVENTS_CHANNEL}");
                        let listening = client.batch_execute(&statement);
                        let mut listening = std::pin::pin!(listening);
                        loop {
                            tokio::select! {
                                r = &mut listening => break r.is_ok(),
                                m = std::future::poll_fn(|cx| connection.poll_message(cx)) => {
                                    if !matches!(m, Some(Ok(_))) { break false; }
                                }
                            }
                        }
                    };
                    if ready {
                        catalogue.set_listening(true);
                        if listened_before {
                            let _ = events.send(StoreEvent::Resync);
                        }
                        listened_before = true;
                        if let Some(tx) = listening.take() {
                            let _ = tx.send(());
                        }
                        while let Some(Ok(message)) =
                            std::future::poll_fn(|cx| connection.poll_message(cx)).await
                        {
                            if let AsyncMessage::Notification(n) = message {
                                if n.payload() == CATALOGUE_PAYLOAD {
                                    catalogue.forget();
                                } else if let Some(event) = parse(n.payload()) {
                                    let _ = events.send(event);
                                }
                            }
                        }
                        catalogue.set_listening(false);
                        tracing::warn!("store event listener lost its connection; reconnecting");
                    }
                    drop(client);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "store event listener cannot connect; retrying");
                }
            }
            // Missed events are made up for by a resync once connected again.
            tokio::time::sleep(RECONNECT_DELAY).await;
        }
    });
}
