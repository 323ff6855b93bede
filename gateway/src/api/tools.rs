//! The tool fields of a request: `tools`, `tool_choice`, and the `tool_calls` / `role: tool`
//! messages of earlier turns, rendered into the text forms of [`crate::tools::prompt`].

use std::collections::HashMap;

use serde_json::Value;

use crate::domain::{ToolChoice, ToolDef};
use crate::error::ApiError;
use crate::openai::{WireTool, WireToolCall};
use crate::tools::prompt::{call_text, result_text};

/// Most tools one request may offer.
pub const MAX_TOOLS: usize = 64;

fn invalid(param: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::InvalidRequest {
        param,
        message: message.into(),
    }
}

fn valid_name(n: &str) -> bool {
    (1..=64).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Parses `tools`. A function without `parameters` is a server-side tool candidate; the
/// tool layer checks that one is configured under that name.
pub fn tools(v: Option<Vec<WireTool>>) -> Result<Vec<ToolDef>, ApiError> {
    let v = v.unwrap_or_default();
    if v.len() > MAX_TOOLS {
        return Err(invalid("tools", format!("at most {MAX_TOOLS} tools")));
    }
    let mut out: Vec<ToolDef> = Vec::with_capacity(v.len());
    for (i, t) in v.into_iter().enumerate() {
        if t.kind != "function" {
            return Err(invalid(
                "tools",
                format!("tools[{i}].type `{}` is not supported (function)", t.kind),
            ));
        }
        let f = t
            .function
            .ok_or_else(|| invalid("tools", format!("tools[{i}].function is required")))?;
        if !valid_name(&f.name) {
            return Err(invalid(
                "tools",
                format!(
                    "tools[{i}].function.name must be 1 to 64 characters of a-z, A-Z, 0-9, _ and -"
                ),
            ));
        }
        if out.iter().any(|o| o.name == f.name) {
            return Err(invalid(
                "tools",
                format!("tools[{i}]: `{}` is declared twice", f.name),
            ));
        }
        let (parameters, server) = match f.parameters {
            None => (Value::Null, true),
            Some(p @ Value::Object(_)) => {
                jsonschema::validator_for(&p).map_err(|e| {
                    invalid(
                        "tools",
                        format!("tools[{i}].function.parameters is not a valid JSON Schema: {e}"),
                    )
                })?;
                (p, false)
            }
            Some(_) => {
                return Err(invalid(
                    "tools",
                    format!("tools[{i}].function.parameters must be a JSON Schema object"),
                ))
            }
        };
        let _ = f.strict; // Arguments are always validated against `parameters`.
        out.push(ToolDef {
            name: f.name,
            description: f.description,
            parameters,
            server,
        });
    }
    Ok(out)
}

/// Parses `tool_choice` against the declared tools.
pub fn tool_choice(v: Option<Value>, tools: &[ToolDef]) -> Result<ToolChoice, ApiError> {
    let choice = match v {
        None | Some(Value::Null) => ToolChoice::Auto,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            other => {
                return Err(invalid(
                    "tool_choice",
                    format!("`{other}` is not a tool_choice (none, auto, required, or a function)"),
                ))
            }
        },
        Some(Value::Object(o)) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .filter(|_| o.get("type").and_then(Value::as_str) == Some("function"))
                .ok_or_else(|| {
                    invalid(
                        "tool_choice",
                        "expected {\"type\": \"function\", \"function\": {\"name\": ...}}",
                    )
                })?;
            ToolChoice::Named(name.to_string())
        }
        Some(_) => return Err(invalid("tool_choice", "must be a string or an object")),
    };
    match &choice {
        ToolChoice::Required if tools.is_empty() => {
            Err(invalid("tool_choice", "`required` needs `tools`"))
        }
        ToolChoice::Named(n) if !tools.iter().any(|t| &t.name == n) => Err(invalid(
            "tool_choice",
            format!("`{n}` is not one of the declared tools"),
        )),
        _ => Ok(choice),
    }
}

/// Earlier calls by id, so that `role: tool` messages can name their function.
#[derive(Default)]
pub struct CallLog(HashMap<String, String>);

impl CallLog {
    /// The text of an assistant message's calls; records their ids.
    pub fn assistant_calls(
        &mut self,
        i: usize,
        calls: Vec<WireToolCall>,
    ) -> Result<String, ApiError> {
        let mut lines = Vec::with_capacity(calls.len());
        for (j, c) in calls.into_iter().enumerate() {
            let args: Value = serde_json::from_str(&c.function.arguments).map_err(|e| {
                invalid(
                    "messages",
                    format!("messages[{i}].tool_calls[{j}].function.arguments is not JSON: {e}"),
                )
            })?;
            lines.push(call_text(&c.function.name, &args));
            self.0.insert(c.id, c.function.name);
        }
        Ok(lines.join("\n"))
    }

    /// The text of a `role: tool` message answering `call_id`.
    pub fn tool_result(
        &self,
        i: usize,
        call_id: Option<&str>,
        content: &str,
    ) -> Result<String, ApiError> {
        let id = call_id.ok_or_else(|| {
            invalid(
                "messages",
                format!("messages[{i}]: a `tool` message needs `tool_call_id`"),
            )
        })?;
        let name = self.0.get(id).ok_or_else(|| {
            invalid(
                "messages",
                format!(
                    "messages[{i}].tool_call_id `{id}` does not answer a tool call of an earlier \
                     assistant message"
                ),
            )
        })?;
        Ok(result_text(name, id, content))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::{WireCalledFunction, WireFunction};
    use serde_json::json;

    fn wire(name: &str, parameters: Option<Value>) -> WireTool {
        WireTool {
            kind: "function".into(),
            function: Some(WireFunction {
                name: name.into(),
                description: None,
                parameters,
                strict: None,
            }),
        }
    }

    #[test]
    fn tools_and_choices_validate() {
        let t = tools(Some(vec![
            wire("get_weather", Some(json!({"type": "object"}))),
            wire("calculator", None),
        ]))
        .unwrap();
        assert!(!t[0].server && t[1].server);
        assert_eq!(tool_choice(None, &t).unwrap(), ToolChoice::Auto);
        assert_eq!(
            tool_choice(
                Some(json!({"type": "function", "function": {"name": "calculator"}})),
                &t
            )
            .unwrap(),
            ToolChoice::Named("calculator".into())
        );
        for bad in [
            json!("sometimes"),
            json!({"type": "function"}),
            json!({"type": "function", "function": {"name": "nope"}}),
            json!(3),
        ] {
            assert!(tool_choice(Some(bad.clone()), &t).is_err(), "{bad}");
        }
        assert!(tool_choice(Some(json!("required")), &[]).is_err());
        assert!(tools(Some(vec![wire("a b", None)])).is_err());
        assert!(tools(Some(vec![wire("a", None), wire("a", None)])).is_err());
        assert!(tools(Some(vec![wire("a", Some(json!([])))])).is_err());
        assert!(tools(Some(vec![wire("a", Some(json!({"type": 7})))])).is_err());
    }

    #[test]
    fn earlier_calls_and_results_become_text() {
        let mut log = CallLog::default();
        let text = log
            .assistant_calls(
                1,
                vec![WireToolCall {
                    id: "call_1".into(),
                    kind: "function".into(),
                    function: WireCalledFunction {
                        name: "get_weather".into(),
                        arguments: "{\"city\":\"Oslo\"}".into(),
                    },
                }],
            )
            .unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            json!({"name": "get_weather", "arguments": {"city": "Oslo"}})
        );
        let r = log.tool_result(2, Some("call_1"), "sunny").unwrap();
        assert!(r.starts_with("Result of tool `get_weather` (call call_1)"));
        assert!(log.tool_result(2, Some("call_9"), "x").is_err());
        assert!(log.tool_result(2, None, "x").is_err());
    }
}
