//! Nodes over real libp2p connections on 127.0.0.1: members' catalogs and consortium
//! documents reach each other, through a third member too; a library outside the
//! consortium gets nothing. Tests poll a condition with a deadline; they never sleep and
//! hope.

use crate::shared_data_or_skip;
use crate::support::new_library;
use automerge::transaction::Transactable;
use jalin_node::codec::{Codec, Traffic};
use jalin_node::library::{ImportOptions, Library, Source};
use jalin_node::network::{NetHandle, SyncRequest, SyncResponse};
use jalin_node::node::{NodeHandle, NodeOptions};
use jalin_node::store::{SignedChange, SHARD_COUNT};
use jalin_protocol::consortium::document::Hash32;
use jalin_protocol::consortium::log::Role;
use jalin_protocol::signing::ChangeEnvelope;
use jalin_protocol::signing::LibraryId;
use libp2p::futures::StreamExt;
use libp2p::request_response;
use libp2p::swarm::SwarmEvent;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) struct Node {
    pub(crate) library: Arc<Library>,
    pub(crate) net: NetHandle,
    node: NodeHandle,
    _dir: tempfile::TempDir,
}

impl Node {
    pub(crate) async fn address(&self) -> libp2p::Multiaddr {
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

    pub(crate) fn digest(&self, namespace: &LibraryId) -> [u8; 32] {
        self.library
            .store()
            .namespace_digest(namespace)
            .expect("digest")
    }

    /// The HTTP base URL (a node started by [`start_serving`]).
    pub(crate) fn url(&self) -> String {
        self.node.url().expect("the node serves HTTP")
    }

    pub(crate) async fn stop(self) {
        self.node.shutdown().await.expect("the node stops cleanly");
    }

    /// Stops the node and hands back its data dir (to start it again).
    pub(crate) async fn stop_keeping_dir(self) -> tempfile::TempDir {
        let Node {
            library,
            net,
            node,
            _dir,
        } = self;
        drop((library, net));
        node.shutdown().await.expect("the node stops cleanly");
        _dir
    }
}

pub(crate) async fn start(library: Arc<Library>, dir: tempfile::TempDir) -> Node {
    start_on(
        library,
        dir,
        vec!["/ip4/127.0.0.1/tcp/0".parse().expect("address")],
    )
    .await
}

pub(crate) async fn start_on(
    library: Arc<Library>,
    dir: tempfile::TempDir,
    listen: Vec<libp2p::Multiaddr>,
) -> Node {
    let options = NodeOptions {
        p2p: Some(listen),
        ..NodeOptions::default()
    };
    spawn(library, dir, options).await
}

/// A node with its HTTP server too (API and web pages on 127.0.0.1).
pub(crate) async fn start_serving(library: Arc<Library>, dir: tempfile::TempDir) -> Node {
    let options = NodeOptions {
        http: Some("127.0.0.1:0".into()),
        p2p: Some(vec!["/ip4/127.0.0.1/tcp/0".parse().expect("address")]),
        ..NodeOptions::default()
    };
    spawn(library, dir, options).await
}

async fn spawn(library: Arc<Library>, dir: tempfile::TempDir, options: NodeOptions) -> Node {
    let node = jalin_node::node::Node::spawn(library.clone(), options)
        .await
        .expect("the network starts");
    let net = node.net().expect("runs the network").clone();
    Node {
        library,
        net,
        node,
        _dir: dir,
    }
}

/// Where `node` listens through its relay (waits at most 20 s).
pub(crate) async fn circuit_address(node: &Node) -> libp2p::Multiaddr {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listening = node.net.listen_addresses().await.expect("network runs");
        if let Some(address) = listening
            .into_iter()
            .find(|a| a.to_string().contains("/p2p-circuit"))
        {
            return address;
        }
        assert!(
            Instant::now() < deadline,
            "never listened through the relay"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `condition` holds, at most `seconds`.
pub(crate) async fn eventually(what: &str, seconds: u64, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks, for `seconds` after a refused dial, that `outsider` is connected to none of
/// `members` (nor, when `alone`, anyone). A refusal has no event on the members' side to wait for (the allow-list
/// closes the connection before the swarm reports it), so the absence is watched over a
/// window; each check is immediate, and the window only bounds how long a wrong
/// admission would have to show.
async fn never_connected(members: &[&Node], outsider: &Node, alone: bool, seconds: u64) {
    let until = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < until {
        // `alone`: the outsider reaches no one at all (not even a relay).
        if alone {
            assert!(outsider.net.peers().await.expect("peers").is_empty());
        }
        for member in members {
            let peers = member.net.peers().await.expect("peers");
            assert!(
                !peers.contains(&outsider.net.peer_id),
                "a member let {} in",
                outsider.net.peer_id
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) use jalin_tests::fixtures::{form_consortium, T};

/// Three libraries in a consortium made by text, as `jalin` would, before any network.
fn three_members() -> Vec<(Arc<Library>, tempfile::TempDir)> {
    members(3)
}

/// `n` libraries in a consortium made by text; the first founded it.
fn members(n: usize) -> Vec<(Arc<Library>, tempfile::TempDir)> {
    members_with(n, |_, _| {})
}

/// `n` libraries in a consortium, each data dir's configuration first set by `configure`.
fn members_with(
    n: usize,
    configure: impl Fn(usize, &mut jalin_node::config::DataDir),
) -> Vec<(Arc<Library>, tempfile::TempDir)> {
    let mut out = Vec::new();
    for i in 0..n {
        let (dir, mut data) = new_library(100);
        configure(i, &mut data);
        out.push((Arc::new(Library::open(data).expect("opens")), dir));
    }
    let libraries: Vec<&Library> = out.iter().map(|(l, _)| l.as_ref()).collect();
    form_consortium("Jaringan Uji", &libraries);
    out
}

/// Edits one of the library's own records: adds a general note (500) with `note`.
/// Returns the record's id.
fn add_note(library: &Library, record_id: &str, note: &str) -> String {
    let mut marc = library
        .get(record_id)
        .expect("reads")
        .and_then(|(_, record)| record)
        .expect("a record")
        .marc;
    marc.push_data(jalin_protocol::marc::DataField::new(
        "500",
        ' ',
        ' ',
        &[('a', note)],
    ));
    library.put(marc).expect("edits")
}

fn consortium_of(library: &Library) -> Hash32 {
    library.consortia().list()[0].id
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
    let a_id = a_library.id();
    let id = consortium_of(&a_library);

    // An outsider that read the consortium's documents (so it would gladly connect).
    let (d_dir, d_data) = new_library(100);
    let d_library = Arc::new(Library::open(d_data).expect("opens"));
    d_library
        .consortia()
        .import(&a_library.consortia().export(&id).expect("exports"))
        .expect("imports");

    let a = start(a_library, a_dir).await;
    let b = start(b_library, b_dir).await;
    let c = start(c_library, c_dir).await;
    let d = start(d_library, d_dir).await;
    // B dials A; C knows only B: A's catalog reaches C through B.
    b.net.dial(a.address().await).await.expect("dials");
    c.net.dial(b.address().await).await.expect("dials");
    // D's own node refuses to dial a library it shares no consortium with; a hostile one
    // that does is refused by A (`outsiders_and_removed_members_are_refused_by_the_node`).
    assert!(d.net.dial(a.address().await).await.is_err());
    let target = a.digest(&a_id);
    eventually("A's catalog at B", 60, || b.digest(&a_id) == target).await;
    eventually("A's catalog at C, through B", 60, || {
        c.digest(&a_id) == target
    })
    .await;
    let at_c: Vec<_> = c
        .library
        .store()
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
            .store()
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
        c.library.index().len() == 3146
    })
    .await;

    // Consortium documents travel the same way: an agreement drafted at A reaches C.
    let drafter = a.library.clone();
    let agreement = tokio::task::spawn_blocking(move || {
        drafter
            .consortia()
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
            .consortia()
            .agreement_status(&id, &agreement)
            .is_ok()
    })
    .await;

    // A removes C: A and B (once it has the removal) cut C off, and C's later changes
    // reach no one.
    let remover = a.library.clone();
    let c_id = c.library.id();
    tokio::task::spawn_blocking(move || {
        remover
            .consortia()
            .remove(&id, c_id, "left the district", T + 2_000)
            .expect("removes")
    })
    .await
    .expect("remove task");
    a.net.members_changed().await.expect("network runs");
    a.net.announce(None).await.expect("announces");
    eventually("B learns of the removal", 30, || {
        b.library
            .consortia()
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
    never_connected(&[&a, &b], &c, false, 2).await;
    assert!(!a
        .library
        .store()
        .namespaces()
        .expect("namespaces")
        .contains(&c_id));
    assert!(!b
        .library
        .store()
        .namespaces()
        .expect("namespaces")
        .contains(&c_id));

    // The outsider: A refused its connection; it holds nothing of A's catalog.
    let a_peers = a.net.peers().await.expect("peers");
    assert!(!a_peers.contains(&d.net.peer_id), "A let a non-member in");
    assert!(d
        .library
        .store()
        .namespaces()
        .expect("namespaces")
        .is_empty());
    assert!(d.net.peers().await.expect("peers").is_empty());

    for node in [a, b, c, d] {
        node.stop().await;
    }
}

#[derive(Clone, Debug)]
enum Step {
    /// A library edits (or deletes) one of its own records and announces it.
    Edit {
        node: usize,
        record: usize,
        delete: bool,
    },
    Connect(usize, usize),
    Disconnect(usize, usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..5usize, 0..20usize, any::<bool>()).prop_map(|(node, record, delete)| Step::Edit {
            node,
            record,
            delete
        }),
        (0..5usize, 0..5usize).prop_map(|(a, b)| Step::Connect(a, b)),
        (0..5usize, 0..5usize).prop_map(|(a, b)| Step::Disconnect(a, b)),
    ]
}

use proptest::prelude::*;

#[test]
fn partitions_heal_to_the_same_catalogs_whatever_the_schedule() {
    let sample = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../cli/demo/loc-indonesia-sample.mrc"),
    )
    .expect("the demo sample");
    let records: Vec<jalin_protocol::marc::MarcRecord> =
        jalin_protocol::marc::iso2709::Reader::new(sample.as_slice())
            .map(|r| r.expect("reads").record)
            .take(100)
            .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: 6,
        ..Default::default()
    });
    runner
        .run(&prop::collection::vec(step(), 4..16), |steps| {
            runtime.block_on(async {
                let mut nodes = Vec::new();
                for (i, (library, dir)) in members(5).into_iter().enumerate() {
                    // Each library's own 20 records, before the network starts.
                    let mine: Vec<u8> = records[i * 20..i * 20 + 20]
                        .iter()
                        .flat_map(|r| {
                            jalin_protocol::marc::iso2709::write_record(r).expect("writes")
                        })
                        .collect();
                    let importer = library.clone();
                    tokio::task::spawn_blocking(move || {
                        importer
                            .import(&Source::Bytes(mine), &ImportOptions::default(), |_| {})
                            .expect("imports")
                    })
                    .await
                    .expect("import task");
                    nodes.push(start(library, dir).await);
                }
                let mut addresses = Vec::new();
                for node in &nodes {
                    addresses.push(node.address().await);
                }
                for step in &steps {
                    match *step {
                        Step::Edit {
                            node,
                            record,
                            delete,
                        } => {
                            let library = nodes[node].library.clone();
                            let mut marc = records[node * 20 + record].clone();
                            tokio::task::spawn_blocking(move || {
                                let id = marc.control("001").unwrap_or_default().trim().to_string();
                                if delete {
                                    // Deleting twice is refused, and changes nothing.
                                    let _ = library.delete(&id);
                                } else {
                                    marc.fields.retain(|f| f.tag() != "500");
                                    marc.push_data(jalin_protocol::marc::DataField::new(
                                        "500",
                                        ' ',
                                        ' ',
                                        &[('a', "Diubah.")],
                                    ));
                                    library.put(marc).expect("edits");
                                }
                            })
                            .await
                            .expect("edit task");
                            let own = nodes[node].library.id();
                            nodes[node]
                                .net
                                .announce(Some(own))
                                .await
                                .expect("announces");
                        }
                        Step::Connect(a, b) if a != b => {
                            nodes[a]
                                .net
                                .dial(addresses[b].clone())
                                .await
                                .expect("dials");
                        }
                        Step::Disconnect(a, b) if a != b => {
                            nodes[a]
                                .net
                                .disconnect(nodes[b].net.peer_id)
                                .await
                                .expect("runs");
                            nodes[b]
                                .net
                                .disconnect(nodes[a].net.peer_id)
                                .await
                                .expect("runs");
                        }
                        _ => {}
                    }
                }
                // Heal: a ring. Every catalog must reach every node, through others too.
                for i in 0..nodes.len() {
                    let next = (i + 1) % nodes.len();
                    nodes[i]
                        .net
                        .dial(addresses[next].clone())
                        .await
                        .expect("dials");
                }
                let owners: Vec<LibraryId> = nodes.iter().map(|n| n.library.id()).collect();
                eventually(
                    "every node holds every catalog as its owner does",
                    60,
                    || {
                        owners.iter().enumerate().all(|(o, owner)| {
                            let truth = nodes[o].digest(owner);
                            nodes.iter().all(|n| n.digest(owner) == truth)
                        })
                    },
                )
                .await;
                for node in nodes {
                    node.stop().await;
                }
            });
            Ok(())
        })
        .expect("every schedule converges");
}

/// A book as one node's union catalog shows it: each holding's library, record and call
/// number, and how it was grouped.
type Shown = Vec<(String, String, Option<String>, Option<String>)>;

fn shown(library: &Library, query: &str) -> Vec<(String, Shown, usize)> {
    library
        .search(query, 1, 20)
        .expect("searches")
        .hits
        .into_iter()
        .map(|hit| {
            let holdings = hit
                .holdings
                .iter()
                .map(|h| {
                    (
                        h.library.clone(),
                        h.record_id.clone(),
                        h.call_number.clone(),
                        h.matched.clone(),
                    )
                })
                .collect();
            (hit.title.to_lowercase(), holdings, hit.copies)
        })
        .collect()
}

/// Facet values with their counts, sorted by value.
type Counts = Vec<(String, u64)>;

/// How many books a search finds, and per year and per library, as the node counts them.
fn counted(library: &Library, query: &str) -> (usize, Counts, Counts) {
    let results = library.search(query, 1, 20).expect("searches");
    let facet = |name: &str| {
        let mut values: Vec<(String, u64)> = results.facets[name]
            .iter()
            .map(|f| (f.value.clone(), f.count))
            .collect();
        values.sort();
        values
    };
    (results.total, facet("year"), facet("library"))
}

/// The same book catalogued by two libraries (an LC record at A; re-keyed by hand into a
/// SLiMS CSV at B) shows once, with both holdings, identically on every node; members'
/// "same" / "not the same" assertions regroup it everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_book_at_two_libraries_shows_once_with_both_holdings_on_every_node() {
    let data = shared_data_or_skip!();
    let mut members = three_members();
    let (c_library, c_dir) = members.pop().expect("C");
    let (b_library, b_dir) = members.pop().expect("B");
    let (a_library, a_dir) = members.pop().expect("A");
    let id = consortium_of(&a_library);
    let file = data.join("marc/loc/loc-books-10k.mrc");
    let importer = a_library.clone();
    tokio::task::spawn_blocking(move || {
        importer
            .import(&Source::File(file), &ImportOptions::default(), |_| {})
            .expect("imports")
    })
    .await
    .expect("import task");
    // Keyed again at B, as a village library's SLiMS would export it: other case and
    // punctuation, the author's name in direct order, an ISBN-10 written with hyphens,
    // B's own call numbers and item codes; and a later edition that is another book.
    let csv = "title,gmd_name,edition,isbn_issn,publisher_name,publish_year,collation,series_title,call_number,language_name,place_name,classification,notes,image,sor,authors,topics,item_code\n\
        \"THE SKY PILOT.\",Text,,,Revell,1899,300 hlm.,,F CON s,English,Chicago,,,,,<Ralph Connor>,,<B0001><B0002>\n\
        \"The sky pilot\",Text,,,Grosset,1925,300 hlm.,,F CON s 1925,English,New York,,,,,<Ralph Connor>,,<B0003>\n\
        \"Native Americans of the Northwest coast\",Text,,1-56006-691-1,Lucent,2001,96 hlm.,,979.5 JON n,English,San Diego,,,,,<Jones, Veda Boyd>,,<B0004>\n";
    let csv_path = b_dir.path().join("rekeyed.csv");
    std::fs::write(&csv_path, csv).expect("writes the CSV");
    let importer = b_library.clone();
    tokio::task::spawn_blocking(move || {
        let report = importer
            .import(&Source::File(csv_path), &ImportOptions::default(), |_| {})
            .expect("imports");
        assert_eq!(report.added, 3, "{report:?}");
    })
    .await
    .expect("import task");
    let (a_id, b_id) = (a_library.id(), b_library.id());
    let a = start(a_library, a_dir).await;
    let b = start(b_library, b_dir).await;
    let c = start(c_library, c_dir).await;
    b.net.dial(a.address().await).await.expect("dials");
    c.net.dial(b.address().await).await.expect("dials");
    let nodes = [&a, &b, &c];
    for node in nodes {
        for (owner, ns) in [(&a, a_id), (&b, b_id)] {
            let target = owner.digest(&ns);
            eventually("both catalogs everywhere", 120, || {
                node.digest(&ns) == target
            })
            .await;
        }
        eventually("both catalogs searchable", 60, || {
            node.library.index().len() == 10_003
        })
        .await;
    }

    let (a_hex, b_hex) = (a_id.to_hex(), b_id.to_hex());
    let sky = |node: &Node| {
        let mut found = shown(&node.library, "title:\"sky pilot\"");
        found.sort();
        found
    };
    let at_a = sky(&a);
    // The 1899 book once, held at A and B (B's two items and A's record: 3 copies);
    // the 1925 edition apart, at B only.
    assert_eq!(at_a.len(), 2, "{at_a:#?}");
    let grouped = at_a
        .iter()
        .find(|(_, holdings, _)| holdings.len() == 2)
        .expect("the 1899 book grouped");
    let libraries: Vec<&str> = grouped.1.iter().map(|h| h.0.as_str()).collect();
    assert!(libraries.contains(&a_hex.as_str()) && libraries.contains(&b_hex.as_str()));
    assert!(grouped.1.iter().any(|h| h.2.as_deref() == Some("F CON s")));
    assert!(grouped.1.iter().any(|h| h.3.as_deref() == Some("title")));
    assert_eq!(grouped.2, 3);
    let alone = at_a
        .iter()
        .find(|(_, holdings, _)| holdings.len() == 1)
        .expect("the 1925 edition");
    assert_eq!(alone.1[0].0, b_hex);
    for node in [&b, &c] {
        assert_eq!(sky(node), at_a, "another node groups otherwise");
    }
    // Books, not records: three records, two books, in the total and every facet, on
    // every node.
    let mut by_library = vec![(a_hex.clone(), 1), (b_hex.clone(), 2)];
    by_library.sort();
    let expected = (
        2,
        vec![("1899".to_string(), 1), ("1925".to_string(), 1)],
        by_library,
    );
    for node in nodes {
        assert_eq!(counted(&node.library, "title:\"sky pilot\""), expected);
    }
    // By identifier: the ISBN-10 keyed at B is the LC record's ISBN-13.
    for node in nodes {
        let found = shown(&node.library, "isbn:9781560066910");
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].1.len(), 2);
        assert!(found[0]
            .1
            .iter()
            .any(|h| h.3.as_deref() == Some("identifier")));
    }
    // A search matching only B's words still shows A's holding.
    let by_call = shown(&c.library, "\"sky pilot\" chicago revell");
    assert!(by_call.iter().any(|(_, h, _)| h.len() == 2), "{by_call:#?}");

    // C says A's and B's 1899 records are not the same book, and B's 1925 record is the
    // same book as A's: every node regroups.
    let a_1899 = grouped
        .1
        .iter()
        .find(|h| h.0 == a_hex)
        .expect("A's record")
        .1
        .clone();
    let b_1899 = grouped
        .1
        .iter()
        .find(|h| h.0 == b_hex)
        .expect("B's record")
        .1
        .clone();
    let b_1925 = alone.1[0].1.clone();
    let asserter = c.library.clone();
    let (a_1899, b_1899_moved, b_1925_moved) = (a_1899, b_1899.clone(), b_1925.clone());
    tokio::task::spawn_blocking(move || {
        let (b_1899, b_1925) = (b_1899_moved, b_1925_moved);
        let reference = |library: LibraryId, record_id: &str| {
            jalin_protocol::consortium::assertion::RecordRef {
                library,
                record_id: record_id.to_string(),
            }
        };
        asserter
            .consortia()
            .assert_match(
                &id,
                reference(a_id, &a_1899),
                reference(b_id, &b_1899),
                false,
                T + 5_000,
            )
            .expect("asserts");
        asserter
            .consortia()
            .assert_match(
                &id,
                reference(b_id, &b_1925),
                reference(a_id, &a_1899),
                true,
                T + 5_001,
            )
            .expect("asserts");
    })
    .await
    .expect("assert task");
    c.net.announce(None).await.expect("announces");
    for node in nodes {
        eventually("the assertions everywhere", 30, || {
            let found = sky(node);
            found.len() == 2
                && found.iter().any(|(_, holdings, _)| {
                    holdings.len() == 2
                        && holdings.iter().any(|h| h.1 == b_1925)
                        && holdings.iter().any(|h| h.3.as_deref() == Some("asserted"))
                })
                && found
                    .iter()
                    .any(|(_, holdings, _)| holdings.len() == 1 && holdings[0].1 == b_1899)
        })
        .await;
    }
    assert_eq!(sky(&b), sky(&a));
    assert_eq!(sky(&c), sky(&a));
    // Split and joined otherwise: still two books, now A's 1899 record with B's 1925 one
    // (both years) and B's 1899 record alone.
    for node in nodes {
        let (total, years, _) = counted(&node.library, "title:\"sky pilot\"");
        assert_eq!(total, 2);
        assert_eq!(
            years,
            vec![("1899".to_string(), 2), ("1925".to_string(), 1)]
        );
    }
    for node in [a, b, c] {
        node.stop().await;
    }
}

/// A member behind NAT (no address of its own: it listens only through the consortium's
/// relay) is reached through the relay, and its catalog reaches another member; the relay
/// serves members only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_reachable_only_through_the_relay_is_reached_through_it() {
    // The relay, for the members of a consortium whose documents it is given.
    let mut libraries = members(2);
    let (b_library, b_dir) = libraries.pop().expect("B");
    let (a_library, a_dir) = libraries.pop().expect("A");
    let documents = a_library
        .consortia()
        .export(&consortium_of(&a_library))
        .expect("exports");
    let relay = jalin_tests::fixtures::Relay::start(&documents).await;
    assert_eq!(relay.members, 2);
    let relay_address = relay.address.clone();

    // A: no listen address of its own, only the relay (reopened with it configured).
    let a_id = a_library.id();
    drop(a_library);
    let mut a_data = jalin_node::config::DataDir::open(a_dir.path()).expect("opens");
    a_data.config.network.relays = vec![relay_address.to_string()];
    a_data.config.network.mdns = false;
    let a_library = Arc::new(Library::open(a_data).expect("opens"));
    let importer = a_library.clone();
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cli/demo/loc-indonesia-sample.mrc");
    tokio::task::spawn_blocking(move || {
        importer
            .import(&Source::File(sample), &ImportOptions::default(), |_| {})
            .expect("imports")
    })
    .await
    .expect("import task");
    let a = start_on(a_library, a_dir, Vec::new()).await;
    let circuit = circuit_address(&a).await;
    assert!(
        circuit.to_string().starts_with(&relay_address.to_string()),
        "{circuit}"
    );
    let b = start(b_library, b_dir).await;
    b.net.dial(circuit.clone()).await.expect("dials");
    let target = a.digest(&a_id);
    eventually("A's catalog at B, through the relay", 60, || {
        b.digest(&a_id) == target
    })
    .await;

    // An outsider with a valid key (and the consortium's documents) gets nowhere: the
    // relay refuses it, so it cannot reach A through it.
    // (No mDNS for it: it would find B on this machine and try B directly, which B
    // refuses, but the attempt would show on the outsider's side for a moment.)
    let (o_dir, mut o_data) = new_library(100);
    o_data.config.network.mdns = false;
    let o_library = Arc::new(Library::open(o_data).expect("opens"));
    o_library.consortia().import(&documents).expect("imports");
    let o = start(o_library, o_dir).await;
    // Its own node does not even dial a library it shares no consortium with.
    assert!(o.net.dial(circuit).await.is_err());
    never_connected(&[&a, &b], &o, true, 2).await;
    assert!(!o
        .library
        .store()
        .namespaces()
        .expect("namespaces")
        .contains(&a_id));
    for node in [a, b, o] {
        node.stop().await;
    }
    relay.stop().await;
}

/// Five members in a chain (A-B-C-D-E): records imported at A are found by search on all
/// five; an edit and a deletion reach all five; A goes offline and its catalog still
/// reaches a sixth library that joins afterwards and knows only E; a node restarted with
/// a sync half done finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_members_search_edit_delete_and_an_offline_owner() {
    let data = shared_data_or_skip!();
    let libraries = members(5);
    let (f_dir, f_data) = new_library(100);
    let f_library = Arc::new(Library::open(f_data).expect("opens"));
    let a_library = libraries[0].0.clone();
    let id = consortium_of(&a_library);
    let a_id = a_library.id();
    let file = data.join("marc/loc/loc-indonesia-3147.mrc");
    let importer = a_library.clone();
    tokio::task::spawn_blocking(move || {
        importer
            .import(&Source::File(file), &ImportOptions::default(), |_| {})
            .expect("imports")
    })
    .await
    .expect("import task");
    drop(a_library);
    let mut nodes = Vec::new();
    for (library, dir) in libraries {
        nodes.push(start(library, dir).await);
    }
    for i in 1..nodes.len() {
        let address = nodes[i - 1].address().await;
        nodes[i].net.dial(address).await.expect("dials");
    }
    let at_a = |query: &str| {
        nodes[0]
            .library
            .search(query, 1, 5)
            .expect("searches")
            .total
    };
    let indonesia = at_a("indonesia");
    assert!(indonesia > 1000);
    for node in &nodes {
        eventually("A's records searchable on every node", 120, || {
            node.library
                .search("indonesia", 1, 5)
                .expect("searches")
                .total
                == indonesia
        })
        .await;
    }

    // An edit at A: a word no record has, found everywhere.
    let editor = nodes[0].library.clone();
    let (edited, deleted, deleted_title) = tokio::task::spawn_blocking(move || {
        let mut records = editor.store().records();
        let first = records.next().expect("a record").expect("reads");
        let second = records.next().expect("a record").expect("reads");
        add_note(&editor, &first.record_id, "Zamrudkhatulistiwa.");
        let doomed = editor.get(&second.record_id).expect("reads");
        let title = doomed
            .and_then(|(_, r)| r)
            .expect("a record")
            .description
            .title;
        let query = format!("title:\"{}\"", title.replace('"', ""));
        let before = editor.search(&query, 1, 50).expect("searches").hits;
        assert!(before.iter().any(|h| h.record_id == second.record_id));
        editor.delete(&second.record_id).expect("deletes");
        (first.record_id, second.record_id, title)
    })
    .await
    .expect("edit task");
    nodes[0].net.announce(Some(a_id)).await.expect("announces");
    for node in &nodes {
        eventually("the edit searchable everywhere", 60, || {
            let found = node
                .library
                .search("zamrudkhatulistiwa", 1, 5)
                .expect("searches");
            found.total == 1 && found.hits[0].record_id == edited
        })
        .await;
        eventually("the deletion everywhere", 60, || {
            node.library
                .search("indonesia", 1, 5)
                .expect("searches")
                .total
                == at_a("indonesia")
                && node.digest(&a_id) == nodes[0].digest(&a_id)
        })
        .await;
        // The deleted record is found by its title on no node.
        let query = format!("title:\"{}\"", deleted_title.replace('"', ""));
        let hits = node.library.search(&query, 1, 50).expect("searches").hits;
        assert!(hits.iter().all(|h| h.record_id != deleted), "{hits:?}");
        let (records, tombstones) = node.library.store().count_of(&a_id).expect("counts");
        assert_eq!((records, tombstones), (3146, 1));
    }

    // F joins while A is online (A accepts), then A goes offline; F knows only E.
    let a_consortia = &nodes[0].library.consortia();
    let ticket = a_consortia
        .invite(&id, Role::Member, T + 90_000_000, "", Vec::new(), T + 100)
        .expect("invites")
        .to_text();
    let acceptance = f_library
        .consortia()
        .join(&ticket, Vec::new(), T + 101)
        .expect("joins")
        .to_text();
    a_consortia.accept(&acceptance, T + 102).expect("accepts");
    f_library
        .consortia()
        .import(&a_consortia.export(&id).expect("exports"))
        .expect("imports");
    nodes[0].net.members_changed().await.expect("runs");
    nodes[0].net.announce(None).await.expect("announces");
    let f_key = f_library.id();
    for node in &nodes[1..] {
        eventually("every member knows F", 60, || {
            node.library
                .consortia()
                .members(&id)
                .expect("members")
                .members
                .contains_key(&f_key)
        })
        .await;
        node.net.members_changed().await.expect("runs");
    }
    let target = nodes[0].digest(&a_id);
    let a = nodes.remove(0);
    a.stop().await;

    // F's sync stops half way (a restart): the first half of A's shards, as E serves them.
    let e_store = &nodes[3].library.store();
    let half: Vec<(u16, Vec<jalin_node::store::SignedChange>)> = (0..128u16)
        .map(|shard| {
            (
                shard,
                e_store.changes_since(&a_id, shard, &[]).expect("serves"),
            )
        })
        .filter(|(_, changes)| !changes.is_empty())
        .collect();
    for result in f_library.apply_remote_many(&a_id, &half) {
        result.expect("applies");
    }
    let (partial, _) = f_library.store().count_of(&a_id).expect("counts");
    assert!(partial > 0 && partial < 3146, "{partial}");
    assert_ne!(
        f_library.store().namespace_digest(&a_id).expect("digest"),
        target
    );
    let f_path = f_dir.path().to_path_buf();
    drop(f_library);
    let f_library = Arc::new(
        Library::open(jalin_node::config::DataDir::open(&f_path).expect("opens")).expect("opens"),
    );
    let f = start(f_library, f_dir).await;
    f.net.dial(nodes[3].address().await).await.expect("dials");
    eventually("A's catalog at F, through E, with A offline", 120, || {
        f.digest(&a_id) == target
    })
    .await;
    eventually("A's records searchable at F", 60, || {
        f.library
            .search("zamrudkhatulistiwa", 1, 5)
            .expect("searches")
            .total
            == 1
    })
    .await;
    f.stop().await;
    for node in nodes {
        node.stop().await;
    }
}

/// A node of its own making under `key`, speaking only the sync protocol: what a rogue
/// member or an outsider could run.
fn hand_made_node(
    key: &ed25519_dalek::SigningKey,
) -> libp2p::Swarm<request_response::Behaviour<Codec<SyncRequest, SyncResponse>>> {
    let mut secret = key.to_bytes();
    let keypair = libp2p::identity::Keypair::ed25519_from_bytes(&mut secret).expect("key");
    libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .expect("tcp")
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(
                Codec::<SyncRequest, SyncResponse>::new(
                    64 * 1024,
                    32 * 1024 * 1024,
                    Arc::new(Traffic::default()),
                ),
                [(
                    libp2p::StreamProtocol::new("/jalin/sync/2"),
                    request_response::ProtocolSupport::Full,
                )],
                request_response::Config::default(),
            )
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// What a forging member's node serves for a `Changes` request: `(shard, the asker's
/// heads)` to the changes sent back.
type Serve<'a> = &'a dyn Fn(u16, &[[u8; 32]]) -> Vec<SignedChange>;

/// Drives a hand-made member node (`swarm`, under a member's own identity): sends `victim`
/// a `Changed` notice for `namespace`'s `shard`, answers the `Changes` request that
/// follows with `serve`, and returns once that answer is sent.
async fn serve_after_notice(
    swarm: &mut libp2p::Swarm<request_response::Behaviour<Codec<SyncRequest, SyncResponse>>>,
    victim: libp2p::PeerId,
    namespace: LibraryId,
    shard: u16,
    serve: Serve<'_>,
) {
    swarm.behaviour_mut().send_request(
        &victim,
        SyncRequest::Changed {
            namespace: Some(namespace),
            shards: vec![(shard, vec![serde_bytes::ByteArray::new([0xab; 32])].into())].into(),
        },
    );
    let mut answered = None;
    let work = async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::Behaviour(request_response::Event::Message {
                    message:
                        request_response::Message::Request {
                            request,
                            channel,
                            request_id,
                        },
                    ..
                }) => {
                    let response = match request {
                        SyncRequest::Changes {
                            namespace: asked,
                            shards,
                            ..
                        } if asked == namespace => {
                            answered = Some(request_id);
                            SyncResponse::Changes {
                                namespace,
                                shards: shards
                                    .into_iter()
                                    .map(|(s, have)| {
                                        let have: Vec<[u8; 32]> =
                                            have.into_iter().map(|h| h.into_array()).collect();
                                        (s, serve(s, &have))
                                    })
                                    .collect(),
                                rest: Default::default(),
                            }
                        }
                        SyncRequest::Hello => SyncResponse::Hello {
                            catalogs: Vec::new(),
                            consortia: Vec::new(),
                            time_ms: 0,
                        },
                        _ => SyncResponse::Refused {
                            reason: "not served here".into(),
                        },
                    };
                    let _ = swarm.behaviour_mut().send_response(channel, response);
                }
                SwarmEvent::Behaviour(request_response::Event::ResponseSent {
                    request_id, ..
                }) if Some(request_id) == answered => return,
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), work)
        .await
        .expect("the victim asked for the changes of the notice's shard");
}

/// A member's own node forging another library's changes over the network: each forgery
/// (a change built on the owner's document but signed by the forger; the same change under
/// an envelope of the owner's for another change; an owner's change altered) is refused
/// by the member that takes it, which stores nothing of it, and still takes the owner's
/// genuine change from the same peer afterwards. (An accepted forgery would leave the
/// victim's copy of the owner's catalog apart from the owner's for good: the final digest
/// comparison would never hold.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_forging_another_librarys_changes_is_refused_over_the_network() {
    let mut libraries = members(3);
    let (m_library, _m_dir) = libraries.pop().expect("three");
    let (v_library, v_dir) = libraries.pop().expect("three");
    // A's data dir outlives its node: A edits after its node stops.
    let (a_library, _a_dir) = libraries.pop().expect("three");
    let a_id = a_library.id();
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cli/demo/loc-indonesia-sample.mrc");
    let importer = a_library.clone();
    tokio::task::spawn_blocking(move || {
        importer
            .import(&Source::File(sample), &ImportOptions::default(), |_| {})
            .expect("imports")
    })
    .await
    .expect("import task");
    let a = start(a_library.clone(), tempfile::tempdir().expect("temp dir")).await;
    let v = start(v_library.clone(), v_dir).await;
    v.net.dial(a.address().await).await.expect("dials");
    let a_digest = || a_library.store().namespace_digest(&a_id).expect("digest");
    eventually("A's catalog at V", 60, || v.digest(&a_id) == a_digest()).await;
    // A goes offline: from now on V hears of A's catalog only from M.
    a.stop().await;
    let records_at_v = v_library.store().count_of(&a_id).expect("counts");

    let mut m = hand_made_node(&m_library.data().key);
    m.dial(v.address().await).expect("dials");

    // A shard of A's, and a change on top of it made by M (as M could, holding A's catalog).
    let shard = (0..SHARD_COUNT)
        .find(|s| {
            !a_library
                .store()
                .changes_since(&a_id, *s, &[])
                .expect("changes")
                .is_empty()
        })
        .expect("a shard of A's");
    let genuine = a_library
        .store()
        .changes_since(&a_id, shard, &[])
        .expect("changes");
    // Under A's actor id, as A's own changes are: only the signatures tell them apart.
    let mut doc = automerge::AutoCommit::new();
    doc.set_actor(automerge::ActorId::from(a_id.as_bytes().to_vec()));
    for change in &genuine {
        doc.load_incremental(&change.bytes)
            .expect("loads A's change");
    }
    doc.put(automerge::ROOT, "forged", "Buku palsu")
        .expect("writes");
    let forged = doc.get_last_local_change().expect("M's change");
    let forged_bytes = forged.raw_bytes().to_vec();
    let m_key = m_library.data().key.clone();
    let m_id = m_library.store().library();
    let attempts: Vec<(&str, Vec<SignedChange>)> = vec![
        (
            "signed by the forger",
            vec![SignedChange {
                // A valid signature of M's, over A's namespace.
                envelope: ChangeEnvelope {
                    author: m_id,
                    namespace: a_id,
                    shard,
                    change_hash: forged.hash().0,
                    signature: jalin_protocol::signing::sign(
                        &m_key,
                        jalin_protocol::signing::Domain::CatalogChange,
                        &ChangeEnvelope::signed_bytes(&m_id, &a_id, shard, &forged.hash().0),
                    ),
                },
                bytes: forged_bytes.clone(),
            }],
        ),
        (
            "under the owner's envelope of another change",
            vec![SignedChange {
                envelope: genuine[genuine.len() - 1].envelope.clone(),
                bytes: forged_bytes,
            }],
        ),
        ("an owner's change altered", {
            let mut altered = genuine.clone();
            let last = altered[0].bytes.len() - 1;
            altered[0].bytes[last] ^= 0x55;
            altered
        }),
    ];
    for (what, batch) in attempts {
        serve_after_notice(&mut m, v.net.peer_id, a_id, shard, &|_, _| batch.clone()).await;
        assert_eq!(
            v_library.store().count_of(&a_id).expect("counts"),
            records_at_v,
            "{what}"
        );
    }

    // A's genuine edit, passed on by M (any member serves any catalog it holds), is taken.
    let editor = a_library.clone();
    let edited = tokio::task::spawn_blocking(move || {
        let first = editor
            .store()
            .records()
            .next()
            .expect("a record")
            .expect("reads");
        add_note(&editor, &first.record_id, "Kedungwaringin.")
    })
    .await
    .expect("edit task");
    let edited_shard = jalin_node::store::shard_of(&edited);
    let owner = a_library.clone();
    serve_after_notice(&mut m, v.net.peer_id, a_id, edited_shard, &|s, have| {
        owner
            .store()
            .changes_since(&a_id, s, have)
            .expect("changes")
    })
    .await;
    eventually("A's genuine edit at V, and nothing forged", 30, || {
        v.digest(&a_id) == a_digest()
    })
    .await;
    eventually("A's genuine edit searchable at V", 30, || {
        v_library
            .search("kedungwaringin", 1, 5)
            .expect("searches")
            .total
            == 1
    })
    .await;
    v.stop().await;
}

/// Imports a file into a library, off the async workers.
async fn import_file(library: &Arc<Library>, file: std::path::PathBuf) {
    let importer = library.clone();
    tokio::task::spawn_blocking(move || {
        importer
            .import(&Source::File(file), &ImportOptions::default(), |_| {})
            .expect("imports")
    })
    .await
    .expect("import task");
}

/// The OAI-PMH sets a library's provider lists.
pub(crate) fn oai_sets(library: &Library) -> String {
    jalin_node::oai::Provider::new(library, "http://localhost/oai".into())
        .expect("provider")
        .respond(&[("verb".into(), "ListSets".into())], T)
}

/// What a library holds of another's catalog: in its store, its index, its OAI sets.
fn holds_any_of(library: &Library, other: &LibraryId) -> Vec<&'static str> {
    let mut places = Vec::new();
    if library
        .store()
        .namespaces()
        .expect("namespaces")
        .contains(other)
    {
        places.push("store");
    }
    let only = other.to_hex();
    // Every record: everything but a word no record has.
    let all = jalin_protocol::cql::parse("cql.serverChoice <> zzqxjw")
        .expect("CQL")
        .root;
    let query = library.index().cql_query(&all).expect("served");
    let (_, found) = library
        .index()
        .search_records(query.as_ref(), 0, 100_000)
        .expect("searches");
    if found
        .iter()
        .any(|(owner, _)| owner.as_deref() == Some(only.as_str()))
    {
        places.push("index");
    }
    if oai_sets(library).contains(&only) {
        places.push("OAI-PMH sets");
    }
    places
}

/// A consortium `founder` makes with a new library alone, by text as `jalin` would: the
/// new library, its data dir, and the consortium.
fn second_consortium(founder: &Library, name: &str) -> (Arc<Library>, tempfile::TempDir, Hash32) {
    let (dir, data) = new_library(100);
    let joiner = Arc::new(Library::open(data).expect("opens"));
    let id = founder.consortia().create(name, T + 100).expect("creates");
    let ticket = founder
        .consortia()
        .invite(&id, Role::Member, T + 3_600_000, "", Vec::new(), T + 101)
        .expect("invites")
        .to_text();
    let acceptance = joiner
        .consortia()
        .join(&ticket, Vec::new(), T + 102)
        .expect("joins")
        .to_text();
    founder
        .consortia()
        .accept(&acceptance, T + 103)
        .expect("accepts");
    joiner
        .consortia()
        .import(&founder.consortia().export(&id).expect("exports"))
        .expect("imports");
    (joiner, dir, id)
}

/// The trust boundary, tried as a rogue member would: A founds C with R and B; R founds a
/// side consortium F with an outsider N. Nothing of N reaches A (nor of A or B reaches N),
/// A never connects to N, and A never holds F. Then A removes R: within 10 s every member
/// has cut R off and forgotten its catalog; what R writes after reaches no one, and
/// nothing A writes after reaches R.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_side_consortium_leaks_nothing_and_a_removal_cuts_the_member_off() {
    let data = shared_data_or_skip!();
    let mut c_members = members(3);
    let (b_library, b_dir) = c_members.pop().expect("B");
    let (r_library, r_dir) = c_members.pop().expect("R");
    let (a_library, a_dir) = c_members.pop().expect("A");
    let c = consortium_of(&a_library);
    let (n_library, n_dir, f) = second_consortium(&r_library, "Jaringan Samping");
    let marc = data.join("marc/evergreen");
    import_file(&a_library, marc.join("FSL.marc")).await;
    import_file(&r_library, marc.join("oss.marc")).await;
    import_file(&n_library, marc.join("hebrew.marc")).await;
    let (a_id, r_id, b_id, n_id) = (
        a_library.id(),
        r_library.id(),
        b_library.id(),
        n_library.id(),
    );

    let a = start(a_library, a_dir).await;
    let r = start(r_library, r_dir).await;
    let b = start(b_library, b_dir).await;
    let n = start(n_library, n_dir).await;
    r.net.dial(a.address().await).await.expect("dials");
    b.net.dial(a.address().await).await.expect("dials");
    n.net.dial(r.address().await).await.expect("dials");
    // N tries A directly too, with the address R's node would give it.
    let _ = n.net.dial(a.address().await).await;

    eventually("R's catalog at A and B", 60, || {
        a.digest(&r_id) == r.digest(&r_id) && b.digest(&r_id) == r.digest(&r_id)
    })
    .await;
    eventually("A's catalog at R and B", 60, || {
        r.digest(&a_id) == a.digest(&a_id) && b.digest(&a_id) == a.digest(&a_id)
    })
    .await;
    eventually("N's catalog at R, R's at N", 60, || {
        r.digest(&n_id) == n.digest(&n_id) && n.digest(&r_id) == r.digest(&r_id)
    })
    .await;
    // Rounds of catch-up in both directions have run; give any leak a window to show.
    r.net.catch_up().await.expect("catches up");
    n.net.catch_up().await.expect("catches up");
    a.net.catch_up().await.expect("catches up");
    never_connected(&[&a, &b], &n, false, 3).await;
    for (holder, name, others) in [
        (&a, "A", vec![(n_id, "N")]),
        (&b, "B", vec![(n_id, "N")]),
        (&n, "N", vec![(a_id, "A"), (b_id, "B")]),
    ] {
        for (other, other_name) in others {
            let places = holds_any_of(&holder.library, &other);
            assert!(
                places.is_empty(),
                "{name} holds {other_name}'s catalog in {places:?}"
            );
        }
    }
    let held: Vec<Hash32> = a.library.consortia().list().iter().map(|s| s.id).collect();
    assert_eq!(held, vec![c], "A holds only its own consortium, not F");
    assert!(n.library.consortia().list().iter().any(|s| s.id == f));
    assert!(
        !n.library.consortia().list().iter().any(|s| s.id == c),
        "N holds A's consortium"
    );
    // R, in both, holds both sides: it is the wall, not a bridge.
    assert!(holds_any_of(&r.library, &n_id).contains(&"store"));
    assert!(holds_any_of(&r.library, &a_id).contains(&"store"));

    // A removes R.
    a.library
        .consortia()
        .remove(&c, r_id, "tidak aktif", T + 1_000)
        .expect("removes");
    a.net.members_changed().await.expect("network");
    a.net.announce(None).await.expect("network");
    let removed_at = Instant::now();
    let connected = |node: &Node, peer: libp2p::PeerId| {
        let net = node.net.clone();
        async move { net.peers().await.expect("peers").contains(&peer) }
    };
    loop {
        let at_a = connected(&a, r.net.peer_id).await;
        let at_b = connected(&b, r.net.peer_id).await;
        if !at_a && !at_b {
            break;
        }
        assert!(
            removed_at.elapsed() < Duration::from_secs(10),
            "R still connected 10 s after its removal (to A: {at_a}, to B: {at_b})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eventually("R's catalog forgotten at A and B", 10, || {
        holds_any_of(&a.library, &r_id).is_empty() && holds_any_of(&b.library, &r_id).is_empty()
    })
    .await;

    // After the removal, neither side's writes cross.
    let a_record = a
        .library
        .store()
        .records_of(&a_id)
        .next()
        .expect("a record")
        .expect("reads")
        .record_id;
    let r_record = r
        .library
        .store()
        .records_of(&r_id)
        .next()
        .expect("a record")
        .expect("reads")
        .record_id;
    let (a_writer, r_writer) = (a.library.clone(), r.library.clone());
    tokio::task::spawn_blocking(move || {
        add_note(&a_writer, &a_record, "setelah R dikeluarkan");
        add_note(&r_writer, &r_record, "R menulis setelah dikeluarkan");
    })
    .await
    .expect("writes");
    a.net.announce(Some(a_id)).await.expect("network");
    r.net.announce(Some(r_id)).await.expect("network");
    let a_digest_at_r = r.digest(&a_id);
    eventually("A's write at B", 30, || b.digest(&a_id) == a.digest(&a_id)).await;
    let _ = r.net.dial(a.address().await).await;
    let _ = r.net.dial(b.address().await).await;
    never_connected(&[&a, &b], &r, false, 3).await;
    assert_eq!(
        r.digest(&a_id),
        a_digest_at_r,
        "R got A's write after its removal"
    );
    for (holder, name) in [(&a, "A"), (&b, "B")] {
        let places = holds_any_of(&holder.library, &r_id);
        assert!(places.is_empty(), "{name} holds R's catalog in {places:?}");
    }
    for node in [a, r, b, n] {
        node.stop().await;
    }
}

/// A member that leaves tells the members it is connected to before it cuts them off
/// (`SyncRequest::Left`): once out it no longer serves the consortium's documents, so
/// otherwise they would never learn it left, keep its catalog and keep dialling it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_leaves_is_known_to_have_left_and_is_forgotten() {
    let mut libraries = members(3);
    for (i, (library, _)) in libraries.iter().enumerate() {
        let library = library.clone();
        tokio::task::spawn_blocking(move || add_record(&library, i))
            .await
            .expect("writes");
    }
    let (leaver_library, leaver_dir) = libraries.pop().expect("L");
    let (b_library, b_dir) = libraries.pop().expect("B");
    let (a_library, a_dir) = libraries.pop().expect("A");
    let c = consortium_of(&a_library);
    let leaver_id = leaver_library.store().library();
    let a = start(a_library, a_dir).await;
    let b = start(b_library, b_dir).await;
    let leaver = start(leaver_library, leaver_dir).await;
    leaver.net.dial(a.address().await).await.expect("dials");
    leaver.net.dial(b.address().await).await.expect("dials");
    b.net.dial(a.address().await).await.expect("dials");
    eventually("the leaver's catalog at A and B", 30, || {
        a.digest(&leaver_id) == leaver.digest(&leaver_id)
            && b.digest(&leaver_id) == leaver.digest(&leaver_id)
    })
    .await;

    let going = leaver.library.clone();
    tokio::task::spawn_blocking(move || going.consortia().leave(&c, T + 5_000))
        .await
        .expect("leave task")
        .expect("leaves");
    leaver.net.members_changed().await.expect("network");
    let left_at = Instant::now();
    let gone = |node: &Node| {
        node.library
            .consortia()
            .members(&c)
            .is_ok_and(|state| state.former.contains_key(&leaver_id))
    };
    loop {
        let a_peers = a.net.peers().await.expect("peers");
        let b_peers = b.net.peers().await.expect("peers");
        if gone(&a)
            && gone(&b)
            && !a_peers.contains(&leaver.net.peer_id)
            && !b_peers.contains(&leaver.net.peer_id)
            && holds_any_of(&a.library, &leaver_id).is_empty()
            && holds_any_of(&b.library, &leaver_id).is_empty()
        {
            break;
        }
        assert!(
            left_at.elapsed() < Duration::from_secs(10),
            "10 s after leaving: known gone at A {}, at B {}; connected to A {}, to B {}",
            gone(&a),
            gone(&b),
            a_peers.contains(&leaver.net.peer_id),
            b_peers.contains(&leaver.net.peer_id)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for node in [a, b, leaver] {
        node.stop().await;
    }
}

/// Adds a record of the library's own, numbered `n`.
fn add_record(library: &Library, n: usize) -> String {
    let mut marc = jalin_protocol::marc::MarcRecord::new(jalin_protocol::marc::Leader::new_book());
    marc.push_control("001", &format!("L{n}"));
    marc.push_data(jalin_protocol::marc::DataField::new(
        "245",
        '0',
        '0',
        &[('a', &format!("Buku perpustakaan {n}"))],
    ));
    library.put(marc).expect("writes")
}

/// A hand-made node under `key` (what a hostile peer could run: it dials whom it likes):
/// dials `address`, sends `requests` one after another, and returns each answer, or why
/// none came.
async fn probe(
    key: &ed25519_dalek::SigningKey,
    address: libp2p::Multiaddr,
    requests: Vec<SyncRequest>,
) -> Vec<Result<SyncResponse, String>> {
    let mut swarm = hand_made_node(key);
    let target = address
        .iter()
        .find_map(|p| match p {
            libp2p::multiaddr::Protocol::P2p(peer) => Some(peer),
            _ => None,
        })
        .expect("the address names its peer");
    swarm.dial(address).expect("dials");
    let mut out = Vec::new();
    for request in requests {
        swarm.behaviour_mut().send_request(&target, request);
        let answer = async {
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::Behaviour(request_response::Event::Message {
                        message: request_response::Message::Response { response, .. },
                        ..
                    }) => return Ok(response),
                    SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                        error,
                        ..
                    }) => return Err(error.to_string()),
                    _ => {}
                }
            }
        };
        out.push(
            tokio::time::timeout(Duration::from_secs(20), answer)
                .await
                .unwrap_or_else(|_| Err("no answer in 20 s".into())),
        );
    }
    out
}

/// A library in two consortia is a wall between them: B (a member of C with A) asks A,
/// with a node of its own making, for what A has of its other consortium G (with X), and
/// is refused each time; an outsider's node is not answered at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outsiders_and_removed_members_are_refused_by_the_node() {
    let data = shared_data_or_skip!();
    let mut c_members = members(2);
    let (b_library, b_dir) = c_members.pop().expect("B");
    let (a_library, a_dir) = c_members.pop().expect("A");
    let c = consortium_of(&a_library);
    let (x_library, x_dir, g) = second_consortium(&a_library, "Jaringan Lain");
    let marc = data.join("marc/evergreen");
    import_file(&a_library, marc.join("FSL.marc")).await;
    import_file(&x_library, marc.join("hebrew.marc")).await;
    let (a_id, x_id) = (a_library.id(), x_library.store().library());
    let b_key = b_library.data().key.clone();
    let a = start(a_library, a_dir).await;
    let x = start(x_library, x_dir).await;
    x.net.dial(a.address().await).await.expect("dials");
    eventually("X's catalog at A", 60, || {
        a.digest(&x_id) == x.digest(&x_id)
    })
    .await;

    // B's own node is stopped: B asks with one of its own making.
    drop(b_library);
    drop(b_dir);
    let answers = probe(
        &b_key,
        a.address().await,
        vec![
            SyncRequest::Hello,
            SyncRequest::Summary { namespace: x_id },
            SyncRequest::Changes {
                namespace: x_id,
                shards: vec![(0, Default::default()), (1, Default::default())].into(),
                max_bytes: 0,
            },
            SyncRequest::Documents { consortium: g },
            SyncRequest::Summary { namespace: a_id },
            SyncRequest::Documents { consortium: c },
        ],
    )
    .await;
    match &answers[0] {
        Ok(SyncResponse::Hello {
            catalogs,
            consortia,
            ..
        }) => {
            let catalogs: Vec<LibraryId> = catalogs.iter().map(|(id, _, _)| *id).collect();
            assert_eq!(catalogs, vec![a_id], "only A's catalog is listed to B");
            let consortia: Vec<Hash32> = consortia.iter().map(|(id, _)| *id).collect();
            assert_eq!(consortia, vec![c], "only C is listed to B");
        }
        other => panic!("Hello: {other:?}"),
    }
    for (what, answer) in ["Summary of X", "Changes of X", "Documents of G"]
        .iter()
        .zip(&answers[1..4])
    {
        assert!(
            matches!(answer, Ok(SyncResponse::Refused { .. })),
            "{what}: {answer:?}"
        );
    }
    assert!(
        matches!(answers[4], Ok(SyncResponse::Summary { .. })),
        "{:?}",
        answers[4]
    );
    assert!(
        matches!(answers[5], Ok(SyncResponse::Documents { .. })),
        "{:?}",
        answers[5]
    );

    // An outsider with a valid key gets no answer at all.
    let outsider = ed25519_dalek::SigningKey::from_bytes(&[77; 32]);
    let answers = probe(&outsider, a.address().await, vec![SyncRequest::Hello]).await;
    assert!(answers[0].is_err(), "{:?}", answers[0]);

    // Once A removes B, B's node of its own making is not answered either.
    a.library
        .consortia()
        .remove(&c, b_key_id(&b_key), "keluar", T + 1_000)
        .expect("removes");
    a.net.members_changed().await.expect("network");
    let answers = probe(&b_key, a.address().await, vec![SyncRequest::Hello]).await;
    assert!(answers[0].is_err(), "{:?}", answers[0]);
    a.stop().await;
    x.stop().await;
}

fn b_key_id(key: &ed25519_dalek::SigningKey) -> LibraryId {
    LibraryId::from_key(&key.verifying_key())
}

/// An edit saved in the librarian's web page reaches a member by the changed-shard path,
/// as one made through the API does: the member fetches the shards named in the
/// `Changed` notice and starts no full sync round (a `Hello`) for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_saved_in_the_browser_reaches_a_member_by_the_changed_shards() {
    // No periodic round during the test, and no second way to find each other (mDNS):
    // only announcements move the edits.
    let mut libraries = members_with(2, |_, data| {
        data.config.network.catch_up_s = 3_600;
        data.config.network.mdns = false;
    });
    let (b_library, b_dir) = libraries.pop().expect("B");
    let (a_library, a_dir) = libraries.pop().expect("A");
    let id = add_record(&a_library, 1);
    let a_id = a_library.id();
    let token = a_library.data().api_token.clone();
    let a = start_serving(a_library, a_dir).await;
    let b = start(b_library, b_dir).await;
    b.net.dial(a.address().await).await.expect("dials");
    eventually("A's catalog at B", 30, || {
        b.digest(&a_id) == a.digest(&a_id)
    })
    .await;
    let title_at_b = |b: &Node| {
        b.library
            .store()
            .get_of(&a_id, &id)
            .ok()
            .flatten()
            .and_then(|stored| jalin_node::library::decode(&stored))
            .map(|record| record.description.title)
    };
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");

    // Through the API.
    let mut marc = a
        .library
        .get(&id)
        .expect("reads")
        .expect("held")
        .1
        .expect("live")
        .marc;
    marc.fields.retain(|f| f.tag() != "245");
    marc.push_data(jalin_protocol::marc::DataField::new(
        "245",
        '0',
        '0',
        &[('a', "Sejarah Bandung lewat API")],
    ));
    let rounds = b.net.traffic.counts().rounds_started;
    let put = client
        .put(format!("{}/api/records/{id}", a.url()))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "marc": marc }))
        .send()
        .await
        .expect("PUT");
    assert_eq!(put.status(), 200);
    eventually("the API edit at B", 30, || {
        title_at_b(&b).is_some_and(|t| t.contains("lewat API"))
    })
    .await;
    assert_eq!(
        b.net.traffic.counts().rounds_started,
        rounds,
        "no round for the API edit"
    );

    // Through the web page, as a librarian's browser sends it.
    let login = client
        .post(format!("{}/login", a.url()))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .expect("POST");
    let cookie = crate::support::session_cookie(login.headers());
    let form = client
        .get(format!("{}/librarian/record/{id}/edit", a.url()))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("text");
    let csrf = crate::support::csrf_of(&form);
    let saved = client
        .post(format!("{}/librarian/record/{id}/edit", a.url()))
        .header("cookie", &cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("title", "Sejarah Bandung lewat peramban"),
            ("year", "1998"),
        ])
        .send()
        .await
        .expect("POST");
    assert!(saved.status().is_redirection(), "{}", saved.status());
    eventually("the browser's edit at B", 30, || {
        title_at_b(&b).is_some_and(|t| t.contains("lewat peramban"))
    })
    .await;
    assert_eq!(
        b.net.traffic.counts().rounds_started,
        rounds,
        "no round for the browser's edit"
    );
    for node in [a, b] {
        node.stop().await;
    }
}
