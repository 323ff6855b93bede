use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::collection::{json_path, INDEXED_FIELDS, PAGE};
use super::*;
use crate::rag::store::contract;
use crate::rag::store::fixtures::{corpus, point};

const COLL: &str = "docs";

/// Unique directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "edge-store-test-{}-{nanos}-{n}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn seeded(dir: &TempDir) -> EdgeStore {
    let store = EdgeStore::open(dir.path()).unwrap();
    store.ensure_collection(COLL, 4).await.unwrap();
    assert_eq!(store.upsert(COLL, corpus("acme")).await.unwrap(), 5);
    assert_eq!(store.upsert(COLL, corpus("globex")).await.unwrap(), 5);
    store
}

/// Each contract case in its own directory.
struct Edge {
    store: EdgeStore,
    _dir: TempDir,
}

impl contract::Harness for Edge {
    fn store(&self) -> &dyn VectorStore {
        &self.store
    }
    fn fresh(&mut self, tag: &str) -> String {
        format!("{COLL}_{tag}")
    }
    fn page(&self) -> usize {
        PAGE
    }
}

contract::store_contract!({
    let dir = TempDir::new();
    let store = EdgeStore::open(dir.path()).unwrap();
    Edge { store, _dir: dir }
});

async fn points(store: &EdgeStore) -> usize {
    let infos = store.collections().await.unwrap();
    infos.iter().find(|c| c.name == COLL).unwrap().points
}

#[tokio::test]
async fn errors() {
    let dir = TempDir::new();
    let store = seeded(&dir).await;
    let err = store.ensure_collection(COLL, 8).await.unwrap_err();
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
    store.ensure_collection(COLL, 4).await.unwrap();
    let err = store
        .upsert(
            COLL,
            vec![ChunkPoint {
                vector: vec![1.0; 3],
                ..point("acme", "x", 0, [1.0; 4])
            }],
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
        .search(COLL, "acme", vec![1.0; 5], 3, None)
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
    for bad in ["", "../escape", "a b", &"x".repeat(65)] {
        let err = store.ensure_collection(bad, 4).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidName(_)), "{err}");
    }
    let err = store
        .search("missing", "acme", vec![1.0; 4], 3, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NoSuchCollection(ref n) if n == "missing"),
        "{err}"
    );
    let err = store.chunks("missing", "acme", None).await.unwrap_err();
    assert!(matches!(err, StoreError::NoSuchCollection(_)), "{err}");
    assert_eq!(points(&store).await, 10, "failed writes wrote nothing");
}

#[tokio::test]
async fn reopen_keeps_collections_and_points() {
    let dir = TempDir::new();
    {
        let store = seeded(&dir).await;
        store.ensure_collection("other", 3).await.unwrap();
        store.delete_source(COLL, "globex", "b.md").await.unwrap();
    }
    let store = EdgeStore::open(dir.path()).unwrap();
    let infos = store.collections().await.unwrap();
    let summary: Vec<_> = infos
        .iter()
        .map(|c| (c.name.as_str(), c.dim, c.points))
        .collect();
    assert_eq!(summary, [(COLL, 4, 8), ("other", 3, 0)]);
    store.ensure_collection(COLL, 4).await.unwrap();
    let hits = store
        .search(COLL, "globex", vec![1.0, 0.0, 0.0, 0.0], 10, None)
        .await
        .unwrap();
    assert_eq!(hits.len(), 3);
    assert!(hits
        .iter()
        .all(|h| h.payload.tenant == "globex" && h.payload.source == "a.md"));
    // Writes after a reopen must still land (segment versions come from the WAL).
    assert_eq!(store.upsert(COLL, corpus("globex")).await.unwrap(), 5);
    assert_eq!(points(&store).await, 10);
}

#[tokio::test]
async fn payload_indexes_exist() {
    let dir = TempDir::new();
    let store = seeded(&dir).await;
    let c = store.collection(COLL).unwrap();
    let schema = c.shard.info().payload_schema;
    for field in INDEXED_FIELDS {
        assert!(
            schema.contains_key(&json_path(field).unwrap()),
            "{field} index"
        );
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

#[tokio::test]
async fn flushed_writes_survive_a_crash() {
    let dir = TempDir::new();
    let store = seeded(&dir).await;
    store.delete_source(COLL, "acme", "b.md").await.unwrap();
    // Copying the live directory is what a crash leaves behind: only what was
    // flushed (the WAL lock forbids opening the original while `store` lives).
    let copy = TempDir::new();
    copy_dir(dir.path(), copy.path());
    let reopened = EdgeStore::open(copy.path()).unwrap();
    assert_eq!(points(&reopened).await, 8);
    let err = EdgeStore::open(dir.path())
        .err()
        .expect("the directory is locked by `store`");
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("in use by another process")),
        "{err}"
    );
    drop(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_and_readers() {
    let dir = TempDir::new();
    let store = Arc::new(EdgeStore::open(dir.path()).unwrap());
    let mut tasks = Vec::new();
    for t in 0..8u32 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            // Racing creators must agree on one shard.
            store.ensure_collection(COLL, 4).await.unwrap();
            let tenant = format!("t{t}");
            for round in 0..5 {
                store.upsert(COLL, corpus(&tenant)).await.unwrap();
                store
                    .search(COLL, &tenant, vec![1.0; 4], 3, None)
                    .await
                    .unwrap();
                if round % 2 == 0 {
                    store.delete_source(COLL, &tenant, "b.md").await.unwrap();
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(points(&store).await, 8 * 3);
}

#[tokio::test]
async fn ensure_adopts_a_shard_created_behind_its_back() {
    let dir = TempDir::new();
    let stale = EdgeStore::open(dir.path()).unwrap();
    // A shard appears after `stale` scanned the directory (what an interrupted creation
    // leaves); the lock forbids a second live store, so it is made elsewhere and copied in.
    let elsewhere = TempDir::new();
    drop(seeded(&elsewhere).await);
    copy_dir(&elsewhere.path().join(COLL), &dir.path().join(COLL));
    let err = stale.ensure_collection(COLL, 8).await.unwrap_err();
    assert!(
        matches!(err, StoreError::DimensionMismatch { expected: 4, .. }),
        "{err}"
    );
    stale.ensure_collection(COLL, 4).await.unwrap();
    assert_eq!(points(&stale).await, 10);
}
