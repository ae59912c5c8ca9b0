//! SRU (Search/Retrieve via URL) at `/sru`, versions 1.1, 1.2 and 2.0: explain,
//! searchRetrieve and scan over the union catalog, CQL with the `dc.*`, `bath.*` and
//! `cql.serverChoice` indexes, records as Dublin Core or MARCXML, and the standard
//! diagnostics. Responses take the shape of Zebra's (the reference SRU server): the same
//! elements in the same order, in the namespace of the version asked for.

use crate::library::{decode, Library};
use crate::search::{ScanError, Unsupported};
use jalin_protocol::cql;
use jalin_protocol::dc;
use jalin_protocol::marc::marcxml;
use jalin_protocol::signing::LibraryId;
use jalin_protocol::xml::escape_text;
use std::fmt::Write as _;

/// Records in a response when the request does not say.
pub const DEFAULT_RECORDS: usize = 10;
/// The most records in one response.
pub const MAX_RECORDS: usize = 100;
/// Terms in a scan response when the request does not say, and at most.
const DEFAULT_TERMS: usize = 20;
const MAX_TERMS: usize = 100;

const NS_1: &str = "http://www.loc.gov/zing/srw/";
const NS_2: &str = "http://docs.oasis-open.org/ns/search-ws/sruResponse";
const DIAG_NS_1: &str = "http://www.loc.gov/zing/srw/diagnostic/";
const DIAG_NS_2: &str = "http://docs.oasis-open.org/ns/search-ws/diagnostic";

/// A diagnostic: number, details, message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// `info:srw/diagnostic/1/N`.
    pub code: u32,
    /// What it is about.
    pub details: Option<String>,
    /// The standard message.
    pub message: String,
}

fn diagnostic(code: u32, details: Option<&str>, message: &str) -> Diagnostic {
    Diagnostic {
        code,
        details: details.map(str::to_string),
        message: message.to_string(),
    }
}

impl From<Unsupported> for Diagnostic {
    fn from(u: Unsupported) -> Self {
        diagnostic(u.code, Some(&u.details), u.message)
    }
}

/// The record schemas served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Schema {
    Dc,
    Marcxml,
}

impl Schema {
    fn from_name(name: &str) -> Option<Schema> {
        match name.to_lowercase().as_str() {
            "dc" | "info:srw/schema/1/dc-v1.1" | "info:srw/schema/1/dc-schema" => Some(Schema::Dc),
            "marcxml" | "marc21" | "marc21xml" | "info:srw/schema/1/marcxml-v1.1" => {
                Some(Schema::Marcxml)
            }
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Schema::Dc => "dc",
            Schema::Marcxml => "marcxml",
        }
    }
}

/// A version's dialect.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Version {
    One(&'static str),
    Two,
}

impl Version {
    fn ns(self) -> &'static str {
        match self {
            Version::One(_) => NS_1,
            Version::Two => NS_2,
        }
    }

    fn text(self) -> &'static str {
        match self {
            Version::One(v) => v,
            Version::Two => "2.0",
        }
    }
}

/// An SRU request's parameters.
struct Params<'a> {
    pairs: &'a [(String, String)],
}

impl<'a> Params<'a> {
    fn get(&self, name: &str) -> Option<&'a str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A positive number parameter, or diagnostic 6.
    fn number(&self, name: &str) -> Result<Option<usize>, Diagnostic> {
        match self.get(name) {
            None => Ok(None),
            Some(text) => text
                .trim()
                .parse::<usize>()
                .map(Some)
                .map_err(|_| diagnostic(6, Some(name), "Unsupported parameter value")),
        }
    }
}

/// Opens a response element in the version's namespace, with its version (1.x only).
fn open_response(out: &mut String, name: &str, version: Version) {
    let _ = write!(out, "<zs:{name} xmlns:zs=\"{}\">", version.ns());
    if let Version::One(v) = version {
        element(out, "version", v);
    }
}

fn system_error(e: &dyn std::fmt::Display) -> Diagnostic {
    diagnostic(1, Some(&e.to_string()), "General system error")
}

/// The SRU server of one node.
pub struct Server<'a> {
    library: &'a Library,
    base_url: String,
}

/// Writes an element holding escaped text.
fn element(out: &mut String, name: &str, text: &str) {
    let _ = write!(out, "<zs:{name}>");
    escape_text(out, text);
    let _ = write!(out, "</zs:{name}>");
}

fn write_diagnostics(out: &mut String, version: Version, diagnostics: &[Diagnostic]) {
    if diagnostics.is_empty() {
        return;
    }
    let ns = match version {
        Version::One(_) => DIAG_NS_1,
        Version::Two => DIAG_NS_2,
    };
    let _ = write!(out, "<zs:diagnostics xmlns:diag=\"{ns}\">");
    for d in diagnostics {
        let _ = write!(
            out,
            "<diag:diagnostic><diag:uri>info:srw/diagnostic/1/{}</diag:uri>",
            d.code
        );
        if let Some(details) = &d.details {
            out.push_str("<diag:details>");
            escape_text(out, details);
            out.push_str("</diag:details>");
        }
        out.push_str("<diag:message>");
        escape_text(out, &d.message);
        out.push_str("</diag:message></diag:diagnostic>");
    }
    out.push_str("</zs:diagnostics>");
}

impl<'a> Server<'a> {
    /// The server of `library`, reached at `base_url`.
    pub fn new(library: &'a Library, base_url: String) -> Self {
        Server { library, base_url }
    }

    /// Answers a request (its parameters, from the query or a form body).
    pub fn respond(&self, pairs: &[(String, String)]) -> String {
        let params = Params { pairs };
        let operation = params
            .get("operation")
            .map(str::to_string)
            .unwrap_or_else(|| {
                // SRU 2.0 names no operation: a query means searchRetrieve, a scanClause scan.
                if params.get("query").is_some() {
                    "searchRetrieve".to_string()
                } else if params.get("scanClause").is_some() {
                    "scan".to_string()
                } else {
                    "explain".to_string()
                }
            });
        let version = match params.get("version").unwrap_or("2.0") {
            "1.1" => Ok(Version::One("1.1")),
            "1.2" => Ok(Version::One("1.2")),
            "2.0" => Ok(Version::Two),
            // Unsupported: answered in the highest version, which the details name.
            _ => Err(diagnostic(5, Some("2.0"), "Unsupported version")),
        };
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        match (operation.as_str(), version) {
            ("searchRetrieve", Ok(version)) => self.search_retrieve(&mut out, version, &params),
            ("searchRetrieve", Err(d)) => self.failed(
                &mut out,
                "searchRetrieveResponse",
                Version::Two,
                &params,
                &[d],
            ),
            ("scan", Ok(version)) => self.scan(&mut out, version, &params),
            ("scan", Err(d)) => self.failed(&mut out, "scanResponse", Version::Two, &params, &[d]),
            ("explain", version) => {
                let (version, diagnostics) = match version {
                    Ok(v) => (v, Vec::new()),
                    Err(d) => (Version::Two, vec![d]),
                };
                self.explain(&mut out, version, &params, &diagnostics);
            }
            (other, version) => {
                let d = diagnostic(4, Some(other), "Unsupported operation");
                self.explain(&mut out, version.unwrap_or(Version::Two), &params, &[d]);
            }
        }
        out
    }

    /// A response with only its echo and diagnostics.
    fn failed(
        &self,
        out: &mut String,
        name: &str,
        version: Version,
        params: &Params,
        diagnostics: &[Diagnostic],
    ) {
        open_response(out, name, version);
        if name == "searchRetrieveResponse" {
            self.echo_search(out, version, params, None);
        }
        write_diagnostics(out, version, diagnostics);
        let _ = write!(out, "</zs:{name}>");
    }

    fn echo_search(
        &self,
        out: &mut String,
        version: Version,
        params: &Params,
        schema: Option<&str>,
    ) {
        out.push_str("<zs:echoedSearchRetrieveRequest>");
        element(
            out,
            "version",
            params.get("version").unwrap_or(version.text()),
        );
        if let Some(query) = params.get("query") {
            element(out, "query", query);
        }
        for name in ["startRecord", "maximumRecords"] {
            if let Some(value) = params.get(name) {
                element(out, name, value);
            }
        }
        match version {
            Version::One(_) => element(
                out,
                "recordPacking",
                params.get("recordPacking").unwrap_or("xml"),
            ),
            Version::Two => element(
                out,
                "recordXMLEscaping",
                params.get("recordXMLEscaping").unwrap_or("xml"),
            ),
        }
        if let Some(schema) = schema.or(params.get("recordSchema")) {
            element(out, "recordSchema", schema);
        }
        out.push_str("</zs:echoedSearchRetrieveRequest>");
    }

    fn search_retrieve(&self, out: &mut String, version: Version, params: &Params) {
        let name = "searchRetrieveResponse";
        let fail = |out: &mut String, d: Diagnostic| self.failed(out, name, version, params, &[d]);
        let Some(text) = params.get("query") else {
            return fail(
                out,
                diagnostic(7, Some("query"), "Mandatory parameter not supplied"),
            );
        };
        let (start, maximum) = match (
            params.number("startRecord"),
            params.number("maximumRecords"),
        ) {
            (Ok(s), Ok(m)) => (
                s.unwrap_or(1),
                m.unwrap_or(DEFAULT_RECORDS).min(MAX_RECORDS),
            ),
            (Err(d), _) | (_, Err(d)) => return fail(out, d),
        };
        if start == 0 {
            return fail(
                out,
                diagnostic(6, Some("startRecord"), "Unsupported parameter value"),
            );
        }
        // A page is collected by ranking every hit before it: no deeper than a search.
        if start > crate::search::RESULTS_DEPTH_MAX {
            return fail(
                out,
                diagnostic(
                    61,
                    Some(&crate::search::RESULTS_DEPTH_MAX.to_string()),
                    "First record position out of range",
                ),
            );
        }
        let packing = match version {
            Version::One(_) => params.get("recordPacking").unwrap_or("xml"),
            Version::Two => params.get("recordXMLEscaping").unwrap_or("xml"),
        };
        if !matches!(packing, "xml" | "string") {
            return fail(
                out,
                diagnostic(71, Some(packing), "Unsupported record packing"),
            );
        }
        let query = match cql::parse(text) {
            Ok(query) => query,
            Err(e) => {
                tracing::debug!(query = text, error = %e, "SRU query refused");
                // A limit's refusal says which (Zebra gives no details for syntax).
                let (code, message) = match e.kind {
                    cql::CqlErrorKind::Syntax => (10, "Query syntax error"),
                    cql::CqlErrorKind::TooLong => (12, "Too many characters in query"),
                    cql::CqlErrorKind::TooManyTerms => (38, "Too many boolean operators in query"),
                    cql::CqlErrorKind::TooDeep => (13, "Invalid or unsupported use of parentheses"),
                };
                let details = (e.kind != cql::CqlErrorKind::Syntax).then_some(e.reason.as_str());
                let refusal = diagnostic(code, details, message);
                return fail(out, refusal);
            }
        };
        if let Some(key) = query.sort.first() {
            return fail(out, diagnostic(80, Some(&key.index), "Sort not supported"));
        }
        let index = &self.library.index();
        let tantivy_query = match index.cql_query(&query.root) {
            Ok(q) => q,
            Err(u) => return fail(out, u.into()),
        };
        let (total, page) = match index.search_records(tantivy_query.as_ref(), start - 1, maximum) {
            Ok(found) => found,
            Err(e) => {
                tracing::error!("SRU search {text:?}: {e}");
                return fail(out, system_error(&e));
            }
        };
        open_response(out, name, version);
        let _ = write!(out, "<zs:numberOfRecords>{total}</zs:numberOfRecords>");
        let mut diagnostics = Vec::new();
        let schema_name = params.get("recordSchema");
        let unknown_schema = schema_name.filter(|name| Schema::from_name(name).is_none());
        if start > total && total > 0 {
            diagnostics.push(diagnostic(61, None, "First record position out of range"));
        } else if page.is_empty() {
            // No record to stand a surrogate diagnostic in for: say it once for the response.
            if let Some(name) = unknown_schema {
                diagnostics.push(diagnostic(66, Some(name), "Unknown schema for retrieval"));
            }
        } else {
            out.push_str("<zs:records>");
            let schema = match schema_name {
                None => Ok(Schema::Marcxml),
                Some(name) => Schema::from_name(name).ok_or(name),
            };
            for (i, (library, record_id)) in page.iter().enumerate() {
                let position = start + i;
                out.push_str("<zs:record>");
                match schema {
                    Ok(schema) => {
                        element(out, "recordSchema", schema.name());
                        self.write_packing(out, version, packing);
                        out.push_str("<zs:recordData>");
                        let xml = self.record_xml(library.as_deref(), record_id, schema);
                        if packing == "string" {
                            escape_text(out, &xml);
                        } else {
                            out.push_str(&xml);
                        }
                        out.push_str("</zs:recordData>");
                    }
                    // A surrogate diagnostic in place of each record, as Zebra does.
                    Err(name) => {
                        element(out, "recordSchema", "info:srw/schema/1/diagnostics-v1.1");
                        self.write_packing(out, version, "xml");
                        out.push_str("<zs:recordData><diagnostic xmlns=\"http://www.loc.gov/zing/srw/diagnostic/\"><uri>info:srw/diagnostic/1/66</uri><details>");
                        escape_text(out, name);
                        out.push_str("</details><message>Unknown schema for retrieval</message></diagnostic></zs:recordData>");
                    }
                }
                let _ = write!(
                    out,
                    "<zs:recordPosition>{position}</zs:recordPosition></zs:record>"
                );
            }
            out.push_str("</zs:records>");
            let next = start + page.len();
            if next <= total {
                let _ = write!(out, "<zs:nextRecordPosition>{next}</zs:nextRecordPosition>");
            }
        }
        self.echo_search(out, version, params, None);
        write_diagnostics(out, version, &diagnostics);
        if version == Version::Two {
            out.push_str("<zs:resultCountPrecision>exact</zs:resultCountPrecision>");
        }
        let _ = write!(out, "</zs:{name}>");
    }

    fn write_packing(&self, out: &mut String, version: Version, packing: &str) {
        match version {
            Version::One(_) => element(out, "recordPacking", packing),
            Version::Two => element(out, "recordXMLEscaping", packing),
        }
    }

    /// A record in a schema; an empty Dublin Core record if it cannot be read (which would
    /// be a bug: the index points only at stored records).
    fn record_xml(&self, library: Option<&str>, record_id: &str, schema: Schema) -> String {
        let store = &self.library.store();
        let stored = match library {
            None => store.get(record_id),
            Some(hex) => match LibraryId::from_hex(hex) {
                Ok(id) => store.get_of(&id, record_id),
                Err(_) => Ok(None),
            },
        };
        let record = stored.ok().flatten().as_ref().and_then(decode);
        let Some(record) = record else {
            tracing::error!("SRU: the index names record {record_id:?}, which does not read back");
            return "<srw_dc:dc xmlns:srw_dc=\"info:srw/schema/1/dc-schema\"/>".to_string();
        };
        match schema {
            Schema::Marcxml => marcxml::record_to_xml(&record.marc, true),
            Schema::Dc => {
                let mut out = String::from(
                    "<srw_dc:dc xmlns:srw_dc=\"info:srw/schema/1/dc-schema\" \
                     xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
                     xsi:schemaLocation=\"info:srw/schema/1/dc-schema http://www.loc.gov/standards/sru/resources/dc-schema.xsd\">\n",
                );
                for e in dc::elements(&record.marc) {
                    let _ = write!(
                        out,
                        "  <{} xmlns=\"http://purl.org/dc/elements/1.1/\">",
                        e.name
                    );
                    escape_text(&mut out, &e.value);
                    let _ = writeln!(out, "</{}>", e.name);
                }
                out.push_str("</srw_dc:dc>");
                out
            }
        }
    }

    fn scan(&self, out: &mut String, version: Version, params: &Params) {
        let name = "scanResponse";
        let fail = |out: &mut String, d: Diagnostic| self.failed(out, name, version, params, &[d]);
        let Some(clause) = params.get("scanClause") else {
            return fail(
                out,
                diagnostic(7, Some("scanClause"), "Mandatory parameter not supplied"),
            );
        };
        let count = match params.number("maximumTerms") {
            Ok(n) => n.unwrap_or(DEFAULT_TERMS).clamp(1, MAX_TERMS),
            Err(d) => return fail(out, d),
        };
        let (index, set, term) = match cql::parse(clause).map(|q| q.root) {
            Ok(cql::Node::Clause(c)) => (c.index, c.index_set, c.terms.join(" ")),
            Ok(cql::Node::Triple(_)) | Err(_) => {
                return fail(out, diagnostic(10, None, "Query syntax error"))
            }
        };
        let terms = match self
            .library
            .index()
            .scan(&index, set.as_deref(), &term, count)
        {
            Ok(terms) => terms,
            Err(ScanError::Unsupported(u)) => return fail(out, u.into()),
            Err(ScanError::Search(e)) => return fail(out, system_error(&e)),
        };
        open_response(out, name, version);
        if !terms.is_empty() {
            out.push_str("<zs:terms>");
            for (word, n) in terms {
                out.push_str("<zs:term>");
                element(out, "value", &word);
                let _ = write!(out, "<zs:numberOfRecords>{n}</zs:numberOfRecords>");
                element(out, "displayTerm", &word);
                out.push_str("</zs:term>");
            }
            out.push_str("</zs:terms>");
        }
        let _ = write!(out, "</zs:{name}>");
    }

    fn explain(
        &self,
        out: &mut String,
        version: Version,
        params: &Params,
        diagnostics: &[Diagnostic],
    ) {
        let name = "explainResponse";
        let _ = write!(out, "<zs:{name} xmlns:zs=\"{}\">", version.ns());
        element(out, "version", version.text());
        out.push_str("<zs:record>");
        element(out, "recordSchema", "http://explain.z3950.org/dtd/2.0/");
        self.write_packing(out, version, "xml");
        out.push_str("<zs:recordData>");
        out.push_str(&self.zeerex());
        out.push_str("</zs:recordData></zs:record>");
        out.push_str("<zs:echoedExplainRequest>");
        element(
            out,
            "version",
            params.get("version").unwrap_or(version.text()),
        );
        self.write_packing(out, version, "xml");
        out.push_str("</zs:echoedExplainRequest>");
        write_diagnostics(out, version, diagnostics);
        let _ = write!(out, "</zs:{name}>");
    }

    /// The ZeeRex description of this server: where, what, its indexes and schemas.
    fn zeerex(&self) -> String {
        let (host, port) = self
            .base_url
            .strip_prefix("http://")
            .and_then(|rest| rest.split('/').next())
            .map(|authority| match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.to_string()),
                None => (authority.to_string(), "80".to_string()),
            })
            .unwrap_or_else(|| ("localhost".into(), "80".into()));
        let mut out = String::from("<explain xmlns=\"http://explain.z3950.org/dtd/2.0/\">");
        out.push_str("<serverInfo protocol=\"SRU\" version=\"1.2 2.0\"><host>");
        escape_text(&mut out, &host);
        out.push_str("</host><port>");
        escape_text(&mut out, &port);
        out.push_str("</port><database>sru</database></serverInfo><databaseInfo><title lang=\"en\" primary=\"true\">");
        escape_text(
            &mut out,
            &format!(
                "{}: Jalin union catalog",
                self.library.data().config.library.name
            ),
        );
        out.push_str("</title></databaseInfo><indexInfo>");
        out.push_str("<set name=\"cql\" identifier=\"info:srw/cql-context-set/1/cql-v1.2\"/>");
        out.push_str("<set name=\"dc\" identifier=\"info:srw/cql-context-set/1/dc-v1.1\"/>");
        out.push_str("<set name=\"bath\" identifier=\"http://zing.z3950.org/cql/bath/2.0/\"/>");
        for (set, index, title) in [
            ("cql", "serverChoice", "any words"),
            ("dc", "title", "title"),
            ("dc", "creator", "author"),
            ("dc", "subject", "subject"),
            ("dc", "publisher", "publisher"),
            ("dc", "date", "year of publication"),
            ("dc", "language", "language (MARC code)"),
            ("dc", "identifier", "ISBN or ISSN"),
            ("bath", "isbn", "ISBN"),
            ("bath", "issn", "ISSN"),
            ("bath", "name", "author"),
            ("bath", "subject", "subject"),
        ] {
            let _ = write!(
                out,
                "<index><title>{title}</title><map><name set=\"{set}\">{index}</name></map></index>"
            );
        }
        out.push_str("</indexInfo><schemaInfo>");
        out.push_str("<schema identifier=\"info:srw/schema/1/marcxml-v1.1\" name=\"marcxml\" sort=\"false\" retrieve=\"true\"><title>MARCXML</title></schema>");
        out.push_str("<schema identifier=\"info:srw/schema/1/dc-v1.1\" name=\"dc\" sort=\"false\" retrieve=\"true\"><title>Dublin Core</title></schema>");
        let _ = write!(
            out,
            "</schemaInfo><configInfo><default type=\"numberOfRecords\">{DEFAULT_RECORDS}</default>\
             <setting type=\"maximumRecords\">{MAX_RECORDS}</setting></configInfo></explain>"
        );
        out
    }
}
