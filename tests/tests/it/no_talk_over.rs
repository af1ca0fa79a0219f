//! No talk-over: an agent's takeover and an AI answer issued at the same moment, 1,000 times.
//! Whatever order the database puts them in, no AI message may come after the takeover's
//! system message. The same with the review-mode path: an agent approving an AI draft while
//! another agent takes the conversation over.
//!
//! `cargo test -p nexus-tests --test it -- --nocapture no_talk_over::` prints the figures.

use nexus_server::AppState;
use nexus_server::conversation::{agent, visitor};
use nexus_server::model::User;
use nexus_server::store::Store;
use nexus_shared::{Author, Draft, DraftDecision, Role, Transition, VisitorInfo};
use nexus_tests::TestServer;
use uuid::Uuid;

const RACES: usize = 1_000;
/// Races in flight at once.
const BATCH: usize = 50;

/// A database on tmpfs when there is one: the races are about ordering, not fsync speed.
fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("tempdir")
}

async fn user(store: &dyn Store, site: Uuid, email: &str) -> User {
    nexus_server::access::accounts::add_user(
        store,
        site,
        email,
        email,
        Role::Agent,
        "a long test password",
    )
    .await
    .expect("account created")
}

async fn conversation(store: &dyn Store, site: Uuid) -> Uuid {
    let (visitor, _) = store
        .create_visitor(site, &VisitorInfo::default())
        .await
        .expect("visitor");
    store
        .create_conversation(site, visitor.id, None, None)
        .await
        .expect("conversation")
        .id
}

/// Delays one side by a varying number of database reads (the granularity at which the two
/// actors really compete), so that both orders occur: sometimes the AI's commit reaches the
/// database first, sometimes the takeover's.
async fn jitter(store: &dyn Store, id: Uuid, race: usize, side: usize) {
    let n = (race.wrapping_mul(2_654_435_761).wrapping_add(side * 40_503) >> 4) % 3;
    for _ in 0..n {
        let _ = store.conversation(id).await;
    }
}

#[derive(Debug, Default)]
struct Tally {
    races: usize,
    ai_first: usize,
    takeover_first: usize,
    violations: usize,
}

/// Checks one conversation's timeline: no AI message after the takeover's notice.
async fn check(store: &dyn Store, id: Uuid, tally: &mut Tally) {
    let messages = store.messages_after(id, 0, 100).await.expect("timeline");
    let takeover = messages
        .iter()
        .find(|m| {
            m.event
                .as_ref()
                .is_some_and(|e| matches!(e.cause, Transition::TakenOver { .. }))
        })
        .map(|m| m.seq)
        .expect("the takeover is always applied");
    let ai: Vec<u64> = messages
        .iter()
        .filter(|m| m.author == Author::Ai)
        .map(|m| m.seq)
        .collect();
    tally.races += 1;
    if ai.iter().any(|&seq| seq > takeover) {
        tally.violations += 1;
    }
    if ai.is_empty() {
        tally.takeover_first += 1;
    } else {
        tally.ai_first += 1;
    }
}

async fn race_ai_post(state: &AppState, agent: &User, site: Uuid) -> Tally {
    let mut tally = Tally::default();
    for batch in 0..RACES / BATCH {
        let mut ids = Vec::with_capacity(BATCH);
        let mut tasks = Vec::with_capacity(BATCH * 2);
        for i in 0..BATCH {
            let race = batch * BATCH + i;
            let id = conversation(state.store.as_ref(), site).await;
            ids.push(id);
            let (s, a) = (state.clone(), agent.clone());
            tasks.push(tokio::spawn(async move {
                jitter(s.store.as_ref(), id, race, 0).await;
                agent::take_over(&s, &a, id)
                    .await
                    .expect("the takeover is applied");
            }));
            let s = state.clone();
            tasks.push(tokio::spawn(async move {
                jitter(s.store.as_ref(), id, race, 1).await;
                // Refused (AiSilenced) when the takeover came first; that is the point.
                let _ = visitor::ai_post(&s, id, "an AI answer".into(), vec![], None, vec![]).await;
            }));
        }
        for task in tasks {
            task.await.expect("race task");
        }
        for id in ids {
            check(state.store.as_ref(), id, &mut tally).await;
        }
    }
    tally
}

async fn race_review(state: &AppState, reviewer: &User, taker: &User, site: Uuid) -> Tally {
    let mut tally = Tally::default();
    for batch in 0..RACES / BATCH {
        let mut ids = Vec::with_capacity(BATCH);
        let mut tasks = Vec::with_capacity(BATCH * 2);
        for i in 0..BATCH {
            let race = batch * BATCH + i;
            let id = conversation(state.store.as_ref(), site).await;
            let draft = Draft {
                id: Uuid::new_v4(),
                conversation_id: id,
                reply_to_seq: 0,
                body: "a drafted answer".into(),
                sources: vec![],
                confidence: Some(0.9),
                created_at: nexus_server::model::now_ms(),
            };
            state
                .store
                .create_draft(&draft, "a question")
                .await
                .expect("draft stored");
            ids.push(id);
            let (s, t) = (state.clone(), taker.clone());
            tasks.push(tokio::spawn(async move {
                jitter(s.store.as_ref(), id, race, 0).await;
                agent::take_over(&s, &t, id)
                    .await
                    .expect("the takeover is applied");
            }));
            let (s, r) = (state.clone(), reviewer.clone());
            tasks.push(tokio::spawn(async move {
                jitter(s.store.as_ref(), id, race, 1).await;
                // Refused when the takeover came first: the draft expires unsent.
                let _ = agent::review_draft(&s, &r, id, draft.id, DraftDecision::Approve).await;
            }));
        }
        for task in tasks {
            task.await.expect("race task");
        }
        for id in ids {
            check(state.store.as_ref(), id, &mut tally).await;
        }
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ai_never_speaks_after_a_takeover() {
    let dir = tempdir();
    let widget = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_with(&dir.path().join("race.db"), widget.path()).await;
    let state = server.state.clone();
    let site = state
        .store
        .site_by_key("demo")
        .await
        .expect("store")
        .expect("demo site")
        .id;
    let ana = user(state.store.as_ref(), site, "ana@example.com").await;
    let ben = user(state.store.as_ref(), site, "ben@example.com").await;

    let posts = race_ai_post(&state, &ana, site).await;
    eprintln!(
        "no talk-over, AI post vs takeover: races run {} / violations {} \
         (AI first {}, takeover first {})",
        posts.races, posts.violations, posts.ai_first, posts.takeover_first
    );
    let reviews = race_review(&state, &ana, &ben, site).await;
    eprintln!(
        "no talk-over, draft approval vs takeover: races run {} / violations {} \
         (AI first {}, takeover first {})",
        reviews.races, reviews.violations, reviews.ai_first, reviews.takeover_first
    );
    assert_eq!(posts.races, RACES);
    assert_eq!(reviews.races, RACES);
    assert_eq!(posts.violations, 0, "{posts:?}");
    assert_eq!(reviews.violations, 0, "{reviews:?}");
    server.stop().await;
}
