//! Finding partners: a library's signed profile (one line of text, one QR code), refused
//! when altered; candidates set beside this catalog, their complement checked against a
//! plain computation over the records; an invitation that carries the agreement proposed,
//! read before joining.

use crate::cli::jalin;
use jalin_node::library::{ImportOptions, Library, Source};
use jalin_node::profiles::{self, ProfileRequest};
use jalin_protocol::collection::division;
use jalin_protocol::consortium::document::{armor, Signed};
use jalin_protocol::marc::{iso2709, MarcRecord};
use jalin_protocol::profile::{title_hash, LibraryProfile};
use jalin_protocol::record::Description;
use jalin_tests::fixtures::new_library;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

fn sample_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../cli/demo/loc-indonesia-sample.mrc")
}

pub(crate) fn records() -> Vec<MarcRecord> {
    iso2709::Reader::new(std::fs::read(sample_file()).expect("file").as_slice())
        .map(|r| r.expect("reads").record)
        .collect()
}

/// A library holding `records`.
pub(crate) fn library_of(
    name: &str,
    code: &str,
    records: &[MarcRecord],
) -> (Library, tempfile::TempDir) {
    let (dir, mut data) = new_library(1000);
    data.config.library.name = name.into();
    data.config.library.code = code.into();
    let library = Library::open(data).expect("opens");
    let mut bytes = Vec::new();
    for record in records {
        bytes.extend(iso2709::write_record(record).expect("writes"));
    }
    library
        .import(&Source::Bytes(bytes), &ImportOptions::default(), |_| {})
        .expect("imports");
    (library, dir)
}

/// The plain computation: per division, the distinct title hashes (and records with
/// none), and every hash of the catalog.
struct Plain {
    by_division: BTreeMap<&'static str, (HashSet<u32>, u32)>,
    all: HashSet<u32>,
}

fn plain(records: &[MarcRecord]) -> Plain {
    let mut out = Plain {
        by_division: BTreeMap::new(),
        all: HashSet::new(),
    };
    for record in records {
        let d = Description::from_marc(record);
        let hash = title_hash(&d);
        if let Some(code) = division(&d.classification) {
            let slot = out.by_division.entry(code).or_default();
            match hash {
                Some(h) => {
                    slot.0.insert(h);
                }
                None => slot.1 += 1,
            }
        }
        out.all.extend(hash);
    }
    out
}

#[test]
fn a_candidate_complements_this_library_by_a_plain_computation_and_an_altered_profile_is_refused() {
    let all = records();
    assert!(all.len() > 300, "{} records", all.len());
    // The village library holds the first two thirds, the school the last two thirds:
    // the middle third is held by both.
    let third = all.len() / 3;
    let (ours_records, theirs_records) = (&all[..2 * third], &all[third..]);
    let (village, _v) = library_of("Perpustakaan Desa Kemiri", "KEMIRI", ours_records);
    let (school, _s) = library_of("SMPN 1 Kemiri", "SMP1", theirs_records);
    profiles::execute(
        &village,
        ProfileRequest::Set {
            details: profiles::DetailsInput {
                coordinates: Some("-7.71234, 109.98765".into()),
                ..Default::default()
            },
        },
    )
    .expect("sets");
    profiles::execute(
        &school,
        ProfileRequest::Set {
            details: profiles::DetailsInput {
                kind: Some("sekolah".into()),
                district: Some("Kemiri, Purworejo".into()),
                interlibrary_loan: Some(true),
                coordinates: Some("-7.69234, 109.98765".into()),
                ..Default::default()
            },
        },
    )
    .expect("sets");
    let text = profiles::execute(&school, ProfileRequest::Show)
        .expect("shows")
        .text
        .expect("a text");
    assert!(text.len() < 3_391, "one QR code at level M: {}", text.len());

    // Altered after signing: the body changed, the checksum made right again.
    let mut forged = LibraryProfile::read(&text).expect("reads");
    forged.body.details.offers.internet = true;
    let forged_text = armor("PROFILE", &forged.to_bytes());
    let refused = profiles::execute(
        &village,
        ProfileRequest::Import {
            text: forged_text.clone(),
        },
    )
    .expect_err("altered");
    assert_eq!(refused.code(), "profile_altered", "{refused}");
    assert!(refused.to_string().contains("altered"), "{refused}");
    // Mistyped: one character changed.
    let mut chars: Vec<char> = text.chars().collect();
    let at = chars.len() - 10;
    chars[at] = if chars[at] == 'Q' { 'R' } else { 'Q' };
    let refused = profiles::execute(
        &village,
        ProfileRequest::Import {
            text: chars.into_iter().collect(),
        },
    )
    .expect_err("mistyped");
    assert_eq!(refused.code(), "profile_mistyped", "{refused}");
    // Refused ones leave nothing behind.
    assert!(profiles::candidates(&village).expect("lists").is_empty());
    // Its own profile is not a candidate.
    let own = profiles::execute(&village, ProfileRequest::Show)
        .expect("shows")
        .text
        .expect("text");
    let refused =
        profiles::execute(&village, ProfileRequest::Import { text: own }).expect_err("own");
    assert_eq!(refused.code(), "profile_own");

    // Taken, with line breaks and spaces in it as a chat may add.
    let broken: String = text
        .chars()
        .enumerate()
        .flat_map(|(i, c)| {
            if i % 60 == 59 {
                vec![c, '\n', ' ']
            } else {
                vec![c]
            }
        })
        .collect();
    profiles::execute(&village, ProfileRequest::Import { text: broken }).expect("taken");
    // The same again is older-or-equal: refused, saying a newer one is here.
    let again = profiles::execute(&village, ProfileRequest::Import { text: text.clone() })
        .expect_err("not newer");
    assert_eq!(again.code(), "profile_older");

    let candidates = profiles::candidates(&village).expect("lists");
    assert_eq!(candidates.len(), 1);
    let candidate = &candidates[0];
    assert_eq!(candidate.profile.code, "SMP1");
    assert_eq!(candidate.profile.kind, "sekolah");
    assert!(candidate.profile.offers.interlibrary_loan);
    assert!(!candidate.partner);
    // 0.02 degree of latitude: 2.22 km.
    let km = candidate
        .complement
        .distance_km
        .expect("both have coordinates");
    assert!((km - 2.224).abs() < 0.01, "{km}");

    // Every figure against the plain computation over the records themselves.
    let (ours, theirs) = (plain(ours_records), plain(theirs_records));
    let profile = LibraryProfile::read(&text).expect("reads").body;
    assert_eq!(
        profile.titles as usize,
        theirs.all.len()
            + theirs_records
                .iter()
                .filter(|r| title_hash(&Description::from_marc(r)).is_none())
                .count()
    );
    assert_eq!(
        candidate.complement.divisions.len(),
        theirs.by_division.len()
    );
    let mut new_titles = 0;
    for d in &candidate.complement.divisions {
        let (their_hashes, their_unhashed) = &theirs.by_division[d.division.as_str()];
        assert_eq!(
            d.their_titles as usize,
            their_hashes.len() + *their_unhashed as usize,
            "{}",
            d.division
        );
        let our_titles = ours
            .by_division
            .get(d.division.as_str())
            .map_or(0, |(h, n)| h.len() + *n as usize);
        assert_eq!(d.our_titles as usize, our_titles, "{}", d.division);
        // The sample: the smallest hashes of the division's titles.
        let mut sorted: Vec<u32> = their_hashes.iter().copied().collect();
        sorted.sort();
        sorted.truncate(16);
        assert_eq!(profile.division(&d.division).unwrap().sample, sorted);
        let lacking = sorted.iter().filter(|h| !ours.all.contains(h)).count();
        assert_eq!(d.lacking as usize, lacking, "{}", d.division);
        assert_eq!(d.sampled as usize, sorted.len());
        let expected = (f64::from(d.their_titles) * lacking as f64 / sorted.len().max(1) as f64)
            .round() as u32;
        assert_eq!(d.new_titles, expected, "{}", d.division);
        assert_eq!(d.exact, sorted.len() == d.their_titles as usize);
        new_titles += expected;
    }
    assert_eq!(candidate.complement.new_titles, new_titles);
    // And the estimate is near the truth: the titles of theirs the village lacks.
    let truth = theirs.all.difference(&ours.all).count() as f64;
    let classified_truth: usize = theirs
        .by_division
        .values()
        .map(|(h, _)| h.difference(&ours.all).count())
        .sum();
    assert!(classified_truth as f64 <= truth);
    let estimate = f64::from(new_titles);
    assert!(
        (estimate - classified_truth as f64).abs() <= 0.35 * classified_truth as f64 + 5.0,
        "estimated {estimate}, truly {classified_truth}"
    );
    // Forgotten on request.
    profiles::execute(
        &village,
        ProfileRequest::Forget {
            library: "SMP1".into(),
        },
    )
    .expect("forgets");
    assert!(profiles::candidates(&village).expect("lists").is_empty());
    // A signed profile of impossible figures is refused too.
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let mut impossible = profile.clone();
    impossible.titles = 0;
    let refused = profiles::execute(
        &village,
        ProfileRequest::Import {
            text: Signed::sign(&key, impossible).to_text(),
        },
    )
    .expect_err("impossible");
    assert_eq!(refused.code(), "profile_unreadable", "{refused}");
}

#[test]
fn the_cli_exports_a_profile_with_its_qr_code_and_refuses_an_altered_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for (data, name, code) in [
        (&a, "Perpustakaan Desa Kemiri", "KEMIRI"),
        (&b, "SDN 2", "SDN2"),
    ] {
        let (status, _, err) = jalin(data, &["init", "--name", name, "--code", code]);
        assert_eq!(status, 0, "{err}");
    }
    let sample = sample_file();
    let (status, _, err) = jalin(&b, &["import", sample.to_str().unwrap()]);
    assert_eq!(status, 0, "{err}");
    let (status, out, err) = jalin(
        &b,
        &[
            "profile",
            "set",
            "--kind",
            "sekolah",
            "--hours",
            "Senin-Sabtu 07.00-13.00",
            "--internet",
            "yes",
            "--coordinates",
            "-7.7, 110.0",
        ],
    );
    assert_eq!(status, 0, "{err}");
    assert!(out.contains("Senin-Sabtu 07.00-13.00"), "{out}");
    let (text_file, qr_file) = (dir.path().join("sdn2.txt"), dir.path().join("sdn2.png"));
    let (status, _, err) = jalin(
        &b,
        &[
            "profile",
            "export",
            "--out",
            text_file.to_str().unwrap(),
            "--qr",
            qr_file.to_str().unwrap(),
        ],
    );
    assert_eq!(status, 0, "{err}");
    let png = std::fs::read(&qr_file).expect("a PNG");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let text = std::fs::read_to_string(&text_file).expect("text");
    assert!(text.starts_with("JALIN-PROFILE:"), "{text}");

    // Altered: refused, saying so, and nothing kept.
    let mut forged = LibraryProfile::read(&text).expect("reads");
    forged.body.name = "SDN 2 (palsu)".into();
    let forged_file = dir.path().join("forged.txt");
    std::fs::write(&forged_file, armor("PROFILE", &forged.to_bytes())).expect("writes");
    let (status, _, err) = jalin(&a, &["profile", "import", forged_file.to_str().unwrap()]);
    assert_ne!(status, 0);
    assert!(err.contains("altered after it was signed"), "{err}");
    let (status, out, _) = jalin(&a, &["partners"]);
    assert_eq!(status, 0);
    assert!(out.contains("0 candidate"), "{out}");

    // The real one: taken from the file, then listed with its figures.
    let (status, out, err) = jalin(&a, &["profile", "import", text_file.to_str().unwrap()]);
    assert_eq!(status, 0, "{err}");
    assert!(out.contains("SDN 2"), "{out}");
    let (status, out, _) = jalin(&a, &["partners"]);
    assert_eq!(status, 0);
    assert!(out.contains("SDN 2 (SDN2, sekolah)"), "{out}");
    assert!(out.contains("internet yes"), "{out}");
    // The village holds nothing: everything classified there is new to it.
    assert!(out.contains("(100%) not in this library"), "{out}");
    let (status, json, _) = jalin(&a, &["partners", "--json"]);
    assert_eq!(status, 0);
    let candidates: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(candidates[0]["profile"]["code"], "SDN2");
    assert!(candidates[0]["complement"]["new_titles"].as_u64().unwrap() > 0);
}

#[test]
fn an_invitation_carries_the_agreement_and_joining_waits_for_the_librarian_to_agree() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for (data, name, code) in [
        (&a, "Perpustakaan Desa Kemiri", "KEMIRI"),
        (&b, "SDN 2", "SDN2"),
    ] {
        let (status, _, err) = jalin(data, &["init", "--name", name, "--code", code]);
        assert_eq!(status, 0, "{err}");
    }
    let (status, _, err) = jalin(&a, &["consortium", "create", "--name", "Jaringan Kemiri"]);
    assert_eq!(status, 0, "{err}");
    // Before any agreement, an invitation is the ticket alone (with its comment lines).
    let bare = dir.path().join("tiket.txt");
    let (status, _, err) = jalin(
        &a,
        &["invite", "create", "--invitation", bare.to_str().unwrap()],
    );
    assert_eq!(status, 0, "{err}");
    let read = jalin_protocol::consortium::invitation::read(
        &std::fs::read_to_string(&bare).expect("written"),
    )
    .expect("a ticket alone reads");
    assert!(read.agreement.is_none());
    let agreement = dir.path().join("perjanjian.md");
    std::fs::write(
        &agreement,
        "+++\ntitle = \"Perjanjian Kerja Sama Jaringan Kemiri\"\ninterlibrary_loan = true\n\
         loan_period_days = 21\n+++\nPara pihak saling meminjamkan koleksi.\n",
    )
    .expect("writes");
    let (status, _, err) = jalin(&a, &["agreement", "draft", agreement.to_str().unwrap()]);
    assert_eq!(status, 0, "{err}");
    let (status, out, _) = jalin(&a, &["agreement", "show"]);
    assert_eq!(status, 0);
    let (status, _, err) = jalin(&a, &["agreement", "sign"]);
    assert_eq!(status, 0, "{err}: {out}");
    let invitation = dir.path().join("undangan.txt");
    let (status, _, err) = jalin(
        &a,
        &[
            "invite",
            "create",
            "--note",
            "SDN 2",
            "--invitation",
            invitation.to_str().unwrap(),
        ],
    );
    assert_eq!(status, 0, "{err}");
    let text = std::fs::read_to_string(&invitation).expect("written");
    assert!(text.contains("JALIN-INVITE:") && text.contains("JALIN-AGREEMENT:"));
    let read = jalin_protocol::consortium::invitation::read(&text).expect("reads");
    let proposed = read.agreement.expect("an agreement");
    assert_eq!(proposed.title, "Perjanjian Kerja Sama Jaringan Kemiri");
    assert!(proposed.in_force && proposed.terms.loan_period_days == 21);

    // Without --agree: the agreement is printed, and nothing is joined.
    let (status, out, err) = jalin(&b, &["join", invitation.to_str().unwrap(), "--offline"]);
    assert_eq!(status, 3, "{out}{err}");
    assert!(
        out.contains("Perjanjian Kerja Sama Jaringan Kemiri"),
        "{out}"
    );
    assert!(out.contains("loan period 21 days"), "{out}");
    assert!(
        out.contains("Para pihak saling meminjamkan koleksi."),
        "{out}"
    );
    assert!(err.contains("--agree"), "{err}");
    let (_, listed, _) = jalin(&b, &["consortium", "list"]);
    assert!(!listed.contains("Jaringan Kemiri"), "{listed}");

    // An agreement altered in the invitation: refused before anything is made.
    let altered: String =
        text.lines()
            .map(|line| {
                if line.starts_with("JALIN-AGREEMENT:") {
                    let mut version = Signed::<
                        jalin_protocol::consortium::agreement::AgreementVersion,
                    >::from_text(line)
                    .expect("reads");
                    version.body.terms.loan_period_days = 90;
                    armor("AGREEMENT", &version.to_bytes())
                } else {
                    line.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
    let altered_file = dir.path().join("altered.txt");
    std::fs::write(&altered_file, altered).expect("writes");
    let (status, _, err) = jalin(
        &b,
        &[
            "join",
            altered_file.to_str().unwrap(),
            "--offline",
            "--agree",
        ],
    );
    assert_ne!(status, 0);
    assert!(err.contains("refused"), "{err}");

    // With --agree: joined (the acceptance made, to send back by hand here).
    let (status, out, err) = jalin(
        &b,
        &["join", invitation.to_str().unwrap(), "--offline", "--agree"],
    );
    assert_eq!(status, 0, "{out}{err}");
    assert!(
        format!("{out}{err}").contains("JALIN-ACCEPTANCE:"),
        "{out}{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_library_on_the_local_network_is_heard_as_a_candidate_and_junk_is_ignored() {
    use jalin_node::node::{Node, NodeOptions};
    let free = || {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .expect("a free port")
    };
    let (port_a, port_b) = (free(), free());
    let open = |name: &str, code: &str, port: u16, to: u16| {
        let (dir, mut data) = new_library(1000);
        data.config.library.name = name.into();
        data.config.library.code = code.into();
        data.config.partners.lan = true;
        data.config.partners.port = port;
        data.config.partners.announce_to = vec![format!("127.0.0.1:{to}")];
        (
            std::sync::Arc::new(Library::open(data).expect("opens")),
            dir,
        )
    };
    let (school, _s) = open("SMPN 1 Kemiri", "SMP1", port_b, port_a);
    let (village, _v) = open("Perpustakaan Desa Kemiri", "KEMIRI", port_a, port_b);
    let all = records();
    let mut bytes = Vec::new();
    for record in &all[..50] {
        bytes.extend(iso2709::write_record(record).expect("writes"));
    }
    village
        .import(&Source::Bytes(bytes), &ImportOptions::default(), |_| {})
        .expect("imports");
    // The school's node listens first; then the village's sends as it starts.
    let school_node = Node::spawn(school.clone(), NodeOptions::default())
        .await
        .expect("starts");
    // A stranger on the LAN: junk, an oversized datagram, a forged profile.
    let stranger = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let target = format!("127.0.0.1:{port_b}");
    stranger
        .send_to(b"\xff\xfe not a profile", &target)
        .await
        .expect("sends");
    stranger
        .send_to(&vec![b'A'; 60_000], &target)
        .await
        .expect("sends");
    let own = profiles::own_profile(&village).expect("a profile");
    let mut forged = own.clone();
    forged.body.name = "Perpustakaan Palsu".into();
    stranger
        .send_to(armor("PROFILE", &forged.to_bytes()).as_bytes(), &target)
        .await
        .expect("sends");
    let village_node = Node::spawn(village.clone(), NodeOptions::default())
        .await
        .expect("starts");
    crate::network::eventually("the school hears the village", 30, || {
        profiles::candidates(&school)
            .expect("lists")
            .iter()
            .any(|c| c.profile.code == "KEMIRI")
    })
    .await;
    let candidates = profiles::candidates(&school).expect("lists");
    assert_eq!(
        candidates.len(),
        1,
        "only the genuine profile: {candidates:?}"
    );
    let heard = &candidates[0];
    assert_eq!(heard.source, profiles::Source::LocalNetwork);
    assert_eq!(heard.profile.name, "Perpustakaan Desa Kemiri");
    // The school holds nothing yet: every classified title of the village is new to it.
    assert_eq!(
        heard.complement.new_titles, heard.complement.their_titles,
        "{:?}",
        heard.complement
    );
    // Heard, not kept: kept only when the librarian takes it in.
    let text = heard.text.clone().expect("its text");
    profiles::execute(&school, ProfileRequest::Import { text }).expect("kept");
    let kept = profiles::candidates(&school).expect("lists");
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].source, profiles::Source::Given);
    village_node.shutdown().await.expect("stops");
    school_node.shutdown().await.expect("stops");
}
