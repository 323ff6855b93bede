//! Structured output: a `response_format` becomes a grammar the engine decodes under, and
//! the final text, as the client receives it, is validated against the schema. An answer
//! that does not validate (cut at `max_tokens`, or from an upstream that ignored the format)
//! ends in a `structured_output_invalid` error, never in a success.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};

use crate::domain::{ChatEvent, ChatRequest, Constraint, FinishReason, ResponseFormat};
use crate::error::ApiError;
use crate::layers::step::{Next, Step};
use crate::layers::ChatStream;
use crate::metrics::Metrics;

/// See the module docs.
pub struct StructuredOutput {
    metrics: Arc<Metrics>,
}

impl StructuredOutput {
    /// Counts valid and invalid answers in `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl Step for StructuredOutput {
    const NAME: &'static str = "structured_output";

    async fn call(&self, mut req: ChatRequest, next: Next) -> Result<ChatStream, ApiError> {
        let Some(schema) = req.response_format.schema() else {
            return next.run(req).await;
        };
        let validator =
            Arc::new(
                jsonschema::validator_for(&schema).map_err(|e| ApiError::InvalidRequest {
                    param: "response_format",
                    message: format!("response_format: not a valid JSON Schema: {e}"),
                })?,
            );
        // A tool layer may already constrain the answer to a tool call.
        if req.constraint.is_none() {
            req.constraint = Constraint::JsonSchema(schema);
        }
        let format = match req.response_format {
            ResponseFormat::JsonObject => "json_object",
            _ => "json_schema",
        };
        let counter = self.metrics.shaping.structured.clone();
        let stream = next.run(req).await?;
        Ok(Validated {
            inner: Some(stream),
            validator,
            text: String::new(),
            count: Box::new(move |valid| {
                let result = if valid { "valid" } else { "invalid" };
                counter.with_label_values(&[format, result]).inc();
            }),
        }
        .boxed())
    }
}

/// Checks `text` as a whole: JSON, and valid under the schema.
pub fn check(
    validator: &jsonschema::Validator,
    text: &str,
    finish: FinishReason,
) -> Result<serde_json::Value, String> {
    let value: serde_json::Value = match serde_json::from_str(text.trim()) {
        Ok(v) => v,
        Err(e) if finish == FinishReason::Length => {
            return Err(format!(
                "the answer was cut at max_tokens before its JSON was complete ({e}); \
                 raise max_tokens"
            ))
        }
        Err(e) => return Err(format!("the answer is not JSON: {e}")),
    };
    if let Some(e) = schema_error(validator, &value) {
        return Err(format!("the answer does not match the schema {e}"));
    }
    Ok(value)
}

/// The first way `value` fails `validator`, as `at /path: message`.
pub fn schema_error(
    validator: &jsonschema::Validator,
    value: &serde_json::Value,
) -> Option<String> {
    let e = validator.iter_errors(value).next()?;
    let at = e.instance_path().to_string();
    Some(format!("at {}: {e}", if at.is_empty() { "/" } else { &at }))
}

/// Passes the answer through and checks it when it ends.
struct Validated {
    inner: Option<ChatStream>,
    validator: Arc<jsonschema::Validator>,
    text: String,
    /// Told whether the answer was valid.
    count: Box<dyn Fn(bool) + Send>,
}

impl Stream for Validated {
    type Item = Result<ChatEvent, ApiError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(ChatEvent::Delta(t)))) => {
                this.text.push_str(&t);
                Poll::Ready(Some(Ok(ChatEvent::Delta(t))))
            }
            Poll::Ready(Some(Ok(ChatEvent::Done {
                finish_reason,
                usage,
            }))) => {
                this.inner = None;
                let checked = check(&this.validator, &this.text, finish_reason);
                (this.count)(checked.is_ok());
                Poll::Ready(Some(match checked {
                    Ok(_) => Ok(ChatEvent::Done {
                        finish_reason,
                        usage,
                    }),
                    Err(message) => Err(ApiError::StructuredOutput(message)),
                }))
            }
            Poll::Ready(other) => {
                if !matches!(other, Some(Ok(_))) {
                    this.inner = None;
                }
                Poll::Ready(other)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn validator() -> jsonschema::Validator {
        jsonschema::validator_for(&json!({
            "type": "object",
            "required": ["a"],
            "properties": {"a": {"type": "integer"}},
        }))
        .unwrap()
    }

    #[test]
    fn checks_json_and_schema() {
        let v = validator();
        assert_eq!(
            check(&v, " {\"a\": 1}\n", FinishReason::Stop).unwrap(),
            json!({"a": 1})
        );
        let e = check(&v, "{\"a\": \"x\"}", FinishReason::Stop).unwrap_err();
        assert!(e.contains("at /a"), "{e}");
        let e = check(&v, "{}", FinishReason::Stop).unwrap_err();
        assert!(e.contains("at /"), "{e}");
        let e = check(&v, "{\"a\": 1", FinishReason::Length).unwrap_err();
        assert!(e.contains("max_tokens"), "{e}");
        let e = check(&v, "```json\n{\"a\": 1}\n```", FinishReason::Stop).unwrap_err();
        assert!(e.contains("not JSON"), "{e}");
    }

    async fn run(events: Vec<ChatEvent>) -> Vec<Result<ChatEvent, String>> {
        let inner = futures::stream::iter(events.into_iter().map(Ok)).boxed();
        Validated {
            inner: Some(inner),
            validator: Arc::new(validator()),
            text: String::new(),
            count: Box::new(|_| {}),
        }
        .map(|r| r.map_err(|e| e.body()["error"]["code"].as_str().unwrap().to_string()))
        .collect()
        .await
    }

    #[tokio::test]
    async fn a_stream_ends_in_done_only_when_valid() {
        let done = ChatEvent::Done {
            finish_reason: FinishReason::Stop,
            usage: Default::default(),
        };
        let ok = run(vec![
            ChatEvent::Delta("{\"a\"".into()),
            ChatEvent::Delta(":2}".into()),
            done.clone(),
        ])
        .await;
        assert_eq!(ok.len(), 3);
        assert_eq!(ok[2], Ok(done.clone()));
        let bad = run(vec![ChatEvent::Delta("{\"b\":2}".into()), done]).await;
        assert_eq!(bad[1], Err("structured_output_invalid".into()));
    }
}
