//! `gatehouse.v1.Inference`: the chat, embeddings and model-list calls, over the same
//! domain stack and shared state as the HTTP handlers.

use std::sync::Arc;

use futures::stream::BoxStream;
use futures::StreamExt;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use super::errors::status;
use super::{convert, pb};
use crate::api::render::Meta;
use crate::domain::ChatEvent;
use crate::error::ApiError;
use crate::http::auth::{Authenticated, TokenMeter};
use crate::http::handlers::{
    answer_headers, backend_and_kind, citations, visible_models, CallContext,
};
use crate::http::middleware::ModelLabel;
use crate::http::AppState;
use crate::layers::ChatStream;

/// The service's full name, as in its routes (`/gatehouse.v1.Inference/Chat`).
pub const SERVICE: &str = "gatehouse.v1.Inference";

/// Its methods, one route each.
pub const METHODS: [&str; 4] = ["Chat", "ChatStream", "Embed", "ListModels"];

/// The implementation of `gatehouse.v1.Inference`.
#[derive(Clone)]
pub struct Inference {
    state: Arc<AppState>,
}

impl Inference {
    /// Serves calls from `state`.
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }

    /// Parses a chat call as the HTTP API would and starts its answer; `stream` as the
    /// HTTP API's `stream: true` (remote upstreams are asked to stream too).
    async fn start(
        &self,
        req: Request<pb::ChatRequest>,
        route: &'static str,
        stream: bool,
    ) -> Result<(Started, ChatStream), ApiError> {
        if self
            .state
            .draining
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(ApiError::ShuttingDown);
        }
        let call = CallContext::new(route, req.metadata().as_ref(), req.extensions());
        let mut body = convert::chat_body(req.into_inner());
        body["stream"] = stream.into();
        let body = serde_json::to_vec(&body).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
        let chat = crate::api::parse::chat_request(&body, call.request_id())?;
        let mut meta = Meta::new(&chat.model);
        let label = self
            .state
            .models
            .get(&chat.model)
            .map(|_| chat.model.clone());
        let (guard, trail) = (chat.guard.clone(), chat.trail.clone());
        let answer = call.answer(&self.state, chat).await?;
        meta.citations = citations(&trail);
        Ok((
            Started {
                meta,
                guard,
                trail,
                label,
            },
            answer,
        ))
    }
}

/// What a chat call whose answer has started answers with, beside the answer.
struct Started {
    meta: Meta,
    guard: crate::domain::GuardContext,
    trail: crate::domain::Trail,
    /// The model, when it is a configured one (the request metrics' label).
    label: Option<String>,
}

impl Started {
    /// `msg` with the response metadata the HTTP API sends as headers: the policy, its
    /// warnings and redactions so far, the template, tool runs, retrieval, backend, cache.
    fn respond<T>(&self, msg: T) -> Response<T> {
        let mut headers = axum::http::HeaderMap::new();
        answer_headers(&self.guard, &self.trail.snapshot(), &mut headers);
        let mut extensions = tonic::Extensions::new();
        if let Some(model) = &self.label {
            extensions.insert(ModelLabel(model.clone()));
        }
        Response::from_parts(MetadataMap::from_headers(headers), msg, extensions)
    }
}

/// Text and calls of an answer, collected.
async fn collect(meta: Meta, mut answer: ChatStream) -> Result<pb::ChatResponse, ApiError> {
    let mut out = pb::ChatResponse {
        id: meta.id,
        model: meta.model,
        created: i64::try_from(meta.created).unwrap_or(i64::MAX),
        citations: convert::citations(meta.citations),
        ..Default::default()
    };
    while let Some(ev) = answer.next().await {
        match ev? {
            ChatEvent::Delta(t) => out.content.push_str(&t),
            ChatEvent::ToolCall(c) => out.tool_calls.push(convert::tool_call(c)),
            ChatEvent::Done {
                finish_reason,
                usage,
            } => {
                out.finish_reason = finish_reason.as_str().into();
                out.usage = Some(convert::usage(usage));
                return Ok(out);
            }
        }
    }
    Err(ApiError::Backend(crate::backends::BackendError::Protocol(
        "the answer ended without a finish event".into(),
    )))
}

/// One stream message per event; a failure ends the stream with its status.
fn stream_message(meta: &Meta, ev: ChatEvent) -> pb::ChatStreamResponse {
    let mut m = pb::ChatStreamResponse {
        id: meta.id.clone(),
        model: meta.model.clone(),
        ..Default::default()
    };
    match ev {
        ChatEvent::Delta(t) => m.delta = t,
        ChatEvent::ToolCall(c) => m.tool_call = Some(convert::tool_call(c)),
        ChatEvent::Done {
            finish_reason,
            usage,
        } => {
            m.finish_reason = finish_reason.as_str().into();
            m.usage = Some(convert::usage(usage));
            m.citations = convert::citations(meta.citations.clone());
        }
    }
    m
}

#[tonic::async_trait]
impl pb::inference_server::Inference for Inference {
    async fn chat(
        &self,
        req: Request<pb::ChatRequest>,
    ) -> Result<Response<pb::ChatResponse>, Status> {
        let (started, answer) = self
            .start(req, "/gatehouse.v1.Inference/Chat", false)
            .await
            .map_err(|e| status(&e))?;
        let out = collect(started.meta.clone(), answer)
            .await
            .map_err(|e| status(&e))?;
        Ok(started.respond(out))
    }

    type ChatStreamStream = BoxStream<'static, Result<pb::ChatStreamResponse, Status>>;

    async fn chat_stream(
        &self,
        req: Request<pb::ChatRequest>,
    ) -> Result<Response<Self::ChatStreamStream>, Status> {
        let (started, mut answer) = self
            .start(req, "/gatehouse.v1.Inference/ChatStream", true)
            .await
            .map_err(|e| status(&e))?;
        // As over HTTP: a request the backend refuses outright gets a status, not a stream
        // that fails at once.
        let first = match answer.next().await {
            Some(Err(e)) => return Err(status(&e)),
            first => first,
        };
        let meta = started.meta.clone();
        // Dropping the stream (the client cancelled) drops the answer, which cancels the
        // generation in the engine.
        let stream = futures::stream::iter(first)
            .chain(answer)
            .map(move |ev| match ev {
                Ok(ev) => Ok(stream_message(&meta, ev)),
                Err(e) => Err(status(&e)),
            })
            .boxed();
        Ok(started.respond(stream))
    }

    async fn embed(
        &self,
        req: Request<pb::EmbedRequest>,
    ) -> Result<Response<pb::EmbedResponse>, Status> {
        let caller = Authenticated::of(req.extensions());
        let meter = req.extensions().get::<TokenMeter>().cloned();
        let result = async {
            let body = serde_json::to_vec(&convert::embed_body(req.into_inner()))
                .map_err(|e| ApiError::InvalidJson(e.to_string()))?;
            let r = crate::api::embeddings::parse(&body)?;
            let out =
                crate::http::embeddings::embed(&self.state, &caller, meter.as_ref(), &r).await?;
            Ok::<_, ApiError>(pb::EmbedResponse {
                model: r.model,
                data: out
                    .vectors
                    .into_iter()
                    .map(|values| pb::Embedding { values })
                    .collect(),
                usage: Some(convert::usage(crate::domain::Usage {
                    prompt_tokens: out.tokens as u64,
                    ..Default::default()
                })),
            })
        }
        .await;
        result.map(Response::new).map_err(|e| status(&e))
    }

    async fn list_models(
        &self,
        req: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        let caller = Authenticated::of(req.extensions());
        let models = visible_models(&self.state, &caller)
            .map(|s| {
                let (backend, kind) = backend_and_kind(s);
                pb::Model {
                    id: s.config.id.clone(),
                    kind: kind.into(),
                    backend: backend.into(),
                    state: s.state().label().into(),
                }
            })
            .collect();
        Ok(Response::new(pb::ListModelsResponse { models }))
    }
}
