//! The live activity feed: one message per published event, attempt and state change,
//! broadcast to the panel's Activity page and `GET /api/v1/activity` subscribers.

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Activity {
    #[serde(skip)]
    pub shop_id: String,
    /// `event.published`, `attempt` or `delivery.<status>`.
    pub kind: String,
    pub at: i64,
    pub event_id: String,
    pub event_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
}

/// Fan-out of activity to every listener; slow listeners miss messages rather than slowing
/// the engine.
#[derive(Clone)]
pub struct ActivityHub {
    tx: broadcast::Sender<Activity>,
    /// Told when a stream opens or closes (the node's heartbeat says how many are open, and
    /// other nodes relay their activity only to nodes with listeners).
    changed: std::sync::Arc<tokio::sync::Notify>,
}

impl Default for ActivityHub {
    fn default() -> Self {
        ActivityHub {
            tx: broadcast::channel(4096).0,
            changed: Default::default(),
        }
    }
}

/// A subscription that says when it ends.
struct Subscription {
    rx: broadcast::Receiver<Activity>,
    changed: std::sync::Arc<tokio::sync::Notify>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.changed.notify_one();
    }
}

impl ActivityHub {
    pub fn publish(&self, a: Activity) {
        let _ = self.tx.send(a);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Activity> {
        self.tx.subscribe()
    }

    /// The activity of one shop as a stream; a listener that falls behind skips what it
    /// missed rather than slowing the engine.
    pub fn stream(&self, shop_id: String) -> impl futures::Stream<Item = Activity> {
        let sub = Subscription {
            rx: self.subscribe(),
            changed: self.changed.clone(),
        };
        self.changed.notify_one();
        futures::stream::unfold((sub, shop_id), |(mut sub, shop)| async move {
            loop {
                match sub.rx.recv().await {
                    Ok(a) if a.shop_id == shop => return Some((a, (sub, shop))),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
    }

    pub fn has_listeners(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Streams open now.
    pub fn listeners(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Completes when a stream opens or closes.
    pub async fn changed(&self) {
        self.changed.notified().await
    }
}
