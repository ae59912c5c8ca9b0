//! "Same" and "not the same": a member's correction of the union catalog's grouping.
//!
//! The grouping rule ([`crate::dedup`]) is right most of the time; where it is not, a
//! member signs an assertion about two records of two libraries. Assertions travel with
//! the consortium's other documents, so every peer corrects the same way: for each pair,
//! the latest assertion (by its author's clock, ties by document id) of a current member
//! stands.

use super::document::{DocError, Hash32, Kind, Signed};
use super::log::MemberState;
use crate::signing::{Domain, LibraryId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The longest record id an assertion names.
pub const RECORD_ID_MAX: usize = 256;

/// One record of one library.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RecordRef {
    /// The holding library.
    pub library: LibraryId,
    /// The record's id in that library's catalog.
    pub record_id: String,
}

/// A member's assertion that two records are (or are not) the same book.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchAssertion {
    /// The consortium.
    pub consortium: Hash32,
    /// One record.
    pub a: RecordRef,
    /// The other, of another library.
    pub b: RecordRef,
    /// The same book, or not.
    pub same: bool,
    /// When (ms since 1970, the author's clock).
    pub time_ms: u64,
}

impl Kind for MatchAssertion {
    const DOMAIN: Domain = Domain::MatchAssertion;
    const LABEL: &'static str = "MATCH";
}

impl MatchAssertion {
    /// The pair, smaller first: the same pair whichever way round it was written.
    pub fn pair(&self) -> (RecordRef, RecordRef) {
        if self.a <= self.b {
            (self.a.clone(), self.b.clone())
        } else {
            (self.b.clone(), self.a.clone())
        }
    }

    /// Checks the signature and the content.
    pub fn check(assertion: &Signed<MatchAssertion>, consortium: Hash32) -> Result<(), DocError> {
        assertion.verify()?;
        let body = &assertion.body;
        if body.consortium != consortium {
            return Err(DocError::WrongConsortium {
                expected: consortium,
                found: body.consortium,
            });
        }
        if body.a.library == body.b.library {
            return Err(DocError::Invalid(
                "both records are of one library: only records of two libraries are grouped".into(),
            ));
        }
        for r in [&body.a, &body.b] {
            if r.record_id.trim().is_empty() || r.record_id.len() > RECORD_ID_MAX {
                return Err(DocError::Invalid(format!(
                    "a record id must be 1 to {RECORD_ID_MAX} bytes"
                )));
            }
        }
        Ok(())
    }
}

/// The assertions that stand: for each pair, same or not.
pub fn standing(
    assertions: &BTreeMap<Hash32, Signed<MatchAssertion>>,
    members: &MemberState,
) -> BTreeMap<(RecordRef, RecordRef), bool> {
    let mut latest: BTreeMap<(RecordRef, RecordRef), (u64, Hash32, bool)> = BTreeMap::new();
    for (id, assertion) in assertions {
        if !members.members.contains_key(&assertion.author) {
            continue;
        }
        let entry = (assertion.body.time_ms, *id, assertion.body.same);
        let slot = latest.entry(assertion.body.pair()).or_insert(entry);
        if (entry.0, entry.1) > (slot.0, slot.1) {
            *slot = entry;
        }
    }
    latest
        .into_iter()
        .map(|(pair, (_, _, same))| (pair, same))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consortium::log::{Member, Role};
    use ed25519_dalek::SigningKey;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn id(n: u8) -> LibraryId {
        LibraryId::from_key(&key(n).verifying_key())
    }

    fn record(n: u8, record_id: &str) -> RecordRef {
        RecordRef {
            library: id(n),
            record_id: record_id.into(),
        }
    }

    fn assertion(by: u8, a: RecordRef, b: RecordRef, same: bool, t: u64) -> Signed<MatchAssertion> {
        Signed::sign(
            &key(by),
            MatchAssertion {
                consortium: Hash32([7; 32]),
                a,
                b,
                same,
                time_ms: t,
            },
        )
    }

    fn members(ns: &[u8]) -> MemberState {
        let mut state = MemberState::default();
        for &n in ns {
            state.members.insert(
                id(n),
                Member {
                    library: id(n),
                    name: format!("L{n}"),
                    code: format!("L{n}"),
                    role: Role::Member,
                    added_by: id(1),
                    added_ms: 0,
                    added_op: Hash32([0; 32]),
                    addresses: Vec::new(),
                },
            );
        }
        state
    }

    #[test]
    fn an_assertion_names_two_records_of_two_libraries() {
        let c = Hash32([7; 32]);
        let good = assertion(1, record(1, "a"), record(2, "b"), true, 1);
        assert!(MatchAssertion::check(&good, c).is_ok());
        let one_library = assertion(1, record(1, "a"), record(1, "b"), true, 1);
        assert!(MatchAssertion::check(&one_library, c)
            .unwrap_err()
            .to_string()
            .contains("one library"));
        let empty = assertion(1, record(1, " "), record(2, "b"), true, 1);
        assert!(MatchAssertion::check(&empty, c).is_err());
        assert!(matches!(
            MatchAssertion::check(&good, Hash32([8; 32])),
            Err(DocError::WrongConsortium { .. })
        ));
        let mut forged = good.clone();
        forged.body.same = false;
        assert!(MatchAssertion::check(&forged, c).is_err());
    }

    #[test]
    fn the_latest_assertion_of_a_current_member_stands() {
        let mut all = BTreeMap::new();
        for a in [
            assertion(1, record(1, "a"), record(2, "b"), true, 10),
            // The same pair written the other way round, later: it stands.
            assertion(2, record(2, "b"), record(1, "a"), false, 20),
            // Latest of all, but by a library that is no member.
            assertion(9, record(1, "a"), record(2, "b"), true, 30),
        ] {
            all.insert(a.id(), a);
        }
        let standing = standing(&all, &members(&[1, 2]));
        assert_eq!(standing.len(), 1);
        assert_eq!(standing.values().next(), Some(&false));
        // Once library 2 is no longer a member, library 1's assertion stands.
        let standing = super::standing(&all, &members(&[1]));
        assert_eq!(standing.values().next(), Some(&true));
    }
}
