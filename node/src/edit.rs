//! A librarian's edit of a record's main fields (the web interface's edit form), written
//! into its MARC: only what was changed, in the field the record keeps it in; everything
//! left as it was stays as catalogued (its punctuation, subfields, indicators, tags).

use jalin_protocol::marc::{DataField, Field, MarcRecord, Subfield};
use jalin_protocol::record::{subject_heading, Description, NameKind, SUBJECT_TAGS};

/// What the edit form shows of a record, and what it sends back.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Editable {
    /// Title proper (245 $a, with $n and $p).
    pub title: String,
    /// Other title information (245 $b).
    pub subtitle: String,
    /// The first name (main entry, else the first added entry).
    pub author: String,
    /// Publisher (260 / 264 $b).
    pub publisher: String,
    /// Year of publication, four digits.
    pub year: String,
    /// Call number.
    pub call_number: String,
    /// Subject headings, one per line in the form, subdivisions joined by ` -- `.
    pub subjects: Vec<String>,
}

impl Editable {
    /// What the form shows of a record.
    pub fn of(d: &Description) -> Self {
        Editable {
            title: d.title.clone(),
            subtitle: d.subtitle.clone().unwrap_or_default(),
            author: d.names.first().map(|n| n.name.clone()).unwrap_or_default(),
            publisher: d.publication.publisher.clone().unwrap_or_default(),
            year: d.year.map(|y| y.to_string()).unwrap_or_default(),
            call_number: d.call_number.clone().unwrap_or_default(),
            subjects: d.subjects.iter().map(|s| s.heading.clone()).collect(),
        }
    }

    /// The subjects as the form's text area holds them.
    pub fn subjects_text(&self) -> String {
        self.subjects.join("\n")
    }

    /// Subjects from the form's text area: one a line, blank lines and repeats dropped.
    pub fn parse_subjects(text: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if !out.iter().any(|s| s == line) {
                out.push(line.to_string());
            }
        }
        out
    }
}

const NAME_TAGS: &[&str] = &["100", "110", "111", "700", "710", "711"];

/// Writes into `marc` what differs between `edited` and `shown` (what the form showed of
/// this record), and nothing else.
pub fn apply(marc: &mut MarcRecord, shown: &Editable, edited: &Editable) {
    if edited.title != shown.title {
        if let Some(field) = title_field(marc) {
            set(field, 'a', &edited.title);
            // The shown title held the part's number and name: the new one replaces them.
            field.subfields.retain(|s| !matches!(s.code, 'n' | 'p'));
        }
    }
    if edited.subtitle != shown.subtitle {
        if let Some(field) = title_field(marc) {
            set(field, 'b', &edited.subtitle);
        }
    }
    if edited.author != shown.author {
        edit_author(marc, &edited.author);
    }
    if edited.publisher != shown.publisher {
        set_publication(marc, 'b', &edited.publisher);
    }
    if edited.year != shown.year {
        edit_year(marc, &edited.year);
    }
    if edited.call_number != shown.call_number {
        edit_call_number(marc, &edited.call_number);
    }
    if edited.subjects != shown.subjects {
        edit_subjects(marc, &edited.subjects);
    }
}

fn title_field(marc: &mut MarcRecord) -> Option<&mut DataField> {
    field_or_insert(
        marc,
        |d| d.tag == "245",
        || DataField::new("245", '0', '0', &[]),
    )
}

/// Sets the first subfield `code` (removing any others of that code), appending it when
/// absent; an empty value removes them.
fn set(field: &mut DataField, code: char, value: &str) {
    let mut seen = false;
    field.subfields.retain_mut(|s| {
        if s.code != code {
            return true;
        }
        if seen || value.is_empty() {
            return false;
        }
        seen = true;
        s.value = value.to_string();
        true
    });
    if !seen && !value.is_empty() {
        field.subfields.push(Subfield {
            code,
            value: value.to_string(),
        });
    }
}

/// Inserts a data field in tag order.
fn insert(marc: &mut MarcRecord, field: DataField) -> usize {
    let at = marc
        .fields
        .iter()
        .position(|f| match f {
            Field::Data(d) => d.tag > field.tag,
            Field::Control(_) => false,
        })
        .unwrap_or(marc.fields.len());
    marc.fields.insert(at, Field::Data(field));
    at
}

fn data_mut(marc: &mut MarcRecord, at: usize) -> Option<&mut DataField> {
    match marc.fields.get_mut(at) {
        Some(Field::Data(d)) => Some(d),
        _ => None,
    }
}

/// The first data field `which` picks, made by `make` (in tag order) when there is none.
fn field_or_insert(
    marc: &mut MarcRecord,
    which: impl Fn(&DataField) -> bool,
    make: impl FnOnce() -> DataField,
) -> Option<&mut DataField> {
    let found = marc
        .fields
        .iter()
        .position(|f| matches!(f, Field::Data(d) if which(d)));
    let at = match found {
        Some(at) => at,
        None => insert(marc, make()),
    };
    data_mut(marc, at)
}

/// Where the record's publication statement is read from (as `Description` reads it: the
/// last 260, or 264 of publication; a 264 of another function only when there is no
/// other), made as a 264 of publication when there is none.
fn publication_field(marc: &mut MarcRecord) -> usize {
    let mut found: Option<usize> = None;
    for (i, field) in marc.fields.iter().enumerate() {
        if let Field::Data(d) = field {
            match d.tag.as_str() {
                "260" => found = Some(i),
                "264" if d.ind2 == '1' || found.is_none() => found = Some(i),
                _ => {}
            }
        }
    }
    match found {
        Some(at) => at,
        None => insert(marc, DataField::new("264", ' ', '1', &[])),
    }
}

/// Sets a subfield of the publication statement; a statement left empty goes.
fn set_publication(marc: &mut MarcRecord, code: char, value: &str) {
    let at = publication_field(marc);
    if let Some(field) = data_mut(marc, at) {
        set(field, code, value);
        if field.subfields.is_empty() {
            marc.fields.remove(at);
        }
    }
}

fn edit_author(marc: &mut MarcRecord, author: &str) {
    let found = marc
        .fields
        .iter()
        .position(|f| matches!(f, Field::Data(d) if NAME_TAGS.contains(&d.tag.as_str())));
    match found {
        Some(at) if author.is_empty() => {
            marc.fields.remove(at);
        }
        Some(at) => {
            let Some(field) = data_mut(marc, at) else {
                return;
            };
            // The parts the shown name was made of go; the new name is one $a.
            let parts: &[char] = match kind_of(&field.tag) {
                NameKind::Personal => &['b', 'c', 'q'],
                NameKind::Corporate => &['b'],
                NameKind::Meeting => &['q', 'e'],
            };
            field.subfields.retain(|s| !parts.contains(&s.code));
            set(field, 'a', author);
            field.subfields.sort_by_key(|s| s.code != 'a');
        }
        None if author.is_empty() => {}
        None => {
            let ind1 = if author.contains(',') { '1' } else { '0' };
            insert(marc, DataField::new("100", ind1, ' ', &[('a', author)]));
        }
    }
}

fn kind_of(tag: &str) -> NameKind {
    match tag.get(1..) {
        Some("00") => NameKind::Personal,
        Some("10") => NameKind::Corporate,
        _ => NameKind::Meeting,
    }
}

fn edit_year(marc: &mut MarcRecord, year: &str) {
    // The fixed field's Date 1 comes first when it holds a year.
    if let Some(Field::Control(fixed)) = marc
        .fields
        .iter_mut()
        .find(|f| matches!(f, Field::Control(c) if c.tag == "008"))
    {
        if fixed.value.len() >= 11
            && fixed.value.is_char_boundary(7)
            && fixed.value.is_char_boundary(11)
        {
            let date1 = if year.len() == 4 { year } else { "uuuu" };
            fixed.value.replace_range(7..11, date1);
        }
    }
    set_publication(marc, 'c', year);
}

fn edit_call_number(marc: &mut MarcRecord, call_number: &str) {
    let local = |d: &DataField| matches!(d.tag.as_str(), "090" | "099" | "092");
    if call_number.is_empty() {
        marc.fields
            .retain(|f| !matches!(f, Field::Data(d) if local(d)));
        return;
    }
    if let Some(field) = field_or_insert(marc, local, || DataField::new("090", ' ', ' ', &[])) {
        field.subfields.retain(|s| s.code != 'b');
        set(field, 'a', call_number);
    }
}

/// Subject fields whose heading is no longer listed go; the ones still listed stay as
/// catalogued (their vocabulary, their subdivisions' codes); new headings are added as
/// uncontrolled topical terms (650, second indicator 4), ` -- ` parts as $x.
fn edit_subjects(marc: &mut MarcRecord, subjects: &[String]) {
    let mut kept: Vec<String> = Vec::new();
    // Uncontrolled terms (653): each $a is a keyword; those no longer listed go, and the
    // field with them when none is left.
    for field in marc.fields.iter_mut() {
        if let Field::Data(d) = field {
            if d.tag == "653" {
                d.subfields.retain(|s| {
                    if s.code != 'a' {
                        return true;
                    }
                    let term = jalin_protocol::record::clean(&s.value);
                    if term.is_empty() {
                        return true;
                    }
                    let listed = subjects.contains(&term);
                    if listed {
                        kept.push(term);
                    }
                    listed
                });
            }
        }
    }
    marc.fields.retain(
        |f| !matches!(f, Field::Data(d) if d.tag == "653" && !d.subfields.iter().any(|s| s.code == 'a')),
    );
    marc.fields.retain(|f| match f {
        Field::Data(d) if SUBJECT_TAGS.contains(&d.tag.as_str()) => match subject_heading(d) {
            Some(heading) if subjects.contains(&heading) => {
                kept.push(heading);
                true
            }
            Some(_) => false,
            None => true,
        },
        _ => true,
    });
    for heading in subjects.iter().filter(|h| !kept.contains(h)) {
        let mut parts = heading
            .split(" -- ")
            .map(str::trim)
            .filter(|p| !p.is_empty());
        let Some(first) = parts.next() else { continue };
        let mut subfields = vec![('a', first)];
        subfields.extend(parts.map(|p| ('x', p)));
        insert(marc, DataField::new("650", ' ', '4', &subfields));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jalin_protocol::marc::Leader;

    fn record() -> MarcRecord {
        let mut marc = MarcRecord::new(Leader::new_book());
        marc.set_control("001", "r1");
        marc.set_control("008", "990101s1998    io            000 0 ind d");
        marc.push_data(DataField::new(
            "100",
            '1',
            ' ',
            &[('a', "Ricklefs, M. C."), ('d', "1943-"), ('e', "author.")],
        ));
        marc.push_data(DataField::new(
            "245",
            '1',
            '0',
            &[
                ('a', "Sejarah Indonesia modern :"),
                ('b', "1200-2004 /"),
                ('c', "M.C. Ricklefs."),
            ],
        ));
        marc.push_data(DataField::new(
            "260",
            ' ',
            ' ',
            &[('a', "Jakarta :"), ('b', "Serambi,"), ('c', "c1998.")],
        ));
        marc.push_data(DataField::new(
            "650",
            ' ',
            '0',
            &[('a', "Indonesia"), ('x', "History.")],
        ));
        marc.push_data(DataField::new(
            "651",
            ' ',
            '0',
            &[('a', "Jawa (Indonesia)"), ('x', "Politics and government.")],
        ));
        marc
    }

    fn shown(marc: &MarcRecord) -> Editable {
        Editable::of(&Description::from_marc(marc))
    }

    #[test]
    fn an_edit_that_changes_nothing_leaves_the_record_as_catalogued() {
        let mut marc = record();
        let before = shown(&marc);
        apply(&mut marc, &before, &before.clone());
        assert_eq!(marc, record());
    }

    #[test]
    fn each_field_edited_reads_back_and_nothing_else_moves() {
        let base = record();
        let before = shown(&base);
        type Edit = fn(&mut Editable);
        let edits: [(&str, Edit); 7] = [
            ("title", |e| e.title = "Sejarah Nusantara".into()),
            ("subtitle", |e| e.subtitle = String::new()),
            ("author", |e| e.author = "Toer, Pramoedya Ananta".into()),
            ("publisher", |e| e.publisher = "Gramedia".into()),
            ("year", |e| e.year = "2005".into()),
            ("call number", |e| e.call_number = "959.8 RIC s".into()),
            ("subjects", |e| {
                e.subjects.remove(0);
                e.subjects.push("Sejarah -- Jawa".into());
            }),
        ];
        for (what, edit) in edits {
            let mut marc = base.clone();
            let mut edited = before.clone();
            edit(&mut edited);
            apply(&mut marc, &before, &edited);
            // Subjects come back in tag order (a new 650 before a kept 651).
            let mut after = shown(&marc);
            after.subjects.sort();
            edited.subjects.sort();
            assert_eq!(after, edited, "{what}");
        }
    }

    #[test]
    fn a_kept_subject_keeps_its_vocabulary_and_a_new_one_is_uncontrolled() {
        let mut marc = record();
        let before = shown(&marc);
        let mut edited = before.clone();
        edited.subjects = vec![
            "Jawa (Indonesia) -- Politics and government".into(),
            "Sejarah -- Jawa".into(),
        ];
        apply(&mut marc, &before, &edited);
        let subjects: Vec<(String, char, Vec<char>)> = marc
            .fields
            .iter()
            .filter_map(|f| match f {
                Field::Data(d) if d.tag.starts_with('6') => Some((
                    d.tag.clone(),
                    d.ind2,
                    d.subfields.iter().map(|s| s.code).collect(),
                )),
                _ => None,
            })
            .collect();
        assert_eq!(
            subjects,
            [
                ("650".to_string(), '4', vec!['a', 'x']),
                ("651".to_string(), '0', vec!['a', 'x']),
            ]
        );
    }

    #[test]
    fn a_keyword_taken_off_leaves_the_others_of_its_field() {
        let mut marc = record();
        marc.push_data(DataField::new(
            "653",
            ' ',
            ' ',
            &[('a', "Sejarah"), ('a', "Nusantara")],
        ));
        let before = shown(&marc);
        let mut edited = before.clone();
        edited.subjects.retain(|s| s != "Sejarah");
        apply(&mut marc, &before, &edited);
        assert_eq!(shown(&marc), edited);
        let keywords: Vec<&DataField> = marc
            .fields
            .iter()
            .filter_map(|f| match f {
                Field::Data(d) if d.tag == "653" => Some(d),
                _ => None,
            })
            .collect();
        assert_eq!(keywords.len(), 1);
        assert_eq!(keywords[0].subfields.len(), 1);
        edited.subjects.retain(|s| s != "Nusantara");
        let before = shown(&marc);
        apply(&mut marc, &before, &edited);
        assert!(!marc
            .fields
            .iter()
            .any(|f| matches!(f, Field::Data(d) if d.tag == "653")));
    }

    #[test]
    fn a_record_without_the_fields_gets_them_in_tag_order() {
        let mut marc = MarcRecord::new(Leader::new_book());
        marc.set_control("001", "r2");
        marc.push_data(DataField::new("245", '0', '0', &[('a', "Judul")]));
        marc.push_data(DataField::new("500", ' ', ' ', &[('a', "Catatan.")]));
        let before = shown(&marc);
        let edited = Editable {
            author: "Budi".into(),
            publisher: "Balai Pustaka".into(),
            year: "1990".into(),
            call_number: "899.221 BUD j".into(),
            ..before.clone()
        };
        apply(&mut marc, &before, &edited);
        assert_eq!(shown(&marc), edited);
        let tags: Vec<&str> = marc
            .fields
            .iter()
            .map(|f| match f {
                Field::Data(d) => d.tag.as_str(),
                Field::Control(c) => c.tag.as_str(),
            })
            .collect();
        assert_eq!(tags, ["001", "090", "100", "245", "264", "500"]);
    }
}
