//! Authentication: passwords, API keys, the session's principal, sign-in throttling.

pub mod api_key;
pub mod password;
pub mod session;
pub mod throttle;
