//! A site's webhooks (setting `webhooks`) and their validation.

use serde::{Deserialize, Serialize};

/// The event names a webhook may subscribe to.
pub const EVENTS: [&str; 3] = ["escalated", "agent_joined", "resolved"];

/// One webhook of a site (setting `webhooks`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    pub url: String,
    /// Signs the bodies; shown as `***` when settings are read.
    pub secret: String,
    /// Which events to send; empty means all.
    #[serde(default)]
    pub events: Vec<String>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .field("secret", &"***")
            .field("events", &self.events)
            .finish()
    }
}

impl Webhook {
    pub fn wants(&self, event: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == event)
    }

    /// Checks the URL, the secret and the event names.
    pub fn validate(&self) -> Result<(), String> {
        let url = self.url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() > 2000 {
            return Err(format!(
                "Webhook URL {url:?} must start with http:// or https://."
            ));
        }
        if self.secret.is_empty() || self.secret.len() > 500 {
            return Err("A webhook needs a secret (1 to 500 characters).".into());
        }
        if let Some(bad) = self.events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
            return Err(format!(
                "Unknown webhook event {bad:?}: use escalated, agent_joined or resolved."
            ));
        }
        Ok(())
    }
}

/// Checks the `webhooks` setting (at most 20 webhooks).
pub fn validate(webhooks: &[Webhook]) -> Result<(), String> {
    if webhooks.len() > 20 {
        return Err("At most 20 webhooks.".into());
    }
    webhooks.iter().try_for_each(Webhook::validate)
}

/// `webhooks` as sent back by an owner who read them redacted: a secret of `***` keeps the
/// stored secret of the webhook with the same URL. A `***` on a URL that has no stored webhook
/// is refused: it would otherwise become the secret, known to anyone who reads the settings.
pub fn keep_secrets(new: &mut [Webhook], old: &[Webhook]) -> Result<(), String> {
    for hook in new.iter_mut().filter(|h| h.secret == "***") {
        let Some(previous) = old.iter().find(|o| o.url == hook.url) else {
            return Err(format!(
                "Webhook {:?} is new: give it a secret of its own (`***` keeps only the \
                 secret of a webhook already saved under the same URL).",
                hook.url
            ));
        };
        hook.secret.clone_from(&previous.secret);
    }
    Ok(())
}
