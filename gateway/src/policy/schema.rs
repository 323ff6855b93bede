//! The policy JSON Schema (`policies/policy.schema.json`), compiled into the binary so that
//! the server, the CLI and editors check the same thing.

use std::sync::LazyLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::paths::LocationSegment;

use crate::config::locate::Segment;

/// The schema's text, as shipped in `policies/`.
pub const SCHEMA: &str = include_str!("../../../policies/policy.schema.json");

static VALIDATOR: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    let schema: serde_json::Value =
        serde_json::from_str(SCHEMA).expect("policies/policy.schema.json is valid JSON");
    jsonschema::validator_for(&schema).expect("policies/policy.schema.json is a valid schema")
});

/// Every violation of the schema in `doc`: the key path and what was expected.
pub fn violations(doc: &serde_json::Value) -> Vec<(Vec<Segment>, String)> {
    let mut out: Vec<(Vec<Segment>, String)> = VALIDATOR
        .iter_errors(doc)
        .map(|e| {
            let mut path: Vec<Segment> = e
                .instance_path()
                .iter()
                .map(|s| match s {
                    LocationSegment::Property(p) => Segment::Key(p.to_string()),
                    LocationSegment::Index(i) => Segment::Index(i),
                })
                .collect();
            let message = match e.kind() {
                ValidationErrorKind::AdditionalProperties { unexpected } => {
                    if let Some(k) = unexpected.first() {
                        path.push(Segment::Key(k.clone()));
                    }
                    format!(
                        "unknown key{} {}",
                        if unexpected.len() > 1 { "s" } else { "" },
                        unexpected
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
                ValidationErrorKind::FalseSchema => {
                    "not allowed here (see the rule kind's keys in docs/policies.md)".to_string()
                }
                ValidationErrorKind::Required { property } => {
                    format!("missing required key {property}")
                }
                _ => {
                    let mut m = e.to_string();
                    if m.len() > 300 {
                        let cut = (0..=300)
                            .rev()
                            .find(|&i| m.is_char_boundary(i))
                            .unwrap_or(0);
                        m.truncate(cut);
                        m.push('…');
                    }
                    m
                }
            };
            (path, message)
        })
        .collect();
    // `if/then` branches and `oneOf` may report the same place twice.
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn schema_compiles_and_accepts_a_minimal_policy() {
        assert!(violations(&json!({"id": "p", "rules": []})).is_empty());
    }

    #[test]
    fn names_unknown_and_misplaced_keys() {
        let v = violations(&json!({
            "id": "p",
            "rules": [{"id": "r", "kind": "pii", "patterns": ["x"], "colour": 1}]
        }));
        let rendered: Vec<String> = v
            .iter()
            .map(|(p, m)| format!("{}: {m}", crate::config::locate::render(p)))
            .collect();
        assert!(
            rendered
                .iter()
                .any(|r| r.starts_with("rules[0].colour: unknown key")),
            "{rendered:?}"
        );
        assert!(
            rendered
                .iter()
                .any(|r| r.starts_with("rules[0].patterns: not allowed")),
            "{rendered:?}"
        );
    }

    #[test]
    fn enum_errors_say_what_was_expected() {
        let v = violations(&json!({"id": "p", "rules": [{"id": "r", "kind": "regexx"}]}));
        assert!(v.iter().any(|(_, m)| m.contains("regex")), "{v:?}");
    }
}
