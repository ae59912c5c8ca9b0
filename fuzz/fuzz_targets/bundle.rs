#![no_main]
//! Any bytes as a bundle's frames (what the node's decompressor hands to
//! `BundleReader`): no panic, no allocation past the bounds, and a reader that stops at
//! the first error (the node applies nothing of a bundle unless every frame and the
//! signature hold).
use jalin_protocol::bundle::BundleReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = BundleReader::new(data) else {
        return;
    };
    let mut sections = 0u64;
    while let Ok(Some((section, _))) = reader.next_section() {
        assert!(section.check().is_ok());
        sections += 1;
        assert!(sections <= jalin_protocol::bundle::SECTIONS_MAX);
    }
});
