//! What publishing needs of a shop, kept in memory so a single-event publish reads nothing
//! before it writes: the webhooks switch, the subscribing endpoints, the known event types
//! and the live API keys, tagged with the shop's configuration version. Every change to those
//! bumps the version in its own transaction (database triggers), and the publish transaction
//! checks it ([`crate::store::events::GroupOutcome::Stale`]): a stale copy is reloaded, never
//! acted on, whichever node made the change.

use crate::ids::{ApiKeyId, EndpointId, ShopId};
use crate::store::endpoints::EndpointRow;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Shops (and keys) kept at most; past that the cache starts again empty, so memory stays
/// bounded however many shops publish.
const MAX_ENTRIES: usize = 10_000;

/// An endpoint as fan-out sees it.
pub(crate) struct Subscriber {
    pub id: EndpointId,
    pub event_types: Vec<String>,
    pub channels: Vec<String>,
    pub priority: i64,
    pub unique_pending: bool,
    /// Enabled endpoints get pending deliveries and a woken sender; disabled ones hold them
    /// (decided again inside the write, which is what counts).
    pub enabled: bool,
}

impl From<&EndpointRow> for Subscriber {
    fn from(e: &EndpointRow) -> Self {
        Subscriber {
            id: e.id.clone(),
            event_types: e.event_types.0.clone(),
            channels: e.channels.0.clone(),
            priority: e.priority,
            unique_pending: e.unique_pending,
            enabled: e.enabled,
        }
    }
}

/// One shop's publish configuration at `version`.
pub(crate) struct PublishConfig {
    pub version: i64,
    pub webhooks_enabled: bool,
    pub subscribers: Vec<Subscriber>,
    /// The enabled subscribers: the endpoints whose senders a publish wakes.
    enabled: HashSet<EndpointId>,
    /// The shop's own and discovered event types; types discovered by this node's publishes
    /// are added as they commit (a discovery does not bump the version).
    known_types: Mutex<HashSet<String>>,
    keys: HashSet<ApiKeyId>,
}

impl PublishConfig {
    pub fn new(
        version: i64,
        webhooks_enabled: bool,
        subscribers: Vec<Subscriber>,
        known_types: HashSet<String>,
        keys: HashSet<ApiKeyId>,
    ) -> Self {
        PublishConfig {
            version,
            webhooks_enabled,
            enabled: subscribers
                .iter()
                .filter(|s| s.enabled)
                .map(|s| s.id.clone())
                .collect(),
            subscribers,
            known_types: Mutex::new(known_types),
            keys,
        }
    }

    /// True when the endpoint is enabled at this version (its sender is worth waking).
    pub fn is_enabled(&self, endpoint: &str) -> bool {
        self.enabled.contains(endpoint)
    }

    pub fn knows_type(&self, name: &str) -> bool {
        lock(&self.known_types).contains(name)
    }

    /// How many event types the shop has (its own, edited and discovered).
    pub fn type_count(&self) -> usize {
        lock(&self.known_types).len()
    }

    pub fn learn_types<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        lock(&self.known_types).extend(names.into_iter().map(str::to_string));
    }

    /// True when the key is live at this version (not revoked, not deleted).
    pub fn has_key(&self, key: &str) -> bool {
        self.keys.contains(key)
    }
}

/// An API key as the publish path knows it, by the SHA-256 of the key.
#[derive(Clone, Debug)]
pub(crate) struct CachedKey {
    pub id: ApiKeyId,
    pub shop_id: ShopId,
    pub last_used_at: Option<i64>,
}

#[derive(Default)]
pub(crate) struct PublishCache {
    configs: Mutex<HashMap<ShopId, Arc<PublishConfig>>>,
    keys: Mutex<HashMap<String, CachedKey>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Inserts, starting again empty when the map is full.
fn bounded_insert<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, key: K, value: V) {
    if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
        map.clear();
    }
    map.insert(key, value);
}

impl PublishCache {
    pub fn config(&self, shop_id: &ShopId) -> Option<Arc<PublishConfig>> {
        lock(&self.configs).get(shop_id).cloned()
    }

    pub fn put_config(&self, shop_id: &ShopId, config: Arc<PublishConfig>) {
        bounded_insert(&mut lock(&self.configs), shop_id.clone(), config);
    }

    pub fn key(&self, hash: &str) -> Option<CachedKey> {
        lock(&self.keys).get(hash).cloned()
    }

    pub fn put_key(&self, hash: &str, key: CachedKey) {
        bounded_insert(&mut lock(&self.keys), hash.to_string(), key);
    }

    /// Notes that a key was used at `at` (its use is written to the store once a minute).
    pub fn key_used(&self, hash: &str, at: i64) {
        if let Some(k) = lock(&self.keys).get_mut(hash) {
            k.last_used_at = Some(at);
        }
    }

    /// Forgets a key found revoked.
    pub fn forget_key(&self, id: &ApiKeyId) {
        lock(&self.keys).retain(|_, k| k.id != *id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_stays_bounded_and_keeps_what_it_was_given() {
        let mut map = HashMap::new();
        for i in 0..MAX_ENTRIES + 5 {
            bounded_insert(&mut map, i, i);
        }
        assert!(map.len() <= MAX_ENTRIES);
        assert_eq!(map.get(&(MAX_ENTRIES + 4)), Some(&(MAX_ENTRIES + 4)));

        let config = PublishConfig::new(
            3,
            true,
            vec![],
            HashSet::from(["order.created".to_string()]),
            HashSet::from([ApiKeyId::from("key_a")]),
        );
        assert!(config.knows_type("order.created") && !config.knows_type("order.paid"));
        config.learn_types(["order.paid"]);
        assert!(config.knows_type("order.paid"));
        assert!(config.has_key("key_a") && !config.has_key("key_b"));
    }
}
