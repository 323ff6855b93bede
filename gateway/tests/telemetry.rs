//! OpenTelemetry export against a real OTLP/gRPC receiver built from the official
//! `opentelemetry-proto` definitions: the gateway (a child process) continues the client's
//! W3C trace, nests a span per layer down to the engine, exports them over OTLP, passes the
//! trace on to a remote upstream, and puts the trace id in the audit record; without an
//! exporter, the one request span still carries the trace to the upstream and the record.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::{json, Value};

use common::{spawn_gateway, wait_ready, SMOLLM2};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";
const RELAY_PARENT: &str = "a3ce929d0e0e4736";

/// Spans received, with the `service.name` of their resource.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<(String, Span)>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut got = self.0.lock().unwrap();
        for rs in req.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                .map(|v| match v {
                    AnyValue::StringValue(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                got.extend(ss.spans.into_iter().map(|s| (service.clone(), s)));
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

async fn start_receiver() -> (SocketAddr, Receiver) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let receiver = Receiver::default();
    let service = TraceServiceServer::new(receiver.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap();
    });
    (addr, receiver)
}

/// An OpenAI-compatible upstream that records the `traceparent` it is sent.
async fn start_upstream() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let record = record.clone();
            async move {
                if let Some(v) = headers.get("traceparent") {
                    record.lock().unwrap().push(v.to_str().unwrap().to_string());
                }
                axum::Json(json!({
                    "id": "chatcmpl-up", "object": "chat.completion", "created": 0, "model": "m",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "relayed"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

fn attr(span: &Span, key: &str) -> Option<AnyValue> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_arrive_over_otlp_nested_per_layer_and_the_trace_reaches_the_upstream() {
    let (otlp, receiver) = start_receiver().await;
    let (upstream, traceparents) = start_upstream().await;
    let dir = std::env::temp_dir().join(format!("gh-otel-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("gatehouse.yaml");
    std::fs::write(
        &config,
        format!(
            r#"server:
  listen: 127.0.0.1:0
models:
  - id: smollm2-135m
    backend: local
    path: {}
    dtype: f32
  - id: relay
    backend: remote
    base_url: http://{upstream}/v1
auth:
  keys:
    - {{id: app, tenant: acme, key_env: GH_OTEL_KEY, limits: {{requests_per_minute: 1000}}}}
tenants:
  acme: {{}}
audit:
  dir: {}
telemetry:
  otlp_endpoint: http://{otlp}
  service_name: gatehouse-test
"#,
            common::repo()
                .join(SMOLLM2.trim_start_matches("../"))
                .display(),
            dir.join("audit").display()
        ),
    )
    .unwrap();
    let (mut child, addr) = spawn_gateway(&config, &[("GH_OTEL_KEY", "otel-key")]);
    tokio::task::spawn_blocking(move || wait_ready(addr, Duration::from_secs(180)))
        .await
        .unwrap();
    let c = reqwest::Client::new();
    let ask = |model: &str, parent: &str| {
        c.post(format!("http://{addr}/v1/chat/completions"))
            .bearer_auth("otel-key")
            .header("traceparent", format!("00-{TRACE}-{parent}-01"))
            .json(&json!({"model": model, "max_tokens": 4, "temperature": 0,
                          "messages": [{"role": "user", "content": "Say hi."}]}))
            .send()
    };
    let local = ask("smollm2-135m", CLIENT_SPAN).await.unwrap();
    assert_eq!(local.status(), 200);
    let request_id = local.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let relayed = ask("relay", RELAY_PARENT).await.unwrap();
    assert_eq!(relayed.status(), 200);

    // A graceful stop exports what the batch processor still holds.
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success());

    let spans: Vec<(String, Span)> = receiver.0.lock().unwrap().clone();
    assert!(!spans.is_empty(), "no spans exported");
    let trace = hex::decode(TRACE).unwrap();
    let ours: Vec<&Span> = spans
        .iter()
        .filter(|(_, s)| s.trace_id == trace)
        .map(|(_, s)| s)
        .collect();
    assert!(
        spans.iter().all(|(svc, _)| svc == "gatehouse-test"),
        "service.name"
    );
    let by_id: HashMap<&[u8], &Span> = ours.iter().map(|s| (&s.span_id[..], *s)).collect();
    let names: Vec<&str> = ours.iter().map(|s| s.name.as_str()).collect();

    // The request's root span continues the client's trace.
    let roots: Vec<&&Span> = ours
        .iter()
        .filter(|s| s.name == "POST /v1/chat/completions")
        .collect();
    assert_eq!(roots.len(), 2, "{names:?}");
    let root = roots
        .iter()
        .find(|s| s.parent_span_id == hex::decode(CLIENT_SPAN).unwrap())
        .expect("a root span whose parent is the client's span");
    assert_eq!(
        attr(root, "http.response.status_code"),
        Some(AnyValue::IntValue(200))
    );

    // Auth and rate limit are children of the root; the layers nest down to the engine.
    for name in ["auth", "rate_limit"] {
        let s = ours
            .iter()
            .find(|s| s.name == name && s.parent_span_id == root.span_id)
            .unwrap_or_else(|| panic!("no {name} span under the root: {names:?}"));
        assert!(s.end_time_unix_nano >= s.start_time_unix_nano);
    }
    let engine = ours
        .iter()
        .filter(|s| s.name == "engine")
        .find(|s| {
            let mut cur = **s;
            while let Some(p) = by_id.get(&cur.parent_span_id[..]) {
                cur = p;
            }
            cur.span_id == root.span_id
        })
        .expect("an engine span under the local request's root");
    let mut chain = Vec::new();
    let mut cur = *engine;
    while let Some(p) = by_id.get(&cur.parent_span_id[..]) {
        chain.push(p.name.as_str());
        cur = p;
    }
    assert_eq!(
        chain,
        [
            "router",
            "guard.output",
            "structured_output",
            "tools",
            "retrieval",
            "cache",
            "drift",
            "guard.input",
            "policy",
            "template",
            "audit",
            "POST /v1/chat/completions"
        ]
    );
    assert_eq!(
        attr(engine, "gen_ai.usage.output_tokens"),
        Some(AnyValue::IntValue(4))
    );
    assert!(
        matches!(
            attr(engine, "gatehouse.ttft_ms"),
            Some(AnyValue::IntValue(_))
        ),
        "{:?}",
        engine.attributes
    );
    assert_eq!(
        attr(engine, "gatehouse.backend"),
        Some(AnyValue::StringValue("local".into()))
    );

    // The remote upstream got the trace, with the relay request's engine span as parent.
    let sent = traceparents.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let parts: Vec<&str> = sent[0].split('-').collect();
    assert_eq!(parts[1], TRACE);
    let parent = by_id
        .get(&hex::decode(parts[2]).unwrap()[..])
        .expect("the upstream's parent span was exported");
    assert_eq!(parent.name, "engine");
    assert_eq!(
        attr(parent, "gatehouse.backend"),
        Some(AnyValue::StringValue("remote".into()))
    );

    // The audit record carries the trace.
    let record: Value = common::audit_log(&dir.join("audit"))
        .into_iter()
        .find(|r| r["metadata"]["correlation_uid"] == request_id.as_str())
        .expect("audit record");
    assert_eq!(record["trace"]["uid"], TRACE);
    let audit_span = ours
        .iter()
        .find(|s| s.name == "audit" && s.parent_span_id == root.span_id);
    assert!(audit_span.is_some());
    std::fs::remove_dir_all(&dir).ok();
}

/// Without an exporter only the request span is built, yet the trace goes on: the upstream
/// gets the client's trace id and sampled flag with the request span as parent, the audit
/// record carries the same ids, and a request without `traceparent` starts its own trace.
#[tokio::test(flavor = "multi_thread")]
async fn without_an_exporter_the_trace_still_reaches_the_upstream_and_the_audit_record() {
    let (upstream, traceparents) = start_upstream().await;
    let dir = std::env::temp_dir().join(format!("gh-trace-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("gatehouse.yaml");
    std::fs::write(
        &config,
        format!(
            "auth: none\nserver:\n  listen: 127.0.0.1:0\nmodels:\n  - id: relay\n    backend: remote\n    base_url: http://{upstream}/v1\naudit:\n  dir: {}\n",
            dir.join("audit").display()
        ),
    )
    .unwrap();
    let (mut child, addr) = spawn_gateway(&config, &[]);
    let c = reqwest::Client::new();
    let mut request_ids = Vec::new();
    for traceparent in [Some(format!("00-{TRACE}-{CLIENT_SPAN}-01")), None] {
        let mut rb = c
            .post(format!("http://{addr}/v1/chat/completions"))
            .json(&json!({"model": "relay", "messages": [{"role": "user", "content": "hi"}]}));
        if let Some(tp) = traceparent {
            rb = rb.header("traceparent", tp);
        }
        let r = rb.send().await.unwrap();
        assert_eq!(r.status(), 200);
        request_ids.push(r.headers()["x-request-id"].to_str().unwrap().to_string());
    }
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    assert!(tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap()
        .success());

    let sent = traceparents.lock().unwrap().clone();
    assert_eq!(sent.len(), 2, "{sent:?}");
    let records = common::audit_log(&dir.join("audit"));
    for (i, (tp, id)) in sent.iter().zip(&request_ids).enumerate() {
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!(parts.len(), 4, "{tp}");
        let (trace, span, flags) = (parts[1], parts[2], parts[3]);
        assert!(trace.len() == 32 && trace != "0".repeat(32), "{tp}");
        assert!(span.len() == 16 && span != "0".repeat(16), "{tp}");
        if i == 0 {
            // The client's trace, its sampled flag, and our request span under its span.
            assert_eq!((trace, flags), (TRACE, "01"));
            assert_ne!(span, CLIENT_SPAN);
        } else {
            assert_ne!(trace, TRACE, "a new trace without traceparent");
            assert_eq!(
                flags, "00",
                "new traces are not sampled without an exporter"
            );
        }
        let record = records
            .iter()
            .find(|r| r["metadata"]["correlation_uid"] == id.as_str())
            .expect("audit record");
        assert_eq!(record["trace"]["uid"], trace, "{record}");
        assert_eq!(record["trace"]["span"]["uid"], span, "{record}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
