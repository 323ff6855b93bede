//! The output guard on a growing text: each chunk is appended, the whole text is scanned,
//! and only the prefix no future text can change is released, redacted.
//!
//! What is held back at the end of the text:
//! - the last `holdback_chars` characters (the longest match of the stage's rules that may
//!   contain whitespace, plus look-ahead);
//! - a whitespace-free run that reaches into that window, whole (tokens, keys, emails of
//!   any length);
//! - any match that reaches into it, whole (a private key block runs to its END line).
//!
//! Under these rules a match that ends in the released prefix is complete, so the released
//! text is the same however the output was split into chunks, and equal to evaluating the
//! whole text at once ([`super::evaluate::evaluate`]); the tests check every split point.
//! A `json_schema` rule that blocks holds the whole output until it is complete.

use std::sync::{Arc, Mutex};

use super::evaluate::{Applier, Redactor};
use super::rules::Policy;
use super::{Blocked, Decision, Stage};

/// Bytes that must be releasable before a chunk triggers a scan: each scan reads the whole
/// answer so far, so scanning for every token-sized chunk would cost four times as much for
/// about four tokens less delay. Where the scans happen does not change what is released.
const RELEASE_BATCH: usize = 16;

/// Guards one streamed answer.
pub struct StreamGuard {
    policy: Arc<Policy>,
    stage: Stage,
    redactor: Arc<Mutex<Redactor>>,
    text: String,
    applier: Applier,
    decisions: Vec<Decision>,
    holdback: usize,
    hold_all: bool,
    blocked: Option<Box<Blocked>>,
}

impl StreamGuard {
    /// A guard for the output of a request that uses `redactor` for its placeholders.
    pub fn new(policy: Arc<Policy>, stage: Stage, redactor: Arc<Mutex<Redactor>>) -> Self {
        let s = policy.stage(stage);
        let (holdback, hold_all) = (s.holdback_chars, s.hold_all);
        Self {
            policy,
            stage,
            redactor,
            text: String::new(),
            applier: Applier::default(),
            decisions: Vec::new(),
            holdback,
            hold_all,
            blocked: None,
        }
    }

    /// Appends `chunk`; returns the text that may be sent now, or the block that ends the
    /// stream. After a block, further calls return the same block.
    pub fn push(&mut self, chunk: &str) -> Result<String, Box<Blocked>> {
        if let Some(b) = &self.blocked {
            return Err(b.clone());
        }
        self.text.push_str(chunk);
        if self.hold_all {
            return Ok(String::new());
        }
        let released = self.applier.written();
        let window_start = back_chars(&self.text, self.holdback);
        if window_start < released + RELEASE_BATCH {
            // Too little could be released to pay for a scan of the whole text.
            return Ok(String::new());
        }
        let hits = self.policy.scan(self.stage, &self.text);
        let p = release_point(&self.text, &hits, window_start).max(released);
        self.release(hits, p, false)
    }

    /// The stream ended: releases the rest, after the checks that need the whole text.
    pub fn finish(&mut self) -> Result<String, Box<Blocked>> {
        if let Some(b) = &self.blocked {
            return Err(b.clone());
        }
        let mut hits = self.policy.scan(self.stage, &self.text);
        hits.extend(self.policy.check_schemas(self.stage, &self.text));
        self.release(hits, self.text.len(), true)
    }

    /// Decisions made so far, in text order; drained.
    pub fn take_decisions(&mut self) -> Vec<Decision> {
        std::mem::take(&mut self.decisions)
    }

    /// The text received so far (before redaction).
    pub fn received(&self) -> &str {
        &self.text
    }

    fn release(
        &mut self,
        hits: Vec<super::rules::Hit>,
        upto: usize,
        all: bool,
    ) -> Result<String, Box<Blocked>> {
        let from = self.applier.written();
        // A hit that began before `from` is partly released already; only a match longer
        // than the hold-back can do that. Its unreleased part is still redacted.
        let final_hits: Vec<_> = hits
            .into_iter()
            .filter(|h| h.end > from && (all || h.end <= upto))
            .map(|mut h| {
                if h.start < from {
                    tracing::warn!(rule = h.rule, entity = %h.entity, "a match longer than the stream hold-back was partly sent; raise stream.holdback_chars");
                    h.start = from;
                }
                h
            })
            .collect();
        let mut out = String::new();
        let mut redactor = self.redactor.lock().unwrap_or_else(|e| e.into_inner());
        let blocked = self.applier.apply(
            &self.policy,
            self.stage,
            None,
            &self.text,
            &final_hits,
            upto,
            &mut redactor,
            &mut out,
            &mut self.decisions,
        );
        if let Some(b) = blocked {
            let b = Box::new(b);
            self.blocked = Some(b.clone());
            return Err(b);
        }
        Ok(out)
    }
}

/// Byte offset `n` characters before the end of `text` (0 when shorter).
fn back_chars(text: &str, n: usize) -> usize {
    if n == 0 {
        return text.len();
    }
    text.char_indices()
        .rev()
        .nth(n - 1)
        .map(|(i, _)| i)
        .unwrap_or(0)
}

/// The largest offset at most `p` that is not inside a whitespace-free run or a hit that
/// reaches past it.
fn release_point(text: &str, hits: &[super::rules::Hit], mut p: usize) -> usize {
    loop {
        let before = p;
        if p > 0 && p < text.len() {
            let prev = text[..p]
                .chars()
                .next_back()
                .is_some_and(char::is_whitespace);
            let next = text[p..].chars().next().is_some_and(char::is_whitespace);
            if !prev && !next {
                p = text[..p]
                    .char_indices()
                    .rev()
                    .find(|(_, c)| c.is_whitespace())
                    .map(|(i, c)| i + c.len_utf8())
                    .unwrap_or(0);
            }
        }
        for h in hits {
            if h.start < p && p < h.end {
                p = h.start;
            }
        }
        if p == before {
            return p;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_chars_counts_characters() {
        assert_eq!(back_chars("abcdef", 2), 4);
        assert_eq!(back_chars("ab", 5), 0);
        assert_eq!(back_chars("aé€", 1), 3);
        assert_eq!(back_chars("abc", 0), 3);
    }

    #[test]
    fn release_point_keeps_runs_whole() {
        let t = "hello secret-token-value more";
        // Inside "secret-token-value": back to its start.
        assert_eq!(release_point(t, &[], 10), 6);
        // On a space boundary: stays.
        assert_eq!(release_point(t, &[], 6), 6);
        assert_eq!(release_point(t, &[], 5), 5);
    }
}
