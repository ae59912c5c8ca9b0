//! The OAI-PMH 2.0 provider over the union catalog (<https://www.openarchives.org/OAI/openarchivesprotocol.html>).
//!
//! - Identifiers: `oai:jalin:<owner library key, hex>/<record id, percent-encoded>`: the
//!   same record has the same identifier on every member's node, so an aggregator that
//!   harvests two of them can tell.
//! - Sets: one per member library, its key (hex) as `setSpec` and its name as `setName`.
//! - Datestamps: when this node last took in a change to the record (a replica's change
//!   arrives later than its owner made it, and a harvester asking `from` its last harvest
//!   must still get it). Seconds granularity.
//! - Deleted records stay as tombstones: `deletedRecord` is `persistent`.
//! - Lists run in key order (library, then record id) and a resumption token holds the
//!   last key given, with the request's own arguments: it stays valid across restarts and
//!   while the catalog changes, and gives no record twice nor skips one that was there when
//!   the harvest began. A record added behind the cursor, or changed there, is for the
//!   next (incremental) harvest: its datestamp is after this harvest's `responseDate`.

use crate::library::{decode, Library};
use crate::store::StoredRecord;
use jalin_protocol::dc;
use jalin_protocol::marc::marcxml;
use jalin_protocol::signing::LibraryId;
use jalin_protocol::xml::{escape_attr, escape_text};
use std::fmt::Write as _;

/// Records (or headers) in one list response.
pub const PAGE_SIZE: usize = 100;
/// The namespace part of every identifier.
const ID_PREFIX: &str = "oai:jalin:";
/// Formats served: prefix, schema, namespace.
const FORMATS: [(&str, &str, &str); 2] = [
    (
        "oai_dc",
        "http://www.openarchives.org/OAI/2.0/oai_dc.xsd",
        "http://www.openarchives.org/OAI/2.0/oai_dc/",
    ),
    (
        "marcxml",
        "http://www.loc.gov/standards/marcxml/schema/MARC21slim.xsd",
        "http://www.loc.gov/MARC21/slim",
    ),
];

/// An OAI-PMH error: its code and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OaiError {
    /// `badArgument`, `badVerb`, ...
    pub code: &'static str,
    /// For people.
    pub message: String,
}

fn error(code: &'static str, message: impl Into<String>) -> OaiError {
    OaiError {
        code,
        message: message.into(),
    }
}

/// The identifier of a record.
pub fn identifier(library: &LibraryId, record_id: &str) -> String {
    let mut out = format!("{ID_PREFIX}{}/", library.to_hex());
    for byte in record_id.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~!$'()*+,;=:@".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// The library and record id an identifier names.
pub fn parse_identifier(text: &str) -> Option<(LibraryId, String)> {
    let rest = text.strip_prefix(ID_PREFIX)?;
    let (library, encoded) = rest.split_once('/')?;
    let library = LibraryId::from_hex(library).ok()?;
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let record_id = String::from_utf8(out).ok()?;
    (!record_id.is_empty()).then_some((library, record_id))
}

/// `YYYY-MM-DDThh:mm:ssZ` for a time in ms since 1970.
pub fn datestamp(ms: u64) -> String {
    let seconds = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

/// A `from` or `until` argument: the first and last ms it covers, and whether it was a
/// day (`YYYY-MM-DD`) rather than a second.
fn parse_date(name: &str, text: &str) -> Result<(u64, u64, bool), OaiError> {
    let bad = || {
        error(
            "badArgument",
            format!(
                "{name}={text:?} is not a date this repository takes: YYYY-MM-DD or \
                 YYYY-MM-DDThh:mm:ssZ (UTC)"
            ),
        )
    };
    let day = time::macros::format_description!("[year]-[month]-[day]");
    let second =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    let (start, length, is_day) = if text.len() == 10 {
        let date = time::Date::parse(text, &day).map_err(|_| bad())?;
        (date.midnight().assume_utc(), 86_400_000, true)
    } else {
        let moment = time::PrimitiveDateTime::parse(text, &second).map_err(|_| bad())?;
        (moment.assume_utc(), 1000, false)
    };
    let ms = start.unix_timestamp().saturating_mul(1000);
    let first = u64::try_from(ms).unwrap_or(0);
    Ok((first, first.saturating_add(length - 1), is_day))
}

/// What a list request asks for, carried from page to page in the resumption token.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct ListState {
    /// metadataPrefix (unused for ListIdentifiers' headers, but checked).
    #[serde(rename = "p")]
    prefix: String,
    /// The set (a library's key, hex).
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    set: Option<String>,
    #[serde(rename = "f", default, skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    until: Option<String>,
    /// The last key given (hex).
    #[serde(rename = "k")]
    after: String,
    /// Records given before this page.
    #[serde(rename = "c")]
    cursor: u64,
}

/// Longest resumption token taken, in characters: ours are a few hundred (a set name,
/// two dates and a store key).
const TOKEN_CHARS_MAX: usize = 2048;

/// Highest cursor a token of ours can carry: records given before a page, far past any
/// catalog (a forged one near `u64::MAX` would wrap when the page is added).
const CURSOR_MAX: u64 = 1 << 48;

impl ListState {
    fn token(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        data_encoding::BASE64URL_NOPAD.encode(&json)
    }

    fn from_token(token: &str) -> Result<ListState, OaiError> {
        let bad = || {
            error(
                "badResumptionToken",
                format!(
                    "the resumptionToken {token:?} is not one this repository gave; start \
                     the list again without it"
                ),
            )
        };
        if token.len() > TOKEN_CHARS_MAX {
            return Err(bad());
        }
        let bytes = data_encoding::BASE64URL_NOPAD
            .decode(token.as_bytes())
            .map_err(|_| bad())?;
        let state: ListState = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if data_encoding::HEXLOWER
            .decode(state.after.as_bytes())
            .is_err()
            || !FORMATS.iter().any(|(p, _, _)| *p == state.prefix)
            || state.cursor > CURSOR_MAX
        {
            return Err(bad());
        }
        Ok(state)
    }
}

/// One request's arguments, checked.
struct Args<'a> {
    pairs: &'a [(String, String)],
}

impl<'a> Args<'a> {
    fn get(&self, name: &str) -> Option<&'a str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every argument must be one of `allowed`, each at most once, and `required` present.
    fn check(&self, allowed: &[&str], required: &[&str]) -> Result<(), OaiError> {
        for (i, (name, _)) in self.pairs.iter().enumerate() {
            if name == "verb" {
                continue;
            }
            if !allowed.contains(&name.as_str()) {
                return Err(error(
                    "badArgument",
                    format!("this verb takes no argument {name:?}"),
                ));
            }
            if self.pairs[..i].iter().any(|(k, _)| k == name) {
                return Err(error(
                    "badArgument",
                    format!("the argument {name:?} is given more than once"),
                ));
            }
        }
        if let Some(missing) = required.iter().find(|name| self.get(name).is_none()) {
            return Err(error(
                "badArgument",
                format!("this verb needs the argument {missing:?}"),
            ));
        }
        Ok(())
    }
}

/// The provider for one node.
pub struct Provider<'a> {
    library: &'a Library,
    base_url: String,
    /// (seq, ms) of every timed write, for datestamps.
    times: Vec<(u64, u64)>,
}

const HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<OAI-PMH xmlns=\"http://www.openarchives.org/OAI/2.0/\" \
xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
xsi:schemaLocation=\"http://www.openarchives.org/OAI/2.0/ http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd\">\n";

impl<'a> Provider<'a> {
    /// The provider of `library`, reached at `base_url`.
    pub fn new(library: &'a Library, base_url: String) -> Result<Self, crate::store::StoreError> {
        Ok(Provider {
            library,
            base_url,
            times: library.store().write_times()?,
        })
    }

    /// When a stored record last changed here, in ms.
    fn datestamp_ms(&self, record: &StoredRecord) -> u64 {
        match self
            .times
            .binary_search_by_key(&record.seq, |(seq, _)| *seq)
        {
            Ok(i) => self.times[i].1,
            Err(_) => record.updated_ms,
        }
    }

    /// Answers a request (its arguments, from the query or the form body) as an OAI-PMH
    /// document.
    pub fn respond(&self, pairs: &[(String, String)], now_ms: u64) -> String {
        let mut out = String::with_capacity(16 * 1024);
        out.push_str(HEAD);
        let _ = writeln!(out, "<responseDate>{}</responseDate>", datestamp(now_ms));
        let args = Args { pairs };
        let verbs: Vec<&str> = pairs
            .iter()
            .filter(|(k, _)| k == "verb")
            .map(|(_, v)| v.as_str())
            .collect();
        let result = match verbs.as_slice() {
            [] => Err(error(
                "badVerb",
                "no verb: give verb=Identify, ListRecords, ...",
            )),
            [_, _, ..] => Err(error("badVerb", "the verb is given more than once")),
            [verb] => self.verb(verb, &args),
        };
        match result {
            Ok(body) => {
                out.push_str("<request");
                for (name, value) in pairs {
                    out.push(' ');
                    out.push_str(name);
                    out.push_str("=\"");
                    escape_attr(&mut out, value);
                    out.push('"');
                }
                out.push('>');
                escape_text(&mut out, &self.base_url);
                out.push_str("</request>\n");
                out.push_str(&body);
            }
            Err(e) => {
                // The request's arguments are echoed only when they were well-formed.
                if matches!(e.code, "badVerb" | "badArgument") {
                    out.push_str("<request>");
                } else {
                    out.push_str("<request");
                    for (name, value) in pairs {
                        let _ = write!(out, " {name}=\"");
                        escape_attr(&mut out, value);
                        out.push('"');
                    }
                    out.push('>');
                }
                escape_text(&mut out, &self.base_url);
                out.push_str("</request>\n");
                let _ = write!(out, "<error code=\"{}\">", e.code);
                escape_text(&mut out, &e.message);
                out.push_str("</error>\n");
            }
        }
        out.push_str("</OAI-PMH>\n");
        out
    }

    fn verb(&self, verb: &str, args: &Args) -> Result<String, OaiError> {
        match verb {
            "Identify" => {
                args.check(&[], &[])?;
                self.identify()
            }
            "ListMetadataFormats" => {
                args.check(&["identifier"], &[])?;
                if let Some(id) = args.get("identifier") {
                    self.find(id)?;
                }
                let mut out = String::from("<ListMetadataFormats>\n");
                for (prefix, schema, namespace) in FORMATS {
                    let _ = writeln!(
                        out,
                        "<metadataFormat><metadataPrefix>{prefix}</metadataPrefix>\
                         <schema>{schema}</schema><metadataNamespace>{namespace}\
                         </metadataNamespace></metadataFormat>"
                    );
                }
                out.push_str("</ListMetadataFormats>\n");
                Ok(out)
            }
            "ListSets" => {
                args.check(&["resumptionToken"], &[])?;
                if let Some(token) = args.get("resumptionToken") {
                    return Err(error(
                        "badResumptionToken",
                        format!("ListSets is answered in one list; {token:?} is no token of it"),
                    ));
                }
                let mut out = String::from("<ListSets>\n");
                for (library, name) in self.sets() {
                    let _ = write!(out, "<set><setSpec>{}</setSpec><setName>", library.to_hex());
                    escape_text(&mut out, &name);
                    out.push_str("</setName></set>\n");
                }
                out.push_str("</ListSets>\n");
                Ok(out)
            }
            "GetRecord" => {
                args.check(
                    &["identifier", "metadataPrefix"],
                    &["identifier", "metadataPrefix"],
                )?;
                let prefix = args.get("metadataPrefix").unwrap_or_default();
                check_prefix(prefix)?;
                let (library, record) = self.find(args.get("identifier").unwrap_or_default())?;
                let mut out = String::from("<GetRecord>\n");
                self.write_record(&mut out, &library, &record, Some(prefix))?;
                out.push_str("</GetRecord>\n");
                Ok(out)
            }
            "ListIdentifiers" | "ListRecords" => {
                let state = match args.get("resumptionToken") {
                    Some(token) => {
                        if args.pairs.len() > 2 {
                            return Err(error(
                                "badArgument",
                                "resumptionToken is an exclusive argument: give it alone with the verb",
                            ));
                        }
                        args.check(&["resumptionToken"], &[])?;
                        ListState::from_token(token)?
                    }
                    None => {
                        args.check(
                            &["metadataPrefix", "from", "until", "set"],
                            &["metadataPrefix"],
                        )?;
                        let state = ListState {
                            prefix: args.get("metadataPrefix").unwrap_or_default().to_string(),
                            set: args.get("set").map(str::to_string),
                            from: args.get("from").map(str::to_string),
                            until: args.get("until").map(str::to_string),
                            after: String::new(),
                            cursor: 0,
                        };
                        check_prefix(&state.prefix)?;
                        state
                    }
                };
                self.list(verb == "ListRecords", &state)
            }
            other => Err(error(
                "badVerb",
                format!(
                    "{other:?} is not an OAI-PMH verb (Identify, ListMetadataFormats, ListSets, \
                     GetRecord, ListIdentifiers, ListRecords)"
                ),
            )),
        }
    }

    fn identify(&self) -> Result<String, OaiError> {
        let config = &self.library.data().config.library;
        let earliest = self
            .times
            .first()
            .filter(|(seq, _)| *seq <= 1)
            .map_or(0, |(_, ms)| *ms);
        let mut out = String::from("<Identify>\n<repositoryName>");
        escape_text(&mut out, &format!("{}: Jalin union catalog", config.name));
        out.push_str("</repositoryName>\n<baseURL>");
        escape_text(&mut out, &self.base_url);
        out.push_str("</baseURL>\n<protocolVersion>2.0</protocolVersion>\n<adminEmail>");
        // The protocol needs an address; without one configured, one that says so and
        // that no mail reaches (`.invalid` is reserved for that).
        let fallback = format!(
            "{}@no-email-configured.invalid",
            config
                .code
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
                .to_lowercase()
                .chars()
                .take(32)
                .collect::<String>()
        );
        let email = config.email.as_deref().unwrap_or(&fallback);
        escape_text(
            &mut out,
            if email.contains('@') {
                email
            } else {
                "jalin@no-email-configured.invalid"
            },
        );
        let _ = write!(
            out,
            "</adminEmail>\n<earliestDatestamp>{}</earliestDatestamp>\n\
             <deletedRecord>persistent</deletedRecord>\n\
             <granularity>YYYY-MM-DDThh:mm:ssZ</granularity>\n</Identify>\n",
            datestamp(earliest)
        );
        Ok(out)
    }

    /// The member libraries whose records this node holds, with their names.
    fn sets(&self) -> Vec<(LibraryId, String)> {
        let names = self.library.library_names();
        let mut held = self.library.store().namespaces().unwrap_or_default();
        let own = self.library.id();
        if !held.contains(&own) {
            held.push(own);
        }
        held.sort();
        held.into_iter()
            .map(|id| {
                let name = names
                    .get(&id)
                    .cloned()
                    .unwrap_or_else(|| format!("library {}", id.fingerprint()));
                (id, name)
            })
            .collect()
    }

    fn find(&self, id: &str) -> Result<(LibraryId, StoredRecord), OaiError> {
        let missing = || {
            error(
                "idDoesNotExist",
                format!("no record {id:?} in this repository"),
            )
        };
        let (library, record_id) = parse_identifier(id).ok_or_else(missing)?;
        let record = self
            .library
            .store()
            .get_of(&library, &record_id)
            .map_err(|e| error("badArgument", format!("reading {id:?}: {e}")))?
            .ok_or_else(missing)?;
        Ok((library, record))
    }

    fn write_header(&self, out: &mut String, library: &LibraryId, record: &StoredRecord) {
        out.push_str(if record.deleted {
            "<header status=\"deleted\"><identifier>"
        } else {
            "<header><identifier>"
        });
        escape_text(out, &identifier(library, &record.record_id));
        let _ = writeln!(
            out,
            "</identifier><datestamp>{}</datestamp><setSpec>{}</setSpec></header>",
            datestamp(self.datestamp_ms(record)),
            library.to_hex()
        );
    }

    /// A `<record>`, or only its header with `prefix` None.
    fn write_record(
        &self,
        out: &mut String,
        library: &LibraryId,
        record: &StoredRecord,
        prefix: Option<&str>,
    ) -> Result<(), OaiError> {
        let Some(prefix) = prefix else {
            self.write_header(out, library, record);
            return Ok(());
        };
        let metadata = if record.deleted {
            None
        } else {
            let decoded = decode(record).ok_or_else(|| {
                tracing::error!("stored record {} does not read back", record.record_id);
                error(
                    "idDoesNotExist",
                    format!("the record {} cannot be read here", record.record_id),
                )
            })?;
            Some(match prefix {
                "marcxml" => marcxml::record_to_xml(&decoded.marc, true),
                _ => dc::to_oai_dc(&decoded.marc),
            })
        };
        out.push_str("<record>");
        self.write_header(out, library, record);
        if let Some(metadata) = metadata {
            out.push_str("<metadata>\n");
            out.push_str(&metadata);
            out.push_str("</metadata>");
        }
        out.push_str("</record>\n");
        Ok(())
    }

    fn list(&self, records: bool, state: &ListState) -> Result<String, OaiError> {
        let from = state
            .from
            .as_deref()
            .map(|t| parse_date("from", t))
            .transpose()?;
        let until = state
            .until
            .as_deref()
            .map(|t| parse_date("until", t))
            .transpose()?;
        if let (Some(f), Some(u)) = (from, until) {
            if f.2 != u.2 {
                return Err(error(
                    "badArgument",
                    "from and until must have the same granularity (both days or both seconds)",
                ));
            }
            if f.0 > u.1 {
                return Err(error("badArgument", "from is later than until"));
            }
        }
        let set = match &state.set {
            Some(spec) => Some(LibraryId::from_hex(spec).map_err(|_| {
                error(
                    "noRecordsMatch",
                    format!("there is no set {spec:?} here; ListSets names them"),
                )
            })?),
            None => None,
        };
        let after = data_encoding::HEXLOWER
            .decode(state.after.as_bytes())
            .unwrap_or_default();
        let (lo, hi) = (from.map_or(0, |f| f.0), until.map_or(u64::MAX, |u| u.1));
        let times = &self.times;
        let page = self
            .library
            .store()
            .union_page(
                set.as_ref(),
                (!after.is_empty()).then_some(after.as_slice()),
                PAGE_SIZE + 1,
                |_, seq, updated_ms| {
                    let ms = match times.binary_search_by_key(&seq, |(s, _)| *s) {
                        Ok(i) => times[i].1,
                        Err(_) => updated_ms,
                    };
                    (lo..=hi).contains(&ms)
                },
            )
            .map_err(|e| error("badArgument", format!("reading the catalog: {e}")))?;
        if page.is_empty() {
            return Err(error(
                "noRecordsMatch",
                if state.cursor == 0 {
                    "no record matches these arguments".to_string()
                } else {
                    "the records left in this list have changed since; harvest again from the \
                     last datestamp you received"
                        .to_string()
                },
            ));
        }
        let more = page.len() > PAGE_SIZE;
        let name = if records {
            "ListRecords"
        } else {
            "ListIdentifiers"
        };
        let mut out = format!("<{name}>\n");
        let mut last_key = Vec::new();
        for (key, library, record) in page.iter().take(PAGE_SIZE) {
            self.write_record(
                &mut out,
                library,
                record,
                records.then_some(state.prefix.as_str()),
            )?;
            last_key.clone_from(key);
        }
        let given = page.len().min(PAGE_SIZE) as u64;
        if more {
            let next = ListState {
                after: data_encoding::HEXLOWER.encode(&last_key),
                cursor: state.cursor.saturating_add(given),
                ..state.clone()
            };
            let _ = writeln!(
                out,
                "<resumptionToken cursor=\"{}\">{}</resumptionToken>",
                state.cursor,
                next.token()
            );
        } else if state.cursor > 0 {
            let _ = writeln!(
                out,
                "<resumptionToken completeListSize=\"{}\" cursor=\"{}\"/>",
                state.cursor.saturating_add(given),
                state.cursor
            );
        }
        let _ = writeln!(out, "</{name}>");
        Ok(out)
    }
}

fn check_prefix(prefix: &str) -> Result<(), OaiError> {
    if FORMATS.iter().any(|(p, _, _)| *p == prefix) {
        Ok(())
    } else {
        Err(error(
            "cannotDisseminateFormat",
            format!("this repository gives oai_dc and marcxml, not {prefix:?}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_round_trip_any_record_id() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let library = LibraryId::from_key(&key.verifying_key());
        for id in ["00000001", "a b/c%d", "ä?#&", "oai:x:1"] {
            let text = identifier(&library, id);
            assert!(!text.contains([' ', '?', '#', '&']), "{text}");
            assert_eq!(parse_identifier(&text), Some((library, id.to_string())));
        }
        assert_eq!(parse_identifier("oai:jalin:zz/1"), None);
        assert_eq!(parse_identifier("oai:other:1"), None);
    }

    #[test]
    fn dates_of_either_granularity() {
        assert_eq!(datestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(datestamp(1_700_000_000_999), "2023-11-14T22:13:20Z");
        assert_eq!(
            parse_date("from", "2023-11-14T22:13:20Z"),
            Ok((1_700_000_000_000, 1_700_000_000_999, false))
        );
        assert_eq!(
            parse_date("from", "1970-01-02"),
            Ok((86_400_000, 2 * 86_400_000 - 1, true))
        );
        assert!(parse_date("from", "2023-13-01").is_err());
        assert!(parse_date("until", "2023-11-14T22:13:20").is_err());
    }

    #[test]
    fn tokens_round_trip_and_refuse_forgeries() {
        let state = ListState {
            prefix: "oai_dc".into(),
            set: None,
            from: Some("2020-01-01".into()),
            until: None,
            after: "72ab".into(),
            cursor: 100,
        };
        assert_eq!(ListState::from_token(&state.token()), Ok(state.clone()));
        let wrapping = ListState {
            cursor: u64::MAX,
            ..state
        };
        let long = "A".repeat(TOKEN_CHARS_MAX + 1);
        for bad in ["", "!!", "eyJwIjoibm8ifQ", &wrapping.token(), &long] {
            assert_eq!(
                ListState::from_token(bad).map_err(|e| e.code),
                Err("badResumptionToken")
            );
        }
    }
}
