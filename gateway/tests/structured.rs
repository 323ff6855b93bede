//! What goes into the model and what comes out, through the real server and SmolLM2:
//! structured output (`response_format`), prompt templates (render, variables, versions,
//! hot reload), and tool calls (client-side round trip, server-side `calculator` and
//! `http_get`).
//!
//! One extra upstream, run by this test, stands for a remote model that ignores
//! `response_format`; another serves the pages `http_get` may fetch.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::response::IntoResponse;
use serde_json::{json, Value};

use common::{reassemble, smollm2, sse_data, start, wait_ready};

/// Nested object, enum, array, integer bounds and required fields.
fn item_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "title": {"type": "string", "minLength": 1, "maxLength": 40},
            "kind": {"enum": ["fruit", "vehicle", "animal", "tool", "place", "other"]},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 20}, "minItems": 1, "maxItems": 3},
            "details": {
                "type": "object",
                "properties": {
                    "count": {"type": "integer", "minimum": 0, "maximum": 1000},
                    "useful": {"type": "boolean"}
                },
                "required": ["count", "useful"],
                "additionalProperties": false
            }
        },
        "required": ["title", "kind", "tags", "details"],
        "additionalProperties": false
    })
}

const PROMPTS: [&str; 20] = [
    "Describe an apple.",
    "Describe a bicycle.",
    "Describe a cat.",
    "Describe a hammer.",
    "Describe Paris.",
    "Describe a banana and how many seeds it has.",
    "Describe a truck.",
    "Describe an elephant.",
    "Describe a screwdriver.",
    "Describe a mountain village.",
    "Tell me about oranges.",
    "Tell me about trains.",
    "Tell me about dogs.",
    "Tell me about saws.",
    "Tell me about London.",
    "What is a kiwi?",
    "What is a motorcycle?",
    "What is an owl?",
    "What is a wrench?",
    "What is a desert?",
];

const TEMPLATE_V1: &str = "---\nname: greet\nversion: 1\nmodel: smollm2-135m\nsampling:\n  temperature: 0\n  max_tokens: 8\nvariables:\n  type: object\n  required: [name]\n  additionalProperties: false\n  properties:\n    name: {type: string, minLength: 1, maxLength: 20}\n---\n{% block system %}Greet people by name.{% endblock %}\n{% block user %}Say hello to {{ name }}.{% endblock %}\n";

struct Server {
    addr: SocketAddr,
    prompts: PathBuf,
    pages: SocketAddr,
}

/// A remote model that answers prose whatever `response_format` says.
async fn prose(axum::Json(body): axum::Json<Value>) -> axum::response::Response {
    let text = "Sure! Here is the object you asked for.";
    if body["stream"] == true {
        let chunk = |delta: Value, finish: Value| {
            json!({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "prose",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        let sse = format!(
            "data: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
            chunk(json!({"content": text}), Value::Null),
            chunk(json!({}), json!("stop"))
        );
        (
            [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
            sse,
        )
            .into_response()
    } else {
        axum::Json(json!({
            "id": "x", "object": "chat.completion", "created": 0, "model": "prose",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        }))
        .into_response()
    }
}

async fn page(uri: axum::http::Uri) -> String {
    format!("page {} says pong", uri.path())
}

fn start_mocks() -> (SocketAddr, SocketAddr) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async move {
            let a = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let b = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send((a.local_addr().unwrap(), b.local_addr().unwrap()))
                .unwrap();
            let upstream =
                axum::Router::new().route("/v1/chat/completions", axum::routing::post(prose));
            let pages = axum::Router::new().fallback(page);
            let (_, _) = tokio::join!(axum::serve(a, upstream), axum::serve(b, pages));
        });
    });
    rx.recv().unwrap()
}

fn server() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| {
        let prompts = std::env::temp_dir().join(format!("gatehouse-prompts-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(prompts.join("schemas")).unwrap();
        let repo = common::repo();
        for f in ["soc-triage.yaml", "schemas/soc-triage.json"] {
            std::fs::copy(repo.join("prompts").join(f), prompts.join(f)).unwrap();
        }
        std::fs::write(prompts.join("greet.yaml"), TEMPLATE_V1).unwrap();
        let (upstream, pages) = start_mocks();
        let yaml = format!(
            "auth: none\nserver:\n  listen: 127.0.0.1:0\nmodels:\n{}  - id: prose\n    backend: remote\n    base_url: http://{upstream}/v1\nprompts:\n  dir: {}\n  poll_interval_ms: 100\ntools:\n  max_steps: 2\n  calculator: {{}}\n  http_get:\n    allow: [\"http://{pages}/docs/\"]\n",
            smollm2("smollm2-135m", 64),
            prompts.display()
        );
        let addr = start(common::config(&yaml));
        wait_ready(addr, Duration::from_secs(180));
        Server {
            addr,
            prompts,
            pages,
        }
    })
}

async fn post(body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("http://{}/v1/chat/completions", server().addr))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn ok_json(resp: reqwest::Response) -> Value {
    let status = resp.status();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{v}");
    v
}

/// The value of the first sample of `name` carrying every label pair of `labels`.
async fn sample(name: &str, labels: &[&str]) -> f64 {
    common::metrics_text(server().addr)
        .await
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|p| l.contains(p)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

fn item_format() -> Value {
    json!({"type": "json_schema", "json_schema": {"name": "item", "strict": true, "schema": item_schema()}})
}

#[tokio::test]
async fn twenty_prompts_all_give_schema_valid_json() {
    let validator = jsonschema::validator_for(&item_schema()).unwrap();
    for prompt in PROMPTS {
        let v = ok_json(
            post(json!({
                "model": "smollm2-135m",
                "messages": [{"role": "user", "content": prompt}],
                "temperature": 0,
                "max_tokens": 300,
                "response_format": item_format(),
            }))
            .await,
        )
        .await;
        let text = v["choices"][0]["message"]["content"].as_str().unwrap();
        let value: Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("{prompt}: {text}: {e}"));
        assert!(validator.is_valid(&value), "{prompt}: {value}");
        assert_eq!(v["choices"][0]["finish_reason"], "stop", "{prompt}");
    }
}

#[tokio::test]
async fn streamed_structured_output_is_valid_and_json_object_mode_works() {
    let resp = post(json!({
        "model": "smollm2-135m",
        "messages": [{"role": "user", "content": "Describe a lemon."}],
        "temperature": 0,
        "max_tokens": 300,
        "stream": true,
        "response_format": item_format(),
    }))
    .await;
    assert_eq!(resp.status(), 200);
    let (text, finish, _) = reassemble(&resp.text().await.unwrap());
    let value: Value = serde_json::from_str(&text).unwrap();
    assert!(
        jsonschema::validator_for(&item_schema())
            .unwrap()
            .is_valid(&value),
        "{value}"
    );
    assert_eq!(finish, "stop");

    let v = ok_json(
        post(json!({
            "model": "smollm2-135m",
            "messages": [{"role": "user", "content": "Return a JSON object with the name and age of a person."}],
            "temperature": 0,
            "max_tokens": 200,
            "response_format": {"type": "json_object"},
        }))
        .await,
    )
    .await;
    let text = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        serde_json::from_str::<Value>(text).unwrap().is_object(),
        "{text}"
    );
}

#[tokio::test]
async fn failures_are_reported_never_passed_off_as_success() {
    // Cut at max_tokens before the JSON closes.
    let body = json!({
        "model": "smollm2-135m",
        "messages": [{"role": "user", "content": "Describe a pear."}],
        "temperature": 0,
        "max_tokens": 3,
        "response_format": item_format(),
    });
    let resp = post(body.clone()).await;
    assert_eq!(resp.status(), 502);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error"]["code"], "structured_output_invalid");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_tokens"),
        "{e}"
    );
    let mut streamed = body;
    streamed["stream"] = json!(true);
    let text = post(streamed).await.text().await.unwrap();
    let data = sse_data(&text);
    assert_ne!(data.last().map(String::as_str), Some("[DONE]"), "{text}");
    assert!(text.contains("structured_output_invalid"), "{text}");

    // A remote model that ignores the format.
    for stream in [false, true] {
        let resp = post(json!({
            "model": "prose",
            "messages": [{"role": "user", "content": "An object, please."}],
            "stream": stream,
            "response_format": {"type": "json_object"},
        }))
        .await;
        let text = resp.text().await.unwrap();
        assert!(text.contains("structured_output_invalid"), "{text}");
        assert!(text.contains("not JSON"), "{text}");
    }

    let invalid = sample(
        "gatehouse_structured_output_total",
        &["format=\"json_object\"", "result=\"invalid\""],
    )
    .await;
    assert!(invalid >= 2.0, "both prose answers are counted: {invalid}");

    // A schema that is not one.
    let resp = post(json!({
        "model": "smollm2-135m",
        "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "banana"}}},
    }))
    .await;
    assert_eq!(resp.status(), 400);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error"]["param"], "response_format");
}

#[tokio::test]
async fn the_soc_template_renders_and_answers_under_its_schema() {
    let resp = post(json!({
        "model": "template:soc-triage",
        "variables": {"record": "Mar 14 03:12:09 bastion sshd[2211]: Failed password for invalid user admin from 203.0.113.45 port 52814 ssh2", "source": "syslog"},
    }))
    .await;
    assert_eq!(resp.headers()["x-gatehouse-template"], "soc-triage@1");
    let v = ok_json(resp).await;
    let text = v["choices"][0]["message"]["content"].as_str().unwrap();
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo().join("prompts/schemas/soc-triage.json")).unwrap(),
    )
    .unwrap();
    let value: Value = serde_json::from_str(text).unwrap();
    assert!(
        jsonschema::validator_for(&schema).unwrap().is_valid(&value),
        "{value}"
    );
}

#[tokio::test]
async fn template_errors_are_clear() {
    let resp = post(json!({"model": "template:greet", "variables": {"name": 42}})).await;
    assert_eq!(resp.status(), 400);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error"]["code"], "invalid_template_variables");
    assert_eq!(e["error"]["param"], "variables");
    assert!(
        e["error"]["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("variables.name: "),
        "{e}"
    );

    let resp = post(json!({"model": "template:greet", "variables": {}})).await;
    let e: Value = resp.json().await.unwrap();
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"name\" is a required property"),
        "{e}"
    );

    let resp = post(json!({"model": "template:nope"})).await;
    assert_eq!(resp.status(), 404);
    let missing = sample(
        "gatehouse_template_renders_total",
        &["template=\"nope\"", "result=\"not_found\""],
    )
    .await;
    assert_eq!(missing, 1.0);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error"]["code"], "template_not_found");

    let resp = post(json!({"model": "template:greet@9", "variables": {"name": "Ada"}})).await;
    assert_eq!(resp.status(), 404);
}

async fn templates() -> Value {
    reqwest::get(format!("http://{}/v1/templates", server().addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn wait_for(what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = templates().await;
        if pred(&t) {
            return t;
        }
        assert!(Instant::now() < deadline, "{what}: {t}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn templates_are_versioned_pinned_and_hot_reloaded() {
    let s = server();
    // Render through the API with the client's own message in between.
    let resp = post(json!({
        "model": "smollm2-135m",
        "template": "greet@1",
        "variables": {"name": "Ada"},
    }))
    .await;
    assert_eq!(resp.headers()["x-gatehouse-template"], "greet@1");
    ok_json(resp).await;

    // A second version appears without a restart and becomes the latest.
    let v2 = TEMPLATE_V1
        .replace("version: 1", "version: 2")
        .replace("Say hello", "Say goodbye");
    std::fs::write(s.prompts.join("greet-v2.yaml"), v2).unwrap();
    wait_for("v2 loads", |t| {
        t["templates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == "greet@2" && x["latest"] == true)
    })
    .await;
    let resp = post(json!({"model": "template:greet", "variables": {"name": "Ada"}})).await;
    assert_eq!(resp.headers()["x-gatehouse-template"], "greet@2");
    let resp = post(json!({"model": "template:greet@1", "variables": {"name": "Ada"}})).await;
    assert_eq!(resp.headers()["x-gatehouse-template"], "greet@1", "pinned");

    // A broken edit is rejected; the templates in force stay.
    std::fs::write(
        s.prompts.join("broken.yaml"),
        "---\nname: broken\nversion: 1\n---\n{{ oops ",
    )
    .unwrap();
    let t = wait_for("the broken edit is reported", |t| {
        !t["last_reload_error"].is_null()
    })
    .await;
    let err = t["last_reload_error"].as_str().unwrap();
    assert!(err.contains("broken.yaml:5:1: template syntax"), "{err}");
    let resp = post(json!({"model": "template:greet", "variables": {"name": "Ada"}})).await;
    assert_eq!(resp.headers()["x-gatehouse-template"], "greet@2");
    std::fs::remove_file(s.prompts.join("broken.yaml")).unwrap();
    wait_for("recovered", |t| t["last_reload_error"].is_null()).await;
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30}, "unit": {"enum": ["celsius", "fahrenheit"]}}, "required": ["city", "unit"], "additionalProperties": false}
    }})
}

#[tokio::test]
async fn client_side_tool_calls_round_trip() {
    let messages = json!([{"role": "user", "content": "What is the weather in Oslo?"}]);
    let v = ok_json(
        post(json!({
            "model": "smollm2-135m",
            "messages": messages,
            "tools": [weather_tool()],
            "tool_choice": "required",
            "temperature": 0,
            "max_tokens": 100,
        }))
        .await,
    )
    .await;
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{v}");
    assert!(choice["message"]["content"].is_null(), "{v}");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(
        args["city"].is_string() && args["unit"].is_string(),
        "{args}"
    );

    // Streamed: a chunk naming the call, then its argument deltas.
    let resp = post(json!({
        "model": "smollm2-135m",
        "messages": messages,
        "tools": [weather_tool()],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "temperature": 0,
        "max_tokens": 100,
        "stream": true,
    }))
    .await;
    let body = resp.text().await.unwrap();
    let chunks: Vec<Value> = sse_data(&body)
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let deltas: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert_eq!(deltas[0]["function"]["name"], "get_weather", "{body}");
    assert!(deltas[0]["id"].as_str().unwrap().starts_with("call_"));
    let streamed_args: String = deltas
        .iter()
        .map(|d| d["function"]["arguments"].as_str().unwrap())
        .collect();
    serde_json::from_str::<Value>(&streamed_args).unwrap();
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );

    // The next turn carries the call and its result.
    let v = ok_json(
        post(json!({
            "model": "smollm2-135m",
            "messages": [
                {"role": "user", "content": "What is the weather in Oslo?"},
                {"role": "assistant", "content": null, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": call["id"], "content": "{\"temp\": 21, \"sky\": \"clear\"}"}
            ],
            "tools": [weather_tool()],
            "tool_choice": "none",
            "temperature": 0,
            "max_tokens": 30,
        }))
        .await,
    )
    .await;
    assert!(!v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .is_empty());
    assert_eq!(
        v["choices"][0]["finish_reason"]
            .as_str()
            .map(|f| f != "tool_calls"),
        Some(true)
    );

    // A result for a call that never happened is refused.
    let resp = post(json!({
        "model": "smollm2-135m",
        "messages": [{"role": "tool", "tool_call_id": "call_x", "content": "1"}],
    }))
    .await;
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn server_side_tools_run_in_the_loop() {
    let resp = post(json!({
        "model": "smollm2-135m",
        "messages": [{"role": "user", "content": "What is 12 * 7? Use the calculator."}],
        "tools": [{"type": "function", "function": {"name": "calculator"}}],
        "tool_choice": "required",
        "temperature": 0,
        "max_tokens": 60,
    }))
    .await;
    let tools = resp.headers()["x-gatehouse-tools"]
        .to_str()
        .unwrap()
        .to_string();
    let v = ok_json(resp).await;
    assert!(tools.starts_with("calculator:"), "{tools}");
    assert_ne!(v["choices"][0]["finish_reason"], "tool_calls", "{v}");
    assert!(v["choices"][0]["message"]["tool_calls"].is_null());

    let s = server();
    let resp = post(json!({
        "model": "smollm2-135m",
        "messages": [{"role": "user", "content": format!("Fetch http://{}/docs/status and tell me what it says.", s.pages)}],
        "tools": [{"type": "function", "function": {"name": "http_get"}}],
        "tool_choice": "required",
        "temperature": 0,
        "max_tokens": 60,
    }))
    .await;
    let tools = resp.headers()["x-gatehouse-tools"]
        .to_str()
        .unwrap()
        .to_string();
    ok_json(resp).await;
    assert!(
        tools.starts_with("http_get:ok"),
        "the grammar keeps the URL on the allowlist: {tools}"
    );

    let resp = post(json!({
        "model": "smollm2-135m",
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "shell"}}],
    }))
    .await;
    assert_eq!(resp.status(), 400);
}

/// The SOC policy validates what the SOC template asks for: one schema, two copies (each
/// directory is versioned and reloaded on its own), kept identical.
#[test]
fn the_soc_policy_and_template_share_one_schema() {
    let repo = common::repo();
    let policy = std::fs::read(repo.join("policies/schemas/soc-alert.json")).unwrap();
    let template = std::fs::read(repo.join("prompts/schemas/soc-triage.json")).unwrap();
    assert!(
        policy == template,
        "policies/schemas/soc-alert.json and prompts/schemas/soc-triage.json differ"
    );
}
