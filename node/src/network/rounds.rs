//! The sync round scheduler, apart from the swarm: it decides which requests go now, and
//! the network's loop sends them.

use std::collections::HashSet;

use libp2p::PeerId;

use super::SyncRequest;

/// Most requests of a sync round in the air at once toward one peer.
pub(super) const REQUESTS_PER_PEER_MAX: usize = 4;
/// Most sync requests in the air at once toward all peers together.
/// (The memory budget counts each with its answer: [`crate::config::MemoryPlan`].)
pub(super) const REQUESTS_IN_AIR_MAX: usize = crate::config::SYNC_ANSWERS_IN_AIR;

/// One sync round per peer at a time: a round starts with `Hello` and lasts while any of
/// its requests (or the work on their answers) is outstanding. A reason to sync again that
/// comes during a round (an announcement, the timer) starts one more round after it, not
/// a second one beside it: parallel rounds would ask for the same changes twice and fill
/// the peer's stream limit.
///
/// At most [`REQUESTS_PER_PEER_MAX`] requests of a round are in the air (sent, or their
/// answer being taken in) toward one peer, and [`REQUESTS_IN_AIR_MAX`] toward all peers
/// together; the rest wait in order, and peers take turns. A catalog of a million records
/// asks for many shards' changes, each answer can hold megabytes, and a new member asks
/// every member at once: taking them all at once would hold them all in memory at once.
#[derive(Default)]
pub(super) struct Rounds {
    /// Requests of the round not done yet (in the air or waiting), per peer.
    outstanding: std::collections::HashMap<PeerId, usize>,
    /// Requests in the air, per peer.
    in_air: std::collections::HashMap<PeerId, usize>,
    /// Requests waiting for one in the air to be done.
    waiting: std::collections::BTreeMap<PeerId, std::collections::VecDeque<SyncRequest>>,
    again: HashSet<PeerId>,
}

impl Rounds {
    /// Starts a round with `peer` (a `Hello`), or notes one more after the round under way.
    pub(super) fn hello(&mut self, peer: PeerId) -> Vec<(PeerId, SyncRequest)> {
        if self.outstanding.get(&peer).copied().unwrap_or(0) > 0 {
            self.again.insert(peer);
            return Vec::new();
        }
        self.request(peer, SyncRequest::Hello)
    }

    /// A request of the round with `peer`, sent when the limits allow.
    pub(super) fn request(
        &mut self,
        peer: PeerId,
        request: SyncRequest,
    ) -> Vec<(PeerId, SyncRequest)> {
        *self.outstanding.entry(peer).or_insert(0) += 1;
        self.waiting.entry(peer).or_default().push_back(request);
        self.release()
    }

    /// The waiting requests the limits let go now, one peer after another, counted as in
    /// the air: the caller sends them.
    fn release(&mut self) -> Vec<(PeerId, SyncRequest)> {
        let mut out = Vec::new();
        let mut total: usize = self.in_air.values().sum();
        loop {
            let mut sent = false;
            for (peer, queue) in &mut self.waiting {
                if total >= REQUESTS_IN_AIR_MAX {
                    self.waiting.retain(|_, queue| !queue.is_empty());
                    return out;
                }
                let in_air = self.in_air.entry(*peer).or_insert(0);
                if *in_air >= REQUESTS_PER_PEER_MAX {
                    continue;
                }
                if let Some(request) = queue.pop_front() {
                    out.push((*peer, request));
                    *in_air += 1;
                    total += 1;
                    sent = true;
                }
            }
            self.waiting.retain(|_, queue| !queue.is_empty());
            if !sent {
                return out;
            }
        }
    }

    /// One request's answer has been dealt with (its follow-ups are already asked for);
    /// `connected`: whether the peer still is (a round asked for meanwhile starts only
    /// then).
    pub(super) fn done(&mut self, peer: PeerId, connected: bool) -> Vec<(PeerId, SyncRequest)> {
        if let Some(in_air) = self.in_air.get_mut(&peer) {
            *in_air = in_air.saturating_sub(1);
        }
        let left = match self.outstanding.get_mut(&peer) {
            Some(count) => {
                *count = count.saturating_sub(1);
                *count
            }
            None => 0,
        };
        if left == 0 {
            self.outstanding.remove(&peer);
            self.in_air.remove(&peer);
            self.waiting.remove(&peer);
            if self.again.remove(&peer) && connected {
                *self.outstanding.entry(peer).or_insert(0) += 1;
                self.waiting
                    .entry(peer)
                    .or_default()
                    .push_back(SyncRequest::Hello);
            }
        }
        self.release()
    }

    /// A peer gone: its round ends.
    pub(super) fn forget(&mut self, peer: &PeerId) {
        self.outstanding.remove(peer);
        self.in_air.remove(peer);
        self.waiting.remove(peer);
        self.again.remove(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> PeerId {
        libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id()
    }

    fn changes(n: u16) -> SyncRequest {
        SyncRequest::Changes {
            namespace: jalin_protocol::signing::LibraryId::from_key(
                &ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key(),
            ),
            shards: vec![(n, Default::default())].into(),
            max_bytes: 0,
        }
    }

    /// One round per peer; a reason to sync during a round starts one more after it.
    #[test]
    fn a_hello_during_a_round_waits_for_its_end() {
        let mut rounds = Rounds::default();
        let a = peer();
        assert_eq!(rounds.hello(a).len(), 1);
        assert!(
            rounds.hello(a).is_empty(),
            "no second round beside the first"
        );
        // The Hello's answer asks for more: part of the same round.
        assert_eq!(rounds.request(a, changes(1)).len(), 1);
        assert!(rounds.done(a, true).is_empty(), "the round goes on");
        let next = rounds.done(a, true);
        assert!(
            matches!(next.as_slice(), [(p, SyncRequest::Hello)] if *p == a),
            "the round asked for meanwhile starts after it"
        );
        // A peer gone by then gets no round.
        let b = peer();
        rounds.hello(b);
        rounds.hello(b);
        assert!(rounds.done(b, false).is_empty());
    }

    /// At most 4 requests in the air toward one peer and 8 toward all; the rest wait in
    /// order and go as answers come.
    #[test]
    fn requests_in_the_air_keep_within_the_limits() {
        let mut rounds = Rounds::default();
        let peers: Vec<PeerId> = (0..3).map(|_| peer()).collect();
        let mut sent = Vec::new();
        for p in &peers {
            for n in 0..6 {
                sent.extend(rounds.request(*p, changes(n)));
            }
        }
        assert_eq!(sent.len(), REQUESTS_IN_AIR_MAX);
        for p in &peers {
            assert!(sent.iter().filter(|(q, _)| q == p).count() <= REQUESTS_PER_PEER_MAX);
        }
        // One answer of the first peer: one more request goes.
        let more = rounds.done(peers[0], true);
        assert_eq!(more.len(), 1);
        // Answers come back, the oldest in the air first: every request goes, and never
        // more than the limits in the air.
        let mut all = sent.clone();
        all.extend(more.iter().cloned());
        let mut in_air: std::collections::VecDeque<(PeerId, SyncRequest)> =
            sent.into_iter().chain(more).collect();
        // The first peer's first request was answered above.
        if let Some(at) = in_air.iter().position(|(q, _)| *q == peers[0]) {
            in_air.remove(at);
        }
        while let Some((p, _)) = in_air.pop_front() {
            let next = rounds.done(p, true);
            all.extend(next.iter().cloned());
            in_air.extend(next);
            assert!(in_air.len() <= REQUESTS_IN_AIR_MAX);
        }
        assert_eq!(all.len(), 18, "every request went");
        for p in &peers {
            let order: Vec<u16> = all
                .iter()
                .filter(|(q, _)| q == p)
                .map(|(_, r)| match r {
                    SyncRequest::Changes { shards, .. } => shards[0].0,
                    _ => u16::MAX,
                })
                .collect();
            assert_eq!(order, (0..6).collect::<Vec<u16>>());
        }
    }
}
