//! `jalin`: the command line of a Jalin node.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use jalin_node::files;
use jalin_protocol::format::Format;
use jalin_protocol::marc::Charset;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "jalin",
    version,
    about = "Jalin: a peer-to-peer union catalog for library partnerships"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Report what catalog files hold: format, record count, charsets, every damaged
    /// record with its position. Exits 1 when a file has damaged records.
    Inspect {
        /// Files to inspect (MARC21, MARCXML, CSV, SLiMS CSV).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Read as this format instead of guessing (marc, marcxml, csv, slims-csv).
        #[arg(long, value_parser = parse_format)]
        format: Option<Format>,
        /// Decode MARC with this charset whatever the leader says (utf-8, marc-8,
        /// iso-8859-1, danmarc).
        #[arg(long, value_parser = parse_charset)]
        charset: Option<Charset>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Print at most this many errors and warnings per file (0: all).
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Convert a catalog file to another format. Damaged records are reported and
    /// skipped, unless --strict.
    Convert {
        /// The file to read.
        input: PathBuf,
        /// The file to write.
        output: PathBuf,
        /// Output format (marc, marcxml, csv, slims-csv, dc); default: from OUTPUT's extension.
        #[arg(long, value_parser = parse_format)]
        to: Option<Format>,
        /// Input format; default: from INPUT's extension or content.
        #[arg(long, value_parser = parse_format)]
        from: Option<Format>,
        /// Decode MARC with this charset whatever the leader says.
        #[arg(long, value_parser = parse_charset)]
        charset: Option<Charset>,
        /// Reject the whole file on the first damaged record; write nothing.
        #[arg(long)]
        strict: bool,
    },
}

fn parse_format(name: &str) -> Result<Format, String> {
    Format::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
        format!("unknown format {name:?}; one of: {}", names.join(", "))
    })
}

fn parse_charset(name: &str) -> Result<Charset, String> {
    Charset::from_name(name).ok_or_else(|| {
        format!("unknown charset {name:?}; one of: utf-8, marc-8, iso-8859-1, danmarc")
    })
}

fn limited<T>(items: &[T], limit: usize) -> &[T] {
    if limit == 0 {
        items
    } else {
        &items[..items.len().min(limit)]
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Inspect {
            files: paths,
            format,
            charset,
            json,
            limit,
        } => {
            let mut damaged = false;
            for path in paths {
                let format = files::detect_format(&path, format)?;
                let report = files::inspect(&path, format, charset)?;
                damaged |= !report.errors.is_empty();
                if json {
                    println!(
                        "{}",
                        serde_json::to_string(&report).context("writing JSON")?
                    );
                    continue;
                }
                let charsets: Vec<String> = report
                    .charsets
                    .iter()
                    .map(|(c, n)| format!("{c} ({n})"))
                    .collect();
                println!("{}", report.path.display());
                println!("  format:    {}", report.format);
                println!("  records:   {}", report.records);
                if !charsets.is_empty() {
                    println!("  charsets:  {}", charsets.join(", "));
                }
                println!("  damaged:   {}", report.errors.len());
                println!(
                    "  repaired:  {} record(s) with warnings",
                    report.records_with_warnings
                );
                for error in limited(&report.errors, limit) {
                    println!("  error:   {error}");
                }
                for warning in limited(&report.warnings, limit) {
                    println!("  warning: {warning}");
                }
                let hidden = report
                    .errors
                    .len()
                    .saturating_sub(limited(&report.errors, limit).len())
                    + report
                        .warnings
                        .len()
                        .saturating_sub(limited(&report.warnings, limit).len());
                if hidden > 0 {
                    println!("  ... and {hidden} more (use --limit 0 to see all)");
                }
            }
            Ok(if damaged {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Convert {
            input,
            output,
            to,
            from,
            charset,
            strict,
        } => {
            let input_format = files::detect_format(&input, from)?;
            let Some(output_format) =
                to.or_else(|| Format::from_extension(&output.to_string_lossy()))
            else {
                bail!(
                    "cannot tell the output format from {}; name it with --to",
                    output.display()
                );
            };
            let conversion = files::convert(
                &input,
                input_format,
                charset,
                &output,
                output_format,
                strict,
            )?;
            eprintln!(
                "{} -> {}: {} record(s) written as {output_format}, {} rejected, {} not writable",
                input.display(),
                output.display(),
                conversion.written,
                conversion.rejected.len(),
                conversion.unwritable.len()
            );
            for error in &conversion.rejected {
                eprintln!("  rejected: {error}");
            }
            for problem in &conversion.unwritable {
                eprintln!("  not written: {problem}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
