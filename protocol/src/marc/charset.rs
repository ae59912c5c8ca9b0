//! The character sets MARC records arrive in, and decoding them to Unicode.

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

/// A character set of MARC data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Charset {
    /// UTF-8 (leader/09 `a`).
    Utf8,
    /// MARC-8 (leader/09 blank), the Library of Congress's ISO 2022 based set.
    Marc8,
    /// ISO 8859-1, which some European systems wrote despite the leader.
    Latin1,
    /// DanMARC2, the Danish national format's set: Latin-1 with `@` escapes and
    /// diacritics before their letter.
    Danmarc,
}

impl Charset {
    /// Parses a charset name as YAZ and iconv spell them (`utf-8`, `marc-8`, `iso-8859-1`,
    /// `danmarc`), case-insensitively.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "utf-8" | "utf8" => Some(Charset::Utf8),
            "marc-8" | "marc8" | "marc8s" | "ansel" => Some(Charset::Marc8),
            "iso-8859-1" | "latin1" | "latin-1" | "iso8859-1" => Some(Charset::Latin1),
            "danmarc" | "danmarc2" => Some(Charset::Danmarc),
            _ => None,
        }
    }

    /// The name YAZ uses for this charset.
    pub fn name(self) -> &'static str {
        match self {
            Charset::Utf8 => "utf-8",
            Charset::Marc8 => "marc-8",
            Charset::Latin1 => "iso-8859-1",
            Charset::Danmarc => "danmarc",
        }
    }
}

impl std::fmt::Display for Charset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Invalid UTF-8 at this byte offset (within the decoded piece).
    #[error("invalid UTF-8 at byte {offset} of the value")]
    InvalidUtf8 {
        /// Byte offset of the first invalid byte.
        offset: usize,
    },
}

/// Text decoded from one field or subfield, with how many characters had no mapping.
#[derive(Debug)]
pub struct DecodedText {
    /// The Unicode text.
    pub text: String,
    /// Characters with no mapping, replaced by U+FFFD.
    pub unmapped: usize,
}

/// Decodes `bytes` from `charset` to Unicode.
pub fn decode(bytes: &[u8], charset: Charset) -> Result<DecodedText, DecodeError> {
    match charset {
        Charset::Utf8 => match std::str::from_utf8(bytes) {
            Ok(text) => Ok(DecodedText {
                text: text.to_string(),
                unmapped: 0,
            }),
            Err(error) => Err(DecodeError::InvalidUtf8 {
                offset: error.valid_up_to(),
            }),
        },
        Charset::Marc8 => {
            let decoded = super::marc8::decode(bytes);
            Ok(DecodedText {
                text: decoded.text,
                unmapped: decoded.unmapped,
            })
        }
        Charset::Latin1 => Ok(DecodedText {
            text: bytes.iter().map(|&b| b as char).collect(),
            unmapped: 0,
        }),
        Charset::Danmarc => Ok(decode_danmarc(bytes)),
    }
}

/// DanMARC2 as YAZ 5 reads it: Latin-1, where
/// - `@@`, `@*` and `@¤` are those characters, `@å` and `@Å` the letters ꜳ and Ꜳ;
/// - `@` and four hex digits is that Unicode code point;
/// - `@U` and two hex digits is an ISO 5426 character by its code ([`iso5426`]);
/// - diacritics come before their letter: combining marks, and the spacing accents
///   ^ _ ` ¨ ¯ ´ ¸ ˘ ˇ ˛ ˝ ˚, which stand for their combining forms.
///
/// Diacritics are moved after their letter and the result is NFC.
fn decode_danmarc(bytes: &[u8]) -> DecodedText {
    let mut text = String::with_capacity(bytes.len());
    let mut combining: Vec<char> = Vec::new();
    let mut unmapped = 0;
    let mut pos = 0;
    let hex = |from: usize, len: usize| {
        bytes
            .get(from..from + len)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok())
    };
    while pos < bytes.len() {
        let byte = bytes[pos];
        let (ch, width) = if byte == b'@' {
            match (bytes.get(pos + 1), hex(pos + 2, 2), hex(pos + 1, 4)) {
                (Some(&next @ (b'@' | b'*' | 0xA4)), _, _) => (Some(next as char), 2),
                (Some(0xE5), _, _) => (Some('\u{A733}'), 2),
                (Some(0xC5), _, _) => (Some('\u{A732}'), 2),
                (Some(b'U'), Some(code), _) => (Some(iso5426(code as u8)), 4),
                (_, _, Some(code)) => (char::from_u32(code), 5),
                (Some(&next), _, _) => (Some(next as char), 2),
                (None, _, _) => (Some('@'), 1),
            }
        } else {
            (Some(byte as char), 1)
        };
        pos += width;
        match ch.map(as_combining) {
            Some((c, true)) => combining.push(c),
            Some((c, false)) => {
                text.push(c);
                text.extend(combining.drain(..));
            }
            None => {
                unmapped += 1;
                text.push(char::REPLACEMENT_CHARACTER);
                text.extend(combining.drain(..));
            }
        }
    }
    text.extend(combining.drain(..));
    DecodedText {
        text: text.nfc().collect(),
        unmapped,
    }
}

/// A DanMARC2 character as (character, whether it is a diacritic on the next letter):
/// spacing accents become their combining forms.
fn as_combining(c: char) -> (char, bool) {
    let combining = match c {
        '^' => '\u{0302}',
        '_' => '\u{0332}',
        '`' => '\u{0300}',
        '\u{A8}' => '\u{0308}',
        '\u{AF}' => '\u{0304}',
        '\u{B4}' => '\u{0301}',
        '\u{B8}' => '\u{0327}',
        '\u{2D8}' => '\u{0306}',
        '\u{2C7}' => '\u{030C}',
        '\u{2DB}' => '\u{0328}',
        '\u{2DD}' => '\u{030B}',
        '\u{2DA}' => '\u{030A}',
        c => return (c, is_combining_mark(c)),
    };
    (combining, true)
}

fn is_combining_mark(c: char) -> bool {
    matches!(c, '\u{0300}'..='\u{036F}' | '\u{1AB0}'..='\u{1AFF}' | '\u{1DC0}'..='\u{1DFF}' | '\u{20D0}'..='\u{20FF}' | '\u{FE20}'..='\u{FE2F}')
}

/// The ISO 5426 characters DanMARC2 names with `@U` and two hex digits; codes not
/// listed are Latin-1. (Read off YAZ 5.34's DanMARC2 decoder.)
fn iso5426(code: u8) -> char {
    match code {
        0xA7 => '\u{02B9}',
        0xA8 | 0xFC => '\u{0308}',
        0xAE => '\u{02BC}',
        0xB0 => '\u{02BB}',
        0xB7 => '\u{02BA}',
        0xD8 => '\u{2014}',
        0xD9 => '\u{2191}',
        0xDA => '\u{2193}',
        0xE0 => '\u{0309}',
        0xEB => '\u{FE20}',
        0xEC => '\u{FE21}',
        0xF7 => '\u{0326}',
        0xF8 => '\u{031C}',
        0xF9 => '\u{032E}',
        0xFA => '\u{FE22}',
        other => other as char,
    }
}

/// Whether bytes that claim to be MARC-8 are really UTF-8: they hold multibyte UTF-8
/// sequences, decode as UTF-8 without error, and hold no MARC-8 escape. ANSEL's
/// combining marks (0xE0-0xFE) are followed by ASCII letters, never by UTF-8 continuation
/// bytes, so real MARC-8 text with diacritics does not pass.
pub fn looks_like_utf8(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| b >= 0x80) && !bytes.contains(&0x1B) && std::str::from_utf8(bytes).is_ok()
}
