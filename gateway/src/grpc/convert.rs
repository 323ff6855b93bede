//! Protobuf messages to and from the gateway's own types. A gRPC chat or embeddings request
//! is written as the OpenAI JSON body it stands for and validated by the HTTP API's parser,
//! so both doors accept and refuse exactly the same requests, with the same error codes.

use prost_types::value::Kind;
use serde_json::{json, Map, Value};

use super::pb;
use crate::domain::{Citation, ToolCall, Usage};

/// A protobuf `Struct` as a JSON object. Integral numbers become JSON integers: protobuf has
/// only doubles, and JSON Schema keywords such as `maxItems` must be integers.
pub fn struct_to_json(s: prost_types::Struct) -> Value {
    Value::Object(
        s.fields
            .into_iter()
            .map(|(k, v)| (k, value_to_json(v)))
            .collect::<Map<_, _>>(),
    )
}

fn value_to_json(v: prost_types::Value) -> Value {
    match v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(b),
        Some(Kind::StringValue(s)) => Value::String(s),
        Some(Kind::NumberValue(n)) => {
            // 2^53: beyond it doubles no longer hold every integer.
            if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
                json!(n as i64)
            } else {
                serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
            }
        }
        Some(Kind::StructValue(s)) => struct_to_json(s),
        Some(Kind::ListValue(l)) => Value::Array(l.values.into_iter().map(value_to_json).collect()),
    }
}

fn tool_call_json(c: pb::ToolCall) -> Value {
    json!({
        "id": c.id,
        "type": "function",
        "function": { "name": c.name, "arguments": c.arguments },
    })
}

fn message_json(m: pb::Message) -> Value {
    let mut v = json!({ "role": m.role, "content": m.content });
    if !m.tool_calls.is_empty() {
        v["tool_calls"] = m.tool_calls.into_iter().map(tool_call_json).collect();
    }
    if !m.tool_call_id.is_empty() {
        v["tool_call_id"] = json!(m.tool_call_id);
    }
    v
}

fn tool_json(t: pb::Tool) -> Value {
    let mut function = json!({ "name": t.name });
    if !t.description.is_empty() {
        function["description"] = json!(t.description);
    }
    if let Some(p) = t.parameters {
        function["parameters"] = struct_to_json(p);
    }
    if t.strict {
        function["strict"] = json!(true);
    }
    json!({ "type": "function", "function": function })
}

fn response_format_json(f: pb::ResponseFormat) -> Value {
    if f.r#type != "json_schema" {
        return json!({ "type": f.r#type });
    }
    let mut schema = json!({ "name": f.name, "strict": f.strict });
    if let Some(s) = f.schema {
        schema["schema"] = struct_to_json(s);
    }
    json!({ "type": "json_schema", "json_schema": schema })
}

/// The chat-completions body `r` stands for.
pub fn chat_body(r: pb::ChatRequest) -> Value {
    let mut v = json!({
        "model": r.model,
        "messages": r.messages.into_iter().map(message_json).collect::<Vec<_>>(),
    });
    let mut set = |key: &str, value: Value| {
        v[key] = value;
    };
    if let Some(n) = r.max_tokens {
        set("max_tokens", json!(n));
    }
    if let Some(t) = r.temperature {
        set("temperature", json!(t));
    }
    if let Some(p) = r.top_p {
        set("top_p", json!(p));
    }
    if let Some(k) = r.top_k {
        set("top_k", json!(k));
    }
    if !r.stop.is_empty() {
        set("stop", json!(r.stop));
    }
    if let Some(s) = r.seed {
        set("seed", json!(s));
    }
    if !r.template.is_empty() {
        set("template", json!(r.template));
    }
    if let Some(vars) = r.variables {
        set("variables", struct_to_json(vars));
    }
    if let Some(f) = r.response_format {
        set("response_format", response_format_json(f));
    }
    if !r.tools.is_empty() {
        set("tools", r.tools.into_iter().map(tool_json).collect());
    }
    if let Some(c) = r.tool_choice {
        if !c.function.is_empty() {
            set(
                "tool_choice",
                json!({ "type": "function", "function": { "name": c.function } }),
            );
        } else if !c.mode.is_empty() {
            set("tool_choice", json!(c.mode));
        }
    }
    v
}

/// The embeddings body `r` stands for.
pub fn embed_body(r: pb::EmbedRequest) -> Value {
    let mut v = json!({ "model": r.model, "input": r.input });
    if let Some(d) = r.dimensions {
        v["dimensions"] = json!(d);
    }
    v
}

/// Token counts, saturating (a generation never nears 2^32 tokens).
pub fn usage(u: Usage) -> pb::Usage {
    let n = |x: u64| u32::try_from(x).unwrap_or(u32::MAX);
    pb::Usage {
        prompt_tokens: n(u.prompt_tokens),
        completion_tokens: n(u.completion_tokens),
        total_tokens: n(u.prompt_tokens + u.completion_tokens),
    }
}

/// A tool call the model made.
pub fn tool_call(c: ToolCall) -> pb::ToolCall {
    pb::ToolCall {
        id: c.id,
        name: c.name,
        arguments: c.arguments,
    }
}

/// Retrieved chunks the answer was given.
pub fn citations(c: Option<Vec<Citation>>) -> Vec<pb::Citation> {
    c.unwrap_or_default()
        .into_iter()
        .map(|c| pb::Citation {
            id: u32::try_from(c.id).unwrap_or(u32::MAX),
            source: c.source,
            chunk: c.chunk,
            score: c.score,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn number(n: f64) -> prost_types::Value {
        prost_types::Value {
            kind: Some(Kind::NumberValue(n)),
        }
    }

    #[test]
    fn a_request_becomes_the_openai_body_it_stands_for() {
        let r = pb::ChatRequest {
            model: "m".into(),
            messages: vec![
                pb::Message {
                    role: "assistant".into(),
                    tool_calls: vec![pb::ToolCall {
                        id: "call_1".into(),
                        name: "f".into(),
                        arguments: "{}".into(),
                    }],
                    ..Default::default()
                },
                pb::Message {
                    role: "tool".into(),
                    content: "42".into(),
                    tool_call_id: "call_1".into(),
                    ..Default::default()
                },
            ],
            max_tokens: Some(8),
            temperature: Some(0.0),
            stop: vec!["\n".into()],
            tool_choice: Some(pb::ToolChoice {
                mode: "auto".into(),
                function: "f".into(),
            }),
            response_format: Some(pb::ResponseFormat {
                r#type: "json_schema".into(),
                name: "s".into(),
                schema: Some(prost_types::Struct {
                    fields: [("maxItems".to_string(), number(3.0))].into(),
                }),
                strict: true,
            }),
            ..Default::default()
        };
        let v = chat_body(r);
        assert_eq!(v["messages"][0]["tool_calls"][0]["function"]["name"], "f");
        assert_eq!(v["messages"][1]["tool_call_id"], "call_1");
        assert_eq!(v["max_tokens"], 8);
        assert_eq!(v["stop"], json!(["\n"]));
        assert_eq!(v["tool_choice"]["function"]["name"], "f");
        assert_eq!(
            v["response_format"]["json_schema"]["schema"]["maxItems"],
            json!(3)
        );
        assert!(v.get("top_p").is_none() && v.get("template").is_none());
        // And the HTTP API's parser takes it.
        let body = serde_json::to_vec(&json!({
            "model": "m",
            "messages": [{ "role": "user", "content": "hi" }],
            "max_tokens": 8,
        }))
        .unwrap();
        assert!(crate::api::parse::chat_request(&body, "id").is_ok());
    }

    proptest! {
        #[test]
        fn numbers_survive_the_conversion(n in any::<f64>()) {
            let v = value_to_json(number(n));
            if n.is_finite() {
                prop_assert!((v.as_f64().unwrap() - n).abs() <= f64::EPSILON * n.abs());
            } else {
                prop_assert!(v.is_null());
            }
        }
    }
}
