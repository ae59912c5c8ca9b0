//! The conspectus: each member's stated collecting level per division (0-5, current and
//! committed), signed as a document of the consortium, set beside what its catalog shows
//! (its titles in the division and their share of its collection), so "who collects what"
//! is agreed and visible.

use crate::library::{Library, LibraryError};
use jalin_protocol::collection::{OverlapReport, DIVISIONS};
use jalin_protocol::consortium::conspectus::{Conspectus, DivisionLevel};
use jalin_protocol::signing::LibraryId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One division of one member: stated levels and catalog figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DivisionRow {
    /// The division's code (`"600"`).
    pub division: String,
    /// The stated current level, if stated.
    pub current: Option<u8>,
    /// The stated commitment, if stated.
    pub commitment: Option<u8>,
    /// The member's titles in the division (books, not records).
    pub titles: u64,
    /// Those as a share of the member's titles, in percent.
    pub percent: f64,
}

/// One member's conspectus beside its catalog.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberConspectus {
    /// The library's key (hex).
    pub library: String,
    /// Its name.
    pub library_name: String,
    /// Whether it is this library.
    pub own: bool,
    /// When it stated its levels (ms since 1970), if it has.
    pub stated_ms: Option<u64>,
    /// Per division, in the divisions' order.
    pub divisions: Vec<DivisionRow>,
}

/// Every member's stated levels (the newest over the consortia held), from the documents.
fn stated(library: &Library) -> Result<BTreeMap<LibraryId, Conspectus>, LibraryError> {
    let consortia = library.consortia();
    let mut out: BTreeMap<LibraryId, Conspectus> = BTreeMap::new();
    for summary in consortia.list() {
        for (member, conspectus) in consortia.conspectuses(&summary.id)? {
            let newer = out
                .get(&member)
                .is_none_or(|held| held.time_ms < conspectus.time_ms);
            if newer {
                out.insert(member, conspectus);
            }
        }
    }
    Ok(out)
}

/// Each member of the overlap `report`, and each member that stated levels, with its
/// levels beside its catalog's figures; this library first.
pub fn view(
    library: &Library,
    report: &OverlapReport,
) -> Result<Vec<MemberConspectus>, LibraryError> {
    let stated = stated(library)?;
    let names = library.library_names();
    let own = library.id();
    let mut keys: Vec<String> = report.libraries.iter().map(|l| l.library.clone()).collect();
    keys.extend(stated.keys().map(LibraryId::to_hex));
    keys.sort();
    keys.dedup();
    let mut out = Vec::new();
    for key in keys {
        let id = LibraryId::from_hex(&key).ok();
        let figures = report.libraries.iter().find(|l| l.library == key);
        let total = figures.map_or(0, |f| f.titles.total());
        let levels = id.and_then(|id| stated.get(&id));
        let divisions = DIVISIONS
            .iter()
            .map(|(code, _, _)| {
                let titles = figures
                    .and_then(|f| f.by_division.get(*code))
                    .map_or(0, |s| s.total());
                let level = levels.and_then(|c| c.level(code));
                DivisionRow {
                    division: code.to_string(),
                    current: level.map(|l| l.current),
                    commitment: level.map(|l| l.commitment),
                    titles,
                    percent: if total == 0 {
                        0.0
                    } else {
                        (titles as f64 * 1000.0 / total as f64).round() / 10.0
                    },
                }
            })
            .collect();
        out.push(MemberConspectus {
            library_name: id
                .and_then(|id| names.get(&id).cloned())
                .unwrap_or_else(|| key.chars().take(8).collect()),
            own: id == Some(own),
            stated_ms: levels.map(|c| c.time_ms),
            library: key,
            divisions,
        });
    }
    out.sort_by(|a, b| (!a.own, &a.library_name).cmp(&(!b.own, &b.library_name)));
    Ok(out)
}

/// Reads levels written `DIVISION=CURRENT/COMMITMENT` (`600=2/3`).
pub fn parse_level(text: &str) -> Result<DivisionLevel, String> {
    let bad = || {
        format!("{text:?}: write a division's levels as DIVISION=CURRENT/COMMITMENT (600=2/3), levels 0 to 5")
    };
    let (division, levels) = text.split_once('=').ok_or_else(bad)?;
    let (current, commitment) = levels.split_once('/').ok_or_else(bad)?;
    let level = |t: &str| t.trim().parse::<u8>().ok().filter(|l| *l <= 5);
    Ok(DivisionLevel {
        division: division.trim().to_string(),
        current: level(current).ok_or_else(bad)?,
        commitment: level(commitment).ok_or_else(bad)?,
    })
}

/// States this library's levels (replacing what it stated before) in every consortium it
/// is a member of; divisions not named are not stated. Returns in how many.
pub fn set(library: &Library, mut levels: Vec<DivisionLevel>) -> Result<usize, LibraryError> {
    levels.sort_by_key(|l| {
        DIVISIONS
            .iter()
            .position(|(c, _, _)| *c == l.division)
            .unwrap_or(usize::MAX)
    });
    let consortia = library.consortia();
    let now = library.now_ms();
    let mut count = 0;
    for summary in consortia.list() {
        if summary.role.is_none() {
            continue;
        }
        consortia.publish_conspectus(&summary.id, levels.clone(), now)?;
        count += 1;
    }
    if count == 0 {
        return Err(LibraryError::Consortium(
            crate::consortium::ConsortiumError::NotFound(
                "this library is a member of no partnership: a conspectus is stated to partners"
                    .into(),
            ),
        ));
    }
    Ok(count)
}

/// A request about the conspectus, from the CLI or the API.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ConspectusRequest {
    /// Every member's levels beside its catalog.
    Show,
    /// State this library's levels.
    Set {
        /// Per division.
        levels: Vec<DivisionLevel>,
    },
}

/// Runs a conspectus request (blocking: it reads every catalog for the figures).
pub fn execute(
    library: &Library,
    request: ConspectusRequest,
) -> Result<Vec<MemberConspectus>, LibraryError> {
    if let ConspectusRequest::Set { levels } = request {
        set(library, levels)?;
    }
    view(library, &library.collection_overlap()?)
}
