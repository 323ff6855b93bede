//! The behaviour every [`VectorStore`] promises, written once and run by each store's tests
//! (`store_contract!` in `edge/tests.rs` and `qdrant/tests.rs`): tenant scoping, ranking,
//! thresholds, idempotent upserts, listing with paging, and deletes that never cross
//! tenants.

use super::fixtures::{corpus, point};
use super::{point_id, VectorStore};

/// A store under test and the collections it may use.
pub(crate) trait Harness {
    /// The store under test.
    fn store(&self) -> &dyn VectorStore;
    /// A collection name no other case uses (the harness drops it afterwards if it must).
    fn fresh(&mut self, tag: &str) -> String;
    /// How many chunks one listing page holds, so paging can be made to span pages.
    fn page(&self) -> usize;
}

/// Generates one `#[tokio::test]` per contract case. `$harness` is an expression giving
/// `Option<impl Harness>`; `None` skips the case (a server that is not configured).
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
                delete_source_only_touches_own_tenant
            );
        }
    };
    (@cases $harness:expr; $($case:ident),*) => {
        $(
            #[tokio::test]
            async fn $case() {
                if let Some(mut h) = $harness {
                    contract::$case(&mut h).await;
                }
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
