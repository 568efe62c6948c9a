//! Standard Webhooks signatures (<https://www.standardwebhooks.com>), so that receivers can
//! verify Herald's deliveries with any of that specification's libraries.
//!
//! A delivery carries `webhook-id`, `webhook-timestamp` and `webhook-signature` headers; the
//! signature is `v1,` followed by the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`, keyed
//! with the decoded endpoint secret. To verify one, a receiver recomputes that HMAC with its
//! copy of the secret and compares it, in constant time, with each space-separated `v1,` entry
//! of the header, accepting the delivery if any entry matches (and, to stop replays, only if the
//! timestamp is recent). [`verify`] does exactly that, minus the timestamp check.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// What every secret starts with, so a secret is recognisable wherever it is pasted.
const SECRET_PREFIX: &str = "whsec_";
/// The signature scheme's version tag; other versions in a header are skipped, not rejected.
const VERSION_PREFIX: &str = "v1,";
/// Fewer key bytes would weaken the HMAC; more is what the specification allows.
const MIN_KEY_LEN: usize = 24;
const MAX_KEY_LEN: usize = 64;
/// Newly generated secrets carry 256 bits, the HMAC-SHA256 block's natural strength.
const GENERATED_KEY_LEN: usize = 32;

/// Why a secret was refused; the messages are shown to whoever entered the secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    /// The part after `whsec_` is not standard base64 with padding.
    #[error("the secret must be whsec_ followed by base64")]
    NotBase64,
    /// The secret decodes, but to too few or too many bytes.
    #[error("the secret must decode to 24–64 bytes (it decodes to {len})")]
    WrongLength {
        /// How many bytes it decodes to.
        len: usize,
    },
}

/// A new endpoint secret: `whsec_` and the base64 of 32 random bytes from the thread's
/// cryptographically secure rng.
pub fn generate_secret() -> String {
    let mut key = [0u8; GENERATED_KEY_LEN];
    rand::thread_rng().fill_bytes(&mut key);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// The HMAC key a secret stands for. The `whsec_` prefix is optional, because some providers
/// show secrets without it; surrounding whitespace from copy and paste is ignored.
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, SigningError> {
    let secret = secret.trim();
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    let key = STANDARD
        .decode(encoded)
        .map_err(|_| SigningError::NotBase64)?;
    if (MIN_KEY_LEN..=MAX_KEY_LEN).contains(&key.len()) {
        Ok(key)
    } else {
        Err(SigningError::WrongLength { len: key.len() })
    }
}

/// The HMAC over `{msg_id}.{timestamp}.{body}`, ready to finalise or verify.
fn mac(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `v1,<base64>` signature of one message with one key.
pub fn sign(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = mac(key, msg_id, timestamp, body).finalize().into_bytes();
    format!("{VERSION_PREFIX}{}", STANDARD.encode(tag))
}

/// The `webhook-signature` header: one signature per key, space-separated. After a secret is
/// rotated, both the old and the new key sign for 24 hours, so receivers can switch secrets at
/// their own pace without rejecting deliveries.
pub fn signature_header(keys: &[Vec<u8>], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|key| sign(key, msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether any `v1,` signature in `header` matches the message under `secret`, compared in
/// constant time. An unusable secret verifies nothing. This is the receiver's side of the
/// scheme (it does not check the timestamp's age, which a receiver should also do).
pub fn verify(secret: &str, msg_id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    let Ok(key) = decode_secret(secret) else {
        return false;
    };
    header
        .split_whitespace()
        .filter_map(|entry| entry.strip_prefix(VERSION_PREFIX))
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        .any(|tag| {
            mac(&key, msg_id, timestamp, body)
                .verify_slice(&tag)
                .is_ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    // The Standard Webhooks specification's published test vector.
    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TIMESTAMP: i64 = 1_614_265_330;
    const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn secret_of_len(len: usize) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(vec![7u8; len]))
    }

    #[test]
    fn signing_reproduces_the_standard_webhooks_test_vector() {
        let key = decode_secret(VECTOR_SECRET).unwrap();
        assert_eq!(
            sign(&key, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY),
            VECTOR_SIGNATURE
        );
    }

    #[test]
    fn the_test_vector_verifies_with_or_without_the_secret_prefix() {
        for secret in [VECTOR_SECRET, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] {
            assert!(verify(
                secret,
                VECTOR_ID,
                VECTOR_TIMESTAMP,
                VECTOR_BODY,
                VECTOR_SIGNATURE
            ));
        }
    }

    #[test]
    fn generated_secrets_decode_to_32_bytes_and_round_trip() {
        let secret = generate_secret();
        assert!(secret.starts_with("whsec_"), "{secret}");
        let key = decode_secret(&secret).unwrap();
        assert_eq!(key.len(), 32);
        assert_eq!(format!("whsec_{}", STANDARD.encode(&key)), secret);
        assert_ne!(generate_secret(), secret);

        let header = signature_header(&[key], "msg_1", 1_700_000_000, b"{}");
        assert!(verify(&secret, "msg_1", 1_700_000_000, b"{}", &header));
    }

    #[test]
    fn a_dual_signature_header_verifies_with_either_secret() {
        let (old, new, other) = (generate_secret(), generate_secret(), generate_secret());
        let keys = [decode_secret(&old).unwrap(), decode_secret(&new).unwrap()];
        let header = signature_header(&keys, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY);

        let entries: Vec<&str> = header.split(' ').collect();
        assert_eq!(entries.len(), 2);
        assert!(entries.iter().all(|entry| entry.starts_with("v1,")));

        for secret in [&old, &new] {
            assert!(verify(
                secret,
                VECTOR_ID,
                VECTOR_TIMESTAMP,
                VECTOR_BODY,
                &header
            ));
        }
        assert!(!verify(
            &other,
            VECTOR_ID,
            VECTOR_TIMESTAMP,
            VECTOR_BODY,
            &header
        ));
    }

    #[test]
    fn a_header_with_no_keys_is_empty_and_verifies_nothing() {
        let header = signature_header(&[], VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY);
        assert!(header.is_empty());
        assert!(!verify(
            VECTOR_SECRET,
            VECTOR_ID,
            VECTOR_TIMESTAMP,
            VECTOR_BODY,
            &header
        ));
    }

    #[test]
    fn a_tampered_message_fails_verification() {
        let s = VECTOR_SIGNATURE;
        let (id, ts) = (VECTOR_ID, VECTOR_TIMESTAMP);
        assert!(!verify(
            VECTOR_SECRET,
            id,
            ts,
            br#"{"test": 2432232315}"#,
            s
        ));
        assert!(!verify(VECTOR_SECRET, "msg_other", ts, VECTOR_BODY, s));
        assert!(!verify(VECTOR_SECRET, id, ts + 1, VECTOR_BODY, s));
    }

    #[test]
    fn malformed_or_foreign_signatures_are_skipped() {
        let (id, ts, body) = (VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY);
        let right = VECTOR_SIGNATURE.trim_start_matches("v1,");
        let other_version = format!("v2,{right}");
        for header in ["", "v1,", "v1,!!!", "garbage", other_version.as_str()] {
            assert!(!verify(VECTOR_SECRET, id, ts, body, header), "{header:?}");
        }
        // A valid entry among others still counts.
        let mixed = format!("v1a,abc v1,AAAA {VECTOR_SIGNATURE}");
        assert!(verify(VECTOR_SECRET, id, ts, body, &mixed));
        // An unusable secret verifies nothing.
        assert!(!verify("whsec_short", id, ts, body, VECTOR_SIGNATURE));
    }

    #[test]
    fn bad_secrets_give_the_right_error() {
        assert_eq!(
            decode_secret("whsec_not base64!"),
            Err(SigningError::NotBase64)
        );
        assert_eq!(
            decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS"),
            Err(SigningError::NotBase64)
        );
        assert_eq!(
            decode_secret(&secret_of_len(16)),
            Err(SigningError::WrongLength { len: 16 })
        );
        assert_eq!(
            decode_secret(&secret_of_len(65)),
            Err(SigningError::WrongLength { len: 65 })
        );
        assert_eq!(
            decode_secret("whsec_"),
            Err(SigningError::WrongLength { len: 0 })
        );
        assert_eq!(decode_secret(&secret_of_len(24)).unwrap().len(), 24);
        assert_eq!(decode_secret(&secret_of_len(64)).unwrap().len(), 64);
        assert_eq!(
            SigningError::NotBase64.to_string(),
            "the secret must be whsec_ followed by base64"
        );
        assert!(SigningError::WrongLength { len: 16 }
            .to_string()
            .starts_with("the secret must decode to 24–64 bytes"));
    }

    #[test]
    fn pasted_secrets_with_surrounding_whitespace_still_decode() {
        let key = decode_secret(&format!("  {VECTOR_SECRET}\n")).unwrap();
        assert_eq!(key, decode_secret(VECTOR_SECRET).unwrap());
    }
}
