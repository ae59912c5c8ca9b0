//! The durable catalog: a library's records as sharded automerge documents in sled.
//!
//! A library's catalog is split into [`SHARD_COUNT`] automerge documents by a hash of the
//! record id. Each document is a map `records` of record id to one bytes scalar: a small
//! header (deleted, updated) and the MARC record as UTF-8 ISO 2709 (record fields are not
//! collaborative text). sled keeps, in one tree with prefixed keys:
//!
//! ```text
//! r | namespace | record id       -> the record as last written (a materialised view)
//! s | namespace | shard           -> the shard's compacted automerge snapshot
//! c | namespace | shard | n       -> incremental automerge changes since the snapshot
//! e | change hash                 -> the signed envelope of a change (local or replicated)
//! h | namespace | shard           -> the shard document's heads (32 bytes each)
//! t | sequence number             -> when this store took in that write (ms, never
//!                                    earlier than the write before: the OAI-PMH datestamp)

//! m | name                        -> node state (sequence number, ...)
//! ```
//!
//! Every write is one sled batch (atomic), flushed before it is reported: a process
//! killed at any moment restarts with every reported write and no half-written record.
//! Each record carries the store's sequence number of its last change, so the search index
//! (which records the sequence number it reflects) can tell what it has not seen.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ReadDoc, ScalarValue, ROOT};
use ed25519_dalek::SigningKey;
use jalin_protocol::signing::{ChangeEnvelope, LibraryId};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

pub use jalin_protocol::sync::{SignedChange, SHARD_COUNT};
/// Incremental change chunks a shard may collect before it is compacted into a snapshot.
const CHUNKS_BEFORE_COMPACTION: usize = 64;
/// Shards compacted in one batch at most, unless one has twice the chunks it should: an
/// import touches every shard in every batch, and compacting them all at once would put
/// the whole catalog in one write.
const COMPACTIONS_PER_BATCH: usize = 16;
/// [`Store::catalog_bytes_estimate`] reads one shard in this many.
const CATALOG_BYTES_SAMPLE: u16 = 16;
/// Shard documents worked on together in one batch (half on each of two threads).
const SHARDS_PER_GROUP: usize = 16;
/// How long opening waits for a just-closed store's lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
/// sled's log segment, for a new store. Its default (512 KB) sends every value over 64 KB
/// (a shard's snapshot) to a file of its own, and larger ones made imports faster
/// (BENCHMARKS.md, issue 12); but sled allocates a write buffer of a whole segment each
/// time one is sealed (every durable write seals one), and holds dozens at once while a
/// node takes catalogs: 8 MB segments held 260 MB of them (issue 19).
const SLED_SEGMENT_BYTES: usize = 2 * 1024 * 1024;

/// The segment size a store was made with (sled refuses another): from its `conf` file,
/// or [`SLED_SEGMENT_BYTES`] for a new store.
fn segment_size_of(path: &Path) -> usize {
    // (Text lines, then a CRC of 4 bytes.)
    std::fs::read(path.join("conf"))
        .ok()
        .and_then(|bytes| {
            String::from_utf8_lossy(&bytes)
                .lines()
                .find_map(|line| line.strip_prefix("segment_size:"))
                .and_then(|n| n.trim().parse::<usize>().ok())
        })
        // sled's own bounds: a power of two, 256 bytes to 16 MB.
        .filter(|n| n.is_power_of_two() && (256..=1 << 24).contains(n))
        .unwrap_or(SLED_SEGMENT_BYTES)
}

/// What goes wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed (disk full, I/O error, damaged file).
    #[error("storage: {0}")]
    Sled(#[from] sled::Error),
    /// The database is held by another process.
    #[error("the catalog at {path} is in use by another process (is `jalin start` running for this data dir?)")]
    Locked {
        /// The database directory.
        path: String,
    },
    /// An automerge document did not load or apply.
    #[error("catalog document (shard {shard}): {reason}")]
    Automerge {
        /// The shard.
        shard: u16,
        /// What automerge said.
        reason: String,
    },
    /// A stored value is not in the expected layout.
    #[error("stored record {record_id:?} is damaged: {reason}")]
    Damaged {
        /// Which record.
        record_id: String,
        /// What is wrong.
        reason: String,
    },
}

/// A record as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    /// The library's id for it.
    pub record_id: String,
    /// The record as UTF-8 ISO 2709.
    pub marc: Vec<u8>,
    /// Whether it is a tombstone.
    pub deleted: bool,
    /// When it last changed (milliseconds since the Unix epoch).
    pub updated_ms: u64,
    /// The store's sequence number when it last changed.
    pub seq: u64,
}

/// The largest record a stored value may expand to (the ISO 2709 reader's own limit).
const MARC_MAX: usize = 4 << 20;

/// Appends `data` compressed with zstd (level 1) to `out`; false if zstd failed, which it
/// does not for a buffer in memory. One compressor per thread: setting one up costs more
/// than compressing a record.
fn compress_into(data: &[u8], out: &mut Vec<u8>) -> bool {
    thread_local! {
        static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = zstd::bulk::Compressor::new(1).ok();
        }
        match cell.as_mut().and_then(|c| c.compress(data).ok()) {
            Some(compressed) => {
                out.extend_from_slice(&compressed);
                true
            }
            None => false,
        }
    })
}

/// Expands a record compressed by [`compress_into`] (at most [`MARC_MAX`] bytes). One
/// decompressor per thread, as one compressor: each record read back no longer sets up
/// its own.
fn decompress(data: &[u8]) -> std::io::Result<Vec<u8>> {
    thread_local! {
        static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    DECOMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let decompressor = match cell.as_mut() {
            Some(decompressor) => decompressor,
            None => cell.insert(zstd::bulk::Decompressor::new()?),
        };
        decompressor.decompress(data, MARC_MAX)
    })
}

/// `StoredRecord`'s first byte: flags.
const STORED_DELETED: u8 = 1;
const STORED_COMPRESSED: u8 = 2;

/// The layout of a stored record's value, in one place: `[flags, updated_ms (8 bytes,
/// big-endian), seq (8 bytes, big-endian), record]`.
mod stored_layout {
    use std::ops::Range;
    /// The flags byte ([`super::STORED_DELETED`], [`super::STORED_COMPRESSED`]).
    pub const FLAGS: usize = 0;
    /// When the record was last changed, ms since 1970.
    pub const UPDATED_MS: Range<usize> = 1..9;
    /// The store sequence number of its last change.
    pub const SEQ: Range<usize> = 9..17;
    /// Where the record itself starts.
    pub const RECORD: usize = 17;
}

/// A stored value's header, read without decoding the record (scans filter on it).
struct StoredHeader<'a>(&'a [u8]);

impl StoredHeader<'_> {
    fn number(&self, range: std::ops::Range<usize>) -> Option<u64> {
        self.0
            .get(range)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
    }

    /// Whether the record is a tombstone.
    fn deleted(&self) -> bool {
        self.0
            .get(stored_layout::FLAGS)
            .is_some_and(|flags| flags & STORED_DELETED != 0)
    }

    /// When it was last changed (None: the value is shorter than its header).
    fn updated_ms(&self) -> Option<u64> {
        self.number(stored_layout::UPDATED_MS)
    }

    /// The store sequence number of its last change (None: shorter than its header).
    fn seq(&self) -> Option<u64> {
        self.number(stored_layout::SEQ)
    }
}

impl StoredRecord {
    /// `[flags, updated_ms (8 bytes, big-endian), seq (8 bytes), record]`, the record
    /// compressed with zstd when the flags say so. Made from the record's value in its shard
    /// document, so a record is compressed once for both.
    fn encode_from(value: &DocValueBytes, seq: u64) -> Vec<u8> {
        let bytes = &value.0;
        let mut flags = if bytes[1] == 1 { STORED_DELETED } else { 0 };
        if bytes[0] == DocValue::VERSION {
            flags |= STORED_COMPRESSED;
        }
        let mut out = Vec::with_capacity(7 + bytes.len());
        out.push(flags);
        out.extend_from_slice(&bytes[2..10]);
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&bytes[10..]);
        out
    }

    fn decode(record_id: &str, bytes: &[u8]) -> Result<Self, StoreError> {
        let damaged = |reason: &str| StoreError::Damaged {
            record_id: record_id.to_string(),
            reason: reason.to_string(),
        };
        let header = StoredHeader(bytes);
        let (Some(updated_ms), Some(seq), Some(record)) = (
            header.updated_ms(),
            header.seq(),
            bytes.get(stored_layout::RECORD..),
        ) else {
            return Err(damaged("shorter than its header"));
        };
        let flags = bytes[stored_layout::FLAGS];
        if flags & !(STORED_DELETED | STORED_COMPRESSED) != 0 {
            return Err(damaged(&format!("unknown flags {flags:#04x}")));
        }
        let marc = if flags & STORED_COMPRESSED != 0 {
            decompress(record)
                .map_err(|e| damaged(&format!("the compressed record does not expand: {e}")))?
        } else {
            record.to_vec()
        };
        Ok(StoredRecord {
            record_id: record_id.to_string(),
            deleted: flags & STORED_DELETED != 0,
            updated_ms,
            seq,
            marc,
        })
    }
}

/// An encoded `DocValue`: at least its 10-byte header.
struct DocValueBytes(Vec<u8>);

/// A record as the shard documents carry it: one bytes scalar, `[2, deleted, updated_ms
/// (8 bytes, big-endian), the UTF-8 ISO 2709 record compressed with zstd]`. The leading
/// version byte leaves room to change the layout; version 1 held the record uncompressed.
/// Compression matters in memory more than on disk: a loaded shard holds each value twice
/// (the document and its change history), and automerge's own compression is for saving.
struct DocValue<'a> {
    deleted: bool,
    updated_ms: u64,
    marc: Cow<'a, [u8]>,
}

impl<'a> DocValue<'a> {
    const VERSION: u8 = 2;

    fn encode(&self) -> DocValueBytes {
        let mut out = Vec::with_capacity(10 + self.marc.len() / 2);
        out.push(Self::VERSION);
        out.push(u8::from(self.deleted));
        out.extend_from_slice(&self.updated_ms.to_be_bytes());
        if !compress_into(&self.marc, &mut out) {
            out[0] = 1;
            out.extend_from_slice(&self.marc);
        }
        DocValueBytes(out)
    }

    fn decode(bytes: &'a [u8]) -> Option<Self> {
        if bytes.len() < 10 {
            return None;
        }
        let marc = match bytes[0] {
            1 => Cow::Borrowed(&bytes[10..]),
            2 => Cow::Owned(decompress(&bytes[10..]).ok()?),
            _ => return None,
        };
        let updated_ms = u64::from_be_bytes(bytes[2..10].try_into().ok()?);
        Some(DocValue {
            deleted: bytes[1] == 1,
            updated_ms,
            marc,
        })
    }
}

/// One change to apply.
#[derive(Clone, Debug)]
pub enum Change {
    /// Add or replace a record (UTF-8 ISO 2709 bytes).
    Put {
        /// The record id.
        record_id: String,
        /// The record.
        marc: Vec<u8>,
    },
    /// Tombstone a record.
    Delete {
        /// The record id.
        record_id: String,
    },
}

impl Change {
    fn record_id(&self) -> &str {
        match self {
            Change::Put { record_id, .. } | Change::Delete { record_id } => record_id,
        }
    }
}

/// The clock, in milliseconds since the Unix epoch.
fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The library a record key (`r | namespace | record id`) names.
fn namespace_of_key(k: &[u8]) -> Result<LibraryId, StoreError> {
    k.get(1..33)
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .and_then(|b| LibraryId::from_bytes(b).ok())
        .ok_or_else(|| StoreError::Damaged {
            record_id: String::new(),
            reason: "a record key names no valid library".into(),
        })
}

/// Which shard a record belongs to.
pub fn shard_of(record_id: &str) -> u16 {
    let digest = Sha256::digest(record_id.as_bytes());
    u16::from_be_bytes([digest[0], digest[1]]) % SHARD_COUNT
}

/// The lowest store sequence number the index queue starts after: every record written
/// with a higher one has an entry (`q`, the write's sequence number, big-endian, then the
/// record's key without its `r`).
const INDEX_QUEUE_FLOOR: &[u8] = b"mindex-queue-floor";

/// A namespace's kept counts (`n` keys): records, then tombstones, big-endian.
fn encode_counts((live, deleted): (u64, u64)) -> Vec<u8> {
    let mut v = live.to_be_bytes().to_vec();
    v.extend_from_slice(&deleted.to_be_bytes());
    v
}

fn decode_counts(v: &[u8]) -> Option<(u64, u64)> {
    let live = u64::from_be_bytes(v.get(..8)?.try_into().ok()?);
    let deleted = u64::from_be_bytes(v.get(8..16)?.try_into().ok()?);
    Some((live, deleted))
}

/// Queues a record written at `seq` for the index, in the batch that writes it (`k`: the
/// written key; only records, `r` keys, are queued).
fn queue_for_index(batch: &mut sled::Batch, seq: u64, k: &[u8]) {
    if k.first() == Some(&b'r') && k.len() > 33 {
        let mut q = Vec::with_capacity(9 + k.len() - 1);
        q.push(b'q');
        q.extend_from_slice(&seq.to_be_bytes());
        q.extend_from_slice(&k[1..]);
        batch.insert(q, &[] as &[u8]);
    }
}

fn key(prefix: u8, namespace: &LibraryId, rest: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + 32 + rest.len());
    key.push(prefix);
    key.extend_from_slice(namespace.as_bytes());
    key.extend_from_slice(rest);
    key
}

/// Removes the snapshot files sled began to write and never finished, while no process
/// holds the store: a `snap.<lsn>.generating` file becomes `snap.<lsn>` by a rename once it
/// is complete and synced, so one still named so was cut short by a kill or a power cut.
/// sled 0.34 reads the last snapshot file by name, `.generating` ones included, and so
/// would refuse the whole store as corrupt ("Read corrupted data at file offset None",
/// sled issues #1527 and #1533) when the complete snapshot before it and the log are
/// whole. `WouldBlock` when another process holds the store (nothing is removed then).
fn clear_unfinished_snapshots(path: &Path) -> std::io::Result<()> {
    let db_file = path.join("db");
    if !db_file.exists() {
        return Ok(());
    }
    // sled locks this file (flock on Unix, LockFileEx on Windows) for as long as a process
    // has the store open; while this handle holds the lock, no one is writing a snapshot.
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&db_file)?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Err(std::io::ErrorKind::WouldBlock.into()),
        Err(std::fs::TryLockError::Error(error)) => return Err(error),
    }
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::warn!(
                file = %entry.path().display(),
                "removing a store snapshot that was not finished (the node was stopped while \
                 writing it); the store opens from the snapshot before it and its log"
            );
            std::fs::remove_file(entry.path())?;
        }
    }
    drop(lock);
    Ok(())
}

/// What a loaded shard document holds in memory, per byte it takes on disk (its snapshot
/// and chunks): its records' bytes once in the document and once in its change history,
/// and automerge's indexes (measured: ~1.8 KB a record in memory for ~0.9 KB on disk;
/// BENCHMARKS.md, issue 19).
const DOC_BYTES_PER_STORED_BYTE: u64 = 2;

/// A loaded shard document and an estimate of the memory it holds.
struct Shard {
    doc: AutoCommit,
    bytes: u64,
}

impl Shard {
    /// Counts `stored` more bytes written into it.
    fn grew(&mut self, stored: usize) {
        self.bytes = self
            .bytes
            .saturating_add(DOC_BYTES_PER_STORED_BYTE.saturating_mul(stored as u64));
    }
}

/// Loaded shard documents, the least recently used dropped first, within both a count
/// and the memory budget's share for them (`[limits] memory_mb`).
struct ShardCache {
    docs: HashMap<ShardKey, Shard>,
    order: VecDeque<ShardKey>,
    capacity: usize,
    bytes_max: u64,
    bytes: u64,
}

/// A shard document: whose catalog, which shard.
type ShardKey = (LibraryId, u16);

impl ShardCache {
    fn new(capacity: usize, bytes_max: u64) -> ShardCache {
        ShardCache {
            docs: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            bytes_max,
            bytes: 0,
        }
    }

    /// Takes a document out while it is worked on (it is not counted meanwhile).
    fn take(&mut self, shard: ShardKey) -> Option<Shard> {
        let taken = self.docs.remove(&shard)?;
        self.bytes = self.bytes.saturating_sub(taken.bytes);
        self.order.retain(|s| *s != shard);
        Some(taken)
    }

    /// Keeps a document as the most recently used, then drops the least recently used
    /// ones past the limits (the one just kept stays, even alone over them).
    fn put(&mut self, key: ShardKey, shard: Shard) {
        self.take(key);
        self.bytes = self.bytes.saturating_add(shard.bytes);
        self.docs.insert(key, shard);
        self.order.push_back(key);
        while self.order.len() > 1
            && (self.order.len() > self.capacity || self.bytes > self.bytes_max)
        {
            if let Some(old) = self.order.pop_front() {
                if let Some(dropped) = self.docs.remove(&old) {
                    self.bytes = self.bytes.saturating_sub(dropped.bytes);
                }
            }
        }
    }

    fn evict(&mut self, shard: ShardKey) {
        self.take(shard);
    }

    /// Drops the least recently used documents until `extra` more bytes (documents
    /// taken out and kept in memory meanwhile) fit beside them within the share.
    fn make_room(&mut self, extra: u64) {
        while self.bytes.saturating_add(extra) > self.bytes_max {
            let Some(old) = self.order.pop_front() else {
                return;
            };
            if let Some(dropped) = self.docs.remove(&old) {
                self.bytes = self.bytes.saturating_sub(dropped.bytes);
            }
        }
    }
}

fn heads_bytes(heads: &[automerge::ChangeHash]) -> Vec<u8> {
    heads.iter().flat_map(|h| h.0).collect()
}

fn heads_from(bytes: &[u8]) -> Vec<[u8; 32]> {
    bytes
        .chunks_exact(32)
        .filter_map(|c| c.try_into().ok())
        .collect()
}

/// What taking in another library's changes did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoteApplied {
    /// Changes new here.
    pub changes: usize,
    /// Records that changed (tombstones included).
    pub records: Vec<String>,
}

/// Why another library's changes were refused.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// A change's envelope is not the namespace owner's, or not for this shard.
    #[error("change {index} of the batch for {namespace} shard {shard}: {reason}")]
    Refused {
        /// The namespace.
        namespace: String,
        /// The shard.
        shard: u16,
        /// Which change (0-based).
        index: usize,
        /// Why.
        reason: String,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The durable catalog of one node.
pub struct Store {
    db: crate::durable::Db,
    tree: crate::durable::Tree,
    key: SigningKey,
    library: LibraryId,
    cache: Mutex<ShardCache>,
    /// Serialises writers: one batch at a time keeps shard docs and sled in step.
    write_lock: Mutex<()>,
    /// Shards written since [`Store::take_touched`] last asked, by namespace: what a
    /// node tells its members it changed.
    touched: Mutex<HashMap<LibraryId, BTreeSet<u16>>>,
    /// Counts the writes to this library's own catalog: the network watches it to
    /// announce each one, whichever path wrote it (API, web page, import, harvest).
    own_writes: tokio::sync::watch::Sender<u64>,
}

impl Store {
    /// Opens (or creates) the store at `path` for the library with `key`.
    pub fn open(
        path: &Path,
        key: SigningKey,
        memory: &crate::config::MemoryPlan,
    ) -> Result<Store, StoreError> {
        let cache_bytes = memory.store_cache_bytes;
        // sled's page cache (`[limits] store_cache_mb`; sled's default is 1 GB); the shard
        // documents are cached above it. sled keeps more than this resident after a walk
        // over the whole tree (status counts, an export): ~100 MB for 250,000 records,
        // whatever the setting (BENCHMARKS.md, issue 13).
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .segment_size(segment_size_of(path));
        // A store closed a moment ago may still hold its lock: sled releases it from its
        // flusher thread. Wait a little for that before saying another process has it.
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        let db = loop {
            if let Err(error) = clear_unfinished_snapshots(path) {
                if error.kind() != std::io::ErrorKind::WouldBlock {
                    return Err(StoreError::Sled(sled::Error::Io(error)));
                }
            }
            match config.open() {
                Ok(db) => break db,
                Err(sled::Error::Io(io))
                    if io.kind() == std::io::ErrorKind::WouldBlock
                        || io.to_string().contains("lock") =>
                {
                    if std::time::Instant::now() >= deadline {
                        return Err(StoreError::Locked {
                            path: path.display().to_string(),
                        });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(error) => return Err(StoreError::Sled(error)),
            }
        };
        let db = crate::durable::Db::new(db, path)?;
        let tree = db.open_tree("catalog")?;
        if tree.get(INDEX_QUEUE_FLOOR)?.is_none() {
            // A store older than the queue: it holds no entries for the writes so far, so
            // it starts from here (an index behind this walks the whole store once).
            let seq = tree
                .get(b"mseq")?
                .map_or([0; 8], |v| v.as_ref().try_into().unwrap_or([0; 8]));
            tree.insert(INDEX_QUEUE_FLOOR, seq.to_vec())?;
        }
        let library = LibraryId::from_key(&key.verifying_key());
        Ok(Store {
            db,
            tree,
            key,
            library,
            cache: Mutex::new(ShardCache::new(
                memory.shard_documents_max,
                memory.shard_documents_bytes,
            )),
            write_lock: Mutex::new(()),
            touched: Mutex::new(HashMap::new()),
            own_writes: tokio::sync::watch::Sender::new(0),
        })
    }

    /// The shards of `namespace` written since the last call (and forgets them).
    pub(crate) fn take_touched(&self, namespace: &LibraryId) -> BTreeSet<u16> {
        self.touched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(namespace)
            .unwrap_or_default()
    }

    fn touch(&self, namespace: &LibraryId, shards: impl IntoIterator<Item = u16>) {
        let mut touched = self.touched.lock().unwrap_or_else(|p| p.into_inner());
        let entry = touched.entry(*namespace).or_default();
        let mut any = false;
        for shard in shards {
            entry.insert(shard);
            any = true;
        }
        drop(touched);
        if any && *namespace == self.library {
            self.own_writes.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Wakes at each write to this library's own catalog (stored and durable by then;
    /// several quick writes may wake it once).
    pub fn watch_own_writes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.own_writes.subscribe()
    }

    /// This node's library.
    pub fn library(&self) -> LibraryId {
        self.library
    }

    /// The store's sequence number: it grows with every write.
    pub fn seq(&self) -> Result<u64, StoreError> {
        Ok(self.tree.get(b"mseq")?.map_or(0, |v| {
            u64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8]))
        }))
    }

    /// Notes in `batch` when the write `seq` happens: `now_ms`, or the time of the write
    /// before if the clock went back, so times follow sequence numbers.
    fn stamp(&self, batch: &mut sled::Batch, seq: u64, now_ms: u64) -> Result<(), StoreError> {
        let last = self
            .tree
            .scan_prefix([b't'])
            .next_back()
            .transpose()?
            .and_then(|(_, v)| v.as_ref().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0);
        let mut k = vec![b't'];
        k.extend_from_slice(&seq.to_be_bytes());
        batch.insert(k, now_ms.max(last).to_be_bytes().to_vec());
        Ok(())
    }

    /// When each write happened (sequence number, ms), in order: what OAI-PMH calls a
    /// record's datestamp is the time of its last write here. Stores made before writes
    /// were timed lack the early ones.
    pub fn write_times(&self) -> Result<Vec<(u64, u64)>, StoreError> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix([b't']) {
            let (k, v) = item?;
            let seq = k
                .get(1..9)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes);
            let ms = v.as_ref().try_into().ok().map(u64::from_be_bytes);
            if let (Some(seq), Some(ms)) = (seq, ms) {
                out.push((seq, ms));
            }
        }
        Ok(out)
    }

    /// Up to `limit` records of the union catalog (every namespace, or `namespace`'s),
    /// tombstones included, in key order (namespace, then record id) after `after` (a key
    /// this returned), with their keys. `keep` sees each record's flags-and-seq header
    /// (deleted, seq) before the record is read.
    #[allow(clippy::type_complexity)]
    pub fn union_page(
        &self,
        namespace: Option<&LibraryId>,
        after: Option<&[u8]>,
        limit: usize,
        mut keep: impl FnMut(bool, u64, u64) -> bool,
    ) -> Result<Vec<(Vec<u8>, LibraryId, StoredRecord)>, StoreError> {
        let prefix = match namespace {
            Some(namespace) => key(b'r', namespace, &[]),
            None => vec![b'r'],
        };
        let start = match after {
            Some(after) if after.starts_with(&prefix) => {
                let mut start = after.to_vec();
                start.push(0);
                start
            }
            _ => prefix.clone(),
        };
        let mut out = Vec::new();
        for item in self.tree.range(start..) {
            let (k, v) = item?;
            if !k.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            let header = StoredHeader(&v);
            let (seq, updated) = (header.seq().unwrap_or(0), header.updated_ms().unwrap_or(0));
            if !keep(header.deleted(), seq, updated) {
                continue;
            }
            let namespace = namespace_of_key(&k)?;
            let record_id = String::from_utf8_lossy(&k[33..]).into_owned();
            let record = StoredRecord::decode(&record_id, &v)?;
            out.push((k.to_vec(), namespace, record));
        }
        Ok(out)
    }

    /// A record of any library, deleted or not.
    pub fn get_of(
        &self,
        namespace: &LibraryId,
        record_id: &str,
    ) -> Result<Option<StoredRecord>, StoreError> {
        self.tree
            .get(key(b'r', namespace, record_id.as_bytes()))?
            .map(|v| StoredRecord::decode(record_id, &v))
            .transpose()
    }

    /// A record of this library, deleted or not.
    pub fn get(&self, record_id: &str) -> Result<Option<StoredRecord>, StoreError> {
        let k = key(b'r', &self.library, record_id.as_bytes());
        self.tree
            .get(k)?
            .map(|v| StoredRecord::decode(record_id, &v))
            .transpose()
    }

    /// Every record of this library, in record id order (tombstones included).
    pub fn records(&self) -> impl Iterator<Item = Result<StoredRecord, StoreError>> + '_ {
        let prefix = key(b'r', &self.library, &[]);
        self.tree.scan_prefix(prefix.clone()).map(move |item| {
            let (k, v) = item?;
            let record_id = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            StoredRecord::decode(&record_id, &v)
        })
    }

    /// Records (tombstones included) changed after store sequence number `seq`: what a
    /// search index committed at `seq` has not seen.
    pub fn changed_since(
        &self,
        seq: u64,
    ) -> impl Iterator<Item = Result<StoredRecord, StoreError>> + '_ {
        // The sequence number sits before the (compressed) record: filter on it first.
        let prefix = key(b'r', &self.library, &[]);
        self.tree
            .scan_prefix(prefix.clone())
            .filter(move |item| match item {
                Ok((_, v)) => StoredHeader(v).seq().is_none_or(|changed| changed > seq),
                Err(_) => true,
            })
            .map(move |item| {
                let (k, v) = item?;
                let record_id = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                StoredRecord::decode(&record_id, &v)
            })
    }

    /// Other libraries' records (tombstones included) changed after store sequence number
    /// `seq`, with whose they are.
    pub fn replicas_changed_since(
        &self,
        seq: u64,
    ) -> impl Iterator<Item = Result<(LibraryId, StoredRecord), StoreError>> + '_ {
        let own = self.library;
        self.tree
            .scan_prefix([b'r'])
            .filter(move |item| match item {
                Ok((k, v)) => {
                    k.get(1..33) != Some(own.as_bytes().as_slice())
                        && StoredHeader(v).seq().is_none_or(|changed| changed > seq)
                }
                Err(_) => true,
            })
            .map(move |item| {
                let (k, v) = item?;
                let namespace = namespace_of_key(&k)?;
                let record_id = String::from_utf8_lossy(&k[33..]).into_owned();
                Ok((namespace, StoredRecord::decode(&record_id, &v)?))
            })
    }

    /// The records of every library written after store sequence number `since` and up to
    /// `until`, as `(library, record id, the write's sequence number)` in write order, one
    /// entry per write (a record written twice since has two; a record since forgotten
    /// has its entries still): what an index committed at `since` has not seen. None when the
    /// queue does not reach back that far (kept only from [`Store::trim_index_queue`]'s
    /// last `seq` on, or from when the store first opened with a queue): walk the store.
    #[allow(clippy::type_complexity)]
    pub fn index_queue(
        &self,
        since: u64,
        until: u64,
    ) -> Result<
        Option<impl Iterator<Item = Result<(LibraryId, String, u64), StoreError>> + '_>,
        StoreError,
    > {
        let floor = self.tree.get(INDEX_QUEUE_FLOOR)?.map_or(u64::MAX, |v| {
            u64::from_be_bytes(v.as_ref().try_into().unwrap_or([0xff; 8]))
        });
        if since < floor {
            return Ok(None);
        }
        let mut start = vec![b'q'];
        start.extend_from_slice(&since.saturating_add(1).to_be_bytes());
        let mut end = vec![b'q'];
        end.extend_from_slice(&until.saturating_add(1).to_be_bytes());
        Ok(Some(self.tree.range(start..end).map(|item| {
            let (k, _) = item?;
            let seq = k
                .get(1..9)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes);
            let namespace = k
                .get(8..)
                .filter(|rest| rest.len() > 33)
                .map(namespace_of_key)
                .transpose()?;
            match (seq, namespace) {
                (Some(seq), Some(namespace)) => Ok((
                    namespace,
                    String::from_utf8_lossy(&k[41..]).into_owned(),
                    seq,
                )),
                _ => Err(StoreError::Damaged {
                    record_id: String::new(),
                    reason: "an index queue entry is too short".into(),
                }),
            }
        })))
    }

    /// Forgets the index queue's entries up to `seq` (an index committed there has seen
    /// them), and so starts the queue after it: the start first, then the entries a
    /// thousand at a time (sled holds a copy of each node a batch touches until the
    /// batch ends: one batch of a whole sync's entries held tens of MB).
    pub fn trim_index_queue(&self, seq: u64) -> Result<(), StoreError> {
        self.tree
            .insert(INDEX_QUEUE_FLOOR, seq.to_be_bytes().to_vec())?;
        let mut end = vec![b'q'];
        end.extend_from_slice(&seq.saturating_add(1).to_be_bytes());
        // One key at a time: a batch of them would hold sled's copy of a node for each
        // key until its end (113 MB of them at a thousand keys a batch, issue 19).
        loop {
            let keys: Vec<sled::IVec> = self
                .tree
                .range([b'q'].to_vec()..end.clone())
                .keys()
                .take(1_000)
                .collect::<Result<_, _>>()?;
            if keys.is_empty() {
                return Ok(());
            }
            for k in keys {
                self.tree.remove(k)?;
            }
        }
    }

    /// Whether the library holds no records at all (not even tombstones).
    pub fn is_empty(&self) -> bool {
        self.tree
            .scan_prefix(key(b'r', &self.library, &[]))
            .next()
            .is_none()
    }

    /// The signed envelope of a local change.
    pub fn envelope(&self, change_hash: &[u8; 32]) -> Result<Option<ChangeEnvelope>, StoreError> {
        let mut k = vec![b'e'];
        k.extend_from_slice(change_hash);
        Ok(self
            .tree
            .get(k)?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Every stored envelope (for tests and, later, replication).
    pub fn envelopes(&self) -> impl Iterator<Item = Result<ChangeEnvelope, StoreError>> + '_ {
        self.tree.scan_prefix([b'e']).values().map(|v| {
            let v = v?;
            serde_json::from_slice(&v).map_err(|e| StoreError::Damaged {
                record_id: String::new(),
                reason: format!("envelope: {e}"),
            })
        })
    }

    fn load_shard(&self, namespace: &LibraryId, shard: u16) -> Result<AutoCommit, StoreError> {
        Ok(self.load_sized(namespace, shard)?.doc)
    }

    /// A shard document from disk, with the memory it is estimated to hold.
    fn load_sized(&self, namespace: &LibraryId, shard: u16) -> Result<Shard, StoreError> {
        let fail = |e: automerge::AutomergeError| StoreError::Automerge {
            shard,
            reason: e.to_string(),
        };
        let snapshot = self.tree.get(key(b's', namespace, &shard.to_be_bytes()))?;
        let mut stored = snapshot.as_ref().map_or(0, |s| s.len());
        let mut doc = match snapshot {
            Some(bytes) => AutoCommit::load(&bytes).map_err(fail)?,
            None => AutoCommit::new(),
        };
        for chunk in self
            .tree
            .scan_prefix(key(b'c', namespace, &shard.to_be_bytes()))
            .values()
        {
            let chunk = chunk?;
            stored += chunk.len();
            doc.load_incremental(&chunk).map_err(fail)?;
        }
        doc.set_actor(automerge::ActorId::from(namespace.as_bytes().as_slice()));
        let mut loaded = Shard { doc, bytes: 0 };
        loaded.grew(stored);
        Ok(loaded)
    }

    /// The shard documents loaded now, and the memory they are estimated to hold.
    pub fn shard_documents_loaded(&self) -> (usize, u64) {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        (cache.docs.len(), cache.bytes)
    }

    /// A shard document's records as automerge holds them, loaded from disk (for checks):
    /// id, whether deleted, and the record.
    #[allow(clippy::type_complexity)]
    pub fn shard_records(&self, shard: u16) -> Result<Vec<(String, bool, Vec<u8>)>, StoreError> {
        let doc = self.load_shard(&self.library, shard)?;
        let fail = |e: automerge::AutomergeError| StoreError::Automerge {
            shard,
            reason: e.to_string(),
        };
        let Some((_, records)) = doc.get(ROOT, "records").map_err(fail)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for key in doc.keys(&records).collect::<Vec<_>>() {
            let value = match doc.get(&records, key.as_str()).map_err(fail)? {
                Some((automerge::Value::Scalar(scalar), _)) => match scalar.as_ref() {
                    ScalarValue::Bytes(bytes) => {
                        DocValue::decode(bytes).map(|v| (v.deleted, v.marc.into_owned()))
                    }
                    _ => None,
                },
                _ => None,
            };
            let (deleted, marc) = value.ok_or_else(|| StoreError::Damaged {
                record_id: key.clone(),
                reason: format!("shard {shard} holds a value that is not a record"),
            })?;
            out.push((key, deleted, marc));
        }
        Ok(out)
    }

    /// Applies changes as one durable batch. Returns the new sequence number once the
    /// batch is flushed to disk. Shards are independent, so their automerge work is split
    /// between two threads, a few shards at a time: at most the cache's capacity plus one
    /// group of documents is loaded at any moment, however many shards the batch touches.
    pub(crate) fn apply(&self, changes: &[Change], now_ms: u64) -> Result<u64, StoreError> {
        let _writer = self
            .write_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let seq = self.seq()? + 1;
        let mut by_shard: HashMap<u16, Vec<&Change>> = HashMap::new();
        for change in changes {
            by_shard
                .entry(shard_of(change.record_id()))
                .or_default()
                .push(change);
        }
        // Take the shards' documents out of the cache while they are worked on; those that
        // are loaded go first, so a document is not dropped to make room for one read back.
        let (mut work, capacity, bytes_max) = {
            let mut cache = self
                .cache
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let work: Vec<(u16, Option<Shard>, Vec<&Change>)> = by_shard
                .into_iter()
                .map(|(shard, changes)| {
                    let doc = cache.take((self.library, shard));
                    (shard, doc, changes)
                })
                .collect();
            (work, cache.capacity, cache.bytes_max)
        };
        work.sort_by_key(|(shard, doc, _)| (doc.is_none(), *shard));
        let mut kept = 0usize;
        let mut kept_bytes = 0u64;
        let mut writes = Vec::new();
        let compactions = AtomicUsize::new(0);
        let mut failure = None;
        for group in work.chunks_mut(SHARDS_PER_GROUP) {
            let half = group.len().div_ceil(2);
            let (first, second) = group.split_at_mut(half);
            let (writes_a, writes_b) = std::thread::scope(|scope| {
                let other = scope.spawn(|| self.apply_shards(second, seq, now_ms, &compactions));
                let mine = self.apply_shards(first, seq, now_ms, &compactions);
                (
                    mine,
                    other.join().unwrap_or_else(|_| {
                        Err(StoreError::Automerge {
                            shard: 0,
                            reason: "a shard worker panicked".into(),
                        })
                    }),
                )
            });
            match writes_a.and_then(|a| writes_b.map(|b| (a, b))) {
                Ok((a, b)) => writes.extend(a.into_iter().chain(b)),
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
            // Past the cache's capacity, a worked document is dropped: its changes are in
            // `writes`, and it is read back from disk when next needed.
            // The documents kept count against the share with those still in the cache
            // (other catalogs'): the least recently used of those go to make room.
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            for (_, doc, _) in group.iter_mut() {
                let bytes = doc.as_ref().map_or(0, |d| d.bytes);
                if kept < capacity && kept_bytes.saturating_add(bytes) <= bytes_max {
                    kept += 1;
                    kept_bytes += bytes;
                    cache.make_room(kept_bytes);
                } else {
                    *doc = None;
                }
            }
            drop(cache);
        }
        let result = match failure {
            Some(error) => Err(error),
            None => self.write_batch(writes, seq, now_ms).map(|()| seq),
        };
        if result.is_ok() {
            self.touch(&self.library, work.iter().map(|(shard, _, _)| *shard));
        }
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (shard, doc, _) in work {
            // After a failure the documents in memory may be ahead of the disk: drop them,
            // so they are loaded again from what is stored.
            let shard = (self.library, shard);
            match doc {
                Some(doc) if result.is_ok() => cache.put(shard, doc),
                _ => cache.evict(shard),
            }
        }
        result
    }

    /// Applies each shard's changes to its document (loading it if needed) and returns the
    /// sled writes: `(key, Some(value))` to insert, `(key, None)` to remove.
    #[allow(clippy::type_complexity)]
    fn apply_shards(
        &self,
        work: &mut [(u16, Option<Shard>, Vec<&Change>)],
        seq: u64,
        now_ms: u64,
        compactions: &AtomicUsize,
    ) -> Result<Vec<(Vec<u8>, Option<Vec<u8>>)>, StoreError> {
        let mut writes = Vec::new();
        for (shard, doc, changes) in work.iter_mut() {
            let shard = *shard;
            if doc.is_none() {
                *doc = Some(self.load_sized(&self.library, shard)?);
            }
            let Some(loaded) = doc.as_mut() else { continue };
            let mut added = 0usize;
            let doc = &mut loaded.doc;
            let fail = |e: automerge::AutomergeError| StoreError::Automerge {
                shard,
                reason: e.to_string(),
            };
            // What is new is what comes after these heads (save_incremental's own cursor
            // does not move when a document is loaded from chunks).
            let heads_before = doc.get_heads();
            let records = match doc.get(ROOT, "records").map_err(fail)? {
                Some((_, id)) => id,
                None => doc
                    .put_object(ROOT, "records", ObjType::Map)
                    .map_err(fail)?,
            };
            for change in changes.iter() {
                let (record_id, marc, deleted) = match change {
                    Change::Put { record_id, marc } => {
                        (record_id, Cow::Borrowed(marc.as_slice()), false)
                    }
                    Change::Delete { record_id } => (
                        record_id,
                        Cow::Owned(self.get(record_id)?.map(|r| r.marc).unwrap_or_default()),
                        true,
                    ),
                };
                // One scalar per record: the record is replaced whole, never merged field by
                // field (a library is the only writer of its catalog).
                let value = DocValue {
                    deleted,
                    updated_ms: now_ms,
                    marc,
                }
                .encode();
                writes.push((
                    key(b'r', &self.library, record_id.as_bytes()),
                    Some(StoredRecord::encode_from(&value, seq)),
                ));
                added += value.0.len();
                doc.put(&records, record_id.as_str(), ScalarValue::Bytes(value.0))
                    .map_err(fail)?;
            }
            let Some(hash) = doc.commit() else { continue };
            writes.push((
                key(b'h', &self.library, &shard.to_be_bytes()),
                Some(heads_bytes(&doc.get_heads())),
            ));
            let envelope = ChangeEnvelope::sign(&self.key, shard, hash.0);
            let mut envelope_key = vec![b'e'];
            envelope_key.extend_from_slice(&hash.0);
            writes.push((
                envelope_key,
                Some(serde_json::to_vec(&envelope).unwrap_or_default()),
            ));
            let chunk_prefix = key(b'c', &self.library, &shard.to_be_bytes());
            let chunks: Vec<sled::IVec> = self
                .tree
                .scan_prefix(chunk_prefix.clone())
                .keys()
                .collect::<Result<_, _>>()?;
            let compact = chunks.len() >= 2 * CHUNKS_BEFORE_COMPACTION
                || (chunks.len() >= CHUNKS_BEFORE_COMPACTION
                    && compactions.fetch_add(1, Ordering::Relaxed) < COMPACTIONS_PER_BATCH);
            if compact {
                for chunk in chunks {
                    writes.push((chunk.to_vec(), None));
                }
                writes.push((
                    key(b's', &self.library, &shard.to_be_bytes()),
                    Some(doc.save()),
                ));
            } else {
                let mut chunk_key = chunk_prefix;
                chunk_key.extend_from_slice(&seq.to_be_bytes());
                writes.push((chunk_key, Some(doc.save_after(&heads_before))));
            }
            loaded.grew(added);
        }
        Ok(writes)
    }

    /// The libraries whose catalogs this store holds (its own among them once it has
    /// written a record).
    pub fn namespaces(&self) -> Result<Vec<LibraryId>, StoreError> {
        let mut out: Vec<LibraryId> = Vec::new();
        // 256 keys per namespace, in order: a key is decoded (a curve point checked, tens
        // of microseconds) only where the namespace changes, not 256 times.
        let mut last: Option<[u8; 32]> = None;
        for k in self.tree.scan_prefix([b'h']).keys() {
            let k = k?;
            let Some(bytes) = k.get(1..33).and_then(|b| <[u8; 32]>::try_from(b).ok()) else {
                continue;
            };
            if last == Some(bytes) {
                continue;
            }
            last = Some(bytes);
            if let Ok(id) = LibraryId::from_bytes(bytes) {
                out.push(id);
            }
        }
        out.dedup();
        Ok(out)
    }

    /// Forgets another library's catalog whole: its records, shard documents, heads and
    /// envelopes, in one flushed batch (a library this one no longer shares a consortium
    /// with). Returns how many of its records were held. This library's own catalog is
    /// never forgotten.
    pub(crate) fn forget_catalog(&self, namespace: &LibraryId) -> Result<usize, StoreError> {
        if *namespace == self.library {
            return Ok(0);
        }
        let _writing = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut batch = sled::Batch::default();
        let mut records = 0usize;
        for prefix in [b'r', b's', b'c', b'h', b'n'] {
            for k in self.tree.scan_prefix(key(prefix, namespace, &[])).keys() {
                let k = k?;
                records += usize::from(prefix == b'r');
                batch.remove(k);
            }
        }
        // Envelopes are keyed by change hash alone: each says whose catalog it signs.
        for item in self.tree.scan_prefix([b'e']) {
            let (k, v) = item?;
            if serde_json::from_slice::<ChangeEnvelope>(&v)
                .is_ok_and(|envelope| envelope.namespace == *namespace)
            {
                batch.remove(k);
            }
        }
        self.tree.apply_batch(batch)?;
        self.db.flush()?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        for shard in 0..SHARD_COUNT {
            cache.evict((*namespace, shard));
        }
        drop(cache);
        self.touched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(namespace);
        Ok(records)
    }

    /// The heads of one shard document (none for a shard never written).
    pub fn shard_heads(
        &self,
        namespace: &LibraryId,
        shard: u16,
    ) -> Result<Vec<[u8; 32]>, StoreError> {
        if let Some(bytes) = self.tree.get(key(b'h', namespace, &shard.to_be_bytes()))? {
            return Ok(heads_from(&bytes));
        }
        // Stores written before heads were kept: ask the document.
        if self
            .tree
            .scan_prefix(key(b'c', namespace, &shard.to_be_bytes()))
            .next()
            .is_none()
            && self
                .tree
                .get(key(b's', namespace, &shard.to_be_bytes()))?
                .is_none()
        {
            return Ok(Vec::new());
        }
        let mut doc = self.load_shard(namespace, shard)?;
        Ok(doc.get_heads().iter().map(|h| h.0).collect())
    }

    /// A digest of a namespace's shard heads: two stores with the same digest hold the
    /// same catalog of that library. 32 bytes, whatever the catalog's size.
    pub fn namespace_digest(&self, namespace: &LibraryId) -> Result<[u8; 32], StoreError> {
        let mut hasher = Sha256::new();
        for shard in 0..SHARD_COUNT {
            let heads = self.shard_heads(namespace, shard)?;
            if !heads.is_empty() {
                hasher.update(shard.to_be_bytes());
                for head in heads {
                    hasher.update(head);
                }
            }
        }
        Ok(hasher.finalize().into())
    }

    /// Bytes the shard documents of a namespace take in sled: their compacted snapshots
    /// and the incremental chunks since (not the materialised view, the envelopes or the
    /// index). What a catalog's replicated form costs at rest.
    pub fn catalog_bytes(&self, namespace: &LibraryId) -> Result<u64, StoreError> {
        let mut bytes = 0u64;
        for prefix in [b's', b'c'] {
            for value in self.tree.scan_prefix(key(prefix, namespace, &[])).values() {
                bytes += value?.len() as u64;
            }
        }
        Ok(bytes)
    }

    /// [`Store::catalog_bytes`] estimated from one shard in [`CATALOG_BYTES_SAMPLE`]
    /// (records go to shards by a hash of their id, so each holds about as much): what
    /// the sync page's time to go needs, without reading every snapshot of the catalog
    /// (14 MB of sled's pages at once while four catalogs arrived, issue 19).
    pub fn catalog_bytes_estimate(&self, namespace: &LibraryId) -> Result<u64, StoreError> {
        let mut bytes = 0u64;
        for shard in (0..SHARD_COUNT).step_by(usize::from(CATALOG_BYTES_SAMPLE)) {
            for prefix in [b's', b'c'] {
                let prefix = key(prefix, namespace, &shard.to_be_bytes());
                for value in self.tree.scan_prefix(prefix).values() {
                    bytes += value?.len() as u64;
                }
            }
        }
        Ok(bytes.saturating_mul(u64::from(CATALOG_BYTES_SAMPLE)))
    }

    /// Records of a namespace held, and tombstones: kept with every write, so asking does
    /// not walk the catalog (a store from before counts once, by a walk, and keeps it).
    pub fn count_of(&self, namespace: &LibraryId) -> Result<(u64, u64), StoreError> {
        if let Some(counts) = self.tree.get(key(b'n', namespace, &[]))? {
            if let Some(counts) = decode_counts(&counts) {
                return Ok(counts);
            }
        }
        let _writer = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.counts_kept(namespace)
    }

    /// [`Store::count_of`] under the write lock: the counts kept, or counted now by a
    /// walk and kept.
    fn counts_kept(&self, namespace: &LibraryId) -> Result<(u64, u64), StoreError> {
        let k = key(b'n', namespace, &[]);
        if let Some(counts) = self.tree.get(&k)?.as_deref().and_then(decode_counts) {
            return Ok(counts);
        }
        let counts = self.walk_count(namespace)?;
        self.tree.insert(k, encode_counts(counts))?;
        Ok(counts)
    }

    /// The counts of each namespace after the record writes of a batch (`(key, value)`),
    /// as writes to put in the same batch: the write lock held, before the batch is
    /// applied (each record's flags before it are read from the store).
    #[allow(clippy::type_complexity)]
    fn count_writes<'a>(
        &self,
        writes: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        let mut counts: HashMap<LibraryId, (u64, u64)> = HashMap::new();
        // A record written twice in one batch: the first write is what the second replaces.
        let mut written: HashMap<&[u8], bool> = HashMap::new();
        for (k, v) in writes {
            if k.first() != Some(&b'r') || k.len() <= 33 {
                continue;
            }
            let namespace = namespace_of_key(k)?;
            let deleted = StoredHeader(v).deleted();
            let before = match written.insert(k, deleted) {
                Some(before) => Some(before),
                None => self.tree.get(k)?.map(|old| StoredHeader(&old).deleted()),
            };
            let count = match counts.entry(namespace) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(self.counts_kept(&namespace)?)
                }
            };
            match before {
                Some(true) => count.1 = count.1.saturating_sub(1),
                Some(false) => count.0 = count.0.saturating_sub(1),
                None => {}
            }
            if deleted {
                count.1 += 1;
            } else {
                count.0 += 1;
            }
        }
        Ok(counts
            .into_iter()
            .map(|(namespace, counts)| (key(b'n', &namespace, &[]), encode_counts(counts)))
            .collect())
    }

    /// Writes one batch, write `seq` at `now_ms`, and flushes it: `writes` (`(key,
    /// Some(value))` to insert, `(key, None)` to remove), with the catalogs' counts after
    /// them, each record written queued for the index, and the store's sequence number
    /// and write time. The write lock held.
    fn write_batch(
        &self,
        writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        seq: u64,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.write_unflushed(writes, seq, now_ms)?;
        self.db.flush()?;
        Ok(())
    }

    /// [`Store::write_batch`] with no flush: atomic, durable at the next flush.
    fn write_unflushed(
        &self,
        writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        seq: u64,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        let counted = self.count_writes(
            writes
                .iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| (k.as_slice(), v.as_slice()))),
        )?;
        for (k, v) in counted {
            batch.insert(k, v);
        }
        for (k, v) in writes {
            match v {
                Some(v) => {
                    queue_for_index(&mut batch, seq, &k);
                    batch.insert(k, v)
                }
                None => batch.remove(k),
            }
        }
        batch.insert(b"mseq".to_vec(), seq.to_be_bytes().to_vec());
        self.stamp(&mut batch, seq, now_ms)?;
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Records of a namespace and tombstones, counted by a walk over them.
    fn walk_count(&self, namespace: &LibraryId) -> Result<(u64, u64), StoreError> {
        let (mut live, mut deleted) = (0, 0);
        for value in self.tree.scan_prefix(key(b'r', namespace, &[])).values() {
            if StoredHeader(&value?).deleted() {
                deleted += 1;
            } else {
                live += 1;
            }
        }
        Ok((live, deleted))
    }

    /// Every record of a namespace (tombstones included), in record id order.
    pub fn records_of(
        &self,
        namespace: &LibraryId,
    ) -> impl Iterator<Item = Result<StoredRecord, StoreError>> + '_ {
        let prefix = key(b'r', namespace, &[]);
        self.tree.scan_prefix(prefix.clone()).map(move |item| {
            let (k, v) = item?;
            let record_id = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            StoredRecord::decode(&record_id, &v)
        })
    }

    /// A shard document, from the cache or from disk (taken out of the cache: give it back
    /// with `put_back`).
    fn take_doc(&self, namespace: &LibraryId, shard: u16) -> Result<Shard, StoreError> {
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take((*namespace, shard));
        match cached {
            Some(doc) => Ok(doc),
            None => self.load_sized(namespace, shard),
        }
    }

    fn put_back(&self, namespace: &LibraryId, shard: u16, doc: Shard) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .put((*namespace, shard), doc);
    }

    /// The changes of a shard document that a replica whose heads are `have` lacks, each
    /// with its signed envelope. Nothing when `have` names changes this store does not
    /// hold (the replica is ahead).
    pub fn changes_since(
        &self,
        namespace: &LibraryId,
        shard: u16,
        have: &[[u8; 32]],
    ) -> Result<Vec<SignedChange>, StoreError> {
        Ok(self
            .changes_since_within(namespace, shard, have, usize::MAX)?
            .0)
    }

    /// [`Store::changes_since`], in their order, while they fit in `budget` bytes (a
    /// change's bytes and 256 for its envelope; the first always): only those are read
    /// with their envelopes. Says whether they are all.
    pub fn changes_since_within(
        &self,
        namespace: &LibraryId,
        shard: u16,
        have: &[[u8; 32]],
        budget: usize,
    ) -> Result<(Vec<SignedChange>, bool), StoreError> {
        let _writer = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut loaded = self.take_doc(namespace, shard)?;
        let doc = &mut loaded.doc;
        let have: Vec<automerge::ChangeHash> =
            have.iter().map(|h| automerge::ChangeHash(*h)).collect();
        let result = (|| {
            if have.iter().any(|h| doc.get_change_by_hash(h).is_none()) {
                return Ok((Vec::new(), true));
            }
            let mut out = Vec::new();
            let mut bytes = 0usize;
            for change in doc.get_changes(&have) {
                let size = change.raw_bytes().len() + 256;
                if !out.is_empty() && bytes.saturating_add(size) > budget {
                    return Ok((out, false));
                }
                bytes += size;
                let hash = change.hash().0;
                let envelope = self.envelope(&hash)?.ok_or_else(|| StoreError::Damaged {
                    record_id: String::new(),
                    reason: format!(
                        "shard {shard} of {namespace:?} holds change {} without its signed envelope",
                        jalin_protocol::signing::hex(&hash)
                    ),
                })?;
                out.push(SignedChange {
                    envelope,
                    bytes: change.raw_bytes().to_vec(),
                });
            }
            Ok((out, true))
        })();
        self.put_back(namespace, shard, loaded);
        result
    }

    /// Takes in changes of another library's shard documents, from any node that holds
    /// them, several shards of one namespace: one result per shard, in order, each shard
    /// one durable write of its own (under its own sequence number). Each change must
    /// carry the owner's valid envelope for this namespace and shard over exactly its
    /// bytes, and each shard's batch must hold every change its changes depend on;
    /// otherwise nothing of that shard is stored. A shard refused stores nothing; the
    /// others are stored.
    ///
    /// One write a shard, not one for all: sled copies a tree node for each key a batch
    /// writes and frees none of the copies before the batch ends, and a node holds up to
    /// 16 values (records, a shard's changes): the copies of one write of a whole sync
    /// answer held 60 MB and more (BENCHMARKS.md, "The old PC's memory").
    pub(crate) fn apply_remote_many(
        &self,
        namespace: &LibraryId,
        shards: &[(u16, Vec<SignedChange>)],
    ) -> Vec<Result<RemoteApplied, ReplicaError>> {
        let checked: Vec<Result<Vec<automerge::Change>, ReplicaError>> = shards
            .iter()
            .map(|(shard, changes)| self.check_remote(namespace, *shard, changes))
            .collect();
        let _writer = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let write_failed = |error: StoreError| {
            ReplicaError::Store(StoreError::Damaged {
                record_id: String::new(),
                reason: format!("writing replicated changes failed: {error}"),
            })
        };
        let mut results = Vec::with_capacity(shards.len());
        let mut written = false;
        for ((shard, changes), parsed) in shards.iter().zip(checked) {
            let result = parsed.and_then(|parsed| {
                let seq = self.seq().map_err(|error| {
                    ReplicaError::Store(StoreError::Damaged {
                        record_id: String::new(),
                        reason: error.to_string(),
                    })
                })? + 1;
                let mut doc = self.take_doc(namespace, *shard)?;
                let mut staged = Vec::new();
                let applied = self.stage_remote(
                    namespace,
                    *shard,
                    changes,
                    parsed,
                    seq,
                    &mut doc.doc,
                    &mut staged,
                )?;
                if staged.is_empty() {
                    self.put_back(namespace, *shard, doc);
                    return Ok(applied);
                }
                // After a failure the document in memory may be ahead of the disk: it is
                // dropped, and read again next time.
                self.write_unflushed(staged, seq, wall_clock_ms())
                    .map_err(write_failed)?;
                written = true;
                doc.grew(changes.iter().map(|c| c.bytes.len()).sum());
                if applied.changes > 0 {
                    self.touch(namespace, [*shard]);
                }
                self.put_back(namespace, *shard, doc);
                Ok(applied)
            });
            results.push(result);
        }
        // Durable before any is reported stored.
        if written {
            if let Err(error) = self.db.flush() {
                let error = StoreError::from(error);
                return results
                    .into_iter()
                    .map(|r| {
                        r.and_then(|_| {
                            Err(write_failed(StoreError::Damaged {
                                record_id: String::new(),
                                reason: error.to_string(),
                            }))
                        })
                    })
                    .collect();
            }
        }
        results
    }

    /// Checks changes of another library's shard by themselves: envelopes, hashes, actor.
    fn check_remote(
        &self,
        namespace: &LibraryId,
        shard: u16,
        changes: &[SignedChange],
    ) -> Result<Vec<automerge::Change>, ReplicaError> {
        let refuse = |index: usize, reason: String| ReplicaError::Refused {
            namespace: namespace.fingerprint(),
            shard,
            index,
            reason,
        };
        if *namespace == self.library {
            return Err(refuse(
                0,
                "this is this library's own catalog; only it writes there".into(),
            ));
        }
        if shard >= SHARD_COUNT {
            return Err(refuse(0, format!("there is no shard {shard}")));
        }
        let mut parsed = Vec::with_capacity(changes.len());
        for (index, change) in changes.iter().enumerate() {
            let envelope = &change.envelope;
            if envelope.namespace != *namespace || envelope.shard != shard {
                return Err(refuse(
                    index,
                    "the envelope is for another catalog or shard".into(),
                ));
            }
            envelope
                .verify()
                .map_err(|e| refuse(index, format!("the envelope: {e}")))?;
            let decoded = automerge::Change::from_bytes(change.bytes.clone())
                .map_err(|e| refuse(index, format!("not an automerge change: {e}")))?;
            if decoded.hash().0 != envelope.change_hash {
                return Err(refuse(
                    index,
                    "the change is not the one its envelope signs (hash differs)".into(),
                ));
            }
            if decoded.actor_id().to_bytes() != namespace.as_bytes().as_slice() {
                return Err(refuse(index, "the change was made by another actor".into()));
            }
            parsed.push(decoded);
        }
        Ok(parsed)
    }

    /// Applies checked changes to a shard document and stages the sled writes.
    #[allow(clippy::too_many_arguments)]
    fn stage_remote(
        &self,
        namespace: &LibraryId,
        shard: u16,
        changes: &[SignedChange],
        parsed: Vec<automerge::Change>,
        seq: u64,
        doc: &mut AutoCommit,
        writes: &mut Vec<(Vec<u8>, Option<Vec<u8>>)>,
    ) -> Result<RemoteApplied, ReplicaError> {
        let refuse = |reason: String| ReplicaError::Refused {
            namespace: namespace.fingerprint(),
            shard,
            index: 0,
            reason,
        };
        let fail = |e: automerge::AutomergeError| StoreError::Automerge {
            shard,
            reason: e.to_string(),
        };
        let before = doc.get_heads();
        let new: Vec<automerge::Change> = parsed
            .into_iter()
            .filter(|c| doc.get_change_by_hash(&c.hash()).is_none())
            .collect();
        if new.is_empty() {
            return Ok(RemoteApplied::default());
        }
        let mut touched: Vec<String> = new
            .iter()
            .flat_map(|c| c.decode().operations)
            .filter(|op| op.obj != automerge::legacy::ObjectId::Root)
            .filter_map(|op| match op.key {
                automerge::legacy::Key::Map(name) => Some(name.to_string()),
                automerge::legacy::Key::Seq(_) => None,
            })
            .collect();
        touched.sort();
        touched.dedup();
        let count = new.len();
        doc.apply_changes(new).map_err(fail)?;
        if !doc.get_missing_deps(&[]).is_empty() {
            return Err(refuse(
                "the batch lacks changes its changes depend on; ask for the changes since this store's heads".into(),
            ));
        }
        let records = match doc.get(ROOT, "records").map_err(fail)? {
            Some((_, id)) => id,
            None => return Err(refuse("the document holds no records map".into())),
        };
        for record_id in &touched {
            let Some((automerge::Value::Scalar(value), _)) =
                doc.get(&records, record_id.as_str()).map_err(fail)?
            else {
                continue;
            };
            let ScalarValue::Bytes(bytes) = value.as_ref() else {
                continue;
            };
            if bytes.len() < 10 || DocValue::decode(bytes).is_none() {
                return Err(refuse(format!(
                    "record {record_id:?} is not a record value"
                )));
            }
            writes.push((
                key(b'r', namespace, record_id.as_bytes()),
                Some(StoredRecord::encode_from(
                    &DocValueBytes(bytes.clone()),
                    seq,
                )),
            ));
        }
        for change in changes {
            let mut envelope_key = vec![b'e'];
            envelope_key.extend_from_slice(&change.envelope.change_hash);
            writes.push((
                envelope_key,
                Some(serde_json::to_vec(&change.envelope).unwrap_or_default()),
            ));
        }
        let chunk_prefix = key(b'c', namespace, &shard.to_be_bytes());
        let chunks: Vec<sled::IVec> = self
            .tree
            .scan_prefix(chunk_prefix.clone())
            .keys()
            .collect::<Result<_, _>>()
            .map_err(StoreError::from)?;
        if chunks.len() >= CHUNKS_BEFORE_COMPACTION {
            for chunk in chunks {
                writes.push((chunk.to_vec(), None));
            }
            writes.push((key(b's', namespace, &shard.to_be_bytes()), Some(doc.save())));
        } else {
            let mut chunk_key = chunk_prefix;
            chunk_key.extend_from_slice(&seq.to_be_bytes());
            writes.push((chunk_key, Some(doc.save_after(&before))));
        }
        writes.push((
            key(b'h', namespace, &shard.to_be_bytes()),
            Some(heads_bytes(&doc.get_heads())),
        ));
        Ok(RemoteApplied {
            changes: count,
            records: touched,
        })
    }

    /// The sled database, for other trees beside the catalog's.
    pub fn db(&self) -> crate::durable::Db {
        self.db.clone()
    }

    /// Bytes on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path, loaded_shards_max: usize) -> Store {
        let key = SigningKey::from_bytes(&[7; 32]);
        let limits = crate::config::LimitsSection {
            loaded_shards_max: Some(loaded_shards_max),
            store_cache_mb: Some(16),
            ..Default::default()
        };
        Store::open(&dir.join("db"), key, &limits.memory_plan()).expect("opens")
    }

    /// One record id in each of `count` different shards.
    fn ids_in_distinct_shards(count: usize) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        (0..)
            .map(|n| format!("id{n}"))
            .filter(|id| seen.insert(shard_of(id)))
            .take(count)
            .collect()
    }

    fn put(id: &str, round: usize) -> Change {
        Change::Put {
            record_id: id.to_string(),
            marc: format!("record {id}, version {round}: {}", "x".repeat(round)).into_bytes(),
        }
    }

    fn snapshots(store: &Store) -> usize {
        store
            .tree
            .scan_prefix(key(b's', &store.library, &[]))
            .count()
    }

    fn queued(store: &Store, since: u64) -> Option<Vec<(String, u64)>> {
        let queue = store.index_queue(since, u64::MAX).expect("reads")?;
        Some(
            queue
                .map(|e| e.expect("an entry"))
                .map(|(library, id, seq)| {
                    assert_eq!(library, store.library());
                    (id, seq)
                })
                .collect(),
        )
    }

    /// The index queue names each record written after a sequence number, by the write,
    /// without a walk over the records; once trimmed it does not reach back before the
    /// trim, and a store older than the queue starts it where it stood.
    #[test]
    fn the_index_queue_names_what_was_written_since() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = store(dir.path(), 4);
        let first = store
            .apply(&[put("a", 1), put("b", 1)], 1)
            .expect("applies");
        let second = store.apply(&[put("b", 2)], 2).expect("applies");
        let third = store
            .apply(
                &[Change::Delete {
                    record_id: "a".into(),
                }],
                3,
            )
            .expect("applies");
        let mut all = queued(&store, 0).expect("a new store queues from its start");
        all.sort();
        assert_eq!(
            all,
            [
                ("a".to_string(), first),
                ("a".to_string(), third),
                ("b".to_string(), first),
                ("b".to_string(), second)
            ]
        );
        assert_eq!(queued(&store, second), Some(vec![("a".to_string(), third)]));
        let until_second: Vec<(String, u64)> = store
            .index_queue(first, second)
            .expect("reads")
            .expect("reaches back")
            .map(|e| e.expect("an entry"))
            .map(|(_, id, seq)| (id, seq))
            .collect();
        assert_eq!(until_second, [("b".to_string(), second)], "bounded above");
        store.trim_index_queue(second).expect("trims");
        assert_eq!(queued(&store, first), None, "trimmed past: walk instead");
        assert_eq!(queued(&store, second), Some(vec![("a".to_string(), third)]));
        assert_eq!(store.tree.scan_prefix([b'q']).count(), 1);
        // A store from before the queue (no floor kept) starts it at its sequence number.
        store.tree.remove(INDEX_QUEUE_FLOOR).expect("removes");
        drop(store);
        let store = super::tests::store(dir.path(), 4);
        assert_eq!(queued(&store, second), None);
        assert_eq!(queued(&store, third), Some(vec![]));
    }

    /// The counts kept with each write agree with a walk over the records: puts,
    /// replacements, deletes, a record put again after its delete, one written twice in a
    /// batch; a store from before the counts counts once by a walk.
    #[test]
    fn the_catalog_size_estimate_is_near_the_size() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = store(dir.path(), 4);
        let own = store.library();
        let puts: Vec<Change> = (0..4_000).map(|i| put(&format!("rec{i}"), 1)).collect();
        for (n, part) in puts.chunks(500).enumerate() {
            store.apply(part, n as u64 + 1).expect("applies");
        }
        let exact = store.catalog_bytes(&own).expect("sizes");
        let estimate = store.catalog_bytes_estimate(&own).expect("estimates");
        assert!(exact > 0);
        assert!(
            estimate.abs_diff(exact) < exact / 4,
            "estimate {estimate} beside {exact}"
        );
    }

    #[test]
    fn counts_are_kept_with_each_write() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = store(dir.path(), 4);
        let own = store.library();
        assert_eq!(store.count_of(&own).expect("counts"), (0, 0));
        store
            .apply(&[put("a", 1), put("b", 1), put("c", 1)], 1)
            .expect("applies");
        assert_eq!(store.count_of(&own).expect("counts"), (3, 0));
        store.apply(&[put("b", 2)], 2).expect("applies");
        assert_eq!(store.count_of(&own).expect("counts"), (3, 0));
        store
            .apply(
                &[Change::Delete {
                    record_id: "a".into(),
                }],
                3,
            )
            .expect("applies");
        assert_eq!(store.count_of(&own).expect("counts"), (2, 1));
        store
            .apply(&[put("a", 4), put("d", 4), put("d", 5)], 4)
            .expect("applies");
        assert_eq!(store.count_of(&own).expect("counts"), (4, 0));
        assert_eq!(store.walk_count(&own).expect("walks"), (4, 0));
        // Counts lost (or never kept): counted again by a walk, and kept.
        store.tree.remove(key(b'n', &own, &[])).expect("removes");
        assert_eq!(store.count_of(&own).expect("counts"), (4, 0));
        assert!(store
            .tree
            .get(key(b'n', &own, &[]))
            .expect("reads")
            .is_some());
        store
            .apply(
                &[Change::Delete {
                    record_id: "d".into(),
                }],
                5,
            )
            .expect("applies");
        assert_eq!(store.count_of(&own).expect("counts"), (3, 1));
        assert_eq!(store.walk_count(&own).expect("walks"), (3, 1));
    }

    /// A kill while sled writes its snapshot (it does so as it opens a store whose log has
    /// grown, and every `jalin` command opens the store) leaves `snap.<lsn>.generating`
    /// half-written. The store opens with every record, and the half file is gone.
    #[test]
    fn a_snapshot_cut_short_by_a_kill_does_not_stop_the_store_opening() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ids = ids_in_distinct_shards(40);
        let changes: Vec<Change> = ids.iter().map(|id| put(id, 1)).collect();
        {
            let store = store(dir.path(), 4);
            store.apply(&changes, 1).expect("applies");
        }
        // Opening again writes a snapshot of the log so far.
        drop(store(dir.path(), 4));
        let db = dir.path().join("db");
        let snapshot = std::fs::read_dir(&db)
            .expect("lists")
            .map(|e| e.expect("entry").path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("snap."))
            })
            .expect("sled wrote a snapshot");
        let name = snapshot
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let lsn = u64::from_str_radix(name.trim_start_matches("snap."), 16).expect("an lsn");
        // What a kill halfway through the next snapshot leaves: its first half, not renamed.
        let bytes = std::fs::read(&snapshot).expect("reads");
        let cut = db.join(format!("snap.{:016X}.generating", lsn + 4096));
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("writes");
        let store = store(dir.path(), 4);
        for id in &ids {
            assert!(store.get(id).expect("reads").is_some(), "{id} is kept");
        }
        assert!(!cut.exists(), "the unfinished snapshot is removed");
    }

    /// A store made with other segment sizes (sled's default; 8 MB before issue 19) opens
    /// with the size it was made with; a new one gets [`SLED_SEGMENT_BYTES`].
    #[test]
    fn stores_made_with_other_segment_sizes_open() {
        for size in [512 << 10, 8 << 20] {
            let dir = tempfile::tempdir().expect("temp dir");
            let db = dir.path().join("db");
            drop(
                sled::Config::new()
                    .path(&db)
                    .segment_size(size)
                    .open()
                    .expect("sled makes it"),
            );
            let store = store(dir.path(), 4);
            store.apply(&[put("one", 1)], 1).expect("writes");
            assert!(store.get("one").expect("reads").is_some());
            assert_eq!(segment_size_of(&db), size);
        }
        let dir = tempfile::tempdir().expect("temp dir");
        drop(store(dir.path(), 4));
        assert_eq!(segment_size_of(&dir.path().join("db")), SLED_SEGMENT_BYTES);
    }

    /// While another handle holds the store, an unfinished snapshot is not touched (it may
    /// be that process's, being written).
    #[test]
    fn unfinished_snapshots_are_left_alone_while_the_store_is_open() {
        let dir = tempfile::tempdir().expect("temp dir");
        let open = store(dir.path(), 4);
        let generating = dir
            .path()
            .join("db")
            .join("snap.00000000FFFFFFFF.generating");
        std::fs::write(&generating, b"being written").expect("writes");
        let error = clear_unfinished_snapshots(&dir.path().join("db")).expect_err("locked");
        assert_eq!(error.kind(), std::io::ErrorKind::WouldBlock);
        assert!(generating.exists());
        drop(open);
    }

    /// The loaded shard documents keep within the memory budget's share for them, by
    /// their size and not only their count; a larger share keeps more of them.
    #[test]
    fn loaded_shard_documents_keep_within_their_share_of_the_budget() {
        let loaded_with = |share: u64| {
            let dir = tempfile::tempdir().expect("temp dir");
            let limits = crate::config::LimitsSection::default();
            let plan = crate::config::MemoryPlan {
                shard_documents_bytes: share,
                ..limits.memory_plan()
            };
            let store = Store::open(
                &dir.path().join("db"),
                SigningKey::from_bytes(&[7; 32]),
                &plan,
            )
            .expect("opens");
            let mut most = 0;
            for batch in 0..4 {
                // ~1 KB a record that does not compress away (zstd would shrink a repeat).
                let mut state = 0x2545_f491_4f6c_dd1du64 ^ batch;
                let mut text = |len: usize| -> Vec<u8> {
                    (0..len)
                        .map(|_| {
                            state ^= state << 13;
                            state ^= state >> 7;
                            state ^= state << 17;
                            b'a' + (state % 26) as u8
                        })
                        .collect()
                };
                let changes: Vec<Change> = (0..500)
                    .map(|n| Change::Put {
                        record_id: format!("rec{batch}-{n}"),
                        marc: text(1000),
                    })
                    .collect();
                store.apply(&changes, 1).expect("applies");
                let (count, bytes) = store.shard_documents_loaded();
                assert!(
                    bytes <= share,
                    "{bytes} bytes loaded over a share of {share}"
                );
                most = most.max(count);
            }
            // Every record is kept, loaded or not.
            assert!(store.get("rec0-0").expect("reads").is_some());
            assert!(store.get("rec3-499").expect("reads").is_some());
            most
        };
        let small = loaded_with(256 << 10);
        let large = loaded_with(64 << 20);
        assert!(small > 0 && small < 100, "{small} documents in 256 KB");
        assert_eq!(large, usize::from(SHARD_COUNT), "all in 64 MB");
    }

    #[test]
    fn shards_compact_a_few_at_a_time_and_keep_every_record() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ids = ids_in_distinct_shards(COMPACTIONS_PER_BATCH + 4);
        // A cache of two documents: most shards are read back from disk for every batch.
        let store = store(dir.path(), 2);
        for round in 1..=CHUNKS_BEFORE_COMPACTION {
            let changes: Vec<Change> = ids.iter().map(|id| put(id, round)).collect();
            store.apply(&changes, 1).expect("applies");
        }
        assert_eq!(snapshots(&store), 0, "no shard has too many chunks yet");
        let changes: Vec<Change> = ids.iter().map(|id| put(id, 65)).collect();
        store.apply(&changes, 1).expect("applies");
        assert_eq!(
            snapshots(&store),
            COMPACTIONS_PER_BATCH,
            "one batch's compactions"
        );
        let changes: Vec<Change> = ids.iter().map(|id| put(id, 66)).collect();
        store.apply(&changes, 1).expect("applies");
        assert_eq!(snapshots(&store), ids.len(), "the rest a batch later");
        assert!(store.cache.lock().expect("cache").docs.len() <= 2);
        drop(store);

        // Read back from snapshots and chunks alone: each shard holds its latest record.
        let store = self::store(dir.path(), 2);
        for id in &ids {
            let in_shard = store.shard_records(shard_of(id)).expect("shard loads");
            let expected = match put(id, 66) {
                Change::Put { marc, .. } => marc,
                Change::Delete { .. } => unreachable!(),
            };
            assert_eq!(in_shard, vec![(id.clone(), false, expected.clone())]);
            let stored = store.get(id).expect("reads").expect("present");
            assert_eq!((stored.marc, stored.seq), (expected, 66));
        }
    }

    #[test]
    fn values_of_every_layout_decode_and_damaged_ones_are_errors() {
        let marc = b"00026nam a2200025 a 4500\x1e\x1d".repeat(20);
        // Current layouts round-trip, compressed.
        let value = DocValue {
            deleted: true,
            updated_ms: 42,
            marc: Cow::Borrowed(&marc),
        }
        .encode();
        assert_eq!(value.0[0], DocValue::VERSION);
        assert!(value.0.len() < marc.len(), "compressed");
        let decoded = DocValue::decode(&value.0).expect("decodes");
        assert_eq!((decoded.deleted, decoded.updated_ms), (true, 42));
        assert_eq!(decoded.marc.as_ref(), marc.as_slice());
        let stored =
            StoredRecord::decode("r1", &StoredRecord::encode_from(&value, 9)).expect("decodes");
        assert_eq!(
            (stored.deleted, stored.updated_ms, stored.seq),
            (true, 42, 9)
        );
        assert_eq!(stored.marc, marc);

        // Version 1 values and uncompressed records, as stores made before compression hold.
        let mut v1 = vec![1, 0];
        v1.extend_from_slice(&7u64.to_be_bytes());
        v1.extend_from_slice(&marc);
        let decoded = DocValue::decode(&v1).expect("decodes");
        assert_eq!(
            (decoded.deleted, decoded.marc.as_ref()),
            (false, marc.as_slice())
        );
        let mut old = vec![1];
        old.extend_from_slice(&7u64.to_be_bytes());
        old.extend_from_slice(&3u64.to_be_bytes());
        old.extend_from_slice(&marc);
        let stored = StoredRecord::decode("r1", &old).expect("decodes");
        assert_eq!(
            (stored.deleted, stored.seq, stored.marc),
            (true, 3, marc.clone())
        );

        // Damage: a compressed record that does not expand, unknown flags, an unknown
        // version: errors (or None), never a panic.
        let mut broken = StoredRecord::encode_from(&value, 9);
        broken.truncate(broken.len() - 3);
        let error = StoredRecord::decode("r1", &broken).expect_err("damaged");
        assert!(error.to_string().contains("\"r1\""), "{error}");
        assert!(error.to_string().contains("does not expand"), "{error}");
        let mut flags = old.clone();
        flags[0] = 0x80;
        assert!(StoredRecord::decode("r1", &flags).is_err());
        let mut v9 = value.0.clone();
        v9[0] = 9;
        assert!(DocValue::decode(&v9).is_none());
        assert!(DocValue::decode(&value.0[..value.0.len() - 3]).is_none());
    }
}
