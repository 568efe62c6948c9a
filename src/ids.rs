//! Prefixed, time-sortable ids (`shp_01j…`): an id in a log says what it is, and ids sort by
//! creation time, which keyset pagination relies on.

/// A new id with the given prefix: the prefix, an underscore and a lowercase ULID.
///
/// Monotonic within the process: ids made in the same millisecond still sort in the order
/// they were made (the random part counts up), so a batch's deliveries are claimed and
/// listed in the order they were published, on PostgreSQL as on SQLite.
pub fn new_id(prefix: &str) -> String {
    static GENERATOR: std::sync::Mutex<Option<ulid::Generator>> = std::sync::Mutex::new(None);
    let ulid = {
        let mut g = GENERATOR.lock().unwrap_or_else(|p| p.into_inner());
        // The random part overflows only after 2^80 ids in one millisecond.
        g.get_or_insert_with(ulid::Generator::new)
            .generate()
            .unwrap_or_else(|_| ulid::Ulid::new())
    };
    format!("{prefix}_{}", ulid.to_string().to_lowercase())
}

/// Declares a typed id: a `String` underneath, stored and serialised as its text, so that a
/// store call cannot be handed an endpoint's id where a delivery's is meant.
///
/// Ids from outside (a URL path, a producer's own event id) are taken as they come with
/// `From<String>`: a wrong one simply finds nothing.
macro_rules! typed_id {
    ($($(#[$doc:meta])* $name:ident => $prefix:literal;)*) => {$(
        $(#[$doc])*
        #[derive(
            Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize, sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(String);

        impl $name {
            /// The prefix of the ids Herald makes of this kind.
            pub const PREFIX: &'static str = $prefix;

            /// A new, time-sortable id of this kind.
            pub fn generate() -> Self {
                Self(new_id($prefix))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                self == &other.0
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    )*};
}

typed_id! {
    /// A shop (`shp_…`): the tenant every other row belongs to.
    ShopId => "shp";
    /// A user of the panel (`usr_…`).
    UserId => "usr";
    /// An API key (`key_…`).
    ApiKeyId => "key";
    /// A customer's endpoint (`ep_…`).
    EndpointId => "ep";
    /// An event (`evt_…`, or the producer's own id).
    EventId => "evt";
    /// One event's delivery to one endpoint (`dlv_…`).
    DeliveryId => "dlv";
    /// An alert raised for a shop (`alr_…`).
    AlertId => "alr";
}

/// A process's lease prefix: `l` and 12 random Crockford base32 characters (60 bits). Every
/// lease token the process writes is this prefix, a dot and a counter, and it sits in the
/// delivery's row only while the delivery is leased: a row that grows while leased splits the
/// full page it sits in, and the room left behind stays empty once the lease is cleared (a
/// ULID-based prefix, 32 characters, left about a quarter of the deliveries' pages empty).
/// Two processes drawing the same 60 bits is not a concern at any number of restarts.
pub fn new_lease_prefix() -> String {
    use rand::Rng;
    const CROCKFORD: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let mut rng = rand::thread_rng();
    std::iter::once('l')
        .chain((0..12).map(|_| CROCKFORD[rng.gen_range(0..32)] as char))
        .collect()
}

/// Milliseconds since the Unix epoch, the unit of every timestamp in the store.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_prefix_and_sort_by_time() {
        let a = new_id("evt");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id("evt");
        assert!(a.starts_with("evt_") && a.len() == 30);
        assert!(a < b);
        let same_ms: Vec<String> = (0..1000).map(|_| new_id("dlv")).collect();
        assert!(same_ms.windows(2).all(|w| w[0] < w[1]), "in the order made");
    }

    #[test]
    fn lease_prefixes_are_short_and_differ() {
        let (a, b) = (new_lease_prefix(), new_lease_prefix());
        assert_eq!(a.len(), 13);
        assert!(a.starts_with('l') && a[1..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn typed_ids_carry_their_kind_and_read_as_text() {
        let ep = EndpointId::generate();
        assert!(ep.starts_with("ep_"));
        assert_eq!(serde_json::to_string(&ep).unwrap(), format!("\"{ep}\""));
        let back: EndpointId = serde_json::from_str(&format!("\"{ep}\"")).unwrap();
        assert_eq!(back, ep);
        let map: std::collections::HashMap<EndpointId, u8> = [(ep.clone(), 1)].into();
        assert_eq!(map.get(ep.as_str()), Some(&1), "looked up by its text");
    }
}
