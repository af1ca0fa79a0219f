//! The demo site, created on first start so the product works with no setup.

use nexus_shared::Autonomy;
use uuid::Uuid;

use crate::engine::{demo, placeholders};
use crate::store::{Site, SiteSettings, Store, StoreResult, now_ms};

/// The key of the demo site (`data-site="demo"` in the embed snippet).
pub const DEMO_SITE_KEY: &str = "demo";

/// Creates the demo site and its knowledge base (from the Bitext customer-support data) when
/// it does not exist yet. Returns whether it was created.
pub async fn ensure_demo_site(store: &dyn Store) -> StoreResult<bool> {
    if store.site_by_key(DEMO_SITE_KEY).await?.is_some() {
        return Ok(false);
    }
    let site = Site {
        id: Uuid::new_v4(),
        key: DEMO_SITE_KEY.into(),
        name: "Nexus Demo Shop".into(),
        settings: SiteSettings {
            assistant_name: "Nexus Assistant".into(),
            greeting: "Hi! I'm the Nexus Demo Shop assistant. Ask me about orders, refunds, \
                shipping or your account, or ask for a person at any time."
                .into(),
            color: "#4f46e5".into(),
            autonomy: Autonomy::Auto,
            placeholders: placeholders::demo_values(),
            allowed_origins: Vec::new(),
        },
        created_at: now_ms(),
    };
    store.create_site(&site).await?;
    let entries = demo::demo_kb();
    for entry in &entries {
        store.upsert_kb_entry(site.id, entry).await?;
    }
    tracing::info!(
        site = DEMO_SITE_KEY,
        entries = entries.len(),
        "demo site created"
    );
    Ok(true)
}
