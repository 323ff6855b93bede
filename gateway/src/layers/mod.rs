//! The domain stack (DESIGN.md, request flow): [`step::Step`]s around the [`router::Router`],
//! assembled in `crate::app`. Each step reads its settings from the request's resolved
//! policy and passes through when it has nothing to do.

pub mod audit;
pub mod cache;
pub mod drift;
pub mod guard;
pub mod observe;
pub mod rag;
pub mod router;
pub mod step;
pub mod structured;
pub mod template;
pub mod tools;

use futures::stream::BoxStream;

use crate::domain::{ChatEvent, ChatRequest};
use crate::error::ApiError;

/// A chat answer as the domain steps pass it on: backend errors, and guardrail blocks in
/// the middle of a stream. Dropping it cancels generation.
pub type ChatStream = BoxStream<'static, Result<ChatEvent, ApiError>>;

/// The domain stack, boxed: chat requests in, answer streams out.
pub type Domain = tower::util::BoxCloneSyncService<ChatRequest, ChatStream, ApiError>;
