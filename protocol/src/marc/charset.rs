//! The character sets MARC records arrive in, and decoding them to Unicode.

use serde::{Deserialize, Serialize};

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
    /// DanMARC2, the Danish national format's set: Latin-1 with `@` escapes.
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

/// DanMARC2: Latin-1, where `@` escapes: `@` and four hex digits is that Unicode code
/// point; `@` and any other character is that character (`@@` is `@`, `@*` is `*`).
/// Not yet decoded: `@U` and two hex digits (an ISO 5426 character by code), kept as
/// written and counted as unmapped.
fn decode_danmarc(bytes: &[u8]) -> DecodedText {
    let mut text = String::with_capacity(bytes.len());
    let mut unmapped = 0;
    let mut pos = 0;
    while pos < bytes.len() {
        let byte = bytes[pos];
        if byte != b'@' {
            text.push(byte as char);
            pos += 1;
            continue;
        }
        let hex = bytes
            .get(pos + 1..pos + 5)
            .and_then(|h| std::str::from_utf8(h).ok());
        if let Some(code) = hex.and_then(|h| u32::from_str_radix(h, 16).ok()) {
            match char::from_u32(code) {
                Some(c) => text.push(c),
                None => {
                    text.push(char::REPLACEMENT_CHARACTER);
                    unmapped += 1;
                }
            }
            pos += 5;
        } else if bytes.get(pos + 1) == Some(&b'U') {
            // "@U" and two hex digits names an ISO 5426 character by its code; Jalin has
            // no ISO 5426 table yet, so the escape is kept as written and counted.
            text.push('@');
            unmapped += 1;
            pos += 1;
        } else if let Some(&next) = bytes.get(pos + 1) {
            text.push(next as char);
            pos += 2;
        } else {
            text.push('@');
            pos += 1;
        }
    }
    DecodedText { text, unmapped }
}

/// Whether bytes that claim to be MARC-8 are really UTF-8: they hold multibyte UTF-8
/// sequences, decode as UTF-8 without error, and hold no MARC-8 escape. ANSEL's
/// combining marks (0xE0-0xFE) are followed by ASCII letters, never by UTF-8 continuation
/// bytes, so real MARC-8 text with diacritics does not pass.
pub fn looks_like_utf8(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| b >= 0x80) && !bytes.contains(&0x1B) && std::str::from_utf8(bytes).is_ok()
}
