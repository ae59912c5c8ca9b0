//! The catalogs as the network sees them: the narrow interface between the sync protocol
//! and the library, scoped to one peer.
//!
//! [`Library::shared_with`] gives a [`SharedCatalogs`] for a peer and one moment's
//! [`Trust`]; every read and every write through it asks that rule first, so a catalog
//! goes to or comes from a peer only while some consortium has both as current members.
//! The network reaches the catalogs through this view alone (a test holds that
//! `node/src/network/` names neither `store()` nor `index()`).

use crate::library::Library;
use crate::store::{RemoteApplied, ReplicaError, SignedChange, StoreError};
use crate::trust::Trust;
use jalin_protocol::signing::LibraryId;
use std::sync::Arc;

/// Why a peer gets or gives nothing of a catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// No consortium has the peer and the catalog's library both as current members.
    #[error("not shared with you: no consortium has us both as members")]
    NotShared,
    /// Reading or writing the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The catalogs one peer may read from and write to this node, as of one moment's
/// membership.
pub struct SharedCatalogs<'a> {
    library: &'a Library,
    peer: LibraryId,
    trust: Arc<Trust>,
}

impl Library {
    /// The catalogs shared with `peer`, under the membership as it is now.
    pub fn shared_with(&self, peer: &LibraryId) -> SharedCatalogs<'_> {
        SharedCatalogs {
            library: self,
            peer: *peer,
            trust: self.consortia().trust(),
        }
    }
}

impl SharedCatalogs<'_> {
    /// The trust rule this view applies.
    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// Whether `catalog` may go to or come from the peer.
    pub fn is_shared(&self, catalog: &LibraryId) -> bool {
        self.trust.catalog_between(&self.peer, catalog)
    }

    fn check(&self, catalog: &LibraryId) -> Result<(), CatalogError> {
        if self.is_shared(catalog) {
            Ok(())
        } else {
            Err(CatalogError::NotShared)
        }
    }

    /// Each catalog held here that is shared with the peer, with its digest.
    pub fn digests(&self) -> Result<Vec<(LibraryId, [u8; 32])>, CatalogError> {
        let store = self.library.store();
        Ok(store
            .namespaces()?
            .into_iter()
            .filter(|ns| self.is_shared(ns))
            .filter_map(|ns| Some((ns, store.namespace_digest(&ns).ok()?)))
            .collect())
    }

    /// One shared catalog's digest.
    pub fn digest(&self, catalog: &LibraryId) -> Result<[u8; 32], CatalogError> {
        self.check(catalog)?;
        Ok(self.library.store().namespace_digest(catalog)?)
    }

    /// Records and tombstones of one shared catalog held here.
    pub fn held(&self, catalog: &LibraryId) -> Result<u64, CatalogError> {
        self.check(catalog)?;
        let (live, deleted) = self.library.held_counts_recent(catalog)?;
        Ok(live + deleted)
    }

    /// The heads of one shard of a shared catalog.
    pub fn shard_heads(
        &self,
        catalog: &LibraryId,
        shard: u16,
    ) -> Result<Vec<[u8; 32]>, CatalogError> {
        self.check(catalog)?;
        Ok(self.library.store().shard_heads(catalog, shard)?)
    }

    /// The signed changes of one shard of a shared catalog since the heads `have`.
    pub fn changes_since(
        &self,
        catalog: &LibraryId,
        shard: u16,
        have: &[[u8; 32]],
    ) -> Result<Vec<SignedChange>, CatalogError> {
        self.check(catalog)?;
        Ok(self.library.store().changes_since(catalog, shard, have)?)
    }

    /// [`SharedCatalogs::changes_since`] while they fit in `budget` bytes (the first
    /// always); whether they are all.
    pub fn changes_since_within(
        &self,
        catalog: &LibraryId,
        shard: u16,
        have: &[[u8; 32]],
        budget: usize,
    ) -> Result<(Vec<SignedChange>, bool), CatalogError> {
        self.check(catalog)?;
        Ok(self
            .library
            .store()
            .changes_since_within(catalog, shard, have, budget)?)
    }

    /// Stores the peer's changes of some shards of a shared catalog (not this library's
    /// own: the store refuses those), one result per shard, without indexing them
    /// ([`Library::index_or_warn`] does, once the network has passed them on). When the
    /// membership changed while they were written and the catalog is no longer shared
    /// with anyone, it is forgotten again at once and the answer is `NotShared`.
    pub fn store_from(
        &self,
        catalog: &LibraryId,
        shards: &[(u16, Vec<SignedChange>)],
    ) -> Result<Vec<Result<RemoteApplied, ReplicaError>>, CatalogError> {
        self.check(catalog)?;
        let results = self.library.store_remote_many(catalog, shards);
        if !self.library.consortia().trust().is_co_member(catalog) {
            if let Err(error) = self.library.forget_strangers() {
                tracing::error!(%error, "could not forget a former member's catalog");
            }
            return Err(CatalogError::NotShared);
        }
        Ok(results)
    }
}
