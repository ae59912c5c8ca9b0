//! The membership log: signed operations, each naming the operations its author had seen,
//! folded into the member set the same way on every node, whatever order they arrived in.
//!
//! The rules (ARCHITECTURE.md states them for people):
//! - The genesis names the consortium and its founder, the first admin. The consortium id
//!   is the genesis's id.
//! - Only admins add, remove and change roles. An add carries the joining library's signed
//!   acceptance, which carries the inviter's signed invite: the add's author must be the
//!   inviter, the add must be made before the invite expires, and an invite adds one
//!   library once.
//! - A removal names (through its parents) what it saw. What the removed library wrote that
//!   the removal did not see has no effect; what it saw stays. Leaving is removing oneself.
//!   A removed library can be invited and added again; what it writes after that counts.
//! - Two removals that each exclude the other (two admins removing each other at the same
//!   time) resolve by seniority: the removal by the library that became a member first
//!   wins (the founder before everyone), and the other has no effect.
//! - The last admin can neither leave nor be made a plain member.
//!
//! An operation is refused (and not stored) when it has no effect on the log it names as
//! seen: that does not depend on what else arrives later, so every node refuses the same
//! operations. Operations whose parents are not here yet wait until they are.

use super::document::{DocError, Hash32, Kind, Signed};
use crate::signing::{Domain, LibraryId};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

/// The difference between two members' clocks that a date one made and the other judges
/// is given: a day (DESIGN.md, "Who sees what"). Applied by the node that judges (a
/// joiner reading an invite's expiry, a period's start), never in the log's own rules,
/// which every node must apply alike.
pub const CLOCK_SKEW_TOLERANCE_MS: u64 = 24 * 60 * 60 * 1000;

/// Operations waiting for their parents, at most.
pub const PENDING_MAX: usize = 10_000;
/// Parents one operation may name, at most.
pub const PARENTS_MAX: usize = 64;
/// Names, codes, notes and addresses: at most this many bytes each.
pub const TEXT_MAX: usize = 1024;

/// What a member may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Takes part; signs agreements.
    Member,
    /// Also adds, removes and changes roles.
    Admin,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Member => "member",
            Role::Admin => "admin",
        })
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "member" => Ok(Role::Member),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role {other:?}: member or admin")),
        }
    }
}

/// An invite to join: the ticket's content, signed by the inviting admin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    /// The consortium.
    pub consortium: Hash32,
    /// Its name, for the invited library to read.
    pub consortium_name: String,
    /// The inviting library's name.
    pub inviter_name: String,
    /// The role the invited library will have.
    pub role: Role,
    /// When it was made (ms since 1970).
    pub created_ms: u64,
    /// After this (ms since 1970) it cannot be used.
    pub expires_ms: u64,
    /// Makes every invite unique; whoever holds the ticket may use it, once.
    pub secret: [u8; 16],
    /// For the inviter's own records ("for the library of SDN 2").
    pub note: String,
    /// Where the inviter's node listens (for the network).
    pub addresses: Vec<String>,
}

impl Invite {
    /// The seed of the one-off network identity with which the holder of this invite
    /// reaches the inviter's node to join: derived from the invite's secret, so the
    /// inviter can let exactly that identity in while the invite is open, and no one
    /// without the ticket can connect.
    pub fn join_seed(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(b"jalin/v1/join-identity\0");
        hasher.update(self.consortium.0);
        hasher.update(self.secret);
        hasher.finalize().into()
    }
}

impl Kind for Invite {
    const DOMAIN: Domain = Domain::Invite;
    const LABEL: &'static str = "INVITE";
}

/// A library's acceptance of an invite, signed by the joining library.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acceptance {
    /// The consortium joined (the invite's).
    pub consortium: Hash32,
    /// The invite, as signed by the inviter.
    pub invite: Signed<Invite>,
    /// The joining library's name.
    pub name: String,
    /// Its short code.
    pub code: String,
    /// When it accepted (ms since 1970).
    pub time_ms: u64,
    /// Where its node listens.
    pub addresses: Vec<String>,
}

impl Kind for Acceptance {
    const DOMAIN: Domain = Domain::Acceptance;
    const LABEL: &'static str = "ACCEPTANCE";
}

/// What an operation does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Founds the consortium; the author is its first admin.
    Genesis {
        /// The consortium's name.
        name: String,
        /// The founding library's name.
        founder_name: String,
        /// Its code.
        founder_code: String,
        /// Makes two consortia of the same name and founder distinct.
        nonce: [u8; 16],
    },
    /// Adds the library that accepted an invite.
    Add {
        /// The acceptance (which carries the invite).
        acceptance: Box<Signed<Acceptance>>,
    },
    /// Removes a member.
    Remove {
        /// Who.
        member: LibraryId,
        /// Why, for the record.
        reason: String,
    },
    /// Changes a member's role.
    ChangeRole {
        /// Who.
        member: LibraryId,
        /// The new role.
        role: Role,
    },
    /// The author leaves.
    Leave,
}

/// One operation of the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogOp {
    /// The consortium; `None` only in the genesis, whose id is the consortium's.
    pub consortium: Option<Hash32>,
    /// The operations the author had seen last (the heads of its log), sorted.
    pub parents: Vec<Hash32>,
    /// When (ms since 1970, the author's clock; for people, not for ordering).
    pub time_ms: u64,
    /// What it does.
    pub action: Action,
}

impl Kind for LogOp {
    const DOMAIN: Domain = Domain::MembershipOp;
    const LABEL: &'static str = "OP";
}

/// A signed operation.
pub type Op = Signed<LogOp>;

/// A current member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Its key.
    pub library: LibraryId,
    /// Its name.
    pub name: String,
    /// Its code.
    pub code: String,
    /// Its role.
    pub role: Role,
    /// Who added it (itself, for the founder).
    pub added_by: LibraryId,
    /// When (the adding operation's time).
    pub added_ms: u64,
    /// The operation that added it.
    pub added_op: Hash32,
    /// Where its node listens, as it said when it joined.
    pub addresses: Vec<String>,
}

/// What became of one operation in the fold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum OpStatus {
    /// It took effect.
    Effective,
    /// Its author was removed by an operation that did not see it.
    Excluded {
        /// The removal.
        by: Hash32,
    },
    /// It took no effect, for this reason (a concurrent operation came first).
    NoEffect {
        /// Why.
        reason: String,
    },
}

/// The member set and roles the log folds to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberState {
    /// Current members.
    pub members: BTreeMap<LibraryId, Member>,
    /// Libraries that were members and are not now: who removed them (themselves, if
    /// they left), and the operation.
    pub former: BTreeMap<LibraryId, (Member, LibraryId, Hash32)>,
    /// Invites used, and the operation that used each.
    pub used_invites: BTreeMap<Hash32, Hash32>,
    /// What became of each operation.
    pub status: BTreeMap<Hash32, OpStatus>,
}

impl MemberState {
    /// The role of `library`, if a member.
    pub fn role(&self, library: &LibraryId) -> Option<Role> {
        self.members.get(library).map(|m| m.role)
    }

    fn admins(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.role == Role::Admin)
            .count()
    }
}

/// Checks of an operation that need nothing but the operation itself.
fn check_alone(op: &Op, consortium: Option<Hash32>) -> Result<(), DocError> {
    op.verify()?;
    let body = &op.body;
    let invalid = |why: &str| Err(DocError::Invalid(why.to_string()));
    if body.parents.len() > PARENTS_MAX {
        return invalid("names more than 64 parent operations");
    }
    if body.parents.windows(2).any(|w| w[0] >= w[1]) {
        return invalid("its parent operations are not sorted and distinct");
    }
    match (&body.action, body.consortium) {
        (Action::Genesis { .. }, None) => {
            if !body.parents.is_empty() {
                return invalid("a genesis has no parents");
            }
        }
        (Action::Genesis { .. }, Some(_)) => return invalid("a genesis names no consortium"),
        (_, None) => return invalid("an operation other than the genesis names its consortium"),
        (_, Some(found)) => {
            if let Some(expected) = consortium {
                if found != expected {
                    return Err(DocError::WrongConsortium { expected, found });
                }
            }
            if body.parents.is_empty() {
                return invalid("an operation names at least one parent (the genesis)");
            }
        }
    }
    let long = |s: &str| s.len() > TEXT_MAX;
    match &body.action {
        Action::Genesis {
            name,
            founder_name,
            founder_code,
            ..
        } => {
            if name.trim().is_empty() || long(name) || long(founder_name) || long(founder_code) {
                return invalid("a consortium needs a name (and names under 1 KB)");
            }
        }
        Action::Add { acceptance } => {
            check_acceptance(acceptance, body.consortium)?;
            let invite = &acceptance.body.invite;
            if invite.author != op.author {
                return invalid("an add is made by the admin who signed the invite");
            }
            if body.time_ms > invite.body.expires_ms {
                return Err(DocError::Expired {
                    expired_ms: invite.body.expires_ms,
                    at_ms: body.time_ms,
                });
            }
        }
        Action::Remove { member, reason } => {
            if *member == op.author {
                return invalid("a library leaves rather than removes itself");
            }
            if long(reason) {
                return invalid("a reason is under 1 KB");
            }
        }
        Action::ChangeRole { .. } | Action::Leave => {}
    }
    Ok(())
}

/// Checks an acceptance by itself: both signatures, one consortium, the invite's expiry.
pub fn check_acceptance(
    acceptance: &Signed<Acceptance>,
    consortium: Option<Hash32>,
) -> Result<(), DocError> {
    acceptance.verify()?;
    let invite = &acceptance.body.invite;
    invite.verify()?;
    let body = &acceptance.body;
    if body.consortium != invite.body.consortium {
        return Err(DocError::WrongConsortium {
            expected: invite.body.consortium,
            found: body.consortium,
        });
    }
    if let Some(expected) = consortium {
        if body.consortium != expected {
            return Err(DocError::WrongConsortium {
                expected,
                found: body.consortium,
            });
        }
    }
    if body.time_ms > invite.body.expires_ms {
        return Err(DocError::Expired {
            expired_ms: invite.body.expires_ms,
            at_ms: body.time_ms,
        });
    }
    if acceptance.author == invite.author {
        return Err(DocError::Invalid(
            "a library cannot accept its own invite".into(),
        ));
    }
    let long = |s: &str| s.len() > TEXT_MAX;
    if long(&body.name)
        || long(&body.code)
        || body.addresses.iter().any(|a| long(a))
        || body.addresses.len() > 16
        || invite.body.addresses.len() > 16
        || long(&invite.body.note)
    {
        return Err(DocError::Invalid(
            "names, notes and addresses are under 1 KB (16 addresses at most)".into(),
        ));
    }
    Ok(())
}

/// Makes the genesis of a new consortium.
pub fn genesis(
    key: &SigningKey,
    name: &str,
    founder_name: &str,
    founder_code: &str,
    nonce: [u8; 16],
    time_ms: u64,
) -> Op {
    Signed::sign(
        key,
        LogOp {
            consortium: None,
            parents: Vec::new(),
            time_ms,
            action: Action::Genesis {
                name: name.to_string(),
                founder_name: founder_name.to_string(),
                founder_code: founder_code.to_string(),
                nonce,
            },
        },
    )
}

/// What inserting an operation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// It is in the log, and so are these waiting operations it completed.
    Applied {
        /// Operations applied, this one first.
        applied: Vec<Hash32>,
        /// Waiting operations that, once their parents came, were refused.
        refused: Vec<(Hash32, DocError)>,
    },
    /// Already in the log.
    Duplicate,
    /// Waiting for these parents.
    Pending {
        /// Missing parents.
        missing: Vec<Hash32>,
    },
}

/// One consortium's membership log.
#[derive(Clone, Debug)]
pub struct Log {
    id: Hash32,
    ops: HashMap<Hash32, Op>,
    pending: HashMap<Hash32, Op>,
}

impl Log {
    /// A log from its genesis.
    pub fn new(genesis: Op) -> Result<Log, DocError> {
        check_alone(&genesis, None)?;
        if !matches!(genesis.body.action, Action::Genesis { .. }) {
            return Err(DocError::Invalid("a log starts with a genesis".into()));
        }
        let id = genesis.id();
        Ok(Log {
            id,
            ops: HashMap::from([(id, genesis)]),
            pending: HashMap::new(),
        })
    }

    /// The consortium id (the genesis's id).
    pub fn id(&self) -> Hash32 {
        self.id
    }

    /// The genesis.
    pub fn genesis(&self) -> &Op {
        &self.ops[&self.id]
    }

    /// The consortium's name.
    pub fn name(&self) -> &str {
        match &self.genesis().body.action {
            Action::Genesis { name, .. } => name,
            _ => "",
        }
    }

    /// An operation in the log.
    pub fn get(&self, id: &Hash32) -> Option<&Op> {
        self.ops.get(id)
    }

    /// Every operation in the log, in the fold's order.
    pub fn ops(&self) -> Vec<&Op> {
        self.order().into_iter().map(|id| &self.ops[&id]).collect()
    }

    /// How many operations the log holds (not counting those waiting for parents): the
    /// log only grows, so an unchanged count is an unchanged log.
    pub fn op_count(&self) -> usize {
        self.ops.len()
    }

    /// Operations waiting for parents.
    pub fn pending(&self) -> impl Iterator<Item = &Op> {
        self.pending.values()
    }

    /// The operations no other operation names as parent.
    pub fn heads(&self) -> Vec<Hash32> {
        let named: HashSet<Hash32> = self
            .ops
            .values()
            .flat_map(|op| op.body.parents.iter().copied())
            .collect();
        let mut heads: Vec<Hash32> = self
            .ops
            .keys()
            .filter(|id| !named.contains(id))
            .copied()
            .collect();
        heads.sort();
        heads
    }

    /// Adds an operation: checked alone, then against what its author had seen.
    pub fn insert(&mut self, op: Op) -> Result<Inserted, DocError> {
        check_alone(&op, Some(self.id))?;
        let id = op.id();
        if self.ops.contains_key(&id) {
            return Ok(Inserted::Duplicate);
        }
        let missing: Vec<Hash32> = op
            .body
            .parents
            .iter()
            .filter(|p| !self.ops.contains_key(p))
            .copied()
            .collect();
        if !missing.is_empty() {
            if self.pending.contains_key(&id) {
                return Ok(Inserted::Pending { missing });
            }
            if self.pending.len() >= PENDING_MAX {
                return Err(DocError::Rejected(format!(
                    "{PENDING_MAX} operations already wait for their parents"
                )));
            }
            self.pending.insert(id, op);
            return Ok(Inserted::Pending { missing });
        }
        self.admit(id, op)?;
        let mut applied = vec![id];
        let mut refused = Vec::new();
        // Waiting operations whose parents are now all here, until none is left.
        loop {
            let mut ready: Vec<Hash32> = self
                .pending
                .iter()
                .filter(|(_, op)| op.body.parents.iter().all(|p| self.ops.contains_key(p)))
                .map(|(id, _)| *id)
                .collect();
            if ready.is_empty() {
                break;
            }
            ready.sort();
            for id in ready {
                if let Some(op) = self.pending.remove(&id) {
                    match self.admit(id, op) {
                        Ok(()) => applied.push(id),
                        Err(error) => refused.push((id, error)),
                    }
                }
            }
        }
        Ok(Inserted::Applied { applied, refused })
    }

    /// Stores `op` (whose parents are all here) if it takes effect on what it saw.
    fn admit(&mut self, id: Hash32, op: Op) -> Result<(), DocError> {
        let mut seen = self.ancestors_of_parents(&op.body.parents);
        seen.insert(id);
        self.ops.insert(id, op);
        let state = self.fold(Some(&seen));
        match state.status.get(&id) {
            Some(OpStatus::Effective) => Ok(()),
            other => {
                let invite = self.invite_of(id);
                self.ops.remove(&id);
                Err(match other {
                    Some(OpStatus::Excluded { by }) => DocError::Rejected(format!(
                        "its author was removed from the consortium by operation {}",
                        by.short()
                    )),
                    Some(OpStatus::NoEffect { reason }) => {
                        if let Some(rest) = reason.strip_prefix("invite used by ") {
                            match (Hash32::from_hex(rest), invite) {
                                (Some(by), Some(invite)) => {
                                    return Err(DocError::InviteUsed { invite, by })
                                }
                                _ => DocError::Rejected(reason.clone()),
                            }
                        } else {
                            DocError::Rejected(reason.clone())
                        }
                    }
                    _ => DocError::Rejected("it does not follow from the log".into()),
                })
            }
        }
    }

    fn invite_of(&self, id: Hash32) -> Option<Hash32> {
        match &self.ops.get(&id)?.body.action {
            Action::Add { acceptance } => Some(acceptance.body.invite.id()),
            _ => None,
        }
    }

    /// Every operation reachable from `parents`, them included.
    fn ancestors_of_parents(&self, parents: &[Hash32]) -> HashSet<Hash32> {
        let mut seen = HashSet::new();
        let mut stack: Vec<Hash32> = parents.to_vec();
        while let Some(id) = stack.pop() {
            if seen.insert(id) {
                if let Some(op) = self.ops.get(&id) {
                    stack.extend(op.body.parents.iter().copied());
                }
            }
        }
        seen
    }

    /// A topological order of the log's operations, ties broken by id: the same on every
    /// node for the same operations.
    fn order(&self) -> Vec<Hash32> {
        let mut waiting: HashMap<Hash32, usize> = HashMap::new();
        let mut children: HashMap<Hash32, Vec<Hash32>> = HashMap::new();
        for (id, op) in &self.ops {
            waiting.insert(*id, op.body.parents.len());
            for parent in &op.body.parents {
                children.entry(*parent).or_default().push(*id);
            }
        }
        let mut ready: BinaryHeap<std::cmp::Reverse<Hash32>> = waiting
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(id, _)| std::cmp::Reverse(*id))
            .collect();
        let mut order = Vec::with_capacity(self.ops.len());
        while let Some(std::cmp::Reverse(id)) = ready.pop() {
            order.push(id);
            for child in children.get(&id).map(Vec::as_slice).unwrap_or_default() {
                if let Some(n) = waiting.get_mut(child) {
                    *n -= 1;
                    if *n == 0 {
                        ready.push(std::cmp::Reverse(*child));
                    }
                }
            }
        }
        order
    }

    /// The member set the whole log folds to.
    pub fn state(&self) -> MemberState {
        self.fold(None)
    }

    /// Folds the operations in `only` (a set closed under parents), or all of them.
    fn fold(&self, only: Option<&HashSet<Hash32>>) -> MemberState {
        let order: Vec<Hash32> = self
            .order()
            .into_iter()
            .filter(|id| only.is_none_or(|set| set.contains(id)))
            .collect();
        let position: HashMap<Hash32, usize> =
            order.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let mut ancestors: HashMap<Hash32, HashSet<Hash32>> = HashMap::new();
        let mut ancestors_of = |id: Hash32| -> HashSet<Hash32> {
            ancestors
                .entry(id)
                .or_insert_with(|| {
                    let mut set = self.ancestors_of_parents(&self.ops[&id].body.parents);
                    set.insert(id);
                    set
                })
                .clone()
        };

        // Who each removal removes, and when each library first came in (seniority).
        let mut admitted: HashMap<LibraryId, usize> = HashMap::new();
        let mut removals: Vec<(Hash32, LibraryId)> = Vec::new();
        let mut adds_of: HashMap<LibraryId, Vec<Hash32>> = HashMap::new();
        for (i, id) in order.iter().enumerate() {
            let op = &self.ops[id];
            match &op.body.action {
                Action::Genesis { .. } => {
                    admitted.entry(op.author).or_insert(i);
                }
                Action::Add { acceptance } => {
                    admitted.entry(acceptance.author).or_insert(i);
                    adds_of.entry(acceptance.author).or_default().push(*id);
                }
                Action::Remove { member, .. } => removals.push((*id, *member)),
                Action::Leave => removals.push((*id, op.author)),
                Action::ChangeRole { .. } => {}
            }
        }
        let seniority = |library: &LibraryId| admitted.get(library).copied().unwrap_or(usize::MAX);
        removals.sort_by_key(|(id, _)| (seniority(&self.ops[id].author), position[id]));

        // Exclusions: a removal voids what the removed library wrote that it did not see
        // (unless the library was added again, after the removal, before writing it).
        // A removal voided by an earlier (more senior) one voids nothing; repeat until no
        // removal that was used turns out voided.
        let mut dropped: HashSet<Hash32> = HashSet::new();
        let excluded = loop {
            let mut excluded: HashMap<Hash32, Hash32> = HashMap::new();
            let mut used = Vec::new();
            for (removal, removed) in &removals {
                if dropped.contains(removal) || excluded.contains_key(removal) {
                    continue;
                }
                used.push(*removal);
                let seen_by_removal = ancestors_of(*removal);
                for id in &order {
                    let op = &self.ops[id];
                    if op.author != *removed
                        || seen_by_removal.contains(id)
                        || excluded.contains_key(id)
                    {
                        continue;
                    }
                    let readded = adds_of.get(removed).is_some_and(|adds| {
                        adds.iter().any(|add| {
                            let add_sees = ancestors_of(*add);
                            add_sees.contains(removal) && ancestors_of(*id).contains(add)
                        })
                    });
                    if !readded {
                        excluded.insert(*id, *removal);
                    }
                }
            }
            let voided: Vec<Hash32> = used
                .into_iter()
                .filter(|r| excluded.contains_key(r))
                .collect();
            if voided.is_empty() {
                break excluded;
            }
            dropped.extend(voided);
        };

        // Apply in order what is not excluded, each checked against the state so far.
        let mut state = MemberState::default();
        for id in &order {
            if let Some(by) = excluded.get(id) {
                state.status.insert(*id, OpStatus::Excluded { by: *by });
                continue;
            }
            let op = &self.ops[id];
            let status = match apply(&mut state, *id, op) {
                Ok(()) => OpStatus::Effective,
                Err(reason) => OpStatus::NoEffect { reason },
            };
            state.status.insert(*id, status);
        }
        state
    }
}

/// Applies one operation to the state, or says why it has no effect.
fn apply(state: &mut MemberState, id: Hash32, op: &Op) -> Result<(), String> {
    let author = op.author;
    let time_ms = op.body.time_ms;
    let need_admin = |state: &MemberState, what: &str| match state.role(&author) {
        Some(Role::Admin) => Ok(()),
        Some(Role::Member) => Err(format!(
            "only admins {what}; {} is a member",
            author.fingerprint()
        )),
        None => Err(format!(
            "only admins {what}; {} is not a member",
            author.fingerprint()
        )),
    };
    match &op.body.action {
        Action::Genesis {
            founder_name,
            founder_code,
            ..
        } => {
            if !state.members.is_empty() {
                return Err("a second genesis".into());
            }
            state.members.insert(
                author,
                Member {
                    library: author,
                    name: founder_name.clone(),
                    code: founder_code.clone(),
                    role: Role::Admin,
                    added_by: author,
                    added_ms: time_ms,
                    added_op: id,
                    addresses: Vec::new(),
                },
            );
        }
        Action::Add { acceptance } => {
            need_admin(state, "add members")?;
            let invite_id = acceptance.body.invite.id();
            if let Some(by) = state.used_invites.get(&invite_id) {
                return Err(format!("invite used by {by}"));
            }
            let joiner = acceptance.author;
            if state.members.contains_key(&joiner) {
                return Err(format!("{} is already a member", joiner.fingerprint()));
            }
            state.used_invites.insert(invite_id, id);
            state.former.remove(&joiner);
            state.members.insert(
                joiner,
                Member {
                    library: joiner,
                    name: acceptance.body.name.clone(),
                    code: acceptance.body.code.clone(),
                    role: acceptance.body.invite.body.role,
                    added_by: author,
                    added_ms: time_ms,
                    added_op: id,
                    addresses: acceptance.body.addresses.clone(),
                },
            );
        }
        Action::Remove { member, .. } => {
            need_admin(state, "remove members")?;
            let Some(removed) = state.members.remove(member) else {
                return Err(format!("{} is not a member", member.fingerprint()));
            };
            state.former.insert(*member, (removed, author, id));
        }
        Action::ChangeRole { member, role } => {
            need_admin(state, "change roles")?;
            let admins = state.admins();
            let Some(target) = state.members.get_mut(member) else {
                return Err(format!("{} is not a member", member.fingerprint()));
            };
            if target.role == Role::Admin && *role == Role::Member && admins == 1 {
                return Err("the last admin cannot be made a plain member".into());
            }
            target.role = *role;
        }
        Action::Leave => {
            let Some(role) = state.role(&author) else {
                return Err(format!("{} is not a member", author.fingerprint()));
            };
            if role == Role::Admin && state.admins() == 1 && state.members.len() > 1 {
                return Err("the last admin cannot leave; make another member admin first".into());
            }
            if let Some(left) = state.members.remove(&author) {
                state.former.insert(author, (left, author, id));
            }
        }
    }
    Ok(())
}

/// Makes an operation on top of `log`'s heads.
pub fn make_op(key: &SigningKey, log: &Log, action: Action, time_ms: u64) -> Op {
    Signed::sign(
        key,
        LogOp {
            consortium: Some(log.id()),
            parents: log.heads(),
            time_ms,
            action,
        },
    )
}
