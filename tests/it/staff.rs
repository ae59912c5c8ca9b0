//! Staff development between members over real libp2p connections: a training posted at
//! one member reaches every member, through a third too; a library's sign-ups to a
//! training count once however often it changes them; help asked and answered, with the
//! time to a first answer; a removed member's posts stop counting and spreading, and one it
//! signs after its removal is refused.

use crate::network::{eventually, start};
use jalin_node::clock::{Clock, ManualClock};
use jalin_node::library::Library;
use jalin_node::staff::{self, StaffRequest};
use jalin_protocol::consortium::document::Signed;
use jalin_protocol::consortium::staff::{Post, StaffPost, Training};
use jalin_tests::fixtures::{agree, form_consortium, new_library, T};
use std::sync::Arc;

const HOUR: u64 = 3_600_000;

fn training(title: &str, starts_ms: u64) -> Training {
    Training {
        title: title.into(),
        description: "Bawa contoh buku dari perpustakaan masing-masing.".into(),
        starts_ms,
        minutes: 180,
        place: "Perpustakaan SMPN 1 Kemiri".into(),
        online: false,
        leader: "Sri Wahyuni".into(),
        audience: "pustakawan sekolah dan desa".into(),
        seats: Some(20),
        attended: None,
    }
}

fn list(library: &Library) -> staff::StaffAnswer {
    staff::list(library).expect("lists")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trainings_sign_ups_and_help_reach_every_member_and_stop_with_a_removal() {
    let clock = Arc::new(ManualClock::at(T));
    let mut libraries = Vec::new();
    for code in ["SMP1", "DESA", "SDN2"] {
        let (dir, mut data) = new_library(100);
        data.config.library.code = code.into();
        data.config.library.name = format!("Perpustakaan {code}");
        let library = Arc::new(Library::open_with_clock(data, clock.clone()).expect("opens"));
        libraries.push((library, dir));
    }
    let all: Vec<&Library> = libraries.iter().map(|(l, _)| l.as_ref()).collect();
    let id = form_consortium("Jaringan Kemiri", &all);
    // No agreement covering staff development yet: nothing is posted.
    let refused = staff::execute(
        all[0],
        StaffRequest::AddTraining {
            consortium: None,
            training: training("Katalogisasi dengan MARC 21", T + 7 * 24 * HOUR),
        },
    )
    .expect_err("no staff development");
    assert_eq!(refused.code(), "no_staff_development", "{refused}");
    agree(&all, "staff_development = true");
    let c_id = all[2].id();
    let c_key = all[2].data().key.clone();

    let mut nodes = Vec::new();
    for (library, dir) in libraries {
        nodes.push(start(library, dir).await);
    }
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    // A line: C reaches A only through B.
    b.net.dial(a.address().await).await.expect("dials");
    c.net.dial(b.address().await).await.expect("dials");

    staff::execute(
        &a.library,
        StaffRequest::AddTraining {
            consortium: None,
            training: training("Katalogisasi dengan MARC 21", T + 7 * 24 * HOUR),
        },
    )
    .expect("posts");
    let reference = list(&a.library).trainings[0].reference.clone();
    assert!(reference.starts_with("SMP1/t-"), "{reference}");
    for node in [b, c] {
        eventually("the training reaches every member", 60, || {
            list(&node.library).trainings.len() == 1
        })
        .await;
    }
    assert_eq!(
        list(&c.library).trainings[0].training.title,
        "Katalogisasi dengan MARC 21"
    );

    // B signs up twice (2, then 3 people), C once: two libraries, each counted once.
    for people in [2, 3] {
        staff::execute(
            &b.library,
            StaffRequest::Signup {
                training: reference.clone(),
                attendees: people,
            },
        )
        .expect("signs up");
    }
    staff::execute(
        &c.library,
        StaffRequest::Signup {
            training: reference.clone(),
            attendees: 1,
        },
    )
    .expect("signs up");
    eventually("both sign-ups reach the organiser", 60, || {
        let t = &list(&a.library).trainings[0];
        t.signups.len() == 2 && t.people == 4
    })
    .await;
    let seen = &list(&a.library).trainings[0];
    let mut signed: Vec<(String, u32)> = seen.signups.clone();
    signed.sort();
    assert_eq!(
        signed,
        vec![
            ("Perpustakaan DESA (DESA)".to_string(), 3),
            ("Perpustakaan SDN2 (SDN2)".to_string(), 1)
        ]
    );

    // Skills, and a question B asks that C answers two hours later.
    staff::execute(
        &c.library,
        StaffRequest::SetSkills {
            people: vec![jalin_protocol::consortium::staff::Person {
                name: "Budi".into(),
                topics: vec!["SLiMS".into(), "node Jalin".into()],
                contact: "0812 0000 1111".into(),
            }],
        },
    )
    .expect("sets");
    staff::execute(
        &b.library,
        StaffRequest::Ask {
            consortium: None,
            topic: "Impor SLiMS".into(),
            question: "Bagaimana mengekspor katalog SLiMS ke CSV?".into(),
        },
    )
    .expect("asks");
    let ask = list(&b.library).asks[0].reference.clone();
    eventually("the question reaches C", 60, || {
        list(&c.library).asks.len() == 1
    })
    .await;
    clock.advance(2 * HOUR);
    staff::execute(
        &c.library,
        StaffRequest::Answer {
            ask: ask.clone(),
            text: "Menu Sistem, Ekspor Katalog, pilih CSV.".into(),
        },
    )
    .expect("answers");
    eventually("the answer and skills reach A", 60, || {
        let seen = list(&a.library);
        seen.asks.first().is_some_and(|q| q.answers.len() == 1) && seen.skills.len() == 1
    })
    .await;
    let seen = list(&a.library);
    assert_eq!(seen.asks[0].first_answer_hours, Some(2.0));
    assert_eq!(seen.figures.help_requests, 1);
    assert_eq!(seen.figures.help_answered, 1);
    assert_eq!(seen.figures.median_hours_to_answer, Some(2.0));
    assert_eq!(seen.figures.signups, 2);
    assert_eq!(seen.figures.trainings_planned, 1);
    assert_eq!(seen.skills[0].people[0].name, "Budi");
    // Only the organiser records a training as held.
    let not_theirs = staff::execute(
        &b.library,
        StaffRequest::Held {
            training: reference.clone(),
            attended: 9,
        },
    )
    .expect_err("not its training");
    assert_eq!(not_theirs.code(), "staff_invalid");

    // A removes C: C's sign-up, answer and skills stop counting at A and B, and stop
    // spreading with the consortium's documents.
    a.library
        .consortia()
        .remove(&id, c_id, "tidak aktif", clock.now_ms())
        .expect("removes");
    // As the API does after a membership change: the network learns of it.
    a.net.members_changed().await.expect("network runs");
    eventually("B learns of the removal and drops C's posts", 60, || {
        let seen = list(&b.library);
        seen.skills.is_empty()
            && seen.asks.first().is_some_and(|q| q.answers.is_empty())
            && seen.trainings[0].signups.len() == 1
    })
    .await;
    let exported = a.library.consortia().export(&id).expect("exports");
    let from_c = jalin_protocol::consortium::read_documents(&exported)
        .into_iter()
        .filter_map(|(_, d)| match d {
            Ok(jalin_protocol::consortium::Document::Staff(post)) => Some(post.author),
            _ => None,
        })
        .filter(|author| *author == c_id)
        .count();
    assert_eq!(from_c, 0, "a removed member's posts are not passed on");
    // C, removed, signs a new question with its key and hands it over: refused.
    let rogue = Signed::sign(
        &c_key,
        StaffPost {
            consortium: id,
            item: "q-rogue".into(),
            post: Post::Ask {
                topic: "Promosi".into(),
                question: "Beli produk kami".into(),
            },
            withdrawn: false,
            time_ms: clock.now_ms() + 1,
        },
    );
    let report = b
        .library
        .consortia()
        .import(&rogue.to_text())
        .expect("reads");
    assert_eq!(report.new, 0);
    assert_eq!(report.refused.len(), 1, "{report:?}");
    assert!(report.refused[0].1.contains("not a member"), "{report:?}");
    assert_eq!(list(&b.library).asks.len(), 1);
    for node in nodes {
        node.stop().await;
    }
}
