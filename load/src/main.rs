//! `nexus-load`: opens N visitor WebSockets and M agent WebSockets against a Nexus Flow server
//! on 127.0.0.1, drives a chosen message rate for a chosen time, and prints what it measured:
//! connections held, connect errors, messages/s sent and delivered, p50/p95/p99/max latency of
//! visitor→AI answer, visitor→agent and agent→visitor delivery, the inbox frames agents got, the
//! server's RSS (from `/proc/<pid>/status`) before, with the connections idle, and after, and
//! the server bytes per idle connection. Agents ask for their waiting and mine inbox views
//! (`--inbox-page`; 0 for the legacy whole inbox), as one account each with `{n}` in
//! `--agent-email`.
//!
//! It raises `RLIMIT_NOFILE` to the hard limit, binds its sockets to several 127.0.0.x source
//! addresses (each has its own ephemeral ports), refuses any target but 127.0.0.1, and stops by
//! itself after the run. See BENCHMARKS.md for the commands and figures.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use nexus_shared::{
    Auth, Author, ClientFrame, ConversationState, ConversationSummary, Hello, InboxFilter,
    PROTOCOL_VERSION, ServerFrame,
};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Hold the connections; send nothing.
    Idle,
    /// Visitors ask knowledge-base questions; measures visitor→AI answer.
    Ai,
    /// Visitors ask for a person first; agents take over, then visitors and agents write;
    /// measures visitor→agent and agent→visitor delivery.
    Human,
    /// An owner (--agent-email/--agent-password) asks for the last 30 days' analytics
    /// (`GET /api/v1/analytics`) --duration times in a row; measures the answer time.
    Analytics,
}

#[derive(Debug, Parser)]
#[command(about = "Load tool for a Nexus Flow server on 127.0.0.1")]
struct Args {
    /// The server's port on 127.0.0.1.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Site key the visitors open.
    #[arg(long, default_value = "demo")]
    site: String,
    /// Visitor WebSockets to open.
    #[arg(long, default_value_t = 100)]
    visitors: usize,
    /// Agent WebSockets to open (each logs in with --agent-email/--agent-password).
    #[arg(long, default_value_t = 0)]
    agents: usize,
    /// The agents' account; `{n}` in it is replaced by the agent's number (0, 1, …), so each
    /// agent is a person of their own (`load{n}@demo.test`).
    #[arg(long)]
    agent_email: Option<String>,
    #[arg(long, env = "NEXUS_LOAD_AGENT_PASSWORD")]
    agent_password: Option<String>,
    /// Visitor messages per second, over all visitors.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Seconds of traffic.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    #[arg(long, value_enum, default_value_t = Mode::Ai)]
    mode: Mode,
    /// Source addresses 127.0.0.1 ..= 127.0.0.<sources> (about 28k connections each).
    #[arg(long, default_value_t = 4)]
    sources: u8,
    /// Connections being opened at the same time.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// The server's process id, for its RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Agent frames per second per connection (the server allows 10).
    #[arg(long, default_value_t = 8.0)]
    agent_rate: f64,
    /// Lines per inbox page an agent asks for (its waiting and its own conversations, as the
    /// agent app does); 0: never ask, and get the legacy inbox (every open conversation's
    /// line, as older clients do).
    #[arg(long, default_value_t = 50)]
    inbox_page: u32,
}

/// Counters shared by every connection.
#[derive(Default)]
struct Counters {
    held: AtomicU64,
    connect_errors: AtomicU64,
    sent: AtomicU64,
    acked: AtomicU64,
    agent_sent: AtomicU64,
    delivered: AtomicU64,
    ai_answers: AtomicU64,
    escalated: AtomicU64,
    /// Escalations with the reason `engine_busy` (the AI's queue was full or late).
    busy: AtomicU64,
    human_ready: AtomicU64,
    takeovers: AtomicU64,
    errors: AtomicU64,
    rate_limited: AtomicU64,
    /// Inbox frames agents received during the traffic (lines, leaves, counts, pages).
    inbox_frames: AtomicU64,
}

/// Phases of a run, broadcast to every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd)]
enum Phase {
    Connect,
    Setup,
    Drive,
    /// Sending stops; what is in flight still arrives.
    Drain,
    Stop,
}

type Ws = WebSocketStream<TcpStream>;

/// What each connection measured, in microseconds.
#[derive(Default)]
struct Latencies {
    /// From a visitor's send to the server's ack (the message is stored).
    visitor_ack: Vec<u32>,
    visitor_ai: Vec<u32>,
    /// From a visitor's question to its `engine_busy` handover.
    visitor_busy: Vec<u32>,
    visitor_agent: Vec<u32>,
    agent_visitor: Vec<u32>,
}

/// Questions the demo knowledge base answers (close to its examples).
const QUESTIONS: &[&str] = &[
    "how can I cancel purchase 113542617735902?",
    "I need assistance trying to update my shipping address",
    "I want help seeing your payment methods",
    "I want to check in what cases can I ask for a reimbursement",
    "can i edit order 732201349959",
    "help me check the cancellation penalty",
];

/// Openings put before a question, so that each question asked is new text: a knowledge-base
/// example asked word for word would be answered from the engine's embedding cache, without
/// running the model, and the run would measure the cache.
const OPENINGS: &[&str] = &[
    "hi,",
    "hello, quick question:",
    "hey there,",
    "good morning,",
    "excuse me,",
    "sorry to bother you,",
    "hi again,",
    "one more thing,",
];

/// The `n`-th question of visitor `index` in `--mode ai`.
fn ai_question(index: usize, n: usize) -> String {
    let question = QUESTIONS[(index + n) % QUESTIONS.len()];
    let opening = OPENINGS[(index / QUESTIONS.len() + n) % OPENINGS.len()];
    format!("{opening} {question}")
}

fn micros_since(start: Instant) -> u64 {
    start.elapsed().as_micros() as u64
}

/// `lt:<micros since the run started>`: the send time, carried in the message body.
fn stamp(start: Instant) -> String {
    format!("lt:{}", micros_since(start))
}

fn latency_of(body: &str, start: Instant) -> Option<u32> {
    let sent: u64 = body.strip_prefix("lt:")?.parse().ok()?;
    Some(
        micros_since(start)
            .saturating_sub(sent)
            .min(u32::MAX as u64) as u32,
    )
}

fn raise_nofile() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let mut raised = limit;
    raised.current = limit.maximum;
    if setrlimit(Resource::Nofile, raised).is_ok() {
        limit.maximum.unwrap_or(u64::MAX)
    } else {
        limit.current.unwrap_or(0)
    }
}

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    // In clock ticks of USER_HZ, which Linux fixes at 100 for user space.
    Some((utime + stime) / 100.0)
}

/// CPU seconds of the load tool and of the server (when its pid is known).
fn cpu_pair(server_pid: Option<u32>) -> (Option<f64>, Option<f64>) {
    (
        cpu_seconds("self"),
        server_pid.and_then(|p| cpu_seconds(&p.to_string())),
    )
}

fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

async fn connect(port: u16, source: u8) -> anyhow::Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((Ipv4Addr::new(127, 0, 0, source), 0)))?;
    let stream = socket
        .connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await?;
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20));
    let url = format!("ws://127.0.0.1:{port}/ws");
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await?;
    Ok(ws)
}

async fn send(ws: &mut Ws, frame: &ClientFrame) -> bool {
    let json = serde_json::to_string(frame).unwrap_or_default();
    ws.send(Message::Text(json.into())).await.is_ok()
}

fn decode(message: Message) -> Option<ServerFrame> {
    match message {
        Message::Text(text) => serde_json::from_str(text.as_str()).ok(),
        _ => None,
    }
}

async fn hello(ws: &mut Ws, auth: Auth) -> anyhow::Result<()> {
    let frame = ClientFrame::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        auth,
    });
    if !send(ws, &frame).await {
        bail!("hello not sent");
    }
    loop {
        let next = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .context("no welcome in 30 s")?
            .context("closed before welcome")??;
        match decode(next) {
            Some(ServerFrame::Welcome(_)) => return Ok(()),
            Some(ServerFrame::Error(e)) => bail!("refused: {:?} {}", e.code, e.message),
            _ => {}
        }
    }
}

struct Run {
    args: Args,
    start: Instant,
    counters: Counters,
    gate: Semaphore,
}

/// One visitor: connect, say hello, then follow the phases.
async fn visitor(run: Arc<Run>, index: usize, mut phase: watch::Receiver<Phase>) -> Latencies {
    let mut latencies = Latencies::default();
    let args = &run.args;
    let source = 1 + (index % args.sources.max(1) as usize) as u8;
    let opened = {
        let _permit = run.gate.acquire().await;
        match connect(args.port, source).await {
            Ok(mut ws) => {
                let auth = Auth::Visitor {
                    site_key: args.site.clone(),
                    visitor_token: None,
                    conversation_id: None,
                    identity: None,
                    page_url: Some("http://127.0.0.1/load".into()),
                    locale: Some("en".into()),
                };
                hello(&mut ws, auth).await.map(|()| ws)
            }
            Err(e) => Err(e),
        }
    };
    let mut ws = match opened {
        Ok(ws) => ws,
        Err(e) => {
            if run.counters.connect_errors.fetch_add(1, Ordering::Relaxed) < 3 {
                eprintln!("visitor {index}: {e:#}");
            }
            return latencies;
        }
    };
    run.counters.held.fetch_add(1, Ordering::Relaxed);
    let c = &run.counters;
    // Each visitor's share of the rate, spread evenly over the interval.
    let interval = Duration::from_secs_f64(args.visitors as f64 / args.rate.max(0.001));
    let offset = interval.mul_f64((index as f64 * 0.618_033_988_7).fract());
    let mut next_send: Option<tokio::time::Instant> = None;
    let mut asked: std::collections::VecDeque<Instant> = Default::default();
    // Send times of the messages not acked yet (acks come in the order of the sends).
    let mut unacked: std::collections::VecDeque<Instant> = Default::default();
    let mut n = 0usize;
    // As the widget does: once an ack names the conversation, sends name it too.
    let mut conversation = None;
    loop {
        let wait = async {
            match next_send {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            incoming = ws.next() => {
                let Some(Ok(message)) = incoming else { break };
                match decode(message) {
                    Some(ServerFrame::Ack { conversation_id, client_msg_id, .. }) => {
                        c.acked.fetch_add(1, Ordering::Relaxed);
                        if !client_msg_id.ends_with("-setup")
                            && let Some(at) = unacked.pop_front()
                        {
                            latencies.visitor_ack.push(at.elapsed().as_micros() as u32);
                        }
                        conversation = Some(conversation_id);
                    }
                    Some(ServerFrame::Message(m)) => match &m.author {
                        Author::Ai => {
                            c.ai_answers.fetch_add(1, Ordering::Relaxed);
                            c.delivered.fetch_add(1, Ordering::Relaxed);
                            if let Some(at) = asked.pop_front() {
                                latencies.visitor_ai.push(at.elapsed().as_micros() as u32);
                            }
                        }
                        Author::Agent(_) => {
                            c.delivered.fetch_add(1, Ordering::Relaxed);
                            if let Some(l) = latency_of(&m.body, run.start) {
                                latencies.agent_visitor.push(l);
                            }
                        }
                        _ => {}
                    },
                    Some(ServerFrame::State { state, reason, .. }) => match state {
                        ConversationState::Waiting if args.mode == Mode::Ai => {
                            // Escalated (e.g. a repeated question): start afresh, so the AI
                            // keeps answering this visitor.
                            c.escalated.fetch_add(1, Ordering::Relaxed);
                            if reason == Some(nexus_shared::HandoffReason::EngineBusy) {
                                c.busy.fetch_add(1, Ordering::Relaxed);
                                if let Some(at) = asked.pop_front() {
                                    latencies.visitor_busy.push(at.elapsed().as_micros() as u32);
                                }
                            }
                            asked.clear();
                            conversation = None;
                            if !send(&mut ws, &ClientFrame::NewConversation).await { break; }
                        }
                        ConversationState::Human if args.mode == Mode::Human => {
                            c.human_ready.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {}
                    },
                    Some(ServerFrame::Error(e)) => {
                        c.errors.fetch_add(1, Ordering::Relaxed);
                        if e.code == nexus_shared::ErrorCode::RateLimited {
                            c.rate_limited.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {}
                }
            }
            changed = phase.changed() => {
                if changed.is_err() { break; }
                let now = *phase.borrow_and_update();
                match now {
                    Phase::Setup if args.mode == Mode::Human => {
                        let frame = ClientFrame::Send {
                            conversation_id: None,
                            client_msg_id: format!("v{index}-setup"),
                            body: "I want to talk to a human".into(),
                        };
                        if !send(&mut ws, &frame).await { break; }
                    }
                    Phase::Drive if args.mode != Mode::Idle => {
                        next_send = Some(tokio::time::Instant::now() + offset);
                    }
                    Phase::Drain => next_send = None,
                    Phase::Stop => break,
                    _ => {}
                }
            }
            () = wait => {
                n += 1;
                let body = match args.mode {
                    Mode::Ai => ai_question(index, n),
                    _ => stamp(run.start),
                };
                let frame = ClientFrame::Send {
                    conversation_id: conversation,
                    client_msg_id: format!("v{index}-{n}"),
                    body,
                };
                asked.push_back(Instant::now());
                unacked.push_back(Instant::now());
                if !send(&mut ws, &frame).await { break; }
                c.sent.fetch_add(1, Ordering::Relaxed);
                next_send = next_send.map(|at| at + interval);
            }
        }
    }
    // Keep the connection open until the run stops, so "held" means held to the end.
    while *phase.borrow() < Phase::Stop {
        if phase.changed().await.is_err() {
            break;
        }
    }
    let _ = ws.close(None).await;
    latencies
}

/// Logs agent `n` in: `--agent-email` with `{n}` replaced by `n` (one account per agent), or
/// the same account for every agent when it has no `{n}`.
async fn login(args: &Args, n: usize) -> anyhow::Result<String> {
    let (Some(email), Some(password)) = (&args.agent_email, &args.agent_password) else {
        bail!("--agents needs --agent-email and --agent-password (or NEXUS_LOAD_AGENT_PASSWORD)");
    };
    let email = email.replace("{n}", &n.to_string());
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/api/v1/auth/login", args.port))
        .json(&serde_json::json!({"site_key": args.site, "email": email, "password": password}))
        .send()
        .await?;
    let body: serde_json::Value = response.json().await?;
    body["token"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("login refused: {body}"))
}

/// `--mode analytics`: the period's analytics, asked for one request at a time.
async fn analytics(args: &Args) -> anyhow::Result<()> {
    let token = login(args, 0).await?;
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{}/api/v1/analytics", args.port);
    let mut times = Vec::new();
    let mut conversations = 0;
    for _ in 0..args.duration.max(1) {
        let started = Instant::now();
        let response = client.get(&url).bearer_auth(&token).send().await?;
        let status = response.status();
        let body: serde_json::Value = response.json().await?;
        if !status.is_success() {
            bail!("analytics refused ({status}): {body}");
        }
        times.push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
        conversations = body["conversations"].as_u64().unwrap_or(0);
    }
    println!(
        "analytics: last 30 days, {conversations} conversations, {} requests one after the other",
        times.len()
    );
    percentiles("analytics answer", times);
    Ok(())
}

/// One agent: takes over its share of waiting conversations, measures visitor→agent delivery,
/// and replies (at most `agent_rate` frames a second, under the server's limit).
async fn agent(
    run: Arc<Run>,
    index: usize,
    token: String,
    mut phase: watch::Receiver<Phase>,
) -> Latencies {
    let mut latencies = Latencies::default();
    let args = &run.args;
    let c = &run.counters;
    let source = 1 + (index % args.sources.max(1) as usize) as u8;
    let mut ws = match connect(args.port, source).await {
        Ok(mut ws) => match hello(
            &mut ws,
            Auth::Agent {
                session_token: token,
            },
        )
        .await
        {
            Ok(()) => ws,
            Err(e) => {
                eprintln!("agent {index}: {e:#}");
                c.connect_errors.fetch_add(1, Ordering::Relaxed);
                return latencies;
            }
        },
        Err(e) => {
            eprintln!("agent {index}: {e:#}");
            c.connect_errors.fetch_add(1, Ordering::Relaxed);
            return latencies;
        }
    };
    let agents = args.agents.max(1);
    let mut taken = std::collections::HashSet::new();
    let mut outbox: std::collections::VecDeque<ClientFrame> = Default::default();
    if args.inbox_page > 0 {
        for filter in [InboxFilter::Waiting, InboxFilter::Mine] {
            let ask = ClientFrame::Inbox {
                filter,
                limit: Some(args.inbox_page),
                after: None,
            };
            if !send(&mut ws, &ask).await {
                return latencies;
            }
        }
    }
    // Takes over a waiting conversation that is this agent's share.
    let mut consider = |s: &ConversationSummary, outbox: &mut std::collections::VecDeque<_>| {
        let mine = (s.id.as_u128() % agents as u128) as usize == index;
        if mine && s.state == ConversationState::Waiting && taken.insert(s.id) {
            outbox.push_front(ClientFrame::TakeOver {
                conversation_id: s.id,
            });
        }
    };
    let spacing = Duration::from_secs_f64(1.0 / args.agent_rate.max(0.1));
    let mut tick = tokio::time::interval(spacing);
    let mut n = 0usize;
    loop {
        tokio::select! {
            incoming = ws.next() => {
                let Some(Ok(message)) = incoming else { break };
                let frame = decode(message);
                if matches!(
                    frame,
                    Some(
                        ServerFrame::Conversation(_)
                            | ServerFrame::InboxLine { .. }
                            | ServerFrame::InboxLeave { .. }
                            | ServerFrame::InboxCounts(_)
                            | ServerFrame::InboxPage(_)
                    )
                ) && *phase.borrow() == Phase::Drive
                {
                    c.inbox_frames.fetch_add(1, Ordering::Relaxed);
                }
                match frame {
                    Some(ServerFrame::Conversation(s) | ServerFrame::InboxLine { line: s, .. }) => {
                        consider(&s, &mut outbox);
                    }
                    Some(ServerFrame::InboxPage(page)) => {
                        for s in &page.lines {
                            consider(s, &mut outbox);
                        }
                    }
                    Some(ServerFrame::Message(m)) if m.author == Author::Visitor => {
                        if let Some(l) = latency_of(&m.body, run.start) {
                            c.delivered.fetch_add(1, Ordering::Relaxed);
                            latencies.visitor_agent.push(l);
                            // Reply to as many as the frame budget allows; the rest wait.
                            if outbox.len() < 64 {
                                n += 1;
                                outbox.push_back(ClientFrame::Send {
                                    conversation_id: Some(m.conversation_id),
                                    client_msg_id: format!("a{index}-{n}"),
                                    body: String::new(),
                                });
                            }
                        }
                    }
                    Some(ServerFrame::State { state: ConversationState::Human, .. }) => {
                        c.takeovers.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(ServerFrame::Error(e)) => {
                        c.errors.fetch_add(1, Ordering::Relaxed);
                        if e.code == nexus_shared::ErrorCode::RateLimited {
                            c.rate_limited.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {}
                }
            }
            _ = tick.tick() => {
                let Some(mut frame) = outbox.pop_front() else { continue };
                if let ClientFrame::Send { body, .. } = &mut frame {
                    if *phase.borrow() != Phase::Drive { continue; }
                    *body = stamp(run.start);
                    c.agent_sent.fetch_add(1, Ordering::Relaxed);
                }
                if !send(&mut ws, &frame).await { break; }
            }
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow_and_update() == Phase::Stop { break; }
            }
        }
    }
    let _ = ws.close(None).await;
    latencies
}

fn percentiles(name: &str, mut values: Vec<u32>) {
    if values.is_empty() {
        println!("{name:<22} no samples");
        return;
    }
    values.sort_unstable();
    let at = |p: f64| {
        let i = ((values.len() as f64 - 1.0) * p).round() as usize;
        values[i] as f64 / 1000.0
    };
    println!(
        "{name:<22} n={:<8} p50={:>8.2} ms  p95={:>8.2} ms  p99={:>8.2} ms  max={:>8.2} ms",
        values.len(),
        at(0.50),
        at(0.95),
        at(0.99),
        at(1.0)
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.mode == Mode::Analytics {
        return analytics(&args).await;
    }
    if args.visitors == 0 && args.agents == 0 {
        bail!("nothing to do: --visitors and --agents are 0");
    }
    let nofile = raise_nofile();
    let needed = (args.visitors + args.agents) as u64 + 64;
    if nofile < needed {
        bail!("RLIMIT_NOFILE is {nofile}; {needed} file descriptors are needed");
    }
    let tokens = if args.agents > 0 {
        let mut tokens = Vec::new();
        for n in 0..args.agents {
            tokens.push(login(&args, n).await?);
        }
        tokens
    } else {
        Vec::new()
    };
    // After the logins: argon2 hashing grows the server's heap by itself.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss_kib(args.server_pid);
    let (phase_tx, phase_rx) = watch::channel(Phase::Connect);
    let run = Arc::new(Run {
        gate: Semaphore::new(args.concurrency.max(1)),
        args,
        start: Instant::now(),
        counters: Counters::default(),
    });
    let args = &run.args;
    println!(
        "nexus-load: {} visitors, {} agents, mode {:?}, {} msg/s for {} s, target 127.0.0.1:{}, \
         {} source addresses, RLIMIT_NOFILE {nofile}",
        args.visitors, args.agents, args.mode, args.rate, args.duration, args.port, args.sources
    );

    let mut tasks = Vec::new();
    for (i, token) in tokens.into_iter().enumerate() {
        tasks.push(tokio::spawn(agent(run.clone(), i, token, phase_rx.clone())));
    }
    let connecting = Instant::now();
    for i in 0..args.visitors {
        tasks.push(tokio::spawn(visitor(run.clone(), i, phase_rx.clone())));
    }
    let c = &run.counters;
    // Wait until every visitor is held or failed.
    loop {
        let done = c.held.load(Ordering::Relaxed) + c.connect_errors.load(Ordering::Relaxed);
        if done >= args.visitors as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connect_secs = connecting.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = rss_kib(args.server_pid);
    let held = c.held.load(Ordering::Relaxed);
    println!(
        "connections: {held} visitors held, {} connect errors, opened in {connect_secs:.1} s ({:.0}/s)",
        c.connect_errors.load(Ordering::Relaxed),
        held as f64 / connect_secs.max(0.001)
    );

    if args.mode == Mode::Human {
        let _ = phase_tx.send(Phase::Setup);
        let deadline = Instant::now() + Duration::from_secs(60);
        while c.human_ready.load(Ordering::Relaxed) < held && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        println!(
            "setup: {} of {held} conversations taken over by agents",
            c.human_ready.load(Ordering::Relaxed)
        );
    }
    let acked0 = c.acked.load(Ordering::Relaxed);
    let (sent0, delivered0, agent0) = (
        c.sent.load(Ordering::Relaxed),
        c.delivered.load(Ordering::Relaxed),
        c.agent_sent.load(Ordering::Relaxed),
    );
    let inbox0 = c.inbox_frames.load(Ordering::Relaxed);
    let driving = Instant::now();
    let cpu0 = cpu_pair(args.server_pid);
    let _ = phase_tx.send(Phase::Drive);
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    let drive_secs = driving.elapsed().as_secs_f64();
    let cpu1 = cpu_pair(args.server_pid);
    let _ = phase_tx.send(Phase::Drain);
    let sent = c.sent.load(Ordering::Relaxed) - sent0;
    let agent_sent = c.agent_sent.load(Ordering::Relaxed) - agent0;
    let inbox_frames = c.inbox_frames.load(Ordering::Relaxed) - inbox0;
    // Let what is in flight arrive, then stop.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let delivered = c.delivered.load(Ordering::Relaxed) - delivered0;
    let rss_after = rss_kib(args.server_pid);
    let _ = phase_tx.send(Phase::Stop);
    let mut all = Latencies::default();
    for task in tasks {
        if let Ok(l) = task.await {
            all.visitor_ack.extend(l.visitor_ack);
            all.visitor_ai.extend(l.visitor_ai);
            all.visitor_busy.extend(l.visitor_busy);
            all.visitor_agent.extend(l.visitor_agent);
            all.agent_visitor.extend(l.agent_visitor);
        }
    }

    println!(
        "traffic: {drive_secs:.1} s; visitor messages sent {sent} ({:.0}/s), acked {}, agent \
         messages sent {agent_sent} ({:.0}/s); delivered {delivered} ({:.0}/s); AI answers {} \
         ({:.0}/s), escalated {} ({} engine_busy), agent state frames {}, error frames {} ({} \
         rate_limited)",
        sent as f64 / drive_secs,
        c.acked.load(Ordering::Relaxed) - acked0,
        agent_sent as f64 / drive_secs,
        delivered as f64 / drive_secs,
        c.ai_answers.load(Ordering::Relaxed),
        c.ai_answers.load(Ordering::Relaxed) as f64 / drive_secs,
        c.escalated.load(Ordering::Relaxed),
        c.busy.load(Ordering::Relaxed),
        c.takeovers.load(Ordering::Relaxed),
        c.errors.load(Ordering::Relaxed),
        c.rate_limited.load(Ordering::Relaxed),
    );
    if args.agents > 0 {
        println!(
            "inbox: {inbox_frames} inbox frames to agents during the traffic ({:.0}/s, {})",
            inbox_frames as f64 / drive_secs,
            if args.inbox_page > 0 {
                format!("views of {} lines: waiting, mine", args.inbox_page)
            } else {
                "legacy inbox".to_owned()
            }
        );
    }
    let share = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.0}%", (b - a) / drive_secs * 100.0),
        _ => "not measured".to_owned(),
    };
    println!(
        "CPU during the traffic (100% = one core of {}): load tool {}, server {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        share(cpu0.0, cpu1.0),
        share(cpu0.1, cpu1.1),
    );
    percentiles("visitor -> ack", all.visitor_ack);
    percentiles("visitor -> AI answer", all.visitor_ai);
    percentiles("visitor -> busy handover", all.visitor_busy);
    percentiles("visitor -> agent", all.visitor_agent);
    percentiles("agent -> visitor", all.agent_visitor);
    match (rss_before, rss_idle, rss_after) {
        (Some(before), Some(idle), Some(after)) => {
            let per = (idle.saturating_sub(before) * 1024) / held.max(1);
            println!(
                "server RSS: before {before} KiB, {held} connections idle {idle} KiB, after \
                 traffic {after} KiB; {per} bytes per idle connection"
            );
        }
        _ => println!("server RSS: not measured (pass --server-pid)"),
    }
    Ok(())
}
