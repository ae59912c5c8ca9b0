//! The trust boundary as a property, over real libp2p nodes on loopback: five libraries
//! run random sequences of create, invite and join, remove, leave, role change, side
//! consortia (a consortium founded by a library that is a member elsewhere) and writes.
//! After each step has quieted, two nodes are connected only if they are current members
//! of a consortium together, and every node's union catalog (store and search index) is
//! exactly the catalogs of its co-members, each as its owner holds it. A library removed
//! or gone keeps what it held but gets nothing new, and nothing it writes after reaches
//! anyone.
//!
//! The test runs a few sequences (`JALIN_MEMBERSHIP_CASES`, default 3);
//! `tools/membership_property.sh` runs many more.

use crate::network::{start, Node, T};
use crate::support::new_library;
use jalin_node::library::Library;
use jalin_protocol::consortium::document::Hash32;
use jalin_protocol::consortium::log::Role;
use jalin_protocol::marc::{DataField, Leader, MarcRecord};
use jalin_protocol::signing::LibraryId;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NODES: usize = 5;
/// Consortia a sequence founds at most.
const CONSORTIA_MAX: usize = 3;

#[derive(Clone, Debug)]
enum Step {
    /// `by` founds a consortium (a side consortium when `by` is a member elsewhere).
    Create { by: usize },
    /// An admin of the `consortium`-th consortium invites `who`, who joins.
    Invite {
        consortium: usize,
        by: usize,
        who: usize,
    },
    /// An admin removes `who`.
    Remove {
        consortium: usize,
        by: usize,
        who: usize,
    },
    /// `who` leaves.
    Leave { consortium: usize, who: usize },
    /// An admin makes `who` an admin, or a member again.
    Role {
        consortium: usize,
        by: usize,
        who: usize,
        admin: bool,
    },
    /// `by` adds a record to its own catalog (whatever its standing).
    Write { by: usize },
}

fn step() -> impl Strategy<Value = Step> {
    // Which library acts or is acted on, and which consortium, is picked among those that
    // may (`apply`): these are choices, not indices.
    let node = 0..NODES;
    let consortium = 0..CONSORTIA_MAX;
    prop_oneof![
        2 => node.clone().prop_map(|by| Step::Create { by }),
        5 => (consortium.clone(), node.clone(), node.clone())
            .prop_map(|(consortium, by, who)| Step::Invite { consortium, by, who }),
        2 => (consortium.clone(), node.clone(), node.clone())
            .prop_map(|(consortium, by, who)| Step::Remove { consortium, by, who }),
        1 => (consortium.clone(), node.clone())
            .prop_map(|(consortium, who)| Step::Leave { consortium, who }),
        1 => (consortium, node.clone(), node.clone(), any::<bool>())
            .prop_map(|(consortium, by, who, admin)| Step::Role { consortium, by, who, admin }),
        2 => node.prop_map(|by| Step::Write { by }),
    ]
}

fn record(library: usize, n: usize) -> MarcRecord {
    let mut record = MarcRecord::new(Leader::new_book());
    record.push_control("001", &format!("L{library}-{n}"));
    record.push_data(DataField::new(
        "245",
        '0',
        '0',
        &[('a', &format!("Buku {n} perpustakaan {library}"))],
    ));
    record
}

/// The test's own account of who is a current member of each consortium founded so far,
/// taken from the acting node's log after each step (the acting node is a current member,
/// up to date, since every step waits for quiet).
struct Model {
    consortia: Vec<Hash32>,
    members: BTreeMap<Hash32, BTreeSet<usize>>,
    /// Records written so far by each library.
    written: Vec<usize>,
}

impl Model {
    fn co_members(&self, x: usize, y: usize) -> bool {
        self.members
            .values()
            .any(|members| members.contains(&x) && members.contains(&y))
    }

    /// A library whose own log is the model's: a current member of every consortium it
    /// holds (one removed or gone does not learn it was, and keeps its old view).
    fn up_to_date(&self, nodes: &[Node], x: usize) -> bool {
        nodes[x]
            .library
            .consortia()
            .list()
            .iter()
            .all(|held| self.members.get(&held.id).is_some_and(|m| m.contains(&x)))
    }
}

fn member_set(
    nodes: &[Node],
    ids: &[LibraryId],
    node: usize,
    consortium: &Hash32,
) -> BTreeSet<usize> {
    let Ok(state) = nodes[node].library.consortia().members(consortium) else {
        return BTreeSet::new();
    };
    state
        .members
        .keys()
        .filter_map(|m| ids.iter().position(|id| id == m))
        .collect()
}

/// Catalog owners in a node's search index (its own included).
fn index_owners(library: &Library, ids: &[LibraryId]) -> BTreeSet<usize> {
    let all = jalin_protocol::cql::parse("cql.serverChoice <> zzqxjw")
        .expect("CQL")
        .root;
    let query = library.index().cql_query(&all).expect("served");
    let (_, found) = library
        .index()
        .search_records(query.as_ref(), 0, 100_000)
        .expect("searches");
    let own = library.id();
    found
        .into_iter()
        .filter_map(|(owner, _)| {
            let owner = match owner {
                Some(hex) => LibraryId::from_hex(&hex).ok()?,
                None => own,
            };
            ids.iter().position(|id| *id == owner)
        })
        .collect()
}

/// What must hold once a step has quieted; the first thing that does not, said.
async fn holds(nodes: &[Node], ids: &[LibraryId], model: &Model) -> Result<(), String> {
    // Every current member of a consortium holds its log as the model does.
    for (consortium, members) in &model.members {
        for &m in members {
            let seen = member_set(nodes, ids, m, consortium);
            if &seen != members {
                return Err(format!(
                    "L{m} sees members {seen:?} of {}, the model {members:?}",
                    consortium.short()
                ));
            }
        }
    }
    for (x, node) in nodes.iter().enumerate() {
        // Connected only to current co-members.
        let peers = node.net.peers().await.map_err(|e| e.to_string())?;
        for (y, other) in nodes.iter().enumerate() {
            if peers.contains(&other.net.peer_id) && !model.co_members(x, y) {
                return Err(format!(
                    "L{x} and L{y} share no consortium but are connected"
                ));
            }
        }
        // The union catalog: its co-members' catalogs, as their owners hold them.
        let trust = node.library.consortia().trust();
        let seen: BTreeSet<usize> = std::iter::once(x)
            .chain(
                trust
                    .co_members()
                    .iter()
                    .filter_map(|m| ids.iter().position(|id| id == m)),
            )
            .collect();
        let stored: BTreeSet<usize> = node
            .library
            .store()
            .namespaces()
            .map_err(|e| e.to_string())?
            .iter()
            .filter_map(|ns| ids.iter().position(|id| id == ns))
            .collect();
        let indexed = index_owners(&node.library, ids);
        if !stored.is_subset(&seen) || !indexed.is_subset(&seen) {
            return Err(format!(
                "L{x} holds catalogs {stored:?} (index {indexed:?}) beyond its co-members {seen:?}"
            ));
        }
        if !model.up_to_date(nodes, x) {
            // Removed or gone from somewhere: keeps what it had, gets nothing new (checked
            // below from the owners' side: none of them is connected to it).
            continue;
        }
        let truth: BTreeSet<usize> = (0..NODES)
            .filter(|&y| y == x || model.co_members(x, y))
            .collect();
        if seen != truth {
            return Err(format!(
                "L{x}'s log gives co-members {seen:?}, the model {truth:?}"
            ));
        }
        for &y in &truth {
            let written = model.written[y];
            if written > 0 && (!stored.contains(&y) || !indexed.contains(&y)) {
                return Err(format!(
                    "L{x} lacks L{y}'s catalog (store {stored:?}, index {indexed:?})"
                ));
            }
            if y != x && written > 0 && node.digest(&ids[y]) != nodes[y].digest(&ids[y]) {
                return Err(format!("L{x}'s copy of L{y}'s catalog is not L{y}'s own"));
            }
        }
    }
    Ok(())
}

/// Polls [`holds`] until it holds, or fails with what did not, after `seconds`.
async fn quiet(nodes: &[Node], ids: &[LibraryId], model: &Model, after: &str, seconds: u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        match holds(nodes, ids, model).await {
            Ok(()) => return,
            Err(why) if Instant::now() > deadline => {
                panic!("{seconds} s after {after}: {why}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Runs `work` on the node's library off the async threads.
async fn blocking<R: Send + 'static>(
    library: &Arc<Library>,
    work: impl FnOnce(&Library) -> R + Send + 'static,
) -> R {
    let library = library.clone();
    tokio::task::spawn_blocking(move || work(&library))
        .await
        .expect("blocking task")
}

/// Tells the network of a change to the consortia's documents at `node`.
async fn documents_changed(node: &Node) {
    node.net.members_changed().await.expect("network");
    node.net.announce(None).await.expect("network");
}

/// Applies one step as the libraries would. Returns what was done, or `None` for a step
/// no library may take (by the model or by its own node's refusal), which is skipped.
async fn apply(
    nodes: &[Node],
    ids: &[LibraryId],
    model: &mut Model,
    step: &Step,
    now: u64,
) -> Option<String> {
    let is_admin = |node: usize, c: &Hash32| {
        nodes[node]
            .library
            .consortia()
            .members(c)
            .ok()
            .and_then(|state| state.role(&ids[node]))
            == Some(Role::Admin)
    };
    // `by` and `who` pick among those who may act and be acted on, so most steps are taken.
    let done;
    let pick =
        |choices: Vec<usize>, n: usize| (!choices.is_empty()).then(|| choices[n % choices.len()]);
    let consortium_at = |n: usize| {
        (!model.consortia.is_empty()).then(|| model.consortia[n % model.consortia.len()])
    };
    let admins = |c: &Hash32| -> Vec<usize> {
        model.members[c]
            .iter()
            .copied()
            .filter(|&m| is_admin(m, c))
            .collect()
    };
    match *step {
        Step::Create { by } => {
            if model.consortia.len() >= CONSORTIA_MAX {
                return None;
            }
            let name = format!("Jaringan {}", model.consortia.len());
            let id = blocking(&nodes[by].library, move |l| {
                l.consortia().create(&name, now)
            })
            .await
            .expect("creates");
            model.consortia.push(id);
            done = format!("L{by} founds c{}", model.consortia.len() - 1);
            model.members.insert(id, BTreeSet::from([by]));
            documents_changed(&nodes[by]).await;
        }
        Step::Invite {
            consortium,
            by,
            who,
        } => {
            let c = consortium_at(consortium)?;
            let by = pick(admins(&c), by)?;
            // A library once gone from a consortium is not invited back here: the
            // property is about who is in, not about re-admission.
            let former = nodes[by]
                .library
                .consortia()
                .members(&c)
                .map(|state| state.former.keys().copied().collect::<Vec<_>>())
                .unwrap_or_default();
            let outside = (0..NODES)
                .filter(|n| !model.members[&c].contains(n) && !former.contains(&ids[*n]))
                .collect();
            let who = pick(outside, who)?;
            let inviter = nodes[by].library.clone();
            let joiner = nodes[who].library.clone();
            // The addresses each node says, as `jalin` puts them in invites and
            // acceptances: members dial a new member there once they learn of it.
            let here = vec![nodes[by].address().await.to_string()];
            let there = vec![nodes[who].address().await.to_string()];
            let documents = tokio::task::spawn_blocking(move || {
                let ticket = inviter
                    .consortia()
                    .invite(&c, Role::Member, now + 3_600_000, "", here, now)
                    .expect("invites")
                    .to_text();
                let acceptance = joiner
                    .consortia()
                    .join(&ticket, there, now + 1)
                    .expect("joins")
                    .to_text();
                inviter
                    .consortia()
                    .accept(&acceptance, now + 2)
                    .expect("accepts");
                let documents = inviter.consortia().export(&c).expect("exports");
                joiner.consortia().import(&documents).expect("imports");
            })
            .await;
            documents.expect("join task");
            model.members.get_mut(&c).expect("known").insert(who);
            done = format!("L{by} invites L{who} into {}, who joins", c.short());
            documents_changed(&nodes[by]).await;
            documents_changed(&nodes[who]).await;
            // The joiner dials the members, at the addresses an invite and the address
            // book would give it.
            for &m in &model.members[&c] {
                if m != who {
                    let address = nodes[m].address().await;
                    nodes[who]
                        .net
                        .dial(address)
                        .await
                        .expect("dials a co-member");
                }
            }
        }
        Step::Remove {
            consortium,
            by,
            who,
        } => {
            let c = consortium_at(consortium)?;
            let by = pick(admins(&c), by)?;
            let others = model.members[&c]
                .iter()
                .copied()
                .filter(|&m| m != by)
                .collect();
            let who = pick(others, who)?;
            let removed = ids[who];
            if blocking(&nodes[by].library, move |l| {
                l.consortia().remove(&c, removed, "diuji", now)
            })
            .await
            .is_err()
            {
                return None;
            }
            model.members.insert(c, member_set(nodes, ids, by, &c));
            done = format!("L{by} removes L{who} from {}", c.short());
            documents_changed(&nodes[by]).await;
        }
        Step::Leave { consortium, who } => {
            let c = consortium_at(consortium)?;
            let who = pick(model.members[&c].iter().copied().collect(), who)?;
            if blocking(&nodes[who].library, move |l| l.consortia().leave(&c, now))
                .await
                .is_err()
            {
                return None;
            }
            let mut left = model.members[&c].clone();
            left.remove(&who);
            model.members.insert(c, left);
            done = format!("L{who} leaves {}", c.short());
            documents_changed(&nodes[who]).await;
        }
        Step::Role {
            consortium,
            by,
            who,
            admin,
        } => {
            let c = consortium_at(consortium)?;
            let by = pick(admins(&c), by)?;
            let others = model.members[&c]
                .iter()
                .copied()
                .filter(|&m| m != by)
                .collect();
            let who = pick(others, who)?;
            let (member, role) = (ids[who], if admin { Role::Admin } else { Role::Member });
            if blocking(&nodes[by].library, move |l| {
                l.consortia().set_role(&c, member, role, now)
            })
            .await
            .is_err()
            {
                return None;
            }
            documents_changed(&nodes[by]).await;
            done = format!("L{by} makes L{who} {role:?} of {}", c.short());
        }
        Step::Write { by } => {
            let n = model.written[by];
            blocking(&nodes[by].library, move |l| l.put(record(by, n)))
                .await
                .expect("writes");
            model.written[by] += 1;
            done = format!("L{by} writes record {n}");
            nodes[by]
                .net
                .announce(Some(ids[by]))
                .await
                .expect("announces");
        }
    }
    Some(done)
}

async fn run(steps: &[Step]) {
    let mut nodes = Vec::new();
    for _ in 0..NODES {
        let (dir, data) = new_library(100);
        let library = Arc::new(Library::open(data).expect("opens"));
        nodes.push(start(library, dir).await);
    }
    let ids: Vec<LibraryId> = nodes.iter().map(|n| n.library.id()).collect();
    let mut model = Model {
        consortia: Vec::new(),
        members: BTreeMap::new(),
        written: vec![0; NODES],
    };
    // Every library starts with a record of its own; the first step founds a consortium,
    // so there is something to be a member of.
    for (i, node) in nodes.iter().enumerate() {
        blocking(&node.library, move |l| l.put(record(i, 0)))
            .await
            .expect("writes");
        model.written[i] = 1;
    }
    let first = Step::Create { by: 0 };
    let mut taken = 0;
    for (i, step) in std::iter::once(&first).chain(steps).enumerate() {
        let now = T + 1_000 * i as u64;
        if let Some(done) = apply(&nodes, &ids, &mut model, step, now).await {
            taken += 1;
            tracing::info!(step = i, "{done}");
            quiet(&nodes, &ids, &model, &format!("step {i} ({done})"), 30).await;
        }
    }
    // Last, everyone tries everyone (a removed library still believes in its old
    // partners), and every node runs a round of catch-up: still only co-members meet.
    let mut addresses = Vec::new();
    for node in &nodes {
        addresses.push(node.address().await);
    }
    for node in &nodes {
        for address in &addresses {
            let _ = node.net.dial(address.clone()).await;
        }
        node.net.catch_up().await.expect("catches up");
    }
    quiet(&nodes, &ids, &model, "everyone dialled everyone", 30).await;
    eprintln!(
        "membership sequence: {taken} of {} steps taken; members at the end {:?}",
        steps.len() + 1,
        model.members.values().collect::<Vec<_>>()
    );
    for node in nodes {
        node.stop().await;
    }
}

#[test]
fn only_current_co_members_connect_and_share_catalogs_whatever_the_sequence() {
    let cases = std::env::var("JALIN_MEMBERSHIP_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases,
        // Each case runs five real nodes: shrink a failure a little, not for an hour.
        max_shrink_iters: 16,
        ..Default::default()
    });
    runner
        .run(&prop::collection::vec(step(), 6..14), |steps| {
            runtime.block_on(run(&steps));
            Ok(())
        })
        .expect("every sequence keeps the trust boundary");
}
