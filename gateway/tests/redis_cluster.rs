//! `redis.mode: cluster` against a real Redis Cluster (three masters, three replicas, started
//! by the test from Debian's `redis-server`): two gateways share API keys, rate limits and the
//! response cache through it, each multi-key script touching one slot.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::redis_cluster::RedisCluster;
use serde_json::{json, Value};

async fn chat(addr: SocketAddr, key: &str, content: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("http://{addr}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "m", "temperature": 0, "messages": [{"role": "user", "content": content}]}))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_share_keys_limits_and_cache_through_a_cluster() {
    let cluster = tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .unwrap();
    let upstream = common::mock_upstream().await;
    let prefix = format!("gh-cluster-{}", uuid::Uuid::new_v4().simple());
    let yaml = format!(
        "server:\n  listen: 127.0.0.1:0\nmodels:\n  - id: m\n    backend: remote\n    base_url: http://{upstream}/v1\n\
auth:\n  redis_keys: true\n  keys:\n    - {{id: limited, tenant: acme, key_env: GH_RC_LIMITED}}\n\
tenants:\n  acme:\n    limits: {{requests_per_minute: 60, burst: 5}}\n  open: {{}}\n\
redis:\n  mode: cluster\n  urls: [{}]\n  prefix: {prefix}\n  timeout_ms: 1000\n  on_error: {{rate_limits: fail_closed}}\n\
cache:\n  store: redis\n",
        cluster.urls().join(", ")
    );
    let vars = [("GH_RC_LIMITED", "limited-key-of-acme")];
    let config = || common::config_with_env(&yaml, &vars);
    let (a, b) = (common::start(config()), common::start(config()));

    // API keys made in Redis: both gateways accept one until it is revoked.
    let kv = gateway::kv::Kv::new(config().redis.as_ref().unwrap(), None).unwrap();
    assert!(kv.is_cluster());
    let keys = gateway::auth::RedisKeys::new(kv, gateway::kv::Feature::Cli);
    let key = gateway::auth::keys::generate_key();
    let record = gateway::auth::KeyRecord {
        id: "k-open".into(),
        tenant: "open".into(),
        role: gateway::config::KeyRole::User,
        limits: Default::default(),
        name: None,
        created_at: 0,
    };
    keys.create(&key, &record).await.unwrap();
    assert_eq!(keys.list().await.unwrap(), vec![record]);

    // The response cache: a miss on one gateway is a hit on the other.
    let r = chat(a, &key, "cached across the cluster").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-cache"], "MISS");
    let first: Value = r.json().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = chat(b, &key, "cached across the cluster").await;
        assert_eq!(r.status(), 200);
        if r.headers()["x-cache"] == "HIT" {
            let again: Value = r.json().await.unwrap();
            assert_eq!(again["choices"], first["choices"]);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "gateway b never hit the shared cache"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // One rate limit for both gateways: a burst of 5 at 1 request/s is not admitted twice.
    let mut admitted = 0;
    for i in 0..12 {
        let gw = if i % 2 == 0 { a } else { b };
        match chat(gw, "limited-key-of-acme", &format!("limited {i}"))
            .await
            .status()
            .as_u16()
        {
            200 => admitted += 1,
            429 => {}
            s => panic!("unexpected status {s}"),
        }
    }
    assert!((5..=6).contains(&admitted), "{admitted} of 12 admitted");

    keys.revoke("k-open").await.unwrap();
    for gw in [a, b] {
        assert_eq!(chat(gw, &key, "after revocation").await.status(), 401);
    }
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_killed_under_load_fails_over_without_hangs_or_double_admission() {
    let mut cluster = tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .unwrap();
    let upstream = common::mock_upstream().await;
    let prefix = format!("gh-failover-{}", uuid::Uuid::new_v4().simple());
    let timeout_ms = 300;
    // 10 requests/s with a burst of 10; limits fail closed, so an unreachable slot refuses
    // (503) rather than admits.
    let yaml = format!(
        "server:\n  listen: 127.0.0.1:0\nmodels:\n  - id: m\n    backend: remote\n    base_url: http://{upstream}/v1\n\
auth:\n  keys:\n    - {{id: k, tenant: acme, key_env: GH_RC_KEY}}\n\
tenants:\n  acme:\n    limits: {{requests_per_minute: 600, burst: 10}}\n\
redis:\n  mode: cluster\n  urls: [{}]\n  prefix: {prefix}\n  timeout_ms: {timeout_ms}\n  on_error: {{rate_limits: fail_closed, cache: fail_open}}\n\
cache:\n  store: redis\n",
        cluster.urls().join(", ")
    );
    let config = common::config_with_env(&yaml, &[("GH_RC_KEY", "failover-key")]);
    let gw = common::start(config);
    let started = Instant::now();
    let run_for = Duration::from_secs(8);
    let mut workers = Vec::new();
    for w in 0..4 {
        workers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut i = 0;
            while started.elapsed() < run_for {
                let t = Instant::now();
                let status = chat(gw, "failover-key", &format!("w{w} {i}"))
                    .await
                    .status()
                    .as_u16();
                seen.push((status, t.elapsed()));
                i += 1;
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let master = cluster.masters()[0];
    let killed_at = started.elapsed();
    cluster.kill(master);
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let admitted = all.iter().filter(|(s, _)| *s == 200).count();
    let refused = all.iter().filter(|(s, _)| *s == 503).count();
    let limited = all.iter().filter(|(s, _)| *s == 429).count();
    let slowest = all.iter().map(|(_, d)| *d).max().unwrap();
    println!(
        "failover: {} requests, {admitted} admitted, {limited} limited, {refused} refused, slowest {slowest:?}, master killed at {killed_at:?}",
        all.len()
    );
    assert_eq!(
        admitted + refused + limited,
        all.len(),
        "unexpected statuses: {:?}",
        all.iter()
            .filter(|(s, _)| ![200, 429, 503].contains(s))
            .collect::<Vec<_>>()
    );
    // Each request makes at most four Redis calls (admit, cache get, cache put, settle),
    // each bounded by timeout_ms.
    assert!(
        slowest < Duration::from_millis(4 * timeout_ms + 1000),
        "a request took {slowest:?} (master killed at {killed_at:?})"
    );
    // Never more than the limit allows over the run: the burst plus 10/s.
    let allowance = 10 + (run_for.as_secs_f64() * 10.0).ceil() as usize + 1;
    assert!(
        admitted <= allowance,
        "{admitted} admitted, allowance {allowance}"
    );
    assert!(
        admitted >= 20,
        "only {admitted} admitted: {limited} limited, {refused} refused"
    );
    // The replica took over: every slot is served again and requests are admitted.
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.wait_ok(Duration::from_secs(30));
        cluster
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = chat(gw, "failover-key", "after the failover").await;
        let s = r.status();
        if s == 200 {
            break;
        }
        let body = r.text().await.unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "still {s} after the failover: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(cluster);
}
