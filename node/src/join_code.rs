//! Joining by a code read over the phone (issue 18, in progress): a ticket is ~500
//! characters, fine by chat or flash disk, hopeless to dictate. The inviter's node gives
//! a short code (`47-kopi-sawah-merak`: a number naming the invite and three words from
//! an Indonesian list) and hands the invite's ticket, sealed, only to whoever proves it
//! knows the words, by SPAKE2 (a password-authenticated key exchange, as Magic Wormhole
//! does): someone who listens learns nothing, and someone who guesses gets one try (the
//! inviter spends the code on the first attempt, right or wrong). The joiner then joins
//! with the ticket as before (the same signed invite and acceptance).
//!
//! The code and its ticket live in the running node's memory only ([`OpenCodes`]), never
//! on disk, for at most [`CODE_LIFETIME_MAX_MS`]. The joiner finds the node by the code's
//! number: asking the local network ([`query`], answered by the node's UDP port, see
//! [`crate::beacon`]) or the consortium's relay (its directory of open numbers, see
//! [`crate::relay`]). It then connects under the number's identity
//! ([`crate::network::code_identity`]), which the inviter's node admits, for one
//! `SyncRequest::Code` only, while that code is open.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use jalin_protocol::consortium::document::Hash32;
use sha2::{Digest, Sha256};
use spake2::{Ed25519Group, Identity, Password, Spake2};

/// The words a code is made of: 256, so each is a byte. Common, concrete, distinct words
/// a villager reads out over a poor line.
pub const WORDS: [&str; 256] = [
    "air",
    "api",
    "awan",
    "ayam",
    "bambu",
    "batu",
    "bayam",
    "bebek",
    "belut",
    "benih",
    "beras",
    "besi",
    "bintang",
    "bola",
    "bukit",
    "bulan",
    "bunga",
    "buku",
    "burung",
    "cabai",
    "cahaya",
    "cangkul",
    "capung",
    "cermin",
    "cicak",
    "cumi",
    "daun",
    "delima",
    "dermaga",
    "desa",
    "dinding",
    "domba",
    "duku",
    "durian",
    "elang",
    "embun",
    "emas",
    "gajah",
    "gandum",
    "garam",
    "gelas",
    "genting",
    "gitar",
    "gula",
    "gunung",
    "guru",
    "hujan",
    "hutan",
    "ikan",
    "intan",
    "itik",
    "jagung",
    "jahe",
    "jalan",
    "jambu",
    "jangkrik",
    "jarum",
    "jeruk",
    "jembatan",
    "jendela",
    "kabut",
    "kacang",
    "kain",
    "kakao",
    "kambing",
    "kancil",
    "kapal",
    "kapas",
    "karang",
    "kayu",
    "kebun",
    "kelapa",
    "kelinci",
    "kemiri",
    "kenari",
    "kendi",
    "kepiting",
    "kerang",
    "ketan",
    "kijang",
    "kincir",
    "kopi",
    "kota",
    "kuda",
    "kunci",
    "kunyit",
    "kupu",
    "lada",
    "ladang",
    "lampu",
    "langit",
    "laut",
    "lebah",
    "lemari",
    "lilin",
    "lumbung",
    "madu",
    "mangga",
    "manggis",
    "markisa",
    "matahari",
    "meja",
    "melati",
    "merpati",
    "mutiara",
    "nanas",
    "nangka",
    "padi",
    "pagar",
    "pantai",
    "papaya",
    "pasar",
    "pasir",
    "pelangi",
    "pena",
    "perahu",
    "perak",
    "pintu",
    "pisang",
    "pohon",
    "pulau",
    "pupuk",
    "rambutan",
    "rebana",
    "rumput",
    "rusa",
    "sagu",
    "salak",
    "sapi",
    "sawah",
    "sawi",
    "sayur",
    "sekolah",
    "selasih",
    "semut",
    "sendok",
    "senja",
    "sepeda",
    "serai",
    "sirih",
    "sumur",
    "sungai",
    "surat",
    "susu",
    "tali",
    "tanah",
    "tangga",
    "tebu",
    "teh",
    "telaga",
    "telur",
    "tembikar",
    "tempe",
    "terang",
    "terigu",
    "timun",
    "tiram",
    "topi",
    "tomat",
    "tongkat",
    "ubi",
    "udang",
    "ulat",
    "umbi",
    "urat",
    "wajan",
    "waluh",
    "warung",
    "wortel",
    "zaitun",
    "anggrek",
    "angsa",
    "arang",
    "asam",
    "bakau",
    "bawang",
    "belimbing",
    "beringin",
    "bakul",
    "bangau",
    "buaya",
    "cempaka",
    "cengkih",
    "dadap",
    "dahan",
    "dodol",
    "dayung",
    "ember",
    "enau",
    "gabah",
    "gambir",
    "gayung",
    "genta",
    "gerobak",
    "goni",
    "harimau",
    "ilalang",
    "jati",
    "jerami",
    "kacapi",
    "kakak",
    "kelereng",
    "kemangi",
    "kenanga",
    "kendang",
    "kerbau",
    "keris",
    "kolam",
    "kopiah",
    "lesung",
    "lontar",
    "lumut",
    "mawar",
    "mentimun",
    "merak",
    "nila",
    "obor",
    "pala",
    "pandan",
    "payung",
    "pelita",
    "penyu",
    "perdu",
    "petai",
    "piring",
    "rotan",
    "sarung",
    "seruling",
    "singkong",
    "siput",
    "sukun",
    "tampah",
    "tikar",
    "tudung",
    "tupai",
    "walet",
    "wayang",
    "beo",
    "cendana",
    "dukuh",
    "gading",
    "jalak",
    "kutilang",
    "lobak",
    "nipah",
    "kemuning",
    "ketapang",
    "randu",
    "ketumbar",
    "kunang",
    "lengkuas",
    "rebung",
    "talas",
    "terong",
    "jamur",
    "sekar",
];

/// Words in a code: 24 bits beside the number, one guess in 16.7 million for the one try
/// the code gives.
pub const CODE_WORDS: usize = 3;
/// The largest invite number (the "nameplate").
pub const NAMEPLATE_MAX: u16 = 999;
use jalin_protocol::sync::{
    CODE_MESSAGE_BYTES as MESSAGE_BYTES, CODE_SEALED_MAX as SEALED_BYTES_MAX,
};
/// How long a code is valid at most (the invite behind it may live longer, by ticket).
pub const CODE_LIFETIME_MAX_MS: u64 = 60 * 60 * 1000;
/// Codes open at once on one node, at most.
pub const OPEN_CODES_MAX: usize = 32;

/// Why a code or an exchange failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodeError {
    /// Not a code: a number and three words.
    #[error("not a join code: give the number and the three words, as \"47-kopi-sawah-merak\"")]
    Malformed,
    /// A word not on the list (misheard?).
    #[error("{0:?} is not one of the code's words: check it with the inviting library")]
    UnknownWord(String),
    /// The other side's message is not one.
    #[error("the other side's message is damaged")]
    BadMessage,
    /// The words do not match: the ticket cannot be opened. The code is spent.
    #[error("the code is wrong: ask the inviting library for a new one (this one is spent)")]
    Wrong,
    /// The random number generator failed.
    #[error("no randomness available")]
    Random,
    /// Too many codes open at once on this node.
    #[error("{OPEN_CODES_MAX} codes are open already: wait for one to be used or expire")]
    TooMany,
}

/// A join code: the invite's number and three words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinCode {
    /// Names the invite on the inviter's node (not secret).
    pub nameplate: u16,
    /// The secret: indices into [`WORDS`].
    pub words: [u8; CODE_WORDS],
}

impl JoinCode {
    /// A new code from the system's randomness.
    pub fn random() -> Result<JoinCode, CodeError> {
        let mut bytes = [0u8; 2 + CODE_WORDS];
        getrandom::fill(&mut bytes).map_err(|_| CodeError::Random)?;
        let nameplate = 1 + u16::from_be_bytes([bytes[0], bytes[1]]) % NAMEPLATE_MAX;
        let mut words = [0u8; CODE_WORDS];
        words.copy_from_slice(&bytes[2..]);
        Ok(JoinCode { nameplate, words })
    }

    /// Reads a code as a person types or dictates it: any case, spaces or hyphens
    /// between the parts.
    pub fn parse(text: &str) -> Result<JoinCode, CodeError> {
        let lower = text.trim().to_lowercase();
        let parts: Vec<&str> = lower
            .split(|c: char| c == '-' || c.is_whitespace())
            .filter(|p| !p.is_empty())
            .collect();
        let [number, rest @ ..] = parts.as_slice() else {
            return Err(CodeError::Malformed);
        };
        if rest.len() != CODE_WORDS {
            return Err(CodeError::Malformed);
        }
        let nameplate: u16 = number.parse().map_err(|_| CodeError::Malformed)?;
        if nameplate == 0 || nameplate > NAMEPLATE_MAX {
            return Err(CodeError::Malformed);
        }
        let mut words = [0u8; CODE_WORDS];
        for (slot, word) in words.iter_mut().zip(rest) {
            let index = WORDS
                .iter()
                .position(|w| w == word)
                .ok_or_else(|| CodeError::UnknownWord(word.to_string()))?;
            *slot = u8::try_from(index).map_err(|_| CodeError::Malformed)?;
        }
        Ok(JoinCode { nameplate, words })
    }

    fn password(&self) -> Password {
        let words: Vec<&str> = self.words.iter().map(|w| WORDS[usize::from(*w)]).collect();
        Password::new(format!("{}-{}", self.nameplate, words.join("-")).as_bytes())
    }

    fn identities(&self) -> (Identity, Identity) {
        (
            Identity::new(format!("jalin/v1/join-code/joiner/{}", self.nameplate).as_bytes()),
            Identity::new(format!("jalin/v1/join-code/inviter/{}", self.nameplate).as_bytes()),
        )
    }
}

impl std::fmt::Display for JoinCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.nameplate)?;
        for word in &self.words {
            write!(f, "-{}", WORDS[usize::from(*word)])?;
        }
        Ok(())
    }
}

fn cipher(key: &[u8]) -> ChaCha20Poly1305 {
    let mut hasher = Sha256::new();
    hasher.update(b"jalin/v1/join-code-key\0");
    hasher.update(key);
    let key: [u8; 32] = hasher.finalize().into();
    ChaCha20Poly1305::new(&key.into())
}

/// The key of one exchange is used for one message: the nonce can be fixed.
const NONCE: [u8; 12] = [0; 12];

/// The joiner's side, between its message and the inviter's answer.
pub struct Joiner(Spake2<Ed25519Group>);

impl Joiner {
    /// Starts the exchange: the message to send to the inviter's node.
    pub fn start(code: &JoinCode) -> (Joiner, Vec<u8>) {
        let (joiner, inviter) = code.identities();
        let (state, message) = Spake2::<Ed25519Group>::start_a(&code.password(), &joiner, &inviter);
        (Joiner(state), message)
    }

    /// Opens the ticket the inviter sealed: wrong words open nothing.
    pub fn finish(self, message: &[u8], sealed: &[u8]) -> Result<String, CodeError> {
        if message.len() != MESSAGE_BYTES || sealed.len() > SEALED_BYTES_MAX {
            return Err(CodeError::BadMessage);
        }
        let key = self.0.finish(message).map_err(|_| CodeError::BadMessage)?;
        let ticket = cipher(&key)
            .decrypt(&NONCE.into(), sealed)
            .map_err(|_| CodeError::Wrong)?;
        String::from_utf8(ticket).map_err(|_| CodeError::BadMessage)
    }
}

/// The inviter's side: answers a joiner's message with its own and the ticket sealed
/// under the key both derive only if they used the same code.
pub fn answer(
    code: &JoinCode,
    message: &[u8],
    ticket: &str,
) -> Result<(Vec<u8>, Vec<u8>), CodeError> {
    if message.len() != MESSAGE_BYTES || ticket.len() > SEALED_BYTES_MAX - 16 {
        return Err(CodeError::BadMessage);
    }
    let (joiner, inviter) = code.identities();
    let (state, reply) = Spake2::<Ed25519Group>::start_b(&code.password(), &joiner, &inviter);
    let key = state.finish(message).map_err(|_| CodeError::BadMessage)?;
    let sealed = cipher(&key)
        .encrypt(&NONCE.into(), ticket.as_bytes())
        .map_err(|_| CodeError::BadMessage)?;
    Ok((reply, sealed))
}

/// A code open on this node: what it unlocks, until when.
#[derive(Clone)]
pub struct OpenCode {
    /// The code.
    pub code: JoinCode,
    /// What it hands over: the invite's ticket, or the invitation (the ticket with the
    /// agreement proposed).
    pub ticket: String,
    /// The consortium the invite is to.
    pub consortium: Hash32,
    /// Until when it can be used (ms since 1970, this node's clock).
    pub expires_ms: u64,
    /// Tried once already: no second exchange; the joiner that opened the ticket may
    /// send its acceptance on the same connection.
    pub spent: bool,
}

/// The codes open on the running node, in memory only: a restart closes them (the
/// tickets behind them stay valid, by text).
#[derive(Default)]
pub struct OpenCodes(std::sync::Mutex<std::collections::BTreeMap<u16, OpenCode>>);

impl OpenCodes {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<u16, OpenCode>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens a code for `ticket` until `expires_ms` (at most [`CODE_LIFETIME_MAX_MS`]
    /// from `now_ms`), with a number no open code has.
    pub fn open(
        &self,
        ticket: String,
        consortium: Hash32,
        expires_ms: u64,
        now_ms: u64,
    ) -> Result<OpenCode, CodeError> {
        let mut codes = self.lock();
        codes.retain(|_, c| c.expires_ms > now_ms);
        if codes.len() >= OPEN_CODES_MAX {
            return Err(CodeError::TooMany);
        }
        let code = loop {
            let code = JoinCode::random()?;
            if !codes.contains_key(&code.nameplate) {
                break code;
            }
        };
        let open = OpenCode {
            code,
            ticket,
            consortium,
            expires_ms: expires_ms.min(now_ms.saturating_add(CODE_LIFETIME_MAX_MS)),
            spent: false,
        };
        codes.insert(open.code.nameplate, open.clone());
        Ok(open)
    }

    /// Spends the code numbered `nameplate` (whatever follows: one try), if it is open
    /// and not expired.
    pub fn take(&self, nameplate: u16, now_ms: u64) -> Option<OpenCode> {
        let mut codes = self.lock();
        let open = codes.get_mut(&nameplate)?;
        if open.spent || open.expires_ms <= now_ms {
            return None;
        }
        open.spent = true;
        Some(open.clone())
    }

    /// The consortium a spent code's invite is to, while the code's time lasts: its
    /// joiner's acceptance is taken on the code's connection (one that holds no ticket
    /// cannot make an acceptance for that invite).
    pub fn spent_for(&self, nameplate: u16, now_ms: u64) -> Option<OpenCode> {
        self.lock()
            .get(&nameplate)
            .filter(|c| c.spent && c.expires_ms > now_ms)
            .cloned()
    }

    /// Whether another code can be opened now.
    pub fn has_room(&self, now_ms: u64) -> bool {
        self.admitted_now(now_ms).len() < OPEN_CODES_MAX
    }

    /// Forgets a code whose joiner has joined.
    pub fn close(&self, nameplate: u16) {
        self.lock().remove(&nameplate);
    }

    /// The codes not expired, spent ones too (their identities are let in while they
    /// last), expired ones forgotten.
    pub fn admitted_now(&self, now_ms: u64) -> Vec<OpenCode> {
        let mut codes = self.lock();
        codes.retain(|_, c| c.expires_ms > now_ms);
        codes.values().cloned().collect()
    }

    /// The codes open for a try now (not spent, not expired).
    pub fn open_now(&self, now_ms: u64) -> Vec<OpenCode> {
        self.admitted_now(now_ms)
            .into_iter()
            .filter(|c| !c.spent)
            .collect()
    }

    /// Whether a code numbered `nameplate` is open for a try.
    pub fn is_open(&self, nameplate: u16, now_ms: u64) -> bool {
        self.lock()
            .get(&nameplate)
            .is_some_and(|c| !c.spent && c.expires_ms > now_ms)
    }
}

/// Bytes of a question, padded: an answer is never longer, so a forged sender address
/// gets no more bytes than the forger sent.
pub const QUERY_BYTES: usize = 512;

/// The local network's question: "whose node has code number N open?", one UDP datagram
/// of [`QUERY_BYTES`].
pub fn query(nameplate: u16) -> String {
    format!("{:<QUERY_BYTES$}", format!("JALIN-CODE? {nameplate}"))
}

/// The number a datagram asks about, if it is a [`query`] (padded to its size).
pub fn asked(datagram: &str) -> Option<u16> {
    if datagram.len() < QUERY_BYTES {
        return None;
    }
    let number = datagram.strip_prefix("JALIN-CODE? ")?;
    let nameplate: u16 = number.trim().parse().ok()?;
    (1..=NAMEPLATE_MAX)
        .contains(&nameplate)
        .then_some(nameplate)
}

/// Addresses in an answer, at most.
pub const ANSWER_ADDRESSES_MAX: usize = 8;

/// The answer of the node that has the code open: its addresses (with its peer id), as
/// many as fit in [`QUERY_BYTES`].
pub fn answer_query(nameplate: u16, addresses: &[String]) -> String {
    let mut text = format!("JALIN-CODE {nameplate}");
    for address in addresses.iter().take(ANSWER_ADDRESSES_MAX) {
        if text.len() + 1 + address.len() > QUERY_BYTES {
            break;
        }
        text.push(' ');
        text.push_str(address);
    }
    text
}

/// Whether a question's sender is on a local network (private, link-local or loopback
/// addresses): the question is answered to no one else.
pub fn is_local(address: &std::net::IpAddr) -> bool {
    match address {
        std::net::IpAddr::V4(v4) => v4.is_private() || v4.is_link_local() || v4.is_loopback(),
        std::net::IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// The addresses an answer about `nameplate` gives (each ends with `/p2p/<peer id>`);
/// anything else is not one.
pub fn answered(datagram: &str, nameplate: u16) -> Option<Vec<String>> {
    let mut parts = datagram.split_whitespace();
    if parts.next()? != "JALIN-CODE" || parts.next()?.parse::<u16>().ok()? != nameplate {
        return None;
    }
    Some(
        parts
            .take(ANSWER_ADDRESSES_MAX)
            .filter(|a| a.starts_with('/') && a.len() <= 256)
            .map(str::to_string)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICKET: &str = "JALIN-INVITE:ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

    #[test]
    fn a_code_reads_back_as_a_person_types_it() {
        for _ in 0..50 {
            let code = JoinCode::random().expect("random");
            assert!((1..=NAMEPLATE_MAX).contains(&code.nameplate));
            assert_eq!(JoinCode::parse(&code.to_string()), Ok(code.clone()));
            let spoken = code.to_string().replace('-', " ").to_uppercase();
            assert_eq!(JoinCode::parse(&format!("  {spoken} ")), Ok(code));
        }
        assert_eq!(JoinCode::parse("47-kopi-sawah"), Err(CodeError::Malformed));
        assert_eq!(
            JoinCode::parse("0-kopi-sawah-merak"),
            Err(CodeError::Malformed)
        );
        assert_eq!(
            JoinCode::parse("47-kopi-sawah-meraq"),
            Err(CodeError::UnknownWord("meraq".into()))
        );
    }

    #[test]
    fn the_local_network_question_is_answered_in_no_more_bytes_than_it_took() {
        let question = query(47);
        assert_eq!(question.len(), QUERY_BYTES);
        assert_eq!(asked(&question), Some(47));
        // An unpadded question (a forger's cheap one) is not one.
        assert_eq!(asked("JALIN-CODE? 47"), None);
        assert_eq!(asked(&query(0)), None);
        assert_eq!(asked(&format!("{:<600}", "JALIN-CODE? 1000")), None);
        let long = format!("/ip4/10.0.0.1/tcp/4001/p2p/{}", "1".repeat(200));
        let answer = answer_query(47, &vec![long; 8]);
        assert!(answer.len() <= QUERY_BYTES, "{}", answer.len());
        assert_eq!(answered(&answer, 47).map(|a| a.len()), Some(2));
        assert_eq!(answered(&answer, 48), None);
        for (address, local) in [
            ("192.168.1.20", true),
            ("10.1.2.3", true),
            ("127.0.0.1", true),
            ("169.254.3.4", true),
            ("fe80::1", true),
            ("fd00::1", true),
            ("203.0.113.5", false),
            ("2001:db8::1", false),
        ] {
            let ip: std::net::IpAddr = address.parse().expect("an address");
            assert_eq!(is_local(&ip), local, "{address}");
        }
    }

    #[test]
    fn a_code_is_spent_by_its_first_try_and_gone_when_its_hour_ends() {
        let codes = OpenCodes::default();
        let open = codes
            .open(TICKET.into(), Hash32([1; 32]), u64::MAX, 1_000)
            .expect("opens");
        let n = open.code.nameplate;
        assert!(codes.is_open(n, 1_000));
        assert!(codes.take(n, 1_000).is_some());
        assert!(codes.take(n, 1_000).is_none(), "one try");
        assert!(!codes.is_open(n, 1_000));
        assert!(codes.spent_for(n, 1_000).is_some());
        let later = codes
            .open(TICKET.into(), Hash32([1; 32]), u64::MAX, 1_000)
            .expect("opens");
        assert_eq!(later.expires_ms, 1_000 + CODE_LIFETIME_MAX_MS);
        assert!(codes
            .take(later.code.nameplate, 1_000 + CODE_LIFETIME_MAX_MS)
            .is_none());
        assert!(codes.admitted_now(1_000 + CODE_LIFETIME_MAX_MS).is_empty());
    }

    #[test]
    fn the_right_code_opens_the_ticket_and_a_wrong_one_opens_nothing() {
        let code = JoinCode::parse("47-kopi-sawah-merak").expect("a code");
        let (joiner, message) = Joiner::start(&code);
        let (reply, sealed) = answer(&code, &message, TICKET).expect("answers");
        assert_eq!(joiner.finish(&reply, &sealed), Ok(TICKET.to_string()));
        // One word wrong on the joiner's side: the ticket stays sealed.
        let guess = JoinCode::parse("47-kopi-sawah-mawar").expect("a code");
        let (joiner, message) = Joiner::start(&guess);
        let (reply, sealed) = answer(&code, &message, TICKET).expect("answers");
        assert_eq!(joiner.finish(&reply, &sealed), Err(CodeError::Wrong));
        // A listener holds the messages and the sealed ticket, not the key.
        assert!(!sealed.windows(TICKET.len()).any(|w| w == TICKET.as_bytes()));
        // A damaged message is refused, not a panic.
        assert_eq!(answer(&code, &[0u8; 5], TICKET), Err(CodeError::BadMessage));
        let (joiner, _) = Joiner::start(&code);
        assert!(joiner.finish(&[0u8; 33], &sealed).is_err());
        let (joiner, _) = Joiner::start(&code);
        assert_eq!(
            joiner.finish(&reply[..10], &sealed),
            Err(CodeError::BadMessage)
        );
    }
}
