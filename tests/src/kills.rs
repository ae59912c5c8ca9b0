//! The kill loop (issue 19): real `jalin` processes killed with SIGKILL at random moments
//! of an import, a sync, an OAI-PMH harvest and an agreement signature. After each kill
//! the store opens, everything the process had acknowledged is there, and search answers.
//! `tests/it/crash.rs` runs a few rounds of each; `tests/benches/kills.rs` a thousand.
//!
//! What counts as acknowledged, per operation:
//! - import: the records of every batch `jalin import` reported committed (`committed N
//!   record(s) of M read`: the file's first M records);
//! - sync: the records of the other library's catalog the syncing node reported holding
//!   (`jalin sync status`, asked through its API) before the kill;
//! - harvest: the records a harvest that exited successfully had stored;
//! - signature: a `jalin agreement sign` that exited successfully.

use crate::fixtures::{form_consortium, share_documents, T};
use jalin_node::config::DataDir;
use jalin_node::library::Library;
use jalin_protocol::consortium::document::Hash32;
use jalin_protocol::marc::iso2709;
use jalin_protocol::signing::LibraryId;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What one operation's kills came to.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub operation: &'static str,
    pub kills: usize,
    /// Kills that landed after something was acknowledged in that round.
    pub kills_after_acknowledgement: usize,
    /// Records or signatures acknowledged before the kills, summed over the rounds.
    pub acknowledged: u64,
    /// Of those, missing after the kill (the target: 0; a loss fails the loop at once).
    pub lost: u64,
}

/// Kill moments from a fixed seed.
pub struct Moments(u64);

impl Moments {
    pub fn new(seed: u64) -> Moments {
        Moments(seed)
    }

    /// A moment in `[0, window)`.
    pub fn next(&mut self, window: Duration) -> Duration {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let millis = window.as_millis().max(1) as u64;
        Duration::from_millis((self.0 >> 33) % millis)
    }
}

/// Kills `child` (SIGKILL); whether it was still running then (a kill, not a reaping).
fn kill(mut child: Child) -> bool {
    let running = matches!(child.try_wait(), Ok(None));
    let _ = child.kill();
    let _ = child.wait();
    running
}

/// Follows `lines` of a child's stderr, sending the number `parse` finds in each.
fn follow(
    stderr: std::process::ChildStderr,
    parse: fn(&str) -> Option<u64>,
) -> (mpsc::Receiver<u64>, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<u64>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(n) = parse(&line) {
                let _ = tx.send(n);
            }
        }
    });
    (rx, reader)
}

/// The last number `rx` gives before `deadline` (or the child's end), then any sent just
/// before the kill.
fn last_until(rx: &mpsc::Receiver<u64>, deadline: Instant) -> u64 {
    let mut last = 0;
    while let Ok(n) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        last = n;
    }
    last
}

/// A child killed (SIGKILL) when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn jalin(binary: &Path, data: &Path) -> Command {
    let mut command = Command::new(binary);
    command.arg("--data-dir").arg(data);
    command
}

fn configure(data: &Path, from: &str, to: &str) {
    let path = DataDir::config_path(data);
    let text = std::fs::read_to_string(&path).expect("config");
    assert!(text.contains(from), "{from} not in {}", path.display());
    std::fs::write(&path, text.replace(from, to)).expect("config");
}

/// A data dir with small batches (kills land between and inside many commits).
fn init(data: &Path, code: &str) -> DataDir {
    let mut dir = DataDir::init(data, "Perpustakaan Uji", code).expect("init");
    configure(data, "[limits]\n", "[limits]\nbatch_records_max = 100\n");
    configure(data, "mdns = true", "mdns = false");
    dir.config.limits.batch_records_max = Some(100);
    dir.config.network.mdns = false;
    dir
}

/// The store opens after the kill, its index caught up, and search answers.
fn reopen(data: &Path, what: &str) -> Library {
    let library = Library::open(DataDir::open(data).expect("data dir")).unwrap_or_else(|e| {
        // Kept for a post-mortem: the scratch dir goes when the panic unwinds.
        let kept = std::env::temp_dir().join(format!(
            "jalin-kill-failure-{}-{}",
            std::process::id(),
            what.replace(' ', "-")
        ));
        let copied = Command::new("cp")
            .arg("-a")
            .arg(data)
            .arg(&kept)
            .status()
            .is_ok_and(|s| s.success());
        panic!(
            "{what}: the store does not open after a kill: {e} (the data dir {})",
            if copied {
                format!("is kept at {}", kept.display())
            } else {
                "could not be kept".to_string()
            }
        )
    });
    let status = library.status().expect("status");
    let held = status.records + status.replicas.iter().map(|r| r.records).sum::<u64>();
    assert_eq!(
        status.indexed, held,
        "{what}: the index caught up with the store (own catalog and those held)"
    );
    library.search("the", 1, 1).expect("search answers");
    library
}

/// The ids of the records in a MARC file, in order, as the library makes them (from the
/// 001, cleaned).
pub fn ids_of(file: &Path) -> Vec<String> {
    iso2709::Reader::new(std::fs::read(file).expect("file").as_slice())
        .map(|r| {
            jalin_protocol::record::Record::from_marc(r.expect("reads").record)
                .id()
                .to_string()
        })
        .collect()
}

/// Kills `jalin import FILE` into a fresh data dir `rounds` times, each at a moment within
/// the time a whole import takes.
pub fn imports(binary: &Path, file: &Path, rounds: usize, moments: &mut Moments) -> Tally {
    let ids = ids_of(file);
    let mut tally = Tally {
        operation: "import",
        ..Tally::default()
    };
    let scratch = tempfile::tempdir().expect("temp dir");
    // How long a whole import takes: the window the kills fall in.
    let whole = scratch.path().join("whole");
    init(&whole, "UJI");
    let started = Instant::now();
    let status = jalin(binary, &whole)
        .arg("import")
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("jalin runs");
    assert!(status.success());
    let window = started.elapsed();
    for round in 0..rounds {
        let data = scratch.path().join(format!("import-{round}"));
        init(&data, "UJI");
        let mut child = jalin(binary, &data)
            .arg("import")
            .arg(file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("jalin runs");
        // "committed N record(s) of M read": the file's first M records are durable.
        let (rx, reader) = follow(child.stderr.take().expect("piped"), |line| {
            line.strip_prefix("committed ")
                .and_then(|rest| rest.split(" of ").nth(1))
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        });
        let mut prefix = last_until(&rx, Instant::now() + moments.next(window));
        let killed = kill(child);
        reader.join().expect("reader");
        // A report written just before the kill still counts.
        prefix = rx.try_iter().last().unwrap_or(prefix).max(prefix);
        let prefix = prefix as usize;
        let library = reopen(&data, &format!("import round {round}"));
        let missing: Vec<&String> = ids[..prefix]
            .iter()
            .filter(|id| {
                !library
                    .store()
                    .get(id)
                    .expect("reads")
                    .is_some_and(|r| !r.deleted && jalin_node::library::decode(&r).is_some())
            })
            .collect();
        tally.kills += usize::from(killed);
        tally.kills_after_acknowledgement += usize::from(killed && prefix > 0);
        tally.acknowledged += prefix as u64;
        tally.lost += missing.len() as u64;
        assert!(
            missing.is_empty(),
            "import round {round}: {} of {prefix} records reported committed are missing: {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        drop(library);
        let _ = std::fs::remove_dir_all(&data);
    }
    tally
}

/// A running `jalin start`: its URL and libp2p address.
pub struct Running {
    _child: Killed,
    pub url: String,
    pub p2p: String,
}

/// Starts a node on 127.0.0.1 (free ports) for `data`.
pub fn start(binary: &Path, data: &Path) -> Running {
    let mut command = jalin(binary, data);
    command
        .args([
            "start",
            "--listen",
            "127.0.0.1:0",
            "--p2p-listen",
            "/ip4/127.0.0.1/tcp/0",
        ])
        .stderr(Stdio::null());
    let (child, url, p2p) = spawn_node(command);
    Running {
        _child: Killed(child),
        url,
        p2p,
    }
}

/// Spawns a `jalin start` command; waits for its URL and its libp2p address (what it
/// prints first), and reads the rest of its output away.
pub fn spawn_node(mut command: Command) -> (Child, String, String) {
    let mut child = command.stdout(Stdio::piped()).spawn().expect("jalin runs");
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut url = None;
    let p2p = loop {
        let line = lines
            .next()
            .expect("the node prints its addresses")
            .expect("utf-8");
        if let Some(at) = line.find("is serving ") {
            url = Some(line[at + "is serving ".len()..].trim().to_string());
        }
        if let Some(address) = line.trim().strip_prefix("p2p: ") {
            break address.to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, url.expect("the URL comes first"), p2p)
}

/// The records of catalog `of` a node reports holding (`jalin sync status` through its API).
fn reported_records(binary: &Path, data: &Path, of: &LibraryId) -> Option<u64> {
    let output = jalin(binary, data)
        .args(["sync", "status", "--json"])
        .output()
        .ok()?;
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    status["catalogs"]
        .as_array()?
        .iter()
        .find(|c| c["library_id"] == of.to_hex())
        .and_then(|c| c["records"].as_u64())
}

/// Two members: A (the owner of `file`'s records, added `chunk` at a time while its node
/// runs) and B, whose node is started, dialed to A and killed while it takes each chunk;
/// `rounds` rounds. Then A's OAI-PMH is harvested by a third data dir, killed `rounds`
/// times; then B signs `rounds` agreement versions, each signature killed.
pub struct Consortium {
    scratch: tempfile::TempDir,
    a: PathBuf,
    b: PathBuf,
    a_id: LibraryId,
    consortium: Hash32,
}

impl Consortium {
    pub fn new() -> Consortium {
        let scratch = tempfile::tempdir().expect("temp dir");
        let (a, b) = (scratch.path().join("a"), scratch.path().join("b"));
        let a_library = Library::open(init(&a, "PERPUSA")).expect("opens");
        let b_library = Library::open(init(&b, "PERPUSB")).expect("opens");
        let consortium = form_consortium("Uji Putus Listrik", &[&a_library, &b_library]);
        let a_id = a_library.id();
        Consortium {
            scratch,
            a,
            b,
            a_id,
            consortium,
        }
    }

    /// Kills B's node while it takes A's catalog, a chunk of `chunk` new records a round.
    pub fn syncs(
        &self,
        binary: &Path,
        file: &Path,
        chunk: usize,
        rounds: usize,
        moments: &mut Moments,
    ) -> Tally {
        let bytes = std::fs::read(file).expect("file");
        // Each record as it is in the file (ISO 2709 records end with 0x1D).
        let records: Vec<&[u8]> = bytes
            .split_inclusive(|b| *b == 0x1d)
            .filter(|r| r.len() > 24)
            .collect();
        assert!(records.len() >= chunk * rounds, "too few records");
        let mut tally = Tally {
            operation: "sync",
            ..Tally::default()
        };
        let a = start(binary, &self.a);
        let mut held = 0u64;
        for round in 0..rounds {
            let part = self.scratch.path().join("chunk.mrc");
            std::fs::write(&part, records[round * chunk..(round + 1) * chunk].concat())
                .expect("writes");
            // Through A's running node.
            let status = jalin(binary, &self.a)
                .arg("import")
                .arg(&part)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("jalin runs");
            assert!(status.success());
            let b = start(binary, &self.b);
            let dialed = jalin(binary, &self.b)
                .args(["peers", "--dial", &a.p2p])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("jalin runs");
            assert!(dialed.success(), "sync round {round}: B could not dial A");
            let deadline = Instant::now() + moments.next(Duration::from_millis(2500));
            let mut acknowledged = held;
            while Instant::now() < deadline {
                if let Some(n) = reported_records(binary, &self.b, &self.a_id) {
                    acknowledged = acknowledged.max(n);
                }
            }
            drop(b);
            let library = reopen(&self.b, &format!("sync round {round}"));
            let stored = library.store().records_of(&self.a_id).count() as u64;
            // A node does not end by itself: every round is a kill.
            tally.kills += 1;
            tally.kills_after_acknowledgement += usize::from(acknowledged > 0);
            tally.acknowledged += acknowledged;
            tally.lost += acknowledged.saturating_sub(stored);
            assert!(
                stored >= acknowledged,
                "sync round {round}: B reported {acknowledged} of A's records, holds {stored}"
            );
            held = stored;
        }
        tally
    }

    /// Kills `jalin import --oai-pmh` of A's OAI-PMH feed into a fresh data dir each round,
    /// at a moment within the time a whole harvest takes; what the pages it reported
    /// stored held must be there.
    pub fn harvests(&self, binary: &Path, rounds: usize, moments: &mut Moments) -> Tally {
        let mut tally = Tally {
            operation: "harvest",
            ..Tally::default()
        };
        let a = start(binary, &self.a);
        let oai = format!("{}/oai", a.url);
        let harvest = |data: &Path| {
            jalin(binary, data)
                .args(["import", "--oai-pmh", &oai])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("jalin runs")
        };
        // How long a whole harvest takes: the window the kills fall in.
        let whole = self.scratch.path().join("harvest-whole");
        init(&whole, "PANEN");
        let started = Instant::now();
        let ok = harvest(&whole).wait().expect("jalin runs").success();
        assert!(ok, "a whole harvest of {oai} succeeds");
        let window = started.elapsed();
        for round in 0..rounds {
            let h = self.scratch.path().join(format!("harvest-{round}"));
            init(&h, "PANEN");
            let mut child = harvest(&h);
            // "page N: M record(s) stored so far"
            let (rx, reader) = follow(child.stderr.take().expect("piped"), |line| {
                line.strip_prefix("page ")
                    .and_then(|rest| rest.split(": ").nth(1))
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|n| n.parse().ok())
            });
            let mut stored_said = last_until(&rx, Instant::now() + moments.next(window));
            let killed = kill(child);
            reader.join().expect("reader");
            stored_said = rx.try_iter().last().unwrap_or(stored_said).max(stored_said);
            let library = reopen(&h, &format!("harvest round {round}"));
            let stored = library.status().expect("status").records;
            tally.kills += usize::from(killed);
            tally.kills_after_acknowledgement += usize::from(killed && stored_said > 0);
            tally.acknowledged += stored_said;
            tally.lost += stored_said.saturating_sub(stored);
            assert!(
                stored >= stored_said,
                "harvest round {round}: {stored_said} records reported stored, {stored} after the kill"
            );
            drop(library);
            let _ = std::fs::remove_dir_all(&h);
        }
        tally
    }

    /// `jalin agreement sign` at B, a new agreement each round: every other round runs to
    /// its end (acknowledged), the others are killed before it would end.
    pub fn signatures(&self, binary: &Path, rounds: usize, moments: &mut Moments) -> Tally {
        let mut tally = Tally {
            operation: "signature",
            ..Tally::default()
        };
        let mut took = Duration::from_millis(300);
        let mut signed: Vec<Hash32> = Vec::new();
        for round in 0..rounds {
            // A drafts a new agreement and B takes in the documents (both offline).
            let agreement = {
                let a = Library::open(DataDir::open(&self.a).expect("data dir")).expect("opens");
                let b = Library::open(DataDir::open(&self.b).expect("data dir")).expect("opens");
                let file = format!(
                    "+++\ntitle = \"Perjanjian {round}\"\n+++\nPara pihak saling meminjamkan koleksi ({round}).\n"
                );
                let agreement = a
                    .consortia()
                    .draft(&self.consortium, &file, T + 10_000 + round as u64)
                    .expect("drafts");
                share_documents(&[&a, &b]);
                agreement
            };
            let started = Instant::now();
            let mut child = jalin(binary, &self.b)
                .args(["agreement", "sign", &agreement.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("jalin runs");
            let to_the_end = round % 2 == 0;
            let mut killed = false;
            if to_the_end {
                let status = child.wait().expect("jalin runs");
                assert!(status.success(), "signature round {round}: sign failed");
                took = started.elapsed();
                signed.push(agreement);
            } else {
                // Before it would end (it took `took` last time).
                std::thread::sleep(moments.next(took.mul_f64(0.9)));
                let finished = matches!(child.try_wait(), Ok(Some(s)) if s.success());
                killed = kill(child);
                if finished {
                    signed.push(agreement);
                }
            }
            let library = reopen(&self.b, &format!("signature round {round}"));
            let me = library.id();
            let missing = signed
                .iter()
                .filter(|agreement| {
                    let (status, _) = library
                        .consortia()
                        .agreement_status(&self.consortium, agreement)
                        .expect("the agreement is there");
                    !status
                        .versions
                        .iter()
                        .any(|v| v.signed_by.contains_key(&me))
                })
                .count();
            tally.kills += usize::from(killed);
            tally.kills_after_acknowledgement += usize::from(killed && !signed.is_empty());
            tally.acknowledged = signed.len() as u64;
            tally.lost += missing as u64;
            assert_eq!(
                missing, 0,
                "signature round {round}: {missing} acknowledged signatures missing"
            );
        }
        tally
    }
}

impl Default for Consortium {
    fn default() -> Consortium {
        Consortium::new()
    }
}
