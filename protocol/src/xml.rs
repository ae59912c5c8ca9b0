//! Small helpers for writing XML by hand: escaping, and keeping out characters XML 1.0
//! cannot carry.

/// Whether XML 1.0 can carry this character at all.
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// Appends `text` escaped for element content; characters XML cannot carry (C0 controls
/// other than tab and line ends) become U+FFFD so the document stays well-formed.
pub fn escape_text(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if xml_char(c) => out.push(c),
            _ => out.push(char::REPLACEMENT_CHARACTER),
        }
    }
}

/// Appends `text` escaped for a double-quoted attribute value.
pub fn escape_attr(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if xml_char(c) => out.push(c),
            _ => out.push(char::REPLACEMENT_CHARACTER),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_drops_controls() {
        let mut out = String::new();
        escape_text(&mut out, "a<b & c>\u{1b}");
        assert_eq!(out, "a&lt;b &amp; c&gt;\u{FFFD}");
        let mut out = String::new();
        escape_attr(&mut out, "\"x\"\n");
        assert_eq!(out, "&quot;x&quot;&#10;");
    }
}
