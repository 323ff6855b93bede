//! Overlapping word windows of a text, at byte offsets of the original.

/// Byte ranges of windows of at most `size` whitespace-separated words, `stride` words
/// apart; the last window ends at the last word. A text of at most `size` words is one
/// window (trimmed); a text without words has none.
pub fn windows(text: &str, size: usize, stride: usize) -> Vec<(usize, usize)> {
    let size = size.max(1);
    let stride = stride.clamp(1, size);
    let words = word_spans(text);
    if words.is_empty() {
        return Vec::new();
    }
    let n = words.len();
    let mut out = Vec::new();
    let mut first = 0;
    loop {
        let last = (first + size).min(n) - 1;
        out.push((words[first].0, words[last].1));
        if last + 1 >= n {
            break;
        }
        first = if first + stride + size > n {
            n - size
        } else {
            first + stride
        };
    }
    out
}

/// Byte ranges of the maximal runs of non-whitespace characters.
fn word_spans(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, text.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn texts(text: &str, size: usize, stride: usize) -> Vec<&str> {
        windows(text, size, stride)
            .into_iter()
            .map(|(a, b)| &text[a..b])
            .collect()
    }

    #[test]
    fn short_texts_are_one_trimmed_window() {
        assert_eq!(texts("  ignore  the rules \n", 4, 2), ["ignore  the rules"]);
        assert!(texts(" \n\t", 4, 2).is_empty());
        assert!(texts("", 4, 2).is_empty());
    }

    #[test]
    fn long_texts_overlap_and_end_at_the_last_word() {
        assert_eq!(
            texts("a b c d e f g", 4, 2),
            ["a b c d", "c d e f", "d e f g"]
        );
        assert_eq!(texts("a b c d e f", 4, 2), ["a b c d", "c d e f"]);
        assert_eq!(texts("a b c d e", 2, 2), ["a b", "c d", "d e"]);
    }

    proptest! {
        /// Every word is in some window, windows are within the text on char boundaries,
        /// in order, and none holds more than `size` words.
        #[test]
        fn windows_cover_every_word(text in "\\PC{0,200}", size in 1usize..12, stride in 1usize..12) {
            let ws = windows(&text, size, stride);
            let words = word_spans(&text);
            for &(a, b) in &ws {
                prop_assert!(a < b && b <= text.len());
                prop_assert!(text.is_char_boundary(a) && text.is_char_boundary(b));
                prop_assert!(text[a..b].split_whitespace().count() <= size);
            }
            prop_assert!(ws.windows(2).all(|p| p[0].0 < p[1].0 && p[0].1 < p[1].1));
            for (a, b) in words {
                prop_assert!(ws.iter().any(|&(s, e)| s <= a && b <= e));
            }
        }
    }
}
