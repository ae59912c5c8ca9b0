//! The web interface's record edit, over real records: a field the librarian leaves as it
//! was stays as catalogued, and a field changed reads back as typed, nothing else moving.

use crate::shared_data_or_skip;
use jalin_node::edit::{apply, Editable};
use jalin_protocol::marc::{iso2709, MarcRecord};
use jalin_protocol::record::Description;

fn shown(marc: &MarcRecord) -> Editable {
    let mut e = Editable::of(&Description::from_marc(marc));
    // The form's text area gives a heading once, and the order is the record's tags'.
    e.subjects = Editable::parse_subjects(&e.subjects_text());
    e.subjects.sort();
    e
}

#[test]
fn edits_of_every_loc_indonesia_record_change_only_what_was_changed() {
    let data = shared_data_or_skip!();
    let bytes = std::fs::read(data.join("marc/loc/loc-indonesia-3147.mrc")).expect("file");
    type Edit = fn(&mut Editable);
    let edits: [(&str, Edit); 7] = [
        ("title", |e| e.title = "Judul Baru Hasil Suntingan".into()),
        ("subtitle", |e| e.subtitle = "anak judul baru".into()),
        ("author", |e| e.author = "Santoso, Budi".into()),
        ("publisher", |e| e.publisher = "Penerbit Desa".into()),
        ("year", |e| e.year = "2024".into()),
        ("call number", |e| e.call_number = "959.8 SAN j".into()),
        ("subjects", |e| {
            if !e.subjects.is_empty() {
                e.subjects.remove(0);
            }
            e.subjects.push("Perpustakaan desa -- Jawa Tengah".into());
            e.subjects.sort();
        }),
    ];
    let mut records = 0;
    for read in iso2709::Reader::new(bytes.as_slice()) {
        let original = read.expect("reads").record;
        records += 1;
        let id = Description::from_marc(&original).record_id;
        let before = Editable::of(&Description::from_marc(&original));
        // Saved as shown: the MARC is untouched, byte for byte.
        let mut same = original.clone();
        apply(&mut same, &before, &before.clone());
        assert_eq!(
            iso2709::write_record(&same).expect("writes"),
            iso2709::write_record(&original).expect("writes"),
            "{id}: an edit that changed nothing changed the record"
        );
        let before = shown(&original);
        for (what, edit) in edits {
            let mut marc = original.clone();
            let mut edited = before.clone();
            edit(&mut edited);
            apply(&mut marc, &before, &edited);
            assert_eq!(shown(&marc), edited, "{id}: {what}");
            let description = Description::from_marc(&marc);
            assert_eq!(description.record_id, id, "{id}: {what} kept the id");
            // It is still a record ISO 2709 can carry.
            iso2709::write_record(&marc).expect("writes");
        }
    }
    assert_eq!(records, 3147);
}
