//! Access: the accounts of a site's team (passwords, sessions, login throttling) and who may
//! open a visitor connection (allowed origins, signed identities). Imports records and the
//! store only.

pub mod accounts;
pub mod identity;
