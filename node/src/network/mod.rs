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
use jalin_protocol::ill::{IllAck, IllPush, Receipt};
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
/// Largest interlibrary-loan push: its messages and their framing.
const ILL_PUSH_BYTES_MAX: u64 =
    (jalin_protocol::ill::PUSH_MESSAGES_MAX * (jalin_protocol::ill::MESSAGE_BYTES_MAX + 8)) as u64;
/// Largest answer to a push: a receipt per message, each reason bounded.
const ILL_ACK_BYTES_MAX: u64 =
    (jalin_protocol::ill::PUSH_MESSAGES_MAX * (jalin_protocol::ill::TEXT_MAX + 8)) as u64;
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

mod answers;
mod event_loop;
mod join;
mod link;
mod members;
mod rounds;

use event_loop::{NetLoop, NetState};
pub use join::{
    join_over_network, open_by_code, ticket_by_code, CodeSession, JoinError, DIRECTORY_BYTES_MAX,
    DIRECTORY_PROTOCOL,
};
use members::{apply_members, forget_strangers, is_circuit, member_set};
use rounds::Rounds;

#[derive(NetworkBehaviour)]
struct Behaviour {
    allowed: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    limits: connection_limits::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    sync: request_response::Behaviour<Codec<SyncRequest, SyncResponse>>,
    ill: request_response::Behaviour<Codec<IllPush, IllAck>>,
    /// Tells this library's relays which join codes are open here.
    directory: request_response::Behaviour<
        Codec<jalin_protocol::sync::DirectoryRequest, jalin_protocol::sync::DirectoryResponse>,
    >,
    gossip: gossipsub::Behaviour,
    mdns: Toggle<mdns::tokio::Behaviour>,
    relay_client: relay::client::Behaviour,
    dcutr: dcutr::Behaviour,
    autonat: autonat::Behaviour,
}

/// What the network task is asked to do, by the node through a [`NetHandle`]. (Its
/// workers' results come back as [`event_loop::Worked`].)
enum Command {
    Dial(
        Multiaddr,
        oneshot::Sender<Result<(), libp2p::swarm::DialError>>,
    ),
    Disconnect(PeerId),
    ListenAddresses(oneshot::Sender<Vec<Multiaddr>>),
    Peers(oneshot::Sender<Vec<PeerId>>),
    Routes(oneshot::Sender<BTreeMap<PeerId, Route>>),
    /// Membership may have changed: rebuild the allow-list and topics, then tell the
    /// sender (if any) it is done.
    MembersChanged(Option<oneshot::Sender<()>>),
    /// A local change: announce it.
    Announce(Option<LibraryId>),
    /// Catch up with every connected member now.
    CatchUp,
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

/// How a connected peer is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    /// At least one connection straight to it (on the LAN, over the internet, or a hole
    /// punched through both NATs).
    Direct,
    /// Only through a relay: every byte goes by the relay, within its caps.
    Relay,
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

    /// Connected peers, and whether each is reached directly or only through a relay.
    pub async fn routes(&self) -> Result<BTreeMap<PeerId, Route>, NetError> {
        self.ask(Command::Routes).await
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

/// The one-off network identity of an invite's holder.
pub fn join_identity(invite: &Invite) -> Option<identity::Keypair> {
    identity::Keypair::ed25519_from_bytes(invite.join_seed()).ok()
}

/// The identity a joiner by code connects under: derived from the code's number alone,
/// so anyone can take it; the inviter's node admits it only while that code is open, for
/// one try (the words are the secret, proven by SPAKE2 inside that one request).
pub fn code_identity(nameplate: u16) -> identity::Keypair {
    let mut seed: [u8; 32] = Sha256::new()
        .chain_update(b"jalin/v1/join-code-identity\0")
        .chain_update(nameplate.to_be_bytes())
        .finalize()
        .into();
    identity::Keypair::ed25519_from_bytes(&mut seed).expect("32 bytes make an ed25519 key")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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
                    [(StreamProtocol::new("/jalin/sync/2"), ProtocolSupport::Full)],
                    request_response::Config::default().with_request_timeout(SYNC_REQUEST_TIMEOUT),
                ),
                ill: request_response::Behaviour::with_codec(
                    Codec::new(ILL_PUSH_BYTES_MAX, ILL_ACK_BYTES_MAX, traffic.clone()),
                    [(StreamProtocol::new("/jalin/ill/1"), ProtocolSupport::Full)],
                    request_response::Config::default().with_request_timeout(SYNC_REQUEST_TIMEOUT),
                ),
                directory: request_response::Behaviour::with_codec(
                    Codec::new(DIRECTORY_BYTES_MAX, DIRECTORY_BYTES_MAX, traffic.clone()),
                    [(
                        StreamProtocol::new(DIRECTORY_PROTOCOL),
                        ProtocolSupport::Outbound,
                    )],
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
    let mut relay_addresses = Vec::new();
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
        relay_addresses.push(address);
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
        own_relays: relays.clone(),
        relay_addresses,
        relays,
        ..NetState::default()
    };
    // Reachable through the relays first: members behind NAT are dialed there.
    event_loop::listen_through_relays(&mut swarm, &mut state);
    apply_members(&mut swarm, &mut state, members);
    let (tx, rx) = mpsc::channel(COMMANDS_MAX);
    let handle = NetHandle {
        commands: tx,
        peer_id,
        traffic,
    };
    let net = NetLoop::new(swarm, library, state);
    Ok((handle, event_loop::run(net, rx, shutdown)))
}
