//! The bibliographic record as Jalin shows, searches, deduplicates and lends it.
//!
//! A [`Record`] is a [`Description`] (what a union catalog needs, derived from MARC by a
//! fixed crosswalk) plus the MARC record it came from, kept whole so that MARC in, MARC
//! out loses nothing. Records that arrive without MARC (a spreadsheet) get MARC made for
//! them by [`Description::to_marc`], so every record has both and they always agree.

use crate::isbn::{normalize_issn, parse_isbn, Isbn};
use crate::marc::{DataField, Field, Leader, MarcRecord};
use serde::{Deserialize, Serialize};

/// An identifier from another system (035, 024, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identifier {
    /// The scheme or source: `OCoLC`, `DLC`, `doi`, ... (empty when the field names none).
    pub scheme: String,
    /// The identifier.
    pub value: String,
}

/// Publication, distribution (260 / 264).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publication {
    /// Place of publication.
    pub place: Option<String>,
    /// Publisher.
    pub publisher: Option<String>,
    /// Date as written (`c1998`, `[2005?]`).
    pub date: Option<String>,
}

/// What kind of name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NameKind {
    /// A person (100 / 700).
    #[default]
    Personal,
    /// An organisation (110 / 710).
    Corporate,
    /// A meeting or conference (111 / 711).
    Meeting,
}

/// A name with its role (1XX / 7XX).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Name {
    /// The name as catalogued (`Pramoedya Ananta Toer`, `Tolkien, J. R. R.`).
    pub name: String,
    /// Dates associated with the name (`1925-2006`).
    pub dates: Option<String>,
    /// Relator term or code (`author`, `editor`, `trl`).
    pub role: Option<String>,
    /// Person, organisation or meeting.
    pub kind: NameKind,
    /// Whether this is the main entry (1XX).
    pub main: bool,
}

/// A subject heading with its vocabulary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// The heading, subdivisions joined by ` -- `.
    pub heading: String,
    /// The vocabulary (`lcsh`, `mesh`, or the code in $2); `None` when not specified.
    pub vocabulary: Option<String>,
}

/// Classification numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classification {
    /// Dewey Decimal (082).
    pub ddc: Vec<String>,
    /// Library of Congress (050).
    pub lcc: Vec<String>,
}

/// One copy (item) a library holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holding {
    /// Barcode or item code.
    pub item_id: Option<String>,
    /// Location or branch.
    pub location: Option<String>,
    /// Call number of the copy.
    pub call_number: Option<String>,
    /// Availability as the library's system reported it (`available`, `on loan`, ...).
    pub status: Option<String>,
}

/// The description of a record: every field a union catalog shows, searches, deduplicates
/// and lends by.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Description {
    /// The library's own id for the record (001, else an id derived from the content).
    pub record_id: String,
    /// Control number (001).
    pub control_number: Option<String>,
    /// Control number identifier: whose number 001 is (003).
    pub control_number_source: Option<String>,
    /// Library of Congress Control Number (010 $a).
    pub lccn: Option<String>,
    /// Other system numbers (035 $a: OCLC and others).
    pub other_ids: Vec<Identifier>,
    /// Valid ISBNs, as ISBN-13 (020 $a).
    pub isbns: Vec<String>,
    /// ISBNs that failed their checksum or length, as written (020 $a, $z).
    pub invalid_isbns: Vec<String>,
    /// ISSNs (022 $a).
    pub issns: Vec<String>,
    /// Title proper (245 $a, with $n $p).
    pub title: String,
    /// Remainder of title (245 $b).
    pub subtitle: Option<String>,
    /// Statement of responsibility (245 $c).
    pub responsibility: Option<String>,
    /// Edition (250 $a).
    pub edition: Option<String>,
    /// Publication (264 / 260).
    pub publication: Publication,
    /// Year of publication as a number, when there is one (008/07-10, else 264/260 $c).
    pub year: Option<i32>,
    /// Physical description (300).
    pub physical_description: Option<String>,
    /// Series statements (490 $a, 830 $a).
    pub series: Vec<String>,
    /// Notes (500, 504, 505, 520).
    pub notes: Vec<String>,
    /// Subjects (6XX).
    pub subjects: Vec<Subject>,
    /// Classification (082, 050).
    pub classification: Classification,
    /// Call number (852 $h $i, 090, 099, else 050).
    pub call_number: Option<String>,
    /// Languages as MARC codes (008/35-37, 041 $a).
    pub languages: Vec<String>,
    /// Names with roles (1XX, 7XX).
    pub names: Vec<Name>,
    /// Copies (852, and Koha's 952).
    pub holdings: Vec<Holding>,
    /// Whether the record is marked deleted (leader/05 `d`).
    pub deleted: bool,
}

/// A record: its description and the MARC it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// What the union catalog uses.
    pub description: Description,
    /// The record as MARC, every field kept.
    pub marc: MarcRecord,
}

impl Record {
    /// A record from MARC: the description is derived by the crosswalk.
    pub fn from_marc(marc: MarcRecord) -> Self {
        Record {
            description: Description::from_marc(&marc),
            marc,
        }
    }

    /// A record from a description (a spreadsheet row): MARC is made for it, and the
    /// description is derived back from that MARC so the two agree.
    pub fn from_description(description: &Description) -> Self {
        Self::from_marc(description.to_marc())
    }

    /// The library's own id.
    pub fn id(&self) -> &str {
        &self.description.record_id
    }
}

/// Trims white space and the ISBD punctuation catalogers put at the end of a subfield
/// (` /`, ` :`, ` ;`, ` =`, `,`), and a final period unless it ends an initial or an
/// abbreviation of one letter (`J.`).
pub fn clean(text: &str) -> String {
    let mut s = text.trim();
    loop {
        let before = s;
        s = s
            .trim_end_matches([' ', '/', ':', ';', '=', ','])
            .trim_end();
        if let Some(stripped) = s.strip_suffix('.') {
            let last_word = stripped.rsplit([' ', '.']).next().unwrap_or("");
            let initial =
                last_word.chars().count() == 1 && last_word.chars().all(char::is_uppercase);
            let abbreviation = matches!(
                last_word,
                "ed" | "p" | "cm" | "ill" | "v" | "etc" | "Co" | "Inc" | "Jr" | "Sr" | "St"
            );
            if !initial && !abbreviation {
                s = stripped.trim_end();
            }
        }
        if s == before {
            break;
        }
    }
    s.to_string()
}

fn non_empty(text: String) -> Option<String> {
    if text.is_empty() {
        None
    } else {
        Some(text)
    }
}

/// The first year (four digits standing alone, 1000-2999) in a date statement such as
/// "c1998" or "[1990?]".
pub fn first_year(text: &str) -> Option<i32> {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(3)).find_map(|i| {
        let window = &bytes[i..i + 4];
        let before_ok = i == 0 || !bytes[i - 1].is_ascii_digit();
        let after_ok = bytes.get(i + 4).is_none_or(|b| !b.is_ascii_digit());
        if before_ok && after_ok && window.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(window)
                .ok()?
                .parse()
                .ok()
                .filter(|y| (1000..=2999).contains(y))
        } else {
            None
        }
    })
}

fn vocabulary(field: &DataField) -> Option<String> {
    match field.ind2 {
        '0' => Some("lcsh".into()),
        '1' => Some("lcshac".into()),
        '2' => Some("mesh".into()),
        '3' => Some("nal".into()),
        '5' => Some("cash".into()),
        '6' => Some("rvm".into()),
        '7' => field.first('2').map(clean),
        _ => None,
    }
}

/// The fields a record's subjects come from.
pub const SUBJECT_TAGS: &[&str] = &["600", "610", "611", "630", "648", "650", "651", "655"];

/// A subject field's heading, its subdivisions joined by ` -- ` (`None` when empty).
pub fn subject_heading(field: &DataField) -> Option<String> {
    let mut heading = String::new();
    for subfield in &field.subfields {
        let part = clean(&subfield.value);
        if part.is_empty() {
            continue;
        }
        match subfield.code {
            'a' | 'b' | 'c' | 'd' | 'q' | 't' => {
                if !heading.is_empty() {
                    heading.push(' ');
                }
            }
            'v' | 'x' | 'y' | 'z' => {
                if !heading.is_empty() {
                    heading.push_str(" -- ");
                }
            }
            _ => continue,
        }
        heading.push_str(&part);
    }
    non_empty(heading)
}

/// Content-derived id for a record with no 001: stable across imports of the same row.
fn derived_id(description: &Description) -> String {
    let author = description
        .names
        .first()
        .map(|n| n.name.as_str())
        .unwrap_or("");
    let key = format!(
        "{}|{}|{}|{}|{}",
        description.title.to_lowercase(),
        author.to_lowercase(),
        description.year.map(|y| y.to_string()).unwrap_or_default(),
        description.isbns.first().map(String::as_str).unwrap_or(""),
        description
            .publication
            .publisher
            .as_deref()
            .unwrap_or("")
            .to_lowercase(),
    );
    // FNV-1a, 64 bits: a stable, dependency-free fingerprint (not a security boundary).
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("jalin-{hash:016x}")
}

/// An identifier as written, without the spaces LC pads 001 with or a stray control
/// character (LC's data has a subfield delimiter at the end of a few).
fn trim_id(text: &str) -> String {
    text.trim_matches(|c: char| c.is_whitespace() || c.is_control())
        .to_string()
}

impl Description {
    /// Derives the description from MARC (the crosswalk).
    pub fn from_marc(marc: &MarcRecord) -> Self {
        let mut d = Description {
            control_number: marc.control("001").map(trim_id).filter(|v| !v.is_empty()),
            control_number_source: marc.control("003").map(trim_id).filter(|v| !v.is_empty()),
            deleted: marc.leader.status() == 'd',
            ..Default::default()
        };
        let fixed = marc.control("008").unwrap_or("");
        let fixed_at = |range: std::ops::Range<usize>| fixed.get(range).unwrap_or("");
        let date1 = fixed_at(7..11);
        if date1.bytes().all(|b| b.is_ascii_digit()) && date1.len() == 4 {
            d.year = date1.parse().ok();
        }
        let lang = fixed_at(35..38);
        if lang.len() == 3 && lang.bytes().all(|b| b.is_ascii_lowercase()) {
            d.languages.push(lang.to_string());
        }
        for field in marc.fields.iter().filter_map(|f| match f {
            Field::Data(d) => Some(d),
            Field::Control(_) => None,
        }) {
            d.take_field(field);
        }
        if d.year.is_none() {
            d.year = d.publication.date.as_deref().and_then(first_year);
        }
        if d.call_number.is_none() {
            d.call_number = d
                .holdings
                .iter()
                .find_map(|h| h.call_number.clone())
                .or_else(|| d.classification.lcc.first().cloned());
        }
        d.record_id = match (&d.control_number, &d.control_number_source) {
            (Some(number), _) => number.clone(),
            (None, _) => derived_id(&d),
        };
        d
    }

    fn take_field(&mut self, field: &DataField) {
        let tag = field.tag.as_str();
        match tag {
            "010" => {
                if let Some(lccn) = field.first('a') {
                    self.lccn = non_empty(lccn.trim().to_string());
                }
            }
            "020" => {
                for (code, value) in field.subfields.iter().map(|s| (s.code, s.value.as_str())) {
                    match (code, parse_isbn(value)) {
                        ('a', Some(Isbn::Valid(isbn))) if !self.isbns.contains(&isbn) => {
                            self.isbns.push(isbn)
                        }
                        ('a' | 'z', Some(Isbn::Invalid(isbn) | Isbn::Valid(isbn)))
                            if (code == 'z' || !self.isbns.contains(&isbn))
                                && !self.invalid_isbns.contains(&isbn) =>
                        {
                            self.invalid_isbns.push(isbn);
                        }
                        _ => {}
                    }
                }
            }
            "022" => {
                for value in field.all('a') {
                    if let Some(issn) = normalize_issn(value) {
                        self.issns.push(issn);
                    }
                }
            }
            "035" => {
                for value in field.all('a') {
                    let value = value.trim();
                    let (scheme, id) = match value
                        .strip_prefix('(')
                        .and_then(|rest| rest.split_once(')'))
                    {
                        Some((scheme, id)) => (scheme.trim().to_string(), id.trim().to_string()),
                        None => (String::new(), value.to_string()),
                    };
                    if !id.is_empty() {
                        self.other_ids.push(Identifier { scheme, value: id });
                    }
                }
            }
            "041" => {
                for value in field.all('a') {
                    // Old records run several codes together: "engind".
                    for chunk in value.trim().as_bytes().chunks(3) {
                        if let Ok(code) = std::str::from_utf8(chunk) {
                            let code = code.to_ascii_lowercase();
                            if code.len() == 3
                                && code.bytes().all(|b| b.is_ascii_lowercase())
                                && !self.languages.contains(&code)
                            {
                                self.languages.push(code);
                            }
                        }
                    }
                }
            }
            "050" => {
                if let Some(class) = non_empty(field.joined("ab")) {
                    self.classification.lcc.push(class);
                }
            }
            "082" => {
                for value in field.all('a') {
                    self.classification.ddc.push(value.trim().to_string());
                }
            }
            "090" | "099" | "092" if self.call_number.is_none() => {
                self.call_number = non_empty(field.joined("ab"));
            }
            "100" | "110" | "111" | "700" | "710" | "711" => {
                let kind = match &tag[1..] {
                    "00" => NameKind::Personal,
                    "10" => NameKind::Corporate,
                    _ => NameKind::Meeting,
                };
                // A corporate body's or a meeting's number, date and place ($n $d $c) are
                // one qualifier, "(5th : 1993 : Jakarta)", kept whole as its dates; a
                // meeting's $e is a subordinate unit, its relator is $j.
                let (name_codes, dates_codes, role_code) = match kind {
                    NameKind::Personal => ("abcq", "d", 'e'),
                    NameKind::Corporate => ("ab", "ndc", 'e'),
                    NameKind::Meeting => ("aqe", "ndc", 'j'),
                };
                let name = clean(&field.joined(name_codes));
                if name.is_empty() {
                    return;
                }
                let role = field
                    .first(role_code)
                    .or_else(|| field.first('4'))
                    .map(clean)
                    .and_then(non_empty);
                let dates = non_empty(clean(&field.joined(dates_codes)));
                self.names.push(Name {
                    name,
                    dates,
                    role,
                    kind,
                    main: tag.starts_with('1'),
                });
            }
            "245" => {
                let mut title = String::new();
                for subfield in field
                    .subfields
                    .iter()
                    .filter(|s| matches!(s.code, 'a' | 'n' | 'p'))
                {
                    let part = clean(&subfield.value);
                    if !title.is_empty() && !part.is_empty() {
                        title.push_str(". ");
                    }
                    title.push_str(&part);
                }
                self.title = title;
                self.subtitle = field.first('b').map(clean).and_then(non_empty);
                self.responsibility = field.first('c').map(clean).and_then(non_empty);
            }
            "250" => self.edition = field.first('a').map(clean).and_then(non_empty),
            "260" | "264" => {
                // 264 second indicator 1 is publication; 0, 2, 3, 4 are production,
                // distribution, manufacture and copyright.
                if tag == "264" && field.ind2 != '1' && self.publication != Publication::default() {
                    return;
                }
                self.publication = Publication {
                    place: field.first('a').map(clean).and_then(non_empty),
                    publisher: field.first('b').map(clean).and_then(non_empty),
                    date: field.first('c').map(clean).and_then(non_empty),
                };
            }
            "300" => self.physical_description = non_empty(clean(&field.joined("abce"))),
            "490" | "830" | "440" => {
                if let Some(series) = field.first('a').map(clean).and_then(non_empty) {
                    if !self.series.contains(&series) {
                        self.series.push(series);
                    }
                }
            }
            "500" | "504" | "505" | "520" => {
                if let Some(note) = non_empty(field.joined("a").trim().to_string()) {
                    self.notes.push(note);
                }
            }
            // Uncontrolled index terms: each $a a keyword of its own.
            "653" => {
                for term in field.subfields.iter().filter(|s| s.code == 'a') {
                    if let Some(heading) = non_empty(clean(&term.value)) {
                        self.subjects.push(Subject {
                            heading,
                            vocabulary: None,
                        });
                    }
                }
            }
            tag if SUBJECT_TAGS.contains(&tag) => {
                if let Some(heading) = subject_heading(field) {
                    self.subjects.push(Subject {
                        heading,
                        vocabulary: vocabulary(field),
                    });
                }
            }
            "852" => {
                let call_number = non_empty(field.joined("hi"));
                self.holdings.push(Holding {
                    item_id: field
                        .first('p')
                        .map(|v| v.trim().to_string())
                        .and_then(non_empty),
                    location: non_empty(field.joined("ab")),
                    call_number,
                    status: field
                        .first('z')
                        .map(|v| v.trim().to_string())
                        .and_then(non_empty),
                });
            }
            "952" => {
                // Koha's items: $a home branch, $c shelving location, $o call number,
                // $p barcode, $7 not for loan, $1 lost, $q due date (on loan).
                let status = if field.first('1').is_some_and(|v| v.trim() != "0") {
                    "lost"
                } else if field.first('q').is_some() {
                    "on loan"
                } else if field.first('7').is_some_and(|v| v.trim() != "0") {
                    "not for loan"
                } else {
                    "available"
                };
                self.holdings.push(Holding {
                    item_id: field
                        .first('p')
                        .map(|v| v.trim().to_string())
                        .and_then(non_empty),
                    location: non_empty(field.joined("ac")),
                    call_number: field
                        .first('o')
                        .map(|v| v.trim().to_string())
                        .and_then(non_empty),
                    status: Some(status.to_string()),
                });
            }
            _ => {}
        }
    }

    /// Makes a MARC record for this description (for records that arrive without MARC).
    /// [`Description::from_marc`] of the result gives this description back.
    pub fn to_marc(&self) -> MarcRecord {
        let mut leader = Leader::new_book();
        if self.deleted {
            leader.set(5, 'd');
        }
        let mut marc = MarcRecord::new(leader);
        let id = self
            .control_number
            .clone()
            .unwrap_or_else(|| self.record_id.clone());
        if !id.is_empty() {
            marc.push_control("001", &id);
        }
        if let Some(source) = &self.control_number_source {
            marc.push_control("003", source);
        }
        let year = self
            .year
            .filter(|y| (0..=9999).contains(y))
            .map(|y| format!("{y:04}"))
            .unwrap_or_else(|| "    ".into());
        let language = self.languages.first().map(String::as_str).unwrap_or("   ");
        marc.push_control(
            "008",
            &format!(
                "      {}{year}    xx            000 0 {language} d",
                if self.year.is_some() { 's' } else { 'n' }
            ),
        );
        let mut push = |tag: &str, ind1: char, ind2: char, subfields: Vec<(char, String)>| {
            let subfields: Vec<(char, &str)> = subfields
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(c, v)| (*c, v.as_str()))
                .collect();
            if !subfields.is_empty() {
                marc.push_data(DataField::new(tag, ind1, ind2, &subfields));
            }
        };
        if let Some(lccn) = &self.lccn {
            push("010", ' ', ' ', vec![('a', lccn.clone())]);
        }
        for isbn in &self.isbns {
            push("020", ' ', ' ', vec![('a', isbn.clone())]);
        }
        for isbn in &self.invalid_isbns {
            push("020", ' ', ' ', vec![('z', isbn.clone())]);
        }
        for issn in &self.issns {
            push("022", ' ', ' ', vec![('a', issn.clone())]);
        }
        for id in &self.other_ids {
            let value = if id.scheme.is_empty() {
                id.value.clone()
            } else {
                format!("({}){}", id.scheme, id.value)
            };
            push("035", ' ', ' ', vec![('a', value)]);
        }
        if self.languages.len() > 1 {
            push(
                "041",
                '0',
                ' ',
                self.languages.iter().map(|l| ('a', l.clone())).collect(),
            );
        }
        for lcc in &self.classification.lcc {
            push("050", ' ', '4', vec![('a', lcc.clone())]);
        }
        for ddc in &self.classification.ddc {
            push("082", '0', '4', vec![('a', ddc.clone())]);
        }
        // 090 only when the call number is not what from_marc would derive anyway.
        let derived_call_number = self
            .holdings
            .iter()
            .find_map(|h| h.call_number.as_ref())
            .or(self.classification.lcc.first());
        if let Some(call_number) = &self.call_number {
            if Some(call_number) != derived_call_number {
                push("090", ' ', ' ', vec![('a', call_number.clone())]);
            }
        }
        let name_field = |name: &Name, main: bool| {
            let tag = match (main, name.kind) {
                (true, NameKind::Personal) => "100",
                (true, NameKind::Corporate) => "110",
                (true, NameKind::Meeting) => "111",
                (false, NameKind::Personal) => "700",
                (false, NameKind::Corporate) => "710",
                (false, NameKind::Meeting) => "711",
            };
            let ind1 = if name.kind == NameKind::Personal && name.name.contains(',') {
                '1'
            } else {
                '0'
            };
            let mut subfields = vec![('a', name.name.clone())];
            if let Some(dates) = &name.dates {
                subfields.push(('d', dates.clone()));
            }
            if let Some(role) = &name.role {
                let code = if name.kind == NameKind::Meeting {
                    'j'
                } else {
                    'e'
                };
                subfields.push((code, role.clone()));
            }
            (tag, ind1, subfields)
        };
        let (mains, added): (Vec<&Name>, Vec<&Name>) = self.names.iter().partition(|n| n.main);
        for name in mains.iter().take(1) {
            let (tag, ind1, subfields) = name_field(name, true);
            push(tag, ind1, ' ', subfields);
        }
        let mut title_subfields = vec![('a', self.title.clone())];
        if let Some(subtitle) = &self.subtitle {
            title_subfields.push(('b', subtitle.clone()));
        }
        if let Some(responsibility) = &self.responsibility {
            title_subfields.push(('c', responsibility.clone()));
        }
        push(
            "245",
            if mains.is_empty() { '0' } else { '1' },
            '0',
            title_subfields,
        );
        if let Some(edition) = &self.edition {
            push("250", ' ', ' ', vec![('a', edition.clone())]);
        }
        let publication = &self.publication;
        push(
            "264",
            ' ',
            '1',
            vec![
                ('a', publication.place.clone().unwrap_or_default()),
                ('b', publication.publisher.clone().unwrap_or_default()),
                ('c', publication.date.clone().unwrap_or_default()),
            ],
        );
        if let Some(physical) = &self.physical_description {
            push("300", ' ', ' ', vec![('a', physical.clone())]);
        }
        for series in &self.series {
            push("490", '0', ' ', vec![('a', series.clone())]);
        }
        for note in &self.notes {
            push("500", ' ', ' ', vec![('a', note.clone())]);
        }
        for subject in &self.subjects {
            let ind2 = match subject.vocabulary.as_deref() {
                Some("lcsh") => '0',
                Some("lcshac") => '1',
                Some("mesh") => '2',
                Some("nal") => '3',
                Some("cash") => '5',
                Some("rvm") => '6',
                Some(_) => '7',
                None => '4',
            };
            let mut parts = subject.heading.split(" -- ");
            let mut subfields = vec![('a', parts.next().unwrap_or_default().to_string())];
            subfields.extend(parts.map(|p| ('x', p.to_string())));
            if ind2 == '7' {
                subfields.push(('2', subject.vocabulary.clone().unwrap_or_default()));
            }
            push("650", ' ', ind2, subfields);
        }
        for name in mains.iter().skip(1).chain(added.iter()) {
            let (tag, ind1, subfields) = name_field(name, false);
            push(tag, ind1, ' ', subfields);
        }
        for holding in &self.holdings {
            push(
                "852",
                ' ',
                ' ',
                vec![
                    ('b', holding.location.clone().unwrap_or_default()),
                    ('h', holding.call_number.clone().unwrap_or_default()),
                    ('p', holding.item_id.clone().unwrap_or_default()),
                    ('z', holding.status.clone().unwrap_or_default()),
                ],
            );
        }
        marc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Uncontrolled index terms (653) are subjects, each $a its own.
    #[test]
    fn each_uncontrolled_term_is_a_subject() {
        use crate::marc::{DataField, Leader, MarcRecord};
        let mut marc = MarcRecord::new(Leader::new_book());
        marc.push_data(DataField::new("245", '0', '0', &[('a', "Buku")]));
        marc.push_data(DataField::new(
            "653",
            ' ',
            ' ',
            &[('a', "Perpustakaan desa"), ('a', "Literasi.")],
        ));
        let d = Description::from_marc(&marc);
        let headings: Vec<&str> = d.subjects.iter().map(|s| s.heading.as_str()).collect();
        assert_eq!(headings, ["Perpustakaan desa", "Literasi"]);
        assert!(d.subjects.iter().all(|s| s.vocabulary.is_none()));
    }

    /// A meeting's or a corporate body's qualifier (number, date, place) stays whole, as a
    /// librarian reads it, and the record written back reads the same.
    #[test]
    fn meeting_and_corporate_names_keep_their_qualifier_whole() {
        use crate::marc::{DataField, MarcRecord};
        let mut marc = MarcRecord::new(crate::marc::Leader::new_book());
        marc.push_data(DataField::new(
            "111",
            '2',
            ' ',
            &[
                ('a', "Seminar Sejarah Regional Indonesia Timur"),
                ('d', "(1993 :"),
                ('c', "Malino, Gowa, Indonesia)"),
            ],
        ));
        marc.push_data(DataField::new(
            "710",
            '1',
            ' ',
            &[
                ('a', "Indonesia."),
                ('b', "Dewan Perwakilan Rakyat."),
                ('n', "(5th :"),
                ('d', "1997-1999)."),
                ('e', "editor."),
            ],
        ));
        marc.push_data(DataField::new(
            "711",
            '2',
            ' ',
            &[
                ('a', "Lokakarya Perpustakaan"),
                ('n', "(2nd :"),
                ('d', "2001 :"),
                ('c', "Bogor)"),
                ('j', "host."),
            ],
        ));
        marc.push_data(DataField::new("245", '0', '0', &[('a', "Prosiding")]));
        let d = Description::from_marc(&marc);
        let shown: Vec<(&str, Option<&str>, Option<&str>)> = d
            .names
            .iter()
            .map(|n| (n.name.as_str(), n.dates.as_deref(), n.role.as_deref()))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "Seminar Sejarah Regional Indonesia Timur",
                    Some("(1993 : Malino, Gowa, Indonesia)"),
                    None
                ),
                (
                    "Indonesia. Dewan Perwakilan Rakyat",
                    Some("(5th : 1997-1999)"),
                    Some("editor")
                ),
                (
                    "Lokakarya Perpustakaan",
                    Some("(2nd : 2001 : Bogor)"),
                    Some("host")
                ),
            ]
        );
        assert_eq!(Description::from_marc(&d.to_marc()).names, d.names);
    }

    #[test]
    fn clean_strips_isbd_punctuation_but_keeps_initials() {
        assert_eq!(
            clean("Sejarah Indonesia modern /"),
            "Sejarah Indonesia modern"
        );
        assert_eq!(clean("Jakarta :"), "Jakarta");
        assert_eq!(clean("Tolkien, J. R. R."), "Tolkien, J. R. R.");
        assert_eq!(clean("Balai Pustaka,"), "Balai Pustaka");
        assert_eq!(clean("1st ed."), "1st ed.");
        assert_eq!(clean("Indonesia."), "Indonesia");
    }

    #[test]
    fn year_from_text() {
        assert_eq!(first_year("c1998."), Some(1998));
        assert_eq!(first_year("[2005?]"), Some(2005));
        assert_eq!(first_year("12345"), None);
        assert_eq!(first_year("n.d."), None);
    }
}
