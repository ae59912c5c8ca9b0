//! Collection overlap (issue 16): the time to compute it over a union of many libraries,
//! and the peak memory of the process that computes it.
//!
//!     cargo bench -p jalin-tests --bench collection -- MARC_FILE [LIBRARIES PER_LIBRARY]
//!
//! Makes one observer library holding LIBRARIES catalogs of PER_LIBRARY records each
//! (overlapping slices of MARC_FILE: library k takes the records from k * PER_LIBRARY / 2
//! on, so most records are held by two libraries), then runs the overlap in a fresh
//! process over that data dir and reports its time and peak RSS (`VmHWM`), beside the
//! same process's RSS once the library is open (the baseline).

use jalin_node::library::{ImportOptions, Library, Source};
use jalin_tests::fixtures::{new_library, replicate};
use jalin_tests::measure::{records, status_kb};
use std::time::Instant;

fn measure(dir: &std::path::Path) {
    let data = jalin_node::config::DataDir::open(dir).expect("opens");
    let library = Library::open(data).expect("opens");
    let open_rss = status_kb("VmRSS:");
    let start = Instant::now();
    let report = library.collection_overlap().expect("computes");
    let took = start.elapsed();
    println!(
        "  overlap: {:.2} s; {} titles, {} held once, {} libraries",
        took.as_secs_f64(),
        report.titles,
        report.held_once,
        report.members.len()
    );
    println!(
        "  RSS once the library is open (baseline): {} MB; peak RSS of the process: {} MB",
        open_rss / 1024,
        status_kb("VmHWM:") / 1024
    );
    // The union search over the same records, grouped in the index as they arrived:
    // books counted (the same book at several libraries once), and how long a page takes.
    let queries = [
        "history",
        "united states",
        "war",
        "poems",
        "church",
        "education",
    ];
    let mut times = Vec::new();
    for round in 0..11 {
        for q in queries {
            let start = Instant::now();
            let results = library.search(q, 1, 20).expect("searches");
            if round > 0 {
                times.push(start.elapsed());
            }
            if round == 0 && q == "history" {
                println!(
                    "  union search: \"history\" finds {} books ({} records indexed in all)",
                    results.total,
                    library.index().len()
                );
            }
        }
    }
    times.sort();
    let p = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    println!(
        "  union search, {} searches: p50 {:.1} ms, p95 {:.1} ms",
        times.len(),
        p(0.5),
        p(0.95)
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if args.first().map(String::as_str) == Some("measure") {
        measure(std::path::Path::new(&args[1]));
        return;
    }
    let Some(file) = args.first() else {
        eprintln!("usage: collection MARC_FILE [LIBRARIES PER_LIBRARY]");
        std::process::exit(2);
    };
    let libraries: usize = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(50);
    let per: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(5_000);
    let bytes = std::fs::read(file).expect("reads the MARC file");
    let all = records(&bytes);
    let needed = (libraries + 1) * per / 2;
    assert!(
        all.len() >= needed,
        "{} records, {needed} needed",
        all.len()
    );
    let (observer_dir, observer_data) = new_library(5_000);
    let observer = Library::open(observer_data).expect("opens");
    let start = Instant::now();
    let work = tempfile::tempdir().expect("temp dir");
    for k in 0..libraries {
        let from = k * per / 2;
        let slice: Vec<u8> = all[from..from + per].concat();
        let path = work.path().join("slice.mrc");
        std::fs::write(&path, slice).expect("writes");
        if k == 0 {
            observer
                .import(&Source::File(path), &ImportOptions::default(), |_| {})
                .expect("imports");
            continue;
        }
        let (_member_dir, member_data) = new_library(5_000);
        let member = Library::open(member_data).expect("opens");
        member
            .import(&Source::File(path), &ImportOptions::default(), |_| {})
            .expect("imports");
        replicate(&member, &observer);
    }
    drop(observer);
    println!(
        "{libraries} libraries x {per} records (made in {:.0} s):",
        start.elapsed().as_secs_f64()
    );
    let status = std::process::Command::new(std::env::current_exe().expect("this program"))
        .arg("measure")
        .arg(observer_dir.path())
        .status()
        .expect("runs the measurement");
    assert!(status.success());
}
