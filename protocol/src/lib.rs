//! jalin-protocol: the pure core of Jalin.
//!
//! Plain types and pure functions: the bibliographic [`record::Record`], the MARC21
//! structures and their encodings ([`marc`]), CSV ([`csv`]) and Dublin Core ([`dc`]).
//! Nothing here opens a file, a socket or a database, reads the clock or draws random
//! numbers: readers take any [`std::io::Read`] the caller hands them, so the same code
//! serves a file, an HTTP upload and a fuzzer.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod bounded;
pub mod bundle;
pub mod collection;
pub mod consortium;
pub mod cql;
pub mod csv;
pub mod dc;
pub mod dedup;
pub mod format;
pub mod ill;
pub mod isbn;
pub mod marc;
pub mod oai;
pub mod profile;
pub mod record;
pub mod signing;
pub mod sync;
pub mod xml;
