//! Interlibrary loan between members' nodes over real libp2p connections on 127.0.0.1,
//! each node with its own injected clock: a whole loan, both sides agreeing at each
//! step; the rota passing a request on; requests refused for want of an agreement.

use crate::network::{start, Node, T};
use crate::support::new_library;
use jalin_node::clock::ManualClock;
use jalin_node::ill_requests::{execute, IllAnswer, IllRequest, LoanView, SimpleStep};
use jalin_node::library::{Library, LibraryError};
use jalin_protocol::consortium::document::Hash32;
use std::sync::Arc;

const DAY_MS: u64 = 86_400_000;

/// Libraries `codes[i]`, each with its own clock at `T`, in one consortium made by text;
/// the first founded it.
pub(crate) fn libraries(
    codes: &[&str],
) -> Vec<(Arc<Library>, Arc<ManualClock>, tempfile::TempDir)> {
    let mut out = Vec::new();
    for code in codes {
        let (dir, mut data) = new_library(100);
        data.config.library.code = code.to_string();
        data.config.library.name = format!("Perpustakaan {code}");
        let clock = Arc::new(ManualClock::at(T));
        let library = Library::open_with_clock(data, clock.clone()).expect("opens");
        out.push((Arc::new(library), clock, dir));
    }
    let members: Vec<&Library> = out.iter().map(|(l, _, _)| l.as_ref()).collect();
    crate::network::form_consortium("Jaringan Pinjam", &members);
    share_documents(&out);
    out
}

/// Every library takes in every other's documents of the consortium (by text).
fn share_documents(libraries: &[(Arc<Library>, Arc<ManualClock>, tempfile::TempDir)]) {
    let members: Vec<&Library> = libraries.iter().map(|(l, _, _)| l.as_ref()).collect();
    jalin_tests::fixtures::share_documents(&members);
}

fn consortium(library: &Library) -> Hash32 {
    library.consortia().list()[0].id
}

/// An agreement with interlibrary loan (or not), signed by every member.
pub(crate) fn agree(
    libraries: &[(Arc<Library>, Arc<ManualClock>, tempfile::TempDir)],
    loans: bool,
) {
    let members: Vec<&Library> = libraries.iter().map(|(l, _, _)| l.as_ref()).collect();
    jalin_tests::fixtures::agree(
        &members,
        &format!(
            "interlibrary_loan = {loans}
loan_period_days = 14
items_per_request = 2
             answer_within_days = 3
max_renewals = 1
renewal_days = 7"
        ),
    );
    let founder = &libraries[0].0;
    let terms = founder
        .consortia()
        .terms_in_force(&consortium(founder))
        .expect("reads");
    assert_eq!(terms.map(|t| t.interlibrary_loan), Some(loans));
}

/// The same book (one ISBN) in each of `holders`' catalogs, and every catalog at every
/// library, so each union catalog groups the holdings.
pub(crate) fn the_same_book(
    libraries: &[(Arc<Library>, Arc<ManualClock>, tempfile::TempDir)],
    holders: &[usize],
) -> Vec<String> {
    let members: Vec<&Library> = libraries.iter().map(|(l, _, _)| l.as_ref()).collect();
    jalin_tests::fixtures::the_same_book(&members, holders)
}

async fn run(library: &Arc<Library>, request: IllRequest) -> Result<IllAnswer, LibraryError> {
    let library = library.clone();
    tokio::task::spawn_blocking(move || execute(&library, request))
        .await
        .expect("runs")
}

async fn ok(library: &Arc<Library>, request: IllRequest) -> IllAnswer {
    run(library, request).await.expect("the request is taken")
}

fn show(id: &str) -> IllRequest {
    IllRequest::Show { id: id.into() }
}

/// The loan as `library` shows it now.
async fn loan(library: &Arc<Library>, id: &str) -> LoanView {
    ok(library, show(id)).await.loans.remove(0)
}

/// Waits until both libraries show the loan in `state`; returns both views.
async fn both_in(a: &Node, b: &Node, id: &str, state: &str) -> (LoanView, LoanView) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (mine, theirs) = (
            run(&a.library, show(id)).await,
            run(&b.library, show(id)).await,
        );
        if let (Ok(mut mine), Ok(mut theirs)) = (mine, theirs) {
            let (mine, theirs) = (mine.loans.remove(0), theirs.loans.remove(0));
            if mine.state == state && theirs.state == state {
                return (mine, theirs);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {state}: borrower shows {}, lender {}",
                mine.state,
                theirs.state
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {state}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

pub(crate) async fn connect(nodes: &[&Node]) {
    for (i, from) in nodes.iter().enumerate() {
        for to in &nodes[i + 1..] {
            from.net.dial(to.address().await).await.expect("dials");
        }
    }
    for node in nodes {
        let others = nodes.len() - 1;
        let net = node.net.clone();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while net.peers().await.expect("peers").len() < others {
            assert!(
                std::time::Instant::now() < deadline,
                "members never connected"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// A request for a holding with nothing else said (the librarian's defaults).
fn ask(record: String) -> IllRequest {
    IllRequest::Request {
        record,
        patron: None,
        need_before: None,
        note: String::new(),
        lenders: Vec::new(),
        items: 1,
    }
}

/// The lender's "will supply", without conditions.
fn will_supply(id: &str) -> IllRequest {
    IllRequest::Answer {
        id: id.into(),
        will_supply: true,
        unfilled: None,
        conditions: None,
    }
}

fn step(id: &str, step: SimpleStep) -> IllRequest {
    IllRequest::Step {
        id: id.into(),
        step,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_loan_between_two_nodes_both_sides_agreeing_at_each_step() {
    let libraries = libraries(&["PERPUSDESA", "SMP1KEMIRI"]);
    agree(&libraries, true);
    let record = the_same_book(&libraries, &[1]).remove(0);
    let mut it = libraries.into_iter();
    let (a_lib, a_clock, a_dir) = it.next().expect("a");
    let (b_lib, b_clock, b_dir) = it.next().expect("b");
    let (a, b) = (start(a_lib, a_dir).await, start(b_lib, b_dir).await);
    connect(&[&a, &b]).await;

    // Every message either node sends from now on is kept, to look for the patron.
    a.net.traffic.keep_sent();
    b.net.traffic.keep_sent();
    let asked = ok(
        &a.library,
        IllRequest::Request {
            record: format!("SMP1KEMIRI:{record}"),
            patron: Some("ANGGOTA-0042".into()),
            need_before: Some("2026-12-31".into()),
            note: "untuk tugas sekolah".into(),
            lenders: Vec::new(),
            items: 1,
        },
    )
    .await;
    let id = asked.loans[0].id.clone();
    assert_eq!(asked.loans[0].role, "borrower");
    // The lender's node confirms receipt by itself (ISO 18626's RequestReceived).
    let (mine, theirs) = both_in(&a, &b, &id, "request_received").await;
    assert_eq!(theirs.role, "lender");
    assert_eq!(theirs.title, "Laskar pelangi");
    assert_eq!(
        theirs.patron, None,
        "the patron reference stays with the borrower"
    );
    assert_eq!(mine.patron.as_deref(), Some("ANGGOTA-0042"));

    ok(&b.library, will_supply(&id)).await;
    both_in(&a, &b, &id, "will_supply").await;

    b_clock.advance(DAY_MS);
    ok(&b.library, step(&id, SimpleStep::Ship)).await;
    let (mine, theirs) = both_in(&a, &b, &id, "loaned").await;
    // Shipped a day after T, due 14 days later (the agreement's loan period).
    let due = jalin_protocol::ill::Day::of_ms(T + DAY_MS)
        .plus(14)
        .to_string();
    assert_eq!(mine.due.as_deref(), Some(due.as_str()));
    assert_eq!(theirs.due, mine.due);

    a_clock.advance(2 * DAY_MS);
    ok(&a.library, step(&id, SimpleStep::Receive)).await;
    both_in(&a, &b, &id, "received").await;

    // A renewal: the lender's node answers as the agreement says (7 more days, once).
    ok(&a.library, step(&id, SimpleStep::Renew)).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (mine, theirs) = (loan(&a.library, &id).await, loan(&b.library, &id).await);
        if mine.renewals == 1 && theirs.renewals == 1 {
            let renewed = jalin_protocol::ill::Day::of_ms(T + DAY_MS)
                .plus(21)
                .to_string();
            assert_eq!(mine.due.as_deref(), Some(renewed.as_str()));
            assert_eq!(theirs.due, mine.due);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the renewal was never answered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // A second renewal is past the agreement's max_renewals: answered no.
    ok(&a.library, step(&id, SimpleStep::Renew)).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while loan(&a.library, &id)
        .await
        .history
        .iter()
        .filter(|l| l.contains("RenewResponse"))
        .count()
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the second renewal was never answered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(loan(&a.library, &id).await.renewals, 1);

    ok(&a.library, step(&id, SimpleStep::Return)).await;
    both_in(&a, &b, &id, "shipped_return").await;
    ok(&b.library, step(&id, SimpleStep::Checkin)).await;
    let (mine, theirs) = both_in(&a, &b, &id, "loan_completed").await;
    assert_eq!(mine.history.len(), theirs.history.len());
    assert!(
        mine.next.is_empty() && theirs.next.is_empty(),
        "a closed loan has no next step"
    );

    // Steps out of turn are refused, saying why, and change nothing.
    let refused = run(&a.library, step(&id, SimpleStep::Receive))
        .await
        .expect_err("a closed loan takes no step");
    assert!(refused.to_string().contains("closed"), "{refused}");

    // The figures, each side from its own loans.
    let report = |library: &Arc<Library>| {
        let library = library.clone();
        async move {
            ok(
                &library,
                IllRequest::Report {
                    since: Some("2026-11-01".into()),
                },
            )
            .await
            .report
            .expect("a report")
        }
    };
    let (mine, theirs) = (report(&a.library).await, report(&b.library).await);
    assert_eq!(
        (mine.made, mine.filled_made, mine.borrowed, mine.lent),
        (1, 1, 1, 0)
    );
    assert_eq!(
        mine.days_to_received,
        Some(2.0),
        "requested at T, received at T + 2 days"
    );
    assert_eq!(
        (theirs.received, theirs.filled_received, theirs.lent),
        (1, 1, 1)
    );
    assert_eq!(theirs.fill_rate, Some(1.0));
    assert_eq!(theirs.days_to_shipped, Some(1.0));
    assert_eq!((mine.open_loans, theirs.open_loans), (0, 0));
    let later = ok(
        &a.library,
        IllRequest::Report {
            since: Some("2027-01-01".into()),
        },
    )
    .await
    .report
    .expect("a report");
    assert_eq!(later.made, 0, "a period after the loan counts nothing");

    // Privacy: no byte either node sent names the patron; the book's title, sent in
    // the same messages, shows the copy is the real traffic.
    let (sent_a, sent_b) = (a.net.traffic.sent(), b.net.traffic.sent());
    let holds =
        |hay: &[u8], needle: &str| hay.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(
        holds(&sent_a, "Laskar pelangi"),
        "the borrower's request was kept"
    );
    let transaction = Hash32::from_hex(&id).expect("hex").0;
    assert!(
        sent_b.windows(32).any(|w| w == transaction),
        "the lender's steps (naming the transaction) were kept"
    );
    for (who, sent) in [("borrower", &sent_a), ("lender", &sent_b)] {
        assert!(
            !holds(sent, "ANGGOTA-0042"),
            "the {who}'s node sent the patron reference"
        );
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_waits_for_an_offline_lender_and_a_restarted_node_resumes_the_loan() {
    let libraries = libraries(&["PERPUSDESA", "SMP1KEMIRI"]);
    agree(&libraries, true);
    let record = the_same_book(&libraries, &[1]).remove(0);
    let mut it = libraries.into_iter();
    let (a_lib, a_clock, a_dir) = it.next().expect("a");
    let (b_lib, b_clock, b_dir) = it.next().expect("b");
    // The lender's node is not running when the request is made.
    let a = start(a_lib, a_dir).await;
    let asked = ok(
        &a.library,
        IllRequest::Request {
            record: format!("SMP1KEMIRI:{record}"),
            patron: None,
            need_before: None,
            note: String::new(),
            lenders: Vec::new(),
            items: 2,
        },
    )
    .await;
    let id = asked.loans[0].id.clone();
    assert_eq!(asked.loans[0].state, "requested");
    assert!(
        run(&b_lib, show(&id)).await.is_err(),
        "the lender has not heard of it"
    );
    let b = start(b_lib, b_dir).await;
    connect(&[&a, &b]).await;
    both_in(&a, &b, &id, "request_received").await;
    ok(
        &b.library,
        IllRequest::Answer {
            id: id.clone(),
            will_supply: false,
            unfilled: None,
            conditions: Some("baca di tempat saja".into()),
        },
    )
    .await;
    let (mine, _) = both_in(&a, &b, &id, "will_supply").await;
    assert_eq!(mine.next, vec!["accept_conditions", "cancel", "notify"]);

    // The borrower's node stops mid-transaction; the lender goes on; the borrower's
    // node, started again on the same data dir, takes up where it was.
    let a_dir = a.stop_keeping_dir().await;
    let shipped = run(&b.library, step(&id, SimpleStep::Ship))
        .await
        .expect_err("not before the conditions are accepted");
    assert!(shipped.to_string().contains("conditions"), "{shipped}");
    let data = jalin_node::config::DataDir::open(a_dir.path()).expect("the data dir");
    let a_lib = Arc::new(Library::open_with_clock(data, a_clock.clone()).expect("reopens"));
    let a = start(a_lib, a_dir).await;
    connect(&[&a, &b]).await;
    assert_eq!(loan(&a.library, &id).await.state, "will_supply");
    ok(
        &a.library,
        IllRequest::Conditions {
            id: id.clone(),
            accept: true,
        },
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while loan(&b.library, &id).await.conditions.as_deref()
        != Some("baca di tempat saja (accepted)")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the acceptance never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    b_clock.advance(DAY_MS);
    ok(&b.library, step(&id, SimpleStep::Ship)).await;
    let (mine, theirs) = both_in(&a, &b, &id, "loaned").await;
    assert_eq!(mine.due, theirs.due);
    // Overdue as each node's own clock says: not yet, then past the due date.
    assert!(!mine.overdue);
    a_clock.advance(20 * DAY_MS);
    assert!(loan(&a.library, &id).await.overdue);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rota_passes_a_request_on_when_a_lender_is_silent_or_cannot_supply() {
    let libraries = libraries(&["PERPUSDESA", "DIAM", "KOSONG", "ADA"]);
    agree(&libraries, true);
    let record = the_same_book(&libraries, &[1, 2, 3]).remove(0);
    let mut it = libraries.into_iter();
    let mut nodes = Vec::new();
    let mut clocks = Vec::new();
    for _ in 0..4 {
        let (library, clock, dir) = it.next().expect("library");
        nodes.push(start(library, dir).await);
        clocks.push(clock);
    }
    connect(&nodes.iter().collect::<Vec<_>>()).await;
    let [a, silent, empty, has] = &nodes[..] else {
        unreachable!()
    };
    let asked = ok(
        &a.library,
        IllRequest::Request {
            record: format!("DIAM:{record}"),
            patron: None,
            need_before: None,
            note: String::new(),
            lenders: vec!["DIAM".into(), "KOSONG".into(), "ADA".into()],
            items: 1,
        },
    )
    .await;
    let first = asked.loans[0].id.clone();
    both_in(a, silent, &first, "request_received").await;

    // The first lender says nothing for the agreement's 3 days: the borrower's node
    // withdraws the request there and asks the second.
    clocks[0].advance(3 * DAY_MS);
    let outgoing = |answer: &IllAnswer| {
        answer
            .loans
            .iter()
            .map(|l| (l.peer_name.clone().unwrap_or_default(), l.state.clone()))
            .collect::<Vec<_>>()
    };
    let listed = ok(
        &a.library,
        IllRequest::List {
            incoming: false,
            outgoing: true,
            state: None,
        },
    )
    .await;
    let seen = outgoing(&listed);
    assert_eq!(seen.len(), 2, "{seen:?}");
    let second = listed
        .loans
        .iter()
        .find(|l| l.id != first)
        .expect("a second request")
        .id
        .clone();
    assert!(loan(&a.library, &first)
        .await
        .reason
        .unwrap_or_default()
        .contains("no answer within 3 days"));
    both_in(a, empty, &second, "request_received").await;
    ok(
        &empty.library,
        IllRequest::Answer {
            id: second.clone(),
            will_supply: false,
            unfilled: Some("NotOnShelf".into()),
            conditions: None,
        },
    )
    .await;
    both_in(a, empty, &second, "unfilled").await;
    // The next request the borrower's node makes goes to the third library.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let third = loop {
        let listed = ok(
            &a.library,
            IllRequest::List {
                incoming: false,
                outgoing: true,
                state: None,
            },
        )
        .await;
        if let Some(third) = listed
            .loans
            .iter()
            .find(|l| l.id != first && l.id != second)
        {
            break third.id.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the third library was never asked"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    both_in(a, has, &third, "request_received").await;
    assert_eq!(
        loan(&has.library, &third).await.peer_name.as_deref(),
        Some("Perpustakaan PERPUSDESA (PERPUSDESA)")
    );
    ok(&has.library, will_supply(&third)).await;
    ok(&has.library, step(&third, SimpleStep::Ship)).await;
    both_in(a, has, &third, "loaned").await;
    // The silent library saw its request withdrawn; none of them saw the others'.
    both_in(a, silent, &first, "cancelled").await;
    for other in [silent, empty] {
        let theirs = ok(
            &other.library,
            IllRequest::List {
                incoming: false,
                outgoing: false,
                state: None,
            },
        )
        .await;
        assert_eq!(theirs.loans.len(), 1, "a lender sees its own request only");
    }
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_no_agreement_allows_is_refused_saying_why() {
    let libraries = libraries(&["PERPUSDESA", "SMP1KEMIRI"]);
    let record = the_same_book(&libraries, &[1]).remove(0);
    let request = || ask(format!("SMP1KEMIRI:{record}"));
    // No agreement in force yet.
    let error = run(&libraries[0].0, request()).await.expect_err("refused");
    assert!(
        error.to_string().contains("agreement in force allows"),
        "{error}"
    );
    // An agreement in force that does not allow loans.
    agree(&libraries, false);
    let error = run(&libraries[0].0, request()).await.expect_err("refused");
    assert!(
        error.to_string().contains("agreement in force allows"),
        "{error}"
    );
    assert_eq!(error.code(), "ill_no_lender");
    // Nothing was stored.
    assert!(libraries[0].0.loans().list().expect("lists").is_empty());
}

/// A request of `key`'s library to `lender` for one book, signed (what a borrower's node
/// sends; a test sends it by hand).
fn signed_request(
    key: &ed25519_dalek::SigningKey,
    consortium: Hash32,
    lender: jalin_protocol::signing::LibraryId,
    record_id: &str,
    items: u16,
    nonce: u8,
) -> jalin_protocol::consortium::document::Signed<jalin_protocol::ill::IllMessage> {
    jalin_protocol::consortium::document::Signed::sign(
        key,
        jalin_protocol::ill::IllMessage::Request(jalin_protocol::ill::LoanRequest {
            consortium,
            lender,
            record_id: record_id.to_string(),
            title: "Laskar pelangi".into(),
            author: String::new(),
            items,
            need_before: None,
            note: String::new(),
            at_ms: T + 6_000 + u64::from(nonce),
            nonce: [nonce; 16],
        }),
    )
}

/// A step of `key`'s library in `transaction`, after `after`.
fn signed_step(
    key: &ed25519_dalek::SigningKey,
    transaction: Hash32,
    after: Vec<Hash32>,
    action: jalin_protocol::ill::Action,
) -> Vec<u8> {
    jalin_protocol::consortium::document::Signed::sign(
        key,
        jalin_protocol::ill::IllMessage::Step(jalin_protocol::ill::Step {
            transaction,
            after,
            at_ms: T + 5_000,
            action,
        }),
    )
    .to_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_and_out_of_place_messages_are_refused_and_change_nothing() {
    use jalin_node::ill::LoanError;
    use jalin_protocol::ill::Action;
    let libraries = libraries(&["PERPUSDESA", "SMP1KEMIRI", "SDN2KEMIRI"]);
    agree(&libraries, true);
    let record = the_same_book(&libraries, &[1]).remove(0);
    let (a, b, c) = (&libraries[0].0, &libraries[1].0, &libraries[2].0);
    let key = |library: &Library| library.data().key.clone();
    // A asks B; B takes the request in (by hand here: the network does the same).
    let asked = ok(
        a,
        IllRequest::Request {
            record: format!("SMP1KEMIRI:{record}"),
            patron: None,
            need_before: None,
            note: String::new(),
            lenders: Vec::new(),
            items: 2,
        },
    )
    .await;
    let id = Hash32::from_hex(&asked.loans[0].id).expect("hex");
    let request = a.loans().outbox(&b.id()).expect("outbox");
    assert_eq!(request.len(), 1);
    let request = request[0].1.clone();
    let take = |from: &Library, bytes: Vec<u8>| {
        b.loans()
            .take_in(b.consortia(), &from.id(), &[bytes], T + 5_000)
            .remove(0)
    };
    take(a, request.clone()).expect("the request is taken");
    let before = b.loans().get(&id).expect("held").transaction;
    let after = before.heads.clone();
    let unchanged = || {
        let now = b.loans().get(&id).expect("held").transaction;
        assert_eq!(now, before, "the state changed");
    };

    // Replayed: the same request again.
    let error = take(a, request.clone()).expect_err("a replay");
    assert!(matches!(error, LoanError::Replayed), "{error}");
    unchanged();

    // Forged: a step said to be A's, its signature changed.
    let mut forged = signed_step(&key(a), id, after.clone(), Action::Received);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let error = take(a, forged).expect_err("a forgery");
    assert!(error.to_string().contains("signature"), "{error}");
    unchanged();

    // A third member: its own step in A and B's loan, and A's step passed on by it.
    let error = take(
        c,
        signed_step(
            &key(c),
            id,
            after.clone(),
            Action::Cancel {
                reason: "saya".into(),
            },
        ),
    )
    .expect_err("a third member's step");
    assert!(
        error
            .to_string()
            .contains("neither the borrower nor the lender"),
        "{error}"
    );
    let relayed = signed_step(
        &key(a),
        id,
        after.clone(),
        Action::Notification {
            note: "lewat C".into(),
        },
    );
    let error = take(c, relayed).expect_err("a step passed on");
    assert!(matches!(error, LoanError::NotFromSender), "{error}");
    unchanged();

    // Too many items: the agreement allows 2 per request.
    let too_many = signed_request(&key(a), consortium(a), b.id(), &record, 3, 7);
    let error = take(a, too_many.to_bytes()).expect_err("too many items");
    assert!(
        matches!(error, LoanError::TooManyItems { items: 3, max: 2 }),
        "{error}"
    );
    assert_eq!(
        b.loans().list().expect("lists").len(),
        1,
        "nothing new was stored"
    );

    // A removed library: the founder (A) removes B; B's next step in the loan is
    // refused by A's node, and A's view of the loan stays as it was.
    let cid = consortium(a);
    a.consortia()
        .remove(&cid, b.id(), "diuji", T + 7_000)
        .expect("the founder removes B");
    let a_before = a.loans().get(&id).expect("held").transaction;
    let b_step = signed_step(
        &key(b),
        id,
        a_before.heads.clone(),
        Action::WillSupply { conditions: None },
    );
    let error = a
        .loans()
        .take_in(a.consortia(), &b.id(), &[b_step], T + 8_000)
        .remove(0)
        .expect_err("B is no longer A's co-member");
    assert!(matches!(error, LoanError::NotAllowed(_)), "{error}");
    assert!(error.to_string().contains("share no consortium"), "{error}");
    assert_eq!(a.loans().get(&id).expect("held").transaction, a_before);
    unchanged();
}

/// What one side sends, as a wire would carry it: (to the borrower?, bytes).
type Wire = Vec<(bool, Vec<u8>)>;

/// Moves what `from` has queued for `to` onto the wire.
fn onto_wire(from: &Library, to: &Library, wire: &mut Wire, to_borrower: bool) {
    let waiting = from.loans().outbox(&to.id()).expect("outbox");
    let ids: Vec<Hash32> = waiting.iter().map(|(id, _)| *id).collect();
    from.loans().delivered(&to.id(), &ids).expect("delivered");
    wire.extend(waiting.into_iter().map(|(_, bytes)| (to_borrower, bytes)));
}

/// Delivers the message at `pick` (modulo the wire's length); keeps it on the wire when
/// `twice` (to arrive again) or when the receiver cannot take it yet.
fn deliver(a: &Library, b: &Library, wire: &mut Wire, pick: usize, twice: bool, now: u64) {
    if wire.is_empty() {
        return;
    }
    let (to_borrower, bytes) = wire.remove(pick % wire.len());
    let (to, from) = if to_borrower { (a, b) } else { (b, a) };
    let result = to
        .loans()
        .take_in(
            to.consortia(),
            &from.id(),
            std::slice::from_ref(&bytes),
            now,
        )
        .remove(0);
    let keep = match &result {
        Ok(()) | Err(jalin_node::ill::LoanError::Replayed) => twice,
        Err(error) if error.is_transient() => true,
        Err(error) => panic!("a genuine message was refused: {error}"),
    };
    if keep {
        wire.push((to_borrower, bytes));
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]
    /// The messages of a whole loan delayed, duplicated and reordered at random between
    /// two libraries' stores (each side acting once its state allows): both end in the
    /// same state, the loan completed with its renewal.
    #[test]
    fn delayed_duplicated_reordered_messages_end_in_the_same_state_on_both_sides(
        schedule in proptest::collection::vec((0..64usize, proptest::bool::weighted(0.3)), 64),
    ) {
        use jalin_protocol::ill::{Action, Party};
        let libraries = libraries(&["PERPUSDESA", "SMP1KEMIRI"]);
        agree(&libraries, true);
        let record = the_same_book(&libraries, &[1]).remove(0);
        let (a, b) = (&libraries[0].0, &libraries[1].0);
        let now = T + 10_000;
        let answer = execute(a, IllRequest::Request {
            record: format!("SMP1KEMIRI:{record}"),
            patron: Some("P-1".into()),
            need_before: None,
            note: String::new(),
            lenders: Vec::new(),
            items: 1,
        }).expect("requests");
        let id = Hash32::from_hex(&answer.loans[0].id).expect("hex");
        let script: Vec<(Party, Action)> = vec![
            (Party::Lender, Action::WillSupply { conditions: None }),
            (Party::Lender, Action::Loaned { due: jalin_protocol::ill::Day::of_ms(now).plus(14) }),
            (Party::Borrower, Action::Received),
            (Party::Borrower, Action::Renew),
            (Party::Borrower, Action::ShippedReturn),
            (Party::Lender, Action::LoanCompleted),
        ];
        let mut wire: Wire = Vec::new();
        let mut turns = schedule.into_iter().cycle();
        onto_wire(a, b, &mut wire, false);
        for (party, action) in script {
            let actor = match party {
                Party::Borrower => a,
                Party::Lender => b,
            };
            // Deliver at random until the actor holds the loan and may act.
            let mut tries = 0;
            loop {
                let ready = actor.loans().get(&id).ok().is_some_and(|loan| {
                    loan.transaction.check(party, &action).is_ok()
                        && !(action == Action::ShippedReturn && loan.transaction.renew_pending)
                });
                if ready {
                    break;
                }
                let (pick, twice) = turns.next().expect("cycles");
                deliver(a, b, &mut wire, pick, twice && tries < 200, now);
                onto_wire(a, b, &mut wire, false);
                onto_wire(b, a, &mut wire, true);
                tries += 1;
                proptest::prop_assert!(tries < 2_000, "never ready for {action:?}");
            }
            actor.loans().act(&id, action, now).expect("acts");
            onto_wire(a, b, &mut wire, false);
            onto_wire(b, a, &mut wire, true);
        }
        // Everything still on the wire arrives, in reverse order.
        while !wire.is_empty() {
            let last = wire.len() - 1;
            deliver(a, b, &mut wire, last, false, now);
            onto_wire(a, b, &mut wire, false);
            onto_wire(b, a, &mut wire, true);
        }
        let (mine, theirs) = (
            a.loans().get(&id).expect("held").transaction,
            b.loans().get(&id).expect("held").transaction,
        );
        proptest::prop_assert_eq!(&mine, &theirs);
        proptest::prop_assert_eq!(mine.status, jalin_protocol::ill::Status::LoanCompleted);
        proptest::prop_assert_eq!(mine.renewals, 1);
        // What each side keeps beside the messages agrees with the messages: the state
        // read back is a fresh fold, the loan is no longer open, and it counts once as
        // lent on one side and borrowed on the other.
        for (library, lent) in [(a, 0), (b, 1)] {
            let fresh = jalin_protocol::ill::Transaction::fold(
                &library.loans().signed_messages(&id).expect("messages"),
            )
            .expect("folds");
            proptest::prop_assert_eq!(&fresh, &mine);
            proptest::prop_assert!(library.loans().open_loans().expect("open").is_empty());
            let ledger = library.loans().ledger().expect("ledger");
            let counted: Vec<(u32, u32)> = ledger.values().map(|l| (l.lent, l.borrowed)).collect();
            proptest::prop_assert_eq!(counted, vec![(lent, 1 - lent)]);
        }
        proptest::prop_assert!(mine.waiting.is_empty());
    }
}

/// Passes everything queued between the two libraries until nothing is left.
pub(crate) fn exchange(a: &Library, b: &Library, now: u64) {
    let mut wire: Wire = Vec::new();
    loop {
        onto_wire(a, b, &mut wire, false);
        onto_wire(b, a, &mut wire, true);
        if wire.is_empty() {
            return;
        }
        deliver(a, b, &mut wire, 0, false, now);
    }
}

#[test]
fn every_exported_message_validates_against_the_iso_18626_schema() {
    use jalin_protocol::ill::Action;
    let data = crate::shared_data_or_skip!();
    if !crate::support::have_tool("xmllint", &["--version"]) {
        return;
    }
    let libraries = libraries(&["PERPUSDESA", "SMP1KEMIRI"]);
    agree(&libraries, true);
    let record = the_same_book(&libraries, &[1]).remove(0);
    let (a, b) = (&libraries[0].0, &libraries[1].0);
    let now = T + 10_000;
    let answer = execute(
        a,
        IllRequest::Request {
            record: format!("SMP1KEMIRI:{record}"),
            patron: Some("P-7 <rahasia>".into()),
            need_before: Some("2026-12-31".into()),
            note: "catatan & \"tanda\" <kutip>".into(),
            lenders: Vec::new(),
            items: 1,
        },
    )
    .expect("requests");
    let id = Hash32::from_hex(&answer.loans[0].id).expect("hex");
    exchange(a, b, now);
    let steps: Vec<(&Library, Action)> = vec![
        (b, Action::ExpectToSupply),
        (
            b,
            Action::WillSupply {
                conditions: Some("baca di tempat".into()),
            },
        ),
        (a, Action::ConditionsAnswer { accepted: true }),
        (
            b,
            Action::Loaned {
                due: jalin_protocol::ill::Day::of_ms(now).plus(14),
            },
        ),
        (a, Action::Received),
        (
            b,
            Action::Notification {
                note: "harap dijaga".into(),
            },
        ),
        (a, Action::Renew),
        (a, Action::ShippedReturn),
        (b, Action::LoanCompleted),
    ];
    for (who, action) in steps {
        who.loans().act(&id, action, now).expect("acts");
        exchange(a, b, now);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let schema = data.join("xsd/ISO-18626-2021-2.xsd");
    for (side, library) in [("borrower", a), ("lender", b)] {
        let files = library.loans().export(&id).expect("exports");
        // The request, the lender's RequestReceived, the nine steps, the renewal's answer.
        assert_eq!(
            files.len(),
            12,
            "{side}: {:?}",
            files.iter().map(|f| &f.0).collect::<Vec<_>>()
        );
        for (name, xml) in &files {
            assert!(!xml.contains("P-7"), "{side}: {name} names the patron");
            let path = dir.path().join(format!("{side}-{name}"));
            std::fs::write(&path, xml).expect("writes");
            let out = std::process::Command::new("xmllint")
                .arg("--noout")
                .arg("--schema")
                .arg(&schema)
                .arg(&path)
                .output()
                .expect("xmllint runs");
            assert!(
                out.status.success(),
                "{side}: {name} is not valid ISO 18626: {}\n{xml}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    assert_eq!(
        a.loans().export(&id).expect("exports"),
        b.loans().export(&id).expect("exports"),
        "both sides export the same messages"
    );
}

/// The agency that sends a message (the requesting agency, or a supplying agency's
/// message's supplier), as the gateway reads it.
fn sender_of(xml: &[u8]) -> Option<String> {
    let m = jalin_protocol::ill::iso::read(xml).ok()?;
    Some(match m.kind? {
        jalin_protocol::ill::iso::Kind::SupplyingAgencyMessage => m.supplying_agency,
        _ => m.requesting_agency,
    })
}

/// `messageStatus` and `errorType` of a confirmation.
fn confirmation_of(xml: &str) -> (String, Option<String>) {
    let text = |tag: &str| {
        let open = format!("<{tag}>");
        let start = xml.find(&open)? + open.len();
        let end = xml[start..].find('<')? + start;
        Some(xml[start..end].to_string())
    };
    (text("messageStatus").unwrap_or_default(), text("errorType"))
}

#[test]
fn every_crosslink_message_gets_a_confirmation_and_the_valid_requests_a_transaction() {
    let data = crate::shared_data_or_skip!();
    if !crate::support::have_tool("xmllint", &["--version"]) {
        return;
    }
    let agencies = [
        "REQ",
        "SUP",
        "SUP1",
        "SUP_A",
        "SUP_B",
        "SLNP_ONE",
        "SLNP_TWO_A",
    ];
    let server = crate::support::start_with(None, |data| {
        data.config.iso18626.agency_id = Some("BROKER".into());
        data.config.iso18626.peers = agencies
            .iter()
            .map(|a| jalin_node::config::Iso18626Peer {
                agency_id: a.to_string(),
                secret: format!("rahasia-{a}"),
                url: None,
            })
            .collect();
    });
    let client = reqwest::blocking::Client::new();
    let schema = data.join("xsd/ISO-18626-2021-2.xsd");
    let dir = tempfile::tempdir().expect("temp dir");
    let post = |name: &str, body: Vec<u8>, secret: Option<String>| {
        let mut request = client
            .post(format!("{}/iso18626", server.url))
            .header("content-type", "application/xml")
            .body(body);
        if let Some(secret) = secret {
            request = request.bearer_auth(secret);
        }
        let response = request.send().expect("answers");
        let status = response.status().as_u16();
        let xml = response.text().expect("text");
        // Every answer is a confirmation valid against the 2021-2 schema.
        let path = dir.path().join(format!("confirmation-{name}"));
        std::fs::write(&path, &xml).expect("writes");
        let out = std::process::Command::new("xmllint")
            .arg("--noout")
            .arg("--schema")
            .arg(&schema)
            .arg(&path)
            .output()
            .expect("xmllint runs");
        assert!(
            out.status.success(),
            "{name}: the confirmation is not valid ISO 18626: {}\n{xml}",
            String::from_utf8_lossy(&out.stderr)
        );
        (status, confirmation_of(&xml), xml)
    };
    let udv = Some("UnrecognisedDataValue");
    let expected: [(&str, Option<&str>); 32] = [
        ("illmock-cancel-req.xml", None),
        ("illmock-error-req.xml", udv),
        ("illmock-renew-req.xml", udv),
        ("illmock-req.xml", udv),
        ("misc-request-mock-error.xml", udv),
        ("misc-request-mock-multiple.xml", udv),
        ("misc-request-mock-unfilled.xml", udv),
        ("reqmsg-no-reqid.xml", udv),
        ("reqmsg-notification.xml", udv),
        ("reqmsg-ok.xml", udv),
        ("request-loaned-overdue-renew.xml", None),
        ("request-loaned-overdue.xml", None),
        ("request-loaned.xml", None),
        ("request-locally-available.xml", None),
        ("request-no-reqid.xml", udv),
        ("request-reminder.xml", udv),
        ("request-retry-1.xml", None),
        ("request-retry-after-unfilled.xml", udv),
        ("request-retry-changed-bibinfo.xml", None),
        ("request-retry-cost-loaned.xml", None),
        ("request-retry-non-existing.xml", udv),
        ("request-retry-onloan-loaned.xml", None),
        ("request-unfilled-2.xml", None),
        ("request-unfilled-willsupply.xml", None),
        ("request-unfilled.xml", None),
        ("request-willsupply-loaned-cancel.xml", udv),
        ("request-willsupply-loaned.xml", None),
        ("request-willsupply-unfilled-willsupply-loaned.xml", None),
        ("supmsg-no-reqid.xml", udv),
        ("supmsg-notification-2.xml", udv),
        ("supmsg-notification.xml", udv),
        ("supmsg-ok.xml", udv),
    ];
    let folder = data.join("iso18626/crosslink");
    let mut on_disk: Vec<String> = std::fs::read_dir(&folder)
        .expect("the crosslink messages")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    assert_eq!(
        on_disk,
        expected
            .iter()
            .map(|(n, _)| n.to_string())
            .collect::<Vec<_>>(),
        "every file has its expected answer"
    );
    for (name, error) in expected {
        let bytes = std::fs::read(folder.join(name)).expect("reads");
        let secret = sender_of(&bytes).map(|a| format!("rahasia-{a}"));
        let (_, (status, error_type), xml) = post(name, bytes, secret);
        match error {
            None => assert_eq!((status.as_str(), error_type), ("OK", None), "{name}: {xml}"),
            Some(kind) => assert_eq!(
                (status.as_str(), error_type.as_deref()),
                ("ERROR", Some(kind)),
                "{name}: {xml}"
            ),
        }
    }
    let opened = server.library.gateway().transactions().expect("reads");
    assert_eq!(opened.len(), 14, "one transaction per valid request");
    assert!(opened.iter().all(|t| t.requesting_agency == "REQ"));

    // The requesting agency cancels its first request: taken into the transaction.
    let cancel = std::fs::read_to_string(folder.join("reqmsg-ok.xml"))
        .expect("reads")
        .replace("SLNP_TWO_A", "BROKER")
        .replace("SLNP_ONE", "REQ")
        .replace(">reqid<", ">js-test-1017<");
    let (http, (status, _), xml) = post(
        "cancel",
        cancel.clone().into_bytes(),
        Some("rahasia-REQ".into()),
    );
    assert_eq!((http, status.as_str()), (200, "OK"), "{xml}");
    let held = server.library.gateway().transactions().expect("reads");
    let first = held
        .iter()
        .find(|t| t.request_id == "js-test-1017")
        .expect("held");
    assert_eq!(first.last_action, "Cancel");
    assert_eq!(first.messages.len(), 2);
    // A wrong secret, an action the standard lacks, a message with no request id, and
    // bytes that are not XML: each an error of its own type, nothing stored.
    let (http, (_, kind), _) = post(
        "wrong-secret",
        cancel.clone().into_bytes(),
        Some("salah".into()),
    );
    assert_eq!((http, kind.as_deref()), (401, udv));
    let dance = cancel.replace("<action>Cancel</action>", "<action>Dance</action>");
    let (_, (_, kind), _) = post("dance", dance.into_bytes(), Some("rahasia-REQ".into()));
    assert_eq!(kind.as_deref(), Some("UnsupportedActionType"));
    let no_id = cancel.replace(
        "<requestingAgencyRequestId>js-test-1017</requestingAgencyRequestId>",
        "",
    );
    let (_, (_, kind), _) = post("no-id", no_id.into_bytes(), Some("rahasia-REQ".into()));
    assert_eq!(kind.as_deref(), Some("UnrecognisedDataElement"));
    let (_, (_, kind), _) = post("garbage", b"<ISO18626Message><request>".to_vec(), None);
    assert_eq!(kind.as_deref(), Some("BadlyFormedMessage"));
    let after = server.library.gateway().transactions().expect("reads");
    assert_eq!(after, held, "refused messages changed nothing");
    // The librarian sees them among the incoming requests.
    let listed = execute(
        &server.library,
        IllRequest::List {
            incoming: true,
            outgoing: false,
            state: None,
        },
    )
    .expect("lists");
    assert_eq!(listed.external.len(), 14);
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let anonymous = client
        .get(format!("{}/librarian/ill", server.url))
        .send()
        .expect("answers");
    assert_eq!(anonymous.status(), 303, "the page needs a login");
    let (_, page) = crate::support::logged_in(&client, &server, "/librarian/ill");
    assert!(
        page.contains("Permintaan dari sistem di luar Jalin"),
        "{page}"
    );
    assert!(
        page.contains("js-test-1017") && page.contains("Lord of the Rings"),
        "{page}"
    );
}

#[test]
fn the_ill_api_needs_the_token_and_answers_json() {
    let server = crate::support::start(None);
    let client = reqwest::blocking::Client::new();
    let post = |body: serde_json::Value, token: Option<&str>| {
        let mut request = client.post(format!("{}/api/ill", server.url)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().expect("answers");
        let status = response.status().as_u16();
        (
            status,
            response.json::<serde_json::Value>().unwrap_or_default(),
        )
    };
    // The loans carry patron references: every request needs the token, reads too.
    let (status, body) = post(serde_json::json!({"action": "list"}), None);
    assert_eq!(status, 401, "{body}");
    let (status, body) = post(serde_json::json!({"action": "list"}), Some(&server.token));
    assert_eq!(
        (status, body["message"].as_str()),
        (200, Some("0 loan(s)")),
        "{body}"
    );
    let (status, body) = post(serde_json::json!({"action": "report"}), Some(&server.token));
    assert_eq!(
        (status, body["report"]["made"].as_u64()),
        (200, Some(0)),
        "{body}"
    );
    let (status, body) = post(
        serde_json::json!({"action": "show", "id": "abcdef12"}),
        Some(&server.token),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let (status, body) = post(serde_json::json!({"action": "dance"}), Some(&server.token));
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap_or_default()
        .contains("not an interlibrary-loan request"));
}

#[test]
fn after_the_last_lender_the_request_ends_and_the_librarian_is_told() {
    let libraries = libraries(&["PERPUSDESA", "SMP1KEMIRI"]);
    agree(&libraries, true);
    let record = the_same_book(&libraries, &[1]).remove(0);
    let (a, b) = (&libraries[0].0, &libraries[1].0);
    let answer = execute(a, ask(format!("SMP1KEMIRI:{record}"))).expect("requests");
    let id = answer.loans[0].id.clone();
    exchange(a, b, T);
    execute(
        b,
        IllRequest::Answer {
            id: id.clone(),
            will_supply: false,
            unfilled: Some("NotOnShelf".into()),
            conditions: None,
        },
    )
    .expect("answers");
    exchange(a, b, T);
    // The borrower's next command moves the rota on: no one is left to ask.
    let shown = execute(a, IllRequest::Show { id: id.clone() })
        .expect("shows")
        .loans
        .remove(0);
    assert_eq!(shown.state, "unfilled");
    assert_eq!(shown.reason.as_deref(), Some("NotOnShelf"));
    assert_eq!(
        shown.request_ended.as_deref(),
        Some("no library could supply it")
    );
    // The lender's view says nothing of the borrower's rota.
    let theirs = execute(b, IllRequest::Show { id })
        .expect("shows")
        .loans
        .remove(0);
    assert_eq!(theirs.request_ended, None);
    let report = execute(b, IllRequest::Report { since: None })
        .expect("reports")
        .report
        .expect("a report");
    assert_eq!(report.unfilled_by_reason.get("NotOnShelf"), Some(&1));
    assert_eq!(report.fill_rate, Some(0.0));
}

#[test]
fn a_second_open_loan_past_the_agreement_s_limit_is_refused_on_both_sides() {
    use jalin_node::ill::LoanError;
    let libraries = libraries(&["PERPUSDESA", "SMP1KEMIRI"]);
    // At most one open loan between the two.
    let founder = &libraries[0].0;
    let id = consortium(founder);
    let agreement = founder
        .consortia()
        .draft(
            &id,
            "+++\ntitle = \"Satu pinjaman\"\ninterlibrary_loan = true\nmax_open_loans = 1\n+++\nTeks.\n",
            T + 1_000,
        )
        .expect("drafts");
    share_documents(&libraries);
    for (library, _, _) in &libraries {
        library
            .consortia()
            .sign(&id, &agreement, None, T + 2_000)
            .expect("signs");
    }
    share_documents(&libraries);
    let record = the_same_book(&libraries, &[1]).remove(0);
    let (a, b) = (&libraries[0].0, &libraries[1].0);
    let request = || ask(format!("SMP1KEMIRI:{record}"));
    execute(a, request()).expect("the first request");
    exchange(a, b, T);
    // The borrower's node refuses a second before sending it, saying why.
    let error = execute(a, request()).expect_err("a second open loan");
    assert!(
        matches!(
            &error,
            LibraryError::Loan(LoanError::TooManyOpen { open: 1, max: 1 })
        ),
        "{error}"
    );
    assert_eq!(b.loans().list().expect("lists").len(), 1);
    // A borrower's node that sent one anyway: the lender's node refuses it.
    let second = signed_request(&a.data().key, id, b.id(), &record, 1, 9);
    let error = b
        .loans()
        .take_in(b.consortia(), &a.id(), &[second.to_bytes()], T + 9_000)
        .remove(0)
        .expect_err("past the limit");
    assert!(
        matches!(error, LoanError::TooManyOpen { open: 1, max: 1 }),
        "{error}"
    );
    assert_eq!(b.loans().list().expect("lists").len(), 1);
}

#[test]
fn a_member_asking_and_withdrawing_in_a_loop_is_stopped_at_the_daily_limit() {
    use jalin_node::ill::{LoanError, REQUESTS_PER_PEER_PER_DAY};
    use jalin_protocol::ill::Action;
    let libraries = libraries(&["PERPUSDESA", "SMP1KEMIRI"]);
    agree(&libraries, true);
    let record = the_same_book(&libraries, &[1]).remove(0);
    let (a, b) = (&libraries[0].0, &libraries[1].0);
    let (key, cid) = (a.data().key.clone(), consortium(a));
    let take = |bytes: Vec<u8>| {
        b.loans()
            .take_in(b.consortia(), &a.id(), &[bytes], T + 10_000)
            .remove(0)
    };
    // Each request withdrawn at once: none stays open, yet each is stored.
    for n in 0..REQUESTS_PER_PEER_PER_DAY {
        let nonce = u8::try_from(n).expect("the limit is under 256");
        let request = signed_request(&key, cid, b.id(), &record, 1, nonce);
        let id = request.id();
        take(request.to_bytes()).expect("taken");
        let cancel = signed_step(
            &key,
            id,
            vec![id],
            Action::Cancel {
                reason: "uji".into(),
            },
        );
        take(cancel).expect("taken");
    }
    let one_more = signed_request(&key, cid, b.id(), &record, 1, 251);
    let error = take(one_more.to_bytes()).expect_err("past the daily limit");
    assert!(
        matches!(error, LoanError::TooManyToday(n) if n == REQUESTS_PER_PEER_PER_DAY),
        "{error}"
    );
    assert_eq!(
        b.loans().list().expect("lists").len(),
        REQUESTS_PER_PEER_PER_DAY
    );
}

#[test]
fn an_outside_system_flooding_the_gateway_is_stopped_at_the_daily_limit() {
    use jalin_node::gateway::REQUESTS_PER_AGENCY_PER_DAY;
    let (_dir, data) = new_library(100);
    let library = Library::open(data).expect("opens");
    let config = jalin_node::config::Iso18626Section {
        agency_id: Some("BROKER".into()),
        peers: vec![jalin_node::config::Iso18626Peer {
            agency_id: "REQ".into(),
            secret: "rahasia".into(),
            url: None,
        }],
        ..Default::default()
    };
    let request = |n: usize| {
        format!(
            "<ISO18626Message xmlns=\"http://illtransactions.org/2013/iso18626\" xmlns:ill=\"http://illtransactions.org/2013/iso18626\" ill:version=\"2021-2\"><request><header><supplyingAgencyId><agencyIdType>ISIL</agencyIdType><agencyIdValue>BROKER</agencyIdValue></supplyingAgencyId><requestingAgencyId><agencyIdType>ISIL</agencyIdType><agencyIdValue>REQ</agencyIdValue></requestingAgencyId><timestamp>2026-12-04T10:00:00Z</timestamp><requestingAgencyRequestId>r-{n}</requestingAgencyRequestId></header><bibliographicInfo><title>Buku {n}</title></bibliographicInfo><serviceInfo><serviceType>Loan</serviceType></serviceInfo></request></ISO18626Message>"
        )
    };
    for n in 0..REQUESTS_PER_AGENCY_PER_DAY {
        let (status, xml) =
            library
                .gateway()
                .receive(&config, "BROKER", request(n).as_bytes(), Some("rahasia"), T);
        assert_eq!(status, 200, "{xml}");
        assert!(xml.contains("<messageStatus>OK</messageStatus>"), "{xml}");
    }
    let (status, xml) = library.gateway().receive(
        &config,
        "BROKER",
        request(REQUESTS_PER_AGENCY_PER_DAY).as_bytes(),
        Some("rahasia"),
        T + 1_000,
    );
    assert_eq!(status, 429, "{xml}");
    assert!(
        xml.contains("<errorType>UnrecognisedDataValue</errorType>"),
        "{xml}"
    );
    // A day later the agency may ask again.
    let (status, _) = library.gateway().receive(
        &config,
        "BROKER",
        request(REQUESTS_PER_AGENCY_PER_DAY + 1).as_bytes(),
        Some("rahasia"),
        T + DAY_MS + 1,
    );
    assert_eq!(status, 200);
    assert_eq!(
        library.gateway().transactions().expect("reads").len(),
        REQUESTS_PER_AGENCY_PER_DAY + 1
    );
}

#[test]
fn the_lender_says_once_that_a_loan_is_overdue_the_day_after_its_due_date() {
    let libraries = libraries(&["PERPUSDESA", "SMP1KEMIRI"]);
    agree(&libraries, true);
    let record = the_same_book(&libraries, &[1]).remove(0);
    let (a, b) = (&libraries[0].0, &libraries[1].0);
    let b_clock = libraries[1].1.clone();
    let id = execute(a, ask(format!("SMP1KEMIRI:{record}")))
        .expect("requests")
        .loans
        .remove(0)
        .id;
    exchange(a, b, T);
    execute(b, will_supply(&id)).expect("answers");
    execute(b, step(&id, SimpleStep::Ship)).expect("ships");
    exchange(a, b, T);
    let overdue_notices = |library: &Library| {
        execute(library, IllRequest::Show { id: id.clone() })
            .expect("shows")
            .loans
            .remove(0)
            .history
            .iter()
            .filter(|line| line.ends_with("Overdue"))
            .count()
    };
    // On the due date: nothing yet. The day after: one notice, and only one.
    b_clock.advance(14 * DAY_MS);
    assert_eq!(overdue_notices(b), 0);
    b_clock.advance(DAY_MS);
    assert_eq!(overdue_notices(b), 1);
    assert_eq!(overdue_notices(b), 1, "said once");
    exchange(a, b, T);
    assert_eq!(overdue_notices(a), 1, "the borrower hears of it");
}

#[test]
fn the_rota_asks_first_the_library_that_has_lent_least_relative_to_what_it_borrowed() {
    let libraries = libraries(&["PERPUSDESA", "BANYAKPINJAMKAN", "BANYAKPINJAM"]);
    agree(&libraries, true);
    let record = the_same_book(&libraries, &[1, 2]).remove(0);
    let (a, generous, needy) = (&libraries[0].0, &libraries[1].0, &libraries[2].0);
    let cid = consortium(a);
    let first_asked = |a: &Library| {
        let answer = execute(a, ask(format!("BANYAKPINJAMKAN:{record}"))).expect("requests");
        let first = answer.loans[0].peer_name.clone().unwrap_or_default();
        // Withdrawn at once: the next request starts afresh.
        execute(
            a,
            IllRequest::Cancel {
                id: answer.loans[0].id.clone(),
                reason: String::new(),
            },
        )
        .expect("withdraws");
        first
    };
    // The one has lent 5 and borrowed none; the other lent none and borrowed 3. Each
    // tally travels with the consortium's documents.
    generous
        .consortia()
        .publish_tally(&cid, 5, 0, Vec::new(), T + 3_000)
        .expect("publishes");
    needy
        .consortia()
        .publish_tally(&cid, 0, 3, Vec::new(), T + 3_000)
        .expect("publishes");
    share_documents(&libraries);
    assert!(
        first_asked(a).contains("BANYAKPINJAM)"),
        "the one that lent least is asked first"
    );
    // The tallies turn round: so does the order.
    generous
        .consortia()
        .publish_tally(&cid, 5, 20, Vec::new(), T + 4_000)
        .expect("publishes");
    needy
        .consortia()
        .publish_tally(&cid, 30, 3, Vec::new(), T + 4_000)
        .expect("publishes");
    share_documents(&libraries);
    assert!(first_asked(a).contains("BANYAKPINJAMKAN)"));
    // An older tally does not replace a newer one.
    let text = needy.consortia().export(&cid).expect("exports");
    let older = generous
        .consortia()
        .publish_tally(&cid, 5, 20, Vec::new(), T + 4_000)
        .expect("same");
    assert!(!older, "an unchanged tally is not signed again");
    assert_eq!(
        a.consortia().loan_tallies().get(&needy.id()),
        Some(&(30, 3)),
        "{text}"
    );
}

#[test]
fn each_library_shares_its_tally_once_it_has_lent_or_borrowed() {
    let libraries = libraries(&["PERPUSDESA", "SMP1KEMIRI", "SDN2KEMIRI"]);
    agree(&libraries, true);
    let record = the_same_book(&libraries, &[1]).remove(0);
    let (a, b, third) = (&libraries[0].0, &libraries[1].0, &libraries[2].0);
    // Nothing lent or borrowed: no tally, no document added.
    execute(
        a,
        IllRequest::List {
            incoming: false,
            outgoing: false,
            state: None,
        },
    )
    .expect("lists");
    assert!(a.consortia().loan_tallies().is_empty());
    let id = execute(a, ask(format!("SMP1KEMIRI:{record}")))
        .expect("requests")
        .loans
        .remove(0)
        .id;
    exchange(a, b, T);
    execute(b, will_supply(&id)).expect("answers");
    execute(b, step(&id, SimpleStep::Ship)).expect("ships");
    exchange(a, b, T);
    // Each library's next command shares its tally; the documents carry it over.
    execute(a, IllRequest::Report { since: None }).expect("reports");
    execute(b, IllRequest::Report { since: None }).expect("reports");
    share_documents(&libraries);
    let tallies = a.consortia().loan_tallies();
    assert_eq!(tallies.get(&a.id()), Some(&(0, 1)));
    assert_eq!(tallies.get(&b.id()), Some(&(1, 0)));
    // A third member, party to nothing, learns that B's copy is out on loan; once it is
    // back, that it is not.
    let out = (b.id(), record.clone());
    assert!(third.consortia().out_on_loan().contains(&out));
    // The third member's search shows it, one copy fewer available.
    let lent = |library: &Library| {
        let results = library.search("laskar pelangi", 1, 20).expect("searches");
        let hit = &results.hits[0];
        let holding = hit
            .holdings
            .iter()
            .find(|h| h.library == b.id().to_hex())
            .expect("B's holding");
        (holding.on_ill, hit.available)
    };
    assert_eq!(lent(third), (true, 0));
    execute(a, step(&id, SimpleStep::Receive)).expect("receives");
    exchange(a, b, T);
    execute(a, step(&id, SimpleStep::Return)).expect("returns");
    exchange(a, b, T);
    execute(b, step(&id, SimpleStep::Checkin)).expect("checks in");
    // B's next command (or its node's minute tick) shares the tally again.
    execute(b, IllRequest::Report { since: None }).expect("reports");
    share_documents(&libraries);
    assert!(!third.consortia().out_on_loan().contains(&out));
    assert_eq!(lent(third), (false, 1));
}

#[test]
fn a_loan_under_way_ends_normally_after_the_agreement_stops_allowing_loans() {
    let libraries = libraries(&["PERPUSDESA", "SMP1KEMIRI"]);
    agree(&libraries, true);
    let record = the_same_book(&libraries, &[1]).remove(0);
    let (a, b) = (&libraries[0].0, &libraries[1].0);
    let id = execute(a, ask(format!("SMP1KEMIRI:{record}")))
        .expect("requests")
        .loans
        .remove(0)
        .id;
    exchange(a, b, T);
    execute(b, will_supply(&id)).expect("answers");
    execute(b, step(&id, SimpleStep::Ship)).expect("ships");
    exchange(a, b, T);
    execute(a, step(&id, SimpleStep::Receive)).expect("receives");
    exchange(a, b, T);
    // The partnership amends its agreement: no more interlibrary loan.
    let cid = consortium(a);
    let agreement = a.consortia().get(&cid).expect("held").agreements.ids()[0];
    a.consortia()
        .amend(
            &cid,
            &agreement,
            "+++\ntitle = \"Perjanjian Silang Layanan\"\ninterlibrary_loan = false\n+++\nTidak lagi.\n",
            T + 50_000,
        )
        .expect("amends");
    share_documents(&libraries);
    for (library, _, _) in &libraries {
        library
            .consortia()
            .sign(&cid, &agreement, None, T + 60_000)
            .expect("signs");
    }
    share_documents(&libraries);
    assert_eq!(
        a.consortia()
            .terms_in_force(&cid)
            .expect("reads")
            .map(|t| t.interlibrary_loan),
        Some(false)
    );
    // A renewal is answered no; the book goes back and the loan closes on both sides.
    execute(a, step(&id, SimpleStep::Renew)).expect("asks");
    exchange(a, b, T);
    execute(a, step(&id, SimpleStep::Return)).expect("returns");
    exchange(a, b, T);
    execute(b, step(&id, SimpleStep::Checkin)).expect("checks in");
    exchange(a, b, T);
    for library in [a, b] {
        let loan = execute(library, IllRequest::Show { id: id.clone() })
            .expect("shows")
            .loans
            .remove(0);
        assert_eq!((loan.state.as_str(), loan.renewals), ("loan_completed", 0));
    }
    // And no new request can be made.
    let error =
        execute(a, ask(format!("SMP1KEMIRI:{record}"))).expect_err("no agreement allows it");
    assert!(
        error.to_string().contains("agreement in force allows"),
        "{error}"
    );
}
