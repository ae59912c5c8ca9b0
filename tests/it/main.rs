//! Jalin's integration tests: one binary, a module per capability.

mod api;
mod architecture;
mod catalog;
mod cli;
mod collection;
mod consortium;
mod cql;
mod crash;
mod edit;
mod formats;
mod gateway;
mod harvest;
mod hostile;
mod ill;
mod membership;
mod needs;
mod network;
mod oai;
mod plans;
mod replication;
mod roundtrip;
mod search;
mod sru;
mod support;
mod survey;
mod web;
