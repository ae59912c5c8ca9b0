//! What the tests share: where the real test data is, and the `jalin` binary.

use jalin_node::library::{ImportOptions, Library, Source};
use jalin_node::node::{Node, NodeOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits inside the workspace")
        .to_path_buf()
}

/// `$JALIN_SHARED_DATA`, else `../shared/data` beside the checkout. `None` (with one line
/// saying so) when it is missing, so a lone clone still passes; CI always has it.
pub fn shared_data() -> Option<PathBuf> {
    let dir = std::env::var_os("JALIN_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("..").join("shared").join("data"));
    if dir.join("marc").is_dir() {
        Some(dir)
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have the shared data at {}",
            dir.display()
        );
        eprintln!(
            "skipped: no shared test data at {} (set JALIN_SHARED_DATA)",
            dir.display()
        );
        None
    }
}

/// Returns early from a test when the shared data is missing.
#[macro_export]
macro_rules! shared_data_or_skip {
    () => {
        match $crate::support::shared_data() {
            Some(dir) => dir,
            None => return,
        }
    };
}

/// The `jalin` binary of this workspace, built if it is not there yet (it shares the
/// test build's profile and artifacts, so this builds nothing twice).
pub fn jalin_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = workspace_root();
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("target"));
            let status = Command::new(env!("CARGO"))
                .args(["build", "--quiet", "-p", "jalin-cli", "--bin", "jalin"])
                .current_dir(&root)
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building the jalin binary failed");
            target.join("debug").join("jalin")
        })
        .clone()
}

/// `jalin --data-dir DATA ARGS` in network namespace `ns` (`ip netns exec`).
pub fn jalin_in(ns: &str, data: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", ns])
        .arg(jalin_binary())
        .arg("--data-dir")
        .arg(data)
        .args(args);
    command
}

/// Whether a command can be run (for tools `.ci/run` installs: xmllint, python3 with
/// pymarc). Missing on CI is a failure; elsewhere the test says so and is skipped.
pub fn have_tool(program: &str, args: &[&str]) -> bool {
    let ok = Command::new(program)
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have `{program}` (see .ci/run)"
        );
        eprintln!(
            "skipped: `{program} {}` is not available here",
            args.join(" ")
        );
    }
    ok
}

pub use jalin_tests::fixtures::new_library;

/// A node's HTTP server on 127.0.0.1 (a free port) over a fresh library; stopped when
/// dropped.
pub struct Server {
    pub url: String,
    pub token: String,
    pub library: Arc<Library>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// The ids of every record of this node's own catalog (deleted ones too), sorted.
    pub fn own_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .library
            .store()
            .records()
            .map(|r| r.expect("reads").record_id)
            .collect();
        ids.sort();
        ids
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A server over a fresh library holding `import`'s records.
pub fn start(import: Option<&std::path::Path>) -> Server {
    start_with(import, |_| {})
}

/// [`start`], the data dir's configuration first set by `configure`.
pub fn start_with(
    import: Option<&std::path::Path>,
    configure: impl FnOnce(&mut jalin_node::config::DataDir),
) -> Server {
    start_clocked(import, configure, None)
}

/// [`start_with`], the library reading the time from `clock` (the system's if none).
pub fn start_clocked(
    import: Option<&std::path::Path>,
    configure: impl FnOnce(&mut jalin_node::config::DataDir),
    clock: Option<Arc<dyn jalin_node::clock::Clock>>,
) -> Server {
    let (dir, mut data) = new_library(1000);
    configure(&mut data);
    let token = data.api_token.clone();
    let library = Arc::new(
        match clock {
            Some(clock) => Library::open_with_clock(data, clock),
            None => Library::open(data),
        }
        .expect("opens"),
    );
    if let Some(file) = import {
        library
            .import(
                &Source::File(file.to_path_buf()),
                &ImportOptions::default(),
                |_| {},
            )
            .expect("imports");
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (address_tx, address_rx) = std::sync::mpsc::channel();
    let served = library.clone();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let options = NodeOptions {
                http: Some("127.0.0.1:0".into()),
                ..NodeOptions::default()
            };
            let node = Node::spawn(served, options).await.expect("serves");
            address_tx
                .send(node.http_address().expect("an HTTP address"))
                .expect("test waits");
            let _ = stopped.await;
            node.shutdown().await.expect("stops cleanly");
        });
    });
    let address = address_rx.recv().expect("server started");
    Server {
        url: format!("http://{address}"),
        token,
        library,
        stop: Some(stop),
        thread: Some(thread),
        _dir: dir,
    }
}

pub use jalin_tests::fixtures::replicate;

/// The session cookie (`name=value`) a login answer sets.
pub fn session_cookie(headers: &reqwest::header::HeaderMap) -> String {
    headers["set-cookie"]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("name=value")
        .to_string()
}

/// Logs in to `server` with `client` (a blocking one that follows no redirects) and reads
/// the page at `path`: the session cookie and the page.
pub fn logged_in(
    client: &reqwest::blocking::Client,
    server: &Server,
    path: &str,
) -> (String, String) {
    let login = client
        .post(format!("{}/login", server.url))
        .form(&[("token", server.token.as_str())])
        .send()
        .expect("logs in");
    let cookie = session_cookie(login.headers());
    let page = client
        .get(format!("{}{path}", server.url))
        .header("cookie", &cookie)
        .send()
        .expect("answers")
        .text()
        .expect("text");
    (cookie, page)
}

/// The CSRF token of a librarian's page (its forms carry it).
pub fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page's CSRF token")
        .to_string()
}
