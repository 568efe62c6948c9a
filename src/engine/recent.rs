//! A bounded memory of recently published events. Nearly every claim is for events published
//! moments before; keeping them saves reading each one back (a query per claim and a row
//! through the driver per delivery). Events never change once published, so a kept copy is
//! never stale.

use crate::ids::{EventId, ShopId};
use crate::store::events::EventRow;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Most events kept.
const MAX_EVENTS: usize = 16_384;
/// Most bytes of event data kept (events may be up to the 1 MiB event limit each).
const MAX_BYTES: usize = 8 * 1024 * 1024;

/// By shop, then event id; the oldest go first.
#[derive(Default)]
pub struct RecentEvents {
    map: HashMap<ShopId, HashMap<EventId, Arc<EventRow>>>,
    order: VecDeque<(ShopId, EventId)>,
    len: usize,
    bytes: usize,
}

fn weight(e: &EventRow) -> usize {
    e.data.len()
        + e.channels.iter().map(|c| c.len() + 3).sum::<usize>()
        + e.deliveries.len()
        + e.id.len()
        + e.event_type.len()
}

impl RecentEvents {
    pub fn insert(&mut self, shop_id: &ShopId, event: EventRow) {
        let w = weight(&event);
        if w > MAX_BYTES / 64 {
            // A large event is read back when needed rather than crowd out hundreds of others.
            return;
        }
        let id = event.id.clone();
        let shop = self.map.entry(shop_id.clone()).or_default();
        if let Some(old) = shop.insert(id.clone(), Arc::new(event)) {
            self.bytes -= weight(&old);
        } else {
            self.len += 1;
            self.order.push_back((shop_id.clone(), id));
        }
        self.bytes += w;
        while self.len > MAX_EVENTS || self.bytes > MAX_BYTES {
            let Some((shop_id, id)) = self.order.pop_front() else {
                break;
            };
            let Some(shop) = self.map.get_mut(&shop_id) else {
                continue;
            };
            if let Some(e) = shop.remove(&id) {
                self.len -= 1;
                self.bytes -= weight(&e);
            }
            if shop.is_empty() {
                self.map.remove(&shop_id);
            }
        }
    }

    pub fn get(&self, shop_id: &str, id: &str) -> Option<Arc<EventRow>> {
        self.map.get(shop_id)?.get(id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, data_len: usize) -> EventRow {
        EventRow {
            id: id.into(),
            event_type: "order.created".into(),
            channels: sqlx::types::Json(vec![]),
            data: "x".repeat(data_len),
            entity_key: None,
            deliveries: "[]".into(),
            created_at: 0,
        }
    }

    #[test]
    fn keeps_the_newest_within_both_limits() {
        let mut r = RecentEvents::default();
        for i in 0..MAX_EVENTS + 10 {
            r.insert(&"shop".into(), event(&format!("e{i}"), 1));
        }
        assert!(r.get("shop", "e0").is_none(), "the oldest went first");
        assert!(r.get("shop", &format!("e{}", MAX_EVENTS + 9)).is_some());
        assert!(r.get("other", &format!("e{}", MAX_EVENTS + 9)).is_none());
        assert_eq!(r.len, MAX_EVENTS);

        let mut r = RecentEvents::default();
        let big = MAX_BYTES / 64 - 100;
        for i in 0..100 {
            r.insert(&"shop".into(), event(&format!("b{i}"), big));
        }
        assert!(r.bytes <= MAX_BYTES);
        assert!(r.get("shop", "b99").is_some());
        assert!(r.get("shop", "b0").is_none());
        r.insert(&"shop".into(), event("huge", MAX_BYTES));
        assert!(r.get("shop", "huge").is_none(), "too large to keep");
    }
}
