//! Search over real records: what a librarian types finds the book.

use crate::shared_data_or_skip;
use crate::support::new_library;
use jalin_node::library::{ImportOptions, Library, Source};
use jalin_protocol::isbn::isbn10_to_13;

/// (query, the record that must be in the top 3). Records of `loc-books-10k.mrc`, and
/// for Indonesian words, of `loc-indonesia-3147.mrc`, imported into the same library.
const QUERIES: &[(&str, &str)] = &[
    ("Sexual Shakespeare", "00011801"),
    ("author:Keevak", "00011801"),
    ("On drama Goldman", "00008697"),
    ("Henry Morgan buccaneers", "00013040"),
    ("Belgian hares", "00003271"),
    ("Mine own people Kipling", "00004871"),
    ("Criminal procedure Del Carmen", "00022269"),
    ("Nature's garden Blanchan", "00006384"),
    ("Brush well dental", "00012533"),
    ("John Henrik Clarke historians", "00023104"),
    ("Untrodden fields astronomy", "00003775"),
    ("Surviving your dissertation", "00009854"),
    ("title:\"From Herzl to Rabin\"", "00020444"),
    ("autumn equinox", "00020169"),
    ("Views of Mackinac Island", "00010313"),
    ("fall of Utopia", "00006161"),
    ("Internet intranet security management", "00022538"),
    ("Strongman's his name", "00020281"),
    ("Nociones de historia de los Estados Unidos", "00003850"),
    ("villa Rykwert", "00022799"),
    ("group of turkeys", "00008223"),
    ("Gleam and Glow Bunting", "00010005"),
    ("Mount Diablo guide", "00023108"),
    ("God's covenant with animals", "00004126"),
    ("Resolution of singularities", "00023153"),
    ("Goldberg pro wrestler", "00013073"),
    ("rime of the ancient mariner", "00003326"),
    ("Twenty years a fakir", "00003136"),
    ("Goin' back to Memphis", "00022637"),
    ("positive psychology Buddhism yoga", "00022894"),
    ("subject:Zionism Rubinstein", "00020444"),
    ("subject:Quilting block magic", "00010377"),
    ("year:2000 Rykwert", "00022799"),
    ("lang:spa Nociones", "00003850"),
    // Indonesian.
    ("pembinaan nilai budaya permainan rakyat Riau", "00281567"),
    ("profil komoditi kakao Berau", "00368888"),
    ("problematika seni lukis kontemporer", "00368456"),
    ("perlindungan hukum anak keluarga", "00368450"),
    ("pemberdayaan wanita pedagang kecil Bandung", "00367087"),
    ("geografi dialek bahasa Kaili", "00365016"),
    ("author:Nurcahyo", "00368456"),
    ("lang:jav paribasan", "00368905"),
    ("Krakatau geology", "00280753"),
    ("PEMBERDAYAAN  pedagang", "00367087"),
];

/// (ISBN-10 as catalogued, record): searched by both ISBN forms, with and without hyphens.
const ISBNS: &[(&str, &str)] = &[
    ("0814329535", "00011801"),
    ("0801332540", "00023003"),
    ("078795330X", "00011521"),
    ("0810939444", "00022799"),
    ("9799555213", "00367987"),
];

fn top3(library: &Library, query: &str) -> Vec<String> {
    library
        .search(query, 1, 3)
        .expect("search")
        .hits
        .into_iter()
        .map(|h| h.record_id)
        .collect()
}

#[test]
fn librarians_queries_find_the_book_in_the_top_three() {
    let data = shared_data_or_skip!();
    let (_dir, config) = new_library(5000);
    let library = Library::open(config).expect("opens");
    for file in [
        "marc/loc/loc-books-10k.mrc",
        "marc/loc/loc-indonesia-3147.mrc",
    ] {
        let summary = library
            .import(
                &Source::File(data.join(file)),
                &ImportOptions::default(),
                |_| {},
            )
            .expect("imports");
        assert!(summary.rejected.is_empty());
    }
    let mut misses = Vec::new();
    let mut asked = 0;
    for (query, expected) in QUERIES {
        asked += 1;
        let top = top3(&library, query);
        if !top.iter().any(|id| id == expected) {
            misses.push(format!("{query:?}: expected {expected}, got {top:?}"));
        }
    }
    for (isbn10, expected) in ISBNS {
        let isbn13 = isbn10_to_13(isbn10);
        let hyphenated = format!("{}-{}-{}", &isbn13[..3], &isbn13[3..9], &isbn13[9..]);
        for query in [
            isbn10.to_string(),
            isbn13.clone(),
            format!("isbn:{isbn10}"),
            format!("isbn:{hyphenated}"),
        ] {
            asked += 1;
            let top = top3(&library, &query);
            if top.first().map(String::as_str) != Some(expected) {
                misses.push(format!("{query:?}: expected {expected} first, got {top:?}"));
            }
        }
    }
    assert!(asked >= 30);
    assert!(
        misses.is_empty(),
        "{} of {asked} queries missed:\n{}",
        misses.len(),
        misses.join("\n")
    );
}

#[test]
fn facets_and_paging() {
    let data = shared_data_or_skip!();
    let (_dir, config) = new_library(5000);
    let library = Library::open(config).expect("opens");
    library
        .import(
            &Source::File(data.join("marc/loc/loc-indonesia-3147.mrc")),
            &ImportOptions::default(),
            |_| {},
        )
        .expect("imports");
    let results = library.search("indonesia", 1, 10).expect("search");
    assert!(results.total > 20);
    let languages = &results.facets["lang"];
    assert!(
        languages.iter().any(|f| f.value == "ind" && f.count > 0),
        "{languages:?}"
    );
    let by_language: u64 = languages.iter().map(|f| f.count).sum();
    assert!(by_language <= results.total as u64 * 2);
    assert!(!results.facets["year"].is_empty());
    // Page 2 holds the next hits, none of page 1's.
    let page2 = library.search("indonesia", 2, 10).expect("search");
    assert_eq!(page2.total, results.total);
    assert!(page2
        .hits
        .iter()
        .all(|h| results.hits.iter().all(|g| g.record_id != h.record_id)));
    // Filtering by a facet value narrows the count to the facet's.
    let ind = languages
        .iter()
        .find(|f| f.value == "ind")
        .expect("ind facet");
    assert_eq!(
        library
            .search("indonesia lang:ind", 1, 10)
            .expect("search")
            .total as u64,
        ind.count
    );
    // A year range.
    let ranged = library
        .search("indonesia year:1990..1995", 1, 100)
        .expect("search");
    assert!(ranged.total > 0 && ranged.total < results.total);
    assert!(ranged
        .hits
        .iter()
        .all(|h| h.year.is_some_and(|y| (1990..=1995).contains(&y))));
    // Diacritics fold: "Müller" finds "muller" and the other way round is the same word.
    assert_eq!(
        library.search("pembangunan", 1, 1).expect("search").total,
        library.search("PEMBANGUNAN", 1, 1).expect("search").total
    );
    // A query with unbalanced syntax does not fail.
    assert!(library.search("title:(( \"unclosed", 1, 10).is_ok());
}
