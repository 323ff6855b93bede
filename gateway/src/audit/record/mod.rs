//! One audit record: an OCSF "API Activity" event (class 6003) whose Gatehouse-specific
//! details live in OCSF's `unmapped` object (`docs/audit.md` has the field mapping).
//!
//! Records are read back by the CLI and the review page from files written by older
//! versions too, so every field has a default.

use serde::{Deserialize, Serialize};

mod unmapped;

pub use unmapped::{
    Checkpoint, CitationRecord, DecisionRecord, Details, MessageRecord, PolicyRef, RetrievalRecord,
    Tokens, ToolCallRecord,
};

/// OCSF schema version the records follow.
pub const OCSF_VERSION: &str = "1.3.0";

/// One line of the audit log.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Record {
    /// Event time (the end of the request), milliseconds since the Unix epoch.
    pub time: i64,
    /// `time` as RFC 3339 UTC.
    pub time_dt: String,
    /// OCSF category: 6 Application Activity.
    pub category_uid: u32,
    /// OCSF class: 6003 API Activity, 6002 Application Lifecycle (writer events).
    pub class_uid: u32,
    /// The class's name.
    pub class_name: String,
    /// OCSF activity: 1 Create (a completion), 2 Read, 4 Delete, 99 Other.
    pub activity_id: u32,
    /// The activity's name.
    pub activity_name: String,
    /// `class_uid * 100 + activity_id`.
    pub type_uid: u32,
    /// OCSF severity: 1 Informational ... 5 Critical (the strongest rule that fired).
    pub severity_id: u8,
    /// The severity's name.
    pub severity: String,
    /// OCSF status: 1 Success, 2 Failure, 99 Other (cancelled).
    pub status_id: u8,
    /// The status's name.
    pub status: String,
    /// Stable error code (`policy_violation`, `invalid_api_key`...) or the HTTP status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<String>,
    /// Error message shown to the client, when the request failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_detail: Option<String>,
    /// One-line summary.
    pub message: String,
    /// Request start, milliseconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<i64>,
    /// Request end, milliseconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<i64>,
    /// Wall-clock milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<u64>,
    /// Product, schema version, log name, request id and the chain position.
    pub metadata: Metadata,
    /// Who asked: the key id and its tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    /// The API operation and its response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api: Option<Api>,
    /// Method and path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_request: Option<HttpRequest>,
    /// The W3C trace the request ran in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<Trace>,
    /// What OCSF has no field for: model, policy, decisions, citations, tools, tokens...
    pub unmapped: Details,
}

/// OCSF `metadata`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Metadata {
    /// OCSF schema version.
    pub version: String,
    /// Who wrote the record.
    pub product: Product,
    /// `gatehouse-audit`.
    pub log_name: String,
    /// Record id (unique).
    pub uid: String,
    /// The request id (`x-request-id`), shared by a request's records and logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_uid: Option<String>,
    /// Position in the hash chain, from 1; set by the writer.
    pub sequence: u64,
}

/// OCSF `metadata.product`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Product {
    /// `Gatehouse`.
    pub name: String,
    /// `Gatehouse`.
    pub vendor_name: String,
    /// The crate version.
    pub version: String,
}

/// OCSF `actor`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Actor {
    /// The API key (by id) and its tenant.
    pub user: User,
}

/// OCSF `actor.user`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct User {
    /// Key id (never the key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// `api_key`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The key's tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org: Option<Org>,
}

/// OCSF `organization`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Org {
    /// Tenant id.
    pub uid: String,
}

/// OCSF `api`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Api {
    /// `chat.completions`, `embeddings`, `rag.search`...
    pub operation: String,
    /// The request.
    pub request: ApiRequest,
    /// The response.
    pub response: ApiResponse,
    /// `gatehouse`.
    pub service: Service,
}

/// OCSF `api.request`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiRequest {
    /// Request id.
    pub uid: String,
}

/// OCSF `api.response`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiResponse {
    /// HTTP status.
    pub code: u16,
    /// Error code, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Error message, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// OCSF `api.service`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Service {
    /// `gatehouse`.
    pub name: String,
}

/// OCSF `http_request`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpRequest {
    /// `POST`.
    pub http_method: String,
    /// The path.
    pub url: Url,
}

/// OCSF `url`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Url {
    /// Route path, `/v1/chat/completions` (`batch` for batch items).
    pub path: String,
}

/// OCSF `trace` (W3C ids, lowercase hex).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Trace {
    /// 32 hex digits.
    pub uid: String,
    /// The request's span.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span: Option<Span>,
}

/// OCSF `span`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Span {
    /// 16 hex digits.
    pub uid: String,
}

impl Record {
    /// A record of `class`/`activity` with the constant OCSF and product fields filled.
    pub fn new(class: Class, activity: Activity, time_ms: i64) -> Self {
        let (class_uid, class_name) = class.ocsf();
        let (activity_id, activity_name) = activity.ocsf();
        Self {
            time: time_ms,
            time_dt: format_time(time_ms),
            category_uid: 6,
            class_uid,
            class_name: class_name.into(),
            activity_id,
            activity_name: activity_name.into(),
            type_uid: class_uid * 100 + activity_id,
            severity_id: 1,
            severity: "Informational".into(),
            status_id: 1,
            status: "Success".into(),
            metadata: Metadata {
                version: OCSF_VERSION.into(),
                product: Product {
                    name: "Gatehouse".into(),
                    vendor_name: "Gatehouse".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                },
                log_name: "gatehouse-audit".into(),
                uid: uuid::Uuid::new_v4().to_string(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Sets OCSF status fields from the outcome (`ok`, `cancelled`, anything else fails).
    pub fn set_outcome(&mut self, outcome: &str) {
        let (id, name) = match outcome {
            "ok" => (1, "Success"),
            "cancelled" => (99, "Other"),
            _ => (2, "Failure"),
        };
        self.status_id = id;
        self.status = name.into();
        self.unmapped.outcome = outcome.into();
    }

    /// Fills what every request record has, the same way for chat and HTTP records: start,
    /// end (the record's time) and duration, the request id, the API operation and its
    /// response (a failure's error code and message also as `status_code` and
    /// `status_detail`), and who asked.
    pub fn set_exchange(&mut self, x: Exchange) {
        self.start_time = Some(x.start_ms);
        self.end_time = Some(self.time);
        self.duration = Some(x.duration_ms);
        self.metadata.correlation_uid = Some(x.request_id.clone());
        let (error, message) = x.error.unzip();
        self.status_code = Some(error.clone().unwrap_or_else(|| x.http_status.to_string()));
        self.status_detail = message.clone().flatten();
        self.api = Some(Api {
            operation: x.operation,
            request: ApiRequest { uid: x.request_id },
            response: ApiResponse {
                code: x.http_status,
                error,
                message: message.flatten(),
            },
            service: Service {
                name: "gatehouse".into(),
            },
        });
        if x.key_id.is_some() || x.tenant.is_some() {
            self.actor = Some(Actor {
                user: User {
                    kind: x.key_id.as_ref().map(|_| "api_key".into()),
                    uid: x.key_id,
                    org: x.tenant.map(|uid| Org { uid }),
                },
            });
        }
    }

    /// Raises the OCSF severity to the strongest rule that fired.
    pub fn set_severity_from_decisions(&mut self) {
        let id = self
            .unmapped
            .decisions
            .iter()
            .map(|d| match d.severity.as_str() {
                "low" => 2,
                "medium" => 3,
                "high" => 4,
                "critical" => 5,
                _ => 1,
            })
            .max()
            .unwrap_or(1);
        self.severity_id = id;
        self.severity = severity_name(id).into();
    }

    /// The tenant, if any.
    pub fn tenant(&self) -> Option<&str> {
        self.actor
            .as_ref()?
            .user
            .org
            .as_ref()
            .map(|o| o.uid.as_str())
    }

    /// The key id, if any.
    pub fn key_id(&self) -> Option<&str> {
        self.actor.as_ref()?.user.uid.as_deref()
    }

    /// The route path, if any.
    pub fn route(&self) -> Option<&str> {
        self.http_request.as_ref().map(|h| h.url.path.as_str())
    }

    /// The HTTP status, if any.
    pub fn http_status(&self) -> Option<u16> {
        self.api.as_ref().map(|a| a.response.code)
    }

    /// The request id, if any.
    pub fn request_id(&self) -> Option<&str> {
        self.metadata.correlation_uid.as_deref()
    }
}

/// The request side of a request record, for [`Record::set_exchange`].
#[derive(Debug, Clone, Default)]
pub struct Exchange {
    /// `chat.completions`, `GET /v1/models`...
    pub operation: String,
    /// Request id.
    pub request_id: String,
    /// Request start, ms since the epoch.
    pub start_ms: i64,
    /// Wall-clock milliseconds.
    pub duration_ms: u64,
    /// HTTP status answered (499 when the client went away).
    pub http_status: u16,
    /// Error code and, when known, the message the client got.
    pub error: Option<(String, Option<String>)>,
    /// Key id of the caller.
    pub key_id: Option<String>,
    /// Tenant of the caller.
    pub tenant: Option<String>,
}

/// OCSF event classes used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// 6003: every API request.
    ApiActivity,
    /// 6002: the writer itself (checkpoints, start, gaps).
    ApplicationLifecycle,
}

impl Class {
    fn ocsf(self) -> (u32, &'static str) {
        match self {
            Class::ApiActivity => (6003, "API Activity"),
            Class::ApplicationLifecycle => (6002, "Application Lifecycle"),
        }
    }
}

/// OCSF activities used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// 1: creates something (a completion, an embedding, documents).
    Create,
    /// 2: reads (lists, searches, the review page).
    Read,
    /// 4: deletes documents.
    Delete,
    /// 99: anything else (checkpoints, writer events).
    Other,
}

impl Activity {
    fn ocsf(self) -> (u32, &'static str) {
        match self {
            Activity::Create => (1, "Create"),
            Activity::Read => (2, "Read"),
            Activity::Delete => (4, "Delete"),
            Activity::Other => (99, "Other"),
        }
    }

    /// The activity of an HTTP method.
    pub fn of_method(method: &str) -> Self {
        match method {
            "GET" | "HEAD" => Activity::Read,
            "DELETE" => Activity::Delete,
            "POST" | "PUT" => Activity::Create,
            _ => Activity::Other,
        }
    }
}

fn severity_name(id: u8) -> &'static str {
    match id {
        1 => "Informational",
        2 => "Low",
        3 => "Medium",
        4 => "High",
        5 => "Critical",
        _ => "Unknown",
    }
}

/// Milliseconds since the epoch as RFC 3339 UTC with milliseconds.
pub fn format_time(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// SHA-256 of `text`, lowercase hex.
pub fn sha256_hex(text: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ocsf_constants_and_round_trip() {
        let mut r = Record::new(Class::ApiActivity, Activity::Create, 1_764_558_000_123);
        r.set_outcome("blocked");
        r.unmapped.decisions.push(DecisionRecord {
            severity: "high".into(),
            ..Default::default()
        });
        r.set_severity_from_decisions();
        assert_eq!(r.type_uid, 600301);
        assert_eq!(r.time_dt, "2025-12-01T03:00:00.123Z");
        assert_eq!((r.status_id, r.status.as_str()), (2, "Failure"));
        assert_eq!((r.severity_id, r.severity.as_str()), (4, "High"));
        let line = serde_json::to_string(&r).unwrap();
        let back: Record = serde_json::from_str(&line).unwrap();
        assert_eq!(back, r);
        // Empty details stay out of the line.
        assert!(!line.contains("tool_calls") && !line.contains("\"actor\""));
    }

    #[test]
    fn reads_records_with_missing_fields() {
        let r: Record = serde_json::from_str(r#"{"time":5,"unmapped":{"kind":"chat"}}"#).unwrap();
        assert_eq!(r.time, 5);
        assert_eq!(r.unmapped.kind, "chat");
        assert_eq!(r.tenant(), None);
    }
}
