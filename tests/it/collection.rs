//! Collection overlap: the 3,147 LC records split among three libraries with overlaps,
//! the node's figures checked against a plain count over the files the test wrote.

use jalin_node::library::{ImportOptions, Library, Source};
use jalin_tests::fixtures::{new_library, replicate};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The records of an ISO 2709 file, each as its bytes.
fn split(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 5 <= bytes.len() {
        let length: usize = std::str::from_utf8(&bytes[at..at + 5])
            .ok()
            .and_then(|s| s.parse().ok())
            .expect("a record length");
        out.push(&bytes[at..at + length]);
        at += length;
    }
    out
}

/// Each field's tag and data (subfields split on 0x1F), by reading the directory.
fn fields(record: &[u8]) -> Vec<(String, String)> {
    let base: usize = std::str::from_utf8(&record[12..17])
        .expect("ascii")
        .parse()
        .expect("base address");
    let mut out = Vec::new();
    let mut entry = 24;
    while record[entry] != 0x1e {
        let e = &record[entry..entry + 12];
        let tag = String::from_utf8_lossy(&e[..3]).into_owned();
        let length: usize = std::str::from_utf8(&e[3..7])
            .expect("ascii")
            .parse()
            .expect("length");
        let start: usize = std::str::from_utf8(&e[7..12])
            .expect("ascii")
            .parse()
            .expect("start");
        let data = &record[base + start..base + start + length];
        out.push((tag, String::from_utf8_lossy(data).into_owned()));
        entry += 12;
    }
    out
}

/// The 9-digit core of an ISBN-10 or ISBN-13 (978), so both forms of one ISBN agree.
fn isbn_core(text: &str) -> Option<String> {
    let digits: String = text
        .split_whitespace()
        .next()?
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == 'X' || *c == 'x')
        .collect();
    match digits.len() {
        10 => Some(digits[..9].to_string()),
        13 if digits.starts_with("978") => Some(digits[3..12].to_string()),
        13 => Some(digits),
        _ => None,
    }
}

/// What a plain reading says could make two records one book: ISBNs, the LCCN, OCLC
/// numbers, and the title's letters with the year (coarser than the node's title key,
/// so it finds more, never fewer).
fn identities(record: &[u8]) -> (String, BTreeSet<String>) {
    let mut control = String::new();
    let mut marks = BTreeSet::new();
    let (mut title, mut year) = (String::new(), String::new());
    for (tag, data) in fields(record) {
        let sub = |code: char| -> Vec<String> {
            data.split('\u{1f}')
                .filter(|s| s.starts_with(code))
                .map(|s| s[1..].trim().to_string())
                .collect()
        };
        match tag.as_str() {
            "001" => control = data.trim_end_matches('\u{1e}').trim().to_string(),
            "008" => year = data.get(7..11).unwrap_or_default().to_string(),
            "010" => marks.extend(sub('a').into_iter().map(|v| format!("lccn {v}"))),
            "020" => marks.extend(
                sub('a')
                    .into_iter()
                    .filter_map(|v| isbn_core(&v))
                    .map(|v| format!("isbn {v}")),
            ),
            "035" => marks.extend(
                sub('a')
                    .into_iter()
                    .filter(|v| v.contains("OCoLC"))
                    .map(|v| {
                        format!(
                            "oclc {}",
                            v.trim_start_matches(|c: char| !c.is_ascii_digit())
                                .trim_start_matches('0')
                        )
                    }),
            ),
            "245" => {
                title = sub('a')
                    .concat()
                    .chars()
                    .filter(|c| c.is_alphanumeric())
                    .flat_map(char::to_lowercase)
                    .collect()
            }
            _ => {}
        }
    }
    marks.insert(format!("title {title} {year}"));
    (control, marks)
}

#[test]
fn the_overlap_of_three_libraries_agrees_with_a_plain_count() {
    let data = crate::shared_data_or_skip!();
    let bytes = std::fs::read(data.join("marc/loc/loc-indonesia-3147.mrc")).expect("reads");
    let all = split(&bytes);
    assert_eq!(all.len(), 3147);
    // Only records nothing else could be taken for: each control number once, and no
    // mark shared with another record.
    let read: Vec<(String, BTreeSet<String>)> = all.iter().map(|r| identities(r)).collect();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, marks) in &read {
        for mark in marks {
            *seen.entry(mark).or_default() += 1;
        }
    }
    let controls: BTreeSet<&str> = read.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(controls.len(), all.len(), "control numbers are unique");
    let usable: Vec<usize> = (0..all.len())
        .filter(|&i| read[i].1.iter().all(|m| seen[m.as_str()] == 1))
        .collect();
    assert!(usable.len() > 2_000, "{} usable records", usable.len());
    // Three libraries over overlapping ranges of them.
    let n = usable.len();
    let ranges = [
        (0..n * 45 / 100).collect::<BTreeSet<usize>>(),
        (n * 30 / 100..n * 75 / 100).chain(0..n / 20).collect(),
        (n * 60 / 100..n).chain(0..n / 10).collect(),
    ];
    let dir = tempfile::tempdir().expect("temp dir");
    let mut libraries = Vec::new();
    let mut dirs = Vec::new();
    for (k, range) in ranges.iter().enumerate() {
        let (library_dir, mut library_data) = new_library(1000);
        library_data.config.library.code = format!("L{k}");
        let library = Arc::new(Library::open(library_data).expect("opens"));
        let file = dir.path().join(format!("l{k}.mrc"));
        let mut out = Vec::new();
        for &i in range {
            out.extend_from_slice(all[usable[i]]);
        }
        std::fs::write(&file, out).expect("writes");
        let summary = library
            .import(&Source::File(file), &ImportOptions::default(), |_| {})
            .expect("imports");
        assert_eq!(summary.added, range.len() as u64);
        libraries.push(library);
        dirs.push(library_dir);
    }
    for from in &libraries[1..] {
        replicate(from, &libraries[0]);
    }
    let report = libraries[0].collection_overlap().expect("reports");

    // The plain count: a record is one title; who holds it is whose ranges hold it.
    let holders = |i: usize| ranges.iter().filter(|r| r.contains(&i)).count();
    let titles: BTreeSet<usize> = ranges.iter().flatten().copied().collect();
    assert_eq!(report.titles, titles.len() as u64);
    assert_eq!(
        report.held_once,
        titles.iter().filter(|&&i| holders(i) == 1).count() as u64
    );
    assert_eq!(
        report.held_by_all,
        titles.iter().filter(|&&i| holders(i) == 3).count() as u64
    );
    assert!(report.held_by_all > 0, "some titles are at all three");
    assert_eq!(report.libraries.len(), 3);
    for (k, library) in libraries.iter().enumerate() {
        let key = library.id().to_hex();
        let figures = report
            .libraries
            .iter()
            .find(|l| l.library == key)
            .expect("each library counted");
        let count = |h: usize| ranges[k].iter().filter(|&&i| holders(i) == h).count() as u64;
        assert_eq!(
            (
                figures.titles.alone,
                figures.titles.some,
                figures.titles.all
            ),
            (count(1), count(2), count(3)),
            "library L{k}"
        );
        // Every title once in each breakdown.
        for breakdown in [
            &figures.by_division,
            &figures.by_language,
            &figures.by_decade,
        ] {
            let total: u64 = breakdown.values().map(|s| s.total()).sum();
            assert_eq!(total, ranges[k].len() as u64, "library L{k}");
        }
    }
    the_page_shows_the_same(&libraries[0], &report);
}

/// The librarian's page: the same figures, a chart the node drew, and the CSV.
fn the_page_shows_the_same(
    library: &Arc<Library>,
    report: &jalin_protocol::collection::OverlapReport,
) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let node = runtime
        .block_on(jalin_node::node::Node::spawn(
            library.clone(),
            jalin_node::node::NodeOptions {
                http: Some("127.0.0.1:0".into()),
                ..jalin_node::node::NodeOptions::default()
            },
        ))
        .expect("serves");
    let url = node.url().expect("url");
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let anonymous = client
        .get(format!("{url}/librarian/collection.csv"))
        .send()
        .expect("answers");
    assert_eq!(anonymous.status(), 303, "the figures need a login");
    let login = client
        .post(format!("{url}/login"))
        .form(&[("token", library.data().api_token.as_str())])
        .send()
        .expect("logs in");
    let cookie = crate::support::session_cookie(login.headers());
    let page = client
        .get(format!("{url}/librarian/collection"))
        .header("cookie", &cookie)
        .send()
        .expect("answers")
        .text()
        .expect("text");
    assert!(page.contains("<h1>Koleksi bersama</h1>"), "{page}");
    assert!(page.contains("id=\"overlap-chart\""), "{page}");
    assert_eq!(
        page.matches("<rect x=").count(),
        9,
        "three bars of three parts"
    );
    let l0 = &report.libraries[0];
    let row = format!(
        "<td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
        l0.titles.alone,
        l0.titles.some,
        l0.titles.all,
        l0.titles.total()
    );
    assert!(page.contains(&row), "{row} not in {page}");
    let csv = client
        .get(format!("{url}/librarian/collection.csv"))
        .header("cookie", &cookie)
        .send()
        .expect("answers");
    assert_eq!(
        csv.headers()["content-type"].to_str().ok(),
        Some("text/csv; charset=utf-8")
    );
    let csv = csv.text().expect("text");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("library,by,value,alone,some,all"));
    let rows: Vec<&str> = lines.collect();
    let expected: usize = report
        .libraries
        .iter()
        .map(|l| 1 + l.by_division.len() + l.by_language.len() + l.by_decade.len())
        .sum();
    assert_eq!(rows.len(), expected);
    let titles = format!(
        ",all,titles,{},{},{}",
        l0.titles.alone, l0.titles.some, l0.titles.all
    );
    assert!(rows.iter().any(|r| r.ends_with(&titles)), "{csv}");
    runtime.block_on(node.shutdown()).expect("stops");
}
