//! The behaviour every [`VectorStore`] promises, written once and run by each store's tests
//! (`store_contract!` in `edge/tests.rs` and `qdrant/tests.rs`): tenant scoping, ranking,
//! thresholds, idempotent upserts, listing with paging, and deletes that never cross
//! tenants, and an HNSW index that keeps search close to exact.

use std::time::{Duration, Instant};

use super::fixtures::{corpus, point};
use super::{index, point_id, ChunkPayload, ChunkPoint, StoreError, VectorStore};

/// A store under test and the collections it may use.
pub(crate) trait Harness {
    /// The store under test.
    fn store(&self) -> &dyn VectorStore;
    /// A collection name no other case uses (the harness drops it afterwards if it must).
    fn fresh(&mut self, tag: &str) -> String;
    /// How many chunks one listing page holds, so paging can be made to span pages.
    fn page(&self) -> usize;
}

/// Generates one `#[tokio::test]` per contract case; `$harness` makes a fresh
/// `impl Harness` for each.
macro_rules! store_contract {
    ($harness:expr) => {
        mod store_contract {
            use super::*;
            use $crate::rag::store::contract;
            $crate::rag::store::contract::store_contract!(@cases $harness;
                search_is_tenant_scoped_and_ranked,
                search_threshold_and_top_k,
                upsert_is_idempotent,
                chunks_by_tenant_and_source,
                chunks_pages_through_large_sets,
                delete_ignores_other_tenants_ids,
                delete_source_only_touches_own_tenant,
                index_past_the_threshold_keeps_search_near_exact,
                hybrid_search_finds_identifiers_dense_search_ranks_last
            );
        }
    };
    (@cases $harness:expr; $($case:ident),*) => {
        $(
            #[tokio::test]
            async fn $case() {
                let mut h = $harness;
                contract::$case(&mut h).await;
            }
        )*
    };
}
pub(crate) use store_contract;

/// A fresh collection of dimension 4 holding [`corpus`] for `acme` and `globex`.
async fn seeded(h: &mut impl Harness, tag: &str) -> String {
    let name = h.fresh(tag);
    let store = h.store();
    store.ensure_collection(&name, 4).await.unwrap();
    assert_eq!(store.upsert(&name, corpus("acme")).await.unwrap(), 5);
    assert_eq!(store.upsert(&name, corpus("globex")).await.unwrap(), 5);
    name
}

async fn points(store: &dyn VectorStore, name: &str) -> usize {
    let infos = store.collections().await.unwrap();
    infos.iter().find(|c| c.name == name).unwrap().points
}

pub(crate) async fn search_is_tenant_scoped_and_ranked(h: &mut impl Harness) {
    let name = seeded(h, "search").await;
    let store = h.store();
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

pub(crate) async fn search_threshold_and_top_k(h: &mut impl Harness) {
    let name = seeded(h, "threshold").await;
    let store = h.store();
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

pub(crate) async fn upsert_is_idempotent(h: &mut impl Harness) {
    let name = seeded(h, "idem").await;
    let store = h.store();
    assert_eq!(points(store, &name).await, 10);
    assert_eq!(store.upsert(&name, corpus("acme")).await.unwrap(), 5);
    let twice = vec![
        point("acme", "a.md", 0, [1.0; 4]),
        point("acme", "a.md", 0, [1.0; 4]),
    ];
    assert_eq!(store.upsert(&name, twice).await.unwrap(), 1);
    assert_eq!(points(store, &name).await, 10);
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

pub(crate) async fn chunks_by_tenant_and_source(h: &mut impl Harness) {
    let name = seeded(h, "chunks").await;
    let store = h.store();
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

pub(crate) async fn chunks_pages_through_large_sets(h: &mut impl Harness) {
    let name = h.fresh("paging");
    // More than two listing pages, and more than one upsert request.
    let n = h.page() * 2 + 7;
    let store = h.store();
    store.ensure_collection(&name, 4).await.unwrap();
    let many: Vec<_> = (0..n as u32)
        .map(|i| point("acme", "big", i, [1.0; 4]))
        .collect();
    assert_eq!(store.upsert(&name, many).await.unwrap(), n);
    store.upsert(&name, corpus("globex")).await.unwrap();
    let listed = store.chunks(&name, "acme", Some("big")).await.unwrap();
    assert_eq!(listed.len(), n);
    assert!(listed.iter().enumerate().all(|(i, c)| c.chunk == i as u32));
}

pub(crate) async fn delete_ignores_other_tenants_ids(h: &mut impl Harness) {
    let name = seeded(h, "delete").await;
    let store = h.store();
    let globex_id = point_id("globex", "a.md", 0, "h-a.md-0");
    assert_eq!(
        store.delete(&name, "acme", vec![globex_id]).await.unwrap(),
        0
    );
    assert_eq!(points(store, &name).await, 10);
    let acme_id = point_id("acme", "a.md", 0, "h-a.md-0");
    let n = store
        .delete(&name, "acme", vec![acme_id, globex_id, 42])
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(points(store, &name).await, 9);
    let acme = store.chunks(&name, "acme", None).await.unwrap();
    assert!(acme.iter().all(|c| c.id != acme_id));
    assert_eq!(store.chunks(&name, "globex", None).await.unwrap().len(), 5);
    assert_eq!(store.delete(&name, "acme", Vec::new()).await.unwrap(), 0);
}

pub(crate) async fn delete_source_only_touches_own_tenant(h: &mut impl Harness) {
    let name = seeded(h, "delsrc").await;
    let store = h.store();
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
    assert_eq!(points(store, &name).await, 7);
}

/// Deterministic unit vectors near a random 16-dimensional subspace of `dim` dimensions:
/// like sentence embeddings, whose intrinsic dimension is far below their size. (Uniform
/// random vectors are the worst case of every graph index; `bench/rag` measures both.)
pub(crate) fn embedding_like(seed: u64, dim: usize) -> impl FnMut() -> Vec<f32> {
    const INTRINSIC: usize = 16;
    let mut state = seed | 1;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let basis: Vec<Vec<f32>> = (0..INTRINSIC)
        .map(|_| (0..dim).map(|_| uniform()).collect())
        .collect();
    move || {
        let z: Vec<f32> = (0..INTRINSIC).map(|_| uniform()).collect();
        let v: Vec<f32> = (0..dim)
            .map(|i| basis.iter().zip(&z).map(|(b, z)| b[i] * z).sum::<f32>() + 0.02 * uniform())
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / norm).collect()
    }
}

/// Ids of the `k` vectors of `points` nearest to `query` by cosine, computed here.
fn exact_top(points: &[(u64, Vec<f32>)], query: &[f32], k: usize) -> Vec<u64> {
    let mut scored: Vec<(f32, u64)> = points
        .iter()
        .map(|(id, v)| (v.iter().zip(query).map(|(a, b)| a * b).sum(), *id))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(k).map(|(_, id)| id).collect()
}

pub(crate) async fn index_past_the_threshold_keeps_search_near_exact(h: &mut impl Harness) {
    const DIM: usize = 384;
    // Vectors past twice the indexing threshold: a server spreads writes over two
    // segments (on two cores), and each must outgrow the threshold to be indexed.
    let big = 2 * index::INDEXING_THRESHOLD_KB * 1024 / (DIM * 4) + 1_000;
    let name = h.fresh("hnsw");
    let store = h.store();
    let err = store.index(&name).await.unwrap_err();
    assert!(matches!(err, StoreError::NoSuchCollection(_)), "{err}");
    store.ensure_collection(&name, DIM).await.unwrap();
    let mut random = embedding_like(7, DIM);
    let mut stored: Vec<(&str, u64, Vec<f32>)> = Vec::new();
    for (tenant, n) in [("big", big), ("small", 300)] {
        for start in (0..n).step_by(1000) {
            let batch: Vec<ChunkPoint> = (start..n.min(start + 1000))
                .map(|i| ChunkPoint {
                    vector: random(),
                    payload: ChunkPayload {
                        tenant: tenant.into(),
                        source: format!("doc-{}.md", i / 100),
                        chunk: i as u32,
                        content_hash: format!("h{i}"),
                        text: String::new(),
                        title: None,
                    },
                })
                .collect();
            for p in &batch {
                let q = &p.payload;
                let id = point_id(&q.tenant, &q.source, q.chunk, &q.content_hash);
                stored.push((tenant, id, p.vector.clone()));
            }
            store.upsert(&name, batch).await.unwrap();
        }
    }
    store.index(&name).await.unwrap();
    // The embedded store indexes before `index` returns; a server does it in the background.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let infos = store.collections().await.unwrap();
        let info = infos.iter().find(|c| c.name == name).unwrap();
        assert_eq!(info.points, big + 300);
        // A server leaves the points that arrive after a segment is sealed for indexing in
        // a fresh segment, below the threshold: searched exactly, as they should be.
        if info.indexed * 10 >= info.points * 9 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {} vectors indexed after 180 s",
            info.indexed,
            info.points
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (mut found, mut expected) = (0, 0);
    for tenant in ["big", "small"] {
        let own: Vec<(u64, Vec<f32>)> = stored
            .iter()
            .filter(|(t, _, _)| *t == tenant)
            .map(|(_, id, v)| (*id, v.clone()))
            .collect();
        for _ in 0..20 {
            let query = random();
            let exact = exact_top(&own, &query, 10);
            let hits = store.search(&name, tenant, query, 10, None).await.unwrap();
            assert_eq!(hits.len(), 10);
            assert!(hits.iter().all(|h| h.payload.tenant == tenant));
            assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
            found += hits.iter().filter(|h| exact.contains(&h.id)).count();
            expected += exact.len();
        }
    }
    let recall = found as f64 / expected as f64;
    assert!(recall >= 0.95, "recall@10 {recall:.3} against exact search");
}

pub(crate) async fn hybrid_search_finds_identifiers_dense_search_ranks_last(h: &mut impl Harness) {
    let name = h.fresh("hybrid");
    let store = h.store();
    store.ensure_collection(&name, 4).await.unwrap();
    // Twelve advisories alike in meaning (close vectors) and apart in their identifiers;
    // the one asked about is the farthest from the query vector: dense ranks it last.
    let advisory = |tenant: &str, i: u32| {
        let mut p = point(tenant, "advisories.md", i, [1.0, 0.05 * i as f32, 0.0, 0.0]);
        p.payload.text = format!("CVE-2026-10{i:02}: upgrade the firmware of unit {i}.");
        p
    };
    store
        .upsert(&name, (0..12).map(|i| advisory("acme", i)).collect())
        .await
        .unwrap();
    let mut other = advisory("globex", 11);
    other.vector = vec![1.0, 0.0, 0.0, 0.0];
    store.upsert(&name, vec![other]).await.unwrap();
    let query = vec![1.0, 0.0, 0.0, 0.0];
    let question = "Which firmware fixes CVE-2026-1011?";
    let dense = store
        .search(&name, "acme", query.clone(), 12, None)
        .await
        .unwrap();
    assert_eq!(dense.last().unwrap().payload.chunk, 11);
    let hybrid = store
        .search_hybrid(&name, "acme", query.clone(), question, 3, None)
        .await
        .unwrap();
    assert_eq!(hybrid.len(), 3);
    assert_eq!(
        hybrid[0].payload.chunk, 11,
        "the exact identifier ranks first"
    );
    assert!(hybrid.iter().all(|h| h.payload.tenant == "acme"));
    assert!(hybrid.windows(2).all(|w| w[0].score >= w[1].score));
    // The threshold (cosine 0.95) filters the dense side only: the keyword match (cosine
    // 0.88) is still found.
    let strict = store
        .search_hybrid(&name, "acme", query.clone(), question, 10, Some(0.95))
        .await
        .unwrap();
    assert!(strict.iter().any(|h| h.payload.chunk == 11), "{strict:?}");
    // No term the collection knows: the dense order.
    let unknown = store
        .search_hybrid(&name, "acme", query, "zzz qqq", 3, None)
        .await
        .unwrap();
    let chunks: Vec<u32> = unknown.iter().map(|h| h.payload.chunk).collect();
    assert_eq!(chunks, [0, 1, 2]);
}
