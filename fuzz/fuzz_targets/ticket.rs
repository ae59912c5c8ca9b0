#![no_main]
//! Any text as a ticket or any other consortium document: no panic, and what parses
//! prints back to text that parses to the same document.
use jalin_protocol::consortium::document::{dearmor, label_of, Signed};
use jalin_protocol::consortium::log::Invite;
use jalin_protocol::consortium::{read_documents, Document};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = label_of(&text);
    let _ = dearmor(&text);
    if let Ok(invite) = Signed::<Invite>::from_text(&text) {
        assert_eq!(Signed::<Invite>::from_text(&invite.to_text()).ok(), Some(invite));
    }
    for (_, document) in read_documents(&text).into_iter().take(100) {
        if let Ok(document) = document {
            assert_eq!(Document::from_text(&document.to_text()).ok(), Some(document));
        }
    }
});
