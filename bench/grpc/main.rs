//! gRPC against HTTP: the same chat request through the same gateway to the mock upstream,
//! unary and streamed, closed loop with a fixed number of concurrent callers. Each protocol's
//! transport is measured alone in the same run (HTTP: the mock called directly; gRPC: a
//! canned `gatehouse.v1.Inference` server, same tonic/axum stack, answering at once), so
//! "added" is what the gateway adds behind each door.
//!
//! `cargo bench --workspace --bench grpc` (`GRPC_BENCH_SECS`, default 10 rounds of one second
//! per row; `GRPC_BENCH_CONCURRENCY`, default 8; `GRPC_BENCH_CANNED_WORKERS`, default 1: the
//! canned server's runtime threads, 2 to match the gateway's; `GRPC_BENCH_ONLY=unary|streamed`:
//! only those rows, e.g. under a profiler). The mock, the gateway and the callers run on runtimes of their own, in one
//! process, on the same cores: the ratios are the result, not the absolute figures.

use std::net::SocketAddr;
use std::sync::Arc;
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

/// Answers every call at once with a canned answer: gRPC's transport without a gateway.
#[derive(Clone)]
struct Canned;

fn canned_message() -> pb::ChatStreamResponse {
    pb::ChatStreamResponse {
        id: "chatcmpl-mock".into(),
        model: "mock".into(),
        delta: "Hello from the mock upstream.".into(),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl pb::inference_server::Inference for Canned {
    async fn chat(
        &self,
        _: tonic::Request<pb::ChatRequest>,
    ) -> Result<tonic::Response<pb::ChatResponse>, tonic::Status> {
        Ok(tonic::Response::new(pb::ChatResponse {
            id: "chatcmpl-mock".into(),
            model: "mock".into(),
            content: "Hello from the mock upstream.".into(),
            finish_reason: "stop".into(),
            ..Default::default()
        }))
    }

    type ChatStreamStream =
        futures::stream::BoxStream<'static, Result<pb::ChatStreamResponse, tonic::Status>>;

    async fn chat_stream(
        &self,
        _: tonic::Request<pb::ChatRequest>,
    ) -> Result<tonic::Response<Self::ChatStreamStream>, tonic::Status> {
        let last = pb::ChatStreamResponse {
            finish_reason: "stop".into(),
            ..canned_message()
        };
        Ok(tonic::Response::new(
            futures::stream::iter([Ok(canned_message()), Ok(last)]).boxed(),
        ))
    }

    async fn embed(
        &self,
        _: tonic::Request<pb::EmbedRequest>,
    ) -> Result<tonic::Response<pb::EmbedResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("canned"))
    }

    async fn list_models(
        &self,
        _: tonic::Request<pb::ListModelsRequest>,
    ) -> Result<tonic::Response<pb::ListModelsResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("canned"))
    }
}

/// The canned server on `workers` runtime threads: 1 (current-thread, the cheapest transport),
/// or 2 like the gateway's, whose HTTP/2 streams then hop between worker threads.
fn start_canned_grpc(workers: usize) -> SocketAddr {
    use axum::serve::ListenerExt;
    runtime_thread(workers, || {
        Box::pin(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            let router =
                tonic::service::Routes::new(pb::inference_server::InferenceServer::new(Canned))
                    .into_axum_router();
            let l = l.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            tokio::spawn(async move { axum::serve(l, router).await });
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
#[derive(Clone, Copy)]
enum Call {
    Http { gateway: bool, stream: bool },
    Grpc { gateway: bool, stream: bool },
}

/// The addresses and clients the callers share.
struct Targets {
    http: reqwest::Client,
    mock_url: String,
    gateway_url: String,
    /// One connection per caller to each gRPC server, as the HTTP/1.1 client has one per
    /// caller (a single HTTP/2 connection would serialise the callers on one connection task
    /// at each end).
    canned: Vec<InferenceClient<tonic::transport::Channel>>,
    gateway: Vec<InferenceClient<tonic::transport::Channel>>,
}

async fn clients(addr: SocketAddr, n: usize) -> Vec<InferenceClient<tonic::transport::Channel>> {
    let mut out = Vec::new();
    for _ in 0..n {
        let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        out.push(InferenceClient::new(channel));
    }
    out
}

/// The chat request every gRPC row sends (the HTTP rows send the same as JSON).
fn hello() -> pb::ChatRequest {
    pb::ChatRequest {
        model: "mock".into(),
        messages: vec![pb::Message {
            role: "user".into(),
            content: "Hello".into(),
            ..Default::default()
        }],
        max_tokens: Some(16),
        ..Default::default()
    }
}

async fn once(call: Call, t: &Targets, i: usize) {
    match call {
        Call::Http { gateway, stream } => {
            let url = if gateway { &t.gateway_url } else { &t.mock_url };
            let body = json!({"model": "mock", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 16, "stream": stream});
            let r = t.http.post(url).json(&body).send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            assert!(!r.bytes().await.unwrap().is_empty());
        }
        Call::Grpc { gateway, stream } => {
            let mut c = if gateway { &t.gateway } else { &t.canned }[i].clone();
            let req = hello();
            if stream {
                let mut s = c.chat_stream(req).await.unwrap().into_inner();
                while let Some(m) = s.next().await {
                    m.unwrap();
                }
            } else {
                c.chat(req).await.unwrap();
            }
        }
    }
}

/// Latencies of every call made by `concurrency` callers in `secs` seconds, and calls/s.
async fn run(call: Call, t: Arc<Targets>, concurrency: usize, secs: u64) -> (Vec<Duration>, f64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..concurrency {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let start = Instant::now();
                once(call, &t, i).await;
                lat.push(start.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let rps = all.len() as f64 / started.elapsed().as_secs_f64();
    all.sort();
    (all, rps)
}

fn pct(v: &[Duration], p: f64) -> f64 {
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1e3
}

/// The work only the gRPC door does per chat call: the message written as the OpenAI body it
/// stands for and parsed by the HTTP API's parser (p50 and p99 in µs).
fn conversion_cost() -> (f64, f64) {
    let req = hello();
    let mut lat = Vec::with_capacity(100_000);
    for _ in 0..100_000 {
        let t = Instant::now();
        let body = serde_json::to_vec(&gateway::grpc::convert::chat_body(req.clone())).unwrap();
        std::hint::black_box(gateway::api::parse::chat_request(&body, "id").unwrap());
        lat.push(t.elapsed());
    }
    lat.sort();
    (pct(&lat, 0.5) * 1e3, pct(&lat, 0.99) * 1e3)
}

fn main() {
    let secs = env_or("GRPC_BENCH_SECS", 10);
    let (c50, c99) = conversion_cost();
    println!(
        "gRPC-only work per chat call (message -> OpenAI JSON -> the HTTP parser): p50 {c50:.2} µs, p99 {c99:.2} µs"
    );
    let concurrency = env_or("GRPC_BENCH_CONCURRENCY", 8) as usize;
    let mock = start_mock();
    let canned_workers = env_or("GRPC_BENCH_CANNED_WORKERS", 1) as usize;
    println!("canned gRPC server on {canned_workers} runtime thread(s); the gateway on 2");
    let canned = start_canned_grpc(canned_workers);
    let (http_addr, grpc_addr) = start_gateway(mock);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let t = Arc::new(Targets {
            http: reqwest::Client::new(),
            mock_url: format!("http://{mock}/v1/chat/completions"),
            gateway_url: format!("http://{http_addr}/v1/chat/completions"),
            canned: clients(canned, concurrency).await,
            gateway: clients(grpc_addr, concurrency).await,
        });
        // Pairs: the protocol's transport alone, then through the gateway.
        let all: [(&str, Call); 8] = [
            (
                "HTTP, mock direct",
                Call::Http {
                    gateway: false,
                    stream: false,
                },
            ),
            (
                "HTTP via gateway",
                Call::Http {
                    gateway: true,
                    stream: false,
                },
            ),
            (
                "gRPC, canned server",
                Call::Grpc {
                    gateway: false,
                    stream: false,
                },
            ),
            (
                "gRPC Chat via gateway",
                Call::Grpc {
                    gateway: true,
                    stream: false,
                },
            ),
            (
                "HTTP SSE, mock direct",
                Call::Http {
                    gateway: false,
                    stream: true,
                },
            ),
            (
                "HTTP SSE via gateway",
                Call::Http {
                    gateway: true,
                    stream: true,
                },
            ),
            (
                "gRPC stream, canned server",
                Call::Grpc {
                    gateway: false,
                    stream: true,
                },
            ),
            (
                "gRPC ChatStream via gateway",
                Call::Grpc {
                    gateway: true,
                    stream: true,
                },
            ),
        ];
        // GRPC_BENCH_ONLY=unary|streamed keeps those two pairs (to profile one path).
        let only = std::env::var("GRPC_BENCH_ONLY").unwrap_or_default();
        let rows: Vec<(&str, Call)> = all
            .into_iter()
            .filter(|(_, call)| match (only.as_str(), call) {
                ("unary", Call::Http { stream, .. } | Call::Grpc { stream, .. }) => !stream,
                ("streamed", Call::Http { stream, .. } | Call::Grpc { stream, .. }) => *stream,
                _ => true,
            })
            .collect();
        // Warm connection pools and allocators on every path.
        for (_, call) in &rows {
            run(*call, t.clone(), concurrency, 1).await;
        }
        println!(
            "concurrency {concurrency}; every row for 1 s in turn, {secs} rounds (slow drifts of \
             the shared machine hit all rows alike); latency of a whole answer; added = via \
             gateway - alone"
        );
        let mut lat: Vec<Vec<Duration>> = vec![Vec::new(); rows.len()];
        let mut calls = vec![0.0; rows.len()];
        for _ in 0..secs {
            for (i, (_, call)) in rows.iter().enumerate() {
                let (l, rps) = run(*call, t.clone(), concurrency, 1).await;
                lat[i].extend(l);
                calls[i] += rps / secs as f64;
            }
        }
        println!("| path | calls/s | p50 ms | p99 ms | added p50 ms | added p99 ms |");
        println!("|---|---:|---:|---:|---:|---:|");
        let mut added = Vec::new();
        let mut base = (0.0, 0.0);
        for (i, (name, _)) in rows.iter().enumerate() {
            lat[i].sort();
            let (p50, p99) = (pct(&lat[i], 0.5), pct(&lat[i], 0.99));
            let rps = calls[i];
            if i % 2 == 0 {
                base = (p50, p99);
                println!("| {name} | {rps:.0} | {p50:.3} | {p99:.3} | | |");
            } else {
                let a = (p50 - base.0, p99 - base.1);
                println!(
                    "| {name} | {rps:.0} | {p50:.3} | {p99:.3} | {:.3} | {:.3} |",
                    a.0, a.1
                );
                added.push(a);
            }
        }
        println!();
        println!("| gRPC added / HTTP added | p50 | p99 |");
        println!("|---|---:|---:|");
        let pairs: &[(&str, usize, usize)] = match only.as_str() {
            "unary" => &[("unary", 1, 0)],
            "streamed" => &[("streamed", 1, 0)],
            _ => &[("unary", 1, 0), ("streamed", 3, 2)],
        };
        for &(name, g, h) in pairs {
            println!(
                "| {name} | {:.2}x | {:.2}x |",
                added[g].0 / added[h].0,
                added[g].1 / added[h].1
            );
        }
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        println!("machine: {cores} cores; mock, servers, gateway and callers share them");
    });
}
