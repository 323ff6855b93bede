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
use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::vectors_config::Config as VectorsConfigKind;
use qdrant_client::qdrant::{
    CollectionInfo as RemoteInfo, Condition, CountPointsBuilder, CreateCollectionBuilder,
    CreateFieldIndexCollectionBuilder, DeletePointsBuilder, Distance, FieldType, Filter,
    KeywordIndexParamsBuilder, NamedVectors, PayloadIncludeSelector, PointId, PointStruct, Query,
    QueryPointsBuilder, ScrollPointsBuilder, UpsertPointsBuilder, Value, VectorParamsBuilder,
    VectorsConfigBuilder,
};
use qdrant_client::{Payload, Qdrant, QdrantError};
use serde::de::DeserializeOwned;
use tonic::Code;

use super::edge::VECTOR_NAME;
use super::{
    point_id, valid_collection_name, ChunkPayload, ChunkPoint, CollectionInfo, Hit, StoreError,
    StoreFuture, StoredChunk, VectorStore,
};

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
    dims: RwLock<HashMap<String, usize>>,
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
            dims: RwLock::new(HashMap::new()),
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

    fn forget(&self, collection: &str) {
        let mut dims = self.dims.write().unwrap_or_else(PoisonError::into_inner);
        dims.remove(collection);
    }

    fn remember(&self, collection: &str, dim: usize) {
        let mut dims = self.dims.write().unwrap_or_else(PoisonError::into_inner);
        dims.insert(collection.to_owned(), dim);
    }

    /// The collection's info, or `None` if it does not exist.
    async fn info(&self, collection: &str) -> Result<Option<RemoteInfo>, StoreError> {
        match self.client.collection_info(collection).await {
            Ok(response) => Ok(response.result),
            Err(e) => match self.error(Some(collection), e) {
                StoreError::NoSuchCollection(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    /// The collection's dimension (cached), after checking its name.
    async fn dim(&self, collection: &str) -> Result<usize, StoreError> {
        if !valid_collection_name(collection) {
            return Err(StoreError::InvalidName(collection.to_owned()));
        }
        let cached = {
            let dims = self.dims.read().unwrap_or_else(PoisonError::into_inner);
            dims.get(collection).copied()
        };
        if let Some(dim) = cached {
            return Ok(dim);
        }
        let info = self.info(collection).await?;
        let info = info.ok_or_else(|| StoreError::NoSuchCollection(collection.to_owned()))?;
        let dim = dense_dim(collection, &info)?;
        self.remember(collection, dim);
        Ok(dim)
    }

    async fn check_dim(&self, collection: &str, got: usize) -> Result<(), StoreError> {
        let expected = self.dim(collection).await?;
        if got == expected {
            return Ok(());
        }
        Err(StoreError::DimensionMismatch {
            collection: collection.to_owned(),
            expected,
            got,
        })
    }

    async fn create(&self, name: &str, dim: usize) -> Result<(), StoreError> {
        let mut vectors = VectorsConfigBuilder::default();
        vectors.add_named_vector_params(
            VECTOR_NAME,
            VectorParamsBuilder::new(dim as u64, Distance::Cosine),
        );
        let request = CreateCollectionBuilder::new(name).vectors_config(vectors);
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
        let response = self
            .client
            .count(request)
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
        let Ok(dim) = dense_dim(&name, &info) else {
            return Ok(None);
        };
        self.remember(&name, dim);
        let points = match self.count(&name, None).await {
            Ok(n) => n,
            Err(StoreError::NoSuchCollection(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(CollectionInfo { name, dim, points }))
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
            let found = dense_dim(name, &info)?;
            self.remember(name, found);
            if found != dim {
                return Err(StoreError::DimensionMismatch {
                    collection: name.to_owned(),
                    expected: found,
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
            let dim = self.dim(collection).await?;
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
                let vectors = NamedVectors::default().add_vector(VECTOR_NAME, vector);
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
                let page = self
                    .client
                    .scroll(request)
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

    fn search<'a>(
        &'a self,
        collection: &'a str,
        tenant: &'a str,
        vector: Vec<f32>,
        top_k: usize,
        score_threshold: Option<f32>,
    ) -> StoreFuture<'a, Vec<Hit>> {
        async move {
            self.check_dim(collection, vector.len()).await?;
            if top_k == 0 {
                return Ok(Vec::new());
            }
            let mut request = QueryPointsBuilder::new(collection)
                .query(Query::new_nearest(vector))
                .using(VECTOR_NAME)
                .filter(tenant_filter(tenant, None))
                .limit(top_k as u64)
                .with_payload(true)
                .with_vectors(false);
            if let Some(threshold) = score_threshold {
                request = request.score_threshold(threshold);
            }
            let response = self
                .client
                .query(request)
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
        .boxed()
    }
}

/// The payload fields `chunks` reads.
#[derive(serde::Deserialize)]
struct ChunkKey {
    source: String,
    chunk: u32,
    content_hash: String,
}

/// `tenant == tenant` (and `source == source`), the filter behind every read and delete.
fn tenant_filter(tenant: &str, source: Option<&str>) -> Filter {
    let mut must = vec![Condition::matches("tenant", tenant.to_owned())];
    if let Some(source) = source {
        must.push(Condition::matches("source", source.to_owned()));
    }
    Filter::must(must)
}

fn is_protocol_mismatch(code: Code, msg: &str) -> bool {
    // An HTTP/1 peer either breaks the h2 handshake or drops the connection ("transport
    // error"), depending on timing.
    code == Code::Unimplemented
        || msg.contains("h2 protocol error")
        || msg.contains("transport error")
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

fn to_payload(payload: &ChunkPayload) -> Result<Payload, StoreError> {
    let json = serde_json::to_value(payload).map_err(backend)?;
    Payload::try_from(json).map_err(backend)
}

fn decode_payload<T: DeserializeOwned>(payload: HashMap<String, Value>) -> Result<T, StoreError> {
    // Via serde_json, which turns Qdrant's i64 into u32 and null into `None` as the edge store does.
    let json = serde_json::Value::from(Payload::from(payload));
    serde_json::from_value(json)
        .map_err(|e| StoreError::Backend(format!("malformed chunk payload: {e}")))
}

fn num_id(id: Option<PointId>) -> Result<u64, StoreError> {
    match id.and_then(|id| id.point_id_options) {
        Some(PointIdOptions::Num(n)) => Ok(n),
        Some(PointIdOptions::Uuid(u)) => {
            Err(StoreError::Backend(format!("unexpected point id {u}")))
        }
        None => Err(StoreError::Backend("point without an id".into())),
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

#[cfg(test)]
mod tests {
    //! Run against a real server when `QDRANT_URL` (gRPC, e.g. `http://127.0.0.1:6334`)
    //! is set, with `QDRANT_API_KEY` if the server needs one; otherwise they skip.
    //! Each test uses its own collections and drops them, even when it fails.

    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};

    use super::*;
    use crate::rag::store::fixtures::{corpus, point};

    const SKIP: &str = "skipped: QDRANT_URL is not set (no Qdrant server to test against)";

    /// A store on the test server plus the collections to drop afterwards.
    struct Server {
        store: QdrantStore,
        url: String,
        api_key: Option<String>,
        created: Vec<String>,
    }

    impl Server {
        /// `None` (after printing why) when no server is configured.
        fn get() -> Option<Self> {
            let url = std::env::var("QDRANT_URL").ok().filter(|u| !u.is_empty());
            let Some(url) = url else {
                eprintln!("{SKIP}");
                return None;
            };
            let api_key = std::env::var("QDRANT_API_KEY")
                .ok()
                .filter(|k| !k.is_empty());
            let store = QdrantStore::connect(&url, api_key.clone(), Duration::from_secs(30))
                .expect("QDRANT_URL is a valid URL");
            let created = Vec::new();
            Some(Self {
                store,
                url,
                api_key,
                created,
            })
        }

        /// A collection name no other test (or earlier run) uses; dropped with `self`.
        fn name(&mut self, tag: &str) -> String {
            let name = unique(tag);
            self.created.push(name.clone());
            name
        }

        /// A collection of dimension 4 holding [`corpus`] for two tenants.
        async fn seeded(&mut self, tag: &str) -> String {
            let name = self.name(tag);
            self.store.ensure_collection(&name, 4).await.unwrap();
            assert_eq!(self.store.upsert(&name, corpus("acme")).await.unwrap(), 5);
            assert_eq!(self.store.upsert(&name, corpus("globex")).await.unwrap(), 5);
            name
        }

        async fn points(&self, name: &str) -> usize {
            let infos = self.store.collections().await.unwrap();
            infos.iter().find(|c| c.name == name).unwrap().points
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let names = std::mem::take(&mut self.created);
            let (url, api_key) = (self.url.clone(), self.api_key.take());
            // A fresh client on its own runtime: the test's runtime is blocked in this
            // drop, so the store's channels (driven by that runtime) cannot be used here.
            let cleanup = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let client = Qdrant::from_url(&url)
                    .api_key(api_key)
                    .skip_compatibility_check()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    for name in names {
                        if let Err(e) = client.delete_collection(name.as_str()).await {
                            eprintln!("could not drop test collection `{name}`: {e}");
                        }
                    }
                });
            });
            let _ = cleanup.join();
        }
    }

    fn unique(tag: &str) -> String {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        format!("gh_test_{tag}_{}_{nanos}_{n}", std::process::id())
    }

    #[test]
    fn connect_checks_the_url_but_not_the_server() {
        for bad in [
            "",
            "localhost:6334",
            "ftp://host:6334",
            "http://",
            "héllo://x",
        ] {
            let err = QdrantStore::connect(bad, None, Duration::from_secs(1))
                .err()
                .expect(bad);
            assert!(matches!(err, StoreError::Backend(_)), "{bad}: {err}");
        }
        // Lazy: nothing listens on port 1, and no runtime is needed.
        QdrantStore::connect("http://127.0.0.1:1", None, Duration::from_secs(1)).unwrap();
        QdrantStore::connect(
            "HTTPS://qdrant.invalid:6334",
            Some("k".into()),
            Duration::from_secs(1),
        )
        .unwrap();
    }

    #[tokio::test]
    async fn unreachable_server_is_unavailable() {
        // Loopback port 1: the connection is refused at once, no server needed.
        let url = "http://127.0.0.1:1";
        let store = QdrantStore::connect(url, None, Duration::from_secs(5)).unwrap();
        let err = store.collections().await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        assert!(err.to_string().contains(url), "names the server: {err}");
        let err = store
            .search("docs", "acme", vec![1.0; 4], 3, None)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        let err = store.ensure_collection("docs", 4).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        let err = store.ensure_collection("../docs", 4).await.unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidName(_)),
            "checked before any call: {err}"
        );
    }

    #[tokio::test]
    async fn plain_http_endpoint_gets_a_hint() {
        // An HTTP/1-only listener on loopback stands in for a non-gRPC port.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            use std::io::{Read as _, Write as _};
            if let Ok((mut conn, _)) = listener.accept() {
                let _ = conn.read(&mut [0u8; 1024]);
                let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
            }
        });
        let store = QdrantStore::connect(&url, None, Duration::from_secs(5)).unwrap();
        let err = store.collections().await.unwrap_err();
        assert!(matches!(err, StoreError::Backend(_)), "{err}");
        assert!(err.to_string().contains("gRPC port"), "{err}");
    }

    #[tokio::test]
    async fn ensure_collection_and_dimension_checks() {
        let Some(mut server) = Server::get() else {
            return;
        };
        let name = server.seeded("dims").await;
        let store = &server.store;
        store.ensure_collection(&name, 4).await.unwrap();
        let err = store.ensure_collection(&name, 8).await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::DimensionMismatch {
                    expected: 4,
                    got: 8,
                    ..
                }
            ),
            "{err}"
        );
        let err = store
            .upsert(
                &name,
                vec![
                    point("acme", "x", 0, [1.0; 4]),
                    ChunkPoint {
                        vector: vec![1.0; 3],
                        ..point("acme", "x", 1, [1.0; 4])
                    },
                ],
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::DimensionMismatch {
                    expected: 4,
                    got: 3,
                    ..
                }
            ),
            "{err}"
        );
        let err = store
            .search(&name, "acme", vec![1.0; 5], 3, None)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::DimensionMismatch {
                    expected: 4,
                    got: 5,
                    ..
                }
            ),
            "{err}"
        );
        let err = store.ensure_collection(&name, 0).await.unwrap_err();
        assert!(matches!(err, StoreError::Backend(_)), "{err}");
        for bad in ["", "../escape", "a b", &"x".repeat(65)] {
            let err = store.ensure_collection(bad, 4).await.unwrap_err();
            assert!(matches!(err, StoreError::InvalidName(_)), "{err}");
        }
        let missing = unique("missing");
        let err = store
            .search(&missing, "acme", vec![1.0; 4], 3, None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::NoSuchCollection(ref n) if *n == missing),
            "{err}"
        );
        for err in [
            store.chunks(&missing, "acme", None).await.unwrap_err(),
            store
                .delete_source(&missing, "acme", "a.md")
                .await
                .unwrap_err(),
        ] {
            assert!(matches!(err, StoreError::NoSuchCollection(_)), "{err}");
        }
        let err = store.upsert(&missing, corpus("acme")).await.unwrap_err();
        assert!(matches!(err, StoreError::NoSuchCollection(_)), "{err}");
        assert_eq!(
            server.points(&name).await,
            10,
            "failed writes wrote nothing"
        );

        let info = server.store.client.collection_info(name.as_str()).await;
        let schema = info.unwrap().result.unwrap().payload_schema;
        for field in INDEXED_FIELDS {
            assert!(schema.contains_key(field), "{field} index");
        }
    }

    #[tokio::test]
    async fn collection_recreated_behind_the_stores_back() {
        let Some(mut server) = Server::get() else {
            return;
        };
        let name = server.seeded("recreate").await;
        let store = &server.store;
        // Caches dimension 4, then the collection disappears.
        store
            .search(&name, "acme", vec![1.0; 4], 1, None)
            .await
            .unwrap();
        store.client.delete_collection(name.as_str()).await.unwrap();
        let err = store
            .search(&name, "acme", vec![1.0; 4], 1, None)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NoSuchCollection(_)), "{err}");
        store.ensure_collection(&name, 8).await.unwrap();
        assert!(store
            .search(&name, "acme", vec![1.0; 8], 1, None)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn upsert_is_idempotent() {
        let Some(mut server) = Server::get() else {
            return;
        };
        let name = server.seeded("idem").await;
        let store = &server.store;
        assert_eq!(server.points(&name).await, 10);
        assert_eq!(store.upsert(&name, corpus("acme")).await.unwrap(), 5);
        let twice = vec![
            point("acme", "a.md", 0, [1.0; 4]),
            point("acme", "a.md", 0, [1.0; 4]),
        ];
        assert_eq!(store.upsert(&name, twice).await.unwrap(), 1);
        assert_eq!(server.points(&name).await, 10);
        assert_eq!(store.upsert(&name, Vec::new()).await.unwrap(), 0);
        // The overwrite took: a.md#0 now points along [1, 1, 1, 1].
        let hits = store
            .search(&name, "acme", vec![1.0; 4], 1, None)
            .await
            .unwrap();
        assert_eq!(
            (hits[0].payload.source.as_str(), hits[0].payload.chunk),
            ("a.md", 0)
        );
        assert!((hits[0].score - 1.0).abs() < 1e-5);
    }

    #[tokio::test]
    async fn search_is_tenant_scoped_and_ranked() {
        let Some(mut server) = Server::get() else {
            return;
        };
        let name = server.seeded("search").await;
        let store = &server.store;
        for tenant in ["acme", "globex"] {
            let hits = store
                .search(&name, tenant, vec![1.0, 0.0, 0.0, 0.0], 10, None)
                .await
                .unwrap();
            assert_eq!(hits.len(), 5, "every chunk of {tenant}, none of the other");
            assert!(hits.iter().all(|h| h.payload.tenant == tenant));
            assert!(
                hits.windows(2).all(|w| w[0].score >= w[1].score),
                "best first"
            );
            assert!(
                (hits[0].score - 1.0).abs() < 1e-5,
                "cosine of identical vector"
            );
            assert_eq!(
                hits[0].payload,
                corpus(tenant)[0].payload,
                "payload round-trips"
            );
            assert_eq!(hits[1].payload.title, None);
            let p = &hits[0].payload;
            let id = point_id(&p.tenant, &p.source, p.chunk, &p.content_hash);
            assert_eq!(hits[0].id, id);
        }
        assert!(store
            .search(&name, "initech", vec![1.0; 4], 10, None)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn search_threshold_and_top_k() {
        let Some(mut server) = Server::get() else {
            return;
        };
        let name = server.seeded("threshold").await;
        let store = &server.store;
        let query = vec![1.0, 0.0, 0.0, 0.0];
        let top2 = store
            .search(&name, "acme", query.clone(), 2, None)
            .await
            .unwrap();
        assert_eq!(top2.len(), 2);
        assert_eq!((top2[0].payload.chunk, top2[1].payload.chunk), (0, 1));
        // a.md#0 scores 1.0, a.md#1 ~0.994, a.md#2 ~0.707, b.md chunks 0.0.
        let near = store
            .search(&name, "acme", query.clone(), 10, Some(0.9))
            .await
            .unwrap();
        assert_eq!(near.len(), 2);
        assert!(near.iter().all(|h| h.score >= 0.9));
        let some = store
            .search(&name, "acme", query.clone(), 10, Some(0.5))
            .await
            .unwrap();
        assert_eq!(some.len(), 3);
        assert!(store
            .search(&name, "acme", query, 0, None)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn chunks_by_tenant_and_source() {
        let Some(mut server) = Server::get() else {
            return;
        };
        let name = server.seeded("chunks").await;
        let store = &server.store;
        let all = store.chunks(&name, "acme", None).await.unwrap();
        let keys: Vec<_> = all.iter().map(|c| (c.source.as_str(), c.chunk)).collect();
        assert_eq!(
            keys,
            [
                ("a.md", 0),
                ("a.md", 1),
                ("a.md", 2),
                ("b.md", 0),
                ("b.md", 1)
            ]
        );
        assert_eq!(all[1].id, point_id("acme", "a.md", 1, "h-a.md-1"));
        assert_eq!(all[1].content_hash, "h-a.md-1");
        let b = store.chunks(&name, "globex", Some("b.md")).await.unwrap();
        assert_eq!(b.len(), 2);
        assert!(b.iter().all(|c| c.source == "b.md"));
        assert_eq!(b[0].id, point_id("globex", "b.md", 0, "h-b.md-0"));
        assert!(store
            .chunks(&name, "initech", None)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn chunks_pages_through_large_sets() {
        let Some(mut server) = Server::get() else {
            return;
        };
        let name = server.name("paging");
        let store = &server.store;
        store.ensure_collection(&name, 4).await.unwrap();
        // More than two scroll pages, and more than one upsert request.
        let n = PAGE as usize * 2 + 7;
        let many: Vec<_> = (0..n as u32)
            .map(|i| point("acme", "big", i, [1.0; 4]))
            .collect();
        assert_eq!(store.upsert(&name, many).await.unwrap(), n);
        store.upsert(&name, corpus("globex")).await.unwrap();
        let listed = store.chunks(&name, "acme", Some("big")).await.unwrap();
        assert_eq!(listed.len(), n);
        assert!(listed.iter().enumerate().all(|(i, c)| c.chunk == i as u32));
    }

    #[tokio::test]
    async fn delete_ignores_other_tenants_ids() {
        let Some(mut server) = Server::get() else {
            return;
        };
        let name = server.seeded("delete").await;
        let store = &server.store;
        let globex_id = point_id("globex", "a.md", 0, "h-a.md-0");
        assert_eq!(
            store.delete(&name, "acme", vec![globex_id]).await.unwrap(),
            0
        );
        assert_eq!(server.points(&name).await, 10);
        let acme_id = point_id("acme", "a.md", 0, "h-a.md-0");
        let n = store
            .delete(&name, "acme", vec![acme_id, globex_id, 42])
            .await
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(server.points(&name).await, 9);
        let acme = store.chunks(&name, "acme", None).await.unwrap();
        assert!(acme.iter().all(|c| c.id != acme_id));
        assert_eq!(store.chunks(&name, "globex", None).await.unwrap().len(), 5);
        assert_eq!(store.delete(&name, "acme", Vec::new()).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn delete_source_only_touches_own_tenant() {
        let Some(mut server) = Server::get() else {
            return;
        };
        let name = server.seeded("delsrc").await;
        let store = &server.store;
        assert_eq!(store.delete_source(&name, "acme", "a.md").await.unwrap(), 3);
        assert_eq!(store.delete_source(&name, "acme", "a.md").await.unwrap(), 0);
        let acme = store.chunks(&name, "acme", None).await.unwrap();
        assert_eq!(acme.len(), 2);
        assert!(acme.iter().all(|c| c.source == "b.md"));
        let globex_a = store.chunks(&name, "globex", Some("a.md")).await.unwrap();
        assert_eq!(globex_a.len(), 3);
        let hits = store
            .search(&name, "acme", vec![1.0, 0.0, 0.0, 0.0], 10, None)
            .await
            .unwrap();
        assert!(hits.iter().all(|h| h.payload.source == "b.md"));
        assert_eq!(server.points(&name).await, 7);
    }

    #[tokio::test]
    async fn collections_lists_dims_and_counts() {
        let Some(mut server) = Server::get() else {
            return;
        };
        let docs = server.seeded("list_a").await;
        let other = server.name("list_b");
        server.store.ensure_collection(&other, 3).await.unwrap();
        let infos = server.store.collections().await.unwrap();
        assert!(infos.windows(2).all(|w| w[0].name < w[1].name), "sorted");
        // The server may hold other collections; look at ours only.
        let ours: Vec<_> = infos
            .iter()
            .filter(|c| c.name == docs || c.name == other)
            .map(|c| (c.name.as_str(), c.dim, c.points))
            .collect();
        let mut expected = vec![(docs.as_str(), 4, 10), (other.as_str(), 3, 0)];
        expected.sort();
        assert_eq!(ours, expected);
    }
}
