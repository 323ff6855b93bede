//! Engine benchmark: prompt processing at fixed prompt lengths, single-sequence decode, and
//! aggregate decode with several sequences at once, per model.
//!
//! Run through `bench/engine`, which prints these figures next to llama.cpp's. Arguments:
//! `ID=PATH` pairs. Environment: `BENCH_PROMPTS` (prompt lengths in tokens, default
//! `167,1000`), `BENCH_TOKENS` (decode length, default 128), `BENCH_CONCURRENCY` (default
//! `1,2,4`), `BENCH_REPS` (repetitions, best kept, default 2). Output: one tab-separated line
//! per figure on stdout, `model  test  tokens/s  detail`; progress on stderr.

use std::time::{Duration, Instant};

use engine::{ChatMessage, DType, GenerationEvent, LocalModel, ModelSpec, Role, Sampling};
use futures::StreamExt;

/// Filler for prompts of an exact token count: ordinary prose, varied so that no tokenizer
/// merges long runs.
const WORDS: &str = "the rate limiter keeps a bucket per key and refills it every second while \
the handler answers with a retry header when the bucket is empty so clients back off and try \
again later under load the lock is held for a short time but on many cores it becomes the \
place where requests queue memory grows with every new key because nothing evicts old buckets \
a review should ask how long keys live what happens after a restart and whether one shared \
store is needed when the service runs on several machines behind a balancer";

fn env_list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter(|v| !v.trim().is_empty())
        .map(|v| v.trim().parse().unwrap_or_else(|_| panic!("{name}: {v}")))
        .collect()
}

fn user(text: String) -> Vec<ChatMessage> {
    vec![ChatMessage {
        role: Role::User,
        content: text,
    }]
}

fn greedy(tokens: usize) -> Sampling {
    Sampling {
        temperature: Some(0.0),
        max_tokens: Some(tokens),
        // Every sequence decodes the full length, as llama.cpp's benchmarks do.
        ignore_eos: true,
        ..Default::default()
    }
}

/// A prompt of exactly `n` tokens (chat template included), distinct per `variant` so that
/// no cache can help: a variant tag, then filler words, trimmed by the tokenizer's count.
async fn prompt_of(model: &LocalModel, n: usize, variant: usize) -> Vec<ChatMessage> {
    let words: Vec<&str> = WORDS.split(' ').collect();
    let text = |w: usize| {
        let mut t = format!(
            "Request {variant}: write a long numbered list of review comments on this text:"
        );
        for i in 0..w {
            t.push(' ');
            t.push_str(words[(i + variant * 7) % words.len()]);
        }
        t
    };
    let count =
        |w: usize| async move { model.prompt_tokens(&user(text(w))).await.expect("tokenize") };
    // The largest word count whose prompt fits, then single-token words to the exact length.
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if count(mid).await <= n {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let mut t = text(lo);
    let mut have = count(lo).await;
    while have < n {
        t.push_str(" a");
        have = model
            .prompt_tokens(&user(t.clone()))
            .await
            .expect("tokenize");
    }
    assert_eq!(have, n, "could not build a prompt of {n} tokens");
    user(t)
}

/// Prompt processing: a fresh prompt of `n` tokens and one output token; tokens/s and the
/// time to that first token.
async fn prefill(model: &LocalModel, n: usize, variant: usize) -> (f64, Duration) {
    let messages = prompt_of(model, n, variant).await;
    let start = Instant::now();
    let (_, usage) = model
        .generate(messages, greedy(1))
        .expect("generate")
        .run_to_end()
        .await
        .expect("generation");
    let took = start.elapsed();
    assert_eq!(usage.prompt_tokens as usize, n, "prompt length");
    (n as f64 / took.as_secs_f64(), took)
}

/// Decode with `c` sequences at once, each with its own prompt (lengths differ), counting
/// the tokens every sequence produced while all `c` were decoding (from the moment the last
/// one streamed its first token to the moment the first one finished).
async fn decode(model: &LocalModel, c: usize, tokens: usize, variant: usize) -> (f64, String) {
    let mut gens = Vec::new();
    for i in 0..c {
        // Prompts of different lengths.
        let start = 1 + 37 * (variant * 10 + i);
        let prompt = format!(
            "Count from {start} to {}, one number per line, without skipping any.{}",
            start + 5000,
            " Do not stop early.".repeat(i)
        );
        gens.push(
            model
                .generate(user(prompt), greedy(tokens))
                .expect("generate"),
        );
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant, bool)>();
    for (i, mut g) in gens.into_iter().enumerate() {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(ev) = g.next().await {
                let done = matches!(ev.expect("generation"), GenerationEvent::Finished { .. });
                let _ = tx.send((i, Instant::now(), done));
                if done {
                    break;
                }
            }
        });
    }
    drop(tx);
    let mut started = vec![false; c];
    let mut window_start = None;
    let mut window_end = None;
    let mut counted = 0usize;
    let mut total = 0usize;
    while let Some((i, at, done)) = rx.recv().await {
        if done {
            window_end.get_or_insert(at);
            continue;
        }
        total += 1;
        started[i] = true;
        if window_end.is_some() {
            continue;
        }
        match window_start {
            None if started.iter().all(|s| *s) => window_start = Some(at),
            Some(_) => counted += 1,
            None => {}
        }
    }
    let (Some(a), Some(b)) = (window_start, window_end) else {
        return (0.0, "no window".into());
    };
    let secs = (b - a).as_secs_f64();
    (
        counted as f64 / secs,
        format!("{counted} tokens in {secs:.2} s with all {c} decoding ({total} streamed)"),
    )
}

#[tokio::main]
async fn main() {
    let prompts = env_list("BENCH_PROMPTS", "167,1000");
    let tokens = env_list("BENCH_TOKENS", "128")[0];
    let concurrency = env_list("BENCH_CONCURRENCY", "1,2,4");
    let reps = env_list("BENCH_REPS", "2")[0].max(1);
    let models: Vec<(String, String)> = std::env::args()
        .skip(1)
        .map(|a| {
            let (id, path) = a.split_once('=').expect("arguments are ID=PATH");
            (id.to_string(), path.to_string())
        })
        .collect();
    assert!(!models.is_empty(), "usage: bench ID=PATH [ID=PATH ...]");
    let max_c = concurrency.iter().copied().max().unwrap_or(1);
    for (id, path) in &models {
        eprintln!("bench: loading {id}");
        let model = LocalModel::load(ModelSpec {
            id: id.clone(),
            path: path.into(),
            dtype: DType::F32,
            max_concurrent: max_c,
            draft: None,
            // Every prompt is processed in full.
            prefix_cache: 0,
        })
        .await
        .unwrap_or_else(|e| panic!("{id}: {e}"));
        // Warm-up: first-use allocations are not measured.
        model
            .generate(user("Say hello.".into()), greedy(8))
            .expect("generate")
            .run_to_end()
            .await
            .expect("warm-up");
        let mut variant = 0;
        for &n in &prompts {
            let mut best = (0.0, Duration::ZERO);
            for _ in 0..reps {
                variant += 1;
                let r = prefill(&model, n, variant).await;
                eprintln!("bench: {id} pp{n}: {:.1} tok/s", r.0);
                if r.0 > best.0 {
                    best = r;
                }
            }
            println!(
                "{id}\tpp{n}\t{:.2}\ttime to first token {:.2} s",
                best.0,
                best.1.as_secs_f64()
            );
        }
        for &c in &concurrency {
            let mut best = (0.0, String::new());
            for _ in 0..reps {
                variant += 1;
                let r = decode(&model, c, tokens, variant).await;
                eprintln!("bench: {id} decode x{c}: {:.1} tok/s ({})", r.0, r.1);
                if r.0 > best.0 {
                    best = r;
                }
            }
            println!("{id}\ttg{tokens}x{c}\t{:.2}\t{}", best.0, best.1);
        }
    }
}
