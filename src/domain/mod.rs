//! Herald's pure rules, below every layer that does I/O: what a retry policy schedules, how
//! a request body is built from an event (the envelope, templates) and how an attempt's
//! request and response are stored compactly and read back. The engine and the store both
//! use them; nothing here touches the network, the database or the clock.

pub mod recorded;
pub mod retry;
pub mod template;
