//! The exact-match response cache: answers of deterministic requests, keyed by a hash of
//! everything that decides the answer, in this process (an LRU) or in Redis (shared by the
//! replicas, with a TTL and an entry cap).

mod key;
mod memory;
mod redis;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::{CacheConfig, CacheStore, FailMode};
use crate::domain::{Citation, FinishReason, ToolCall};
use crate::kv::{Kv, KvError};

pub use key::{cache_key, cacheable, Bypass};

/// A cached answer: the events of the stream, replayed as they came.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Text deltas and tool calls, in order.
    pub events: Vec<CachedEvent>,
    /// Why the answer ended.
    pub finish_reason: FinishReason,
    /// Prompt tokens of the original answer.
    pub prompt_tokens: u64,
    /// Completion tokens of the original answer.
    pub completion_tokens: u64,
    /// Retrieval behind the answer, for its citations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrieval: Option<CachedRetrieval>,
}

/// One event of a cached answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CachedEvent {
    /// Answer text, in the order it was streamed.
    Delta(String),
    /// A tool call.
    ToolCall {
        /// Call id.
        id: String,
        /// Function name.
        name: String,
        /// Arguments (JSON text).
        arguments: String,
    },
}

impl From<&ToolCall> for CachedEvent {
    fn from(c: &ToolCall) -> Self {
        CachedEvent::ToolCall {
            id: c.id.clone(),
            name: c.name.clone(),
            arguments: c.arguments.clone(),
        }
    }
}

/// What retrieval gave the cached answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedRetrieval {
    /// Collection searched.
    pub collection: String,
    /// Tenant searched.
    pub tenant: String,
    /// `ok`, `empty` or `error`.
    pub status: String,
    /// Chunks cited.
    pub citations: Vec<Citation>,
}

/// Why the cache could not be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CacheError {
    /// The Redis store failed.
    #[error(transparent)]
    Kv(#[from] KvError),
}

enum Store {
    Memory(memory::Lru),
    Redis(Kv),
}

/// The response cache of a server.
pub struct ResponseCache {
    store: Store,
    config: CacheConfig,
    on_error: FailMode,
}

impl ResponseCache {
    /// From `config`; `kv` is required for `store: redis` (validated with the config).
    pub fn new(config: CacheConfig, kv: Option<Kv>, on_error: FailMode) -> Arc<Self> {
        let store = match (config.store, kv) {
            (CacheStore::Redis, Some(kv)) => Store::Redis(kv),
            _ => Store::Memory(memory::Lru::new(config.max_entries, config.max_entry_bytes)),
        };
        Arc::new(Self {
            store,
            config,
            on_error,
        })
    }

    /// The settings.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// What to do when the store fails.
    pub fn on_error(&self) -> FailMode {
        self.on_error
    }

    /// The entry under `key`, if fresh.
    pub async fn get(&self, key: &str) -> Result<Option<Entry>, CacheError> {
        let bytes = match &self.store {
            Store::Memory(m) => m.get(key, self.config.ttl),
            Store::Redis(kv) => redis::get(kv, key).await?.map(Arc::new),
        };
        // An entry that no longer decodes (an older format) is a miss, not an error.
        Ok(bytes.and_then(|b| serde_json::from_slice(b.as_slice()).ok()))
    }

    /// Stores `entry` under `key`, unless it is larger than `max_entry_bytes`.
    pub async fn put(&self, key: &str, entry: &Entry) -> Result<bool, CacheError> {
        let bytes = serde_json::to_vec(entry).expect("entries serialize");
        if bytes.len() > self.config.max_entry_bytes {
            return Ok(false);
        }
        match &self.store {
            Store::Memory(m) => m.put(key, bytes),
            Store::Redis(kv) => {
                redis::put(kv, key, &bytes, self.config.ttl, self.config.max_entries).await?
            }
        }
        Ok(true)
    }
}
