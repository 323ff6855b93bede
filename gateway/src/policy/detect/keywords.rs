//! Deny-topic / keyword lists: a case- and accent-insensitive, word-boundary-aware phrase
//! matcher reporting matches at original offsets.

use std::collections::HashMap;

use regex::{Regex, RegexBuilder};

use super::fold::Folded;

/// Compiled-size limit for the prefilter (large deny lists).
const SIZE_LIMIT: usize = 256 << 20;

/// Backtracking budget per candidate position (only keywords whose inner words start with
/// punctuation can backtrack at all).
const STEP_BUDGET: usize = 4096;

/// Case- and accent-insensitive, word-boundary-aware phrase matcher over the folded text.
///
/// Keywords and text are both folded with [`Folded`], so `café` matches `CAFE`, `Cafe\u{301}`
/// and `ｃａｆｅ`. An alphanumeric first/last keyword character must not touch another
/// alphanumeric character of the folded text (so `bomb` does not match `bombastic`/`abomb`).
///
/// Candidates are found with one compiled regex (a literal alternation of the distinct first
/// words, searched with aho-corasick/Teddy by the regex crate), then each candidate is
/// verified word by word, which keeps compile time and search time flat for lists of
/// thousands of keywords.
#[derive(Debug, Clone)]
pub struct KeywordMatcher {
    /// Literal alternation of every keyword's first word; `None` without keywords.
    prefilter: Option<Regex>,
    /// Keywords, in input order.
    keywords: Vec<Keyword>,
    /// Keyword indices by the first character of the folded keyword.
    by_first: HashMap<char, Vec<usize>>,
}

/// One folded keyword.
#[derive(Debug, Clone)]
struct Keyword {
    /// Folded words (split on whitespace); non-empty, each non-empty.
    words: Vec<String>,
    /// First character is alphanumeric: needs a non-alphanumeric left neighbour.
    left: bool,
    /// Last character is alphanumeric: needs a non-alphanumeric right neighbour.
    right: bool,
}

impl KeywordMatcher {
    /// Errors if a keyword is empty after folding. Keywords may be multi-word ("credit card
    /// fraud"): any run of whitespace/punctuation in the text matches a single space in the
    /// keyword.
    ///
    /// Precisely: a whitespace run in the keyword matches one or more non-alphanumeric
    /// characters of the folded text (whitespace, punctuation, symbols, controls); other
    /// punctuation in a keyword (`c++`, `e-mail`) is matched literally after folding.
    pub fn new(keywords: &[String]) -> Result<Self, String> {
        let mut parsed = Vec::with_capacity(keywords.len());
        let mut by_first: HashMap<char, Vec<usize>> = HashMap::new();
        let mut firsts: Vec<String> = Vec::new();
        for (i, keyword) in keywords.iter().enumerate() {
            let folded = Folded::new(keyword).text;
            let words: Vec<String> = folded.split_whitespace().map(str::to_owned).collect();
            let (Some(first), Some(last)) = (
                words.first().and_then(|w| w.chars().next()),
                words.last().and_then(|w| w.chars().next_back()),
            ) else {
                return Err(format!("keyword {i} ({keyword:?}) is empty after folding"));
            };
            by_first.entry(first).or_default().push(i);
            firsts.push(regex::escape(&words[0]));
            parsed.push(Keyword {
                words,
                left: first.is_alphanumeric(),
                right: last.is_alphanumeric(),
            });
        }
        firsts.sort_unstable();
        firsts.dedup();
        let prefilter = if firsts.is_empty() {
            None
        } else {
            Some(
                RegexBuilder::new(&firsts.join("|"))
                    .size_limit(SIZE_LIMIT)
                    .build()
                    .map_err(|e| format!("keyword list: {e}"))?,
            )
        };
        Ok(KeywordMatcher {
            prefilter,
            keywords: parsed,
            by_first,
        })
    }

    /// Number of keywords.
    pub fn len(&self) -> usize {
        self.keywords.len()
    }

    /// Whether the matcher has no keywords (and so never matches).
    pub fn is_empty(&self) -> bool {
        self.keywords.is_empty()
    }

    /// Matches in the ORIGINAL text: (start, end, index of the keyword), non-overlapping,
    /// sorted by start, leftmost-longest.
    ///
    /// Ties (two keywords matching the same span) go to the lower keyword index. Offsets are
    /// char boundaries of `text`; a match covers any invisible characters inside it.
    pub fn find(&self, text: &str) -> Vec<(usize, usize, usize)> {
        let Some(prefilter) = &self.prefilter else {
            return Vec::new();
        };
        let folded = Folded::new(text);
        let f = folded.text.as_str();
        let mut out: Vec<(usize, usize, usize)> = Vec::new();
        let mut pos = 0;
        while pos <= f.len() {
            let Some(m) = prefilter.find_at(f, pos) else {
                break;
            };
            let s = m.start();
            match self.longest_at(f, s) {
                Some((e, idx)) => {
                    let (a, b) = folded.original_range(s, e);
                    // Two folded matches can come from one original character (e.g. `½` folds
                    // to `1⁄2`); keep the original ranges non-overlapping.
                    if out.last().is_none_or(|&(_, last_end, _)| a >= last_end) {
                        out.push((a, b, idx));
                    }
                    pos = e.max(s + 1);
                }
                None => pos = s + 1,
            }
            while pos < f.len() && !f.is_char_boundary(pos) {
                pos += 1;
            }
        }
        out
    }

    /// The longest keyword match starting at folded offset `s` whose boundaries hold:
    /// `(end, keyword index)`.
    fn longest_at(&self, f: &str, s: usize) -> Option<(usize, usize)> {
        let first = f[s..].chars().next()?;
        let left_ok = !f[..s]
            .chars()
            .next_back()
            .is_some_and(char::is_alphanumeric);
        let mut best: Option<(usize, usize)> = None;
        for &idx in self.by_first.get(&first)? {
            let kw = &self.keywords[idx];
            if kw.left && !left_ok {
                continue;
            }
            let mut budget = STEP_BUDGET;
            let Some(e) = match_words(f, s, &kw.words, kw.right, &mut budget) else {
                continue;
            };
            if best.is_none_or(|(best_end, _)| e > best_end) {
                best = Some((e, idx));
            }
        }
        best
    }
}

/// Matches `words` at `pos` of the folded text, separated by runs of one or more
/// non-alphanumeric characters; `right`: the end must not touch an alphanumeric character.
/// Tries longer separator runs first (like a greedy regex); gives up when `budget` runs out.
fn match_words(
    f: &str,
    pos: usize,
    words: &[String],
    right: bool,
    budget: &mut usize,
) -> Option<usize> {
    *budget = budget.checked_sub(1)?;
    let (word, rest) = words.split_first()?;
    if !f[pos..].starts_with(word.as_str()) {
        return None;
    }
    let after = pos + word.len();
    if rest.is_empty() {
        let touches = f[after..].chars().next().is_some_and(char::is_alphanumeric);
        return (!(right && touches)).then_some(after);
    }
    let run = &f[after..];
    let run_len = run
        .char_indices()
        .find(|&(_, c)| c.is_alphanumeric())
        .map_or(run.len(), |(i, _)| i);
    if run_len == 0 {
        return None;
    }
    let next_first = rest[0].chars().next()?;
    if next_first.is_alphanumeric() {
        // The next word can only start where the separator run ends.
        return match_words(f, after + run_len, rest, right, budget);
    }
    // The next word starts with punctuation: it may begin inside the run.
    let mut ends: Vec<usize> = run[..run_len]
        .char_indices()
        .skip(1)
        .map(|(i, _)| after + i)
        .collect();
    ends.push(after + run_len);
    ends.into_iter()
        .rev()
        .find_map(|q| match_words(f, q, rest, right, budget))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn matcher(words: &[&str]) -> KeywordMatcher {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        KeywordMatcher::new(&words).unwrap()
    }

    fn found<'a>(m: &KeywordMatcher, text: &'a str) -> Vec<(&'a str, usize)> {
        m.find(text)
            .into_iter()
            .map(|(s, e, i)| (&text[s..e], i))
            .collect()
    }

    #[test]
    fn boundaries_case_accents() {
        let m = matcher(&["bomb"]);
        assert_eq!(found(&m, "Bomb!"), vec![("Bomb", 0)]);
        assert_eq!(found(&m, "BOMB"), vec![("BOMB", 0)]);
        assert_eq!(found(&m, "a bómb here"), vec![("bómb", 0)]);
        assert_eq!(found(&m, "bombastic"), vec![]);
        assert_eq!(found(&m, "abomb"), vec![]);
        assert_eq!(found(&m, "bomb2"), vec![]);
        assert_eq!(found(&m, "жbomb"), vec![]);
        assert_eq!(found(&m, "bomb_making"), vec![("bomb", 0)]);
        assert_eq!(found(&m, "(bomb)"), vec![("bomb", 0)]);
        assert_eq!(found(&m, "b\u{200B}omb"), vec![("b\u{200B}omb", 0)]);
        assert_eq!(found(&m, "ＢＯＭＢ"), vec![("ＢＯＭＢ", 0)]);
        assert_eq!(found(&m, "bоmb"), vec![("bоmb", 0)]); // Cyrillic о

        let m = matcher(&["café"]);
        assert_eq!(found(&m, "CAFE"), vec![("CAFE", 0)]);
        assert_eq!(found(&m, "Café au lait"), vec![("Café", 0)]);
        assert_eq!(found(&m, "cafeteria"), vec![]);

        let m = matcher(&["Straße"]);
        assert_eq!(found(&m, "STRASSE"), vec![("STRASSE", 0)]);
        assert_eq!(found(&m, "die straße"), vec![("straße", 0)]);
    }

    #[test]
    fn multi_word() {
        let m = matcher(&["credit card fraud"]);
        let text = "We saw Credit-Card\n  FRAUD, and credit card.fraud; not creditcard fraud.";
        assert_eq!(
            found(&m, text),
            vec![("Credit-Card\n  FRAUD", 0), ("credit card.fraud", 0)]
        );
        let m = matcher(&["  credit\tcard  "]);
        assert_eq!(found(&m, "credit ... card"), vec![("credit ... card", 0)]);
        assert_eq!(found(&m, "credit cards"), vec![]);
    }

    #[test]
    fn punctuation_keywords() {
        let m = matcher(&["c++", "e-mail"]);
        assert_eq!(
            found(&m, "I write C++ and send E-mail"),
            vec![("C++", 0), ("E-mail", 1)]
        );
        // The `+` end is not alphanumeric, so no right boundary is required.
        assert_eq!(found(&m, "c++x"), vec![("c++", 0)]);
        assert_eq!(found(&m, "e mail"), vec![]);
    }

    #[test]
    fn words_starting_with_punctuation() {
        let m = matcher(&["a -b"]);
        assert_eq!(found(&m, "a -b"), vec![("a -b", 0)]);
        assert_eq!(found(&m, "A --b"), vec![("A --b", 0)]);
        assert_eq!(found(&m, "a b"), vec![]);
        // Pathological backtracking is bounded.
        let m = matcher(&["x - - - - - - y"]);
        let text = format!("x {}", "-".repeat(20_000));
        let t = std::time::Instant::now();
        assert_eq!(m.find(&text), vec![]);
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(found(&m, "x - - - - - - y"), vec![("x - - - - - - y", 0)]);
    }

    #[test]
    fn leftmost_longest_non_overlapping() {
        let m = matcher(&["card", "credit card", "credit card fraud", "fraud"]);
        assert_eq!(
            found(&m, "credit card fraud and card fraud"),
            vec![("credit card fraud", 2), ("card", 0), ("fraud", 3)]
        );
        // The longest candidate fails its boundary: fall back to a shorter one.
        assert_eq!(found(&m, "credit card frauds"), vec![("credit card", 1)]);
        let m = matcher(&["bomb", "bomb"]);
        assert_eq!(found(&m, "bomb bomb"), vec![("bomb", 0), ("bomb", 0)]);
        let m = matcher(&["a b", "b c"]);
        assert_eq!(found(&m, "a b c"), vec![("a b", 0)]);
        let m = matcher(&["1", "2"]);
        // `½` folds to `1⁄2`; both keywords map to the same original char: keep one.
        assert_eq!(found(&m, "½"), vec![("½", 0)]);
    }

    #[test]
    fn sorted_offsets() {
        let m = matcher(&["zeta", "alpha"]);
        let got = m.find("alpha zeta alpha");
        assert_eq!(got, vec![(0, 5, 1), (6, 10, 0), (11, 16, 1)]);
    }

    #[test]
    fn empty_keyword_errors() {
        for bad in ["", "   ", "\u{200B}", "\u{301}"] {
            let err = KeywordMatcher::new(&["ok".to_string(), bad.to_string()]).unwrap_err();
            assert!(err.contains("keyword 1"), "{err}");
        }
        let m = KeywordMatcher::new(&[]).unwrap();
        assert!(m.is_empty());
        assert_eq!(m.find("anything"), vec![]);
        assert_eq!(matcher(&["a", "b"]).len(), 2);
    }

    #[test]
    fn large_list_compiles() {
        let words: Vec<String> = (0..5000)
            .map(|i| format!("forbidden{i} topic number {i} extra words"))
            .collect();
        let m = KeywordMatcher::new(&words).unwrap();
        let got = m.find("about Forbidden42-Topic number 42 extra words!");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].2, 42);
        let text = "forbidden7 topic number 7 extra words. ".repeat(5000);
        let t = std::time::Instant::now();
        assert_eq!(m.find(&text).len(), 5000);
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            t.elapsed()
        );
    }

    fn check(m: &KeywordMatcher, text: &str) {
        let got = m.find(text);
        let mut last_end = 0;
        for &(s, e, i) in &got {
            assert!(s < e && e <= text.len());
            assert!(text.is_char_boundary(s) && text.is_char_boundary(e));
            assert!(s >= last_end, "overlap or unsorted: {got:?}");
            assert!(i < m.len());
            last_end = e;
        }
    }

    proptest! {
        #[test]
        fn prop_never_panics(text in any::<String>()) {
            let m = matcher(&["bomb", "credit card", "café", "ß", "a", "c++"]);
            check(&m, &text);
        }

        #[test]
        fn prop_interesting(
            text in "[abcmoóßsæ +\\-\n\u{200B}\u{301}½ＢБ]{0,40}",
            kws in proptest::collection::vec("[abmoßs +\\-]{1,6}", 1..5),
        ) {
            if let Ok(m) = KeywordMatcher::new(&kws) {
                check(&m, &text);
            }
        }
    }
}
