//! The formats Jalin reads and writes, how to tell them apart, and one reader and one
//! writer over all of them.

use crate::csv::{self as jcsv, Layout};
use crate::marc::{iso2709, marcxml, Charset, Warning};
use crate::record::Record;
use std::io::{BufRead, Write};

/// A catalog file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// MARC21 ISO 2709 (`.mrc`, `.marc`, `.dat`).
    Marc,
    /// MARCXML (`.xml`).
    Marcxml,
    /// Generic CSV with a header row naming the fields (`.csv`).
    Csv,
    /// SLiMS's 18-column bibliographic CSV.
    SlimsCsv,
    /// Dublin Core, oai_dc XML (written only).
    Dc,
}

impl Format {
    /// All formats, for help texts.
    pub const ALL: [Format; 5] = [
        Format::Marc,
        Format::Marcxml,
        Format::Csv,
        Format::SlimsCsv,
        Format::Dc,
    ];

    /// The name used on the command line and in the API.
    pub fn name(self) -> &'static str {
        match self {
            Format::Marc => "marc",
            Format::Marcxml => "marcxml",
            Format::Csv => "csv",
            Format::SlimsCsv => "slims-csv",
            Format::Dc => "dc",
        }
    }

    /// Parses a format name (`marc`, `mrc`, `iso2709`, `marcxml`, `xml`, `csv`,
    /// `slims-csv`, `slims`, `dc`, `oai_dc`).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "marc" | "mrc" | "iso2709" | "marc21" => Format::Marc,
            "marcxml" | "xml" => Format::Marcxml,
            "csv" => Format::Csv,
            "slims-csv" | "slims" | "slims_csv" => Format::SlimsCsv,
            "dc" | "oai_dc" | "oai-dc" | "dublin-core" => Format::Dc,
            _ => return None,
        })
    }

    /// The format a file name's extension suggests.
    pub fn from_extension(path: &str) -> Option<Self> {
        let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
        Some(match ext.as_str() {
            "mrc" | "marc" | "dat" | "iso" | "iso2709" | "out" => Format::Marc,
            "xml" | "marcxml" => Format::Marcxml,
            "csv" | "tsv" => Format::Csv,
            "dc" => Format::Dc,
            _ => return None,
        })
    }

    /// Guesses the format from a file's first bytes: `<` is XML, five digits are MARC,
    /// SLiMS's header is SLiMS CSV, anything else is CSV.
    pub fn sniff(head: &[u8]) -> Self {
        let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
        let trimmed: &[u8] = {
            let start = head
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .unwrap_or(head.len());
            &head[start..]
        };
        if trimmed.first() == Some(&b'<') {
            return Format::Marcxml;
        }
        if head.len() >= 5 && head[..5].iter().all(u8::is_ascii_digit) {
            return Format::Marc;
        }
        let first_line =
            String::from_utf8_lossy(head.split(|&b| b == b'\n').next().unwrap_or_default())
                .into_owned();
        if jcsv::is_slims_header(&first_line) {
            Format::SlimsCsv
        } else {
            Format::Csv
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a record or row was in its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Location {
    /// 1-based record number (MARC, MARCXML) or line number (CSV).
    pub number: u64,
    /// Byte offset in the file.
    pub offset: u64,
    /// Whether `number` is a line (CSV) rather than a record number.
    pub is_line: bool,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = if self.is_line { "line" } else { "record" };
        write!(f, "{unit} {} (byte offset {})", self.number, self.offset)
    }
}

/// Why a record could not be read, by format.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    /// ISO 2709.
    #[error(transparent)]
    Marc(#[from] iso2709::RecordError),
    /// MARCXML.
    #[error(transparent)]
    Xml(#[from] marcxml::XmlRecordError),
    /// CSV.
    #[error(transparent)]
    Csv(#[from] jcsv::RowError),
    /// Dublin Core is written, not read.
    #[error("Dublin Core is an output format; Jalin does not read it")]
    WriteOnly,
}

impl ParseErrorKind {
    /// What kind of damage this is, as a stable name (an import report's `code`; the web
    /// interface explains each in the librarian's language).
    pub fn code(&self) -> &'static str {
        use iso2709::RecordError as M;
        use jcsv::RowError as C;
        use marcxml::XmlRecordError as X;
        match self {
            ParseErrorKind::Marc(M::Truncated { .. }) => "marc_truncated",
            ParseErrorKind::Marc(M::NoTerminator) => "marc_no_end",
            ParseErrorKind::Marc(
                M::BadLength { .. }
                | M::BadBaseAddress { .. }
                | M::BadDirectoryLength { .. }
                | M::BadDirectoryEntry { .. },
            ) => "marc_structure",
            ParseErrorKind::Marc(M::NoFields) | ParseErrorKind::Xml(X::NoFields) => "no_fields",
            ParseErrorKind::Marc(M::Decode { .. }) => "bad_characters",
            ParseErrorKind::Xml(X::Syntax { .. }) => "xml_syntax",
            ParseErrorKind::Xml(
                X::MissingTag { .. } | X::MissingCode { .. } | X::BadTag { .. },
            ) => "xml_structure",
            ParseErrorKind::Csv(C::Syntax { .. }) => "csv_syntax",
            ParseErrorKind::Csv(C::NoTitle) => "no_title",
            ParseErrorKind::Csv(C::UnknownHeader) => "csv_header",
            ParseErrorKind::WriteOnly => "write_only",
        }
    }
}

/// A record that could not be read: where, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {kind}")]
pub struct ParseError {
    /// Where.
    pub location: Location,
    /// Why.
    pub kind: ParseErrorKind,
}

/// A record read from a file.
#[derive(Clone, Debug)]
pub struct Parsed {
    /// The record.
    pub record: Record,
    /// Where it was.
    pub location: Location,
    /// The charset it was decoded from (ISO 2709 only).
    pub charset: Option<Charset>,
    /// What the reader repaired.
    pub warnings: Vec<Warning>,
}

/// Reads records of any format Jalin reads.
pub enum RecordReader<R: BufRead> {
    /// ISO 2709.
    Marc(iso2709::Reader<R>),
    /// MARCXML.
    Marcxml(marcxml::Reader<R>),
    /// CSV of either layout.
    Csv(jcsv::Reader<R>),
    /// A format that cannot be read: yields one error.
    WriteOnly(bool),
}

impl<R: BufRead> RecordReader<R> {
    /// A reader of `format` over `input`; `charset` overrides ISO 2709's leader.
    pub fn new(input: R, format: Format, charset: Option<Charset>) -> Self {
        match format {
            Format::Marc => RecordReader::Marc(iso2709::Reader::with_options(
                input,
                iso2709::ReadOptions { charset },
            )),
            Format::Marcxml => RecordReader::Marcxml(marcxml::Reader::new(input)),
            Format::Csv => RecordReader::Csv(jcsv::Reader::new(input, Layout::Generic)),
            Format::SlimsCsv => RecordReader::Csv(jcsv::Reader::new(input, Layout::Slims)),
            Format::Dc => RecordReader::WriteOnly(false),
        }
    }
}

impl<R: BufRead> Iterator for RecordReader<R> {
    type Item = Result<Parsed, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        let record_location = |p: iso2709::Position| Location {
            number: p.record,
            offset: p.offset,
            is_line: false,
        };
        Some(match self {
            RecordReader::Marc(reader) => match reader.next()? {
                Ok(read) => Ok(Parsed {
                    location: record_location(read.position),
                    charset: Some(read.charset),
                    warnings: read.warnings,
                    record: Record::from_marc(read.record),
                }),
                Err(e) => Err(ParseError {
                    location: record_location(e.position),
                    kind: e.error.into(),
                }),
            },
            RecordReader::Marcxml(reader) => match reader.next()? {
                Ok(read) => Ok(Parsed {
                    location: record_location(read.position),
                    charset: None,
                    warnings: read.warnings,
                    record: Record::from_marc(read.record),
                }),
                Err(e) => Err(ParseError {
                    location: record_location(e.position),
                    kind: e.error.into(),
                }),
            },
            RecordReader::Csv(reader) => {
                let line_location = |p: jcsv::RowPosition| Location {
                    number: p.line,
                    offset: p.offset,
                    is_line: true,
                };
                match reader.next()? {
                    Ok(read) => Ok(Parsed {
                        location: line_location(read.position),
                        charset: None,
                        warnings: Vec::new(),
                        record: read.record,
                    }),
                    Err(e) => Err(ParseError {
                        location: line_location(e.position),
                        kind: e.error.into(),
                    }),
                }
            }
            RecordReader::WriteOnly(done) => {
                if *done {
                    return None;
                }
                *done = true;
                Err(ParseError {
                    location: Location {
                        number: 0,
                        offset: 0,
                        is_line: false,
                    },
                    kind: ParseErrorKind::WriteOnly,
                })
            }
        })
    }
}

/// Why a record could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The output failed.
    #[error("writing: {0}")]
    Io(#[from] std::io::Error),
    /// The record does not fit ISO 2709.
    #[error("record {record_id}: {source}")]
    Marc {
        /// The record's id.
        record_id: String,
        /// Why.
        source: iso2709::WriteError,
    },
    /// CSV output failed.
    #[error("writing CSV: {0}")]
    Csv(#[from] csv::Error),
}

/// Writes records in one format, one at a time.
#[allow(clippy::large_enum_variant)] // one writer per output file: its size does not matter
pub enum RecordWriter<W: Write> {
    /// ISO 2709.
    Marc(W),
    /// MARCXML collection.
    Marcxml(W),
    /// CSV.
    Csv(jcsv::Writer<W>),
    /// oai_dc records inside a plain wrapper element.
    Dc(W),
}

impl<W: Write> RecordWriter<W> {
    /// Starts writing `format` (writes any header).
    pub fn new(mut output: W, format: Format) -> Result<Self, WriteError> {
        Ok(match format {
            Format::Marc => RecordWriter::Marc(output),
            Format::Marcxml => {
                output.write_all(crate::marc::marcxml::collection_start().as_bytes())?;
                RecordWriter::Marcxml(output)
            }
            Format::Csv => RecordWriter::Csv(jcsv::Writer::new(output, Layout::Generic)?),
            Format::SlimsCsv => RecordWriter::Csv(jcsv::Writer::new(output, Layout::Slims)?),
            Format::Dc => {
                output.write_all(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<records>\n")?;
                RecordWriter::Dc(output)
            }
        })
    }

    /// Writes one record.
    pub fn write(&mut self, record: &Record) -> Result<(), WriteError> {
        match self {
            RecordWriter::Marc(out) => {
                let bytes =
                    iso2709::write_record(&record.marc).map_err(|source| WriteError::Marc {
                        record_id: record.id().to_string(),
                        source,
                    })?;
                out.write_all(&bytes)?;
            }
            RecordWriter::Marcxml(out) => {
                out.write_all(marcxml::record_to_xml(&record.marc, false).as_bytes())?
            }
            RecordWriter::Csv(writer) => writer.write(record)?,
            RecordWriter::Dc(out) => {
                out.write_all(crate::dc::to_oai_dc(&record.marc).as_bytes())?
            }
        }
        Ok(())
    }

    /// Writes any trailer, flushes, and returns the output.
    pub fn finish(self) -> Result<W, WriteError> {
        let mut out = match self {
            RecordWriter::Marc(out) => out,
            RecordWriter::Marcxml(mut out) => {
                out.write_all(marcxml::collection_end().as_bytes())?;
                out
            }
            RecordWriter::Csv(writer) => writer.finish()?,
            RecordWriter::Dc(mut out) => {
                out.write_all(b"</records>\n")?;
                out
            }
        };
        out.flush()?;
        Ok(out)
    }
}

impl serde::Serialize for ParseError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("ParseError", 2)?;
        s.serialize_field("location", &self.location)?;
        s.serialize_field("reason", &self.kind.to_string())?;
        s.end()
    }
}
