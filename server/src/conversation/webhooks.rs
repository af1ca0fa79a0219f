//! Outgoing webhooks: `escalated`, `agent_joined` and `resolved`, posted as JSON to the URLs
//! in the site's `webhooks` setting.
//!
//! Every request carries `X-Nexus-Event`, `X-Nexus-Timestamp` (milliseconds since 1970, when
//! the event happened) and `X-Nexus-Signature: sha256=<hex HMAC-SHA256 of the body under the
//! webhook's secret>`. Deliveries go through a bounded queue to a background task, so the chat
//! path never waits on a receiver; a delivery that fails (connection error, timeout, status
//! other than 2xx) is retried with exponential backoff, [`MAX_ATTEMPTS`] attempts in all. When
//! the queue is full, new events are dropped and logged.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use nexus_shared::{AgentRef, HandoffReason, Millis, Transition};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::{Semaphore, mpsc};
use uuid::Uuid;

use crate::egress::Egress;
use crate::model::{Committed, SiteSettings};

/// Attempts per delivery (the first and four retries).
pub const MAX_ATTEMPTS: u32 = 5;
/// Events waiting for delivery at most.
pub const QUEUE_CAPACITY: usize = 1024;
/// Deliveries in flight at once.
const CONCURRENT_DELIVERIES: usize = 16;
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The JSON body of a webhook request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `escalated`, `agent_joined` or `resolved`.
    pub event: String,
    pub site_id: Uuid,
    pub conversation_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<HandoffReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentRef>,
    /// When it happened (milliseconds since 1970).
    pub at: Millis,
}

/// The events in a commit's timeline entries.
pub fn events_of(committed: &Committed) -> Vec<Event> {
    let conversation = &committed.conversation;
    committed
        .messages
        .iter()
        .filter_map(|m| {
            let cause = &m.event.as_ref()?.cause;
            let (event, reason, agent) = match cause {
                Transition::Escalated { reason } => ("escalated", Some(reason.clone()), None),
                Transition::TakenOver { agent } => ("agent_joined", None, Some(agent.clone())),
                Transition::Transferred { to, .. } => ("agent_joined", None, Some(to.clone())),
                Transition::Resolved { by } => ("resolved", None, by.clone()),
                _ => return None,
            };
            Some(Event {
                event: event.to_owned(),
                site_id: conversation.site_id,
                conversation_id: conversation.id,
                reason,
                agent,
                at: m.created_at,
            })
        })
        .collect()
}

/// `sha256=<hex HMAC-SHA256 of body under secret>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// One request to make.
#[derive(Debug, Clone)]
struct Delivery {
    url: String,
    secret: String,
    event: String,
    at: Millis,
    body: Vec<u8>,
}

/// The delivery queue and its background worker.
pub struct Dispatcher {
    tx: mpsc::Sender<Delivery>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// Starts the worker (needs a Tokio runtime). `first_backoff` is the wait before the
    /// first retry; each later wait doubles.
    /// Every delivery goes through `egress`: a URL whose address is internal is refused
    /// before any connection, and names are resolved by the guard on every connection.
    pub fn start(first_backoff: Duration, egress: Egress) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(worker(rx, first_backoff, egress));
        Self { tx }
    }

    /// Queues the events of a commit for every webhook of the site that wants them. Never
    /// waits.
    pub fn enqueue(&self, settings: &SiteSettings, events: &[Event]) {
        for event in events {
            let Ok(body) = serde_json::to_vec(event) else {
                continue;
            };
            for hook in settings.webhooks.iter().filter(|h| h.wants(&event.event)) {
                let delivery = Delivery {
                    url: hook.url.clone(),
                    secret: hook.secret.clone(),
                    event: event.event.clone(),
                    at: event.at,
                    body: body.clone(),
                };
                if let Err(e) = self.tx.try_send(delivery) {
                    tracing::warn!(event = %event.event, error = %e, "webhook queue full; event dropped");
                }
            }
        }
    }
}

async fn worker(mut rx: mpsc::Receiver<Delivery>, first_backoff: Duration, egress: Egress) {
    let client = match egress.client(ATTEMPT_TIMEOUT, 0) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook HTTP client; webhooks are off");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(CONCURRENT_DELIVERIES));
    while let Some(delivery) = rx.recv().await {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let client = client.clone();
        let egress = egress.clone();
        tokio::spawn(async move {
            if let Err(refused) = egress.check_url(&delivery.url) {
                tracing::warn!(event = %delivery.event, error = %refused, "webhook refused: not a public address");
                drop(permit);
                return;
            }
            deliver(&client, &delivery, first_backoff).await;
            drop(permit);
        });
    }
}

async fn deliver(client: &reqwest::Client, delivery: &Delivery, first_backoff: Duration) {
    let signature = signature(&delivery.secret, &delivery.body);
    let mut wait = first_backoff;
    for attempt in 1..=MAX_ATTEMPTS {
        let result = client
            .post(&delivery.url)
            .header("content-type", "application/json")
            .header("x-nexus-event", &delivery.event)
            .header("x-nexus-timestamp", delivery.at.to_string())
            .header("x-nexus-signature", &signature)
            .header("x-nexus-attempt", attempt.to_string())
            .body(delivery.body.clone())
            .send()
            .await;
        let failure = match result {
            Ok(response) if response.status().is_success() => {
                tracing::debug!(event = %delivery.event, attempt, "webhook delivered");
                return;
            }
            Ok(response) => format!("status {}", response.status()),
            Err(e) => e.to_string(),
        };
        if attempt == MAX_ATTEMPTS {
            tracing::warn!(event = %delivery.event, attempt, error = %failure, "webhook failed; giving up");
            return;
        }
        tracing::info!(event = %delivery.event, attempt, error = %failure, "webhook failed; retrying");
        tokio::time::sleep(wait).await;
        wait = wait.saturating_mul(2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Webhook;
    use crate::model::webhook::{keep_secrets, validate};

    #[test]
    fn signature_is_hex_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn settings_are_checked_and_secrets_kept() {
        let hook = Webhook {
            url: "https://example.invalid/hook".into(),
            secret: "s".into(),
            events: vec!["resolved".into()],
        };
        assert!(validate(std::slice::from_ref(&hook)).is_ok());
        assert!(hook.wants("resolved") && !hook.wants("escalated"));
        let bad = Webhook {
            events: vec!["deleted".into()],
            ..hook.clone()
        };
        assert!(bad.validate().is_err());
        let ftp = Webhook {
            url: "ftp://x".into(),
            ..hook.clone()
        };
        assert!(ftp.validate().is_err());
        let mut sent = vec![Webhook {
            secret: "***".into(),
            ..hook.clone()
        }];
        keep_secrets(&mut sent, std::slice::from_ref(&hook)).unwrap();
        assert_eq!(sent[0].secret, "s");
        let mut moved = vec![Webhook {
            url: "https://example.invalid/other".into(),
            secret: "***".into(),
            ..hook.clone()
        }];
        let refused = keep_secrets(&mut moved, &[hook]).unwrap_err();
        assert!(refused.contains("is new"), "{refused}");
        assert_eq!(moved[0].secret, "***");
        assert!(!format!("{sent:?}").contains("\"s\""));
    }
}
