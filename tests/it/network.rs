//! Nodes over real libp2p connections on 127.0.0.1: members' catalogs and consortium
//! documents reach each other, through a third member too; a library outside the
//! consortium gets nothing. Tests poll a condition with a deadline; they never sleep and
//! hope.

use crate::shared_data_or_skip;
use crate::support::new_library;
use jalin_node::library::{ImportOptions, Library, Source};
use jalin_node::network::{self, NetHandle};
use jalin_protocol::consortium::document::Hash32;
use jalin_protocol::consortium::log::Role;
use jalin_protocol::signing::LibraryId;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Node {
    library: Arc<Library>,
    net: NetHandle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Node {
    async fn address(&self) -> libp2p::Multiaddr {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let addresses = self.net.listen_addresses().await.expect("network runs");
            if let Some(address) = addresses.into_iter().next() {
                return address;
            }
            assert!(Instant::now() < deadline, "the node never listened");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn digest(&self, namespace: &LibraryId) -> [u8; 32] {
        self.library
            .store
            .namespace_digest(namespace)
            .expect("digest")
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.task.await;
    }
}

async fn start(library: Arc<Library>, dir: tempfile::TempDir) -> Node {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (net, task) = network::spawn(
        library.clone(),
        "/ip4/127.0.0.1/tcp/0".parse().expect("address"),
        async {
            let _ = stopped.await;
        },
    )
    .await
    .expect("the network starts");
    Node {
        library,
        net,
        stop: Some(stop),
        task,
        _dir: dir,
    }
}

/// Waits until `condition` holds, at most `seconds`.
async fn eventually(what: &str, seconds: u64, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const T: u64 = 1_795_478_400_000;

/// Three libraries in a consortium made by text, as `jalin` would, before any network.
fn three_members() -> Vec<(Arc<Library>, tempfile::TempDir)> {
    let mut out = Vec::new();
    for _ in 0..3 {
        let (dir, data) = new_library(100);
        out.push((Arc::new(Library::open(data).expect("opens")), dir));
    }
    let a = &out[0].0.consortia;
    let id = a.create("Jaringan Uji", T).expect("creates");
    for (i, joiner) in [&out[1].0, &out[2].0].into_iter().enumerate() {
        let t = T + 10 * (i as u64 + 1);
        let ticket = a
            .invite(&id, Role::Member, t + 3_600_000, "", Vec::new(), t)
            .expect("invites")
            .to_text();
        let acceptance = joiner
            .consortia
            .join(&ticket, Vec::new(), t + 1)
            .expect("joins")
            .to_text();
        a.accept(&acceptance, t + 2).expect("accepts");
    }
    let documents = a.export(&id).expect("exports");
    for (library, _) in &out[1..] {
        let report = library.consortia.import(&documents).expect("imports");
        assert!(report.refused.is_empty());
    }
    out
}

fn consortium_of(library: &Library) -> Hash32 {
    library.consortia.list()[0].id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogs_and_documents_reach_every_member_and_no_outsider() {
    let data = shared_data_or_skip!();
    let mut members = three_members();
    let (c_library, c_dir) = members.pop().expect("C");
    let (b_library, b_dir) = members.pop().expect("B");
    let (a_library, a_dir) = members.pop().expect("A");
    let file = data.join("marc/loc/loc-indonesia-3147.mrc");
    let importer = a_library.clone();
    tokio::task::spawn_blocking(move || {
        importer
            .import(&Source::File(file), &ImportOptions::default(), |_| {})
            .expect("imports")
    })
    .await
    .expect("import task");
    let a_id = a_library.store.library();
    let id = consortium_of(&a_library);

    // An outsider that read the consortium's documents (so it would gladly connect).
    let (d_dir, d_data) = new_library(100);
    let d_library = Arc::new(Library::open(d_data).expect("opens"));
    d_library
        .consortia
        .import(&a_library.consortia.export(&id).expect("exports"))
        .expect("imports");

    let a = start(a_library, a_dir).await;
    let b = start(b_library, b_dir).await;
    let c = start(c_library, c_dir).await;
    let d = start(d_library, d_dir).await;
    // B dials A; C knows only B: A's catalog reaches C through B.
    b.net.dial(a.address().await).await.expect("dials");
    c.net.dial(b.address().await).await.expect("dials");
    d.net.dial(a.address().await).await.expect("dials");
    let target = a.digest(&a_id);
    eventually("A's catalog at B", 60, || b.digest(&a_id) == target).await;
    eventually("A's catalog at C, through B", 60, || {
        c.digest(&a_id) == target
    })
    .await;
    let at_c: Vec<_> = c
        .library
        .store
        .records_of(&a_id)
        .map(|r| r.expect("reads").record_id)
        .collect();
    assert_eq!(at_c.len(), 3147);
    // The union catalog: C finds A's books, marked as A's.
    eventually("A's records searchable at C", 30, || {
        c.library
            .search("indonesia", 1, 10)
            .expect("searches")
            .total
            > 1000
    })
    .await;
    let found = c.library.search("indonesia", 1, 10).expect("searches");
    assert!(
        found
            .hits
            .iter()
            .all(|h| h.library.as_deref() == Some(a_id.to_hex().as_str())),
        "{:?}",
        found.hits.first()
    );

    // A live edit: A announces it; the others pull.
    let edited = a.library.clone();
    tokio::task::spawn_blocking(move || {
        let gone = edited
            .store
            .records()
            .nth(5)
            .expect("a record")
            .expect("reads")
            .record_id;
        edited.delete(&gone).expect("deletes");
    })
    .await
    .expect("edit task");
    a.net.announce(Some(a_id)).await.expect("announces");
    let target = a.digest(&a_id);
    eventually("the deletion at B", 30, || b.digest(&a_id) == target).await;
    eventually("the deletion at C", 30, || c.digest(&a_id) == target).await;
    // A deleted record leaves the union catalog.
    eventually("the deletion out of C's index", 30, || {
        c.library.index.len() == 3146
    })
    .await;

    // Consortium documents travel the same way: an agreement drafted at A reaches C.
    let drafter = a.library.clone();
    let agreement = tokio::task::spawn_blocking(move || {
        drafter
            .consortia
            .draft(
                &id,
                "+++\ntitle = \"Perjanjian\"\nunion_catalog = true\ninterlibrary_loan = false\ncoordinated_acquisition = false\nstaff_development = false\nloan_period_days = 14\nitems_per_request = 1\nevaluation_period_months = 12\n+++\nTeks.\n",
                T + 1_000,
            )
            .expect("drafts")
    })
    .await
    .expect("draft task");
    a.net.announce(None).await.expect("announces");
    eventually("the agreement at C", 30, || {
        c.library
            .consortia
            .agreement_status(&id, &agreement)
            .is_ok()
    })
    .await;

    // A removes C: A and B (once it has the removal) cut C off, and C's later changes
    // reach no one.
    let remover = a.library.clone();
    let c_id = c.library.store.library();
    tokio::task::spawn_blocking(move || {
        remover
            .consortia
            .remove(&id, c_id, "left the district", T + 2_000)
            .expect("removes")
    })
    .await
    .expect("remove task");
    a.net.members_changed().await.expect("network runs");
    a.net.announce(None).await.expect("announces");
    eventually("B learns of the removal", 30, || {
        b.library
            .consortia
            .members(&id)
            .expect("members")
            .members
            .len()
            == 2
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let a_peers = a.net.peers().await.expect("peers");
        let b_peers = b.net.peers().await.expect("peers");
        if !a_peers.contains(&c.net.peer_id) && !b_peers.contains(&c.net.peer_id) {
            break;
        }
        assert!(Instant::now() < deadline, "C was not cut off");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let writer = c.library.clone();
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cli/demo/loc-indonesia-sample.mrc");
    tokio::task::spawn_blocking(move || {
        writer
            .import(&Source::File(sample), &ImportOptions::default(), |_| {})
            .expect("imports")
    })
    .await
    .expect("import task");
    c.net.announce(Some(c_id)).await.expect("announces");
    c.net.dial(b.address().await).await.expect("dial starts");
    c.net.dial(a.address().await).await.expect("dial starts");
    // The dials are refused by the members (their allow-lists no longer hold C): C stays
    // without peers, and no member holds C's catalog.
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        assert!(!a.net.peers().await.expect("peers").contains(&c.net.peer_id));
        assert!(!b.net.peers().await.expect("peers").contains(&c.net.peer_id));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!a
        .library
        .store
        .namespaces()
        .expect("namespaces")
        .contains(&c_id));
    assert!(!b
        .library
        .store
        .namespaces()
        .expect("namespaces")
        .contains(&c_id));

    // The outsider: A refused its connection; it holds nothing of A's catalog.
    let a_peers = a.net.peers().await.expect("peers");
    assert!(!a_peers.contains(&d.net.peer_id), "A let a non-member in");
    assert!(d.library.store.namespaces().expect("namespaces").is_empty());
    assert!(d.net.peers().await.expect("peers").is_empty());

    for node in [a, b, c, d] {
        node.stop().await;
    }
}
