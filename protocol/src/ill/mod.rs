//! Interlibrary loan between two members, in ISO 18626's vocabulary.
//!
//! A transaction is one borrowing library asking one lending library for one book. Its
//! messages are signed documents ([`IllMessage`], `JALIN-ILL:`): the borrower's
//! [`LoanRequest`] opens it (the transaction's id is that document's id), and every later
//! [`Step`] names the transaction and the messages its sender had seen (`after`), so the
//! messages form a graph both sides can order the same way.
//!
//! [`Transaction::fold`] computes the state from a set of messages: it orders them by
//! their links (a message after the ones it names; among messages ready at once, by the
//! sender's time, then by id), and applies each [`Action`] the state allows from its
//! sender; one the state does not allow is kept but ignored, with the reason. The state is
//! a function of the set alone, so both libraries agree once they hold the same messages,
//! whatever order they arrived in. A message whose predecessors are not all there waits.
//!
//! No patron is named in any message: the borrowing library keeps its own reference to
//! the patron beside the transaction, on its own node.

pub mod iso;

use crate::consortium::document::{Hash32, Kind, Signed};
use crate::signing::{Domain, LibraryId};
use crate::sync::{Bound, Message};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::collections::{BTreeMap, BTreeSet};

/// Messages one transaction may hold (a loan with many renewals and notes takes ~30).
pub const MESSAGES_MAX: usize = 256;
/// Predecessors one step may name.
pub const AFTER_MAX: usize = 8;
/// Characters of a note, a reason or loan conditions.
pub const TEXT_MAX: usize = 2_000;
/// Characters of a title or an author.
pub const TITLE_MAX: usize = 1_000;
/// Bytes of a record id.
pub const RECORD_ID_MAX: usize = 256;
/// Items one request may ask for, whatever the agreement says.
pub const ITEMS_MAX: u16 = 100;

/// Messages one push carries, at most.
pub const PUSH_MESSAGES_MAX: usize = 32;
/// Bytes of one message in a push (a message is a few hundred; its texts are bounded).
pub const MESSAGE_BYTES_MAX: usize = 16 * 1024;

/// Messages of transactions between two libraries, from one to the other, over
/// `/jalin/ill/1`: only ever between the two parties, never passed on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IllPush {
    /// Each message's canonical bytes (`Signed<IllMessage>`).
    pub messages: Vec<ByteBuf>,
}

/// The answer to a push: a receipt per message, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IllAck {
    /// One per message, in order.
    pub receipts: Vec<Receipt>,
}

/// What became of one message pushed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Receipt {
    /// Taken, or held already.
    Taken,
    /// Not taken. `retry`: not yet (its request has not arrived, say), so the sender
    /// keeps it; else never, so the sender drops it.
    Refused {
        /// Why, in words.
        reason: String,
        /// Whether to send it again later.
        retry: bool,
    },
}

impl Message for IllPush {
    fn check(&self) -> Result<(), Bound> {
        if self.messages.len() > PUSH_MESSAGES_MAX {
            return Err(Bound::TooManyMessages(self.messages.len()));
        }
        match self.messages.iter().find(|m| m.len() > MESSAGE_BYTES_MAX) {
            Some(long) => Err(Bound::LongMessage(long.len())),
            None => Ok(()),
        }
    }
}

impl Message for IllAck {
    fn check(&self) -> Result<(), Bound> {
        if self.receipts.len() > PUSH_MESSAGES_MAX {
            return Err(Bound::TooManyMessages(self.receipts.len()));
        }
        let long = self.receipts.iter().find_map(|r| match r {
            Receipt::Refused { reason, .. } if reason.len() > TEXT_MAX => Some(reason.len()),
            _ => None,
        });
        match long {
            Some(len) => Err(Bound::LongMessage(len)),
            None => Ok(()),
        }
    }
}

/// A day, as days since 1970-01-01 (UTC): due dates and "needed before".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Day(pub u32);

impl Day {
    /// The day of an instant (ms since 1970).
    pub fn of_ms(ms: u64) -> Day {
        Day(u32::try_from(ms / 86_400_000).unwrap_or(u32::MAX))
    }

    /// The first millisecond of the day.
    pub fn start_ms(self) -> u64 {
        u64::from(self.0) * 86_400_000
    }

    /// `days` later.
    pub fn plus(self, days: u32) -> Day {
        Day(self.0.saturating_add(days))
    }

    /// Parses `YYYY-MM-DD`.
    pub fn parse(text: &str) -> Option<Day> {
        let mut parts = text.trim().splitn(3, '-');
        let year: i64 = parts.next()?.parse().ok()?;
        let month: i64 = parts.next()?.parse().ok()?;
        let day: i64 = parts.next()?.parse().ok()?;
        if !(1970..=9999).contains(&year) || !(1..=12).contains(&month) || day < 1 {
            return None;
        }
        let days = days_from_civil(year, month, day);
        // 2023-02-30 is not a day: it must print back as itself.
        let parsed = Day(u32::try_from(days).ok()?);
        (parsed.to_string() == format!("{year:04}-{month:02}-{day:02}")).then_some(parsed)
    }

    /// Year, month and day.
    pub fn civil(self) -> (i64, i64, i64) {
        // Howard Hinnant's algorithm, days since 1970-01-01 to a civil date.
        let z = i64::from(self.0) + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        (yoe + era * 400 + i64::from(month <= 2), month, day)
    }
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl std::fmt::Display for Day {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (year, month, day) = self.civil();
        write!(f, "{year:04}-{month:02}-{day:02}")
    }
}

/// The borrower's request to one lender: the transaction's first message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoanRequest {
    /// The consortium whose agreement allows the loan.
    pub consortium: Hash32,
    /// The library asked.
    pub lender: LibraryId,
    /// The record asked for, in the lender's catalog.
    pub record_id: String,
    /// The title and author as the union catalog shows them, for the people handling it.
    pub title: String,
    /// The first author.
    pub author: String,
    /// Items asked for.
    pub items: u16,
    /// The day the patron needs it by, if any.
    pub need_before: Option<Day>,
    /// A note from the borrowing librarian (never a patron's name or number).
    pub note: String,
    /// When it was made (ms since 1970, the borrower's clock).
    pub at_ms: u64,
    /// Tells two requests for the same book made in the same millisecond apart.
    pub nonce: [u8; 16],
}

/// One step of a transaction after its request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The transaction (its request's id).
    pub transaction: Hash32,
    /// The messages of the transaction its sender held when it sent this one (the
    /// latest: those no other message it held names).
    pub after: Vec<Hash32>,
    /// When it was sent (ms since 1970, the sender's clock).
    pub at_ms: u64,
    /// What it says.
    pub action: Action,
}

/// What a step says: the lender's status changes and answers, and the borrower's
/// actions, as ISO 18626 names them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    // The supplying agency (lender).
    /// The request has arrived (`RequestReceived`).
    RequestReceived,
    /// The lender expects to supply it (`ExpectToSupply`).
    ExpectToSupply,
    /// The lender will supply it (`WillSupply`), maybe on conditions the borrower must
    /// accept first.
    WillSupply {
        /// Loan conditions (e.g. "baca di tempat saja"), if any.
        conditions: Option<String>,
    },
    /// The lender cannot supply it (`Unfilled`).
    Unfilled {
        /// Why (ISO 18626's reasonUnfilled, e.g. `NotOnShelf`, or words).
        reason: String,
    },
    /// Sent, lent until `due` (`Loaned`).
    Loaned {
        /// The due date.
        due: Day,
    },
    /// The answer to a renewal: a new due date, or none (refused).
    RenewAnswer {
        /// The new due date; `None`: not renewed.
        due: Option<Day>,
    },
    /// The loan is overdue (`Overdue`).
    Overdue,
    /// The lender wants it back before the due date (`Recalled`).
    Recalled,
    /// The answer to a cancellation.
    CancelAnswer {
        /// Whether the request is cancelled.
        accepted: bool,
    },
    /// The book is back, the loan is closed (`LoanCompleted`).
    LoanCompleted,
    // The requesting agency (borrower).
    /// The borrower's answer to loan conditions.
    ConditionsAnswer {
        /// Whether it accepts them.
        accepted: bool,
    },
    /// The book has arrived at the borrower (`Received`).
    Received,
    /// The borrower asks for a later due date (`Renew`).
    Renew,
    /// The book is on its way back (`ShippedReturn`).
    ShippedReturn,
    /// The borrower withdraws the request, before it is shipped (`Cancel`).
    Cancel {
        /// Why.
        reason: String,
    },
    /// The book is lost at the borrower's (`Lost`).
    Lost,
    // Either.
    /// A note to the other library (`Notification`).
    Notification {
        /// The note.
        note: String,
    },
}

/// Who may send an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Party {
    /// The borrowing (requesting) library.
    Borrower,
    /// The lending (supplying) library.
    Lender,
}

impl Action {
    /// Who sends it (`None`: either).
    pub fn sender(&self) -> Option<Party> {
        use Action::*;
        match self {
            RequestReceived
            | ExpectToSupply
            | WillSupply { .. }
            | Unfilled { .. }
            | Loaned { .. }
            | RenewAnswer { .. }
            | Overdue
            | Recalled
            | CancelAnswer { .. }
            | LoanCompleted => Some(Party::Lender),
            ConditionsAnswer { .. } | Received | Renew | ShippedReturn | Cancel { .. } | Lost => {
                Some(Party::Borrower)
            }
            Notification { .. } => None,
        }
    }

    /// Its name in ISO 18626 (a status of the supplying agency, or an action of the
    /// requesting agency).
    pub fn iso_name(&self) -> &'static str {
        use Action::*;
        match self {
            RequestReceived => "RequestReceived",
            ExpectToSupply => "ExpectToSupply",
            WillSupply { .. } => "WillSupply",
            Unfilled { .. } => "Unfilled",
            Loaned { .. } => "Loaned",
            RenewAnswer { .. } => "RenewResponse",
            Overdue => "Overdue",
            Recalled => "Recalled",
            CancelAnswer { .. } => "CancelResponse",
            LoanCompleted => "LoanCompleted",
            ConditionsAnswer { .. } => "ConditionsAnswer",
            Received => "Received",
            Renew => "Renew",
            ShippedReturn => "ShippedReturn",
            Cancel { .. } => "Cancel",
            Lost => "Lost",
            Notification { .. } => "Notification",
        }
    }

    fn texts(&self) -> Vec<&str> {
        match self {
            Action::WillSupply {
                conditions: Some(text),
            }
            | Action::Unfilled { reason: text }
            | Action::Cancel { reason: text }
            | Action::Notification { note: text } => vec![text.as_str()],
            _ => Vec::new(),
        }
    }
}

/// A message of a transaction: its request, or a later step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IllMessage {
    /// The borrower's request, which opens the transaction.
    Request(LoanRequest),
    /// A step of either library.
    Step(Step),
}

impl Kind for IllMessage {
    const DOMAIN: Domain = Domain::IllMessage;
    const LABEL: &'static str = "ILL";
}

impl IllMessage {
    /// The transaction it belongs to (`id`: the message's own id, for a request).
    pub fn transaction(&self, id: Hash32) -> Hash32 {
        match self {
            IllMessage::Request(_) => id,
            IllMessage::Step(step) => step.transaction,
        }
    }

    /// Checks the bounds of its fields (what a decoder cannot): text lengths, counts.
    pub fn check_bounds(&self) -> Result<(), IllError> {
        let long = |field: &'static str, text: &str, max: usize| {
            if text.chars().count() > max {
                Err(IllError::TooLong { field, max })
            } else {
                Ok(())
            }
        };
        match self {
            IllMessage::Request(r) => {
                if r.record_id.is_empty() || r.record_id.len() > RECORD_ID_MAX {
                    return Err(IllError::TooLong {
                        field: "record_id",
                        max: RECORD_ID_MAX,
                    });
                }
                long("title", &r.title, TITLE_MAX)?;
                long("author", &r.author, TITLE_MAX)?;
                long("note", &r.note, TEXT_MAX)?;
                if r.items == 0 || r.items > ITEMS_MAX {
                    return Err(IllError::Items {
                        items: u32::from(r.items),
                        max: u32::from(ITEMS_MAX),
                    });
                }
            }
            IllMessage::Step(s) => {
                if s.after.is_empty() || s.after.len() > AFTER_MAX {
                    return Err(IllError::After {
                        count: s.after.len(),
                    });
                }
                for text in s.action.texts() {
                    long("text", text, TEXT_MAX)?;
                }
            }
        }
        Ok(())
    }
}

/// What is wrong with a message of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IllError {
    /// A text past its limit.
    #[error("the {field} is longer than {max} characters")]
    TooLong {
        /// Which.
        field: &'static str,
        /// The limit.
        max: usize,
    },
    /// Items out of bounds.
    #[error("{items} items asked for: a request asks for 1 to {max}")]
    Items {
        /// Asked for.
        items: u32,
        /// The limit.
        max: u32,
    },
    /// A step that names no predecessor, or too many.
    #[error("a step names {count} earlier messages: 1 to 8")]
    After {
        /// How many.
        count: usize,
    },
    /// A message of another transaction.
    #[error("the message belongs to another transaction")]
    OtherTransaction,
    /// No request among the messages.
    #[error("the transaction's request is missing")]
    NoRequest,
    /// Signed by a library that is not the transaction's borrower or lender.
    #[error("signed by a library that is neither the borrower nor the lender of this request")]
    NotAParty,
    /// Too many messages.
    #[error("the transaction holds {MESSAGES_MAX} messages already")]
    TooMany,
    /// An action its sender may not take, or not now.
    #[error("{action} cannot be sent now ({why})")]
    NotNow {
        /// The action (its ISO 18626 name).
        action: &'static str,
        /// Why, in words.
        why: String,
    },
}

/// A transaction's state, in ISO 18626's terms where the standard has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Status {
    /// Sent; the lender has not answered.
    Requested,
    /// `RequestReceived`.
    RequestReceived,
    /// `ExpectToSupply`.
    ExpectToSupply,
    /// `WillSupply` (conditions, if any, in [`Transaction::conditions`]).
    WillSupply,
    /// `Loaned`: shipped, not yet at the borrower.
    Loaned,
    /// At the borrower (its `Received`).
    Received,
    /// On its way back (the borrower's `ShippedReturn`).
    ShippedReturn,
    /// Lost at the borrower's.
    Lost,
    /// `LoanCompleted`: closed.
    LoanCompleted,
    /// `Unfilled`: the lender cannot supply it (closed).
    Unfilled,
    /// `Cancelled` (closed).
    Cancelled,
}

impl Status {
    /// Whether the transaction is closed.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::LoanCompleted | Status::Unfilled | Status::Cancelled
        )
    }

    /// Whether a book is out on loan (shipped and not closed).
    pub fn is_on_loan(self) -> bool {
        matches!(
            self,
            Status::Loaned | Status::Received | Status::ShippedReturn | Status::Lost
        )
    }

    /// A stable name (the CLI's `--state`, the API's, the pages' translation keys).
    pub fn name(self) -> &'static str {
        match self {
            Status::Requested => "requested",
            Status::RequestReceived => "request_received",
            Status::ExpectToSupply => "expect_to_supply",
            Status::WillSupply => "will_supply",
            Status::Loaned => "loaned",
            Status::Received => "received",
            Status::ShippedReturn => "shipped_return",
            Status::Lost => "lost",
            Status::LoanCompleted => "loan_completed",
            Status::Unfilled => "unfilled",
            Status::Cancelled => "cancelled",
        }
    }

    /// Every status, in the order of a loan.
    pub const ALL: [Status; 11] = [
        Status::Requested,
        Status::RequestReceived,
        Status::ExpectToSupply,
        Status::WillSupply,
        Status::Loaned,
        Status::Received,
        Status::ShippedReturn,
        Status::Lost,
        Status::LoanCompleted,
        Status::Unfilled,
        Status::Cancelled,
    ];
}

/// When things happened (the senders' clocks, ms since 1970).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Times {
    /// The request was made.
    pub requested_ms: u64,
    /// The lender first answered (any status).
    pub answered_ms: Option<u64>,
    /// The lender shipped it (`Loaned`).
    pub shipped_ms: Option<u64>,
    /// It arrived at the borrower.
    pub received_ms: Option<u64>,
    /// The borrower sent it back.
    pub returned_ms: Option<u64>,
    /// The transaction closed.
    pub closed_ms: Option<u64>,
}

/// One message as the fold took it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The message's id.
    pub id: Hash32,
    /// Who sent it.
    pub party: Party,
    /// When (its sender's clock).
    pub at_ms: u64,
    /// What it said (`None`: the request).
    pub action: Option<Action>,
    /// Why it was ignored, if it was.
    pub ignored: Option<String>,
}

/// A transaction as computed from its messages (kept beside them by a node, so reading
/// it back needs no fold).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    /// Its id (the request's).
    pub id: Hash32,
    /// The borrowing library.
    pub borrower: LibraryId,
    /// The request.
    pub request: LoanRequest,
    /// Where it stands.
    pub status: Status,
    /// Loan conditions the lender set, and whether the borrower accepted them (`None`:
    /// not answered yet).
    pub conditions: Option<(String, Option<bool>)>,
    /// The due date, once lent.
    pub due: Option<Day>,
    /// Renewals granted.
    pub renewals: u32,
    /// A renewal asked for and not answered.
    pub renew_pending: bool,
    /// A cancellation asked for and not answered.
    pub cancel_pending: bool,
    /// The lender recalled it.
    pub recalled: bool,
    /// The lender said it is overdue.
    pub overdue_notified: bool,
    /// Why it was unfilled or cancelled.
    pub reason: Option<String>,
    /// When things happened.
    pub times: Times,
    /// Every message taken, in the fold's order (the request first).
    pub history: Vec<Entry>,
    /// Messages held whose predecessors are not all here yet.
    pub waiting: Vec<Hash32>,
    /// The latest messages: those no other message names (what the next step follows).
    pub heads: Vec<Hash32>,
}

impl Transaction {
    /// The transaction of `messages` (any order, duplicates allowed): the one request
    /// among them and the steps that name it. Messages of other transactions, steps not
    /// signed by either party and duplicates are left out; `NoRequest` without a request.
    pub fn fold(messages: &[Signed<IllMessage>]) -> Result<Transaction, IllError> {
        let (request_id, request, borrower) = messages
            .iter()
            .find_map(|m| match &m.body {
                IllMessage::Request(r) => Some((m.id(), r.clone(), m.author)),
                IllMessage::Step(_) => None,
            })
            .ok_or(IllError::NoRequest)?;
        let mut tx = Transaction {
            id: request_id,
            borrower,
            status: Status::Requested,
            conditions: None,
            due: None,
            renewals: 0,
            renew_pending: false,
            cancel_pending: false,
            recalled: false,
            overdue_notified: false,
            reason: None,
            times: Times {
                requested_ms: request.at_ms,
                ..Times::default()
            },
            history: vec![Entry {
                id: request_id,
                party: Party::Borrower,
                at_ms: request.at_ms,
                action: None,
                ignored: None,
            }],
            waiting: Vec::new(),
            heads: Vec::new(),
            request,
        };
        // The steps of this transaction by id, each once, from a party.
        let mut steps: BTreeMap<Hash32, (Party, &Step)> = BTreeMap::new();
        for message in messages {
            let IllMessage::Step(step) = &message.body else {
                continue;
            };
            if step.transaction != request_id || steps.len() >= MESSAGES_MAX {
                continue;
            }
            if let Some(party) = tx.party_of(&message.author) {
                steps.insert(message.id(), (party, step));
            }
        }
        // Kahn's order over the links: ready messages by (time, id).
        let known: BTreeSet<Hash32> = steps.keys().copied().chain([request_id]).collect();
        let mut missing: BTreeMap<Hash32, usize> = BTreeMap::new();
        let mut followers: BTreeMap<Hash32, Vec<Hash32>> = BTreeMap::new();
        let mut ready: BTreeSet<(u64, Hash32)> = BTreeSet::new();
        let mut never = BTreeSet::new();
        for (id, (_, step)) in &steps {
            let after: BTreeSet<&Hash32> = step.after.iter().collect();
            if after.iter().any(|a| !known.contains(*a)) || after.contains(id) {
                never.insert(*id);
                continue;
            }
            let waiting_on = after.iter().filter(|a| ***a != request_id).count();
            for a in after {
                followers.entry(*a).or_default().push(*id);
            }
            if waiting_on == 0 {
                ready.insert((step.at_ms, *id));
            } else {
                missing.insert(*id, waiting_on);
            }
        }
        let mut done = BTreeSet::from([request_id]);
        while let Some((_, id)) = ready.pop_first() {
            let (party, step) = steps[&id];
            tx.take(id, party, step);
            done.insert(id);
            for next in followers.get(&id).into_iter().flatten() {
                if let Some(count) = missing.get_mut(next) {
                    *count -= 1;
                    if *count == 0 {
                        missing.remove(next);
                        ready.insert((steps[next].1.at_ms, *next));
                    }
                }
            }
        }
        // Those left: a predecessor missing, or (from a forger of both keys only) a cycle.
        tx.waiting = steps
            .keys()
            .filter(|id| !done.contains(id))
            .copied()
            .collect();
        let named: BTreeSet<Hash32> = done
            .iter()
            .filter_map(|id| steps.get(id))
            .flat_map(|(_, step)| step.after.iter().copied())
            .collect();
        tx.heads = done
            .iter()
            .filter(|id| !named.contains(id))
            .copied()
            .collect();
        Ok(tx)
    }

    /// The borrower's or the lender's role of a library (`None`: neither).
    pub fn party_of(&self, library: &LibraryId) -> Option<Party> {
        if *library == self.borrower {
            Some(Party::Borrower)
        } else if *library == self.request.lender {
            Some(Party::Lender)
        } else {
            None
        }
    }

    /// Whether `party` may send `action` now; the reason when not.
    pub fn check(&self, party: Party, action: &Action) -> Result<(), IllError> {
        let not_now = |why: &str| {
            Err(IllError::NotNow {
                action: action.iso_name(),
                why: why.to_string(),
            })
        };
        if action.sender().is_some_and(|sender| sender != party) {
            return not_now(match party {
                Party::Borrower => "only the lending library sends it",
                Party::Lender => "only the borrowing library sends it",
            });
        }
        if self.status.is_final() {
            return not_now("the transaction is closed");
        }
        use Status::*;
        let before_shipping = matches!(
            self.status,
            Requested | RequestReceived | ExpectToSupply | WillSupply
        );
        let out = matches!(self.status, Loaned | Received);
        let conditions_open = matches!(self.conditions, Some((_, None)));
        match action {
            Action::RequestReceived if self.status != Requested => {
                not_now("the request was answered already")
            }
            Action::ExpectToSupply if !matches!(self.status, Requested | RequestReceived) => {
                not_now("the request was answered already")
            }
            Action::WillSupply { .. } if !before_shipping || self.status == WillSupply => {
                not_now("the lender has said it will supply, or shipped it, already")
            }
            Action::Unfilled { .. } if !before_shipping => not_now("the book was shipped"),
            Action::Loaned { .. } if !before_shipping => not_now("the book was shipped already"),
            Action::Loaned { .. } if conditions_open => {
                not_now("the borrower has not answered the loan conditions")
            }
            Action::Loaned { .. } if matches!(self.conditions, Some((_, Some(false)))) => {
                not_now("the borrower declined the loan conditions")
            }
            Action::RenewAnswer { .. } if !self.renew_pending => {
                not_now("no renewal was asked for")
            }
            Action::Overdue | Action::Recalled if !out => not_now("the book is not out on loan"),
            Action::CancelAnswer { .. } if !self.cancel_pending => {
                not_now("no cancellation was asked for")
            }
            Action::LoanCompleted if !matches!(self.status, ShippedReturn | Lost) => {
                not_now("the book has not been sent back")
            }
            Action::ConditionsAnswer { .. } if !conditions_open => {
                not_now("there are no loan conditions to answer")
            }
            Action::Received if self.status != Loaned => not_now("the book was not shipped"),
            Action::Renew if !out => not_now("the book is not out on loan"),
            Action::Renew if self.renew_pending => not_now("a renewal is being asked already"),
            Action::Renew if self.recalled => not_now("the lender recalled the book"),
            Action::ShippedReturn | Action::Lost if !out => not_now("the book is not out on loan"),
            Action::Cancel { .. } if !before_shipping => {
                not_now("the book was shipped: send it back instead")
            }
            Action::Cancel { .. } if self.cancel_pending => {
                not_now("a cancellation is being asked already")
            }
            _ => Ok(()),
        }
    }

    /// Takes one step in the fold's order: applied, or kept as ignored with the reason.
    fn take(&mut self, id: Hash32, party: Party, step: &Step) {
        let mut entry = Entry {
            id,
            party,
            at_ms: step.at_ms,
            action: Some(step.action.clone()),
            ignored: None,
        };
        match self.check(party, &step.action) {
            Ok(()) => self.apply(party, step),
            Err(error) => entry.ignored = Some(error.to_string()),
        }
        self.history.push(entry);
    }

    fn apply(&mut self, party: Party, step: &Step) {
        let at = step.at_ms;
        if party == Party::Lender && self.times.answered_ms.is_none() {
            self.times.answered_ms = Some(at);
        }
        match &step.action {
            Action::RequestReceived => self.status = Status::RequestReceived,
            Action::ExpectToSupply => self.status = Status::ExpectToSupply,
            Action::WillSupply { conditions } => {
                self.status = Status::WillSupply;
                self.conditions = conditions.clone().map(|c| (c, None));
            }
            Action::Unfilled { reason } => {
                self.status = Status::Unfilled;
                self.reason = Some(reason.clone());
                self.close(at);
            }
            Action::Loaned { due } => {
                self.status = Status::Loaned;
                self.due = Some(*due);
                self.cancel_pending = false;
                self.times.shipped_ms = Some(at);
            }
            Action::RenewAnswer { due } => {
                self.renew_pending = false;
                if let Some(due) = due {
                    self.due = Some(*due);
                    self.renewals += 1;
                }
            }
            Action::Overdue => self.overdue_notified = true,
            Action::Recalled => self.recalled = true,
            Action::CancelAnswer { accepted } => {
                self.cancel_pending = false;
                if *accepted {
                    self.status = Status::Cancelled;
                    self.close(at);
                } else {
                    self.reason = None;
                }
            }
            Action::LoanCompleted => {
                self.status = Status::LoanCompleted;
                self.close(at);
            }
            Action::ConditionsAnswer { accepted } => {
                if let Some((_, answer)) = &mut self.conditions {
                    *answer = Some(*accepted);
                }
                if !accepted {
                    self.status = Status::Cancelled;
                    self.reason = Some("the loan conditions were declined".into());
                    self.close(at);
                }
            }
            Action::Received => {
                self.status = Status::Received;
                self.times.received_ms = Some(at);
            }
            Action::Renew => self.renew_pending = true,
            Action::ShippedReturn => {
                self.status = Status::ShippedReturn;
                self.renew_pending = false;
                self.times.returned_ms = Some(at);
            }
            Action::Cancel { reason } => {
                self.reason = Some(reason.clone());
                if matches!(self.status, Status::Requested | Status::RequestReceived) {
                    // No librarian's answer yet: cancelled at once (the lender may be
                    // silent for good); after one, the lender is asked to agree.
                    self.status = Status::Cancelled;
                    self.close(at);
                } else {
                    self.cancel_pending = true;
                }
            }
            Action::Lost => {
                self.status = Status::Lost;
                self.renew_pending = false;
            }
            Action::Notification { .. } => {}
        }
    }

    fn close(&mut self, at_ms: u64) {
        self.times.closed_ms = Some(at_ms);
        self.renew_pending = false;
        self.cancel_pending = false;
    }

    /// Whether the loan is past its due date on `today` (and the book not back).
    pub fn is_overdue(&self, today: Day) -> bool {
        matches!(self.status, Status::Loaned | Status::Received)
            && self.due.is_some_and(|due| today > due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn id_of(key: &SigningKey) -> LibraryId {
        LibraryId::from_key(&key.verifying_key())
    }

    fn request(borrower: &SigningKey, lender: &SigningKey) -> Signed<IllMessage> {
        Signed::sign(
            borrower,
            IllMessage::Request(LoanRequest {
                consortium: Hash32([9; 32]),
                lender: id_of(lender),
                record_id: "00281477".into(),
                title: "Laskar pelangi".into(),
                author: "Andrea Hirata".into(),
                items: 1,
                need_before: Day::parse("2026-12-31"),
                note: String::new(),
                at_ms: 1_000,
                nonce: [1; 16],
            }),
        )
    }

    /// A step of `key` after everything in `held`.
    fn step(
        key: &SigningKey,
        held: &[Signed<IllMessage>],
        at_ms: u64,
        action: Action,
    ) -> Signed<IllMessage> {
        let tx = Transaction::fold(held).expect("folds");
        Signed::sign(
            key,
            IllMessage::Step(Step {
                transaction: tx.id,
                after: tx.heads.clone(),
                at_ms,
                action,
            }),
        )
    }

    /// A whole loan, each message sent after the ones before it.
    fn full_loan() -> (Vec<Signed<IllMessage>>, SigningKey, SigningKey) {
        let (b, l) = (key(1), key(2));
        let mut held = vec![request(&b, &l)];
        let due = Day::parse("2027-01-15").expect("day");
        let script: Vec<(&SigningKey, Action)> = vec![
            (&l, Action::RequestReceived),
            (
                &l,
                Action::WillSupply {
                    conditions: Some("baca di tempat".into()),
                },
            ),
            (&b, Action::ConditionsAnswer { accepted: true }),
            (&l, Action::Loaned { due }),
            (&b, Action::Received),
            (&b, Action::Renew),
            (
                &l,
                Action::RenewAnswer {
                    due: Some(due.plus(7)),
                },
            ),
            (
                &b,
                Action::Notification {
                    note: "terima kasih".into(),
                },
            ),
            (&b, Action::ShippedReturn),
            (&l, Action::LoanCompleted),
        ];
        for (i, (who, action)) in script.into_iter().enumerate() {
            let next = step(who, &held, 2_000 + i as u64, action);
            held.push(next);
        }
        (held, b, l)
    }

    #[test]
    fn a_full_loan_ends_completed_with_its_renewal() {
        let (held, _, _) = full_loan();
        let tx = Transaction::fold(&held).expect("folds");
        assert_eq!(tx.status, Status::LoanCompleted);
        assert_eq!(tx.renewals, 1);
        assert_eq!(tx.due, Day::parse("2027-01-22"));
        assert!(
            tx.history.iter().all(|e| e.ignored.is_none()),
            "{:?}",
            tx.history
        );
        assert_eq!(tx.history.len(), held.len());
        assert!(tx.waiting.is_empty());
        assert_eq!(tx.heads.len(), 1);
        assert!(tx.times.closed_ms.is_some() && tx.times.received_ms.is_some());
    }

    #[test]
    fn actions_out_of_turn_or_of_the_wrong_party_are_ignored_with_a_reason() {
        let (b, l) = (key(1), key(2));
        let mut held = vec![request(&b, &l)];
        // The borrower cannot say it was loaned; the lender cannot receive.
        held.push(step(&b, &held, 2, Action::Loaned { due: Day(20_000) }));
        held.push(step(&l, &held, 3, Action::Received));
        held.push(step(&b, &held, 4, Action::Received));
        let tx = Transaction::fold(&held).expect("folds");
        assert_eq!(tx.status, Status::Requested);
        let reasons: Vec<_> = tx
            .history
            .iter()
            .filter_map(|e| e.ignored.clone())
            .collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(
            reasons[0].contains("only the lending library"),
            "{reasons:?}"
        );
        assert!(reasons[2].contains("not shipped"), "{reasons:?}");
    }

    #[test]
    fn a_third_library_and_another_transaction_count_for_nothing() {
        let (b, l, third) = (key(1), key(2), key(3));
        let mut held = vec![request(&b, &l)];
        held.push(step(
            &third,
            &held,
            2,
            Action::Unfilled { reason: "x".into() },
        ));
        let tx = Transaction::fold(&held).expect("folds");
        assert_eq!(tx.status, Status::Requested);
        assert_eq!(tx.history.len(), 1);
        assert_eq!(tx.party_of(&id_of(&third)), None);
    }

    #[test]
    fn cancelling_an_unanswered_request_closes_it_at_once_and_after_an_answer_asks() {
        let (b, l) = (key(1), key(2));
        let mut held = vec![request(&b, &l)];
        held.push(step(
            &b,
            &held,
            2,
            Action::Cancel {
                reason: "tidak dijawab".into(),
            },
        ));
        assert_eq!(
            Transaction::fold(&held).expect("folds").status,
            Status::Cancelled
        );

        let mut held = vec![request(&b, &l)];
        held.push(step(&l, &held, 2, Action::ExpectToSupply));
        held.push(step(
            &b,
            &held,
            3,
            Action::Cancel {
                reason: "tidak perlu".into(),
            },
        ));
        let tx = Transaction::fold(&held).expect("folds");
        assert_eq!(
            (tx.status, tx.cancel_pending),
            (Status::ExpectToSupply, true)
        );
        held.push(step(&l, &held, 4, Action::CancelAnswer { accepted: true }));
        assert_eq!(
            Transaction::fold(&held).expect("folds").status,
            Status::Cancelled
        );
    }

    #[test]
    fn days_print_and_parse_back() {
        for text in ["1970-01-01", "2000-02-29", "2026-12-04", "2100-03-01"] {
            assert_eq!(Day::parse(text).expect(text).to_string(), text);
        }
        for bad in [
            "2023-02-30",
            "2026-13-01",
            "26-1-1",
            "",
            "1969-12-31",
            "2026-01-00",
        ] {
            assert_eq!(Day::parse(bad), None, "{bad}");
        }
        assert_eq!(
            Day::parse("2026-12-04").expect("day").start_ms(),
            1_796_342_400_000
        );
    }

    #[test]
    fn bounds_are_checked() {
        let (b, l) = (key(1), key(2));
        let IllMessage::Request(mut r) = request(&b, &l).body else {
            unreachable!()
        };
        r.items = 0;
        assert!(IllMessage::Request(r.clone()).check_bounds().is_err());
        r.items = 1;
        r.note = "x".repeat(TEXT_MAX + 1);
        assert!(matches!(
            IllMessage::Request(r).check_bounds(),
            Err(IllError::TooLong { field: "note", .. })
        ));
        let step = Step {
            transaction: Hash32([0; 32]),
            after: Vec::new(),
            at_ms: 0,
            action: Action::Received,
        };
        assert!(IllMessage::Step(step).check_bounds().is_err());
    }

    proptest! {
        /// Delivered late, twice and in any order, one message at a time to a side that
        /// folds what it holds: both sides end in the same state, and it is the state of
        /// the loan as it was sent.
        #[test]
        fn any_delivery_order_ends_in_the_same_state(
            order in Just((0..11usize).collect::<Vec<_>>()).prop_shuffle(),
            twice in proptest::collection::vec(0..11usize, 0..6),
            cut in 0..11usize,
        ) {
            let (held, _, _) = full_loan();
            let truth = Transaction::fold(&held).expect("folds");
            let mut arrived: Vec<Signed<IllMessage>> = Vec::new();
            let deliveries = order.iter().chain(twice.iter());
            for (n, &i) in deliveries.enumerate() {
                arrived.push(held[i].clone());
                if n == cut {
                    // Midway: whatever has arrived folds without error once the
                    // request is there, and what waits is what lacks a predecessor.
                    if let Ok(partial) = Transaction::fold(&arrived) {
                        prop_assert!(partial.history.len() + partial.waiting.len() <= held.len());
                    }
                }
            }
            let end = Transaction::fold(&arrived).expect("folds");
            prop_assert_eq!(end, truth);
        }
    }
}
