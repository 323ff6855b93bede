//! `tools:`: the server-side tools and their limits.

use std::time::Duration;

use reqwest::Url;

use super::key;
use super::locate::Segment;
use super::raw::RawTools;

/// `tools:` settings.
#[derive(Debug, Clone)]
pub struct ToolsConfig {
    /// Server-side tool executions per request before the model must answer in text.
    pub max_steps: usize,
    /// Time one execution may take.
    pub step_timeout: Duration,
    /// `calculator` is enabled.
    pub calculator: bool,
    /// `http_get` settings, when enabled.
    pub http_get: Option<HttpGetConfig>,
}

impl Default for ToolsConfig {
    fn default() -> Self {
        Self {
            max_steps: 4,
            step_timeout: Duration::from_secs(10),
            calculator: false,
            http_get: None,
        }
    }
}

/// `tools.http_get:` settings.
#[derive(Debug, Clone)]
pub struct HttpGetConfig {
    /// URL prefixes that may be fetched, normalised.
    pub allow: Vec<String>,
    /// Bytes of the body handed to the model.
    pub max_bytes: usize,
}

pub(super) fn validate_tools(t: RawTools) -> Result<ToolsConfig, (Vec<Segment>, String)> {
    let at = [Segment::Key("tools".into())];
    let d = ToolsConfig::default();
    let max_steps = t.max_steps.unwrap_or(d.max_steps);
    if !(1..=16).contains(&max_steps) {
        return Err((key(&at, "max_steps"), "must be between 1 and 16".into()));
    }
    let step_timeout = match t.step_timeout_ms {
        None => d.step_timeout,
        Some(0) => return Err((key(&at, "step_timeout_ms"), "must be greater than 0".into())),
        Some(ms) => Duration::from_millis(ms),
    };
    let http_get = match t.http_get {
        None => None,
        Some(h) => {
            let at = key(&at, "http_get");
            if h.allow.is_empty() {
                return Err((key(&at, "allow"), "list at least one URL prefix".into()));
            }
            let mut allow = Vec::with_capacity(h.allow.len());
            for (i, p) in h.allow.iter().enumerate() {
                let mut k = key(&at, "allow");
                k.push(Segment::Index(i));
                allow.push(normalise_prefix(p).map_err(|e| (k, e))?);
            }
            let max_bytes = h.max_bytes.unwrap_or(65536);
            if !(1..=16 << 20).contains(&max_bytes) {
                return Err((
                    key(&at, "max_bytes"),
                    "must be between 1 and 16777216".into(),
                ));
            }
            Some(HttpGetConfig { allow, max_bytes })
        }
    };
    Ok(ToolsConfig {
        max_steps,
        step_timeout,
        calculator: t.calculator.is_some(),
        http_get,
    })
}

/// Parses and normalises an allowlist prefix: http(s), a host, a path ending in `/`, so
/// that `https://a.example/docs/` cannot match `https://a.example/docs-private` or
/// `https://a.example.evil.test/`.
pub fn normalise_prefix(p: &str) -> Result<String, String> {
    let url = Url::parse(p).map_err(|e| format!("`{p}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("`{p}`: only http:// and https:// URLs with a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("`{p}`: credentials in URLs are not allowed"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.path().ends_with('/') {
        return Err(format!(
            "`{p}`: a prefix is scheme://host[:port]/path/ ending in `/`, without query"
        ));
    }
    Ok(url.to_string())
}
