//! Catalog files on disk: opening one in the right format, inspecting it, converting it.

use jalin_protocol::format::{
    Format, Location, ParseError, Parsed, RecordReader, RecordWriter, WriteError,
};
use jalin_protocol::marc::iso2709;
use jalin_protocol::marc::Charset;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};

/// Why a file could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Opening or reading failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A record could not be read and the caller asked for strict reading.
    #[error("{path}: {source} (strict: nothing was written)")]
    Strict {
        /// The file.
        path: PathBuf,
        /// The first bad record.
        source: ParseError,
    },
    /// Writing failed.
    #[error("{path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: WriteError,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
    move |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The format of a file: `explicit` if given, else its extension, else its first bytes.
pub fn detect_format(path: &Path, explicit: Option<Format>) -> Result<Format, FileError> {
    if let Some(format) = explicit {
        return Ok(format);
    }
    let mut head = [0u8; 4096];
    let mut file = File::open(path).map_err(io_error(path))?;
    let mut len = 0;
    while len < head.len() {
        match file.read(&mut head[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(path)(e)),
        }
    }
    let sniffed = Format::sniff(&head[..len]);
    let by_extension = Format::from_extension(&path.to_string_lossy());
    Ok(match by_extension {
        // A ".csv" that starts with SLiMS's header is SLiMS's layout.
        Some(Format::Csv) if sniffed == Format::SlimsCsv => Format::SlimsCsv,
        Some(format) => format,
        None => sniffed,
    })
}

/// Opens a file for reading records.
pub fn open_records(
    path: &Path,
    format: Format,
    charset: Option<Charset>,
) -> Result<RecordReader<BufReader<File>>, FileError> {
    let file = File::open(path).map_err(io_error(path))?;
    Ok(RecordReader::new(
        BufReader::with_capacity(256 * 1024, file),
        format,
        charset,
    ))
}

/// What `jalin inspect` reports about one file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Inspection {
    /// The file.
    pub path: PathBuf,
    /// Its format.
    pub format: Format,
    /// Records read.
    pub records: u64,
    /// Records by the charset they were decoded from (ISO 2709).
    pub charsets: BTreeMap<String, u64>,
    /// Records read with warnings.
    pub records_with_warnings: u64,
    /// Every warning, with where it was.
    pub warnings: Vec<String>,
    /// Every record that could not be read, with where and why.
    pub errors: Vec<ParseError>,
}

/// Reads a whole file and reports what is in it. Memory stays bounded by one record plus
/// the error and warning lists. Inspection reads and decodes every record but does not
/// derive descriptions from them: it reports on the file, it does not catalogue it.
pub fn inspect(
    path: &Path,
    format: Format,
    charset: Option<Charset>,
) -> Result<Inspection, FileError> {
    let mut inspection = Inspection {
        path: path.to_path_buf(),
        format,
        records: 0,
        charsets: BTreeMap::new(),
        records_with_warnings: 0,
        warnings: Vec::new(),
        errors: Vec::new(),
    };
    let mut note_warnings =
        |location: &dyn std::fmt::Display, id: &str, warnings: &[jalin_protocol::marc::Warning]| {
            if !warnings.is_empty() {
                inspection.records_with_warnings += 1;
                for warning in warnings {
                    inspection
                        .warnings
                        .push(format!("{location} ({id}): {warning}"));
                }
            }
        };
    let mut records = 0;
    let mut charsets: BTreeMap<String, u64> = BTreeMap::new();
    let mut errors = Vec::new();
    if format == Format::Marc {
        let file = File::open(path).map_err(io_error(path))?;
        let reader = iso2709::Reader::with_options(
            BufReader::with_capacity(256 * 1024, file),
            iso2709::ReadOptions { charset },
        );
        for item in reader {
            match item {
                Ok(read) => {
                    records += 1;
                    *charsets.entry(read.charset.to_string()).or_default() += 1;
                    let id = read.record.control("001").map_or("no 001", str::trim);
                    note_warnings(&read.position, id, &read.warnings);
                }
                Err(error) => errors.push(ParseError {
                    location: Location {
                        number: error.position.record,
                        offset: error.position.offset,
                        is_line: false,
                    },
                    kind: error.error.into(),
                }),
            }
        }
    } else {
        for item in open_records(path, format, charset)? {
            match item {
                Ok(parsed) => {
                    records += 1;
                    note_warnings(&parsed.location, parsed.record.id(), &parsed.warnings);
                }
                Err(error) => errors.push(error),
            }
        }
    }
    inspection.records = records;
    inspection.charsets = charsets;
    inspection.errors = errors;
    Ok(inspection)
}

/// What a conversion did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Conversion {
    /// Records written.
    pub written: u64,
    /// Records that could not be read (each reported) and so were not written.
    pub rejected: Vec<ParseError>,
    /// Records read but not written (too long for ISO 2709, ...), with why.
    pub unwritable: Vec<String>,
}

/// Converts `input` to `output`. Lenient: bad records are reported and skipped. Strict:
/// the first bad record stops the conversion and the output file is removed.
pub fn convert(
    input: &Path,
    input_format: Format,
    charset: Option<Charset>,
    output: &Path,
    output_format: Format,
    strict: bool,
) -> Result<Conversion, FileError> {
    let reader = open_records(input, input_format, charset)?;
    let file = File::create(output).map_err(io_error(output))?;
    let write_error = |source| FileError::Write {
        path: output.to_path_buf(),
        source,
    };
    let mut writer = RecordWriter::new(BufWriter::new(file), output_format).map_err(write_error)?;
    let mut conversion = Conversion::default();
    let result = (|| {
        for item in reader {
            let parsed: Parsed = match item {
                Ok(parsed) => parsed,
                Err(error) if strict => {
                    return Err(FileError::Strict {
                        path: input.to_path_buf(),
                        source: error,
                    })
                }
                Err(error) => {
                    conversion.rejected.push(error);
                    continue;
                }
            };
            match writer.write(&parsed.record) {
                Ok(()) => conversion.written += 1,
                Err(WriteError::Marc { record_id, source }) if !strict => {
                    conversion
                        .unwritable
                        .push(format!("{} ({record_id}): {source}", parsed.location));
                }
                Err(error) => return Err(write_error(error)),
            }
        }
        writer.finish().map_err(write_error)?;
        Ok(())
    })();
    match result {
        Ok(()) => Ok(conversion),
        Err(error) => {
            // Leave no half-written file behind; the error is what the caller needs.
            let _ = std::fs::remove_file(output);
            Err(error)
        }
    }
}
