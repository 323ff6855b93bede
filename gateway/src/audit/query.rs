//! Selecting, counting and exporting records: shared by `gatehouse audit` and the review page.

use std::collections::BTreeMap;

use serde::Serialize;

use super::record::Record;

/// Which records to select; every field given must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// From this time (ms since the epoch, inclusive).
    pub from: Option<i64>,
    /// Until this time (exclusive).
    pub to: Option<i64>,
    /// Tenant id.
    pub tenant: Option<String>,
    /// Model id.
    pub model: Option<String>,
    /// A decision of this rule id.
    pub rule: Option<String>,
    /// A decision with this action (`log`, `warn`, `redact`, `block`).
    pub action: Option<String>,
    /// Outcome (`ok`, `blocked`, `refused`, `failed`, `cancelled`), HTTP status (`429`) or
    /// error code (`rate_limit_exceeded`).
    pub status: Option<String>,
    /// Record kind (`chat`, `http`, `checkpoint`, `lifecycle`).
    pub kind: Option<String>,
    /// Case-insensitive text in the message, error, stored (redacted) prompt and completion,
    /// citation sources, tool names, request id.
    pub text: Option<String>,
}

impl Filter {
    /// Whether `r` is selected.
    pub fn matches(&self, r: &Record) -> bool {
        let u = &r.unmapped;
        self.from.is_none_or(|t| r.time >= t)
            && self.to.is_none_or(|t| r.time < t)
            && self.tenant.as_deref().is_none_or(|t| r.tenant() == Some(t))
            && self
                .model
                .as_deref()
                .is_none_or(|m| u.model.as_deref() == Some(m))
            && self
                .rule
                .as_deref()
                .is_none_or(|x| u.decisions.iter().any(|d| d.rule == x))
            && self
                .action
                .as_deref()
                .is_none_or(|x| u.decisions.iter().any(|d| d.action == x))
            && self.status.as_deref().is_none_or(|s| {
                u.outcome == s
                    || r.status_code.as_deref() == Some(s)
                    || r.http_status().is_some_and(|c| c.to_string() == s)
            })
            && self.kind.as_deref().is_none_or(|k| u.kind == k)
            && self.text.as_deref().is_none_or(|t| text_matches(r, t))
    }
}

fn text_matches(r: &Record, needle: &str) -> bool {
    let needle = needle.to_lowercase();
    let has = |s: &str| s.to_lowercase().contains(&needle);
    let u = &r.unmapped;
    has(&r.message)
        || r.status_detail.as_deref().is_some_and(has)
        || r.request_id().is_some_and(has)
        || u.completion.as_deref().is_some_and(has)
        || u.prompt.iter().flatten().any(|m| has(&m.content))
        || u.retrieval
            .iter()
            .flat_map(|x| &x.citations)
            .any(|c| has(&c.source))
        || u.tool_calls.iter().any(|t| has(&t.name))
}

/// Parses a time: RFC 3339 (`2026-12-01T10:00:00Z`), a date (`2026-12-01`, midnight UTC), or
/// a duration before `now_ms` (`90s`, `15m`, `2h`, `7d`).
pub fn parse_time(s: &str, now_ms: i64) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc()
            .timestamp_millis());
    }
    let last = s.chars().last();
    let unit_ms = match last {
        Some('s') => 1_000,
        Some('m') => 60_000,
        Some('h') => 3_600_000,
        Some('d') => 86_400_000,
        _ => 0,
    };
    let number = &s[..s.len() - last.map_or(0, char::len_utf8)];
    match number.parse::<i64>() {
        Ok(n) if unit_ms > 0 && n >= 0 => Ok(now_ms - n.saturating_mul(unit_ms)),
        _ => Err(format!(
            "`{s}` is not a time: use RFC 3339 (2026-12-01T10:00:00Z), a date (2026-12-01) \
             or an age (90s, 15m, 2h, 7d)"
        )),
    }
}

/// Counts over a set of records.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Records counted.
    pub records: u64,
    /// By outcome.
    pub outcomes: BTreeMap<String, u64>,
    /// By tenant (`-` for none).
    pub tenants: BTreeMap<String, u64>,
    /// By model.
    pub models: BTreeMap<String, u64>,
    /// Decisions by rule id.
    pub rules: BTreeMap<String, u64>,
    /// Decisions by action.
    pub actions: BTreeMap<String, u64>,
    /// Decisions by `rule/action`.
    pub rule_actions: BTreeMap<String, u64>,
}

impl Stats {
    /// Adds one request record (checkpoints and writer events are not requests).
    pub fn add(&mut self, r: &Record) {
        let u = &r.unmapped;
        if u.kind != "chat" && u.kind != "http" {
            return;
        }
        self.records += 1;
        *self.outcomes.entry(u.outcome.clone()).or_default() += 1;
        *self
            .tenants
            .entry(r.tenant().unwrap_or("-").to_string())
            .or_default() += 1;
        if let Some(m) = &u.model {
            *self.models.entry(m.clone()).or_default() += 1;
        }
        for d in &u.decisions {
            *self.rules.entry(d.rule.clone()).or_default() += 1;
            *self.actions.entry(d.action.clone()).or_default() += 1;
            *self
                .rule_actions
                .entry(format!("{}/{}", d.rule, d.action))
                .or_default() += 1;
        }
    }
}

/// Columns of the CSV export.
pub const CSV_HEADER: &[&str] = &[
    "time",
    "sequence",
    "kind",
    "request_id",
    "trace_id",
    "tenant",
    "key_id",
    "route",
    "model",
    "backend",
    "template",
    "policy",
    "outcome",
    "http_status",
    "error",
    "decisions",
    "redactions",
    "citations",
    "tool_calls",
    "cache",
    "prompt_tokens",
    "completion_tokens",
    "duration_ms",
    "ttft_ms",
];

/// One CSV line (with newline) for `r`, columns as [`CSV_HEADER`].
pub fn csv_row(r: &Record) -> String {
    let u = &r.unmapped;
    let opt = |v: Option<&str>| v.unwrap_or_default().to_string();
    let num = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
    let fields = [
        r.time_dt.clone(),
        r.metadata.sequence.to_string(),
        u.kind.clone(),
        opt(r.request_id()),
        opt(r.trace.as_ref().map(|t| t.uid.as_str())),
        opt(r.tenant()),
        opt(r.key_id()),
        opt(r.route()),
        opt(u.model.as_deref()),
        opt(u.backend.as_deref()),
        opt(u.template.as_deref()),
        u.policy.as_ref().map(|p| p.id.clone()).unwrap_or_default(),
        u.outcome.clone(),
        r.http_status().map(|c| c.to_string()).unwrap_or_default(),
        opt(r.status_code.as_deref()),
        u.decisions
            .iter()
            .map(|d| format!("{}:{}:{}:{}", d.rule, d.stage, d.action, d.entity))
            .collect::<Vec<_>>()
            .join(";"),
        u.redactions.values().sum::<u32>().to_string(),
        u.retrieval
            .iter()
            .flat_map(|x| &x.citations)
            .map(|c| format!("{}#{}", c.source, c.chunk))
            .collect::<Vec<_>>()
            .join(";"),
        u.tool_calls
            .iter()
            .map(|t| format!("{}:{}", t.name, t.outcome))
            .collect::<Vec<_>>()
            .join(";"),
        opt(u.cache.as_deref()),
        num(u.tokens.map(|t| t.prompt)),
        num(u.tokens.map(|t| t.completion)),
        num(r.duration),
        num(u.ttft_ms),
    ];
    let mut line = fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
    line.push('\n');
    line
}

/// Quotes a CSV field when it needs it (RFC 4180); a leading `=`, `+`, `-`, `@` is
/// prefixed with `'` so spreadsheets do not run it as a formula.
fn csv_field(f: &str) -> String {
    let f = if f.starts_with(['=', '+', '-', '@']) {
        format!("'{f}")
    } else {
        f.to_string()
    };
    if f.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::{Activity, Class, DecisionRecord};

    fn rec(tenant: &str, rule: Option<&str>, outcome: &str) -> Record {
        let mut r = Record::new(Class::ApiActivity, Activity::Create, 1_000);
        r.unmapped.kind = "chat".into();
        r.set_outcome(outcome);
        r.actor = Some(crate::audit::record::Actor {
            user: crate::audit::record::User {
                uid: Some("k1".into()),
                kind: None,
                org: Some(crate::audit::record::Org { uid: tenant.into() }),
            },
        });
        if let Some(rule) = rule {
            r.unmapped.decisions.push(DecisionRecord {
                rule: rule.into(),
                action: "block".into(),
                ..Default::default()
            });
        }
        r.message = "chat.completions smollm2: Blocked".into();
        r
    }

    #[test]
    fn filters_combine() {
        let r = rec("acme", Some("no-secrets"), "blocked");
        let f = |f: Filter| f.matches(&r);
        assert!(f(Filter::default()));
        assert!(f(Filter {
            tenant: Some("acme".into()),
            rule: Some("no-secrets".into()),
            action: Some("block".into()),
            status: Some("blocked".into()),
            text: Some("BLOCKED".into()),
            from: Some(1_000),
            to: Some(1_001),
            ..Default::default()
        }));
        assert!(!f(Filter {
            tenant: Some("other".into()),
            ..Default::default()
        }));
        assert!(!f(Filter {
            from: Some(1_001),
            ..Default::default()
        }));
        assert!(!f(Filter {
            action: Some("redact".into()),
            ..Default::default()
        }));
    }

    #[test]
    fn times() {
        let now = 10 * 86_400_000;
        assert_eq!(parse_time("2h", now), Ok(now - 7_200_000));
        assert_eq!(parse_time("1970-01-02", now), Ok(86_400_000));
        assert_eq!(parse_time("1970-01-01T00:00:01Z", now), Ok(1_000));
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_time("-5m", now).is_err());
        assert!(parse_time("", now).is_err());
    }

    #[test]
    fn stats_count_requests_and_decisions() {
        let mut s = Stats::default();
        s.add(&rec("acme", Some("r1"), "blocked"));
        s.add(&rec("acme", None, "ok"));
        let mut cp = rec("x", None, "ok");
        cp.unmapped.kind = "checkpoint".into();
        s.add(&cp);
        assert_eq!(s.records, 2);
        assert_eq!(s.tenants["acme"], 2);
        assert_eq!(s.rule_actions["r1/block"], 1);
        assert_eq!(s.outcomes["ok"], 1);
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
        assert_eq!(csv_field("plain"), "plain");
        let row = csv_row(&rec("acme", Some("r1"), "blocked"));
        assert_eq!(row.matches(',').count(), CSV_HEADER.len() - 1);
    }
}
