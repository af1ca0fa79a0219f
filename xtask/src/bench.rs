//! `cargo xtask bench`: every target of the performance table on the machine at hand.
//!
//! For each backend (SQLite, then PostgreSQL at 127.0.0.1:5432): a fresh database, filled
//! with `nexus-flow fill` (a lived-in site), the release server started on it, then
//! `nexus-load` runs one after the other: human traffic again and again, each run leaving its
//! conversations open, so the open set grows between runs; the analytics of the last 30 days;
//! AI questions; idle connections. It prints each run's figures as they come and, at the end,
//! the table with the CPU, its flags and the load average. The defaults are scaled to a
//! 2-core machine; the flags scale them up to the figures.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{Workspace, cargo, check, describe};

const USAGE: &str = "\
usage: cargo xtask bench [options]
  --backends sqlite,postgres   which stores (default both; PostgreSQL at 127.0.0.1:5432)
  --fill-conversations N       lived-in database: conversations (default 100000)
  --fill-messages M            lived-in database: entries (default 5000000)
  --visitors N --agents M      human traffic (default 1000 visitors, 40 agents)
  --rate R --duration S        human traffic: visitor messages/s and seconds (default 5000, 15)
  --runs K                     human runs in a row, each leaving its conversations open (3)
  --ai-visitors N --ai-rate R  AI questions (default 2000 visitors, 500/s, --duration s)
  --idle N                     idle connections held for the memory figure (default 10000)
  --port P                     the server's port on 127.0.0.1 (default 18090)
";

struct Options {
    backends: Vec<String>,
    fill_conversations: u64,
    fill_messages: u64,
    visitors: u64,
    agents: u64,
    rate: u64,
    duration: u64,
    runs: u64,
    ai_visitors: u64,
    ai_rate: u64,
    idle: u64,
    port: u16,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self> {
        let mut o = Self {
            backends: vec!["sqlite".into(), "postgres".into()],
            fill_conversations: 100_000,
            fill_messages: 5_000_000,
            visitors: 1_000,
            agents: 40,
            rate: 5_000,
            duration: 15,
            runs: 3,
            ai_visitors: 2_000,
            ai_rate: 500,
            idle: 10_000,
            port: 18_090,
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            if flag == "-h" || flag == "--help" {
                print!("{USAGE}");
                std::process::exit(0);
            }
            let value = it
                .next()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
            let n = || -> Result<u64> {
                value
                    .parse()
                    .with_context(|| format!("{flag} {value}: not a number"))
            };
            match flag.as_str() {
                "--backends" => o.backends = value.split(',').map(str::to_owned).collect(),
                "--fill-conversations" => o.fill_conversations = n()?,
                "--fill-messages" => o.fill_messages = n()?,
                "--visitors" => o.visitors = n()?,
                "--agents" => o.agents = n()?,
                "--rate" => o.rate = n()?,
                "--duration" => o.duration = n()?,
                "--runs" => o.runs = n()?,
                "--ai-visitors" => o.ai_visitors = n()?,
                "--ai-rate" => o.ai_rate = n()?,
                "--idle" => o.idle = n()?,
                "--port" => o.port = u16::try_from(n()?).context("--port")?,
                other => bail!("unknown option {other}\n{USAGE}"),
            }
        }
        for b in &o.backends {
            if b != "sqlite" && b != "postgres" {
                bail!("unknown backend {b} (sqlite, postgres)");
            }
        }
        Ok(o)
    }
}

/// One line of the final table.
struct Row {
    target: String,
    backend: String,
    run: String,
    figure: String,
}

/// One account per agent (`nexus-load` puts the agent's number in for `{n}`): an agent's
/// `mine` view is their own conversations, as on a real team.
const AGENT_EMAIL: &str = "bench-agent{n}@demo.test";
const OWNER_EMAIL: &str = "bench-owner@demo.test";
const PASSWORD: &str = "bench password 123";
const PG_DATABASE: &str = "nexus_bench";

pub(crate) fn run(ws: &Workspace, args: &[String]) -> Result<()> {
    let o = Options::parse(args)?;
    let mut build = cargo();
    build.current_dir(&ws.root).args([
        "build",
        "--release",
        "-p",
        "nexus-server",
        "-p",
        "nexus-load",
    ]);
    check(&mut build)?;
    let bin = ws.target_dir.join("release");
    let dir = ws.target_dir.join("bench");
    std::fs::create_dir_all(&dir)?;
    let machine = machine();
    println!("{machine}");
    let mut rows = Vec::new();
    for backend in &o.backends {
        bench_backend(ws, &o, &bin, &dir, backend, &mut rows)?;
    }
    println!();
    println!("## cargo xtask bench");
    println!();
    println!("{machine}");
    println!("load average at the end: {}", load_average());
    println!();
    println!("| target | backend | run | figure |");
    println!("|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} |",
            r.target, r.backend, r.run, r.figure
        );
    }
    Ok(())
}

fn bench_backend(
    ws: &Workspace,
    o: &Options,
    bin: &Path,
    dir: &Path,
    backend: &str,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let url = match backend {
        "sqlite" => {
            let db = dir.join("bench.db");
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
            }
            format!("sqlite://{}", db.display())
        }
        _ => {
            psql("test", &format!("DROP DATABASE IF EXISTS {PG_DATABASE}"))?;
            psql("test", &format!("CREATE DATABASE {PG_DATABASE}"))?;
            format!("postgres://postgres@127.0.0.1:5432/{PG_DATABASE}")
        }
    };
    let row = |target: &str, run: String, figure: String| Row {
        target: target.to_owned(),
        backend: backend.to_owned(),
        run,
        figure,
    };
    println!(
        "\n### {backend}: filling the database (load average {})",
        load_average()
    );
    let started = Instant::now();
    let out = capture(
        Command::new(bin.join("nexus-flow"))
            .args(["fill", "--database", &url])
            .args(["--conversations", &o.fill_conversations.to_string()])
            .args(["--messages", &o.fill_messages.to_string()])
            .env("NEXUS_FLOW_LOG", "warn"),
    )?;
    let seconds = started.elapsed().as_secs_f64();
    let size = db_size(backend, dir)?;
    rows.push(row(
        "lived-in database",
        format!(
            "`nexus-flow fill --conversations {} --messages {}`",
            o.fill_conversations, o.fill_messages
        ),
        format!(
            "{}; {seconds:.0} s in all; database {:.0} MB",
            out.lines().last().unwrap_or("").trim(),
            size as f64 / 1e6
        ),
    ));
    let accounts = (0..o.agents)
        .map(|n| (AGENT_EMAIL.replace("{n}", &n.to_string()), "agent"))
        .chain([(OWNER_EMAIL.to_owned(), "owner")]);
    for (email, role) in accounts {
        let email = email.as_str();
        let mut add = Command::new(bin.join("nexus-flow"));
        add.args(["user", "add", "--database", &url, "--site", "demo"])
            .args(["--email", email, "--role", role])
            .env("NEXUS_FLOW_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::null());
        let mut child = add.spawn().with_context(|| describe(&add))?;
        if let Some(mut stdin) = child.stdin.take() {
            writeln!(stdin, "{PASSWORD}")?;
        }
        if !child.wait()?.success() {
            bail!("{} failed", describe(&add));
        }
    }
    let mut server = Server::start(ws, bin, &url, o.port)?;
    let pid = server.pid().to_string();
    let load = |extra: &[String]| -> Result<String> {
        let mut cmd = Command::new(bin.join("nexus-load"));
        cmd.args(["--port", &o.port.to_string(), "--server-pid", &pid])
            .args(extra)
            .env("NEXUS_LOAD_AGENT_PASSWORD", PASSWORD);
        capture(&mut cmd)
    };
    let s = |v: &dyn ToString| v.to_string();
    for run in 0..o.runs {
        let open = run * o.visitors;
        let l = load_average();
        let out = load(&[
            s(&"--visitors"),
            s(&o.visitors),
            s(&"--agents"),
            s(&o.agents),
            s(&"--agent-email"),
            s(&AGENT_EMAIL),
            s(&"--mode"),
            s(&"human"),
            s(&"--rate"),
            s(&o.rate),
            s(&"--duration"),
            s(&o.duration),
        ])?;
        rows.push(row(
            "human traffic: visitor→agent p99 ≤ 50 ms",
            format!(
                "{} visitors, {} agents, {} msg/s for {} s; {open} conversations open at the start (load avg {l})",
                o.visitors, o.agents, o.rate, o.duration
            ),
            format!(
                "visitor→agent {}; {}; server CPU {}",
                figure(&out, "visitor -> agent"),
                acked(&out),
                server_cpu(&out)
            ),
        ));
    }
    let out = load(&[
        s(&"--mode"),
        s(&"analytics"),
        s(&"--agent-email"),
        s(&OWNER_EMAIL),
        s(&"--duration"),
        s(&5),
    ])?;
    rows.push(row(
        "analytics of 30 days < 1 s",
        "`GET /api/v1/analytics`, 5 requests".into(),
        format!(
            "{}; {}",
            line_with(&out, "analytics:")
                .trim_start_matches("analytics: ")
                .to_owned(),
            figure(&out, "analytics answer")
        ),
    ));
    let l = load_average();
    let out = load(&[
        s(&"--visitors"),
        s(&o.ai_visitors),
        s(&"--mode"),
        s(&"ai"),
        s(&"--rate"),
        s(&o.ai_rate),
        s(&"--duration"),
        s(&o.duration),
    ])?;
    rows.push(row(
        "AI: ≥ 500 answers/s at visitor→AI p99 ≤ 150 ms",
        format!(
            "{} visitors, {} questions/s for {} s (load avg {l})",
            o.ai_visitors, o.ai_rate, o.duration
        ),
        format!(
            "visitor→AI {}; {}; server CPU {}",
            figure(&out, "visitor -> AI answer"),
            answered(&out),
            server_cpu(&out)
        ),
    ));
    let out = load(&[
        s(&"--visitors"),
        s(&o.idle),
        s(&"--mode"),
        s(&"idle"),
        s(&"--duration"),
        s(&5),
        s(&"--sources"),
        s(&8),
        s(&"--concurrency"),
        s(&512),
    ])?;
    rows.push(row(
        "idle connections ≤ 6 KB each",
        format!("{} idle visitor connections", o.idle),
        format!(
            "{}; {}",
            line_with(&out, "connections:").trim_start_matches("connections: "),
            line_with(&out, "server RSS:")
                .rsplit("; ")
                .next()
                .unwrap_or("")
        ),
    ));
    server.stop();
    Ok(())
}

/// The server under test, stopped when dropped.
struct Server(Child);

impl Server {
    fn start(ws: &Workspace, bin: &Path, url: &str, port: u16) -> Result<Self> {
        let mut cmd = Command::new(bin.join("nexus-flow"));
        cmd.args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .args(["--database", url])
            .arg("--widget-dir")
            .arg(ws.dist_dir())
            .args(["--max-connections-per-ip", "1000000"])
            .args(["--max-connections-per-site", "1000000"])
            .env("NEXUS_FLOW_LOG", "warn");
        if let Some(model) = crate::setup::model_dir() {
            cmd.env("NEXUS_FLOW_MODEL_DIR", model);
        }
        let child = cmd.spawn().with_context(|| describe(&cmd))?;
        let server = Self(child);
        let deadline = Instant::now() + Duration::from_secs(120);
        while !healthy(port) {
            if Instant::now() > deadline {
                bail!("the server did not answer /api/v1/health within 120 s");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Ok(server)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            self.stop();
        }
    }
}

fn healthy(port: u16) -> bool {
    let Ok(mut tcp) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(2)));
    if tcp
        .write_all(b"GET /api/v1/health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    tcp.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}

/// Runs `cmd`, echoes its output, returns its stdout; an error when it fails.
fn capture(cmd: &mut Command) -> Result<String> {
    println!("$ {}", describe(cmd));
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| describe(cmd))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{text}");
    if !out.status.success() {
        bail!("{} failed ({})", describe(cmd), out.status);
    }
    Ok(text)
}

fn psql(database: &str, sql: &str) -> Result<()> {
    check(
        Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                database,
                "-q",
                "-c",
                sql,
            ])
            .stdout(Stdio::null()),
    )
}

fn db_size(backend: &str, dir: &Path) -> Result<u64> {
    if backend == "sqlite" {
        let db: PathBuf = dir.join("bench.db");
        return Ok(["", "-wal"]
            .iter()
            .filter_map(|s| std::fs::metadata(format!("{}{s}", db.display())).ok())
            .map(|m| m.len())
            .sum());
    }
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "test",
            "-tA",
            "-c",
        ])
        .arg(format!("SELECT pg_database_size('{PG_DATABASE}')"))
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0))
}

fn line_with<'a>(out: &'a str, start: &str) -> &'a str {
    out.lines()
        .find(|l| l.trim_start().starts_with(start))
        .unwrap_or("")
        .trim()
}

/// `p50 … / p99 … (n=…)` from a `nexus-load` percentile line.
fn figure(out: &str, name: &str) -> String {
    let line = line_with(out, name);
    if line.is_empty() || line.ends_with("no samples") {
        return "no samples".into();
    }
    let field = |key: &str| {
        line.split(key)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or("?")
            .to_owned()
    };
    format!(
        "p50 {} ms, p99 {} ms (n={})",
        field("p50="),
        field("p99="),
        field("n=")
    )
}

fn acked(out: &str) -> String {
    let line = line_with(out, "traffic:");
    let sent = between(line, "visitor messages sent ", " ");
    let acked = between(line, "acked ", ",");
    format!("{acked} of {sent} acked")
}

fn answered(out: &str) -> String {
    let line = line_with(out, "traffic:");
    let sent = between(line, "visitor messages sent ", " ");
    let answers = between(line, "AI answers ", ",");
    format!("{answers} of {sent} answered in the run")
}

fn server_cpu(out: &str) -> String {
    line_with(out, "CPU during")
        .rsplit("server ")
        .next()
        .unwrap_or("?")
        .to_owned()
}

fn between<'a>(line: &'a str, after: &str, until: &str) -> &'a str {
    line.split(after)
        .nth(1)
        .and_then(|rest| rest.split(until).next())
        .unwrap_or("?")
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The CPU model, its core count and the SIMD flags that decide the model's kernels.
fn machine() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_owned();
    let flags: Vec<&str> = info
        .lines()
        .find(|l| l.starts_with("flags"))
        .map(|l| {
            ["avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni"]
                .into_iter()
                .filter(|f| l.split_whitespace().any(|x| x == *f))
                .collect()
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "machine: {model}, {cores} cores; CPU flags: {}; load average at the start: {}",
        flags.join(" "),
        load_average()
    )
}
