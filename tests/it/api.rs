//! The HTTP API over real HTTP on 127.0.0.1: every endpoint, and bad input of every kind
//! leaves what is stored unchanged.

use crate::shared_data_or_skip;
use crate::support::{start, Server};
use reqwest::blocking::Client;
use reqwest::StatusCode;

pub(crate) fn client() -> Client {
    Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .expect("client")
}

/// What must not change when a request is refused.
pub(crate) fn fingerprint(server: &Server) -> (u64, u64, u64) {
    let status = server.library.status().expect("status");
    (status.seq, status.records, status.deleted)
}

fn error_message(response: reqwest::blocking::Response) -> String {
    let body: serde_json::Value = response.json().expect("errors are JSON");
    body["error"]
        .as_str()
        .expect("an error message")
        .to_string()
}

#[test]
fn reads_answer_and_bad_reads_are_4xx() {
    let data = shared_data_or_skip!();
    let server = start(Some(&data.join("marc/loc/loc-indonesia-3147.mrc")));
    let http = client();
    let status: serde_json::Value = http
        .get(format!("{}/api/status", server.url))
        .send()
        .expect("answers")
        .json()
        .expect("json");
    assert_eq!(status["records"], 3147);
    assert_eq!(status["name"], "Perpustakaan Uji");

    let search = http
        .get(format!("{}/api/search", server.url))
        .query(&[("q", "sejarah indonesia"), ("per_page", "5")])
        .send()
        .expect("answers");
    assert_eq!(search.status(), StatusCode::OK);
    let search: serde_json::Value = search.json().expect("json");
    assert!(search["total"].as_u64().expect("total") > 5);
    assert_eq!(search["hits"].as_array().expect("hits").len(), 5);
    let id = search["hits"][0]["record_id"]
        .as_str()
        .expect("id")
        .to_string();

    let record: serde_json::Value = http
        .get(format!("{}/api/records/{id}", server.url))
        .send()
        .expect("answers")
        .json()
        .expect("json");
    assert_eq!(record["record_id"], id.as_str());
    assert_eq!(record["deleted"], false);
    assert!(record["description"]["title"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
    let xml = http
        .get(format!("{}/api/records/{id}?format=marcxml", server.url))
        .send()
        .expect("answers");
    assert!(xml.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .contains("xml"));
    assert!(xml
        .text()
        .expect("text")
        .contains("<controlfield tag=\"001\">"));
    let marc = http
        .get(format!("{}/api/records/{id}?format=marc", server.url))
        .send()
        .expect("answers")
        .bytes()
        .expect("bytes");
    let read = jalin_protocol::marc::iso2709::Reader::new(marc.as_ref())
        .next()
        .expect("one")
        .expect("reads");
    assert_eq!(read.record.control("001").map(str::trim), Some(id.as_str()));
    let dc = http
        .get(format!("{}/api/records/{id}?format=dc", server.url))
        .send()
        .expect("answers")
        .text()
        .expect("text");
    assert!(dc.contains("<dc:title>"));
    let export = http
        .get(format!("{}/api/export?format=marcxml", server.url))
        .send()
        .expect("answers")
        .text()
        .expect("text");
    assert_eq!(export.matches("<record>").count(), 3147);

    let before = fingerprint(&server);
    for (path, expected) in [
        ("/api/search", StatusCode::BAD_REQUEST),
        ("/api/search?q=", StatusCode::BAD_REQUEST),
        ("/api/search?q=x&per_page=1000", StatusCode::BAD_REQUEST),
        ("/api/search?q=x&page=abc", StatusCode::BAD_REQUEST),
        ("/api/records/no-such-record", StatusCode::NOT_FOUND),
        (
            &format!("/api/records/{id}?format=bogus"),
            StatusCode::BAD_REQUEST,
        ),
        ("/api/export?format=bogus", StatusCode::BAD_REQUEST),
        ("/api/nothing-here", StatusCode::NOT_FOUND),
    ] {
        let response = http
            .get(format!("{}{path}", server.url))
            .send()
            .expect("answers");
        assert_eq!(response.status(), expected, "{path}");
        if response
            .headers()
            .get("content-type")
            .is_some_and(|c| c.to_str().unwrap_or("").contains("json"))
        {
            assert!(!error_message(response).is_empty(), "{path}");
        }
    }
    assert_eq!(fingerprint(&server), before);
}

#[test]
fn writes_need_the_token_and_bad_writes_change_nothing() {
    let data = shared_data_or_skip!();
    let server = start(Some(&data.join("marc/loc/loc-indonesia-3147.mrc")));
    let http = client();
    let id = "00369705";
    let record: serde_json::Value = http
        .get(format!("{}/api/records/{id}", server.url))
        .send()
        .expect("answers")
        .json()
        .expect("json");
    let before = fingerprint(&server);

    // No token, a wrong token.
    let body = serde_json::json!({ "marc": record["marc"] });
    for token in [None, Some("wrong")] {
        let mut request = http
            .put(format!("{}/api/records/{id}", server.url))
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        assert_eq!(
            request.send().expect("answers").status(),
            StatusCode::UNAUTHORIZED
        );
        let mut delete = http.delete(format!("{}/api/records/{id}", server.url));
        if let Some(token) = token {
            delete = delete.bearer_auth(token);
        }
        assert_eq!(
            delete.send().expect("answers").status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            http.post(format!("{}/api/import", server.url))
                .body("x")
                .send()
                .expect("answers")
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // Malformed JSON, a body that is not a record, a record for another id, broken MARCXML.
    let authed = |request: reqwest::blocking::RequestBuilder| {
        request.bearer_auth(&server.token).send().expect("answers")
    };
    let bad_json = authed(
        http.put(format!("{}/api/records/{id}", server.url))
            .header("content-type", "application/json")
            .body("{\"marc\": [1, 2"),
    );
    assert_eq!(bad_json.status(), StatusCode::BAD_REQUEST);
    assert!(error_message(bad_json).contains("not a record"));
    let not_a_record = authed(
        http.put(format!("{}/api/records/{id}", server.url))
            .json(&serde_json::json!({ "title": "x" })),
    );
    assert_eq!(not_a_record.status(), StatusCode::BAD_REQUEST);
    let other_id = authed(
        http.put(format!("{}/api/records/00000001", server.url))
            .json(&body),
    );
    assert_eq!(other_id.status(), StatusCode::BAD_REQUEST);
    let message = error_message(other_id);
    assert!(message.contains("00000001"), "{message}");
    let bad_xml = authed(
        http.put(format!("{}/api/records/{id}", server.url))
            .header("content-type", "application/marcxml+xml")
            .body("<record><leader>"),
    );
    assert_eq!(bad_xml.status(), StatusCode::BAD_REQUEST);
    let missing = authed(http.delete(format!("{}/api/records/no-such-record", server.url)));
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    // An empty upload, and 50 MB of garbage.
    assert_eq!(
        authed(http.post(format!("{}/api/import", server.url))).status(),
        StatusCode::BAD_REQUEST
    );
    let mut garbage = vec![0u8; 50 * 1024 * 1024];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for byte in garbage.iter_mut() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = (state >> 24) as u8;
    }
    let garbage_response = authed(
        http.post(format!("{}/api/import", server.url))
            .body(garbage),
    );
    assert_eq!(garbage_response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error_message(garbage_response).contains("nothing was changed"));
    let unknown_format = authed(
        http.post(format!("{}/api/import?format=pdf", server.url))
            .body("x"),
    );
    assert_eq!(unknown_format.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        fingerprint(&server),
        before,
        "refused requests changed nothing"
    );

    // Good writes: an edit, a delete, an import.
    let mut edited = record["marc"].clone();
    for field in edited["fields"].as_array_mut().expect("fields") {
        if field["tag"] == "245" {
            field["subfields"][0]["value"] = serde_json::json!("Survei zqxsunting lewat API");
        }
    }
    let put = authed(
        http.put(format!("{}/api/records/{id}", server.url))
            .json(&serde_json::json!({ "marc": edited })),
    );
    assert_eq!(put.status(), StatusCode::OK);
    let found: serde_json::Value = http
        .get(format!("{}/api/search?q=zqxsunting", server.url))
        .send()
        .expect("answers")
        .json()
        .expect("json");
    assert_eq!(found["hits"][0]["record_id"], id);
    assert_eq!(
        authed(http.delete(format!("{}/api/records/{id}", server.url))).status(),
        StatusCode::NO_CONTENT
    );
    let found: serde_json::Value = http
        .get(format!("{}/api/search?q=zqxsunting", server.url))
        .send()
        .expect("answers")
        .json()
        .expect("json");
    assert_eq!(found["total"], 0);
    let record: serde_json::Value = http
        .get(format!("{}/api/records/{id}", server.url))
        .send()
        .expect("answers")
        .json()
        .expect("json");
    assert_eq!(record["deleted"], true);
    let upload = std::fs::read(data.join("marc/edge/pymarc/bad_records.mrc")).expect("file");
    let imported = authed(http.post(format!("{}/api/import", server.url)).body(upload));
    assert_eq!(imported.status(), StatusCode::OK);
    let summary: serde_json::Value = imported.json().expect("json");
    assert_eq!(summary["rejected"].as_array().expect("rejected").len(), 4);
    assert!(summary["rejected"][0]["location"]["offset"].is_u64());
}
