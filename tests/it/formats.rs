//! Reading and writing catalog files, against the real records and other projects'
//! fixtures in the shared data.

use crate::shared_data_or_skip;
use crate::support::{have_tool, jalin_binary, workspace_root};
use jalin_node::files;
use jalin_protocol::format::{Format, RecordReader};
use jalin_protocol::marc::{iso2709, marcxml, Charset, Field, MarcRecord};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::Command;

fn read_marc(
    path: &Path,
    charset: Option<Charset>,
) -> (Vec<iso2709::ReadRecord>, Vec<iso2709::ReadError>) {
    let file = File::open(path).expect("the fixture opens");
    let mut records = Vec::new();
    let mut errors = Vec::new();
    for item in
        iso2709::Reader::with_options(BufReader::new(file), iso2709::ReadOptions { charset })
    {
        match item {
            Ok(record) => records.push(record),
            Err(error) => errors.push(error),
        }
    }
    (records, errors)
}

fn read_marcxml(path: &Path) -> Vec<Result<marcxml::XmlRecord, marcxml::XmlReadError>> {
    marcxml::Reader::new(BufReader::new(File::open(path).expect("the fixture opens"))).collect()
}

/// Every MARC or MARCXML file under `marc/`.
fn marc_files(data: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("readable dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("mrc" | "marc" | "dat" | "xml")
            ) {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&data.join("marc"), &mut out);
    out.sort();
    out
}

#[test]
fn library_of_congress_files_read_with_no_error() {
    let data = shared_data_or_skip!();
    for (name, expected) in [
        ("loc-indonesia-3147.mrc", 3147),
        ("loc-books-10k.mrc", 10_000),
    ] {
        let (records, errors) = read_marc(&data.join("marc/loc").join(name), None);
        assert!(errors.is_empty(), "{name}: {errors:?}");
        assert_eq!(records.len(), expected, "{name}");
        let with_warnings: Vec<_> = records
            .iter()
            .filter(|r| !r.warnings.is_empty())
            .map(|r| (r.position, &r.warnings))
            .collect();
        assert!(with_warnings.is_empty(), "{name}: {with_warnings:?}");
        assert!(records
            .iter()
            .all(|r| !r.record.fields.is_empty() && r.charset == Charset::Utf8));
    }
}

/// Files where Jalin's counts differ from pymarc 5.4.0's, with Jalin's (ok, damaged) and
/// why. Everything else must match pymarc exactly.
const DIFFERENCES_FROM_PYMARC: &[(&str, (u64, u64), &str)] = &[
    ("edge/marc4j/185258.mrc", (1, 0), "pymarc fails on the 99,999-byte record; Jalin reads it"),
    ("edge/marc4j/bad_hathi_records.mrc", (5, 0), "two records over 99,999 bytes: Jalin finds their ends and directories"),
    ("edge/marc4j/bad_too_long_plus_2.mrc", (3, 0), "leader length off by 100,000: Jalin reads to the record terminator"),
    ("edge/marc4j/incomplete_esc_seq.mrc", (1, 0), "a cut MARC-8 escape: Jalin keeps the record and counts unmapped bytes"),
    ("edge/pymarc/bad_indicator.dat", (1, 0), "pymarc also reports the trailing newline as a damaged record; Jalin skips it"),
    ("edge/pymarc/testunimarc.dat", (1, 0), "pymarc reports the trailing newline as a damaged record; Jalin skips it"),
    ("edge/yaz/marc0.json.marc", (1, 0), "pymarc fails on the three-byte indicator of 092; Jalin keeps two and warns"),
    ("edge/yaz/marc0.marc", (1, 0), "as marc0.json.marc"),
    ("edge/yaz/marc0.xml.marc", (1, 0), "as marc0.json.marc"),
    ("edge/yaz/marc12.json.marc", (1, 0), "pymarc fails to decode it as MARC-8; Jalin maps what it can and warns"),
    ("edge/yaz/marc4.xml", (0, 1), "a <record> with no fields: Jalin reports it damaged, pymarc returns an empty record"),
    ("edge/yaz/marc5.marc", (1, 0), "pymarc fails on it; Jalin reads it"),
    ("edge/yaz/tmarc0.xml.marc", (1, 0), "as marc0.marc"),
    ("edge/yaz/xml2marc0.xml.marc", (1, 0), "as marc0.marc"),
    ("edge/yaz/xml2marc4.xml", (0, 1), "as marc4.xml"),
    ("edge/yaz/xml2tmarc0.xml.marc", (1, 0), "as marc0.marc"),
    ("edge/pymarc/bad_records.mrc", (5, 4), "three records whose base address is wrong are repaired from where the directory really ends, with a warning"),
    ("evergreen/oss.marc", (42, 0), "a leader byte that is not ASCII: pymarc drops the record, Jalin blanks the byte and warns"),
];

#[test]
fn record_counts_match_pymarc() {
    let data = shared_data_or_skip!();
    if !have_tool(
        "python3",
        &[
            "-c",
            "import importlib.metadata as m; assert m.version('pymarc') == '5.4.0'",
        ],
    ) {
        return;
    }
    let files = marc_files(&data);
    let output = Command::new("python3")
        .arg(workspace_root().join("tools/pymarc_counts.py"))
        .args(&files)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "pymarc_counts.py: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut pymarc: BTreeMap<PathBuf, (u64, u64)> = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let value: serde_json::Value = serde_json::from_str(line).expect("one JSON object a line");
        let counts = (
            value["ok"].as_u64().expect("ok"),
            value["bad"].as_u64().expect("bad"),
        );
        pymarc.insert(PathBuf::from(value["path"].as_str().expect("path")), counts);
    }
    assert_eq!(pymarc.len(), files.len());
    let mut mismatches = Vec::new();
    for path in &files {
        let format = files::detect_format(path, None).expect("format");
        let report = files::inspect(path, format, None).expect("opens");
        let jalin = (report.records, report.errors.len() as u64);
        let relative = path
            .strip_prefix(data.join("marc"))
            .expect("under marc/")
            .to_string_lossy()
            .into_owned();
        let expected = match DIFFERENCES_FROM_PYMARC
            .iter()
            .find(|(name, _, _)| *name == relative)
        {
            Some((_, counts, _)) => *counts,
            None => pymarc[path],
        };
        if jalin != expected {
            mismatches.push(format!(
                "{relative}: jalin {jalin:?}, expected {expected:?}, pymarc {:?}",
                pymarc[path]
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "counts differ:\n{}",
        mismatches.join("\n")
    );
    assert!(
        files.len() > 150,
        "all of marc/ was compared: {}",
        files.len()
    );
}

/// Fields as (tag, indicators, subfields) with text compared in NFC, since YAZ leaves
/// MARC-8 diacritics decomposed and Jalin composes them.
fn comparable(record: &MarcRecord) -> Vec<String> {
    record
        .fields
        .iter()
        .map(|field| match field {
            Field::Control(c) => format!(
                "{} {}",
                c.tag,
                nfc(&lc_two_part_diacritics_as_yaz(&c.value))
            ),
            Field::Data(d) => {
                let subfields: Vec<String> = d
                    .subfields
                    .iter()
                    .map(|s| {
                        format!(
                            "${}{}",
                            s.code,
                            nfc(&lc_two_part_diacritics_as_yaz(&s.value))
                        )
                    })
                    .collect();
                format!("{} {}{} {}", d.tag, d.ind1, d.ind2, subfields.join(""))
            }
        })
        .collect()
}

fn nfc(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    text.nfc().collect()
}

/// YAZ and the Library of Congress code table disagree on ANSEL's two-part diacritics:
/// LC (and pymarc, and Jalin) map the ligature and double tilde halves 0xEB/0xEC and
/// 0xFA/0xFB to U+FE20-U+FE23; YAZ maps the first halves to U+0361/U+0360 and drops the
/// second halves.
///
/// Jalin also marks a character with no mapping with U+FFFD (and warns); YAZ drops it.
fn lc_two_part_diacritics_as_yaz(text: &str) -> String {
    text.chars()
        .filter_map(|c| match c {
            '\u{FFFD}' => None,
            '\u{FE20}' => Some('\u{0361}'),
            '\u{FE22}' => Some('\u{0360}'),
            '\u{FE21}' | '\u{FE23}' => None,
            c => Some(c),
        })
        .collect()
}

#[test]
fn yaz_suite_marcxml_matches_yaz() {
    let data = shared_data_or_skip!();
    let dir = data.join("marc/edge/yaz");
    let mut compared = 0;
    for n in 0..=12 {
        let chr = std::fs::read_to_string(dir.join(format!("marc{n}.chr"))).expect("charset file");
        let charset = Charset::from_name(&chr)
            .unwrap_or_else(|| panic!("marc{n}.chr names a charset Jalin reads: {chr:?}"));
        let (ours, errors) = read_marc(&dir.join(format!("marc{n}.marc")), Some(charset));
        let theirs = read_marcxml(&dir.join(format!("marc{n}.xml")));
        if n == 4 {
            // YAZ's marc4.xml is an empty <record> with comments on why: the ISO 2709
            // record is damaged beyond reading. Jalin reports it, with its position.
            assert!(ours.is_empty() && errors.len() == 1, "marc4: {errors:?}");
            continue;
        }
        assert!(errors.is_empty(), "marc{n}: {errors:?}");
        assert_eq!(ours.len(), theirs.len(), "marc{n}: record count");
        for (mine, yaz) in ours.iter().zip(&theirs) {
            let yaz = yaz.as_ref().expect("YAZ's MARCXML reads");
            // Write ours as MARCXML and read it back, so the comparison goes through the
            // writer too.
            let xml = marcxml::to_collection([&mine.record]);
            let again = marcxml::Reader::new(xml.as_bytes())
                .next()
                .expect("one record")
                .expect("reads");
            // Jalin writes 10-11 as "22" and 20-23 as "4500", the structure it writes (and the
            // only values MARC21slim.xsd accepts); YAZ copies whatever the input had.
            let structural = |l: &str| {
                l.char_indices()
                    .filter(|(i, _)| !matches!(i, 10 | 11 | 20..=23))
                    .map(|(_, c)| c)
                    .collect::<String>()
            };
            assert_eq!(
                structural(again.record.leader.as_str()),
                structural(yaz.record.leader.as_str()),
                "marc{n}: leader"
            );
            let (a, b) = (comparable(&again.record), comparable(&yaz.record));
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(x, y, "marc{n} ({charset})");
            }
            assert_eq!(a.len(), b.len(), "marc{n}: field count");
            compared += 1;
        }
    }
    assert_eq!(compared, 12);
}

#[test]
fn marc8_line_pairs_convert_to_the_expected_utf8() {
    let data = shared_data_or_skip!();
    let marc8 = std::fs::read(data.join("marc/marc8/test_marc8.txt")).expect("pairs");
    let utf8 = std::fs::read_to_string(data.join("marc/marc8/test_utf8.txt")).expect("pairs");
    let marc8_lines: Vec<&[u8]> = marc8.split(|&b| b == b'\n').collect();
    let utf8_lines: Vec<&str> = utf8.split('\n').collect();
    assert_eq!(marc8_lines.len(), utf8_lines.len());
    let mut failures = Vec::new();
    let mut checked = 0;
    for (i, (m, u)) in marc8_lines.iter().zip(&utf8_lines).enumerate() {
        if m.is_empty() && u.is_empty() {
            continue;
        }
        checked += 1;
        let decoded = jalin_protocol::marc::marc8::decode(m);
        if decoded.text != nfc(u) {
            failures.push(format!(
                "line {}: got {:?}, expected {:?}",
                i + 1,
                decoded.text,
                u
            ));
        }
    }
    assert_eq!(checked, 1515);
    assert!(
        failures.is_empty(),
        "{} of {checked} pairs differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn damaged_files_report_every_bad_record_and_keep_every_good_one() {
    let data = shared_data_or_skip!();
    let errors_file = data.join("marc/edge/marc4j/pride-and-prejudice-with-many-errors.mrc");
    let (good, bad) = read_marc(&errors_file, None);
    assert_eq!((good.len(), bad.len()), (298, 85));
    // Each bad record is named by its number and byte offset, in file order.
    for pair in bad.windows(2) {
        assert!(
            pair[0].position.record < pair[1].position.record
                && pair[0].position.offset < pair[1].position.offset
        );
    }
    assert!(bad.iter().all(|e| e.to_string().starts_with(&format!(
        "record {} (byte offset {})",
        e.position.record, e.position.offset
    ))));
    // Every good record is one of the fixed file's records (by control number).
    let (fixed, fixed_errors) = read_marc(
        &data.join("marc/edge/marc4j/pride-and-prejudice-fixed.mrc"),
        None,
    );
    assert!(fixed_errors.is_empty());
    let key = |r: &MarcRecord| r.control("001").map(str::to_string);
    let fixed_keys: std::collections::HashSet<_> = fixed.iter().map(|r| key(&r.record)).collect();
    let kept = good
        .iter()
        .filter(|r| fixed_keys.contains(&key(&r.record)))
        .count();
    assert_eq!(
        kept,
        good.len(),
        "every record read from the damaged file is one of the intact records"
    );

    let (good, bad) = read_marc(&data.join("marc/edge/pymarc/bad_records.mrc"), None);
    assert_eq!((good.len(), bad.len()), (5, 4));
    assert_eq!(
        good.iter().filter(|r| !r.warnings.is_empty()).count(),
        3,
        "the repaired records say so"
    );

    // No file under marc4j/ or pymarc/ panics the reader, in any charset.
    for dir in ["marc/edge/marc4j", "marc/edge/pymarc"] {
        for entry in std::fs::read_dir(data.join(dir)).expect("dir").flatten() {
            for charset in [
                None,
                Some(Charset::Marc8),
                Some(Charset::Latin1),
                Some(Charset::Danmarc),
                Some(Charset::Utf8),
            ] {
                let _ = read_marc(&entry.path(), charset);
            }
            let _ = read_marcxml(&entry.path());
        }
    }
}

#[test]
fn utf8_data_under_a_marc8_leader_is_detected() {
    let data = shared_data_or_skip!();
    let (records, errors) = read_marc(&data.join("marc/evergreen/FSL.marc"), None);
    assert!(errors.is_empty());
    assert_eq!(records.len(), 52);
    let utf8 = records
        .iter()
        .filter(|r| r.charset == Charset::Utf8)
        .count();
    assert!(
        utf8 > 0,
        "some FSL records hold UTF-8 under a MARC-8 leader"
    );
    assert!(records
        .iter()
        .filter(|r| r.charset == Charset::Utf8)
        .all(|r| r.warnings.iter().any(|w| w.message.contains("UTF-8"))));
    // And real MARC-8 is still read as MARC-8.
    let (jazz, _) = read_marc(&data.join("marc/evergreen/jazz_1k.mrc"), None);
    assert!(jazz.iter().all(|r| r.charset == Charset::Marc8));
}

#[test]
fn library_of_congress_records_survive_marc_and_marcxml_round_trips() {
    let data = shared_data_or_skip!();
    let (records, _) = read_marc(&data.join("marc/loc/loc-indonesia-3147.mrc"), None);
    let original = std::fs::read(data.join("marc/loc/loc-indonesia-3147.mrc")).expect("file");
    let mut written = Vec::new();
    for read in &records {
        written.extend(iso2709::write_record(&read.record).expect("LC records fit ISO 2709"));
    }
    // UTF-8 in, UTF-8 out: the bytes themselves come back.
    assert_eq!(written.len(), original.len());
    assert!(
        written == original,
        "writing the records back gives the file byte for byte"
    );
    let xml = marcxml::to_collection(records.iter().map(|r| &r.record));
    let back: Vec<_> = marcxml::Reader::new(xml.as_bytes())
        .map(|r| r.expect("our MARCXML reads").record)
        .collect();
    assert_eq!(back.len(), records.len());
    for (a, b) in records.iter().zip(&back) {
        assert_eq!(&xml_safe(&a.record), b);
    }
}

/// What MARCXML can carry of a record: XML 1.0 has no C0 control characters, so a stray
/// subfield delimiter in a control field (LC's data has a few) is written as U+FFFD.
fn xml_safe(record: &MarcRecord) -> MarcRecord {
    let safe = |text: &str| {
        text.chars()
            .map(|c| {
                if c.is_control() && !matches!(c, '\t' | '\n' | '\r') {
                    '\u{FFFD}'
                } else {
                    c
                }
            })
            .collect::<String>()
    };
    let mut record = record.clone();
    for field in &mut record.fields {
        match field {
            Field::Control(c) => c.value = safe(&c.value),
            Field::Data(d) => d
                .subfields
                .iter_mut()
                .for_each(|s| s.value = safe(&s.value)),
        }
    }
    record
}

#[test]
fn marcxml_output_validates_against_the_marc21_slim_schema() {
    let data = shared_data_or_skip!();
    if !have_tool("xmllint", &["--version"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, charset) in [
        ("loc/loc-indonesia-3147.mrc", None),
        ("evergreen/jazz_1k.mrc", None),
        ("edge/yaz/marc10.marc", Some(Charset::Danmarc)),
    ] {
        let (records, _) = read_marc(&data.join("marc").join(name), charset);
        let out = dir.path().join("out.xml");
        std::fs::write(
            &out,
            marcxml::to_collection(records.iter().map(|r| &r.record)),
        )
        .expect("write");
        let lint = Command::new("xmllint")
            .args(["--noout", "--schema"])
            .arg(data.join("xsd/MARC21slim.xsd"))
            .arg(&out)
            .output()
            .expect("xmllint runs");
        assert!(
            lint.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&lint.stderr)
        );
    }
}

#[test]
fn cli_inspect_names_damaged_records_and_exits_1() {
    let data = shared_data_or_skip!();
    let output = Command::new(jalin_binary())
        .args(["inspect", "--limit", "0"])
        .arg(data.join("marc/edge/pymarc/bad_records.mrc"))
        .arg(data.join("marc/loc/loc-indonesia-3147.mrc"))
        .output()
        .expect("jalin runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("records:   5\n") && stdout.contains("damaged:   4\n"),
        "{stdout}"
    );
    assert!(stdout.contains("records:   3147\n"), "{stdout}");
    assert_eq!(stdout.matches("  error:   record ").count(), 4, "{stdout}");
    assert_eq!(stdout.matches("  warning: record ").count(), 3, "{stdout}");
    assert!(stdout.contains("(byte offset "), "{stdout}");

    let clean = Command::new(jalin_binary())
        .arg("inspect")
        .arg(data.join("marc/loc/loc-indonesia-3147.mrc"))
        .output()
        .expect("jalin runs");
    assert_eq!(clean.status.code(), Some(0));
}

#[test]
fn cli_convert_between_every_format() {
    let data = shared_data_or_skip!();
    let dir = tempfile::tempdir().expect("temp dir");
    let input = data.join("marc/loc/loc-indonesia-3147.mrc");
    let convert = |from: &Path, to: &Path, extra: &[&str]| {
        let output = Command::new(jalin_binary())
            .arg("convert")
            .arg(from)
            .arg(to)
            .args(extra)
            .output()
            .expect("jalin runs");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let xml = dir.path().join("out.xml");
    let (code, stderr) = convert(&input, &xml, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("3147 record(s) written as marcxml"),
        "{stderr}"
    );
    // A file of nothing but damage: nothing is written, and the exit code says so.
    let junk = dir.path().join("junk.mrc");
    std::fs::write(&junk, b"00042 this is no MARC record at all\x1d").expect("writes");
    let (code, stderr) = convert(&junk, &dir.path().join("junk.xml"), &["--from", "marc"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("0 record(s) written"), "{stderr}");
    assert!(stderr.contains("rejected: "), "{stderr}");
    let marc = dir.path().join("back.mrc");
    assert_eq!(convert(&xml, &marc, &[]).0, Some(0));
    let (original, _) = read_marc(&input, None);
    let (back, errors) = read_marc(&marc, None);
    assert!(errors.is_empty());
    assert_eq!(back.len(), original.len());
    for (a, b) in original.iter().zip(&back) {
        assert_eq!(
            xml_safe(&a.record).fields,
            b.record.fields,
            "MARC -> MARCXML -> MARC keeps every field"
        );
        assert_eq!(
            a.record.leader.as_str()[5..12],
            b.record.leader.as_str()[5..12]
        );
    }

    let slims = dir.path().join("slims.csv");
    assert_eq!(convert(&input, &slims, &["--to", "slims-csv"]).0, Some(0));
    let from_slims: Vec<_> = files::open_records(&slims, Format::SlimsCsv, None)
        .expect("opens")
        .collect();
    let from_marc: Vec<_> = RecordReader::new(
        BufReader::new(File::open(&input).expect("opens")),
        Format::Marc,
        None,
    )
    .collect();
    assert_eq!(from_slims.len(), 3147);
    for (a, b) in from_slims.iter().zip(&from_marc) {
        let (a, b) = (
            &a.as_ref().expect("row reads").record.description,
            &b.as_ref().expect("record reads").record.description,
        );
        assert_eq!(a.title, b.title);
        assert_eq!(a.isbns.first(), b.isbns.first());
        assert_eq!(
            a.names.first().map(|n| &n.name),
            b.names.first().map(|n| &n.name)
        );
        assert_eq!(a.year, b.year);
    }
    let csv = dir.path().join("generic.csv");
    assert_eq!(convert(&input, &csv, &[]).0, Some(0));
    let from_csv: Vec<_> = files::open_records(
        &csv,
        files::detect_format(&csv, None).expect("format"),
        None,
    )
    .expect("opens")
    .collect();
    assert_eq!(from_csv.len(), 3147);
    assert!(from_csv
        .iter()
        .zip(&from_marc)
        .all(|(a, b)| a.as_ref().expect("row").record.id()
            == b.as_ref().expect("record").record.id()));

    let dc = dir.path().join("out.dc");
    assert_eq!(convert(&input, &dc, &[]).0, Some(0));
    let dc_text = std::fs::read_to_string(&dc).expect("written");
    assert_eq!(dc_text.matches("<oai_dc:dc ").count(), 3147);
    assert!(dc_text.contains("<dc:language>ind</dc:language>"));

    // Strict: the first damaged record stops the conversion and no file is left.
    let strict_out = dir.path().join("strict.xml");
    let (code, stderr) = convert(
        &data.join("marc/edge/pymarc/bad_records.mrc"),
        &strict_out,
        &["--strict"],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("record 1 (byte offset 0)") || stderr.contains("byte offset"),
        "{stderr}"
    );
    assert!(!strict_out.exists());
    // Lenient: the good records are written, the bad ones listed, and the exit code says
    // some were left out.
    let (code, stderr) = convert(
        &data.join("marc/edge/pymarc/bad_records.mrc"),
        &strict_out,
        &[],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("5 record(s) written") && stderr.matches("rejected: record").count() == 4,
        "{stderr}"
    );
}

#[test]
fn dublin_core_follows_the_crosswalk() {
    let data = shared_data_or_skip!();
    let (records, _) = read_marc(&data.join("marc/loc/loc-indonesia-3147.mrc"), None);
    let record = &records[0].record;
    let elements = jalin_protocol::dc::elements(record);
    let title = record
        .data_field("245")
        .expect("LC records have 245")
        .joined("abfgknps");
    assert!(
        elements
            .iter()
            .any(|e| e.name == "title" && title.starts_with(&e.value)),
        "{elements:?}"
    );
    assert!(elements
        .iter()
        .any(|e| e.name == "type" && e.value == "Text"));
    let language = &record.control("008").expect("008")[35..38];
    assert!(elements
        .iter()
        .any(|e| e.name == "language" && e.value == language));
}
