//! `gatehouse audit tail|search|stats|verify|export`: reading the audit log.
//!
//! The log is read from `audit.dir` of the configuration, or from `--dir`. Reading needs no
//! lock: it works while a server writes.

use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::audit::query::{csv_row, parse_time, Filter, Stats, CSV_HEADER};
use crate::audit::record::{now_ms, Record};
use crate::audit::{files, verify};
use crate::config::{Config, DEFAULT_PATH};

/// `gatehouse audit ...`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print the last records, and with --follow the new ones as they are written.
    Tail {
        #[command(flatten)]
        log: LogArgs,
        /// Records to print first.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
        /// Keep printing new records.
        #[arg(short, long)]
        follow: bool,
        /// Print the JSON lines as stored.
        #[arg(long)]
        json: bool,
    },
    /// Print the records that match every filter given.
    Search {
        #[command(flatten)]
        log: LogArgs,
        #[command(flatten)]
        filter: FilterArgs,
        /// At most this many (the newest).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print the JSON lines as stored.
        #[arg(long)]
        json: bool,
    },
    /// Count requests by outcome, tenant and model, and decisions by rule and action.
    Stats {
        #[command(flatten)]
        log: LogArgs,
        #[command(flatten)]
        filter: FilterArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Walk the hash chain across files and check the checkpoints' signatures; exit 1 at the
    /// first broken record.
    Verify {
        #[command(flatten)]
        log: LogArgs,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the matching records as CSV or JSON Lines.
    Export {
        #[command(flatten)]
        log: LogArgs,
        #[command(flatten)]
        filter: FilterArgs,
        /// `csv` or `jsonl`.
        #[arg(long, default_value = "jsonl", value_parser = ["csv", "jsonl"])]
        format: String,
        /// Output file (default: stdout).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

/// Where the log is.
#[derive(Debug, Args)]
pub(crate) struct LogArgs {
    /// Configuration whose `audit:` section names the log (and its HMAC key).
    #[arg(long, short = 'c', default_value = DEFAULT_PATH, env = "GATEHOUSE_CONFIG")]
    config: PathBuf,
    /// Read this directory instead of the configuration's `audit.dir`.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Environment variable holding the checkpoints' HMAC key (with --dir).
    #[arg(long)]
    key_env: Option<String>,
}

/// Filters shared by search, stats and export.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// From: RFC 3339, a date (2026-12-01) or an age (90s, 15m, 2h, 7d).
    #[arg(long)]
    from: Option<String>,
    /// Until (exclusive), same forms as --from.
    #[arg(long)]
    to: Option<String>,
    /// Tenant id.
    #[arg(long)]
    tenant: Option<String>,
    /// Model id.
    #[arg(long)]
    model: Option<String>,
    /// A decision of this rule id.
    #[arg(long)]
    rule: Option<String>,
    /// A decision with this action.
    #[arg(long, value_parser = ["log", "warn", "redact", "block"])]
    action: Option<String>,
    /// Outcome (ok, blocked, refused, failed, cancelled), HTTP status (429) or error code.
    #[arg(long)]
    status: Option<String>,
    /// Record kind: chat, http, checkpoint, lifecycle.
    #[arg(long)]
    kind: Option<String>,
    /// Text in the message, error, stored (redacted) prompt and completion, sources, tools.
    #[arg(long)]
    text: Option<String>,
}

impl FilterArgs {
    fn filter(&self) -> Result<Filter, String> {
        let now = now_ms();
        let time = |v: &Option<String>| v.as_deref().map(|t| parse_time(t, now)).transpose();
        Ok(Filter {
            from: time(&self.from)?,
            to: time(&self.to)?,
            tenant: self.tenant.clone(),
            model: self.model.clone(),
            rule: self.rule.clone(),
            action: self.action.clone(),
            status: self.status.clone(),
            kind: self.kind.clone(),
            text: self.text.clone(),
        })
    }
}

/// The log's directory and HMAC key.
pub(crate) struct Log {
    pub(crate) dir: PathBuf,
    key: Option<Vec<u8>>,
}

impl LogArgs {
    pub(crate) fn resolve(&self) -> Result<Log, String> {
        if let Some(dir) = &self.dir {
            let key = match &self.key_env {
                None => None,
                Some(var) => Some(
                    std::env::var(var)
                        .map_err(|_| format!("environment variable {var} is not set"))?
                        .into_bytes(),
                ),
            };
            return Ok(Log {
                dir: dir.clone(),
                key,
            });
        }
        let cfg = Config::load(&self.config).map_err(|e| e.to_string())?;
        let a = cfg.audit.ok_or_else(|| {
            format!(
                "{} has no audit: section; give the log's directory with --dir",
                self.config.display()
            )
        })?;
        Ok(Log {
            dir: a.dir,
            key: a.hmac_key,
        })
    }
}

/// Runs the command.
pub fn run(cmd: AuditCommand) -> ExitCode {
    match execute(cmd) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            ExitCode::from(2)
        }
    }
}

fn execute(cmd: AuditCommand) -> Result<ExitCode, String> {
    let out = std::io::stdout();
    let mut out = out.lock();
    match cmd {
        AuditCommand::Tail {
            log,
            lines,
            follow,
            json,
        } => {
            let log = log.resolve()?;
            let mut last = std::collections::VecDeque::with_capacity(lines + 1);
            for item in files::lines(&log.dir).map_err(|e| e.to_string())? {
                let line = item.map_err(|e| e.to_string())?;
                if line.complete {
                    last.push_back(line.bytes);
                    if last.len() > lines {
                        last.pop_front();
                    }
                }
            }
            for l in &last {
                print_line(&mut out, l, json)?;
            }
            if follow {
                follow_log(&mut out, &log.dir, json)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Search {
            log,
            filter,
            limit,
            json,
        } => {
            let (log, filter) = (log.resolve()?, filter.filter()?);
            let mut found = std::collections::VecDeque::new();
            for item in files::lines(&log.dir).map_err(|e| e.to_string())? {
                let line = item.map_err(|e| e.to_string())?;
                let Some(r) = parse(&line) else { continue };
                if filter.matches(&r) {
                    found.push_back((line.bytes, r));
                    if found.len() > limit {
                        found.pop_front();
                    }
                }
            }
            for (bytes, r) in &found {
                if json {
                    print_line(&mut out, bytes, true)?;
                } else {
                    writeln!(out, "{}", summary(r)).map_err(|e| e.to_string())?;
                }
            }
            if !json {
                eprintln!("{} records", found.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Stats { log, filter, json } => {
            let (log, filter) = (log.resolve()?, filter.filter()?);
            let mut stats = Stats::default();
            for item in files::records(&log.dir).map_err(|e| e.to_string())? {
                let (_, r) = item.map_err(|e| e.to_string())?;
                if filter.matches(&r) {
                    stats.add(&r);
                }
            }
            if json {
                let text = serde_json::to_string_pretty(&stats).map_err(|e| e.to_string())?;
                writeln!(out, "{text}").map_err(|e| e.to_string())?;
            } else {
                print_stats(&mut out, &stats).map_err(|e| e.to_string())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify { log, json } => {
            let log = log.resolve()?;
            let report = verify::verify(&log.dir, log.key.as_deref()).map_err(|e| e.to_string())?;
            if json {
                let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
                writeln!(out, "{text}").map_err(|e| e.to_string())?;
            } else {
                print_report(&mut out, &report, log.key.is_some()).map_err(|e| e.to_string())?;
            }
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        AuditCommand::Export {
            log,
            filter,
            format,
            output,
        } => {
            let (log, filter) = (log.resolve()?, filter.filter()?);
            let mut sink: Box<dyn Write> = match &output {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?,
                )),
                None => Box::new(out),
            };
            let csv = format == "csv";
            if csv {
                writeln!(sink, "{}", CSV_HEADER.join(",")).map_err(|e| e.to_string())?;
            }
            let mut n = 0u64;
            for item in files::lines(&log.dir).map_err(|e| e.to_string())? {
                let line = item.map_err(|e| e.to_string())?;
                let Some(r) = parse(&line) else { continue };
                if !filter.matches(&r) {
                    continue;
                }
                n += 1;
                let written = if csv {
                    sink.write_all(csv_row(&r).as_bytes())
                } else {
                    sink.write_all(&line.bytes)
                        .and_then(|()| sink.write_all(b"\n"))
                };
                written.map_err(|e| e.to_string())?;
            }
            sink.flush().map_err(|e| e.to_string())?;
            if let Some(p) = output {
                eprintln!("{n} records -> {}", p.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn parse(line: &files::Line) -> Option<Record> {
    if !line.complete {
        return None;
    }
    serde_json::from_slice(&line.bytes).ok()
}

fn print_line(out: &mut impl Write, bytes: &[u8], json: bool) -> Result<(), String> {
    let text = if json {
        String::from_utf8_lossy(bytes).into_owned()
    } else {
        match serde_json::from_slice::<Record>(bytes) {
            Ok(r) => summary(&r),
            Err(_) => format!("(not a record) {}", String::from_utf8_lossy(bytes)),
        }
    };
    writeln!(out, "{text}").map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())
}

/// One line per record for people.
pub fn summary(r: &Record) -> String {
    let u = &r.unmapped;
    let mut s = format!(
        "{} #{} {} {}",
        r.time_dt, r.metadata.sequence, u.kind, u.outcome
    );
    let mut field = |k: &str, v: Option<&str>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            s.push_str(&format!(" {k}={v}"));
        }
    };
    field("tenant", r.tenant());
    field("key", r.key_id());
    field("op", r.api.as_ref().map(|a| a.operation.as_str()));
    field("model", u.model.as_deref());
    field("status", r.status_code.as_deref());
    let rules: Vec<String> = u
        .decisions
        .iter()
        .map(|d| format!("{}:{}", d.rule, d.action))
        .collect();
    field("decisions", Some(rules.join(",").as_str()));
    field("cache", u.cache.as_deref());
    let tokens = u.tokens.map(|t| t.total.to_string());
    field("tokens", tokens.as_deref());
    let ms = r.duration.map(|d| d.to_string());
    field("ms", ms.as_deref());
    field("request", r.request_id());
    if u.kind != "chat" && u.kind != "http" {
        s.push_str(&format!(" {}", r.message));
    }
    s
}

fn print_stats(out: &mut impl Write, s: &Stats) -> std::io::Result<()> {
    writeln!(out, "requests: {}", s.records)?;
    for (title, map) in [
        ("outcome", &s.outcomes),
        ("tenant", &s.tenants),
        ("model", &s.models),
        ("rule", &s.rules),
        ("action", &s.actions),
        ("rule/action", &s.rule_actions),
    ] {
        if map.is_empty() {
            continue;
        }
        writeln!(out, "\nby {title}:")?;
        let mut rows: Vec<_> = map.iter().collect();
        rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (k, n) in rows {
            writeln!(out, "  {n:>8}  {k}")?;
        }
    }
    Ok(())
}

fn print_report(out: &mut impl Write, r: &verify::Report, keyed: bool) -> std::io::Result<()> {
    match &r.broken {
        Some(b) => writeln!(
            out,
            "BROKEN: {} line {} (sequence {}): {}",
            b.file.display(),
            b.line,
            b.sequence
                .map(|s| s.to_string())
                .unwrap_or_else(|| "?".into()),
            b.reason
        )?,
        None => writeln!(
            out,
            "ok: {} records in {} files verify (sequences {}..{})",
            r.records,
            r.files,
            r.first_sequence.unwrap_or(0),
            r.last_sequence.unwrap_or(0)
        )?,
    }
    if r.first_sequence.is_some_and(|s| s > 1) {
        writeln!(
            out,
            "note: the log starts at sequence {}: earlier files were removed",
            r.first_sequence.unwrap_or(0)
        )?;
    }
    if keyed {
        writeln!(
            out,
            "checkpoints: {} signatures verified, {} unsigned; {} records after the last verified signature",
            r.signed_checkpoints, r.unchecked_checkpoints, r.unsigned_tail
        )?;
    } else {
        writeln!(
            out,
            "checkpoints: {} (signatures not checked: no HMAC key; configure audit.hmac_key_env or pass --key-env)",
            r.checkpoints
        )?;
    }
    for t in &r.torn {
        writeln!(
            out,
            "note: {} line {}: {} bytes of an unfinished record (a crash before it was written; never acknowledged)",
            t.file.display(),
            t.line,
            t.bytes
        )?;
    }
    Ok(())
}

/// Prints records as they are appended, moving on to new files as they appear.
fn follow_log(out: &mut impl Write, dir: &std::path::Path, json: bool) -> Result<(), String> {
    let mut current: Option<(PathBuf, u64)> = files::list(dir)
        .map_err(|e| e.to_string())?
        .last()
        .map(|p| {
            (
                p.clone(),
                std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
            )
        });
    let mut partial = Vec::new();
    loop {
        if let Some((path, offset)) = current.as_mut() {
            let mut f = std::fs::File::open(&*path).map_err(|e| e.to_string())?;
            f.seek(SeekFrom::Start(*offset))
                .map_err(|e| e.to_string())?;
            let mut buf = Vec::new();
            f.read_to_end(&mut buf).map_err(|e| e.to_string())?;
            *offset += buf.len() as u64;
            partial.extend_from_slice(&buf);
            let mut reader = std::io::Cursor::new(std::mem::take(&mut partial));
            loop {
                let mut line = Vec::new();
                let n = reader
                    .read_until(b'\n', &mut line)
                    .map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                if line.last() == Some(&b'\n') {
                    line.pop();
                    print_line(out, &line, json)?;
                } else {
                    partial = line; // the rest of it is still being written
                }
            }
        }
        let files = files::list(dir).map_err(|e| e.to_string())?;
        let newer = files
            .iter()
            .find(|p| current.as_ref().is_none_or(|(c, _)| *p > c));
        match newer {
            // Finish the current file first: a rotation writes its closing checkpoint there.
            Some(p) if partial.is_empty() => current = Some((p.clone(), 0)),
            _ => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}
