//! Fleet benchmark, two tables:
//!
//! 1. mistral.rs' prefix cache: time to first token of a conversation with a long shared
//!    system prompt (≥ 1,000 tokens), cold (first request) and warm (a new question on the
//!    same system prompt), against the same model with `prefix_cache: 0`, in one run.
//! 2. Prefix-affinity routing against round robin: a gateway in front of two upstream
//!    gatehouse processes (SmolLM2 each), three conversations with their own long system
//!    prompts, interleaved; the hit rate (a request lands on a backend that already served
//!    its conversation) and the time to first token of the repeat requests.
//!
//! `cargo test -p gateway --locked --bench fleet` (`FLEET_BENCH_TRIALS` sets table 1's trials,
//! `FLEET_BENCH_TABLES=prefix` or `routing` runs one table).

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

const SMOLLM2: &str = "../models/smollm2-135m-instruct-q4_1.gguf";

/// A handbook of numbered rules for `team`: a little over 1,000 SmolLM2 tokens.
fn system_prompt(team: usize) -> String {
    let mut s = format!(
        "You are the support assistant of team {team}. Follow the handbook below exactly.\n"
    );
    for i in 1..=22 {
        s += &format!(
            "Rule {team}.{i}: when a customer from district {} asks about order {}, quote \
             reference R-{team}-{i:02} and keep the reply under {} words.\n",
            (i * 7 + team) % 23,
            1000 + i * 13 + team,
            20 + i % 5 * 5
        );
    }
    s
}

fn config(yaml: &str) -> gateway::config::Config {
    gateway::config::Config::from_str_with_env(
        yaml,
        &repo().join("config/bench.yaml"),
        std::iter::empty(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Starts an in-process server; returns its address once every model is ready.
async fn serve(yaml: &str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = gateway::server::start(config(yaml), listener).expect("start");
    let addr = server.addr;
    std::mem::forget(server);
    ready(addr).await;
    addr
}

async fn ready(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Ok(r) = reqwest::get(format!("http://{addr}/readyz")).await {
            if r.status() == 200 {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{addr} never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One streamed request: (time to first content, prompt tokens, backend header).
async fn ttft(addr: SocketAddr, model: &str, system: &str, question: &str) -> (f64, u64, String) {
    let body = json!({
        "model": model,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": question}],
        "temperature": 0,
        "max_tokens": 8,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let start = Instant::now();
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let backend = r
        .headers()
        .get("x-gatehouse-backend")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let mut first = None;
    let mut text = String::new();
    let mut stream = r.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = String::from_utf8_lossy(&chunk.unwrap()).into_owned();
        if first.is_none() && chunk.contains("\"content\":\"") {
            first = Some(start.elapsed().as_secs_f64());
        }
        text += &chunk;
    }
    let tokens = text
        .split("data: ")
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find_map(|v| v["usage"]["prompt_tokens"].as_u64())
        .unwrap_or(0);
    (first.expect("no content"), tokens, backend)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn prefix_cache_table() {
    let trials: usize = std::env::var("FLEET_BENCH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let yaml = format!(
        "auth: none\nmodels:\n  - {{id: cached, backend: local, path: {SMOLLM2}, dtype: f32, prefix_cache: 16}}\n  - {{id: uncached, backend: local, path: {SMOLLM2}, dtype: f32, prefix_cache: 0}}\n"
    );
    let addr = serve(&yaml).await;
    // Untimed warm-up of both engines.
    for m in ["cached", "uncached"] {
        ttft(addr, m, "Be brief.", "Hi").await;
    }
    let mut rows = Vec::new();
    let mut tokens = 0;
    for model in ["cached", "uncached"] {
        let (mut cold, mut warm) = (Vec::new(), Vec::new());
        for t in 0..trials {
            // A system prompt of its own per trial and model: the first request is cold.
            let system = system_prompt(100 + t + if model == "cached" { 0 } else { 50 });
            let (c, n, _) = ttft(
                addr,
                model,
                &system,
                "Which reference applies to order 1013?",
            )
            .await;
            let (w, _, _) = ttft(addr, model, &system, "Give the reference for district 7.").await;
            cold.push(c);
            warm.push(w);
            tokens = n;
        }
        rows.push((model, median(cold), median(warm)));
    }
    println!("## Prefix cache: time to first token, system prompt of {tokens} tokens, median of {trials}\n");
    println!("| model | prefix_cache | cold (first request) | warm (same system prompt, new question) | cold / warm |");
    println!("|---|---|---|---|---|");
    for (model, cold, warm) in &rows {
        println!(
            "| {model} | {} | {:.0} ms | {:.0} ms | {:.2} |",
            if *model == "cached" { 16 } else { 0 },
            cold * 1000.0,
            warm * 1000.0,
            cold / warm
        );
    }
    let (_, _, cached_warm) = rows[0];
    let (_, _, uncached_warm) = rows[1];
    println!(
        "\nWarm TTFT with the prefix cache vs without: {:.2}× faster\n",
        uncached_warm / cached_warm
    );
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Two upstream gatehouses serving SmolLM2 from the default config's model.
fn upstreams(dir: &Path) -> Vec<(Child, SocketAddr)> {
    let cfg = dir.join("upstream.yaml");
    std::fs::write(
        &cfg,
        format!(
            "auth: none\nmodels:\n  - {{id: smollm2-135m, backend: local, path: {}, dtype: f32}}\n",
            repo()
                .join("models/smollm2-135m-instruct-q4_1.gguf")
                .display()
        ),
    )
    .unwrap();
    (0..2)
        .map(|_| {
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
                .args(["serve", "--listen", "127.0.0.1:0", "--config"])
                .arg(&cfg)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("spawn gatehouse");
            let mut line = String::new();
            std::io::BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            let addr = line
                .trim()
                .strip_prefix("gatehouse listening on http://")
                .expect("address line")
                .parse()
                .unwrap();
            (Child(child), addr)
        })
        .collect()
}

async fn routing_table() {
    let dir = std::env::temp_dir().join(format!("gh-bench-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (convs, rounds) = (3, 4);
    let questions = [
        "Which reference applies to order 1013?",
        "Give the reference for district 7.",
        "How long may a reply be?",
        "Quote the first rule.",
    ];
    println!("## Prefix-affinity routing vs round robin: 2 upstream gatehouses, {convs} conversations × {rounds} rounds\n");
    println!("| routing | hit rate (repeat requests) | TTFT p50 first requests | TTFT mean repeat requests | TTFT p50 repeat requests |");
    println!("|---|---|---|---|---|");
    let mut repeat_mean = Vec::new();
    for policy in ["affinity", "round_robin"] {
        // Fresh upstreams per mode, so neither inherits the other's warm caches.
        let ups = upstreams(&dir);
        for (_, a) in &ups {
            ready(*a).await;
        }
        let urls: Vec<String> = ups
            .iter()
            .map(|(_, a)| format!("\"http://{a}/v1\""))
            .collect();
        let front = serve(&format!(
            "auth: none\nmodels:\n  - id: pool\n    backend: remote\n    upstream_model: smollm2-135m\n    base_urls: [{}]\n    routing: {policy}\n",
            urls.join(", ")
        ))
        .await;
        // Untimed warm-up of both upstreams' engines, with a prompt of its own.
        for _ in 0..2 {
            ttft(front, "pool", "Be brief.", "Hi").await;
        }
        let mut served: Vec<Vec<String>> = vec![Vec::new(); convs];
        let (mut first, mut repeat, mut hits, mut repeats) = (Vec::new(), Vec::new(), 0, 0);
        for (r, q) in questions.iter().enumerate().take(rounds) {
            for (c, seen) in served.iter_mut().enumerate() {
                let (t, _, backend) = ttft(front, "pool", &system_prompt(c + 1), q).await;
                if r == 0 {
                    first.push(t);
                } else {
                    repeats += 1;
                    hits += usize::from(seen.contains(&backend));
                    repeat.push(t);
                }
                seen.push(backend);
            }
        }
        // The mean, not only the median: the cold repeats are what routing decides.
        let mean = repeat.iter().sum::<f64>() / repeat.len() as f64;
        repeat_mean.push(mean);
        println!(
            "| {policy} | {:.0}% ({hits}/{repeats}) | {:.0} ms | {:.0} ms | {:.0} ms |",
            100.0 * hits as f64 / repeats as f64,
            median(first) * 1000.0,
            mean * 1000.0,
            median(repeat) * 1000.0
        );
        drop(ups);
    }
    println!(
        "\nMean repeat-request TTFT, round robin / affinity: {:.2}\n",
        repeat_mean[1] / repeat_mean[0]
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // `FLEET_BENCH_TABLES=routing` (or `prefix`) runs one table.
    let only = std::env::var("FLEET_BENCH_TABLES").unwrap_or_default();
    if only.is_empty() || only.contains("prefix") {
        prefix_cache_table().await;
    }
    if only.is_empty() || only.contains("routing") {
        routing_table().await;
    }
}
