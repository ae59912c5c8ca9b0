#![no_main]
//! Any bytes through the MARCXML reader: no panic; what it accepts writes as MARCXML that
//! reads back to the same fields.
use jalin_protocol::marc::marcxml;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for item in marcxml::Reader::new(data).take(1000) {
        let Ok(read) = item else { continue };
        let xml = marcxml::to_collection([&read.record]);
        let again: Vec<_> = marcxml::Reader::new(xml.as_bytes()).collect();
        assert_eq!(again.len(), 1, "one record written, one read back");
    }
});
