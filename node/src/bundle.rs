//! Sync by flash disk: a bundle of what a member's node is not known to have, made here
//! and carried to it, and a bundle from a member taken in with the network's checks.
//!
//! A bundle for library L carries, of every consortium this library and L share as
//! current members: the consortium's documents whose digest differs from what L last
//! acknowledged, the signed changes of every shared catalog since the shard heads L last
//! acknowledged (everything, before any acknowledgement), and this node's loan messages
//! waiting for L. Each bundle also carries this node's own acknowledgement (what it
//! holds of the same), so the next bundle back carries only what it lacks; any member can
//! carry another's catalog on, as over the network, hop by hop.
//!
//! The file is zstd over [`jalin_protocol::bundle`]'s signed frames. Taking one in reads
//! it twice: first whole, checking every frame, the signature, that it is for this library,
//! from a current co-member, and newer than the last taken from it, and nothing is
//! applied unless all holds; then again, each frame compared with its hash from the first
//! reading, applying documents through [`crate::consortium::Consortia::import_from_member`],
//! catalogs through [`Library::shared_with`] and loan messages through
//! [`crate::ill::Loans::take_in`]: the same checks as the network's.

use crate::consortium::documents_digest;
use crate::library::Library;
use jalin_protocol::bundle::{
    Ack, BundleError, BundleReader, BundleWriter, Header, Section, ACK_CATALOGS_MAX,
    CHANGES_BYTES_PER_SECTION, ILL_PER_SECTION_MAX, VERSION,
};
use jalin_protocol::consortium::document::{Hash32, Signed};
use jalin_protocol::ill::IllMessage;
use jalin_protocol::signing::LibraryId;
use jalin_protocol::sync::{SignedChange, HEADS_PER_SHARD_MAX, SHARD_COUNT};
use serde::{Deserialize, Serialize};
use serde_bytes::{ByteArray, ByteBuf};
use std::collections::BTreeMap;
use std::io::{Read, Write};

/// Bytes a bundle may decompress to at most (a consortium of 50 libraries with 100,000
/// records each is about 1.5 GB).
pub const DECOMPRESSED_BYTES_MAX: u64 = 8 << 30;
/// zstd's window at most (2^27 bytes): what decompressing may hold, whatever the file says.
const WINDOW_LOG_MAX: u32 = 27;

/// Why a bundle was not made or not taken in.
#[derive(Debug, thiserror::Error)]
pub enum BundleFailure {
    /// The file is not a bundle, is damaged, cut short or altered.
    #[error(transparent)]
    Format(#[from] BundleError),
    /// The file is not a bundle at all, or its compression is damaged.
    #[error("the file is damaged or not a Jalin bundle ({0})")]
    Damaged(String),
    /// Made for another library.
    #[error("this bundle is for another library ({0}), not this one; take it there")]
    NotForUs(String),
    /// Made by this library.
    #[error("this bundle was made by this library; take it to the library it is for")]
    OwnBundle,
    /// From a library that is not a current co-member.
    #[error("the bundle's maker ({0}) is not a current member of any consortium with this library; nothing was applied")]
    NotAMember(String),
    /// Not newer than the last taken from its maker.
    #[error("this bundle (number {number} from {from}) is not newer than the last taken in from it (number {last}); nothing was applied")]
    Replayed {
        /// Its maker.
        from: String,
        /// Its number.
        number: u64,
        /// The last taken.
        last: u64,
    },
    /// The file could not be opened.
    #[error("opening the bundle failed: {0}")]
    Open(std::io::Error),
    /// Reading stopped after part of the bundle was applied.
    #[error("reading the bundle stopped at section {section}, after part of it was applied ({reason}); what was applied stays: take it in again")]
    Interrupted {
        /// Where.
        section: u64,
        /// Why.
        reason: String,
    },
    /// The file changed between the two readings.
    #[error("the file changed while it was being taken in (section {0}); take it in again")]
    ChangedWhileRead(u64),
    /// No co-member by that name.
    #[error("{0}")]
    NoSuchMember(String),
    /// Writing the bundle failed.
    #[error("writing the bundle failed: {0}")]
    Write(std::io::Error),
    /// The store failed.
    #[error("storage: {0}")]
    Storage(String),
}

impl BundleFailure {
    /// A stable name for the kind of failure.
    pub fn code(&self) -> &'static str {
        match self {
            BundleFailure::Format(BundleError::Truncated { .. }) => "bundle_truncated",
            BundleFailure::Format(BundleError::Altered) => "bundle_altered",
            BundleFailure::Format(_) | BundleFailure::Damaged(_) => "bundle_damaged",
            BundleFailure::NotForUs(_) => "bundle_not_for_us",
            BundleFailure::OwnBundle => "bundle_own",
            BundleFailure::NotAMember(_) => "bundle_not_a_member",
            BundleFailure::Replayed { .. } => "bundle_replayed",
            BundleFailure::ChangedWhileRead(_) | BundleFailure::Interrupted { .. } => {
                "bundle_changed"
            }
            BundleFailure::Open(_) => "file_unreadable",
            BundleFailure::NoSuchMember(_) => "not_found",
            BundleFailure::Write(_) => "bundle_write",
            BundleFailure::Storage(_) => "storage",
        }
    }

    /// Whether the bundle itself is at fault (not this node).
    pub fn is_bad_input(&self) -> bool {
        !matches!(
            self,
            BundleFailure::Write(_) | BundleFailure::Storage(_) | BundleFailure::Open(_)
        )
    }
}

impl From<sled::Error> for BundleFailure {
    fn from(error: sled::Error) -> Self {
        BundleFailure::Storage(error.to_string())
    }
}

/// One catalog's part of a bundle.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogPart {
    /// Whose catalog (hex key).
    pub library: String,
    /// Its name, where this node knows it.
    pub name: Option<String>,
    /// Changes carried.
    pub changes: usize,
    /// Bytes of those changes.
    pub bytes: u64,
    /// Changes new here (after taking in).
    #[serde(default)]
    pub new: usize,
    /// Why shards were refused (after taking in).
    #[serde(default)]
    pub refused: Vec<String>,
}

/// One consortium's documents in a bundle.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentsPart {
    /// Which consortium (hex).
    pub consortium: String,
    /// Its name, where this node holds it.
    pub name: Option<String>,
    /// Documents carried.
    pub documents: usize,
    /// New here (after taking in).
    #[serde(default)]
    pub new: usize,
    /// Refused, with why (after taking in; at most 20 shown).
    #[serde(default)]
    pub refused: Vec<String>,
}

/// What a bundle holds (and, once taken in, what it did).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleReport {
    /// Its maker (hex key).
    pub from: String,
    /// Its maker's name, where known.
    pub from_name: Option<String>,
    /// The library it is for (hex key).
    pub to: String,
    /// The library it is for, by name where known.
    pub to_name: Option<String>,
    /// The maker's number for it.
    pub number: u64,
    /// When it was made (maker's clock, ms).
    pub made_ms: u64,
    /// Consortia's documents.
    pub documents: Vec<DocumentsPart>,
    /// Catalogs' changes.
    pub catalogs: Vec<CatalogPart>,
    /// Loan messages carried.
    pub ill_messages: usize,
    /// Loan messages taken in (after taking in).
    #[serde(default)]
    pub ill_taken: usize,
    /// Loan messages refused, with why (after taking in).
    #[serde(default)]
    pub ill_refused: Vec<String>,
    /// Bytes of the file (as made, or as read).
    pub file_bytes: u64,
    /// Bytes before compression.
    pub raw_bytes: u64,
    /// Whether it was taken in (false: only read).
    #[serde(default)]
    pub applied: bool,
    /// Made later than this node's time by over an hour: one of the two clocks is wrong.
    #[serde(default)]
    pub clock_warning: Option<String>,
}

impl BundleReport {
    /// Changes carried, every catalog.
    pub fn changes(&self) -> usize {
        self.catalogs.iter().map(|c| c.changes).sum()
    }

    /// Changes new here, every catalog.
    pub fn new_changes(&self) -> usize {
        self.catalogs.iter().map(|c| c.new).sum()
    }

    /// Documents new here, every consortium.
    pub fn new_documents(&self) -> usize {
        self.documents.iter().map(|d| d.new).sum()
    }
}

/// What this node knows of bundles exchanged with each member.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exchange {
    /// The member (hex key).
    pub library: String,
    /// Its name.
    pub name: Option<String>,
    /// Bundles made here for it.
    pub made: u64,
    /// The number of the last bundle taken in from it.
    pub taken: u64,
    /// When that bundle was made (its clock).
    pub taken_made_ms: Option<u64>,
}

fn tree(library: &Library) -> Result<crate::durable::Tree, BundleFailure> {
    Ok(library.store().db().open_tree("bundles")?)
}

fn key(kind: u8, library: &LibraryId) -> Vec<u8> {
    let mut k = vec![kind];
    k.extend_from_slice(library.as_bytes());
    k
}

fn read_u64(tree: &crate::durable::Tree, k: &[u8]) -> Result<u64, BundleFailure> {
    Ok(tree
        .get(k)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map_or(0, u64::from_be_bytes))
}

fn read_postcard<T: serde::de::DeserializeOwned + Default>(
    tree: &crate::durable::Tree,
    k: &[u8],
) -> Result<T, BundleFailure> {
    Ok(tree
        .get(k)?
        .and_then(|v| postcard::from_bytes(&v).ok())
        .unwrap_or_default())
}

/// The co-member `who` names: its code, fingerprint or key (or a prefix of 8 or more hex
/// digits), in any consortium this library shares with it.
pub fn find_co_member(library: &Library, who: &str) -> Result<LibraryId, BundleFailure> {
    let consortia = library.consortia();
    let trust = consortia.trust();
    let mut found: Vec<LibraryId> = trust
        .consortia()
        .filter_map(|c| consortia.find_member(c, who).ok())
        .filter(|l| trust.is_co_member(l))
        .collect();
    found.sort_unstable();
    found.dedup();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(BundleFailure::NoSuchMember(format!(
            "no current member of this library's consortia is {who:?} (give its code or key)"
        ))),
        _ => Err(BundleFailure::NoSuchMember(format!(
            "{who:?} names more than one library; give more of its key"
        ))),
    }
}

/// What this library holds of everything it shares with `peer`: the acknowledgement a
/// bundle for `peer` carries.
fn own_ack(
    library: &Library,
    peer: &LibraryId,
    tree: &crate::durable::Tree,
) -> Result<Ack, BundleFailure> {
    let shared = library.shared_with(peer);
    let storage = |e: crate::catalogs::CatalogError| BundleFailure::Storage(e.to_string());
    let mut catalogs = Vec::new();
    for (namespace, _) in shared.digests().map_err(storage)? {
        let mut shards = Vec::new();
        for shard in 0..SHARD_COUNT {
            let heads = shared.shard_heads(&namespace, shard).map_err(storage)?;
            // A shard with more heads than a bundle names is left out: the other side
            // then sends all of its changes (idempotent), not none.
            if !heads.is_empty() && heads.len() <= HEADS_PER_SHARD_MAX {
                shards.push((shard, heads.into_iter().map(ByteArray::new).collect()));
            }
        }
        catalogs.push((namespace, shards.into()));
    }
    catalogs.truncate(ACK_CATALOGS_MAX);
    let trust = shared.trust();
    let documents = trust
        .consortia()
        .filter(|c| trust.shares(peer, c))
        .filter_map(|c| {
            let text = library.consortia().export(c).ok()?;
            Some((*c, ByteArray::new(documents_digest(&text))))
        })
        .take(ACK_CATALOGS_MAX)
        .collect();
    let ill_taken: Vec<Hash32> = read_postcard(tree, &key(b't', peer))?;
    Ok(Ack {
        catalogs: catalogs.into(),
        documents,
        ill_taken: ill_taken.into(),
        last_taken: read_u64(tree, &key(b'i', peer))?,
    })
}

/// Counts bytes written through it.
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes a bundle for `to` into `out`: everything of the consortia this library shares
/// with it that `to` did not acknowledge holding. Gives what it holds.
pub fn export<W: Write>(
    library: &Library,
    to: &LibraryId,
    out: W,
) -> Result<(BundleReport, W), BundleFailure> {
    let number = reserve(library, to)?;
    export_numbered(library, to, number, out)
}

/// The number of the next bundle for `to`, taken (two bundles made at once get two
/// numbers): above every number made for it and above the last `to` says it took.
pub fn reserve(library: &Library, to: &LibraryId) -> Result<u64, BundleFailure> {
    let tree = tree(library)?;
    let next = tree
        .update_and_fetch(key(b'n', to), |old| {
            let last = old
                .and_then(|v| <[u8; 8]>::try_from(v).ok())
                .map_or(0, u64::from_be_bytes);
            Some(last.saturating_add(1).to_be_bytes().to_vec())
        })?
        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map_or(1, u64::from_be_bytes);
    tree.flush()?;
    Ok(next)
}

/// [`export`] under a number [`reserve`] gave.
pub fn export_numbered<W: Write>(
    library: &Library,
    to: &LibraryId,
    number: u64,
    out: W,
) -> Result<(BundleReport, W), BundleFailure> {
    let own = library.id();
    if *to == own {
        return Err(BundleFailure::NoSuchMember(
            "a bundle is for another library, not this one".into(),
        ));
    }
    let trust = library.consortia().trust();
    if !trust.is_co_member(to) {
        return Err(BundleFailure::NotAMember(to.fingerprint()));
    }
    let tree = tree(library)?;
    let acked: Ack = read_postcard(&tree, &key(b'a', to))?;
    let acked_heads: BTreeMap<(LibraryId, u16), Vec<[u8; 32]>> = acked
        .catalogs
        .iter()
        .flat_map(|(ns, shards)| {
            shards.iter().map(move |(shard, heads)| {
                let mut heads: Vec<[u8; 32]> = heads.iter().map(|h| h.into_array()).collect();
                heads.sort_unstable();
                ((*ns, *shard), heads)
            })
        })
        .collect();
    let acked_documents: BTreeMap<Hash32, [u8; 32]> = acked
        .documents
        .iter()
        .map(|(c, d)| (*c, d.into_array()))
        .collect();
    let ack = own_ack(library, to, &tree)?;
    let header = Header {
        version: VERSION,
        from: own,
        to: *to,
        number,
        made_ms: library.now_ms(),
    };
    let names = library.library_names();
    let mut report = BundleReport {
        from: own.to_hex(),
        from_name: names.get(&own).cloned(),
        to: to.to_hex(),
        to_name: names.get(to).cloned(),
        number,
        made_ms: header.made_ms,
        ..BundleReport::default()
    };
    let write = BundleFailure::Write;
    let counting = Counting {
        inner: out,
        bytes: 0,
    };
    let encoder = zstd::stream::write::Encoder::new(counting, 3).map_err(write)?;
    let mut writer =
        BundleWriter::new(encoder, &library.data().key, &header, &ack).map_err(write)?;

    // Documents first: a member added there is known before its catalog arrives.
    let shared = library.shared_with(to);
    let consortia: Vec<Hash32> = trust
        .consortia()
        .filter(|c| trust.shares(to, c))
        .copied()
        .collect();
    for consortium in consortia {
        let Ok(text) = library.consortia().export(&consortium) else {
            continue;
        };
        if acked_documents.get(&consortium) == Some(&documents_digest(&text)) {
            continue;
        }
        report.documents.push(DocumentsPart {
            consortium: consortium.to_hex(),
            name: library
                .consortia()
                .get(&consortium)
                .ok()
                .map(|c| c.log.name().to_string()),
            documents: text.lines().filter(|l| l.starts_with("JALIN-")).count(),
            ..DocumentsPart::default()
        });
        writer
            .add(&Section::Documents { consortium, text })
            .map_err(write)?;
    }

    // Catalogs: each shard's changes since the heads `to` acknowledged.
    for (namespace, mine) in &ack.catalogs {
        if namespace == to {
            continue;
        }
        let mut part = CatalogPart {
            library: namespace.to_hex(),
            name: names.get(namespace).cloned(),
            ..CatalogPart::default()
        };
        let mut pending: Vec<(u16, Vec<SignedChange>)> = Vec::new();
        let mut pending_bytes = 0usize;
        for (shard, heads) in mine {
            let have = acked_heads
                .get(&(*namespace, *shard))
                .cloned()
                .unwrap_or_default();
            let mut sorted: Vec<[u8; 32]> = heads.iter().map(|h| h.into_array()).collect();
            sorted.sort_unstable();
            if sorted == have {
                continue;
            }
            let changes = shared
                .changes_since(namespace, *shard, &have)
                .map_err(|e| BundleFailure::Storage(e.to_string()))?;
            for change in changes {
                let size = change.bytes.len() + 200;
                part.changes += 1;
                part.bytes += change.bytes.len() as u64;
                match pending.last_mut() {
                    Some((s, list)) if s == shard => list.push(change),
                    _ => pending.push((*shard, vec![change])),
                }
                pending_bytes += size;
                if pending_bytes >= CHANGES_BYTES_PER_SECTION {
                    writer
                        .add(&Section::Changes {
                            namespace: *namespace,
                            shards: std::mem::take(&mut pending).into(),
                        })
                        .map_err(write)?;
                    pending_bytes = 0;
                }
            }
        }
        if !pending.is_empty() {
            writer
                .add(&Section::Changes {
                    namespace: *namespace,
                    shards: pending.into(),
                })
                .map_err(write)?;
        }
        if part.changes > 0 {
            report.catalogs.push(part);
        }
    }

    // This node's loan messages waiting for `to`.
    let outbox = library
        .loans()
        .outbox(to)
        .map_err(|e| BundleFailure::Storage(e.to_string()))?;
    if !outbox.is_empty() {
        report.ill_messages = outbox.len();
        writer
            .add(&Section::Ill {
                messages: outbox.into_iter().map(|(_, m)| ByteBuf::from(m)).collect(),
            })
            .map_err(write)?;
    }
    report.raw_bytes = writer.bytes();
    let encoder = writer.finish(&library.data().key).map_err(write)?;
    let counting = encoder.finish().map_err(write)?;
    report.file_bytes = counting.bytes;
    Ok((report, counting.inner))
}

/// Counts bytes read through it.
struct CountingRead<R> {
    inner: R,
    bytes: u64,
}

impl<R: Read> Read for CountingRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

/// How many times its file's size a bundle may decompress to, beyond a first
/// [`RATIO_FREE_BYTES`]: a real bundle's records are compressed already (1.05x), a bomb
/// is thousands.
const RATIO_MAX: u64 = 20;
/// Bytes decompressed before the ratio is held to.
const RATIO_FREE_BYTES: u64 = 64 << 20;

/// The decompressed bytes, refused past [`DECOMPRESSED_BYTES_MAX`] or past
/// [`RATIO_MAX`] times the file's bytes read so far.
struct Bounded<R> {
    inner: R,
    file_bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    out_bytes: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out_bytes += n as u64;
        let file = self.file_bytes.load(std::sync::atomic::Ordering::Relaxed);
        if self.out_bytes > DECOMPRESSED_BYTES_MAX
            || self.out_bytes > RATIO_FREE_BYTES + RATIO_MAX.saturating_mul(file)
        {
            return Err(std::io::Error::other(format!(
                "it decompresses to {} MB from {} MB, more than a bundle does",
                self.out_bytes >> 20,
                file >> 20
            )));
        }
        Ok(n)
    }
}

/// Counts the file's bytes as the decompressor reads them.
struct FileCount<R> {
    inner: R,
    bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for FileCount<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// The sections of a bundle file, decompressed within bounds.
fn sections<R: Read>(input: R) -> Result<BundleReader<impl Read>, BundleFailure> {
    let file_bytes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = std::io::BufReader::new(FileCount {
        inner: input,
        bytes: file_bytes.clone(),
    });
    let mut decoder = zstd::stream::read::Decoder::with_buffer(counted)
        .map_err(|e| BundleFailure::Damaged(e.to_string()))?;
    decoder
        .window_log_max(WINDOW_LOG_MAX)
        .map_err(|e| BundleFailure::Damaged(e.to_string()))?;
    let bounded = Bounded {
        inner: decoder,
        file_bytes,
        out_bytes: 0,
    };
    BundleReader::new(bounded).map_err(|e| match e {
        BundleError::Io(e) => BundleFailure::Damaged(e.to_string()),
        other => other.into(),
    })
}

/// A reading error: a damaged compression reads as damaged, the rest as they are.
fn reading(error: BundleError) -> BundleFailure {
    match error {
        BundleError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            BundleError::Truncated { sections: 0 }.into()
        }
        BundleError::Io(e) => BundleFailure::Damaged(e.to_string()),
        other => other.into(),
    }
}

/// A bundle read and checked whole: what it holds, and each frame's hash.
struct Checked {
    report: BundleReport,
    header: Header,
    frames: Vec<[u8; 32]>,
}

/// Reads a bundle whole and checks it: frames, signature, that it is for this library,
/// from a current co-member and newer than the last from it. Nothing is applied.
fn check<R: Read>(library: &Library, input: R) -> Result<Checked, BundleFailure> {
    let mut file = CountingRead {
        inner: input,
        bytes: 0,
    };
    let mut reader = sections(&mut file)?;
    let names = library.library_names();
    let mut report = BundleReport::default();
    let mut frames = Vec::new();
    let mut catalogs: BTreeMap<LibraryId, CatalogPart> = BTreeMap::new();
    while let Some((section, frame)) = reader.next_section().map_err(reading)? {
        frames.push(frame);
        match section {
            Section::Header { header, .. } => {
                // Checked before anything else is read: a bundle for another library or
                // from a stranger is refused at once.
                check_header(library, &header)?;
                report.from = header.from.to_hex();
                report.from_name = names.get(&header.from).cloned();
                report.to = header.to.to_hex();
                report.to_name = names.get(&header.to).cloned();
                report.number = header.number;
                report.made_ms = header.made_ms;
                let now = library.now_ms();
                if header.made_ms > now.saturating_add(crate::clock::SKEW_NOTICE_MS) {
                    report.clock_warning = Some(format!(
                        "this bundle was made {} later than this computer's time: this \
                         computer's clock or its maker's is wrong (check both)",
                        crate::clock::describe_ms(header.made_ms - now)
                    ));
                }
            }
            Section::Ack(_) | Section::End { .. } => {}
            Section::Documents { .. } if report.documents.len() >= ACK_CATALOGS_MAX => {
                return Err(BundleFailure::Damaged(format!(
                    "more than {ACK_CATALOGS_MAX} consortia's documents"
                )))
            }
            Section::Changes { namespace, .. }
                if catalogs.len() >= ACK_CATALOGS_MAX && !catalogs.contains_key(&namespace) =>
            {
                return Err(BundleFailure::Damaged(format!(
                    "more than {ACK_CATALOGS_MAX} catalogs"
                )))
            }
            Section::Documents { consortium, text } => report.documents.push(DocumentsPart {
                consortium: consortium.to_hex(),
                name: library
                    .consortia()
                    .get(&consortium)
                    .ok()
                    .map(|c| c.log.name().to_string()),
                documents: text.lines().filter(|l| l.starts_with("JALIN-")).count(),
                ..DocumentsPart::default()
            }),
            Section::Changes { namespace, shards } => {
                let part = catalogs.entry(namespace).or_insert_with(|| CatalogPart {
                    library: namespace.to_hex(),
                    name: names.get(&namespace).cloned(),
                    ..CatalogPart::default()
                });
                for (_, changes) in &shards {
                    part.changes += changes.len();
                    part.bytes += changes.iter().map(|c| c.bytes.len() as u64).sum::<u64>();
                }
            }
            Section::Ill { messages } => report.ill_messages += messages.len(),
        }
    }
    let header = reader
        .header()
        .cloned()
        .ok_or(BundleError::Truncated { sections: 0 })?;
    report.catalogs = catalogs.into_values().collect();
    drop(reader);
    report.file_bytes = file.bytes;
    Ok(Checked {
        report,
        header,
        frames,
    })
}

fn check_header(library: &Library, header: &Header) -> Result<(), BundleFailure> {
    let own = library.id();
    if header.from == own {
        return Err(BundleFailure::OwnBundle);
    }
    if header.to != own {
        let name = library
            .library_names()
            .get(&header.to)
            .cloned()
            .unwrap_or_else(|| header.to.fingerprint());
        return Err(BundleFailure::NotForUs(name));
    }
    if !library.consortia().trust().is_co_member(&header.from) {
        return Err(BundleFailure::NotAMember(header.from.fingerprint()));
    }
    let last = read_u64(&tree(library)?, &key(b'i', &header.from))?;
    if header.number <= last {
        return Err(BundleFailure::Replayed {
            from: library
                .library_names()
                .get(&header.from)
                .cloned()
                .unwrap_or_else(|| header.from.fingerprint()),
            number: header.number,
            last,
        });
    }
    Ok(())
}

/// Reads a bundle and says what it holds, applying nothing; refuses it as taking it in
/// would (damaged, altered, cut short, not for this library, from a stranger, a replay).
pub fn preview<R: Read>(library: &Library, input: R) -> Result<BundleReport, BundleFailure> {
    Ok(check(library, input)?.report)
}

/// Takes in a bundle: `open` gives the file from its start, once to check it whole and
/// once to apply it. Gives what it held and what it did.
pub fn import<R: Read>(
    library: &Library,
    mut open: impl FnMut() -> std::io::Result<R>,
) -> Result<BundleReport, BundleFailure> {
    let damaged = BundleFailure::Open;
    let Checked {
        mut report,
        header,
        frames,
    } = check(library, open().map_err(damaged)?)?;
    let from = header.from;
    let now = library.now_ms();
    let mut reader = sections(open().map_err(damaged)?)?;
    let mut index = 0usize;
    let mut ack = Ack::default();
    let mut ill_taken: Vec<Hash32> = Vec::new();
    let mut documents_changed = false;
    let mut catalogs_changed = false;
    let mut catalog_parts: BTreeMap<String, CatalogPart> = report
        .catalogs
        .drain(..)
        .map(|c| (c.library.clone(), c))
        .collect();
    let mut document_parts = std::mem::take(&mut report.documents).into_iter();
    // Past the first sections, some of the bundle is applied when reading stops: say so.
    let stopped = |index: usize, e: BundleError| match reading(e) {
        failure if index > 2 => BundleFailure::Interrupted {
            section: index as u64,
            reason: failure.to_string(),
        },
        failure => failure,
    };
    while let Some((section, frame)) = reader.next_section().map_err(|e| stopped(index, e))? {
        if frames.get(index) != Some(&frame) {
            return Err(BundleFailure::ChangedWhileRead(index as u64));
        }
        index += 1;
        match section {
            Section::Header { .. } | Section::End { .. } => {}
            Section::Ack(a) => ack = a,
            Section::Documents { text, .. } => {
                let mut part = document_parts.next().unwrap_or_default();
                match library.consortia().import_from_member(&text, &from) {
                    Ok(taken) => {
                        part.new = taken.new;
                        documents_changed |= taken.new > 0;
                        part.refused = taken
                            .refused
                            .iter()
                            .take(20)
                            .map(|(_, why)| why.clone())
                            .collect();
                    }
                    Err(error) => part.refused.push(error.to_string()),
                }
                report.documents.push(part);
            }
            Section::Changes { namespace, shards } => {
                let part = catalog_parts.entry(namespace.to_hex()).or_default();
                // Asked per section: the documents before may have changed membership.
                match library.shared_with(&from).store_from(&namespace, &shards) {
                    Ok(results) => {
                        for ((shard, _), result) in shards.iter().zip(results) {
                            match result {
                                Ok(applied) => {
                                    part.new += applied.changes;
                                    catalogs_changed |= applied.changes > 0;
                                }
                                Err(error) => {
                                    if part.refused.len() < 20 {
                                        part.refused.push(format!("shard {shard}: {error}"));
                                    }
                                }
                            }
                        }
                    }
                    Err(error) => {
                        if part.refused.is_empty() {
                            part.refused.push(error.to_string());
                        }
                    }
                }
            }
            Section::Ill { messages } => {
                let messages: Vec<Vec<u8>> = messages.into_iter().map(|m| m.into_vec()).collect();
                let results = library
                    .loans()
                    .take_in(library.consortia(), &from, &messages, now);
                for (bytes, result) in messages.iter().zip(results) {
                    let id = Signed::<IllMessage>::from_bytes(bytes).ok().map(|m| m.id());
                    match result {
                        Ok(()) | Err(crate::ill::LoanError::Replayed) => {
                            report.ill_taken += 1;
                            ill_taken.extend(id);
                        }
                        Err(error) => {
                            if !error.is_transient() {
                                ill_taken.extend(id);
                            }
                            if report.ill_refused.len() < 20 {
                                report.ill_refused.push(error.to_string());
                            }
                        }
                    }
                }
            }
        }
    }
    if index != frames.len() {
        return Err(BundleFailure::ChangedWhileRead(index as u64));
    }
    report.catalogs = catalog_parts.into_values().collect();
    ill_taken.sort_unstable();
    ill_taken.dedup();
    ill_taken.truncate(ILL_PER_SECTION_MAX);
    // The maker's loan receipts: what it took of this node's messages leaves the outbox.
    if !ack.ill_taken.is_empty() {
        library
            .loans()
            .delivered(&from, &ack.ill_taken)
            .map_err(|e| BundleFailure::Storage(e.to_string()))?;
    }
    let tree = tree(library)?;
    let mut batch = sled::Batch::default();
    // A maker that took a bundle numbered above this node's count for it (this node's
    // data directory restored from a copy): the next bundle for it goes above.
    if ack.last_taken > read_u64(&tree, &key(b'n', &from))? {
        batch.insert(key(b'n', &from), &ack.last_taken.to_be_bytes());
    }
    batch.insert(key(b'i', &from), &header.number.to_be_bytes());
    batch.insert(key(b'm', &from), &header.made_ms.to_be_bytes());
    batch.insert(
        key(b'a', &from),
        postcard::to_stdvec(&ack).map_err(|e| BundleFailure::Storage(e.to_string()))?,
    );
    batch.insert(
        key(b't', &from),
        postcard::to_stdvec(&ill_taken).map_err(|e| BundleFailure::Storage(e.to_string()))?,
    );
    tree.apply_batch(batch)?;
    tree.flush()?;
    if documents_changed {
        if let Err(error) = library.forget_strangers() {
            tracing::error!(%error, "could not forget the catalogs of former members");
        }
    }
    if catalogs_changed {
        library.index_or_warn();
    }
    report.applied = true;
    Ok(report)
}

/// The name bundle `number` for `to` is saved under: `jalin-FROM-untuk-TO-N.jalin`, with
/// the libraries' codes (what a librarian reads on the flash disk).
pub fn file_name(library: &Library, to: &LibraryId, number: u64) -> String {
    let own = &library.data().config.library.code;
    let to_code = library
        .consortia()
        .trust()
        .consortia()
        .find_map(|c| {
            let state = library.consortia().members(c).ok()?;
            state.members.get(to).map(|m| m.code.clone())
        })
        .unwrap_or_else(|| to.fingerprint());
    let safe = |text: &str| -> String {
        text.chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .take(40)
            .collect()
    };
    format!(
        "jalin-{}-untuk-{}-{number}.jalin",
        safe(own),
        safe(&to_code)
    )
}

/// The bundles exchanged with each current co-member.
pub fn exchanges(library: &Library) -> Result<Vec<Exchange>, BundleFailure> {
    let tree = tree(library)?;
    let names = library.library_names();
    let mut out = Vec::new();
    for member in library.consortia().trust().co_members() {
        let made_ms = read_u64(&tree, &key(b'm', &member))?;
        out.push(Exchange {
            library: member.to_hex(),
            name: names.get(&member).cloned(),
            made: read_u64(&tree, &key(b'n', &member))?,
            taken: read_u64(&tree, &key(b'i', &member))?,
            taken_made_ms: (made_ms > 0).then_some(made_ms),
        });
    }
    Ok(out)
}
