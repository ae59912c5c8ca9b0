//! Collection overlap and uniqueness: for each member, how many of its titles it holds
//! alone, with some partners, or with every member; the same by division (the subject
//! table below), by language and by decade of publication; and for the consortium, the
//! titles held once (a loss if that copy goes) and the most duplicated.
//!
//! A title is a group of [`dedup::cluster`]: the same book catalogued by several
//! members counts once. Each library's figures use its own record's class, language and
//! year.

use crate::dedup::{self, Keyed, RecordRef};
use crate::record::Classification;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The divisions: the ten main classes of the Dewey Decimal Classification, which LC
/// classes are mapped to (see [`division`]). Code, Indonesian name, English name.
pub const DIVISIONS: [(&str, &str, &str); 10] = [
    (
        "000",
        "Karya umum, ilmu komputer, informasi",
        "General works, computer science, information",
    ),
    ("100", "Filsafat dan psikologi", "Philosophy and psychology"),
    ("200", "Agama", "Religion"),
    ("300", "Ilmu sosial", "Social sciences"),
    ("400", "Bahasa", "Language"),
    ("500", "Ilmu murni (sains)", "Science"),
    ("600", "Ilmu terapan (teknologi)", "Technology"),
    ("700", "Kesenian dan olahraga", "Arts and recreation"),
    ("800", "Kesusastraan", "Literature"),
    ("900", "Sejarah dan geografi", "History and geography"),
];

/// A record's division: its DDC number's hundreds (082) first; else its LC class (050)
/// mapped to the nearest DDC main class (A general works, B philosophy but BL-BX
/// religion, C-F history, G geography but GV recreation, H-L social sciences and law
/// and education, M-N arts, P language but PN-PZ literature, Q science, R-T technology,
/// U-V military and naval science as social sciences, Z bibliography). None when it has
/// neither.
pub fn division(class: &Classification) -> Option<&'static str> {
    for ddc in &class.ddc {
        let digit = ddc.trim().chars().next().filter(char::is_ascii_digit);
        if let Some(d) = digit {
            return DIVISIONS
                .iter()
                .find(|(code, _, _)| code.starts_with(d))
                .map(|(code, _, _)| *code);
        }
    }
    for lcc in &class.lcc {
        let letters: String = lcc
            .trim()
            .chars()
            .take_while(char::is_ascii_alphabetic)
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let code = match letters.as_str() {
            "" => continue,
            l if l.starts_with('A') || l.starts_with('Z') => "000",
            l if l.starts_with("BL")
                || l.starts_with("BM")
                || l.starts_with("BP")
                || l.starts_with("BQ")
                || l.starts_with("BR")
                || l.starts_with("BS")
                || l.starts_with("BT")
                || l.starts_with("BV")
                || l.starts_with("BX") =>
            {
                "200"
            }
            l if l.starts_with('B') => "100",
            l if l.starts_with("GV") => "700",
            l if l.starts_with(['C', 'D', 'E', 'F', 'G']) => "900",
            l if l.starts_with(['H', 'J', 'K', 'L', 'U', 'V']) => "300",
            l if l.starts_with(['M', 'N']) => "700",
            l if l.len() >= 2 && l.starts_with('P') && ("PN"..="PZ").contains(&&l[..2]) => "800",
            l if l.starts_with('P') => "400",
            l if l.starts_with('Q') => "500",
            l if l.starts_with(['R', 'S', 'T']) => "600",
            _ => continue,
        };
        return Some(code);
    }
    None
}

/// One library's record, as the overlap needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// Which record (its library, its id).
    pub at: RecordRef,
    /// Its [`dedup::keys`].
    pub keys: Vec<String>,
    /// Its title, as shown.
    pub title: String,
    /// Its division ([`division`]).
    pub division: Option<&'static str>,
    /// Its first language (MARC code).
    pub language: Option<String>,
    /// Its year of publication.
    pub year: Option<i32>,
}

/// Titles by how widely they are held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    /// Held by this library alone.
    pub alone: u64,
    /// Held by it and some other members, not all.
    pub some: u64,
    /// Held by every member.
    pub all: u64,
}

impl Share {
    /// Every title counted.
    pub fn total(&self) -> u64 {
        self.alone + self.some + self.all
    }

    /// Counts one title held by `holders` of the `members`.
    pub fn count(&mut self, holders: usize, members: usize) {
        if holders <= 1 {
            self.alone += 1;
        } else if holders >= members {
            self.all += 1;
        } else {
            self.some += 1;
        }
    }
}

/// One member's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibraryOverlap {
    /// The library's key (hex).
    pub library: String,
    /// Its name, where the node knows it (set by the node, not by [`overlap`]).
    #[serde(default)]
    pub name: Option<String>,
    /// Its titles by how widely held.
    pub titles: Share,
    /// The same by division (`none` for records with no class).
    pub by_division: BTreeMap<String, Share>,
    /// By first language (`none` for none).
    pub by_language: BTreeMap<String, Share>,
    /// By decade of publication (`1990s`; `none` for no year).
    pub by_decade: BTreeMap<String, Share>,
}

/// A title and how many members hold it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TitleHeld {
    /// The title (as the first holding's record has it).
    pub title: String,
    /// Members holding it.
    pub libraries: Vec<String>,
}

/// The consortium's overlap.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverlapReport {
    /// The members counted.
    pub members: Vec<String>,
    /// Distinct titles in the union.
    pub titles: u64,
    /// Titles held by one member only.
    pub held_once: u64,
    /// Titles held by every member.
    pub held_by_all: u64,
    /// Some of the titles held once (the first by title, at most [`LISTED_MAX`]).
    pub held_once_listed: Vec<TitleHeld>,
    /// The most duplicated titles, most holders first (at most [`LISTED_MAX`]).
    pub most_duplicated: Vec<TitleHeld>,
    /// Each member's figures, in member order.
    pub libraries: Vec<LibraryOverlap>,
}

/// Titles listed in a report's lists, at most.
pub const LISTED_MAX: usize = 100;

/// The decade a year falls in, as the report names it (`1990s`; `none` for no year).
pub fn decade(year: Option<i32>) -> String {
    match year {
        Some(y) => format!("{}s", y.div_euclid(10) * 10),
        None => "none".into(),
    }
}

fn add(map: &mut BTreeMap<String, Share>, key: String, holders: usize, members: usize) {
    map.entry(key).or_default().count(holders, members);
}

/// The overlap of `held` (every member's records) among `members` (library keys, hex),
/// with the members' standing "same" / "not the same" assertions: every record in
/// memory at once. A node counts from its search index's groups instead (the same rule,
/// kept as records arrive, in a few bytes a title); this is what its tests compare with.
pub fn overlap(
    held: &[Held],
    asserted: &[(RecordRef, RecordRef, bool)],
    members: &[String],
) -> OverlapReport {
    let keyed: Vec<Keyed> = held
        .iter()
        .map(|h| Keyed {
            at: h.at.clone(),
            keys: h.keys.clone(),
        })
        .collect();
    let groups = dedup::cluster_indices(&keyed, asserted);
    drop(keyed);
    // Title (its group's id, an index into `held`) -> its records.
    let mut titles: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, group) in groups.into_iter().enumerate() {
        titles.entry(group).or_default().push(i);
    }
    let count = members.len().max(1);
    let mut report = OverlapReport {
        members: members.to_vec(),
        titles: titles.len() as u64,
        ..OverlapReport::default()
    };
    let mut per: BTreeMap<&str, LibraryOverlap> = members
        .iter()
        .map(|m| {
            (
                m.as_str(),
                LibraryOverlap {
                    library: m.clone(),
                    ..LibraryOverlap::default()
                },
            )
        })
        .collect();
    // The titles held once, and (holders, title) of those held more: the lists are
    // made of the first few only.
    let mut once: Vec<usize> = Vec::new();
    let mut duplicated: Vec<(usize, usize)> = Vec::new();
    for (&title, records) in &titles {
        let libraries: BTreeSet<&str> = records
            .iter()
            .map(|&i| held[i].at.library.as_str())
            .collect();
        let holders = libraries.len();
        if holders <= 1 {
            report.held_once += 1;
            once.push(title);
        } else {
            if holders >= count {
                report.held_by_all += 1;
            }
            duplicated.push((holders, title));
        }
        // Each library counts the title once, by its own record.
        let mut counted = BTreeSet::new();
        for &i in records {
            let h = &held[i];
            if !counted.insert(h.at.library.as_str()) {
                continue;
            }
            let Some(library) = per.get_mut(h.at.library.as_str()) else {
                continue;
            };
            library.titles.count(holders, count);
            add(
                &mut library.by_division,
                h.division.unwrap_or("none").to_string(),
                holders,
                count,
            );
            add(
                &mut library.by_language,
                h.language.clone().unwrap_or_else(|| "none".into()),
                holders,
                count,
            );
            add(&mut library.by_decade, decade(h.year), holders, count);
        }
    }
    let listed = |title: usize| TitleHeld {
        title: held[title].title.clone(),
        libraries: titles[&title]
            .iter()
            .map(|&i| held[i].at.library.clone())
            .collect::<BTreeSet<String>>()
            .into_iter()
            .collect(),
    };
    once.sort_by(|&a, &b| {
        held[a]
            .title
            .cmp(&held[b].title)
            .then_with(|| held[a].at.cmp(&held[b].at))
    });
    report.held_once_listed = once.into_iter().take(LISTED_MAX).map(listed).collect();
    duplicated.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| held[a.1].title.cmp(&held[b.1].title))
            .then_with(|| held[a.1].at.cmp(&held[b.1].at))
    });
    report.most_duplicated = duplicated
        .into_iter()
        .take(LISTED_MAX)
        .map(|(_, title)| listed(title))
        .collect();
    report.libraries = members
        .iter()
        .filter_map(|m| per.remove(m.as_str()))
        .collect();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(ddc: &[&str], lcc: &[&str]) -> Classification {
        Classification {
            ddc: ddc.iter().map(|s| s.to_string()).collect(),
            lcc: lcc.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn divisions_come_from_ddc_first_then_lc() {
        assert_eq!(division(&class(&["959.8"], &["PL5089"])), Some("900"));
        assert_eq!(division(&class(&[], &["PL5089.T8"])), Some("400"));
        assert_eq!(division(&class(&[], &["PR6000"])), Some("800"));
        assert_eq!(division(&class(&[], &["BP173"])), Some("200"));
        assert_eq!(division(&class(&[], &["B105"])), Some("100"));
        assert_eq!(division(&class(&[], &["GV1796"])), Some("700"));
        assert_eq!(division(&class(&[], &["DS646"])), Some("900"));
        assert_eq!(division(&class(&[], &["HC447"])), Some("300"));
        assert_eq!(division(&class(&[], &["S494"])), Some("600"));
        assert_eq!(division(&class(&["  "], &["  "])), None);
        assert_eq!(division(&class(&[], &[])), None);
    }

    #[test]
    fn each_library_counts_its_titles_alone_with_some_or_with_all() {
        let member = |n: usize| format!("L{n}");
        let book = |library: usize, record: &str, isbn: &str, ddc: Option<&'static str>| Held {
            at: RecordRef {
                library: member(library),
                record: record.into(),
            },
            keys: vec![format!("isbn:{isbn}")],
            title: format!("Buku {isbn}"),
            division: ddc,
            language: Some("ind".into()),
            year: Some(1995),
        };
        let held = vec![
            book(0, "a", "1", Some("900")),
            book(1, "b", "1", Some("900")),
            book(2, "c", "1", None),
            book(0, "d", "2", Some("300")),
            book(1, "e", "2", Some("300")),
            book(0, "f", "3", Some("500")),
            book(2, "g", "4", Some("800")),
        ];
        let members: Vec<String> = (0..3).map(member).collect();
        let report = overlap(&held, &[], &members);
        assert_eq!(
            (report.titles, report.held_once, report.held_by_all),
            (4, 2, 1)
        );
        let l0 = &report.libraries[0];
        assert_eq!(
            l0.titles,
            Share {
                alone: 1,
                some: 1,
                all: 1
            }
        );
        assert_eq!(l0.by_division["500"].alone, 1);
        assert_eq!(l0.by_division["900"].all, 1);
        assert_eq!(l0.by_decade["1990s"].total(), 3);
        let l2 = &report.libraries[2];
        assert_eq!(l2.by_division["none"].all, 1);
        assert_eq!(report.most_duplicated[0].libraries.len(), 3);
        assert_eq!(report.held_once_listed.len(), 2);
        // A member says b is not the same as a: title 1 is two titles now.
        let apart = vec![(held[0].at.clone(), held[1].at.clone(), false)];
        let report = overlap(&held, &apart, &members);
        assert_eq!(report.titles, 5);
    }
}
