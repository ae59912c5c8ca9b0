//! The periodic evaluation (evaluasi berkala) as this node does it: the periods of the
//! agreement in force (`evaluation_period_months`, from the first day of the month it was
//! written, in WIB), this library's own figures for a period (computed here and signed),
//! the consortium's report (a pure function of the members' signed figures and the
//! consortium's other documents: [`jalin_protocol::consortium::evaluation::report`]), its
//! signature with notes and decisions, and the report as CSV and as the Perpusnas
//! literacy-index fields Jalin can fill.

use crate::activity::Counted;
use crate::library::{Library, LibraryError};
use jalin_protocol::consortium::document::{Hash32, Signed};
use jalin_protocol::consortium::evaluation::{
    self as jeval, Decision, EvaluationSignature, HandFigures, Inputs, MemberFigures, Outcome,
    Period, Report, StaffTotals,
};
use jalin_protocol::signing::LibraryId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What goes wrong with an evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvaluationError {
    /// No agreement in force: no periods.
    #[error("no agreement is in force in this partnership: it has no evaluation periods")]
    NoAgreement,
    /// No such period.
    #[error("{0}")]
    NoPeriod(String),
    /// Something written that cannot be kept.
    #[error("{0}")]
    Invalid(String),
}

impl EvaluationError {
    /// What kind of failure this is, as a stable name.
    pub fn code(&self) -> &'static str {
        match self {
            EvaluationError::NoAgreement => "evaluation_no_agreement",
            EvaluationError::NoPeriod(_) => "evaluation_no_period",
            EvaluationError::Invalid(_) => "evaluation_invalid",
        }
    }
}

/// The evaluation periods of consortium `id` up to now: from the first day (WIB) of the
/// month the agreement in force was first written, every `evaluation_period_months`.
pub fn periods(library: &Library, id: &Hash32) -> Result<Vec<Period>, LibraryError> {
    if library.consortia().agreement_in_force(id)?.is_none() {
        return Err(EvaluationError::NoAgreement.into());
    }
    Ok(library.consortia().evaluation_periods(id)?)
}

/// A period as people write it: its number (1 is the first) or a date in it
/// (`YYYY-MM-DD`); by default the last period that has ended, else the current one.
pub fn select(
    library: &Library,
    id: &Hash32,
    spec: Option<&str>,
) -> Result<(usize, Period), LibraryError> {
    let all = periods(library, id)?;
    let now = library.now_ms();
    let found = match spec.map(str::trim).filter(|s| !s.is_empty()) {
        None => all
            .iter()
            .rposition(|p| p.to_ms <= now)
            .or_else(|| all.len().checked_sub(1)),
        Some(text) => match text.parse::<usize>() {
            Ok(n) => n.checked_sub(1).filter(|i| *i < all.len()),
            Err(_) => {
                let at = crate::staff::parse_time(&format!("{text} 12:00")).map_err(|_| {
                    EvaluationError::NoPeriod(format!(
                        "{text:?}: give a period's number (1 is the first) or a date in it \
                         (YYYY-MM-DD)"
                    ))
                })?;
                all.iter().position(|p| p.from_ms <= at && at < p.to_ms)
            }
        },
    };
    let index = found.ok_or_else(|| {
        EvaluationError::NoPeriod(format!(
            "no such period: there are {} so far (1 to {})",
            all.len(),
            all.len()
        ))
    })?;
    Ok((index + 1, all[index]))
}

/// A period as shown: `2027-01-01 – 2027-06-30`.
pub fn show_period(period: &Period) -> String {
    let day = |ms: u64| crate::staff::show_time(ms)[..10].to_string();
    format!(
        "{} – {}",
        day(period.from_ms),
        day(period.to_ms.saturating_sub(1))
    )
}

/// This library's own figures for `period` in consortium `id`, computed now; `hand` as
/// its librarian gave them.
pub fn own_figures(
    library: &Library,
    id: &Hash32,
    period: Period,
    hand: HandFigures,
) -> Result<MemberFigures, LibraryError> {
    let activity = library.activity();
    let now = library.now_ms();
    let sum = |what: Counted| -> Result<u32, LibraryError> {
        let n = activity
            .sum(what, period.from_ms, period.to_ms)
            .map_err(crate::store::StoreError::from)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    };
    // Records at the period's end: those live now, less what was added since, plus what
    // was deleted since.
    let (live, _) = library.store().count_of(&library.id())?;
    let after = |what: Counted| -> Result<u64, LibraryError> {
        Ok(activity
            .sum(what, period.to_ms, u64::MAX / 2)
            .map_err(crate::store::StoreError::from)?)
    };
    let records = if period.to_ms > now {
        live
    } else {
        (live + after(Counted::Deleted)?).saturating_sub(after(Counted::Added)?)
    };
    // Titles and those held here alone, as this node sees the union.
    let overlap = library.collection_overlap()?;
    let own_key = library.id().to_hex();
    let own_row = overlap.libraries.iter().find(|l| l.library == own_key);
    let titles = own_row.map_or(0, |l| l.titles.total());
    let unique = own_row.map_or(0, |l| l.titles.alone);
    // Loans in the period, and requests received answered late.
    let within_ms = library
        .consortia()
        .terms_in_force(id)?
        .map_or(u64::MAX / 4, |t| {
            u64::from(t.answer_within_days) * 86_400_000
        });
    let loans = library
        .loans()
        .report_in(period.from_ms, period.to_ms, now)?;
    let mut late = 0u32;
    for loan in library.loans().list()? {
        let tx = &loan.transaction;
        if loan.local.role != crate::ill::Role::Lender
            || !(period.from_ms..period.to_ms).contains(&tx.request.at_ms)
        {
            continue;
        }
        let deadline = tx.request.at_ms.saturating_add(within_ms);
        // The first answer that says something: an acknowledgement of receipt is not
        // an answer.
        let answered = tx
            .history
            .iter()
            .find(|e| {
                e.party == jalin_protocol::ill::Party::Lender
                    && e.ignored.is_none()
                    && e.action
                        .as_ref()
                        .is_some_and(|a| !matches!(a, jalin_protocol::ill::Action::RequestReceived))
            })
            .map(|e| e.at_ms);
        let late_now = match answered {
            Some(at) => at > deadline,
            None => deadline < now.min(period.to_ms),
        };
        if late_now {
            late += 1;
        }
    }
    // Searches of the OPAC in the period.
    let (mut searches, mut empty) = (0u32, 0u32);
    for (at, search) in library.needs().searches()? {
        if (period.from_ms..period.to_ms).contains(&at) {
            searches = searches.saturating_add(1);
            if search.hits == 0 {
                empty = empty.saturating_add(1);
            }
        }
    }
    let avoided = activity
        .avoided(period.from_ms, period.to_ms)
        .map_err(crate::store::StoreError::from)?;
    Ok(MemberFigures {
        consortium: *id,
        period,
        records: u32::try_from(records).unwrap_or(u32::MAX),
        added: sum(Counted::Added)?,
        corrected: sum(Counted::Corrected)?,
        deleted: sum(Counted::Deleted)?,
        titles: u32::try_from(titles).unwrap_or(u32::MAX),
        unique_titles: u32::try_from(unique).unwrap_or(u32::MAX),
        catalog_changed_ms: activity
            .last_change_before(period.to_ms.min(now.saturating_add(1)))
            .map_err(crate::store::StoreError::from)?,
        requests_made: loans.made,
        requests_received: loans.received,
        lent: loans.filled_received,
        borrowed: loans.filled_made,
        days_to_ship_tenths: loans.days_to_shipped.map(|d| (d * 10.0).round() as u32),
        answered_late: late.min(loans.received),
        searches,
        searches_empty: empty,
        planned: sum(Counted::Planned)?,
        duplicates_avoided: u32::try_from(avoided).unwrap_or(u32::MAX),
        hand,
        time_ms: now,
    })
}

/// Computes this library's figures for the period and signs them into the consortium's
/// documents. Hand-entered figures not given keep what this library gave before.
pub fn publish_figures(
    library: &Library,
    id: &Hash32,
    period: Period,
    hand: HandInput,
) -> Result<Signed<MemberFigures>, LibraryError> {
    let signed_here = library
        .consortia()
        .evaluation_signatures(id, &period)?
        .iter()
        .any(|s| s.author == library.id());
    if signed_here {
        return Err(EvaluationError::Invalid(
            "the period's report is signed already: its figures stay as signed".into(),
        )
        .into());
    }
    let before = library
        .consortia()
        .evaluation_figures(id, &period)?
        .remove(&library.id())
        .map(|f| f.hand)
        .unwrap_or_default();
    let hand = HandFigures {
        visits: hand.visits.or(before.visits),
        registered_members: hand.registered_members.or(before.registered_members),
        opening_days: hand.opening_days.or(before.opening_days),
        staff: hand.staff.or(before.staff),
    };
    let figures = own_figures(library, id, period, hand)?;
    Ok(library.consortia().publish_figures(id, figures)?)
}

/// Hand-entered figures as given (none: keep what was given before).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct HandInput {
    /// Visits in the period.
    #[serde(default)]
    pub visits: Option<u32>,
    /// Registered members at its end.
    #[serde(default)]
    pub registered_members: Option<u32>,
    /// Opening days.
    #[serde(default)]
    pub opening_days: Option<u32>,
    /// Staff.
    #[serde(default)]
    pub staff: Option<u32>,
}

fn staff_totals(
    library: &Library,
    id: &Hash32,
    period: Period,
) -> Result<StaffTotals, LibraryError> {
    let posts = library.consortia().standing_staff(id)?;
    let now = library.now_ms().min(period.to_ms);
    let f = crate::staff::figures(&posts, period.from_ms, period.to_ms, now);
    Ok(StaffTotals {
        trainings_planned: f.trainings_planned,
        trainings_held: f.trainings_held,
        trainings_not_held: f.trainings_not_held,
        attendance: f.attendance,
        help_requests: f.help_requests,
        help_answered: f.help_answered,
        median_hours_to_answer: f.median_hours_to_answer,
        held_by: f.held_by_library,
        answers_by: f.answers_by_library,
    })
}

/// The consortium's report for `period`, from the documents this node holds.
pub fn report(library: &Library, id: &Hash32, period: Period) -> Result<Report, LibraryError> {
    let consortia = library.consortia();
    let consortium = consortia.get(id)?;
    let state = consortium.log.state();
    let version = consortia.agreement_in_force(id)?;
    let signed_by: Vec<LibraryId> = version
        .as_ref()
        .and_then(|v| {
            let aid = jalin_protocol::consortium::agreement::AgreementVersion::agreement_of(v);
            consortium.agreements.status(&aid, &state).map(|s| {
                s.versions
                    .iter()
                    .find(|vs| vs.id == v.id())
                    .map(|vs| vs.signed_by.keys().copied().collect())
                    .unwrap_or_default()
            })
        })
        .unwrap_or_default();
    let members: Vec<(LibraryId, String, bool)> = state
        .members
        .iter()
        .map(|(l, m)| {
            (
                *l,
                format!("{} ({})", m.name, m.code),
                signed_by.contains(l),
            )
        })
        .collect();
    let all = periods(library, id)?;
    let before = all
        .iter()
        .position(|p| *p == period)
        .and_then(|i| i.checked_sub(1))
        .map(|i| all[i]);
    let figures = consortia.evaluation_figures(id, &period)?;
    let previous = match before {
        Some(p) => consortia.evaluation_figures(id, &p)?,
        None => BTreeMap::new(),
    };
    let signatures_before = match before {
        Some(p) => consortia.evaluation_signatures(id, &p)?,
        None => Vec::new(),
    };
    let inputs = Inputs {
        consortium: (*id, consortium.log.name()),
        period,
        members,
        agreement: version
            .as_ref()
            .map(|v| (v.body.title.as_str(), v.body.terms.answer_within_days)),
        figures,
        previous,
        staff: staff_totals(library, id, period)?,
        signatures_before,
        signatures: consortia.evaluation_signatures(id, &period)?,
    };
    Ok(jeval::report(&inputs))
}

/// A text from a form or a terminal as documents keep it: line breaks as `\n`.
fn lines(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// Signs the report of `period` as it stands here, with notes, decisions and the
/// outcomes of the decisions before; when `seen` is given, only if the report's digest is
/// still that (the figures the librarian read).
pub fn sign(
    library: &Library,
    id: &Hash32,
    period: Period,
    seen: Option<Hash32>,
    notes: String,
    decisions: Vec<Decision>,
    outcomes: Vec<Outcome>,
) -> Result<(Report, Signed<EvaluationSignature>), LibraryError> {
    let report = report(library, id, period)?;
    if seen.is_some_and(|d| d != report.digest()) {
        return Err(EvaluationError::Invalid(
            "the figures changed since the report was shown (a member sent figures): \
             read the report again before signing"
                .into(),
        )
        .into());
    }
    let notes = lines(&notes);
    let decisions = decisions
        .into_iter()
        .map(|d| Decision {
            what: lines(&d.what),
            who: lines(&d.who),
            ..d
        })
        .collect();
    let outcomes = outcomes
        .into_iter()
        .map(|o| Outcome {
            note: lines(&o.note),
            ..o
        })
        .collect();
    let signature = library.consortia().publish_evaluation(
        id,
        EvaluationSignature {
            consortium: *id,
            period,
            digest: report.digest(),
            notes,
            decisions,
            outcomes,
            time_ms: library.now_ms(),
        },
    )?;
    Ok((report, signature))
}

/// Who signed the report as it stands (their signatures over its very figures), and who
/// signed other figures for the period.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Signatures {
    /// Over these figures: (library key, name, when, notes, decisions).
    pub matching: Vec<SignatureView>,
    /// Over other figures (a figure changed since they signed).
    pub other: Vec<SignatureView>,
}

/// A signature as shown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignatureView {
    /// The signature's id.
    pub id: Hash32,
    /// Who.
    pub library: String,
    /// Its name.
    pub name: String,
    /// When.
    pub when: String,
    /// Its notes.
    pub notes: String,
    /// Its decisions.
    pub decisions: Vec<Decision>,
}

/// The signatures of `report`'s period, split by whether they are over its figures.
pub fn signatures(library: &Library, report: &Report) -> Result<Signatures, LibraryError> {
    let all = library
        .consortia()
        .evaluation_signatures(&report.consortium, &report.period)?;
    let matching: Vec<Hash32> = report.verified_by(&all).iter().map(|s| s.id()).collect();
    let names = library.library_names();
    let mut out = Signatures::default();
    for s in &all {
        let view = SignatureView {
            id: s.id(),
            library: s.author.to_hex(),
            name: names
                .get(&s.author)
                .cloned()
                .unwrap_or_else(|| s.author.fingerprint()),
            when: crate::staff::show_time(s.body.time_ms),
            notes: s.body.notes.clone(),
            decisions: s.body.decisions.clone(),
        };
        if matching.contains(&s.id()) {
            out.matching.push(view);
        } else {
            out.other.push(view);
        }
    }
    Ok(out)
}

fn opt<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// The report as CSV: one row per member, then the consortium's totals.
pub fn csv(report: &Report) -> String {
    let mut out = csv::Writer::from_writer(Vec::new());
    let _ = out.write_record([
        "library",
        "records",
        "growth",
        "added",
        "corrected",
        "titles",
        "unique_titles",
        "requests_received",
        "lent",
        "borrowed",
        "fill_rate_percent",
        "median_days_to_ship",
        "answered_late",
        "searches",
        "searches_empty",
        "planned",
        "duplicates_avoided",
        "trainings_held",
        "help_answers_given",
        "visits",
        "registered_members",
        "opening_days",
        "staff",
    ]);
    for row in &report.members {
        let f = row.figures.as_ref();
        let n = |get: fn(&MemberFigures) -> u32| opt(f.map(get));
        let _ = out.write_record([
            row.name.clone(),
            n(|f| f.records),
            opt(row.growth),
            n(|f| f.added),
            n(|f| f.corrected),
            n(|f| f.titles),
            n(|f| f.unique_titles),
            n(|f| f.requests_received),
            n(|f| f.lent),
            n(|f| f.borrowed),
            opt(row.fill_rate),
            opt(f
                .and_then(|f| f.days_to_ship_tenths)
                .map(|t| f64::from(t) / 10.0)),
            n(|f| f.answered_late),
            n(|f| f.searches),
            n(|f| f.searches_empty),
            n(|f| f.planned),
            n(|f| f.duplicates_avoided),
            row.trainings_held.to_string(),
            row.answers_given.to_string(),
            opt(f.and_then(|f| f.hand.visits)),
            opt(f.and_then(|f| f.hand.registered_members)),
            opt(f.and_then(|f| f.hand.opening_days)),
            opt(f.and_then(|f| f.hand.staff)),
        ]);
    }
    let t = &report.totals;
    let _ = out.write_record([
        "TOTAL".to_string(),
        t.records.to_string(),
        String::new(),
        t.added.to_string(),
        t.corrected.to_string(),
        String::new(),
        t.unique_titles.to_string(),
        t.requests_received.to_string(),
        t.lent.to_string(),
        t.lent.to_string(),
        opt(t.fill_rate),
        String::new(),
        t.answered_late.to_string(),
        t.searches.to_string(),
        t.searches_empty.to_string(),
        t.planned.to_string(),
        t.duplicates_avoided.to_string(),
        report.staff.trainings_held.to_string(),
        report.staff.help_answered.to_string(),
        t.visits.to_string(),
        t.registered_members.to_string(),
        String::new(),
        String::new(),
    ]);
    String::from_utf8(out.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// One member's Perpusnas literacy-index (IPLM) fields that Jalin can fill, for a
/// period: the elements of "Unsur Pembangunan Literasi Masyarakat" (UPLM) a library
/// reports, from its signed figures. Null where the figure is not known.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Iplm {
    /// The library (name and code).
    pub perpustakaan: String,
    /// The period's first and last day.
    pub periode: String,
    /// UPLM 2, collection: titles.
    pub koleksi_judul: Option<u32>,
    /// UPLM 2, collection: records (copies are not counted by every member's catalog).
    pub koleksi_cantuman: Option<u32>,
    /// UPLM 3, staff.
    pub tenaga_perpustakaan: Option<u32>,
    /// UPLM 4, visits in the period.
    pub kunjungan: Option<u32>,
    /// UPLM 4, visits per opening day.
    pub kunjungan_per_hari: Option<f64>,
    /// UPLM 6, people who attended the trainings it held.
    pub kegiatan_peserta: Option<u32>,
    /// UPLM 7, registered members.
    pub anggota: Option<u32>,
}

/// The IPLM fields of each member in `report`.
pub fn iplm(report: &Report) -> Vec<Iplm> {
    report
        .members
        .iter()
        .map(|row| {
            let f = row.figures.as_ref();
            Iplm {
                perpustakaan: row.name.clone(),
                periode: show_period(&report.period),
                koleksi_judul: f.map(|f| f.titles),
                koleksi_cantuman: f.map(|f| f.records),
                tenaga_perpustakaan: f.and_then(|f| f.hand.staff),
                kunjungan: f.and_then(|f| f.hand.visits),
                kunjungan_per_hari: f.and_then(|f| {
                    let days = f.hand.opening_days.filter(|d| *d > 0)?;
                    Some((f64::from(f.hand.visits?) / f64::from(days) * 10.0).round() / 10.0)
                }),
                kegiatan_peserta: None,
                anggota: f.and_then(|f| f.hand.registered_members),
            }
        })
        .collect()
}

/// The report as JSON: the IPLM fields of each member, the report, its digest.
pub fn json(answer: &EvaluationAnswer) -> String {
    serde_json::to_string_pretty(&serde_json::json!({
        "iplm": iplm(&answer.report),
        "report": answer.report,
        "digest": answer.digest,
    }))
    .unwrap_or_default()
}

/// A request about the evaluation, from the CLI, the API or the pages.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum EvaluationRequest {
    /// The report of a period.
    Report {
        /// The consortium (default: the only one).
        #[serde(default)]
        consortium: Option<String>,
        /// The period (its number or a date in it; default: the last ended).
        #[serde(default)]
        period: Option<String>,
    },
    /// Compute and sign this library's figures for a period.
    Figures {
        /// The consortium.
        #[serde(default)]
        consortium: Option<String>,
        /// The period.
        #[serde(default)]
        period: Option<String>,
        /// Hand-entered figures.
        #[serde(default)]
        hand: HandInput,
    },
    /// Sign the report of a period.
    Sign {
        /// The consortium.
        #[serde(default)]
        consortium: Option<String>,
        /// The period.
        #[serde(default)]
        period: Option<String>,
        /// The digest of the report as read: refused if the figures changed since.
        #[serde(default)]
        seen: Option<Hash32>,
        /// Notes.
        #[serde(default)]
        notes: String,
        /// Decisions.
        #[serde(default)]
        decisions: Vec<Decision>,
        /// Outcomes of the decisions before.
        #[serde(default)]
        outcomes: Vec<Outcome>,
    },
}

/// The answer to an [`EvaluationRequest`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvaluationAnswer {
    /// What happened.
    pub message: String,
    /// The period's number (1 is the first).
    pub number: usize,
    /// The periods so far.
    pub periods: Vec<Period>,
    /// The report.
    pub report: Report,
    /// Its digest (what a signature is over).
    pub digest: Hash32,
    /// Its signatures.
    pub signatures: Signatures,
    /// How current each member's catalog is at this node: not part of the report (each
    /// node sees its own), by member as the report lists them.
    pub here: Vec<CatalogHere>,
}

/// How current a member's catalog is at this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogHere {
    /// The member (name and code).
    pub name: String,
    /// Its records held here.
    pub records: u64,
    /// When the last change of it arrived here (its own, for this library), as shown.
    pub last_change: Option<String>,
}

/// How current each member of `report` is at this node.
fn here(library: &Library, report: &Report) -> Result<Vec<CatalogHere>, LibraryError> {
    let synced = library.sync_status()?;
    // This library's own catalog changes here: its last day of activity.
    let own_change = library
        .activity()
        .last_change_before(library.now_ms().saturating_add(1))
        .map_err(crate::store::StoreError::from)?;
    Ok(report
        .members
        .iter()
        .map(|m| {
            let sync = synced.iter().find(|s| s.library_id == m.library);
            CatalogHere {
                name: m.name.clone(),
                records: sync.map_or(0, |s| s.records),
                last_change: sync
                    .and_then(|s| if s.own { own_change } else { s.last_change_ms })
                    .map(crate::staff::show_time),
            }
        })
        .collect())
}

/// Carries out a request.
pub fn execute(
    library: &Library,
    request: EvaluationRequest,
) -> Result<EvaluationAnswer, LibraryError> {
    let (consortium, period_spec) = match &request {
        EvaluationRequest::Report { consortium, period }
        | EvaluationRequest::Figures {
            consortium, period, ..
        }
        | EvaluationRequest::Sign {
            consortium, period, ..
        } => (consortium.clone(), period.clone()),
    };
    let id = library.consortia().resolve(consortium.as_deref())?;
    let (number, period) = select(library, &id, period_spec.as_deref())?;
    let message = match request {
        EvaluationRequest::Report { .. } => format!(
            "The evaluation of period {number} ({}).",
            show_period(&period)
        ),
        EvaluationRequest::Figures { hand, .. } => {
            publish_figures(library, &id, period, hand)?;
            format!(
                "This library's figures for period {number} ({}) are signed and shared.",
                show_period(&period)
            )
        }
        EvaluationRequest::Sign {
            seen,
            notes,
            decisions,
            outcomes,
            ..
        } => {
            sign(library, &id, period, seen, notes, decisions, outcomes)?;
            format!(
                "The report of period {number} ({}) is signed by this library.",
                show_period(&period)
            )
        }
    };
    let report = report(library, &id, period)?;
    Ok(EvaluationAnswer {
        message,
        number,
        periods: periods(library, &id)?,
        digest: report.digest(),
        signatures: signatures(library, &report)?,
        here: here(library, &report)?,
        report,
    })
}
