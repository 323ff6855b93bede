//! gRPC against HTTP: the same chat request through the same gateway to the mock upstream,
//! unary and streamed, closed loop with a fixed number of concurrent callers; the direct
//! latency of the mock is measured in the same run, so the table shows what each door adds.
//!
//! `cargo bench --bench grpc` (`GRPC_BENCH_SECS`, default 5 per row; `GRPC_BENCH_CONCURRENCY`,
//! default 8). The mock, the gateway and the callers run on runtimes of their own, in one
//! process, on the same cores: the ratios are the result, not the absolute figures.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::StreamExt;
use gateway::grpc::pb;
use gateway::grpc::pb::inference_client::InferenceClient;
use serde_json::json;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `f` on a runtime thread of its own with `workers` threads (1: current-thread).
fn runtime_thread<F, T>(workers: usize, f: F) -> T
where
    F: FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>> + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = if workers == 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_all()
                .build()
        }
        .expect("runtime");
        rt.block_on(async move {
            tx.send(f().await).expect("report");
            std::future::pending::<()>().await;
        });
    });
    rx.recv().expect("started")
}

fn start_mock() -> SocketAddr {
    runtime_thread(1, || {
        Box::pin(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            tokio::spawn(mock_upstream::serve(l));
            addr
        })
    })
}

fn start_gateway(mock: SocketAddr) -> (SocketAddr, SocketAddr) {
    let yaml = format!(
        "auth: none\nserver:\n  listen: 127.0.0.1:0\n  grpc_listen: 127.0.0.1:0\n  max_in_flight: 100000\n\
         models:\n  - id: mock\n    backend: remote\n    base_url: http://{mock}/v1\n    max_concurrent: 100000\n    max_queue: 100000\n"
    );
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/bench.yaml");
    let config = gateway::config::Config::from_str_with_env(&yaml, &path, std::iter::empty())
        .unwrap_or_else(|e| panic!("{e}"));
    runtime_thread(2, move || {
        Box::pin(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let server = gateway::server::start(config, l).expect("start");
            let addrs = (server.addr, server.grpc_addr.expect("grpc"));
            std::mem::forget(server);
            addrs
        })
    })
}

/// What one caller does once: a request and its whole answer.
#[derive(Clone)]
enum Call {
    Http { url: String, stream: bool },
    Grpc { stream: bool },
}

/// Latencies of every call made by `concurrency` callers in `secs` seconds.
async fn run(
    call: Call,
    http: reqwest::Client,
    grpc: InferenceClient<tonic::transport::Channel>,
    concurrency: usize,
    secs: u64,
) -> (Vec<Duration>, f64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (call, http, mut grpc) = (call.clone(), http.clone(), grpc.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                match &call {
                    Call::Http { url, stream } => {
                        let body = json!({"model": "mock", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 16, "stream": stream});
                        let r = http.post(url).json(&body).send().await.unwrap();
                        assert!(r.status().is_success(), "{}", r.status());
                        let bytes = r.bytes().await.unwrap();
                        assert!(!bytes.is_empty());
                    }
                    Call::Grpc { stream } => {
                        let req = pb::ChatRequest {
                            model: "mock".into(),
                            messages: vec![pb::Message {
                                role: "user".into(),
                                content: "Hello".into(),
                                ..Default::default()
                            }],
                            max_tokens: Some(16),
                            ..Default::default()
                        };
                        if *stream {
                            let mut s = grpc.chat_stream(req).await.unwrap().into_inner();
                            while let Some(m) = s.next().await {
                                m.unwrap();
                            }
                        } else {
                            grpc.chat(req).await.unwrap();
                        }
                    }
                }
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let rps = all.len() as f64 / started.elapsed().as_secs_f64();
    all.sort();
    (all, rps)
}

fn pct(v: &[Duration], p: f64) -> f64 {
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1e3
}

fn main() {
    let secs = env_or("GRPC_BENCH_SECS", 5);
    let concurrency = env_or("GRPC_BENCH_CONCURRENCY", 8) as usize;
    let mock = start_mock();
    let (http_addr, grpc_addr) = start_gateway(mock);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let http = reqwest::Client::new();
        let grpc = InferenceClient::new(
            tonic::transport::Channel::from_shared(format!("http://{grpc_addr}"))
                .unwrap()
                .connect()
                .await
                .unwrap(),
        );
        let direct = format!("http://{mock}/v1/chat/completions");
        let gw = format!("http://{http_addr}/v1/chat/completions");
        let rows: Vec<(&str, Call)> = vec![
            (
                "direct to the mock, unary",
                Call::Http {
                    url: direct.clone(),
                    stream: false,
                },
            ),
            (
                "HTTP unary",
                Call::Http {
                    url: gw.clone(),
                    stream: false,
                },
            ),
            ("gRPC Chat", Call::Grpc { stream: false }),
            (
                "direct to the mock, SSE",
                Call::Http {
                    url: direct,
                    stream: true,
                },
            ),
            (
                "HTTP SSE",
                Call::Http {
                    url: gw,
                    stream: true,
                },
            ),
            ("gRPC ChatStream", Call::Grpc { stream: true }),
        ];
        // Warm connection pools and allocators on every path.
        for (_, call) in &rows {
            run(call.clone(), http.clone(), grpc.clone(), concurrency, 1).await;
        }
        println!("concurrency {concurrency}, {secs} s per row; latency of a whole answer");
        println!("| path | calls/s | p50 ms | p99 ms | added p50 ms | added p99 ms |");
        println!("|---|---:|---:|---:|---:|---:|");
        let mut results = Vec::new();
        let mut base = (0.0, 0.0);
        for (i, (name, call)) in rows.into_iter().enumerate() {
            let (lat, rps) = run(call, http.clone(), grpc.clone(), concurrency, secs).await;
            let (p50, p99) = (pct(&lat, 0.5), pct(&lat, 0.99));
            if i % 3 == 0 {
                base = (p50, p99);
            }
            println!(
                "| {name} | {rps:.0} | {p50:.3} | {p99:.3} | {:.3} | {:.3} |",
                p50 - base.0,
                p99 - base.1
            );
            results.push((rps, p50 - base.0, p99 - base.1));
        }
        let ratio = |g: usize, h: usize| {
            let (gr, g50, g99) = results[g];
            let (hr, h50, h99) = results[h];
            (hr / gr, g50 / h50, g99 / h99)
        };
        println!();
        println!("| gRPC / HTTP | throughput (HTTP/gRPC) | added p50 | added p99 |");
        println!("|---|---:|---:|---:|");
        for (name, g, h) in [("unary", 2, 1), ("streamed", 5, 4)] {
            let (t, a50, a99) = ratio(g, h);
            println!("| {name} | {t:.2}x | {a50:.2}x | {a99:.2}x |");
        }
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        println!("machine: {cores} cores; mock, gateway and callers share them");
    });
}
