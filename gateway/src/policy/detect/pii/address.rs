//! Street addresses, found without a model: a house number and a street type (`221 Dallas
//! Court`, `82 rue Beauvau`, `Jakobstrasse 89`, `Avda. Explanada Barnuevo 69`, `ul. Zamkowa
//! 33`), a post-office box, or any `Words 12, <postcode> City` line (`Na Kopci 278, 533 41
//! Lázne Bohdanec`). A match runs on over a unit (`Apt. 4`) and the city, state and postcode
//! that follow (`, San Antonio, TX 78205`), so that redaction takes the whole address.

use std::sync::LazyLock;

use regex::Regex;

use super::regex;

/// Street types written after the street name (English).
const SUFFIXES: &str = "Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Ter|Circle|Cir|Parkway|Pkwy|Highway|Hwy|Square|Sq|Trail|Trl|Crescent|Cres|Close|Grove|Gardens|Mews|Row|Walk|Alley|Loop|Plaza|Heights|Park|Green|Hill|Rise|View|Parade|Esplanade|Expressway|Freeway|Pike|Run|Point|Ridge|Glen|Landing|Crossing|Commons";

/// Street types written before the street name (Romance and Slavic languages).
const PREFIXES: &str = r"rue|avenue|av\.|avda\.|avenida|boulevard|bd|place|chemin|allée|impasse|quai|route|cours|calle|c/|carrer|paseo|plaza|rua|travessa|praça|largo|via|viale|piazza|corso|vicolo|ul\.|ulica|al\.|aleja|strada|str\.";

/// Street types written before the name and number (`Avda. Explanada Barnuevo 69`); not
/// `via`, `place` or `route`, which English uses before names and numbers too.
const PREFIXES_BEFORE_NUMBER: &str = r"rue|avda\.|avenida|av\.|calle|c/|carrer|paseo|rua|travessa|praça|largo|viale|piazza|corso|vicolo|ul\.|ulica|aleja|strada|str\.";

/// Street types glued to the end of the street name (Germanic, Nordic, Finnish, ...); not
/// endings English words have (`-ring`, `-tie`).
const GLUED: &str = "straße|strasse|str\\.|weg|gasse|platz|allee|damm|ufer|gade|vej|vegen|veien|gatan|vägen|straat|laan|plein|gracht|singel|katu|utca|ulica|cesta|iela|tänav";

/// A number with an optional letter or range (`12`, `12b`, `12-14`).
const NUMBER: &str = r"\d{1,5}(?:\x20?[a-zA-Z]\b|-\d{1,4})?";

/// Capitalised word of a street or place name.
const CAP: &str = r"[\p{Lu}][\p{L}'’.\-]*";

static STREET_RE: LazyLock<Regex> = LazyLock::new(|| {
    regex(&format!(
        r"(?x)
        # 221 Dallas Court, 1719 Kamp St, 5 N Crestview Terrace
        \b{NUMBER}\s+(?:[NSEW]\.?\s+)?(?:{CAP}\s+){{1,3}}(?:{SUFFIXES})\b\.?
        # 82 rue Beauvau, 3 Rue du Niger, 12, avenue de la Paix
        | \b{NUMBER},?\s+(?i:{PREFIXES})\s+(?:(?i:de|du|des|la|le|l'|d')\s*)*{CAP}(?:\s+(?:(?i:de|du|des|la|le|l'|d')\s*)*{CAP}){{0,3}}
        # Avda. Explanada Barnuevo 69, ul. Zamkowa 33, Via Roma 12
        | (?i:\b(?:{PREFIXES_BEFORE_NUMBER}))\s+(?:(?i:de|del|della|di|da|do|dos|das|la)\s+)*{CAP}(?:\s+(?:(?i:de|del|della|di|da|do|dos|das|la)\s+)*{CAP}){{0,3}},?\s+{NUMBER}\b
        # Jakobstrasse 89, Reinprechtsdorfer Strasse 32, Olmstraat 69
        | \b(?:{CAP}\s+)?[\p{{Lu}}][\p{{L}}\-]{{2,}}(?i:{GLUED})\s+{NUMBER}\b
        | \b{CAP}\s+(?:Straße|Strasse|Weg|Gasse|Platz|Allee)\s+{NUMBER}\b
        # P.O. Box 255, Postbox 21
        | \b(?:P\.?\s?O\.?\s?Box|Post(?:box|boks|fach)|Box)\s+\d{{1,6}}\b
        "
    ))
});

/// A postcode: digits (`78205`, `533 41`, `62-800`), UK (`SW1A 1AA`), Canada (`N0N 0N0`),
/// Netherlands (`6101 BS`).
const POSTCODE: &str = r"(?:\d{2}-\d{3}|\d{3,5}(?:[ -]\d{2,3})?(?:\s[A-Z]{2}\b)?|[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}|[A-Z]\d[A-Z]\s?\d[A-Z]\d)";

/// `Words 12, <postcode> City`: any street with a house number, made an address by the
/// postcode and place after it.
static POSTAL_LINE_RE: LazyLock<Regex> = LazyLock::new(|| {
    regex(&format!(
        r"\b{CAP}(?:\s+[\p{{L}}'’.\-]+){{0,3}}\s+{NUMBER},\s*{POSTCODE}\s+{CAP}(?:\x20{CAP}){{0,3}}"
    ))
});

/// What may follow a street: a unit, then `, City`, `, ST`, `, 78205 City`, ` 78205`,
/// ` NW`. Without a comma only a postcode (and its city) or a two-letter state or direction:
/// a capitalised word after a street ending a sentence starts the next one.
static TAIL_RE: LazyLock<Regex> = LazyLock::new(|| {
    let places = format!(r"{CAP}(?:\x20{CAP}){{0,3}}");
    regex(&format!(
        r"^(?:,?\s*(?i:apt|apartment|suite|ste|unit|flat|floor|fl|#)\.?\s*#?[\w\-]+)?(?:,\x20*(?:{POSTCODE}(?:\x20+{places})?|[A-Z]{{2,3}}\b|{places})|\x20+(?:{POSTCODE}(?:\x20+{places})?|[A-Z]{{2}}\b))*"
    ))
});

/// Address spans of `text`, in order, not overlapping.
pub(super) fn find_addresses(text: &str) -> Vec<(usize, usize)> {
    let mut spans: Vec<(usize, usize)> = STREET_RE
        .find_iter(text)
        .map(|m| (m.start(), extend(text, m.end())))
        .chain(
            POSTAL_LINE_RE
                .find_iter(text)
                .map(|m| (m.start(), extend(text, m.end()))),
        )
        .collect();
    spans.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (s, e) in spans {
        match out.last_mut() {
            Some(last) if s < last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// `end` moved past the unit, place, state and postcode after a street.
fn extend(text: &str, end: usize) -> usize {
    let tail = TAIL_RE.find(&text[end..]).map_or(0, |m| m.end());
    // A tail never ends on a separator.
    let kept = text[end..end + tail]
        .trim_end_matches([',', ' ', '.'])
        .len();
    end + kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use super::super::tests::check_spans;

    fn found(text: &str) -> Vec<&str> {
        find_addresses(text)
            .into_iter()
            .map(|(a, b)| &text[a..b])
            .collect()
    }

    #[test]
    fn addresses_are_found_with_their_place() {
        for (text, want) in [
            (
                "Ship to 221 Dallas Court, Kilbirnie 6022 today.",
                "221 Dallas Court, Kilbirnie 6022",
            ),
            (
                "at 5 Crestview Terrace, San Antonio, TX 78205.",
                "5 Crestview Terrace, San Antonio, TX 78205",
            ),
            (
                "82 rue Beauvau, 13001 MARSEILLE",
                "82 rue Beauvau, 13001 MARSEILLE",
            ),
            (
                "Jakobstrasse 89, 4943 Oeschenbach",
                "Jakobstrasse 89, 4943 Oeschenbach",
            ),
            (
                "Avda. Explanada Barnuevo 69, 35350 Artenara",
                "Avda. Explanada Barnuevo 69, 35350 Artenara",
            ),
            (
                "ul. Zamkowa 33, 62-800 Kalisz",
                "ul. Zamkowa 33, 62-800 Kalisz",
            ),
            (
                "Na Kopci 278, 533 41 Lázne Bohdanec",
                "Na Kopci 278, 533 41 Lázne Bohdanec",
            ),
            (
                "P.O. Box 255, 3910 Kangerlussuaq",
                "P.O. Box 255, 3910 Kangerlussuaq",
            ),
            (
                "986 Baker Street, London, ON N0N 0N0",
                "986 Baker Street, London, ON N0N 0N0",
            ),
            (
                "1600 Pennsylvania Ave NW, Washington",
                "1600 Pennsylvania Ave NW, Washington",
            ),
            ("Olmstraat 69, 6101 BS Echt", "Olmstraat 69, 6101 BS Echt"),
        ] {
            assert_eq!(found(text), [want], "{text}");
        }
    }

    #[test]
    fn numbers_and_names_alone_are_not_addresses() {
        for t in [
            "Windows 10 and Python 3.12 on port 8080",
            "Chapter 5 of the report, page 12",
            "in 2024, 3 analysts reviewed 41 alerts",
            "Section 4.2, Table 3",
            "the 3 Musketeers",
        ] {
            assert!(found(t).is_empty(), "{t}: {:?}", found(t));
        }
    }

    proptest! {
        #[test]
        fn spans_are_ordered_char_boundaries(text in "\\PC{0,120}") {
            check_spans(&text, &find_addresses(&text));
        }
    }
}
