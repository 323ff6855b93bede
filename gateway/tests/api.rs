//! Integration tests: the real server on port 0 with the real SmolLM2 model.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use serde_json::{json, Value};

const MODEL: &str = "smollm2-135m";

/// Posts a chat request to the server at `addr`.
async fn post_to(addr: std::net::SocketAddr, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("http://{addr}/v1/chat/completions"))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Posts a chat request to the shared server.
async fn post(body: Value) -> reqwest::Response {
    post_to(shared(), &body).await
}

fn user(content: &str) -> Value {
    json!([{"role": "user", "content": content}])
}

#[tokio::test]
async fn chat_non_streamed_returns_text_and_usage() {
    let resp = post(json!({"model": MODEL, "messages": user("What is the capital of France?"), "temperature": 0, "max_tokens": 16})).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-request-id"));
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], MODEL);
    let text = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(!text.trim().is_empty(), "{v}");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    let u = &v["usage"];
    let (p, c, t) = (
        u["prompt_tokens"].as_u64().unwrap(),
        u["completion_tokens"].as_u64().unwrap(),
        u["total_tokens"].as_u64().unwrap(),
    );
    assert!(p > 5, "prompt tokens {p}");
    assert!((1..=16).contains(&c), "completion tokens {c}");
    assert_eq!(t, p + c);
}

#[tokio::test]
async fn streamed_chunks_reassemble_to_the_non_streamed_text() {
    let req = json!({"model": MODEL, "messages": user("Name three colours."), "temperature": 0, "max_tokens": 32});
    let whole: Value = post(req.clone()).await.json().await.unwrap();
    let mut sreq = req.clone();
    sreq["stream"] = json!(true);
    sreq["stream_options"] = json!({"include_usage": true});
    let resp = post(sreq).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let body = resp.text().await.unwrap();
    let (text, finish, usage) = reassemble(&body);
    assert_eq!(
        text,
        whole["choices"][0]["message"]["content"].as_str().unwrap()
    );
    assert_eq!(
        finish,
        whole["choices"][0]["finish_reason"].as_str().unwrap()
    );
    assert_eq!(usage.expect("usage chunk"), whole["usage"]);
}

#[tokio::test]
async fn concurrent_requests_get_the_sequential_greedy_answer() {
    // Different prompts, two of the same token length, half streamed: decoded together in
    // one batch, each must still get the text it gets alone.
    let prompts = [
        "Describe a lighthouse.",
        "Name three colours.",
        "Name three fruits.",
        "Write one sentence about the moon and the tides.",
    ];
    let req =
        |p: &str| json!({"model": MODEL, "messages": user(p), "temperature": 0, "max_tokens": 24});
    let mut alone = Vec::new();
    for p in prompts {
        let v: Value = post(req(p)).await.json().await.unwrap();
        alone.push(
            v["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let together = futures::future::join_all(prompts.iter().enumerate().map(|(i, p)| {
        let mut r = req(p);
        async move {
            if i % 2 == 1 {
                r["stream"] = json!(true);
                reassemble(&post(r).await.text().await.unwrap()).0
            } else {
                let v: Value = post(r).await.json().await.unwrap();
                v["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .to_string()
            }
        }
    }))
    .await;
    assert_eq!(together, alone);
}

#[tokio::test]
async fn stream_without_include_usage_has_no_usage() {
    let resp = post(json!({"model": MODEL, "messages": user("Hi"), "temperature": 0, "max_tokens": 4, "stream": true})).await;
    let body = resp.text().await.unwrap();
    let (_, finish, usage) = reassemble(&body);
    assert_eq!(finish, "length");
    assert!(usage.is_none(), "{body}");
    assert!(!body.contains("\"usage\""), "{body}");
}

#[tokio::test]
async fn max_tokens_is_honoured_exactly() {
    for n in [1, 5, 12] {
        let v: Value = post(json!({"model": MODEL, "messages": user("Write a long story about a dragon who learns to bake."), "temperature": 0, "max_tokens": n}))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(v["usage"]["completion_tokens"], n, "{v}");
        assert_eq!(v["choices"][0]["finish_reason"], "length", "{v}");
    }
}

#[tokio::test]
async fn stop_sequences_cut_the_output() {
    let req = json!({"model": MODEL, "messages": user("Write a long story about a dragon who learns to bake."), "temperature": 0, "max_tokens": 40});
    let whole: Value = post(req.clone()).await.json().await.unwrap();
    let text = whole["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    // A stop string from the middle of the greedy output: a word boundary past a third of it.
    let from = text.len() / 3;
    let at = from + text[from..].find(' ').expect("a space in the output");
    let stop: String = text[at..].chars().take(4).collect();
    let expected = &text[..text.find(&stop).unwrap()];
    for stream in [false, true] {
        let mut r = req.clone();
        r["stop"] = json!([stop]);
        r["stream"] = json!(stream);
        let resp = post(r).await;
        let (got, finish) = if stream {
            let (t, f, _) = reassemble(&resp.text().await.unwrap());
            (t, f)
        } else {
            let v: Value = resp.json().await.unwrap();
            (
                v["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                v["choices"][0]["finish_reason"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        };
        assert_eq!(got, expected, "stream={stream} stop={stop:?}");
        assert_eq!(finish, "stop");
    }
}

#[tokio::test]
async fn seeded_sampling_is_reproducible() {
    let req = json!({"model": MODEL, "messages": user("Tell me a fun fact."), "temperature": 1.0, "seed": 42, "max_tokens": 16});
    let a: Value = post(req.clone()).await.json().await.unwrap();
    let b: Value = post(req).await.json().await.unwrap();
    assert_eq!(
        a["choices"][0]["message"]["content"],
        b["choices"][0]["message"]["content"]
    );
}

async fn error_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    assert!(
        resp.headers().contains_key("x-request-id"),
        "x-request-id missing on {status}"
    );
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn errors_have_openai_shape_and_stable_codes() {
    let addr = shared();
    let c = reqwest::Client::new();
    let url = format!("http://{addr}/v1/chat/completions");
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (c.post(&url).body("{not json"), 400, "invalid_json"),
        (
            c.post(&url).body(vec![b'{', 0xff, 0xfe, b'}']),
            400,
            "invalid_utf8",
        ),
        (
            c.post(&url)
                .json(&json!({"model": "nope", "messages": user("x")})),
            404,
            "model_not_found",
        ),
        (
            c.post(&url)
                .json(&json!({"model": MODEL, "messages": user("x"), "temperature": 5})),
            400,
            "invalid_parameter",
        ),
        (
            c.post(&url).body(vec![b' '; 70_000]),
            413,
            "request_too_large",
        ),
        (c.get(format!("http://{addr}/v1/nothing")), 404, "not_found"),
        (c.get(&url), 405, "method_not_allowed"),
    ];
    for (req, status, code) in cases {
        let (s, v) = error_of(req.send().await.unwrap()).await;
        assert_eq!(
            (s, v["error"]["code"].as_str().unwrap()),
            (status, code),
            "{v}"
        );
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        assert!(v["error"]["type"].as_str().is_some());
    }
}

#[tokio::test]
async fn prompt_longer_than_the_context_is_a_client_error() {
    // SmolLM2 takes 8192 tokens; this is about 10,000.
    let long = "word ".repeat(10_000);
    for stream in [false, true] {
        let resp = post(
            json!({"model": MODEL, "messages": user(&long), "max_tokens": 4, "stream": stream}),
        )
        .await;
        let (s, v) = error_of(resp).await;
        assert_eq!(
            (s, v["error"]["code"].as_str().unwrap()),
            (400, "invalid_parameter"),
            "stream={stream}: {v}"
        );
    }
}

#[tokio::test]
async fn client_request_id_is_echoed() {
    let addr = shared();
    let r = reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
}

#[tokio::test]
async fn models_and_probes() {
    let addr = shared();
    let v: Value = reqwest::get(format!("http://{addr}/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["object"], "list");
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&MODEL), "{v}");
    assert_eq!(
        reqwest::get(format!("http://{addr}/healthz"))
            .await
            .unwrap()
            .status(),
        200
    );
    let r = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["models"][MODEL]["state"], "ready");
}

#[tokio::test]
async fn metrics_cover_requests_latency_and_tokens() {
    let addr = shared();
    let ok = r#"gatehouse_http_requests_total{model="smollm2-135m",route="/v1/chat/completions",status="200"}"#;
    let before = metric(addr, ok).await;
    let resp = post(json!({"model": MODEL, "messages": user("Hello"), "temperature": 0, "max_tokens": 3, "stream": true})).await;
    resp.text().await.unwrap();
    // The request is counted when its body ends; give the server a moment to record it.
    wait_metric(addr, ok, "request counter did not move", |v| v > before).await;
    let text = metrics_text(addr).await;
    for name in [
        "gatehouse_http_request_duration_seconds_bucket",
        "gatehouse_time_to_first_token_seconds_bucket{model=\"smollm2-135m\",le=",
        "gatehouse_output_tokens_per_second_bucket",
        "gatehouse_output_tokens_total{model=\"smollm2-135m\"}",
        "gatehouse_http_requests_in_flight",
        "gatehouse_queue_depth{model=\"smollm2-135m\"}",
        "gatehouse_engine_active_sequences{model=\"smollm2-135m\"}",
    ] {
        assert!(text.contains(name), "missing {name} in\n{text}");
    }
}

/// Starts a long stream to `model` and reads its first chunk, so it holds its slot; then
/// sends the same request again. Returns the held stream and the second answer's error.
async fn hold_one_then_send_another(
    addr: std::net::SocketAddr,
    model: &str,
) -> (impl futures::Stream, u16, Value) {
    let c = reqwest::Client::new();
    let url = format!("http://{addr}/v1/chat/completions");
    let long = json!({"model": model, "messages": user("Write a long story about a dragon."), "temperature": 0, "max_tokens": 400, "stream": true});
    let first = c.post(&url).json(&long).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let mut body = Box::pin(first.bytes_stream());
    body.next().await.expect("first chunk").unwrap();
    let (status, v) = error_of(c.post(&url).json(&long).send().await.unwrap()).await;
    (body, status, v)
}

#[tokio::test]
async fn full_queue_answers_429() {
    let addr = shared();
    let c = reqwest::Client::new();
    let url = format!("http://{addr}/v1/chat/completions");
    let (body, status, v) = hold_one_then_send_another(addr, "smollm2-tight").await;
    assert_eq!(status, 429, "{v}");
    assert_eq!(v["error"]["code"], "model_overloaded");
    drop(body);
    // The slot frees when the first stream is dropped.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = c
            .post(&url)
            .json(&json!({"model": "smollm2-tight", "messages": user("Hi"), "max_tokens": 1}))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "slot never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn client_disconnect_stops_generation() {
    let addr = shared();
    let model = "smollm2-cancel";
    let cancelled = r#"gatehouse_cancelled_generations_total{model="smollm2-cancel"}"#;
    let active = r#"gatehouse_engine_active_sequences{model="smollm2-cancel"}"#;
    let before = metric(addr, cancelled).await;
    let c = reqwest::Client::new();
    let url = format!("http://{addr}/v1/chat/completions");
    let resp = c
        .post(&url)
        .json(&json!({"model": model, "messages": user("Count from 1 to 2000, one number per line."), "temperature": 0, "max_tokens": 3000, "stream": true}))
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let mut seen = String::new();
    while seen.matches("data: ").count() < 4 {
        seen.push_str(&String::from_utf8_lossy(
            &body.next().await.unwrap().unwrap(),
        ));
    }
    assert!(
        !seen.contains("finish_reason\":\""),
        "finished before the disconnect: {seen}"
    );
    assert_eq!(metric(addr, active).await, 1.0);
    // The live sequence's KV cache holds its prompt and the tokens streamed so far, and grows.
    let kv = r#"gatehouse_model_kv_cache_tokens{model="smollm2-cancel"}"#;
    let held = metric(addr, kv).await;
    assert!(held > 20.0, "KV cache use {held} while streaming");
    wait_metric(addr, kv, "KV cache use did not grow", |v| v > held).await;
    // A second request waits for the only slot, visible as queue depth.
    let queued = r#"gatehouse_queue_depth{model="smollm2-cancel"}"#;
    let waiter = tokio::spawn(async move {
        let start = Instant::now();
        let req = json!({"model": "smollm2-cancel", "messages": user("Hi"), "temperature": 0, "max_tokens": 2});
        (
            post_to(addr, &req).await.json::<Value>().await.unwrap(),
            start,
        )
    });
    wait_metric(addr, queued, "the second request never queued", |v| {
        v == 1.0
    })
    .await;
    drop(body);
    wait_metric(addr, cancelled, "the generation was not cancelled", |v| {
        v > before
    })
    .await;
    // This model runs one sequence at a time: had the 3000-token generation gone on (minutes
    // at CPU speed), the queued request would wait behind it instead of answering at once.
    let (v, start) = waiter.await.unwrap();
    assert_eq!(v["usage"]["completion_tokens"], 2, "{v}");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "queued behind a cancelled generation: {:?}",
        start.elapsed()
    );
    wait_metric(addr, active, "engine sequences did not drain", |v| v == 0.0).await;
    assert_eq!(metric(addr, queued).await, 0.0);
    assert_eq!(
        metric(addr, kv).await,
        0.0,
        "KV cache use left after the sequences ended"
    );
}

#[tokio::test]
async fn readiness_turns_green_only_after_loading() {
    let yaml = format!("auth: none\nmodels:\n{}", smollm2("smollm2-135m", 1));
    let addr = start(config(&yaml));
    let r = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["models"]["smollm2-135m"]["state"], "loading", "{v}");
    // A chat request meanwhile is refused with a clear code, not queued forever.
    let (s, e) = error_of(
        reqwest::Client::new()
            .post(format!("http://{addr}/v1/chat/completions"))
            .json(&json!({"model": "smollm2-135m", "messages": user("x")}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str().unwrap()),
        (503, "model_loading")
    );
    tokio::task::spawn_blocking(move || wait_ready(addr, Duration::from_secs(180)))
        .await
        .unwrap();
}

/// Starts a gateway whose model `fronted` is `upstream_model` at `base` (HOST:PORT).
fn start_front(
    server_yaml: &str,
    base: impl std::fmt::Display,
    upstream_model: &str,
) -> std::net::SocketAddr {
    let yaml = format!(
        "{server_yaml}auth: none\nmodels:\n  - id: fronted\n    backend: remote\n    base_url: http://{base}/v1\n    upstream_model: {upstream_model}\n    api_key_env: GATEHOUSE_TEST_UPSTREAM_KEY\n"
    );
    start(config_with_env(
        &yaml,
        &[("GATEHOUSE_TEST_UPSTREAM_KEY", "test-upstream-key")],
    ))
}

#[tokio::test]
async fn gatehouse_fronts_gatehouse() {
    let upstream = shared();
    let front = start_front("", upstream, MODEL);
    let req =
        json!({"model": MODEL, "messages": user("Say hello."), "temperature": 0, "max_tokens": 12});
    let direct: Value = post(req.clone()).await.json().await.unwrap();
    let direct_text = direct["choices"][0]["message"]["content"].as_str().unwrap();

    let mut r = req.clone();
    r["model"] = json!("fronted");
    let via: Value = post_to(front, &r).await.json().await.unwrap();
    assert_eq!(via["model"], "fronted");
    assert_eq!(
        via["choices"][0]["message"]["content"].as_str().unwrap(),
        direct_text
    );
    assert_eq!(via["usage"], direct["usage"]);

    r["stream"] = json!(true);
    r["stream_options"] = json!({"include_usage": true});
    let resp = post_to(front, &r).await;
    assert_eq!(resp.status(), 200);
    let (text, finish, usage) = reassemble(&resp.text().await.unwrap());
    assert_eq!(text, direct_text);
    assert_eq!(
        finish,
        direct["choices"][0]["finish_reason"].as_str().unwrap()
    );
    assert_eq!(usage.unwrap(), direct["usage"]);

    // Upstream errors keep their meaning: an unknown upstream model is the client's fault,
    // an unreachable upstream is a 502 with its own code.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    for (base, upstream_model, status, code) in [
        (upstream, "missing", 404, "upstream_rejected"),
        (closed, MODEL, 502, "upstream_unreachable"),
    ] {
        let front = start_front("", base, upstream_model);
        let (s, v) = error_of(post_to(front, &r).await).await;
        assert_eq!(
            (s, v["error"]["code"].as_str().unwrap()),
            (status, code),
            "{v}"
        );
    }
}

#[tokio::test]
async fn in_flight_limit_answers_503_but_probes_still_answer() {
    let front = start_front("server:\n  max_in_flight: 1\n", shared(), MODEL);
    let (_held, s, v) = hold_one_then_send_another(front, "fronted").await;
    assert_eq!(
        (s, v["error"]["code"].as_str().unwrap()),
        (503, "server_overloaded"),
        "{v}"
    );
    assert_eq!(status_of(front, "/healthz"), Some(200));
    assert_eq!(status_of(front, "/readyz"), Some(200));
}

#[tokio::test]
async fn remote_backend_sends_the_api_key_and_request_id() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A one-shot upstream that records the request head and answers a canned completion.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let upstream = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 65536];
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
            let n = sock.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        let body = r#"{"id":"x","object":"chat.completion","created":0,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;
        let resp = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
        sock.write_all(resp.as_bytes()).await.unwrap();
        String::from_utf8_lossy(&got).to_lowercase()
    });
    let front = start_front("", addr, "m");
    let resp = reqwest::Client::new()
        .post(format!("http://{front}/v1/chat/completions"))
        .header("x-request-id", "req-42")
        .json(&json!({"model": "fronted", "messages": user("x")}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let head = upstream.await.unwrap();
    assert!(
        head.contains("authorization: bearer test-upstream-key"),
        "{head}"
    );
    assert!(head.contains("x-request-id: req-42"), "{head}");
}
