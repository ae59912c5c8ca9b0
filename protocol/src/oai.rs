//! Reading OAI-PMH 2.0 responses, for the harvester: a list page's records (MARCXML or
//! Dublin Core), deletions, resumption token and error; and Dublin Core made into a
//! record. Damage in one record is reported with its place and the rest kept.

use crate::marc::{marcxml, DataField};
use crate::record::{first_year, Description, Name, Record, Subject};
use quick_xml::events::Event;

/// A page of a ListRecords (or ListIdentifiers) answer.
#[derive(Debug, Default)]
pub struct Page {
    /// The provider's time of answer (the next incremental harvest's `from`).
    pub response_date: Option<String>,
    /// Its records in order; each either read or why not (with its place on the page).
    pub items: Vec<Result<Item, String>>,
    /// The resumption token: `None` when the list ends here (an empty token also ends it).
    pub token: Option<String>,
    /// The OAI-PMH error the provider answered with: code and message.
    pub error: Option<(String, String)>,
}

/// One record of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Its OAI identifier.
    pub identifier: String,
    /// Its datestamp.
    pub datestamp: String,
    /// Whether the provider reports it deleted.
    pub deleted: bool,
    /// The record, for a live one.
    pub record: Option<Record>,
}

/// Why a response could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the OAI-PMH response is not readable XML at byte {position}: {reason}")]
pub struct PageError {
    /// Byte offset of the trouble.
    pub position: u64,
    /// What the XML reader said.
    pub reason: String,
}

fn local(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|b| *b == b':') {
        Some(at) => &name[at + 1..],
        None => name,
    }
}

/// The `code` attribute of an `<error>`.
fn error_code(e: &quick_xml::events::BytesStart) -> String {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == b"code")
        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
        .unwrap_or_default()
}

/// Reads a ListRecords or ListIdentifiers response.
pub fn parse_page(xml: &str) -> Result<Page, PageError> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let fail = |reader: &quick_xml::Reader<&[u8]>, e: &dyn std::fmt::Display| PageError {
        position: reader.buffer_position(),
        reason: e.to_string(),
    };
    let mut page = Page::default();
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut text = String::new();
    // The record being read: identifier, datestamp, deleted, record or its error.
    let mut current: Option<Pending> = None;
    let mut seen_root = false;
    loop {
        let before = reader.buffer_position();
        let event = reader.read_event().map_err(|e| fail(&reader, &e))?;
        match event {
            Event::Start(e) => {
                let name = local(e.name().as_ref()).to_vec();
                seen_root = true;
                if stack.last().is_some_and(|p| p == b"metadata") {
                    // The metadata's own element: read as a whole.
                    let end = reader
                        .read_to_end(e.name())
                        .map_err(|err| fail(&reader, &err))?;
                    let slice = &xml[usize::try_from(before).unwrap_or(0)
                        ..usize::try_from(reader.buffer_position()).unwrap_or(0)];
                    let _ = end;
                    let read = if name == b"record" {
                        read_marcxml(slice)
                    } else if name == b"dc" {
                        read_dc(slice)
                    } else {
                        Err(format!(
                            "metadata in {:?}, which this harvester does not read (ask for \
                             marcxml or oai_dc)",
                            String::from_utf8_lossy(&name)
                        ))
                    };
                    if let Some(current) = current.as_mut() {
                        current.record = Some(read);
                    }
                    continue;
                }
                if name == b"record"
                    || (name == b"header" && stack.last().is_some_and(|p| p == b"ListIdentifiers"))
                {
                    current = Some(Pending::default());
                }
                if name == b"header" {
                    let deleted = e.attributes().flatten().any(|a| {
                        local(a.key.as_ref()) == b"status" && a.value.as_ref() == b"deleted"
                    });
                    if let Some(current) = current.as_mut() {
                        current.deleted = deleted;
                    }
                }
                if name == b"error" {
                    page.error = Some((error_code(&e), String::new()));
                }
                stack.push(name);
                text.clear();
            }
            Event::Empty(e) => {
                seen_root = true;
                let name = local(e.name().as_ref()).to_vec();
                if name == b"resumptionToken" {
                    page.token = None;
                } else if name == b"error" {
                    page.error = Some((error_code(&e), String::new()));
                }
            }
            Event::Text(t) => {
                text.push_str(&t.unescape().map_err(|e| fail(&reader, &e))?);
            }
            Event::CData(t) => text.push_str(&String::from_utf8_lossy(&t)),
            Event::End(_) => {
                let Some(name) = stack.pop() else {
                    return Err(fail(&reader, &"an end tag with no start"));
                };
                let value = text.trim().to_string();
                match name.as_slice() {
                    b"responseDate" => page.response_date = Some(value),
                    b"resumptionToken" => {
                        page.token = (!value.is_empty()).then_some(value);
                    }
                    b"error" => {
                        if let Some(error) = page.error.as_mut() {
                            error.1 = value;
                        }
                    }
                    b"identifier" if stack.last().is_some_and(|p| p == b"header") => {
                        if let Some(current) = current.as_mut() {
                            current.identifier = Some(value);
                        }
                    }
                    b"datestamp" if stack.last().is_some_and(|p| p == b"header") => {
                        if let Some(current) = current.as_mut() {
                            current.datestamp = Some(value);
                        }
                    }
                    b"record" | b"header"
                        if name == b"record"
                            || stack.last().is_some_and(|p| p == b"ListIdentifiers") =>
                    {
                        if let Some(done) = current.take() {
                            let place = page.items.len() + 1;
                            page.items.push(item(done, place));
                        }
                    }
                    _ => {}
                }
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !seen_root {
        return Err(PageError {
            position: 0,
            reason: "the answer is empty".into(),
        });
    }
    if !stack.is_empty() {
        return Err(PageError {
            position: reader.buffer_position(),
            reason: "the answer ends before its elements close".into(),
        });
    }
    Ok(page)
}

/// A record as its elements are read.
#[derive(Default)]
struct Pending {
    identifier: Option<String>,
    datestamp: Option<String>,
    deleted: bool,
    record: Option<Result<Record, String>>,
}

fn item(pending: Pending, place: usize) -> Result<Item, String> {
    let Pending {
        identifier,
        datestamp,
        deleted,
        record,
    } = pending;
    let identifier = identifier
        .filter(|i| !i.is_empty())
        .ok_or_else(|| format!("record {place} on the page has no identifier in its header"))?;
    let datestamp = datestamp
        .filter(|d| !d.is_empty())
        .ok_or_else(|| format!("record {place} ({identifier}) has no datestamp"))?;
    let record = match (deleted, record) {
        (true, _) => None,
        (false, Some(Ok(mut record))) => {
            // The OAI identifier names the record here: it is what deletions name. The
            // source system's own number goes to 035, as union catalogs keep it.
            if let Some(own) = record
                .marc
                .control("001")
                .map(str::trim)
                .map(str::to_string)
            {
                if !own.is_empty() && own != identifier {
                    record
                        .marc
                        .push_data(DataField::new("035", ' ', ' ', &[('a', &own)]));
                }
            }
            record.marc.set_control("001", &identifier);
            Some(Record::from_marc(record.marc))
        }
        (false, Some(Err(reason))) => {
            return Err(format!("record {place} ({identifier}): {reason}"))
        }
        (false, None) => None,
    };
    Ok(Item {
        identifier,
        datestamp,
        deleted,
        record,
    })
}

fn read_marcxml(slice: &str) -> Result<Record, String> {
    match marcxml::Reader::new(slice.as_bytes()).next() {
        Some(Ok(read)) => Ok(Record::from_marc(read.record)),
        Some(Err(e)) => Err(format!("its MARCXML is damaged: {e}")),
        None => Err("its MARCXML holds no record".into()),
    }
}

/// Reads an `<oai_dc:dc>` element into a record, by the DC-to-MARC mapping of LC's
/// crosswalk read backwards: title 245, creator 100/700, subject 650, publisher and date
/// 260, language 008/041, identifier 020 when it is an ISBN, description 520.
fn read_dc(slice: &str) -> Result<Record, String> {
    let mut reader = quick_xml::Reader::from_str(slice);
    let mut elements: Vec<(String, String)> = Vec::new();
    let mut depth = 0;
    let mut current: Option<String> = None;
    let mut text = String::new();
    loop {
        match reader.read_event() {
            Err(e) => return Err(format!("its Dublin Core is damaged: {e}")),
            Ok(Event::Start(e)) => {
                depth += 1;
                if depth == 2 {
                    current = Some(String::from_utf8_lossy(local(e.name().as_ref())).into_owned());
                    text.clear();
                }
            }
            Ok(Event::Text(t)) => {
                if let Ok(t) = t.unescape() {
                    text.push_str(&t);
                }
            }
            Ok(Event::End(_)) => {
                if depth == 2 {
                    if let Some(name) = current.take() {
                        let value = text.split_whitespace().collect::<Vec<_>>().join(" ");
                        if !value.is_empty() {
                            elements.push((name, value));
                        }
                    }
                }
                depth -= 1;
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
        }
    }
    let mut d = Description::default();
    for (name, value) in elements {
        match name.as_str() {
            "title" if d.title.is_empty() => d.title = value,
            "creator" | "contributor" if !d.names.iter().any(|n| n.name == value) => {
                d.names.push(Name {
                    name: value,
                    ..Default::default()
                });
            }
            "subject" => d.subjects.push(Subject {
                heading: value,
                ..Default::default()
            }),
            "publisher" if d.publication.publisher.is_none() => {
                d.publication.publisher = Some(value)
            }
            "date" if d.year.is_none() => {
                d.year = first_year(&value);
                d.publication.date = Some(value);
            }
            "language" => {
                let code = value.to_lowercase();
                if code.len() == 3 && code.bytes().all(|b| b.is_ascii_lowercase()) {
                    d.languages.push(code);
                }
            }
            "identifier" => match crate::isbn::parse_isbn(&value) {
                Some(crate::isbn::Isbn::Valid(isbn)) => d.isbns.push(isbn),
                _ => d.notes.push(value),
            },
            "description" => d.notes.push(value),
            _ => {}
        }
    }
    if d.title.is_empty() {
        return Err("its Dublin Core has no title".into());
    }
    Ok(Record::from_description(&d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_of_dublin_core_with_a_deletion_and_a_token() {
        let xml = r#"<?xml version="1.0"?><OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">
<responseDate>2024-01-02T03:04:05Z</responseDate><ListRecords>
<record><header status="deleted"><identifier>oai:x:1</identifier><datestamp>2024-01-01</datestamp></header></record>
<record><header><identifier>oai:x:2</identifier><datestamp>2024-01-01</datestamp></header>
<metadata><oai_dc:dc xmlns:oai_dc="http://www.openarchives.org/OAI/2.0/oai_dc/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<dc:title>Bumi &amp; manusia</dc:title><dc:creator>Toer, Pramoedya Ananta</dc:creator><dc:date>1980</dc:date>
<dc:identifier>979-97312-3-2</dc:identifier><dc:language>ind</dc:language></oai_dc:dc></metadata></record>
<record><header><datestamp>2024-01-01</datestamp></header></record>
<resumptionToken cursor="0">next-1</resumptionToken></ListRecords></OAI-PMH>"#;
        let page = parse_page(xml).expect("reads");
        assert_eq!(page.response_date.as_deref(), Some("2024-01-02T03:04:05Z"));
        assert_eq!(page.token.as_deref(), Some("next-1"));
        assert_eq!(page.items.len(), 3);
        let deleted = page.items[0].as_ref().expect("read");
        assert!(deleted.deleted && deleted.record.is_none());
        let live = page.items[1].as_ref().expect("read");
        let record = live.record.as_ref().expect("a record");
        assert_eq!(record.description.title, "Bumi & manusia");
        assert_eq!(record.description.year, Some(1980));
        assert_eq!(record.id(), "oai:x:2");
        assert_eq!(record.description.isbns, vec!["9789799731234".to_string()]);
        assert!(page.items[2]
            .as_ref()
            .is_err_and(|e| e.contains("no identifier")));
    }

    #[test]
    fn marcxml_keeps_the_source_number_in_035_and_errors_are_read() {
        let xml = r#"<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"><ListRecords>
<record><header><identifier>oai:slims:7</identifier><datestamp>2024-01-01T00:00:00Z</datestamp></header>
<metadata><record xmlns="http://www.loc.gov/MARC21/slim"><leader>00000cam a2200000 a 4500</leader>
<controlfield tag="001">INLIS000007</controlfield>
<datafield tag="245" ind1="0" ind2="0"><subfield code="a">Laskar pelangi</subfield></datafield></record></metadata></record>
<resumptionToken/></ListRecords></OAI-PMH>"#;
        let page = parse_page(xml).expect("reads");
        assert_eq!(page.token, None);
        let record = page.items[0]
            .as_ref()
            .expect("read")
            .record
            .clone()
            .expect("live");
        assert_eq!(record.id(), "oai:slims:7");
        assert_eq!(
            record.marc.data_field("035").and_then(|f| f.first('a')),
            Some("INLIS000007")
        );
        let error = parse_page(
            r#"<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"><error code="badResumptionToken">expired</error></OAI-PMH>"#,
        )
        .expect("reads");
        assert_eq!(
            error.error,
            Some(("badResumptionToken".to_string(), "expired".to_string()))
        );
        assert!(parse_page("<OAI-PMH><ListRecords><record>").is_err());
        assert!(parse_page("").is_err());
    }
}
