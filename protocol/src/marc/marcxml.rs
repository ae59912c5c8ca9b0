//! MARCXML (the MARC21slim schema): a streaming reader and a writer.
//!
//! The reader matches elements by local name, so `marc:record`, a default namespace and
//! no namespace at all read alike. Each item it yields is a record or an error naming the
//! record's number and byte offset; a damaged record does not stop the file.

use super::{
    is_control_tag, ControlField, DataField, Field, Leader, MarcRecord, Subfield, Warning,
};
use crate::xml::{escape_attr, escape_text};
use quick_xml::events::{BytesStart, Event};
use std::io::BufRead;

/// The MARC21slim namespace.
pub const NAMESPACE: &str = "http://www.loc.gov/MARC21/slim";

/// Where in the file a record starts.
pub use super::iso2709::Position;

/// Why a MARCXML record could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum XmlRecordError {
    /// The XML itself is broken here; reading stops.
    #[error("XML is not well-formed: {reason}")]
    Syntax {
        /// What the XML parser said.
        reason: String,
    },
    /// A field element without its `tag` attribute.
    #[error("<{element}> without a tag attribute")]
    MissingTag {
        /// `controlfield` or `datafield`.
        element: String,
    },
    /// A `<subfield>` without its `code` attribute.
    #[error("field {tag}: <subfield> without a code attribute")]
    MissingCode {
        /// The field's tag.
        tag: String,
    },
    /// A tag that is not three printable ASCII characters.
    #[error("tag {tag:?} is not three printable ASCII characters")]
    BadTag {
        /// The tag.
        tag: String,
    },
    /// A record with no fields.
    #[error("record has no fields")]
    NoFields,
}

/// A record read from MARCXML, with what the reader repaired.
#[derive(Debug, Clone)]
pub struct XmlRecord {
    /// The record.
    pub record: MarcRecord,
    /// Where it started.
    pub position: Position,
    /// What was repaired.
    pub warnings: Vec<Warning>,
}

/// A MARCXML record that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{position}: {error}")]
pub struct XmlReadError {
    /// Where it started.
    pub position: Position,
    /// Why.
    pub error: XmlRecordError,
}

/// Reads MARCXML records one at a time.
pub struct Reader<R> {
    xml: quick_xml::Reader<R>,
    buffer: Vec<u8>,
    record_number: u64,
    done: bool,
}

impl<R: BufRead> Reader<R> {
    /// A reader over MARCXML (a `<collection>` or a single `<record>`).
    pub fn new(inner: R) -> Self {
        let mut xml = quick_xml::Reader::from_reader(inner);
        xml.config_mut().trim_text(false);
        Reader {
            xml,
            buffer: Vec::new(),
            record_number: 0,
            done: false,
        }
    }

    fn byte_offset(&self) -> u64 {
        self.xml.buffer_position()
    }

    fn syntax_error(&mut self, position: Position, error: impl std::fmt::Display) -> XmlReadError {
        self.done = true;
        XmlReadError {
            position,
            error: XmlRecordError::Syntax {
                reason: error.to_string(),
            },
        }
    }

    fn next_record(&mut self) -> Option<Result<XmlRecord, XmlReadError>> {
        if self.done {
            return None;
        }
        // Find the next <record>.
        let start_offset = loop {
            let before = self.byte_offset();
            self.buffer.clear();
            match self.xml.read_event_into(&mut self.buffer) {
                Ok(Event::Start(e)) if e.local_name().as_ref() == b"record" => break before,
                Ok(Event::Empty(e)) if e.local_name().as_ref() == b"record" => {
                    self.record_number += 1;
                    let position = Position {
                        record: self.record_number,
                        offset: before,
                    };
                    return Some(Err(XmlReadError {
                        position,
                        error: XmlRecordError::NoFields,
                    }));
                }
                Ok(Event::Eof) => {
                    self.done = true;
                    return None;
                }
                Ok(_) => {}
                Err(error) => {
                    let position = Position {
                        record: self.record_number + 1,
                        offset: before,
                    };
                    return Some(Err(self.syntax_error(position, error)));
                }
            }
        };
        self.record_number += 1;
        let position = Position {
            record: self.record_number,
            offset: start_offset,
        };
        Some(self.read_record_body(position))
    }

    fn read_record_body(&mut self, position: Position) -> Result<XmlRecord, XmlReadError> {
        let mut state = RecordState::default();
        loop {
            self.buffer.clear();
            let event = match self.xml.read_event_into(&mut self.buffer) {
                Ok(event) => event.into_owned(),
                Err(e) => return Err(self.syntax_error(position, e)),
            };
            match event {
                Event::Start(e) => state.start(&e, false),
                Event::Empty(e) => state.start(&e, true),
                Event::Text(text) => match text.unescape() {
                    Ok(text) => state.text(&text),
                    Err(e) => return Err(self.syntax_error(position, e)),
                },
                Event::CData(data) => state.text(&String::from_utf8_lossy(&data)),
                Event::End(e) => {
                    if e.local_name().as_ref() == b"record" {
                        break;
                    }
                    state.end(e.local_name().as_ref());
                }
                Event::Eof => {
                    return Err(self.syntax_error(position, "file ends inside a <record>"))
                }
                _ => {}
            }
        }
        state.finish(position)
    }
}

/// The element whose text is being collected.
#[derive(Default)]
enum Open {
    #[default]
    Nothing,
    Leader(String),
    Control(String, String),
    Subfield(char, String),
}

/// What has been read of one `<record>` so far.
#[derive(Default)]
struct RecordState {
    leader: Option<String>,
    fields: Vec<Field>,
    warnings: Vec<Warning>,
    error: Option<XmlRecordError>,
    open: Open,
    current: Option<DataField>,
}

impl RecordState {
    fn start(&mut self, e: &BytesStart<'_>, empty: bool) {
        if self.error.is_some() {
            return;
        }
        match e.local_name().as_ref() {
            b"leader" => self.open = Open::Leader(String::new()),
            b"controlfield" => match attr(e, b"tag") {
                Some(tag) => self.open = Open::Control(tag, String::new()),
                None => {
                    self.error = Some(XmlRecordError::MissingTag {
                        element: "controlfield".into(),
                    })
                }
            },
            b"datafield" => match attr(e, b"tag") {
                Some(tag) => {
                    let indicator =
                        |name: &[u8]| attr(e, name).and_then(|v| v.chars().next()).unwrap_or(' ');
                    self.current = Some(DataField {
                        tag,
                        ind1: indicator(b"ind1"),
                        ind2: indicator(b"ind2"),
                        subfields: Vec::new(),
                    });
                }
                None => {
                    self.error = Some(XmlRecordError::MissingTag {
                        element: "datafield".into(),
                    })
                }
            },
            b"subfield" => match attr(e, b"code").and_then(|c| c.chars().next()) {
                Some(code) => self.open = Open::Subfield(code, String::new()),
                None => {
                    let tag = self
                        .current
                        .as_ref()
                        .map(|f| f.tag.clone())
                        .unwrap_or_default();
                    self.error = Some(XmlRecordError::MissingCode { tag });
                }
            },
            _ => return,
        }
        if empty {
            self.end(e.local_name().as_ref());
        }
    }

    fn text(&mut self, text: &str) {
        match &mut self.open {
            Open::Leader(value) | Open::Control(_, value) | Open::Subfield(_, value) => {
                value.push_str(text)
            }
            Open::Nothing => {}
        }
    }

    fn end(&mut self, name: &[u8]) {
        match (name, std::mem::take(&mut self.open)) {
            (b"leader", Open::Leader(text)) => self.leader = Some(text),
            (b"controlfield", Open::Control(tag, value)) => {
                if is_control_tag(&tag) {
                    self.fields
                        .push(Field::Control(ControlField { tag, value }));
                } else {
                    self.warnings.push(Warning {
                        tag: Some(tag.clone()),
                        message:
                            "controlfield with a data field's tag; kept as a data field with $a"
                                .into(),
                    });
                    self.fields.push(Field::Data(DataField {
                        tag,
                        ind1: ' ',
                        ind2: ' ',
                        subfields: vec![Subfield { code: 'a', value }],
                    }));
                }
            }
            (b"subfield", Open::Subfield(code, value)) => {
                if let Some(field) = self.current.as_mut() {
                    field.subfields.push(Subfield { code, value });
                }
            }
            (b"datafield", _) => {
                if let Some(field) = self.current.take() {
                    self.fields.push(Field::Data(field));
                }
            }
            (_, open) => self.open = open,
        }
    }

    fn finish(mut self, position: Position) -> Result<XmlRecord, XmlReadError> {
        let fail = |error| Err(XmlReadError { position, error });
        if let Some(error) = self.error {
            return fail(error);
        }
        if let Some(bad) = self
            .fields
            .iter()
            .find(|f| !super::iso2709::valid_tag(f.tag()))
        {
            return fail(XmlRecordError::BadTag {
                tag: bad.tag().to_string(),
            });
        }
        if self.fields.is_empty() {
            return fail(XmlRecordError::NoFields);
        }
        let leader = match self.leader {
            Some(text) => {
                let (leader, changed) = Leader::from_text(&text);
                if changed {
                    self.warnings.push(Warning {
                        tag: None,
                        message: format!("leader {text:?} is not 24 ASCII characters; padded"),
                    });
                }
                leader
            }
            None => {
                self.warnings.push(Warning {
                    tag: None,
                    message: "no <leader>; a default one was made".into(),
                });
                Leader::new_book()
            }
        };
        Ok(XmlRecord {
            record: MarcRecord {
                leader,
                fields: self.fields,
            },
            position,
            warnings: self.warnings,
        })
    }
}

fn attr(element: &BytesStart<'_>, name: &[u8]) -> Option<String> {
    element
        .attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name)
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Result<XmlRecord, XmlReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record()
    }
}

/// Writes the opening of a MARCXML collection.
pub fn collection_start() -> &'static str {
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<collection xmlns=\"http://www.loc.gov/MARC21/slim\">\n"
}

/// Writes the end of a MARCXML collection.
pub fn collection_end() -> &'static str {
    "</collection>\n"
}

/// One `<record>` element (without the XML declaration), in the MARC21slim namespace when
/// `namespaced` (a record standing alone), or bare inside a `<collection>`.
pub fn record_to_xml(record: &MarcRecord, namespaced: bool) -> String {
    let mut out = String::with_capacity(1024);
    if namespaced {
        out.push_str("<record xmlns=\"http://www.loc.gov/MARC21/slim\">\n");
    } else {
        out.push_str("<record>\n");
    }
    out.push_str("  <leader>");
    let mut leader = record.leader.clone();
    leader.normalize_structure();
    escape_text(&mut out, leader.as_str());
    out.push_str("</leader>\n");
    for field in super::iso2709::ordered_fields(record) {
        match field {
            Field::Control(control) => {
                out.push_str("  <controlfield tag=\"");
                escape_attr(&mut out, &control.tag);
                out.push_str("\">");
                escape_text(&mut out, &control.value);
                out.push_str("</controlfield>\n");
            }
            Field::Data(data) => {
                out.push_str("  <datafield tag=\"");
                escape_attr(&mut out, &data.tag);
                out.push_str("\" ind1=\"");
                escape_attr(&mut out, data.ind1.encode_utf8(&mut [0; 4]));
                out.push_str("\" ind2=\"");
                escape_attr(&mut out, data.ind2.encode_utf8(&mut [0; 4]));
                out.push_str("\">\n");
                for subfield in &data.subfields {
                    out.push_str("    <subfield code=\"");
                    escape_attr(&mut out, subfield.code.encode_utf8(&mut [0; 4]));
                    out.push_str("\">");
                    escape_text(&mut out, &subfield.value);
                    out.push_str("</subfield>\n");
                }
                out.push_str("  </datafield>\n");
            }
        }
    }
    out.push_str("</record>\n");
    out
}

/// A whole MARCXML document holding these records.
pub fn to_collection<'a>(records: impl IntoIterator<Item = &'a MarcRecord>) -> String {
    let mut out = String::from(collection_start());
    for record in records {
        out.push_str(&record_to_xml(record, false));
    }
    out.push_str(collection_end());
    out
}
