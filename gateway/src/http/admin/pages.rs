//! The review pages' HTML: minijinja templates under `templates/`, compiled into the binary
//! and escaped by [`esc`] wherever a value is printed.

use std::sync::LazyLock;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use minijinja::{AutoEscape, Environment, Value};

pub(super) use crate::html::esc;

/// The templates, parsed once. They are part of the binary, so a template error is a bug that
/// the unit tests catch, not something a deployment can cause.
static PAGES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    // minijinja's HTML escaping also rewrites `/`, which makes paths and URLs in the page
    // unreadable in the source; `esc` escapes what HTML needs and nothing else.
    env.set_formatter(|out, state, value: &Value| {
        if value.is_none() || value.is_undefined() {
            return Ok(());
        }
        if value.is_safe() || state.auto_escape() == AutoEscape::None {
            return minijinja::escape_formatter(out, state, value);
        }
        out.write_str(&esc(&value.to_string()))?;
        Ok(())
    });
    env.add_filter("fixed", |v: f64, digits: usize| format!("{v:.digits$}"));
    for (name, source) in [
        ("base.html", include_str!("templates/base.html")),
        ("style.css", include_str!("templates/style.css")),
        ("message.html", include_str!("templates/message.html")),
        ("login.html", include_str!("templates/login.html")),
        ("index.html", include_str!("templates/index.html")),
        ("record.html", include_str!("templates/record.html")),
    ] {
        if let Err(e) = env.add_template(name, source) {
            panic!("admin page template {name}: {e}");
        }
    }
    env
});

/// Renders one page; `context` is any serializable value (`minijinja::context!` usually).
pub(super) fn render(name: &str, context: Value) -> Result<String, minijinja::Error> {
    PAGES.get_template(name)?.render(context)
}

/// Answers a rendered page; a template error (a bug: the templates are compiled in) is
/// logged and answered as a plain 500.
pub(super) fn html(rendered: Result<String, minijinja::Error>) -> Response {
    match rendered {
        Ok(body) => Html(body).into_response(),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "admin page cannot render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page cannot be rendered",
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_renders_with_an_empty_context() {
        for name in ["message.html", "login.html", "index.html", "record.html"] {
            let html = render(name, minijinja::context! { title => "t" })
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert!(html.starts_with("<!doctype html>"), "{name}: {html}");
            assert!(
                !html.contains("none"),
                "{name} prints a missing value: {html}"
            );
        }
    }

    #[test]
    fn values_are_escaped_but_slashes_stay() {
        let html = render(
            "login.html",
            minijinja::context! { title => "a/b", error => "<b>x</b> & 'y'" },
        )
        .unwrap();
        assert!(html.contains("<title>a/b · Gatehouse</title>"), "{html}");
        assert!(
            html.contains("&lt;b&gt;x&lt;/b&gt; &amp; &#39;y&#39;"),
            "{html}"
        );
    }
}
