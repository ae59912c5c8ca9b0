//! Interlibrary loan's figures (issue 15), on the release build:
//!
//!     cargo bench -p jalin-tests --bench ill [-- --only latency|bytes|scale]
//!
//! 1. `latency`: a request until it is in the lender's queue, between two nodes over
//!    loopback, and between two nodes that reach each other only through a relay
//!    (neither listens on an address of its own). Beside it, in the same run, the time
//!    the borrower's node takes to write the request (the part that is not network).
//! 2. `bytes`: each message of a whole loan, as pushed over `/jalin/ill/1` (the signed
//!    message, and the push carrying it alone), beside the same message as ISO 18626 XML.
//! 3. `scale`: 10,000 transactions between 5 libraries (made in process, the clock
//!    moved on a day every 100 rounds; most run to the end, one in twenty unfilled, and
//!    of the last 400 some left waiting or out on loan); the queue page, the list and
//!    the report at one library, after 1,000 transactions (the baseline) and 10,000.

use jalin_node::clock::{Clock, ManualClock};
use jalin_node::ill_requests::{execute, IllAnswer, IllRequest, SimpleStep};
use jalin_node::library::Library;
use jalin_node::node::{NodeHandle, NodeOptions};
use jalin_protocol::ill::IllPush;
use jalin_tests::fixtures::{agree, form_consortium, new_library, the_same_book, T};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TERMS: &str = "interlibrary_loan = true\nloan_period_days = 28\nitems_per_request = 1\n\
                     answer_within_days = 3\nmax_renewals = 1\nrenewal_days = 14\n\
                     max_open_loans = 100000";
const DAY_MS: u64 = 86_400_000;

/// `codes`' libraries, on `clock` (the system's when none), in one consortium whose
/// agreement allows loans, each holding the same book. Returns them with their data
/// dirs and record ids.
fn libraries(
    codes: &[&str],
    clock: Option<Arc<ManualClock>>,
    configure: impl Fn(&mut jalin_node::config::DataDir),
) -> (Vec<Arc<Library>>, Vec<tempfile::TempDir>, Vec<String>) {
    let (mut libraries, mut dirs) = (Vec::new(), Vec::new());
    for code in codes {
        let (dir, mut data) = new_library(1000);
        data.config.library.code = code.to_string();
        data.config.library.name = format!("Perpustakaan {code}");
        data.config.network.mdns = false;
        configure(&mut data);
        let library = match &clock {
            Some(clock) => Library::open_with_clock(data, clock.clone() as Arc<dyn Clock>),
            None => Library::open(data),
        }
        .expect("opens");
        libraries.push(Arc::new(library));
        dirs.push(dir);
    }
    let refs: Vec<&Library> = libraries.iter().map(|l| l.as_ref()).collect();
    form_consortium("Jaringan Pinjam", &refs);
    agree(&refs, TERMS);
    let holders: Vec<usize> = (0..codes.len()).collect();
    let records = the_same_book(&refs, &holders);
    (libraries, dirs, records)
}

fn ask(record: String, lender: &str) -> IllRequest {
    IllRequest::Request {
        record,
        patron: Some("anggota-0042".into()),
        need_before: None,
        note: String::new(),
        lenders: vec![lender.to_string()],
        items: 1,
    }
}

fn run(library: &Library, request: IllRequest) -> IllAnswer {
    match execute(library, request) {
        Ok(answer) => answer,
        Err(error) => panic!("{error}"),
    }
}

fn step(library: &Library, id: &str, step: SimpleStep) {
    run(
        library,
        IllRequest::Step {
            id: id.into(),
            step,
        },
    );
}

fn will_supply(library: &Library, id: &str) {
    run(
        library,
        IllRequest::Answer {
            id: id.into(),
            will_supply: true,
            unfilled: None,
            conditions: None,
        },
    );
}

/// Passes every message queued between `a` and `b` until none is left; returns the
/// bytes of each message passed, in order.
fn exchange(a: &Library, b: &Library, now: u64) -> Vec<Vec<u8>> {
    let mut passed = Vec::new();
    loop {
        let mut moved = false;
        for (from, to) in [(a, b), (b, a)] {
            let waiting = from.loans().outbox(&to.id()).expect("outbox");
            if waiting.is_empty() {
                continue;
            }
            moved = true;
            let ids: Vec<_> = waiting.iter().map(|(id, _)| *id).collect();
            let bytes: Vec<Vec<u8>> = waiting.into_iter().map(|(_, b)| b).collect();
            for result in to.loans().take_in(to.consortia(), &from.id(), &bytes, now) {
                if let Err(error) = result {
                    panic!("a genuine message was refused: {error}");
                }
            }
            from.loans().delivered(&to.id(), &ids).expect("delivered");
            passed.extend(bytes);
        }
        if !moved {
            return passed;
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let at = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[at].as_secs_f64() * 1000.0
}

fn summary(mut times: Vec<Duration>) -> String {
    times.sort();
    format!(
        "p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms ({} runs)",
        percentile(&times, 0.5),
        percentile(&times, 0.95),
        percentile(&times, 1.0),
        times.len()
    )
}

/// A running node: the library, its handle.
struct Running {
    library: Arc<Library>,
    node: NodeHandle,
}

async fn spawn(library: Arc<Library>, listen: Vec<libp2p::Multiaddr>) -> Running {
    let options = NodeOptions {
        p2p: Some(listen),
        ..NodeOptions::default()
    };
    let node = jalin_node::node::Node::spawn(library.clone(), options)
        .await
        .expect("the node starts");
    Running { library, node }
}

/// The node's first listen address that `pick` likes, once it listens there.
async fn address(node: &Running, pick: impl Fn(&libp2p::Multiaddr) -> bool) -> libp2p::Multiaddr {
    let net = node.node.net().expect("network");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let addresses = net.listen_addresses().await.expect("network runs");
        if let Some(address) = addresses.into_iter().find(|a| pick(a)) {
            return address;
        }
        assert!(Instant::now() < deadline, "the node never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `requests` requests from `a` to `b`, each timed until it is in `b`'s queue.
async fn requests_until_queued(
    a: &Running,
    b: &Running,
    record: &str,
    requests: usize,
) -> (Vec<Duration>, Vec<Duration>) {
    let (mut arrived, mut local) = (Vec::new(), Vec::new());
    let b_code = b.library.data().config.library.code.clone();
    for n in 0..requests {
        let start = Instant::now();
        // The lender's queue watched from another thread while the borrower writes the
        // request: the request may arrive before the borrower's call has returned.
        let lender = b.library.clone();
        let watcher = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while lender.loans().list().expect("lists").len() <= n {
                assert!(
                    Instant::now() < deadline,
                    "the request never reached the lender"
                );
                std::thread::sleep(Duration::from_micros(200));
            }
            start.elapsed()
        });
        let library = a.library.clone();
        let request = ask(format!("{b_code}:{record}"), &b_code);
        let answer = tokio::task::spawn_blocking(move || run(&library, request))
            .await
            .expect("requests");
        local.push(start.elapsed());
        let id = answer.loans[0].id.clone();
        arrived.push(watcher.join().expect("watches"));
        // Withdrawn, so the loans open between the two stay few.
        let library = a.library.clone();
        tokio::task::spawn_blocking(move || {
            run(
                &library,
                IllRequest::Cancel {
                    id,
                    reason: String::new(),
                },
            )
        })
        .await
        .expect("withdraws");
    }
    (arrived, local)
}

async fn connected(a: &Running, b: &Running) {
    let (a_net, b_id) = (
        a.node.net().expect("net"),
        b.node.net().expect("net").peer_id,
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !a_net.peers().await.expect("peers").contains(&b_id) {
        assert!(Instant::now() < deadline, "never connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `a` dials `b` at `address`, then the requests are timed; both nodes stop after.
async fn dial_and_measure(
    a: Running,
    b: Running,
    address: libp2p::Multiaddr,
    record: &str,
    requests: usize,
    how: &str,
) {
    a.node
        .net()
        .expect("net")
        .dial(address)
        .await
        .expect("dials");
    connected(&a, &b).await;
    let (arrived, local) = requests_until_queued(&a, &b, record, requests).await;
    println!(
        "latency, {how}: request until in the lender's queue: {}",
        summary(arrived)
    );
    println!(
        "  the borrower's node writing the request (baseline): {}",
        summary(local)
    );
    for node in [a, b] {
        node.node.shutdown().await.expect("stops");
    }
}

async fn latency(requests: usize) {
    // Over loopback.
    let (libs, dirs, records) = libraries(&["PERPUSDESA", "SMP1KEMIRI"], None, |_| {});
    let loopback: libp2p::Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().expect("address");
    let a = spawn(libs[0].clone(), vec![loopback.clone()]).await;
    let b = spawn(libs[1].clone(), vec![loopback]).await;
    let b_address = address(&b, |_| true).await;
    dial_and_measure(a, b, b_address, &records[1], requests, "loopback").await;
    drop(dirs);

    // Through a relay: neither node listens on an address of its own.
    let (libs, dirs, records) = libraries(&["DESA2", "SMP2"], None, |_| {});
    let id = libs[0].consortia().list()[0].id;
    let documents = libs[0].consortia().export(&id).expect("exports");
    let relay = jalin_tests::fixtures::Relay::start(&documents).await;
    let relay_address = relay.address.clone();
    // Reopened with the relay configured.
    let mut reopened = Vec::new();
    for (library, dir) in libs.into_iter().zip(&dirs) {
        // The data dir's file has the fixture's code (it was set in memory only).
        let library_section = library.data().config.library.clone();
        drop(library);
        let mut data = jalin_node::config::DataDir::open(dir.path()).expect("opens");
        data.config.library = library_section;
        data.config.network.mdns = false;
        data.config.network.relays = vec![relay_address.to_string()];
        reopened.push(Arc::new(Library::open(data).expect("opens")));
    }
    let a = spawn(reopened[0].clone(), Vec::new()).await;
    let b = spawn(reopened[1].clone(), Vec::new()).await;
    let circuit = address(&b, |a| a.to_string().contains("/p2p-circuit")).await;
    dial_and_measure(a, b, circuit, &records[1], requests, "through a relay").await;
    relay.stop().await;
    drop(dirs);
}

fn bytes() {
    let clock = Arc::new(ManualClock::at(T + DAY_MS));
    let (libs, _dirs, records) =
        libraries(&["PERPUSDESA", "SMP1KEMIRI"], Some(clock.clone()), |_| {});
    let (a, b) = (&libs[0], &libs[1]);
    let now = || clock.now_ms();
    let id = run(a, ask(format!("SMP1KEMIRI:{}", records[1]), "SMP1KEMIRI")).loans[0]
        .id
        .clone();
    let mut wire = exchange(a, b, now());
    will_supply(b, &id);
    step(b, &id, SimpleStep::Ship);
    wire.extend(exchange(a, b, now()));
    clock.advance(DAY_MS);
    step(a, &id, SimpleStep::Receive);
    step(a, &id, SimpleStep::Renew);
    wire.extend(exchange(a, b, now()));
    step(a, &id, SimpleStep::Return);
    wire.extend(exchange(a, b, now()));
    step(b, &id, SimpleStep::Checkin);
    wire.extend(exchange(a, b, now()));
    let export = run(a, IllRequest::Export { id: id.clone() }).files;
    println!("bytes per message (a whole loan, {} messages):", wire.len());
    println!(
        "  {:<28} {:>9} {:>10} {:>12}",
        "message", "signed", "push", "ISO 18626"
    );
    let (mut signed_total, mut xml_total) = (0, 0);
    for (bytes, (name, xml)) in wire.iter().zip(&export) {
        let push = jalin_protocol::sync::encode(&IllPush {
            messages: vec![serde_bytes::ByteBuf::from(bytes.clone())],
        })
        .expect("encodes");
        println!(
            "  {:<28} {:>9} {:>10} {:>12}",
            name.trim_end_matches(".xml"),
            bytes.len(),
            push.len(),
            xml.len()
        );
        signed_total += bytes.len();
        xml_total += xml.len();
    }
    println!(
        "  total: {signed_total} B signed, {xml_total} B as ISO 18626 XML ({:.2}x)",
        xml_total as f64 / signed_total as f64
    );
    assert_eq!(
        wire.len(),
        export.len(),
        "every message passed is in the export"
    );
}

/// The queue page, the list and the report at `library`, served by its node.
fn measure(library: &Arc<Library>, runtime: &tokio::runtime::Runtime, label: &str) {
    let node = runtime.block_on(async {
        let options = NodeOptions {
            http: Some("127.0.0.1:0".into()),
            ..NodeOptions::default()
        };
        jalin_node::node::Node::spawn(library.clone(), options)
            .await
            .expect("serves")
    });
    let url = node.url().expect("url");
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let login = client
        .post(format!("{url}/login"))
        .form(&[("token", library.data().api_token.as_str())])
        .send()
        .expect("logs in");
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("name=value")
        .to_string();
    let timed = |what: &dyn Fn() -> usize| {
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..7 {
            let start = Instant::now();
            size = what();
            times.push(start.elapsed());
        }
        (summary(times), size)
    };
    let (page, page_bytes) = timed(&|| {
        let response = client
            .get(format!("{url}/librarian/ill"))
            .header("cookie", &cookie)
            .send()
            .expect("answers");
        assert_eq!(response.status(), 200);
        response.bytes().expect("body").len()
    });
    let (list, loans) = timed(&|| {
        run(
            library,
            IllRequest::List {
                incoming: false,
                outgoing: false,
                state: None,
            },
        )
        .loans
        .len()
    });
    let (report, _) = timed(&|| {
        run(library, IllRequest::Report { since: None });
        0
    });
    println!("{label}: {loans} loans at the library measured");
    println!("  GET /librarian/ill ({page_bytes} bytes): {page}");
    println!("  list: {list}");
    println!("  report: {report}");
    runtime.block_on(node.shutdown()).expect("stops");
}

fn scale(total: usize) {
    let codes = [
        "PERPUSDESA",
        "SMP1KEMIRI",
        "SMA1KEMIRI",
        "SDN2KEMIRI",
        "PERPUSKEC",
    ];
    let clock = Arc::new(ManualClock::at(T + DAY_MS));
    let (libs, _dirs, records) = libraries(&codes, Some(clock.clone()), |_| {});
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let pairs: Vec<(usize, usize)> = (0..codes.len())
        .flat_map(|i| {
            (0..codes.len())
                .filter(move |j| *j != i)
                .map(move |j| (i, j))
        })
        .collect();
    let start = Instant::now();
    let mut made = 0;
    let mut round = 0;
    while made < total {
        for &(i, j) in &pairs {
            if made == total {
                break;
            }
            let (a, b) = (&libs[i], &libs[j]);
            let now = clock.now_ms();
            let id = run(a, ask(format!("{}:{}", codes[j], records[j]), codes[j])).loans[0]
                .id
                .clone();
            exchange(a, b, now);
            // Most loans run to the end, some cannot be supplied; of the last 400 some
            // stay out or wait, as a library's open loans do (the agreement's
            // `max_open_loans` bounds them).
            let recent = made + 400 >= total;
            match made % 20 {
                0 => {
                    run(
                        b,
                        IllRequest::Answer {
                            id: id.clone(),
                            will_supply: false,
                            unfilled: Some("sedang dipinjam".into()),
                            conditions: None,
                        },
                    );
                }
                1 if recent => will_supply(b, &id),
                2 | 3 if recent => {
                    will_supply(b, &id);
                    step(b, &id, SimpleStep::Ship);
                    exchange(a, b, now);
                    step(a, &id, SimpleStep::Receive);
                }
                _ => {
                    will_supply(b, &id);
                    step(b, &id, SimpleStep::Ship);
                    exchange(a, b, now);
                    step(a, &id, SimpleStep::Receive);
                    step(a, &id, SimpleStep::Return);
                    exchange(a, b, now);
                    step(b, &id, SimpleStep::Checkin);
                }
            }
            exchange(a, b, now);
            made += 1;
            if made == 1_000 {
                println!(
                    "scale: 1,000 transactions made in {:.1} s",
                    start.elapsed().as_secs_f64()
                );
                measure(&libs[0], &runtime, "after 1,000 transactions (baseline)");
            }
        }
        round += 1;
        // At most 200 requests a day from one library to another.
        if round % 100 == 0 {
            clock.advance(DAY_MS);
        }
    }
    println!(
        "scale: {total} transactions between {} libraries made in {:.1} s",
        codes.len(),
        start.elapsed().as_secs_f64()
    );
    measure(&libs[0], &runtime, &format!("after {total} transactions"));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let only: Vec<&str> = args
        .iter()
        .enumerate()
        .filter(|(_, a)| *a == "--only")
        .filter_map(|(i, _)| args.get(i + 1).map(String::as_str))
        .collect();
    let wanted = |name: &str| only.is_empty() || only.contains(&name);
    if wanted("bytes") {
        bytes();
    }
    if wanted("latency") {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(latency(50));
    }
    if wanted("scale") {
        scale(10_000);
    }
}
