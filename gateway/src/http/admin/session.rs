//! The review page's sign-in: `/admin/login` checks an admin key and keeps it in an
//! `HttpOnly`, `SameSite=Strict` cookie scoped to `/admin`; `/admin/logout` forgets it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;

use super::pages;
use crate::http::AppState;

/// Where the login form lives (served without a key).
pub const LOGIN_PATH: &str = "/admin/login";
/// The cookie holding the admin key.
const COOKIE: &str = "gatehouse_admin_key";

/// The admin key of the review page's cookie, if the request has one.
pub fn cookie_key(req: &Request) -> Option<&str> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, v)| *k == COOKIE && !v.is_empty())
        .map(|(_, v)| v)
}

/// Sends a browser without a key to the login form.
pub fn login_redirect() -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, HeaderValue::from_static(LOGIN_PATH))],
    )
        .into_response()
}

/// `GET /admin/login`.
pub async fn login_form() -> Response {
    login_page(None)
}

fn login_page(error: Option<&str>) -> Response {
    pages::html(pages::render(
        "login.html",
        minijinja::context! { title => "Sign in", error },
    ))
}

/// The login form's fields.
#[derive(Debug, Deserialize)]
pub struct Login {
    key: String,
}

/// `POST /admin/login`: an admin key sets the cookie and opens the page.
pub async fn login(State(state): State<Arc<AppState>>, Form(form): Form<Login>) -> Response {
    let key = form.key.trim();
    let refused = |m: &str| (StatusCode::UNAUTHORIZED, login_page(Some(m))).into_response();
    let principal = match state.auth.authenticate(Some(key)).await {
        Ok(Some(p)) if p.role == crate::config::KeyRole::Admin => Some(p),
        Ok(Some(_)) => return refused("This key is not an admin key."),
        Ok(None) => None, // auth: none
        Err(crate::auth::AuthError::Unavailable(e)) => {
            return refused(&format!("Keys cannot be checked now: {e}"))
        }
        Err(_) => return refused("Unknown or revoked key."),
    };
    let cookie = format!("{COOKIE}={key}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=43200");
    let mut resp = (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, HeaderValue::from_static("/admin/audit"))],
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    // The sign-in's audit record names the reviewer's key.
    resp.extensions_mut()
        .insert(crate::http::auth::Authenticated(principal.map(Arc::new)));
    resp
}

/// `POST /admin/logout`: forgets the cookie.
pub async fn logout() -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, HeaderValue::from_static(LOGIN_PATH)),
            (
                header::SET_COOKIE,
                HeaderValue::from_static(
                    "gatehouse_admin_key=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0",
                ),
            ),
        ],
    )
        .into_response()
}
