//! The allow-list: who may connect (current co-members, holders of open invites), the
//! gossip topics of this library's consortia, and dialing members where they listen.

use super::*;

/// Who may connect, and where to find the members.
#[derive(Default)]
pub(super) struct MemberSet {
    /// Every library sharing a consortium with this one as current members (this library
    /// among them): the allow-list ([`Trust::co_members`]).
    pub(super) members: BTreeMap<PeerId, LibraryId>,
    /// One-off identities of this library's open invites, and their consortium.
    pub(super) joiners: BTreeMap<PeerId, Hash32>,
    /// Identities of this node's open join codes, and their numbers.
    pub(super) codes: BTreeMap<PeerId, u16>,
    /// The consortia this library is a current member of (their gossip topics).
    pub(super) consortia: Vec<Hash32>,
    /// The rule behind it all.
    pub(super) trust: Arc<Trust>,
    /// Addresses known for members: said when they joined, in invites, seen by identify.
    pub(super) addresses: BTreeMap<PeerId, Vec<Multiaddr>>,
    /// This library's own leave operations and the members each left behind, who are told
    /// (`SyncRequest::Left`) before they are cut off: `(member, consortium, operation)`.
    pub(super) farewells: Vec<(PeerId, Hash32, String)>,
}

/// The co-members, open invites' identities, this library's consortia and the
/// co-members' known addresses (blocking: reads the logs and the address book).
pub(super) fn member_set(library: &Library) -> MemberSet {
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
    let codes = library
        .join_codes()
        .admitted_now(library.now_ms())
        .into_iter()
        .filter(|open| trust.is_member_of(&open.consortium))
        .map(|open| {
            let nameplate = open.code.nameplate;
            (code_identity(nameplate).public().to_peer_id(), nameplate)
        })
        .collect();
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
        codes,
        consortia,
        trust,
        addresses,
        farewells,
    }
}

/// Forgets the catalogs of libraries no longer co-members ([`Library::forget_strangers`]).
pub(super) fn forget_strangers(library: &Library) {
    if let Err(error) = library.forget_strangers() {
        tracing::error!(%error, "could not forget the catalogs of former members");
    }
}

/// Makes the allow-list and the gossip topics follow the member set, and dials members
/// not connected at the addresses known for them.
pub(super) fn apply_members(swarm: &mut Swarm<Behaviour>, state: &mut NetState, now: MemberSet) {
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
    let keep = |peer: &PeerId| {
        now.members.contains_key(peer)
            || now.joiners.contains_key(peer)
            || now.codes.contains_key(peer)
    };
    for peer in state.allowed.keys() {
        if !keep(peer) && !state.relays.contains(peer) && !told.contains(peer) {
            swarm.behaviour_mut().allowed.disallow_peer(*peer);
            // Cut off a removed member now, not at its next connection.
            let _ = swarm.disconnect_peer_id(*peer);
        }
    }
    for peer in state.joiners.keys().chain(state.codes.keys()) {
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
    for peer in now
        .members
        .keys()
        .chain(now.joiners.keys())
        .chain(now.codes.keys())
    {
        swarm.behaviour_mut().allowed.allow_peer(*peer);
    }
    // Invites' and codes' one-off identities ask one thing and are never members: no
    // gossip to or from them (they would learn the topics and who is active).
    for peer in now.joiners.keys().chain(now.codes.keys()) {
        swarm.behaviour_mut().gossip.blacklist_peer(peer);
    }
    state.allowed = now.members;
    state.joiners = now.joiners;
    state.codes = now.codes;
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

/// Cuts off a peer told of this library's leave, unless it is still a co-member.
pub(super) fn cut_off_if_gone(swarm: &mut Swarm<Behaviour>, state: &NetState, peer: PeerId) {
    if !state.allowed.contains_key(&peer) && !state.relays.contains(&peer) {
        swarm.behaviour_mut().allowed.disallow_peer(peer);
        let _ = swarm.disconnect_peer_id(peer);
    }
}

/// The relays named in the circuit addresses of current members.
pub(super) fn member_relays(
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

pub(super) fn is_circuit(address: &Multiaddr) -> bool {
    address
        .iter()
        .any(|p| matches!(p, libp2p::multiaddr::Protocol::P2pCircuit))
}

/// Dials every member not connected, at the addresses known for it.
pub(super) fn dial_members(swarm: &mut Swarm<Behaviour>, state: &NetState) {
    let peers: Vec<PeerId> = state.allowed.keys().copied().collect();
    for peer in peers {
        dial_member(swarm, state, &peer);
    }
}

/// Where to dial `peer`: the addresses known for it, then (`through_relays`) through each
/// of this library's own relays that hold a reservation for this node (a consortium's
/// relay: a member behind a NAT with no address anyone can dial is reached there, and
/// hole punching may then make the connection direct).
pub(super) fn dial_addresses(
    state: &NetState,
    peer: &PeerId,
    through_relays: bool,
) -> Vec<Multiaddr> {
    let mut addresses = state.addresses.get(peer).cloned().unwrap_or_default();
    if !through_relays {
        addresses.retain(|a| !is_circuit(a));
        return addresses;
    }
    for relay in &state.relay_addresses {
        let Some(relay_peer) = relay_of(relay) else {
            continue;
        };
        if relay_peer == *peer || !state.reserved.contains(&relay_peer) {
            continue;
        }
        let circuit = relay
            .clone()
            .with(libp2p::multiaddr::Protocol::P2pCircuit)
            .with(libp2p::multiaddr::Protocol::P2p(*peer));
        if !addresses.contains(&circuit) {
            addresses.push(circuit);
        }
    }
    addresses
}

/// Dials one member at [`dial_addresses`], unless it is connected or dialed; one reached
/// only through a relay is dialed at its other addresses (the LAN, an address that
/// became reachable).
pub(super) fn dial_member(swarm: &mut Swarm<Behaviour>, state: &NetState, peer: &PeerId) {
    let me = *swarm.local_peer_id();
    if *peer == me || !state.allowed.contains_key(peer) || state.is_direct(peer) {
        return;
    }
    let relayed_only = swarm.is_connected(peer);
    let through_relays = !relayed_only && {
        let mut dialed = state.relay_dialed.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        let due = dialed
            .get(peer)
            .is_none_or(|at| now.duration_since(*at) >= super::event_loop::RELAY_DIAL_EVERY);
        if due && !state.reserved.is_empty() {
            dialed.insert(*peer, now);
        }
        due
    };
    let addresses = dial_addresses(state, peer, through_relays);
    if !addresses.is_empty() {
        for address in &addresses {
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
        let condition = if relayed_only {
            libp2p::swarm::dial_opts::PeerCondition::NotDialing
        } else {
            libp2p::swarm::dial_opts::PeerCondition::DisconnectedAndNotDialing
        };
        let options = libp2p::swarm::dial_opts::DialOpts::peer_id(*peer)
            .addresses(addresses)
            .condition(condition)
            .build();
        let _ = swarm.dial(options);
    }
}

pub(super) fn topic(consortium: &Hash32) -> gossipsub::IdentTopic {
    gossipsub::IdentTopic::new(format!("/jalin/consortium/{consortium}"))
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

    /// A member is dialed at its known addresses, then through this library's own relay
    /// once that relay holds a reservation for it; never through the relay to the relay.
    #[test]
    fn members_are_dialed_through_the_own_relay_once_it_holds_a_reservation() {
        let (member, relay) = (peer(), peer());
        let relay_address: Multiaddr = format!("/ip4/100.64.1.254/tcp/4001/p2p/{relay}")
            .parse()
            .expect("address");
        let direct: Multiaddr = "/ip4/192.168.1.1/tcp/4001".parse().expect("address");
        let mut state = NetState {
            relay_addresses: vec![relay_address.clone()],
            addresses: BTreeMap::from([(member, vec![direct.clone()])]),
            ..NetState::default()
        };
        assert_eq!(dial_addresses(&state, &member, true), vec![direct.clone()]);
        state.reserved.insert(relay);
        let circuit = relay_address
            .with(libp2p::multiaddr::Protocol::P2pCircuit)
            .with(libp2p::multiaddr::Protocol::P2p(member));
        assert_eq!(
            dial_addresses(&state, &member, true),
            vec![direct.clone(), circuit]
        );
        assert_eq!(dial_addresses(&state, &member, false), vec![direct]);
        assert!(dial_addresses(&state, &relay, true).is_empty());
    }
}
