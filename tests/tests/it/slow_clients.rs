//! Slow and greedy clients on plain TCP against the real server (slowloris): half a request
//! line, headers trickled in, an idle keep-alive connection are all closed after the header
//! timeout; a body that trickles in is answered 408 `request_timeout` at the body timeout; past
//! the per-address cap a new connection from that address is refused with 429
//! while another address still gets in. The timeout is set short here; the tests wait for the
//! close, they do not measure it.

use std::net::SocketAddr;
use std::time::Duration;

use nexus_tests::{TestServer, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A raw TCP connection to `server` from the local address `from` (any port).
async fn connect_from(from: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(server).await.expect("connect")
}

/// Reads until the server closes the connection; what it sent before closing. Panics if it
/// stays open for [`WAIT`].
async fn until_closed(tcp: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let read = tokio::time::timeout(WAIT, async {
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server kept the connection open");
    String::from_utf8_lossy(&got).into_owned()
}

/// Whether the server is still holding `tcp` open (nothing to read, no close) after a moment.
async fn still_open(tcp: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1];
    tokio::time::timeout(Duration::from_millis(200), tcp.read(&mut buf))
        .await
        .is_err()
}

const HEALTH: &[u8] = b"GET /api/v1/health HTTP/1.1\r\nhost: x\r\n\r\n";

#[tokio::test]
async fn half_requests_trickled_headers_and_idle_connections_are_closed() {
    let (server, _dir) = TestServer::scratch().await;
    server
        .state
        .connections
        .set_header_timeout(Duration::from_millis(500));

    // Half a request line, then nothing.
    let mut half = connect_from("127.0.0.1", server.addr).await;
    half.write_all(b"GET /api/v1/hea").await.unwrap();
    until_closed(&mut half).await;

    // A request line, then one header every 100 ms, never the blank line.
    let mut trickle = connect_from("127.0.0.1", server.addr).await;
    trickle
        .write_all(b"GET /api/v1/health HTTP/1.1\r\n")
        .await
        .unwrap();
    let trickling = tokio::time::timeout(WAIT, async {
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if trickle
                .write_all(format!("x-slow-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
            if !still_open(&mut trickle).await {
                break;
            }
        }
    })
    .await;
    assert!(trickling.is_ok(), "a client trickling headers is closed");

    // A whole request is answered; the connection is then closed once idle.
    let mut idle = connect_from("127.0.0.1", server.addr).await;
    idle.write_all(HEALTH).await.unwrap();
    let answer = until_closed(&mut idle).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn past_the_per_address_cap_that_address_is_refused_and_another_gets_in() {
    let (server, _dir) = TestServer::scratch().await;
    server.state.connections.set_per_tcp(5);

    // Five connections that send nothing hold the address's slots ...
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(connect_from("127.0.0.1", server.addr).await);
    }
    for tcp in &mut held {
        assert!(still_open(tcp).await, "connections under the cap stay open");
    }

    // ... so a sixth from the same address is refused with a JSON error and closed,
    let mut sixth = connect_from("127.0.0.1", server.addr).await;
    let refused = until_closed(&mut sixth).await;
    assert!(refused.starts_with("HTTP/1.1 429"), "{refused}");
    assert!(
        refused.contains(r#""code":"too_many_connections""#),
        "{refused}"
    );

    // while another address is served as usual.
    let mut other = connect_from("127.0.0.2", server.addr).await;
    other.write_all(HEALTH).await.unwrap();
    let mut buf = [0u8; 12];
    other.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");

    // A slot given back lets the address in again.
    drop(held.pop());
    tokio::time::timeout(WAIT, async {
        loop {
            let mut tcp = connect_from("127.0.0.1", server.addr).await;
            tcp.write_all(HEALTH).await.unwrap();
            let mut buf = [0u8; 12];
            if tcp.read_exact(&mut buf).await.is_ok() && &buf == b"HTTP/1.1 200" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a freed slot is usable");
}

#[tokio::test]
async fn a_body_that_trickles_in_is_cut_off_with_request_timeout() {
    let (server, _dir) = TestServer::scratch().await;
    // The header timeout is long, so only the body timeout can end the request.
    server
        .state
        .connections
        .set_header_timeout(Duration::from_secs(60));
    server
        .state
        .connections
        .set_body_timeout(Duration::from_millis(500));

    // Whole headers promising 4,000 bytes of body, then one byte every 100 ms.
    let mut slow = connect_from("127.0.0.1", server.addr).await;
    slow.write_all(
        b"POST /api/v1/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 4000\r\n\r\n{",
    )
    .await
    .unwrap();
    let (mut read, mut write) = slow.into_split();
    let trickle = tokio::spawn(async move {
        for _ in 0..400 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if write.write_all(b" ").await.is_err() {
                break;
            }
        }
    });
    let mut got = Vec::new();
    let read_all = tokio::time::timeout(WAIT, async {
        let mut buf = [0u8; 4096];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    trickle.abort();
    let answer = String::from_utf8_lossy(&got);
    assert!(
        read_all.is_ok(),
        "the server kept the trickling request open: {answer}"
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");

    // A request whose body arrives at once is answered as usual on a new connection.
    let mut quick = connect_from("127.0.0.1", server.addr).await;
    let body = r#"{"site_key":"nope","email":"a@b.c","password":"x"}"#;
    quick
        .write_all(
            format!(
                "POST /api/v1/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let answer = until_closed(&mut quick).await;
    assert!(!answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":""#), "{answer}");
}
