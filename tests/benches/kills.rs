//! The kill loop (issue 19): `jalin` killed with SIGKILL at random moments of imports,
//! syncs, OAI-PMH harvests and agreement signatures; after each kill the store opens,
//! search answers, and nothing acknowledged is missing.
//!
//!   cargo bench -p jalin-tests --bench kills -- ../shared/data/marc/loc/loc-books-10k.mrc 250
//!
//! (the MARC file, the rounds per operation, and optionally which operations, e.g.
//! `signature`; `JALIN_BINARY=path` kills a copy of the binary instead of the checkout's). Prints one line per
//! operation (kills, kills after something was acknowledged, acknowledged, lost) and
//! stops at the first loss.

use jalin_tests::kills::{imports, Consortium, Moments};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let file = PathBuf::from(
        args.next()
            .expect("usage: kills MARC_FILE [KILLS_PER_OPERATION]"),
    );
    let rounds: usize = args.next().map_or(250, |n| n.parse().expect("a count"));
    // Optionally only some operations: "import,sync,harvest,signature" (the default).
    let only = args
        .next()
        .unwrap_or_else(|| "import,sync,harvest,signature".to_string());
    let wanted = |op: &str| only.split(',').any(|o| o == op);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // `JALIN_BINARY`: a copy of the binary to kill, so a long run goes on while the
    // checkout is rebuilt; by default the checkout's debug build, built here.
    let binary = match std::env::var_os("JALIN_BINARY") {
        Some(path) => PathBuf::from(path),
        None => {
            let status = Command::new(env!("CARGO"))
                .args(["build", "--quiet", "-p", "jalin-cli", "--bin", "jalin"])
                .current_dir(&root)
                .status()
                .expect("cargo runs");
            assert!(status.success());
            root.join("target/debug/jalin")
        }
    };
    let mut moments = Moments::new(0x5eed_0019);
    let started = Instant::now();
    let consortium = Consortium::new();
    // Each operation's line as soon as it is done (a long run stopped midway keeps them).
    let done = |t: jalin_tests::kills::Tally| {
        eprintln!("{t:?} after {:.0} s", started.elapsed().as_secs_f64());
        t
    };
    let mut tallies = Vec::new();
    if wanted("import") {
        tallies.push(done(imports(&binary, &file, rounds, &mut moments)));
    }
    if wanted("sync") {
        // 10 records a round: a chunk to take in each sync round.
        tallies.push(done(consortium.syncs(
            &binary,
            &file,
            10,
            rounds,
            &mut moments,
        )));
    }
    if wanted("harvest") {
        tallies.push(done(consortium.harvests(&binary, rounds, &mut moments)));
    }
    if wanted("signature") {
        tallies.push(done(consortium.signatures(&binary, rounds, &mut moments)));
    }
    println!("| operation | kills | after an acknowledgement | acknowledged | lost |");
    println!("|---|---:|---:|---:|---:|");
    for t in &tallies {
        println!(
            "| {} | {} | {} | {} | {} |",
            t.operation, t.kills, t.kills_after_acknowledgement, t.acknowledged, t.lost
        );
    }
    let kills: usize = tallies.iter().map(|t| t.kills).sum();
    let lost: u64 = tallies.iter().map(|t| t.lost).sum();
    println!(
        "{kills} kills, {lost} lost, {:.0} s",
        started.elapsed().as_secs_f64()
    );
}
