//! `GET /admin/audit`: the audit log's review page, rendered on the server (no script, no
//! external assets). Filter and page through records, open one to see its decisions,
//! citations and tool calls, and see whether the chain verifies.
//!
//! Admin keys only: a browser signs in first (`super::session`); API clients send the
//! usual `Authorization: Bearer`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use minijinja::context;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};

use super::{pages, require_admin};
use crate::audit::query::{parse_time, Filter};
use crate::audit::record::{now_ms, Record};
use crate::audit::ChainStatus;
use crate::audit::{files, AuditError};
use crate::error::ApiError;
use crate::http::AppState;

/// Records per page.
const PAGE: usize = 50;
/// A verification this recent is shown instead of walking the chain again.
const VERIFY_MAX_AGE: Duration = Duration::from_secs(15);

/// The page's query string.
#[derive(Debug, Default, Deserialize)]
pub struct Params {
    from: Option<String>,
    to: Option<String>,
    tenant: Option<String>,
    model: Option<String>,
    rule: Option<String>,
    action: Option<String>,
    status: Option<String>,
    kind: Option<String>,
    q: Option<String>,
    /// Show records older than this sequence (paging).
    before: Option<u64>,
}

impl Params {
    fn filter(&self, now: i64) -> Result<Filter, String> {
        fn some(v: &Option<String>) -> Option<&str> {
            v.as_deref().map(str::trim).filter(|s| !s.is_empty())
        }
        let time = |v: &Option<String>| some(v).map(|t| parse_time(t, now)).transpose();
        Ok(Filter {
            from: time(&self.from)?,
            to: time(&self.to)?,
            tenant: some(&self.tenant).map(str::to_string),
            model: some(&self.model).map(str::to_string),
            rule: some(&self.rule).map(str::to_string),
            action: some(&self.action).map(str::to_string),
            status: some(&self.status).map(str::to_string),
            kind: some(&self.kind).map(str::to_string),
            text: some(&self.q).map(str::to_string),
        })
    }

    /// The query string for the same filter, `before` replaced.
    fn link(&self, before: Option<u64>) -> String {
        let mut q = url_pairs(&[
            ("from", &self.from),
            ("to", &self.to),
            ("tenant", &self.tenant),
            ("model", &self.model),
            ("rule", &self.rule),
            ("action", &self.action),
            ("status", &self.status),
            ("kind", &self.kind),
            ("q", &self.q),
        ]);
        if let Some(b) = before {
            q.push(format!("before={b}"));
        }
        format!("/admin/audit?{}", q.join("&"))
    }
}

fn url_pairs(pairs: &[(&str, &Option<String>)]) -> Vec<String> {
    // RFC 3986 unreserved characters stay as they are.
    const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    pairs
        .iter()
        .filter_map(|(k, v)| {
            v.as_deref()
                .filter(|v| !v.is_empty())
                .map(|v| format!("{k}={}", utf8_percent_encode(v, ESCAPED)))
        })
        .collect()
}

/// `GET /admin/audit`.
pub async fn index(
    State(state): State<Arc<AppState>>,
    Query(params): Query<Params>,
    req: Request,
) -> Response {
    if let Err(e) = require_admin(&req) {
        return e.into_response();
    }
    // The sign-out form's token; empty for a caller with a bearer key (no session to end).
    let csrf = req
        .extensions()
        .get::<super::session::AdminSession>()
        .map(|s| s.csrf.clone())
        .unwrap_or_default();
    let Some(auditor) = state.audit.clone() else {
        return pages::html(pages::render(
            "message.html",
            context! { title => "Audit log" },
        ));
    };
    let filter = match params.filter(now_ms()) {
        Ok(f) => f,
        Err(message) => {
            return ApiError::InvalidRequest {
                param: "from",
                message,
            }
            .into_response()
        }
    };
    let before = params.before;
    let loaded = tokio::task::spawn_blocking(move || -> Result<_, AuditError> {
        // Show what has been answered so far, not what is still queued.
        auditor.flush(Duration::from_secs(2));
        let status = auditor.verify_cached(VERIFY_MAX_AGE);
        let mut matched: Vec<Record> = Vec::new();
        let mut total = 0usize;
        for item in files::records(auditor.dir())? {
            let (_, r) = item?;
            if before.is_some_and(|b| r.metadata.sequence >= b) || !filter.matches(&r) {
                continue;
            }
            total += 1;
            matched.push(r);
            // Keep memory bounded: only the newest page (plus one, to know of older ones).
            if matched.len() > 4 * PAGE {
                matched.drain(..matched.len() - (PAGE + 1));
            }
        }
        Ok((status, matched, total))
    })
    .await;
    let (status, mut matched, total) = match loaded {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return server_error(&e.to_string()),
        Err(e) => return server_error(&e.to_string()),
    };
    matched.reverse();
    let older = matched.len() > PAGE;
    matched.truncate(PAGE);
    pages::html(render_index(
        &params, &status, &matched, total, older, &csrf,
    ))
}

/// `GET /admin/audit/records/{sequence}`.
pub async fn record(
    State(state): State<Arc<AppState>>,
    Path(sequence): Path<u64>,
    req: Request,
) -> Response {
    if let Err(e) = require_admin(&req) {
        return e.into_response();
    }
    let Some(auditor) = state.audit.clone() else {
        return ApiError::NotFound("the audit log is off".into()).into_response();
    };
    let found = tokio::task::spawn_blocking(move || -> Result<_, AuditError> {
        auditor.flush(Duration::from_secs(2));
        for item in files::records(auditor.dir())? {
            let (line, r) = item?;
            if r.metadata.sequence == sequence {
                let file = line
                    .path
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                return Ok(Some((r, file, line.number)));
            }
        }
        Ok(None)
    })
    .await;
    match found {
        Ok(Ok(Some((r, file, line)))) => pages::html(render_record(&r, &file, line)),
        Ok(Ok(None)) => ApiError::NotFound(format!("audit record {sequence}")).into_response(),
        Ok(Err(e)) => server_error(&e.to_string()),
        Err(e) => server_error(&e.to_string()),
    }
}

fn server_error(e: &str) -> Response {
    tracing::error!(error = %e, "audit page: cannot read the log");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        pages::html(pages::render(
            "message.html",
            context! { title => "Audit log", error => e },
        )),
    )
        .into_response()
}

/// One filter input; `options` makes it a select.
#[derive(Serialize)]
struct Field<'a> {
    label: &'static str,
    name: &'static str,
    value: &'a str,
    placeholder: &'static str,
    options: &'static [&'static str],
}

/// One row of the record list.
#[derive(Serialize)]
struct Row<'a> {
    sequence: u64,
    time: &'a str,
    kind: &'a str,
    outcome: &'a str,
    tenant: &'a str,
    key: &'a str,
    operation: &'a str,
    model: &'a str,
    decisions: String,
    tokens: Option<u64>,
    ms: Option<u64>,
}

/// The chain status line at the top of the list.
#[derive(Debug, Serialize)]
struct Banner {
    ok: bool,
    text: String,
    checked: Option<String>,
}

fn render_index(
    p: &Params,
    status: &ChainStatus,
    records: &[Record],
    total: usize,
    older: bool,
    csrf: &str,
) -> Result<String, minijinja::Error> {
    fn v(o: &Option<String>) -> &str {
        o.as_deref().unwrap_or_default()
    }
    let field = |label, name, value, placeholder, options| Field {
        label,
        name,
        value,
        placeholder,
        options,
    };
    let filters = [
        field("From", "from", v(&p.from), "24h or 2026-12-01", &[]),
        field("To", "to", v(&p.to), "", &[]),
        field("Tenant", "tenant", v(&p.tenant), "", &[]),
        field("Model", "model", v(&p.model), "", &[]),
        field("Rule", "rule", v(&p.rule), "", &[]),
        field(
            "Action",
            "action",
            v(&p.action),
            "",
            &["log", "warn", "redact", "block"],
        ),
        field("Status", "status", v(&p.status), "blocked, 429...", &[]),
        field(
            "Kind",
            "kind",
            v(&p.kind),
            "",
            &["chat", "http", "checkpoint", "lifecycle"],
        ),
        field("Text", "q", v(&p.q), "", &[]),
    ];
    let rows: Vec<Row> = records
        .iter()
        .map(|r| {
            let u = &r.unmapped;
            Row {
                sequence: r.metadata.sequence,
                time: &r.time_dt,
                kind: &u.kind,
                outcome: &u.outcome,
                tenant: r.tenant().unwrap_or(""),
                key: r.key_id().unwrap_or(""),
                operation: r.api.as_ref().map(|a| a.operation.as_str()).unwrap_or(""),
                model: u.model.as_deref().unwrap_or(""),
                decisions: u
                    .decisions
                    .iter()
                    .map(|d| format!("{} ({})", d.rule, d.action))
                    .collect::<Vec<_>>()
                    .join(", "),
                tokens: u.tokens.map(|t| t.total),
                ms: r.duration,
            }
        })
        .collect();
    let older = older
        .then(|| records.last())
        .flatten()
        .map(|last| p.link(Some(last.metadata.sequence)));
    pages::render(
        "index.html",
        context! {
            title => "Audit log",
            chain => chain_banner(status),
            filters,
            total,
            rows,
            newest => p.before.is_some().then(|| p.link(None)),
            older,
            csrf,
        },
    )
}

fn chain_banner(status: &ChainStatus) -> Banner {
    let (r, at) = match status {
        Err(e) => {
            return Banner {
                ok: false,
                text: format!("Chain not verified: {e}"),
                checked: None,
            }
        }
        Ok(v) => v,
    };
    let checked = Some(crate::audit::record::format_time(*at));
    if let Some(b) = &r.broken {
        return Banner {
            ok: false,
            text: format!(
                "Chain BROKEN at {} line {} (sequence {}): {}",
                b.file
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                b.line,
                b.sequence
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "?".into()),
                b.reason
            ),
            checked,
        };
    }
    let signed = match (r.signed_checkpoints, r.last_signed_sequence) {
        (0, _) => format!(
            "no signed checkpoint verified yet ({} checkpoints unchecked)",
            r.unchecked_checkpoints
        ),
        (n, Some(last)) => format!(
            "{n} signed checkpoints verified, the last at sequence {last}; {} records since",
            r.unsigned_tail
        ),
        (n, None) => format!("{n} signed checkpoints verified"),
    };
    let torn = if r.torn.is_empty() {
        String::new()
    } else {
        format!(
            "; {} unfinished record(s) from a crash, never acknowledged",
            r.torn.len()
        )
    };
    Banner {
        ok: true,
        text: format!(
            "Chain verified: {} records in {} files, sequences {}–{}; {signed}{torn}.",
            r.records,
            r.files,
            r.first_sequence.unwrap_or(0),
            r.last_sequence.unwrap_or(0),
        ),
        checked,
    }
}

/// The labelled fields of a record's page, empty ones left out.
fn record_fields(r: &Record, file: &str, line: usize) -> Vec<(&'static str, String)> {
    let u = &r.unmapped;
    let fields: Vec<(&str, String)> = vec![
        ("Time (UTC)", r.time_dt.clone()),
        ("Kind", u.kind.clone()),
        ("Outcome", u.outcome.clone()),
        ("Status", r.status_code.clone().unwrap_or_default()),
        ("Message", r.message.clone()),
        ("Error", r.status_detail.clone().unwrap_or_default()),
        ("Request id", r.request_id().unwrap_or_default().to_string()),
        (
            "Trace id",
            r.trace.as_ref().map(|t| t.uid.clone()).unwrap_or_default(),
        ),
        ("Tenant", r.tenant().unwrap_or_default().to_string()),
        ("Key id", r.key_id().unwrap_or_default().to_string()),
        (
            "Operation",
            r.api
                .as_ref()
                .map(|a| a.operation.clone())
                .unwrap_or_default(),
        ),
        ("Route", r.route().unwrap_or_default().to_string()),
        ("Model", u.model.clone().unwrap_or_default()),
        ("Backend", u.backend.clone().unwrap_or_default()),
        ("Template", u.template.clone().unwrap_or_default()),
        (
            "Policy",
            u.policy
                .as_ref()
                .map(|p| format!("{} ({})", p.id, p.version))
                .unwrap_or_default(),
        ),
        ("Cache", u.cache.clone().unwrap_or_default()),
        ("Finish reason", u.finish_reason.clone().unwrap_or_default()),
        (
            "Tokens",
            u.tokens
                .map(|t| format!("{} prompt + {} completion", t.prompt, t.completion))
                .unwrap_or_default(),
        ),
        (
            "Duration",
            r.duration.map(|d| format!("{d} ms")).unwrap_or_default(),
        ),
        (
            "Time to first token",
            u.ttft_ms.map(|d| format!("{d} ms")).unwrap_or_default(),
        ),
        (
            "Redactions",
            u.redactions
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("Stored at", format!("{file}, line {line}")),
        ("Previous hash", u.prev_hash.clone()),
    ];
    fields.into_iter().filter(|(_, v)| !v.is_empty()).collect()
}

fn render_record(r: &Record, file: &str, line: usize) -> Result<String, minijinja::Error> {
    pages::render(
        "record.html",
        context! {
            title => format!("Audit record {}", r.metadata.sequence),
            sequence => r.metadata.sequence,
            fields => record_fields(r, file, line),
            decision_count => r.unmapped.decisions.len(),
            u => &r.unmapped,
            raw => serde_json::to_string_pretty(r).unwrap_or_default(),
        },
    )
}

#[cfg(test)]
mod tests;
