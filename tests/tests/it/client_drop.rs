//! Client drop: visitor WebSockets cut mid-burst (the TCP stream dropped without a close
//! frame) reconnect with their token, re-send every message they have no ack for with the same
//! `client_msg_id` (and some they do have an ack for), and resume. Afterwards every message is
//! stored exactly once, in the order sent, acked messages at their acked sequence numbers, and
//! the resumed history has no gaps. Prints sent / acked / retried / stored.
//!
//! The browser half: the real widget in headless Chromium, its network cut mid-burst through a
//! TCP proxy and restored, three times; every typed message is stored and shown exactly once.

use std::collections::HashMap;
use std::time::Duration;

use nexus_shared::{Author, ClientFrame, ServerFrame, Session};
use nexus_tests::frames;
use nexus_tests::{TestServer, WsClient};
use uuid::Uuid;

const CLIENTS: usize = 20;
const MESSAGES: usize = 30;
/// Messages sent ahead of their acks (in flight when the connection is cut).
const WINDOW: usize = 6;

#[derive(Default)]
struct Figures {
    sent: usize,
    acked: usize,
    retried: usize,
    duplicate_acks: usize,
    cuts: usize,
}

/// One visitor's burst; cuts its connection twice, mid-burst. Returns its token, its
/// conversation, every ack (id → seq) and its figures.
async fn burst(url: String, client: usize) -> (String, Uuid, HashMap<String, u64>, Figures) {
    let ids: Vec<String> = (0..MESSAGES)
        .map(|i| format!("c{client}-m{i:02}"))
        .collect();
    let mut acks: HashMap<String, u64> = HashMap::new();
    let mut figures = Figures::default();
    let mut token = None;
    let mut conversation = Uuid::nil();
    // Cut once after a third of the acks and once after two thirds (shifted per client).
    let cuts = [MESSAGES / 3 + client % 4, 2 * MESSAGES / 3 + client % 3];
    let mut next = 0;
    let mut round = 0;
    loop {
        let (mut ws, welcome) = WsClient::visitor(&url, "demo", token.clone()).await;
        if let Session::Visitor { visitor_token } = &welcome.session {
            token = Some(visitor_token.clone());
        }
        // Everything sent but not acked goes again, with the same id, in order; on a
        // reconnect the last acked message is re-sent too (a retry of a stored message).
        let unacked: Vec<usize> = (0..next).filter(|&i| !acks.contains_key(&ids[i])).collect();
        let mut queue: Vec<usize> = Vec::new();
        if round > 0
            && let Some(last) = (0..next).rev().find(|&i| acks.contains_key(&ids[i]))
        {
            queue.push(last);
        }
        queue.extend(unacked.iter().copied());
        figures.retried += queue.len();
        queue.extend(next..MESSAGES);
        let cut_at = cuts.get(round).copied();
        let mut in_flight: Vec<usize> = Vec::new();
        let mut pending = queue.into_iter();
        let mut cut = false;
        loop {
            while in_flight.len() < WINDOW {
                let Some(i) = pending.next() else { break };
                ws.send(&frames::send(
                    None,
                    &ids[i],
                    format!("message {i} of client {client}"),
                ))
                .await;
                if i >= next {
                    figures.sent += 1;
                    next = i + 1;
                }
                in_flight.push(i);
            }
            if in_flight.is_empty() {
                break;
            }
            if cut_at.is_some_and(|at| acks.len() >= at) {
                figures.cuts += 1;
                cut = true;
                break;
            }
            let frame = ws.recv().await;
            if let ServerFrame::Ack {
                client_msg_id,
                conversation_id,
                seq,
                duplicate,
                ..
            } = frame
            {
                conversation = conversation_id;
                if let Some(&earlier) = acks.get(&client_msg_id) {
                    assert_eq!(earlier, seq, "a retry is acked with the first seq");
                }
                if duplicate {
                    figures.duplicate_acks += 1;
                }
                acks.insert(client_msg_id.clone(), seq);
                in_flight.retain(|&i| ids[i] != client_msg_id);
            } else if let ServerFrame::Error(e) = frame {
                panic!("client {client}: unexpected error {e:?}");
            }
        }
        if !cut {
            ws.close().await;
            break;
        }
        // Cut: drop the socket as it is, no close frame, acks still in flight.
        drop(ws);
        round += 1;
    }
    figures.acked = acks.len();
    (token.expect("a visitor token"), conversation, acks, figures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_cut_mid_burst_lose_and_duplicate_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let widget = dir.path().join("widget");
    std::fs::create_dir_all(&widget).expect("widget dir");
    let server = TestServer::start_with(&dir.path().join("nexus.db"), &widget).await;
    // Cut connections linger on the server until it notices; allow them all.
    server.state.connections.set_per_ip(10_000);
    let url = server.ws_url();

    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(burst(url.clone(), c)))
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("client task"));
    }

    let store = server.state.store.as_ref();
    let mut total = Figures::default();
    let mut stored = 0;
    for (client, (token, conversation, acks, figures)) in results.iter().enumerate() {
        let messages = store
            .messages_after(*conversation, 0, 10_000)
            .await
            .expect("messages");
        for (n, m) in messages.iter().enumerate() {
            assert_eq!(
                m.seq,
                n as u64 + 1,
                "client {client}: sequence without gaps"
            );
        }
        let visitor: Vec<&nexus_shared::Message> = messages
            .iter()
            .filter(|m| m.author == Author::Visitor)
            .collect();
        let expected: Vec<String> = (0..MESSAGES)
            .map(|i| format!("c{client}-m{i:02}"))
            .collect();
        let got: Vec<String> = visitor
            .iter()
            .map(|m| m.client_msg_id.clone().unwrap_or_default())
            .collect();
        assert_eq!(
            got, expected,
            "client {client}: each message once, in order"
        );
        for m in &visitor {
            let id = m.client_msg_id.as_deref().unwrap_or_default();
            assert_eq!(
                acks.get(id),
                Some(&m.seq),
                "client {client}: {id} at its acked seq"
            );
        }
        stored += visitor.len();

        // The client catches up: a resume from 0 gives the whole timeline, no gaps.
        let (mut ws, welcome) = WsClient::visitor(&url, "demo", Some(token.clone())).await;
        assert_eq!(
            welcome.conversation.as_ref().map(|c| c.id),
            Some(*conversation),
            "client {client} comes back to its conversation"
        );
        ws.send(&ClientFrame::Resume {
            conversation_id: *conversation,
            after_seq: 0,
        })
        .await;
        let (history, _) = ws
            .recv_until(|f| match f {
                ServerFrame::History { messages, .. } => Some(messages.clone()),
                _ => None,
            })
            .await;
        assert!(history.len() >= messages.len().min(200));
        for (n, m) in history.iter().enumerate() {
            assert_eq!(m.seq, n as u64 + 1, "client {client}: resumed without gaps");
        }
        ws.close().await;

        total.sent += figures.sent;
        total.acked += figures.acked;
        total.retried += figures.retried;
        total.duplicate_acks += figures.duplicate_acks;
        total.cuts += figures.cuts;
    }
    assert_eq!(stored, CLIENTS * MESSAGES);
    assert_eq!(total.cuts, CLIENTS * 2);
    eprintln!(
        "client drop: {CLIENTS} clients x {MESSAGES} messages, {} connections cut mid-burst \
         (window {WINDOW}); sent {}, acked {}, re-sent after reconnect {} ({} acked as \
         duplicates), stored {stored} (each exactly once, in order)",
        total.cuts, total.sent, total.acked, total.retried, total.duplicate_acks
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.stop().await;
}

/// A TCP proxy on 127.0.0.1 between the browser and the server that can take the network away:
/// offline cuts every connection through it (no WebSocket close frame) and refuses new ones;
/// online lets them through again.
struct Proxy {
    addr: std::net::SocketAddr,
    online: std::sync::Arc<std::sync::atomic::AtomicBool>,
    links: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: std::net::SocketAddr) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let online = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let links = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (on, ls) = (online.clone(), links.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !on.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                ls.lock().expect("links").push(link);
            }
        });
        Self {
            addr,
            online,
            links,
            accept,
        }
    }

    fn offline(&self) {
        self.online
            .store(false, std::sync::atomic::Ordering::SeqCst);
        for link in self.links.lock().expect("links").drain(..) {
            link.abort();
        }
    }

    fn online(&self) {
        self.online.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.offline();
    }
}

#[tokio::test]
async fn the_browser_going_offline_mid_burst_loses_and_duplicates_nothing() {
    use nexus_tests::browser::{Browser, probe};
    const WAIT: Duration = Duration::from_secs(40);
    assert!(
        nexus_tests::widget_dir().join("widget.js").exists(),
        "the widget is not built: run `cargo xtask widget` (`cargo xtask test` does)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(&dir.path().join("nexus.db")).await;
    let proxy = Proxy::start(server.addr).await;
    let browser = Browser::start(420, 760).await;
    browser
        .client
        .goto(&format!("http://{}/", proxy.addr))
        .await
        .expect("page through the proxy");
    browser
        .wait_for("the launcher", WAIT, &probe("launcher", "true"))
        .await;
    browser
        .widget_element("launcher")
        .await
        .click()
        .await
        .expect("launcher");
    let online = probe(
        "connection-status",
        "e.getAttribute('data-status') === 'online'",
    );
    browser.wait_for("online", WAIT, &online).await;

    async fn say(browser: &Browser, text: &str) {
        let input = browser.widget_element("input").await;
        input.send_keys(text).await.expect("typing");
        browser
            .widget_element("send")
            .await
            .click()
            .await
            .expect("send");
    }
    let mut typed = Vec::new();
    let mut cuts = 0;
    for round in 0..3 {
        // A burst, cut in the middle: the last messages' acks are lost or never sent.
        for i in 0..4 {
            let text = format!("round {round} message {i}");
            say(&browser, &text).await;
            typed.push(text);
            if i == 1 {
                proxy.offline();
                cuts += 1;
            }
        }
        // Written while offline, then the network comes back.
        let text = format!("round {round} written offline");
        say(&browser, &text).await;
        typed.push(text);
        // The widget noticed: the cut is real, not absorbed somewhere.
        browser
            .wait_for(
                "the widget to notice the cut",
                WAIT,
                &probe(
                    "connection-status",
                    "e.getAttribute('data-status') !== 'online'",
                ),
            )
            .await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        proxy.online();
        browser.wait_for("back online", WAIT, &online).await;
    }

    // Everything typed arrives exactly once, in order.
    let store = server.state.store.as_ref();
    let token = browser
        .js(
            "return localStorage.getItem('nexus-flow:demo:visitor');",
            vec![],
        )
        .await;
    let token = token.as_str().expect("a visitor token").to_owned();
    let token = serde_json::from_str::<String>(&token).unwrap_or(token);
    let site = store
        .site_by_key("demo")
        .await
        .expect("store")
        .expect("demo");
    let visitor = store
        .visitor_by_token(site.id, &token)
        .await
        .expect("store")
        .expect("the widget's visitor");
    let conversation = store
        .latest_conversation(visitor.id)
        .await
        .expect("store")
        .expect("a conversation");
    let deadline = tokio::time::Instant::now() + WAIT;
    let stored = loop {
        let bodies: Vec<String> = store
            .messages_after(conversation.id, 0, 10_000)
            .await
            .expect("messages")
            .into_iter()
            .filter(|m| m.author == Author::Visitor)
            .map(|m| m.body)
            .collect();
        if bodies.len() >= typed.len() || tokio::time::Instant::now() > deadline {
            break bodies;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(stored, typed, "each typed message stored once, in order");
    let shown = browser
        .js(
            "const r = document.querySelector('#nexus-flow-root').shadowRoot;
             return Array.from(r.querySelectorAll('[data-testid=\"message\"][data-author=\"visitor\"]'))
               .map(m => m.textContent);",
            vec![],
        )
        .await;
    for text in &typed {
        let count = shown.as_array().map_or(0, |a| {
            a.iter()
                .filter(|t| t.as_str().is_some_and(|t| t.contains(text.as_str())))
                .count()
        });
        assert_eq!(count, 1, "{text:?} shows once in the widget: {shown}");
    }
    eprintln!(
        "browser offline: {cuts} network cuts mid-burst, typed {}, stored {} (each once, in \
         order), shown once each in the widget",
        typed.len(),
        stored.len()
    );
    browser.close().await;
    server.stop().await;
}
