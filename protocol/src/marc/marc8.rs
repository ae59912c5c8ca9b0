//! MARC-8 to Unicode, with the Library of Congress code tables.
//!
//! MARC-8 switches character sets with ISO 2022 escape sequences: G0 starts as Basic Latin
//! (ASCII), G1 as ANSEL (Extended Latin); East Asian characters (EACC) take three bytes each.
//! Combining diacritics come *before* their base letter in MARC-8 and after it in Unicode,
//! so they are held back until the base arrives. The result is in Unicode NFC, as pymarc and
//! most library systems store it.
//! See <https://www.loc.gov/marc/specifications/speccharmarc8.html>.

use super::marc8_tables::{CHARSETS, ODD_MAP};
use unicode_normalization::UnicodeNormalization;

const BASIC_LATIN: u8 = 0x42;
const ANSEL: u8 = 0x45;
const EACC: u8 = 0x31;
const ESC: u8 = 0x1B;

/// The result of decoding a MARC-8 string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The text in Unicode NFC.
    pub text: String,
    /// How many byte sequences had no mapping and became U+FFFD.
    pub unmapped: usize,
}

fn table(charset: u8) -> Option<super::marc8_tables::CodeTable> {
    CHARSETS
        .iter()
        .find(|(final_byte, _)| *final_byte == charset)
        .map(|(_, t)| *t)
}

fn lookup(charset: u8, code: u32) -> Option<(char, bool)> {
    let table = table(charset)?;
    let found = |code: u32| {
        table
            .binary_search_by_key(&code, |&(c, _, _)| c)
            .ok()
            .and_then(|i| char::from_u32(table[i].1).map(|ch| (ch, table[i].2)))
    };
    // A 94-character set may be designated to G0 or G1: its table lists it at one of the
    // two positions, so try the other one too.
    found(code).or_else(|| {
        if code < 0x100 {
            found(code ^ 0x80)
        } else {
            None
        }
    })
}

fn lookup_odd(code: u32) -> Option<char> {
    ODD_MAP
        .binary_search_by_key(&code, |&(c, _)| c)
        .ok()
        .and_then(|i| char::from_u32(ODD_MAP[i].1))
}

/// Decodes MARC-8 bytes (one subfield or one control field: escapes reset at each) to
/// Unicode NFC.
pub fn decode(bytes: &[u8]) -> Decoded {
    let mut g0 = BASIC_LATIN;
    let mut g1 = ANSEL;
    let mut out = String::with_capacity(bytes.len());
    let mut combining: Vec<char> = Vec::new();
    let mut unmapped = 0;
    let mut pos = 0;
    while pos < bytes.len() {
        let byte = bytes[pos];
        if byte == ESC {
            if let Some(consumed) = escape(&bytes[pos..], &mut g0, &mut g1) {
                pos += consumed;
                continue;
            }
            // A lone or unknown escape: keep nothing of it, go on with the next byte.
            pos += 1;
            unmapped += 1;
            continue;
        }
        let multibyte = g0 == EACC && (0x21..=0x7F).contains(&byte);
        let (code, charset, width) = if multibyte {
            if pos + 3 > bytes.len() {
                unmapped += 1;
                break;
            }
            let code =
                u32::from(byte) << 16 | u32::from(bytes[pos + 1]) << 8 | u32::from(bytes[pos + 2]);
            (code, g0, 3)
        } else if byte >= 0x80 {
            (u32::from(byte), g1, 1)
        } else {
            (u32::from(byte), g0, 1)
        };
        pos += width;
        if width == 1 && (code < 0x20 || (0x81..0xA0).contains(&code)) {
            // C0 and C1 controls (and ANSEL's joiner marks in that range) carry no text.
            continue;
        }
        let mapped = if code == 0x20 && width == 1 {
            Some((' ', false))
        } else {
            lookup(charset, code)
                .or_else(|| {
                    if charset != BASIC_LATIN && code < 0x80 {
                        lookup(BASIC_LATIN, code)
                    } else {
                        None
                    }
                })
                .or_else(|| lookup_odd(code).map(|c| (c, false)))
        };
        match mapped {
            Some((ch, true)) => combining.push(ch),
            Some((ch, false)) => {
                out.push(ch);
                out.extend(combining.drain(..));
            }
            None => {
                unmapped += 1;
                out.push(char::REPLACEMENT_CHARACTER);
                out.extend(combining.drain(..));
            }
        }
    }
    // Diacritics with no base letter after them: keep them rather than drop text.
    out.extend(combining.drain(..));
    Decoded {
        text: out.nfc().collect(),
        unmapped,
    }
}

/// Applies the escape sequence at the start of `bytes`; returns how many bytes it took.
fn escape(bytes: &[u8], g0: &mut u8, g1: &mut u8) -> Option<usize> {
    let at = |i: usize| bytes.get(i).copied();
    match at(1)? {
        // ESC ( F, ESC , F: a 94-set to G0. ESC ) F, ESC - F: a 96-set to G1.
        b'(' | b',' => {
            *g0 = at(2)?;
            Some(3)
        }
        b')' | b'-' => {
            *g1 = at(2)?;
            Some(3)
        }
        // ESC $ F / ESC $ , F: a multibyte set (EACC) to G0; ESC $ ) F / ESC $ - F to G1.
        b'$' => match at(2)? {
            b',' => {
                *g0 = at(3)?;
                Some(4)
            }
            b')' | b'-' => {
                *g1 = at(3)?;
                Some(4)
            }
            final_byte => {
                *g0 = final_byte;
                Some(3)
            }
        },
        // ESC s: back to ASCII. ESC g / ESC b / ESC p: Greek symbols, subscripts,
        // superscripts (technique 1, "locking shift" into G0).
        b's' => {
            *g0 = BASIC_LATIN;
            Some(2)
        }
        final_byte if table(final_byte).is_some() => {
            *g0 = final_byte;
            Some(2)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansel_diacritic_goes_after_its_base_letter() {
        // ANSEL 0xE2 is the combining acute accent; "Jos\xE2e" is "José".
        assert_eq!(decode(b"Jos\xE2e").text, "Jos\u{e9}");
    }

    #[test]
    fn escape_to_cyrillic_and_back() {
        let decoded = decode(b"\x1b(NMIR\x1b(B ok");
        assert_eq!(decoded.unmapped, 0);
        assert!(decoded.text.ends_with(" ok"));
        assert!(decoded
            .text
            .chars()
            .next()
            .is_some_and(|c| ('\u{400}'..'\u{500}').contains(&c)));
    }

    #[test]
    fn truncated_eacc_is_counted_not_panicked() {
        let decoded = decode(b"\x1b$1\x21\x30");
        assert_eq!(decoded.unmapped, 1);
    }
}
