//! `gatehouse drift report`: the drift monitor's figures computed from the audit log, for
//! any two time ranges (the same features, windows and index as `/admin/drift`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::audit::LogArgs;
use crate::audit::files;
use crate::audit::query::parse_time;
use crate::audit::record::now_ms;
use crate::drift::stats::Counts;
use crate::drift::{page, Baseline, BaselineKey, KeyReport, Observation};

/// `gatehouse drift ...`.
#[derive(Debug, Subcommand)]
pub enum DriftCommand {
    /// Compare the chat requests of two time ranges of the audit log, per model and template.
    Report(ReportArgs),
}

/// `gatehouse drift report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    log: LogArgs,
    /// The reference range, `FROM..TO`: RFC 3339, a date (2026-12-01) or an age (2h, 7d)
    /// on each side; either side may be left open (`..2026-12-01`, `7d..`).
    #[arg(long)]
    baseline: String,
    /// The range compared with it, same form.
    #[arg(long)]
    current: String,
    /// Only this model.
    #[arg(long)]
    model: Option<String>,
    /// Only this template (its name; `-` for requests without one).
    #[arg(long)]
    template: Option<String>,
    /// Requests each range needs, per model and template, before its figures count.
    #[arg(long, default_value_t = 30)]
    min_requests: usize,
    /// PSI from which a feature is reported as shifted.
    #[arg(long, default_value_t = 0.25)]
    psi_threshold: f64,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Where the HTML report goes.
    #[arg(long, default_value = "drift-report.html")]
    html: PathBuf,
    /// Also write the baseline range as a file for `drift.baseline_file`.
    #[arg(long)]
    save_baseline: Option<PathBuf>,
}

/// A time range, `FROM..TO`, as ms since the epoch (`None`: open).
fn range(s: &str, now: i64) -> Result<(Option<i64>, Option<i64>), String> {
    let (from, to) = s.split_once("..").ok_or_else(|| {
        format!("`{s}` is not a range: write FROM..TO (either side may be empty)")
    })?;
    let side = |v: &str| {
        let v = v.trim();
        (!v.is_empty()).then(|| parse_time(v, now)).transpose()
    };
    let (from, to) = (side(from)?, side(to)?);
    if let (Some(f), Some(t)) = (from, to) {
        if f >= t {
            return Err(format!("`{s}`: the range ends before it starts"));
        }
    }
    Ok((from, to))
}

fn within(t: i64, (from, to): (Option<i64>, Option<i64>)) -> bool {
    from.is_none_or(|f| t >= f) && to.is_none_or(|e| t < e)
}

/// Runs the command.
pub fn run(cmd: DriftCommand) -> ExitCode {
    let DriftCommand::Report(args) = cmd;
    match report(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            ExitCode::from(2)
        }
    }
}

type Windows = BTreeMap<(String, String), (Counts, Counts)>;

fn report(a: ReportArgs) -> Result<(), String> {
    let now = now_ms();
    let (baseline, current) = (range(&a.baseline, now)?, range(&a.current, now)?);
    let log = a.log.resolve()?;
    let mut windows = Windows::new();
    for item in files::records(&log.dir).map_err(|e| e.to_string())? {
        let (_, r) = item.map_err(|e| e.to_string())?;
        let Some(o) = Observation::from_record(&r) else {
            continue;
        };
        let template = if o.template.is_empty() {
            "-"
        } else {
            &o.template
        };
        if a.model.as_deref().is_some_and(|m| m != o.model)
            || a.template.as_deref().is_some_and(|t| t != template)
        {
            continue;
        }
        let (in_base, in_cur) = (within(r.time, baseline), within(r.time, current));
        if !in_base && !in_cur {
            continue;
        }
        let w = windows
            .entry((o.model.clone(), o.template.clone()))
            .or_default();
        if in_base {
            w.0.apply(&o, 1);
        }
        if in_cur {
            w.1.apply(&o, 1);
        }
    }
    let reports: Vec<KeyReport> = windows
        .iter()
        .map(|((m, t), (b, c))| crate::drift::compare(m, t, b, c, a.min_requests))
        .collect();
    let mut out = std::io::stdout().lock();
    let text = if a.json {
        serde_json::to_string_pretty(&reports).map_err(|e| e.to_string())? + "\n"
    } else {
        page::table(&reports, a.psi_threshold)
    };
    out.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
    let short: Vec<String> = reports
        .iter()
        .filter(|r| r.features.is_empty())
        .map(|r| {
            format!(
                "{} {}: {} and {} requests",
                r.model,
                if r.template.is_empty() {
                    "-"
                } else {
                    &r.template
                },
                r.reference_requests,
                r.current_requests
            )
        })
        .collect();
    if !short.is_empty() {
        eprintln!(
            "fewer than {} requests in a range, not compared: {}",
            a.min_requests,
            short.join("; ")
        );
    }
    let subtitle = format!(
        "Audit log {}: baseline {}, current {}",
        log.dir.display(),
        a.baseline,
        a.current
    );
    let html = page::render("Drift report", &subtitle, &reports, a.psi_threshold);
    std::fs::write(&a.html, html).map_err(|e| format!("{}: {e}", a.html.display()))?;
    eprintln!("HTML report -> {}", a.html.display());
    if let Some(path) = &a.save_baseline {
        let b = Baseline {
            version: 1,
            keys: windows
                .into_iter()
                .map(|((model, template), (counts, _))| BaselineKey {
                    model,
                    template,
                    counts,
                })
                .collect(),
        };
        let text = serde_json::to_string_pretty(&b).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("baseline -> {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let now = 10 * 86_400_000;
        assert_eq!(
            range("2d..1d", now).unwrap(),
            (Some(now - 2 * 86_400_000), Some(now - 86_400_000))
        );
        assert_eq!(range("..1d", now).unwrap(), (None, Some(now - 86_400_000)));
        assert_eq!(range("1d..", now).unwrap(), (Some(now - 86_400_000), None));
        assert!(range("1d", now).is_err());
        assert!(range("1d..2d", now).unwrap_err().contains("ends before"));
        assert!(
            within(5, (None, None)) && !within(5, (Some(6), None)) && !within(5, (None, Some(5)))
        );
    }
}
