//! Dublin Core (`oai_dc`) from MARC, following the Library of Congress MARC to Dublin Core
//! crosswalk (<https://www.loc.gov/marc/marc2dc.html>), unqualified.

use crate::marc::{DataField, Field, MarcRecord};
use crate::record::clean;
use crate::xml::escape_text;

/// The oai_dc namespace.
pub const OAI_DC_NAMESPACE: &str = "http://www.openarchives.org/OAI/2.0/oai_dc/";
/// The Dublin Core elements namespace.
pub const DC_NAMESPACE: &str = "http://purl.org/dc/elements/1.1/";

/// One Dublin Core element and its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Element {
    /// The element name (`title`, `creator`, ...).
    pub name: &'static str,
    /// Its value.
    pub value: String,
}

fn joined(field: &DataField, codes: &str) -> String {
    clean(&field.joined(codes))
}

/// The type of resource from leader/06, in DCMI Type words.
fn dc_type(record_type: char) -> Option<&'static str> {
    Some(match record_type {
        'a' | 'c' | 'd' | 't' => "Text",
        'e' | 'f' | 'g' | 'k' => "Image",
        'i' | 'j' => "Sound",
        'm' => "Software",
        'o' | 'p' => "Collection",
        'r' => "PhysicalObject",
        _ => return None,
    })
}

/// The Dublin Core elements of a MARC record, in the crosswalk's order.
pub fn elements(record: &MarcRecord) -> Vec<Element> {
    let mut out: Vec<Element> = Vec::new();
    let mut push = |name: &'static str, value: String| {
        if !value.is_empty() && !out.iter().any(|e| e.name == name && e.value == value) {
            out.push(Element { name, value });
        }
    };
    let data = || {
        record.fields.iter().filter_map(|f| {
            if let Field::Data(d) = f {
                Some(d)
            } else {
                None
            }
        })
    };
    for field in data() {
        match field.tag.as_str() {
            "245" => push("title", joined(field, "abfgknps")),
            "246" => push("title", joined(field, "abfgnp")),
            _ => {}
        }
    }
    for field in data() {
        if matches!(
            field.tag.as_str(),
            "100" | "110" | "111" | "700" | "710" | "711" | "720"
        ) {
            push("creator", joined(field, "abcdnq"));
        }
    }
    for field in data() {
        match field.tag.as_str() {
            "600" | "610" | "611" | "630" | "650" | "653" => {
                let mut heading = String::new();
                for subfield in &field.subfields {
                    let part = clean(&subfield.value);
                    match subfield.code {
                        'v' | 'x' | 'y' | 'z' if !heading.is_empty() => heading.push_str("--"),
                        'a' | 'b' | 'c' | 'd' | 'q' | 't' | 'v' | 'x' | 'y' | 'z'
                            if !heading.is_empty() =>
                        {
                            heading.push(' ')
                        }
                        'a' | 'b' | 'c' | 'd' | 'q' | 't' | 'v' | 'x' | 'y' | 'z' => {}
                        _ => continue,
                    }
                    heading.push_str(&part);
                }
                push("subject", heading);
            }
            "050" => push("subject", joined(field, "ab")),
            "082" => push("subject", joined(field, "a")),
            _ => {}
        }
    }
    for field in data() {
        let tag = field.tag.as_str();
        if tag.starts_with('5') && !matches!(tag, "506" | "530" | "540" | "546") {
            push("description", field.joined("a").trim().to_string());
        }
    }
    for field in data() {
        if field.tag == "260" || (field.tag == "264" && field.ind2 == '1') {
            push("publisher", joined(field, "ab"));
        }
    }
    for field in data() {
        if field.tag == "260" || (field.tag == "264" && field.ind2 == '1') {
            push("date", joined(field, "cg"));
        }
    }
    if let Some(kind) = dc_type(record.leader.record_type()) {
        push("type", kind.to_string());
    }
    for field in data() {
        match field.tag.as_str() {
            "655" => push("type", joined(field, "a")),
            "300" => push("format", joined(field, "abce")),
            "340" => push("format", joined(field, "a")),
            "856" => push("format", joined(field, "q")),
            _ => {}
        }
    }
    for field in data() {
        match field.tag.as_str() {
            "020" => {
                if let Some(v) = field.first('a') {
                    push(
                        "identifier",
                        format!("URN:ISBN:{}", v.split_whitespace().next().unwrap_or("")),
                    );
                }
            }
            "022" => {
                if let Some(v) = field.first('a') {
                    push("identifier", format!("URN:ISSN:{}", v.trim()));
                }
            }
            "024" | "010" => push("identifier", joined(field, "a")),
            "856" => push(
                "identifier",
                field.first('u').unwrap_or("").trim().to_string(),
            ),
            "786" => push("source", joined(field, "ot")),
            _ => {}
        }
    }
    if let Some(lang) = record
        .control("008")
        .and_then(|f| f.get(35..38))
        .filter(|l| l.trim().len() == 3)
    {
        push("language", lang.to_string());
    }
    for field in data() {
        match field.tag.as_str() {
            "041" => {
                for subfield in field
                    .subfields
                    .iter()
                    .filter(|s| "abdefghj".contains(s.code))
                {
                    push("language", subfield.value.trim().to_string());
                }
            }
            "546" => push("language", joined(field, "a")),
            _ => {}
        }
    }
    for field in data() {
        let tag = field.tag.as_str();
        if tag == "530" || ("760".."788").contains(&tag) {
            push(
                "relation",
                joined(field, if tag == "530" { "a" } else { "ot" }),
            );
        }
    }
    for field in data() {
        match field.tag.as_str() {
            "651" | "752" => push("coverage", joined(field, "abcdz")),
            "043" => push("coverage", joined(field, "c")),
            "506" | "540" => push("rights", joined(field, "a")),
            _ => {}
        }
    }
    out
}

/// The record as an `<oai_dc:dc>` element (with its namespaces, so it stands alone or
/// inside an OAI-PMH `<metadata>`).
pub fn to_oai_dc(record: &MarcRecord) -> String {
    let mut out = String::from(
        "<oai_dc:dc xmlns:oai_dc=\"http://www.openarchives.org/OAI/2.0/oai_dc/\" \
         xmlns:dc=\"http://purl.org/dc/elements/1.1/\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xsi:schemaLocation=\"http://www.openarchives.org/OAI/2.0/oai_dc/ http://www.openarchives.org/OAI/2.0/oai_dc.xsd\">\n",
    );
    for element in elements(record) {
        out.push_str("  <dc:");
        out.push_str(element.name);
        out.push('>');
        escape_text(&mut out, &element.value);
        out.push_str("</dc:");
        out.push_str(element.name);
        out.push_str(">\n");
    }
    out.push_str("</oai_dc:dc>\n");
    out
}
