//! What a user asks of the consortia, as one request type: the CLI sends it to the running
//! node (`POST /api/consortium`) or runs it in process, and both take the same path here.

use crate::consortium::{Consortia, ConsortiumError, Refusal};
use jalin_protocol::consortium::agreement::format_time;
use jalin_protocol::consortium::assertion::RecordRef;
use jalin_protocol::consortium::log::{OpStatus, Role};
use serde::{Deserialize, Serialize};

/// Longest an invite may live.
pub const INVITE_LIFETIME_MAX_S: u64 = 365 * 24 * 3600;

/// A request.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Request {
    /// Found a consortium.
    Create {
        /// Its name.
        name: String,
    },
    /// The consortia held here.
    List,
    /// Members, roles, who added whom, and what became of each operation.
    Members {
        /// The consortium (a prefix of its id; none: the only one).
        consortium: Option<String>,
    },
    /// Make an invite.
    Invite {
        /// The consortium.
        consortium: Option<String>,
        /// The role given.
        role: Role,
        /// Seconds until it expires.
        expires_s: u64,
        /// A note for the inviter's records.
        #[serde(default)]
        note: String,
        /// Also make an invitation: the ticket with the agreement the consortium
        /// proposes (the answer's `data.invitation`), for the library to read before it
        /// joins.
        #[serde(default)]
        with_agreement: bool,
        /// Also open a join code for it on the running node (`data.code`): a number and
        /// three words to read over the phone, valid for an hour at most.
        #[serde(default)]
        code: bool,
    },
    /// Accept a ticket: the acceptance to send back.
    Join {
        /// The ticket's text.
        ticket: String,
    },
    /// Turn an acceptance into an "add".
    Accept {
        /// The acceptance's text.
        acceptance: String,
    },
    /// Take in documents (one per line).
    Import {
        /// The text.
        text: String,
    },
    /// Every document of a consortium, as text.
    Export {
        /// The consortium.
        consortium: Option<String>,
    },
    /// Remove a member.
    Remove {
        /// The consortium.
        consortium: Option<String>,
        /// Its code, fingerprint or key.
        member: String,
        /// Why.
        #[serde(default)]
        reason: String,
    },
    /// Change a member's role.
    Role {
        /// The consortium.
        consortium: Option<String>,
        /// Its code, fingerprint or key.
        member: String,
        /// The new role.
        role: Role,
    },
    /// Leave.
    Leave {
        /// The consortium.
        consortium: Option<String>,
    },
    /// Draft an agreement.
    Draft {
        /// The consortium.
        consortium: Option<String>,
        /// The file's text.
        text: String,
    },
    /// Amend an agreement.
    Amend {
        /// The consortium.
        consortium: Option<String>,
        /// The agreement.
        agreement: String,
        /// The file's text.
        text: String,
    },
    /// Sign an agreement's newest version (or `version`).
    Sign {
        /// The consortium.
        consortium: Option<String>,
        /// The agreement.
        agreement: Option<String>,
        /// A version (prefix of its id).
        version: Option<String>,
    },
    /// An agreement's text, terms and signatures.
    Show {
        /// The consortium.
        consortium: Option<String>,
        /// The agreement.
        agreement: Option<String>,
    },
    /// The printable HTML of an agreement.
    ExportAgreement {
        /// The consortium.
        consortium: Option<String>,
        /// The agreement.
        agreement: Option<String>,
    },
    /// Assert that two records of two libraries are (or are not) the same book.
    Same {
        /// The consortium.
        consortium: Option<String>,
        /// One record: `LIBRARY:RECORD-ID` (the library by code, fingerprint or key).
        a: String,
        /// The other, of another library.
        b: String,
        /// The same book (true) or not (false).
        same: bool,
    },
}

impl Request {
    /// Whether it changes anything (and so needs the API token).
    pub fn writes(&self) -> bool {
        !matches!(
            self,
            Request::List
                | Request::Members { .. }
                | Request::Export { .. }
                | Request::Show { .. }
                | Request::ExportAgreement { .. }
        )
    }
}

/// The answer.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Answer {
    /// For people.
    pub message: String,
    /// A document or file's text, when the request makes one (ticket, acceptance,
    /// documents, HTML).
    pub text: Option<String>,
    /// Structured data.
    pub data: serde_json::Value,
    /// True when part of the request was refused (some imported lines).
    pub partly_refused: bool,
}

fn json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}

/// Reads `LIBRARY:RECORD-ID` (the library by its code, fingerprint or key).
fn record_ref(
    consortia: &Consortia,
    id: &jalin_protocol::consortium::document::Hash32,
    text: &str,
) -> Result<RecordRef, ConsortiumError> {
    let Some((library, record_id)) = text.split_once(':') else {
        return Err(ConsortiumError::Refused(Refusal::BadRecordRef(
            text.to_string(),
        )));
    };
    Ok(RecordRef {
        library: consortia.find_member(id, library)?,
        record_id: record_id.trim().to_string(),
    })
}

/// Runs a request at time `now_ms`.
pub fn execute(
    consortia: &Consortia,
    request: Request,
    now_ms: u64,
    addresses: Vec<String>,
) -> Result<Answer, ConsortiumError> {
    let resolve = |c: &Option<String>| consortia.resolve(c.as_deref());
    Ok(match request {
        Request::Create { name } => {
            let id = consortia.create(&name, now_ms)?;
            Answer {
                message: format!(
                    "Founded consortium {:?}\n  id: {id}\nThis library is its first admin. Invite others with: jalin invite create",
                    name.trim()
                ),
                data: serde_json::json!({ "id": id }),
                ..Answer::default()
            }
        }
        Request::List => {
            let list = consortia.list();
            let mut message = String::new();
            for c in &list {
                message.push_str(&format!(
                    "{}  {}  {} member(s), {} agreement(s), this library: {}\n",
                    c.id.short(),
                    c.name,
                    c.members,
                    c.agreements,
                    c.role.map_or("not a member".to_string(), |r| r.to_string())
                ));
            }
            if list.is_empty() {
                message =
                    "No consortium yet: jalin consortium create --name NAME, or jalin join TICKET"
                        .into();
            }
            Answer {
                message,
                data: json(&list),
                ..Answer::default()
            }
        }
        Request::Members { consortium } => {
            let id = resolve(&consortium)?;
            let held = consortia.get(&id)?;
            let state = held.log.state();
            let mut message = format!("{} ({})\n", held.log.name(), id.short());
            for m in state.members.values() {
                let by = state
                    .members
                    .get(&m.added_by)
                    .or_else(|| state.former.get(&m.added_by).map(|(f, _, _)| f))
                    .map_or(m.added_by.fingerprint(), |a| a.code.clone());
                message.push_str(&format!(
                    "  {:<6} {} ({})  {}  added by {} on {}\n",
                    m.role.to_string(),
                    m.name,
                    m.code,
                    m.library.fingerprint(),
                    if m.added_by == m.library {
                        "itself (founder)".to_string()
                    } else {
                        by
                    },
                    format_time(m.added_ms)
                ));
            }
            for (library, (m, by, _)) in &state.former {
                message.push_str(&format!(
                    "  former {} ({})  {}  {}\n",
                    m.name,
                    m.code,
                    library.fingerprint(),
                    if by == library {
                        "left".to_string()
                    } else {
                        format!(
                            "removed by {}",
                            state
                                .members
                                .get(by)
                                .map_or(by.fingerprint(), |a| a.code.clone())
                        )
                    }
                ));
            }
            let without_effect = state
                .status
                .values()
                .filter(|s| !matches!(s, OpStatus::Effective))
                .count();
            if without_effect > 0 {
                message.push_str(&format!(
                    "  ({without_effect} operation(s) without effect: see --json)\n"
                ));
            }
            Answer {
                message,
                data: json(&state),
                ..Answer::default()
            }
        }
        Request::Invite {
            consortium,
            role,
            expires_s,
            note,
            with_agreement,
            code,
        } => {
            if code {
                // Held by the running node's network, in its memory: see the server.
                return Err(ConsortiumError::Refused(Refusal::CodeNeedsNode));
            }
            let id = resolve(&consortium)?;
            if expires_s == 0 || expires_s > INVITE_LIFETIME_MAX_S {
                return Err(ConsortiumError::Refused(Refusal::InviteLifetime));
            }
            let invite = consortia.invite(
                &id,
                role,
                now_ms + expires_s * 1000,
                &note,
                addresses,
                now_ms,
            )?;
            Answer {
                message: format!(
                    "Invite to {:?} as {role}, valid until {}, for one library.\nGive it the ticket below; it runs: jalin join TICKET",
                    invite.body.consortium_name,
                    format_time(invite.body.expires_ms)
                ),
                data: serde_json::json!({
                    "invite": invite.id(),
                    "expires_ms": invite.body.expires_ms,
                    "invitation": with_agreement.then(|| {
                        jalin_protocol::consortium::invitation::write(
                            &invite.to_text(),
                            &invite.body.consortium_name,
                            &consortia.proposed_bundle(&id).unwrap_or_default(),
                        )
                    }),
                }),
                text: Some(invite.to_text()),
                ..Answer::default()
            }
        }
        Request::Join { ticket } => {
            let acceptance = consortia.join(&ticket, addresses, now_ms)?;
            let invite = &acceptance.body.invite.body;
            let skew = if now_ms > invite.expires_ms {
                format!(
                    "\nBy this computer's clock the invite expired {} ago: taken as a difference between the two computers' clocks (up to a day is); {}'s node decides. Check this computer's date and time.",
                    crate::clock::describe_ms(now_ms - invite.expires_ms),
                    invite.inviter_name
                )
            } else {
                String::new()
            };
            Answer {
                message: format!(
                    "Accepted the invite of {} to {:?} as {}.\nSend the acceptance below back to {}; it runs: jalin consortium accept FILE{skew}",
                    invite.inviter_name, invite.consortium_name, invite.role, invite.inviter_name
                ),
                text: Some(acceptance.to_text()),
                data: serde_json::json!({ "consortium": acceptance.body.consortium }),
                ..Answer::default()
            }
        }
        Request::Accept { acceptance } => {
            let op = consortia.accept(&acceptance, now_ms)?;
            let Some(id) = op.body.consortium else {
                return Err(ConsortiumError::Refused(Refusal::NotAnAdd));
            };
            let joiner = match &op.body.action {
                jalin_protocol::consortium::log::Action::Add { acceptance } => {
                    format!("{} ({})", acceptance.body.name, acceptance.body.code)
                }
                _ => String::new(),
            };
            Answer {
                message: format!(
                    "Added {joiner} to the consortium (operation {}).\nSend every member the consortium's documents: jalin consortium export FILE",
                    op.id().short()
                ),
                text: Some(op.to_text()),
                data: serde_json::json!({ "consortium": id, "op": op.id() }),
                ..Answer::default()
            }
        }
        Request::Import { text } => {
            let report = consortia.import(&text)?;
            let mut message = format!(
                "{} document(s) taken, {} refused\n",
                report.taken.len(),
                report.refused.len()
            );
            for (_, why) in &report.refused {
                message.push_str(&format!("  refused {why}\n"));
            }
            Answer {
                message,
                partly_refused: !report.refused.is_empty(),
                data: json(&report),
                ..Answer::default()
            }
        }
        Request::Export { consortium } => {
            let id = resolve(&consortium)?;
            let text = consortia.export(&id)?;
            Answer {
                message: format!(
                    "{} document(s)",
                    text.lines().filter(|l| !l.starts_with('#')).count()
                ),
                text: Some(text),
                ..Answer::default()
            }
        }
        Request::Remove {
            consortium,
            member,
            reason,
        } => {
            let id = resolve(&consortium)?;
            let library = consortia.find_member(&id, &member)?;
            let op = consortia.remove(&id, library, &reason, now_ms)?;
            Answer {
                message: format!(
                    "Removed {} (operation {}). What it writes from now on, or wrote without this library having seen it, has no effect.",
                    library.fingerprint(),
                    op.id().short()
                ),
                text: Some(op.to_text()),
                data: serde_json::json!({ "op": op.id() }),
                ..Answer::default()
            }
        }
        Request::Role {
            consortium,
            member,
            role,
        } => {
            let id = resolve(&consortium)?;
            let library = consortia.find_member(&id, &member)?;
            let op = consortia.set_role(&id, library, role, now_ms)?;
            Answer {
                message: format!(
                    "{} is now {role} (operation {}).",
                    library.fingerprint(),
                    op.id().short()
                ),
                text: Some(op.to_text()),
                data: serde_json::json!({ "op": op.id() }),
                ..Answer::default()
            }
        }
        Request::Leave { consortium } => {
            let id = resolve(&consortium)?;
            let op = consortia.leave(&id, now_ms)?;
            Answer {
                message: format!("This library left (operation {}).", op.id().short()),
                text: Some(op.to_text()),
                data: serde_json::json!({ "op": op.id() }),
                ..Answer::default()
            }
        }
        Request::Draft { consortium, text } => {
            let id = resolve(&consortium)?;
            let version = consortia.draft(&id, &text, now_ms)?;
            Answer {
                message: format!(
                    "Drafted agreement {} (version 1). Members sign it with: jalin agreement sign {}",
                    version.short(),
                    version.short()
                ),
                data: serde_json::json!({ "agreement": version, "version": version }),
                ..Answer::default()
            }
        }
        Request::Amend {
            consortium,
            agreement,
            text,
        } => {
            let id = resolve(&consortium)?;
            let agreement = consortia.resolve_agreement(&id, Some(&agreement))?;
            let version = consortia.amend(&id, &agreement, &text, now_ms)?;
            Answer {
                message: format!(
                    "New version {} of agreement {}; it needs its own signatures.",
                    version.short(),
                    agreement.short()
                ),
                data: serde_json::json!({ "agreement": agreement, "version": version }),
                ..Answer::default()
            }
        }
        Request::Sign {
            consortium,
            agreement,
            version,
        } => {
            let id = resolve(&consortium)?;
            let agreement = consortia.resolve_agreement(&id, agreement.as_deref())?;
            let signed = consortia.sign(&id, &agreement, version.as_deref(), now_ms)?;
            let (status, _) = consortia.agreement_status(&id, &agreement)?;
            let v = status.versions.iter().find(|v| v.id == signed);
            Answer {
                message: format!(
                    "Signed version {} of agreement {}: {} of {} signatures{}.",
                    v.map_or(0, |v| v.number),
                    agreement.short(),
                    v.map_or(0, |v| v.signed_by.len()),
                    v.map_or(0, |v| v.required),
                    if v.is_some_and(|v| v.in_force) {
                        ", in force"
                    } else {
                        ""
                    }
                ),
                data: json(&status),
                ..Answer::default()
            }
        }
        Request::Same {
            consortium,
            a,
            b,
            same,
        } => {
            let id = resolve(&consortium)?;
            let a = record_ref(consortia, &id, &a)?;
            let b = record_ref(consortia, &id, &b)?;
            let aid = consortia.assert_match(&id, a.clone(), b.clone(), same, now_ms)?;
            Answer {
                message: format!(
                    "Asserted: {} of {} and {} of {} are {}the same book (assertion {}). Every member's union catalog follows it.",
                    a.record_id,
                    a.library.fingerprint(),
                    b.record_id,
                    b.library.fingerprint(),
                    if same { "" } else { "not " },
                    aid.short()
                ),
                data: serde_json::json!({ "id": aid }),
                ..Answer::default()
            }
        }
        Request::Show {
            consortium,
            agreement,
        } => {
            let id = resolve(&consortium)?;
            let agreement = consortia.resolve_agreement(&id, agreement.as_deref())?;
            let (status, held) = consortia.agreement_status(&id, &agreement)?;
            let state = held.log.state();
            let name = |l: &jalin_protocol::signing::LibraryId| {
                state
                    .members
                    .get(l)
                    .map_or(l.fingerprint(), |m| format!("{} ({})", m.name, m.code))
            };
            let mut message = String::new();
            for v in &status.versions {
                let version = &held.agreements.versions[&v.id];
                message.push_str(&format!(
                    "Version {} ({}), {}, by {}{}: {}\n",
                    v.number,
                    v.id.short(),
                    format_time(version.body.time_ms),
                    name(&version.author),
                    if v.by_member { "" } else { " (not a member)" },
                    if v.in_force {
                        "IN FORCE"
                    } else {
                        "not in force"
                    }
                ));
                message.push_str(&format!(
                    "  signed by {} of {} required:\n",
                    v.signed_by.len(),
                    v.required
                ));
                for (library, time) in &v.signed_by {
                    message.push_str(&format!(
                        "    {} on {}\n",
                        name(library),
                        format_time(*time)
                    ));
                }
            }
            let shown = status.in_force.or(status.versions.last().map(|v| v.id));
            if let Some(version) = shown.and_then(|v| held.agreements.versions.get(&v)) {
                let t = &version.body.terms;
                message.push_str(&format!(
                    "\n# {}\n\nTerms: union catalog {}, interlibrary loan {}, coordinated acquisition {}, staff development {}; loan period {} days, {} item(s) per request, evaluation every {} months, signatures required: {}\n\n{}\n",
                    version.body.title,
                    t.union_catalog,
                    t.interlibrary_loan,
                    t.coordinated_acquisition,
                    t.staff_development,
                    t.loan_period_days,
                    t.items_per_request,
                    t.evaluation_period_months,
                    t.signatures_required.map_or("all members".to_string(), |n| n.to_string()),
                    version.body.text
                ));
            }
            Answer {
                message,
                data: json(&status),
                ..Answer::default()
            }
        }
        Request::ExportAgreement {
            consortium,
            agreement,
        } => {
            let id = resolve(&consortium)?;
            let agreement = consortia.resolve_agreement(&id, agreement.as_deref())?;
            let html = consortia.export_agreement(&id, &agreement)?;
            Answer {
                message: format!(
                    "Agreement {} as a printable, self-checking page.",
                    agreement.short()
                ),
                text: Some(html),
                data: serde_json::json!({ "agreement": agreement }),
                ..Answer::default()
            }
        }
    })
}

/// Parses a duration like `7d`, `12h`, `30m`, `2w` or a number of seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, ""), |i| text.split_at(i));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (7d, 12h, 30m, 2w)"))?;
    let unit = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: s, m, h, d or w"
            ))
        }
    };
    n.checked_mul(unit)
        .ok_or_else(|| format!("{text:?} is too long"))
}
