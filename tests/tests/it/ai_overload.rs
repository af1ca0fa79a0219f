//! Graceful overload of the AI, through the real server with a deliberately slow engine (the
//! real engine behind a sleep): past the AI queue's capacity, or past a question's deadline,
//! the conversation goes to a person with `engine_busy` and the visitor is told; every
//! visitor message is stored and acked; an agent's reply still reaches the visitor while the
//! AI is saturated; `/metrics` counts the busy handovers; and once the load is gone the AI
//! answers again (no backlog left behind).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nexus_engine::{AnswerEngine, Decision, EngineError, KbEntry, Query, Thresholds};
use nexus_server::conversation::ai_queue::AiQueue;
use nexus_shared::{Author, ClientFrame, ConversationState, HandoffReason, Role, ServerFrame};
use nexus_tests::{TestServer, WsClient, agent_login, frames};
use uuid::Uuid;

const QUESTION: &str = "how can I cancel my order";

/// The server's engine, answering only after `delay_ms` (a test double for a saturated CPU).
struct SlowEngine {
    inner: Arc<dyn AnswerEngine>,
    delay_ms: Arc<AtomicU64>,
}

impl SlowEngine {
    async fn wait(&self) {
        let ms = self.delay_ms.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

#[async_trait::async_trait]
impl AnswerEngine for SlowEngine {
    fn name(&self) -> &str {
        "slow"
    }
    fn load_site(&self, site_id: Uuid, entries: Vec<KbEntry>) {
        self.inner.load_site(site_id, entries);
    }
    fn entry(&self, site_id: Uuid, entry_id: &str) -> Option<KbEntry> {
        self.inner.entry(site_id, entry_id)
    }
    async fn decide(&self, query: Query<'_>) -> Result<Decision, EngineError> {
        self.wait().await;
        self.inner.decide(query).await
    }
    async fn decide_with(
        &self,
        query: Query<'_>,
        thresholds: Option<Thresholds>,
    ) -> Result<Decision, EngineError> {
        self.wait().await;
        self.inner.decide_with(query, thresholds).await
    }
    fn default_thresholds(&self) -> Thresholds {
        self.inner.default_thresholds()
    }
    fn retrieve(&self, site_id: Uuid, text: &str, k: usize) -> Vec<(KbEntry, f32)> {
        self.inner.retrieve(site_id, text, k)
    }
    fn similarity(&self, a: &str, b: &str) -> Option<f32> {
        self.inner.similarity(a, b)
    }
}

/// A server whose engine waits `delay` before deciding, with an AI queue of `capacity` slots
/// and `deadline` per question; the delay can be changed while it runs.
async fn slow_server(
    dir: &tempfile::TempDir,
    delay: Duration,
    capacity: usize,
    deadline: Duration,
) -> (TestServer, Arc<AtomicU64>) {
    let widget = dir.path().join("widget");
    std::fs::create_dir_all(&widget).expect("widget dir");
    let delay_ms = Arc::new(AtomicU64::new(delay.as_millis() as u64));
    let knob = delay_ms.clone();
    let server = TestServer::start_adjusted(&dir.path().join("nexus.db"), &widget, move |state| {
        state.engine = Arc::new(SlowEngine {
            inner: state.engine.clone(),
            delay_ms: knob,
        });
        state.ai = Arc::new(AiQueue::new(capacity, deadline));
    })
    .await;
    (server, delay_ms)
}

/// Waits for the conversation to go to a person; returns the reason and the system notice
/// the visitor was shown. Panics if the AI answers instead.
async fn handover(visitor: &mut WsClient) -> (Option<HandoffReason>, String) {
    let mut notice = String::new();
    visitor
        .until("the handover", |f| match f {
            ServerFrame::Message(m) if m.author == Author::Ai => {
                panic!("the AI answered {:?}", m.body)
            }
            ServerFrame::Message(m) if m.author == Author::System => {
                notice = m.body.clone();
                None
            }
            ServerFrame::State {
                state: ConversationState::Waiting,
                reason,
                ..
            } => Some((reason.clone(), notice.clone())),
            _ => None,
        })
        .await
}

async fn metrics(server: &TestServer) -> String {
    reqwest::get(server.url("/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text")
}

fn metric(text: &str, line_start: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_ai_hands_over_as_busy_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Two slots, three seconds a question; the engine is quick for now.
    let (server, delay) = slow_server(&dir, Duration::ZERO, 2, Duration::from_secs(3)).await;
    let token = agent_login(&server, "demo", "ana@demo.test", Role::Agent).await;
    let (mut agent, _) = WsClient::agent(&server.ws_url(), &token).await;

    // A visitor already talking to a person.
    let (mut human, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    let (with_person, _) = human.say(None, "h-1", QUESTION).await;
    let _ = human.recv_answer().await;
    human
        .send(&ClientFrame::RequestHuman {
            conversation_id: with_person,
        })
        .await;
    human.recv_state(ConversationState::Waiting).await;
    agent
        .send(&ClientFrame::TakeOver {
            conversation_id: with_person,
        })
        .await;
    human.recv_state(ConversationState::Human).await;

    // The engine now takes far longer than a question's deadline. Six visitors ask at once:
    // two take the slots, four find none.
    delay.store(60_000, Ordering::Relaxed);
    let mut visitors = Vec::new();
    for _ in 0..6 {
        visitors.push(WsClient::visitor(&server.ws_url(), "demo", None).await.0);
    }
    for (i, v) in visitors.iter_mut().enumerate() {
        v.send(&frames::send(None, format!("q{i}"), QUESTION)).await;
    }
    let mut conversations = Vec::new();
    for v in &mut visitors {
        conversations.push(v.recv_ack().await);
    }

    // While the AI's slots are taken, the person and the visitor talk as ever.
    human.say(Some(with_person), "h-2", "are you there?").await;
    agent
        .send(&frames::send(
            Some(with_person),
            "a-1",
            "Yes, happy to help.",
        ))
        .await;
    agent.recv_ack().await;
    human
        .until("the agent's reply", |f| match f {
            ServerFrame::Message(m) if matches!(m.author, Author::Agent(_)) => Some(m.body.clone()),
            _ => None,
        })
        .await;
    let during = metrics(&server).await;
    assert_eq!(
        metric(&during, "nexus_ai_in_flight "),
        Some(2),
        "the slots were taken while the person answered: {during}"
    );

    // Every asker is handed over as busy and told so.
    for (v, &conversation) in visitors.iter_mut().zip(&conversations) {
        let (reason, notice) = handover(v).await;
        assert_eq!(reason, Some(HandoffReason::EngineBusy), "{conversation}");
        assert!(
            notice.contains("busy") && notice.contains("nothing you wrote is lost"),
            "{notice:?}"
        );
    }

    // Nothing lost: each timeline holds the visitor's question and no AI answer.
    for &conversation in &conversations {
        let timeline = server
            .state
            .store
            .last_messages(conversation, 50)
            .await
            .expect("timeline");
        assert_eq!(
            timeline
                .iter()
                .filter(|m| m.author == Author::Visitor && m.body == QUESTION)
                .count(),
            1,
            "{conversation}: {timeline:?}"
        );
        assert!(!timeline.iter().any(|m| m.author == Author::Ai));
    }

    // Counted: four found the queue full, two missed their deadline; no slot is held.
    let text = metrics(&server).await;
    assert_eq!(
        metric(&text, "nexus_escalations_total{reason=\"engine_busy\"}"),
        Some(6),
        "{text}"
    );
    assert_eq!(
        metric(&text, "nexus_ai_busy_total{cause=\"queue_full\"}"),
        Some(4),
        "{text}"
    );
    assert_eq!(
        metric(&text, "nexus_ai_busy_total{cause=\"deadline\"}"),
        Some(2),
        "{text}"
    );
    assert_eq!(metric(&text, "nexus_ai_in_flight "), Some(0), "{text}");

    // The load is gone and so is the backlog: the next question gets the AI's answer.
    delay.store(0, Ordering::Relaxed);
    let (mut next, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    next.send(&frames::send(None, "q-next", QUESTION)).await;
    next.recv_ack().await;
    let answer = next.recv_answer().await;
    assert!(answer.is_ok(), "after the load: {answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn within_capacity_a_slow_ai_still_answers_every_question() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, _) =
        slow_server(&dir, Duration::from_millis(300), 4, Duration::from_secs(20)).await;
    let mut visitors = Vec::new();
    for i in 0..4 {
        let (mut v, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
        v.send(&frames::send(None, format!("q{i}"), QUESTION)).await;
        visitors.push(v);
    }
    for v in &mut visitors {
        v.recv_ack().await;
        let answer = v.recv_answer().await;
        assert!(answer.is_ok(), "{answer:?}");
    }
    let text = metrics(&server).await;
    assert_eq!(
        metric(&text, "nexus_ai_busy_total{cause=\"queue_full\"}"),
        Some(0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "nexus_escalations_total{reason=\"engine_busy\"}"),
        None
    );
}
