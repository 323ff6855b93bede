//! Turns hits into decisions and redacted text.
//!
//! Redaction replaces spans with typed placeholders (`[EMAIL_1]`); the same value gets the
//! same placeholder for the whole request, input and output alike. Overlapping redactions
//! merge into one, so that no tail of a longer match stays visible.

use std::collections::HashMap;

use super::rules::{Hit, Policy};
use super::{Action, Blocked, Decision, RuleKind, Stage};

/// Placeholders of one request.
#[derive(Debug, Default)]
pub struct Redactor {
    by_value: HashMap<(String, String), String>,
    counts: HashMap<String, usize>,
}

impl Redactor {
    /// The placeholder of `value` under `label`, allocating the next number on first use.
    pub fn placeholder(&mut self, label: &str, value: &str) -> String {
        let key = (label.to_string(), value.to_string());
        if let Some(p) = self.by_value.get(&key) {
            return p.clone();
        }
        let n = self.counts.entry(label.to_string()).or_insert(0);
        *n += 1;
        let p = format!("[{label}_{n}]");
        self.by_value.insert(key, p.clone());
        p
    }
}

/// The outcome of evaluating one complete text.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Every rule that fired, in text order.
    pub decisions: Vec<Decision>,
    /// The text with redactions applied.
    pub redacted: String,
    /// The first `block` decision, if any.
    pub blocked: Option<Blocked>,
}

impl Evaluation {
    /// The strongest action taken (`None`: allowed untouched).
    pub fn action(&self) -> Option<Action> {
        super::strongest(&self.decisions)
    }
}

/// Applies final hits to a text in order, possibly in several calls over growing prefixes
/// (streams): the result is the same however the text was split.
#[derive(Debug, Default)]
pub struct Applier {
    /// Bytes of the text written to the output so far.
    written: usize,
    /// End of the redaction in progress, if any.
    covered: usize,
    /// Placeholder of the redaction in progress.
    current: Option<usize>,
}

impl Applier {
    /// Bytes of the text consumed so far.
    pub fn written(&self) -> usize {
        self.written
    }

    /// Applies `hits` (sorted, each ending by `upto`, none starting before the previous
    /// `upto`) and writes `text[written..upto]`, redacted, to `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &mut self,
        policy: &Policy,
        stage: Stage,
        message: Option<usize>,
        text: &str,
        hits: &[Hit],
        upto: usize,
        redactor: &mut Redactor,
        out: &mut String,
        decisions: &mut Vec<Decision>,
    ) -> Option<Blocked> {
        let mut blocked = None;
        for h in hits {
            let rule = &policy.rules[h.rule];
            let mut d = decision(policy, stage, message, h);
            match rule.action {
                Action::Redact => {
                    if h.start >= self.covered {
                        out.push_str(&text[self.written..h.start]);
                        let p = redactor.placeholder(&h.label, &text[h.start..h.end]);
                        out.push_str(&p);
                        d.placeholder = Some(p);
                        self.current = Some(decisions.len());
                        self.covered = h.end;
                        self.written = h.end;
                    } else {
                        // Inside (or overlapping) the previous redaction: widen it.
                        if h.end > self.covered {
                            self.covered = h.end;
                            self.written = h.end;
                        }
                        if let Some(i) = self.current {
                            d.placeholder = decisions[i].placeholder.clone();
                        }
                    }
                }
                Action::Block => {
                    if blocked.is_none() {
                        blocked = Some(Blocked {
                            decision: d.clone(),
                            is_limit: rule.kind == RuleKind::Limits,
                        });
                    }
                }
                Action::Warn | Action::Log => {}
            }
            decisions.push(d);
        }
        if upto > self.written {
            out.push_str(&text[self.written..upto]);
            self.written = upto;
        }
        blocked
    }
}

/// A decision for `hit` without placeholder.
pub fn decision(policy: &Policy, stage: Stage, message: Option<usize>, h: &Hit) -> Decision {
    let rule = &policy.rules[h.rule];
    Decision {
        policy: policy.id.clone(),
        rule: rule.id.clone(),
        kind: rule.kind,
        stage,
        action: rule.action,
        severity: rule.severity,
        entity: h.entity.clone(),
        message,
        start: h.start,
        end: h.end,
        score: h.score,
        placeholder: None,
        detail: h.detail.clone(),
    }
}

/// Evaluates a complete `text` in `stage`: scanning rules, then (except for input) the
/// JSON Schema rules.
pub fn evaluate(
    policy: &Policy,
    stage: Stage,
    message: Option<usize>,
    text: &str,
    redactor: &mut Redactor,
) -> Evaluation {
    let mut hits = policy.scan(stage, text);
    if stage != Stage::Input {
        hits.extend(policy.check_schemas(stage, text));
    }
    let mut redacted = String::with_capacity(text.len());
    let mut decisions = Vec::new();
    let blocked = Applier::default().apply(
        policy,
        stage,
        message,
        text,
        &hits,
        text.len(),
        redactor,
        &mut redacted,
        &mut decisions,
    );
    Evaluation {
        decisions,
        redacted,
        blocked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_value_same_placeholder() {
        let mut r = Redactor::default();
        assert_eq!(r.placeholder("EMAIL", "a@b.co"), "[EMAIL_1]");
        assert_eq!(r.placeholder("EMAIL", "c@d.co"), "[EMAIL_2]");
        assert_eq!(r.placeholder("PHONE", "+14155550100"), "[PHONE_1]");
        assert_eq!(r.placeholder("EMAIL", "a@b.co"), "[EMAIL_1]");
    }
}
