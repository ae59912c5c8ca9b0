//! The periodic evaluation (evaluasi berkala): for each period of the agreement in force,
//! every member signs its own figures (`JALIN-FIGURES:`, from its catalog, its loans, its
//! patrons' searches, its plans, and what only its librarian can count); the consortium's
//! report is a pure function of those documents and the consortium's others (staff
//! posts, the agreement), so every member's node computes the same report from the same
//! documents. A member signs the report (`JALIN-EVALUATION:`) over the digest of its
//! figures, with its notes and decisions: the figures that were discussed are the figures
//! that stay, and one changed figure no longer matches any signature.

use super::document::{DocError, Hash32, Kind, Signed};
use crate::signing::{Domain, LibraryId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Longest notes of a signature, in bytes.
pub const TEXT_MAX: usize = 2_000;
/// Longest decision, its "who", or an outcome's note, in bytes.
pub const SHORT_MAX: usize = 500;
/// Decisions (and outcomes) in one signature, at most.
pub const DECISIONS_MAX: usize = 20;
/// Periods listed, at most (20 years of monthly periods).
pub const PERIODS_MAX: usize = 240;
/// WIB (UTC+7), in which periods start at midnight.
const WIB_S: i64 = 7 * 3600;

/// The ms of midnight WIB on the first day of the month `months` after the month of
/// `ms`.
pub fn month_start(ms: u64, months: u32) -> u64 {
    let days = i64::try_from(ms / 1000).unwrap_or(0).saturating_add(WIB_S) / 86_400;
    let date = i32::try_from(days + 2_440_588)
        .ok()
        .and_then(|d| time::Date::from_julian_day(d).ok())
        .unwrap_or(time::Date::MIN);
    let index =
        i64::from(date.year()) * 12 + i64::from(u8::from(date.month())) - 1 + i64::from(months);
    let (year, month) = (index.div_euclid(12), index.rem_euclid(12) + 1);
    let first = i32::try_from(year)
        .ok()
        .zip(
            u8::try_from(month)
                .ok()
                .and_then(|m| time::Month::try_from(m).ok()),
        )
        .and_then(|(y, m)| time::Date::from_calendar_date(y, m, 1).ok());
    match first {
        Some(first) => {
            let days = i64::from(first.to_julian_day()) - 2_440_588;
            u64::try_from(days * 86_400 - WIB_S).map_or(0, |s| s.saturating_mul(1000))
        }
        None => u64::MAX / 2,
    }
}

/// The evaluation periods that have started by `now_ms`: from the first day (WIB) of the
/// month of `start_ms` (the agreement's first version), every `months` months.
pub fn periods(start_ms: u64, months: u32, now_ms: u64) -> Vec<Period> {
    let months = months.clamp(1, 60);
    let mut out = Vec::new();
    for n in 0..PERIODS_MAX as u32 {
        let from_ms = month_start(start_ms, n * months);
        if from_ms > now_ms {
            break;
        }
        out.push(Period {
            from_ms,
            to_ms: month_start(start_ms, (n + 1) * months),
        });
    }
    out
}

/// A period: from `from_ms` (included) to `to_ms` (excluded).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Period {
    /// Its start (ms since 1970, included).
    pub from_ms: u64,
    /// Its end (excluded).
    pub to_ms: u64,
}

/// What only the librarian can count (none of it is in Jalin): the Perpusnas
/// literacy-index fields a library fills in by hand.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandFigures {
    /// Visits in the period (ISO 2789 "library visits").
    pub visits: Option<u32>,
    /// Registered members (users) at the period's end.
    pub registered_members: Option<u32>,
    /// Days the library opened in the period.
    pub opening_days: Option<u32>,
    /// Staff (people) at the period's end.
    pub staff: Option<u32>,
}

/// One member's own figures for one period, signed by it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberFigures {
    /// The consortium.
    pub consortium: Hash32,
    /// The period.
    pub period: Period,
    /// Records in its catalog at the period's end (live, not deleted).
    pub records: u32,
    /// Records added in the period.
    pub added: u32,
    /// Records corrected (changed) in the period.
    pub corrected: u32,
    /// Records deleted in the period.
    pub deleted: u32,
    /// Titles (books, not records) in its catalog when the figures were made.
    pub titles: u32,
    /// Of those, titles no other member holds, as its node saw the union.
    pub unique_titles: u32,
    /// When its catalog last changed (ms since 1970), as of the figures.
    pub catalog_changed_ms: Option<u64>,
    /// Interlibrary-loan requests it made in the period.
    pub requests_made: u32,
    /// Requests it received in the period.
    pub requests_received: u32,
    /// Of those received, the ones it shipped: loans lent.
    pub lent: u32,
    /// Of those made, the ones shipped to it: loans borrowed.
    pub borrowed: u32,
    /// Median days from a request to shipping, for those it shipped, in tenths of a day.
    pub days_to_ship_tenths: Option<u32>,
    /// Requests received answered (shipped or refused) later than the agreement's
    /// `answer_within_days`, or not answered by the period's end.
    pub answered_late: u32,
    /// OPAC searches in the period.
    pub searches: u32,
    /// Of those, the ones that found nothing.
    pub searches_empty: u32,
    /// Titles it added to its purchase plan in the period.
    pub planned: u32,
    /// Titles it did not add once told a partner held or planned them: duplicates avoided.
    pub duplicates_avoided: u32,
    /// What only its librarian counts.
    pub hand: HandFigures,
    /// When made (ms since 1970): the newest of a member's figures for a period stands.
    pub time_ms: u64,
}

impl Kind for MemberFigures {
    const DOMAIN: Domain = Domain::EvaluationFigures;
    const LABEL: &'static str = "FIGURES";
}

/// A decision made at an evaluation: what to change, who does it, by when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// What.
    pub what: String,
    /// Who (a library's code, or a person).
    pub who: String,
    /// By when (ms since 1970).
    pub by_ms: u64,
}

/// What became of a decision of the period before.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The signature that made the decision.
    pub signature: Hash32,
    /// Its index among that signature's decisions.
    pub index: u32,
    /// Done.
    pub done: bool,
    /// How it went.
    pub note: String,
}

/// A member's signature on a period's report: over the digest of its figures, with its
/// notes, its decisions, and the outcomes of the decisions before.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvaluationSignature {
    /// The consortium.
    pub consortium: Hash32,
    /// The period.
    pub period: Period,
    /// [`Report::digest`] of the report signed.
    pub digest: Hash32,
    /// Notes.
    pub notes: String,
    /// Decisions.
    pub decisions: Vec<Decision>,
    /// Outcomes of the period before's decisions.
    pub outcomes: Vec<Outcome>,
    /// When signed.
    pub time_ms: u64,
}

impl Kind for EvaluationSignature {
    const DOMAIN: Domain = Domain::EvaluationSignature;
    const LABEL: &'static str = "EVALUATION";
}

fn text_ok(text: &str, max: usize) -> bool {
    text.len() <= max && !text.chars().any(|c| c.is_control() && c != '\n')
}

/// What both kinds of evaluation document check first: made for `consortium`, of a
/// period that ends after it starts.
fn check_of(found: Hash32, period: &Period, consortium: Hash32) -> Result<(), DocError> {
    if found != consortium {
        return Err(DocError::WrongConsortium {
            expected: consortium,
            found,
        });
    }
    if period.from_ms >= period.to_ms {
        return Err(DocError::Invalid("a period ends after it starts".into()));
    }
    Ok(())
}

impl MemberFigures {
    /// Checks the signature and content, and that it is of `consortium`.
    pub fn check(doc: &Signed<MemberFigures>, consortium: Hash32) -> Result<(), DocError> {
        doc.verify()?;
        let b = &doc.body;
        check_of(b.consortium, &b.period, consortium)?;
        if b.unique_titles > b.titles
            || b.lent > b.requests_received
            || b.borrowed > b.requests_made
            || b.answered_late > b.requests_received
            || b.searches_empty > b.searches
        {
            return Err(DocError::Invalid(
                "figures that cannot be: a part larger than its whole".into(),
            ));
        }
        Ok(())
    }
}

impl EvaluationSignature {
    /// Checks the signature and content, and that it is of `consortium`.
    pub fn check(doc: &Signed<EvaluationSignature>, consortium: Hash32) -> Result<(), DocError> {
        doc.verify()?;
        let b = &doc.body;
        check_of(b.consortium, &b.period, consortium)?;
        if !text_ok(&b.notes, TEXT_MAX)
            || b.decisions.len() > DECISIONS_MAX
            || b.outcomes.len() > DECISIONS_MAX
            || b.decisions.iter().any(|d| {
                d.what.trim().is_empty()
                    || !text_ok(&d.what, SHORT_MAX)
                    || !text_ok(&d.who, SHORT_MAX)
            })
            || b.outcomes.iter().any(|o| !text_ok(&o.note, SHORT_MAX))
        {
            return Err(DocError::Invalid(format!(
                "an evaluation's notes are at most {TEXT_MAX} bytes; at most {DECISIONS_MAX} \
                 decisions and outcomes, each at most {SHORT_MAX} bytes"
            )));
        }
        Ok(())
    }
}

/// The staff-development figures of a period (from the staff posts).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StaffTotals {
    /// Trainings starting in the period, not cancelled.
    pub trainings_planned: u32,
    /// Of those, held.
    pub trainings_held: u32,
    /// Of those, past and not recorded as held.
    pub trainings_not_held: u32,
    /// People who attended.
    pub attendance: u32,
    /// Help requests in the period.
    pub help_requests: u32,
    /// Of those, answered by a partner.
    pub help_answered: u32,
    /// Median hours to a first answer.
    pub median_hours_to_answer: Option<f64>,
    /// Trainings held, by organiser (key hex).
    pub held_by: BTreeMap<String, u32>,
    /// Answers given, by library (key hex).
    pub answers_by: BTreeMap<String, u32>,
}

/// One member's row of a report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberRow {
    /// Its key (hex).
    pub library: String,
    /// Its name and code.
    pub name: String,
    /// Its figures, if it gave them for the period.
    pub figures: Option<MemberFigures>,
    /// Records at the period's end less records at its start, if known.
    pub growth: Option<i64>,
    /// Lent over requests received, in percent.
    pub fill_rate: Option<f64>,
    /// Empty searches over searches, in percent.
    pub empty_share: Option<f64>,
    /// Trainings it held.
    pub trainings_held: u32,
    /// Help answers it gave.
    pub answers_given: u32,
    /// Whether it signed the agreement in force.
    pub signed_agreement: bool,
}

/// The consortium's totals.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Members counted.
    pub members: u32,
    /// Members who gave their figures.
    pub reporting: u32,
    /// Records.
    pub records: u64,
    /// Added.
    pub added: u64,
    /// Corrected.
    pub corrected: u64,
    /// Titles held by one member only (the sum of the members' unique titles).
    pub unique_titles: u64,
    /// Loans lent (= borrowed, between members).
    pub lent: u64,
    /// Requests received.
    pub requests_received: u64,
    /// Lent over requests received, in percent.
    pub fill_rate: Option<f64>,
    /// Answered late.
    pub answered_late: u64,
    /// Searches.
    pub searches: u64,
    /// Empty searches.
    pub searches_empty: u64,
    /// Empty over all, in percent.
    pub empty_share: Option<f64>,
    /// Planned titles.
    pub planned: u64,
    /// Duplicates avoided.
    pub duplicates_avoided: u64,
    /// Visits (of members who counted them).
    pub visits: u64,
    /// Registered members.
    pub registered_members: u64,
}

/// Something the figures flag, to improve.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    /// What kind (`late_lender`, `stale_catalog`, `empty_searches`, `training_not_held`,
    /// `no_figures`).
    pub kind: String,
    /// Which library (key hex), if one.
    pub library: Option<String>,
    /// The figure behind it, in words.
    pub detail: String,
}

/// A decision of the period before, with what became of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionOutcome {
    /// Who decided (key hex).
    pub by: String,
    /// The signature it was made in.
    pub signature: Hash32,
    /// Its index there.
    pub index: u32,
    /// The decision.
    pub decision: Decision,
    /// What became of it, as the members said this period (newest first).
    pub outcomes: Vec<(String, bool, String)>,
}

/// A period's report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The consortium.
    pub consortium: Hash32,
    /// Its name.
    pub consortium_name: String,
    /// The period.
    pub period: Period,
    /// The agreement in force (title), if any.
    pub agreement: Option<String>,
    /// Each current member's row, by key.
    pub members: Vec<MemberRow>,
    /// The totals.
    pub totals: Totals,
    /// Staff development.
    pub staff: StaffTotals,
    /// The totals of the period before, where its figures are here.
    pub previous: Option<Totals>,
    /// What the figures flag.
    pub flags: Vec<Flag>,
    /// The decisions of the period before, with their outcomes.
    pub decisions_before: Vec<DecisionOutcome>,
}

/// What a report is computed from.
pub struct Inputs<'a> {
    /// The consortium, its name.
    pub consortium: (Hash32, &'a str),
    /// The period, and the one before.
    pub period: Period,
    /// The current members: key, name and code, whether they signed the agreement.
    pub members: Vec<(LibraryId, String, bool)>,
    /// The agreement in force: its title and `answer_within_days`.
    pub agreement: Option<(&'a str, u32)>,
    /// Each member's figures for this period.
    pub figures: BTreeMap<LibraryId, MemberFigures>,
    /// Each member's figures for the period before.
    pub previous: BTreeMap<LibraryId, MemberFigures>,
    /// Staff development in this period.
    pub staff: StaffTotals,
    /// The signatures of the period before (for its decisions) and of this one (for
    /// their outcomes).
    pub signatures_before: Vec<Signed<EvaluationSignature>>,
    /// This period's signatures.
    pub signatures: Vec<Signed<EvaluationSignature>>,
}

fn percent(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 * 1000.0 / whole as f64).round() / 10.0)
}

fn totals(members: usize, figures: &BTreeMap<LibraryId, MemberFigures>) -> Totals {
    let mut t = Totals {
        members: members as u32,
        reporting: figures.len() as u32,
        ..Totals::default()
    };
    for f in figures.values() {
        t.records += u64::from(f.records);
        t.added += u64::from(f.added);
        t.corrected += u64::from(f.corrected);
        t.unique_titles += u64::from(f.unique_titles);
        t.lent += u64::from(f.lent);
        t.requests_received += u64::from(f.requests_received);
        t.answered_late += u64::from(f.answered_late);
        t.searches += u64::from(f.searches);
        t.searches_empty += u64::from(f.searches_empty);
        t.planned += u64::from(f.planned);
        t.duplicates_avoided += u64::from(f.duplicates_avoided);
        t.visits += u64::from(f.hand.visits.unwrap_or(0));
        t.registered_members += u64::from(f.hand.registered_members.unwrap_or(0));
    }
    t.fill_rate = percent(t.lent, t.requests_received);
    t.empty_share = percent(t.searches_empty, t.searches);
    t
}

/// A catalog not changed for this long before the period's end is flagged (ms).
pub const STALE_MS: u64 = 90 * 86_400_000;
/// Empty searches over this share (percent, with at least 20 searches) are flagged.
pub const EMPTY_SHARE_FLAG: f64 = 30.0;

/// The report: a pure function of its inputs.
pub fn report(inputs: &Inputs<'_>) -> Report {
    let period = inputs.period;
    let members: Vec<MemberRow> = inputs
        .members
        .iter()
        .map(|(library, name, signed)| {
            let key = library.to_hex();
            let figures = inputs.figures.get(library).cloned();
            let growth = figures.as_ref().and_then(|f| {
                inputs
                    .previous
                    .get(library)
                    .map(|p| i64::from(f.records) - i64::from(p.records))
                    .or(Some(i64::from(f.added) - i64::from(f.deleted)))
            });
            MemberRow {
                fill_rate: figures
                    .as_ref()
                    .and_then(|f| percent(u64::from(f.lent), u64::from(f.requests_received))),
                empty_share: figures
                    .as_ref()
                    .and_then(|f| percent(u64::from(f.searches_empty), u64::from(f.searches))),
                trainings_held: inputs.staff.held_by.get(&key).copied().unwrap_or(0),
                answers_given: inputs.staff.answers_by.get(&key).copied().unwrap_or(0),
                signed_agreement: *signed,
                growth,
                figures,
                name: name.clone(),
                library: key,
            }
        })
        .collect();
    let mut flags = Vec::new();
    for row in &members {
        let Some(f) = &row.figures else {
            flags.push(Flag {
                kind: "no_figures".into(),
                library: Some(row.library.clone()),
                detail: format!("{} gave no figures for the period", row.name),
            });
            continue;
        };
        if f.answered_late > 0
            && u64::from(f.answered_late) * 2 >= u64::from(f.requests_received.max(1))
        {
            flags.push(Flag {
                kind: "late_lender".into(),
                library: Some(row.library.clone()),
                detail: format!(
                    "{} answered {} of {} requests late (agreement: within {} days)",
                    row.name,
                    f.answered_late,
                    f.requests_received,
                    inputs.agreement.map_or(0, |a| a.1)
                ),
            });
        }
        let stale = f
            .catalog_changed_ms
            .is_none_or(|at| at.saturating_add(STALE_MS) < period.to_ms);
        if stale {
            flags.push(Flag {
                kind: "stale_catalog".into(),
                library: Some(row.library.clone()),
                detail: format!("{}'s catalog had not changed for 90 days or more", row.name),
            });
        }
        if f.searches >= 20 && row.empty_share.is_some_and(|s| s > EMPTY_SHARE_FLAG) {
            flags.push(Flag {
                kind: "empty_searches".into(),
                library: Some(row.library.clone()),
                detail: format!(
                    "{} of {} searches at {} found nothing",
                    f.searches_empty, f.searches, row.name
                ),
            });
        }
    }
    if inputs.staff.trainings_not_held > 0 {
        flags.push(Flag {
            kind: "training_not_held".into(),
            library: None,
            detail: format!(
                "{} training(s) planned and not recorded as held",
                inputs.staff.trainings_not_held
            ),
        });
    }
    let mut decisions_before = Vec::new();
    for signature in &inputs.signatures_before {
        for (index, decision) in signature.body.decisions.iter().enumerate() {
            let sid = signature.id();
            let mut outcomes: Vec<(u64, String, bool, String)> = inputs
                .signatures
                .iter()
                .flat_map(|s| {
                    s.body
                        .outcomes
                        .iter()
                        .filter(|o| o.signature == sid && o.index as usize == index)
                        .map(|o| (s.body.time_ms, s.author.to_hex(), o.done, o.note.clone()))
                })
                .collect();
            outcomes.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            decisions_before.push(DecisionOutcome {
                by: signature.author.to_hex(),
                signature: sid,
                index: index as u32,
                decision: decision.clone(),
                outcomes: outcomes.into_iter().map(|(_, a, d, n)| (a, d, n)).collect(),
            });
        }
    }
    Report {
        consortium: inputs.consortium.0,
        consortium_name: inputs.consortium.1.to_string(),
        period,
        agreement: inputs.agreement.map(|a| a.0.to_string()),
        totals: totals(inputs.members.len(), &inputs.figures),
        previous: (!inputs.previous.is_empty())
            .then(|| totals(inputs.members.len(), &inputs.previous)),
        staff: inputs.staff.clone(),
        members,
        flags,
        decisions_before,
    }
}

impl Report {
    /// The digest a member signs: SHA-256 of the canonical (postcard) encoding of the
    /// report's figures and flags (maps in key order); the outcomes of the decisions
    /// before are not in it.
    pub fn digest(&self) -> Hash32 {
        // Everything but the outcomes of the decisions before, which this period's
        // signatures themselves carry.
        let bytes = postcard::to_allocvec(&(
            &self.consortium,
            &self.consortium_name,
            &self.period,
            &self.agreement,
            &self.members,
            &self.totals,
            &self.staff,
            &self.previous,
            &self.flags,
        ))
        .unwrap_or_default();
        let digest = Sha256::new()
            .chain_update(b"jalin/v1/evaluation-report\0")
            .chain_update(bytes)
            .finalize();
        Hash32(digest.into())
    }

    /// The signatures that are over this very report (valid, of its consortium and
    /// period, and its digest): who signed the figures as they stand.
    pub fn verified_by<'a>(
        &self,
        signatures: &'a [Signed<EvaluationSignature>],
    ) -> Vec<&'a Signed<EvaluationSignature>> {
        let digest = self.digest();
        signatures
            .iter()
            .filter(|s| {
                EvaluationSignature::check(s, self.consortium).is_ok()
                    && s.body.period == self.period
                    && s.body.digest == digest
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_start_on_the_first_of_a_month_at_midnight_wib() {
        // 2026-11-24 07:00 WIB.
        let t = 1_795_478_400_000;
        let nov = month_start(t, 0);
        // 2026-11-01 00:00 WIB is 2026-10-31 17:00 UTC.
        assert_eq!(nov, 1_793_466_000_000);
        assert_eq!(month_start(t, 2), 1_798_736_400_000, "2027-01-01 WIB");
        assert_eq!(month_start(t, 14), month_start(month_start(t, 12), 2));
        let all = periods(t, 6, t);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].to_ms, month_start(t, 6));
        assert_eq!(periods(t, 1, month_start(t, 3)).len(), 4);
        assert!(periods(t, 1, u64::MAX).len() <= PERIODS_MAX);
        // Far dates neither panic nor wrap.
        let _ = month_start(u64::MAX, u32::MAX);
    }
}
