//! Sync over a village's weak link (issue 18): two nodes in network namespaces this test
//! makes, joined by veth pairs shaped to 64 kbit/s with `tc`, through a proxy (here, in
//! the test) that adds 300 ms each way and cuts the connection twice. The change set
//! arrives whole, with the bytes received within 10% of the changes' own, and the
//! progress (records to go) is shown while it comes.

use crate::cli::{start_with_p2p, Running};
use crate::shared_data_or_skip;
use crate::support::{have_tool, jalin_in};
use jalin_node::library::{ImportOptions, Library, Source};
use jalin_protocol::marc::iso2709;
use jalin_tests::fixtures::{form_consortium, new_library, noted, replicate};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs `ip`/`tc` with `args`; whether it succeeded.
fn run(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

/// Two namespaces, removed (with their veth pairs) when dropped.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            run("ip", &["netns", "del", ns]);
        }
    }
}

/// A namespace `ns` reached from here at `net.254` over a veth pair whose ends both send
/// at most 64 kbit/s; the node inside has `net.1`.
fn shaped_namespace(ns: &str, link: &str, net: &str) -> bool {
    let outside = format!("{link}r");
    let tbf = [
        "root", "tbf", "rate", "64kbit", "burst", "4kb", "latency", "2000ms",
    ];
    run("ip", &["netns", "add", ns])
        && run(
            "ip",
            &[
                "link", "add", link, "type", "veth", "peer", "name", &outside,
            ],
        )
        && run("ip", &["link", "set", link, "netns", ns])
        && run(
            "ip",
            &["addr", "add", &format!("{net}.254/24"), "dev", &outside],
        )
        && run("ip", &["link", "set", &outside, "up"])
        && run(
            "ip",
            &["-n", ns, "addr", "add", &format!("{net}.1/24"), "dev", link],
        )
        && run("ip", &["-n", ns, "link", "set", link, "up"])
        && run("ip", &["-n", ns, "link", "set", "lo", "up"])
        && run(
            "tc",
            &[&["qdisc", "add", "dev", &outside][..], &tbf[..]].concat(),
        )
        && run(
            "ip",
            &[
                &["netns", "exec", ns, "tc", "qdisc", "add", "dev", link][..],
                &tbf[..],
            ]
            .concat(),
        )
}

fn sync_status(ns: &str, data: &Path) -> serde_json::Value {
    let output = jalin_in(ns, data, &["sync", "status", "--json"])
        .output()
        .expect("jalin runs");
    serde_json::from_slice(&output.stdout).unwrap_or_default()
}

fn catalog<'a>(status: &'a serde_json::Value, id: &str) -> Option<&'a serde_json::Value> {
    status["catalogs"]
        .as_array()?
        .iter()
        .find(|c| c["library_id"] == id)
}

/// A proxy from `listen` to `to`: 300 ms more each way, and the connection cut once it
/// carried each of `cuts` bytes (one cut per connection, in order). Counts the cuts.
async fn proxy(
    listener: tokio::net::TcpListener,
    to: std::net::SocketAddr,
    cuts: Vec<u64>,
    done: Arc<AtomicU64>,
) {
    let mut cuts = cuts.into_iter();
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            return;
        };
        let Ok(outbound) = tokio::net::TcpStream::connect(to).await else {
            continue;
        };
        let cut_after = cuts.next().unwrap_or(u64::MAX);
        let done = done.clone();
        tokio::spawn(async move {
            let carried = Arc::new(AtomicU64::new(0));
            let (in_read, in_write) = inbound.into_split();
            let (out_read, out_write) = outbound.into_split();
            let one = delay_line(in_read, out_write, carried.clone(), cut_after);
            let other = delay_line(out_read, in_write, carried.clone(), cut_after);
            tokio::select! {
                _ = one => {}
                _ = other => {}
            }
            if carried.load(Ordering::SeqCst) >= cut_after {
                done.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
}

/// Copies `from` to `to`, each chunk 300 ms after it was read (a pipeline: the delay is
/// latency, not a limit on throughput); stops once the connection carried `cut_after`.
async fn delay_line(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    carried: Arc<AtomicU64>,
    cut_after: u64,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let due = tokio::time::Instant::now() + Duration::from_millis(300);
                    if tx.send((due, buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
            if carried.fetch_add(bytes.len() as u64, Ordering::SeqCst) + bytes.len() as u64
                >= cut_after
            {
                return;
            }
        }
    };
    tokio::select! {
        () = reader => {}
        () = writer => {}
    }
}

#[test]
fn a_change_set_crosses_a_64_kbit_link_with_600_ms_round_trips_and_cuts() {
    let data = shared_data_or_skip!();
    if !have_tool("ip", &["netns", "list"]) || !have_tool("tc", &["-V"]) {
        return;
    }
    // A: the district library; B: the village, which holds A's catalog as it was.
    let (a_dir, b_dir, a_id, lacking) = {
        let (a_dir, mut a_data) = new_library(500);
        let (b_dir, mut b_data) = new_library(500);
        a_data.config.library.code = "PERPUSDA".into();
        b_data.config.library.code = "PERPUSDESA".into();
        let a = Library::open(a_data).expect("opens");
        let b = Library::open(b_data).expect("opens");
        form_consortium("Jaringan Kabupaten", &[&a, &b]);
        a.import(
            &Source::File(data.join("marc/loc/loc-indonesia-3147.mrc")),
            &ImportOptions::default(),
            |_| {},
        )
        .expect("imports");
        replicate(&a, &b);
        // While apart: 100 records corrected and 100 new ones (the records' ids are
        // their 001: a new 001 is a new record).
        let ids: Vec<String> = a
            .store()
            .records_of(&a.id())
            .map(|r| r.expect("reads").record_id)
            .collect();
        let mut changed = Vec::new();
        for (i, id) in ids.iter().take(200).enumerate() {
            let mut marc = noted(&a, id, "Koleksi kabupaten");
            if i >= 100 {
                marc.set_control("001", &format!("BARU-{i}"));
            }
            changed.extend(iso2709::write_record(&marc).expect("writes"));
        }
        a.import(&Source::Bytes(changed), &ImportOptions::default(), |_| {})
            .expect("imports");
        let lacking = jalin_tests::measure::changes_bytes(&a, &b);
        (a_dir, b_dir, a.id().to_hex(), lacking)
    };

    let tag = std::process::id() % 10_000;
    // 10.200.x to 10.249.x (tools/bench_weak_link.py takes 10.100 to 10.149).
    let net = 200 + std::process::id() % 50;
    let (ns_a, ns_b) = (format!("jwa{tag}"), format!("jwb{tag}"));
    let _namespaces = Namespaces(vec![ns_a.clone(), ns_b.clone()]);
    if !shaped_namespace(&ns_a, &format!("jwa{tag}"), &format!("10.{net}.2"))
        || !shaped_namespace(&ns_b, &format!("jwb{tag}"), &format!("10.{net}.1"))
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to make network namespaces (root)"
        );
        eprintln!("skipped: network namespaces cannot be made here");
        return;
    }
    let (_a, _, a_p2p) = start_with_p2p(jalin_in(
        &ns_a,
        a_dir.path(),
        &[
            "start",
            "--listen",
            "127.0.0.1:0",
            "--p2p-listen",
            &format!("/ip4/10.{net}.2.1/tcp/0"),
        ],
    ));
    let (_b, _, _): (Running, String, String) = start_with_p2p(jalin_in(
        &ns_b,
        b_dir.path(),
        &[
            "start",
            "--listen",
            "127.0.0.1:0",
            "--p2p-listen",
            &format!("/ip4/10.{net}.1.1/tcp/0"),
        ],
    ));
    let a_port: u16 = a_p2p
        .split('/')
        .nth(4)
        .and_then(|p| p.parse().ok())
        .expect("A's port");
    let a_peer = a_p2p.rsplit('/').next().expect("A's peer id").to_string();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let cuts = Arc::new(AtomicU64::new(0));
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(format!("10.{net}.1.254:0")))
        .expect("the proxy listens");
    let proxy_port = listener.local_addr().expect("address").port();
    runtime.spawn(proxy(
        listener,
        format!("10.{net}.2.1:{a_port}").parse().expect("address"),
        vec![40_000, 60_000],
        cuts.clone(),
    ));
    let dial = format!("/ip4/10.{net}.1.254/tcp/{proxy_port}/p2p/{a_peer}");
    let status = jalin_in(&ns_b, b_dir.path(), &["peers", "--dial", &dial])
        .status()
        .expect("jalin runs");
    assert!(status.success());

    let target = catalog(&sync_status(&ns_a, a_dir.path()), &a_id)
        .map(|c| c["digest"].clone())
        .expect("A's digest");
    let started = Instant::now();
    let mut saw_progress = false;
    loop {
        let status = sync_status(&ns_b, b_dir.path());
        if let Some(c) = catalog(&status, &a_id) {
            if c["digest"] == target {
                break;
            }
            saw_progress |= c["to_go"].as_u64().is_some_and(|n| n > 0)
                && c["bytes_to_go"].as_u64().is_some_and(|n| n > 0);
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the change set did not arrive in 5 minutes: {status}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let took = started.elapsed();
    let status = sync_status(&ns_b, b_dir.path());
    let received = status["traffic"]["bytes_received"]
        .as_u64()
        .expect("counts");
    eprintln!(
        "weak link: {lacking} bytes of changes, {received} received, {} cuts, {:.0} s",
        cuts.load(Ordering::SeqCst),
        took.as_secs_f64()
    );
    assert_eq!(cuts.load(Ordering::SeqCst), 2, "both cuts happened");
    assert!(saw_progress, "sync status showed the records to go");
    assert!(
        received as f64 <= lacking as f64 * 1.1 + 20_000.0,
        "received {received} bytes for {lacking} bytes of changes"
    );
    runtime.shutdown_background();
}
