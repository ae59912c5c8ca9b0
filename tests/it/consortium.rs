//! A consortium formed by documents passed as text: three libraries, the membership log,
//! agreements, every order of arrival, and every hostile document refused with nothing
//! stored. Nodes here are real sled stores in temporary directories.

use ed25519_dalek::SigningKey;
use jalin_node::consortium::{Consortia, ConsortiumError};
use jalin_protocol::consortium::agreement::{self, AgreementStatus};
use jalin_protocol::consortium::document::{armor, dearmor, DocError, Hash32, Signed};
use jalin_protocol::consortium::log::{
    self as mlog, Acceptance, Action, Invite, Log, MemberState, Op, Role,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::collections::BTreeSet;

/// A fixed clock: 2026-11-24 00:00 UTC.
const T0: u64 = 1_795_478_400_000;
const WEEK_MS: u64 = 7 * 24 * 3600 * 1000;

struct Node {
    consortia: Consortia,
    key: SigningKey,
    dir: tempfile::TempDir,
    name: String,
    code: String,
}

fn node(seed: u8, name: &str, code: &str) -> Node {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = SigningKey::from_bytes(&[seed; 32]);
    let db = sled::open(dir.path().join("db")).expect("sled opens");
    let db = jalin_node::durable::Db::new(db, &dir.path().join("db")).expect("durable");
    let consortia = Consortia::open(db, key.clone(), name, code).expect("opens");
    Node {
        consortia,
        key,
        dir,
        name: name.into(),
        code: code.into(),
    }
}

impl Node {
    /// Closes and opens the store again: what it holds is what was flushed.
    fn reopen(self) -> Node {
        let Node {
            consortia,
            key,
            dir,
            name,
            code,
        } = self;
        drop(consortia);
        // sled lets go of its lock from its flusher thread, a moment after the drop: wait
        // for it as `Store::open` does (under load the moment grows).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let db = loop {
            match sled::Config::new().path(dir.path().join("db")).open() {
                Ok(db) => break db,
                Err(sled::Error::Io(e))
                    if e.to_string().contains("lock") && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("sled reopens: {e}"),
            }
        };
        let db = jalin_node::durable::Db::new(db, &dir.path().join("db")).expect("durable");
        let consortia = Consortia::open(db, key.clone(), &name, &code).expect("reopens");
        Node {
            consortia,
            key,
            dir,
            name,
            code,
        }
    }

    fn take(&self, from: &Node, id: &Hash32) {
        let report = self
            .consortia
            .import(&from.consortia.export(id).expect("exports"))
            .expect("imports");
        assert!(report.refused.is_empty(), "{:?}", report.refused);
    }
}

const DRAFT: &str = "+++
title = \"Perjanjian Kerja Sama Jaringan Perpustakaan Desa Kecamatan Kemiri\"
union_catalog = true
interlibrary_loan = true
coordinated_acquisition = false
staff_development = true
loan_period_days = 14
items_per_request = 3
evaluation_period_months = 12
signatures_required = \"all\"
+++
# Pasal 1

Para pihak sepakat berbagi katalog induk dan saling meminjamkan koleksi.
";

struct Formed {
    a: Node,
    b: Node,
    c: Node,
    id: Hash32,
    agreement: Hash32,
    v1: Hash32,
    v2: Hash32,
    /// Every document any of the three holds, one per line, deduplicated.
    documents: Vec<String>,
}

/// A founds the consortium; B joins as member, C as admin, by tickets passed as text; all
/// three sign version 1 of the agreement; C amends it; A and C sign version 2; A removes B.
fn form() -> Formed {
    let a = node(1, "Perpustakaan Desa Kemiri Lor", "KEMIRILOR");
    let b = node(2, "Perpustakaan SDN 2 Kemiri", "SDN2KEMIRI");
    let c = node(3, "Taman Baca Sukamaju", "TBSUKAMAJU");
    let id = a
        .consortia
        .create("Jaringan Perpustakaan Desa Kecamatan Kemiri", T0)
        .expect("creates");
    for (joiner, role, t) in [(&b, Role::Member, T0 + 10), (&c, Role::Admin, T0 + 20)] {
        let ticket = a
            .consortia
            .invite(&id, role, t + WEEK_MS, "", Vec::new(), t)
            .expect("invites")
            .to_text();
        let acceptance = joiner
            .consortia
            .join(&ticket, Vec::new(), t + 1)
            .expect("joins")
            .to_text();
        a.consortia.accept(&acceptance, t + 2).expect("accepts");
    }
    b.take(&a, &id);
    c.take(&a, &id);
    let agreement = a.consortia.draft(&id, DRAFT, T0 + 100).expect("drafts");
    b.take(&a, &id);
    c.take(&a, &id);
    for (n, signer) in [&a, &b, &c].into_iter().enumerate() {
        signer
            .consortia
            .sign(&id, &agreement, None, T0 + 110 + n as u64)
            .expect("signs");
    }
    let amended = DRAFT.replace("loan_period_days = 14", "loan_period_days = 21");
    let v2 = c
        .consortia
        .amend(&id, &agreement, &amended, T0 + 200)
        .expect("amends");
    a.take(&c, &id);
    a.take(&b, &id);
    a.consortia
        .sign(&id, &agreement, None, T0 + 210)
        .expect("signs");
    c.consortia
        .sign(&id, &agreement, None, T0 + 211)
        .expect("signs");
    let b_id = b.consortia.library();
    a.consortia
        .remove(&id, b_id, "closed for renovation", T0 + 300)
        .expect("removes");
    let mut documents = BTreeSet::new();
    for holder in [&a, &b, &c] {
        for line in holder.consortia.export(&id).expect("exports").lines() {
            if !line.starts_with('#') {
                documents.insert(line.to_string());
            }
        }
    }
    Formed {
        a,
        b,
        c,
        id,
        agreement,
        v1: agreement,
        v2,
        documents: documents.into_iter().collect(),
    }
}

fn standing(node: &Node, id: &Hash32, agreement: &Hash32) -> (MemberState, AgreementStatus) {
    let state = node.consortia.members(id).expect("members");
    let (status, _) = node
        .consortia
        .agreement_status(id, agreement)
        .expect("status");
    (state, status)
}

#[test]
fn three_libraries_agree_on_members_and_agreement_whatever_the_order() {
    let formed = form();
    let (id, agreement) = (formed.id, formed.agreement);
    // Everyone takes everyone's documents.
    for (to, from) in [
        (&formed.a, &formed.b),
        (&formed.a, &formed.c),
        (&formed.b, &formed.a),
        (&formed.b, &formed.c),
        (&formed.c, &formed.a),
        (&formed.c, &formed.b),
    ] {
        to.take(from, &id);
    }
    let expected = standing(&formed.a, &id, &agreement);
    assert_eq!(standing(&formed.b, &id, &agreement), expected);
    assert_eq!(standing(&formed.c, &id, &agreement), expected);

    // What that is: A and C admins, B removed by A; version 2 in force (signed by all
    // current members), version 1 not any more counted as the newest.
    let (state, status) = &expected;
    let mut roles: Vec<(String, Role)> = state
        .members
        .values()
        .map(|m| (m.code.clone(), m.role))
        .collect();
    roles.sort();
    assert_eq!(
        roles,
        vec![
            ("KEMIRILOR".to_string(), Role::Admin),
            ("TBSUKAMAJU".to_string(), Role::Admin)
        ]
    );
    let (former, by, _) = &state.former[&formed.b.consortia.library()];
    assert_eq!(
        (former.code.as_str(), *by),
        ("SDN2KEMIRI", formed.a.consortia.library())
    );
    assert_eq!(status.in_force, Some(formed.v2));
    assert_eq!(status.versions.len(), 2);
    assert!(status.versions[1].in_force);
    assert_eq!(status.versions[1].signed_by.len(), 2);
    // Version 1's signatures by A and C still count (B's no longer: B is not a member),
    // and two of two is enough.
    assert_eq!(status.versions[0].id, formed.v1);
    assert_eq!(status.versions[0].signed_by.len(), 2);

    // A fresh node (a fourth library, not a member) gets the documents shuffled,
    // duplicated and split into batches that arrive one after another: the same standing.
    let documents = formed.documents.clone();
    let count = documents.len();
    let mut runner = TestRunner::new(Config {
        cases: 24,
        ..Config::default()
    });
    let strategy = (
        Just(documents).prop_shuffle(),
        prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        prop::collection::vec(any::<prop::sample::Index>(), 0..5),
    );
    runner
        .run(&strategy, |(mut order, duplicates, cuts)| {
            for index in &duplicates {
                let line = order[index.index(count)].clone();
                let at = index.index(order.len() + 1);
                order.insert(at, line);
            }
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(order.len() + 1)).collect();
            cuts.push(0);
            cuts.push(order.len());
            cuts.sort();
            cuts.dedup();
            let observer = node(9, "Perpustakaan Kabupaten", "KABUPATEN");
            for batch in cuts.windows(2) {
                let text = order[batch[0]..batch[1]].join("\n");
                let report = observer.consortia.import(&text).expect("imports");
                prop_assert!(report.refused.is_empty(), "{:?}", report.refused);
            }
            let observer = observer.reopen();
            prop_assert_eq!(standing(&observer, &id, &agreement), expected.clone());
            Ok(())
        })
        .expect("every order gives the same standing");
}

#[test]
fn an_exported_agreement_verifies_offline_and_one_changed_character_fails() {
    let formed = form();
    // A has C's signature on version 2 only once it takes C's documents.
    formed.a.take(&formed.c, &formed.id);
    let html = formed
        .a
        .consortia
        .export_agreement(&formed.id, &formed.agreement)
        .expect("exports");
    assert!(html.contains("<table>") && html.contains("jalin agreement verify"));
    assert!(html.contains(&formed.a.consortia.library().fingerprint()));
    let verified = agreement::verify_html(&html).expect("verifies");
    assert_eq!(verified.status.in_force, Some(formed.v2));
    assert_eq!(verified.signers.len(), 2);

    // One character of the visible text.
    let changed = html.replacen("Para pihak", "Para Pihak", 1);
    assert_ne!(changed, html);
    let error = agreement::verify_html(&changed).expect_err("changed text");
    assert!(
        error.to_string().contains("changed after export"),
        "{error}"
    );
    // The loan period in the terms table.
    let changed = html.replacen("<td>21</td>", "<td>28</td>", 1);
    assert_ne!(changed, html);
    assert!(agreement::verify_html(&changed).is_err());
    // One character of an embedded signed document.
    let start = html.find("JALIN-SIGNATURE:").expect("a signature") + 30;
    let mut bytes = html.into_bytes();
    bytes[start] = if bytes[start] == b'A' { b'B' } else { b'A' };
    let changed = String::from_utf8(bytes).expect("ascii change");
    let error = agreement::verify_html(&changed).expect_err("changed document");
    assert!(error.to_string().contains("checksum"), "{error}");
}

/// Re-armors a document's bytes after `change` (the checksum is made right again, so
/// what is tested is what comes after it).
fn tamper(text: &str, change: impl FnOnce(&mut Vec<u8>)) -> String {
    let (label, mut bytes) = dearmor(text).expect("dearmors");
    change(&mut bytes);
    armor(&label, &bytes)
}

/// A signed operation on top of `log`, by `key`, whatever the rules say.
fn op_on(key: &SigningKey, log: &Log, action: Action, time: u64) -> Op {
    mlog::make_op(key, log, action, time)
}

fn log_of(node: &Node, id: &Hash32) -> Log {
    node.consortia.get(id).expect("held").log
}

#[test]
fn hostile_documents_are_refused_with_a_reason_and_nothing_stored() {
    let formed = form();
    let id = formed.id;
    let (a, b, c) = (&formed.a, &formed.b, &formed.c);
    a.take(c, &id);
    let d = node(4, "Perpustakaan Masjid Al-Ikhlas", "ALIKHLAS");
    let e = node(5, "Perpustakaan Kecamatan Sebelah", "SEBELAH");
    let (d, e) = (&d, &e);
    let y = e
        .consortia
        .create("Jaringan Kecamatan Sebelah", T0)
        .expect("creates");
    let a_log = log_of(a, &id);
    let add_of_b = a_log
        .ops()
        .into_iter()
        .find(|op| matches!(&op.body.action, Action::Add { acceptance } if acceptance.author == b.consortia.library()))
        .expect("B's add")
        .clone();

    // Each case: what was tried, the node it was tried on, and the error it must give.
    type Attempt<'a> = Box<dyn Fn() -> Result<String, String> + 'a>;
    let import = |to: &Node, text: String| -> Result<String, String> {
        let report = to.consortia.import(&text).map_err(|e| e.to_string())?;
        match report.refused.first() {
            Some((_, why)) => Err(why.clone()),
            None => Ok(format!("{:?}", report.taken)),
        }
    };
    let err = |e: ConsortiumError| e.to_string();
    let fresh_ticket = a
        .consortia
        .invite(&id, Role::Member, T0 + 10_000, "", Vec::new(), T0 + 1_000)
        .expect("invites")
        .to_text();
    let short_ticket = a
        .consortia
        .invite(&id, Role::Member, T0 + 2_000, "", Vec::new(), T0 + 1_000)
        .expect("invites")
        .to_text();
    let late_acceptance = d
        .consortia
        .join(&short_ticket, Vec::new(), T0 + 1_500)
        .expect("joins in time")
        .to_text();
    let b_ticket = match &add_of_b.body.action {
        Action::Add { acceptance } => acceptance.body.invite.to_text(),
        _ => unreachable!(),
    };
    let second_use = Signed::sign(
        &d.key,
        Acceptance {
            consortium: id,
            invite: Signed::<Invite>::from_text(&b_ticket).expect("ticket"),
            name: d.name.clone(),
            code: d.code.clone(),
            time_ms: T0 + 20,
            addresses: Vec::new(),
        },
    );
    let b_acceptance = match &add_of_b.body.action {
        Action::Add { acceptance } => acceptance.to_text(),
        _ => unreachable!(),
    };
    let b_signature_v1 = a
        .consortia
        .get(&id)
        .expect("held")
        .agreements
        .signatures
        .values()
        .find(|s| s.author == b.consortia.library())
        .expect("B signed version 1")
        .clone();
    let mut cases: Vec<(&str, &Node, Attempt, &str)> = Vec::new();

    cases.push((
        "a forged signature (an add re-signed by nobody)",
        d,
        Box::new(|| {
            import(
                d,
                tamper(&add_of_b.to_text(), |bytes| {
                    let last = bytes.len() - 1;
                    bytes[last] ^= 1;
                }),
            )
        }),
        "signature does not verify",
    ));
    cases.push((
        "a ticket with one character changed",
        d,
        Box::new(|| {
            let mut chars: Vec<char> = fresh_ticket.chars().collect();
            let at = chars.len() / 2;
            chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
            let changed: String = chars.into_iter().collect();
            d.consortia
                .join(&changed, Vec::new(), T0 + 1_001)
                .map(|_| String::new())
                .map_err(err)
        }),
        "mistyped",
    ));
    cases.push((
        "an expired invite (joined more than a day after its expiry: a day is the clocks' tolerance)",
        d,
        Box::new(|| {
            d.consortia
                .join(&short_ticket, Vec::new(), T0 + 3_000 + 2 * 86_400_000)
                .map(|_| String::new())
                .map_err(err)
        }),
        "expired",
    ));
    cases.push((
        "an expired invite (accepted in time, brought to the inviter too late)",
        a,
        Box::new(|| {
            a.consortia
                .accept(&late_acceptance, T0 + 3_000)
                .map(|_| String::new())
                .map_err(err)
        }),
        "expired",
    ));
    cases.push((
        "an invite used twice (brought to the inviter)",
        a,
        Box::new(|| {
            a.consortia
                .accept(&second_use.to_text(), T0 + 30)
                .map(|_| String::new())
                .map_err(err)
        }),
        "already used",
    ));
    cases.push((
        "an invite used twice (an add made by a misbehaving admin node)",
        c,
        Box::new(|| {
            let op = op_on(
                &a.key,
                &log_of(c, &id),
                Action::Add {
                    acceptance: Box::new(second_use.clone()),
                },
                T0 + 400,
            );
            import(c, op.to_text())
        }),
        "already used",
    ));
    cases.push((
        "an acceptance replayed into another consortium (brought to its admin)",
        e,
        Box::new(|| {
            e.consortia
                .accept(&b_acceptance, T0 + 30)
                .map(|_| String::new())
                .map_err(err)
        }),
        "not this one",
    ));
    cases.push((
        "an acceptance replayed into another consortium (inside an add there)",
        e,
        Box::new(|| {
            let acceptance = Signed::<Acceptance>::from_text(&b_acceptance).expect("parses");
            let op = op_on(
                &e.key,
                &log_of(e, &y),
                Action::Add {
                    acceptance: Box::new(acceptance),
                },
                T0 + 30,
            );
            import(e, op.to_text())
        }),
        "not this one",
    ));
    cases.push((
        "an add signed by a plain member",
        a,
        Box::new(|| {
            // C is an admin; make a plain member M of consortium X to try it.
            let invite = Signed::sign(
                &b.key,
                Invite {
                    consortium: id,
                    consortium_name: String::new(),
                    inviter_name: b.name.clone(),
                    role: Role::Member,
                    created_ms: T0 + 5,
                    expires_ms: T0 + WEEK_MS,
                    secret: [7; 16],
                    note: String::new(),
                    addresses: Vec::new(),
                },
            );
            let acceptance = Signed::sign(
                &d.key,
                Acceptance {
                    consortium: id,
                    invite,
                    name: d.name.clone(),
                    code: d.code.clone(),
                    time_ms: T0 + 6,
                    addresses: Vec::new(),
                },
            );
            // B, still a member in what it saw before its removal.
            let b_log = log_of(b, &id);
            let op = op_on(
                &b.key,
                &b_log,
                Action::Add {
                    acceptance: Box::new(acceptance),
                },
                T0 + 7,
            );
            import(a, op.to_text())
        }),
        "only admins add members",
    ));
    cases.push((
        "a removed library's later operation",
        a,
        Box::new(|| {
            // B has seen its removal and still writes.
            let op = op_on(
                &b.key,
                &log_of(a, &id),
                Action::ChangeRole {
                    member: b.consortia.library(),
                    role: Role::Admin,
                },
                T0 + 500,
            );
            import(a, op.to_text())
        }),
        "removed from the consortium",
    ));
    cases.push((
        "a signature moved to a different agreement version",
        d,
        Box::new(|| {
            let mut moved = b_signature_v1.clone();
            moved.body.version = formed.v2;
            import(d, moved.to_text())
        }),
        "signature does not verify",
    ));
    cases.push((
        "a non-canonical key encoding (the identity point's y + p)",
        d,
        Box::new(|| {
            import(
                d,
                tamper(&add_of_b.to_text(), |bytes| {
                    // y = 1 + p = 2^255 - 18: the same point as y = 1, never canonical.
                    let mut y = [0xffu8; 32];
                    y[0] = 0xee;
                    y[31] = 0x7f;
                    bytes[..32].copy_from_slice(&y);
                }),
            )
        }),
        "not a valid ed25519 public key",
    ));
    cases.push((
        "a document with bytes after its end",
        d,
        Box::new(|| import(d, tamper(&add_of_b.to_text(), |bytes| bytes.push(0)))),
        "left over",
    ));

    let mut failures = Vec::new();
    for (what, on, attempt, expected) in &cases {
        let before = (on.consortia.stored_count(), on.consortia.list().len());
        let members_before: Vec<_> = on
            .consortia
            .list()
            .iter()
            .map(|s| on.consortia.members(&s.id).expect("members"))
            .collect();
        match attempt() {
            Ok(what_happened) => failures.push(format!("{what}: accepted ({what_happened})")),
            Err(message) if !message.to_lowercase().contains(expected) => failures.push(format!(
                "{what}: refused, but with {message:?} (expected {expected:?})"
            )),
            Err(_) => {}
        }
        let after = (on.consortia.stored_count(), on.consortia.list().len());
        let members_after: Vec<_> = on
            .consortia
            .list()
            .iter()
            .map(|s| on.consortia.members(&s.id).expect("members"))
            .collect();
        if before != after || members_before != members_after {
            failures.push(format!(
                "{what}: something was stored ({before:?} -> {after:?})"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(cases.len(), 13);
}

#[test]
fn concurrent_removals_of_each_other_resolve_by_seniority_and_unseen_writes_of_the_removed_do_not_count(
) {
    let formed = form();
    let (a, c, id) = (&formed.a, &formed.c, formed.id);
    a.take(c, &id);
    c.take(a, &id);
    // A and C (both admins) remove each other without having seen the other's removal.
    let a_removes_c = a
        .consortia
        .remove(&id, c.consortia.library(), "", T0 + 1_000)
        .expect("A removes C");
    let c_removes_a = c
        .consortia
        .remove(&id, a.consortia.library(), "", T0 + 1_000)
        .expect("C removes A");
    // Meanwhile C, not knowing it is removed, makes D... rather: changes nothing it may not,
    // but its removal of A was concurrent with A's removal of C.
    a.take(c, &id);
    c.take(a, &id);
    let state_a = a.consortia.members(&id).expect("members");
    let state_c = c.consortia.members(&id).expect("members");
    assert_eq!(state_a, state_c);
    // A founded the consortium: its removal wins; C's has no effect.
    assert!(state_a.members.contains_key(&a.consortia.library()));
    assert!(!state_a.members.contains_key(&c.consortia.library()));
    assert_eq!(state_a.status[&a_removes_c.id()], mlog::OpStatus::Effective);
    assert_eq!(
        state_a.status[&c_removes_a.id()],
        mlog::OpStatus::Excluded {
            by: a_removes_c.id()
        }
    );
    // A removed library can be invited again.
    let ticket = a
        .consortia
        .invite(&id, Role::Member, T0 + WEEK_MS, "", Vec::new(), T0 + 2_000)
        .expect("invites")
        .to_text();
    let acceptance = c
        .consortia
        .join(&ticket, Vec::new(), T0 + 2_001)
        .expect("joins")
        .to_text();
    a.consortia
        .accept(&acceptance, T0 + 2_002)
        .expect("accepts");
    let state = a.consortia.members(&id).expect("members");
    assert_eq!(state.role(&c.consortia.library()), Some(Role::Member));
}

#[test]
fn documents_survive_a_restart_and_a_damaged_text_is_refused_with_its_line() {
    let formed = form();
    let id = formed.id;
    let before = standing(&formed.a, &id, &formed.agreement);
    let a = formed.a.reopen();
    assert_eq!(standing(&a, &id, &formed.agreement), before);
    let report = a
        .consortia
        .import("# a comment\n\nJALIN-OP:NOTBASE32!!\nhello\n")
        .expect("imports");
    let lines: Vec<usize> = report.refused.iter().map(|(line, _)| *line).collect();
    assert_eq!(lines, vec![3, 4]);
    assert!(
        report.refused[0].1.contains("line 3"),
        "{:?}",
        report.refused
    );
    assert!(
        matches!(
            Signed::<Invite>::from_text("JALIN-OP:AAAA"),
            Err(DocError::WrongKind { .. })
        ),
        "an operation is not a ticket"
    );
}

#[test]
fn an_invite_s_secret_is_not_kept_in_the_store_and_the_invite_still_works() {
    let a = node(1, "Perpustakaan Desa Kemiri Lor", "KEMIRILOR");
    let b = node(2, "Perpustakaan SDN 2 Kemiri", "SDN2KEMIRI");
    let id = a
        .consortia
        .create("Jaringan Perpustakaan Desa Kecamatan Kemiri", T0)
        .expect("creates");
    let invite = a
        .consortia
        .invite(&id, Role::Member, T0 + WEEK_MS, "", Vec::new(), T0 + 1)
        .expect("invites");
    let ticket = invite.to_text();
    // Whoever reads the store's files (another user of the machine) finds neither the
    // ticket nor its secret.
    let secret = invite.body.secret;
    let a = a.reopen();
    let mut files = 0;
    let mut dirs = vec![a.dir.path().to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("lists") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).expect("reads");
            files += 1;
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret),
                "{} holds the invite's secret",
                path.display()
            );
            assert!(
                !bytes.windows(40).any(|w| w == &ticket.as_bytes()[20..60]),
                "{} holds the ticket",
                path.display()
            );
        }
    }
    assert!(files > 0, "the store was read");
    // The invite still admits its holder's one-off identity, and still adds them.
    let open = a.consortia.open_invites(T0 + 2);
    assert_eq!(open.len(), 1);
    let expected = SigningKey::from_bytes(&invite.body.join_seed()).verifying_key();
    assert_eq!(open[0].join_key, expected.to_bytes());
    assert!(a.consortia.open_invites(T0 + WEEK_MS + 1).is_empty());
    let acceptance = b
        .consortia
        .join(&ticket, Vec::new(), T0 + 3)
        .expect("joins")
        .to_text();
    a.consortia.accept(&acceptance, T0 + 4).expect("accepts");
    assert!(a.consortia.open_invites(T0 + 5).is_empty(), "used up");
}

#[test]
fn one_invite_adds_one_library_even_when_two_accept_it_at_once() {
    let a = node(1, "Perpustakaan Desa Kemiri Lor", "KEMIRILOR");
    let id = a
        .consortia
        .create("Jaringan Perpustakaan Desa Kecamatan Kemiri", T0)
        .expect("creates");
    for round in 0..30u8 {
        let t = T0 + 100 * u64::from(round) + 10;
        let invite = a
            .consortia
            .invite(&id, Role::Member, t + WEEK_MS, "", Vec::new(), t)
            .expect("invites");
        // Two libraries holding the same ticket (it was passed on), accepting together.
        let acceptances: Vec<String> = [100u8, 150]
            .iter()
            .map(|seed| {
                let key = SigningKey::from_bytes(&[seed.wrapping_add(round); 32]);
                Signed::sign(
                    &key,
                    Acceptance {
                        consortium: id,
                        invite: invite.clone(),
                        name: format!("Perpustakaan {seed}"),
                        code: format!("P{seed}R{round}"),
                        time_ms: t + 1,
                        addresses: Vec::new(),
                    },
                )
                .to_text()
            })
            .collect();
        let barrier = std::sync::Barrier::new(2);
        let added = std::thread::scope(|scope| {
            let handles: Vec<_> = acceptances
                .iter()
                .map(|text| {
                    let (consortia, barrier) = (&a.consortia, &barrier);
                    scope.spawn(move || {
                        barrier.wait();
                        consortia.accept(text, t + 2).is_ok()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("joins"))
                .filter(|ok| *ok)
                .count()
        });
        assert_eq!(
            added, 1,
            "round {round}: one ticket added {added} libraries"
        );
    }
}

#[test]
fn each_refusal_has_its_own_kind_for_the_api_and_the_pages() {
    use jalin_node::consortium::{ConsortiumError, Refusal};
    let formed = form();
    let (a, b, id) = (&formed.a, &formed.b, formed.id);
    // B is a member, not an admin: it may not invite.
    let error = b
        .consortia
        .invite(
            &id,
            Role::Member,
            T0 + 2 * WEEK_MS,
            "",
            Vec::new(),
            T0 + 1_000,
        )
        .expect_err("a member may not invite");
    assert!(
        matches!(
            error,
            ConsortiumError::Refused(Refusal::AdminsOnly("invite"))
        ),
        "{error}"
    );
    assert_eq!(error.code(), "admins_only");
    // A ticket tried by the library that made it.
    let ticket = a
        .consortia
        .invite(&id, Role::Member, T0 + WEEK_MS, "", Vec::new(), T0 + 1_000)
        .expect("invites")
        .to_text();
    let error = a
        .consortia
        .join(&ticket, Vec::new(), T0 + 1_001)
        .expect_err("not one's own ticket");
    assert_eq!(error.code(), "own_ticket", "{error}");
    // Every kind is explained to librarians in both languages.
    for lang in ["id", "en"] {
        let strings = jalin_node::web::strings(lang);
        for refusal in Refusal::examples() {
            let key = format!("why_{}", refusal.code());
            assert!(strings.contains_key(&key), "{lang}: {key}");
        }
    }
}

#[test]
fn a_document_before_its_consortium_waits_for_the_genesis_then_applies() {
    use jalin_tests::fixtures::{agree, form_consortium, new_library};
    let (_a_dir, a_data) = new_library(100);
    let (_c_dir, c_data) = new_library(100);
    let a = jalin_node::library::Library::open(a_data).expect("opens");
    let c = jalin_node::library::Library::open(c_data).expect("opens");
    let id = form_consortium("Jaringan Kemiri", &[&a]);
    agree(&[&a], "staff_development = true");
    let exported = a.consortia().export(&id).expect("exports");
    let version = exported
        .lines()
        .find(|l| l.starts_with("JALIN-AGREEMENT:"))
        .expect("a version");
    // The version alone, before anything of its consortium: kept, waiting.
    let report = c.consortia().import(version).expect("reads");
    assert_eq!(report.new, 1, "{report:?}");
    assert!(
        report.taken[0].1.contains("kept until the genesis"),
        "{report:?}"
    );
    assert!(c.consortia().get(&id).is_err(), "not held yet");
    // The genesis and the rest arrive: the waiting version is applied with them.
    let genesis = exported
        .lines()
        .find(|l| l.starts_with("JALIN-OP:"))
        .expect("the genesis");
    c.consortia().import(genesis).expect("reads");
    let held = c.consortia().get(&id).expect("held now");
    assert_eq!(held.agreements.versions.len(), 1);
}
