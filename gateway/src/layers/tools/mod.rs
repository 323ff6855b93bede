//! The tool loop. Tools are described to the model in a system message; a required call is
//! decoded under a grammar; the answer is read as a call or as text (`tools::prompt`). A
//! call's arguments are validated against the tool's schema and pass the policy's
//! `tool_arguments` stage before anything else sees them. Calls to server-side tools run
//! here, their results pass the input rules and go back to the model, up to `max_steps`
//! times; calls to the client's tools end the answer with `finish_reason: tool_calls`.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use serde_json::Value;

use crate::domain::{
    ChatEvent, ChatMessage, ChatRequest, FinishReason, ResponseFormat, Role, ToolCall, ToolChoice,
    ToolDef, ToolRun, Usage,
};
use crate::error::ApiError;
use crate::layers::guard::guard_text;
use crate::layers::step::{Next, Step};
use crate::layers::structured::schema_error;
use crate::layers::ChatStream;
use crate::metrics::Metrics;
use crate::policy::Stage;
use crate::tools::prompt::{self, call_text, parse_call, result_text};
use crate::tools::{ServerTools, ToolError};

/// See the module docs.
pub struct ToolLoop {
    server: Arc<ServerTools>,
    metrics: Arc<Metrics>,
}

impl ToolLoop {
    /// Runs `server` tools; counts policy decisions in `metrics`.
    pub fn new(server: Arc<ServerTools>, metrics: Arc<Metrics>) -> Self {
        Self { server, metrics }
    }

    /// Fills in server-side tools; refuses what cannot be served.
    fn resolve(&self, req: &mut ChatRequest) -> Result<(), ToolError> {
        for t in &mut req.tools {
            if t.server {
                let s = self
                    .server
                    .get(&t.name)
                    .ok_or_else(|| ToolError::UnknownServerTool {
                        name: t.name.clone(),
                        configured: self.server.names(),
                    })?;
                *t = s.def();
            }
        }
        if req.tool_choice == ToolChoice::Auto && req.response_format != ResponseFormat::Text {
            return Err(ToolError::Unsupported(
                "response_format with tools needs tool_choice `none` or a forced call \
                 (`required` or a function): with `auto` the answer could be either"
                    .into(),
            ));
        }
        Ok(())
    }
}

impl Step for ToolLoop {
    const NAME: &'static str = "tools";

    async fn call(&self, mut req: ChatRequest, next: Next) -> Result<ChatStream, ApiError> {
        if req.tools.is_empty() {
            return next.run(req).await;
        }
        self.resolve(&mut req).map_err(ApiError::Tool)?;
        if req.tool_choice == ToolChoice::None {
            req.tools.clear();
            return next.run(req).await;
        }
        let run = Run {
            server: self.server.clone(),
            metrics: self.metrics.clone(),
            tools: std::mem::take(&mut req.tools),
        };
        run.run(next, req).await
    }
}

/// One request's loop.
struct Run {
    server: Arc<ServerTools>,
    metrics: Arc<Metrics>,
    tools: Vec<ToolDef>,
}

/// What one step's answer turned out to be.
enum Answer {
    /// Text, to stream to the client.
    Text(ChatStream),
    /// A call, with the step's usage.
    Call(String, Value, Usage),
}

impl Run {
    async fn run(self, next: Next, mut req: ChatRequest) -> Result<ChatStream, ApiError> {
        let mut earlier = Usage::default();
        let mut choice = req.tool_choice.clone();
        let mut steps = 0;
        loop {
            if steps >= self.server.max_steps {
                // Out of steps: the model answers without tools.
                choice = ToolChoice::None;
            }
            let step = self.step(&req, &choice, steps > 0);
            let stream = next.clone().run(step).await?;
            let (name, args, usage) = match self.read(stream, &choice).await? {
                Answer::Text(s) => return Ok(with_usage(s, earlier)),
                Answer::Call(name, args, usage) => (name, args, usage),
            };
            earlier = add(earlier, usage);
            let server = self
                .tools
                .iter()
                .find(|t| t.name == name)
                .is_some_and(|d| d.server);
            let (args_text, args, invalid) = match self.check_arguments(&req, &name, args.clone()) {
                Ok((text, args)) => (text, args, None),
                // Bad arguments to a server-side tool go back to the model as an error
                // result, like a failed run: it may correct itself within max_steps.
                Err(ApiError::Tool(ToolError::InvalidCall(m))) if server => {
                    (args.to_string(), args, Some(m))
                }
                Err(e) => return Err(e),
            };
            if !server {
                let call = ToolCall {
                    id: prompt::call_id(),
                    name,
                    arguments: args_text,
                };
                let events = vec![
                    Ok(ChatEvent::ToolCall(call)),
                    Ok(ChatEvent::Done {
                        finish_reason: FinishReason::ToolCalls,
                        usage: earlier,
                    }),
                ];
                return Ok(futures::stream::iter(events).boxed());
            }
            self.execute(&mut req, &name, args, args_text, invalid)
                .await?;
            steps += 1;
            // A forced call is satisfied; the model now sees the result and decides.
            choice = ToolChoice::Auto;
        }
    }

    /// The request of one step: tools described, and a grammar when a call is forced.
    /// `after_runs`: server-side tools ran in earlier steps.
    fn step(&self, req: &ChatRequest, choice: &ToolChoice, after_runs: bool) -> ChatRequest {
        let mut step = req.clone();
        let text = match choice {
            // Small models copy the call lines they see above; out of steps, say plainly
            // that the answer is text now.
            ToolChoice::None if after_runs => prompt::ANSWER_NOW.to_string(),
            ToolChoice::None => return step,
            _ => prompt::system_text(&self.tools, choice),
        };
        match step.messages.first_mut() {
            Some(m) if m.role == Role::System => {
                m.content = format!("{}\n\n{text}", m.content);
            }
            _ => step.messages.insert(
                0,
                ChatMessage {
                    role: Role::System,
                    content: text,
                },
            ),
        }
        step.constraint = prompt::constraint(&self.tools, choice);
        if !step.constraint.is_none() {
            // The answer is a call, not the response format.
            step.response_format = ResponseFormat::Text;
        }
        step
    }

    /// Reads a step's answer: text streams on as soon as it is clearly not a call; what
    /// may be a call is read whole and parsed.
    async fn read(&self, mut stream: ChatStream, choice: &ToolChoice) -> Result<Answer, ApiError> {
        let forced = matches!(choice, ToolChoice::Required | ToolChoice::Named(_));
        if *choice == ToolChoice::None {
            return Ok(Answer::Text(stream));
        }
        let mut text = String::new();
        let mut head = Vec::new();
        let mut done = None;
        while let Some(ev) = stream.next().await {
            match ev? {
                ChatEvent::Delta(t) => {
                    text.push_str(&t);
                    head.push(Ok(ChatEvent::Delta(t)));
                    let first = text.trim_start().chars().next();
                    if !forced && first.is_some_and(|c| c != '{' && c != '`') {
                        let rest = futures::stream::iter(head).chain(stream);
                        return Ok(Answer::Text(rest.boxed()));
                    }
                }
                ChatEvent::Done {
                    finish_reason,
                    usage,
                } => {
                    done = Some((finish_reason, usage));
                    break;
                }
                call @ ChatEvent::ToolCall(_) => head.push(Ok(call)),
            }
        }
        let Some((finish_reason, usage)) = done else {
            return Err(ApiError::Tool(ToolError::InvalidCall(
                "the answer ended without a finish event".into(),
            )));
        };
        if let Some((name, args)) = parse_call(&text, &self.tools) {
            return Ok(Answer::Call(name, args, usage));
        }
        if forced {
            let why = if finish_reason == FinishReason::Length {
                "the call was cut at max_tokens; raise max_tokens"
            } else {
                "the answer is not a call to a declared tool"
            };
            return Err(ApiError::Tool(ToolError::InvalidCall(why.into())));
        }
        head.push(Ok(ChatEvent::Done {
            finish_reason,
            usage,
        }));
        Ok(Answer::Text(futures::stream::iter(head).boxed()))
    }

    /// Validates a call's arguments against the tool's schema, then runs the policy's
    /// `tool_arguments` stage: the arguments as they may leave, as text and as JSON.
    fn check_arguments(
        &self,
        req: &ChatRequest,
        name: &str,
        args: Value,
    ) -> Result<(String, Value), ApiError> {
        let invalid = |m: String| ApiError::Tool(ToolError::InvalidCall(m));
        let def = self
            .tools
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| invalid(format!("`{name}` is not a declared tool")))?;
        let validator = jsonschema::validator_for(&def.parameters)
            .map_err(|e| invalid(format!("the schema of `{name}` does not compile: {e}")))?;
        if let Some(e) = schema_error(&validator, &args) {
            return Err(invalid(format!(
                "arguments of `{name}` do not match its schema {e}"
            )));
        }
        let text = guard_text(
            req,
            &self.metrics,
            Stage::ToolArguments,
            None,
            args.to_string(),
        )?;
        let args = serde_json::from_str(&text).map_err(|e| {
            invalid(format!(
                "redacting the arguments of `{name}` left them invalid JSON: {e}"
            ))
        })?;
        Ok((text, args))
    }

    /// Runs a server-side tool (unless its arguments were `invalid`) and appends the call
    /// and its result (through the input rules) to the conversation.
    async fn execute(
        &self,
        req: &mut ChatRequest,
        name: &str,
        args: Value,
        args_text: String,
        invalid: Option<String>,
    ) -> Result<(), ApiError> {
        let tool = self.server.get(name).ok_or_else(|| {
            ApiError::Tool(ToolError::InvalidCall(format!(
                "`{name}` is not a server-side tool"
            )))
        })?;
        let started = Instant::now();
        let (status, result) = match invalid {
            Some(why) => ("invalid_arguments", format!("error: {why}")),
            None => match tokio::time::timeout(self.server.step_timeout, tool.run(&args)).await {
                Ok(Ok(r)) => ("ok", r),
                Ok(Err(e)) => ("error", format!("error: {e}")),
                Err(_) => (
                    "timeout",
                    format!(
                        "error: the tool did not finish within {} ms",
                        self.server.step_timeout.as_millis()
                    ),
                ),
            },
        };
        let call_id = prompt::call_id();
        let index = req.messages.len() + 1;
        let message = guard_text(
            req,
            &self.metrics,
            Stage::Input,
            Some(index),
            result_text(name, &call_id, &result),
        )?;
        let run = ToolRun {
            name: name.to_string(),
            call_id,
            arguments: args_text,
            status: status.to_string(),
            result_bytes: result.len(),
            elapsed_ms: started.elapsed().as_millis() as u64,
        };
        tracing::info!(
            tool = name,
            status,
            elapsed_ms = run.elapsed_ms,
            "server-side tool ran"
        );
        self.metrics
            .shaping
            .tool_runs
            .with_label_values(&[name, status])
            .inc();
        req.trail.update(|t| t.tool_runs.push(run));
        req.messages.push(ChatMessage {
            role: Role::Assistant,
            content: call_text(name, &args),
        });
        req.messages.push(ChatMessage {
            role: Role::User,
            content: message,
        });
        Ok(())
    }
}

fn add(a: Usage, b: Usage) -> Usage {
    Usage {
        prompt_tokens: a.prompt_tokens + b.prompt_tokens,
        completion_tokens: a.completion_tokens + b.completion_tokens,
        speculative: b.speculative.or(a.speculative),
    }
}

/// Adds the earlier steps' tokens to the final answer's usage.
fn with_usage(stream: ChatStream, earlier: Usage) -> ChatStream {
    if earlier == Usage::default() {
        return stream;
    }
    stream
        .map(move |ev| match ev {
            Ok(ChatEvent::Done {
                finish_reason,
                usage,
            }) => Ok(ChatEvent::Done {
                finish_reason,
                usage: add(earlier, usage),
            }),
            other => other,
        })
        .boxed()
}

#[cfg(test)]
mod tests;
