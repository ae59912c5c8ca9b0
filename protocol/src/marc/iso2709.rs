//! ISO 2709 ("MARC21 transmission format"): a streaming, lenient reader and a UTF-8 writer.
//!
//! The reader holds one record at a time (at most [`RECORD_LEN_MAX`] bytes plus a read
//! buffer), so memory does not grow with the file. Each item it yields is a record, or an
//! error naming the record's number and byte offset in the file and the reason; after an
//! error it finds the next record terminator and goes on.

use super::charset::{self, looks_like_utf8, Charset};
use super::{
    is_control_tag, ControlField, DataField, Field, Leader, MarcRecord, Subfield, Warning,
    FIELD_TERMINATOR, LEADER_LEN, RECORD_LEN_MAX, RECORD_TERMINATOR, SUBFIELD_DELIMITER,
};
use std::io::Read;

/// How to read.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadOptions {
    /// Decode every record with this charset, whatever its leader says. `None`: leader/09
    /// `a` means UTF-8, anything else MARC-8, with UTF-8 detected where the leader is wrong.
    pub charset: Option<Charset>,
}

/// Where in the file a record starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Position {
    /// 1-based number of the record in the file (counting damaged ones).
    pub record: u64,
    /// Byte offset of the record's first byte in the file.
    pub offset: u64,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "record {} (byte offset {})", self.record, self.offset)
    }
}

/// Why a record could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The first five bytes are not a record length.
    #[error("record length {found:?} is not five digits")]
    BadLength {
        /// What stood there.
        found: String,
    },
    /// The file ends inside a record.
    #[error("file ends after {have} of the record's {expected} bytes")]
    Truncated {
        /// Bytes the record should have.
        expected: usize,
        /// Bytes there were.
        have: usize,
    },
    /// No record terminator within the largest record the reader accepts.
    #[error("no record terminator (0x1D) within {OVERSIZE_RECORD_LEN_MAX} bytes")]
    NoTerminator,
    /// The leader's base address of data (leader/12-16) is unusable.
    #[error(
        "base address of data {found:?} in the leader is not usable for a {record_len}-byte record"
    )]
    BadBaseAddress {
        /// What stood there.
        found: String,
        /// The record's length.
        record_len: usize,
    },
    /// The directory is not a whole number of 12-byte entries.
    #[error("directory is {len} bytes, not a multiple of 12")]
    BadDirectoryLength {
        /// Its length in bytes.
        len: usize,
    },
    /// A directory entry is not a tag, four digits of length and five of offset.
    #[error("directory entry {index} {entry:?} is not a tag, length and offset")]
    BadDirectoryEntry {
        /// 0-based index of the entry.
        index: usize,
        /// The entry's text.
        entry: String,
    },
    /// The record has no fields.
    #[error("record has no fields")]
    NoFields,
    /// A field's text is not valid in the record's charset.
    #[error("field {tag}: {source}")]
    Decode {
        /// The field's tag.
        tag: String,
        /// What was wrong.
        source: charset::DecodeError,
    },
}

/// A record read from a file, with what the reader repaired in it.
#[derive(Debug, Clone)]
pub struct ReadRecord {
    /// The record.
    pub record: MarcRecord,
    /// Where it started.
    pub position: Position,
    /// The charset its data was decoded from.
    pub charset: Charset,
    /// What was repaired or worked around.
    pub warnings: Vec<Warning>,
}

/// A record that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{position}: {error}")]
pub struct ReadError {
    /// Where it started.
    pub position: Position,
    /// Why it could not be read.
    pub error: RecordError,
}

/// Reads ISO 2709 records one at a time from any [`Read`].
pub struct Reader<R> {
    inner: R,
    options: ReadOptions,
    buffer: Vec<u8>,
    /// Start of unread data in `buffer`.
    start: usize,
    /// File offset of `buffer[start]`.
    offset: u64,
    record_number: u64,
    eof: bool,
    io_error: Option<std::io::Error>,
}

const CHUNK_LEN: usize = 64 * 1024;

/// The most the reader looks ahead for a record terminator. Some systems (HathiTrust,
/// serials with thousands of holdings) write records past ISO 2709's 99,999 bytes with a
/// length of `99999`; they are read up to this size, which also bounds memory.
pub const OVERSIZE_RECORD_LEN_MAX: usize = 4 * 1024 * 1024;

impl<R: Read> Reader<R> {
    /// A reader with default options.
    pub fn new(inner: R) -> Self {
        Self::with_options(inner, ReadOptions::default())
    }

    /// A reader with the given options.
    pub fn with_options(inner: R, options: ReadOptions) -> Self {
        Reader {
            inner,
            options,
            buffer: Vec::with_capacity(CHUNK_LEN * 2),
            start: 0,
            offset: 0,
            record_number: 0,
            eof: false,
            io_error: None,
        }
    }

    /// The I/O error that ended reading early, if one did.
    pub fn take_io_error(&mut self) -> Option<std::io::Error> {
        self.io_error.take()
    }

    fn available(&self) -> &[u8] {
        &self.buffer[self.start..]
    }

    /// Tries to have at least `n` unread bytes buffered; fewer means end of input.
    fn fill(&mut self, n: usize) {
        if self.available().len() >= n || self.eof {
            return;
        }
        if self.start > 0 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        while self.buffer.len() < n && !self.eof {
            let old_len = self.buffer.len();
            self.buffer.resize(old_len + CHUNK_LEN.max(n - old_len), 0);
            match self.inner.read(&mut self.buffer[old_len..]) {
                Ok(0) => {
                    self.buffer.truncate(old_len);
                    self.eof = true;
                }
                Ok(read) => self.buffer.truncate(old_len + read),
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {
                    self.buffer.truncate(old_len)
                }
                Err(error) => {
                    self.buffer.truncate(old_len);
                    self.io_error = Some(error);
                    self.eof = true;
                }
            }
        }
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.offset += n as u64;
    }

    /// Index (in the unread data) of the first record terminator, looking no further
    /// than [`OVERSIZE_RECORD_LEN_MAX`] bytes.
    fn find_terminator(&mut self) -> Option<usize> {
        let mut searched = 0;
        loop {
            let available = self.available();
            let end = available.len().min(OVERSIZE_RECORD_LEN_MAX);
            if let Some(i) = available[searched..end]
                .iter()
                .position(|&b| b == RECORD_TERMINATOR)
            {
                return Some(searched + i);
            }
            searched = end;
            if end >= OVERSIZE_RECORD_LEN_MAX || self.eof {
                return None;
            }
            self.fill((end + CHUNK_LEN).min(OVERSIZE_RECORD_LEN_MAX));
            if self.available().len() == end {
                return None;
            }
        }
    }

    /// Skips damaged data up to and including the next record terminator, however far
    /// it is, holding at most one read buffer at a time.
    fn skip_damaged(&mut self, position: Position, error: RecordError) -> ReadError {
        loop {
            self.fill(CHUNK_LEN);
            let available = self.available();
            if available.is_empty() {
                break;
            }
            match available.iter().position(|&b| b == RECORD_TERMINATOR) {
                Some(end) => {
                    self.consume(end + 1);
                    break;
                }
                None => {
                    let len = available.len();
                    self.consume(len);
                }
            }
        }
        ReadError { position, error }
    }

    fn next_record(&mut self) -> Option<Result<ReadRecord, ReadError>> {
        // Skip the line ends and padding some systems put between records.
        loop {
            self.fill(1);
            match self.available().first() {
                None => return None,
                Some(b'\r' | b'\n' | b' ' | 0 | 0x1A) => self.consume(1),
                Some(_) => break,
            }
        }
        self.record_number += 1;
        let position = Position {
            record: self.record_number,
            offset: self.offset,
        };
        self.fill(5);
        let head = &self.available()[..self.available().len().min(5)];
        let declared = std::str::from_utf8(head)
            .ok()
            .filter(|s| s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit()));
        let Some(declared) = declared.and_then(|s| s.parse::<usize>().ok()) else {
            let found = String::from_utf8_lossy(head).into_owned();
            return Some(Err(
                self.skip_damaged(position, RecordError::BadLength { found })
            ));
        };
        let mut warnings = Vec::new();
        self.fill(declared.max(LEADER_LEN));
        let available = self.available().len();
        let record_len = if declared >= LEADER_LEN + 2
            && declared <= available
            && self.available()[declared - 1] == RECORD_TERMINATOR
        {
            declared
        } else {
            // The length in the leader is wrong: trust the record terminator instead.
            match self.find_terminator() {
                Some(end) => {
                    warnings.push(Warning {
                        tag: None,
                        message: format!(
                            "leader says {declared} bytes; the record ends after {} bytes",
                            end + 1
                        ),
                    });
                    end + 1
                }
                None if available < declared => {
                    self.consume(available);
                    return Some(Err(ReadError {
                        position,
                        error: RecordError::Truncated {
                            expected: declared,
                            have: available,
                        },
                    }));
                }
                None => return Some(Err(self.skip_damaged(position, RecordError::NoTerminator))),
            }
        };
        let bytes = self.available()[..record_len].to_vec();
        self.consume(record_len);
        Some(
            parse_record(&bytes, self.options)
                .map(|(record, charset, mut more)| {
                    warnings.append(&mut more);
                    ReadRecord {
                        record,
                        position,
                        charset,
                        warnings,
                    }
                })
                .map_err(|error| ReadError { position, error }),
        )
    }
}

impl<R: Read> Iterator for Reader<R> {
    type Item = Result<ReadRecord, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record()
    }
}

/// A tag ISO 2709 can carry: three printable ASCII characters. Tags are normally digits or
/// letters; some systems wrote others (pymarc reads them too), so they are kept.
pub fn valid_tag(tag: &str) -> bool {
    tag.len() == 3 && tag.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
}

fn orphan_free(warnings: &[Warning], tag: &str) -> bool {
    !warnings.iter().any(|w| {
        w.tag.as_deref() == Some(tag) && w.message.starts_with("text after the indicators")
    })
}

fn digits(bytes: &[u8]) -> Option<usize> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Parses one whole record (leader to record terminator).
pub fn parse_record(
    bytes: &[u8],
    options: ReadOptions,
) -> Result<(MarcRecord, Charset, Vec<Warning>), RecordError> {
    let mut warnings = Vec::new();
    let leader_bytes = bytes.get(..LEADER_LEN).ok_or(RecordError::Truncated {
        expected: LEADER_LEN,
        have: bytes.len(),
    })?;
    let (mut leader, changed) = Leader::from_text(&String::from_utf8_lossy(leader_bytes));
    if changed {
        warnings.push(Warning {
            tag: None,
            message: "leader had characters that are not ASCII; replaced by spaces".into(),
        });
    }
    let declared_base = digits(&bytes[12..17]).filter(|&b| b > LEADER_LEN && b <= bytes.len());
    let base_address = match declared_base {
        Some(base) if bytes[base - 1] == FIELD_TERMINATOR => base,
        _ => {
            // The directory ends at the first field terminator; an oversized record's
            // leader cannot say where that is, and some systems wrote it wrong.
            let end = bytes[LEADER_LEN..]
                .iter()
                .position(|&b| b == FIELD_TERMINATOR)
                .map(|i| i + LEADER_LEN);
            match end {
                Some(end) if (end - LEADER_LEN).is_multiple_of(12) && end > LEADER_LEN => {
                    warnings.push(Warning {
                        tag: None,
                        message: format!("base address {:?} in the leader is wrong; the directory ends at byte {end}", String::from_utf8_lossy(&bytes[12..17])),
                    });
                    end + 1
                }
                _ => declared_base.ok_or_else(|| RecordError::BadBaseAddress {
                    found: String::from_utf8_lossy(&bytes[12..17]).into_owned(),
                    record_len: bytes.len(),
                })?,
            }
        }
    };
    // The directory runs from the leader to the field terminator before the base address.
    let mut directory = &bytes[LEADER_LEN..base_address];
    if directory.last() == Some(&FIELD_TERMINATOR) {
        directory = &directory[..directory.len() - 1];
    }
    if !directory.len().is_multiple_of(12) {
        return Err(RecordError::BadDirectoryLength {
            len: directory.len(),
        });
    }
    let data_end = bytes.len() - 1; // before the record terminator
    let mut raw_fields: Vec<(String, &[u8])> = Vec::with_capacity(directory.len() / 12);
    let mut aligned = true;
    for (index, entry) in directory.chunks_exact(12).enumerate() {
        let bad_entry = || RecordError::BadDirectoryEntry {
            index,
            entry: String::from_utf8_lossy(entry).into_owned(),
        };
        let tag = std::str::from_utf8(&entry[..3])
            .ok()
            .filter(|t| valid_tag(t))
            .ok_or_else(bad_entry)?;
        let len = digits(&entry[3..7]).ok_or_else(bad_entry)?;
        let start = digits(&entry[7..12]).ok_or_else(bad_entry)?;
        let from = (base_address + start).min(data_end);
        let to = (from + len).min(data_end);
        aligned &= len > 0 && bytes.get(base_address + start + len - 1) == Some(&FIELD_TERMINATOR);
        let mut data = &bytes[from..to];
        if data.last() == Some(&FIELD_TERMINATOR) {
            data = &data[..data.len() - 1];
        } else if to < base_address + start + len {
            warnings.push(Warning {
                tag: Some(tag.to_string()),
                message: "field runs past the end of the record; cut".into(),
            });
        } else if let Some(end) = data.iter().position(|&b| b == FIELD_TERMINATOR) {
            data = &data[..end];
        }
        raw_fields.push((tag.to_string(), data));
    }
    if raw_fields.is_empty() {
        return Err(RecordError::NoFields);
    }
    if !aligned {
        // Lengths and offsets do not land on field terminators (an oversized record, or
        // a system that counted characters instead of bytes). If the data splits at its
        // field terminators into as many fields as the directory names, trust that.
        let data = &bytes[base_address..data_end];
        let pieces: Vec<&[u8]> = data
            .strip_suffix(&[FIELD_TERMINATOR])
            .unwrap_or(data)
            .split(|&b| b == FIELD_TERMINATOR)
            .collect();
        if pieces.len() == raw_fields.len() {
            for (field, piece) in raw_fields.iter_mut().zip(pieces) {
                field.1 = piece;
            }
            warnings.push(Warning {
                tag: None,
                message: "directory lengths or offsets do not match the data; fields taken at their terminators".into(),
            });
        }
    }

    let charset = match options.charset {
        Some(charset) => charset,
        None if leader.get(9) == 'a' => Charset::Utf8,
        None => {
            let body = &bytes[base_address..data_end];
            if looks_like_utf8(body) {
                warnings.push(Warning {
                    tag: None,
                    message: "leader/09 says MARC-8 but the data is UTF-8; read as UTF-8".into(),
                });
                Charset::Utf8
            } else {
                Charset::Marc8
            }
        }
    };
    let mut unmapped = 0;
    let mut decode = |tag: &str, data: &[u8]| -> Result<String, RecordError> {
        let decoded = charset::decode(data, charset).map_err(|source| RecordError::Decode {
            tag: tag.to_string(),
            source,
        })?;
        unmapped += decoded.unmapped;
        Ok(decoded.text)
    };

    // Leader/10 says how many indicators a field has: 2 in MARC21, others elsewhere.
    // Jalin keeps two; any more are dropped with a warning.
    let indicator_count = match bytes[10] {
        digit @ b'1'..=b'9' => usize::from(digit - b'0'),
        _ => 2,
    };
    let mut fields = Vec::with_capacity(raw_fields.len());
    let mut stray_delimiters = 0;
    for (tag, data) in raw_fields {
        // Some systems (UNIMARC, DanMARC) put indicators and subfields in 00X fields: two
        // indicator characters then a delimiter. Read those as data fields, as YAZ does.
        let has_subfields = data.get(indicator_count) == Some(&SUBFIELD_DELIMITER);
        if is_control_tag(&tag) && !has_subfields {
            let value = decode(&tag, data)?;
            fields.push(Field::Control(ControlField { tag, value }));
            continue;
        }
        let mut parts = data.split(|&b| b == SUBFIELD_DELIMITER);
        // Indicators are characters, not bytes: a UTF-8 record can carry "á" (as YAZ reads it).
        let head = parts.next().unwrap_or_default();
        let mut indicators: Vec<char> = match charset {
            Charset::Utf8 => String::from_utf8_lossy(head).chars().collect(),
            _ => head.iter().map(|&b| b as char).collect(),
        };
        // Text after the indicators with no delimiter before it: take the character after
        // the indicators as the lost delimiter, as YAZ does, so the text is kept.
        let mut orphan = None;
        if indicators.len() > indicator_count {
            let rest: String = indicators
                .split_off(indicator_count)
                .into_iter()
                .skip(1)
                .collect();
            if !rest.is_empty() {
                orphan = Some(rest);
            }
            warnings.push(Warning {
                tag: Some(tag.clone()),
                message: "text after the indicators without a subfield delimiter; the next character taken as the delimiter".into(),
            });
        }
        let indicator = |i: usize| {
            indicators
                .get(i)
                .copied()
                .filter(|c| !c.is_control())
                .unwrap_or(' ')
        };
        if indicators.len() != 2 && orphan_free(&warnings, &tag) {
            let message = if indicators.len() == indicator_count {
                format!("{indicator_count} indicators, as the leader says; the first 2 are kept")
            } else {
                format!(
                    "{} indicators instead of {indicator_count}",
                    indicators.len()
                )
            };
            warnings.push(Warning {
                tag: Some(tag.clone()),
                message,
            });
        }
        let (ind1, ind2) = (indicator(0), indicator(1));
        let mut subfields = Vec::new();
        if let Some(text) = orphan {
            let mut chars = text.chars();
            let code = chars.next().unwrap_or(' ');
            subfields.push(Subfield {
                code,
                value: chars.as_str().to_string(),
            });
        }
        for part in parts.filter(|p| !p.is_empty()) {
            let text = decode(&tag, part)?;
            // A delimiter followed by no code (an escape, a space, a non-ASCII byte) is a
            // stray byte in the text: keep the text with the subfield it belongs to.
            if !part[0].is_ascii_graphic() {
                if let Some(previous) = subfields.last_mut() {
                    previous.value.push_str(&text);
                    stray_delimiters += 1;
                    continue;
                }
            }
            let mut chars = text.chars();
            let code = chars.next().unwrap_or(' ');
            subfields.push(Subfield {
                code,
                value: chars.as_str().to_string(),
            });
        }
        fields.push(Field::Data(DataField {
            tag,
            ind1,
            ind2,
            subfields,
        }));
    }
    if stray_delimiters > 0 {
        warnings.push(Warning {
            tag: None,
            message: format!("{stray_delimiters} subfield delimiter(s) with no subfield code after them; their text was kept in the subfield before"),
        });
    }
    if unmapped > 0 {
        warnings.push(Warning {
            tag: None,
            message: format!(
                "{unmapped} character(s) had no mapping in {charset}; replaced by U+FFFD"
            ),
        });
    }
    // The record now holds Unicode with two indicators and one-character codes: say so,
    // as every writer will.
    leader.normalize_structure();
    Ok((MarcRecord { leader, fields }, charset, warnings))
}

/// Why a record cannot be written as ISO 2709.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// Longer than the five-digit record length allows.
    #[error("record would be {len} bytes; ISO 2709 allows at most {RECORD_LEN_MAX}")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// A field longer than the four-digit field length allows.
    #[error("field {tag} would be {len} bytes; ISO 2709 allows at most 9999")]
    FieldTooLong {
        /// The field's tag.
        tag: String,
        /// Its length.
        len: usize,
    },
    /// A tag that is not three printable ASCII characters.
    #[error("tag {tag:?} is not three printable ASCII characters")]
    BadTag {
        /// The tag.
        tag: String,
    },
}

/// The fields in the order MARC21 wants them written: control fields first, then data
/// fields, each kind in its own order. (Some systems wrote an 00X field after data fields;
/// MARC21slim does not allow that, so both writers put them first.)
pub fn ordered_fields(record: &MarcRecord) -> impl Iterator<Item = &Field> {
    let control = record
        .fields
        .iter()
        .filter(|f| matches!(f, Field::Control(_)));
    let data = record.fields.iter().filter(|f| matches!(f, Field::Data(_)));
    control.chain(data)
}

/// Writes a record as UTF-8 ISO 2709 (leader/09 set to `a`, lengths and base address
/// computed).
pub fn write_record(record: &MarcRecord) -> Result<Vec<u8>, WriteError> {
    let mut directory = Vec::with_capacity(record.fields.len() * 12 + 1);
    let mut data = Vec::new();
    for field in ordered_fields(record) {
        let tag = field.tag();
        if !valid_tag(tag) {
            return Err(WriteError::BadTag {
                tag: tag.to_string(),
            });
        }
        let start = data.len();
        match field {
            Field::Control(control) => data.extend_from_slice(control.value.as_bytes()),
            Field::Data(field) => {
                let mut buf = [0u8; 4];
                data.extend_from_slice(field.ind1.encode_utf8(&mut buf).as_bytes());
                data.extend_from_slice(field.ind2.encode_utf8(&mut buf).as_bytes());
                for subfield in &field.subfields {
                    data.push(SUBFIELD_DELIMITER);
                    data.extend_from_slice(subfield.code.encode_utf8(&mut buf).as_bytes());
                    data.extend_from_slice(subfield.value.as_bytes());
                }
            }
        }
        data.push(FIELD_TERMINATOR);
        let len = data.len() - start;
        if len > 9999 {
            return Err(WriteError::FieldTooLong {
                tag: tag.to_string(),
                len,
            });
        }
        if start > 99_999 {
            return Err(WriteError::TooLong { len: start });
        }
        directory.extend_from_slice(format!("{tag}{len:04}{start:05}").as_bytes());
    }
    directory.push(FIELD_TERMINATOR);
    let base_address = LEADER_LEN + directory.len();
    let total = base_address + data.len() + 1;
    if total > RECORD_LEN_MAX {
        return Err(WriteError::TooLong { len: total });
    }
    let mut leader = record.leader.clone();
    leader.normalize_structure();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(format!("{total:05}").as_bytes());
    out.extend_from_slice(&leader.as_str().as_bytes()[5..12]);
    out.extend_from_slice(format!("{base_address:05}").as_bytes());
    out.extend_from_slice(&leader.as_str().as_bytes()[17..24]);
    out.extend_from_slice(&directory);
    out.extend_from_slice(&data);
    out.push(RECORD_TERMINATOR);
    Ok(out)
}
