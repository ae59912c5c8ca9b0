//! What this library did, counted by day: records added, corrected and deleted in its own
//! catalog, titles planned and plans not made once flagged. The periodic evaluation sums
//! them over a period (a record's own time says only when it last changed). One key per
//! kind and day (days of WIB, UTC+7, as the periods are), so a count costs no scan.

use std::collections::BTreeMap;

/// A day, in ms.
const DAY_MS: u64 = 86_400_000;
/// WIB's offset from UTC, in ms: days start at midnight WIB.
const WIB_MS: u64 = 7 * 3_600_000;

/// The WIB day of `ms`.
fn day_of(ms: u64) -> u64 {
    (ms + WIB_MS) / DAY_MS
}

/// The first WIB day starting at or after `ms`.
fn day_from(ms: u64) -> u64 {
    (ms + WIB_MS).div_ceil(DAY_MS)
}

/// What is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Counted {
    /// Records added to this library's catalog.
    Added,
    /// Records of it changed.
    Corrected,
    /// Records of it deleted.
    Deleted,
    /// Titles added to its purchase plan.
    Planned,
}

impl Counted {
    fn byte(self) -> u8 {
        match self {
            Counted::Added => b'a',
            Counted::Corrected => b'c',
            Counted::Deleted => b'd',
            Counted::Planned => b'p',
        }
    }
}

/// The counters, in their own tree.
pub struct Activity {
    tree: crate::durable::Tree,
}

fn key(what: Counted, day: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = what.byte();
    key[1..].copy_from_slice(&day.to_be_bytes());
    key
}

impl Activity {
    /// Opens the counters in `db`.
    pub fn open(db: &crate::durable::Db) -> Result<Activity, sled::Error> {
        Ok(Activity {
            tree: db.open_tree("activity")?,
        })
    }

    /// Adds `n` to what is counted, on the day of `at_ms`.
    pub fn add(&self, what: Counted, n: u64, at_ms: u64) -> Result<(), sled::Error> {
        if n == 0 {
            return Ok(());
        }
        self.tree
            .update_and_fetch(key(what, day_of(at_ms)), |old| {
                let was = old
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map_or(0, u64::from_be_bytes);
                Some(was.saturating_add(n).to_be_bytes().to_vec())
            })?;
        Ok(())
    }

    /// The count over the days of `[from_ms, to_ms)` (whole days: a day counts when it
    /// starts in the range).
    pub fn sum(&self, what: Counted, from_ms: u64, to_ms: u64) -> Result<u64, sled::Error> {
        let (from, to) = (day_from(from_ms), day_from(to_ms));
        let mut total = 0u64;
        for item in self.tree.range(key(what, from)..key(what, to)) {
            let (_, v) = item?;
            total =
                total.saturating_add(<[u8; 8]>::try_from(v.as_ref()).map_or(0, u64::from_be_bytes));
        }
        Ok(total)
    }

    /// The start (ms) of the last day before `to_ms` on which this library's catalog
    /// changed.
    pub fn last_change_before(&self, to_ms: u64) -> Result<Option<u64>, sled::Error> {
        let to = day_from(to_ms);
        let mut last: Option<u64> = None;
        for what in [Counted::Added, Counted::Corrected, Counted::Deleted] {
            if let Some(item) = self.tree.range(key(what, 0)..key(what, to)).next_back() {
                let (k, _) = item?;
                let day = u64::from_be_bytes(k[1..9].try_into().unwrap_or_default());
                last = last.max(Some((day * DAY_MS).saturating_sub(WIB_MS)));
            }
        }
        Ok(last)
    }

    /// A title flagged (held or planned by a partner) when the librarian tried to plan
    /// it, keyed by `title` (a hash of its folded title and author): kept from the first
    /// time, until the title is planned after all.
    pub fn flagged(&self, title: u32, at_ms: u64) -> Result<(), sled::Error> {
        let mut key = vec![b'v'];
        key.extend_from_slice(&title.to_be_bytes());
        self.tree
            .compare_and_swap(key, None as Option<&[u8]>, Some(&at_ms.to_be_bytes()[..]))?
            .ok();
        Ok(())
    }

    /// The title was planned after all, at `at_ms`: not a duplicate avoided from then on
    /// (a period that ended before keeps its figure).
    pub fn planned_anyway(&self, title: u32, at_ms: u64) -> Result<(), sled::Error> {
        let mut key = vec![b'v'];
        key.extend_from_slice(&title.to_be_bytes());
        if let Some(flagged) = self.tree.get(&key)? {
            if flagged.len() == 8 {
                let mut value = flagged.to_vec();
                value.extend_from_slice(&at_ms.to_be_bytes());
                self.tree.insert(key, value)?;
            }
        }
        Ok(())
    }

    /// Titles first flagged in `[from_ms, to_ms)` and not planned by its end: duplicates
    /// avoided.
    pub fn avoided(&self, from_ms: u64, to_ms: u64) -> Result<u64, sled::Error> {
        let mut n = 0u64;
        for item in self.tree.scan_prefix([b'v']) {
            let (_, v) = item?;
            let time = |range: std::ops::Range<usize>| {
                v.get(range)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(u64::from_be_bytes)
            };
            let flagged = time(0..8).unwrap_or(0);
            let planned = time(8..16).unwrap_or(u64::MAX);
            if (from_ms..to_ms).contains(&flagged) && planned >= to_ms {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Every count, by kind and day (for checks).
    pub fn all(&self) -> Result<BTreeMap<(u8, u64), u64>, sled::Error> {
        let mut out = BTreeMap::new();
        for item in self.tree.iter() {
            let (k, v) = item?;
            if k.len() == 9 && k[0] != b'v' {
                let day = u64::from_be_bytes(k[1..9].try_into().unwrap_or_default());
                out.insert(
                    (k[0], day),
                    <[u8; 8]>::try_from(v.as_ref()).map_or(0, u64::from_be_bytes),
                );
            }
        }
        Ok(out)
    }
}
