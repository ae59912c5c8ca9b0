//! ISO 2709 ("MARC21 transmission format"): a streaming, lenient reader and a UTF-8 writer.
//!
//! The reader holds one record at a time (at most [`RECORD_LEN_MAX`] bytes plus a read
//! buffer), so memory does not grow with the file. Each item it yields is a record, or an
//! error naming the record's number and byte offset in the file and the reason; after an
//! error it finds the next record terminator and goes on.

use super::charset::{self, looks_like_utf8, Charset};
use super::{
    is_control_tag, ControlField, DataField, Field, Leader, MarcRecord, Subfield, Warning, FIELD_TERMINATOR,
    LEADER_LEN, RECORD_LEN_MAX, RECORD_TERMINATOR, SUBFIELD_DELIMITER,
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
    /// No record terminator within the largest possible record.
    #[error("no record terminator (0x1D) within {RECORD_LEN_MAX} bytes")]
    NoTerminator,
    /// The leader's base address of data (leader/12-16) is unusable.
    #[error("base address of data {found:?} in the leader is not usable for a {record_len}-byte record")]
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
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => self.buffer.truncate(old_len),
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

    /// Index (in the unread data) of the first record terminator at or after `from`,
    /// looking no further than the largest record.
    fn find_terminator(&mut self, from: usize) -> Option<usize> {
        self.fill(RECORD_LEN_MAX);
        let available = self.available();
        let end = available.len().min(RECORD_LEN_MAX);
        available.get(from..end)?.iter().position(|&b| b == RECORD_TERMINATOR).map(|i| i + from)
    }

    /// Skips damaged data up to and including the next record terminator.
    fn skip_damaged(&mut self, position: Position, error: RecordError) -> ReadError {
        match self.find_terminator(0) {
            Some(end) => self.consume(end + 1),
            None => {
                let len = self.available().len().min(RECORD_LEN_MAX);
                self.consume(len);
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
        let position = Position { record: self.record_number, offset: self.offset };
        self.fill(5);
        let head = &self.available()[..self.available().len().min(5)];
        let declared = std::str::from_utf8(head).ok().filter(|s| s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit()));
        let Some(declared) = declared.and_then(|s| s.parse::<usize>().ok()) else {
            let found = String::from_utf8_lossy(head).into_owned();
            return Some(Err(self.skip_damaged(position, RecordError::BadLength { found })));
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
            match self.find_terminator(0) {
                Some(end) => {
                    warnings.push(Warning {
                        tag: None,
                        message: format!("leader says {declared} bytes; the record ends after {} bytes", end + 1),
                    });
                    end + 1
                }
                None if available < declared => {
                    self.consume(available);
                    return Some(Err(ReadError {
                        position,
                        error: RecordError::Truncated { expected: declared, have: available },
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
                    ReadRecord { record, position, charset, warnings }
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

fn digits(bytes: &[u8]) -> Option<usize> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Parses one whole record (leader to record terminator).
pub fn parse_record(bytes: &[u8], options: ReadOptions) -> Result<(MarcRecord, Charset, Vec<Warning>), RecordError> {
    let mut warnings = Vec::new();
    let leader_bytes = bytes.get(..LEADER_LEN).ok_or(RecordError::Truncated { expected: LEADER_LEN, have: bytes.len() })?;
    let (mut leader, changed) = Leader::from_text(&String::from_utf8_lossy(leader_bytes));
    if changed {
        warnings.push(Warning { tag: None, message: "leader had characters that are not ASCII; replaced by spaces".into() });
    }
    let base_address = digits(&bytes[12..17])
        .filter(|&b| b > LEADER_LEN && b <= bytes.len())
        .ok_or_else(|| RecordError::BadBaseAddress {
            found: String::from_utf8_lossy(&bytes[12..17]).into_owned(),
            record_len: bytes.len(),
        })?;
    // The directory runs from the leader to the field terminator before the base address.
    let mut directory = &bytes[LEADER_LEN..base_address];
    if directory.last() == Some(&FIELD_TERMINATOR) {
        directory = &directory[..directory.len() - 1];
    }
    if directory.len() % 12 != 0 {
        return Err(RecordError::BadDirectoryLength { len: directory.len() });
    }
    let data_end = bytes.len() - 1; // before the record terminator
    let mut raw_fields: Vec<(String, &[u8])> = Vec::with_capacity(directory.len() / 12);
    for (index, entry) in directory.chunks_exact(12).enumerate() {
        let bad_entry = || RecordError::BadDirectoryEntry { index, entry: String::from_utf8_lossy(entry).into_owned() };
        let tag = std::str::from_utf8(&entry[..3])
            .ok()
            .filter(|t| t.bytes().all(|b| b.is_ascii_alphanumeric()))
            .ok_or_else(bad_entry)?;
        let len = digits(&entry[3..7]).ok_or_else(bad_entry)?;
        let start = digits(&entry[7..12]).ok_or_else(bad_entry)?;
        let from = (base_address + start).min(data_end);
        let to = (from + len).min(data_end);
        let mut data = &bytes[from..to];
        if data.last() == Some(&FIELD_TERMINATOR) {
            data = &data[..data.len() - 1];
        } else if to < base_address + start + len {
            warnings.push(Warning { tag: Some(tag.to_string()), message: "field runs past the end of the record; cut".into() });
        } else if let Some(end) = data.iter().position(|&b| b == FIELD_TERMINATOR) {
            data = &data[..end];
        }
        raw_fields.push((tag.to_string(), data));
    }
    if raw_fields.is_empty() {
        return Err(RecordError::NoFields);
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
        let decoded = charset::decode(data, charset).map_err(|source| RecordError::Decode { tag: tag.to_string(), source })?;
        unmapped += decoded.unmapped;
        Ok(decoded.text)
    };

    let mut fields = Vec::with_capacity(raw_fields.len());
    for (tag, data) in raw_fields {
        if is_control_tag(&tag) {
            let value = decode(&tag, data)?;
            fields.push(Field::Control(ControlField { tag, value }));
            continue;
        }
        let mut parts = data.split(|&b| b == SUBFIELD_DELIMITER);
        let indicators = parts.next().unwrap_or_default();
        let indicator = |i: usize| indicators.get(i).map_or(' ', |&b| if b.is_ascii() && b >= 0x20 { b as char } else { ' ' });
        if indicators.len() != 2 {
            warnings.push(Warning {
                tag: Some(tag.clone()),
                message: format!("{} indicator bytes instead of 2", indicators.len()),
            });
        }
        let (ind1, ind2) = (indicator(0), indicator(1));
        let mut subfields = Vec::new();
        for part in parts.filter(|p| !p.is_empty()) {
            let text = decode(&tag, part)?;
            let mut chars = text.chars();
            let code = chars.next().unwrap_or(' ');
            subfields.push(Subfield { code, value: chars.as_str().to_string() });
        }
        fields.push(Field::Data(DataField { tag, ind1, ind2, subfields }));
    }
    if unmapped > 0 {
        warnings.push(Warning {
            tag: None,
            message: format!("{unmapped} character(s) had no mapping in {charset}; replaced by U+FFFD"),
        });
    }
    // The record now holds Unicode: say so, as every UTF-8 writer will.
    leader.set(9, 'a');
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
    /// A tag that is not three ASCII letters or digits.
    #[error("tag {tag:?} is not three ASCII letters or digits")]
    BadTag {
        /// The tag.
        tag: String,
    },
}

/// Writes a record as UTF-8 ISO 2709 (leader/09 set to `a`, lengths and base address
/// computed).
pub fn write_record(record: &MarcRecord) -> Result<Vec<u8>, WriteError> {
    let mut directory = Vec::with_capacity(record.fields.len() * 12 + 1);
    let mut data = Vec::new();
    for field in &record.fields {
        let tag = field.tag();
        if tag.len() != 3 || !tag.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(WriteError::BadTag { tag: tag.to_string() });
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
            return Err(WriteError::FieldTooLong { tag: tag.to_string(), len });
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
    leader.set(9, 'a');
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
