//! The server's own integration tests, one test binary: the tests that need the real
//! `nexus-flow` executable (`CARGO_BIN_EXE_nexus-flow` exists only for this package's tests)
//! or the engine's fixtures. Each module is what used to be a file of its own under
//! `tests/` (`cargo test -p nexus-server --test it -- crash::`).
//!
//! The helpers every crate's tests share come from `nexus-test-support`, which does not
//! depend on the server (so this dev-dependency links one copy of it); `support` holds only
//! what drives the executable.

mod crash;
mod engine;
mod multi_instance;
mod pg_restart;
mod site_cli;
mod support;
