//! Finding partners on the local network (`[partners] lan = true`): the node sends its
//! signed profile as one UDP datagram, once a minute, to the addresses configured (the
//! LAN's broadcast address by default), and takes in the profiles other libraries' nodes
//! send the same way. Nothing is answered and no connection is made: the members-only
//! network is untouched. What arrives is bounded: one datagram of at most
//! [`DATAGRAM_MAX`] bytes, at most [`PER_SECOND_MAX`] a second looked at, each a signed
//! profile checked like a pasted one, and the profiles heard kept in memory only, at most
//! [`crate::profiles::HEARD_MAX`] (a stranger on the LAN can fill that list, not the
//! store); the librarian keeps one by taking it in from the partners page.
//!
//! The same port answers one question, with or without `lan`, while the node's network
//! runs: "whose node has join code N open?" ([`crate::join_code::query`]). The node with
//! that code open answers the asker alone with its addresses, never in more bytes than
//! the question's, and only to an asker on a local network's addresses; no other node,
//! and no node with no code open, answers anything.

use crate::library::Library;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The largest datagram looked at (a full profile is about 2,500 bytes).
pub const DATAGRAM_MAX: usize = 6_144;
/// Datagrams looked at per second, at most; the rest are dropped unread.
pub const PER_SECOND_MAX: u32 = 20;
/// Of those, from one address and port, at most: one noisy sender does not silence the
/// others.
pub const PER_SOURCE_MAX: u32 = 3;
/// How often this library's profile is sent.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(60);

/// Sends and hears profiles until `stop`. A port that cannot be bound is logged and the
/// node goes on without it.
pub async fn run(
    library: Arc<Library>,
    net: Option<crate::network::NetHandle>,
    stop: CancellationToken,
) {
    let config = library.data().config.partners.clone();
    let lan = config.lan;
    let socket = match tokio::net::UdpSocket::bind(("0.0.0.0", config.port)).await {
        Ok(socket) => socket,
        Err(error) => {
            let said = format!(
                "the local network: UDP port {} is not free ({error}); profiles are neither \
                 sent nor heard, and join codes are not found here",
                config.port
            );
            if lan {
                tracing::warn!("{said}");
            } else {
                tracing::info!("{said}");
            }
            // The node goes on without it (a part that ends would stop the node).
            stop.cancelled().await;
            return;
        }
    };
    if let Err(error) = socket.set_broadcast(true) {
        tracing::warn!("finding partners on the local network: no broadcast ({error})");
    }
    let targets: Vec<std::net::SocketAddr> = config
        .announce_to
        .iter()
        .filter_map(|a| match a.parse() {
            Ok(address) => Some(address),
            Err(_) => {
                tracing::warn!("[partners] announce_to: {a:?} is not an address:port");
                None
            }
        })
        .collect();
    let mut every = tokio::time::interval(ANNOUNCE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buffer = vec![0u8; DATAGRAM_MAX + 1];
    let (mut second, mut looked_at) = (tokio::time::Instant::now(), 0u32);
    let mut by_source: std::collections::HashMap<std::net::SocketAddr, u32> =
        std::collections::HashMap::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick(), if lan => {
                let own = library.clone();
                let text = tokio::task::spawn_blocking(move || {
                    crate::profiles::own_profile(&own).map(|p| p.to_text())
                })
                .await;
                match text {
                    Ok(Ok(text)) => {
                        for target in &targets {
                            if let Err(error) = socket.send_to(text.as_bytes(), target).await {
                                tracing::debug!(%target, "a profile not sent: {error}");
                            }
                        }
                    }
                    Ok(Err(error)) => tracing::warn!("this library's profile: {error}"),
                    Err(error) => tracing::warn!("this library's profile: {error}"),
                }
            }
            received = socket.recv_from(&mut buffer) => {
                let Ok((size, from)) = received else { continue };
                if second.elapsed() >= Duration::from_secs(1) {
                    (second, looked_at) = (tokio::time::Instant::now(), 0);
                    by_source.clear();
                }
                looked_at = looked_at.saturating_add(1);
                // At most 64 addresses are counted a second (spoofed ones included).
                if by_source.len() >= 64 && !by_source.contains_key(&from) {
                    continue;
                }
                let from_here = by_source.entry(from).or_default();
                *from_here = from_here.saturating_add(1);
                if size > DATAGRAM_MAX || looked_at > PER_SECOND_MAX || *from_here > PER_SOURCE_MAX {
                    continue;
                }
                let Ok(text) = std::str::from_utf8(&buffer[..size]).map(str::to_string) else {
                    continue;
                };
                if let Some(nameplate) = crate::join_code::asked(&text)
                    .filter(|_| crate::join_code::is_local(&from.ip()))
                {
                    answer_code(&library, net.as_ref(), &socket, nameplate, from).await;
                    continue;
                }
                if !lan {
                    continue;
                }
                let hearer = library.clone();
                let heard = tokio::task::spawn_blocking(move || {
                    hearer.profiles().hear(&hearer.id(), &text, hearer.now_ms())
                })
                .await;
                if let Ok(Err(error)) = heard {
                    tracing::debug!(%from, "a profile heard on the local network is refused: {error}");
                }
            }
        }
    }
}

/// Answers a join code's question if the code is open here: this node's addresses.
async fn answer_code(
    library: &Library,
    net: Option<&crate::network::NetHandle>,
    socket: &tokio::net::UdpSocket,
    nameplate: u16,
    from: std::net::SocketAddr,
) {
    let Some(net) = net else { return };
    if !library.join_codes().is_open(nameplate, library.now_ms()) {
        return;
    }
    let addresses: Vec<String> = net
        .listen_addresses()
        .await
        .unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect();
    let answer = crate::join_code::answer_query(nameplate, &addresses);
    if let Err(error) = socket.send_to(answer.as_bytes(), from).await {
        tracing::debug!(%from, "a join code's answer not sent: {error}");
    }
}
