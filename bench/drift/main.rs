//! What drift monitoring adds to a request, two tables in one run:
//!
//! 1. the request-path work alone: the prompt's script (a 4 KB prompt) and handing a
//!    finished request's observation to the monitor's queue (with the monitor's task
//!    draining it, as in a server), p50 and p99 per request;
//! 2. whole requests through the in-process gateway to the mock upstream, drift off and on,
//!    sequential, alternating blocks, so both see the same machine state: p50 and p99 and
//!    the difference.
//!
//! `cargo bench --bench drift` (`DRIFT_BENCH_REQUESTS`, default 4000 per setting).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway::audit::record::{Activity, Class, Record, Tokens};
use gateway::drift::{Monitor, Observation};
use serde_json::json;

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e6
}

fn config(yaml: &str) -> gateway::config::Config {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/bench.yaml");
    gateway::config::Config::from_str_with_env(yaml, &path, std::iter::empty())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn record() -> Record {
    let mut r = Record::new(Class::ApiActivity, Activity::Create, 0);
    r.set_outcome("ok");
    let u = &mut r.unmapped;
    u.kind = "chat".into();
    u.model = Some("mock".into());
    u.template = Some("soc-triage@1".into());
    u.finish_reason = Some("stop".into());
    u.prompt_script = Some("latin".into());
    u.tokens = Some(Tokens {
        prompt: 900,
        completion: 60,
        total: 960,
    });
    r
}

async fn request_path_table(rounds: usize) {
    let yaml = "auth: none\nmodels:\n  - id: mock\n    backend: remote\n    base_url: http://127.0.0.1:9/v1\ndrift: {}\n";
    let cfg = config(yaml);
    let metrics = Arc::new(gateway::metrics::Metrics::new());
    let models = Arc::new(gateway::models::ModelRegistry::new(
        &cfg,
        None,
        metrics.clone(),
    ));
    let monitor = Monitor::start(cfg.drift.clone().unwrap(), models, metrics.drift.clone());
    let prompt =
        "Failed password for invalid user admin from 203.0.113.7 port 52144 ssh2. ".repeat(56);
    let r = record();
    let (mut script, mut observe) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        std::hint::black_box(gateway::drift::script::dominant([prompt.as_str()]));
        script.push(t.elapsed());
        let t = Instant::now();
        if let Some(o) = Observation::from_record(&r) {
            monitor.observe(o);
        }
        observe.push(t.elapsed());
        // A request every 20 µs at most: the pace of a busy server, not a tight loop that
        // only measures a full queue.
        tokio::time::sleep(Duration::from_micros(20)).await;
    }
    println!("| request-path step | p50 µs | p99 µs |");
    println!("|---|---:|---:|");
    println!(
        "| script of a {} B prompt | {:.2} | {:.2} |",
        prompt.len(),
        pct(&mut script, 0.5),
        pct(&mut script, 0.99)
    );
    println!(
        "| observation to the monitor's queue | {:.2} | {:.2} |",
        pct(&mut observe, 0.5),
        pct(&mut observe, 0.99)
    );
    println!("dropped: {}", metrics.drift.dropped.get());
}

async fn serve(yaml: String) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = gateway::server::start(config(&yaml), l).expect("start");
    let addr = server.addr;
    std::mem::forget(server);
    addr
}

async fn end_to_end_table(n: usize) {
    let mock = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = l.local_addr().unwrap();
        tokio::spawn(mock_upstream::serve(l));
        a
    };
    let base = format!(
        "auth: none\nserver:\n  listen: 127.0.0.1:0\nmodels:\n  - id: mock\n    backend: remote\n    base_url: http://{mock}/v1\n"
    );
    let off = serve(base.clone()).await;
    let on = serve(format!("{base}drift: {{}}\n")).await;
    let client = reqwest::Client::new();
    let body = json!({"model": "mock", "messages": [{"role": "user", "content": "Failed password for invalid user admin from 203.0.113.7"}], "max_tokens": 16});
    let one = |addr: SocketAddr| {
        let (client, body) = (client.clone(), body.clone());
        async move {
            let t = Instant::now();
            let r = client
                .post(format!("http://{addr}/v1/chat/completions"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
            r.bytes().await.unwrap();
            t.elapsed()
        }
    };
    for _ in 0..300 {
        one(off).await;
        one(on).await;
    }
    let (mut a, mut b) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n / 100 {
        for _ in 0..100 {
            a.push(one(off).await);
        }
        for _ in 0..100 {
            b.push(one(on).await);
        }
    }
    let (a50, a99, b50, b99) = (
        pct(&mut a, 0.5),
        pct(&mut a, 0.99),
        pct(&mut b, 0.5),
        pct(&mut b, 0.99),
    );
    println!();
    println!("| whole request, {n} each | p50 µs | p99 µs |");
    println!("|---|---:|---:|");
    println!("| drift off | {a50:.1} | {a99:.1} |");
    println!("| drift on | {b50:.1} | {b99:.1} |");
    println!("| on - off | {:.1} | {:.1} |", b50 - a50, b99 - a99);
    println!("| on / off | {:.3}x | {:.3}x |", b50 / a50, b99 / a99);
}

fn main() {
    let n: usize = std::env::var("DRIFT_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        request_path_table(20_000).await;
        end_to_end_table(n).await;
    });
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("machine: {cores} cores; gateway, mock and client share them");
}
