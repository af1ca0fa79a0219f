//! Encode and decode of every frame family of the wire protocol (`serde_json`, as the server
//! and the widget do it). Prints figures; asserts nothing about time.
//!
//! `cargo bench -p nexus-shared --bench protocol`
//!
//! The frames are written as the JSON on the wire and decoded once up front, so the bench
//! follows the protocol as it grows (new optional fields default).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use nexus_shared::{ClientFrame, ServerFrame};
use serde::Serialize;
use serde::de::DeserializeOwned;

const CONV: &str = "6f1c7a52-3b1d-4c8e-9a55-0f7e2d9c1b01";
const MSG: &str = "0b6d1e2f-8c3a-4f5b-9d7e-1a2b3c4d5e6f";
const AGENT: &str = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d";

fn message(seq: u64, author: &str) -> String {
    let author = match author {
        "agent" => format!(r#"{{"kind":"agent","id":"{AGENT}","name":"Ana"}}"#),
        other => format!(r#"{{"kind":"{other}"}}"#),
    };
    format!(
        r#"{{"id":"{MSG}","conversation_id":"{CONV}","seq":{seq},"client_msg_id":"c-{seq}",
        "author":{author},"body":"How long does shipping to Germany take? I ordered on Monday and
        nothing arrived yet.","created_at":1764000000000}}"#
    )
}

fn ai_message(seq: u64) -> String {
    format!(
        r#"{{"id":"{MSG}","conversation_id":"{CONV}","seq":{seq},"author":{{"kind":"ai"}},
        "body":"Orders to Germany arrive in 2-4 working days. You get a tracking link by email as
        soon as the parcel leaves our warehouse.","created_at":1764000000000,
        "sources":[{{"entry_id":"shipping-times","title":"Shipping times"}}],"confidence":0.91}}"#
    )
}

fn server_frames() -> Vec<(&'static str, String)> {
    let history: Vec<String> = (1..=50)
        .map(|s| {
            if s % 2 == 0 {
                ai_message(s)
            } else {
                message(s, "visitor")
            }
        })
        .collect();
    vec![
        (
            "welcome",
            format!(
                r#"{{"type":"welcome","data":{{"protocol_version":1,"session":{{"kind":"visitor",
                "visitor_token":"vt_0123456789abcdef0123456789abcdef"}},"site":{{"name":"Shop",
                "assistant_name":"Assistant","greeting":"Hi!","color":"rgb(59,91,219)","autonomy":"auto",
                "agents_online":3}},"conversation":{{"id":"{CONV}","state":"ai","last_seq":20,
                "messages":[{}]}}}}}}"#,
                history[..20].join(",")
            ),
        ),
        (
            "message_visitor",
            format!(r#"{{"type":"message","data":{}}}"#, message(7, "visitor")),
        ),
        (
            "message_ai",
            format!(r#"{{"type":"message","data":{}}}"#, ai_message(8)),
        ),
        (
            "message_agent",
            format!(r#"{{"type":"message","data":{}}}"#, message(9, "agent")),
        ),
        (
            "ack",
            format!(
                r#"{{"type":"ack","data":{{"client_msg_id":"c-7","conversation_id":"{CONV}",
                "message_id":"{MSG}","seq":7,"duplicate":false}}}}"#
            ),
        ),
        (
            "history_50",
            format!(
                r#"{{"type":"history","data":{{"conversation_id":"{CONV}","messages":[{}],
                "has_more":false}}}}"#,
                history.join(",")
            ),
        ),
        (
            "state",
            format!(
                r#"{{"type":"state","data":{{"conversation_id":"{CONV}","state":"human",
                "assignee":{{"id":"{AGENT}","name":"Ana"}}}}}}"#
            ),
        ),
        (
            "typing",
            format!(
                r#"{{"type":"typing","data":{{"conversation_id":"{CONV}","author":{{"kind":"ai"}},
                "typing":true}}}}"#
            ),
        ),
        (
            "conversation_summary",
            format!(
                r#"{{"type":"conversation","data":{{"id":"{CONV}","state":"waiting",
                "handoff_reason":{{"reason":"sensitive","category":"legal"}},"last_seq":12,
                "preview":"I want to speak to a lawyer","created_at":1764000000000,
                "updated_at":1764000001000,"waiting_since":1764000001000,
                "visitor":{{"name":"Grace","email":"grace@example.com","locale":"en"}}}}}}"#
            ),
        ),
        (
            "draft",
            format!(
                r#"{{"type":"draft","data":{{"id":"{MSG}","conversation_id":"{CONV}",
                "reply_to_seq":3,"body":"Refunds take 5-7 days.","sources":[{{"entry_id":"refunds",
                "title":"Refunds"}}],"confidence":0.8,"created_at":1764000000000}}}}"#
            ),
        ),
        (
            "error",
            r#"{"type":"error","data":{"code":"rate_limited","message":"Too many frames; slow down."}}"#
                .to_owned(),
        ),
        ("pong", r#"{"type":"pong"}"#.to_owned()),
    ]
}

fn client_frames() -> Vec<(&'static str, String)> {
    vec![
        (
            "hello_visitor",
            r#"{"type":"hello","data":{"protocol_version":1,"auth":{"role":"visitor",
            "site_key":"demo","visitor_token":"vt_0123456789abcdef0123456789abcdef",
            "page_url":"https://shop.example/checkout","locale":"en"}}}"#
                .to_owned(),
        ),
        (
            "send",
            r#"{"type":"send","data":{"client_msg_id":"c-7","body":"How long does shipping to
            Germany take?"}}"#
                .to_owned(),
        ),
        (
            "resume",
            format!(r#"{{"type":"resume","data":{{"conversation_id":"{CONV}","after_seq":12}}}}"#),
        ),
        (
            "take_over",
            format!(r#"{{"type":"take_over","data":{{"conversation_id":"{CONV}"}}}}"#),
        ),
        (
            "review_draft",
            format!(
                r#"{{"type":"review_draft","data":{{"conversation_id":"{CONV}","draft_id":"{MSG}",
                "decision":"edit","body":"Refunds take 5 to 7 working days."}}}}"#
            ),
        ),
        (
            "csat",
            format!(r#"{{"type":"csat","data":{{"conversation_id":"{CONV}","score":5}}}}"#),
        ),
        ("ping", r#"{"type":"ping"}"#.to_owned()),
    ]
}

fn bench_family<T: Serialize + DeserializeOwned>(
    c: &mut Criterion,
    family: &str,
    frames: Vec<(&'static str, String)>,
) {
    let mut encode = c.benchmark_group(format!("{family}/encode"));
    let decoded: Vec<(&str, T, String)> = frames
        .into_iter()
        .map(|(name, json)| {
            // The sources above wrap long lines; on the wire a frame is one line.
            let json = json.lines().map(str::trim).collect::<Vec<_>>().join(" ");
            let frame: T = serde_json::from_str(&json)
                .unwrap_or_else(|e| panic!("{family} {name} does not decode: {e}\n{json}"));
            let wire = serde_json::to_string(&frame).expect("encodes");
            (name, frame, wire)
        })
        .collect();
    for (name, frame, wire) in &decoded {
        encode.throughput(Throughput::Bytes(wire.len() as u64));
        encode.bench_with_input(BenchmarkId::from_parameter(name), frame, |b, f| {
            b.iter(|| serde_json::to_string(black_box(f)).expect("encodes"));
        });
    }
    encode.finish();
    let mut decode = c.benchmark_group(format!("{family}/decode"));
    for (name, _, wire) in &decoded {
        decode.throughput(Throughput::Bytes(wire.len() as u64));
        decode.bench_with_input(BenchmarkId::from_parameter(name), wire, |b, w| {
            b.iter(|| serde_json::from_str::<T>(black_box(w)).expect("decodes"));
        });
    }
    decode.finish();
}

fn protocol(c: &mut Criterion) {
    bench_family::<ServerFrame>(c, "server_frame", server_frames());
    bench_family::<ClientFrame>(c, "client_frame", client_frames());
}

criterion_group!(benches, protocol);
criterion_main!(benches);
