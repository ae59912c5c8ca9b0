//! Which records of the union catalog are one book, kept in the index as records arrive.
//!
//! Every document carries `rec`, a hash of its index key, and `group`: its own `rec` when
//! the record is alone, else a hash (tagged, so it is no record's `rec`) of the group's
//! first record. Groups are [`dedup::cluster_indices`] over connected records, the rule
//! the collection overlap uses too: after each commit, the records put since, those that
//! shared a group with them, and everything connected to those through a key, a group or
//! an assertion are clustered again, and the records whose group changed are put again.
//! The result depends on the records and assertions only, not on the order they came in,
//! so every member's node groups the same way; two exceptions (ARCHITECTURE, Known gaps):
//! records grouped through a key before it passed 64 holders stay grouped until one of
//! them is touched, and a chain past [`COMPONENT_MAX`] records is cut.
//!
//! A search then counts distinct groups ([`Books`]): the same book held by three libraries
//! is one result in the total and in every facet.

use super::{Fields, Grouping, IndexKey, RecordKey, SearchError};
use jalin_protocol::dedup::{self, Keyed, RecordRef, KEY_POSTINGS_MAX};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use tantivy::collector::{Collector, Count, DocSetCollector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::query::TermQuery;
use tantivy::schema::IndexRecordOption;
use tantivy::{DocAddress, DocId, Score, Searcher, SegmentOrdinal, SegmentReader, Term};

/// Records clustered together at most when one arrives: past it the group is cut (and a
/// warning logged), so a degenerate chain of keys cannot make a commit unbounded.
pub(super) const COMPONENT_MAX: usize = 2_000;

fn hash(tag: u8, text: &str) -> u64 {
    let digest = Sha256::new()
        .chain_update([tag])
        .chain_update(text.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// A record's `rec`: the hash of its index key.
pub(super) fn record_hash(index_key: &str) -> u64 {
    hash(b'r', index_key)
}

/// The `group` of a group whose first record has this index key.
fn group_hash(index_key: &str) -> u64 {
    hash(b'g', index_key)
}

/// What was put since the last commit: the records (`rec`) and the groups they left.
#[derive(Default)]
pub(super) struct Touched {
    pub records: HashSet<u64>,
    pub groups: HashSet<u64>,
}

impl Touched {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.groups.is_empty()
    }
}

/// The columns grouping reads, of one segment.
struct Columns {
    rec: Column<u64>,
    group: Column<u64>,
    id: Option<StrColumn>,
    library: Option<StrColumn>,
    keys: Option<StrColumn>,
}

impl Columns {
    fn open(reader: &SegmentReader) -> Result<Columns, SearchError> {
        let fast = reader.fast_fields();
        Ok(Columns {
            rec: fast.u64("rec")?,
            group: fast.u64("group")?,
            id: fast.str("id")?,
            library: fast.str("library")?,
            keys: fast.str("matchkey")?,
        })
    }

    fn rec_group(&self, doc: DocId) -> (u64, u64) {
        let rec = self.rec.first(doc).unwrap_or(0);
        (rec, self.group.first(doc).unwrap_or(rec))
    }

    fn strings(column: Option<&StrColumn>, doc: DocId) -> Vec<String> {
        let Some(column) = column else {
            return Vec::new();
        };
        column
            .term_ords(doc)
            .filter_map(|ord| {
                let mut text = String::new();
                column.ord_to_str(ord, &mut text).ok()?.then_some(text)
            })
            .collect()
    }

    fn node(&self, doc: DocId, own: &str) -> Node {
        let (rec, group) = self.rec_group(doc);
        let index_key = Self::strings(self.id.as_ref(), doc)
            .into_iter()
            .next()
            .unwrap_or_default();
        let library = Self::strings(self.library.as_ref(), doc).into_iter().next();
        let record_id = IndexKey::record_id(&index_key, library.as_deref()).to_string();
        Node {
            rec,
            group,
            key: (
                library.clone().unwrap_or_else(|| own.to_string()),
                record_id,
            ),
            library,
            index_key,
            keys: Self::strings(self.keys.as_ref(), doc),
        }
    }
}

/// One record as grouping sees it.
struct Node {
    rec: u64,
    group: u64,
    /// `(library, record id)`, this library's own key for its records.
    key: RecordKey,
    /// The library as the index names it (None: this library).
    library: Option<String>,
    index_key: String,
    keys: Vec<String>,
}

/// A record whose group changed: put it again with `group`.
pub(super) struct Regroup {
    pub library: Option<String>,
    pub record_id: String,
    pub group: u64,
}

/// The records of `term`, all of them.
fn docs_with(searcher: &Searcher, term: Term) -> Result<Vec<DocAddress>, SearchError> {
    let query = TermQuery::new(term, IndexRecordOption::Basic);
    let mut docs: Vec<DocAddress> = searcher
        .search(&query, &DocSetCollector)?
        .into_iter()
        .collect();
    docs.sort();
    Ok(docs)
}

/// Which records must change group after what `touched` names was committed.
pub(super) fn plan(
    searcher: &Searcher,
    fields: &Fields,
    touched: &Touched,
    grouping: &Grouping,
) -> Result<Vec<Regroup>, SearchError> {
    if touched.is_empty() {
        return Ok(Vec::new());
    }
    let columns: Vec<Columns> = searcher
        .segment_readers()
        .iter()
        .map(Columns::open)
        .collect::<Result<_, _>>()?;
    // The records put and those of the groups they left, found in one pass over the
    // columns (no stored document is read).
    let mut seeds = Vec::new();
    for (ord, reader) in searcher.segment_readers().iter().enumerate() {
        for doc in reader.doc_ids_alive() {
            let (rec, group) = columns[ord].rec_group(doc);
            if touched.records.contains(&rec) || (group != rec && touched.groups.contains(&group)) {
                seeds.push(DocAddress::new(ord as SegmentOrdinal, doc));
            }
        }
    }
    let mut walk = Walk {
        searcher,
        fields,
        columns: &columns,
        grouping,
        postings: HashMap::new(),
        done: HashSet::new(),
    };
    let mut changes = Vec::new();
    for seed in seeds {
        if walk.done.contains(&seed) {
            continue;
        }
        let node = walk.node(seed);
        if node.group == node.rec
            && !touched.groups.contains(&node.group)
            && !grouping.asserted.contains_key(&node.key)
            && walk.alone(&node)?
        {
            // Shares no key with any other record and was alone: stays alone. (Most
            // records of an import, found without walking.)
            continue;
        }
        let component = walk.component(seed)?;
        changes.extend(walk.regroup(&component));
    }
    Ok(changes)
}

struct Walk<'a> {
    searcher: &'a Searcher,
    fields: &'a Fields,
    columns: &'a [Columns],
    grouping: &'a Grouping,
    /// Per key, its records when few enough to group by (None: too many).
    postings: HashMap<String, Option<Vec<DocAddress>>>,
    /// Records already clustered in this plan.
    done: HashSet<DocAddress>,
}

impl Walk<'_> {
    fn node(&self, at: DocAddress) -> Node {
        self.columns[at.segment_ord as usize].node(at.doc_id, &self.grouping.own)
    }

    /// Whether no other record carries any of `node`'s keys (counts include deleted
    /// records, so "alone" is never said wrongly).
    fn alone(&self, node: &Node) -> Result<bool, SearchError> {
        for key in &node.keys {
            let term = Term::from_field_text(self.fields.matchkey, key);
            if self.searcher.doc_freq(&term)? > 1 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The records sharing `key`, or None past [`KEY_POSTINGS_MAX`] (they are not grouped
    /// by it, as [`dedup::cluster_indices`] rules).
    fn posting(&mut self, key: &str) -> Result<Option<Vec<DocAddress>>, SearchError> {
        if let Some(known) = self.postings.get(key) {
            return Ok(known.clone());
        }
        let term = Term::from_field_text(self.fields.matchkey, key);
        let found = if self.searcher.doc_freq(&term)? as usize > KEY_POSTINGS_MAX {
            let query = TermQuery::new(term.clone(), IndexRecordOption::Basic);
            if self.searcher.search(&query, &Count)? > KEY_POSTINGS_MAX {
                None
            } else {
                Some(docs_with(self.searcher, term)?)
            }
        } else {
            Some(docs_with(self.searcher, term)?)
        };
        self.postings.insert(key.to_string(), found.clone());
        Ok(found)
    }

    /// Every record connected to `seed` by a key few enough records share, by the group
    /// it is in now, or by a "same" assertion; at most [`COMPONENT_MAX`].
    fn component(&mut self, seed: DocAddress) -> Result<Vec<Node>, SearchError> {
        let mut queue = VecDeque::from([seed]);
        let mut seen = HashSet::new();
        let mut nodes = Vec::new();
        while let Some(at) = queue.pop_front() {
            if !seen.insert(at) {
                continue;
            }
            if nodes.len() == COMPONENT_MAX {
                tracing::warn!(
                    records = COMPONENT_MAX,
                    "grouping: a chain of shared keys reaches past {COMPONENT_MAX} records; \
                     grouped as far as that"
                );
                break;
            }
            let node = self.node(at);
            if node.group != node.rec {
                let term = Term::from_field_u64(self.fields.group, node.group);
                queue.extend(docs_with(self.searcher, term)?);
            }
            for key in &node.keys {
                if let Some(docs) = self.posting(key)? {
                    queue.extend(docs);
                }
            }
            for (other, same) in self.grouping.asserted.get(&node.key).into_iter().flatten() {
                if *same {
                    let library = (other.0 != self.grouping.own).then_some(other.0.as_str());
                    let term = IndexKey::of(library, &other.1).term(self.fields.id);
                    queue.extend(docs_with(self.searcher, term)?);
                }
            }
            self.done.insert(at);
            nodes.push(node);
        }
        Ok(nodes)
    }

    /// Clusters a component and names the records whose group changed.
    fn regroup(&self, nodes: &[Node]) -> Vec<Regroup> {
        let keyed: Vec<Keyed> = nodes
            .iter()
            .map(|n| Keyed {
                at: RecordRef {
                    library: n.key.0.clone(),
                    record: n.key.1.clone(),
                },
                keys: n.keys.clone(),
            })
            .collect();
        let members: HashSet<&RecordKey> = nodes.iter().map(|n| &n.key).collect();
        let mut asserted = Vec::new();
        for node in nodes {
            for (other, same) in self.grouping.asserted.get(&node.key).into_iter().flatten() {
                if node.key < *other && members.contains(other) {
                    let at = |k: &RecordKey| RecordRef {
                        library: k.0.clone(),
                        record: k.1.clone(),
                    };
                    asserted.push((at(&node.key), at(other), *same));
                }
            }
        }
        // Keys link as over the whole union: those held by 64 records or fewer (counted
        // in the index); the others still keep records apart in `compare`.
        let linking = |key: &str| matches!(self.postings.get(key), Some(Some(_)));
        let first = dedup::cluster_indices_linking(&keyed, &asserted, Some(&linking));
        let mut sizes: BTreeMap<usize, usize> = BTreeMap::new();
        for &f in &first {
            *sizes.entry(f).or_default() += 1;
        }
        nodes
            .iter()
            .zip(&first)
            .filter_map(|(node, &f)| {
                let group = if sizes[&f] == 1 {
                    node.rec
                } else {
                    group_hash(&nodes[f].index_key)
                };
                (group != node.group).then(|| Regroup {
                    library: node.library.clone(),
                    record_id: node.key.1.clone(),
                    group,
                })
            })
            .collect()
    }
}

/// The group (and `rec`) of the record at `at`, for [`Touched`] before it is replaced.
pub(super) fn group_of(searcher: &Searcher, at: DocAddress) -> Result<(u64, u64), SearchError> {
    let fast = searcher.segment_reader(at.segment_ord).fast_fields();
    let rec = fast.u64("rec")?.first(at.doc_id).unwrap_or(0);
    let group = fast.u64("group")?.first(at.doc_id).unwrap_or(rec);
    Ok((rec, group))
}

/// The facets a search counts books for: name and fast column.
pub(super) const FACET_COLUMNS: [(&str, &str); 5] = [
    ("lang", "lang"),
    ("year", "year"),
    ("subject", "facet_subject"),
    ("class", "facet_class"),
    ("library", "library"),
];

/// Counts the books (groups) a query matches, in all and per facet value.
pub(super) struct Books {
    /// This library's key (hex): the library facet's value for its own records.
    pub own: String,
}

/// What [`Books`] counts. Facet values are numbered (`values`), so a value's text is
/// made once per segment and merged once, not once per record.
#[derive(Default)]
pub(super) struct BookCounts {
    /// Records alone (each one book).
    alone: u64,
    /// Groups of several records.
    groups: HashSet<u64>,
    /// The facet values seen: (facet, text), numbered by position.
    values: Vec<(usize, String)>,
    /// Their numbers.
    numbers: HashMap<(usize, String), u32>,
    /// Per value number: records alone with it.
    alone_by: HashMap<u32, u64>,
    /// (value number, group) for grouped records.
    grouped_by: HashSet<(u32, u64)>,
}

impl BookCounts {
    /// How many books.
    pub fn total(&self) -> usize {
        self.alone as usize + self.groups.len()
    }

    fn number(&mut self, facet: usize, text: String) -> u32 {
        let next = self.values.len() as u32;
        *self
            .numbers
            .entry((facet, text.clone()))
            .or_insert_with(|| {
                self.values.push((facet, text));
                next
            })
    }

    /// Per facet, books per value, most first (then by value).
    pub fn facets(&self) -> BTreeMap<&'static str, Vec<(String, u64)>> {
        let mut counts: HashMap<u32, u64> = HashMap::new();
        for (number, n) in &self.alone_by {
            *counts.entry(*number).or_default() += n;
        }
        for (number, _) in &self.grouped_by {
            *counts.entry(*number).or_default() += 1;
        }
        let mut out: BTreeMap<&'static str, Vec<(String, u64)>> = FACET_COLUMNS
            .iter()
            .map(|(name, _)| (*name, Vec::new()))
            .collect();
        for (number, n) in counts {
            let Some((facet, value)) = self.values.get(number as usize) else {
                continue;
            };
            if let Some(list) = out.get_mut(FACET_COLUMNS[*facet].0) {
                list.push((value.clone(), n));
            }
        }
        for list in out.values_mut() {
            list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        }
        out
    }
}

enum FacetColumn {
    Text(StrColumn),
    Number(Column<i64>),
    /// The library facet's column: no value means this library.
    Library(Option<StrColumn>, String),
    Missing,
}

pub(super) struct SegmentBooks {
    rec: Column<u64>,
    group: Column<u64>,
    facets: Vec<FacetColumn>,
    alone: u64,
    groups: HashSet<u64>,
    /// (facet, term ordinal or number, library's own marker) for records alone, counted.
    alone_by: HashMap<(usize, i64), u64>,
    grouped_by: HashSet<(usize, i64, u64)>,
}

impl Collector for Books {
    type Fruit = BookCounts;
    type Child = SegmentBooks;

    fn for_segment(
        &self,
        _segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<SegmentBooks> {
        let fast = reader.fast_fields();
        let mut facets = Vec::new();
        for (name, column) in FACET_COLUMNS {
            facets.push(match name {
                "year" => FacetColumn::Number(fast.i64(column)?),
                "library" => FacetColumn::Library(fast.str(column)?, self.own.clone()),
                _ => fast
                    .str(column)?
                    .map_or(FacetColumn::Missing, FacetColumn::Text),
            });
        }
        Ok(SegmentBooks {
            rec: fast.u64("rec")?,
            group: fast.u64("group")?,
            facets,
            alone: 0,
            groups: HashSet::new(),
            alone_by: HashMap::new(),
            grouped_by: HashSet::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<BookCounts>) -> tantivy::Result<BookCounts> {
        let mut all = BookCounts::default();
        for fruit in fruits {
            all.alone += fruit.alone;
            all.groups.extend(fruit.groups);
            // The fruit's value numbers as the merged counts number them.
            let renumbered: Vec<u32> = fruit
                .values
                .into_iter()
                .map(|(facet, text)| all.number(facet, text))
                .collect();
            for (number, n) in fruit.alone_by {
                *all.alone_by.entry(renumbered[number as usize]).or_default() += n;
            }
            for (number, group) in fruit.grouped_by {
                all.grouped_by.insert((renumbered[number as usize], group));
            }
        }
        Ok(all)
    }
}

/// Stands for "this library" in the library facet's values (no term ordinal is negative).
const OWN: i64 = -1;

impl SegmentCollector for SegmentBooks {
    type Fruit = BookCounts;

    fn collect(&mut self, doc: DocId, _score: Score) {
        let rec = self.rec.first(doc).unwrap_or(0);
        let group = self.group.first(doc).unwrap_or(rec);
        let alone = group == rec;
        if alone {
            self.alone += 1;
        } else {
            self.groups.insert(group);
        }
        for (facet, column) in self.facets.iter().enumerate() {
            let mut count = |value: i64| {
                if alone {
                    *self.alone_by.entry((facet, value)).or_default() += 1;
                } else {
                    self.grouped_by.insert((facet, value, group));
                }
            };
            match column {
                FacetColumn::Text(c) => c.term_ords(doc).for_each(|o| count(o as i64)),
                FacetColumn::Number(c) => c.values_for_doc(doc).for_each(&mut count),
                FacetColumn::Library(c, _) => {
                    let mut any = false;
                    if let Some(c) = c {
                        for o in c.term_ords(doc) {
                            any = true;
                            count(o as i64);
                        }
                    }
                    if !any {
                        count(OWN);
                    }
                }
                FacetColumn::Missing => {}
            }
        }
    }

    fn harvest(self) -> BookCounts {
        let name = |facet: usize, value: i64| -> Option<String> {
            match &self.facets[facet] {
                FacetColumn::Number(_) => Some(value.to_string()),
                FacetColumn::Library(_, own) if value == OWN => Some(own.clone()),
                FacetColumn::Text(c) | FacetColumn::Library(Some(c), _) => {
                    let mut text = String::new();
                    c.ord_to_str(value as u64, &mut text).ok()?.then_some(text)
                }
                _ => None,
            }
        };
        let mut out = BookCounts {
            alone: self.alone,
            groups: self.groups.clone(),
            ..BookCounts::default()
        };
        // Each distinct (facet, ordinal) named once.
        let mut numbered: HashMap<(usize, i64), Option<u32>> = HashMap::new();
        let mut number = |out: &mut BookCounts, facet: usize, value: i64| -> Option<u32> {
            *numbered
                .entry((facet, value))
                .or_insert_with(|| name(facet, value).map(|text| out.number(facet, text)))
        };
        for (&(facet, value), &n) in &self.alone_by {
            if let Some(id) = number(&mut out, facet, value) {
                *out.alone_by.entry(id).or_default() += n;
            }
        }
        for &(facet, value, group) in &self.grouped_by {
            if let Some(id) = number(&mut out, facet, value) {
                out.grouped_by.insert((id, group));
            }
        }
        out
    }
}
