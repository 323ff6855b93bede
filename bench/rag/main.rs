//! RAG benchmark: retrieval quality on `bench/rag` (recall@1/@5, MRR), embedding throughput,
//! ingestion rate, and qdrant-edge search latency at 100k vectors. Prints tables.
//!
//! `cargo bench -p gateway --bench rag` (set `RAG_BENCH_POINTS` to change the 100k).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use gateway::backends::embedding::EmbeddingBackend;
use gateway::config::{RagConfig, StoreConfig};
use gateway::rag::chunk::ChunkSize;
use gateway::rag::store::{ChunkPayload, ChunkPoint, EdgeStore, VectorStore};
use gateway::rag::Rag;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gh-bench-rag-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[derive(serde::Deserialize)]
struct Question {
    question: String,
    source: String,
    answer_contains: String,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let model_dir = repo().join("models/all-minilm-l6-v2");
    let spec = engine::EmbeddingSpec {
        id: "all-minilm-l6-v2".into(),
        dir: model_dir,
        max_tokens: 256,
    };
    let embedder = Arc::new(engine::Embedder::load(&spec).expect("run scripts/fetch-models"));
    let backend = Arc::new(EmbeddingBackend::new(embedder.clone()));

    // Embedding throughput: the corpus's paragraphs, one at a time and in batches.
    let corpus = repo().join("bench/rag/corpus");
    let mut paragraphs = Vec::new();
    for e in std::fs::read_dir(&corpus).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        paragraphs.extend(text.lines().filter(|l| l.len() > 80).map(str::to_string));
    }
    paragraphs.truncate(96);
    println!(
        "## Embedding throughput (all-MiniLM-L6-v2, {} paragraphs)\n",
        paragraphs.len()
    );
    println!("| mode | texts/s | ratio |\n|---|---:|---:|");
    let t = Instant::now();
    for p in &paragraphs {
        backend.embed(vec![p.clone()]).await.unwrap();
    }
    let single = paragraphs.len() as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    backend.embed(paragraphs.clone()).await.unwrap();
    let batched = paragraphs.len() as f64 / t.elapsed().as_secs_f64();
    println!("| one text per call | {single:.1} | 1.00 |");
    println!(
        "| batches of 32 | {batched:.1} | {:.2} |\n",
        batched / single
    );

    // Ingestion and retrieval quality through the real pipeline.
    let data = temp("eval");
    let store: Arc<dyn VectorStore> = Arc::new(EdgeStore::open(&data).unwrap());
    let config = RagConfig {
        store: StoreConfig::Edge {
            data_dir: data.clone(),
        },
        embedding_model: "all-minilm-l6-v2".into(),
        chunk: ChunkSize::default(),
    };
    let rag = Rag::with_model(config, store.clone(), backend.clone());
    let t = Instant::now();
    let report = rag
        .ingest_paths("eval", "bench", std::slice::from_ref(&corpus), &|_, _| {})
        .await
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let again = rag
        .ingest_paths("eval", "bench", std::slice::from_ref(&corpus), &|_, _| {})
        .await
        .unwrap();
    let again_secs = t.elapsed().as_secs_f64();
    println!(
        "## Ingestion ({} files, {} chunks of <= 200 tokens)\n",
        report.files, report.chunks
    );
    println!("| run | chunks written | seconds | chunks/s |\n|---|---:|---:|---:|");
    println!(
        "| first | {} | {secs:.2} | {:.1} |",
        report.written,
        report.chunks as f64 / secs
    );
    println!(
        "| again (unchanged) | {} | {again_secs:.2} | {:.1} |\n",
        again.written,
        again.chunks as f64 / again_secs
    );

    let questions: Vec<Question> =
        std::fs::read_to_string(repo().join("bench/rag/questions.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let (mut at1, mut at5, mut rr) = (0usize, 0usize, 0.0f64);
    for q in &questions {
        let hits = rag
            .search("eval", "bench", &q.question, 5, None)
            .await
            .unwrap();
        let rank = hits.iter().position(|h| {
            h.payload.source.ends_with(&format!("/{}", q.source))
                && h.payload.text.contains(&q.answer_contains)
        });
        if let Some(r) = rank {
            at5 += 1;
            at1 += usize::from(r == 0);
            rr += 1.0 / (r as f64 + 1.0);
        }
    }
    let n = questions.len() as f64;
    println!(
        "## Retrieval quality ({} questions, qdrant-edge, top 5)\n",
        questions.len()
    );
    println!("| recall@1 | recall@5 | MRR@5 |\n|---:|---:|---:|");
    println!(
        "| {:.2} | {:.2} | {:.3} |\n",
        at1 as f64 / n,
        at5 as f64 / n,
        rr / n
    );
    drop(rag);
    drop(store);
    let _ = std::fs::remove_dir_all(&data);

    // Search latency at scale: random unit vectors (the index cannot exploit structure).
    let points: usize = std::env::var("RAG_BENCH_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dim = embedder.dim();
    let data = temp("scale");
    let store = EdgeStore::open(&data).unwrap();
    store.ensure_collection("scale", dim).await.unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut unit = move || {
        let v: Vec<f32> = (0..dim)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect::<Vec<f32>>()
    };
    let t = Instant::now();
    for batch in 0..points.div_ceil(1000) {
        let pts = (0..1000.min(points - batch * 1000))
            .map(|i| ChunkPoint {
                vector: unit(),
                payload: ChunkPayload {
                    tenant: if i % 10 == 0 { "small" } else { "big" }.into(),
                    source: format!("doc-{batch}.md"),
                    chunk: i as u32,
                    content_hash: format!("sha256:{batch}-{i}"),
                    text: "x".repeat(200),
                    title: None,
                },
            })
            .collect();
        store.upsert("scale", pts).await.unwrap();
    }
    let load = t.elapsed().as_secs_f64();
    println!("## Search latency, qdrant-edge, {points} vectors of {dim} dimensions\n");
    println!(
        "Loaded in {load:.1} s ({:.0} points/s).\n",
        points as f64 / load
    );
    println!("| tenant (share of points) | p50 ms | p99 ms | p99/p50 |\n|---|---:|---:|---:|");
    for (tenant, share) in [("big", "90%"), ("small", "10%")] {
        let mut ms = Vec::new();
        for _ in 0..200 {
            let q = unit();
            let t = Instant::now();
            store.search("scale", tenant, q, 5, None).await.unwrap();
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let (p50, p99) = (percentile(&ms, 0.5), percentile(&ms, 0.99));
        println!(
            "| {tenant} ({share}) | {p50:.2} | {p99:.2} | {:.2} |",
            p99 / p50
        );
    }
    drop(store);
    let _ = std::fs::remove_dir_all(&data);
}
