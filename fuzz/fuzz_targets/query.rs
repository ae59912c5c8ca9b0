#![no_main]
//! Any bytes as the arguments of an SRU or OAI-PMH request, through the code the node's
//! HTTP handlers run: the same form decoding, then `sru::Server::respond` and
//! `oai::Provider::respond` over a real library (sled store and tantivy index, 40 records
//! of the demo sample). The whole input is also sent as an SRU `searchRetrieve` query, so
//! every input goes through the CQL parser and the building of the tantivy query, and the
//! query runs. No panic, no stack overflow, and every answer is XML.
use jalin_node::config::DataDir;
use jalin_node::library::{ImportOptions, Library, Source};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn library() -> &'static Library {
    static LIBRARY: OnceLock<(tempfile::TempDir, Library)> = OnceLock::new();
    let (_, library) = LIBRARY.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = DataDir::init(dir.path(), "Perpustakaan Uji", "UJI").expect("init");
        let library = Library::open(data).expect("opens");
        let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../cli/demo/loc-indonesia-sample.mrc");
        library
            .import(&Source::File(sample), &ImportOptions::default(), |_| {})
            .expect("imports the demo sample");
        (dir, library)
    });
    library
}

fn pairs(bytes: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(bytes)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn is_xml(answer: &str) -> bool {
    answer.starts_with("<?xml")
}

fuzz_target!(|data: &[u8]| {
    let library = library();
    let arguments = pairs(data);
    let sru = jalin_node::sru::Server::new(library, "http://localhost/sru".into());
    assert!(is_xml(&sru.respond(&arguments)));
    let oai = jalin_node::oai::Provider::new(library, "http://localhost/oai".into())
        .expect("provider");
    assert!(is_xml(&oai.respond(&arguments, 1_700_000_000_000)));
    if let Ok(text) = std::str::from_utf8(data) {
        let search = [
            ("operation".to_string(), "searchRetrieve".to_string()),
            ("version".to_string(), "1.2".to_string()),
            ("query".to_string(), text.to_string()),
            ("maximumRecords".to_string(), "3".to_string()),
        ];
        assert!(is_xml(&sru.respond(&search)));
    }
});
