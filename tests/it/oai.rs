//! The OAI-PMH provider over real HTTP: every verb and error against the official schema
//! (xmllint), a harvest by Sickle while the catalog changes under it, and the Perl
//! `oai_pmh` client reading every verb.

use crate::shared_data_or_skip;
use crate::support::{have_tool, start, Server};
use jalin_protocol::marc::MarcRecord;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

fn get(server: &Server, query: &str) -> String {
    let response = reqwest::blocking::get(format!("{}/oai?{query}", server.url)).expect("GET");
    assert!(
        response.status().is_success(),
        "{query}: {}",
        response.status()
    );
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .to_string();
    assert!(kind.starts_with("text/xml"), "{query}: content type {kind}");
    response.text().expect("text")
}

/// Validates a response against the official OAI-PMH schema.
fn validate(schema: &Path, xml: &str, what: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("response.xml");
    std::fs::write(&file, xml).expect("writes");
    let out = Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(schema)
        .arg(&file)
        .output()
        .expect("xmllint runs");
    assert!(
        out.status.success(),
        "{what}: the response does not validate:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        &xml[..xml.len().min(3000)]
    );
}

/// The error code of a response, if it is an error.
fn error_code(xml: &str) -> Option<&str> {
    let at = xml.find("<error code=\"")? + "<error code=\"".len();
    Some(&xml[at..at + xml[at..].find('"')?])
}

fn between<'a>(xml: &'a str, open: &str, close: &str) -> Vec<&'a str> {
    xml.split(open)
        .skip(1)
        .filter_map(|part| part.split(close).next())
        .collect()
}

fn identifiers(xml: &str) -> Vec<String> {
    between(xml, "<identifier>", "</identifier>")
        .into_iter()
        .map(str::to_string)
        .collect()
}

/// The resumption token of a list page: `Some("")` for the empty one closing a list.
fn token(xml: &str) -> Option<String> {
    let at = xml.find("<resumptionToken")?;
    let rest = &xml[at..];
    let end = rest.find('>')?;
    if rest[..end].ends_with('/') {
        return Some(String::new());
    }
    let body = &rest[end + 1..];
    Some(body[..body.find("</resumptionToken>")?].to_string())
}

fn loc_indonesia(data: &Path) -> std::path::PathBuf {
    data.join("marc/loc/loc-indonesia-3147.mrc")
}

#[test]
fn every_verb_and_every_error_validate_against_the_oai_pmh_schema() {
    let data = shared_data_or_skip!();
    if !have_tool("xmllint", &["--version"]) {
        return;
    }
    let schema = data.join("xsd/OAI-PMH.xsd");
    let server = start(Some(&loc_indonesia(&data)));
    let gone = server
        .library
        .store()
        .records()
        .next()
        .expect("a record")
        .expect("reads");
    let deletion = jalin_node::oai::datestamp(jalin_node::server::now_ms());
    server.library.delete(&gone.record_id).expect("deletes");

    let identify = get(&server, "verb=Identify");
    validate(&schema, &identify, "Identify");
    assert!(identify.contains("<deletedRecord>persistent</deletedRecord>"));
    assert!(identify.contains(&format!("<baseURL>{}/oai</baseURL>", server.url)));

    let sets = get(&server, "verb=ListSets");
    validate(&schema, &sets, "ListSets");
    let own = server.library.id().to_hex();
    assert!(
        sets.contains(&format!("<setSpec>{own}</setSpec>")),
        "{sets}"
    );
    assert!(sets.contains("Perpustakaan Uji (UJI)"), "{sets}");

    // Every page of ListIdentifiers, following the tokens; then the same with ListRecords.
    for verb in ["ListIdentifiers", "ListRecords"] {
        let mut xml = get(&server, &format!("verb={verb}&metadataPrefix=oai_dc"));
        let mut all = Vec::new();
        let mut pages = 1;
        loop {
            if pages <= 2 || token(&xml).is_none_or(|t| t.is_empty()) {
                validate(&schema, &xml, &format!("{verb} page {pages}"));
            }
            all.extend(identifiers(&xml));
            match token(&xml).filter(|t| !t.is_empty()) {
                Some(t) => {
                    xml = get(&server, &format!("verb={verb}&resumptionToken={t}"));
                    pages += 1;
                }
                None => break,
            }
        }
        assert_eq!(all.len(), 3147, "{verb}: every record, the deleted one too");
        let unique: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(unique.len(), 3147, "{verb}: no record twice");
        assert!(pages >= 10, "{verb}: {pages} pages");
        assert!(
            xml.contains("completeListSize=\"3147\""),
            "{verb}: last page"
        );
    }

    let first = identifiers(&get(&server, "verb=ListIdentifiers&metadataPrefix=oai_dc"));
    let deleted_id = jalin_node::oai::identifier(&server.library.id(), &gone.record_id);
    let live_id = first
        .iter()
        .find(|id| **id != deleted_id)
        .expect("a live record");
    for prefix in ["oai_dc", "marcxml"] {
        let record = get(
            &server,
            &format!("verb=GetRecord&metadataPrefix={prefix}&identifier={live_id}"),
        );
        validate(&schema, &record, &format!("GetRecord {prefix}"));
        assert!(record.contains("<metadata>"), "{record}");
        let marker = if prefix == "marcxml" {
            "<record xmlns=\"http://www.loc.gov/MARC21/slim\">"
        } else {
            "<dc:title>"
        };
        assert!(record.contains(marker), "{prefix}: {record}");
    }
    let deleted = get(
        &server,
        &format!("verb=GetRecord&metadataPrefix=oai_dc&identifier={deleted_id}"),
    );
    validate(&schema, &deleted, "GetRecord of a deleted record");
    assert!(deleted.contains("<header status=\"deleted\">") && !deleted.contains("<metadata>"));

    let formats = get(
        &server,
        &format!("verb=ListMetadataFormats&identifier={live_id}"),
    );
    validate(&schema, &formats, "ListMetadataFormats");
    assert!(formats.contains("<metadataPrefix>marcxml</metadataPrefix>"));

    // The same list by POST.
    let posted = reqwest::blocking::Client::new()
        .post(format!("{}/oai", server.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("verb=ListIdentifiers&metadataPrefix=marcxml")
        .send()
        .expect("POST")
        .text()
        .expect("text");
    validate(&schema, &posted, "ListIdentifiers by POST");
    assert_eq!(identifiers(&posted), first);

    // from/until select by datestamp: everything was written just now.
    let today = jalin_node::oai::datestamp(jalin_node::server::now_ms());
    let since = get(
        &server,
        &format!(
            "verb=ListIdentifiers&metadataPrefix=oai_dc&from={}",
            &today[..10]
        ),
    );
    assert_eq!(identifiers(&since), first);
    let after_deletion = get(
        &server,
        &format!("verb=ListIdentifiers&metadataPrefix=oai_dc&set={own}&from={deletion}"),
    );
    assert!(after_deletion.contains(&deleted_id), "{after_deletion}");

    let errors = [
        ("", "badVerb"),
        ("verb=Explode", "badVerb"),
        ("verb=Identify&verb=Identify", "badVerb"),
        ("verb=Identify&extra=1", "badArgument"),
        ("verb=ListRecords", "badArgument"),
        (
            "verb=ListRecords&metadataPrefix=oai_dc&metadataPrefix=oai_dc",
            "badArgument",
        ),
        (
            "verb=ListRecords&metadataPrefix=oai_dc&from=yesterday",
            "badArgument",
        ),
        (
            "verb=ListRecords&metadataPrefix=oai_dc&from=2020-01-01&until=2021-01-01T00:00:00Z",
            "badArgument",
        ),
        (
            "verb=ListRecords&metadataPrefix=oai_dc&from=2021-01-01&until=2020-01-01",
            "badArgument",
        ),
        (
            "verb=ListRecords&metadataPrefix=oai_dc&resumptionToken=x",
            "badArgument",
        ),
        ("verb=GetRecord&identifier=oai:jalin:1/2", "badArgument"),
        (
            "verb=ListRecords&resumptionToken=bm90LWEtdG9rZW4",
            "badResumptionToken",
        ),
        ("verb=ListSets&resumptionToken=abc", "badResumptionToken"),
        (
            "verb=ListRecords&metadataPrefix=oai_marc",
            "cannotDisseminateFormat",
        ),
        (
            "verb=GetRecord&metadataPrefix=mods&identifier=oai:jalin:1/2",
            "cannotDisseminateFormat",
        ),
        (
            "verb=GetRecord&metadataPrefix=oai_dc&identifier=oai:jalin:1/2",
            "idDoesNotExist",
        ),
        (
            "verb=ListMetadataFormats&identifier=urn:isbn:123",
            "idDoesNotExist",
        ),
        (
            "verb=ListRecords&metadataPrefix=oai_dc&from=2090-01-01",
            "noRecordsMatch",
        ),
        (
            "verb=ListIdentifiers&metadataPrefix=oai_dc&until=1999-01-01",
            "noRecordsMatch",
        ),
        (
            "verb=ListRecords&metadataPrefix=oai_dc&set=nosuchset",
            "noRecordsMatch",
        ),
    ];
    for (query, code) in errors {
        let xml = get(&server, query);
        validate(&schema, &xml, query);
        assert_eq!(error_code(&xml), Some(code), "{query}: {xml}");
    }
    // The only error this repository has no case for: it has sets and formats for every
    // record, so noSetHierarchy and noMetadataFormats never apply.
}

/// Sickle harvests every record through the resumption tokens, while records are added and
/// deleted ahead of and behind its cursor: no record twice, none that was there lost.
#[test]
fn sickle_harvests_every_record_while_the_catalog_changes() {
    let data = shared_data_or_skip!();
    if !have_tool("python3", &["-c", "import sickle"]) {
        return;
    }
    let server = start(Some(&loc_indonesia(&data)));
    let ids = server.own_ids();
    assert_eq!(ids.len(), 3147);
    let script = r#"
import json, sys
from sickle import Sickle
class Counting(Sickle):
    pages = 0
    def harvest(self, **kwargs):
        Counting.pages += 1
        return super().harvest(**kwargs)
s = Counting(sys.argv[1], max_retries=0)
seen = []
for record in s.ListRecords(metadataPrefix="oai_dc", ignore_deleted=False):
    seen.append([record.header.identifier, record.header.deleted])
    if len(seen) == 1000:
        print("paused", flush=True)
        sys.stdin.readline()
print(json.dumps({"pages": Counting.pages, "records": seen}), flush=True)
"#;
    let mut child = Command::new("python3")
        .args(["-c", script, &format!("{}/oai", server.url)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("reads");
    assert_eq!(line.trim(), "paused", "{line}");

    // Mid-harvest: 3 records behind the cursor and 3 ahead deleted; 2 added ahead.
    let behind = &ids[..3];
    let ahead = &ids[ids.len() - 3..];
    for id in behind.iter().chain(ahead) {
        server.library.delete(id).expect("deletes");
    }
    let template = {
        let stored = server
            .library
            .store()
            .get(&ids[10])
            .expect("reads")
            .expect("held");
        jalin_node::library::decode(&stored).expect("decodes").marc
    };
    let added = ["zzz-added-1", "zzz-added-2"];
    for id in added {
        let mut marc: MarcRecord = template.clone();
        marc.set_control("001", id);
        server.library.put(marc).expect("adds");
    }
    writeln!(child.stdin.as_mut().expect("stdin")).expect("writes");
    line.clear();
    out.read_line(&mut line).expect("reads");
    assert!(child.wait().expect("exits").success());
    let result: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    let pages = result["pages"].as_u64().expect("pages");
    assert!(pages >= 10, "{pages} pages");
    let own = server.library.id();
    let id_of = |record_id: &str| jalin_node::oai::identifier(&own, record_id);
    let mut live = std::collections::BTreeSet::new();
    let mut gone = std::collections::BTreeSet::new();
    let mut all = std::collections::HashSet::new();
    for pair in result["records"].as_array().expect("records") {
        let identifier = pair[0].as_str().expect("identifier").to_string();
        assert!(all.insert(identifier.clone()), "{identifier} given twice");
        if pair[1].as_bool().expect("deleted flag") {
            gone.insert(identifier);
        } else {
            live.insert(identifier);
        }
    }
    let expected_gone: std::collections::BTreeSet<String> =
        ahead.iter().map(|id| id_of(id)).collect();
    assert_eq!(
        gone, expected_gone,
        "the records deleted ahead of the cursor, as deleted"
    );
    let expected_live: std::collections::BTreeSet<String> = ids[..ids.len() - 3]
        .iter()
        .map(|id| id_of(id))
        .chain(added.iter().map(|id| id_of(id)))
        .collect();
    assert_eq!(live.len(), expected_live.len());
    assert_eq!(
        live, expected_live,
        "every other record once, the added ones too"
    );
}

/// The Perl `oai_pmh` client (HTTP::OAI, an independent implementation) reads every verb.
#[test]
fn the_perl_oai_pmh_client_reads_every_verb() {
    let data = shared_data_or_skip!();
    if !have_tool("perl", &["-MHTTP::OAI", "-e", "1"]) {
        return;
    }
    let server = start(Some(&data.join("marc/loc/loc-indonesia-3147.mrc")));
    let url = format!("{}/oai", server.url);
    let first = identifiers(&get(&server, "verb=ListIdentifiers&metadataPrefix=oai_dc"))[0].clone();
    let run = |args: &[&str]| -> (String, String) {
        let out = Command::new("oai_pmh")
            .args(args)
            .arg(&url)
            .output()
            .expect("oai_pmh runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let errors = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "oai_pmh {args:?}: {errors}");
        (text, errors)
    };
    // oai_pmh prints records and formats, and only checks Identify (it fails on an error);
    // its ListSets fails on any repository (it treats sets as records), so those two are
    // read through its library, HTTP::OAI.
    run(&["-X", "Identify"]);
    let perl = r#"
use HTTP::OAI;
my $h = HTTP::OAI::Harvester->new(baseURL => $ARGV[0]);
my $id = $h->Identify;
die $id->message unless $id->is_success;
print "name: ", $id->repositoryName, "\n", "deleted: ", $id->deletedRecord, "\n";
my $sets = $h->ListSets;
die $sets->message unless $sets->is_success;
while (my $set = $sets->next) { print "set: ", $set->setSpec, " ", $set->setName, "\n"; }
"#;
    let out = Command::new("perl")
        .args(["-e", perl, &url])
        .output()
        .expect("perl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("name: Perpustakaan Uji: Jalin union catalog"),
        "{text}"
    );
    assert!(text.contains("deleted: persistent"), "{text}");
    let own = server.library.id().to_hex();
    assert!(
        text.contains(&format!("set: {own} Perpustakaan Uji (UJI)")),
        "{text}"
    );
    let (formats, _) = run(&["-X", "ListMetadataFormats"]);
    assert!(
        formats.contains("marcxml") && formats.contains("oai_dc"),
        "{formats}"
    );
    let (record, _) = run(&[
        "-X",
        "GetRecord",
        "--metadataPrefix",
        "oai_dc",
        "--identifier",
        &first,
    ]);
    assert!(record.contains(&first), "{record}");
    let (listed, _) = run(&["-X", "ListIdentifiers", "--metadataPrefix", "oai_dc"]);
    assert_eq!(
        listed.matches("oai:jalin:").count(),
        3147,
        "{}",
        &listed[..listed.len().min(2000)]
    );
    let (records, _) = run(&["-X", "ListRecords", "--metadataPrefix", "marcxml"]);
    assert!(
        records.matches("oai:jalin:").count() >= 3147,
        "{}",
        &records[..records.len().min(2000)]
    );
}

/// A node holding another library's catalog serves it too: a set per library, the
/// other's records by GetRecord, and SRU finds and gives them.
#[test]
fn the_union_catalog_is_served_with_a_set_per_library() {
    let data = shared_data_or_skip!();
    let server = start(Some(&loc_indonesia(&data)));
    let (_other_dir, other_data) = crate::support::new_library(1000);
    let other = jalin_node::library::Library::open(other_data).expect("opens");
    other
        .import(
            &jalin_node::library::Source::File(data.join("marc/loc/loc-books-10k.mrc")),
            &jalin_node::library::ImportOptions::default(),
            |_| {},
        )
        .expect("imports");
    let theirs = other.store().library();
    crate::support::replicate(&other, &server.library);

    let sets = get(&server, "verb=ListSets");
    assert_eq!(sets.matches("<setSpec>").count(), 2, "{sets}");
    assert!(sets.contains(&format!("<setSpec>{}</setSpec>", theirs.to_hex())));
    let mut count = 0;
    let mut xml = get(
        &server,
        &format!(
            "verb=ListIdentifiers&metadataPrefix=oai_dc&set={}",
            theirs.to_hex()
        ),
    );
    loop {
        let ids = identifiers(&xml);
        assert!(ids
            .iter()
            .all(|id| id.starts_with(&format!("oai:jalin:{}/", theirs.to_hex()))));
        count += ids.len();
        match token(&xml).filter(|t| !t.is_empty()) {
            Some(t) => {
                xml = get(
                    &server,
                    &format!("verb=ListIdentifiers&resumptionToken={t}"),
                )
            }
            None => break,
        }
    }
    assert_eq!(count, 10_000, "every record of the other library's set");

    let one = other
        .store()
        .records()
        .next()
        .expect("a record")
        .expect("reads");
    let id = jalin_node::oai::identifier(&theirs, &one.record_id);
    let record = get(
        &server,
        &format!("verb=GetRecord&metadataPrefix=marcxml&identifier={id}"),
    );
    assert!(
        record.contains(&format!("<identifier>{id}</identifier>")),
        "{record}"
    );
    assert!(record.contains("<metadata>"), "{record}");

    // SRU over the union: a word only the other library's records hold.
    let sru = reqwest::blocking::get(format!(
        "{}/sru?version=1.2&operation=searchRetrieve&query=dc.subject%3Dhomeopathy&recordSchema=dc&maximumRecords=1",
        server.url
    ))
    .expect("GET")
    .text()
    .expect("text");
    let expected = other
        .search("subject:homeopathy", 1, 1)
        .expect("searches")
        .total;
    assert!(expected > 0);
    assert!(
        sru.contains(&format!(
            "<zs:numberOfRecords>{expected}</zs:numberOfRecords>"
        )),
        "{sru}"
    );
    assert!(
        sru.contains("<title xmlns=\"http://purl.org/dc/elements/1.1/\">"),
        "{sru}"
    );
}
