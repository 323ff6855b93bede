//! Validation of what records and traces requests: `audit:` and `telemetry:`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::locate::Segment;
use super::raw::{RawAudit, RawDrift, RawOnFull, RawTelemetry};
use super::{key, Invalid};

/// Shortest HMAC key accepted for audit checkpoints, in bytes.
pub const MIN_HMAC_KEY_BYTES: usize = 32;

/// `audit:` settings.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Directory of the JSON Lines files (`audit-*.jsonl`).
    pub dir: PathBuf,
    /// A file past this size is closed and a new one started.
    pub max_file_bytes: u64,
    /// A file older than this is closed and a new one started.
    pub max_file_age: Duration,
    /// Records waiting for the writer (and, under `fail_closed`, requests holding a slot).
    pub queue: usize,
    /// What a full queue does.
    pub on_full: OnFull,
    /// `fsync` after each batch of records: a record counts as written once on disk.
    pub fsync: bool,
    /// A signed checkpoint after this many records...
    pub checkpoint_every: u64,
    /// ... or this long after the last one, whichever comes first.
    pub checkpoint_interval: Duration,
    /// The HMAC-SHA256 key of checkpoints; unsigned checkpoints without one.
    pub hmac_key: Option<Vec<u8>>,
    /// The environment variable the key came from, for messages.
    pub hmac_key_env: Option<String>,
}

/// What a full audit queue does to requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFull {
    /// Serve the request; its record is dropped and counted (and a gap record says how many).
    Drop,
    /// Refuse new requests with 503 `audit_unavailable` until the writer catches up.
    FailClosed,
}

impl OnFull {
    /// The YAML name.
    pub fn as_str(self) -> &'static str {
        match self {
            OnFull::Drop => "drop",
            OnFull::FailClosed => "fail_closed",
        }
    }
}

/// `telemetry:` settings.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// OTLP/gRPC endpoint (`http://127.0.0.1:4317`); spans are not exported without one.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// Share of new traces sampled (a sampled parent is always followed).
    pub sample_ratio: f64,
    /// Time one export may take.
    pub timeout: Duration,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "gatehouse".into(),
            sample_ratio: 1.0,
            timeout: Duration::from_secs(10),
        }
    }
}

pub(super) fn validate_audit(
    raw: Option<RawAudit>,
    base: &Path,
    vars: &HashMap<String, String>,
) -> Result<Option<AuditConfig>, Invalid> {
    let Some(a) = raw else { return Ok(None) };
    let at = [Segment::Key("audit".into())];
    let positive = |v: Option<u64>, default: u64, name: &str| match v.unwrap_or(default) {
        0 => Err((key(&at, name), "must be greater than 0".to_string())),
        n => Ok(n),
    };
    if a.dir.trim().is_empty() {
        return Err((key(&at, "dir"), "must not be empty".into()));
    }
    let hmac_key = match &a.hmac_key_env {
        None => None,
        Some(var) => match vars.get(var) {
            None => {
                return Err((
                    key(&at, "hmac_key_env"),
                    format!("environment variable {var} is not set"),
                ))
            }
            Some(v) if v.len() < MIN_HMAC_KEY_BYTES => {
                return Err((
                    key(&at, "hmac_key_env"),
                    format!(
                        "the key in {var} has {} bytes; at least {MIN_HMAC_KEY_BYTES} are required \
                         (e.g. `openssl rand -hex 32`)",
                        v.len()
                    ),
                ))
            }
            Some(v) => Some(v.as_bytes().to_vec()),
        },
    };
    Ok(Some(AuditConfig {
        dir: base.join(&a.dir),
        max_file_bytes: positive(a.max_file_bytes, 64 << 20, "max_file_bytes")?,
        max_file_age: Duration::from_secs(positive(
            a.max_file_age_secs,
            86_400,
            "max_file_age_secs",
        )?),
        queue: positive(a.queue.map(|v| v as u64), 4096, "queue")? as usize,
        on_full: match a.on_full.unwrap_or(RawOnFull::Drop) {
            RawOnFull::Drop => OnFull::Drop,
            RawOnFull::FailClosed => OnFull::FailClosed,
        },
        fsync: a.fsync.unwrap_or(true),
        checkpoint_every: positive(a.checkpoint_every, 1000, "checkpoint_every")?,
        checkpoint_interval: Duration::from_secs(positive(
            a.checkpoint_interval_secs,
            60,
            "checkpoint_interval_secs",
        )?),
        hmac_key,
        hmac_key_env: a.hmac_key_env,
    }))
}

pub(super) fn validate_telemetry(raw: Option<RawTelemetry>) -> Result<TelemetryConfig, Invalid> {
    let Some(t) = raw else {
        return Ok(TelemetryConfig::default());
    };
    let at = [Segment::Key("telemetry".into())];
    let defaults = TelemetryConfig::default();
    let otlp_endpoint = match t.otlp_endpoint {
        None => None,
        Some(e) if e.starts_with("http://") || e.starts_with("https://") => {
            Some(e.trim_end_matches('/').to_string())
        }
        Some(e) => {
            return Err((
                key(&at, "otlp_endpoint"),
                format!("`{e}` is not an http:// or https:// URL (OTLP/gRPC, port 4317)"),
            ))
        }
    };
    let sample_ratio = t.sample_ratio.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&sample_ratio) {
        return Err((
            key(&at, "sample_ratio"),
            format!("{sample_ratio} is not between 0 and 1"),
        ));
    }
    let service_name = t.service_name.unwrap_or(defaults.service_name);
    if service_name.trim().is_empty() {
        return Err((key(&at, "service_name"), "must not be empty".into()));
    }
    let timeout_ms = t.timeout_ms.unwrap_or(10_000);
    if timeout_ms == 0 {
        return Err((key(&at, "timeout_ms"), "must be greater than 0".into()));
    }
    Ok(TelemetryConfig {
        otlp_endpoint,
        service_name,
        sample_ratio,
        timeout: Duration::from_millis(timeout_ms),
    })
}

/// `drift:` settings (docs/observability.md, drift).
#[derive(Debug, Clone)]
pub struct DriftConfig {
    /// Requests per model and template that make the reference window (the first after
    /// start), unless a baseline pins it.
    pub reference_requests: usize,
    /// The most recent requests compared with the reference.
    pub window_requests: usize,
    /// Requests each window needs before its figures are published.
    pub min_requests: usize,
    /// PSI above which a feature counts as shifted (the page's marking; alerts use their own).
    pub psi_threshold: f64,
    /// A pinned reference written by `gatehouse drift report --save-baseline`.
    pub baseline_file: Option<PathBuf>,
    /// Sampled prompt embeddings; off unless set.
    pub embeddings: Option<DriftEmbeddings>,
}

impl Default for DriftConfig {
    fn default() -> Self {
        Self {
            reference_requests: 500,
            window_requests: 500,
            min_requests: 50,
            psi_threshold: 0.25,
            baseline_file: None,
            embeddings: None,
        }
    }
}

/// `drift.embeddings`.
#[derive(Debug, Clone)]
pub struct DriftEmbeddings {
    /// A configured `kind: embedding` model.
    pub model: String,
    /// One request in this many has its prompt embedded.
    pub sample_every: u32,
}

pub(super) fn validate_drift(
    raw: Option<RawDrift>,
    models: &[super::ModelConfig],
    base: &Path,
) -> Result<Option<DriftConfig>, Invalid> {
    let Some(d) = raw else { return Ok(None) };
    let at = [Segment::Key("drift".into())];
    let defaults = DriftConfig::default();
    let positive = |v: Option<usize>, default: usize, name: &str| match v.unwrap_or(default) {
        0 => Err((key(&at, name), "must be greater than 0".to_string())),
        n => Ok(n),
    };
    let reference_requests = positive(
        d.reference_requests,
        defaults.reference_requests,
        "reference_requests",
    )?;
    let window_requests = positive(
        d.window_requests,
        defaults.window_requests,
        "window_requests",
    )?;
    let min_requests = positive(d.min_requests, defaults.min_requests, "min_requests")?;
    if min_requests > reference_requests.min(window_requests) {
        return Err((
            key(&at, "min_requests"),
            format!(
                "{min_requests} is more than a window holds (reference_requests \
                 {reference_requests}, window_requests {window_requests})"
            ),
        ));
    }
    let psi_threshold = d.psi_threshold.unwrap_or(defaults.psi_threshold);
    if !(psi_threshold.is_finite() && psi_threshold > 0.0) {
        return Err((
            key(&at, "psi_threshold"),
            format!("{psi_threshold} is not a positive number"),
        ));
    }
    let baseline_file = d.baseline_file.map(|f| base.join(f));
    // Its content is read when the monitor starts (a file that does not parse is logged and
    // left out there: the drift module sits above config).
    if let Some(f) = baseline_file.as_ref().filter(|f| !f.is_file()) {
        return Err((
            key(&at, "baseline_file"),
            format!("{} is not a file", f.display()),
        ));
    }
    let embeddings = match d.embeddings {
        None => None,
        Some(e) => {
            let at = [at[0].clone(), Segment::Key("embeddings".into())];
            let embedding_model = models.iter().any(|m| {
                m.id == e.model && matches!(m.backend, super::BackendConfig::LocalEmbedding(_))
            });
            if !embedding_model {
                return Err((
                    key(&at, "model"),
                    format!("`{}` is not a configured `kind: embedding` model", e.model),
                ));
            }
            let sample_every = e.sample_every.unwrap_or(20);
            if sample_every == 0 {
                return Err((key(&at, "sample_every"), "must be greater than 0".into()));
            }
            Some(DriftEmbeddings {
                model: e.model,
                sample_every,
            })
        }
    };
    Ok(Some(DriftConfig {
        reference_requests,
        window_requests,
        min_requests,
        psi_threshold,
        baseline_file,
        embeddings,
    }))
}
