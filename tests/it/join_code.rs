//! Joining by a code read over the phone (issue 18): the inviter's node is found on the
//! local network or through the consortium's relay, the words are proven by SPAKE2, and
//! a code gives one try and expires.

use crate::cli::{jalin, node};
use crate::network::{circuit_address, start_on, Node};
use jalin_node::clock::ManualClock;
use jalin_node::consortium_requests::{execute, Answer, Request};
use jalin_node::join_code::{CodeError, JoinCode, CODE_LIFETIME_MAX_MS};
use jalin_node::library::Library;
use jalin_node::network::{ticket_by_code, JoinError, NetError};
use jalin_protocol::consortium::log::Role;
use jalin_tests::fixtures::{form_consortium, new_library, Relay};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A UDP port free on 127.0.0.1 now.
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port()
}

/// Sets a data dir's `[partners]`: where its node hears questions, where it asks.
fn partners(data: &Path, port: u16, ask: &str) {
    let path = data.join("config.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    let text = text
        .replace("port = 47474", &format!("port = {port}"))
        .replace("\"255.255.255.255:47474\"", &format!("\"{ask}\""));
    assert!(text.contains(&format!("port = {port}")), "{text}");
    std::fs::write(&path, text).expect("writes");
}

/// The code `jalin invite create --code` printed (the line after the ticket).
fn code_of(stdout: &str) -> String {
    let code = stdout.lines().nth(1).unwrap_or_default().to_string();
    assert!(JoinCode::parse(&code).is_ok(), "no code in {stdout:?}");
    code
}

/// The same code with its last word changed: a misheard or guessed one.
fn wrong(code: &str) -> String {
    let mut parsed = JoinCode::parse(code).expect("a code");
    parsed.words[2] = parsed.words[2].wrapping_add(1);
    parsed.to_string()
}

fn member_count(data: &Path) -> usize {
    let (code, stdout, stderr) = jalin(data, &["consortium", "members", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let members: serde_json::Value = serde_json::from_str(&stdout).expect("members JSON");
    members["members"].as_object().map_or(0, |m| m.len())
}

/// Over loopback with real processes: `jalin invite create --code` on the running node,
/// `jalin join --code` from another library's data dir, found by the local network's
/// question. A wrong code fails and spends the code (the right words then find nothing);
/// a new code joins.
#[test]
fn a_code_read_over_the_phone_joins_over_loopback_and_a_wrong_one_spends_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    for (data, name, code) in [
        (&a, "Perpustakaan Kecamatan", "KECAMATAN"),
        (&b, "Perpustakaan Desa Kemiri", "KEMIRI"),
        (&c, "Tamu", "TAMU"),
    ] {
        let (status, _, stderr) = jalin(data, &["init", "--name", name, "--code", code]);
        assert_eq!(status, 0, "{stderr}");
    }
    assert_eq!(jalin(&a, &["consortium", "create", "--name", "Uji"]).0, 0);
    let port = free_udp_port();
    let ask = format!("127.0.0.1:{port}");
    partners(&a, port, &ask);
    partners(&b, free_udp_port(), &ask);
    partners(&c, free_udp_port(), &ask);

    // Without the running node there is no one to hold a code: said, not pretended.
    let (status, _, stderr) = jalin(&a, &["invite", "create", "--code"]);
    assert_ne!(status, 0);
    assert!(stderr.contains("jalin start"), "{stderr}");

    let node_a = node(&a).0;
    let (status, stdout, stderr) = jalin(&a, &["invite", "create", "--code"]);
    assert_eq!(status, 0, "{stderr}");
    assert!(stderr.contains("Join code"), "{stderr}");
    let first = code_of(&stdout);

    // C mishears a word: refused, and the code is spent.
    let (status, stdout, stderr) = jalin(&c, &["join", "--code", &wrong(&first)]);
    assert_ne!(status, 0, "{stdout}{stderr}");
    assert!(stderr.contains("the code is wrong"), "{stderr}");
    // The right words now find no node with that code open.
    let (status, stdout, stderr) = jalin(&b, &["join", "--code", &first]);
    assert_ne!(status, 0, "{stdout}{stderr}");
    assert!(stderr.contains("open"), "{stderr}");
    assert_eq!(member_count(&a), 1);

    // A new code, read right: B joins, with the same invite and acceptance a ticket has.
    let (status, stdout, stderr) = jalin(&a, &["invite", "create", "--code"]);
    assert_eq!(status, 0, "{stderr}");
    let second = code_of(&stdout);
    let spoken = second.replace('-', " ").to_uppercase();
    let (status, stdout, stderr) = jalin(&b, &["join", "--code", &spoken]);
    assert_eq!(status, 0, "{stdout}{stderr}");
    assert!(stdout.contains("Joined \"Uji\""), "{stdout}{stderr}");
    assert_eq!(member_count(&a), 2);
    assert_eq!(member_count(&b), 2);
    // C holds no consortium: its guess got it nothing.
    let (status, stdout, stderr) = jalin(&c, &["consortium", "list"]);
    assert_eq!(status, 0, "{stderr}");
    assert!(!stdout.contains("Uji"), "{stdout}");
    // A used code is not served again.
    let (status, _, stderr) = jalin(&c, &["join", "--code", &second]);
    assert_ne!(status, 0, "{stderr}");
    assert_eq!(member_count(&a), 2);
    drop(node_a);
}

/// The inviter behind a relay only (no address of its own): the joiner finds it by the
/// relay's directory and joins through the relay. A code past its hour (the inviter's
/// injected clock) is refused, and its ticket never leaves the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_joins_through_the_relay_and_an_expired_one_is_refused() {
    let now = jalin_node::server::now_ms();
    let clock = Arc::new(ManualClock::at(now));
    let (a_dir, mut a_data) = new_library(100);
    a_data.config.library.code = "KECAMATAN".into();
    a_data.config.network.mdns = false;
    let a_library = Library::open_with_clock(a_data, clock.clone()).expect("opens");
    let consortium = form_consortium("Jaringan Desa", &[&a_library]);
    let documents = a_library.consortia().export(&consortium).expect("exports");
    let relay = Relay::start(&documents).await;
    let a_id = a_library.id();
    drop(a_library);
    let mut a_data = jalin_node::config::DataDir::open(a_dir.path()).expect("opens");
    a_data.config.network.relays = vec![relay.address.to_string()];
    let a = Arc::new(Library::open_with_clock(a_data, clock.clone()).expect("opens"));
    let a = start_on(a, a_dir, Vec::new()).await;
    let circuit = circuit_address(&a).await;

    let code = open_code(&a, &circuit).await;
    let (b_dir, mut b_data) = new_library(100);
    b_data.config.library.code = "KEMIRI".into();
    b_data.config.network.mdns = false;
    let b = Arc::new(Library::open(b_data).expect("opens"));
    let relays = [relay.address.clone()];
    // Nothing on the local network asked here: the relay alone finds A; the ticket it
    // opens is the invite, and B's acceptance goes back on the same connection.
    let joined = jalin_node::joining::join_with_code(
        &code,
        &[],
        &relays,
        false,
        |_| {},
        |request| {
            let b = b.clone();
            async move {
                tokio::task::spawn_blocking(move || {
                    execute(b.consortia(), request, jalin_node::server::now_ms(), vec![])
                })
                .await
                .expect("task")
            }
        },
    )
    .await
    .expect("B's requests")
    .expect("the code opens the ticket through the relay");
    assert!(
        matches!(joined, jalin_node::joining::Joined::OverNetwork { .. }),
        "{joined:?}"
    );
    assert!(b.consortia().trust().is_co_member(&a_id));

    // Wrong words through the relay: refused, and the code is spent.
    let code = open_code(&a, &circuit).await;
    let mut guess = code.clone();
    guess.words[0] = guess.words[0].wrapping_add(7);
    let error = ticket_by_code(&guess, &[], &relays, Duration::from_secs(30))
        .await
        .expect_err("a wrong code opens nothing");
    assert!(
        matches!(error, NetError::Join(JoinError::Code(CodeError::Wrong))),
        "{error}"
    );
    assert!(ticket_by_code(&code, &[], &relays, Duration::from_secs(30))
        .await
        .is_err());

    // A code past its hour, by A's clock: refused, though the relay still lists it.
    let code = open_code(&a, &circuit).await;
    clock.advance(CODE_LIFETIME_MAX_MS + 1);
    let error = ticket_by_code(&code, &[], &relays, Duration::from_secs(30))
        .await
        .expect_err("an expired code opens nothing");
    assert!(error.to_string().contains("expired"), "{error}");
    assert!(a
        .library
        .join_codes()
        .open_now(a.library.now_ms())
        .is_empty());
    drop(b_dir);
    relay.stop().await;
}

/// Opens a code on `node` for a fresh invite naming `address`, as the running node's
/// API does, and waits until the relay has been told (the network's member set).
async fn open_code(node: &Node, address: &libp2p::Multiaddr) -> JoinCode {
    let library = node.library.clone();
    let at = address.to_string();
    let answer: Answer = tokio::task::spawn_blocking(move || {
        execute(
            library.consortia(),
            Request::Invite {
                consortium: None,
                role: Role::Member,
                expires_s: 86_400,
                note: String::new(),
                with_agreement: false,
                code: false,
            },
            library.now_ms(),
            vec![at],
        )
    })
    .await
    .expect("task")
    .expect("invites");
    let ticket = answer.text.expect("a ticket");
    let invite = jalin_protocol::consortium::document::Signed::<
        jalin_protocol::consortium::log::Invite,
    >::from_text(&ticket)
    .expect("an invite");
    let open = node
        .library
        .join_codes()
        .open(
            ticket,
            invite.body.consortium,
            invite.body.expires_ms,
            node.library.now_ms(),
        )
        .expect("opens a code");
    // The network admits the code's identity and tells the relay before this returns.
    node.net.members_changed().await.expect("the network runs");
    open.code
}

/// An invite whose consortium proposes an agreement: the code hands over the invitation,
/// the joiner is shown the agreement and joins nothing until it agrees (the code is
/// spent; the invitation kept in a file joins with `--agree`, over the network).
#[test]
fn a_code_for_an_invitation_with_an_agreement_shows_it_before_joining() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for (data, name, code) in [
        (&a, "Perpustakaan Kecamatan", "KECAMATAN"),
        (&b, "SDN 2 Kemiri", "SDN2"),
    ] {
        let (status, _, stderr) = jalin(data, &["init", "--name", name, "--code", code]);
        assert_eq!(status, 0, "{stderr}");
    }
    assert_eq!(jalin(&a, &["consortium", "create", "--name", "Uji"]).0, 0);
    let agreement = dir.path().join("perjanjian.md");
    std::fs::write(
        &agreement,
        "+++\ntitle = \"Perjanjian Jaringan Uji\"\ninterlibrary_loan = true\n\
         loan_period_days = 21\n+++\nPara pihak saling meminjamkan koleksi.\n",
    )
    .expect("writes");
    let (status, _, stderr) = jalin(&a, &["agreement", "draft", agreement.to_str().unwrap()]);
    assert_eq!(status, 0, "{stderr}");
    let (status, _, stderr) = jalin(&a, &["agreement", "sign"]);
    assert_eq!(status, 0, "{stderr}");
    let port = free_udp_port();
    let ask = format!("127.0.0.1:{port}");
    partners(&a, port, &ask);
    partners(&b, free_udp_port(), &ask);
    let node_a = node(&a).0;
    let invitation = dir.path().join("undangan.txt");
    let (status, stdout, stderr) = jalin(
        &a,
        &[
            "invite",
            "create",
            "--code",
            "--invitation",
            invitation.to_str().unwrap(),
        ],
    );
    assert_eq!(status, 0, "{stderr}");
    let code = code_of(&stdout);

    let kept = dir.path().join("dari-kode.txt");
    let (status, stdout, stderr) = jalin(
        &b,
        &["join", "--code", &code, "--out", kept.to_str().unwrap()],
    );
    assert_eq!(status, 3, "{stdout}{stderr}");
    assert!(stdout.contains("Perjanjian Jaringan Uji"), "{stdout}");
    assert!(stderr.contains("--agree"), "{stderr}");
    let (_, listed, _) = jalin(&b, &["consortium", "list"]);
    assert!(!listed.contains("Uji"), "{listed}");
    let text = std::fs::read_to_string(&kept).expect("the invitation kept");
    assert!(text.contains("JALIN-AGREEMENT:"), "{text}");

    let (status, stdout, stderr) = jalin(&b, &["join", kept.to_str().unwrap(), "--agree"]);
    assert_eq!(status, 0, "{stdout}{stderr}");
    assert!(stdout.contains("Joined \"Uji\""), "{stdout}{stderr}");
    assert_eq!(member_count(&a), 2);
    drop(node_a);
}

/// A members-only relay lets a code number's identity in (to ask its directory and reach
/// members), but reserves for members alone: under such an identity no one can be
/// reached through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_identity_gets_no_reservation_at_a_members_only_relay() {
    use libp2p::futures::StreamExt;
    use libp2p::swarm::SwarmEvent;
    let (_dir, data) = new_library(100);
    let library = Library::open(data).expect("opens");
    let consortium = form_consortium("Jaringan Desa", &[&library]);
    let documents = library.consortia().export(&consortium).expect("exports");
    let relay = Relay::start(&documents).await;
    let mut swarm =
        libp2p::SwarmBuilder::with_existing_identity(jalin_node::network::code_identity(47))
            .with_tokio()
            .with_tcp(
                libp2p::tcp::Config::default(),
                libp2p::noise::Config::new,
                libp2p::yamux::Config::default,
            )
            .expect("tcp")
            .with_relay_client(libp2p::noise::Config::new, libp2p::yamux::Config::default)
            .expect("relay client")
            .with_behaviour(|_, relay_client| relay_client)
            .expect("behaviour")
            .build();
    let circuit = relay
        .address
        .clone()
        .with(libp2p::multiaddr::Protocol::P2pCircuit);
    swarm.listen_on(circuit).expect("asks for a reservation");
    let outcome = tokio::time::timeout(Duration::from_secs(20), async {
        let mut connected = false;
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { .. } => connected = true,
                SwarmEvent::NewListenAddr { address, .. } => return Ok(address),
                SwarmEvent::ListenerClosed { reason, .. } => {
                    return Err((connected, format!("{reason:?}")))
                }
                SwarmEvent::ListenerError { error, .. } => {
                    return Err((connected, error.to_string()))
                }
                _ => {}
            }
        }
    })
    .await
    .expect("the relay answers");
    match outcome {
        Ok(address) => panic!("a code identity was given a reservation: {address}"),
        // Let in (the connection was made), then refused the reservation.
        Err((connected, reason)) => assert!(connected, "{reason}"),
    }
    relay.stop().await;
}
