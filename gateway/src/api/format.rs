//! The request fields that shape the answer: `response_format`, and the template a request
//! names (`model: "template:NAME[@VERSION]"` or the `template` extension field).

use serde_json::Value;

use crate::domain::{ResponseFormat, TemplateCall};
use crate::error::ApiError;

/// `model` values with this prefix name a template instead of a model.
pub const TEMPLATE_MODEL_PREFIX: &str = "template:";

fn invalid(param: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::InvalidRequest {
        param,
        message: message.into(),
    }
}

/// Parses OpenAI's `response_format`; a `json_schema` must carry a schema that compiles.
pub fn response_format(v: Option<Value>) -> Result<ResponseFormat, ApiError> {
    ResponseFormat::parse(v).map_err(|e| invalid("response_format", e.to_string()))
}

/// Parses `NAME` or `NAME@VERSION`.
pub fn template_ref(s: &str) -> Result<(String, Option<u32>), String> {
    let (name, version) = match s.rsplit_once('@') {
        Some((n, v)) => {
            let v = v
                .parse::<u32>()
                .map_err(|_| format!("`{s}`: the version after `@` must be a whole number"))?;
            (n, Some(v))
        }
        None => (s, None),
    };
    if !crate::prompts::valid_template_name(name) {
        return Err(format!(
            "`{s}`: a template name is 1 to 64 characters of a-z, A-Z, 0-9, `_`, `-` and `.`"
        ));
    }
    Ok((name.to_string(), version))
}

/// The template a request names, from `model` or the `template` field, with `variables`.
pub fn template_call(
    model: &str,
    template: Option<String>,
    variables: Option<Value>,
) -> Result<Option<TemplateCall>, ApiError> {
    let from_model = model.strip_prefix(TEMPLATE_MODEL_PREFIX);
    let (spec, param, model_from_template) =
        match (from_model, template) {
            (Some(_), Some(_)) => return Err(invalid(
                "template",
                "name the template either in `model` (template:NAME) or in `template`, not both",
            )),
            (Some(t), None) => (t.to_string(), "model", true),
            (None, Some(t)) => (t, "template", false),
            (None, None) => {
                if variables.is_some() {
                    return Err(invalid(
                        "variables",
                        "`variables` needs a template (`template` or model `template:NAME`)",
                    ));
                }
                return Ok(None);
            }
        };
    let (name, version) = template_ref(&spec).map_err(|m| invalid(param, m))?;
    let variables = match variables {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(v @ Value::Object(_)) => v,
        Some(_) => return Err(invalid("variables", "`variables` must be an object")),
    };
    Ok(Some(TemplateCall {
        name,
        version,
        variables,
        model_from_template,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn response_formats() {
        assert_eq!(response_format(None).unwrap(), ResponseFormat::Text);
        assert_eq!(
            response_format(Some(json!({"type": "json_object"}))).unwrap(),
            ResponseFormat::JsonObject
        );
        let f = response_format(Some(json!({"type": "json_schema", "json_schema":
            {"name": "a_b-1", "strict": true, "schema": {"type": "object"}}})))
        .unwrap();
        assert_eq!(f.schema(), Some(json!({"type": "object"})));
        for (bad, says) in [
            (json!("json_object"), "must be an object"),
            (json!({}), "`type` is required"),
            (json!({"type": "xml"}), "`xml` is not supported"),
            (json!({"type": "json_schema"}), "must be an object with"),
            (
                json!({"type": "json_schema", "json_schema": {"schema": {}}}),
                "name is required",
            ),
            (
                json!({"type": "json_schema", "json_schema": {"name": "a b", "schema": {}}}),
                "1 to 64",
            ),
            (
                json!({"type": "json_schema", "json_schema": {"name": "a"}}),
                "schema is required",
            ),
            (
                json!({"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": 5}}}),
                "not a valid JSON Schema",
            ),
        ] {
            let e = response_format(Some(bad.clone())).unwrap_err();
            assert!(e.to_string().contains(says), "{bad}: {e}");
            assert_eq!(e.parts().2, "invalid_parameter");
        }
    }

    #[test]
    fn template_refs() {
        assert_eq!(
            template_ref("soc-triage").unwrap(),
            ("soc-triage".into(), None)
        );
        assert_eq!(template_ref("a.b@12").unwrap(), ("a.b".into(), Some(12)));
        assert!(template_ref("a@x").is_err());
        assert!(template_ref("").is_err());
        assert!(template_ref("a b").is_err());
        let c = template_call("template:t@2", None, Some(json!({"x": 1})))
            .unwrap()
            .unwrap();
        assert!(c.model_from_template && c.version == Some(2));
        let c = template_call("m", Some("t".into()), None).unwrap().unwrap();
        assert_eq!(c.variables, json!({}));
        assert!(!c.model_from_template);
        assert!(template_call("template:t", Some("t".into()), None).is_err());
        assert!(template_call("m", None, Some(json!({}))).is_err());
        assert!(template_call("m", Some("t".into()), Some(json!([1]))).is_err());
        assert_eq!(template_call("m", None, None).unwrap(), None);
    }

    proptest! {
        #[test]
        fn arbitrary_formats_never_panic(s in ".{0,40}", name in ".{0,70}") {
            let _ = response_format(Some(json!({"type": s, "json_schema": {"name": name, "schema": {"type": s}}})));
            let _ = template_ref(&s);
        }
    }
}
