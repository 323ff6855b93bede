//! Speculative decoding benchmark: plain vs speculative greedy decoding per gamma, as a table.
//!
//! Run through `bench/speculative`. Arguments: `LABEL TARGET DRAFT` (GGUF paths); gammas from
//! `BENCH_GAMMAS` (default `2,3,4,6`), output length from `BENCH_TOKENS` (default 256),
//! prompt count from `BENCH_PROMPTS` (default all 10). Every speculative output is compared
//! with the plain output of the same prompt.

use std::time::Instant;

use engine::{
    ChatMessage, DType, DraftSpec, LocalModel, ModelSpec, Role, Sampling, SpeculativeMode,
    SpeculativeStats,
};

const PROMPTS: &[&str] = &[
    "Write a Python function that returns the n-th Fibonacci number iteratively.",
    "Write a Rust function that reverses the words in a string.",
    "Write a JavaScript function that debounces another function.",
    "Write a Python class for a stack with push, pop and peek.",
    "Write a SQL query that finds the ten customers with the highest total order value.",
    "Write a C function that computes the length of a null-terminated string.",
    "Write a Python function that merges two sorted lists into one sorted list.",
    "Write a Go function that checks whether a string is a palindrome.",
    "Write a bash script that counts the lines of every .rs file in a directory.",
    "Write a Python function that parses a CSV line with quoted fields.",
];

struct Run {
    texts: Vec<String>,
    tokens: u64,
    seconds: f64,
    stats: SpeculativeStats,
}

async fn run_all(model: &LocalModel, prompts: &[&str], tokens: usize) -> Run {
    let mut run = Run {
        texts: Vec::new(),
        tokens: 0,
        seconds: 0.0,
        stats: SpeculativeStats::default(),
    };
    for prompt in prompts {
        let messages = vec![ChatMessage {
            role: Role::User,
            content: (*prompt).into(),
        }];
        let sampling = Sampling {
            temperature: Some(0.0),
            max_tokens: Some(tokens),
            ..Sampling::default()
        };
        let start = Instant::now();
        let (text, usage) = model
            .generate(messages, sampling)
            .expect("generate")
            .run_to_end()
            .await
            .expect("generation");
        run.tokens += usage.completion_tokens;
        if let Some(s) = usage.speculative {
            run.stats.merge(&s);
        }
        run.seconds += start.elapsed().as_secs_f64();
        run.texts.push(text);
    }
    run
}

fn spec(id: &str, path: &str, draft: Option<(&str, usize)>) -> ModelSpec {
    ModelSpec {
        id: id.into(),
        path: path.into(),
        dtype: DType::F32,
        max_concurrent: 1,
        draft: draft.map(|(p, gamma)| DraftSpec {
            path: p.into(),
            gamma,
            mode: SpeculativeMode::On,
        }),
        prefix_cache: engine::DEFAULT_PREFIX_CACHE,
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [label, target, draft] = args.as_slice() else {
        eprintln!("usage: speculative_bench LABEL TARGET.gguf DRAFT.gguf");
        std::process::exit(2);
    };
    let tokens = env_or("BENCH_TOKENS", 256usize);
    let n = env_or("BENCH_PROMPTS", PROMPTS.len()).min(PROMPTS.len());
    let gammas: Vec<usize> = std::env::var("BENCH_GAMMAS")
        .unwrap_or_else(|_| "2,3,4,6".into())
        .split(',')
        .filter_map(|g| g.trim().parse().ok())
        .collect();
    let prompts = &PROMPTS[..n];

    let plain = LocalModel::load(spec("plain", target, None))
        .await
        .expect("load target");
    let base = run_all(&plain, prompts, tokens).await;
    drop(plain);
    let base_tps = base.tokens as f64 / base.seconds;
    if std::env::var_os("BENCH_NO_HEADER").is_none() {
        println!(
            "| pair | gamma | tokens | tok/s | vs plain | acceptance | accepted/step | draft ms/step | verify ms/step | identical |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|");
    }
    // `BENCH_BASELINE` labels a plain run made with other kernels (bench/speculative sets it
    // for the published ones, docs/engine-notes.md).
    let plain = match std::env::var("BENCH_BASELINE") {
        Ok(b) if !b.is_empty() => format!("plain, {b}"),
        _ => "plain".to_string(),
    };
    println!(
        "| {label} | {plain} | {} | {base_tps:.2} | 1.00 | | | | | |",
        base.tokens
    );
    for gamma in gammas {
        let model = LocalModel::load(spec("spec", target, Some((draft, gamma))))
            .await
            .expect("load pair");
        let r = run_all(&model, prompts, tokens).await;
        let tps = r.tokens as f64 / r.seconds;
        let same = r
            .texts
            .iter()
            .zip(&base.texts)
            .filter(|(a, b)| a == b)
            .count();
        println!(
            "| {label} | {gamma} | {} | {tps:.2} | {:.2} | {:.3} | {:.2} | {:.1} | {:.1} | {same}/{n} |",
            r.tokens,
            tps / base_tps,
            r.stats.acceptance_rate(),
            r.stats.accepted_per_step(),
            r.stats.draft_seconds_per_step() * 1e3,
            r.stats.verify_seconds_per_step() * 1e3,
        );
        for (i, (a, b)) in r.texts.iter().zip(&base.texts).enumerate() {
            if a != b {
                let at = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
                eprintln!(
                    "{label} gamma {gamma} prompt {i}: differs from plain after {at} chars: {:?} vs {:?}",
                    a.chars().skip(at).take(40).collect::<String>(),
                    b.chars().skip(at).take(40).collect::<String>()
                );
            }
        }
    }
}
