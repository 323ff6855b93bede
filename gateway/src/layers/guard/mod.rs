//! Guardrails: resolve the request's policy, check its input, check its output stream.
//!
//! `PolicyResolve → InputGuard → ... → OutputGuard → router`; each is a tower layer over
//! `Service<ChatRequest, Response = ChatStream, Error = ApiError>`.

mod input;
mod output;
mod resolve;

pub use input::{guard_input, guard_text, InputGuard, InputGuardLayer};
pub use output::{GuardedStream, OutputGuard, OutputGuardLayer};
pub use resolve::{PolicyResolve, PolicyResolveLayer};
