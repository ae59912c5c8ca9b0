//! Property tests: encodings are identities on what they can carry.

use jalin_protocol::marc::{
    iso2709, marcxml, ControlField, DataField, Field, Leader, MarcRecord, Subfield,
};
use jalin_protocol::record::{
    Classification, Description, Holding, Identifier, Name, NameKind, Publication, Record, Subject,
};
use proptest::prelude::*;

fn leader() -> impl Strategy<Value = Leader> {
    "[0-9a-z ]{5}[acdnp][a-z][a-z ][ a]a22[0-9]{5}[ 1-8][ a-z][ a-z]4500"
        .prop_map(|text| Leader::from_text(&text).0)
}

/// Any text a MARC value can hold: no C0 controls (the delimiters among them).
fn value() -> impl Strategy<Value = String> {
    "[^\\x00-\\x1F\\x7F\\u{FFFE}\\u{FFFF}]{0,24}"
}

fn field() -> impl Strategy<Value = Field> {
    prop_oneof![
        ("00[1-9]", value()).prop_map(|(tag, value)| Field::Control(ControlField { tag, value })),
        (
            "(0[1-9][0-9]|[1-9][0-9]{2}|[A-Z]{3})",
            "[ 0-9a-z]",
            "[ 0-9a-z]",
            prop::collection::vec(("[a-z0-9]", value()), 0..6),
        )
            .prop_map(|(tag, ind1, ind2, subfields)| Field::Data(DataField {
                tag,
                ind1: ind1.chars().next().unwrap_or(' '),
                ind2: ind2.chars().next().unwrap_or(' '),
                subfields: subfields
                    .into_iter()
                    .map(|(code, value)| Subfield {
                        code: code.chars().next().unwrap_or('a'),
                        value
                    })
                    .collect(),
            })),
    ]
}

fn marc_record() -> impl Strategy<Value = MarcRecord> {
    // Control fields first, as MARC21 (and MARCXML's schema) orders them.
    (leader(), prop::collection::vec(field(), 1..20)).prop_map(|(leader, mut fields)| {
        fields.sort_by_key(|f| !matches!(f, Field::Control(_)));
        MarcRecord { leader, fields }
    })
}

/// ISO 2709 computes the record length (0-4), the base address (12-16) and sets UTF-8
/// (09): the rest of the leader and every field must come back as they were.
fn without_computed_leader_positions(record: &MarcRecord) -> (String, &[Field]) {
    let leader: String = record
        .leader
        .as_str()
        .char_indices()
        .filter(|(i, _)| !matches!(i, 0..=4 | 9..=16 | 20..=23))
        .map(|(_, c)| c)
        .collect();
    (leader, &record.fields)
}

fn clean_text() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9 ]{0,18}[A-Za-z0-9]"
}

fn isbn13() -> impl Strategy<Value = String> {
    "97[89][0-9]{9}".prop_map(|first12| {
        let sum: u32 = first12
            .chars()
            .enumerate()
            .map(|(i, c)| c.to_digit(10).unwrap_or(0) * if i % 2 == 0 { 1 } else { 3 })
            .sum();
        format!("{first12}{}", (10 - sum % 10) % 10)
    })
}

fn issn() -> impl Strategy<Value = String> {
    "[0-9]{7}".prop_map(|first7| {
        let sum: u32 = first7
            .chars()
            .enumerate()
            .map(|(i, c)| c.to_digit(10).unwrap_or(0) * (8 - i as u32))
            .sum();
        let check = (11 - sum % 11) % 11;
        let check = if check == 10 {
            'X'
        } else {
            char::from_digit(check, 10).unwrap_or('0')
        };
        format!("{}-{}{check}", &first7[..4], &first7[4..])
    })
}

fn unique(values: Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

prop_compose! {
    fn name()(name in clean_text(), dates in proptest::option::of("[0-9]{4}-[0-9]{4}"), role in proptest::option::of("[a-z]{3,10}"),
              kind in prop_oneof![Just(NameKind::Personal), Just(NameKind::Corporate), Just(NameKind::Meeting)]) -> Name {
        Name { name, dates, role, kind, main: false }
    }
}

prop_compose! {
    fn holding()(item_id in "[A-Z0-9]{3,10}", location in proptest::option::of(clean_text()), call_number in proptest::option::of(clean_text()),
                 status in proptest::option::of("(available|on loan|lost)")) -> Holding {
        Holding { item_id: Some(item_id), location, call_number, status }
    }
}

prop_compose! {
    fn subject()(parts in prop::collection::vec(clean_text(), 1..4), vocabulary in proptest::option::of("(lcsh|mesh|rvm|[a-z]{4,8})")) -> Subject {
        Subject { heading: parts.join(" -- "), vocabulary }
    }
}

prop_compose! {
    fn description()(
        id in "[a-z0-9]{1,12}", source in proptest::option::of("[A-Za-z]{2,6}"), lccn in proptest::option::of("[0-9]{6,10}"),
        other_ids in prop::collection::vec(("[A-Za-z]{0,6}", "[0-9]{1,10}"), 0..3),
        isbns in prop::collection::vec(isbn13(), 0..3), invalid_isbns in prop::collection::vec("[0-9]{5,8}", 0..2),
        issns in prop::collection::vec(issn(), 0..2),
        title in clean_text(), subtitle in proptest::option::of(clean_text()), responsibility in proptest::option::of(clean_text()),
        edition in proptest::option::of(clean_text()),
        publication in (proptest::option::of(clean_text()), proptest::option::of(clean_text()), proptest::option::of(clean_text())),
        year in proptest::option::of(1000i32..2999), physical in proptest::option::of(clean_text()),
        series in prop::collection::vec(clean_text(), 0..3), notes in prop::collection::vec(clean_text(), 0..3),
        subjects in prop::collection::vec(subject(), 0..4),
        classes in (prop::collection::vec("[0-9]{3}\\.[0-9]{1,3}", 0..2), prop::collection::vec("[A-Z]{1,2}[0-9]{1,4}", 0..2)),
        call_number in proptest::option::of(clean_text()), languages in prop::collection::vec("[a-z]{3}", 0..3),
        names in prop::collection::vec(name(), 0..4), first_is_main in any::<bool>(),
        holdings in prop::collection::vec(holding(), 0..3), deleted in any::<bool>(),
    ) -> Description {
        let mut names = names;
        if let Some(first) = names.first_mut() {
            first.main = first_is_main;
        }
        let mut d = Description {
            record_id: id.clone(), control_number: Some(id), control_number_source: source, lccn,
            other_ids: other_ids.into_iter().map(|(scheme, value)| Identifier { scheme, value }).collect(),
            isbns: unique(isbns), invalid_isbns: unique(invalid_isbns), issns: unique(issns),
            title, subtitle, responsibility, edition,
            publication: Publication { place: publication.0, publisher: publication.1, date: publication.2 },
            year, physical_description: physical, series: unique(series), notes, subjects,
            classification: Classification { ddc: classes.0, lcc: classes.1 },
            call_number, languages: unique(languages), names, holdings, deleted,
        };
        // What from_marc derives when 008 has no year: the first year in the date (260 $c).
        if d.year.is_none() {
            d.year = d.publication.date.as_deref().and_then(jalin_protocol::record::first_year);
        }
        // What from_marc derives when no call number is given.
        if d.call_number.is_none() {
            d.call_number = d.holdings.iter().find_map(|h| h.call_number.clone()).or_else(|| d.classification.lcc.first().cloned());
        }
        d
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn marc_record_survives_iso2709(record in marc_record()) {
        let bytes = iso2709::write_record(&record).expect("generated records fit");
        let mut reader = iso2709::Reader::new(&bytes[..]);
        let read = reader.next().expect("one record").expect("reads");
        prop_assert!(reader.next().is_none());
        prop_assert!(read.warnings.is_empty(), "{:?}", read.warnings);
        prop_assert_eq!(without_computed_leader_positions(&read.record), without_computed_leader_positions(&record));
    }

    #[test]
    fn marc_record_survives_marcxml(record in marc_record()) {
        let xml = marcxml::to_collection([&record]);
        let read: Vec<_> = marcxml::Reader::new(xml.as_bytes()).collect();
        prop_assert_eq!(read.len(), 1);
        let read = read.into_iter().next().expect("one").expect("reads");
        prop_assert!(read.warnings.is_empty(), "{:?}", read.warnings);
        prop_assert_eq!(read.record, record);
    }

    #[test]
    fn record_survives_marc_and_marcxml(marc in marc_record()) {
        let record = Record::from_marc(marc);
        let bytes = iso2709::write_record(&record.marc).expect("fits");
        let from_iso = Record::from_marc(iso2709::Reader::new(&bytes[..]).next().expect("one").expect("reads").record);
        prop_assert_eq!(&from_iso.description, &record.description);
        let xml = marcxml::to_collection([&record.marc]);
        let from_xml = Record::from_marc(marcxml::Reader::new(xml.as_bytes()).next().expect("one").expect("reads").record);
        prop_assert_eq!(from_xml, record);
    }

    #[test]
    fn description_survives_the_marc_crosswalk(description in description()) {
        let record = Record::from_description(&description);
        prop_assert_eq!(&record.description, &description);
        let bytes = iso2709::write_record(&record.marc).expect("fits");
        let back = Record::from_marc(iso2709::Reader::new(&bytes[..]).next().expect("one").expect("reads").record);
        prop_assert_eq!(back.description, description);
    }
}
