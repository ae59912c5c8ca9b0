//! Building the collections together. Purchase plans (rencana pengadaan) between
//! members: refused without coordinated acquisition in the agreement in force; a title
//! held by a partner or planned by one is flagged (on both sides when planned twice); a
//! plan reads "bought" once the record is in its member's catalog, on every member's
//! node. The conspectus: each member's signed collecting levels beside its catalog.

use crate::ill::{libraries, the_same_book};
use jalin_node::clock::ManualClock;
use jalin_node::library::Library;
use jalin_node::plans::{self, PlanInput};
use jalin_protocol::marc::{DataField, Leader, MarcRecord};
use jalin_tests::fixtures::{replicate, share_documents, T};
use std::sync::Arc;

type Members = Vec<(Arc<Library>, Arc<ManualClock>, tempfile::TempDir)>;

fn members(libraries: &Members) -> Vec<&Library> {
    libraries.iter().map(|(l, _, _)| l.as_ref()).collect()
}

/// A new agreement with these terms, drafted at `at` and signed by every member (the
/// newest in force stands).
fn agree_at(libraries: &Members, terms: &str, at: u64) {
    let all = members(libraries);
    let founder = all[0];
    let id = founder.consortia().list()[0].id;
    let file = format!(
        "+++\ntitle = \"Perjanjian Pengadaan Bersama\"\n{terms}\n+++\n\
         Para pihak saling memberi tahu rencana pengadaan.\n"
    );
    let agreement = founder.consortia().draft(&id, &file, at).expect("drafts");
    share_documents(&all);
    for library in &all {
        library
            .consortia()
            .sign(&id, &agreement, None, at + 1)
            .expect("signs");
    }
    share_documents(&all);
}

fn title(title: &str, author: &str) -> PlanInput {
    PlanInput {
        title: title.into(),
        author: Some(author.into()),
        ..PlanInput::default()
    }
}

fn bumi_manusia(library: &Library) -> String {
    let mut marc = MarcRecord::new(Leader::new_book());
    marc.push_control("001", "BM1980");
    marc.push_data(DataField::new(
        "100",
        '1',
        ' ',
        &[('a', "Toer, Pramoedya Ananta")],
    ));
    marc.push_data(DataField::new("245", '1', '0', &[('a', "Bumi manusia")]));
    marc.push_data(DataField::new("264", ' ', '1', &[('c', "1980")]));
    library.put(marc).expect("writes")
}

#[test]
fn plans_are_flagged_against_holdings_and_partners_plans_and_become_bought() {
    let libraries = libraries(&["SMP1", "SDN2", "SMA3"]);
    let all = members(&libraries);
    let (a, b, c) = (all[0], all[1], all[2]);
    // An agreement in force without coordinated acquisition: no plans.
    agree_at(&libraries, "interlibrary_loan = true", T + 1_000);
    let refused =
        plans::add(b, &title("Bumi manusia", "Pramoedya Ananta Toer"), false).expect_err("refused");
    assert_eq!(refused.code(), "no_coordinated_acquisition", "{refused}");
    assert!(plans::list(b).expect("lists").is_empty());

    agree_at(
        &libraries,
        "interlibrary_loan = true\ncoordinated_acquisition = true",
        T + 10_000,
    );
    // A holds Laskar pelangi; B, planning it by ISBN or by title and author, is told so
    // with A's holding, and nothing is added unless B confirms.
    the_same_book(&libraries, &[0]);
    for input in [
        PlanInput {
            title: "Laskar pelangi".into(),
            isbn: Some("978-979-3062-79-2".into()),
            ..PlanInput::default()
        },
        title("LASKAR PELANGI", "Andrea Hirata"),
    ] {
        let (item, flags) = plans::add(b, &input, false).expect("checks");
        assert!(item.is_none(), "a held title is not added unasked");
        assert_eq!(flags.len(), 1, "{flags:#?}");
        let held = &flags[0];
        assert_eq!(held.kind, "held");
        assert_eq!(held.library, a.id().to_hex());
        assert_eq!(held.library_name, "Perpustakaan SMP1 (SMP1)");
        assert!(held.record_id.is_some());
    }
    // Not the same title: another author.
    let (item, flags) =
        plans::add(b, &title("Laskar pelangi", "Toer, Pramoedya"), false).expect("adds");
    assert!(flags.is_empty(), "{flags:#?}");
    plans::remove(b, &item.expect("added")).expect("withdraws");

    // Planned twice: flagged on both sides.
    let (b_item, flags) =
        plans::add(b, &title("Bumi manusia", "Pramoedya Ananta Toer"), false).expect("adds");
    assert!(flags.is_empty(), "{flags:#?}");
    let b_item = b_item.expect("added");
    share_documents(&all);
    let (none, flags) =
        plans::add(c, &title("Bumi Manusia", "Toer, Pramoedya Ananta"), false).expect("checks");
    assert!(none.is_none());
    assert_eq!(flags.len(), 1, "{flags:#?}");
    assert_eq!(
        (flags[0].kind.as_str(), flags[0].library.as_str()),
        ("planned", b.id().to_hex().as_str())
    );
    assert_eq!(flags[0].item.as_deref(), Some(b_item.as_str()));
    let (c_item, _) = plans::add(c, &title("Bumi Manusia", "Toer, Pramoedya Ananta"), true)
        .expect("adds when confirmed");
    let c_item = c_item.expect("added");
    share_documents(&all);
    for (library, other, item) in [(b, c, &b_item), (c, b, &c_item)] {
        let listed = plans::list(library).expect("lists");
        let own = listed
            .iter()
            .find(|p| p.own && p.item == *item)
            .expect("its own plan");
        assert!(
            own.flags
                .iter()
                .any(|f| f.kind == "planned" && f.library == other.id().to_hex()),
            "{own:#?}"
        );
        assert!(own.bought.is_none());
    }
    // Every member sees both plans.
    let at_a = plans::list(a).expect("lists");
    assert_eq!(at_a.len(), 2, "{at_a:#?}");

    // B's record arrives: B's plan reads bought, at B and, once replicated, at A and C;
    // C's plan is now flagged as held by B.
    let record = bumi_manusia(b);
    replicate(b, a);
    replicate(b, c);
    for library in &all {
        let listed = plans::list(library).expect("lists");
        let b_plan = listed.iter().find(|p| p.item == b_item).expect("B's plan");
        assert_eq!(b_plan.bought.as_deref(), Some(record.as_str()));
        let c_plan = listed.iter().find(|p| p.item == c_item).expect("C's plan");
        assert!(c_plan.bought.is_none());
        assert!(
            c_plan
                .flags
                .iter()
                .any(|f| f.kind == "held" && f.library == b.id().to_hex()),
            "{c_plan:#?}"
        );
    }

    // Withdrawn: gone from every list once shared.
    plans::remove(c, &c_item).expect("withdraws");
    share_documents(&all);
    for library in &all {
        let listed = plans::list(library).expect("lists");
        assert!(listed.iter().all(|p| p.item != c_item), "{listed:#?}");
    }
    // Another library's item cannot be withdrawn.
    let error = plans::remove(c, &b_item).expect_err("not C's");
    assert_eq!(error.code(), "plan_no_such_item");
}

#[test]
fn a_list_of_titles_is_read_from_marc_csv_or_plain_lines() {
    let libraries = libraries(&["SMP1", "SDN2"]);
    agree_at(&libraries, "coordinated_acquisition = true", T + 1_000);
    let a = &libraries[0].0;
    // Plain lines: an ISBN, a title with its author, a bad ISBN.
    let answer = plans::import(
        a,
        b"# daftar usulan 2027\n9789793062792\nBumi manusia / Toer, Pramoedya Ananta\n\n979-3062-79-3\n",
    )
    .expect("imports");
    assert_eq!(answer.added.len(), 2, "{answer:#?}");
    assert_eq!(answer.refused.len(), 1, "{answer:#?}");
    assert_eq!(answer.refused[0].0, 5);
    assert!(answer.refused[0].1.contains("not a valid ISBN"));
    // The same title twice in one list (one millisecond on this clock), and a title
    // with a control character: all planned, each its own item.
    let answer = plans::import(
        a,
        b"Edensor / Andrea Hirata
Edensor / Andrea Hirata
Sang \x07pemimpi
",
    )
    .expect("imports");
    assert_eq!(answer.added.len(), 3, "{answer:#?}");
    let listed = plans::list(a).expect("lists");
    assert!(
        listed.iter().any(|p| p.title == "Sang pemimpi"),
        "{listed:#?}"
    );
    // MARC: each record a title.
    let sample = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../cli/demo/loc-indonesia-sample.mrc"),
    )
    .expect("reads the sample");
    let records = jalin_protocol::format::RecordReader::new(
        std::io::Cursor::new(&sample),
        jalin_protocol::format::Format::Marc,
        None,
    )
    .count();
    let answer = plans::import(a, &sample).expect("imports");
    assert_eq!(answer.added.len(), records, "{:?}", answer.refused);
    // SLiMS CSV.
    let csv = "title,gmd_name,edition,isbn_issn,publisher_name,publish_year,collation,series_title,call_number,language_name,place_name,classification,notes,image,sor,authors,topics,item_code\n\
        \"Ronggeng dukuh paruk\",Text,,,Gramedia,1982,,,,Indonesia,Jakarta,,,,,<Ahmad Tohari>,,\n";
    let answer = plans::import(a, csv.as_bytes()).expect("imports");
    assert_eq!(answer.added.len(), 1, "{answer:#?}");
    let listed = plans::list(a).expect("lists");
    assert_eq!(listed.len(), 2 + 3 + records + 1);
    assert!(listed
        .iter()
        .any(|p| p.title == "Ronggeng dukuh paruk" && p.author.as_deref() == Some("Ahmad Tohari")));
    // Not a list at all.
    let error = plans::import(a, &vec![b'x'; plans::IMPORT_BYTES_MAX + 1]).expect_err("too big");
    assert_eq!(error.code(), "plan_bad_file");
}

#[test]
fn a_members_conspectus_is_signed_shared_and_shown_beside_its_catalog() {
    use jalin_node::conspectus::{parse_level, set, view};
    let libraries = libraries(&["SMP1", "SDN2"]);
    let all = members(&libraries);
    let (a, b) = (all[0], all[1]);
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cli/demo/loc-indonesia-sample.mrc");
    a.import(
        &jalin_node::library::Source::File(sample),
        &jalin_node::library::ImportOptions::default(),
        |_| {},
    )
    .expect("imports");
    replicate(a, b);
    let levels = vec![
        parse_level("900=3/4").expect("reads"),
        parse_level("600=1/3").expect("reads"),
    ];
    assert!(parse_level("650=1/1").is_ok(), "read, refused when signed");
    assert!(parse_level("600=6/1").is_err());
    assert!(parse_level("600=2").is_err());
    assert_eq!(set(a, levels).expect("states"), 1);
    let error = set(a, vec![parse_level("650=1/1").expect("reads")]).expect_err("no such");
    assert!(error.to_string().contains("not a division"), "{error}");
    share_documents(&all);
    // At B: A's levels beside A's catalog; B states nothing yet.
    let report = b.collection_overlap().expect("overlap");
    let shown = view(b, &report).expect("view");
    assert_eq!(shown.len(), 2);
    assert!(shown[0].own && shown[0].stated_ms.is_none());
    let at_a = shown
        .iter()
        .find(|m| m.library == a.id().to_hex())
        .expect("A");
    let history = at_a
        .divisions
        .iter()
        .find(|d| d.division == "900")
        .expect("900");
    assert_eq!((history.current, history.commitment), (Some(3), Some(4)));
    let expected = report
        .libraries
        .iter()
        .find(|l| l.library == a.id().to_hex())
        .and_then(|l| l.by_division.get("900"))
        .map(|s| s.total())
        .expect("A's history titles");
    assert!(expected > 0);
    assert_eq!(history.titles, expected);
    let science = at_a
        .divisions
        .iter()
        .find(|d| d.division == "500")
        .expect("500");
    assert_eq!((science.current, science.commitment), (None, None));
    // A newer statement replaces the old one everywhere.
    libraries[0].1.advance(60_000);
    set(a, vec![parse_level("900=2/2").expect("reads")]).expect("states");
    share_documents(&all);
    let shown = view(b, &b.collection_overlap().expect("overlap")).expect("view");
    let at_a = shown.iter().find(|m| !m.own).expect("A");
    assert_eq!(at_a.divisions[9].current, Some(2));
    assert_eq!(at_a.divisions[6].current, None, "600 no longer stated");
}
