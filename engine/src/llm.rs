//! The optional LLM backend: any OpenAI-compatible `/v1/chat/completions` server (Ollama,
//! vLLM, llama.cpp's server, OpenAI), asked with `stream: true` and read as server-sent
//! events. Off unless `--llm-url` is given; the embedded engine still decides first (see
//! `conversation::visitor::respond` in the server): the LLM only phrases answers the engine and the
//! escalation policy let through, grounded on the knowledge-base entries the engine retrieved.

use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

/// An API key: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(pub String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::str::FromStr for ApiKey {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// Where and how to reach the LLM server.
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// The server's base URL (`http://127.0.0.1:11434/v1`), or the full
    /// `…/chat/completions` URL.
    pub url: String,
    pub model: String,
    pub api_key: Option<ApiKey>,
    /// The whole reply must arrive within this.
    pub timeout: Duration,
}

impl LlmConfig {
    /// The chat-completions endpoint: `…/chat/completions` is used as given; a base URL gets
    /// `/v1/chat/completions` (or `/chat/completions` when it already ends in `/v1`).
    pub fn endpoint(&self) -> String {
        let base = self.url.trim_end_matches('/');
        if base.ends_with("/chat/completions") {
            base.to_owned()
        } else if base.ends_with("/v1") {
            format!("{base}/chat/completions")
        } else {
            format!("{base}/v1/chat/completions")
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LlmError {
    #[error("the LLM did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the LLM server answered HTTP {0}")]
    Status(u16),
    #[error("could not reach the LLM server: {0}")]
    Http(String),
    #[error("malformed LLM reply: {0}")]
    Malformed(String),
    /// The caller stopped the stream (e.g. a person took the conversation over).
    #[error("stopped")]
    Stopped,
}

/// One chat message of the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    pub role: &'static str,
    pub content: String,
}

/// A client of an OpenAI-compatible server.
#[derive(Debug, Clone)]
pub struct LlmClient {
    config: LlmConfig,
    http: reqwest::Client,
}

impl LlmClient {
    pub fn new(config: LlmConfig) -> Self {
        Self {
            config,
            http: reqwest::Client::new(),
        }
    }

    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    /// Asks for a streamed completion. `on_progress` gets the text so far, at most once per
    /// `every`; returning false stops the stream ([`LlmError::Stopped`]). Returns the whole
    /// reply.
    pub async fn stream_chat<F, Fut>(
        &self,
        messages: &[ChatMessage],
        every: Duration,
        on_progress: F,
    ) -> Result<String, LlmError>
    where
        F: FnMut(String) -> Fut,
        Fut: Future<Output = bool>,
    {
        let timeout = self.config.timeout;
        tokio::time::timeout(timeout, self.stream_inner(messages, every, on_progress))
            .await
            .unwrap_or(Err(LlmError::Timeout(timeout)))
    }

    async fn stream_inner<F, Fut>(
        &self,
        messages: &[ChatMessage],
        every: Duration,
        mut on_progress: F,
    ) -> Result<String, LlmError>
    where
        F: FnMut(String) -> Fut,
        Fut: Future<Output = bool>,
    {
        let body = serde_json::json!({
            "model": self.config.model,
            "messages": messages,
            "stream": true,
        });
        let mut request = self.http.post(self.config.endpoint()).json(&body);
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(&key.0);
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| LlmError::Http(e.without_url().to_string()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(LlmError::Status(status.as_u16()));
        }
        let event_stream = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v.starts_with("text/event-stream"));
        if !event_stream {
            // A server that ignores `stream: true` answers with one JSON completion.
            let bytes = response
                .bytes()
                .await
                .map_err(|e| LlmError::Http(e.without_url().to_string()))?;
            let value: Value = serde_json::from_slice(&bytes)
                .map_err(|e| LlmError::Malformed(format!("not JSON: {e}")))?;
            let text = value
                .pointer("/choices/0/message/content")
                .and_then(Value::as_str)
                .ok_or_else(|| LlmError::Malformed("no choices[0].message.content".into()))?;
            return non_empty(text.to_owned());
        }
        let mut parser = SseParser::default();
        let mut text = String::new();
        let mut last_sent = tokio::time::Instant::now();
        let mut sent_len = 0;
        loop {
            let chunk = response
                .chunk()
                .await
                .map_err(|e| LlmError::Http(e.without_url().to_string()))?;
            let Some(chunk) = chunk else {
                break;
            };
            for event in parser.push(&chunk)? {
                match event {
                    SseEvent::Delta(delta) => text.push_str(&delta),
                    SseEvent::Done => return non_empty(text),
                }
            }
            if text.len() > sent_len && last_sent.elapsed() >= every {
                if !on_progress(text.clone()).await {
                    return Err(LlmError::Stopped);
                }
                sent_len = text.len();
                last_sent = tokio::time::Instant::now();
            }
        }
        if parser.saw_data {
            // Some servers close the stream without `[DONE]`.
            non_empty(text)
        } else {
            Err(LlmError::Malformed("no server-sent events".into()))
        }
    }
}

fn non_empty(text: String) -> Result<String, LlmError> {
    if text.trim().is_empty() {
        Err(LlmError::Malformed("an empty reply".into()))
    } else {
        Ok(text)
    }
}

#[derive(Debug, PartialEq, Eq)]
enum SseEvent {
    Delta(String),
    Done,
}

/// Splits a byte stream into server-sent events and reads their `data:` lines as
/// chat-completion chunks.
#[derive(Debug, Default)]
struct SseParser {
    buffer: Vec<u8>,
    saw_data: bool,
}

/// The longest line accepted (a chunk of a reply is small).
const MAX_LINE: usize = 1 << 20;

impl SseParser {
    fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, LlmError> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            let line = std::str::from_utf8(&line)
                .map_err(|_| LlmError::Malformed("an event is not UTF-8".into()))?
                .trim_end_matches(['\r', '\n']);
            let Some(data) = line.strip_prefix("data:") else {
                // Comments (`:`), `event:`, `id:`, blank separators.
                continue;
            };
            self.saw_data = true;
            let data = data.trim();
            if data == "[DONE]" {
                events.push(SseEvent::Done);
                continue;
            }
            let value: Value = serde_json::from_str(data)
                .map_err(|e| LlmError::Malformed(format!("an event is not JSON: {e}")))?;
            if let Some(message) = value.pointer("/error/message").and_then(Value::as_str) {
                return Err(LlmError::Malformed(format!(
                    "the server reported {message:?}"
                )));
            }
            let choice = value
                .pointer("/choices/0")
                .ok_or_else(|| LlmError::Malformed("an event without choices".into()))?;
            if let Some(delta) = choice.pointer("/delta/content").and_then(Value::as_str) {
                events.push(SseEvent::Delta(delta.to_owned()));
            }
        }
        if self.buffer.len() > MAX_LINE {
            return Err(LlmError::Malformed("an event line is too long".into()));
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_accept_a_base_or_a_full_url() {
        let config = |url: &str| LlmConfig {
            url: url.into(),
            model: "m".into(),
            api_key: Some(ApiKey("sk-secret".into())),
            timeout: Duration::from_secs(1),
        };
        assert_eq!(
            config("http://127.0.0.1:11434").endpoint(),
            "http://127.0.0.1:11434/v1/chat/completions"
        );
        assert_eq!(
            config("http://h/v1/").endpoint(),
            "http://h/v1/chat/completions"
        );
        assert_eq!(
            config("http://h/openai/chat/completions").endpoint(),
            "http://h/openai/chat/completions"
        );
        assert!(!format!("{:?}", config("http://h")).contains("sk-secret"));
    }

    #[test]
    fn events_split_across_chunks_are_joined() {
        let mut parser = SseParser::default();
        let mut events = parser
            .push(b": keep-alive\n\ndata: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\ndata: {\"choi")
            .unwrap();
        events.extend(
            parser
                .push(b"ces\":[{\"delta\":{\"content\":\"Hal\"}}]}\r\n\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\ndata: [DONE]\n\n")
                .unwrap(),
        );
        assert_eq!(
            events,
            vec![
                SseEvent::Delta("Hal".into()),
                SseEvent::Delta("lo".into()),
                SseEvent::Done
            ]
        );
    }

    #[test]
    fn malformed_events_are_errors() {
        for bad in [
            &b"data: {not json\n"[..],
            b"data: {\"object\": \"chat.completion.chunk\"}\n",
            b"data: {\"error\": {\"message\": \"model not found\"}}\n",
        ] {
            assert!(
                matches!(SseParser::default().push(bad), Err(LlmError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
