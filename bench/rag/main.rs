//! RAG benchmark: retrieval quality on `bench/rag` (recall@1/@5, MRR), embedding throughput,
//! ingestion rate, and search latency and recall@10 at 100k vectors in qdrant-edge (before
//! and after indexing) and in a Qdrant server started from `../shared/qdrant/`. Prints tables.
//!
//! `cargo test --workspace --locked --bench rag` (set `RAG_BENCH_POINTS` to change the 100k).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway::backends::embedding::EmbeddingBackend;
use gateway::config::{RagConfig, SearchMode, StoreConfig};
use gateway::rag::chunk::ChunkSize;
use gateway::rag::store::{
    point_id, ChunkPayload, ChunkPoint, EdgeStore, QdrantStore, VectorStore,
};
use gateway::rag::Rag;

#[path = "../../gateway/tests/common/qdrant.rs"]
mod qdrant_server;

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

    // Embedding throughput: the corpus's paragraphs, one at a time and in batches, here and
    // in sentence-transformers (the reference implementation) on the same texts.
    let corpus = repo().join("bench/rag/corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut paragraphs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).unwrap();
        paragraphs.extend(text.lines().filter(|l| l.len() > 80).map(str::to_string));
    }
    paragraphs.truncate(128);
    let tokens: usize = paragraphs
        .iter()
        .map(|p| embedder.count_tokens(p).unwrap().min(256))
        .sum();
    println!(
        "## Embedding throughput (all-MiniLM-L6-v2, {} paragraphs, {tokens} tokens, {} threads, \
         fastest of {TRIALS} trials)\n",
        paragraphs.len(),
        threads()
    );
    println!(
        "| engine | mode | texts/s | tokens/s | vs sentence-transformers |\n|---|---|---:|---:|---:|"
    );
    // Warm-up: the first call pays for allocations the timed ones reuse.
    backend.embed(paragraphs[..4].to_vec()).await.unwrap();
    // The fastest of three trials, on both sides: the machine's noise only ever adds time.
    let mut single = f64::INFINITY;
    let mut batched = f64::INFINITY;
    let mut ours = None;
    for _ in 0..TRIALS {
        let t = Instant::now();
        for p in &paragraphs {
            backend.embed(vec![p.clone()]).await.unwrap();
        }
        single = single.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        ours = Some(backend.embed(paragraphs.clone()).await.unwrap());
        batched = batched.min(t.elapsed().as_secs_f64());
    }
    let ours = ours.unwrap();
    let reference = reference_embeddings(&paragraphs);
    let n = paragraphs.len() as f64;
    for (mode, secs, theirs) in [
        (
            "one text per call",
            single,
            reference.as_ref().map(|r| r.single),
        ),
        (
            "batches of 32",
            batched,
            reference.as_ref().map(|r| r.batched),
        ),
    ] {
        let vs = theirs
            .as_ref()
            .map_or("-".into(), |t| format!("{:.2}", t / secs));
        let rate = (n / secs, tokens as f64 / secs);
        println!(
            "| gatehouse | {mode} | {:.1} | {:.0} | {vs} |",
            rate.0, rate.1
        );
        if let Ok(t) = theirs {
            let rate = (n / t, tokens as f64 / t);
            println!(
                "| sentence-transformers | {mode} | {:.1} | {:.0} | 1.00 |",
                rate.0, rate.1
            );
        }
    }
    println!(
        "\nGatehouse batched against one text per call: {:.2}x.",
        single / batched
    );
    match &reference {
        Ok(r) => {
            let cosines: Vec<String> = r
                .vectors
                .iter()
                .zip(&ours.vectors)
                .map(|(a, b)| format!("{:.5}", a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>()))
                .collect();
            println!(
                "Same vectors: cosine against sentence-transformers' for the first three texts {}.\n",
                cosines.join(", ")
            );
        }
        Err(why) => println!("sentence-transformers not measured: {why}\n"),
    }

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

    println!("## Retrieval quality (qdrant-edge, top 5, dense against hybrid in one run)\n");
    println!("| questions | mode | recall@1 | recall@5 | MRR@5 |\n|---|---|---:|---:|---:|");
    // RAG_BENCH_VERBOSE=1 names the questions whose answer is not ranked first.
    let verbose = std::env::var_os("RAG_BENCH_VERBOSE").is_some();
    for (file, what) in [
        ("questions.jsonl", "paraphrased"),
        ("identifiers.jsonl", "identifiers"),
    ] {
        let questions: Vec<Question> = std::fs::read_to_string(repo().join("bench/rag").join(file))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for mode in [SearchMode::Dense, SearchMode::Hybrid] {
            let (mut at1, mut at5, mut rr) = (0usize, 0usize, 0.0f64);
            for q in &questions {
                let hits = rag
                    .search("eval", "bench", &q.question, mode, 5, None)
                    .await
                    .unwrap();
                let rank = hits.iter().position(|h| {
                    h.payload.source.ends_with(&format!("/{}", q.source))
                        && h.payload.text.contains(&q.answer_contains)
                });
                if verbose && rank != Some(0) {
                    let top = hits.first().map(|h| {
                        let start: String = h.payload.text.chars().take(90).collect();
                        format!("{}#{} {start}", h.payload.source, h.payload.chunk)
                    });
                    eprintln!(
                        "{} miss@1 {}: {rank:?}, top: {top:?}",
                        mode.as_str(),
                        q.question
                    );
                }
                if let Some(r) = rank {
                    at5 += 1;
                    at1 += usize::from(r == 0);
                    rr += 1.0 / (r as f64 + 1.0);
                }
            }
            let n = questions.len() as f64;
            println!(
                "| {} {what} | {} | {:.2} | {:.2} | {:.3} |",
                questions.len(),
                mode.as_str(),
                at1 as f64 / n,
                at5 as f64 / n,
                rr / n
            );
        }
    }
    println!();
    drop(rag);
    drop(store);
    let _ = std::fs::remove_dir_all(&data);

    // Search at scale: vectors near a 16-dimensional subspace (as sentence embeddings are)
    // and uniform random ones (the worst case of any graph index), searched before and
    // after indexing in the embedded store, then through a Qdrant server.
    let points: usize = std::env::var("RAG_BENCH_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    if points == 0 {
        return;
    }
    let dim = embedder.dim();
    println!("## Search at scale: {points} vectors of {dim} dimensions, top 10\n");
    println!(
        "Recall@10 is against exact search computed by this benchmark over the same vectors; \
         {QUERIES} queries per row. HNSW m 16, ef_construct 100, hnsw_ef 128.\n"
    );
    println!(
        "| store | vectors | index | tenant (share) | p50 ms | p99 ms | recall@10 |\n\
         |---|---|---|---|---:|---:|---:|"
    );
    let mut notes = Vec::new();
    for kind in [Kind::EmbeddingLike, Kind::Uniform] {
        let data = Scale::new(points, dim, kind);
        let dir = temp("scale");
        let edge = EdgeStore::open(&dir).unwrap();
        let load = data.load(&edge).await;
        if kind == Kind::EmbeddingLike {
            data.measure(&edge, "qdrant-edge", "none (exact scan)")
                .await;
        }
        let t = Instant::now();
        edge.index("scale").await.unwrap();
        let indexing = t.elapsed().as_secs_f64();
        data.measure(&edge, "qdrant-edge", "HNSW").await;
        notes.push(format!(
            "qdrant-edge, {}: loaded in {load:.1} s ({:.0} points/s), indexed in {indexing:.1} s.",
            kind.name(),
            points as f64 / load
        ));
        drop(edge);
        let _ = std::fs::remove_dir_all(&dir);
        if kind == Kind::EmbeddingLike {
            let server = qdrant_server::Qdrant::start(None);
            let remote =
                QdrantStore::connect(&server.grpc_url, None, Duration::from_secs(60)).unwrap();
            let load = data.load(&remote).await;
            let t = Instant::now();
            let indexed = data.wait_indexed(&remote).await;
            data.measure(&remote, "Qdrant server, gRPC", "HNSW").await;
            notes.push(format!(
                "{} server, {}: loaded in {load:.1} s, {indexed} vectors indexed {:.1} s later.",
                qdrant_server::version(),
                kind.name(),
                t.elapsed().as_secs_f64()
            ));
        }
    }
    println!();
    for note in notes {
        println!("{note}");
    }
}

/// What the scale test's vectors look like.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Near a random 16-dimensional subspace, plus a little noise in every dimension.
    EmbeddingLike,
    /// Uniformly random directions.
    Uniform,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::EmbeddingLike => "embedding-like",
            Self::Uniform => "uniform random",
        }
    }
}

/// Deterministic unit vectors of one [`Kind`].
struct Generator {
    seed: u64,
    dim: usize,
    /// The subspace of [`Kind::EmbeddingLike`]; empty for uniform vectors.
    basis: Vec<Vec<f32>>,
}

impl Generator {
    fn new(kind: Kind, dim: usize, seed: u64) -> Self {
        let mut g = Self {
            seed,
            dim,
            basis: Vec::new(),
        };
        if kind == Kind::EmbeddingLike {
            // Fixed basis: data and queries share it.
            let mut b = Self::new(Kind::Uniform, dim, 0x5851_f42d_4c95_7f2d);
            g.basis = (0..16)
                .map(|_| (0..dim).map(|_| b.uniform()).collect())
                .collect();
        }
        g
    }

    fn uniform(&mut self) -> f32 {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        (self.seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }

    fn unit(&mut self) -> Vec<f32> {
        let v: Vec<f32> = if self.basis.is_empty() {
            (0..self.dim).map(|_| self.uniform()).collect()
        } else {
            let z: Vec<f32> = (0..self.basis.len()).map(|_| self.uniform()).collect();
            let mut v = vec![0.0f32; self.dim];
            for (b, z) in self.basis.iter().zip(&z) {
                for (x, b) in v.iter_mut().zip(b) {
                    *x += b * z;
                }
            }
            v.into_iter().map(|x| x + 0.02 * self.uniform()).collect()
        };
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }
}

const QUERIES: usize = 200;

/// Trials of each embedding measurement (`embed_reference.py` runs as many).
const TRIALS: usize = 3;

/// Threads both embedding engines use: the machine's cores.
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// sentence-transformers' timings (seconds) and first vectors on the same texts.
struct Reference {
    single: f64,
    batched: f64,
    vectors: Vec<Vec<f32>>,
}

/// Runs `embed_reference.py` in the virtualenv `bench/rag/reference-venv` creates
/// (`RAG_BENCH_VENV` to use another).
fn reference_embeddings(texts: &[String]) -> Result<Reference, String> {
    let venv = std::env::var_os("RAG_BENCH_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/gatehouse-reference-venv"))
        })
        .ok_or("no HOME")?;
    let python = venv.join("bin/python");
    if !python.is_file() {
        return Err(format!(
            "no {} (run bench/rag/reference-venv)",
            python.display()
        ));
    }
    let input = temp("reference-texts.json");
    std::fs::write(&input, serde_json::to_vec(texts).unwrap()).map_err(|e| e.to_string())?;
    let out = std::process::Command::new(&python)
        .arg(repo().join("bench/rag/embed_reference.py"))
        .arg(repo().join("models/all-minilm-l6-v2"))
        .arg(&input)
        .arg(threads().to_string())
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    let _ = std::fs::remove_file(&input);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let secs = |i: usize| {
        lines
            .get(i)
            .and_then(|l| l["seconds"].as_f64())
            .ok_or("bad output")
    };
    let vectors = lines
        .get(2)
        .and_then(|l| serde_json::from_value(l["vectors"].clone()).ok())
        .ok_or("bad output")?;
    Ok(Reference {
        single: secs(0)?,
        batched: secs(1)?,
        vectors,
    })
}

/// The vectors of the scale test: 90% tenant `big`, 10% tenant `small`, kept here so that
/// exact neighbours can be computed without the stores.
struct Scale {
    kind: Kind,
    dim: usize,
    points: Vec<(u64, ChunkPayload, Vec<f32>)>,
}

impl Scale {
    fn new(n: usize, dim: usize, kind: Kind) -> Self {
        let mut generator = Generator::new(kind, dim, 0x9e37_79b9_7f4a_7c15);
        let mut points = Vec::with_capacity(n);
        for i in 0..n {
            let payload = ChunkPayload {
                tenant: if i % 10 == 0 { "small" } else { "big" }.into(),
                source: format!("doc-{}.md", i / 1000),
                chunk: i as u32,
                content_hash: format!("sha256:{i}"),
                text: "x".repeat(200),
                title: None,
            };
            let p = &payload;
            let id = point_id(&p.tenant, &p.source, p.chunk, &p.content_hash);
            points.push((id, payload, generator.unit()));
        }
        Self { kind, dim, points }
    }

    /// Writes every point in batches of 1000; returns the seconds it took.
    async fn load(&self, store: &dyn VectorStore) -> f64 {
        store.ensure_collection("scale", self.dim).await.unwrap();
        let t = Instant::now();
        for batch in self.points.chunks(1000) {
            let pts = batch
                .iter()
                .map(|(_, payload, vector)| ChunkPoint {
                    vector: vector.clone(),
                    payload: payload.clone(),
                })
                .collect();
            store.upsert("scale", pts).await.unwrap();
        }
        t.elapsed().as_secs_f64()
    }

    /// Waits until the server has indexed every vector and settled; returns how many.
    async fn wait_indexed(&self, store: &dyn VectorStore) -> usize {
        // Indexed, then unchanged for 3 s: the optimizer has finished merging segments, so
        // it no longer competes with the searches for the 2 cores.
        let (mut last, mut stable) = (0, 0);
        loop {
            let infos = store.collections().await.unwrap();
            let info = infos.iter().find(|c| c.name == "scale").unwrap();
            if info.indexed >= self.points.len() && info.indexed == last {
                stable += 1;
                if stable == 3 {
                    return info.indexed;
                }
            } else {
                stable = 0;
            }
            last = info.indexed;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// One row per tenant: latency percentiles and recall@10 against exact search.
    async fn measure(&self, store: &dyn VectorStore, name: &str, index: &str) {
        let mut queries = Generator::new(self.kind, self.dim, 0x2545_f491_4f6c_dd1d);
        for (tenant, share) in [("big", "90%"), ("small", "10%")] {
            let own: Vec<&(u64, ChunkPayload, Vec<f32>)> = self
                .points
                .iter()
                .filter(|p| p.1.tenant == tenant)
                .collect();
            let (mut ms, mut found) = (Vec::new(), 0usize);
            for _ in 0..QUERIES {
                let q = queries.unit();
                let t = Instant::now();
                let hits = store
                    .search("scale", tenant, q.clone(), 10, None)
                    .await
                    .unwrap();
                ms.push(t.elapsed().as_secs_f64() * 1e3);
                let mut exact: Vec<(f32, u64)> = own
                    .iter()
                    .map(|(id, _, v)| (v.iter().zip(&q).map(|(a, b)| a * b).sum(), *id))
                    .collect();
                exact.select_nth_unstable_by(9, |a, b| b.0.total_cmp(&a.0));
                let top: Vec<u64> = exact[..10].iter().map(|e| e.1).collect();
                found += hits.iter().filter(|h| top.contains(&h.id)).count();
            }
            ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let (p50, p99) = (percentile(&ms, 0.5), percentile(&ms, 0.99));
            let recall = found as f64 / (QUERIES * 10) as f64;
            let kind = self.kind.name();
            println!(
                "| {name} | {kind} | {index} | {tenant} ({share}) | {p50:.2} | {p99:.2} | {recall:.3} |"
            );
        }
    }
}
