//! Library profiles and finding partners: this library's profile (what the librarian
//! states, and figures computed from its catalog), signed and shared as one line of text
//! or a QR code before any partnership; the profiles of other libraries received (pasted,
//! from a file, or heard on the local network), each set beside this library's catalog as
//! a candidate partner: the share of its titles, by division, that this library lacks,
//! the distance between the two, what it offers.

use crate::library::{decode, Library, LibraryError};
use jalin_protocol::collection::DIVISIONS;
use jalin_protocol::consortium::document::{DocError, Signed};
use jalin_protocol::profile::{
    complement, Complement, Coordinates, Figures, LibraryProfile, LibraryType, Offers,
    ProfileDetails, ADDRESS_MAX, SHORT_MAX,
};
use jalin_protocol::signing::LibraryId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Profiles of other libraries kept, at most.
pub const KEPT_MAX: usize = 500;
/// Profiles heard on the local network, kept in memory, at most (the oldest heard go).
pub const HEARD_MAX: usize = 100;
/// A profile heard this recently is not pushed out by a newcomer (two announcements).
const HEARD_FRESH_MS: u64 = 120_000;

/// What goes wrong with profiles.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// A profile that does not read or verify.
    #[error("the profile is refused: {}", refusal(.0))]
    Refused(#[from] DocError),
    /// This library's own profile, given back to it.
    #[error("this is this library's own profile")]
    Own,
    /// An older profile than the one kept.
    #[error("a newer profile of {0} is here already")]
    Older(String),
    /// Too many kept.
    #[error("{0} profiles of other libraries are kept, the most: forget some first")]
    TooMany(usize),
    /// Something the librarian wrote that cannot be kept.
    #[error("{0}")]
    Invalid(String),
    /// No such library among the profiles kept.
    #[error("no profile of {0:?} is kept here")]
    NotFound(String),
    /// Storage failed.
    #[error("storage: {0}")]
    Storage(#[from] sled::Error),
}

/// Why a profile is refused, in words a librarian can act on.
fn refusal(error: &DocError) -> String {
    match error {
        DocError::Signature(_) => "it was altered after it was signed (its signature does not \
                                   match its content): ask the library for its profile again"
            .into(),
        DocError::BadCharacter { .. } | DocError::Checksum => {
            format!("{error}; copy the whole text again")
        }
        other => other.to_string(),
    }
}

impl ProfileError {
    /// What kind of failure this is, as a stable name.
    pub fn code(&self) -> &'static str {
        match self {
            ProfileError::Refused(e) => match e {
                DocError::Signature(_) => "profile_altered",
                DocError::BadCharacter { .. } | DocError::Checksum => "profile_mistyped",
                _ => "profile_unreadable",
            },
            ProfileError::Own => "profile_own",
            ProfileError::Older(_) => "profile_older",
            ProfileError::TooMany(_) => "profile_too_many",
            ProfileError::Invalid(_) => "profile_invalid",
            ProfileError::NotFound(_) => "profile_not_found",
            ProfileError::Storage(_) => "storage",
        }
    }
}

/// How a profile came here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Pasted or read from a file (or a QR code's text).
    Given,
    /// Heard on the local network.
    LocalNetwork,
}

/// A received profile as kept.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Kept {
    /// The profile's text.
    text: String,
    /// When it arrived (ms since 1970).
    received_ms: u64,
    /// How.
    source: Source,
}

/// The profiles of one library.
pub struct Profiles {
    tree: crate::durable::Tree,
    /// This catalog's figures, with the digest of the catalog they were computed from.
    own: Mutex<Option<([u8; 32], Arc<Figures>)>>,
    /// Profiles heard on the local network (never stored): each library's newest, with
    /// when it was heard.
    heard: Mutex<BTreeMap<LibraryId, (Signed<LibraryProfile>, u64)>>,
}

const DETAILS: &[u8] = b"details";

fn kept_key(library: &LibraryId) -> Vec<u8> {
    let mut key = b"p".to_vec();
    key.extend_from_slice(library.as_bytes());
    key
}

impl Profiles {
    /// Opens the profiles kept in `db`.
    pub fn open(db: &crate::durable::Db) -> Result<Profiles, sled::Error> {
        Ok(Profiles {
            tree: db.open_tree("profiles")?,
            own: Mutex::new(None),
            heard: Mutex::new(BTreeMap::new()),
        })
    }

    /// What the librarian stated about this library.
    pub fn details(&self) -> ProfileDetails {
        self.tree
            .get(DETAILS)
            .ok()
            .flatten()
            .and_then(|v| serde_json::from_slice(&v).ok())
            .unwrap_or_default()
    }

    fn set_details(&self, details: &ProfileDetails) -> Result<(), ProfileError> {
        let bytes =
            serde_json::to_vec(details).map_err(|e| ProfileError::Invalid(e.to_string()))?;
        self.tree.insert(DETAILS, bytes)?;
        self.tree.flush()?;
        Ok(())
    }

    fn kept(&self) -> Vec<(Signed<LibraryProfile>, Kept)> {
        self.tree
            .scan_prefix(b"p")
            .filter_map(|item| {
                let (_, v) = item.ok()?;
                let kept: Kept = serde_json::from_slice(&v).ok()?;
                let profile = LibraryProfile::read(&kept.text).ok()?;
                Some((profile, kept))
            })
            .collect()
    }

    /// Keeps a profile received, unless an as new one of the same library is here.
    /// Whether it was new.
    pub fn keep(
        &self,
        own: &LibraryId,
        text: &str,
        source: Source,
        now_ms: u64,
    ) -> Result<Signed<LibraryProfile>, ProfileError> {
        let profile = LibraryProfile::read(text)?;
        if profile.author == *own {
            return Err(ProfileError::Own);
        }
        let key = kept_key(&profile.author);
        match self.tree.get(&key)? {
            Some(v) => {
                let held = serde_json::from_slice::<Kept>(&v)
                    .ok()
                    .and_then(|k| LibraryProfile::read(&k.text).ok());
                if held.is_some_and(|h| h.body.time_ms >= profile.body.time_ms) {
                    return Err(ProfileError::Older(profile.body.name.clone()));
                }
            }
            None => {
                let count = self.tree.scan_prefix(b"p").count();
                if count >= KEPT_MAX {
                    return Err(ProfileError::TooMany(count));
                }
            }
        }
        let kept = Kept {
            text: profile.to_text(),
            received_ms: now_ms,
            source,
        };
        let bytes = serde_json::to_vec(&kept).map_err(|e| ProfileError::Invalid(e.to_string()))?;
        self.tree.insert(key, bytes)?;
        self.tree.flush()?;
        Ok(profile)
    }

    /// Takes in a profile heard on the local network (kept in memory only): the newest of
    /// each library, at most [`HEARD_MAX`], the oldest heard going first.
    pub fn hear(&self, own: &LibraryId, text: &str, now_ms: u64) -> Result<(), ProfileError> {
        let profile = LibraryProfile::read(text)?;
        if profile.author == *own {
            return Err(ProfileError::Own);
        }
        let mut heard = self.heard.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((held, at)) = heard.get_mut(&profile.author) {
            if held.body.time_ms <= profile.body.time_ms {
                *held = profile;
            }
            *at = now_ms;
            return Ok(());
        }
        if heard.len() >= HEARD_MAX {
            // The oldest heard goes, unless it was heard within two announcements: a host
            // sending profiles under fresh keys cannot push out the libraries that keep
            // announcing themselves.
            let oldest = heard
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .filter(|(_, (_, at))| now_ms.saturating_sub(*at) > HEARD_FRESH_MS)
                .map(|(l, _)| *l);
            match oldest {
                Some(oldest) => {
                    heard.remove(&oldest);
                }
                None => return Err(ProfileError::TooMany(heard.len())),
            }
        }
        heard.insert(profile.author, (profile, now_ms));
        Ok(())
    }

    /// The profiles heard on the local network.
    fn heard(&self) -> Vec<(Signed<LibraryProfile>, u64)> {
        self.heard
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Forgets a received profile.
    pub fn forget(&self, library: &LibraryId) -> Result<bool, ProfileError> {
        Ok(self.tree.remove(kept_key(library))?.is_some())
    }
}

/// This catalog's figures: computed again only when the catalog changed.
pub fn own_figures(library: &Library) -> Result<Arc<Figures>, LibraryError> {
    let profiles = library.profiles();
    let digest = library.store().namespace_digest(&library.id())?;
    if let Some((at, figures)) = profiles
        .own
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
    {
        if *at == digest {
            return Ok(figures.clone());
        }
    }
    let mut figures = Figures::default();
    for stored in library.store().records() {
        let stored = stored?;
        if stored.deleted {
            continue;
        }
        if let Some(record) = decode(&stored) {
            figures.add(&record.description);
        }
    }
    let figures = Arc::new(figures);
    *profiles.own.lock().unwrap_or_else(|p| p.into_inner()) = Some((digest, figures.clone()));
    Ok(figures)
}

/// This library's profile, signed now.
pub fn own_profile(library: &Library) -> Result<Signed<LibraryProfile>, LibraryError> {
    let figures = own_figures(library)?;
    let (titles, divisions, languages) = figures.profile_figures();
    let config = &library.data().config.library;
    let profile = Signed::sign(
        &library.data().key,
        LibraryProfile {
            name: config.name.clone(),
            code: config.code.clone(),
            details: library.profiles().details(),
            titles,
            divisions,
            languages,
            time_ms: library.now_ms(),
        },
    );
    LibraryProfile::check(&profile).map_err(ProfileError::from)?;
    Ok(profile)
}

/// A profile as shown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProfileView {
    /// The library's key (hex).
    pub library: String,
    /// Its fingerprint, for people.
    pub fingerprint: String,
    /// Name.
    pub name: String,
    /// Code.
    pub code: String,
    /// Kind (`desa`, `sekolah`, `umum`, `perguruan_tinggi`, `khusus`).
    pub kind: String,
    /// Address.
    pub address: String,
    /// District.
    pub district: String,
    /// Opening hours.
    pub hours: String,
    /// Contact.
    pub contact: String,
    /// What it offers.
    pub offers: Offers,
    /// Coordinates, as `lat, lon`.
    pub coordinates: Option<String>,
    /// Titles.
    pub titles: u32,
    /// Titles by division: (code, titles), every division in order.
    pub divisions: Vec<(String, u32)>,
    /// Titles by language: (code, titles), most first.
    pub languages: Vec<(String, u32)>,
    /// When it was signed (ms since 1970).
    pub time_ms: u64,
}

impl ProfileView {
    /// The view of a signed profile.
    pub fn of(profile: &Signed<LibraryProfile>) -> ProfileView {
        let body = &profile.body;
        ProfileView {
            library: profile.author.to_hex(),
            fingerprint: profile.author.fingerprint(),
            name: body.name.clone(),
            code: body.code.clone(),
            kind: body.details.kind.as_str().to_string(),
            address: body.details.address.clone(),
            district: body.details.district.clone(),
            hours: body.details.hours.clone(),
            contact: body.details.contact.clone(),
            offers: body.details.offers,
            coordinates: body.details.coordinates.map(|c| c.to_string()),
            titles: body.titles,
            divisions: DIVISIONS
                .iter()
                .map(|(code, _, _)| {
                    (
                        code.to_string(),
                        body.division(code).map_or(0, |d| d.titles),
                    )
                })
                .collect(),
            languages: body
                .languages
                .iter()
                .map(|l| (l.language.clone(), l.titles))
                .collect(),
            time_ms: body.time_ms,
        }
    }
}

/// A candidate partner.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Its profile.
    pub profile: ProfileView,
    /// How it complements this library.
    pub complement: Complement,
    /// When its profile arrived (ms since 1970).
    pub received_ms: u64,
    /// How.
    pub source: Source,
    /// Whether it is already a member of a consortium with this library.
    pub partner: bool,
    /// Its profile's text, when heard on the local network (to keep it).
    pub text: Option<String>,
}

/// The candidates: every profile received, set beside this catalog, those bringing the
/// most titles this library lacks first (then the nearest).
pub fn candidates(library: &Library) -> Result<Vec<Candidate>, LibraryError> {
    let figures = own_figures(library)?;
    let here = library.profiles().details().coordinates;
    let trust = library.consortia().trust();
    let kept = library.profiles().kept();
    let heard = library
        .profiles()
        .heard()
        .into_iter()
        .filter(|(p, _)| !kept.iter().any(|(k, _)| k.author == p.author))
        .map(|(p, at)| (p, at, Source::LocalNetwork))
        .collect::<Vec<_>>();
    let mut out: Vec<Candidate> = kept
        .into_iter()
        .map(|(p, k)| (p, k.received_ms, k.source))
        .chain(heard)
        .map(|(profile, received_ms, source)| Candidate {
            complement: complement(&profile.body, &figures, here),
            partner: trust.is_co_member(&profile.author),
            profile: ProfileView::of(&profile),
            received_ms,
            source,
            text: (source == Source::LocalNetwork).then(|| profile.to_text()),
        })
        .collect();
    out.sort_by(|a, b| {
        b.complement
            .new_titles
            .cmp(&a.complement.new_titles)
            .then(
                a.complement
                    .distance_km
                    .unwrap_or(f64::MAX)
                    .total_cmp(&b.complement.distance_km.unwrap_or(f64::MAX)),
            )
            .then(a.profile.name.cmp(&b.profile.name))
    });
    Ok(out)
}

/// What the librarian states, as written in a form or on the command line: fields left
/// out stay as they are; an empty coordinates field clears them.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DetailsInput {
    /// Kind.
    #[serde(default)]
    pub kind: Option<String>,
    /// Address.
    #[serde(default)]
    pub address: Option<String>,
    /// District.
    #[serde(default)]
    pub district: Option<String>,
    /// Opening hours.
    #[serde(default)]
    pub hours: Option<String>,
    /// Contact.
    #[serde(default)]
    pub contact: Option<String>,
    /// Lends to other libraries.
    #[serde(default)]
    pub interlibrary_loan: Option<bool>,
    /// Has a reading space.
    #[serde(default)]
    pub reading_space: Option<bool>,
    /// Has internet for visitors.
    #[serde(default)]
    pub internet: Option<bool>,
    /// `lat, lon` in degrees; empty to clear.
    #[serde(default)]
    pub coordinates: Option<String>,
}

fn checked(what: &str, text: String, max: usize) -> Result<String, ProfileError> {
    let text = text.trim().to_string();
    if text.len() > max || text.chars().any(char::is_control) {
        return Err(ProfileError::Invalid(format!(
            "the {what} is at most {max} bytes, on one line"
        )));
    }
    Ok(text)
}

/// Changes what the librarian states about this library.
pub fn set_details(library: &Library, input: DetailsInput) -> Result<ProfileDetails, LibraryError> {
    let mut details = library.profiles().details();
    if let Some(kind) = input.kind {
        details.kind = LibraryType::parse(&kind).ok_or_else(|| {
            ProfileError::Invalid(format!(
                "{kind:?} is not a kind of library: desa, sekolah, umum, perguruan_tinggi or khusus"
            ))
        })?;
    }
    if let Some(text) = input.address {
        details.address = checked("address", text, ADDRESS_MAX)?;
    }
    if let Some(text) = input.district {
        details.district = checked("district", text, SHORT_MAX)?;
    }
    if let Some(text) = input.hours {
        details.hours = checked("opening hours", text, SHORT_MAX)?;
    }
    if let Some(text) = input.contact {
        details.contact = checked("contact", text, SHORT_MAX)?;
    }
    if let Some(yes) = input.interlibrary_loan {
        details.offers.interlibrary_loan = yes;
    }
    if let Some(yes) = input.reading_space {
        details.offers.reading_space = yes;
    }
    if let Some(yes) = input.internet {
        details.offers.internet = yes;
    }
    if let Some(text) = input.coordinates {
        details.coordinates = if text.trim().is_empty() {
            None
        } else {
            Some(Coordinates::parse(&text).map_err(ProfileError::Invalid)?)
        };
    }
    library.profiles().set_details(&details)?;
    Ok(details)
}

/// A request about profiles, from the CLI, the API or the pages.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ProfileRequest {
    /// This library's profile, signed now: its figures and its text.
    Show,
    /// Change what the librarian states.
    Set {
        /// The fields to change.
        #[serde(flatten)]
        details: DetailsInput,
    },
    /// Keep another library's profile (its text).
    Import {
        /// The text (`JALIN-PROFILE:...`; spaces and line breaks ignored).
        text: String,
    },
    /// Forget another library's profile.
    Forget {
        /// Its key, fingerprint or code.
        library: String,
    },
    /// The candidate partners.
    Partners,
}

/// The answer to a [`ProfileRequest`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProfileAnswer {
    /// What happened, in a sentence.
    pub message: String,
    /// A profile (this library's for `show` and `set`, the one taken for `import`).
    pub profile: Option<ProfileView>,
    /// This library's profile text (for `show` and `set`).
    pub text: Option<String>,
    /// The candidates (for `partners`).
    pub candidates: Vec<Candidate>,
}

fn find_kept(library: &Library, who: &str) -> Result<LibraryId, LibraryError> {
    let who = who.trim();
    let matches: Vec<LibraryId> = library
        .profiles()
        .kept()
        .into_iter()
        .map(|(p, _)| (p.author, p.body.code))
        .filter(|(id, code)| {
            id.to_hex().starts_with(&who.to_lowercase())
                || id.fingerprint().eq_ignore_ascii_case(who)
                || code.eq_ignore_ascii_case(who)
        })
        .map(|(id, _)| id)
        .collect();
    match matches.as_slice() {
        [one] => Ok(*one),
        _ => Err(ProfileError::NotFound(who.to_string()).into()),
    }
}

/// Carries out a request.
pub fn execute(library: &Library, request: ProfileRequest) -> Result<ProfileAnswer, LibraryError> {
    let answer =
        |message: String, profile: Option<&Signed<LibraryProfile>>, own: bool| ProfileAnswer {
            message,
            profile: profile.map(ProfileView::of),
            text: profile.filter(|_| own).map(Signed::to_text),
            candidates: Vec::new(),
        };
    match request {
        ProfileRequest::Show => {
            let profile = own_profile(library)?;
            Ok(answer(
                format!(
                    "The profile of {}, signed now: give its text or QR code to libraries \
                     that may become partners.",
                    profile.body.name
                ),
                Some(&profile),
                true,
            ))
        }
        ProfileRequest::Set { details } => {
            set_details(library, details)?;
            let profile = own_profile(library)?;
            Ok(answer(
                "The profile is changed.".into(),
                Some(&profile),
                true,
            ))
        }
        ProfileRequest::Import { text } => {
            let profile =
                library
                    .profiles()
                    .keep(&library.id(), &text, Source::Given, library.now_ms())?;
            Ok(answer(
                format!(
                    "The profile of {} ({}) is kept: it is among the candidate partners.",
                    profile.body.name,
                    profile.author.fingerprint()
                ),
                Some(&profile),
                false,
            ))
        }
        ProfileRequest::Forget { library: who } => {
            let id = find_kept(library, &who)?;
            library.profiles().forget(&id)?;
            Ok(answer(
                format!("The profile of {} is forgotten.", id.fingerprint()),
                None,
                false,
            ))
        }
        ProfileRequest::Partners => {
            let candidates = candidates(library)?;
            Ok(ProfileAnswer {
                message: format!("{} candidate partner(s).", candidates.len()),
                profile: None,
                text: None,
                candidates,
            })
        }
    }
}
