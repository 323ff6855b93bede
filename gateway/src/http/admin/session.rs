//! The review page's sign-in. `/admin/login` checks an admin key and starts a server-side
//! session ([`crate::auth::sessions`]): the browser gets only a random session id, in an
//! `HttpOnly`, `SameSite=Strict` cookie scoped to `/admin` (`Secure` behind TLS).
//! `/admin/logout` ends the session. Both forms carry a CSRF token; failed sign-ins are
//! throttled per source address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;

use super::pages;
use crate::auth::sessions::{random_token, SESSION_TTL};
use crate::auth::{hash_key, AuthError, Principal};
use crate::config::KeyRole;
use crate::http::auth::Authenticated;
use crate::http::AppState;

/// Where the login form lives (served without a key).
pub const LOGIN_PATH: &str = "/admin/login";
/// Where the sign-out form posts.
pub const LOGOUT_PATH: &str = "/admin/logout";
/// The cookie holding the session id.
const SESSION_COOKIE: &str = "gatehouse_session";
/// The cookie holding the login form's CSRF token (double submit: cookie and form field).
const LOGIN_CSRF_COOKIE: &str = "gatehouse_login_csrf";
/// How long a login form stays usable (its CSRF cookie's `Max-Age`, seconds).
const LOGIN_FORM_SECS: u64 = 3600;

/// The session a request was authenticated by, in its extensions (pages print its CSRF
/// token into their forms).
#[derive(Debug, Clone)]
pub struct AdminSession {
    /// The session id, as the cookie holds it.
    pub id: String,
    /// The token the session's forms carry.
    pub csrf: String,
}

/// The value of cookie `name`, if the request has one.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v)
}

/// The session id an `/admin/` request carries in its cookie (the API never takes one).
pub fn session_id(req: &Request) -> Option<String> {
    if !req.uri().path().starts_with("/admin/") {
        return None;
    }
    cookie(req.headers(), SESSION_COOKIE).map(str::to_string)
}

/// Resolves a session id: the admin key's principal and the session. `Ok(None)` for a
/// session that is unknown, ended, expired, or whose key is no longer an admin key.
pub async fn resolve(
    state: &AppState,
    id: String,
) -> Result<Option<(Principal, AdminSession)>, AuthError> {
    let session = match state.sessions.get(&id).await {
        Ok(Some(s)) => s,
        Ok(None) => return Ok(None),
        Err(e) => return Err(AuthError::Unavailable(format!("sessions: {e}"))),
    };
    match state.auth.authenticate_digest(&session.key_digest).await {
        Ok(Some(p)) if p.role == KeyRole::Admin => Ok(Some((
            p,
            AdminSession {
                id,
                csrf: session.csrf,
            },
        ))),
        Ok(_) | Err(AuthError::Invalid | AuthError::TenantNotConfigured(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Sends a browser without a key to the login form.
pub fn login_redirect() -> Response {
    redirect(LOGIN_PATH)
}

fn redirect(to: &'static str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, HeaderValue::from_static(to))],
    )
        .into_response()
}

/// Whether cookies must be `Secure`: `server.public_url` is `https://`, or the proxy in
/// front says the browser used TLS.
fn behind_tls(state: &AppState, headers: &HeaderMap) -> bool {
    state
        .config
        .server
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

fn set_cookie(resp: &mut Response, name: &str, value: &str, path: &str, max_age: u64, tls: bool) {
    let secure = if tls { "; Secure" } else { "" };
    let c = format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    );
    if let Ok(v) = HeaderValue::from_str(&c) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Why the admin pages cannot be signed into under `auth: none`, if they cannot.
fn keyless(state: &AppState) -> Option<Response> {
    if state.auth.enabled() {
        return None;
    }
    Some(if state.config.auth.admin_open_to_all() {
        redirect("/admin/audit")
    } else {
        crate::error::ApiError::AdminClosed.into_response()
    })
}

/// `GET /admin/login`: the form, with a fresh CSRF token in a cookie and a hidden field.
pub async fn login_form(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(r) = keyless(&state) {
        return r;
    }
    let token = random_token();
    let mut resp = login_page(StatusCode::OK, None, &token);
    set_cookie(
        &mut resp,
        LOGIN_CSRF_COOKIE,
        &token,
        LOGIN_PATH,
        LOGIN_FORM_SECS,
        behind_tls(&state, &headers),
    );
    resp
}

fn login_page(status: StatusCode, error: Option<&str>, csrf: &str) -> Response {
    let page = pages::html(pages::render(
        "login.html",
        minijinja::context! { title => "Sign in", error, csrf },
    ));
    (status, page).into_response()
}

/// The login form's fields.
#[derive(Debug, Deserialize)]
pub struct Login {
    key: String,
    #[serde(default)]
    csrf: String,
}

/// The peer's address (unspecified when the server was not given connection info).
fn source(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// Whether two secrets are equal, compared through their digests so that the time taken
/// says nothing about how much of a guess was right.
fn same_secret(a: &str, b: &str) -> bool {
    !a.is_empty() && hash_key(a) == hash_key(b)
}

/// `POST /admin/login`: an admin key starts a session and opens the page.
pub async fn login(State(state): State<Arc<AppState>>, req: Request) -> Response {
    if let Some(r) = keyless(&state) {
        return r;
    }
    let from = source(&req);
    let headers = req.headers().clone();
    let tls = behind_tls(&state, &headers);
    let expected_csrf = cookie(&headers, LOGIN_CSRF_COOKIE)
        .unwrap_or_default()
        .to_string();
    let Form(form) = match Form::<Login>::from_request(req, &()).await {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let page_token = if expected_csrf.is_empty() {
        random_token()
    } else {
        expected_csrf.clone()
    };
    let unavailable = |e: &dyn std::fmt::Display| {
        login_page(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(&format!("Sign-in is not possible now: {e}")),
            &page_token,
        )
    };
    match state.sessions.throttled(from).await {
        Ok(None) => {}
        Ok(Some(wait)) => return throttled(wait, &page_token),
        Err(e) => return unavailable(&e),
    }
    if !same_secret(&form.csrf, &expected_csrf) {
        // Not counted as a failure: no key was tried. A stale form after a restart of the
        // browser ends here too, hence the hint.
        let mut resp = login_page(
            StatusCode::FORBIDDEN,
            Some("This form has expired or did not come from this page; sign in again."),
            &page_token,
        );
        if expected_csrf.is_empty() {
            set_cookie(
                &mut resp,
                LOGIN_CSRF_COOKIE,
                &page_token,
                LOGIN_PATH,
                LOGIN_FORM_SECS,
                tls,
            );
        }
        return resp;
    }
    let key = form.key.trim();
    let refused = |m: &str| login_page(StatusCode::UNAUTHORIZED, Some(m), &page_token);
    let principal = match state.auth.authenticate(Some(key)).await {
        Ok(Some(p)) if p.role == KeyRole::Admin => p,
        Err(AuthError::Unavailable(e)) => return unavailable(&e),
        outcome => {
            if let Err(e) = state.sessions.failed(from).await {
                return unavailable(&e);
            }
            return refused(match outcome {
                Ok(_) => "This key is not an admin key.",
                _ => "Unknown or revoked key.",
            });
        }
    };
    // A new id at every sign-in, and the session the browser came with (if any) ends: an id
    // planted before sign-in is worth nothing after it.
    if let Some(old) = cookie(&headers, SESSION_COOKIE) {
        if let Err(e) = state.sessions.end(old).await {
            return unavailable(&e);
        }
    }
    let (id, _) = match state.sessions.create(&hash_key(key)).await {
        Ok(s) => s,
        Err(e) => return unavailable(&e),
    };
    let mut resp = redirect("/admin/audit");
    set_cookie(
        &mut resp,
        SESSION_COOKIE,
        &id,
        "/admin",
        SESSION_TTL.as_secs(),
        tls,
    );
    set_cookie(&mut resp, LOGIN_CSRF_COOKIE, "", LOGIN_PATH, 0, tls);
    // The sign-in's audit record names the reviewer's key.
    resp.extensions_mut()
        .insert(Authenticated(Some(Arc::new(principal))));
    resp
}

fn throttled(wait: Duration, csrf: &str) -> Response {
    let secs = wait.as_secs().max(1);
    let mut resp = login_page(
        StatusCode::TOO_MANY_REQUESTS,
        Some(&format!(
            "Too many failed sign-ins from this address; try again in {secs} s."
        )),
        csrf,
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

/// The sign-out form's fields.
#[derive(Debug, Deserialize)]
pub struct Logout {
    #[serde(default)]
    csrf: String,
}

/// `POST /admin/logout`: ends the session (its CSRF token required) and forgets the cookie.
pub async fn logout(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let session = req.extensions().get::<AdminSession>().cloned();
    let tls = behind_tls(&state, req.headers());
    let Form(form) = match Form::<Logout>::from_request(req, &()).await {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    if let Some(s) = &session {
        if !same_secret(&form.csrf, &s.csrf) {
            return crate::error::ApiError::CsrfFailed.into_response();
        }
        if let Err(e) = state.sessions.end(&s.id).await {
            return crate::error::ApiError::AuthUnavailable(format!("sessions: {e}"))
                .into_response();
        }
    }
    let mut resp = login_redirect();
    set_cookie(&mut resp, SESSION_COOKIE, "", "/admin", 0, tls);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; gatehouse_session_x=2; gatehouse_session=abc"),
        );
        h.append(
            header::COOKIE,
            HeaderValue::from_static("gatehouse_login_csrf="),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(
            cookie(&h, LOGIN_CSRF_COOKIE),
            None,
            "empty values are absent"
        );
        assert_eq!(cookie(&h, "b"), None);
    }

    #[test]
    fn secrets_compare_whole_and_never_empty() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("", ""));
    }

    #[test]
    fn the_login_page_carries_its_token() {
        let resp = login_page(StatusCode::OK, None, "tok123");
        assert_eq!(resp.status(), 200);
        let rendered = pages::render(
            "login.html",
            minijinja::context! { title => "Sign in", csrf => "tok123" },
        )
        .unwrap();
        assert!(
            rendered.contains(r#"name="csrf" value="tok123""#),
            "{rendered}"
        );
    }
}
