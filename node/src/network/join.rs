//! Joining over the network: a short-lived swarm under the invite's one-off identity (the
//! inviter's node admits that identity, for a `Join` only, while the invite is open; it
//! does not know this library's own key yet).

use std::sync::Arc;
use std::time::Duration;

use jalin_protocol::consortium::document::{Hash32, Signed};
use jalin_protocol::consortium::log::Invite;
use jalin_protocol::sync::{DirectoryRequest, DirectoryResponse};
use libp2p::futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{noise, relay, tcp, yamux, Multiaddr, PeerId, StreamProtocol};

use super::{code_identity, join_identity, peer_id_of, NetError, SyncRequest, SyncResponse};
use super::{REQUEST_BYTES_MAX, RESPONSE_BYTES_MAX};
use crate::codec::{Codec, Traffic};
use crate::join_code::{CodeError, JoinCode, Joiner};

/// Why joining a consortium over the network failed (the acceptance can still be sent
/// by hand while the invite is open).
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The invite names no address of the inviter's node: it was made offline.
    #[error(
        "the invite names no address of the inviter's node (it was made offline): send the \
         acceptance by hand"
    )]
    NoAddress,
    /// The invite's author key or join secret does not make a network identity.
    #[error("the invite does not make a network identity ({0})")]
    BadInvite(&'static str),
    /// No address of the inviter's node answered.
    #[error("could not reach the inviter's node at {addresses}: {error}")]
    Unreachable {
        /// The addresses tried.
        addresses: String,
        /// libp2p's account of the failure.
        error: String,
    },
    /// The inviter's node refused the join, and said why.
    #[error("the inviter's node refused: {0}")]
    Refused(String),
    /// The inviter's node answered with something other than the consortium's documents.
    #[error("the inviter's node answered something else")]
    Unexpected,
    /// The join request failed on the way.
    #[error("the join request failed: {0}")]
    Failed(request_response::OutboundFailure),
    /// No answer in time.
    #[error("no answer from the inviter's node in {} s", .0.as_secs())]
    Timeout(Duration),
    /// No node on the local network or at the relays has the code open.
    #[error(
        "no node on the local network or at the consortium's relay has code {0} open: check \
         the number, that the inviting library's node is running, and that it made the code \
         less than an hour ago"
    )]
    CodeNotFound(u16),
    /// The code's exchange failed (wrong words: the code is spent).
    #[error(transparent)]
    Code(#[from] CodeError),
    /// The network could not be set up.
    #[error("setting up the network: {0}")]
    Setup(String),
}

/// The lines of `documents` that belong to `consortium` (an inviter's node answers a join
/// with that consortium's documents; anything else it sends is not taken).
fn documents_of(documents: &str, consortium: &Hash32) -> String {
    documents
        .lines()
        .filter(|line| {
            jalin_protocol::consortium::Document::from_text(line.trim())
                .is_ok_and(|d| d.consortium() == *consortium)
        })
        .map(|line| format!("{line}\n"))
        .collect()
}

/// Joins over the network: reaches the inviter's node at the addresses in its invite,
/// under the invite's one-off identity, and hands it this library's acceptance. Returns
/// the consortium's documents (this library's add among them), to take in.
pub async fn join_over_network(
    invite: &Signed<Invite>,
    acceptance: String,
    timeout: Duration,
) -> Result<String, NetError> {
    let keypair = join_identity(&invite.body).ok_or(JoinError::BadInvite("its join secret"))?;
    let inviter = peer_id_of(&invite.author).ok_or(JoinError::BadInvite("the inviter's key"))?;
    let addresses: Vec<Multiaddr> = invite
        .body
        .addresses
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect();
    if addresses.is_empty() {
        return Err(JoinError::NoAddress.into());
    }
    // The relay client too: an inviter behind NAT names a circuit address.
    let mut swarm = short_swarm(keypair, timeout)?;
    let work = ask(
        &mut swarm,
        inviter,
        addresses,
        |swarm, peer| {
            swarm
                .behaviour_mut()
                .sync
                .send_request(&peer, SyncRequest::Join { acceptance })
        },
        |event| joined(event, invite),
    );
    Ok(tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| JoinError::Timeout(timeout))??)
}

/// How long the local network is listened to for the node that has a code open.
pub const LAN_WAIT: Duration = Duration::from_millis(1500);

/// Answers taken from the local network, at most.
const LAN_ANSWERS_MAX: usize = 16;

/// Asks the local network (`targets`: its broadcast address and port, or given
/// addresses) whose node has code `nameplate` open; the addresses answered, each with
/// its `/p2p/` peer id, the first answer first.
pub async fn ask_local_network(
    nameplate: u16,
    targets: &[std::net::SocketAddr],
    wait: Duration,
) -> Vec<Multiaddr> {
    let mut found = Vec::new();
    if targets.is_empty() {
        return found;
    }
    let socket = match tokio::net::UdpSocket::bind(("0.0.0.0", 0)).await {
        Ok(socket) => socket,
        Err(error) => {
            tracing::warn!("asking the local network for a join code: {error}");
            return found;
        }
    };
    let _ = socket.set_broadcast(true);
    let question = crate::join_code::query(nameplate);
    for target in targets {
        if let Err(error) = socket.send_to(question.as_bytes(), target).await {
            tracing::debug!(%target, "a join code's question not sent: {error}");
        }
    }
    let mut buffer = vec![0u8; crate::beacon::DATAGRAM_MAX];
    let deadline = tokio::time::Instant::now() + wait;
    let mut answers = 0;
    while answers < LAN_ANSWERS_MAX {
        let Ok(Ok((size, _))) =
            tokio::time::timeout_at(deadline, socket.recv_from(&mut buffer)).await
        else {
            break;
        };
        answers += 1;
        let Ok(text) = std::str::from_utf8(&buffer[..size]) else {
            continue;
        };
        for address in crate::join_code::answered(text, nameplate).unwrap_or_default() {
            if let Ok(address) = address.parse::<Multiaddr>() {
                if peer_of_address(&address).is_some() && !found.contains(&address) {
                    found.push(address);
                }
            }
        }
    }
    found
}

/// The peer id an address ends with (`/p2p/<id>`).
fn peer_of_address(address: &Multiaddr) -> Option<PeerId> {
    match address.iter().last()? {
        Protocol::P2p(peer) => Some(peer),
        _ => None,
    }
}

#[derive(NetworkBehaviour)]
struct CodeBehaviour {
    relay_client: relay::client::Behaviour,
    sync: request_response::Behaviour<Codec<SyncRequest, SyncResponse>>,
    directory: request_response::Behaviour<Codec<DirectoryRequest, DirectoryResponse>>,
}

/// Times the relays are asked for a code's node, and the pause between.
const RELAY_ROUNDS: usize = 3;
const RELAY_AGAIN_AFTER: Duration = Duration::from_secs(1);

/// How long one node found for a code has to answer before the next is tried.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The protocol of the relays' directory of open join codes.
pub const DIRECTORY_PROTOCOL: &str = "/jalin/code-directory/1";
/// Bytes of a directory message, at most.
pub const DIRECTORY_BYTES_MAX: u64 = 4 * 1024;

/// The ticket opened by a code, and the connection to the inviter's node it came over
/// (where the acceptance goes: [`CodeSession::join`]).
pub struct CodeSession {
    /// The invite's ticket, or the invitation holding it (with the agreement proposed).
    pub ticket: String,
    swarm: libp2p::Swarm<CodeBehaviour>,
    inviter: PeerId,
    addresses: Vec<Multiaddr>,
    timeout: Duration,
}

impl CodeSession {
    /// The node that opened the ticket: the inviter's own, or one that passed the
    /// exchange on to it.
    pub fn answered_by(&self) -> PeerId {
        self.inviter
    }

    /// Hands the inviter's node this library's acceptance of the ticket, on the code's
    /// connection (dialed again if it closed); returns the consortium's documents.
    pub async fn join(mut self, acceptance: String) -> Result<String, NetError> {
        // What the code opened: the ticket, or the invitation holding it.
        let invite = jalin_protocol::consortium::invitation::read(&self.ticket)
            .map_err(|_| JoinError::BadInvite("the ticket"))?
            .invite;
        let work = ask(
            &mut self.swarm,
            self.inviter,
            self.addresses.clone(),
            |swarm, peer| {
                swarm
                    .behaviour_mut()
                    .sync
                    .send_request(&peer, SyncRequest::Join { acceptance })
            },
            |event| joined(event, &invite),
        );
        Ok(tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| JoinError::Timeout(self.timeout))??)
    }
}

/// A `Join`'s answer among the events: the consortium's documents, or why not.
fn joined(event: CodeBehaviourEvent, invite: &Signed<Invite>) -> Option<Result<String, JoinError>> {
    match event {
        CodeBehaviourEvent::Sync(request_response::Event::Message {
            message: request_response::Message::Response { response, .. },
            ..
        }) => Some(match response {
            SyncResponse::Joined { documents } => {
                Ok(documents_of(&documents, &invite.body.consortium))
            }
            SyncResponse::Refused { reason } => Err(JoinError::Refused(reason)),
            _ => Err(JoinError::Unexpected),
        }),
        CodeBehaviourEvent::Sync(request_response::Event::OutboundFailure { error, .. }) => {
            Some(Err(JoinError::Failed(error)))
        }
        _ => None,
    }
}

/// Gets the ticket (or the invitation holding it) an inviter's node holds under `code`
/// ([`open_by_code`]).
pub async fn ticket_by_code(
    code: &JoinCode,
    lan: &[std::net::SocketAddr],
    relays: &[Multiaddr],
    timeout: Duration,
) -> Result<String, NetError> {
    Ok(open_by_code(code, lan, relays, timeout).await?.ticket)
}

/// Opens the ticket an inviter's node holds under `code`: finds that node on the local
/// network (`lan`: where to ask) or through the relays given (each address with its
/// `/p2p/` peer id), connects under the code number's identity, and proves the words by
/// SPAKE2. One node answering spends the code there, right or wrong.
pub async fn open_by_code(
    code: &JoinCode,
    lan: &[std::net::SocketAddr],
    relays: &[Multiaddr],
    timeout: Duration,
) -> Result<CodeSession, NetError> {
    let work = async {
        let mut candidates = ask_local_network(code.nameplate, lan, LAN_WAIT).await;
        let mut swarm = short_swarm(code_identity(code.nameplate), timeout)?;
        // The relays too, whatever the local network said: a stranger on the LAN can
        // answer first. A code made a moment ago may not be listed yet: asked again.
        for round in 0..RELAY_ROUNDS {
            if round > 0 {
                if !candidates.is_empty() || relays.is_empty() {
                    break;
                }
                tokio::time::sleep(RELAY_AGAIN_AFTER).await;
            }
            for relay in relays {
                let Some(relay_peer) = peer_of_address(relay) else {
                    continue;
                };
                let found = ask(
                    &mut swarm,
                    relay_peer,
                    vec![relay.clone()],
                    |swarm, peer| {
                        swarm.behaviour_mut().directory.send_request(
                            &peer,
                            DirectoryRequest::Find {
                                nameplate: code.nameplate,
                            },
                        )
                    },
                    |event| match event {
                        CodeBehaviourEvent::Directory(request_response::Event::Message {
                            message: request_response::Message::Response { response, .. },
                            ..
                        }) => Some(Ok(response)),
                        CodeBehaviourEvent::Directory(
                            request_response::Event::OutboundFailure { error, .. },
                        ) => Some(Err(JoinError::Failed(error))),
                        _ => None,
                    },
                )
                .await;
                match found {
                    Ok(DirectoryResponse::Found { peers }) => {
                        for peer in peers.iter().filter_map(|p| PeerId::from_bytes(p).ok()) {
                            candidates.push(
                                relay
                                    .clone()
                                    .with(Protocol::P2pCircuit)
                                    .with(Protocol::P2p(peer)),
                            );
                        }
                    }
                    Ok(other) => tracing::debug!(%relay, "the relay answered {other:?}"),
                    Err(error) => tracing::debug!(%relay, "asking the relay: {error}"),
                }
            }
        }
        if candidates.is_empty() {
            return Err(JoinError::CodeNotFound(code.nameplate));
        }
        // Each node found, with all its addresses (one answer names every interface).
        let mut nodes: Vec<(PeerId, Vec<Multiaddr>)> = Vec::new();
        for address in candidates {
            let Some(peer) = peer_of_address(&address) else {
                continue;
            };
            match nodes.iter_mut().find(|(p, _)| *p == peer) {
                Some((_, addresses)) => addresses.push(address),
                None => nodes.push((peer, vec![address])),
            }
        }
        let mut last = JoinError::CodeNotFound(code.nameplate);
        for (peer, addresses) in nodes {
            let (joiner, message) = Joiner::start(code);
            let nameplate = code.nameplate;
            let answer = tokio::time::timeout(
                ATTEMPT_TIMEOUT,
                ask(
                    &mut swarm,
                    peer,
                    addresses.clone(),
                    |swarm, peer| {
                        swarm
                            .behaviour_mut()
                            .sync
                            .send_request(&peer, SyncRequest::Code { nameplate, message })
                    },
                    |event| match event {
                        CodeBehaviourEvent::Sync(request_response::Event::Message {
                            message: request_response::Message::Response { response, .. },
                            ..
                        }) => Some(Ok(response)),
                        CodeBehaviourEvent::Sync(request_response::Event::OutboundFailure {
                            error,
                            ..
                        }) => Some(Err(JoinError::Failed(error))),
                        _ => None,
                    },
                ),
            )
            .await
            .unwrap_or(Err(JoinError::Timeout(ATTEMPT_TIMEOUT)));
            match answer {
                Ok(SyncResponse::Code { message, sealed }) => {
                    // This node had the code open and has spent it: no other try there.
                    // Wrong words there may be a stranger's answer: the next node found
                    // gets its own one try.
                    match joiner.finish(&message, &sealed) {
                        Ok(ticket) => {
                            return Ok(CodeSession {
                                ticket,
                                swarm,
                                inviter: peer,
                                addresses,
                                timeout,
                            })
                        }
                        Err(error) => last = JoinError::Code(error),
                    }
                }
                Ok(SyncResponse::Refused { reason }) => last = JoinError::Refused(reason),
                Ok(_) => last = JoinError::Unexpected,
                Err(error) => last = error,
            }
        }
        Err(last)
    };
    Ok(tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| JoinError::Timeout(timeout))??)
}

/// A short-lived swarm under a one-off identity (an invite's, a code number's), able to
/// dial through relays.
fn short_swarm(
    keypair: libp2p::identity::Keypair,
    timeout: Duration,
) -> Result<libp2p::Swarm<CodeBehaviour>, JoinError> {
    let traffic = Arc::new(Traffic::default());
    let setup = |e: &dyn std::fmt::Display| JoinError::Setup(e.to_string());
    Ok(libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| setup(&e))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| setup(&e))?
        .with_behaviour(|_, relay_client| CodeBehaviour {
            relay_client,
            sync: request_response::Behaviour::with_codec(
                Codec::<SyncRequest, SyncResponse>::new(
                    REQUEST_BYTES_MAX,
                    RESPONSE_BYTES_MAX,
                    traffic.clone(),
                ),
                [(
                    StreamProtocol::new("/jalin/sync/2"),
                    ProtocolSupport::Outbound,
                )],
                request_response::Config::default().with_request_timeout(timeout),
            ),
            directory: request_response::Behaviour::with_codec(
                Codec::<DirectoryRequest, DirectoryResponse>::new(
                    DIRECTORY_BYTES_MAX,
                    DIRECTORY_BYTES_MAX,
                    traffic.clone(),
                ),
                [(
                    StreamProtocol::new(DIRECTORY_PROTOCOL),
                    ProtocolSupport::Outbound,
                )],
                request_response::Config::default().with_request_timeout(timeout),
            ),
        })
        .map_err(|e| setup(&e))?
        .build())
}

/// Connects to `peer` at `addresses` (unless connected), sends what `send` makes, and
/// waits for what `pick` takes from the behaviour's events.
async fn ask<T>(
    swarm: &mut libp2p::Swarm<CodeBehaviour>,
    peer: PeerId,
    addresses: Vec<Multiaddr>,
    send: impl FnOnce(&mut libp2p::Swarm<CodeBehaviour>, PeerId) -> request_response::OutboundRequestId,
    pick: impl Fn(CodeBehaviourEvent) -> Option<Result<T, JoinError>>,
) -> Result<T, JoinError> {
    let mut send = Some(send);
    if swarm.is_connected(&peer) {
        if let Some(send) = send.take() {
            send(swarm, peer);
        }
    } else {
        let options = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
            .addresses(addresses.clone())
            .build();
        swarm
            .dial(options)
            .map_err(|error| JoinError::Unreachable {
                addresses: list(&addresses),
                error: error.to_string(),
            })?;
    }
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == peer => {
                if let Some(send) = send.take() {
                    send(swarm, peer);
                }
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(failed),
                error,
                ..
            } if failed == peer => {
                return Err(JoinError::Unreachable {
                    addresses: list(&addresses),
                    error: error.to_string(),
                });
            }
            SwarmEvent::Behaviour(event) => {
                if let Some(result) = pick(event) {
                    return result;
                }
            }
            _ => {}
        }
    }
}

fn list(addresses: &[Multiaddr]) -> String {
    addresses
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
