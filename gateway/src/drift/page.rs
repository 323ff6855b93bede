//! The drift page: one section per model and template, a row per feature with its PSI and a
//! small server-rendered SVG chart of both windows' shares. Served at `/admin/drift` and
//! written by `gatehouse drift report`; self-contained (no scripts, no CDN).

use std::fmt::Write;

use super::stats::FeatureDrift;
use super::KeyReport;
use crate::html::esc;

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin-bottom:2em}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}\
.shifted{color:#b00020;font-weight:600}.moderate{color:#a15c00}.stable{color:#2e7d32}\
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}\
small{color:#666}";

/// How a PSI reads against `threshold`: `shifted` past it, `moderate` past 0.1 (the usual
/// "watch it" line), else `stable`.
pub fn verdict(psi: f64, threshold: f64) -> &'static str {
    if psi >= threshold {
        "shifted"
    } else if psi >= 0.1 {
        "moderate"
    } else {
        "stable"
    }
}

/// Both windows' shares per category as horizontal bars: reference grey, current blue.
fn chart(f: &FeatureDrift) -> String {
    const ROW: usize = 16;
    const LABEL: usize = 90;
    const BAR: f64 = 220.0;
    let height = f.reference.len().max(1) * ROW + 4;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{height}" role="img" aria-label="{}">"#,
        LABEL as f64 + BAR + 50.0,
        esc(&f.feature)
    );
    for (i, ((cat, r), (_, c))) in f.reference.iter().zip(&f.current).enumerate() {
        let y = i * ROW + 2;
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" font-size="11" text-anchor="end">{}</text><rect x="{LABEL}" y="{y}" width="{:.1}" height="6" fill="#9e9e9e"><title>reference {:.1}%</title></rect><rect x="{LABEL}" y="{}" width="{:.1}" height="6" fill="#1565c0"><title>current {:.1}%</title></rect><text x="{:.1}" y="{}" font-size="10" fill="#555">{:.0}%</text>"##,
            LABEL - 4,
            y + 10,
            esc(cat),
            r * BAR,
            r * 100.0,
            y + 7,
            c * BAR,
            c * 100.0,
            LABEL as f64 + r.max(*c) * BAR + 4.0,
            y + 10,
            c * 100.0,
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The whole page for `reports`, `threshold` marking shifted features.
pub fn render(title: &str, subtitle: &str, reports: &[KeyReport], threshold: f64) -> String {
    let mut h = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} · Gatehouse</title><style>{STYLE}</style></head><body><h1>{}</h1><p><small>{}</small></p>\
         <p class=\"legend\"><span style=\"background:#9e9e9e\"></span>reference<span style=\"background:#1565c0\"></span>current \
         · PSI below 0.1 stable, 0.1 to {threshold} moderate, {threshold} and above shifted</p>",
        esc(title),
        esc(title),
        esc(subtitle)
    );
    if reports.is_empty() {
        h.push_str("<p>No chat requests observed yet.</p>");
    }
    for r in reports {
        let template = if r.template.is_empty() {
            "no template".to_string()
        } else {
            format!("template {}", r.template)
        };
        let _ = write!(
            h,
            "<h2>{} <small>{}</small></h2><p>reference {} requests · current {} requests",
            esc(&r.model),
            esc(&template),
            r.reference_requests,
            r.current_requests
        );
        if let Some(s) = r.embedding_shift {
            let _ = write!(h, " · prompt embedding shift {s:.4}");
        }
        h.push_str("</p>");
        if r.features.is_empty() {
            h.push_str("<p><small>Not enough requests in both windows yet.</small></p>");
            continue;
        }
        h.push_str("<table><tr><th>feature</th><th>PSI</th><th>shares</th></tr>");
        for f in &r.features {
            let v = verdict(f.psi, threshold);
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"{v}\">{:.3} {v}</td><td>{}</td></tr>",
                esc(&f.feature),
                f.psi,
                chart(f)
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</body></html>");
    h
}

/// The same figures as a text table, one row per feature.
pub fn table(reports: &[KeyReport], threshold: f64) -> String {
    let mut t = String::from("model\ttemplate\tfeature\tpsi\tverdict\treference\tcurrent\n");
    for r in reports {
        let template = if r.template.is_empty() {
            "-"
        } else {
            &r.template
        };
        for f in &r.features {
            let _ = writeln!(
                t,
                "{}\t{template}\t{}\t{:.4}\t{}\t{}\t{}",
                r.model,
                f.feature,
                f.psi,
                verdict(f.psi, threshold),
                r.reference_requests,
                r.current_requests
            );
        }
        if let Some(s) = r.embedding_shift {
            let _ = writeln!(
                t,
                "{}\t{template}\tembedding_shift\t{s:.4}\t-\t{}\t{}",
                r.model, r.reference_requests, r.current_requests
            );
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_escapes_and_marks_shifts() {
        let r = KeyReport {
            model: "<m>".into(),
            template: String::new(),
            reference_requests: 60,
            current_requests: 60,
            observed: 120,
            features: vec![FeatureDrift {
                feature: "script".into(),
                psi: 1.5,
                reference: vec![("latin".into(), 1.0), ("cyrillic".into(), 0.0)],
                current: vec![("latin".into(), 0.1), ("cyrillic".into(), 0.9)],
            }],
            embedding_shift: Some(0.2),
        };
        let html = render("Drift", "now", std::slice::from_ref(&r), 0.25);
        assert!(html.contains("&lt;m&gt;") && !html.contains("<m>"));
        assert!(html.contains("class=\"shifted\">1.500 shifted"));
        assert_eq!(html.matches("<svg").count(), 1);
        let t = table(&[r], 0.25);
        assert!(t.contains("<m>\t-\tscript\t1.5000\tshifted\t60\t60"), "{t}");
        assert!(t.contains("embedding_shift\t0.2000"));
        assert_eq!(verdict(0.05, 0.25), "stable");
        assert_eq!(verdict(0.2, 0.25), "moderate");
    }
}
