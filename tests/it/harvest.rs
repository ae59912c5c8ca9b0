//! The OAI-PMH harvester (`jalin import --oai-pmh`), run as the real binary: over the
//! recorded responses of `../shared/data/oai/` served by a small HTTP server (a refused
//! token and a broken page among them), and over another Jalin node's provider,
//! incrementally.

use crate::shared_data_or_skip;
use crate::support::{jalin_binary, new_library, start};
use jalin_node::library::Library;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

/// How the fixture server answers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// As recorded.
    Plain,
    /// Refuses the token of the third page once (as a provider whose tokens expired).
    ExpireOnce,
    /// Gives the broken page for the first list request.
    Broken,
    /// Answers every token with the first page again, its token unchanged.
    Repeat,
    /// Answers every token with the first page again, under a new token each time.
    Stuck,
}

/// Serves the recorded OAI-PMH responses: Identify, ListMetadataFormats, ListRecords and
/// its token chain (each token names the next page's file). Returns the base URL and the
/// requests seen.
fn fixture_server(dir: PathBuf, mode: Mode) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
    let url = format!("http://{}/oai", listener.local_addr().expect("address"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        let mut expired = false;
        let mut given = 0;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut line = String::new();
            let mut reader = BufReader::new(stream.try_clone().expect("clones"));
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            // Drain the headers.
            let mut header = String::new();
            while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                header.clear();
            }
            let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
            log.lock().expect("log").push(target.clone());
            let query = target.split_once('?').map_or("", |(_, q)| q);
            let arg = |name: &str| {
                query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                    .map(str::to_string)
            };
            let file = match (arg("verb").as_deref(), arg("resumptionToken")) {
                (Some("Identify"), _) => "Identify.xml".to_string(),
                (Some("ListMetadataFormats"), _) => "ListMetadataFormats.xml".to_string(),
                (Some("ListRecords"), Some(_)) if matches!(mode, Mode::Repeat | Mode::Stuck) => {
                    "ListRecords.xml".to_string()
                }
                (Some("ListRecords"), Some(token)) => {
                    if mode == Mode::ExpireOnce && token == "ListRecords3.xml" && !expired {
                        expired = true;
                        "badResumptionToken.xml".to_string()
                    } else if dir.join(&token).is_file() && token.starts_with("ListRecords") {
                        token
                    } else {
                        "badResumptionToken.xml".to_string()
                    }
                }
                (Some("ListRecords"), None) if mode == Mode::Broken => {
                    "ListRecordsBroken.xml".to_string()
                }
                (Some("ListRecords"), None) => "ListRecords.xml".to_string(),
                _ => "badArgument.xml".to_string(),
            };
            let mut body = std::fs::read(dir.join(&file)).expect("fixture");
            if mode == Mode::Stuck && file == "ListRecords.xml" {
                given += 1;
                body = String::from_utf8(body)
                    .expect("UTF-8")
                    .replace(">ListRecords2.xml<", &format!(">stuck{given}<"))
                    .into_bytes();
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    (url, seen)
}

fn harvest(data_dir: &Path, url: &str) -> (bool, String) {
    let out = Command::new(jalin_binary())
        .arg("--data-dir")
        .arg(data_dir)
        .args(["import", "--oai-pmh", url])
        .output()
        .expect("jalin runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Whether no harvest's date is noted in the data dir (none finished).
fn no_harvest_noted(data_dir: &Path) -> bool {
    let noted = data_dir.join("harvest");
    !noted.exists() || std::fs::read_dir(noted).expect("lists").count() == 0
}

/// A count from the harvest's summary line (`N read`, `N deleted`, ...).
fn count(text: &str, what: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.contains(" page(s), "))
        .unwrap_or_else(|| panic!("no summary in:\n{text}"));
    let line = line.split(" (").next().unwrap_or(line);
    line.split(", ")
        .find_map(|part| {
            part.strip_suffix(what)
                .and_then(|n| n.trim().rsplit(' ').next())
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or_else(|| panic!("no {what:?} in {line}"))
}

#[test]
fn harvests_the_recorded_responses_through_their_tokens() {
    let data = shared_data_or_skip!();
    let fixtures = data.join("oai");
    for mode in [Mode::Plain, Mode::ExpireOnce] {
        let (url, seen) = fixture_server(fixtures.clone(), mode);
        let (dir, library_data) = new_library(1000);
        drop(library_data);
        let (ok, text) = harvest(dir.path(), &url);
        // The last page holds a deleted record with no identifier: reported, and the
        // harvest exits 1 as an import with rejected records does.
        assert!(!ok, "{text}");
        assert!(text.contains("has no identifier"), "{text}");
        assert_eq!(count(&text, "rejected"), 1, "{text}");
        let requests = seen.lock().expect("log").clone();
        assert!(
            requests
                .iter()
                .any(|r| r.contains("resumptionToken=ListRecords4.xml")),
            "followed every token: {requests:?}"
        );
        let library = Library::open(jalin_node::config::DataDir::open(dir.path()).expect("opens"))
            .expect("opens");
        let stored = library
            .store()
            .get("oai:test.example.com:1585322")
            .expect("reads")
            .expect("the harvested record");
        let record = jalin_node::library::decode(&stored).expect("decodes");
        assert_eq!(record.description.title, "Sample Title");
        assert_eq!(record.description.names[0].name, "John Doe");
        assert_eq!(record.description.year, Some(2010));
        assert_eq!(
            library.store().records().count(),
            1,
            "one live record; the deleted one never held"
        );
        if mode == Mode::ExpireOnce {
            assert!(text.contains("refused a resumption token 1 time"), "{text}");
            // The list was asked again from its start; records taken were not imported again.
            assert!(count(&text, "unchanged") == 0, "{text}");
            let firsts = requests
                .iter()
                .filter(|r| r.contains("verb=ListRecords&metadataPrefix"))
                .count();
            assert_eq!(firsts, 2, "{requests:?}");
        }
    }
}

#[test]
fn a_broken_page_stops_the_harvest_with_a_clear_error_and_loses_nothing() {
    let data = shared_data_or_skip!();
    let (url, _) = fixture_server(data.join("oai"), Mode::Broken);
    let (dir, library_data) = new_library(1000);
    drop(library_data);
    let (ok, text) = harvest(dir.path(), &url);
    assert!(!ok, "{text}");
    assert!(text.contains("the harvest stopped at page 1"), "{text}");
    assert!(text.contains("not readable XML"), "{text}");
    assert!(
        no_harvest_noted(dir.path()),
        "a failed harvest notes no date"
    );
}

#[test]
fn a_feed_that_does_not_advance_ends_the_harvest_with_what_it_took() {
    let data = shared_data_or_skip!();
    for (mode, says) in [
        (
            Mode::Repeat,
            "gave the resumption token \"ListRecords2.xml\" again (page 2)",
        ),
        (
            Mode::Stuck,
            "sent 5 pages in a row of records already taken",
        ),
    ] {
        let (url, seen) = fixture_server(data.join("oai"), mode);
        let (dir, library_data) = new_library(1000);
        drop(library_data);
        let (ok, text) = harvest(dir.path(), &url);
        assert!(!ok, "{text}");
        assert!(text.contains(says), "{text}");
        assert!(text.contains("records of earlier pages are kept"), "{text}");
        let lists = seen
            .lock()
            .expect("log")
            .iter()
            .filter(|r| r.contains("ListRecords"))
            .count();
        assert!(lists <= 6, "stopped early: {lists} list requests");
        let library = Library::open(jalin_node::config::DataDir::open(dir.path()).expect("opens"))
            .expect("opens");
        assert!(
            library
                .store()
                .get("oai:test.example.com:1585322")
                .expect("reads")
                .is_some(),
            "the first page's record is kept"
        );
        assert!(
            no_harvest_noted(dir.path()),
            "an unfinished harvest notes no date"
        );
    }
}

/// A node holding `loc-indonesia-3147.mrc`, its OAI-PMH address, and an empty library to
/// harvest into.
fn source_and_empty_library(data: &Path) -> (crate::support::Server, String, tempfile::TempDir) {
    let source = start(Some(&data.join("marc/loc/loc-indonesia-3147.mrc")));
    // The harvest's `from` is the provider's clock to the second: keep the import and the
    // first harvest in different seconds.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let url = format!("{}/oai", source.url);
    let (dir, library_data) = new_library(1000);
    drop(library_data);
    (source, url, dir)
}

#[test]
fn harvests_another_jalin_node_then_only_its_changes() {
    let data = shared_data_or_skip!();
    let (source, url, dir) = source_and_empty_library(&data);
    let (ok, text) = harvest(dir.path(), &url);
    assert!(ok, "{text}");
    assert_eq!(count(&text, "added"), 3147, "{text}");
    assert!(count(&text, "page(s)") >= 32, "{text}");

    let own = source.library.id();
    let ids = source.own_ids();
    {
        let harvested =
            Library::open(jalin_node::config::DataDir::open(dir.path()).expect("opens"))
                .expect("opens");
        for id in [&ids[0], &ids[1000], &ids[3146]] {
            let theirs = jalin_node::library::decode(
                &source
                    .library
                    .store()
                    .get(id)
                    .expect("reads")
                    .expect("held"),
            )
            .expect("decodes");
            let ours = harvested
                .store()
                .get(&jalin_node::oai::identifier(&own, id))
                .expect("reads")
                .map(|s| jalin_node::library::decode(&s).expect("decodes"))
                .expect("harvested");
            assert_eq!(ours.description.title, theirs.description.title);
            assert_eq!(ours.description.names, theirs.description.names);
            assert_eq!(ours.description.isbns, theirs.description.isbns);
        }
    }

    // Changes at the source: two deletions, one edit, one new record.
    source.library.delete(&ids[5]).expect("deletes");
    source.library.delete(&ids[6]).expect("deletes");
    let mut edited = jalin_node::library::decode(
        &source
            .library
            .store()
            .get(&ids[7])
            .expect("reads")
            .expect("held"),
    )
    .expect("decodes")
    .marc;
    edited.push_data(jalin_protocol::marc::DataField::new(
        "500",
        ' ',
        ' ',
        &[('a', "Catatan baru dari sumber.")],
    ));
    source.library.put(edited.clone()).expect("edits");
    let mut added = edited;
    added.set_control("001", "baru-0001");
    source.library.put(added).expect("adds");

    let (ok, text) = harvest(dir.path(), &url);
    assert!(ok, "{text}");
    assert_eq!(
        count(&text, "read"),
        2,
        "only the edit and the new record move: {text}"
    );
    assert_eq!(count(&text, "added"), 1, "{text}");
    assert_eq!(count(&text, "updated"), 1, "{text}");
    assert_eq!(count(&text, "deleted"), 2, "{text}");
    let harvested = Library::open(jalin_node::config::DataDir::open(dir.path()).expect("opens"))
        .expect("opens");
    for id in [&ids[5], &ids[6]] {
        let stored = harvested
            .store()
            .get(&jalin_node::oai::identifier(&own, id))
            .expect("reads")
            .expect("held");
        assert!(stored.deleted, "{id} deleted here too");
    }
    let results = harvested
        .search("\"Catatan baru dari sumber\"", 1, 10)
        .expect("searches");
    assert_eq!(results.total, 2, "the edit and the new record");
    assert_eq!(harvested.status().expect("status").records, 3147 - 2 + 1);
    drop(harvested);

    // --set and --from, given: only that library's records changed since then.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let since = jalin_node::oai::datestamp(jalin_node::server::now_ms());
    let mut again = jalin_node::library::decode(
        &source
            .library
            .store()
            .get(&ids[8])
            .expect("reads")
            .expect("held"),
    )
    .expect("decodes")
    .marc;
    again.push_data(jalin_protocol::marc::DataField::new(
        "500",
        ' ',
        ' ',
        &[('a', "Satu perubahan lagi.")],
    ));
    source.library.put(again).expect("edits");
    let (other_dir, other_data) = new_library(1000);
    drop(other_data);
    let out = Command::new(jalin_binary())
        .arg("--data-dir")
        .arg(other_dir.path())
        .args([
            "import",
            "--oai-pmh",
            &url,
            "--set",
            &own.to_hex(),
            "--from",
            &since,
        ])
        .output()
        .expect("jalin runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count(&text, "read"), 1, "{text}");
    let (_, text) = {
        let out = Command::new(jalin_binary())
            .arg("--data-dir")
            .arg(other_dir.path())
            .args(["import", "--oai-pmh", &url, "--set", "no-such-set"])
            .output()
            .expect("jalin runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert_eq!(count(&text, "read"), 0, "a set with nothing in it: {text}");
}

/// `--every`: the harvester keeps running, each round taking only what changed at the
/// source since the last; a round that fails (the source gone) is reported and the next
/// one tried.
#[test]
fn keeps_harvesting_every_interval_and_survives_a_failed_round() {
    let data = shared_data_or_skip!();
    let (source, url, dir) = source_and_empty_library(&data);
    let mut child = Command::new(jalin_binary())
        .arg("--data-dir")
        .arg(dir.path())
        .args(["import", "--oai-pmh", &url, "--every", "1s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("jalin runs");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let lines = {
        let (send, receive) = std::sync::mpsc::channel::<String>();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        for stream in [
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            Box::new(stderr),
        ] {
            let send = send.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if send.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        receive
    };
    let child = Kill(child);
    let mut seen = String::new();
    // The next line that `wanted` accepts, within a minute.
    let mut next = |what: &str, wanted: &dyn Fn(&str) -> bool| -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    seen.push_str(&line);
                    seen.push('\n');
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("no {what} within a minute; the harvester said:\n{seen}"),
            }
        }
    };
    let first = next("first round", &|l| l.contains(" page(s), "));
    assert_eq!(count(&first, "added"), 3147, "{first}");
    // Rounds with nothing new read nothing.
    let quiet = next("a second round", &|l| l.contains(" page(s), "));
    assert_eq!(count(&quiet, "read"), 0, "{quiet}");

    let ids = source.own_ids();
    source.library.delete(&ids[10]).expect("deletes");
    let round = next("the deletion", &|l| {
        l.contains(" page(s), ") && !l.contains(" 0 deleted")
    });
    assert_eq!(count(&round, "deleted"), 1, "{round}");
    assert!(count(&round, "read") <= 1, "only the change moves: {round}");

    // The source goes away: the round fails in words, and the harvester keeps going.
    drop(source);
    let failed = next("a failed round", &|l| l.starts_with("Harvesting "));
    assert!(
        failed.contains(&url) && failed.contains("failed"),
        "{failed}"
    );
    let again = next("a round after the failure", &|l| {
        l.starts_with("Harvesting ")
    });
    assert!(again.contains("failed"), "{again}");
    drop(child);

    let harvested = Library::open(jalin_node::config::DataDir::open(dir.path()).expect("opens"))
        .expect("opens");
    assert_eq!(harvested.status().expect("status").records, 3147 - 1);
}
