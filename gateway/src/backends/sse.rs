//! Incremental parser for `text/event-stream` bodies from upstreams (untrusted input).

/// Largest event accepted; a bigger one is a protocol error rather than unbounded memory.
pub const MAX_EVENT_BYTES: usize = 4 << 20;

/// Splits a byte stream into the `data` payloads of its events.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
}

/// The stream broke the SSE format or the size limit.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// An event exceeded [`MAX_EVENT_BYTES`].
    #[error("event larger than {MAX_EVENT_BYTES} bytes")]
    TooLarge,
    /// An event's data was not UTF-8.
    #[error("event data is not UTF-8")]
    NotUtf8,
}

impl SseParser {
    /// Feeds bytes; returns the data of every event completed by them.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<String>, SseError> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                let mut line = std::mem::take(&mut self.line);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.line_done(&line, &mut out)?;
            } else {
                self.line.push(b);
                if self.line.len() + self.data.len() > MAX_EVENT_BYTES {
                    return Err(SseError::TooLarge);
                }
            }
        }
        Ok(out)
    }

    /// Ends the stream; returns a final event not followed by a blank line.
    pub fn finish(&mut self) -> Result<Vec<String>, SseError> {
        let mut out = Vec::new();
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, &mut out)?;
        }
        self.line_done(&[], &mut out)?;
        Ok(out)
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<String>) -> Result<(), SseError> {
        if line.is_empty() {
            if self.has_data {
                let data = String::from_utf8(std::mem::take(&mut self.data))
                    .map_err(|_| SseError::NotUtf8)?;
                out.push(data);
                self.has_data = false;
            }
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let (field, value) = match line.iter().position(|&c| c == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &[][..]),
        };
        if field == b"data" {
            if self.has_data {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
            self.has_data = true;
            if self.data.len() > MAX_EVENT_BYTES {
                return Err(SseError::TooLarge);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(chunks: &[&[u8]]) -> Result<Vec<String>, SseError> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(p.feed(c)?);
        }
        out.extend(p.finish()?);
        Ok(out)
    }

    #[test]
    fn parses_events_comments_and_crlf() {
        let body = b": keep-alive\n\ndata: {\"a\":1}\n\ndata:x\r\ndata: y\r\n\r\nevent: e\ndata: [DONE]\n\n";
        assert_eq!(
            parse_all(&[body]).unwrap(),
            vec!["{\"a\":1}", "x\ny", "[DONE]"]
        );
    }

    #[test]
    fn trailing_event_without_blank_line() {
        assert_eq!(parse_all(&[b"data: last"]).unwrap(), vec!["last"]);
    }

    #[test]
    fn refuses_oversized_events() {
        let big = vec![b'a'; MAX_EVENT_BYTES + 1];
        assert_eq!(parse_all(&[b"data: ", &big]), Err(SseError::TooLarge));
    }

    proptest! {
        #[test]
        fn chunking_does_not_change_events(body in proptest::collection::vec(any::<u8>(), 0..300), cuts in proptest::collection::vec(0usize..300, 0..6)) {
            let whole = parse_all(&[&body]);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(body.len())).collect();
            cuts.sort();
            let mut parts: Vec<&[u8]> = Vec::new();
            let mut prev = 0;
            for c in cuts { parts.push(&body[prev..c]); prev = c; }
            parts.push(&body[prev..]);
            prop_assert_eq!(whole, parse_all(&parts));
        }

        #[test]
        fn data_lines_round_trip(payloads in proptest::collection::vec("[^\r\n]{0,30}", 1..5)) {
            let mut body = String::new();
            for p in &payloads { body.push_str(&format!("data: {p}\n\n")); }
            prop_assert_eq!(parse_all(&[body.as_bytes()]).unwrap(), payloads);
        }
    }
}
