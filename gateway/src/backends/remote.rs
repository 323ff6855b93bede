//! A remote OpenAI-compatible upstream (vLLM, llama.cpp server, a hosted API, another Gatehouse).

use futures::StreamExt;
use serde_json::{json, Value};

use super::sse::SseParser;
use super::{BackendError, BackendStream};
use crate::config::RemoteModelConfig;
use crate::domain::{ChatEvent, ChatRequest, FinishReason, Usage};
use crate::openai::{ChatCompletion, ChatCompletionChunk};

/// Client for one upstream model.
pub struct RemoteBackend {
    client: reqwest::Client,
    /// `{base_url}/chat/completions`, parsed once rather than (IDNA included) on every call.
    endpoint: reqwest::Url,
    cfg: RemoteModelConfig,
}

fn finish_reason(s: Option<&str>) -> FinishReason {
    match s {
        Some("length") => FinishReason::Length,
        _ => FinishReason::Stop,
    }
}

impl RemoteBackend {
    /// A client with the configured timeout and connection pooling.
    pub fn new(cfg: RemoteModelConfig) -> Result<Self, BackendError> {
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .pool_idle_timeout(std::time::Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| BackendError::Unreachable(e.to_string()))?;
        let endpoint = reqwest::Url::parse(&format!("{}/chat/completions", cfg.base_url))
            .map_err(|e| BackendError::Unreachable(format!("{}: {e}", cfg.base_url)))?;
        Ok(Self {
            client,
            endpoint,
            cfg,
        })
    }

    fn body(&self, req: &ChatRequest) -> Value {
        let s = &req.sampling;
        let messages: Vec<Value> = req
            .messages
            .iter()
            .map(|m| json!({"role": m.role.as_str(), "content": m.content}))
            .collect();
        let mut body =
            json!({ "model": self.cfg.upstream_model, "messages": messages, "stream": req.stream });
        let obj = body.as_object_mut().expect("literal object");
        let mut set = |k: &str, v: Value| {
            obj.insert(k.to_string(), v);
        };
        if let Some(t) = s.temperature {
            set("temperature", json!(t));
        }
        if let Some(p) = s.top_p {
            set("top_p", json!(p));
        }
        if let Some(k) = s.top_k {
            set("top_k", json!(k));
        }
        if let Some(n) = s.max_tokens {
            set("max_tokens", json!(n));
        }
        if !s.stop.is_empty() {
            set("stop", json!(s.stop));
        }
        if let Some(seed) = s.seed {
            set("seed", json!(seed));
        }
        if let Some(f) = response_format_body(&req.response_format) {
            set("response_format", f);
        }
        if req.stream {
            // Usage is always wanted upstream: metrics and the client's own usage chunk use it.
            set("stream_options", json!({"include_usage": true}));
        }
        body
    }

    fn send_error(e: reqwest::Error) -> BackendError {
        if e.is_timeout() {
            BackendError::UpstreamTimeout
        } else {
            BackendError::Unreachable(e.to_string())
        }
    }

    /// Sends the request; non-streamed answers become a two-event stream.
    pub async fn chat(&self, req: &ChatRequest) -> Result<BackendStream, BackendError> {
        let mut rb = self
            .client
            .post(self.endpoint.clone())
            .header("x-request-id", &req.request_id)
            .json(&self.body(req));
        if let Some(key) = &self.cfg.api_key {
            rb = rb.bearer_auth(key);
        }
        // W3C trace context: the upstream's spans join the request's trace.
        let mut trace = axum::http::HeaderMap::new();
        crate::telemetry::inject_current(&mut trace);
        rb = rb.headers(trace);
        let resp = rb.send().await.map_err(Self::send_error)?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(BackendError::Upstream {
                status: status.as_u16(),
                message: upstream_message(&text),
            });
        }
        if !req.stream {
            let bytes = resp.bytes().await.map_err(Self::send_error)?;
            let c: ChatCompletion = serde_json::from_slice(&bytes)
                .map_err(|e| BackendError::Protocol(e.to_string()))?;
            let choice = c
                .choices
                .into_iter()
                .next()
                .ok_or_else(|| BackendError::Protocol("no choices".into()))?;
            let usage = c.usage.map(|u| Usage {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
                speculative: None,
            });
            let events = vec![
                Ok(ChatEvent::Delta(choice.message.content.unwrap_or_default())),
                Ok(ChatEvent::Done {
                    finish_reason: finish_reason(choice.finish_reason.as_deref()),
                    usage: usage.unwrap_or_default(),
                }),
            ];
            return Ok(futures::stream::iter(events).boxed());
        }
        Ok(sse_events(resp.bytes_stream()).boxed())
    }
}

/// The `error.message` of an OpenAI error body, or the body itself.
fn upstream_message(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| text.chars().take(512).collect())
}

/// Turns an upstream SSE body into chat events.
pub fn sse_events<S, B, E>(
    body: S,
) -> impl futures::Stream<Item = Result<ChatEvent, BackendError>> + Send + 'static
where
    S: futures::Stream<Item = Result<B, E>> + Send + Unpin + 'static,
    B: AsRef<[u8]> + Send,
    E: std::fmt::Display + Send,
{
    struct St<S> {
        body: S,
        parser: SseParser,
        pending: std::collections::VecDeque<String>,
        finish: Option<FinishReason>,
        usage: Usage,
        body_done: bool,
        ended: bool,
    }
    let st = St {
        body,
        parser: SseParser::default(),
        pending: Default::default(),
        finish: None,
        usage: Usage::default(),
        body_done: false,
        ended: false,
    };
    futures::stream::unfold(st, |mut st| async move {
        loop {
            if st.ended {
                return None;
            }
            if let Some(data) = st.pending.pop_front() {
                match handle_event(&data, &mut st.finish, &mut st.usage) {
                    Ok(None) => continue,
                    Ok(Some(ChatEvent::Done { .. })) => {
                        st.ended = true;
                        let done = ChatEvent::Done {
                            finish_reason: st.finish.unwrap_or(FinishReason::Stop),
                            usage: st.usage,
                        };
                        return Some((Ok(done), st));
                    }
                    Ok(Some(ev)) => return Some((Ok(ev), st)),
                    Err(e) => {
                        st.ended = true;
                        return Some((Err(e), st));
                    }
                }
            }
            if st.body_done {
                st.ended = true;
                return Some((
                    Err(BackendError::Protocol("stream ended before [DONE]".into())),
                    st,
                ));
            }
            let fed = match st.body.next().await {
                Some(Ok(bytes)) => st.parser.feed(bytes.as_ref()),
                Some(Err(e)) => {
                    st.ended = true;
                    return Some((
                        Err(BackendError::Unreachable(format!(
                            "upstream stream broke: {e}"
                        ))),
                        st,
                    ));
                }
                None => {
                    st.body_done = true;
                    st.parser.finish()
                }
            };
            match fed {
                Ok(events) => st.pending.extend(events),
                Err(e) => {
                    st.ended = true;
                    return Some((Err(BackendError::Protocol(e.to_string())), st));
                }
            }
        }
    })
}

/// One SSE payload: `[DONE]` gives `Done`, a chunk gives its delta (or nothing).
fn handle_event(
    data: &str,
    finish: &mut Option<FinishReason>,
    usage: &mut Usage,
) -> Result<Option<ChatEvent>, BackendError> {
    if data.trim() == "[DONE]" {
        return Ok(Some(ChatEvent::Done {
            finish_reason: finish.unwrap_or(FinishReason::Stop),
            usage: *usage,
        }));
    }
    let v: Value = serde_json::from_str(data)
        .map_err(|e| BackendError::Protocol(format!("bad chunk: {e}")))?;
    if let Some(err) = v.get("error") {
        let message = err["message"]
            .as_str()
            .unwrap_or("error event without message")
            .to_string();
        return Err(BackendError::Upstream {
            status: 200,
            message,
        });
    }
    let chunk: ChatCompletionChunk =
        serde_json::from_value(v).map_err(|e| BackendError::Protocol(format!("bad chunk: {e}")))?;
    if let Some(Some(u)) = chunk.usage {
        *usage = Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            speculative: None,
        };
    }
    let Some(choice) = chunk.choices.into_iter().next() else {
        return Ok(None);
    };
    if let Some(r) = choice.finish_reason.as_deref() {
        *finish = Some(finish_reason(Some(r)));
    }
    match choice.delta.content {
        Some(text) if !text.is_empty() => Ok(Some(ChatEvent::Delta(text))),
        _ => Ok(None),
    }
}

/// `response_format` as sent upstream; the gateway validates the answer either way.
fn response_format_body(f: &crate::domain::ResponseFormat) -> Option<Value> {
    use crate::domain::ResponseFormat;
    match f {
        ResponseFormat::Text => None,
        ResponseFormat::JsonObject => Some(json!({"type": "json_object"})),
        ResponseFormat::JsonSchema { name, schema } => Some(json!({
            "type": "json_schema",
            "json_schema": {"name": name, "schema": schema, "strict": true},
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(chunks: Vec<&'static [u8]>) -> Vec<Result<ChatEvent, String>> {
        let body = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
        sse_events(body)
            .map(|r| r.map_err(|e| e.to_string()))
            .collect()
            .await
    }

    #[tokio::test]
    async fn assembles_deltas_finish_and_usage() {
        let out = run(vec![
            b"data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"He\"},\"finish_reason\":null}]}\n\n",
            b"data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"llo\"},\"finish_reason\":\"length\"}]}\n\ndata: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n",
            b"data: [DONE]\n\n",
        ])
        .await;
        assert_eq!(
            out,
            vec![
                Ok(ChatEvent::Delta("He".into())),
                Ok(ChatEvent::Delta("llo".into())),
                Ok(ChatEvent::Done {
                    finish_reason: FinishReason::Length,
                    usage: Usage {
                        prompt_tokens: 3,
                        completion_tokens: 2,
                        speculative: None,
                    }
                }),
            ]
        );
    }

    #[tokio::test]
    async fn truncated_stream_and_error_events_fail() {
        let out = run(vec![b"data: {\"id\":\"x\",\"object\":\"c\",\"created\":1,\"model\":\"m\",\"choices\":[]}\n\n"]).await;
        assert!(
            matches!(out.last(), Some(Err(e)) if e.contains("before [DONE]")),
            "{out:?}"
        );
        let out = run(vec![b"data: {\"error\":{\"message\":\"boom\"}}\n\n"]).await;
        assert!(
            matches!(out.last(), Some(Err(e)) if e.contains("boom")),
            "{out:?}"
        );
        let out = run(vec![b"data: not json\n\n"]).await;
        assert!(
            matches!(out.last(), Some(Err(e)) if e.contains("bad chunk")),
            "{out:?}"
        );
    }
}
