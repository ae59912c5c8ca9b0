#![no_main]
//! Any bytes as a sync message from a peer (what the node's codec hands to
//! `sync::decode`): no panic, no allocation past the input, and every message that decodes
//! keeps within the protocol's bounds and encodes back to a message equal to it.
use jalin_protocol::sync::{self, Message, SyncRequest, SyncResponse};
use libfuzzer_sys::fuzz_target;

/// The node's limits on requests and responses (`node/src/network.rs`).
const REQUEST_BYTES_MAX: usize = 64 * 1024;
const RESPONSE_BYTES_MAX: usize = 32 * 1024 * 1024;

fn there_and_back<M: Message + PartialEq + std::fmt::Debug>(data: &[u8], max: usize) {
    if let Ok(message) = sync::decode::<M>(data, max) {
        assert!(message.check().is_ok());
        let bytes = sync::encode(&message).expect("a decoded message encodes");
        let again: M = sync::decode(&bytes, usize::MAX).expect("and decodes again");
        assert_eq!(again, message);
    }
}

fuzz_target!(|data: &[u8]| {
    there_and_back::<SyncRequest>(data, REQUEST_BYTES_MAX);
    there_and_back::<SyncResponse>(data, RESPONSE_BYTES_MAX);
});
