#![no_main]
//! Any bytes through both CSV layouts: no panic.
use jalin_protocol::csv::{Layout, Reader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for layout in [Layout::Slims, Layout::Generic] {
        for item in Reader::new(data, layout).take(1000) {
            if let Ok(read) = item {
                let _ = jalin_protocol::marc::iso2709::write_record(&read.record.marc);
            }
        }
    }
});
