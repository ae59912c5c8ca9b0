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
