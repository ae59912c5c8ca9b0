//! A bundle: what one member's node hands another on a flash disk instead of over the
//! network. Plain framing and checks, no I/O of its own: the node wraps the frames in zstd
//! and a file; the fuzz target feeds [`BundleReader`] directly.
//!
//! A bundle is [`MAGIC`], then frames: a little-endian `u32` length and that many bytes of
//! postcard [`Section`]. The first section is the [`Header`] (who made it, for whom, its
//! number), the second the maker's [`Ack`] (what it holds, so the next bundle back carries
//! only what it lacks), then documents, catalog changes and loan messages, and last
//! [`Section::End`]: the count of sections before it and the maker's signature over the
//! SHA-256 of every frame before it. A reader refuses a frame over [`SECTION_BYTES_MAX`]
//! before allocating it, counts past [`Section::check`]'s bounds, sections out of order,
//! and anything after the end; a bundle cut short has no end and a bundle altered in one
//! byte fails the signature, so either is refused before anything of it is applied (the
//! node reads a bundle twice: once to check it, once to apply it, each frame checked
//! against its hash from the first reading).

use crate::bounded::Bounded;
use crate::consortium::document::Hash32;
use crate::signing::{self, Domain, LibraryId, SignatureError};
use crate::sync::{SignedChange, HEADS_PER_SHARD_MAX, SHARD_COUNT};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use serde_bytes::{ByteArray, ByteBuf};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};

/// The bytes a bundle starts with (before compression is taken off, the node's file
/// starts with its own magic).
pub const MAGIC: &[u8; 8] = b"JALINBN1";
/// The one version of the section layout.
pub const VERSION: u8 = 1;
/// Bytes of one section at most: a consortium's documents travel whole, as over the
/// network (whose answers are at most 32 MiB).
pub const SECTION_BYTES_MAX: usize = 33 << 20;
/// Bytes of catalog changes a writer puts in one section before starting another.
pub const CHANGES_BYTES_PER_SECTION: usize = 4 << 20;
/// Sections of one bundle at most.
pub const SECTIONS_MAX: u64 = 1 << 20;
/// Catalogs (or consortia) one acknowledgement names at most.
pub const ACK_CATALOGS_MAX: usize = 4_096;
/// Loan messages one section carries, and loan receipts one acknowledgement, at most.
pub const ILL_PER_SECTION_MAX: usize = 1_024;

/// Who made a bundle, for whom.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// [`VERSION`].
    pub version: u8,
    /// The member that made it (and signed it).
    pub from: LibraryId,
    /// The member it is for: no other node takes it in.
    pub to: LibraryId,
    /// The maker's count of bundles for `to`, from 1: a bundle whose number is not above
    /// the last one taken in is a replay.
    pub number: u64,
    /// When it was made, by the maker's clock (milliseconds since 1970).
    pub made_ms: u64,
}

/// Shards of a catalog, as a `usize`.
const SHARDS: usize = SHARD_COUNT as usize;

/// `(shard, its heads)` for each shard of a catalog that has any.
pub type ShardHeads = Bounded<(u16, Bounded<ByteArray<32>, HEADS_PER_SHARD_MAX>), SHARDS>;

/// What the maker holds, as it made the bundle: the next bundle back starts from here.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// Per catalog shared with the receiver, the heads of each shard that has any.
    pub catalogs: Bounded<(LibraryId, ShardHeads), ACK_CATALOGS_MAX>,
    /// Per consortium shared with the receiver, the digest of its documents.
    pub documents: Bounded<(Hash32, ByteArray<32>), ACK_CATALOGS_MAX>,
    /// The receiver's loan messages the maker took in (or refused for good) from the
    /// receiver's last bundle: they leave the receiver's outbox.
    pub ill_taken: Bounded<Hash32, ILL_PER_SECTION_MAX>,
    /// The number of the last bundle the maker took in from the receiver: a receiver
    /// whose data directory was restored from a copy numbers its next bundle above it.
    pub last_taken: u64,
}

/// One frame's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Section {
    /// First: the header, and the maker's signature over it alone, so a bundle that
    /// claims a maker whose key did not sign it is refused before anything else is read.
    Header {
        /// Who, for whom.
        header: Header,
        /// Over [`Domain::Bundle`], `header` and the header's postcard bytes.
        signature: ByteArray<64>,
    },
    /// Second.
    Ack(Ack),
    /// A consortium's documents, one per line, as `jalin consortium export` writes them.
    Documents {
        /// Which consortium.
        consortium: Hash32,
        /// The text.
        text: String,
    },
    /// Signed changes of some shards of one catalog (a shard's changes may go on in the
    /// next section, in order).
    Changes {
        /// Whose catalog.
        namespace: LibraryId,
        /// `(shard, changes)`.
        shards: Bounded<(u16, Vec<SignedChange>), SHARDS>,
    },
    /// Interlibrary-loan messages from the maker to the receiver (signed, as pushed over
    /// the network).
    Ill {
        /// The messages.
        messages: Bounded<ByteBuf, ILL_PER_SECTION_MAX>,
    },
    /// Last: the count of sections before it and the maker's signature.
    End {
        /// Sections before this one.
        sections: u64,
        /// Over [`Domain::Bundle`], the SHA-256 of every frame before this one, and the
        /// count.
        signature: ByteArray<64>,
    },
}

/// Why bytes are not a bundle, or not this one.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Reading failed (the file, or its decompression).
    #[error("reading the bundle failed: {0}")]
    Io(#[from] std::io::Error),
    /// Not a bundle at all.
    #[error("not a Jalin bundle (it does not start as one)")]
    NotABundle,
    /// Cut short.
    #[error("the bundle is cut short after {sections} section(s): copy it again whole")]
    Truncated {
        /// Sections read whole.
        sections: u64,
    },
    /// A frame over the limit.
    #[error("section {section} is {bytes} bytes, over the limit of {SECTION_BYTES_MAX}")]
    TooBig {
        /// Which.
        section: u64,
        /// Its length.
        bytes: u64,
    },
    /// Too many sections.
    #[error("more than {SECTIONS_MAX} sections")]
    TooMany,
    /// A frame that is not a section.
    #[error("section {section} is damaged: {reason}")]
    Malformed {
        /// Which.
        section: u64,
        /// Why.
        reason: String,
    },
    /// Sections out of order, a second header, or bytes after the end.
    #[error("section {section} is out of place: {reason}")]
    OutOfPlace {
        /// Which.
        section: u64,
        /// Why.
        reason: &'static str,
    },
    /// The signature does not hold: altered after it was made.
    #[error("the bundle was altered after it was made (its signature does not match)")]
    Altered,
    /// A version this node does not read.
    #[error("bundle version {0} is not read by this version of Jalin")]
    Version(u8),
}

impl Section {
    /// Whether the section keeps within the bounds the decoding does not enforce:
    /// shard numbers and the size of each loan message. (Counts are bounded as they are
    /// read: [`Bounded`].)
    pub fn check(&self) -> Result<(), &'static str> {
        let no_such_shard = |shard: &u16| *shard >= SHARD_COUNT;
        match self {
            Section::Ack(ack) => {
                if ack
                    .catalogs
                    .iter()
                    .any(|(_, shards)| shards.iter().any(|(s, _)| no_such_shard(s)))
                {
                    return Err("a shard that does not exist");
                }
                Ok(())
            }
            Section::Changes { shards, .. } if shards.iter().any(|(s, _)| no_such_shard(s)) => {
                Err("a shard that does not exist")
            }
            Section::Ill { messages }
                if messages
                    .iter()
                    .any(|m| m.len() > crate::ill::MESSAGE_BYTES_MAX) =>
            {
                Err("a loan message over its size limit")
            }
            _ => Ok(()),
        }
    }
}

fn header_bytes(header: &Header) -> Vec<u8> {
    let mut bytes = b"header\0".to_vec();
    bytes.extend(postcard::to_stdvec(header).unwrap_or_default());
    bytes
}

fn signed_bytes(digest: &[u8; 32], sections: u64) -> Vec<u8> {
    let mut bytes = digest.to_vec();
    bytes.extend_from_slice(&sections.to_le_bytes());
    bytes
}

/// Writes a bundle's frames: the header and acknowledgement first, then what the caller
/// adds, then (at [`BundleWriter::finish`]) the signed end.
pub struct BundleWriter<W: Write> {
    out: W,
    hasher: Sha256,
    sections: u64,
    bytes: u64,
}

impl<W: Write> BundleWriter<W> {
    /// Starts a bundle with its header and the maker's acknowledgement.
    pub fn new(
        mut out: W,
        key: &SigningKey,
        header: &Header,
        ack: &Ack,
    ) -> std::io::Result<BundleWriter<W>> {
        out.write_all(MAGIC)?;
        let mut writer = BundleWriter {
            out,
            hasher: Sha256::new(),
            sections: 0,
            bytes: MAGIC.len() as u64,
        };
        let signature = signing::sign(key, Domain::Bundle, &header_bytes(header));
        writer.add(&Section::Header {
            header: header.clone(),
            signature: ByteArray::new(signature),
        })?;
        writer.add(&Section::Ack(ack.clone()))?;
        Ok(writer)
    }

    /// Adds a section.
    pub fn add(&mut self, section: &Section) -> std::io::Result<()> {
        section.check().map_err(std::io::Error::other)?;
        let bytes = postcard::to_stdvec(section).map_err(std::io::Error::other)?;
        if bytes.len() > SECTION_BYTES_MAX {
            return Err(std::io::Error::other(format!(
                "a section of {} bytes, over the limit of {SECTION_BYTES_MAX}",
                bytes.len()
            )));
        }
        let length = u32::try_from(bytes.len()).map_err(std::io::Error::other)?;
        self.hasher.update(length.to_le_bytes());
        self.hasher.update(&bytes);
        self.out.write_all(&length.to_le_bytes())?;
        self.out.write_all(&bytes)?;
        self.sections += 1;
        self.bytes += 4 + bytes.len() as u64;
        Ok(())
    }

    /// Sections written so far.
    pub fn sections(&self) -> u64 {
        self.sections
    }

    /// Bytes written so far (before any compression the caller adds).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Signs and ends the bundle; gives the writer back.
    pub fn finish(mut self, key: &SigningKey) -> std::io::Result<W> {
        let digest: [u8; 32] = self.hasher.clone().finalize().into();
        let signature = signing::sign(key, Domain::Bundle, &signed_bytes(&digest, self.sections));
        let end = Section::End {
            sections: self.sections,
            signature: ByteArray::new(signature),
        };
        let bytes = postcard::to_stdvec(&end).map_err(std::io::Error::other)?;
        let length = u32::try_from(bytes.len()).map_err(std::io::Error::other)?;
        self.out.write_all(&length.to_le_bytes())?;
        self.out.write_all(&bytes)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Reads a bundle's sections in order, checking each frame's length before reading it,
/// each section's bounds and place, and at the end the signature.
pub struct BundleReader<R: Read> {
    input: R,
    hasher: Sha256,
    sections: u64,
    header: Option<Header>,
    ended: bool,
}

impl<R: Read> BundleReader<R> {
    /// Checks the magic.
    pub fn new(mut input: R) -> Result<BundleReader<R>, BundleError> {
        let mut magic = [0u8; 8];
        read_full(&mut input, &mut magic).map_err(|e| match e {
            ReadFull::Short => BundleError::NotABundle,
            ReadFull::Io(e) => BundleError::Io(e),
        })?;
        if &magic != MAGIC {
            return Err(BundleError::NotABundle);
        }
        Ok(BundleReader {
            input,
            hasher: Sha256::new(),
            sections: 0,
            header: None,
            ended: false,
        })
    }

    /// The next section with the SHA-256 of its frame, or `None` after the end, once
    /// the signature has been checked. The header must be the first section.
    pub fn next_section(&mut self) -> Result<Option<(Section, [u8; 32])>, BundleError> {
        if self.ended {
            return Ok(None);
        }
        let index = self.sections;
        let mut length = [0u8; 4];
        match read_full(&mut self.input, &mut length) {
            Ok(()) => {}
            Err(ReadFull::Short) => return Err(BundleError::Truncated { sections: index }),
            Err(ReadFull::Io(e)) => return Err(truncated_or(e, index)),
        }
        let bytes_len = u32::from_le_bytes(length);
        if bytes_len as usize > SECTION_BYTES_MAX {
            return Err(BundleError::TooBig {
                section: index,
                bytes: u64::from(bytes_len),
            });
        }
        let mut bytes = vec![0u8; bytes_len as usize];
        match read_full(&mut self.input, &mut bytes) {
            Ok(()) => {}
            Err(ReadFull::Short) => return Err(BundleError::Truncated { sections: index }),
            Err(ReadFull::Io(e)) => return Err(truncated_or(e, index)),
        }
        let section: Section =
            postcard::from_bytes(&bytes).map_err(|e| BundleError::Malformed {
                section: index,
                reason: e.to_string(),
            })?;
        section.check().map_err(|reason| BundleError::Malformed {
            section: index,
            reason: reason.to_string(),
        })?;
        let place = |reason| BundleError::OutOfPlace {
            section: index,
            reason,
        };
        match (&section, index) {
            (Section::Header { header, .. }, 0) if header.version != VERSION => {
                return Err(BundleError::Version(header.version))
            }
            (Section::Header { header, signature }, 0) => {
                signing::verify(
                    &header.from,
                    Domain::Bundle,
                    &header_bytes(header),
                    &signature.into_array(),
                )
                .map_err(|_: SignatureError| BundleError::Altered)?;
                self.header = Some(header.clone());
            }
            (Section::Header { .. }, _) => return Err(place("a second header")),
            (_, 0) => return Err(place("a bundle starts with its header")),
            (Section::Ack(_), 1) => {}
            (Section::Ack(_), _) => return Err(place("the acknowledgement comes second")),
            (_, 1) => return Err(place("the acknowledgement comes second")),
            (
                Section::End {
                    sections,
                    signature,
                },
                _,
            ) => {
                let header = self.header.as_ref().ok_or(place("no header"))?;
                let digest: [u8; 32] = self.hasher.clone().finalize().into();
                if *sections != index {
                    return Err(BundleError::Altered);
                }
                signing::verify(
                    &header.from,
                    Domain::Bundle,
                    &signed_bytes(&digest, index),
                    &signature.into_array(),
                )
                .map_err(|_: SignatureError| BundleError::Altered)?;
                // Nothing may follow the end.
                let mut rest = [0u8; 1];
                match self.input.read(&mut rest) {
                    Ok(0) => {}
                    Ok(_) => return Err(place("bytes after the end")),
                    Err(e) => return Err(BundleError::Io(e)),
                }
                self.ended = true;
                return Ok(None);
            }
            _ => {}
        }
        if index + 1 >= SECTIONS_MAX {
            return Err(BundleError::TooMany);
        }
        self.hasher.update(length);
        self.hasher.update(&bytes);
        self.sections += 1;
        let frame: [u8; 32] = Sha256::new()
            .chain_update(length)
            .chain_update(&bytes)
            .finalize()
            .into();
        Ok(Some((section, frame)))
    }

    /// The header, once the first section is read.
    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }
}

fn truncated_or(error: std::io::Error, sections: u64) -> BundleError {
    if error.kind() == std::io::ErrorKind::UnexpectedEof {
        BundleError::Truncated { sections }
    } else {
        BundleError::Io(error)
    }
}

enum ReadFull {
    Short,
    Io(std::io::Error),
}

/// Fills `buf`, or says how much came before the input ended.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> Result<(), ReadFull> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => return Err(ReadFull::Short),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadFull::Io(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn id(key: &SigningKey) -> LibraryId {
        LibraryId::from_bytes(key.verifying_key().to_bytes()).expect("a key")
    }

    /// Bundle 1 from `maker` for the library of key 2.
    fn header_of(maker: &SigningKey, made_ms: u64) -> Header {
        Header {
            version: VERSION,
            from: id(maker),
            to: id(&key(2)),
            number: 1,
            made_ms,
        }
    }

    fn sample() -> Vec<u8> {
        let maker = key(1);
        let header = header_of(&key(1), 1_700_000_000_000);
        let mut writer =
            BundleWriter::new(Vec::new(), &maker, &header, &Ack::default()).expect("writes");
        writer
            .add(&Section::Documents {
                consortium: Hash32([7; 32]),
                text: "JALIN-OP:ABC\n".into(),
            })
            .expect("writes");
        writer.finish(&maker).expect("ends")
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<Section>, BundleError> {
        let mut reader = BundleReader::new(bytes)?;
        let mut out = Vec::new();
        while let Some((section, _)) = reader.next_section()? {
            out.push(section);
        }
        Ok(out)
    }

    #[test]
    fn a_bundle_reads_back_and_its_signature_holds() {
        let sections = read_all(&sample()).expect("reads");
        assert_eq!(sections.len(), 3);
        assert!(matches!(
            sections[0],
            Section::Header {
                header: Header { number: 1, .. },
                ..
            }
        ));
        assert!(matches!(sections[2], Section::Documents { .. }));
    }

    #[test]
    fn every_byte_altered_or_cut_is_refused() {
        let bytes = sample();
        for i in 0..bytes.len() {
            let mut altered = bytes.clone();
            altered[i] ^= 0x01;
            assert!(read_all(&altered).is_err(), "byte {i} altered was read");
            assert!(read_all(&bytes[..i]).is_err(), "cut at {i} was read");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            read_all(&longer),
            Err(BundleError::OutOfPlace { .. })
        ));
    }

    #[test]
    fn a_section_of_many_empty_items_is_refused_as_it_is_read() {
        // A real maker's signed header and acknowledgement, then loan messages claiming
        // 33 million empty items (one byte each on the wire, 24 in memory): refused at
        // the count, before they are built (`Bounded`).
        let maker = key(1);
        let header = header_of(&key(1), 0);
        let writer =
            BundleWriter::new(Vec::new(), &maker, &header, &Ack::default()).expect("writes");
        let mut bytes = writer.finish(&maker).expect("ends");
        let frame_end = |bytes: &[u8], at: usize| {
            at + 4 + u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize
        };
        let after_ack = frame_end(&bytes, frame_end(&bytes, MAGIC.len()));
        bytes.truncate(after_ack);
        let mut frame = postcard::to_stdvec(&Section::Ill {
            messages: Bounded::default(),
        })
        .expect("encodes");
        frame.pop(); // the empty list's length
        let mut too_many = frame.clone();
        frame.extend([0xff, 0xff, 0xff, 0x0f]);
        frame.extend(std::iter::repeat_n(0u8, 1 << 20));
        // And 2,048 empty messages, every one there: over the bound all the same.
        too_many.extend([0x80, 0x10]);
        too_many.extend(std::iter::repeat_n(0u8, 2048));
        for frame in [frame, too_many] {
            let mut bytes = bytes.clone();
            bytes.extend((frame.len() as u32).to_le_bytes());
            bytes.extend(frame);
            assert!(matches!(
                read_all(&bytes),
                Err(BundleError::Malformed { section: 2, .. })
            ));
        }
    }

    #[test]
    fn a_huge_length_is_refused_before_it_is_allocated() {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            read_all(&bytes),
            Err(BundleError::TooBig { section: 0, .. })
        ));
    }

    #[test]
    fn a_bundle_signed_by_another_key_is_altered() {
        let header = header_of(&key(1), 0);
        let writer =
            BundleWriter::new(Vec::new(), &key(1), &header, &Ack::default()).expect("writes");
        let bytes = writer.finish(&key(3)).expect("ends");
        assert!(matches!(read_all(&bytes), Err(BundleError::Altered)));
        // Signed as a maker it does not name: refused at the header.
        let writer =
            BundleWriter::new(Vec::new(), &key(3), &header, &Ack::default()).expect("writes");
        let bytes = writer.finish(&key(3)).expect("ends");
        assert!(matches!(read_all(&bytes), Err(BundleError::Altered)));
    }
}
