//! ISBN and ISSN: validation and normalisation.
//!
//! Every valid ISBN is kept as ISBN-13, so the 10- and 13-digit forms of one book compare
//! equal. Text that looks like an ISBN but fails its checksum is kept apart, never silently
//! "fixed", since a cataloguer may need to see it.

/// The outcome of reading an ISBN from a field such as 020 $a (`"0-19-853453-1 (pbk.)"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Isbn {
    /// A valid ISBN, as 13 digits.
    Valid(String),
    /// Digits that look like an ISBN but whose check digit or length is wrong, as written
    /// (hyphens and qualifiers removed).
    Invalid(String),
}

/// Pulls the ISBN out of text: the first run of digits, hyphens, spaces and a final `X`,
/// ignoring qualifiers such as `(pbk.)`. Returns `None` when there are no digits at all.
pub fn parse_isbn(text: &str) -> Option<Isbn> {
    let mut candidate = String::new();
    let mut started = false;
    for c in text.chars() {
        match c {
            '0'..='9' => {
                started = true;
                candidate.push(c);
            }
            'x' | 'X' if started => {
                candidate.push('X');
                break;
            }
            '-' | ' ' | '\u{2010}' | '\u{2011}' | '\u{2013}' if started => {}
            _ if started => break,
            _ => {}
        }
    }
    if candidate.is_empty() {
        return None;
    }
    Some(match candidate.len() {
        10 if isbn10_valid(&candidate) => Isbn::Valid(isbn10_to_13(&candidate)),
        13 if isbn13_valid(&candidate) => Isbn::Valid(candidate),
        _ => Isbn::Invalid(candidate),
    })
}

fn digit(c: char) -> u32 {
    c.to_digit(10).unwrap_or(10)
}

fn isbn10_valid(isbn: &str) -> bool {
    let sum: u32 = isbn
        .chars()
        .enumerate()
        .map(|(i, c)| {
            let value = if c == 'X' && i == 9 {
                10
            } else {
                c.to_digit(10).unwrap_or(99)
            };
            value * (10 - i as u32)
        })
        .sum();
    isbn[..9].chars().all(|c| c.is_ascii_digit()) && sum.is_multiple_of(11)
}

fn isbn13_check(first12: &str) -> u32 {
    let sum: u32 = first12
        .chars()
        .enumerate()
        .map(|(i, c)| digit(c) * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    (10 - sum % 10) % 10
}

fn isbn13_valid(isbn: &str) -> bool {
    isbn.chars().all(|c| c.is_ascii_digit())
        && (isbn.starts_with("978") || isbn.starts_with("979"))
        && isbn13_check(&isbn[..12]) == digit(isbn.chars().last().unwrap_or('x'))
}

/// Converts a valid ISBN-10 to ISBN-13 (prefix 978, new check digit).
pub fn isbn10_to_13(isbn10: &str) -> String {
    let mut out = format!("978{}", &isbn10[..9]);
    let check = isbn13_check(&out);
    out.push(char::from_digit(check, 10).unwrap_or('0'));
    out
}

/// Converts an ISBN-13 with prefix 978 to ISBN-10; `None` for 979 ISBNs (they have none).
pub fn isbn13_to_10(isbn13: &str) -> Option<String> {
    let body = isbn13.strip_prefix("978")?.get(..9)?;
    let sum: u32 = body
        .chars()
        .enumerate()
        .map(|(i, c)| digit(c) * (10 - i as u32))
        .sum();
    let check = (11 - sum % 11) % 11;
    let check = if check == 10 {
        'X'
    } else {
        char::from_digit(check, 10)?
    };
    Some(format!("{body}{check}"))
}

/// Normalises an ISSN (`"0028-0836"`, `"0028 0836"`) to `NNNN-NNNC`, or `None` when its
/// check digit is wrong.
pub fn normalize_issn(text: &str) -> Option<String> {
    let chars: Vec<char> = text
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == 'x' || *c == 'X')
        .collect();
    if chars.len() != 8 || !chars[..7].iter().all(char::is_ascii_digit) {
        return None;
    }
    let sum: u32 = chars[..7]
        .iter()
        .enumerate()
        .map(|(i, &c)| digit(c) * (8 - i as u32))
        .sum();
    let check = (11 - sum % 11) % 11;
    let expected = if check == 10 {
        'X'
    } else {
        char::from_digit(check, 10)?
    };
    if chars[7].to_ascii_uppercase() != expected {
        return None;
    }
    let s: String = chars.iter().map(char::to_ascii_uppercase).collect();
    Some(format!("{}-{}", &s[..4], &s[4..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isbn10_and_13_forms_agree() {
        assert_eq!(
            parse_isbn("0-19-853453-1 (pbk.)"),
            Some(Isbn::Valid("9780198534532".into()))
        );
        assert_eq!(
            parse_isbn("978-0-19-853453-2"),
            Some(Isbn::Valid("9780198534532".into()))
        );
        assert_eq!(isbn13_to_10("9780198534532").as_deref(), Some("0198534531"));
        assert_eq!(
            parse_isbn("979-10-90636-07-1"),
            Some(Isbn::Valid("9791090636071".into()))
        );
    }

    #[test]
    fn x_check_digit() {
        assert_eq!(
            parse_isbn("080442957X"),
            Some(Isbn::Valid("9780804429573".into()))
        );
        assert_eq!(isbn13_to_10("9780804429573").as_deref(), Some("080442957X"));
    }

    #[test]
    fn bad_checksum_is_kept_apart() {
        assert_eq!(
            parse_isbn("0-19-853453-2"),
            Some(Isbn::Invalid("0198534532".into()))
        );
        assert_eq!(parse_isbn("12345"), Some(Isbn::Invalid("12345".into())));
        assert_eq!(parse_isbn("(pbk.)"), None);
    }

    #[test]
    fn issn() {
        assert_eq!(normalize_issn("0028-0836").as_deref(), Some("0028-0836"));
        assert_eq!(normalize_issn("0028-0837"), None);
        assert_eq!(normalize_issn("2434-561x").as_deref(), Some("2434-561X"));
    }
}
