//! What comes right before a match, for detectors whose decision depends on the words in
//! front of a candidate (`password=` before a digest, `version` before a dotted quad,
//! `phone:` before a number).

/// The text of at most `bytes` bytes before `start`, starting on a char boundary.
pub fn before(text: &str, start: usize, bytes: usize) -> &str {
    let mut from = start.saturating_sub(bytes);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    &text[from..start]
}

/// The text of at most `bytes` bytes before `start`, from the start of its line.
pub fn line_before(text: &str, start: usize, bytes: usize) -> &str {
    let before = before(text, start, bytes);
    before.rsplit('\n').next().unwrap_or(before)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_on_the_line_and_on_char_boundaries() {
        assert_eq!(line_before("ab\ncd: x", 7, 40), "cd: ");
        assert_eq!(line_before("ééé x", 7, 3), "é ");
        assert_eq!(line_before("x", 0, 10), "");
        assert_eq!(before("ab\ncd: x", 7, 40), "ab\ncd: ");
    }
}
