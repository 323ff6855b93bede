//! Domain tower layers around the router (DESIGN.md, request flow). Each reads its settings
//! from the request's resolved policy and passes through when it has nothing to do.

pub mod audit;
pub mod cache;
pub mod guard;
pub mod rag;
pub mod structured;
pub mod template;
pub mod tools;
pub mod trace;
