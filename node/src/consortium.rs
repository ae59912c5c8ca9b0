//! The consortia this library belongs to: their membership logs, invites and agreements,
//! kept in sled beside the catalog.
//!
//! sled keys (one tree, `consortia`), each after a kind byte and the consortium id:
//!
//! ```text
//! o | consortium | op id        -> a membership operation (in the log, or waiting for parents)
//! v | consortium | version id   -> an agreement version
//! g | consortium | signature id -> a signature on a version
//! m | consortium | assertion id -> a "same" / "not the same" assertion about two records
//! t | consortium | library key  -> a member's newest interlibrary-loan tally
//! p | consortium | plan key     -> a member's newest document of a planned title (the
//!                                  key: sha256 of the member's key and the item)
//! k | consortium | library key  -> a member's newest conspectus
//! n | consortium | library key  -> a member's newest summary of its patrons' searches
//! i | consortium | invite id    -> an invite this library issued (JSON: ticket, used by)
//! j | consortium                -> a ticket this library accepted (it is joining)
//! q | consortium | doc id       -> a document of a consortium not known here yet
//! ```
//!
//! Every write is flushed before it is reported. A document is stored only once it passed
//! every check; what fails is reported and changes nothing.

use crate::trust::Trust;
use ed25519_dalek::SigningKey;
use jalin_protocol::consortium::agreement::{
    self, check_signature, parse_draft, AgreementSignature, AgreementStatus, AgreementVersion,
    Agreements, Terms,
};
use jalin_protocol::consortium::assertion::{self, MatchAssertion, RecordRef};
use jalin_protocol::consortium::conspectus::Conspectus;
use jalin_protocol::consortium::document::{DocError, Hash32, Signed};
use jalin_protocol::consortium::evaluation::{EvaluationSignature, MemberFigures, Period};
use jalin_protocol::consortium::log::{
    self as mlog, check_acceptance, Acceptance, Action, Inserted, Invite, Log, MemberState, Op,
    Role,
};
use jalin_protocol::consortium::needs::NeedsSummary;
use jalin_protocol::consortium::plan::{self as jplan, PlanItem};
use jalin_protocol::consortium::staff::{self as jstaff, StaffPost};
use jalin_protocol::consortium::tally::LoanTally;
use jalin_protocol::consortium::{read_documents, Document};
use jalin_protocol::signing::LibraryId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Documents of unknown consortia kept, at most.
const ORPHANS_MAX: usize = 10_000;
/// Evaluation periods a member's figures (or signatures) are kept for, per consortium:
/// only real periods are taken, and there are at most this many.
const EVALUATION_PERIODS_MAX: usize = jalin_protocol::consortium::evaluation::PERIODS_MAX;

/// What goes wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConsortiumError {
    /// A document is wrong.
    #[error("{0}")]
    Document(#[from] DocError),
    /// Something named is not here.
    #[error("{0}")]
    NotFound(String),
    /// Not allowed, or not possible in this state.
    #[error("{0}")]
    Refused(Refusal),
    /// Storage failed.
    #[error("storage: {0}")]
    Storage(#[from] sled::Error),
    /// Stored data that does not read back.
    #[error("stored data is damaged: {0}")]
    Damaged(String),
}

impl ConsortiumError {
    /// What kind of failure this is, as a stable name (see [`DocError::code`]).
    pub fn code(&self) -> &'static str {
        match self {
            ConsortiumError::Document(e) => e.code(),
            ConsortiumError::NotFound(_) => "not_found",
            ConsortiumError::Refused(refusal) => refusal.code(),
            ConsortiumError::Storage(_) | ConsortiumError::Damaged(_) => "storage",
        }
    }
}

/// Why the consortium's rules refuse a request, each kind apart (its `code()` is what the
/// API sends and the web pages explain in the librarian's language).
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// A consortium without a name.
    #[error("a consortium needs a name")]
    NoName,
    /// Only admins may do it.
    #[error("only admins {0}; this library is a member")]
    AdminsOnly(&'static str),
    /// This library is not a member.
    #[error("this library is not a member of {0}")]
    NotMember(String),
    /// An invite already expired when made.
    #[error("an invite must expire in the future")]
    ExpiryPassed,
    /// An invite's lifetime out of bounds.
    #[error("an invite lives between 1 second and 365 days")]
    InviteLifetime,
    /// A join code asked of a node whose network is not running.
    #[error(
        "a join code is held by the running node: start it (jalin start, with its network) and \
         make the invite there"
    )]
    CodeNeedsNode,
    /// A library trying its own ticket.
    #[error("this ticket was made by this library; give it to the library you invite")]
    OwnTicket,
    /// Already a member.
    #[error("this library is already a member of {0}")]
    AlreadyMember(String),
    /// An acceptance of someone else's invite.
    #[error("this acceptance answers an invite this library did not issue")]
    NotOurInvite,
    /// A name or id prefix matching several.
    #[error("{0}")]
    Ambiguous(String),
    /// A farewell that is not the sender's own leave.
    #[error("a farewell carries the sender's own leave operation only")]
    NotAFarewell,
    /// A document of a kind this command does not take.
    #[error("this is {0}")]
    WrongDocument(&'static str),
    /// Too many documents wait for an unknown consortium.
    #[error("consortium {consortium} is not known here, and {ORPHANS_MAX} documents already wait for theirs")]
    TooManyWaiting {
        /// The consortium named.
        consortium: String,
    },
    /// A record named not as LIBRARY:RECORD-ID.
    #[error("{0:?}: name a record as LIBRARY:RECORD-ID (the library by its code or key)")]
    BadRecordRef(String),
    /// An operation that is not an add.
    #[error("not an add")]
    NotAnAdd,
    /// A document the membership log did not take, and why.
    #[error("{0}")]
    NotTaken(String),
    /// Purchase plans without an agreement in force that coordinates acquisition.
    #[error(
        "no agreement in force in this library's partnerships has coordinated_acquisition = \
         true; purchase plans are shared only under one"
    )]
    NoCoordinatedAcquisition,
    /// Staff-development posts without an agreement in force that covers them.
    #[error(
        "no agreement in force in this partnership has staff_development = true; trainings, \
         skills and help are shared only under one"
    )]
    NoStaffDevelopment,
}

impl Refusal {
    /// What kind of refusal this is, as a stable name.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NoName => "no_name",
            Refusal::AdminsOnly(_) => "admins_only",
            Refusal::NotMember(_) => "not_member",
            Refusal::ExpiryPassed => "expiry_passed",
            Refusal::InviteLifetime => "invite_lifetime",
            Refusal::CodeNeedsNode => "code_needs_node",
            Refusal::OwnTicket => "own_ticket",
            Refusal::AlreadyMember(_) => "already_member",
            Refusal::NotOurInvite => "not_our_invite",
            Refusal::Ambiguous(_) => "ambiguous",
            Refusal::NotAFarewell => "not_a_farewell",
            Refusal::WrongDocument(_) => "wrong_document",
            Refusal::TooManyWaiting { .. } => "too_many_waiting",
            Refusal::BadRecordRef(_) => "bad_record_ref",
            Refusal::NotAnAdd => "not_an_add",
            Refusal::NotTaken(_) => "refused",
            Refusal::NoCoordinatedAcquisition => "no_coordinated_acquisition",
            Refusal::NoStaffDevelopment => "no_staff_development",
        }
    }

    /// Every kind, for the test that each is explained in both languages.
    #[doc(hidden)]
    pub fn examples() -> Vec<Refusal> {
        vec![
            Refusal::NoName,
            Refusal::AdminsOnly("invite"),
            Refusal::NotMember(String::new()),
            Refusal::ExpiryPassed,
            Refusal::InviteLifetime,
            Refusal::CodeNeedsNode,
            Refusal::OwnTicket,
            Refusal::AlreadyMember(String::new()),
            Refusal::NotOurInvite,
            Refusal::Ambiguous(String::new()),
            Refusal::NotAFarewell,
            Refusal::WrongDocument("an invite"),
            Refusal::TooManyWaiting {
                consortium: String::new(),
            },
            Refusal::BadRecordRef(String::new()),
            Refusal::NotAnAdd,
            Refusal::NotTaken(String::new()),
            Refusal::NoCoordinatedAcquisition,
            Refusal::NoStaffDevelopment,
        ]
    }
}

/// One consortium as this node holds it.
#[derive(Clone, Debug)]
pub struct Consortium {
    /// The membership log.
    pub log: Log,
    /// Agreement versions and signatures.
    pub agreements: Agreements,
    /// "Same" / "not the same" assertions, by id.
    pub assertions: BTreeMap<Hash32, Signed<MatchAssertion>>,
    /// Each member's newest interlibrary-loan tally.
    pub tallies: BTreeMap<LibraryId, Signed<LoanTally>>,
    /// Each member's newest document of each planned title, by (member, item).
    pub plans: BTreeMap<(LibraryId, String), Signed<PlanItem>>,
    /// Each member's newest conspectus.
    pub conspectuses: BTreeMap<LibraryId, Signed<Conspectus>>,
    /// Each member's newest summary of its patrons' searches.
    pub needs: BTreeMap<LibraryId, Signed<NeedsSummary>>,
    /// Each member's newest post of each staff-development item, by (member, item).
    pub staff: BTreeMap<(LibraryId, String), Signed<StaffPost>>,
    /// Each member's newest figures of each evaluation period, by (member, period).
    pub figures: BTreeMap<(LibraryId, String), Signed<MemberFigures>>,
    /// Each member's newest signature of each period's report, by (member, period).
    pub evaluations: BTreeMap<(LibraryId, String), Signed<EvaluationSignature>>,
}

impl Consortium {
    /// A consortium of this log and no other document yet.
    fn new(log: Log) -> Consortium {
        Consortium {
            log,
            agreements: Agreements::default(),
            assertions: BTreeMap::new(),
            tallies: BTreeMap::new(),
            plans: BTreeMap::new(),
            conspectuses: BTreeMap::new(),
            needs: BTreeMap::new(),
            staff: BTreeMap::new(),
            figures: BTreeMap::new(),
            evaluations: BTreeMap::new(),
        }
    }
}

/// A period as an item key: `FROM-TO` (ms).
fn period_item(period: &Period) -> String {
    format!("{}-{}", period.from_ms, period.to_ms)
}

/// A kind of document each member has many of, by (member, item).
type Items<T> = BTreeMap<(LibraryId, String), Signed<T>>;

/// The storage key of a member's item (a planned title, a staff post).
fn item_key(author: &LibraryId, item: &str) -> Hash32 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(author.as_bytes())
        .chain_update(item.as_bytes())
        .finalize();
    let mut out = [0u8; 32];
    out.copy_from_slice(&digest);
    Hash32(out)
}

/// An invite this library issued, as kept: never its ticket, whose secret lets anyone
/// holding it join (another user of the machine could read it from the store). What the
/// node needs of the secret is the public key of the one-off identity it derives.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IssuedInvite {
    /// The ticket, as versions before 0.1 kept it; rewritten away when the store opens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ticket: Option<String>,
    /// When it expires (ms since 1970).
    #[serde(default)]
    pub expires_ms: u64,
    /// The public key of the invite holder's one-off network identity
    /// ([`Invite::join_seed`]), hex.
    #[serde(default)]
    pub join_key: String,
    /// The operation that used it.
    pub used_by: Option<Hash32>,
}

impl IssuedInvite {
    fn of(invite: &Invite) -> IssuedInvite {
        let join_key = SigningKey::from_bytes(&invite.join_seed()).verifying_key();
        IssuedInvite {
            ticket: None,
            expires_ms: invite.expires_ms,
            join_key: jalin_protocol::signing::hex(join_key.as_bytes()),
            used_by: None,
        }
    }
}

/// An invite not used yet: whose one-off identity may join which consortium, until when.
#[derive(Clone, Debug)]
pub struct OpenInvite {
    /// Its consortium.
    pub consortium: Hash32,
    /// The public key of the holder's one-off identity.
    pub join_key: [u8; 32],
    /// When it expires.
    pub expires_ms: u64,
}

/// One line of a consortium at a glance.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Its id.
    pub id: Hash32,
    /// Its name.
    pub name: String,
    /// Current members.
    pub members: usize,
    /// This library's role, if a member.
    pub role: Option<Role>,
    /// Agreements.
    pub agreements: usize,
}

/// What importing a text of documents did, line by line.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ImportReport {
    /// `(line, what happened)` for documents taken in (or already here).
    pub taken: Vec<(usize, String)>,
    /// `(line, why not)` for documents refused.
    pub refused: Vec<(usize, String)>,
    /// How many of those taken were new here (not already held).
    pub new: usize,
}

/// The digest of a consortium's documents as exported: SHA-256 over its document lines,
/// sorted (comments and order do not count). Two nodes holding the same documents have the
/// same digest.
pub fn documents_digest(text: &str) -> [u8; 32] {
    use sha2::Digest;
    let mut lines: Vec<&str> = text.lines().filter(|l| l.starts_with("JALIN-")).collect();
    lines.sort_unstable();
    let mut hasher = sha2::Sha256::new();
    for line in lines {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    hasher.finalize().into()
}

/// What taking one document did.
enum Taken {
    /// Stored: it was new here.
    New(String),
    /// Nothing: it was here already.
    AlreadyHere(String),
}

/// The consortia of one library.
pub struct Consortia {
    db: crate::durable::Db,
    tree: crate::durable::Tree,
    key: SigningKey,
    library: LibraryId,
    name: String,
    code: String,
    held: Mutex<BTreeMap<Hash32, Consortium>>,
    /// The trust rule as of the logs' sizes it was computed from (a log only grows).
    trust: Mutex<(LogSizes, Arc<Trust>)>,
    /// Counts documents taken in: the network announces each change to the members.
    changed: tokio::sync::watch::Sender<u64>,
    /// The time, for what depends on it (the evaluation periods that have started).
    clock: Arc<dyn crate::clock::Clock>,
}

/// Each consortium held and how many operations its log has.
type LogSizes = Vec<(Hash32, usize)>;

fn key(kind: u8, consortium: &Hash32, id: Option<&Hash32>) -> Vec<u8> {
    let mut key = Vec::with_capacity(65);
    key.push(kind);
    key.extend_from_slice(&consortium.0);
    if let Some(id) = id {
        key.extend_from_slice(&id.0);
    }
    key
}

fn random16() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    // getrandom fails only where no OS randomness exists; a zero nonce is then still
    // unique enough for a consortium name, and an invite's secret is checked by id.
    let _ = getrandom::fill(&mut bytes);
    bytes
}

impl Consortia {
    /// Opens the consortia stored in `db`, for the library with `key`.
    pub fn open(
        db: crate::durable::Db,
        key: SigningKey,
        name: &str,
        code: &str,
    ) -> Result<Consortia, ConsortiumError> {
        let tree = db.open_tree("consortia")?;
        let library = LibraryId::from_key(&key.verifying_key());
        let consortia = Consortia {
            db,
            tree,
            key,
            library,
            name: name.to_string(),
            code: code.to_string(),
            held: Mutex::new(BTreeMap::new()),
            trust: Mutex::new((Vec::new(), Arc::new(Trust::default()))),
            changed: tokio::sync::watch::Sender::new(0),
            clock: Arc::new(crate::clock::SystemClock),
        };
        consortia.load()?;
        consortia.forget_invite_secrets()?;
        Ok(consortia)
    }

    /// The same, reading the time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn crate::clock::Clock>) -> Consortia {
        self.clock = clock;
        self
    }

    fn held(&self) -> std::sync::MutexGuard<'_, BTreeMap<Hash32, Consortium>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn load(&self) -> Result<(), ConsortiumError> {
        let mut ops: BTreeMap<Hash32, Vec<Op>> = BTreeMap::new();
        for item in self.tree.scan_prefix([b'o']) {
            let (k, v) = item?;
            let Some(consortium) = k.get(1..33).and_then(|b| b.try_into().ok()) else {
                continue;
            };
            match Signed::from_bytes(&v) {
                Ok(op) => ops.entry(Hash32(consortium)).or_default().push(op),
                Err(error) => tracing::warn!("skipping a damaged stored operation: {error}"),
            }
        }
        let mut held = self.held();
        for (id, list) in ops {
            let (genesis, rest): (Vec<Op>, Vec<Op>) = list
                .into_iter()
                .partition(|op| op.body.consortium.is_none());
            let Some(genesis) = genesis.into_iter().next() else {
                continue;
            };
            let mut log = Log::new(genesis)?;
            for op in rest {
                if let Err(error) = log.insert(op) {
                    tracing::warn!(
                        "a stored operation of {} no longer applies: {error}",
                        id.short()
                    );
                }
            }
            let mut agreements = Agreements::default();
            for item in self.tree.scan_prefix(key(b'v', &id, None)) {
                let (_, v) = item?;
                if let Ok(version) = Signed::<AgreementVersion>::from_bytes(&v) {
                    agreements.versions.insert(version.id(), version);
                }
            }
            for item in self.tree.scan_prefix(key(b'g', &id, None)) {
                let (_, v) = item?;
                if let Ok(signature) = Signed::<AgreementSignature>::from_bytes(&v) {
                    agreements.signatures.insert(signature.id(), signature);
                }
            }
            let mut assertions = BTreeMap::new();
            for item in self.tree.scan_prefix(key(b'm', &id, None)) {
                let (_, v) = item?;
                if let Ok(assertion) = Signed::<MatchAssertion>::from_bytes(&v) {
                    assertions.insert(assertion.id(), assertion);
                }
            }
            let mut tallies = BTreeMap::new();
            for item in self.tree.scan_prefix(key(b't', &id, None)) {
                let (_, v) = item?;
                if let Ok(tally) = Signed::<LoanTally>::from_bytes(&v) {
                    tallies.insert(tally.author, tally);
                }
            }
            let mut plans = BTreeMap::new();
            for item in self.tree.scan_prefix(key(b'p', &id, None)) {
                let (_, v) = item?;
                if let Ok(plan) = Signed::<PlanItem>::from_bytes(&v) {
                    plans.insert((plan.author, plan.body.item.clone()), plan);
                }
            }
            let mut conspectuses = BTreeMap::new();
            for item in self.tree.scan_prefix(key(b'k', &id, None)) {
                let (_, v) = item?;
                if let Ok(conspectus) = Signed::<Conspectus>::from_bytes(&v) {
                    conspectuses.insert(conspectus.author, conspectus);
                }
            }
            let mut needs = BTreeMap::new();
            for item in self.tree.scan_prefix(key(b'n', &id, None)) {
                let (_, v) = item?;
                if let Ok(summary) = Signed::<NeedsSummary>::from_bytes(&v) {
                    needs.insert(summary.author, summary);
                }
            }
            let mut staff = BTreeMap::new();
            for item in self.tree.scan_prefix(key(b's', &id, None)) {
                let (_, v) = item?;
                if let Ok(post) = Signed::<StaffPost>::from_bytes(&v) {
                    staff.insert((post.author, post.body.item.clone()), post);
                }
            }
            let mut figures = BTreeMap::new();
            for item in self.tree.scan_prefix(key(b'f', &id, None)) {
                let (_, v) = item?;
                if let Ok(doc) = Signed::<MemberFigures>::from_bytes(&v) {
                    figures.insert((doc.author, period_item(&doc.body.period)), doc);
                }
            }
            let mut evaluations = BTreeMap::new();
            for item in self.tree.scan_prefix(key(b'e', &id, None)) {
                let (_, v) = item?;
                if let Ok(doc) = Signed::<EvaluationSignature>::from_bytes(&v) {
                    evaluations.insert((doc.author, period_item(&doc.body.period)), doc);
                }
            }
            held.insert(
                id,
                Consortium {
                    log,
                    agreements,
                    assertions,
                    tallies,
                    plans,
                    conspectuses,
                    needs,
                    staff,
                    figures,
                    evaluations,
                },
            );
        }
        Ok(())
    }

    /// How many entries the consortia's storage holds (for checks that a refused document
    /// stored nothing).
    pub fn stored_count(&self) -> usize {
        self.tree.len()
    }

    /// This library's id.
    pub fn library(&self) -> LibraryId {
        self.library
    }

    /// The trust rule as the logs held now say ([`Trust`]): folded again only when a log
    /// has grown since it was last asked.
    pub fn trust(&self) -> Arc<Trust> {
        let held = self.held();
        let sizes: Vec<(Hash32, usize)> =
            held.iter().map(|(id, c)| (*id, c.log.op_count())).collect();
        let mut cached = self.trust.lock().unwrap_or_else(|p| p.into_inner());
        if cached.0 != sizes || sizes.is_empty() {
            let trust = Trust::new(
                self.library,
                held.iter()
                    .map(|(id, c)| (*id, c.log.state().members.keys().copied().collect())),
            );
            *cached = (sizes, Arc::new(trust));
        }
        cached.1.clone()
    }

    /// Every consortium held here.
    pub fn list(&self) -> Vec<Summary> {
        self.held()
            .values()
            .map(|c| {
                let state = c.log.state();
                Summary {
                    id: c.log.id(),
                    name: c.log.name().to_string(),
                    members: state.members.len(),
                    role: state.role(&self.library),
                    agreements: c.agreements.ids().len(),
                }
            })
            .collect()
    }

    /// The consortium named by `id` (a unique prefix of its hex id will do), or the only
    /// one held when `id` is `None`.
    pub fn resolve(&self, id: Option<&str>) -> Result<Hash32, ConsortiumError> {
        let held = self.held();
        let ids: Vec<Hash32> = held.keys().copied().collect();
        resolve_prefix(
            &ids,
            id,
            "consortium",
            "jalin consortium create or jalin join",
        )
    }

    /// A copy of a consortium.
    pub fn get(&self, id: &Hash32) -> Result<Consortium, ConsortiumError> {
        self.held()
            .get(id)
            .cloned()
            .ok_or_else(|| ConsortiumError::NotFound(format!("no consortium {}", id.short())))
    }

    /// Founds a consortium with this library as its first admin.
    pub fn create(&self, name: &str, now_ms: u64) -> Result<Hash32, ConsortiumError> {
        if name.trim().is_empty() {
            return Err(ConsortiumError::Refused(Refusal::NoName));
        }
        let genesis = mlog::genesis(
            &self.key,
            name.trim(),
            &self.name,
            &self.code,
            random16(),
            now_ms,
        );
        let log = Log::new(genesis.clone())?;
        let id = log.id();
        self.tree
            .insert(key(b'o', &id, Some(&id)), genesis.to_bytes())?;
        self.db.flush()?;
        self.held().insert(id, Consortium::new(log));
        Ok(id)
    }

    fn require_role(
        &self,
        consortium: &Consortium,
        role: Role,
        what: &'static str,
    ) -> Result<(), ConsortiumError> {
        match consortium.log.state().role(&self.library) {
            Some(have) if have >= role => Ok(()),
            Some(_) => Err(ConsortiumError::Refused(Refusal::AdminsOnly(what))),
            None => Err(ConsortiumError::Refused(Refusal::NotMember(
                consortium.log.name().to_string(),
            ))),
        }
    }

    /// Makes an invite (a ticket) to join `id`; only admins invite.
    pub fn invite(
        &self,
        id: &Hash32,
        role: Role,
        expires_ms: u64,
        note: &str,
        addresses: Vec<String>,
        now_ms: u64,
    ) -> Result<Signed<Invite>, ConsortiumError> {
        let consortium = self.get(id)?;
        self.require_role(&consortium, Role::Admin, "invite")?;
        if expires_ms <= now_ms {
            return Err(ConsortiumError::Refused(Refusal::ExpiryPassed));
        }
        let invite = Signed::sign(
            &self.key,
            Invite {
                consortium: *id,
                consortium_name: consortium.log.name().to_string(),
                inviter_name: self.name.clone(),
                role,
                created_ms: now_ms,
                expires_ms,
                secret: random16(),
                note: note.to_string(),
                addresses,
            },
        );
        let issued = IssuedInvite::of(&invite.body);
        self.tree.insert(
            key(b'i', id, Some(&invite.id())),
            serde_json::to_vec(&issued).unwrap_or_default(),
        )?;
        self.db.flush()?;
        Ok(invite)
    }

    /// This library's invites not used yet and not expired at `now_ms`.
    pub fn open_invites(&self, now_ms: u64) -> Vec<OpenInvite> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix([b'i']) {
            let Ok((k, v)) = item else { continue };
            let Some(consortium) = k.get(1..33).and_then(|b| b.try_into().ok()) else {
                continue;
            };
            let Ok(issued) = serde_json::from_slice::<IssuedInvite>(&v) else {
                continue;
            };
            let join_key = jalin_protocol::signing::unhex(&issued.join_key)
                .and_then(|b| <[u8; 32]>::try_from(b).ok());
            if let (None, Some(join_key)) = (issued.used_by, join_key) {
                if issued.expires_ms >= now_ms {
                    out.push(OpenInvite {
                        consortium: Hash32(consortium),
                        join_key,
                        expires_ms: issued.expires_ms,
                    });
                }
            }
        }
        out
    }

    /// Rewrites invites kept by an older version with their tickets (secrets included)
    /// into what is kept now.
    fn forget_invite_secrets(&self) -> Result<(), ConsortiumError> {
        let mut batch = sled::Batch::default();
        let mut rewritten = 0usize;
        for item in self.tree.scan_prefix([b'i']) {
            let (k, v) = item?;
            let Ok(issued) = serde_json::from_slice::<IssuedInvite>(&v) else {
                continue;
            };
            let Some(ticket) = &issued.ticket else {
                continue;
            };
            let kept = match Signed::<Invite>::from_text(ticket) {
                Ok(invite) => IssuedInvite {
                    used_by: issued.used_by,
                    ..IssuedInvite::of(&invite.body)
                },
                // Unreadable: kept as used, so it admits no one.
                Err(_) => IssuedInvite {
                    ticket: None,
                    expires_ms: 0,
                    join_key: String::new(),
                    used_by: issued.used_by.or(Some(Hash32([0; 32]))),
                },
            };
            batch.insert(k, serde_json::to_vec(&kept).unwrap_or_default());
            rewritten += 1;
        }
        if rewritten > 0 {
            self.tree.apply_batch(batch)?;
            self.db.flush()?;
            tracing::info!(rewritten, "invite tickets no longer kept in the store");
        }
        Ok(())
    }

    /// The invites this library accepted (each names where its inviter's node listened).
    pub fn accepted_invites(&self) -> Vec<Signed<Invite>> {
        self.tree
            .scan_prefix([b'j'])
            .filter_map(|item| item.ok())
            .filter_map(|(_, v)| Signed::<Invite>::from_bytes(&v).ok())
            .collect()
    }

    /// Accepts a ticket: the acceptance this library signs, to go back to the inviter.
    pub fn join(
        &self,
        ticket: &str,
        addresses: Vec<String>,
        now_ms: u64,
    ) -> Result<Signed<Acceptance>, ConsortiumError> {
        let invite = Signed::<Invite>::from_text(ticket)?;
        if invite.author == self.library {
            return Err(ConsortiumError::Refused(Refusal::OwnTicket));
        }
        // Judged by this library's clock, the inviter's dates: up to a day past the
        // expiry is taken as the two clocks' difference (the inviter's node decides).
        if now_ms
            > invite
                .body
                .expires_ms
                .saturating_add(crate::clock::SKEW_TOLERANCE_MS)
        {
            return Err(DocError::Expired {
                expired_ms: invite.body.expires_ms,
                at_ms: now_ms,
            }
            .into());
        }
        if let Some(consortium) = self.held().get(&invite.body.consortium) {
            if consortium.log.state().members.contains_key(&self.library) {
                return Err(ConsortiumError::Refused(Refusal::AlreadyMember(
                    consortium.log.name().to_string(),
                )));
            }
        }
        let acceptance = Signed::sign(
            &self.key,
            Acceptance {
                consortium: invite.body.consortium,
                invite: invite.clone(),
                name: self.name.clone(),
                code: self.code.clone(),
                // Within the day's tolerance past the expiry (by this clock), dated at the
                // expiry: the log's rule stays what every node checks, and the inviter's
                // own clock decides whether it still admits the joiner.
                time_ms: now_ms.min(invite.body.expires_ms),
                addresses,
            },
        );
        check_acceptance(&acceptance, None)?;
        self.tree
            .insert(key(b'j', &invite.body.consortium, None), invite.to_bytes())?;
        self.db.flush()?;
        Ok(acceptance)
    }

    /// Turns an acceptance of one of this library's invites into an "add" in the log.
    pub fn accept(&self, text: &str, now_ms: u64) -> Result<Op, ConsortiumError> {
        let acceptance = Signed::<Acceptance>::from_text(text)?;
        let id = acceptance.body.consortium;
        let invite_id = acceptance.body.invite.id();
        let Some(issued) = self.tree.get(key(b'i', &id, Some(&invite_id)))? else {
            if !self.held().contains_key(&id) {
                return Err(DocError::WrongConsortium {
                    expected: self
                        .held()
                        .keys()
                        .next()
                        .copied()
                        .unwrap_or(Hash32([0; 32])),
                    found: id,
                }
                .into());
            }
            return Err(ConsortiumError::Refused(Refusal::NotOurInvite));
        };
        let issued: IssuedInvite = serde_json::from_slice(&issued)
            .map_err(|e| ConsortiumError::Damaged(format!("a stored invite: {e}")))?;
        if let Some(by) = issued.used_by {
            return Err(DocError::InviteUsed {
                invite: invite_id,
                by,
            }
            .into());
        }
        check_acceptance(&acceptance, Some(id))?;
        let expires_ms = acceptance.body.invite.body.expires_ms;
        if now_ms > expires_ms {
            return Err(DocError::Expired {
                expired_ms: expires_ms,
                at_ms: now_ms,
            }
            .into());
        }
        let mut held = self.held();
        // Read again under the lock: two joins at once under one ticket must not both
        // pass the check above.
        let issued: IssuedInvite = match self.tree.get(key(b'i', &id, Some(&invite_id)))? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| ConsortiumError::Damaged(format!("a stored invite: {e}")))?,
            None => issued,
        };
        if let Some(by) = issued.used_by {
            return Err(DocError::InviteUsed {
                invite: invite_id,
                by,
            }
            .into());
        }
        let consortium = held
            .get_mut(&id)
            .ok_or_else(|| ConsortiumError::NotFound(format!("no consortium {}", id.short())))?;
        let op = mlog::make_op(
            &self.key,
            &consortium.log,
            Action::Add {
                acceptance: Box::new(acceptance),
            },
            now_ms,
        );
        let mut log = consortium.log.clone();
        log.insert(op.clone())?;
        let mut batch = sled::Batch::default();
        batch.insert(key(b'o', &id, Some(&op.id())), op.to_bytes());
        let used = IssuedInvite {
            used_by: Some(op.id()),
            ..issued
        };
        batch.insert(
            key(b'i', &id, Some(&invite_id)),
            serde_json::to_vec(&used).unwrap_or_default(),
        );
        self.tree.apply_batch(batch)?;
        self.db.flush()?;
        consortium.log = log;
        self.note_changed();
        Ok(op)
    }

    /// Makes and stores a membership operation by this library.
    fn act(&self, id: &Hash32, action: Action, now_ms: u64) -> Result<Op, ConsortiumError> {
        let mut held = self.held();
        let consortium = held
            .get_mut(id)
            .ok_or_else(|| ConsortiumError::NotFound(format!("no consortium {}", id.short())))?;
        let op = mlog::make_op(&self.key, &consortium.log, action, now_ms);
        let mut log = consortium.log.clone();
        log.insert(op.clone())?;
        self.tree
            .insert(key(b'o', id, Some(&op.id())), op.to_bytes())?;
        self.db.flush()?;
        consortium.log = log;
        self.note_changed();
        Ok(op)
    }

    /// Removes a member (admins only).
    pub fn remove(
        &self,
        id: &Hash32,
        member: LibraryId,
        reason: &str,
        now_ms: u64,
    ) -> Result<Op, ConsortiumError> {
        self.act(
            id,
            Action::Remove {
                member,
                reason: reason.to_string(),
            },
            now_ms,
        )
    }

    /// Changes a member's role (admins only).
    pub fn set_role(
        &self,
        id: &Hash32,
        member: LibraryId,
        role: Role,
        now_ms: u64,
    ) -> Result<Op, ConsortiumError> {
        self.act(id, Action::ChangeRole { member, role }, now_ms)
    }

    /// This library leaves.
    pub fn leave(&self, id: &Hash32, now_ms: u64) -> Result<Op, ConsortiumError> {
        self.act(id, Action::Leave, now_ms)
    }

    /// Finds a member by hex key, key prefix, fingerprint or code.
    pub fn find_member(&self, id: &Hash32, who: &str) -> Result<LibraryId, ConsortiumError> {
        let consortium = self.get(id)?;
        let state = consortium.log.state();
        let wanted = who.trim().to_lowercase().replace('-', "");
        let found: Vec<LibraryId> = state
            .members
            .values()
            .chain(state.former.values().map(|(m, _, _)| m))
            .filter(|m| {
                m.code.eq_ignore_ascii_case(who.trim())
                    || (wanted.len() >= 8 && m.library.to_hex().starts_with(&wanted))
            })
            .map(|m| m.library)
            .collect();
        match found.as_slice() {
            [one] => Ok(*one),
            [] => Err(ConsortiumError::NotFound(format!(
                "no member {who:?} (give its code, fingerprint or key)"
            ))),
            _ => Err(ConsortiumError::Refused(Refusal::Ambiguous(format!(
                "{who:?} names more than one library; give more of its key"
            )))),
        }
    }

    /// Takes in a text of documents (one per line): membership operations, agreement
    /// versions and signatures, of any consortium, in any order.
    pub fn import(&self, text: &str) -> Result<ImportReport, ConsortiumError> {
        self.import_where(text, |_| true)
    }

    /// Takes in documents a member's node sent: only those of consortia `peer` shares
    /// with this library as current members (the trust rule). A consortium this library
    /// is no member of is neither fetched nor kept, its founding operation included.
    pub fn import_from_member(
        &self,
        text: &str,
        peer: &LibraryId,
    ) -> Result<ImportReport, ConsortiumError> {
        let trust = self.trust();
        self.import_where(text, |consortium| trust.shares(peer, consortium))
    }

    /// Takes in a member's own leave operation, pushed by its node as it goes (the sync
    /// protocol's `Left`): one operation, signed by `peer`, leaving a consortium it shares
    /// with this library. Whether it was new here.
    pub fn take_leave(&self, text: &str, peer: &LibraryId) -> Result<bool, ConsortiumError> {
        match Document::from_text(text.trim())? {
            Document::Op(op) if op.author == *peer && matches!(op.body.action, Action::Leave) => {}
            _ => return Err(ConsortiumError::Refused(Refusal::NotAFarewell)),
        }
        let report = self.import_from_member(text, peer)?;
        if let Some((_, why)) = report.refused.into_iter().next() {
            return Err(ConsortiumError::Refused(Refusal::NotTaken(why)));
        }
        Ok(report.new > 0)
    }

    /// This library's own leave operations, by consortium, with the members it left
    /// behind (whom its node tells before cutting them off).
    pub fn own_leaves(&self) -> Vec<(Hash32, String, Vec<LibraryId>)> {
        let own = self.library();
        let mut out = Vec::new();
        for (id, consortium) in self.held().iter() {
            let state = consortium.log.state();
            let Some((_, by, op)) = state.former.get(&own) else {
                continue;
            };
            if *by != own {
                continue;
            }
            if let Some(op) = consortium.log.ops().into_iter().find(|o| o.id() == *op) {
                out.push((*id, op.to_text(), state.members.keys().copied().collect()));
            }
        }
        out
    }

    fn import_where(
        &self,
        text: &str,
        may_take: impl Fn(&Hash32) -> bool,
    ) -> Result<ImportReport, ConsortiumError> {
        let mut report = ImportReport::default();
        let mut documents: Vec<(usize, Document)> = Vec::new();
        for (line, document) in read_documents(text) {
            match document {
                Ok(document) if !may_take(&document.consortium()) => report.refused.push((
                    line,
                    format!(
                        "line {line}: a document of consortium {}, which the sender does not \
                         share with this library",
                        document.consortium().short()
                    ),
                )),
                Ok(document) => documents.push((line, document)),
                Err(error) => report.refused.push((line, format!("line {line}: {error}"))),
            }
        }
        // Genesis operations first, so a file carries a whole consortium in any order.
        documents.sort_by_key(|(line, d)| {
            (
                !matches!(d, Document::Op(op) if op.body.consortium.is_none()),
                *line,
            )
        });
        for (line, document) in documents {
            match self.take(document) {
                Ok(Taken::New(what)) => {
                    report.new += 1;
                    report.taken.push((line, what));
                }
                Ok(Taken::AlreadyHere(what)) => report.taken.push((line, what)),
                Err(error) => report.refused.push((line, format!("line {line}: {error}"))),
            }
        }
        report.taken.sort();
        report.refused.sort();
        self.db.flush()?;
        Ok(report)
    }

    /// Keeps a document of a kind each member has many of, one per item (a planned
    /// title, a staff post), checked already, in consortium `id` under `kind`: refused from
    /// a library that is not a member, not kept when as new or newer is here, and refused
    /// when its author already has `max` items here.
    #[allow(clippy::too_many_arguments)]
    fn keep_item<T: jalin_protocol::consortium::document::Kind>(
        &self,
        id: Hash32,
        kind: u8,
        what: &str,
        document: Signed<T>,
        item: fn(&T) -> String,
        time: fn(&T) -> u64,
        max: usize,
        slot: fn(&mut Consortium) -> &mut Items<T>,
    ) -> Result<Taken, ConsortiumError> {
        let mut held = self.held();
        let Some(consortium) = held.get_mut(&id) else {
            return Err(ConsortiumError::NotFound("consortium gone".into()));
        };
        if !consortium
            .log
            .state()
            .members
            .contains_key(&document.author)
        {
            return Err(
                DocError::Rejected(format!("a {what} of a library that is not a member")).into(),
            );
        }
        let name = item(&document.body);
        let items = slot(consortium);
        match items.get(&(document.author, name.clone())) {
            Some(held)
                if (time(&held.body), held.id()) >= (time(&document.body), document.id()) =>
            {
                return Ok(Taken::AlreadyHere(format!(
                    "{what} {name} of {} as new or newer is here",
                    document.author.fingerprint()
                )));
            }
            Some(_) => {}
            None => {
                let count = items
                    .keys()
                    .filter(|(author, _)| *author == document.author)
                    .count();
                if count >= max {
                    return Err(DocError::Rejected(format!(
                        "{} already has {count} of these here ({what}s), the most kept",
                        document.author.fingerprint()
                    ))
                    .into());
                }
            }
        }
        self.tree.insert(
            key(kind, &id, Some(&item_key(&document.author, &name))),
            document.to_bytes(),
        )?;
        let did = document.id();
        items.insert((document.author, name), document);
        Ok(Taken::New(format!("{what} {} taken", did.short())))
    }

    /// Keeps a document of a kind each member has one of (its newest: a loan tally, a
    /// conspectus, a needs summary), checked already, in consortium `id` under `kind`:
    /// refused from a library that is not a member, and not kept when as new or newer is
    /// here (`slot`: where the consortium holds that kind).
    fn keep_newest<T: jalin_protocol::consortium::document::Kind>(
        &self,
        id: Hash32,
        kind: u8,
        what: &str,
        document: Signed<T>,
        time: fn(&T) -> u64,
        slot: fn(&mut Consortium) -> &mut BTreeMap<LibraryId, Signed<T>>,
    ) -> Result<Taken, ConsortiumError> {
        let mut held = self.held();
        let Some(consortium) = held.get_mut(&id) else {
            return Err(ConsortiumError::NotFound("consortium gone".into()));
        };
        if !consortium
            .log
            .state()
            .members
            .contains_key(&document.author)
        {
            return Err(
                DocError::Rejected(format!("a {what} of a library that is not a member")).into(),
            );
        }
        let kept = slot(consortium);
        let newer = kept.get(&document.author).is_none_or(|held| {
            (time(&held.body), held.id()) < (time(&document.body), document.id())
        });
        if !newer {
            return Ok(Taken::AlreadyHere(format!(
                "a {what} of {} as new or newer is here",
                document.author.fingerprint()
            )));
        }
        self.tree.insert(
            key(kind, &id, Some(&Hash32(*document.author.as_bytes()))),
            document.to_bytes(),
        )?;
        let did = document.id();
        kept.insert(document.author, document);
        Ok(Taken::New(format!("{what} {} taken", did.short())))
    }

    /// Takes one document in (not flushed: the caller flushes).
    /// Changes whenever a document new here is taken in (made here or received): what
    /// the network watches to announce the consortia's documents to the members.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn take(&self, document: Document) -> Result<Taken, ConsortiumError> {
        let taken = self.take_checked(document)?;
        if matches!(taken, Taken::New(_)) {
            self.note_changed();
        }
        Ok(taken)
    }

    /// A document new here was kept: the network announces it.
    fn note_changed(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn take_checked(&self, document: Document) -> Result<Taken, ConsortiumError> {
        // A document of a consortium not held yet waits for its genesis (an operation
        // waits in `take_op`, which also takes a genesis; invites and acceptances are
        // refused below).
        let waits = !matches!(
            document,
            Document::Op(_) | Document::Invite(_) | Document::Acceptance(_)
        );
        let consortium = document.consortium();
        if waits && !self.held().contains_key(&consortium) {
            return self.keep_orphan(consortium, document.id(), &document);
        }
        match document {
            Document::Op(op) => self.take_op(op),
            Document::Version(version) => {
                let id = version.body.consortium;
                AgreementVersion::check(&version, id)?;
                let vid = version.id();
                let mut held = self.held();
                let Some(consortium) = held.get_mut(&id) else {
                    return Err(ConsortiumError::NotFound("consortium gone".into()));
                };
                if consortium.agreements.versions.contains_key(&vid) {
                    return Ok(Taken::AlreadyHere(format!(
                        "agreement version {} already here",
                        vid.short()
                    )));
                }
                self.tree
                    .insert(key(b'v', &id, Some(&vid)), version.to_bytes())?;
                consortium.agreements.versions.insert(vid, version);
                Ok(Taken::New(format!(
                    "agreement version {} taken",
                    vid.short()
                )))
            }
            Document::Signature(signature) => {
                let id = signature.body.consortium;
                check_signature(&signature, id)?;
                let sid = signature.id();
                let mut held = self.held();
                let Some(consortium) = held.get_mut(&id) else {
                    return Err(ConsortiumError::NotFound("consortium gone".into()));
                };
                if consortium.agreements.signatures.contains_key(&sid) {
                    return Ok(Taken::AlreadyHere(format!(
                        "signature {} already here",
                        sid.short()
                    )));
                }
                self.tree
                    .insert(key(b'g', &id, Some(&sid)), signature.to_bytes())?;
                consortium.agreements.signatures.insert(sid, signature);
                Ok(Taken::New(format!("signature {} taken", sid.short())))
            }
            Document::Match(assertion) => {
                let id = assertion.body.consortium;
                MatchAssertion::check(&assertion, id)?;
                let aid = assertion.id();
                let mut held = self.held();
                let Some(consortium) = held.get_mut(&id) else {
                    return Err(ConsortiumError::NotFound("consortium gone".into()));
                };
                if consortium.assertions.contains_key(&aid) {
                    return Ok(Taken::AlreadyHere(format!(
                        "assertion {} already here",
                        aid.short()
                    )));
                }
                self.tree
                    .insert(key(b'm', &id, Some(&aid)), assertion.to_bytes())?;
                consortium.assertions.insert(aid, assertion);
                Ok(Taken::New(format!("assertion {} taken", aid.short())))
            }
            Document::Tally(tally) => {
                let id = tally.body.consortium;
                LoanTally::check(&tally, id)?;
                self.keep_newest(
                    id,
                    b't',
                    "loan tally",
                    tally,
                    |t| t.time_ms,
                    |c| &mut c.tallies,
                )
            }
            Document::Plan(plan) => {
                let id = plan.body.consortium;
                PlanItem::check(&plan, id)?;
                // Not kept, nor passed on, where no agreement in force coordinates
                // acquisition.
                if !self
                    .terms_in_force(&id)?
                    .is_some_and(|t| t.coordinated_acquisition)
                {
                    return Err(DocError::Rejected(
                        "a purchase plan where the agreement in force does not coordinate \
                         acquisition"
                            .into(),
                    )
                    .into());
                }
                self.keep_item(
                    id,
                    b'p',
                    "purchase plan",
                    plan,
                    |p| p.item.clone(),
                    |p| p.time_ms,
                    jplan::ITEMS_MAX,
                    |c| &mut c.plans,
                )
            }
            Document::Conspectus(conspectus) => {
                let id = conspectus.body.consortium;
                Conspectus::check(&conspectus, id)?;
                self.keep_newest(
                    id,
                    b'k',
                    "conspectus",
                    conspectus,
                    |c| c.time_ms,
                    |c| &mut c.conspectuses,
                )
            }
            Document::Needs(summary) => {
                let id = summary.body.consortium;
                NeedsSummary::check(&summary, id)?;
                // Not kept, nor passed on, where the agreement does not share needs.
                if !self.shares_needs(&id)? {
                    return Err(DocError::Rejected(
                        "a needs summary where the agreement in force does not share needs \
                         (share_needs = false)"
                            .into(),
                    )
                    .into());
                }
                self.keep_newest(
                    id,
                    b'n',
                    "needs summary",
                    summary,
                    |n| n.time_ms,
                    |c| &mut c.needs,
                )
            }
            Document::Staff(post) => {
                let id = post.body.consortium;
                StaffPost::check(&post, id)?;
                // Not kept, nor passed on, where no agreement in force has staff
                // development.
                if !self.develops_staff(&id)? {
                    return Err(DocError::Rejected(
                        "a staff-development post where the agreement in force does not \
                         cover staff development"
                            .into(),
                    )
                    .into());
                }
                self.keep_item(
                    id,
                    b's',
                    "staff post",
                    post,
                    |p| p.item.clone(),
                    |p| p.time_ms,
                    jstaff::POSTS_MAX,
                    |c| &mut c.staff,
                )
            }
            Document::Figures(doc) => {
                let id = doc.body.consortium;
                MemberFigures::check(&doc, id)?;
                self.require_period(&id, &doc.body.period)?;
                self.keep_item(
                    id,
                    b'f',
                    "evaluation figures",
                    doc,
                    |f| period_item(&f.period),
                    |f| f.time_ms,
                    EVALUATION_PERIODS_MAX,
                    |c| &mut c.figures,
                )
            }
            Document::Evaluation(doc) => {
                let id = doc.body.consortium;
                EvaluationSignature::check(&doc, id)?;
                self.require_period(&id, &doc.body.period)?;
                self.keep_item(
                    id,
                    b'e',
                    "evaluation signature",
                    doc,
                    |e| period_item(&e.period),
                    |e| e.time_ms,
                    EVALUATION_PERIODS_MAX,
                    |c| &mut c.evaluations,
                )
            }
            Document::Invite(_) => Err(ConsortiumError::Refused(Refusal::WrongDocument(
                "an invite: use `jalin join` with it",
            ))),
            Document::Acceptance(_) => Err(ConsortiumError::Refused(Refusal::WrongDocument(
                "an acceptance: use `jalin consortium accept` with it",
            ))),
        }
    }

    fn keep_orphan(
        &self,
        consortium: Hash32,
        id: Hash32,
        document: &Document,
    ) -> Result<Taken, ConsortiumError> {
        if self.tree.scan_prefix([b'q']).count() >= ORPHANS_MAX {
            return Err(ConsortiumError::Refused(Refusal::TooManyWaiting {
                consortium: consortium.short(),
            }));
        }
        self.tree.insert(
            key(b'q', &consortium, Some(&id)),
            document.to_text().into_bytes(),
        )?;
        Ok(Taken::New(format!(
            "kept until the genesis of consortium {} arrives",
            consortium.short()
        )))
    }

    fn take_op(&self, op: Op) -> Result<Taken, ConsortiumError> {
        let op_id = op.id();
        let Some(id) = op.body.consortium else {
            // A genesis: a consortium new here, or one already held.
            let log = Log::new(op.clone())?;
            let id = log.id();
            if self.held().contains_key(&id) {
                return Ok(Taken::AlreadyHere(format!(
                    "genesis of {} already here",
                    log.name()
                )));
            }
            self.tree.insert(key(b'o', &id, Some(&id)), op.to_bytes())?;
            let name = log.name().to_string();
            self.held().insert(id, Consortium::new(log));
            // Documents that waited for this consortium.
            let mut orphans = Vec::new();
            for item in self.tree.scan_prefix(key(b'q', &id, None)) {
                let (k, v) = item?;
                self.tree.remove(k)?;
                orphans.push(String::from_utf8_lossy(&v).into_owned());
            }
            // In the order an export has them: operations, agreement versions and
            // signatures (what puts an agreement in force), then what depends on them.
            let mut waiting: Vec<Document> = orphans
                .iter()
                .filter_map(|text| Document::from_text(text).ok())
                .collect();
            waiting.sort_by_key(|d| match d {
                Document::Op(_) => 0,
                Document::Version(_) => 1,
                Document::Signature(_) => 2,
                _ => 3,
            });
            for document in waiting {
                if let Err(error) = self.take(document) {
                    tracing::warn!("a document that waited for {name} is refused: {error}");
                }
            }
            return Ok(Taken::New(format!(
                "consortium {name} ({}) taken",
                id.short()
            )));
        };
        if !self.held().contains_key(&id) {
            return self.keep_orphan(id, op_id, &Document::Op(op));
        }
        let mut held = self.held();
        let Some(consortium) = held.get_mut(&id) else {
            return Err(ConsortiumError::NotFound("consortium gone".into()));
        };
        let mut log = consortium.log.clone();
        let inserted = log.insert(op.clone())?;
        let what = match &inserted {
            Inserted::Duplicate => {
                return Ok(Taken::AlreadyHere(format!(
                    "operation {} already here",
                    op_id.short()
                )))
            }
            Inserted::Pending { missing } => format!(
                "operation {} waits for {} earlier operation(s)",
                op_id.short(),
                missing.len()
            ),
            Inserted::Applied { applied, refused } => {
                for (refused_id, error) in refused {
                    self.tree.remove(key(b'o', &id, Some(refused_id)))?;
                    tracing::warn!("waiting operation {} refused: {error}", refused_id.short());
                }
                format!(
                    "operation {} applied{}",
                    op_id.short(),
                    if applied.len() > 1 {
                        format!(" (and {} that waited for it)", applied.len() - 1)
                    } else {
                        String::new()
                    }
                )
            }
        };
        self.tree
            .insert(key(b'o', &id, Some(&op_id)), op.to_bytes())?;
        consortium.log = log;
        Ok(Taken::New(what))
    }

    /// Every document of a consortium, one per line: what another member needs to have
    /// the same log and agreements.
    pub fn export(&self, id: &Hash32) -> Result<String, ConsortiumError> {
        let consortium = self.get(id)?;
        let mut out = format!(
            "# Jalin consortium \"{}\" ({}): membership operations, agreement versions and signatures.\n# Take them in with: jalin consortium import THIS-FILE\n",
            consortium.log.name(),
            id
        );
        for op in consortium.log.ops() {
            out.push_str(&op.to_text());
            out.push('\n');
        }
        for op in consortium.log.pending() {
            out.push_str(&op.to_text());
            out.push('\n');
        }
        for version in consortium.agreements.versions.values() {
            out.push_str(&version.to_text());
            out.push('\n');
        }
        for signature in consortium.agreements.signatures.values() {
            out.push_str(&signature.to_text());
            out.push('\n');
        }
        for assertion in consortium.assertions.values() {
            out.push_str(&assertion.to_text());
            out.push('\n');
        }
        for tally in consortium.tallies.values() {
            out.push_str(&tally.to_text());
            out.push('\n');
        }
        // A removed member's plans and posts stop spreading with it.
        let members = consortium.log.state().members;
        for plan in consortium.plans.values() {
            if members.contains_key(&plan.author) {
                out.push_str(&plan.to_text());
                out.push('\n');
            }
        }
        for post in consortium.staff.values() {
            if members.contains_key(&post.author) {
                out.push_str(&post.to_text());
                out.push('\n');
            }
        }
        for doc in consortium.figures.values() {
            if members.contains_key(&doc.author) {
                out.push_str(&doc.to_text());
                out.push('\n');
            }
        }
        for doc in consortium.evaluations.values() {
            if members.contains_key(&doc.author) {
                out.push_str(&doc.to_text());
                out.push('\n');
            }
        }
        for conspectus in consortium.conspectuses.values() {
            out.push_str(&conspectus.to_text());
            out.push('\n');
        }
        for summary in consortium.needs.values() {
            out.push_str(&summary.to_text());
            out.push('\n');
        }
        Ok(out)
    }

    /// The member set.
    pub fn members(&self, id: &Hash32) -> Result<MemberState, ConsortiumError> {
        Ok(self.get(id)?.log.state())
    }

    /// Drafts a new agreement from a file's text (terms in front matter, then Markdown).
    pub fn draft(&self, id: &Hash32, file: &str, now_ms: u64) -> Result<Hash32, ConsortiumError> {
        self.write_version(id, None, file, now_ms)
    }

    /// A new version of agreement `agreement`, amending its newest version.
    pub fn amend(
        &self,
        id: &Hash32,
        agreement: &Hash32,
        file: &str,
        now_ms: u64,
    ) -> Result<Hash32, ConsortiumError> {
        self.write_version(id, Some(agreement), file, now_ms)
    }

    fn write_version(
        &self,
        id: &Hash32,
        agreement: Option<&Hash32>,
        file: &str,
        now_ms: u64,
    ) -> Result<Hash32, ConsortiumError> {
        let consortium = self.get(id)?;
        self.require_role(&consortium, Role::Member, "draft")?;
        let (title, terms, text) = parse_draft(file)?;
        let previous = match agreement {
            None => None,
            Some(agreement) => {
                let chain = consortium.agreements.chain(agreement);
                let Some((last, _)) = chain.last() else {
                    return Err(ConsortiumError::NotFound(format!(
                        "no agreement {}",
                        agreement.short()
                    )));
                };
                Some(*last)
            }
        };
        let version = Signed::sign(
            &self.key,
            AgreementVersion {
                consortium: *id,
                agreement: agreement.copied(),
                previous,
                title,
                text,
                terms,
                time_ms: now_ms,
            },
        );
        AgreementVersion::check(&version, *id)?;
        let vid = version.id();
        self.tree
            .insert(key(b'v', id, Some(&vid)), version.to_bytes())?;
        self.db.flush()?;
        self.note_changed();
        if let Some(consortium) = self.held().get_mut(id) {
            consortium.agreements.versions.insert(vid, version);
        }
        Ok(vid)
    }

    /// The agreement named by a unique prefix of its id (or the only one).
    pub fn resolve_agreement(
        &self,
        id: &Hash32,
        agreement: Option<&str>,
    ) -> Result<Hash32, ConsortiumError> {
        let ids = self.get(id)?.agreements.ids();
        resolve_prefix(&ids, agreement, "agreement", "jalin agreement draft")
    }

    /// Signs the newest version of an agreement (or `version`, a prefix of its id).
    pub fn sign(
        &self,
        id: &Hash32,
        agreement: &Hash32,
        version: Option<&str>,
        now_ms: u64,
    ) -> Result<Hash32, ConsortiumError> {
        let consortium = self.get(id)?;
        self.require_role(&consortium, Role::Member, "sign")?;
        let chain: Vec<Hash32> = consortium
            .agreements
            .chain(agreement)
            .iter()
            .map(|(vid, _)| *vid)
            .collect();
        let target = match version {
            None => chain.last().copied().ok_or_else(|| {
                ConsortiumError::NotFound(format!("no agreement {}", agreement.short()))
            })?,
            Some(prefix) => resolve_prefix(&chain, Some(prefix), "version", "")?,
        };
        let signature = Signed::sign(
            &self.key,
            AgreementSignature {
                consortium: *id,
                version: target,
                time_ms: now_ms,
            },
        );
        let sid = signature.id();
        self.tree
            .insert(key(b'g', id, Some(&sid)), signature.to_bytes())?;
        self.db.flush()?;
        self.note_changed();
        if let Some(consortium) = self.held().get_mut(id) {
            consortium.agreements.signatures.insert(sid, signature);
        }
        Ok(target)
    }

    /// The terms in force in a consortium: those of the newest version in force among
    /// its agreements (by the time it was written, then id); `None` when none is in force.
    pub fn terms_in_force(&self, id: &Hash32) -> Result<Option<Terms>, ConsortiumError> {
        Ok(self.agreement_in_force(id)?.map(|v| v.body.terms))
    }

    /// The agreement version in force in a consortium: the newest in force among its
    /// agreements (by the time it was written, then id).
    pub fn agreement_in_force(
        &self,
        id: &Hash32,
    ) -> Result<Option<Signed<AgreementVersion>>, ConsortiumError> {
        let consortium = self.get(id)?;
        let members = consortium.log.state();
        let newest = consortium
            .agreements
            .ids()
            .iter()
            .filter_map(|aid| consortium.agreements.status(aid, &members)?.in_force)
            .filter_map(|vid| consortium.agreements.versions.get(&vid))
            .max_by_key(|v| (v.body.time_ms, v.id()))
            .cloned();
        Ok(newest)
    }

    /// The evaluation periods of consortium `id` that have started: from the first day
    /// (WIB) of the month of the first version of the agreement in force, every
    /// `evaluation_period_months`. None without an agreement in force.
    pub fn evaluation_periods(&self, id: &Hash32) -> Result<Vec<Period>, ConsortiumError> {
        let Some(version) = self.agreement_in_force(id)? else {
            return Ok(Vec::new());
        };
        let consortium = self.get(id)?;
        let agreement = AgreementVersion::agreement_of(&version);
        let first = consortium
            .agreements
            .versions
            .get(&agreement)
            .map_or(version.body.time_ms, |v| v.body.time_ms);
        Ok(jalin_protocol::consortium::evaluation::periods(
            first,
            version.body.terms.evaluation_period_months,
            self.clock.now_ms(),
        ))
    }

    /// Refuses evaluation documents of a period that cannot be one of the consortium's: a
    /// made-up or future period would let a member fill every node's storage, or sign a
    /// period in advance. What is checked depends on no agreement in particular (an
    /// amendment or another agreement does not make documents held everywhere invalid
    /// here): the period runs from midnight WIB on the first of a month, for 1 to 60
    /// months; it starts no earlier than the month of the consortium's first agreement
    /// version, and has started (a day's grace for a member whose clock runs ahead).
    fn require_period(&self, id: &Hash32, period: &Period) -> Result<(), ConsortiumError> {
        use jalin_protocol::consortium::evaluation::month_start;
        let first_version = self
            .held()
            .get(id)
            .and_then(|c| c.agreements.versions.values().map(|v| v.body.time_ms).min());
        let plausible = first_version.is_some_and(|first| {
            period.from_ms == month_start(period.from_ms, 0)
                && period.from_ms >= month_start(first, 0)
                && period.from_ms
                    <= self
                        .clock
                        .now_ms()
                        .saturating_add(crate::clock::SKEW_TOLERANCE_MS)
                && (1..=agreement::EVALUATION_MONTHS_MAX)
                    .any(|k| month_start(period.from_ms, k) == period.to_ms)
        });
        if plausible {
            return Ok(());
        }
        Err(DocError::Rejected(
            "evaluation figures or a signature for a period that is not one of the \
             agreement's (a month's first day in WIB, 1 to 60 months, started, and not before \
             the consortium's first agreement)"
                .into(),
        )
        .into())
    }

    /// Each current member's newest figures for `period` in consortium `id`.
    pub fn evaluation_figures(
        &self,
        id: &Hash32,
        period: &Period,
    ) -> Result<BTreeMap<LibraryId, MemberFigures>, ConsortiumError> {
        let consortium = self.get(id)?;
        let members = consortium.log.state().members;
        let item = period_item(period);
        Ok(consortium
            .figures
            .iter()
            .filter(|((l, p), _)| *p == item && members.contains_key(l))
            .map(|((l, _), d)| (*l, d.body.clone()))
            .collect())
    }

    /// Each current member's newest signature of `period`'s report in consortium `id`.
    pub fn evaluation_signatures(
        &self,
        id: &Hash32,
        period: &Period,
    ) -> Result<Vec<Signed<EvaluationSignature>>, ConsortiumError> {
        let consortium = self.get(id)?;
        let members = consortium.log.state().members;
        let item = period_item(period);
        Ok(consortium
            .evaluations
            .iter()
            .filter(|((l, p), _)| *p == item && members.contains_key(l))
            .map(|(_, d)| d.clone())
            .collect())
    }

    /// Signs and keeps this library's figures for a period: refused once any member has
    /// signed that period's report (the figures signed are the figures that stay).
    pub fn publish_figures(
        &self,
        id: &Hash32,
        figures: MemberFigures,
    ) -> Result<Signed<MemberFigures>, ConsortiumError> {
        let consortium = self.get(id)?;
        self.require_role(&consortium, Role::Member, "give evaluation figures")?;
        let signed_here = consortium
            .evaluations
            .contains_key(&(self.library, period_item(&figures.period)));
        if signed_here {
            return Err(ConsortiumError::Refused(Refusal::NotTaken(
                "the period's report is signed already: its figures stay as signed".into(),
            )));
        }
        let previous = consortium
            .figures
            .get(&(self.library, period_item(&figures.period)));
        let time_ms = previous.map_or(figures.time_ms, |p| figures.time_ms.max(p.body.time_ms + 1));
        let signed = Signed::sign(
            &self.key,
            MemberFigures {
                consortium: *id,
                time_ms,
                ..figures
            },
        );
        MemberFigures::check(&signed, *id)?;
        match self.take(Document::Figures(signed.clone()))? {
            Taken::New(_) => {
                self.db.flush()?;
                Ok(signed)
            }
            Taken::AlreadyHere(why) => Err(ConsortiumError::Refused(Refusal::NotTaken(why))),
        }
    }

    /// Signs and keeps this library's signature on a period's report.
    pub fn publish_evaluation(
        &self,
        id: &Hash32,
        evaluation: EvaluationSignature,
    ) -> Result<Signed<EvaluationSignature>, ConsortiumError> {
        let consortium = self.get(id)?;
        self.require_role(&consortium, Role::Member, "sign an evaluation")?;
        let previous = consortium
            .evaluations
            .get(&(self.library, period_item(&evaluation.period)));
        let time_ms = previous.map_or(evaluation.time_ms, |p| {
            evaluation.time_ms.max(p.body.time_ms + 1)
        });
        let signed = Signed::sign(
            &self.key,
            EvaluationSignature {
                consortium: *id,
                time_ms,
                ..evaluation
            },
        );
        EvaluationSignature::check(&signed, *id)?;
        match self.take(Document::Evaluation(signed.clone()))? {
            Taken::New(_) => {
                self.db.flush()?;
                Ok(signed)
            }
            Taken::AlreadyHere(why) => Err(ConsortiumError::Refused(Refusal::NotTaken(why))),
        }
    }

    /// The documents of the agreement a consortium proposes to a library it invites (its
    /// log, and the agreement's versions and signatures): the newest agreement in force,
    /// else the newest agreement; none when there is no agreement.
    pub fn proposed_bundle(&self, id: &Hash32) -> Result<Vec<String>, ConsortiumError> {
        let consortium = self.get(id)?;
        let members = consortium.log.state();
        let newest_of = |aid: &Hash32| {
            consortium
                .agreements
                .chain(aid)
                .last()
                .map(|(vid, v)| (v.body.time_ms, *vid))
        };
        let ids = consortium.agreements.ids();
        let in_force = ids
            .iter()
            .filter(|aid| {
                consortium
                    .agreements
                    .status(aid, &members)
                    .is_some_and(|s| s.in_force.is_some())
            })
            .max_by_key(|aid| newest_of(aid));
        let chosen = in_force.or_else(|| ids.iter().max_by_key(|aid| newest_of(aid)));
        Ok(chosen.map_or_else(Vec::new, |aid| {
            agreement::bundle(&consortium.log, &consortium.agreements, aid)
        }))
    }

    /// Where an agreement stands.
    pub fn agreement_status(
        &self,
        id: &Hash32,
        agreement: &Hash32,
    ) -> Result<(AgreementStatus, Consortium), ConsortiumError> {
        let consortium = self.get(id)?;
        let status = consortium
            .agreements
            .status(agreement, &consortium.log.state())
            .ok_or_else(|| {
                ConsortiumError::NotFound(format!("no agreement {}", agreement.short()))
            })?;
        Ok((status, consortium))
    }

    /// The printable, self-checking HTML of an agreement.
    pub fn export_agreement(
        &self,
        id: &Hash32,
        agreement: &Hash32,
    ) -> Result<String, ConsortiumError> {
        let consortium = self.get(id)?;
        let documents = agreement::bundle(&consortium.log, &consortium.agreements, agreement);
        Ok(agreement::render_html(&documents)?)
    }

    /// Signs and keeps this library's loan tally in consortium `id`, unless the newest
    /// held already says the same. Whether a new one was made.
    pub fn publish_tally(
        &self,
        id: &Hash32,
        lent: u32,
        borrowed: u32,
        mut on_loan: Vec<String>,
        now_ms: u64,
    ) -> Result<bool, ConsortiumError> {
        let consortium = self.get(id)?;
        self.require_role(&consortium, Role::Member, "publish a loan tally")?;
        on_loan.sort();
        on_loan.dedup();
        on_loan.truncate(jalin_protocol::consortium::tally::ON_LOAN_MAX);
        let previous = consortium.tallies.get(&self.library);
        if previous.is_some_and(|t| {
            (t.body.lent, t.body.borrowed, &t.body.on_loan) == (lent, borrowed, &on_loan)
        }) {
            return Ok(false);
        }
        // Newer than the last, whatever the clock says: the newest stands everywhere.
        let now_ms = previous.map_or(now_ms, |t| now_ms.max(t.body.time_ms + 1));
        let tally = Signed::sign(
            &self.key,
            LoanTally {
                consortium: *id,
                lent,
                borrowed,
                on_loan,
                time_ms: now_ms,
            },
        );
        self.tree.insert(
            key(b't', id, Some(&Hash32(*self.library.as_bytes()))),
            tally.to_bytes(),
        )?;
        self.db.flush()?;
        if let Some(consortium) = self.held().get_mut(id) {
            consortium.tallies.insert(self.library, tally);
        }
        self.note_changed();
        Ok(true)
    }

    /// Signs and keeps a document of one of this library's planned titles in consortium
    /// `id` (a new title, a change, or a withdrawal): only where an agreement in force has
    /// `coordinated_acquisition`.
    pub fn publish_plan(&self, id: &Hash32, plan: PlanItem) -> Result<(), ConsortiumError> {
        let consortium = self.get(id)?;
        self.require_role(&consortium, Role::Member, "plan purchases")?;
        if !self
            .terms_in_force(id)?
            .is_some_and(|t| t.coordinated_acquisition)
        {
            return Err(ConsortiumError::Refused(Refusal::NoCoordinatedAcquisition));
        }
        let signed = Signed::sign(
            &self.key,
            PlanItem {
                consortium: *id,
                ..plan
            },
        );
        match self.take(Document::Plan(signed))? {
            Taken::New(_) => Ok(self.db.flush().map(|_| ())?),
            Taken::AlreadyHere(why) => Err(ConsortiumError::Refused(Refusal::NotTaken(why))),
        }
    }

    /// The planned titles standing in consortium `id`: each member's newest document of
    /// each item, of current members, not withdrawn; none unless an agreement in force has
    /// `coordinated_acquisition`.
    pub fn standing_plans(
        &self,
        id: &Hash32,
    ) -> Result<Vec<(LibraryId, PlanItem)>, ConsortiumError> {
        if !self
            .terms_in_force(id)?
            .is_some_and(|t| t.coordinated_acquisition)
        {
            return Ok(Vec::new());
        }
        let consortium = self.get(id)?;
        let members = consortium.log.state();
        Ok(jplan::standing(consortium.plans.values(), |l| {
            members.members.contains_key(l)
        })
        .into_iter()
        .map(|p| (p.author, p.body.clone()))
        .collect())
    }

    /// Signs and keeps this library's conspectus in consortium `id`.
    pub fn publish_conspectus(
        &self,
        id: &Hash32,
        levels: Vec<jalin_protocol::consortium::conspectus::DivisionLevel>,
        now_ms: u64,
    ) -> Result<(), ConsortiumError> {
        let consortium = self.get(id)?;
        self.require_role(&consortium, Role::Member, "state a conspectus")?;
        let previous = consortium.conspectuses.get(&self.library);
        let now_ms = previous.map_or(now_ms, |c| now_ms.max(c.body.time_ms + 1));
        let signed = Signed::sign(
            &self.key,
            Conspectus {
                consortium: *id,
                levels,
                time_ms: now_ms,
            },
        );
        Conspectus::check(&signed, *id)?;
        match self.take(Document::Conspectus(signed))? {
            Taken::New(_) => Ok(self.db.flush().map(|_| ())?),
            Taken::AlreadyHere(why) => Err(ConsortiumError::Refused(Refusal::NotTaken(why))),
        }
    }

    /// Whether an agreement in force in consortium `id` covers staff development.
    pub fn develops_staff(&self, id: &Hash32) -> Result<bool, ConsortiumError> {
        Ok(self
            .terms_in_force(id)?
            .is_some_and(|t| t.staff_development))
    }

    /// Signs and keeps one of this library's staff-development posts in consortium `id`
    /// (new, changed or withdrawn): only where an agreement in force covers staff
    /// development. The post as signed.
    pub fn publish_staff(
        &self,
        id: &Hash32,
        post: StaffPost,
    ) -> Result<Signed<StaffPost>, ConsortiumError> {
        let consortium = self.get(id)?;
        self.require_role(&consortium, Role::Member, "post about staff development")?;
        if !self.develops_staff(id)? {
            return Err(ConsortiumError::Refused(Refusal::NoStaffDevelopment));
        }
        // Newer than this library's last post of the item, whatever the clock says.
        let previous = consortium.staff.get(&(self.library, post.item.clone()));
        let time_ms = previous.map_or(post.time_ms, |p| post.time_ms.max(p.body.time_ms + 1));
        let signed = Signed::sign(
            &self.key,
            StaffPost {
                consortium: *id,
                time_ms,
                ..post
            },
        );
        StaffPost::check(&signed, *id)?;
        match self.take(Document::Staff(signed.clone()))? {
            Taken::New(_) => {
                self.db.flush()?;
                Ok(signed)
            }
            Taken::AlreadyHere(why) => Err(ConsortiumError::Refused(Refusal::NotTaken(why))),
        }
    }

    /// The staff-development posts standing in consortium `id`: each current member's
    /// newest of each item, not withdrawn; none unless an agreement in force covers staff
    /// development.
    pub fn standing_staff(&self, id: &Hash32) -> Result<Vec<Signed<StaffPost>>, ConsortiumError> {
        if !self.develops_staff(id)? {
            return Ok(Vec::new());
        }
        let consortium = self.get(id)?;
        let members = consortium.log.state();
        Ok(jstaff::standing(consortium.staff.values(), |l| {
            members.members.contains_key(l)
        })
        .into_values()
        .cloned()
        .collect())
    }

    /// Whether an agreement in force in consortium `id` lets members share what their
    /// patrons look for.
    pub fn shares_needs(&self, id: &Hash32) -> Result<bool, ConsortiumError> {
        Ok(self.terms_in_force(id)?.is_some_and(|t| t.share_needs))
    }

    /// When this library last shared a needs summary in consortium `id` (ms since 1970).
    pub fn needs_shared_ms(&self, id: &Hash32) -> Result<Option<u64>, ConsortiumError> {
        Ok(self
            .get(id)?
            .needs
            .get(&self.library)
            .map(|s| s.body.time_ms))
    }

    /// Signs and keeps this library's summary of its patrons' searches in consortium
    /// `id`: refused unless an agreement in force has `share_needs`, and (by the
    /// document's own check) when a query of fewer than three visits is in it.
    pub fn publish_needs(
        &self,
        id: &Hash32,
        queries: Vec<jalin_protocol::consortium::needs::SharedQuery>,
        survey: Vec<jalin_protocol::consortium::needs::SharedTotal>,
        from_ms: u64,
        now_ms: u64,
    ) -> Result<(), ConsortiumError> {
        let consortium = self.get(id)?;
        self.require_role(&consortium, Role::Member, "share patrons' needs")?;
        if !self.shares_needs(id)? {
            return Err(ConsortiumError::Refused(Refusal::NotTaken(
                "the agreement in force does not share patrons' needs (share_needs = false)".into(),
            )));
        }
        let previous = consortium.needs.get(&self.library);
        let now_ms = previous.map_or(now_ms, |s| now_ms.max(s.body.time_ms + 1));
        let signed = Signed::sign(
            &self.key,
            NeedsSummary {
                consortium: *id,
                from_ms: from_ms.min(now_ms),
                to_ms: now_ms,
                queries,
                survey,
                time_ms: now_ms,
            },
        );
        NeedsSummary::check(&signed, *id)?;
        match self.take(Document::Needs(signed))? {
            Taken::New(_) => Ok(self.db.flush().map(|_| ())?),
            Taken::AlreadyHere(why) => Err(ConsortiumError::Refused(Refusal::NotTaken(why))),
        }
    }

    /// Each current member's newest needs summary in consortium `id`, while an agreement
    /// in force shares needs.
    pub fn shared_needs(
        &self,
        id: &Hash32,
    ) -> Result<BTreeMap<LibraryId, NeedsSummary>, ConsortiumError> {
        if !self.shares_needs(id)? {
            return Ok(BTreeMap::new());
        }
        let consortium = self.get(id)?;
        let members = consortium.log.state();
        Ok(consortium
            .needs
            .iter()
            .filter(|(l, _)| members.members.contains_key(l))
            .map(|(l, s)| (*l, s.body.clone()))
            .collect())
    }

    /// Each current member's newest conspectus in consortium `id`.
    pub fn conspectuses(
        &self,
        id: &Hash32,
    ) -> Result<BTreeMap<LibraryId, Conspectus>, ConsortiumError> {
        let consortium = self.get(id)?;
        let members = consortium.log.state();
        Ok(consortium
            .conspectuses
            .iter()
            .filter(|(l, _)| members.members.contains_key(l))
            .map(|(l, c)| (*l, c.body.clone()))
            .collect())
    }

    /// Each member's newest loan tally over the consortia held: `(lent, borrowed)`.
    pub fn loan_tallies(&self) -> BTreeMap<LibraryId, (u32, u32)> {
        let mut newest: BTreeMap<LibraryId, (u64, u32, u32)> = BTreeMap::new();
        for consortium in self.held().values() {
            for (library, tally) in &consortium.tallies {
                let seen = newest.entry(*library).or_insert((0, 0, 0));
                if tally.body.time_ms >= seen.0 {
                    *seen = (tally.body.time_ms, tally.body.lent, tally.body.borrowed);
                }
            }
        }
        newest
            .into_iter()
            .map(|(library, (_, lent, borrowed))| (library, (lent, borrowed)))
            .collect()
    }

    /// The records other members say are out on interlibrary loan now (their newest
    /// tallies): `(holder, record id)`.
    pub fn out_on_loan(&self) -> std::collections::BTreeSet<(LibraryId, String)> {
        let mut newest: BTreeMap<LibraryId, &Signed<LoanTally>> = BTreeMap::new();
        let held = self.held();
        for consortium in held.values() {
            for (library, tally) in &consortium.tallies {
                let seen = newest.entry(*library).or_insert(tally);
                if tally.body.time_ms > seen.body.time_ms {
                    *seen = tally;
                }
            }
        }
        newest
            .into_iter()
            .flat_map(|(library, tally)| {
                tally
                    .body
                    .on_loan
                    .iter()
                    .map(move |id| (library, id.clone()))
            })
            .collect()
    }

    /// Asserts that two records of two libraries are (or are not) the same book; the
    /// assertion travels to every member and corrects the union catalog's grouping there.
    pub fn assert_match(
        &self,
        id: &Hash32,
        a: RecordRef,
        b: RecordRef,
        same: bool,
        now_ms: u64,
    ) -> Result<Hash32, ConsortiumError> {
        let consortium = self.get(id)?;
        self.require_role(&consortium, Role::Member, "assert")?;
        let assertion = Signed::sign(
            &self.key,
            MatchAssertion {
                consortium: *id,
                a,
                b,
                same,
                time_ms: now_ms,
            },
        );
        MatchAssertion::check(&assertion, *id)?;
        let aid = assertion.id();
        self.tree
            .insert(key(b'm', id, Some(&aid)), assertion.to_bytes())?;
        self.db.flush()?;
        if let Some(consortium) = self.held().get_mut(id) {
            consortium.assertions.insert(aid, assertion);
        }
        self.note_changed();
        Ok(aid)
    }

    /// The assertions that stand, over every consortium held: for each pair of records,
    /// same or not. Where two consortia disagree about a pair, "not the same" wins.
    pub fn standing_assertions(&self) -> BTreeMap<(RecordRef, RecordRef), bool> {
        let mut out: BTreeMap<(RecordRef, RecordRef), bool> = BTreeMap::new();
        for consortium in self.held().values() {
            let state = consortium.log.state();
            for (pair, same) in assertion::standing(&consortium.assertions, &state) {
                let slot = out.entry(pair).or_insert(same);
                *slot = *slot && same;
            }
        }
        out
    }
}

/// The one id in `ids` that starts with `prefix` (hex), or the only id when no prefix.
fn resolve_prefix(
    ids: &[Hash32],
    prefix: Option<&str>,
    what: &str,
    how: &str,
) -> Result<Hash32, ConsortiumError> {
    match prefix {
        None => match ids {
            [one] => Ok(*one),
            [] => Err(ConsortiumError::NotFound(if how.is_empty() {
                format!("no {what} here")
            } else {
                format!("no {what} here yet ({how})")
            })),
            _ => Err(ConsortiumError::Refused(Refusal::Ambiguous(format!(
                "there are {} {what}s here: name one by (the start of) its id",
                ids.len()
            )))),
        },
        Some(prefix) => {
            let prefix = prefix.trim().to_lowercase();
            let found: Vec<&Hash32> = ids
                .iter()
                .filter(|id| !prefix.is_empty() && id.to_hex().starts_with(&prefix))
                .collect();
            match found.as_slice() {
                [one] => Ok(**one),
                [] => Err(ConsortiumError::NotFound(format!("no {what} {prefix}"))),
                _ => Err(ConsortiumError::Refused(Refusal::Ambiguous(format!(
                    "{prefix} starts the ids of {} {what}s: give more of it",
                    found.len()
                )))),
            }
        }
    }
}
