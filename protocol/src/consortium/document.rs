//! Signed documents: one envelope for every kind, its canonical bytes, and its text form.
//!
//! A document is `Signed<T>`: the author's key, the body, and an ed25519 signature over
//! the kind's domain prefix followed by the canonical (postcard) encoding of author and
//! body. Decoding re-encodes and compares, so there is exactly one byte string for each
//! document; its id is the SHA-256 of the domain prefix and those bytes.
//!
//! The text form travels by chat, e-mail or paper: `JALIN-<KIND>:` and base32 (RFC 4648,
//! upper case, no padding: QR codes hold it in their compact alphanumeric mode) of the
//! bytes followed by a 4-byte checksum, so a mistyped character is reported as such before
//! any signature is looked at. Spaces and line breaks inside are ignored, and case too.

use crate::signing::{self, Domain, LibraryId, SignatureError};
use ed25519_dalek::SigningKey;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The largest document accepted (bytes before the text encoding): agreements with long
/// texts fit, a flood does not.
pub const DOCUMENT_MAX_BYTES: usize = 1 << 20;

/// A SHA-256 hash naming a document: a consortium, an operation, an invite, a version.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash32(pub [u8; 32]);

impl Hash32 {
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        signing::hex(&self.0)
    }

    /// Parses 64 hex characters.
    pub fn from_hex(text: &str) -> Option<Hash32> {
        Some(Hash32(signing::unhex(text.trim())?.try_into().ok()?))
    }

    /// The first 8 hex characters, for people.
    pub fn short(&self) -> String {
        self.to_hex()[..8].to_string()
    }
}

impl std::fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hash32({})", self.short())
    }
}

impl std::fmt::Display for Hash32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Hash32 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_hex())
        } else {
            self.0.serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for Hash32 {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            Hash32::from_hex(&text).ok_or_else(|| serde::de::Error::custom("not 64 hex digits"))
        } else {
            Ok(Hash32(<[u8; 32]>::deserialize(deserializer)?))
        }
    }
}

/// An ed25519 signature (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Sig(pub [u8; 64]);

impl std::fmt::Debug for Sig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sig({}..)", signing::hex(&self.0[..4]))
    }
}

impl Serialize for Sig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&signing::hex(&self.0))
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Sig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes: Vec<u8> = if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            signing::unhex(&text).ok_or_else(|| serde::de::Error::custom("not hex"))?
        } else {
            serde_bytes_vec(deserializer)?
        };
        Ok(Sig(bytes.try_into().map_err(|_| {
            serde::de::Error::custom("a signature is 64 bytes")
        })?))
    }
}

fn serde_bytes_vec<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("bytes")
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
    }
    deserializer.deserialize_bytes(Visitor)
}

/// Everything that can be wrong with a document, in words a sysadmin can act on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DocError {
    /// The text does not start with a Jalin label.
    #[error("not a Jalin document: expected text starting with \"JALIN-{expected}:\"")]
    NotArmored {
        /// The kind expected.
        expected: String,
    },
    /// A document of another kind.
    #[error("this is a {found} document, not a {expected} document")]
    WrongKind {
        /// What was expected.
        expected: String,
        /// What the label says.
        found: String,
    },
    /// A character outside base32.
    #[error("character {position} ({character:?}) cannot be part of a Jalin document")]
    BadCharacter {
        /// 1-based position in the encoded part.
        position: usize,
        /// The character.
        character: char,
    },
    /// The checksum does not match: mistyped or damaged.
    #[error("the checksum does not match: the text was mistyped, cut short or damaged")]
    Checksum,
    /// Too big.
    #[error("document too large: {size} bytes (at most {max})")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes do not decode.
    #[error("malformed document: {0}")]
    Malformed(String),
    /// The bytes decode but are not the canonical encoding of what they decode to.
    #[error("not canonically encoded: the same document has another, canonical byte form")]
    NonCanonical,
    /// A key or signature problem.
    #[error("{0}")]
    Signature(#[from] SignatureError),
    /// Made for another consortium.
    #[error("made for consortium {found}, not this one ({expected})")]
    WrongConsortium {
        /// This consortium.
        expected: Hash32,
        /// The document's.
        found: Hash32,
    },
    /// An invite past its expiry.
    #[error("the invite expired at {expired_ms} (ms since 1970), before it was used at {at_ms}")]
    Expired {
        /// When it expired.
        expired_ms: u64,
        /// When it was used.
        at_ms: u64,
    },
    /// An invite already used.
    #[error("the invite {invite} was already used (operation {by})")]
    InviteUsed {
        /// The invite.
        invite: Hash32,
        /// The operation that used it.
        by: Hash32,
    },
    /// An operation its author may not make.
    #[error("rejected: {0}")]
    Rejected(String),
    /// A rule of the document's kind broken.
    #[error("invalid document: {0}")]
    Invalid(String),
}

impl DocError {
    /// What kind of failure this is, as a stable name (the API's `code`; the web
    /// interface explains each in the librarian's language).
    pub fn code(&self) -> &'static str {
        match self {
            DocError::NotArmored { .. } => "not_a_document",
            DocError::WrongKind { .. } => "wrong_kind",
            DocError::BadCharacter { .. } | DocError::Checksum => "mistyped",
            DocError::TooLarge { .. } => "too_large",
            DocError::Malformed(_) | DocError::NonCanonical => "damaged",
            DocError::Signature(_) => "bad_signature",
            DocError::WrongConsortium { .. } => "wrong_consortium",
            DocError::Expired { .. } => "invite_expired",
            DocError::InviteUsed { .. } => "invite_used",
            DocError::Rejected(_) => "not_allowed",
            DocError::Invalid(_) => "invalid",
        }
    }
}

/// A kind of signed document.
pub trait Kind: Serialize + DeserializeOwned + Clone {
    /// Its signature domain.
    const DOMAIN: Domain;
    /// Its text label (`JALIN-<LABEL>:`).
    const LABEL: &'static str;
}

/// A document signed by its author.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed<T> {
    /// Who signed it.
    pub author: LibraryId,
    /// What is signed.
    pub body: T,
    /// Over the domain prefix and the canonical encoding of `(author, body)`.
    pub signature: Sig,
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // postcard cannot fail on these types except on allocation; an empty result would
    // fail verification, never pass it.
    postcard::to_allocvec(value).unwrap_or_default()
}

impl<T: Kind> Signed<T> {
    fn message(author: &LibraryId, body: &T) -> Vec<u8> {
        encode(&(author, body))
    }

    /// Signs `body` as `key`'s library.
    pub fn sign(key: &SigningKey, body: T) -> Self {
        let author = LibraryId::from_key(&key.verifying_key());
        let signature = signing::sign(key, T::DOMAIN, &Self::message(&author, &body));
        Signed {
            author,
            body,
            signature: Sig(signature),
        }
    }

    /// Checks the signature (strictly).
    pub fn verify(&self) -> Result<(), DocError> {
        signing::verify(
            &self.author,
            T::DOMAIN,
            &Self::message(&self.author, &self.body),
            &self.signature.0,
        )?;
        Ok(())
    }

    /// The canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes canonical bytes and checks the signature.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DocError> {
        if bytes.len() > DOCUMENT_MAX_BYTES {
            return Err(DocError::TooLarge {
                size: bytes.len(),
                max: DOCUMENT_MAX_BYTES,
            });
        }
        // The author's key first: a clear error for a bad or non-canonical key.
        let author: [u8; 32] = bytes
            .get(..32)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| DocError::Malformed("shorter than a key".into()))?;
        LibraryId::from_bytes(author)?;
        let (doc, rest): (Self, &[u8]) = postcard::take_from_bytes(bytes).map_err(|e| {
            let why = match e {
                postcard::Error::SerdeDeCustom => {
                    "a key, hash or signature inside is not valid".to_string()
                }
                other => other.to_string(),
            };
            DocError::Malformed(format!("{why} (in a {} document)", T::LABEL.to_lowercase()))
        })?;
        if !rest.is_empty() {
            return Err(DocError::Malformed(format!(
                "{} bytes left over after the document",
                rest.len()
            )));
        }
        if doc.to_bytes() != bytes {
            return Err(DocError::NonCanonical);
        }
        doc.verify()?;
        Ok(doc)
    }

    /// The document's id: SHA-256 of its domain prefix and canonical bytes.
    pub fn id(&self) -> Hash32 {
        let mut hasher = Sha256::new();
        hasher.update(T::DOMAIN.prefix());
        hasher.update(self.to_bytes());
        Hash32(hasher.finalize().into())
    }

    /// The text form: one line.
    pub fn to_text(&self) -> String {
        armor(T::LABEL, &self.to_bytes())
    }

    /// Parses the text form, checking label, checksum, encoding and signature.
    pub fn from_text(text: &str) -> Result<Self, DocError> {
        // The kind first: "this is an op, not an invite" says more than a checksum.
        if let Some(label) = label_of(text) {
            if label != T::LABEL {
                return Err(DocError::WrongKind {
                    expected: T::LABEL.to_lowercase(),
                    found: label.to_lowercase(),
                });
            }
        }
        let (label, bytes) = dearmor(text)?;
        if label != T::LABEL {
            return Err(DocError::WrongKind {
                expected: T::LABEL.to_lowercase(),
                found: label.to_lowercase(),
            });
        }
        Self::from_bytes(&bytes)
    }
}

fn checksum(label: &str, bytes: &[u8]) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(label.as_bytes());
    hasher.update(bytes);
    let digest = hasher.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// `JALIN-<LABEL>:` and base32 of `bytes` plus checksum.
pub fn armor(label: &str, bytes: &[u8]) -> String {
    let mut payload = bytes.to_vec();
    payload.extend_from_slice(&checksum(label, bytes));
    format!(
        "JALIN-{label}:{}",
        data_encoding::BASE32_NOPAD.encode(&payload)
    )
}

/// The label and bytes of a text-form document. Whitespace anywhere is ignored, and case.
pub fn dearmor(text: &str) -> Result<(String, Vec<u8>), DocError> {
    let compact: String = text
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    let Some(rest) = compact.strip_prefix("JALIN-") else {
        return Err(DocError::NotArmored {
            expected: "<KIND>".into(),
        });
    };
    let Some((label, encoded)) = rest.split_once(':') else {
        return Err(DocError::NotArmored {
            expected: "<KIND>".into(),
        });
    };
    if label.is_empty() || !label.chars().all(|c| c.is_ascii_uppercase() || c == '-') {
        return Err(DocError::NotArmored {
            expected: "<KIND>".into(),
        });
    }
    if encoded.len() > DOCUMENT_MAX_BYTES * 8 / 5 + 16 {
        return Err(DocError::TooLarge {
            size: encoded.len() * 5 / 8,
            max: DOCUMENT_MAX_BYTES,
        });
    }
    if let Some((position, character)) = encoded
        .chars()
        .enumerate()
        .find(|(_, c)| !matches!(c, 'A'..='Z' | '2'..='7'))
    {
        return Err(DocError::BadCharacter {
            position: position + 1,
            character,
        });
    }
    // A length no encoder makes (1, 3 or 6 characters over a whole group) is a cut.
    let payload = data_encoding::BASE32_NOPAD
        .decode(encoded.as_bytes())
        .map_err(|_| DocError::Checksum)?;
    if payload.len() < 4 {
        return Err(DocError::Checksum);
    }
    let (bytes, sum) = payload.split_at(payload.len() - 4);
    if checksum(label, bytes) != sum {
        return Err(DocError::Checksum);
    }
    Ok((label.to_string(), bytes.to_vec()))
}

/// The label of a text-form document, without decoding it (to choose its kind).
pub fn label_of(text: &str) -> Option<String> {
    let start = text.trim_start();
    let rest = start
        .get(..6)
        .filter(|p| p.eq_ignore_ascii_case("JALIN-"))
        .map(|_| &start[6..])?;
    let (label, _) = rest.split_once(':')?;
    Some(label.trim().to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consortium::log::{Invite, Role};

    fn ticket() -> Signed<Invite> {
        Signed::sign(
            &SigningKey::from_bytes(&[4; 32]),
            Invite {
                consortium: Hash32([9; 32]),
                consortium_name: "Jaringan Perpustakaan Desa".into(),
                inviter_name: "Perpustakaan Desa Kemiri Lor".into(),
                role: Role::Member,
                created_ms: 1,
                expires_ms: 2,
                secret: [3; 16],
                note: "untuk SDN 2".into(),
                addresses: vec!["/ip4/127.0.0.1/tcp/4001".into()],
            },
        )
    }

    #[test]
    fn text_form_round_trips_whatever_the_case_and_line_breaks() {
        let invite = ticket();
        let text = invite.to_text();
        assert!(text.starts_with("JALIN-INVITE:"));
        assert_eq!(Signed::<Invite>::from_text(&text), Ok(invite.clone()));
        let wrapped: String = text
            .to_lowercase()
            .chars()
            .enumerate()
            .flat_map(|(i, c)| {
                if i % 60 == 59 {
                    vec![c, '\n', ' ']
                } else {
                    vec![c]
                }
            })
            .collect();
        assert_eq!(Signed::<Invite>::from_text(&wrapped), Ok(invite.clone()));
        assert_eq!(Signed::<Invite>::from_bytes(&invite.to_bytes()), Ok(invite));
    }

    #[test]
    fn every_single_character_mistake_is_caught_before_the_signature() {
        let text = ticket().to_text();
        let start = text.find(':').expect("label") + 1;
        let mut checked = 0;
        for (i, original) in text.char_indices().skip(start) {
            for replacement in ['A', 'Q', '7', '2'] {
                if replacement == original {
                    continue;
                }
                let mut changed = text.clone();
                changed.replace_range(i..i + 1, &replacement.to_string());
                let error = Signed::<Invite>::from_text(&changed).expect_err("caught");
                assert_eq!(error, DocError::Checksum, "position {i}");
                checked += 1;
            }
        }
        assert!(checked > 1000, "{checked}");
        // A dropped character, and a character that is not base32.
        let mut cut = text.clone();
        cut.remove(text.len() / 2);
        assert_eq!(Signed::<Invite>::from_text(&cut), Err(DocError::Checksum));
        let mut bad = text.clone();
        bad.replace_range(start + 3..start + 4, "1");
        assert!(matches!(
            Signed::<Invite>::from_text(&bad),
            Err(DocError::BadCharacter {
                position: 4,
                character: '1'
            })
        ));
    }

    #[test]
    fn bytes_are_canonical_and_signatures_domain_separated() {
        let invite = ticket();
        let mut bytes = invite.to_bytes();
        bytes.push(0);
        assert!(matches!(
            Signed::<Invite>::from_bytes(&bytes),
            Err(DocError::Malformed(_))
        ));
        // The same bytes signed as one kind do not verify as another.
        let key = SigningKey::from_bytes(&[4; 32]);
        let message = Signed::<Invite>::message(&invite.author, &invite.body);
        let signature = signing::sign(&key, Domain::Invite, &message);
        assert_eq!(
            signing::verify(&invite.author, Domain::Invite, &message, &signature),
            Ok(())
        );
        for other in [
            Domain::Acceptance,
            Domain::MembershipOp,
            Domain::AgreementSignature,
        ] {
            assert_eq!(
                signing::verify(&invite.author, other, &message, &signature),
                Err(SignatureError::BadSignature)
            );
        }
        assert_ne!(invite.id(), Hash32([0; 32]));
    }
}
