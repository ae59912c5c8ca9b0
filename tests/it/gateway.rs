//! The ISO 18626 gateway's way out: the librarian answers a request from a system
//! outside Jalin, and the answers are posted to that agency (a real HTTP server here,
//! standing in for the agency's ILS), each a message valid against the 2021-2 schema.

use crate::network::T;
use jalin_node::clock::ManualClock;
use jalin_node::gateway::Delivery;
use jalin_protocol::ill::iso;
use jalin_protocol::ill::Day;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

/// How the stand-in agency answers.
const CONFIRM: u8 = 0;
const REFUSE: u8 = 1;
const DOWN: u8 = 2;

/// One message the agency was sent: the `Authorization` header and the body.
struct Posted {
    authorization: String,
    body: String,
}

/// An agency's ISO 18626 endpoint on 127.0.0.1: answers each message with a
/// confirmation (`OK`, or `ERROR` in [`REFUSE`] mode) or, [`DOWN`], with HTTP 503 and
/// an `ERROR` confirmation. Returns its url, its mode and what it was sent.
fn agency_server() -> (String, Arc<AtomicU8>, Receiver<Posted>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
    let url = format!(
        "http://{}/iso18626",
        listener.local_addr().expect("address")
    );
    let mode = Arc::new(AtomicU8::new(CONFIRM));
    let (sent, seen) = std::sync::mpsc::channel();
    let answering = mode.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clones"));
            let (mut authorization, mut length) = (String::new(), 0usize);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                if let Some((name, value)) = line.split_once(':') {
                    match name.to_ascii_lowercase().as_str() {
                        "authorization" => authorization = value.trim().to_string(),
                        "content-length" => length = value.trim().parse().unwrap_or(0),
                        _ => {}
                    }
                }
                line.clear();
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let body = String::from_utf8_lossy(&body).into_owned();
            // Down: HTTP 503 with an ERROR confirmation (its storage failing, say): a
            // failure for now, not a refusal.
            let mode = answering.load(Ordering::SeqCst);
            let incoming = iso::read(body.as_bytes()).ok();
            let error = (mode != CONFIRM).then(|| iso::IsoError {
                kind: iso::ErrorType::UnrecognisedDataValue,
                value: "no such request here".into(),
            });
            let kind = incoming.as_ref().and_then(|m| m.kind);
            let answer = iso::confirmation(kind, incoming.as_ref(), error.as_ref(), T);
            let status = if mode == DOWN {
                "503 Service Unavailable"
            } else {
                "200 OK"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
            if sent
                .send(Posted {
                    authorization,
                    body,
                })
                .is_err()
            {
                return;
            }
        }
    });
    (url, mode, seen)
}

/// The next message the agency is sent (the delivery task posts it on its own).
fn next(seen: &Receiver<Posted>) -> Posted {
    match seen.recv_timeout(Duration::from_secs(60)) {
        Ok(posted) => posted,
        Err(RecvTimeoutError::Timeout) => panic!("the node posted nothing to the agency"),
        Err(RecvTimeoutError::Disconnected) => panic!("the agency server stopped"),
    }
}

/// Checks `xml` against the 2021-2 schema with xmllint, where the shared data and
/// xmllint are here.
fn assert_valid(xml: &str) {
    let Some(data) = crate::support::shared_data() else {
        return;
    };
    if !crate::support::have_tool("xmllint", &["--version"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("message.xml");
    std::fs::write(&path, xml).expect("writes");
    let out = std::process::Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(data.join("xsd/ISO-18626-2021-2.xsd"))
        .arg(&path)
        .output()
        .expect("xmllint runs");
    assert!(
        out.status.success(),
        "not valid ISO 18626: {}\n{xml}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The text of the first `<tag>` in `xml`.
fn text_of(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find('<')? + start;
    Some(xml[start..end].to_string())
}

const NS: &str = "xmlns=\"http://illtransactions.org/2013/iso18626\" xmlns:ill=\"http://illtransactions.org/2013/iso18626\" ill:version=\"2021-2\"";
const HEADER: &str = "<header><supplyingAgencyId><agencyIdType>ISIL</agencyIdType><agencyIdValue>ID-KEMIRI</agencyIdValue></supplyingAgencyId><requestingAgencyId><agencyIdType>ISIL</agencyIdType><agencyIdValue>ID-JKT-UI</agencyIdValue></requestingAgencyId><timestamp>2026-12-04T10:00:00Z</timestamp><requestingAgencyRequestId>ui-7</requestingAgencyRequestId></header>";

/// The agency's message with `action`.
fn agency_action(action: &str) -> String {
    format!("<ISO18626Message {NS}><requestingAgencyMessage>{HEADER}<action>{action}</action></requestingAgencyMessage></ISO18626Message>")
}

#[test]
fn an_outside_agency_gets_the_librarian_s_answers_posted_back_in_order() {
    let (agency_url, mode, seen) = agency_server();
    let clock = Arc::new(ManualClock::at(T));
    let server = crate::support::start_clocked(
        None,
        |data| {
            data.config.iso18626.agency_id = Some("ID-KEMIRI".into());
            data.config.iso18626.peers = vec![
                jalin_node::config::Iso18626Peer {
                    agency_id: "ID-JKT-UI".into(),
                    secret: "rahasia-ui".into(),
                    url: Some(agency_url.clone()),
                },
                jalin_node::config::Iso18626Peer {
                    agency_id: "ID-NO-URL".into(),
                    secret: "rahasia-lain".into(),
                    url: None,
                },
            ];
        },
        Some(clock.clone()),
    );
    let client = reqwest::blocking::Client::new();
    let from_agency = |xml: String| {
        let response = client
            .post(format!("{}/iso18626", server.url))
            .bearer_auth("rahasia-ui")
            .body(xml)
            .send()
            .expect("answers");
        let xml = response.text().expect("text");
        assert_eq!(
            text_of(&xml, "messageStatus").as_deref(),
            Some("OK"),
            "{xml}"
        );
    };
    let step = |step: &str, text: &str| {
        let response = client
            .post(format!("{}/api/ill", server.url))
            .bearer_auth(&server.token)
            .json(&serde_json::json!({
                "action": "external", "agency": "ID-JKT-UI", "request_id": "ui-7",
                "step": step, "text": text,
            }))
            .send()
            .expect("answers");
        let status = response.status().as_u16();
        (status, response.json::<serde_json::Value>().expect("json"))
    };
    from_agency(format!(
        "<ISO18626Message {NS}><request>{HEADER}<bibliographicInfo><supplierUniqueRecordId>00281477</supplierUniqueRecordId><title>Laskar Pelangi</title></bibliographicInfo><serviceInfo><serviceType>Loan</serviceType></serviceInfo></request></ISO18626Message>"
    ));

    // Steps that do not fit the request now are refused, and nothing is sent.
    let (status, body) = step("ship_twice", "");
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("ill_not_now")),
        "{body}"
    );
    let (status, body) = step("renew_yes", "");
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("has not asked to renew"),
        "{body}"
    );
    let (status, body) = step("unfilled", "");
    assert_eq!(status, 400, "the reason is needed: {body}");

    // A note first, before any answer: the request stays open to be answered.
    let (status, body) = step("notify", "sedang dicari di rak");
    assert_eq!(status, 200, "{body}");
    let posted = next(&seen);
    assert_valid(&posted.body);
    assert_eq!(
        (
            text_of(&posted.body, "reasonForMessage").as_deref(),
            text_of(&posted.body, "status").as_deref()
        ),
        (Some("Notification"), Some("RequestReceived"))
    );

    // Will supply, on conditions: posted at once, with the agency's own secret.
    let (status, body) = step("will_supply", "baca di tempat");
    assert_eq!(status, 200, "{body}");
    let posted = next(&seen);
    assert_eq!(posted.authorization, "Bearer rahasia-ui");
    assert_valid(&posted.body);
    let m = iso::read(posted.body.as_bytes()).expect("an ISO 18626 message");
    assert_eq!(m.kind, Some(iso::Kind::SupplyingAgencyMessage));
    assert_eq!(
        (
            m.supplying_agency.as_str(),
            m.supplying_agency_type.as_str()
        ),
        ("ID-KEMIRI", "ISIL"),
        "the agency's own ids, in its own id type"
    );
    assert_eq!(
        (
            m.requesting_agency.as_str(),
            m.requesting_request_id.as_str()
        ),
        ("ID-JKT-UI", "ui-7")
    );
    assert_eq!(
        (m.status.as_str(), m.reason_for_message.as_str()),
        ("WillSupply", "RequestResponse")
    );
    assert!(m.note.contains("baca di tempat"), "{}", posted.body);

    // Shipped: Loaned, due after the default loan period from the library's clock.
    clock.advance(86_400_000);
    step("ship", "");
    let posted = next(&seen);
    assert_valid(&posted.body);
    let due = Day::of_ms(T + 86_400_000).plus(28);
    assert_eq!(text_of(&posted.body, "status").as_deref(), Some("Loaned"));
    assert_eq!(
        text_of(&posted.body, "dueDate"),
        Some(iso::date_time(due.start_ms()))
    );
    assert_eq!(text_of(&posted.body, "itemId").as_deref(), Some("00281477"));

    // The agency asks to renew; the librarian grants it: 14 more days.
    from_agency(agency_action("Renew"));
    let (_, body) = step("renew_yes", "");
    assert_eq!(
        body["external"][0]["due_date"].as_str(),
        Some(due.plus(14).to_string().as_str()),
        "{body}"
    );
    let posted = next(&seen);
    assert_valid(&posted.body);
    assert_eq!(
        (
            text_of(&posted.body, "reasonForMessage").as_deref(),
            text_of(&posted.body, "answerYesNo").as_deref()
        ),
        (Some("RenewResponse"), Some("Y"))
    );
    let (status, _) = step("renew_yes", "");
    assert_eq!(status, 400, "one renewal asked, one answered");

    // The agency refuses a note: the answer leaves the queue, marked refused with why.
    mode.store(REFUSE, Ordering::SeqCst);
    step("notify", "mohon dijaga baik-baik");
    next(&seen);
    let library = server.library.clone();
    let t = settled(&library, |a| !matches!(a, Delivery::Waiting { .. }));
    assert!(
        matches!(&t.answers.last().expect("answers").delivery,
            Delivery::Refused { error } if error.contains("UnrecognisedDataValue") && error.contains("no such request here")),
        "{:?}",
        t.answers.last()
    );
    assert!(
        t.answers[..4]
            .iter()
            .all(|a| matches!(a.delivery, Delivery::Delivered { .. })),
        "{:?}",
        t.answers
    );

    // The agency is down: the check-in stays queued with why, and goes once it is back.
    mode.store(DOWN, Ordering::SeqCst);
    from_agency(agency_action("ShippedReturn"));
    step("checkin", "");
    next(&seen);
    let t = settled(
        &library,
        |a| matches!(a, Delivery::Waiting { attempts, .. } if *attempts > 0),
    );
    match &t.answers.last().expect("answers").delivery {
        Delivery::Waiting { attempts, error } => {
            assert_eq!(*attempts, 1);
            let error = error.as_deref().unwrap_or_default();
            assert!(
                error.contains("HTTP 503") && error.contains("no such request here"),
                "{error}"
            );
        }
        other => panic!("still queued, not {other:?}"),
    }
    assert_eq!(t.status, "LoanCompleted");
    assert_eq!(library.gateway().queue().expect("reads").len(), 1);
    mode.store(CONFIRM, Ordering::SeqCst);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let http = jalin_node::gateway::client().expect("client");
    let delivered = runtime.block_on(jalin_node::gateway::deliver(library.clone(), &http));
    assert_eq!(delivered, 1);
    let posted = next(&seen);
    assert_eq!(
        text_of(&posted.body, "status").as_deref(),
        Some("LoanCompleted")
    );
    assert!(library.gateway().queue().expect("reads").is_empty());

    // Closed: no step is left, and an agency with no url cannot be answered at all.
    let (status, _) = step("notify", "lagi");
    assert_eq!(status, 400);
    from_agency_no_url(&client, &server.url);
    let response = client
        .post(format!("{}/api/ill", server.url))
        .bearer_auth(&server.token)
        .json(&serde_json::json!({
            "action": "external", "agency": "ID-NO-URL", "request_id": "x-1", "step": "will_supply",
        }))
        .send()
        .expect("answers");
    assert_eq!(response.status().as_u16(), 409);
    let body: serde_json::Value = response.json().expect("json");
    assert_eq!(body["code"].as_str(), Some("ill_no_address"), "{body}");
    assert_eq!(
        library
            .gateway()
            .transaction("ID-NO-URL", "x-1")
            .expect("held")
            .answers
            .len(),
        0
    );
}

/// The request `ui-7` once the delivery of its last answer is as `done` says: waits
/// for the node to record what the agency answered (recorded just after it answers).
fn settled(
    library: &Arc<jalin_node::library::Library>,
    done: impl Fn(&Delivery) -> bool,
) -> jalin_node::gateway::External {
    let now = || {
        library
            .gateway()
            .transaction("ID-JKT-UI", "ui-7")
            .expect("held")
    };
    let mut changes = library.gateway().watch_deliveries();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    runtime
        .block_on(async {
            tokio::time::timeout(
                Duration::from_secs(60),
                changes.wait_for(|_| now().answers.last().is_some_and(|a| done(&a.delivery))),
            )
            .await
        })
        .expect("the delivery is recorded")
        .expect("the gateway is there");
    now()
}

/// A request from the agency with no url.
fn from_agency_no_url(client: &reqwest::blocking::Client, url: &str) {
    let xml = format!(
        "<ISO18626Message {NS}><request>{}<bibliographicInfo><title>Bumi Manusia</title></bibliographicInfo></request></ISO18626Message>",
        HEADER
            .replace("ID-JKT-UI", "ID-NO-URL")
            .replace("ui-7", "x-1")
    );
    let answer = client
        .post(format!("{url}/iso18626"))
        .bearer_auth("rahasia-lain")
        .body(xml)
        .send()
        .expect("answers")
        .text()
        .expect("text");
    assert_eq!(
        text_of(&answer, "messageStatus").as_deref(),
        Some("OK"),
        "{answer}"
    );
}
