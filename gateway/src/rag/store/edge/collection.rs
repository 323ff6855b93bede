//! Synchronous wrapper around one `EdgeShard`: every qdrant-edge call lives here.

use std::sync::{Mutex, PoisonError};

use qdrant_edge::external::ordered_float::OrderedFloat;
use qdrant_edge::{
    Condition, CountRequest, CreateIndex, EdgeShard, FieldCondition, FieldIndexOperations, Filter,
    Fusion, JsonPath, Match, NamedQuery, OperationError, Payload, PayloadFieldSchema,
    PayloadSchemaType, PointId, PointInsertOperations, PointOperations, PointStructPersisted,
    Prefetch, QueryEnum, QueryRequest, ScoringQuery, ScrollRequest, SearchParams, SparseVector,
    UpdateOperation, VectorInternal, WithPayloadInterface, WithVector,
};
use serde::de::DeserializeOwned;

use super::VECTOR_NAME;
use crate::rag::store::{index, Hit, StoreError, StoredChunk};

/// Payload fields that get a keyword index; every query filters on them.
pub(super) const INDEXED_FIELDS: [&str; 2] = ["tenant", "source"];
/// Fields read by [`Collection::list`]; leaving out `text` keeps listings cheap.
const KEY_FIELDS: [&str; 4] = ["tenant", "source", "chunk", "content_hash"];
/// Scroll page size.
pub(super) const PAGE: usize = 256;

/// One collection: its shard, its dimension and its writer lock.
pub(super) struct Collection {
    pub(super) shard: EdgeShard,
    pub(super) dim: usize,
    /// Whether the shard has the keyword vector (collections created before it have not).
    pub(super) keywords: bool,
    /// `EdgeShard::flush` panics if another thread holds the WAL lock, so every
    /// update+flush sequence on a shard runs under this lock.
    writes: Mutex<()>,
}

impl Collection {
    pub(super) fn new(name: &str, shard: EdgeShard) -> Result<Self, StoreError> {
        let dim = shard.config().vectors.get(VECTOR_NAME).map(|v| v.size);
        let dim = dim.ok_or_else(|| {
            StoreError::Backend(format!("collection `{name}` has no `{VECTOR_NAME}` vector"))
        })?;
        let keywords = shard
            .config()
            .sparse_vectors
            .contains_key(index::KEYWORDS_NAME);
        let writes = Mutex::new(());
        Ok(Self {
            shard,
            dim,
            keywords,
            writes,
        })
    }

    pub(super) fn check_dim(&self, name: &str, got: usize) -> Result<(), StoreError> {
        if got == self.dim {
            return Ok(());
        }
        let (collection, expected) = (name.to_owned(), self.dim);
        Err(StoreError::DimensionMismatch {
            collection,
            expected,
            got,
        })
    }

    /// Runs `f` under the write lock, then flushes: `EdgeShard::load` does not
    /// replay the WAL in 0.7.0, so unflushed writes would be lost on restart.
    fn write<T>(
        &self,
        f: impl FnOnce(&EdgeShard) -> Result<T, OperationError>,
    ) -> Result<T, StoreError> {
        let _guard = self.writes.lock().unwrap_or_else(PoisonError::into_inner);
        let result = f(&self.shard).map_err(backend);
        self.shard.flush();
        result
    }

    /// Keyword indexes for the filter fields; idempotent (existing indexes are kept).
    pub(super) fn create_indexes(&self) -> Result<(), StoreError> {
        self.write(|shard| {
            for field in INDEXED_FIELDS {
                let schema = PayloadFieldSchema::FieldType(PayloadSchemaType::Keyword);
                let index = CreateIndex {
                    field_name: json_path(field)?,
                    field_schema: Some(schema),
                };
                let op = FieldIndexOperations::CreateIndex(index);
                shard.update(UpdateOperation::FieldIndexOperation(op))?;
            }
            Ok(())
        })
    }

    pub(super) fn upsert(&self, points: Vec<PointStructPersisted>) -> Result<(), StoreError> {
        let op = PointOperations::UpsertPoints(PointInsertOperations::PointsList(points));
        self.write(|shard| shard.update(UpdateOperation::PointOperation(op)))
    }

    /// Runs the engine's optimizers until none has work: builds the HNSW index of segments
    /// past the indexing threshold, merges small segments, drops deleted points. Searches
    /// go on meanwhile (the engine swaps segments in when they are ready); writes wait.
    pub(super) fn optimize(&self) -> Result<(), StoreError> {
        self.write(|shard| shard.optimize().map(drop))
    }

    /// Exact count: `ShardInfo::points_count` is only approximate.
    pub(super) fn count(&self, filter: Option<Filter>) -> Result<usize, StoreError> {
        self.shard
            .count(CountRequest {
                filter,
                exact: true,
            })
            .map_err(backend)
    }

    /// Deletes the points matching `filter` and returns how many there were.
    pub(super) fn delete_matching(&self, filter: Filter) -> Result<usize, StoreError> {
        // The delete operation reports no count, so count first, under the same lock.
        let _guard = self.writes.lock().unwrap_or_else(PoisonError::into_inner);
        let n = self.count(Some(filter.clone()))?;
        if n > 0 {
            let op = PointOperations::DeletePointsByFilter(filter);
            let result = self.shard.update(UpdateOperation::PointOperation(op));
            self.shard.flush();
            result.map_err(backend)?;
        }
        Ok(n)
    }

    /// Every chunk matching `filter`, ordered by (source, chunk).
    pub(super) fn list(&self, filter: Filter) -> Result<Vec<StoredChunk>, StoreError> {
        let fields = KEY_FIELDS.iter().map(|f| json_path(f));
        let fields: Vec<JsonPath> = fields.collect::<Result<_, _>>().map_err(backend)?;
        let mut out = Vec::new();
        let mut offset = None;
        loop {
            let request = ScrollRequest {
                offset,
                limit: Some(PAGE),
                filter: Some(filter.clone()),
                with_payload: Some(WithPayloadInterface::Fields(fields.clone())),
                with_vector: WithVector::Bool(false),
                order_by: None,
            };
            let (records, next) = self.shard.scroll(request).map_err(backend)?;
            for r in records {
                let key: ChunkKey = decode_payload(r.payload)?;
                let (source, chunk, content_hash) = (key.source, key.chunk, key.content_hash);
                out.push(StoredChunk {
                    id: num_id(r.id)?,
                    source,
                    chunk,
                    content_hash,
                });
            }
            // `next` is the first id of the following page (inclusive offset).
            match next {
                Some(next) => offset = Some(next),
                None => break,
            }
        }
        out.sort_by(|a, b| (&a.source, a.chunk).cmp(&(&b.source, b.chunk)));
        Ok(out)
    }

    /// Nearest neighbours of `vector` among points matching `filter`, best first; with
    /// `keywords` (and a keyword vector in the shard), fused with the keyword matches as
    /// `index::Fusion` says.
    pub(super) fn search(
        &self,
        vector: Vec<f32>,
        keywords: Option<(SparseVector, index::Fusion)>,
        filter: Filter,
        top_k: usize,
        score_threshold: Option<f32>,
    ) -> Result<Vec<Hit>, StoreError> {
        let params = Some(SearchParams {
            hnsw_ef: Some(index::HNSW_EF as usize),
            ..SearchParams::default()
        });
        let dense = ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery::new(
            VectorInternal::Dense(vector),
            VECTOR_NAME,
        )));
        let keywords = keywords.filter(|(k, _)| self.keywords && !k.indices.is_empty());
        let request = match keywords {
            None => QueryRequest {
                prefetches: Vec::new(),
                query: Some(dense),
                filter: Some(filter),
                score_threshold: score_threshold.map(OrderedFloat),
                limit: top_k,
                offset: 0,
                params,
                with_vector: WithVector::Bool(false),
                with_payload: WithPayloadInterface::Bool(true),
            },
            Some((sparse, fusion)) => {
                let side = |query, score_threshold: Option<f32>| Prefetch {
                    prefetches: Vec::new(),
                    query: Some(query),
                    limit: index::prefetch(top_k),
                    params,
                    filter: Some(filter.clone()),
                    score_threshold: score_threshold.map(OrderedFloat),
                };
                let sparse = ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery::new(
                    VectorInternal::Sparse(sparse),
                    index::KEYWORDS_NAME,
                )));
                QueryRequest {
                    prefetches: vec![side(dense, score_threshold), side(sparse, None)],
                    query: Some(ScoringQuery::Fusion(match fusion {
                        index::Fusion::Scores => Fusion::Dbsf,
                        index::Fusion::Ranks(weights) => Fusion::Rrf {
                            k: index::RRF_K,
                            weights: Some(weights.map(OrderedFloat).to_vec()),
                        },
                    })),
                    filter: Some(filter.clone()),
                    score_threshold: None,
                    limit: top_k,
                    offset: 0,
                    params: None,
                    with_vector: WithVector::Bool(false),
                    with_payload: WithPayloadInterface::Bool(true),
                }
            }
        };
        let points = self.shard.query(request).map_err(backend)?;
        points
            .into_iter()
            .map(|p| {
                let payload = decode_payload(p.payload)?;
                Ok(Hit {
                    id: num_id(p.id)?,
                    score: p.score,
                    payload,
                })
            })
            .collect()
    }
}

/// The payload fields [`Collection::list`] reads.
#[derive(serde::Deserialize)]
struct ChunkKey {
    source: String,
    chunk: u32,
    content_hash: String,
}

/// `tenant == tenant` (and `source == source`), the filter behind every read and delete.
pub(super) fn tenant_filter(tenant: &str, source: Option<&str>) -> Result<Filter, StoreError> {
    let mut must = vec![keyword("tenant", tenant)?];
    if let Some(source) = source {
        must.push(keyword("source", source)?);
    }
    let mut filter = Filter::new();
    filter.must = Some(must);
    Ok(filter)
}

fn keyword(field: &str, value: &str) -> Result<Condition, StoreError> {
    let key = json_path(field).map_err(backend)?;
    let condition = FieldCondition::new_match(key, Match::from(value.to_owned()));
    Ok(Condition::Field(condition))
}

pub(super) fn json_path(field: &str) -> Result<JsonPath, OperationError> {
    // `JsonPath::from_str` reports failure as `()`, so name the field ourselves.
    let err = || OperationError::service_error(format!("bad payload key `{field}`"));
    field.parse().map_err(|()| err())
}

fn decode_payload<T: DeserializeOwned>(payload: Option<Payload>) -> Result<T, StoreError> {
    let map = payload.map(|p| p.0).unwrap_or_default();
    serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|e| StoreError::Backend(format!("malformed chunk payload: {e}")))
}

fn num_id(id: PointId) -> Result<u64, StoreError> {
    match id {
        PointId::NumId(n) => Ok(n),
        other => Err(StoreError::Backend(format!("unexpected point id {other}"))),
    }
}

pub(super) fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}
