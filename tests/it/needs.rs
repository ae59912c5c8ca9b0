//! What patrons look for, kept at home: the OPAC's search log, the "Usulkan buku" form
//! after a search that found nothing, the librarian's report beside the union catalog,
//! and the log's forgetting (by hand, and by the clock).

use jalin_node::clock::ManualClock;
use jalin_node::library::Library;
use jalin_node::node::NodeOptions;
use jalin_tests::fixtures::{form_consortium, new_library, the_same_book, T};
use jalin_tests::measure::every_byte;
use std::sync::Arc;

const MONTH_MS: u64 = jalin_node::needs::MONTH_MS;

/// Two members on one clock; the second holds "Laskar pelangi", which the first's union
/// catalog shows.
fn two_members(clock: &Arc<ManualClock>) -> Vec<(Arc<Library>, tempfile::TempDir)> {
    let mut out = Vec::new();
    for code in ["PERPUSDESA", "SMP1KEMIRI"] {
        let (dir, mut data) = new_library(100);
        data.config.library.code = code.into();
        data.config.library.name = format!("Perpustakaan {code}");
        let library = Library::open_with_clock(data, clock.clone()).expect("opens");
        out.push((Arc::new(library), dir));
    }
    let members: Vec<&Library> = out.iter().map(|(l, _)| l.as_ref()).collect();
    form_consortium("Jaringan Baca", &members);
    the_same_book(&members, &[1]);
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_opac_logs_what_patrons_look_for_and_nothing_about_who() {
    let clock = Arc::new(ManualClock::at(T));
    let members = two_members(&clock);
    let (a, _a_dir) = (&members[0].0, &members[0].1);
    let node = jalin_node::node::Node::spawn(
        a.clone(),
        NodeOptions {
            http: Some("127.0.0.1:0".into()),
            ..NodeOptions::default()
        },
    )
    .await
    .expect("serves");
    let url = node.url().expect("url");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let patron_agent = "Peramban-Pemustaka/7431";
    let opac = |q: &str| {
        let request = client
            .get(format!("{url}/"))
            .query(&[("q", q)])
            .header("user-agent", patron_agent)
            .header("cookie", "lang=id; pelacak=rahasia-cookie-99");
        async move {
            let response = request.send().await.expect("answers");
            assert_eq!(response.status(), 200);
            response.text().await.expect("text")
        }
    };
    let page = opac("Laskar Pelangi").await;
    assert!(page.contains("Laskar pelangi"), "{page}");
    assert!(
        !page.contains("suggest-send"),
        "a search that found a book offers no form"
    );
    let page = opac("bertani padi sawah").await;
    assert!(
        page.contains("Usulkan buku") && page.contains("suggest-send"),
        "{page}"
    );
    opac("  Bertani   PADI sawah ").await;
    // A second page and the API are not the OPAC's searches.
    let second = client
        .get(format!("{url}/"))
        .query(&[("q", "laskar pelangi"), ("page", "2")])
        .send()
        .await
        .expect("answers");
    assert_eq!(second.status(), 200);
    let api = client
        .get(format!("{url}/api/search"))
        .query(&[("q", "pencarian mesin")])
        .send()
        .await
        .expect("answers");
    assert_eq!(api.status(), 200);
    // Nor is a search another site's page makes the browser ask (its words would fill
    // the log), nor one kept to one library's records.
    let planted = client
        .get(format!("{url}/"))
        .query(&[("q", "kata titipan situs lain")])
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .expect("answers");
    assert_eq!(planted.status(), 200);
    let one_library = client
        .get(format!("{url}/"))
        .query(&[
            ("q", "laskar pelangi"),
            ("lib", &members[1].0.id().to_hex()),
        ])
        .send()
        .await
        .expect("answers");
    assert_eq!(one_library.status(), 200);

    // The suggestion form: taken from the node's own page, refused from another site
    // and without a title.
    let suggest = |origin: Option<&str>, title: &str| {
        let mut request = client
            .post(format!("{url}/suggest"))
            .header("user-agent", patron_agent)
            .form(&[
                ("title", title),
                ("author", "Sutanto"),
                ("why", "untuk kelompok tani di desa"),
                ("q", "bertani padi sawah"),
            ]);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        async move {
            let response = request.send().await.expect("answers");
            (
                response.status().as_u16(),
                response.text().await.expect("text"),
            )
        }
    };
    let host = url.trim_start_matches("http://").to_string();
    let (status, page) = suggest(Some(&format!("http://{host}")), "Budidaya Padi Sawah").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Terima kasih"), "{page}");
    let (status, _) = suggest(Some("http://jahat.example"), "Iklan Judi").await;
    assert_eq!(status, 403);
    let (status, page) = suggest(None, "  ").await;
    assert_eq!(status, 400);
    assert!(page.contains("Usulan perlu judul buku"), "{page}");

    // What was kept: three searches, folded; nothing about who asked.
    let searches = a.needs().searches().expect("reads");
    let queries: Vec<(&str, u64)> = searches
        .iter()
        .map(|(_, s)| (s.query.as_str(), s.hits))
        .collect();
    assert_eq!(
        queries,
        [
            ("laskar pelangi", 1),
            ("bertani padi sawah", 0),
            ("bertani padi sawah", 0)
        ]
    );
    assert!(searches.iter().all(|(at, _)| *at == T));
    let kept = every_byte(a);
    for secret in [patron_agent, "rahasia-cookie-99", "127.0.0.1", "Iklan Judi"] {
        assert!(
            !contains(&kept, secret),
            "{secret:?} is kept in the database"
        );
    }

    // The librarian's report: each query beside who holds it.
    let needs = |body: serde_json::Value| {
        let request = client
            .post(format!("{url}/api/needs"))
            .bearer_auth(&a.data().api_token)
            .json(&body);
        async move {
            let response = request.send().await.expect("answers");
            (
                response.status().as_u16(),
                response.json::<serde_json::Value>().await.expect("json"),
            )
        }
    };
    let unauthorized = client
        .post(format!("{url}/api/needs"))
        .json(&serde_json::json!({"action": "report"}))
        .send()
        .await
        .expect("answers");
    assert_eq!(unauthorized.status(), 401);
    let (status, body) = needs(serde_json::json!({"action": "report"})).await;
    assert_eq!(status, 200, "{body}");
    let report = &body["report"];
    assert_eq!(
        (
            report["searches"].as_u64(),
            report["searches_empty"].as_u64()
        ),
        (Some(3), Some(2)),
        "{body}"
    );
    assert_eq!(report["top"][0]["query"], "bertani padi sawah");
    assert_eq!(report["top"][0]["count"], 2);
    assert_eq!(report["empty"][0]["query"], "bertani padi sawah");
    assert_eq!(body["held"]["laskar pelangi"]["by"], "partner", "{body}");
    assert_eq!(
        body["held"]["laskar pelangi"]["partners"][0],
        "Perpustakaan SMP1KEMIRI (SMP1KEMIRI)"
    );
    assert_eq!(body["held"]["bertani padi sawah"]["by"], "none");
    assert_eq!(report["suggestions"][0]["title"], "Budidaya Padi Sawah");
    assert_eq!(body["held"]["Budidaya Padi Sawah Sutanto"]["by"], "none");

    // The page says the same, in Indonesian.
    let login = client
        .post(format!("{url}/login"))
        .form(&[("token", a.data().api_token.as_str())])
        .send()
        .await
        .expect("logs in");
    let cookie = crate::support::session_cookie(login.headers());
    let page = client
        .get(format!("{url}/librarian/needs"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("answers")
        .text()
        .await
        .expect("text");
    for text in [
        "Kebutuhan pemustaka",
        "Dimiliki mitra",
        "Perpustakaan SMP1KEMIRI",
        "Belum dimiliki siapa pun",
        "Budidaya Padi Sawah",
        "untuk kelompok tani di desa",
    ] {
        assert!(page.contains(text), "{text:?} not on the page: {page}");
    }

    // Forgetting by hand: before tomorrow is everything.
    let (status, body) =
        needs(serde_json::json!({"action": "forget", "before": "2026-13-01"})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("bad_date")),
        "{body}"
    );
    let tomorrow = jalin_protocol::ill::Day::of_ms(T).plus(1).to_string();
    let (status, body) = needs(serde_json::json!({"action": "forget", "before": tomorrow})).await;
    assert_eq!(status, 200, "{body}");
    assert!(a.needs().searches().expect("reads").is_empty());
    let (_, body) = needs(serde_json::json!({"action": "report"})).await;
    assert_eq!(
        body["report"]["suggestions"].as_array().map(Vec::len),
        Some(0)
    );

    // Forgetting by the clock: kept for 12 months (the default), then gone.
    opac("sejarah kemiri").await;
    clock.advance(12 * MONTH_MS - 1);
    let (_, body) = needs(serde_json::json!({"action": "report"})).await;
    assert_eq!(body["report"]["searches"], 1, "{body}");
    clock.advance(2);
    let (_, body) = needs(serde_json::json!({"action": "report"})).await;
    assert_eq!(body["report"]["searches"], 0, "{body}");
    assert!(!contains(&every_byte(a), "sejarah kemiri"));
    node.shutdown().await.expect("stops");
}

#[test]
fn with_logging_off_the_opac_logs_nothing() {
    let server = crate::support::start_with(None, |d| d.config.needs.log_searches = false);
    let response = reqwest::blocking::get(format!("{}/?q=sejarah", server.url)).expect("answers");
    assert_eq!(response.status(), 200);
    assert!(server.library.needs().searches().expect("reads").is_empty());
}

/// Only aggregates leave the node, and only under the agreement: a query goes to the
/// partners once three distinct visits of the OPAC asked it. Checked on every document
/// the node serves its partners, on every catalog change it serves, and on every byte the
/// partner keeps after syncing with it over libp2p.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_queries_of_three_visits_leave_the_node_and_only_under_the_agreement() {
    let clock = Arc::new(ManualClock::at(T));
    let mut members = two_members(&clock);
    let (b_library, b_dir) = members.pop().expect("B");
    let (a_library, a_dir) = members.pop().expect("A");
    let a = crate::network::start_serving(a_library, a_dir).await;
    let url = a.url();
    let client = reqwest::Client::new();
    // Each visit opens the search page, which gives it a token its searches carry.
    let visit = || {
        let client = client.clone();
        let url = url.clone();
        async move {
            let page = client
                .get(format!("{url}/"))
                .send()
                .await
                .expect("answers")
                .text()
                .await
                .expect("text");
            let at = page.find("name=\"v\" value=\"").expect("a visit token") + 16;
            page[at..].split('"').next().expect("token").to_string()
        }
    };
    let search = |token: String, q: &'static str| {
        let request = client
            .get(format!("{url}/"))
            .query(&[("q", q), ("v", &token)]);
        async move {
            assert_eq!(request.send().await.expect("answers").status(), 200);
        }
    };
    let shared = "budidaya jamur tiram";
    let (once, twice) = ("rahasia pribadi kemiri", "dua kunjungan saja");
    for _ in 0..3 {
        let token = visit().await;
        search(token.clone(), shared).await;
        search(token, shared).await;
    }
    let lone = visit().await;
    for _ in 0..4 {
        search(lone.clone(), once).await;
    }
    for _ in 0..2 {
        search(visit().await, twice).await;
    }
    // A long query in another script, asked by three visits: longer in bytes than a
    // summary carries, it stays home and does not stop the summary.
    let long: &'static str = "é".repeat(150).leak();
    for _ in 0..3 {
        search(visit().await, long).await;
    }
    // The patron survey: three farmers, one teacher (with a wish of their own).
    jalin_node::survey::execute(
        &a.library,
        jalin_node::survey::SurveyRequest::Create { definition: None },
    )
    .expect("creates");
    let survey = a.library.surveys().current().expect("reads").expect("made");
    let answer = |work: &str, wish: &str| {
        let mut fields = std::collections::BTreeMap::new();
        fields.insert("pekerjaan".to_string(), vec![work.to_string()]);
        fields.insert("saran".to_string(), vec![wish.to_string()]);
        let taken = survey
            .answer(&fields, jalin_node::survey::Source::Paper, T)
            .expect("reads");
        a.library.surveys().take(&taken).expect("takes");
    };
    let (farmer, teacher, wish) = (
        "Petani, peternak atau nelayan",
        "Guru atau dosen",
        "keinginan pribadi guru",
    );
    for _ in 0..3 {
        answer(farmer, "");
    }
    answer(teacher, wish);
    let kept = a.library.needs().shareable(0).expect("reads");
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!((kept[0].query.as_str(), kept[0].sessions), (shared, 3));

    // No agreement shares needs yet: nothing leaves.
    assert_eq!(jalin_node::needs::share(&a.library, true).expect("runs"), 0);
    let id = a.library.consortia().list()[0].id;
    assert!(!a
        .library
        .consortia()
        .export(&id)
        .expect("exports")
        .contains("JALIN-NEEDS:"));
    // Under an agreement with share_needs, the summary: the query of three visits only.
    jalin_tests::fixtures::agree(&[&a.library, &b_library], "share_needs = true");
    assert_eq!(jalin_node::needs::share(&a.library, true).expect("runs"), 1);

    // Every document A serves its partners, decoded.
    let documents = a.library.consortia().export(&id).expect("exports");
    let decoded: String = jalin_protocol::consortium::read_documents(&documents)
        .into_iter()
        .map(|(_, d)| format!("{:?}\n", d.expect("a document")))
        .collect();
    assert!(decoded.contains(shared), "the summary is served");
    assert!(
        decoded.contains(farmer),
        "the survey's total of three is served"
    );
    for secret in [once, twice, teacher, wish] {
        assert!(!decoded.contains(secret), "{secret:?} in a document");
    }
    // Every change of A's catalog it serves.
    for shard in 0..jalin_node::store::SHARD_COUNT {
        for change in a
            .library
            .store()
            .changes_since(&a.library.id(), shard, &[])
            .expect("changes")
        {
            for secret in [shared, once, twice] {
                assert!(
                    !contains(&change.bytes, secret),
                    "{secret:?} in a catalog change"
                );
            }
        }
    }
    // Over libp2p to B: B keeps the aggregate and nothing else of the log.
    let b = crate::network::start(b_library, b_dir).await;
    b.net.dial(a.address().await).await.expect("dials");
    crate::network::eventually("B holds A's needs summary", 60, || {
        b.library
            .consortia()
            .shared_needs(&id)
            .map(|n| n.contains_key(&a.library.id()))
            .unwrap_or(false)
    })
    .await;
    let at_b = every_byte(&b.library);
    assert!(contains(&at_b, shared));
    assert!(contains(&at_b, farmer));
    for secret in [once, twice, teacher, wish] {
        assert!(!contains(&at_b, secret), "{secret:?} reached B");
    }
    // B's librarian sees what A's patrons look for, beside B's union catalog.
    let report = jalin_node::needs::execute(
        &b.library,
        jalin_node::needs::NeedsRequest::Report { since: None },
    )
    .expect("reports");
    assert_eq!(report.partners.len(), 1, "{:?}", report.partners);
    assert_eq!(
        (
            report.partners[0].query.as_str(),
            report.partners[0].sessions
        ),
        (shared, 3)
    );
    assert_eq!(report.held[shared].by, "none");
    a.stop().await;
    b.stop().await;
}
