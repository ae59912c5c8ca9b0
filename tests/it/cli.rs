//! The `jalin` binary end to end: init, start, the CLI through the running node's API,
//! a clean stop on SIGTERM, the same commands offline, and the demo.

use crate::shared_data_or_skip;
use crate::support::jalin_binary;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub(crate) fn jalin(data: &Path, args: &[&str]) -> (i32, String, String) {
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

/// A node process, killed if a test fails before it stops it.
pub(crate) struct Running(pub(crate) Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a node process and waits for the line that names its URL.
fn start(mut command: Command) -> (Running, String) {
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
    (Running(child), url)
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
    // The memory budget, part by part: the import left shard documents loaded in the
    // node, within their share.
    assert!(
        stdout.contains("memory:      budget 160 MB ([limits] memory_mb)\n"),
        "{stdout}"
    );
    let shards = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("shard documents"))
        .unwrap_or_else(|| panic!("no shard documents line: {stdout}"));
    let numbers: Vec<f64> = shards
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(
        numbers.len() >= 2 && numbers[0] > 0.0 && numbers[0] <= numbers[1],
        "held within the share: {shards}"
    );
    assert!(stdout.contains("node process"), "{stdout}");
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
    assert_eq!(terminate(&mut node.0), Some(0));
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
    // The demo prints its first URL once the three libraries have converged.
    let (mut node, url) = start(command);
    let http = reqwest::blocking::Client::new();
    let get = |path: &str| -> serde_json::Value {
        http.get(format!("{url}{path}"))
            .send()
            .expect("answers")
            .json()
            .expect("json")
    };
    let results = get("/api/search?q=indonesia");
    assert!(results["total"].as_u64().expect("total") > 10, "{results}");
    let status = get("/api/status");
    assert_eq!(status["records"], 200);
    let replicas = status["replicas"].as_array().expect("replicas");
    assert_eq!(replicas.len(), 2, "{status}");
    assert!(replicas.iter().all(|r| r["records"] == 200), "{status}");
    // Neighbours' collections overlap: a book held by two shows once, with both.
    let shared = get("/api/search?q=laporan+penelitian&per_page=50");
    assert!(
        shared["hits"]
            .as_array()
            .expect("hits")
            .iter()
            .any(|h| h["holdings"].as_array().map(Vec::len) == Some(2)),
        "{shared}"
    );
    assert_eq!(terminate(&mut node.0), Some(0));
    assert!(dir.path().join("jalin-demo/kemiri/config.toml").exists());
}

#[test]
fn a_consortium_formed_by_tickets_through_the_cli_and_the_api() {
    let dir = tempfile::tempdir().expect("temp dir");
    let a = dir.path().join("kemiri-lor");
    let b = dir.path().join("sdn2");
    let path = |name: &str| dir.path().join(name).to_str().expect("utf-8").to_string();
    let (code, _, stderr) = jalin(
        &a,
        &[
            "init",
            "--name",
            "Perpustakaan Desa Kemiri Lor",
            "--code",
            "KEMIRILOR",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = jalin(
        &b,
        &[
            "init",
            "--name",
            "Perpustakaan SDN 2 Kemiri",
            "--code",
            "SDN2KEMIRI",
        ],
    );
    assert_eq!(code, 0, "{stderr}");

    // A runs its node: A's commands go through the API; B works offline.
    let mut command = Command::new(jalin_binary());
    command
        .arg("--data-dir")
        .arg(&a)
        .args(["start", "--listen", "127.0.0.1:0"]);
    let (mut node, url) = start(command);
    let name = "Jaringan Perpustakaan Desa Kecamatan Kemiri";
    let (code, stdout, stderr) = jalin(&a, &["consortium", "create", "--name", name]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("first admin"), "{stdout}");

    let (code, stdout, stderr) = jalin(
        &a,
        &[
            "invite",
            "create",
            "--expires",
            "2d",
            "--note",
            "for SDN 2",
            "--qr",
            &path("ticket.svg"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let ticket = stdout.lines().next().expect("the ticket").to_string();
    assert!(ticket.starts_with("JALIN-INVITE:"), "{stdout}");
    assert!(stderr.contains("as member"), "{stderr}");
    let svg = std::fs::read_to_string(path("ticket.svg")).expect("QR written");
    assert!(svg.contains("<svg"), "{svg}");
    let (code, _, stderr) = jalin(&a, &["invite", "create", "--qr", &path("ticket.png")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(std::fs::read(path("ticket.png"))
        .expect("PNG")
        .starts_with(b"\x89PNG"));

    // A mistyped ticket is caught by its checksum.
    let mut mistyped: Vec<char> = ticket.chars().collect();
    let at = mistyped.len() / 2;
    mistyped[at] = if mistyped[at] == 'Q' { 'R' } else { 'Q' };
    let mistyped: String = mistyped.into_iter().collect();
    let (code, _, stderr) = jalin(&b, &["join", &mistyped]);
    assert_eq!(code, 2);
    assert!(stderr.contains("mistyped"), "{stderr}");

    // By hand (B could reach A's node, but this is the path without a network).
    let (code, _, stderr) = jalin(
        &b,
        &[
            "join",
            &ticket,
            "--offline",
            "--out",
            &path("acceptance.txt"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = jalin(&a, &["consortium", "accept", &path("acceptance.txt")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("Added Perpustakaan SDN 2 Kemiri"),
        "{stdout}"
    );
    let (code, _, stderr) = jalin(&a, &["consortium", "accept", &path("acceptance.txt")]);
    assert_eq!(code, 2, "an invite is used once");
    assert!(stderr.contains("already used"), "{stderr}");

    // The documents travel as a text file.
    let (code, _, stderr) = jalin(&a, &["consortium", "export", &path("a.txt")]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = jalin(&b, &["consortium", "import", &path("a.txt")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("0 refused"), "{stdout}");
    let (code, stdout, _) = jalin(&b, &["consortium", "members"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("admin  Perpustakaan Desa Kemiri Lor (KEMIRILOR)")
            && stdout.contains("member Perpustakaan SDN 2 Kemiri (SDN2KEMIRI)")
            && stdout.contains("added by KEMIRILOR"),
        "{stdout}"
    );

    // The agreement: A drafts and signs; B signs; in force with both.
    std::fs::write(
        path("mou.md"),
        "+++\ntitle = \"Perjanjian Kerja Sama\"\nunion_catalog = true\ninterlibrary_loan = true\ncoordinated_acquisition = false\nstaff_development = true\nloan_period_days = 14\nitems_per_request = 3\nevaluation_period_months = 12\n+++\nPara pihak sepakat berbagi katalog.\n",
    )
    .expect("writes");
    let (code, _, stderr) = jalin(&a, &["agreement", "draft", &path("mou.md")]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, _) = jalin(&a, &["agreement", "sign"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("1 of 2 signatures"), "{stdout}");
    jalin(&a, &["consortium", "export", &path("a.txt")]);
    jalin(&b, &["consortium", "import", &path("a.txt")]);
    let (code, stdout, _) = jalin(&b, &["agreement", "sign"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("2 of 2 signatures, in force"), "{stdout}");
    jalin(&b, &["consortium", "export", &path("b.txt")]);
    let (code, _, _) = jalin(&a, &["consortium", "import", &path("b.txt")]);
    assert_eq!(code, 0);
    let (code, stdout, _) = jalin(&a, &["agreement", "show"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("IN FORCE") && stdout.contains("Para pihak"),
        "{stdout}"
    );
    let (code, _, stderr) = jalin(&a, &["agreement", "export", "--out", &path("mou.html")]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, _) = jalin(&a, &["agreement", "verify", &path("mou.html")]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("in force"), "{stdout}");
    let html = std::fs::read_to_string(path("mou.html")).expect("exported");
    std::fs::write(path("mou.html"), html.replacen("berbagi", "berbagj", 1)).expect("writes");
    let (code, _, stderr) = jalin(&a, &["agreement", "verify", &path("mou.html")]);
    assert_eq!(code, 1);
    assert!(stderr.contains("NOT VALID"), "{stderr}");

    // The API: reads for everyone, writes with the token, bad requests change nothing.
    let http = reqwest::blocking::Client::new();
    let list: serde_json::Value = http
        .get(format!("{url}/api/consortia"))
        .send()
        .expect("answers")
        .json()
        .expect("json");
    let id = list["data"][0]["id"].as_str().expect("an id").to_string();
    assert_eq!(list["data"][0]["members"], 2);
    let documents = || {
        http.get(format!("{url}/api/consortia/{id}/documents"))
            .send()
            .expect("answers")
            .text()
            .expect("text")
    };
    let before = documents();
    assert_eq!(
        before.lines().filter(|l| l.starts_with("JALIN-")).count(),
        5
    );
    let create = serde_json::json!({"action": "create", "name": "Another"});
    let response = http
        .post(format!("{url}/api/consortium"))
        .json(&create)
        .send()
        .expect("answers");
    assert_eq!(response.status(), reqwest::StatusCode::UNAUTHORIZED);
    let token = std::fs::read_to_string(a.join("api-token")).expect("token");
    let response = http
        .post(format!("{url}/api/consortium"))
        .bearer_auth(token.trim())
        .body("{not json")
        .send()
        .expect("answers");
    assert_eq!(response.status(), reqwest::StatusCode::BAD_REQUEST);
    let forged = serde_json::json!({"action": "accept", "acceptance": mistyped});
    let response = http
        .post(format!("{url}/api/consortium"))
        .bearer_auth(token.trim())
        .json(&forged)
        .send()
        .expect("answers");
    assert_eq!(response.status(), reqwest::StatusCode::BAD_REQUEST);
    let members: serde_json::Value = http
        .get(format!("{url}/api/consortia/{}", &id[..8]))
        .send()
        .expect("answers")
        .json()
        .expect("json");
    assert_eq!(
        members["data"]["members"].as_object().map(|m| m.len()),
        Some(2)
    );
    assert_eq!(documents(), before, "nothing changed");
    assert_eq!(terminate(&mut node.0), Some(0));
}

/// Starts a node process; waits for its URL and its libp2p address.
pub(crate) fn start_with_p2p(mut command: Command) -> (Running, String, String) {
    command.stderr(Stdio::inherit());
    let (child, url, p2p) = jalin_tests::kills::spawn_node(command);
    (Running(child), url, p2p)
}

/// Starts a node on 127.0.0.1 (HTTP and libp2p on free ports): the process, its URL and
/// its libp2p address.
pub(crate) fn node(data: &Path) -> (Running, String, String) {
    let mut command = Command::new(jalin_binary());
    command.arg("--data-dir").arg(data).args([
        "start",
        "--listen",
        "127.0.0.1:0",
        "--p2p-listen",
        "/ip4/127.0.0.1/tcp/0",
    ]);
    start_with_p2p(command)
}

fn status_json(data: &Path) -> serde_json::Value {
    let (code, stdout, stderr) = jalin(data, &["status", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).expect("status JSON")
}

#[test]
fn two_libraries_on_one_machine_replicate_over_libp2p() {
    let dir = tempfile::tempdir().expect("temp dir");
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    let path = |name: &str| dir.path().join(name).to_str().expect("utf-8").to_string();
    for (data, name, code) in [
        (&a, "Perpustakaan A", "PERPUSA"),
        (&b, "Perpustakaan B", "PERPUSB"),
    ] {
        let (status, _, stderr) = jalin(data, &["init", "--name", name, "--code", code]);
        assert_eq!(status, 0, "{stderr}");
    }
    // The consortium by text, both nodes offline.
    assert_eq!(jalin(&a, &["consortium", "create", "--name", "Uji"]).0, 0);
    let (_, ticket, _) = jalin(&a, &["invite", "create"]);
    let ticket = ticket.lines().next().expect("ticket").to_string();
    assert_eq!(
        jalin(&b, &["join", &ticket, "--out", &path("acc.txt")]).0,
        0
    );
    assert_eq!(jalin(&a, &["consortium", "accept", &path("acc.txt")]).0, 0);
    assert_eq!(jalin(&a, &["consortium", "export", &path("docs.txt")]).0, 0);
    assert_eq!(jalin(&b, &["consortium", "import", &path("docs.txt")]).0, 0);
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cli/demo/loc-indonesia-sample.mrc");
    let (code, _, stderr) = jalin(&a, &["import", sample.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stderr}");

    let (mut node_a, _, a_p2p) = node(&a);
    let (mut node_b, _, _) = node(&b);
    assert!(
        a_p2p.starts_with("/ip4/127.0.0.1/tcp/") && a_p2p.contains("/p2p/12D3KooW"),
        "{a_p2p}"
    );
    let (code, _, stderr) = jalin(&b, &["peers", "--dial", &a_p2p]);
    assert_eq!(code, 0, "{stderr}");

    let wait = |what: &str, check: &dyn Fn(&serde_json::Value) -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let status = status_json(&b);
            if check(&status) {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}: {status}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    let status = wait("A's catalog at B", &|s| s["replicas"][0]["records"] == 500);
    assert_eq!(status["replicas"][0]["name"], "Perpustakaan A (PERPUSA)");
    let (code, stdout, _) = jalin(&b, &["peers"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("1 member(s) connected") && stdout.contains("Perpustakaan A"),
        "{stdout}"
    );

    // A deletes a record through its running node; B sees the tombstone.
    let record_id = {
        let (_, stdout, _) = jalin(&a, &["search", "indonesia", "--json"]);
        let results: serde_json::Value = serde_json::from_str(&stdout).expect("search JSON");
        results["hits"][0]["record_id"]
            .as_str()
            .expect("a hit")
            .to_string()
    };
    let (code, _, stderr) = jalin(&a, &["record", "delete", &record_id]);
    assert_eq!(code, 0, "{stderr}");
    wait("the deletion at B", &|s| s["replicas"][0]["deleted"] == 1);

    // `jalin sync status`: B holds A's catalog as A has it (the same digest), connected,
    // with when its last change arrived; traffic is counted.
    let sync = |dir: &std::path::Path| {
        let (code, stdout, stderr) = jalin(dir, &["sync", "status", "--json"]);
        assert_eq!(code, 0, "{stderr}");
        serde_json::from_str::<serde_json::Value>(&stdout).expect("sync JSON")
    };
    let (at_a, at_b) = (sync(&a), sync(&b));
    let own_a = &at_a["catalogs"][0];
    assert_eq!(own_a["own"], true);
    let a_at_b = at_b["catalogs"]
        .as_array()
        .expect("catalogs")
        .iter()
        .find(|c| c["library_id"] == own_a["library_id"])
        .expect("A's catalog at B");
    assert_eq!(a_at_b["digest"], own_a["digest"], "{at_b}");
    assert_eq!(a_at_b["records"], 499);
    assert_eq!(a_at_b["deleted"], 1);
    assert_eq!(a_at_b["connected"], true);
    assert!(a_at_b["last_change_ms"].as_u64().is_some(), "{at_b}");
    assert!(a_at_b["last_seen_ms"].as_u64().is_some(), "{at_b}");
    assert!(at_b["traffic"]["bytes_received"].as_u64().unwrap_or(0) > 100_000);
    let (code, stdout, _) = jalin(&b, &["sync", "status"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("Perpustakaan A (PERPUSA)  (connected directly)")
            && stdout.contains("499 record(s), 1 deleted"),
        "{stdout}"
    );

    assert_eq!(terminate(&mut node_a.0), Some(0));
    assert_eq!(terminate(&mut node_b.0), Some(0));
}

/// `jalin join TICKET` against the inviter's running node completes the join over the
/// network; the new member's node then finds the inviter by the addresses it learned
/// (no `--dial`) and gets its catalog. A ticket used once lets no one else in.
#[test]
fn joining_a_running_inviter_over_the_network() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    for (data, name, code) in [
        (&a, "Perpustakaan A", "PERPUSA"),
        (&b, "Perpustakaan B", "PERPUSB"),
        (&c, "Perpustakaan C", "PERPUSC"),
    ] {
        let (status, _, stderr) = jalin(data, &["init", "--name", name, "--code", code]);
        assert_eq!(status, 0, "{stderr}");
    }
    assert_eq!(jalin(&a, &["consortium", "create", "--name", "Uji"]).0, 0);
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cli/demo/loc-indonesia-sample.mrc");
    assert_eq!(jalin(&a, &["import", sample.to_str().expect("utf-8")]).0, 0);
    let mut node_a = node(&a).0;
    // The invite, made by the running node, names where it listens.
    let (code, ticket, stderr) = jalin(&a, &["invite", "create"]);
    assert_eq!(code, 0, "{stderr}");
    let ticket = ticket.lines().next().expect("ticket").to_string();
    let (code, stdout, stderr) = jalin(&b, &["join", &ticket]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("Joined \"Uji\""), "{stdout}{stderr}");
    for data in [&a, &b] {
        let (code, stdout, _) = jalin(data, &["consortium", "members", "--json"]);
        assert_eq!(code, 0);
        let members: serde_json::Value = serde_json::from_str(&stdout).expect("members JSON");
        assert_eq!(
            members["members"].as_object().map(|m| m.len()),
            Some(2),
            "{members}"
        );
    }
    // B's node finds A's by the address it learned, and gets A's catalog.
    let mut node_b = node(&b).0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let status = status_json(&b);
        if status["replicas"][0]["records"] == 500 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "A's catalog never reached B: {status}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The used ticket lets C in nowhere: A's node no longer admits its identity.
    let (code, stdout, stderr) = jalin(&c, &["join", &ticket]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stderr.contains("Could not join over the network"),
        "{stderr}"
    );
    let (_, stdout, _) = jalin(&a, &["consortium", "members", "--json"]);
    let members: serde_json::Value = serde_json::from_str(&stdout).expect("members JSON");
    assert_eq!(members["members"].as_object().map(|m| m.len()), Some(2));
    assert_eq!(terminate(&mut node_a.0), Some(0));
    assert_eq!(terminate(&mut node_b.0), Some(0));
}

/// A failure is said once, and the exit code says nothing was done (2, as `--help`
/// documents): a cause whose words its error already carries is not printed again.
#[test]
fn an_error_is_said_once_with_the_exit_code_help_documents() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (code, _, _) = jalin(dir.path(), &["init", "--name", "Uji", "--code", "UJI"]);
    assert_eq!(code, 0);
    let (code, _, stderr) = jalin(dir.path(), &["join", "JALIN-INVITE:AAAAAAAAAAAAAAAA"]);
    assert_eq!(code, 2, "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("an error line: {stderr}"));
    let words = line.trim_start_matches("error: ");
    // Every part of the chain appears once: no part of it repeats further on.
    let parts: Vec<&str> = words.split(": ").collect();
    for (i, part) in parts.iter().enumerate() {
        assert!(
            !parts[i + 1..].contains(part),
            "{part:?} is said twice in {line:?}"
        );
    }
    let (_, help, _) = jalin(dir.path(), &["--help"]);
    assert!(help.contains("Exit codes: 0 done; 1 done, but"), "{help}");
}

#[test]
fn the_agreement_template_and_the_ill_commands_from_the_cli() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (code, _, _) = jalin(dir.path(), &["init", "--name", "Uji", "--code", "UJI"]);
    assert_eq!(code, 0);
    // The template names every term, in Indonesian, and reads back as the defaults.
    let (code, template, _) = jalin(dir.path(), &["agreement", "template"]);
    assert_eq!(code, 0);
    for term in [
        "interlibrary_loan",
        "loan_period_days",
        "items_per_request",
        "answer_within_days",
        "max_renewals",
        "renewal_days",
        "max_open_loans",
        "Silang layanan",
    ] {
        assert!(template.contains(term), "{term} missing:\n{template}");
    }
    let (_, terms, _) =
        jalin_protocol::consortium::agreement::parse_draft(&template).expect("reads back");
    assert_eq!(
        terms,
        jalin_protocol::consortium::agreement::Terms::default()
    );
    // With no consortium there is no one to ask: refused, saying why, exit 2.
    let (code, _, stderr) = jalin(dir.path(), &["ill", "request", "SMP1KEMIRI:00281477"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("no member of this library's consortia"),
        "{stderr}"
    );
    let (code, stdout, _) = jalin(dir.path(), &["ill", "list"]);
    assert_eq!((code, stdout.trim()), (0, "0 loan(s)"));
    let (code, stdout, _) = jalin(dir.path(), &["ill", "report"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("requests made:       0"), "{stdout}");
    let (code, _, stderr) = jalin(dir.path(), &["ill", "show", "abcdef12"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no interlibrary loan abcdef12"), "{stderr}");
}

#[test]
fn the_collection_and_needs_reports_from_the_cli() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (code, _, _) = jalin(dir.path(), &["init", "--name", "Uji", "--code", "UJI"]);
    assert_eq!(code, 0);
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cli/demo/loc-indonesia-sample.mrc");
    let (code, _, stderr) = jalin(dir.path(), &["import", sample.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stderr}");
    // One library alone: every title is its own, held by it alone.
    let (code, out, stderr) = jalin(dir.path(), &["collection", "report"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(out.contains("in the union of 1 libraries"), "{out}");
    assert!(out.contains("Uji (UJI):"), "{out}");
    let (code, csv, stderr) = jalin(
        dir.path(),
        &["collection", "report", "--by", "class", "--csv"],
    );
    assert_eq!(code, 0, "{stderr}");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("library,by,value,alone,some,all"));
    let rows: Vec<&str> = lines.collect();
    assert!(
        rows.iter()
            .any(|r| r.contains(",class,900 Sejarah dan geografi,")),
        "{csv}"
    );
    // Every title of a lone library is held by it alone, none by some.
    assert!(
        rows.iter()
            .all(|r| r.ends_with(",0,0") || r.ends_with(",0,0\r")),
        "{csv}"
    );
    let (code, _, stderr) = jalin(dir.path(), &["collection", "report", "--by", "shelf"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("shelf"), "{stderr}");
    // The needs log: nothing asked yet; a bad date is refused saying how to write one.
    let (code, out, stderr) = jalin(dir.path(), &["needs", "report"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        out.contains("0 searches (0 found nothing), 0 suggestions"),
        "{out}"
    );
    let (code, _, stderr) = jalin(dir.path(), &["needs", "forget", "--before", "kemarin"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("YYYY-MM-DD"), "{stderr}");
}

#[test]
fn a_purchase_plan_from_the_cli() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let (code, _, _) = jalin(&data, &["init", "--name", "Uji", "--code", "UJI"]);
    assert_eq!(code, 0);
    let (code, _, stderr) = jalin(&data, &["consortium", "create", "--name", "Jaringan"]);
    assert_eq!(code, 0, "{stderr}");
    // No agreement yet: plans are refused, saying why.
    let (code, _, stderr) = jalin(
        &data,
        &["plan", "add", "--title", "Bumi manusia", "--author", "Toer"],
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("coordinated_acquisition"), "{stderr}");
    std::fs::write(
        path("mou.md"),
        "+++\ntitle = \"Perjanjian Pengadaan\"\ncoordinated_acquisition = true\n+++\nPara pihak berbagi rencana pengadaan.\n",
    )
    .expect("writes");
    let (code, _, stderr) = jalin(&data, &["agreement", "draft", &path("mou.md")]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, _) = jalin(&data, &["agreement", "sign"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("in force"), "{stdout}");
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cli/demo/loc-indonesia-sample.mrc");
    let (code, _, stderr) = jalin(&data, &["import", sample.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stderr}");
    // A title the library holds: flagged with its holding, not added (exit 3).
    let (code, out, stderr) = jalin(&data, &["search", "sejarah", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let results: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let held_title = results["hits"][0]["title"]
        .as_str()
        .expect("a title")
        .to_string();
    let held_author = results["hits"][0]["authors"][0]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut args = vec!["plan", "add", "--title", held_title.as_str()];
    if !held_author.is_empty() {
        args.extend(["--author", held_author.as_str()]);
    }
    let (code, out, stderr) = jalin(&data, &args);
    assert_eq!(code, 3, "{out}{stderr}");
    assert!(out.contains("held by this library"), "{out}");
    // A new title: added, listed, withdrawn.
    let (code, out, stderr) = jalin(
        &data,
        &[
            "plan",
            "add",
            "--title",
            "Kitab tani lestari",
            "--author",
            "Sastro, Budi",
            "--copies",
            "2",
            "--note",
            "Banyak dicari petani",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let item = out
        .split_whitespace()
        .find(|w| w.starts_with("p-"))
        .expect("an item id")
        .to_string();
    let (code, out, _) = jalin(&data, &["plan", "list"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!(
            "{item}  Kitab tani lestari / Sastro, Budi  this library x2  [planned]"
        )),
        "{out}"
    );
    std::fs::write(
        path("list.txt"),
        "9789793062792\nRonggeng dukuh paruk / Ahmad Tohari\n",
    )
    .expect("writes");
    let (code, out, stderr) = jalin(&data, &["plan", "import", &path("list.txt")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(out.contains("2 titles added"), "{out}");
    let (code, _, stderr) = jalin(&data, &["plan", "remove", &item]);
    assert_eq!(code, 0, "{stderr}");
    let (code, out, _) = jalin(&data, &["plan", "list", "--json"]);
    assert_eq!(code, 0);
    let listed: Vec<serde_json::Value> = serde_json::from_str(&out).expect("JSON");
    assert_eq!(listed.len(), 2, "{out}");
    assert!(listed.iter().all(|p| p["item"] != item.as_str()));
    // The conspectus: this library's levels, signed, shown beside its catalog.
    let (code, out, stderr) = jalin(&data, &["collection", "conspectus", "--set", "900=2/3"]);
    assert_eq!(code, 0, "{stderr}");
    let history = out
        .lines()
        .find(|l| l.trim_start().starts_with("900 History and geography"))
        .unwrap_or_else(|| panic!("no 900 line in {out}"));
    assert!(history.contains("level 2 -> 3"), "{history}");
    assert!(!history.contains(" 0 titles"), "{history}");
    let (code, _, stderr) = jalin(&data, &["collection", "conspectus", "--set", "900=9/3"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("DIVISION=CURRENT/COMMITMENT"), "{stderr}");
}

#[test]
fn a_questionnaire_of_the_librarians_own_from_the_cli() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let (code, _, _) = jalin(&data, &["init", "--name", "Uji", "--code", "UJI"]);
    assert_eq!(code, 0);
    std::fs::write(
        path("angket.toml"),
        "title = \"Angket kelompok tani\"\n\
         [[questions]]\nid = \"desa\"\ntext = \"Dari desa mana?\"\nkind = \"one\"\n\
         options = [\"Kemiri Lor\", \"Kemiri Kidul\"]\n\
         [[questions]]\nid = \"minat\"\ntext = \"Minat bacaan\"\nkind = \"many\"\n\
         options = [\"Pertanian\", \"Sejarah\"]\ndivisions = [\"600\", \"900\"]\n",
    )
    .expect("writes");
    let (code, out, stderr) = jalin(&data, &["survey", "create", "--file", &path("angket.toml")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(out.contains("(2 questions)"), "{out}");
    // A definition that names no division is refused, saying where.
    std::fs::write(
        path("salah.toml"),
        "title = \"x\"\n[[questions]]\nid = \"m\"\ntext = \"m\"\nkind = \"many\"\noptions = [\"a\"]\ndivisions = [\"650\"]\n",
    )
    .expect("writes");
    let (code, _, stderr) = jalin(&data, &["survey", "create", "--file", &path("salah.toml")]);
    assert_ne!(code, 0);
    assert!(stderr.contains("question m: divisions"), "{stderr}");
    std::fs::write(
        path("jawaban.csv"),
        "Timestamp,Dari desa mana?,Minat bacaan\n\
         1,Kemiri Lor,\"Pertanian, Sejarah\"\n\
         2,Kemiri Lor,Pertanian\n\
         3,Kemiri Kidul,Sejarah\n",
    )
    .expect("writes");
    let (code, out, stderr) = jalin(&data, &["survey", "import", &path("jawaban.csv")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(out.contains("3 answers taken"), "{out}");
    let (code, csv, stderr) = jalin(&data, &["survey", "report", "--csv"]);
    assert_eq!(code, 0, "{stderr}");
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(
        rows[0],
        "question,option,count,percent,collection_percent,partners_percent"
    );
    for row in [
        "desa,Kemiri Lor,2,66.7,,",
        "desa,Kemiri Kidul,1,33.3,,",
        "minat,Pertanian,2,66.7,,",
        "minat,Sejarah,2,66.7,,",
        "interest,600 Pertanian,,66.7,0,0",
    ] {
        assert!(rows.contains(&row), "{row:?} not in {csv}");
    }
}
