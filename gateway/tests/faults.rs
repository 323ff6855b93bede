//! Fault injection against a misbehaving upstream, through the real server: a connection
//! reset mid-stream, a stream that stalls, malformed SSE, a 200 carrying an error body, and
//! an upstream slower than `server.request_timeout_secs`. Each ends with a clear error code
//! in bounded time, and the gateway serves normally afterwards.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

const CHUNK: &str = "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"partial\"},\"finish_reason\":null}]}\n\n";

fn sse(body: Body) -> Response {
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(body)
        .unwrap()
}

/// Behaves as the last user message says.
async fn upstream(axum::Json(req): axum::Json<Value>) -> Response {
    let mode = req["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string();
    let chunk = || Ok::<_, std::io::Error>(Bytes::from_static(CHUNK.as_bytes()));
    match mode.as_str() {
        // One chunk, then the connection breaks.
        "reset" => {
            let crash = futures::stream::once(async {
                // After the first chunk has reached the gateway.
                tokio::time::sleep(Duration::from_millis(300)).await;
                Err(std::io::Error::other("upstream crashed"))
            });
            sse(Body::from_stream(futures::StreamExt::chain(
                futures::stream::iter(vec![chunk()]),
                crash,
            )))
        }
        // One chunk, then nothing ever again.
        "stall" => {
            let rest = futures::stream::pending::<Result<Bytes, std::io::Error>>();
            sse(Body::from_stream(
                futures::StreamExt::chain(futures::stream::iter(vec![chunk()]), rest),
            ))
        }
        "malformed" => sse(Body::from("data: {not json\n\n")),
        "error200" => axum::Json(json!({"error": {"message": "quota exceeded", "type": "insufficient_quota"}}))
            .into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            axum::Json(json!({})).into_response()
        }
        _ => axum::Json(json!({
            "id": "ok", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "fine"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }))
        .into_response(),
    }
}

async fn start_upstream() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let app = axum::Router::new().route("/v1/chat/completions", axum::routing::post(upstream));
    tokio::spawn(async move { axum::serve(l, app).await });
    addr
}

async fn ask(addr: SocketAddr, mode: &str, stream: bool) -> (u16, String, Duration) {
    let t = Instant::now();
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/v1/chat/completions"))
        .json(&json!({"model": "flaky", "stream": stream, "messages": [{"role": "user", "content": mode}]}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    (status, text, t.elapsed())
}

/// The stable code of an error answer, or of the error event ending a stream.
fn code(text: &str) -> String {
    let json = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|v| v.get("error").is_some())
        .or_else(|| serde_json::from_str::<Value>(text).ok())
        .unwrap_or(Value::Null);
    json["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_misbehaving_upstream_gets_clear_errors_in_bounded_time() {
    let up = start_upstream().await;
    let yaml = format!(
        "auth: none\nserver:\n  listen: 127.0.0.1:0\n  request_timeout_secs: 2\nmodels:\n  - id: flaky\n    backend: remote\n    base_url: http://{up}/v1\n    timeout_secs: 2\n"
    );
    let gw = common::start(common::config(&yaml));
    let limit = Duration::from_secs(5);
    // The scrape counts itself.
    let in_flight = "gatehouse_http_requests_in_flight";
    let idle = common::metric(gw, in_flight).await;

    // Streams that break after their first chunk: the client got a 200 and text, then an
    // error event with a code, never a silently truncated answer.
    for mode in ["reset", "stall"] {
        let (status, text, took) = ask(gw, mode, true).await;
        assert_eq!(status, 200, "{mode}: {text}");
        assert!(text.contains("partial"), "{mode}: {text}");
        assert!(!text.contains("data: [DONE]"), "{mode}: {text}");
        assert!(
            !code(&text).is_empty(),
            "{mode}: the stream ends without an error event: {text}"
        );
        assert!(took < limit, "{mode}: {took:?}");
    }
    // Not streamed, the same faults are 5xx answers with a stable code.
    for (mode, want) in [
        ("reset", 502),
        ("stall", 504),
        ("malformed", 502),
        ("error200", 502),
        ("slow", 504),
    ] {
        let (status, text, took) = ask(gw, mode, mode == "malformed").await;
        let c = code(&text);
        if mode == "malformed" {
            // Streamed malformed SSE: the error arrives before any text.
            assert!(status == 502 || !c.is_empty(), "{mode}: {status} {text}");
        } else {
            assert_eq!(status, want, "{mode}: {text}");
        }
        assert!(!c.is_empty(), "{mode}: no error code in {text}");
        assert!(took < limit, "{mode}: took {took:?}");
    }
    // Nothing stuck: the next request is served.
    let (status, text, _) = ask(gw, "fine please", false).await;
    assert_eq!(status, 200, "{text}");
    // A request leaves the gauge when its body has been sent: give the last one a moment.
    common::wait_metric(gw, in_flight, "a request is still in flight", |v| v == idle).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_directory_deleted_emptied_or_garbled_while_serving_keeps_the_policy_in_force() {
    let up = start_upstream().await;
    let root = common::temp_dir("gh-faults-policies");
    let dir = root.join("policies");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("guard.yaml"), common::blocking_policy("banana")).unwrap();
    let yaml = format!(
        "auth: none\nserver:\n  listen: 127.0.0.1:0\nmodels:\n  - id: flaky\n    backend: remote\n    base_url: http://{up}/v1\npolicies:\n  dir: {}\n  poll_interval_ms: 100\n",
        dir.display()
    );
    let gw = common::start(common::config(&yaml));
    let rejected = r#"gatehouse_policy_reloads_total{result="rejected"}"#;
    let blocked = |word: &'static str| async move { ask(gw, word, false).await.0 == 403 };
    assert!(blocked("banana").await);

    let mut rejections = common::metric(gw, rejected).await;
    for (what, change) in [
        // Deleted: nothing to read.
        ("a deleted directory", 0),
        // Emptied: loading it would drop every guardrail.
        ("an emptied directory", 1),
        ("a garbled policy file", 2),
    ] {
        match change {
            0 => std::fs::remove_dir_all(&dir).unwrap(),
            1 => std::fs::create_dir(&dir).unwrap(),
            _ => std::fs::write(dir.join("guard.yaml"), "\u{0}\u{1}: [:::\n").unwrap(),
        }
        let before = rejections;
        common::wait_metric(gw, rejected, what, |v| v > before).await;
        rejections += 1.0;
        assert!(blocked("banana").await, "{what}: the policy stays in force");
    }
    assert_eq!(ask(gw, "cherry", false).await.0, 200);
    // A valid policy again: it takes over, without a restart.
    std::fs::write(dir.join("guard.yaml"), common::blocking_policy("cherry")).unwrap();
    common::wait_metric(
        gw,
        r#"gatehouse_policy_reloads_total{result="ok"}"#,
        "the fixed directory loads",
        |v| v >= 1.0,
    )
    .await;
    assert!(blocked("cherry").await);
    assert!(!blocked("banana").await);
    let _ = std::fs::remove_dir_all(root);
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_and_slow_header_clients_cannot_starve_the_gateway() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = start_upstream().await;
    let yaml = format!(
        "auth: none\nserver:\n  listen: 127.0.0.1:0\n  header_read_timeout_secs: 1\n  max_connections: 500\nmodels:\n  - id: flaky\n    backend: remote\n    base_url: http://{up}/v1\n"
    );
    let gw = common::start(common::config(&yaml));
    // A thousand sockets that connect and say nothing, and a hundred that trickle a header:
    // more than `max_connections`, so some wait in the listen backlog.
    let mut held = Vec::new();
    for i in 0..1100 {
        let mut s = tokio::net::TcpStream::connect(gw).await.unwrap();
        if i >= 1000 {
            s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nx-slow: ")
                .await
                .unwrap();
        }
        held.push(s);
    }
    // A real client still gets through: the header timeout frees the slots.
    let t = Instant::now();
    let (status, text, _) = tokio::time::timeout(Duration::from_secs(10), ask(gw, "hello", false))
        .await
        .expect("served despite the idle crowd");
    assert_eq!(status, 200, "{text}");
    assert!(t.elapsed() < Duration::from_secs(10));
    // Every held socket is closed by the server, none is kept for ever.
    let mut closed = 0;
    for mut s in held {
        let mut buf = [0u8; 512];
        if let Ok(r) = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
            let n = r.unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            assert!(n == 0 || head.starts_with("HTTP/1.1 408"), "{head}");
            closed += 1;
        }
    }
    assert_eq!(closed, 1100, "connections left open by the server");
    let (status, _, _) = ask(gw, "again", false).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_model_fails_alone_with_a_clear_error() {
    let up = start_upstream().await;
    let dir = common::temp_dir("gh-faults-model");
    let broken = dir.join("broken.gguf");
    std::fs::write(&broken, b"GGUF? no: a truncated download").unwrap();
    let yaml = format!(
        "auth: none\nserver:\n  listen: 127.0.0.1:0\nmodels:\n  - id: broken\n    backend: local\n    path: {}\n  - id: flaky\n    backend: remote\n    base_url: http://{up}/v1\n",
        broken.display()
    );
    let gw = common::start(common::config(&yaml));
    // Readiness names the failed model and why; it never turns ready.
    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = loop {
        let r = reqwest::get(format!("http://{gw}/readyz")).await.unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        if v["models"]["broken"]["state"] == "failed" {
            break (status, v);
        }
        assert!(
            Instant::now() < deadline,
            "the broken model never failed: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ready.0, 503, "{}", ready.1);
    assert!(
        !ready.1["models"]["broken"]["error"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{}",
        ready.1
    );
    let r = reqwest::Client::new()
        .post(format!("http://{gw}/v1/chat/completions"))
        .json(&json!({"model": "broken", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "model_unavailable", "{v}");
    // The other model serves; the process is up.
    assert_eq!(ask(gw, "hello", false).await.0, 200);
    assert_eq!(common::status_of(gw, "/healthz"), Some(200));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_gone_before_the_answer_starts_leaves_nothing_in_flight() {
    let up = start_upstream().await;
    let yaml = format!(
        "auth: none\nserver:\n  listen: 127.0.0.1:0\nmodels:\n  - id: flaky\n    backend: remote\n    base_url: http://{up}/v1\n"
    );
    let gw = common::start(common::config(&yaml));
    let in_flight = "gatehouse_http_requests_in_flight";
    let closed =
        r#"gatehouse_http_requests_total{model="",route="/v1/chat/completions",status="499"}"#;
    let idle = common::metric(gw, in_flight).await;
    // The upstream takes 10 s; each client gives up after 300 ms, before any header came.
    for _ in 0..5 {
        let r = reqwest::Client::new()
            .post(format!("http://{gw}/v1/chat/completions"))
            .timeout(Duration::from_millis(300))
            .json(&json!({"model": "flaky", "messages": [{"role": "user", "content": "slow"}]}))
            .send()
            .await;
        assert!(r.is_err(), "the client timed out");
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let (now, gone) = (
            common::metric(gw, in_flight).await,
            common::metric(gw, closed).await,
        );
        if now == idle && gone == 5.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "in flight {now} (idle {idle}), counted as client-closed {gone}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
