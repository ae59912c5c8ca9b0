//! The `jalin` binary end to end: init, start, the CLI through the running node's API,
//! a clean stop on SIGTERM, the same commands offline, and the demo.

use crate::shared_data_or_skip;
use crate::support::jalin_binary;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

fn jalin(data: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(jalin_binary())
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .expect("jalin runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Starts a node process and waits for the line that names its URL.
fn start(mut command: Command) -> (Child, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("jalin runs");
    let stdout = child.stdout.take().expect("piped");
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("the node prints its URL before anything else ends")
            .expect("utf-8");
        if let Some(at) = line.find("is serving ") {
            break line[at + "is serving ".len()..].trim().to_string();
        }
    };
    // Keep reading so the node never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

fn terminate(child: &mut Child) -> Option<i32> {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill runs");
    assert!(status.success());
    child.wait().expect("the node exits").code()
}

#[test]
fn a_library_from_init_to_stop() {
    let data = shared_data_or_skip!();
    let dir = tempfile::tempdir().expect("temp dir");
    let library = dir.path().join("kemiri-lor");
    let (code, stdout, stderr) = jalin(
        &library,
        &[
            "init",
            "--name",
            "Perpustakaan Desa Kemiri Lor",
            "--code",
            "KEMIRILOR",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("fingerprint"), "{stdout}");
    let (code, _, stderr) = jalin(&library, &["init", "--name", "Again", "--code", "AGAIN"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("already holds"), "{stderr}");

    let mut command = Command::new(jalin_binary());
    command
        .arg("--data-dir")
        .arg(&library)
        .args(["start", "--listen", "127.0.0.1:0"]);
    let (mut node, url) = start(command);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(library.join("node.json").exists());

    // Import through the running node (the node holds the catalog open).
    let file = data.join("marc/loc/loc-indonesia-3147.mrc");
    let (code, stdout, stderr) = jalin(&library, &["import", file.to_str().expect("utf-8 path")]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stderr.contains("through the running node"), "{stderr}");
    assert!(stdout.contains("3147 read, 3147 added"), "{stdout}");
    let (code, stdout, _) = jalin(&library, &["search", "sejarah", "indonesia"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("record(s) match"), "{stdout}");
    let (code, stdout, _) = jalin(&library, &["show", "00369705", "--format", "marcxml"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("<controlfield tag=\"001\">"), "{stdout}");
    let (code, stdout, _) = jalin(&library, &["status"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains(&format!("running at {url}")) && stdout.contains("records:     3147"),
        "{stdout}"
    );
    let (code, _, stderr) = jalin(&library, &["record", "delete", "00369705"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = jalin(&library, &["record", "delete", "00369705"]);
    assert_eq!(code, 2, "deleting twice: not found");
    assert!(stderr.contains("404"), "{stderr}");
    let export = dir.path().join("export.xml");
    let (code, _, stderr) = jalin(&library, &["export", export.to_str().expect("utf-8 path")]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&export)
            .expect("exported")
            .matches("<record>")
            .count(),
        3146
    );

    // SIGTERM: a clean stop.
    assert_eq!(terminate(&mut node), Some(0));
    assert!(
        !library.join("node.json").exists(),
        "the node says it is gone"
    );

    // Offline, the same commands open the catalog themselves.
    let (code, stdout, _) = jalin(&library, &["status"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("not running") && stdout.contains("records:     3146 (1 deleted)"),
        "{stdout}"
    );
    let (code, stdout, _) = jalin(&library, &["search", "isbn:9795986104"]);
    assert_eq!(
        (code, stdout.contains("0 record(s) match")),
        (1, true),
        "the deleted record is not found: {stdout}"
    );
    let (code, stdout, _) = jalin(&library, &["import", file.to_str().expect("utf-8 path")]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("1 added, 0 updated, 3146 unchanged"),
        "{stdout}"
    );
    let (code, stdout, _) = jalin(&library, &["reindex"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("3147 record(s)"), "{stdout}");
}

#[test]
fn the_demo_serves_real_records() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = Command::new(jalin_binary());
    command.current_dir(dir.path()).arg("demo");
    let (mut node, url) = start(command);
    let http = reqwest::blocking::Client::new();
    let results: serde_json::Value = http
        .get(format!("{url}/api/search?q=indonesia"))
        .send()
        .expect("answers")
        .json()
        .expect("json");
    assert!(results["total"].as_u64().expect("total") > 10, "{results}");
    let status: serde_json::Value = http
        .get(format!("{url}/api/status"))
        .send()
        .expect("answers")
        .json()
        .expect("json");
    assert_eq!(status["records"], 500);
    assert_eq!(terminate(&mut node), Some(0));
    assert!(dir.path().join("jalin-demo/config.toml").exists());
}
