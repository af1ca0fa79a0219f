//! A site, its settings, its accounts and its visitors.

use std::collections::HashMap;

use nexus_shared::{AgentRef, Autonomy, Millis, Role, VisitorInfo};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The owner-editable settings of a site.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SiteSettings {
    pub assistant_name: String,
    pub greeting: String,
    pub color: String,
    pub autonomy: Autonomy,
    /// Values for the `{{Placeholders}}` in knowledge-base answers.
    pub placeholders: HashMap<String, String>,
    /// Origins allowed to embed the widget; empty means any. When the list is not empty, a
    /// visitor connection must send one of these as its `Origin` header (browsers always
    /// do); a connection without one is refused. Agent mode in the widget (an agent's session
    /// from a page other than the server's own) needs its page's origin on this list; empty,
    /// it allows none (`access::identity::agent_origin_allowed`).
    pub allowed_origins: Vec<String>,
    /// The secret the site signs visitor identities with (`hash` = hex HMAC-SHA256 of the
    /// identity's id). Never logged, never sent to agents.
    pub identity_secret: Option<String>,
    /// Refuse visitors without a verified identity.
    pub require_identity: bool,
    /// When the AI hands conversations to people (thresholds, phrases, signals).
    pub policy: nexus_engine::policy::Policy,
    /// Whether taught knowledge goes live at once (`auto`) or waits for an owner (`approve`).
    pub learning: nexus_engine::policy::Learning,
    /// Whether a plain agent's teach or draft edit may go live (`auto`, when `learning` is
    /// `auto` too) or waits for an owner (`approve`, the default). Owners' teaches follow
    /// `learning` alone.
    pub agent_learning: nexus_engine::policy::Learning,
    /// Opening hours in the site's time zone; `None` = always open.
    pub business_hours: Option<super::hours::BusinessHours>,
    /// Told to visitors handed to people outside business hours or with nobody online.
    pub offline_message: String,
    /// Where `escalated`, `agent_joined` and `resolved` events are posted (secrets redacted on
    /// read).
    pub webhooks: Vec<super::webhook::Webhook>,
    /// Hand each escalated conversation to the next online agent, round robin.
    pub auto_assign: bool,
}

impl SiteSettings {
    /// The secret, if one is set (an empty string counts as none).
    pub fn identity_secret(&self) -> Option<&str> {
        self.identity_secret.as_deref().filter(|s| !s.is_empty())
    }

    /// A copy safe to show: the identity secret replaced by `***`.
    pub fn redacted(&self) -> Self {
        Self {
            identity_secret: self.identity_secret().map(|_| "***".to_owned()),
            webhooks: self
                .webhooks
                .iter()
                .map(|w| super::webhook::Webhook {
                    secret: "***".to_owned(),
                    ..w.clone()
                })
                .collect(),
            ..self.clone()
        }
    }
}

impl std::fmt::Debug for SiteSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteSettings")
            .field("assistant_name", &self.assistant_name)
            .field("greeting", &self.greeting)
            .field("color", &self.color)
            .field("autonomy", &self.autonomy)
            .field("placeholders", &self.placeholders)
            .field("allowed_origins", &self.allowed_origins)
            .field("identity_secret", &self.identity_secret().map(|_| "***"))
            .field("require_identity", &self.require_identity)
            .field("policy", &self.policy)
            .field("learning", &self.learning)
            .field("agent_learning", &self.agent_learning)
            .field("business_hours", &self.business_hours)
            .field("offline_message", &self.offline_message)
            .field("webhooks", &self.webhooks)
            .field("auto_assign", &self.auto_assign)
            .finish()
    }
}

impl Default for SiteSettings {
    fn default() -> Self {
        Self {
            assistant_name: "Assistant".into(),
            greeting: "Hi! How can we help?".into(),
            color: "#4f46e5".into(),
            autonomy: Autonomy::Auto,
            placeholders: HashMap::new(),
            allowed_origins: Vec::new(),
            identity_secret: None,
            require_identity: false,
            policy: nexus_engine::policy::Policy::default(),
            learning: nexus_engine::policy::Learning::default(),
            agent_learning: nexus_engine::policy::Learning::Approve,
            business_hours: None,
            offline_message: super::hours::DEFAULT_OFFLINE_MESSAGE.into(),
            webhooks: Vec::new(),
            auto_assign: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    pub id: Uuid,
    pub key: String,
    pub name: String,
    pub settings: SiteSettings,
    pub created_at: Millis,
}

/// An owner or agent account of a site.
#[derive(Clone, PartialEq)]
pub struct User {
    pub id: Uuid,
    pub site_id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
}

impl User {
    pub fn agent_ref(&self) -> AgentRef {
        AgentRef {
            id: self.id,
            name: self.name.clone(),
        }
    }
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("site_id", &self.site_id)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// A password hash; never printed.
#[derive(Clone, PartialEq)]
pub struct PasswordHash(pub String);

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(***)")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Visitor {
    pub id: Uuid,
    pub site_id: Uuid,
    pub info: VisitorInfo,
}
