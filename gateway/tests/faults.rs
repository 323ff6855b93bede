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
