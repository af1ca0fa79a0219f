//! The system notices of a conversation ("a person will join you", "you're back with the
//! assistant") are written in the visitor's language, over real WebSockets and SQLite.

use nexus_shared::{
    Auth, Author, ClientFrame, Hello, PROTOCOL_VERSION, Role, ServerFrame, Transition,
};
use nexus_tests::frames;
use nexus_tests::{TestServer, WsClient, agent_login};

async fn visitor_in(server: &TestServer, locale: &str) -> WsClient {
    let mut visitor = WsClient::connect(&server.ws_url()).await;
    visitor
        .send(&ClientFrame::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            auth: Auth::Visitor {
                site_key: "demo".into(),
                visitor_token: None,
                conversation_id: None,
                identity: None,
                page_url: None,
                locale: Some(locale.into()),
            },
        }))
        .await;
    match visitor.recv().await {
        ServerFrame::Welcome(_) => visitor,
        other => panic!("expected welcome, got {other:?}"),
    }
}

/// The next system message with a state change whose cause `matches`.
async fn notice(client: &mut WsClient, matches: fn(&Transition) -> bool) -> String {
    let (body, _) = client
        .recv_until(|f| match f {
            ServerFrame::Message(m)
                if m.author == Author::System
                    && m.event.as_ref().is_some_and(|e| matches(&e.cause)) =>
            {
                Some(m.body.clone())
            }
            _ => None,
        })
        .await;
    body
}

#[tokio::test]
async fn a_german_visitor_reads_the_handoff_notices_in_german() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let token = agent_login(&server, "demo", "ana@demo.test", Role::Agent).await;
    let (mut agent, _) = WsClient::agent(&server.ws_url(), &token).await;

    let mut visitor = visitor_in(&server, "de-DE").await;
    visitor
        .send(&frames::send(
            None,
            "q1",
            "Ich möchte mit einem Menschen sprechen",
        ))
        .await;
    let waiting = notice(&mut visitor, |t| matches!(t, Transition::Escalated { .. })).await;
    assert!(
        waiting.contains("Person") && waiting.contains("Team"),
        "the handoff notice is German: {waiting}"
    );
    let (conversation_id, _) = agent
        .recv_until(|f| match f {
            ServerFrame::Conversation(c) => Some(c.id),
            _ => None,
        })
        .await;
    agent.send(&ClientFrame::TakeOver { conversation_id }).await;
    let joined = notice(&mut visitor, |t| matches!(t, Transition::TakenOver { .. })).await;
    assert!(
        joined.ends_with("ist dem Gespräch beigetreten."),
        "{joined}"
    );
    agent.send(&ClientFrame::HandBack { conversation_id }).await;
    let back = notice(&mut visitor, |t| matches!(t, Transition::HandedBack { .. })).await;
    assert_eq!(back, "Sie sind wieder beim Assistenten.");

    // An English visitor on the same server reads English.
    let mut english = visitor_in(&server, "en-GB").await;
    english
        .send(&frames::send(None, "q1", "I want to talk to a human"))
        .await;
    let waiting = notice(&mut english, |t| matches!(t, Transition::Escalated { .. })).await;
    assert_eq!(
        waiting,
        "You asked for a person. Someone from the team will join you here."
    );

    agent.close().await;
    server.stop().await;
}
