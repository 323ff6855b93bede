//! Stop sequences on streamed text: emit what is safe, hold back what may become a match.
//!
//! mistral.rs streams the text that completes a stop string (and one token more) before it
//! finishes, so the engine matches stop strings itself.

/// Incremental matcher over streamed text.
#[derive(Debug, Clone)]
pub struct StopMatcher {
    stops: Vec<String>,
    pending: String,
    stopped: bool,
}

/// What a push produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// Text that can be emitted now.
    pub emit: String,
    /// A stop sequence matched: nothing after `emit` may be shown.
    pub stopped: bool,
}

impl StopMatcher {
    /// A matcher for `stops` (empty strings are ignored).
    pub fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            pending: String::new(),
            stopped: false,
        }
    }

    /// Adds generated text.
    pub fn push(&mut self, text: &str) -> Pushed {
        if self.stopped {
            return Pushed {
                emit: String::new(),
                stopped: true,
            };
        }
        if self.stops.is_empty() {
            return Pushed {
                emit: text.to_string(),
                stopped: false,
            };
        }
        self.pending.push_str(text);
        // Earliest match wins, whichever stop string it is.
        let hit = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min();
        if let Some(at) = hit {
            self.stopped = true;
            let emit = self.pending[..at].to_string();
            self.pending.clear();
            return Pushed {
                emit,
                stopped: true,
            };
        }
        // Hold back the longest suffix that is a prefix of some stop string.
        let hold = self
            .stops
            .iter()
            .map(|s| longest_suffix_prefix(&self.pending, s))
            .max()
            .unwrap_or(0);
        let cut = self.pending.len() - hold;
        let emit = self.pending[..cut].to_string();
        self.pending.drain(..cut);
        Pushed {
            emit,
            stopped: false,
        }
    }

    /// The stream ended without a match: whatever was held back is text after all.
    pub fn flush(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }
}

/// Length in bytes of the longest suffix of `text` that is a proper prefix of `stop`,
/// cut on a char boundary of `text`.
fn longest_suffix_prefix(text: &str, stop: &str) -> usize {
    let max = text.len().min(stop.len().saturating_sub(1));
    (1..=max)
        .rev()
        .find(|&n| {
            text.is_char_boundary(text.len() - n)
                && stop
                    .as_bytes()
                    .starts_with(&text.as_bytes()[text.len() - n..])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut m = StopMatcher::new(&stops);
        let mut out = String::new();
        for p in pieces {
            let r = m.push(p);
            out.push_str(&r.emit);
            if r.stopped {
                return (out, true);
            }
        }
        out.push_str(&m.flush());
        (out, false)
    }

    #[test]
    fn stops_across_pieces() {
        assert_eq!(
            run(&["\n\n"], &["Hello", "\n", "\nWorld"]),
            ("Hello".into(), true)
        );
        assert_eq!(
            run(&["END"], &["abc E", "N", "D tail"]),
            ("abc ".into(), true)
        );
        assert_eq!(run(&["END"], &["abc E", "N"]), ("abc EN".into(), false));
        assert_eq!(run(&[], &["a", "b"]), ("ab".into(), false));
        assert_eq!(run(&["é!"], &["caf", "é", "?"]), ("café?".into(), false));
    }

    proptest! {
        /// Streaming with any split equals cutting the whole text at the first match.
        #[test]
        fn same_as_whole_text(text in "[ab\n é]{0,40}", stop in "[ab\né]{1,4}", cuts in proptest::collection::vec(0usize..40, 0..6)) {
            let chars: Vec<char> = text.chars().collect();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(chars.len())).collect();
            cuts.sort();
            let mut pieces = Vec::new();
            let mut prev = 0;
            for c in cuts { pieces.push(chars[prev..c].iter().collect::<String>()); prev = c; }
            pieces.push(chars[prev..].iter().collect::<String>());
            let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
            let expected = match text.find(&stop) {
                Some(i) => (text[..i].to_string(), true),
                None => (text.clone(), false),
            };
            prop_assert_eq!(run(&[&stop], &refs), expected);
        }
    }
}
