//! The village library offline (issue 18): a node away for weeks catches up with bytes
//! in proportion to what changed, and a wrong clock is told from the members' times while
//! invites tolerate a day between two clocks.

use crate::network::{eventually, start, Node};
use crate::shared_data_or_skip;
use jalin_node::clock::ManualClock;
use jalin_node::consortium_requests::{execute, Request};
use jalin_node::library::{ImportOptions, Library, Source};
use jalin_protocol::consortium::log::Role;
use jalin_protocol::marc::iso2709;
use jalin_tests::fixtures::{form_consortium, new_library, noted, T};
use std::sync::Arc;

const DAY_MS: u64 = 86_400_000;
const HOUR_MS: u64 = 3_600_000;

/// Libraries with these codes, each on its own clock, in one consortium made by text.
fn members(codes: &[&str], clocks: &[Arc<ManualClock>]) -> Vec<(Arc<Library>, tempfile::TempDir)> {
    let mut out = Vec::new();
    for (code, clock) in codes.iter().zip(clocks) {
        let (dir, mut data) = new_library(1000);
        data.config.library.code = (*code).into();
        data.config.library.name = format!("Perpustakaan {code}");
        data.config.network.mdns = false;
        let library = Library::open_with_clock(data, clock.clone()).expect("opens");
        out.push((Arc::new(library), dir));
    }
    let libraries: Vec<&Library> = out.iter().map(|(l, _)| l.as_ref()).collect();
    form_consortium("Jaringan Desa", &libraries);
    out
}

async fn connect(from: &Node, to: &Node) {
    from.net.dial(to.address().await).await.expect("dials");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_three_days_off_is_told_from_the_members_times() {
    let now = jalin_node::server::now_ms();
    let clocks = [
        Arc::new(ManualClock::at(now)),
        Arc::new(ManualClock::at(now + 3 * DAY_MS)),
        Arc::new(ManualClock::at(now)),
    ];
    let mut libraries = members(&["PERPUSDESA", "SMPN1", "PERPUSDA"], &clocks).into_iter();
    let (a, a_dir) = libraries.next().expect("A");
    let (b, b_dir) = libraries.next().expect("B");
    let (c, c_dir) = libraries.next().expect("C");
    let (a, b, c) = (
        start(a, a_dir).await,
        start(b, b_dir).await,
        start(c, c_dir).await,
    );
    connect(&b, &a).await;
    connect(&b, &c).await;
    connect(&c, &a).await;
    eventually("every node read the others' times", 30, || {
        [&a, &b, &c]
            .iter()
            .all(|n| n.library.clock_report().peers.len() == 2)
    })
    .await;
    // B, the one whose clock is wrong, is told so: both others agree.
    let at_b = b.library.clock_report();
    let off = at_b.this_node_off_ms.expect("B's clock is off");
    assert!(
        (off - 3 * DAY_MS as i64).abs() < 60_000,
        "3 days ahead, within a minute: {off}"
    );
    let warning = at_b.warning().expect("a warning");
    assert!(warning.contains("3 days ahead"), "{warning}");
    // A and C see one member that differs and cannot tell whose clock is wrong alone:
    // they name B; they are not told their own clock is off.
    for node in [&a, &c] {
        let report = node.library.clock_report();
        assert_eq!(report.this_node_off_ms, None);
        assert_eq!(report.differing.len(), 1);
        assert!(report.differing[0]
            .name
            .as_deref()
            .is_some_and(|n| n.contains("SMPN1")));
    }
    // Set right, B is told nothing once it reads the others again.
    clocks[1].set(jalin_node::server::now_ms());
    b.net.catch_up().await.expect("catches up");
    eventually("B's clock no longer off", 30, || {
        b.library.clock_report().warning().is_none()
    })
    .await;
    for node in [a, b, c] {
        node.stop().await;
    }
}

#[test]
fn an_invite_tolerates_a_day_between_the_two_clocks_and_says_so() {
    let clocks = [Arc::new(ManualClock::at(T))];
    let mut founders = members(&["PERPUSDESA"], &clocks);
    let (a, _a_dir) = founders.pop().expect("A");
    let id = a.consortia().list()[0].id;
    let joiner = |clock_ms: u64, code: &str| {
        let (dir, mut data) = new_library(100);
        data.config.library.code = code.into();
        data.config.library.name = format!("Perpustakaan {code}");
        let library =
            Library::open_with_clock(data, Arc::new(ManualClock::at(clock_ms))).expect("opens");
        (library, dir)
    };
    // An invite valid 12 hours by the inviter's clock.
    let ticket = a
        .consortia()
        .invite(&id, Role::Member, T + 12 * HOUR_MS, "", Vec::new(), T)
        .expect("invites")
        .to_text();
    // A joiner whose clock is 20 hours ahead: expired by its clock 8 hours ago, within a
    // day: it joins, and is told why.
    let (late, _late_dir) = joiner(T + 20 * HOUR_MS, "SMPN1");
    let answer = execute(
        late.consortia(),
        Request::Join {
            ticket: ticket.clone(),
        },
        T + 20 * HOUR_MS,
        Vec::new(),
    )
    .expect("joins within a day's difference");
    assert!(
        answer.message.contains("expired 8 hours ago"),
        "{}",
        answer.message
    );
    a.consortia()
        .accept(&answer.text.expect("an acceptance"), T + HOUR_MS)
        .expect("the inviter admits it by its own clock");
    // Two days ahead: refused.
    let (far, _far_dir) = joiner(T + 2 * DAY_MS, "SDN2");
    let error = far
        .consortia()
        .join(&ticket, Vec::new(), T + 2 * DAY_MS)
        .expect_err("expired");
    assert!(error.to_string().contains("expired"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_away_sixty_days_catches_up_with_bytes_in_proportion_to_the_changes() {
    let data = shared_data_or_skip!();
    let clocks = [Arc::new(ManualClock::at(T)), Arc::new(ManualClock::at(T))];
    let mut libraries = members(&["PERPUSDA", "PERPUSDESA"], &clocks).into_iter();
    let (a, a_dir) = libraries.next().expect("A");
    let (b, b_dir) = libraries.next().expect("B");
    let file = data.join("marc/loc/loc-indonesia-3147.mrc");
    let importer = a.clone();
    tokio::task::spawn_blocking(move || {
        importer
            .import(&Source::File(file), &ImportOptions::default(), |_| {})
            .expect("imports")
    })
    .await
    .expect("import task");
    let (a, b) = (start(a, a_dir).await, start(b, b_dir).await);
    connect(&b, &a).await;
    let a_id = a.library.id();
    let target = a.digest(&a_id);
    eventually("B holds A's catalog", 60, || b.digest(&a_id) == target).await;
    let catalog_bytes = a.library.store().catalog_bytes(&a_id).expect("sizes");
    let b_dir = b.stop_keeping_dir().await;

    // Sixty days away: A edits every record three times and some a fourth (10,000 edits).
    let records: Vec<_> = a
        .library
        .store()
        .records_of(&a_id)
        .map(|r| r.expect("reads").record_id)
        .collect();
    let mut edits = 0;
    for round in 0..4 {
        let take = (10_000 - edits).min(records.len());
        let mut changed = Vec::new();
        for id in &records[..take] {
            let marc = noted(
                &a.library,
                id,
                &format!("Catatan minggu ke-{}", round * 2 + 1),
            );
            changed.extend(iso2709::write_record(&marc).expect("writes"));
        }
        let library = a.library.clone();
        tokio::task::spawn_blocking(move || {
            library
                .import(&Source::Bytes(changed), &ImportOptions::default(), |_| {})
                .expect("imports")
        })
        .await
        .expect("edit task");
        edits += take;
        clocks[0].advance(15 * DAY_MS);
    }
    assert_eq!(edits, 10_000);
    clocks[1].advance(60 * DAY_MS);
    let target = a.digest(&a_id);

    // B comes back: what it lacks, as the sync protocol's answers would carry it.
    let data = jalin_node::config::DataDir::open(b_dir.path()).expect("opens");
    let b = Arc::new(Library::open_with_clock(data, clocks[1].clone()).expect("reopens"));
    let lacking = jalin_tests::measure::changes_bytes(&a.library, &b);
    let b = start(b, b_dir).await;
    connect(&b, &a).await;
    eventually("B caught up after 60 days", 120, || {
        b.digest(&a_id) == target
    })
    .await;
    let received = b.net.traffic.counts().bytes_received;
    assert!(
        received as f64 <= lacking as f64 * 1.1 + 20_000.0,
        "received {received} bytes for {lacking} bytes of changes"
    );
    // Not the catalog again: what B held before (its 3,147 records' first versions,
    // `catalog_bytes`) is more than the 10% slack above.
    assert!(
        lacking / 10 + 20_000 < catalog_bytes,
        "{lacking} {catalog_bytes}"
    );
    // The index follows the store: one catch-up at a time, after the last answer.
    eventually("the last edits are searchable at B", 60, || {
        b.library
            .search("minggu ke-7", 1, 5)
            .expect("searches")
            .total
            > 0
    })
    .await;
    println!(
        "60 days away, 10000 edits: {lacking} bytes of changes, {received} received, catalog {catalog_bytes}"
    );
    a.stop().await;
    b.stop().await;
}
