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
            /// A new, time-sortable id of this kind.
            pub fn generate() -> Self {
                Self(new_id($prefix))
            }
        }

        text_id!($name => $prefix);
    )*};
}

/// What every typed id has: its prefix, its text, and conversions from and to it.
macro_rules! text_id {
    ($name:ident => $prefix:literal) => {
        impl $name {
            /// The prefix of the ids Herald makes of this kind.
            pub const PREFIX: &'static str = $prefix;

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
    };
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
    /// An alert raised for a shop (`alr_…`).
    AlertId => "alr";
}

/// One event's delivery to one endpoint: `dlv_` and 13 Crockford base32 characters that
/// spell its key in the store.
///
/// The key is a number, so the queue's rows, the attempts and the indexes refer to a
/// delivery in a few bytes instead of a 30-character text: the milliseconds of its creation
/// shifted left [`DeliveryId::TIME_SHIFT`] bits, plus a count within that millisecond. Ids
/// sort as their keys do, by creation time, which keyset pagination and retention's cutoffs
/// rely on. In SQL a `DeliveryId` is bound and read as its key; an id that does not spell a
/// key binds as -1 and finds nothing (the ids of deliveries made before keys are looked up
/// by [`crate::store::Store::canonical_delivery_id`]).
#[derive(
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct DeliveryId(String);

text_id!(DeliveryId => "dlv");

const CROCKFORD: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Base32 characters in a delivery id: 65 bits, enough for any non-negative i64.
const KEY_CHARS: usize = 13;

impl DeliveryId {
    /// Bits of a key below its creation time: up to 2^20 keys a millisecond.
    pub const TIME_SHIFT: u32 = 20;

    /// The id that spells `key`.
    pub fn from_key(key: i64) -> Self {
        let key = key.max(0) as u64;
        let mut text = String::with_capacity(4 + KEY_CHARS);
        text.push_str("dlv_");
        for i in (0..KEY_CHARS).rev() {
            text.push(CROCKFORD[((key >> (5 * i)) & 31) as usize] as char);
        }
        Self(text)
    }

    /// The key this id spells; None for any other text (a mistyped id, or one from before
    /// keys).
    pub fn key(&self) -> Option<i64> {
        let digits = self.0.strip_prefix("dlv_")?;
        if digits.len() != KEY_CHARS {
            return None;
        }
        let mut key: u64 = 0;
        for c in digits.bytes() {
            let v = CROCKFORD
                .iter()
                .position(|&d| d == c.to_ascii_lowercase())? as u64;
            key = key.checked_mul(32)?.checked_add(v)?;
        }
        i64::try_from(key).ok()
    }

    /// The first key of millisecond `ms`: every delivery created before it has a smaller
    /// one.
    pub fn first_key_at(ms: i64) -> i64 {
        ms.max(0) << Self::TIME_SHIFT
    }

    /// The key as SQL binds it: -1, which no delivery has, for an id that spells none.
    pub fn bound_key(&self) -> i64 {
        self.key().unwrap_or(-1)
    }
}

impl<DB: sqlx::Database> sqlx::Type<DB> for DeliveryId
where
    i64: sqlx::Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <i64 as sqlx::Type<DB>>::type_info()
    }

    fn compatible(ty: &DB::TypeInfo) -> bool {
        <i64 as sqlx::Type<DB>>::compatible(ty)
    }
}

impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for DeliveryId
where
    i64: sqlx::Encode<'q, DB>,
{
    fn encode_by_ref(
        &self,
        buf: &mut <DB as sqlx::Database>::ArgumentBuffer<'q>,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        self.bound_key().encode_by_ref(buf)
    }
}

impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for DeliveryId
where
    i64: sqlx::Decode<'r, DB>,
{
    fn decode(
        value: <DB as sqlx::Database>::ValueRef<'r>,
    ) -> Result<Self, sqlx::error::BoxDynError> {
        Ok(Self::from_key(<i64 as sqlx::Decode<DB>>::decode(value)?))
    }
}

/// A process's lease prefix: `l` and 12 random Crockford base32 characters (60 bits). Every
/// lease token the process writes is this prefix, a dot and a counter, and it sits in the
/// delivery's row only while the delivery is leased: a row that grows while leased splits the
/// full page it sits in, and the room left behind stays empty once the lease is cleared (a
/// ULID-based prefix, 32 characters, left about a quarter of the deliveries' pages empty).
/// Two processes drawing the same 60 bits is not a concern at any number of restarts.
pub fn new_lease_prefix() -> String {
    use rand::Rng;
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
    fn delivery_ids_spell_their_keys_and_sort_as_they_do() {
        let now = DeliveryId::first_key_at(1_765_000_000_000);
        let keys = [0, 1, 31, 32, now, now + 1, now + (1 << 19), i64::MAX];
        let ids: Vec<DeliveryId> = keys.iter().map(|k| DeliveryId::from_key(*k)).collect();
        for (id, key) in ids.iter().zip(keys) {
            assert_eq!(id.len(), 17, "{id}");
            assert_eq!(id.key(), Some(key), "{id}");
            assert_eq!(
                DeliveryId::from(id.to_uppercase().replace("DLV_", "dlv_")).key(),
                Some(key)
            );
        }
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "text order is key order"
        );
        for other in [
            "",
            "dlv_",
            "dlv_01jabcdefghjkmnpqrstvwxyz0",
            "evt_0000000000001",
            "dlv_000000000000u",
            "dlv_g000000000000",
        ] {
            assert_eq!(DeliveryId::from(other).key(), None, "{other}");
        }
        assert!(DeliveryId::first_key_at(2) > DeliveryId::first_key_at(1) + (1 << 19));
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
