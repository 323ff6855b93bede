//! Renders a [`ChatStream`] as an OpenAI completion object or as SSE chunks.

use std::convert::Infallible;

use axum::response::sse::Event;
use futures::{Stream, StreamExt};

use crate::backends::BackendError;
use crate::domain::{ChatEvent, Usage};
use crate::error::ApiError;
use crate::layers::ChatStream;
use crate::openai::{
    AssistantMessage, ChatCompletion, ChatCompletionChunk, Choice, ChunkChoice, Delta,
    WireCalledFunction, WireFunctionDelta, WireSpeculative, WireToolCall, WireToolCallDelta,
    WireUsage,
};

/// What every object of one answer shares.
#[derive(Debug, Clone)]
pub struct Meta {
    /// `chatcmpl-...`.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// Model id as requested.
    pub model: String,
    /// Chunks retrieval gave the model: on the completion, and on the stream's finish chunk.
    pub citations: Option<Vec<crate::domain::Citation>>,
}

impl Meta {
    /// A fresh id and timestamp for `model`.
    pub fn new(model: &str) -> Self {
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Self {
            id: format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
            created,
            model: model.to_string(),
            citations: None,
        }
    }

    fn chunk(
        &self,
        delta: Delta,
        finish_reason: Option<&str>,
        with_usage: bool,
    ) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish_reason.map(str::to_string),
            }],
            usage: with_usage.then_some(None),
            citations: finish_reason.and(self.citations.clone()),
        }
    }
}

fn wire_usage(u: Usage) -> WireUsage {
    WireUsage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
        total_tokens: u.prompt_tokens + u.completion_tokens,
        speculative: u.speculative.map(|s| WireSpeculative {
            steps: s.steps,
            drafted_tokens: s.drafted_tokens,
            accepted_tokens: s.accepted_tokens,
            acceptance_rate: s.acceptance_rate(),
            accepted_per_step: s.accepted_per_step(),
            draft_ms_per_step: s.draft_seconds_per_step() * 1e3,
            verify_ms_per_step: s.verify_seconds_per_step() * 1e3,
        }),
    }
}

/// Drains the stream into one completion object.
pub async fn collect(meta: Meta, mut stream: ChatStream) -> Result<ChatCompletion, ApiError> {
    let mut text = String::new();
    let mut calls = Vec::new();
    while let Some(ev) = stream.next().await {
        match ev? {
            ChatEvent::Delta(t) => text.push_str(&t),
            ChatEvent::ToolCall(c) => calls.push(WireToolCall {
                id: c.id,
                kind: "function".into(),
                function: WireCalledFunction {
                    name: c.name,
                    arguments: c.arguments,
                },
            }),
            ChatEvent::Done {
                finish_reason,
                usage,
            } => {
                return Ok(ChatCompletion {
                    id: meta.id,
                    object: "chat.completion".into(),
                    created: meta.created,
                    model: meta.model,
                    choices: vec![Choice {
                        index: 0,
                        message: AssistantMessage {
                            role: "assistant".into(),
                            // OpenAI sends null content beside tool calls.
                            content: (calls.is_empty() || !text.is_empty()).then_some(text),
                            tool_calls: (!calls.is_empty()).then_some(calls),
                        },
                        finish_reason: Some(finish_reason.as_str().into()),
                    }],
                    usage: Some(wire_usage(usage)),
                    citations: meta.citations,
                });
            }
        }
    }
    Err(ApiError::Backend(BackendError::Protocol(
        "the answer ended without a finish event".into(),
    )))
}

fn json_event<T: serde::Serialize>(v: &T) -> Event {
    Event::default().data(serde_json::to_string(v).expect("wire types serialize"))
}

/// SSE events: a role chunk, one chunk per delta, a finish chunk, the usage chunk when asked
/// for, then `[DONE]`. A failure mid-stream sends an OpenAI error object and no `[DONE]`.
pub fn sse(
    meta: Meta,
    stream: ChatStream,
    include_usage: bool,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let first = json_event(&meta.chunk(
        Delta {
            role: Some("assistant".into()),
            content: Some(String::new()),
            tool_calls: None,
        },
        None,
        include_usage,
    ));
    let mut calls = 0u32;
    let rest = stream
        .map(move |ev| -> Vec<Event> {
            match ev {
                Ok(ChatEvent::Delta(t)) => {
                    vec![json_event(&meta.chunk(
                        Delta {
                            content: Some(t),
                            ..Default::default()
                        },
                        None,
                        include_usage,
                    ))]
                }
                Ok(ChatEvent::ToolCall(c)) => {
                    // OpenAI's shape: a chunk naming the call, then argument deltas. The
                    // arguments come whole: they are validated before they leave.
                    let index = calls;
                    calls += 1;
                    let piece = |delta: WireToolCallDelta| Delta {
                        tool_calls: Some(vec![delta]),
                        ..Default::default()
                    };
                    vec![
                        json_event(&meta.chunk(
                            piece(WireToolCallDelta {
                                index,
                                id: Some(c.id),
                                kind: Some("function".into()),
                                function: WireFunctionDelta {
                                    name: Some(c.name),
                                    arguments: String::new(),
                                },
                            }),
                            None,
                            include_usage,
                        )),
                        json_event(&meta.chunk(
                            piece(WireToolCallDelta {
                                index,
                                id: None,
                                kind: None,
                                function: WireFunctionDelta {
                                    name: None,
                                    arguments: c.arguments,
                                },
                            }),
                            None,
                            include_usage,
                        )),
                    ]
                }
                Ok(ChatEvent::Done {
                    finish_reason,
                    usage,
                }) => {
                    let mut out = vec![json_event(&meta.chunk(
                        Delta::default(),
                        Some(finish_reason.as_str()),
                        include_usage,
                    ))];
                    if include_usage {
                        let mut c = meta.chunk(Delta::default(), None, true);
                        c.choices.clear();
                        c.usage = Some(Some(wire_usage(usage)));
                        out.push(json_event(&c));
                    }
                    out.push(Event::default().data("[DONE]"));
                    out
                }
                Err(e) => vec![json_event(&e.body())],
            }
        })
        .flat_map(futures::stream::iter);
    futures::stream::once(async move { first })
        .chain(rest)
        .map(Ok)
}
