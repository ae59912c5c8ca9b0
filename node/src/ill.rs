//! Interlibrary loan on this node: the transactions it is a party to, their signed
//! messages (sled tree `ill`), what it keeps beside them for itself alone (the patron's
//! reference, the borrower's rota), and the outbox of messages still to reach the other
//! library.
//!
//! Keys of the tree:
//! - `m` + transaction + message id -> the message's canonical bytes;
//! - `x` + transaction -> [`Local`] (JSON): this node's role, the patron reference;
//! - `o` + peer + sequence number (8 bytes, big-endian) -> transaction + message id:
//!   messages the peer has not confirmed, in the order they were made (a request before
//!   its steps);
//! - `r` + rota id -> [`Rota`] (JSON): a borrower's request, the lenders in order and
//!   the transactions tried.
//!
//! Every input from a peer is checked before anything is stored: the signature and the
//! bounds of the message, that the peer is its author and a party to the transaction,
//! that both still share a consortium whose agreement in force allows interlibrary loan,
//! and, for a request, the agreement's limits.

use crate::consortium::{Consortia, ConsortiumError};
use ed25519_dalek::SigningKey;
use jalin_protocol::consortium::agreement::Terms;
use jalin_protocol::consortium::document::{DocError, Hash32, Signed};
use jalin_protocol::ill::{
    Action, Day, IllError, IllMessage, LoanRequest, Party, Status, Step, Transaction, MESSAGES_MAX,
};
use jalin_protocol::signing::LibraryId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Messages of one push to a peer, at most (the wire's own bound).
pub const PUSH_MAX: usize = jalin_protocol::ill::PUSH_MESSAGES_MAX;
/// Requests one library may send this one in a day, whatever becomes of them: a member
/// asking and withdrawing in a loop cannot fill the lender's disk (a village library
/// asks a few a week; a busy school, a few a day).
pub const REQUESTS_PER_PEER_PER_DAY: usize = 200;
/// Characters of a patron reference (kept here, never sent).
pub const PATRON_MAX: usize = 200;
/// Lenders one request asks in turn, at most (more holders than this are not asked).
pub const ROTA_MAX: usize = 16;

/// What goes wrong with a loan, each kind apart (the API's `code`).
#[derive(Debug, thiserror::Error)]
pub enum LoanError {
    /// The transaction's rules.
    #[error(transparent)]
    Ill(#[from] IllError),
    /// The message is not a valid signed document.
    #[error(transparent)]
    Document(#[from] DocError),
    /// The consortia could not be read.
    #[error(transparent)]
    Consortium(#[from] ConsortiumError),
    /// No such transaction here.
    #[error("no interlibrary loan {0} on this node")]
    NotFound(String),
    /// An id that names more than one.
    #[error("{0} names more than one loan: give more of its id")]
    Ambiguous(String),
    /// No library may be asked.
    #[error("no library holding it lends to this one: {0}")]
    NoLender(String),
    /// Not a co-member under an agreement in force that allows loans.
    #[error(
        "{0} and this library share no consortium whose agreement in force allows \
         interlibrary loan"
    )]
    NotAllowed(String),
    /// More items than the agreement allows.
    #[error("{items} items asked for; the agreement allows {max} per request")]
    TooManyItems {
        /// Asked for.
        items: u32,
        /// Allowed.
        max: u32,
    },
    /// Too many requests from one library today.
    #[error("{0} requests from this library in the last day: at most {REQUESTS_PER_PEER_PER_DAY}")]
    TooManyToday(usize),
    /// Too many loans open already.
    #[error("{open} loans are open between these libraries; the agreement allows {max}")]
    TooManyOpen {
        /// Open now.
        open: u32,
        /// Allowed.
        max: u32,
    },
    /// A message not signed by the library it came from.
    #[error("the message is signed by another library than the one that sent it")]
    NotFromSender,
    /// A request addressed to another library.
    #[error("the request is addressed to another library")]
    NotForUs,
    /// A message held already: a replay, or the same message sent twice.
    #[error("this message is here already (sent twice, or replayed): nothing changes")]
    Replayed,
    /// A step of a transaction this node does not hold.
    #[error("no such transaction here (its request never arrived, or was refused)")]
    UnknownTransaction,
    /// A patron reference over its limit.
    #[error("a patron reference is at most {PATRON_MAX} characters")]
    PatronTooLong,
    /// Not this node's role.
    #[error("this library is not the {0} in this loan")]
    WrongRole(&'static str),
    /// Storage failed.
    #[error("storage: {0}")]
    Storage(#[from] sled::Error),
    /// Stored data that does not read back.
    #[error("stored loan data is damaged: {0}")]
    Damaged(String),
    /// A step on a request from a system outside Jalin (the ISO 18626 gateway).
    #[error(transparent)]
    External(#[from] crate::gateway::StepError),
}

impl LoanError {
    /// Whether the same message may be taken later (its request has not arrived yet,
    /// storage failed for a moment): the sender keeps it to send again.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            LoanError::UnknownTransaction | LoanError::Storage(_) | LoanError::Damaged(_)
        )
    }

    /// A stable name for the kind of failure.
    pub fn code(&self) -> &'static str {
        match self {
            LoanError::Ill(IllError::NotNow { .. }) => "ill_not_now",
            LoanError::Ill(_) => "ill_invalid",
            LoanError::Document(e) => e.code(),
            LoanError::Consortium(e) => e.code(),
            LoanError::NotFound(_) => "not_found",
            LoanError::Ambiguous(_) => "ambiguous",
            LoanError::NoLender(_) => "ill_no_lender",
            LoanError::NotAllowed(_) => "ill_not_allowed",
            LoanError::TooManyItems { .. } => "ill_too_many_items",
            LoanError::TooManyOpen { .. } => "ill_too_many_open",
            LoanError::TooManyToday(_) => "ill_too_many_today",
            LoanError::NotFromSender => "ill_not_from_sender",
            LoanError::NotForUs => "ill_not_for_us",
            LoanError::UnknownTransaction => "ill_unknown_transaction",
            LoanError::Replayed => "ill_replayed",
            LoanError::PatronTooLong => "too_long",
            LoanError::WrongRole(_) => "ill_wrong_role",
            LoanError::Storage(_) | LoanError::Damaged(_) => "storage",
            LoanError::External(e) => match e {
                crate::gateway::StepError::NotFound { .. } => "not_found",
                crate::gateway::StepError::NotNow(_) => "ill_not_now",
                crate::gateway::StepError::NoAddress(_) => "ill_no_address",
                crate::gateway::StepError::Storage(_) => "storage",
            },
        }
    }
}

/// This node's role in a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// This library borrows.
    Borrower,
    /// This library lends.
    Lender,
}

/// What this node keeps beside a transaction, for itself alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Local {
    /// Its role.
    pub role: Role,
    /// The other library.
    pub peer: LibraryId,
    /// The borrower's reference to its patron (borrower only; never sent).
    pub patron: Option<String>,
    /// The rota this attempt belongs to (borrower only).
    pub rota: Option<String>,
    /// When the request arrived here, by this node's clock (lender only): what the daily
    /// limit counts, whatever time the borrower wrote in it.
    #[serde(default)]
    pub received_ms: Option<u64>,
}

/// A library a borrower may ask, and its record of the book.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// The library.
    pub library: LibraryId,
    /// Its record of the book.
    pub record_id: String,
    /// The consortium whose agreement allows the loan.
    pub consortium: Hash32,
}

/// A borrower's request as the librarian made it: the lenders to ask in turn.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rota {
    /// Its id (random, hex).
    pub id: String,
    /// Title and author, as the union catalog shows them.
    pub title: String,
    /// The first author.
    pub author: String,
    /// The lenders, in the order they are asked.
    pub lenders: Vec<Candidate>,
    /// The transactions opened so far, one per lender asked.
    pub attempts: Vec<Hash32>,
    /// The next lender to ask (an index into `lenders`).
    pub next: usize,
    /// Lenders passed over without asking, and why (no longer allowed, too many open).
    pub skipped: Vec<String>,
    /// Items asked for.
    pub items: u16,
    /// The day the patron needs it by.
    pub need_before: Option<Day>,
    /// The librarian's note to the lenders.
    pub note: String,
    /// The patron reference (never sent).
    pub patron: Option<String>,
    /// Why the rota ended without a loan, if it did.
    pub ended: Option<String>,
}

/// What a librarian asks for.
#[derive(Clone, Debug)]
pub struct NewRequest {
    /// Title and author.
    pub title: String,
    /// The first author.
    pub author: String,
    /// The lenders in the order to ask them.
    pub lenders: Vec<Candidate>,
    /// Items.
    pub items: u16,
    /// Needed before.
    pub need_before: Option<Day>,
    /// Note to the lenders.
    pub note: String,
    /// Patron reference, kept here.
    pub patron: Option<String>,
}

/// A transaction with what this node keeps beside it.
#[derive(Clone, Debug)]
pub struct Loan {
    /// The state both sides compute.
    pub transaction: Transaction,
    /// This node's side of it.
    pub local: Local,
}

/// One side's figures, from the loans this node holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Ledger {
    /// Loans this library made to the other (shipped).
    pub lent: u32,
    /// Loans this library received from the other (shipped).
    pub borrowed: u32,
}

/// This library's interlibrary-loan figures over a period, from the transactions it
/// was a party to (each lender asked counts as one request).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The period's first day, if any (else since the first loan).
    pub since: Option<String>,
    /// Requests this library made.
    pub made: u32,
    /// Requests this library received.
    pub received: u32,
    /// Of those made, how many were shipped to it.
    pub filled_made: u32,
    /// Of those received, how many it shipped.
    pub filled_received: u32,
    /// Requests it could not fill, by the reason it gave.
    pub unfilled_by_reason: BTreeMap<String, u32>,
    /// Filled over received (as a lender).
    pub fill_rate: Option<f64>,
    /// Median days from request to the book at the borrower (its own requests).
    pub days_to_received: Option<f64>,
    /// Median days from request to shipping (requests it filled).
    pub days_to_shipped: Option<f64>,
    /// Loans open now (shipped, not yet back), both ways.
    pub open_loans: u32,
    /// Of those, past their due date.
    pub overdue_loans: u32,
    /// Loans it made, and took.
    pub lent: u32,
    /// Loans it took.
    pub borrowed: u32,
    /// Lent over borrowed.
    pub lent_to_borrowed: Option<f64>,
}

fn median_days(mut spans_ms: Vec<u64>) -> Option<f64> {
    if spans_ms.is_empty() {
        return None;
    }
    spans_ms.sort_unstable();
    let mid = spans_ms.len() / 2;
    let ms = if spans_ms.len().is_multiple_of(2) {
        (spans_ms[mid - 1] + spans_ms[mid]) as f64 / 2.0
    } else {
        spans_ms[mid] as f64
    };
    Some((ms / 86_400_000.0 * 10.0).round() / 10.0)
}

fn ratio(a: u32, b: u32) -> Option<f64> {
    (b > 0).then(|| (f64::from(a) / f64::from(b) * 100.0).round() / 100.0)
}

/// The loans of this node.
pub struct Loans {
    db: crate::durable::Db,
    tree: crate::durable::Tree,
    key: SigningKey,
    own: LibraryId,
    outbox_watch: tokio::sync::watch::Sender<u64>,
    /// One message stored at a time: each keeps the state folded from every message
    /// held, so two at once must not each miss the other's.
    write: std::sync::Mutex<()>,
}

fn key(prefix: u8, a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + a.len() + b.len());
    out.push(prefix);
    out.extend_from_slice(a);
    out.extend_from_slice(b);
    out
}

/// An outbox entry's transaction and message id.
fn outbox_entry(entry: &[u8]) -> Result<([u8; 32], [u8; 32]), LoanError> {
    let damaged = || LoanError::Damaged("an outbox entry of the wrong length".into());
    let transaction = entry
        .get(..32)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(damaged)?;
    let id = entry
        .get(32..64)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(damaged)?;
    Ok((transaction, id))
}

fn random_id() -> Result<String, LoanError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| LoanError::Damaged(format!("no randomness: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Loans {
    /// The loans in `db`'s `ill` tree, signed with `key`.
    pub fn open(db: &crate::durable::Db, key: SigningKey) -> Result<Loans, LoanError> {
        let own = LibraryId::from_key(&key.verifying_key());
        let loans = Loans {
            db: db.clone(),
            tree: db.open_tree("ill")?,
            key,
            own,
            outbox_watch: tokio::sync::watch::channel(0).0,
            write: std::sync::Mutex::new(()),
        };
        loans.mark_all()?;
        Ok(loans)
    }

    /// Writes the kept states and the markers (open loans, loans shipped, rotas to
    /// watch) for a tree written before they existed; once.
    fn mark_all(&self) -> Result<(), LoanError> {
        const MARKED: &[u8] = b"v-marked-3";
        if self.tree.contains_key(MARKED)? {
            return Ok(());
        }
        let mut ids = Vec::new();
        for item in self.tree.scan_prefix([b'x']) {
            let (k, _) = item?;
            if let Ok(id) = <[u8; 32]>::try_from(&k[1..]) {
                ids.push(Hash32(id));
            }
        }
        for id in ids {
            let Some(local) = self.local(&id)? else {
                continue;
            };
            let mut batch = sled::Batch::default();
            if let Ok(state) = Transaction::fold(&self.messages(&id)?) {
                Self::mark(&mut batch, &id, &local, &state)?;
            }
            self.tree.apply_batch(batch)?;
        }
        for rota in self.all_rotas()? {
            self.mark_rota(&rota)?;
        }
        self.tree.insert(MARKED, &[])?;
        self.tree.flush()?;
        Ok(())
    }

    /// The kept state of a transaction and its markers, into `batch`, as `state` has
    /// them (a late message may undo what an earlier fold said): `p` while it is open,
    /// `h` (by peer and role) while it counts as shipped, `d` once taken as a request.
    fn mark(
        batch: &mut sled::Batch,
        id: &Hash32,
        local: &Local,
        state: &Transaction,
    ) -> Result<(), LoanError> {
        let bytes = postcard::to_allocvec(state).map_err(|e| LoanError::Damaged(e.to_string()))?;
        batch.insert(key(b's', &id.0, &[]), bytes);
        if state.status.is_final() {
            batch.remove(key(b'p', &id.0, &[]));
        } else {
            batch.insert(key(b'p', &id.0, &[]), &[]);
        }
        let role = match local.role {
            Role::Lender => b'L',
            Role::Borrower => b'B',
        };
        let mut shipped = key(b'h', local.peer.as_bytes(), &[role]);
        shipped.extend_from_slice(&id.0);
        if state.times.shipped_ms.is_some() {
            batch.insert(shipped, &[]);
        } else {
            batch.remove(shipped);
        }
        if let (Role::Lender, Some(at)) = (local.role, local.received_ms) {
            let mut marker = key(b'd', local.peer.as_bytes(), &at.to_be_bytes());
            marker.extend_from_slice(&id.0);
            batch.insert(marker, &[]);
        }
        Ok(())
    }

    /// Requests taken from `peer` (this library lending) at or after `since_ms`, by the
    /// `d` markers (peer, time taken, transaction).
    fn received_since(&self, peer: &LibraryId, since_ms: u64) -> Result<usize, LoanError> {
        let from = {
            let mut k = key(b'd', peer.as_bytes(), &since_ms.to_be_bytes());
            k.extend_from_slice(&[0; 32]);
            k
        };
        let to = key(b'd', peer.as_bytes(), &[0xff; 41]);
        let mut count = 0;
        for item in self.tree.range(from..to) {
            item?;
            count += 1;
        }
        Ok(count)
    }

    /// A rota's `q` marker: on while it may need moving on.
    fn mark_rota(&self, rota: &Rota) -> Result<(), LoanError> {
        let marker = key(b'q', rota.id.as_bytes(), &[]);
        let settled = rota.ended.is_some()
            || match rota.attempts.last() {
                Some(current) => self.get(current).is_ok_and(|l| {
                    l.transaction.status.is_on_loan()
                        || l.transaction.status == Status::LoanCompleted
                }),
                None => true,
            };
        if settled {
            self.tree.remove(marker)?;
        } else {
            self.tree.insert(marker, &[])?;
        }
        Ok(())
    }

    /// Bumped whenever a message is queued for a peer.
    pub fn watch_outbox(&self) -> tokio::sync::watch::Receiver<u64> {
        self.outbox_watch.subscribe()
    }

    /// The terms in force between this library and `peer` in `consortium`: both current
    /// members, an agreement in force, interlibrary loan allowed.
    fn terms_with(
        &self,
        consortia: &Consortia,
        consortium: &Hash32,
        peer: &LibraryId,
    ) -> Result<Terms, LoanError> {
        let not_allowed = || LoanError::NotAllowed(peer.fingerprint());
        if !consortia.trust().shares(peer, consortium) {
            return Err(not_allowed());
        }
        match consortia.terms_in_force(consortium)? {
            Some(terms) if terms.interlibrary_loan => Ok(terms),
            _ => Err(not_allowed()),
        }
    }

    /// The signed messages of a transaction held here (each checked again as read).
    pub fn signed_messages(
        &self,
        transaction: &Hash32,
    ) -> Result<Vec<Signed<IllMessage>>, LoanError> {
        self.messages(transaction)
    }

    /// The messages of a transaction held here.
    fn messages(&self, transaction: &Hash32) -> Result<Vec<Signed<IllMessage>>, LoanError> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(key(b'm', &transaction.0, &[])) {
            let (_, bytes) = item?;
            out.push(
                Signed::<IllMessage>::from_bytes(&bytes)
                    .map_err(|e| LoanError::Damaged(e.to_string()))?,
            );
        }
        Ok(out)
    }

    fn local(&self, transaction: &Hash32) -> Result<Option<Local>, LoanError> {
        match self.tree.get(key(b'x', &transaction.0, &[]))? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| LoanError::Damaged(e.to_string())),
            None => Ok(None),
        }
    }

    /// One transaction, with this node's side of it: its state as last folded (kept
    /// under `s` by [`Loans::store`]), or folded from its messages when none is kept.
    pub fn get(&self, transaction: &Hash32) -> Result<Loan, LoanError> {
        let local = self
            .local(transaction)?
            .ok_or_else(|| LoanError::NotFound(transaction.short()))?;
        let kept = self
            .tree
            .get(key(b's', &transaction.0, &[]))?
            .and_then(|bytes| postcard::from_bytes::<Transaction>(&bytes).ok());
        let transaction = match kept {
            Some(kept) => kept,
            None => Transaction::fold(&self.messages(transaction)?)?,
        };
        Ok(Loan { transaction, local })
    }

    /// A transaction as ISO 18626 messages (file name, XML), one per step.
    pub fn export(&self, transaction: &Hash32) -> Result<Vec<(String, String)>, LoanError> {
        if self.local(transaction)?.is_none() {
            return Err(LoanError::NotFound(transaction.short()));
        }
        Ok(jalin_protocol::ill::iso::export(
            &self.messages(transaction)?,
        )?)
    }

    /// The transaction an id or an id's start (8 hex digits or more) names.
    pub fn resolve(&self, text: &str) -> Result<Hash32, LoanError> {
        let text = text.trim().to_ascii_lowercase();
        if let Some(id) = Hash32::from_hex(&text) {
            return Ok(id);
        }
        if text.len() < 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(LoanError::NotFound(text));
        }
        let mut found = Vec::new();
        for item in self.tree.scan_prefix([b'x']) {
            let (k, _) = item?;
            let id: [u8; 32] = k[1..]
                .try_into()
                .map_err(|_| LoanError::Damaged("a transaction key of the wrong length".into()))?;
            let id = Hash32(id);
            if id.to_hex().starts_with(&text) {
                found.push(id);
            }
        }
        match found.as_slice() {
            [one] => Ok(*one),
            [] => Err(LoanError::NotFound(text)),
            _ => Err(LoanError::Ambiguous(text)),
        }
    }

    /// Every transaction held here.
    pub fn list(&self) -> Result<Vec<Loan>, LoanError> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix([b'x']) {
            let (k, _) = item?;
            let id: [u8; 32] = k[1..]
                .try_into()
                .map_err(|_| LoanError::Damaged("a transaction key of the wrong length".into()))?;
            out.push(self.get(&Hash32(id))?);
        }
        Ok(out)
    }

    /// The lenders' records out on interlibrary loan now, as this node knows them (its
    /// own lent, and those lent to it): `(lender, record id)`.
    pub fn out_on_loan(
        &self,
    ) -> Result<std::collections::BTreeSet<(LibraryId, String)>, LoanError> {
        Ok(self
            .open_loans()?
            .into_iter()
            .filter(|l| l.transaction.status.is_on_loan())
            .map(|l| {
                (
                    l.transaction.request.lender,
                    l.transaction.request.record_id.clone(),
                )
            })
            .collect())
    }

    /// Loans shipped between this library and each other library, from both sides.
    pub fn ledger(&self) -> Result<BTreeMap<LibraryId, Ledger>, LoanError> {
        // The `h` markers: peer (32 bytes), role, transaction. Counted by the peer's
        // bytes; each peer's key read once (reading one checks it is a valid key).
        let mut counts: BTreeMap<[u8; 32], Ledger> = BTreeMap::new();
        for item in self.tree.scan_prefix([b'h']) {
            let (k, _) = item?;
            let peer: [u8; 32] = k
                .get(1..33)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| LoanError::Damaged("a ledger key of the wrong length".into()))?;
            let entry = counts.entry(peer).or_default();
            match k.get(33) {
                Some(b'L') => entry.lent += 1,
                Some(b'B') => entry.borrowed += 1,
                _ => return Err(LoanError::Damaged("a ledger key of no role".into())),
            }
        }
        let mut out = BTreeMap::new();
        for (peer, ledger) in counts {
            let peer = LibraryId::from_bytes(peer)
                .map_err(|e| LoanError::Damaged(format!("a ledger key: {e}")))?;
            out.insert(peer, ledger);
        }
        Ok(out)
    }

    /// The figures of the loans requested since `since` (all when `None`), as of `now_ms`.
    pub fn report(&self, since: Option<Day>, now_ms: u64) -> Result<Report, LoanError> {
        let mut report = self.report_in(since.map_or(0, |d| d.start_ms()), u64::MAX, now_ms)?;
        report.since = since.map(|d| d.to_string());
        Ok(report)
    }

    /// The figures of the loans requested in `[from_ms, to_ms)`, as of `now_ms`.
    pub fn report_in(&self, from_ms: u64, to_ms: u64, now_ms: u64) -> Result<Report, LoanError> {
        let mut report = Report::default();
        let (mut to_received, mut to_shipped) = (Vec::new(), Vec::new());
        let today = Day::of_ms(now_ms);
        for loan in self.list()? {
            let tx = &loan.transaction;
            if tx.request.at_ms < from_ms || tx.request.at_ms >= to_ms {
                continue;
            }
            let shipped = tx.times.shipped_ms;
            match loan.local.role {
                Role::Borrower => {
                    report.made += 1;
                    if shipped.is_some() {
                        report.filled_made += 1;
                        report.borrowed += 1;
                    }
                    if let Some(at) = tx.times.received_ms {
                        to_received.push(at.saturating_sub(tx.request.at_ms));
                    }
                }
                Role::Lender => {
                    report.received += 1;
                    if let Some(at) = shipped {
                        report.filled_received += 1;
                        report.lent += 1;
                        to_shipped.push(at.saturating_sub(tx.request.at_ms));
                    }
                    if tx.status == Status::Unfilled {
                        let reason = tx.reason.clone().unwrap_or_default();
                        *report.unfilled_by_reason.entry(reason).or_default() += 1;
                    }
                }
            }
            if tx.status.is_on_loan() {
                report.open_loans += 1;
                if tx.is_overdue(today) {
                    report.overdue_loans += 1;
                }
            }
        }
        report.fill_rate = ratio(report.filled_received, report.received);
        report.days_to_received = median_days(to_received);
        report.days_to_shipped = median_days(to_shipped);
        report.lent_to_borrowed = ratio(report.lent, report.borrowed);
        Ok(report)
    }

    /// Stores a message and queues it for `peer`, in one batch.
    fn store(
        &self,
        transaction: &Hash32,
        message: &Signed<IllMessage>,
        local: Option<&Local>,
        send_to: Option<&LibraryId>,
    ) -> Result<(), LoanError> {
        let id = message.id();
        let _one = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut batch = sled::Batch::default();
        batch.insert(key(b'm', &transaction.0, &id.0), message.to_bytes());
        // The state after it, kept so that reading the transaction needs no fold (and
        // no signature checked again). A set of messages that does not fold keeps none:
        // reading it then says why.
        let mut all = self.messages(transaction)?;
        if !all.iter().any(|m| m.id() == id) {
            all.push(message.clone());
        }
        let local_now = match local {
            Some(local) => Some(local.clone()),
            None => self.local(transaction)?,
        };
        let rota = local_now.as_ref().and_then(|l| l.rota.clone());
        match (Transaction::fold(&all), local_now) {
            (Ok(state), Some(local)) => Self::mark(&mut batch, transaction, &local, &state)?,
            _ => batch.remove(key(b's', &transaction.0, &[])),
        }
        if let Some(local) = local {
            let json = serde_json::to_vec(local).map_err(|e| LoanError::Damaged(e.to_string()))?;
            batch.insert(key(b'x', &transaction.0, &[]), json);
        }
        if let Some(peer) = send_to {
            let seq = self.db.generate_id()?.to_be_bytes();
            batch.insert(
                key(b'o', peer.as_bytes(), &seq),
                key(b'e', &transaction.0, &id.0)[1..].to_vec(),
            );
        }
        self.tree.apply_batch(batch)?;
        // Its rota (the borrower's) is watched while its current attempt has no book.
        if let Some(rota) = rota
            .as_deref()
            .map(|id| self.rota(id))
            .transpose()?
            .flatten()
        {
            self.mark_rota(&rota)?;
        }
        self.tree.flush()?;
        if send_to.is_some() {
            self.outbox_watch.send_modify(|n| *n += 1);
        }
        Ok(())
    }

    /// Open transactions between this library (as `role`) and `peer`.
    fn open_with(&self, peer: &LibraryId, role: Role) -> Result<u32, LoanError> {
        Ok(self
            .open_loans()?
            .iter()
            .filter(|l| l.local.peer == *peer && l.local.role == role)
            .count() as u32)
    }

    /// Makes a borrower's request: checks it against the agreement with the first lender,
    /// keeps the rota, and sends the request to the first lender. Returns the rota.
    pub fn request(
        &self,
        consortia: &Consortia,
        new: NewRequest,
        now_ms: u64,
    ) -> Result<Rota, LoanError> {
        if new
            .patron
            .as_ref()
            .is_some_and(|p| p.chars().count() > PATRON_MAX)
        {
            return Err(LoanError::PatronTooLong);
        }
        let mut lenders = Vec::new();
        let mut refused = Vec::new();
        for candidate in new.lenders.into_iter().take(ROTA_MAX) {
            if candidate.library == self.own {
                continue;
            }
            match self.terms_with(consortia, &candidate.consortium, &candidate.library) {
                Ok(terms) if u32::from(new.items) > terms.items_per_request => {
                    return Err(LoanError::TooManyItems {
                        items: u32::from(new.items),
                        max: terms.items_per_request,
                    })
                }
                Ok(_) => lenders.push(candidate),
                Err(error) => refused.push(error.to_string()),
            }
        }
        if lenders.is_empty() {
            return Err(LoanError::NoLender(if refused.is_empty() {
                "no other library holds it".into()
            } else {
                refused.join("; ")
            }));
        }
        let mut rota = Rota {
            id: random_id()?,
            title: new.title,
            author: new.author,
            lenders,
            attempts: Vec::new(),
            next: 0,
            skipped: Vec::new(),
            items: new.items,
            need_before: new.need_before,
            note: new.note,
            patron: new.patron,
            ended: None,
        };
        self.next_attempt(consortia, &mut rota, now_ms)?;
        Ok(rota)
    }

    fn save_rota(&self, rota: &Rota) -> Result<(), LoanError> {
        let json = serde_json::to_vec(rota).map_err(|e| LoanError::Damaged(e.to_string()))?;
        self.tree.insert(key(b'r', rota.id.as_bytes(), &[]), json)?;
        self.mark_rota(rota)?;
        self.tree.flush()?;
        Ok(())
    }

    /// One of the borrower's rotas.
    pub fn rota(&self, id: &str) -> Result<Option<Rota>, LoanError> {
        match self.tree.get(key(b'r', id.as_bytes(), &[]))? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| LoanError::Damaged(e.to_string())),
            None => Ok(None),
        }
    }

    /// Every rota of the borrower's, ended or not.
    fn all_rotas(&self) -> Result<Vec<Rota>, LoanError> {
        self.tree
            .scan_prefix([b'r'])
            .map(|item| {
                let (_, bytes) = item?;
                serde_json::from_slice(&bytes).map_err(|e| LoanError::Damaged(e.to_string()))
            })
            .collect()
    }

    /// The borrower's rotas that may need moving on: not ended, their book not lent yet.
    pub fn rotas(&self) -> Result<Vec<Rota>, LoanError> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix([b'q']) {
            let (k, _) = item?;
            let id = String::from_utf8_lossy(&k[1..]).into_owned();
            out.extend(self.rota(&id)?);
        }
        Ok(out)
    }

    /// The transactions not closed yet.
    pub fn open_loans(&self) -> Result<Vec<Loan>, LoanError> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix([b'p']) {
            let (k, _) = item?;
            let id: [u8; 32] = k[1..]
                .try_into()
                .map_err(|_| LoanError::Damaged("an open-loan key of the wrong length".into()))?;
            out.push(self.get(&Hash32(id))?);
        }
        Ok(out)
    }

    /// Opens a transaction with the rota's next lender still allowed (or ends the rota).
    fn next_attempt(
        &self,
        consortia: &Consortia,
        rota: &mut Rota,
        now_ms: u64,
    ) -> Result<(), LoanError> {
        while let Some(candidate) = rota.lenders.get(rota.next).cloned() {
            rota.next += 1;
            let allowed = self
                .terms_with(consortia, &candidate.consortium, &candidate.library)
                .and_then(|terms| {
                    let open = self.open_with(&candidate.library, Role::Borrower)?;
                    if open >= terms.max_open_loans {
                        return Err(LoanError::TooManyOpen {
                            open,
                            max: terms.max_open_loans,
                        });
                    }
                    Ok(terms)
                });
            let mut nonce = [0u8; 16];
            getrandom::fill(&mut nonce)
                .map_err(|e| LoanError::Damaged(format!("no randomness: {e}")))?;
            let request = LoanRequest {
                consortium: candidate.consortium,
                lender: candidate.library,
                record_id: candidate.record_id.clone(),
                title: rota.title.clone(),
                author: rota.author.clone(),
                items: rota.items,
                need_before: rota.need_before,
                note: rota.note.clone(),
                at_ms: now_ms,
                nonce,
            };
            let message = Signed::sign(&self.key, IllMessage::Request(request));
            message.body.check_bounds()?;
            if let Err(error) = allowed {
                if rota.attempts.is_empty() && rota.lenders.len() == 1 {
                    return Err(error);
                }
                tracing::info!(lender = %candidate.library.fingerprint(), %error, "skipped a lender");
                rota.skipped
                    .push(format!("{}: {error}", candidate.library.fingerprint()));
                continue;
            }
            let id = message.id();
            let local = Local {
                role: Role::Borrower,
                peer: candidate.library,
                patron: rota.patron.clone(),
                rota: Some(rota.id.clone()),
                received_ms: None,
            };
            self.store(&id, &message, Some(&local), Some(&candidate.library))?;
            rota.attempts.push(id);
            self.save_rota(rota)?;
            return Ok(());
        }
        rota.ended = Some("no library could supply it".into());
        self.save_rota(rota)
    }

    /// Sends one action of this library in a transaction: checked against the state,
    /// signed after the latest messages held, stored, and queued for the other library.
    pub fn act(
        &self,
        transaction: &Hash32,
        action: Action,
        now_ms: u64,
    ) -> Result<Transaction, LoanError> {
        let loan = self.get(transaction)?;
        let party = match loan.local.role {
            Role::Borrower => Party::Borrower,
            Role::Lender => Party::Lender,
        };
        loan.transaction.check(party, &action)?;
        let message = Signed::sign(
            &self.key,
            IllMessage::Step(Step {
                transaction: *transaction,
                after: loan.transaction.heads.clone(),
                at_ms: now_ms,
                action,
            }),
        );
        message.body.check_bounds()?;
        if loan.transaction.history.len() + loan.transaction.waiting.len() >= MESSAGES_MAX {
            return Err(IllError::TooMany.into());
        }
        self.store(transaction, &message, None, Some(&loan.local.peer))?;
        Ok(self.get(transaction)?.transaction)
    }

    /// The lender's `Loaned`, due after the agreement's loan period.
    pub fn ship(
        &self,
        consortia: &Consortia,
        transaction: &Hash32,
        now_ms: u64,
    ) -> Result<Transaction, LoanError> {
        let loan = self.get(transaction)?;
        if loan.local.role != Role::Lender {
            return Err(LoanError::WrongRole("lender"));
        }
        let terms = self.terms_with(
            consortia,
            &loan.transaction.request.consortium,
            &loan.local.peer,
        )?;
        let due = Day::of_ms(now_ms).plus(terms.loan_period_days);
        self.act(transaction, Action::Loaned { due }, now_ms)
    }

    /// Takes in messages `from` a peer; one result per message ([`LoanError::Replayed`]
    /// for one held already). Answers the peer's requests and renewals as the agreement
    /// says.
    pub fn take_in(
        &self,
        consortia: &Consortia,
        from: &LibraryId,
        messages: &[Vec<u8>],
        now_ms: u64,
    ) -> Vec<Result<(), LoanError>> {
        messages
            .iter()
            .map(|bytes| self.take_one(consortia, from, bytes, now_ms))
            .collect()
    }

    fn take_one(
        &self,
        consortia: &Consortia,
        from: &LibraryId,
        bytes: &[u8],
        now_ms: u64,
    ) -> Result<(), LoanError> {
        let message = Signed::<IllMessage>::from_bytes(bytes)?;
        message.body.check_bounds()?;
        if message.author != *from {
            return Err(LoanError::NotFromSender);
        }
        let id = message.id();
        match &message.body {
            IllMessage::Request(request) => {
                if request.lender != self.own {
                    return Err(LoanError::NotForUs);
                }
                if self.tree.contains_key(key(b'm', &id.0, &id.0))? {
                    return Err(LoanError::Replayed);
                }
                let terms = self.terms_with(consortia, &request.consortium, from)?;
                if u32::from(request.items) > terms.items_per_request {
                    return Err(LoanError::TooManyItems {
                        items: u32::from(request.items),
                        max: terms.items_per_request,
                    });
                }
                let today = self.received_since(from, now_ms.saturating_sub(86_399_999))?;
                if today >= REQUESTS_PER_PEER_PER_DAY {
                    return Err(LoanError::TooManyToday(today));
                }
                let open = self.open_with(from, Role::Lender)?;
                if open >= terms.max_open_loans {
                    return Err(LoanError::TooManyOpen {
                        open,
                        max: terms.max_open_loans,
                    });
                }
                let local = Local {
                    role: Role::Lender,
                    peer: *from,
                    patron: None,
                    rota: None,
                    received_ms: Some(now_ms),
                };
                self.store(&id, &message, Some(&local), None)?;
                // The standard's confirmation: the request has arrived.
                self.act(&id, Action::RequestReceived, now_ms)?;
                Ok(())
            }
            IllMessage::Step(step) => {
                let transaction = step.transaction;
                let local = self
                    .local(&transaction)?
                    .ok_or(LoanError::UnknownTransaction)?;
                if local.peer != *from {
                    return Err(IllError::NotAParty.into());
                }
                if self.tree.contains_key(key(b'm', &transaction.0, &id.0))? {
                    return Err(LoanError::Replayed);
                }
                let before = Transaction::fold(&self.messages(&transaction)?)?;
                if before.history.len() + before.waiting.len() >= MESSAGES_MAX {
                    return Err(IllError::TooMany.into());
                }
                // A loan under way goes on to its end while both are co-members, even if
                // the agreement in force changed since (a book lent must come back);
                // a library removed from the consortium is refused.
                let consortium = before.request.consortium;
                if !consortia.trust().shares(from, &consortium) {
                    return Err(LoanError::NotAllowed(from.fingerprint()));
                }
                self.store(&transaction, &message, None, None)?;
                let after = Transaction::fold(&self.messages(&transaction)?)?;
                if local.role == Role::Lender && after.renew_pending && !before.renew_pending {
                    // Renewals as the agreement in force says: yes while under its limit
                    // and not recalled, a new due date `renewal_days` on; no agreement
                    // allowing loans any more, no renewal.
                    let terms = consortia
                        .terms_in_force(&consortium)?
                        .filter(|t| t.interlibrary_loan);
                    let due = terms
                        .filter(|t| after.renewals < t.max_renewals && !after.recalled)
                        .map(|t| after.due.unwrap_or(Day::of_ms(now_ms)).plus(t.renewal_days));
                    self.act(&transaction, Action::RenewAnswer { due }, now_ms)?;
                }
                Ok(())
            }
        }
    }

    /// Messages waiting for `peer`, oldest first (at most [`PUSH_MAX`]), with their ids.
    pub fn outbox(&self, peer: &LibraryId) -> Result<Vec<(Hash32, Vec<u8>)>, LoanError> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(key(b'o', peer.as_bytes(), &[])) {
            if out.len() >= PUSH_MAX {
                break;
            }
            let (_, entry) = item?;
            let (transaction, id) = outbox_entry(&entry)?;
            if let Some(bytes) = self.tree.get(key(b'm', &transaction, &id))? {
                out.push((Hash32(id), bytes.to_vec()));
            }
        }
        Ok(out)
    }

    /// The peers with messages waiting.
    pub fn outbox_peers(&self) -> Result<Vec<LibraryId>, LoanError> {
        let mut out: Vec<LibraryId> = Vec::new();
        for item in self.tree.scan_prefix([b'o']) {
            let (k, _) = item?;
            let peer: [u8; 32] = k[1..33]
                .try_into()
                .map_err(|_| LoanError::Damaged("an outbox key of the wrong length".into()))?;
            let peer =
                LibraryId::from_bytes(peer).map_err(|e| LoanError::Damaged(e.to_string()))?;
            if out.last() != Some(&peer) {
                out.push(peer);
            }
        }
        Ok(out)
    }

    /// The peer has answered for these messages (taken, held already, or refused for
    /// good): they leave the outbox.
    pub fn delivered(&self, peer: &LibraryId, ids: &[Hash32]) -> Result<(), LoanError> {
        let mut batch = sled::Batch::default();
        for item in self.tree.scan_prefix(key(b'o', peer.as_bytes(), &[])) {
            let (k, entry) = item?;
            let (_, id) = outbox_entry(&entry)?;
            if ids.contains(&Hash32(id)) {
                batch.remove(k);
            }
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Withdraws a borrower's request: the transaction is cancelled (the lender asked to
    /// agree, once it has answered) and its rota ends, asking no one else.
    pub fn withdraw(
        &self,
        transaction: &Hash32,
        reason: String,
        now_ms: u64,
    ) -> Result<Transaction, LoanError> {
        let loan = self.get(transaction)?;
        if loan.local.role != Role::Borrower {
            return Err(LoanError::WrongRole("borrower"));
        }
        let tx = self.act(transaction, Action::Cancel { reason }, now_ms)?;
        if let Some(rota_id) = &loan.local.rota {
            if let Some(mut rota) = self.rota(rota_id)? {
                rota.ended = Some("withdrawn by the librarian".into());
                self.save_rota(&rota)?;
            }
        }
        Ok(tx)
    }

    /// Moves loans on as the clock says: the lender tells the borrower once when a loan
    /// is overdue; and the borrower's rotas: a lender that has not answered
    /// within the agreement's `answer_within_days` is told the request is withdrawn, and
    /// a request unfilled, withdrawn or declined goes to the next lender. Returns how many
    /// loans and rotas moved.
    pub fn advance(&self, consortia: &Consortia, now_ms: u64) -> Result<usize, LoanError> {
        let mut moved = 0;
        let loans = self.open_loans()?;
        // This library's tally, shared with each of its consortia when it changed: what
        // the other members' rotas balance their lenders by.
        let (lent, borrowed) = self
            .ledger()?
            .values()
            .fold((0, 0), |(l, b), x| (l + x.lent, b + x.borrowed));
        // A library that never lent or borrowed has nothing to share (and adds no
        // document to its consortia).
        if lent + borrowed > 0 {
            // This library's own copies out on loan now.
            let on_loan: Vec<String> = loans
                .iter()
                .filter(|l| l.local.role == Role::Lender && l.transaction.status.is_on_loan())
                .map(|l| l.transaction.request.record_id.clone())
                .collect();
            for consortium in consortia.trust().consortia() {
                consortia.publish_tally(consortium, lent, borrowed, on_loan.clone(), now_ms)?;
            }
        }
        // The lender says once that a loan is overdue (ISO 18626's Overdue), the day
        // after its due date.
        let today = Day::of_ms(now_ms);
        for loan in &loans {
            let tx = &loan.transaction;
            if loan.local.role == Role::Lender && tx.is_overdue(today) && !tx.overdue_notified {
                self.act(&tx.id, Action::Overdue, now_ms)?;
                moved += 1;
            }
        }
        for mut rota in self.rotas()? {
            if rota.ended.is_some() {
                continue;
            }
            let Some(current) = rota.attempts.last().copied() else {
                continue;
            };
            let loan = self.get(&current)?;
            let tx = &loan.transaction;
            let unanswered = matches!(tx.status, Status::Requested | Status::RequestReceived);
            if unanswered && !tx.cancel_pending {
                let days = consortia
                    .terms_in_force(&tx.request.consortium)?
                    .map_or(Terms::DEFAULT_ANSWER_WITHIN_DAYS, |t| t.answer_within_days);
                let deadline = tx
                    .request
                    .at_ms
                    .saturating_add(u64::from(days) * 86_400_000);
                if now_ms >= deadline {
                    let reason = format!("no answer within {days} days");
                    self.act(&current, Action::Cancel { reason }, now_ms)?;
                    self.next_attempt(consortia, &mut rota, now_ms)?;
                    moved += 1;
                    continue;
                }
            }
            if matches!(tx.status, Status::Unfilled | Status::Cancelled) {
                self.next_attempt(consortia, &mut rota, now_ms)?;
                moved += 1;
            }
        }
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_their_parts_apart() {
        let k = key(b'o', &[1; 32], &[2; 32]);
        assert_eq!(k.len(), 65);
        assert_eq!((k[0], k[1], k[33]), (b'o', 1, 2));
    }
}
