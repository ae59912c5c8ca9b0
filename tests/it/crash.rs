//! A node killed at any moment keeps every write it reported durable.
//!
//! The real `jalin import` of 10,000 records is killed (SIGKILL) at varied moments, 20
//! times. After each kill the store opens, every record of every batch the import had
//! reported committed is there, and search works; a final import completes the catalog to
//! exactly 10,000 records.

use crate::shared_data_or_skip;
use crate::support::jalin_binary;
use jalin_node::config::DataDir;
use jalin_node::library::Library;
use jalin_protocol::marc::iso2709;
use jalin_tests::kills::{imports, Consortium, Moments};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KILLS: usize = 20;

#[test]
fn killed_imports_lose_no_reported_batch() {
    let data = shared_data_or_skip!();
    let file = data.join("marc/loc/loc-books-10k.mrc");
    let ids: Vec<String> = iso2709::Reader::new(std::fs::read(&file).expect("file").as_slice())
        .map(|r| {
            r.expect("reads")
                .record
                .control("001")
                .expect("001")
                .trim()
                .to_string()
        })
        .collect();
    assert_eq!(ids.len(), 10_000);
    let dir = tempfile::tempdir().expect("temp dir");
    DataDir::init(dir.path(), "Perpustakaan Uji", "UJI").expect("init");
    // Small batches, so that kills land between and inside many commits.
    let config = dir.path().join("config.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replace("[limits]\n", "[limits]\nbatch_records_max = 250\n"),
    )
    .expect("config");

    // Kill moments spread over the import's length, from a fixed seed.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut kills_with_progress = 0;
    for round in 0..KILLS {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = Duration::from_millis(200 + (seed >> 33) % 9000);
        let mut child = Command::new(jalin_binary())
            .args(["--data-dir"])
            .arg(dir.path())
            .arg("import")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("jalin runs");
        let stderr = child.stderr.take().expect("piped");
        // What the import reports as committed: "committed N record(s) of M read" means
        // the first M records of the file are durable.
        let (progress_tx, progress_rx) = std::sync::mpsc::channel::<u64>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let read = line
                    .strip_prefix("committed ")
                    .and_then(|rest| rest.split(" of ").nth(1))
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|n| n.parse().ok());
                if let Some(read) = read {
                    let _ = progress_tx.send(read);
                }
            }
        });
        // Follow the reports until the kill moment (or the import's end).
        let deadline = Instant::now() + delay;
        let mut durable_prefix = 0u64;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match progress_rx.recv_timeout(left) {
                Ok(read) => durable_prefix = read,
                Err(_) => break,
            }
        }
        let _ = child.kill();
        child.wait().expect("reaped");
        reader.join().expect("reader");
        // Reports written just before the kill still count.
        durable_prefix = progress_rx
            .try_iter()
            .last()
            .unwrap_or(durable_prefix)
            .max(durable_prefix);
        let durable_prefix = durable_prefix as usize;
        if durable_prefix > 0 {
            kills_with_progress += 1;
        }

        let library = Library::open(DataDir::open(dir.path()).expect("data dir"))
            .unwrap_or_else(|e| panic!("round {round}: store does not open: {e}"));
        for id in &ids[..durable_prefix] {
            let stored = library.store().get(id).expect("reads").unwrap_or_else(|| {
                panic!("round {round}: record {id} was reported committed but is missing")
            });
            assert!(!stored.deleted);
            assert!(
                jalin_node::library::decode(&stored).is_some(),
                "round {round}: record {id} does not read back"
            );
        }
        let status = library.status().expect("status");
        assert!(status.records as usize >= durable_prefix);
        assert_eq!(
            status.indexed, status.records,
            "round {round}: the index caught up with the store"
        );
        if durable_prefix > 0 {
            assert!(library.search("the", 1, 1).expect("search").total > 0);
        }
    }
    assert!(
        kills_with_progress >= KILLS / 2,
        "most kills landed after some batches: {kills_with_progress}"
    );

    let output = Command::new(jalin_binary())
        .args(["--data-dir"])
        .arg(dir.path())
        .arg("import")
        .arg(&file)
        .output()
        .expect("jalin runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let library = Library::open(DataDir::open(dir.path()).expect("data dir")).expect("opens");
    let status = library.status().expect("status");
    assert_eq!(
        (status.records, status.deleted, status.indexed),
        (10_000, 0, 10_000)
    );
}

/// The kill loop's short version (the bench `kills` runs 1,000): a node or command
/// killed at random moments of an import, a sync, an OAI-PMH harvest and an agreement
/// signature, four rounds each (two of the signatures run to their end); after each kill the store opens, search answers, and
/// nothing acknowledged is missing (`jalin_tests::kills` says what counts as
/// acknowledged, per operation).
#[test]
fn kills_during_import_sync_harvest_and_signing_lose_nothing_acknowledged() {
    let data = shared_data_or_skip!();
    let file = data.join("marc/loc/loc-indonesia-3147.mrc");
    let binary = jalin_binary();
    let mut moments = Moments::new(19);
    let consortium = Consortium::new();
    let tallies = [
        imports(&binary, &file, 4, &mut moments),
        consortium.syncs(&binary, &file, 200, 4, &mut moments),
        consortium.harvests(&binary, 4, &mut moments),
        consortium.signatures(&binary, 4, &mut moments),
    ];
    for tally in &tallies {
        eprintln!("{tally:?}");
        assert_eq!(tally.lost, 0, "{tally:?}");
        // A loop whose processes all ended before their kill, or were all killed before
        // acknowledging anything, would prove nothing.
        assert!(
            tally.kills_after_acknowledgement >= 1,
            "no kill after an acknowledgement: {tally:?}"
        );
    }
}

/// A power cut is not a kill: what a batch reported committed must be on the disk, not
/// only in the kernel's cache. sled's own flush stops at `sync_file_range` (no drive
/// cache flush, no file length) and `fsync`s only every half second; Jalin's flush
/// `fsync`s the log each time. Seen with strace: an import of 50 batches `fsync`s the
/// store's log at least once a batch.
#[test]
fn each_reported_batch_is_fsynced_not_only_written() {
    if !crate::support::have_tool("strace", &["-V"]) {
        eprintln!("strace missing: skipped");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let (status, _, stderr) = crate::cli::jalin(&data, &["init", "--name", "Uji", "--code", "UJI"]);
    assert_eq!(status, 0, "{stderr}");
    let config = data.join("config.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text.replace("[limits]\n", "[limits]\nbatch_records_max = 10\n");
    assert!(text.contains("batch_records_max = 10\n"), "{text}");
    std::fs::write(&config, text).expect("writes");
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cli/demo/loc-indonesia-sample.mrc");
    let trace = dir.path().join("trace.txt");
    let output = std::process::Command::new("strace")
        .args(["-f", "-y", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&trace)
        .arg(crate::support::jalin_binary())
        .arg("--data-dir")
        .arg(&data)
        .arg("import")
        .arg(&sample)
        .output()
        .expect("strace runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let trace = std::fs::read_to_string(&trace).expect("the trace");
    let log_syncs = trace
        .lines()
        .filter(|l| l.contains("fsync(") && l.contains("/db/db>"))
        .count();
    // 500 records in batches of 10: 50 reported batches.
    assert!(log_syncs >= 50, "{log_syncs} fsyncs of the log:\n{trace}");
}
