//! API keys: `hk_` + 32 random bytes in hex. Only the SHA-256 of a key is stored; keys are
//! long and random, so a fast hash is enough and lookups stay one indexed query.

use sha2::{Digest, Sha256};

pub const PREFIX: &str = "hk_";

/// A new key, to be shown once.
pub fn generate() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{PREFIX}{}", hex::encode(bytes))
}

/// The stored form of a key.
pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The first characters of a key, safe to display so people can tell keys apart.
pub fn display_prefix(key: &str) -> String {
    key.chars().take(PREFIX.len() + 6).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_random_and_hash_stably() {
        let a = generate();
        let b = generate();
        assert!(a.starts_with("hk_") && a.len() == 67);
        assert_ne!(a, b);
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
        assert_eq!(display_prefix(&a).len(), 9);
    }
}
