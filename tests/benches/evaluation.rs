//! The periodic evaluation (issue 17): the time and the peak memory of a library's figures
//! for a period and of the partnership's report, at a library holding every member's
//! catalog and party to every loan.
//!
//!     cargo bench -p jalin-tests --bench evaluation -- MARC_FILE [LIBRARIES PER_LIBRARY LOANS]
//!
//! Makes LIBRARIES libraries of PER_LIBRARY records each (overlapping slices of
//! MARC_FILE), one consortium whose agreement has loans and a six-month evaluation
//! period, every catalog replicated to the first library, and LOANS loans it borrows
//! from the others (asked, supplied, shipped, received, returned, checked in; the clock a
//! day on every 100). Then, in a fresh process over that data dir: the library's own
//! figures for the period (counted and signed) and the report, with the process's RSS
//! once the library is open (the baseline) and its peak (`VmHWM`).

use jalin_node::clock::{Clock, ManualClock};
use jalin_node::ill_requests::{execute, IllRequest, SimpleStep};
use jalin_node::library::{ImportOptions, Library, Source};
use jalin_tests::fixtures::{agree, form_consortium, new_library, replicate, T};
use jalin_tests::measure::{records, status_kb};
use std::sync::Arc;
use std::time::Instant;

const DAY_MS: u64 = 86_400_000;

fn ill(library: &Library, request: IllRequest) -> String {
    match execute(library, request) {
        Ok(answer) => answer
            .loans
            .first()
            .map(|l| l.id.clone())
            .unwrap_or_default(),
        Err(error) => panic!("{error}"),
    }
}

/// Passes every loan message queued between `a` and `b` until none is left.
fn exchange(a: &Library, b: &Library, now: u64) {
    loop {
        let mut moved = false;
        for (from, to) in [(a, b), (b, a)] {
            let waiting = from.loans().outbox(&to.id()).expect("outbox");
            if waiting.is_empty() {
                continue;
            }
            moved = true;
            let ids: Vec<_> = waiting.iter().map(|(id, _)| *id).collect();
            let bytes: Vec<Vec<u8>> = waiting.into_iter().map(|(_, b)| b).collect();
            for result in to.loans().take_in(to.consortia(), &from.id(), &bytes, now) {
                result.expect("a genuine message is taken");
            }
            from.loans().delivered(&to.id(), &ids).expect("delivered");
        }
        if !moved {
            return;
        }
    }
}

fn measure(dir: &std::path::Path) {
    let clock = Arc::new(ManualClock::at(T + 200 * DAY_MS));
    let data = jalin_node::config::DataDir::open(dir).expect("opens");
    let library = Library::open_with_clock(data, clock).expect("opens");
    let open_rss = status_kb("VmRSS:");
    let id = library.consortia().list()[0].id;
    let (number, period) = jalin_node::evaluation::select(&library, &id, None).expect("a period");
    // The part of the figures that reads the whole union: the collection overlap.
    let start = Instant::now();
    let overlap = library.collection_overlap().expect("computes");
    let overlapped = start.elapsed();
    let overlap_peak = status_kb("VmHWM:");
    drop(overlap);
    let start = Instant::now();
    let figures =
        jalin_node::evaluation::publish_figures(&library, &id, period, Default::default())
            .expect("counts");
    let counted = start.elapsed();
    let start = Instant::now();
    let report = jalin_node::evaluation::report(&library, &id, period).expect("reports");
    let reported = start.elapsed();
    let start = Instant::now();
    let html = {
        let answer = jalin_node::evaluation::execute(
            &library,
            jalin_node::evaluation::EvaluationRequest::Report {
                consortium: None,
                period: Some(number.to_string()),
            },
        )
        .expect("answers");
        jalin_node::web::evaluation::printable(&answer, "id", "bench", 0)
    };
    let printed = start.elapsed();
    let f = &figures.body;
    println!(
        "  period {number}: {} records, {} titles ({} unique), {} loan requests made, {} borrowed",
        f.records, f.titles, f.unique_titles, f.requests_made, f.borrowed
    );
    println!(
        "  the collection overlap alone (unique titles): {:.2} s, peak RSS by then {} MB",
        overlapped.as_secs_f64(),
        overlap_peak / 1024
    );
    println!(
        "  this library's figures (counted and signed): {:.2} s",
        counted.as_secs_f64()
    );
    println!(
        "  the report ({} members, {} reporting): {:.1} ms; with the printable page ({} KB): {:.1} ms",
        report.members.len(),
        report.totals.reporting,
        reported.as_secs_f64() * 1e3,
        html.len() / 1024,
        printed.as_secs_f64() * 1e3
    );
    println!(
        "  RSS once the library is open (baseline): {} MB; peak RSS of the process: {} MB",
        open_rss / 1024,
        status_kb("VmHWM:") / 1024
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
        eprintln!("usage: evaluation MARC_FILE [LIBRARIES PER_LIBRARY LOANS]");
        std::process::exit(2);
    };
    let count: usize = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(10);
    let per: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(25_000);
    let loans: usize = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let bytes = std::fs::read(file).expect("reads the MARC file");
    let all = records(&bytes);
    let needed = (count + 1) * per / 2;
    assert!(
        all.len() >= needed,
        "{} records, {needed} needed",
        all.len()
    );
    let clock = Arc::new(ManualClock::at(T));
    let start = Instant::now();
    let work = tempfile::tempdir().expect("temp dir");
    let mut libraries = Vec::new();
    let mut dirs = Vec::new();
    for k in 0..count {
        let (dir, mut data) = new_library(5_000);
        data.config.library.code = format!("PERPUS{k}");
        data.config.library.name = format!("Perpustakaan {k}");
        let library = Arc::new(
            Library::open_with_clock(data, clock.clone() as Arc<dyn Clock>).expect("opens"),
        );
        let from = k * per / 2;
        let path = work.path().join("slice.mrc");
        std::fs::write(&path, all[from..from + per].concat()).expect("writes");
        library
            .import(&Source::File(path), &ImportOptions::default(), |_| {})
            .expect("imports");
        libraries.push(library);
        dirs.push(dir);
    }
    let refs: Vec<&Library> = libraries.iter().map(|l| l.as_ref()).collect();
    form_consortium("Jaringan Evaluasi", &refs);
    agree(
        &refs,
        "interlibrary_loan = true\nloan_period_days = 28\nanswer_within_days = 3\n\
         max_open_loans = 100000\nevaluation_period_months = 6",
    );
    for member in &refs[1..] {
        replicate(member, refs[0]);
    }
    println!(
        "{count} libraries x {per} records, catalogs replicated: {:.0} s",
        start.elapsed().as_secs_f64()
    );
    // Loans: the first library borrows from each other in turn, a record of the lender's.
    let start = Instant::now();
    let observer = refs[0];
    for n in 0..loans {
        if n % 100 == 99 {
            clock.advance(DAY_MS);
        }
        let k = 1 + n % (count - 1);
        let lender = refs[k];
        let from = k * per / 2;
        let marc = jalin_protocol::marc::iso2709::Reader::new(all[from + n % per])
            .next()
            .expect("a record")
            .expect("reads")
            .record;
        let record = jalin_protocol::record::Record::from_marc(marc)
            .id()
            .to_string();
        let now = clock.now_ms();
        let id = ill(
            observer,
            IllRequest::Request {
                record: format!("PERPUS{k}:{record}"),
                patron: None,
                need_before: None,
                note: String::new(),
                lenders: vec![format!("PERPUS{k}")],
                items: 1,
            },
        );
        exchange(observer, lender, now);
        ill(
            lender,
            IllRequest::Answer {
                id: id.clone(),
                will_supply: true,
                unfilled: None,
                conditions: None,
            },
        );
        for (who, step) in [
            (lender, SimpleStep::Ship),
            (observer, SimpleStep::Receive),
            (observer, SimpleStep::Return),
            (lender, SimpleStep::Checkin),
        ] {
            ill(
                who,
                IllRequest::Step {
                    id: id.clone(),
                    step,
                },
            );
            exchange(observer, lender, now);
        }
    }
    println!(
        "{loans} loans made in {:.0} s",
        start.elapsed().as_secs_f64()
    );
    let observer_dir = dirs.remove(0);
    drop(refs);
    drop(libraries);
    let status = std::process::Command::new(std::env::current_exe().expect("this program"))
        .arg("measure")
        .arg(observer_dir.path())
        .status()
        .expect("runs the measurement");
    assert!(status.success());
}
