//! How tools meet the model, which only reads and writes text: the tools are described in a
//! system message, a call is a JSON object `{"name": ..., "arguments": {...}}` on its own,
//! and a tool's result comes back as a user message. When a call is required, decoding is
//! constrained to exactly such an object whose arguments match the tool's schema.
//!
//! The same text forms render the calls and results of earlier turns, so a conversation
//! reads the same to the model whether the calls ran in the client or in the gateway.

use serde_json::{json, Value};

use crate::domain::{Constraint, ToolChoice, ToolDef};

/// The text of a call, as the model is asked to write it: name first, then the arguments.
pub fn call_text(name: &str, arguments: &Value) -> String {
    format!(
        "{{\"name\": {}, \"arguments\": {arguments}}}",
        Value::String(name.to_string())
    )
}

/// The text of a tool's result, as the model reads it.
pub fn result_text(name: &str, call_id: &str, content: &str) -> String {
    format!("Result of tool `{name}` (call {call_id}):\n{content}")
}

/// The system text of the last step, once tools have run and may not run again.
pub const ANSWER_NOW: &str = "The tool results are in the messages above. Answer the user's \
     question in plain sentences now; do not call a tool and do not write JSON.";

/// The system text describing `tools`.
pub fn system_text(tools: &[ToolDef], choice: &ToolChoice) -> String {
    let mut s = String::from(
        "You can call tools. To call one, reply with only a JSON object \
         {\"name\": <tool name>, \"arguments\": {...}} and nothing else; the result comes \
         back in the next message. ",
    );
    s.push_str(match choice {
        ToolChoice::Required | ToolChoice::Named(_) => "Call a tool now.",
        _ => "If no tool is needed, answer normally.",
    });
    s.push_str("\nTools:");
    for t in tools {
        s.push_str(&format!("\n- {}", t.name));
        if let Some(d) = &t.description {
            s.push_str(&format!(": {d}"));
        }
        s.push_str(&format!("\n  arguments (JSON Schema): {}", t.parameters));
    }
    s
}

/// The grammar for `choice`: a call to one of `tools` (or to the named one) when a call is
/// required; none otherwise, and the answer is parsed afterwards.
///
/// A Lark grammar rather than a JSON Schema, so that the call reads as [`call_text`] writes
/// it, name first: JSON Schema properties come out in key order, and a model made to write
/// `{"arguments": {"expression": "` before it has named the tool rambles inside the string.
pub fn constraint(tools: &[ToolDef], choice: &ToolChoice) -> Constraint {
    let chosen: Vec<&ToolDef> = match choice {
        ToolChoice::Required => tools.iter().collect(),
        ToolChoice::Named(n) => tools.iter().filter(|t| &t.name == n).collect(),
        ToolChoice::Auto | ToolChoice::None => return Constraint::None,
    };
    if chosen.is_empty() {
        return Constraint::None;
    }
    let mut lark = format!(
        "start: {}\n",
        (0..chosen.len())
            .map(|i| format!("call{i}"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    for (i, t) in chosen.iter().enumerate() {
        let head = Value::String(format!(
            "{{\"name\": {}, \"arguments\": ",
            Value::String(t.name.clone())
        ));
        let mut schema = t.parameters.clone();
        if let Some(obj) = schema.as_object_mut() {
            obj.entry("x-guidance").or_insert_with(|| {
                json!({"whitespace_flexible": false, "item_separator": ", ", "key_separator": ": "})
            });
        }
        lark.push_str(&format!(
            "call{i}: {head} args{i} \"}}\"\nargs{i}: %json {schema}\n"
        ));
    }
    Constraint::Lark(lark)
}

/// Reads a model's answer as a call to one of `tools`: the whole answer (one Markdown fence
/// allowed) must be `{"name", "arguments"}` (or `"parameters"`, which some models write),
/// with a known name. `None` means the answer is text.
pub fn parse_call(text: &str, tools: &[ToolDef]) -> Option<(String, Value)> {
    let v = crate::policy::rules::parse_structured(text).ok()?;
    let obj = v.as_object()?;
    let name = obj.get("name")?.as_str()?;
    tools.iter().find(|t| t.name == name)?;
    let args = obj.get("arguments").or_else(|| obj.get("parameters"))?;
    let args = match args {
        // Some models write the arguments as a JSON string, as OpenAI's wire format does.
        Value::String(s) => serde_json::from_str(s).ok()?,
        other => other.clone(),
    };
    args.is_object().then(|| (name.to_string(), args))
}

/// A fresh call id, OpenAI-style.
pub fn call_id() -> String {
    format!("call_{}", &uuid::Uuid::new_v4().simple().to_string()[..24])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools() -> Vec<ToolDef> {
        vec![ToolDef {
            name: "get_weather".into(),
            description: Some("Weather for a city".into()),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
            server: false,
        }]
    }

    #[test]
    fn calls_parse_from_plain_fenced_and_string_arguments() {
        let t = tools();
        let want = Some(("get_weather".to_string(), json!({"city": "Oslo"})));
        assert_eq!(
            parse_call(r#"{"name":"get_weather","arguments":{"city":"Oslo"}}"#, &t),
            want
        );
        assert_eq!(
            parse_call(
                "```json\n{\"name\":\"get_weather\",\"parameters\":{\"city\":\"Oslo\"}}\n```",
                &t
            ),
            want
        );
        assert_eq!(
            parse_call(
                r#"{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}"#,
                &t
            ),
            want
        );
        assert_eq!(parse_call(r#"{"name":"other","arguments":{}}"#, &t), None);
        assert_eq!(parse_call("It is sunny.", &t), None);
        assert_eq!(
            parse_call(r#"{"name":"get_weather","arguments":[1]}"#, &t),
            None
        );
    }

    #[test]
    fn required_and_named_choices_constrain() {
        let mut t = tools();
        t.push(ToolDef {
            name: "calculator".into(),
            ..t[0].clone()
        });
        let Constraint::Lark(g) = constraint(&t, &ToolChoice::Required) else {
            panic!("required constrains");
        };
        assert!(g.starts_with("start: call0 | call1\n"), "{g}");
        assert!(
            g.contains(r#"call0: "{\"name\": \"get_weather\", \"arguments\": " args0 "}""#),
            "{g}"
        );
        assert!(g.contains("args1: %json {"), "{g}");
        assert!(g.contains(r#""whitespace_flexible":false"#), "{g}");
        let Constraint::Lark(g) = constraint(&t, &ToolChoice::Named("calculator".into())) else {
            panic!("a named function constrains");
        };
        assert!(
            g.starts_with("start: call0\n") && g.contains("calculator"),
            "{g}"
        );
        assert_eq!(constraint(&t, &ToolChoice::Auto), Constraint::None);
        assert_eq!(
            constraint(&t, &ToolChoice::Named("nope".into())),
            Constraint::None
        );
    }

    #[test]
    fn text_forms_round_trip_through_the_parser() {
        let t = tools();
        let text = call_text("get_weather", &json!({"city": "Oslo"}));
        assert_eq!(
            text,
            r#"{"name": "get_weather", "arguments": {"city":"Oslo"}}"#
        );
        assert_eq!(parse_call(&text, &t).unwrap().1, json!({"city": "Oslo"}));
        assert!(system_text(&t, &ToolChoice::Auto).contains("- get_weather: Weather for a city"));
        assert!(result_text("f", "call_1", "42").ends_with("(call call_1):\n42"));
    }
}
