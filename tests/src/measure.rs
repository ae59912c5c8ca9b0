//! What the benchmarks and tests measure with: the records of a MARC file, the process's
//! memory, the sync protocol's bytes for what a library lacks, a store's every byte.

/// The records of an ISO 2709 file, each as its bytes (by the length in its leader).
pub fn records(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 5 <= bytes.len() {
        let Some(length) = std::str::from_utf8(&bytes[at..at + 5])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        else {
            break;
        };
        // A length too short for a leader, or past the end: the file ends here.
        if length < 24 || at + length > bytes.len() {
            break;
        }
        out.push(&bytes[at..at + length]);
        at += length;
    }
    out
}

/// A figure of `/proc/self/status` in kB (`VmRSS:`, `VmHWM:`), 0 where there is none.
pub fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The bytes of the sync protocol's `Changes` answers that would carry what `to` lacks of
/// `from`'s own catalog (one answer per shard: `Hello`, `Summary` and `Group` not
/// counted).
pub fn changes_bytes(
    from: &jalin_node::library::Library,
    to: &jalin_node::library::Library,
) -> u64 {
    use jalin_protocol::sync::{SyncResponse, SHARD_COUNT};
    let namespace = from.id();
    let mut bytes = 0u64;
    for shard in 0..SHARD_COUNT {
        let have = to.store().shard_heads(&namespace, shard).expect("heads");
        let changes = from
            .store()
            .changes_since(&namespace, shard, &have)
            .expect("changes");
        if !changes.is_empty() {
            let answer = SyncResponse::Changes {
                namespace,
                shards: vec![(shard, changes)].into(),
                rest: Default::default(),
            };
            bytes += jalin_protocol::sync::encode(&answer)
                .expect("encodes")
                .len() as u64;
        }
    }
    bytes
}

/// Every byte `library` keeps in its database, every tree: two equal readings mean
/// nothing was written between them.
pub fn every_byte(library: &jalin_node::library::Library) -> Vec<u8> {
    let db = library.store().db();
    let mut out = Vec::new();
    for name in db.tree_names() {
        let tree = db.open_tree(&name).expect("tree");
        for item in tree.iter() {
            let (k, v) = item.expect("reads");
            out.extend_from_slice(&k);
            out.extend_from_slice(&v);
        }
    }
    out
}
