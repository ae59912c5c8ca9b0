//! The network's event loop: the one task that owns the swarm.
//!
//! It takes [`Command`]s from the node's [`NetHandle`]s, events from the swarm, and the
//! results of its workers. Blocking work (the store, automerge, sled) runs on worker
//! threads held in a `JoinSet`; what each decides comes back as a [`Worked`] for the loop
//! to act on, so the swarm is only ever touched here. At shutdown the loop stops taking
//! anything new and waits for the workers it started, so none is cut off halfway
//! through a write.

use super::answers::{answer, answer_code, answer_joiner, changes_for_notice, notice_is_usable};
use super::answers::{take_answer, written_shards, FollowUp};
use super::members::{
    apply_members, cut_off_if_gone, dial_member, dial_members, member_set, MemberSet,
};
use super::*;
use tokio::task::JoinSet;

/// What the swarm task keeps besides the swarm.
#[derive(Default)]
pub(super) struct NetState {
    pub(super) allowed: BTreeMap<PeerId, LibraryId>,
    pub(super) joiners: BTreeMap<PeerId, Hash32>,
    /// Identities of this node's open join codes, and their numbers.
    pub(super) codes: BTreeMap<PeerId, u16>,
    pub(super) addresses: BTreeMap<PeerId, Vec<Multiaddr>>,
    /// Gossip topics subscribed to (by hash), and their consortium.
    pub(super) topics: BTreeMap<String, Hash32>,
    /// The trust rule as of the last membership change.
    pub(super) trust: Arc<Trust>,
    /// Where this node listens, interface by interface.
    pub(super) listening: Vec<Multiaddr>,
    /// Relays this node may connect to (its own and those in members' addresses).
    pub(super) relays: HashSet<PeerId>,
    /// The relays of this library's `[network] relays`.
    pub(super) own_relays: HashSet<PeerId>,
    /// Their addresses: a member with none that answers is dialed through them.
    pub(super) relay_addresses: Vec<Multiaddr>,
    /// The listeners through them, and the relay address each listens through. One
    /// closes when its relay cannot be reached or the connection to it drops (a phone's
    /// hotspot gone): it is opened again at the next redial.
    pub(super) relay_listeners: HashMap<libp2p::core::transport::ListenerId, Multiaddr>,
    /// The own relays that hold a reservation for this node now: members are dialed
    /// through these only (a dial through a relay not yet connected would race the
    /// reservation's own dial of it, and the relay client drops the loser quietly).
    pub(super) reserved: HashSet<PeerId>,
    /// When each member was last dialed through a relay: at most once in
    /// [`RELAY_DIAL_EVERY`] (the relay counts every circuit asked for, to a member online
    /// or not), and again at once when this node gets a reservation. A member that comes
    /// online behind a NAT dials this node itself when its own reservation is accepted.
    pub(super) relay_dialed: std::sync::Mutex<HashMap<PeerId, std::time::Instant>>,
    /// Each connection open to a peer, and whether it goes through a relay.
    pub(super) connections: HashMap<PeerId, HashMap<libp2p::swarm::ConnectionId, bool>>,
    /// The join code numbers the own relays were last told are open here.
    pub(super) codes_told: Vec<(u16, u32)>,
    /// Relays named in current members' circuit addresses (let in for them alone).
    pub(super) member_relays: HashSet<PeerId>,
    /// Identities of used invites still connected: off the allow-list once they close.
    pub(super) leaving: HashSet<PeerId>,
    /// Sync rounds in progress, per peer.
    pub(super) rounds: Rounds,
    /// `Changed` notices sent and not answered yet (not part of any round).
    pub(super) nudges: HashSet<request_response::OutboundRequestId>,
    /// `Left` requests sent and not answered yet, and to whom: a member left behind is
    /// cut off when its answer comes (or the request fails).
    pub(super) farewells: HashMap<request_response::OutboundRequestId, PeerId>,
    /// `(member, consortium)` told of this library's leave (once each).
    pub(super) farewelled: HashSet<(PeerId, Hash32)>,
    /// Interlibrary-loan pushes in the air: to whom, and the messages in each.
    pub(super) ill_in_flight: HashMap<request_response::OutboundRequestId, (PeerId, Vec<Hash32>)>,
    /// Peers whose outbox is being read or pushed (one push to a peer at a time).
    pub(super) ill_pushing: HashSet<PeerId>,
    /// What each member's link carries: `Changes` requests ask for that much.
    pub(super) links: super::link::Links,
    /// When each member was last dialed again because its connection dropped.
    pub(super) redialed: HashMap<PeerId, std::time::Instant>,
}

/// Listens through each of this library's relays not listened through now. (Before
/// members are dialed through them: the relay client's listener gives up, quietly, if its
/// relay is being dialed already.)
pub(super) fn listen_through_relays(swarm: &mut Swarm<Behaviour>, state: &mut NetState) {
    for relay in &state.relay_addresses {
        if state.relay_listeners.values().any(|a| a == relay) {
            continue;
        }
        let circuit = relay.clone().with(libp2p::multiaddr::Protocol::P2pCircuit);
        match swarm.listen_on(circuit) {
            Ok(id) => {
                state.relay_listeners.insert(id, relay.clone());
            }
            Err(error) => tracing::warn!(%relay, %error, "cannot listen through the relay"),
        }
    }
}

/// How often a member not connected is dialed through the relays (see
/// [`NetState::relay_dialed`]).
pub(super) const RELAY_DIAL_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

impl NetState {
    /// Whether `peer` is connected other than through a relay.
    pub(super) fn is_direct(&self, peer: &PeerId) -> bool {
        self.connections
            .get(peer)
            .is_some_and(|open| open.values().any(|relayed| !relayed))
    }
}

/// A member whose connection dropped is dialed again at once, but not more often than this.
const REDIAL_AFTER_DROP: std::time::Duration = std::time::Duration::from_secs(5);

/// What a worker found, for the loop to act on.
pub(super) enum Worked {
    /// The member set and consortia as read from the logs, and whom to tell once the
    /// allow-list follows them.
    Members(MemberSet, Option<oneshot::Sender<()>>),
    /// Where a member's node listens, as identify told (and now in the address book).
    Learned(PeerId, Vec<Multiaddr>),
    /// The shards of a catalog written since its last announcement, with their heads: to
    /// announce (`None`: the consortia's documents changed).
    Written(Option<LibraryId>, Vec<(u16, Vec<ByteArray<32>>)>),
    /// A peer's answer, taken in, and what it calls for.
    Answered(PeerId, FollowUp),
    /// The answer to a peer's request; `members_changed` when taking the request in
    /// changed the membership (a joiner's acceptance, a member's leave).
    Respond {
        channel: ResponseChannel<SyncResponse>,
        response: SyncResponse,
        members_changed: bool,
    },
    /// A request to make of a peer (the shards of its `Changed` notice that differ here).
    Request(PeerId, SyncRequest),
    /// Interlibrary-loan messages waiting for a peer (none: nothing to push).
    IllOutbox(PeerId, Vec<(Hash32, Vec<u8>)>),
    /// The receipts for a peer's interlibrary-loan push.
    IllRespond {
        channel: ResponseChannel<IllAck>,
        ack: IllAck,
    },
    /// A push to a peer was answered and its outbox updated; `more`: push again.
    IllDelivered(PeerId, bool),
    /// The index caught up with the store (started by [`NetLoop::start_indexing`]).
    Indexed,
    /// Nothing left to do.
    Nothing,
}

/// The swarm, what the loop keeps beside it, and the workers it started.
pub(super) struct NetLoop {
    swarm: Swarm<Behaviour>,
    library: Arc<Library>,
    state: NetState,
    own: LibraryId,
    workers: JoinSet<Worked>,
    /// Whether an index catch-up runs now, and whether another is to follow it.
    indexing: (bool, bool),
    /// Members' sync requests answered at once ([`ANSWERS_AT_ONCE`]).
    answering: Arc<tokio::sync::Semaphore>,
}

/// Members' sync requests answered at once: each answer loads shard documents and holds
/// up to an answer's bytes of changes, and four members pulling a catalog of 50,000
/// records kept dozens of workers at it on an old PC (issue 19). The rest wait their
/// turn, well within the request timeout: an answer takes a fraction of a second to
/// make, and its sending is not counted.
const ANSWERS_AT_ONCE: usize = 2;

impl NetLoop {
    pub(super) fn new(swarm: Swarm<Behaviour>, library: Arc<Library>, state: NetState) -> NetLoop {
        NetLoop {
            swarm,
            own: library.id(),
            library,
            state,
            workers: JoinSet::new(),
            indexing: (false, false),
            answering: Arc::new(tokio::sync::Semaphore::new(ANSWERS_AT_ONCE)),
        }
    }

    /// Brings the index up to date with the store, off the loop: one catch-up at a time,
    /// and one more after it when asked meanwhile (however many answers asked). A worker
    /// per answer would wait, each on a thread of its own, for the catch-up under way.
    fn start_indexing(&mut self) {
        if self.indexing.0 {
            self.indexing.1 = true;
            return;
        }
        self.indexing = (true, false);
        let library = self.library.clone();
        self.off_loop(move || {
            library.index_or_warn();
            Worked::Indexed
        });
    }

    /// Runs blocking work on a worker thread, in the span it was started from (a worker
    /// thread does not inherit it); its result comes back to [`NetLoop::handle_worked`].
    fn off_loop(&mut self, work: impl FnOnce() -> Worked + Send + 'static) {
        let span = tracing::Span::current();
        self.workers.spawn_blocking(move || span.in_scope(work));
    }

    /// Announces a change of `namespace`'s catalog (`None`: of the consortia's
    /// documents): the shards written since the last announcement are read off the loop.
    fn announce(&mut self, namespace: Option<LibraryId>) {
        let library = self.library.clone();
        self.off_loop(move || {
            let shards = namespace
                .map(|ns| written_shards(&library, &ns))
                .unwrap_or_default();
            Worked::Written(namespace, shards)
        });
    }

    /// Reads the member set again (the logs may have changed), off the loop.
    fn members_changed(&mut self, done: Option<oneshot::Sender<()>>) {
        let library = self.library.clone();
        self.off_loop(move || Worked::Members(member_set(&library), done));
    }

    /// Notes that a member's node is connected now (off the loop: it writes to sled).
    fn seen(&mut self, peer: &PeerId) {
        if let Some(member) = self.state.allowed.get(peer).copied() {
            let library = self.library.clone();
            self.off_loop(move || {
                library.note_seen(&member);
                Worked::Nothing
            });
        }
    }

    /// Sends the requests the round scheduler lets go.
    fn send(&mut self, requests: Vec<(PeerId, SyncRequest)>) {
        for (peer, mut request) in requests {
            let asked = if let SyncRequest::Changes { max_bytes, .. } = &mut request {
                // What the link carries in a few seconds, within the memory budget's
                // share for one answer in the air (`[limits] memory_mb`).
                let budget = self.library.data().config.limits.memory_plan();
                let share = u32::try_from(budget.sync_answer_bytes).unwrap_or(u32::MAX);
                *max_bytes = self.state.links.max_bytes(&peer).min(share);
                Some(*max_bytes)
            } else {
                None
            };
            let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
            if let Some(asked) = asked {
                self.state.links.sent(id, peer, asked);
            }
        }
    }

    /// A round's request to `peer` is dealt with: the next one, if any.
    fn round_done(&mut self, peer: PeerId) {
        let connected = self.swarm.is_connected(&peer);
        let next = self.state.rounds.done(peer, connected);
        self.send(next);
    }

    /// Starts a round with every connected member.
    fn catch_up(&mut self) {
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            if self.state.allowed.contains_key(&peer) {
                let hello = self.state.rounds.hello(peer);
                self.send(hello);
            }
        }
    }

    pub(super) fn handle_command(&mut self, command: Command) {
        match command {
            Command::Dial(address, reply) => {
                if is_circuit(&address) {
                    // Through a relay: the relay itself must be let in.
                    if let Some(relay) = relay_of(&address) {
                        self.swarm.behaviour_mut().allowed.allow_peer(relay);
                        self.state.relays.insert(relay);
                    }
                }
                // The asker may have given up waiting; nothing to tell then.
                let _ = reply.send(self.swarm.dial(address));
            }
            Command::Disconnect(peer) => {
                // Not connected: nothing to close.
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Command::ListenAddresses(reply) => {
                let me = *self.swarm.local_peer_id();
                let listening = self
                    .state
                    .listening
                    .iter()
                    .map(|a| with_peer(a, me))
                    .collect();
                let _ = reply.send(listening);
            }
            Command::Peers(reply) => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            Command::Routes(reply) => {
                let routes = self
                    .state
                    .connections
                    .iter()
                    .map(|(peer, open)| {
                        let route = if open.values().all(|relayed| *relayed) {
                            Route::Relay
                        } else {
                            Route::Direct
                        };
                        (*peer, route)
                    })
                    .collect();
                let _ = reply.send(routes);
            }
            Command::MembersChanged(done) => self.members_changed(done),
            Command::Announce(namespace) => self.announce(namespace),
            Command::CatchUp => self.catch_up(),
        }
    }

    fn handle_worked(&mut self, worked: Worked) {
        match worked {
            Worked::Members(now, done) => {
                apply_members(&mut self.swarm, &mut self.state, now);
                self.tell_relays(None);
                let allowed = &self.state.allowed;
                self.state
                    .redialed
                    .retain(|peer, _| allowed.contains_key(peer));
                if let Some(done) = done {
                    let _ = done.send(());
                }
                // Cut off first, then forget: the catalogs of libraries no longer
                // co-members leave the store and index (which may take a while).
                let library = self.library.clone();
                self.off_loop(move || {
                    if let Err(error) = library.forget_strangers() {
                        tracing::error!(%error, "could not forget the catalogs of former members");
                    }
                    Worked::Nothing
                });
            }
            Worked::Learned(peer, addresses) => {
                // Beside what the log and invites said, not instead of it.
                let known = self.state.addresses.entry(peer).or_default();
                for address in addresses {
                    if known.len() >= ADDRESSES_PER_PEER_MAX {
                        break;
                    }
                    if !known.contains(&address) {
                        known.push(address);
                    }
                }
            }
            Worked::Written(namespace, shards) => self.notify(namespace, shards),
            Worked::Answered(peer, follow_up) => {
                if follow_up.documents_changed {
                    // Announced through the consortia's watch, with every other change.
                    self.members_changed(None);
                }
                if let Some(namespace) = follow_up.catalog_changed {
                    // What this node now holds, its other members may lack: tell them
                    // first, so they fetch while this node indexes.
                    self.announce(Some(namespace));
                    self.start_indexing();
                }
                for request in follow_up.requests {
                    let next = self.state.rounds.request(peer, request);
                    self.send(next);
                }
                self.round_done(peer);
            }
            Worked::Respond {
                channel,
                response,
                members_changed,
            } => {
                // A join code spent changes who is let in, not what members hold.
                let spent_code = matches!(response, SyncResponse::Code { .. });
                // The asker may be gone; it asks again when it comes back.
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, response);
                if members_changed {
                    self.members_changed(None);
                    if !spent_code {
                        self.announce(None);
                    }
                }
            }
            Worked::Request(peer, request) => {
                let next = self.state.rounds.request(peer, request);
                self.send(next);
            }
            Worked::IllOutbox(peer, messages) => {
                if messages.is_empty() || !self.swarm.is_connected(&peer) {
                    self.state.ill_pushing.remove(&peer);
                    return;
                }
                let ids = messages.iter().map(|(id, _)| *id).collect();
                let push = IllPush {
                    messages: messages
                        .into_iter()
                        .map(|(_, bytes)| serde_bytes::ByteBuf::from(bytes))
                        .collect(),
                };
                let request = self.swarm.behaviour_mut().ill.send_request(&peer, push);
                self.state.ill_in_flight.insert(request, (peer, ids));
            }
            Worked::IllRespond { channel, ack } => {
                // The pusher may be gone; it pushes again when it comes back.
                let _ = self.swarm.behaviour_mut().ill.send_response(channel, ack);
            }
            Worked::IllDelivered(peer, more) => {
                self.state.ill_pushing.remove(&peer);
                if more {
                    self.push_ill(peer);
                }
            }
            Worked::Indexed => {
                let again = self.indexing.1;
                self.indexing = (false, false);
                if again {
                    self.start_indexing();
                }
            }
            Worked::Nothing => {}
        }
    }

    /// Pushes the interlibrary-loan messages waiting for a connected member (one push
    /// at a time per peer; the rest after its answer).
    fn push_ill(&mut self, peer: PeerId) {
        let Some(member) = self.state.allowed.get(&peer).copied() else {
            return;
        };
        if !self.swarm.is_connected(&peer) || !self.state.ill_pushing.insert(peer) {
            return;
        }
        let library = self.library.clone();
        self.off_loop(move || match library.loans().outbox(&member) {
            Ok(messages) => Worked::IllOutbox(peer, messages),
            Err(error) => {
                tracing::error!(%error, "could not read the interlibrary-loan outbox");
                Worked::IllOutbox(peer, Vec::new())
            }
        });
    }

    /// Pushes to every connected member whatever waits for it.
    fn push_ill_all(&mut self) {
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            self.push_ill(peer);
        }
    }

    /// A member's interlibrary-loan messages: taken in off the loop, a receipt each.
    fn handle_ill_push(&mut self, peer: PeerId, push: IllPush, channel: ResponseChannel<IllAck>) {
        let Some(member) = self.state.allowed.get(&peer).copied() else {
            let refused = IllAck {
                receipts: push
                    .messages
                    .iter()
                    .map(|_| Receipt::Refused {
                        reason: "not a member".into(),
                        retry: false,
                    })
                    .collect(),
            };
            let _ = self
                .swarm
                .behaviour_mut()
                .ill
                .send_response(channel, refused);
            return;
        };
        let span = tracing::debug_span!("peer", %peer, library = %member.fingerprint());
        let _entered = span.enter();
        let library = self.library.clone();
        self.off_loop(move || {
            let messages: Vec<Vec<u8>> = push.messages.into_iter().map(|m| m.into_vec()).collect();
            let now = library.now_ms();
            let receipts = library
                .loans()
                .take_in(library.consortia(), &member, &messages, now)
                .into_iter()
                .map(|result| match result {
                    // Held already: the sender may forget it.
                    Ok(()) | Err(crate::ill::LoanError::Replayed) => Receipt::Taken,
                    Err(error) => {
                        tracing::warn!(%error, "refused an interlibrary-loan message");
                        Receipt::Refused {
                            retry: error.is_transient(),
                            reason: error.to_string(),
                        }
                    }
                })
                .collect();
            Worked::IllRespond {
                channel,
                ack: IllAck { receipts },
            }
        });
    }

    /// A member's receipts: what it took (or refused for good) leaves the outbox.
    fn handle_ill_ack(&mut self, request_id: request_response::OutboundRequestId, ack: IllAck) {
        let Some((peer, ids)) = self.state.ill_in_flight.remove(&request_id) else {
            return;
        };
        let Some(member) = self.state.allowed.get(&peer).copied() else {
            self.state.ill_pushing.remove(&peer);
            return;
        };
        let library = self.library.clone();
        self.off_loop(move || {
            let mut done = Vec::new();
            for (id, receipt) in ids.iter().zip(&ack.receipts) {
                match receipt {
                    Receipt::Taken => done.push(*id),
                    Receipt::Refused { reason, retry } => {
                        tracing::warn!(message = %id.short(), %reason, retry, "a member refused an interlibrary-loan message");
                        if !retry {
                            done.push(*id);
                        }
                    }
                }
            }
            let more = !done.is_empty();
            if let Err(error) = library.loans().delivered(&member, &done) {
                tracing::error!(%error, "could not update the interlibrary-loan outbox");
            }
            Worked::IllDelivered(peer, more)
        });
    }

    /// Sends the announcement of a change and the `Changed` notices naming its shards.
    fn notify(&mut self, namespace: Option<LibraryId>, shards: Vec<(u16, Vec<ByteArray<32>>)>) {
        let message = serde_json::to_vec(&Announcement { namespace }).unwrap_or_default();
        // A catalog's news goes only to the consortia that share it; the consortia's own
        // (`None`) to each of this library's.
        for (hash, consortium) in &self.state.topics {
            if namespace.is_some_and(|ns| !self.state.trust.shares(&ns, consortium)) {
                continue;
            }
            let topic = gossipsub::TopicHash::from_raw(hash.clone());
            // No peer on the topic yet is not an error: catch-up covers it.
            let _ = self
                .swarm
                .behaviour_mut()
                .gossip
                .publish(topic, message.clone());
        }
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            let shared = self.state.allowed.get(&peer).is_some_and(|member| {
                namespace.is_none_or(|ns| self.state.trust.catalog_between(member, &ns))
            });
            if shared {
                let notice = SyncRequest::Changed {
                    namespace,
                    shards: shards
                        .iter()
                        .map(|(shard, heads)| (*shard, heads.clone().into()))
                        .collect(),
                };
                let id = self.swarm.behaviour_mut().sync.send_request(&peer, notice);
                self.state.nudges.insert(id);
            }
        }
    }

    pub(super) fn handle_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, peer = %self.swarm.local_peer_id(), "libp2p listening");
                self.state.listening.push(address);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.state.listening.retain(|a| *a != address);
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                addresses,
                reason,
            } => {
                for address in &addresses {
                    self.state.listening.retain(|a| a != address);
                }
                if let Some(relay) = self.state.relay_listeners.remove(&listener_id) {
                    // Not reserved there any more, unless another listener (another of
                    // the relay's addresses) still is.
                    if let Some(peer) = relay_of(&relay) {
                        let other = self
                            .state
                            .relay_listeners
                            .values()
                            .any(|a| relay_of(a) == Some(peer));
                        if !other {
                            self.state.reserved.remove(&peer);
                        }
                    }
                    match reason {
                        Ok(()) => tracing::info!(%relay, "no longer listening through the relay"),
                        Err(error) => {
                            tracing::warn!(%relay, %error, "not listening through the relay (tried again shortly)");
                        }
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) if self.state.allowed.contains_key(&peer_id) => {
                // The address book: where a member listens, kept across restarts.
                let addresses: Vec<Multiaddr> = info
                    .listen_addrs
                    .into_iter()
                    .filter(|a| {
                        !a.iter().any(|p| {
                            matches!(p, libp2p::multiaddr::Protocol::Ip4(ip) if ip.is_unspecified())
                        })
                    })
                    .take(ADDRESSES_PER_PEER_MAX)
                    .collect();
                let library = self.library.clone();
                self.off_loop(move || {
                    library.note_addresses(
                        &peer_id.to_string(),
                        addresses.iter().map(ToString::to_string).collect(),
                    );
                    Worked::Learned(peer_id, addresses)
                });
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                // Members on the local network: dial them (anyone else is ignored).
                for (peer, address) in found {
                    if self.state.allowed.contains_key(&peer) && !self.state.is_direct(&peer) {
                        // (A member reached only through a relay is dialed here too: on
                        // the same LAN, its bytes need not go out and back.)
                        let options = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
                            .addresses(vec![address])
                            .condition(libp2p::swarm::dial_opts::PeerCondition::NotDialing)
                            .build();
                        // A failed dial comes back as an event; the redial covers it.
                        let _ = self.swarm.dial(options);
                    }
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                num_established,
                endpoint,
                ..
            } => {
                tracing::debug!(peer = %peer_id, relayed = endpoint.is_relayed(), "connected");
                let open = self.state.connections.entry(peer_id).or_default();
                open.insert(connection_id, endpoint.is_relayed());
                // Connected directly (a hole punched, the LAN, a redial): the relayed
                // connections go, or request-response would send half the requests
                // through the relay and keep its circuit open for hours.
                if open.values().any(|relayed| !relayed) {
                    let relayed: Vec<_> = open
                        .iter()
                        .filter(|(_, relayed)| **relayed)
                        .map(|(id, _)| *id)
                        .collect();
                    for id in relayed {
                        self.swarm.close_connection(id);
                    }
                }
                // An address this node reached a member at is tried first when the
                // connection drops (a weak link's proxy, a relay, an address typed in),
                // before those the member says it listens on.
                // (Not a circuit through this library's relay: that one is dialed anyway
                // while the relay holds a reservation, and not otherwise.)
                if let libp2p::core::ConnectedPoint::Dialer { address, .. } = &endpoint {
                    if self.state.allowed.contains_key(&peer_id) && !is_circuit(address) {
                        let known = self.state.addresses.entry(peer_id).or_default();
                        // First if known; else first only where there is room (the log's
                        // and invites' addresses are not pushed out by it).
                        if let Some(at) = known.iter().position(|a| a == address) {
                            let address = known.remove(at);
                            known.insert(0, address);
                        } else if known.len() < ADDRESSES_PER_PEER_MAX {
                            known.insert(0, address.clone());
                        }
                    }
                }
                self.seen(&peer_id);
                if num_established.get() == 1 && self.state.own_relays.contains(&peer_id) {
                    self.tell_relays(Some(peer_id));
                }
                if num_established.get() == 1 && self.state.allowed.contains_key(&peer_id) {
                    let hello = self.state.rounds.hello(peer_id);
                    self.send(hello);
                    self.push_ill(peer_id);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } => {
                let mut relayed = false;
                if let Some(open) = self.state.connections.get_mut(&peer_id) {
                    relayed = open.remove(&connection_id).unwrap_or(false);
                    if open.is_empty() {
                        self.state.connections.remove(&peer_id);
                    }
                }
                if num_established > 0 {
                    // A relayed connection closed beside a direct one (closed for it):
                    // requests of a round under way on it failed, so one more round
                    // follows (now, or after the round), on the direct connection.
                    if relayed && self.state.allowed.contains_key(&peer_id) {
                        let hello = self.state.rounds.hello(peer_id);
                        self.send(hello);
                    }
                    return;
                }
                if self.state.leaving.remove(&peer_id)
                    && !self.state.joiners.contains_key(&peer_id)
                    && !self.state.codes.contains_key(&peer_id)
                {
                    self.swarm.behaviour_mut().allowed.disallow_peer(peer_id);
                }
                self.seen(&peer_id);
                self.state.rounds.forget(&peer_id);
                self.state.links.forget(&peer_id);
                // A member's connection dropped (a weak link, a phone's hotspot): dial it
                // again now rather than at the next redial tick, at most once in
                // `REDIAL_AFTER_DROP`, so a member that closes at once is not hammered.
                if self.state.allowed.contains_key(&peer_id) {
                    let now = std::time::Instant::now();
                    let recent = self
                        .state
                        .redialed
                        .get(&peer_id)
                        .is_some_and(|at| now.duration_since(*at) < REDIAL_AFTER_DROP);
                    if !recent {
                        self.state.redialed.insert(peer_id, now);
                        dial_member(&mut self.swarm, &self.state, &peer_id);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sync(
                request_response::Event::OutboundFailure {
                    peer,
                    request_id,
                    error,
                    ..
                },
            )) => {
                tracing::debug!(%peer, %error, "a sync request failed");
                self.state.links.failed(&request_id);
                if let Some(peer) = self.state.farewells.remove(&request_id) {
                    cut_off_if_gone(&mut self.swarm, &self.state, peer);
                } else if !self.state.nudges.remove(&request_id) {
                    self.round_done(peer);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                peer,
                message,
                ..
            })) => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.handle_request(peer, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => self.handle_response(peer, request_id, response),
            },
            SwarmEvent::Behaviour(BehaviourEvent::Ill(request_response::Event::Message {
                peer,
                message,
                ..
            })) => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.handle_ill_push(peer, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => self.handle_ill_ack(request_id, response),
            },
            SwarmEvent::Behaviour(BehaviourEvent::Ill(
                request_response::Event::OutboundFailure {
                    peer,
                    request_id,
                    error,
                    ..
                },
            )) => {
                tracing::debug!(%peer, %error, "an interlibrary-loan push failed");
                self.state.ill_in_flight.remove(&request_id);
                self.state.ill_pushing.remove(&peer);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossip(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => self.handle_gossip(propagation_source, &message_id, &message),
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(
                relay::client::Event::ReservationReqAccepted {
                    relay_peer_id,
                    renewal,
                    ..
                },
            )) => {
                // Listening through a relay now: members behind NATs that use it too
                // are reachable there (and they reach this node), without waiting for
                // the next redial.
                let new = self.state.reserved.insert(relay_peer_id);
                if new || !renewal {
                    tracing::info!(relay = %relay_peer_id, "reachable through the relay");
                    self.state
                        .relay_dialed
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clear();
                    dial_members(&mut self.swarm, &self.state);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(dcutr::Event {
                remote_peer_id,
                result,
            })) => match result {
                Ok(_) => tracing::info!(peer = %remote_peer_id, "hole punched: connected directly"),
                Err(error) => {
                    tracing::info!(peer = %remote_peer_id, %error, "no hole punched: the relay carries the connection");
                }
            },
            _ => {}
        }
    }

    /// Tells this library's relays (or the one just connected) which join codes are open
    /// here, when that changed: a joiner asks a relay who has its code's number.
    fn tell_relays(&mut self, connected: Option<PeerId>) {
        let now = self.library.now_ms();
        let open: Vec<(u16, u32)> = self
            .library
            .join_codes()
            .open_now(now)
            .iter()
            .map(|c| {
                let left_s = c.expires_ms.saturating_sub(now).div_ceil(1000);
                (c.code.nameplate, u32::try_from(left_s).unwrap_or(u32::MAX))
            })
            .collect();
        let relays: Vec<PeerId> = match connected {
            Some(relay) if !open.is_empty() => vec![relay],
            Some(_) => return,
            None if open == self.state.codes_told => return,
            None => self.state.own_relays.iter().copied().collect(),
        };
        for relay in relays {
            if self.swarm.is_connected(&relay) {
                self.swarm.behaviour_mut().directory.send_request(
                    &relay,
                    jalin_protocol::sync::DirectoryRequest::Open {
                        codes: open.clone().into(),
                    },
                );
            }
        }
        self.state.codes_told = open;
    }

    /// A peer's sync request: a joiner's, a member's leave or `Changed` notice, or a
    /// request answered from the catalogs (off the loop).
    fn handle_request(
        &mut self,
        peer: PeerId,
        request: SyncRequest,
        channel: ResponseChannel<SyncResponse>,
    ) {
        if let Some(nameplate) = self.state.codes.get(&peer).copied() {
            let library = self.library.clone();
            self.off_loop(move || {
                let response = answer_code(&library, nameplate, request);
                // The code spent (its identity's admission and the relays follow), or
                // its joiner joined; nothing else changes anything.
                let members_changed = matches!(
                    response,
                    SyncResponse::Code { .. } | SyncResponse::Joined { .. }
                );
                Worked::Respond {
                    channel,
                    response,
                    members_changed,
                }
            });
            return;
        }
        if let Some(consortium) = self.state.joiners.get(&peer).copied() {
            let library = self.library.clone();
            self.off_loop(move || {
                let response = answer_joiner(&library, consortium, request);
                // A new member: let it in under its own identity, and tell the others.
                let members_changed = matches!(response, SyncResponse::Joined { .. });
                Worked::Respond {
                    channel,
                    response,
                    members_changed,
                }
            });
            return;
        }
        let Some(member) = self.state.allowed.get(&peer).copied() else {
            let refused = SyncResponse::Refused {
                reason: "not a member".into(),
            };
            let _ = self
                .swarm
                .behaviour_mut()
                .sync
                .send_response(channel, refused);
            return;
        };
        let span = tracing::debug_span!("peer", %peer, library = %member.fingerprint());
        let _entered = span.enter();
        match request {
            SyncRequest::Left { op } => {
                // A member going: its leave taken in, the others told.
                let library = self.library.clone();
                self.off_loop(move || {
                    let taken = library.consortia().take_leave(&op, &member);
                    let response = match &taken {
                        Ok(_) => SyncResponse::Noted,
                        Err(error) => SyncResponse::Refused {
                            reason: error.to_string(),
                        },
                    };
                    Worked::Respond {
                        channel,
                        response,
                        members_changed: matches!(taken, Ok(true)),
                    }
                });
            }
            SyncRequest::Changed { namespace, shards } => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, SyncResponse::Noted);
                match namespace {
                    // Nothing to fetch of this library's own catalog, nor of one the
                    // peer does not share with it.
                    Some(namespace) if namespace == self.own => {}
                    Some(namespace) if !self.state.trust.catalog_between(&member, &namespace) => {}
                    Some(namespace) if notice_is_usable(&shards) => {
                        // Straight to the changes of the shards that differ.
                        let library = self.library.clone();
                        self.off_loop(move || {
                            let catalogs = library.shared_with(&member);
                            match changes_for_notice(
                                &catalogs,
                                namespace,
                                shards.into_iter().map(|(s, h)| (s, h.0)).collect(),
                            ) {
                                Some(request) => Worked::Request(peer, request),
                                None => Worked::Nothing,
                            }
                        });
                    }
                    _ => {
                        let hello = self.state.rounds.hello(peer);
                        self.send(hello);
                    }
                }
            }
            request => {
                let library = self.library.clone();
                let answering = self.answering.clone();
                // The turn awaited before a worker thread is taken: requests waiting hold
                // no thread (a member sending many would otherwise hold as many).
                let span = tracing::Span::current();
                self.workers.spawn(async move {
                    let _turn = answering.acquire_owned().await.ok();
                    let work = move || {
                        span.in_scope(|| Worked::Respond {
                            response: answer(&library, &member, request),
                            channel,
                            members_changed: false,
                        })
                    };
                    match tokio::task::spawn_blocking(work).await {
                        Ok(worked) => worked,
                        Err(error) if error.is_panic() => {
                            std::panic::resume_unwind(error.into_panic())
                        }
                        Err(_) => Worked::Nothing,
                    }
                });
            }
        }
    }

    /// A peer's answer to a request of this node: taken in off the loop.
    fn handle_response(
        &mut self,
        peer: PeerId,
        request_id: request_response::OutboundRequestId,
        response: SyncResponse,
    ) {
        if self.state.nudges.remove(&request_id) {
            return;
        }
        if let Some(peer) = self.state.farewells.remove(&request_id) {
            cut_off_if_gone(&mut self.swarm, &self.state, peer);
            return;
        }
        let Some(member) = self.state.allowed.get(&peer).copied() else {
            self.round_done(peer);
            return;
        };
        let span = tracing::debug_span!("peer", %peer, library = %member.fingerprint());
        let _entered = span.enter();
        // Read as it arrives, not after the worker's queue: the member's time beside
        // this node's.
        if let SyncResponse::Hello { time_ms, .. } = &response {
            self.library.note_clock(&member, *time_ms);
        }
        if !matches!(response, SyncResponse::Changes { .. }) {
            self.state.links.forget_request(&request_id);
        }
        if let SyncResponse::Changes { shards, .. } = &response {
            let bytes: u64 = shards
                .iter()
                .flat_map(|(_, changes)| changes)
                .map(|c| c.bytes.len() as u64 + 256)
                .sum();
            self.state.links.answered(&request_id, bytes);
            self.library.note_link_rate(self.state.links.throughput());
        }
        let library = self.library.clone();
        self.off_loop(move || {
            library.note_seen(&member);
            Worked::Answered(peer, take_answer(&library, &member, response))
        });
    }

    /// An announcement on a consortium's topic: accepted (and passed on) only from
    /// members, about a catalog of that consortium.
    fn handle_gossip(
        &mut self,
        propagation_source: PeerId,
        message_id: &gossipsub::MessageId,
        message: &gossipsub::Message,
    ) {
        let state = &self.state;
        let announcement = serde_json::from_slice::<Announcement>(&message.data).ok();
        // Members only, on their own consortium's topic, about a catalog of that
        // consortium: the author, the member passing it on, and the catalog named must all
        // be current members of it.
        let consortium = state.topics.get(message.topic.as_str()).copied();
        let member_of = |peer: &PeerId| {
            state
                .allowed
                .get(peer)
                .zip(consortium)
                .is_some_and(|(library, c)| state.trust.shares(library, &c))
        };
        let from_member = message.source.as_ref().is_some_and(member_of)
            && member_of(&propagation_source)
            && message.data.len() <= GOSSIP_BYTES_MAX
            && announcement.as_ref().is_some_and(|a| {
                a.namespace
                    .zip(consortium)
                    .is_none_or(|(ns, c)| state.trust.shares(&ns, &c))
            });
        let verdict = if from_member {
            gossipsub::MessageAcceptance::Accept
        } else {
            gossipsub::MessageAcceptance::Reject
        };
        // The message may have left gossipsub's cache already: nothing to report then.
        let _ = self
            .swarm
            .behaviour_mut()
            .gossip
            .report_message_validation_result(message_id, &propagation_source, verdict);
        // A member that got this library's own catalog from it has nothing of it to give
        // back.
        let about_own = announcement
            .as_ref()
            .and_then(|a| a.namespace)
            .is_some_and(|ns| ns == self.own);
        if from_member && !about_own {
            // An announcer connected here has sent its `Changed` notice directly; else
            // pull from the member that passed it on.
            if let Some(source) = message.source {
                if !self.swarm.is_connected(&source) {
                    let hello = self.state.rounds.hello(propagation_source);
                    self.send(hello);
                }
            }
        }
    }
}

/// How often, at most, a change of the consortia's documents is announced.
const DOCUMENTS_ANNOUNCED_EVERY: Duration = Duration::from_secs(1);

/// Drives the swarm until `shutdown` resolves, then waits for the workers it started.
pub(super) async fn run(
    mut net: NetLoop,
    mut commands: mpsc::Receiver<Command>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    tokio::pin!(shutdown);
    // How often to catch up with every connected member (`[network] catch_up_s`).
    let every = Duration::from_secs(net.library.data().config.network.catch_up_s.max(1));
    let mut catch_up = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    catch_up.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut redial = tokio::time::interval(REDIAL_EVERY);
    redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Every write to this library's catalog is announced, whoever made it.
    let mut own_writes = net.library.watch_own_writes();
    // Every interlibrary-loan message queued goes to its library when connected.
    let mut ill_outbox = net.library.loans().watch_outbox();
    // Every consortium document taken in (a plan, a staff post, a signature...) is
    // announced, whoever made it: members then ask for what differs. At most once a
    // second, however fast documents come (a member posting in a loop makes one
    // announcement a second, not one a post).
    let mut documents = net.library.consortia().watch();
    let mut documents_pending = false;
    let mut documents_tick = tokio::time::interval(DOCUMENTS_ANNOUNCED_EVERY);
    documents_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(ended) = net.workers.join_next() => match ended {
                Ok(worked) => net.handle_worked(worked),
                Err(error) => {
                    tracing::error!(%error, "a network worker failed");
                    // It may have been the index's: the next change starts one again
                    // (two at once would only wait for each other).
                    net.indexing = (false, false);
                }
            },
            Ok(()) = own_writes.changed() => net.announce(Some(net.own)),
            Ok(()) = ill_outbox.changed() => net.push_ill_all(),
            Ok(()) = documents.changed() => documents_pending = true,
            _ = documents_tick.tick(), if documents_pending => {
                documents_pending = false;
                net.announce(None);
            }
            Some(command) = commands.recv() => net.handle_command(command),
            event = net.swarm.select_next_some() => net.handle_swarm_event(event),
            _ = redial.tick() => {
                listen_through_relays(&mut net.swarm, &mut net.state);
                dial_members(&mut net.swarm, &net.state);
                // A join code past its hour: its identity leaves the allow-list and the
                // relays forget its number.
                let now = net.library.now_ms();
                if net.library.join_codes().admitted_now(now).len() != net.state.codes.len() {
                    net.members_changed(None);
                }
                // Pushes that failed (a connection lost midway) go again.
                net.push_ill_all();
            }
            _ = catch_up.tick() => net.catch_up(),
        }
        net.library.note_sync_in_air(net.state.links.in_air_bytes());
    }
    // Workers write to the store and the index: each finishes what it started.
    while net.workers.join_next().await.is_some() {}
}
