//! Libraries and consortia made in process, as `jalin` would make them by text.

use jalin_node::library::Library;
use jalin_protocol::consortium::document::Hash32;
use jalin_protocol::consortium::log::Role;

/// The fixtures' "now": 2026-11-24, ms since 1970.
pub const T: u64 = 1_795_478_400_000;

/// A fresh library in a temporary directory, with `batch` records per import batch.
pub fn new_library(batch: usize) -> (tempfile::TempDir, jalin_node::config::DataDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut data =
        jalin_node::config::DataDir::init(dir.path(), "Perpustakaan Uji", "UJI").expect("init");
    data.config.limits.batch_records_max = Some(batch);
    (dir, data)
}

/// The first of `libraries` founds a consortium named `name` and admits the others by
/// invite and acceptance (as `jalin` would, by text); each takes in its documents.
pub fn form_consortium(name: &str, libraries: &[&Library]) -> Hash32 {
    let a = libraries[0].consortia();
    let id = a.create(name, T).expect("creates");
    for (i, joiner) in libraries[1..].iter().enumerate() {
        let t = T + 10 * (i as u64 + 1);
        let ticket = a
            .invite(&id, Role::Member, t + 3_600_000, "", Vec::new(), t)
            .expect("invites")
            .to_text();
        let acceptance = joiner
            .consortia()
            .join(&ticket, Vec::new(), t + 1)
            .expect("joins")
            .to_text();
        a.accept(&acceptance, t + 2).expect("accepts");
    }
    let documents = a.export(&id).expect("exports");
    for library in &libraries[1..] {
        let report = library.consortia().import(&documents).expect("imports");
        assert!(report.refused.is_empty());
    }
    id
}

/// Every library takes in every other's documents of its first consortium (by text).
pub fn share_documents(libraries: &[&Library]) {
    for _ in 0..2 {
        for from in libraries {
            let id = from.consortia().list()[0].id;
            let documents = from.consortia().export(&id).expect("exports");
            for to in libraries {
                to.consortia().import(&documents).expect("imports");
            }
        }
    }
}

/// The founder (first of `libraries`) drafts an agreement with `terms` (TOML lines of
/// the front matter), every member signs it, and it is in force everywhere.
pub fn agree(libraries: &[&Library], terms: &str) {
    let founder = libraries[0];
    let id = founder.consortia().list()[0].id;
    let file = format!(
        "+++\ntitle = \"Perjanjian Silang Layanan\"\n{terms}\n+++\n\
         Para pihak saling meminjamkan koleksi.\n"
    );
    let agreement = founder
        .consortia()
        .draft(&id, &file, T + 1_000)
        .expect("drafts");
    share_documents(libraries);
    for library in libraries {
        library
            .consortia()
            .sign(&id, &agreement, None, T + 2_000)
            .expect("signs");
    }
    share_documents(libraries);
}

/// Gives `to` every record of `from`'s catalog as the network would: `from`'s signed
/// changes, shard by shard, taken in and indexed.
pub fn replicate(from: &Library, to: &Library) {
    let namespace = from.id();
    let mut shards = Vec::new();
    for shard in 0..jalin_node::store::SHARD_COUNT {
        let changes = from
            .store()
            .changes_since(&namespace, shard, &[])
            .expect("changes");
        if !changes.is_empty() {
            shards.push((shard, changes));
        }
    }
    for result in to.apply_remote_many(&namespace, &shards) {
        result.expect("applies");
    }
}

/// The same book (one ISBN) in each of `holders`' catalogs, and every catalog at every
/// library, so each union catalog groups the holdings. Returns the holders' record ids.
pub fn the_same_book(libraries: &[&Library], holders: &[usize]) -> Vec<String> {
    use jalin_protocol::marc::{DataField, Leader, MarcRecord};
    let mut ids = Vec::new();
    for &i in holders {
        let mut marc = MarcRecord::new(Leader::new_book());
        marc.push_control("001", &format!("LP{i}"));
        marc.push_data(DataField::new("020", ' ', ' ', &[('a', "9789793062792")]));
        marc.push_data(DataField::new("100", '1', ' ', &[('a', "Hirata, Andrea")]));
        marc.push_data(DataField::new("245", '1', '0', &[('a', "Laskar pelangi")]));
        ids.push(libraries[i].put(marc).expect("writes"));
    }
    for from in libraries {
        for to in libraries {
            if from.id() != to.id() {
                replicate(from, to);
            }
        }
    }
    ids
}

/// A `jalin relay` for the members of a consortium, on 127.0.0.1 (a free port), in this
/// process; stopped by [`Relay::stop`].
pub struct Relay {
    /// Where it listens (with its peer id).
    pub address: libp2p::Multiaddr,
    /// How many members it serves.
    pub members: usize,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), jalin_node::relay::RelayError>>,
    _dir: tempfile::TempDir,
}

impl Relay {
    /// A relay for the members the consortium's `documents` (as exported) name; waits
    /// at most 10 s for it to listen.
    pub async fn start(documents: &str) -> Relay {
        let members = jalin_node::relay::members_of_documents(documents).expect("members");
        let count = members.len();
        let (dir, data) = new_library(100);
        let (addresses_tx, mut addresses) =
            tokio::sync::mpsc::channel(jalin_node::relay::ADDRESSES_QUEUED_MAX);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let key = data.key.clone();
        let task = tokio::spawn(async move {
            jalin_node::relay::run(
                &key,
                "/ip4/127.0.0.1/tcp/0".parse().expect("address"),
                jalin_node::relay::Access::Members(members),
                addresses_tx,
                async {
                    let _ = stopped.await;
                },
            )
            .await
        });
        let address = tokio::time::timeout(std::time::Duration::from_secs(10), addresses.recv())
            .await
            .expect("the relay listens")
            .expect("an address");
        Relay {
            address,
            members: count,
            stop,
            task,
            _dir: dir,
        }
    }

    /// Stops it; it must have run without error.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("relay task").expect("the relay ran");
    }
}

/// One of `library`'s own records, as stored, with a general note (500) `note` added: a
/// correction, to put back or import.
pub fn noted(library: &Library, id: &str, note: &str) -> jalin_protocol::marc::MarcRecord {
    let (_, record) = library.get(id).expect("reads").expect("held");
    let mut marc = record.expect("a record").marc;
    marc.push_data(jalin_protocol::marc::DataField::new(
        "500",
        ' ',
        ' ',
        &[('a', note)],
    ));
    marc
}
