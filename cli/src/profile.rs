//! `jalin profile` and `jalin partners`: this library's profile, shared before any
//! partnership, and the candidate partners whose profiles are here.

use crate::backend::Backend;
use anyhow::{bail, Context};
use clap::Subcommand;
use jalin_node::profiles::{DetailsInput, ProfileAnswer, ProfileRequest, ProfileView};
use jalin_protocol::collection::DIVISIONS;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

/// The largest file `profile import` reads.
const FILE_MAX: u64 = 1 << 20;

#[derive(Subcommand)]
pub enum ProfileAction {
    /// This library's profile: what the librarian states and the catalog's figures.
    Show {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change what the profile states (fields left out stay as they are).
    Set {
        /// desa, sekolah, umum, perguruan_tinggi or khusus.
        #[arg(long)]
        kind: Option<String>,
        /// Street address.
        #[arg(long)]
        address: Option<String>,
        /// District (kecamatan, kabupaten/kota).
        #[arg(long)]
        district: Option<String>,
        /// Opening hours ("Senin-Jumat 08.00-15.00").
        #[arg(long)]
        hours: Option<String>,
        /// Telephone or e-mail.
        #[arg(long)]
        contact: Option<String>,
        /// Lends to other libraries: yes or no.
        #[arg(long, value_parser = parse_yes_no)]
        interlibrary_loan: Option<bool>,
        /// Has a reading space: yes or no.
        #[arg(long, value_parser = parse_yes_no)]
        reading_space: Option<bool>,
        /// Has internet for visitors: yes or no.
        #[arg(long, value_parser = parse_yes_no)]
        internet: Option<bool>,
        /// Where the library is: "latitude, longitude" in degrees ("" to clear).
        #[arg(long, allow_hyphen_values = true)]
        coordinates: Option<String>,
    },
    /// The profile's text (one line), to stdout or a file, and as a QR code (PNG or SVG).
    Export {
        /// Write the text here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write the QR code here (FILE.png or FILE.svg).
        #[arg(long)]
        qr: Option<PathBuf>,
    },
    /// Keep another library's profile: a file holding its text, or the text itself.
    /// Refused, saying why, when it was altered.
    Import {
        /// The file, or the text (JALIN-PROFILE:...); `-` reads stdin.
        input: String,
    },
    /// Forget another library's profile.
    Forget {
        /// Its code, fingerprint or key.
        library: String,
    },
}

fn parse_yes_no(text: &str) -> Result<bool, String> {
    match text.trim().to_lowercase().as_str() {
        "yes" | "ya" | "true" | "1" => Ok(true),
        "no" | "tidak" | "false" | "0" => Ok(false),
        _ => Err(format!("{text:?}: yes or no")),
    }
}

fn division_name(code: &str) -> &'static str {
    DIVISIONS
        .iter()
        .find(|(c, _, _)| *c == code)
        .map_or("", |(_, _, english)| english)
}

fn yes_no(yes: bool) -> &'static str {
    if yes {
        "yes"
    } else {
        "no"
    }
}

fn print_profile(view: &ProfileView) {
    println!("{} ({}), {}", view.name, view.code, view.kind);
    println!("  key fingerprint: {}", view.fingerprint);
    for (what, value) in [
        ("address", &view.address),
        ("district", &view.district),
        ("opening hours", &view.hours),
        ("contact", &view.contact),
    ] {
        if !value.is_empty() {
            println!("  {what}: {value}");
        }
    }
    if let Some(c) = &view.coordinates {
        println!("  coordinates: {c}");
    }
    println!(
        "  offers: interlibrary loan {}, reading space {}, internet {}",
        yes_no(view.offers.interlibrary_loan),
        yes_no(view.offers.reading_space),
        yes_no(view.offers.internet)
    );
    println!("  titles: {}", view.titles);
    for (code, titles) in view.divisions.iter().filter(|(_, t)| *t > 0) {
        println!("    {code} {:<45} {titles:>8}", division_name(code));
    }
    if !view.languages.is_empty() {
        let languages: Vec<String> = view
            .languages
            .iter()
            .map(|(l, t)| format!("{l} {t}"))
            .collect();
        println!("  languages: {}", languages.join(", "));
    }
}

fn read_input(input: &str) -> anyhow::Result<String> {
    if input
        .trim_start()
        .to_ascii_uppercase()
        .starts_with("JALIN-")
    {
        return Ok(input.to_string());
    }
    let mut text = String::new();
    if input == "-" {
        std::io::stdin()
            .take(FILE_MAX + 1)
            .read_to_string(&mut text)
            .context("reading stdin")?;
    } else {
        let file = std::fs::File::open(input).with_context(|| format!("opening {input}"))?;
        file.take(FILE_MAX + 1)
            .read_to_string(&mut text)
            .with_context(|| format!("reading {input}: a profile is text"))?;
    }
    if text.len() as u64 > FILE_MAX {
        bail!("{input}: larger than {FILE_MAX} bytes; a profile is about 2,500 characters");
    }
    Ok(text)
}

/// The profiles in a text: one, or one per line when several lines start `JALIN-`.
fn profiles_in(text: &str) -> Vec<String> {
    let labelled: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.to_ascii_uppercase().starts_with("JALIN-"))
        .collect();
    if labelled.len() > 1 {
        labelled.into_iter().map(str::to_string).collect()
    } else {
        vec![text.to_string()]
    }
}

pub fn run(backend: Backend, action: ProfileAction) -> anyhow::Result<ExitCode> {
    match action {
        ProfileAction::Show { json } => {
            let answer = backend.profile(ProfileRequest::Show)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else if let Some(view) = &answer.profile {
                print_profile(view);
                println!("\n{}", answer.text.as_deref().unwrap_or_default());
            }
        }
        ProfileAction::Set {
            kind,
            address,
            district,
            hours,
            contact,
            interlibrary_loan,
            reading_space,
            internet,
            coordinates,
        } => {
            let answer = backend.profile(ProfileRequest::Set {
                details: DetailsInput {
                    kind,
                    address,
                    district,
                    hours,
                    contact,
                    interlibrary_loan,
                    reading_space,
                    internet,
                    coordinates,
                },
            })?;
            println!("{}", answer.message);
            if let Some(view) = &answer.profile {
                print_profile(view);
            }
        }
        ProfileAction::Export { out, qr } => {
            let answer = backend.profile(ProfileRequest::Show)?;
            let text = answer.text.context("the node gave no profile text")?;
            match &out {
                Some(file) => {
                    std::fs::write(file, format!("{text}\n"))
                        .with_context(|| format!("writing {}", file.display()))?;
                    eprintln!("profile written to {}", file.display());
                }
                None => println!("{text}"),
            }
            crate::show_qr(&text, qr.as_deref(), false)?;
        }
        ProfileAction::Import { input } => {
            let text = read_input(&input)?;
            let texts = profiles_in(&text);
            let several = texts.len() > 1;
            let mut failed = false;
            for (n, answer) in backend.profile_imports(texts)?.into_iter().enumerate() {
                match answer {
                    Ok(answer) => println!("{}", answer.message),
                    Err(why) if several => {
                        failed = true;
                        eprintln!("profile {}: {why}", n + 1);
                    }
                    Err(why) => {
                        failed = true;
                        eprintln!("{why}");
                    }
                }
            }
            return Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            });
        }
        ProfileAction::Forget { library } => {
            let answer = backend.profile(ProfileRequest::Forget { library })?;
            println!("{}", answer.message);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn percent(share: f64) -> String {
    format!("{:.0}%", share * 100.0)
}

/// `jalin partners`.
pub fn partners(backend: Backend, json: bool) -> anyhow::Result<ExitCode> {
    let ProfileAnswer {
        message,
        candidates,
        ..
    } = backend.profile(ProfileRequest::Partners)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&candidates)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{message}");
    if candidates.is_empty() {
        println!(
            "Take in other libraries' profiles with `jalin profile import FILE`; give yours \
             with `jalin profile export`."
        );
    }
    for c in &candidates {
        let p = &c.profile;
        println!(
            "\n{} ({}, {}){}",
            p.name,
            p.code,
            p.kind,
            if c.partner { ", already a partner" } else { "" }
        );
        println!("  key fingerprint: {}", p.fingerprint);
        if !p.district.is_empty() {
            println!("  district: {}", p.district);
        }
        if let Some(km) = c.complement.distance_km {
            println!("  distance: {km:.1} km");
        }
        println!(
            "  offers: interlibrary loan {}, reading space {}, internet {}",
            yes_no(p.offers.interlibrary_loan),
            yes_no(p.offers.reading_space),
            yes_no(p.offers.internet)
        );
        println!(
            "  titles: {}; of the {} with a class, about {} ({}) not in this library",
            p.titles,
            c.complement.their_titles,
            c.complement.new_titles,
            percent(c.complement.share_new)
        );
        for d in &c.complement.divisions {
            println!(
                "    {} {:<45} theirs {:>7}  ours {:>7}  lacking here {:>4}{}",
                d.division,
                division_name(&d.division),
                d.their_titles,
                d.our_titles,
                percent(d.share_lacking),
                if d.exact {
                    String::new()
                } else {
                    format!(" (of {} sampled)", d.sampled)
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
