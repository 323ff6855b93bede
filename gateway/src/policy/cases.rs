//! Policy test cases: a text, a stage and the expected decision, run by
//! `gatehouse policy test`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::evaluate::{evaluate, Redactor};
use super::raw::RawCase;
use super::rules::Policy;
use super::{Action, Stage};
use crate::config::locate::Segment;

/// One test case.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// Its name.
    pub name: String,
    /// The stage it runs in.
    pub stage: Stage,
    /// The text evaluated.
    pub text: String,
    /// Expected strongest action; `None` is allow.
    pub action: Option<Action>,
    /// Expected text after redaction.
    pub redacted: Option<String>,
    /// Expected set of rule ids that fire.
    pub rules: Option<BTreeSet<String>>,
}

/// A `policies/tests/*.yaml` file.
#[derive(Debug, Clone)]
pub struct CaseFile {
    /// The file.
    pub file: PathBuf,
    /// The policy id its cases run against.
    pub policy: String,
    /// Its cases.
    pub cases: Vec<Case>,
}

impl Case {
    pub(crate) fn from_raw(c: RawCase, at: Vec<Segment>) -> Result<Self, (Vec<Segment>, String)> {
        let key = |k: &str| {
            let mut p = at.clone();
            p.push(Segment::Key(k.into()));
            p
        };
        let stage = Stage::parse(&c.stage).ok_or_else(|| {
            (
                key("stage"),
                format!(
                    "unknown stage `{}`; expected input, output or tool_arguments",
                    c.stage
                ),
            )
        })?;
        let action = match c.expect.action.as_str() {
            "allow" => None,
            a => Some(Action::parse(a).ok_or_else(|| {
                (
                    key("expect"),
                    format!("unknown action `{a}`; expected allow, log, warn, redact or block"),
                )
            })?),
        };
        Ok(Case {
            name: c.name,
            stage,
            text: c.text,
            action,
            redacted: c.expect.redacted,
            rules: c.expect.rules.map(|r| r.into_iter().collect()),
        })
    }

    /// Runs the case; `Err` says what differed.
    pub fn run(&self, policy: &Policy) -> Result<(), String> {
        let ev = evaluate(
            policy,
            self.stage,
            None,
            &self.text,
            &mut Redactor::default(),
        );
        let mut problems = Vec::new();
        let got = ev.action();
        if got != self.action {
            problems.push(format!(
                "action: expected {}, got {}",
                action_name(self.action),
                action_name(got)
            ));
        }
        if let Some(want) = &self.redacted {
            if *want != ev.redacted {
                problems.push(format!(
                    "redacted: expected {want:?}, got {:?}",
                    ev.redacted
                ));
            }
        }
        if let Some(want) = &self.rules {
            let fired: BTreeSet<String> = ev.decisions.iter().map(|d| d.rule.to_string()).collect();
            if *want != fired {
                problems.push(format!("rules: expected {want:?}, got {fired:?}"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// `allow` for `None`, else the action's name.
pub fn action_name(a: Option<Action>) -> &'static str {
    a.map(Action::as_str).unwrap_or("allow")
}
