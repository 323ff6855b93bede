//! Engine benchmark: prompt processing and decode tokens/s per model and dtype, as a table.
//!
//! Run through `bench/engine`. Arguments: `ID=PATH` pairs; dtypes from `BENCH_DTYPES`
//! (default `f32,f16`), decode length from `BENCH_TOKENS` (default 128).

use std::time::Instant;

use engine::{ChatMessage, DType, GenerationEvent, LocalModel, ModelSpec, Role, Sampling};
use futures::StreamExt;

const PROMPT: &str = "You are reviewing a pull request for a Rust web service. The change adds a \
rate limiter in front of the chat completion endpoint, keyed by API key, with a token bucket \
refilled every second. It stores the buckets in a HashMap behind a Mutex and never evicts them. \
The handler returns 429 with a Retry-After header when the bucket is empty. Tests cover the happy \
path and a burst of ten requests. Explain, step by step and in detail, what could go wrong in \
production with this design, how memory grows over time, how the lock behaves under contention \
on many cores, and what you would change before approving it.";

struct Row {
    model: String,
    dtype: DType,
    prompt_tokens: u64,
    prefill_tps: f64,
    decode_tokens: u64,
    decode_tps: f64,
}

async fn measure(id: &str, path: &str, dtype: DType, tokens: usize) -> Row {
    let spec = ModelSpec {
        id: id.into(),
        path: path.into(),
        dtype,
        max_concurrent: 1,
        draft: None,
        prefix_cache: engine::DEFAULT_PREFIX_CACHE,
    };
    let model = LocalModel::load(spec)
        .await
        .unwrap_or_else(|e| panic!("{id}: {e}"));
    let messages = vec![ChatMessage {
        role: Role::User,
        content: PROMPT.into(),
    }];
    let sampling = Sampling {
        temperature: Some(0.0),
        max_tokens: Some(tokens),
        ..Default::default()
    };
    // Warm-up: one short generation so that allocation and first-use costs are not measured.
    let warm = Sampling {
        max_tokens: Some(4),
        ..sampling.clone()
    };
    let mut g = model.generate(messages.clone(), warm).expect("generate");
    while g.next().await.is_some() {}

    let start = Instant::now();
    let mut g = model.generate(messages, sampling).expect("generate");
    let mut first = None;
    let mut usage = None;
    while let Some(ev) = g.next().await {
        match ev.expect("generation") {
            GenerationEvent::Delta(_) => {
                first.get_or_insert_with(Instant::now);
            }
            GenerationEvent::Finished { usage: u, .. } => usage = Some(u),
        }
    }
    let end = Instant::now();
    let usage = usage.expect("finished");
    let first = first.expect("some text");
    // Time to the first token is the prefill plus one decode step; the rest is decode.
    let decode_steps = usage.completion_tokens.saturating_sub(1);
    let decode_secs = (end - first).as_secs_f64();
    let per_step = decode_secs / decode_steps.max(1) as f64;
    let prefill_secs = ((first - start).as_secs_f64() - per_step).max(1e-9);
    Row {
        model: id.into(),
        dtype,
        prompt_tokens: usage.prompt_tokens,
        prefill_tps: usage.prompt_tokens as f64 / prefill_secs,
        decode_tokens: decode_steps,
        decode_tps: decode_steps as f64 / decode_secs,
    }
}

#[tokio::main]
async fn main() {
    let tokens: usize = std::env::var("BENCH_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    let dtypes: Vec<DType> = std::env::var("BENCH_DTYPES")
        .unwrap_or_else(|_| "f32,f16".into())
        .split(',')
        .map(|d| match d.trim() {
            "f32" => DType::F32,
            "f16" => DType::F16,
            "bf16" => DType::Bf16,
            "auto" => DType::Auto,
            other => panic!("unknown dtype {other}"),
        })
        .collect();
    let models: Vec<(String, String)> = std::env::args()
        .skip(1)
        .map(|a| {
            let (id, path) = a.split_once('=').expect("arguments are ID=PATH");
            (id.to_string(), path.to_string())
        })
        .collect();
    assert!(!models.is_empty(), "usage: bench ID=PATH [ID=PATH ...]");
    let mut rows = Vec::new();
    for (id, path) in &models {
        for &dtype in &dtypes {
            eprintln!("measuring {id} {dtype:?} ...");
            rows.push(measure(id, path, dtype, tokens).await);
        }
    }
    println!("| model | dtype | prompt tokens | prompt processing tok/s | decode tokens | decode tok/s |");
    println!("|---|---|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:?} | {} | {:.1} | {} | {:.1} |",
            r.model, r.dtype, r.prompt_tokens, r.prefill_tps, r.decode_tokens, r.decode_tps
        );
    }
}
