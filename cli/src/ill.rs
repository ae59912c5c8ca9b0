//! `jalin ill`: interlibrary loan between members, from the command line.

use crate::backend::Backend;
use clap::Subcommand;
use jalin_node::ill_requests::{IllAnswer, IllRequest, LoanView, SimpleStep};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum IllAction {
    /// Ask the libraries holding a book to lend it: RECORD_KEY is a holding as the union
    /// catalog shows it (CODE:RECORD_ID).
    Request {
        /// The holding, `CODE:RECORD_ID`.
        record: String,
        /// This library's own reference to the patron (stays on this node).
        #[arg(long)]
        patron: Option<String>,
        /// The day the patron needs it by (YYYY-MM-DD).
        #[arg(long)]
        need_before: Option<String>,
        /// A note to the lending library.
        #[arg(long, default_value = "")]
        note: String,
        /// Ask only these libraries (code or key), preferring them in this order.
        #[arg(long = "lender")]
        lenders: Vec<String>,
        /// Items asked for.
        #[arg(long, default_value_t = 1)]
        items: u16,
    },
    /// The loans of this library: requests it made and requests it received.
    List {
        /// Only requests to this library.
        #[arg(long)]
        incoming: bool,
        /// Only this library's requests.
        #[arg(long)]
        outgoing: bool,
        /// Only in this state (requested, request_received, will_supply, loaned, received,
        /// shipped_return, lost, loan_completed, unfilled, cancelled).
        #[arg(long)]
        state: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One loan with every message.
    Show {
        /// The loan (its id, or its first 8 hex digits or more).
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Answer a request (the lending library).
    Answer {
        /// The loan.
        id: String,
        /// It will be supplied.
        #[arg(long, conflicts_with = "unfilled")]
        will_supply: bool,
        /// It cannot be supplied, and why.
        #[arg(long)]
        unfilled: Option<String>,
        /// Loan conditions the borrowing library must accept (implies --will-supply).
        #[arg(long, conflicts_with = "unfilled")]
        conditions: Option<String>,
    },
    /// Accept or decline the lender's loan conditions (the borrowing library).
    Conditions {
        /// The loan.
        id: String,
        /// Accept them.
        #[arg(long, conflicts_with = "decline")]
        accept: bool,
        /// Decline them (the request goes to the next library).
        #[arg(long)]
        decline: bool,
    },
    /// The book is sent (the lending library): due after the agreement's loan period.
    Ship {
        /// The loan.
        id: String,
    },
    /// The book has arrived (the borrowing library).
    Receive {
        /// The loan.
        id: String,
    },
    /// Ask for more time (the borrowing library).
    Renew {
        /// The loan.
        id: String,
    },
    /// The book is sent back (the borrowing library).
    Return {
        /// The loan.
        id: String,
    },
    /// The book is back: close the loan (the lending library).
    Checkin {
        /// The loan.
        id: String,
    },
    /// Withdraw a request before the book is sent (the borrowing library).
    Cancel {
        /// The loan.
        id: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// The book is lost (the borrowing library).
    Lost {
        /// The loan.
        id: String,
    },
    /// Ask for the book back before its due date (the lending library).
    Recall {
        /// The loan.
        id: String,
    },
    /// Send a note to the other library.
    Notify {
        /// The loan.
        id: String,
        /// The note.
        note: String,
    },
    /// Answer a request from a system outside Jalin (ISO 18626 gateway); the answer is
    /// posted to the agency's `url` in `[iso18626] peers`. STEP: will-supply, unfilled
    /// (with --text REASON), ship, checkin, renew-yes, renew-no, cancel-yes, cancel-no,
    /// recall, notify (with --text NOTE).
    External {
        /// The requesting agency (its agency id).
        agency: String,
        /// Its request id.
        request_id: String,
        /// The step.
        step: String,
        /// Loan conditions (will-supply), the reason (unfilled) or the note (notify).
        #[arg(long, default_value = "")]
        text: String,
    },
    /// This library's figures: requests made and received, filled, unfilled by reason,
    /// fill rate, turnaround, open and overdue loans, lent to borrowed.
    Report {
        /// Only requests made since this day (YYYY-MM-DD).
        #[arg(long)]
        since: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the loan as ISO 18626 XML: one message per step, each a file in the
    /// directory OUT (01-request.xml, 02-RequestReceived.xml, ...), each valid against
    /// the standard's 2021-2 schema.
    Export {
        /// The loan.
        id: String,
        /// The directory (made if missing).
        #[arg(long)]
        out: PathBuf,
    },
}

fn print_loan(loan: &LoanView, full: bool) {
    let peer = loan.peer_name.clone().unwrap_or_else(|| loan.peer.clone());
    let direction = if loan.role == "borrower" {
        format!("from {peer}")
    } else {
        format!("to {peer}")
    };
    let due = loan
        .due
        .as_ref()
        .map(|d| format!(", due {d}{}", if loan.overdue { " OVERDUE" } else { "" }))
        .unwrap_or_default();
    println!(
        "{}  {:<16} {} {direction}{due}",
        loan.id.get(..12).unwrap_or(&loan.id),
        loan.state,
        loan.title
    );
    if full {
        println!("  id:      {}", loan.id);
        println!("  record:  {} ({} item(s))", loan.record_id, loan.items);
        if let Some(patron) = &loan.patron {
            println!("  patron:  {patron} (kept on this node only)");
        }
        if let Some(need) = &loan.need_before {
            println!("  needed before {need}");
        }
        if let Some(conditions) = &loan.conditions {
            println!("  conditions: {conditions}");
        }
        if let Some(reason) = &loan.reason {
            println!("  reason:  {reason}");
        }
        if let Some(ended) = &loan.request_ended {
            println!("  the request ended: {ended}");
        }
        for line in &loan.history {
            println!("  {line}");
        }
        if !loan.next.is_empty() {
            println!("  next:    {}", loan.next.join(", "));
        }
    }
}

fn print(answer: &IllAnswer, json: bool, full: bool) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    if !answer.message.is_empty() {
        println!("{}", answer.message);
    }
    if let Some(r) = &answer.report {
        let days = |d: Option<f64>| d.map_or("-".to_string(), |d| format!("{d} days"));
        let rate = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{r}"));
        println!(
            "Interlibrary loan{}",
            r.since
                .as_ref()
                .map(|s| format!(" since {s}"))
                .unwrap_or_default()
        );
        println!(
            "  requests made:       {} (filled {})",
            r.made, r.filled_made
        );
        println!(
            "  requests received:   {} (filled {})",
            r.received, r.filled_received
        );
        println!("  fill rate:           {}", rate(r.fill_rate));
        for (reason, count) in &r.unfilled_by_reason {
            println!("  unfilled, {reason}: {count}");
        }
        println!(
            "  request to received: {} (median)",
            days(r.days_to_received)
        );
        println!(
            "  request to shipped:  {} (median)",
            days(r.days_to_shipped)
        );
        println!(
            "  open loans:          {} ({} overdue)",
            r.open_loans, r.overdue_loans
        );
        println!(
            "  lent / borrowed:     {} / {} ({})",
            r.lent,
            r.borrowed,
            rate(r.lent_to_borrowed)
        );
    }
    for loan in &answer.loans {
        print_loan(loan, full);
    }
    if !answer.external.is_empty() {
        println!("Requests from systems outside Jalin (ISO 18626):");
        for t in &answer.external {
            let r = &t.request;
            println!(
                "  {} {}  {:<16} {}",
                r.requesting_agency, r.request_id, t.state, r.title
            );
            if !r.last_action.is_empty() && r.last_action != "Request" {
                println!("      their last message: {}", r.last_action);
            }
            if let Some(due) = &t.due_date {
                println!(
                    "      due {due}{}",
                    if t.overdue { " (OVERDUE)" } else { "" }
                );
            }
            if full {
                for a in &r.answers {
                    let delivery = match &a.delivery {
                        jalin_node::gateway::Delivery::Waiting { attempts, error } => match error {
                            Some(e) => format!("waiting ({attempts} failed: {e})"),
                            None => "waiting".into(),
                        },
                        jalin_node::gateway::Delivery::Delivered { .. } => "delivered".into(),
                        jalin_node::gateway::Delivery::Refused { error } => {
                            format!("REFUSED by the agency: {error}")
                        }
                    };
                    println!(
                        "      {} {:<14} {delivery}",
                        jalin_protocol::consortium::agreement::format_time(a.at_ms),
                        a.status
                    );
                }
            }
            if !t.next.is_empty() {
                println!(
                    "      next: {}",
                    t.next
                        .iter()
                        .map(|s| s.replace('_', "-"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `jalin ill ACTION` through the running node, or on the data dir.
pub fn run(backend: Backend, action: IllAction) -> anyhow::Result<ExitCode> {
    let step = |id: String, step: SimpleStep| IllRequest::Step { id, step };
    if let IllAction::Export { id, out } = action {
        let answer = backend.ill(IllRequest::Export { id })?;
        std::fs::create_dir_all(&out)?;
        for (name, xml) in &answer.files {
            // Names are the node's own (`NN-Kind.xml`); never a path.
            let name = std::path::Path::new(name)
                .file_name()
                .ok_or_else(|| anyhow::anyhow!("the node named a file {name:?}"))?;
            std::fs::write(out.join(name), xml)?;
        }
        eprintln!(
            "{} message(s) written to {}",
            answer.files.len(),
            out.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let (request, json, full) = match action {
        IllAction::Request {
            record,
            patron,
            need_before,
            note,
            lenders,
            items,
        } => (
            IllRequest::Request {
                record,
                patron,
                need_before,
                note,
                lenders,
                items,
            },
            false,
            true,
        ),
        IllAction::List {
            incoming,
            outgoing,
            state,
            json,
        } => (
            IllRequest::List {
                incoming,
                outgoing,
                state,
            },
            json,
            false,
        ),
        IllAction::Show { id, json } => (IllRequest::Show { id }, json, true),
        IllAction::Answer {
            id,
            will_supply,
            unfilled,
            conditions,
        } => (
            IllRequest::Answer {
                id,
                will_supply,
                unfilled,
                conditions,
            },
            false,
            true,
        ),
        IllAction::Conditions {
            id,
            accept,
            decline,
        } => {
            if accept == decline {
                anyhow::bail!("say --accept or --decline");
            }
            (IllRequest::Conditions { id, accept }, false, true)
        }
        IllAction::Ship { id } => (step(id, SimpleStep::Ship), false, true),
        IllAction::Receive { id } => (step(id, SimpleStep::Receive), false, true),
        IllAction::Renew { id } => (step(id, SimpleStep::Renew), false, true),
        IllAction::Return { id } => (step(id, SimpleStep::Return), false, true),
        IllAction::Checkin { id } => (step(id, SimpleStep::Checkin), false, true),
        IllAction::Lost { id } => (step(id, SimpleStep::Lost), false, true),
        IllAction::Recall { id } => (step(id, SimpleStep::Recall), false, true),
        IllAction::Cancel { id, reason } => (IllRequest::Cancel { id, reason }, false, true),
        IllAction::Notify { id, note } => (IllRequest::Notify { id, note }, false, true),
        IllAction::External {
            agency,
            request_id,
            step,
            text,
        } => (
            IllRequest::External {
                agency,
                request_id,
                step: step.replace('-', "_"),
                text,
            },
            false,
            true,
        ),
        IllAction::Export { .. } => unreachable!("handled above"),
        IllAction::Report { since, json } => (IllRequest::Report { since }, json, false),
    };
    let answer = backend.ill(request)?;
    print(&answer, json, full)
}

/// Where `jalin agreement template` writes (stdout when none).
pub fn template(out: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let text = jalin_protocol::consortium::agreement::template();
    match out {
        Some(file) => {
            std::fs::write(&file, text)?;
            eprintln!("Written to {}", file.display());
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}
