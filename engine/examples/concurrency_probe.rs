//! Reproduces mistral.rs 0.8.1's batching bug (docs/engine-notes.md): runs greedy prompts alone,
//! then concurrently in one engine that may batch, and prints whether each answer stayed the same.
//!
//! `cargo run -p engine --example concurrency_probe` (needs `scripts/fetch-models --only smollm2`).

use engine::{ChatMessage, DType, GenerationEvent, LocalModel, ModelSpec, Role, Sampling};
use futures::StreamExt;

async fn answer(m: &LocalModel, prompt: &str) -> String {
    let s = Sampling {
        temperature: Some(0.0),
        max_tokens: Some(40),
        ..Default::default()
    };
    let msgs = vec![ChatMessage {
        role: Role::User,
        content: prompt.into(),
    }];
    let mut g = m.generate(msgs, s).expect("generate");
    let mut text = String::new();
    while let Some(ev) = g.next().await {
        if let GenerationEvent::Delta(d) = ev.expect("generation") {
            text.push_str(&d);
        }
    }
    text
}

#[tokio::main]
async fn main() {
    let spec = ModelSpec {
        id: "smollm2".into(),
        path: "models/smollm2-135m-instruct-q4_1.gguf".into(),
        dtype: DType::F32,
        max_concurrent: 4,
        draft: None,
        prefix_cache: engine::DEFAULT_PREFIX_CACHE,
    };
    let m = LocalModel::load(spec).await.expect("load");
    // Two prompts of equal token length (batched together) and one of another length.
    let (colours, fruits, long) = (
        "Name three colours.",
        "Name three fruits.",
        "Describe a lighthouse at night in great detail please.",
    );
    let alone = [
        answer(&m, colours).await,
        answer(&m, fruits).await,
        answer(&m, long).await,
    ];
    let (a, c) = tokio::join!(answer(&m, colours), answer(&m, long));
    println!(
        "different lengths together: same={}",
        a == alone[0] && c == alone[2]
    );
    let (a, b) = tokio::join!(answer(&m, colours), answer(&m, fruits));
    println!(
        "equal lengths together:     same={}",
        a == alone[0] && b == alone[1]
    );
    if a != alone[0] || b != alone[1] {
        println!(
            "  colours alone: {:?}\n  colours batched: {a:?}\n  fruits batched:  {b:?}",
            alone[0]
        );
    }
}
