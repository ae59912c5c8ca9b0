//! The OPAC's search log (issue 16): search latency with the log on, beside off, in the
//! same run. Two nodes over the same catalog (the demo's LC records, or a MARC file
//! given as the first argument), one logging its searches and one not; the same queries
//! asked of each in turn over HTTP, as a patron's browser asks the OPAC page.
//!
//!     cargo bench -p jalin-tests --bench needs [-- FILE.mrc]

use jalin_node::library::{ImportOptions, Library, Source};
use jalin_node::node::NodeOptions;
use jalin_tests::fixtures::new_library;
use std::sync::Arc;
use std::time::{Duration, Instant};

const QUERIES: [&str; 12] = [
    "sejarah",
    "indonesia",
    "pramoedya",
    "bahasa jawa",
    "ekonomi",
    "islam",
    "pendidikan",
    "hukum adat",
    "kesehatan",
    "pertanian padi",
    "tidak ada buku seperti ini",
    "sastra",
];
const ROUNDS: usize = 25;

fn p(sorted: &[Duration], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0
}

fn main() {
    let file = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../cli/demo/loc-indonesia-sample.mrc")
        });
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut nodes = Vec::new();
    let mut dirs = Vec::new();
    for logging in [true, false] {
        let (dir, mut data) = new_library(1000);
        data.config.needs.log_searches = logging;
        let library = Arc::new(Library::open(data).expect("opens"));
        library
            .import(
                &Source::File(file.clone()),
                &ImportOptions::default(),
                |_| {},
            )
            .expect("imports");
        let node = runtime
            .block_on(jalin_node::node::Node::spawn(
                library.clone(),
                NodeOptions {
                    http: Some("127.0.0.1:0".into()),
                    ..NodeOptions::default()
                },
            ))
            .expect("serves");
        nodes.push((library, node));
        dirs.push(dir);
    }
    let client = reqwest::blocking::Client::new();
    let mut times = [Vec::new(), Vec::new()];
    for round in 0..=ROUNDS {
        for q in QUERIES {
            // Turn by turn, the logging node first on even rounds, second on odd ones.
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for i in order {
                let url = nodes[i].1.url().expect("url");
                let start = Instant::now();
                let response = client
                    .get(format!("{url}/"))
                    .query(&[("q", q)])
                    .send()
                    .expect("answers");
                assert_eq!(response.status(), 200);
                response.bytes().expect("page");
                // The first round warms both up and is not counted.
                if round > 0 {
                    times[i].push(start.elapsed());
                }
            }
        }
    }
    let logged = nodes[0].0.needs().searches().expect("reads").len();
    assert_eq!(logged, (ROUNDS + 1) * QUERIES.len(), "every search logged");
    assert!(nodes[1].0.needs().searches().expect("reads").is_empty());
    let records = nodes[0].0.store().records().count();
    println!(
        "OPAC search page, {records} records, {} searches each:",
        times[0].len()
    );
    for (label, t) in ["log on ", "log off"].iter().zip(times.iter_mut()) {
        t.sort();
        println!(
            "  {label}: p50 {:.2} ms, p95 {:.2} ms",
            p(t, 0.5),
            p(t, 0.95)
        );
    }
    println!(
        "  p50 on / off: {:.2}",
        p(&times[0], 0.5) / p(&times[1], 0.5)
    );
    for (_, node) in nodes {
        runtime.block_on(node.shutdown()).expect("stops");
    }
}
