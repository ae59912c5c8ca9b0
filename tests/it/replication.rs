//! Replicas of other libraries' catalogs at the store level: what the network will carry.
//! One library imports real records; another pulls them shard by shard (heads, then the
//! changes it lacks, each with the owner's signed envelope); a third pulls the first's
//! catalog from the second while the first is away. Forged and damaged changes are
//! refused and store nothing.

use crate::shared_data_or_skip;
use crate::support::new_library;
use jalin_node::library::{ImportOptions, Library, Source};
use jalin_node::store::{SignedChange, Store, SHARD_COUNT};
use jalin_protocol::signing::{ChangeEnvelope, LibraryId};

/// Brings `to`'s replica of `namespace` up to `from`'s, shard by shard. Returns the
/// number of shards that differed, changes moved and their bytes (change + envelope).
fn pull(from: &Library, to: &Library, namespace: &LibraryId) -> (usize, usize, usize) {
    let (mut shards, mut changes, mut bytes) = (0, 0, 0);
    for shard in 0..SHARD_COUNT {
        let have = to.shard_heads(namespace, shard).expect("heads");
        if from.shard_heads(namespace, shard).expect("heads") == have {
            continue;
        }
        shards += 1;
        let missing = from
            .store()
            .changes_since(namespace, shard, &have)
            .expect("changes");
        changes += missing.len();
        bytes += missing
            .iter()
            .map(|c| c.bytes.len() + 32 + 32 + 2 + 32 + 64)
            .sum::<usize>();
        for applied in to.apply_remote_many(namespace, &[(shard, missing)]) {
            applied.expect("applies");
        }
    }
    (shards, changes, bytes)
}

fn catalog(store: &Store, namespace: &LibraryId) -> Vec<(String, bool, Vec<u8>)> {
    store
        .records_of(namespace)
        .map(|r| {
            let r = r.expect("reads");
            (r.record_id, r.deleted, r.marc)
        })
        .collect()
}

fn import(library: &Library, file: &std::path::Path) {
    library
        .import(
            &Source::File(file.to_path_buf()),
            &ImportOptions::default(),
            |_| {},
        )
        .expect("imports");
}

#[test]
fn a_catalog_replicates_by_shard_heads_and_reaches_a_third_library_through_a_second() {
    let data = shared_data_or_skip!();
    let (_a_dir, a_data) = new_library(1000);
    let (_b_dir, b_data) = new_library(1000);
    let (c_dir, c_data) = new_library(1000);
    let a = Library::open(a_data).expect("opens");
    let b = Library::open(b_data).expect("opens");
    let c = Library::open(c_data.clone()).expect("opens");
    import(&a, &data.join("marc/loc/loc-indonesia-3147.mrc"));
    let ns = a.id();
    assert_eq!(a.store().namespaces().expect("namespaces"), vec![ns]);

    let (shards, _, _) = pull(&a, &b, &ns);
    assert_eq!(shards, usize::from(SHARD_COUNT));
    assert_eq!(catalog(b.store(), &ns), catalog(a.store(), &ns));
    assert_eq!(catalog(b.store(), &ns).len(), 3147);
    assert_eq!(
        b.store().namespace_digest(&ns).expect("digest"),
        a.store().namespace_digest(&ns).expect("digest")
    );
    assert_eq!(pull(&a, &b, &ns), (0, 0, 0), "in sync: nothing moves");

    // One edit and one deletion: only their shards move, one change each.
    let (_, record) = a.get("00369705").expect("reads").expect("present");
    let mut record = record.expect("decodes").marc;
    record.fields.retain(|f| f.tag() != "500");
    a.put(record).expect("edits");
    let gone = catalog(a.store(), &ns)[10].0.clone();
    a.delete(&gone).expect("deletes");
    let (shards, changes, bytes) = pull(&a, &b, &ns);
    assert!(
        shards <= 2 && changes == shards,
        "{shards} shards, {changes} changes"
    );
    assert!(bytes < 4096, "{bytes} bytes for two records");
    assert_eq!(catalog(b.store(), &ns), catalog(a.store(), &ns));
    let deleted = b
        .store()
        .records_of(&ns)
        .map(|r| r.expect("reads"))
        .find(|r| r.record_id == gone)
        .expect("the tombstone replicates");
    assert!(deleted.deleted);

    // A is away: C gets A's catalog from B, and keeps it across a restart.
    drop(a);
    pull(&b, &c, &ns);
    assert_eq!(catalog(c.store(), &ns), catalog(b.store(), &ns));
    let digest = c.store().namespace_digest(&ns).expect("digest");
    drop(c);
    let c = Library::open(c_data).expect("reopens");
    assert_eq!(c.store().namespace_digest(&ns).expect("digest"), digest);
    assert_eq!(catalog(c.store(), &ns), catalog(b.store(), &ns));
    drop(c_dir);
}

#[test]
fn forged_damaged_and_incomplete_changes_are_refused_and_store_nothing() {
    let data = shared_data_or_skip!();
    let (_a_dir, a_data) = new_library(100);
    let (_b_dir, b_data) = new_library(100);
    let a = Library::open(a_data).expect("opens");
    let b = Library::open(b_data).expect("opens");
    // 300 records in batches of 100: every shard has a few changes in a chain.
    let file = data.join("marc/loc/loc-indonesia-3147.mrc");
    let bytes = std::fs::read(&file).expect("reads");
    let cut = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == 0x1d)
        .nth(299)
        .map(|(i, _)| i + 1)
        .expect("300 records");
    let small = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(small.path(), &bytes[..cut]).expect("writes");
    import(&a, small.path());
    let ns = a.id();
    let shard = (0..SHARD_COUNT)
        .find(|s| {
            a.store()
                .changes_since(&ns, *s, &[])
                .expect("changes")
                .len()
                >= 2
        })
        .expect("a shard with two changes");
    let changes = a.store().changes_since(&ns, shard, &[]).expect("changes");
    let b_key = b.data().key.clone();
    let b_id = b.id();

    let attempts: Vec<(&str, u16, Vec<SignedChange>, &str)> = vec![
        (
            "change bytes altered",
            shard,
            {
                let mut c = changes.clone();
                let last = c[0].bytes.len() - 1;
                c[0].bytes[last] ^= 0x55;
                c
            },
            "change",
        ),
        (
            "another library's change under the owner's namespace",
            shard,
            {
                let mut c = changes.clone();
                let forged = ChangeEnvelope::sign(&b_key, shard, c[0].envelope.change_hash);
                c[0].envelope = ChangeEnvelope {
                    namespace: ns,
                    ..forged
                };
                c
            },
            "envelope",
        ),
        (
            "a valid change sent as another shard's",
            (shard + 1) % SHARD_COUNT,
            changes.clone(),
            "another catalog or shard",
        ),
        (
            "a change without the one it depends on",
            shard,
            changes[1..].to_vec(),
            "depend on",
        ),
        (
            "into this library's own catalog",
            shard,
            changes.clone(),
            "own catalog",
        ),
    ];
    for (what, to_shard, batch, expected) in attempts {
        let target = if expected == "own catalog" { b_id } else { ns };
        let before = (
            b.store().seq().expect("seq"),
            catalog(b.store(), &target).len(),
            b.store().shard_heads(&target, to_shard).expect("heads"),
        );
        let error = b
            .apply_remote_many(&target, &[(to_shard, batch.clone())])
            .pop()
            .expect("one result")
            .expect_err(what);
        assert!(
            error.to_string().contains(expected),
            "{what}: {error} (expected {expected:?})"
        );
        let after = (
            b.store().seq().expect("seq"),
            catalog(b.store(), &target).len(),
            b.store().shard_heads(&target, to_shard).expect("heads"),
        );
        assert_eq!(before, after, "{what}: something was stored");
    }
    // The genuine batch is still taken afterwards.
    let applied = b
        .apply_remote_many(&ns, &[(shard, changes.clone())])
        .pop()
        .expect("one result")
        .expect("applies");
    assert_eq!(applied.changes, changes.len());
    assert!(!applied.records.is_empty());
    assert_eq!(
        b.store().shard_heads(&ns, shard).expect("heads"),
        a.store().shard_heads(&ns, shard).expect("heads")
    );
}
