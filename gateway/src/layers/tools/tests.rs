//! The loop's logic over a scripted inner service: each step answers the next canned text,
//! and the requests it received are kept for inspection. The real model runs in
//! `gateway/tests/structured.rs`.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::StreamExt;
use serde_json::json;
use tower::{Service, ServiceExt};

use super::*;
use crate::config::ToolsConfig;
use crate::domain::{Constraint, ToolCall};
use crate::layers::step::{step, StepService};

#[derive(Clone, Default)]
struct Script {
    answers: Arc<Mutex<VecDeque<&'static str>>>,
    seen: Arc<Mutex<Vec<ChatRequest>>>,
}

impl Script {
    fn new(answers: &[&'static str]) -> Self {
        Self {
            answers: Arc::new(Mutex::new(answers.iter().copied().collect())),
            ..Default::default()
        }
    }

    fn seen(&self) -> Vec<ChatRequest> {
        self.seen.lock().unwrap().clone()
    }
}

impl tower::Service<ChatRequest> for Script {
    type Response = ChatStream;
    type Error = ApiError;
    type Future = futures::future::Ready<Result<ChatStream, ApiError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ApiError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: ChatRequest) -> Self::Future {
        self.seen.lock().unwrap().push(req);
        let text = self
            .answers
            .lock()
            .unwrap()
            .pop_front()
            .expect("a scripted answer");
        // Split in two deltas, as a real stream would.
        let (a, b) = text.split_at(text.len() / 2);
        let events = vec![
            Ok(ChatEvent::Delta(a.to_string())),
            Ok(ChatEvent::Delta(b.to_string())),
            Ok(ChatEvent::Done {
                finish_reason: FinishReason::Stop,
                usage: Usage {
                    prompt_tokens: 10,
                    completion_tokens: 5,
                    speculative: None,
                },
            }),
        ];
        futures::future::ready(Ok(futures::stream::iter(events).boxed()))
    }
}

fn weather() -> ToolDef {
    ToolDef {
        name: "get_weather".into(),
        description: None,
        parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        server: false,
    }
}

fn calculator() -> ToolDef {
    ToolDef {
        name: "calculator".into(),
        description: None,
        parameters: serde_json::Value::Null,
        server: true,
    }
}

fn service(script: &Script, max_steps: usize) -> StepService<ToolLoop> {
    let config = ToolsConfig {
        calculator: true,
        max_steps,
        ..Default::default()
    };
    let server = Arc::new(ServerTools::new(&config).unwrap());
    tower::Layer::layer(
        &step(ToolLoop::new(server, Arc::new(Metrics::new()))),
        script.clone(),
    )
}

fn request(tools: Vec<ToolDef>, choice: ToolChoice) -> ChatRequest {
    ChatRequest {
        model: "m".into(),
        messages: vec![ChatMessage {
            role: Role::User,
            content: "hi".into(),
        }],
        tools,
        tool_choice: choice,
        ..Default::default()
    }
}

async fn answer(
    svc: &mut StepService<ToolLoop>,
    req: ChatRequest,
) -> Result<Vec<ChatEvent>, ApiError> {
    let stream = svc.ready().await?.call(req).await?;
    stream
        .map(|e| e)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

fn code(e: ApiError) -> &'static str {
    e.parts().2
}

#[tokio::test]
async fn a_required_client_call_ends_the_answer_with_tool_calls() {
    let script = Script::new(&[r#"{"name": "get_weather", "arguments": {"city": "Oslo"}}"#]);
    let events = answer(
        &mut service(&script, 4),
        request(vec![weather()], ToolChoice::Required),
    )
    .await
    .unwrap();
    let [ChatEvent::ToolCall(ToolCall {
        name,
        arguments,
        id,
        ..
    }), ChatEvent::Done {
        finish_reason,
        usage,
    }] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(name, "get_weather");
    assert!(id.starts_with("call_"));
    assert_eq!(
        serde_json::from_str::<Value>(arguments).unwrap(),
        json!({"city": "Oslo"})
    );
    assert_eq!(*finish_reason, FinishReason::ToolCalls);
    assert_eq!(usage.completion_tokens, 5);
    let seen = script.seen();
    assert!(matches!(seen[0].constraint, Constraint::Lark(_)));
    assert_eq!(seen[0].messages[0].role, Role::System);
    assert!(seen[0].messages[0].content.contains("- get_weather"));
}

#[tokio::test]
async fn auto_text_streams_through_and_json_that_is_no_call_stays_text() {
    let script = Script::new(&["It is sunny in Oslo.", r#"{"weather": "sunny"}"#]);
    let mut svc = service(&script, 4);
    for want in ["It is sunny in Oslo.", r#"{"weather": "sunny"}"#] {
        let events = answer(&mut svc, request(vec![weather()], ToolChoice::Auto))
            .await
            .unwrap();
        let text: String = events
            .iter()
            .filter_map(|e| match e {
                ChatEvent::Delta(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(text, want);
        assert!(matches!(
            events.last(),
            Some(ChatEvent::Done {
                finish_reason: FinishReason::Stop,
                ..
            })
        ));
    }
    assert_eq!(
        script.seen()[0].constraint,
        Constraint::None,
        "auto is not constrained"
    );
}

#[tokio::test]
async fn arguments_that_miss_the_schema_are_refused() {
    let script = Script::new(&[r#"{"name": "get_weather", "arguments": {"town": "Oslo"}}"#]);
    let e = answer(
        &mut service(&script, 4),
        request(vec![weather()], ToolChoice::Required),
    )
    .await
    .unwrap_err();
    assert_eq!(code(e), "tool_call_invalid");
    let script = Script::new(&["no call here"]);
    let e = answer(
        &mut service(&script, 4),
        request(vec![weather()], ToolChoice::Required),
    )
    .await
    .unwrap_err();
    assert_eq!(code(e), "tool_call_invalid");
}

#[tokio::test]
async fn a_server_tool_runs_and_its_result_goes_back_to_the_model() {
    let script = Script::new(&[
        r#"{"name": "calculator", "arguments": {"expression": "12 * 7"}}"#,
        "12 times 7 is 84.",
    ]);
    let req = request(vec![calculator()], ToolChoice::Required);
    let trail = req.trail.clone();
    let events = answer(&mut service(&script, 4), req).await.unwrap();
    let Some(ChatEvent::Done { usage, .. }) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(usage.completion_tokens, 10, "both steps are counted");
    let runs = trail.snapshot().tool_runs;
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].name.as_str(), runs[0].status.as_str()),
        ("calculator", "ok")
    );
    let second = &script.seen()[1];
    let last = second.messages.last().unwrap();
    assert_eq!(last.role, Role::User);
    assert!(
        last.content.starts_with("Result of tool `calculator`"),
        "{}",
        last.content
    );
    assert!(last.content.ends_with("\n84"), "{}", last.content);
    assert_eq!(
        second.constraint,
        Constraint::None,
        "after the forced call, auto"
    );
}

#[tokio::test]
async fn the_loop_stops_offering_tools_after_max_steps() {
    let call = r#"{"name": "calculator", "arguments": {"expression": "1/0"}}"#;
    let script = Script::new(&[call, call, "I give up."]);
    let req = request(vec![calculator()], ToolChoice::Required);
    let trail = req.trail.clone();
    answer(&mut service(&script, 2), req).await.unwrap();
    let runs = trail.snapshot().tool_runs;
    assert_eq!(runs.len(), 2);
    assert_eq!(
        runs[0].status, "error",
        "division by zero is reported to the model"
    );
    let seen = script.seen();
    assert_eq!(seen.len(), 3);
    assert!(!seen[2].messages[0].content.contains("You can call tools"));
}

fn policy(rules: &str) -> Arc<crate::policy::Policy> {
    Arc::new(
        crate::policy::load::parse(Path::new("t.yaml"), &format!("id: t\nrules:\n{rules}"))
            .unwrap_or_else(|e| panic!("{e:?}")),
    )
}

#[tokio::test]
async fn tool_arguments_pass_the_policy_stage() {
    let call = r#"{"name": "get_weather", "arguments": {"city": "mail ops@example.com"}}"#;
    let redact = policy(
        "  - id: pii\n    kind: pii\n    entities: [email]\n    stages: [tool_arguments]\n    action: redact\n",
    );
    let script = Script::new(&[call]);
    let req = request(vec![weather()], ToolChoice::Required);
    req.guard.set_policy(redact, "v1".into());
    let events = answer(&mut service(&script, 4), req).await.unwrap();
    let ChatEvent::ToolCall(c) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(
        serde_json::from_str::<Value>(&c.arguments).unwrap(),
        json!({"city": "mail [EMAIL_1]"})
    );
    let block = policy(
        "  - id: nope\n    kind: regex\n    patterns: [\"ops@\"]\n    stages: [tool_arguments]\n    action: block\n",
    );
    let script = Script::new(&[call]);
    let req = request(vec![weather()], ToolChoice::Required);
    req.guard.set_policy(block, "v1".into());
    let e = answer(&mut service(&script, 4), req).await.unwrap_err();
    assert_eq!(code(e), "policy_violation");
}

#[tokio::test]
async fn requests_that_cannot_be_served_are_refused_up_front() {
    let script = Script::new(&[]);
    let mut svc = service(&script, 4);
    let mut unknown = calculator();
    unknown.name = "shell".into();
    let e = answer(&mut svc, request(vec![unknown], ToolChoice::Auto))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("not a server-side tool (configured: calculator)"),
        "{e}"
    );
    let mut req = request(vec![weather()], ToolChoice::Auto);
    req.response_format = ResponseFormat::JsonObject;
    let e = answer(&mut svc, req).await.unwrap_err();
    assert_eq!(code(e), "invalid_parameter");
    assert!(script.seen().is_empty());
}

#[tokio::test]
async fn bad_arguments_to_a_server_tool_go_back_to_the_model() {
    let script = Script::new(&[
        r#"{"name": "calculator", "arguments": {"expression": 12}}"#,
        "Sorry, let me answer in words.",
    ]);
    let req = request(vec![calculator()], ToolChoice::Auto);
    let trail = req.trail.clone();
    let events = answer(&mut service(&script, 4), req).await.unwrap();
    assert!(matches!(events.last(), Some(ChatEvent::Done { .. })));
    let runs = trail.snapshot().tool_runs;
    assert_eq!(runs[0].status, "invalid_arguments");
    let seen = script.seen();
    let fed_back = &seen[1].messages.last().unwrap().content;
    assert!(
        fed_back.contains("error: arguments of `calculator` do not match its schema"),
        "{fed_back}"
    );
}
