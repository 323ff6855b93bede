//! The gRPC API against the real server on port 0 with the real SmolLM2 and MiniLM models:
//! a tonic client generated from the same proto, health, reflection, errors with their
//! stable codes, cancellation, and the audit record.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use common::*;
use gateway::grpc::pb;
use gateway::grpc::pb::inference_client::InferenceClient;
use serde_json::{json, Value};
use tonic::transport::Channel;
use tonic::Code;
use tonic_types::StatusExt;

const MODEL: &str = "smollm2-135m";
const MINILM: &str = "all-minilm-l6-v2";
const USER_KEY: &str = "gh-grpc-user-key";
const LIMITED_KEY: &str = "gh-grpc-limited-key";
/// A tenant without a model list: unknown models are `model_not_found`, not `model_not_allowed`.
const OPEN_KEY: &str = "gh-grpc-open-key";

struct Server {
    http: SocketAddr,
    grpc: SocketAddr,
    audit: PathBuf,
}

fn temp(name: &str) -> PathBuf {
    temp_dir(&format!("gh-grpc-{name}"))
}

fn server() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| {
        let policies = temp("policies");
        std::fs::write(
            policies.join("cards.yaml"),
            "id: cards\ndefault: true\nrules:\n  - id: no-cards\n    kind: pii\n    stages: [input]\n    entities: [credit_card]\n    action: block\n",
        )
        .unwrap();
        let audit = temp("audit");
        let yaml = format!(
            r#"server:
  listen: 127.0.0.1:0
  grpc_listen: 127.0.0.1:0
models:
{}{}  - id: {MINILM}
    backend: local
    kind: embedding
    path: ../models/all-minilm-l6-v2
auth:
  keys:
    - {{id: app, tenant: acme, key_env: GH_GRPC_USER}}
    - {{id: limited, tenant: tight, key_env: GH_GRPC_LIMITED}}
    - {{id: open, tenant: other, key_env: GH_GRPC_OPEN}}
tenants:
  "*": {{}}
  acme:
    models: [{MODEL}, smollm2-cancel, {MINILM}]
  tight:
    limits: {{requests_per_minute: 1}}
policies:
  dir: {}
  watch: false
audit:
  dir: {}
"#,
            smollm2(MODEL, 16),
            smollm2_single("smollm2-cancel", 4),
            policies.display(),
            audit.display()
        );
        let cfg = config_with_env(
            &yaml,
            &[
                ("GH_GRPC_USER", USER_KEY),
                ("GH_GRPC_LIMITED", LIMITED_KEY),
                ("GH_GRPC_OPEN", OPEN_KEY),
            ],
        );
        let (http, grpc) = start_with_grpc(cfg);
        wait_ready(http, Duration::from_secs(180));
        Server {
            http,
            grpc: grpc.expect("server.grpc_listen is set"),
            audit,
        }
    })
}

async fn channel() -> Channel {
    Channel::from_shared(format!("http://{}", server().grpc))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// `msg` with `authorization: Bearer key` metadata.
fn authed<T>(key: &str, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    r
}

fn ask(model: &str, text: &str, max_tokens: u32) -> pb::ChatRequest {
    pb::ChatRequest {
        model: model.into(),
        messages: vec![pb::Message {
            role: "user".into(),
            content: text.into(),
            ..Default::default()
        }],
        max_tokens: Some(max_tokens),
        temperature: Some(0.0),
        ..Default::default()
    }
}

/// The ErrorInfo reason and metadata of a failed call.
fn reason(s: &tonic::Status) -> (String, std::collections::HashMap<String, String>) {
    let info = s
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {s:?}"));
    assert_eq!(info.domain, "gatehouse");
    (info.reason, info.metadata)
}

#[tokio::test]
async fn chat_answers_what_http_answers() {
    let s = server();
    let mut client = InferenceClient::new(channel().await);
    let resp = client
        .chat(authed(
            USER_KEY,
            ask(MODEL, "What is the capital of France?", 12),
        ))
        .await
        .unwrap();
    assert!(resp.metadata().contains_key("x-request-id"));
    assert_eq!(
        resp.metadata()
            .get("x-gatehouse-policy")
            .unwrap()
            .to_str()
            .unwrap()
            .split(';')
            .next(),
        Some("cards")
    );
    let out = resp.into_inner();
    assert!(out.id.starts_with("chatcmpl-"));
    assert_eq!(out.model, MODEL);
    let usage = out.usage.unwrap();
    assert!(usage.prompt_tokens > 5 && (1..=12).contains(&usage.completion_tokens));
    assert_eq!(
        usage.total_tokens,
        usage.prompt_tokens + usage.completion_tokens
    );
    // The same request over HTTP, greedy: the same text.
    let http: Value = reqwest::Client::new()
        .post(format!("http://{}/v1/chat/completions", s.http))
        .bearer_auth(USER_KEY)
        .json(&json!({"model": MODEL, "messages": [{"role": "user", "content": "What is the capital of France?"}], "temperature": 0, "max_tokens": 12}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(http["choices"][0]["message"]["content"], out.content);
    assert_eq!(http["choices"][0]["finish_reason"], out.finish_reason);
}

#[tokio::test]
async fn stream_deltas_reassemble_to_the_unary_answer() {
    let mut client = InferenceClient::new(channel().await);
    let req = ask(MODEL, "Name three colours.", 24);
    let whole = client
        .chat(authed(USER_KEY, req.clone()))
        .await
        .unwrap()
        .into_inner();
    let mut stream = client
        .chat_stream(authed(USER_KEY, req))
        .await
        .unwrap()
        .into_inner();
    let mut text = String::new();
    let mut last = None;
    let mut messages = 0;
    while let Some(m) = stream.message().await.unwrap() {
        messages += 1;
        assert_eq!(m.id, stream_id(&m, &last));
        assert!(last
            .as_ref()
            .is_none_or(|l: &pb::ChatStreamResponse| l.finish_reason.is_empty()));
        text.push_str(&m.delta);
        last = Some(m);
    }
    let last = last.unwrap();
    assert!(messages > 2, "{messages} messages");
    assert_eq!(text, whole.content);
    assert_eq!(last.finish_reason, whole.finish_reason);
    assert_eq!(last.usage, whole.usage);
}

/// Every message of a stream carries the id of the first.
fn stream_id(m: &pb::ChatStreamResponse, last: &Option<pb::ChatStreamResponse>) -> String {
    last.as_ref().map_or(m.id.clone(), |l| l.id.clone())
}

#[tokio::test]
async fn embeddings_and_the_model_list() {
    let mut client = InferenceClient::new(channel().await);
    let out = client
        .embed(authed(
            USER_KEY,
            pb::EmbedRequest {
                model: MINILM.into(),
                input: vec!["a cat".into(), "a dog".into()],
                dimensions: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(out.data.len(), 2);
    assert!(out.data.iter().all(|e| e.values.len() == 384));
    let norm: f32 = out.data[0].values.iter().map(|x| x * x).sum();
    assert!((norm - 1.0).abs() < 1e-3, "{norm}");
    assert!(out.usage.unwrap().prompt_tokens >= 6);
    let models = client
        .list_models(authed(USER_KEY, pb::ListModelsRequest {}))
        .await
        .unwrap()
        .into_inner()
        .models;
    let ids: Vec<(&str, &str)> = models
        .iter()
        .map(|m| (m.id.as_str(), m.kind.as_str()))
        .collect();
    assert_eq!(
        ids,
        [
            (MODEL, "chat"),
            ("smollm2-cancel", "chat"),
            (MINILM, "embedding")
        ]
    );
    assert!(models.iter().all(|m| m.state == "ready"));
}

#[tokio::test]
async fn errors_carry_the_stable_code_of_the_http_api() {
    let mut client = InferenceClient::new(channel().await);
    // Refused by the shared middleware, before the service.
    let e = client
        .chat(tonic::Request::new(ask(MODEL, "hi", 4)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    assert_eq!(reason(&e).0, "missing_api_key");
    let e = client
        .chat(authed("not-a-key", ask(MODEL, "hi", 4)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let (code, meta) = reason(&e);
    assert_eq!(code, "invalid_api_key");
    assert_eq!(meta["http_status"], "401");
    // Refused by the service: the same parser, the same codes.
    let e = client
        .chat(authed(OPEN_KEY, ask("no-such-model", "hi", 4)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert_eq!(reason(&e).0, "model_not_found");
    // The tenant's model list, as over HTTP.
    let e = client
        .chat(authed(USER_KEY, ask("no-such-model", "hi", 4)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert_eq!(reason(&e).0, "model_not_allowed");
    let mut hot = ask(MODEL, "hi", 4);
    hot.temperature = Some(5.0);
    let e = client.chat(authed(USER_KEY, hot)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let (code, meta) = reason(&e);
    assert_eq!(code, "invalid_parameter");
    assert_eq!(meta["param"], "temperature");
    let e = client
        .chat(authed(USER_KEY, ask(MINILM, "hi", 4)))
        .await
        .unwrap_err();
    assert_eq!(reason(&e).0, "wrong_model_kind");
    // A guardrail block names the policy and rule, never the matched text.
    for stream in [false, true] {
        let req = authed(USER_KEY, ask(MODEL, "Charge 4111 1111 1111 1111 now.", 4));
        let e = if stream {
            client.chat_stream(req).await.map(|_| ()).unwrap_err()
        } else {
            client.chat(req).await.map(|_| ()).unwrap_err()
        };
        assert_eq!(e.code(), Code::PermissionDenied);
        let (code, meta) = reason(&e);
        assert_eq!(code, "policy_violation");
        assert_eq!(
            (&*meta["policy"], &*meta["rule"], &*meta["stage"]),
            ("cards", "no-cards", "input")
        );
        assert!(!e.message().contains("4111"), "{}", e.message());
    }
    // Past server.body_limit_bytes, as over HTTP.
    let e = client
        .chat(authed(USER_KEY, ask(MODEL, &"a".repeat(2 << 20), 4)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert_eq!(reason(&e).0, "request_too_large");
    // Over the tenant's rate: RESOURCE_EXHAUSTED with when to retry.
    let models = |key| authed(key, pb::ListModelsRequest {});
    let admitted = client.list_models(models(LIMITED_KEY)).await.unwrap();
    // The windows come back as metadata, as headers over HTTP.
    assert_eq!(
        admitted
            .metadata()
            .get("x-ratelimit-limit-requests")
            .unwrap(),
        "1"
    );
    let e = client.list_models(models(LIMITED_KEY)).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert_eq!(reason(&e).0, "rate_limit_exceeded");
    let retry = e.get_details_retry_info().unwrap().retry_delay.unwrap();
    assert!(retry >= Duration::from_secs(1), "{retry:?}");
}

#[tokio::test]
async fn cancelling_a_stream_cancels_the_generation() {
    let s = server();
    let cancelled = r#"gatehouse_cancelled_generations_total{model="smollm2-cancel"}"#;
    let before = metric(s.http, cancelled).await;
    let mut client = InferenceClient::new(channel().await);
    let mut stream = client
        .chat_stream(authed(
            USER_KEY,
            ask(
                "smollm2-cancel",
                "Count from 1 to 2000, one number per line.",
                3000,
            ),
        ))
        .await
        .unwrap()
        .into_inner();
    for _ in 0..3 {
        let m = stream.message().await.unwrap().unwrap();
        assert!(m.finish_reason.is_empty(), "finished early: {m:?}");
    }
    drop(stream);
    wait_metric(s.http, cancelled, "the generation was not cancelled", |v| {
        v > before
    })
    .await;
    let active = r#"gatehouse_engine_active_sequences{model="smollm2-cancel"}"#;
    wait_metric(s.http, active, "engine sequences did not drain", |v| {
        v == 0.0
    })
    .await;
}

#[tokio::test]
async fn health_follows_readiness() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    server();
    let mut health = HealthClient::new(channel().await);
    for service in ["", "gatehouse.v1.Inference", MODEL, MINILM] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status(), ServingStatus::Serving, "{service:?}");
    }
    let e = health
        .check(HealthCheckRequest {
            service: "no-such-model".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

#[tokio::test]
async fn reflection_describes_the_services() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    server();
    let mut client = ServerReflectionClient::new(channel().await);
    let ask = |m| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(m),
    };
    let requests = futures::stream::iter([
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol(
            "gatehouse.v1.Inference".into(),
        )),
    ]);
    let mut answers = client
        .server_reflection_info(requests)
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("not a service list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "gatehouse.v1.Inference",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    let Some(MessageResponse::FileDescriptorResponse(files)) =
        answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("no file descriptor")
    };
    let file = <prost_types::FileDescriptorProto as prost::Message>::decode(
        files.file_descriptor_proto[0].as_slice(),
    )
    .unwrap();
    assert_eq!(file.name(), "gatehouse/v1/inference.proto");
    let methods: Vec<&str> = file.service[0].method.iter().map(|m| m.name()).collect();
    assert_eq!(methods, gateway::grpc::inference::METHODS);
}

#[tokio::test]
async fn calls_are_audited_with_their_outcome() {
    let s = server();
    let mut client = InferenceClient::new(channel().await);
    let mut req = authed(
        OPEN_KEY,
        pb::EmbedRequest {
            model: "no-such-embedder".into(),
            input: vec!["x".into()],
            dimensions: None,
        },
    );
    req.metadata_mut()
        .insert("x-request-id", "grpc-audit-embed".parse().unwrap());
    let e = client.embed(req).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let record = wait_record(&s.audit, "grpc-audit-embed").await;
    assert_eq!(record["unmapped"]["outcome"], "refused", "{record}");
    assert_eq!(record["status_code"], "model_not_found", "{record}");
    assert_eq!(
        record["api"]["operation"],
        "POST /gatehouse.v1.Inference/Embed"
    );
    assert_eq!(record["api"]["response"]["code"], 404, "{record}");
    assert_eq!(record["actor"]["user"]["uid"], "open", "{record}");
}

/// The record of `request_id` in the log in `dir`, once written (10 s at most).
async fn wait_record(dir: &std::path::Path, request_id: &str) -> Value {
    for _ in 0..100 {
        if let Some(r) = audit_log(dir)
            .into_iter()
            .find(|r| r["api"]["request"]["uid"] == request_id)
        {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no audit record of {request_id}")
}

#[tokio::test]
async fn a_stream_asks_a_remote_upstream_to_stream() {
    // The canned upstream answers a streamed request in two chunks, a plain one in one piece.
    let upstream = common::mock_upstream().await;
    let yaml = format!(
        "auth: none\nserver:\n  listen: 127.0.0.1:0\n  grpc_listen: 127.0.0.1:0\nmodels:\n  - id: up\n    backend: remote\n    base_url: http://{upstream}/v1\n"
    );
    let (_, grpc) = start_with_grpc(config(&yaml));
    let channel = Channel::from_shared(format!("http://{}", grpc.unwrap()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = InferenceClient::new(channel);
    let mut stream = client
        .chat_stream(ask("up", "hi", 16))
        .await
        .unwrap()
        .into_inner();
    let mut deltas = Vec::new();
    while let Some(m) = stream.message().await.unwrap() {
        if !m.delta.is_empty() {
            deltas.push(m.delta);
        }
    }
    assert_eq!(deltas, ["Hello", " from the mock upstream."]);
    let whole = client.chat(ask("up", "hi", 16)).await.unwrap().into_inner();
    assert_eq!(whole.content, "Hello from the mock upstream.");
}

#[tokio::test]
async fn a_grpc_port_in_use_refuses_to_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let yaml = format!(
        "auth: none\nserver:\n  listen: 127.0.0.1:0\n  grpc_listen: 127.0.0.1:{port}\nmodels:\n  - id: up\n    backend: remote\n    base_url: http://127.0.0.1:9/v1\n"
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = gateway::server::start(config(&yaml), l)
        .err()
        .expect("a taken port refuses to start");
    assert!(
        err.to_string()
            .contains(&format!("gRPC listener 127.0.0.1:{port}")),
        "{err}"
    );
}
