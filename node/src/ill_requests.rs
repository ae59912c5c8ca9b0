//! One `IllRequest` type for every interlibrary-loan command, run the same way from the
//! CLI (in process, or through the running node's `POST /api/ill`) and the API. Each
//! request first moves the borrower's rotas on as the library's clock says.

use crate::ill::{Candidate, Loan, LoanError, NewRequest, Role};
use crate::library::{Library, LibraryError};
use jalin_protocol::consortium::tally::LoanTally;
use jalin_protocol::ill::{Action, Day, Status, Transaction};
use jalin_protocol::signing::LibraryId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An interlibrary-loan command.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum IllRequest {
    /// Ask the libraries holding a book to lend it.
    Request {
        /// The holding seen in the union catalog: `CODE:RECORD_ID`.
        record: String,
        /// The borrowing library's own reference to its patron (kept on this node).
        #[serde(default)]
        patron: Option<String>,
        /// `YYYY-MM-DD`.
        #[serde(default)]
        need_before: Option<String>,
        /// A note to the lenders.
        #[serde(default)]
        note: String,
        /// Only these libraries (code, fingerprint or key), in this order of preference.
        #[serde(default)]
        lenders: Vec<String>,
        /// Items asked for.
        #[serde(default = "one")]
        items: u16,
    },
    /// The loans held here.
    List {
        /// Only requests to this library (it lends).
        #[serde(default)]
        incoming: bool,
        /// Only this library's requests (it borrows).
        #[serde(default)]
        outgoing: bool,
        /// Only in this state (`requested`, `loaned`, ...).
        #[serde(default)]
        state: Option<String>,
    },
    /// One loan with its history.
    Show {
        /// Its id (or its first 8+ hex digits).
        id: String,
    },
    /// The lender's answer.
    Answer {
        /// The loan.
        id: String,
        /// Will supply (maybe on conditions).
        #[serde(default)]
        will_supply: bool,
        /// Cannot supply: why.
        #[serde(default)]
        unfilled: Option<String>,
        /// Loan conditions the borrower must accept.
        #[serde(default)]
        conditions: Option<String>,
    },
    /// The borrower's answer to loan conditions.
    Conditions {
        /// The loan.
        id: String,
        /// Accepted or declined.
        accept: bool,
    },
    /// A step with no arguments: `ship`, `receive`, `renew`, `return`, `checkin`, `lost`,
    /// `recall`, `overdue`.
    Step {
        /// The loan.
        id: String,
        /// Which.
        step: SimpleStep,
    },
    /// The borrower withdraws its request.
    Cancel {
        /// The loan.
        id: String,
        /// Why.
        #[serde(default)]
        reason: String,
    },
    /// The lender's answer to a cancellation.
    CancelAnswer {
        /// The loan.
        id: String,
        /// Whether it agrees.
        accept: bool,
    },
    /// A note to the other library.
    Notify {
        /// The loan.
        id: String,
        /// The note.
        note: String,
    },
    /// The loan as ISO 18626 messages, one per step.
    Export {
        /// The loan.
        id: String,
    },
    /// A step on a request from a system outside Jalin (the ISO 18626 gateway): the
    /// answer is posted to the agency.
    External {
        /// The requesting agency (`agencyIdValue`).
        agency: String,
        /// Its request id.
        request_id: String,
        /// One of [`crate::gateway::STEPS`].
        step: String,
        /// The conditions, the reason unfilled or the note.
        #[serde(default)]
        text: String,
    },
    /// This library's figures: requests made and received, filled, unfilled by reason,
    /// fill rate, turnaround, open and overdue loans, lent to borrowed.
    Report {
        /// `YYYY-MM-DD`: only requests made since.
        #[serde(default)]
        since: Option<String>,
    },
}

fn one() -> u16 {
    1
}

/// The steps that take no argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimpleStep {
    /// The lender sends the book (due after the agreement's loan period).
    Ship,
    /// The borrower has it.
    Receive,
    /// The borrower asks for more time.
    Renew,
    /// The borrower sends it back.
    Return,
    /// The lender has it back: the loan is closed.
    Checkin,
    /// The borrower lost it.
    Lost,
    /// The lender wants it back early.
    Recall,
    /// The lender says it is overdue.
    Overdue,
}

/// A loan as the CLI, the API and the pages show it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoanView {
    /// Its id (hex).
    pub id: String,
    /// `borrower` or `lender`: this library's role.
    pub role: String,
    /// The other library (fingerprint) and its name where known.
    pub peer: String,
    /// The other library's name.
    pub peer_name: Option<String>,
    /// Where it stands (`Status::name`).
    pub state: String,
    /// Title and author.
    pub title: String,
    /// The first author.
    pub author: String,
    /// The lender's record id.
    pub record_id: String,
    /// Items.
    pub items: u16,
    /// Due date, once lent.
    pub due: Option<String>,
    /// Past its due date now.
    pub overdue: bool,
    /// Renewals granted.
    pub renewals: u32,
    /// Conditions, and whether accepted.
    pub conditions: Option<String>,
    /// Why unfilled or cancelled.
    pub reason: Option<String>,
    /// Needed before.
    pub need_before: Option<String>,
    /// The patron reference (borrower only; this node's alone).
    pub patron: Option<String>,
    /// Every message: time, who, what, and why it was ignored if it was.
    pub history: Vec<String>,
    /// The same, as data for the pages to put in the reader's language.
    #[serde(default)]
    pub events: Vec<EventView>,
    /// What this library can do next (`IllRequest` steps by name).
    pub next: Vec<String>,
    /// The borrower's request ended here without a loan, and why (no library left to
    /// ask, or withdrawn).
    #[serde(default)]
    pub request_ended: Option<String>,
}

/// One message of a loan, for a page.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EventView {
    /// When (its sender's clock).
    pub at: String,
    /// `borrower` or `lender`.
    pub party: String,
    /// The action's ISO 18626 name (`Request` for the request).
    pub action: String,
    /// Why it was ignored, if it was.
    pub ignored: Option<String>,
}

/// What a command answers.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct IllAnswer {
    /// For people.
    pub message: String,
    /// The loans concerned.
    pub loans: Vec<LoanView>,
    /// Files made (an export): name and text.
    #[serde(default)]
    pub files: Vec<(String, String)>,
    /// The figures (a report).
    #[serde(default)]
    pub report: Option<crate::ill::Report>,
    /// Requests from systems outside Jalin (ISO 18626 gateway), in a list of incoming
    /// loans.
    #[serde(default)]
    pub external: Vec<ExternalView>,
}

/// A request from a system outside Jalin, as the CLI, the API and the pages show it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExternalView {
    /// The transaction as stored.
    #[serde(flatten)]
    pub request: crate::gateway::External,
    /// This library's status in the standard's words.
    pub state: String,
    /// The due date, once lent.
    pub due_date: Option<String>,
    /// Past its due date now.
    pub overdue: bool,
    /// Answers not confirmed by the agency yet.
    pub waiting: usize,
    /// The steps the librarian may take now (of [`crate::gateway::STEPS`]).
    pub next: Vec<String>,
}

impl ExternalView {
    fn of(
        request: crate::gateway::External,
        config: &crate::config::Iso18626Section,
        now_ms: u64,
    ) -> ExternalView {
        let today = Day::of_ms(now_ms);
        ExternalView {
            state: request.status_name().into(),
            due_date: request.due.map(|d| d.to_string()),
            overdue: request.due.is_some_and(|due| {
                due < today && ["Loaned", "Recalled"].contains(&request.status_name())
            }),
            waiting: request.waiting(),
            next: request
                .next_steps(today, config)
                .into_iter()
                .map(String::from)
                .collect(),
            request,
        }
    }
}

impl LoanView {
    fn of(
        loan: &Loan,
        names: &BTreeMap<LibraryId, String>,
        loans: &crate::ill::Loans,
        now_ms: u64,
    ) -> LoanView {
        let tx = &loan.transaction;
        // The last attempt of a rota that ended carries why it ended.
        let request_ended = loan
            .local
            .rota
            .as_ref()
            .and_then(|id| loans.rota(id).ok().flatten())
            .filter(|rota| rota.attempts.last() == Some(&tx.id))
            .and_then(|rota| rota.ended.clone());
        let party = match loan.local.role {
            Role::Borrower => jalin_protocol::ill::Party::Borrower,
            Role::Lender => jalin_protocol::ill::Party::Lender,
        };
        let who = |p: jalin_protocol::ill::Party| match p {
            jalin_protocol::ill::Party::Borrower => "borrower",
            jalin_protocol::ill::Party::Lender => "lender",
        };
        let events = tx
            .history
            .iter()
            .map(|e| EventView {
                at: jalin_protocol::consortium::agreement::format_time(e.at_ms),
                party: who(e.party).to_string(),
                action: e
                    .action
                    .as_ref()
                    .map_or("Request", |a| a.iso_name())
                    .to_string(),
                ignored: e.ignored.clone(),
            })
            .collect();
        let history = tx
            .history
            .iter()
            .map(|e| {
                let what = e.action.as_ref().map_or("Request", |a| a.iso_name());
                let mut line = format!(
                    "{} {} {what}",
                    jalin_protocol::consortium::agreement::format_time(e.at_ms),
                    who(e.party)
                );
                if let Some(why) = &e.ignored {
                    line.push_str(&format!(" (ignored: {why})"));
                }
                line
            })
            .collect();
        LoanView {
            id: tx.id.to_hex(),
            role: match loan.local.role {
                Role::Borrower => "borrower".into(),
                Role::Lender => "lender".into(),
            },
            peer: loan.local.peer.fingerprint(),
            peer_name: names.get(&loan.local.peer).cloned(),
            state: tx.status.name().into(),
            title: tx.request.title.clone(),
            author: tx.request.author.clone(),
            record_id: tx.request.record_id.clone(),
            items: tx.request.items,
            due: tx.due.map(|d| d.to_string()),
            overdue: tx.is_overdue(Day::of_ms(now_ms)),
            renewals: tx.renewals,
            conditions: tx.conditions.as_ref().map(|(c, answer)| match answer {
                None => format!("{c} (not answered)"),
                Some(true) => format!("{c} (accepted)"),
                Some(false) => format!("{c} (declined)"),
            }),
            reason: tx.reason.clone(),
            need_before: tx.request.need_before.map(|d| d.to_string()),
            patron: loan.local.patron.clone(),
            history,
            next: next_steps(tx, party, Day::of_ms(now_ms)),
            events,
            request_ended,
        }
    }
}

/// The steps `party` may take now, by the names the CLI and the pages use.
pub fn next_steps(tx: &Transaction, party: jalin_protocol::ill::Party, today: Day) -> Vec<String> {
    let candidates: [(&str, Action); 14] = [
        ("will_supply", Action::WillSupply { conditions: None }),
        (
            "unfilled",
            Action::Unfilled {
                reason: String::new(),
            },
        ),
        ("ship", Action::Loaned { due: Day(0) }),
        (
            "accept_conditions",
            Action::ConditionsAnswer { accepted: true },
        ),
        ("receive", Action::Received),
        ("renew", Action::Renew),
        ("return", Action::ShippedReturn),
        ("checkin", Action::LoanCompleted),
        (
            "cancel",
            Action::Cancel {
                reason: String::new(),
            },
        ),
        ("cancel_answer", Action::CancelAnswer { accepted: true }),
        ("lost", Action::Lost),
        ("recall", Action::Recalled),
        ("overdue", Action::Overdue),
        (
            "notify",
            Action::Notification {
                note: String::new(),
            },
        ),
    ];
    candidates
        .into_iter()
        .filter(|(_, action)| tx.check(party, action).is_ok())
        // "Overdue" is offered once the due date has passed, and not said twice.
        .filter(|(name, _)| *name != "overdue" || (tx.is_overdue(today) && !tx.overdue_notified))
        .map(|(name, _)| name.to_string())
        .collect()
}

/// The libraries that may be asked for the book `record` (`CODE:RECORD_ID`), in the
/// order to ask them: a copy shown available first, then the library that has lent
/// least relative to what it borrowed (its shared tally; for a library that has shared
/// none, this node's own loans with it), then the librarian's order (`lenders`, which
/// also limits who is asked).
fn candidates(
    library: &Library,
    record: &str,
    lenders: &[String],
) -> Result<(String, String, Vec<Candidate>), LibraryError> {
    let Some((code, record_id)) = record.split_once(':') else {
        return Err(LoanError::NoLender(format!(
            "{record:?}: name the holding as CODE:RECORD_ID, as the union catalog shows it"
        ))
        .into());
    };
    let consortia = library.consortia();
    let trust = consortia.trust();
    let find = |who: &str| -> Option<LibraryId> {
        trust
            .consortia()
            .find_map(|c| consortia.find_member(c, who.trim()).ok())
    };
    let owner = find(code).ok_or_else(|| {
        LoanError::NoLender(format!("no member of this library's consortia is {code:?}"))
    })?;
    let view = library
        .record_view(&owner.to_hex(), record_id.trim())?
        .ok_or_else(|| LibraryError::NotFound(record.to_string()))?;
    let (_, record, hit) = view;
    let (title, author) = record
        .map(|r| {
            (
                r.description.title.clone(),
                r.description
                    .names
                    .first()
                    .map(|n| n.name.clone())
                    .unwrap_or_default(),
            )
        })
        .unwrap_or_default();
    let wanted: Vec<LibraryId> = lenders.iter().filter_map(|l| find(l)).collect();
    if wanted.len() < lenders.len() {
        return Err(LoanError::NoLender(format!(
            "not every library named is a member of this library's consortia: {}",
            lenders.join(", ")
        ))
        .into());
    }
    // Each library's balance: its own shared tally (lent and borrowed over every
    // member), else what this node's own loans with it say.
    let tallies = consortia.loan_tallies();
    let ledger = library.loans().ledger()?;
    let mut out = Vec::new();
    for holding in hit.map(|h| h.holdings).unwrap_or_default() {
        if holding.own {
            continue;
        }
        let Ok(holder) = LibraryId::from_hex(&holding.library) else {
            continue;
        };
        if !wanted.is_empty() && !wanted.contains(&holder) {
            continue;
        }
        // A consortium of both whose agreement in force allows loans.
        let consortium = trust.consortia().copied().find(|c| {
            trust.shares(&holder, c)
                && consortia
                    .terms_in_force(c)
                    .ok()
                    .flatten()
                    .is_some_and(|t| t.interlibrary_loan)
        });
        let Some(consortium) = consortium else {
            continue;
        };
        let available =
            holding.copies.is_empty() || holding.copies.iter().any(|c| c.is_available());
        let fairness = match tallies.get(&holder) {
            Some((lent, borrowed)) => LoanTally::balance(*lent, *borrowed),
            None => {
                // What it lent this library over what it borrowed from it.
                let between = ledger.get(&holder).cloned().unwrap_or_default();
                LoanTally::balance(between.borrowed, between.lent)
            }
        };
        let order = wanted
            .iter()
            .position(|w| *w == holder)
            .unwrap_or(usize::MAX);
        out.push((
            (!available, fairness, order, holder),
            Candidate {
                library: holder,
                record_id: holding.record_id,
                consortium,
            },
        ));
    }
    out.sort_by_key(|(key, _)| *key);
    Ok((title, author, out.into_iter().map(|(_, c)| c).collect()))
}

/// Runs an interlibrary-loan command (blocking: the store).
pub fn execute(library: &Library, request: IllRequest) -> Result<IllAnswer, LibraryError> {
    let now = library.now_ms();
    let loans = library.loans();
    let consortia = library.consortia();
    loans.advance(consortia, now)?;
    let names = library.library_names();
    let view =
        |id: &jalin_protocol::consortium::document::Hash32| -> Result<LoanView, LibraryError> {
            Ok(LoanView::of(&loans.get(id)?, &names, loans, now))
        };
    let one = |message: String, id| -> Result<IllAnswer, LibraryError> {
        Ok(IllAnswer {
            message,
            loans: vec![view(&id)?],
            files: Vec::new(),
            report: None,
            external: Vec::new(),
        })
    };
    match request {
        IllRequest::Request {
            record,
            patron,
            need_before,
            note,
            lenders,
            items,
        } => {
            let need_before = match need_before.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(text) => Some(Day::parse(text).ok_or_else(|| {
                    LoanError::NoLender(format!("{text:?} is not a date: write YYYY-MM-DD"))
                })?),
            };
            let (title, author, candidates) = candidates(library, &record, &lenders)?;
            if candidates.is_empty() {
                return Err(LoanError::NoLender(
                    "no other library holding it shares a consortium with this one whose \
                     agreement in force allows interlibrary loan"
                        .into(),
                )
                .into());
            }
            let rota = loans.request(
                consortia,
                NewRequest {
                    title,
                    author,
                    lenders: candidates,
                    items,
                    need_before,
                    note,
                    patron,
                },
                now,
            )?;
            let first = rota
                .attempts
                .last()
                .copied()
                .ok_or_else(|| LoanError::NoLender(rota.skipped.join("; ")))?;
            let order: Vec<String> = rota
                .lenders
                .iter()
                .map(|c| {
                    names
                        .get(&c.library)
                        .cloned()
                        .unwrap_or_else(|| c.library.fingerprint())
                })
                .collect();
            one(
                format!(
                    "Requested from {} (then, if it cannot: {})",
                    order.first().cloned().unwrap_or_default(),
                    if order.len() > 1 {
                        order[1..].join(", ")
                    } else {
                        "no one else".into()
                    }
                ),
                first,
            )
        }
        IllRequest::List {
            incoming,
            outgoing,
            state,
        } => {
            if let Some(state) = &state {
                if !Status::ALL.iter().any(|s| s.name() == state) {
                    let names: Vec<&str> = Status::ALL.iter().map(|s| s.name()).collect();
                    return Err(LoanError::NotFound(format!(
                        "state {state:?}: one of {}",
                        names.join(", ")
                    ))
                    .into());
                }
            }
            let mut shown = Vec::new();
            for loan in loans.list()? {
                let role_ok = match loan.local.role {
                    Role::Lender => incoming || !outgoing,
                    Role::Borrower => outgoing || !incoming,
                };
                let state_ok = state
                    .as_deref()
                    .is_none_or(|s| s == loan.transaction.status.name());
                if role_ok && state_ok {
                    shown.push(LoanView::of(&loan, &names, loans, now));
                }
            }
            // Outside systems' requests are incoming; they have no Jalin state.
            let external = if outgoing && !incoming || state.is_some() {
                Vec::new()
            } else {
                let config = &library.data().config.iso18626;
                library
                    .gateway()
                    .transactions()
                    .map_err(crate::store::StoreError::from)?
                    .into_iter()
                    .map(|t| ExternalView::of(t, config, now))
                    .collect()
            };
            Ok(IllAnswer {
                message: format!("{} loan(s)", shown.len()),
                loans: shown,
                files: Vec::new(),
                report: None,
                external,
            })
        }
        IllRequest::Show { id } => {
            let id = loans.resolve(&id)?;
            one(String::new(), id)
        }
        IllRequest::Answer {
            id,
            will_supply,
            unfilled,
            conditions,
        } => {
            let id = loans.resolve(&id)?;
            let action = match (will_supply || conditions.is_some(), unfilled) {
                (false, Some(reason)) => Action::Unfilled { reason },
                (true, None) => Action::WillSupply { conditions },
                _ => {
                    return Err(LoanError::Ill(jalin_protocol::ill::IllError::NotNow {
                        action: "answer",
                        why: "answer either --will-supply (with --conditions if any) or --unfilled REASON".into(),
                    })
                    .into())
                }
            };
            loans.act(&id, action, now)?;
            one("Answered".into(), id)
        }
        IllRequest::Conditions { id, accept } => {
            let id = loans.resolve(&id)?;
            loans.act(&id, Action::ConditionsAnswer { accepted: accept }, now)?;
            one("Answered the conditions".into(), id)
        }
        IllRequest::Step { id, step } => {
            let id = loans.resolve(&id)?;
            match step {
                SimpleStep::Ship => {
                    loans.ship(consortia, &id, now)?;
                }
                other => {
                    let action = match other {
                        SimpleStep::Receive => Action::Received,
                        SimpleStep::Renew => Action::Renew,
                        SimpleStep::Return => Action::ShippedReturn,
                        SimpleStep::Checkin => Action::LoanCompleted,
                        SimpleStep::Lost => Action::Lost,
                        SimpleStep::Recall => Action::Recalled,
                        SimpleStep::Overdue => Action::Overdue,
                        SimpleStep::Ship => unreachable!("handled above"),
                    };
                    loans.act(&id, action, now)?;
                }
            }
            one("Done".into(), id)
        }
        IllRequest::Cancel { id, reason } => {
            let id = loans.resolve(&id)?;
            let reason = if reason.trim().is_empty() {
                "withdrawn by the borrowing library".to_string()
            } else {
                reason
            };
            loans.withdraw(&id, reason, now)?;
            one("Withdrawn".into(), id)
        }
        IllRequest::CancelAnswer { id, accept } => {
            let id = loans.resolve(&id)?;
            loans.act(&id, Action::CancelAnswer { accepted: accept }, now)?;
            one("Answered the cancellation".into(), id)
        }
        IllRequest::Notify { id, note } => {
            let id = loans.resolve(&id)?;
            loans.act(&id, Action::Notification { note }, now)?;
            one("Sent".into(), id)
        }
        IllRequest::Export { id } => {
            let id = loans.resolve(&id)?;
            let files = loans.export(&id)?;
            Ok(IllAnswer {
                message: format!("{} ISO 18626 message(s)", files.len()),
                loans: vec![view(&id)?],
                files,
                report: None,
                external: Vec::new(),
            })
        }
        IllRequest::External {
            agency,
            request_id,
            step,
            text,
        } => {
            let config = &library.data().config.iso18626;
            let parsed = crate::gateway::Step::parse(&step, &text)
                .ok_or_else(|| {
                    crate::gateway::StepError::NotNow(format!(
                        "{step:?} is not a step: one of {}",
                        crate::gateway::STEPS.join(", ")
                    ))
                })
                .map_err(LoanError::from)?;
            let done = library
                .gateway()
                .act(
                    config,
                    &library.agency_id(),
                    &agency,
                    &request_id,
                    &parsed,
                    now,
                )
                .map_err(LoanError::from)?;
            Ok(IllAnswer {
                message: format!("{} ({}): queued for {agency}", done.status_name(), step),
                loans: Vec::new(),
                files: Vec::new(),
                report: None,
                external: vec![ExternalView::of(done, config, now)],
            })
        }
        IllRequest::Report { since } => {
            let since = match since.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(text) => Some(Day::parse(text).ok_or_else(|| {
                    LoanError::NotFound(format!("{text:?} is not a date: write YYYY-MM-DD"))
                })?),
            };
            let report = loans.report(since, now)?;
            Ok(IllAnswer {
                message: String::new(),
                loans: Vec::new(),
                files: Vec::new(),
                report: Some(report),
                external: Vec::new(),
            })
        }
    }
}
