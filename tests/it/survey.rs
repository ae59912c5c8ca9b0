//! Knowing who the patrons are (angket): the same answers given on the search pages, on
//! paper (entered by the librarian) and in a CSV add up to the same report; the
//! interests set beside the collection agree with a plain count over the catalog.

use crate::support::{csrf_of, session_cookie, start, Server};
use jalin_node::survey::{execute, SurveyRequest};
use std::collections::BTreeMap;

/// Three patrons' answers: occupation, age, gender, interests, a wish.
const ANSWERS: [(&str, &str, &str, &[&str], &str); 3] = [
    (
        "Petani, peternak atau nelayan",
        "26-40 tahun",
        "Laki-laki",
        &["Ilmu terapan (teknologi)", "Sejarah dan geografi"],
        "buku budidaya jamur",
    ),
    (
        "Pelajar atau mahasiswa",
        "13-18 tahun",
        "Perempuan",
        &["Kesusastraan"],
        "",
    ),
    (
        "Ibu atau bapak rumah tangga",
        "41-60 tahun",
        "Perempuan",
        &["Ilmu terapan (teknologi)"],
        "resep masakan daerah",
    ),
];

fn sample() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../cli/demo/loc-indonesia-sample.mrc")
}

fn form(answer: &(&str, &str, &str, &[&str], &str)) -> Vec<(String, String)> {
    let mut out = vec![
        ("pekerjaan".to_string(), answer.0.to_string()),
        ("usia".into(), answer.1.into()),
        ("jenis_kelamin".into(), answer.2.into()),
        ("saran".into(), answer.4.into()),
    ];
    out.extend(
        answer
            .3
            .iter()
            .map(|m| ("minat".to_string(), m.to_string())),
    );
    out
}

/// A node with the sample catalog and the ready questionnaire.
fn node_with_survey() -> Server {
    let server = start(Some(&sample()));
    execute(&server.library, SurveyRequest::Create { definition: None }).expect("creates");
    server
}

/// What the report counts, per question: (option, count).
fn counts(server: &Server) -> BTreeMap<String, Vec<(String, u64)>> {
    let report = execute(&server.library, SurveyRequest::Report)
        .expect("reports")
        .report
        .expect("a report");
    assert_eq!(report.answers, 3);
    report
        .questions
        .iter()
        .map(|q| {
            let mut values: Vec<(String, u64)> = q
                .options
                .iter()
                .map(|o| (o.option.clone(), o.count))
                .collect();
            values.extend(q.texts.iter().map(|t| (t.clone(), 1)));
            values.sort();
            (q.id.clone(), values)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_from_the_opac_from_paper_and_from_a_csv_add_up_to_the_same_report() {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    // On the search pages: a patron's form, no login.
    let opac = tokio::task::spawn_blocking(node_with_survey)
        .await
        .expect("starts");
    let page = client
        .get(format!("{}/survey", opac.url))
        .send()
        .await
        .expect("answers")
        .text()
        .await
        .expect("text");
    assert!(page.contains("Apa pekerjaan Anda?"), "{page}");
    for answer in &ANSWERS {
        let response = client
            .post(format!("{}/survey", opac.url))
            .form(&form(answer))
            .send()
            .await
            .expect("answers");
        assert_eq!(response.status(), 200);
    }
    // Another site's page may not answer in a patron's name.
    let forged = client
        .post(format!("{}/survey", opac.url))
        .header("origin", "http://jahat.example")
        .form(&form(&ANSWERS[0]))
        .send()
        .await
        .expect("answers");
    assert_eq!(forged.status(), 403);
    // A choice that is not an option is refused, saying which.
    let wrong = client
        .post(format!("{}/survey", opac.url))
        .form(&[("usia", "seratus tahun")])
        .send()
        .await
        .expect("answers");
    assert_eq!(wrong.status(), 400);
    assert!(wrong.text().await.expect("text").contains("seratus tahun"));

    // On paper: the librarian enters each form.
    let paper = tokio::task::spawn_blocking(node_with_survey)
        .await
        .expect("starts");
    let login = client
        .post(format!("{}/login", paper.url))
        .form(&[("token", paper.token.as_str())])
        .send()
        .await
        .expect("logs in");
    let cookie = session_cookie(login.headers());
    let page = client
        .get(format!("{}/librarian/survey", paper.url))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("answers")
        .text()
        .await
        .expect("text");
    let csrf = csrf_of(&page);
    for answer in &ANSWERS {
        let mut fields = form(answer);
        fields.push(("csrf".into(), csrf.clone()));
        let response = client
            .post(format!("{}/librarian/survey/paper", paper.url))
            .header("cookie", &cookie)
            .form(&fields)
            .send()
            .await
            .expect("answers");
        assert_eq!(response.status(), 303);
    }

    // From a spreadsheet: Google Forms' export, the questions as column names, the
    // checkboxes joined with ", ".
    let csv_node = tokio::task::spawn_blocking(node_with_survey)
        .await
        .expect("starts");
    let mut csv = String::from(
        "Timestamp,Apa pekerjaan Anda?,Berapa usia Anda?,Jenis kelamin,\
         Bacaan tentang apa yang Anda minati? (boleh lebih dari satu),\
         Buku atau layanan apa yang Anda harapkan dari perpustakaan?\n",
    );
    for a in &ANSWERS {
        csv.push_str(&format!(
            "2026/12/01 9:00:00 AM GMT+7,\"{}\",{},{},\"{}\",{}\n",
            a.0,
            a.1,
            a.2,
            a.3.join(", "),
            a.4
        ));
    }
    let library = csv_node.library.clone();
    let taken = tokio::task::spawn_blocking(move || {
        jalin_node::survey::import(&library, csv.as_bytes()).expect("imports")
    })
    .await
    .expect("import task");
    assert_eq!(taken, 3);
    // A CSV with an unknown choice takes nothing, and says which row.
    let library = csv_node.library.clone();
    let error = tokio::task::spawn_blocking(move || {
        jalin_node::survey::import(&library, b"Jenis kelamin\nPerempuan\nRobot\n")
            .expect_err("refused")
    })
    .await
    .expect("import task");
    assert!(error.to_string().contains("row 3"), "{error}");

    let (opac_counts, paper_counts, csv_counts) =
        tokio::task::spawn_blocking(move || (counts(&opac), counts(&paper), counts(&csv_node)))
            .await
            .expect("reports");
    assert_eq!(opac_counts, paper_counts);
    assert_eq!(opac_counts, csv_counts);
    let minat = &opac_counts["minat"];
    assert!(
        minat.contains(&("Ilmu terapan (teknologi)".to_string(), 2)),
        "{minat:?}"
    );
}

#[test]
fn interests_are_set_beside_the_collection_as_a_plain_count_says() {
    let server = node_with_survey();
    let surveys = server.library.surveys();
    let survey = surveys.current().expect("reads").expect("a survey");
    for answer in &ANSWERS {
        let mut fields: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in form(answer) {
            fields.entry(k).or_default().push(v);
        }
        let taken = survey
            .answer(&fields, jalin_node::survey::Source::Paper, 0)
            .expect("reads");
        surveys.take(&taken).expect("takes");
    }
    let report = execute(&server.library, SurveyRequest::Report)
        .expect("reports")
        .report
        .expect("a report");
    // A plain count over the catalog file: each record's division, by the table the page
    // explains (082's hundreds, else 050's class mapped).
    let bytes = std::fs::read(sample()).expect("reads");
    let mut by_division: BTreeMap<&str, u64> = BTreeMap::new();
    let mut total = 0u64;
    for parsed in jalin_protocol::format::RecordReader::new(
        std::io::Cursor::new(&bytes),
        jalin_protocol::format::Format::Marc,
        None,
    ) {
        let record = parsed.expect("a record").record;
        total += 1;
        if let Some(d) = jalin_protocol::collection::division(&record.description.classification) {
            *by_division.entry(d).or_default() += 1;
        }
    }
    let percent = |part: u64, whole: u64| (part as f64 * 1000.0 / whole as f64).round() / 10.0;
    let interested = |name: &str| ANSWERS.iter().filter(|a| a.3.contains(&name)).count() as u64;
    for interest in &report.interests {
        assert_eq!(
            interest.held_percent,
            percent(
                by_division
                    .get(interest.division.as_str())
                    .copied()
                    .unwrap_or(0),
                total
            ),
            "{interest:?}"
        );
        assert_eq!(
            interest.asked_percent,
            percent(interested(&interest.option), 3),
            "{interest:?}"
        );
        // One library, no partners.
        assert_eq!(interest.partners_percent, 0.0);
    }
    let technology = report
        .interests
        .iter()
        .find(|i| i.division == "600")
        .expect("600");
    assert_eq!(technology.asked_percent, 66.7);
}
