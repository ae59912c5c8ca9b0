//! `jalin import --oai-pmh URL`: harvests a library's records from its own system's
//! OAI-PMH feed (SLiMS `oai2.php`, Koha, DSpace, another Jalin node) and keeps them
//! current.
//!
//! - MARCXML when the provider offers it (by its namespace, whatever its prefix), else
//!   `oai_dc`. The OAI identifier becomes the record's id (deletions name it); the source
//!   system's own number is kept in 035.
//! - Incremental: each harvest that completes notes the provider's `responseDate` of its
//!   first page (in `harvest/` in the data dir); the next asks `from` it, at the
//!   provider's granularity. `--from` overrides.
//! - Each page is stored before the next is asked for. A page that fails to arrive or to
//!   read is asked again (three times, waiting longer each time, or as a 503's Retry-After
//!   says); a harvest that still fails keeps what it took and leaves the date, so the next
//!   run asks again from the same point.
//! - A resumption token the provider refuses (expired, or lost in a restart) starts the
//!   list again with the harvest's own arguments; records already taken in this harvest,
//!   with the same datestamp, are skipped, not imported again.

use crate::backend::Backend;
use anyhow::{bail, Context};
use jalin_protocol::marc::marcxml;
use jalin_protocol::oai::{parse_page, Page};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What to harvest.
pub struct Options {
    /// The provider's base URL.
    pub url: String,
    /// A set, if only one.
    pub set: Option<String>,
    /// Harvest from this date, whatever the last harvest noted.
    pub from: Option<String>,
}

/// What a harvest did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    /// Pages read.
    pub pages: u64,
    /// Records read (live ones).
    pub read: u64,
    /// New records.
    pub added: u64,
    /// Changed records.
    pub updated: u64,
    /// Records already held exactly so.
    pub unchanged: u64,
    /// Records marked deleted.
    pub deleted: u64,
    /// Records skipped after a refused token (taken earlier in this harvest).
    pub skipped: u64,
    /// Times a refused resumption token was recovered from.
    pub restarts: u64,
    /// Records not taken, with why.
    pub rejected: Vec<String>,
    /// The `from` this harvest asked for.
    pub from: Option<String>,
    /// The date the next harvest asks from.
    pub next_from: Option<String>,
}

/// What the last completed harvest of a feed noted.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct State {
    url: String,
    set: Option<String>,
    /// The provider's responseDate when the last completed harvest began.
    last_response_date: Option<String>,
}

fn state_path(data_dir: &Path, url: &str, set: Option<&str>) -> PathBuf {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{url}\n{}", set.unwrap_or("")).as_bytes());
    let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    data_dir.join("harvest").join(format!("{name}.json"))
}

/// Pages are asked for through this: the arguments of one request, its body back.
pub type Fetch<'a> = dyn FnMut(&[(&str, String)]) -> anyhow::Result<String> + 'a;

/// Asks for a page and reads it, again on failure (three tries in all).
fn page(fetch: &mut Fetch, args: &[(&str, String)]) -> anyhow::Result<Page> {
    let mut last = None;
    for attempt in 0..3u32 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(500 * 2u64.pow(attempt)));
        }
        match fetch(args).and_then(|body| parse_page(&body).map_err(anyhow::Error::from)) {
            Ok(page) => return Ok(page),
            Err(e) => {
                tracing::warn!(
                    request = ?args,
                    attempt = attempt + 1,
                    error = %crate::describe(&e),
                    "OAI-PMH request failed"
                );
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no answer")))
}

/// The texts of every element named `name` (local name) in a response.
fn texts(xml: &str, name: &str) -> Vec<String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = Vec::new();
    let mut inside = false;
    let mut text = String::new();
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Start(e)) => {
                inside = e.local_name().as_ref() == name.as_bytes();
                text.clear();
            }
            Ok(quick_xml::events::Event::Text(t)) if inside => {
                text.push_str(&t.unescape().unwrap_or_default());
            }
            Ok(quick_xml::events::Event::End(_)) => {
                if inside {
                    out.push(text.trim().to_string());
                }
                inside = false;
            }
            Ok(quick_xml::events::Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    out
}

/// Pages in a row holding only records already taken in this harvest before it is taken
/// for a loop (a provider restarting a list resends at most a page or two).
const PAGES_WITH_NOTHING_NEW_MAX: usize = 5;

/// Harvests once. `fetch` asks the provider; `backend` takes the records.
pub fn harvest_once(
    fetch: &mut Fetch,
    backend: &Backend,
    data_dir: &Path,
    options: &Options,
) -> anyhow::Result<Report> {
    let identify = fetch(&[("verb", "Identify".to_string())]).context("asking Identify")?;
    if texts(&identify, "protocolVersion")
        .first()
        .map(String::as_str)
        != Some("2.0")
    {
        bail!(
            "{} does not answer Identify as an OAI-PMH 2.0 repository",
            options.url
        );
    }
    let by_day = texts(&identify, "granularity")
        .first()
        .is_none_or(|g| g == "YYYY-MM-DD");
    let formats = fetch(&[("verb", "ListMetadataFormats".to_string())])
        .context("asking ListMetadataFormats")?;
    let prefixes = texts(&formats, "metadataPrefix");
    let namespaces = texts(&formats, "metadataNamespace");
    let prefix = prefixes
        .iter()
        .zip(&namespaces)
        .find(|(_, ns)| ns.as_str() == "http://www.loc.gov/MARC21/slim")
        .map(|(p, _)| p.clone())
        .or_else(|| prefixes.iter().find(|p| *p == "oai_dc").cloned())
        .with_context(|| {
            format!(
                "{} offers neither MARCXML nor oai_dc (it offers: {})",
                options.url,
                prefixes.join(", ")
            )
        })?;

    let path = state_path(data_dir, &options.url, options.set.as_deref());
    let mut state: State = std::fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let from = options
        .from
        .clone()
        .or(state.last_response_date.clone())
        .map(|d| {
            if by_day {
                d.chars().take(10).collect()
            } else {
                d
            }
        });
    let mut first: Vec<(&str, String)> = vec![
        ("verb", "ListRecords".to_string()),
        ("metadataPrefix", prefix.clone()),
    ];
    if let Some(set) = &options.set {
        first.push(("set", set.clone()));
    }
    if let Some(from) = &from {
        first.push(("from", from.clone()));
    }

    let mut report = Report {
        from: from.clone(),
        ..Default::default()
    };
    let mut taken: HashSet<(String, String)> = HashSet::new();
    // A feed that hands back a token it gave before, or page after page of records
    // already taken, would be harvested forever.
    let mut tokens_given: HashSet<String> = HashSet::new();
    let mut pages_with_nothing_new = 0usize;
    let mut args = first.clone();
    let mut response_date = None;
    loop {
        let page = page(fetch, &args).with_context(|| {
            format!(
                "the harvest stopped at page {}; the records of earlier pages are kept, and the \
                 next harvest asks again from {}",
                report.pages + 1,
                from.as_deref().unwrap_or("the beginning")
            )
        })?;
        report.pages += 1;
        if response_date.is_none() {
            response_date = page.response_date.clone();
        }
        if let Some((code, message)) = &page.error {
            match code.as_str() {
                "noRecordsMatch" => break,
                "badResumptionToken" if report.restarts < 3 && args != first => {
                    tracing::warn!("the provider refused its resumption token ({message}); starting the list again");
                    report.restarts += 1;
                    args = first.clone();
                    tokens_given.clear();
                    continue;
                }
                _ => bail!(
                    "{} answered {code}: {message} (page {}; records of earlier pages are kept)",
                    options.url,
                    report.pages
                ),
            }
        }
        let mut xml = String::from(marcxml::collection_start());
        let mut records = 0;
        let mut deletions = Vec::new();
        let skipped_before = report.skipped;
        let items = page.items.len() as u64;
        for item in page.items {
            let item = match item {
                Ok(item) => item,
                Err(reason) => {
                    report
                        .rejected
                        .push(format!("page {}: {reason}", report.pages));
                    continue;
                }
            };
            if !taken.insert((item.identifier.clone(), item.datestamp.clone())) {
                report.skipped += 1;
                continue;
            }
            match item.record {
                _ if item.deleted => deletions.push(item.identifier),
                Some(record) => {
                    xml.push_str(&marcxml::record_to_xml(&record.marc, false));
                    records += 1;
                }
                None => report.rejected.push(format!(
                    "page {}: {} has no metadata",
                    report.pages, item.identifier
                )),
            }
        }
        xml.push_str(marcxml::collection_end());
        let body = if records > 0 {
            xml.into_bytes()
        } else {
            Vec::new()
        };
        let (summary, deleted) = backend.take_page(body, &deletions)?;
        report.read += summary.read;
        report.added += summary.added;
        report.updated += summary.updated;
        report.unchanged += summary.unchanged;
        report.deleted += deleted;
        // The page is in the store, durably, before the next is asked for.
        eprintln!(
            "page {}: {} record(s) stored so far",
            report.pages,
            report.added + report.updated + report.unchanged
        );
        report.rejected.extend(
            summary
                .rejected
                .iter()
                .map(|r| format!("{}: {}", r.location, r.reason)),
        );
        // A page that brought no record not taken before (empty, all unreadable, or all
        // already taken) does not advance the list.
        if report.skipped - skipped_before == items || (records == 0 && deletions.is_empty()) {
            pages_with_nothing_new += 1;
        } else {
            pages_with_nothing_new = 0;
        }
        if let Some(token) = &page.token {
            if !tokens_given.insert(token.clone()) {
                bail!(
                    "{} gave the resumption token {token:?} again (page {}): the list would \
                     never end, so the harvest stops here; records of earlier pages are kept",
                    options.url,
                    report.pages
                );
            }
            if pages_with_nothing_new >= PAGES_WITH_NOTHING_NEW_MAX {
                bail!(
                    "{} sent {pages_with_nothing_new} pages in a row of records already taken \
                     in this harvest (up to page {}): the list does not advance, so the \
                     harvest stops here; records of earlier pages are kept",
                    options.url,
                    report.pages
                );
            }
        }
        match page.token {
            Some(token) => {
                args = vec![
                    ("verb", "ListRecords".to_string()),
                    ("resumptionToken", token),
                ];
            }
            None => break,
        }
    }
    state.url.clone_from(&options.url);
    state.set.clone_from(&options.set);
    state.last_response_date = response_date.or(state.last_response_date);
    report.next_from.clone_from(&state.last_response_date);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("making {}", parent.display()))?;
    }
    // Whole or not at all: a kill or a power cut while it is written leaves the old one
    // (written beside it, made durable, then renamed over it).
    let partial = path.with_extension("partial");
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut file = std::fs::File::create(&partial)?;
        file.write_all(&serde_json::to_vec_pretty(&state)?)?;
        file.sync_all()?;
        std::fs::rename(&partial, &path)
    };
    write().with_context(|| format!("writing {}", path.display()))?;
    Ok(report)
}

/// An HTTP fetcher for a provider: GET with the arguments, honouring a 503's Retry-After
/// (up to a minute) once.
pub fn http_fetch(url: &str) -> anyhow::Result<Box<Fetch<'static>>> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(300))
        .user_agent(concat!(
            "Jalin/",
            env!("CARGO_PKG_VERSION"),
            " OAI-PMH harvester"
        ))
        .build()
        .context("making an HTTP client")?;
    let url = url.to_string();
    Ok(Box::new(
        move |args: &[(&str, String)]| -> anyhow::Result<String> {
            for _ in 0..2 {
                let response = client
                    .get(&url)
                    .query(args)
                    .send()
                    .with_context(|| format!("asking {url}"))?;
                let status = response.status();
                if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
                    let wait = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .unwrap_or(10)
                        .min(60);
                    std::thread::sleep(Duration::from_secs(wait));
                    continue;
                }
                if !status.is_success() {
                    bail!("{url} answered HTTP {status}");
                }
                return response.text().context("reading the answer");
            }
            bail!("{url} stayed unavailable (HTTP 503)")
        },
    ))
}
