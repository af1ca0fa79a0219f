//! The demo site, created on first start so the product works with no setup: its Q&A
//! knowledge base, the shop page's help and product text as articles, and demo accounts.

use nexus_shared::{Autonomy, Role};
use uuid::Uuid;

use crate::model::{Site, SiteSettings, now_ms};
use crate::store::{Store, StoreResult};
use nexus_engine::{demo, placeholders};

/// The key of the demo site (`data-site="demo"` in the embed snippet).
pub const DEMO_SITE_KEY: &str = "demo";
pub const DEMO_OWNER_EMAIL: &str = "owner@demo.test";
pub const DEMO_AGENT_EMAIL: &str = "agent@demo.test";

/// The demo shop's page (`index.html` at the repo root), served at `/`. Its help and product
/// sections are also the demo site's articles: one copy of the shop's facts.
pub const DEMO_PAGE: &str = include_str!("../../index.html");

/// The title of the demo page's knowledge source.
pub const DEMO_PAGE_TITLE: &str = "Nexus Demo Shop";

/// Adds the demo page as an article of the demo site, each passage linked to its section
/// (`/#shipping`).
async fn add_demo_page(
    store: &dyn Store,
    site_id: Uuid,
) -> Result<(), crate::sources::ImportError> {
    let request = crate::sources::Request {
        kind: nexus_shared::SourceKind::Page,
        url: Some("/".into()),
        title: Some(DEMO_PAGE_TITLE.into()),
        content: Some(DEMO_PAGE.into()),
        format: Some("html".into()),
    };
    let imported =
        crate::sources::import(store, &crate::egress::Egress::default(), site_id, request).await?;
    tracing::info!(
        passages = imported.source.passages,
        "demo page added as the demo site's articles"
    );
    Ok(())
}

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
    if let Err(e) = add_demo_page(store, site.id).await {
        tracing::warn!(error = %e, "could not add the demo page's articles");
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::{Page, parse::Format, passages};

    #[test]
    fn the_demo_page_becomes_linked_articles_of_the_shop() {
        let page = Page {
            url: Some("/".into()),
            format: Format::Html,
            text: DEMO_PAGE.into(),
        };
        let (title, passages) = passages("nexus-demo-shop", &[page], DEMO_PAGE_TITLE);
        assert_eq!(title.as_deref(), Some(DEMO_PAGE_TITLE));
        let find = |id: &str| {
            passages
                .iter()
                .find(|p| p.id == id)
                .unwrap_or_else(|| panic!("no passage {id} in {passages:#?}"))
        };
        let shipping = find("doc:nexus-demo-shop#shipping");
        assert_eq!(shipping.title, "Nexus Demo Shop › Shipping");
        assert_eq!(shipping.url.as_deref(), Some("/#shipping"));
        assert!(
            shipping.body.contains("2–3 business days"),
            "{}",
            shipping.body
        );
        let returns = find("doc:nexus-demo-shop#returns-and-refunds");
        assert_eq!(returns.url.as_deref(), Some("/#returns"));
        assert!(returns.body.contains("free within 30 days"));
        let warranty = find("doc:nexus-demo-shop#warranty");
        assert!(warranty.body.contains("two-year warranty"));
        let grinder = find("doc:nexus-demo-shop#hand-grinder");
        assert_eq!(grinder.url.as_deref(), Some("/#grinder"));
        assert!(grinder.body.contains("€89"), "{}", grinder.body);
        // Page chrome and controls are not knowledge.
        for p in &passages {
            for chrome in [
                "Add to cart",
                "Add the chat to your site",
                "Nothing here is for sale",
            ] {
                assert!(!p.body.contains(chrome), "{chrome:?} in {p:?}");
            }
        }
    }
}
