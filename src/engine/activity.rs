//! The live activity feed: one message per published event, attempt and state change,
//! broadcast to the panel's Activity page and `GET /api/v1/activity` subscribers.

use serde::Serialize;
use tokio::sync::broadcast;

#[derive(Debug, Clone, Serialize)]
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
}

impl Default for ActivityHub {
    fn default() -> Self {
        ActivityHub {
            tx: broadcast::channel(4096).0,
        }
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
        futures::stream::unfold((self.subscribe(), shop_id), |(mut rx, shop)| async move {
            loop {
                match rx.recv().await {
                    Ok(a) if a.shop_id == shop => return Some((a, (rx, shop))),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
    }

    pub fn has_listeners(&self) -> bool {
        self.tx.receiver_count() > 0
    }
}
