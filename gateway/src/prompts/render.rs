//! Rendering: variables are validated against the template's schema first, so a bad value
//! is reported by field name rather than as a rendering failure.

use serde_json::Value;

use super::{Template, TemplateError};
use crate::domain::{ChatMessage, ChatRequest, ResponseFormat, Role};

/// The messages a template produced.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rendered {
    /// The `system` block, if the template has one and it is not blank.
    pub system: Option<String>,
    /// The `user` block (or the whole body when there are no blocks), if not blank.
    pub user: Option<String>,
}

impl Template {
    /// Validates `variables`, then renders.
    pub fn render(&self, variables: &Value) -> Result<Rendered, TemplateError> {
        let errors: Vec<String> = self
            .validator
            .iter_errors(variables)
            .map(|e| {
                let field = e
                    .instance_path()
                    .to_string()
                    .trim_start_matches('/')
                    .replace('/', ".");
                let field = if field.is_empty() {
                    "variables".to_string()
                } else {
                    format!("variables.{field}")
                };
                format!("{field}: {e}")
            })
            .collect();
        if !errors.is_empty() {
            return Err(TemplateError::Variables {
                template: self.id(),
                errors,
            });
        }
        let render_err = |e: minijinja::Error| TemplateError::Render {
            template: self.id(),
            message: match (e.line(), e.detail()) {
                (Some(l), Some(d)) => format!("{} (body line {l}): {d}", e.kind()),
                (_, Some(d)) => format!("{}: {d}", e.kind()),
                _ => e.to_string(),
            },
        };
        let tmpl = self.env.get_template("body").map_err(render_err)?;
        let blank = |s: String| {
            let t = s.trim();
            (!t.is_empty()).then(|| t.to_string())
        };
        // Rendering the whole body also checks the text outside the blocks.
        let mut captured = tmpl.render_captured(variables).map_err(render_err)?;
        if !self.blocks.system && !self.blocks.user {
            return Ok(Rendered {
                system: None,
                user: blank(captured.into_output()),
            });
        }
        let blocks = self.blocks;
        let (system, user) = captured
            .with_state_mut(|state| {
                let mut block =
                    |name: &str, present: bool| -> Result<Option<String>, minijinja::Error> {
                        if !present {
                            return Ok(None);
                        }
                        Ok(blank(state.render_block(name)?))
                    };
                Ok::<_, minijinja::Error>((
                    block("system", blocks.system)?,
                    block("user", blocks.user)?,
                ))
            })
            .map_err(render_err)?;
        Ok(Rendered { system, user })
    }

    /// Applies the template to `req`: its system message first, the client's messages,
    /// then its user message; its model when the client named the template as the model;
    /// its sampling where the client set none; its `response_format` unless the client
    /// gave one.
    pub fn apply(
        &self,
        req: &mut ChatRequest,
        variables: &Value,
        model_from_template: bool,
    ) -> Result<(), TemplateError> {
        let rendered = self.render(variables)?;
        if model_from_template {
            req.model = self.model.clone().ok_or_else(|| TemplateError::Unusable {
                template: self.id(),
                message: "the template names no model; send `model` and `template` instead of \
                          `model: template:...`"
                    .into(),
            })?;
        }
        let mut messages = Vec::with_capacity(req.messages.len() + 2);
        if let Some(system) = rendered.system {
            messages.push(ChatMessage {
                role: Role::System,
                content: system,
            });
        }
        messages.append(&mut req.messages);
        if let Some(user) = rendered.user {
            messages.push(ChatMessage {
                role: Role::User,
                content: user,
            });
        }
        if messages.is_empty() {
            return Err(TemplateError::Unusable {
                template: self.id(),
                message: "rendered no message and the request has none".into(),
            });
        }
        req.messages = messages;
        let (s, d) = (&mut req.sampling, &self.sampling);
        s.temperature = s.temperature.or(d.temperature);
        s.top_p = s.top_p.or(d.top_p);
        s.top_k = s.top_k.or(d.top_k);
        s.max_tokens = s.max_tokens.or(d.max_tokens);
        s.seed = s.seed.or(d.seed);
        if s.stop.is_empty() {
            s.stop = d.stop.clone();
        }
        if req.response_format == ResponseFormat::Text {
            req.response_format = self.response_format.clone();
        }
        let id = self.id();
        req.trail.update(|t| t.template = Some(id));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;

    fn template(body: &str) -> Template {
        let src = format!(
            "---\nname: t\nversion: 1\nmodel: small\nsampling: {{temperature: 0, max_tokens: 9}}\nvariables:\n  type: object\n  required: [record]\n  properties:\n    record: {{type: string, maxLength: 20}}\n    tags: {{type: array, items: {{type: string}}}}\n---\n{body}"
        );
        crate::prompts::parse(Path::new("t.yaml"), &src).unwrap()
    }

    #[test]
    fn renders_blocks_with_loops_and_filters() {
        let t = template(
            "{% block system %}\nTriage.\n{% endblock %}\n{% block user %}\nRecord: {{ record | upper }}\n{% for t in tags %}- {{ t }}\n{% endfor %}{% endblock %}\n",
        );
        let r = t
            .render(&json!({"record": "sshd fail", "tags": ["a", "b"]}))
            .unwrap();
        assert_eq!(r.system.as_deref(), Some("Triage."));
        assert_eq!(r.user.as_deref(), Some("Record: SSHD FAIL\n- a\n- b"));
    }

    #[test]
    fn a_body_without_blocks_is_the_user_message() {
        let r = template("Classify: {{ record }}\n")
            .render(&json!({"record": "x"}))
            .unwrap();
        assert_eq!(
            r,
            Rendered {
                system: None,
                user: Some("Classify: x".into())
            }
        );
    }

    #[test]
    fn bad_variables_name_the_field() {
        let t = template("{{ record }}");
        let e = t.render(&json!({"record": 5})).unwrap_err().to_string();
        assert!(
            e.contains("variables.record: 5 is not of type \"string\""),
            "{e}"
        );
        let e = t.render(&json!({})).unwrap_err().to_string();
        assert!(
            e.contains("variables: \"record\" is a required property"),
            "{e}"
        );
        let e = t
            .render(&json!({"record": "x".repeat(21)}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("variables.record: "), "{e}");
        let e = t
            .render(&json!({"record": "x", "tags": ["a", 1]}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("variables.tags.1: "), "{e}");
    }

    #[test]
    fn undefined_variables_are_errors_not_blanks() {
        let t = template("{{ record }} {{ missing }}");
        let e = t.render(&json!({"record": "x"})).unwrap_err();
        assert!(matches!(e, TemplateError::Render { .. }), "{e}");
        assert!(e.to_string().contains("undefined"), "{e}");
    }

    #[test]
    fn apply_wraps_the_client_messages_and_fills_defaults() {
        let t = template(
            "{% block system %}S{% endblock %}{% block user %}U {{ record }}{% endblock %}",
        );
        let mut req = ChatRequest {
            model: "template:t".into(),
            messages: vec![ChatMessage {
                role: Role::User,
                content: "C".into(),
            }],
            ..Default::default()
        };
        req.sampling.max_tokens = Some(3);
        t.apply(&mut req, &json!({"record": "r"}), true).unwrap();
        assert_eq!(req.model, "small");
        let texts: Vec<_> = req.messages.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(texts, ["S", "C", "U r"]);
        assert_eq!(req.sampling.max_tokens, Some(3), "the client's value wins");
        assert_eq!(req.sampling.temperature, Some(0.0));
        assert_eq!(req.trail.snapshot().template.as_deref(), Some("t@1"));
    }
}
