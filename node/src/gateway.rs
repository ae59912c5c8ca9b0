//! The ISO 18626 gateway: interlibrary-loan systems outside Jalin (an ILS, a broker) send
//! this library the standard's messages at `POST /iso18626`, and get the standard's
//! confirmations back.
//!
//! Each such agency is listed in `[iso18626] peers` with a shared secret it sends as
//! `Authorization: Bearer SECRET`. This library is the supplying agency of the requests
//! they send (`[iso18626] agency_id`, or its code): a valid request opens a transaction
//! here (sled tree `iso18626`), and the requesting agency's later messages (cancel,
//! received, renew, return, ...) are taken into it. A message this library cannot take
//! is answered `ERROR` with the standard's error type and what was wrong.
//!
//! The librarian answers such a request step by step ([`Step`]: will supply, unfilled,
//! shipped, checked in, the answers to a renewal or a cancellation). Each answer is a
//! supplying agency message, kept in the transaction and queued (`o` + sequence) for
//! the agency's `url`; [`deliver`] posts the queue, in order per agency, and reads the
//! agency's confirmation: `OK` delivers it, `ERROR` is kept on the answer for the
//! librarian to see, and an agency that cannot be reached is tried again later.

use crate::config::{Iso18626Peer, Iso18626Section};
use jalin_protocol::ill::iso::{self, ErrorType, Incoming, IsoError, Kind};
use jalin_protocol::ill::Day;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

/// Messages kept per transaction, at most (later ones are confirmed, not kept).
const MESSAGES_KEPT_MAX: usize = 64;
/// Bytes of one message kept, at most (an ISO 18626 message is a few KB; the rest of a
/// larger one is cut).
const MESSAGE_KEPT_BYTES: usize = 8 * 1024;
/// Messages one transaction takes after its request, at most: an agency's flood of
/// reminders or notes is refused, not written again and again.
const MESSAGES_TAKEN_MAX: u32 = 1_000;
/// New requests one agency may send in a day: an ILS flooding the gateway cannot fill
/// the library's disk.
pub const REQUESTS_PER_AGENCY_PER_DAY: usize = 500;

/// A transaction opened by an agency outside Jalin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct External {
    /// The requesting agency (its `agencyIdValue`).
    pub requesting_agency: String,
    /// Its request id.
    pub request_id: String,
    /// The title asked for.
    pub title: String,
    /// The author.
    pub author: String,
    /// The record asked for, in this library's catalog (`supplierUniqueRecordId`).
    pub record_id: String,
    /// The requesting agency's last action (`Request` first).
    pub last_action: String,
    /// When it arrived (ms since 1970) and when it last changed.
    pub created_ms: u64,
    /// When it last changed.
    pub changed_ms: u64,
    /// The messages as they came (at most [`MESSAGES_KEPT_MAX`]).
    pub messages: Vec<String>,
    /// The requesting agency's id type (`ISIL`, ...), as it wrote it.
    #[serde(default)]
    pub requesting_agency_type: String,
    /// This library's id type, as the agency wrote it.
    #[serde(default)]
    pub supplying_agency_type: String,
    /// This library's status in the standard's words, once it has answered (`WillSupply`,
    /// `Loaned`, `LoanCompleted`, ...); empty before.
    #[serde(default)]
    pub status: String,
    /// The due date, once lent.
    #[serde(default)]
    pub due: Option<Day>,
    /// Renewals granted.
    #[serde(default)]
    pub renewals: u32,
    /// The agency's `Renew` or `Cancel` waiting for the librarian's yes or no.
    #[serde(default)]
    pub awaiting: Option<String>,
    /// The agency said the book is lost: a check-in closes the loan without it.
    #[serde(default)]
    pub lost: bool,
    /// Messages taken from the agency for this request (kept or not).
    #[serde(default)]
    pub taken: u32,
    /// This library's answers, in order.
    #[serde(default)]
    pub answers: Vec<Answer>,
}

/// One message this library sent (or is sending) the requesting agency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// When it was written.
    pub at_ms: u64,
    /// The step (`will_supply`, `ship`, ...).
    pub step: String,
    /// The status it gave.
    pub status: String,
    /// Where its delivery stands.
    pub delivery: Delivery,
    /// The message.
    pub xml: String,
}

/// Where an answer's delivery stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Delivery {
    /// Queued: not confirmed yet (`attempts` posts failed, the last for `error`).
    Waiting {
        /// Posts that failed.
        attempts: u32,
        /// Why the last one failed.
        error: Option<String>,
    },
    /// The agency confirmed it (`OK`).
    Delivered {
        /// When.
        at_ms: u64,
    },
    /// The agency answered `ERROR`: it will not be sent again.
    Refused {
        /// Its `errorType` and `errorValue`.
        error: String,
    },
}

/// A librarian's answer to a request from outside Jalin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// It will be supplied (on these conditions, if any).
    WillSupply {
        /// Loan conditions (empty: none).
        conditions: String,
    },
    /// It cannot be: why.
    Unfilled {
        /// Why.
        reason: String,
    },
    /// Sent: lent until the due date.
    Ship,
    /// Back (or, after the agency said `Lost`, closed without it).
    Checkin,
    /// The answer to the agency's `Renew`.
    Renew {
        /// Yes: the due date moves on.
        accept: bool,
    },
    /// The answer to the agency's `Cancel`.
    CancelAnswer {
        /// Yes: the request is cancelled.
        accept: bool,
    },
    /// Wanted back early.
    Recall,
    /// A note.
    Notify {
        /// The note.
        note: String,
    },
}

/// The steps by the names the CLI, the API and the pages use.
pub const STEPS: [&str; 10] = [
    "will_supply",
    "unfilled",
    "ship",
    "checkin",
    "renew_yes",
    "renew_no",
    "cancel_yes",
    "cancel_no",
    "recall",
    "notify",
];

impl Step {
    /// The step named `name` (one of [`STEPS`]), with its text (conditions, reason or
    /// note).
    pub fn parse(name: &str, text: &str) -> Option<Step> {
        let text = text.trim().chars().take(TEXT_MAX).collect::<String>();
        Some(match name {
            "will_supply" => Step::WillSupply { conditions: text },
            "unfilled" => Step::Unfilled { reason: text },
            "ship" => Step::Ship,
            "checkin" => Step::Checkin,
            "renew_yes" => Step::Renew { accept: true },
            "renew_no" => Step::Renew { accept: false },
            "cancel_yes" => Step::CancelAnswer { accept: true },
            "cancel_no" => Step::CancelAnswer { accept: false },
            "recall" => Step::Recall,
            "notify" => Step::Notify { note: text },
            _ => return None,
        })
    }

    /// Its name.
    pub fn name(&self) -> &'static str {
        match self {
            Step::WillSupply { .. } => "will_supply",
            Step::Unfilled { .. } => "unfilled",
            Step::Ship => "ship",
            Step::Checkin => "checkin",
            Step::Renew { accept: true } => "renew_yes",
            Step::Renew { accept: false } => "renew_no",
            Step::CancelAnswer { accept: true } => "cancel_yes",
            Step::CancelAnswer { accept: false } => "cancel_no",
            Step::Recall => "recall",
            Step::Notify { .. } => "notify",
        }
    }
}

/// Characters of a step's text, at most.
const TEXT_MAX: usize = jalin_protocol::ill::TEXT_MAX;

/// What a step writes: the message's fields and the transaction's next state.
struct Plan {
    status: &'static str,
    reason: &'static str,
    answer: Option<bool>,
    note: String,
    reason_unfilled: String,
    due: Option<Day>,
    renewed: bool,
    answered: bool,
}

/// Before the book is lent (`""`: nothing said yet; `RequestReceived` as a note or a
/// refused cancellation leaves it).
const OPEN: [&str; 4] = ["", "RequestReceived", "ExpectToSupply", "WillSupply"];
const OUT: [&str; 3] = ["Loaned", "Overdue", "Recalled"];

/// What `step` does to `t` today, or why it cannot be taken now.
fn plan(t: &External, step: &Step, today: Day, config: &Iso18626Section) -> Result<Plan, String> {
    let status = t.status.as_str();
    // The first answer to the request (a note before it is no answer).
    let first = t.answers.iter().all(|a| a.step == "notify");
    let base = |status: &'static str| Plan {
        status,
        reason: if first {
            "RequestResponse"
        } else {
            "StatusChange"
        },
        answer: None,
        note: String::new(),
        reason_unfilled: String::new(),
        due: t.due,
        renewed: false,
        answered: false,
    };
    let now_state = if status.is_empty() {
        "RequestReceived"
    } else {
        status
    };
    let cancel_waiting = t.awaiting.as_deref() == Some("Cancel");
    let refuse = |why: &str| Err(format!("{why} (the request is {now_state})"));
    match step {
        Step::WillSupply { conditions } => {
            if !OPEN.contains(&status) || status == "WillSupply" {
                return refuse("only a request not answered yet can be answered");
            }
            if cancel_waiting {
                return refuse("the agency asked to cancel: answer that first");
            }
            let mut plan = base("WillSupply");
            if !conditions.is_empty() {
                plan.note = format!("loan conditions: {conditions}");
            }
            Ok(plan)
        }
        Step::Unfilled { reason } => {
            if !OPEN.contains(&status) {
                return refuse("only a request not lent yet can be unfilled");
            }
            if reason.is_empty() {
                return Err("say why it cannot be supplied".into());
            }
            let mut plan = base("Unfilled");
            plan.reason_unfilled = reason.clone();
            Ok(plan)
        }
        Step::Ship => {
            if !OPEN.contains(&status) {
                return refuse("only a request not lent yet can be shipped");
            }
            if cancel_waiting {
                return refuse("the agency asked to cancel: answer that first");
            }
            let mut plan = base("Loaned");
            plan.due = Some(today.plus(config.loan_days()));
            Ok(plan)
        }
        Step::Checkin => {
            if !OUT.contains(&status) {
                return refuse("only a book out on loan can be checked in");
            }
            let lost = t.lost;
            Ok(base(if lost {
                "CompletedWithoutReturn"
            } else {
                "LoanCompleted"
            }))
        }
        Step::Renew { accept } => {
            if t.awaiting.as_deref() != Some("Renew") || !OUT.contains(&status) {
                return refuse("the agency has not asked to renew");
            }
            let mut plan = base(if *accept { "Loaned" } else { t.status_name() });
            plan.reason = "RenewResponse";
            plan.answer = Some(*accept);
            plan.answered = true;
            if *accept {
                let from = t.due.unwrap_or(today).max(today);
                plan.due = Some(from.plus(config.renew_days()));
                plan.renewed = true;
            }
            Ok(plan)
        }
        Step::CancelAnswer { accept } => {
            if !cancel_waiting || !OPEN.contains(&status) {
                return refuse("the agency has not asked to cancel a request not lent yet");
            }
            let mut plan = base(if *accept {
                "Cancelled"
            } else {
                t.status_name()
            });
            plan.reason = "CancelResponse";
            plan.answer = Some(*accept);
            plan.answered = true;
            Ok(plan)
        }
        Step::Recall => {
            if status != "Loaned" && status != "Overdue" {
                return refuse("only a book out on loan can be recalled");
            }
            Ok(base("Recalled"))
        }
        Step::Notify { note } => {
            if CLOSED.contains(&status) {
                return refuse("the request is closed");
            }
            if note.is_empty() {
                return Err("write the note".into());
            }
            let mut plan = base(t.status_name());
            plan.reason = "Notification";
            plan.note = note.clone();
            Ok(plan)
        }
    }
}

const CLOSED: [&str; 4] = [
    "Unfilled",
    "LoanCompleted",
    "CompletedWithoutReturn",
    "Cancelled",
];

impl External {
    /// Its status in the standard's words (`RequestReceived` before any answer).
    pub fn status_name(&self) -> &'static str {
        const ALL: [&str; 9] = [
            "ExpectToSupply",
            "WillSupply",
            "Loaned",
            "Overdue",
            "Recalled",
            "Unfilled",
            "LoanCompleted",
            "CompletedWithoutReturn",
            "Cancelled",
        ];
        ALL.into_iter()
            .find(|s| *s == self.status)
            .unwrap_or("RequestReceived")
    }

    /// The steps the librarian may take now (of [`STEPS`]).
    pub fn next_steps(&self, today: Day, config: &Iso18626Section) -> Vec<&'static str> {
        STEPS
            .into_iter()
            .filter(|name| {
                Step::parse(name, "x").is_some_and(|step| plan(self, &step, today, config).is_ok())
            })
            .collect()
    }

    /// Answers queued and not confirmed yet.
    pub fn waiting(&self) -> usize {
        self.answers
            .iter()
            .filter(|a| matches!(a.delivery, Delivery::Waiting { .. }))
            .count()
    }
}

/// Why a librarian's step on an outside request is not taken.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// No such request.
    #[error("no request {request_id:?} from agency {agency:?} here")]
    NotFound {
        /// The agency.
        agency: String,
        /// Its request id.
        request_id: String,
    },
    /// Not a step, or not one for now.
    #[error("{0}")]
    NotNow(String),
    /// The agency has no `url` to answer to.
    #[error("agency {0:?} has no url in [iso18626] peers: its requests cannot be answered")]
    NoAddress(String),
    /// Storage failed, or what is stored does not read back.
    #[error("storage: {0}")]
    Storage(String),
}

/// An answer queued for an agency: which transaction, which of its answers.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Queued {
    key: Vec<u8>,
    index: usize,
}

/// Why a message is not taken, as HTTP sees it: the confirmation says the rest.
#[derive(Debug)]
pub struct Refusal {
    /// The HTTP status (200 for a message read and refused by the standard's rules).
    pub http: u16,
    /// The standard's error.
    pub error: IsoError,
}

/// The gateway's store.
pub struct Gateway {
    tree: crate::durable::Tree,
    /// One writer at a time: the agencies' messages, the librarian's steps and the
    /// deliveries read, change and write the same transactions.
    write: Mutex<()>,
    /// Bumped when an answer is queued: the delivery task wakes.
    queued: tokio::sync::watch::Sender<u64>,
    /// Bumped when a delivery is recorded (confirmed, refused or failed).
    settled: tokio::sync::watch::Sender<u64>,
}

fn key(agency: &str, request_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(agency.len() + request_id.len() + 2);
    out.push(b't');
    out.extend_from_slice(agency.as_bytes());
    out.push(0);
    out.extend_from_slice(request_id.as_bytes());
    out
}

/// The key counting an agency's new requests by day: `d`, agency, 0, time, transaction.
fn day_key(agency: &str, at_ms: u64, transaction: &[u8]) -> Vec<u8> {
    let mut out = vec![b'd'];
    out.extend_from_slice(agency.as_bytes());
    out.push(0);
    out.extend_from_slice(&at_ms.to_be_bytes());
    out.extend_from_slice(transaction);
    out
}

fn value_error(value: impl Into<String>) -> IsoError {
    IsoError {
        kind: ErrorType::UnrecognisedDataValue,
        value: value.into(),
    }
}

impl Gateway {
    /// The gateway's tree in `db`.
    pub fn open(db: &crate::durable::Db) -> Result<Gateway, sled::Error> {
        Ok(Gateway {
            tree: db.open_tree("iso18626")?,
            write: Mutex::new(()),
            queued: tokio::sync::watch::Sender::new(0),
            settled: tokio::sync::watch::Sender::new(0),
        })
    }

    /// Changes when a delivery is recorded: what the agency answered, or that it could
    /// not be reached.
    pub fn watch_deliveries(&self) -> tokio::sync::watch::Receiver<u64> {
        self.settled.subscribe()
    }

    /// Changes when an answer is queued.
    pub fn watch_queue(&self) -> tokio::sync::watch::Receiver<u64> {
        self.queued.subscribe()
    }

    /// One outside transaction.
    pub fn transaction(&self, agency: &str, request_id: &str) -> Result<External, StepError> {
        self.get(&key(agency, request_id))
            .map_err(StepError::Storage)?
            .ok_or_else(|| StepError::NotFound {
                agency: agency.into(),
                request_id: request_id.into(),
            })
    }

    /// The librarian's `step` on the request `request_id` of `agency`: the answer is
    /// written, kept and queued for the agency's `url`.
    pub fn act(
        &self,
        config: &Iso18626Section,
        own_agency: &str,
        agency: &str,
        request_id: &str,
        step: &Step,
        now_ms: u64,
    ) -> Result<External, StepError> {
        let _one = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let k = key(agency, request_id);
        let mut t = self.transaction(agency, request_id)?;
        let peer = config.peers.iter().find(|p| p.agency_id == agency);
        match peer.and_then(|p| p.url.as_deref()) {
            None => return Err(StepError::NoAddress(agency.into())),
            Some(url) => {
                if !url::Url::parse(url).is_ok_and(|u| ["http", "https"].contains(&u.scheme())) {
                    return Err(StepError::NotNow(format!(
                        "agency {agency:?}: url {url:?} in [iso18626] peers is not an http(s) address"
                    )));
                }
            }
        }
        let plan = plan(&t, step, Day::of_ms(now_ms), config).map_err(StepError::NotNow)?;
        let xml = iso::supplying_agency_message(&iso::SupplierMessage {
            supplying_agency: (&t.supplying_agency_type, own_agency),
            requesting_agency: (&t.requesting_agency_type, &t.requesting_agency),
            requesting_request_id: &t.request_id,
            reason: plan.reason,
            answer: plan.answer,
            note: &plan.note,
            reason_unfilled: &plan.reason_unfilled,
            status: plan.status,
            due_ms: plan.due.map(Day::start_ms),
            item_id: Some(&t.record_id),
            now_ms,
        });
        t.status = plan.status.to_string();
        t.due = plan.due;
        if plan.renewed {
            t.renewals += 1;
        }
        if plan.answered {
            t.awaiting = None;
        }
        t.changed_ms = now_ms;
        t.answers.push(Answer {
            at_ms: now_ms,
            step: step.name().into(),
            status: plan.status.into(),
            delivery: Delivery::Waiting {
                attempts: 0,
                error: None,
            },
            xml,
        });
        let queued = Queued {
            key: k.clone(),
            index: t.answers.len() - 1,
        };
        let next = match self.tree.scan_prefix([b'o']).next_back() {
            Some(item) => {
                let (last, _) = item.map_err(|e| StepError::Storage(e.to_string()))?;
                last.get(1..9)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map_or(0, |b| u64::from_be_bytes(b) + 1)
            }
            None => 0,
        };
        let mut queue_key = vec![b'o'];
        queue_key.extend_from_slice(&next.to_be_bytes());
        let stored = serde_json::to_vec(&t)
            .and_then(|a| serde_json::to_vec(&queued).map(|b| (a, b)))
            .map_err(|e| StepError::Storage(e.to_string()))
            .and_then(|(transaction, queued)| {
                let mut batch = sled::Batch::default();
                batch.insert(k, transaction);
                batch.insert(queue_key, queued);
                self.tree
                    .apply_batch(batch)
                    .and_then(|()| self.tree.flush().map(|_| ()))
                    .map_err(|e| StepError::Storage(e.to_string()))
            });
        stored?;
        self.queued.send_modify(|n| *n = n.wrapping_add(1));
        Ok(t)
    }

    /// The answers waiting to go, in order: the queue key, the agency, the message.
    pub fn queue(&self) -> Result<Vec<(Vec<u8>, String, String)>, StepError> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix([b'o']) {
            let (queue_key, bytes) = item.map_err(|e| StepError::Storage(e.to_string()))?;
            let Ok(queued) = serde_json::from_slice::<Queued>(&bytes) else {
                continue;
            };
            let t = match self.get(&queued.key) {
                Ok(Some(t)) => t,
                Ok(None) => continue,
                // One damaged transaction does not stop the answers to every agency.
                Err(error) => {
                    tracing::warn!(error, "an ISO 18626 answer's transaction is damaged");
                    continue;
                }
            };
            if let Some(answer) = t.answers.get(queued.index) {
                out.push((queue_key.to_vec(), t.requesting_agency, answer.xml.clone()));
            }
        }
        Ok(out)
    }

    /// The agency confirmed the queued answer `queue_key`: `Ok` (`OK`), or `Err` with
    /// its `ERROR`. Either way it leaves the queue.
    pub fn confirmed(
        &self,
        queue_key: &[u8],
        outcome: Result<(), String>,
        now_ms: u64,
    ) -> Result<(), StepError> {
        self.settle(queue_key, |delivery| {
            *delivery = match &outcome {
                Ok(()) => Delivery::Delivered { at_ms: now_ms },
                Err(why) => Delivery::Refused { error: why.clone() },
            };
            true
        })
    }

    /// Posting `queue_key` failed for now (the agency unreachable, or answering with
    /// something that is not a confirmation): it stays queued, with why.
    pub fn failed(&self, queue_key: &[u8], why: String) -> Result<(), StepError> {
        self.settle(queue_key, |delivery| {
            if let Delivery::Waiting { attempts, error } = delivery {
                *attempts = attempts.saturating_add(1);
                *error = Some(why);
            }
            false
        })
    }

    /// Changes the delivery of the answer queued as `queue_key`; `done` takes it off
    /// the queue.
    fn settle(
        &self,
        queue_key: &[u8],
        change: impl FnOnce(&mut Delivery) -> bool,
    ) -> Result<(), StepError> {
        let _one = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let storage = |e: sled::Error| StepError::Storage(e.to_string());
        let Some(bytes) = self.tree.get(queue_key).map_err(storage)? else {
            return Ok(());
        };
        let queued: Queued =
            serde_json::from_slice(&bytes).map_err(|e| StepError::Storage(e.to_string()))?;
        let mut batch = sled::Batch::default();
        let mut done = true;
        if let Some(mut t) = self.get(&queued.key).map_err(StepError::Storage)? {
            if let Some(answer) = t.answers.get_mut(queued.index) {
                done = change(&mut answer.delivery);
                let json = serde_json::to_vec(&t).map_err(|e| StepError::Storage(e.to_string()))?;
                batch.insert(queued.key.clone(), json);
            }
        }
        if done {
            batch.remove(queue_key);
        }
        self.tree.apply_batch(batch).map_err(storage)?;
        self.tree.flush().map_err(storage)?;
        self.settled.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    /// Every transaction opened through the gateway.
    pub fn transactions(&self) -> Result<Vec<External>, sled::Error> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix([b't']) {
            let (_, bytes) = item?;
            if let Ok(external) = serde_json::from_slice(&bytes) {
                out.push(external);
            }
        }
        Ok(out)
    }

    /// Takes one message (its bytes, the `Authorization` bearer secret if any) and
    /// returns the confirmation to send back, with its HTTP status.
    pub fn receive(
        &self,
        config: &Iso18626Section,
        own_agency: &str,
        bytes: &[u8],
        secret: Option<&str>,
        now_ms: u64,
    ) -> (u16, String) {
        let incoming = match iso::read(bytes) {
            Ok(incoming) => incoming,
            Err(error) => {
                return (200, iso::confirmation(None, None, Some(&error), now_ms));
            }
        };
        let kind = incoming.kind;
        match self.take(config, own_agency, &incoming, bytes, secret, now_ms) {
            Ok(()) => (200, iso::confirmation(kind, Some(&incoming), None, now_ms)),
            Err(refusal) => (
                refusal.http,
                iso::confirmation(kind, Some(&incoming), Some(&refusal.error), now_ms),
            ),
        }
    }

    fn take(
        &self,
        config: &Iso18626Section,
        own_agency: &str,
        m: &Incoming,
        bytes: &[u8],
        secret: Option<&str>,
        now_ms: u64,
    ) -> Result<(), Refusal> {
        let refused = |error: IsoError| Refusal { http: 200, error };
        let kind = m.kind.unwrap_or(Kind::Request);
        // Who sent it: the requesting agency, or for a supplying agency's message the
        // supplier; it must be listed, and prove it with its secret.
        let sender = match kind {
            Kind::SupplyingAgencyMessage => &m.supplying_agency,
            _ => &m.requesting_agency,
        };
        // An agency not listed and a wrong secret are answered alike: the answer does
        // not tell a stranger which agency ids this library knows.
        let known = config.peers.iter().find(|p| p.agency_id == *sender);
        if !known
            .is_some_and(|peer| secret.is_some_and(|s| crate::server::same_secret(s, &peer.secret)))
        {
            return Err(Refusal {
                http: 401,
                error: value_error(format!(
                    "{sender}: not an agency this library exchanges with, or the shared \
                     secret is missing or wrong (Authorization: Bearer SECRET)"
                )),
            });
        }
        // One writer at a time, once the sender is known.
        let _one = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let xml = String::from_utf8_lossy(bytes).into_owned();
        match kind {
            Kind::Request => {
                if m.supplying_agency != own_agency {
                    return Err(refused(value_error(format!(
                        "supplyingAgencyId: {:?} is not this library ({own_agency})",
                        m.supplying_agency
                    ))));
                }
                let k = key(&m.requesting_agency, &m.requesting_request_id);
                let held = self.get(&k).map_err(|e| Refusal {
                    http: 500,
                    error: value_error(e),
                })?;
                match (m.request_type.as_str(), held) {
                    ("" | "New", None) => {
                        let today = self.requests_since(
                            &m.requesting_agency,
                            now_ms.saturating_sub(86_399_999),
                        );
                        if today >= REQUESTS_PER_AGENCY_PER_DAY {
                            return Err(Refusal {
                                http: 429,
                                error: value_error(format!(
                                    "{}: {today} requests in the last day, at most {REQUESTS_PER_AGENCY_PER_DAY}",
                                    m.requesting_agency
                                )),
                            });
                        }
                        let external = External {
                            requesting_agency_type: m.requesting_agency_type.clone(),
                            supplying_agency_type: m.supplying_agency_type.clone(),
                            status: String::new(),
                            due: None,
                            renewals: 0,
                            awaiting: None,
                            lost: false,
                            taken: 1,
                            answers: Vec::new(),
                            requesting_agency: m.requesting_agency.clone(),
                            request_id: m.requesting_request_id.clone(),
                            title: m.title.clone(),
                            author: m.author.clone(),
                            record_id: m.supplier_record_id.clone(),
                            last_action: "Request".into(),
                            created_ms: now_ms,
                            changed_ms: now_ms,
                            messages: vec![Self::cut(xml)],
                        };
                        self.put(&k, &external)?;
                        self.tree
                            .insert(day_key(&m.requesting_agency, now_ms, &k), &[])
                            .map(|_| ())
                            .map_err(|e| Refusal {
                                http: 500,
                                error: value_error(format!("this library could not store it: {e}")),
                            })
                    }
                    ("" | "New", Some(_)) => Err(refused(value_error(
                        "requestingAgencyRequestId: a request with this id exists already",
                    ))),
                    ("Reminder", Some(mut held)) => {
                        held.changed_ms = now_ms;
                        Self::keep(&mut held, xml)?;
                        self.put(&k, &held)
                    }
                    ("Reminder", None) => Err(refused(value_error(
                        "requestingAgencyRequestId: no request with this id to remind of",
                    ))),
                    // This library never answers RetryPossible, so no retry can follow.
                    _ => Err(refused(value_error("requestType: Retry not possible"))),
                }
            }
            Kind::RequestingAgencyMessage => {
                if m.supplying_agency != own_agency {
                    return Err(refused(value_error(format!(
                        "supplyingAgencyId: {:?} is not this library ({own_agency})",
                        m.supplying_agency
                    ))));
                }
                let k = key(&m.requesting_agency, &m.requesting_request_id);
                let Some(mut held) = self.get(&k).map_err(|e| Refusal {
                    http: 500,
                    error: value_error(e),
                })?
                else {
                    return Err(refused(value_error(
                        "requestingAgencyRequestId: no request with this id",
                    )));
                };
                held.last_action = m.action.clone();
                held.changed_ms = now_ms;
                match m.action.as_str() {
                    // A cancellation is asked before the book is lent, a renewal after:
                    // a renewal never hides a cancellation waiting for its answer.
                    "Cancel" => held.awaiting = Some(m.action.clone()),
                    "Renew" if held.awaiting.as_deref() != Some("Cancel") => {
                        held.awaiting = Some(m.action.clone());
                    }
                    // A renewal not answered before the book comes back needs no answer.
                    "ShippedReturn" => held.awaiting = None,
                    "Lost" => {
                        held.awaiting = None;
                        held.lost = true;
                    }
                    _ => {}
                }
                Self::keep(&mut held, xml)?;
                self.put(&k, &held)
            }
            Kind::SupplyingAgencyMessage => {
                // This library sends no requests to agencies outside Jalin yet, so no
                // supplier can be answering one.
                if m.requesting_agency != own_agency {
                    return Err(refused(value_error(format!(
                        "requestingAgencyId: {:?} is not this library ({own_agency})",
                        m.requesting_agency
                    ))));
                }
                Err(refused(value_error(
                    "requestingAgencyRequestId: this library made no request with this id",
                )))
            }
        }
    }

    /// New requests `agency` sent since `since_ms`.
    fn requests_since(&self, agency: &str, since_ms: u64) -> usize {
        let from = day_key(agency, since_ms, &[]);
        let mut to = vec![b'd'];
        to.extend_from_slice(agency.as_bytes());
        to.push(1);
        self.tree.range(from..to).count()
    }

    /// A message as kept: at most [`MESSAGE_KEPT_BYTES`].
    fn cut(mut xml: String) -> String {
        if xml.len() > MESSAGE_KEPT_BYTES {
            let mut end = MESSAGE_KEPT_BYTES;
            while !xml.is_char_boundary(end) {
                end -= 1;
            }
            xml.truncate(end);
            xml.push_str("<!-- cut: the rest was not kept -->");
        }
        xml
    }

    /// Counts a message into `held` and keeps it while there is room; refuses one past
    /// [`MESSAGES_TAKEN_MAX`].
    fn keep(held: &mut External, xml: String) -> Result<(), Refusal> {
        if held.taken >= MESSAGES_TAKEN_MAX {
            return Err(Refusal {
                http: 429,
                error: value_error(format!(
                    "requestingAgencyRequestId: {} messages for this request already, at most {MESSAGES_TAKEN_MAX}",
                    held.taken
                )),
            });
        }
        held.taken += 1;
        if held.messages.len() < MESSAGES_KEPT_MAX {
            held.messages.push(Self::cut(xml));
        }
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<External>, String> {
        match self.tree.get(key).map_err(|e| e.to_string())? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("a stored transaction is damaged: {e}")),
            None => Ok(None),
        }
    }

    fn put(&self, key: &[u8], external: &External) -> Result<(), Refusal> {
        let stored = serde_json::to_vec(external)
            .map_err(|e| e.to_string())
            .and_then(|json| {
                self.tree.insert(key, json).map_err(|e| e.to_string())?;
                self.tree.flush().map_err(|e| e.to_string())
            });
        stored.map(|_| ()).map_err(|e| Refusal {
            http: 500,
            error: value_error(format!("this library could not store it: {e}")),
        })
    }
}

/// How long one post to an agency may take.
const POST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The HTTP client the delivery posts with: no redirects (an agency's url is where it
/// takes messages), bounded in time.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(POST_TIMEOUT)
        .connect_timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("Jalin/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Posts one answer; `Ok(Ok)` confirmed, `Ok(Err)` refused by the agency (its
/// `errorType: errorValue`), `Err` not delivered for now.
async fn post(
    client: &reqwest::Client,
    peer: &Iso18626Peer,
    xml: String,
) -> Result<Result<(), String>, String> {
    let url = peer.url.as_deref().unwrap_or_default();
    let mut response = client
        .post(url)
        .bearer_auth(&peer.secret)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/xml; charset=utf-8",
        )
        .body(xml)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("{url}: reading the answer: {e}"))?
    {
        if body.len() + chunk.len() > iso::INCOMING_BYTES_MAX {
            return Err(format!(
                "{url}: the answer is over {} bytes",
                iso::INCOMING_BYTES_MAX
            ));
        }
        body.extend_from_slice(&chunk);
    }
    match iso::read_confirmation(&body) {
        Ok(confirmed) if confirmed.ok && status.is_success() => Ok(Ok(())),
        // Refused for good only when the agency answered as it meant to (2xx); an ERROR
        // with 401, 429 or 5xx (a secret being changed, a limit, its storage failing)
        // is tried again.
        Ok(confirmed) if status.is_success() => {
            let (kind, value) = confirmed.error.unwrap_or_default();
            Ok(Err(format!("{kind}: {value}")))
        }
        Ok(confirmed) => {
            let (kind, value) = confirmed.error.unwrap_or_default();
            Err(format!("{url} answered HTTP {status}: {kind}: {value}"))
        }
        Err(why) => Err(format!(
            "{url} answered HTTP {status}, not an ISO 18626 confirmation: {why}"
        )),
    }
}

/// Posts the queued answers to their agencies, oldest first. An agency that cannot be
/// reached keeps the rest of its answers queued (they go in order, next round); the
/// others go on. Returns how many left the queue.
pub async fn deliver(
    library: std::sync::Arc<crate::library::Library>,
    client: &reqwest::Client,
) -> usize {
    let queue = {
        let library = library.clone();
        tokio::task::spawn_blocking(move || library.gateway().queue()).await
    };
    let queue = match queue {
        Ok(Ok(queue)) => queue,
        Ok(Err(error)) => {
            tracing::warn!(%error, "reading the ISO 18626 queue failed");
            return 0;
        }
        Err(error) => {
            tracing::error!(%error, "reading the ISO 18626 queue failed");
            return 0;
        }
    };
    let config = library.data().config.iso18626.clone();
    let mut stuck = std::collections::HashSet::new();
    let mut settled = 0;
    for (queue_key, agency, xml) in queue {
        if stuck.contains(&agency) {
            continue;
        }
        let outcome = match config.peers.iter().find(|p| p.agency_id == agency) {
            Some(peer) if peer.url.is_some() => post(client, peer, xml).await,
            _ => Err(format!(
                "agency {agency:?} has no url in [iso18626] peers any more"
            )),
        };
        let library = library.clone();
        let done = match outcome {
            Ok(confirmed) => {
                if let Err(why) = &confirmed {
                    tracing::warn!(agency, why, "an ISO 18626 agency refused an answer");
                }
                settled += 1;
                tokio::task::spawn_blocking(move || {
                    library
                        .gateway()
                        .confirmed(&queue_key, confirmed, library.now_ms())
                })
                .await
            }
            Err(why) => {
                tracing::info!(
                    agency,
                    why,
                    "an ISO 18626 agency was not reached; trying again later"
                );
                stuck.insert(agency);
                tokio::task::spawn_blocking(move || library.gateway().failed(&queue_key, why)).await
            }
        };
        if let Ok(Err(error)) = done {
            tracing::warn!(%error, "recording an ISO 18626 delivery failed");
        }
    }
    settled
}
