//! PostgreSQL restarts during traffic. The test runs its own throwaway PostgreSQL (initdb +
//! pg_ctl on a free 127.0.0.1 port, see `nexus_test_support::pg::Cluster`) so the restart disturbs no one
//! else, and two real `nexus-flow` instances on it: a visitor on instance A, an agent on B.
//!
//! While the database is down the visitor's message gets a transient error; the visitor
//! retries it with the same client id once the database is back, and it is stored once. The
//! instances reconnect by themselves (pool and fan-out listener): the agent on B receives the
//! visitor's messages from A again without reconnecting, every acknowledged message survives
//! exactly once, and both instances report ready.
//!
//! `cargo test -p nexus-server --test it -- --nocapture pg_restart::` prints the figures.

use std::time::{Duration, Instant};

use nexus_shared::{Author, ClientFrame, ConversationState, ServerFrame};
use nexus_test_support::pg::Cluster;
use nexus_test_support::{WAIT, WsClient};

use crate::support::{self, Instance};
use nexus_test_support::frames;
use uuid::Uuid;

fn visitor_message(c: Uuid, body: &'static str) -> impl FnMut(&ServerFrame) -> Option<()> {
    move |f| match f {
        ServerFrame::Message(m)
            if m.conversation_id == c && m.author == Author::Visitor && m.body == body =>
        {
            Some(())
        }
        _ => None,
    }
}

/// Sends `body` under `id` until it is acknowledged, reconnecting when the connection drops.
/// Returns the number of transient failures seen (errors or dropped connections).
async fn send_until_acked(
    visitor: &mut WsClient,
    url: &str,
    token: &str,
    c: Uuid,
    id: &str,
    body: &str,
) -> (u64, usize) {
    let mut failures = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "{id} was never acknowledged");
        visitor.send(&frames::send(Some(c), id, body)).await;
        let outcome = loop {
            match visitor.try_recv(WAIT).await {
                Some(ServerFrame::Ack {
                    client_msg_id, seq, ..
                }) if client_msg_id == id => break Some(seq),
                Some(ServerFrame::Error(_)) | None => break None,
                Some(_) => {}
            }
        };
        match outcome {
            Some(seq) => return (seq, failures),
            None => {
                failures += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
                if visitor.try_recv(Duration::from_millis(10)).await.is_none() {
                    // The connection may be gone: reconnect with the token.
                    if let Some((fresh, _)) = try_visitor(url, token).await {
                        *visitor = fresh;
                    }
                }
            }
        }
    }
}

async fn try_visitor(url: &str, token: &str) -> Option<(WsClient, nexus_shared::Welcome)> {
    let attempt = tokio::spawn({
        let (url, token) = (url.to_owned(), token.to_owned());
        async move { WsClient::visitor(&url, "demo", Some(token)).await }
    });
    attempt.await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_ride_out_a_postgres_restart() {
    let cluster = Cluster::start().await;
    let url = cluster.url();
    let dir = tempfile::tempdir().expect("tempdir");
    let widget = dir.path().join("widget");
    // A short acquire timeout: a query waits at most 2 s for the database, then fails.
    let env = [("NEXUS_FLOW_DB_ACQUIRE_TIMEOUT_MS", "2000")];
    let a = Instance::start_env(&url, &widget, &env).await;
    let b = Instance::start_env(&url, &widget, &env).await;
    support::add_user(&url, "ana@demo.test", "agent").await;
    let token = support::login(b.port, "ana@demo.test").await;
    let (mut agent, _) = WsClient::agent(&b.ws_url(), &token).await;

    let (mut visitor, welcome) = WsClient::visitor(&a.ws_url(), "demo", None).await;
    let nexus_shared::Session::Visitor { visitor_token } = welcome.session else {
        panic!("a visitor session");
    };
    let (c, _) = visitor.say(None, "v-0", "zqxv where is my parcel").await;
    visitor
        .send(&ClientFrame::RequestHuman { conversation_id: c })
        .await;
    agent
        .until("the escalation on B", |f| match f {
            ServerFrame::Conversation(s) if s.id == c && s.state == ConversationState::Waiting => {
                Some(())
            }
            _ => None,
        })
        .await;
    agent
        .send(&ClientFrame::TakeOver { conversation_id: c })
        .await;
    visitor
        .until("the takeover", |f| {
            matches!(
                f,
                ServerFrame::State {
                    state: ConversationState::Human,
                    ..
                }
            )
            .then_some(())
        })
        .await;
    let mut acked = vec![];
    for (id, body) in [("v-1", "first"), ("v-2", "second")] {
        acked.push((id, visitor.say(Some(c), id, body).await.1));
        agent.until(body, visitor_message(c, body)).await;
    }

    // The database goes away. The visitor's next message fails, visibly and transiently.
    cluster.pg_ctl_stop().await;
    let down = Instant::now();
    visitor
        .send(&frames::send(Some(c), "v-3", "during the outage"))
        .await;
    let transient = visitor
        .until("a transient error", |f| match f {
            ServerFrame::Error(e) => Some(e.code),
            ServerFrame::Ack { client_msg_id, .. } if client_msg_id == "v-3" => {
                panic!("acknowledged while the database is down")
            }
            _ => None,
        })
        .await;
    assert_eq!(
        transient,
        nexus_shared::ErrorCode::Unavailable,
        "a transient, retryable error"
    );
    let (status, _) = support::http(a.port, "GET", "/api/v1/ready", None).await;
    assert_ne!(status, 200, "not ready without its database");

    // Back up: the retry with the same id is stored once; nothing acknowledged is lost.
    cluster.pg_ctl_start().await;
    let (seq, failures) = send_until_acked(
        &mut visitor,
        &a.ws_url(),
        &visitor_token,
        c,
        "v-3",
        "during the outage",
    )
    .await;
    acked.push(("v-3", seq));
    println!(
        "retry acknowledged {:?} after the stop ({failures} more transient failures)",
        down.elapsed()
    );
    for (id, body) in [("v-4", "after one"), ("v-5", "after two")] {
        acked.push((id, visitor.say(Some(c), id, body).await.1));
    }
    // The agent on B, still on the same connection, receives them: B's fan-out listener
    // reconnected by itself.
    for body in ["during the outage", "after one", "after two"] {
        agent.until(body, visitor_message(c, body)).await;
    }
    agent
        .say(Some(c), "a-1", "Still here after the database restart.")
        .await;
    visitor
        .until("the agent's reply on A", |f| match f {
            ServerFrame::Message(m) if matches!(m.author, Author::Agent(_)) => Some(()),
            _ => None,
        })
        .await;

    for instance in [&a, &b] {
        let (status, body) = support::http(instance.port, "GET", "/api/v1/ready", None).await;
        assert_eq!(status, 200, "ready again: {body}");
    }
    let (_, metrics) = support::http(b.port, "GET", "/metrics", None).await;
    let reconnects = metrics
        .lines()
        .find_map(|l| l.strip_prefix("nexus_fanout_reconnects_total "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .expect("the reconnect counter");
    assert!(reconnects >= 1, "B's listener reconnected: {metrics}");

    // Every acknowledged message survived exactly once, under its acknowledged number.
    let (mut check, _) = WsClient::visitor(&b.ws_url(), "demo", Some(visitor_token)).await;
    check
        .send(&ClientFrame::Resume {
            conversation_id: c,
            after_seq: 0,
        })
        .await;
    let history = check
        .until("the history", |f| match f {
            ServerFrame::History {
                conversation_id,
                messages,
                ..
            } if *conversation_id == c => Some(messages.clone()),
            _ => None,
        })
        .await;
    let seqs: Vec<u64> = history.iter().map(|m| m.seq).collect();
    assert_eq!(
        seqs,
        (1..=history.len() as u64).collect::<Vec<_>>(),
        "gap-free"
    );
    for (id, seq) in &acked {
        let stored: Vec<_> = history
            .iter()
            .filter(|m| m.client_msg_id.as_deref() == Some(*id))
            .collect();
        assert_eq!(stored.len(), 1, "{id} stored exactly once");
        assert_eq!(stored[0].seq, *seq, "{id} keeps its acknowledged number");
    }
    check.close().await;
    agent.close().await;
    visitor.close().await;
    a.kill().await;
    b.kill().await;
}
