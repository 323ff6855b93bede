//! Chunking for retrieval: documents become passages that fit the embedding model, cut at
//! the document's own seams. Headings start a new chunk (and name it); paragraphs are packed
//! whole while they fit; a paragraph too long for one chunk is cut between sentences, and a
//! sentence too long between words. Consecutive chunks of one section share an overlap of
//! whole sentences, so a fact that straddles a cut is found from either side.

pub use crate::config::ChunkSize;

/// A passage ready to embed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Position in the document, from 0.
    pub index: u32,
    /// The heading path, `Guide › Install`, when the document has headings.
    pub title: Option<String>,
    /// The passage.
    pub text: String,
    /// Its tokens by the counter it was cut with.
    pub tokens: usize,
}

impl Chunk {
    /// What is embedded: the heading path, then the passage.
    pub fn embed_text(&self) -> String {
        match &self.title {
            Some(t) => format!("{t}\n\n{}", self.text),
            None => self.text.clone(),
        }
    }
}

/// A section: its heading path and paragraphs.
#[derive(Debug, Default)]
struct Section {
    title: Option<String>,
    paragraphs: Vec<String>,
}

/// Markdown into sections; with `headings` off (plain text) a `#` line is text.
fn sections(markdown: &str, headings: bool) -> Vec<Section> {
    let mut out = vec![Section::default()];
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut para = String::new();
    let mut in_fence = false;
    let flush = |para: &mut String, out: &mut Vec<Section>| {
        let p = para.trim();
        if !p.is_empty() {
            out.last_mut()
                .expect("one section")
                .paragraphs
                .push(p.to_string());
        }
        para.clear();
    };
    for line in markdown.lines() {
        let t = line.trim_start();
        if t.starts_with("```") || t.starts_with("~~~") {
            in_fence = !in_fence;
        }
        let level = t.chars().take_while(|&c| c == '#').count();
        let heading = headings
            && !in_fence
            && (1..=6).contains(&level)
            && t[level..].starts_with(' ')
            && !t[level..].trim().is_empty();
        if heading {
            flush(&mut para, &mut out);
            path.retain(|(l, _)| *l < level);
            path.push((
                level,
                t[level..].trim().trim_end_matches('#').trim().to_string(),
            ));
            let title = path
                .iter()
                .map(|(_, h)| h.as_str())
                .collect::<Vec<_>>()
                .join(" › ");
            out.push(Section {
                title: Some(title),
                paragraphs: Vec::new(),
            });
        } else if t.is_empty() && !in_fence {
            flush(&mut para, &mut out);
        } else {
            if !para.is_empty() {
                para.push('\n');
            }
            para.push_str(line.trim_end());
        }
    }
    flush(&mut para, &mut out);
    // A heading with no text of its own survives in its subsections' titles; one without
    // subsections becomes its own text, so no word of the document is lost.
    let next_titles: Vec<Option<String>> = out
        .iter()
        .skip(1)
        .map(|s| s.title.clone())
        .chain(std::iter::once(None))
        .collect();
    for (s, next) in out.iter_mut().zip(next_titles) {
        if !s.paragraphs.is_empty() {
            continue;
        }
        let Some(title) = &s.title else { continue };
        let parent = next.is_some_and(|n| n.starts_with(&format!("{title} › ")));
        if !parent {
            let last = title.rsplit(" › ").next().unwrap_or(title).to_string();
            s.paragraphs.push(last);
        }
    }
    out.retain(|s| !s.paragraphs.is_empty());
    out
}

/// Sentences of a paragraph, each with its trailing space kept off.
fn sentences(p: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = p.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let end_mark = matches!(b, b'.' | b'!' | b'?' | b'\n');
        let next_is_space = bytes.get(i + 1).is_none_or(|n| n.is_ascii_whitespace());
        if end_mark && next_is_space {
            let s = p[start..=i].trim();
            if !s.is_empty() {
                out.push(s);
            }
            start = i + 1;
        }
    }
    let s = p[start..].trim();
    if !s.is_empty() {
        out.push(s);
    }
    out
}

/// Cuts `text` (one sentence) into pieces of at most `max` tokens, between words.
fn by_words(text: &str, max: usize, count: &dyn Fn(&str) -> usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for w in text.split_whitespace() {
        let candidate = if cur.is_empty() {
            w.to_string()
        } else {
            format!("{cur} {w}")
        };
        if count(&candidate) > max && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
            cur = w.to_string();
        } else {
            cur = candidate;
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Splits `markdown` into chunks of at most `size.max_tokens` tokens by `count` (the
/// embedding tokenizer's count, without special tokens).
pub fn chunk(markdown: &str, size: ChunkSize, count: &dyn Fn(&str) -> usize) -> Vec<Chunk> {
    chunk_sections(sections(markdown, true), size, count)
}

/// Like [`chunk`] for plain text: no headings, paragraphs and sentences only.
pub fn chunk_plain(text: &str, size: ChunkSize, count: &dyn Fn(&str) -> usize) -> Vec<Chunk> {
    chunk_sections(sections(text, false), size, count)
}

fn chunk_sections(
    sections: Vec<Section>,
    size: ChunkSize,
    count: &dyn Fn(&str) -> usize,
) -> Vec<Chunk> {
    let max = size.max_tokens.max(2);
    let overlap = size.overlap_tokens.min(max / 2);
    let mut chunks: Vec<Chunk> = Vec::new();
    for section in sections {
        let title_tokens = section.title.as_deref().map(count).unwrap_or(0);
        // A title longer than half the budget would crowd the text out: it is cut.
        let room = max.saturating_sub(title_tokens.min(max / 2)).max(1);
        // Units: whole paragraphs that fit, else sentences, else word runs.
        let mut units: Vec<(String, bool)> = Vec::new(); // (text, starts a paragraph)
        for p in &section.paragraphs {
            if count(p) <= room {
                units.push((p.clone(), true));
                continue;
            }
            let mut first = true;
            for s in sentences(p) {
                let pieces = if count(s) <= room {
                    vec![s.to_string()]
                } else {
                    by_words(s, room, count)
                };
                for piece in pieces {
                    units.push((piece, first));
                    first = false;
                }
            }
        }
        let mut cur: Vec<(String, bool)> = Vec::new();
        let joined = |parts: &[(String, bool)]| -> String {
            let mut s = String::new();
            for (i, (t, para)) in parts.iter().enumerate() {
                if i > 0 {
                    s.push_str(if *para { "\n\n" } else { " " });
                }
                s.push_str(t);
            }
            s
        };
        let emit = |cur: &[(String, bool)], chunks: &mut Vec<Chunk>| {
            let text = joined(cur);
            let tokens = count(&text);
            chunks.push(Chunk {
                index: chunks.len() as u32,
                title: section.title.clone(),
                text,
                tokens,
            });
        };
        let mut fresh = 0; // units added since the last emit (overlap excluded)
        for unit in units {
            let mut trial = cur.clone();
            trial.push(unit.clone());
            if count(&joined(&trial)) > room && fresh > 0 {
                emit(&cur, &mut chunks);
                // Carry whole trailing units, up to the overlap, into the next chunk.
                let mut carried: Vec<(String, bool)> = Vec::new();
                for u in cur.iter().rev() {
                    let mut t = vec![u.clone()];
                    t.extend(carried.iter().cloned());
                    if count(&joined(&t)) > overlap {
                        break;
                    }
                    carried = t;
                }
                cur = carried;
                cur.push(unit);
                if count(&joined(&cur)) > room {
                    cur = vec![cur.pop().expect("just pushed")];
                }
                fresh = 1;
            } else {
                cur = trial;
                fresh += 1;
            }
        }
        if fresh > 0 {
            emit(&cur, &mut chunks);
        }
    }
    chunks
}

/// Plain text of an HTML document, as Markdown-ish text: headings become `#` lines and
/// block elements paragraph breaks; scripts, styles and comments are dropped; the common
/// entities are decoded.
pub fn html_to_markdown(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    let mut skip_until: Option<&'static str> = None;
    while let Some(lt) = rest.find('<') {
        if let Some(until) = skip_until {
            // Script and style bodies may hold `<`: look for the closing tag itself.
            let close = format!("</{until}");
            match find_ascii_ci(rest, &close) {
                Some(i) => {
                    let after = &rest[i..];
                    rest = after.find('>').map_or("", |g| &after[g + 1..]);
                    skip_until = None;
                    continue;
                }
                None => {
                    rest = "";
                    break;
                }
            }
        }
        out.push_str(&decode_entities(&rest[..lt]));
        rest = &rest[lt..];
        if rest.starts_with("<!--") {
            rest = rest.find("-->").map_or("", |e| &rest[e + 3..]);
            continue;
        }
        let Some(gt) = rest.find('>') else {
            rest = "";
            break;
        };
        let tag = rest[1..gt].trim().to_ascii_lowercase();
        rest = &rest[gt + 1..];
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        match name.as_str() {
            "script" if !closing => skip_until = Some("script"),
            "style" if !closing => skip_until = Some("style"),
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                if closing {
                    out.push_str("\n\n");
                } else {
                    let level = name[1..].parse::<usize>().unwrap_or(1);
                    out.push_str("\n\n");
                    out.push_str(&"#".repeat(level));
                    out.push(' ');
                }
            }
            "p" | "div" | "section" | "article" | "ul" | "ol" | "table" | "tr" | "pre"
            | "blockquote" | "header" | "footer" | "main" => out.push_str("\n\n"),
            "br" => out.push('\n'),
            "li" if !closing => out.push_str("\n- "),
            "td" | "th" => out.push(' '),
            _ => {}
        }
    }
    if skip_until.is_none() {
        out.push_str(&decode_entities(rest));
    }
    // Headings' text arrives on the same line as their `#`; collapse stray blank runs.
    let mut cleaned = String::with_capacity(out.len());
    let mut blank = 0;
    for line in out.lines() {
        let l = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if l.is_empty() {
            blank += 1;
            if blank == 1 {
                cleaned.push('\n');
            }
        } else {
            blank = 0;
            cleaned.push_str(&l);
            cleaned.push('\n');
        }
    }
    cleaned.trim().to_string()
}

/// Byte offset of `needle` (ASCII) in `hay`, ignoring ASCII case.
fn find_ascii_ci(hay: &str, needle: &str) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    (0..h.len().saturating_sub(n.len()) + 1)
        .find(|&i| h.len() >= i + n.len() && h[i..i + n.len()].eq_ignore_ascii_case(n))
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let semi = rest
            .char_indices()
            .take(12)
            .find(|&(_, c)| c == ';')
            .map(|(i, _)| i);
        let Some(semi) = semi else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" | "#39" => Some('\''),
            "nbsp" => Some(' '),
            e if e.starts_with("#x") || e.starts_with("#X") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests;
