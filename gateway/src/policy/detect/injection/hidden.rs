//! Hidden-content signals found on the original text: zero-width, bidi and tag-character runs,
//! and words mixing Latin letters with Cyrillic/Greek look-alikes.

use super::super::fold::latin_lookalike;
use super::{Raw, Signal};

/// A predicate over characters.
type CharClass = fn(char) -> bool;

fn is_zero_width(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200D}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{180E}'
    )
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn is_tag(c: char) -> bool {
    matches!(c, '\u{E0000}'..='\u{E007F}')
}

/// Zero-width, bidi and tag-character runs.
pub(super) fn hidden_chars(text: &str, out: &mut Vec<Raw>) {
    // Every hidden character is outside ASCII; `is_ascii` is a fast word-at-a-time check.
    if text.is_ascii() {
        return;
    }
    let classes: [(CharClass, Signal); 3] = [
        (is_zero_width, Signal::ZeroWidth),
        (is_bidi_control, Signal::Bidi),
        (is_tag, Signal::TagChars),
    ];
    for (class, signal) in classes {
        let mut run_start: Option<usize> = None;
        let mut iter = text.char_indices().peekable();
        while let Some((i, c)) = iter.next() {
            if class(c) {
                run_start.get_or_insert(i);
            }
            let run_ends = class(c) && !iter.peek().is_some_and(|&(_, n)| class(n));
            if run_ends {
                let start = run_start.take().unwrap_or(i);
                let end = i + c.len_utf8();
                if !benign_run(text, start, end, signal) {
                    out.push((start, end, signal, true));
                }
            }
        }
    }
}

/// Runs of hidden characters that occur in ordinary text.
fn benign_run(text: &str, start: usize, end: usize, signal: Signal) -> bool {
    let run = &text[start..end];
    let prev = text[..start].chars().next_back();
    let next = text[end..].chars().next();
    match signal {
        Signal::ZeroWidth => {
            let mut chars = run.chars();
            let (Some(only), None) = (chars.next(), chars.next()) else {
                return false;
            };
            // A byte-order mark at the very start of the text.
            if only == '\u{FEFF}' && start == 0 {
                return true;
            }
            // A single ZWJ/ZWNJ between non-ASCII, non-space characters: emoji ZWJ sequences
            // (👩‍💻, ❤️‍🔥) and joiners in Indic/Persian/Arabic script.
            let joinable = |c: Option<char>| c.is_some_and(|c| !c.is_ascii() && !c.is_whitespace());
            matches!(only, '\u{200C}' | '\u{200D}') && joinable(prev) && joinable(next)
        }
        Signal::TagChars => {
            // Emoji subdivision flags: 🏴 + tag letters/digits + CANCEL TAG (🏴󠁧󠁢󠁥󠁮󠁧󠁿).
            let body: Vec<char> = run.chars().collect();
            prev == Some('\u{1F3F4}')
                && body.len() >= 2
                && body.len() <= 8
                && body.last() == Some(&'\u{E007F}')
                && body[..body.len() - 1]
                    .iter()
                    .all(|&c| matches!(c, '\u{E0030}'..='\u{E0039}' | '\u{E0061}'..='\u{E007A}'))
        }
        _ => false,
    }
}

fn is_latin_letter(c: char) -> bool {
    c.is_ascii_alphabetic()
        || (c.is_alphabetic()
            && matches!(c, '\u{00C0}'..='\u{024F}' | '\u{1E00}'..='\u{1EFF}' | '\u{FF21}'..='\u{FF3A}' | '\u{FF41}'..='\u{FF5A}'))
}

fn is_cyrillic_or_greek(c: char) -> bool {
    matches!(
        c,
        '\u{0370}'..='\u{052F}' | '\u{1C80}'..='\u{1C8F}' | '\u{1F00}'..='\u{1FFF}' | '\u{2DE0}'..='\u{2DFF}' | '\u{A640}'..='\u{A69F}'
    )
}

/// Words mixing Latin letters with Cyrillic/Greek Latin look-alikes.
pub(super) fn homoglyph_words(text: &str, out: &mut Vec<Raw>) {
    // Mixed scripts need a Cyrillic or Greek letter.
    if text.is_ascii() {
        return;
    }
    let is_word = |c: char| c.is_alphanumeric() || matches!(c, '\u{0300}'..='\u{036F}');
    let mut start: Option<usize> = None;
    let mut latin = false;
    let mut lookalike = false;
    let mut iter = text.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        if !is_word(c) {
            continue;
        }
        if start.is_none() {
            start = Some(i);
            latin = false;
            lookalike = false;
        }
        latin |= is_latin_letter(c);
        lookalike |= is_cyrillic_or_greek(c) && latin_lookalike(c).is_some();
        if !iter.peek().is_some_and(|&(_, n)| is_word(n)) {
            let s = start.take().unwrap_or(i);
            if latin && lookalike {
                out.push((s, i + c.len_utf8(), Signal::Homoglyph, true));
            }
        }
    }
}
