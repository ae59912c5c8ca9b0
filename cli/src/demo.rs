//! `jalin demo`: a consortium of three village and school libraries on this machine, in
//! ./jalin-demo, each with part of a real sample (Library of Congress records of
//! Indonesian books; neighbours overlap, as real collections do), joined by invites,
//! converging over libp2p on 127.0.0.1, with example union searches.

use anyhow::Context;
use jalin_node::config::DataDir;
use jalin_node::library::{ImportOptions, Library, Source};
use jalin_node::node::{Node, NodeOptions};
use jalin_protocol::consortium::log::Role;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

const DEMO_SAMPLE: &[u8] = include_bytes!("../demo/loc-indonesia-sample.mrc");

/// The three libraries: directory, name, code, and which records of the sample each holds.
const LIBRARIES: [(&str, &str, &str, std::ops::Range<usize>); 3] = [
    (
        "kemiri",
        "Perpustakaan Desa Kemiri Lor",
        "KEMIRILOR",
        0..200,
    ),
    ("sdn2", "Perpustakaan SDN 2 Kemiri", "SDN2KEMIRI", 150..350),
    (
        "smp1",
        "Perpustakaan SMP Negeri 1 Kemiri",
        "SMP1KEMIRI",
        300..500,
    ),
];

/// The sample's records, as ISO 2709 bytes each (split by the length in each leader).
fn sample_records() -> Vec<&'static [u8]> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 5 <= DEMO_SAMPLE.len() {
        let length = std::str::from_utf8(&DEMO_SAMPLE[at..at + 5])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(0);
        if length < 24 || at + length > DEMO_SAMPLE.len() {
            break;
        }
        out.push(&DEMO_SAMPLE[at..at + length]);
        at += length;
    }
    out
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Makes (or reopens) the three libraries, their consortium and their catalogs.
fn prepare(root: &Path) -> anyhow::Result<Vec<Library>> {
    let records = sample_records();
    let mut libraries = Vec::new();
    for (dir, name, code, range) in LIBRARIES {
        let path = root.join(dir);
        let data = match DataDir::open(&path) {
            Ok(data) => data,
            Err(_) => DataDir::init(&path, name, code)?,
        };
        let library = Library::open(data).with_context(|| format!("opening {name}"))?;
        let mine: Vec<u8> = records
            .get(range)
            .unwrap_or_default()
            .iter()
            .flat_map(|r| r.iter().copied())
            .collect();
        library.import(&Source::Bytes(mine), &ImportOptions::default(), |_| {})?;
        libraries.push(library);
    }
    if libraries[0].consortia().list().is_empty() {
        // The consortium, by invites, as the librarians would make it.
        let founder = &libraries[0].consortia();
        let id = founder.create("Jaringan Perpustakaan Kecamatan Kemiri", now_ms())?;
        for joiner in &libraries[1..] {
            let t = now_ms();
            let ticket = founder
                .invite(&id, Role::Member, t + 7 * 86_400_000, "demo", Vec::new(), t)?
                .to_text();
            let acceptance = joiner.consortia().join(&ticket, Vec::new(), t)?.to_text();
            founder.accept(&acceptance, t)?;
        }
        let documents = founder.export(&id)?;
        for joiner in &libraries[1..] {
            joiner.consortia().import(&documents)?;
        }
    }
    Ok(libraries)
}

/// Runs the demo until Ctrl-C.
pub fn run(listen: &str) -> anyhow::Result<ExitCode> {
    let root: PathBuf = std::env::current_dir()?.join("jalin-demo");
    let libraries = prepare(&root)?;
    println!(
        "Demo consortium in {}: three libraries, {} records of a real sample between them.",
        root.display(),
        sample_records().len()
    );
    let runtime = crate::backend::runtime()?;
    let listen = listen.to_string();
    runtime.block_on(async move {
        let libraries: Vec<Arc<Library>> = libraries.into_iter().map(Arc::new).collect();
        // Each library's node: its network, and its API (the first on `listen`, the demo
        // for this machine only).
        let mut nodes = Vec::new();
        for (i, library) in libraries.iter().enumerate() {
            let options = NodeOptions {
                http: Some(if i == 0 {
                    listen.clone()
                } else {
                    "127.0.0.1:0".into()
                }),
                expose: false,
                p2p: Some(vec!["/ip4/127.0.0.1/tcp/0".parse()?]),
                node_file: true,
            };
            nodes.push(Node::spawn(library.clone(), options).await?);
        }
        let nets: Vec<_> = nodes
            .iter()
            .map(|node| {
                node.net()
                    .cloned()
                    .context("the demo's nodes run the network")
            })
            .collect::<anyhow::Result<_>>()?;
        // SDN 2 dials the village library, SMP 1 dials SDN 2: the village library's
        // catalog reaches SMP 1 through SDN 2.
        for (i, j) in [(1, 0), (2, 1)] {
            let deadline = Instant::now() + Duration::from_secs(5);
            let address = loop {
                if let Some(a) = nets[j].listen_addresses().await?.into_iter().next() {
                    break a;
                }
                anyhow::ensure!(Instant::now() < deadline, "a node did not listen");
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            nets[i].dial(address).await?;
        }
        print!("Converging over libp2p on 127.0.0.1 ...");
        let start = Instant::now();
        let owners: Vec<_> = libraries.iter().map(|l| l.id()).collect();
        loop {
            let converged = owners.iter().enumerate().all(|(o, owner)| {
                let truth = libraries[o].store().namespace_digest(owner).ok();
                libraries
                    .iter()
                    .all(|l| l.store().namespace_digest(owner).ok() == truth)
            }) && libraries.iter().all(|l| l.index().len() == 600);
            if converged {
                break;
            }
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(120),
                "the three nodes did not converge in two minutes"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!(" done in {:.1} s.", start.elapsed().as_secs_f64());
        examples(&libraries[2])?;
        let urls: Vec<String> = nodes.iter().map(|n| n.url().unwrap_or_default()).collect();
        for ((dir, name, _, _), url) in LIBRARIES.iter().zip(&urls) {
            println!("{name} (jalin-demo/{dir}) is serving {url}");
        }
        println!();
        println!("Try:");
        println!("  curl '{}/api/search?q=sejarah+indonesia'", urls[0]);
        println!("  curl '{}/api/sync'", urls[2]);
        println!("  jalin --data-dir jalin-demo/smp1 search bandung");
        println!("  jalin --data-dir jalin-demo/sdn2 sync status");
        println!("Ctrl-C stops the three nodes.");
        crate::backend::stop_signal().await;
        for node in nodes {
            node.shutdown().await?;
        }
        eprintln!("Demo stopped.");
        Ok(ExitCode::SUCCESS)
    })
}

/// Prints union searches at one library: books held by several show once, with each.
fn examples(library: &Library) -> anyhow::Result<()> {
    println!();
    println!(
        "Union searches at {} (its own {} records and its partners' 400):",
        library.data().config.library.name,
        library.status()?.records
    );
    for query in [
        "sejarah indonesia",
        "laporan penelitian",
        "lang:ind year:1990..2000",
    ] {
        let results = library.search(query, 1, 3)?;
        println!("  jalin search {query:?}: {} record(s)", results.total);
        for hit in &results.hits {
            let holders: Vec<String> = hit
                .holdings
                .iter()
                .map(|h| {
                    let name = h.library_name.clone().unwrap_or_else(|| h.library.clone());
                    match &h.call_number {
                        Some(call) => format!("{name}, {call}"),
                        None => name,
                    }
                })
                .collect();
            println!(
                "    {} ({}) -- {}: {}",
                hit.title,
                hit.year.map_or_else(|| "n.d.".into(), |y| y.to_string()),
                hit.holdings_summary(),
                holders.join("; ")
            );
        }
    }
    println!();
    Ok(())
}
