//! `jalin evaluation`: the periodic evaluation (evaluasi berkala) of the partnership.

use crate::backend::Backend;
use anyhow::{bail, Context};
use clap::Subcommand;
use jalin_node::evaluation::{show_period, EvaluationAnswer, EvaluationRequest, HandInput};
use jalin_protocol::consortium::evaluation::{Decision, Outcome};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum EvaluationAction {
    /// The report of a period: printed, or written as a printable page (FILE.html), CSV
    /// (FILE.csv) or JSON with the Perpusnas literacy-index fields (FILE.json).
    Report {
        /// The period: its number (1 is the first) or a date in it (YYYY-MM-DD); default
        /// the last one ended.
        #[arg(long)]
        period: Option<String>,
        /// Write the report here (.html, .csv or .json).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The consortium.
        #[arg(long)]
        consortium: Option<String>,
    },
    /// Count this library's figures for a period and sign them into the partnership's
    /// documents, with what only the librarian counts.
    Figures {
        /// The period.
        #[arg(long)]
        period: Option<String>,
        /// Visits in the period.
        #[arg(long)]
        visits: Option<u32>,
        /// Registered members at its end.
        #[arg(long)]
        members: Option<u32>,
        /// Days the library opened in the period.
        #[arg(long)]
        opening_days: Option<u32>,
        /// Staff.
        #[arg(long)]
        staff: Option<u32>,
        /// The consortium.
        #[arg(long)]
        consortium: Option<String>,
    },
    /// Sign a period's report as it stands, with notes and decisions.
    Sign {
        /// The period.
        #[arg(long)]
        period: Option<String>,
        /// Notes.
        #[arg(long, default_value = "")]
        note: String,
        /// A decision: "WHAT|WHO|YYYY-MM-DD" (repeat for each).
        #[arg(long = "decision")]
        decisions: Vec<String>,
        /// What became of a decision of the period before: "N:done:NOTE" or
        /// "N:not-done:NOTE" (N as `report` numbers them).
        #[arg(long = "outcome")]
        outcomes: Vec<String>,
        /// The consortium.
        #[arg(long)]
        consortium: Option<String>,
    },
}

fn decision(text: &str) -> anyhow::Result<Decision> {
    let mut parts = text.split('|').map(str::trim);
    let what = parts.next().unwrap_or_default().to_string();
    let who = parts.next().unwrap_or_default().to_string();
    let by = parts.next().unwrap_or_default();
    let by_ms = if by.is_empty() {
        0
    } else {
        jalin_node::staff::parse_time(&format!("{by} 23:59"))?
    };
    if what.is_empty() {
        bail!("{text:?}: write a decision as WHAT|WHO|YYYY-MM-DD");
    }
    Ok(Decision { what, who, by_ms })
}

fn print(answer: &EvaluationAnswer) {
    let r = &answer.report;
    println!("{}", answer.message);
    println!(
        "{} — period {} ({}); agreement: {}",
        r.consortium_name,
        answer.number,
        show_period(&r.period),
        r.agreement.as_deref().unwrap_or("none in force")
    );
    let t = &r.totals;
    println!(
        "Members reporting: {} of {}. Records {}, added {}, corrected {}; loans lent {} of {} \
         requests (fill rate {}), {} answered late; searches {} ({} empty); planned {}, \
         duplicates avoided {}; visits {}.",
        t.reporting,
        t.members,
        t.records,
        t.added,
        t.corrected,
        t.lent,
        t.requests_received,
        t.fill_rate.map_or("-".into(), |f| format!("{f}%")),
        t.answered_late,
        t.searches,
        t.searches_empty,
        t.planned,
        t.duplicates_avoided,
        t.visits
    );
    let s = &r.staff;
    println!(
        "Staff development: {} training(s) held of {} planned, {} attended; {} help request(s), \
         {} answered.",
        s.trainings_held, s.trainings_planned, s.attendance, s.help_requests, s.help_answered
    );
    for m in &r.members {
        match &m.figures {
            Some(f) => println!(
                "  {}: records {} ({}), lent {} / borrowed {}, searches {} ({} empty)",
                m.name,
                f.records,
                m.growth.map_or("-".into(), |g| format!("{g:+}")),
                f.lent,
                f.borrowed,
                f.searches,
                f.searches_empty
            ),
            None => println!("  {}: no figures for this period", m.name),
        }
    }
    for f in &r.flags {
        println!("  flag ({}): {}", f.kind, f.detail);
    }
    for (n, d) in r.decisions_before.iter().enumerate() {
        println!(
            "  decision {} of the period before: {} ({}){}",
            n + 1,
            d.decision.what,
            d.decision.who,
            if d.outcomes.is_empty() {
                String::new()
            } else {
                format!(
                    ": {}",
                    d.outcomes
                        .iter()
                        .map(|(_, done, note)| format!(
                            "{} {note}",
                            if *done { "done," } else { "not done," }
                        ))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            }
        );
    }
    for h in &answer.here {
        println!(
            "  here, {}: {} records, last change received {}",
            h.name,
            h.records,
            h.last_change.as_deref().unwrap_or("never")
        );
    }
    println!("Digest: {}", answer.digest);
    for s in &answer.signatures.matching {
        println!("  signed by {} ({})", s.name, s.when);
    }
    for s in &answer.signatures.other {
        println!("  {} signed other figures ({})", s.name, s.when);
    }
}

pub fn run(
    connect: impl Fn() -> anyhow::Result<Backend>,
    library_name: &str,
    action: EvaluationAction,
) -> anyhow::Result<ExitCode> {
    match action {
        EvaluationAction::Report {
            period,
            out,
            consortium,
        } => {
            let answer = connect()?.evaluation(EvaluationRequest::Report { consortium, period })?;
            let Some(file) = out else {
                print(&answer);
                return Ok(ExitCode::SUCCESS);
            };
            let name = file.to_string_lossy().to_lowercase();
            let text = if name.ends_with(".csv") {
                jalin_node::evaluation::csv(&answer.report)
            } else if name.ends_with(".json") {
                jalin_node::evaluation::json(&answer)
            } else {
                jalin_node::web::evaluation::printable(
                    &answer,
                    "id",
                    library_name,
                    jalin_node::server::now_ms(),
                )
            };
            std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
            eprintln!("{} Written to {}", answer.message, file.display());
        }
        EvaluationAction::Figures {
            period,
            visits,
            members,
            opening_days,
            staff,
            consortium,
        } => {
            let answer = connect()?.evaluation(EvaluationRequest::Figures {
                consortium,
                period,
                hand: HandInput {
                    visits,
                    registered_members: members,
                    opening_days,
                    staff,
                },
            })?;
            print(&answer);
        }
        EvaluationAction::Sign {
            period,
            note,
            decisions,
            outcomes,
            consortium,
        } => {
            let decisions = decisions
                .iter()
                .map(|d| decision(d))
                .collect::<anyhow::Result<Vec<_>>>()?;
            // Outcomes name the decisions before by their number in the report.
            let mut resolved = Vec::new();
            if !outcomes.is_empty() {
                let report = connect()?.evaluation(EvaluationRequest::Report {
                    consortium: consortium.clone(),
                    period: period.clone(),
                })?;
                for (n, done, note) in parse_outcomes(&outcomes)? {
                    let d = report
                        .report
                        .decisions_before
                        .get(n.wrapping_sub(1))
                        .with_context(|| {
                            format!("there is no decision {n} of the period before")
                        })?;
                    resolved.push(Outcome {
                        signature: d.signature,
                        index: d.index,
                        done,
                        note,
                    });
                }
            }
            let answer = connect()?.evaluation(EvaluationRequest::Sign {
                consortium,
                period,
                seen: None,
                notes: note,
                decisions,
                outcomes: resolved,
            })?;
            print(&answer);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads `N:done:NOTE` outcomes.
fn parse_outcomes(texts: &[String]) -> anyhow::Result<Vec<(usize, bool, String)>> {
    texts
        .iter()
        .map(|text| {
            let mut parts = text.splitn(3, ':');
            let n: usize = parts
                .next()
                .and_then(|n| n.trim().parse().ok())
                .with_context(|| format!("{text:?}: write an outcome as N:done:NOTE"))?;
            let done = match parts.next().map(str::trim) {
                Some("done") | Some("terlaksana") => true,
                Some("not-done") | Some("belum") => false,
                _ => bail!("{text:?}: the second part is done or not-done"),
            };
            Ok((n, done, parts.next().unwrap_or_default().trim().to_string()))
        })
        .collect()
}
