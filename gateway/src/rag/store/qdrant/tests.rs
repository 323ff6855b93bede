//! Run against a real Qdrant server: `QDRANT_URL`'s (gRPC, e.g. `http://127.0.0.1:6334`,
//! with `QDRANT_API_KEY` if it needs one), or else one these tests start from
//! `../shared/qdrant/qdrant` (`QDRANT_BIN`), shared by the whole test process.
//! Each test uses its own collections and drops them, even when it fails.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::*;
use crate::rag::store::contract;
use crate::rag::store::fixtures::{corpus, point};

#[path = "../../../../tests/common/qdrant.rs"]
mod test_server;
use test_server::Qdrant as TestServer;

/// A store on the test server plus the collections to drop afterwards.
struct Server {
    store: QdrantStore,
    url: String,
    api_key: Option<String>,
    created: Vec<String>,
}

impl Server {
    /// A store on the shared test server.
    fn new() -> Self {
        Self::on(TestServer::shared())
    }

    /// A store on `server`.
    fn on(server: &TestServer) -> Self {
        let (url, api_key) = (server.grpc_url.clone(), server.api_key.clone());
        let store = QdrantStore::connect(&url, api_key.clone(), Duration::from_secs(30))
            .expect("the test server's URL is valid");
        Self {
            store,
            url,
            api_key,
            created: Vec::new(),
        }
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

impl contract::Harness for Server {
    fn store(&self) -> &dyn VectorStore {
        &self.store
    }
    fn fresh(&mut self, tag: &str) -> String {
        self.name(tag)
    }
    fn page(&self) -> usize {
        PAGE as usize
    }
}

contract::store_contract!(Server::new());

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
    let mut server = Server::new();
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
    let mut server = Server::new();
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
async fn collections_lists_dims_and_counts() {
    let mut server = Server::new();
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

#[tokio::test]
async fn the_api_key_is_sent_and_a_wrong_one_is_named() {
    let server = TestServer::start(Some("gatehouse-test-key"));
    let mut keyed = Server::on(&server);
    let name = keyed.name("keyed");
    keyed.store.ensure_collection(&name, 4).await.unwrap();
    assert_eq!(keyed.store.upsert(&name, corpus("acme")).await.unwrap(), 5);
    for key in [None, Some("wrong-key".to_string())] {
        let other =
            QdrantStore::connect(&server.grpc_url, key.clone(), Duration::from_secs(30)).unwrap();
        let err = other.collections().await.unwrap_err();
        assert!(matches!(err, StoreError::Backend(_)), "{key:?}: {err}");
        assert!(
            err.to_string().contains("rag.api_key_env"),
            "{key:?}: {err}"
        );
        let err = other
            .search(&name, "acme", vec![1.0; 4], 3, None)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("refused"), "{key:?}: {err}");
    }
    // Dropped before the server, so the collection is dropped while it still runs.
    drop(keyed);
}

#[test]
fn unserved_reads_are_unavailable_and_other_internal_errors_are_not() {
    let store = QdrantStore::connect("http://127.0.0.1:1", None, Duration::from_secs(1)).unwrap();
    // What Qdrant 1.18 answered a count while it was indexing (seen in CI).
    let busy = tonic::Status::internal("Service internal error: 0 of 0 read operations failed");
    let peer_down = tonic::Status::internal(
        "Service internal error: 1 of 1 read operations failed:\n  Service internal error: \
         Tonic status error: code: 'The service is currently unavailable'",
    );
    for status in [busy, peer_down] {
        let err = store.error(Some("c"), QdrantError::ResponseError { status });
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    }
    let other = tonic::Status::internal("Service internal error: segment is broken");
    let err = store.error(Some("c"), QdrantError::ResponseError { status: other });
    assert!(matches!(err, StoreError::Backend(_)), "{err}");
}
