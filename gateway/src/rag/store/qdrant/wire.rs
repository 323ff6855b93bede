//! Conversions between the store's types and Qdrant's wire types, and Qdrant's errors.

use std::collections::HashMap;

use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::vectors_config::Config as VectorsConfigKind;
use qdrant_client::qdrant::{
    CollectionInfo as RemoteInfo, Condition, Distance, Filter, PointId, Value,
};
use qdrant_client::Payload;
use serde::de::DeserializeOwned;
use tonic::Code;

use crate::rag::store::edge::VECTOR_NAME;
use crate::rag::store::index::KEYWORDS_NAME;
use crate::rag::store::{ChunkPayload, StoreError};

/// The payload fields `chunks` reads.
#[derive(serde::Deserialize)]
pub(super) struct ChunkKey {
    pub source: String,
    pub chunk: u32,
    pub content_hash: String,
}

/// `tenant == tenant` (and `source == source`), the filter behind every read and delete.
pub(super) fn tenant_filter(tenant: &str, source: Option<&str>) -> Filter {
    let mut must = vec![Condition::matches("tenant", tenant.to_owned())];
    if let Some(source) = source {
        must.push(Condition::matches("source", source.to_owned()));
    }
    Filter::must(must)
}

pub(super) fn is_protocol_mismatch(code: Code, msg: &str) -> bool {
    // An HTTP/1 peer either breaks the h2 handshake or drops the connection ("transport
    // error"), depending on timing.
    code == Code::Unimplemented
        || msg.contains("h2 protocol error")
        || msg.contains("transport error")
}

/// Qdrant's "N of M read operations failed": no replica of a shard could answer the read
/// (its peer is down, or on a single node the shard was busy being optimized).
pub(super) fn is_unserved_read(msg: &str) -> bool {
    msg.contains(" read operations failed")
}

/// What the store needs to know of a collection to write and search it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Shape {
    /// Dimension of the dense vector.
    pub dim: usize,
    /// Whether it has the keyword vector (collections created before it have not).
    pub keywords: bool,
}

/// The collection's [`Shape`]; errors unless its `dense` vector is a cosine dense vector.
pub(super) fn shape(name: &str, info: &RemoteInfo) -> Result<Shape, StoreError> {
    let params = info.config.as_ref().and_then(|c| c.params.as_ref());
    let sparse = params.and_then(|p| p.sparse_vectors_config.as_ref());
    Ok(Shape {
        dim: dense_dim(name, info)?,
        keywords: sparse.is_some_and(|s| s.map.contains_key(KEYWORDS_NAME)),
    })
}

/// Dimension of the collection's `dense` vector; errors unless it is a cosine dense vector.
fn dense_dim(name: &str, info: &RemoteInfo) -> Result<usize, StoreError> {
    let config = info.config.as_ref().and_then(|c| c.params.as_ref());
    let config = config.and_then(|p| p.vectors_config.as_ref());
    let params = match config.and_then(|v| v.config.as_ref()) {
        Some(VectorsConfigKind::ParamsMap(map)) => map.map.get(VECTOR_NAME),
        // A single unnamed vector: not created by this store.
        _ => None,
    };
    let params = params.ok_or_else(|| {
        StoreError::Backend(format!("collection `{name}` has no `{VECTOR_NAME}` vector"))
    })?;
    // Scores must mean the same as with the edge store (cosine similarity).
    if params.distance != Distance::Cosine as i32 {
        let distance = Distance::try_from(params.distance).map_or_else(
            |_| params.distance.to_string(),
            |d| d.as_str_name().to_owned(),
        );
        return Err(StoreError::Backend(format!(
            "collection `{name}` uses {distance} distance, expected Cosine"
        )));
    }
    Ok(params.size as usize)
}

pub(super) fn to_payload(payload: &ChunkPayload) -> Result<Payload, StoreError> {
    let json = serde_json::to_value(payload).map_err(backend)?;
    Payload::try_from(json).map_err(backend)
}

pub(super) fn decode_payload<T: DeserializeOwned>(
    payload: HashMap<String, Value>,
) -> Result<T, StoreError> {
    // Via serde_json, which turns Qdrant's i64 into u32 and null into `None` as the edge store does.
    let json = serde_json::Value::from(Payload::from(payload));
    serde_json::from_value(json)
        .map_err(|e| StoreError::Backend(format!("malformed chunk payload: {e}")))
}

pub(super) fn num_id(id: Option<PointId>) -> Result<u64, StoreError> {
    match id.and_then(|id| id.point_id_options) {
        Some(PointIdOptions::Num(n)) => Ok(n),
        Some(PointIdOptions::Uuid(u)) => {
            Err(StoreError::Backend(format!("unexpected point id {u}")))
        }
        None => Err(StoreError::Backend("point without an id".into())),
    }
}

pub(super) fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}
