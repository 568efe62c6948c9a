//! The shipped event catalog: the event types the source products name, each with a
//! description and a realistic sample payload. Compiled into the binary; shops add their own
//! types and edits on top (see `store::event_types`).

use serde::Deserialize;
use std::sync::OnceLock;

#[derive(Debug, Clone, Deserialize)]
pub struct Builtin {
    pub name: String,
    pub description: String,
    pub sample: serde_json::Value,
}

/// Every shipped event type, ordered by family then name.
pub fn builtins() -> &'static [Builtin] {
    static CATALOG: OnceLock<Vec<Builtin>> = OnceLock::new();
    CATALOG.get_or_init(|| {
        serde_json::from_str(include_str!("catalog.json"))
            .expect("the shipped catalog is valid JSON")
    })
}

pub fn builtin(name: &str) -> Option<&'static Builtin> {
    builtins().iter().find(|b| b.name == name)
}

/// The family of an event type: the part before the first dot.
pub fn family(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

/// Event type names are `family.action`: lowercase letters, digits, `_`, `-` and dots, 3–100
/// characters, with at least one dot.
pub fn valid_name(name: &str) -> bool {
    (3..=100).contains(&name.len())
        && name.contains('.')
        && !name.starts_with('.')
        && !name.ends_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_catalog_loads_with_unique_valid_names_and_object_samples() {
        let all = builtins();
        assert!(all.len() >= 80, "{}", all.len());
        let mut names: Vec<_> = all.iter().map(|b| b.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len());
        assert!(all
            .iter()
            .all(|b| valid_name(&b.name) && b.sample.is_object() && !b.description.is_empty()));
        for family in [
            "order",
            "payment",
            "fulfilment",
            "product",
            "invoice",
            "shipment",
            "parcel",
            "purchase_order",
            "return",
            "ticket",
            "shop",
        ] {
            assert!(
                all.iter()
                    .any(|b| b.name.starts_with(&format!("{family}."))),
                "{family}"
            );
        }
        assert!(builtin("order.created").is_some());
        assert!(builtin("ticket.updated").is_some());
    }

    #[test]
    fn names_need_a_family_and_an_action() {
        assert!(valid_name("order.created"));
        assert!(!valid_name("order"));
        assert!(!valid_name("Order.Created"));
        assert!(!valid_name(".x"));
        assert_eq!(family("purchase_order.received"), "purchase_order");
    }
}
