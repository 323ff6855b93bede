//! Errors over gRPC: every error the HTTP API answers with an OpenAI error object becomes a
//! gRPC status whose `google.rpc.ErrorInfo` carries the same stable code (`reason`) and the
//! body's fields (`metadata`); 429s and 503s add a `google.rpc.RetryInfo`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::Value;
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::{ApiError, EffectiveStatus, ErrorCode};
use crate::http::AppState;

/// `ErrorInfo.domain` of every Gatehouse error.
pub const DOMAIN: &str = "gatehouse";

/// Largest error body read back from the HTTP middleware (theirs are a few hundred bytes).
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// The gRPC code of an error with this HTTP status and stable code (AIP-193's mapping,
/// read backwards).
pub fn code_for(status: StatusCode, code: &str) -> Code {
    match (status.as_u16(), code) {
        (_, "structured_output_invalid" | "tool_call_invalid") => Code::Internal,
        (400, _) => Code::InvalidArgument,
        (401, _) => Code::Unauthenticated,
        (403, _) => Code::PermissionDenied,
        (404, "not_found") | (405, _) => Code::Unimplemented,
        (404, _) => Code::NotFound,
        (409 | 422, _) => Code::FailedPrecondition,
        (413 | 429, _) => Code::ResourceExhausted,
        (499, _) => Code::Cancelled,
        (501, _) => Code::Unimplemented,
        (502 | 503, _) => Code::Unavailable,
        (504, _) => Code::DeadlineExceeded,
        (500..=599, _) => Code::Internal,
        _ => Code::Unknown,
    }
}

/// The status of an error answered with `status` and the OpenAI error object `body`.
fn from_body(status: StatusCode, body: &Value, retry_after: Option<u64>) -> tonic::Status {
    let error = &body["error"];
    let code = error["code"].as_str().unwrap_or("internal_error");
    let message = error["message"].as_str().unwrap_or("error").to_string();
    let mut metadata = HashMap::from([("http_status".to_string(), status.as_u16().to_string())]);
    for key in ["type", "param", "policy", "rule", "stage", "entity"] {
        if let Some(v) = error[key].as_str() {
            metadata.insert(key.to_string(), v.to_string());
        }
    }
    if let Some(errors) = error.get("errors").filter(|e| !e.is_null()) {
        metadata.insert("errors".into(), errors.to_string());
    }
    let mut details = ErrorDetails::with_error_info(code, DOMAIN, metadata);
    if let Some(secs) = retry_after {
        details.set_retry_info(Some(Duration::from_secs(secs)));
    }
    tonic::Status::with_error_details(code_for(status, code), message, details)
}

/// The gRPC status of `e`.
pub fn status(e: &ApiError) -> tonic::Status {
    from_body(e.parts().0, &e.body(), e.retry_after_secs())
}

/// Outermost on the gRPC listener: an answer that is not gRPC (an error of the HTTP
/// middleware the calls share: keys, limits, timeouts, audit back-pressure, panics) becomes
/// the gRPC status of the same error, keeping its extensions for the metrics and the audit
/// record.
pub async fn to_grpc(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let is_grpc = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if is_grpc {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let body = axum::body::to_bytes(body, ERROR_BODY_LIMIT)
        .await
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .unwrap_or(Value::Null);
    let retry_after = parts
        .headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let status = if body["error"]["code"].is_string() {
        from_body(parts.status, &body, retry_after)
    } else {
        let code = code_for(parts.status, "");
        tonic::Status::new(code, format!("HTTP {}", parts.status))
    };
    let mut out = status.into_http::<Body>();
    *out.extensions_mut() = parts.extensions;
    // Rate-limit windows and request ids are as useful to gRPC clients.
    for (name, value) in parts.headers.iter() {
        let n = name.as_str();
        if n.starts_with("x-ratelimit-") || n == "x-request-id" {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// Innermost, around the gRPC services: a call that failed before its first message
/// (a Trailers-Only answer) gets its error code and the HTTP status it stands for as
/// response extensions, so the audit record and the request metrics count it as the
/// failure it is rather than as the HTTP 200 that carries it. A message over
/// `server.body_limit_bytes`, refused by tonic's decoder, becomes `request_too_large`.
pub async fn outcome(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let Some(status) = tonic::Status::from_header_map(resp.headers()) else {
        return resp;
    };
    if status.code() == Code::Ok {
        return resp;
    }
    let (mut resp, info) = match status.get_details_error_info() {
        Some(info) => (resp, info),
        None => {
            let e = if status.code() == Code::OutOfRange
                && status.message().contains("message length too large")
            {
                ApiError::BodyTooLarge {
                    limit: state.config.server.body_limit_bytes,
                }
            } else {
                ApiError::InvalidRequest {
                    param: "message",
                    message: status.message().to_string(),
                }
            };
            let s = self::status(&e);
            let info = s.get_details_error_info().expect("ours carry ErrorInfo");
            (s.into_http::<Body>(), info)
        }
    };
    let http = info
        .metadata
        .get("http_status")
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.extensions_mut().insert(EffectiveStatus(http));
    resp.extensions_mut().insert(ErrorCode(info.reason.into()));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_keeps_its_code_and_fields() {
        let e = ApiError::RateLimited {
            scope: crate::limits::ScopeKind::Key,
            limit: crate::limits::LimitKind::Requests,
            value: 1,
            retry_after: Duration::from_millis(1500),
        };
        let s = status(&e);
        assert_eq!(s.code(), Code::ResourceExhausted);
        let info = s.get_details_error_info().unwrap();
        assert_eq!(info.reason, "rate_limit_exceeded");
        assert_eq!(info.domain, DOMAIN);
        assert_eq!(info.metadata["http_status"], "429");
        assert_eq!(info.metadata["type"], "rate_limit_error");
        let retry = s.get_details_retry_info().unwrap();
        assert_eq!(retry.retry_delay, Some(Duration::from_secs(2)));
    }

    #[test]
    fn codes_follow_the_http_status() {
        let cases = [
            (ApiError::InvalidJson("x".into()), Code::InvalidArgument),
            (ApiError::MissingApiKey, Code::Unauthenticated),
            (ApiError::AdminRequired, Code::PermissionDenied),
            (ApiError::AdminClosed, Code::PermissionDenied),
            (ApiError::ModelNotFound("m".into()), Code::NotFound),
            (ApiError::BodyTooLarge { limit: 1 }, Code::ResourceExhausted),
            (ApiError::ServerOverloaded, Code::Unavailable),
            (ApiError::Timeout, Code::DeadlineExceeded),
            (ApiError::Internal, Code::Internal),
        ];
        for (e, code) in cases {
            let s = status(&e);
            assert_eq!(s.code(), code, "{e}");
            assert_eq!(s.message(), e.to_string());
            assert_eq!(s.get_details_error_info().unwrap().reason, e.parts().2);
        }
        assert!(status(&ApiError::Timeout)
            .get_details_retry_info()
            .is_none());
    }
}
