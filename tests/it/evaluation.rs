//! The periodic evaluation on a fixture partnership over two periods (an injected clock):
//! known imports, corrections, deletions, searches, plans, loans and trainings; every
//! figure of the report against a plain count of what the test did; two members' nodes
//! computing the same report; signatures that verify over the figures signed, and one
//! changed figure that no longer does; the decisions of one period, with their outcomes,
//! in the next.

use jalin_node::clock::{Clock, ManualClock};
use jalin_node::evaluation::{self, HandInput};
use jalin_node::ill_requests::{execute as ill, IllRequest, SimpleStep};
use jalin_node::library::{ImportOptions, Library, Source};
use jalin_node::plans::{self, PlanInput};
use jalin_node::staff::{self, StaffRequest};
use jalin_protocol::consortium::evaluation::{Decision, Outcome, Period};
use jalin_protocol::marc::{iso2709, MarcRecord};
use jalin_protocol::record::Description;
use jalin_tests::fixtures::{agree, form_consortium, new_library, replicate, share_documents, T};
use std::sync::Arc;

const HOUR: u64 = 3_600_000;
const DAY: u64 = 24 * HOUR;

fn import(library: &Library, records: &[MarcRecord]) {
    let mut bytes = Vec::new();
    for record in records {
        bytes.extend(iso2709::write_record(record).expect("writes"));
    }
    library
        .import(&Source::Bytes(bytes), &ImportOptions::default(), |_| {})
        .expect("imports");
}

/// A loan from `lender` to `borrower` of `record` (a lender's record id): asked at the
/// clock's time, then answered (shipped or refused) `answer_after` later, if ever.
fn loan(
    clock: &ManualClock,
    borrower: &Library,
    lender: &Library,
    lender_code: &str,
    record: &str,
    answer: Option<(u64, bool)>,
) {
    let asked = ill(
        borrower,
        IllRequest::Request {
            record: format!("{lender_code}:{record}"),
            patron: None,
            need_before: None,
            note: String::new(),
            lenders: Vec::new(),
            items: 1,
        },
    )
    .expect("requests");
    let id = asked.loans[0].id.clone();
    crate::ill::exchange(borrower, lender, clock.now_ms());
    if let Some((after, supply)) = answer {
        clock.advance(after);
        ill(
            lender,
            IllRequest::Answer {
                id: id.clone(),
                will_supply: supply,
                unfilled: (!supply).then(|| "NotOnShelf".to_string()),
                conditions: None,
            },
        )
        .expect("answers");
        if supply {
            ill(
                lender,
                IllRequest::Step {
                    id,
                    step: SimpleStep::Ship,
                },
            )
            .expect("ships");
        }
        crate::ill::exchange(borrower, lender, clock.now_ms());
    }
}

#[test]
fn every_figure_of_two_periods_is_a_plain_count_and_signatures_hold_the_figures_signed() {
    let records: Vec<MarcRecord> = crate::partners::records();
    let clock = Arc::new(ManualClock::at(T));
    let mut held = Vec::new();
    for code in ["SMP1", "DESA"] {
        let (dir, mut data) = new_library(100);
        data.config.library.code = code.into();
        data.config.library.name = format!("Perpustakaan {code}");
        held.push((
            Arc::new(Library::open_with_clock(data, clock.clone()).expect("opens")),
            dir,
        ));
    }
    let (a, b) = (held[0].0.clone(), held[1].0.clone());
    let both = [a.as_ref(), b.as_ref()];
    let id = form_consortium("Jaringan Kemiri", &both);
    agree(
        &both,
        "interlibrary_loan = true\ncoordinated_acquisition = true\nstaff_development = true\n\
         evaluation_period_months = 1\nanswer_within_days = 3",
    );
    // T is 2026-11-24 07:00 WIB: the first period is November, the second December.
    let periods = evaluation::periods(&a, &id).expect("periods");
    assert_eq!(periods.len(), 1);
    let p1 = periods[0];
    assert_eq!(evaluation::show_period(&p1), "2026-11-01 – 2026-11-30");
    let p2 = Period {
        from_ms: p1.to_ms,
        to_ms: p1.to_ms + 31 * DAY,
    };

    // November. A: 20 records, 2 of them corrected; B: 10 records.
    clock.set(T + HOUR);
    import(&a, &records[..20]);
    import(&b, &records[20..30]);
    clock.set(T + 2 * HOUR);
    for record in &records[..2] {
        let mut changed = record.clone();
        changed.push_data(jalin_protocol::marc::DataField::new(
            "500",
            ' ',
            ' ',
            &[('a', "Koreksi katalog.")],
        ));
        a.put(changed).expect("corrects");
    }
    // Five searches at A's OPAC, two of which find nothing.
    clock.set(T + 3 * HOUR);
    for (query, hits) in [
        ("sejarah", 4),
        ("bumi manusia", 1),
        ("kitab tani", 0),
        ("resep", 2),
        ("komik", 0),
    ] {
        a.needs()
            .log_search(query, hits, Some("kunjungan-1"), clock.now_ms())
            .expect("logs");
    }
    // A plans one title no one holds, and does not plan one of B's once flagged.
    replicate(&b, &a);
    replicate(&a, &b);
    plans::add(
        &a,
        &PlanInput {
            title: "Kitab tani lestari".into(),
            author: Some("Suyanto".into()),
            ..PlanInput::default()
        },
        false,
    )
    .expect("plans");
    let bs = Description::from_marc(&records[20]);
    let (added, flags) = plans::add(
        &a,
        &PlanInput {
            title: bs.title.clone(),
            author: bs.names.first().map(|n| n.name.clone()),
            year: bs.year,
            ..PlanInput::default()
        },
        false,
    )
    .expect("checks");
    assert!(added.is_none() && !flags.is_empty(), "{flags:?}");
    // B borrows from A: one shipped the next hour, one refused.
    clock.set(T + 4 * HOUR);
    let a_ids: Vec<String> = records[2..5]
        .iter()
        .map(|r| {
            jalin_protocol::record::Record::from_marc(r.clone())
                .id()
                .to_string()
        })
        .collect();
    loan(&clock, &b, &a, "SMP1", &a_ids[0], Some((HOUR, true)));
    loan(&clock, &b, &a, "SMP1", &a_ids[1], Some((2 * HOUR, false)));
    // A holds a training two days on (7 attend); B asks, A answers five hours later.
    clock.set(T + DAY);
    let training = staff::execute(
        &a,
        StaffRequest::AddTraining {
            consortium: None,
            training: jalin_protocol::consortium::staff::Training {
                title: "Katalogisasi".into(),
                description: String::new(),
                starts_ms: T + 2 * DAY,
                minutes: 120,
                place: "SMP1".into(),
                online: false,
                leader: "Bu Sri".into(),
                audience: String::new(),
                seats: None,
                attended: None,
            },
        },
    )
    .expect("posts")
    .trainings[0]
        .reference
        .clone();
    share_documents(&both);
    clock.set(T + 3 * DAY);
    staff::execute(
        &a,
        StaffRequest::Held {
            training,
            attended: 7,
        },
    )
    .expect("held");
    staff::execute(
        &b,
        StaffRequest::Ask {
            consortium: None,
            topic: "MARC".into(),
            question: "Subfield 245 $c?".into(),
        },
    )
    .expect("asks");
    share_documents(&both);
    let ask = staff::list(&a).expect("lists").asks[0].reference.clone();
    clock.advance(5 * HOUR);
    staff::execute(
        &a,
        StaffRequest::Answer {
            ask,
            text: "Pernyataan tanggung jawab.".into(),
        },
    )
    .expect("answers");

    // December 2: each member signs its November figures; A adds what it counts by hand.
    clock.set(p1.to_ms + DAY);
    evaluation::publish_figures(
        &a,
        &id,
        p1,
        HandInput {
            visits: Some(120),
            registered_members: Some(40),
            opening_days: Some(20),
            staff: Some(2),
        },
    )
    .expect("publishes");
    evaluation::publish_figures(&b, &id, p1, HandInput::default()).expect("publishes");
    share_documents(&both);

    // December: A adds 5 records and deletes one; B asks A for a book A never answers.
    clock.set(p1.to_ms + 4 * DAY);
    import(&a, &records[30..35]);
    let gone = jalin_protocol::record::Record::from_marc(records[6].clone())
        .id()
        .to_string();
    a.delete(&gone).expect("deletes");
    loan(&clock, &b, &a, "SMP1", &a_ids[2], None);
    // January 3: December's figures.
    clock.set(p2.to_ms + 2 * DAY);
    for library in both {
        evaluation::publish_figures(library, &id, p2, HandInput::default()).expect("publishes");
    }
    share_documents(&both);

    // November's report, at A and at B: the same, to the byte.
    let (ra, rb) = (
        evaluation::report(&a, &id, p1).expect("reports"),
        evaluation::report(&b, &id, p1).expect("reports"),
    );
    assert_eq!(ra, rb);
    assert_eq!(ra.digest(), rb.digest());
    let row = |r: &jalin_protocol::consortium::evaluation::Report, code: &str| {
        r.members
            .iter()
            .find(|m| m.name.ends_with(&format!("({code})")))
            .cloned()
            .expect("a member's row")
    };
    let fa = row(&ra, "SMP1").figures.expect("A's figures");
    assert_eq!(
        (fa.records, fa.added, fa.corrected, fa.deleted),
        (20, 20, 2, 0)
    );
    assert_eq!((fa.searches, fa.searches_empty), (5, 2));
    assert_eq!((fa.planned, fa.duplicates_avoided), (1, 1));
    assert_eq!((fa.requests_received, fa.lent, fa.answered_late), (2, 1, 0));
    assert_eq!(fa.days_to_ship_tenths, Some(0), "shipped within the hour");
    assert_eq!(fa.hand.visits, Some(120));
    assert!(fa.unique_titles == fa.titles && fa.titles <= 20, "{fa:?}");
    let fb = row(&ra, "DESA").figures.expect("B's figures");
    assert_eq!((fb.records, fb.added), (10, 10));
    assert_eq!((fb.requests_made, fb.borrowed), (2, 1));
    let t = &ra.totals;
    assert_eq!((t.records, t.added, t.corrected), (30, 30, 2));
    assert_eq!((t.lent, t.requests_received), (1, 2));
    assert_eq!(t.fill_rate, Some(50.0));
    assert_eq!((t.searches, t.searches_empty), (5, 2));
    assert_eq!(t.empty_share, Some(40.0));
    assert_eq!((t.visits, t.registered_members), (120, 40));
    assert_eq!(
        (
            ra.staff.trainings_held,
            ra.staff.attendance,
            ra.staff.help_requests,
            ra.staff.help_answered
        ),
        (1, 7, 1, 1)
    );
    assert_eq!(ra.staff.median_hours_to_answer, Some(5.0));
    assert_eq!(row(&ra, "SMP1").trainings_held, 1);
    assert_eq!(row(&ra, "SMP1").answers_given, 1);
    assert_eq!(row(&ra, "SMP1").fill_rate, Some(50.0));
    assert!(ra.previous.is_none());

    // December's: A's records at its end, the late answer flagged, November beside it.
    let r2 = evaluation::report(&b, &id, p2).expect("reports");
    let f2 = row(&r2, "SMP1").figures.expect("A's December");
    assert_eq!(
        (
            f2.records,
            f2.added,
            f2.deleted,
            f2.requests_received,
            f2.answered_late
        ),
        (24, 5, 1, 1, 1)
    );
    assert_eq!(row(&r2, "SMP1").growth, Some(4));
    assert_eq!(r2.previous.as_ref(), Some(&ra.totals));
    assert!(
        r2.flags
            .iter()
            .any(|f| f.kind == "late_lender" && f.library == Some(a.id().to_hex())),
        "{:?}",
        r2.flags
    );
    // November's records at its end, computed again in January: still 20.
    let again = evaluation::own_figures(&a, &id, p1, Default::default()).expect("computes");
    assert_eq!(again.records, 20);

    // A signature over figures the librarian did not read is refused.
    let stale = evaluation::sign(
        &a,
        &id,
        p1,
        Some(jalin_protocol::consortium::document::Hash32([0; 32])),
        String::new(),
        Vec::new(),
        Vec::new(),
    )
    .expect_err("other figures");
    assert_eq!(stale.code(), "evaluation_invalid", "{stale}");
    // Evaluation documents of a period that is not one of the agreement's, or has not
    // started, are refused by every node: a member cannot fill the stores with made-up
    // periods, nor sign a period in advance.
    for period in [
        Period {
            from_ms: 1,
            to_ms: 2,
        },
        Period {
            from_ms: p2.to_ms + 31 * DAY,
            to_ms: p2.to_ms + 59 * DAY,
        },
    ] {
        let made_up = jalin_protocol::consortium::document::Signed::sign(
            &b.data().key,
            jalin_protocol::consortium::evaluation::EvaluationSignature {
                consortium: id,
                period,
                digest: ra.digest(),
                notes: String::new(),
                decisions: Vec::new(),
                outcomes: Vec::new(),
                time_ms: clock.now_ms(),
            },
        );
        let report = a.consortia().import(&made_up.to_text()).expect("reads");
        assert_eq!(report.new, 0, "{report:?}");
        assert!(
            report.refused[0].1.contains("not one of the agreement"),
            "{report:?}"
        );
    }
    // Both sign November; A decides something. The signatures verify over the figures.
    let decision = Decision {
        what: "Tambah jam buka Sabtu".into(),
        who: "SMP1".into(),
        by_ms: p2.to_ms,
    };
    let (_, signed) = evaluation::sign(
        &a,
        &id,
        p1,
        Some(ra.digest()),
        "Pinjaman lancar.".into(),
        vec![decision.clone()],
        Vec::new(),
    )
    .expect("signs");
    evaluation::sign(&b, &id, p1, None, String::new(), Vec::new(), Vec::new()).expect("signs");
    share_documents(&both);
    let all = a
        .consortia()
        .evaluation_signatures(&id, &p1)
        .expect("signatures");
    assert_eq!(ra.verified_by(&all).len(), 2);
    // One figure changed: no signature holds it.
    let mut changed = ra.clone();
    changed.totals.lent += 1;
    assert!(changed.verified_by(&all).is_empty());
    let mut changed = ra.clone();
    if let Some(f) = changed.members[0].figures.as_mut() {
        f.searches_empty += 1;
    }
    assert!(changed.verified_by(&all).is_empty());
    // Signed figures stay: a member's node no longer replaces its figures for November.
    let refused =
        evaluation::publish_figures(&b, &id, p1, HandInput::default()).expect_err("signed already");
    assert_eq!(refused.code(), "evaluation_invalid", "{refused}");

    // December's report shows November's decision; B says how it went.
    evaluation::sign(
        &b,
        &id,
        p2,
        None,
        String::new(),
        Vec::new(),
        vec![Outcome {
            signature: signed.id(),
            index: 0,
            done: true,
            note: "Buka Sabtu sejak 5 Desember.".into(),
        }],
    )
    .expect("signs");
    share_documents(&both);
    let r2 = evaluation::report(&a, &id, p2).expect("reports");
    assert_eq!(r2.decisions_before.len(), 1);
    assert_eq!(r2.decisions_before[0].decision, decision);
    assert_eq!(
        r2.decisions_before[0].outcomes,
        vec![(b.id().to_hex(), true, "Buka Sabtu sejak 5 Desember.".into())]
    );
    // And as CSV: a row per member and the totals.
    let csv = evaluation::csv(&ra);
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(
        csv.lines().last().unwrap().starts_with("TOTAL,30,"),
        "{csv}"
    );
    let iplm = evaluation::iplm(&ra);
    let smp = iplm
        .iter()
        .find(|i| i.perpustakaan.ends_with("(SMP1)"))
        .unwrap();
    assert_eq!(smp.kunjungan_per_hari, Some(6.0));
}

#[test]
fn the_cli_posts_trainings_counts_signs_and_writes_the_report() {
    use crate::cli::jalin;
    let dir = tempfile::tempdir().expect("temp dir");
    let a = dir.path().join("a");
    let ok = |args: &[&str]| {
        let (status, out, err) = jalin(&a, args);
        assert_eq!(status, 0, "{args:?}: {out}{err}");
        format!("{out}{err}")
    };
    ok(&[
        "init",
        "--name",
        "Perpustakaan Desa Kemiri",
        "--code",
        "KEMIRI",
    ]);
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cli/demo/loc-indonesia-sample.mrc");
    ok(&["import", sample.to_str().unwrap()]);
    ok(&["consortium", "create", "--name", "Jaringan Kemiri"]);
    let agreement = dir.path().join("perjanjian.md");
    std::fs::write(
        &agreement,
        "+++\ntitle = \"Perjanjian\"\nstaff_development = true\nevaluation_period_months = 1\n+++\nTeks.\n",
    )
    .expect("writes");
    ok(&["agreement", "draft", agreement.to_str().unwrap()]);
    ok(&["agreement", "sign"]);
    // Staff development.
    ok(&[
        "training",
        "add",
        "--title",
        "Katalogisasi MARC",
        "--starts",
        "2030-01-15 09:00",
        "--place",
        "Balai desa",
        "--leader",
        "Sri Wahyuni",
    ]);
    let listed = ok(&["training", "list"]);
    assert!(
        listed.contains("Katalogisasi MARC") && listed.contains("2030-01-15 09:00 WIB"),
        "{listed}"
    );
    ok(&[
        "skills",
        "set",
        "--person",
        "Sri Wahyuni=katalogisasi,MARC;0812",
    ]);
    assert!(ok(&["skills", "list"]).contains("Sri Wahyuni: katalogisasi, MARC (0812)"));
    ok(&[
        "support",
        "ask",
        "--topic",
        "SLiMS",
        "Bagaimana mengekspor?",
    ]);
    assert!(ok(&["support", "list"]).contains("[SLiMS]"));
    // The evaluation: figures, a signature with a decision, the report as files.
    let counted = ok(&[
        "evaluation",
        "figures",
        "--visits",
        "75",
        "--opening-days",
        "25",
    ]);
    assert!(counted.contains("Members reporting: 1 of 1"), "{counted}");
    assert!(counted.contains("visits 75"), "{counted}");
    let signed = ok(&[
        "evaluation",
        "sign",
        "--note",
        "Awal",
        "--decision",
        "Buka Sabtu|KEMIRI|2031-01-01",
    ]);
    assert!(
        signed.contains("signed by Perpustakaan Desa Kemiri"),
        "{signed}"
    );
    for (name, expect) in [
        ("laporan.html", "<title>Evaluasi berkala"),
        ("laporan.csv", "TOTAL,"),
        ("laporan.json", "\"kunjungan_per_hari\": 3.0"),
    ] {
        let file = dir.path().join(name);
        ok(&["evaluation", "report", "--out", file.to_str().unwrap()]);
        let text = std::fs::read_to_string(&file).expect("written");
        assert!(text.contains(expect), "{name}: {text}");
    }
    // Signed: this library's figures for the period stay as they were.
    let (status, _, err) = jalin(&a, &["evaluation", "figures", "--visits", "99"]);
    assert_ne!(status, 0);
    assert!(err.contains("signed already"), "{err}");
}
