//! Compiles a validated policy document into a runtime [`Policy`]: the schema has already
//! checked shapes, so these errors are about meaning (bad regexes, unknown entities,
//! duplicate ids, unreadable schema files).

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::sync::Arc;

use super::cases::Case;
use super::detect::injection::InjectionDetector;
use super::detect::keywords::KeywordMatcher;
use super::detect::pii::names::Gazetteer;
use super::detect::pii::{PiiDetector, PiiEntity};
use super::detect::secrets::{EntropyConfig, SecretEntity, SecretsDetector};
use super::detect::semantic::{models, Classifier};
use super::raw::{RawEntities, RawPattern, RawPolicy, RawRule, RawSemantic};
use super::rules::{Detector, Limits, Policy, Rule, RuleKind, SemanticRule, StageRules};
use super::set::AppliesTo;
use super::{Action, Severity, Stage};
use crate::config::locate::Segment;

/// A key path and what is wrong there.
pub(super) type Invalid = (Vec<Segment>, String);

/// Compiled once per process: every policy's injection rules share it.
static INJECTION: std::sync::LazyLock<InjectionDetector> =
    std::sync::LazyLock::new(InjectionDetector::new);

fn seg_key(at: &[Segment], k: &str) -> Vec<Segment> {
    let mut p = at.to_vec();
    p.push(Segment::Key(k.into()));
    p
}

/// Builds the runtime policy of `path`; errors are key paths with messages.
pub(super) fn compile(path: &Path, raw: RawPolicy) -> Result<Policy, Vec<Invalid>> {
    let mut errors = Vec::new();
    let mut rules = Vec::new();
    let mut ids = HashSet::new();
    let base = path.parent().unwrap_or(Path::new("."));
    for (i, r) in raw.rules.into_iter().enumerate() {
        let at = vec![Segment::Key("rules".into()), Segment::Index(i)];
        if !ids.insert(r.id.clone()) {
            errors.push((
                seg_key(&at, "id"),
                format!("rule id `{}` is used twice", r.id),
            ));
            continue;
        }
        match compile_rule(r, &at, base) {
            Ok(rule) => rules.push(rule),
            Err(e) => errors.push(e),
        }
    }
    let tests = raw
        .tests
        .into_iter()
        .enumerate()
        .map(|(i, c)| Case::from_raw(c, vec![Segment::Key("tests".into()), Segment::Index(i)]))
        .collect::<Result<Vec<_>, _>>();
    let tests = match tests {
        Ok(t) => t,
        Err(e) => {
            errors.push(e);
            Vec::new()
        }
    };
    let retrieval = match raw.retrieval.map(super::retrieval::Retrieval::from_raw) {
        None => None,
        Some(Ok(r)) => Some(r),
        Some(Err((k, message))) => {
            errors.push((
                vec![Segment::Key("retrieval".into()), Segment::Key(k.into())],
                message,
            ));
            None
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut policy = Policy {
        id: raw.id.into(),
        description: raw.description,
        file: path.to_path_buf(),
        default: raw.default,
        priority: raw.priority,
        applies_to: AppliesTo {
            tenants: raw.applies_to.tenants,
            api_keys: raw.applies_to.api_keys,
            routes: raw.applies_to.routes,
            models: raw.applies_to.models,
        },
        rules,
        tests,
        retrieval,
        audit: super::rules::AuditCapture {
            prompts: raw.audit.store_prompts,
            completions: raw.audit.store_completions,
        },
        stages: [
            StageRules::default(),
            StageRules::default(),
            StageRules::default(),
        ],
    };
    policy
        .index(raw.stream.holdback_chars)
        .map_err(|e| vec![(vec![Segment::Key("rules".into())], e)])?;
    Ok(policy)
}

fn compile_rule(r: RawRule, at: &[Segment], base: &Path) -> Result<Rule, Invalid> {
    let kind = match r.kind.as_str() {
        "regex" => RuleKind::Regex,
        "pii" => RuleKind::Pii,
        "secrets" => RuleKind::Secrets,
        "prompt_injection" => RuleKind::PromptInjection,
        "deny_topics" => RuleKind::DenyTopics,
        "limits" => RuleKind::Limits,
        "json_schema" => RuleKind::JsonSchema,
        other => return Err((seg_key(at, "kind"), format!("unknown kind `{other}`"))),
    };
    let stages: BTreeSet<Stage> = match &r.stages {
        Some(list) => list
            .iter()
            .map(|s| {
                Stage::parse(s)
                    .ok_or_else(|| (seg_key(at, "stages"), format!("unknown stage `{s}`")))
            })
            .collect::<Result<_, _>>()?,
        None => match kind {
            // Limits are checked on the request, `max_output_tokens` as a cap on
            // `max_tokens`, so all in the input guard (the schema forbids their `stages`).
            RuleKind::PromptInjection | RuleKind::Limits => [Stage::Input].into(),
            RuleKind::JsonSchema => [Stage::Output].into(),
            _ => [Stage::Input, Stage::Output].into(),
        },
    };
    let action = match &r.action {
        Some(a) => Action::parse(a)
            .ok_or_else(|| (seg_key(at, "action"), format!("unknown action `{a}`")))?,
        None => Action::Block,
    };
    let severity = match r.severity.as_deref() {
        None | Some("medium") => Severity::Medium,
        Some("low") => Severity::Low,
        Some("high") => Severity::High,
        Some("critical") => Severity::Critical,
        Some(other) => {
            return Err((
                seg_key(at, "severity"),
                format!("unknown severity `{other}`"),
            ))
        }
    };
    let entity = r.entity.clone().unwrap_or_else(|| r.id.clone());
    let detector = match kind {
        RuleKind::Regex => {
            let mut patterns = Vec::new();
            for (j, p) in r.patterns.unwrap_or_default().into_iter().enumerate() {
                let (pattern, flags) = match p {
                    RawPattern::Bare(s) => (s, r.flags.clone()),
                    RawPattern::WithFlags { pattern, flags } => {
                        (pattern, flags.or_else(|| r.flags.clone()))
                    }
                };
                let flags = flags.unwrap_or_default();
                if let Some(bad) = flags.chars().find(|c| !"imsxU".contains(*c)) {
                    return Err((
                        seg_key(at, "flags"),
                        format!("unknown flag `{bad}`; expected some of i, m, s, x, U"),
                    ));
                }
                // Inline flags, so that the stage's RegexSet (built from `as_str`) has them.
                let source = if flags.is_empty() {
                    pattern
                } else {
                    format!("(?{flags}){pattern}")
                };
                let re = regex::Regex::new(&source).map_err(|e| {
                    let mut p = seg_key(at, "patterns");
                    p.push(Segment::Index(j));
                    (p, format!("invalid regex: {e}"))
                })?;
                patterns.push(re);
            }
            Detector::Regex {
                patterns,
                entity,
                max_match_chars: r.max_match_chars.unwrap_or(64),
            }
        }
        RuleKind::Pii => {
            let enabled = entities(
                r.entities.as_ref(),
                &PiiEntity::ALL,
                PiiEntity::DEFAULT,
                PiiEntity::name,
                PiiEntity::from_name,
            )
            .map_err(|m| (seg_key(at, "entities"), m))?;
            let mut detector = PiiDetector::new(&enabled);
            if enabled.contains(&PiiEntity::Person) {
                let (key, file) = match &r.names_file {
                    Some(f) => (seg_key(at, "names_file"), base.join(f)),
                    None => (seg_key(at, "entities"), base.join(DEFAULT_NAMES_FILE)),
                };
                let names = Gazetteer::load(&file).map_err(|e| {
                    (
                        key,
                        format!(
                            "`person` needs the first-name list: {e} (scripts/fetch-models \
                             --only names fetches it)"
                        ),
                    )
                })?;
                detector = detector.with_names(names);
            } else if r.names_file.is_some() {
                return Err((
                    seg_key(at, "names_file"),
                    "`names_file` is for the `person` entity, which this rule does not detect"
                        .into(),
                ));
            }
            Detector::Pii(detector)
        }
        RuleKind::Secrets => {
            let enabled = entities(
                r.entities.as_ref(),
                &SecretEntity::ALL,
                &SecretEntity::ALL,
                SecretEntity::name,
                SecretEntity::from_name,
            )
            .map_err(|m| (seg_key(at, "entities"), m))?;
            let mut entropy = EntropyConfig::default();
            if let Some(e) = &r.entropy {
                if let Some(t) = e.threshold {
                    entropy.threshold = t;
                }
                if let Some(m) = e.min_length {
                    entropy.min_length = m;
                }
                if let Some(k) = e.keep_indicators {
                    entropy.keep_indicators = k;
                }
            }
            Detector::Secrets(SecretsDetector::new(&enabled, entropy))
        }
        RuleKind::PromptInjection => {
            let (phrases, semantic) = match r.method.as_deref() {
                None | Some("phrases") => (true, false),
                Some("semantic") => (false, true),
                Some("both") => (true, true),
                Some(other) => {
                    return Err((
                        seg_key(at, "method"),
                        format!("unknown method `{other}`; expected phrases, semantic or both"),
                    ))
                }
            };
            if !semantic && r.semantic.is_some() {
                return Err((
                    seg_key(at, "semantic"),
                    "`semantic` settings need `method: semantic` or `method: both`".into(),
                ));
            }
            if semantic && stages.contains(&Stage::Output) {
                return Err((
                    seg_key(at, "stages"),
                    "the semantic classifier scores whole texts: it runs on input and \
                     tool_arguments, not on streamed output"
                        .into(),
                ));
            }
            let semantic = if semantic {
                Some(semantic_rule(r.semantic.as_ref(), at, base)?)
            } else {
                None
            };
            Detector::Injection {
                detector: &INJECTION,
                threshold: r.threshold.unwrap_or(0.5) as f32,
                phrases,
                semantic,
            }
        }
        RuleKind::DenyTopics => {
            let keywords = r.keywords.unwrap_or_default();
            let matcher =
                KeywordMatcher::new(&keywords).map_err(|m| (seg_key(at, "keywords"), m))?;
            Detector::Keywords {
                matcher,
                entity,
                longest: keywords
                    .iter()
                    .map(|k| k.chars().count())
                    .max()
                    .unwrap_or(0),
            }
        }
        RuleKind::Limits => Detector::Limits(Limits {
            max_input_chars: r.max_input_chars,
            max_input_tokens: r.max_input_tokens,
            max_messages: r.max_messages,
            max_output_tokens: r.max_output_tokens,
        }),
        RuleKind::JsonSchema => {
            let schema = match (r.schema, &r.schema_file) {
                (Some(s), _) => s,
                (None, Some(file)) => {
                    let p = base.join(file);
                    let text = std::fs::read_to_string(&p).map_err(|e| {
                        (
                            seg_key(at, "schema_file"),
                            format!("cannot read {}: {e}", p.display()),
                        )
                    })?;
                    serde_json::from_str(&text).map_err(|e| {
                        (
                            seg_key(at, "schema_file"),
                            format!("{} is not JSON: {e}", p.display()),
                        )
                    })?
                }
                (None, None) => {
                    return Err((
                        at.to_vec(),
                        "json_schema needs `schema` or `schema_file`".into(),
                    ))
                }
            };
            let key = if r.schema_file.is_some() {
                "schema_file"
            } else {
                "schema"
            };
            let v = jsonschema::validator_for(&schema)
                .map_err(|e| (seg_key(at, key), format!("not a valid JSON Schema: {e}")))?;
            Detector::JsonSchema(Box::new(v))
        }
    };
    Ok(Rule {
        id: r.id.into(),
        kind,
        stages,
        action,
        severity,
        description: r.description,
        detector,
    })
}

/// Where the semantic classifier's embedding model is, relative to the policy file, unless
/// `semantic.model_dir` says otherwise: the repository's `models/` directory.
pub const DEFAULT_MODEL_DIR: &str = "../models/all-minilm-l6-v2";

/// The `semantic:` settings of a prompt_injection rule: weights (built in unless
/// `weights_file`), the model they were trained for (loaded once per process), threshold.
fn semantic_rule(
    raw: Option<&RawSemantic>,
    at: &[Segment],
    base: &Path,
) -> Result<SemanticRule, Invalid> {
    let key = |k: &str| {
        let mut p = seg_key(at, "semantic");
        p.push(Segment::Key(k.into()));
        p
    };
    let classifier = match raw.and_then(|s| s.weights_file.as_ref()) {
        None => Classifier::builtin().clone(),
        Some(file) => {
            let p = base.join(file);
            let text = std::fs::read_to_string(&p).map_err(|e| {
                (
                    key("weights_file"),
                    format!("cannot read {}: {e}", p.display()),
                )
            })?;
            Classifier::from_json(&text)
                .map_err(|e| (key("weights_file"), format!("{}: {e}", p.display())))?
        }
    };
    let (dir_key, dir) = match raw.and_then(|s| s.model_dir.as_ref()) {
        Some(d) => (key("model_dir"), base.join(d)),
        None => (seg_key(at, "method"), base.join(DEFAULT_MODEL_DIR)),
    };
    let model = models::load(&dir).map_err(|e| {
        (
            dir_key.clone(),
            format!(
                "cannot load the embedding model of the semantic classifier: {e} \
                 (scripts/fetch-models fetches it)"
            ),
        )
    })?;
    if model.dim() != classifier.weights.len() {
        return Err((
            dir_key,
            format!(
                "the model in {} makes {}-dimensional vectors; the weights are for {} ({})",
                dir.display(),
                model.dim(),
                classifier.weights.len(),
                classifier.embedding_model
            ),
        ));
    }
    let threshold = match raw.and_then(|s| s.threshold) {
        Some(t) if (0.0..=1.0).contains(&t) => t as f32,
        Some(t) => return Err((key("threshold"), format!("{t} is not in 0..=1"))),
        None => classifier.threshold,
    };
    Ok(SemanticRule {
        classifier: Arc::new(classifier),
        model,
        threshold,
        first_pass: raw.and_then(|s| s.first_pass).unwrap_or(true),
    })
}

/// Where the first-name list of `person` is, relative to the policy file, unless
/// `names_file` says otherwise.
pub const DEFAULT_NAMES_FILE: &str = "../models/names/nam_dict.txt";

/// The enabled entities of a `pii` or `secrets` rule: `defaults` when not given; a map turns
/// entities on or off from the defaults.
fn entities<E: Copy + PartialEq>(
    raw: Option<&RawEntities>,
    all: &[E],
    defaults: &[E],
    name: fn(E) -> &'static str,
    from_name: fn(&str) -> Option<E>,
) -> Result<Vec<E>, String> {
    let known = || all.iter().map(|e| name(*e)).collect::<Vec<_>>().join(", ");
    let parse = |n: &str| {
        from_name(n).ok_or_else(|| format!("unknown entity `{n}`; expected one of {}", known()))
    };
    match raw {
        None => Ok(defaults.to_vec()),
        Some(RawEntities::List(names)) => names.iter().map(|n| parse(n)).collect(),
        Some(RawEntities::Map(map)) => {
            for n in map.keys() {
                parse(n)?;
            }
            Ok(all
                .iter()
                .copied()
                .filter(|e| {
                    map.get(name(*e))
                        .copied()
                        .unwrap_or_else(|| defaults.contains(e))
                })
                .collect())
        }
    }
}
