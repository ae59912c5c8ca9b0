//! `jalin survey`: the questionnaire (angket) about who the patrons are.

use crate::backend::Backend;
use anyhow::Context;
use clap::Subcommand;
use jalin_node::survey::SurveyRequest;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum SurveyAction {
    /// Make the ready questionnaire (occupation, age, gender, interests by division, a
    /// wish) the current one, or one written as TOML; patrons fill it in at /survey.
    Create {
        /// The questionnaire as TOML: `title`, then `[[questions]]` each with `id`,
        /// `text`, `kind` ("one", "many" or "text"), `options` and, for interests,
        /// `divisions` (one per option: "000" ... "900").
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Take the answers of a CSV (a Google Forms or spreadsheet export: a header row
    /// naming the questions, by id or as asked); all rows or none.
    Import {
        /// The CSV file.
        file: PathBuf,
    },
    /// The results: each question's counts, and the interests beside the collection.
    Report {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Print CSV: question, option, count, percent (and for interests the
        /// collection's and the partners' percent).
        #[arg(long)]
        csv: bool,
    },
}

pub fn run(backend: Backend, action: SurveyAction) -> anyhow::Result<ExitCode> {
    match action {
        SurveyAction::Create { file } => {
            let definition = match file {
                Some(file) => Some(
                    std::fs::read_to_string(&file)
                        .with_context(|| format!("reading {}", file.display()))?,
                ),
                None => None,
            };
            println!(
                "{}",
                backend
                    .survey(SurveyRequest::Create { definition })?
                    .message
            );
        }
        SurveyAction::Import { file } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let taken = backend.survey_import(bytes)?;
            println!("{taken} answers taken");
        }
        SurveyAction::Report { json, csv } => {
            let answer = backend.survey(SurveyRequest::Report)?;
            if csv {
                print!(
                    "{}",
                    answer
                        .report
                        .as_ref()
                        .map(jalin_node::survey::report_csv)
                        .unwrap_or_default()
                );
                return Ok(ExitCode::SUCCESS);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&answer.report)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("{}", answer.message);
            let Some(report) = answer.report else {
                return Ok(ExitCode::SUCCESS);
            };
            for q in &report.questions {
                println!("{} ({} answered)", q.text, q.answered);
                for o in &q.options {
                    println!("  {:>5}  {:>5.1}%  {}", o.count, o.percent, o.option);
                }
                for t in &q.texts {
                    println!("  - {t}");
                }
            }
            if !report.interests.is_empty() {
                println!("Interests beside the collection (asked / this library / partners):");
                for i in &report.interests {
                    println!(
                        "  {} {:<40} {:>5.1}%  {:>5.1}%  {:>5.1}%",
                        i.division, i.option, i.asked_percent, i.held_percent, i.partners_percent
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
