//! `jalin relay`: a relay node for a consortium, on a machine members can all reach (a
//! server with a public address). Members behind NAT listen through it; others reach them
//! through it, and hole punching (DCUtR) then tries a direct connection. It also answers
//! AutoNAT probes, so members learn whether they are reachable.
//!
//! The relay sees only Noise-encrypted bytes between members. With a member list (the
//! consortium's documents) it serves members only, each circuit up to
//! [`MEMBER_CIRCUIT_BYTES_MAX`]; open (`--open`), anyone, under libp2p's defaults for a
//! public relay: enough to punch a hole, not to carry a catalog.
//!
//! It also keeps a directory of join codes (`/jalin/code-directory/1`): a member's node
//! says which code numbers are open on it, and a library joining by code asks which node
//! has its number open, then reaches it through the relay. To ask, a joiner connects
//! under the number's identity ([`crate::network::code_identity`]): a relay with a member
//! list admits those 999 identities besides the members, for the directory and circuits
//! to members (whose nodes admit one only while its code is open). The directory is
//! memory only, at most [`DIRECTORY_NODES_MAX`] nodes' lists, each dropped when its node
//! disconnects or its time runs out.

use crate::codec::{Codec, Traffic};
use jalin_protocol::sync::{DirectoryRequest, DirectoryResponse, DIRECTORY_CODES_MAX};
use libp2p::futures::StreamExt;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::StreamProtocol;
use libp2p::{
    allow_block_list, autonat, identify, identity, noise, ping, relay, tcp, yamux, Multiaddr,
    PeerId,
};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(NetworkBehaviour)]
struct RelayBehaviour {
    allowed: Toggle<allow_block_list::Behaviour<allow_block_list::AllowedPeers>>,
    relay: relay::Behaviour,
    directory: request_response::Behaviour<Codec<DirectoryRequest, DirectoryResponse>>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    autonat: autonat::Behaviour,
}

/// How long one relayed connection between members may last before they dial again.
const CIRCUIT_DURATION: Duration = Duration::from_secs(6 * 3600);

/// Bytes one circuit between members may carry: a catalog of a million records
/// bootstraps in ~250 MB; past this the members connect again.
pub const MEMBER_CIRCUIT_BYTES_MAX: u64 = 1 << 30;

/// Circuits relayed at once, and per peer: a consortium's members behind NAT, each
/// reached by a few others at a time.
const CIRCUITS_MAX: usize = 64;
const CIRCUITS_PER_PEER_MAX: usize = 8;

/// Circuits one join code's identity may open per [`JOINER_CIRCUITS_WINDOW`] (a join
/// takes one or two).
const JOINER_CIRCUITS_MAX: u32 = 4;
const JOINER_CIRCUITS_WINDOW: Duration = Duration::from_secs(60);

/// Nodes whose open join codes the directory keeps, at most.
pub const DIRECTORY_NODES_MAX: usize = 1024;

/// The directory of open join codes: each node's numbers, each until when.
#[derive(Default)]
struct Directory(HashMap<PeerId, Vec<(u16, std::time::Instant)>>);

impl Directory {
    fn answer(
        &mut self,
        peer: PeerId,
        request: DirectoryRequest,
        members: Option<&BTreeSet<PeerId>>,
    ) -> DirectoryResponse {
        let now = std::time::Instant::now();
        for open in self.0.values_mut() {
            open.retain(|(_, until)| *until > now);
        }
        self.0.retain(|_, open| !open.is_empty());
        match request {
            DirectoryRequest::Open { codes } => {
                if members.is_some_and(|m| !m.contains(&peer)) {
                    return DirectoryResponse::Refused {
                        reason: "only the consortium's members list codes here".into(),
                    };
                }
                if codes.is_empty() {
                    self.0.remove(&peer);
                } else if self.0.len() < DIRECTORY_NODES_MAX || self.0.contains_key(&peer) {
                    let most = crate::join_code::CODE_LIFETIME_MAX_MS / 1000;
                    let open = codes
                        .iter()
                        .map(|(nameplate, seconds)| {
                            let lifetime = Duration::from_secs(u64::from(*seconds).min(most));
                            (*nameplate, now + lifetime)
                        })
                        .collect();
                    self.0.insert(peer, open);
                } else {
                    return DirectoryResponse::Refused {
                        reason: "the relay's directory is full".into(),
                    };
                }
                DirectoryResponse::Noted
            }
            DirectoryRequest::Find { nameplate } => DirectoryResponse::Found {
                peers: self
                    .0
                    .iter()
                    .filter(|(_, open)| open.iter().any(|(n, _)| *n == nameplate))
                    .take(DIRECTORY_CODES_MAX)
                    .map(|(peer, _)| serde_bytes::ByteBuf::from(peer.to_bytes()))
                    .collect(),
            },
        }
    }
}

/// Addresses the relay reports as it comes up, waiting to be printed.
pub const ADDRESSES_QUEUED_MAX: usize = 16;

/// Who a relay serves.
#[derive(Clone, Debug)]
pub enum Access {
    /// The members of a consortium (their peer ids).
    Members(BTreeSet<PeerId>),
    /// Anyone, with libp2p's limits for a public relay.
    Open,
}

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The data dir's key is not an ed25519 key libp2p takes.
    #[error("the library key: {0}")]
    Key(#[from] identity::DecodingError),
    /// The transport could not be set up.
    #[error("the network transport: {0}")]
    Transport(#[from] noise::Error),
    /// Nothing listens at the address.
    #[error("listening: {0}")]
    Listen(#[from] libp2p::TransportError<std::io::Error>),
}

/// Runs a relay with `key`'s identity on `listen` until `shutdown`; each address it
/// listens on (with `/p2p/<its peer id>`) is sent to `addresses` as it comes up.
pub async fn run(
    key: &ed25519_dalek::SigningKey,
    listen: Multiaddr,
    access: Access,
    addresses: mpsc::Sender<Multiaddr>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), RelayError> {
    let mut secret = key.to_bytes();
    let keypair = identity::Keypair::ed25519_from_bytes(&mut secret)?;
    let members = match &access {
        Access::Members(members) => Some(members.clone()),
        Access::Open => None,
    };
    let local = keypair.public().to_peer_id();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|key| {
            let allowed = members.as_ref().map(|members| {
                let mut allowed =
                    allow_block_list::Behaviour::<allow_block_list::AllowedPeers>::default();
                for peer in members {
                    allowed.allow_peer(*peer);
                }
                // Libraries joining by code ask under their code number's identity.
                for nameplate in 1..=crate::join_code::NAMEPLATE_MAX {
                    allowed.allow_peer(
                        crate::network::code_identity(nameplate)
                            .public()
                            .to_peer_id(),
                    );
                }
                allowed
            });
            let config = match &access {
                Access::Members(members) => {
                    let mut config = relay::Config {
                        max_circuit_duration: CIRCUIT_DURATION,
                        max_circuit_bytes: MEMBER_CIRCUIT_BYTES_MAX,
                        max_circuits: CIRCUITS_MAX,
                        max_circuits_per_peer: CIRCUITS_PER_PEER_MAX,
                        ..relay::Config::default()
                    };
                    // Only members are reachable here (a reservation): a joiner by code,
                    // let in under its number's identity, reaches members and no one
                    // else, and opens few circuits.
                    let reserving = members.clone();
                    config.reservation_rate_limiters.push(Box::new(
                        move |peer: PeerId, _: &Multiaddr, _| reserving.contains(&peer),
                    ));
                    let opening = members.clone();
                    let mut by_joiner: HashMap<PeerId, (std::time::Instant, u32)> = HashMap::new();
                    // In place of libp2p's defaults (30 circuits a peer, then one in two
                    // minutes, counted whether or not the member asked for is online): a
                    // member's node asks for a circuit to each member it is not connected
                    // to, every few minutes, and must not be shut out for it. Circuits
                    // open at once stay capped by `CIRCUITS_MAX` and per peer.
                    config.circuit_src_rate_limiters.clear();
                    config.circuit_src_rate_limiters.push(Box::new(
                        move |peer: PeerId, _: &Multiaddr, now: std::time::Instant| {
                            if opening.contains(&peer) {
                                return true;
                            }
                            by_joiner.retain(|_, (since, _)| {
                                now.duration_since(*since) < JOINER_CIRCUITS_WINDOW
                            });
                            let (_, count) = by_joiner.entry(peer).or_insert((now, 0));
                            *count += 1;
                            *count <= JOINER_CIRCUITS_MAX
                        },
                    ));
                    config
                }
                Access::Open => relay::Config::default(),
            };
            RelayBehaviour {
                allowed: Toggle::from(allowed),
                relay: relay::Behaviour::new(key.public().to_peer_id(), config),
                directory: request_response::Behaviour::with_codec(
                    Codec::new(
                        crate::network::DIRECTORY_BYTES_MAX,
                        crate::network::DIRECTORY_BYTES_MAX,
                        Arc::new(Traffic::default()),
                    ),
                    [(
                        StreamProtocol::new(crate::network::DIRECTORY_PROTOCOL),
                        ProtocolSupport::Inbound,
                    )],
                    request_response::Config::default(),
                ),
                identify: identify::Behaviour::new(identify::Config::new(
                    "/jalin/1".into(),
                    key.public(),
                )),
                ping: ping::Behaviour::default(),
                autonat: autonat::Behaviour::new(
                    key.public().to_peer_id(),
                    autonat::Config::default(),
                ),
            }
        })
        .map_err(|e| -> RelayError { match e {} })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build();
    swarm.listen_on(listen)?;
    let mut directory = Directory::default();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { address, .. } => {
                    // A relay grants reservations only with an address to give out: where
                    // it listens is where members reach it.
                    swarm.add_external_address(address.clone());
                    let address = address.with(libp2p::multiaddr::Protocol::P2p(local));
                    if addresses.try_send(address).is_err() {
                        tracing::debug!("relay address not reported: nobody is reading them");
                    }
                }
                SwarmEvent::Behaviour(RelayBehaviourEvent::Relay(event)) => {
                    tracing::info!(?event, "relay");
                }
                SwarmEvent::Behaviour(RelayBehaviourEvent::Directory(
                    request_response::Event::Message {
                        peer,
                        message: request_response::Message::Request { request, channel, .. },
                        ..
                    },
                )) => {
                    let response = directory.answer(peer, request, members.as_ref());
                    let _ = swarm.behaviour_mut().directory.send_response(channel, response);
                }
                SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                    directory.0.remove(&peer_id);
                }
                _ => {}
            }
        }
    }
}

/// The peer ids of the current members of the consortium whose documents `text` holds
/// (as `jalin consortium export` writes them).
pub fn members_of_documents(text: &str) -> Result<BTreeSet<PeerId>, String> {
    use jalin_protocol::consortium::log::Log;
    use jalin_protocol::consortium::{read_documents, Document};
    let mut ops = Vec::new();
    for (line, document) in read_documents(text) {
        match document {
            Ok(Document::Op(op)) => ops.push(op),
            Ok(_) => {}
            Err(error) => return Err(format!("line {line}: {error}")),
        }
    }
    let Some(at) = ops.iter().position(|op| op.body.consortium.is_none()) else {
        return Err("no consortium's founding operation in these documents".into());
    };
    let mut log = Log::new(ops.remove(at)).map_err(|e| e.to_string())?;
    for op in ops {
        log.insert(op).map_err(|e| e.to_string())?;
    }
    Ok(log
        .state()
        .members
        .keys()
        .filter_map(crate::network::peer_id_of)
        .collect())
}
