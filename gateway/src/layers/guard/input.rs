//! The input guard: limits, then every message's content through the input rules, before
//! the model sees it. Redactions replace the content in place; a block refuses the request.

use std::sync::Arc;

use crate::domain::ChatRequest;
use crate::error::ApiError;
use crate::layers::step::{Next, Step};
use crate::layers::ChatStream;
use crate::metrics::Metrics;
use crate::policy::evaluate::evaluate;
use crate::policy::rules::{estimate_tokens, Detector};
use crate::policy::{Action, Blocked, Decision, Policy, Stage};

/// See the module docs.
pub struct InputGuard {
    metrics: Arc<Metrics>,
}

impl InputGuard {
    /// Counts decisions in `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl Step for InputGuard {
    const NAME: &'static str = "guard.input";

    async fn call(&self, mut req: ChatRequest, next: Next) -> Result<ChatStream, ApiError> {
        if let Some(policy) = req.guard.policy().cloned() {
            let uses_model = policy.stage(Stage::Input).uses_model;
            let (decisions, blocked) = off_runtime(uses_model, || guard_input(&policy, &mut req));
            self.metrics.policy.record(&decisions);
            req.guard.record(decisions);
            if let Some(b) = blocked {
                return Err(ApiError::PolicyViolation(Box::new(b)));
            }
            if policy.audit.prompts {
                let prompt = req
                    .messages
                    .iter()
                    .map(|m| crate::audit::record::MessageRecord {
                        role: m.role.as_str().into(),
                        content: m.content.clone(),
                    })
                    .collect();
                req.trail.update(|t| t.audit_prompt = Some(prompt));
            }
        }
        next.run(req).await
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

/// Runs `stage`'s rules of the request's policy over one text outside the message list
/// (tool arguments, tool results) and records the decisions: the text as it may go on
/// (redacted), or the block.
pub fn guard_text(
    req: &ChatRequest,
    metrics: &Metrics,
    stage: Stage,
    message: Option<usize>,
    text: String,
) -> Result<String, ApiError> {
    let Some(policy) = req.guard.policy().cloned() else {
        return Ok(text);
    };
    let redactor = req.guard.redactor();
    let ev = off_runtime(policy.stage(stage).uses_model, || {
        let mut r = redactor.lock().unwrap_or_else(|e| e.into_inner());
        evaluate(&policy, stage, message, &text, &mut r)
    });
    metrics.policy.record(&ev.decisions);
    req.guard.record(ev.decisions);
    match ev.blocked {
        Some(b) => Err(ApiError::PolicyViolation(Box::new(b))),
        None => Ok(ev.redacted),
    }
}

/// Runs `f`, which runs a model for milliseconds when `uses_model`, without stalling the
/// other tasks of a multi-threaded runtime: the worker hands them to another thread first.
fn off_runtime<T>(uses_model: bool, f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let multi_threaded =
        Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
    if uses_model && multi_threaded {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::domain::{ChatMessage, Role, Sampling};

    fn request(messages: &[&str], max_tokens: Option<usize>) -> ChatRequest {
        ChatRequest {
            request_id: "t".into(),
            model: "m".into(),
            messages: messages
                .iter()
                .map(|m| ChatMessage {
                    role: Role::User,
                    content: m.to_string(),
                })
                .collect(),
            sampling: Sampling {
                max_tokens,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn policy(rules: &str) -> Policy {
        crate::policy::load::parse(Path::new("t.yaml"), &format!("id: t\nrules:\n{rules}"))
            .unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn limits(action: &str) -> Policy {
        policy(&format!(
            "  - id: lim\n    kind: limits\n    action: {action}\n    max_messages: 2\n    max_input_chars: 20\n    max_input_tokens: 6\n    max_output_tokens: 50\n"
        ))
    }

    #[test]
    fn within_limits_passes_and_caps_unset_max_tokens() {
        let p = limits("block");
        let mut r = request(&["hello there"], None);
        let (d, b) = guard_input(&p, &mut r);
        assert!(d.is_empty() && b.is_none());
        assert_eq!(r.sampling.max_tokens, Some(50));
        let mut r = request(&["hi"], Some(10));
        guard_input(&p, &mut r);
        assert_eq!(r.sampling.max_tokens, Some(10), "a smaller request stays");
    }

    #[test]
    fn each_limit_blocks_with_a_detail() {
        let p = limits("block");
        for (msgs, max_tokens, entity, detail) in [
            (vec!["a", "b", "c"], None, "max_messages", "3 > 2"),
            (
                vec!["this message is too long"],
                None,
                "max_input_chars",
                "24 > 20",
            ),
            (vec!["1,2,3,4,5,6,7"], None, "max_input_tokens", "13 > 6"),
            (vec!["hi"], Some(51), "max_output_tokens", "51 > 50"),
        ] {
            let mut r = request(&msgs, max_tokens);
            let (_, b) = guard_input(&p, &mut r);
            let b = b.unwrap_or_else(|| panic!("{entity} should block"));
            assert!(b.is_limit);
            assert_eq!(b.decision.entity, entity);
            assert_eq!(b.decision.detail.as_deref(), Some(detail));
        }
    }

    #[test]
    fn warn_caps_max_tokens_instead_of_refusing() {
        let p = limits("warn");
        let mut r = request(&["hi"], Some(500));
        let (d, b) = guard_input(&p, &mut r);
        assert!(b.is_none());
        assert_eq!(r.sampling.max_tokens, Some(50));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].action, Action::Warn);
    }

    #[test]
    fn every_message_is_checked_and_redacted_with_shared_placeholders() {
        let p = policy("  - id: pii\n    kind: pii\n    entities: [email]\n    action: redact\n");
        let mut r = request(&["from a@b.co", "reply to a@b.co or c@d.co"], None);
        r.messages[0].role = Role::System;
        let (d, b) = guard_input(&p, &mut r);
        assert!(b.is_none());
        assert_eq!(r.messages[0].content, "from [EMAIL_1]");
        assert_eq!(r.messages[1].content, "reply to [EMAIL_1] or [EMAIL_2]");
        assert_eq!(
            d.iter().map(|d| d.message).collect::<Vec<_>>(),
            vec![Some(0), Some(1), Some(1)]
        );
    }

    #[test]
    fn a_block_stops_before_the_model_and_keeps_the_decisions() {
        let p = policy("  - id: s\n    kind: secrets\n    action: block\n");
        let mut r = request(&["fine", "key AKIAIOSFODNN7EXAMPLE"], None);
        let (d, b) = guard_input(&p, &mut r);
        let b = b.expect("blocked");
        assert!(!b.is_limit);
        assert_eq!(b.decision.message, Some(1));
        assert_eq!(d.len(), 1);
    }

    /// Model work leaves a multi-threaded runtime's worker (`block_in_place`) and runs in
    /// place elsewhere: on a current-thread runtime and outside any runtime.
    #[test]
    fn off_runtime_runs_everywhere() {
        assert_eq!(off_runtime(true, || 1), 1);
        let multi = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .expect("runtime");
        assert_eq!(
            multi
                .block_on(async { tokio::spawn(async { off_runtime(true, || 2) }).await })
                .expect("task"),
            2
        );
        let single = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        assert_eq!(single.block_on(async { off_runtime(true, || 3) }), 3);
    }
}
