//! jalin-node: everything in Jalin that touches the outside world.
//!
//! For now: catalog files on disk ([`files`]). The store (sled), catalog (automerge),
//! search (tantivy), network (libp2p) and HTTP (axum) come here as they land.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod files;
