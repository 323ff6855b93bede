//! Compiled policies: each rule with its detector, each stage with its rules and one
//! `RegexSet` for all regex patterns of that stage.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use regex::{Regex, RegexSet};
use serde::Serialize;

use super::detect::injection::InjectionDetector;
use super::detect::keywords::KeywordMatcher;
use super::detect::pii::{PiiDetector, PiiEntity};
use super::detect::secrets::SecretsDetector;
use super::detect::semantic::Classifier;
use super::set::AppliesTo;
use super::{Action, Severity, Stage};

/// The kind of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// Regular expressions.
    Regex,
    /// Personal data.
    Pii,
    /// Credentials and keys.
    Secrets,
    /// Prompt-injection heuristics.
    PromptInjection,
    /// Keyword lists.
    DenyTopics,
    /// Size limits.
    Limits,
    /// JSON Schema validation of structured output.
    JsonSchema,
}

impl RuleKind {
    /// The name used in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Regex => "regex",
            RuleKind::Pii => "pii",
            RuleKind::Secrets => "secrets",
            RuleKind::PromptInjection => "prompt_injection",
            RuleKind::DenyTopics => "deny_topics",
            RuleKind::Limits => "limits",
            RuleKind::JsonSchema => "json_schema",
        }
    }
}

/// Size limits of a `limits` rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Limits {
    /// Characters over all messages.
    pub max_input_chars: Option<usize>,
    /// Estimated tokens over all messages ([`estimate_tokens`]).
    pub max_input_tokens: Option<usize>,
    /// Messages in the conversation.
    pub max_messages: Option<usize>,
    /// Tokens the model may generate; requests asking for more are refused (`block`) or
    /// capped (`warn`, `log`), requests that don't say are capped.
    pub max_output_tokens: Option<usize>,
}

/// What a rule runs.
pub enum Detector {
    /// Patterns; their indices in the stage's `RegexSet` are kept per stage.
    Regex {
        /// One compiled regex per pattern.
        patterns: Vec<Regex>,
        /// Entity name.
        entity: String,
        /// Longest match expected, in characters.
        max_match_chars: usize,
    },
    /// Personal data.
    Pii(PiiDetector),
    /// API keys, tokens and private keys (`secrets` detector).
    Secrets(SecretsDetector),
    /// Prompt injection: phrase heuristics, a semantic classifier, or both (either fires).
    Injection {
        /// The phrase detector, shared: it has no settings and compiles many patterns.
        detector: &'static InjectionDetector,
        /// Phrase score at or above which it fires.
        threshold: f32,
        /// Whether the phrase detector runs (`method: phrases | both`).
        phrases: bool,
        /// The classifier (`method: semantic | both`).
        semantic: Option<SemanticRule>,
    },
    /// Whole-word keyword list (`keywords` detector).
    Keywords {
        /// The matcher.
        matcher: KeywordMatcher,
        /// Entity name.
        entity: String,
        /// Longest keyword in characters.
        longest: usize,
    },
    /// Limits, checked on the request rather than on a text.
    Limits(Limits),
    /// A JSON Schema.
    JsonSchema(Box<jsonschema::Validator>),
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Detector::Regex { .. } => "Regex",
            Detector::Pii(_) => "Pii",
            Detector::Secrets(_) => "Secrets",
            Detector::Injection { .. } => "Injection",
            Detector::Keywords { .. } => "Keywords",
            Detector::Limits(_) => "Limits",
            Detector::JsonSchema(_) => "JsonSchema",
        })
    }
}

/// The semantic part of a `prompt_injection` rule.
pub struct SemanticRule {
    /// The weights.
    pub classifier: Arc<Classifier>,
    /// The embedding model, shared by every rule naming its directory.
    pub model: Arc<engine::Embedder>,
    /// Probability at or above which it fires.
    pub threshold: f32,
    /// Whether windows without instruction vocabulary skip the model.
    pub first_pass: bool,
}

impl SemanticRule {
    /// The hit of `text` in rule `ri`, if the classifier fires. A model failure is a hit
    /// too (entity `semantic_error`): the rule fails closed.
    fn check(&self, ri: usize, text: &str) -> Option<Hit> {
        match self.classifier.score(&self.model, text, self.first_pass) {
            Ok(Some(s)) if s.score >= self.threshold => Some(Hit {
                rule: ri,
                start: s.start,
                end: s.end,
                entity: "semantic".into(),
                label: "INJECTION".into(),
                score: Some(s.score),
                detail: Some(format!(
                    "semantic classifier {:.3} >= {:.3} on this window",
                    s.score, self.threshold
                )),
            }),
            Ok(_) => None,
            Err(e) => Some(Hit {
                rule: ri,
                start: 0,
                end: text.len(),
                entity: "semantic_error".into(),
                label: "INJECTION".into(),
                score: None,
                detail: Some(format!("the semantic classifier failed: {e}")),
            }),
        }
    }
}

/// One compiled rule.
#[derive(Debug)]
pub struct Rule {
    /// Rule id.
    pub id: Arc<str>,
    /// What the rule detects (`kind:` in the YAML).
    pub kind: RuleKind,
    /// Stages it runs in.
    pub stages: BTreeSet<Stage>,
    /// What happens when it fires.
    pub action: Action,
    /// How serious a match is, as audit records and metrics report it.
    pub severity: Severity,
    /// Description from the file.
    pub description: Option<String>,
    /// The detector.
    pub detector: Detector,
}

impl Rule {
    /// Characters a stream must hold back so that this rule's matches spanning chunks are
    /// caught: its longest match that may contain whitespace (whitespace-free runs are held
    /// whole anyway, see `stream.rs`), plus one character of look-ahead.
    pub fn holdback_chars(&self) -> usize {
        match &self.detector {
            Detector::Regex {
                max_match_chars, ..
            } => max_match_chars + 1,
            // The longest spaced entity: an IBAN of 34 characters in groups of 4 is 42;
            // a street address with its city and postcode runs longer.
            Detector::Pii(d) if d.is_enabled(PiiEntity::Address) => 128,
            Detector::Pii(_) => 48,
            // Secrets are whitespace-free tokens, or key blocks that run to their END line
            // once their BEGIN line is complete; the longest BEGIN line, with its spaces,
            // is `-----BEGIN ENCRYPTED PRIVATE KEY-----` (37).
            Detector::Secrets(_) => 48,
            // The longest phrase of the heuristics, with spacing to spare.
            Detector::Injection { .. } => 96,
            Detector::Keywords { longest, .. } => longest + 8,
            Detector::Limits(_) | Detector::JsonSchema(_) => 0,
        }
    }
}

/// A span one rule found in a text. Offsets are bytes on char boundaries.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Index of the rule in [`Policy::rules`].
    pub rule: usize,
    /// Start offset.
    pub start: usize,
    /// End offset.
    pub end: usize,
    /// Entity name for the decision.
    pub entity: String,
    /// Placeholder label, `EMAIL` in `[EMAIL_1]`.
    pub label: String,
    /// Detector score, for scored kinds.
    pub score: Option<f32>,
    /// Detail that never holds the matched text.
    pub detail: Option<String>,
}

/// The rules of one stage.
#[derive(Debug, Default)]
pub struct StageRules {
    /// Indices into [`Policy::rules`] of the rules that scan text in this stage.
    pub scanning: Vec<usize>,
    /// Index of the `limits` rules (input stage only).
    pub limits: Vec<usize>,
    /// Index of the `json_schema` rules.
    pub schemas: Vec<usize>,
    /// Every regex pattern of the stage's regex rules, matched in one pass.
    pub regex_set: Option<RegexSet>,
    /// For each pattern of `regex_set`: (rule index, pattern index in the rule).
    pub regex_owner: Vec<(usize, usize)>,
    /// Characters a stream holds back (output stage).
    pub holdback_chars: usize,
    /// With several `pii` rules, one detector for all their entities: each text is scanned
    /// once and the matches are shared out.
    pub pii_union: Option<PiiDetector>,
    /// A `json_schema` rule that blocks: the output is held until it is complete.
    pub hold_all: bool,
    /// A rule runs a model (the semantic injection classifier): evaluation blocks for
    /// milliseconds, so callers move it off the async runtime.
    pub uses_model: bool,
}

/// A compiled policy.
#[derive(Debug)]
pub struct Policy {
    /// Policy id.
    pub id: Arc<str>,
    /// Description from the file.
    pub description: Option<String>,
    /// The file it came from.
    pub file: PathBuf,
    /// Applies to requests no other policy matches.
    pub default: bool,
    /// Higher wins among matching policies.
    pub priority: i64,
    /// Which requests it applies to.
    pub applies_to: AppliesTo,
    /// Rules in file order.
    pub rules: Vec<Rule>,
    /// Test cases written in the file.
    pub tests: Vec<super::cases::Case>,
    /// Grounding in a document collection, when the policy asks for it.
    pub retrieval: Option<super::retrieval::Retrieval>,
    /// What the audit log stores beyond decisions.
    pub audit: AuditCapture,
    pub(crate) stages: [StageRules; 3],
}

/// A policy's `audit:` section: which texts the audit log keeps (after redaction).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditCapture {
    /// The messages as the model saw them.
    pub prompts: bool,
    /// The answer as the client got it.
    pub completions: bool,
}

fn stage_index(stage: Stage) -> usize {
    match stage {
        Stage::Input => 0,
        Stage::Output => 1,
        Stage::ToolArguments => 2,
    }
}

impl Policy {
    /// The rules of `stage`.
    pub fn stage(&self, stage: Stage) -> &StageRules {
        &self.stages[stage_index(stage)]
    }

    /// Indexes rules by stage and builds each stage's `RegexSet`.
    pub(crate) fn index(&mut self, holdback_override: Option<usize>) -> Result<(), String> {
        for stage in Stage::ALL {
            let mut s = StageRules::default();
            let mut patterns = Vec::new();
            let mut pii_rules: Vec<PiiDetector> = Vec::new();
            for (i, rule) in self.rules.iter().enumerate() {
                if !rule.stages.contains(&stage) {
                    continue;
                }
                match &rule.detector {
                    Detector::Limits(_) => s.limits.push(i),
                    Detector::JsonSchema(_) => {
                        s.schemas.push(i);
                        s.hold_all |= rule.action == Action::Block;
                    }
                    Detector::Regex { patterns: ps, .. } => {
                        s.scanning.push(i);
                        for (j, p) in ps.iter().enumerate() {
                            patterns.push(p.as_str().to_string());
                            s.regex_owner.push((i, j));
                        }
                    }
                    Detector::Pii(d) => {
                        s.scanning.push(i);
                        pii_rules.push(d.clone());
                    }
                    Detector::Injection { semantic, .. } => {
                        s.scanning.push(i);
                        s.uses_model |= semantic.is_some();
                    }
                    _ => s.scanning.push(i),
                }
                s.holdback_chars = s.holdback_chars.max(rule.holdback_chars());
            }
            if !patterns.is_empty() {
                s.regex_set = Some(RegexSet::new(&patterns).map_err(|e| e.to_string())?);
            }
            if pii_rules.len() > 1 {
                s.pii_union = pii_rules.iter().cloned().reduce(|a, b| a.union(&b));
            }
            if let Some(h) = holdback_override {
                s.holdback_chars = h;
            }
            self.stages[stage_index(stage)] = s;
        }
        Ok(())
    }

    /// Every span the scanning rules of `stage` find in `text`, sorted by start, longer
    /// first, then rule order. `limits` and `json_schema` are checked elsewhere.
    pub fn scan(&self, stage: Stage, text: &str) -> Vec<Hit> {
        let s = self.stage(stage);
        let mut hits = Vec::new();
        if let Some(set) = &s.regex_set {
            for m in set.matches(text).iter() {
                let (ri, pi) = s.regex_owner[m];
                let Detector::Regex {
                    patterns, entity, ..
                } = &self.rules[ri].detector
                else {
                    continue;
                };
                for found in patterns[pi].find_iter(text) {
                    if found.start() < found.end() {
                        hits.push(hit(ri, found.start(), found.end(), entity, None));
                    }
                }
            }
        }
        let shared_pii = s.pii_union.as_ref().map(|u| u.find(text));
        for &ri in &s.scanning {
            match &self.rules[ri].detector {
                Detector::Pii(d) => {
                    let found = match &shared_pii {
                        Some(all) => all
                            .iter()
                            .filter(|m| d.is_enabled(m.entity))
                            .cloned()
                            .collect(),
                        None => d.find(text),
                    };
                    hits.extend(
                        found.into_iter().map(|m| {
                            typed_hit(ri, m.start, m.end, m.entity.name(), m.entity.label())
                        }),
                    )
                }
                Detector::Secrets(d) => hits.extend(
                    d.find(text)
                        .into_iter()
                        .map(|m| typed_hit(ri, m.start, m.end, m.entity.name(), m.entity.label())),
                ),
                Detector::Injection {
                    detector,
                    threshold,
                    phrases,
                    semantic,
                } => {
                    let mut fired = false;
                    if *phrases {
                        let report = detector.scan(text);
                        fired = report.score >= *threshold;
                        if fired {
                            hits.extend(report.matches.into_iter().map(|m| Hit {
                                rule: ri,
                                start: m.start,
                                end: m.end,
                                entity: m.signal.name().into(),
                                label: "INJECTION".into(),
                                score: Some(report.score),
                                detail: None,
                            }));
                        }
                    }
                    // The phrases decided already: the model would not change the action.
                    if let (false, Some(s)) = (fired, semantic) {
                        hits.extend(s.check(ri, text));
                    }
                }
                Detector::Keywords {
                    matcher, entity, ..
                } => hits.extend(
                    matcher
                        .find(text)
                        .into_iter()
                        .map(|(start, end, _)| hit(ri, start, end, entity, None)),
                ),
                Detector::Regex { .. } | Detector::Limits(_) | Detector::JsonSchema(_) => {}
            }
        }
        hits.sort_by(|a, b| {
            a.start
                .cmp(&b.start)
                .then(b.end.cmp(&a.end))
                .then(a.rule.cmp(&b.rule))
        });
        hits
    }

    /// Checks a complete text against the `json_schema` rules of `stage`. A violation spans
    /// the whole text; its detail names the failing location and keyword, never the value.
    pub fn check_schemas(&self, stage: Stage, text: &str) -> Vec<Hit> {
        let mut hits = Vec::new();
        for &ri in &self.stage(stage).schemas {
            let Detector::JsonSchema(validator) = &self.rules[ri].detector else {
                continue;
            };
            let detail = match parse_structured(text) {
                Err(e) => Some(format!("not JSON: {e}")),
                Ok(value) => validator.iter_errors(&value).next().map(|e| {
                    let at = e.instance_path().to_string();
                    let at = if at.is_empty() { "/".to_string() } else { at };
                    format!("{at}: fails `{}`", schema_keyword(&e))
                }),
            };
            if let Some(detail) = detail {
                let mut h = hit(ri, 0, text.len(), "schema_violation", None);
                h.detail = Some(detail);
                hits.push(h);
            }
        }
        hits
    }

    /// Characters a stream of `stage` holds back.
    pub fn holdback_chars(&self, stage: Stage) -> usize {
        self.stage(stage).holdback_chars
    }
}

/// The schema keyword an error failed, without the instance value it may quote.
fn schema_keyword(e: &jsonschema::ValidationError<'_>) -> String {
    let path = e.schema_path().to_string();
    path.rsplit('/')
        .find(|s| !s.is_empty() && s.parse::<usize>().is_err())
        .unwrap_or("schema")
        .to_string()
}

/// Parses model output as JSON, accepting one surrounding Markdown code fence, which
/// small models add even when told not to.
pub fn parse_structured(text: &str) -> Result<serde_json::Value, String> {
    let t = text.trim();
    let inner = t
        .strip_prefix("```json")
        .or_else(|| t.strip_prefix("```"))
        .and_then(|rest| rest.strip_suffix("```"))
        .unwrap_or(t);
    serde_json::from_str(inner.trim()).map_err(|e| {
        // serde_json's messages name the position, not the content.
        e.to_string()
    })
}

/// A hit of a detector whose entities carry their own placeholder label.
fn typed_hit(rule: usize, start: usize, end: usize, entity: &str, label: &str) -> Hit {
    Hit {
        rule,
        start,
        end,
        entity: entity.to_string(),
        label: label.to_string(),
        score: None,
        detail: None,
    }
}

fn hit(rule: usize, start: usize, end: usize, entity: &str, score: Option<f32>) -> Hit {
    Hit {
        rule,
        start,
        end,
        entity: entity.to_string(),
        label: label_of(entity),
        score,
        detail: None,
    }
}

/// `ticket-id` → `TICKET_ID`.
pub fn label_of(entity: &str) -> String {
    entity
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Estimated tokens of `text`: one per word piece of up to 4 letters, per group of up to 3
/// digits and per punctuation character. Close to BPE tokenizers on English and code
/// (docs/policies.md), independent of the model, and cheap.
pub fn estimate_tokens(text: &str) -> usize {
    #[derive(PartialEq, Clone, Copy)]
    enum Class {
        Letter,
        Digit,
        Space,
        Other,
    }
    let mut tokens = 0usize;
    let mut run = 0usize;
    let mut prev = Class::Space;
    for c in text.chars() {
        let class = if c.is_alphabetic() {
            Class::Letter
        } else if c.is_numeric() {
            Class::Digit
        } else if c.is_whitespace() {
            Class::Space
        } else {
            Class::Other
        };
        let cap = match class {
            Class::Letter => 4,
            Class::Digit => 3,
            Class::Other => 1,
            Class::Space => usize::MAX,
        };
        if class == prev && run < cap {
            run += 1;
        } else {
            if class != Class::Space {
                tokens += 1;
            }
            run = 1;
        }
        prev = class;
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_upper_snake() {
        assert_eq!(label_of("ticket-id.v2"), "TICKET_ID_V2");
    }

    #[test]
    fn token_estimate_is_close_to_bpe_on_prose() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("   "), 0);
        // "Hell", "o", ",", "worl", "d", "!": words split every four letters.
        assert_eq!(estimate_tokens("Hello, world!"), 6);
        assert_eq!(estimate_tokens("12345"), 2);
        let prose = "The quick brown fox jumps over the lazy dog. ".repeat(10);
        let t = estimate_tokens(&prose);
        // GPT-style tokenizers give 10 per sentence here, the estimate 13: on the safe side.
        assert!((100..=140).contains(&t), "{t}");
    }

    #[test]
    fn structured_output_accepts_a_fence() {
        assert!(parse_structured("```json\n{\"a\":1}\n```").is_ok());
        assert!(parse_structured(" {\"a\":1} ").is_ok());
        assert!(parse_structured("here: {\"a\":1}").is_err());
    }
}
