//! The trust boundary, in one place: whom this node deals with, and about what.
//!
//! A node connects to, answers, and takes catalog changes and documents from a library
//! only while both are current members of at least one consortium this node is itself a
//! member of; to a peer it serves only the catalogs and documents of the consortia they
//! share. A library in two consortia is a wall between them, not a bridge: what is shared
//! with a peer is decided per consortium, never by the union of all.
//!
//! [`Trust`] is that rule over one moment's membership logs. The network asks it before
//! every connection, answer and change it takes; the library asks it which replicas it may
//! keep. It is computed from the logs, never from what a peer says.

use jalin_protocol::consortium::document::Hash32;
use jalin_protocol::signing::LibraryId;
use std::collections::{BTreeMap, BTreeSet};

/// The consortia this library is a current member of, with their current members.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trust {
    /// This library.
    own: Option<LibraryId>,
    /// Each consortium this library is a current member of -> its current members (this
    /// library among them).
    consortia: BTreeMap<Hash32, BTreeSet<LibraryId>>,
}

impl Trust {
    /// The rule for `own`, given each consortium held and its current members; those
    /// `own` is not a current member of count for nothing.
    pub fn new(
        own: LibraryId,
        held: impl IntoIterator<Item = (Hash32, BTreeSet<LibraryId>)>,
    ) -> Trust {
        Trust {
            own: Some(own),
            consortia: held
                .into_iter()
                .filter(|(_, members)| members.contains(&own))
                .collect(),
        }
    }

    /// The consortia this library is a current member of.
    pub fn consortia(&self) -> impl Iterator<Item = &Hash32> {
        self.consortia.keys()
    }

    /// Whether this library is a current member of `consortium`.
    pub fn is_member_of(&self, consortium: &Hash32) -> bool {
        self.consortia.contains_key(consortium)
    }

    /// Every other library that shares a consortium with this one.
    pub fn co_members(&self) -> BTreeSet<LibraryId> {
        self.consortia
            .values()
            .flatten()
            .filter(|l| Some(**l) != self.own)
            .copied()
            .collect()
    }

    /// Whether `library` shares a consortium with this one (this library itself: yes).
    pub fn is_co_member(&self, library: &LibraryId) -> bool {
        Some(*library) == self.own || self.consortia.values().any(|m| m.contains(library))
    }

    /// Whether `peer` and this library are both current members of `consortium`: its
    /// documents may go to and come from `peer`.
    pub fn shares(&self, peer: &LibraryId, consortium: &Hash32) -> bool {
        self.consortia
            .get(consortium)
            .is_some_and(|members| members.contains(peer))
    }

    /// Whether `catalog` may go to or come from `peer`: some consortium this library is a
    /// member of has both as current members.
    pub fn catalog_between(&self, peer: &LibraryId, catalog: &LibraryId) -> bool {
        self.consortia
            .values()
            .any(|members| members.contains(peer) && members.contains(catalog))
    }

    /// The consortia this library is a member of that have `library` as a member (where a
    /// notice about its catalog goes).
    pub fn consortia_of<'a>(&'a self, library: &'a LibraryId) -> impl Iterator<Item = &'a Hash32> {
        self.consortia
            .iter()
            .filter(move |(_, members)| members.contains(library))
            .map(|(id, _)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn library(seed: u8) -> LibraryId {
        let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        LibraryId::from_key(&key.verifying_key())
    }

    #[test]
    fn a_library_in_two_consortia_is_a_wall_between_them() {
        let (a, r, n, b) = (library(1), library(2), library(3), library(4));
        let (c, f, g) = (Hash32([1; 32]), Hash32([2; 32]), Hash32([3; 32]));
        // A and R in C; R and N in F (held by A, who is no member of it); B and A in G.
        let trust = Trust::new(
            a,
            [
                (c, BTreeSet::from([a, r])),
                (f, BTreeSet::from([r, n])),
                (g, BTreeSet::from([a, b])),
            ],
        );
        assert_eq!(trust.co_members(), BTreeSet::from([r, b]));
        assert!(!trust.is_co_member(&n));
        assert!(trust.is_co_member(&a));
        assert!(!trust.is_member_of(&f));
        assert!(trust.shares(&r, &c) && !trust.shares(&r, &g) && !trust.shares(&n, &f));
        // R gets A's catalog and its own, never B's: they share no consortium.
        assert!(trust.catalog_between(&r, &a));
        assert!(trust.catalog_between(&r, &r));
        assert!(!trust.catalog_between(&r, &b));
        assert!(!trust.catalog_between(&b, &r));
        assert!(!trust.catalog_between(&r, &n) && !trust.catalog_between(&n, &n));
        assert_eq!(trust.consortia_of(&b).collect::<Vec<_>>(), [&g]);
        assert_eq!(trust.consortia_of(&a).count(), 2);
    }
}
