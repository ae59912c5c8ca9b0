#![no_main]
//! Any bytes as the canonical encoding of every kind of signed document: no panic, and
//! what decodes encodes back to the same bytes.
use jalin_protocol::consortium::agreement::{AgreementSignature, AgreementVersion};
use jalin_protocol::consortium::document::{Kind, Signed};
use jalin_protocol::consortium::log::{Acceptance, Invite, Log, LogOp};
use libfuzzer_sys::fuzz_target;

fn check<T: Kind + PartialEq + std::fmt::Debug>(data: &[u8]) -> Option<Signed<T>> {
    let doc = Signed::<T>::from_bytes(data).ok()?;
    assert_eq!(doc.to_bytes(), data);
    Some(doc)
}

fuzz_target!(|data: &[u8]| {
    if let Some(op) = check::<LogOp>(data) {
        if let Ok(mut log) = Log::new(op.clone()) {
            let _ = log.insert(op);
            let _ = log.state();
        }
    }
    check::<Invite>(data);
    check::<Acceptance>(data);
    check::<AgreementVersion>(data);
    check::<AgreementSignature>(data);
});
