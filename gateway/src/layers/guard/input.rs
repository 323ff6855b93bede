//! The input guard: limits, then every message's content through the input rules, before
//! the model sees it. Redactions replace the content in place; a block refuses the request.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{BoxFuture, FutureExt};

use crate::domain::{ChatRequest, ChatStream};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::policy::evaluate::evaluate;
use crate::policy::rules::{estimate_tokens, Detector};
use crate::policy::{Action, Blocked, Decision, Policy, Stage};

/// Layer of [`InputGuard`].
#[derive(Clone)]
pub struct InputGuardLayer {
    metrics: Arc<Metrics>,
}

impl InputGuardLayer {
    /// Counts decisions in `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for InputGuardLayer {
    type Service = InputGuard<S>;

    fn layer(&self, inner: S) -> InputGuard<S> {
        InputGuard {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// See the module docs.
#[derive(Clone)]
pub struct InputGuard<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S> tower::Service<ChatRequest> for InputGuard<S>
where
    S: tower::Service<ChatRequest, Response = ChatStream, Error = ApiError>,
    S::Future: Send + 'static,
{
    type Response = ChatStream;
    type Error = ApiError;
    type Future = BoxFuture<'static, Result<ChatStream, ApiError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ApiError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: ChatRequest) -> Self::Future {
        if let Some(policy) = req.guard.policy().cloned() {
            let (decisions, blocked) = guard_input(&policy, &mut req);
            self.metrics.policy.record(&decisions);
            req.guard.record(decisions);
            if let Some(b) = blocked {
                return futures::future::ready(Err(ApiError::PolicyViolation(Box::new(b)))).boxed();
            }
        }
        self.inner.call(req).boxed()
    }
}

/// Checks limits and message contents; redacts `req` in place. Returns every decision and
/// the block, if one fired (checking stops there).
pub fn guard_input(policy: &Policy, req: &mut ChatRequest) -> (Vec<Decision>, Option<Blocked>) {
    let mut decisions = Vec::new();
    for &ri in &policy.stage(Stage::Input).limits {
        if let Some(b) = check_limits(policy, ri, req, &mut decisions) {
            return (decisions, Some(b));
        }
    }
    if policy.stage(Stage::Input).scanning.is_empty() {
        return (decisions, None);
    }
    let redactor = req.guard.redactor();
    let mut redactor = redactor.lock().unwrap_or_else(|e| e.into_inner());
    for (i, m) in req.messages.iter_mut().enumerate() {
        let ev = evaluate(policy, Stage::Input, Some(i), &m.content, &mut redactor);
        decisions.extend(ev.decisions);
        if ev.blocked.is_some() {
            return (decisions, ev.blocked);
        }
        m.content = ev.redacted;
    }
    (decisions, None)
}

/// One `limits` rule. `max_output_tokens` caps `max_tokens`: a request asking for more is
/// refused under `block` and capped otherwise; a request that doesn't say is capped.
fn check_limits(
    policy: &Policy,
    ri: usize,
    req: &mut ChatRequest,
    decisions: &mut Vec<Decision>,
) -> Option<Blocked> {
    let rule = &policy.rules[ri];
    let Detector::Limits(l) = &rule.detector else {
        return None;
    };
    let chars: usize = req.messages.iter().map(|m| m.content.chars().count()).sum();
    let mut exceeded: Vec<(&str, usize, usize)> = Vec::new();
    if let Some(max) = l.max_messages {
        if req.messages.len() > max {
            exceeded.push(("max_messages", req.messages.len(), max));
        }
    }
    if let Some(max) = l.max_input_chars {
        if chars > max {
            exceeded.push(("max_input_chars", chars, max));
        }
    }
    if let Some(max) = l.max_input_tokens {
        let tokens: usize = req
            .messages
            .iter()
            .map(|m| estimate_tokens(&m.content))
            .sum();
        if tokens > max {
            exceeded.push(("max_input_tokens", tokens, max));
        }
    }
    if let Some(max) = l.max_output_tokens {
        match req.sampling.max_tokens {
            Some(n) if n > max => {
                exceeded.push(("max_output_tokens", n, max));
                if rule.action != Action::Block {
                    req.sampling.max_tokens = Some(max);
                }
            }
            Some(_) => {}
            None => req.sampling.max_tokens = Some(max),
        }
    }
    let mut blocked = None;
    for (entity, got, max) in exceeded {
        let d = Decision {
            policy: policy.id.clone(),
            rule: rule.id.clone(),
            kind: rule.kind,
            stage: Stage::Input,
            action: rule.action,
            severity: rule.severity,
            entity: entity.to_string(),
            message: None,
            start: 0,
            end: 0,
            score: None,
            placeholder: None,
            detail: Some(format!("{got} > {max}")),
        };
        if rule.action == Action::Block && blocked.is_none() {
            blocked = Some(Blocked {
                decision: d.clone(),
                is_limit: true,
            });
        }
        decisions.push(d);
    }
    blocked
}
