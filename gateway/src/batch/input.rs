//! Batch input: JSON Lines or a plain log file, one record per line.
//!
//! A line that parses as a JSON object is a record: its `id` (string or number) names it,
//! and its `variables` object, or else every other field, are the template's variables. Any
//! other non-blank line is a plain record: `{VAR: line}`, with VAR from `--var-name`. A
//! record without an id is `line-N` (1-based), so resuming needs the same input file.

use serde_json::{Map, Value};

/// One record to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Stable id: the output line carries it, and resuming skips ids already done.
    pub id: String,
    /// 1-based line of the input.
    pub line: usize,
    /// Template variables.
    pub variables: Value,
}

/// Parses one input line; `None` for a blank line.
pub fn parse_line(line_no: usize, line: &str, var_name: &str) -> Option<Record> {
    let text = line.trim_end_matches(['\r', '\n']);
    if text.trim().is_empty() {
        return None;
    }
    let fallback_id = || format!("line-{line_no}");
    if let Ok(Value::Object(mut obj)) = serde_json::from_str::<Value>(text) {
        let id = match obj.remove("id") {
            Some(Value::String(s)) if !s.is_empty() => s,
            Some(Value::Number(n)) => n.to_string(),
            _ => fallback_id(),
        };
        let variables = match obj.remove("variables") {
            Some(v @ Value::Object(_)) => v,
            Some(other) => {
                // Not an object: keep it where the template can see it, and let the
                // schema report it.
                obj.insert("variables".into(), other);
                Value::Object(obj)
            }
            None => Value::Object(obj),
        };
        return Some(Record {
            id,
            line: line_no,
            variables,
        });
    }
    let mut vars = Map::new();
    vars.insert(var_name.to_string(), Value::String(text.to_string()));
    Some(Record {
        id: fallback_id(),
        line: line_no,
        variables: Value::Object(vars),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn json_records_and_plain_lines() {
        let r = parse_line(3, r#"{"id":"a-1","record":"x","source":"ids"}"#, "record").unwrap();
        assert_eq!(r.id, "a-1");
        assert_eq!(r.variables, json!({"record": "x", "source": "ids"}));
        let r = parse_line(
            4,
            r#"{"id":7,"variables":{"record":"y"},"extra":1}"#,
            "record",
        )
        .unwrap();
        assert_eq!((r.id.as_str(), r.variables), ("7", json!({"record": "y"})));
        let r = parse_line(5, r#"{"record":"z"}"#, "record").unwrap();
        assert_eq!(r.id, "line-5");
        let r = parse_line(9, "Mar 14 sshd[1]: Failed password\r\n", "log").unwrap();
        assert_eq!(r.id, "line-9");
        assert_eq!(
            r.variables,
            json!({"log": "Mar 14 sshd[1]: Failed password"})
        );
        let r = parse_line(2, "[1, 2]", "record").unwrap();
        assert_eq!(
            r.variables,
            json!({"record": "[1, 2]"}),
            "a JSON array is a plain line"
        );
        assert_eq!(parse_line(1, "   \n", "record"), None);
    }

    proptest! {
        #[test]
        fn any_line_parses_without_panicking(line in ".{0,200}", n in 1usize..10_000) {
            if let Some(r) = parse_line(n, &line, "record") {
                prop_assert!(r.variables.is_object());
                prop_assert!(!r.id.is_empty());
            }
        }
    }
}
