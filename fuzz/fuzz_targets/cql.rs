#![no_main]
//! Any text as a CQL query (what SRU takes from anyone): no panic, no stack overflow, and
//! every query refused past the limits, or parsed within them and written back as XCQL.
use jalin_protocol::cql::{self, CqlErrorKind, QUERY_CHARS_MAX, TERMS_MAX};
use libfuzzer_sys::fuzz_target;

fn terms(node: &cql::Node) -> usize {
    let mut count = 0;
    let mut stack = vec![node];
    while let Some(node) = stack.pop() {
        match node {
            cql::Node::Clause(clause) => count += clause.terms.len(),
            cql::Node::Triple(triple) => {
                stack.push(&triple.left);
                stack.push(&triple.right);
            }
        }
    }
    count
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match cql::parse(text) {
        Ok(query) => {
            assert!(text.len() <= QUERY_CHARS_MAX);
            assert!(terms(&query.root) <= TERMS_MAX);
            let _ = query.to_xcql();
        }
        Err(error) => {
            if error.kind == CqlErrorKind::TooLong {
                assert!(text.len() > QUERY_CHARS_MAX);
            }
        }
    }
});
