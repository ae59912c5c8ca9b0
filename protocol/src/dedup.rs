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

/// A record of some library, as grouping names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordRef {
    /// The holding library's key (hex).
    pub library: String,
    /// The record's id in its catalog.
    pub record: String,
}

/// A record with its [`keys`], for [`cluster`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyed {
    /// Which record.
    pub at: RecordRef,
    /// Its keys.
    pub keys: Vec<String>,
}

/// Records sharing one key past this many are not grouped by it: a key every record of
/// a kind shares (a series' ISBN typed into each volume, `laporan tahunan` of one year)
/// says nothing about which are the same book.
pub const KEY_POSTINGS_MAX: usize = 64;

/// One group as [`cluster`] builds it: its records, their libraries and their
/// identifier keys (both as small numbers: see [`cluster_indices`]).
#[derive(Default)]
struct Group {
    members: Vec<usize>,
    libraries: Vec<u32>,
    identifiers: Vec<(u8, u32)>,
}

fn identifier_scheme(key: &str) -> Option<u8> {
    match key.split_once(':').map(|(scheme, _)| scheme) {
        Some("isbn") => Some(0),
        Some("lccn") => Some(1),
        Some("oclc") => Some(2),
        _ => None,
    }
}

/// Whether two groups' identifiers keep them apart for a title match: for some scheme
/// both have numbers and none in common (two editions with the same title).
fn editions_apart(a: &Group, b: &Group) -> bool {
    (0..3u8).any(|scheme| {
        let mut x = a
            .identifiers
            .iter()
            .filter(|(s, _)| *s == scheme)
            .peekable();
        let mut y = b
            .identifiers
            .iter()
            .filter(|(s, _)| *s == scheme)
            .peekable();
        if x.peek().is_none() || y.peek().is_none() {
            return false;
        }
        let y: Vec<&(u8, u32)> = y.collect();
        !x.any(|k| y.contains(&k))
    })
}

/// Groups records of different libraries that describe the same book: for each record
/// (in the order given), its group's id, the smallest [`RecordRef`] in the group. The
/// result depends on the set of records and assertions only, never on their order, so
/// every node holding the same catalogs groups them the same.
///
/// Pairs are taken best first (a member's "same" assertion, then a shared identifier,
/// then the title key; ties by the key, then the records), and two groups merge unless
/// that would put two records of one library together, join a pair a member asserted
/// is *not* the same, or (for a title match) join two editions (for some scheme both
/// have numbers, none shared). `asserted` is `(a, b, same)`, the standing assertions.
pub fn cluster(records: &[Keyed], asserted: &[(RecordRef, RecordRef, bool)]) -> Vec<RecordRef> {
    cluster_indices(records, asserted)
        .into_iter()
        .map(|i| records[i].at.clone())
        .collect()
}

/// [`cluster`], each record's group named by the index (into `records`) of the group's
/// smallest record: what a caller counting groups needs, with nothing cloned.
pub fn cluster_indices(records: &[Keyed], asserted: &[(RecordRef, RecordRef, bool)]) -> Vec<usize> {
    cluster_indices_linking(records, asserted, None)
}

/// [`cluster_indices`] over some of the records only, `linking` saying which keys link
/// (those held by [`KEY_POSTINGS_MAX`] records or fewer in the whole union, which the
/// caller counted); every key still counts for [`compare`] (two ISBNs that differ keep
/// two records apart, however common one is). None: the keys' postings among `records`.
pub fn cluster_indices_linking(
    records: &[Keyed],
    asserted: &[(RecordRef, RecordRef, bool)],
    linking: Option<&dyn Fn(&str) -> bool>,
) -> Vec<usize> {
    use std::collections::{BTreeMap, BTreeSet, HashMap};
    // Canonical order: by record, each record once.
    let mut order: Vec<usize> = (0..records.len()).collect();
    order.sort_by(|&a, &b| records[a].at.cmp(&records[b].at));
    order.dedup_by(|a, b| records[*a].at == records[*b].at);
    // A record's rank in that order stands for it from here on (ranks compare as the
    // records do).
    let mut rank_of = vec![usize::MAX; records.len()];
    for (rank, &i) in order.iter().enumerate() {
        rank_of[i] = rank;
    }
    let index: HashMap<&RecordRef, usize> = order
        .iter()
        .enumerate()
        .map(|(rank, &i)| (&records[i].at, rank))
        .collect();
    // Libraries and keys as numbers; keys numbered in their sorted order.
    let mut libraries: HashMap<&str, u32> = HashMap::new();
    let library_of: Vec<u32> = order
        .iter()
        .map(|&i| {
            let next = libraries.len() as u32;
            *libraries
                .entry(records[i].at.library.as_str())
                .or_insert(next)
        })
        .collect();
    let mut postings: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (rank, &i) in order.iter().enumerate() {
        for key in &records[i].keys {
            postings.entry(key.as_str()).or_default().push(rank);
        }
    }
    let key_number: HashMap<&str, u32> = postings
        .keys()
        .enumerate()
        .map(|(n, k)| (*k, n as u32))
        .collect();
    // The edges, best first: (how, key number, a, b), ranks a < b.
    let mut edges: Vec<(Match, u32, usize, usize)> = Vec::new();
    let mut apart: BTreeSet<(usize, usize)> = BTreeSet::new();
    for (a, b, same) in asserted {
        if let (Some(&x), Some(&y)) = (index.get(a), index.get(b)) {
            if x == y {
                continue;
            }
            let pair = (x.min(y), x.max(y));
            if *same {
                edges.push((Match::Asserted, 0, pair.0, pair.1));
            } else {
                apart.insert(pair);
            }
        }
    }
    for (key, list) in &postings {
        let links = match linking {
            Some(linking) => linking(key),
            None => list.len() <= KEY_POSTINGS_MAX,
        };
        if !links {
            continue;
        }
        for (n, &x) in list.iter().enumerate() {
            for &y in &list[n + 1..] {
                if library_of[x] == library_of[y] {
                    continue;
                }
                let (rx, ry) = (&records[order[x]], &records[order[y]]);
                if let Some(how) = compare(&rx.keys, &ry.keys) {
                    edges.push((how, key_number[key], x, y));
                }
            }
        }
    }
    edges.sort_unstable();
    // Union-find over groups, each with what the rules need.
    let mut group_of: Vec<usize> = (0..order.len()).collect();
    let mut groups: HashMap<usize, Group> = HashMap::with_capacity(order.len());
    for (rank, &i) in order.iter().enumerate() {
        let identifiers = records[i]
            .keys
            .iter()
            .filter_map(|k| identifier_scheme(k).map(|s| (s, key_number[k.as_str()])))
            .collect();
        groups.insert(
            rank,
            Group {
                members: vec![rank],
                libraries: vec![library_of[rank]],
                identifiers,
            },
        );
    }
    for (how, _, x, y) in edges {
        let (gx, gy) = (group_of[x], group_of[y]);
        if gx == gy {
            continue;
        }
        let (a, b) = (&groups[&gx], &groups[&gy]);
        if a.libraries.iter().any(|l| b.libraries.contains(l)) {
            continue;
        }
        if how == Match::Title && editions_apart(a, b) {
            continue;
        }
        let kept_apart = !apart.is_empty()
            && a.members.iter().any(|&m| {
                b.members
                    .iter()
                    .any(|&n| apart.contains(&(m.min(n), m.max(n))))
            });
        if kept_apart {
            continue;
        }
        // The smaller group goes into the larger.
        let (into, from) = if a.members.len() >= b.members.len() {
            (gx, gy)
        } else {
            (gy, gx)
        };
        let moved = groups.remove(&from).unwrap_or_default();
        for &m in &moved.members {
            group_of[m] = into;
        }
        if let Some(target) = groups.get_mut(&into) {
            target.members.extend(moved.members);
            target.libraries.extend(moved.libraries);
            target.identifiers.extend(moved.identifiers);
        }
    }
    // Each group's id: its smallest rank, as an index into `records`.
    let smallest: HashMap<usize, usize> = groups
        .iter()
        .map(|(&g, group)| (g, group.members.iter().copied().min().unwrap_or(g)))
        .collect();
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let rank = if rank_of[i] == usize::MAX {
                index[&r.at]
            } else {
                rank_of[i]
            };
            order[smallest[&group_of[rank]]]
        })
        .collect()
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

    fn keyed(library: &str, record: &str, keys: &[&str]) -> Keyed {
        let mut keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        keys.sort();
        Keyed {
            at: RecordRef {
                library: library.into(),
                record: record.into(),
            },
            keys,
        }
    }

    #[test]
    fn clusters_follow_identifiers_then_titles_within_the_rules() {
        let t = "title:laskar pelangi|andrea hirata|2005";
        let records = vec![
            keyed("L1", "a", &["isbn:9789793062792", t]),
            keyed("L2", "b", &["isbn:9789793062792"]),
            keyed("L3", "c", &[t]),
            // Another edition: its own ISBN, the same title key.
            keyed("L4", "d", &["isbn:9786022913031", t]),
            // A second record at L1 of the same book stays apart from L1's first.
            keyed("L1", "e", &["isbn:9789793062792"]),
            // Asserted not the same as b.
            keyed("L5", "f", &["isbn:9789793062792"]),
        ];
        let at = |i: usize| records[i].at.clone();
        let asserted = vec![(at(1), at(5), false)];
        let groups = cluster(&records, &asserted);
        assert_eq!(groups[0], at(0));
        assert_eq!(groups[1], at(0));
        assert_eq!(groups[2], at(0), "the title joins a record with no ISBN");
        assert_eq!(groups[3], at(3), "another edition stays apart");
        assert_eq!(groups[4], at(4), "one library's records are never merged");
        assert_ne!(
            groups[5], groups[1],
            "a member said f and b are not the same"
        );
        assert_eq!(
            groups[5],
            at(4),
            "f goes with L1's other record of that ISBN"
        );
        // A member says d is the same as c after all: that comes first.
        let asserted = vec![(at(1), at(5), false), (at(2), at(3), true)];
        let groups = cluster(&records, &asserted);
        assert_eq!(groups[3], groups[2]);
        assert_ne!(
            groups[3], groups[0],
            "then c's group is d's, not a's two editions"
        );
    }

    proptest::proptest! {
        #[test]
        fn clusters_are_the_same_in_any_order_and_keep_the_rules(
            specs in proptest::collection::vec((0..4usize, proptest::collection::vec(0..6usize, 0..4)), 1..24),
            asserted in proptest::collection::vec((0..24usize, 0..24usize, proptest::bool::ANY), 0..6),
            rotate in 0..24usize,
        ) {
            const KEYS: [&str; 6] = [
                "isbn:1", "isbn:2", "lccn:12345678", "title:a|b|2000", "title:c|d|2001", "oclc:9",
            ];
            let records: Vec<Keyed> = specs
                .iter()
                .enumerate()
                .map(|(n, (library, keys))| {
                    let mut keys: Vec<String> = keys.iter().map(|k| KEYS[*k].to_string()).collect();
                    keys.sort();
                    keys.dedup();
                    Keyed {
                        at: RecordRef { library: format!("L{library}"), record: format!("r{n}") },
                        keys,
                    }
                })
                .collect();
            let asserted: Vec<(RecordRef, RecordRef, bool)> = asserted
                .iter()
                .filter(|(a, b, _)| *a < records.len() && *b < records.len() && a != b)
                .map(|(a, b, same)| (records[*a].at.clone(), records[*b].at.clone(), *same))
                .collect();
            let groups = cluster(&records, &asserted);
            // Any order of the records and the assertions: the same groups.
            let mut shuffled = records.clone();
            shuffled.reverse();
            let len = shuffled.len();
            shuffled.rotate_left(rotate % len);
            let mut backwards = asserted.clone();
            backwards.reverse();
            let again = cluster(&shuffled, &backwards);
            for (record, group) in shuffled.iter().zip(&again) {
                let n = records.iter().position(|r| r.at == record.at).expect("there");
                proptest::prop_assert_eq!(group, &groups[n]);
            }
            // One record per library in a group; pairs said not the same, apart.
            for (i, a) in records.iter().enumerate() {
                for (j, b) in records.iter().enumerate().skip(i + 1) {
                    if groups[i] == groups[j] {
                        proptest::prop_assert_ne!(&a.at.library, &b.at.library);
                    }
                }
            }
            for (a, b, same) in &asserted {
                if !same && !asserted.iter().any(|(x, y, s)| *s && ((x, y) == (a, b) || (x, y) == (b, a))) {
                    let ga = &groups[records.iter().position(|r| r.at == *a).expect("a")];
                    let gb = &groups[records.iter().position(|r| r.at == *b).expect("b")];
                    proptest::prop_assert_ne!(ga, gb);
                }
            }
            // A group's id is one of its records, the smallest.
            for (i, group) in groups.iter().enumerate() {
                proptest::prop_assert!(group <= &records[i].at);
            }
        }
    }
}
