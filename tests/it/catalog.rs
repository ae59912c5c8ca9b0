//! One library's catalog: import, re-import, export, edit, delete, restart.

use crate::shared_data_or_skip;
use crate::support::new_library;
use jalin_node::library::{ImportOptions, Library, Source};
use jalin_node::store::{shard_of, SHARD_COUNT};
use jalin_protocol::format::Format;
use jalin_protocol::marc::{iso2709, DataField, Field, Leader, MarcRecord};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn read_file(path: &std::path::Path) -> Vec<MarcRecord> {
    iso2709::Reader::new(std::fs::read(path).expect("file").as_slice())
        .map(|r| r.expect("reads").record)
        .collect()
}

#[test]
fn import_then_export_gives_the_records_back_and_reimport_changes_nothing() {
    let data_dir = shared_data_or_skip!();
    let file = data_dir.join("marc/loc/loc-indonesia-3147.mrc");
    let (_dir, mut data) = new_library(1000);
    // A cache of four shard documents: every batch touches ~all 256 shards, so documents
    // are dropped and read back from disk within a batch and between batches.
    data.config.limits.loaded_shards_max = Some(4);
    let library = Library::open(data).expect("opens");
    let first = library
        .import(
            &Source::File(file.clone()),
            &ImportOptions::default(),
            |_| {},
        )
        .expect("imports");
    assert_eq!(
        (
            first.read,
            first.added,
            first.updated,
            first.unchanged,
            first.rejected.len()
        ),
        (3147, 3147, 0, 0, 0)
    );
    let second = library
        .import(
            &Source::File(file.clone()),
            &ImportOptions::default(),
            |_| {},
        )
        .expect("imports");
    assert_eq!(
        (
            second.added,
            second.updated,
            second.unchanged,
            second.deleted
        ),
        (0, 0, 3147, 0)
    );

    // Export to MARC: the same records, field by field (in id order rather than file order).
    let (count, bytes) = library.export(Vec::new(), Format::Marc).expect("exports");
    assert_eq!(count, 3147);
    let exported: BTreeMap<String, MarcRecord> = iso2709::Reader::new(bytes.as_slice())
        .map(|r| r.expect("reads").record)
        .map(|r| (r.control("001").unwrap_or_default().trim().to_string(), r))
        .collect();
    let original = read_file(&file);
    assert_eq!(exported.len(), original.len());
    for record in &original {
        let id = record.control("001").expect("LC records have 001").trim();
        assert_eq!(exported[id].fields, record.fields, "record {id}");
    }

    // Every change was signed, and the envelopes verify.
    let envelopes: Vec<_> = library
        .store()
        .envelopes()
        .collect::<Result<_, _>>()
        .expect("envelopes read");
    assert!(!envelopes.is_empty());
    assert!(envelopes
        .iter()
        .all(|e| e.verify().is_ok() && e.author == library.id()));

    // The automerge shard documents hold exactly the records, each in its shard, the same
    // bytes as the store's record view.
    let mut in_shards = 0;
    for shard in 0..SHARD_COUNT {
        for (id, deleted, marc) in library.store().shard_records(shard).expect("shard loads") {
            assert_eq!(shard_of(&id), shard);
            assert!(!deleted);
            let stored = library.store().get(&id).expect("reads").expect("present");
            assert_eq!(marc, stored.marc, "record {id}");
            in_shards += 1;
        }
    }
    assert_eq!(in_shards, 3147);
}

#[test]
fn a_changed_record_updates_in_place_and_delete_missing_tombstones() {
    let data_dir = shared_data_or_skip!();
    let file = data_dir.join("marc/loc/loc-indonesia-3147.mrc");
    let (dir, data) = new_library(500);
    let library = Library::open(data).expect("opens");
    library
        .import(
            &Source::File(file.clone()),
            &ImportOptions::default(),
            |_| {},
        )
        .expect("imports");
    // A second file: the first 100 records, one of them with a changed title.
    let mut records = read_file(&file);
    records.truncate(100);
    let changed_id = records[5].control("001").expect("001").trim().to_string();
    for field in &mut records[5].fields {
        if let Field::Data(d) = field {
            if d.tag == "245" {
                d.subfields[0].value = "Judul yang diperbaiki".to_string();
            }
        }
    }
    let mut bytes = Vec::new();
    for record in &records {
        bytes.extend(iso2709::write_record(record).expect("writes"));
    }
    let small = dir.path().join("small.mrc");
    std::fs::write(&small, bytes).expect("write");
    let options = ImportOptions {
        delete_missing: true,
        ..Default::default()
    };
    let summary = library
        .import(&Source::File(small), &options, |_| {})
        .expect("imports");
    assert_eq!(
        (
            summary.added,
            summary.updated,
            summary.unchanged,
            summary.deleted
        ),
        (0, 1, 99, 3047)
    );
    let (stored, record) = library.get(&changed_id).expect("reads").expect("present");
    assert!(!stored.deleted);
    assert_eq!(
        record.expect("decodes").description.title,
        "Judul yang diperbaiki"
    );
    let status = library.status().expect("status");
    assert_eq!(
        (status.records, status.deleted, status.indexed),
        (100, 3047, 100)
    );
    let hits = library.search("diperbaiki", 1, 10).expect("search");
    assert_eq!(
        hits.hits.first().map(|h| h.record_id.as_str()),
        Some(changed_id.as_str())
    );
}

#[test]
fn strict_import_of_a_damaged_file_imports_nothing() {
    let data_dir = shared_data_or_skip!();
    let (_dir, data) = new_library(10);
    let library = Library::open(data).expect("opens");
    let file = data_dir.join("marc/edge/pymarc/bad_records.mrc");
    let strict = ImportOptions {
        strict: true,
        ..Default::default()
    };
    let error = library
        .import(&Source::File(file.clone()), &strict, |_| {})
        .expect_err("strict refuses");
    assert!(error.to_string().contains("byte offset"), "{error}");
    assert_eq!(library.status().expect("status").records, 0);
    assert_eq!(
        library.store().seq().expect("seq"),
        0,
        "nothing was written"
    );
    // Lenient: the readable records go in, the rest are listed with their positions.
    let summary = library
        .import(&Source::File(file), &ImportOptions::default(), |_| {})
        .expect("imports");
    assert_eq!(summary.rejected.len(), 4);
    assert!(summary.read >= 1);
    assert!(summary.rejected.iter().all(|r| r.location.number > 0));
}

#[test]
fn a_library_reopens_with_its_records_and_without_rebuilding_its_index() {
    let data_dir = shared_data_or_skip!();
    let (_dir, data) = new_library(1000);
    {
        let library = Library::open(data.clone()).expect("opens");
        library
            .import(
                &Source::File(data_dir.join("marc/loc/loc-indonesia-3147.mrc")),
                &ImportOptions::default(),
                |_| {},
            )
            .expect("imports");
    }
    let library = Library::open(data.clone()).expect("reopens");

    assert_eq!(
        library.catch_up_index().expect("nothing to index"),
        0,
        "a restart does not rebuild the index"
    );
    assert_eq!(library.status().expect("status").indexed, 3147);
    drop(library);
    // A damaged index is rebuilt from the store.
    let index_dir = data.index_path();
    for entry in std::fs::read_dir(&index_dir).expect("index dir").flatten() {
        if entry.file_name().to_string_lossy() == "meta.json" {
            std::fs::write(entry.path(), b"{ not json").expect("damage");
        }
    }
    let library = Library::open(data).expect("reopens with a damaged index");
    assert_eq!(library.status().expect("status").indexed, 3147);
    assert!(library.search("pembangunan", 1, 5).expect("search").total > 0);
}

/// One step of the model test.
#[derive(Clone, Debug)]
enum Op {
    Put { id: u8, title: u8 },
    Delete { id: u8 },
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..12, 0u8..4).prop_map(|(id, title)| Op::Put { id, title }),
        2 => (0u8..12).prop_map(|id| Op::Delete { id }),
        1 => Just(Op::Restart),
    ]
}

fn record(id: u8, title: u8) -> MarcRecord {
    let mut record = MarcRecord::new(Leader::new_book());
    record.push_control("001", &format!("rec{id}"));
    record.push_data(DataField::new(
        "245",
        '0',
        '0',
        &[('a', &format!("Judul nomor {title} untuk rec{id}"))],
    ));
    record
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random add / edit / delete / restart against a model: after every step the
    /// catalog (store and search index) equals the model.
    #[test]
    fn the_catalog_follows_a_model_through_restarts(ops in prop::collection::vec(op(), 1..24)) {
        let (_dir, data) = new_library(100);
        let mut library = Library::open(data.clone()).expect("opens");
        let mut model: BTreeMap<String, u8> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Put { id, title } => {
                    library.put(record(id, title)).expect("put");
                    model.insert(format!("rec{id}"), title);
                }
                Op::Delete { id } => {
                    let result = library.delete(&format!("rec{id}"));
                    prop_assert_eq!(result.is_ok(), model.remove(&format!("rec{id}")).is_some());
                }
                Op::Restart => {
                    drop(library);
                    library = Library::open(data.clone()).expect("reopens");
                }
            }
            let mut live = BTreeMap::new();
            for stored in library.store().records() {
                let stored = stored.expect("reads");
                if !stored.deleted {
                    let record = jalin_node::library::decode(&stored).expect("decodes");
                    let title: u8 = record.description.title.split_whitespace().nth(2).and_then(|t| t.parse().ok()).expect("title number");
                    live.insert(stored.record_id, title);
                }
            }
            prop_assert_eq!(&live, &model);
            prop_assert_eq!(library.status().expect("status").indexed, model.len() as u64);
            let found = library.search("judul", 1, 100).expect("search").total;
            prop_assert_eq!(found, model.len());
        }
    }
}
