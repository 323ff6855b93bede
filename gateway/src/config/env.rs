//! `GATEHOUSE__SECTION__KEY=value` overrides, applied to the parsed YAML tree.

use serde_yaml::{Mapping, Value};

use super::locate::Segment;

/// Prefix of override variables.
pub const PREFIX: &str = "GATEHOUSE__";

/// One override: the variable's name, the key path it sets and the value.
#[derive(Debug, Clone)]
pub struct Override {
    pub var: String,
    pub path: Vec<Segment>,
    pub value: Value,
}

/// Overrides found in `vars`, sorted by variable name so application order is stable.
pub fn collect(vars: impl IntoIterator<Item = (String, String)>) -> Vec<Override> {
    let mut out: Vec<Override> = vars
        .into_iter()
        .filter_map(|(var, raw)| {
            let rest = var.strip_prefix(PREFIX)?;
            let path = rest
                .split("__")
                .map(|s| match s.parse::<usize>() {
                    Ok(i) => Segment::Index(i),
                    Err(_) => Segment::Key(s.to_ascii_lowercase()),
                })
                .collect();
            // A value that is not valid YAML (e.g. "a: b: c") is taken as a plain string.
            let value = serde_yaml::from_str(&raw).unwrap_or(Value::String(raw));
            Some(Override { var, path, value })
        })
        .collect();
    out.sort_by(|a, b| a.var.cmp(&b.var));
    out
}

/// Sets `ov.path` in `root`, creating mappings on the way; an index must already exist.
pub fn apply(root: &mut Value, ov: &Override) -> Result<(), String> {
    let mut node = root;
    for (depth, seg) in ov.path.iter().enumerate() {
        let last = depth + 1 == ov.path.len();
        node = match seg {
            Segment::Key(k) => {
                if node.is_null() {
                    *node = Value::Mapping(Mapping::new());
                }
                let Value::Mapping(map) = node else {
                    return Err(format!(
                        "{}: cannot set key `{k}` inside a non-mapping value",
                        ov.var
                    ));
                };
                map.entry(Value::String(k.clone())).or_insert(Value::Null)
            }
            Segment::Index(i) => {
                let Value::Sequence(seq) = node else {
                    return Err(format!(
                        "{}: index {i} used on a value that is not a list",
                        ov.var
                    ));
                };
                let len = seq.len();
                seq.get_mut(*i).ok_or_else(|| {
                    format!(
                        "{}: index {i} is out of range (the list has {len} entries)",
                        ov.var
                    )
                })?
            }
        };
        if last {
            *node = ov.value.clone();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_nested_and_indexed_keys() {
        let mut v: Value = serde_yaml::from_str("server: {listen: a}\nmodels: [{id: x}]").unwrap();
        let ovs = collect([
            (
                "GATEHOUSE__SERVER__LISTEN".to_string(),
                "0.0.0.0:1".to_string(),
            ),
            (
                "GATEHOUSE__MODELS__0__MAX_QUEUE".to_string(),
                "7".to_string(),
            ),
            ("OTHER".to_string(), "x".to_string()),
        ]);
        assert_eq!(ovs.len(), 2);
        for ov in &ovs {
            apply(&mut v, ov).unwrap();
        }
        assert_eq!(v["server"]["listen"], Value::String("0.0.0.0:1".into()));
        assert_eq!(v["models"][0]["max_queue"], Value::Number(7.into()));
    }

    #[test]
    fn out_of_range_index_names_the_variable() {
        let mut v: Value = serde_yaml::from_str("models: []").unwrap();
        let ovs = collect([("GATEHOUSE__MODELS__3__ID".to_string(), "x".to_string())]);
        let err = apply(&mut v, &ovs[0]).unwrap_err();
        assert!(err.contains("GATEHOUSE__MODELS__3__ID"), "{err}");
    }
}
