//! The ISO 18626 gateway: interlibrary-loan systems outside Jalin (an ILS, a broker) send
//! this library the standard's messages at `POST /iso18626`, and get the standard's
//! confirmations back.
//!
//! Each such agency is listed in `[iso18626] peers` with a shared secret it sends as
//! `Authorization: Bearer SECRET`. This library is the supplying agency of the requests
//! they send (`[iso18626] agency_id`, or its code): a valid request opens a transaction
//! here (sled tree `iso18626`), and the requesting agency's later messages (cancel,
//! received, renew, return, ...) are taken into it. A message this library cannot take
//! is answered `ERROR` with the standard's error type and what was wrong.

use crate::config::Iso18626Section;
use jalin_protocol::ill::iso::{self, ErrorType, Incoming, IsoError, Kind};
use serde::{Deserialize, Serialize};

/// Messages kept per transaction, at most (later ones are confirmed, not kept).
const MESSAGES_KEPT_MAX: usize = 64;
/// New requests one agency may send in a day: an ILS flooding the gateway cannot fill
/// the library's disk.
pub const REQUESTS_PER_AGENCY_PER_DAY: usize = 500;

/// A transaction opened by an agency outside Jalin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct External {
    /// The requesting agency (its `agencyIdValue`).
    pub requesting_agency: String,
    /// Its request id.
    pub request_id: String,
    /// The title asked for.
    pub title: String,
    /// The author.
    pub author: String,
    /// The record asked for, in this library's catalog (`supplierUniqueRecordId`).
    pub record_id: String,
    /// The requesting agency's last action (`Request` first).
    pub last_action: String,
    /// When it arrived (ms since 1970) and when it last changed.
    pub created_ms: u64,
    /// When it last changed.
    pub changed_ms: u64,
    /// The messages as they came (at most [`MESSAGES_KEPT_MAX`]).
    pub messages: Vec<String>,
}

/// Why a message is not taken, as HTTP sees it: the confirmation says the rest.
#[derive(Debug)]
pub struct Refusal {
    /// The HTTP status (200 for a message read and refused by the standard's rules).
    pub http: u16,
    /// The standard's error.
    pub error: IsoError,
}

/// The gateway's store.
pub struct Gateway {
    tree: sled::Tree,
}

fn key(agency: &str, request_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(agency.len() + request_id.len() + 2);
    out.push(b't');
    out.extend_from_slice(agency.as_bytes());
    out.push(0);
    out.extend_from_slice(request_id.as_bytes());
    out
}

fn value_error(value: impl Into<String>) -> IsoError {
    IsoError {
        kind: ErrorType::UnrecognisedDataValue,
        value: value.into(),
    }
}

impl Gateway {
    /// The gateway's tree in `db`.
    pub fn open(db: &sled::Db) -> Result<Gateway, sled::Error> {
        Ok(Gateway {
            tree: db.open_tree("iso18626")?,
        })
    }

    /// Every transaction opened through the gateway.
    pub fn transactions(&self) -> Result<Vec<External>, sled::Error> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix([b't']) {
            let (_, bytes) = item?;
            if let Ok(external) = serde_json::from_slice(&bytes) {
                out.push(external);
            }
        }
        Ok(out)
    }

    /// Takes one message (its bytes, the `Authorization` bearer secret if any) and
    /// returns the confirmation to send back, with its HTTP status.
    pub fn receive(
        &self,
        config: &Iso18626Section,
        own_agency: &str,
        bytes: &[u8],
        secret: Option<&str>,
        now_ms: u64,
    ) -> (u16, String) {
        let incoming = match iso::read(bytes) {
            Ok(incoming) => incoming,
            Err(error) => {
                return (200, iso::confirmation(None, None, Some(&error), now_ms));
            }
        };
        let kind = incoming.kind;
        match self.take(config, own_agency, &incoming, bytes, secret, now_ms) {
            Ok(()) => (200, iso::confirmation(kind, Some(&incoming), None, now_ms)),
            Err(refusal) => (
                refusal.http,
                iso::confirmation(kind, Some(&incoming), Some(&refusal.error), now_ms),
            ),
        }
    }

    fn take(
        &self,
        config: &Iso18626Section,
        own_agency: &str,
        m: &Incoming,
        bytes: &[u8],
        secret: Option<&str>,
        now_ms: u64,
    ) -> Result<(), Refusal> {
        let refused = |error: IsoError| Refusal { http: 200, error };
        let kind = m.kind.unwrap_or(Kind::Request);
        // Who sent it: the requesting agency, or for a supplying agency's message the
        // supplier; it must be listed, and prove it with its secret.
        let sender = match kind {
            Kind::SupplyingAgencyMessage => &m.supplying_agency,
            _ => &m.requesting_agency,
        };
        let Some(peer) = config.peers.iter().find(|p| p.agency_id == *sender) else {
            return Err(Refusal {
                http: 403,
                error: value_error(format!(
                    "{sender}: not an agency this library exchanges with"
                )),
            });
        };
        if !secret.is_some_and(|s| crate::server::same_secret(s, &peer.secret)) {
            return Err(Refusal {
                http: 401,
                error: value_error(format!(
                    "{sender}: the shared secret is missing or wrong (Authorization: Bearer SECRET)"
                )),
            });
        }
        let xml = String::from_utf8_lossy(bytes).into_owned();
        match kind {
            Kind::Request => {
                if m.supplying_agency != own_agency {
                    return Err(refused(value_error(format!(
                        "supplyingAgencyId: {:?} is not this library ({own_agency})",
                        m.supplying_agency
                    ))));
                }
                let k = key(&m.requesting_agency, &m.requesting_request_id);
                let held = self.get(&k).map_err(|e| Refusal {
                    http: 500,
                    error: value_error(e),
                })?;
                match (m.request_type.as_str(), held) {
                    ("" | "New", None) => {
                        let today = self
                            .transactions()
                            .map_err(|e| Refusal {
                                http: 500,
                                error: value_error(e.to_string()),
                            })?
                            .iter()
                            .filter(|t| {
                                t.requesting_agency == m.requesting_agency
                                    && t.created_ms.saturating_add(86_400_000) > now_ms
                            })
                            .count();
                        if today >= REQUESTS_PER_AGENCY_PER_DAY {
                            return Err(Refusal {
                                http: 429,
                                error: value_error(format!(
                                    "{}: {today} requests in the last day, at most {REQUESTS_PER_AGENCY_PER_DAY}",
                                    m.requesting_agency
                                )),
                            });
                        }
                        let external = External {
                            requesting_agency: m.requesting_agency.clone(),
                            request_id: m.requesting_request_id.clone(),
                            title: m.title.clone(),
                            author: m.author.clone(),
                            record_id: m.supplier_record_id.clone(),
                            last_action: "Request".into(),
                            created_ms: now_ms,
                            changed_ms: now_ms,
                            messages: vec![xml],
                        };
                        self.put(&k, &external)
                    }
                    ("" | "New", Some(_)) => Err(refused(value_error(
                        "requestingAgencyRequestId: a request with this id exists already",
                    ))),
                    ("Reminder", Some(mut held)) => {
                        held.changed_ms = now_ms;
                        if held.messages.len() < MESSAGES_KEPT_MAX {
                            held.messages.push(xml);
                        }
                        self.put(&k, &held)
                    }
                    ("Reminder", None) => Err(refused(value_error(
                        "requestingAgencyRequestId: no request with this id to remind of",
                    ))),
                    // This library never answers RetryPossible, so no retry can follow.
                    _ => Err(refused(value_error("requestType: Retry not possible"))),
                }
            }
            Kind::RequestingAgencyMessage => {
                if m.supplying_agency != own_agency {
                    return Err(refused(value_error(format!(
                        "supplyingAgencyId: {:?} is not this library ({own_agency})",
                        m.supplying_agency
                    ))));
                }
                let k = key(&m.requesting_agency, &m.requesting_request_id);
                let Some(mut held) = self.get(&k).map_err(|e| Refusal {
                    http: 500,
                    error: value_error(e),
                })?
                else {
                    return Err(refused(value_error(
                        "requestingAgencyRequestId: no request with this id",
                    )));
                };
                held.last_action = m.action.clone();
                held.changed_ms = now_ms;
                if held.messages.len() < MESSAGES_KEPT_MAX {
                    held.messages.push(xml);
                }
                self.put(&k, &held)
            }
            Kind::SupplyingAgencyMessage => {
                // This library sends no requests to agencies outside Jalin yet, so no
                // supplier can be answering one.
                if m.requesting_agency != own_agency {
                    return Err(refused(value_error(format!(
                        "requestingAgencyId: {:?} is not this library ({own_agency})",
                        m.requesting_agency
                    ))));
                }
                Err(refused(value_error(
                    "requestingAgencyRequestId: this library made no request with this id",
                )))
            }
        }
    }

    fn get(&self, key: &[u8]) -> Result<Option<External>, String> {
        match self.tree.get(key).map_err(|e| e.to_string())? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("a stored transaction is damaged: {e}")),
            None => Ok(None),
        }
    }

    fn put(&self, key: &[u8], external: &External) -> Result<(), Refusal> {
        let stored = serde_json::to_vec(external)
            .map_err(|e| e.to_string())
            .and_then(|json| {
                self.tree.insert(key, json).map_err(|e| e.to_string())?;
                self.tree.flush().map_err(|e| e.to_string())
            });
        stored.map(|_| ()).map_err(|e| Refusal {
            http: 500,
            error: value_error(format!("this library could not store it: {e}")),
        })
    }
}
