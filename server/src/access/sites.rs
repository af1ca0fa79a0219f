//! Sites (tenants) and who may create one.
//!
//! - The server's operator, on the machine: `nexus-flow site add --key … --name …
//!   [--owner-email …]` creates an empty site and, optionally, its first owner.
//! - An owner of an existing site: `POST /api/v1/sites` creates a site that they own; their
//!   account is copied into it (same email, name and password), so they sign in to it with the
//!   same password. Creating a site gives access to nothing but the new, empty site, so an
//!   owner (who already controls a tenant) may do it; plain agents may not, and one email may
//!   own at most [`MAX_SITES_PER_OWNER`] sites this way, so one account cannot fill the
//!   database with tenants.

use nexus_shared::{ErrorBody, ErrorCode, Role};
use uuid::Uuid;

use crate::model::{Site, SiteSettings, User, now_ms};
use crate::store::{Store, StoreError, store_error_body};

/// How many sites one email may own through `POST /api/v1/sites` (counting the first).
pub const MAX_SITES_PER_OWNER: u64 = 20;

/// A site key as the embed snippet carries it (`data-site="…"`): 2 to 40 lower-case letters,
/// digits and dashes, starting with a letter or digit.
pub fn checked_key(key: &str) -> Result<String, ErrorBody> {
    let key = key.trim();
    let ok = (2..=40).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !key.starts_with('-');
    if ok {
        Ok(key.to_owned())
    } else {
        Err(ErrorBody::new(
            ErrorCode::Validation,
            format!(
                "The site key {key:?} must be 2 to 40 lower-case letters, digits and dashes \
                 (such as \"my-shop\")."
            ),
        ))
    }
}

/// Creates an empty site: default settings, no knowledge base, no accounts.
pub async fn create_site(store: &dyn Store, key: &str, name: &str) -> Result<Site, ErrorBody> {
    let key = checked_key(key)?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ErrorBody::new(
            ErrorCode::Validation,
            "A site needs a name of 1 to 100 characters.",
        ));
    }
    let site = Site {
        id: Uuid::new_v4(),
        key: key.clone(),
        name: name.to_owned(),
        settings: SiteSettings {
            assistant_name: "Assistant".into(),
            ..SiteSettings::default()
        },
        created_at: now_ms(),
    };
    match store.create_site_with_kb(&site, &[]).await {
        Ok(true) => Ok(site),
        Ok(false) => Err(ErrorBody::new(
            ErrorCode::Validation,
            format!("A site with the key {key:?} exists already."),
        )),
        Err(e) => Err(store_error_body(&e)),
    }
}

/// An owner creates a site they own: the new site, and their account copied into it.
pub async fn create_owned_site(
    store: &dyn Store,
    owner: &User,
    key: &str,
    name: &str,
) -> Result<Site, ErrorBody> {
    if owner.role != Role::Owner {
        return Err(ErrorBody::new(
            ErrorCode::Forbidden,
            "Only owners can create sites.",
        ));
    }
    let fail = |e: StoreError| store_error_body(&e);
    let owned = store.owner_accounts(&owner.email).await.map_err(fail)?;
    if owned >= MAX_SITES_PER_OWNER {
        return Err(ErrorBody::new(
            ErrorCode::Forbidden,
            format!("One account may own at most {MAX_SITES_PER_OWNER} sites."),
        ));
    }
    let (_, hash) = store
        .user_by_email(owner.site_id, &owner.email)
        .await
        .map_err(fail)?
        .ok_or_else(|| ErrorBody::new(ErrorCode::Unauthorized, "Your account is gone."))?;
    let site = create_site(store, key, name).await?;
    let copy = User {
        id: Uuid::new_v4(),
        site_id: site.id,
        email: owner.email.clone(),
        name: owner.name.clone(),
        role: Role::Owner,
    };
    store.create_user(&copy, &hash).await.map_err(fail)?;
    tracing::info!(site = %site.key, "site created by an owner");
    Ok(site)
}
