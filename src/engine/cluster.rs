//! The node among nodes: its heartbeat, what it hears from the others (wake-ups, activity),
//! and what it relays to them. On SQLite there is one node and nothing to hear.

use super::activity::Activity;
use super::Engine;
use crate::ids::now_ms;
use crate::store::cluster::{Signal, MAX_PAYLOAD};
use crate::store::nodes::Heartbeat;
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How often a node writes its heartbeat.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// A node not heard from for this long is taken for dead (its share of the limits goes to the
/// others; its leases run out on their own).
pub const PRESUMED_DEAD: Duration = Duration::from_secs(15);

/// Activity relayed from one node to the others.
#[derive(Serialize, Deserialize)]
struct Relayed {
    node: String,
    items: Vec<(String, Activity)>,
}

impl Engine {
    /// This node's name.
    pub fn node_id(&self) -> &str {
        &self.inner.config.node_id
    }

    /// Nodes alive now (this one included), as of the last heartbeat.
    pub fn live_nodes(&self) -> usize {
        self.inner.live_nodes.load(Ordering::Relaxed).max(1)
    }

    /// Whether anyone, on this node or another, watches the activity feed.
    pub fn activity_wanted(&self) -> bool {
        self.inner.activity.has_listeners() || self.inner.others_listen.load(Ordering::Relaxed)
    }

    /// Shows activity to this node's listeners and relays it to the other nodes' (only while
    /// some node has a listener).
    pub fn publish_activity(&self, items: Vec<Activity>) {
        if items.is_empty() {
            return;
        }
        let relay = self.inner.others_listen.load(Ordering::Relaxed);
        let relayed: Vec<(String, Activity)> = if relay {
            items
                .iter()
                .map(|a| (a.shop_id.clone(), a.clone()))
                .collect()
        } else {
            Vec::new()
        };
        for a in items {
            self.inner.activity.publish(a);
        }
        if relayed.is_empty() {
            return;
        }
        let payloads = relay_payloads(self.node_id(), relayed);
        let store = self.inner.store.clone();
        tokio::spawn(async move {
            for p in payloads {
                if let Err(e) = store.notify_activity(&p).await {
                    tracing::warn!(error = %e, "could not relay activity to the other nodes");
                    return;
                }
            }
        });
    }

    /// Wakes this node's dispatcher and tells the other nodes that work is queued (a retry by
    /// hand, an endpoint enabled): whichever is free claims it.
    pub fn announce(&self) {
        self.wake();
        let store = self.inner.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.notify_work().await {
                tracing::warn!(error = %e, "could not tell the other nodes about new work");
            }
        });
    }

    fn heartbeat(&self) -> Heartbeat<'_> {
        Heartbeat {
            id: self.node_id(),
            lease_prefix: &self.inner.lease_prefix,
            version: env!("CARGO_PKG_VERSION"),
            started_at: self.inner.started_at,
            listeners: self.inner.activity.listeners() as i64,
        }
    }

    /// Beats once and learns how many nodes are alive and whether others watch activity.
    async fn beat(&self) -> crate::store::Result<()> {
        let now = now_ms();
        self.inner.store.heartbeat(&self.heartbeat(), now).await?;
        let since = now - PRESUMED_DEAD.as_millis() as i64;
        let (live, others_listen) = self.inner.store.live_nodes(since, self.node_id()).await?;
        self.inner
            .live_nodes
            .store((live as usize).max(1), Ordering::Relaxed);
        self.inner
            .others_listen
            .store(others_listen, Ordering::Relaxed);
        Ok(())
    }

    /// The node's row says it stopped (after it gave back what it held).
    pub(super) async fn say_stopped(&self) {
        if let Err(e) = self
            .inner
            .store
            .node_stopped(self.node_id(), now_ms())
            .await
        {
            tracing::warn!(error = %e, "could not mark this node stopped");
        }
    }
}

/// Splits relayed activity into notifications small enough for PostgreSQL.
fn relay_payloads(node: &str, items: Vec<(String, Activity)>) -> Vec<String> {
    let mut out = Vec::new();
    let mut batch: Vec<(String, Activity)> = Vec::new();
    let mut size = 0;
    for item in items {
        let len = serde_json::to_string(&item).map_or(0, |s| s.len()) + 1;
        if len + 64 > MAX_PAYLOAD {
            continue; // one item too large to relay (never with Herald's fields)
        }
        if size + len + 64 > MAX_PAYLOAD && !batch.is_empty() {
            out.extend(payload(node, std::mem::take(&mut batch)));
            size = 0;
        }
        size += len;
        batch.push(item);
    }
    if !batch.is_empty() {
        out.extend(payload(node, batch));
    }
    out
}

fn payload(node: &str, items: Vec<(String, Activity)>) -> Option<String> {
    serde_json::to_string(&Relayed {
        node: node.to_string(),
        items,
    })
    .ok()
}

/// Writes the heartbeat every [`HEARTBEAT`] (and at once when a listener comes or goes), until
/// shutdown.
pub(super) async fn heartbeats(engine: Engine) {
    let mut shutdown = engine.inner.shutdown.subscribe();
    loop {
        if let Err(e) = engine.beat().await {
            tracing::warn!(error = %e, node = %engine.node_id(), "could not write this node's heartbeat");
        }
        tokio::select! {
            _ = tokio::time::sleep(HEARTBEAT) => {}
            _ = engine.inner.activity.changed() => {
                // Others should know at once that this node now wants their activity.
                if let Err(e) = engine.beat().await {
                    tracing::warn!(error = %e, node = %engine.node_id(), "could not write this node's heartbeat");
                }
                if let Err(e) = engine.inner.store.notify_listeners().await {
                    tracing::warn!(error = %e, node = %engine.node_id(), "could not tell other nodes that this node's activity streams changed");
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// Hears the other nodes (PostgreSQL): work they queued wakes this dispatcher, their activity
/// goes to this node's listeners.
pub(super) async fn listener(engine: Engine) {
    let mut shutdown = engine.inner.shutdown.subscribe();
    let mut listener = loop {
        match engine.inner.store.listen().await {
            Ok(Some(l)) => break l,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "could not listen to the other nodes; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    };
    loop {
        let signal = tokio::select! {
            s = listener.next() => s,
            _ = shutdown.changed() => return,
        };
        match signal {
            Ok(Signal::Work) => engine.wake(),
            Ok(Signal::Listeners) => {
                // Whether some node now wants this node's activity (or no longer does).
                if let Err(e) = engine.beat().await {
                    tracing::warn!(error = %e, "could not write this node's heartbeat");
                }
            }
            Ok(Signal::Cancel(shop_id, id)) => {
                if let Some(lease) = engine.take_queued(&shop_id, &id).await {
                    if let Err(e) = engine.inner.store.cancel_leased(&[lease], now_ms()).await {
                        tracing::warn!(error = %e, "could not cancel a delivery read ahead");
                    }
                }
            }
            Ok(Signal::ShopPaused(shop_id)) => engine.give_back_shop(&shop_id).await,
            Ok(Signal::Activity(payload)) => {
                let Ok(relayed) = serde_json::from_str::<Relayed>(&payload) else {
                    continue;
                };
                if relayed.node == engine.node_id() {
                    continue;
                }
                for (shop_id, mut a) in relayed.items {
                    a.shop_id = shop_id;
                    engine.inner.activity.publish(a);
                }
            }
            Err(e) => {
                // The connection dropped (it reconnects at the next receive): what was said
                // meanwhile is lost, so look for work.
                tracing::warn!(error = %e, "lost the connection listening to other nodes");
                engine.wake();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
