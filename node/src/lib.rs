//! jalin-node: everything in Jalin that touches the outside world.
//!
//! - [`config`]: the data directory (config, key, API token);
//! - [`store`]: the durable catalog (sled + sharded automerge documents);
//! - [`search`]: the tantivy index derived from the store;
//! - [`library`]: one library's catalog: store and index together, import, edit, delete;
//! - [`http`]: the JSON API (axum);
//! - [`files`]: catalog files on disk;
//! - [`node`]: a running node, the owner of the library, the network and the HTTP server.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod activity;
pub mod beacon;
pub mod bundle;
pub mod catalogs;
pub mod clock;
pub mod codec;
pub mod config;
pub mod consortium;
pub mod consortium_requests;
pub mod conspectus;
pub mod durable;
pub mod edit;
pub mod evaluation;
pub mod files;
pub mod gateway;
pub mod http;
pub mod ill;
pub mod ill_requests;
pub mod join_code;
pub mod joining;
pub mod library;
pub mod needs;
pub mod network;
pub mod node;
pub mod oai;
pub mod plans;
pub mod profiles;
pub mod relay;
pub mod search;
pub mod server;
pub mod sru;
pub mod staff;
pub mod store;
pub mod survey;
pub mod trust;
pub mod web;
