//! Heuristic prompt-injection detection.
//!
//! Two families of signals:
//! - phrase signals ([`Signal::InstructionOverride`], [`Signal::RolePlay`],
//!   [`Signal::PromptExfiltration`]) are matched on a [`Folded`] view of the text (plus light
//!   leetspeak folding: `0→o 1→i 3→e 4→a 5→s 7→t @→a $→s`), so homoglyphs, zero-width
//!   characters, fullwidth forms, accents, case and extra spacing/punctuation between words do
//!   not hide them; matches are reported at original offsets;
//! - hidden-content signals ([`Signal::ZeroWidth`], [`Signal::Bidi`], [`Signal::Ansi`],
//!   [`Signal::TagChars`], [`Signal::Homoglyph`]) are found on the original text;
//! - [`Signal::Encoded`]: a phrase found in a base64 or hex run decoded, or in the text read
//!   as ROT13 (`encoded`).
//!
//! Each phrase pattern is either strong or weak. A weak pattern (ambiguous on its own:
//! `jailbreak`, bare `developer mode`, `pretend you are`, `ignore the rules`, `the system
//! prompt`, ...) contributes half its signal's weight, so a weak phrase alone stays under 0.5.
//! A strong phrase right after a negation ("the assistant must never reveal the system
//! prompt", "do not ignore previous instructions") is downgraded to weak.
//!
//! Score: `1 - Π(1 - w_s)` over the DISTINCT signals `s` found, where `w_s` is
//! [`Signal::weight`] when any match of `s` is strong (hidden-content matches are always
//! strong) and half of it otherwise. No bonus for repeated matches of one signal.

mod encoded;
mod hidden;
mod phrases;
#[cfg(test)]
mod tests;

use regex::{Regex, RegexBuilder};

use super::context;
use super::fold::Folded;
use hidden::{hidden_chars, homoglyph_words};
use phrases::{
    expand, ANSI, FOLDED_PHRASES, NEGATION, NEGATION_WINDOW, ORIGINAL_PHRASES, SIZE_LIMIT,
};

/// One kind of injection evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// "Ignore previous instructions" and similar attempts to replace the instructions.
    InstructionOverride,
    /// Jailbreak personas: DAN, developer mode, "pretend you are unrestricted", ...
    RolePlay,
    /// Attempts to read back the system prompt / hidden instructions.
    PromptExfiltration,
    /// Zero-width characters (U+200B–200D, U+2060–2064, U+FEFF, U+180E).
    ZeroWidth,
    /// Bidi embedding/override/isolate controls (U+202A–202E, U+2066–2069).
    Bidi,
    /// ANSI / terminal escape sequences (ESC, C1 CSI).
    Ansi,
    /// Unicode tag characters (U+E0000–E007F), an invisible ASCII copy.
    TagChars,
    /// A word mixing Latin letters with Cyrillic/Greek look-alikes (`pаypal`).
    Homoglyph,
    /// A phrase signal inside base64, hex or ROT13.
    Encoded,
}

impl Signal {
    /// Every signal, in declaration order.
    pub const ALL: [Signal; 9] = [
        Signal::InstructionOverride,
        Signal::RolePlay,
        Signal::PromptExfiltration,
        Signal::ZeroWidth,
        Signal::Bidi,
        Signal::Ansi,
        Signal::TagChars,
        Signal::Homoglyph,
        Signal::Encoded,
    ];

    /// Stable snake_case name (for metrics, logs and API responses).
    pub fn name(self) -> &'static str {
        match self {
            Signal::InstructionOverride => "instruction_override",
            Signal::RolePlay => "role_play",
            Signal::PromptExfiltration => "prompt_exfiltration",
            Signal::ZeroWidth => "zero_width",
            Signal::Bidi => "bidi_override",
            Signal::Ansi => "ansi_escape",
            Signal::TagChars => "tag_chars",
            Signal::Homoglyph => "homoglyph",
            Signal::Encoded => "encoded_instructions",
        }
    }

    /// Weight in (0, 1) of a strong match of this signal in the combined score.
    pub fn weight(self) -> f32 {
        match self {
            Signal::InstructionOverride => 0.7,
            Signal::PromptExfiltration => 0.7,
            Signal::RolePlay => 0.5,
            Signal::Bidi => 0.6,
            Signal::TagChars => 0.8,
            Signal::ZeroWidth => 0.4,
            Signal::Ansi => 0.4,
            Signal::Homoglyph => 0.4,
            Signal::Encoded => 0.7,
        }
    }
}

/// One piece of evidence, at byte offsets (char boundaries) of the scanned text.
#[derive(Debug, Clone, PartialEq)]
pub struct InjectionMatch {
    /// Start byte offset in the original text.
    pub start: usize,
    /// End byte offset (exclusive) in the original text.
    pub end: usize,
    /// What was found.
    pub signal: Signal,
}

/// Result of [`InjectionDetector::scan`].
#[derive(Debug, Clone, PartialEq)]
pub struct InjectionReport {
    /// In 0..=1.
    pub score: f32,
    /// Evidence, sorted by start (then end); overlapping matches of one signal are merged.
    pub matches: Vec<InjectionMatch>,
}

/// Heuristic prompt-injection detector (compiled once, cheap to share).
#[derive(Debug, Clone)]
pub struct InjectionDetector {
    /// Phrase patterns over the folded (and de-leeted) text: `(regex, signal, strong)`.
    folded: Vec<(Regex, Signal, bool)>,
    /// A negation right before a phrase ("never reveal the system prompt").
    negation: Regex,
    /// Phrase patterns over the original text (case-sensitive `DAN`).
    original: Vec<(Regex, Signal, bool)>,
    /// ANSI escape sequences.
    ansi: Regex,
}

impl Default for InjectionDetector {
    fn default() -> Self {
        Self::new()
    }
}

/// A match before merging: `(start, end, signal, strong)` at original offsets.
type Raw = (usize, usize, Signal, bool);

impl InjectionDetector {
    /// Compiles the detector's patterns.
    pub fn new() -> Self {
        let folded = FOLDED_PHRASES
            .iter()
            .map(|&(signal, strong, p)| {
                let re = RegexBuilder::new(&expand(p))
                    .size_limit(SIZE_LIMIT)
                    .build()
                    .expect("built-in phrase pattern compiles");
                (re, signal, strong)
            })
            .collect();
        let negation = Regex::new(NEGATION).expect("negation pattern compiles");
        let original = ORIGINAL_PHRASES
            .iter()
            .map(|&(s, w, p)| (Regex::new(p).expect("built-in pattern compiles"), s, w))
            .collect();
        let ansi = Regex::new(ANSI).expect("ANSI pattern compiles");
        InjectionDetector {
            folded,
            negation,
            original,
            ansi,
        }
    }

    /// Scans `text`: every match (sorted by start) and the combined score in [0, 1].
    pub fn scan(&self, text: &str) -> InjectionReport {
        let mut raw: Vec<Raw> = Vec::new();

        let folded = Folded::new(text);
        let view = deleet(&folded.text);
        for (re, signal, strong) in &self.folded {
            for m in re.find_iter(&view) {
                let (a, b) = folded.original_range(m.start(), m.end());
                if a < b {
                    let strong = *strong && !self.negated(&view, m.start());
                    raw.push((a, b, *signal, strong));
                }
            }
        }
        for (re, signal, strong) in &self.original {
            for m in re.find_iter(text) {
                raw.push((m.start(), m.end(), *signal, *strong));
            }
        }
        for m in self.ansi.find_iter(text) {
            raw.push((m.start(), m.end(), Signal::Ansi, true));
        }
        hidden_chars(text, &mut raw);
        homoglyph_words(text, &mut raw);
        for (start, end, decoded) in encoded::encoded_views(text) {
            if let Some(strong) = self.phrase_in(&decoded) {
                raw.push((start, end, Signal::Encoded, strong));
            }
        }

        // Score over distinct signals.
        let mut score_keep = 1.0f32;
        for signal in Signal::ALL {
            let found = raw.iter().filter(|r| r.2 == signal);
            let mut any = false;
            let mut strong = false;
            for r in found {
                any = true;
                strong |= r.3;
            }
            if any {
                let w = if strong {
                    signal.weight()
                } else {
                    signal.weight() / 2.0
                };
                score_keep *= 1.0 - w;
            }
        }
        let score = (1.0 - score_keep).clamp(0.0, 1.0);

        // Merge overlapping matches of one signal, then sort by start.
        raw.sort_by_key(|r| (signal_rank(r.2), r.0, r.1));
        let mut matches: Vec<InjectionMatch> = Vec::new();
        for (start, end, signal, _) in raw {
            if let Some(last) = matches.last_mut() {
                if last.signal == signal && start < last.end {
                    last.end = last.end.max(end);
                    continue;
                }
            }
            matches.push(InjectionMatch { start, end, signal });
        }
        matches.sort_by_key(|m| (m.start, m.end, signal_rank(m.signal)));
        InjectionReport { score, matches }
    }
}

impl InjectionDetector {
    /// Whether a phrase pattern matches `text` (`Some(strong)`), without looking further
    /// into encodings: decoded text is not decoded again.
    fn phrase_in(&self, text: &str) -> Option<bool> {
        let folded = Folded::new(text);
        let view = deleet(&folded.text);
        let mut found = None;
        for (re, _, strong) in &self.folded {
            if let Some(m) = re.find(&view) {
                let strong = *strong && !self.negated(&view, m.start());
                found = Some(found.unwrap_or(false) || strong);
            }
        }
        found
    }

    /// Whether the folded text right before `start` ends with a negation ("never ", "do not ").
    fn negated(&self, view: &str, start: usize) -> bool {
        self.negation
            .is_match(context::before(view, start, NEGATION_WINDOW))
    }
}

fn signal_rank(signal: Signal) -> usize {
    Signal::ALL
        .iter()
        .position(|&s| s == signal)
        .unwrap_or(usize::MAX)
}

/// Light leetspeak folding; ASCII to ASCII, so offsets are unchanged.
fn deleet(folded: &str) -> String {
    // Bytewise: the replaced bytes are ASCII, and ASCII bytes never occur inside a
    // multi-byte UTF-8 sequence, so the result stays valid UTF-8.
    let bytes: Vec<u8> = folded
        .bytes()
        .map(|b| match b {
            b'0' => b'o',
            b'1' => b'i',
            b'3' => b'e',
            b'4' | b'@' => b'a',
            b'5' | b'$' => b's',
            b'7' => b't',
            _ => b,
        })
        .collect();
    String::from_utf8(bytes).expect("ASCII-for-ASCII replacement keeps UTF-8 valid")
}
