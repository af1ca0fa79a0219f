//! The demo site, created on first start so the product works with no setup.

use nexus_shared::{Autonomy, Role};
use uuid::Uuid;

use crate::model::{Site, SiteSettings, now_ms};
use crate::store::{Store, StoreResult};
use nexus_engine::{demo, placeholders};

/// The key of the demo site (`data-site="demo"` in the embed snippet).
pub const DEMO_SITE_KEY: &str = "demo";
pub const DEMO_OWNER_EMAIL: &str = "owner@demo.test";
pub const DEMO_AGENT_EMAIL: &str = "agent@demo.test";

fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..16)
        .map(|_| char::from(ALPHABET[rand::random_range(0..ALPHABET.len())]))
        .collect()
}

/// Creates the demo site and its knowledge base (from the Bitext customer-support data) when
/// it does not exist yet. Returns whether it was created (by this call: another instance
/// starting at the same time may have created it).
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
            ..SiteSettings::default()
        },
        created_at: now_ms(),
    };
    let entries = demo::demo_kb();
    // One transaction: an instance starting beside this one finds either no demo site (and
    // races to create it: one wins) or the whole of it, never a site without its knowledge.
    if !store.create_site_with_kb(&site, &entries).await? {
        return Ok(false);
    }
    tracing::info!(
        site = DEMO_SITE_KEY,
        entries = entries.len(),
        "demo site created"
    );
    let mut lines = Vec::new();
    for (email, name, role) in [
        (DEMO_OWNER_EMAIL, "Demo Owner", Role::Owner),
        (DEMO_AGENT_EMAIL, "Demo Agent", Role::Agent),
    ] {
        let password = random_password();
        match crate::access::accounts::add_user(store, site.id, email, name, role, &password).await
        {
            Ok(_) => lines.push(format!("  {role:?}: {email} / {password}")),
            Err(e) => tracing::warn!(error = %e.message, "could not create the demo account"),
        }
    }
    // Printed once, on the start that creates them; only hashes are stored.
    println!(
        "\nDemo accounts for the agent console at /agent (shown only now; change the passwords \
         with `nexus-flow user passwd --site demo --email EMAIL`):\n{}\n",
        lines.join("\n")
    );
    Ok(true)
}
