//! The embedder against vectors sentence-transformers computed for the same sentences
//! (`scripts/minilm-reference.py` wrote `fixtures/minilm-reference.json`).
#![allow(missing_docs)]

use std::path::PathBuf;

use engine::{Embedder, EmbeddingSpec};

fn repo() -> PathBuf {
    let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    crate_dir.parent().expect("workspace root").to_path_buf()
}

fn embedder() -> Embedder {
    Embedder::load(&EmbeddingSpec {
        id: "all-minilm-l6-v2".into(),
        dir: repo().join("models/all-minilm-l6-v2"),
        max_tokens: 256,
    })
    .expect("MiniLM loads (scripts/fetch-models --only minilm)")
}

#[derive(serde::Deserialize)]
struct Reference {
    sentences: Vec<String>,
    embeddings: Vec<Vec<f32>>,
    token_counts: Vec<usize>,
}

fn reference() -> Reference {
    let path = repo().join("engine/tests/fixtures/minilm-reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn vectors_match_sentence_transformers() {
    let e = embedder();
    let r = reference();
    assert_eq!(e.dim(), 384);
    // One batch (padded to the longest, 256 tokens) and one at a time must both match.
    let texts: Vec<&str> = r.sentences.iter().map(String::as_str).collect();
    let batch = e.embed(&texts).unwrap();
    assert_eq!(batch.tokens, r.token_counts.iter().sum::<usize>());
    for (i, text) in texts.iter().enumerate() {
        let single = e.embed(&[text]).unwrap();
        assert_eq!(single.tokens, r.token_counts[i], "{text:?}");
        for (got, how) in [
            (&batch.vectors[i], "batched"),
            (&single.vectors[0], "alone"),
        ] {
            let d = max_diff(got, &r.embeddings[i]);
            assert!(d < 1e-5, "sentence {i} {how}: max abs difference {d}");
            let norm: f32 = got.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "sentence {i}: norm {norm}");
        }
    }
}

#[test]
fn similar_texts_are_closer_than_unrelated_ones() {
    let e = embedder();
    let v = e
        .embed(&[
            "How do I reset my password?",
            "I forgot my password and need to change it.",
            "The recipe needs two cups of flour.",
        ])
        .unwrap()
        .vectors;
    let cos = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    assert!(cos(&v[0], &v[1]) > cos(&v[0], &v[2]) + 0.3);
    assert!(e.embed(&[]).unwrap().vectors.is_empty());
}
