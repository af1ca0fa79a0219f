//! Assignment through the real server: with `auto_assign`, escalated conversations go round
//! robin to the online agents, skipping agents who are away; the visitor sees who joined; an
//! idle agent shows as away until their next activity.

use std::time::Duration;

use nexus_shared::{
    AgentRef, Author, ClientFrame, ConversationState, Presence, Role, ServerFrame, Session,
};
use nexus_tests::frames;
use nexus_tests::{TestServer, WsClient, agent_login};
use serde_json::json;

/// A new visitor asks for a person; returns who joined (as the visitor saw it), or `None`
/// when the conversation stays waiting and the visitor is told nobody is there.
async fn escalate(server: &TestServer, n: usize) -> Option<String> {
    let (mut visitor, _) = WsClient::visitor(&server.ws_url(), "demo", None).await;
    visitor
        .send(&frames::send(
            None,
            format!("q{n}"),
            format!("Question number {n} about my parcel"),
        ))
        .await;
    let conversation = visitor.recv_ack().await;
    visitor
        .send(&ClientFrame::RequestHuman {
            conversation_id: conversation,
        })
        .await;
    let (outcome, skipped) = visitor
        .recv_until(|f| match f {
            ServerFrame::State {
                state: ConversationState::Human,
                assignee: Some(agent),
                ..
            } => Some(Some(agent.name.clone())),
            ServerFrame::Offline { .. } => Some(None),
            _ => None,
        })
        .await;
    if let Some(name) = &outcome {
        // The notice is stored (and sent) before the state.
        let notice = skipped.iter().find_map(|f| match f {
            ServerFrame::Message(m) if m.author == Author::System && m.body.contains("joined") => {
                Some(m.body.clone())
            }
            _ => None,
        });
        assert_eq!(notice, Some(format!("{name} joined the conversation.")));
    }
    outcome
}

async fn connect(server: &TestServer, token: &str) -> (WsClient, AgentRef) {
    let (client, welcome) = WsClient::agent(&server.ws_url(), token).await;
    let Session::Agent { agent, .. } = welcome.session else {
        panic!("an agent session");
    };
    (client, agent)
}

async fn presence_of(watcher: &mut WsClient, agent: &AgentRef, status: Presence) {
    watcher
        .recv_until(|f| match f {
            ServerFrame::Presence {
                agent: Some(a),
                status: Some(s),
                ..
            } if a.id == agent.id && *s == status => Some(()),
            _ => None,
        })
        .await;
}

#[tokio::test]
async fn round_robin_among_online_agents_skipping_away_ones_and_idle_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let owner = agent_login(&server, "demo", "olga@demo.test", Role::Owner).await;
    let ana_token = agent_login(&server, "demo", "ana@demo.test", Role::Agent).await;
    let ben_token = agent_login(&server, "demo", "ben@demo.test", Role::Agent).await;

    let (mut ana, ana_ref) = connect(&server, &ana_token).await;
    let (mut ben, ben_ref) = connect(&server, &ben_token).await;
    let r = reqwest::Client::new()
        .patch(server.url("/api/v1/site"))
        .bearer_auth(&owner)
        .json(&json!({"auto_assign": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Round robin, in a stable order (by agent id).
    let mut order = [ana_ref.name.clone(), ben_ref.name.clone()];
    if ben_ref.id < ana_ref.id {
        order.reverse();
    }
    let mut got = Vec::new();
    for n in 0..4 {
        got.push(escalate(&server, n).await.expect("assigned"));
    }
    let first = got[0].clone();
    let second = order.iter().find(|n| **n != first).unwrap().clone();
    assert_eq!(
        got,
        vec![first.clone(), second.clone(), first, second],
        "round robin"
    );

    // Ben steps away: everything goes to Ana.
    ben.send(&ClientFrame::SetPresence {
        status: Presence::Away,
    })
    .await;
    presence_of(&mut ana, &ben_ref, Presence::Away).await;
    for n in 4..6 {
        assert_eq!(escalate(&server, n).await.as_deref(), Some("ana"));
    }

    // Ana goes idle: shown away to the others, back online at her next frame.
    server
        .state
        .presence
        .set_idle_after(Duration::from_millis(300));
    presence_of(&mut ben, &ana_ref, Presence::Away).await;
    // Nobody is online now: the conversation waits and the visitor is told.
    assert_eq!(escalate(&server, 6).await, None);
    ana.send(&ClientFrame::Ping).await;
    presence_of(&mut ben, &ana_ref, Presence::Online).await;
    server
        .state
        .presence
        .set_idle_after(Duration::from_secs(600));
    assert_eq!(escalate(&server, 7).await.as_deref(), Some("ana"));
}
