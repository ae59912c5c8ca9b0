//! `jalin bundle`: sync by flash disk. A bundle for a member carries what its node is not
//! known to have; taking one in applies it with the network's checks.

use crate::backend::Backend;
use clap::Subcommand;
use jalin_node::bundle::BundleReport;
use jalin_protocol::consortium::agreement::format_time;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum BundleAction {
    /// Write a bundle for a member (kirim lewat flashdisk): every change of the
    /// consortia you share that its node has not acknowledged.
    Export {
        /// The member: its code, fingerprint or key.
        #[arg(long = "for")]
        to: String,
        /// The file to write (on the flash disk).
        #[arg(long)]
        out: PathBuf,
    },
    /// Take in a bundle made for this library (terima dari flashdisk). A bundle altered,
    /// cut short, taken in before or from a library that is not a member applies
    /// nothing and says why.
    Import {
        /// The bundle file.
        file: PathBuf,
        /// Only say what it holds; apply nothing.
        #[arg(long)]
        preview: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The bundles made for and taken from each member.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn who(name: &Option<String>, key: &str) -> String {
    name.clone()
        .unwrap_or_else(|| key.chars().take(16).collect())
}

fn print_report(report: &BundleReport) {
    println!(
        "Bundle {} from {} for {}, made {}",
        report.number,
        who(&report.from_name, &report.from),
        who(&report.to_name, &report.to),
        format_time(report.made_ms)
    );
    for part in &report.documents {
        let name = who(&part.name, &part.consortium);
        if report.applied {
            println!(
                "  consortium {name}: {} document(s), {} new",
                part.documents, part.new
            );
        } else {
            println!("  consortium {name}: {} document(s)", part.documents);
        }
        for why in &part.refused {
            println!("    refused: {why}");
        }
    }
    for part in &report.catalogs {
        let name = who(&part.name, &part.library);
        if report.applied {
            println!(
                "  catalog {name}: {} change(s), {} new",
                part.changes, part.new
            );
        } else {
            println!(
                "  catalog {name}: {} change(s), {} bytes",
                part.changes, part.bytes
            );
        }
        for why in &part.refused {
            println!("    refused: {why}");
        }
    }
    if report.ill_messages > 0 {
        println!(
            "  interlibrary loan: {} message(s){}",
            report.ill_messages,
            if report.applied {
                format!(", {} taken", report.ill_taken)
            } else {
                String::new()
            }
        );
        for why in &report.ill_refused {
            println!("    refused: {why}");
        }
    }
    if let Some(warning) = &report.clock_warning {
        println!("  clock: {warning}");
    }
    if report.documents.is_empty() && report.catalogs.is_empty() && report.ill_messages == 0 {
        println!("  nothing new: the other library had everything");
    }
}

pub fn run(backend: Backend, action: BundleAction) -> anyhow::Result<ExitCode> {
    match action {
        BundleAction::Export { to, out } => {
            match backend.bundle_export(&to, &out)? {
                Some(report) => {
                    print_report(&report);
                    eprintln!(
                        "Wrote {} ({} bytes, {} before compression).",
                        out.display(),
                        report.file_bytes,
                        report.raw_bytes
                    );
                }
                None => eprintln!(
                    "Wrote {} ({} bytes), made by the running node.",
                    out.display(),
                    std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0)
                ),
            }
            eprintln!("Take it to {to} and run there: jalin bundle import FILE");
        }
        BundleAction::Import {
            file,
            preview,
            json,
        } => {
            let report = backend.bundle_import(&file, preview)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_report(&report);
                if preview {
                    eprintln!("Nothing applied (--preview).");
                } else {
                    eprintln!(
                        "Taken in: {} new change(s), {} new document(s).",
                        report.new_changes(),
                        report.new_documents()
                    );
                }
            }
        }
        BundleAction::List { json } => {
            let list = backend.bundle_list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for exchange in list {
                    println!(
                        "{}: {} made for it; last taken from it: {}",
                        who(&exchange.name, &exchange.library),
                        exchange.made,
                        match exchange.taken_made_ms {
                            Some(ms) =>
                                format!("number {}, made {}", exchange.taken, format_time(ms)),
                            None => "none".into(),
                        }
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
