//! Prefix-affinity routing over several upstreams, with the prefix map in the real Redis.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;

use serde_json::{json, Value};

use common::{start, start_named_upstream};

async fn ask(addr: SocketAddr, system: &str, user: &str) -> (String, String) {
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/v1/chat/completions"))
        .json(&json!({
            "model": "pool",
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let backend = r.headers()["x-gatehouse-backend"]
        .to_str()
        .unwrap()
        .to_string();
    let v: Value = r.json().await.unwrap();
    (
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_string(),
        backend,
    )
}

fn pool_yaml(urls: &[String], extra: &str) -> String {
    format!(
        "auth: none\nserver:\n  listen: 127.0.0.1:0\nmodels:\n  - id: pool\n    backend: remote\n    base_urls: [{}]\n{extra}",
        urls.join(", ")
    )
}

#[tokio::test]
async fn conversations_stick_to_one_backend_and_spread_over_all() {
    let names = ["u0", "u1", "u2"];
    let urls: Vec<String> = names
        .iter()
        .map(|n| format!("http://{}/v1", start_named_upstream(n)))
        .collect();
    let prefix = format!("gh-test-route-{}", uuid::Uuid::new_v4().simple());
    let yaml = pool_yaml(&urls, &format!("redis:\n  prefix: {prefix}\n"));
    let a = start(common::config(&yaml));
    // A second replica with the backends listed in another order agrees on every choice.
    let mut reversed = urls.clone();
    reversed.reverse();
    let b = start(common::config(&pool_yaml(
        &reversed,
        &format!("redis:\n  prefix: {prefix}\n"),
    )));
    let mut used = HashSet::new();
    for c in 0..12 {
        let system = format!("You are assistant number {c}. Answer briefly.");
        let (first, header) = ask(a, &system, "first question").await;
        assert_eq!(
            urls.iter().position(|u| *u == header),
            names.iter().position(|n| *n == first)
        );
        for (i, addr) in [a, b, a].into_iter().enumerate() {
            let (again, _) = ask(addr, &system, &format!("follow-up {i}")).await;
            assert_eq!(again, first, "conversation {c} moved");
        }
        used.insert(first);
    }
    assert!(used.len() >= 2, "12 conversations all on {used:?}");
    let v: Value = reqwest::get(format!("http://{a}/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"][0]["gatehouse"]["routing"], "affinity");
    assert_eq!(
        v["data"][0]["gatehouse"]["backends"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let affinity: f64 = common::metrics_text(a)
        .await
        .lines()
        .filter(|l| {
            l.starts_with("gatehouse_routed_requests_total{") && l.contains("reason=\"affinity\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(affinity >= 12.0, "{affinity}");
}

#[tokio::test]
async fn a_backend_that_is_down_is_skipped() {
    let up = format!("http://{}/v1", start_named_upstream("alive"));
    // Nothing listens on port 9 of loopback.
    let urls = vec!["http://127.0.0.1:9/v1".to_string(), up];
    let a = start(common::config(&pool_yaml(&urls, "")));
    for c in 0..6 {
        let (who, header) = ask(a, &format!("system {c}"), "hi").await;
        assert_eq!(who, "alive");
        assert_eq!(header, urls[1]);
    }
}

#[tokio::test]
async fn round_robin_alternates() {
    let urls: Vec<String> = ["r0", "r1"]
        .iter()
        .map(|n| format!("http://{}/v1", start_named_upstream(n)))
        .collect();
    let a = start(common::config(&pool_yaml(
        &urls,
        "    routing: round_robin\n",
    )));
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(ask(a, "same system", "same question").await.0);
    }
    assert_eq!(seen, ["r0", "r1", "r0", "r1"]);
}

#[tokio::test]
async fn local_replicas_share_one_model_by_prefix() {
    let yaml = format!(
        "auth: none\nserver:\n  listen: 127.0.0.1:0\nmodels:\n  - id: pool\n    backend: local\n    path: {}\n    dtype: f32\n    replicas: 2\n",
        common::SMOLLM2
    );
    let a = start(common::config(&yaml));
    common::wait_ready(a, std::time::Duration::from_secs(300));
    let v: Value = reqwest::get(format!("http://{a}/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["data"][0]["gatehouse"]["backends"],
        json!(["local/0", "local/1"])
    );
    let mut used = HashSet::new();
    for c in 0..6 {
        let system = format!("You are helper {c}.");
        let mut seen = HashSet::new();
        for q in ["Say yes.", "Say no."] {
            let r = reqwest::Client::new()
                .post(format!("http://{a}/v1/chat/completions"))
                .json(&json!({
                    "model": "pool",
                    "messages": [{"role": "system", "content": system}, {"role": "user", "content": q}],
                    "temperature": 0,
                    "max_tokens": 4,
                }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            seen.insert(
                r.headers()["x-gatehouse-backend"]
                    .to_str()
                    .unwrap()
                    .to_string(),
            );
        }
        assert_eq!(seen.len(), 1, "system prompt {c} moved: {seen:?}");
        used.extend(seen);
    }
    assert_eq!(used.len(), 2, "6 system prompts all on {used:?}");
}
