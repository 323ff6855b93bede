//! [`VectorStore`] backed by a Qdrant server over gRPC (`qdrant-client` 1.20).
//!
//! Same data model as the edge store, so the two read each other's data the
//! same way: one Qdrant collection per store collection, a single named dense
//! vector `dense` with cosine distance, the [`ChunkPayload`] fields as
//! the point payload, and keyword indexes on `tenant` and `source`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use futures::{FutureExt as _, StreamExt as _};
use qdrant_client::qdrant::{
    CollectionInfo as RemoteInfo, Condition, CountPointsBuilder, CreateCollectionBuilder,
    CreateFieldIndexCollectionBuilder, DeletePointsBuilder, Distance, FieldType, Filter, Fusion,
    HnswConfigDiffBuilder, KeywordIndexParamsBuilder, Modifier, NamedVectors,
    OptimizersConfigDiffBuilder, PayloadIncludeSelector, PointId, PointStruct,
    PrefetchQueryBuilder, Query, QueryPointsBuilder, Rrf, ScrollPointsBuilder, SearchParamsBuilder,
    SparseVectorParamsBuilder, SparseVectorsConfigBuilder, UpsertPointsBuilder, Vector,
    VectorInput, VectorParamsBuilder, VectorsConfigBuilder,
};
use qdrant_client::{Qdrant, QdrantError};
use tonic::Code;

use super::edge::VECTOR_NAME;
use super::{
    index, keyword_text, point_id, valid_collection_name, ChunkPayload, ChunkPoint, CollectionInfo,
    Hit, StoreError, StoreFuture, StoredChunk, VectorStore,
};
use crate::rag::keywords;
use wire::{
    decode_payload, is_protocol_mismatch, is_unserved_read, num_id, shape, tenant_filter,
    to_payload, ChunkKey, Shape,
};

mod wire;

/// Payload fields that get a keyword index; every query filters on them.
const INDEXED_FIELDS: [&str; 2] = ["tenant", "source"];
/// Fields read by `chunks`; leaving out `text` keeps listings cheap.
const KEY_FIELDS: [&str; 4] = ["tenant", "source", "chunk", "content_hash"];
/// Scroll page size.
const PAGE: u32 = 256;
/// Points per upsert request: keeps each gRPC message well under the usual
/// 4-32 MiB request limits even for large embeddings and long chunks.
const UPSERT_BATCH: usize = 256;
/// Collections inspected at once by `collections()`.
const LIST_CONCURRENCY: usize = 4;
/// Retries of a read the server could not route to any replica (first wait 50 ms, doubling).
const READ_RETRIES: u32 = 4;

/// Vector store on a remote Qdrant server, reached over gRPC.
///
/// Collection dimensions are cached after the first lookup so that `upsert` and
/// `search` cost one round trip; the cache entry is dropped whenever the server
/// reports the collection missing or rejects a request as invalid, so a
/// collection re-created behind the store's back is picked up on the next call.
pub struct QdrantStore {
    client: Qdrant,
    /// For error messages: which server failed.
    url: String,
    shapes: RwLock<HashMap<String, Shape>>,
}

impl QdrantStore {
    /// Connects lazily; `api_key` optional; `timeout` per call.
    ///
    /// `url` is the gRPC endpoint (`http://host:6334` or `https://...`), not the
    /// REST port 6333. Nothing is sent until the first call, so this succeeds
    /// while the server is down; unreachable servers surface as
    /// [`StoreError::Unavailable`] per call. Needs no Tokio runtime.
    ///
    /// `timeout` bounds each request and each connection attempt; the client
    /// retries a point operation once on a fresh connection after a timeout or
    /// a dropped connection, so such a call can take up to about twice as long.
    pub fn connect(
        url: &str,
        api_key: Option<String>,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        // The client only rejects a bad scheme at the first call; fail at startup instead.
        let scheme_ok = ["http://", "https://"].iter().any(|scheme| {
            let prefix = url.get(..scheme.len());
            url.len() > scheme.len() && prefix.is_some_and(|p| p.eq_ignore_ascii_case(scheme))
        });
        if !scheme_ok {
            return Err(StoreError::Backend(format!(
                "invalid Qdrant URL `{url}`: expected http://host:port or https://host:port"
            )));
        }
        let client = Qdrant::from_url(url)
            .api_key(api_key)
            .timeout(timeout)
            .connect_timeout(timeout)
            // The compatibility check is a blocking health check at build time
            // that prints to stdout; we want a lazy, quiet constructor.
            .skip_compatibility_check()
            .build()
            .map_err(|e| StoreError::Backend(format!("invalid Qdrant URL `{url}`: {e}")))?;
        Ok(Self {
            client,
            url: url.to_owned(),
            shapes: RwLock::new(HashMap::new()),
        })
    }

    /// Maps a client error; `collection` names the collection the call was about,
    /// so that `NotFound` can become [`StoreError::NoSuchCollection`].
    fn error(&self, collection: Option<&str>, e: QdrantError) -> StoreError {
        let status = match e {
            QdrantError::ResponseError { status } => status,
            QdrantError::ResourceExhaustedError {
                status,
                retry_after_seconds,
            } => {
                let msg = status.message();
                return StoreError::Unavailable(format!(
                    "Qdrant at {} is overloaded ({msg}); retry after {retry_after_seconds}s",
                    self.url
                ));
            }
            other => return StoreError::Backend(format!("Qdrant at {}: {other}", self.url)),
        };
        if matches!(status.code(), Code::NotFound | Code::InvalidArgument) {
            if let Some(name) = collection {
                self.forget(name);
            }
        }
        let msg = status.message();
        match status.code() {
            Code::NotFound => match collection {
                Some(name) => StoreError::NoSuchCollection(name.to_owned()),
                None => StoreError::Backend(format!("Qdrant at {}: {msg}", self.url)),
            },
            // Transport failures: tonic reports refused/reset connections as
            // Unavailable and its per-call timeout as Cancelled.
            Code::Unavailable | Code::Cancelled | Code::DeadlineExceeded => {
                StoreError::Unavailable(format!("Qdrant at {}: {msg}", self.url))
            }
            Code::Unauthenticated | Code::PermissionDenied => StoreError::Backend(format!(
                "Qdrant at {} refused the request: {msg} (is the API key in `rag.api_key_env` the server's?)",
                self.url
            )),
            // No replica of a shard could answer: a peer is down, or (on one node) the
            // optimizer held the shard at that moment. Either way, worth retrying later.
            Code::Internal if is_unserved_read(msg) => {
                StoreError::Unavailable(format!("Qdrant at {}: {msg}", self.url))
            }
            // qdrant-client wraps failed (re)connects in `Internal`, not `Unavailable`.
            Code::Internal if msg.starts_with("Failed to connect") => {
                StoreError::Unavailable(format!("cannot reach Qdrant at {}: {msg}", self.url))
            }
            // What a non-gRPC endpoint (such as the REST port) or a too-old server answers.
            Code::Unimplemented | Code::Internal | Code::Unknown
                if is_protocol_mismatch(status.code(), msg) =>
            {
                StoreError::Backend(format!(
                    "Qdrant at {}: {msg} (is this Qdrant's gRPC port, usually 6334, on Qdrant 1.10 or later?)",
                    self.url
                ))
            }
            code => StoreError::Backend(format!("Qdrant at {}: {code:?}: {msg}", self.url)),
        }
    }

    /// Runs an idempotent read, retrying it briefly while the server reports that no
    /// replica could serve it, so that a search during segment optimization does not fail.
    async fn read<T, F, Fut>(&self, mut call: F) -> Result<T, QdrantError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, QdrantError>>,
    {
        let mut wait = Duration::from_millis(50);
        for _ in 0..READ_RETRIES {
            match call().await {
                Err(QdrantError::ResponseError { status })
                    if status.code() == Code::Internal && is_unserved_read(status.message()) =>
                {
                    tracing::debug!(url = %self.url, error = status.message(), "retrying a Qdrant read");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                done => return done,
            }
        }
        call().await
    }

    fn forget(&self, collection: &str) {
        let mut shapes = self.shapes.write().unwrap_or_else(PoisonError::into_inner);
        shapes.remove(collection);
    }

    fn remember(&self, collection: &str, shape: Shape) {
        let mut shapes = self.shapes.write().unwrap_or_else(PoisonError::into_inner);
        shapes.insert(collection.to_owned(), shape);
    }

    /// The collection's info, or `None` if it does not exist.
    async fn info(&self, collection: &str) -> Result<Option<RemoteInfo>, StoreError> {
        match self.read(|| self.client.collection_info(collection)).await {
            Ok(response) => Ok(response.result),
            Err(e) => match self.error(Some(collection), e) {
                StoreError::NoSuchCollection(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    /// The collection's shape (cached), after checking its name.
    async fn shape(&self, collection: &str) -> Result<Shape, StoreError> {
        if !valid_collection_name(collection) {
            return Err(StoreError::InvalidName(collection.to_owned()));
        }
        let cached = {
            let shapes = self.shapes.read().unwrap_or_else(PoisonError::into_inner);
            shapes.get(collection).copied()
        };
        if let Some(shape) = cached {
            return Ok(shape);
        }
        let info = self.info(collection).await?;
        let info = info.ok_or_else(|| StoreError::NoSuchCollection(collection.to_owned()))?;
        let found = shape(collection, &info)?;
        self.remember(collection, found);
        Ok(found)
    }

    /// The collection's dimension (cached), after checking its name.
    async fn dim(&self, collection: &str) -> Result<usize, StoreError> {
        self.shape(collection).await.map(|s| s.dim)
    }

    async fn create(&self, name: &str, dim: usize) -> Result<(), StoreError> {
        let mut vectors = VectorsConfigBuilder::default();
        vectors.add_named_vector_params(
            VECTOR_NAME,
            VectorParamsBuilder::new(dim as u64, Distance::Cosine),
        );
        // Written out, not left to the server's defaults, so that both stores index alike.
        let hnsw = HnswConfigDiffBuilder::default()
            .m(index::HNSW_M as u64)
            .ef_construct(index::HNSW_EF_CONSTRUCT as u64)
            .full_scan_threshold(index::FULL_SCAN_THRESHOLD_KB as u64);
        let optimizers = OptimizersConfigDiffBuilder::default()
            .indexing_threshold(index::INDEXING_THRESHOLD_KB as u64);
        // The server keeps the IDF statistics and applies them at query time (keywords.rs).
        let mut sparse = SparseVectorsConfigBuilder::default();
        sparse.add_named_vector_params(
            index::KEYWORDS_NAME,
            SparseVectorParamsBuilder::default().modifier(Modifier::Idf),
        );
        let request = CreateCollectionBuilder::new(name)
            .vectors_config(vectors)
            .sparse_vectors_config(sparse)
            .hnsw_config(hnsw)
            .optimizers_config(optimizers);
        self.client
            .create_collection(request)
            .await
            .map(drop)
            .map_err(|e| self.error(Some(name), e))
    }

    /// Creates the keyword indexes `info` lacks (an index of another type is left alone).
    async fn create_indexes(&self, name: &str, info: &RemoteInfo) -> Result<(), StoreError> {
        for field in INDEXED_FIELDS {
            if info.payload_schema.contains_key(field) {
                continue;
            }
            // `is_tenant` lets Qdrant co-locate each tenant's points; it changes layout, not results.
            let params = KeywordIndexParamsBuilder::default().is_tenant(field == "tenant");
            let request = CreateFieldIndexCollectionBuilder::new(name, field, FieldType::Keyword)
                .field_index_params(params)
                .wait(true);
            self.client
                .create_field_index(request)
                .await
                .map_err(|e| self.error(Some(name), e))?;
        }
        Ok(())
    }

    /// Exact number of points matching `filter` (`points_count` in the collection info is approximate).
    async fn count(&self, collection: &str, filter: Option<Filter>) -> Result<usize, StoreError> {
        let mut request = CountPointsBuilder::new(collection).exact(true);
        if let Some(filter) = filter {
            request = request.filter(filter);
        }
        let request = request.build();
        let response = self
            .read(|| self.client.count(request.clone()))
            .await
            .map_err(|e| self.error(Some(collection), e))?;
        Ok(response.result.map_or(0, |r| r.count as usize))
    }

    /// Deletes the points matching `filter` and returns how many there were.
    ///
    /// Qdrant's delete reports no count, so this counts first: with other
    /// writers on the same tenant and source the count can be off, never the deletion.
    async fn delete_matching(&self, collection: &str, filter: Filter) -> Result<usize, StoreError> {
        let n = self.count(collection, Some(filter.clone())).await?;
        if n > 0 {
            let request = DeletePointsBuilder::new(collection)
                .points(filter)
                .wait(true);
            self.client
                .delete_points(request)
                .await
                .map_err(|e| self.error(Some(collection), e))?;
        }
        Ok(n)
    }

    /// Summary of one collection, or `None` if it vanished or is not one of ours.
    async fn summary(&self, name: String) -> Result<Option<CollectionInfo>, StoreError> {
        let Some(info) = self.info(&name).await? else {
            return Ok(None);
        };
        let Ok(found) = shape(&name, &info) else {
            return Ok(None);
        };
        self.remember(&name, found);
        let dim = found.dim;
        let points = match self.count(&name, None).await {
            Ok(n) => n,
            Err(StoreError::NoSuchCollection(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let indexed = info.indexed_vectors_count.unwrap_or(0) as usize;
        Ok(Some(CollectionInfo {
            name,
            dim,
            points,
            indexed,
        }))
    }
}

impl VectorStore for QdrantStore {
    fn ensure_collection<'a>(&'a self, name: &'a str, dim: usize) -> StoreFuture<'a, ()> {
        async move {
            if !valid_collection_name(name) {
                return Err(StoreError::InvalidName(name.to_owned()));
            }
            if dim == 0 {
                return Err(StoreError::Backend(
                    "vector dimension must be at least 1".into(),
                ));
            }
            // Always ask the server: this is the call that refreshes the cache.
            let info = match self.info(name).await? {
                Some(info) => info,
                None => {
                    let created = self.create(name, dim).await;
                    // A concurrent creator may have won the race ("already exists"):
                    // adopt its collection and let the dimension check decide.
                    match (created, self.info(name).await?) {
                        (_, Some(info)) => info,
                        (Err(e), None) => return Err(e),
                        (Ok(()), None) => {
                            return Err(StoreError::NoSuchCollection(name.to_owned()))
                        }
                    }
                }
            };
            let found = shape(name, &info)?;
            self.remember(name, found);
            if found.dim != dim {
                return Err(StoreError::DimensionMismatch {
                    collection: name.to_owned(),
                    expected: found.dim,
                    got: dim,
                });
            }
            self.create_indexes(name, &info).await
        }
        .boxed()
    }

    fn collections(&self) -> StoreFuture<'_, Vec<CollectionInfo>> {
        async move {
            let listed = self
                .client
                .list_collections()
                .await
                .map_err(|e| self.error(None, e))?;
            // Other applications' collections on a shared server are skipped:
            // names this store cannot address, or no `dense` cosine vector.
            let names = listed
                .collections
                .into_iter()
                .map(|c| c.name)
                .filter(|n| valid_collection_name(n));
            let summaries: Vec<Result<Option<CollectionInfo>, StoreError>> =
                futures::stream::iter(names)
                    .map(|name| self.summary(name))
                    .buffer_unordered(LIST_CONCURRENCY)
                    .collect()
                    .await;
            let mut infos = Vec::new();
            for summary in summaries {
                infos.extend(summary?);
            }
            infos.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(infos)
        }
        .boxed()
    }

    fn upsert<'a>(
        &'a self,
        collection: &'a str,
        points: Vec<ChunkPoint>,
    ) -> StoreFuture<'a, usize> {
        async move {
            let Shape { dim, keywords } = self.shape(collection).await?;
            // Validate the whole batch first so a bad point cannot leave it half-written.
            // Keyed by id: a batch repeating a chunk writes it once (last copy wins).
            let mut by_id: BTreeMap<u64, PointStruct> = BTreeMap::new();
            for ChunkPoint { vector, payload } in points {
                if vector.len() != dim {
                    return Err(StoreError::DimensionMismatch {
                        collection: collection.to_owned(),
                        expected: dim,
                        got: vector.len(),
                    });
                }
                let p = &payload;
                let id = point_id(&p.tenant, &p.source, p.chunk, &p.content_hash);
                let mut vectors = NamedVectors::default().add_vector(VECTOR_NAME, vector);
                if keywords {
                    let k = keywords::document(&keyword_text(&payload));
                    let sparse = Vector::new_sparse(k.indices, k.values);
                    vectors = vectors.add_vector(index::KEYWORDS_NAME, sparse);
                }
                by_id.insert(id, PointStruct::new(id, vectors, to_payload(&payload)?));
            }
            let written = by_id.len();
            let mut points = by_id.into_values().peekable();
            // Several requests for a large batch: one failing leaves the earlier ones
            // written, which is harmless since ids are deterministic (a retry overwrites).
            while points.peek().is_some() {
                let batch: Vec<PointStruct> = points.by_ref().take(UPSERT_BATCH).collect();
                let request = UpsertPointsBuilder::new(collection, batch).wait(true);
                self.client
                    .upsert_points(request)
                    .await
                    .map_err(|e| self.error(Some(collection), e))?;
            }
            Ok(written)
        }
        .boxed()
    }

    fn chunks<'a>(
        &'a self,
        collection: &'a str,
        tenant: &'a str,
        source: Option<&'a str>,
    ) -> StoreFuture<'a, Vec<StoredChunk>> {
        async move {
            if !valid_collection_name(collection) {
                return Err(StoreError::InvalidName(collection.to_owned()));
            }
            let filter = tenant_filter(tenant, source);
            let fields: Vec<String> = KEY_FIELDS.iter().map(|f| (*f).to_owned()).collect();
            let mut out = Vec::new();
            let mut offset: Option<PointId> = None;
            loop {
                let mut request = ScrollPointsBuilder::new(collection)
                    .filter(filter.clone())
                    .limit(PAGE)
                    .with_payload(PayloadIncludeSelector::new(fields.clone()))
                    .with_vectors(false);
                if let Some(offset) = offset.take() {
                    request = request.offset(offset);
                }
                let request = request.build();
                let page = self
                    .read(|| self.client.scroll(request.clone()))
                    .await
                    .map_err(|e| self.error(Some(collection), e))?;
                for point in page.result {
                    let key: ChunkKey = decode_payload(point.payload)?;
                    out.push(StoredChunk {
                        id: num_id(point.id)?,
                        source: key.source,
                        chunk: key.chunk,
                        content_hash: key.content_hash,
                    });
                }
                // `next_page_offset` is the first id of the following page (inclusive).
                match page.next_page_offset {
                    Some(next) => offset = Some(next),
                    None => break,
                }
            }
            out.sort_by(|a, b| (&a.source, a.chunk).cmp(&(&b.source, b.chunk)));
            Ok(out)
        }
        .boxed()
    }

    fn delete<'a>(
        &'a self,
        collection: &'a str,
        tenant: &'a str,
        ids: Vec<u64>,
    ) -> StoreFuture<'a, usize> {
        async move {
            // Resolve the collection first so a missing one errors even for no ids.
            self.dim(collection).await?;
            if ids.is_empty() {
                return Ok(0);
            }
            // The tenant condition is what stops a caller deleting another tenant's ids.
            let mut filter = tenant_filter(tenant, None);
            filter
                .must
                .push(Condition::has_id(ids.into_iter().map(PointId::from)));
            self.delete_matching(collection, filter).await
        }
        .boxed()
    }

    fn delete_source<'a>(
        &'a self,
        collection: &'a str,
        tenant: &'a str,
        source: &'a str,
    ) -> StoreFuture<'a, usize> {
        async move {
            if !valid_collection_name(collection) {
                return Err(StoreError::InvalidName(collection.to_owned()));
            }
            let filter = tenant_filter(tenant, Some(source));
            self.delete_matching(collection, filter).await
        }
        .boxed()
    }

    fn index<'a>(&'a self, collection: &'a str) -> StoreFuture<'a, ()> {
        // The server's optimizers index in the background; only check the collection exists.
        async move { self.dim(collection).await.map(drop) }.boxed()
    }

    fn search<'a>(
        &'a self,
        collection: &'a str,
        tenant: &'a str,
        vector: Vec<f32>,
        top_k: usize,
        score_threshold: Option<f32>,
    ) -> StoreFuture<'a, Vec<Hit>> {
        self.query(collection, tenant, vector, None, top_k, score_threshold)
            .boxed()
    }

    fn search_hybrid<'a>(
        &'a self,
        collection: &'a str,
        tenant: &'a str,
        vector: Vec<f32>,
        text: &'a str,
        top_k: usize,
        score_threshold: Option<f32>,
    ) -> StoreFuture<'a, Vec<Hit>> {
        let keywords = Some(keywords::query(text));
        self.query(collection, tenant, vector, keywords, top_k, score_threshold)
            .boxed()
    }
}

impl QdrantStore {
    /// Dense search, fused with the `keywords` matches when given (and the collection has
    /// the keyword vector).
    async fn query(
        &self,
        collection: &str,
        tenant: &str,
        vector: Vec<f32>,
        keywords: Option<keywords::Query>,
        top_k: usize,
        score_threshold: Option<f32>,
    ) -> Result<Vec<Hit>, StoreError> {
        let shape = self.shape(collection).await?;
        if vector.len() != shape.dim {
            return Err(StoreError::DimensionMismatch {
                collection: collection.to_owned(),
                expected: shape.dim,
                got: vector.len(),
            });
        }
        if top_k == 0 {
            return Ok(Vec::new());
        }
        let params = SearchParamsBuilder::default().hnsw_ef(index::HNSW_EF);
        let filter = tenant_filter(tenant, None);
        let keywords = keywords.filter(|k| shape.keywords && !k.vector.is_empty());
        let mut request = QueryPointsBuilder::new(collection)
            .filter(filter.clone())
            .limit(top_k as u64)
            .with_payload(true)
            .with_vectors(false);
        match keywords {
            None => {
                request = request
                    .query(Query::new_nearest(vector))
                    .using(VECTOR_NAME)
                    .params(params);
                if let Some(threshold) = score_threshold {
                    request = request.score_threshold(threshold);
                }
            }
            Some(k) => {
                let limit = index::prefetch(top_k) as u64;
                let mut dense = PrefetchQueryBuilder::default()
                    .query(Query::new_nearest(vector))
                    .using(VECTOR_NAME)
                    .params(params)
                    .filter(filter.clone())
                    .limit(limit);
                if let Some(threshold) = score_threshold {
                    dense = dense.score_threshold(threshold);
                }
                let sparse = PrefetchQueryBuilder::default()
                    .query(Query::new_nearest(VectorInput::new_sparse(
                        k.vector.indices,
                        k.vector.values,
                    )))
                    .using(index::KEYWORDS_NAME)
                    .filter(filter)
                    .limit(limit);
                let fusion = match index::fusion(k.identifiers) {
                    index::Fusion::Scores => Query::new_fusion(Fusion::Dbsf),
                    index::Fusion::Ranks(weights) => Query::new_rrf(Rrf {
                        k: Some(index::RRF_K as u32),
                        weights: weights.to_vec(),
                    }),
                };
                request = request
                    .add_prefetch(dense)
                    .add_prefetch(sparse)
                    .query(fusion);
            }
        }
        let request = request.build();
        let response = self
            .read(|| self.client.query(request.clone()))
            .await
            .map_err(|e| self.error(Some(collection), e))?;
        response
            .result
            .into_iter()
            .map(|p| {
                Ok(Hit {
                    id: num_id(p.id)?,
                    score: p.score,
                    payload: decode_payload::<ChunkPayload>(p.payload)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
