//! Person names, found without a model: a title (`Mr.`, `Dr`, `Frau`) followed by
//! capitalised words; a known first name ([`Gazetteer`]) followed by one to three
//! capitalised words (particles such as `van`, `de`, `al` between them); a known first name
//! alone in the middle of a sentence, at a sentence start before a verb people do
//! (`Patricia spent`), or speaking at a line start (`Mads: ...`); capitalised words right
//! after a phrase that introduces a name (`my name is`, `Dear`, `Regards,`, `customer`); an
//! unknown first name with a surname after a phrase that introduces a person (`I'm`,
//! `directed by`); and, once a text names someone in full, their surname alone.
//!
//! First names that are also common English words (`Will`, `May`, `Grant`, `Rose`) need a
//! surname or an introducing phrase, and never count at a sentence start. A first name
//! inside a title-case phrase (`São Paulo`), before an organisation word (`... Inc`) or, in
//! `PiiDetector::find`, inside an address, is not a person.

use std::collections::HashSet;

use super::names::Gazetteer;
use crate::policy::detect::context;

/// A word: letters, with `'`, `’` or `-` inside (`O'Brien`, `Olli-Pekka`).
#[derive(Debug, Clone, Copy)]
struct Word {
    start: usize,
    end: usize,
}

/// Titles before a name, lower-cased, without their period.
const TITLES: &[&str] = &[
    "mr",
    "mrs",
    "ms",
    "miss",
    "mx",
    "dr",
    "prof",
    "sir",
    "dame",
    "madam",
    "herr",
    "frau",
    "mme",
    "mlle",
    "monsieur",
    "madame",
    "sr",
    "sra",
    "srta",
    "signor",
    "signora",
    "dott",
    "professor",
];

/// Lower-case words allowed between the parts of a name.
const PARTICLES: &[&str] = &[
    "van", "von", "de", "da", "del", "della", "di", "du", "le", "la", "bin", "ibn", "al", "el",
    "ter", "ten", "den", "der", "dos", "das", "y", "zu",
];

/// First names that are also common English words: a match needs the middle of a sentence.
const AMBIGUOUS: &[&str] = &[
    "will",
    "may",
    "mark",
    "rose",
    "page",
    "bill",
    "grant",
    "art",
    "sunny",
    "summer",
    "hope",
    "joy",
    "faith",
    "dawn",
    "april",
    "june",
    "august",
    "chase",
    "hunter",
    "young",
    "long",
    "king",
    "guy",
    "major",
    "chance",
    "price",
    "rich",
    "gene",
    "ivy",
    "iris",
    "lily",
    "holly",
    "ruby",
    "amber",
    "pearl",
    "crystal",
    "autumn",
    "winter",
    "storm",
    "river",
    "sky",
    "star",
    "angel",
    "christian",
    "jordan",
    "israel",
    "lincoln",
    "austin",
    "paris",
    "london",
    "sydney",
    "victoria",
    "georgia",
    "virginia",
    "carolina",
    "india",
    "china",
    "norman",
    "frank",
    "miles",
    "cash",
    "penny",
    "destiny",
    "liberty",
    "justice",
    "grace",
    "mercy",
    "charity",
    "royal",
    "duke",
    "prince",
    "queen",
    "bishop",
    "cardinal",
    "general",
    "rock",
    "stone",
    "wood",
    "field",
    "hill",
    "lane",
    "north",
    "south",
    "west",
    "black",
    "white",
    "brown",
    "green",
    "gray",
    "grey",
    "red",
    "gold",
    "silver",
    "sterling",
    "nova",
    "van",
    "don",
    "dean",
    "major",
    "al",
    "ali",
    "ben",
    "max",
    "sam",
    "pat",
    "ray",
    "jack",
    "sandy",
    "dusty",
    "rusty",
    "buck",
    "bud",
    "forest",
    "ocean",
    "windows",
    "apple",
    "amazon",
    "cloud",
    "august",
    "may",
    "tuesday",
    "friday",
    "sunday",
    "monday",
    "blue",
    "cherry",
    "olive",
    "basil",
    "sage",
    "saffron",
    "ginger",
    "honey",
    "candy",
    "brandy",
    "whisky",
    "sherry",
    "can",
    "love",
    "carry",
    "princess",
    "dear",
    "happy",
    "lucky",
    "ever",
    "oak",
    "says",
    "france",
];

/// Capitalised words that end a candidate rather than being a surname.
const NOT_SURNAMES: &[&str] = &[
    "united",
    "new",
    "his",
    "her",
    "our",
    "my",
    "your",
    "their",
    "its",
    "san",
    "santa",
    "saint",
    "fort",
    "port",
    "mount",
    "street",
    "st",
    "avenue",
    "ave",
    "road",
    "rd",
    "lane",
    "drive",
    "court",
    "way",
    "place",
    "inc",
    "ltd",
    "llc",
    "gmbh",
    "corp",
    "company",
    "group",
    "bank",
    "university",
    "college",
    "school",
    "hospital",
    "airport",
    "station",
    "center",
    "centre",
    "park",
    "hotel",
    "city",
    "county",
    "state",
    "river",
    "lake",
    "mountain",
    "island",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "january",
    "february",
    "march",
    "april",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "the",
    "and",
    "or",
    "of",
    "i",
    "a",
    "an",
    "in",
    "on",
    "at",
    "to",
    "for",
    "is",
    "was",
    "are",
    "please",
    "thanks",
    "thank",
    "hi",
    "hello",
    "dear",
    "team",
    "support",
    "customer",
    "service",
];

/// Words that make the capitalised words before them an organisation or a title, not a
/// person (`Amara Raja Batteries`, `Vital Therapies Inc.`).
const ORGANISATION_WORDS: &[&str] = &[
    "inc",
    "ltd",
    "llc",
    "plc",
    "gmbh",
    "ag",
    "sa",
    "corp",
    "corporation",
    "company",
    "co",
    "group",
    "holdings",
    "technologies",
    "systems",
    "solutions",
    "industries",
    "partners",
    "capital",
    "bank",
    "orchestra",
    "band",
    "records",
    "foundation",
    "institute",
    "association",
    "university",
    "college",
    "school",
    "hospital",
    "batteries",
    "therapies",
    "motors",
    "airlines",
    "insurance",
    "media",
    "labs",
    "software",
    "pharmaceuticals",
];

/// Phrases (lower-cased) after which a first name and a surname are a person even when the
/// first name is unknown (`I'm Tihomila Crnić`, `directed by Matheus Araujo`); a single
/// capitalised word after them is too often something else (`I'm Canadian`).
const CONTEXT_BEFORE_FULL_NAME: &[&str] = &[
    "i'm",
    "i’m",
    "i am",
    "says",
    "said",
    "contact to",
    "address for",
    "holder is",
    "follow up with",
    "speak to",
    "speak with",
    "talk to",
    "directed by",
    "written by",
    "sung by",
    "starring",
    "producer",
];

/// Sentence-opening words that are never part of a name: a name right after one is not
/// inside a title-case phrase (`The Hans Enoksen version`, `I'm Louise Danielsen`).
const OPENERS: &[&str] = &[
    "the", "a", "an", "i", "i'm", "i’m", "and", "but", "so", "then", "when", "if", "yes", "no",
    "ok", "also", "please", "ask", "tell", "call", "email", "unlike", "maybe", "producer",
    "director", "author", "singer", "actor", "writer",
];

/// Pronouns that the first-name list also holds (`You`, `He` as parts of Asian names).
const PRONOUNS: &[&str] = &[
    "i", "you", "he", "she", "we", "they", "it", "this", "that", "there", "here", "who", "what",
    "one", "someone", "everyone", "nobody",
];

/// Verbs after which a known first name at a sentence start is a person (`Patricia spent a
/// year`, `Alba is very reliable`), not just any capitalised word.
const VERBS_AFTER_NAME: &[&str] = &[
    "is", "was", "has", "had", "lives", "lived", "works", "worked", "spent", "began", "said",
    "says", "shouted", "told", "asked", "wrote", "moved", "went",
];

/// Words (lower-cased) after which a capitalised word is a name.
const CONTEXT: &[&str] = &[
    "name is",
    "name's",
    "named",
    "called",
    "name:",
    "dear",
    "hi",
    "hello",
    "hey",
    "thanks,",
    "regards,",
    "sincerely,",
    "cheers,",
    "signed,",
    "thanks",
    "customer",
    "client",
    "employee",
    "patient",
    "user",
    "guardian",
    "contact",
    "applicant",
    "beneficiary",
    "holder",
    "from:",
    "to:",
    "cc:",
    "attn:",
    "attention:",
];

/// Person-name spans of `text`, in order.
pub(super) fn find_persons(text: &str, gazetteer: &Gazetteer) -> Vec<(usize, usize)> {
    let words = words(text);
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = &text[words[i].start..words[i].end];
        let lower = w.to_lowercase();
        // `Mr`, `Dr.`, and lower-case `ms.` with its period.
        let titled = TITLES.contains(&lower.as_str())
            && (capitalised(w) || text[words[i].end..].starts_with('.'));
        if titled {
            let run = name_run(text, &words, i + 1, words[i].end, 3);
            if let Some(last) = run {
                out.push((words[i].start, trim_possessive(text, words[last])));
                i = last + 1;
                continue;
            }
        }
        if capitalised(w) && !NOT_SURNAMES.contains(&lower.as_str()) && !titled {
            let ambiguous = AMBIGUOUS.contains(&lower.as_str());
            let starts = sentence_start(text, words[i].start) || after_opener(text, &words, i);
            let known = gazetteer.is_first_name(&lower) && (!ambiguous || !starts);
            let more = name_run(text, &words, i + 1, words[i].end, 3);
            let introduced = introduced(text, words[i].start, CONTEXT)
                || more.is_some() && introduced(text, words[i].start, CONTEXT_BEFORE_FULL_NAME);
            // `Mads: You saved my life!`: a first name speaking, at the start of a line.
            let speaker = known
                && text[words[i].end..].starts_with(':')
                && text[..words[i].start].trim_end_matches(' ').ends_with('\n');
            // A lone first name counts in the middle of a sentence (`said Liva to`), where
            // capitals mark names; at a sentence start, where every word is capitalised,
            // only before a verb people do (`Alba is very`).
            let alone = known
                && !ambiguous
                && (!starts
                    || verb_follows(text, &words, i) && !PRONOUNS.contains(&lower.as_str()));
            let last = match (known, introduced || speaker || alone, more) {
                (true, _, Some(last)) | (_, true, Some(last)) => Some(last),
                (_, true, None) => Some(i),
                _ => None,
            };
            // Inside a title-case phrase (`São Paulo`, `Punta del Este`, `Killed My Baby`),
            // a first name is part of something else, unless a title or phrase introduced it.
            let inside_phrase = !introduced && after_capitalised(text, &words, i);
            let last = last
                .filter(|_| !inside_phrase || speaker)
                .filter(|&l| !organisation(text, &words, i, l));
            if let Some(last) = last {
                out.push((words[i].start, trim_possessive(text, words[last])));
                i = last + 1;
                continue;
            }
        }
        i += 1;
    }
    repeated(text, &words, out)
}

/// `found` plus every other occurrence of the surname of a found name of two or more words
/// (`Pauline Isaksen ... though Isaksen's song`): once a text names someone in full, their
/// surname alone is them too. Not a word the text also writes in lower case (`Time Based
/// Evasion ... based on`), which marks a capitalised phrase rather than a name.
fn repeated(text: &str, words: &[Word], mut found: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
    let mut surnames: Vec<&str> = Vec::new();
    for &(s, e) in &found {
        let first = words.partition_point(|w| w.start < s);
        let named: Vec<&str> = words[first..]
            .iter()
            .take_while(|w| w.end <= e)
            .map(|w| &text[w.start..w.end])
            .filter(|w| capitalised(w) && !TITLES.contains(&w.to_lowercase().as_str()))
            .collect();
        if let [_, .., last] = named[..] {
            if last.chars().count() > 2 && !AMBIGUOUS.contains(&last.to_lowercase().as_str()) {
                surnames.push(last);
            }
        }
    }
    if surnames.is_empty() {
        return found;
    }
    let lower_case: HashSet<&str> = words
        .iter()
        .map(|w| &text[w.start..w.end])
        .filter(|w| !w.chars().any(char::is_uppercase))
        .collect();
    surnames.retain(|s| !lower_case.contains(s.to_lowercase().as_str()));
    if surnames.is_empty() {
        return found;
    }
    let mut more = Vec::new();
    for w in words {
        let end = trim_possessive(text, *w);
        if surnames.contains(&&text[w.start..end])
            && !found.iter().any(|&(s, e)| w.start < e && s < w.end)
        {
            more.push((w.start, end));
        }
    }
    found.extend(more);
    found.sort_unstable();
    found
}

/// Whether the word before `i` opens its sentence and is an [`OPENERS`] word.
fn after_opener(text: &str, words: &[Word], i: usize) -> bool {
    i > 0
        && text[words[i - 1].end..words[i].start] == *" "
        && OPENERS.contains(
            &text[words[i - 1].start..words[i - 1].end]
                .to_lowercase()
                .as_str(),
        )
        && sentence_start(text, words[i - 1].start)
}

/// Whether the word after `i`, one space away, is one of [`VERBS_AFTER_NAME`].
fn verb_follows(text: &str, words: &[Word], i: usize) -> bool {
    words.get(i + 1).is_some_and(|next| {
        text[words[i].end..next.start] == *" "
            && VERBS_AFTER_NAME.contains(&&text[next.start..next.end])
    })
}

/// Words of letters with inner `'`, `’` or `-`.
fn words(text: &str) -> Vec<Word> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let inner = matches!(c, '\'' | '’' | '-')
            && start.is_some()
            && chars.peek().is_some_and(|&(_, n)| n.is_alphabetic());
        if c.is_alphabetic() || inner {
            start.get_or_insert(i);
        } else if let Some(s) = start.take() {
            out.push(Word { start: s, end: i });
        }
    }
    if let Some(s) = start {
        out.push(Word {
            start: s,
            end: text.len(),
        });
    }
    out
}

/// An upper-case letter followed by at least one lower-case one (`Anna`, `McDonald`).
fn capitalised(w: &str) -> bool {
    let mut chars = w.chars();
    chars.next().is_some_and(|c| c.is_uppercase()) && chars.any(|c| c.is_lowercase())
}

/// The index of the last word of a run of 1..=`max` capitalised words (particles allowed
/// between) starting at `from`, each separated from the previous by one or two spaces.
fn name_run(
    text: &str,
    words: &[Word],
    from: usize,
    mut prev_end: usize,
    max: usize,
) -> Option<usize> {
    let mut last = None;
    let mut taken = 0;
    let mut j = from;
    while j < words.len() && taken < max {
        let gap = &text[prev_end..words[j].start];
        let spaced = !gap.is_empty() && gap.len() <= 2 && gap.chars().all(|c| c == ' ')
            || gap == ". "
                && last.is_none()
                && from > 0
                && TITLES.contains(
                    &text[words[from - 1].start..prev_end]
                        .to_lowercase()
                        .as_str(),
                );
        if !spaced {
            break;
        }
        let w = &text[words[j].start..words[j].end];
        let lower = w.to_lowercase();
        if PARTICLES.contains(&w) {
            prev_end = words[j].end;
            j += 1;
            continue;
        }
        if !capitalised(w) || NOT_SURNAMES.contains(&lower.as_str()) {
            break;
        }
        last = Some(j);
        taken += 1;
        prev_end = words[j].end;
        j += 1;
        // A possessive ends the name: `Björklund's Cautionary Tales`.
        if w.ends_with("'s") || w.ends_with("’s") {
            break;
        }
    }
    last
}

/// Whether a word of `first..=last`, or the word right after them, names an organisation.
fn organisation(text: &str, words: &[Word], first: usize, last: usize) -> bool {
    let org = |w: &Word| ORGANISATION_WORDS.contains(&text[w.start..w.end].to_lowercase().as_str());
    words[first..=last].iter().any(org)
        || words
            .get(last + 1)
            .is_some_and(|next| text[words[last].end..next.start] == *" " && org(next))
}

/// Whether the word before `i` (particles skipped), one space away, is capitalised and not
/// a title.
fn after_capitalised(text: &str, words: &[Word], i: usize) -> bool {
    let mut j = i;
    while j > 0 {
        if text[words[j - 1].end..words[j].start] != *" " {
            return false;
        }
        let w = &text[words[j - 1].start..words[j - 1].end];
        if !PARTICLES.contains(&w) {
            return capitalised(w)
                && !TITLES.contains(&w.to_lowercase().as_str())
                && !after_opener(text, words, j);
        }
        j -= 1;
    }
    false
}

/// Whether a phrase of `phrases` ends right before `start`.
fn introduced(text: &str, start: usize, phrases: &[&str]) -> bool {
    let before = context::before(text, start, 24).to_lowercase();
    let before = before.trim_end();
    phrases.iter().any(|c| {
        before.ends_with(c)
            && before[..before.len() - c.len()]
                .chars()
                .next_back()
                .is_none_or(|p| !p.is_alphanumeric())
    })
}

/// Whether `start` begins a sentence: only spaces since the text start or since `.`, `!`,
/// `?`, a newline or a quote.
fn sentence_start(text: &str, start: usize) -> bool {
    text[..start]
        .chars()
        .rev()
        .find(|c| *c != ' ')
        .is_none_or(|c| matches!(c, '.' | '!' | '?' | '\n' | '"' | '“' | ':' | '('))
}

/// The end of `w` without a possessive `'s` (`Björklund's`); a lone `s` after `Corp.'` is a
/// word of its own, with nothing to trim.
fn trim_possessive(text: &str, w: Word) -> usize {
    for p in ["'s", "’s"] {
        if text[w.start..w.end].ends_with(p) && w.end - p.len() > w.start {
            return w.end - p.len();
        }
    }
    w.end
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use super::super::tests::check_spans;

    fn gaz() -> Gazetteer {
        Gazetteer::parse(
            "M  Marek 1\nF  Maren 1\nF  Eleonora 1\nM  Will 1\nF  Grace 1\nM  Guilherme 1\n\
             F  Claire 1\nM  Olli+Pekka 1\nF  Anna 1\nM  You 1\n",
        )
    }

    fn found(text: &str) -> Vec<&str> {
        find_persons(text, &gaz())
            .into_iter()
            .map(|(a, b)| &text[a..b])
            .collect()
    }

    #[test]
    fn names_are_found() {
        assert_eq!(found("Customer Marek Kouřil called."), ["Marek Kouřil"]);
        assert_eq!(found("by Ms. Maren Geisler – go"), ["Ms. Maren Geisler"]);
        assert_eq!(
            found("not by Mrs. Claire St-Jean)."),
            ["Mrs. Claire St-Jean"]
        );
        assert_eq!(
            found("verses from Eleonora Björklund's Cautionary Tales"),
            ["Eleonora Björklund"]
        );
        assert_eq!(found("Olli-Pekka Wälkky moved"), ["Olli-Pekka Wälkky"]);
        assert_eq!(found("Anna van der Berg signed"), ["Anna van der Berg"]);
        assert_eq!(found("My name is Zdeněk."), ["Zdeněk"]);
        assert_eq!(found("Dear Anna, welcome"), ["Anna"]);
        assert_eq!(found("A tribute to Dr Hamanová"), ["Dr Hamanová"]);
        assert_eq!(
            found("thanks, Will Turner and Grace Hopper"),
            ["Will Turner", "Grace Hopper"]
        );
        // A known first name at a sentence start, before a verb people do.
        assert_eq!(found("Anna said hello."), ["Anna"]);
        assert_eq!(found("Fine. Marek is very reliable."), ["Marek"]);
        // After a sentence opener, a name is not inside a title-case phrase.
        assert_eq!(
            found("I'm Claire Danielsen, from Oslo"),
            ["Claire Danielsen"]
        );
        assert_eq!(found("The Marek Enoksen version"), ["Marek Enoksen"]);
        // An unknown first name with a surname, after a phrase that introduces a person.
        assert_eq!(
            found("the holder is Hjalte Hedegaard."),
            ["Hjalte Hedegaard"]
        );
        assert_eq!(found("directed by Teodata Boni"), ["Teodata Boni"]);
        // A surname alone, once the text has named the person in full.
        assert_eq!(
            found("sung by Maren Isaksen in 2006 (though Isaksen's song was older)"),
            ["Maren Isaksen", "Isaksen"]
        );
        // `Corp.'s`: the `s` is a word of its own, with nothing to trim.
        assert_eq!(
            found("Marek Wakeland of Kairos Corp.'s board; Corp.'s Wakeland"),
            ["Marek Wakeland", "Wakeland"]
        );
    }

    #[test]
    fn repeated_capitals_are_not_surnames_when_the_text_writes_them_lower_case() {
        // `Claire Based` is a false full name; `Based` stays a word, as `based` shows.
        assert_eq!(
            found("Ask Claire Based. Based on the report, what is based here?"),
            ["Claire Based"]
        );
    }

    #[test]
    fn ordinary_capitals_are_not_names() {
        for t in [
            "Will you help me with Hybrid Analysis?",
            "Grace Period ends on Monday.",
            "Anna Street is closed.",
            "The Command and Control server at Cobalt Strike",
            "Entertainment Weekly listed Tube Snake Boogie",
            "I'm Canadian and proud of it.",
            "You said your e-mail is wrong.",
            "I am United States but I live in United States.",
            "MAREK KOURIL",
        ] {
            assert!(found(t).is_empty(), "{t}: {:?}", found(t));
        }
    }

    proptest! {
        #[test]
        fn spans_are_ordered_char_boundaries(text in "\\PC{0,120}") {
            check_spans(&text, &find_persons(&text, &gaz()));
        }
    }
}
