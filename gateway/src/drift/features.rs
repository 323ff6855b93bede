//! The features drift is measured on, read from a chat request's audit record, so that the
//! live monitor and `gatehouse drift report` over the audit log see the same thing.

use crate::audit::record::Record;

/// Token counts in powers of two: `0`, `1`, `2-3`, `4-7`, ... `8192+`.
fn length_bin(n: u64) -> String {
    match n {
        0 => "0".into(),
        1 => "1".into(),
        n if n >= 8192 => "8192+".into(),
        n => {
            let lo = 1u64 << (63 - n.leading_zeros());
            format!("{lo}-{}", lo * 2 - 1)
        }
    }
}

/// The best retrieval score in tenths: `0.0-0.1` ... `0.9-1.0`.
fn score_bin(s: f32) -> String {
    let tenth = ((s.clamp(0.0, 0.999_999) * 10.0).floor() as u32).min(9);
    format!(
        "0.{tenth}-{}",
        if tenth == 9 {
            "1.0".into()
        } else {
            format!("0.{}", tenth + 1)
        }
    )
}

/// A request's `(feature, category)` pairs.
pub type Categories = Vec<(&'static str, String)>;

/// `(feature, category)` pairs and the rules that decided, of a chat record; `None` for any
/// other record.
pub fn of_record(r: &Record) -> Option<(Categories, Vec<String>)> {
    let u = &r.unmapped;
    if u.kind != "chat" {
        return None;
    }
    let mut cats = vec![
        (
            "prompt_tokens",
            u.tokens
                .as_ref()
                .map_or("none".into(), |t| length_bin(t.prompt)),
        ),
        (
            "completion_tokens",
            u.tokens
                .as_ref()
                .map_or("none".into(), |t| length_bin(t.completion)),
        ),
        (
            "script",
            u.prompt_script.clone().unwrap_or_else(|| "none".into()),
        ),
        (
            "finish_reason",
            u.finish_reason.clone().unwrap_or_else(|| "none".into()),
        ),
        // `ok`, or the error code (structured_output_invalid, tool_call_invalid,
        // policy_violation, ...), or `cancelled`.
        (
            "outcome",
            match (u.outcome.as_str(), r.status_code.as_deref()) {
                ("ok", _) => "ok".into(),
                ("cancelled", _) => "cancelled".into(),
                (_, Some(code)) => code.to_string(),
                (other, None) => other.to_string(),
            },
        ),
    ];
    if let Some(ret) = &u.retrieval {
        let best = ret.citations.iter().map(|c| c.score).reduce(f32::max);
        cats.push(("retrieval_score", best.map_or("none".into(), score_bin)));
    }
    let server_tools: Vec<&str> = u
        .tool_calls
        .iter()
        .filter(|t| t.side == "server")
        .map(|t| t.outcome.as_str())
        .collect();
    if !server_tools.is_empty() {
        let failed = server_tools.iter().any(|o| *o != "ok");
        cats.push(("tools", if failed { "failed" } else { "ok" }.into()));
    }
    let mut rules: Vec<String> = u.decisions.iter().map(|d| d.rule.clone()).collect();
    rules.sort();
    rules.dedup();
    Some((cats, rules))
}

/// The order a feature's categories are shown in: lengths and scores by value, scripts in
/// their fixed order, anything else by name.
pub fn order<'a>(feature: &str, categories: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut v: Vec<String> = categories.cloned().collect();
    v.sort();
    v.dedup();
    match feature {
        "prompt_tokens" | "completion_tokens" => v.sort_by_key(|c| {
            let lo = c
                .split(['-', '+'])
                .next()
                .and_then(|n| n.parse::<u64>().ok());
            lo.map_or(u64::MAX, |n| n)
        }),
        "script" => v.sort_by_key(|c| {
            super::script::SCRIPTS
                .iter()
                .position(|s| s == c)
                .unwrap_or(usize::MAX)
        }),
        _ => {}
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins() {
        let got: Vec<String> = [0, 1, 2, 3, 4, 100, 8191, 8192, 1 << 40]
            .into_iter()
            .map(length_bin)
            .collect();
        assert_eq!(
            got,
            [
                "0",
                "1",
                "2-3",
                "2-3",
                "4-7",
                "64-127",
                "4096-8191",
                "8192+",
                "8192+"
            ]
        );
        assert_eq!(score_bin(0.0), "0.0-0.1");
        assert_eq!(score_bin(0.55), "0.5-0.6");
        assert_eq!(score_bin(1.0), "0.9-1.0");
        assert_eq!(score_bin(-3.0), "0.0-0.1");
        let cats = ["8192+", "0", "64-127", "2-3", "none"].map(String::from);
        assert_eq!(
            order("prompt_tokens", cats.iter()),
            ["0", "2-3", "64-127", "8192+", "none"]
        );
    }
}
