//! The local server's [`Pusher`]: the WebSockets this process holds, each a
//! channel to the task writing its frames.
//!
//! It knows only its own process's sockets, so a connection of another process
//! on the same Redis counts as gone: one local server per Redis key prefix.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use uuid::Uuid;

use super::{Delivery, PushError, Pusher};

/// Frames a socket may have waiting before pushes to it fail (a client that
/// stopped reading must not make the server hold everything for it).
pub const BACKLOG: usize = 64;

/// Connection id → the sender of its socket's outgoing frames.
#[derive(Debug, Clone, Default)]
pub struct Hub {
    sockets: Arc<Mutex<HashMap<String, mpsc::Sender<String>>>>,
}

impl Hub {
    /// An empty hub.
    pub fn new() -> Self {
        Self::default()
    }

    /// A fresh connection id (nothing registered under it yet).
    pub fn new_id() -> String {
        format!("local-{}", Uuid::new_v4().simple())
    }

    /// Registers a socket: the frames pushed to `id` arrive on the receiver.
    pub fn open(&self, id: &str) -> mpsc::Receiver<String> {
        let (tx, rx) = mpsc::channel(BACKLOG);
        self.sockets.lock().expect("hub").insert(id.to_owned(), tx);
        rx
    }

    /// Forgets a socket.
    pub fn close(&self, id: &str) {
        self.sockets.lock().expect("hub").remove(id);
    }

    /// Sockets held.
    pub fn len(&self) -> usize {
        self.sockets.lock().expect("hub").len()
    }

    /// Whether no socket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Pusher for Hub {
    async fn push(&self, connection_id: &str, payload: &str) -> Result<Delivery, PushError> {
        let Some(tx) = self
            .sockets
            .lock()
            .expect("hub")
            .get(connection_id)
            .cloned()
        else {
            return Ok(Delivery::Gone);
        };
        match tx.try_send(payload.to_owned()) {
            Ok(()) => Ok(Delivery::Sent),
            Err(mpsc::error::TrySendError::Closed(_)) => Ok(Delivery::Gone),
            Err(mpsc::error::TrySendError::Full(_)) => Err(PushError(format!(
                "{BACKLOG} frames already wait for this connection"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pushes_reach_open_sockets_and_others_are_gone() {
        let hub = Hub::new();
        let id = Hub::new_id();
        let mut rx = hub.open(&id);
        assert_eq!(hub.push(&id, "one").await.unwrap(), Delivery::Sent);
        assert_eq!(rx.recv().await.as_deref(), Some("one"));
        assert_eq!(hub.push("other", "x").await.unwrap(), Delivery::Gone);
        for _ in 0..BACKLOG {
            hub.push(&id, "fill").await.unwrap();
        }
        assert!(hub.push(&id, "too many").await.is_err());
        drop(rx);
        assert_eq!(hub.push(&id, "late").await.unwrap(), Delivery::Gone);
        hub.close(&id);
        assert!(hub.is_empty());
    }
}
