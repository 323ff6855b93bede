//! Turns an untrusted request body into a validated [`ChatRequest`].

use crate::domain::{ChatMessage, ChatRequest, Role, Sampling};
use crate::error::ApiError;
use crate::openai::{ChatCompletionRequest, StopField, WireContent};

/// Largest `max_tokens` accepted; the engine caps at the model's context anyway.
pub const MAX_TOKENS_LIMIT: i64 = 1 << 20;

fn invalid(param: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::InvalidRequest {
        param,
        message: message.into(),
    }
}

/// Refuses the OpenAI parameters that would change the answer but are not implemented,
/// when a client sets them to anything but their neutral value: silently ignoring them
/// would hand back something else than what was asked for.
fn unsupported_sampling(req: &ChatCompletionRequest) -> Result<(), ApiError> {
    let unsupported = |param: &'static str, message: &str| {
        Err(ApiError::UnsupportedParameter {
            param,
            message: message.into(),
        })
    };
    if req.logprobs == Some(true) {
        return unsupported(
            "logprobs",
            "`logprobs` is not supported by this gateway; send the request without it",
        );
    }
    if req.top_logprobs.is_some_and(|n| n != 0) {
        return unsupported(
            "top_logprobs",
            "`top_logprobs` is not supported by this gateway (it needs `logprobs`)",
        );
    }
    if req.presence_penalty.is_some_and(|p| p != 0.0) {
        return unsupported(
            "presence_penalty",
            "`presence_penalty` is not supported; only 0 is accepted",
        );
    }
    if req.frequency_penalty.is_some_and(|p| p != 0.0) {
        return unsupported(
            "frequency_penalty",
            "`frequency_penalty` is not supported; only 0 is accepted",
        );
    }
    if req.logit_bias.as_ref().is_some_and(|b| !b.is_empty()) {
        return unsupported(
            "logit_bias",
            "`logit_bias` is not supported; only an empty map is accepted",
        );
    }
    Ok(())
}

/// Parses and validates a chat-completions body.
pub fn chat_request(body: &[u8], request_id: &str) -> Result<ChatRequest, ApiError> {
    if let Err(e) = std::str::from_utf8(body) {
        return Err(ApiError::InvalidUtf8(e.valid_up_to()));
    }
    let req: ChatCompletionRequest =
        serde_json::from_slice(body).map_err(|e| ApiError::InvalidJson(e.to_string()))?;

    if req.model.is_empty() {
        return Err(invalid("model", "`model` must not be empty"));
    }
    unsupported_sampling(&req)?;
    let template = super::format::template_call(&req.model, req.template, req.variables)?;
    // A template supplies messages of its own.
    if req.messages.is_empty() && template.is_none() {
        return Err(invalid(
            "messages",
            "`messages` must contain at least one message",
        ));
    }
    let response_format = super::format::response_format(req.response_format)?;
    let tools = super::tools::tools(req.tools)?;
    let tool_choice = super::tools::tool_choice(req.tool_choice, &tools)?;
    let _ = req.parallel_tool_calls;
    let mut calls = super::tools::CallLog::default();
    let mut messages = Vec::with_capacity(req.messages.len());
    for (i, m) in req.messages.into_iter().enumerate() {
        let role = match m.role.as_str() {
            "system" | "developer" => Role::System,
            // The model reads tool results as user turns (tools::prompt).
            "user" | "tool" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(invalid(
                    "messages",
                    format!("messages[{i}].role `{other}` is not supported"),
                ));
            }
        };
        let content = match m.content {
            None => String::new(),
            Some(WireContent::Text(t)) => t,
            Some(WireContent::Parts(parts)) => {
                let mut text = String::new();
                for (j, p) in parts.into_iter().enumerate() {
                    match (p.kind.as_str(), p.text) {
                        ("text", Some(t)) => text.push_str(&t),
                        (kind, _) => {
                            return Err(invalid(
                                "messages",
                                format!("messages[{i}].content[{j}]: only text parts are supported, got `{kind}`"),
                            ));
                        }
                    }
                }
                text
            }
        };
        let content = match (m.role.as_str(), m.tool_calls) {
            ("tool", _) => calls.tool_result(i, m.tool_call_id.as_deref(), &content)?,
            ("assistant", Some(c)) if !c.is_empty() => {
                let text = calls.assistant_calls(i, c)?;
                if content.is_empty() {
                    text
                } else {
                    format!("{content}\n{text}")
                }
            }
            _ => content,
        };
        messages.push(ChatMessage { role, content });
    }

    if let Some(n) = req.n {
        if n != 1 {
            return Err(invalid("n", "only n=1 is supported"));
        }
    }
    let temperature = match req.temperature {
        Some(t) if !(0.0..=2.0).contains(&t) => {
            return Err(invalid("temperature", "must be between 0 and 2"))
        }
        t => t,
    };
    let top_p = match req.top_p {
        Some(p) if !(p > 0.0 && p <= 1.0) => return Err(invalid("top_p", "must be in (0, 1]")),
        p => p,
    };
    let top_k = match req.top_k {
        Some(k) if k < 1 => return Err(invalid("top_k", "must be at least 1")),
        k => k.map(|k| k as usize),
    };
    let max_tokens = match req.max_completion_tokens.or(req.max_tokens) {
        Some(n) if !(1..=MAX_TOKENS_LIMIT).contains(&n) => {
            return Err(invalid(
                "max_tokens",
                format!("must be between 1 and {MAX_TOKENS_LIMIT}"),
            ));
        }
        n => n.map(|n| n as usize),
    };
    let stop = match req.stop {
        None => vec![],
        Some(StopField::One(s)) => vec![s],
        Some(StopField::Many(v)) => v,
    };
    if stop.len() > 4 {
        return Err(invalid("stop", "at most 4 stop sequences"));
    }
    if stop.iter().any(String::is_empty) {
        return Err(invalid("stop", "stop sequences must not be empty"));
    }
    let seed = match req.seed {
        Some(s) if s < 0 => return Err(invalid("seed", "must be non-negative")),
        s => s.map(|s| s as u64),
    };
    let stream = req.stream.unwrap_or(false);
    let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
    Ok(ChatRequest {
        request_id: request_id.to_string(),
        model: req.model,
        response_format,
        tools,
        tool_choice,
        template,
        messages,
        sampling: Sampling {
            temperature,
            top_p,
            top_k,
            max_tokens,
            stop,
            seed,
            ignore_eos: false,
        },
        stream,
        include_usage,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn code(r: Result<ChatRequest, ApiError>) -> &'static str {
        r.unwrap_err().parts().2
    }

    #[test]
    fn parses_a_full_request() {
        let body = br#"{"model":"m","messages":[{"role":"developer","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},{"role":"user","content":"hi"}],
            "temperature":0,"top_p":0.9,"top_k":5,"max_completion_tokens":7,"stop":"x","seed":3,"stream":true,
            "stream_options":{"include_usage":true},"presence_penalty":0}"#;
        let r = chat_request(body, "rid").unwrap();
        assert_eq!(
            r.messages[0],
            ChatMessage {
                role: Role::System,
                content: "ab".into()
            }
        );
        assert_eq!(r.sampling.max_tokens, Some(7));
        assert_eq!(r.sampling.stop, vec!["x".to_string()]);
        assert_eq!(r.sampling.seed, Some(3));
        assert!(r.stream && r.include_usage);
        assert!(r.sampling.is_greedy());
    }

    #[test]
    fn refuses_parameters_it_would_otherwise_ignore() {
        let body = |extra: &str| {
            format!(r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}]{extra}}}"#)
        };
        for (extra, param) in [
            (r#","logprobs":true"#, "logprobs"),
            (r#","logprobs":true,"top_logprobs":3"#, "logprobs"),
            (r#","top_logprobs":2"#, "top_logprobs"),
            (r#","presence_penalty":0.5"#, "presence_penalty"),
            (r#","frequency_penalty":-1"#, "frequency_penalty"),
            (r#","logit_bias":{"50256":-100}"#, "logit_bias"),
        ] {
            let e = chat_request(body(extra).as_bytes(), "r").unwrap_err();
            let (status, _, code) = e.parts();
            assert_eq!(
                (status.as_u16(), code),
                (400, "unsupported_parameter"),
                "{extra}"
            );
            assert!(e.to_string().contains(param), "{extra}: {e}");
        }
        // Neutral values ask for nothing: accepted.
        for extra in [
            r#","logprobs":false"#,
            r#","logprobs":false,"top_logprobs":0"#,
            r#","presence_penalty":0,"frequency_penalty":0,"logit_bias":{}"#,
        ] {
            assert!(chat_request(body(extra).as_bytes(), "r").is_ok(), "{extra}");
        }
    }

    #[test]
    fn rejects_bad_input_with_stable_codes() {
        assert_eq!(code(chat_request(b"{", "r")), "invalid_json");
        assert_eq!(code(chat_request(b"\xff\xfe", "r")), "invalid_utf8");
        assert_eq!(
            code(chat_request(br#"{"messages":[]}"#, "r")),
            "invalid_json"
        );
        // Messages may be left out only when a template supplies them.
        assert_eq!(
            code(chat_request(br#"{"model":"m"}"#, "r")),
            "invalid_parameter"
        );
        assert_eq!(
            code(chat_request(br#"{"model":"m","messages":[]}"#, "r")),
            "invalid_parameter"
        );
        let base = |extra: &str| {
            format!(r#"{{"model":"m","messages":[{{"role":"user","content":"x"}}]{extra}}}"#)
        };
        for extra in [
            r#","temperature":3"#,
            r#","top_p":0"#,
            r#","max_tokens":0"#,
            r#","n":2"#,
            r#","stop":["a","b","c","d","e"]"#,
            r#","stop":[""]"#,
            r#","top_k":0"#,
            r#","seed":-1"#,
        ] {
            assert_eq!(
                code(chat_request(base(extra).as_bytes(), "r")),
                "invalid_parameter",
                "{extra}"
            );
        }
        let tool = r#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#;
        assert_eq!(
            code(chat_request(tool.as_bytes(), "r")),
            "invalid_parameter"
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = chat_request(&body, "r");
        }

        #[test]
        fn arbitrary_json_never_panics(v in arb_json()) {
            let _ = chat_request(v.to_string().as_bytes(), "r");
        }

        #[test]
        fn valid_requests_round_trip(content in ".{0,40}", max in 1i64..5000, t in 0.0f64..=2.0) {
            let body = serde_json::json!({"model":"m","messages":[{"role":"user","content":content}],
                "max_tokens":max,"temperature":t});
            let r = chat_request(body.to_string().as_bytes(), "r").unwrap();
            prop_assert_eq!(&r.messages[0].content, &content);
            prop_assert_eq!(r.sampling.max_tokens, Some(max as usize));
        }
    }

    fn arb_json() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::{json, Value};
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            prop_oneof![
                Just("model".to_string()),
                Just("messages".to_string()),
                Just("user".to_string()),
                ".{0,8}"
            ]
            .prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            let keys = prop_oneof![
                Just("model".to_string()),
                Just("messages".to_string()),
                Just("role".to_string()),
                Just("content".to_string()),
                Just("stop".to_string()),
                Just("max_tokens".to_string()),
                Just("stream_options".to_string()),
                "[a-z]{1,4}"
            ];
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(keys, inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
