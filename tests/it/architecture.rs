//! The direction of dependencies (see ARCHITECTURE.md): jalin-protocol stays pure.

use crate::support::workspace_root;
use std::collections::{BTreeSet, HashMap};
use std::process::Command;

#[test]
fn protocol_pulls_in_no_io_crates() {
    // Only this machine's platform: the graph is the same, and nothing for other
    // platforms needs downloading.
    let rustc = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc runs");
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .expect("rustc -vV names the host");
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--filter-platform",
            &host,
        ])
        .current_dir(workspace_root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let packages: HashMap<&str, &str> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            (
                p["id"].as_str().expect("id"),
                p["name"].as_str().expect("name"),
            )
        })
        .collect();
    let nodes: HashMap<&str, Vec<&str>> = metadata["resolve"]["nodes"]
        .as_array()
        .expect("resolve graph")
        .iter()
        .map(|node| {
            let normal_deps = node["deps"]
                .as_array()
                .expect("deps")
                .iter()
                .filter(|dep| {
                    dep["dep_kinds"]
                        .as_array()
                        .is_some_and(|kinds| kinds.iter().any(|k| k["kind"].is_null()))
                })
                .map(|dep| dep["pkg"].as_str().expect("pkg"))
                .collect();
            (node["id"].as_str().expect("id"), normal_deps)
        })
        .collect();
    let root = packages
        .iter()
        .find(|(_, name)| **name == "jalin-protocol")
        .map(|(id, _)| *id)
        .expect("jalin-protocol is in the workspace");
    let mut seen = BTreeSet::new();
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        if seen.insert(packages[id]) {
            stack.extend(nodes.get(id).into_iter().flatten());
        }
    }
    for forbidden in [
        "tokio",
        "libp2p",
        "sled",
        "tantivy",
        "axum",
        "automerge",
        "hyper",
        "mio",
    ] {
        assert!(!seen.contains(forbidden), "jalin-protocol depends on {forbidden} (it must stay free of I/O); it pulls in {seen:?}");
    }
    assert!(
        seen.contains("quick-xml"),
        "the walk found the protocol's real dependencies: {seen:?}"
    );
}

/// The node's source files, by path under `node/src` (`network/mod.rs`), with their text.
fn node_sources() -> Vec<(String, String)> {
    let root = workspace_root().join("node/src");
    let mut out = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("a source dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let name = path
                    .strip_prefix(&root)
                    .expect("under node/src")
                    .to_string_lossy()
                    .into_owned();
                out.push((name, std::fs::read_to_string(&path).expect("reads")));
            }
        }
    }
    assert!(out.len() > 10, "found the node's sources: {}", out.len());
    out
}

/// The invariants of ARCHITECTURE.md that a grep can check: the HTTP edge never touches
/// libp2p's swarm, and the API and the web pages do not use each other (both stand on
/// `server`); only `network/` (the node's swarm and the one-off joining swarm) and
/// `relay.rs` (the relay's own process) build a swarm; only `node.rs` spawns the
/// network's loop.
#[test]
fn the_http_edge_and_the_network_keep_apart() {
    let sources = node_sources();
    let text = |name: &str| {
        sources
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
            .unwrap_or_else(|| panic!("node/src/{name} exists"))
    };
    let web: Vec<&(String, String)> = sources
        .iter()
        .filter(|(name, _)| name.starts_with("web/"))
        .collect();
    assert!(web.len() >= 2, "node/src/web/ has its files");
    let edge = ["http.rs", "server.rs"]
        .into_iter()
        .map(|name| (name, text(name)))
        .chain(
            web.iter()
                .map(|(name, text)| (name.as_str(), text.as_str())),
        );
    for (name, source) in edge {
        for forbidden in ["Swarm", "swarm", "gossipsub", "request_response"] {
            assert!(
                !source.contains(forbidden),
                "{name} touches libp2p ({forbidden})"
            );
        }
    }
    assert!(!text("http.rs").contains("crate::web"), "http.rs uses web");
    for (name, source) in web {
        assert!(!source.contains("crate::http"), "{name} uses http");
    }
    for (name, source) in &sources {
        if source.contains("SwarmBuilder") {
            assert!(
                matches!(
                    name.as_str(),
                    "network/mod.rs" | "network/join.rs" | "relay.rs"
                ),
                "{name} builds a swarm"
            );
        }
        if source.contains("network::start(") {
            assert_eq!(name, "node.rs", "{name} starts the network's loop");
        }
    }
}

#[test]
fn only_the_library_writes_the_store_and_the_index() {
    // Outside jalin-node the writing methods are not public (the compiler holds that);
    // inside it, only `library.rs` (and the two types themselves) may call them.
    let writes = [
        "store().apply(",
        "store().apply_remote_many(",
        "store().forget_catalog(",
        "store().take_touched(",
        "index().put(",
        "index().put_replica(",
        "index().commit(",
        "index().clear(",
        "index().forget_library(",
    ];
    for (name, source) in node_sources() {
        if matches!(name.as_str(), "library.rs" | "store.rs" | "search.rs") {
            continue;
        }
        let flat: String = source.chars().filter(|c| !c.is_whitespace()).collect();
        for write in writes {
            assert!(!flat.contains(write), "{name} writes directly: {write}");
        }
        for field in [".store.", ".index."] {
            assert!(
                !flat.contains(&format!("library{field}")),
                "{name} reaches into Library's fields ({field})"
            );
        }
    }
}

#[test]
fn the_network_reaches_the_catalogs_through_the_shared_view_alone() {
    let sources = node_sources();
    let network: Vec<_> = sources
        .iter()
        .filter(|(name, _)| name.starts_with("network/"))
        .collect();
    assert!(network.len() >= 2, "node/src/network/ has its files");
    for (name, source) in network {
        for forbidden in ["store()", "index()", "Store", "SearchIndex"] {
            assert!(
                !source.contains(forbidden),
                "{name} reaches the catalogs past `SharedCatalogs` ({forbidden})"
            );
        }
    }
}
