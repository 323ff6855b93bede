//! `GET /admin/audit`: the audit log's review page, rendered on the server (no script, no
//! external assets). Filter and page through records, open one to see its decisions,
//! citations and tool calls, and see whether the chain verifies.
//!
//! Admin keys only: a browser signs in first (`super::session`); API clients send the
//! usual `Authorization: Bearer`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;

use super::require_admin;
use crate::audit::files;
use crate::audit::query::{parse_time, Filter};
use crate::audit::record::{now_ms, Record};
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
    let Some(auditor) = state.audit.clone() else {
        return Html(page(
            "Audit log",
            "<h1>Gatehouse audit log</h1><p>The audit log is off: add an <code>audit:</code> \
             section to the configuration (docs/audit.md).</p>",
        ))
        .into_response();
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
    let loaded = tokio::task::spawn_blocking(move || -> Result<_, String> {
        // Show what has been answered so far, not what is still queued.
        auditor.flush(Duration::from_secs(2));
        let status = auditor.verify_cached(VERIFY_MAX_AGE);
        let mut matched: Vec<Record> = Vec::new();
        let mut total = 0usize;
        for item in files::records(auditor.dir()).map_err(|e| e.to_string())? {
            let (_, r) = item.map_err(|e| e.to_string())?;
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
        Ok(Err(e)) => return server_error(&e),
        Err(e) => return server_error(&e.to_string()),
    };
    matched.reverse();
    let older = matched.len() > PAGE;
    matched.truncate(PAGE);
    Html(render_index(&params, &status, &matched, total, older)).into_response()
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
    let found = tokio::task::spawn_blocking(move || -> Result<_, String> {
        auditor.flush(Duration::from_secs(2));
        for item in files::records(auditor.dir()).map_err(|e| e.to_string())? {
            let (line, r) = item.map_err(|e| e.to_string())?;
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
        Ok(Ok(Some((r, file, line)))) => Html(render_record(&r, &file, line)).into_response(),
        Ok(Ok(None)) => ApiError::NotFound(format!("audit record {sequence}")).into_response(),
        Ok(Err(e)) => server_error(&e),
        Err(e) => server_error(&e.to_string()),
    }
}

fn server_error(e: &str) -> Response {
    tracing::error!(error = %e, "audit page: cannot read the log");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Html(page(
            "Audit log",
            &format!(
                "<h1>Gatehouse audit log</h1><p class=\"error\">Cannot read the log: {}</p>",
                esc(e)
            ),
        )),
    )
        .into_response()
}

use crate::audit::ChainStatus;

fn render_index(
    p: &Params,
    status: &ChainStatus,
    records: &[Record],
    total: usize,
    older: bool,
) -> String {
    let mut b = String::from("<header><h1>Gatehouse audit log</h1>");
    b.push_str(
        "<form method=\"post\" action=\"/admin/logout\"><button>Sign out</button></form></header>",
    );
    b.push_str(&chain_banner(status));
    // Filters.
    let v = |o: &Option<String>| esc(o.as_deref().unwrap_or_default());
    let _ = write!(
        b,
        "<form method=\"get\" action=\"/admin/audit\" class=\"filters\" id=\"filters\">\
         <label>From <input name=\"from\" value=\"{}\" placeholder=\"24h or 2026-12-01\"></label>\
         <label>To <input name=\"to\" value=\"{}\"></label>\
         <label>Tenant <input name=\"tenant\" value=\"{}\"></label>\
         <label>Model <input name=\"model\" value=\"{}\"></label>\
         <label>Rule <input name=\"rule\" value=\"{}\"></label>\
         <label>Action {}</label>\
         <label>Status <input name=\"status\" value=\"{}\" placeholder=\"blocked, 429...\"></label>\
         <label>Kind {}</label>\
         <label>Text <input name=\"q\" value=\"{}\"></label>\
         <button type=\"submit\" id=\"apply\">Filter</button> <a href=\"/admin/audit\">Reset</a></form>",
        v(&p.from),
        v(&p.to),
        v(&p.tenant),
        v(&p.model),
        v(&p.rule),
        select("action", &["log", "warn", "redact", "block"], p.action.as_deref()),
        v(&p.status),
        select("kind", &["chat", "http", "checkpoint", "lifecycle"], p.kind.as_deref()),
        v(&p.q),
    );
    let _ = write!(
        b,
        "<p class=\"count\" id=\"count\">{total} matching record{}</p>",
        if total == 1 { "" } else { "s" }
    );
    b.push_str(
        "<table id=\"records\"><thead><tr><th>Seq</th><th>Time (UTC)</th><th>Kind</th>\
         <th>Outcome</th><th>Tenant</th><th>Key</th><th>Operation</th><th>Model</th>\
         <th>Decisions</th><th>Tokens</th><th>ms</th></tr></thead><tbody>",
    );
    for r in records {
        let u = &r.unmapped;
        let decisions: Vec<String> = u
            .decisions
            .iter()
            .map(|d| format!("{} ({})", d.rule, d.action))
            .collect();
        let _ = write!(
            b,
            "<tr class=\"outcome-{}\"><td><a class=\"open\" href=\"/admin/audit/records/{seq}\">{seq}</a></td>\
             <td>{}</td><td>{}</td><td class=\"outcome\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&u.outcome),
            esc(&r.time_dt),
            esc(&u.kind),
            esc(&u.outcome),
            esc(r.tenant().unwrap_or("")),
            esc(r.key_id().unwrap_or("")),
            esc(r.api.as_ref().map(|a| a.operation.as_str()).unwrap_or("")),
            esc(u.model.as_deref().unwrap_or("")),
            esc(&decisions.join(", ")),
            u.tokens.map(|t| t.total.to_string()).unwrap_or_default(),
            r.duration.map(|d| d.to_string()).unwrap_or_default(),
            seq = r.metadata.sequence,
        );
    }
    b.push_str("</tbody></table><nav>");
    if p.before.is_some() {
        let _ = write!(
            b,
            "<a href=\"{}\" id=\"newest\">Newest</a> ",
            esc(&p.link(None))
        );
    }
    if older {
        if let Some(last) = records.last() {
            let _ = write!(
                b,
                "<a href=\"{}\" id=\"older\">Older</a>",
                esc(&p.link(Some(last.metadata.sequence)))
            );
        }
    }
    b.push_str("</nav>");
    page("Audit log", &b)
}

fn select(name: &str, options: &[&str], current: Option<&str>) -> String {
    let mut s = format!("<select name=\"{name}\"><option value=\"\">any</option>");
    for o in options {
        let sel = if current == Some(o) { " selected" } else { "" };
        let _ = write!(s, "<option{sel}>{o}</option>");
    }
    s.push_str("</select>");
    s
}

fn chain_banner(status: &ChainStatus) -> String {
    match status {
        Err(e) => format!(
            "<p class=\"chain bad\" id=\"chain\">Chain not verified: {}</p>",
            esc(e)
        ),
        Ok((r, at)) => {
            let when = crate::audit::record::format_time(*at);
            match &r.broken {
                Some(b) => format!(
                    "<p class=\"chain bad\" id=\"chain\">Chain BROKEN at {} line {} (sequence {}): {} \
                     <small>checked {}</small></p>",
                    esc(&b.file.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()),
                    b.line,
                    b.sequence.map(|s| s.to_string()).unwrap_or_else(|| "?".into()),
                    esc(&b.reason),
                    esc(&when)
                ),
                None => {
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
                    format!(
                        "<p class=\"chain ok\" id=\"chain\">Chain verified: {} records in {} files, \
                         sequences {}–{}; {signed}{torn}. <small>checked {}</small></p>",
                        r.records,
                        r.files,
                        r.first_sequence.unwrap_or(0),
                        r.last_sequence.unwrap_or(0),
                        esc(&when)
                    )
                }
            }
        }
    }
}

fn render_record(r: &Record, file: &str, line: usize) -> String {
    let u = &r.unmapped;
    let mut b = format!(
        "<header><h1>Audit record {}</h1><a href=\"/admin/audit\">Back to the log</a></header>",
        r.metadata.sequence
    );
    let rows: Vec<(&str, String)> = vec![
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
    b.push_str("<table class=\"fields\" id=\"fields\">");
    for (k, v) in rows.iter().filter(|(_, v)| !v.is_empty()) {
        let _ = write!(b, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    b.push_str("</table>");

    let _ = write!(b, "<h2>Guardrail decisions ({})</h2>", u.decisions.len());
    if !u.decisions.is_empty() {
        b.push_str(
            "<table id=\"decisions\"><thead><tr><th>Policy</th><th>Rule</th><th>Stage</th><th>Action</th>\
             <th>Severity</th><th>Entity</th><th>Message</th><th>Span</th><th>Placeholder</th><th>Detail</th></tr></thead><tbody>",
        );
        for d in &u.decisions {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"action-{}\">{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}–{}</td><td>{}</td><td>{}</td></tr>",
                esc(&d.policy),
                esc(&d.rule),
                esc(&d.stage),
                esc(&d.action),
                esc(&d.action),
                esc(&d.severity),
                esc(&d.entity),
                d.message.map(|m| m.to_string()).unwrap_or_default(),
                d.start,
                d.end,
                esc(d.placeholder.as_deref().unwrap_or("")),
                esc(d.detail.as_deref().unwrap_or("")),
            );
        }
        b.push_str("</tbody></table>");
    }

    if let Some(ret) = &u.retrieval {
        let _ = write!(
            b,
            "<h2>Retrieval: {} ({}, {} ms)</h2>",
            esc(&ret.collection),
            esc(&ret.status),
            ret.elapsed_ms
        );
        b.push_str("<table id=\"citations\"><thead><tr><th>#</th><th>Source</th><th>Chunk</th><th>Score</th><th>Point</th></tr></thead><tbody>");
        for c in &ret.citations {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{}</td></tr>",
                c.id,
                esc(&c.source),
                c.chunk,
                c.score,
                c.point_id
            );
        }
        b.push_str("</tbody></table>");
        if let Some(e) = &ret.error {
            let _ = write!(b, "<p class=\"error\">{}</p>", esc(e));
        }
    }

    if !u.tool_calls.is_empty() {
        b.push_str("<h2>Tool calls</h2><table id=\"tools\"><thead><tr><th>Name</th><th>Side</th><th>Outcome</th>\
                    <th>Call id</th><th>Arguments (SHA-256)</th><th>ms</th></tr></thead><tbody>");
        for t in &u.tool_calls {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                esc(&t.name),
                esc(&t.side),
                esc(&t.outcome),
                esc(&t.call_id),
                esc(&t.arguments_sha256),
                t.elapsed_ms.map(|m| m.to_string()).unwrap_or_default()
            );
        }
        b.push_str("</tbody></table>");
    }

    if let Some(prompt) = &u.prompt {
        b.push_str("<h2>Prompt (after redaction)</h2><div id=\"prompt\">");
        for m in prompt {
            let _ = write!(
                b,
                "<p class=\"msg\"><b>{}</b>: <span>{}</span></p>",
                esc(&m.role),
                esc(&m.content)
            );
        }
        b.push_str("</div>");
    }
    if let Some(c) = &u.completion {
        let _ = write!(
            b,
            "<h2>Completion (after redaction)</h2><pre id=\"completion\">{}</pre>",
            esc(c)
        );
    }
    let raw = serde_json::to_string_pretty(r).unwrap_or_default();
    let _ = write!(
        b,
        "<details><summary>Raw record</summary><pre id=\"raw\">{}</pre></details>",
        esc(&raw)
    );
    page(&format!("Audit record {}", r.metadata.sequence), &b)
}

pub(super) fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Gatehouse</title><style>{STYLE}</style></head><body>{body}</body></html>",
        esc(title)
    )
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#1b1f24}\
header{display:flex;gap:1rem;align-items:center;justify-content:space-between}\
h1{font-size:1.4rem;margin:0 0 .5rem}h2{font-size:1.1rem;margin-top:1.5rem}\
table{border-collapse:collapse;width:100%;margin:.5rem 0}\
th,td{border-bottom:1px solid #d8dee4;padding:.3rem .5rem;text-align:left;vertical-align:top}\
th{background:#f6f8fa}.fields th{width:14rem}\
.filters{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:end;margin:1rem 0}\
.filters label{display:flex;flex-direction:column;font-size:.8rem;color:#57606a}\
input,select{font:inherit;padding:.2rem .3rem}\
.chain{padding:.5rem .8rem;border-radius:6px}.chain.ok{background:#dafbe1}.chain.bad{background:#ffebe9}\
.outcome-blocked .outcome,.action-block{color:#cf222e;font-weight:600}\
.outcome-refused .outcome,.outcome-failed .outcome{color:#9a6700;font-weight:600}\
.error{color:#cf222e}pre{white-space:pre-wrap;background:#f6f8fa;padding:.5rem}\
nav{margin-top:1rem;display:flex;gap:1rem}";

/// Escapes text for HTML bodies and attribute values.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
