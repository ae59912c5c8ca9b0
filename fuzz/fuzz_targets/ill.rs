#![no_main]
//! Any bytes as what a peer or an outside system sends for interlibrary loan: a push over
//! `/jalin/ill/1` (decoded and bounded as the codec does), each message in it as a signed
//! document (decoded, bounds checked, folded into a transaction), and the same bytes as
//! an ISO 18626 message at `POST /iso18626` (read, and its confirmation written). No
//! panic; whatever decodes keeps within its bounds.
use jalin_protocol::consortium::document::Signed;
use jalin_protocol::ill::{iso, IllAck, IllMessage, IllPush, Transaction};
use jalin_protocol::sync::{self, Message};
use libfuzzer_sys::fuzz_target;

fn message(bytes: &[u8]) {
    if let Ok(signed) = Signed::<IllMessage>::from_bytes(bytes) {
        if signed.body.check_bounds().is_ok() {
            // A lone message, and the same twice: a request folds, a step waits.
            let _ = Transaction::fold(&[signed.clone(), signed]);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(push) = sync::decode::<IllPush>(data, 600 * 1024) {
        assert!(push.check().is_ok());
        for m in &push.messages {
            message(m);
        }
    }
    if let Ok(ack) = sync::decode::<IllAck>(data, 80 * 1024) {
        assert!(ack.check().is_ok());
    }
    message(data);
    let read = iso::read(data);
    let (kind, incoming, error) = match &read {
        Ok(m) => (m.kind, Some(m), None),
        Err(e) => (None, None, Some(e)),
    };
    let confirmation = iso::confirmation(kind, incoming, error, 0);
    assert!(confirmation.starts_with("<?xml"));
    // The same bytes as an outside agency's answer to this library's message; and the
    // confirmation just written reads back as one.
    let _ = iso::read_confirmation(data);
    let back = iso::read_confirmation(confirmation.as_bytes()).expect("reads back");
    assert_eq!(back.ok, error.is_none());
});
