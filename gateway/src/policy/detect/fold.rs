//! Text folding for guardrail matching.
//!
//! [`Folded`] builds a normalized view of a text (lowercase, accents stripped, Cyrillic/Greek
//! homoglyphs mapped to Latin, compatibility forms such as fullwidth letters and ligatures
//! expanded, invisible characters removed) together with a map from folded byte offsets back
//! to the original text, so that matches found in the folded view can be reported at original
//! offsets.
//!
//! Folding is strictly per character: each original character produces zero or more folded
//! characters independently of its neighbours. That keeps the offset map exact and makes
//! `fold(a + b) == fold(a) + fold(b)` hold for any split at a character boundary.

use unicode_normalization::char::decompose_compatible;

/// `text` folded for matching, with a map back to the original offsets.
///
/// Folding, per original character:
/// - invisible characters are removed: zero-width (U+200B–200D, U+2060–2064, U+FEFF), soft
///   hyphen U+00AD, bidi controls (U+200E/200F, U+202A–202E, U+2066–2069, U+061C), tag
///   characters (U+E0000–E007F), variation selectors and a few other fillers;
/// - NFKD compatibility decomposition (so fullwidth ASCII U+FF01–FF5E, ligatures such as `ﬁ`,
///   mathematical alphanumerics, superscripts and no-break spaces become their plain forms);
/// - generic combining diacritics (U+0300–036F, U+1AB0–1AFF, U+1DC0–1DFF, U+20D0–20FF,
///   U+FE20–FE2F) are dropped, i.e. accents are stripped; script-specific marks (Indic vowel
///   signs, Arabic harakat, ...) are kept so those scripts do not collapse;
/// - common Cyrillic/Greek homoglyphs (both cases) map to their Latin look-alikes
///   (see [`latin_lookalike`]);
/// - lowercase; `ß`→`ss`, `æ`→`ae`, `œ`→`oe`, `ø`→`o`, `ł`→`l`, `đ`/`ð`→`d`, `þ`→`th`,
///   `ı`→`i`, final sigma `ς`→`σ`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folded {
    /// The folded text.
    pub text: String,
    /// Offset map, sorted by `f_start`; every folded byte belongs to exactly one segment.
    segments: Vec<Segment>,
}

/// A piece of the offset map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    /// Start of the segment in the folded text.
    f_start: usize,
    /// Start of the segment in the original text.
    o_start: usize,
    /// Byte length of the segment in the original text.
    o_len: usize,
    /// `true`: a run of one-byte original characters each folded to one byte (offsets shift
    /// linearly). `false`: the folded output of exactly one original character.
    linear: bool,
}

impl Folded {
    /// Folds `original` (see the type docs).
    pub fn new(original: &str) -> Self {
        if original.is_ascii() {
            // The common case, and what the loop below produces for it: one linear segment.
            let segments = if original.is_empty() {
                Vec::new()
            } else {
                vec![Segment {
                    f_start: 0,
                    o_start: 0,
                    o_len: original.len(),
                    linear: true,
                }]
            };
            return Folded {
                text: original.to_ascii_lowercase(),
                segments,
            };
        }
        Self::fold_each(original)
    }

    /// The general case, one character at a time.
    fn fold_each(original: &str) -> Self {
        let mut text = String::with_capacity(original.len());
        let mut segments: Vec<Segment> = Vec::new();
        for (i, c) in original.char_indices() {
            if c.is_ascii() {
                let f = text.len();
                text.push(c.to_ascii_lowercase());
                match segments.last_mut() {
                    Some(s) if s.linear && s.f_start + s.o_len == f && s.o_start + s.o_len == i => {
                        s.o_len += 1;
                    }
                    _ => segments.push(Segment {
                        f_start: f,
                        o_start: i,
                        o_len: 1,
                        linear: true,
                    }),
                }
            } else {
                let before = text.len();
                fold_char(c, &mut text);
                if text.len() > before {
                    segments.push(Segment {
                        f_start: before,
                        o_start: i,
                        o_len: c.len_utf8(),
                        linear: false,
                    });
                }
            }
        }
        Folded { text, segments }
    }

    /// Maps a folded byte range back to the smallest original byte range covering it (char
    /// boundaries).
    ///
    /// Out-of-range or reversed inputs are clamped (`end` to the folded length, `start` to
    /// `end`). The result is monotonic in both `start` and `end`, and always satisfies
    /// `start <= end`. An empty range at a position inside the folded output of one original
    /// character (e.g. between the two `s` of a folded `ß`) maps to that whole character.
    pub fn original_range(&self, start: usize, end: usize) -> (usize, usize) {
        let end = end.min(self.text.len());
        let start = start.min(end);
        if start == end {
            let a = self.orig_start_at(start);
            (a, a.max(self.orig_end_before(end)))
        } else {
            (self.orig_start_at(start), self.orig_end_before(end))
        }
    }

    /// Original start of the character that produced folded byte `p` (`p == len`: the end of
    /// the last character that produced output).
    fn orig_start_at(&self, p: usize) -> usize {
        if p >= self.text.len() {
            return self.orig_end_before(self.text.len());
        }
        let seg = self.segment_of(p);
        if seg.linear {
            seg.o_start + (p - seg.f_start)
        } else {
            seg.o_start
        }
    }

    /// Original end of the character that produced folded byte `e - 1` (0 when `e == 0`).
    fn orig_end_before(&self, e: usize) -> usize {
        if e == 0 {
            return 0;
        }
        let seg = self.segment_of(e - 1);
        if seg.linear {
            seg.o_start + (e - seg.f_start)
        } else {
            seg.o_start + seg.o_len
        }
    }

    /// The segment holding folded byte `p` (`p < text.len()`).
    fn segment_of(&self, p: usize) -> Segment {
        let idx = self.segments.partition_point(|s| s.f_start <= p);
        // Segment 0 starts at folded offset 0 whenever the text is non-empty.
        self.segments[idx.saturating_sub(1)]
    }
}

/// Whether `c` is removed by folding as invisible: zero-width characters, soft hyphen, bidi
/// controls, tag characters, variation selectors, invisible operators and fillers.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{E0000}'..='\u{E007F}'
            | '\u{E0100}'..='\u{E01EF}'
    )
}

/// Whether `c` is a generic combining diacritic that folding strips (accents).
fn is_diacritic(c: char) -> bool {
    matches!(
        c,
        '\u{0300}'..='\u{036F}'
            | '\u{1AB0}'..='\u{1AFF}'
            | '\u{1DC0}'..='\u{1DFF}'
            | '\u{20D0}'..='\u{20FF}'
            | '\u{FE20}'..='\u{FE2F}'
    )
}

/// The Latin letter that a Cyrillic or Greek homoglyph (either case), or a look-alike Latin
/// IPA letter (`ɡ`, `ɑ`, `ı`), imitates; `None` for every other character.
pub fn latin_lookalike(c: char) -> Option<char> {
    upper_lookalike(c).or_else(|| lower_lookalike(c))
}

/// Uppercase homoglyphs, mapped before lowercasing (their lowercase forms often look different,
/// e.g. Cyrillic `Н`/`н`).
fn upper_lookalike(c: char) -> Option<char> {
    Some(match c {
        // Cyrillic
        'А' => 'A',
        'В' => 'B',
        'Е' => 'E',
        'К' => 'K',
        'М' => 'M',
        'Н' => 'H',
        'О' => 'O',
        'Р' => 'P',
        'С' => 'C',
        'Т' => 'T',
        'Х' => 'X',
        'У' | 'Ү' => 'Y',
        'Ѕ' => 'S',
        'І' | 'Ӏ' => 'I',
        'Ј' => 'J',
        'Ԛ' => 'Q',
        'Ԝ' => 'W',
        'Һ' => 'H',
        // Greek
        'Α' => 'A',
        'Β' => 'B',
        'Ε' => 'E',
        'Ζ' => 'Z',
        'Η' => 'H',
        'Ι' => 'I',
        'Κ' => 'K',
        'Μ' => 'M',
        'Ν' => 'N',
        'Ο' => 'O',
        'Ρ' => 'P',
        'Τ' => 'T',
        'Υ' => 'Y',
        'Χ' => 'X',
        'Ϲ' => 'C',
        'Ϳ' => 'J',
        _ => return None,
    })
}

/// Lowercase homoglyphs, mapped after lowercasing.
fn lower_lookalike(c: char) -> Option<char> {
    Some(match c {
        // Cyrillic
        'а' => 'a',
        'е' => 'e',
        'о' => 'o',
        'р' => 'p',
        'с' => 'c',
        'у' | 'ү' => 'y',
        'х' => 'x',
        'і' => 'i',
        'ј' => 'j',
        'ѕ' => 's',
        'ԁ' => 'd',
        'ԛ' => 'q',
        'ԝ' => 'w',
        'һ' => 'h',
        'ӏ' => 'l',
        // Greek
        'ο' => 'o',
        'α' => 'a',
        'ε' => 'e',
        'ι' => 'i',
        'κ' => 'k',
        'ν' => 'v',
        'ρ' => 'p',
        'τ' => 't',
        'υ' => 'u',
        'χ' => 'x',
        'ϲ' => 'c',
        'ϳ' => 'j',
        // Latin IPA look-alikes
        'ɡ' => 'g',
        'ɑ' => 'a',
        'ı' => 'i',
        _ => return None,
    })
}

/// Folds one non-ASCII character into `out`.
fn fold_char(c: char, out: &mut String) {
    if is_invisible(c) {
        return;
    }
    decompose_compatible(c, |d| {
        if is_diacritic(d) || is_invisible(d) {
            return;
        }
        let d = upper_lookalike(d).unwrap_or(d);
        for l in d.to_lowercase() {
            if is_diacritic(l) {
                continue;
            }
            push_lower(l, out);
        }
    });
}

/// Pushes a lowercase character, expanding ligatures and mapping lowercase homoglyphs.
fn push_lower(l: char, out: &mut String) {
    match l {
        'ß' => out.push_str("ss"),
        'æ' => out.push_str("ae"),
        'œ' => out.push_str("oe"),
        'þ' => out.push_str("th"),
        'ø' => out.push('o'),
        'ł' => out.push('l'),
        'đ' | 'ð' => out.push('d'),
        'ħ' => out.push('h'),
        'ŧ' => out.push('t'),
        'ς' => out.push('σ'),
        _ => out.push(lower_lookalike(l).unwrap_or(l)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn ascii_fast_path_equals_the_general_fold(s in "[ -~\t\n]{0,64}") {
            prop_assert_eq!(Folded::new(&s), Folded::fold_each(&s));
        }
    }

    fn fold(s: &str) -> String {
        Folded::new(s).text
    }

    #[test]
    fn case_and_accents() {
        assert_eq!(fold("Héllo WÖRLD"), "hello world");
        assert_eq!(fold("Crème Brûlée à la Façade"), "creme brulee a la facade");
        assert_eq!(fold("CAFÉ"), "cafe");
        // Decomposed input: e + combining acute.
        assert_eq!(fold("cafe\u{301}"), "cafe");
        assert_eq!(fold("Ёлка"), "eлкa");
        assert_eq!(fold("İstanbul"), "istanbul");
    }

    #[test]
    fn homoglyphs() {
        // Cyrillic а, е, о, р, с, у, х, і, ј, ѕ, ԁ and Latin ɡ.
        assert_eq!(fold("аеорсухіјѕԁɡ"), "aeopcyxijsdg");
        // Greek ο α ε ι κ ν ρ τ υ χ.
        assert_eq!(fold("οαειινρτυχ"), "oaeiivptux");
        // Uppercase homoglyphs map before lowercasing (Cyrillic Н looks like H, not н).
        assert_eq!(fold("НЕLLО"), "hello");
        assert_eq!(fold("Іgnore"), "ignore");
        assert_eq!(fold("pаypаl"), "paypal");
        // Non-confusable letters are kept.
        assert_eq!(fold("Привет"), "пpивeт");
        assert_eq!(fold("ΣΟΦΟΣ"), "σoφoσ");
        assert_eq!(fold("σοφος"), "σoφoσ");
    }

    #[test]
    fn invisibles_removed() {
        assert_eq!(fold("ig\u{200B}no\u{200C}re\u{200D}"), "ignore");
        assert_eq!(fold("\u{FEFF}a\u{2060}b\u{00AD}c"), "abc");
        assert_eq!(
            fold("a\u{202E}b\u{2066}c\u{2069}d\u{200E}e\u{200F}"),
            "abcde"
        );
        assert_eq!(fold("x\u{E0041}\u{E0062}\u{E007F}y"), "xy");
        assert_eq!(fold("\u{200B}\u{200B}"), "");
    }

    #[test]
    fn ligatures_and_fullwidth() {
        assert_eq!(fold("Straße"), "strasse");
        assert_eq!(fold("STRAẞE"), "strasse");
        assert_eq!(fold("Æsir œuvre"), "aesir oeuvre");
        assert_eq!(fold("ﬁnal ﬂow"), "final flow");
        assert_eq!(fold("ＩＧＮＯＲＥ！"), "ignore!");
        assert_eq!(fold("ｈｅｌｌｏ～"), "hello~");
        assert_eq!(fold("𝐈𝐠𝐧𝐨𝐫𝐞"), "ignore");
        assert_eq!(fold("a\u{00A0}b"), "a b");
    }

    #[test]
    fn offsets_exact() {
        let f = Folded::new("Straße");
        assert_eq!(f.text, "strasse");
        assert_eq!(f.original_range(0, 4), (0, 4)); // "stra"
        assert_eq!(f.original_range(4, 6), (4, 6)); // "ss" <- "ß"
        assert_eq!(f.original_range(4, 5), (4, 6)); // half of "ss" still covers "ß"
        assert_eq!(f.original_range(5, 7), (4, 7)); // "se"
        assert_eq!(f.original_range(0, 7), (0, 7));

        let src = "x\u{200B}Іgn\u{200D}ore y";
        let f = Folded::new(src);
        assert_eq!(f.text, "xignore y");
        let s = f.text.find("ignore").unwrap();
        let (a, b) = f.original_range(s, s + "ignore".len());
        assert_eq!(&src[a..b], "Іgn\u{200D}ore");

        let src = "ＡＢＣ café";
        let f = Folded::new(src);
        assert_eq!(f.text, "abc cafe");
        let (a, b) = f.original_range(4, 8);
        assert_eq!(&src[a..b], "café");
        let (a, b) = f.original_range(1, 2);
        assert_eq!(&src[a..b], "Ｂ");

        // Empty ranges and clamping.
        assert_eq!(f.original_range(3, 3), (9, 9));
        assert_eq!(f.original_range(8, 8), (src.len(), src.len()));
        assert_eq!(f.original_range(100, 200), (src.len(), src.len()));
        assert_eq!(f.original_range(5, 2), (6, 6));
        let empty = Folded::new("");
        assert_eq!(empty.original_range(0, 0), (0, 0));
        let invisible = Folded::new("\u{200B}");
        assert_eq!(invisible.original_range(0, 0), (0, 0));
    }

    #[test]
    fn lookalike_table() {
        assert_eq!(latin_lookalike('а'), Some('a'));
        assert_eq!(latin_lookalike('Р'), Some('P'));
        assert_eq!(latin_lookalike('ο'), Some('o'));
        assert_eq!(latin_lookalike('a'), None);
        assert_eq!(latin_lookalike('ж'), None);
    }

    fn boundaries(s: &str) -> Vec<usize> {
        s.char_indices()
            .map(|(i, _)| i)
            .chain(std::iter::once(s.len()))
            .collect()
    }

    fn check_invariants(original: &str) {
        let f = Folded::new(original);
        let fb = boundaries(&f.text);
        let mut prev_row: Option<Vec<(usize, usize)>> = None;
        for &s in &fb {
            let mut row = Vec::new();
            let mut last: Option<(usize, usize)> = None;
            for &e in fb.iter().filter(|&&e| e >= s) {
                let (a, b) = f.original_range(s, e);
                assert!(
                    a <= b && b <= original.len(),
                    "{original:?} {s}..{e} -> {a}..{b}"
                );
                assert!(original.is_char_boundary(a) && original.is_char_boundary(b));
                // The original range, folded, covers the folded slice.
                assert!(fold(&original[a..b]).contains(&f.text[s..e]));
                if let Some((la, lb)) = last {
                    assert_eq!(la, a, "start must not depend on end");
                    assert!(lb <= b, "end not monotonic in e");
                }
                last = Some((a, b));
                row.push((a, b));
            }
            if let Some(prev) = &prev_row {
                // Row for the previous start has one more entry; compare same ends.
                let shift = prev.len() - row.len();
                for (i, &(a, b)) in row.iter().enumerate() {
                    let (pa, pb) = prev[i + shift];
                    assert!(pa <= a && pb <= b, "not monotonic in s");
                }
            }
            prev_row = Some(row);
        }
        // Folding is per character: it commutes with concatenation at char boundaries.
        for &i in &boundaries(original) {
            assert_eq!(
                fold(original),
                format!("{}{}", fold(&original[..i]), fold(&original[i..]))
            );
        }
    }

    proptest! {
        #[test]
        fn prop_offset_map_arbitrary(s in any::<String>()) {
            check_invariants(&s);
        }

        #[test]
        fn prop_offset_map_interesting(
            s in "[a-zA-Z ßﬁÆЅаеоΑο\u{200B}-\u{200D}\u{202E}\u{E0041}\u{301}éＡ！İ𝐈½]{0,24}"
        ) {
            check_invariants(&s);
        }
    }
}
