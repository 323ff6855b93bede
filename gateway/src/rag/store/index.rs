//! Search index settings shared by both stores, so that an embedded and a server collection
//! are built and searched alike (`docs/rag.md`, "Search index").

/// HNSW graph links per node.
pub const HNSW_M: usize = 16;
/// Candidates considered while building the graph.
pub const HNSW_EF_CONSTRUCT: usize = 100;
/// Candidates considered per search; above `top_k`, it is what keeps recall@10 at or above
/// 0.95 of exact search (`bench/rag`).
pub const HNSW_EF: u64 = 128;
/// A segment whose vectors outgrow this many KiB gets an HNSW index; smaller ones (about
/// 6,500 vectors of 384 dimensions) are searched exactly, which is as fast at that size.
pub const INDEXING_THRESHOLD_KB: usize = 10_000;
/// A filtered search expected to touch fewer vectors than this many KiB (a small tenant)
/// scans them exactly instead of walking the graph.
pub const FULL_SCAN_THRESHOLD_KB: usize = 10_000;

/// Name of the sparse keyword vector ([`crate::rag::keywords`]) of every collection.
pub const KEYWORDS_NAME: &str = "keywords";
/// Reciprocal rank fusion's k: a hit ranked r-th on one side scores weight / (k + r) there.
pub const RRF_K: usize = 2;

/// How the dense and keyword sides of a hybrid search are fused (both stores offer both).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fusion {
    /// Distribution-based score fusion: each side's scores are normalised (mean ± 3σ to
    /// 0..1) and summed, so a clear keyword match wins and near-ties on the keyword side
    /// (an identifier in two overlapping chunks) go to the dense side.
    Scores,
    /// Weighted reciprocal rank fusion, (dense, keyword) weights.
    Ranks([f32; 2]),
}

/// A query naming an identifier is a lookup, where score magnitudes matter: [`Fusion::Scores`].
/// Otherwise the question is about meaning: dense ranks decide, keywords break near-ties.
/// On `bench/rag`: recall@1 on identifier questions 0.52 dense, 0.68 with equal-weight rank
/// fusion, 0.98 like this; paraphrased questions 0.86 dense and like this, 0.84 with equal
/// weights.
pub fn fusion(identifiers: bool) -> Fusion {
    if identifiers {
        Fusion::Scores
    } else {
        Fusion::Ranks([1.0, 0.3])
    }
}

/// Candidates each side of a hybrid search contributes to the fusion.
pub fn prefetch(top_k: usize) -> usize {
    (top_k * 4).max(20)
}
