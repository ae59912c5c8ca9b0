//! The data directory: config file, the library's key, the API token.
//!
//! Layout of a data directory:
//!
//! ```text
//! config.toml    library name and code, HTTP listen address, limits
//! library.key    the library's ed25519 secret key (mode 0600)
//! api-token      the token writes to the HTTP API need (mode 0600)
//! db/            sled: the catalog and everything else durable
//! index/         tantivy: the search index, derived from db/
//! node.json      while a node runs: its URL and process id
//! ```

use ed25519_dalek::SigningKey;
use jalin_protocol::signing::{hex, LibraryId};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What goes wrong with a data directory.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `init` on a directory that already holds a library.
    #[error("{path} already holds a Jalin library ({name}); use another --data-dir")]
    AlreadyInitialised {
        /// The data directory.
        path: PathBuf,
        /// The library there.
        name: String,
    },
    /// A command that needs a library, on a directory without one.
    #[error("{path} holds no Jalin library yet: run `jalin init --name \"...\" --code ...` first")]
    NotInitialised {
        /// The data directory.
        path: PathBuf,
    },
    /// The library code is not usable.
    #[error("library code {code:?} must be 2-32 letters, digits, '-' or '_'")]
    BadCode {
        /// The code given.
        code: String,
    },
    /// No randomness from the operating system.
    #[error("the operating system gave no random bytes: {0}")]
    Random(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ConfigError + '_ {
    move |source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The config file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The library.
    pub library: LibrarySection,
    /// The HTTP server.
    #[serde(default)]
    pub http: HttpSection,
    /// The libp2p network.
    #[serde(default)]
    pub network: NetworkSection,
    /// Limits.
    #[serde(default)]
    pub limits: LimitsSection,
    /// The ISO 18626 gateway for interlibrary-loan systems outside Jalin.
    #[serde(default, skip_serializing_if = "Iso18626Section::is_off")]
    pub iso18626: Iso18626Section,
    /// What patrons look for: the OPAC's search log and suggestions.
    #[serde(default)]
    pub needs: NeedsSection,
    /// Finding partners on the local network.
    #[serde(default)]
    pub partners: PartnersSection,
}

/// `[partners]`: finding partners on the local network. Off unless `lan = true`: then
/// the node sends its profile (one UDP datagram a minute) to `announce_to` and hears other
/// libraries' on `port`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PartnersSection {
    /// Send and hear profiles on the local network.
    #[serde(default)]
    pub lan: bool,
    /// The UDP port profiles are heard on.
    #[serde(default = "default_partners_port")]
    pub port: u16,
    /// Where this library's profile is sent (`address:port`).
    #[serde(default = "default_announce_to")]
    pub announce_to: Vec<String>,
}

fn default_partners_port() -> u16 {
    47_474
}

fn default_announce_to() -> Vec<String> {
    vec!["255.255.255.255:47474".into()]
}

impl Default for PartnersSection {
    fn default() -> Self {
        PartnersSection {
            lan: false,
            port: default_partners_port(),
            announce_to: default_announce_to(),
        }
    }
}

/// `[needs]`: the OPAC's searches and patrons' suggestions, kept on this node only.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NeedsSection {
    /// Log each search of the OPAC (the query, its hits, the time; nothing about who).
    #[serde(default = "yes")]
    pub log_searches: bool,
    /// Months (of 30 days) a search or a suggestion is kept, then deleted.
    #[serde(default = "default_keep_months")]
    pub keep_months: u32,
}

fn yes() -> bool {
    true
}

fn default_keep_months() -> u32 {
    12
}

impl Default for NeedsSection {
    fn default() -> Self {
        NeedsSection {
            log_searches: true,
            keep_months: default_keep_months(),
        }
    }
}

/// `[iso18626]`: `POST /iso18626` takes ISO 18626 messages from the agencies listed,
/// each proving itself with its shared secret (`Authorization: Bearer SECRET`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Iso18626Section {
    /// This library's agency id as those systems know it (its ISIL, say); none: the
    /// library's code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agency_id: Option<String>,
    /// The agencies that may send messages.
    #[serde(default)]
    pub peers: Vec<Iso18626Peer>,
    /// Days a book lent to such an agency may stay out (default
    /// [`Iso18626Section::LOAN_PERIOD_DAYS`]): no agreement covers them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loan_period_days: Option<u32>,
    /// Days one renewal adds (default [`Iso18626Section::RENEWAL_DAYS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_days: Option<u32>,
}

impl Iso18626Section {
    /// Days a loan to an agency outside Jalin lasts when the section does not say.
    pub const LOAN_PERIOD_DAYS: u32 = 28;
    /// Days a renewal adds when the section does not say.
    pub const RENEWAL_DAYS: u32 = 14;

    fn is_off(&self) -> bool {
        self.agency_id.is_none() && self.peers.is_empty()
    }

    /// The loan period, in days (at least 1, at most a year).
    pub fn loan_days(&self) -> u32 {
        self.loan_period_days
            .unwrap_or(Self::LOAN_PERIOD_DAYS)
            .clamp(1, 366)
    }

    /// Days a renewal adds (at least 1, at most a year).
    pub fn renew_days(&self) -> u32 {
        self.renewal_days
            .unwrap_or(Self::RENEWAL_DAYS)
            .clamp(1, 366)
    }
}

/// One agency outside Jalin.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Iso18626Peer {
    /// Its agency id value (`agencyIdValue`).
    pub agency_id: String,
    /// The secret it sends as `Authorization: Bearer SECRET`, and this library sends it
    /// back with its own messages.
    pub secret: String,
    /// Where it takes ISO 18626 messages (`https://...`): this library's answers to its
    /// requests (will supply, loaned, ...) are posted there. None: it cannot be answered,
    /// only its messages taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// `[library]`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LibrarySection {
    /// Its name, as people know it.
    pub name: String,
    /// A short code (`KEMIRILOR`).
    pub code: String,
    /// Who to write to about the node's catalog (OAI-PMH's `adminEmail`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// `[http]`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Address to listen on; port 0 picks a free one.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Whether the node may listen on an address other machines reach (its search,
    /// OAI-PMH, SRU and login page are then served to them). Off: only loopback.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expose: bool,
    /// Names this node answers to besides `localhost` and loopback addresses (the
    /// `Host` a browser sends): a request naming any other host is refused, so a web page
    /// cannot reach the node under a name it controls (DNS rebinding).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

fn default_listen() -> String {
    "127.0.0.1:0".to_string()
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            listen: default_listen(),
            expose: false,
            hosts: Vec::new(),
        }
    }
}

/// `[network]`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    /// libp2p listen address; port 0 picks a free one, so several nodes run side by side.
    #[serde(default = "default_p2p_listen")]
    pub listen: String,
    /// Find members' nodes on the local network by mDNS.
    #[serde(default = "default_true")]
    pub mdns: bool,
    /// Relays to be reachable through, for a node behind NAT (as `jalin relay` prints
    /// them: `/ip4/203.0.113.5/tcp/4001/p2p/12D3KooW...`).
    #[serde(default)]
    pub relays: Vec<String>,
    /// Seconds between full sync rounds with every connected member (a safety net: each
    /// change is announced as it is made). Default 30; at least 1.
    #[serde(default = "default_catch_up_s")]
    pub catch_up_s: u64,
}

fn default_catch_up_s() -> u64 {
    30
}

fn default_true() -> bool {
    true
}

fn default_p2p_listen() -> String {
    "/ip4/0.0.0.0/tcp/0".to_string()
}

impl Default for NetworkSection {
    fn default() -> Self {
        NetworkSection {
            listen: default_p2p_listen(),
            mdns: true,
            relays: Vec::new(),
            catch_up_s: default_catch_up_s(),
        }
    }
}

/// `[limits]`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// The memory the node's caches and queues may hold together, in megabytes: sled's
    /// page cache, the loaded shard documents, an import's batch, the sync answers in the
    /// air and the search index's writer each get a share ([`MemoryPlan`]). The program
    /// itself needs ~100-150 MB more (BENCHMARKS.md, issue 19). At least 64.
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u64,
    /// Largest import upload over HTTP, in megabytes.
    #[serde(default = "default_upload_mb")]
    pub upload_size_max_mb: u64,
    /// Records committed per import batch (default: what `memory_mb` allows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_records_max: Option<usize>,
    /// Shard documents kept loaded at once, at most (of 256 per catalog; default: as many
    /// as `memory_mb`'s share for them holds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loaded_shards_max: Option<usize>,
    /// MB of sled's page cache (default: `memory_mb`'s share). Less holds the node's
    /// memory lower under load, more imports faster (BENCHMARKS.md, issue 13).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_cache_mb: Option<u64>,
    /// Heavy HTTP requests (search, SRU, OAI-PMH, export, import) worked on at once; each
    /// holds an index searcher or a catalog walk, tens of MB at most.
    #[serde(default = "default_heavy_requests")]
    pub heavy_requests_max: usize,
    /// Heavy requests that may wait for a place; past them the node answers 503 with
    /// `Retry-After` at once, instead of holding memory for each.
    #[serde(default = "default_heavy_waiting")]
    pub heavy_requests_waiting_max: usize,
    /// A request not answered in this many seconds is answered 503 (uploads excepted:
    /// an import takes as long as its file).
    #[serde(default = "default_request_timeout")]
    pub request_timeout_s: u64,
}

fn default_memory_mb() -> u64 {
    // An old PC with 2-4 GB shared with everything else (issue 19).
    MEMORY_MB_DEFAULT
}

/// The default memory budget, in megabytes.
/// 160: a node taking four catalogs of 50,000 records at once peaked at 324 MB under
/// it, 355 MB under 192 (BENCHMARKS.md, "The old PC's memory").
pub const MEMORY_MB_DEFAULT: u64 = 160;
/// The smallest memory budget: the index writer alone needs 15 MB.
pub const MEMORY_MB_MIN: u64 = 64;
/// The largest (1 TB): past it a budget is a typing error.
pub const MEMORY_MB_MAX: u64 = 1 << 20;
/// The most records an import batch may be set to.
const BATCH_RECORDS_MAX: usize = 1_000_000;
/// The search index writer's heap: tantivy's least for one indexing thread is 15 MB.
pub const INDEX_WRITER_BYTES: u64 = 16 << 20;
/// What one record of an import's batch costs while the batch is worked on and written:
/// the parsed record, its automerge op, its chunk, its view and envelope in sled's batch
/// and sled's log buffers (measured: a 50,000-record import peaked ~130 MB lower with
/// batches of 1,000 than of 5,000; BENCHMARKS.md, issue 19).
pub const BATCH_RECORD_BYTES: u64 = 32 << 10;
/// Sync requests in the air at once toward all peers together (the network's limit).
pub const SYNC_ANSWERS_IN_AIR: usize = 8;
/// The largest sync answer the protocol allows.
const SYNC_ANSWER_BYTES_MAX: u64 = 8 << 20;

/// What the memory budget gives each cache and queue: the budget less the index writer's
/// heap, split 15% sled's page cache, 35% shard documents, 30% an import's batch, 20% sync
/// answers in the air. A part set on its own in `[limits]` takes that setting instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryPlan {
    /// The budget, MB.
    pub budget_mb: u64,
    /// sled's page cache, bytes.
    pub store_cache_bytes: u64,
    /// Loaded shard documents, bytes (estimated from their stored size).
    pub shard_documents_bytes: u64,
    /// Loaded shard documents, count at most.
    pub shard_documents_max: usize,
    /// Records per import batch.
    pub batch_records: usize,
    /// The largest sync answer this node asks for, bytes.
    pub sync_answer_bytes: u64,
    /// Sync answers in the air at once.
    pub sync_answers_in_air: usize,
    /// The search index writer's heap, bytes.
    pub index_writer_bytes: u64,
}

impl LimitsSection {
    /// Why these limits cannot be used, if they cannot.
    fn invalid(&self) -> Option<String> {
        let memory = self.memory_mb;
        if memory < MEMORY_MB_MIN {
            return Some(format!(
                "[limits] memory_mb = {memory} is too little: at least {MEMORY_MB_MIN} (the \
                 search index alone needs 15 MB; {MEMORY_MB_DEFAULT} fits a PC with 2 GB)"
            ));
        }
        if memory > MEMORY_MB_MAX {
            return Some(format!(
                "[limits] memory_mb = {memory} is more than {MEMORY_MB_MAX} (1 TB): megabytes, not bytes"
            ));
        }
        if self
            .store_cache_mb
            .is_some_and(|mb| mb == 0 || mb > MEMORY_MB_MAX)
        {
            return Some(format!(
                "[limits] store_cache_mb must be 1 to {MEMORY_MB_MAX} (MB), or left out to take \
                 memory_mb's share"
            ));
        }
        if self
            .batch_records_max
            .is_some_and(|n| n == 0 || n > BATCH_RECORDS_MAX)
        {
            return Some(format!(
                "[limits] batch_records_max must be 1 to {BATCH_RECORDS_MAX}, or left out to take \
                 memory_mb's share"
            ));
        }
        None
    }

    /// What the parts set on their own take beyond the budget, MB (0 when within it): an
    /// older config.toml sets every part, as `jalin init` wrote them then.
    pub fn over_budget_mb(&self) -> u64 {
        let plan = self.memory_plan();
        let parts = plan.store_cache_bytes
            + plan.shard_documents_bytes
            + plan.batch_records as u64 * BATCH_RECORD_BYTES
            + plan.sync_answer_bytes * plan.sync_answers_in_air as u64
            + plan.index_writer_bytes;
        (parts >> 20).saturating_sub(plan.budget_mb)
    }

    /// The memory budget's parts, with the parts set on their own.
    pub fn memory_plan(&self) -> MemoryPlan {
        // (Outside its bounds, `DataDir::open` refuses the config.)
        let budget_mb = self.memory_mb.clamp(MEMORY_MB_MIN, MEMORY_MB_MAX);
        let rest = (budget_mb << 20).saturating_sub(INDEX_WRITER_BYTES);
        let share = |percent: u64| rest / 100 * percent;
        let batch_records = usize::try_from(share(30) / BATCH_RECORD_BYTES)
            .unwrap_or(usize::MAX)
            .clamp(50, 5000);
        MemoryPlan {
            budget_mb,
            // sled refuses a cache under 256 bytes (it asserts).
            store_cache_bytes: self
                .store_cache_mb
                .map_or(share(15), |mb| mb.clamp(1, MEMORY_MB_MAX) << 20),
            shard_documents_bytes: share(35),
            shard_documents_max: self
                .loaded_shards_max
                .unwrap_or(usize::from(crate::store::SHARD_COUNT) * 64)
                .clamp(1, 1 << 24),
            batch_records: self
                .batch_records_max
                .unwrap_or(batch_records)
                .clamp(1, BATCH_RECORDS_MAX),
            sync_answer_bytes: (share(20) / SYNC_ANSWERS_IN_AIR as u64)
                .clamp(64 << 10, SYNC_ANSWER_BYTES_MAX),
            sync_answers_in_air: SYNC_ANSWERS_IN_AIR,
            index_writer_bytes: INDEX_WRITER_BYTES,
        }
    }
}

fn default_heavy_requests() -> usize {
    // As many as the cores of the old PC a village library has: light requests (status,
    // a record's page) still find a core (BENCHMARKS.md, issue 13).
    2
}

fn default_heavy_waiting() -> usize {
    32
}

fn default_request_timeout() -> u64 {
    120
}

fn default_upload_mb() -> u64 {
    512
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            memory_mb: default_memory_mb(),
            upload_size_max_mb: default_upload_mb(),
            batch_records_max: None,
            loaded_shards_max: None,
            store_cache_mb: None,
            heavy_requests_max: default_heavy_requests(),
            heavy_requests_waiting_max: default_heavy_waiting(),
            request_timeout_s: default_request_timeout(),
        }
    }
}

/// An opened data directory.
#[derive(Clone)]
pub struct DataDir {
    /// Its path.
    pub path: PathBuf,
    /// The config.
    pub config: Config,
    /// The library's key.
    pub key: SigningKey,
    /// The API token.
    pub api_token: String,
}

impl std::fmt::Debug for DataDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataDir")
            .field("path", &self.path)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], ConfigError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| ConfigError::Random(e.to_string()))?;
    Ok(bytes)
}

/// Makes `dir` and everything in it the owner's alone (directories 0700, files 0600),
/// walking at most [`PERMISSIONS_DEPTH_MAX`] levels. A file made in it later (sled's and
/// the index's) is unreachable to others through the directory, whatever its own mode.
pub fn restrict_permissions(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fn walk(dir: &Path, depth: usize) -> std::io::Result<()> {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            if depth == PERMISSIONS_DEPTH_MAX {
                return Ok(());
            }
            for entry in std::fs::read_dir(dir)? {
                // A running node removes files as it works (the index merges segments):
                // one gone since the listing needs no restricting.
                let restricted = (|| -> std::io::Result<()> {
                    let entry = entry?;
                    let kind = entry.file_type()?;
                    if kind.is_dir() {
                        walk(&entry.path(), depth + 1)?;
                    } else if kind.is_file() {
                        let mode = entry.metadata()?.permissions().mode();
                        if mode & 0o077 != 0 {
                            std::fs::set_permissions(
                                entry.path(),
                                std::fs::Permissions::from_mode(mode & 0o700),
                            )?;
                        }
                    }
                    Ok(())
                })();
                match restricted {
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                    other => other?,
                }
            }
            Ok(())
        }
        walk(dir, 0)
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Windows: the data dir (and all that will be in it, by inheritance) open to the
/// library's account and to the system alone, and owned by that account: a protected
/// access list of two entries, the account's and SYSTEM's (S-1-5-18), every other one,
/// inherited from the folder above, removed. The account is named (`DOMAIN\user`), not
/// taken as "the owner": a folder made from an elevated prompt is owned by
/// Administrators. Set with Windows' own `icacls` (in System32 since Vista), so that no
/// unsafe code is needed for it. It fails where there are no access lists (a FAT flash
/// disk): the error says so.
#[cfg(windows)]
fn owner_only(dir: &Path) -> std::io::Result<()> {
    let system = std::env::var_os("SystemRoot").unwrap_or_else(|| "C:\\Windows".into());
    let icacls = Path::new(&system).join("System32").join("icacls.exe");
    let account = match (std::env::var("USERDOMAIN"), std::env::var("USERNAME")) {
        (Ok(domain), Ok(user)) if !user.is_empty() => format!("{domain}\\{user}"),
        // No account name: the owner's rights (S-1-3-4), whoever the owner is.
        _ => "*S-1-3-4".to_string(),
    };
    let run = |args: &[&std::ffi::OsStr]| -> std::io::Result<()> {
        let output = std::process::Command::new(&icacls)
            .arg(dir)
            .args(args)
            .output()?;
        if output.status.success() {
            return Ok(());
        }
        Err(std::io::Error::other(format!(
            "{} could not make {} the library account's alone (is it on a drive without \
             access lists, such as a FAT flash disk? use a folder on the PC's NTFS drive): {} {}",
            icacls.display(),
            dir.display(),
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    };
    let grant = format!("{account}:(OI)(CI)F");
    run(&[
        "/inheritance:r".as_ref(),
        "/grant:r".as_ref(),
        grant.as_ref(),
        "/grant:r".as_ref(),
        "*S-1-5-18:(OI)(CI)F".as_ref(),
    ])?;
    if !account.starts_with('*') {
        run(&["/setowner".as_ref(), account.as_ref()])?;
    }
    Ok(())
}

/// How deep [`restrict_permissions`] walks: the data dir, `db/`, `index/`, and one more.
#[cfg(unix)]
const PERMISSIONS_DEPTH_MAX: usize = 3;

/// Writes a file readable by its owner only.
fn write_private(path: &Path, contents: &[u8]) -> Result<(), ConfigError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io(path))?;
    file.write_all(contents).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

fn valid_code(code: &str) -> bool {
    (2..=32).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl DataDir {
    /// The config file's path.
    pub fn config_path(path: &Path) -> PathBuf {
        path.join("config.toml")
    }

    /// Creates a library in `path`: config, key, API token.
    pub fn init(path: &Path, name: &str, code: &str) -> Result<DataDir, ConfigError> {
        if !valid_code(code) {
            return Err(ConfigError::BadCode {
                code: code.to_string(),
            });
        }
        if let Ok(existing) = Self::open(path) {
            return Err(ConfigError::AlreadyInitialised {
                path: path.to_path_buf(),
                name: existing.config.library.name,
            });
        }
        std::fs::create_dir_all(path).map_err(io(path))?;
        restrict_permissions(path).map_err(io(path))?;
        #[cfg(windows)]
        owner_only(path).map_err(io(path))?;
        let key = SigningKey::from_bytes(&random_bytes::<32>()?);
        let token = hex(&random_bytes::<24>()?);
        write_private(&path.join("library.key"), hex(&key.to_bytes()).as_bytes())?;
        write_private(&path.join("api-token"), token.as_bytes())?;
        let config = Config {
            library: LibrarySection {
                name: name.trim().to_string(),
                code: code.to_string(),
                email: None,
            },
            http: HttpSection::default(),
            network: NetworkSection::default(),
            limits: LimitsSection::default(),
            iso18626: Iso18626Section::default(),
            needs: NeedsSection::default(),
            partners: PartnersSection::default(),
        };
        let text = toml::to_string_pretty(&config).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let config_path = Self::config_path(path);
        let header = "# Jalin node configuration. See README.md.\n";
        std::fs::write(&config_path, format!("{header}{text}")).map_err(io(&config_path))?;
        Self::open(path)
    }

    /// Opens an initialised data directory.
    pub fn open(path: &Path) -> Result<DataDir, ConfigError> {
        let config_path = Self::config_path(path);
        let text = match std::fs::read_to_string(&config_path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ConfigError::NotInitialised {
                    path: path.to_path_buf(),
                })
            }
            Err(e) => return Err(io(&config_path)(e)),
        };
        let config: Config = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: config_path.clone(),
            reason: e.to_string(),
        })?;
        if let Some(reason) = config.limits.invalid() {
            return Err(ConfigError::Invalid {
                path: config_path,
                reason,
            });
        }
        let key_path = path.join("library.key");
        let key_text = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
        let key_bytes: [u8; 32] = jalin_protocol::signing::unhex(key_text.trim())
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| ConfigError::Invalid {
                path: key_path.clone(),
                reason: "not a 32-byte key in hex".into(),
            })?;
        let token_path = path.join("api-token");
        let api_token = std::fs::read_to_string(&token_path)
            .map_err(io(&token_path))?
            .trim()
            .to_string();
        // A data dir made by an older version, or copied in, may be open to every user of
        // the machine: the key, the token and invite tickets are in it.
        restrict_permissions(path).map_err(io(path))?;
        Ok(DataDir {
            path: path.to_path_buf(),
            config,
            key: SigningKey::from_bytes(&key_bytes),
            api_token,
        })
    }

    /// This library's identity.
    pub fn library_id(&self) -> LibraryId {
        LibraryId::from_key(&self.key.verifying_key())
    }

    /// Where sled keeps the durable state.
    pub fn db_path(&self) -> PathBuf {
        self.path.join("db")
    }

    /// Where tantivy keeps the search index.
    pub fn index_path(&self) -> PathBuf {
        self.path.join("index")
    }

    /// Where a running node says how to reach it.
    pub fn node_file(path: &Path) -> PathBuf {
        path.join("node.json")
    }
}

/// What a running node writes to `node.json` so the CLI can find it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunningNode {
    /// Its HTTP base URL.
    pub url: String,
    /// Its process id.
    pub pid: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(memory_mb: u64) -> MemoryPlan {
        LimitsSection {
            memory_mb,
            ..LimitsSection::default()
        }
        .memory_plan()
    }

    /// Every part's share fits in the budget together, and grows with it.
    #[test]
    fn the_memory_budget_is_shared_out_and_each_part_grows_with_it() {
        for budget in [MEMORY_MB_MIN, MEMORY_MB_DEFAULT, 512, 4096] {
            let plan = planned(budget);
            let parts = plan.store_cache_bytes
                + plan.shard_documents_bytes
                + plan.batch_records as u64 * BATCH_RECORD_BYTES
                + plan.sync_answer_bytes * plan.sync_answers_in_air as u64
                + plan.index_writer_bytes;
            assert!(
                parts <= budget << 20,
                "{budget} MB: parts hold {parts} bytes"
            );
            // Nothing is left idle either, up to where a batch and an answer reach their
            // own largest (5,000 records, 8 MB).
            if budget <= 512 {
                assert!(
                    parts * 10 >= (budget << 20) * 7,
                    "{budget} MB: only {parts}"
                );
            }
        }
        let (small, large) = (planned(MEMORY_MB_DEFAULT), planned(1024));
        assert!(small.store_cache_bytes < large.store_cache_bytes);
        assert!(small.shard_documents_bytes < large.shard_documents_bytes);
        assert!(small.batch_records < large.batch_records);
        assert!(small.sync_answer_bytes < large.sync_answer_bytes);
        // A PC with 2 GB: batches of over a thousand records, answers of megabytes.
        assert!(small.batch_records >= 1000, "{small:?}");
        assert!(small.sync_answer_bytes >= 1 << 20, "{small:?}");
    }

    /// A part set on its own in `[limits]` takes that setting; the others keep their share.
    #[test]
    fn a_part_set_on_its_own_overrides_its_share() {
        let limits = LimitsSection {
            batch_records_max: Some(10),
            store_cache_mb: Some(8),
            loaded_shards_max: Some(4),
            ..LimitsSection::default()
        };
        let plan = limits.memory_plan();
        assert_eq!(plan.batch_records, 10);
        assert_eq!(plan.store_cache_bytes, 8 << 20);
        assert_eq!(plan.shard_documents_max, 4);
        let default = planned(MEMORY_MB_DEFAULT);
        assert_eq!(plan.shard_documents_bytes, default.shard_documents_bytes);
        assert_eq!(plan.sync_answer_bytes, default.sync_answer_bytes);
    }

    /// `init` writes the budget (and none of the parts); a budget under the least is
    /// refused with where and why, and an older config with the parts set still opens.
    #[test]
    fn the_budget_is_written_checked_and_older_configs_open() {
        let dir = tempfile::tempdir().expect("temp dir");
        DataDir::init(dir.path(), "Perpustakaan Uji", "UJI").expect("init");
        let path = DataDir::config_path(dir.path());
        let text = std::fs::read_to_string(&path).expect("reads");
        assert!(
            text.contains(&format!("memory_mb = {MEMORY_MB_DEFAULT}\n")),
            "{text}"
        );
        assert!(!text.contains("batch_records_max"), "{text}");
        let default = format!("memory_mb = {MEMORY_MB_DEFAULT}");
        std::fs::write(&path, text.replace(&default, "memory_mb = 32")).expect("w");
        let error = DataDir::open(dir.path()).expect_err("refused").to_string();
        assert!(error.contains("config.toml"), "{error}");
        assert!(
            error.contains("memory_mb = 32 is too little: at least 64"),
            "{error}"
        );
        std::fs::write(
            &path,
            text.replace(
                &format!("{default}\n"),
                "batch_records_max = 5000\nloaded_shards_max = 256\nstore_cache_mb = 32\n",
            ),
        )
        .expect("writes");
        let opened = DataDir::open(dir.path()).expect("an older config opens");
        let plan = opened.config.limits.memory_plan();
        assert_eq!(plan.budget_mb, MEMORY_MB_DEFAULT);
        assert_eq!((plan.batch_records, plan.shard_documents_max), (5000, 256));
        // ... and is said to be over the budget (5,000 records of 32 KB alone are 160 MB).
        assert!(opened.config.limits.over_budget_mb() > 0);
        assert_eq!(LimitsSection::default().over_budget_mb(), 0);
        for (setting, why) in [
            ("memory_mb = 17592186044416", "megabytes, not bytes"),
            (
                "memory_mb = 192\nstore_cache_mb = 0",
                "store_cache_mb must be 1 to",
            ),
            (
                "memory_mb = 192\nbatch_records_max = 0",
                "batch_records_max must be 1 to",
            ),
            (
                "memory_mb = 192\nbatch_records_max = 99999999999",
                "batch_records_max must",
            ),
        ] {
            std::fs::write(&path, text.replace(&default, setting)).expect("writes");
            let error = DataDir::open(dir.path()).expect_err(setting).to_string();
            assert!(error.contains(why), "{setting}: {error}");
        }
        // The plan itself never overflows, whatever it is given.
        let huge = LimitsSection {
            memory_mb: u64::MAX,
            store_cache_mb: Some(u64::MAX),
            batch_records_max: Some(usize::MAX),
            loaded_shards_max: Some(usize::MAX),
            ..LimitsSection::default()
        };
        let plan = huge.memory_plan();
        assert!(plan.store_cache_bytes >= 256 && plan.batch_records <= 1_000_000);
        assert!(huge.over_budget_mb() > 0);
    }

    #[test]
    fn init_then_open_and_refuse_a_second_init() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data =
            DataDir::init(dir.path(), "Perpustakaan Desa Kemiri Lor", "KEMIRILOR").expect("init");
        let again = DataDir::open(dir.path()).expect("open");
        assert_eq!(again.library_id(), data.library_id());
        assert_eq!(again.api_token, data.api_token);
        assert!(matches!(
            DataDir::init(dir.path(), "X", "XX"),
            Err(ConfigError::AlreadyInitialised { .. })
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("library.key"))
                .expect("key")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let mode_of = |p: &Path| std::fs::metadata(p).expect("exists").permissions().mode();
            assert_eq!(mode_of(dir.path()) & 0o777, 0o700, "data dir");
            // An older data dir, open to all, is closed when opened.
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
                .expect("chmod");
            std::fs::write(dir.path().join("open-file"), "x").expect("write");
            std::fs::set_permissions(
                dir.path().join("open-file"),
                std::fs::Permissions::from_mode(0o644),
            )
            .expect("chmod");
            DataDir::open(dir.path()).expect("open");
            assert_eq!(mode_of(dir.path()) & 0o777, 0o700);
            assert_eq!(mode_of(&dir.path().join("open-file")) & 0o777, 0o600);
            assert_eq!(mode_of(&dir.path().join("config.toml")) & 0o777, 0o600);
        }
        assert!(matches!(
            DataDir::init(dir.path(), "X", "bad code!"),
            Err(ConfigError::BadCode { .. })
        ));
    }
}
