//! ISO 18626 at the edge: a transaction written as the standard's XML messages (one per
//! step, each valid against the 2021-2 schema), and messages from a system outside
//! Jalin read (the 2021 layout and the 2017 one deployed systems still send) and
//! answered with the standard's confirmations.
//!
//! Agencies are named by `agencyIdType` `JALIN` and the library's key (hex) as
//! `agencyIdValue`; the transaction's id is both the requesting and the supplying
//! agency's request id. No patron information is written: Jalin never has it.

use super::{Action, IllMessage, Party, Status, Transaction};
use crate::consortium::document::Signed;
use crate::xml::escape_text;
use quick_xml::events::Event;
use quick_xml::Reader;
use std::collections::BTreeSet;

/// The namespace of ISO 18626.
pub const NAMESPACE: &str = "http://illtransactions.org/2013/iso18626";
/// The schema version written.
pub const VERSION: &str = "2021-2";
/// The agency id type Jalin writes.
pub const AGENCY_TYPE: &str = "JALIN";

/// `ms` since 1970 as `xs:dateTime` (UTC, milliseconds).
pub fn date_time(ms: u64) -> String {
    let day = super::Day::of_ms(ms);
    let (year, month, d) = day.civil();
    let in_day = ms % 86_400_000;
    format!(
        "{year:04}-{month:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

fn element(out: &mut String, name: &str, text: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    escape_text(out, text);
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn agency(out: &mut String, name: &str, key: &str) {
    typed_agency(out, name, AGENCY_TYPE, key);
}

/// An agency id of any type (`ISIL`, `JALIN`, ...): an empty type is written as Jalin's.
fn typed_agency(out: &mut String, name: &str, kind: &str, value: &str) {
    out.push_str(&format!("<{name}>"));
    element(
        out,
        "agencyIdType",
        if kind.is_empty() { AGENCY_TYPE } else { kind },
    );
    element(out, "agencyIdValue", value);
    out.push_str(&format!("</{name}>"));
}

fn open(out: &mut String) {
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<ISO18626Message xmlns=\"{NAMESPACE}\" xmlns:ill=\"{NAMESPACE}\" ill:version=\"{VERSION}\">"
    ));
}

/// The transaction's messages as ISO 18626 documents, in the fold's order, each with a
/// file name (`01-request.xml`, `02-RequestReceived.xml`, ...). Messages the fold
/// ignored are left out: they never happened for either side.
pub fn export(messages: &[Signed<IllMessage>]) -> Result<Vec<(String, String)>, super::IllError> {
    let tx = Transaction::fold(messages)?;
    let borrower = tx.borrower.to_hex();
    let lender = tx.request.lender.to_hex();
    let id = tx.id.to_hex();
    let mut out = Vec::new();
    let mut applied = BTreeSet::new();
    for (n, entry) in tx.history.iter().enumerate() {
        if entry.ignored.is_some() {
            continue;
        }
        applied.insert(entry.id);
        // The state just after this message: a fold of the messages up to it.
        let upto: Vec<Signed<IllMessage>> = messages
            .iter()
            .filter(|m| applied.contains(&m.id()))
            .cloned()
            .collect();
        let now = Transaction::fold(&upto)?;
        let mut xml = String::new();
        open(&mut xml);
        let header = |xml: &mut String, kind: &str| {
            xml.push_str(&format!("<{kind}><header>"));
            agency(xml, "supplyingAgencyId", &lender);
            agency(xml, "requestingAgencyId", &borrower);
            element(xml, "timestamp", &date_time(entry.at_ms));
            element(xml, "requestingAgencyRequestId", &id);
        };
        let name = match &entry.action {
            None => {
                let r = &tx.request;
                xml.push_str("<request><header>");
                agency(&mut xml, "supplyingAgencyId", &lender);
                agency(&mut xml, "requestingAgencyId", &borrower);
                element(&mut xml, "timestamp", &date_time(entry.at_ms));
                element(&mut xml, "requestingAgencyRequestId", &id);
                xml.push_str("</header><bibliographicInfo>");
                element(&mut xml, "supplierUniqueRecordId", &r.record_id);
                element(&mut xml, "title", &r.title);
                if !r.author.is_empty() {
                    element(&mut xml, "author", &r.author);
                }
                xml.push_str("</bibliographicInfo><serviceInfo><requestType>New</requestType><serviceType>Loan</serviceType>");
                if let Some(day) = r.need_before {
                    element(&mut xml, "needBeforeDate", &date_time(day.start_ms()));
                }
                let mut note = format!("items: {}", r.items);
                if !r.note.is_empty() {
                    note.push_str("; ");
                    note.push_str(&r.note);
                }
                element(&mut xml, "note", &note);
                xml.push_str("</serviceInfo></request>");
                "request".to_string()
            }
            Some(action) if entry.party == Party::Lender => {
                header(&mut xml, "supplyingAgencyMessage");
                element(&mut xml, "supplyingAgencyRequestId", &id);
                xml.push_str("</header><messageInfo>");
                let (reason, answer) = match action {
                    Action::RenewAnswer { due } => ("RenewResponse", Some(due.is_some())),
                    Action::CancelAnswer { accepted } => ("CancelResponse", Some(*accepted)),
                    Action::Notification { .. } => ("Notification", None),
                    Action::RequestReceived
                    | Action::ExpectToSupply
                    | Action::WillSupply { .. }
                    | Action::Unfilled { .. }
                        if now.times.answered_ms == Some(entry.at_ms) && n == 1 =>
                    {
                        ("RequestResponse", None)
                    }
                    _ => ("StatusChange", None),
                };
                element(&mut xml, "reasonForMessage", reason);
                if let Some(yes) = answer {
                    element(&mut xml, "answerYesNo", if yes { "Y" } else { "N" });
                }
                match action {
                    Action::WillSupply {
                        conditions: Some(c),
                    } => element(&mut xml, "note", &format!("loan conditions: {c}")),
                    Action::Notification { note } => element(&mut xml, "note", note),
                    Action::Unfilled { reason } => {
                        element(&mut xml, "note", reason);
                        element(&mut xml, "reasonUnfilled", reason);
                    }
                    _ => {}
                }
                xml.push_str("</messageInfo><statusInfo>");
                let status = match action {
                    Action::Overdue => "Overdue",
                    Action::Recalled => "Recalled",
                    _ => iso_status(now.status),
                };
                element(&mut xml, "status", status);
                if let Some(due) = now.due {
                    element(&mut xml, "dueDate", &date_time(due.start_ms()));
                }
                element(&mut xml, "lastChange", &date_time(entry.at_ms));
                xml.push_str("</statusInfo>");
                if let Action::Loaned { .. } = action {
                    xml.push_str("<deliveryInfo>");
                    element(&mut xml, "dateSent", &date_time(entry.at_ms));
                    element(&mut xml, "itemId", &tx.request.record_id);
                    xml.push_str("</deliveryInfo>");
                }
                xml.push_str("</supplyingAgencyMessage>");
                action.iso_name().to_string()
            }
            Some(action) => {
                header(&mut xml, "requestingAgencyMessage");
                element(&mut xml, "supplyingAgencyRequestId", &id);
                xml.push_str("</header>");
                let (iso, note) = match action {
                    Action::ConditionsAnswer { accepted } => (
                        "Notification",
                        Some(if *accepted {
                            "loan conditions accepted".to_string()
                        } else {
                            "loan conditions declined".to_string()
                        }),
                    ),
                    Action::Cancel { reason } => ("Cancel", Some(reason.clone())),
                    Action::Notification { note } => ("Notification", Some(note.clone())),
                    other => (other.iso_name(), None),
                };
                element(&mut xml, "action", iso);
                if let Some(note) = note.filter(|n| !n.is_empty()) {
                    element(&mut xml, "note", &note);
                }
                xml.push_str("</requestingAgencyMessage>");
                action.iso_name().to_string()
            }
        };
        xml.push_str("</ISO18626Message>\n");
        out.push((format!("{:02}-{name}.xml", out.len() + 1), xml));
    }
    Ok(out)
}

/// The standard's status for a transaction's state (`Requested`, before any answer, has
/// none: it is written as `RequestReceived` only once the lender says so).
pub fn iso_status(status: Status) -> &'static str {
    match status {
        Status::Requested | Status::RequestReceived => "RequestReceived",
        Status::ExpectToSupply => "ExpectToSupply",
        Status::WillSupply => "WillSupply",
        Status::Loaned | Status::Received | Status::ShippedReturn | Status::Lost => "Loaned",
        Status::LoanCompleted => "LoanCompleted",
        Status::Unfilled => "Unfilled",
        Status::Cancelled => "Cancelled",
    }
}

/// The kinds of ISO 18626 message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `request`.
    Request,
    /// `supplyingAgencyMessage`.
    SupplyingAgencyMessage,
    /// `requestingAgencyMessage`.
    RequestingAgencyMessage,
}

impl Kind {
    fn confirmation(self) -> &'static str {
        match self {
            Kind::Request => "requestConfirmation",
            Kind::SupplyingAgencyMessage => "supplyingAgencyMessageConfirmation",
            Kind::RequestingAgencyMessage => "requestingAgencyMessageConfirmation",
        }
    }
}

/// The standard's error types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorType {
    /// An action the receiver does not support.
    UnsupportedActionType,
    /// A reason for message the receiver does not support.
    UnsupportedReasonForMessageType,
    /// An element the receiver does not know, or one it needs missing.
    UnrecognisedDataElement,
    /// A value the receiver does not know (an agency, a request id, a status).
    UnrecognisedDataValue,
    /// Not well-formed, or not an ISO 18626 message.
    BadlyFormedMessage,
}

impl ErrorType {
    /// Its name in the schema.
    pub fn name(self) -> &'static str {
        match self {
            ErrorType::UnsupportedActionType => "UnsupportedActionType",
            ErrorType::UnsupportedReasonForMessageType => "UnsupportedReasonForMessageType",
            ErrorType::UnrecognisedDataElement => "UnrecognisedDataElement",
            ErrorType::UnrecognisedDataValue => "UnrecognisedDataValue",
            ErrorType::BadlyFormedMessage => "BadlyFormedMessage",
        }
    }
}

/// Why an incoming message cannot be taken: the error type and the value at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {value}", kind.name())]
pub struct IsoError {
    /// The standard's error type.
    pub kind: ErrorType,
    /// What is wrong, in words.
    pub value: String,
}

fn iso_error(kind: ErrorType, value: impl Into<String>) -> IsoError {
    IsoError {
        kind,
        value: value.into(),
    }
}

/// An incoming ISO 18626 message, as far as Jalin reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Incoming {
    /// Which kind (`None` until read).
    pub kind: Option<Kind>,
    /// The supplying agency's id value.
    pub supplying_agency: String,
    /// Its id type (`ISIL`, ...), as written.
    pub supplying_agency_type: String,
    /// The requesting agency's id value.
    pub requesting_agency: String,
    /// Its id type, as written.
    pub requesting_agency_type: String,
    /// The header's timestamp, as written.
    pub timestamp: String,
    /// The requesting agency's request id.
    pub requesting_request_id: String,
    /// The supplying agency's request id, if given.
    pub supplying_request_id: String,
    /// A request's title.
    pub title: String,
    /// A request's author.
    pub author: String,
    /// A request's record id at the supplier.
    pub supplier_record_id: String,
    /// A request's service type (`Loan`, `Copy`, `CopyOrLoan`).
    pub service_type: String,
    /// A request's type (`New`, `Retry`, `Reminder`).
    pub request_type: String,
    /// A supplying agency message's status.
    pub status: String,
    /// Its reason for message.
    pub reason_for_message: String,
    /// A requesting agency message's action.
    pub action: String,
    /// A note, if any.
    pub note: String,
    /// The version attribute.
    pub version: String,
    /// Whether the header has a `requestingAgencyRequestId` element (even empty).
    pub has_request_id: bool,
    /// A request's `requestingAgencyPreviousRequestId` (a retry names it).
    pub previous_request_id: String,
}

/// Elements deeper than this are refused (the schema's deepest is 5).
const DEPTH_MAX: usize = 16;
/// Bytes of an incoming message, at most.
pub const INCOMING_BYTES_MAX: usize = 256 * 1024;

const ACTIONS: [&str; 9] = [
    "StatusRequest",
    "Received",
    "Cancel",
    "Renew",
    "HoldReturn",
    "ShippedReturn",
    "ShippedForward",
    "Notification",
    "Lost",
];
const STATUSES: [&str; 14] = [
    "RequestReceived",
    "ExpectToSupply",
    "WillSupply",
    "Loaned",
    "Overdue",
    "Recalled",
    "RetryPossible",
    "Unfilled",
    "HoldReturn",
    "ReleaseHoldReturn",
    "CopyCompleted",
    "LoanCompleted",
    "CompletedWithoutReturn",
    "Cancelled",
];
const REASONS: [&str; 6] = [
    "RequestResponse",
    "StatusRequestResponse",
    "RenewResponse",
    "CancelResponse",
    "StatusChange",
    "Notification",
];

/// Reads an ISO 18626 message: the 2021 layout or the 2017 (v1.2) one. What it needs
/// and does not find, or finds with a value the standard does not have, is an
/// [`IsoError`] of the standard's type.
pub fn read(bytes: &[u8]) -> Result<Incoming, IsoError> {
    if bytes.len() > INCOMING_BYTES_MAX {
        return Err(iso_error(
            ErrorType::BadlyFormedMessage,
            format!(
                "{} bytes, over the limit of {INCOMING_BYTES_MAX}",
                bytes.len()
            ),
        ));
    }
    let mut reader = Reader::from_reader(bytes);
    reader.config_mut().trim_text(true);
    let mut path: Vec<String> = Vec::new();
    let mut message = Incoming::default();
    let mut buf = Vec::new();
    let mut root_seen = false;
    loop {
        let event = reader.read_event_into(&mut buf).map_err(|e| {
            iso_error(
                ErrorType::BadlyFormedMessage,
                format!(
                    "not well-formed XML at byte {}: {e}",
                    reader.buffer_position()
                ),
            )
        })?;
        let empty = matches!(event, Event::Empty(_));
        match event {
            Event::Start(start) | Event::Empty(start) => {
                let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                if name == "requestingAgencyRequestId" && path.last().is_some_and(|p| p == "header")
                {
                    message.has_request_id = true;
                }
                if path.is_empty() {
                    if name != "ISO18626Message" || root_seen {
                        return Err(iso_error(
                            ErrorType::BadlyFormedMessage,
                            format!("the root element is {name}, not ISO18626Message"),
                        ));
                    }
                    root_seen = true;
                    for attribute in start.attributes().flatten() {
                        if attribute.key.local_name().as_ref() == b"version" {
                            message.version =
                                String::from_utf8_lossy(&attribute.value).into_owned();
                        }
                    }
                }
                if path.len() == 1 {
                    message.kind = Some(match name.as_str() {
                        "request" => Kind::Request,
                        "supplyingAgencyMessage" => Kind::SupplyingAgencyMessage,
                        "requestingAgencyMessage" => Kind::RequestingAgencyMessage,
                        other => {
                            return Err(iso_error(
                                ErrorType::UnrecognisedDataElement,
                                format!("{other}: a gateway takes request, supplyingAgencyMessage and requestingAgencyMessage"),
                            ))
                        }
                    });
                }
                path.push(name);
                if path.len() > DEPTH_MAX {
                    return Err(iso_error(
                        ErrorType::BadlyFormedMessage,
                        format!("elements nested deeper than {DEPTH_MAX}"),
                    ));
                }
                if empty {
                    path.pop();
                }
            }
            Event::End(_) => {
                path.pop();
            }
            Event::Text(text) => {
                let value = text
                    .unescape()
                    .map_err(|e| iso_error(ErrorType::BadlyFormedMessage, e.to_string()))?
                    .trim()
                    .to_string();
                let tail: Vec<&str> = path.iter().rev().take(3).map(String::as_str).collect();
                let slot = match tail.as_slice() {
                    ["agencyIdValue", "supplyingAgencyId", "header", ..] => {
                        &mut message.supplying_agency
                    }
                    ["agencyIdValue", "requestingAgencyId", "header", ..] => {
                        &mut message.requesting_agency
                    }
                    ["agencyIdType", "supplyingAgencyId", "header", ..] => {
                        &mut message.supplying_agency_type
                    }
                    ["agencyIdType", "requestingAgencyId", "header", ..] => {
                        &mut message.requesting_agency_type
                    }
                    ["timestamp", "header", ..] => &mut message.timestamp,
                    ["requestingAgencyRequestId", "header", ..] => {
                        &mut message.requesting_request_id
                    }
                    ["supplyingAgencyRequestId", "header", ..] => &mut message.supplying_request_id,
                    ["title", "bibliographicInfo", ..] => &mut message.title,
                    ["author", "bibliographicInfo", ..] => &mut message.author,
                    ["supplierUniqueRecordId", "bibliographicInfo", ..] => {
                        &mut message.supplier_record_id
                    }
                    ["serviceType", "serviceInfo", ..] => &mut message.service_type,
                    ["requestType", "serviceInfo", ..] => &mut message.request_type,
                    ["requestingAgencyPreviousRequestId", "serviceInfo", ..] => {
                        &mut message.previous_request_id
                    }
                    ["status", "statusInfo", ..] => &mut message.status,
                    ["reasonForMessage", "messageInfo", ..] => &mut message.reason_for_message,
                    ["action", "requestingAgencyMessage", ..] => &mut message.action,
                    ["note", ..] => &mut message.note,
                    _ => {
                        buf.clear();
                        continue;
                    }
                };
                *slot = value.chars().take(super::TEXT_MAX).collect();
            }
            Event::Eof => {
                if let Some(open) = path.last() {
                    return Err(iso_error(
                        ErrorType::BadlyFormedMessage,
                        format!("the document ends inside <{open}>: cut short"),
                    ));
                }
                break;
            }
            _ => {}
        }
        buf.clear();
    }
    let Some(kind) = message.kind else {
        return Err(iso_error(
            ErrorType::BadlyFormedMessage,
            "no request, supplyingAgencyMessage or requestingAgencyMessage",
        ));
    };
    let missing = |what: &str| {
        iso_error(
            ErrorType::UnrecognisedDataElement,
            format!("{what} is missing"),
        )
    };
    if !message.has_request_id {
        return Err(missing("header/requestingAgencyRequestId"));
    }
    if message.requesting_request_id.is_empty() {
        return Err(iso_error(
            ErrorType::UnrecognisedDataValue,
            "requestingAgencyRequestId: cannot be empty",
        ));
    }
    if message.requesting_agency.is_empty() {
        return Err(missing("header/requestingAgencyId"));
    }
    if message.timestamp.is_empty() {
        return Err(missing("header/timestamp"));
    }
    match kind {
        Kind::Request => {
            if !["", "New", "Retry", "Reminder"].contains(&message.request_type.as_str()) {
                return Err(iso_error(
                    ErrorType::UnrecognisedDataValue,
                    format!("requestType {}", message.request_type),
                ));
            }
            if !message.service_type.is_empty()
                && !["Loan", "Copy", "CopyOrLoan"].contains(&message.service_type.as_str())
            {
                return Err(iso_error(
                    ErrorType::UnrecognisedDataValue,
                    format!("serviceType {}", message.service_type),
                ));
            }
        }
        Kind::SupplyingAgencyMessage => {
            if message.supplying_agency.is_empty() {
                return Err(missing("header/supplyingAgencyId"));
            }
            if !REASONS.contains(&message.reason_for_message.as_str()) {
                return Err(iso_error(
                    ErrorType::UnsupportedReasonForMessageType,
                    format!("reasonForMessage {:?}", message.reason_for_message),
                ));
            }
            if !STATUSES.contains(&message.status.as_str()) {
                return Err(iso_error(
                    ErrorType::UnrecognisedDataValue,
                    format!("status {:?}", message.status),
                ));
            }
        }
        Kind::RequestingAgencyMessage => {
            if message.supplying_agency.is_empty() {
                return Err(missing("header/supplyingAgencyId"));
            }
            if !ACTIONS.contains(&message.action.as_str()) {
                return Err(iso_error(
                    ErrorType::UnsupportedActionType,
                    format!("action {:?}", message.action),
                ));
            }
        }
    }
    Ok(message)
}

/// The confirmation of a message (`kind`, `None` when it could not even be told), OK or
/// with the error: a document valid against the 2021-2 schema.
pub fn confirmation(
    kind: Option<Kind>,
    incoming: Option<&Incoming>,
    error: Option<&IsoError>,
    now_ms: u64,
) -> String {
    let mut xml = String::new();
    open(&mut xml);
    let kind = kind.unwrap_or(Kind::Request);
    xml.push_str(&format!("<{}><confirmationHeader>", kind.confirmation()));
    if let Some(m) = incoming {
        if !m.supplying_agency.is_empty() {
            typed_agency(
                &mut xml,
                "supplyingAgencyId",
                &m.supplying_agency_type,
                &m.supplying_agency,
            );
        }
        if !m.requesting_agency.is_empty() {
            typed_agency(
                &mut xml,
                "requestingAgencyId",
                &m.requesting_agency_type,
                &m.requesting_agency,
            );
        }
    }
    element(&mut xml, "timestamp", &date_time(now_ms));
    if let Some(m) = incoming.filter(|m| !m.requesting_request_id.is_empty()) {
        element(
            &mut xml,
            "requestingAgencyRequestId",
            &m.requesting_request_id,
        );
    }
    element(&mut xml, "timestampReceived", &date_time(now_ms));
    element(
        &mut xml,
        "messageStatus",
        if error.is_some() { "ERROR" } else { "OK" },
    );
    xml.push_str("</confirmationHeader>");
    if kind == Kind::SupplyingAgencyMessage {
        if let Some(reason) = incoming
            .map(|m| m.reason_for_message.as_str())
            .filter(|r| REASONS.contains(r))
        {
            element(&mut xml, "reasonForMessage", reason);
        }
    }
    if kind == Kind::RequestingAgencyMessage {
        if let Some(action) = incoming
            .map(|m| m.action.as_str())
            .filter(|a| ACTIONS.contains(a))
        {
            element(&mut xml, "action", action);
        }
    }
    if let Some(error) = error {
        xml.push_str("<errorData>");
        element(&mut xml, "errorType", error.kind.name());
        element(&mut xml, "errorValue", &error.value);
        xml.push_str("</errorData>");
    }
    xml.push_str(&format!("</{}></ISO18626Message>\n", kind.confirmation()));
    xml
}

/// A supplying agency's message to a system outside Jalin: the gateway's answers to the
/// requests it took. Agencies are `(type, value)`.
#[derive(Clone, Debug, Default)]
pub struct SupplierMessage<'a> {
    /// This library, as that system knows it.
    pub supplying_agency: (&'a str, &'a str),
    /// The requesting agency.
    pub requesting_agency: (&'a str, &'a str),
    /// Its request id.
    pub requesting_request_id: &'a str,
    /// `RequestResponse`, `RenewResponse`, `CancelResponse`, `StatusChange` or
    /// `Notification`.
    pub reason: &'a str,
    /// The yes or no of a renew or cancel response.
    pub answer: Option<bool>,
    /// A note (loan conditions, a notification).
    pub note: &'a str,
    /// Why it cannot be supplied (with status `Unfilled`).
    pub reason_unfilled: &'a str,
    /// The status after this message (one of the standard's).
    pub status: &'a str,
    /// The due date (ms since 1970), once lent.
    pub due_ms: Option<u64>,
    /// With status `Loaned`: the item sent (its record id), if known.
    pub item_id: Option<&'a str>,
    /// When.
    pub now_ms: u64,
}

/// Writes a supplying agency message: a document valid against the 2021-2 schema.
pub fn supplying_agency_message(m: &SupplierMessage) -> String {
    let mut xml = String::new();
    open(&mut xml);
    xml.push_str("<supplyingAgencyMessage><header>");
    typed_agency(
        &mut xml,
        "supplyingAgencyId",
        m.supplying_agency.0,
        m.supplying_agency.1,
    );
    typed_agency(
        &mut xml,
        "requestingAgencyId",
        m.requesting_agency.0,
        m.requesting_agency.1,
    );
    element(&mut xml, "timestamp", &date_time(m.now_ms));
    element(
        &mut xml,
        "requestingAgencyRequestId",
        m.requesting_request_id,
    );
    xml.push_str("</header><messageInfo>");
    element(&mut xml, "reasonForMessage", m.reason);
    if let Some(yes) = m.answer {
        element(&mut xml, "answerYesNo", if yes { "Y" } else { "N" });
    }
    if !m.note.is_empty() {
        element(&mut xml, "note", m.note);
    }
    if !m.reason_unfilled.is_empty() {
        element(&mut xml, "reasonUnfilled", m.reason_unfilled);
    }
    xml.push_str("</messageInfo><statusInfo>");
    element(&mut xml, "status", m.status);
    if let Some(due) = m.due_ms {
        element(&mut xml, "dueDate", &date_time(due));
    }
    element(&mut xml, "lastChange", &date_time(m.now_ms));
    xml.push_str("</statusInfo>");
    if m.status == "Loaned" {
        xml.push_str("<deliveryInfo>");
        element(&mut xml, "dateSent", &date_time(m.now_ms));
        if let Some(item) = m.item_id.filter(|i| !i.is_empty()) {
            element(&mut xml, "itemId", item);
        }
        xml.push_str("</deliveryInfo>");
    }
    xml.push_str("</supplyingAgencyMessage></ISO18626Message>\n");
    xml
}

/// What a system outside Jalin answered to a message this library sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confirmed {
    /// `messageStatus` was `OK`.
    pub ok: bool,
    /// With `ERROR`: the `errorType` and `errorValue` given (maybe empty).
    pub error: Option<(String, String)>,
}

/// Reads a confirmation (`requestConfirmation`, `supplyingAgencyMessageConfirmation`,
/// `requestingAgencyMessageConfirmation`), bounded as [`read`] is. A document without
/// a `messageStatus` of `OK` or `ERROR` is not a confirmation: the error says why.
pub fn read_confirmation(bytes: &[u8]) -> Result<Confirmed, String> {
    if bytes.len() > INCOMING_BYTES_MAX {
        return Err(format!(
            "{} bytes, over the limit of {INCOMING_BYTES_MAX}",
            bytes.len()
        ));
    }
    let mut reader = Reader::from_reader(bytes);
    reader.config_mut().trim_text(true);
    let mut path: Vec<String> = Vec::new();
    let (mut status, mut error_type, mut error_value) = (None, None, None);
    let mut root = None;
    let mut buf = Vec::new();
    loop {
        let event = reader.read_event_into(&mut buf).map_err(|e| {
            format!(
                "not well-formed XML at byte {}: {e}",
                reader.buffer_position()
            )
        })?;
        let empty = matches!(event, Event::Empty(_));
        match event {
            Event::Start(start) | Event::Empty(start) if root.is_none() => {
                root = Some(String::from_utf8_lossy(start.local_name().as_ref()).into_owned());
                if !empty {
                    path.extend(root.clone());
                }
            }
            Event::Start(start) => {
                path.push(String::from_utf8_lossy(start.local_name().as_ref()).into_owned());
                if path.len() > DEPTH_MAX {
                    return Err(format!("elements nested deeper than {DEPTH_MAX}"));
                }
            }
            Event::End(_) => {
                path.pop();
            }
            Event::Text(text) => {
                let value = text.unescape().map_err(|e| e.to_string())?;
                let value: String = value.trim().chars().take(super::TEXT_MAX).collect();
                // Only where the standard puts them: ISO18626Message, a confirmation,
                // then its header's status or its errorData.
                let tail: Vec<&str> = path.iter().skip(2).map(String::as_str).collect();
                let in_confirmation = path.len() == 4
                    && path[1].ends_with("Confirmation")
                    && path[0] == "ISO18626Message";
                match (in_confirmation, tail.as_slice()) {
                    (true, ["confirmationHeader", "messageStatus"]) => status = Some(value),
                    (true, ["errorData", "errorType"]) => error_type = Some(value),
                    (true, ["errorData", "errorValue"]) => error_value = Some(value),
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if let Some(open) = path.last() {
        return Err(format!("the document ends inside <{open}>: cut short"));
    }
    if root.as_deref() != Some("ISO18626Message") {
        return Err("the root element is not ISO18626Message".into());
    }
    match status.as_deref() {
        Some("OK") => Ok(Confirmed {
            ok: true,
            error: None,
        }),
        Some("ERROR") => Ok(Confirmed {
            ok: false,
            error: Some((
                error_type.unwrap_or_default(),
                error_value.unwrap_or_default(),
            )),
        }),
        Some(other) => Err(format!("messageStatus {other:?}: neither OK nor ERROR")),
        None => Err("no messageStatus: not an ISO 18626 confirmation".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmations_are_read_back_and_anything_else_is_refused() {
        let incoming = Incoming {
            kind: Some(Kind::SupplyingAgencyMessage),
            supplying_agency: "ID-KMR".into(),
            supplying_agency_type: "ISIL".into(),
            requesting_agency: "ID-JKT".into(),
            requesting_agency_type: "ISIL".into(),
            requesting_request_id: "r-1".into(),
            reason_for_message: "RequestResponse".into(),
            ..Incoming::default()
        };
        let ok = confirmation(incoming.kind, Some(&incoming), None, 0);
        assert!(ok.contains("<agencyIdType>ISIL</agencyIdType>"), "{ok}");
        assert_eq!(
            read_confirmation(ok.as_bytes()),
            Ok(Confirmed {
                ok: true,
                error: None
            })
        );
        let error = IsoError {
            kind: ErrorType::UnrecognisedDataValue,
            value: "no such request".into(),
        };
        let refused = confirmation(incoming.kind, Some(&incoming), Some(&error), 0);
        assert_eq!(
            read_confirmation(refused.as_bytes()),
            Ok(Confirmed {
                ok: false,
                error: Some(("UnrecognisedDataValue".into(), "no such request".into()))
            })
        );
        let stray =
            "<ISO18626Message><note><messageStatus>OK</messageStatus></note></ISO18626Message>";
        for bad in [
            "",
            "<html>busy</html>",
            "<a><b>",
            "<ISO18626Message/>",
            stray,
        ] {
            assert!(read_confirmation(bad.as_bytes()).is_err(), "{bad:?}");
        }
        let deep = "<ISO18626Message>".to_string() + &"<a>".repeat(40);
        assert!(read_confirmation(deep.as_bytes())
            .expect_err("too deep")
            .contains("deeper"));
    }

    #[test]
    fn date_times_are_utc_with_milliseconds() {
        assert_eq!(date_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            date_time(1_796_342_400_000 + 3_723_004),
            "2026-12-04T01:02:03.004Z"
        );
    }

    #[test]
    fn a_message_without_a_request_id_is_an_unrecognised_element() {
        let xml = format!(
            "<ISO18626Message xmlns=\"{NAMESPACE}\" xmlns:ill=\"{NAMESPACE}\" ill:version=\"1.2\"><request><header><requestingAgencyId><agencyIdType>ISIL</agencyIdType><agencyIdValue>A</agencyIdValue></requestingAgencyId><timestamp>2024-11-28T10:25:11Z</timestamp></header></request></ISO18626Message>"
        );
        let error = read(xml.as_bytes()).expect_err("refused");
        assert_eq!(error.kind, ErrorType::UnrecognisedDataElement);
        assert!(error.value.contains("requestingAgencyRequestId"), "{error}");
        for bad in ["", "<a>", "<ISO18626Message>", "<x/>"] {
            assert!(read(bad.as_bytes()).is_err(), "{bad:?}");
        }
        let deep = "<ISO18626Message><request>".to_string() + &"<a>".repeat(40);
        assert_eq!(
            read(deep.as_bytes()).expect_err("too deep").kind,
            ErrorType::BadlyFormedMessage
        );
    }
}
