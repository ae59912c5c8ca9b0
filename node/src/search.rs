//! The search index: tantivy, derived from the store and rebuildable from it.
//!
//! Text is split into words, lowercased and folded to ASCII (so `Ilmu Pengetahuan` and
//! `ilmu pengetahuan`, `Müller` and `Muller`, match), with no stemming: Indonesian
//! affixes (`me-`, `-kan`, `ber-`) are not English suffixes, and an English stemmer
//! breaks Indonesian words.
//!
//! The librarian's query syntax: words (all must match), `"phrases"`, `title:`, `author:`,
//! `subject:`, `publisher:`, `isbn:` (any form of an ISBN), `year:1990`,
//! `year:1990..2000`, `lang:ind`, `class:899`, and `OR`, `NOT`, `-word`.

use jalin_protocol::dedup::{self, Match};
use jalin_protocol::isbn::{parse_isbn, Isbn};
use jalin_protocol::record::Description;
use std::path::Path;
use std::sync::Mutex;
use tantivy::collector::{Count, DocSetCollector, TopDocs};
use tantivy::query::{QueryParser, TermQuery, TermSetQuery};
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, Value, FAST,
    STORED, STRING,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer,
};
use tantivy::{doc, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

mod groups;
mod overlap;

/// What goes wrong in the index.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// tantivy failed.
    #[error("search index: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    /// The indexing thread panicked.
    #[error("search index: the indexing thread failed")]
    Panicked,
    /// The index directory could not be made.
    #[error("search index directory: {0}")]
    Io(#[from] std::io::Error),
    /// The search asks for more than a node answers.
    #[error(transparent)]
    Limit(#[from] SearchLimit),
}

/// Longest search accepted in the librarian's syntax, in characters.
pub const QUERY_CHARS_MAX: usize = 1000;
/// Most words (and operators) in one search in the librarian's syntax: each becomes a
/// clause over five fields.
pub const QUERY_TERMS_MAX: usize = 64;
/// Most results per page.
pub const PER_PAGE_MAX: usize = 100;
/// How deep into a result list a page may reach (page x per page), as search engines
/// cap it: a page is collected by ranking every result before it.
pub const RESULTS_DEPTH_MAX: usize = 10_000;

/// Which of a search's limits a request broke, with what it asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SearchLimit {
    /// The query is too long.
    #[error("the query is {chars} characters long; at most {QUERY_CHARS_MAX} are searched")]
    QueryTooLong {
        /// Its length.
        chars: usize,
    },
    /// The query has too many words.
    #[error("the query has {terms} words; at most {QUERY_TERMS_MAX} are searched")]
    TooManyTerms {
        /// How many.
        terms: usize,
    },
    /// Results per page out of range.
    #[error("per_page is {per_page}; it must be 1 to {PER_PAGE_MAX}")]
    PerPage {
        /// As asked.
        per_page: usize,
    },
    /// A page past the deepest one served.
    #[error(
        "page {page} of {per_page} results reaches past result {RESULTS_DEPTH_MAX}; \
         narrow the search instead"
    )]
    TooDeep {
        /// As asked (from 1).
        page: usize,
        /// As asked.
        per_page: usize,
    },
}

impl SearchLimit {
    /// Checks a search in the librarian's syntax and its page against every limit.
    pub fn check(query: &str, page: usize, per_page: usize) -> Result<(), SearchLimit> {
        let chars = query.chars().count();
        if chars > QUERY_CHARS_MAX {
            return Err(SearchLimit::QueryTooLong { chars });
        }
        let terms = tokens(query).len();
        if terms > QUERY_TERMS_MAX {
            return Err(SearchLimit::TooManyTerms { terms });
        }
        if !(1..=PER_PAGE_MAX).contains(&per_page) {
            return Err(SearchLimit::PerPage { per_page });
        }
        if page.max(1).saturating_mul(per_page) > RESULTS_DEPTH_MAX {
            return Err(SearchLimit::TooDeep { page, per_page });
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    library: Field,
    title: Field,
    author: Field,
    subject: Field,
    publisher: Field,
    all: Field,
    isbn: Field,
    year: Field,
    lang: Field,
    class: Field,
    facet_subject: Field,
    facet_class: Field,
    matchkey: Field,
    holding: Field,
    rec: Field,
    group: Field,
    division: Field,
    first_lang: Field,
}

const TOKENIZER: &str = "jalin";
/// The writer's heap: one indexing thread (tantivy's least for one is 15 MB), counted in
/// the memory budget ([`crate::config::MemoryPlan`]).
const WRITER_HEAP_BYTES: usize = crate::config::INDEX_WRITER_BYTES as usize;

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let text = |stored: bool| {
        let indexing = TextFieldIndexing::default()
            .set_tokenizer(TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions);
        let options = TextOptions::default().set_indexing_options(indexing);
        if stored {
            options.set_stored()
        } else {
            options
        }
    };
    let fields = Fields {
        id: builder.add_text_field("id", STRING | STORED | FAST),
        // Whose record: absent for this library's own, the owner's key (hex) for a replica.
        library: builder.add_text_field("library", STRING | STORED | FAST),
        title: builder.add_text_field("title", text(true)),
        author: builder.add_text_field("author", text(true)),
        subject: builder.add_text_field("subject", text(false)),
        publisher: builder.add_text_field("publisher", text(false)),
        all: builder.add_text_field("other", text(false)),
        isbn: builder.add_text_field("isbn", STRING),
        year: builder.add_i64_field(
            "year",
            NumericOptions::default()
                .set_indexed()
                .set_fast()
                .set_stored(),
        ),
        lang: builder.add_text_field("lang", STRING | FAST),
        class: builder.add_text_field("class", text(false)),
        // Facets are counted with aggregations over these columns: one value per
        // record's first subject heading and per classification's first three characters.
        facet_subject: builder.add_text_field("facet_subject", STRING | FAST),
        facet_class: builder.add_text_field("facet_class", STRING | FAST),
        // The record's identifiers and title key (`jalin_protocol::dedup::keys`): the
        // union catalog groups records of different libraries that share one.
        matchkey: builder.add_text_field("matchkey", STRING | STORED | FAST),
        // The library's call number and items, shown as its holding (JSON).
        holding: builder.add_text_field("holding", STORED),
        // Which book the record is: its own hash, and its group's (`groups`).
        rec: builder.add_u64_field("rec", FAST),
        group: builder.add_u64_field(
            "group",
            NumericOptions::default()
                .set_indexed()
                .set_fast()
                .set_stored(),
        ),
        // What the collection overlap counts a record under (`overlap`): its division
        // (an index into `collection::DIVISIONS`) and its first language.
        division: builder.add_u64_field("division", NumericOptions::default().set_fast()),
        first_lang: builder.add_text_field("first_lang", TextOptions::default().set_fast("raw")),
    };
    (builder.build(), fields)
}

fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(80))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// One copy (item) of a book at a library.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Copy {
    /// Its call number, where the item has its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_number: Option<String>,
    /// Where it is shelved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Its status as the library catalogued it (`available`, `on loan`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

impl Copy {
    /// Whether the copy can be lent: its status is `available` (as Koha's items and
    /// most systems' exports say), or there is none.
    pub fn is_available(&self) -> bool {
        self.status
            .as_deref()
            .is_none_or(|s| s.trim().eq_ignore_ascii_case("available"))
    }
}

/// One library's holding of a book in the union catalog.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LibraryHolding {
    /// The library's key (hex).
    pub library: String,
    /// Its name, where this node knows it.
    #[serde(default)]
    pub library_name: Option<String>,
    /// Whether it is this node's own library.
    #[serde(default)]
    pub own: bool,
    /// The record's id in that library's catalog.
    pub record_id: String,
    /// The record's call number.
    #[serde(default)]
    pub call_number: Option<String>,
    /// Its copies, as far as the record lists them.
    #[serde(default)]
    pub copies: Vec<Copy>,
    /// How it was grouped with the hit: `identifier`, `title` or `asserted` (`None`
    /// for the hit's own record).
    #[serde(default)]
    pub matched: Option<String>,
    /// When this node last received a change to that library's catalog (ms since 1970;
    /// `None` for the own library or when never).
    #[serde(default)]
    pub last_change_ms: Option<u64>,
    /// When that library's node was last seen by this one (ms since 1970).
    #[serde(default)]
    pub last_seen_ms: Option<u64>,
    /// A copy is out on interlibrary loan now (the holding library's shared tally says).
    #[serde(default)]
    pub on_ill: bool,
}

/// The stored form of a record's holding (call number and copies).
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
struct StoredHolding {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    call_number: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    copies: Vec<Copy>,
}

fn stored_holding(d: &Description) -> StoredHolding {
    StoredHolding {
        call_number: d
            .call_number
            .clone()
            .or_else(|| d.holdings.iter().find_map(|h| h.call_number.clone())),
        copies: d
            .holdings
            .iter()
            .map(|h| Copy {
                call_number: h.call_number.clone(),
                location: h.location.clone(),
                status: h.status.clone(),
            })
            .collect(),
    }
}

/// A record of some library: `(library key hex, record id)`.
pub type RecordKey = (String, String);

/// What grouping needs besides the index: whose node this is, and the members'
/// standing "same" / "not the same" assertions.
#[derive(Clone, Debug, Default)]
pub struct Grouping {
    /// This node's own library key (hex).
    pub own: String,
    /// Asserted pairs, both ways round: record -> (other record, same?).
    pub asserted: std::collections::HashMap<RecordKey, Vec<(RecordKey, bool)>>,
    /// The other libraries whose records the index holds (hex keys): the library facet.
    pub libraries: Vec<String>,
}

impl Grouping {
    /// Grouping for `own`, with assertions given as pairs.
    pub fn new(own: String, pairs: impl IntoIterator<Item = (RecordKey, RecordKey, bool)>) -> Self {
        let mut asserted: std::collections::HashMap<RecordKey, Vec<(RecordKey, bool)>> =
            std::collections::HashMap::new();
        for (a, b, same) in pairs {
            asserted
                .entry(a.clone())
                .or_default()
                .push((b.clone(), same));
            asserted.entry(b).or_default().push((a, same));
        }
        Grouping {
            own,
            asserted,
            libraries: Vec::new(),
        }
    }

    fn assertion(&self, a: &RecordKey, b: &RecordKey) -> Option<bool> {
        self.asserted
            .get(a)?
            .iter()
            .find(|(other, _)| other == b)
            .map(|(_, same)| *same)
    }
}

/// Candidates looked at per hit when grouping (records sharing a key with it).
const GROUP_CANDIDATES_MAX: usize = 256;
/// Values shown per facet (the most common).
const FACET_VALUES_MAX: usize = 10;
/// Libraries shown in the library facet.
const LIBRARY_FACET_MAX: usize = 1_000;
/// Documents read at most to fill one page of grouped hits.
const GROUP_SCAN_MAX: usize = 5_000;

/// One search hit.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Hit {
    /// The record id (in its library's catalog).
    pub record_id: String,
    /// Whose record: `None` for this library's own, else the holding library's key (hex).
    pub library: Option<String>,
    /// Title.
    pub title: String,
    /// Names, main entry first.
    pub authors: Vec<String>,
    /// Year of publication.
    pub year: Option<i64>,
    /// Relevance score.
    pub score: f32,
    /// Every library holding the book: the hit's record and one record per other library
    /// grouped with it, in library (key) order.
    #[serde(default)]
    pub holdings: Vec<LibraryHolding>,
    /// Copies over all holdings (a record listing no items counts as one).
    #[serde(default)]
    pub copies: usize,
    /// Of those, the ones available: their status says so, or says nothing (a library
    /// whose catalog carries no circulation status lends what it lists).
    #[serde(default)]
    pub available: usize,
}

impl Hit {
    /// "1 copy at 1 library", "3 copies at 2 libraries".
    pub fn holdings_summary(&self) -> String {
        let libraries = self.holdings.len();
        format!(
            "{} {} at {} {}",
            self.copies,
            if self.copies == 1 { "copy" } else { "copies" },
            libraries,
            if libraries == 1 {
                "library"
            } else {
                "libraries"
            }
        )
    }
}

/// A facet value and how many books (groups) matching have it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct FacetCount {
    /// The value (a language code, a year, a subject, a class).
    pub value: String,
    /// Hits with it.
    pub count: u64,
}

/// The answer to a search.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SearchResults {
    /// The query as typed.
    pub query: String,
    /// The query as the index read it.
    pub parsed: String,
    /// How many books match: records of several libraries grouped as one book count
    /// once (as in every facet).
    pub total: usize,
    /// This page of hits.
    pub hits: Vec<Hit>,
    /// Facets over all matches: language, year, subject, classification.
    pub facets: std::collections::BTreeMap<String, Vec<FacetCount>>,
    /// Parts of the query that were not understood (searched as plain words).
    pub warnings: Vec<String>,
}

/// The search index.
pub struct SearchIndex {
    /// The store sequence number of the last commit.
    committed: std::sync::atomic::AtomicU64,
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    /// What was put since the last commit, to group again at the commit.
    touched: Mutex<groups::Touched>,
    /// The records (`rec`) put since searches last saw the index (the reader's last
    /// reload): with the reader's own entries, the keys the index may hold. Changed only
    /// under the writer's hold.
    unseen: Mutex<std::collections::HashSet<u64>>,
    /// One commit (and its regrouping) at a time.
    committing: Mutex<()>,
}

impl SearchIndex {
    /// Opens the index at `path`, creating it when missing. Returns the index and the
    /// store sequence number it reflects (0 for a new or unreadable index, which is then
    /// recreated empty).
    pub fn open(path: &Path) -> Result<(SearchIndex, u64), SearchError> {
        let (schema, fields) = schema();
        std::fs::create_dir_all(path)?;
        let opened = Index::open_in_dir(path)
            .ok()
            .filter(|index| index.schema() == schema);
        let (index, fresh) = match opened {
            Some(index) => (index, false),
            None => {
                // Missing, damaged or from another schema: start empty; the caller
                // rebuilds it from the store.
                std::fs::remove_dir_all(path)?;
                std::fs::create_dir_all(path)?;
                (Index::create_in_dir(path, schema)?, true)
            }
        };
        index.tokenizers().register(TOKENIZER, analyzer());
        let seq = if fresh {
            0
        } else {
            index
                .load_metas()?
                .payload
                .and_then(|p| p.parse().ok())
                .unwrap_or(0)
        };
        let writer = index.writer(WRITER_HEAP_BYTES)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok((
            SearchIndex {
                committed: std::sync::atomic::AtomicU64::new(seq),
                index,
                reader,
                writer: Mutex::new(writer),
                fields,
                touched: Mutex::new(groups::Touched::default()),
                unseen: Mutex::new(std::collections::HashSet::new()),
                committing: Mutex::new(()),
            },
            seq,
        ))
    }

    /// Replaces a record's entry (or removes it, for `None`: a tombstone).
    pub(crate) fn put(
        &self,
        record_id: &str,
        description: Option<&Description>,
    ) -> Result<(), SearchError> {
        // Delete and add under one hold of the writer, so two puts of one record never
        // interleave into two entries.
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if self.may_hold(IndexKey::Own(record_id))? {
            writer.delete_term(IndexKey::Own(record_id).term(self.fields.id));
        }
        match description {
            Some(d) => self.add_locked(&writer, None, record_id, d, None),
            None => Ok(()),
        }
    }

    /// Adds a record the index does not hold yet (no delete first: deletes cost a term
    /// lookup in every segment at the next commit).
    pub fn add(&self, record_id: &str, d: &Description) -> Result<(), SearchError> {
        let rec = groups::record_hash(record_id);
        self.lock_touched().records.insert(rec);
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.note_unseen(rec);
        self.add_locked(&writer, None, record_id, d, None)
    }

    /// Notes `rec` put (the writer held); says whether it was put already since the
    /// reader's last reload.
    fn note_unseen(&self, rec: u64) -> bool {
        !self
            .unseen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(rec)
    }

    fn lock_touched(&self) -> std::sync::MutexGuard<'_, groups::Touched> {
        self.touched.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes a record about to be put or removed, and the group it was in, so its
    /// group and that one are worked out again at the commit.
    /// Says whether searches see an entry of `key` now.
    fn touch(&self, key: IndexKey<'_>) -> Result<bool, SearchError> {
        let searcher = self.reader.searcher();
        let query = TermQuery::new(key.term(self.fields.id), IndexRecordOption::Basic);
        let found = searcher.search(&query, &DocSetCollector)?;
        let seen = !found.is_empty();
        let mut touched = self.lock_touched();
        touched
            .records
            .insert(groups::record_hash(&key.to_string()));
        for at in found {
            let (rec, group) = groups::group_of(&searcher, at)?;
            if group != rec {
                touched.groups.insert(group);
            }
        }
        Ok(seen)
    }

    /// Whether the index may hold an entry of `key` (the writer held): one searches
    /// see, or one put since. Deletes are asked only then: each is kept in memory until
    /// the commit, and a node taking a catalog puts tens of thousands of new records.
    fn may_hold(&self, key: IndexKey<'_>) -> Result<bool, SearchError> {
        let seen = self.touch(key)?;
        let put = self.note_unseen(groups::record_hash(&key.to_string()));
        Ok(seen || put)
    }

    /// Notes a record whose "same" / "not the same" assertions changed (None: this
    /// library's): it is grouped again at the next commit.
    pub fn touch_record(&self, library: Option<&str>, record_id: &str) -> Result<(), SearchError> {
        self.touch(IndexKey::of(library, record_id)).map(|_| ())
    }

    /// Replaces another library's record's entry (or removes it, for `None`).
    pub(crate) fn put_replica(
        &self,
        library: &str,
        record_id: &str,
        description: Option<&Description>,
    ) -> Result<(), SearchError> {
        let key = IndexKey::of(Some(library), record_id);
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if self.may_hold(key)? {
            writer.delete_term(key.term(self.fields.id));
        }
        match description {
            Some(d) => self.add_locked(&writer, Some(library), record_id, d, None),
            None => Ok(()),
        }
    }

    fn add_locked(
        &self,
        writer: &IndexWriter,
        library: Option<&str>,
        record_id: &str,
        d: &Description,
        group: Option<u64>,
    ) -> Result<(), SearchError> {
        let f = self.fields;
        let mut document = TantivyDocument::default();
        let index_key = IndexKey::of(library, record_id).to_string();
        let rec = groups::record_hash(&index_key);
        document.add_u64(f.rec, rec);
        document.add_u64(f.group, group.unwrap_or(rec));
        document.add_text(f.id, index_key);
        if let Some(library) = library {
            document.add_text(f.library, library);
        }
        let mut title = d.title.clone();
        if let Some(subtitle) = &d.subtitle {
            title.push_str(" : ");
            title.push_str(subtitle);
        }
        document.add_text(f.title, &title);
        for name in &d.names {
            document.add_text(f.author, &name.name);
            // A meeting's or body's place and number are words of its heading.
            if name.kind != jalin_protocol::record::NameKind::Personal {
                if let Some(qualifier) = &name.dates {
                    document.add_text(f.author, qualifier);
                }
            }
        }
        for subject in &d.subjects {
            document.add_text(f.subject, &subject.heading);
            if let Some(first) = subject.heading.split(" -- ").next() {
                document.add_text(f.facet_subject, first.trim());
            }
        }
        if let Some(publisher) = &d.publication.publisher {
            document.add_text(f.publisher, publisher);
        }
        // Text searched by default but with no field of its own (title, names, subjects and
        // publisher have theirs: indexing them twice cost a third of the import).
        let mut all: Vec<&str> = Vec::new();
        all.extend(d.series.iter().map(String::as_str));
        all.extend(d.notes.iter().map(String::as_str));
        all.extend(d.responsibility.as_deref());
        all.extend(d.publication.place.as_deref());
        all.extend(d.edition.as_deref());
        document.add_text(f.all, all.join(" \n "));
        for isbn in d.isbns.iter().chain(&d.invalid_isbns) {
            document.add_text(f.isbn, isbn);
        }
        for issn in &d.issns {
            document.add_text(f.isbn, issn);
        }
        if let Some(year) = d.year {
            document.add_i64(f.year, i64::from(year));
        }
        for lang in &d.languages {
            document.add_text(f.lang, lang);
        }
        if let Some(first) = d.languages.first() {
            document.add_text(f.first_lang, first);
        }
        let division = jalin_protocol::collection::division(&d.classification);
        if let Some(at) = jalin_protocol::collection::DIVISIONS
            .iter()
            .position(|(code, _, _)| Some(*code) == division)
        {
            document.add_u64(f.division, at as u64);
        }
        for class in d.classification.ddc.iter().chain(&d.classification.lcc) {
            document.add_text(f.class, class);
            let top: String = class.chars().take(3).collect();
            if !top.trim().is_empty() {
                document.add_text(f.facet_class, top.trim());
            }
        }
        for key in jalin_protocol::dedup::keys(d) {
            document.add_text(f.matchkey, key);
        }
        document.add_text(
            f.holding,
            serde_json::to_string(&stored_holding(d)).unwrap_or_default(),
        );
        writer.add_document(document)?;
        Ok(())
    }

    /// A searcher over the last commit, from a reader of its own (the searches' reader
    /// is reloaded only once a commit's records are grouped).
    fn last_commit(&self) -> Result<tantivy::Searcher, SearchError> {
        let reader: IndexReader = self
            .index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(reader.searcher())
    }

    /// Makes what was put searchable, groups it with the records of the same book
    /// (`groups`: `fetch` gives a record's description, `None` for the library meaning
    /// this one) and records the store sequence number it reflects.
    pub(crate) fn commit(
        &self,
        seq: u64,
        grouping: &Grouping,
        fetch: &dyn Fn(Option<&str>, &str) -> Option<Description>,
    ) -> Result<(), SearchError> {
        let _one = self.committing.lock().unwrap_or_else(|p| p.into_inner());
        let touched = std::mem::take(&mut *self.lock_touched());
        if touched.is_empty() {
            return self.commit_at(seq, true);
        }
        // Committed first under the sequence number before it: a stop before the groups
        // are written finds these records again from the store at the next start. Read
        // through a reader of its own: searches see the records once they are grouped.
        self.commit_at(self.committed_seq().min(seq), false)?;
        let searcher = self.last_commit()?;
        let changes = groups::plan(&searcher, &self.fields, &touched, grouping)?;
        if !changes.is_empty() {
            tracing::debug!(records = changes.len(), "grouping: records change group");
        }
        for change in changes {
            let Some(d) = fetch(change.library.as_deref(), &change.record_id) else {
                continue;
            };
            let key = IndexKey::of(change.library.as_deref(), &change.record_id);
            let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            writer.delete_term(key.term(self.fields.id));
            self.add_locked(
                &writer,
                change.library.as_deref(),
                &change.record_id,
                &d,
                Some(change.group),
            )?;
        }
        self.commit_at(seq, true)
    }

    /// Commits, with `seq` as the payload; `visible`: searches see it.
    fn commit_at(&self, seq: u64, visible: bool) -> Result<(), SearchError> {
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut prepared = writer.prepare_commit()?;
        prepared.set_payload(&seq.to_string());
        prepared.commit()?;
        self.committed
            .store(seq, std::sync::atomic::Ordering::SeqCst);
        if visible {
            // Still under the writer's hold: nothing is put between the reload and
            // forgetting what searches had not seen.
            self.reader.reload()?;
            self.unseen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
        }
        drop(writer);
        Ok(())
    }

    /// The store sequence number the index reflects (its last commit).
    pub fn committed_seq(&self) -> u64 {
        self.committed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Drops what was put since the last commit.
    pub fn rollback(&self) -> Result<(), SearchError> {
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        writer.rollback()?;
        Ok(())
    }

    /// Removes every record of another library's catalog (uncommitted, as `put`).
    pub(crate) fn forget_library(&self, library: &str) -> Result<(), SearchError> {
        let term = Term::from_field_text(self.fields.library, library);
        let searcher = self.reader.searcher();
        let query = TermQuery::new(term.clone(), IndexRecordOption::Basic);
        let left: Vec<_> = searcher
            .search(&query, &DocSetCollector)?
            .into_iter()
            .map(|at| groups::group_of(&searcher, at))
            .collect::<Result<_, _>>()?;
        self.lock_touched().groups.extend(
            left.into_iter()
                .filter(|(rec, group)| rec != group)
                .map(|(_, group)| group),
        );
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        writer.delete_term(term);
        Ok(())
    }

    /// Removes everything (before a rebuild).
    pub(crate) fn clear(&self) -> Result<(), SearchError> {
        *self.lock_touched() = groups::Touched::default();
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        writer.delete_all_documents()?;
        Ok(())
    }

    /// How many records are searchable.
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Whether nothing is searchable.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn entry(&self, document: &TantivyDocument, grouping: &Grouping) -> Entry {
        let f = self.fields;
        let text = |field: Field| {
            document
                .get_all(field)
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect::<Vec<_>>()
        };
        let library = text(f.library).into_iter().next();
        let id = text(f.id).into_iter().next().unwrap_or_default();
        let (key, own) = match library {
            Some(library) => {
                let record_id = IndexKey::record_id(&id, Some(&library)).to_string();
                ((library, record_id), false)
            }
            None => ((grouping.own.clone(), id.clone()), true),
        };
        let rec = groups::record_hash(&id);
        Entry {
            group: document
                .get_first(f.group)
                .and_then(|v| v.as_u64())
                .unwrap_or(rec),
            rec,
            key,
            own,
            keys: text(f.matchkey),
            holding: text(f.holding)
                .first()
                .and_then(|json| serde_json::from_str(json).ok())
                .unwrap_or_default(),
            title: text(f.title).into_iter().next().unwrap_or_default(),
            authors: text(f.author),
            year: document.get_first(f.year).and_then(|v| v.as_i64()),
        }
    }

    /// The records of other libraries in `leader`'s group (`groups`), in library order,
    /// each with how it matches the leader: an assertion, a shared identifier, else the
    /// title key (directly or through another member).
    fn group(
        &self,
        searcher: &tantivy::Searcher,
        leader: &Entry,
        grouping: &Grouping,
    ) -> Result<Vec<(Entry, Match)>, SearchError> {
        if leader.group == leader.rec {
            return Ok(Vec::new());
        }
        let query = TermQuery::new(
            Term::from_field_u64(self.fields.group, leader.group),
            IndexRecordOption::Basic,
        );
        let mut members = Vec::new();
        for (_, address) in searcher.search(
            &query,
            &TopDocs::with_limit(GROUP_CANDIDATES_MAX).order_by_score(),
        )? {
            let document: TantivyDocument = searcher.doc(address)?;
            let member = self.entry(&document, grouping);
            if member.key == leader.key {
                continue;
            }
            let how = match grouping.assertion(&leader.key, &member.key) {
                Some(true) => Match::Asserted,
                _ => dedup::compare(&leader.keys, &member.keys).unwrap_or(Match::Title),
            };
            members.push((member, how));
        }
        members.sort_by(|a, b| a.0.key.cmp(&b.0.key));
        Ok(members)
    }

    /// The query restricted to one library's records: another library's by its key; this
    /// library's own, which carry no key, as those of no other library.
    fn only_library(
        &self,
        query: Box<dyn tantivy::query::Query>,
        library: &str,
        grouping: &Grouping,
    ) -> Box<dyn tantivy::query::Query> {
        use tantivy::query::{BooleanQuery, Occur};
        let f = self.fields;
        let filter: (Occur, Box<dyn tantivy::query::Query>) = if library == grouping.own {
            (
                Occur::MustNot,
                Box::new(TermSetQuery::new(
                    grouping
                        .libraries
                        .iter()
                        .map(|l| Term::from_field_text(f.library, l)),
                )),
            )
        } else {
            (
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_text(f.library, library),
                    IndexRecordOption::Basic,
                )),
            )
        };
        Box::new(BooleanQuery::new(vec![(Occur::Must, query), filter]))
    }

    /// The books (groups) a query matches, in all and per facet value.
    fn count_books(
        &self,
        searcher: &tantivy::Searcher,
        query: &dyn tantivy::query::Query,
        grouping: &Grouping,
    ) -> Result<groups::BookCounts, SearchError> {
        Ok(searcher.search(
            query,
            &groups::Books {
                own: grouping.own.clone(),
            },
        )?)
    }

    /// One record as a hit, with the records of other libraries grouped with it (its
    /// holdings): `library` None for this library's own. None if the index does not hold it.
    pub fn hit_for(
        &self,
        library: Option<&str>,
        record_id: &str,
        grouping: &Grouping,
    ) -> Result<Option<Hit>, SearchError> {
        let searcher = self.reader.searcher();
        let query = TermQuery::new(
            IndexKey::of(library, record_id).term(self.fields.id),
            IndexRecordOption::Basic,
        );
        let Some((_, address)) = searcher
            .search(&query, &TopDocs::with_limit(1).order_by_score())?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        let document: TantivyDocument = searcher.doc(address)?;
        let entry = self.entry(&document, grouping);
        let group = self.group(&searcher, &entry, grouping)?;
        Ok(Some(entry.into_hit(0.0, group)))
    }

    /// Searches. `page` counts from 1.
    pub fn search(
        &self,
        query: &str,
        page: usize,
        per_page: usize,
        grouping: &Grouping,
    ) -> Result<SearchResults, SearchError> {
        self.search_in(query, page, per_page, grouping, None)
    }

    /// Searches the records of one library (`only`: its key, hex), or of all.
    pub fn search_in(
        &self,
        query: &str,
        page: usize,
        per_page: usize,
        grouping: &Grouping,
        only: Option<&str>,
    ) -> Result<SearchResults, SearchError> {
        SearchLimit::check(query, page, per_page)?;
        let f = self.fields;
        let translated = translate_query(query);
        let mut parser = QueryParser::for_index(
            &self.index,
            vec![f.title, f.author, f.subject, f.publisher, f.all],
        );
        parser.set_conjunction_by_default();
        parser.set_field_boost(f.title, 3.0);
        parser.set_field_boost(f.author, 2.0);
        parser.set_field_boost(f.subject, 1.5);
        let (parsed, errors) = parser.parse_query_lenient(&translated);
        let searcher = self.reader.searcher();
        // Books, not records: every count is of groups (`groups`).
        let all = self.count_books(&searcher, parsed.as_ref(), grouping)?;
        let mut library_facet = all.facets().remove("library").unwrap_or_default();
        let (parsed, books) = match only {
            Some(library) => {
                let parsed = self.only_library(parsed, library, grouping);
                let books = self.count_books(&searcher, parsed.as_ref(), grouping)?;
                (parsed, books)
            }
            None => (parsed, all),
        };
        let total = books.total();
        let records = searcher.search(&parsed, &Count)?;
        let offset = page.saturating_sub(1) * per_page;
        // Hits in score order, each with the records of other libraries in its group; a
        // group already shown is not shown again.
        let mut hits = Vec::with_capacity(per_page);
        let mut shown: std::collections::HashSet<u64> = std::collections::HashSet::new();
        let mut groups = 0usize;
        let mut scanned = 0usize;
        let scan_max = offset.saturating_add(GROUP_SCAN_MAX);
        'pages: while scanned < records.min(scan_max) {
            let want = (offset + per_page).saturating_mul(2).max(20);
            let top = searcher.search(
                &parsed,
                &TopDocs::with_limit(want.min(scan_max - scanned))
                    .and_offset(scanned)
                    .order_by_score(),
            )?;
            if top.is_empty() {
                break;
            }
            for (score, address) in top {
                scanned += 1;
                let document: TantivyDocument = searcher.doc(address)?;
                let entry = self.entry(&document, grouping);
                if !shown.insert(entry.group) {
                    continue;
                }
                groups += 1;
                if groups <= offset {
                    continue;
                }
                let group = self.group(&searcher, &entry, grouping)?;
                hits.push(entry.into_hit(score, group));
                if hits.len() == per_page {
                    break 'pages;
                }
            }
        }
        let mut facets = std::collections::BTreeMap::new();
        for (name, values) in books.facets() {
            if name == "library" {
                continue;
            }
            let top = values
                .into_iter()
                .take(FACET_VALUES_MAX)
                .map(|(value, count)| FacetCount { value, count })
                .collect();
            facets.insert(name.to_string(), top);
        }
        library_facet.truncate(LIBRARY_FACET_MAX);
        let library_facet = library_facet
            .into_iter()
            .map(|(value, count)| FacetCount { value, count })
            .collect();
        facets.insert("library".to_string(), library_facet);
        Ok(SearchResults {
            query: query.to_string(),
            parsed: translated,
            total,
            hits,
            facets,
            warnings: errors.iter().map(|e| e.to_string()).collect(),
        })
    }
}

/// Why a CQL query cannot be run here: an SRU diagnostic
/// (<https://www.loc.gov/standards/sru/diagnostics/diagnosticsList.html>).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsupported {
    /// The diagnostic's number (`info:srw/diagnostic/1/N`).
    pub code: u32,
    /// What in the query it is about.
    pub details: String,
    /// The diagnostic's standard message.
    pub message: &'static str,
}

fn unsupported(code: u32, details: impl Into<String>, message: &'static str) -> Unsupported {
    Unsupported {
        code,
        details: details.into(),
        message,
    }
}

/// What a CQL index searches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CqlIndex {
    /// Words in these text fields.
    Text(&'static [&'static str]),
    /// The publication year.
    Year,
    /// A code, matched whole (language).
    Code(&'static str),
    /// An ISBN or ISSN, in any form.
    Isbn,
}

const EVERY_TEXT: &[&str] = &["title", "author", "subject", "publisher", "other"];

/// The CQL indexes served (`dc.*`, `bath.*`, `cql.serverChoice`), by context set and name.
fn cql_index(index: &str, set: Option<&str>) -> Result<CqlIndex, Unsupported> {
    let (set, name) = match (set, index.split_once('.')) {
        (Some(set), _) => (set.to_string(), index.to_string()),
        (None, Some((set, name))) => (set.to_lowercase(), name.to_string()),
        // An index with no context set is read as Dublin Core's.
        (None, None) => ("dc".to_string(), index.to_string()),
    };
    let set = match set.as_str() {
        "info:srw/cql-context-set/1/cql-v1.2" | "info:srw/cql-context-set/1/cql-v1.1" => "cql",
        "info:srw/cql-context-set/1/dc-v1.1" => "dc",
        "http://zing.z3950.org/cql/bath/2.0/" => "bath",
        other => other,
    };
    let found = match (set, name.to_lowercase().as_str()) {
        ("cql", "serverchoice" | "anywhere" | "keywords") => CqlIndex::Text(EVERY_TEXT),
        ("dc", "anywhere") => CqlIndex::Text(EVERY_TEXT),
        ("dc" | "bath", "title") => CqlIndex::Text(&["title"]),
        ("dc", "creator" | "contributor") => CqlIndex::Text(&["author"]),
        ("bath", "name" | "author" | "personalname" | "corporatename" | "conferencename") => {
            CqlIndex::Text(&["author"])
        }
        ("dc" | "bath", "subject") | ("bath", "topicalsubject" | "geographicname") => {
            CqlIndex::Text(&["subject"])
        }
        ("dc" | "bath", "publisher") => CqlIndex::Text(&["publisher"]),
        ("dc", "description") => CqlIndex::Text(&["other"]),
        ("dc", "date") | ("bath", "date" | "year") => CqlIndex::Year,
        ("dc", "language") | ("bath", "language") => CqlIndex::Code("lang"),
        ("dc", "identifier") | ("bath", "isbn" | "issn" | "standardidentifier") => CqlIndex::Isbn,
        ("cql" | "dc" | "bath", _) => {
            return Err(unsupported(16, index, "Unsupported index"));
        }
        _ => return Err(unsupported(15, set, "Unsupported context set")),
    };
    Ok(found)
}

/// Relation modifiers that change nothing here (relevance ranking is always on; words are
/// always compared without case).
const HARMLESS_MODIFIERS: &[&str] = &[
    "relevant",
    "cql.relevant",
    "ignorecase",
    "cql.ignorecase",
    "word",
    "cql.word",
    "masked",
    "cql.masked",
    "string",
    "cql.string",
];

/// A term's word pieces, each a plain word or a pattern with `*` / `?` masking.
enum Piece {
    Word(String),
    Pattern(String),
}

/// Escapes a literal for tantivy's regular expressions.
fn regex_escape(text: &str) -> String {
    escape_chars(text, "\\.+*?()|[]{}^$#&-~\"<>@")
}

/// The words of text as the index holds them.
fn analyzed(text: &str) -> Vec<String> {
    let mut analyzer = analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut out = Vec::new();
    while stream.advance() {
        out.push(stream.token().text.clone());
    }
    out
}

/// Splits a CQL term into pieces: masked words become patterns (`*` any characters, `?`
/// one, `\` quotes the next), the rest the index's words. `^` anchors are dropped: every
/// field is searched as words.
fn pieces(term: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    for chunk in term.split_whitespace() {
        let chunk = chunk.trim_matches('^');
        let mut masked = false;
        let mut literal = String::new();
        let mut pattern = String::new();
        let mut chars = chunk.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => literal.extend(chars.next()),
                '*' | '?' => {
                    masked = true;
                    pattern.push_str(&regex_escape(&analyzed(&literal).concat()));
                    literal.clear();
                    pattern.push_str(if c == '*' { ".*" } else { "." });
                }
                c => literal.push(c),
            }
        }
        if masked {
            pattern.push_str(&regex_escape(&analyzed(&literal).concat()));
            out.push(Piece::Pattern(pattern));
        } else {
            out.extend(analyzed(&literal).into_iter().map(Piece::Word));
        }
    }
    out
}

impl SearchIndex {
    fn text_field(&self, name: &str) -> Field {
        let f = self.fields;
        match name {
            "title" => f.title,
            "author" => f.author,
            "subject" => f.subject,
            "publisher" => f.publisher,
            "class" => f.class,
            _ => f.all,
        }
    }

    /// The words of one CQL term in one field, as a phrase (`adj`), all of them (`all`) or
    /// any (`any`).
    fn words_query(&self, field: Field, term: &str, how: &str) -> Box<dyn tantivy::query::Query> {
        use tantivy::query::{
            BooleanQuery, EmptyQuery, Occur, PhraseQuery, RegexPhraseQuery, RegexQuery,
        };
        let pieces = pieces(term);
        let single = |piece: &Piece| -> Box<dyn tantivy::query::Query> {
            match piece {
                Piece::Word(word) => Box::new(TermQuery::new(
                    Term::from_field_text(field, word),
                    IndexRecordOption::WithFreqs,
                )),
                Piece::Pattern(pattern) => match RegexQuery::from_pattern(pattern, field) {
                    Ok(query) => Box::new(query),
                    Err(_) => Box::new(EmptyQuery),
                },
            }
        };
        match (pieces.len(), how) {
            (0, _) => Box::new(EmptyQuery),
            (1, _) => single(&pieces[0]),
            (_, "adj") => {
                if pieces.iter().all(|p| matches!(p, Piece::Word(_))) {
                    Box::new(PhraseQuery::new(
                        pieces
                            .iter()
                            .filter_map(|p| match p {
                                Piece::Word(w) => Some(Term::from_field_text(field, w)),
                                Piece::Pattern(_) => None,
                            })
                            .collect(),
                    ))
                } else {
                    Box::new(RegexPhraseQuery::new(
                        field,
                        pieces
                            .iter()
                            .map(|p| match p {
                                Piece::Word(w) => regex_escape(w),
                                Piece::Pattern(pattern) => pattern.clone(),
                            })
                            .collect(),
                    ))
                }
            }
            (_, how) => {
                let occur = if how == "any" {
                    Occur::Should
                } else {
                    Occur::Must
                };
                Box::new(BooleanQuery::new(
                    pieces.iter().map(|p| (occur, single(p))).collect(),
                ))
            }
        }
    }

    /// The index query a CQL search tree means.
    pub fn cql_query(
        &self,
        node: &jalin_protocol::cql::Node,
    ) -> Result<Box<dyn tantivy::query::Query>, Unsupported> {
        use jalin_protocol::cql::Node;
        use tantivy::query::{AllQuery, BooleanQuery, Occur};
        match node {
            Node::Triple(triple) => {
                // A chain `a or b or c ...` is one left-deep tree: walk its spine in a
                // loop into one flat BooleanQuery, so neither this nor tantivy's scorer
                // recurses per term.
                let boolean = triple.boolean.to_lowercase();
                let mut rights = Vec::new();
                let mut node = node;
                while let Node::Triple(triple) = node {
                    if let Some(modifier) = triple.modifiers.first() {
                        return Err(unsupported(
                            46,
                            &modifier.name,
                            "Unsupported boolean modifier",
                        ));
                    }
                    if triple.boolean.to_lowercase() != boolean {
                        break;
                    }
                    rights.push(&triple.right);
                    node = &triple.left;
                }
                let first = self.cql_query(node)?;
                let (first_occur, rest_occur) = match boolean.as_str() {
                    "and" => (Occur::Must, Occur::Must),
                    "or" => (Occur::Should, Occur::Should),
                    "not" => (Occur::Must, Occur::MustNot),
                    other => return Err(unsupported(37, other, "Unsupported boolean operator")),
                };
                let mut clauses = vec![(first_occur, first)];
                for right in rights.into_iter().rev() {
                    clauses.push((rest_occur, self.cql_query(right)?));
                }
                Ok(Box::new(BooleanQuery::new(clauses)))
            }
            Node::Clause(clause) => {
                let index = cql_index(&clause.index, clause.index_set.as_deref())?;
                if let Some(modifier) = clause
                    .relation
                    .modifiers
                    .iter()
                    .find(|m| !HARMLESS_MODIFIERS.contains(&m.name.to_lowercase().as_str()))
                {
                    return Err(unsupported(
                        20,
                        &modifier.name,
                        "Unsupported relation modifier",
                    ));
                }
                // `cql.within` is how a word relation is written (only all, any and adj
                // stand alone).
                let relation = clause.relation.value.to_lowercase();
                let relation = relation
                    .strip_prefix("cql.")
                    .unwrap_or(&relation)
                    .to_string();
                if clause.terms.iter().all(|t| t.trim().is_empty()) {
                    return Err(unsupported(27, &clause.index, "Empty term unsupported"));
                }
                let mut each = Vec::new();
                // YAZ's several unquoted terms: each must match.
                for term in &clause.terms {
                    each.push((Occur::Must, self.clause_query(index, &relation, term)?));
                }
                if relation == "<>" {
                    return Ok(Box::new(BooleanQuery::new(vec![
                        (Occur::Must, Box::new(AllQuery)),
                        (Occur::MustNot, Box::new(BooleanQuery::new(each))),
                    ])));
                }
                Ok(if each.len() == 1 {
                    each.remove(0).1
                } else {
                    Box::new(BooleanQuery::new(each))
                })
            }
        }
    }

    fn clause_query(
        &self,
        index: CqlIndex,
        relation: &str,
        term: &str,
    ) -> Result<Box<dyn tantivy::query::Query>, Unsupported> {
        use std::ops::Bound;
        use tantivy::query::{BooleanQuery, Occur, RangeQuery};
        let f = self.fields;
        match index {
            CqlIndex::Text(names) => {
                let how = match relation {
                    "=" | "adj" | "==" | "<>" => "adj",
                    "all" => "all",
                    "any" => "any",
                    other => return Err(unsupported(19, other, "Unsupported relation")),
                };
                let mut per_field: Vec<(Occur, Box<dyn tantivy::query::Query>)> = names
                    .iter()
                    .map(|name| {
                        (
                            Occur::Should,
                            self.words_query(self.text_field(name), term, how),
                        )
                    })
                    .collect();
                Ok(if per_field.len() == 1 {
                    per_field.remove(0).1
                } else {
                    Box::new(BooleanQuery::new(per_field))
                })
            }
            CqlIndex::Year => {
                let years: Vec<i64> = term
                    .split_whitespace()
                    .map(|y| y.trim_end_matches('.').parse::<i64>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| {
                        unsupported(36, term, "Term in invalid format for index or relation")
                    })?;
                let at = |y: i64| Term::from_field_i64(f.year, y);
                let (lo, hi) = match (relation, years.as_slice()) {
                    ("=" | "==" | "<>" | "adj", [y]) => {
                        (Bound::Included(at(*y)), Bound::Included(at(*y)))
                    }
                    ("<", [y]) => (Bound::Unbounded, Bound::Excluded(at(*y))),
                    ("<=", [y]) => (Bound::Unbounded, Bound::Included(at(*y))),
                    (">", [y]) => (Bound::Excluded(at(*y)), Bound::Unbounded),
                    (">=", [y]) => (Bound::Included(at(*y)), Bound::Unbounded),
                    ("within", [a, b]) => (Bound::Included(at(*a)), Bound::Included(at(*b))),
                    ("=" | "==" | "<" | "<=" | ">" | ">=" | "within" | "<>" | "adj", _) => {
                        return Err(unsupported(
                            36,
                            term,
                            "Term in invalid format for index or relation",
                        ))
                    }
                    (other, _) => return Err(unsupported(19, other, "Unsupported relation")),
                };
                Ok(Box::new(RangeQuery::new(lo, hi)))
            }
            CqlIndex::Code(_) | CqlIndex::Isbn => {
                if !matches!(relation, "=" | "==" | "<>" | "any" | "adj") {
                    return Err(unsupported(19, relation, "Unsupported relation"));
                }
                let (field, value) = match index {
                    CqlIndex::Isbn => (
                        f.isbn,
                        isbn_term(term).unwrap_or_else(|| term.trim().to_uppercase()),
                    ),
                    _ => (f.lang, term.trim().to_lowercase()),
                };
                Ok(Box::new(TermQuery::new(
                    Term::from_field_text(field, &value),
                    IndexRecordOption::Basic,
                )))
            }
        }
    }

    /// Runs a query: how many records match, and the `limit` from `offset` on in score
    /// order, each as (library, record id) (library `None` for this library's own). Every
    /// library's record counts on its own: SRU clients count and fetch records.
    #[allow(clippy::type_complexity)]
    pub fn search_records(
        &self,
        query: &dyn tantivy::query::Query,
        offset: usize,
        limit: usize,
    ) -> Result<(usize, Vec<(Option<String>, String)>), SearchError> {
        let f = self.fields;
        let searcher = self.reader.searcher();
        // Counted first: an offset past the end (a client's startRecord) is answered
        // without a collector sized by it.
        let total = searcher.search(query, &Count)?;
        if offset >= total || limit == 0 {
            return Ok((total, Vec::new()));
        }
        let top = searcher.search(
            query,
            &TopDocs::with_limit(limit)
                .and_offset(offset)
                .order_by_score(),
        )?;
        let mut out = Vec::with_capacity(top.len());
        for (_, address) in top.into_iter().take(limit) {
            let document: TantivyDocument = searcher.doc(address)?;
            let text = |field: Field| {
                document
                    .get_first(field)
                    .and_then(|v| v.as_str().map(str::to_string))
            };
            let id = text(f.id).unwrap_or_default();
            match text(f.library) {
                Some(library) => {
                    let record_id = IndexKey::record_id(&id, Some(&library)).to_string();
                    out.push((Some(library), record_id));
                }
                None => out.push((None, id)),
            }
        }
        Ok((total, out))
    }

    /// SRU scan: up to `count` words of a CQL index from `from` on (in index order), each
    /// with how many records hold it.
    pub fn scan(
        &self,
        index: &str,
        index_set: Option<&str>,
        from: &str,
        count: usize,
    ) -> Result<Vec<(String, u64)>, ScanError> {
        let field = match cql_index(index, index_set).map_err(ScanError::Unsupported)? {
            CqlIndex::Text(names) => self.text_field(names[0]),
            CqlIndex::Code(_) => self.fields.lang,
            CqlIndex::Isbn => self.fields.isbn,
            CqlIndex::Year => {
                return Err(ScanError::Unsupported(unsupported(
                    16,
                    index,
                    "Unsupported index",
                )))
            }
        };
        let start = analyzed(from).concat();
        let searcher = self.reader.searcher();
        let mut words = std::collections::BTreeSet::new();
        for segment in searcher.segment_readers() {
            let inverted = segment.inverted_index(field).map_err(SearchError::from)?;
            let mut stream = inverted
                .terms()
                .range()
                .ge(start.as_bytes())
                .into_stream()
                .map_err(SearchError::from)?;
            let mut taken = 0;
            while taken < count && stream.advance() {
                if let Ok(word) = std::str::from_utf8(stream.key()) {
                    words.insert(word.to_string());
                    taken += 1;
                }
            }
        }
        let mut out = Vec::new();
        for word in words.into_iter().take(count) {
            let query = TermQuery::new(
                Term::from_field_text(field, &word),
                IndexRecordOption::Basic,
            );
            let n = searcher.search(&query, &Count).map_err(SearchError::from)?;
            if n > 0 {
                out.push((word, n as u64));
            }
        }
        Ok(out)
    }
}

/// Why a scan gave nothing.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The index cannot be scanned.
    #[error("{}: {}", .0.message, .0.details)]
    Unsupported(Unsupported),
    /// The index failed.
    #[error(transparent)]
    Search(#[from] SearchError),
}

/// A record as read back from the index, for grouping.
struct Entry {
    /// Its `rec` and `group` (`groups`): equal when it is alone.
    rec: u64,
    group: u64,
    key: RecordKey,
    own: bool,
    keys: Vec<String>,
    holding: StoredHolding,
    title: String,
    authors: Vec<String>,
    year: Option<i64>,
}

impl Entry {
    fn holding(&self, matched: Option<Match>) -> LibraryHolding {
        LibraryHolding {
            library: self.key.0.clone(),
            library_name: None,
            own: self.own,
            record_id: self.key.1.clone(),
            call_number: self.holding.call_number.clone(),
            copies: self.holding.copies.clone(),
            matched: matched.map(|m| m.as_str().to_string()),
            last_change_ms: None,
            last_seen_ms: None,
            on_ill: false,
        }
    }

    fn into_hit(self, score: f32, group: Vec<(Entry, Match)>) -> Hit {
        let mut holdings = vec![self.holding(None)];
        holdings.extend(group.iter().map(|(e, m)| e.holding(Some(*m))));
        // In library order, whichever record led: the same list on every node.
        holdings.sort_by(|a, b| a.library.cmp(&b.library));
        let copies = holdings.iter().map(|h| h.copies.len().max(1)).sum();
        let available = holdings
            .iter()
            .map(|h| {
                if h.copies.is_empty() {
                    1
                } else {
                    h.copies.iter().filter(|c| c.is_available()).count()
                }
            })
            .sum();
        Hit {
            record_id: self.key.1,
            library: (!self.own).then_some(self.key.0),
            title: self.title,
            authors: self.authors,
            year: self.year,
            score,
            holdings,
            copies,
            available,
        }
    }
}

/// A record's id in the index, in one place: its own id for this library's records,
/// `library/record id` (the library's key in hex) for another library's, whose record
/// ids may be the same as this library's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IndexKey<'a> {
    Own(&'a str),
    Replica {
        library: &'a str,
        record_id: &'a str,
    },
}

impl<'a> IndexKey<'a> {
    /// The key of `record_id` of `library` (None: this library).
    fn of(library: Option<&'a str>, record_id: &'a str) -> IndexKey<'a> {
        match library {
            Some(library) => IndexKey::Replica { library, record_id },
            None => IndexKey::Own(record_id),
        }
    }

    /// The record id within an indexed id, given the library the document names.
    fn record_id(indexed: &'a str, library: Option<&str>) -> &'a str {
        library
            .and_then(|library| indexed.strip_prefix(library))
            .and_then(|rest| rest.strip_prefix('/'))
            .unwrap_or(indexed)
    }

    /// The term of the `id` field.
    fn term(self, field: Field) -> Term {
        Term::from_field_text(field, &self.to_string())
    }
}

impl std::fmt::Display for IndexKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IndexKey::Own(record_id) => f.write_str(record_id),
            IndexKey::Replica { library, record_id } => write!(f, "{library}/{record_id}"),
        }
    }
}

/// Splits a query into tokens, keeping `"quoted phrases"` (with any `field:` before them)
/// whole.
fn tokens(query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in query.chars() {
        match c {
            '"' => {
                current.push(c);
                quoted = !quoted;
            }
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        if quoted {
            current.push('"');
        }
        out.push(current);
    }
    out
}

/// Field names a librarian types, and the index field each means.
fn field_name(name: &str) -> Option<&'static str> {
    Some(match name.to_lowercase().as_str() {
        "title" | "judul" | "ti" => "title",
        "author" | "pengarang" | "au" | "creator" => "author",
        "subject" | "subjek" | "subyek" | "su" => "subject",
        "publisher" | "penerbit" => "publisher",
        "isbn" | "issn" => "isbn",
        "year" | "tahun" => "year",
        "lang" | "language" | "bahasa" => "lang",
        "class" | "ddc" | "klasifikasi" => "class",
        _ => return None,
    })
}

/// Characters the index's query parser treats as syntax, escaped in plain words.
fn escape_word(word: &str) -> String {
    escape_chars(word, "+^`:{}[]()~!\\*<>=/'")
}

/// `text` with a backslash before each of `special`.
fn escape_chars(text: &str, special: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if special.contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn isbn_term(text: &str) -> Option<String> {
    match parse_isbn(text)? {
        Isbn::Valid(isbn) | Isbn::Invalid(isbn) => Some(isbn),
    }
}

/// Whether a bare word is an ISBN typed or scanned: digits (an X last), maybe hyphens.
fn looks_like_isbn(word: &str) -> bool {
    let significant = word
        .chars()
        .filter(|c| c.is_ascii_digit() || matches!(c, 'X' | 'x'))
        .count();
    significant >= 10
        && word.starts_with(|c: char| c.is_ascii_digit())
        && word
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | 'X' | 'x'))
}

/// Translates the librarian's syntax into the index's query language.
pub fn translate_query(query: &str) -> String {
    let mut out = Vec::new();
    for token in tokens(query) {
        if matches!(token.as_str(), "AND" | "OR" | "NOT") {
            out.push(token);
            continue;
        }
        let (negated, body) = match token.strip_prefix('-') {
            Some(rest) if !rest.is_empty() => ("-", rest.to_string()),
            _ => ("", token.clone()),
        };
        let translated = match body
            .split_once(':')
            .and_then(|(name, value)| Some((field_name(name)?, value)))
        {
            Some(("isbn", value)) => format!(
                "isbn:{}",
                isbn_term(value).unwrap_or_else(|| escape_word(value))
            ),
            Some(("year", value)) => match value.split_once("..") {
                Some((from, to)) => {
                    let bound = |s: &str, default: &str| {
                        if s.trim().is_empty() {
                            default.to_string()
                        } else {
                            escape_word(s.trim())
                        }
                    };
                    format!("year:[{} TO {}]", bound(from, "0"), bound(to, "9999"))
                }
                None => format!("year:{}", escape_word(value)),
            },
            Some((field, value)) if value.starts_with('"') => format!("{field}:{value}"),
            Some((field, value)) => format!("{field}:{}", escape_word(value)),
            None if body.starts_with('"') => body.clone(),
            // A bare ISBN, typed or scanned, in any form.
            None if looks_like_isbn(&body) => match isbn_term(&body) {
                Some(isbn) => format!("isbn:{isbn}"),
                None => escape_word(&body),
            },
            None => escape_word(&body),
        };
        out.push(format!("{negated}{translated}"));
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_keys_give_back_their_record_ids() {
        let library = "ab".repeat(32);
        for record_id in ["00281477", "a/b", "/", ""] {
            let replica = IndexKey::of(Some(&library), record_id).to_string();
            assert_eq!(replica, format!("{library}/{record_id}"));
            assert_eq!(IndexKey::record_id(&replica, Some(&library)), record_id);
            // An own record's id is the key itself, slashes and all.
            let own = IndexKey::of(None, record_id).to_string();
            assert_eq!(own, record_id);
            assert_eq!(IndexKey::record_id(&own, None), record_id);
        }
    }

    #[test]
    fn translation_of_the_librarian_syntax() {
        assert_eq!(translate_query("sejarah indonesia"), "sejarah indonesia");
        assert_eq!(translate_query("isbn:0-19-853453-1"), "isbn:9780198534532");
        assert_eq!(translate_query("978-0-19-853453-2"), "isbn:9780198534532");
        assert_eq!(translate_query("080442957X"), "isbn:9780804429573");
        assert_eq!(
            translate_query("year:1990..2000 lang:ind"),
            "year:[1990 TO 2000] lang:ind"
        );
        assert_eq!(
            translate_query("judul:\"bumi manusia\""),
            "title:\"bumi manusia\""
        );
        assert_eq!(translate_query("-novel title:(x)"), "-novel title:\\(x\\)");
        assert_eq!(translate_query("\"unclosed phrase"), "\"unclosed phrase\"");
    }
}

/// Grouping as records arrive agrees with clustering everything at once, whatever the
/// order of puts, removals, commits and assertions.
#[cfg(test)]
mod grouping_tests {
    use super::*;
    use jalin_protocol::collection::{division, overlap, Held};
    use jalin_protocol::dedup::{cluster, Keyed, RecordRef};
    use jalin_protocol::record::{Name, NameKind};
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    const LIBRARIES: [&str; 3] = ["aa", "bb", "cc"];
    const TITLES: [&str; 3] = ["Laskar pelangi", "Bumi manusia", "Ronggeng dukuh paruk"];
    const AUTHORS: [&str; 2] = ["Hirata, Andrea", "Toer, Pramoedya Ananta"];
    const ISBNS: [&str; 2] = ["9789793062792", "9789799731234"];

    /// A record's variant: title, author, year, ISBN (index into ISBNS, or none).
    fn description(variant: (usize, usize, usize, Option<usize>)) -> Description {
        let (title, author, year, isbn) = variant;
        Description {
            title: TITLES[title].to_string(),
            names: vec![Name {
                name: AUTHORS[author].to_string(),
                kind: NameKind::Personal,
                main: true,
                ..Name::default()
            }],
            year: Some(2005 + year as i32),
            isbns: isbn.map(|i| ISBNS[i].to_string()).into_iter().collect(),
            // Counted by the collection overlap, not by grouping.
            languages: vec![["ind", "eng"][author].to_string()],
            classification: jalin_protocol::record::Classification {
                ddc: [
                    vec!["899.221".to_string()],
                    vec![],
                    vec!["959.8".to_string()],
                ][title]
                    .clone(),
                lcc: vec!["PL5089".to_string()],
            },
            ..Description::default()
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Put(usize, usize, (usize, usize, usize, Option<usize>)),
        Remove(usize, usize),
        Assert(usize, usize, usize, usize, bool),
        Commit,
    }

    fn op() -> impl Strategy<Value = Op> {
        let variant = (
            0..3usize,
            0..2usize,
            0..2usize,
            proptest::option::of(0..2usize),
        );
        prop_oneof![
            6 => (0..3usize, 0..4usize, variant).prop_map(|(l, r, v)| Op::Put(l, r, v)),
            1 => (0..3usize, 0..4usize).prop_map(|(l, r)| Op::Remove(l, r)),
            1 => (0..3usize, 0..4usize, 0..3usize, 0..4usize, any::<bool>())
                .prop_map(|(a, r, b, s, same)| Op::Assert(a, r, b, s, same)),
            2 => Just(Op::Commit),
        ]
    }

    fn key(library: usize, record: usize) -> RecordKey {
        (LIBRARIES[library].to_string(), format!("r{record}"))
    }

    /// Runs the operations on a new index; returns the groups it keeps, as sets of
    /// records, and those clustering every live record at once gives. Checks the
    /// collection overlap counted from the index against the one counted from every
    /// record at once.
    fn run(ops: &[Op]) -> (BTreeSet<BTreeSet<RecordKey>>, BTreeSet<BTreeSet<RecordKey>>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let (index, _) = SearchIndex::open(dir.path()).expect("opens");
        let own = LIBRARIES[0].to_string();
        let mut live: BTreeMap<RecordKey, Description> = BTreeMap::new();
        let mut assertions: BTreeMap<(RecordKey, RecordKey), bool> = BTreeMap::new();
        let library_of = |l: usize| (l != 0).then_some(LIBRARIES[l]);
        let mut seq = 0;
        let mut commit =
            |index: &SearchIndex,
             live: &BTreeMap<RecordKey, Description>,
             assertions: &BTreeMap<(RecordKey, RecordKey), bool>| {
                seq += 1;
                let grouping = Grouping::new(
                    own.clone(),
                    assertions
                        .iter()
                        .map(|((a, b), s)| (a.clone(), b.clone(), *s)),
                );
                let fetch = |library: Option<&str>, record_id: &str| {
                    let k = (library.unwrap_or(&own).to_string(), record_id.to_string());
                    live.get(&k).cloned()
                };
                index.commit(seq, &grouping, &fetch).expect("commits");
            };
        for op in ops {
            match op {
                Op::Put(l, r, v) => {
                    let d = description(*v);
                    let k = key(*l, *r);
                    match library_of(*l) {
                        None => index.put(&k.1, Some(&d)),
                        Some(library) => index.put_replica(library, &k.1, Some(&d)),
                    }
                    .expect("puts");
                    live.insert(k, d);
                }
                Op::Remove(l, r) => {
                    let k = key(*l, *r);
                    match library_of(*l) {
                        None => index.put(&k.1, None),
                        Some(library) => index.put_replica(library, &k.1, None),
                    }
                    .expect("removes");
                    live.remove(&k);
                }
                Op::Assert(a, r, b, s, same) => {
                    let (x, y) = (key(*a, *r), key(*b, *s));
                    if x == y {
                        continue;
                    }
                    let pair = if x < y { (x, y) } else { (y, x) };
                    assertions.insert(pair.clone(), *same);
                    for (l, k) in [(*a, key(*a, *r)), (*b, key(*b, *s))] {
                        index.touch_record(library_of(l), &k.1).expect("touches");
                    }
                }
                Op::Commit => commit(&index, &live, &assertions),
            }
        }
        commit(&index, &live, &assertions);
        // One entry per live record: a put that skipped its delete would leave two.
        let searcher = index.reader.searcher();
        assert_eq!(
            searcher.num_docs() as usize,
            live.len(),
            "one entry per record"
        );
        // The index's groups.
        let mut by_group: BTreeMap<u64, BTreeSet<(RecordKey, bool)>> = BTreeMap::new();
        for (ord, reader) in searcher.segment_readers().iter().enumerate() {
            for doc in reader.doc_ids_alive() {
                let at = tantivy::DocAddress::new(ord as u32, doc);
                let document: TantivyDocument = searcher.doc(at).expect("reads");
                let grouping = Grouping::new(own.clone(), []);
                let entry = index.entry(&document, &grouping);
                by_group
                    .entry(entry.group)
                    .or_default()
                    .insert((entry.key, entry.rec == entry.group));
            }
        }
        // A record is its own group exactly when it is alone (searches count on it).
        for members in by_group.values() {
            let alone = members.len() == 1;
            assert!(
                members.iter().all(|(_, own_group)| *own_group == alone),
                "a group's id says otherwise than its size: {members:?}"
            );
        }
        let kept = by_group
            .into_values()
            .map(|members| members.into_iter().map(|(k, _)| k).collect())
            .collect();
        // Everything at once.
        let keyed: Vec<Keyed> = live
            .iter()
            .map(|(k, d)| Keyed {
                at: RecordRef {
                    library: k.0.clone(),
                    record: k.1.clone(),
                },
                keys: dedup::keys(d),
            })
            .collect();
        let asserted: Vec<(RecordRef, RecordRef, bool)> = assertions
            .iter()
            .map(|((a, b), s)| {
                let at = |k: &RecordKey| RecordRef {
                    library: k.0.clone(),
                    record: k.1.clone(),
                };
                (at(a), at(b), *s)
            })
            .collect();
        let mut expected: BTreeMap<RecordRef, BTreeSet<RecordKey>> = BTreeMap::new();
        for (record, first) in keyed.iter().zip(cluster(&keyed, &asserted)) {
            expected
                .entry(first)
                .or_default()
                .insert((record.at.library.clone(), record.at.record.clone()));
        }
        let mut members: Vec<String> = vec![own.clone()];
        members.extend(
            live.keys()
                .map(|(l, _)| l.clone())
                .filter(|l| *l != own)
                .collect::<BTreeSet<_>>(),
        );
        let held: Vec<Held> = keyed
            .iter()
            .zip(live.values())
            .map(|(k, d)| Held {
                at: k.at.clone(),
                keys: k.keys.clone(),
                title: d.title.clone(),
                division: division(&d.classification),
                language: d.languages.first().cloned(),
                year: d.year,
            })
            .collect();
        assert_eq!(
            index.overlap(&members).expect("counts"),
            overlap(&held, &asserted, &members),
            "the overlap from the index's groups is the overlap of every record at once"
        );
        (kept, expected.into_values().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]
        #[test]
        fn groups_kept_as_records_arrive_are_the_groups_of_everything(
            ops in proptest::collection::vec(op(), 1..40)
        ) {
            let (kept, expected) = run(&ops);
            prop_assert_eq!(kept, expected);
        }
    }

    /// The lists (at most `LISTED_MAX` each) and their ties, over more titles than
    /// they hold: the same from the index as from every record at once.
    #[test]
    fn the_overlap_lists_from_the_index_are_those_of_every_record() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (index, _) = SearchIndex::open(dir.path()).expect("opens");
        let own = LIBRARIES[0].to_string();
        let mut live: BTreeMap<RecordKey, Description> = BTreeMap::new();
        for i in 0..400usize {
            let d = Description {
                // Titles out of record order, some the same text for different books.
                title: format!("Judul {:03}", (i * 7919) % 300),
                isbns: vec![format!("isbn-{i}")],
                year: Some(1950 + (i % 70) as i32),
                languages: vec![["ind", "jav", "eng"][i % 3].to_string()],
                ..Description::default()
            };
            for (l, library) in LIBRARIES.iter().enumerate() {
                // Held by one, two or three libraries, unevenly.
                if l == 0 && i % 2 == 0 || l == 1 && i % 3 != 1 || l == 2 && i % 5 == 0 {
                    let record = format!("r{}", (i * 31) % 1000);
                    match l {
                        0 => index.put(&record, Some(&d)),
                        _ => index.put_replica(library, &record, Some(&d)),
                    }
                    .expect("puts");
                    live.insert((library.to_string(), record), d.clone());
                }
            }
        }
        let fetch = |library: Option<&str>, record_id: &str| {
            let k = (library.unwrap_or(&own).to_string(), record_id.to_string());
            live.get(&k).cloned()
        };
        index
            .commit(1, &Grouping::new(own.clone(), []), &fetch)
            .expect("commits");
        let held: Vec<Held> = live
            .iter()
            .map(|((library, record), d)| Held {
                at: RecordRef {
                    library: library.clone(),
                    record: record.clone(),
                },
                keys: dedup::keys(d),
                title: d.title.clone(),
                division: division(&d.classification),
                language: d.languages.first().cloned(),
                year: d.year,
            })
            .collect();
        let members: Vec<String> = LIBRARIES.iter().map(|l| l.to_string()).collect();
        let expected = overlap(&held, &[], &members);
        assert_eq!(expected.held_once_listed.len(), 100);
        assert_eq!(expected.most_duplicated.len(), 100);
        assert!(expected.held_by_all > 0 && expected.held_once > 100);
        assert_eq!(index.overlap(&members).expect("counts"), expected);
    }

    #[test]
    fn a_group_held_together_by_one_record_splits_when_it_goes() {
        // A and B share an ISBN, B and C a title key; A and C nothing.
        let ops = vec![
            Op::Put(0, 0, (0, 0, 0, Some(0))),
            Op::Put(1, 0, (1, 0, 0, Some(0))),
            Op::Put(2, 0, (1, 0, 0, None)),
            Op::Commit,
            Op::Remove(1, 0),
        ];
        let (kept, expected) = run(&ops[..4]);
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert_eq!(kept, expected);
        let (kept, expected) = run(&ops);
        assert_eq!(kept.len(), 2, "{kept:?}");
        assert_eq!(kept, expected);
    }

    #[test]
    fn the_same_book_from_three_libraries_is_one_group_and_a_removal_splits_it() {
        let laskar = (0, 0, 0, Some(0));
        let mut ops: Vec<Op> = (0..3).map(|l| Op::Put(l, 0, laskar)).collect();
        ops.push(Op::Commit);
        let (kept, _) = run(&ops);
        assert_eq!(kept.len(), 1, "{kept:?}");
        ops.push(Op::Remove(1, 0));
        ops.push(Op::Assert(0, 0, 2, 0, false));
        let (kept, expected) = run(&ops);
        assert_eq!(kept.len(), 2, "{kept:?}");
        assert_eq!(kept, expected);
    }
}
