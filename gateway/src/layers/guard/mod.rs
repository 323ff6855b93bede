//! Guardrails: resolve the request's policy, check its input, check its output stream.
//!
//! `PolicyResolve → InputGuard → ... → OutputGuard → router`, each a [`crate::layers::step::Step`].

mod input;
mod output;
mod resolve;

pub use input::{guard_input, guard_text, InputGuard};
pub use output::{GuardedStream, OutputGuard};
pub use resolve::PolicyResolve;
