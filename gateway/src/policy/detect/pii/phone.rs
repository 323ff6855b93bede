//! Phone numbers: E.164 (`+…`), US/NANP and trunk-prefix national formats.

use std::sync::LazyLock;

use regex::Regex;

use super::card::is_valid_card;
use super::{boundary_after, boundary_before, regex, NUM_JOINERS};
use crate::policy::detect::context::before;

/// Phone-shaped run: optional `+` (or `(+`), digit groups, single ` ` `.` `-`
/// separators, parenthesised groups. The structure is validated in code.
static PHONE_RUN_RE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?:\(\+|\+)?\(?[0-9](?:[0-9]|[ .\-]?\(?[0-9]|\)[ .\-]?\(?[0-9])*"));

/// A digit group inside a phone run.
#[derive(Debug, Clone, Copy)]
struct PhoneGroup {
    /// Byte range including the parentheses, if any.
    start: usize,
    end: usize,
    /// Byte range of the digits.
    dstart: usize,
    dend: usize,
    paren: bool,
    /// Separator before the group (`None`: first group or glued to a parenthesised group).
    sep: Option<u8>,
}

impl PhoneGroup {
    fn len(&self) -> usize {
        self.dend - self.dstart
    }
}

/// A well-formed piece of a phone run: an optional leading `+` and its groups.
struct PhoneRun {
    plus: Option<usize>,
    groups: Vec<PhoneGroup>,
}

/// Splits a phone-shaped run into well-formed pieces (unbalanced parentheses cut it).
fn parse_phone_run(text: &str, rs: usize, re: usize) -> Vec<PhoneRun> {
    let b = text.as_bytes();
    let mut runs = Vec::new();
    let mut cur = PhoneRun {
        plus: None,
        groups: Vec::new(),
    };
    let mut i = rs;
    if b[i] == b'+' {
        cur.plus = Some(i);
        i += 1;
    } else if b[i] == b'(' && b.get(i + 1) == Some(&b'+') {
        // "(+44) 20 7946 0958": the country code is a parenthesised group.
        let ds = i + 2;
        let mut j = ds;
        while j < re && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > ds && j < re && b[j] == b')' {
            cur.plus = Some(i);
            cur.groups.push(PhoneGroup {
                start: i,
                end: j + 1,
                dstart: ds,
                dend: j,
                paren: true,
                sep: None,
            });
            i = j + 1;
        } else {
            // Unbalanced "(+": keep the `+`, drop the parenthesis.
            cur.plus = Some(i + 1);
            i = ds;
        }
    }
    let mut sep: Option<u8> = None;
    let flush = |cur: &mut PhoneRun, runs: &mut Vec<PhoneRun>| {
        let done = std::mem::replace(
            cur,
            PhoneRun {
                plus: None,
                groups: Vec::new(),
            },
        );
        if !done.groups.is_empty() {
            runs.push(done);
        }
    };
    while i < re {
        let c = b[i];
        if c.is_ascii_digit() {
            let s = i;
            while i < re && b[i].is_ascii_digit() {
                i += 1;
            }
            cur.groups.push(PhoneGroup {
                start: s,
                end: i,
                dstart: s,
                dend: i,
                paren: false,
                sep,
            });
            sep = None;
        } else if c == b'(' {
            let ds = i + 1;
            let mut j = ds;
            while j < re && b[j].is_ascii_digit() {
                j += 1;
            }
            if j > ds && j < re && b[j] == b')' {
                cur.groups.push(PhoneGroup {
                    start: i,
                    end: j + 1,
                    dstart: ds,
                    dend: j,
                    paren: true,
                    sep,
                });
                sep = None;
                i = j + 1;
            } else {
                flush(&mut cur, &mut runs);
                sep = None;
                i += 1;
            }
        } else if matches!(c, b' ' | b'.' | b'-') && !cur.groups.is_empty() {
            sep = Some(c);
            i += 1;
        } else {
            // Stray ')' (or a separator with nothing before it).
            flush(&mut cur, &mut runs);
            sep = None;
            i += 1;
        }
    }
    flush(&mut cur, &mut runs);
    runs
}

fn phone_digits(text: &str, groups: &[PhoneGroup]) -> Vec<u8> {
    let b = text.as_bytes();
    groups
        .iter()
        .flat_map(|g| b[g.dstart..g.dend].iter().map(|d| d - b'0'))
        .collect()
}

/// `(AAA) EEE-NNNN`, `AAA-EEE-NNNN`, `AAA.EEE.NNNN`, `AAA EEE NNNN`.
fn is_us_core(g: &[PhoneGroup]) -> bool {
    if g.len() != 3 || g[0].len() != 3 || g[1].len() != 3 || g[2].len() != 4 {
        return false;
    }
    if g[1].paren || g[2].paren {
        return false;
    }
    if g[0].paren {
        matches!(g[1].sep, None | Some(b' ')) && g[2].sep.is_some()
    } else {
        g[1].sep.is_some() && g[1].sep == g[2].sep
    }
}

/// A word right before a number that says it is a phone number (`phone`, `tel.`, `call me
/// on`, `mobile:`, `registered`), so that national numbers without a trunk prefix or with
/// fewer than 10 digits (`73 627 280`, `480 6764`) count.
static PHONE_CONTEXT: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\b(?:phone|telephone|tel|mobile|mob|cell|cellphone|handy|fax|call(?:ed)?|ring|text|sms|whatsapp|contact|number|registered|reach(?:ed)?)\b[^\n\d]{0,24}(?:\n[ \t]*)?$",
    )
});

/// The same after a number: `464 016 968 office`, `(028) 3514-698-Fax`.
static PHONE_LABEL_AFTER: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^[ \t\-–(]*(?i:office|fax|mobile|cell|home|work|tel|phone)\b"));

/// Bytes before a number searched for [`PHONE_CONTEXT`].
const CONTEXT_BYTES: usize = 40;

/// Whether a phone word comes right before `start` or right after `end`.
fn phone_context(text: &str, start: usize, end: usize) -> bool {
    PHONE_CONTEXT.is_match(before(text, start, CONTEXT_BYTES))
        || PHONE_LABEL_AFTER.is_match(&text[end..])
}

/// `2024-01-15`, `15.01.2024`, `828-36-2008`: dates and SSNs in phone clothing.
fn date_shaped(g: &[PhoneGroup]) -> bool {
    let lens: Vec<usize> = g.iter().map(PhoneGroup::len).collect();
    matches!(
        lens.as_slice(),
        [4, 2, 2] | [2, 2, 4] | [2, 2, 2] | [3, 2, 4]
    ) && g[1..].iter().all(|x| matches!(x.sep, Some(b'-' | b'.')))
}

/// Validates a candidate made of `g` (already boundary-checked); `context`: a phone word
/// comes right before it.
fn is_valid_phone(text: &str, g: &[PhoneGroup], plus: bool, context: bool) -> bool {
    let n: usize = g.iter().map(PhoneGroup::len).sum();
    // E.164: 7–15 digits. National formats: at least 10 digits in separated
    // groups (bare digit strings are IDs, amounts and timestamps far more often
    // than phone numbers), or 6 after a phone word.
    let n_ok = if plus {
        (7..=15).contains(&n)
    } else if context {
        (6..=15).contains(&n) && (g.len() >= 2 || n >= 7) && !date_shaped(g)
    } else {
        (10..=15).contains(&n) && g.len() >= 2
    };
    if !n_ok {
        return false;
    }
    let d = phone_digits(text, g);
    if is_valid_card(&d) {
        return false;
    }
    if plus {
        // E.164: country code never starts with 0; NANP (+1) numbers have 11 digits.
        return d[0] != 0
            && (d[0] != 1 || n == 11)
            && g.len() <= 8
            && g.iter().filter(|x| x.len() == 1).count() <= 2
            && g.iter().filter(|x| x.paren).count() <= 1;
    }
    // Dotted quad (IPv4-like, e.g. with leading zeros).
    if g.len() == 4
        && g.iter().all(|x| !x.paren && x.len() <= 3)
        && g[1..].iter().all(|x| x.sep == Some(b'.'))
    {
        return false;
    }
    // US/NANP, optionally with a leading `1`.
    if is_us_core(g) {
        return true;
    }
    if context {
        return g.iter().all(|x| x.len() <= 8);
    }
    if g.len() == 4
        && !g[0].paren
        && d[0] == 1
        && g[0].len() == 1
        && g[1].sep.is_some()
        && is_us_core(&g[1..])
        && (g[1].paren || g[1].sep == g[2].sep)
    {
        return true;
    }
    // Trunk-prefix national numbers (UK, FR, DE, …): `0` + non-zero, 10–12 digits,
    // 2–6 groups of 2–8 digits, one consistent separator.
    let trunk = d[0] == 0
        && d[1] != 0
        && (10..=12).contains(&n)
        && g.len() <= 6
        && g.iter().all(|x| (2..=8).contains(&x.len()))
        && g[1..].iter().all(|x| !x.paren);
    if !trunk {
        return false;
    }
    if g[0].paren {
        matches!(g[1].sep, None | Some(b' ')) && g[2..].iter().all(|x| x.sep == Some(b' '))
    } else {
        g[1].sep.is_some() && g[2..].iter().all(|x| x.sep == g[1].sep)
    }
}

/// Phone number spans, in text order; `PiiDetector::find` drops those overlapping cards and IBANs.
pub(super) fn find_phones(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for m in PHONE_RUN_RE.find_iter(text) {
        for run in parse_phone_run(text, m.start(), m.end()) {
            let g = &run.groups;
            let mut gi = 0;
            while gi < g.len() {
                let has_plus = gi == 0 && run.plus.is_some();
                let start = if has_plus {
                    run.plus.unwrap_or(g[0].start)
                } else {
                    g[gi].start
                };
                let start_ok = if gi == 0 {
                    boundary_before(text, start, NUM_JOINERS)
                } else {
                    g[gi].sep == Some(b' ')
                };
                if !start_ok {
                    gi += 1;
                    continue;
                }
                let mut best = None;
                let mut ndigits = 0;
                let mut singles = 0;
                for gj in gi..g.len() {
                    ndigits += g[gj].len();
                    singles += usize::from(g[gj].len() == 1);
                    let ngroups = gj - gi + 1;
                    // Cheap structural limits (see `is_valid_phone`) keep this loop short.
                    let too_many = if has_plus {
                        ngroups > 8 || singles > 2
                    } else {
                        ngroups > 6
                    };
                    if ndigits > 15 || too_many {
                        break;
                    }
                    let end_ok = match g.get(gj + 1) {
                        None => boundary_after(text, g[gj].end, NUM_JOINERS),
                        Some(next) => next.sep == Some(b' '),
                    };
                    if end_ok
                        && is_valid_phone(
                            text,
                            &g[gi..=gj],
                            has_plus,
                            phone_context(text, start, g[gj].end),
                        )
                    {
                        best = Some(gj);
                    }
                }
                match best {
                    Some(gj) => {
                        out.push((start, g[gj].end));
                        gi = gj + 1;
                    }
                    None => gi += 1,
                }
            }
        }
    }
    out
}
