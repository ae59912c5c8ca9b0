//! The sync protocol's messages: what one member's node asks another and what it answers,
//! as plain types with their bounds. No I/O: the node's codec reads at most a message's
//! byte limit from a stream and hands the bytes to [`decode`], which is also what the fuzz
//! target feeds (`fuzz/fuzz_targets/sync.rs`).
//!
//! On the wire a message is postcard (no field names, byte strings as they are). A decoded
//! message is checked against the counts below before anything acts on it, so a peer can
//! neither make a node allocate past the message's own size nor loop past these counts.

use crate::bounded::Bounded;
use crate::consortium::document::Hash32;
use crate::signing::{ChangeEnvelope, LibraryId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::{ByteArray, ByteBuf};

/// How many shard documents a library's catalog is split into.
pub const SHARD_COUNT: u16 = 256;
/// Groups of shards a catalog's summary has: a summary is [`GROUPS`] digests whatever the
/// catalog's size, so two nodes compare a catalog in one small round trip.
pub const GROUPS: u16 = 16;
/// Shards in one group.
pub const SHARDS_PER_GROUP: u16 = SHARD_COUNT / GROUPS;
/// Bytes of one shard's or group's digest (a prefix of SHA-256: enough to tell two
/// states apart, small enough that a group's digests fit in 128 bytes).
pub const DIGEST_BYTES: usize = 8;
/// Shards one `Changes` request or `Changed` notice names at most (an answer carrying
/// their changes stays within a few megabytes).
pub const SHARDS_PER_REQUEST: usize = 32;
/// Heads of one shard a `Changes` request may send: a shard written on one node has one
/// head; concurrent heads come only from merges, a handful at most.
pub const HEADS_PER_SHARD_MAX: usize = 64;
/// Heads of one shard a `Changed` notice carries at most (more: the notice names no
/// shards and the receiver catches up in full).
pub const NOTICE_HEADS_MAX: usize = 8;
/// Characters of the one operation a `Left` request carries (an operation's text is a
/// few hundred).
pub const LEFT_TEXT_MAX: usize = 4 * 1024;

/// What one member asks another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncRequest {
    /// Digests of every catalog and consortium the peer holds.
    Hello,
    /// The summary of one catalog: a digest per group of shards.
    Summary {
        /// Whose catalog.
        namespace: LibraryId,
    },
    /// The digests of the shards of one group.
    Group {
        /// Whose catalog.
        namespace: LibraryId,
        /// Which group (0..[`GROUPS`]).
        group: u8,
    },
    /// The changes of some shards the asker lacks.
    Changes {
        /// Whose catalog.
        namespace: LibraryId,
        /// `(shard, the asker's heads of it)`, at most [`SHARDS_PER_REQUEST`] shards with
        /// at most [`HEADS_PER_SHARD_MAX`] heads each.
        shards: Bounded<(u16, Bounded<ByteArray<32>, HEADS_PER_SHARD_MAX>), SHARDS_PER_REQUEST>,
        /// Bytes of changes the answer should carry at most, sized by the asker to what
        /// its link carries in a few seconds (a weak link asks for small answers, so a
        /// connection that drops loses little). The answer carries at least one change, and
        /// a shard's changes in order up to the limit (`rest` then names what is left).
        max_bytes: u32,
    },
    /// Every document of a consortium.
    Documents {
        /// Which.
        consortium: Hash32,
    },
    /// "I stored something new of this catalog (or of the consortia's documents, `None`)":
    /// the receiver catches up with the sender. Sent to every connected member besides the
    /// gossip announcement, so a change travels hop by hop even where gossip does not.
    Changed {
        /// Which catalog.
        namespace: Option<LibraryId>,
        /// `(shard, the sender's heads of it now)` for the shards it wrote, at most
        /// [`SHARDS_PER_REQUEST`] with at most [`NOTICE_HEADS_MAX`] heads each: the
        /// receiver asks at once for the changes of those whose heads differ from its
        /// own (one round trip). Empty: not known, the receiver catches up in full.
        shards: Bounded<(u16, Bounded<ByteArray<32>, NOTICE_HEADS_MAX>), SHARDS_PER_REQUEST>,
    },
    /// Join: the acceptance of one of the answering node's open invites, sent under the
    /// invite's one-off identity.
    Join {
        /// The acceptance's text.
        acceptance: String,
    },
    /// "I left a consortium we shared": the sender's leave operation, sent to the members
    /// it is still connected to before it cuts them off, since once out it no longer
    /// serves that consortium's documents and they would not learn it left. At most
    /// [`LEFT_TEXT_MAX`] characters.
    Left {
        /// The operation's text.
        op: String,
    },
    /// Join by code: the joiner's half of a password-authenticated key exchange (SPAKE2)
    /// for the open code `nameplate` names, sent under the nameplate's identity. The
    /// answering node spends the code on this one try, right or wrong.
    Code {
        /// The code's number.
        nameplate: u16,
        /// The joiner's SPAKE2 message ([`CODE_MESSAGE_BYTES`]).
        message: Vec<u8>,
    },
}

/// Bytes of a SPAKE2 message (the Ed25519 group: a side byte and a point).
pub const CODE_MESSAGE_BYTES: usize = 33;
/// Bytes of a ticket sealed for a joiner by code, at most.
pub const CODE_SEALED_MAX: usize = 16 * 1024;

/// The answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncResponse {
    /// Digests.
    Hello {
        /// `(catalog, digest of its shard heads, records and tombstones it holds)`: the
        /// count lets an asker say how much of a catalog it still lacks.
        catalogs: Vec<(LibraryId, ByteArray<32>, u64)>,
        /// `(consortium, digest of its documents)`.
        consortia: Vec<(Hash32, ByteArray<32>)>,
        /// The answering node's time (ms since 1970): members tell a wrong clock from
        /// each other's.
        time_ms: u64,
    },
    /// One catalog's summary: [`GROUPS`] digests of [`DIGEST_BYTES`] bytes, one per
    /// group of shards, whatever the catalog's size.
    Summary {
        /// Whose catalog.
        namespace: LibraryId,
        /// The digests, concatenated.
        groups: ByteBuf,
    },
    /// One group's shard digests ([`SHARDS_PER_GROUP`] of [`DIGEST_BYTES`] bytes).
    Group {
        /// Whose catalog.
        namespace: LibraryId,
        /// Which group.
        group: u8,
        /// The digests, concatenated (zeros for an empty shard).
        shards: ByteBuf,
    },
    /// Changes, by shard.
    Changes {
        /// Whose catalog.
        namespace: LibraryId,
        /// `(shard, its changes the asker lacks, each with its envelope)`, at most
        /// [`SHARDS_PER_REQUEST`] shards (bounded as it is read: a list of empty
        /// shards costs a byte each on the wire and many in memory).
        shards: Bounded<(u16, Vec<SignedChange>), SHARDS_PER_REQUEST>,
        /// The shards asked for that this answer did not finish (the one cut short first,
        /// then those not begun), in the order asked: the asker asks for them again
        /// with its heads as they are now, so nothing that arrived is sent twice.
        rest: Bounded<u16, SHARDS_PER_REQUEST>,
    },
    /// A consortium's documents, one per line.
    Documents {
        /// The text.
        text: String,
    },
    /// Noted (the answer to `Changed`).
    Noted,
    /// The join is done: the consortium's documents, the new member's add among them.
    Joined {
        /// The documents, one per line.
        documents: String,
    },
    /// The inviter's half of a join by code, and the invite's ticket sealed under the
    /// key both sides hold only if they used the same code.
    Code {
        /// The inviter's SPAKE2 message ([`CODE_MESSAGE_BYTES`]).
        message: Vec<u8>,
        /// The sealed ticket, at most [`CODE_SEALED_MAX`] bytes.
        sealed: Vec<u8>,
    },
    /// Not served, and why.
    Refused {
        /// Why.
        reason: String,
    },
}

/// A change of a shard document as it travels between nodes: the automerge change's bytes
/// and the owner's signed envelope over its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedChange {
    /// The owner's signature over namespace, shard and change hash.
    pub envelope: ChangeEnvelope,
    /// The automerge change.
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

/// A small signed announcement on a consortium's gossip topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    /// Whose catalog changed (or `None`: the consortium's documents).
    pub namespace: Option<LibraryId>,
}

/// Which bound a decoded message breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Bound {
    /// More shards than [`SHARDS_PER_REQUEST`].
    #[error("more than {SHARDS_PER_REQUEST} shards")]
    TooManyShards,
    /// A shard number of [`SHARD_COUNT`] or more.
    #[error("shard {0} does not exist (a catalog has {SHARD_COUNT})")]
    NoSuchShard(u16),
    /// More heads of one shard than the message kind allows.
    #[error("shard {shard} has {heads} heads, more than {max}")]
    TooManyHeads {
        /// The shard.
        shard: u16,
        /// Heads sent.
        heads: usize,
        /// Allowed.
        max: usize,
    },
    /// A `Left` request's text over [`LEFT_TEXT_MAX`].
    #[error("an operation of {0} characters, over {LEFT_TEXT_MAX}")]
    LongOperation(usize),
    /// A join code's message that is not [`CODE_MESSAGE_BYTES`] long, or a sealed
    /// ticket over [`CODE_SEALED_MAX`].
    #[error("a join code's message of {0} bytes, not of its size")]
    CodeMessage(usize),
    /// A group number of [`GROUPS`] or more.
    #[error("group {0} does not exist (a catalog has {GROUPS})")]
    NoSuchGroup(u8),
    /// More interlibrary-loan messages in one push than
    /// [`crate::ill::PUSH_MESSAGES_MAX`], or results in an answer.
    #[error("{0} interlibrary-loan messages in one push, over {max}", max = crate::ill::PUSH_MESSAGES_MAX)]
    TooManyMessages(usize),
    /// An interlibrary-loan message over [`crate::ill::MESSAGE_BYTES_MAX`], or a reason
    /// in an answer over [`crate::ill::TEXT_MAX`].
    #[error("an interlibrary-loan message or reason of {0} bytes, over the limit")]
    LongMessage(usize),
    /// Digests whose length is not the count times [`DIGEST_BYTES`].
    #[error("{got} bytes of digests where {want} belong")]
    DigestLength {
        /// Bytes sent.
        got: usize,
        /// Bytes expected.
        want: usize,
    },
}

/// Why bytes from a peer are not a message.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Longer than the limit of its kind.
    #[error("message of {bytes} bytes, over the limit of {max}")]
    TooBig {
        /// Bytes received.
        bytes: usize,
        /// Allowed.
        max: usize,
    },
    /// Not postcard of the message's type.
    #[error("not a sync message: {0}")]
    Malformed(#[from] postcard::Error),
    /// Well formed but past one of the protocol's bounds.
    #[error("sync message out of bounds: {0}")]
    OutOfBounds(#[from] Bound),
}

/// A message of the sync protocol: checked against the protocol's bounds once decoded.
pub trait Message: Serialize + DeserializeOwned {
    /// Whether the message keeps within the protocol's counts.
    fn check(&self) -> Result<(), Bound>;

    /// Whether this request starts a full sync round (a `Hello`): counted apart, since a
    /// change fetched by its `Changed` notice needs none.
    fn starts_round(&self) -> bool {
        false
    }
}

fn check_shards<T, L: AsRef<[T]>>(
    shards: &[(u16, L)],
    heads_max: Option<usize>,
) -> Result<(), Bound> {
    if shards.len() > SHARDS_PER_REQUEST {
        return Err(Bound::TooManyShards);
    }
    for (shard, heads) in shards {
        if *shard >= SHARD_COUNT {
            return Err(Bound::NoSuchShard(*shard));
        }
        if let Some(max) = heads_max.filter(|max| heads.as_ref().len() > *max) {
            return Err(Bound::TooManyHeads {
                shard: *shard,
                heads: heads.as_ref().len(),
                max,
            });
        }
    }
    Ok(())
}

fn check_group(group: u8) -> Result<(), Bound> {
    if u16::from(group) >= GROUPS {
        return Err(Bound::NoSuchGroup(group));
    }
    Ok(())
}

fn check_digests(bytes: &[u8], count: u16) -> Result<(), Bound> {
    let want = usize::from(count) * DIGEST_BYTES;
    if bytes.len() != want {
        return Err(Bound::DigestLength {
            got: bytes.len(),
            want,
        });
    }
    Ok(())
}

impl Message for SyncRequest {
    fn starts_round(&self) -> bool {
        matches!(self, SyncRequest::Hello)
    }

    fn check(&self) -> Result<(), Bound> {
        match self {
            SyncRequest::Group { group, .. } => check_group(*group),
            SyncRequest::Changes { shards, .. } => check_shards(shards, Some(HEADS_PER_SHARD_MAX)),
            SyncRequest::Changed { shards, .. } => check_shards(shards, Some(NOTICE_HEADS_MAX)),
            SyncRequest::Left { op } if op.len() > LEFT_TEXT_MAX => {
                Err(Bound::LongOperation(op.len()))
            }
            SyncRequest::Code { message, .. } if message.len() != CODE_MESSAGE_BYTES => {
                Err(Bound::CodeMessage(message.len()))
            }
            SyncRequest::Hello
            | SyncRequest::Summary { .. }
            | SyncRequest::Documents { .. }
            | SyncRequest::Join { .. }
            | SyncRequest::Code { .. }
            | SyncRequest::Left { .. } => Ok(()),
        }
    }
}

impl Message for SyncResponse {
    fn check(&self) -> Result<(), Bound> {
        match self {
            SyncResponse::Summary { groups, .. } => check_digests(groups, GROUPS),
            SyncResponse::Group { group, shards, .. } => {
                check_group(*group)?;
                check_digests(shards, SHARDS_PER_GROUP)
            }
            SyncResponse::Changes { shards, rest, .. } => {
                check_shards(shards, None)?;
                match rest.iter().find(|s| **s >= SHARD_COUNT) {
                    Some(shard) => Err(Bound::NoSuchShard(*shard)),
                    None => Ok(()),
                }
            }
            SyncResponse::Code { message, sealed } => {
                if message.len() != CODE_MESSAGE_BYTES {
                    Err(Bound::CodeMessage(message.len()))
                } else if sealed.len() > CODE_SEALED_MAX {
                    Err(Bound::CodeMessage(sealed.len()))
                } else {
                    Ok(())
                }
            }
            SyncResponse::Hello { .. }
            | SyncResponse::Documents { .. }
            | SyncResponse::Noted
            | SyncResponse::Joined { .. }
            | SyncResponse::Refused { .. } => Ok(()),
        }
    }
}

impl Message for Announcement {
    fn check(&self) -> Result<(), Bound> {
        Ok(())
    }
}

/// A question to a consortium's relay about join codes (`/jalin/code-directory/1`): a
/// member's node says which code numbers are open on it; a joiner asks which member has
/// one open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DirectoryRequest {
    /// "These code numbers are open on my node, each for so many seconds more"
    /// (replacing what this node said before; empty when none are).
    Open {
        /// The numbers and their seconds left, at most [`DIRECTORY_CODES_MAX`].
        codes: Bounded<(u16, u32), DIRECTORY_CODES_MAX>,
    },
    /// "Whose node has code number N open?"
    Find {
        /// The number.
        nameplate: u16,
    },
}

/// Code numbers one node may list at its relay.
pub const DIRECTORY_CODES_MAX: usize = 32;

/// The relay's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DirectoryResponse {
    /// Noted.
    Noted,
    /// The peer ids (libp2p's bytes) of the member nodes with that number open, at most
    /// [`DIRECTORY_CODES_MAX`].
    Found {
        /// Their peer ids.
        peers: Bounded<ByteBuf, DIRECTORY_CODES_MAX>,
    },
    /// Not served, and why.
    Refused {
        /// Why.
        reason: String,
    },
}

impl Message for DirectoryRequest {
    fn check(&self) -> Result<(), Bound> {
        Ok(())
    }
}

impl Message for DirectoryResponse {
    fn check(&self) -> Result<(), Bound> {
        Ok(())
    }
}

/// A message from at most `max` bytes: refused whole when longer, malformed, or past the
/// protocol's bounds. Allocates no more than the bytes themselves call for (postcard
/// reads lengths from the input and serde caps what it reserves ahead).
pub fn decode<M: Message>(bytes: &[u8], max: usize) -> Result<M, WireError> {
    if bytes.len() > max {
        return Err(WireError::TooBig {
            bytes: bytes.len(),
            max,
        });
    }
    let message: M = postcard::from_bytes(bytes)?;
    message.check()?;
    Ok(message)
}

/// A message's bytes.
pub fn encode<M: Message>(message: &M) -> Result<Vec<u8>, WireError> {
    Ok(postcard::to_stdvec(message)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(byte: u8) -> LibraryId {
        LibraryId::from_key(&ed25519_dalek::SigningKey::from_bytes(&[byte; 32]).verifying_key())
    }

    #[test]
    fn every_request_goes_there_and_back() {
        let requests = [
            SyncRequest::Hello,
            SyncRequest::Summary { namespace: id(1) },
            SyncRequest::Group {
                namespace: id(1),
                group: 15,
            },
            SyncRequest::Changes {
                namespace: id(2),
                shards: vec![(255, vec![ByteArray::new([7; 32])].into())].into(),
                max_bytes: 65_536,
            },
            SyncRequest::Documents {
                consortium: Hash32([3; 32]),
            },
            SyncRequest::Changed {
                namespace: None,
                shards: Bounded::default(),
            },
            SyncRequest::Join {
                acceptance: "diterima".into(),
            },
            SyncRequest::Left {
                op: "JALIN-OP:AAAA".into(),
            },
            SyncRequest::Code {
                nameplate: 47,
                message: vec![9; CODE_MESSAGE_BYTES],
            },
        ];
        for request in requests {
            let bytes = encode(&request).expect("encodes");
            let back: SyncRequest = decode(&bytes, 1024).expect("decodes");
            assert_eq!(back, request);
        }
    }

    #[test]
    fn counts_past_the_bounds_are_refused_with_the_bound() {
        let cases = [
            (
                SyncRequest::Group {
                    namespace: id(1),
                    group: 16,
                },
                Bound::NoSuchGroup(16),
            ),
            (
                SyncRequest::Changes {
                    namespace: id(1),
                    shards: vec![(256, Bounded::default())].into(),
                    max_bytes: 1,
                },
                Bound::NoSuchShard(256),
            ),
            (
                SyncRequest::Code {
                    nameplate: 47,
                    message: vec![0; 4096],
                },
                Bound::CodeMessage(4096),
            ),
        ];
        for (request, bound) in cases {
            let bytes = encode(&request).expect("encodes");
            match decode::<SyncRequest>(&bytes, 64 * 1024) {
                Err(WireError::OutOfBounds(got)) => assert_eq!(got, bound),
                other => panic!("{request:?} gave {other:?}"),
            }
        }
        // Counts past the bounds are refused as they are read, before their items are.
        let counts = [
            SyncRequest::Changes {
                namespace: id(1),
                shards: (0..33).map(|s| (s, Bounded::default())).collect(),
                max_bytes: 1,
            },
            SyncRequest::Changed {
                namespace: None,
                shards: vec![(4, vec![ByteArray::new([0; 32]); 9].into())].into(),
            },
        ];
        for request in counts {
            let bytes = encode(&request).expect("encodes");
            assert!(
                matches!(
                    decode::<SyncRequest>(&bytes, 64 * 1024),
                    Err(WireError::Malformed(_))
                ),
                "{request:?}"
            );
        }
        let short = SyncResponse::Summary {
            namespace: id(1),
            groups: ByteBuf::from(vec![0; 7]),
        };
        let bytes = encode(&short).expect("encodes");
        assert!(matches!(
            decode::<SyncResponse>(&bytes, 1024),
            Err(WireError::OutOfBounds(Bound::DigestLength {
                got: 7,
                want: 128
            }))
        ));
    }

    #[test]
    fn a_length_prefix_past_the_bytes_or_a_message_past_its_limit_fails() {
        // `Join` (variant 6) with a string claiming 2^62 bytes, and `Changes` with a vector
        // claiming as many shards: both end in an error, not an allocation.
        let mut join = vec![6u8];
        join.extend([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f]);
        assert!(matches!(
            decode::<SyncRequest>(&join, 1024),
            Err(WireError::Malformed(_))
        ));
        let mut changes = vec![3u8];
        changes.extend(id(1).as_bytes());
        changes.extend([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f]);
        assert!(matches!(
            decode::<SyncRequest>(&changes, 1024),
            Err(WireError::Malformed(_))
        ));
        assert!(matches!(
            decode::<SyncRequest>(&[0; 2000], 1024),
            Err(WireError::TooBig {
                bytes: 2000,
                max: 1024
            })
        ));
    }
}
