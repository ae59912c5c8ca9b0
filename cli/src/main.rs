//! `jalin`: the command line of a Jalin node.
//!
//! Commands that read or change a library's catalog talk to its running node through the
//! HTTP API when one runs for the data dir (its address is in `node.json`), and open the
//! catalog themselves when none does. Exit codes: 0 done, 1 done but with damaged input
//! or nothing found, 2 failed.

mod backend;
mod bundle;
mod demo;
mod evaluation;
mod harvest;
mod ill;
mod plans;
mod profile;
mod staff;
mod survey;

// The allocator. On Linux with glibc, glibc's, held to few arenas ([`limit_arenas`]);
// elsewhere (Windows) mimalloc. Freed memory both keep for the thread that freed it: a
// node taking four catalogs at once, its live heap at ~380 MB, was at ~900 MB resident
// under mimalloc, ~400 MB under glibc with one arena (BENCHMARKS.md, issue 19).
// (`--features system-allocator`: the system's allocator as it comes, for heap profilers
// such as heaptrack.)
#[cfg(not(any(
    feature = "system-allocator",
    all(target_os = "linux", target_env = "gnu")
)))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Arenas glibc's allocator may use: by default it gives each thread that allocates
/// while another does an arena of its own, up to eight a core, and memory freed in one
/// serves only that arena. One: a node taking four catalogs held ~400 MB with one,
/// ~530 MB with two; an import is slower by a fifth (BENCHMARKS.md).
#[cfg(all(
    target_os = "linux",
    target_env = "gnu",
    not(feature = "system-allocator")
))]
const MALLOC_ARENAS: libc::c_int = 1;
/// The size from which glibc maps an allocation on its own (see [`limit_arenas`]).
#[cfg(all(
    target_os = "linux",
    target_env = "gnu",
    not(feature = "system-allocator")
))]
const MALLOC_MMAP_BYTES: libc::c_int = 256 << 10;

/// Holds glibc's allocator to [`MALLOC_ARENAS`] arenas, before any other thread starts,
/// and starts a thread that gives freed memory back every [`MALLOC_TRIM_EVERY_S`].
#[cfg(all(
    target_os = "linux",
    target_env = "gnu",
    not(feature = "system-allocator")
))]
#[allow(unsafe_code)]
fn limit_arenas() {
    // SAFETY: `mallopt` sets one of the allocator's tunables and touches no Rust
    // memory; called at the start of `main`, while this is the only thread.
    let set = unsafe { libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS) };
    if set != 1 {
        tracing::warn!("glibc did not take M_ARENA_MAX: the allocator keeps its arenas");
    }
    // A piece of [`MALLOC_MMAP_BYTES`] or more (a sync answer, a shard document, sled's
    // write buffers) is mapped on its own and unmapped when freed. glibc's default
    // starts there too but raises the bar up to 32 MB each time such a piece is freed,
    // after which they come from the heap, where what is freed between them stays.
    // SAFETY: as above.
    let set = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MALLOC_MMAP_BYTES) };
    if set != 1 {
        tracing::warn!("glibc did not take M_MMAP_THRESHOLD");
    }
    // glibc gives back on its own only what is free at the top of its heap; what a large
    // piece of work freed below that (a sync's answers, a report, the store's recovery
    // as it opens) stays resident until `malloc_trim` returns its pages: a node restarted
    // on 250,000 records held ~350 MB so, against ~100 MB under mimalloc.
    let spawned = std::thread::Builder::new()
        .name("malloc-trim".into())
        .spawn(|| loop {
            std::thread::sleep(std::time::Duration::from_secs(MALLOC_TRIM_EVERY_S));
            // SAFETY: `malloc_trim` returns free pages of the allocator's heap to the
            // system; it takes the arena's lock and touches no memory in use.
            unsafe { libc::malloc_trim(0) };
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "could not start the thread that returns freed memory");
    }
}

/// How often freed memory is given back to the system (a walk over glibc's free chunks,
/// a few milliseconds under its lock).
#[cfg(all(
    target_os = "linux",
    target_env = "gnu",
    not(feature = "system-allocator")
))]
const MALLOC_TRIM_EVERY_S: u64 = 5;

use anyhow::{bail, Context};
use backend::Backend;
use clap::{Parser, Subcommand};
use jalin_node::config::DataDir;
use jalin_node::consortium_requests::{Answer, Request};
use jalin_node::files;
use jalin_node::joining::Joined;
use jalin_node::library::ImportOptions;
use jalin_protocol::consortium::log::Role;
use jalin_protocol::format::Format;
use jalin_protocol::marc::Charset;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "jalin",
    version,
    about = "Jalin: a peer-to-peer union catalog for library partnerships",
    after_help = "Exit codes: 0 done; 1 done, but part of the input was refused (damaged \
                  records, a rejected document, an invalid signature: each is listed); \
                  2 nothing done (an error, said on stderr, or a wrong command line)."
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
        /// libp2p listen address (default from the config: /ip4/0.0.0.0/tcp/0).
        #[arg(long)]
        p2p_listen: Option<String>,
        /// Allow an HTTP address other machines reach (`--listen 0.0.0.0:8080`): they are
        /// then served the search, OAI-PMH, SRU and the librarian login.
        #[arg(long)]
        expose: bool,
    },
    /// How current each member's catalog is here: records, digest, last change received,
    /// last seen, and the sync traffic of the running node.
    Sync {
        #[command(subcommand)]
        action: SyncAction,
    },
    /// The running node's network: its addresses and connected members; --dial connects
    /// to a member's address (as `jalin start` prints it).
    Peers {
        /// A member's address: /ip4/192.168.1.20/tcp/4001/p2p/12D3KooW...
        #[arg(long)]
        dial: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Import records (MARC, MARCXML, CSV, SLiMS CSV) into this library's catalog, from a
    /// file or harvested from the library's own system over OAI-PMH (--oai-pmh URL).
    Import {
        /// The file.
        #[arg(required_unless_present = "oai_pmh", conflicts_with = "oai_pmh")]
        file: Option<PathBuf>,
        /// Harvest from this OAI-PMH base URL instead (SLiMS oai2.php, Koha, DSpace,
        /// another Jalin node's /oai): incremental from the last harvest, deletions applied.
        #[arg(long, value_name = "URL")]
        oai_pmh: Option<String>,
        /// With --oai-pmh: only this set.
        #[arg(long, requires = "oai_pmh")]
        set: Option<String>,
        /// With --oai-pmh: harvest from this date (YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ),
        /// not from the last harvest.
        #[arg(long, requires = "oai_pmh")]
        from: Option<String>,
        /// With --oai-pmh: keep harvesting, this long apart (6h, 1d; 90s, 30m), from the
        /// last harvest each time; a failed round is reported and the next one tried.
        #[arg(long, requires = "oai_pmh", value_parser = parse_duration)]
        every: Option<u64>,
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
    /// Run a relay for the consortium on a machine every member can reach (a server with
    /// a public address): members behind NAT listen through it, and are reached through
    /// it. Uses the data dir's key, so its address stays the same across restarts.
    Relay {
        /// Where to listen.
        #[arg(long, default_value = "/ip4/0.0.0.0/tcp/4001")]
        listen: String,
        /// Serve only the members of the consortium in this file (`jalin consortium export`).
        #[arg(long, conflicts_with = "open")]
        members: Option<PathBuf>,
        /// Serve anyone instead, under libp2p's limits for a public relay (a circuit
        /// carries 128 KiB for 2 minutes: enough to punch a hole, not to sync).
        #[arg(long)]
        open: bool,
    },
    /// A demo consortium: three libraries in ./jalin-demo, each with part of a real sample,
    /// joined by invites, converging over libp2p on this machine; prints union searches.
    Demo {
        /// Address for the HTTP API.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
    /// A consortium: found one, list members, accept, remove, move documents by hand.
    Consortium {
        #[command(subcommand)]
        action: ConsortiumAction,
    },
    /// Invites to this library's consortium.
    Invite {
        #[command(subcommand)]
        action: InviteAction,
    },
    /// Join a consortium with a ticket or an invitation (the text, or a file holding it).
    /// An invitation carries the agreement the consortium proposes: it is printed, and
    /// the library joins only with --agree.
    Join {
        /// The ticket or invitation.
        #[arg(required_unless_present = "code")]
        ticket: Option<String>,
        /// Join with a code read over the phone instead ("47-kopi-sawah-merak"): the
        /// inviter's node is found on the local network or through a relay, and the
        /// words prove this library was given the code (one try).
        #[arg(long, conflicts_with = "ticket")]
        code: Option<String>,
        /// A relay to look for the inviter's node through (its address with /p2p/),
        /// besides those in config.toml's `[network] relays`.
        #[arg(long)]
        relay: Vec<String>,
        /// Agree to the agreement an invitation carries, and join.
        #[arg(long)]
        agree: bool,
        /// Write the acceptance to this file (to send back by hand) instead of printing it.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Do not reach the inviter's node over the network (the ticket's addresses); only
        /// make the acceptance, to send back by hand.
        #[arg(long)]
        offline: bool,
    },
    /// The consortium's written agreement: template, draft, amend, sign, show, export,
    /// verify.
    Agreement {
        #[command(subcommand)]
        action: AgreementAction,
    },
    /// Interlibrary loan (silang layanan) between members: request, answer, ship,
    /// receive, renew, return, check in.
    Ill {
        #[command(subcommand)]
        action: ill::IllAction,
    },
    /// The collections together: overlap and uniqueness over the union catalog.
    Collection {
        #[command(subcommand)]
        action: CollectionAction,
    },
    /// Sync by flash disk: export a bundle for a member, import one made for this library,
    /// list the bundles exchanged.
    Bundle {
        #[command(subcommand)]
        action: bundle::BundleAction,
    },
    /// This library's profile (profil perpustakaan), shared before any partnership as one
    /// line of text or a QR code: show, set, export, import, forget.
    Profile {
        #[command(subcommand)]
        action: profile::ProfileAction,
    },
    /// Candidate partners: the libraries whose profiles are here, each with the share of
    /// its titles this library lacks, by division, the distance and what it offers.
    Partners {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The periodic evaluation (evaluasi berkala): report, figures, sign.
    Evaluation {
        #[command(subcommand)]
        action: evaluation::EvaluationAction,
    },
    /// Trainings with the partners (pengembangan SDM): add, list, signup, held, cancel.
    Training {
        #[command(subcommand)]
        action: staff::TrainingAction,
    },
    /// Who in each partner library can help with what: set, list.
    Skills {
        #[command(subcommand)]
        action: staff::SkillsAction,
    },
    /// Ask the partners for help, and answer them: ask, answer, list.
    Support {
        #[command(subcommand)]
        action: staff::SupportAction,
    },
    /// Purchase plans (rencana pengadaan), shared with partners under an agreement with
    /// coordinated acquisition: add, import, list, remove.
    Plan {
        #[command(subcommand)]
        action: plans::PlanAction,
    },
    /// Who the patrons are: a questionnaire (angket) filled in on the search pages, on
    /// paper or in a spreadsheet: create, import, report.
    Survey {
        #[command(subcommand)]
        action: survey::SurveyAction,
    },
    /// What patrons look for: the OPAC's searches and their book suggestions, kept on
    /// this node only.
    Needs {
        #[command(subcommand)]
        action: NeedsAction,
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
enum ConsortiumAction {
    /// Found a consortium, with this library as its first admin.
    Create {
        /// Its name ("Jaringan Perpustakaan Desa Kecamatan Kemiri").
        #[arg(long)]
        name: String,
    },
    /// The consortia this node holds.
    List,
    /// Members, roles, who added them and when.
    Members {
        /// The consortium (the start of its id; default: the only one).
        #[arg(long)]
        consortium: Option<String>,
        /// Print JSON (with what became of every operation).
        #[arg(long)]
        json: bool,
    },
    /// Add the library whose acceptance (from `jalin join --out`) is in FILE.
    Accept {
        /// The acceptance file.
        file: PathBuf,
    },
    /// Take in a consortium's documents (from `jalin consortium export`).
    Import {
        /// The file.
        file: PathBuf,
    },
    /// Write every document of the consortium to FILE, for the other members.
    Export {
        /// The file.
        file: PathBuf,
        /// The consortium.
        #[arg(long)]
        consortium: Option<String>,
    },
    /// Remove a member (admins only).
    Remove {
        /// Its code, fingerprint or key.
        member: String,
        /// Why, for the record.
        #[arg(long, default_value = "")]
        reason: String,
        /// The consortium.
        #[arg(long)]
        consortium: Option<String>,
    },
    /// Change a member's role (admins only).
    Role {
        /// Its code, fingerprint or key.
        member: String,
        /// member or admin.
        role: Role,
        /// The consortium.
        #[arg(long)]
        consortium: Option<String>,
    },
    /// Leave the consortium.
    Leave {
        /// The consortium.
        #[arg(long)]
        consortium: Option<String>,
    },
    /// Tell the union catalog that two records of two libraries are the same book (or,
    /// with --not, that they are not): every member's search follows it.
    Same {
        /// One record, as LIBRARY:RECORD-ID (the library by its code or key), as `jalin
        /// search` shows its holdings.
        a: String,
        /// The other record, of another library.
        b: String,
        /// They are not the same book (undo a wrong grouping).
        #[arg(long)]
        not: bool,
        /// The consortium.
        #[arg(long)]
        consortium: Option<String>,
    },
}

#[derive(Subcommand)]
enum SyncAction {
    /// Every catalog held here and how current it is.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum InviteAction {
    /// Make a ticket that lets one library join (admins only).
    Create {
        /// The role it gives: member or admin.
        #[arg(long, default_value = "member")]
        role: Role,
        /// How long it is valid: 30m, 12h, 7d, 2w.
        #[arg(long, default_value = "7d", value_parser = parse_duration)]
        expires: u64,
        /// A note for your records ("for the library of SDN 2 Kemiri").
        #[arg(long, default_value = "")]
        note: String,
        /// Also write the ticket as a QR code: FILE.png or FILE.svg.
        #[arg(long)]
        qr: Option<PathBuf>,
        /// Also write an invitation to FILE: the ticket with the agreement the consortium
        /// proposes, for the library to read before it joins (`jalin join FILE`).
        #[arg(long, value_name = "FILE")]
        invitation: Option<PathBuf>,
        /// The consortium.
        #[arg(long)]
        consortium: Option<String>,
        /// Also give a join code to read over the phone (a number and three words, one
        /// try, valid for an hour at most), held by the running node.
        #[arg(long)]
        code: bool,
    },
}

#[derive(Subcommand)]
enum AgreementAction {
    /// Print a complete agreement file to start from: every term with its default,
    /// explained in Indonesian.
    Template {
        /// Write it to this file instead.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Draft an agreement from FILE: terms between "+++" lines (TOML), then Markdown.
    Draft {
        /// The file.
        file: PathBuf,
        /// The consortium.
        #[arg(long)]
        consortium: Option<String>,
    },
    /// Write a new version of agreement ID from FILE.
    Amend {
        /// The agreement (the start of its id).
        id: String,
        /// The file.
        file: PathBuf,
        /// The consortium.
        #[arg(long)]
        consortium: Option<String>,
    },
    /// Sign the newest version of agreement ID (or --version).
    Sign {
        /// The agreement (default: the only one).
        id: Option<String>,
        /// A version (the start of its id).
        #[arg(long)]
        version: Option<String>,
        /// The consortium.
        #[arg(long)]
        consortium: Option<String>,
    },
    /// An agreement's text, terms, who signed which version, in force or not.
    Show {
        /// The agreement (default: the only one).
        id: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// The consortium.
        #[arg(long)]
        consortium: Option<String>,
    },
    /// Write a printable HTML page of the agreement with its signature table; it carries
    /// the signed documents, so `jalin agreement verify` checks it offline.
    Export {
        /// The agreement (default: the only one).
        id: Option<String>,
        /// The HTML file.
        #[arg(long)]
        out: PathBuf,
        /// The consortium.
        #[arg(long)]
        consortium: Option<String>,
    },
    /// Check an exported agreement, by itself (no node, no network).
    Verify {
        /// The HTML file.
        file: PathBuf,
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

/// `jalin import --oai-pmh`: once, or every `every` seconds (a failed run is reported and
/// the next one tried).
fn harvest_command(
    data: DataDir,
    options: &harvest::Options,
    every: Option<u64>,
) -> anyhow::Result<ExitCode> {
    let data_path = data.path.clone();
    let mut fetch = harvest::http_fetch(&options.url)?;
    loop {
        // Connected afresh each round, and let go while waiting: a node started meanwhile
        // takes the catalog, and the next round goes through it.
        let result = Backend::connect(data.clone())
            .and_then(|backend| harvest::harvest_once(&mut fetch, &backend, &data_path, options));
        match &result {
            Ok(report) => {
                println!(
                    "{}: {} page(s), {} read, {} added, {} updated, {} unchanged, {} deleted, {} rejected{}",
                    options.url,
                    report.pages,
                    report.read,
                    report.added,
                    report.updated,
                    report.unchanged,
                    report.deleted,
                    report.rejected.len(),
                    if report.restarts > 0 {
                        format!(
                            " (the provider refused a resumption token {} time(s): the list was asked again and {} record(s) already taken skipped)",
                            report.restarts, report.skipped
                        )
                    } else {
                        String::new()
                    }
                );
                for rejected in report.rejected.iter().take(10) {
                    println!("  rejected {rejected}");
                }
                if let Some(next) = &report.next_from {
                    println!("The next harvest asks for changes from {next}.");
                }
            }
            Err(error) => eprintln!("Harvesting {} failed: {}", options.url, describe(error)),
        }
        let Some(seconds) = every else {
            return match result {
                Ok(report) if report.rejected.is_empty() => Ok(ExitCode::SUCCESS),
                Ok(_) => Ok(ExitCode::from(1)),
                Err(e) => Err(e),
            };
        };
        std::thread::sleep(std::time::Duration::from_secs(seconds.max(1)));
    }
}

fn parse_duration(text: &str) -> Result<u64, String> {
    jalin_node::consortium_requests::parse_duration(text)
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// The agreement an invitation carries, for the invited library to read.
fn print_proposed(proposed: &jalin_protocol::consortium::agreement::Proposed) {
    let t = &proposed.terms;
    let yes = |b: bool| if b { "yes" } else { "no" };
    println!(
        "The consortium {:?} ({} member(s): {}) proposes this agreement:",
        proposed.consortium_name,
        proposed.members.len(),
        proposed.members.join(", ")
    );
    println!(
        "\n  {}  [{}; signed by {}]",
        proposed.title.replace(|c: char| c.is_control(), " "),
        if proposed.in_force {
            "in force"
        } else {
            "not in force yet"
        },
        if proposed.signed_by.is_empty() {
            "no one yet".to_string()
        } else {
            proposed.signed_by.join(", ")
        }
    );
    println!(
        "  union catalog {}, interlibrary loan {}, coordinated acquisition {}, staff \
         development {}, patrons' needs shared {}",
        yes(t.union_catalog),
        yes(t.interlibrary_loan),
        yes(t.coordinated_acquisition),
        yes(t.staff_development),
        yes(t.share_needs)
    );
    println!(
        "  loan period {} days, lender answers within {} days, evaluation every {} months",
        t.loan_period_days, t.answer_within_days, t.evaluation_period_months
    );
    // Written by a member: no terminal control sequences reach the screen.
    let text: String = proposed
        .text
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect();
    println!("\n{text}");
}

fn write_text(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Runs a consortium request here or in the running node; prints its message.
fn consortium(cli_dir: Option<PathBuf>, request: Request) -> anyhow::Result<Answer> {
    let data = open_data(&data_dir(cli_dir)?)?;
    let answer = Backend::connect(data)?.consortium(request)?;
    Ok(answer)
}

fn print_answer(answer: &Answer, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&answer.data).context("writing JSON")?
        );
    } else {
        println!("{}", answer.message.trim_end());
    }
    Ok(if answer.partly_refused {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// A ticket (or a profile) as a QR code: in the terminal when `terminal` and stdout is
/// one, and as PNG or SVG when asked.
pub(crate) fn show_qr(text: &str, file: Option<&Path>, terminal: bool) -> anyhow::Result<()> {
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .context("the text does not fit in a QR code")?;
    if terminal && std::io::stdout().is_terminal() {
        let image = code
            .render::<qrcode::render::unicode::Dense1x2>()
            .quiet_zone(true)
            .build();
        println!("{image}");
    }
    let Some(file) = file else { return Ok(()) };
    let name = file.to_string_lossy().to_lowercase();
    if name.ends_with(".svg") {
        let svg = code
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(400, 400)
            .build();
        write_text(file, &svg)?;
    } else if name.ends_with(".png") {
        // 8 pixels a module, 4 modules of quiet zone: prints cleanly at any size.
        let scale = 8usize;
        let quiet = 4usize;
        let modules = code.width();
        let side = (modules + 2 * quiet) * scale;
        let colors = code.to_colors();
        let mut pixels = vec![255u8; side * side];
        for (i, color) in colors.iter().enumerate() {
            if *color == qrcode::Color::Dark {
                let (mx, my) = (i % modules + quiet, i / modules + quiet);
                for y in my * scale..(my + 1) * scale {
                    pixels[y * side + mx * scale..y * side + (mx + 1) * scale].fill(0);
                }
            }
        }
        let out =
            std::fs::File::create(file).with_context(|| format!("creating {}", file.display()))?;
        let side = u32::try_from(side).context("QR code too large")?;
        let mut encoder = png::Encoder::new(std::io::BufWriter::new(out), side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        encoder
            .write_header()
            .and_then(|mut writer| writer.write_image_data(&pixels))
            .with_context(|| format!("writing {}", file.display()))?;
    } else {
        bail!("--qr writes FILE.png or FILE.svg, not {}", file.display());
    }
    eprintln!("QR code written to {}", file.display());
    Ok(())
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

/// Says how a join went, and where the acceptance is when it is to go by hand.
fn report_join(joined: Joined, out: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let (acceptance, failed) = match joined {
        Joined::Proposed { invitation } => {
            // The code is spent: the invitation it opened is kept to join with later.
            if let Ok(Some(proposed)) =
                jalin_protocol::consortium::invitation::read(&invitation).map(|i| i.agreement)
            {
                print_proposed(&proposed);
            }
            let file = out.unwrap_or_else(|| PathBuf::from("undangan.txt"));
            write_text(&file, &invitation)?;
            eprintln!(
                "\nThe code opened an invitation with the agreement above, written to {}. Read the \
                 agreement; to join under it, run: jalin join {} --agree",
                file.display(),
                file.display()
            );
            return Ok(ExitCode::from(3));
        }
        Joined::OverNetwork {
            consortium_name,
            inviter_name,
            report,
        } => {
            eprintln!("{}", report.message);
            println!(
                "Joined {consortium_name:?}: {inviter_name} accepted this library over the network."
            );
            return Ok(ExitCode::SUCCESS);
        }
        Joined::ByHand {
            acceptance,
            message,
            failure: None,
        } => {
            eprintln!("{message}");
            (acceptance, false)
        }
        Joined::ByHand {
            acceptance,
            failure: Some(error),
            ..
        } => {
            eprintln!(
                "Could not join over the network: {error}\nThe acceptance (to send back by hand, if the invite is still open):"
            );
            (acceptance, true)
        }
    };
    match out {
        Some(file) => {
            write_text(&file, &format!("{acceptance}\n"))?;
            eprintln!("The acceptance is in {}", file.display());
        }
        None => println!("{acceptance}"),
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// A join code read, and where to look for its node: the local network (where
/// `[partners]` announces to) and the relays given and configured.
fn code_search(
    cli_dir: Option<PathBuf>,
    code: &str,
    relays: &[String],
) -> anyhow::Result<(
    jalin_node::join_code::JoinCode,
    Vec<std::net::SocketAddr>,
    Vec<libp2p::Multiaddr>,
)> {
    let code = jalin_node::join_code::JoinCode::parse(code)?;
    let data = open_data(&data_dir(cli_dir)?)?;
    let lan = data
        .config
        .partners
        .announce_to
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect();
    let relays = relays
        .iter()
        .chain(&data.config.network.relays)
        .map(|a| {
            a.parse::<libp2p::Multiaddr>()
                .map_err(|e| anyhow::anyhow!("relay address {a:?}: {e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((code, lan, relays))
}

/// The data directory: `--data-dir`, `JALIN_DATA_DIR`, else the platform's.
fn data_dir(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = given {
        return Ok(dir);
    }
    let dirs = directories::ProjectDirs::from("org", "Jalin", "jalin")
        .context("no home directory to keep the data in; pass --data-dir")?;
    // Local, not roaming, on Windows (`%LOCALAPPDATA%\Jalin\jalin\data`): a catalog is
    // no part of a profile to copy from PC to PC. The same directory elsewhere.
    Ok(dirs.data_local_dir().to_path_buf())
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
            // Some records left out: say so in the exit code too.
            Ok(
                if conversion.rejected.is_empty() && conversion.unwritable.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                },
            )
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
        Command::Start {
            listen,
            p2p_listen,
            expose,
        } => {
            let mut data = open_data(&data_dir(cli.data_dir)?)?;
            data.config.http.expose |= expose;
            backend::run_node(data, listen, p2p_listen, None)
        }
        Command::Sync {
            action: SyncAction::Status { json },
        } => {
            let data = open_data(&data_dir(cli.data_dir)?)?;
            Backend::connect(data)?.sync_status(json)
        }
        Command::Peers { dial, json } => {
            let data = open_data(&data_dir(cli.data_dir)?)?;
            Backend::connect(data)?.peers(dial, json)
        }
        Command::Demo { listen } => demo::run(&listen),
        Command::Relay {
            listen,
            members,
            open,
        } => {
            let data = open_data(&data_dir(cli.data_dir)?)?;
            let access = match (members, open) {
                (Some(file), _) => jalin_node::relay::Access::Members(
                    jalin_node::relay::members_of_documents(&read_text(&file)?)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?,
                ),
                (None, true) => jalin_node::relay::Access::Open,
                (None, false) => bail!(
                    "a relay without --members would carry anyone's traffic: give \
                     --members FILE (the consortium's documents, `jalin consortium export`), \
                     or --open to mean it"
                ),
            };
            let listen: libp2p::Multiaddr = listen
                .parse()
                .with_context(|| format!("{listen:?} is not a libp2p listen address"))?;
            backend::relay(&data.key, listen, access)
        }
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
            oai_pmh,
            set,
            from,
            every,
            format,
            charset,
            delete_missing,
            strict,
            report,
        } => {
            let data = open_data(&data_dir(cli.data_dir)?)?;
            if let Some(url) = oai_pmh {
                let options = harvest::Options { url, set, from };
                return harvest_command(data, &options, every);
            }
            let Some(file) = file else {
                bail!("give a file to import, or --oai-pmh URL");
            };
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
        Command::Consortium { action } => {
            let (request, json, out) = match action {
                ConsortiumAction::Create { name } => (Request::Create { name }, false, None),
                ConsortiumAction::List => (Request::List, false, None),
                ConsortiumAction::Members { consortium, json } => {
                    (Request::Members { consortium }, json, None)
                }
                ConsortiumAction::Accept { file } => (
                    Request::Accept {
                        acceptance: read_text(&file)?,
                    },
                    false,
                    None,
                ),
                ConsortiumAction::Import { file } => (
                    Request::Import {
                        text: read_text(&file)?,
                    },
                    false,
                    None,
                ),
                ConsortiumAction::Export { file, consortium } => {
                    (Request::Export { consortium }, false, Some(file))
                }
                ConsortiumAction::Remove {
                    member,
                    reason,
                    consortium,
                } => (
                    Request::Remove {
                        consortium,
                        member,
                        reason,
                    },
                    false,
                    None,
                ),
                ConsortiumAction::Role {
                    member,
                    role,
                    consortium,
                } => (
                    Request::Role {
                        consortium,
                        member,
                        role,
                    },
                    false,
                    None,
                ),
                ConsortiumAction::Leave { consortium } => {
                    (Request::Leave { consortium }, false, None)
                }
                ConsortiumAction::Same {
                    a,
                    b,
                    not,
                    consortium,
                } => (
                    Request::Same {
                        consortium,
                        a,
                        b,
                        same: !not,
                    },
                    false,
                    None,
                ),
            };
            let answer = consortium(cli.data_dir, request)?;
            if let (Some(file), Some(text)) = (&out, &answer.text) {
                write_text(file, text)?;
                eprintln!("Written to {}", file.display());
            }
            print_answer(&answer, json)
        }
        Command::Invite {
            action:
                InviteAction::Create {
                    role,
                    expires,
                    note,
                    qr,
                    invitation,
                    consortium: which,
                    code,
                },
        } => {
            let request = Request::Invite {
                consortium: which,
                role,
                expires_s: expires,
                note,
                with_agreement: invitation.is_some(),
                code,
            };
            let answer = consortium(cli.data_dir, request)?;
            let ticket = answer.text.clone().unwrap_or_default();
            eprintln!("{}", answer.message);
            if let (Some(file), Some(text)) = (&invitation, answer.data["invitation"].as_str()) {
                write_text(file, text)?;
                eprintln!(
                    "invitation (the ticket and the agreement proposed) written to {}",
                    file.display()
                );
            }
            println!("{ticket}");
            if let Some(code) = answer.data["code"].as_str() {
                println!("{code}");
            }
            show_qr(&ticket, qr.as_deref(), true)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Join {
            ticket,
            code,
            relay,
            agree,
            out,
            offline,
        } => {
            let data_dir = cli.data_dir.clone();
            // The CLI's requests block (the running node's API, or the store in process):
            // off the runtime's thread.
            let run = |request| {
                let data_dir = data_dir.clone();
                async move {
                    tokio::task::spawn_blocking(move || consortium(data_dir, request))
                        .await
                        .context("the consortium request stopped")?
                }
            };
            let reaching = |invite: &jalin_protocol::consortium::log::Invite| {
                eprintln!(
                    "Reaching {}'s node to join {:?}...",
                    invite.inviter_name, invite.consortium_name
                );
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?;
            let ticket = match (ticket, code) {
                (Some(ticket), _) => ticket,
                (None, Some(code)) => {
                    let (code, lan, relays) = code_search(cli.data_dir.clone(), &code, &relay)?;
                    eprintln!("Looking for the node with code {} open...", code.nameplate);
                    let joined = runtime.block_on(jalin_node::joining::join_with_code(
                        &code, &lan, &relays, agree, reaching, run,
                    ))??;
                    return report_join(joined, out);
                }
                (None, None) => anyhow::bail!("give a ticket, or --code"),
            };
            let path = Path::new(&ticket);
            let text =
                if !ticket.trim_start().to_uppercase().starts_with("JALIN-") && path.is_file() {
                    read_text(path)?
                } else {
                    ticket
                };
            let invitation = jalin_protocol::consortium::invitation::read(&text)
                .map_err(|e| anyhow::anyhow!("the ticket or invitation is refused: {e}"))?;
            if let Some(proposed) = &invitation.agreement {
                print_proposed(proposed);
                if !agree {
                    eprintln!(
                        "\nRead the agreement above. To join {:?} under it, run again with --agree.",
                        proposed.consortium_name
                    );
                    return Ok(ExitCode::from(3));
                }
            }
            let ticket = invitation.ticket;
            let joined = runtime.block_on(jalin_node::joining::join_with_ticket(
                &ticket, offline, reaching, run,
            ))?;
            report_join(joined, out)
        }
        Command::Agreement {
            action: AgreementAction::Template { out },
        } => ill::template(out),
        Command::Ill { action } => {
            let data = open_data(&data_dir(cli.data_dir)?)?;
            ill::run(Backend::connect(data)?, action)
        }
        Command::Collection {
            action:
                CollectionAction::Report {
                    library,
                    by,
                    csv,
                    json,
                },
        } => {
            let data = open_data(&data_dir(cli.data_dir)?)?;
            collection_report(Backend::connect(data)?, library, by, csv, json)
        }
        Command::Collection {
            action: CollectionAction::Conspectus { levels, json },
        } => {
            let data = open_data(&data_dir(cli.data_dir)?)?;
            conspectus(Backend::connect(data)?, levels, json)
        }
        Command::Survey { action } => {
            let data = open_data(&data_dir(cli.data_dir)?)?;
            survey::run(Backend::connect(data)?, action)
        }
        Command::Evaluation { action } => {
            let path = data_dir(cli.data_dir)?;
            let config = open_data(&path)?.config.library;
            let name = format!("{} ({})", config.name, config.code);
            evaluation::run(|| Backend::connect(open_data(&path)?), &name, action)
        }
        Command::Training { action } => {
            let data = open_data(&data_dir(cli.data_dir)?)?;
            staff::training(Backend::connect(data)?, action)
        }
        Command::Skills { action } => {
            let data = open_data(&data_dir(cli.data_dir)?)?;
            staff::skills(Backend::connect(data)?, action)
        }
        Command::Support { action } => {
            let data = open_data(&data_dir(cli.data_dir)?)?;
            staff::support(Backend::connect(data)?, action)
        }
        Command::Bundle { action } => {
            let data = open_data(&data_dir(cli.data_dir)?)?;
            bundle::run(Backend::connect(data)?, action)
        }
        Command::Profile { action } => {
            let data = open_data(&data_dir(cli.data_dir)?)?;
            profile::run(Backend::connect(data)?, action)
        }
        Command::Partners { json } => {
            let data = open_data(&data_dir(cli.data_dir)?)?;
            profile::partners(Backend::connect(data)?, json)
        }
        Command::Plan { action } => {
            let data = open_data(&data_dir(cli.data_dir)?)?;
            plans::run(Backend::connect(data)?, action)
        }
        Command::Needs { action } => {
            let data = open_data(&data_dir(cli.data_dir)?)?;
            needs(Backend::connect(data)?, action)
        }
        Command::Agreement {
            action: AgreementAction::Verify { file },
        } => {
            let html = read_text(&file)?;
            match jalin_protocol::consortium::agreement::verify_html(&html) {
                Ok(verified) => {
                    let in_force = verified.status.in_force.is_some();
                    println!(
                        "{}: every signature is valid and the text is as signed.",
                        file.display()
                    );
                    println!("  consortium: {}", verified.consortium);
                    println!("  agreement:  {}", verified.status.id);
                    println!(
                        "  status:     {}",
                        if in_force { "in force" } else { "not in force" }
                    );
                    for (name, fingerprint) in &verified.signers {
                        println!("  signed by:  {name} ({fingerprint})");
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(error) => {
                    eprintln!("{}: NOT VALID: {error}", file.display());
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Agreement { action } => {
            let (request, json, out) = match action {
                AgreementAction::Draft { file, consortium } => (
                    Request::Draft {
                        consortium,
                        text: read_text(&file)?,
                    },
                    false,
                    None,
                ),
                AgreementAction::Amend {
                    id,
                    file,
                    consortium,
                } => (
                    Request::Amend {
                        consortium,
                        agreement: id,
                        text: read_text(&file)?,
                    },
                    false,
                    None,
                ),
                AgreementAction::Sign {
                    id,
                    version,
                    consortium,
                } => (
                    Request::Sign {
                        consortium,
                        agreement: id,
                        version,
                    },
                    false,
                    None,
                ),
                AgreementAction::Show {
                    id,
                    json,
                    consortium,
                } => (
                    Request::Show {
                        consortium,
                        agreement: id,
                    },
                    json,
                    None,
                ),
                AgreementAction::Export {
                    id,
                    out,
                    consortium,
                } => (
                    Request::ExportAgreement {
                        consortium,
                        agreement: id,
                    },
                    false,
                    Some(out),
                ),
                AgreementAction::Verify { .. } | AgreementAction::Template { .. } => {
                    unreachable!("handled above")
                }
            };
            let answer = consortium(cli.data_dir, request)?;
            if let (Some(file), Some(text)) = (&out, &answer.text) {
                write_text(file, text)?;
                eprintln!("Written to {}", file.display());
            }
            print_answer(&answer, json)
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
    #[cfg(all(
        target_os = "linux",
        target_env = "gnu",
        not(feature = "system-allocator")
    ))]
    limit_arenas();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", describe(&error));
            ExitCode::from(2)
        }
    }
}

/// An error and its causes on one line, each said once: a cause whose words its error
/// already shows (thiserror's `"...: {0}"` with `#[from]`) is not repeated.
pub(crate) fn describe(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
    }
    text
}

/// `jalin needs ...`.
#[derive(Subcommand)]
enum NeedsAction {
    /// The top searches, the searches that found nothing and the suggestions, each with
    /// who holds it in the union catalog (this library, a partner, no one).
    Report {
        /// Only since this day (YYYY-MM-DD).
        #[arg(long)]
        since: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Share now, with partners whose agreement has share_needs, the queries asked by
    /// three visits or more (the node does it once a day by itself).
    Share,
    /// Delete every search and suggestion logged before a day.
    Forget {
        /// The day (YYYY-MM-DD).
        #[arg(long)]
        before: String,
    },
}

fn needs(backend: Backend, action: NeedsAction) -> anyhow::Result<ExitCode> {
    use jalin_node::needs::NeedsRequest;
    let (request, json) = match action {
        NeedsAction::Report { since, json } => (NeedsRequest::Report { since }, json),
        NeedsAction::Forget { before } => (NeedsRequest::Forget { before }, false),
        NeedsAction::Share => (NeedsRequest::Share, false),
    };
    let answer = backend.needs(request)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", answer.message);
    let Some(report) = &answer.report else {
        return Ok(ExitCode::SUCCESS);
    };
    let held = |key: &str| match answer.held.get(key) {
        Some(h) if h.by == "here" => "held here".to_string(),
        Some(h) if h.by == "partner" => format!("held by {}", h.partners.join(", ")),
        Some(_) => "held by no one: a purchase candidate".to_string(),
        None => String::new(),
    };
    for (heading, rows) in [
        ("Searched most:", &report.top),
        ("Searched for and not found:", &report.empty),
    ] {
        println!("{heading}");
        for row in rows {
            println!(
                "  {:>5}x  {:<40} {:>5} found  {}",
                row.count,
                row.query,
                row.hits,
                held(&row.query)
            );
        }
    }
    println!("Suggestions:");
    for s in &report.suggestions {
        println!(
            "  {}  {}{}  {}",
            jalin_protocol::consortium::agreement::format_time(s.at_ms),
            s.title,
            if s.author.is_empty() {
                String::new()
            } else {
                format!(" / {}", s.author)
            },
            held(&jalin_node::needs::suggestion_query(s))
        );
        if !s.why.is_empty() {
            println!("      {}", s.why);
        }
    }
    if !answer.partners.is_empty() {
        println!("Looked for by partners' patrons (3 visits or more):");
        for p in &answer.partners {
            println!(
                "  {:>5} visits  {:<40} {}  {}",
                p.sessions,
                p.query,
                p.library_name,
                held(&p.query)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `jalin collection ...`.
#[derive(Subcommand)]
enum CollectionAction {
    /// Each library's titles held by it alone, with some partners, or by all; with
    /// `--by`, the same by division (class), language or decade; and the union's titles
    /// held once and most duplicated.
    Report {
        /// Only this library (its code, name or key start).
        #[arg(long)]
        library: Option<String>,
        /// class, lang or decade.
        #[arg(long, value_parser = ["class", "lang", "decade"])]
        by: Option<String>,
        /// Print CSV: library, by, value, alone, some, all.
        #[arg(long)]
        csv: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Each member's stated collecting level per division (0-5: now -> committed) beside
    /// its catalog's titles there; `--set` states this library's, signed and shared.
    Conspectus {
        /// A division's levels, `DIVISION=CURRENT/COMMITMENT` (`600=2/3`); repeat for
        /// each division stated (those not named are left unstated).
        #[arg(long = "set", value_parser = jalin_node::conspectus::parse_level)]
        levels: Vec<jalin_protocol::consortium::conspectus::DivisionLevel>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn conspectus(
    backend: Backend,
    levels: Vec<jalin_protocol::consortium::conspectus::DivisionLevel>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use jalin_node::conspectus::ConspectusRequest;
    let request = if levels.is_empty() {
        ConspectusRequest::Show
    } else {
        ConspectusRequest::Set { levels }
    };
    let members = backend.conspectus(request)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&members)?);
        return Ok(ExitCode::SUCCESS);
    }
    for member in &members {
        println!(
            "{}{}",
            member.library_name,
            if member.stated_ms.is_none() {
                " (no levels stated)"
            } else {
                ""
            }
        );
        for d in &member.divisions {
            let name = jalin_protocol::collection::DIVISIONS
                .iter()
                .find(|(c, _, _)| *c == d.division)
                .map_or("", |(_, _, en)| en);
            let stated = match (d.current, d.commitment) {
                (Some(c), Some(k)) => format!("level {c} -> {k}"),
                _ => "not stated".to_string(),
            };
            println!(
                "  {} {:<45} {:<14} {:>7} titles ({}%)",
                d.division, name, stated, d.titles, d.percent
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn collection_report(
    backend: Backend,
    only: Option<String>,
    by: Option<String>,
    csv: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use jalin_protocol::collection::{LibraryOverlap, Share, DIVISIONS};
    let report = backend.collection_overlap()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let label = |l: &LibraryOverlap| {
        l.name
            .clone()
            .unwrap_or_else(|| l.library.chars().take(12).collect())
    };
    let wanted = |l: &LibraryOverlap| {
        only.as_deref().is_none_or(|o| {
            let o = o.to_lowercase();
            l.library.starts_with(&o) || label(l).to_lowercase().contains(&o)
        })
    };
    let libraries: Vec<&LibraryOverlap> = report.libraries.iter().filter(|l| wanted(l)).collect();
    if libraries.is_empty() {
        anyhow::bail!(
            "no library {:?} in the union this node holds",
            only.unwrap_or_default()
        );
    }
    let rows = |l: &LibraryOverlap| -> Vec<(String, Share)> {
        match by.as_deref() {
            Some("class") => l
                .by_division
                .iter()
                .map(|(k, v)| {
                    let name = DIVISIONS
                        .iter()
                        .find(|(code, _, _)| code == k)
                        .map_or("tanpa kelas", |(_, id, _)| id);
                    (format!("{k} {name}"), *v)
                })
                .collect(),
            Some("lang") => l.by_language.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            Some("decade") => l.by_decade.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            _ => vec![("titles".to_string(), l.titles)],
        }
    };
    if csv {
        let mut out = ::csv::Writer::from_writer(std::io::stdout());
        out.write_record(["library", "by", "value", "alone", "some", "all"])?;
        for l in &libraries {
            for (value, share) in rows(l) {
                out.write_record([
                    label(l),
                    by.clone().unwrap_or_else(|| "all".into()),
                    value,
                    share.alone.to_string(),
                    share.some.to_string(),
                    share.all.to_string(),
                ])?;
            }
        }
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} titles in the union of {} libraries: {} held by one library only, {} by all",
        report.titles,
        report.members.len(),
        report.held_once,
        report.held_by_all
    );
    for l in &libraries {
        println!("{}:", label(l));
        println!("  {:<44} {:>7} {:>7} {:>7}", "", "alone", "some", "all");
        for (value, share) in rows(l) {
            println!(
                "  {:<44} {:>7} {:>7} {:>7}",
                value, share.alone, share.some, share.all
            );
        }
    }
    if only.is_none() && !report.most_duplicated.is_empty() {
        println!("Most duplicated:");
        for t in report.most_duplicated.iter().take(10) {
            println!("  {} libraries: {}", t.libraries.len(), t.title);
        }
    }
    Ok(ExitCode::SUCCESS)
}
