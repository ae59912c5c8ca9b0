//! Sync by flash disk: two libraries that never connect converge through bundles alone; a
//! bundle altered, cut short, replayed, for another library or from a removed member
//! changes nothing; a third member carries a catalog between two others.

use crate::shared_data_or_skip;
use jalin_node::bundle::{self, BundleFailure, BundleReport};
use jalin_node::clock::ManualClock;
use jalin_node::ill_requests::{execute, IllRequest};
use jalin_node::library::{ImportOptions, Library, Source};
use jalin_protocol::signing::LibraryId;
use jalin_tests::fixtures::{form_consortium, new_library, T};
use jalin_tests::measure::every_byte;
use std::sync::Arc;

/// Libraries on one clock, with these codes, in one consortium made by text.
fn libraries(codes: &[&str], clock: &Arc<ManualClock>) -> Vec<(Library, tempfile::TempDir)> {
    let mut out = Vec::new();
    for code in codes {
        let (dir, mut data) = new_library(500);
        data.config.library.code = (*code).into();
        data.config.library.name = format!("Perpustakaan {code}");
        out.push((
            Library::open_with_clock(data, clock.clone()).expect("opens"),
            dir,
        ));
    }
    let members: Vec<&Library> = out.iter().map(|(l, _)| l).collect();
    form_consortium("Jaringan Desa", &members);
    out
}

/// A bundle `from` makes for `to`.
fn make(from: &Library, to: &Library) -> (BundleReport, Vec<u8>) {
    bundle::export(from, &to.id(), Vec::new()).expect("makes a bundle")
}

/// `to` takes in `bytes`.
fn take(to: &Library, bytes: &[u8]) -> Result<BundleReport, BundleFailure> {
    bundle::import(to, || Ok(bytes))
}

fn digest(library: &Library, of: &LibraryId) -> Option<[u8; 32]> {
    library.store().namespace_digest(of).ok()
}

fn records_of(library: &Library, of: &LibraryId) -> usize {
    library.store().records_of(of).count()
}

/// A book of this library with `isbn`, `title` and a note, written as the librarian would.
fn put_book(library: &Library, id: &str, title: &str, note: &str) -> String {
    use jalin_protocol::marc::{DataField, Leader, MarcRecord};
    let mut marc = MarcRecord::new(Leader::new_book());
    marc.push_control("001", id);
    marc.push_data(DataField::new("020", ' ', ' ', &[('a', "9789793062792")]));
    marc.push_data(DataField::new("100", '1', ' ', &[('a', "Hirata, Andrea")]));
    marc.push_data(DataField::new("245", '1', '0', &[('a', title)]));
    marc.push_data(DataField::new("500", ' ', ' ', &[('a', note)]));
    library.put(marc).expect("writes")
}

fn note_of(library: &Library, owner: &LibraryId, id: &str) -> String {
    let (_, record, _) = library
        .record_view(&owner.to_hex(), id)
        .expect("reads")
        .expect("held");
    let marc = record.expect("a record").marc;
    marc.data_fields("500")
        .filter_map(|f| f.first('a'))
        .collect::<Vec<_>>()
        .join("|")
}

#[test]
fn two_libraries_that_never_connect_converge_through_bundles_alone() {
    let data = shared_data_or_skip!();
    let clock = Arc::new(ManualClock::at(T));
    let mut members = libraries(&["PERPUSDESA", "SMPN1"], &clock);
    let (b, _b_dir) = members.pop().expect("B");
    let (a, _a_dir) = members.pop().expect("A");
    // The village library (A) holds the LC sample; both hold "Laskar pelangi".
    a.import(
        &Source::File(data.join("marc/loc/loc-indonesia-3147.mrc")),
        &ImportOptions::default(),
        |_| {},
    )
    .expect("imports");
    let a_book = put_book(&a, "LP-A", "Laskar pelangi", "eksemplar desa");
    let b_book = put_book(&b, "LP-B", "Laskar pelangi", "eksemplar sekolah");
    // An agreement drafted at A after the consortium was formed: only A holds it.
    let id = a.consortia().list()[0].id;
    let file = "+++\ntitle = \"Perjanjian Pinjam\"\ninterlibrary_loan = true\nloan_period_days = 14\nitems_per_request = 2\nanswer_within_days = 3\n+++\nPara pihak saling meminjamkan.\n";
    let agreement = a.consortia().draft(&id, file, T + 1_000).expect("drafts");
    a.consortia()
        .sign(&id, &agreement, None, T + 2_000)
        .expect("A signs");

    // 1. A -> B: everything B lacks, its first bundle from A (a bootstrap).
    let (made, bytes) = make(&a, &b);
    assert_eq!(made.number, 1);
    assert_eq!(made.changes(), made.catalogs[0].changes);
    assert_eq!(made.catalogs.len(), 1, "A's own catalog only: B's is B's");
    // Read first: what it holds, nothing applied.
    let before = every_byte(&b);
    let preview = bundle::preview(&b, &bytes[..]).expect("reads");
    assert_eq!(preview.changes(), made.changes());
    assert_eq!(preview.documents[0].documents, made.documents[0].documents);
    assert!(!preview.applied);
    assert_eq!(every_byte(&b), before, "a preview writes nothing");
    let taken = take(&b, &bytes).expect("B takes A's bundle");
    assert_eq!(taken.new_changes(), made.changes());
    assert!(
        taken.new_documents() >= 2,
        "the agreement and A's signature"
    );
    assert_eq!(digest(&b, &a.id()), digest(&a, &a.id()));
    assert_eq!(records_of(&b, &a.id()), 3148);
    assert!(b.search("indonesia", 1, 10).expect("searches").total > 1000);

    // 2. B -> A: B signs the agreement, asks A for a loan; its bundle carries B's catalog
    // and documents, not A's catalog back (A acknowledged holding it).
    b.consortia()
        .sign(&id, &agreement, None, T + 3_000)
        .expect("B signs");
    assert!(b.consortia().terms_in_force(&id).expect("reads").is_some());
    let asked = execute(
        &b,
        IllRequest::Request {
            record: format!("PERPUSDESA:{a_book}"),
            patron: None,
            need_before: None,
            note: String::new(),
            lenders: Vec::new(),
            items: 1,
        },
    )
    .expect("B asks A for a loan");
    assert!(!b.loans().outbox(&a.id()).expect("reads").is_empty());
    let (made, bytes) = make(&b, &a);
    assert!(made.catalogs.iter().all(|c| c.library != a.id().to_hex()));
    assert_eq!(made.ill_messages, 1);
    let taken = take(&a, &bytes).expect("A takes B's bundle");
    assert_eq!(taken.ill_taken, 1);
    assert_eq!(digest(&a, &b.id()), digest(&b, &b.id()));
    assert!(a.consortia().terms_in_force(&id).expect("reads").is_some());
    let lender_side = execute(
        &a,
        IllRequest::List {
            incoming: true,
            outgoing: false,
            state: None,
        },
    )
    .expect("lists");
    assert_eq!(lender_side.loans.len(), 1, "A holds B's request");

    // Apart again, each edits its own copy of the book.
    put_book(&a, "LP-A", "Laskar pelangi", "eksemplar desa, sampul baru");
    put_book(
        &b,
        "LP-B",
        "Laskar pelangi",
        "eksemplar sekolah, rusak ringan",
    );

    // 3. A -> B and B -> A: each carries only its edit (and A's receipt of the request).
    let (made, bytes) = make(&a, &b);
    assert_eq!(made.number, 2);
    assert_eq!(made.catalogs.len(), 1);
    assert!(
        made.changes() <= 2,
        "one edit, not the catalog again: {}",
        made.changes()
    );
    assert!(made.ill_messages >= 1, "A's receipt of B's request");
    take(&b, &bytes).expect("B takes A's second bundle");
    assert!(
        b.loans().outbox(&a.id()).expect("reads").is_empty(),
        "A's acknowledgement took B's request out of B's outbox"
    );
    let (made, bytes) = make(&b, &a);
    assert!(made.changes() <= 2, "{}", made.changes());
    take(&a, &bytes).expect("A takes B's second bundle");

    for library in [&a, &b] {
        for owner in [&a, &b] {
            assert_eq!(digest(library, &owner.id()), digest(owner, &owner.id()));
        }
        assert_eq!(
            note_of(library, &a.id(), &a_book),
            "eksemplar desa, sampul baru"
        );
        assert_eq!(
            note_of(library, &b.id(), &b_book),
            "eksemplar sekolah, rusak ringan"
        );
        // The union catalog groups both copies as one book.
        let found = library.search("laskar pelangi", 1, 10).expect("searches");
        assert_eq!(found.total, 1);
        assert_eq!(found.hits[0].holdings.len(), 2);
    }
    let borrower = execute(
        &b,
        IllRequest::Show {
            id: asked.loans[0].id.clone(),
        },
    )
    .expect("shows");
    assert_eq!(borrower.loans[0].state, lender_side.loans[0].state);
    assert_eq!(
        a.consortia().export(&id).expect("exports").lines().count(),
        b.consortia().export(&id).expect("exports").lines().count()
    );
}

#[test]
fn a_bundle_altered_cut_replayed_misaddressed_or_from_a_removed_member_changes_nothing() {
    let clock = Arc::new(ManualClock::at(T));
    let members = libraries(&["PERPUSDESA", "SMPN1", "TBMCAHAYA"], &clock);
    let (a, b, c) = (&members[0].0, &members[1].0, &members[2].0);
    for i in 0..40 {
        put_book(a, &format!("A{i}"), &format!("Buku desa nomor {i}"), "desa");
        put_book(c, &format!("C{i}"), &format!("Buku taman baca {i}"), "tbm");
    }
    let (_, bytes) = make(a, b);
    let untouched = every_byte(b);
    let refused = |bytes: &[u8], code: &str| {
        let error = take(b, bytes).expect_err("refused");
        assert_eq!(error.code(), code, "{error}");
        assert!(!error.to_string().is_empty());
        assert_eq!(every_byte(b), untouched, "{code}: nothing applied");
        assert_eq!(records_of(b, &a.id()), 0);
        error
    };
    // One byte altered anywhere: damaged compression or a signature that fails.
    for at in [
        0,
        9,
        bytes.len() / 3,
        bytes.len() / 2,
        bytes.len() - 20,
        bytes.len() - 1,
    ] {
        let mut altered = bytes.clone();
        altered[at] ^= 0x20;
        let error = take(b, &altered).expect_err("an altered bundle is refused");
        assert!(
            ["bundle_damaged", "bundle_altered", "bundle_truncated"].contains(&error.code()),
            "byte {at}: {error}"
        );
        assert_eq!(every_byte(b), untouched, "byte {at}: nothing applied");
    }
    // Cut short, anywhere.
    for at in [0, 5, bytes.len() / 2, bytes.len() - 1] {
        let error = take(b, &bytes[..at]).expect_err("a cut bundle is refused");
        assert!(
            ["bundle_damaged", "bundle_truncated"].contains(&error.code()),
            "cut at {at}: {error}"
        );
        assert_eq!(every_byte(b), untouched, "cut at {at}: nothing applied");
    }
    refused(b"not a bundle at all", "bundle_damaged");
    // Taken to the wrong library, or back to its maker.
    let error = take(c, &bytes).expect_err("not C's");
    assert_eq!(error.code(), "bundle_not_for_us");
    assert!(error.to_string().contains("SMPN1"), "{error}");
    assert_eq!(take(a, &bytes).expect_err("A's own").code(), "bundle_own");

    // Taken once; the same file again, or an older one of A's, changes nothing.
    let (_, older) = make(a, b);
    let (_, newer) = make(a, b);
    take(b, &newer).expect("takes");
    assert_eq!(records_of(b, &a.id()), 40);
    let untouched = every_byte(b);
    for again in [&newer, &older, &bytes] {
        let error = take(b, again).expect_err("a replay is refused");
        assert_eq!(error.code(), "bundle_replayed", "{error}");
        assert_eq!(every_byte(b), untouched);
    }

    // A removes C; A's next bundle tells B. C's bundles, made before or after the
    // removal, then bring nothing to B.
    let (_, from_c_before) = make(c, b);
    let id = a.consortia().list()[0].id;
    a.consortia()
        .remove(&id, c.id(), "tidak aktif", T + 10_000)
        .expect("removes");
    let (_, removal) = make(a, b);
    take(b, &removal).expect("takes the removal");
    assert!(!b.consortia().trust().is_co_member(&c.id()));
    put_book(c, "C-late", "Buku setelah dikeluarkan", "tbm");
    let (_, from_c_after) = make(c, b);
    let untouched = every_byte(b);
    for bytes in [&from_c_before, &from_c_after] {
        let error = take(b, bytes).expect_err("a removed member's bundle is refused");
        assert_eq!(error.code(), "bundle_not_a_member", "{error}");
        assert_eq!(every_byte(b), untouched);
    }
    assert_eq!(records_of(b, &c.id()), 0);
    // And A makes none for C any more.
    assert_eq!(
        bundle::export(a, &c.id(), Vec::new())
            .expect_err("no bundle for a removed member")
            .code(),
        "bundle_not_a_member"
    );
}

#[test]
fn a_third_member_carries_a_catalog_between_two_others() {
    let clock = Arc::new(ManualClock::at(T));
    let members = libraries(&["PERPUSDESA", "SMPN1", "PERPUSDA"], &clock);
    let (village, school, district) = (&members[0].0, &members[1].0, &members[2].0);
    for i in 0..25 {
        put_book(
            village,
            &format!("V{i}"),
            &format!("Cerita rakyat {i}"),
            "desa",
        );
    }
    // The village hands its bundle to the school; the school's next bundle for the
    // district carries the village's catalog on.
    let (_, bytes) = make(village, school);
    take(school, &bytes).expect("the school takes the village's bundle");
    let (made, bytes) = make(school, district);
    let carried = made
        .catalogs
        .iter()
        .find(|c| c.library == village.id().to_hex())
        .expect("the village's catalog is in the school's bundle");
    assert_eq!(
        carried.name.as_deref(),
        Some("Perpustakaan PERPUSDESA (PERPUSDESA)")
    );
    let taken = take(district, &bytes).expect("the district takes the school's bundle");
    assert_eq!(taken.new_changes(), made.changes());
    assert_eq!(
        digest(district, &village.id()),
        digest(village, &village.id())
    );
    let found = district.search("cerita rakyat", 1, 50).expect("searches");
    assert_eq!(found.total, 25);
    assert!(found.hits[0]
        .holdings
        .iter()
        .all(|h| h.library == village.id().to_hex()));
    // The district's bundle back to the school acknowledges the village's catalog: the
    // school's next one does not carry it again.
    let (_, bytes) = make(district, school);
    take(school, &bytes).expect("takes");
    let (made, _) = make(school, district);
    assert_eq!(made.changes(), 0, "{:?}", made.catalogs);
}

#[test]
fn the_cli_carries_bundles_both_ways_through_a_running_node_and_offline() {
    use crate::cli::{jalin, node};
    let clock = Arc::new(ManualClock::at(T));
    let (village_dir, school_dir) = {
        let members = libraries(&["PERPUSDESA", "SMPN1"], &clock);
        for i in 0..30 {
            put_book(
                &members[0].0,
                &format!("V{i}"),
                &format!("Kisah desa {i}"),
                "desa",
            );
        }
        put_book(&members[1].0, "S1", "Buku sekolah", "sekolah");
        let mut members = members.into_iter();
        let (village, village_dir) = members.next().expect("village");
        let (school, school_dir) = members.next().expect("school");
        drop((village, school));
        (village_dir, school_dir)
    };
    let disk = tempfile::tempdir().expect("a flash disk");
    let to_school = disk.path().join("untuk-sekolah.jalin");
    // The village, offline: no node runs there.
    let (code, stdout, stderr) = jalin(
        village_dir.path(),
        &[
            "bundle",
            "export",
            "--for",
            "SMPN1",
            "--out",
            to_school.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("30 change(s)"), "{stdout}");
    assert!(!disk.path().join("untuk-sekolah.partial").exists());

    // The school's node runs: the CLI goes through its API.
    let (running, _, _) = node(school_dir.path());
    let path = to_school.to_str().expect("utf-8");
    let (code, stdout, stderr) = jalin(school_dir.path(), &["bundle", "import", path, "--preview"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Perpustakaan PERPUSDESA"), "{stdout}");
    assert!(stderr.contains("Nothing applied"), "{stderr}");
    let cut = disk.path().join("terpotong.jalin");
    let bytes = std::fs::read(&to_school).expect("reads");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).expect("writes");
    let (code, _, stderr) = jalin(
        school_dir.path(),
        &["bundle", "import", cut.to_str().expect("utf-8")],
    );
    assert_ne!(code, 0);
    assert!(
        stderr.contains("cut short") || stderr.contains("damaged"),
        "{stderr}"
    );
    let (code, _, stderr) = jalin(school_dir.path(), &["bundle", "import", path]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("Taken in: 30 new change(s)"), "{stderr}");
    let (code, _, stderr) = jalin(school_dir.path(), &["bundle", "import", path]);
    assert_ne!(code, 0);
    assert!(stderr.contains("not newer than the last"), "{stderr}");
    let (code, stdout, stderr) = jalin(school_dir.path(), &["search", "kisah desa"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Kisah desa"), "{stdout}");
    let to_village = disk.path().join("untuk-desa.jalin");
    let (code, _, stderr) = jalin(
        school_dir.path(),
        &[
            "bundle",
            "export",
            "--for",
            "PERPUSDESA",
            "--out",
            to_village.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("made by the running node"), "{stderr}");
    drop(running);

    let (code, stdout, stderr) = jalin(
        village_dir.path(),
        &["bundle", "import", to_village.to_str().expect("utf-8")],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Perpustakaan SMPN1"), "{stdout}");
    assert!(
        !stdout.contains("catalog Perpustakaan PERPUSDESA"),
        "the village's own catalog does not come back: {stdout}"
    );
    let (code, stdout, _) = jalin(village_dir.path(), &["bundle", "list"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("1 made for it; last taken from it: number 1"),
        "{stdout}"
    );
}

/// Copies a directory tree (a data dir, closed).
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("makes");
    for entry in std::fs::read_dir(from).expect("reads") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copies");
        }
    }
}

#[test]
fn a_library_restored_from_a_copy_numbers_its_bundles_above_what_the_other_took() {
    let clock = Arc::new(ManualClock::at(T));
    let mut members = libraries(&["PERPUSDESA", "SMPN1"], &clock);
    let (b, _b_dir) = members.pop().expect("B");
    let (a, a_dir) = members.pop().expect("A");
    put_book(&a, "A1", "Buku pertama", "desa");
    let (_, first) = make(&a, &b);
    // The village backs up its data dir after its first bundle...
    let backup = tempfile::tempdir().expect("temp dir");
    let data = a.data().clone();
    drop(a);
    copy_dir(a_dir.path(), backup.path());
    let a = Library::open_with_clock(data.clone(), clock.clone()).expect("reopens");
    put_book(&a, "A2", "Buku kedua", "desa");
    let (_, second) = make(&a, &b);
    take(&b, &second).expect("B takes the second");
    assert_eq!(
        take(&b, &first).expect_err("older").code(),
        "bundle_replayed"
    );
    // ...and restores it: its count of bundles for B is back at 1.
    drop(a);
    std::fs::remove_dir_all(a_dir.path()).expect("removes");
    copy_dir(backup.path(), a_dir.path());
    let a = Library::open_with_clock(data, clock.clone()).expect("reopens the copy");
    put_book(&a, "A3", "Buku ketiga", "desa");
    // B's bundle tells A which number it took last: A's next goes above it.
    let (_, from_b) = make(&b, &a);
    take(&a, &from_b).expect("A takes B's bundle");
    let (made, again) = make(&a, &b);
    assert_eq!(made.number, 3);
    take(&b, &again).expect("B takes it: not a replay");
    // B holds A1, A3, and A2, which A lost with the restore and B keeps.
    assert_eq!(records_of(&b, &a.id()), 3);
    assert_eq!(records_of(&a, &a.id()), 2);
}
