//! The web interface in a real browser: Debian's chromium, headless, driven through
//! chromedriver (WebDriver). Each test saves screenshots in `target/screenshots/`, fails
//! on any error in the browser's console, and runs axe-core (from npm, bundled in
//! `tests/web/node_modules`) on the pages it visits: no serious or critical violation.

use crate::cli::{jalin, node};
use crate::shared_data_or_skip;
use crate::support::{have_tool, new_library, replicate, start, workspace_root};
use fantoccini::{Client, ClientBuilder, Locator};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// chromedriver, stopped when dropped.
struct Driver(Child, u16);

impl Drop for Driver {
    /// Stops chromedriver and the browsers it started (its process group): a failed test
    /// leaves no chromium behind.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Whether a WebDriver error says the element belongs to a page that has gone (the
/// browser loaded another): chromedriver says so in two ways.
fn gone(error: &fantoccini::error::CmdError) -> bool {
    let text = error.to_string();
    text.contains("stale") || text.contains("does not belong to the document")
}

/// Whether chromium and chromedriver are here (`.ci/run` installs them).
fn have_browser() -> bool {
    have_tool("chromedriver", &["--version"]) && have_tool("chromium", &["--version"])
}

fn axe_source() -> Option<String> {
    let path = workspace_root().join("tests/web/node_modules/axe-core/axe.min.js");
    match std::fs::read_to_string(&path) {
        Ok(source) => Some(source),
        Err(_) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must have {} (npm ci in tests/web, see .ci/run)",
                path.display()
            );
            eprintln!("skipped: no {}", path.display());
            None
        }
    }
}

/// The browser's console, read through chromedriver's log endpoint.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(r#"{"type":"browser"}"#.to_string()),
        )
    }
}

/// A headless chromium at 1024x768 with its console kept.
struct Browser {
    client: Client,
    _driver: Driver,
    test: &'static str,
    shots: usize,
    axe: String,
}

impl Browser {
    async fn open(test: &'static str, axe: String) -> Browser {
        let port = free_port();
        use std::os::unix::process::CommandExt;
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs");
        let driver = Driver(child, port);
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1024,768", "--lang=id"]
            }),
        );
        capabilities.insert(
            "goog:loggingPrefs".into(),
            serde_json::json!({ "browser": "ALL" }),
        );
        let url = format!("http://127.0.0.1:{}", driver.1);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        // Two TLS backends are built into the tests (the node's HTTP client uses ring,
        // the WebDriver client aws-lc-rs): the WebDriver client needs one chosen for
        // the process. Installing it twice (a second browser) is no error.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let client = loop {
            match ClientBuilder::rustls()
                .expect("TLS roots")
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(e) if std::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("chromedriver did not start: {e}"),
            }
        };
        Browser {
            client,
            _driver: driver,
            test,
            shots: 0,
            axe,
        }
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigates");
    }

    /// The text of the first element matching `css`, once there is one (a page that
    /// reloads itself, as an import's progress does, is read again).
    async fn text(&self, css: &str) -> String {
        for _ in 0..30 {
            let element = self
                .client
                .wait()
                .at_most(Duration::from_secs(30))
                .for_element(Locator::Css(css))
                .await
                .unwrap_or_else(|e| panic!("no {css} on the page: {e}"));
            match element.text().await {
                Ok(text) => return text,
                Err(e) if gone(&e) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("reading {css}: {e}"),
            }
        }
        panic!("{css} kept going stale")
    }

    /// Does `action`, which loads another page (a link followed, a form sent), and waits
    /// until that page has replaced this one: read before then, an element may still be
    /// the old page's, or go while it is read.
    async fn loads(&self, what: &str, action: impl std::future::Future<Output = ()>) {
        let old = self
            .client
            .find(Locator::Css("html"))
            .await
            .expect("a page is open");
        action.await;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match old.tag_name().await {
                Err(e) if gone(&e) => break,
                Err(e) => panic!("{what}: {e}"),
                Ok(_) => {}
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{what} loaded no other page in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        loop {
            let state = self
                .client
                .execute("return document.readyState;", vec![])
                .await;
            if matches!(&state, Ok(s) if s == "complete") {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: the page did not finish loading in 30 s ({state:?})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks what matches `css` (a link or a form's button) and waits for the page it
    /// loads.
    async fn follow(&self, css: &str) {
        self.loads(css, self.click(css)).await;
    }

    /// A property of the first element matching `css` (`value`, `href`).
    async fn prop(&self, css: &str, name: &str) -> String {
        self.client
            .wait()
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .prop(name)
            .await
            .expect("reads the property")
            .unwrap_or_else(|| panic!("{css} has no {name}"))
    }

    async fn fill(&self, css: &str, value: &str) {
        let element = self
            .client
            .wait()
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"));
        element.clear().await.ok();
        element.send_keys(value).await.expect("types");
    }

    async fn click(&self, css: &str) {
        self.client
            .wait()
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .click()
            .await
            .expect("clicks");
    }

    /// Saves a screenshot, checks the console has no error and the page no serious
    /// accessibility violation.
    async fn check(&mut self, step: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = workspace_root().join("target/screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        self.shots += 1;
        let file: PathBuf = dir.join(format!("{}-{:02}-{step}.png", self.test, self.shots));
        std::fs::write(&file, png).expect("writes the screenshot");
        let log = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("console log");
        let errors: Vec<&serde_json::Value> = log
            .as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["level"] == "SEVERE")
            .collect();
        assert!(errors.is_empty(), "{step}: console errors {errors:?}");
        self.client
            .execute(&self.axe, vec![])
            .await
            .expect("axe-core loads");
        let violations = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { resultTypes: ['violations'] })
                   .then(r => done(r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help,
                     nodes: v.nodes.map(n => n.target.join(' ')) }))))
                   .catch(e => done([{ id: 'axe-failed', impact: 'critical', help: String(e) }]));",
                vec![],
            )
            .await
            .expect("axe-core runs");
        let serious: Vec<&serde_json::Value> = violations
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .collect();
        assert!(
            serious.is_empty(),
            "{step}: accessibility violations {serious:#?}"
        );
    }

    async fn close(self) {
        self.client.close().await.ok();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn a_patron_searches_and_opens_a_record_held_by_two_libraries() {
    let data = shared_data_or_skip!();
    if !have_browser() {
        return;
    }
    let Some(axe) = axe_source() else { return };
    let file = data.join("marc/loc/loc-indonesia-3147.mrc");
    let server = start(Some(&file));
    let (_dir, other_data) = new_library(1000);
    let other = jalin_node::library::Library::open(other_data).expect("opens");
    other
        .import(
            &jalin_node::library::Source::File(file),
            &jalin_node::library::ImportOptions::default(),
            |_| {},
        )
        .expect("imports");
    replicate(&other, &server.library);
    // The API keeps to one library too.
    let other_key = other.store().library().to_hex();
    let only: serde_json::Value = reqwest::blocking::get(format!(
        "{}/api/search?q=sejarah&library={other_key}",
        server.url
    ))
    .expect("GET")
    .json()
    .expect("JSON");
    let hits = only["hits"].as_array().expect("hits");
    assert!(!hits.is_empty());
    assert!(
        hits.iter()
            .all(|h| h["library"] == serde_json::json!(other_key)),
        "{only}"
    );

    runtime().block_on(async {
        let mut browser = Browser::open("patron", axe).await;
        browser.goto(&server.url).await;
        assert_eq!(browser.text("h1").await, "Katalog induk");
        browser.check("home").await;
        // The keyboard alone: the search box has the focus, Tab goes on to its button,
        // Enter in the box searches; the first thing to tab to is the skip link.
        let first = browser
            .client
            .execute(
                "return document.querySelector('a[href], button, input, select, textarea').className;",
                vec![],
            )
            .await
            .expect("first focusable");
        assert_eq!(first, serde_json::json!("skip"));
        let focused = browser
            .client
            .execute("return document.activeElement.id;", vec![])
            .await
            .expect("focus");
        assert_eq!(focused, serde_json::json!("q"), "the search box has the focus");
        use fantoccini::actions::InputSource;
        let tab = fantoccini::actions::KeyActions::new("keyboard".to_string())
            .then(fantoccini::actions::KeyAction::Down { value: '\u{e004}' })
            .then(fantoccini::actions::KeyAction::Up { value: '\u{e004}' });
        browser.client.perform_actions(tab).await.expect("tabs");
        let focused = browser
            .client
            .execute("return document.activeElement.textContent;", vec![])
            .await
            .expect("focus");
        assert_eq!(focused, serde_json::json!("Cari"), "Tab reaches the search button");
        browser
            .loads(
                "Enter in the search box",
                browser.fill("#q", "sejarah indonesia\u{e007}"),
            )
            .await;
        let heading = browser.text("#results-heading").await;
        assert!(heading.ends_with("judul ditemukan"), "{heading}");
        let total: usize = heading
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a count");
        let held = browser.text(".hit .held").await;
        assert!(held.starts_with("ada di 2 perpustakaan"), "{held}");
        browser.check("results").await;
        // The library facet: each library's share, and a click keeps to one.
        let facet = browser.text("aside.facets ul").await;
        assert!(facet.contains("Perpustakaan Uji (UJI)"), "{facet}");
        // Languages by name, not by MARC code.
        let facets = browser.text("aside.facets").await;
        assert!(facets.contains("Bahasa Indonesia ("), "{facets}");
        assert!(!facets.lines().any(|l| l.starts_with("ind ")), "{facets}");
        browser
            .follow(&format!("aside.facets a[href*='lib={other_key}']"))
            .await;
        let filter = browser.text("p.filter").await;
        assert!(filter.contains(&other_key[..8]), "{filter}");
        let only: usize = browser
            .text("#results-heading")
            .await
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a count");
        // Both libraries hold the same books: books, not records, are counted, so one
        // library's books are all of them.
        assert_eq!(only, total, "the same books at each library");
        browser.check("one-library").await;
        browser.follow("p.filter a").await;
        let title = browser.text(".hit h3 a").await;
        browser.follow(".hit h3 a").await;
        assert_eq!(browser.text("h1").await, title);
        let rows = browser
            .client
            .find_all(Locator::Css("table.holdings tbody tr"))
            .await
            .expect("rows");
        assert_eq!(rows.len(), 2, "a holding from each library");
        let table = browser.text("table.holdings").await;
        assert!(table.contains("Perpustakaan Uji (UJI)"), "{table}");
        assert!(table.contains("perpustakaan ini"), "{table}");
        browser.check("record").await;
        // On a phone's screen too.
        browser.client.set_window_size(390, 844).await.expect("resizes");
        browser.check("record-phone").await;
        let overflow = browser
            .client
            .execute(
                "return document.documentElement.scrollWidth > window.innerWidth;",
                vec![],
            )
            .await
            .expect("measures");
        assert_eq!(overflow, serde_json::json!(false), "no sideways scrolling on a phone");
        // The record exports as MARCXML.
        // (The property is the link made absolute.)
        let href = browser.prop("a[href$='format=marcxml']", "href").await;
        assert!(href.starts_with(&server.url), "{href}");
        let xml = reqwest::get(href)
            .await
            .expect("GET")
            .text()
            .await
            .expect("text");
        assert!(
            xml.contains("<record xmlns=\"http://www.loc.gov/MARC21/slim\">"),
            "{xml}"
        );
        browser.close().await;
    });
}

#[test]
fn switching_language_changes_the_page_text() {
    if !have_browser() {
        return;
    }
    let Some(axe) = axe_source() else { return };
    let server = start(None);
    runtime().block_on(async {
        let mut browser = Browser::open("language", axe).await;
        browser.goto(&format!("{}/?q=pendidikan", server.url)).await;
        assert_eq!(browser.text("h1").await, "Katalog induk");
        assert_eq!(browser.text("label[for=q]").await, "Cari di katalog induk");
        browser.check("bahasa-indonesia").await;
        browser.follow("#switch-language").await;
        assert_eq!(browser.text("h1").await, "Union catalog");
        assert_eq!(
            browser.text("label[for=q]").await,
            "Search the union catalog"
        );
        let lang = browser
            .client
            .find(Locator::Css("html"))
            .await
            .expect("html")
            .attr("lang")
            .await
            .expect("lang");
        assert_eq!(lang.as_deref(), Some("en"));
        // The same query (and the same visit) is kept across the switch.
        let url = browser.client.current_url().await.expect("url");
        assert!(url.as_str().contains("/?q=pendidikan&v="), "{url}");
        browser.check("english").await;
        browser.follow("#switch-language").await;
        assert_eq!(browser.text("h1").await, "Katalog induk");
        browser.close().await;
    });
}

#[test]
fn a_librarian_logs_in_uploads_a_marc_file_and_sees_its_report() {
    let data = shared_data_or_skip!();
    if !have_browser() {
        return;
    }
    let Some(axe) = axe_source() else { return };
    let server = start(None);
    runtime().block_on(async {
        let mut browser = Browser::open("import", axe).await;
        browser
            .goto(&format!("{}/librarian/import", server.url))
            .await;
        // Not logged in: the login page, then back here.
        assert_eq!(browser.text("h1").await, "Masuk pustakawan");
        browser.fill("#token", "not-the-token").await;
        browser.follow("form.stack button").await;
        let error = browser.text("p.error").await;
        assert!(
            error.contains("Token itu bukan milik simpul ini"),
            "{error}"
        );
        browser.check("login-refused").await;
        browser.fill("#token", &server.token).await;
        browser.follow("form.stack button").await;
        assert_eq!(browser.text("h1").await, "Impor cantuman");
        browser.check("import-form").await;
        let file = data
            .join("marc/edge/pymarc/bad_records.mrc")
            .canonicalize()
            .expect("the file");
        browser
            .fill("#file", file.to_str().expect("utf-8 path"))
            .await;
        browser.follow("form.stack button").await;
        let summary = browser.text("#import-summary").await;
        assert!(summary.contains("bad_records.mrc"), "{summary}");
        assert!(summary.contains("ditolak"), "{summary}");
        // Each rejected record: where (in words, not a data structure), why in
        // Indonesian, and the reader's own words for whoever looks after the node.
        let report = browser.text("#import-report").await;
        assert!(
            report.contains("cantuman nomor 9 (mulai bita 917)"),
            "{report}"
        );
        assert!(
            report.contains("Berkas berakhir di tengah cantuman ini"),
            "{report}"
        );
        assert!(
            report.contains("Struktur cantuman MARC ini rusak"),
            "{report}"
        );
        assert!(
            report.contains("file ends after 100 of the record's 127 bytes"),
            "{report}"
        );
        browser.check("import-report").await;
        // What the page reports is what the catalog holds.
        let status = server.library.status().expect("status");
        assert!(
            summary.contains(&format!("{} ditambahkan", status.records)),
            "{summary} / {}",
            status.records
        );
        browser.goto(&format!("{}/librarian", server.url)).await;
        assert_eq!(
            browser.text("#status-records").await,
            status.records.to_string()
        );
        browser.check("status").await;
        // Edit a record's title, then delete the record: an LC record with names,
        // subjects and a publication statement.
        let bytes = std::fs::read(data.join("marc/loc/loc-indonesia-3147.mrc")).expect("file");
        let rich = jalin_protocol::marc::iso2709::Reader::new(bytes.as_slice())
            .map(|r| r.expect("reads").record)
            .find(|m| {
                let d = jalin_protocol::record::Description::from_marc(m);
                !d.names.is_empty() && d.subjects.len() > 1 && d.publication.publisher.is_some()
            })
            .expect("such a record");
        let id = server.library.put(rich).expect("stores");
        let own = server.library.id().to_hex();
        browser
            .goto(&format!("{}/record/{own}/{id}", server.url))
            .await;
        let marc_of = |id: &str| {
            let (_, record) = server.library.get(id).expect("reads").expect("held");
            record.expect("reads back").marc
        };
        let before = marc_of(&id);
        browser.follow("a.button[href$='/edit']").await;
        browser.check("edit").await;
        browser.fill("#title", "Judul Baru Uji").await;
        browser.fill("#subtitle", "").await;
        browser.follow("form.stack button").await;
        assert_eq!(browser.text("h1").await, "Judul Baru Uji");
        let after = marc_of(&id);
        assert_eq!(
            jalin_protocol::record::Description::from_marc(&after).title,
            "Judul Baru Uji"
        );
        // The fields the form showed and the librarian left are as they were.
        let but_title = |marc: &jalin_protocol::marc::MarcRecord| {
            let mut fields = marc.fields.clone();
            fields.retain(|f| !matches!(f, jalin_protocol::marc::Field::Data(d) if d.tag == "245"));
            fields
        };
        assert_eq!(but_title(&after), but_title(&before));

        browser.click("#confirm-delete").await;
        browser.follow("button.danger").await;
        assert_eq!(browser.text("h1").await, "Cantuman sudah dihapus.");
        browser.check("deleted").await;
        let (stored, _) = server.library.get(&id).expect("reads").expect("held");
        assert!(stored.deleted);
    });
}

const AGREEMENT: &str = "+++
title = \"Perjanjian Kerja Sama Perpustakaan\"
union_catalog = true
interlibrary_loan = true
coordinated_acquisition = false
staff_development = true
loan_period_days = 14
items_per_request = 3
evaluation_period_months = 12
+++
# Perjanjian

Para pihak sepakat berbagi katalog induk.
";

#[test]
fn a_librarian_invites_a_second_node_that_joins_with_its_ticket_and_signs_the_agreement() {
    if !have_browser() {
        return;
    }
    let Some(axe) = axe_source() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for (data, name, code) in [
        (&a, "Perpustakaan Desa Kemiri", "KEMIRI"),
        (&b, "SD Negeri 1 Lor", "SDN1LOR"),
    ] {
        let (status, _, stderr) = jalin(data, &["init", "--name", name, "--code", code]);
        assert_eq!(status, 0, "{stderr}");
        let config = data.join("config.toml");
        let text = std::fs::read_to_string(&config).expect("config");
        std::fs::write(&config, text.replace("mdns = true", "mdns = false")).expect("writes");
    }
    let (_node_a, url_a, _) = node(&a);
    let (_node_b, url_b, _) = node(&b);
    runtime().block_on(async {
        let mut browser = Browser::open("consortium", axe).await;
        // A's librarian founds the partnership and invites.
        browser.goto(&format!("{url_a}/login")).await;
        browser.fill("#token", &api_token(&a)).await;
        browser.follow("form.stack button").await;
        browser.goto(&format!("{url_a}/librarian/consortium")).await;
        browser.check("no-consortium").await;
        browser.fill("#name", "Jaringan Perpustakaan Kemiri").await;
        browser
            .follow("form[action='/librarian/consortium/create'] button")
            .await;
        assert_eq!(
            browser.text("main h2").await,
            "Jaringan Perpustakaan Kemiri"
        );
        browser.check("founded").await;
        browser
            .follow("form[action='/librarian/consortium/invite'] button")
            .await;
        let ticket = browser.prop("#ticket", "value").await;
        assert!(ticket.to_uppercase().starts_with("JALIN-"), "{ticket}");
        assert!(
            browser
                .client
                .find(Locator::Css("figure.qr svg"))
                .await
                .is_ok(),
            "a QR code"
        );
        browser.check("invite").await;

        // B's librarian joins with the ticket, in B's own web interface.
        browser.goto(&format!("{url_b}/login")).await;
        browser.fill("#token", &api_token(&b)).await;
        browser.follow("form.stack button").await;
        browser.goto(&format!("{url_b}/librarian/consortium")).await;
        browser.fill("#ticket-in", &ticket).await;
        browser
            .follow("form[action='/librarian/consortium/join'] button")
            .await;
        let members = browser.text("table.members").await;
        assert!(
            members.contains("Perpustakaan Desa Kemiri") && members.contains("SD Negeri 1 Lor"),
            "{members}"
        );
        // Roles in the page's language.
        assert!(
            members.contains("anggota") && !members.contains("member"),
            "{members}"
        );
        browser.check("joined").await;

        // A drafts the agreement (A's session cookie is still good on A's port) and signs it.
        browser.goto(&format!("{url_a}/librarian/consortium")).await;
        let members = browser.text("table.members").await;
        assert!(
            members.contains("SD Negeri 1 Lor"),
            "A sees B as a member: {members}"
        );
        browser.click("details summary").await;
        browser.fill("textarea[name=text]", AGREEMENT).await;
        browser
            .follow("form[action='/librarian/consortium/draft'] button")
            .await;
        browser
            .follow("main ul.plain a[href^='/librarian/agreement/']")
            .await;
        assert_eq!(
            browser.text("h1").await,
            "Perjanjian Kerja Sama Perpustakaan"
        );
        assert!(browser
            .text(".agreement-text")
            .await
            .contains("Para pihak sepakat"));
        browser.check("agreement").await;
        browser.follow("#sign-1").await;
        let signatures = browser.text("table.signatures").await;
        assert!(
            signatures.contains("Perpustakaan Desa Kemiri (KEMIRI)"),
            "{signatures}"
        );
        let section = browser.text("section.version").await;
        assert!(section.contains("1 / 2 ditandatangani"), "{section}");
        assert!(
            browser.client.find(Locator::Css("#sign-1")).await.is_err(),
            "signed once only"
        );
        browser.check("signed").await;
        // An amendment: a second version, its changes shown, to be signed again.
        browser.click("details summary").await;
        let current = browser.prop("#amend-text", "value").await;
        assert!(
            current.starts_with("+++") && current.contains("loan_period_days = 14"),
            "{current}"
        );
        let amended = current
            .replace("loan_period_days = 14", "loan_period_days = 21")
            .replace(
                "berbagi katalog induk.",
                "berbagi katalog induk dan saling meminjamkan.",
            );
        browser.fill("#amend-text", &amended).await;
        browser.follow("#amend-button").await;
        let diff = browser.text("pre.diff").await;
        assert!(
            diff.contains("+ Para pihak sepakat berbagi katalog induk dan saling meminjamkan."),
            "{diff}"
        );
        assert!(
            diff.contains("- Para pihak sepakat berbagi katalog induk."),
            "{diff}"
        );
        assert!(
            browser.client.find(Locator::Css("#sign-2")).await.is_ok(),
            "the new version awaits signing"
        );
        browser.check("amended").await;
        // The printable export carries the signature table.
        let export = browser.prop("a[href$='/export']", "href").await;
        browser.goto(&export).await;
        let printable = browser.text("body").await;
        assert!(
            printable.contains("Perjanjian Kerja Sama Perpustakaan"),
            "{printable}"
        );
        assert!(printable.contains("KEMIRI"), "{printable}");

        // A third library whose node cannot reach A's: its acceptance is pasted on A's
        // page; then A removes it.
        let c = dir.path().join("c");
        let (status, _, stderr) = jalin(&c, &["init", "--name", "SMP Negeri 2", "--code", "SMPN2"]);
        assert_eq!(status, 0, "{stderr}");
        browser.goto(&format!("{url_a}/librarian/consortium")).await;
        browser
            .follow("form[action='/librarian/consortium/invite'] button")
            .await;
        let ticket = browser.prop("#ticket", "value").await;
        let (status, acceptance, stderr) = jalin(&c, &["join", "--offline", &ticket]);
        assert_eq!(status, 0, "{stderr}");
        browser.goto(&format!("{url_a}/librarian/consortium")).await;
        browser.fill("#acceptance-1", acceptance.trim()).await;
        browser
            .follow("form[action='/librarian/consortium/accept'] button")
            .await;
        let members = browser.text("table.members").await;
        assert!(members.contains("SMP Negeri 2"), "{members}");
        browser.check("accepted").await;
        browser
            .follow("button[aria-label='Keluarkan SMP Negeri 2']")
            .await;
        let members = browser.text("table.members").await;
        assert!(!members.contains("SMP Negeri 2"), "{members}");
        assert!(members.contains("SD Negeri 1 Lor"), "{members}");
        browser.check("removed").await;
        browser.close().await;
    });
}

/// Errors are pages in words, never a trace; librarians' pages and forms are guarded.
#[test]
fn errors_are_pages_in_words_and_librarian_pages_need_login() {
    let server = start(None);
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let own = server.library.id().to_hex();
    let missing = client
        .get(format!("{}/record/{own}/no-such-record", server.url))
        .send()
        .expect("GET");
    assert_eq!(missing.status(), 404);
    let page = missing.text().expect("text");
    assert!(page.contains("Cantuman itu tidak ada."), "{page}");
    let nowhere = client
        .get(format!("{}/no/such/page", server.url))
        .send()
        .expect("GET");
    assert_eq!(nowhere.status(), 404);
    assert!(nowhere
        .text()
        .expect("text")
        .contains("Halaman itu tidak ada."));
    let api = client
        .get(format!("{}/api/no-such-endpoint", server.url))
        .send()
        .expect("GET");
    assert_eq!(api.status(), 404);
    let body: serde_json::Value = api.json().expect("an API error is JSON");
    assert!(body["error"]
        .as_str()
        .is_some_and(|e| e.contains("no such API endpoint")));
    let bad_owner = client
        .get(format!("{}/record/not-a-key/1", server.url))
        .send()
        .expect("GET");
    assert_eq!(bad_owner.status(), 404);
    for path in ["/librarian", "/librarian/import", "/librarian/consortium"] {
        let response = client
            .get(format!("{}{path}", server.url))
            .send()
            .expect("GET");
        assert_eq!(response.status(), 303, "{path}");
        let to = response.headers()["location"]
            .to_str()
            .expect("location")
            .to_string();
        assert!(to.starts_with("/login?next="), "{path} -> {to}");
    }
    // Logged in, a form without its CSRF token is refused, and nothing changes.
    let login = client
        .post(format!("{}/login", server.url))
        .form(&[("token", server.token.as_str())])
        .send()
        .expect("POST");
    assert_eq!(login.status(), 303);
    let cookie = crate::support::session_cookie(login.headers());
    let refused = client
        .post(format!("{}/librarian/consortium/create", server.url))
        .header("cookie", &cookie)
        .form(&[("name", "Tanpa token")])
        .send()
        .expect("POST");
    assert_eq!(refused.status(), 403);
    let page = refused.text().expect("text");
    assert!(page.contains("Formulir ini sudah kedaluwarsa"), "{page}");
    assert!(
        server.library.consortia().list().is_empty(),
        "nothing was founded"
    );
    // A librarian pastes a broken ticket: the page says in Indonesian what is wrong and
    // what to do, the core's own words beneath.
    let page = client
        .get(format!("{}/librarian/consortium", server.url))
        .header("cookie", &cookie)
        .send()
        .expect("GET")
        .text()
        .expect("text");
    let csrf = crate::support::csrf_of(&page);
    let ticket = jalin_node::consortium_requests::execute(
        server.library.consortia(),
        jalin_node::consortium_requests::Request::Create {
            name: "Kemitraan Uji".into(),
        },
        jalin_node::server::now_ms(),
        Vec::new(),
    )
    .and_then(|_| {
        jalin_node::consortium_requests::execute(
            server.library.consortia(),
            jalin_node::consortium_requests::Request::Invite {
                consortium: None,
                role: jalin_protocol::consortium::log::Role::Member,
                expires_s: 7 * 86_400,
                note: String::new(),
                with_agreement: false,
                code: false,
            },
            jalin_node::server::now_ms(),
            Vec::new(),
        )
    })
    .expect("an invite")
    .text
    .expect("its ticket");
    // One character changed in copying.
    let mut mistyped: Vec<char> = ticket.chars().collect();
    let at = mistyped.len() / 2;
    mistyped[at] = if mistyped[at] == 'A' { 'B' } else { 'A' };
    let mistyped: String = mistyped.into_iter().collect();
    for (pasted, said) in [
        ("Halo, ini tiketnya", "Ini bukan dokumen Jalin."),
        (mistyped.as_str(), "Teksnya berubah saat disalin"),
    ] {
        let response = client
            .post(format!("{}/librarian/consortium/join", server.url))
            .header("cookie", &cookie)
            .form(&[("csrf", csrf.as_str()), ("ticket", pasted)])
            .send()
            .expect("POST");
        assert_eq!(response.status(), 400, "{pasted}");
        let page = response.text().expect("text");
        assert!(page.contains(said), "{pasted}: {page}");
        assert!(page.contains("Rincian teknis:"), "{page}");
        assert!(!page.contains("panicked"), "{page}");
    }
    // The API names the kind of failure beside its words.
    let answer = client
        .post(format!("{}/api/consortium", server.url))
        .bearer_auth(&server.token)
        .json(&serde_json::json!({ "action": "join", "ticket": mistyped }))
        .send()
        .expect("POST");
    assert_eq!(answer.status(), 400);
    let body: serde_json::Value = answer.json().expect("JSON");
    assert_eq!(body["code"], "mistyped", "{body}");
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
    // A search too long for the index is told so, in words.
    let long = "kata ".repeat(300);
    let response = client
        .get(format!("{}/", server.url))
        .query(&[("q", long.as_str())])
        .send()
        .expect("GET");
    assert_eq!(response.status(), 400);
    assert!(response
        .text()
        .expect("text")
        .contains("Pencarian meminta lebih dari yang dilayani simpul"));
    // Odd searches are answered, not failed: syntax left open, control characters.
    for q in [
        "\"sejarah",
        "title:",
        "year:abc",
        "(",
        "*",
        "sejarah AND",
        "subject:\"",
        "\\",
        "a\u{0}b",
    ] {
        let response = client
            .get(format!("{}/", server.url))
            .query(&[("q", q)])
            .send()
            .expect("GET");
        assert_eq!(response.status(), 200, "{q:?}");
        let page = response.text().expect("text");
        assert!(page.contains("judul ditemukan"), "{q:?}: {page}");
        assert!(!page.contains('\u{0}'), "{q:?}: a NUL shown back");
    }
}

/// A result says how many copies are available, and the record page each copy's status
/// in words (Koha's items: `$q` a due date, so on loan).
#[test]
fn each_result_says_how_many_copies_are_available() {
    let server = start(None);
    let record = br#"<collection xmlns="http://www.loc.gov/MARC21/slim"><record>
<leader>00000nam a2200000 a 4500</leader>
<controlfield tag="001">tersedia-1</controlfield>
<datafield tag="111" ind1="2" ind2=" "><subfield code="a">Lokakarya Bahasa Jawa</subfield><subfield code="n">(2nd :</subfield><subfield code="d">2001 :</subfield><subfield code="c">Yogyakarta)</subfield></datafield>
<datafield tag="245" ind1="0" ind2="0"><subfield code="a">Kamus Besar Bahasa Jawa</subfield></datafield>
<datafield tag="952" ind1=" " ind2=" "><subfield code="a">PUSAT</subfield><subfield code="o">499.2 KAM</subfield><subfield code="p">B0001</subfield></datafield>
<datafield tag="952" ind1=" " ind2=" "><subfield code="a">PUSAT</subfield><subfield code="o">499.2 KAM</subfield><subfield code="p">B0002</subfield><subfield code="q">2026-12-01</subfield></datafield>
<datafield tag="952" ind1=" " ind2=" "><subfield code="a">PUSAT</subfield><subfield code="o">499.2 KAM</subfield><subfield code="p">B0003</subfield><subfield code="1">1</subfield></datafield>
</record></collection>"#;
    let summary = server
        .library
        .import(
            &jalin_node::library::Source::Bytes(record.to_vec()),
            &jalin_node::library::ImportOptions::default(),
            |_| {},
        )
        .expect("imports");
    assert_eq!(summary.added, 1, "{:?}", summary.rejected);
    let results: serde_json::Value =
        reqwest::blocking::get(format!("{}/api/search?q=kamus+jawa", server.url))
            .expect("GET")
            .json()
            .expect("JSON");
    assert_eq!(results["hits"][0]["copies"], 3, "{results}");
    assert_eq!(results["hits"][0]["available"], 1, "{results}");
    let page = reqwest::blocking::get(format!("{}/?q=kamus+jawa", server.url))
        .expect("GET")
        .text()
        .expect("text");
    assert!(
        page.contains("3 eksemplar, <span class=\"availability\">1 tersedia</span>"),
        "{page}"
    );
    let own = server.library.id().to_hex();
    let page = reqwest::blocking::get(format!("{}/record/{own}/tersedia-1", server.url))
        .expect("GET")
        .text()
        .expect("text");
    for status in ["tersedia", "sedang dipinjam", "hilang"] {
        assert!(page.contains(status), "{status}: {page}");
    }
    assert!(!page.contains("on loan"), "{page}");
    // A meeting's heading as a librarian reads it.
    assert!(
        page.contains("Lokakarya Bahasa Jawa (2nd : 2001 : Yogyakarta)"),
        "{page}"
    );
}

/// Logs in on the node at `url` with its token.
/// The API token `jalin init` wrote in a data dir.
fn api_token(data: &std::path::Path) -> String {
    std::fs::read_to_string(data.join("api-token"))
        .expect("token")
        .trim()
        .to_string()
}

async fn login(browser: &Browser, url: &str, token: &str) {
    browser.goto(&format!("{url}/login")).await;
    browser.fill("#token", token).await;
    browser.follow("form.stack button").await;
}

#[test]
fn a_librarian_borrows_a_book_that_another_librarian_supplies_each_on_their_own_node() {
    use crate::ill::{agree, libraries, the_same_book};
    use jalin_node::node::{Node, NodeOptions};
    if !have_browser() {
        return;
    }
    let Some(axe) = axe_source() else { return };
    let libraries = libraries(&["PERPUSDESA", "SMP1KEMIRI"]);
    agree(&libraries, true);
    let record = the_same_book(&libraries, &[1]).remove(0);
    let (a, b) = (libraries[0].0.clone(), libraries[1].0.clone());
    let b_hex = b.id().to_hex();
    runtime().block_on(async {
        let options = || NodeOptions {
            http: Some("127.0.0.1:0".into()),
            p2p: Some(vec!["/ip4/127.0.0.1/tcp/0".parse().expect("address")]),
            ..NodeOptions::default()
        };
        let node_a = Node::spawn(a.clone(), options()).await.expect("A runs");
        let node_b = Node::spawn(b.clone(), options()).await.expect("B runs");
        let (net_a, net_b) = (
            node_a.net().expect("network").clone(),
            node_b.net().expect("network").clone(),
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let address = loop {
            if let Some(address) = net_b
                .listen_addresses()
                .await
                .expect("runs")
                .into_iter()
                .next()
            {
                break address;
            }
            assert!(std::time::Instant::now() < deadline, "B never listened");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        net_a.dial(address).await.expect("dials");
        let (url_a, url_b) = (
            node_a.url().expect("A serves"),
            node_b.url().expect("B serves"),
        );
        let mut browser = Browser::open("ill", axe).await;
        // A's librarian finds the book (B's record, in A's union catalog) and asks.
        login(&browser, &url_a, &a.data().api_token).await;
        browser
            .goto(&format!("{url_a}/record/{b_hex}/{record}"))
            .await;
        assert_eq!(
            browser.text("#ill-heading").await,
            "Pinjam dari perpustakaan lain"
        );
        browser.check("record-with-request").await;
        browser.fill("#ill-patron", "ANGGOTA-0042").await;
        browser.fill("#ill-note", "untuk tugas sekolah").await;
        browser.follow("#ill-request").await;
        let id_url = browser.client.current_url().await.expect("url").to_string();
        let id = id_url.rsplit('/').next().expect("an id").to_string();
        assert_eq!(id.len(), 64, "{id_url}");
        browser.check("requested").await;

        // B's librarian, on B's node, sees it in the lending queue and supplies it.
        login(&browser, &url_b, &b.data().api_token).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            browser.goto(&format!("{url_b}/librarian/ill")).await;
            if browser.text("main").await.contains("Laskar pelangi") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the request never reached B"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        browser.check("lender-queue").await;
        browser.follow(&format!("#will_supply-{}", &id[..12])).await;
        assert_eq!(browser.text("#loan-state").await, "akan dipinjamkan");
        browser.follow("#do-ship").await;
        assert_eq!(browser.text("#loan-state").await, "dikirim");
        browser.check("shipped").await;
        browser
            .goto(&format!("{url_b}/librarian/ill/{id}/slip"))
            .await;
        let slip = browser.text("main").await;
        assert!(
            slip.contains("Laskar pelangi") && slip.contains("Perpustakaan PERPUSDESA"),
            "{slip}"
        );
        assert!(
            !slip.contains("ANGGOTA-0042"),
            "the lender never sees the patron"
        );
        browser.check("slip").await;
        // The lender's holding shows the copy out on interlibrary loan.
        browser
            .goto(&format!("{url_b}/record/{b_hex}/{record}"))
            .await;
        let held = browser.text("table.holdings").await;
        assert!(held.contains("sedang dipinjam antarperpustakaan"), "{held}");
        browser.check("holding-out").await;

        // A's librarian, back on A's node, receives it.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            browser.goto(&format!("{url_a}/librarian/ill/{id}")).await;
            if browser.text("#loan-state").await == "dikirim" {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the shipment never reached A"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        browser.follow("#do-receive").await;
        assert_eq!(
            browser.text("#loan-state").await,
            "ada di perpustakaan peminjam"
        );
        assert!(
            browser.text("main").await.contains("ANGGOTA-0042"),
            "A keeps its patron reference"
        );
        // The history in the page's language, not the protocol's.
        let history = browser.text("main ol").await;
        assert!(
            history.contains("perpustakaan pemilik, mengirim buku"),
            "{history}"
        );
        browser.check("received").await;
        browser.close().await;
        node_a.shutdown().await.expect("A stops");
        node_b.shutdown().await.expect("B stops");
    });
}

#[test]
fn a_patron_suggests_a_book_after_an_empty_search_and_the_librarian_reads_it() {
    if !have_browser() {
        return;
    }
    let Some(axe) = axe_source() else { return };
    let server = start(None);
    runtime().block_on(async {
        let mut patron = Browser::open("suggest", axe.clone()).await;
        patron.goto(&server.url).await;
        patron
            .loads(
                "a search that finds nothing",
                patron.fill("#q", "budidaya jamur tiram\u{e007}"),
            )
            .await;
        assert_eq!(patron.text("#suggest-heading").await, "Usulkan buku");
        // The title is the search, ready to send; the patron adds the rest.
        assert_eq!(
            patron.prop("#suggest-title", "value").await,
            "budidaya jamur tiram"
        );
        patron.check("suggestion form").await;
        patron.fill("#suggest-author", "Sutanto").await;
        patron
            .fill("#suggest-why", "Kelompok tani desa ingin belajar")
            .await;
        patron.follow("#suggest-send").await;
        assert_eq!(
            patron.text("h1").await,
            "Terima kasih, usulan Anda sudah diterima"
        );
        patron.check("suggestion sent").await;
        patron.close().await;

        let mut librarian = Browser::open("needs", axe).await;
        login(&librarian, &server.url, &server.token).await;
        librarian
            .goto(&format!("{}/librarian/needs", server.url))
            .await;
        assert_eq!(librarian.text("h1").await, "Kebutuhan pemustaka");
        let empty = librarian.text("#table-empty").await;
        assert!(
            empty.contains("budidaya jamur tiram") && empty.contains("Belum dimiliki siapa pun"),
            "{empty}"
        );
        let suggestions = librarian.text("#table-suggestions").await;
        for text in [
            "budidaya jamur tiram",
            "Sutanto",
            "Kelompok tani desa ingin belajar",
        ] {
            assert!(suggestions.contains(text), "{text:?} not in {suggestions}");
        }
        librarian.check("needs page").await;
        librarian.close().await;
    });
}

#[test]
fn the_collection_page_draws_its_chart_with_no_script_and_passes_axe() {
    if !have_browser() {
        return;
    }
    let Some(axe) = axe_source() else { return };
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cli/demo/loc-indonesia-sample.mrc");
    let server = start(Some(&sample));
    // A conspectus is stated to partners: a partnership (of one, here).
    jalin_tests::fixtures::form_consortium("Jaringan Kemiri", &[&server.library]);
    runtime().block_on(async {
        let mut librarian = Browser::open("collection", axe).await;
        login(&librarian, &server.url, &server.token).await;
        librarian
            .goto(&format!("{}/librarian/collection", server.url))
            .await;
        assert_eq!(librarian.text("h1").await, "Koleksi bersama");
        let table = librarian.text("#overlap-table").await;
        assert!(table.contains("Perpustakaan Uji (UJI)"), "{table}");
        // The chart is drawn: its bar for the one library has a width.
        let width = librarian
            .client
            .execute(
                "return document.querySelector('#overlap-chart rect').getBoundingClientRect().width;",
                vec![],
            )
            .await
            .expect("measures");
        assert!(width.as_f64().is_some_and(|w| w > 10.0), "{width}");
        librarian.check("collection page").await;
        // By language and by decade too.
        let languages = librarian.text("table.by-lang").await;
        assert!(languages.contains("ind"), "{languages}");
        let decades = librarian.text("table.by-decade").await;
        assert!(decades.lines().any(|l| l.starts_with("19")), "{decades}");
        // The conspectus: this library states its levels in history; the table shows them
        // beside its catalog's titles there.
        let conspectus = librarian.text("#conspectus-table").await;
        assert!(conspectus.contains("Belum dinyatakan"), "{conspectus}");
        for (select, level) in [("#current-900", "3"), ("#commitment-900", "4")] {
            librarian
                .client
                .find(Locator::Css(&format!("{select} option[value='{level}']")))
                .await
                .expect("the level's option")
                .click()
                .await
                .expect("selects");
        }
        librarian.follow("#conspectus-save").await;
        let conspectus = librarian.text("#conspectus-table").await;
        assert!(conspectus.contains("Tingkat 3 → 4"), "{conspectus}");
        librarian.check("conspectus stated").await;
        librarian.close().await;
    });
}

#[test]
fn a_librarian_planning_a_held_title_is_warned_and_adds_it_only_when_sure() {
    if !have_browser() {
        return;
    }
    let Some(axe) = axe_source() else { return };
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cli/demo/loc-indonesia-sample.mrc");
    let server = start(Some(&sample));
    // A partnership whose agreement coordinates acquisition.
    jalin_tests::fixtures::form_consortium("Jaringan Kemiri", &[&server.library]);
    jalin_tests::fixtures::agree(&[&server.library], "coordinated_acquisition = true");
    let held = server
        .library
        .search("sejarah", 1, 1)
        .expect("searches")
        .hits
        .remove(0);
    let main_title = held
        .title
        .split(" : ")
        .next()
        .unwrap_or_default()
        .to_string();
    runtime().block_on(async {
        let mut librarian = Browser::open("plans", axe).await;
        login(&librarian, &server.url, &server.token).await;
        librarian
            .goto(&format!("{}/librarian/plans", server.url))
            .await;
        assert_eq!(librarian.text("h1").await, "Rencana pengadaan");
        librarian.check("plans page empty").await;
        librarian.fill("#plan-title", &main_title).await;
        if let Some(author) = held.authors.first() {
            librarian.fill("#plan-author", author).await;
        }
        librarian.follow("#plan-add").await;
        // Held here: the warning, with the holding, and nothing added yet.
        let flagged = librarian.text("#plans-flagged").await;
        assert!(
            flagged.contains("Sudah dimiliki perpustakaan ini"),
            "{flagged}"
        );
        assert_eq!(
            librarian.text("#plans-own").await,
            "Rencana perpustakaan ini"
        );
        assert!(!librarian
            .client
            .source()
            .await
            .expect("source")
            .contains("table-plans-own"));
        librarian.check("plan flagged").await;
        librarian.follow("#plans-confirm").await;
        let own = librarian.text("#table-plans-own").await;
        assert!(
            own.contains(&main_title) && own.contains("Direncanakan"),
            "{own}"
        );
        assert!(own.contains("Sudah dimiliki perpustakaan ini"), "{own}");
        // A title no one holds goes in at once.
        librarian.fill("#plan-title", "Kitab tani lestari").await;
        librarian
            .fill("#plan-note", "Banyak dicari kelompok tani")
            .await;
        librarian.follow("#plan-add").await;
        let own = librarian.text("#table-plans-own").await;
        assert!(own.contains("Kitab tani lestari"), "{own}");
        assert!(own.contains("Banyak dicari kelompok tani"), "{own}");
        librarian.check("plans page").await;
        librarian.close().await;
    });
}

#[test]
fn a_patron_fills_in_the_survey_and_the_librarian_sees_it_beside_the_collection() {
    if !have_browser() {
        return;
    }
    let Some(axe) = axe_source() else { return };
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cli/demo/loc-indonesia-sample.mrc");
    let server = start(Some(&sample));
    jalin_node::survey::execute(
        &server.library,
        jalin_node::survey::SurveyRequest::Create { definition: None },
    )
    .expect("creates");
    runtime().block_on(async {
        let mut patron = Browser::open("survey", axe.clone()).await;
        patron.goto(&server.url).await;
        patron.follow("#survey-link").await;
        assert_eq!(patron.text("h1").await, "Angket pemustaka");
        patron.check("survey form").await;
        // Petani, 26-40, interested in technology and history; a wish.
        for choice in [
            "#q-pekerjaan-3",
            "#q-usia-4",
            "#q-jenis_kelamin-2",
            "#q-minat-7",
            "#q-minat-10",
        ] {
            patron.click(choice).await;
        }
        patron.fill("#q-saran", "Buku budidaya jamur tiram").await;
        patron.follow("#survey-send").await;
        assert_eq!(
            patron.text("h1").await,
            "Terima kasih, jawaban Anda sudah diterima"
        );
        patron.close().await;

        let mut librarian = Browser::open("survey-report", axe).await;
        login(&librarian, &server.url, &server.token).await;
        librarian
            .goto(&format!("{}/librarian/survey", server.url))
            .await;
        assert_eq!(librarian.text("h1").await, "Hasil angket pemustaka");
        assert_eq!(librarian.text("#survey-total").await, "1");
        let work = librarian.text("#table-pekerjaan").await;
        assert!(
            work.lines()
                .any(|l| l.starts_with("Petani, peternak atau nelayan") && l.contains(" 1 ")),
            "{work}"
        );
        let interests = librarian.text("#table-interests").await;
        let technology = interests
            .lines()
            .find(|l| l.starts_with("600"))
            .unwrap_or_else(|| panic!("no 600 row in {interests}"));
        // Every answer asks for technology: 100% asked, beside the catalog's share.
        assert!(technology.contains("100.0%"), "{technology}");
        let wishes = librarian.text("main").await;
        assert!(wishes.contains("Buku budidaya jamur tiram"), "{wishes}");
        librarian.check("survey results").await;
        librarian.close().await;
    });
}

#[test]
fn a_librarian_finds_a_partner_by_its_profile_and_invites_it_with_the_agreement() {
    if !have_browser() {
        return;
    }
    let Some(axe) = axe_source() else { return };
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cli/demo/loc-indonesia-sample.mrc");
    let server = start(Some(&sample));
    jalin_tests::fixtures::form_consortium("Jaringan Kemiri", &[&server.library]);
    jalin_tests::fixtures::agree(&[&server.library], "interlibrary_loan = true");
    // A school holding the sample's last hundred records and a few of its own.
    let records = crate::partners::records();
    let (school, _school_dir) =
        crate::partners::library_of("SMPN 1 Kemiri", "SMP1", &records[records.len() - 100..]);
    let profile =
        jalin_node::profiles::execute(&school, jalin_node::profiles::ProfileRequest::Show)
            .expect("shows")
            .text
            .expect("text");
    let joiner = start(None);
    runtime().block_on(async {
        let mut librarian = Browser::open("partners", axe).await;
        login(&librarian, &server.url, &server.token).await;
        librarian
            .goto(&format!("{}/librarian/partners", server.url))
            .await;
        assert_eq!(librarian.text("h1").await, "Mencari mitra");
        assert!(librarian.text("#no-candidates").await.contains("Belum ada"));
        // This library's own profile: the form, the text, the QR code.
        assert!(librarian
            .prop("#own-text", "value")
            .await
            .starts_with("JALIN-PROFILE:"));
        librarian.fill("#p-district", "Kemiri, Purworejo").await;
        librarian.follow("#profile-save").await;
        assert_eq!(
            librarian.prop("#p-district", "value").await,
            "Kemiri, Purworejo"
        );
        librarian.check("partners page empty").await;
        // A school's profile, pasted.
        librarian
            .client
            .execute(
                "document.querySelector('#profile-text').value = arguments[0];",
                vec![serde_json::Value::String(profile.clone())],
            )
            .await
            .expect("pastes");
        librarian.follow("#profile-take").await;
        assert!(librarian
            .text("#profile-taken")
            .await
            .contains("SMPN 1 Kemiri"));
        let candidate = librarian.text("article.candidate").await;
        assert!(candidate.contains("SMPN 1 Kemiri"), "{candidate}");
        // Every one of its titles is here already: it brings no new title.
        assert!(librarian.text(".new-titles").await.starts_with("0 (0%"));
        librarian.check("a candidate").await;
        // Invited, with the agreement in force.
        librarian.follow(".invite-candidate").await;
        let invitation = librarian.prop("#invitation", "value").await;
        assert!(invitation.contains("JALIN-AGREEMENT:"), "{invitation}");
        librarian.check("the invitation").await;
        // The school's librarian, on its own node, reads the agreement before joining.
        login(&librarian, &joiner.url, &joiner.token).await;
        librarian
            .goto(&format!("{}/librarian/consortium", joiner.url))
            .await;
        librarian
            .client
            .execute(
                "document.querySelector('#ticket-in').value = arguments[0];",
                vec![serde_json::Value::String(invitation)],
            )
            .await
            .expect("pastes");
        librarian
            .follow("form[action='/librarian/consortium/join'] button")
            .await;
        assert_eq!(
            librarian.text("h1").await,
            "Baca perjanjiannya sebelum bergabung"
        );
        let terms = librarian.text("#proposed-terms").await;
        assert!(terms.contains("Pinjam antarperpustakaan ya"), "{terms}");
        assert!(librarian
            .text("#proposed")
            .await
            .contains("Jaringan Kemiri"));
        librarian.check("the agreement before joining").await;
        librarian.close().await;
    });
    // Nothing joined before the librarian agreed.
    assert!(joiner.library.consortia().list().is_empty());
}

#[test]
fn a_librarian_signs_up_for_a_partners_training_and_posts_one_on_the_calendar() {
    if !have_browser() {
        return;
    }
    let Some(axe) = axe_source() else { return };
    let server = start(None);
    let (_partner_dir, partner_data) = new_library(100);
    let partner = jalin_node::library::Library::open(partner_data).expect("opens");
    let both = [server.library.as_ref(), &partner];
    jalin_tests::fixtures::form_consortium("Jaringan Kemiri", &both);
    jalin_tests::fixtures::agree(&both, "staff_development = true");
    let next_week = jalin_node::server::now_ms() + 7 * 86_400_000;
    jalin_node::staff::execute(
        &partner,
        jalin_node::staff::StaffRequest::AddTraining {
            consortium: None,
            training: jalin_protocol::consortium::staff::Training {
                title: "Merawat buku lama".into(),
                description: String::new(),
                starts_ms: next_week,
                minutes: 90,
                place: String::new(),
                online: true,
                leader: "Pak Joko".into(),
                audience: "semua".into(),
                seats: None,
                attended: None,
            },
        },
    )
    .expect("posts");
    jalin_tests::fixtures::share_documents(&both);
    runtime().block_on(async {
        let mut librarian = Browser::open("staff", axe).await;
        login(&librarian, &server.url, &server.token).await;
        librarian
            .goto(&format!("{}/librarian/staff", server.url))
            .await;
        assert_eq!(librarian.text("h1").await, "Pengembangan SDM");
        let calendar = librarian.text("#trainings").await;
        assert!(calendar.contains("Merawat buku lama"), "{calendar}");
        librarian.check("the calendar").await;
        librarian.fill("#people-1", "2").await;
        librarian.follow("button.signup").await;
        assert!(librarian
            .text("#training-1 .signups")
            .await
            .starts_with("1 perpustakaan, 2 orang"));
        // A training of its own.
        librarian
            .fill("#t-title", "Katalogisasi dengan MARC 21")
            .await;
        librarian.fill("#t-starts", "2030-02-01 09:00").await;
        librarian.fill("#t-place", "Ruang baca").await;
        librarian.fill("#t-leader", "Bu Sri").await;
        librarian.follow("#training-add").await;
        let calendar = librarian.text("#trainings").await;
        assert!(
            calendar.contains("Katalogisasi dengan MARC 21")
                && calendar.contains("2030-02-01 09:00 WIB"),
            "{calendar}"
        );
        // Skills, and a question.
        librarian
            .fill(
                "#own-skills",
                "Sri Wahyuni=katalogisasi, MARC;0812 3456 789",
            )
            .await;
        librarian.follow("#skills-save").await;
        assert!(librarian
            .text("#skills")
            .await
            .contains("Sri Wahyuni: katalogisasi, MARC (0812 3456 789)"));
        librarian.fill("#ask-topic", "Impor SLiMS").await;
        // Two lines: the browser sends them with CR LF.
        librarian
            .fill(
                "#ask-question",
                "Bagaimana mengekspor katalog SLiMS?\nVersi 9.",
            )
            .await;
        librarian.follow("#ask-send").await;
        assert!(librarian.text("#help").await.contains("Impor SLiMS"));
        let figures = librarian.text("#staff-figures").await;
        assert!(figures.contains("Permintaan bantuan\n1"), "{figures}");
        librarian.check("the staff page").await;
        librarian.close().await;
    });
    // The partner sees this library's sign-up once the documents travel.
    jalin_tests::fixtures::share_documents(&both);
    let seen = jalin_node::staff::list(&partner).expect("lists");
    let training = seen
        .trainings
        .iter()
        .find(|t| t.training.title == "Merawat buku lama")
        .expect("its training");
    assert_eq!(training.people, 2);
    assert_eq!(training.signups.len(), 1);
}

#[test]
fn the_evaluation_report_draws_its_charts_is_signed_and_prints_to_pdf() {
    if !have_browser() {
        return;
    }
    let Some(axe) = axe_source() else { return };
    let clock = std::sync::Arc::new(jalin_node::clock::ManualClock::at(jalin_tests::fixtures::T));
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cli/demo/loc-indonesia-sample.mrc");
    let server = crate::support::start_clocked(Some(&sample), |_| {}, Some(clock.clone()));
    let (_partner_dir, mut partner_data) = new_library(100);
    partner_data.config.library.code = "DESA".into();
    partner_data.config.library.name = "Perpustakaan Desa Kemiri".into();
    let partner =
        jalin_node::library::Library::open_with_clock(partner_data, clock.clone()).expect("opens");
    let both = [server.library.as_ref(), &partner];
    let id = jalin_tests::fixtures::form_consortium("Jaringan Kemiri", &both);
    jalin_tests::fixtures::agree(
        &both,
        "interlibrary_loan = true\nevaluation_period_months = 6",
    );
    let (_, period) = jalin_node::evaluation::select(&partner, &id, None).expect("a period");
    jalin_node::evaluation::publish_figures(
        &partner,
        &id,
        period,
        jalin_node::evaluation::HandInput {
            visits: Some(300),
            ..Default::default()
        },
    )
    .expect("publishes");
    jalin_tests::fixtures::share_documents(&both);
    runtime().block_on(async {
        let mut librarian = Browser::open("evaluation", axe).await;
        login(&librarian, &server.url, &server.token).await;
        librarian
            .goto(&format!("{}/librarian/evaluation", server.url))
            .await;
        assert_eq!(librarian.text("h1").await, "Evaluasi berkala");
        let members = librarian.text("#eval-member-table").await;
        assert!(
            members.contains("Perpustakaan Desa Kemiri (DESA)")
                && members.contains("Belum mengirim angka"),
            "{members}"
        );
        librarian.check("the report before this library's figures").await;
        // This library's figures, with its visits counted by hand.
        librarian.fill("#hand-visits", "450").await;
        librarian.follow("#eval-figures").await;
        let members = librarian.text("#eval-member-table").await;
        assert!(!members.contains("Belum mengirim angka"), "{members}");
        // The chart of records has a bar for this library's catalog (the partner's,
        // empty, has none to see).
        let width = librarian
            .client
            .execute(
                "return Math.max(...Array.from(document.querySelectorAll('#eval-charts figure:first-of-type rect'), r => r.getBoundingClientRect().width));",
                vec![],
            )
            .await
            .expect("measures");
        assert!(width.as_f64().is_some_and(|w| w > 10.0), "{width}");
        let totals = librarian.text("#eval-totals").await;
        assert!(totals.contains("Kunjungan dalam periode 750"), "{totals}");
        // How current each member's catalog is here: this library's own, changed today.
        let here = librarian.text("#eval-here-table").await;
        assert!(
            here.contains("Perpustakaan Uji (UJI) 500 2026-11-24"),
            "{here}"
        );
        // Signed, with a decision.
        librarian.fill("#eval-notes", "Periode pertama.").await;
        librarian
            .fill("#eval-decisions", "Pelatihan MARC | DESA | 2027-03-01")
            .await;
        librarian.follow("#eval-sign-button").await;
        let signed = librarian.text("#eval-signed").await;
        assert!(
            signed.contains("Perpustakaan Uji") && signed.contains("Pelatihan MARC"),
            "{signed}"
        );
        librarian.check("the report signed").await;
        // The printable page, printed to PDF.
        librarian.follow("#eval-print").await;
        assert_eq!(librarian.text("h1").await, "Evaluasi berkala");
        let pdf = librarian
            .client
            .print(fantoccini::wd::PrintConfiguration::default())
            .await
            .expect("prints");
        assert!(pdf.starts_with(b"%PDF"), "not a PDF");
        assert!(pdf.len() > 10_000, "{} bytes", pdf.len());
        std::fs::write(
            workspace_root().join("target/screenshots/evaluation-report.pdf"),
            &pdf,
        )
        .expect("keeps the PDF");
        librarian.close().await;
    });
    // The partner's node finds the same report, over the same signed figures.
    jalin_tests::fixtures::share_documents(&both);
    let here = jalin_node::evaluation::report(&server.library, &id, period).expect("reports");
    let there = jalin_node::evaluation::report(&partner, &id, period).expect("reports");
    assert_eq!(here.digest(), there.digest());
    let signatures = partner
        .consortia()
        .evaluation_signatures(&id, &period)
        .expect("signatures");
    assert_eq!(there.verified_by(&signatures).len(), 1);
}

#[test]
fn a_librarian_receives_a_bundle_from_a_flash_disk_reads_it_then_applies_it_and_sends_one() {
    if !have_browser() {
        return;
    }
    let Some(axe) = axe_source() else { return };
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cli/demo/loc-indonesia-sample.mrc");
    let server = start(Some(&sample));
    let (_partner_dir, mut partner_data) = new_library(100);
    partner_data.config.library.code = "SDN2".into();
    partner_data.config.library.name = "SD Negeri 2 Kemiri".into();
    let partner = jalin_node::library::Library::open(partner_data).expect("opens");
    let both = [server.library.as_ref(), &partner];
    jalin_tests::fixtures::form_consortium("Jaringan Kemiri", &both);
    for i in 0..12 {
        let mut marc =
            jalin_protocol::marc::MarcRecord::new(jalin_protocol::marc::Leader::new_book());
        marc.push_control("001", &format!("SD{i}"));
        marc.push_data(jalin_protocol::marc::DataField::new(
            "245",
            '1',
            '0',
            &[('a', &format!("Dongeng Nusantara jilid {i}"))],
        ));
        partner.put(marc).expect("writes");
    }
    let (_, bytes) =
        jalin_node::bundle::export(&partner, &server.library.id(), Vec::new()).expect("makes");
    let flash_disk = tempfile::tempdir().expect("temp dir");
    let file = flash_disk.path().join("jalin-SDN2-untuk-UJI-1.jalin");
    std::fs::write(&file, &bytes).expect("writes");
    let mut altered = bytes.clone();
    let middle = altered.len() / 2;
    altered[middle] ^= 1;
    let altered_file = flash_disk.path().join("rusak.jalin");
    std::fs::write(&altered_file, &altered).expect("writes");
    runtime().block_on(async {
        let mut librarian = Browser::open("bundle", axe).await;
        login(&librarian, &server.url, &server.token).await;
        librarian
            .goto(&format!("{}/librarian/bundle", server.url))
            .await;
        assert_eq!(librarian.text("h1").await, "Sinkronisasi lewat flashdisk");
        assert!(librarian
            .text("#bundle-send")
            .await
            .contains("SD Negeri 2 Kemiri"));
        librarian.check("the flash-disk page").await;
        // Read first, nothing applied yet.
        librarian
            .fill("#bundle-file", file.to_str().expect("utf-8"))
            .await;
        librarian.follow("#bundle-read").await;
        let preview = librarian.text("#bundle-preview").await;
        assert!(preview.contains("SD Negeri 2 Kemiri"), "{preview}");
        assert!(preview.contains("12 perubahan"), "{preview}");
        assert_eq!(
            server.library.store().records_of(&partner.id()).count(),
            0,
            "read, not applied"
        );
        librarian.check("a bundle read before it is applied").await;
        librarian.follow("#bundle-apply").await;
        let done = librarian.text("#bundle-done").await;
        assert!(done.contains("Baru di sini: 12 perubahan"), "{done}");
        librarian.check("a bundle applied").await;
        // An altered file: refused, saying why, nothing applied.
        librarian
            .goto(&format!("{}/librarian/bundle", server.url))
            .await;
        librarian
            .fill("#bundle-file", altered_file.to_str().expect("utf-8"))
            .await;
        librarian.follow("#bundle-read").await;
        let refused = librarian.text("main").await;
        assert!(refused.contains("Tidak ada yang diterapkan"), "{refused}");
        librarian.close().await;
    });
    assert_eq!(server.library.store().records_of(&partner.id()).count(), 12);
    assert_eq!(
        server
            .library
            .search("dongeng nusantara", 1, 20)
            .expect("searches")
            .total,
        12
    );

    // "Kirim lewat flashdisk": the download for the partner, taken in there.
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let (cookie, page) = crate::support::logged_in(&client, &server, "/librarian/bundle");
    let csrf = crate::support::csrf_of(&page);
    let download = client
        .post(format!("{}/librarian/bundle/send", server.url))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str()), ("library", &partner.id().to_hex())])
        .send()
        .expect("downloads");
    assert_eq!(download.status(), 200);
    let disposition = download.headers()["content-disposition"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        disposition.contains("jalin-UJI-untuk-SDN2-1.jalin"),
        "{disposition}"
    );
    let bytes = download.bytes().expect("the file");
    let taken = jalin_node::bundle::import(&partner, || Ok(&bytes[..])).expect("takes");
    assert_eq!(
        partner.store().records_of(&server.library.id()).count(),
        server
            .library
            .store()
            .records_of(&server.library.id())
            .count()
    );
    assert!(
        taken
            .catalogs
            .iter()
            .all(|c| c.library != partner.id().to_hex()),
        "the partner's own catalog is not sent back"
    );
    // Without the form's token, no download.
    let refused = client
        .post(format!("{}/librarian/bundle/send", server.url))
        .header("cookie", &cookie)
        .form(&[("library", partner.id().to_hex())])
        .send()
        .expect("answers");
    assert_eq!(refused.status(), 403);
    // The API: the token needed, a replay refused with its code.
    let unauthorised = client
        .post(format!("{}/api/bundle/import", server.url))
        .body(std::fs::read(&file).expect("reads"))
        .send()
        .expect("answers");
    assert_eq!(unauthorised.status(), 401);
    let replay = client
        .post(format!("{}/api/bundle/import", server.url))
        .bearer_auth(&server.token)
        .body(std::fs::read(&file).expect("reads"))
        .send()
        .expect("answers");
    assert_eq!(replay.status(), 409);
    let body: serde_json::Value = replay.json().expect("json");
    assert_eq!(body["code"], "bundle_replayed");
}

/// A librarian makes an invite with a join code and reads the code off the page; the
/// other library's librarian types it into its own node's page and joins (found on the
/// local network by the code's number).
#[test]
fn a_librarian_reads_a_join_code_over_the_phone_and_the_other_joins_with_it() {
    if !have_browser() {
        return;
    }
    let Some(axe) = axe_source() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let udp_port = || {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("a free port")
            .port()
    };
    let port = udp_port();
    for (data, name, code, hear) in [
        (&a, "Perpustakaan Kecamatan Kemiri", "KECKEMIRI", port),
        (&b, "Perpustakaan Desa Lor", "DESALOR", udp_port()),
    ] {
        let (status, _, stderr) = jalin(data, &["init", "--name", name, "--code", code]);
        assert_eq!(status, 0, "{stderr}");
        let config = data.join("config.toml");
        let text = std::fs::read_to_string(&config).expect("config");
        let text = text
            .replace("mdns = true", "mdns = false")
            .replace("port = 47474", &format!("port = {hear}"))
            .replace("255.255.255.255:47474", &format!("127.0.0.1:{port}"));
        std::fs::write(&config, text).expect("writes");
    }
    assert_eq!(
        jalin(&a, &["consortium", "create", "--name", "Kemiri"]).0,
        0
    );
    let (_node_a, url_a, _) = node(&a);
    let (_node_b, url_b, _) = node(&b);
    runtime().block_on(async {
        let mut browser = Browser::open("join_code", axe).await;
        login(&browser, &url_a, &api_token(&a)).await;
        browser.goto(&format!("{url_a}/librarian/consortium")).await;
        browser
            .click("form[action='/librarian/consortium/invite'] input[name='code']")
            .await;
        browser
            .follow("form[action='/librarian/consortium/invite'] button")
            .await;
        let code = browser.text("#join-code").await;
        assert!(
            jalin_node::join_code::JoinCode::parse(&code).is_ok(),
            "{code}"
        );
        assert!(browser.text("main").await.contains("sekali"));
        browser.check("invite-with-code").await;

        login(&browser, &url_b, &api_token(&b)).await;
        browser.goto(&format!("{url_b}/librarian/consortium")).await;
        // Dictated: spaces, capitals.
        browser
            .fill("#code-in", &code.replace('-', " ").to_uppercase())
            .await;
        browser
            .follow("form[action='/librarian/consortium/join_code'] button")
            .await;
        let page = browser.text("main").await;
        assert!(page.contains("Perpustakaan Desa Lor"), "{page}");
        let members = browser.text("table.members").await;
        assert!(
            members.contains("Perpustakaan Kecamatan Kemiri")
                && members.contains("Perpustakaan Desa Lor"),
            "{members}"
        );
        browser.check("joined-with-code").await;
        browser.close().await;
    });
}
