//! Requests a stranger could send a node over HTTP, tried as one would: each is answered
//! with a clear refusal or a bounded answer, the node keeps serving, and nothing stored
//! changes.

use crate::api::{client, fingerprint};
use crate::shared_data_or_skip;
use crate::support::{start, start_with, Server};
use reqwest::blocking::Client;
use reqwest::StatusCode;

/// The node still answers (a stack overflow or a failed allocation would have ended it).
fn still_serving(http: &Client, server: &Server, after: &str) {
    let status = http
        .get(format!("{}/api/status", server.url))
        .send()
        .unwrap_or_else(|e| panic!("the node stopped answering after {after}: {e}"));
    assert_eq!(status.status(), StatusCode::OK, "after {after}");
}

/// The SRU diagnostic numbers of a response (`info:srw/diagnostic/1/N`).
fn sru_diagnostics(body: &str) -> Vec<u32> {
    body.split("info:srw/diagnostic/1/")
        .skip(1)
        .filter_map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

fn sru(http: &Client, server: &Server, pairs: &[(&str, &str)]) -> (StatusCode, String) {
    let mut query = vec![("version", "1.2"), ("operation", "searchRetrieve")];
    query.extend_from_slice(pairs);
    // As a form: a 10,000-term query is longer than a client puts in an address.
    let response = http
        .post(format!("{}/sru", server.url))
        .form(&query)
        .send()
        .expect("answers");
    (response.status(), response.text().expect("text"))
}

#[test]
fn query_bombs_are_refused_by_count_and_the_node_keeps_serving() {
    let data = shared_data_or_skip!();
    let server = start(Some(&data.join("marc/loc/loc-indonesia-3147.mrc")));
    let http = client();
    let before = fingerprint(&server);

    // The chain that aborted the node (300 `or`s, one BooleanQuery nested per `or`).
    let chain = |n: usize| vec!["sejarah"; n].join(" or ");
    let (status, body) = sru(&http, &server, &[("query", &chain(300))]);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sru_diagnostics(&body), vec![38], "{body}");
    still_serving(&http, &server, "300 `or` terms");
    // Under the limit, a long chain is answered, as one flat query.
    let (status, body) = sru(&http, &server, &[("query", &chain(256))]);
    assert_eq!(status, StatusCode::OK);
    assert!(sru_diagnostics(&body).is_empty(), "{body}");
    let (_, one) = sru(&http, &server, &[("query", "sejarah")]);
    let count = |body: &str| {
        body.split("<zs:numberOfRecords>")
            .nth(1)
            .and_then(|rest| rest.split('<').next())
            .and_then(|n| n.parse::<u64>().ok())
            .expect("a count")
    };
    assert_eq!(
        count(&body),
        count(&one),
        "x or x or ... finds what x finds"
    );
    assert!(count(&one) > 0);

    for (what, query, diagnostic) in [
        ("10,000 `or` terms", chain(10_000), 12),
        (
            "2,000 `and not` terms",
            vec!["a"; 2_000].join(" and not "),
            12,
        ),
        (
            "10,000 nested parentheses",
            format!("{}a{}", "(".repeat(10_000), ")".repeat(10_000)),
            12,
        ),
        (
            "3,000 nested parentheses",
            format!("{}a{}", "(".repeat(3_000), ")".repeat(3_000)),
            13,
        ),
        ("3,000 prefixes", "> dc = x ".repeat(800) + "a", 13),
        ("300 terms in one clause", vec!["a"; 300].join(" "), 38),
    ] {
        let (status, body) = sru(&http, &server, &[("query", &query)]);
        assert_eq!(status, StatusCode::OK, "{what}");
        assert_eq!(sru_diagnostics(&body), vec![diagnostic], "{what}: {body}");
        still_serving(&http, &server, what);
    }

    // The librarian's syntax: words are counted too, and parentheses are words.
    for (what, q) in [
        ("2,000 OR terms", vec!["sejarah"; 2_000].join(" OR ")),
        ("65 words", vec!["sejarah"; 65].join(" ")),
        ("10,000 parentheses", "(".repeat(10_000) + "a"),
    ] {
        let response = http
            .get(format!("{}/api/search", server.url))
            .query(&[("q", q.as_str())])
            .send()
            .expect("answers");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{what}");
        let body: serde_json::Value = response.json().expect("errors are JSON");
        assert_eq!(body["code"], "search_limit", "{what}: {body}");
        still_serving(&http, &server, what);
    }
    let response = http
        .get(format!("{}/api/search", server.url))
        .query(&[(
            "q",
            &format!("{}sejarah{}", "(".repeat(400), ")".repeat(400)),
        )])
        .send()
        .expect("answers");
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "parentheses are searched as text"
    );

    assert_eq!(
        fingerprint(&server),
        before,
        "a refused query changed the catalog"
    );
}

#[test]
fn every_integer_parameter_at_its_edges_is_answered_without_harm() {
    let data = shared_data_or_skip!();
    let server = start(Some(&data.join("marc/loc/loc-indonesia-3147.mrc")));
    let http = client();
    let before = fingerprint(&server);

    // The request that asked for 160 TB.
    let response = http
        .get(format!(
            "{}/api/search?q=indonesia&page=200000000000&per_page=100",
            server.url
        ))
        .send()
        .expect("answers");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = response.json().expect("JSON");
    assert!(
        body["error"].as_str().expect("words").contains("page"),
        "{body}"
    );
    still_serving(&http, &server, "page 200000000000");

    let edges = [
        "0",
        "-1",
        "18446744073709551615",
        "18446744073709551616",
        "x",
        "",
    ];
    for value in edges {
        for name in ["page", "per_page"] {
            let response = http
                .get(format!(
                    "{}/api/search?q=indonesia&{name}={value}",
                    server.url
                ))
                .send()
                .expect("answers");
            let status = response.status();
            assert!(
                status == StatusCode::OK || status == StatusCode::BAD_REQUEST,
                "/api/search {name}={value}: {status}"
            );
            still_serving(&http, &server, &format!("/api/search {name}={value}"));
        }
        let page = http
            .get(format!("{}/?q=indonesia&page={value}", server.url))
            .send()
            .expect("answers");
        assert!(
            page.status().is_success() || page.status().is_client_error(),
            "search page page={value}: {}",
            page.status()
        );
        for name in ["startRecord", "maximumRecords"] {
            let (status, body) = sru(&http, &server, &[("query", "sejarah"), (name, value)]);
            assert_eq!(status, StatusCode::OK, "SRU {name}={value}");
            // Only no records at all, or as many as there are, is a fair request; a start
            // past the end is diagnostic 61.
            let expected_ok = matches!(
                (name, value),
                ("maximumRecords", "0") | ("maximumRecords", "18446744073709551615")
            );
            assert_eq!(
                sru_diagnostics(&body).is_empty(),
                expected_ok,
                "SRU {name}={value}: {body}"
            );
        }
        let oai = http
            .get(format!(
                "{}/oai?verb=ListRecords&resumptionToken={value}",
                server.url
            ))
            .send()
            .expect("answers");
        assert_eq!(oai.status(), StatusCode::OK);
        let text = oai.text().expect("text");
        assert!(
            text.contains("badResumptionToken") || text.contains("badArgument"),
            "OAI resumptionToken={value}: {text}"
        );
        still_serving(&http, &server, &format!("edge value {value:?}"));
    }
    // Deep pages: the last one served, and one past it.
    let last = http
        .get(format!(
            "{}/api/search?q=indonesia&page=100&per_page=100",
            server.url
        ))
        .send()
        .expect("answers");
    assert_eq!(last.status(), StatusCode::OK);
    let past = http
        .get(format!(
            "{}/api/search?q=indonesia&page=101&per_page=100",
            server.url
        ))
        .send()
        .expect("answers");
    assert_eq!(past.status(), StatusCode::BAD_REQUEST);

    assert_eq!(fingerprint(&server), before);
}

/// Sends `head` (a request's line and headers, no body) over a new connection and
/// returns the status line of the answer, read before any body byte is sent.
fn status_before_body(server: &Server, head: &str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let address = server.url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connects");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    stream.write_all(head.as_bytes()).expect("writes");
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .expect("an answer before the body is sent");
    line
}

#[test]
fn uploads_are_refused_from_their_headers_before_the_body_is_read() {
    let server = start(None);
    let before = fingerprint(&server);
    // 200 MB announced and none sent: the node must answer from the headers alone (it
    // read whole uploads before checking the token).
    let line = status_before_body(
        &server,
        "POST /api/import HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 200000000\r\n\
         Content-Type: application/marc\r\n\r\n",
    );
    assert!(line.contains(" 401 "), "{line}");
    let line = status_before_body(
        &server,
        &format!(
            "POST /api/import HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
             Content-Length: 900000000000\r\n\r\n",
            server.token
        ),
    );
    assert!(line.contains(" 413 "), "past the upload limit: {line}");
    let line = status_before_body(
        &server,
        "POST /librarian/import HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 200000000\r\n\
         Content-Type: multipart/form-data; boundary=x\r\n\r\n",
    );
    assert!(
        line.contains(" 303 ") || line.contains(" 401 ") || line.contains(" 403 "),
        "not logged in: {line}"
    );
    let line = status_before_body(
        &server,
        "PUT /api/records/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n",
    );
    assert!(line.contains(" 401 "), "{line}");
    assert_eq!(fingerprint(&server), before);
}

#[test]
fn a_request_naming_another_host_is_refused() {
    let server = start(None);
    let http = client();
    let port = server.url.rsplit(':').next().expect("port").to_string();
    for host in ["localhost", "127.0.0.1", "LOCALHOST.", "127.0.0.2"] {
        let response = http
            .get(format!("{}/api/status", server.url))
            .header("Host", format!("{host}:{port}"))
            .send()
            .expect("answers");
        assert_eq!(response.status(), StatusCode::OK, "{host}");
    }
    // A page on evil.example whose name now points at 127.0.0.1 (DNS rebinding).
    for host in [
        "evil.example",
        "evil.example:80",
        "127.0.0.1.evil.example",
        "localhost.evil",
    ] {
        let response = http
            .get(format!("{}/api/status", server.url))
            .header("Host", host)
            .send()
            .expect("answers");
        assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST, "{host}");
        let body: serde_json::Value = response.json().expect("JSON");
        assert_eq!(body["code"], "unknown_host", "{body}");
    }
}

#[test]
fn past_the_heavy_request_limit_the_node_answers_503_and_keeps_serving() {
    let data = shared_data_or_skip!();
    let server = start_with(Some(&data.join("marc/loc/loc-books-10k.mrc")), |data| {
        data.config.limits.heavy_requests_max = 1;
        data.config.limits.heavy_requests_waiting_max = 0;
    });
    let http = client();
    // An export nobody reads holds its place: 9 MB of MARC fill the socket's buffers and
    // the export's queue, and the export waits for the client.
    let mut stalled = http
        .get(format!("{}/api/export", server.url))
        .send()
        .expect("export starts");
    assert_eq!(stalled.status(), StatusCode::OK);
    let busy = http
        .get(format!("{}/api/search?q=history", server.url))
        .send()
        .expect("answers");
    assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(busy.headers()["retry-after"], "2");
    // Light requests are served meanwhile.
    still_serving(&http, &server, "a full place");
    // Once the export is read to its end, its place is free again.
    let mut exported = Vec::new();
    std::io::copy(&mut stalled, &mut exported).expect("reads the export");
    assert!(exported.len() > 9_000_000, "{} bytes", exported.len());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let search = http
            .get(format!("{}/api/search?q=history", server.url))
            .send()
            .expect("answers");
        if search.status() == StatusCode::OK {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the place was never freed"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn listening_where_other_machines_reach_needs_expose() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (code, _, _) = crate::cli::jalin(dir.path(), &["init", "--name", "Uji", "--code", "UJI"]);
    assert_eq!(code, 0);
    let (code, _, stderr) = crate::cli::jalin(dir.path(), &["start", "--listen", "0.0.0.0:0"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--expose"), "{stderr}");
    assert!(!dir.path().join("node.json").exists(), "no node ran");
    // A relay for anyone must be asked for by name.
    let (code, _, stderr) =
        crate::cli::jalin(dir.path(), &["relay", "--listen", "/ip4/127.0.0.1/tcp/0"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--open"), "{stderr}");
}
