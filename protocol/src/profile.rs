//! A library's profile (`JALIN-PROFILE:`): who it is, where, when it opens, what it offers
//! and what its collection holds, signed by its key and small enough for one QR code, so
//! libraries can find partners before any partnership exists.
//!
//! The collection figures are computed from the catalog by the library's node: titles
//! (books, not records: a title is its folded main title and first author, as
//! [`dedup`] folds them) by division and by language, and for each division a sample of
//! its titles: the [`SAMPLE_MAX`] smallest of the titles' 32-bit hashes ([`title_hash`]).
//! The smallest hashes are a uniform random sample of the division's titles, the same
//! way on every node, so another library can check each sampled title against its own
//! whole catalog and estimate the share of the division it lacks ([`complement`]); with
//! [`SAMPLE_MAX`] titles or fewer in a division the figure is exact.

use crate::collection::DIVISIONS;
use crate::consortium::document::{DocError, Kind, Signed};
use crate::dedup;
use crate::record::Description;
use crate::signing::Domain;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// Longest name, in bytes.
pub const NAME_MAX: usize = 120;
/// Longest address, in bytes.
pub const ADDRESS_MAX: usize = 200;
/// Longest district, opening hours or contact, in bytes.
pub const SHORT_MAX: usize = 120;
/// Sampled titles per division, at most.
pub const SAMPLE_MAX: usize = 16;
/// Languages listed, at most (the most held first).
pub const LANGUAGES_MAX: usize = 8;
/// The longest profile text taken (characters), checked before anything is decoded: a
/// full profile is about 2,500.
pub const TEXT_MAX: usize = 6_000;

/// What kind of library (the kinds of Indonesia's library law, UU 43/2007).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LibraryType {
    /// Perpustakaan desa / kelurahan (a village's).
    #[default]
    Desa,
    /// Perpustakaan sekolah / madrasah (a school's).
    Sekolah,
    /// Perpustakaan umum (a public library of a regency, city or province).
    Umum,
    /// Perpustakaan perguruan tinggi (a university's or college's).
    PerguruanTinggi,
    /// Perpustakaan khusus (a special library: a ministry's, a company's, a hospital's).
    Khusus,
}

impl LibraryType {
    /// Every kind, in order.
    pub const ALL: [LibraryType; 5] = [
        LibraryType::Desa,
        LibraryType::Sekolah,
        LibraryType::Umum,
        LibraryType::PerguruanTinggi,
        LibraryType::Khusus,
    ];

    /// Its name in configuration and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            LibraryType::Desa => "desa",
            LibraryType::Sekolah => "sekolah",
            LibraryType::Umum => "umum",
            LibraryType::PerguruanTinggi => "perguruan_tinggi",
            LibraryType::Khusus => "khusus",
        }
    }

    /// Reads a kind by its name (`perguruan-tinggi` and `perguruan tinggi` too).
    pub fn parse(text: &str) -> Option<LibraryType> {
        let folded = text.trim().to_lowercase().replace(['-', ' '], "_");
        LibraryType::ALL.into_iter().find(|t| t.as_str() == folded)
    }
}

/// Where a library is, in hundred-thousandths of a degree (about a metre).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coordinates {
    /// Latitude x 100,000 (-9,000,000 to 9,000,000).
    pub lat_e5: i32,
    /// Longitude x 100,000 (-18,000,000 to 18,000,000).
    pub lon_e5: i32,
}

impl Coordinates {
    /// Reads `-7.56123, 110.81234` (latitude, longitude in degrees, as maps give them).
    pub fn parse(text: &str) -> Result<Coordinates, String> {
        let bad = || {
            format!("{text:?}: write coordinates as latitude, longitude in degrees (-7.56123, 110.81234)")
        };
        let (lat, lon) = text.split_once(',').ok_or_else(bad)?;
        let degrees = |t: &str, max: f64| -> Result<i32, String> {
            let value: f64 = t.trim().parse().map_err(|_| bad())?;
            if !value.is_finite() || value.abs() > max {
                return Err(bad());
            }
            Ok((value * 100_000.0).round() as i32)
        };
        Ok(Coordinates {
            lat_e5: degrees(lat, 90.0)?,
            lon_e5: degrees(lon, 180.0)?,
        })
    }

    /// Latitude and longitude in degrees.
    pub fn degrees(self) -> (f64, f64) {
        (
            f64::from(self.lat_e5) / 100_000.0,
            f64::from(self.lon_e5) / 100_000.0,
        )
    }

    /// The great-circle distance to `other`, in kilometres (haversine, mean Earth radius
    /// 6,371 km).
    pub fn distance_km(self, other: Coordinates) -> f64 {
        let (lat1, lon1) = self.degrees();
        let (lat2, lon2) = other.degrees();
        let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
        let dp = p2 - p1;
        let dl = (lon2 - lon1).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * 6_371.0 * a.sqrt().clamp(0.0, 1.0).asin()
    }

    fn valid(self) -> bool {
        self.lat_e5.abs() <= 9_000_000 && self.lon_e5.abs() <= 18_000_000
    }
}

impl std::fmt::Display for Coordinates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (lat, lon) = self.degrees();
        write!(f, "{lat:.5}, {lon:.5}")
    }
}

/// What a library offers partners and visitors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offers {
    /// Lends to other libraries (interlibrary loan).
    pub interlibrary_loan: bool,
    /// A reading room or space.
    pub reading_space: bool,
    /// Internet access for visitors.
    pub internet: bool,
}

/// What the librarian states about the library (the rest of a profile is computed).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileDetails {
    /// Its kind.
    pub kind: LibraryType,
    /// Street address.
    pub address: String,
    /// District (kecamatan, kabupaten/kota), for finding libraries nearby.
    pub district: String,
    /// Opening hours, as written ("Senin-Jumat 08.00-15.00").
    pub hours: String,
    /// How to reach it (telephone, e-mail).
    pub contact: String,
    /// What it offers.
    pub offers: Offers,
    /// Where it is, if it says.
    pub coordinates: Option<Coordinates>,
}

/// A division's figures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DivisionFigure {
    /// The division's code (`"600"`, one of [`DIVISIONS`]).
    pub division: String,
    /// Titles in it.
    pub titles: u32,
    /// The smallest [`title_hash`]es of its titles, ascending, at most [`SAMPLE_MAX`].
    pub sample: Vec<u32>,
}

/// Titles in one language.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LanguageFigure {
    /// The MARC language code (`ind`).
    pub language: String,
    /// Titles in it.
    pub titles: u32,
}

/// A library's profile, signed as [`Signed<LibraryProfile>`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibraryProfile {
    /// The library's name.
    pub name: String,
    /// Its short code.
    pub code: String,
    /// What the librarian states.
    pub details: ProfileDetails,
    /// Titles in its catalog.
    pub titles: u32,
    /// By division (divisions with titles only, in code order).
    pub divisions: Vec<DivisionFigure>,
    /// By first language, most held first (at most [`LANGUAGES_MAX`]).
    pub languages: Vec<LanguageFigure>,
    /// When it was made (ms since 1970, the library's clock): the newest stands.
    pub time_ms: u64,
}

impl Kind for LibraryProfile {
    const DOMAIN: Domain = Domain::LibraryProfile;
    const LABEL: &'static str = "PROFILE";
}

fn text_ok(text: &str, max: usize) -> bool {
    text.len() <= max && !text.chars().any(char::is_control)
}

impl LibraryProfile {
    /// Reads a profile's text (spaces and line breaks ignored), checks its signature and
    /// its content.
    pub fn read(text: &str) -> Result<Signed<LibraryProfile>, DocError> {
        if text.len() > TEXT_MAX {
            return Err(DocError::TooLarge {
                size: text.len(),
                max: TEXT_MAX,
            });
        }
        let profile = Signed::<LibraryProfile>::from_text(text)?;
        LibraryProfile::check(&profile)?;
        Ok(profile)
    }

    /// Checks a profile's signature and content.
    pub fn check(profile: &Signed<LibraryProfile>) -> Result<(), DocError> {
        profile.verify()?;
        let body = &profile.body;
        let invalid = |why: String| Err(DocError::Invalid(why));
        if body.name.trim().is_empty() || !text_ok(&body.name, NAME_MAX) {
            return invalid(format!(
                "a profile's name is 1 to {NAME_MAX} bytes, no control characters"
            ));
        }
        if body.code.is_empty()
            || body.code.len() > 32
            || !body
                .code
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return invalid("a profile's code is 1 to 32 letters, digits, '-' or '_'".into());
        }
        let d = &body.details;
        if !text_ok(&d.address, ADDRESS_MAX) {
            return invalid(format!(
                "a profile's address is at most {ADDRESS_MAX} bytes, no control characters"
            ));
        }
        for (what, text) in [
            ("district", &d.district),
            ("opening hours", &d.hours),
            ("contact", &d.contact),
        ] {
            if !text_ok(text, SHORT_MAX) {
                return invalid(format!(
                    "a profile's {what} is at most {SHORT_MAX} bytes, no control characters"
                ));
            }
        }
        if d.coordinates.is_some_and(|c| !c.valid()) {
            return invalid("a profile's coordinates are outside the globe".into());
        }
        let mut previous: Option<&str> = None;
        let mut in_divisions: u64 = 0;
        for figure in &body.divisions {
            if !DIVISIONS
                .iter()
                .any(|(code, _, _)| *code == figure.division)
            {
                return invalid(format!(
                    "{:?} is not a division (000, 100, ... 900)",
                    figure.division
                ));
            }
            if previous.is_some_and(|p| p >= figure.division.as_str()) {
                return invalid("a profile's divisions are listed once each, in order".into());
            }
            previous = Some(&figure.division);
            if figure.sample.len() > SAMPLE_MAX
                || figure.sample.len() as u64 > u64::from(figure.titles)
                || figure.sample.windows(2).any(|w| w[0] >= w[1])
            {
                return invalid(format!(
                    "division {}: a sample is at most {SAMPLE_MAX} distinct hashes, ascending, \
                     no more than its titles",
                    figure.division
                ));
            }
            in_divisions += u64::from(figure.titles);
        }
        if in_divisions > u64::from(body.titles) {
            return invalid(format!(
                "the divisions count {in_divisions} titles, more than the {} of the catalog",
                body.titles
            ));
        }
        if body.languages.len() > LANGUAGES_MAX
            || body.languages.iter().any(|l| {
                l.language.len() != 3
                    || !l.language.chars().all(|c| c.is_ascii_lowercase())
                    || l.titles > body.titles
            })
        {
            return invalid(format!(
                "a profile lists at most {LANGUAGES_MAX} languages, each a three-letter MARC \
                 code with no more titles than the catalog"
            ));
        }
        Ok(())
    }

    /// The figure of a division, if it has titles.
    pub fn division(&self, code: &str) -> Option<&DivisionFigure> {
        self.divisions.iter().find(|d| d.division == code)
    }
}

/// A title's 32-bit hash: of its folded main title and first author. None for a record
/// with no title, or a short title (under 8 letters) and no author, which would stand for
/// too many books.
pub fn title_hash(d: &Description) -> Option<u32> {
    let title = dedup::title_words(&d.title);
    let letters: usize = title.iter().map(String::len).sum();
    let author = d
        .names
        .iter()
        .find(|n| n.main)
        .or_else(|| d.names.first())
        .map(|n| dedup::author_words(&n.name))
        .unwrap_or_default();
    if title.is_empty() || (author.is_empty() && letters < 8) {
        return None;
    }
    let digest = Sha256::new()
        .chain_update(b"jalin/v1/profile-title\0")
        .chain_update(title.join(" "))
        .chain_update(b"|")
        .chain_update(author.join(" "))
        .finalize();
    Some(u32::from_be_bytes([
        digest[0], digest[1], digest[2], digest[3],
    ]))
}

/// A catalog's figures, added to a record at a time.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// Per division: the distinct title hashes, and records with no hash.
    divisions: BTreeMap<&'static str, (HashSet<u32>, u32)>,
    /// Per language: the same.
    languages: BTreeMap<String, (HashSet<u32>, u32)>,
    /// Every title hash of the catalog.
    all: HashSet<u32>,
    /// Records with no hash.
    unhashed: u32,
}

impl Figures {
    /// Counts one (live) record.
    pub fn add(&mut self, d: &Description) {
        let hash = title_hash(d);
        let bump = |slot: &mut (HashSet<u32>, u32)| match hash {
            Some(h) => {
                slot.0.insert(h);
            }
            None => slot.1 = slot.1.saturating_add(1),
        };
        if let Some(division) = crate::collection::division(&d.classification) {
            bump(self.divisions.entry(division).or_default());
        }
        if let Some(language) = d.languages.first() {
            let code = language.trim().to_ascii_lowercase();
            if code.len() == 3 && code.chars().all(|c| c.is_ascii_lowercase()) {
                bump(self.languages.entry(code).or_default());
            }
        }
        match hash {
            Some(h) => {
                self.all.insert(h);
            }
            None => self.unhashed = self.unhashed.saturating_add(1),
        }
    }

    /// Whether the catalog holds the title of this hash.
    pub fn holds(&self, hash: u32) -> bool {
        self.all.contains(&hash)
    }

    /// Titles in the catalog.
    pub fn titles(&self) -> u32 {
        (self.all.len() as u32).saturating_add(self.unhashed)
    }

    /// Titles in a division.
    pub fn division_titles(&self, code: &str) -> u32 {
        self.divisions
            .get(code)
            .map_or(0, |(set, n)| (set.len() as u32).saturating_add(*n))
    }

    /// The figures as a profile carries them.
    pub fn profile_figures(&self) -> (u32, Vec<DivisionFigure>, Vec<LanguageFigure>) {
        let divisions = self
            .divisions
            .iter()
            .map(|(code, (set, unhashed))| {
                let mut smallest: BTreeSet<u32> = BTreeSet::new();
                for hash in set {
                    smallest.insert(*hash);
                    if smallest.len() > SAMPLE_MAX {
                        smallest.pop_last();
                    }
                }
                DivisionFigure {
                    division: code.to_string(),
                    titles: (set.len() as u32).saturating_add(*unhashed),
                    sample: smallest.into_iter().collect(),
                }
            })
            .collect();
        let mut languages: Vec<LanguageFigure> = self
            .languages
            .iter()
            .map(|(code, (set, unhashed))| LanguageFigure {
                language: code.clone(),
                titles: (set.len() as u32).saturating_add(*unhashed),
            })
            .collect();
        languages.sort_by(|a, b| b.titles.cmp(&a.titles).then(a.language.cmp(&b.language)));
        languages.truncate(LANGUAGES_MAX);
        (self.titles(), divisions, languages)
    }
}

/// How a candidate's collection complements one division of this library's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DivisionComplement {
    /// The division's code.
    pub division: String,
    /// The candidate's titles in it.
    pub their_titles: u32,
    /// This library's titles in it.
    pub our_titles: u32,
    /// The candidate's sampled titles.
    pub sampled: u32,
    /// Of those, the ones this library's catalog lacks.
    pub lacking: u32,
    /// `lacking / sampled` (0 with no sample): the estimated share of the candidate's
    /// titles in the division that this library lacks.
    pub share_lacking: f64,
    /// `their_titles x share_lacking`, rounded: titles it would bring.
    pub new_titles: u32,
    /// Whether the figure is exact (the whole division was sampled).
    pub exact: bool,
}

/// How a candidate complements this library.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Complement {
    /// Per division the candidate has titles in, in code order.
    pub divisions: Vec<DivisionComplement>,
    /// The candidate's titles in divisions.
    pub their_titles: u32,
    /// Their titles this library lacks (the divisions' sum).
    pub new_titles: u32,
    /// `new_titles / their_titles` (0 with none).
    pub share_new: f64,
    /// The distance between the two, where both give coordinates (km).
    pub distance_km: Option<f64>,
}

/// How `theirs` complements the library with catalog figures `ours` (and coordinates
/// `here`): per division, the share of the candidate's sampled titles that `ours` lacks.
pub fn complement(
    theirs: &LibraryProfile,
    ours: &Figures,
    here: Option<Coordinates>,
) -> Complement {
    let divisions: Vec<DivisionComplement> = theirs
        .divisions
        .iter()
        .map(|figure| {
            let sampled = figure.sample.len() as u32;
            let lacking = figure.sample.iter().filter(|h| !ours.holds(**h)).count() as u32;
            let share_lacking = if sampled == 0 {
                0.0
            } else {
                f64::from(lacking) / f64::from(sampled)
            };
            DivisionComplement {
                division: figure.division.clone(),
                their_titles: figure.titles,
                our_titles: ours.division_titles(&figure.division),
                sampled,
                lacking,
                share_lacking,
                new_titles: (f64::from(figure.titles) * share_lacking).round() as u32,
                exact: sampled == figure.titles,
            }
        })
        .collect();
    let their_titles = divisions.iter().map(|d| d.their_titles).sum::<u32>();
    let new_titles = divisions.iter().map(|d| d.new_titles).sum::<u32>();
    Complement {
        share_new: if their_titles == 0 {
            0.0
        } else {
            f64::from(new_titles) / f64::from(their_titles)
        },
        their_titles,
        new_titles,
        distance_km: match (here, theirs.details.coordinates) {
            (Some(a), Some(b)) => Some(a.distance_km(b)),
            _ => None,
        },
        divisions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Classification, Name, NameKind};
    use ed25519_dalek::SigningKey;

    fn book(title: &str, author: &str, ddc: &str) -> Description {
        Description {
            title: title.into(),
            names: vec![Name {
                name: author.into(),
                kind: NameKind::Personal,
                main: true,
                ..Name::default()
            }],
            classification: Classification {
                ddc: vec![ddc.into()],
                ..Classification::default()
            },
            languages: vec!["ind".into()],
            ..Description::default()
        }
    }

    fn profile_of(figures: &Figures) -> LibraryProfile {
        let (titles, divisions, languages) = figures.profile_figures();
        LibraryProfile {
            name: "Perpustakaan Desa Kemiri Lor".into(),
            code: "KEMIRILOR".into(),
            details: ProfileDetails {
                kind: LibraryType::Desa,
                address: "Jl. Raya Kemiri 1".into(),
                district: "Kemiri, Purworejo".into(),
                hours: "Senin-Sabtu 08.00-14.00".into(),
                contact: "0812 0000 0000".into(),
                offers: Offers {
                    interlibrary_loan: true,
                    reading_space: true,
                    internet: false,
                },
                coordinates: Some(Coordinates::parse("-7.71234, 109.98765").unwrap()),
            },
            titles,
            divisions,
            languages,
            time_ms: 1,
        }
    }

    #[test]
    fn a_profile_reads_back_and_an_altered_one_is_refused() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let mut figures = Figures::default();
        for n in 0..200 {
            figures.add(&book(&format!("Buku nomor {n}"), "Penulis", "899.221"));
        }
        let signed = Signed::sign(&key, profile_of(&figures));
        let text = signed.to_text();
        assert_eq!(LibraryProfile::read(&text).expect("reads"), signed);
        // The body changed after signing: the signature no longer holds.
        let mut forged = signed.clone();
        forged.body.details.offers.internet = true;
        let error = LibraryProfile::read(&forged.to_text()).unwrap_err();
        assert_eq!(error.code(), "bad_signature", "{error}");
        // A character changed in the text: the checksum says so.
        let mut chars: Vec<char> = text.chars().collect();
        let at = chars.len() / 2;
        chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
        let error = LibraryProfile::read(&chars.into_iter().collect::<String>()).unwrap_err();
        assert_eq!(error.code(), "mistyped", "{error}");
        // Signed, but a figure is impossible.
        let mut impossible = profile_of(&figures);
        impossible.titles = 10;
        let error = LibraryProfile::read(&Signed::sign(&key, impossible).to_text()).unwrap_err();
        assert_eq!(error.code(), "invalid", "{error}");
        let mut unsorted = profile_of(&figures);
        unsorted.divisions[0].sample.reverse();
        assert!(LibraryProfile::read(&Signed::sign(&key, unsorted).to_text()).is_err());
        assert!(LibraryProfile::read(&"A".repeat(TEXT_MAX + 1)).is_err());
    }

    #[test]
    fn a_full_profile_fits_one_qr_code() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let mut figures = Figures::default();
        for (i, (code, _, _)) in DIVISIONS.iter().enumerate() {
            for n in 0..100 {
                figures.add(&book(&format!("Judul {i} {n}"), "Penulis", code));
            }
        }
        let mut profile = profile_of(&figures);
        profile.name = "N".repeat(NAME_MAX);
        profile.details.address = "A".repeat(ADDRESS_MAX);
        profile.details.district = "D".repeat(SHORT_MAX);
        profile.details.hours = "H".repeat(SHORT_MAX);
        profile.details.contact = "C".repeat(SHORT_MAX);
        profile.languages = (0..LANGUAGES_MAX)
            .map(|i| LanguageFigure {
                language: format!("l{}a", (b'a' + i as u8) as char),
                titles: 1,
            })
            .collect();
        let signed = Signed::sign(&key, profile);
        LibraryProfile::check(&signed).expect("valid");
        let text = signed.to_text();
        // QR version 40 at error correction M holds 3,391 alphanumeric characters.
        assert!(text.len() <= 3_391, "{} characters", text.len());
        assert!(text.len() <= TEXT_MAX);
    }

    #[test]
    fn the_complement_is_the_sampled_titles_this_library_lacks() {
        // Theirs: 10 literature titles (all sampled) and 300 religion titles.
        let mut theirs = Figures::default();
        for n in 0..10 {
            theirs.add(&book(&format!("Kumpulan puisi {n}"), "Rendra", "899.221"));
        }
        for n in 0..300 {
            theirs.add(&book(&format!("Tafsir jilid {n}"), "Hamka", "297.1"));
        }
        // Ours: 4 of their literature titles, and the even-numbered religion titles.
        let mut ours = Figures::default();
        for n in 0..4 {
            ours.add(&book(&format!("KUMPULAN PUISI {n}"), "Rendra,", "800"));
        }
        for n in (0..300).step_by(2) {
            ours.add(&book(&format!("Tafsir jilid {n}"), "Hamka", "297"));
        }
        let mut profile = profile_of(&theirs);
        let here = Coordinates::parse("-7.80000, 110.36000").unwrap();
        profile.details.coordinates = Some(Coordinates::parse("-7.70000, 110.36000").unwrap());
        let c = complement(&profile, &ours, Some(here));
        let literature = c.divisions.iter().find(|d| d.division == "800").unwrap();
        assert_eq!(
            (literature.their_titles, literature.our_titles),
            (10, 4),
            "{c:?}"
        );
        assert_eq!((literature.sampled, literature.lacking), (10, 6));
        assert!(literature.exact && literature.new_titles == 6);
        let religion = c.divisions.iter().find(|d| d.division == "200").unwrap();
        assert_eq!((religion.their_titles, religion.our_titles), (300, 150));
        assert_eq!(religion.sampled, SAMPLE_MAX as u32);
        // The plain computation: which sampled hashes are among ours.
        let ours_hashes: HashSet<u32> = (0..300)
            .step_by(2)
            .filter_map(|n| title_hash(&book(&format!("Tafsir jilid {n}"), "Hamka", "297")))
            .collect();
        let sample = &profile.division("200").unwrap().sample;
        let lacking = sample.iter().filter(|h| !ours_hashes.contains(h)).count() as u32;
        assert_eq!(religion.lacking, lacking);
        assert_eq!(
            religion.new_titles,
            (300.0 * f64::from(lacking) / SAMPLE_MAX as f64).round() as u32
        );
        assert!(!religion.exact);
        assert_eq!(c.new_titles, 6 + religion.new_titles);
        // 0.1 degree of latitude is 11.1 km.
        let km = c.distance_km.unwrap();
        assert!((km - 11.12).abs() < 0.05, "{km}");
    }
}
