//! How much a member's link carries: each `Changes` answer's bytes over the time it took,
//! per peer, so the next request asks for what arrives in a few seconds. A weak link (a
//! village's 64 kbit/s) asks for small answers: a connection that drops loses one small
//! answer, not megabytes, and no answer outlives the request timeout; a LAN asks for the
//! protocol's largest.

use libp2p::request_response::OutboundRequestId;
use libp2p::PeerId;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Seconds of the link one answer should take.
const TARGET: Duration = Duration::from_secs(8);
/// The smallest answer asked for (a change with its envelope is about a kilobyte).
pub(super) const MIN_BYTES: u32 = 16 * 1024;
/// The largest (the protocol's own limit on an answer's changes).
pub(super) const MAX_BYTES: u32 = 8 * 1024 * 1024;
/// What a link not measured yet is taken to carry a second: its first answer takes 8 s
/// at 32 KiB/s, 32 s on a 64 kbit/s link, within the request timeout either way.
const START_RATE: f64 = 32.0 * 1024.0;
/// Answers smaller than this say more about the round trip than the link: not measured.
const SAMPLE_MIN_BYTES: u64 = 8 * 1024;

/// Per peer, the bytes a second its answers arrived at lately.
#[derive(Default)]
pub(super) struct Links {
    rates: HashMap<PeerId, f64>,
    sent: HashMap<OutboundRequestId, (PeerId, Instant, u32)>,
    /// Answers' bytes of the last [`WINDOW`], all peers: what arrives a second in all
    /// (several answers share a link at once, so one answer's rate is a part of it).
    recent: std::collections::VecDeque<(Instant, u64)>,
}

/// How far back [`Links::throughput`] looks.
const WINDOW: Duration = Duration::from_secs(60);

impl Links {
    /// The bytes to ask `peer` for in one answer.
    pub(super) fn max_bytes(&self, peer: &PeerId) -> u32 {
        let rate = self.rates.get(peer).copied().unwrap_or(START_RATE);
        let bytes = rate * TARGET.as_secs_f64();
        // A float to an int saturates in Rust; then the bounds.
        (bytes as u32).clamp(MIN_BYTES, MAX_BYTES)
    }

    /// A `Changes` request went to `peer`, asking for at most `asked` bytes.
    pub(super) fn sent(&mut self, id: OutboundRequestId, peer: PeerId, asked: u32) {
        self.sent.insert(id, (peer, Instant::now(), asked));
    }

    /// The bytes the answers not arrived yet may bring.
    pub(super) fn in_air_bytes(&self) -> u64 {
        self.sent
            .values()
            .map(|(_, _, asked)| u64::from(*asked))
            .sum()
    }

    /// Its answer came, carrying `bytes`.
    pub(super) fn answered(&mut self, id: &OutboundRequestId, bytes: u64) {
        let Some((peer, at, _)) = self.sent.remove(id) else {
            return;
        };
        let now = Instant::now();
        self.recent.push_back((now, bytes));
        while self
            .recent
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > WINDOW)
        {
            self.recent.pop_front();
        }
        if bytes < SAMPLE_MIN_BYTES {
            return;
        }
        let seconds = at.elapsed().as_secs_f64().max(0.001);
        let sample = bytes as f64 / seconds;
        let rate = self.rates.entry(peer).or_insert(sample);
        *rate = (*rate + sample) / 2.0;
    }

    /// Bytes a second the answers of the last minute brought, all peers together (0
    /// before any).
    pub(super) fn throughput(&self) -> u64 {
        let Some((first, _)) = self.recent.front() else {
            return 0;
        };
        let seconds = first.elapsed().as_secs_f64().max(1.0);
        let bytes: u64 = self.recent.iter().map(|(_, b)| b).sum();
        (bytes as f64 / seconds) as u64
    }

    /// It failed (timed out, the connection dropped): the link carries less than thought.
    pub(super) fn failed(&mut self, id: &OutboundRequestId) {
        if let Some((peer, _, _)) = self.sent.remove(id) {
            let rate = self.rates.entry(peer).or_insert(START_RATE);
            *rate = (*rate / 4.0).max(f64::from(MIN_BYTES) / TARGET.as_secs_f64());
        }
    }

    /// A request answered otherwise than with changes (refused): not measured.
    pub(super) fn forget_request(&mut self, id: &OutboundRequestId) {
        self.sent.remove(id);
    }

    /// A peer gone: its requests in the air will not be answered.
    pub(super) fn forget(&mut self, peer: &PeerId) {
        self.sent.retain(|_, (p, _, _)| p != peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_follow_the_link_within_bounds() {
        let links = Links::default();
        let peer = PeerId::random();
        assert_eq!(links.max_bytes(&peer), 256 * 1024);
        let mut links = links;
        // 8 KB/s (64 kbit/s): answers of 64 KB.
        links.rates.insert(peer, 8_000.0);
        assert_eq!(links.max_bytes(&peer), 64_000);
        links.rates.insert(peer, 100.0);
        assert_eq!(links.max_bytes(&peer), MIN_BYTES);
        links.rates.insert(peer, 1e12);
        assert_eq!(links.max_bytes(&peer), MAX_BYTES);
    }
}
