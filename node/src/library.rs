//! One library's catalog: the store and the search index together, and what a librarian
//! does with them (import, edit, delete, search, export).

use crate::activity::Counted;
use crate::config::DataDir;
use crate::consortium::{Consortia, ConsortiumError};
use crate::search::{
    Grouping, Hit, LibraryHolding, RecordKey, SearchError, SearchIndex, SearchResults,
};
use crate::store::{Change, Store, StoreError, StoredRecord};
use jalin_protocol::format::{
    Format, Location, ParseError, RecordReader, RecordWriter, WriteError,
};
use jalin_protocol::marc::{iso2709, Charset, MarcRecord};
use jalin_protocol::record::Description;
use jalin_protocol::record::Record;
use jalin_protocol::signing::LibraryId;
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Cursor};
use std::path::PathBuf;

/// What goes wrong in a library's catalog.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The index failed.
    #[error(transparent)]
    Search(#[from] SearchError),
    /// A consortium's documents could not be read or refused.
    #[error(transparent)]
    Consortium(#[from] ConsortiumError),
    /// A file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `--strict` import of a file with damaged records: nothing was imported.
    #[error("{count} damaged record(s), the first at {first}; with --strict nothing was imported")]
    StrictRejected {
        /// How many.
        count: usize,
        /// The first one.
        first: ParseError,
    },
    /// A record cannot be stored as MARC.
    #[error("record {record_id}: {source}")]
    Unwritable {
        /// The record.
        record_id: String,
        /// Why.
        source: iso2709::WriteError,
    },
    /// No record with this id.
    #[error("no record with id {0:?}")]
    NotFound(String),
    /// Writing an export failed.
    #[error("export: {0}")]
    Export(#[from] WriteError),
    /// An interlibrary loan refused or failed.
    #[error(transparent)]
    Loan(#[from] crate::ill::LoanError),
    /// The needs log refused or failed.
    #[error(transparent)]
    Needs(#[from] crate::needs::NeedsError),
    /// A purchase plan refused.
    #[error(transparent)]
    Plan(#[from] crate::plans::PlanError),
    /// The questionnaire refused or failed.
    #[error(transparent)]
    Survey(#[from] crate::survey::SurveyError),
    /// A profile refused, or a detail that cannot be kept.
    #[error(transparent)]
    Profile(#[from] crate::profiles::ProfileError),
    /// A staff-development post that cannot be made.
    #[error(transparent)]
    Staff(#[from] crate::staff::StaffError),
    /// An evaluation that cannot be made.
    #[error(transparent)]
    Evaluation(#[from] crate::evaluation::EvaluationError),
    /// A bundle (sync by flash disk) not made or not taken in.
    #[error(transparent)]
    Bundle(#[from] crate::bundle::BundleFailure),
}

impl LibraryError {
    /// What kind of failure this is, as a stable name (see [`ConsortiumError::code`]).
    pub fn code(&self) -> &'static str {
        match self {
            LibraryError::Store(_) => "storage",
            LibraryError::Search(SearchError::Limit(_)) => "search_limit",
            LibraryError::Search(_) => "index",
            LibraryError::Consortium(e) => e.code(),
            LibraryError::Io { .. } => "file_unreadable",
            LibraryError::StrictRejected { .. } => "strict_rejected",
            LibraryError::Unwritable { .. } => "unwritable",
            LibraryError::NotFound(_) => "record_not_found",
            LibraryError::Export(_) => "export",
            LibraryError::Loan(e) => e.code(),
            LibraryError::Needs(e) => e.code(),
            LibraryError::Plan(e) => e.code(),
            LibraryError::Survey(e) => e.code(),
            LibraryError::Profile(e) => e.code(),
            LibraryError::Staff(e) => e.code(),
            LibraryError::Evaluation(e) => e.code(),
            LibraryError::Bundle(e) => e.code(),
        }
    }
}

/// Marks the holdings of `hit` whose copy is out on interlibrary loan (`out`: the
/// holders' shared tallies), one copy each fewer available.
fn mark_out_on_loan(hit: &mut Hit, out: &std::collections::BTreeSet<(LibraryId, String)>) {
    for holding in &mut hit.holdings {
        let lent = LibraryId::from_hex(&holding.library)
            .is_ok_and(|library| out.contains(&(library, holding.record_id.clone())));
        if lent && !holding.on_ill {
            holding.on_ill = true;
            let had = if holding.copies.is_empty() {
                1
            } else {
                holding.copies.iter().filter(|c| c.is_available()).count()
            };
            if had > 0 {
                hit.available = hit.available.saturating_sub(1);
            }
        }
    }
}

/// Where an import reads from.
pub enum Source {
    /// A file on disk.
    File(PathBuf),
    /// Bytes (an HTTP upload).
    Bytes(Vec<u8>),
}

impl Source {
    fn open(&self) -> Result<Box<dyn BufRead + Send + '_>, LibraryError> {
        Ok(match self {
            Source::File(path) => {
                let file = std::fs::File::open(path).map_err(|source| LibraryError::Io {
                    path: path.clone(),
                    source,
                })?;
                Box::new(BufReader::with_capacity(256 * 1024, file))
            }
            Source::Bytes(bytes) => Box::new(Cursor::new(bytes.as_slice())),
        })
    }

    /// The format: `explicit`, else the file's extension, else its first bytes.
    pub fn format(&self, explicit: Option<Format>) -> Result<Format, LibraryError> {
        match (explicit, self) {
            (Some(format), _) => Ok(format),
            (None, Source::File(path)) => {
                crate::files::detect_format(path, None).map_err(|e| LibraryError::Io {
                    path: path.clone(),
                    source: std::io::Error::other(e.to_string()),
                })
            }
            (None, Source::Bytes(bytes)) => Ok(Format::sniff(&bytes[..bytes.len().min(4096)])),
        }
    }
}

/// Counts the bytes read through it, for progress.
struct CountingReader<R> {
    inner: R,
    consumed: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: std::io::Read> std::io::Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// How to import.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// The format; `None` guesses.
    pub format: Option<Format>,
    /// The charset of ISO 2709 input; `None` follows the leader.
    pub charset: Option<Charset>,
    /// Tombstone this library's records that the file does not hold.
    pub delete_missing: bool,
    /// Import nothing if any record is damaged.
    pub strict: bool,
}

/// A record that was not imported.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Rejected {
    /// Where it was in the file.
    pub location: Location,
    /// Why.
    pub reason: String,
    /// What kind of damage, as a stable name (`marc_truncated`, `csv_header`, ...;
    /// `ParseErrorKind::code`).
    #[serde(default)]
    pub code: String,
}

/// What an import did.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ImportSummary {
    /// The format read.
    pub format: Option<Format>,
    /// Records read from the file.
    pub read: u64,
    /// New records.
    pub added: u64,
    /// Changed records.
    pub updated: u64,
    /// Records already stored exactly so.
    pub unchanged: u64,
    /// Records tombstoned (with `delete_missing`).
    pub deleted: u64,
    /// Records not imported, with where and why.
    pub rejected: Vec<Rejected>,
}

/// Progress of an import, reported after each committed batch.
#[derive(Clone, Debug)]
pub struct Progress {
    /// Records read so far.
    pub read: u64,
    /// Records committed (durable) so far, of those read.
    pub committed: u64,
    /// Bytes of input read so far (the reader runs a buffer ahead of what is committed).
    pub bytes: Option<u64>,
}

/// The status of a library's node.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Status {
    /// The library's name.
    pub name: String,
    /// Its code.
    pub code: String,
    /// Its id (public key, hex).
    pub library_id: String,
    /// Its key's fingerprint.
    pub fingerprint: String,
    /// Records held (not deleted).
    pub records: u64,
    /// Tombstones.
    pub deleted: u64,
    /// Records searchable.
    pub indexed: u64,
    /// The store's sequence number.
    pub seq: u64,
    /// Bytes on disk (store).
    pub store_bytes: u64,
    /// Jalin's version.
    pub version: String,
    /// Other members' catalogs held here.
    pub replicas: Vec<ReplicaStatus>,
    /// The memory budget's parts and what each holds (missing from an older node's).
    #[serde(default)]
    pub memory: Option<MemoryStatus>,
}

/// What the memory budget (`[limits] memory_mb`) gives each part and what each holds.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct MemoryStatus {
    /// The budget, MB.
    pub budget_mb: u64,
    /// What the parts set on their own in `[limits]` take beyond it, MB.
    #[serde(default)]
    pub over_budget_mb: u64,
    /// Each cache and queue.
    pub parts: Vec<MemoryPart>,
    /// The process's resident memory now, bytes (where the system says: Linux).
    pub resident_bytes: Option<u64>,
    /// Its peak since it started, bytes.
    pub resident_peak_bytes: Option<u64>,
}

/// One cache or queue of the memory budget.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct MemoryPart {
    /// Which.
    pub part: String,
    /// Its share of the budget, bytes.
    pub limit_bytes: u64,
    /// What it holds now, bytes (when known).
    pub held_bytes: Option<u64>,
    /// What is in it.
    pub note: String,
}

/// This process's resident memory and its peak (`VmRSS`, `VmHWM`), where the system says.
fn resident_memory() -> (Option<u64>, Option<u64>) {
    let Ok(text) = std::fs::read_to_string("/proc/self/status") else {
        return (None, None);
    };
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Another library's catalog as this node holds it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ReplicaStatus {
    /// Its id (hex).
    pub library_id: String,
    /// Its name, when a consortium held here names it.
    pub name: Option<String>,
    /// Records (not deleted).
    pub records: u64,
    /// Tombstones.
    pub deleted: u64,
    /// When a change to it last arrived here (ms since 1970).
    #[serde(default)]
    pub last_change_ms: Option<u64>,
    /// When its node was last connected to this one (ms since 1970).
    #[serde(default)]
    pub last_seen_ms: Option<u64>,
}

/// Where one library's catalog stands at this node.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct CatalogSync {
    /// The library's key (hex).
    pub library_id: String,
    /// Its name and code, when a consortium held here names it.
    pub name: Option<String>,
    /// Whether it is this node's own catalog.
    pub own: bool,
    /// Records held (not deleted).
    pub records: u64,
    /// Tombstones held.
    pub deleted: u64,
    /// The first 8 bytes of the catalog's digest (hex): two nodes showing the same hold
    /// the same catalog.
    pub digest: String,
    /// When a change to it last arrived here (ms since 1970).
    pub last_change_ms: Option<u64>,
    /// When its node was last connected to this one (ms since 1970).
    pub last_seen_ms: Option<u64>,
    /// Whether its node is connected now (filled in by the running node).
    #[serde(default)]
    pub connected: Option<bool>,
    /// How, when connected: directly or only through a relay.
    #[serde(default)]
    pub route: Option<crate::network::Route>,
    /// The most records (and tombstones) of it a member said it holds lately.
    #[serde(default)]
    pub member_holds: Option<u64>,
    /// Records of it this node still lacks, by that count.
    #[serde(default)]
    pub to_go: Option<u64>,
    /// Bytes those records take, roughly.
    #[serde(default)]
    pub bytes_to_go: Option<u64>,
    /// Seconds they take at the rate answers arrived at lately.
    #[serde(default)]
    pub eta_s: Option<u64>,
}

/// A catalog's records and tombstones, and when they were counted.
type CountedAt = ((u64, u64), std::time::Instant);

/// Records a member may say it holds of one catalog (a large university's is a few
/// million): a larger count is not believed.
const MEMBER_HOLDS_MAX: u64 = 100_000_000;

/// A library's catalog.
pub struct Library {
    /// The data directory.
    data: DataDir,
    /// The store: written only through `Library`'s methods.
    store: Store,
    /// The index: written only through `Library`'s methods.
    index: SearchIndex,
    /// The consortia it belongs to.
    consortia: Consortia,
    /// Its interlibrary loans.
    loans: crate::ill::Loans,
    /// Transactions of ILL systems outside Jalin (ISO 18626).
    gateway: crate::gateway::Gateway,
    /// What its patrons look for (kept here only).
    needs: crate::needs::Needs,
    /// The questionnaire about its patrons and its answers (kept here only).
    surveys: crate::survey::Surveys,
    profiles: crate::profiles::Profiles,
    activity: crate::activity::Activity,
    /// Where it reads the time.
    clock: std::sync::Arc<dyn crate::clock::Clock>,
    /// Per other library: when a change to its catalog last arrived (`c` + key) and when
    /// its node was last seen (`s` + key), as ms since 1970 (big-endian u64); where its
    /// node listens (`a` + peer id: JSON list of addresses).
    freshness: crate::durable::Tree,
    /// Members' clocks as their `Hello` answers showed them.
    peer_times: crate::clock::PeerTimes,
    /// Join codes open on this running node (memory only).
    join_codes: crate::join_code::OpenCodes,
    /// Per catalog, the most records and tombstones a member said it holds (its `Hello`
    /// answer), with when: what this node still lacks of it.
    member_holds: std::sync::Mutex<BTreeMap<LibraryId, (u64, u64)>>,
    /// [`Library::held_counts_recent`]'s counts and when they were counted.
    recent_counts: std::sync::Mutex<BTreeMap<LibraryId, CountedAt>>,
    /// Bytes a second the sync protocol's answers arrived at lately (the network's
    /// estimate of its link), for the time a catalog still needs.
    link_rate: std::sync::atomic::AtomicU64,
    /// The bytes the sync answers asked for and not yet arrived may bring (the network's).
    sync_in_air: std::sync::atomic::AtomicU64,
    /// Records in the import batch being worked on now.
    batch_now: std::sync::atomic::AtomicUsize,
    catching_up: std::sync::Mutex<()>,
    /// Set as the node stops: long work (an index catch-up) ends early, leaving the rest
    /// for the next start, so that a stop does not wait for it.
    stopping: std::sync::atomic::AtomicBool,
    /// The "same" / "not the same" assertions the index's groups were last worked out
    /// with.
    assertions_seen: std::sync::Mutex<std::collections::BTreeSet<(RecordKey, RecordKey, bool)>>,
    /// Per catalog not all here, the bytes a record of it takes here and when that was
    /// worked out (a walk over its shard documents, so at most once a minute).
    bytes_per_record: std::sync::Mutex<BTreeMap<LibraryId, (u64, std::time::Instant)>>,
}

/// How current another library's catalog is here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Freshness {
    /// When a change to its catalog last arrived here (ms since 1970).
    pub last_change_ms: Option<u64>,
    /// When its node was last connected to this one (ms since 1970).
    pub last_seen_ms: Option<u64>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Library {
    /// This library's id (its public key).
    pub fn id(&self) -> LibraryId {
        self.store.library()
    }

    /// The data directory: configuration, key and paths.
    pub fn data(&self) -> &DataDir {
        &self.data
    }

    /// The store, to read (its writing methods are the crate's, called from here alone).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The search index, to read (written from here alone).
    pub fn index(&self) -> &SearchIndex {
        &self.index
    }

    /// The consortia this library belongs to, their documents and agreements.
    pub fn consortia(&self) -> &Consortia {
        &self.consortia
    }

    /// Its interlibrary loans.
    pub fn loans(&self) -> &crate::ill::Loans {
        &self.loans
    }

    /// What its patrons look for: the OPAC's searches and suggestions.
    pub fn needs(&self) -> &crate::needs::Needs {
        &self.needs
    }

    /// The questionnaire about its patrons.
    pub fn surveys(&self) -> &crate::survey::Surveys {
        &self.surveys
    }

    /// What this library did, counted by day (for the evaluation).
    pub fn activity(&self) -> &crate::activity::Activity {
        &self.activity
    }

    /// This library's profile and those of other libraries received.
    pub fn profiles(&self) -> &crate::profiles::Profiles {
        &self.profiles
    }

    /// The ISO 18626 gateway's transactions.
    pub fn gateway(&self) -> &crate::gateway::Gateway {
        &self.gateway
    }

    /// This library's ISO 18626 agency id: `[iso18626] agency_id`, or its code.
    pub fn agency_id(&self) -> String {
        let config = &self.data.config;
        config
            .iso18626
            .agency_id
            .clone()
            .unwrap_or_else(|| config.library.code.clone())
    }

    /// Now, by the clock the library was given.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Takes the shards of `namespace` written since the last call (for a `Changed`
    /// notice).
    pub fn take_touched(&self, namespace: &LibraryId) -> std::collections::BTreeSet<u16> {
        self.store.take_touched(namespace)
    }

    /// The heads of one shard of a catalog held here.
    pub fn shard_heads(
        &self,
        namespace: &LibraryId,
        shard: u16,
    ) -> Result<Vec<[u8; 32]>, StoreError> {
        self.store.shard_heads(namespace, shard)
    }

    /// Bumped after each write of this library's own catalog.
    pub fn watch_own_writes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.store.watch_own_writes()
    }

    /// Opens the library in a data directory; brings the index up to date with the store
    /// (only what changed since the index was last committed, or everything when the index
    /// is missing or damaged).
    pub fn open(data: DataDir) -> Result<Library, LibraryError> {
        Library::open_with_clock(data, std::sync::Arc::new(crate::clock::SystemClock))
    }

    /// [`Library::open`] reading the time from `clock`.
    pub fn open_with_clock(
        data: DataDir,
        clock: std::sync::Arc<dyn crate::clock::Clock>,
    ) -> Result<Library, LibraryError> {
        let over = data.config.limits.over_budget_mb();
        if over > 0 {
            tracing::warn!(
                over_mb = over,
                budget_mb = data.config.limits.memory_mb,
                "the parts set on their own under [limits] in config.toml take more memory \
                 than memory_mb (an older config.toml sets them all): remove store_cache_mb, \
                 loaded_shards_max and batch_records_max to let the budget share it out"
            );
        }
        let store = Store::open(
            &data.db_path(),
            data.key.clone(),
            &data.config.limits.memory_plan(),
        )?;
        let (index, index_seq) = SearchIndex::open(&data.index_path())?;
        let consortia = Consortia::open(
            store.db(),
            data.key.clone(),
            &data.config.library.name,
            &data.config.library.code,
        )?
        .with_clock(clock.clone());
        let freshness = store
            .db()
            .open_tree("freshness")
            .map_err(StoreError::from)?;
        let loans = crate::ill::Loans::open(&store.db(), data.key.clone())?;
        let gateway = crate::gateway::Gateway::open(&store.db()).map_err(StoreError::from)?;
        let needs = crate::needs::Needs::open(&store.db()).map_err(StoreError::from)?;
        let surveys = crate::survey::Surveys::open(&store.db()).map_err(StoreError::from)?;
        let profiles = crate::profiles::Profiles::open(&store.db()).map_err(StoreError::from)?;
        let activity = crate::activity::Activity::open(&store.db()).map_err(StoreError::from)?;
        // sled and tantivy made their files with the process's umask.
        crate::config::restrict_permissions(&data.path).map_err(|source| LibraryError::Io {
            path: data.path.clone(),
            source,
        })?;
        let library = Library {
            data,
            store,
            index,
            consortia,
            loans,
            gateway,
            needs,
            surveys,
            profiles,
            activity,
            clock,
            freshness,
            peer_times: Default::default(),
            join_codes: Default::default(),
            member_holds: Default::default(),
            recent_counts: Default::default(),
            link_rate: Default::default(),
            sync_in_air: Default::default(),
            batch_now: Default::default(),
            catching_up: std::sync::Mutex::new(()),
            stopping: std::sync::atomic::AtomicBool::new(false),
            assertions_seen: std::sync::Mutex::new(std::collections::BTreeSet::new()),
            bytes_per_record: Default::default(),
        };
        if index_seq == 0 && library.store.seq()? > 0 {
            tracing::info!("search index missing or damaged: rebuilding it from the catalog");
        }
        library.catch_up_index()?;
        // Assertions that changed while the node was stopped (a member removed, its
        // assertions no longer standing) regroup their records now.
        {
            let saved: Option<Vec<(RecordKey, RecordKey, bool)>> = library
                .store
                .db()
                .open_tree("grouping")
                .ok()
                .and_then(|t| t.get(b"assertions").ok().flatten())
                .and_then(|v| serde_json::from_slice(&v).ok());
            if let Some(saved) = saved {
                *library
                    .assertions_seen
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = saved.into_iter().collect();
            }
            let grouping = library.grouping();
            library.follow_assertions(&grouping)?;
        }
        Ok(library)
    }

    /// Forgets the catalog of every library this one no longer shares a consortium with
    /// (removed, or left, or never a co-member): out of the index first, then out of the
    /// store, so a stop between the two leaves it in the store, to be forgotten at the
    /// next start. Returns each library forgotten with the records it had here.
    pub fn forget_strangers(&self) -> Result<Vec<(LibraryId, usize)>, LibraryError> {
        let trust = self.consortia.trust();
        let mut forgotten = Vec::new();
        for namespace in self.store.namespaces()? {
            if trust.is_co_member(&namespace) {
                continue;
            }
            // Both under the index's catch-up lock: a catch-up between them would index
            // again what the store still held.
            let _one = self.catching_up.lock().unwrap_or_else(|p| p.into_inner());
            self.index.forget_library(&namespace.to_hex())?;
            self.commit_index(self.index.committed_seq())?;
            let records = self.store.forget_catalog(&namespace)?;
            drop(_one);
            for what in [b'c', b's'] {
                let mut key = vec![what];
                key.extend_from_slice(namespace.as_bytes());
                if let Err(error) = self.freshness.remove(key) {
                    tracing::warn!(%error, "could not forget when a former member was heard of");
                }
            }
            tracing::info!(
                library = %namespace.fingerprint(),
                records,
                "forgot the catalog of a library this one shares no consortium with"
            );
            forgotten.push((namespace, records));
        }
        Ok(forgotten)
    }

    /// Tells long work to end early: the node is stopping (an index catch-up under way
    /// stops without committing; the next start takes it up from the store).
    pub fn stop_work(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Ends a catch-up cut short by a stop: commits what it put under the sequence number
    /// it started from (or last committed at), so the next start takes up the rest, even
    /// if a local write committed the index at a later number meanwhile.
    fn stop_catching_up(&self, since: u64) -> Result<usize, LibraryError> {
        self.commit_index(since)?;
        Ok(0)
    }

    /// Indexes what changed in the store since the index's last commit (everything, for
    /// a new index). Returns how many records that was (none when the node began to
    /// stop meanwhile: nothing is committed then).
    pub fn catch_up_index(&self) -> Result<usize, LibraryError> {
        self.catch_up_index_every(INDEX_COMMIT_RECORDS)
    }

    /// [`Library::catch_up_index`], the index committed every `commit_every` records.
    fn catch_up_index_every(&self, commit_every: usize) -> Result<usize, LibraryError> {
        // One catch-up at a time: two would index the same changes and commit out of order.
        let _one = self.catching_up.lock().unwrap_or_else(|p| p.into_inner());
        let since = self.index.committed_seq();
        let store_seq = self.store.seq()?;
        if since >= store_seq {
            return Ok(0);
        }
        let mut count = 0;
        if let Some(queue) = self.store.index_queue(since, store_seq)? {
            // What was written since, from the store's queue: the records written, not a
            // walk over every record held (which also leaves sled's tree resident).
            let own = self.store.library();
            // Committed every `commit_every` records, where the sequence
            // number changes (every record written under a number is then indexed):
            // grouping what a commit put costs memory in proportion to it.
            let (mut committed, mut last, mut put) = (since, since, 0usize);
            for entry in queue {
                if self.stopping() {
                    return self.stop_catching_up(committed);
                }
                let (library, record_id, seq) = entry?;
                if put >= commit_every && seq != last {
                    self.commit_index(last)?;
                    (committed, put) = (last, 0);
                }
                last = seq;
                let stored = self.store.get_of(&library, &record_id)?;
                let description = match &stored {
                    // Written again since: the later entry indexes it.
                    Some(stored) if stored.seq > seq => continue,
                    Some(stored) if !stored.deleted => decode(stored).map(|r| r.description),
                    // A tombstone, or a record no longer held (a catalog forgotten).
                    _ => None,
                };
                if library == own {
                    self.index.put(&record_id, description.as_ref())?;
                } else {
                    self.index
                        .put_replica(&library.to_hex(), &record_id, description.as_ref())?;
                }
                count += 1;
                put += 1;
            }
            self.commit_index(store_seq)?;
            self.store.trim_index_queue(store_seq)?;
            return Ok(count);
        }
        for stored in self.store.changed_since(since) {
            if self.stopping() {
                return self.stop_catching_up(since);
            }
            let stored = stored?;
            let description = if stored.deleted {
                None
            } else {
                decode(&stored).map(|r| r.description)
            };
            self.index.put(&stored.record_id, description.as_ref())?;
            count += 1;
        }
        // Other members' catalogs held here: the union catalog.
        for item in self.store.replicas_changed_since(since) {
            if self.stopping() {
                return self.stop_catching_up(since);
            }
            let (library, stored) = item?;
            let description = if stored.deleted {
                None
            } else {
                decode(&stored).map(|r| r.description)
            };
            self.index
                .put_replica(&library.to_hex(), &stored.record_id, description.as_ref())?;
            count += 1;
        }
        self.commit_index(store_seq)?;
        self.store.trim_index_queue(store_seq)?;
        Ok(count)
    }

    /// Commits the index at `seq`, grouping what was put with the records of the same
    /// book (descriptions read back from the store where a record changes group).
    fn commit_index(&self, seq: u64) -> Result<(), LibraryError> {
        let fetch = |library: Option<&str>, record_id: &str| -> Option<Description> {
            let stored = match library {
                None => self.store.get(record_id),
                Some(hex) => self
                    .store
                    .get_of(&LibraryId::from_hex(hex).ok()?, record_id),
            }
            .ok()??;
            if stored.deleted {
                return None;
            }
            decode(&stored).map(|r| r.description)
        };
        self.index.commit(seq, &self.grouping(), &fetch)?;
        Ok(())
    }

    /// Groups again the records whose standing assertions changed since the index's
    /// groups were last worked out (a member asserted or withdrew "same" / "not the same").
    fn follow_assertions(&self, grouping: &Grouping) -> Result<(), LibraryError> {
        let now: std::collections::BTreeSet<(RecordKey, RecordKey, bool)> = grouping
            .asserted
            .iter()
            .flat_map(|(a, others)| {
                others
                    .iter()
                    .filter(move |(b, _)| a < b)
                    .map(move |(b, same)| (a.clone(), b.clone(), *same))
            })
            .collect();
        let mut seen = self
            .assertions_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if *seen == now {
            return Ok(());
        }
        for (a, b, _) in seen.symmetric_difference(&now) {
            for (library, record_id) in [a, b] {
                let library = (*library != grouping.own).then_some(library.as_str());
                self.index.touch_record(library, record_id)?;
            }
        }
        let kept: Vec<&(RecordKey, RecordKey, bool)> = now.iter().collect();
        let json = serde_json::to_vec(&kept).unwrap_or_default();
        *seen = now;
        drop(seen);
        self.commit_index(self.index.committed_seq())?;
        // Kept, so the next start knows which assertions the groups were worked out with.
        self.store
            .db()
            .open_tree("grouping")
            .and_then(|t| t.insert(b"assertions", json))
            .map_err(StoreError::from)?;
        Ok(())
    }

    /// Rebuilds the whole index from the store.
    pub fn reindex(&self) -> Result<usize, LibraryError> {
        self.index.clear()?;
        self.commit_index(0)?;
        self.catch_up_index()
    }

    /// A record of this library.
    pub fn get(
        &self,
        record_id: &str,
    ) -> Result<Option<(StoredRecord, Option<Record>)>, LibraryError> {
        Ok(self.store.get(record_id)?.map(|stored| {
            let record = decode(&stored);
            (stored, record)
        }))
    }

    /// Adds or replaces one record; returns its id.
    pub fn put(&self, marc: MarcRecord) -> Result<String, LibraryError> {
        let record = Record::from_marc(marc);
        let record_id = record.id().to_string();
        let bytes =
            iso2709::write_record(&record.marc).map_err(|source| LibraryError::Unwritable {
                record_id: record_id.clone(),
                source,
            })?;
        let existed = self
            .store
            .get(&record_id)?
            .is_some_and(|stored| !stored.deleted);
        let seq = self.store.apply(
            &[Change::Put {
                record_id: record_id.clone(),
                marc: bytes,
            }],
            now_ms(),
        )?;
        self.index.put(&record_id, Some(&record.description))?;
        self.commit_index(seq)?;
        self.count_activity(&[(
            if existed {
                Counted::Corrected
            } else {
                Counted::Added
            },
            1,
        )]);
        Ok(record_id)
    }

    /// Takes in another library's changes of some shards (from the network), then makes
    /// them searchable.
    pub fn apply_remote_many(
        &self,
        namespace: &jalin_protocol::signing::LibraryId,
        shards: &[(u16, Vec<crate::store::SignedChange>)],
    ) -> Vec<Result<crate::store::RemoteApplied, crate::store::ReplicaError>> {
        let results = self.store_remote_many(namespace, shards);
        if results
            .iter()
            .any(|r| r.as_ref().is_ok_and(|a| a.changes > 0))
        {
            self.index_or_warn();
        }
        results
    }

    /// [`Library::apply_remote_many`] without the indexing: the network passes the
    /// changes on first, and indexes after ([`Library::index_or_warn`]).
    pub fn store_remote_many(
        &self,
        namespace: &jalin_protocol::signing::LibraryId,
        shards: &[(u16, Vec<crate::store::SignedChange>)],
    ) -> Vec<Result<crate::store::RemoteApplied, crate::store::ReplicaError>> {
        let results = self.store.apply_remote_many(namespace, shards);
        if results
            .iter()
            .any(|r| r.as_ref().is_ok_and(|a| a.changes > 0))
        {
            self.note(b'c', namespace, now_ms());
        }
        results
    }

    /// Indexes what the store holds and the index not yet; a failure is logged, not
    /// returned: the store has the records, and the next catch-up (at the latest, the next
    /// start) indexes them.
    pub fn index_or_warn(&self) {
        if let Err(error) = self.catch_up_index() {
            tracing::warn!("indexing replicated records failed: {error}");
        }
    }

    /// Tombstones one record.
    pub fn delete(&self, record_id: &str) -> Result<(), LibraryError> {
        match self.store.get(record_id)? {
            Some(stored) if !stored.deleted => {}
            _ => return Err(LibraryError::NotFound(record_id.to_string())),
        }
        let seq = self.store.apply(
            &[Change::Delete {
                record_id: record_id.to_string(),
            }],
            now_ms(),
        )?;
        self.index.put(record_id, None)?;
        self.commit_index(seq)?;
        self.count_activity(&[(Counted::Deleted, 1)]);
        Ok(())
    }

    fn note(&self, what: u8, library: &LibraryId, ms: u64) {
        let mut key = vec![what];
        key.extend_from_slice(library.as_bytes());
        if let Err(error) = self.freshness.insert(key, &ms.to_be_bytes()) {
            tracing::warn!(
                "could not note when {} was last heard of: {error}",
                library.fingerprint()
            );
        }
    }

    /// Notes where a member's node listens (its libp2p peer id, as text).
    pub fn note_addresses(&self, peer: &str, addresses: Vec<String>) {
        let mut key = vec![b'a'];
        key.extend_from_slice(peer.as_bytes());
        let value = serde_json::to_vec(&addresses).unwrap_or_default();
        if let Err(error) = self.freshness.insert(key, value) {
            tracing::warn!("could not keep the addresses of {peer}: {error}");
        }
    }

    /// The address book: every member's node's addresses last learned, by peer id.
    pub fn address_book(&self) -> Vec<(String, Vec<String>)> {
        self.freshness
            .scan_prefix([b'a'])
            .filter_map(|item| item.ok())
            .filter_map(|(k, v)| {
                let peer = String::from_utf8(k.get(1..)?.to_vec()).ok()?;
                Some((peer, serde_json::from_slice(&v).ok()?))
            })
            .collect()
    }

    /// Notes that another library's node is connected now.
    pub fn note_seen(&self, library: &LibraryId) {
        self.note(b's', library, now_ms());
    }

    /// Notes that a member holds `held` records and tombstones of `catalog` (its `Hello`
    /// answer).
    pub fn note_member_holds(&self, catalog: &LibraryId, held: u64) {
        // A count no catalog reaches is a member's mistake or lie: not believed.
        if held > MEMBER_HOLDS_MAX {
            return;
        }
        let now = self.now_ms();
        let mut holds = self.member_holds.lock().unwrap_or_else(|p| p.into_inner());
        let entry = holds.entry(*catalog).or_insert((held, now));
        // The largest count seen lately stands; an old one gives way.
        if held >= entry.0 || now.saturating_sub(entry.1) > 3_600_000 {
            *entry = (held, now);
        }
    }

    /// Notes the bytes the sync answers asked for and not arrived yet may bring.
    pub fn note_sync_in_air(&self, bytes: u64) {
        self.sync_in_air
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// What the memory budget gives each part and what each holds now
    /// (`[limits] memory_mb`).
    pub fn memory(&self) -> MemoryStatus {
        use std::sync::atomic::Ordering::Relaxed;
        let plan = self.data.config.limits.memory_plan();
        let (docs, docs_bytes) = self.store.shard_documents_loaded();
        let batch = self.batch_now.load(Relaxed) as u64;
        let (resident_bytes, resident_peak_bytes) = resident_memory();
        MemoryStatus {
            budget_mb: plan.budget_mb,
            over_budget_mb: self.data.config.limits.over_budget_mb(),
            parts: vec![
                MemoryPart {
                    part: "store page cache".into(),
                    limit_bytes: plan.store_cache_bytes,
                    held_bytes: None,
                    note: "sled's pages (it does not say how full)".into(),
                },
                MemoryPart {
                    part: "shard documents".into(),
                    limit_bytes: plan.shard_documents_bytes,
                    held_bytes: Some(docs_bytes),
                    note: format!("{docs} loaded (estimated from their size on disk)"),
                },
                MemoryPart {
                    part: "import batch".into(),
                    limit_bytes: plan.batch_records as u64 * crate::config::BATCH_RECORD_BYTES,
                    held_bytes: Some(batch * crate::config::BATCH_RECORD_BYTES),
                    note: format!(
                        "{batch} of at most {} records (each ~{} KB while written)",
                        plan.batch_records,
                        crate::config::BATCH_RECORD_BYTES >> 10
                    ),
                },
                MemoryPart {
                    part: "sync answers in the air".into(),
                    limit_bytes: plan.sync_answer_bytes * plan.sync_answers_in_air as u64,
                    held_bytes: Some(self.sync_in_air.load(Relaxed)),
                    note: format!(
                        "at most {} answers of {} KB each",
                        plan.sync_answers_in_air,
                        plan.sync_answer_bytes >> 10
                    ),
                },
                MemoryPart {
                    part: "search index writer".into(),
                    limit_bytes: plan.index_writer_bytes,
                    held_bytes: None,
                    note: "tantivy's indexing heap (one thread)".into(),
                },
            ],
            resident_bytes,
            resident_peak_bytes,
        }
    }

    /// Notes the rate the sync protocol's answers arrive at (bytes a second).
    pub fn note_link_rate(&self, bytes_per_s: u64) {
        self.link_rate
            .store(bytes_per_s, std::sync::atomic::Ordering::Relaxed);
    }

    /// Notes a member's time, as its node just gave it (a `Hello` answer).
    pub fn note_clock(&self, library: &LibraryId, their_ms: u64) {
        self.peer_times
            .note(*library.as_bytes(), their_ms, self.now_ms());
    }

    /// The join codes open on this running node.
    pub fn join_codes(&self) -> &crate::join_code::OpenCodes {
        &self.join_codes
    }

    /// What the current co-members' times (read in the last week) say of this node's
    /// clock.
    pub fn clock_report(&self) -> crate::clock::ClockReport {
        let names = self.library_names();
        let members: Vec<([u8; 32], String, Option<String>)> = self
            .consortia
            .trust()
            .co_members()
            .into_iter()
            .map(|m| (*m.as_bytes(), m.to_hex(), names.get(&m).cloned()))
            .collect();
        let week = 7 * 86_400_000;
        self.peer_times
            .report(&members, self.now_ms().saturating_sub(week))
    }

    /// How current another library's catalog is here.
    pub fn freshness(&self, library: &LibraryId) -> Freshness {
        let read = |what: u8| {
            let mut key = vec![what];
            key.extend_from_slice(library.as_bytes());
            let value = self.freshness.get(key).ok().flatten()?;
            Some(u64::from_be_bytes(value.as_ref().try_into().ok()?))
        };
        Freshness {
            last_change_ms: read(b'c'),
            last_seen_ms: read(b's'),
        }
    }

    /// Every catalog held here, and every member's whose catalog has not arrived yet:
    /// records, digest and freshness, this library's own first.
    pub fn sync_status(&self) -> Result<Vec<CatalogSync>, LibraryError> {
        let own = self.store.library();
        let names = self.library_names();
        let mut libraries: Vec<LibraryId> = vec![own];
        for namespace in self.store.namespaces()? {
            if !libraries.contains(&namespace) {
                libraries.push(namespace);
            }
        }
        for library in names.keys() {
            if !libraries.contains(library) {
                libraries.push(*library);
            }
        }
        let mut out = Vec::with_capacity(libraries.len());
        let holds = self
            .member_holds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let rate = self.link_rate.load(std::sync::atomic::Ordering::Relaxed);
        for library in libraries {
            let (records, deleted) = self.held_counts(&library)?;
            let digest = self.store.namespace_digest(&library)?;
            let fresh = self.freshness(&library);
            let member_holds = holds.get(&library).map(|(n, _)| *n);
            let to_go = member_holds
                .map(|n| n.saturating_sub(records + deleted))
                .filter(|n| *n > 0);
            let bytes_to_go = match to_go {
                Some(to_go) => {
                    // This catalog's own bytes a record where enough of it is here, else
                    // what an LC record takes (BENCHMARKS.md: 632 on the wire).
                    let per_record = if records + deleted >= 100 {
                        self.bytes_per_record(&library, records + deleted)?
                    } else {
                        650
                    };
                    Some(to_go.saturating_mul(per_record))
                }
                None => None,
            };
            out.push(CatalogSync {
                library_id: library.to_hex(),
                name: names.get(&library).cloned(),
                own: library == own,
                records,
                deleted,
                digest: digest[..8].iter().map(|b| format!("{b:02x}")).collect(),
                last_change_ms: fresh.last_change_ms,
                last_seen_ms: fresh.last_seen_ms,
                connected: None,
                route: None,
                member_holds,
                to_go,
                bytes_to_go,
                eta_s: bytes_to_go.filter(|_| rate > 0).map(|b| b / rate.max(1)),
            });
        }
        Ok(out)
    }

    /// The collection overlap of the union this node holds: its own catalog and every
    /// other library's it keeps, each title counted once, as the search index groups
    /// them ([`dedup::cluster`]'s rule with the members' standing assertions; the index
    /// caught up first). The members counted are the libraries whose records are here
    /// (this one first, then by key): "held by all" means by all of those.
    pub fn collection_overlap(
        &self,
    ) -> Result<jalin_protocol::collection::OverlapReport, LibraryError> {
        self.catch_up_index()?;
        let own = self.store.library();
        let mut others = Vec::new();
        for library in self.store.namespaces()? {
            if library != own && self.held_counts(&library)?.0 > 0 {
                others.push(library.to_hex());
            }
        }
        others.sort();
        let mut members = vec![own.to_hex()];
        members.extend(others);
        let mut report = self.index.overlap(&members)?;
        let names = self.library_names();
        for library in &mut report.libraries {
            library.name = LibraryId::from_hex(&library.library)
                .ok()
                .and_then(|id| names.get(&id).cloned())
                .or_else(|| {
                    (library.library == self.store.library().to_hex()).then(|| {
                        let config = &self.data.config.library;
                        format!("{} ({})", config.name, config.code)
                    })
                });
        }
        Ok(report)
    }

    /// The names of the libraries this node knows of (from its consortia), by key.
    pub fn library_names(&self) -> std::collections::BTreeMap<LibraryId, String> {
        let mut names = std::collections::BTreeMap::new();
        for consortium in self.consortia.list() {
            if let Ok(state) = self.consortia.members(&consortium.id) {
                for m in state.members.values() {
                    names.insert(m.library, format!("{} ({})", m.name, m.code));
                }
            }
        }
        names.insert(
            self.store.library(),
            format!(
                "{} ({})",
                self.data.config.library.name, self.data.config.library.code
            ),
        );
        names
    }

    /// How the union catalog groups records: this library's key and the standing
    /// assertions of its consortia.
    fn grouping(&self) -> Grouping {
        let own = self.store.library();
        let mut grouping = Grouping::new(
            self.store.library().to_hex(),
            self.consortia
                .standing_assertions()
                .into_iter()
                .map(|((a, b), same)| {
                    (
                        (a.library.to_hex(), a.record_id),
                        (b.library.to_hex(), b.record_id),
                        same,
                    )
                }),
        );
        grouping.libraries = self
            .store
            .namespaces()
            .unwrap_or_default()
            .into_iter()
            .filter(|n| *n != own)
            .map(|n| n.to_hex())
            .collect();
        grouping
    }

    /// Names each holding's library and, for other libraries, how current its catalog is.
    fn name_holdings<'h>(&self, holdings: impl Iterator<Item = &'h mut LibraryHolding>) {
        let own = self.store.library();
        let by_hex: std::collections::HashMap<String, (LibraryId, String)> = self
            .library_names()
            .into_iter()
            .map(|(id, name)| (id.to_hex(), (id, name)))
            .collect();
        for holding in holdings {
            if let Some((id, name)) = by_hex.get(&holding.library) {
                holding.library_name = Some(name.clone());
                if *id != own {
                    let fresh = self.freshness(id);
                    holding.last_change_ms = fresh.last_change_ms;
                    holding.last_seen_ms = fresh.last_seen_ms;
                }
            }
        }
    }

    /// Searches the union catalog: this library's records and every replica, the same
    /// book of several libraries shown once with each library's holding.
    pub fn search(
        &self,
        query: &str,
        page: usize,
        per_page: usize,
    ) -> Result<SearchResults, LibraryError> {
        self.search_in(query, page, per_page, None)
    }

    /// [`Library::search`] within one library's records (`only`: its key, hex).
    pub fn search_in(
        &self,
        query: &str,
        page: usize,
        per_page: usize,
        only: Option<&str>,
    ) -> Result<SearchResults, LibraryError> {
        let grouping = self.grouping();
        self.follow_assertions(&grouping)?;
        let mut results = self
            .index
            .search_in(query, page, per_page, &grouping, only)?;
        self.name_holdings(results.hits.iter_mut().flat_map(|h| h.holdings.iter_mut()));
        let out = self.consortia.out_on_loan();
        for hit in &mut results.hits {
            mark_out_on_loan(hit, &out);
        }
        Ok(results)
    }

    /// One record of the union catalog (`library`: its owner's key in hex), as stored and
    /// as a hit with every library holding the same book.
    pub fn record_view(
        &self,
        library: &str,
        record_id: &str,
    ) -> Result<Option<RecordView>, LibraryError> {
        let Ok(owner) = LibraryId::from_hex(library) else {
            return Ok(None);
        };
        let Some(stored) = self.store.get_of(&owner, record_id)? else {
            return Ok(None);
        };
        let own = owner == self.store.library();
        let grouping = self.grouping();
        self.follow_assertions(&grouping)?;
        let mut hit = self
            .index
            .hit_for((!own).then_some(library), record_id, &grouping)?;
        if let Some(hit) = hit.as_mut() {
            self.name_holdings(hit.holdings.iter_mut());
            mark_out_on_loan(hit, &self.consortia.out_on_loan());
        }
        let record = decode(&stored);
        Ok(Some((stored, record, hit)))
    }

    /// Records and tombstones of a catalog held here (kept by the store with each write).
    pub fn held_counts(&self, namespace: &LibraryId) -> Result<(u64, u64), StoreError> {
        self.store.count_of(namespace)
    }

    /// The bytes a record of a catalog takes here (its shard documents over `held`
    /// records and tombstones), worked out at most once a minute: it walks the documents,
    /// and the sync page asks every few seconds while a catalog arrives.
    fn bytes_per_record(&self, namespace: &LibraryId, held: u64) -> Result<u64, StoreError> {
        let now = std::time::Instant::now();
        let mut known = self
            .bytes_per_record
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some((bytes, at)) = known.get(namespace) {
            if now.duration_since(*at) < std::time::Duration::from_secs(60) {
                return Ok(*bytes);
            }
        }
        let bytes = self.store.catalog_bytes_estimate(namespace)? / held.max(1);
        known.insert(*namespace, (bytes, now));
        Ok(bytes)
    }

    /// [`Library::held_counts`] as counted within the last minute, whatever was written
    /// since: what a member's `Hello` is told (a member cannot make this node walk a whole
    /// catalog at will by writing one change and asking).
    pub fn held_counts_recent(&self, namespace: &LibraryId) -> Result<(u64, u64), StoreError> {
        let now = std::time::Instant::now();
        if let Some((counts, at)) = self
            .recent_counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(namespace)
        {
            if now.duration_since(*at) < std::time::Duration::from_secs(60) {
                return Ok(*counts);
            }
        }
        let counts = self.held_counts(namespace)?;
        self.recent_counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(*namespace, (counts, now));
        Ok(counts)
    }

    /// The node's status.
    pub fn status(&self) -> Result<Status, LibraryError> {
        let id = self.store.library();
        let count_of = |namespace: &LibraryId| -> Result<(u64, u64), LibraryError> {
            Ok(self.held_counts(namespace)?)
        };
        let (records, deleted) = count_of(&id)?;
        let names = self.library_names();
        let mut replicas = Vec::new();
        for namespace in self.store.namespaces()? {
            if namespace == id {
                continue;
            }
            let (records, deleted) = count_of(&namespace)?;
            let fresh = self.freshness(&namespace);
            replicas.push(ReplicaStatus {
                library_id: namespace.to_hex(),
                name: names.get(&namespace).cloned(),
                records,
                deleted,
                last_change_ms: fresh.last_change_ms,
                last_seen_ms: fresh.last_seen_ms,
            });
        }
        Ok(Status {
            name: self.data.config.library.name.clone(),
            code: self.data.config.library.code.clone(),
            library_id: id.to_hex(),
            fingerprint: id.fingerprint(),
            records,
            deleted,
            indexed: self.index.len(),
            seq: self.store.seq()?,
            store_bytes: self.store.size_on_disk(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            replicas,
            memory: Some(self.memory()),
        })
    }

    /// Writes every record (not tombstones) in `format`.
    pub fn export<W: std::io::Write>(
        &self,
        output: W,
        format: Format,
    ) -> Result<(u64, W), LibraryError> {
        let mut writer = RecordWriter::new(output, format)?;
        let mut count = 0;
        for stored in self.store.records() {
            let stored = stored?;
            if stored.deleted {
                continue;
            }
            if let Some(record) = decode(&stored) {
                writer.write(&record)?;
                count += 1;
            }
        }
        Ok((count, writer.finish()?))
    }

    /// Imports records. Each batch is durable before `progress` hears of it. Lenient by
    /// default: damaged records are reported in the summary and the rest imported.
    pub fn import(
        &self,
        source: &Source,
        options: &ImportOptions,
        mut progress: impl FnMut(&Progress),
    ) -> Result<ImportSummary, LibraryError> {
        let format = source.format(options.format)?;
        let _span = tracing::info_span!("import", %format, strict = options.strict).entered();
        let mut summary = ImportSummary {
            format: Some(format),
            ..Default::default()
        };
        if options.strict {
            let damaged: Vec<ParseError> =
                RecordReader::new(source.open()?, format, options.charset)
                    .filter_map(Result::err)
                    .collect();
            if let Some(first) = damaged.first() {
                return Err(LibraryError::StrictRejected {
                    count: damaged.len(),
                    first: first.clone(),
                });
            }
        }
        let batch_max = self.data.config.limits.memory_plan().batch_records;
        // The batch's size as `memory()` shows it, back to nothing however this ends.
        struct NoBatch<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for NoBatch<'_> {
            fn drop(&mut self) {
                self.0.store(0, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let _no_batch = NoBatch(&self.batch_now);
        let mut seen: HashSet<String> = HashSet::new();
        // (change, record, whether the index may already hold the record)
        let mut batch: Vec<(Change, Record, bool)> = Vec::with_capacity(batch_max);
        let mut batch_ids: HashSet<String> = HashSet::new();
        // Into an empty catalog every record is new: no need to look each one up.
        let fresh = self.store.is_empty();
        let mut imported: HashSet<String> = HashSet::new();
        let mut committed = 0;
        let mut unindexed = 0;
        let consumed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = CountingReader {
            inner: source.open()?,
            consumed: consumed.clone(),
        };
        let bytes_read = || Some(consumed.load(std::sync::atomic::Ordering::Relaxed));
        for item in RecordReader::new(
            BufReader::with_capacity(256 * 1024, counted),
            format,
            options.charset,
        ) {
            let parsed = match item {
                Ok(parsed) => parsed,
                Err(error) => {
                    summary.rejected.push(Rejected {
                        location: error.location,
                        reason: error.kind.to_string(),
                        code: error.kind.code().to_string(),
                    });
                    continue;
                }
            };
            summary.read += 1;
            let record_id = parsed.record.id().to_string();
            let marc = match iso2709::write_record(&parsed.record.marc) {
                Ok(bytes) => bytes,
                Err(error) => {
                    summary.rejected.push(Rejected {
                        location: parsed.location,
                        reason: format!("record {record_id}: {error}"),
                        code: "too_long".to_string(),
                    });
                    continue;
                }
            };
            let record = parsed.record;
            if options.delete_missing {
                seen.insert(record_id.clone());
            }
            let stored = if fresh {
                None
            } else {
                self.store.get(&record_id)?
            };
            if fresh && !imported.insert(record_id.clone()) {
                batch_ids.insert(record_id.clone());
            }
            let known = stored.is_some() || batch_ids.contains(&record_id);
            match stored {
                Some(s) if !s.deleted && s.marc == marc => {
                    summary.unchanged += 1;
                    continue;
                }
                Some(s) if !s.deleted => summary.updated += 1,
                _ if batch_ids.contains(&record_id) => summary.updated += 1,
                _ => summary.added += 1,
            }
            batch_ids.insert(record_id.clone());
            batch.push((Change::Put { record_id, marc }, record, known));
            self.batch_now
                .store(batch.len(), std::sync::atomic::Ordering::Relaxed);
            if batch.len() >= batch_max {
                committed += self.commit_batch(&mut batch, &mut unindexed, false)?;
                batch_ids.clear();
                progress(&Progress {
                    read: summary.read,
                    committed,
                    bytes: bytes_read(),
                });
            }
        }
        committed += self.commit_batch(&mut batch, &mut unindexed, true)?;
        progress(&Progress {
            read: summary.read,
            committed,
            bytes: bytes_read(),
        });
        if options.delete_missing {
            let mut tombstones = Vec::new();
            for stored in self.store.records() {
                let stored = stored?;
                if !stored.deleted && !seen.contains(&stored.record_id) {
                    tombstones.push(Change::Delete {
                        record_id: stored.record_id,
                    });
                }
            }
            for chunk in tombstones.chunks(batch_max) {
                let seq = self.store.apply(chunk, now_ms())?;
                let ids: Vec<String> = chunk
                    .iter()
                    .map(|c| {
                        if let Change::Delete { record_id } = c {
                            record_id.clone()
                        } else {
                            String::new()
                        }
                    })
                    .collect();
                for id in &ids {
                    self.index.put(id, None)?;
                }
                self.commit_index(seq)?;
                summary.deleted += chunk.len() as u64;
            }
        }
        self.count_activity(&[
            (Counted::Added, summary.added),
            (Counted::Corrected, summary.updated),
            (Counted::Deleted, summary.deleted),
        ]);
        Ok(summary)
    }

    /// Counts what this library did to its catalog, for the evaluation; a failure is
    /// logged (the catalog itself is written already).
    fn count_activity(&self, counts: &[(Counted, u64)]) {
        let now = self.now_ms();
        for (what, n) in counts {
            if let Err(error) = self.activity.add(*what, *n, now) {
                tracing::warn!("could not count {what:?} for the evaluation: {error}");
            }
        }
    }

    /// Writes a batch to the store and puts it in the index. The index commits when
    /// `INDEX_COMMIT_RECORDS` have gathered, or when `final_batch`: a commit is costly, and
    /// what the index has not committed is found again from the store's sequence numbers.
    fn commit_batch(
        &self,
        batch: &mut Vec<(Change, Record, bool)>,
        unindexed: &mut usize,
        final_batch: bool,
    ) -> Result<u64, LibraryError> {
        if batch.is_empty() {
            if final_batch && *unindexed > 0 {
                self.commit_index(self.store.seq()?)?;
                *unindexed = 0;
            }
            return Ok(0);
        }
        let changes: Vec<Change> = batch.iter().map(|(c, _, _)| c.clone()).collect();
        // The index takes the batch while the store writes it (they use different cores);
        // the index commits only after the store's batch is durable, so it never holds a
        // record the store lost.
        let (stored, indexed) = std::thread::scope(|scope| {
            let indexer = scope.spawn(|| -> Result<(), LibraryError> {
                for (change, record, known) in batch.iter() {
                    if let Change::Put { record_id, .. } = change {
                        if *known {
                            self.index.put(record_id, Some(&record.description))?;
                        } else {
                            self.index.add(record_id, &record.description)?;
                        }
                    }
                }
                Ok(())
            });
            let stored = self.store.apply(&changes, now_ms());
            (stored, indexer.join())
        });
        let seq = match stored {
            Ok(seq) => seq,
            Err(error) => {
                self.index.rollback()?;
                *unindexed = 0;
                return Err(error.into());
            }
        };
        match indexed {
            Ok(Ok(())) => {}
            // Durable, not indexed: found again from the sequence numbers at the next start.
            Ok(Err(error)) => return Err(error),
            Err(_) => return Err(LibraryError::Search(SearchError::Panicked)),
        }
        *unindexed += batch.len();
        if final_batch || *unindexed >= INDEX_COMMIT_RECORDS {
            self.commit_index(seq)?;
            *unindexed = 0;
        }
        let count = batch.len() as u64;
        batch.clear();
        Ok(count)
    }
}

/// A record of the union catalog as stored, as read (None if it does not read back), and
/// as a hit with every library holding the same book (None if the index lacks it).
pub type RecordView = (StoredRecord, Option<Record>, Option<Hit>);

/// Records an import or a catch-up puts in the index between two index commits.
const INDEX_COMMIT_RECORDS: usize = 25_000;

/// The record a stored entry holds (`None` if its bytes do not read back, which would be
/// a bug: only records Jalin wrote are stored).
pub fn decode(stored: &StoredRecord) -> Option<Record> {
    let read = iso2709::Reader::new(stored.marc.as_slice()).next()?.ok()?;
    Some(Record::from_marc(read.record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn library(dir: &Path, code: &str) -> Library {
        let data = DataDir::init(dir, &format!("Perpustakaan {code}"), code).expect("init");
        Library::open(data).expect("opens")
    }

    #[test]
    fn a_catch_up_committed_every_few_records_indexes_every_record() {
        let (dir_a, dir_b) = (
            tempfile::tempdir().expect("dir"),
            tempfile::tempdir().expect("dir"),
        );
        let (a, b) = (library(dir_a.path(), "DESA"), library(dir_b.path(), "KOTA"));
        let sample =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../cli/demo/loc-indonesia-sample.mrc");
        let added = b
            .import(&Source::File(sample), &ImportOptions::default(), |_| {})
            .expect("imports")
            .added;
        assert!(added > 20, "{added} records");
        // B's catalog taken in a few shards a write (each write its own number), not
        // indexed yet.
        let namespace = b.id();
        let shards: Vec<(u16, Vec<crate::store::SignedChange>)> = (0..crate::store::SHARD_COUNT)
            .filter_map(|shard| {
                let changes = b
                    .store()
                    .changes_since(&namespace, shard, &[])
                    .expect("changes");
                (!changes.is_empty()).then_some((shard, changes))
            })
            .collect();
        for part in shards.chunks(5) {
            for result in a.store_remote_many(&namespace, part) {
                result.expect("applies");
            }
        }
        assert_eq!(a.index().len(), 0);
        assert_eq!(
            a.catch_up_index_every(7).expect("catches up"),
            added as usize
        );
        assert_eq!(a.index().len(), added);
        assert_eq!(a.index.committed_seq(), a.store.seq().expect("seq"));
        assert_eq!(a.catch_up_index().expect("nothing left"), 0);
    }
}
