//! The written cooperation agreement (*surat perjanjian*): versions of a text with
//! structured terms, linked by hash, and members' signatures on a version.
//!
//! A version is in force when enough current members signed it: all of them unless its
//! terms say a number. An agreement's terms in force are those of its newest version in
//! force. Versions and signatures by libraries that are not members count for nothing.

use super::document::{dearmor, DocError, Hash32, Kind, Signed};
use super::log::{Log, MemberState, Op};
use crate::signing::{Domain, LibraryId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The longest evaluation period, in months.
pub const EVALUATION_MONTHS_MAX: u32 = 60;

/// The terms the software applies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Terms {
    /// Members share their catalogs in the union catalog.
    pub union_catalog: bool,
    /// Members lend to each other.
    pub interlibrary_loan: bool,
    /// Members coordinate what they buy.
    pub coordinated_acquisition: bool,
    /// Members train each other's staff.
    pub staff_development: bool,
    /// Days an item lent to another library may stay there.
    pub loan_period_days: u32,
    /// Items one loan request may ask for.
    pub items_per_request: u32,
    /// Months between evaluations of the partnership.
    pub evaluation_period_months: u32,
    /// Signatures that put a version in force; `None`: all current members.
    pub signatures_required: Option<u32>,
    /// Days a lender has to answer a loan request before it goes to the next library.
    pub answer_within_days: u32,
    /// Renewals one loan may have.
    pub max_renewals: u32,
    /// Days a renewal adds to the due date.
    pub renewal_days: u32,
    /// Loans open at once between one borrowing and one lending library.
    pub max_open_loans: u32,
    /// Members share what their patrons look for: queries asked by at least three
    /// visits and survey totals of at least three answers, never the log or the answers.
    pub share_needs: bool,
}

impl Terms {
    /// `answer_within_days` when an agreement does not name it.
    pub const DEFAULT_ANSWER_WITHIN_DAYS: u32 = 3;
}

impl Default for Terms {
    /// The terms an agreement has where its file names none (`jalin agreement template`
    /// prints them): the union catalog shared, no other form of cooperation.
    fn default() -> Terms {
        Terms {
            union_catalog: true,
            interlibrary_loan: false,
            coordinated_acquisition: false,
            staff_development: false,
            loan_period_days: 14,
            items_per_request: 3,
            evaluation_period_months: 12,
            signatures_required: None,
            answer_within_days: Terms::DEFAULT_ANSWER_WITHIN_DAYS,
            max_renewals: 1,
            renewal_days: 14,
            max_open_loans: 5,
            share_needs: false,
        }
    }
}

/// A complete agreement file to start from: every term with its default, explained in
/// Indonesian.
pub fn template() -> String {
    let t = Terms::default();
    format!(
        "+++\n\
# Judul perjanjian (wajib).\n\
title = \"Perjanjian Kerja Sama Perpustakaan\"\n\
# Katalog induk bersama: koleksi anggota tampil di katalog setiap anggota.\n\
union_catalog = {}\n\
# Silang layanan (pinjam antarperpustakaan).\n\
interlibrary_loan = {}\n\
# Pengadaan bahan pustaka bersama.\n\
coordinated_acquisition = {}\n\
# Pengembangan staf bersama.\n\
staff_development = {}\n\
# Berbagi kebutuhan pemustaka: kata pencarian yang dicari sedikitnya tiga kunjungan dan\n\
# jumlah jawaban angket per pilihan (sedikitnya tiga), tidak pernah catatannya.\n\
share_needs = {}\n\
# Lama pinjam antarperpustakaan, dalam hari.\n\
loan_period_days = {}\n\
# Jumlah eksemplar paling banyak dalam satu permintaan.\n\
items_per_request = {}\n\
# Batas hari perpustakaan pemilik menjawab permintaan; lewat dari itu permintaan\n\
# diteruskan ke perpustakaan berikutnya.\n\
answer_within_days = {}\n\
# Berapa kali satu pinjaman boleh diperpanjang.\n\
max_renewals = {}\n\
# Tambahan hari untuk setiap perpanjangan.\n\
renewal_days = {}\n\
# Pinjaman terbuka paling banyak antara dua perpustakaan sekaligus.\n\
max_open_loans = {}\n\
# Evaluasi kemitraan setiap berapa bulan.\n\
evaluation_period_months = {}\n\
# Tanda tangan yang membuat perjanjian berlaku: \"all\" (semua anggota) atau angka.\n\
signatures_required = \"all\"\n\
+++\n\
\n\
Tulis isi perjanjian di sini (Markdown).\n",
        t.union_catalog,
        t.interlibrary_loan,
        t.coordinated_acquisition,
        t.staff_development,
        t.share_needs,
        t.loan_period_days,
        t.items_per_request,
        t.answer_within_days,
        t.max_renewals,
        t.renewal_days,
        t.max_open_loans,
        t.evaluation_period_months,
    )
}

/// One version of an agreement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgreementVersion {
    /// The consortium.
    pub consortium: Hash32,
    /// The agreement's id (its first version's id); `None` in the first version.
    pub agreement: Option<Hash32>,
    /// The version this one amends; `None` in the first version.
    pub previous: Option<Hash32>,
    /// The title.
    pub title: String,
    /// The text (Markdown).
    pub text: String,
    /// The terms.
    pub terms: Terms,
    /// When it was written (ms since 1970).
    pub time_ms: u64,
}

impl Kind for AgreementVersion {
    const DOMAIN: Domain = Domain::AgreementVersion;
    const LABEL: &'static str = "AGREEMENT";
}

/// A member's signature on one version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgreementSignature {
    /// The consortium.
    pub consortium: Hash32,
    /// The version signed (its id: the hash of its signed bytes).
    pub version: Hash32,
    /// When (ms since 1970).
    pub time_ms: u64,
}

impl Kind for AgreementSignature {
    const DOMAIN: Domain = Domain::AgreementSignature;
    const LABEL: &'static str = "SIGNATURE";
}

/// Texts of agreements: at most this many bytes.
pub const AGREEMENT_TEXT_MAX: usize = 256 * 1024;

impl AgreementVersion {
    /// Checks a signed version alone.
    pub fn check(version: &Signed<AgreementVersion>, consortium: Hash32) -> Result<(), DocError> {
        version.verify()?;
        let body = &version.body;
        if body.consortium != consortium {
            return Err(DocError::WrongConsortium {
                expected: consortium,
                found: body.consortium,
            });
        }
        if body.agreement.is_some() != body.previous.is_some() {
            return Err(DocError::Invalid(
                "an amendment names both its agreement and the version it amends".into(),
            ));
        }
        if body.title.trim().is_empty() || body.title.len() > 1024 {
            return Err(DocError::Invalid(
                "an agreement needs a title (under 1 KB)".into(),
            ));
        }
        if body.text.len() > AGREEMENT_TEXT_MAX {
            return Err(DocError::Invalid(format!(
                "the text is over {} KB",
                AGREEMENT_TEXT_MAX / 1024
            )));
        }
        if !(1..=EVALUATION_MONTHS_MAX).contains(&body.terms.evaluation_period_months) {
            return Err(DocError::Invalid(format!(
                "evaluation_period_months is 1 to {EVALUATION_MONTHS_MAX}"
            )));
        }
        Ok(())
    }

    /// The id of the agreement a signed version belongs to.
    pub fn agreement_of(version: &Signed<AgreementVersion>) -> Hash32 {
        version.body.agreement.unwrap_or_else(|| version.id())
    }
}

/// Checks a signed signature alone.
pub fn check_signature(
    signature: &Signed<AgreementSignature>,
    consortium: Hash32,
) -> Result<(), DocError> {
    signature.verify()?;
    if signature.body.consortium != consortium {
        return Err(DocError::WrongConsortium {
            expected: consortium,
            found: signature.body.consortium,
        });
    }
    Ok(())
}

/// A version as an agreement file, the inverse of [`parse_draft`]: what a member edits to
/// amend it.
pub fn draft_file(version: &AgreementVersion) -> String {
    #[derive(Serialize)]
    struct Front<'a> {
        title: &'a str,
        #[serde(flatten)]
        terms: &'a Terms,
    }
    let front = toml::to_string(&Front {
        title: &version.title,
        terms: &version.terms,
    })
    .unwrap_or_default();
    format!("+++\n{front}+++\n{}", version.text)
}

/// Parses an agreement file: TOML front matter between `+++` lines (the title and the
/// terms), then the text in Markdown.
pub fn parse_draft(file: &str) -> Result<(String, Terms, String), DocError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Front {
        title: String,
        #[serde(flatten)]
        terms: FrontTerms,
    }
    // Every term may be left out: it then has its default (`Terms::default`).
    #[derive(Deserialize)]
    #[serde(default)]
    struct FrontTerms {
        union_catalog: bool,
        interlibrary_loan: bool,
        coordinated_acquisition: bool,
        staff_development: bool,
        loan_period_days: u32,
        items_per_request: u32,
        evaluation_period_months: u32,
        signatures_required: Option<toml::Value>,
        answer_within_days: u32,
        max_renewals: u32,
        renewal_days: u32,
        max_open_loans: u32,
        share_needs: bool,
    }
    impl Default for FrontTerms {
        fn default() -> FrontTerms {
            let t = Terms::default();
            FrontTerms {
                union_catalog: t.union_catalog,
                interlibrary_loan: t.interlibrary_loan,
                coordinated_acquisition: t.coordinated_acquisition,
                staff_development: t.staff_development,
                loan_period_days: t.loan_period_days,
                items_per_request: t.items_per_request,
                evaluation_period_months: t.evaluation_period_months,
                signatures_required: None,
                answer_within_days: t.answer_within_days,
                max_renewals: t.max_renewals,
                renewal_days: t.renewal_days,
                max_open_loans: t.max_open_loans,
                share_needs: t.share_needs,
            }
        }
    }
    let file = file
        .strip_prefix('\u{feff}')
        .unwrap_or(file)
        .replace("\r\n", "\n");
    let example = "start the file with the terms, for example:\n+++\ntitle = \"Perjanjian Kerja Sama\"\nunion_catalog = true\ninterlibrary_loan = true\ncoordinated_acquisition = false\nstaff_development = true\nloan_period_days = 14\nitems_per_request = 3\nevaluation_period_months = 12\nsignatures_required = \"all\"\n+++";
    let Some(rest) = file.strip_prefix("+++\n") else {
        return Err(DocError::Invalid(format!("no terms: {example}")));
    };
    let Some((front, text)) = rest
        .split_once("\n+++\n")
        .or_else(|| rest.strip_suffix("\n+++").map(|front| (front, "")))
    else {
        return Err(DocError::Invalid(format!(
            "the terms are not closed by a line \"+++\": {example}"
        )));
    };
    let parsed: Front = toml::from_str(front)
        .map_err(|e| DocError::Invalid(format!("in the terms: {}", e.message())))?;
    let signatures_required = match &parsed.terms.signatures_required {
        None => None,
        Some(toml::Value::String(s)) if s == "all" => None,
        Some(toml::Value::Integer(n)) if *n >= 1 && *n <= i64::from(u32::MAX) => Some(*n as u32),
        Some(other) => {
            return Err(DocError::Invalid(format!(
            "in the terms: signatures_required is \"all\" or a number of at least 1, not {other}"
        )))
        }
    };
    let t = parsed.terms;
    Ok((
        parsed.title,
        Terms {
            union_catalog: t.union_catalog,
            interlibrary_loan: t.interlibrary_loan,
            coordinated_acquisition: t.coordinated_acquisition,
            staff_development: t.staff_development,
            loan_period_days: t.loan_period_days,
            items_per_request: t.items_per_request,
            evaluation_period_months: t.evaluation_period_months,
            signatures_required,
            answer_within_days: t.answer_within_days,
            max_renewals: t.max_renewals,
            renewal_days: t.renewal_days,
            max_open_loans: t.max_open_loans,
            share_needs: t.share_needs,
        },
        text.trim_start_matches('\n').to_string(),
    ))
}

/// One version's standing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VersionStatus {
    /// Its id.
    pub id: Hash32,
    /// 1 for the first version, 2 for its amendment, ...
    pub number: usize,
    /// Who wrote it.
    pub author: LibraryId,
    /// Whether the author is a current member.
    pub by_member: bool,
    /// Current members who signed it, with when.
    pub signed_by: BTreeMap<LibraryId, u64>,
    /// Signatures it needs.
    pub required: usize,
    /// Whether it is in force.
    pub in_force: bool,
}

/// An agreement's standing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AgreementStatus {
    /// The agreement's id.
    pub id: Hash32,
    /// Its versions, oldest first.
    pub versions: Vec<VersionStatus>,
    /// The newest version in force.
    pub in_force: Option<Hash32>,
}

/// Every version and signature of one consortium.
#[derive(Clone, Debug, Default)]
pub struct Agreements {
    /// Versions by id.
    pub versions: BTreeMap<Hash32, Signed<AgreementVersion>>,
    /// Signatures by id.
    pub signatures: BTreeMap<Hash32, Signed<AgreementSignature>>,
}

impl Agreements {
    /// The agreements' ids, oldest first (by time, then id).
    pub fn ids(&self) -> Vec<Hash32> {
        let mut firsts: Vec<(u64, Hash32)> = self
            .versions
            .iter()
            .filter(|(_, v)| v.body.agreement.is_none())
            .map(|(id, v)| (v.body.time_ms, *id))
            .collect();
        firsts.sort();
        firsts.into_iter().map(|(_, id)| id).collect()
    }

    /// The versions of agreement `id`, in chain order (a version after the one it amends;
    /// concurrent amendments by time, then id).
    pub fn chain(&self, id: &Hash32) -> Vec<(Hash32, &Signed<AgreementVersion>)> {
        let Some(first) = self.versions.get(id) else {
            return Vec::new();
        };
        let mut out = vec![(*id, first)];
        let mut frontier = vec![*id];
        while !frontier.is_empty() {
            let mut next: Vec<(u64, Hash32, &Signed<AgreementVersion>)> = self
                .versions
                .iter()
                .filter(|(_, v)| {
                    v.body.agreement == Some(*id)
                        && v.body.previous.is_some_and(|p| frontier.contains(&p))
                })
                .map(|(vid, v)| (v.body.time_ms, *vid, v))
                .collect();
            next.sort_by_key(|(time, vid, _)| (*time, *vid));
            frontier = next.iter().map(|(_, vid, _)| *vid).collect();
            out.extend(next.into_iter().map(|(_, vid, v)| (vid, v)));
        }
        out
    }

    /// Where agreement `id` stands, given the member set.
    pub fn status(&self, id: &Hash32, members: &MemberState) -> Option<AgreementStatus> {
        let chain = self.chain(id);
        if chain.is_empty() {
            return None;
        }
        let mut versions = Vec::new();
        let mut in_force = None;
        for (number, (vid, version)) in chain.iter().enumerate() {
            let mut signed_by = BTreeMap::new();
            for signature in self.signatures.values() {
                if signature.body.version == *vid && members.members.contains_key(&signature.author)
                {
                    let time = signed_by.entry(signature.author).or_insert(u64::MAX);
                    *time = (*time).min(signature.body.time_ms);
                }
            }
            let by_member = members.members.contains_key(&version.author);
            let required = version
                .body
                .terms
                .signatures_required
                .map_or(members.members.len(), |n| n as usize)
                .max(1);
            let force = by_member && signed_by.len() >= required;
            if force {
                in_force = Some(*vid);
            }
            versions.push(VersionStatus {
                id: *vid,
                number: number + 1,
                author: version.author,
                by_member,
                signed_by,
                required,
                in_force: force,
            });
        }
        Some(AgreementStatus {
            id: *id,
            versions,
            in_force,
        })
    }
}

/// The documents an exported agreement carries: the membership log and the agreement's
/// versions and signatures, each in text form, in a canonical order.
pub fn bundle(log: &Log, agreements: &Agreements, id: &Hash32) -> Vec<String> {
    let mut lines: Vec<String> = log.ops().iter().map(|op| op.to_text()).collect();
    let chain = agreements.chain(id);
    let ids: BTreeSet<Hash32> = chain.iter().map(|(vid, _)| *vid).collect();
    lines.extend(chain.iter().map(|(_, v)| v.to_text()));
    lines.extend(
        agreements
            .signatures
            .values()
            .filter(|s| ids.contains(&s.body.version))
            .map(|s| s.to_text()),
    );
    lines
}

/// Text escaped for HTML element content (the page puts no text in attributes).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    crate::xml::escape_text(&mut out, text);
    out
}

/// Markdown as HTML, made safe to show in another member's browser (an agreement's text
/// is written by a member): raw HTML is shown as text, a link is kept only to `http`,
/// `https` or `mailto` (its text stays, unlinked, otherwise), and an image is shown as its
/// description (an image loads from wherever its author chose, and tells them who read it).
pub fn markdown(text: &str) -> String {
    use pulldown_cmark::{Event, Parser, Tag, TagEnd};
    // Whether each open link was kept, so its end goes with it. Links do not nest in
    // Markdown, but an image can stand inside one.
    let mut links_kept: Vec<bool> = Vec::new();
    let events = Parser::new(text).filter_map(|event| match event {
        Event::Html(html) | Event::InlineHtml(html) => Some(Event::Text(html)),
        Event::Start(Tag::Link { ref dest_url, .. }) => {
            let kept = safe_link(dest_url);
            links_kept.push(kept);
            kept.then_some(event)
        }
        Event::End(TagEnd::Link) => links_kept.pop().unwrap_or(false).then_some(event),
        Event::Start(Tag::Image { .. }) | Event::End(TagEnd::Image) => None,
        other => Some(other),
    });
    let mut out = String::new();
    pulldown_cmark::html::push_html(&mut out, events);
    out
}

/// Whether a link may stay a link: `http`, `https` or `mailto`, read as a browser reads
/// it (ignoring case and the tabs, line breaks and spaces it drops).
fn safe_link(url: &str) -> bool {
    let url: String = url
        .chars()
        .filter(|c| !c.is_ascii_whitespace() && !c.is_control())
        .take(8)
        .collect::<String>()
        .to_ascii_lowercase();
    ["http://", "https://", "mailto:"]
        .iter()
        .any(|scheme| url.starts_with(scheme))
}

/// The content security policy of an agreement's page, in the page itself (it is saved
/// and opened as a file too): nothing loads from elsewhere, nothing runs, no form goes out.
pub const EXPORT_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
                              form-action 'none'; base-uri 'none'";

/// A UTC date and time (`2026-11-24 14:05 UTC`) from ms since 1970.
pub fn format_time(ms: u64) -> String {
    let secs = ms / 1000;
    let (hour, minute) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    format!("{} {hour:02}:{minute:02} UTC", crate::ill::Day::of_ms(ms))
}

const BEGIN: &str = "<pre id=\"jalin-documents\">\n";
const END: &str = "</pre>";

/// The printable HTML of an agreement: its newest version's text and terms, the signature
/// table, and the signed documents themselves, from which `verify_html` rebuilds the page
/// to check it. A pure function of the documents.
pub fn render_html(documents: &[String]) -> Result<String, DocError> {
    let (log, agreements, id) = load_bundle(documents)?;
    let state = log.state();
    let status = agreements
        .status(&id, &state)
        .ok_or_else(|| DocError::Invalid("the documents hold no agreement".into()))?;
    let Some(last) = status.versions.last() else {
        return Err(DocError::Invalid("the agreement has no version".into()));
    };
    let shown = status.in_force.unwrap_or(last.id);
    let version = &agreements.versions[&shown];
    let shown_status = status
        .versions
        .iter()
        .find(|v| v.id == shown)
        .unwrap_or(last);
    let terms = &version.body.terms;
    let name_of = |library: &LibraryId| -> String {
        state
            .members
            .get(library)
            .map(|m| format!("{} ({})", m.name, m.code))
            .or_else(|| {
                state
                    .former
                    .get(library)
                    .map(|(m, _, _)| format!("{} ({}), former member", m.name, m.code))
            })
            .unwrap_or_else(|| "not a member".to_string())
    };
    let yes = |b: bool| if b { "yes" } else { "no" };
    let mut html = String::new();
    html.push_str("<!DOCTYPE html>\n<html lang=\"id\">\n<head>\n<meta charset=\"utf-8\">\n");
    html.push_str(&format!(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"{EXPORT_CSP}\">\n"
    ));
    html.push_str(&format!("<title>{}</title>\n", escape(&version.body.title)));
    html.push_str("<style>body{font-family:serif;max-width:46em;margin:2em auto;padding:0 1em}table{border-collapse:collapse}td,th{border:1px solid #444;padding:.3em .6em;text-align:left}pre#jalin-documents{font-size:6pt;white-space:pre-wrap;word-break:break-all;color:#555}@media print{pre#jalin-documents{page-break-before:always}}</style>\n</head>\n<body>\n");
    html.push_str(&format!("<h1>{}</h1>\n", escape(&version.body.title)));
    html.push_str(&format!(
        "<p>Consortium: <strong>{}</strong><br>\nConsortium id: <code>{}</code><br>\nAgreement id: <code>{}</code><br>\nVersion {} of {}, id <code>{}</code>, written {} by {}<br>\nStatus: <strong>{}</strong> ({} of {} signatures required)</p>\n",
        escape(log.name()),
        log.id(),
        id,
        shown_status.number,
        status.versions.len(),
        shown,
        format_time(version.body.time_ms),
        escape(&name_of(&version.author)),
        if shown_status.in_force { "in force" } else { "not in force" },
        shown_status.signed_by.len(),
        shown_status.required,
    ));
    html.push_str("<h2>Terms</h2>\n<table>\n");
    for (label, value) in [
        ("Union catalog", yes(terms.union_catalog).to_string()),
        (
            "Interlibrary loan",
            yes(terms.interlibrary_loan).to_string(),
        ),
        (
            "Coordinated acquisition",
            yes(terms.coordinated_acquisition).to_string(),
        ),
        (
            "Staff development",
            yes(terms.staff_development).to_string(),
        ),
        ("Loan period (days)", terms.loan_period_days.to_string()),
        (
            "Items per loan request",
            terms.items_per_request.to_string(),
        ),
        (
            "Lender answers within (days)",
            terms.answer_within_days.to_string(),
        ),
        ("Renewals per loan", terms.max_renewals.to_string()),
        ("Days a renewal adds", terms.renewal_days.to_string()),
        (
            "Open loans between two libraries",
            terms.max_open_loans.to_string(),
        ),
        (
            "Patrons' needs shared (queries of 3 visits or more, survey totals of 3 or more)",
            yes(terms.share_needs).to_string(),
        ),
        (
            "Evaluation every (months)",
            terms.evaluation_period_months.to_string(),
        ),
        (
            "Signatures required",
            terms
                .signatures_required
                .map_or("all current members".to_string(), |n| n.to_string()),
        ),
    ] {
        html.push_str(&format!(
            "<tr><th>{label}</th><td>{}</td></tr>\n",
            escape(&value)
        ));
    }
    html.push_str("</table>\n<h2>Text</h2>\n");
    html.push_str(&markdown(&version.body.text));
    html.push_str("<h2>Signatures</h2>\n<table>\n<tr><th>Library</th><th>Key fingerprint</th><th>Signed</th></tr>\n");
    for (library, time) in &shown_status.signed_by {
        html.push_str(&format!(
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td></tr>\n",
            escape(&name_of(library)),
            library.fingerprint(),
            format_time(*time)
        ));
    }
    let unsigned: Vec<&LibraryId> = state
        .members
        .keys()
        .filter(|l| !shown_status.signed_by.contains_key(l))
        .collect();
    for library in unsigned {
        html.push_str(&format!(
            "<tr><td>{}</td><td><code>{}</code></td><td>not signed</td></tr>\n",
            escape(&name_of(library)),
            library.fingerprint()
        ));
    }
    html.push_str("</table>\n<h2>How to check this document</h2>\n<p>Everything above is rebuilt from the signed documents below. To check that nothing was changed and that every signature is valid, run:</p>\n<pre>jalin agreement verify THIS-FILE.html</pre>\n<p>It needs no network and no data directory.</p>\n");
    html.push_str(BEGIN);
    for line in documents {
        html.push_str(line);
        html.push('\n');
    }
    html.push_str(END);
    html.push_str("\n</body>\n</html>\n");
    Ok(html)
}

/// An agreement as a library invited to its consortium reads it before joining: built
/// from the same documents as [`render_html`], every signature checked.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Proposed {
    /// The consortium.
    pub consortium: Hash32,
    /// Its name.
    pub consortium_name: String,
    /// The version shown: the newest in force, else the newest.
    pub title: String,
    /// Its text (Markdown, as written).
    pub text: String,
    /// Its text as HTML, made safe by [`markdown`].
    pub text_html: String,
    /// Its terms.
    pub terms: Terms,
    /// Whether it is in force.
    pub in_force: bool,
    /// The members who signed it (name and code).
    pub signed_by: Vec<String>,
    /// The current members (name and code).
    pub members: Vec<String>,
    /// The current members' keys.
    #[serde(skip)]
    pub member_keys: Vec<LibraryId>,
}

/// The agreement the documents carry (a consortium's log and one agreement's versions
/// and signatures, as [`bundle`] gives them), for reading before joining.
pub fn proposed(documents: &[String]) -> Result<Proposed, DocError> {
    let (log, agreements, id) = load_bundle(documents)?;
    let state = log.state();
    let status = agreements
        .status(&id, &state)
        .ok_or_else(|| DocError::Invalid("the documents hold no agreement".into()))?;
    let last = status
        .versions
        .last()
        .ok_or_else(|| DocError::Invalid("the agreement has no version".into()))?;
    let shown = status.in_force.unwrap_or(last.id);
    let version = &agreements.versions[&shown];
    let shown_status = status
        .versions
        .iter()
        .find(|v| v.id == shown)
        .unwrap_or(last);
    // Names as their members wrote them, no control characters, with the key's
    // fingerprint: a lookalike consortium shows other fingerprints.
    let clean = |t: &str| t.replace(|c: char| c.is_control(), " ");
    let name = |library: &LibraryId| {
        state.members.get(library).map_or_else(
            || library.fingerprint(),
            |m| {
                format!(
                    "{} ({}, {})",
                    clean(&m.name),
                    clean(&m.code),
                    library.fingerprint()
                )
            },
        )
    };
    Ok(Proposed {
        consortium: log.id(),
        consortium_name: clean(log.name()),
        title: clean(&version.body.title),
        text: version.body.text.clone(),
        text_html: markdown(&version.body.text),
        terms: version.body.terms.clone(),
        in_force: shown_status.in_force,
        signed_by: shown_status.signed_by.keys().map(name).collect(),
        members: state.members.keys().map(name).collect(),
        member_keys: state.members.keys().copied().collect(),
    })
}

fn load_bundle(documents: &[String]) -> Result<(Log, Agreements, Hash32), DocError> {
    let mut ops: Vec<Op> = Vec::new();
    let mut versions = Vec::new();
    let mut signatures = Vec::new();
    for (n, line) in documents.iter().enumerate() {
        let at = |e: DocError| DocError::Invalid(format!("document {}: {e}", n + 1));
        let (label, _) = dearmor(line).map_err(at)?;
        match label.as_str() {
            "OP" => ops.push(Signed::from_text(line).map_err(at)?),
            "AGREEMENT" => versions.push(Signed::<AgreementVersion>::from_text(line).map_err(at)?),
            "SIGNATURE" => {
                signatures.push(Signed::<AgreementSignature>::from_text(line).map_err(at)?)
            }
            other => {
                return Err(at(DocError::Invalid(format!(
                    "unexpected {other} document"
                ))))
            }
        }
    }
    let genesis_at = ops
        .iter()
        .position(|op| op.body.consortium.is_none())
        .ok_or_else(|| DocError::Invalid("the documents hold no consortium genesis".into()))?;
    let mut log = Log::new(ops.remove(genesis_at))?;
    for op in ops {
        log.insert(op)?;
    }
    if log.pending().next().is_some() {
        return Err(DocError::Invalid(
            "some membership operations name operations that are not there".into(),
        ));
    }
    let mut agreements = Agreements::default();
    for version in versions {
        AgreementVersion::check(&version, log.id())?;
        agreements.versions.insert(version.id(), version);
    }
    for signature in signatures {
        check_signature(&signature, log.id())?;
        if !agreements.versions.contains_key(&signature.body.version) {
            return Err(DocError::Invalid(format!(
                "a signature by {} is over version {}, which is not in the document",
                signature.author.fingerprint(),
                signature.body.version.short()
            )));
        }
        agreements.signatures.insert(signature.id(), signature);
    }
    let ids = agreements.ids();
    let [id] = ids.as_slice() else {
        return Err(DocError::Invalid(format!(
            "the documents hold {} agreements, not one",
            ids.len()
        )));
    };
    Ok((log, agreements, *id))
}

/// What `verify_html` found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verified {
    /// The consortium's name.
    pub consortium: String,
    /// The agreement's standing.
    pub status: AgreementStatus,
    /// Names of the libraries that signed the version shown, with fingerprints.
    pub signers: Vec<(String, String)>,
}

/// Checks an exported agreement by itself: every signed document inside verifies, and the
/// page is exactly what those documents make (so no word of it was changed).
pub fn verify_html(html: &str) -> Result<Verified, DocError> {
    let html = html.replace("\r\n", "\n");
    let start = html.find(BEGIN).ok_or_else(|| {
        DocError::Invalid(
            "no signed documents in this file (was it exported by `jalin agreement export`?)"
                .into(),
        )
    })? + BEGIN.len();
    let end = html[start..]
        .find(END)
        .ok_or_else(|| DocError::Invalid("the signed documents are cut off".into()))?
        + start;
    let documents: Vec<String> = html[start..end]
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    let rebuilt = render_html(&documents)?;
    if rebuilt != html {
        let line = rebuilt
            .lines()
            .zip(html.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| rebuilt.lines().count().min(html.lines().count()))
            + 1;
        return Err(DocError::Invalid(format!(
            "the page differs from what its signed documents say, from line {line} on: it was changed after export"
        )));
    }
    let (log, agreements, id) = load_bundle(&documents)?;
    let state = log.state();
    let status = agreements
        .status(&id, &state)
        .ok_or_else(|| DocError::Invalid("no agreement".into()))?;
    let shown = status
        .in_force
        .or_else(|| status.versions.last().map(|v| v.id));
    let signers = status
        .versions
        .iter()
        .filter(|v| Some(v.id) == shown)
        .flat_map(|v| v.signed_by.keys())
        .map(|l| {
            (
                state
                    .members
                    .get(l)
                    .map(|m| m.name.clone())
                    .unwrap_or_default(),
                l.fingerprint(),
            )
        })
        .collect();
    Ok(Verified {
        consortium: log.name().to_string(),
        status,
        signers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_keeps_only_safe_links_and_no_images() {
        let html = markdown(
            "[a](https://perpusnas.go.id) [b](javascript:alert(1)) [c](JaVa\tScRiPt:x) \
             [d](mailto:pustaka@example.id) [e](data:text/html,x) <javascript:alert(2)> \
             ![f](https://tracker.example/p.png) [![g](http://x.example/i.png)](vbscript:y) \
             <script>alert(3)</script>",
        );
        let hrefs: Vec<&str> = html
            .split("href=\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect();
        assert_eq!(
            hrefs,
            ["https://perpusnas.go.id", "mailto:pustaka@example.id"],
            "{html}"
        );
        for gone in ["<img", "src=", "<script"] {
            assert!(!html.contains(gone), "{gone} in {html}");
        }
        // The text of a link or image that goes stays, to be read.
        for kept in [">a<", "b", "c", "f", "g"] {
            assert!(html.contains(kept), "{kept} lost from {html}");
        }
        assert_eq!(html.matches("<a ").count(), html.matches("</a>").count());
    }

    #[test]
    fn the_template_and_a_file_naming_few_terms_read_as_the_defaults() {
        let (title, terms, text) = parse_draft(&template()).expect("the template reads");
        assert_eq!(title, "Perjanjian Kerja Sama Perpustakaan");
        assert_eq!(terms, Terms::default());
        assert!(text.starts_with("Tulis isi"));
        let (_, terms, _) = parse_draft("+++\ntitle = \"T\"\ninterlibrary_loan = true\n+++\nX\n")
            .expect("a file naming one term reads");
        assert_eq!(
            terms,
            Terms {
                interlibrary_loan: true,
                ..Terms::default()
            }
        );
        // A term misspelt is an error, not a default.
        assert!(parse_draft("+++\ntitle = \"T\"\nmax_renewal = 3\n+++\nX\n").is_err());
    }

    #[test]
    fn a_draft_file_reads_back_as_the_version_it_was_made_from() {
        for signatures_required in [None, Some(2)] {
            let version = AgreementVersion {
                consortium: Hash32::from_hex(&"ab".repeat(32)).expect("hex"),
                agreement: None,
                previous: None,
                title: "Perjanjian \"Kerja Sama\"".to_string(),
                text: "# Pasal 1\n\nPara pihak sepakat.\n".to_string(),
                terms: Terms {
                    union_catalog: true,
                    interlibrary_loan: false,
                    coordinated_acquisition: true,
                    staff_development: false,
                    loan_period_days: 21,
                    items_per_request: 2,
                    evaluation_period_months: 6,
                    signatures_required,
                    answer_within_days: 5,
                    max_renewals: 2,
                    renewal_days: 7,
                    max_open_loans: 9,
                    share_needs: true,
                },
                time_ms: 0,
            };
            let file = draft_file(&version);
            assert_eq!(
                parse_draft(&file).expect("reads back"),
                (
                    version.title.clone(),
                    version.terms.clone(),
                    version.text.clone()
                ),
                "{file}"
            );
        }
    }
}
