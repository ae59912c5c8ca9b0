//! The CQL parser against YAZ's own test cases (`../shared/data/cql/yaz-cql-cases.json`):
//! the same XCQL for every valid query, a syntax error for every invalid one.

use crate::shared_data_or_skip;
use jalin_protocol::cql;

#[test]
fn every_yaz_case_gives_yazs_xcql_and_the_invalid_ones_are_refused() {
    let data = shared_data_or_skip!();
    let text = std::fs::read_to_string(data.join("cql/yaz-cql-cases.json")).expect("reads");
    let cases: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let cases = cases["cql2xcql"].as_array().expect("cases");
    assert_eq!(cases.len(), 81);
    let (mut valid, mut invalid) = (0, 0);
    let mut wrong = Vec::new();
    for case in cases {
        let id = case["id"].as_str().expect("id");
        let query = case["query"].as_str().expect("query");
        let expected = case["expected_out"].as_str().expect("output");
        let error = case["expected_err"].as_str().expect("error");
        match (cql::parse(query), error.is_empty()) {
            (Ok(parsed), true) => {
                valid += 1;
                let xcql = parsed.to_xcql();
                if xcql != expected {
                    wrong.push(format!("{id} {query:?}:\n{xcql}\nexpected:\n{expected}"));
                }
            }
            (Err(_), false) => invalid += 1,
            (Ok(parsed), false) => wrong.push(format!(
                "{id} {query:?} parsed, YAZ says {error:?}:\n{}",
                parsed.to_xcql()
            )),
            (Err(e), true) => wrong.push(format!("{id} {query:?} refused: {e}")),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    assert_eq!((valid, invalid), (70, 11));
}
