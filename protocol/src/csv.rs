//! CSV in and out: SLiMS's 18-column bibliographic layout, and a generic CSV whose header
//! row names the fields.
//!
//! SLiMS (Senayan Library Management System) writes its bibliographic export as
//! `title, gmd_name, edition, isbn_issn, publisher_name, publish_year, collation,
//! series_title, call_number, language_name, place_name, classification, notes, image, sor,
//! authors, topics, item_code`, with multi-valued columns written `<A><B><C>`.

use crate::isbn::{normalize_issn, parse_isbn, Isbn};
use crate::record::{Description, Holding, Name, Record, Subject};
use std::io::{Read, Write};

/// SLiMS's column names, in its order.
pub const SLIMS_COLUMNS: [&str; 18] = [
    "title",
    "gmd_name",
    "edition",
    "isbn_issn",
    "publisher_name",
    "publish_year",
    "collation",
    "series_title",
    "call_number",
    "language_name",
    "place_name",
    "classification",
    "notes",
    "image",
    "sor",
    "authors",
    "topics",
    "item_code",
];

/// The generic layout's columns, in the order Jalin writes them. Multi-valued columns
/// are separated by ` | `.
pub const GENERIC_COLUMNS: [&str; 19] = [
    "id",
    "title",
    "subtitle",
    "responsibility",
    "authors",
    "edition",
    "place",
    "publisher",
    "year",
    "isbn",
    "issn",
    "physical_description",
    "series",
    "languages",
    "subjects",
    "ddc",
    "call_number",
    "notes",
    "items",
];

/// Where in a CSV file a row starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RowPosition {
    /// 1-based line number.
    pub line: u64,
    /// Byte offset of the row.
    pub offset: u64,
}

impl std::fmt::Display for RowPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {} (byte offset {})", self.line, self.offset)
    }
}

/// Why a row could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    /// The CSV itself is broken (bad quoting, bad UTF-8).
    #[error("not valid CSV: {reason}")]
    Syntax {
        /// What the CSV parser said.
        reason: String,
    },
    /// The row has no title.
    #[error("no title")]
    NoTitle,
    /// The header row names no column Jalin knows.
    #[error("header row names none of the known columns (title, author, isbn, ...)")]
    UnknownHeader,
}

/// A CSV row that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{position}: {error}")]
pub struct CsvReadError {
    /// Where the row starts.
    pub position: RowPosition,
    /// Why.
    pub error: RowError,
}

/// A record read from CSV.
#[derive(Clone, Debug)]
pub struct CsvRecord {
    /// The record (with MARC made for it).
    pub record: Record,
    /// Where the row starts.
    pub position: RowPosition,
}

/// Splits SLiMS's `<A><B>` multi-value notation; text without brackets is one value.
pub fn split_slims_multi(text: &str) -> Vec<String> {
    let text = text.trim();
    if !text.starts_with('<') {
        return if text.is_empty() {
            Vec::new()
        } else {
            vec![text.to_string()]
        };
    }
    text.split(['<', '>'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn join_slims_multi<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    values.into_iter().map(|v| format!("<{v}>")).collect()
}

fn split_generic_multi(text: &str) -> Vec<String> {
    if text.trim_start().starts_with('<') {
        return split_slims_multi(text);
    }
    text.split('|')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Language names as SLiMS lists them, and their MARC codes.
const LANGUAGES: [(&str, &str); 14] = [
    ("Indonesia", "ind"),
    ("English", "eng"),
    ("Jawa", "jav"),
    ("Sunda", "sun"),
    ("Melayu", "may"),
    ("Arab", "ara"),
    ("Belanda", "dut"),
    ("Jepang", "jpn"),
    ("Mandarin", "chi"),
    ("Bali", "ban"),
    ("Madura", "mad"),
    ("Bugis", "bug"),
    ("Minangkabau", "min"),
    ("Jerman", "ger"),
];

fn language_code(name: &str) -> Option<String> {
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    let lower = name.to_lowercase();
    let lower = lower.strip_prefix("bahasa ").unwrap_or(&lower);
    LANGUAGES
        .iter()
        .find(|(n, code)| n.to_lowercase() == lower || *code == lower)
        .map(|(_, code)| (*code).to_string())
        .or_else(|| match lower {
            "inggris" => Some("eng".into()),
            code if code.len() == 3 && code.bytes().all(|b| b.is_ascii_lowercase()) => {
                Some(code.to_string())
            }
            _ => None,
        })
}

fn language_name(code: &str) -> String {
    LANGUAGES
        .iter()
        .find(|(_, c)| *c == code)
        .map_or_else(|| code.to_string(), |(n, _)| (*n).to_string())
}

fn add_identifier(description: &mut Description, text: &str) {
    if let Some(issn) = normalize_issn(text).filter(|_| text.trim().len() <= 9) {
        description.issns.push(issn);
        return;
    }
    match parse_isbn(text) {
        Some(Isbn::Valid(isbn)) if !description.isbns.contains(&isbn) => {
            description.isbns.push(isbn)
        }
        Some(Isbn::Invalid(isbn)) => description.invalid_isbns.push(isbn),
        _ => {}
    }
}

fn opt(text: &str) -> Option<String> {
    let text = text.trim();
    if text.is_empty() {
        None
    } else {
        Some(text.to_string())
    }
}

fn year_of(text: &str) -> Option<i32> {
    let digits: String = text.chars().filter(char::is_ascii_digit).take(4).collect();
    digits.parse().ok().filter(|y| (1000..=2999).contains(y))
}

fn slims_row(row: &csv::StringRecord) -> Result<Description, RowError> {
    let col = |i: usize| row.get(i).unwrap_or("");
    let title = col(0).trim();
    if title.is_empty() {
        return Err(RowError::NoTitle);
    }
    let mut d = Description {
        title: title.to_string(),
        edition: opt(col(2)),
        physical_description: opt(col(6)),
        call_number: opt(col(8)),
        responsibility: opt(col(14)),
        ..Default::default()
    };
    for id in split_slims_multi(col(3)) {
        add_identifier(&mut d, &id);
    }
    d.publication.publisher = opt(col(4));
    d.publication.date = opt(col(5));
    d.year = year_of(col(5));
    d.series = split_slims_multi(col(7));
    d.languages = language_code(col(9)).into_iter().collect();
    d.publication.place = opt(col(10));
    if let Some(class) = opt(col(11)) {
        d.classification.ddc.push(class);
    }
    if let Some(note) = opt(col(12)) {
        d.notes.push(note);
    }
    for (i, author) in split_slims_multi(col(15)).into_iter().enumerate() {
        d.names.push(Name {
            name: author,
            main: i == 0,
            ..Default::default()
        });
    }
    d.subjects = split_slims_multi(col(16))
        .into_iter()
        .map(|heading| Subject {
            heading,
            vocabulary: None,
        })
        .collect();
    d.holdings = split_slims_multi(col(17))
        .into_iter()
        .map(|item| Holding {
            item_id: Some(item),
            call_number: d.call_number.clone(),
            ..Default::default()
        })
        .collect();
    Ok(d)
}

/// Which generic column a header names (case-insensitive, with common aliases).
fn generic_column(header: &str) -> Option<&'static str> {
    let h = header.trim().to_lowercase().replace([' ', '-'], "_");
    Some(match h.as_str() {
        "id" | "record_id" | "biblio_id" | "control_number" => "id",
        "title" | "judul" => "title",
        "subtitle" | "anak_judul" => "subtitle",
        "responsibility" | "sor" | "statement_of_responsibility" => "responsibility",
        "author" | "authors" | "creator" | "pengarang" => "authors",
        "edition" | "edisi" => "edition",
        "place" | "place_name" | "tempat_terbit" => "place",
        "publisher" | "publisher_name" | "penerbit" => "publisher",
        "year" | "publish_year" | "date" | "tahun_terbit" => "year",
        "isbn" | "isbn_issn" => "isbn",
        "issn" => "issn",
        "physical_description" | "collation" | "kolasi" => "physical_description",
        "series" | "series_title" => "series",
        "language" | "languages" | "language_name" | "bahasa" => "languages",
        "subject" | "subjects" | "topics" | "subyek" => "subjects",
        "ddc" | "classification" | "klasifikasi" => "ddc",
        "call_number" | "callnumber" | "no_panggil" => "call_number",
        "note" | "notes" | "catatan" => "notes",
        "items" | "item_code" | "barcode" | "barcodes" => "items",
        _ => return None,
    })
}

fn generic_row(
    columns: &[Option<&'static str>],
    row: &csv::StringRecord,
) -> Result<Description, RowError> {
    let mut d = Description::default();
    let mut year_text = None;
    for (name, value) in columns.iter().zip(row.iter()) {
        let Some(name) = name else { continue };
        match *name {
            "id" => {
                d.control_number = opt(value);
                d.record_id = value.trim().to_string();
            }
            "title" => d.title = value.trim().to_string(),
            "subtitle" => d.subtitle = opt(value),
            "responsibility" => d.responsibility = opt(value),
            "authors" => {
                for (i, name) in split_generic_multi(value).into_iter().enumerate() {
                    d.names.push(Name {
                        name,
                        main: i == 0,
                        ..Default::default()
                    });
                }
            }
            "edition" => d.edition = opt(value),
            "place" => d.publication.place = opt(value),
            "publisher" => d.publication.publisher = opt(value),
            "year" => year_text = opt(value),
            "isbn" | "issn" => {
                for id in split_generic_multi(value) {
                    add_identifier(&mut d, &id);
                }
            }
            "physical_description" => d.physical_description = opt(value),
            "series" => d.series = split_generic_multi(value),
            "languages" => {
                d.languages = split_generic_multi(value)
                    .iter()
                    .filter_map(|l| language_code(l))
                    .collect()
            }
            "subjects" => {
                d.subjects = split_generic_multi(value)
                    .into_iter()
                    .map(|heading| Subject {
                        heading,
                        vocabulary: None,
                    })
                    .collect()
            }
            "ddc" => d.classification.ddc = split_generic_multi(value),
            "call_number" => d.call_number = opt(value),
            "notes" => d.notes = split_generic_multi(value),
            "items" => {
                d.holdings = split_generic_multi(value)
                    .into_iter()
                    .map(|item| Holding {
                        item_id: Some(item),
                        ..Default::default()
                    })
                    .collect()
            }
            _ => {}
        }
    }
    if let Some(year) = year_text {
        d.year = year_of(&year);
        d.publication.date = Some(year);
    }
    if d.title.is_empty() {
        return Err(RowError::NoTitle);
    }
    for holding in &mut d.holdings {
        holding.call_number.clone_from(&d.call_number);
    }
    Ok(d)
}

/// Which CSV layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// SLiMS's 18 columns, with or without its header row.
    Slims,
    /// A header row naming the fields.
    Generic,
}

/// Reads records from CSV, one row at a time.
pub struct Reader<R> {
    csv: csv::Reader<R>,
    layout: Layout,
    columns: Vec<Option<&'static str>>,
    started: bool,
    failed: bool,
}

impl<R: Read> Reader<R> {
    /// A reader for the given layout. Comma-separated, `"` quoted, as SLiMS writes.
    pub fn new(inner: R, layout: Layout) -> Self {
        let csv = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(inner);
        Reader {
            csv,
            layout,
            columns: Vec::new(),
            started: false,
            failed: false,
        }
    }

    fn position(row: &csv::StringRecord) -> RowPosition {
        row.position()
            .map_or(RowPosition { line: 0, offset: 0 }, |p| RowPosition {
                line: p.line(),
                offset: p.byte(),
            })
    }

    fn next_row(&mut self) -> Option<Result<CsvRecord, CsvReadError>> {
        if self.failed {
            return None;
        }
        let mut row = csv::StringRecord::new();
        loop {
            match self.csv.read_record(&mut row) {
                Ok(false) => return None,
                Ok(true) => {}
                Err(error) => {
                    let position =
                        error
                            .position()
                            .map_or(RowPosition { line: 0, offset: 0 }, |p| RowPosition {
                                line: p.line(),
                                offset: p.byte(),
                            });
                    // A UTF-8 error spoils one row; broken quoting spoils the rest.
                    if !matches!(error.kind(), csv::ErrorKind::Utf8 { .. }) {
                        self.failed = true;
                    }
                    return Some(Err(CsvReadError {
                        position,
                        error: RowError::Syntax {
                            reason: error.to_string(),
                        },
                    }));
                }
            }
            if row.iter().all(|v| v.trim().is_empty()) {
                continue;
            }
            let first_row = !self.started;
            self.started = true;
            if first_row {
                match self.layout {
                    Layout::Slims => {
                        if row.get(0).map(str::trim) == Some("title")
                            && row.get(1).map(str::trim) == Some("gmd_name")
                        {
                            continue;
                        }
                    }
                    Layout::Generic => {
                        self.columns = row.iter().map(generic_column).collect();
                        if !self.columns.contains(&Some("title")) {
                            self.failed = true;
                            return Some(Err(CsvReadError {
                                position: Self::position(&row),
                                error: RowError::UnknownHeader,
                            }));
                        }
                        continue;
                    }
                }
            }
            break;
        }
        let position = Self::position(&row);
        let description = match self.layout {
            Layout::Slims => slims_row(&row),
            Layout::Generic => generic_row(&self.columns, &row),
        };
        Some(
            description
                .map(|d| CsvRecord {
                    record: Record::from_description(&d),
                    position,
                })
                .map_err(|error| CsvReadError { position, error }),
        )
    }
}

impl<R: Read> Iterator for Reader<R> {
    type Item = Result<CsvRecord, CsvReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_row()
    }
}

/// Whether a header row is SLiMS's.
pub fn is_slims_header(first_line: &str) -> bool {
    let names: Vec<String> = first_line
        .split([',', ';', '\t'])
        .map(|c| c.trim().trim_matches('"').to_string())
        .collect();
    names.len() >= 17
        && names
            .iter()
            .take(3)
            .map(String::as_str)
            .eq(SLIMS_COLUMNS.iter().take(3).copied())
}

/// Writes records as CSV.
pub struct Writer<W: Write> {
    csv: csv::Writer<W>,
    layout: Layout,
}

impl<W: Write> Writer<W> {
    /// A writer for the layout; writes the header row at once.
    pub fn new(inner: W, layout: Layout) -> csv::Result<Self> {
        let mut csv = csv::WriterBuilder::new().from_writer(inner);
        match layout {
            Layout::Slims => csv.write_record(SLIMS_COLUMNS)?,
            Layout::Generic => csv.write_record(GENERIC_COLUMNS)?,
        }
        Ok(Writer { csv, layout })
    }

    /// Writes one record.
    pub fn write(&mut self, record: &Record) -> csv::Result<()> {
        let d = &record.description;
        let authors: Vec<&str> = d.names.iter().map(|n| n.name.as_str()).collect();
        let subjects: Vec<&str> = d.subjects.iter().map(|s| s.heading.as_str()).collect();
        let items: Vec<&str> = d
            .holdings
            .iter()
            .filter_map(|h| h.item_id.as_deref())
            .collect();
        let ids: Vec<&str> = d.isbns.iter().chain(&d.issns).map(String::as_str).collect();
        let or_empty = |v: &Option<String>| v.clone().unwrap_or_default();
        let date = d
            .publication
            .date
            .clone()
            .or_else(|| d.year.map(|y| y.to_string()))
            .unwrap_or_default();
        match self.layout {
            Layout::Slims => self.csv.write_record([
                d.title.clone(),
                "Text".to_string(),
                or_empty(&d.edition),
                ids.first().map(|s| (*s).to_string()).unwrap_or_default(),
                or_empty(&d.publication.publisher),
                d.year.map(|y| y.to_string()).unwrap_or(date),
                or_empty(&d.physical_description),
                d.series.first().cloned().unwrap_or_default(),
                or_empty(&d.call_number),
                d.languages
                    .first()
                    .map(|l| language_name(l))
                    .unwrap_or_default(),
                or_empty(&d.publication.place),
                d.classification.ddc.first().cloned().unwrap_or_default(),
                d.notes.join(" "),
                String::new(),
                or_empty(&d.responsibility),
                join_slims_multi(authors),
                join_slims_multi(subjects),
                join_slims_multi(items),
            ]),
            Layout::Generic => self.csv.write_record([
                d.record_id.clone(),
                d.title.clone(),
                or_empty(&d.subtitle),
                or_empty(&d.responsibility),
                authors.join(" | "),
                or_empty(&d.edition),
                or_empty(&d.publication.place),
                or_empty(&d.publication.publisher),
                date,
                d.isbns.join(" | "),
                d.issns.join(" | "),
                or_empty(&d.physical_description),
                d.series.join(" | "),
                d.languages.join(" | "),
                subjects.join(" | "),
                d.classification.ddc.join(" | "),
                or_empty(&d.call_number),
                d.notes.join(" | "),
                items.join(" | "),
            ]),
        }
    }

    /// Flushes and returns the inner writer.
    pub fn finish(self) -> std::io::Result<W> {
        self.csv.into_inner().map_err(|e| e.into_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slims_multi_values() {
        assert_eq!(
            split_slims_multi("<Pramoedya Ananta Toer><Koesalah Soebagyo Toer>"),
            vec!["Pramoedya Ananta Toer", "Koesalah Soebagyo Toer"]
        );
        assert_eq!(split_slims_multi("Sejarah"), vec!["Sejarah"]);
        assert!(split_slims_multi("  ").is_empty());
    }

    #[test]
    fn slims_row_with_header_reads() {
        let csv = "\"title\",\"gmd_name\",\"edition\",\"isbn_issn\",\"publisher_name\",\"publish_year\",\"collation\",\"series_title\",\"call_number\",\"language_name\",\"place_name\",\"classification\",\"notes\",\"image\",\"sor\",\"authors\",\"topics\",\"item_code\"\n\
\"Bumi manusia\",\"Text\",\"Cet. 1\",\"979-97312-3-2\",\"Hasta Mitra\",\"1980\",\"338 hlm.; 21 cm\",\"\",\"899.221 PRA b\",\"Indonesia\",\"Jakarta\",\"899.221\",\"\",\"\",\"Pramoedya Ananta Toer\",\"<Pramoedya Ananta Toer>\",\"<Fiksi Indonesia><Sejarah>\",\"<B0001><B0002>\"\n";
        let records: Vec<_> = Reader::new(csv.as_bytes(), Layout::Slims).collect();
        assert_eq!(records.len(), 1);
        let record = records[0].as_ref().expect("the row is valid");
        let d = &record.record.description;
        assert_eq!(d.title, "Bumi manusia");
        assert_eq!(d.isbns, vec!["9789799731234".to_string()]);
        assert_eq!(d.languages, vec!["ind".to_string()]);
        assert_eq!(d.holdings.len(), 2);
        assert_eq!(d.subjects.len(), 2);
        assert_eq!(d.year, Some(1980));
        assert_eq!(record.position.line, 2);
    }

    #[test]
    fn row_without_title_is_reported_with_its_line() {
        let csv = "title,author\n,Someone\nA title,Someone\n";
        let results: Vec<_> = Reader::new(csv.as_bytes(), Layout::Generic).collect();
        assert_eq!(results.len(), 2);
        let error = results[0].as_ref().expect_err("no title");
        assert_eq!(error.position.line, 2);
        assert_eq!(error.error, RowError::NoTitle);
        assert!(results[1].is_ok());
    }
}
