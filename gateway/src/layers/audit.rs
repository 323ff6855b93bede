//! The audit layer, outermost in the domain stack (DESIGN.md): one record per chat request
//! or batch item, written once its answer has ended (completed, blocked, failed, or dropped
//! by a client that went away), with everything the inner layers noted on the way. The drift
//! monitor gets the same record's features (`crate::drift`), audit log or not.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::Stream;

use crate::audit::record::{
    now_ms, Activity, CitationRecord, Class, DecisionRecord, Exchange, HttpRequest, PolicyRef,
    Record, RetrievalRecord, Tokens, ToolCallRecord, Url,
};
use crate::audit::{Auditor, Slot};
use crate::domain::{ChatEvent, ChatRequest, GuardContext, RetrievalRun, Trail, Usage};
use crate::drift::{Monitor, Observation};
use crate::error::ApiError;
use crate::layers::step::{Next, Step};
use crate::layers::ChatStream;
use crate::policy::{Action, Decision};

/// See the module docs; with neither an auditor nor a drift monitor, it passes through.
pub struct Audit {
    auditor: Option<Arc<Auditor>>,
    drift: Option<Arc<Monitor>>,
}

impl Audit {
    /// Writes to `auditor` and hands what the record says to `drift`.
    pub fn new(auditor: Option<Arc<Auditor>>, drift: Option<Arc<Monitor>>) -> Self {
        Self { auditor, drift }
    }
}

impl Step for Audit {
    const NAME: &'static str = "audit";

    async fn call(&self, req: ChatRequest, next: Next) -> Result<ChatStream, ApiError> {
        if self.auditor.is_none() && self.drift.is_none() {
            return next.run(req).await;
        }
        let log = match self.auditor.clone() {
            None => None,
            Some(auditor) => {
                let slot = req
                    .audit_slot
                    .take()
                    .map_or_else(|| auditor.admit(), Ok)
                    .map_err(|_| ApiError::AuditUnavailable)?;
                Some((auditor, slot))
            }
        };
        // Writes a `cancelled` record if this future is dropped before the answer comes.
        let mut unanswered = Unanswered(Some(Pending {
            draft: Draft::new(&req),
            log,
            drift: self.drift.clone(),
        }));
        let result = next.run(req).await;
        let pending = unanswered.0.take().expect("taken once, here");
        match result {
            Err(e) => {
                pending.write(Ending::Error(&e), &Seen::default());
                Err(e)
            }
            Ok(stream) => Ok(Box::pin(Audited {
                inner: stream,
                pending: Some(pending),
                seen: Seen::default(),
            }) as ChatStream),
        }
    }
}

/// What is known when a request enters the domain stack.
struct Draft {
    start_ms: i64,
    started: Instant,
    request_id: String,
    route: String,
    model: String,
    stream: bool,
    tenant: Option<String>,
    key_id: Option<String>,
    trace: Option<crate::audit::record::Trace>,
    guard: GuardContext,
    trail: Trail,
}

/// What the answer showed while it streamed.
#[derive(Default)]
struct Seen {
    ttft_ms: Option<u64>,
    text: String,
    client_calls: Vec<ToolCallRecord>,
    usage: Option<Usage>,
    finish_reason: Option<&'static str>,
}

/// How a request ended.
enum Ending<'a> {
    Done,
    Error(&'a ApiError),
    Cancelled,
}

impl Draft {
    fn new(req: &ChatRequest) -> Self {
        let principal = req.caller.principal.as_ref();
        Self {
            start_ms: now_ms(),
            started: Instant::now(),
            request_id: req.request_id.clone(),
            route: req.caller.route.clone(),
            model: req.model.clone(),
            stream: req.stream,
            tenant: req.caller.tenant.clone(),
            key_id: principal.map(|p| p.key_id.clone()),
            trace: crate::telemetry::current_trace(),
            guard: req.guard.clone(),
            trail: req.trail.clone(),
        }
    }

    fn stores_completion(&self) -> bool {
        self.guard.policy().is_some_and(|p| p.audit.completions)
    }

    /// The record, and the prompt text the drift monitor samples, if this request's.
    fn finish(self, ending: Ending<'_>, seen: &Seen) -> (Record, Option<String>) {
        let mut r = Record::new(Class::ApiActivity, Activity::Create, now_ms());
        let (outcome, code, error) = match ending {
            Ending::Done => ("ok", 200, None),
            Ending::Cancelled => ("cancelled", 499, None),
            Ending::Error(e) => {
                let (status, _, code) = e.parts();
                let outcome = match e {
                    ApiError::PolicyViolation(_) => "blocked",
                    _ if status.is_server_error() => "failed",
                    _ => "refused",
                };
                let message = e.body()["error"]["message"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| e.to_string());
                (outcome, status.as_u16(), Some((code, message)))
            }
        };
        r.set_outcome(outcome);
        let batch = self.route == "batch";
        let operation = if batch {
            "batch.item"
        } else {
            "chat.completions"
        };
        r.set_exchange(Exchange {
            operation: operation.into(),
            request_id: self.request_id.clone(),
            start_ms: self.start_ms,
            duration_ms: self.started.elapsed().as_millis() as u64,
            http_status: code,
            error: error
                .as_ref()
                .map(|(c, m)| (c.to_string(), Some(m.clone()))),
            key_id: self.key_id.clone(),
            tenant: self.tenant.clone(),
        });
        // Batch items come from the command line, not over HTTP.
        r.http_request = (!batch).then(|| HttpRequest {
            http_method: "POST".into(),
            url: Url {
                path: self.route.clone(),
            },
        });
        r.trace = self.trace.clone();

        let trail = self.trail.snapshot();
        let u = &mut r.unmapped;
        u.kind = "chat".into();
        u.model = Some(self.model.clone());
        u.backend = trail.backend.clone();
        u.template = trail.template.clone();
        u.stream = self.stream;
        if let (Some(p), Some(v)) = (self.guard.policy(), self.guard.version()) {
            u.policy = Some(PolicyRef {
                id: p.id.to_string(),
                version: v.to_string(),
            });
        }
        let decisions = self.guard.decisions();
        for d in &decisions {
            if d.action == Action::Redact {
                *u.redactions.entry(d.entity.clone()).or_default() += 1;
            }
        }
        u.decisions = decisions.iter().map(decision_record).collect();
        u.retrieval = trail.retrieval.as_ref().map(retrieval_record);
        u.tool_calls = trail
            .tool_runs
            .iter()
            .map(|t| ToolCallRecord {
                name: t.name.clone(),
                call_id: t.call_id.clone(),
                arguments_sha256: crate::audit::record::sha256_hex(t.arguments.as_bytes()),
                outcome: t.status.clone(),
                side: "server".into(),
                elapsed_ms: Some(t.elapsed_ms),
            })
            .chain(seen.client_calls.iter().cloned())
            .collect();
        u.cache = trail.cache.map(str::to_string);
        u.finish_reason = seen.finish_reason.map(str::to_string);
        u.tokens = seen.usage.as_ref().map(|us| Tokens {
            prompt: us.prompt_tokens,
            completion: us.completion_tokens,
            total: us.prompt_tokens + us.completion_tokens,
        });
        u.ttft_ms = seen.ttft_ms;
        u.prompt = trail.audit_prompt.clone();
        u.prompt_script = trail.prompt_script.map(str::to_string);
        if self.stores_completion() && (!seen.text.is_empty() || outcome == "ok") {
            u.completion = Some(seen.text.clone());
        }
        r.set_severity_from_decisions();
        r.message = match &error {
            Some((c, _)) => format!("{operation} {}: {outcome} ({c})", self.model),
            None => format!("{operation} {}: {outcome}", self.model),
        };
        (r, trail.drift_sample)
    }
}

struct Pending {
    draft: Draft,
    /// The audit log and this request's place in its queue.
    log: Option<(Arc<Auditor>, Slot)>,
    drift: Option<Arc<Monitor>>,
}

impl Pending {
    fn write(self, ending: Ending<'_>, seen: &Seen) {
        let (record, sample) = self.draft.finish(ending, seen);
        if let Some(m) = &self.drift {
            if let Some(o) = Observation::from_record(&record) {
                m.observe(o.with_sample(sample));
            }
        }
        if let Some((auditor, slot)) = self.log {
            auditor.write(slot, record);
        }
    }
}

/// A request waiting for its answer to start (in a model's queue, in retrieval...): dropped
/// with it, when the client goes away or the request times out, it records the request as
/// cancelled.
struct Unanswered(Option<Pending>);

impl Drop for Unanswered {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            p.write(Ending::Cancelled, &Seen::default());
        }
    }
}

/// The answer stream, recording what passes and writing the record at its end.
struct Audited {
    inner: ChatStream,
    pending: Option<Pending>,
    seen: Seen,
}

impl Audited {
    fn write(&mut self, ending: Ending<'_>) {
        if let Some(p) = self.pending.take() {
            p.write(ending, &self.seen);
        }
    }
}

impl Stream for Audited {
    type Item = Result<ChatEvent, ApiError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let item = match this.inner.as_mut().poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(item) => item,
        };
        let keep_text = this
            .pending
            .as_ref()
            .is_some_and(|p| p.draft.stores_completion());
        match &item {
            Some(Ok(ChatEvent::Delta(t))) => {
                if let Some(p) = &this.pending {
                    if this.seen.ttft_ms.is_none() && !t.is_empty() {
                        this.seen.ttft_ms = Some(p.draft.started.elapsed().as_millis() as u64);
                    }
                }
                if keep_text {
                    this.seen.text.push_str(t);
                }
            }
            Some(Ok(ChatEvent::ToolCall(c))) => this.seen.client_calls.push(ToolCallRecord {
                name: c.name.clone(),
                call_id: c.id.clone(),
                arguments_sha256: crate::audit::record::sha256_hex(c.arguments.as_bytes()),
                outcome: "returned".into(),
                side: "client".into(),
                elapsed_ms: None,
            }),
            Some(Ok(ChatEvent::Done {
                finish_reason,
                usage,
            })) => {
                this.seen.finish_reason = Some(finish_reason.as_str());
                this.seen.usage = Some(*usage);
                this.write(Ending::Done);
            }
            Some(Err(e)) => this.write(Ending::Error(e)),
            // Ended without `Done`: the stream was cut short inside.
            None => this.write(Ending::Error(&ApiError::Internal)),
        }
        Poll::Ready(item)
    }
}

impl Drop for Audited {
    fn drop(&mut self) {
        // Dropped before its end: the client went away.
        self.write(Ending::Cancelled);
    }
}

/// A guardrail decision as the audit log stores it.
fn decision_record(d: &Decision) -> DecisionRecord {
    DecisionRecord {
        policy: d.policy.to_string(),
        rule: d.rule.to_string(),
        kind: d.kind.as_str().into(),
        stage: d.stage.as_str().into(),
        action: d.action.as_str().into(),
        severity: d.severity.as_str().into(),
        entity: d.entity.clone(),
        message: d.message,
        start: d.start,
        end: d.end,
        score: d.score,
        placeholder: d.placeholder.clone(),
        detail: d.detail.clone(),
    }
}

/// A retrieval as the audit log stores it.
fn retrieval_record(r: &RetrievalRun) -> RetrievalRecord {
    RetrievalRecord {
        collection: r.collection.clone(),
        status: r.status.into(),
        citations: r
            .citations
            .iter()
            .map(|c| CitationRecord {
                id: c.id,
                source: c.source.clone(),
                chunk: c.chunk,
                score: c.score,
                point_id: c.point_id,
            })
            .collect(),
        dropped: r.dropped.clone(),
        error: r.error.clone(),
        elapsed_ms: r.elapsed_ms,
    }
}
