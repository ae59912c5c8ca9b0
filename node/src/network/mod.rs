//! The network: one task owns the libp2p swarm; everything else talks to it through a
//! [`NetHandle`].
//!
//! Only members connect: the allow-list holds the peer ids of every current member of
//! every consortium this node holds (a library's libp2p identity is its own ed25519 key),
//! and it follows the membership log as it changes. Catch-up is pull-based and its cost
//! follows the difference, not the catalog:
//!
//! 1. `Hello`: the peer answers with one 32-byte digest per catalog it holds and one per
//!    consortium (of its documents).
//! 2. `Summary` for each catalog whose digest differs: 16 digests of 8 bytes, one per
//!    group of 16 shards (the same size for 10 records or a million).
//! 3. `Group` for each group whose digest differs: its 16 shard digests.
//! 4. `Changes` for each shard whose digest differs, naming this node's heads: the signed
//!    changes it lacks, checked ([`crate::catalogs::SharedCatalogs::store_from`]) before they are
//!    stored. Any member serves any catalog it holds.
//! 5. `Documents` for each consortium whose digest differs: its documents, taken in as
//!    `jalin consortium import` would.
//!
//! Live: a node that stored something new (its own change, or a member's it took in)
//! sends each connected member a `Changed` notice naming the shards it wrote and their
//! heads; a member whose heads differ asks at once for those shards' `Changes` (one round
//! trip per hop). It also announces the change on each consortium's gossipsub topic;
//! members not connected to the announcer pull from whoever passed the announcement on.
//! Gossip messages are signed by their sender's key and accepted only from members. Every
//! 30 s (and on each new connection) the node catches up with every connected member.

use crate::catalogs::{CatalogError, SharedCatalogs};
use crate::codec::{Codec, Traffic};
use crate::library::Library;

use crate::trust::Trust;
use jalin_protocol::consortium::document::{Hash32, Signed};
use jalin_protocol::consortium::log::{Acceptance, Invite};
use jalin_protocol::signing::LibraryId;
pub use jalin_protocol::sync::{
    Announcement, SignedChange, SyncRequest, SyncResponse, DIGEST_BYTES, GROUPS, NOTICE_HEADS_MAX,
    SHARDS_PER_GROUP, SHARDS_PER_REQUEST, SHARD_COUNT,
};
use libp2p::futures::StreamExt;
use libp2p::request_response::{self, ProtocolSupport, ResponseChannel};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    allow_block_list, autonat, connection_limits, dcutr, gossipsub, identify, identity, mdns,
    noise, ping, relay, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm,
};
use serde_bytes::{ByteArray, ByteBuf};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Commands waiting for the swarm task, at most.
const COMMANDS_MAX: usize = 256;
/// Largest sync request.
const REQUEST_BYTES_MAX: u64 = 64 * 1024;
/// Largest sync response (one shard's changes, or a consortium's documents).
const RESPONSE_BYTES_MAX: u64 = 32 * 1024 * 1024;
/// Largest gossip message.
const GOSSIP_BYTES_MAX: usize = 4 * 1024;
/// Connections at most, and per peer.
const CONNECTIONS_MAX: u32 = 128;
const CONNECTIONS_PER_PEER_MAX: u32 = 2;
/// Bytes of changes one response carries before it says "more".
const CHANGES_BYTES_PER_RESPONSE: usize = 8 * 1024 * 1024;
/// How often to dial members not connected.
const REDIAL_EVERY: Duration = Duration::from_secs(30);
/// How long a sync request may wait for its answer: a `Changes` answer can be 32 MiB,
/// which takes about two minutes at 2 Mbit/s (a village library's link).
const SYNC_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a connection with nothing on it stays open: longer than the catch-up interval,
/// so members stay connected between rounds.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(300);
/// Gossipsub's heartbeat: how often it repairs its mesh and gossips message ids. Half a
/// second keeps an announcement's path short in a consortium of a few dozen members.
const GOSSIP_HEARTBEAT: Duration = Duration::from_millis(500);
/// Addresses kept per member.
const ADDRESSES_PER_PEER_MAX: usize = 8;

mod join;
mod rounds;

pub use join::{join_over_network, JoinError};
use rounds::Rounds;

#[derive(NetworkBehaviour)]
struct Behaviour {
    allowed: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    limits: connection_limits::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    sync: request_response::Behaviour<Codec<SyncRequest, SyncResponse>>,
    gossip: gossipsub::Behaviour,
    mdns: Toggle<mdns::tokio::Behaviour>,
    relay_client: relay::client::Behaviour,
    dcutr: dcutr::Behaviour,
    autonat: autonat::Behaviour,
}

/// Who may connect, and where to find the members.
#[derive(Default)]
struct MemberSet {
    /// Every library sharing a consortium with this one as current members (this library
    /// among them): the allow-list ([`Trust::co_members`]).
    members: BTreeMap<PeerId, LibraryId>,
    /// One-off identities of this library's open invites, and their consortium.
    joiners: BTreeMap<PeerId, Hash32>,
    /// The consortia this library is a current member of (their gossip topics).
    consortia: Vec<Hash32>,
    /// The rule behind it all.
    trust: Arc<Trust>,
    /// Addresses known for members: said when they joined, in invites, seen by identify.
    addresses: BTreeMap<PeerId, Vec<Multiaddr>>,
    /// This library's own leave operations and the members each left behind, who are told
    /// (`SyncRequest::Left`) before they are cut off: `(member, consortium, operation)`.
    farewells: Vec<(PeerId, Hash32, String)>,
}

/// What the network task is asked to do.
enum Command {
    Dial(
        Multiaddr,
        oneshot::Sender<Result<(), libp2p::swarm::DialError>>,
    ),
    Disconnect(PeerId),
    ListenAddresses(oneshot::Sender<Vec<Multiaddr>>),
    Peers(oneshot::Sender<Vec<PeerId>>),
    /// Membership may have changed: rebuild the allow-list and topics, then tell the
    /// sender (if any) it is done.
    MembersChanged(Option<oneshot::Sender<()>>),
    /// The member set and consortia, as read from the logs.
    MembersComputed(MemberSet, Option<oneshot::Sender<()>>),
    /// Where a member's node listens, as identify told.
    Learned(PeerId, Vec<Multiaddr>),
    /// The answer to one sync request to this peer has been dealt with.
    Done(PeerId),
    /// A local change: announce it.
    Announce(Option<LibraryId>),
    /// Send the announcement and the `Changed` notices (with the shards written, and
    /// their heads, read off the loop).
    Notify(Option<LibraryId>, Vec<(u16, Vec<ByteArray<32>>)>),
    /// Catch up with every connected member now.
    CatchUp,
    Request(PeerId, SyncRequest),
    Respond(ResponseChannel<SyncResponse>, SyncResponse),
}

/// The cloneable front of the network task.
#[derive(Clone)]
pub struct NetHandle {
    commands: mpsc::Sender<Command>,
    /// This node's peer id.
    pub peer_id: PeerId,
    /// Bytes and round trips of the sync protocol since the start.
    pub traffic: Arc<Traffic>,
}

/// Why the network could not start or a command failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The library's key is not a libp2p identity.
    #[error("the library key is no network identity: {0}")]
    Key(identity::DecodingError),
    /// The transport (TCP, noise, yamux, the relay client) or a behaviour could not be
    /// set up.
    #[error("setting up the network: {0}")]
    Setup(Box<dyn std::error::Error + Send + Sync>),
    /// A listen address could not be listened on.
    #[error("listening on {address}: {error}")]
    Listen {
        /// The address.
        address: Multiaddr,
        /// Why.
        error: libp2p::TransportError<std::io::Error>,
    },
    /// A relay in `[network] relays` that cannot be used.
    #[error("relay address {address:?}: {reason}")]
    RelayAddress {
        /// The address as configured.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A dial that could not start.
    #[error("dialing: {0}")]
    Dial(libp2p::swarm::DialError),
    /// Joining over the network failed.
    #[error(transparent)]
    Join(#[from] JoinError),
    /// The network task has stopped.
    #[error("the network task has stopped")]
    Stopped,
}

impl NetHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    /// Dials an address.
    pub async fn dial(&self, address: Multiaddr) -> Result<(), NetError> {
        self.ask(|tx| Command::Dial(address, tx))
            .await?
            .map_err(NetError::Dial)
    }

    /// Closes every connection to a peer (it may dial again).
    pub async fn disconnect(&self, peer: PeerId) -> Result<(), NetError> {
        self.commands
            .send(Command::Disconnect(peer))
            .await
            .map_err(|_| NetError::Stopped)
    }

    /// Where this node listens, each address ending with `/p2p/<its peer id>` (what a
    /// member dials).
    pub async fn listen_addresses(&self) -> Result<Vec<Multiaddr>, NetError> {
        self.ask(Command::ListenAddresses).await
    }

    /// Connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerId>, NetError> {
        self.ask(Command::Peers).await
    }

    /// Tells the network the membership may have changed; returns once the allow-list
    /// follows it (an invite just made admits its holder from then on).
    pub async fn members_changed(&self) -> Result<(), NetError> {
        self.ask(|done| Command::MembersChanged(Some(done))).await
    }

    /// Announces a local change of this library's catalog (or of consortium documents).
    pub async fn announce(&self, catalog: Option<LibraryId>) -> Result<(), NetError> {
        self.commands
            .send(Command::Announce(catalog))
            .await
            .map_err(|_| NetError::Stopped)
    }

    /// Catches up with every connected member now.
    pub async fn catch_up(&self) -> Result<(), NetError> {
        self.commands
            .send(Command::CatchUp)
            .await
            .map_err(|_| NetError::Stopped)
    }
}

/// A library's libp2p peer id (its ed25519 key is its libp2p identity).
pub fn peer_id_of(library: &LibraryId) -> Option<PeerId> {
    let key = identity::ed25519::PublicKey::try_from_bytes(library.as_bytes()).ok()?;
    Some(identity::PublicKey::from(key).to_peer_id())
}

/// The co-members, open invites' identities, this library's consortia and the
/// co-members' known addresses (blocking: reads the logs and the address book).
fn member_set(library: &Library) -> MemberSet {
    let trust = library.consortia().trust();
    let own = library.id();
    let members: BTreeMap<PeerId, LibraryId> = trust
        .co_members()
        .into_iter()
        .chain([own])
        .filter_map(|member| Some((peer_id_of(&member)?, member)))
        .collect();
    let consortia: Vec<Hash32> = trust.consortia().copied().collect();
    let mut joiners = BTreeMap::new();
    for invite in library.consortia().open_invites(now_ms()) {
        // An invite of a consortium this library has left admits no one.
        if !trust.is_member_of(&invite.consortium) {
            continue;
        }
        if let Ok(key) = identity::ed25519::PublicKey::try_from_bytes(&invite.join_key) {
            let peer = identity::PublicKey::from(key).to_peer_id();
            joiners.insert(peer, invite.consortium);
        }
    }
    let mut addresses: BTreeMap<PeerId, Vec<Multiaddr>> = BTreeMap::new();
    let mut add = |peer: PeerId, address: &str| {
        if let Ok(address) = address.parse::<Multiaddr>() {
            let list = addresses.entry(peer).or_default();
            if !list.contains(&address) {
                list.push(address);
            }
        }
    };
    for id in &consortia {
        if let Ok(state) = library.consortia().members(id) {
            for member in state.members.values() {
                if let Some(peer) = peer_id_of(&member.library) {
                    for address in &member.addresses {
                        add(peer, address);
                    }
                }
            }
        }
    }
    for invite in library.consortia().accepted_invites() {
        if !trust.is_co_member(&invite.author) {
            continue;
        }
        if let Some(peer) = peer_id_of(&invite.author) {
            for address in &invite.body.addresses {
                add(peer, address);
            }
        }
    }
    for (peer, known) in library.address_book() {
        if let Ok(peer) = peer.parse::<PeerId>() {
            if !members.contains_key(&peer) {
                continue;
            }
            for address in known {
                add(peer, &address);
            }
        }
    }
    let farewells = library
        .consortia()
        .own_leaves()
        .into_iter()
        .flat_map(|(consortium, op, left_behind)| {
            left_behind
                .into_iter()
                .filter_map(move |member| Some((peer_id_of(&member)?, consortium, op.clone())))
        })
        .collect();
    MemberSet {
        members,
        joiners,
        consortia,
        trust,
        addresses,
        farewells,
    }
}

/// Forgets the catalogs of libraries no longer co-members ([`Library::forget_strangers`]).
fn forget_strangers(library: &Library) {
    if let Err(error) = library.forget_strangers() {
        tracing::error!(%error, "could not forget the catalogs of former members");
    }
}

/// The one-off network identity of an invite's holder.
pub fn join_identity(invite: &Invite) -> Option<identity::Keypair> {
    identity::Keypair::ed25519_from_bytes(invite.join_seed()).ok()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Makes the allow-list and the gossip topics follow the member set, and dials members
/// not connected at the addresses known for them.
fn apply_members(swarm: &mut Swarm<Behaviour>, state: &mut NetState, now: MemberSet) {
    // Members left behind hear of the leave first: each is cut off once it has answered.
    for (peer, consortium, op) in &now.farewells {
        if swarm.is_connected(peer) && state.farewelled.insert((*peer, *consortium)) {
            let id = swarm
                .behaviour_mut()
                .sync
                .send_request(peer, SyncRequest::Left { op: op.clone() });
            state.farewells.insert(id, *peer);
        }
    }
    let told: HashSet<PeerId> = state.farewells.values().copied().collect();
    let keep = |peer: &PeerId| now.members.contains_key(peer) || now.joiners.contains_key(peer);
    for peer in state.allowed.keys() {
        if !keep(peer) && !state.relays.contains(peer) && !told.contains(peer) {
            swarm.behaviour_mut().allowed.disallow_peer(*peer);
            // Cut off a removed member now, not at its next connection.
            let _ = swarm.disconnect_peer_id(*peer);
        }
    }
    for peer in state.joiners.keys() {
        if !keep(peer) && !state.relays.contains(peer) {
            // An invite used or withdrawn: no new connection under its identity. One
            // open now is left to close by itself (taking it off the allow-list would
            // close it, and its `Joined` answer may still be on the way); a request on
            // it gets `Refused`. It leaves the allow-list when it closes.
            if swarm.is_connected(peer) {
                state.leaving.insert(*peer);
            } else {
                swarm.behaviour_mut().allowed.disallow_peer(*peer);
            }
        }
    }
    for peer in now.members.keys().chain(now.joiners.keys()) {
        swarm.behaviour_mut().allowed.allow_peer(*peer);
    }
    state.allowed = now.members;
    state.joiners = now.joiners;
    state.addresses = now.addresses;
    state.trust = now.trust;
    // A relay is let in while a member's address names it (or this library uses it):
    // one named only by a removed member, or by an address since changed, is cut off.
    let relays = member_relays(&state.addresses, &state.allowed);
    for relay in state.member_relays.difference(&relays) {
        let still_needed = state.relays.contains(relay)
            || state.allowed.contains_key(relay)
            || state.joiners.contains_key(relay);
        if !still_needed {
            swarm.behaviour_mut().allowed.disallow_peer(*relay);
            let _ = swarm.disconnect_peer_id(*relay);
        }
    }
    state.member_relays = relays;
    // The topics of this library's consortia, and no other: a consortium left is not
    // listened to, nor a message on it passed on.
    let topics: BTreeMap<String, Hash32> = now
        .consortia
        .iter()
        .map(|c| (topic(c).hash().to_string(), *c))
        .collect();
    for (hash, consortium) in &topics {
        if !state.topics.contains_key(hash) {
            let _ = swarm.behaviour_mut().gossip.subscribe(&topic(consortium));
        }
    }
    for (hash, consortium) in &state.topics {
        if !topics.contains_key(hash) {
            swarm.behaviour_mut().gossip.unsubscribe(&topic(consortium));
        }
    }
    state.topics = topics;
    dial_members(swarm, state);
}

/// Sends the requests the round scheduler lets go.
fn send(swarm: &mut Swarm<Behaviour>, requests: Vec<(PeerId, SyncRequest)>) {
    for (peer, request) in requests {
        swarm.behaviour_mut().sync.send_request(&peer, request);
    }
}

/// Cuts off a peer told of this library's leave, unless it is still a co-member.
fn cut_off_if_gone(swarm: &mut Swarm<Behaviour>, state: &NetState, peer: PeerId) {
    if !state.allowed.contains_key(&peer) && !state.relays.contains(&peer) {
        swarm.behaviour_mut().allowed.disallow_peer(peer);
        let _ = swarm.disconnect_peer_id(peer);
    }
}

/// The relays named in the circuit addresses of current members.
fn member_relays(
    addresses: &BTreeMap<PeerId, Vec<Multiaddr>>,
    members: &BTreeMap<PeerId, LibraryId>,
) -> HashSet<PeerId> {
    addresses
        .iter()
        .filter(|(peer, _)| members.contains_key(peer))
        .flat_map(|(_, addresses)| addresses)
        .filter(|address| is_circuit(address))
        .filter_map(relay_of)
        .collect()
}

fn is_circuit(address: &Multiaddr) -> bool {
    address
        .iter()
        .any(|p| matches!(p, libp2p::multiaddr::Protocol::P2pCircuit))
}

/// Dials every member not connected, at the addresses known for it.
fn dial_members(swarm: &mut Swarm<Behaviour>, state: &NetState) {
    let me = *swarm.local_peer_id();
    for (peer, addresses) in &state.addresses {
        if *peer == me || !state.allowed.contains_key(peer) || swarm.is_connected(peer) {
            continue;
        }
        for address in addresses {
            if is_circuit(address) {
                if let Some(relay) = relay_of(address) {
                    swarm.behaviour_mut().allowed.allow_peer(relay);
                    // A relay carries members' connections; it hears no gossip.
                    if !state.allowed.contains_key(&relay) {
                        swarm.behaviour_mut().gossip.blacklist_peer(&relay);
                    }
                }
            }
        }
        let options = libp2p::swarm::dial_opts::DialOpts::peer_id(*peer)
            .addresses(addresses.clone())
            .condition(libp2p::swarm::dial_opts::PeerCondition::DisconnectedAndNotDialing)
            .build();
        let _ = swarm.dial(options);
    }
}

/// What the swarm task keeps besides the swarm.
#[derive(Default)]
struct NetState {
    allowed: BTreeMap<PeerId, LibraryId>,
    joiners: BTreeMap<PeerId, Hash32>,
    addresses: BTreeMap<PeerId, Vec<Multiaddr>>,
    /// Gossip topics subscribed to (by hash), and their consortium.
    topics: BTreeMap<String, Hash32>,
    /// The trust rule as of the last membership change.
    trust: Arc<Trust>,
    /// Where this node listens, interface by interface.
    listening: Vec<Multiaddr>,
    /// Relays this node may connect to (its own and those in members' addresses).
    relays: HashSet<PeerId>,
    /// Relays named in current members' circuit addresses (let in for them alone).
    member_relays: HashSet<PeerId>,
    /// Identities of used invites still connected: off the allow-list once they close.
    leaving: HashSet<PeerId>,
    /// Sync rounds in progress, per peer.
    rounds: Rounds,
    /// `Changed` notices sent and not answered yet (not part of any round).
    nudges: HashSet<request_response::OutboundRequestId>,
    /// `Left` requests sent and not answered yet, and to whom: a member left behind is
    /// cut off when its answer comes (or the request fails).
    farewells: HashMap<request_response::OutboundRequestId, PeerId>,
    /// `(member, consortium)` told of this library's leave (once each).
    farewelled: HashSet<(PeerId, Hash32)>,
}

/// `address` ending with `/p2p/<peer>` (as it is already for an address through a relay).
pub fn with_peer(address: &Multiaddr, peer: PeerId) -> Multiaddr {
    match address.iter().last() {
        Some(libp2p::multiaddr::Protocol::P2p(last)) if last == peer => address.clone(),
        _ => address.clone().with(libp2p::multiaddr::Protocol::P2p(peer)),
    }
}

/// The relay's peer id in an address through a relay (`.../p2p/RELAY[/p2p-circuit/...]`),
/// or in a relay's own address.
pub fn relay_of(address: &Multiaddr) -> Option<PeerId> {
    use libp2p::multiaddr::Protocol;
    let mut relay = None;
    for protocol in address.iter() {
        match protocol {
            Protocol::P2p(peer) => relay = Some(peer),
            Protocol::P2pCircuit => return relay,
            _ => {}
        }
    }
    relay
}

fn topic(consortium: &Hash32) -> gossipsub::IdentTopic {
    gossipsub::IdentTopic::new(format!("/jalin/consortium/{consortium}"))
}

fn documents_digest(text: &str) -> [u8; 32] {
    let mut lines: Vec<&str> = text.lines().filter(|l| l.starts_with("JALIN-")).collect();
    lines.sort_unstable();
    let mut hasher = Sha256::new();
    for line in lines {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    hasher.finalize().into()
}

/// The shards of group `group`.
fn group_shards(group: u8) -> std::ops::Range<u16> {
    let first = u16::from(group) * SHARDS_PER_GROUP;
    first..first + SHARDS_PER_GROUP
}

/// Each shard's digest: the first [`DIGEST_BYTES`] of SHA-256 over its heads (zeros for
/// an empty shard).
fn shard_digests(
    catalogs: &SharedCatalogs,
    namespace: &LibraryId,
    shards: std::ops::Range<u16>,
) -> Result<Vec<[u8; DIGEST_BYTES]>, CatalogError> {
    shards
        .map(|shard| {
            let heads = catalogs.shard_heads(namespace, shard)?;
            if heads.is_empty() {
                return Ok([0u8; DIGEST_BYTES]);
            }
            let mut hasher = Sha256::new();
            for head in heads {
                hasher.update(head);
            }
            let mut digest = [0u8; DIGEST_BYTES];
            digest.copy_from_slice(&hasher.finalize()[..DIGEST_BYTES]);
            Ok(digest)
        })
        .collect()
}

/// Each group's digest over its shards' digests, concatenated.
fn group_digests(shards: &[[u8; DIGEST_BYTES]]) -> Vec<u8> {
    shards
        .chunks(usize::from(SHARDS_PER_GROUP))
        .flat_map(|group| {
            let mut hasher = Sha256::new();
            for digest in group {
                hasher.update(digest);
            }
            hasher.finalize()[..DIGEST_BYTES].to_vec()
        })
        .collect()
}

/// The shards of `namespace` written since the last announcement, with their heads, for
/// a `Changed` notice; empty when too many to name (the receivers catch up in full).
fn written_shards(library: &Library, namespace: &LibraryId) -> Vec<(u16, Vec<ByteArray<32>>)> {
    let touched = library.take_touched(namespace);
    if touched.len() > SHARDS_PER_REQUEST {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(touched.len());
    for shard in touched {
        match library.shard_heads(namespace, shard) {
            Ok(heads) if heads.len() <= NOTICE_HEADS_MAX => {
                out.push((shard, heads.into_iter().map(ByteArray::new).collect()));
            }
            _ => return Vec::new(),
        }
    }
    out
}

/// Whether a `Changed` notice's shards can be fetched directly: some, and within limits.
fn notice_is_usable(shards: &[(u16, Vec<ByteArray<32>>)]) -> bool {
    !shards.is_empty()
        && shards.len() <= SHARDS_PER_REQUEST
        && shards
            .iter()
            .all(|(shard, heads)| *shard < SHARD_COUNT && heads.len() <= NOTICE_HEADS_MAX)
}

/// The `Changes` request for the shards of a notice whose heads differ from this node's
/// (blocking work); `None` when all are the same here.
fn changes_for_notice(
    catalogs: &SharedCatalogs,
    namespace: LibraryId,
    shards: Vec<(u16, Vec<ByteArray<32>>)>,
) -> Option<SyncRequest> {
    let mut differ = Vec::new();
    for (shard, theirs) in shards {
        let Ok(mine) = catalogs.shard_heads(&namespace, shard) else {
            continue;
        };
        let mut theirs: Vec<[u8; 32]> = theirs.into_iter().map(ByteArray::into_array).collect();
        let mut sorted = mine.clone();
        theirs.sort_unstable();
        sorted.sort_unstable();
        if theirs != sorted {
            differ.push((shard, mine.into_iter().map(ByteArray::new).collect()));
        }
    }
    (!differ.is_empty()).then_some(SyncRequest::Changes {
        namespace,
        shards: differ,
    })
}

/// Answers a request of `peer` from the stored catalog and consortia (blocking work): only
/// what the trust rule lets go to it, the catalogs and documents of the consortia it
/// shares with this library.
fn answer(library: &Library, peer: &LibraryId, request: SyncRequest) -> SyncResponse {
    let refused = |e: &dyn std::fmt::Display| SyncResponse::Refused {
        reason: e.to_string(),
    };
    // Every catalog read goes through the view, which asks the trust rule; documents are
    // asked here.
    let shared = library.shared_with(peer);
    let trust = shared.trust();
    if let SyncRequest::Documents { consortium } = &request {
        if !trust.shares(peer, consortium) {
            return refused(&CatalogError::NotShared);
        }
    }
    match request {
        SyncRequest::Hello => {
            let catalogs = match shared.digests() {
                Ok(digests) => digests
                    .into_iter()
                    .map(|(ns, digest)| (ns, ByteArray::new(digest)))
                    .collect(),
                Err(e) => return refused(&e),
            };
            let consortia = trust
                .consortia()
                .filter(|c| trust.shares(peer, c))
                .filter_map(|c| {
                    let text = library.consortia().export(c).ok()?;
                    Some((*c, ByteArray::new(documents_digest(&text))))
                })
                .collect();
            SyncResponse::Hello {
                catalogs,
                consortia,
            }
        }
        SyncRequest::Summary { namespace } => {
            match shard_digests(&shared, &namespace, 0..SHARD_COUNT) {
                Ok(digests) => SyncResponse::Summary {
                    namespace,
                    groups: ByteBuf::from(group_digests(&digests)),
                },
                Err(e) => refused(&e),
            }
        }
        SyncRequest::Group { namespace, group } => {
            // The group's bounds were checked as the request was read (`sync::decode`).
            match shard_digests(&shared, &namespace, group_shards(group)) {
                Ok(digests) => SyncResponse::Group {
                    namespace,
                    group,
                    shards: ByteBuf::from(digests.concat()),
                },
                Err(e) => refused(&e),
            }
        }
        SyncRequest::Changes { namespace, shards } => {
            let mut out = Vec::new();
            let mut bytes = 0usize;
            let mut more = false;
            for (shard, have) in shards {
                if bytes > CHANGES_BYTES_PER_RESPONSE {
                    more = true;
                    break;
                }
                let have: Vec<[u8; 32]> = have.into_iter().map(ByteArray::into_array).collect();
                match shared.changes_since(&namespace, shard, &have) {
                    Ok(changes) => {
                        bytes += changes.iter().map(|c| c.bytes.len() + 256).sum::<usize>();
                        out.push((shard, changes));
                    }
                    Err(e) => return refused(&e),
                }
            }
            SyncResponse::Changes {
                namespace,
                shards: out,
                more,
            }
        }
        SyncRequest::Documents { consortium } => match library.consortia().export(&consortium) {
            Ok(text) => SyncResponse::Documents { text },
            Err(e) => refused(&e),
        },
        SyncRequest::Join { .. } => refused(&"this library is a member already"),
        // Answered in the swarm task; not here.
        SyncRequest::Left { .. } => SyncResponse::Noted,
        // Answered in the swarm task; not here.
        SyncRequest::Changed { .. } => SyncResponse::Noted,
    }
}

/// Answers a joiner: accepts its acceptance of an open invite of `consortium`, and sends
/// the consortium's documents (blocking work).
fn answer_joiner(library: &Library, consortium: Hash32, request: SyncRequest) -> SyncResponse {
    let SyncRequest::Join { acceptance } = request else {
        return SyncResponse::Refused {
            reason: "not a member: only joining is possible with an invite's identity".into(),
        };
    };
    let accepted = Signed::<Acceptance>::from_text(&acceptance)
        .map_err(|e| e.to_string())
        .and_then(|a| {
            if a.body.consortium == consortium {
                Ok(())
            } else {
                Err("this acceptance is of another consortium".to_string())
            }
        })
        .and_then(|()| {
            library
                .consortia()
                .accept(&acceptance, now_ms())
                .map_err(|e| e.to_string())
        });
    match accepted.and_then(|_| {
        library
            .consortia()
            .export(&consortium)
            .map_err(|e| e.to_string())
    }) {
        Ok(documents) => SyncResponse::Joined { documents },
        Err(reason) => SyncResponse::Refused { reason },
    }
}

/// What taking in an answer calls for.
#[derive(Default)]
struct FollowUp {
    /// Requests to make of the same peer.
    requests: Vec<SyncRequest>,
    /// The consortium documents changed: membership may have.
    documents_changed: bool,
    /// New changes of this catalog were stored: tell the other members.
    catalog_changed: Option<LibraryId>,
}

/// Takes in an answer of `peer` (blocking work): only what the trust rule lets come from
/// it, asked again here, since membership may have changed while the answer travelled.
fn take_answer(library: &Library, peer: &LibraryId, response: SyncResponse) -> FollowUp {
    let own = library.id();
    let shared = library.shared_with(peer);
    let trust = shared.trust();
    match &response {
        SyncResponse::Summary { namespace, .. }
        | SyncResponse::Group { namespace, .. }
        | SyncResponse::Changes { namespace, .. }
            if !shared.is_shared(namespace) =>
        {
            tracing::warn!(
                peer = %peer.fingerprint(),
                catalog = %namespace.fingerprint(),
                "refused a catalog from a peer that does not share it with this library"
            );
            return FollowUp::default();
        }
        _ => {}
    }
    match response {
        SyncResponse::Hello {
            catalogs,
            consortia,
        } => {
            let mut next = Vec::new();
            for (consortium, digest) in consortia {
                // A consortium this library is no member of, or the peer is not, is
                // never fetched.
                if !trust.shares(peer, &consortium) {
                    continue;
                }
                let mine = library
                    .consortia()
                    .export(&consortium)
                    .map(|t| documents_digest(&t))
                    .ok();
                if mine != Some(digest.into_array()) {
                    next.push(SyncRequest::Documents { consortium });
                }
            }
            for (namespace, digest) in catalogs {
                if namespace == own || !shared.is_shared(&namespace) {
                    continue;
                }
                if shared.digest(&namespace).ok() != Some(digest.into_array()) {
                    next.push(SyncRequest::Summary { namespace });
                }
            }
            FollowUp {
                requests: next,
                ..FollowUp::default()
            }
        }
        SyncResponse::Summary { namespace, groups } => {
            if namespace == own {
                return FollowUp::default();
            }
            let Ok(mine) = shard_digests(&shared, &namespace, 0..SHARD_COUNT) else {
                return FollowUp::default();
            };
            let mine = group_digests(&mine);
            let requests = (0..GROUPS as u8)
                .filter(|&g| {
                    let range = usize::from(g) * DIGEST_BYTES..(usize::from(g) + 1) * DIGEST_BYTES;
                    groups
                        .get(range.clone())
                        .is_some_and(|theirs| theirs != &mine[range])
                })
                .map(|group| SyncRequest::Group { namespace, group })
                .collect();
            FollowUp {
                requests,
                ..FollowUp::default()
            }
        }
        SyncResponse::Group {
            namespace,
            group,
            shards,
        } => {
            if namespace == own || u16::from(group) >= GROUPS {
                return FollowUp::default();
            }
            let Ok(mine) = shard_digests(&shared, &namespace, group_shards(group)) else {
                return FollowUp::default();
            };
            let mut differ = Vec::new();
            for ((shard, theirs), mine) in group_shards(group)
                .zip(shards.chunks_exact(DIGEST_BYTES))
                .zip(&mine)
            {
                if theirs == [0u8; DIGEST_BYTES] || theirs == mine {
                    continue;
                }
                let Ok(heads) = shared.shard_heads(&namespace, shard) else {
                    continue;
                };
                differ.push((shard, heads.into_iter().map(ByteArray::new).collect()));
            }
            let requests = differ
                .chunks(SHARDS_PER_REQUEST)
                .map(|chunk| SyncRequest::Changes {
                    namespace,
                    shards: chunk.to_vec(),
                })
                .collect();
            FollowUp {
                requests,
                ..FollowUp::default()
            }
        }
        SyncResponse::Changes {
            namespace,
            shards,
            more,
        } => {
            let shards: Vec<(u16, Vec<SignedChange>)> =
                shards.into_iter().filter(|(_, c)| !c.is_empty()).collect();
            let mut new = 0;
            // The membership may change while this is written: a catalog no longer
            // shared leaves again at once (`store_from`).
            let Ok(results) = shared.store_from(&namespace, &shards) else {
                return FollowUp::default();
            };
            for ((shard, _), result) in shards.iter().zip(results) {
                match result {
                    Ok(applied) => new += applied.changes,
                    Err(error) => {
                        tracing::warn!(%namespace, shard, %error, "refused a member's changes")
                    }
                }
            }
            FollowUp {
                requests: if more {
                    vec![SyncRequest::Summary { namespace }]
                } else {
                    Vec::new()
                },
                documents_changed: false,
                catalog_changed: (new > 0).then_some(namespace),
            }
        }
        SyncResponse::Documents { text } => {
            match library.consortia().import_from_member(&text, peer) {
                Ok(report) => {
                    for (_, why) in &report.refused {
                        tracing::warn!(reason = %why, "refused a member's document");
                    }
                    FollowUp {
                        documents_changed: report.new > 0,
                        ..FollowUp::default()
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "taking a member's documents failed");
                    FollowUp::default()
                }
            }
        }
        SyncResponse::Joined { .. } | SyncResponse::Noted => FollowUp::default(),
        SyncResponse::Refused { reason } => {
            tracing::debug!(%reason, "a member refused a sync request");
            FollowUp::default()
        }
    }
}

/// Builds the swarm listening on `listen` (and through the relays of the library's
/// `[network] relays`), and gives back its handle and the loop that drives it, to spawn
/// (the one task that owns the swarm: [`crate::node::Node::spawn`]); the loop runs until
/// `shutdown` resolves.
pub async fn start(
    library: Arc<Library>,
    listen: Vec<Multiaddr>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<
    (
        NetHandle,
        impl std::future::Future<Output = ()> + Send + 'static,
    ),
    NetError,
> {
    let mut secret = library.data().key.to_bytes();
    let keypair = identity::Keypair::ed25519_from_bytes(&mut secret).map_err(NetError::Key)?;
    let peer_id = keypair.public().to_peer_id();
    let traffic = Arc::new(Traffic::default());
    let use_mdns = library.data().config.network.mdns;
    let mut swarm: Swarm<Behaviour> = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| NetError::Setup(e.into()))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| NetError::Setup(e.into()))?
        .with_behaviour(|key, relay_client| {
            let mdns_behaviour = if use_mdns {
                match mdns::tokio::Behaviour::new(
                    mdns::Config::default(),
                    key.public().to_peer_id(),
                ) {
                    Ok(behaviour) => Some(behaviour),
                    Err(error) => {
                        tracing::warn!(%error, "mDNS is off");
                        None
                    }
                }
            } else {
                None
            };
            let gossip_config = gossipsub::ConfigBuilder::default()
                .validation_mode(gossipsub::ValidationMode::Strict)
                .validate_messages()
                .max_transmit_size(GOSSIP_BYTES_MAX)
                .heartbeat_interval(GOSSIP_HEARTBEAT)
                .build()
                .map_err(|e| e.to_string())?;
            let gossip = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Signed(key.clone()),
                gossip_config,
            )?;
            let codec = Codec::new(REQUEST_BYTES_MAX, RESPONSE_BYTES_MAX, traffic.clone());
            Ok(Behaviour {
                allowed: allow_block_list::Behaviour::default(),
                limits: connection_limits::Behaviour::new(
                    connection_limits::ConnectionLimits::default()
                        .with_max_established(Some(CONNECTIONS_MAX))
                        .with_max_established_per_peer(Some(CONNECTIONS_PER_PEER_MAX)),
                ),
                identify: identify::Behaviour::new(identify::Config::new(
                    "/jalin/1".into(),
                    key.public(),
                )),
                ping: ping::Behaviour::default(),
                sync: request_response::Behaviour::with_codec(
                    codec,
                    [(StreamProtocol::new("/jalin/sync/1"), ProtocolSupport::Full)],
                    request_response::Config::default().with_request_timeout(SYNC_REQUEST_TIMEOUT),
                ),
                gossip,
                mdns: Toggle::from(mdns_behaviour),
                relay_client,
                dcutr: dcutr::Behaviour::new(key.public().to_peer_id()),
                autonat: autonat::Behaviour::new(
                    key.public().to_peer_id(),
                    autonat::Config::default(),
                ),
            })
        })
        .map_err(|e| NetError::Setup(e.into()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .build();
    for address in listen {
        swarm
            .listen_on(address.clone())
            .map_err(|error| NetError::Listen { address, error })?;
    }
    let mut relays = HashSet::new();
    for text in &library.data().config.network.relays {
        let address: Multiaddr = text.parse().map_err(|e| NetError::RelayAddress {
            address: text.clone(),
            reason: format!("{e}"),
        })?;
        let Some(relay) = relay_of(&address) else {
            return Err(NetError::RelayAddress {
                address: text.clone(),
                reason: "it must end with /p2p/<the relay's peer id>".into(),
            });
        };
        // Reachable through the relay: members behind NAT are dialed at this address.
        swarm.behaviour_mut().allowed.allow_peer(relay);
        relays.insert(relay);
        let circuit = address.with(libp2p::multiaddr::Protocol::P2pCircuit);
        swarm
            .listen_on(circuit.clone())
            .map_err(|error| NetError::Listen {
                address: circuit,
                error,
            })?;
    }
    // The member set before the first connection, so no member is turned away at start.
    let reader = library.clone();
    let members = tokio::task::spawn_blocking(move || {
        forget_strangers(&reader);
        member_set(&reader)
    })
    .await
    .map_err(|e| NetError::Setup(e.into()))?;
    let mut state = NetState {
        relays,
        ..NetState::default()
    };
    apply_members(&mut swarm, &mut state, members);
    let (tx, rx) = mpsc::channel(COMMANDS_MAX);
    let handle = NetHandle {
        commands: tx.clone(),
        peer_id,
        traffic,
    };
    Ok((handle, run(swarm, library, state, tx, rx, shutdown)))
}

/// Runs blocking work (store, automerge) on a worker thread, in the span it was started
/// from (the node's, a peer's): a worker thread does not inherit it.
fn off_loop(work: impl FnOnce() + Send + 'static) {
    let span = tracing::Span::current();
    drop(tokio::task::spawn_blocking(move || span.in_scope(work)));
}

/// Announces a change of `namespace`'s catalog (`None`: of the consortia's documents):
/// the shards written since the last announcement are read off the loop, then sent as
/// [`Command::Notify`].
fn announce(library: &Arc<Library>, tx: &mpsc::Sender<Command>, namespace: Option<LibraryId>) {
    let library = library.clone();
    let tx = tx.clone();
    off_loop(move || {
        let shards = namespace
            .map(|ns| written_shards(&library, &ns))
            .unwrap_or_default();
        let _ = tx.blocking_send(Command::Notify(namespace, shards));
    });
}

/// Notes that a member's node is connected now (off the loop: it writes to sled).
fn seen(library: &Arc<Library>, member: Option<&LibraryId>) {
    if let Some(member) = member.copied() {
        let library = library.clone();
        off_loop(move || library.note_seen(&member));
    }
}

async fn run(
    mut swarm: Swarm<Behaviour>,
    library: Arc<Library>,
    mut state: NetState,
    commands_tx: mpsc::Sender<Command>,
    mut commands: mpsc::Receiver<Command>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    tokio::pin!(shutdown);
    // How often to catch up with every connected member (`[network] catch_up_s`).
    let every = Duration::from_secs(library.data().config.network.catch_up_s.max(1));
    let mut catch_up = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    catch_up.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let own = library.id();
    let mut redial = tokio::time::interval(REDIAL_EVERY);
    redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Blocking work (store, automerge) goes to worker threads; what it decides comes back
    // as commands, so the swarm is only ever touched here.
    let work = |library: Arc<Library>,
                tx: mpsc::Sender<Command>,
                peer: PeerId,
                member: LibraryId,
                response: SyncResponse| {
        let span = tracing::debug_span!("peer", %peer, library = %member.fingerprint());
        let _entered = span.enter();
        off_loop(move || {
            library.note_seen(&member);
            let follow_up = take_answer(&library, &member, response);
            if follow_up.documents_changed {
                let _ = tx.blocking_send(Command::MembersChanged(None));
                let _ = tx.blocking_send(Command::Announce(None));
            }
            if let Some(namespace) = follow_up.catalog_changed {
                // What this node now holds, its other members may lack: tell them first,
                // so they fetch while this node indexes.
                let _ = tx.blocking_send(Command::Announce(Some(namespace)));
                library.index_or_warn();
            }
            for request in follow_up.requests {
                if tx.blocking_send(Command::Request(peer, request)).is_err() {
                    break;
                }
            }
            let _ = tx.blocking_send(Command::Done(peer));
        });
    };
    // Every write to this library's catalog is announced, whoever made it.
    let mut own_writes = library.watch_own_writes();
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Ok(()) = own_writes.changed() => announce(&library, &commands_tx, Some(own)),
            Some(command) = commands.recv() => match command {
                Command::Dial(address, reply) => {
                    if is_circuit(&address) {
                        // Through a relay: the relay itself must be let in.
                        if let Some(relay) = relay_of(&address) {
                            swarm.behaviour_mut().allowed.allow_peer(relay);
                            state.relays.insert(relay);
                        }
                    }
                    let _ = reply.send(swarm.dial(address));
                }
                Command::Disconnect(peer) => {
                    let _ = swarm.disconnect_peer_id(peer);
                }
                Command::ListenAddresses(reply) => {
                    let me = *swarm.local_peer_id();
                    let _ = reply.send(state.listening.iter().map(|a| with_peer(a, me)).collect());
                }
                Command::Peers(reply) => {
                    let _ = reply.send(swarm.connected_peers().copied().collect());
                }
                Command::MembersChanged(done) => {
                    // Reading the logs is blocking work: off the loop; the result comes
                    // back as a command.
                    let library = library.clone();
                    let tx = commands_tx.clone();
                    off_loop(move || {
                        let _ =
                            tx.blocking_send(Command::MembersComputed(member_set(&library), done));
                        // Cut off first, then forget: the catalogs of libraries no longer
                        // co-members leave the store and index (which may take a while).
                        forget_strangers(&library);
                    });
                }
                Command::MembersComputed(now, done) => {
                    apply_members(&mut swarm, &mut state, now);
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                }
                Command::Learned(peer, addresses) => {
                    // Beside what the log and invites said, not instead of it.
                    let known = state.addresses.entry(peer).or_default();
                    for address in addresses {
                        if known.len() >= ADDRESSES_PER_PEER_MAX {
                            break;
                        }
                        if !known.contains(&address) {
                            known.push(address);
                        }
                    }
                }
                Command::Announce(namespace) => announce(&library, &commands_tx, namespace),
                Command::Notify(namespace, shards) => {
                    let message = serde_json::to_vec(&Announcement { namespace }).unwrap_or_default();
                    // A catalog's news goes only to the consortia that share it; the
                    // consortia's own (`None`) to each of this library's.
                    for (hash, consortium) in &state.topics {
                        if namespace.is_some_and(|ns| !state.trust.shares(&ns, consortium)) {
                            continue;
                        }
                        let topic = gossipsub::TopicHash::from_raw(hash.clone());
                        // No peer on the topic yet is not an error: catch-up covers it.
                        let _ = swarm.behaviour_mut().gossip.publish(topic, message.clone());
                    }
                    let peers: Vec<PeerId> = swarm.connected_peers().copied().collect();
                    for peer in peers {
                        let shared = state.allowed.get(&peer).is_some_and(|member| {
                            namespace.is_none_or(|ns| state.trust.catalog_between(member, &ns))
                        });
                        if shared {
                            let id = swarm
                                .behaviour_mut()
                                .sync
                                .send_request(&peer, SyncRequest::Changed { namespace, shards: shards.clone() });
                            state.nudges.insert(id);
                        }
                    }
                }
                Command::CatchUp => {
                    let peers: Vec<PeerId> = swarm.connected_peers().copied().collect();
                    for peer in peers {
                        if state.allowed.contains_key(&peer) {
                            send(&mut swarm, state.rounds.hello(peer));
                        }
                    }
                }
                Command::Request(peer, request) => {
                    send(&mut swarm, state.rounds.request(peer, request));
                }
                Command::Done(peer) => {
                    { let connected = swarm.is_connected(&peer); send(&mut swarm, state.rounds.done(peer, connected)) };
                }
                Command::Respond(channel, response) => {
                    let _ = swarm.behaviour_mut().sync.send_response(channel, response);
                }
            },
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { address, .. } => {
                    tracing::info!(%address, peer = %swarm.local_peer_id(), "libp2p listening");
                    state.listening.push(address);
                }
                SwarmEvent::ExpiredListenAddr { address, .. } => {
                    state.listening.retain(|a| *a != address);
                }
                SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                    peer_id, info, ..
                })) if state.allowed.contains_key(&peer_id) => {
                    {
                        // The address book: where a member listens, kept across restarts.
                        let addresses: Vec<Multiaddr> = info
                            .listen_addrs
                            .into_iter()
                            .filter(|a| !a.iter().any(|p| matches!(p, libp2p::multiaddr::Protocol::Ip4(ip) if ip.is_unspecified())))
                            .take(ADDRESSES_PER_PEER_MAX)
                            .collect();
                        let library = library.clone();
                        let tx = commands_tx.clone();
                        off_loop(move || {
                            library.note_addresses(
                                &peer_id.to_string(),
                                addresses.iter().map(ToString::to_string).collect(),
                            );
                            let _ = tx.blocking_send(Command::Learned(peer_id, addresses));
                        });
                    }
                }
                SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                    // Members on the local network: dial them (anyone else is ignored).
                    for (peer, address) in found {
                        if state.allowed.contains_key(&peer) && !swarm.is_connected(&peer) {
                            let options = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
                                .addresses(vec![address])
                                .condition(libp2p::swarm::dial_opts::PeerCondition::DisconnectedAndNotDialing)
                                .build();
                            let _ = swarm.dial(options);
                        }
                    }
                }
                SwarmEvent::ConnectionEstablished { peer_id, num_established, .. } => {
                    tracing::debug!(peer = %peer_id, "connected");
                    seen(&library, state.allowed.get(&peer_id));
                    if num_established.get() == 1 && state.allowed.contains_key(&peer_id) {
                        send(&mut swarm, state.rounds.hello(peer_id));
                    }
                }
                SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                    if state.leaving.remove(&peer_id) && !state.joiners.contains_key(&peer_id) {
                        swarm.behaviour_mut().allowed.disallow_peer(peer_id);
                    }
                    seen(&library, state.allowed.get(&peer_id));
                    state.rounds.forget(&peer_id);
                }
                SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::OutboundFailure {
                    peer, request_id, error, ..
                })) => {
                    tracing::debug!(%peer, %error, "a sync request failed");
                    if let Some(peer) = state.farewells.remove(&request_id) {
                        cut_off_if_gone(&mut swarm, &state, peer);
                    } else if !state.nudges.remove(&request_id) {
                        { let connected = swarm.is_connected(&peer); send(&mut swarm, state.rounds.done(peer, connected)) };
                    }
                }
                SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                    peer, message, ..
                })) => match message {
                    request_response::Message::Request { request, channel, .. } => {
                        if let Some(consortium) = state.joiners.get(&peer).copied() {
                            let library = library.clone();
                            let tx = commands_tx.clone();
                            off_loop(move || {
                                let response = answer_joiner(&library, consortium, request);
                                let joined = matches!(response, SyncResponse::Joined { .. });
                                let _ = tx.blocking_send(Command::Respond(channel, response));
                                if joined {
                                    // A new member: let it in under its own identity, and
                                    // tell the others.
                                    let _ = tx.blocking_send(Command::MembersChanged(None));
                                    let _ = tx.blocking_send(Command::Announce(None));
                                }
                            });
                            continue;
                        }
                        let Some(member) = state.allowed.get(&peer).copied() else {
                            let _ = swarm.behaviour_mut().sync.send_response(
                                channel,
                                SyncResponse::Refused { reason: "not a member".into() },
                            );
                            continue;
                        };
                        if let SyncRequest::Left { op } = request {
                            // A member going: its leave taken in, the others told.
                            let library = library.clone();
                            let tx = commands_tx.clone();
                            off_loop(move || {
                                let taken = library.consortia().take_leave(&op, &member);
                                let response = match &taken {
                                    Ok(_) => SyncResponse::Noted,
                                    Err(error) => SyncResponse::Refused { reason: error.to_string() },
                                };
                                let _ = tx.blocking_send(Command::Respond(channel, response));
                                if matches!(taken, Ok(true)) {
                                    let _ = tx.blocking_send(Command::MembersChanged(None));
                                    let _ = tx.blocking_send(Command::Announce(None));
                                }
                            });
                            continue;
                        }
                        if let SyncRequest::Changed { namespace, shards } = request {
                            let _ = swarm.behaviour_mut().sync.send_response(channel, SyncResponse::Noted);
                            match namespace {
                                // Nothing to fetch of this library's own catalog, nor of
                                // one the peer does not share with it.
                                Some(namespace) if namespace == own => {}
                                Some(namespace) if !state.trust.catalog_between(&member, &namespace) => {}
                                Some(namespace) if notice_is_usable(&shards) => {
                                    // Straight to the changes of the shards that differ.
                                    let library = library.clone();
                                    let tx = commands_tx.clone();
                                    off_loop(move || {
                                        let catalogs = library.shared_with(&member);
                                        if let Some(request) = changes_for_notice(&catalogs, namespace, shards) {
                                            let _ = tx.blocking_send(Command::Request(peer, request));
                                        }
                                    });
                                }
                                _ => send(&mut swarm, state.rounds.hello(peer)),
                            }
                            continue;
                        }
                        let library = library.clone();
                        let tx = commands_tx.clone();
                        let span = tracing::debug_span!("peer", %peer, library = %member.fingerprint());
                        let _entered = span.enter();
                        off_loop(move || {
                            let response = answer(&library, &member, request);
                            let _ = tx.blocking_send(Command::Respond(channel, response));
                        });
                    }
                    request_response::Message::Response { request_id, response } => {
                        if state.nudges.remove(&request_id) {
                            continue;
                        }
                        if let Some(peer) = state.farewells.remove(&request_id) {
                            cut_off_if_gone(&mut swarm, &state, peer);
                            continue;
                        }
                        if let Some(member) = state.allowed.get(&peer).copied() {
                            work(library.clone(), commands_tx.clone(), peer, member, response);
                        } else {
                            { let connected = swarm.is_connected(&peer); send(&mut swarm, state.rounds.done(peer, connected)) };
                        }
                    }
                },
                SwarmEvent::Behaviour(BehaviourEvent::Gossip(gossipsub::Event::Message {
                    propagation_source, message_id, message,
                })) => {
                    let announcement = serde_json::from_slice::<Announcement>(&message.data).ok();
                    // Members only, on their own consortium's topic, about a catalog of
                    // that consortium: the author, the member passing it on, and the
                    // catalog named must all be current members of it.
                    let consortium = state.topics.get(message.topic.as_str()).copied();
                    let member_of = |peer: &PeerId| {
                        state.allowed.get(peer).zip(consortium).is_some_and(|(library, c)| {
                            state.trust.shares(library, &c)
                        })
                    };
                    let from_member = message.source.as_ref().is_some_and(member_of)
                        && member_of(&propagation_source)
                        && message.data.len() <= GOSSIP_BYTES_MAX
                        && announcement.as_ref().is_some_and(|a| {
                            a.namespace.zip(consortium).is_none_or(|(ns, c)| state.trust.shares(&ns, &c))
                        });
                    let verdict = if from_member {
                        gossipsub::MessageAcceptance::Accept
                    } else {
                        gossipsub::MessageAcceptance::Reject
                    };
                    let _ = swarm.behaviour_mut().gossip.report_message_validation_result(
                        &message_id,
                        &propagation_source,
                        verdict,
                    );
                    // A member that got this library's own catalog from it has nothing of
                    // it to give back.
                    let about_own = announcement
                        .as_ref()
                        .and_then(|a| a.namespace)
                        .is_some_and(|ns| ns == own);
                    if from_member && !about_own {
                        // An announcer connected here has sent its `Changed` notice
                        // directly; else pull from the member that passed it on.
                        if let Some(source) = message.source {
                            if !swarm.is_connected(&source) {
                                send(&mut swarm, state.rounds.hello(propagation_source));
                            }
                        }
                    }
                }
                _ => {}
            },
            _ = redial.tick() => dial_members(&mut swarm, &state),
            _ = catch_up.tick() => {
                let peers: Vec<PeerId> = swarm.connected_peers().copied().collect();
                for peer in peers {
                    if state.allowed.contains_key(&peer) {
                        send(&mut swarm, state.rounds.hello(peer));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> PeerId {
        identity::Keypair::generate_ed25519().public().to_peer_id()
    }

    /// Only relays in current members' circuit addresses are let in: not one named by a
    /// library that is no member, nor the member itself in its direct address.
    #[test]
    fn only_relays_in_current_members_circuit_addresses_are_kept() {
        let (member, stranger, kept, dropped) = (peer(), peer(), peer(), peer());
        let circuit = |relay: PeerId, to: PeerId| -> Multiaddr {
            format!("/ip4/127.0.0.1/tcp/4001/p2p/{relay}/p2p-circuit/p2p/{to}")
                .parse()
                .expect("address")
        };
        let direct: Multiaddr = format!("/ip4/127.0.0.1/tcp/4002/p2p/{member}")
            .parse()
            .expect("address");
        let addresses = BTreeMap::from([
            (member, vec![direct, circuit(kept, member)]),
            (stranger, vec![circuit(dropped, stranger)]),
        ]);
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        let members = BTreeMap::from([(member, LibraryId::from_key(&key))]);
        assert_eq!(member_relays(&addresses, &members), HashSet::from([kept]));
        assert!(member_relays(&addresses, &BTreeMap::new()).is_empty());
    }
}
