//! A policy's `retrieval:` section: which collection answers are grounded in, and what
//! happens when retrieval finds nothing, fails, or finds a chunk an input rule blocks.

use std::time::Duration;

use super::raw::RawRetrieval;
use crate::config::SearchMode;

/// What to do when retrieval yields no context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnMissing {
    /// Answer without context.
    Answer,
    /// Refuse the request.
    Refuse,
}

/// What to do with a chunk an input rule blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnBlocked {
    /// Leave the chunk out (the decision is recorded).
    Drop,
    /// Refuse the request with the rule's violation.
    Refuse,
}

/// Compiled `retrieval:`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Retrieval {
    /// Collection searched.
    pub collection: String,
    /// Chunks retrieved.
    pub top_k: usize,
    /// Minimum cosine similarity (of the dense side in hybrid mode).
    pub score_threshold: Option<f32>,
    /// Dense, or hybrid (dense fused with keyword matches).
    pub mode: SearchMode,
    /// Estimated tokens of chunk text given to the model.
    pub max_context_tokens: usize,
    /// Time embedding and search may take.
    #[serde(serialize_with = "millis")]
    pub timeout: Duration,
    /// No chunk found.
    pub on_empty: OnMissing,
    /// Retrieval failed or timed out.
    pub on_error: OnMissing,
    /// A chunk blocked by an input rule.
    pub on_blocked: OnBlocked,
    /// Template placing the chunks.
    pub template: String,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

/// Template used when the policy names none.
pub const DEFAULT_TEMPLATE: &str = "rag-context";

impl Retrieval {
    /// From the raw section; the policy schema has already checked ranges and enums.
    pub(super) fn from_raw(r: RawRetrieval) -> Result<Self, (&'static str, String)> {
        let missing = |v: Option<String>, key: &'static str| match v.as_deref() {
            None | Some("answer") => Ok(OnMissing::Answer),
            Some("refuse") => Ok(OnMissing::Refuse),
            Some(o) => Err((key, format!("`{o}`: expected answer or refuse"))),
        };
        let on_blocked = match r.on_blocked.as_deref() {
            None | Some("drop") => OnBlocked::Drop,
            Some("refuse") => OnBlocked::Refuse,
            Some(o) => return Err(("on_blocked", format!("`{o}`: expected drop or refuse"))),
        };
        let mode = match r.mode.as_deref() {
            None => SearchMode::default(),
            Some(m) => m.parse().map_err(|e| ("mode", e))?,
        };
        if !crate::config::valid_collection_name(&r.collection) {
            return Err((
                "collection",
                format!(
                    "`{}`: expected 1-64 characters of [A-Za-z0-9_-]",
                    r.collection
                ),
            ));
        }
        Ok(Self {
            collection: r.collection,
            top_k: r.top_k.unwrap_or(4),
            score_threshold: r.score_threshold,
            mode,
            max_context_tokens: r.max_context_tokens.unwrap_or(1000),
            timeout: Duration::from_millis(r.timeout_ms.unwrap_or(3000)),
            on_empty: missing(r.on_empty, "on_empty")?,
            on_error: missing(r.on_error, "on_error")?,
            on_blocked,
            template: r.template.unwrap_or_else(|| DEFAULT_TEMPLATE.to_string()),
        })
    }
}
