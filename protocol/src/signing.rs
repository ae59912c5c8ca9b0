//! Identities and signatures.
//!
//! A library is an ed25519 key pair; its [`LibraryId`] is the public key. Everything a
//! library signs is signed over a domain-separated message: a prefix naming the kind of
//! thing, then its canonical bytes, so a signature over one kind can never be replayed as
//! another. Verification is `verify_strict` (no small-order keys, canonical signatures).

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// A library's identity: its ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LibraryId([u8; 32]);

impl LibraryId {
    /// The identity of a public key.
    pub fn from_key(key: &VerifyingKey) -> Self {
        LibraryId(key.to_bytes())
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// From raw bytes; checked to be a usable, canonically encoded public key.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, SignatureError> {
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| SignatureError::BadKey)?;
        // Compare in canonical form: a non-canonical encoding of the same point is refused.
        if key.to_bytes() != bytes || key.is_weak() {
            return Err(SignatureError::BadKey);
        }
        Ok(LibraryId(bytes))
    }

    /// The verifying key.
    pub fn verifying_key(&self) -> Result<VerifyingKey, SignatureError> {
        VerifyingKey::from_bytes(&self.0).map_err(|_| SignatureError::BadKey)
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses lowercase or uppercase hex.
    pub fn from_hex(text: &str) -> Result<Self, SignatureError> {
        let bytes = unhex(text).ok_or(SignatureError::BadKey)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| SignatureError::BadKey)?;
        Self::from_bytes(bytes)
    }

    /// A short fingerprint for people: the first 8 bytes in hex, grouped by 4.
    pub fn fingerprint(&self) -> String {
        let h = hex(&self.0[..8]);
        format!("{}-{}-{}-{}", &h[..4], &h[4..8], &h[8..12], &h[12..16])
    }
}

impl std::fmt::Debug for LibraryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LibraryId({})", self.fingerprint())
    }
}

impl std::fmt::Display for LibraryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Hex in human-readable formats (JSON), the 32 raw bytes in binary ones (the canonical
/// encoding of signed documents); either way decoding checks the key is canonical.
impl Serialize for LibraryId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_hex())
        } else {
            self.0.serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for LibraryId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            LibraryId::from_hex(&text).map_err(serde::de::Error::custom)
        } else {
            let bytes = <[u8; 32]>::deserialize(deserializer)?;
            LibraryId::from_bytes(bytes).map_err(serde::de::Error::custom)
        }
    }
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// Bytes from hex (either case); `None` for odd length or a non-hex character.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    let text = text.as_bytes();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.chunks(2)
        .map(|pair| {
            let digit = |c: u8| (c as char).to_digit(16);
            Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
        })
        .collect()
}

/// Why a signature or key was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Not a valid, canonically encoded ed25519 public key.
    #[error("not a valid ed25519 public key")]
    BadKey,
    /// The signature does not verify for this key and message.
    #[error("signature does not verify")]
    BadSignature,
}

/// The kinds of signed thing: each is its own domain, so a signature over one kind never
/// verifies as another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// A change to a library's catalog (an automerge change in one shard).
    CatalogChange,
    /// An operation of a consortium's membership log (genesis, add, remove, ...).
    MembershipOp,
    /// An invite to join a consortium.
    Invite,
    /// A library's acceptance of an invite.
    Acceptance,
    /// A version of an agreement's text and terms.
    AgreementVersion,
    /// A library's signature on an agreement version.
    AgreementSignature,
    /// A member's assertion that two records are (not) the same book.
    MatchAssertion,
    /// A message of an interlibrary loan between two members.
    IllMessage,
    /// A member's tally of loans lent and borrowed.
    LoanTally,
    /// A title a member plans to buy.
    PlanItem,
    /// A member's conspectus (collecting levels by division).
    Conspectus,
    /// A member's summary of what its patrons look for.
    NeedsSummary,
    /// A library's profile, shared before any partnership.
    LibraryProfile,
    /// A member's post about staff development (training, sign-up, skills, help).
    StaffPost,
    /// A member's own figures for an evaluation period.
    EvaluationFigures,
    /// A member's signature on an evaluation period's report.
    EvaluationSignature,
    /// A bundle carried on a flash disk from one member's node to another's.
    Bundle,
}

impl Domain {
    /// The prefix signed before the message; also what hashes of signed documents start
    /// with, so a document's id is never another kind's.
    pub fn prefix(self) -> &'static [u8] {
        match self {
            Domain::CatalogChange => b"jalin/v1/catalog-change\0",
            Domain::MembershipOp => b"jalin/v1/membership-op\0",
            Domain::Invite => b"jalin/v1/invite\0",
            Domain::Acceptance => b"jalin/v1/acceptance\0",
            Domain::AgreementVersion => b"jalin/v1/agreement-version\0",
            Domain::AgreementSignature => b"jalin/v1/agreement-signature\0",
            Domain::MatchAssertion => b"jalin/v1/match-assertion\0",
            Domain::IllMessage => b"jalin/v1/ill-message\0",
            Domain::LoanTally => b"jalin/v1/loan-tally\0",
            Domain::PlanItem => b"jalin/v1/plan-item\0",
            Domain::Conspectus => b"jalin/v1/conspectus\0",
            Domain::NeedsSummary => b"jalin/v1/needs-summary\0",
            Domain::LibraryProfile => b"jalin/v1/library-profile\0",
            Domain::StaffPost => b"jalin/v1/staff-post\0",
            Domain::EvaluationFigures => b"jalin/v1/evaluation-figures\0",
            Domain::EvaluationSignature => b"jalin/v1/evaluation-signature\0",
            Domain::Bundle => b"jalin/v1/bundle\0",
        }
    }
}

/// Signs `message` in `domain`.
pub fn sign(key: &SigningKey, domain: Domain, message: &[u8]) -> [u8; 64] {
    let mut bytes = Vec::with_capacity(domain.prefix().len() + message.len());
    bytes.extend_from_slice(domain.prefix());
    bytes.extend_from_slice(message);
    key.sign(&bytes).to_bytes()
}

/// Verifies a signature made by [`sign`], strictly.
pub fn verify(
    author: &LibraryId,
    domain: Domain,
    message: &[u8],
    signature: &[u8; 64],
) -> Result<(), SignatureError> {
    let key = author.verifying_key()?;
    let signature = Signature::from_bytes(signature);
    let mut bytes = Vec::with_capacity(domain.prefix().len() + message.len());
    bytes.extend_from_slice(domain.prefix());
    bytes.extend_from_slice(message);
    key.verify_strict(&bytes, &signature)
        .map_err(|_| SignatureError::BadSignature)
}

/// The signed envelope every catalog change travels in: who wrote it, in whose catalog,
/// in which shard document, which automerge change. A relay can forward it but cannot
/// alter the change without breaking the signature (the change hash is the SHA-256 of the
/// change's bytes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEnvelope {
    /// The library that made the change.
    pub author: LibraryId,
    /// Whose catalog (today always the author's own).
    pub namespace: LibraryId,
    /// The shard document.
    pub shard: u16,
    /// The automerge change hash.
    #[serde(with = "hash_bytes")]
    pub change_hash: [u8; 32],
    /// Signature over [`ChangeEnvelope::signed_bytes`].
    #[serde(with = "signature_hex")]
    pub signature: [u8; 64],
}

/// The change hash: a list of numbers in JSON (as stored since the first release), a byte
/// string on the wire.
mod hash_bytes {
    use serde::{Deserialize, Serialize};

    pub fn serialize<S: serde::Serializer>(
        bytes: &[u8; 32],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            bytes.serialize(serializer)
        } else {
            serializer.serialize_bytes(bytes)
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<[u8; 32], D::Error> {
        if deserializer.is_human_readable() {
            <[u8; 32]>::deserialize(deserializer)
        } else {
            Ok(serde_bytes::ByteArray::<32>::deserialize(deserializer)?.into_array())
        }
    }
}

/// The signature: hex in JSON, a byte string on the wire.
mod signature_hex {
    use serde::Deserialize;

    pub fn serialize<S: serde::Serializer>(
        bytes: &[u8; 64],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&super::hex(bytes))
        } else {
            serializer.serialize_bytes(bytes)
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<[u8; 64], D::Error> {
        if !deserializer.is_human_readable() {
            return Ok(serde_bytes::ByteArray::<64>::deserialize(deserializer)?.into_array());
        }
        let text: String = Deserialize::deserialize(deserializer)?;
        super::unhex(&text)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| serde::de::Error::custom("signature is not 64 bytes of hex"))
    }
}

impl ChangeEnvelope {
    /// The canonical bytes signed: author, namespace, shard (big-endian), change hash.
    pub fn signed_bytes(
        author: &LibraryId,
        namespace: &LibraryId,
        shard: u16,
        change_hash: &[u8; 32],
    ) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(32 + 32 + 2 + 32);
        bytes.extend_from_slice(author.as_bytes());
        bytes.extend_from_slice(namespace.as_bytes());
        bytes.extend_from_slice(&shard.to_be_bytes());
        bytes.extend_from_slice(change_hash);
        bytes
    }

    /// Signs a change as `key`'s library, in its own namespace.
    pub fn sign(key: &SigningKey, shard: u16, change_hash: [u8; 32]) -> Self {
        let author = LibraryId::from_key(&key.verifying_key());
        let signature = sign(
            key,
            Domain::CatalogChange,
            &Self::signed_bytes(&author, &author, shard, &change_hash),
        );
        ChangeEnvelope {
            author,
            namespace: author,
            shard,
            change_hash,
            signature,
        }
    }

    /// Checks the signature, and that the author writes only its own namespace.
    pub fn verify(&self) -> Result<(), SignatureError> {
        if self.author != self.namespace {
            return Err(SignatureError::BadSignature);
        }
        let bytes =
            Self::signed_bytes(&self.author, &self.namespace, self.shard, &self.change_hash);
        verify(&self.author, Domain::CatalogChange, &bytes, &self.signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn envelope_verifies_and_tampering_breaks_it() {
        let envelope = ChangeEnvelope::sign(&key(1), 7, [9; 32]);
        assert_eq!(envelope.verify(), Ok(()));
        let mut moved = envelope.clone();
        moved.shard = 8;
        assert_eq!(moved.verify(), Err(SignatureError::BadSignature));
        let mut other_change = envelope.clone();
        other_change.change_hash[0] ^= 1;
        assert_eq!(other_change.verify(), Err(SignatureError::BadSignature));
        let mut forged = envelope;
        forged.author = LibraryId::from_key(&key(2).verifying_key());
        forged.namespace = forged.author;
        assert_eq!(forged.verify(), Err(SignatureError::BadSignature));
    }

    #[test]
    fn library_id_hex_round_trip_and_bad_keys() {
        let id = LibraryId::from_key(&key(3).verifying_key());
        assert_eq!(LibraryId::from_hex(&id.to_hex()), Ok(id));
        assert_eq!(LibraryId::from_hex("zz"), Err(SignatureError::BadKey));
        // The identity point (small order) is refused.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(LibraryId::from_bytes(identity), Err(SignatureError::BadKey));
        assert_eq!(id.fingerprint().len(), 19);
    }
}
