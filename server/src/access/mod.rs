//! Access: the accounts of a site's team (passwords, sessions, login throttling), who may
//! open a visitor connection (allowed origins, signed identities) and who may create a site.
//! Imports records and the store only.

pub mod accounts;
pub mod identity;
pub mod sites;
