//! `gatehouse batch`: a file of records through a template, in-process.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use super::{load, ConfigArg};
use crate::batch::{self, BatchOptions};

/// Arguments of `gatehouse batch`.
#[derive(Debug, clap::Args)]
pub struct BatchArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Template: `NAME` or `NAME@VERSION`.
    #[arg(long, short = 't')]
    template: String,
    /// Model (default: the template's).
    #[arg(long, short = 'm')]
    model: Option<String>,
    /// Records in flight (default: the model's max_concurrent).
    #[arg(long, short = 'j')]
    concurrency: Option<usize>,
    /// The variable a plain-text line fills.
    #[arg(long, default_value = "record")]
    var_name: String,
    /// Start over: truncate the output instead of skipping the ids it already has.
    #[arg(long)]
    restart: bool,
    /// Results, JSON Lines (appended; re-running skips finished ids).
    #[arg(long, short = 'o')]
    output: PathBuf,
    /// Records: JSON Lines (`{"id", ...variables}`) or plain text, one per line.
    input: PathBuf,
}

/// Runs the command: exit 0 when no record failed (blocked ones are outcomes), 1 when some
/// did, 2 when the batch could not run.
pub async fn run(args: BatchArgs) -> ExitCode {
    let cfg = match load(&args.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut stores = match crate::app::load_stores(&cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            return ExitCode::from(2);
        }
    };
    // Every record is audited like a request; the log is closed when the run ends.
    stores.audit = match crate::app::open_audit(&cfg) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = BatchOptions {
        template: args.template,
        input: args.input,
        output: args.output.clone(),
        model: args.model,
        concurrency: args.concurrency,
        var_name: args.var_name,
        restart: args.restart,
        tty: std::io::stderr().is_terminal(),
    };
    match batch::run(cfg, stores, opts).await {
        Ok(s) => {
            let c = s.counts;
            let rate = if s.seconds > 0.0 {
                c.run() as f64 / s.seconds
            } else {
                0.0
            };
            eprintln!(
                "summary: {} records: {} ok, {} blocked, {} failed, {} skipped (already done) \
                 in {:.1}s ({rate:.2} records/s) -> {}",
                s.total,
                c.ok,
                c.blocked,
                c.failed,
                c.skipped,
                s.seconds,
                args.output.display()
            );
            if c.failed > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("gatehouse: {e}");
            ExitCode::from(2)
        }
    }
}
