//! Serde types mirroring a policy file; the JSON Schema checks them first, so these stay
//! plain. `rules.rs` compiles them.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A whole policy file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub id: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub default: bool,
    #[serde(default)]
    pub priority: i64,
    #[serde(default)]
    pub applies_to: RawAppliesTo,
    #[serde(default)]
    pub stream: RawStream,
    #[serde(default)]
    pub retrieval: Option<RawRetrieval>,
    #[serde(default)]
    pub audit: RawAuditCapture,
    #[serde(default)]
    pub rules: Vec<RawRule>,
    #[serde(default)]
    pub tests: Vec<RawCase>,
}

/// `applies_to:`; each list given must match.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAppliesTo {
    #[serde(default)]
    pub tenants: Vec<String>,
    #[serde(default)]
    pub api_keys: Vec<String>,
    #[serde(default)]
    pub routes: Vec<String>,
    #[serde(default)]
    pub models: Vec<String>,
}

/// `retrieval:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetrieval {
    pub collection: String,
    pub top_k: Option<usize>,
    pub score_threshold: Option<f32>,
    pub mode: Option<String>,
    pub max_context_tokens: Option<usize>,
    pub timeout_ms: Option<u64>,
    pub on_empty: Option<String>,
    pub on_error: Option<String>,
    pub on_blocked: Option<String>,
    pub template: Option<String>,
}

/// `audit:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuditCapture {
    #[serde(default)]
    pub store_prompts: bool,
    #[serde(default)]
    pub store_completions: bool,
}

/// `stream:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStream {
    pub holdback_chars: Option<usize>,
}

/// One rule. Flat, so that serde and the schema report positions on the rule's own keys;
/// `rules.rs` checks which keys fit which kind (the schema does too).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub id: String,
    pub kind: String,
    #[serde(default)]
    pub description: Option<String>,
    pub stages: Option<Vec<String>>,
    pub action: Option<String>,
    pub severity: Option<String>,
    // regex
    pub patterns: Option<Vec<RawPattern>>,
    pub flags: Option<String>,
    pub entity: Option<String>,
    pub max_match_chars: Option<usize>,
    // pii, secrets
    pub entities: Option<RawEntities>,
    pub entropy: Option<RawEntropy>,
    pub names_file: Option<String>,
    // prompt_injection
    pub threshold: Option<f64>,
    pub method: Option<String>,
    pub semantic: Option<RawSemantic>,
    // deny_topics
    pub keywords: Option<Vec<String>>,
    // limits
    pub max_input_chars: Option<usize>,
    pub max_input_tokens: Option<usize>,
    pub max_messages: Option<usize>,
    pub max_output_tokens: Option<usize>,
    // json_schema
    pub schema: Option<serde_json::Value>,
    pub schema_file: Option<String>,
}

/// `semantic:` of a prompt_injection rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSemantic {
    pub model_dir: Option<String>,
    pub weights_file: Option<String>,
    pub threshold: Option<f64>,
    pub first_pass: Option<bool>,
}

/// A regex pattern, bare or with flags.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawPattern {
    Bare(String),
    WithFlags {
        pattern: String,
        #[serde(default)]
        flags: Option<String>,
    },
}

/// `entities:` as a list of enabled names or a map of name to enabled.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawEntities {
    List(Vec<String>),
    Map(BTreeMap<String, bool>),
}

/// `entropy:` of a secrets rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEntropy {
    pub threshold: Option<f64>,
    pub min_length: Option<usize>,
    pub keep_indicators: Option<bool>,
}

/// A test case, in a policy's `tests:` or in a `policies/tests/*.yaml` file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCase {
    pub name: String,
    #[serde(default = "input_stage")]
    pub stage: String,
    pub text: String,
    pub expect: RawExpect,
}

fn input_stage() -> String {
    "input".into()
}

/// What a test case expects.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExpect {
    pub action: String,
    #[serde(default)]
    pub redacted: Option<String>,
    #[serde(default)]
    pub rules: Option<Vec<String>>,
}

/// A `policies/tests/*.yaml` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCaseFile {
    pub policy: String,
    pub cases: Vec<RawCase>,
}
