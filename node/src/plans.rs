//! Purchase plans (rencana pengadaan): the titles each member plans to buy, shared as
//! signed documents of the consortium (`jalin_protocol::consortium::plan`) while an
//! agreement in force has `coordinated_acquisition`. As a librarian adds a title, it is
//! matched against the union catalog (already held: by whom, with call number and copies)
//! and against partners' plans (planned: by whom); a plan reads "bought" once a record of
//! the same title is in its member's catalog.

use crate::consortium::{ConsortiumError, Refusal};
use crate::library::{Library, LibraryError};
use jalin_protocol::consortium::document::Hash32;
use jalin_protocol::consortium::plan::{self, PlanItem, COPIES_MAX, TEXT_MAX};
use jalin_protocol::dedup;
use jalin_protocol::record::{Description, Name};
use jalin_protocol::signing::LibraryId;
use serde::{Deserialize, Serialize};

/// Largest plan list read from a file.
pub const IMPORT_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Most titles one file adds.
pub const IMPORT_TITLES_MAX: usize = 2_000;
/// Most refused lines or records reported for one file (reading stops there).
pub const REFUSED_MAX: usize = 1_000;

/// A title as the librarian gives it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanInput {
    /// Title.
    #[serde(default)]
    pub title: String,
    /// Author.
    #[serde(default)]
    pub author: Option<String>,
    /// ISBN, any form (10 or 13 digits, hyphens).
    #[serde(default)]
    pub isbn: Option<String>,
    /// Year of publication.
    #[serde(default)]
    pub year: Option<i32>,
    /// Copies (1 when not given).
    #[serde(default)]
    pub copies: Option<u32>,
    /// Why.
    #[serde(default)]
    pub note: Option<String>,
}

/// What is wrong with a title given.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A field out of bounds or unreadable.
    #[error("{0}")]
    Invalid(String),
    /// No plan of that item here.
    #[error("no planned title {0:?} of this library")]
    NoSuchItem(String),
    /// The file is not a list of titles.
    #[error("{0}")]
    BadFile(String),
}

impl PlanError {
    /// What kind of failure this is, as a stable name.
    pub fn code(&self) -> &'static str {
        match self {
            PlanError::Invalid(_) => "plan_invalid",
            PlanError::NoSuchItem(_) => "plan_no_such_item",
            PlanError::BadFile(_) => "plan_bad_file",
        }
    }
}

/// `text` cut to [`TEXT_MAX`] bytes at a character boundary, marked with `…`.
fn shortened(text: &str) -> String {
    if text.len() <= TEXT_MAX {
        return text.to_string();
    }
    let mut end = TEXT_MAX - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Text folded: control characters (a catalogue's non-sorting marks) dropped, spaces
/// collapsed; None when nothing is left.
fn clean(text: Option<&str>) -> Option<String> {
    text.map(|t| {
        t.chars()
            .filter(|c| !c.is_control() || c.is_whitespace())
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    })
    .filter(|t| !t.is_empty())
}

impl PlanInput {
    /// The title checked and normalised: the ISBN as ISBN-13, spaces folded, bounds kept.
    fn checked(&self) -> Result<PlanInput, PlanError> {
        let title = clean(Some(&self.title)).unwrap_or_default();
        if title.is_empty() {
            return Err(PlanError::Invalid("a planned title needs a title".into()));
        }
        let author = clean(self.author.as_deref());
        let note = clean(self.note.as_deref());
        for text in [Some(&title), author.as_ref(), note.as_ref()]
            .into_iter()
            .flatten()
        {
            if text.len() > TEXT_MAX {
                return Err(PlanError::Invalid(format!(
                    "title, author and note are at most {TEXT_MAX} bytes each"
                )));
            }
        }
        let isbn = match clean(self.isbn.as_deref()) {
            None => None,
            Some(text) => match jalin_protocol::isbn::parse_isbn(&text) {
                Some(jalin_protocol::isbn::Isbn::Valid(isbn)) => Some(isbn),
                _ => {
                    return Err(PlanError::Invalid(format!(
                        "{text:?} is not a valid ISBN (its check digit or length is wrong)"
                    )))
                }
            },
        };
        let copies = self.copies.unwrap_or(1);
        if copies == 0 || copies > COPIES_MAX {
            return Err(PlanError::Invalid(format!("copies are 1 to {COPIES_MAX}")));
        }
        if self.year.is_some_and(|y| !(1000..=9999).contains(&y)) {
            return Err(PlanError::Invalid("a year has four digits".into()));
        }
        Ok(PlanInput {
            title,
            author,
            isbn,
            year: self.year,
            copies: Some(copies),
            note,
        })
    }

    fn description(&self) -> Description {
        plan::described(
            &self.title,
            self.author.as_deref(),
            self.year,
            self.isbn.as_deref(),
        )
    }
}

/// Why a title is flagged: someone holds it or plans it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    /// `held` (in a catalog) or `planned` (in a plan).
    pub kind: String,
    /// The library (key, hex).
    pub library: String,
    /// Its name and code, as the consortium knows it.
    pub library_name: String,
    /// Whether it is this library.
    pub own: bool,
    /// The title as that library has it.
    pub title: String,
    /// Held: the record's id.
    pub record_id: Option<String>,
    /// Held: the call number.
    pub call_number: Option<String>,
    /// Held: copies (a record listing none counts one). Planned: copies planned.
    pub copies: usize,
    /// Planned: the plan's item.
    pub item: Option<String>,
}

/// A planned title as the pages and the CLI show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanView {
    /// The consortium (hex id).
    pub consortium: String,
    /// The member planning it (key, hex).
    pub library: String,
    /// Its name.
    pub library_name: String,
    /// Whether it is this library's plan.
    pub own: bool,
    /// The member's item id.
    pub item: String,
    /// As planned.
    pub title: String,
    /// As planned.
    pub author: Option<String>,
    /// As planned.
    pub isbn: Option<String>,
    /// As planned.
    pub year: Option<i32>,
    /// As planned.
    pub copies: u32,
    /// As planned.
    pub note: Option<String>,
    /// When planned (ms since 1970).
    pub time_ms: u64,
    /// Bought: the record of the same title now in the planning member's catalog.
    pub bought: Option<String>,
    /// Who else holds or plans it.
    pub flags: Vec<Flag>,
}

/// A request about purchase plans, from the CLI, the API or the pages.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum PlanRequest {
    /// Add a title to this library's plan. With flags and without `confirm`, nothing is
    /// added: the answer carries the flags for the librarian to decide.
    Add {
        /// The title.
        #[serde(flatten)]
        title: PlanInput,
        /// Add even when flagged.
        #[serde(default)]
        confirm: bool,
    },
    /// Who holds or plans a title, adding nothing.
    Check {
        /// The title.
        #[serde(flatten)]
        title: PlanInput,
    },
    /// Every plan standing in the consortia with coordinated acquisition.
    List,
    /// Withdraw one of this library's planned titles.
    Remove {
        /// Its item id.
        item: String,
    },
}

/// The answer to a [`PlanRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanAnswer {
    /// What happened, in a sentence.
    pub message: String,
    /// The items added.
    pub added: Vec<String>,
    /// Who holds or plans the title asked about.
    pub flags: Vec<Flag>,
    /// Flagged and not added: add again with `confirm`.
    pub needs_confirm: bool,
    /// The plans (for `list`).
    pub plans: Vec<PlanView>,
    /// Lines of a file that were not taken, with why.
    pub refused: Vec<Refused>,
}

/// The consortia this library plans in: those whose agreement in force has
/// `coordinated_acquisition`, where it is a member.
fn planning_consortia(library: &Library) -> Result<Vec<Hash32>, LibraryError> {
    let consortia = library.consortia();
    let mut out = Vec::new();
    for summary in consortia.list() {
        if summary.role.is_none() {
            continue;
        }
        if consortia
            .terms_in_force(&summary.id)?
            .is_some_and(|t| t.coordinated_acquisition)
        {
            out.push(summary.id);
        }
    }
    Ok(out)
}

/// The refusal when no agreement in force lets members plan together.
fn no_coordination() -> LibraryError {
    LibraryError::Consortium(ConsortiumError::Refused(Refusal::NoCoordinatedAcquisition))
}

fn item_id(input: &PlanInput, now_ms: u64) -> String {
    use sha2::{Digest, Sha256};
    // Two titles planned in the same millisecond (a list) differ by the count.
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let count = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let digest = Sha256::new()
        .chain_update(count.to_be_bytes())
        .chain_update(input.title.as_bytes())
        .chain_update([0])
        .chain_update(input.author.as_deref().unwrap_or("").as_bytes())
        .chain_update([0])
        .chain_update(input.isbn.as_deref().unwrap_or("").as_bytes())
        .chain_update(now_ms.to_be_bytes())
        .finalize();
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("p-{hex}")
}

/// Who holds `d` in the union catalog: one flag per library holding a record of it.
fn held_by(library: &Library, d: &Description) -> Vec<Flag> {
    let query = match d.isbns.first() {
        Some(isbn) => format!("isbn:{isbn}"),
        None => {
            let words = dedup::title_words(&d.title);
            if words.is_empty() {
                return Vec::new();
            }
            let mut query = format!("title:\"{}\"", words.join(" "));
            if let Some(author) = d.names.first() {
                for word in dedup::author_words(&author.name) {
                    query.push_str(&format!(" author:{word}"));
                }
            }
            query
        }
    };
    let Ok(found) = library.search_in(&query, 1, 20, None) else {
        return Vec::new();
    };
    let mut flags = Vec::new();
    for hit in found.hits {
        let record = Description {
            title: hit.title.clone(),
            names: hit
                .authors
                .iter()
                .enumerate()
                .map(|(n, a)| Name {
                    name: a.clone(),
                    main: n == 0,
                    ..Name::default()
                })
                .collect(),
            year: hit.year.and_then(|y| i32::try_from(y).ok()),
            ..Description::default()
        };
        // Found by its ISBN: the same book whatever the title says; else the title and
        // author must agree, not only share words.
        if d.isbns.is_empty() && !plan::same_title(d, &record) {
            continue;
        }
        for holding in hit.holdings {
            flags.push(Flag {
                kind: "held".into(),
                library_name: holding
                    .library_name
                    .clone()
                    .unwrap_or_else(|| holding.library.chars().take(8).collect()),
                library: holding.library,
                own: holding.own,
                title: hit.title.clone(),
                record_id: Some(holding.record_id),
                call_number: holding.call_number,
                copies: holding.copies.len().max(1),
                item: None,
            });
        }
    }
    flags.sort_by(|a, b| (!a.own, &a.library_name).cmp(&(!b.own, &b.library_name)));
    flags.dedup_by(|a, b| a.library == b.library && a.record_id == b.record_id);
    flags
}

/// Every plan standing where this library plans, with its consortium.
fn standing(library: &Library) -> Result<Vec<(Hash32, PlanItemOf)>, LibraryError> {
    let consortia = library.consortia();
    let mut out = Vec::new();
    for id in planning_consortia(library)? {
        for plan in consortia.standing_plans(&id)? {
            out.push((id, plan));
        }
    }
    Ok(out)
}

/// A standing plan and who made it.
type PlanItemOf = (LibraryId, PlanItem);

/// The plans of `d` by libraries other than this one (or by this one too, `own`), but
/// not item `except` of this library.
fn planned_by(
    library: &Library,
    plans: &[(Hash32, PlanItemOf)],
    d: &Description,
    except: Option<(&LibraryId, &str)>,
) -> Vec<Flag> {
    let names = library.library_names();
    let own = library.id();
    let mut flags: Vec<Flag> = plans
        .iter()
        .filter(|(_, (by, p))| except != Some((by, p.item.as_str())))
        .filter(|(_, (_, p))| plan::same_title(d, &p.description()))
        .map(|(_, (by, p))| Flag {
            kind: "planned".into(),
            library: by.to_hex(),
            library_name: names
                .get(by)
                .cloned()
                .unwrap_or_else(|| by.to_hex().chars().take(8).collect()),
            own: *by == own,
            title: p.title.clone(),
            record_id: None,
            call_number: None,
            copies: p.copies as usize,
            item: Some(p.item.clone()),
        })
        .collect();
    flags.sort_by(|a, b| (&a.library, &a.item).cmp(&(&b.library, &b.item)));
    flags.dedup_by(|a, b| a.library == b.library && a.item == b.item);
    flags
}

/// Who holds or plans a title.
pub fn check(library: &Library, input: &PlanInput) -> Result<Vec<Flag>, LibraryError> {
    let input = input.checked()?;
    let d = input.description();
    let plans = standing(library)?;
    let mut flags = held_by(library, &d);
    flags.extend(planned_by(library, &plans, &d, None));
    Ok(flags)
}

/// Adds a title to this library's plan in every consortium it plans in; refused when
/// none has an agreement in force with `coordinated_acquisition`. Flagged titles are
/// added only with `confirm`. Returns the item and the flags.
pub fn add(
    library: &Library,
    input: &PlanInput,
    confirm: bool,
) -> Result<(Option<String>, Vec<Flag>), LibraryError> {
    let input = input.checked()?;
    let consortia = planning_consortia(library)?;
    if consortia.is_empty() {
        return Err(no_coordination());
    }
    let flags = check(library, &input)?;
    let now = library.now_ms();
    // For the evaluation: a title flagged and not planned is a duplicate avoided, until
    // it is planned after all.
    let title_key =
        jalin_protocol::profile::title_hash(&input.description()).unwrap_or_else(|| {
            let folded = input.title.to_lowercase();
            let digest = <sha2::Sha256 as sha2::Digest>::digest(folded.as_bytes());
            u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
        });
    let noted = |result: Result<(), sled::Error>| {
        if let Err(error) = result {
            tracing::warn!("could not count a plan for the evaluation: {error}");
        }
    };
    if !flags.is_empty() && !confirm {
        noted(library.activity().flagged(title_key, now));
        return Ok((None, flags));
    }
    let item = item_id(&input, now);
    for id in consortia {
        library.consortia().publish_plan(
            &id,
            PlanItem {
                consortium: id,
                item: item.clone(),
                title: input.title.clone(),
                author: input.author.clone(),
                isbn: input.isbn.clone(),
                year: input.year,
                copies: input.copies.unwrap_or(1),
                note: input.note.clone(),
                withdrawn: false,
                time_ms: now,
            },
        )?;
    }
    noted(
        library
            .activity()
            .add(crate::activity::Counted::Planned, 1, now),
    );
    noted(library.activity().planned_anyway(title_key, now));
    Ok((Some(item), flags))
}

/// Withdraws one of this library's planned titles, in every consortium it stands in.
pub fn remove(library: &Library, item: &str) -> Result<(), LibraryError> {
    let own = library.id();
    let now = library.now_ms();
    let mut found = false;
    for (id, (by, plan)) in standing(library)? {
        if by == own && plan.item == item {
            found = true;
            library.consortia().publish_plan(
                &id,
                PlanItem {
                    withdrawn: true,
                    time_ms: now.max(plan.time_ms + 1),
                    ..plan
                },
            )?;
        }
    }
    if found {
        Ok(())
    } else {
        Err(PlanError::NoSuchItem(item.to_string()).into())
    }
}

/// Every plan standing, each with whether its member bought it and who else holds or
/// plans it; this library's first, then by member and time.
pub fn list(library: &Library) -> Result<Vec<PlanView>, LibraryError> {
    let plans = standing(library)?;
    let names = library.library_names();
    let own = library.id();
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for (id, (by, p)) in &plans {
        // One row per member's item, whichever consortia it is planned in.
        if !seen.insert((*by, p.item.clone())) {
            continue;
        }
        let d = p.description();
        let holders = held_by(library, &d);
        // Bought: a record of the planning member changed since it planned the title (the
        // time the record carries is the member's own, the same on every node). A record
        // it held before planning is shown as held, not as the purchase.
        let bought = holders
            .iter()
            .filter(|f| f.library == by.to_hex())
            .filter_map(|f| f.record_id.clone())
            .find(|record| {
                library
                    .store()
                    .get_of(by, record)
                    .ok()
                    .flatten()
                    .is_some_and(|r| !r.deleted && r.updated_ms >= p.time_ms)
            });
        let mut flags: Vec<Flag> = holders
            .into_iter()
            .filter(|f| f.library != by.to_hex() || f.record_id != bought)
            .collect();
        flags.extend(planned_by(library, &plans, &d, Some((by, &p.item))));
        flags.retain(|f| !(f.kind == "planned" && f.library == by.to_hex()));
        out.push(PlanView {
            consortium: id.to_hex(),
            library: by.to_hex(),
            library_name: names
                .get(by)
                .cloned()
                .unwrap_or_else(|| by.to_hex().chars().take(8).collect()),
            own: *by == own,
            item: p.item.clone(),
            title: p.title.clone(),
            author: p.author.clone(),
            isbn: p.isbn.clone(),
            year: p.year,
            copies: p.copies,
            note: p.note.clone(),
            time_ms: p.time_ms,
            bought,
            flags,
        });
    }
    out.sort_by(|a, b| {
        (!a.own, &a.library_name, a.time_ms, &a.item).cmp(&(
            !b.own,
            &b.library_name,
            b.time_ms,
            &b.item,
        ))
    });
    Ok(out)
}

/// A line (or record) of a list not taken: its number and why.
pub type Refused = (usize, String);

/// Reads a list of titles: MARC (ISO 2709 or MARCXML), a SLiMS or generic CSV, or plain
/// lines (an ISBN, or `title / author`). Returns the titles and the lines refused.
pub fn read_list(bytes: &[u8]) -> Result<(Vec<PlanInput>, Vec<Refused>), PlanError> {
    use jalin_protocol::format::{Format, RecordReader};
    if bytes.len() > IMPORT_BYTES_MAX {
        return Err(PlanError::BadFile(format!(
            "the list is {} bytes; at most {IMPORT_BYTES_MAX} are read",
            bytes.len()
        )));
    }
    let mut titles = Vec::new();
    let mut refused = Vec::new();
    let format = Format::sniff(&bytes[..bytes.len().min(4096)]);
    let text = std::str::from_utf8(bytes).ok();
    let first_line = text
        .and_then(|t| t.lines().find(|l| !l.trim().is_empty()))
        .unwrap_or("");
    // Plain lines unless the file is MARC (its records end in 0x1D), MARCXML or a CSV
    // whose header names a title column (a plain line may have commas: `Toer, P.`).
    let csv_header = first_line
        .split(',')
        .any(|f| f.trim().trim_matches('"').eq_ignore_ascii_case("title"));
    let plain = text.is_some()
        && !bytes.contains(&0x1D)
        && !first_line.trim_start().starts_with('<')
        && !csv_header;
    let format = if plain { Format::Csv } else { format };
    if plain {
        let Some(text) = text else {
            return Err(PlanError::BadFile("the list is not UTF-8 text".into()));
        };
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if titles.len() == IMPORT_TITLES_MAX {
                refused.push((n + 1, format!("past {IMPORT_TITLES_MAX} titles")));
                break;
            }
            let digits = line.chars().filter(char::is_ascii_digit).count();
            let input = if digits >= 10
                && line
                    .chars()
                    .all(|c| c.is_ascii_digit() || "-xX ".contains(c))
            {
                PlanInput {
                    isbn: Some(line.to_string()),
                    title: String::new(),
                    ..PlanInput::default()
                }
            } else {
                let (title, author) = match line.split_once(" / ") {
                    Some((t, a)) => (t.trim(), Some(a.trim().to_string())),
                    None => (line, None),
                };
                PlanInput {
                    title: title.to_string(),
                    author,
                    ..PlanInput::default()
                }
            };
            titles.push((n + 1, input));
        }
    } else {
        let reader = RecordReader::new(std::io::Cursor::new(bytes), format, None);
        for item in reader {
            if titles.len() == IMPORT_TITLES_MAX {
                refused.push((0, format!("past {IMPORT_TITLES_MAX} titles")));
                break;
            }
            match item {
                Ok(parsed) => {
                    let d = &parsed.record.description;
                    let title = match &d.subtitle {
                        Some(sub) => format!("{} : {sub}", d.title),
                        None => d.title.clone(),
                    };
                    titles.push((
                        parsed.location.number as usize,
                        PlanInput {
                            // A catalogue's title with every part can be long: the plan
                            // keeps its start.
                            title: shortened(&title),
                            author: d.names.first().map(|n| shortened(&n.name)),
                            isbn: d.isbns.first().cloned(),
                            year: d.year,
                            ..PlanInput::default()
                        },
                    ));
                }
                Err(error) => {
                    refused.push((error.location.number as usize, error.to_string()));
                    if refused.len() >= REFUSED_MAX {
                        refused.push((0, format!("past {REFUSED_MAX} refused records: stopped")));
                        break;
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    for (n, input) in titles {
        // A bare ISBN stands for its title: named by the ISBN until the record comes.
        let input = if input.title.trim().is_empty() {
            match &input.isbn {
                Some(isbn) => PlanInput {
                    title: format!("ISBN {isbn}"),
                    ..input
                },
                None => {
                    refused.push((n, "no title and no ISBN".into()));
                    continue;
                }
            }
        } else {
            input
        };
        match input.checked() {
            Ok(input) => out.push(input),
            Err(error) => refused.push((n, error.to_string())),
        }
    }
    Ok((out, refused))
}

/// Adds every title of a list (see [`read_list`]), flagged ones too (the list shows
/// them): returns the answer with the items added and the lines refused.
pub fn import(library: &Library, bytes: &[u8]) -> Result<PlanAnswer, LibraryError> {
    let (titles, refused) = read_list(bytes)?;
    if planning_consortia(library)?.is_empty() {
        return Err(no_coordination());
    }
    let mut answer = PlanAnswer {
        refused,
        ..PlanAnswer::default()
    };
    let mut flagged = 0;
    for title in titles {
        // A title a partner's node would refuse is reported; the others go on.
        match add(library, &title, true) {
            Ok((item, flags)) => {
                if !flags.is_empty() {
                    flagged += 1;
                }
                answer.added.extend(item);
            }
            Err(error) if answer.refused.len() < REFUSED_MAX => {
                answer
                    .refused
                    .push((0, format!("{}: {error}", title.title)));
            }
            Err(error) => return Err(error),
        }
    }
    answer.message = format!(
        "{} titles added to the plan ({flagged} held or planned by a library), {} lines refused",
        answer.added.len(),
        answer.refused.len()
    );
    Ok(answer)
}

/// Runs a plan request (blocking: the store and the index).
pub fn execute(library: &Library, request: PlanRequest) -> Result<PlanAnswer, LibraryError> {
    match request {
        PlanRequest::Add { title, confirm } => {
            let (item, flags) = add(library, &title, confirm)?;
            Ok(PlanAnswer {
                message: match &item {
                    Some(item) => format!("{item} added to the plan"),
                    None => format!(
                        "not added: {} libraries hold or plan this title; add again with confirm",
                        flags.len()
                    ),
                },
                needs_confirm: item.is_none(),
                added: item.into_iter().collect(),
                flags,
                ..PlanAnswer::default()
            })
        }
        PlanRequest::Check { title } => {
            let flags = check(library, &title)?;
            Ok(PlanAnswer {
                message: format!("{} libraries hold or plan this title", flags.len()),
                flags,
                ..PlanAnswer::default()
            })
        }
        PlanRequest::List => {
            let plans = list(library)?;
            Ok(PlanAnswer {
                message: format!("{} planned titles", plans.len()),
                plans,
                ..PlanAnswer::default()
            })
        }
        PlanRequest::Remove { item } => {
            remove(library, &item)?;
            Ok(PlanAnswer {
                message: format!("{item} withdrawn from the plan"),
                ..PlanAnswer::default()
            })
        }
    }
}
