//! `POST /v1/embeddings` through the real server with the real MiniLM model.

mod common;

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use common::{start, wait_ready};

const MINILM: &str = "all-minilm-l6-v2";

/// MiniLM, plus a chat model that is never called (a remote one, so nothing else loads).
fn server() -> SocketAddr {
    static S: OnceLock<SocketAddr> = OnceLock::new();
    *S.get_or_init(|| {
        let yaml = format!(
            "auth: none\nserver:\n  listen: 127.0.0.1:0\nmodels:\n  - id: {MINILM}\n    backend: local\n    kind: embedding\n    path: ../models/all-minilm-l6-v2\n  - id: chat\n    backend: remote\n    base_url: http://127.0.0.1:9/v1\n"
        );
        let addr = start(common::config(&yaml));
        wait_ready(addr, Duration::from_secs(120));
        addr
    })
}

async fn post(path: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("http://{}{path}", server()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[tokio::test]
async fn embeds_in_order_with_usage_in_both_encodings() {
    let input = [
        "How do I reset my password?",
        "I forgot my password.",
        "Flour and sugar.",
    ];
    let (status, v) = post("/v1/embeddings", json!({"model": MINILM, "input": input})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], MINILM);
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    let vecs: Vec<Vec<f32>> = data
        .iter()
        .enumerate()
        .map(|(i, d)| {
            assert_eq!(d["index"], i);
            assert_eq!(d["object"], "embedding");
            floats(&d["embedding"])
        })
        .collect();
    assert!(vecs.iter().all(|x| x.len() == 384));
    assert!(cos(&vecs[0], &vecs[1]) > cos(&vecs[0], &vecs[2]));
    let tokens = v["usage"]["prompt_tokens"].as_u64().unwrap();
    assert_eq!(v["usage"]["total_tokens"].as_u64().unwrap(), tokens);
    assert!(tokens >= 3 * 3, "[CLS] and [SEP] count: {tokens}");

    // One string; base64 carries the same little-endian f32 values.
    let (_, v) = post(
        "/v1/embeddings",
        json!({"model": MINILM, "input": input[1], "encoding_format": "base64", "dimensions": 384}),
    )
    .await;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let single: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let d = single
        .iter()
        .zip(&vecs[1])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(d < 1e-5, "batched and alone agree: {d}");
}

#[tokio::test]
async fn wrong_models_and_inputs_are_clear_errors() {
    for (path, body, status, code) in [
        (
            "/v1/embeddings",
            json!({"model": "nope", "input": "x"}),
            404,
            "model_not_found",
        ),
        (
            "/v1/embeddings",
            json!({"model": "chat", "input": "x"}),
            400,
            "wrong_model_kind",
        ),
        (
            "/v1/chat/completions",
            json!({"model": MINILM, "messages": [{"role": "user", "content": "x"}]}),
            400,
            "wrong_model_kind",
        ),
        (
            "/v1/embeddings",
            json!({"model": MINILM, "input": [[1, 2]]}),
            400,
            "invalid_parameter",
        ),
        (
            "/v1/embeddings",
            json!({"model": MINILM, "input": "x", "dimensions": 128}),
            400,
            "invalid_parameter",
        ),
    ] {
        let (got, v) = post(path, body.clone()).await;
        assert_eq!(got, status, "{body}: {v}");
        assert_eq!(v["error"]["code"], code, "{body}: {v}");
    }
    let models: Value = reqwest::get(format!("http://{}/v1/models", server()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let m = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == MINILM)
        .unwrap();
    assert_eq!(m["gatehouse"]["kind"], "embedding");
}
