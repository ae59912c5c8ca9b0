//! MARC21 records: the structure (leader, control fields, data fields with indicators and
//! subfields) and its encodings: ISO 2709 ([`iso2709`]) and MARCXML ([`marcxml`]).
//!
//! A [`MarcRecord`] always holds Unicode text: readers decode MARC-8, UTF-8 and the other
//! charsets of [`Charset`] on the way in, and writers produce UTF-8.

pub mod charset;
pub mod iso2709;
pub mod marc8;
mod marc8_tables;
pub mod marcxml;

pub use charset::Charset;

use serde::{Deserialize, Serialize};

/// Field terminator (ISO 2709 IS2).
pub const FIELD_TERMINATOR: u8 = 0x1E;
/// Record terminator (ISO 2709 IS3).
pub const RECORD_TERMINATOR: u8 = 0x1D;
/// Subfield delimiter (ISO 2709 IS1).
pub const SUBFIELD_DELIMITER: u8 = 0x1F;
/// Length of the leader in bytes.
pub const LEADER_LEN: usize = 24;
/// The largest record ISO 2709 can describe: the record length has five digits.
pub const RECORD_LEN_MAX: usize = 99_999;

/// The 24-character leader. Always ASCII: readers replace anything else with a space and
/// say so in a warning.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Leader(String);

impl Leader {
    /// A leader for a new UTF-8 bibliographic record of a book (`nam`), with the lengths
    /// left for the writer to fill in.
    pub fn new_book() -> Self {
        Leader("00000nam a2200000 i 4500".to_string())
    }

    /// Builds a leader from text, padding or cutting it to 24 characters and replacing
    /// anything that is not printable ASCII with a space. Returns the leader and whether
    /// the input had to be changed.
    pub fn from_text(text: &str) -> (Self, bool) {
        let mut out = String::with_capacity(LEADER_LEN);
        let mut changed = false;
        for c in text.chars().take(LEADER_LEN) {
            if c.is_ascii_graphic() || c == ' ' {
                out.push(c);
            } else {
                out.push(' ');
                changed = true;
            }
        }
        while out.len() < LEADER_LEN {
            out.push(' ');
            changed = true;
        }
        if text.chars().count() > LEADER_LEN {
            changed = true;
        }
        (Leader(out), changed)
    }

    /// The leader as text (24 ASCII characters).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The character at `position` (0-based), or a space.
    pub fn get(&self, position: usize) -> char {
        self.0.as_bytes().get(position).map_or(' ', |&b| b as char)
    }

    /// Sets the character at `position`; non-ASCII or out-of-range is ignored.
    pub fn set(&mut self, position: usize, value: char) {
        if position < LEADER_LEN && (value.is_ascii_graphic() || value == ' ') {
            let mut bytes = std::mem::take(&mut self.0).into_bytes();
            bytes[position] = value as u8;
            // Only ASCII went in, so the bytes are still UTF-8.
            self.0 = String::from_utf8(bytes).unwrap_or_else(|_| " ".repeat(LEADER_LEN));
        }
    }

    /// Sets what the structure of a record Jalin writes fixes: UTF-8 (09), two indicators
    /// and one-character subfield codes (10-11), and the entry map `4500` (20-23).
    pub fn normalize_structure(&mut self) {
        self.set(9, 'a');
        self.set(10, '2');
        self.set(11, '2');
        for (i, c) in "4500".chars().enumerate() {
            self.set(20 + i, c);
        }
    }

    /// Record status (leader/05): `n` new, `c` corrected, `d` deleted, ...
    pub fn status(&self) -> char {
        self.get(5)
    }

    /// Type of record (leader/06): `a` language material, `g` projected medium, ...
    pub fn record_type(&self) -> char {
        self.get(6)
    }

    /// Bibliographic level (leader/07): `m` monograph, `s` serial, ...
    pub fn bibliographic_level(&self) -> char {
        self.get(7)
    }
}

impl std::fmt::Debug for Leader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Leader({:?})", self.0)
    }
}

/// One MARC field: a control field (tags 001-009) or a data field.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Field {
    /// A control field (tag 001-009): a tag and a value, no indicators or subfields.
    Control(ControlField),
    /// A data field: a tag, two indicators and subfields.
    Data(DataField),
}

impl Field {
    /// The field's tag.
    pub fn tag(&self) -> &str {
        match self {
            Field::Control(field) => &field.tag,
            Field::Data(field) => &field.tag,
        }
    }
}

/// A control field (001-009).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ControlField {
    /// Three-character tag.
    pub tag: String,
    /// The value.
    pub value: String,
}

/// A data field (010-999 and the local alphabetic tags some systems use).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DataField {
    /// Three-character tag.
    pub tag: String,
    /// First indicator.
    pub ind1: char,
    /// Second indicator.
    pub ind2: char,
    /// Subfields in order.
    pub subfields: Vec<Subfield>,
}

impl DataField {
    /// A data field with the given tag, indicators and `(code, value)` subfields.
    pub fn new(tag: &str, ind1: char, ind2: char, subfields: &[(char, &str)]) -> Self {
        DataField {
            tag: tag.to_string(),
            ind1,
            ind2,
            subfields: subfields
                .iter()
                .map(|(code, value)| Subfield {
                    code: *code,
                    value: (*value).to_string(),
                })
                .collect(),
        }
    }

    /// The value of the first subfield with this code.
    pub fn first(&self, code: char) -> Option<&str> {
        self.subfields
            .iter()
            .find(|s| s.code == code)
            .map(|s| s.value.as_str())
    }

    /// Every value of the subfields with this code, in order.
    pub fn all(&self, code: char) -> impl Iterator<Item = &str> {
        self.subfields
            .iter()
            .filter(move |s| s.code == code)
            .map(|s| s.value.as_str())
    }

    /// The values of the subfields whose codes are in `codes`, joined by a space.
    pub fn joined(&self, codes: &str) -> String {
        let mut out = String::new();
        for subfield in self.subfields.iter().filter(|s| codes.contains(s.code)) {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(subfield.value.trim());
        }
        out
    }
}

/// A subfield: a one-character code and a value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Subfield {
    /// The subfield code (`a`, `b`, `6`, ...).
    pub code: char,
    /// The value.
    pub value: String,
}

/// A MARC record: the leader and the fields in their order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MarcRecord {
    /// The leader.
    pub leader: Leader,
    /// The fields in order.
    pub fields: Vec<Field>,
}

/// Whether a tag names a control field: `001` to `009` (numeric tags below `010`).
/// Alphabetic local tags (`FMT`, `CAT`) are data fields, as in pymarc and ruby-marc.
pub fn is_control_tag(tag: &str) -> bool {
    tag.len() == 3 && tag.bytes().all(|b| b.is_ascii_digit()) && tag < "010"
}

impl MarcRecord {
    /// An empty record with the given leader.
    pub fn new(leader: Leader) -> Self {
        MarcRecord {
            leader,
            fields: Vec::new(),
        }
    }

    /// The value of the first control field with this tag.
    pub fn control(&self, tag: &str) -> Option<&str> {
        self.fields.iter().find_map(|f| match f {
            Field::Control(c) if c.tag == tag => Some(c.value.as_str()),
            _ => None,
        })
    }

    /// The data fields with this tag, in order.
    pub fn data_fields<'a>(&'a self, tag: &'a str) -> impl Iterator<Item = &'a DataField> + 'a {
        self.fields.iter().filter_map(move |f| match f {
            Field::Data(d) if d.tag == tag => Some(d),
            _ => None,
        })
    }

    /// The first data field with this tag.
    pub fn data_field<'a>(&'a self, tag: &'a str) -> Option<&'a DataField> {
        self.data_fields(tag).next()
    }

    /// Appends a control field.
    pub fn push_control(&mut self, tag: &str, value: &str) {
        self.fields.push(Field::Control(ControlField {
            tag: tag.to_string(),
            value: value.to_string(),
        }));
    }

    /// Sets the first control field with this tag (removing any others), or appends it.
    pub fn set_control(&mut self, tag: &str, value: &str) {
        let mut seen = false;
        self.fields.retain_mut(|f| match f {
            Field::Control(c) if c.tag == tag => {
                if seen {
                    return false;
                }
                seen = true;
                c.value = value.to_string();
                true
            }
            _ => true,
        });
        if !seen {
            self.push_control(tag, value);
        }
    }

    /// Appends a data field.
    pub fn push_data(&mut self, field: DataField) {
        self.fields.push(Field::Data(field));
    }
}

/// Something a reader noticed and repaired or worked around; the record was kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// The field's tag, where the warning is about one field.
    pub tag: Option<String>,
    /// What was wrong and what the reader did about it.
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.tag {
            Some(tag) => write!(f, "field {tag}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}
