//! Live delivery: the in-process [`hub`] of conversation and site channels, the agents'
//! paged and filtered [`inbox`] (fed by the hub), the cross-instance [`fanout`] through
//! PostgreSQL, the caps on open connections
//! ([`connections`]), agents' presence ([`presence`]) and the counters behind `/metrics`
//! ([`metrics`]).
//!
//! Imports the records and the store, never the services or transports above it.

pub mod connections;
pub mod fanout;
pub mod hub;
pub mod inbox;
pub mod metrics;
pub mod presence;
