//! Two village libraries behind two NATs (issue 19): network namespaces this test makes,
//! a router namespace for each library masquerading its LAN with `nft`, and an
//! "internet" namespace between them where the consortium's relay runs. Neither library
//! can be dialed from outside; both list the relay in `[network] relays`. They reach each
//! other through it and sync; where the NAT keeps a connection's port for every
//! destination (endpoint-independent mapping, Linux's plain masquerade) hole punching
//! makes the connection direct, and where it picks a random port per connection (as many
//! carriers' NATs do) they stay on the relay. The status page says which.

use crate::cli::{start_with_p2p, Running};
use crate::support::{have_tool, jalin_binary, jalin_in};
use jalin_node::library::{ImportOptions, Library, Source};
use jalin_tests::fixtures::{form_consortium, new_library};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `program` with `args`; whether it succeeded (what failed is printed).
fn run(program: &str, args: &[&str]) -> bool {
    match Command::new(program).args(args).output() {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            eprintln!(
                "{program} {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
            false
        }
        Err(error) => {
            eprintln!("{program}: {error}");
            false
        }
    }
}

/// `ip -n NS ARGS...`
fn ip(ns: &str, args: &str) -> bool {
    let args: Vec<&str> = ["-n", ns].into_iter().chain(args.split(' ')).collect();
    run("ip", &args)
}

/// The namespaces, removed (with their veth pairs) when dropped.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            run("ip", &["netns", "del", ns]);
        }
    }
}

/// The internet (`inet`, which routes between the NATs' outside addresses 100.64.1.1 and
/// 100.64.2.1 and has 100.64.1.254 for the relay), two routers masquerading LANs
/// 192.168.1.0/24 and 192.168.2.0/24, and a library's host on each LAN (`.1`). Each
/// router drops what comes from outside unasked, as a carrier's NAT does. `random`:
/// the routers map each connection to a random port (hole punching cannot work).
struct Internet {
    inet: String,
    hosts: [String; 2],
    _namespaces: Namespaces,
}

fn internet(tag: &str, random: bool) -> Option<Internet> {
    let inet = format!("jni{tag}");
    let nats = [format!("jna{tag}"), format!("jnb{tag}")];
    let hosts = [format!("jha{tag}"), format!("jhb{tag}")];
    let all: Vec<String> = [&inet]
        .into_iter()
        .chain(&nats)
        .chain(&hosts)
        .cloned()
        .collect();
    // Removed when this returns early or the test ends; any left by an earlier run of
    // the same name (a killed test) removed first.
    let namespaces = Namespaces(all.clone());
    for ns in &all {
        let _ = Command::new("ip").args(["netns", "del", ns]).output();
        if !run("ip", &["netns", "add", ns]) {
            return None;
        }
    }
    let mut ok = all.iter().all(|ns| ip(ns, "link set lo up"));
    for (i, (nat, host)) in nats.iter().zip(&hosts).enumerate() {
        let n = i + 1;
        ok =
            ok && ip(
                &inet,
                &format!("link add w{n} type veth peer name wan netns {nat}"),
            ) && ip(
                nat,
                &format!("link add lan type veth peer name eth0 netns {host}"),
            ) && ip(&inet, &format!("addr add 100.64.{n}.254/24 dev w{n}"))
                && ip(&inet, &format!("link set w{n} up"))
                && ip(nat, &format!("addr add 100.64.{n}.1/24 dev wan"))
                && ip(nat, &format!("addr add 192.168.{n}.254/24 dev lan"))
                && ip(nat, "link set wan up")
                && ip(nat, "link set lan up")
                && ip(nat, &format!("route add default via 100.64.{n}.254"))
                && ip(host, &format!("addr add 192.168.{n}.1/24 dev eth0"))
                && ip(host, "link set eth0 up")
                && ip(host, &format!("route add default via 192.168.{n}.254"))
                && run(
                    "ip",
                    &[
                        "netns",
                        "exec",
                        nat,
                        "sysctl",
                        "-qw",
                        "net.ipv4.ip_forward=1",
                    ],
                )
                && nat_rules(nat, random);
    }
    ok = ok
        && run(
            "ip",
            &[
                "netns",
                "exec",
                &inet,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ],
        );
    ok.then_some(Internet {
        inet,
        hosts,
        _namespaces: namespaces,
    })
}

/// A carrier's NAT in `nat`: the LAN masqueraded on `wan`, nothing in from outside that
/// the inside did not start.
fn nat_rules(nat: &str, random: bool) -> bool {
    let masquerade = if random {
        "masquerade random"
    } else {
        "masquerade"
    };
    let rules = format!(
        "table ip nat {{\n\
           chain postrouting {{ type nat hook postrouting priority srcnat; policy accept;\n\
             oifname \"wan\" {masquerade}\n\
           }}\n\
         }}\n\
         table inet filter {{\n\
           chain forward {{ type filter hook forward priority filter; policy accept;\n\
             iifname \"wan\" ct state new drop\n\
           }}\n\
           chain input {{ type filter hook input priority filter; policy accept;\n\
             iifname \"wan\" ct state new drop\n\
           }}\n\
         }}\n"
    );
    let mut child = match Command::new("ip")
        .args(["netns", "exec", nat, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(_) => return false,
    };
    use std::io::Write;
    let written = child
        .stdin
        .take()
        .is_some_and(|mut stdin| stdin.write_all(rules.as_bytes()).is_ok());
    written && child.wait().is_ok_and(|s| s.success())
}

fn json_of(ns: &str, data: &Path, args: &[&str]) -> serde_json::Value {
    let output = jalin_in(ns, data, args).output().expect("jalin runs");
    serde_json::from_slice(&output.stdout).unwrap_or_default()
}

/// The digest of catalog `id` at the node in `ns`.
fn digest(ns: &str, data: &Path, id: &str) -> Option<String> {
    let status = json_of(ns, data, &["sync", "status", "--json"]);
    status["catalogs"]
        .as_array()?
        .iter()
        .find(|c| c["library_id"] == id)
        .and_then(|c| c["digest"].as_str())
        .map(str::to_string)
}

/// How the node in `ns` reaches its one connected member (not the relay, also a peer):
/// `direct`, `relay`, or none.
fn route(ns: &str, data: &Path) -> Option<String> {
    let network = json_of(ns, data, &["peers", "--json"]);
    network["peers"]
        .as_array()?
        .iter()
        .find(|p| p["library"].is_string())
        .and_then(|p| p["route"].as_str())
        .map(str::to_string)
}

/// The librarian's status page of the node in `ns` at `url`, logged in with the data
/// dir's API token (by Python's standard library, inside the namespace).
fn status_page(ns: &str, data: &Path, url: &str) -> String {
    let token = std::fs::read_to_string(data.join("api-token")).expect("token");
    let script = "import sys, urllib.request, urllib.parse, http.cookiejar\n\
        url, token = sys.argv[1], sys.argv[2].strip()\n\
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))\n\
        opener.open(url + '/login', urllib.parse.urlencode({'token': token}).encode())\n\
        sys.stdout.write(opener.open(url + '/librarian').read().decode())\n";
    let output = Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", script, url, &token])
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

/// Sets a data dir's `[network]`: only through `relay`, no mDNS.
fn use_relay(data: &Path, relay: &str) {
    let path = data.join("config.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    let text = text
        .replace("mdns = true", "mdns = false")
        .replace("relays = []", &format!("relays = [\"{relay}\"]"));
    assert!(text.contains(relay), "{text}");
    std::fs::write(&path, text).expect("writes");
}

/// Runs the two-NAT case; the route each node ends on once their catalogs have crossed
/// (`random`: the NATs map ports at random), after `settle` more.
fn two_libraries_behind_nats(tag: &str, random: bool, settle: Duration) -> Option<[String; 2]> {
    if !have_tool("ip", &["netns", "list"]) || !have_tool("nft", &["--version"]) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have ip and nft (.ci/run installs them)"
        );
        eprintln!("skipped: ip or nft missing");
        return None;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (a_dir, b_dir, ids, documents) = {
        let (a_dir, mut a_data) = new_library(500);
        let (b_dir, mut b_data) = new_library(500);
        a_data.config.library.code = "DESA-A".into();
        b_data.config.library.code = "DESA-B".into();
        let a = Library::open(a_data).expect("opens");
        let b = Library::open(b_data).expect("opens");
        let consortium = form_consortium("Perpustakaan Desa", &[&a, &b]);
        let sample =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../cli/demo/loc-indonesia-sample.mrc");
        for library in [&a, &b] {
            library
                .import(
                    &Source::File(sample.clone()),
                    &ImportOptions::default(),
                    |_| {},
                )
                .expect("imports");
        }
        let documents = a.consortia().export(&consortium).expect("exports");
        (a_dir, b_dir, [a.id().to_hex(), b.id().to_hex()], documents)
    };
    let Some(net) = internet(tag, random) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to make network namespaces and NAT (root)"
        );
        eprintln!("skipped: namespaces or nft rules cannot be made here");
        return None;
    };

    // The consortium's relay, on the internet, for its two members.
    let relay_dir = dir.path().join("relay");
    let members = dir.path().join("documents.txt");
    std::fs::write(&members, documents).expect("writes");
    let init = Command::new(jalin_binary())
        .arg("--data-dir")
        .arg(&relay_dir)
        .args(["init", "--name", "Relay Kabupaten", "--code", "RELAY"])
        .output()
        .expect("jalin runs");
    assert!(init.status.success());
    let mut relay = jalin_in(
        &net.inet,
        &relay_dir,
        &[
            "relay",
            "--listen",
            "/ip4/100.64.1.254/tcp/4001",
            "--members",
            members.to_str().expect("utf-8"),
        ],
    )
    .stdout(Stdio::piped())
    .spawn()
    .expect("the relay starts");
    let mut lines = BufReader::new(relay.stdout.take().expect("piped")).lines();
    let relay_address = loop {
        let line = lines
            .next()
            .expect("the relay prints its address")
            .expect("utf-8");
        if let Some(address) = line.trim().strip_prefix("relay: ") {
            break address.to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let _relay = Running(relay);

    let datas = [a_dir.path(), b_dir.path()];
    let mut nodes: Vec<(Running, String)> = Vec::new();
    for (host, data) in net.hosts.iter().zip(datas) {
        use_relay(data, &relay_address);
        let (node, url, _) = start_with_p2p(jalin_in(
            host,
            data,
            &[
                "start",
                "--listen",
                "127.0.0.1:0",
                "--p2p-listen",
                "/ip4/0.0.0.0/tcp/4001",
            ],
        ));
        nodes.push((node, url));
    }

    // Each catalog reaches the other library (neither was ever given the other's
    // address: each dials the other through the relay both use).
    let targets: Vec<String> = (0..2)
        .map(|i| digest(&net.hosts[i], datas[i], &ids[i]).expect("own digest"))
        .collect();
    let started = Instant::now();
    loop {
        let crossed = (0..2).all(|i| {
            let other = 1 - i;
            digest(&net.hosts[other], datas[other], &ids[i]).as_ref() == Some(&targets[i])
        });
        if crossed {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the catalogs did not cross the NATs in 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "catalogs crossed in {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        json_of(&net.hosts[1], datas[1], &["sync", "status", "--json"])
    );
    // Hole punching runs on the relayed connection: wait for it to end one way or the other.
    let until = Instant::now() + settle;
    let mut routes = [
        route(&net.hosts[0], datas[0]),
        route(&net.hosts[1], datas[1]),
    ];
    while Instant::now() < until {
        routes = [
            route(&net.hosts[0], datas[0]),
            route(&net.hosts[1], datas[1]),
        ];
        if !random && routes.iter().all(|r| r.as_deref() == Some("direct")) {
            break;
        }
        // A direct connection behind random-port NATs would be a wrong test, not luck.
        if random {
            assert!(
                routes.iter().all(|r| r.as_deref() != Some("direct")),
                "connected directly through NATs that map ports at random: {routes:?}"
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let page = status_page(&net.hosts[0], datas[0], &nodes[0].1);
    let expected = match routes[0].as_deref() {
        Some("direct") => "langsung",
        _ => "lewat relay",
    };
    assert!(
        page.contains(&format!("<span class=\"route\">{expected}</span>")),
        "the status page does not say {expected:?}"
    );
    let routes = routes.map(|r| r.unwrap_or_default());
    eprintln!("routes: {routes:?}");
    drop(nodes);
    Some(routes)
}

#[test]
fn behind_two_nats_libraries_sync_through_the_relay_then_punch_a_hole() {
    let tag = format!("{}e", std::process::id() % 10_000);
    if let Some(routes) = two_libraries_behind_nats(&tag, false, Duration::from_secs(60)) {
        assert_eq!(routes, ["direct", "direct"], "the hole was not punched");
    }
}

#[test]
fn behind_nats_that_map_ports_at_random_libraries_stay_on_the_relay() {
    let tag = format!("{}r", std::process::id() % 10_000);
    if let Some(routes) = two_libraries_behind_nats(&tag, true, Duration::from_secs(20)) {
        assert_eq!(routes, ["relay", "relay"]);
    }
}
