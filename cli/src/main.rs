//! `jalin`: the command line of a Jalin node.
//!
//! Commands that read or change a library's catalog talk to its running node through the
//! HTTP API when one runs for the data dir (its address is in `node.json`), and open the
//! catalog themselves when none does. Exit codes: 0 done, 1 done but with damaged input
//! or nothing found, 2 failed.

mod backend;

// glibc's allocator kept over half of an import's peak memory in fragments across the
// node's threads; mimalloc returns it (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{bail, Context};
use backend::Backend;
use clap::{Parser, Subcommand};
use jalin_node::config::DataDir;
use jalin_node::files;
use jalin_node::library::ImportOptions;
use jalin_protocol::format::Format;
use jalin_protocol::marc::Charset;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "jalin",
    version,
    about = "Jalin: a peer-to-peer union catalog for library partnerships"
)]
struct Cli {
    /// The library's data directory (default: the platform's data directory).
    #[arg(long, global = true, env = "JALIN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a library in the data directory: its key, API token and config.
    Init {
        /// The library's name ("Perpustakaan Desa Kemiri Lor").
        #[arg(long)]
        name: String,
        /// A short code (KEMIRILOR): letters, digits, '-' and '_'.
        #[arg(long)]
        code: String,
    },
    /// Run the node in the foreground (Ctrl-C stops it).
    Start {
        /// Address for the HTTP API (default from the config; port 0 picks a free one).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Import records (MARC, MARCXML, CSV, SLiMS CSV) into this library's catalog.
    Import {
        /// The file.
        file: PathBuf,
        /// Its format (marc, marcxml, csv, slims-csv); default: guessed.
        #[arg(long, value_parser = parse_format)]
        format: Option<Format>,
        /// Decode MARC with this charset whatever the leader says.
        #[arg(long, value_parser = parse_charset)]
        charset: Option<Charset>,
        /// Mark deleted the records of this library that the file does not hold.
        #[arg(long)]
        delete_missing: bool,
        /// Import nothing if any record is damaged.
        #[arg(long)]
        strict: bool,
        /// Where to write the report of rejected records (default: in the data dir).
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Search the catalog.
    Search {
        /// The query: words, "phrases", title:, author:, subject:, isbn:, year:1990..2000, lang:ind.
        #[arg(required = true)]
        query: Vec<String>,
        /// Page (from 1).
        #[arg(long, default_value_t = 1)]
        page: usize,
        /// Hits per page.
        #[arg(long, default_value_t = 10)]
        per_page: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one record.
    Show {
        /// Its id.
        id: String,
        /// json, marcxml, marc or dc.
        #[arg(long, default_value = "json")]
        format: String,
    },
    /// Write the whole catalog to a file.
    Export {
        /// The file.
        file: PathBuf,
        /// Format; default: from the file's extension.
        #[arg(long, value_parser = parse_format)]
        format: Option<Format>,
    },
    /// Work on one record.
    Record {
        #[command(subcommand)]
        action: RecordAction,
    },
    /// The node's state: library, records, index, storage.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild the search index from the catalog (with the node stopped).
    Reindex,
    /// Start a demo node with real sample records, in ./jalin-demo.
    Demo {
        /// Address for the HTTP API.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
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

#[derive(Subcommand)]
enum RecordAction {
    /// Mark a record deleted (it disappears from search; the deletion replicates).
    Delete {
        /// Its id.
        id: String,
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

/// The data directory: `--data-dir`, `JALIN_DATA_DIR`, else the platform's.
fn data_dir(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = given {
        return Ok(dir);
    }
    let dirs = directories::ProjectDirs::from("org", "Jalin", "jalin")
        .context("no home directory to keep the data in; pass --data-dir")?;
    Ok(dirs.data_dir().to_path_buf())
}

fn open_data(path: &Path) -> anyhow::Result<DataDir> {
    Ok(DataDir::open(path)?)
}

fn inspect(
    paths: Vec<PathBuf>,
    format: Option<Format>,
    charset: Option<Charset>,
    json: bool,
    limit: usize,
) -> anyhow::Result<ExitCode> {
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

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Inspect {
            files: paths,
            format,
            charset,
            json,
            limit,
        } => inspect(paths, format, charset, json, limit),
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
        Command::Init { name, code } => {
            let path = data_dir(cli.data_dir)?;
            let data = DataDir::init(&path, &name, &code)?;
            println!(
                "Created library {:?} ({}) in {}",
                data.config.library.name,
                data.config.library.code,
                path.display()
            );
            println!("  library id:  {}", data.library_id());
            println!("  fingerprint: {}", data.library_id().fingerprint());
            println!(
                "Next: jalin --data-dir {} import FILE, then jalin --data-dir {} start",
                path.display(),
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Start { listen } => {
            let data = open_data(&data_dir(cli.data_dir)?)?;
            backend::run_node(data, listen, None)
        }
        Command::Demo { listen } => backend::demo(&listen),
        Command::Reindex => {
            let data = open_data(&data_dir(cli.data_dir)?)?;
            match Backend::connect(data)? {
                Backend::Remote(_) => {
                    bail!("a node is running for this data dir; stop it, then reindex")
                }
                Backend::Local(library) => {
                    let count = library.reindex()?;
                    println!("Rebuilt the search index: {count} record(s).");
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
        Command::Import {
            file,
            format,
            charset,
            delete_missing,
            strict,
            report,
        } => {
            let data = open_data(&data_dir(cli.data_dir)?)?;
            let options = ImportOptions {
                format,
                charset,
                delete_missing,
                strict,
            };
            Backend::connect(data)?.import(&file, &options, report.as_deref())
        }
        Command::Search {
            query,
            page,
            per_page,
            json,
        } => {
            let data = open_data(&data_dir(cli.data_dir)?)?;
            Backend::connect(data)?.search(&query.join(" "), page, per_page, json)
        }
        Command::Show { id, format } => {
            let data = open_data(&data_dir(cli.data_dir)?)?;
            Backend::connect(data)?.show(&id, &format)
        }
        Command::Export { file, format } => {
            let data = open_data(&data_dir(cli.data_dir)?)?;
            let Some(format) = format.or_else(|| Format::from_extension(&file.to_string_lossy()))
            else {
                bail!(
                    "cannot tell the format from {}; name it with --format",
                    file.display()
                );
            };
            Backend::connect(data)?.export(&file, format)
        }
        Command::Record {
            action: RecordAction::Delete { id },
        } => {
            let data = open_data(&data_dir(cli.data_dir)?)?;
            Backend::connect(data)?.delete(&id)
        }
        Command::Status { json } => {
            let data = open_data(&data_dir(cli.data_dir)?)?;
            Backend::connect(data)?.status(json)
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
