//! Which records of different libraries describe the same book.
//!
//! The union catalog shows a book once however many members catalogued it. Every peer
//! must group the same way, so the rule is a pure function of the records (and of the
//! members' signed "same" / "not the same" assertions, applied by the caller):
//!
//! 1. Identifiers first. Two records that share a valid ISBN (compared as ISBN-13), an
//!    LCCN or an OCLC number are the same. Two records that both carry ISBNs but share
//!    none are *not* the same (different editions, bindings or volumes), nor are two with
//!    different LCCNs, whatever their titles say.
//! 2. Then the title key: the main title (folded to lower-case ASCII letters and digits,
//!    leading article dropped, at most 12 words), the first author's name words in sorted
//!    order (so `Toer, Pramoedya Ananta` and `Pramoedya Ananta Toer` agree), and the year.
//!    With limits: no key without a year, nor for a title of fewer than 8 letters with no
//!    author (`Poems`, `Laporan tahunan` of an unknown year are not one book).
//! 3. Only across libraries: a library's own records are never merged with each other.
//!
//! A record's keys are strings (`isbn:…`, `lccn:…`, `oclc:…`, `title:…`) so an index can
//! find the candidates sharing one, and [`compare`] decides from the keys alone.

use crate::record::Description;
use unicode_normalization::UnicodeNormalization;

/// How two records were found to be the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Match {
    /// A member asserted it.
    Asserted,
    /// They share an identifier.
    Identifier,
    /// Same title key, no identifier against it.
    Title,
}

impl Match {
    /// The word shown and sent in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Match::Asserted => "asserted",
            Match::Identifier => "identifier",
            Match::Title => "title",
        }
    }
}

/// Words dropped from the start of a title (articles, in the languages of our records).
const ARTICLES: [&str; 12] = [
    "the", "a", "an", "le", "la", "les", "l", "der", "die", "das", "el", "los",
];

/// Folds text to lower-case ASCII words: letters and digits only, marks dropped.
fn fold_words(text: &str) -> Vec<String> {
    let folded: String = text
        .nfkd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_lowercase().next().unwrap_or(c)
            } else {
                ' '
            }
        })
        .collect();
    folded.split_whitespace().map(str::to_string).collect()
}

/// The normalised main title: what comes before a subtitle (` : `), folded, leading
/// article dropped, at most 12 words.
pub fn title_words(title: &str) -> Vec<String> {
    let main = title.split(" : ").next().unwrap_or(title);
    let main = main.split(" / ").next().unwrap_or(main);
    let mut words = fold_words(main);
    if words.len() > 1 && ARTICLES.contains(&words[0].as_str()) {
        words.remove(0);
    }
    words.truncate(12);
    words
}

/// The first author's name as sorted words, dates and punctuation dropped.
pub fn author_words(name: &str) -> Vec<String> {
    let mut words: Vec<String> = fold_words(name)
        .into_iter()
        .filter(|w| !w.chars().all(|c| c.is_ascii_digit()))
        .collect();
    words.sort();
    words
}

/// The title key, when the record has enough to make one.
pub fn title_key(d: &Description) -> Option<String> {
    let year = d.year?;
    let title = title_words(&d.title);
    let letters: usize = title.iter().map(String::len).sum();
    let author = d
        .names
        .iter()
        .find(|n| n.main)
        .or_else(|| d.names.first())
        .map(|n| author_words(&n.name))
        .unwrap_or_default();
    if title.is_empty() || (author.is_empty() && letters < 8) {
        return None;
    }
    Some(format!(
        "title:{}|{}|{year}",
        title.join(" "),
        author.join(" ")
    ))
}

/// A normalised LCCN: spaces and hyphens out, lower case (`"  2001012345 "`, `"2001-12345"`
/// stay distinct only in their digits).
fn lccn_key(lccn: &str) -> Option<String> {
    let normalised: String = lccn
        .split('/')
        .next()
        .unwrap_or(lccn)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (normalised.len() >= 8).then_some(normalised)
}

/// Every key of a record: its identifiers and its title key. Sorted, no duplicates.
pub fn keys(d: &Description) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    keys.extend(d.isbns.iter().map(|isbn| format!("isbn:{isbn}")));
    if let Some(lccn) = d.lccn.as_deref().and_then(lccn_key) {
        keys.push(format!("lccn:{lccn}"));
    }
    for id in &d.other_ids {
        if id.scheme.eq_ignore_ascii_case("OCoLC") {
            let digits: String = id.value.chars().filter(char::is_ascii_digit).collect();
            let digits = digits.trim_start_matches('0');
            if !digits.is_empty() {
                keys.push(format!("oclc:{digits}"));
            }
        }
    }
    keys.extend(title_key(d));
    keys.sort();
    keys.dedup();
    keys
}

fn of_scheme<'a>(keys: &'a [String], scheme: &'a str) -> impl Iterator<Item = &'a String> + 'a {
    keys.iter().filter(move |k| {
        k.split_once(':')
            .is_some_and(|(s, _)| s == scheme && !k.is_empty())
    })
}

/// Whether two records (by their [`keys`]) are the same book, and how; `None` when not.
pub fn compare(a: &[String], b: &[String]) -> Option<Match> {
    let shared = |scheme: &str| of_scheme(a, scheme).any(|k| b.contains(k));
    let both = |scheme: &str| {
        of_scheme(a, scheme).next().is_some() && of_scheme(b, scheme).next().is_some()
    };
    if shared("isbn") || shared("lccn") || shared("oclc") {
        return Some(Match::Identifier);
    }
    if both("isbn") || both("lccn") || both("oclc") {
        return None;
    }
    if shared("title") {
        return Some(Match::Title);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Name, NameKind};

    fn book(title: &str, author: &str, year: Option<i32>, isbns: &[&str]) -> Description {
        Description {
            title: title.into(),
            year,
            isbns: isbns.iter().map(|s| s.to_string()).collect(),
            names: vec![Name {
                name: author.into(),
                dates: None,
                role: None,
                kind: NameKind::Personal,
                main: true,
            }],
            ..Description::default()
        }
    }

    #[test]
    fn the_same_book_keyed_twice_matches() {
        let lc = book(
            "Bumi manusia : sebuah roman",
            "Toer, Pramoedya Ananta,",
            Some(1980),
            &[],
        );
        let rekeyed = book("BUMI MANUSIA", "Pramoedya Ananta Toer", Some(1980), &[]);
        assert_eq!(compare(&keys(&lc), &keys(&rekeyed)), Some(Match::Title));
        // Another year is another book (or edition) for the title rule.
        let later = book("Bumi manusia", "Pramoedya Ananta Toer", Some(2005), &[]);
        assert_eq!(compare(&keys(&lc), &keys(&later)), None);
    }

    #[test]
    fn identifiers_decide_before_titles() {
        let a = book(
            "Sejarah Indonesia",
            "Ricklefs, M. C.",
            Some(2008),
            &["9780230546851"],
        );
        let b = book(
            "A history of modern Indonesia",
            "Ricklefs",
            Some(1993),
            &["9780230546851"],
        );
        assert_eq!(compare(&keys(&a), &keys(&b)), Some(Match::Identifier));
        // Same title, author and year but different ISBNs: two editions, not one book.
        let c = book(
            "Sejarah Indonesia",
            "Ricklefs, M. C.",
            Some(2008),
            &["9789794616383"],
        );
        assert_eq!(compare(&keys(&a), &keys(&c)), None);
        // One ISBN-less record falls back to the title.
        let d = book("Sejarah indonesia.", "M. C. Ricklefs", Some(2008), &[]);
        assert_eq!(compare(&keys(&a), &keys(&d)), Some(Match::Title));
    }

    #[test]
    fn short_titles_with_no_author_or_year_make_no_key() {
        let mut poems = book("Poems", "", Some(1990), &[]);
        poems.names.clear();
        assert_eq!(title_key(&poems), None);
        assert_eq!(
            title_key(&book("Laporan tahunan", "Bappenas", None, &[])),
            None
        );
        assert_eq!(
            title_key(&book("The Ramayana", "Valmiki", Some(1990), &[])).as_deref(),
            Some("title:ramayana|valmiki|1990")
        );
        assert_eq!(
            title_key(&book("Café société", "Müller, Jörg", Some(2001), &[])).as_deref(),
            Some("title:cafe societe|jorg muller|2001")
        );
    }
}
