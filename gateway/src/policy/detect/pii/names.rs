//! The first-name list person detection checks candidates against: `nam_dict.txt` of Jörg
//! Michael's `gender` program (about 48,000 first names from 50+ countries, GFDL 1.2), as the
//! `gender-guesser` wheel ships it; `scripts/fetch-models --only names` puts it under
//! `models/names/`. Loaded once per process and path.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, LazyLock};

use crate::policy::detect::loaded::LoadedOnce;

/// Lower-cased first names.
#[derive(Debug, Default)]
pub struct Gazetteer {
    first: HashSet<String>,
}

static LOADED: LazyLock<LoadedOnce<Gazetteer>> = LazyLock::new(LoadedOnce::default);

impl Gazetteer {
    /// Parses `nam_dict.txt`: comment lines start with `#`, short-name lines with `=`; other
    /// lines are `<gender code> <name> <frequencies>`, and a `+` inside a name stands for a
    /// hyphen, a space or nothing (`Jun+Wei`).
    pub fn parse(text: &str) -> Gazetteer {
        let mut first = HashSet::new();
        for line in text.lines() {
            if line.starts_with(['#', '=']) {
                continue;
            }
            let Some(name) = line.split_whitespace().nth(1) else {
                continue;
            };
            let name = name.to_lowercase();
            if name.contains('+') {
                first.insert(name.replace('+', "-"));
                first.insert(name.replace('+', ""));
                // "Jun Wei": its first part is a first name on its own.
                if let Some(head) = name.split('+').next().filter(|h| h.chars().count() > 1) {
                    first.insert(head.to_string());
                }
            } else if name.chars().count() > 2 {
                // Two-letter names (`Bo`, `My`, `Co`) are words far more often.
                first.insert(name);
            }
        }
        Gazetteer { first }
    }

    /// The list in `path`, read on first use.
    pub fn load(path: &Path) -> Result<Arc<Gazetteer>, String> {
        LOADED.get(path, |file| {
            let text =
                std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
            let g = Gazetteer::parse(&text);
            if g.first.len() < 1000 {
                return Err(format!(
                    "{}: {} names; not a nam_dict.txt",
                    file.display(),
                    g.first.len()
                ));
            }
            Ok(g)
        })
    }

    /// Whether `word` (any case) is a known first name.
    pub fn is_first_name(&self, word: &str) -> bool {
        self.first.contains(&word.to_lowercase())
    }

    /// Names known.
    pub fn len(&self) -> usize {
        self.first.len()
    }

    /// Whether no name is known.
    pub fn is_empty(&self) -> bool {
        self.first.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_plus_forms() {
        let g = Gazetteer::parse(
            "# comment $\n\
             M  Marek                      1  $\n\
             F  Millicent                    1 $\n\
             ?  Jun+Wei                   1   $\n\
             =  Bob Robert                     $\n\
             M  A                          1  $\n\
             M  Bo                         1  $\n",
        );
        for n in ["marek", "Millicent", "JUN-WEI", "junwei", "jun"] {
            assert!(g.is_first_name(n), "{n}");
        }
        assert!(!g.is_first_name("bob"));
        assert!(!g.is_first_name("a"));
        assert!(!g.is_first_name("bo"));
        assert_eq!(g.len(), 5);
    }
}
