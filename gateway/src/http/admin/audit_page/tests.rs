use super::*;
use crate::http::admin::pages::esc;
use crate::http::admin::session::session_id;
use axum::http::{header, HeaderValue};

#[test]
fn escapes_markup() {
    assert_eq!(
        esc("<script>alert('x')</script>&\""),
        "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
    );
}

/// A request for `path` with this `Cookie` header.
fn with_cookie(path: &str, cookie: HeaderValue) -> Request {
    Request::builder()
        .uri(path)
        .header(header::COOKIE, cookie)
        .body(axum::body::Body::empty())
        .unwrap()
}

#[test]
fn reads_the_session_cookie_on_review_pages_only() {
    let cookie = HeaderValue::from_static("a=b; gatehouse_session=abc123; c=d");
    assert_eq!(
        session_id(&with_cookie("/admin/audit", cookie.clone())).as_deref(),
        Some("abc123")
    );
    assert_eq!(session_id(&with_cookie("/v1/models", cookie)), None);
    let empty = HeaderValue::from_static("gatehouse_session=");
    assert_eq!(session_id(&with_cookie("/admin/audit", empty)), None);
}

proptest::proptest! {
    /// Any cookie header: no panic, and the id only ever comes from our cookie.
    #[test]
    fn cookie_headers_never_confuse_the_session(other in "[ -~]{0,80}", id in "[A-Za-z0-9_-]{1,40}") {
        let header = format!("{other}; gatehouse_session={id}");
        if let Ok(v) = HeaderValue::from_str(&header) {
            let got = session_id(&with_cookie("/admin/audit", v));
            // An earlier `gatehouse_session=` in `other` may win; never anything else.
            proptest::prop_assert!(got.is_some());
            proptest::prop_assert!(got.as_deref() == Some(id.as_str()) || other.contains("gatehouse_session="));
        }
        if let Ok(v) = HeaderValue::from_str(&other) {
            if !other.contains("gatehouse_session=") {
                proptest::prop_assert_eq!(session_id(&with_cookie("/admin/audit", v)), None);
            }
        }
    }
}

#[test]
fn a_record_page_shows_citations_tool_calls_and_text_escaped() {
    use crate::audit::record::*;
    let mut r = Record::new(Class::ApiActivity, Activity::Create, 0);
    r.metadata.sequence = 7;
    r.unmapped.kind = "chat".into();
    r.unmapped.retrieval = Some(RetrievalRecord {
        collection: "docs".into(),
        status: "ok".into(),
        citations: vec![CitationRecord {
            id: 1,
            source: "handbook/<b>.md".into(),
            chunk: 3,
            score: 0.8125,
            point_id: 42,
        }],
        ..Default::default()
    });
    r.unmapped.tool_calls = vec![ToolCallRecord {
        name: "calculator".into(),
        arguments_sha256: "ab".repeat(32),
        outcome: "ok".into(),
        side: "server".into(),
        ..Default::default()
    }];
    r.unmapped.completion = Some("<script>x</script>".into());
    let html = render_record(&r, "audit-000000000001-x.jsonl", 7).unwrap();
    assert!(html.contains("<h1>Audit record 7</h1>"));
    assert!(html.contains("id=\"citations\""));
    assert!(html.contains("<td>handbook/&lt;b&gt;.md</td><td>3</td><td>0.812</td><td>42</td>"));
    assert!(html.contains("id=\"tools\"") && html.contains(&"ab".repeat(32)));
    assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"));
    assert!(!html.contains("<script>"));
}

#[test]
fn the_banner_names_the_first_broken_record() {
    let report = crate::audit::verify::Report {
        broken: Some(crate::audit::verify::Broken {
            file: "/log/audit-000000000001-x.jsonl".into(),
            line: 5,
            sequence: Some(5),
            reason: "prev_hash does not match".into(),
        }),
        ..Default::default()
    };
    let html = chain_banner(&Ok((report, 0))).text;
    assert!(html.contains("Chain BROKEN at audit-000000000001-x.jsonl line 5 (sequence 5): prev_hash does not match"), "{html}");
    assert!(chain_banner(&Err("gone".into()))
        .text
        .contains("Chain not verified: gone"));
}

#[test]
fn links_keep_the_filter() {
    let p = Params {
        tenant: Some("acme corp".into()),
        action: Some("block".into()),
        ..Default::default()
    };
    assert_eq!(
        p.link(Some(40)),
        "/admin/audit?tenant=acme%20corp&action=block&before=40"
    );
}
