//! Where a command's work happens: in the running node (over its HTTP API) or, when no
//! node runs for the data dir, in this process.

use anyhow::{bail, Context};
use jalin_node::codec::TrafficCounts;
use jalin_node::config::{DataDir, RunningNode};
use jalin_node::consortium_requests::{execute, Answer, Request};
use jalin_node::library::CatalogSync;
use jalin_node::library::{ImportOptions, ImportSummary, Library, Source};
use jalin_node::network::Route;
use jalin_node::node::{Node, NodeOptions};
use jalin_node::search::SearchResults;
use jalin_protocol::consortium::agreement::format_time;
use jalin_protocol::format::Format;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// A running node's API.
pub struct Remote {
    url: String,
    token: String,
    client: reqwest::blocking::Client,
}

/// Where the work happens.
pub enum Backend {
    /// Over HTTP.
    Remote(Remote),
    /// Here.
    Local(Box<Library>),
}

fn check(response: reqwest::blocking::Response) -> anyhow::Result<reqwest::blocking::Response> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let body: serde_json::Value = response.json().unwrap_or_default();
    let message = body["error"].as_str().unwrap_or("no message").to_string();
    bail!("the node answered {status}: {message}")
}

impl Remote {
    /// `POST /api/{path}` with `request` as JSON; the node's JSON answer.
    fn post_json<Req: serde::Serialize, Ans: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        request: &Req,
    ) -> anyhow::Result<Ans> {
        let response = self
            .client
            .post(format!("{}/api/{path}", self.url))
            .bearer_auth(&self.token)
            .json(request)
            .send()?;
        check(response)?.json().context("reading the node's answer")
    }
}

impl Backend {
    /// A request the API takes as JSON at `POST /api/{path}`: there in the running node,
    /// else `local` here.
    fn json_request<Req: serde::Serialize, Ans: serde::de::DeserializeOwned>(
        self,
        path: &str,
        request: Req,
        local: impl FnOnce(&Library, Req) -> Result<Ans, jalin_node::library::LibraryError>,
    ) -> anyhow::Result<Ans> {
        match self {
            Backend::Remote(remote) => remote.post_json(path, &request),
            Backend::Local(library) => Ok(local(&library, request)?),
        }
    }

    /// The running node for this data dir, else the catalog opened here.
    pub fn connect(data: DataDir) -> anyhow::Result<Backend> {
        let node_file = DataDir::node_file(&data.path);
        if let Ok(text) = std::fs::read_to_string(&node_file) {
            if let Ok(running) = serde_json::from_str::<RunningNode>(&text) {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(600))
                    .build()
                    .context("making an HTTP client")?;
                let alive = client
                    .get(format!("{}/api/status", running.url))
                    .timeout(Duration::from_secs(5))
                    .send()
                    .map(|r| r.status().is_success())
                    .unwrap_or(false);
                if alive {
                    return Ok(Backend::Remote(Remote {
                        url: running.url,
                        token: data.api_token.clone(),
                        client,
                    }));
                }
            }
        }
        let library = Library::open(data).context("opening the catalog")?;
        Ok(Backend::Local(Box::new(library)))
    }

    /// The running node's network; with `dial`, connect to that address first.
    pub fn peers(self, dial: Option<String>, json: bool) -> anyhow::Result<ExitCode> {
        let Backend::Remote(remote) = self else {
            bail!("no node runs for this data dir: start it with `jalin start`");
        };
        if let Some(address) = dial {
            let response = remote
                .client
                .post(format!("{}/api/network/dial", remote.url))
                .bearer_auth(&remote.token)
                .json(&serde_json::json!({ "address": address }))
                .send()?;
            check(response)?;
            eprintln!("Dialing {address}");
        }
        let response = remote
            .client
            .get(format!("{}/api/network", remote.url))
            .bearer_auth(&remote.token)
            .send()?;
        let status: serde_json::Value = check(response)?
            .json()
            .context("reading the node's answer")?;
        if json {
            println!("{}", serde_json::to_string_pretty(&status)?);
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "peer id: {}",
            status["peer_id"].as_str().unwrap_or_default()
        );
        for address in status["listen"].as_array().into_iter().flatten() {
            println!("  listening on {}", address.as_str().unwrap_or_default());
        }
        let peers = status["peers"].as_array().cloned().unwrap_or_default();
        println!("{} member(s) connected", peers.len());
        for peer in peers {
            println!(
                "  {}  {}  ({})",
                peer["peer_id"].as_str().unwrap_or_default(),
                peer["library"].as_str().unwrap_or("(unknown)"),
                match peer["route"].as_str() {
                    Some("relay") => "through a relay",
                    _ => "direct",
                }
            );
        }
        Ok(ExitCode::SUCCESS)
    }

    /// Every catalog held and how current it is (from the running node, or the store).
    pub fn sync_status(self, json: bool) -> anyhow::Result<ExitCode> {
        let status: serde_json::Value = match self {
            Backend::Remote(remote) => {
                let response = remote
                    .client
                    .get(format!("{}/api/sync", remote.url))
                    .send()?;
                check(response)?
                    .json()
                    .context("reading the node's answer")?
            }
            Backend::Local(library) => {
                serde_json::json!({ "catalogs": library.sync_status()?, "traffic": null })
            }
        };
        if json {
            println!("{}", serde_json::to_string_pretty(&status)?);
            return Ok(ExitCode::SUCCESS);
        }
        let catalogs: Vec<CatalogSync> =
            serde_json::from_value(status["catalogs"].clone()).context("reading the catalogs")?;
        let when = |ms: Option<u64>| ms.map_or_else(|| "never".to_string(), format_time);
        for c in &catalogs {
            let name = c
                .name
                .clone()
                .unwrap_or_else(|| c.library_id.chars().take(16).collect());
            println!(
                "{name}{}",
                match (c.own, c.connected, c.route) {
                    (true, _, _) => "  (this library)",
                    (false, _, Some(Route::Direct)) => "  (connected directly)",
                    (false, _, Some(Route::Relay)) => "  (connected through a relay)",
                    (false, Some(true), None) => "  (connected)",
                    (false, Some(false), None) => "  (not connected)",
                    (false, None, None) => "",
                }
            );
            println!(
                "    {} record(s), {} deleted, digest {}",
                c.records, c.deleted, c.digest
            );
            if !c.own {
                println!(
                    "    last change received: {}; node last seen: {}",
                    when(c.last_change_ms),
                    when(c.last_seen_ms)
                );
            }
            if let Some(to_go) = c.to_go {
                println!(
                    "    to go: {to_go} record(s) of {}, about {} KB{}",
                    c.member_holds.unwrap_or_default(),
                    c.bytes_to_go.unwrap_or_default().div_ceil(1024),
                    match c.eta_s {
                        Some(s) => format!(
                            ", about {} at the rate answers arrive",
                            jalin_node::clock::describe_ms(s.saturating_mul(1000).max(60_000))
                        ),
                        None => String::new(),
                    }
                );
            }
        }
        match serde_json::from_value::<TrafficCounts>(status["traffic"].clone()) {
            Ok(t) => println!(
                "sync traffic since start: {} bytes sent, {} bytes received, {} request(s) sent, {} answered",
                t.bytes_sent, t.bytes_received, t.requests_sent, t.requests_received
            ),
            Err(_) => println!("no node runs for this data dir: this is the stored state"),
        }
        if let Some(warning) = status["clock_warning"].as_str() {
            println!("clock: {warning}");
        } else if let Some(peers) = status["clock"]["peers"].as_array() {
            if !peers.is_empty() {
                println!("clock: within an hour of {} member(s)' clocks", peers.len());
            }
        }
        Ok(ExitCode::SUCCESS)
    }

    /// Runs a consortium request in the running node, or here.
    pub fn consortium(self, request: Request) -> anyhow::Result<Answer> {
        match self {
            Backend::Remote(remote) => {
                let response = remote
                    .client
                    .post(format!("{}/api/consortium", remote.url))
                    .bearer_auth(&remote.token)
                    .json(&request)
                    .send()?;
                check(response)?.json().context("reading the node's answer")
            }
            Backend::Local(library) => {
                let now_ms = jalin_node::server::now_ms();
                Ok(execute(library.consortia(), request, now_ms, Vec::new())?)
            }
        }
    }

    /// Runs an interlibrary-loan request in the running node, or here.
    pub fn ill(
        self,
        request: jalin_node::ill_requests::IllRequest,
    ) -> anyhow::Result<jalin_node::ill_requests::IllAnswer> {
        self.json_request("ill", request, jalin_node::ill_requests::execute)
    }

    /// Runs a purchase-plan request in the running node, or here.
    pub fn plans(
        self,
        request: jalin_node::plans::PlanRequest,
    ) -> anyhow::Result<jalin_node::plans::PlanAnswer> {
        self.json_request("plans", request, jalin_node::plans::execute)
    }

    /// A request about profiles, in the running node or here.
    pub fn profile(
        self,
        request: jalin_node::profiles::ProfileRequest,
    ) -> anyhow::Result<jalin_node::profiles::ProfileAnswer> {
        self.json_request("profile", request, jalin_node::profiles::execute)
    }

    /// A request about staff development, in the running node or here.
    pub fn staff(
        self,
        request: jalin_node::staff::StaffRequest,
    ) -> anyhow::Result<jalin_node::staff::StaffAnswer> {
        self.json_request("staff", request, jalin_node::staff::execute)
    }

    /// A request about the evaluation, in the running node or here.
    pub fn evaluation(
        self,
        request: jalin_node::evaluation::EvaluationRequest,
    ) -> anyhow::Result<jalin_node::evaluation::EvaluationAnswer> {
        self.json_request("evaluation", request, jalin_node::evaluation::execute)
    }

    /// Keeps other libraries' profiles, one request each: what each answered.
    pub fn profile_imports(
        self,
        texts: Vec<String>,
    ) -> anyhow::Result<Vec<Result<jalin_node::profiles::ProfileAnswer, String>>> {
        use jalin_node::profiles::{execute, ProfileRequest};
        let mut out = Vec::with_capacity(texts.len());
        for text in texts {
            let request = ProfileRequest::Import { text };
            out.push(match &self {
                Backend::Remote(remote) => remote
                    .post_json("profile", &request)
                    .map_err(|e| e.to_string()),
                Backend::Local(library) => execute(library, request).map_err(|e| e.to_string()),
            });
        }
        Ok(out)
    }

    /// Adds a list of titles to the purchase plan, in the running node or here.
    pub fn plans_import(self, bytes: Vec<u8>) -> anyhow::Result<jalin_node::plans::PlanAnswer> {
        match self {
            Backend::Remote(remote) => {
                let response = remote
                    .client
                    .post(format!("{}/api/plans/import", remote.url))
                    .bearer_auth(&remote.token)
                    .body(bytes)
                    .send()?;
                check(response)?.json().context("reading the node's answer")
            }
            Backend::Local(library) => Ok(jalin_node::plans::import(&library, &bytes)?),
        }
    }

    /// Runs a conspectus request in the running node, or here.
    pub fn conspectus(
        self,
        request: jalin_node::conspectus::ConspectusRequest,
    ) -> anyhow::Result<Vec<jalin_node::conspectus::MemberConspectus>> {
        self.json_request(
            "collection/conspectus",
            request,
            jalin_node::conspectus::execute,
        )
    }

    /// Runs a survey request in the running node, or here.
    pub fn survey(
        self,
        request: jalin_node::survey::SurveyRequest,
    ) -> anyhow::Result<jalin_node::survey::SurveyAnswer> {
        self.json_request("survey", request, jalin_node::survey::execute)
    }

    /// Takes a CSV of survey answers, in the running node or here.
    pub fn survey_import(self, bytes: Vec<u8>) -> anyhow::Result<usize> {
        match self {
            Backend::Remote(remote) => {
                let response = remote
                    .client
                    .post(format!("{}/api/survey/import", remote.url))
                    .bearer_auth(&remote.token)
                    .body(bytes)
                    .send()?;
                let body: serde_json::Value = check(response)?
                    .json()
                    .context("reading the node's answer")?;
                Ok(body["taken"].as_u64().unwrap_or(0) as usize)
            }
            Backend::Local(library) => Ok(jalin_node::survey::import(&library, &bytes)?),
        }
    }

    pub fn collection_overlap(self) -> anyhow::Result<jalin_protocol::collection::OverlapReport> {
        match self {
            Backend::Remote(remote) => {
                let response = remote
                    .client
                    .get(format!("{}/api/collection/overlap", remote.url))
                    .bearer_auth(&remote.token)
                    .send()?;
                check(response)?.json().context("reading the node's answer")
            }
            Backend::Local(library) => Ok(library.collection_overlap()?),
        }
    }

    pub fn needs(
        self,
        request: jalin_node::needs::NeedsRequest,
    ) -> anyhow::Result<jalin_node::needs::NeedsAnswer> {
        self.json_request("needs", request, jalin_node::needs::execute)
    }

    pub fn import(
        self,
        file: &Path,
        options: &ImportOptions,
        report: Option<&Path>,
    ) -> anyhow::Result<ExitCode> {
        let (summary, data_path) = match self {
            Backend::Remote(remote) => {
                let bytes =
                    std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
                let mut query: Vec<(&str, String)> = vec![
                    ("delete_missing", options.delete_missing.to_string()),
                    ("strict", options.strict.to_string()),
                ];
                if let Some(format) = options.format {
                    query.push(("format", format.name().to_string()));
                }
                if let Some(charset) = options.charset {
                    query.push(("charset", charset.name().to_string()));
                }
                let response = remote
                    .client
                    .post(format!("{}/api/import", remote.url))
                    .bearer_auth(&remote.token)
                    .query(&query)
                    .body(bytes)
                    .send()?;
                let summary: ImportSummary = check(response)?
                    .json()
                    .context("reading the node's answer")?;
                eprintln!("Imported through the running node at {}.", remote.url);
                (summary, None)
            }
            Backend::Local(library) => {
                let total = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
                let bar = if std::io::stderr().is_terminal() {
                    let bar = indicatif::ProgressBar::new(total);
                    if let Ok(style) = indicatif::ProgressStyle::with_template(
                        "{bar:40} {bytes}/{total_bytes} {msg} ({eta} left)",
                    ) {
                        bar.set_style(style);
                    }
                    Some(bar)
                } else {
                    None
                };
                let summary =
                    library.import(&Source::File(file.to_path_buf()), options, |progress| {
                        match &bar {
                            Some(bar) => {
                                bar.set_position(progress.bytes.unwrap_or(0));
                                bar.set_message(format!(
                                    "{} read, {} committed",
                                    progress.read, progress.committed
                                ));
                            }
                            // Not a terminal: one line per durable batch, for logs and scripts.
                            None => eprintln!(
                                "committed {} record(s) of {} read",
                                progress.committed, progress.read
                            ),
                        }
                    })?;
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                }
                (summary, Some(library.data().path.clone()))
            }
        };
        println!(
            "{}: {} read, {} added, {} updated, {} unchanged, {} deleted, {} rejected",
            file.display(),
            summary.read,
            summary.added,
            summary.updated,
            summary.unchanged,
            summary.deleted,
            summary.rejected.len()
        );
        if !summary.rejected.is_empty() {
            let path = match (report, data_path) {
                (Some(path), _) => path.to_path_buf(),
                (None, Some(data)) => {
                    let stamp = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    data.join("reports").join(format!("import-{stamp}.txt"))
                }
                (None, None) => std::env::temp_dir().join("jalin-import-report.txt"),
            };
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).ok();
            }
            let mut text = format!("Rejected records from {}\n", file.display());
            for rejected in &summary.rejected {
                text.push_str(&format!("{}: {}\n", rejected.location, rejected.reason));
            }
            std::fs::write(&path, text)
                .with_context(|| format!("writing the report {}", path.display()))?;
            for rejected in summary.rejected.iter().take(10) {
                println!("  rejected {}: {}", rejected.location, rejected.reason);
            }
            println!(
                "Every rejected record, with where and why: {}",
                path.display()
            );
            return Ok(ExitCode::from(1));
        }
        Ok(ExitCode::SUCCESS)
    }

    pub fn search(
        self,
        query: &str,
        page: usize,
        per_page: usize,
        json: bool,
    ) -> anyhow::Result<ExitCode> {
        let results: SearchResults = match self {
            Backend::Remote(remote) => {
                let response = remote
                    .client
                    .get(format!("{}/api/search", remote.url))
                    .query(&[
                        ("q", query.to_string()),
                        ("page", page.to_string()),
                        ("per_page", per_page.to_string()),
                    ])
                    .send()?;
                check(response)?
                    .json()
                    .context("reading the node's answer")?
            }
            Backend::Local(library) => library.search(query, page, per_page)?,
        };
        if json {
            println!("{}", serde_json::to_string_pretty(&results)?);
        } else {
            println!("{} record(s) match {:?}", results.total, results.query);
            for (i, hit) in results.hits.iter().enumerate() {
                let year = hit.year.map(|y| format!(" ({y})")).unwrap_or_default();
                let author = hit
                    .authors
                    .first()
                    .map(|a| format!(" / {a}"))
                    .unwrap_or_default();
                println!(
                    "{:>4}. {}{}{}",
                    (page - 1) * per_page + i + 1,
                    hit.title,
                    author,
                    year,
                );
                println!("      {}", hit.holdings_summary());
                for holding in &hit.holdings {
                    let who = holding
                        .library_name
                        .clone()
                        .unwrap_or_else(|| holding.library.chars().take(16).collect());
                    let call = holding
                        .call_number
                        .as_deref()
                        .map(|c| format!("  {c}"))
                        .unwrap_or_default();
                    let statuses: Vec<&str> = holding
                        .copies
                        .iter()
                        .filter_map(|c| c.status.as_deref())
                        .collect();
                    let status = if statuses.is_empty() {
                        String::new()
                    } else {
                        format!("  ({})", statuses.join(", "))
                    };
                    println!("        {who}{call}{status}  [{}]", holding.record_id);
                }
            }
            for warning in &results.warnings {
                println!("note: {warning}");
            }
        }
        Ok(if results.total == 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    }

    pub fn show(self, id: &str, format: &str) -> anyhow::Result<ExitCode> {
        match self {
            Backend::Remote(remote) => {
                let response = remote
                    .client
                    .get(format!("{}/api/records/{}", remote.url, encode_path(id)))
                    .query(&[("format", format)])
                    .send()?;
                let bytes = check(response)?.bytes()?;
                use std::io::Write;
                std::io::stdout().write_all(&bytes)?;
                if format == "json" {
                    println!();
                }
            }
            Backend::Local(library) => {
                let Some((stored, record)) = library.get(id)? else {
                    bail!("no record with id {id:?}")
                };
                let record = record.context("the stored record does not read back")?;
                match format {
                    "json" => println!(
                        "{}",
                        serde_json::to_string_pretty(&serde_json::json!({
                            "record_id": stored.record_id, "deleted": stored.deleted, "updated_ms": stored.updated_ms,
                            "description": record.description, "marc": record.marc,
                        }))?
                    ),
                    "marcxml" | "xml" => print!(
                        "{}",
                        jalin_protocol::marc::marcxml::record_to_xml(&record.marc, true)
                    ),
                    "marc" | "mrc" => {
                        use std::io::Write;
                        std::io::stdout().write_all(&stored.marc)?;
                    }
                    "dc" => print!("{}", jalin_protocol::dc::to_oai_dc(&record.marc)),
                    other => bail!("unknown format {other:?}; one of: json, marcxml, marc, dc"),
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }

    pub fn export(self, file: &Path, format: Format) -> anyhow::Result<ExitCode> {
        let count = match self {
            Backend::Remote(remote) => {
                let response = remote
                    .client
                    .get(format!("{}/api/export", remote.url))
                    .query(&[("format", format.name())])
                    .send()?;
                let bytes = check(response)?.bytes()?;
                std::fs::write(file, &bytes)
                    .with_context(|| format!("writing {}", file.display()))?;
                None
            }
            Backend::Local(library) => {
                let out = std::fs::File::create(file)
                    .with_context(|| format!("creating {}", file.display()))?;
                let (count, _) = library.export(std::io::BufWriter::new(out), format)?;
                Some(count)
            }
        };
        match count {
            Some(count) => eprintln!("Wrote {count} record(s) to {} as {format}.", file.display()),
            None => eprintln!("Wrote the catalog to {} as {format}.", file.display()),
        }
        Ok(ExitCode::SUCCESS)
    }

    /// Takes in one harvested page: its records (MARCXML) and the ids it reports deleted.
    /// A deletion of a record not held here is no error. Returns the import's summary
    /// and how many records were marked deleted.
    pub fn take_page(
        &self,
        marcxml: Vec<u8>,
        deletions: &[String],
    ) -> anyhow::Result<(ImportSummary, u64)> {
        let mut deleted = 0;
        let summary = match self {
            Backend::Remote(remote) => {
                let summary = if marcxml.is_empty() {
                    ImportSummary::default()
                } else {
                    let response = remote
                        .client
                        .post(format!("{}/api/import", remote.url))
                        .bearer_auth(&remote.token)
                        .query(&[("format", "marcxml")])
                        .body(marcxml)
                        .send()?;
                    check(response)?
                        .json()
                        .context("reading the node's answer")?
                };
                for id in deletions {
                    let response = remote
                        .client
                        .delete(format!("{}/api/records/{}", remote.url, encode_path(id)))
                        .bearer_auth(&remote.token)
                        .send()?;
                    if response.status() != reqwest::StatusCode::NOT_FOUND {
                        check(response)?;
                        deleted += 1;
                    }
                }
                summary
            }
            Backend::Local(library) => {
                let summary = if marcxml.is_empty() {
                    ImportSummary::default()
                } else {
                    let options = ImportOptions {
                        format: Some(Format::Marcxml),
                        ..Default::default()
                    };
                    library.import(&Source::Bytes(marcxml), &options, |_| {})?
                };
                for id in deletions {
                    match library.delete(id) {
                        Ok(()) => deleted += 1,
                        Err(jalin_node::library::LibraryError::NotFound(_)) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                summary
            }
        };
        Ok((summary, deleted))
    }

    pub fn delete(self, id: &str) -> anyhow::Result<ExitCode> {
        match self {
            Backend::Remote(remote) => {
                let response = remote
                    .client
                    .delete(format!("{}/api/records/{}", remote.url, encode_path(id)))
                    .bearer_auth(&remote.token)
                    .send()?;
                check(response)?;
            }
            Backend::Local(library) => library.delete(id)?,
        }
        println!("Record {id} is marked deleted.");
        Ok(ExitCode::SUCCESS)
    }

    pub fn status(self, json: bool) -> anyhow::Result<ExitCode> {
        let (status, running): (jalin_node::library::Status, Option<String>) = match self {
            Backend::Remote(remote) => {
                let response = remote
                    .client
                    .get(format!("{}/api/status", remote.url))
                    .send()?;
                (check(response)?.json()?, Some(remote.url))
            }
            Backend::Local(library) => (library.status()?, None),
        };
        if json {
            println!("{}", serde_json::to_string_pretty(&status)?);
            return Ok(ExitCode::SUCCESS);
        }
        let running_node = running.is_some();
        println!("{} ({})", status.name, status.code);
        println!("  library id:  {}", status.library_id);
        println!("  fingerprint: {}", status.fingerprint);
        println!(
            "  node:        {}",
            running.map_or_else(
                || "not running".to_string(),
                |url| format!("running at {url}")
            )
        );
        println!(
            "  records:     {} ({} deleted)",
            status.records, status.deleted
        );
        println!("  searchable:  {}", status.indexed);
        for replica in &status.replicas {
            println!(
                "  replica of:  {} {}: {} records ({} deleted)",
                &replica.library_id[..16],
                replica.name.as_deref().unwrap_or("(not a member here)"),
                replica.records,
                replica.deleted
            );
        }
        println!("  storage:     {:.1} MB", status.store_bytes as f64 / 1e6);
        if let Some(memory) = &status.memory {
            print_memory(memory, running_node);
        }
        println!("  version:     {}", status.version);
        Ok(ExitCode::SUCCESS)
    }
}

/// The memory budget's parts, what each holds, and the process's resident memory: the
/// running node's, or (no node running) this command's own, whose caches are still empty.
fn print_memory(memory: &jalin_node::library::MemoryStatus, running_node: bool) {
    let mb = |bytes: u64| bytes as f64 / f64::from(1 << 20);
    println!(
        "  memory:      budget {} MB ([limits] memory_mb){}",
        memory.budget_mb,
        if running_node {
            ""
        } else {
            "; the node is not running, so its caches hold nothing now"
        }
    );
    if memory.over_budget_mb > 0 {
        println!(
            "    the parts set on their own under [limits] take {} MB more than the budget \
             (an older config.toml sets them all): remove store_cache_mb, loaded_shards_max \
             and batch_records_max to let memory_mb share it out",
            memory.over_budget_mb
        );
    }
    for part in &memory.parts {
        let held = part
            .held_bytes
            .map_or_else(|| "?".to_string(), |b| format!("{:.1}", mb(b)));
        println!(
            "    {:<24} {:>7} of {:>6.1} MB  {}",
            part.part,
            held,
            mb(part.limit_bytes),
            part.note
        );
    }
    if let (Some(now), Some(peak)) = (memory.resident_bytes, memory.resident_peak_bytes) {
        println!(
            "    {:<24} {:>7.1} MB now, {:.1} MB at most since it started",
            if running_node {
                "node process"
            } else {
                "this command"
            },
            mb(now),
            mb(peak)
        );
    }
}

fn encode_path(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// What to do once the node answers, given its URL.
pub type AfterStart = Box<dyn FnOnce(&str) + Send>;

/// Runs a node in the foreground until Ctrl-C or SIGTERM. `after_start` runs once the API
/// answers (the demo prints its examples there).
pub fn run_node(
    data: DataDir,
    listen: Option<String>,
    p2p_listen: Option<String>,
    after_start: Option<AfterStart>,
) -> anyhow::Result<ExitCode> {
    let runtime = crate::backend::runtime()?;
    runtime.block_on(async move {
        let name = data.config.library.name.clone();
        let options = NodeOptions::from_config(&data, listen, p2p_listen)?;
        let library = tokio::task::spawn_blocking(move || Library::open(data))
            .await?
            .context("opening the catalog")?;
        let node = Node::spawn(Arc::new(library), options).await?;
        if let Some(warning) = node.exposure_warning() {
            eprintln!("{warning}");
        }
        let url = node.url().unwrap_or_default();
        println!("Jalin node for {name} is serving {url}");
        println!("  API: {url}/api/status   (Ctrl-C stops it)");
        if let Some(net) = node.net() {
            // The listen addresses appear once the transport is up.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                let addresses = net.listen_addresses().await.unwrap_or_default();
                if !addresses.is_empty() || std::time::Instant::now() > deadline {
                    for address in addresses {
                        println!("  p2p: {address}");
                    }
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        if let Some(after) = after_start {
            after(&url);
        }
        let cancel = node.cancel_token();
        tokio::spawn(async move {
            stop_signal().await;
            cancel.cancel();
        });
        node.wait().await?;
        eprintln!("Jalin node stopped.");
        Ok(ExitCode::SUCCESS)
    })
}

/// Resolves at Ctrl-C (or SIGTERM on Unix; Ctrl-Break, the console closed or shutdown on
/// Windows).
pub async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(windows)]
    {
        // Ctrl-C or Ctrl-Break in the console, its window closed, or Windows shutting
        // down (the last two give a few seconds: enough to finish the batch in hand).
        use tokio::signal::windows;
        match (
            windows::ctrl_break(),
            windows::ctrl_close(),
            windows::ctrl_shutdown(),
        ) {
            (Ok(mut brk), Ok(mut close), Ok(mut shutdown)) => tokio::select! {
                _ = ctrl_c => {}
                _ = brk.recv() => {}
                _ = close.recv() => {}
                _ = shutdown.recv() => {}
            },
            _ => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = ctrl_c.await;
    }
}

/// The runtime a node (or the relay, or the demo) runs on: two worker threads.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")
}

/// Runs `jalin relay` until Ctrl-C.
pub fn relay(
    key: &ed25519_dalek::SigningKey,
    listen: libp2p::Multiaddr,
    access: jalin_node::relay::Access,
) -> anyhow::Result<ExitCode> {
    let runtime = crate::backend::runtime()?;
    runtime.block_on(async move {
        match &access {
            jalin_node::relay::Access::Members(members) => {
                println!("Jalin relay for {} member(s)", members.len())
            }
            jalin_node::relay::Access::Open => println!(
                "Jalin relay, open to any peer with libp2p's limits for a public relay \
                 (give --members to serve a consortium's members)"
            ),
        }
        let (tx, mut addresses) =
            tokio::sync::mpsc::channel(jalin_node::relay::ADDRESSES_QUEUED_MAX);
        tokio::spawn(async move {
            let mut first = true;
            while let Some(address) = addresses.recv().await {
                println!("  relay: {address}");
                if first {
                    first = false;
                    println!(
                        "  Members behind NAT add to their jalin.toml (with the public address):"
                    );
                    println!("    [network]\n    relays = [\"{address}\"]");
                }
            }
        });
        jalin_node::relay::run(key, listen, access, tx, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| anyhow::anyhow!("the relay stopped: {e}"))?;
        Ok(ExitCode::SUCCESS)
    })
}

impl Backend {
    /// Writes a bundle for the co-member `who` to `out` (made by the running node, or
    /// here). Gives what it holds when it was made here (the node's answer is the file).
    pub fn bundle_export(
        self,
        who: &str,
        out: &Path,
    ) -> anyhow::Result<Option<jalin_node::bundle::BundleReport>> {
        // Written beside the destination, renamed when whole: a flash disk pulled out
        // midway leaves no short file under the bundle's name.
        let partial = out.with_extension("partial");
        // A file of this account's alone, made new (never through a link another user of
        // a shared folder left under that name).
        let _ = std::fs::remove_file(&partial);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options
            .open(&partial)
            .with_context(|| format!("creating {}", partial.display()))?;
        let mut writer = std::io::BufWriter::new(file);
        let made = (|| -> anyhow::Result<_> {
            let report = match self {
                Backend::Remote(remote) => {
                    let mut response = check(
                        remote
                            .client
                            .post(format!("{}/api/bundle/export", remote.url))
                            .bearer_auth(&remote.token)
                            .json(&serde_json::json!({ "for": who }))
                            .send()?,
                    )?;
                    response
                        .copy_to(&mut writer)
                        .context("receiving the bundle from the node")?;
                    None
                }
                Backend::Local(library) => {
                    let (report, _) =
                        jalin_node::bundle::export(&library, &find(&library, who)?, &mut writer)
                            .map_err(jalin_node::library::LibraryError::from)?;
                    Some(report)
                }
            };
            let file = writer.into_inner().context("writing the bundle")?;
            file.sync_all().context("writing the bundle")?;
            Ok(report)
        })();
        let report = match made {
            Ok(report) => report,
            Err(error) => {
                let _ = std::fs::remove_file(&partial);
                return Err(error);
            }
        };
        std::fs::rename(&partial, out)
            .with_context(|| format!("naming the bundle {}", out.display()))?;
        Ok(report)
    }

    /// Takes in (or, with `preview`, only reads) a bundle file.
    pub fn bundle_import(
        self,
        file: &Path,
        preview: bool,
    ) -> anyhow::Result<jalin_node::bundle::BundleReport> {
        match self {
            Backend::Remote(remote) => {
                // Streamed from the file, not read into memory first.
                let body = std::fs::File::open(file)
                    .with_context(|| format!("opening {}", file.display()))?;
                let response = remote
                    .client
                    .post(format!("{}/api/bundle/import", remote.url))
                    .bearer_auth(&remote.token)
                    .query(&[("preview", preview.to_string())])
                    .body(reqwest::blocking::Body::from(body))
                    .send()?;
                check(response)?.json().context("reading the node's answer")
            }
            Backend::Local(library) => {
                std::fs::metadata(file).with_context(|| format!("opening {}", file.display()))?;
                let open = || std::fs::File::open(file).map(std::io::BufReader::new);
                let report = if preview {
                    jalin_node::bundle::preview(
                        &library,
                        open().with_context(|| format!("opening {}", file.display()))?,
                    )
                } else {
                    jalin_node::bundle::import(&library, open)
                };
                Ok(report.map_err(jalin_node::library::LibraryError::from)?)
            }
        }
    }

    /// The bundles exchanged with each co-member.
    pub fn bundle_list(self) -> anyhow::Result<Vec<jalin_node::bundle::Exchange>> {
        match self {
            Backend::Remote(remote) => check(
                remote
                    .client
                    .get(format!("{}/api/bundle", remote.url))
                    .send()?,
            )?
            .json()
            .context("reading the node's answer"),
            Backend::Local(library) => Ok(jalin_node::bundle::exchanges(&library)
                .map_err(jalin_node::library::LibraryError::from)?),
        }
    }
}

fn find(library: &Library, who: &str) -> anyhow::Result<jalin_protocol::signing::LibraryId> {
    Ok(jalin_node::bundle::find_co_member(library, who)
        .map_err(jalin_node::library::LibraryError::from)?)
}
