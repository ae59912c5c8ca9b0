//! Joining a consortium with a ticket, the one way the CLI (`jalin join`) and the web
//! page (Kerja sama -> Bergabung) both do it: the acceptance is made here; unless the
//! ticket names no address of the inviter's node (an invite made offline) or the caller
//! asks for no network, it goes to that node over the network (under the invite's one-off
//! identity, [`crate::network::join_over_network`]), and the consortium's documents it
//! answers with are taken in. Each caller runs the consortium requests its own way (the
//! CLI through the running node's API or in process, the web page inside the node).

use std::time::Duration;

use jalin_protocol::consortium::document::Signed;
use jalin_protocol::consortium::log::Invite;

use crate::consortium_requests::{Answer, Request};
use crate::network::NetError;

/// How long the inviter's node has to answer a join: dialing, the noise handshake and one
/// request, over a slow link.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How a join went.
#[derive(Debug)]
pub enum Joined {
    /// The inviter's node took the acceptance, and the consortium's documents it sent
    /// back were taken in (`report` says what came).
    OverNetwork {
        /// The consortium, as the invite names it.
        consortium_name: String,
        /// The inviting library, as the invite names it.
        inviter_name: String,
        /// What taking in the documents did.
        report: Answer,
    },
    /// A code opened an invitation with an agreement, and the library has not agreed
    /// yet: it reads the agreement, then joins with the invitation (as with a ticket).
    Proposed {
        /// The invitation's text.
        invitation: String,
    },
    /// Not joined over the network: the acceptance is to be sent back by hand.
    ByHand {
        /// The acceptance (`JALIN-ACCEPT:...`).
        acceptance: String,
        /// What making it said.
        message: String,
        /// Why reaching the inviter's node failed, when it was tried.
        failure: Option<NetError>,
    },
}

/// Joins with `ticket` (see the module's docs). `reaching` hears of the invite just
/// before its node is reached (a join can take up to [`JOIN_TIMEOUT`]); `run` runs a
/// consortium request. A request `run` refuses is the error; a network failure is not
/// (the acceptance still works by hand): it is in [`Joined::ByHand`].
pub async fn join_with_ticket<E, F>(
    ticket: &str,
    offline: bool,
    reaching: impl FnOnce(&Invite),
    mut run: impl FnMut(Request) -> F,
) -> Result<Joined, E>
where
    F: std::future::Future<Output = Result<Answer, E>>,
{
    let invite = Signed::<Invite>::from_text(ticket.trim()).ok();
    let made = run(Request::Join {
        ticket: ticket.to_string(),
    })
    .await?;
    let acceptance = made.text.clone().unwrap_or_default();
    let Some(invite) = invite.filter(|i| !offline && !i.body.addresses.is_empty()) else {
        return Ok(Joined::ByHand {
            acceptance,
            message: made.message,
            failure: None,
        });
    };
    reaching(&invite.body);
    match crate::network::join_over_network(&invite, acceptance.clone(), JOIN_TIMEOUT).await {
        Ok(documents) => {
            let report = run(Request::Import { text: documents }).await?;
            Ok(Joined::OverNetwork {
                consortium_name: invite.body.consortium_name.clone(),
                inviter_name: invite.body.inviter_name.clone(),
                report,
            })
        }
        Err(failure) => Ok(Joined::ByHand {
            acceptance,
            message: made.message,
            failure: Some(failure),
        }),
    }
}

/// Joins with a code read over the phone: the inviter's node is found and the ticket
/// opened ([`crate::network::open_by_code`]), then the join goes as with the ticket, its
/// acceptance sent on the code's connection (which a relay lets through). The outer
/// error is `run`'s; the inner one says why no ticket was opened (a wrong code among
/// them: spent). A ticket opened but an acceptance not taken is [`Joined::ByHand`].
pub async fn join_with_code<E, F>(
    code: &crate::join_code::JoinCode,
    lan: &[std::net::SocketAddr],
    relays: &[libp2p::Multiaddr],
    agree: bool,
    reaching: impl FnOnce(&Invite),
    mut run: impl FnMut(Request) -> F,
) -> Result<Result<Joined, NetError>, E>
where
    F: std::future::Future<Output = Result<Answer, E>>,
{
    let session = match crate::network::open_by_code(code, lan, relays, JOIN_TIMEOUT).await {
        Ok(session) => session,
        Err(error) => return Ok(Err(error)),
    };
    let Ok(invitation) = jalin_protocol::consortium::invitation::read(&session.ticket) else {
        return Ok(Err(crate::network::JoinError::BadInvite(
            "the ticket it opened",
        )
        .into()));
    };
    if invitation.agreement.is_some() && !agree {
        return Ok(Ok(Joined::Proposed {
            invitation: session.ticket.clone(),
        }));
    }
    let invite = invitation.invite;
    let made = run(Request::Join {
        ticket: invitation.ticket.clone(),
    })
    .await?;
    let acceptance = made.text.clone().unwrap_or_default();
    reaching(&invite.body);
    // The acceptance goes to the inviter alone: a node that passed the exchange on to it
    // (a stranger answering the question, a hostile relay) is not handed it; the join
    // then goes as a ticket's does, to the ticket's addresses under its identity.
    let sent = if crate::network::peer_id_of(&invite.author) == Some(session.answered_by()) {
        session.join(acceptance.clone()).await
    } else {
        crate::network::join_over_network(&invite, acceptance.clone(), JOIN_TIMEOUT).await
    };
    Ok(Ok(match sent {
        Ok(documents) => {
            let report = run(Request::Import { text: documents }).await?;
            Joined::OverNetwork {
                consortium_name: invite.body.consortium_name.clone(),
                inviter_name: invite.body.inviter_name.clone(),
                report,
            }
        }
        Err(failure) => Joined::ByHand {
            acceptance,
            message: made.message,
            failure: Some(failure),
        },
    }))
}
