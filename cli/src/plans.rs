//! `jalin plan`: this library's purchase plan (rencana pengadaan), shared with partners
//! under an agreement with coordinated acquisition.

use crate::backend::Backend;
use anyhow::Context;
use clap::Subcommand;
use jalin_node::plans::{Flag, PlanAnswer, PlanInput, PlanRequest};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum PlanAction {
    /// Plan to buy a title. A title a library already holds or plans is flagged and not
    /// added unless `--anyway`.
    Add {
        /// Title.
        #[arg(long)]
        title: Option<String>,
        /// Author.
        #[arg(long)]
        author: Option<String>,
        /// ISBN (10 or 13 digits, hyphens allowed).
        #[arg(long)]
        isbn: Option<String>,
        /// Year of publication.
        #[arg(long)]
        year: Option<i32>,
        /// Copies.
        #[arg(long, default_value_t = 1)]
        copies: u32,
        /// Why, for partners to read.
        #[arg(long)]
        note: Option<String>,
        /// Add even when a library holds or plans it.
        #[arg(long)]
        anyway: bool,
    },
    /// Plan every title of a file: MARC, MARCXML, a SLiMS or generic CSV, or plain
    /// lines (an ISBN, or `title / author`, per line).
    Import {
        /// The file.
        file: PathBuf,
    },
    /// Every planned title of the partnership: this library's first, each with who holds
    /// or plans it and whether its library bought it.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Withdraw one of this library's planned titles.
    Remove {
        /// Its item id (as `list` shows it).
        item: String,
    },
}

fn flag_line(flag: &Flag) -> String {
    let whose = if flag.own {
        "this library".to_string()
    } else {
        flag.library_name.clone()
    };
    match flag.kind.as_str() {
        "held" => format!(
            "held by {whose}: {} ({}{} {})",
            flag.title,
            flag.call_number
                .as_deref()
                .map(|c| format!("{c}, "))
                .unwrap_or_default(),
            flag.copies,
            if flag.copies == 1 { "copy" } else { "copies" }
        ),
        _ => format!(
            "planned by {whose}: {} ({} {})",
            flag.title,
            flag.copies,
            if flag.copies == 1 { "copy" } else { "copies" }
        ),
    }
}

fn print_answer(answer: &PlanAnswer) {
    println!("{}", answer.message);
    for flag in &answer.flags {
        println!("  {}", flag_line(flag));
    }
    for (line, why) in &answer.refused {
        println!("  line {line}: {why}");
    }
}

pub fn run(backend: Backend, action: PlanAction) -> anyhow::Result<ExitCode> {
    let answer = match action {
        PlanAction::Add {
            title,
            author,
            isbn,
            year,
            copies,
            note,
            anyway,
        } => {
            let title = PlanInput {
                title: title.unwrap_or_default(),
                author,
                isbn,
                year,
                copies: Some(copies),
                note,
            };
            let answer = backend.plans(PlanRequest::Add {
                title,
                confirm: anyway,
            })?;
            print_answer(&answer);
            // Flagged and not added: not a failure, but not done either.
            return Ok(if answer.needs_confirm {
                ExitCode::from(3)
            } else {
                ExitCode::SUCCESS
            });
        }
        PlanAction::Import { file } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            backend.plans_import(bytes)?
        }
        PlanAction::List { json } => {
            let answer = backend.plans(PlanRequest::List)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&answer.plans)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("{}", answer.message);
            for plan in &answer.plans {
                println!(
                    "{}  {}{}{}  {} x{}  [{}]{}",
                    plan.item,
                    plan.title,
                    plan.author
                        .as_deref()
                        .map(|a| format!(" / {a}"))
                        .unwrap_or_default(),
                    plan.isbn
                        .as_deref()
                        .map(|i| format!(" (ISBN {i})"))
                        .unwrap_or_default(),
                    if plan.own {
                        "this library".to_string()
                    } else {
                        plan.library_name.clone()
                    },
                    plan.copies,
                    if plan.bought.is_some() {
                        "bought"
                    } else {
                        "planned"
                    },
                    plan.note
                        .as_deref()
                        .map(|n| format!("  {n}"))
                        .unwrap_or_default()
                );
                for flag in &plan.flags {
                    println!("    {}", flag_line(flag));
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        PlanAction::Remove { item } => backend.plans(PlanRequest::Remove { item })?,
    };
    print_answer(&answer);
    Ok(ExitCode::SUCCESS)
}
