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
}
