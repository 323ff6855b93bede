//! The progress line on stderr: done/total, outcomes, throughput and ETA. Redrawn in place
//! on a terminal; otherwise printed as plain lines at most every few seconds, so logs of
//! CI jobs stay readable.

use std::io::Write;
use std::time::{Duration, Instant};

/// Outcome counts of a batch run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Answered (and valid under the template's response format).
    pub ok: usize,
    /// Refused by a guardrail policy.
    pub blocked: usize,
    /// Failed otherwise (engine error, invalid structured output, bad variables).
    pub failed: usize,
    /// Skipped: already done in the output file.
    pub skipped: usize,
}

impl Counts {
    /// Records run in this invocation.
    pub fn run(&self) -> usize {
        self.ok + self.blocked + self.failed
    }
}

/// Tracks and shows progress.
pub struct Progress {
    total: usize,
    started: Instant,
    tty: bool,
    every: Duration,
    last: Option<Instant>,
}

impl Progress {
    /// Progress over `total` records to run.
    pub fn new(total: usize, tty: bool) -> Self {
        Self {
            total,
            started: Instant::now(),
            tty,
            every: Duration::from_secs(2),
            last: None,
        }
    }

    /// The line for `c`, e.g. `12/50 [#####.....] ok 10 blocked 1 failed 1 · 0.53 rec/s · ETA 1m12s`.
    pub fn line(&self, c: &Counts) -> String {
        let done = c.run();
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
        let eta = if done == 0 || rate <= 0.0 {
            "?".to_string()
        } else {
            human(((self.total - done.min(self.total)) as f64 / rate).round() as u64)
        };
        let width = 20;
        let filled = (done * width).checked_div(self.total).unwrap_or(width);
        format!(
            "{done}/{} [{}{}] ok {} blocked {} failed {} · {rate:.2} rec/s · ETA {eta}",
            self.total,
            "#".repeat(filled),
            ".".repeat(width - filled),
            c.ok,
            c.blocked,
            c.failed,
        )
    }

    /// Shows `c` if it is time to (always for the last record).
    pub fn update(&mut self, c: &Counts) {
        let last_one = c.run() >= self.total;
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{}", self.line(c));
            if last_one {
                let _ = writeln!(err);
            }
        } else if last_one || self.last.is_none_or(|l| l.elapsed() >= self.every) {
            let _ = writeln!(err, "progress {}", self.line(c));
            self.last = Some(Instant::now());
        }
        let _ = err.flush();
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// `75` → `1m15s`.
fn human(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shows_counts_bar_and_eta() {
        let p = Progress::new(4, false);
        let c = Counts {
            ok: 1,
            blocked: 1,
            ..Default::default()
        };
        let l = p.line(&c);
        assert!(
            l.starts_with("2/4 [##########..........] ok 1 blocked 1 failed 0 · "),
            "{l}"
        );
        assert!(l.contains("rec/s · ETA "), "{l}");
        assert!(Progress::new(0, false)
            .line(&Counts::default())
            .starts_with("0/0 ["));
        assert_eq!(human(75), "1m15s");
        assert_eq!(human(3700), "1h01m");
    }
}
