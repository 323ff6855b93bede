//! Audit log benchmark, two tables:
//!
//! 1. The writer alone: chat records of a realistic size (three decisions, citations, a tool
//!    call) through the queue to disk, with `fsync` on and off: records per second; and how
//!    fast `verify` walks the result (hashes and checkpoint signatures).
//! 2. What auditing costs a request: two in-process gateways in front of the same in-process
//!    OpenAI-compatible upstream (answers at once), one without `audit:`, one with it
//!    (`fsync: true`); latency percentiles of sequential requests and throughput of 16
//!    concurrent clients, rounds interleaved, as ratios against the gateway without audit.
//!
//! `cargo test -p gateway --locked --bench audit` (`AUDIT_BENCH_RECORDS`, default 20000).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use gateway::audit::record::{
    Activity, Actor, CitationRecord, Class, DecisionRecord, Org, Record, RetrievalRecord, Tokens,
    ToolCallRecord, User,
};
use gateway::audit::Auditor;
use gateway::config::{AuditConfig, OnFull};
use serde_json::json;

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gh-bench-audit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn sample(i: usize) -> Record {
    let mut r = Record::new(
        Class::ApiActivity,
        Activity::Create,
        1_764_558_000_000 + i as i64,
    );
    r.set_outcome("ok");
    r.message = "chat.completions smollm2-135m: ok".into();
    r.metadata.correlation_uid = Some(format!("{:032x}", i));
    r.actor = Some(Actor {
        user: User {
            uid: Some("acme-app".into()),
            kind: Some("api_key".into()),
            org: Some(Org { uid: "acme".into() }),
        },
    });
    let u = &mut r.unmapped;
    u.kind = "chat".into();
    u.model = Some("smollm2-135m".into());
    u.decisions = (0..3)
        .map(|k| DecisionRecord {
            policy: "default".into(),
            rule: format!("rule-{k}"),
            kind: "pii".into(),
            stage: "input".into(),
            action: "redact".into(),
            severity: "medium".into(),
            entity: "email".into(),
            message: Some(0),
            start: 10 * k,
            end: 10 * k + 8,
            placeholder: Some(format!("[EMAIL_{k}]")),
            ..Default::default()
        })
        .collect();
    u.retrieval = Some(RetrievalRecord {
        collection: "docs".into(),
        status: "ok".into(),
        citations: (0..2)
            .map(|k| CitationRecord {
                id: k + 1,
                source: format!("handbook/chapter-{k}.md"),
                chunk: k as u32,
                score: 0.8,
                point_id: 1000 + k as u64,
            })
            .collect(),
        ..Default::default()
    });
    u.tool_calls = vec![ToolCallRecord {
        name: "calculator".into(),
        call_id: "call_1".into(),
        arguments_sha256: "ab".repeat(32),
        outcome: "ok".into(),
        side: "server".into(),
        elapsed_ms: Some(1),
    }];
    u.tokens = Some(Tokens {
        prompt: 120,
        completion: 64,
        total: 184,
    });
    u.ttft_ms = Some(80);
    r
}

fn audit_config(dir: PathBuf, fsync: bool) -> AuditConfig {
    AuditConfig {
        dir,
        max_file_bytes: 64 << 20,
        max_file_age: Duration::from_secs(86_400),
        queue: 1 << 20,
        on_full: OnFull::Drop,
        fsync,
        checkpoint_every: 1000,
        checkpoint_interval: Duration::from_secs(60),
        hmac_key: Some(b"bench-key-0123456789abcdef0123456789".to_vec()),
        hmac_key_env: None,
    }
}

fn writer_table(n: usize) {
    println!("\n## Audit writer: {n} chat records through the queue to disk\n");
    println!("| fsync | records/s | MB/s | bytes/record | files | verify, records/s |");
    println!("|---|---:|---:|---:|---:|---:|");
    for fsync in [true, false] {
        let dir = temp(if fsync { "fsync" } else { "nofsync" });
        let a = Auditor::open(
            &audit_config(dir.clone(), fsync),
            gateway::metrics::AuditMetrics::new(),
        )
        .unwrap();
        let records: Vec<Record> = (0..n).map(sample).collect();
        let t = Instant::now();
        for r in records {
            a.write(a.admit().unwrap(), r);
        }
        assert!(a.flush(Duration::from_secs(600)));
        let secs = t.elapsed().as_secs_f64();
        a.close(Duration::from_secs(60));
        let files = gateway::audit::files::list(&dir).unwrap();
        let bytes: u64 = files
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum();
        // `gatehouse audit verify` and the review page walk the whole log: how fast.
        let key = audit_config(dir.clone(), fsync).hmac_key;
        let t = Instant::now();
        let report = gateway::audit::verify::verify(&dir, key.as_deref()).unwrap();
        let verify_secs = t.elapsed().as_secs_f64();
        assert!(report.ok(), "{report:?}");
        assert!(report.signed_checkpoints > 0);
        println!(
            "| {} | {:.0} | {:.1} | {} | {} | {:.0} |",
            if fsync { "on" } else { "off" },
            n as f64 / secs,
            bytes as f64 / secs / 1e6,
            bytes / n as u64,
            files.len(),
            report.records as f64 / verify_secs
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

async fn upstream() -> SocketAddr {
    async fn answer() -> axum::Json<serde_json::Value> {
        axum::Json(json!({
            "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13},
        }))
    }
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let app = axum::Router::new().route("/v1/chat/completions", axum::routing::post(answer));
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    addr
}

async fn gateway(up: SocketAddr, audit: Option<&PathBuf>) -> SocketAddr {
    let mut yaml = format!(
        "auth: none\nmodels:\n  - id: up\n    backend: remote\n    base_url: http://{up}/v1\n    max_concurrent: 64\n    max_queue: 256\n"
    );
    if let Some(dir) = audit {
        yaml += &format!("audit:\n  dir: {}\n", dir.display());
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let cfg = gateway::config::Config::from_str_with_env(
        &yaml,
        &root.join("config/bench.yaml"),
        std::iter::empty(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = gateway::server::start(cfg, listener).unwrap();
    let addr = server.addr;
    std::mem::forget(server);
    addr
}

async fn one(c: &reqwest::Client, addr: SocketAddr) -> Duration {
    let t = Instant::now();
    let r = c
        .post(format!("http://{addr}/v1/chat/completions"))
        .json(&json!({"model": "up", "messages": [{"role": "user", "content": "Write to a@b.io please"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    t.elapsed()
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    v[((v.len() - 1) as f64 * p) as usize].as_secs_f64() * 1000.0
}

async fn overhead_table() {
    let up = upstream().await;
    let dir = temp("gw");
    let plain = gateway(up, None).await;
    let audited = gateway(up, Some(&dir)).await;
    let c = reqwest::Client::new();
    for addr in [plain, audited] {
        for _ in 0..200 {
            one(&c, addr).await; // warm up connections and allocators
        }
    }
    let (mut lat_plain, mut lat_audit) = (Vec::new(), Vec::new());
    for _round in 0..10 {
        for _ in 0..200 {
            lat_plain.push(one(&c, plain).await);
        }
        for _ in 0..200 {
            lat_audit.push(one(&c, audited).await);
        }
    }
    let throughput = |addr: SocketAddr| {
        let c = c.clone();
        async move {
            let t = Instant::now();
            let tasks: Vec<_> = (0..16)
                .map(|_| {
                    let c = c.clone();
                    tokio::spawn(async move {
                        for _ in 0..150 {
                            one(&c, addr).await;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            (16 * 150) as f64 / t.elapsed().as_secs_f64()
        }
    };
    let (mut rps_plain, mut rps_audit) = (0.0, 0.0);
    for _ in 0..3 {
        rps_plain += throughput(plain).await / 3.0;
        rps_audit += throughput(audited).await / 3.0;
    }
    println!("\n## What auditing costs a request (in-process upstream answering at once)\n");
    println!("| gateway | p50 ms | p99 ms | req/s, 16 clients |");
    println!("|---|---:|---:|---:|");
    let (p50a, p99a) = (pct(&mut lat_plain, 0.5), pct(&mut lat_plain, 0.99));
    let (p50b, p99b) = (pct(&mut lat_audit, 0.5), pct(&mut lat_audit, 0.99));
    println!("| no audit | {p50a:.2} | {p99a:.2} | {rps_plain:.0} |");
    println!("| audit (fsync) | {p50b:.2} | {p99b:.2} | {rps_audit:.0} |");
    println!(
        "| ratio | {:.2}× | {:.2}× | {:.2}× |",
        p50b / p50a,
        p99b / p99a,
        rps_audit / rps_plain
    );
    let written: usize = gateway::audit::files::records(&dir).unwrap().count();
    println!("\n{written} records written by the audited gateway.");
}

fn main() {
    let n = std::env::var("AUDIT_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    writer_table(n);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(overhead_table());
}
