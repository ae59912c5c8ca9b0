//! What patrons look for, kept at home.
//!
//! Each search of this node's own OPAC is logged: the query (folded to lower case, its
//! spaces collapsed), how many books it found, and when. No patron, no address, no
//! cookie: nothing that tells who asked. When a search finds nothing the page offers a
//! "Usulkan buku" form (title, author, why), kept here too. The librarian reads the top
//! searches, the searches that found nothing and the suggestions (`jalin needs report`,
//! the needs page); entries older than `[needs] keep_months` go, and `forget` deletes
//! those before a date. Nothing in this tree is replicated or sent anywhere.
//!
//! Sled tree `needs`: `q` + time (ms, big-endian) + sequence -> a search (JSON);
//! `s` + time + sequence -> a suggestion (JSON).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Characters of a query kept, at most.
pub const QUERY_MAX: usize = 200;
/// Characters of a suggestion's title, author and reason, at most.
pub const TITLE_MAX: usize = 300;
/// The same for the author.
pub const AUTHOR_MAX: usize = 200;
/// The same for why.
pub const WHY_MAX: usize = 1_000;
/// Searches logged in one day, at most: a flood of searches cannot fill the disk.
pub const SEARCHES_PER_DAY_MAX: usize = 50_000;
/// Suggestions taken in one day, at most.
pub const SUGGESTIONS_PER_DAY_MAX: usize = 500;
/// Queries listed in a report's tables, at most.
pub const REPORT_ROWS_MAX: usize = 50;
/// Distinct queries a report tallies, at most (the rest are counted, not told apart): a
/// year of a bot's distinct queries does not fill the memory.
pub const QUERIES_TALLIED_MAX: usize = 20_000;
/// Suggestions a report lists, at most (the newest; the total is given).
pub const SUGGESTIONS_LISTED_MAX: usize = 200;

const DAY_MS: u64 = 86_400_000;
/// A month, for the retention: 30 days.
pub const MONTH_MS: u64 = 30 * DAY_MS;

/// One search of the OPAC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Search {
    /// The query, folded.
    pub query: String,
    /// Books found.
    pub hits: u64,
    /// The visit it came from, as a short hash of the search page's visit token (no
    /// cookie, nothing about who): only to count distinct visits before a query may be
    /// shared. None for a search from no page of this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

/// The hash kept of a search page's visit token: 8 bytes of SHA-256, hex.
pub fn session_of(token: &str) -> Option<String> {
    use sha2::{Digest, Sha256};
    let token = token.trim();
    if token.is_empty() || token.len() > 64 {
        return None;
    }
    let digest = Sha256::digest(token.as_bytes());
    Some(digest[..8].iter().map(|b| format!("{b:02x}")).collect())
}

/// A patron's suggestion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suggestion {
    /// When (ms since 1970).
    #[serde(default)]
    pub at_ms: u64,
    /// The title asked for.
    pub title: String,
    /// Its author, if given.
    pub author: String,
    /// Why, if given.
    pub why: String,
    /// The search that found nothing, if any.
    pub query: String,
}

/// Why a suggestion is not taken.
#[derive(Debug, thiserror::Error)]
pub enum NeedsError {
    /// No title.
    #[error("a suggestion needs a title")]
    NoTitle,
    /// Too many today.
    #[error("{0} suggestions today already: at most {SUGGESTIONS_PER_DAY_MAX} a day")]
    TooManyToday(usize),
    /// Storage failed.
    #[error("storage: {0}")]
    Storage(#[from] sled::Error),
    /// A stored entry does not read back.
    #[error("a stored entry is damaged: {0}")]
    Damaged(String),
    /// Not a day.
    #[error("{0:?} is not a date: write YYYY-MM-DD")]
    BadDate(String),
}

impl NeedsError {
    /// A stable name for the kind of failure.
    pub fn code(&self) -> &'static str {
        match self {
            NeedsError::NoTitle => "needs_no_title",
            NeedsError::TooManyToday(_) => "needs_too_many_today",
            NeedsError::BadDate(_) => "bad_date",
            NeedsError::Storage(_) | NeedsError::Damaged(_) => "storage",
        }
    }
}

/// A query and how often it was asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asked {
    /// The query.
    pub query: String,
    /// Times asked.
    pub count: u64,
    /// Books the last of them found.
    pub hits: u64,
}

/// What the patrons asked for, over a period.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeedsReport {
    /// The period's start (ms since 1970; 0: everything kept).
    pub since_ms: u64,
    /// Searches logged.
    pub searches: u64,
    /// Searches that found nothing.
    pub searches_empty: u64,
    /// The queries asked most, most first (at most [`REPORT_ROWS_MAX`]).
    pub top: Vec<Asked>,
    /// The queries that found nothing, most asked first (at most [`REPORT_ROWS_MAX`]).
    pub empty: Vec<Asked>,
    /// The suggestions, newest first (at most [`SUGGESTIONS_LISTED_MAX`]).
    pub suggestions: Vec<Suggestion>,
    /// Suggestions in the period, all of them.
    #[serde(default)]
    pub suggestions_total: u64,
    /// Searches of queries past the [`QUERIES_TALLIED_MAX`] told apart.
    #[serde(default)]
    pub searches_untallied: u64,
}

/// The needs log.
pub struct Needs {
    tree: crate::durable::Tree,
    seq: AtomicU64,
}

/// A query as it is logged: lower case, spaces collapsed, at most [`QUERY_MAX`]
/// characters, control characters out.
pub fn fold_query(query: &str) -> String {
    query
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
        .chars()
        .take(QUERY_MAX)
        .collect()
}

fn bounded(text: &str, max: usize) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .chars()
        .take(max)
        .collect()
}

fn key(prefix: u8, at_ms: u64, seq: u64) -> [u8; 17] {
    let mut out = [0; 17];
    out[0] = prefix;
    out[1..9].copy_from_slice(&at_ms.to_be_bytes());
    out[9..].copy_from_slice(&seq.to_be_bytes());
    out
}

fn at_of(key: &[u8]) -> u64 {
    key.get(1..9)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_be_bytes)
}

impl Needs {
    /// The log in `db`.
    pub fn open(db: &crate::durable::Db) -> Result<Needs, sled::Error> {
        let tree = db.open_tree("needs")?;
        // Sequence numbers go on from the largest kept, so keys never repeat.
        let last = [b'q', b's']
            .iter()
            .filter_map(|p| tree.scan_prefix([*p]).next_back())
            .filter_map(Result::ok)
            .filter_map(|(k, _)| k.get(9..17).and_then(|b| <[u8; 8]>::try_from(b).ok()))
            .map(u64::from_be_bytes)
            .max()
            .map_or(0, |n| n + 1);
        Ok(Needs {
            tree,
            seq: AtomicU64::new(last),
        })
    }

    fn count_since(&self, prefix: u8, since_ms: u64) -> usize {
        self.tree
            .range(key(prefix, since_ms, 0)..key(prefix, u64::MAX, u64::MAX))
            .count()
    }

    /// Logs a search of the OPAC (an empty query is not a search). Returns whether it
    /// was logged (not past the day's limit).
    pub fn log_search(
        &self,
        query: &str,
        hits: u64,
        session: Option<&str>,
        now_ms: u64,
    ) -> Result<bool, NeedsError> {
        let query = fold_query(query);
        if query.is_empty() {
            return Ok(false);
        }
        // The day's count, one key per day (`c` + day): no scan per search.
        let mut counter = vec![b'c'];
        counter.extend_from_slice(&(now_ms / DAY_MS).to_be_bytes());
        let today = self.tree.update_and_fetch(&counter, |old| {
            let n = old
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_be_bytes);
            Some(n.saturating_add(1).to_be_bytes().to_vec())
        })?;
        let today = today
            .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map_or(0, u64::from_be_bytes);
        if today > SEARCHES_PER_DAY_MAX as u64 {
            return Ok(false);
        }
        let json = serde_json::to_vec(&Search {
            query,
            hits,
            session: session.and_then(session_of),
        })
        .map_err(|e| NeedsError::Damaged(e.to_string()))?;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        self.tree.insert(key(b'q', now_ms, seq), json)?;
        Ok(true)
    }

    /// Takes a patron's suggestion.
    pub fn suggest(&self, suggestion: Suggestion, now_ms: u64) -> Result<Suggestion, NeedsError> {
        let suggestion = Suggestion {
            at_ms: now_ms,
            title: bounded(&suggestion.title, TITLE_MAX),
            author: bounded(&suggestion.author, AUTHOR_MAX),
            why: bounded(&suggestion.why, WHY_MAX),
            query: fold_query(&suggestion.query),
        };
        if suggestion.title.is_empty() {
            return Err(NeedsError::NoTitle);
        }
        let today = self.count_since(b's', now_ms.saturating_sub(DAY_MS));
        if today >= SUGGESTIONS_PER_DAY_MAX {
            return Err(NeedsError::TooManyToday(today));
        }
        let json =
            serde_json::to_vec(&suggestion).map_err(|e| NeedsError::Damaged(e.to_string()))?;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        self.tree.insert(key(b's', now_ms, seq), json)?;
        self.tree.flush()?;
        Ok(suggestion)
    }

    /// Deletes every search and suggestion from before `before_ms`. Returns how many.
    pub fn forget(&self, before_ms: u64) -> Result<usize, NeedsError> {
        let mut gone = 0;
        // The days' counters go with them (they tell nothing but a number).
        let mut day_from = vec![b'c'];
        day_from.extend_from_slice(&0u64.to_be_bytes());
        let mut day_to = vec![b'c'];
        day_to.extend_from_slice(&(before_ms / DAY_MS).to_be_bytes());
        for k in self.tree.range(day_from..day_to).keys() {
            self.tree.remove(k?)?;
        }
        for prefix in [b'q', b's'] {
            let keys: Vec<sled::IVec> = self
                .tree
                .range(key(prefix, 0, 0)..key(prefix, before_ms, 0))
                .keys()
                .collect::<Result<_, _>>()?;
            let mut batch = sled::Batch::default();
            for k in &keys {
                batch.remove(k);
            }
            self.tree.apply_batch(batch)?;
            gone += keys.len();
        }
        self.tree.flush()?;
        Ok(gone)
    }

    /// Deletes what is older than `keep_months` months (of 30 days) at `now_ms`.
    pub fn expire(&self, keep_months: u32, now_ms: u64) -> Result<usize, NeedsError> {
        self.forget(now_ms.saturating_sub(u64::from(keep_months) * MONTH_MS))
    }

    /// The entries kept, oldest first (searches with their time): what a test or an
    /// audit reads.
    pub fn searches(&self) -> Result<Vec<(u64, Search)>, NeedsError> {
        self.tree
            .scan_prefix([b'q'])
            .map(|item| {
                let (k, v) = item?;
                let search: Search =
                    serde_json::from_slice(&v).map_err(|e| NeedsError::Damaged(e.to_string()))?;
                Ok((at_of(&k), search))
            })
            .collect()
    }

    /// The queries asked since `since_ms` by at least
    /// [`jalin_protocol::consortium::needs::SESSIONS_MIN`] distinct visits: what may leave
    /// the node, most visits first (at most `QUERIES_MAX`), each with the hits of its last
    /// asking.
    pub fn shareable(
        &self,
        since_ms: u64,
    ) -> Result<Vec<jalin_protocol::consortium::needs::SharedQuery>, NeedsError> {
        use jalin_protocol::consortium::needs::{SharedQuery, QUERIES_MAX, SESSIONS_MIN};
        let mut asked: BTreeMap<String, (std::collections::BTreeSet<String>, u64)> =
            BTreeMap::new();
        for item in self
            .tree
            .range(key(b'q', since_ms, 0)..key(b'q', u64::MAX, u64::MAX))
        {
            let (_, v) = item?;
            let search: Search =
                serde_json::from_slice(&v).map_err(|e| NeedsError::Damaged(e.to_string()))?;
            let Some(session) = search.session else {
                continue;
            };
            if asked.len() >= QUERIES_TALLIED_MAX && !asked.contains_key(&search.query) {
                continue;
            }
            let entry = asked.entry(search.query).or_default();
            // Visits counted to a hundred times the bar at most: memory stays bounded,
            // and past that the order among queries hardly moves.
            if entry.0.len() < SESSIONS_MIN as usize * 100 {
                entry.0.insert(session);
            }
            entry.1 = search.hits;
        }
        let mut out: Vec<SharedQuery> = asked
            .into_iter()
            .filter(|(_, (sessions, _))| sessions.len() >= SESSIONS_MIN as usize)
            // What a summary cannot carry (a query longer than its bytes) stays home rather
            // than stopping the whole summary.
            .filter(|(query, _)| {
                query.len() <= jalin_protocol::consortium::needs::QUERY_MAX
                    && !query.chars().any(char::is_control)
            })
            .map(|(query, (sessions, hits))| SharedQuery {
                query,
                sessions: sessions.len() as u32,
                hits,
            })
            .collect();
        out.sort_by(|a, b| {
            b.sessions
                .cmp(&a.sessions)
                .then_with(|| a.query.cmp(&b.query))
        });
        out.truncate(QUERIES_MAX);
        Ok(out)
    }

    /// The report of what was asked since `since_ms`.
    pub fn report(&self, since_ms: u64) -> Result<NeedsReport, NeedsError> {
        let mut report = NeedsReport {
            since_ms,
            ..NeedsReport::default()
        };
        // Per query: times asked, the hits of the last asking.
        let mut asked: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for item in self
            .tree
            .range(key(b'q', since_ms, 0)..key(b'q', u64::MAX, u64::MAX))
        {
            let (_, v) = item?;
            let search: Search =
                serde_json::from_slice(&v).map_err(|e| NeedsError::Damaged(e.to_string()))?;
            report.searches += 1;
            if search.hits == 0 {
                report.searches_empty += 1;
            }
            if asked.len() >= QUERIES_TALLIED_MAX && !asked.contains_key(&search.query) {
                report.searches_untallied += 1;
                continue;
            }
            let entry = asked.entry(search.query).or_insert((0, 0));
            entry.0 += 1;
            entry.1 = search.hits;
        }
        let mut rows: Vec<Asked> = asked
            .into_iter()
            .map(|(query, (count, hits))| Asked { query, count, hits })
            .collect();
        // Most asked first; ties by the query, so the order is the same every time.
        rows.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.query.cmp(&b.query)));
        report.empty = rows
            .iter()
            .filter(|r| r.hits == 0)
            .take(REPORT_ROWS_MAX)
            .cloned()
            .collect();
        rows.truncate(REPORT_ROWS_MAX);
        report.top = rows;
        for item in self
            .tree
            .range(key(b's', since_ms, 0)..key(b's', u64::MAX, u64::MAX))
            .rev()
        {
            let (_, v) = item?;
            report.suggestions_total += 1;
            if report.suggestions.len() < SUGGESTIONS_LISTED_MAX {
                report.suggestions.push(
                    serde_json::from_slice(&v).map_err(|e| NeedsError::Damaged(e.to_string()))?,
                );
            }
        }
        Ok(report)
    }
}

/// Who holds what a query or a suggestion asks for, in the union catalog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// `here` (this library has it), `partner` (only other members: an interlibrary
    /// loan is the answer) or `none` (no one: a purchase candidate).
    pub by: String,
    /// The partners holding it (their names, or key starts), when `partner`.
    pub partners: Vec<String>,
    /// The first book found: its title.
    pub title: Option<String>,
}

/// A request about the needs log, from the CLI, the API or the pages.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum NeedsRequest {
    /// What was asked since a day (`YYYY-MM-DD`; none: all kept), each query and
    /// suggestion matched against the union catalog.
    Report {
        /// The first day.
        #[serde(default)]
        since: Option<String>,
    },
    /// Share the queries of three visits or more now, where the agreement says so.
    Share,
    /// Delete every search and suggestion from before a day.
    Forget {
        /// `YYYY-MM-DD`.
        before: String,
    },
}

/// What a needs request answers.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NeedsAnswer {
    /// For people.
    pub message: String,
    /// The report, with what the union holds for each query (by the query) and each
    /// suggestion (by its title and author).
    pub report: Option<NeedsReport>,
    /// Query or suggestion -> who holds it.
    #[serde(default)]
    pub held: BTreeMap<String, Held>,
    /// What partners' patrons look for, as the partners shared it (queries of three
    /// visits or more), most visits first.
    #[serde(default)]
    pub partners: Vec<PartnerNeed>,
}

/// A query a partner shared, with who holds it in this node's union catalog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerNeed {
    /// The partner (key, hex).
    pub library: String,
    /// Its name.
    pub library_name: String,
    /// The query.
    pub query: String,
    /// Visits that asked it there.
    pub sessions: u32,
    /// Books the partner's search found.
    pub hits: u64,
}

/// What partners shared of their patrons' searches, over the consortia held.
fn partners_needs(
    library: &crate::library::Library,
) -> Result<Vec<PartnerNeed>, crate::library::LibraryError> {
    let consortia = library.consortia();
    let names = library.library_names();
    let own = library.id();
    let mut newest: BTreeMap<
        jalin_protocol::signing::LibraryId,
        jalin_protocol::consortium::needs::NeedsSummary,
    > = BTreeMap::new();
    for summary in consortia.list() {
        for (member, shared) in consortia.shared_needs(&summary.id)? {
            if member == own {
                continue;
            }
            if newest
                .get(&member)
                .is_none_or(|n| n.time_ms < shared.time_ms)
            {
                newest.insert(member, shared);
            }
        }
    }
    let mut out: Vec<PartnerNeed> = newest
        .into_iter()
        .flat_map(|(member, shared)| {
            let name = names
                .get(&member)
                .cloned()
                .unwrap_or_else(|| member.to_hex().chars().take(8).collect());
            shared.queries.into_iter().map(move |q| PartnerNeed {
                library: member.to_hex(),
                library_name: name.clone(),
                query: q.query,
                sessions: q.sessions,
                hits: q.hits,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.sessions
            .cmp(&a.sessions)
            .then_with(|| a.query.cmp(&b.query))
    });
    out.truncate(REPORT_ROWS_MAX * 4);
    Ok(out)
}

/// The text searched for a suggestion: its title and author.
pub fn suggestion_query(s: &Suggestion) -> String {
    format!("{} {}", s.title, s.author).trim().to_string()
}

fn held(library: &crate::library::Library, query: &str) -> Held {
    let names = library.library_names();
    let found = library.search_in(query, 1, 5, None).ok();
    let hits = found.map(|r| r.hits).unwrap_or_default();
    let here = hits
        .iter()
        .any(|h| h.holdings.iter().any(|holding| holding.own));
    let mut partners: Vec<String> = hits
        .iter()
        .flat_map(|h| h.holdings.iter())
        .filter(|holding| !holding.own)
        .map(|holding| {
            holding.library_name.clone().unwrap_or_else(|| {
                jalin_protocol::signing::LibraryId::from_hex(&holding.library)
                    .ok()
                    .and_then(|id| names.get(&id).cloned())
                    .unwrap_or_else(|| holding.library.chars().take(8).collect())
            })
        })
        .collect();
    partners.sort();
    partners.dedup();
    Held {
        by: if here {
            "here"
        } else if partners.is_empty() {
            "none"
        } else {
            "partner"
        }
        .into(),
        partners,
        title: hits.first().map(|h| h.title.clone()),
    }
}

/// How far back a shared summary looks.
pub const SHARED_PERIOD_MS: u64 = 30 * DAY_MS;

/// Shares this library's summary (the queries of three visits or more over the last
/// [`SHARED_PERIOD_MS`]) with each consortium whose agreement in force has
/// `share_needs`, where it last shared a day ago or more (or `now`: regardless). Returns
/// in how many consortia it shared.
pub fn share(
    library: &crate::library::Library,
    now: bool,
) -> Result<usize, crate::library::LibraryError> {
    let consortia = library.consortia();
    let at = library.now_ms();
    let mut due = Vec::new();
    for summary in consortia.list() {
        if summary.role.is_none() || !consortia.shares_needs(&summary.id)? {
            continue;
        }
        let last = consortia.needs_shared_ms(&summary.id)?;
        if now || last.is_none_or(|t| at.saturating_sub(t) >= DAY_MS) {
            due.push(summary.id);
        }
    }
    if due.is_empty() {
        return Ok(0);
    }
    let from = at.saturating_sub(SHARED_PERIOD_MS);
    let queries = library.needs().shareable(from)?;
    let survey = library.surveys().shareable()?;
    for id in &due {
        consortia.publish_needs(id, queries.clone(), survey.clone(), from, at)?;
    }
    Ok(due.len())
}

/// Runs a needs request (blocking: the store and the index).
pub fn execute(
    library: &crate::library::Library,
    request: NeedsRequest,
) -> Result<NeedsAnswer, crate::library::LibraryError> {
    let day = |text: &str| {
        jalin_protocol::ill::Day::parse(text).ok_or_else(|| NeedsError::BadDate(text.into()))
    };
    let needs = library.needs();
    let now = library.now_ms();
    needs.expire(library.data().config.needs.keep_months, now)?;
    match request {
        NeedsRequest::Report { since } => {
            let since_ms = match since.as_deref().map(str::trim) {
                None | Some("") => 0,
                Some(text) => day(text)?.start_ms(),
            };
            let report = needs.report(since_ms)?;
            let mut asked: Vec<String> = report
                .top
                .iter()
                .chain(&report.empty)
                .map(|a| a.query.clone())
                .collect();
            asked.extend(
                report
                    .suggestions
                    .iter()
                    .take(REPORT_ROWS_MAX)
                    .map(suggestion_query),
            );
            let partners = partners_needs(library)?;
            asked.extend(partners.iter().map(|p| p.query.clone()));
            asked.sort();
            asked.dedup();
            let held = asked
                .into_iter()
                .map(|q| {
                    let h = held(library, &q);
                    (q, h)
                })
                .collect();
            Ok(NeedsAnswer {
                message: format!(
                    "{} searches ({} found nothing), {} suggestions",
                    report.searches, report.searches_empty, report.suggestions_total
                ),
                report: Some(report),
                held,
                partners,
            })
        }
        NeedsRequest::Share => {
            let shared = share(library, true)?;
            let queries = needs.shareable(now.saturating_sub(SHARED_PERIOD_MS))?.len();
            Ok(NeedsAnswer {
                message: if shared == 0 {
                    "no agreement in force shares patrons' needs (share_needs = false): nothing shared".into()
                } else {
                    format!("{queries} queries asked by 3 visits or more shared with {shared} partnerships")
                },
                ..NeedsAnswer::default()
            })
        }
        NeedsRequest::Forget { before } => {
            let gone = needs.forget(day(&before)?.start_ms())?;
            Ok(NeedsAnswer {
                message: format!("{gone} searches and suggestions from before {before} deleted"),
                ..NeedsAnswer::default()
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_folded_and_bounded() {
        assert_eq!(
            fold_query("  Sejarah\tINDONESIA \u{0}  "),
            "sejarah indonesia"
        );
        assert_eq!(fold_query(&"a".repeat(500)).len(), QUERY_MAX);
        assert_eq!(fold_query(" \n "), "");
    }

    #[test]
    fn the_log_reports_forgets_and_expires() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = crate::durable::Db::new(sled::open(dir.path()).expect("opens"), dir.path())
            .expect("opens");
        let needs = Needs::open(&db).expect("opens");
        let t = 1_800_000_000_000;
        needs.log_search("Bertani Padi", 0, None, t).expect("logs");
        needs
            .log_search("bertani  padi", 0, None, t + 1)
            .expect("logs");
        needs
            .log_search("laskar pelangi", 3, None, t + 2)
            .expect("logs");
        assert!(!needs.log_search("   ", 0, None, t + 3).expect("not logged"));
        let report = needs.report(0).expect("reports");
        assert_eq!((report.searches, report.searches_empty), (3, 2));
        assert_eq!(
            report.top[0],
            Asked {
                query: "bertani padi".into(),
                count: 2,
                hits: 0
            }
        );
        assert_eq!(report.empty.len(), 1);
        // Reopened: the sequence goes on, nothing is overwritten.
        drop(needs);
        let needs = Needs::open(&db).expect("reopens");
        needs
            .log_search("bertani padi", 0, None, t + 2)
            .expect("logs");
        assert_eq!(needs.searches().expect("reads").len(), 4);
        // Forget before t+2: the first two go.
        assert_eq!(needs.forget(t + 2).expect("forgets"), 2);
        assert_eq!(needs.report(0).expect("reports").searches, 2);
        // Twelve months later everything kept has expired.
        assert_eq!(
            needs
                .expire(12, t + 2 + 12 * MONTH_MS + 1)
                .expect("expires"),
            2
        );
        assert!(needs.searches().expect("reads").is_empty());
        assert!(matches!(
            needs.suggest(
                Suggestion {
                    at_ms: 0,
                    title: " ".into(),
                    author: String::new(),
                    why: String::new(),
                    query: String::new()
                },
                t
            ),
            Err(NeedsError::NoTitle)
        ));
    }
}
