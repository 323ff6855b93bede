//! `http_get`: GET on URLs under configured prefixes. The model chooses the URL, so
//! everything about it is checked: scheme, no credentials, the normalised URL under an
//! allowed prefix, no redirects (one could leave the allowlist), a size cap on the body.

use std::time::Duration;

use futures::StreamExt;
use reqwest::Url;

/// The `url` crate's parse error (reqwest re-exports `Url` but not its error type).
pub type UrlParseError = <Url as std::str::FromStr>::Err;

/// Why a URL is refused before anything is sent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UrlError {
    /// Not an absolute URL.
    #[error("`{url}` is not a URL: {reason}")]
    NotAUrl {
        /// What the model sent.
        url: String,
        /// The parser's reason.
        reason: UrlParseError,
    },
    /// `user:password@` in the URL.
    #[error("credentials in URLs are not allowed")]
    Credentials,
    /// The normalised URL is under no allowed prefix.
    #[error("`{url}` is not under an allowed prefix ({allowed})")]
    NotAllowed {
        /// The normalised URL.
        url: String,
        /// The allowed prefixes, comma-separated.
        allowed: String,
    },
}

/// Why an allowed GET failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No response (connection refused, timeout, TLS, ...).
    #[error("request failed: {0}")]
    Request(#[source] reqwest::Error),
    /// The body stream broke before its end.
    #[error("reading the body failed: {0}")]
    Body(#[source] reqwest::Error),
}

/// A configured `http_get` tool.
pub struct HttpGet {
    allow: Vec<String>,
    max_bytes: usize,
    client: reqwest::Client,
}

pub use crate::config::normalise_prefix;

impl HttpGet {
    /// A tool allowed under `allow` (each checked by [`normalise_prefix`]).
    pub fn new(
        allow: Vec<String>,
        max_bytes: usize,
        timeout: Duration,
    ) -> Result<Self, super::SetupError> {
        let allow = allow
            .iter()
            .map(|p| normalise_prefix(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(super::SetupError::Prefix)?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .build()
            .map_err(super::SetupError::Client)?;
        Ok(Self {
            allow,
            max_bytes,
            client,
        })
    }

    /// The allowed prefixes, normalised.
    pub fn allowed(&self) -> &[String] {
        &self.allow
    }

    /// A regex matching URLs that start with an allowed prefix (for the arguments' schema):
    /// the prefix, then URL characters without `..` segments or backslashes.
    pub fn pattern(&self) -> String {
        let alts: Vec<String> = self.allow.iter().map(|p| regex::escape(p)).collect();
        format!("^({})[A-Za-z0-9._~:/?#@!$&'()*+,;=%-]*$", alts.join("|"))
    }

    /// The normalised URL if it is allowed.
    pub fn check(&self, url: &str) -> Result<Url, UrlError> {
        let u = Url::parse(url).map_err(|reason| UrlError::NotAUrl {
            url: url.to_string(),
            reason,
        })?;
        if !u.username().is_empty() || u.password().is_some() {
            return Err(UrlError::Credentials);
        }
        let s = u.as_str();
        if !self.allow.iter().any(|p| s.starts_with(p.as_str())) {
            return Err(UrlError::NotAllowed {
                url: s.to_string(),
                allowed: self.allow.join(", "),
            });
        }
        Ok(u)
    }

    /// Fetches `url`: `HTTP <status>` and the body's first `max_bytes` as text.
    pub async fn get(&self, url: &str) -> Result<String, super::RunError> {
        let u = self.check(url)?;
        let resp = self
            .client
            .get(u)
            .send()
            .await
            .map_err(FetchError::Request)?;
        let status = resp.status();
        let mut body = Vec::new();
        let mut truncated = false;
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(FetchError::Body)?;
            let room = self.max_bytes - body.len();
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        let mut text = String::from_utf8_lossy(&body).into_owned();
        if truncated {
            text.push_str(&format!("\n[truncated at {} bytes]", self.max_bytes));
        }
        Ok(format!("HTTP {}\n{text}", status.as_u16()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool() -> HttpGet {
        HttpGet::new(
            vec![
                "https://docs.example/api/".into(),
                "http://127.0.0.1:9/".into(),
            ],
            100,
            Duration::from_secs(1),
        )
        .unwrap()
    }

    #[test]
    fn prefixes_must_be_plain_directories() {
        assert!(normalise_prefix("https://a.example/").is_ok());
        assert_eq!(
            normalise_prefix("HTTPS://A.example/x/").unwrap(),
            "https://a.example/x/"
        );
        for bad in [
            "https://a.example/docs",
            "ftp://a.example/",
            "https://u:p@a.example/",
            "https://a.example/?q=1",
            "not a url",
        ] {
            assert!(normalise_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_urls_under_a_prefix_pass() {
        let t = tool();
        assert!(t.check("https://docs.example/api/v1?x=1").is_ok());
        assert!(t.check("http://127.0.0.1:9/health").is_ok());
        for bad in [
            "https://docs.example/api",
            "https://docs.example/api-private/",
            "https://docs.example/api/../admin",
            "https://docs.example/api/%2e%2e/admin",
            "https://docs.example.evil.test/api/",
            "https://user@docs.example/api/",
            "http://127.0.0.1:99/",
            "file:///etc/passwd",
        ] {
            assert!(t.check(bad).is_err(), "{bad}");
        }
    }
}
