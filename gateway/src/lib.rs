//! Gatehouse: an OpenAI-compatible LLM gateway around an embedded mistral.rs engine.
//!
//! The binary is `gatehouse`; this library exposes its parts so tests can start a real
//! server in-process on port 0.

pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod backends;
pub mod batch;
pub mod cache;
pub mod cli;
pub mod config;
pub mod domain;
pub mod drift;
pub mod error;
pub mod grpc;
pub mod html;
pub mod http;
pub mod kv;
pub mod layers;
pub mod limits;
pub mod metrics;
pub mod models;
pub mod openai;
pub mod policy;
pub mod prompts;
pub mod rag;
pub mod reload;
pub mod routing;
pub mod server;
pub mod telemetry;
pub mod tools;
