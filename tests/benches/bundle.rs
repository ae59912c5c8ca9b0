//! Sync by flash disk (issue 18): a bundle's size and time for a 100,000-record bootstrap
//! and for 1, 100 and 10,000 changed records, beside the sync protocol's bytes for the
//! same changes and the owner's stored bytes of the catalog.
//!
//!     cargo bench -p jalin-tests --bench bundle -- MARC_FILE [RECORDS]
//!
//! A imports the first RECORDS (100,000) records of MARC_FILE; B, a member that never
//! connects, takes A's first bundle (the bootstrap), answers with its own (A learns what
//! B holds), then A changes 1, 100 and 10,000 records (a note added) and makes a bundle
//! for each round. "network" is the postcard bytes of the `Changes` answers the sync
//! protocol would send for the same shards (one answer per shard; the few hundred bytes of
//! `Hello`, `Summary` and `Group` are not counted).

use jalin_node::library::{ImportOptions, Library, Source};
use jalin_protocol::marc::iso2709;
use jalin_tests::fixtures::{form_consortium, new_library, noted};
use jalin_tests::measure::{changes_bytes, records};
use std::time::Instant;

/// One bundle from `from` to `to`: made, measured, taken in. Returns (file bytes, make s,
/// take s, changes).
fn carry(from: &Library, to: &Library) -> (u64, f64, f64, usize) {
    let start = Instant::now();
    let (report, bytes) = jalin_node::bundle::export(from, &to.id(), Vec::new()).expect("makes");
    let made = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let taken = jalin_node::bundle::import(to, || Ok(&bytes[..])).expect("takes");
    let took = start.elapsed().as_secs_f64();
    assert_eq!(taken.new_changes(), report.changes());
    (bytes.len() as u64, made, took, report.changes())
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let file = args.next().expect("usage: bundle MARC_FILE [RECORDS]");
    let wanted: usize = args.next().map_or(100_000, |n| n.parse().expect("a count"));
    let bytes = std::fs::read(&file).expect("reads the MARC file");
    let all = records(&bytes);
    assert!(all.len() >= wanted, "{} records in the file", all.len());
    let chosen: Vec<u8> = all[..wanted].concat();
    let marc_bytes = chosen.len() as u64;

    let (_a_dir, a_data) = new_library(5000);
    let (_b_dir, b_data) = new_library(5000);
    let a = Library::open(a_data).expect("opens");
    let b = Library::open(b_data).expect("opens");
    form_consortium("Jaringan Bangku", &[&a, &b]);
    let start = Instant::now();
    a.import(&Source::Bytes(chosen), &ImportOptions::default(), |_| {})
        .expect("imports");
    eprintln!(
        "imported {wanted} in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let stored = a.store().catalog_bytes(&a.id()).expect("sizes");
    let disk = a.store().size_on_disk();

    let network = changes_bytes(&a, &b);
    let (file_bytes, made, took, changes) = carry(&a, &b);
    println!(
        "bootstrap: {{\"records\": {wanted}, \"changes\": {changes}, \"bundle_bytes\": {file_bytes}, \
         \"network_bytes\": {network}, \"stored_bytes\": {stored}, \"marc_bytes\": {marc_bytes}, \"store_on_disk_bytes\": {disk}, \
         \"bundle_per_record\": {:.0}, \"network_per_record\": {:.0}, \"stored_per_record\": {:.0}, \
         \"bundle_vs_stored\": {:.2}, \"network_vs_stored\": {:.2}, \"make_s\": {made:.2}, \"take_s\": {took:.2}}}",
        file_bytes as f64 / wanted as f64,
        network as f64 / wanted as f64,
        stored as f64 / wanted as f64,
        file_bytes as f64 / stored as f64,
        network as f64 / stored as f64,
    );
    // B answers: A learns what B holds.
    carry(&b, &a);

    let ids: Vec<String> = a
        .store()
        .records_of(&a.id())
        .map(|r| r.expect("reads").record_id)
        .collect();
    for (round, count) in [1usize, 100, 10_000].into_iter().enumerate() {
        let count = count.min(ids.len());
        let mut changed = Vec::new();
        for id in &ids[..count] {
            let marc = noted(&a, id, &format!("Catatan putaran {round}"));
            changed.extend(iso2709::write_record(&marc).expect("writes"));
        }
        let start = Instant::now();
        a.import(&Source::Bytes(changed), &ImportOptions::default(), |_| {})
            .expect("imports");
        let edited = start.elapsed().as_secs_f64();
        let network = changes_bytes(&a, &b);
        let (file_bytes, made, took, changes) = carry(&a, &b);
        carry(&b, &a);
        println!(
            "changed: {{\"records\": {count}, \"changes\": {changes}, \"bundle_bytes\": {file_bytes}, \
             \"network_bytes\": {network}, \"make_s\": {made:.2}, \"take_s\": {took:.2}, \
             \"edit_s\": {edited:.2}}}"
        );
    }
}
