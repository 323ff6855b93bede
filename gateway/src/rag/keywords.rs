//! Keyword vectors for hybrid retrieval: our own tokenizer for the identifiers SOC text is
//! full of (CVE ids, hashes, hostnames, IPs, event ids, rule names), words and numbers, and
//! BM25 term weights as a sparse vector per chunk.
//!
//! A chunk's vector holds BM25's term-frequency part; the store applies the inverse
//! document frequency at query time from its own statistics of the collection (Qdrant's
//! `idf` modifier, in both stores), so IDF stays right as documents come and go. A query's
//! vector holds 1 per distinct term, so a chunk scores the sum of BM25 weights of the
//! query terms it contains.

use std::collections::BTreeMap;

/// BM25's term-frequency saturation.
const K1: f32 = 1.2;
/// BM25's length normalisation.
const B: f32 = 0.75;
/// Average terms per chunk that length normalisation is relative to: chunks are at most
/// 200 model tokens (`rag.chunk`), which our tokenizer turns into about this many terms.
const AVERAGE_TERMS: f32 = 120.0;
/// Terms longer than this are cut (a pasted blob would otherwise make one huge term).
const MAX_TERM_BYTES: usize = 128;

/// Words too common to tell chunks apart; IDF would weigh them near zero anyway, and
/// leaving them out keeps vectors short.
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how",
    "if", "in", "into", "is", "it", "its", "of", "on", "or", "our", "should", "so", "that", "the",
    "their", "then", "there", "these", "this", "to", "was", "we", "were", "what", "when", "where",
    "which", "who", "why", "will", "with", "you", "your",
];

/// A sparse vector: distinct term ids, ascending, and one weight each.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SparseVector {
    /// Term ids ([`term_id`]), ascending and distinct.
    pub indices: Vec<u32>,
    /// Weights, one per index.
    pub values: Vec<f32>,
}

impl SparseVector {
    /// No terms: such a query matches nothing by keyword.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    fn from_counts(counts: BTreeMap<u32, f32>) -> Self {
        let (indices, values) = counts.into_iter().unzip();
        Self { indices, values }
    }
}

/// Characters inside an identifier (`CVE-2024-3094`, `10.0.0.5`, `evil.example.com`,
/// `T1059.001`, `C:\Windows\System32`, `proc_creation_win`): they do not end a term.
fn joins(c: char) -> bool {
    matches!(c, '-' | '_' | '.' | ':' | '/' | '\\' | '@')
}

/// The terms of `text`, lowercased, in order, repeats kept. An identifier gives itself
/// whole, its pieces between path separators (`/`, `\`, `:`, `@`), and its alphanumeric
/// parts, so that `CVE-2024-3094` is found by itself and `evil.example.com` inside a URL.
pub fn terms(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for raw in text.split(|c: char| !(c.is_alphanumeric() || joins(c))) {
        let token = raw.trim_matches(joins);
        if token.is_empty() {
            continue;
        }
        let token = token.to_lowercase();
        let pieces = token.split(['/', '\\', ':', '@']);
        let parts = token.split(|c: char| !c.is_alphanumeric());
        let mut emitted: Vec<&str> = Vec::new();
        for term in std::iter::once(token.as_str()).chain(pieces).chain(parts) {
            let term = term.trim_matches(joins);
            if term.is_empty() || emitted.contains(&term) || STOPWORDS.contains(&term) {
                continue;
            }
            emitted.push(term);
            out.push(cut(term).to_string());
        }
    }
    out
}

/// At most [`MAX_TERM_BYTES`], on a character boundary.
fn cut(term: &str) -> &str {
    if term.len() <= MAX_TERM_BYTES {
        return term;
    }
    let mut end = MAX_TERM_BYTES;
    while !term.is_char_boundary(end) {
        end -= 1;
    }
    &term[..end]
}

/// A term's index in the sparse vector: FNV-1a of its bytes. Stored in collections, so it
/// must never change; two terms sharing an id (about one pair in 10^4 among 10^5 distinct
/// terms) only blur each other's weight.
pub fn term_id(term: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in term.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// A chunk's vector: BM25 term-frequency weights of its terms.
pub fn document(text: &str) -> SparseVector {
    let terms = terms(text);
    let length = terms.len() as f32;
    let mut counts: BTreeMap<u32, f32> = BTreeMap::new();
    for term in &terms {
        *counts.entry(term_id(term)).or_default() += 1.0;
    }
    let norm = K1 * (1.0 - B + B * length / AVERAGE_TERMS);
    for tf in counts.values_mut() {
        *tf = *tf * (K1 + 1.0) / (*tf + norm);
    }
    SparseVector::from_counts(counts)
}

/// Query weight of an identifier term ([`is_identifier`]) against 1 for other terms: a
/// question about `event ID 1102` is about 1102 first, and only then about events.
const IDENTIFIER_WEIGHT: f32 = 3.0;

/// A query's keyword side.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// One weight per distinct term: 1, or [`IDENTIFIER_WEIGHT`] for identifiers (the store
    /// multiplies in IDF).
    pub vector: SparseVector,
    /// Whether the query names an identifier ([`is_identifier`]): then it is a lookup, and
    /// the keyword side decides the ranking.
    pub identifiers: bool,
}

/// A query's keyword side.
pub fn query(text: &str) -> Query {
    let terms = terms(text);
    let weight = |t: &str| {
        if is_identifier(t) {
            IDENTIFIER_WEIGHT
        } else {
            1.0
        }
    };
    let counts = terms.iter().map(|t| (term_id(t), weight(t))).collect();
    Query {
        vector: SparseVector::from_counts(counts),
        identifiers: terms.iter().any(|t| is_identifier(t)),
    }
}

/// A term that names one thing rather than saying something: it holds a digit (CVE ids,
/// hashes, IPs, event ids, ticket numbers, versions) or an underscore (rule names).
pub fn is_identifier(term: &str) -> bool {
    term.bytes().any(|b| b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn identifiers_stay_whole_and_split() {
        let t = terms("Patch CVE-2024-3094 (xz) on build-07.corp.example.com now.");
        for want in [
            "patch",
            "cve-2024-3094",
            "cve",
            "2024",
            "3094",
            "xz",
            "build-07.corp.example.com",
            "build",
            "07",
            "corp",
            "example",
            "com",
            "now",
        ] {
            assert!(t.contains(&want.to_string()), "{want} in {t:?}");
        }
        assert!(!t.iter().any(|x| x.ends_with('.')), "{t:?}");
    }

    #[test]
    fn urls_paths_and_hashes() {
        let t = terms(r"GET https://evil.example.com/a.php from C:\Windows\Temp\x.exe");
        for want in [
            "https://evil.example.com/a.php",
            "evil.example.com",
            "a.php",
            r"c:\windows\temp\x.exe",
            "x.exe",
            "windows",
        ] {
            assert!(t.contains(&want.to_string()), "{want} in {t:?}");
        }
        let sha = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
        assert_eq!(terms(sha), vec![sha.to_lowercase()]);
        assert_eq!(terms("EventID=4624"), vec!["eventid", "4624"]);
    }

    #[test]
    fn stopwords_and_case() {
        assert_eq!(terms("What is THE Host?"), vec!["host"]);
    }

    #[test]
    fn bm25_weights_saturate_and_normalise() {
        let once = document("alpha beta");
        let thrice = document("alpha alpha alpha beta");
        let id = term_id("alpha");
        let w = |v: &SparseVector| v.values[v.indices.iter().position(|&i| i == id).unwrap()];
        assert!(w(&thrice) > w(&once));
        assert!(w(&thrice) < K1 + 1.0, "saturates below k1 + 1");
        let long = format!("alpha {}", "filler ".repeat(300));
        assert!(
            w(&document(&long)) < w(&once),
            "longer chunks weigh a term less"
        );
        let q = query("alpha alpha beta");
        assert_eq!(q.vector.values, vec![1.0, 1.0]);
        assert!(!q.identifiers);
        let event = query("what is event 4625?");
        assert!(event.identifiers);
        let id = term_id("4625");
        let at = event.vector.indices.iter().position(|&i| i == id).unwrap();
        assert_eq!(event.vector.values[at], IDENTIFIER_WEIGHT);
        assert!(query("tune proc_creation_win_susp_certutil").identifiers);
    }

    #[test]
    fn term_ids_are_stable() {
        // Stored in collections: a change here silently breaks every existing index.
        assert_eq!(term_id(""), 0x811c_9dc5);
        assert_eq!(term_id("a"), 0xe40c_292c);
        assert_eq!(term_id("cve-2024-3094"), term_id("cve-2024-3094"));
    }

    proptest! {
        #[test]
        fn any_text_gives_a_valid_vector(text in "\\PC{0,400}") {
            let v = document(&text);
            prop_assert_eq!(v.indices.len(), v.values.len());
            prop_assert!(v.indices.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(v.values.iter().all(|x| x.is_finite() && *x > 0.0));
            for t in terms(&text) {
                prop_assert!(!t.is_empty() && t.len() <= MAX_TERM_BYTES);
                prop_assert!(!t.starts_with(joins) && !t.ends_with(joins));
            }
        }
    }
}
