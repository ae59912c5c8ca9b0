#![no_main]
//! Any bytes through the ISO 2709 reader (with each charset): no panic, and every record
//! it accepts writes back out and reads again to the same record.
use jalin_protocol::marc::{iso2709, Charset};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for charset in [None, Some(Charset::Marc8), Some(Charset::Latin1), Some(Charset::Danmarc)] {
        let reader = iso2709::Reader::with_options(data, iso2709::ReadOptions { charset });
        for item in reader.take(1000) {
            let Ok(read) = item else { continue };
            let record = jalin_protocol::record::Record::from_marc(read.record.clone());
            let _ = jalin_protocol::dc::to_oai_dc(&record.marc);
            if let Ok(bytes) = iso2709::write_record(&read.record) {
                let again = iso2709::Reader::new(&bytes[..]).next();
                assert!(matches!(again, Some(Ok(_))), "a record Jalin wrote must read back");
            }
        }
    }
});
