//! The collection overlap counted from the index's groups ([`super::groups`]): the
//! union's titles as a search shows them, read from the index's columns with a few bytes
//! kept a title, where decoding and clustering every record in memory took some 800 bytes
//! a record (BENCHMARKS.md, "The old PC's memory").
//!
//! Two passes over the live documents: the first counts each group's records (a group
//! never holds two records of one library, so that is its holders) and notes its record
//! of the first member in member order, whose title is shown; the second counts each
//! library's titles by how widely they are held, in all and by division, first language
//! and decade. The lists' titles are read from the stored documents of their candidates
//! only, and a third pass names the holders of the titles listed.

use super::{IndexKey, SearchError, SearchIndex};
use jalin_protocol::collection::{
    decade, LibraryOverlap, OverlapReport, Share, TitleHeld, DIVISIONS, LISTED_MAX,
};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use tantivy::columnar::{Column, StrColumn};
use tantivy::schema::Value;
use tantivy::{DocAddress, DocId, Searcher, SegmentReader, TantivyDocument};

/// One title (a group of the index) as the first pass counts it.
struct Title {
    /// Members holding it.
    holders: u32,
    /// The first member (in member order) holding it, and its record: the title shown.
    first_member: u16,
    first: DocAddress,
}

/// The columns the overlap reads, of one segment.
struct Columns<'r> {
    reader: &'r SegmentReader,
    rec: Column<u64>,
    group: Column<u64>,
    library: Option<StrColumn>,
    year: Option<Column<i64>>,
    division: Option<Column<u64>>,
    language: Option<StrColumn>,
    /// Each `library` term's member (None: not a member counted), as met.
    members: HashMap<u64, Option<u16>>,
}

impl<'r> Columns<'r> {
    fn open(reader: &'r SegmentReader) -> Result<Columns<'r>, SearchError> {
        let fast = reader.fast_fields();
        Ok(Columns {
            reader,
            rec: fast.u64("rec")?,
            group: fast.u64("group")?,
            library: fast.str("library")?,
            year: fast.column_opt("year")?,
            division: fast.column_opt("division")?,
            language: fast.str("first_lang")?,
            members: HashMap::new(),
        })
    }

    fn group(&self, doc: DocId) -> u64 {
        let rec = self.rec.first(doc).unwrap_or(0);
        self.group.first(doc).unwrap_or(rec)
    }

    /// The doc's member: `own` for a record with no library, else its library's.
    fn member(&mut self, doc: DocId, own: u16, member_of: &HashMap<&str, u16>) -> Option<u16> {
        let Some(column) = &self.library else {
            return Some(own);
        };
        let Some(ord) = column.term_ords(doc).next() else {
            return Some(own);
        };
        *self.members.entry(ord).or_insert_with(|| {
            let mut text = String::new();
            match column.ord_to_str(ord, &mut text) {
                Ok(true) => member_of.get(text.as_str()).copied(),
                _ => None,
            }
        })
    }

    /// Writes the doc's first language into `out` (empty: none).
    fn language(&self, doc: DocId, out: &mut String) {
        out.clear();
        if let Some(column) = &self.language {
            if let Some(ord) = column.term_ords(doc).next() {
                if !matches!(column.ord_to_str(ord, out), Ok(true)) {
                    out.clear();
                }
            }
        }
    }
}

/// A listed title's sort key and where to read it: its text, its record (library hex,
/// record id), its group.
type Listed = (String, (String, String), u64);

impl SearchIndex {
    /// The collection overlap of `members` (library keys, hex; the first is this
    /// library, whose records the index names with no library), as the index groups
    /// the records committed so far. A library not among `members` is not counted.
    pub(crate) fn overlap(&self, members: &[String]) -> Result<OverlapReport, SearchError> {
        let searcher = self.last_commit()?;
        let member_of: HashMap<&str, u16> = members
            .iter()
            .take(usize::from(u16::MAX))
            .enumerate()
            .map(|(i, m)| (m.as_str(), i as u16))
            .collect();
        let mut segments = searcher
            .segment_readers()
            .iter()
            .map(Columns::open)
            .collect::<Result<Vec<_>, _>>()?;
        let count = members.len().max(1);
        // 1. Each title's holders and first record.
        let mut titles: HashMap<u64, Title> = HashMap::new();
        for (ord, columns) in segments.iter_mut().enumerate() {
            for doc in columns.reader.doc_ids_alive() {
                let Some(member) = columns.member(doc, 0, &member_of) else {
                    continue;
                };
                let title = titles.entry(columns.group(doc)).or_insert(Title {
                    holders: 0,
                    first_member: u16::MAX,
                    first: DocAddress::new(ord as u32, doc),
                });
                title.holders += 1;
                if member < title.first_member {
                    title.first_member = member;
                    title.first = DocAddress::new(ord as u32, doc);
                }
            }
        }
        // 2. Each library's titles, by how widely held.
        let mut per: Vec<Figures> = members.iter().map(|_| Figures::default()).collect();
        let mut language = String::new();
        for columns in &mut segments {
            for doc in columns.reader.doc_ids_alive() {
                let Some(member) = columns.member(doc, 0, &member_of) else {
                    continue;
                };
                let Some(title) = titles.get(&columns.group(doc)) else {
                    continue;
                };
                let holders = title.holders as usize;
                let figures = &mut per[usize::from(member)];
                figures.titles.count(holders, count);
                let division = columns
                    .division
                    .as_ref()
                    .and_then(|c| c.first(doc))
                    .and_then(|d| DIVISIONS.get(d as usize))
                    .map_or("none", |(code, _, _)| *code);
                figures
                    .by_division
                    .entry(division)
                    .or_default()
                    .count(holders, count);
                columns.language(doc, &mut language);
                let language = if language.is_empty() {
                    "none"
                } else {
                    language.as_str()
                };
                match figures.by_language.get_mut(language) {
                    Some(share) => share.count(holders, count),
                    None => {
                        let mut share = Share::default();
                        share.count(holders, count);
                        figures.by_language.insert(language.to_string(), share);
                    }
                }
                let year = columns.year.as_ref().and_then(|c| c.first(doc));
                let decade = year
                    .and_then(|y| i32::try_from(y).ok())
                    .map(|y| y.div_euclid(10) * 10);
                figures
                    .by_decade
                    .entry(decade)
                    .or_default()
                    .count(holders, count);
            }
        }
        let mut report = OverlapReport {
            members: members.to_vec(),
            titles: titles.len() as u64,
            held_once: titles.values().filter(|t| t.holders <= 1).count() as u64,
            held_by_all: titles
                .values()
                .filter(|t| t.holders > 1 && t.holders as usize >= count)
                .count() as u64,
            ..OverlapReport::default()
        };
        // The lists: the first titles held once by title, the most duplicated.
        let once = first_by_title(
            &searcher,
            self,
            members,
            titles
                .iter()
                .filter(|(_, t)| t.holders <= 1)
                .map(|(&g, t)| (g, t)),
        )?;
        let mut duplicated: Vec<(u64, &Title)> = titles
            .iter()
            .filter(|(_, t)| t.holders > 1)
            .map(|(&g, t)| (g, t))
            .collect();
        duplicated.sort_unstable_by_key(|(_, t)| std::cmp::Reverse(t.holders));
        // Every title held as widely as the last one that makes the list competes by title.
        let least = duplicated
            .get(LISTED_MAX.saturating_sub(1))
            .map_or(0, |(_, t)| t.holders);
        let mut most = Vec::new();
        let mut by_holders: BTreeMap<std::cmp::Reverse<u32>, Vec<(u64, &Title)>> = BTreeMap::new();
        for (group, title) in duplicated
            .into_iter()
            .take_while(|(_, t)| t.holders >= least)
        {
            by_holders
                .entry(std::cmp::Reverse(title.holders))
                .or_default()
                .push((group, title));
        }
        for (_, level) in by_holders {
            let left = LISTED_MAX.saturating_sub(most.len());
            if left == 0 {
                break;
            }
            let mut listed = first_by_title(&searcher, self, members, level.into_iter())?;
            listed.truncate(left);
            most.extend(listed);
        }
        let holders = holders_of(&mut segments, &member_of, members, &most);
        let title_held = |(title, (library, _), group): Listed| TitleHeld {
            title,
            libraries: holders
                .get(&group)
                .map(|l| l.iter().cloned().collect())
                .unwrap_or_else(|| vec![library]),
        };
        report.held_once_listed = once.into_iter().map(title_held).collect();
        report.most_duplicated = most.into_iter().map(title_held).collect();
        report.libraries = members
            .iter()
            .zip(per)
            .map(|(library, figures)| LibraryOverlap {
                library: library.clone(),
                name: None,
                titles: figures.titles,
                by_division: figures
                    .by_division
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
                by_language: figures.by_language,
                by_decade: figures
                    .by_decade
                    .into_iter()
                    .map(|(k, v)| (decade(k), v))
                    .collect(),
            })
            .collect();
        Ok(report)
    }
}

/// One library's figures while counting.
#[derive(Default)]
struct Figures {
    titles: Share,
    by_division: BTreeMap<&'static str, Share>,
    by_language: BTreeMap<String, Share>,
    by_decade: BTreeMap<Option<i32>, Share>,
}

/// The first [`LISTED_MAX`] of `titles` by their shown title (then record), read from
/// the stored documents in index order, at most that many kept at a time.
fn first_by_title<'t>(
    searcher: &Searcher,
    index: &SearchIndex,
    members: &[String],
    titles: impl Iterator<Item = (u64, &'t Title)>,
) -> Result<Vec<Listed>, SearchError> {
    let mut at: Vec<(DocAddress, u64, u16)> = titles
        .map(|(group, t)| (t.first, group, t.first_member))
        .collect();
    at.sort_unstable();
    let mut kept: BinaryHeap<Listed> = BinaryHeap::new();
    for (address, group, member) in at {
        let document: TantivyDocument = searcher.doc(address)?;
        let text = |field| {
            document
                .get_first(field)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let library = members
            .get(usize::from(member))
            .cloned()
            .unwrap_or_default();
        let indexed = text(index.fields.id);
        let named = document
            .get_first(index.fields.library)
            .and_then(|v| v.as_str());
        let record_id = IndexKey::record_id(&indexed, named).to_string();
        kept.push((text(index.fields.title), (library, record_id), group));
        if kept.len() > LISTED_MAX {
            kept.pop();
        }
    }
    Ok(kept.into_sorted_vec())
}

/// The holders (library keys, sorted) of the groups `listed` names.
fn holders_of(
    segments: &mut [Columns],
    member_of: &HashMap<&str, u16>,
    members: &[String],
    listed: &[Listed],
) -> HashMap<u64, BTreeSet<String>> {
    let wanted: HashSet<u64> = listed.iter().map(|(_, _, group)| *group).collect();
    let mut holders: HashMap<u64, BTreeSet<String>> = HashMap::new();
    if wanted.is_empty() {
        return holders;
    }
    for columns in segments {
        for doc in columns.reader.doc_ids_alive() {
            let group = columns.group(doc);
            if !wanted.contains(&group) {
                continue;
            }
            if let Some(member) = columns.member(doc, 0, member_of) {
                if let Some(key) = members.get(usize::from(member)) {
                    holders.entry(group).or_default().insert(key.clone());
                }
            }
        }
    }
    holders
}
