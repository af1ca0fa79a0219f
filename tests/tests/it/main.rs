//! The cross-crate integration tests, one test binary (linking the server once, not once per
//! file): each module is what used to be a file of its own under `tests/tests/`, and keeps its
//! name in the test paths (`cargo test -p nexus-tests --test it -- client_drop::`).
//!
//! The shared harness is the crate's library (`nexus_tests`: the in-process server, the fake
//! LLM, the browser) and `nexus-test-support` (WebSocket client, frames, login, PostgreSQL),
//! re-exported by it. The browser tests share [`nexus_tests::browser::BROWSER_TESTS_AT_ONCE`]
//! Chromium slots now that they run in one process.

mod agent_ws;
mod ai_overload;
mod assets_http;
mod assignment;
mod auth_attacks;
mod browser_agent;
mod browser_agent_mode;
mod browser_console_canned;
mod browser_console_conversation;
mod browser_console_flows;
mod browser_console_isolation;
mod browser_console_owner;
mod browser_console_takeover;
mod browser_feedback;
mod browser_playground;
mod browser_sources;
mod browser_visitor;
mod browser_widget_a11y;
mod browser_widget_features;
mod browser_widget_handoff;
mod browser_widget_robustness;
mod client_drop;
mod console_api;
mod fuzz;
mod inbox_paging;
mod kb_api;
mod learning;
mod limits_http;
mod llm_backend;
mod no_talk_over;
mod notices;
mod playground;
mod policy;
mod privacy;
mod server_ws;
mod sites_api;
mod slow_clients;
mod sources_api;
mod store_suite;
mod tenant_isolation;
mod webhooks;
mod ws_security;
mod xss_browser;
