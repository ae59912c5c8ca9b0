//! Joining over the network: a short-lived swarm under the invite's one-off identity (the
//! inviter's node admits that identity, for a `Join` only, while the invite is open; it
//! does not know this library's own key yet).

use std::sync::Arc;
use std::time::Duration;

use jalin_protocol::consortium::document::{Hash32, Signed};
use jalin_protocol::consortium::log::Invite;
use libp2p::futures::StreamExt;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, Multiaddr, StreamProtocol};

use super::{join_identity, peer_id_of, NetError, SyncRequest, SyncResponse};
use super::{REQUEST_BYTES_MAX, RESPONSE_BYTES_MAX};
use crate::codec::{Codec, Traffic};

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
    let traffic = Arc::new(Traffic::default());
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| NetError::Setup(e.into()))?
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(
                Codec::<SyncRequest, SyncResponse>::new(
                    REQUEST_BYTES_MAX,
                    RESPONSE_BYTES_MAX,
                    traffic,
                ),
                [(
                    StreamProtocol::new("/jalin/sync/2"),
                    ProtocolSupport::Outbound,
                )],
                request_response::Config::default().with_request_timeout(timeout),
            )
        })
        .map_err(|e| NetError::Setup(e.into()))?
        .build();
    let options = libp2p::swarm::dial_opts::DialOpts::peer_id(inviter)
        .addresses(addresses.clone())
        .build();
    swarm.dial(options).map_err(NetError::Dial)?;
    let mut acceptance = Some(acceptance);
    let work = async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == inviter => {
                    if let Some(acceptance) = acceptance.take() {
                        swarm
                            .behaviour_mut()
                            .send_request(&inviter, SyncRequest::Join { acceptance });
                    }
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    return Err(JoinError::Unreachable {
                        addresses: addresses
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", "),
                        error: error.to_string(),
                    });
                }
                SwarmEvent::Behaviour(request_response::Event::Message {
                    message: request_response::Message::Response { response, .. },
                    ..
                }) => {
                    return match response {
                        SyncResponse::Joined { documents } => {
                            Ok(documents_of(&documents, &invite.body.consortium))
                        }
                        SyncResponse::Refused { reason } => Err(JoinError::Refused(reason)),
                        _ => Err(JoinError::Unexpected),
                    };
                }
                SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                    error, ..
                }) => {
                    return Err(JoinError::Failed(error));
                }
                _ => {}
            }
        }
    };
    Ok(tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| JoinError::Timeout(timeout))??)
}
