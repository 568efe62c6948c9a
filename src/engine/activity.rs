//! The live activity feed: one message per published event, attempt and state change,
//! broadcast to the panel's Activity page and `GET /api/v1/activity` subscribers.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
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

/// Messages a shop's listeners may fall behind by before they skip (each shop has its own
/// channel, so a busy shop cannot push a quiet one's messages out).
const PER_SHOP_BUFFER: usize = 1024;

/// Live streams one principal (a user, or an API key) may hold open by default.
pub const DEFAULT_STREAMS_PER_HOLDER: usize = 8;

/// A principal already holds as many live streams as it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyStreams {
    pub limit: usize,
}

impl std::fmt::Display for TooManyStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "at most {} live activity streams may be open at once for one user or API key; \
             close one first",
            self.limit
        )
    }
}

/// Fan-out of activity to its shop's listeners only; slow listeners miss messages rather
/// than slowing the engine. Each principal holds a bounded number of streams.
#[derive(Clone)]
pub struct ActivityHub {
    inner: std::sync::Arc<Hub>,
}

struct Hub {
    /// A channel per shop with listeners, removed with its last listener.
    shops: Mutex<HashMap<String, broadcast::Sender<Activity>>>,
    /// Streams open per principal.
    holders: Mutex<HashMap<String, usize>>,
    per_holder: usize,
    /// Streams open on this node.
    open: AtomicUsize,
    /// Told when a stream opens or closes (the node's heartbeat says how many are open, and
    /// other nodes relay their activity only to nodes with listeners).
    changed: tokio::sync::Notify,
}

impl Default for ActivityHub {
    fn default() -> Self {
        ActivityHub::new(DEFAULT_STREAMS_PER_HOLDER)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One open stream: when it ends, its principal's count and its shop's channel are let go.
struct Subscription {
    rx: broadcast::Receiver<Activity>,
    shop_id: String,
    holder: String,
    hub: std::sync::Arc<Hub>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let hub = &self.hub;
        {
            let mut shops = lock(&hub.shops);
            // Ours is the last receiver (subscribing happens under the same lock).
            if shops
                .get(&self.shop_id)
                .is_some_and(|tx| tx.receiver_count() <= 1)
            {
                shops.remove(&self.shop_id);
            }
        }
        {
            let mut holders = lock(&hub.holders);
            if let Some(n) = holders.get_mut(&self.holder) {
                *n -= 1;
                if *n == 0 {
                    holders.remove(&self.holder);
                }
            }
        }
        hub.open.fetch_sub(1, Ordering::SeqCst);
        hub.changed.notify_one();
    }
}

impl ActivityHub {
    /// A hub where each principal may hold `per_holder` streams.
    pub fn new(per_holder: usize) -> Self {
        ActivityHub {
            inner: std::sync::Arc::new(Hub {
                shops: Mutex::default(),
                holders: Mutex::default(),
                per_holder: per_holder.max(1),
                open: AtomicUsize::new(0),
                changed: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Hands a message to its shop's listeners on this node, if it has any.
    pub fn publish(&self, a: Activity) {
        if self.inner.open.load(Ordering::Relaxed) == 0 {
            return;
        }
        let tx = lock(&self.inner.shops).get(&a.shop_id).cloned();
        if let Some(tx) = tx {
            let _ = tx.send(a);
        }
    }

    /// The activity of one shop as a stream for `holder` (a user or API key id); refused when
    /// the holder has as many open as it may. A listener that falls behind skips what it
    /// missed rather than slowing the engine.
    pub fn stream(
        &self,
        holder: &str,
        shop_id: String,
    ) -> Result<impl futures::Stream<Item = Activity>, TooManyStreams> {
        let hub = &self.inner;
        {
            let mut holders = lock(&hub.holders);
            let n = holders.entry(holder.to_string()).or_insert(0);
            if *n >= hub.per_holder {
                return Err(TooManyStreams {
                    limit: hub.per_holder,
                });
            }
            *n += 1;
        }
        let rx = lock(&hub.shops)
            .entry(shop_id.clone())
            .or_insert_with(|| broadcast::channel(PER_SHOP_BUFFER).0)
            .subscribe();
        hub.open.fetch_add(1, Ordering::SeqCst);
        hub.changed.notify_one();
        let sub = Subscription {
            rx,
            shop_id,
            holder: holder.to_string(),
            hub: hub.clone(),
        };
        Ok(futures::stream::unfold(sub, |mut sub| async move {
            loop {
                match sub.rx.recv().await {
                    Ok(a) => return Some((a, sub)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }))
    }

    pub fn has_listeners(&self) -> bool {
        self.listeners() > 0
    }

    /// Streams open now.
    pub fn listeners(&self) -> usize {
        self.inner.open.load(Ordering::SeqCst)
    }

    /// Shops with a channel now (for tests: channels go with their last listener).
    pub fn shops_listened(&self) -> usize {
        lock(&self.inner.shops).len()
    }

    /// Completes when a stream opens or closes.
    pub async fn changed(&self) {
        self.inner.changed.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn activity(shop: &str, event: &str) -> Activity {
        Activity {
            shop_id: shop.into(),
            kind: "event.published".into(),
            at: 0,
            event_id: event.into(),
            event_type: "order.created".into(),
            delivery_id: None,
            endpoint_id: None,
            status: None,
            status_code: None,
            error_kind: None,
            attempt: None,
            duration_ms: None,
        }
    }

    #[tokio::test]
    async fn each_stream_gets_only_its_own_shops_activity() {
        let hub = ActivityHub::new(4);
        let mut a = Box::pin(hub.stream("u1", "shop_a".into()).unwrap());
        let mut b = Box::pin(hub.stream("u2", "shop_b".into()).unwrap());
        hub.publish(activity("shop_b", "e1"));
        hub.publish(activity("shop_a", "e2"));
        hub.publish(activity("shop_c", "e3"));
        assert_eq!(a.next().await.unwrap().event_id, "e2");
        assert_eq!(b.next().await.unwrap().event_id, "e1");
        assert_eq!(hub.shops_listened(), 2);
    }

    #[tokio::test]
    async fn a_holder_may_keep_only_so_many_streams_open() {
        let hub = ActivityHub::new(2);
        let first = hub.stream("key_1", "shop".into()).unwrap();
        let _second = hub.stream("key_1", "shop".into()).unwrap();
        assert_eq!(
            hub.stream("key_1", "shop".into()).err(),
            Some(TooManyStreams { limit: 2 })
        );
        // Someone else still may; and closing one gives its place back.
        let _other = hub.stream("key_2", "shop".into()).unwrap();
        drop(first);
        let _third = hub.stream("key_1", "shop".into()).unwrap();
        assert_eq!(hub.listeners(), 3);
    }

    #[tokio::test]
    async fn a_shops_channel_goes_with_its_last_listener() {
        let hub = ActivityHub::new(4);
        let s1 = hub.stream("u", "shop".into()).unwrap();
        let s2 = hub.stream("u", "shop".into()).unwrap();
        drop(s1);
        assert_eq!(hub.shops_listened(), 1);
        drop(s2);
        assert_eq!(hub.shops_listened(), 0);
        assert_eq!(hub.listeners(), 0);
        assert!(lock(&hub.inner.holders).is_empty());
    }
}
