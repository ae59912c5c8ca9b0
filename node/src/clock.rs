//! The time, as the node is given it: the system's clock in a running node, a clock the
//! test sets in tests (no test sleeps to wait for a deadline).

use std::sync::atomic::{AtomicU64, Ordering};

/// Where the node reads the time.
pub trait Clock: Send + Sync + 'static {
    /// Now, as ms since 1970.
    fn now_ms(&self) -> u64;
}

/// The system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A clock that stands still until it is set or moved on (for tests).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock showing `ms`.
    pub fn at(ms: u64) -> ManualClock {
        ManualClock(AtomicU64::new(ms))
    }

    /// Moves it on by `ms`.
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets it to `ms`.
    pub fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A difference between clocks that is shown to the librarian (smaller ones are the
/// network's own delay and the usual drift).
pub const SKEW_NOTICE_MS: u64 = 60 * 60 * 1000;
/// The difference between members' clocks that deadlines tolerate: an invite, a period
/// or a loan judged by another member's clock is not refused for less than this.
pub const SKEW_TOLERANCE_MS: u64 = jalin_protocol::consortium::log::CLOCK_SKEW_TOLERANCE_MS;
/// Members' times kept, at most (the newest per member).
const PEERS_MAX: usize = 1_024;

/// One member's clock as this node last read it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeerClock {
    /// The member (hex key).
    pub library: String,
    /// Its name, where known.
    pub name: Option<String>,
    /// Its time minus this node's, when last read (ms; positive: it is ahead).
    pub offset_ms: i64,
    /// When it was read (this node's time).
    pub read_ms: u64,
}

/// What members' times say of this node's clock.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClockReport {
    /// Each member's clock beside this node's.
    pub peers: Vec<PeerClock>,
    /// This node's clock is off by this much (ms; positive: ahead), when every member read
    /// agrees on it (two or more, within [`SKEW_NOTICE_MS`] of each other) and it is over
    /// [`SKEW_NOTICE_MS`].
    pub this_node_off_ms: Option<i64>,
    /// Members whose clock differs from this node's by over [`SKEW_NOTICE_MS`] when it
    /// cannot be told whose clock is wrong (one member read, or members that disagree).
    pub differing: Vec<PeerClock>,
}

impl ClockReport {
    /// In words, for the librarian (English; the pages translate).
    pub fn warning(&self) -> Option<String> {
        if let Some(off) = self.this_node_off_ms {
            return Some(format!(
                "this computer's clock is {} {} the other members' (set its date and time)",
                describe_ms(off.unsigned_abs()),
                if off > 0 { "ahead of" } else { "behind" }
            ));
        }
        let first = self.differing.first()?;
        Some(format!(
            "this computer's clock and {}'s differ by {} (check the date and time of both)",
            first.name.as_deref().unwrap_or(&first.library),
            describe_ms(first.offset_ms.unsigned_abs())
        ))
    }
}

/// A duration in the unit a person reads it in: `(3, "days")`, `(5, "hours")`,
/// `(12, "minutes")`.
pub fn amount(ms: u64) -> (u64, &'static str) {
    const MINUTE: u64 = 60_000;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;
    if ms >= 2 * DAY {
        ((ms + DAY / 2) / DAY, "days")
    } else if ms >= 2 * HOUR {
        ((ms + HOUR / 2) / HOUR, "hours")
    } else {
        ((ms + MINUTE / 2) / MINUTE, "minutes")
    }
}

/// "3 days", "5 hours", "12 minutes".
pub fn describe_ms(ms: u64) -> String {
    let (n, unit) = amount(ms);
    format!("{n} {unit}")
}

/// Members' times as this node read them (each `Hello` answer carries the member's time).
#[derive(Debug, Default)]
pub struct PeerTimes(std::sync::Mutex<std::collections::BTreeMap<[u8; 32], (i64, u64)>>);

impl PeerTimes {
    /// Notes that `member`'s clock showed `their_ms` when this node's showed `our_ms`.
    pub fn note(&self, member: [u8; 32], their_ms: u64, our_ms: u64) {
        let offset = i64::try_from(their_ms)
            .unwrap_or(i64::MAX)
            .saturating_sub(i64::try_from(our_ms).unwrap_or(i64::MAX));
        let mut times = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if times.len() >= PEERS_MAX && !times.contains_key(&member) {
            // The oldest reading leaves.
            if let Some(oldest) = times.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| *k) {
                times.remove(&oldest);
            }
        }
        times.insert(member, (offset, our_ms));
    }

    /// Forgets a member's time (it is no member any more).
    pub fn forget(&self, member: &[u8; 32]) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(member);
    }

    /// The report over the times of `members` (hex key and name), read since `since_ms`.
    pub fn report(
        &self,
        members: &[([u8; 32], String, Option<String>)],
        since_ms: u64,
    ) -> ClockReport {
        let times = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let peers: Vec<PeerClock> = members
            .iter()
            .filter_map(|(key, hex, name)| {
                let (offset_ms, read_ms) = *times.get(key)?;
                (read_ms >= since_ms).then(|| PeerClock {
                    library: hex.clone(),
                    name: name.clone(),
                    offset_ms,
                    read_ms,
                })
            })
            .collect();
        drop(times);
        let notice = SKEW_NOTICE_MS as i64;
        let mut report = ClockReport {
            peers: peers.clone(),
            ..ClockReport::default()
        };
        let (low, high) = peers.iter().fold((i64::MAX, i64::MIN), |(lo, hi), p| {
            (lo.min(p.offset_ms), hi.max(p.offset_ms))
        });
        if peers.len() >= 2 && high.saturating_sub(low) <= notice {
            // Every member agrees: if they all differ from this node, this node is off.
            let mut offsets: Vec<i64> = peers.iter().map(|p| p.offset_ms).collect();
            offsets.sort_unstable();
            let median = offsets[offsets.len() / 2];
            if median.abs() > notice {
                report.this_node_off_ms = Some(-median);
            }
            return report;
        }
        report.differing = peers
            .into_iter()
            .filter(|p| p.offset_ms.abs() > notice)
            .collect();
        report
    }
}
