//! Staff development (pengembangan SDM) between partners: the training calendar with
//! sign-ups, the skills directory, help asked and answered, and their figures. Each is a
//! signed post of a consortium ([`StaffPost`]) that travels with the consortium's other
//! documents; only where an agreement in force covers staff development.
//!
//! Times are shown and read in WIB (UTC+7) unless written with an offset.

use crate::consortium::ConsortiumError;
use crate::library::{Library, LibraryError};
use jalin_protocol::consortium::document::{Hash32, Signed};
use jalin_protocol::consortium::staff::{
    answer_item, signup_item, Person, Post, PostRef, StaffPost, Training, SKILLS_ITEM,
};
use jalin_protocol::signing::LibraryId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Western Indonesian Time, in which times are read and shown unless an offset is given.
pub const WIB: time::UtcOffset = match time::UtcOffset::from_hms(7, 0, 0) {
    Ok(offset) => offset,
    Err(_) => time::UtcOffset::UTC,
};

/// What goes wrong with staff-development posts.
#[derive(Debug, thiserror::Error)]
pub enum StaffError {
    /// Something written that cannot be posted.
    #[error("{0}")]
    Invalid(String),
    /// No such training or question.
    #[error("no {0} here")]
    NotFound(String),
}

impl StaffError {
    /// What kind of failure this is, as a stable name.
    pub fn code(&self) -> &'static str {
        match self {
            StaffError::Invalid(_) => "staff_invalid",
            StaffError::NotFound(_) => "staff_not_found",
        }
    }
}

/// Reads `2026-12-10 09:00` (WIB), or with an offset (`2026-12-10T09:00+08:00`), into ms
/// since 1970.
pub fn parse_time(text: &str) -> Result<u64, StaffError> {
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    let text = text.trim();
    let bad = || {
        StaffError::Invalid(format!(
            "{text:?}: write a time as YYYY-MM-DD HH:MM (WIB), or RFC 3339 with an offset"
        ))
    };
    let at = if let Ok(at) = time::OffsetDateTime::parse(text, &Rfc3339) {
        at
    } else {
        let plain = text.replace('T', " ");
        time::PrimitiveDateTime::parse(
            &plain,
            format_description!("[year]-[month]-[day] [hour]:[minute]"),
        )
        .map_err(|_| bad())?
        .assume_offset(WIB)
    };
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).map_err(|_| bad())
}

/// A time as shown: `2026-12-10 09:00 WIB`.
pub fn show_time(ms: u64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .to_offset(WIB);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} WIB",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute()
    )
}

fn random_item(prefix: &str) -> String {
    let mut bytes = [0u8; 6];
    // Without randomness the clock and a count still keep items apart.
    if getrandom::fill(&mut bytes).is_err() {
        static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        bytes.copy_from_slice(&n.to_be_bytes()[2..]);
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}-{hex}")
}

/// The consortia where this library posts about staff development: it is a member and an
/// agreement in force covers it.
fn staff_consortia(library: &Library) -> Vec<Hash32> {
    let consortia = library.consortia();
    consortia
        .list()
        .into_iter()
        .filter(|c| c.role.is_some() && consortia.develops_staff(&c.id).unwrap_or(false))
        .map(|c| c.id)
        .collect()
}

/// Every post standing, with its consortium.
fn standing(library: &Library) -> Result<Vec<(Hash32, Signed<StaffPost>)>, LibraryError> {
    let mut out = Vec::new();
    for id in staff_consortia(library) {
        for post in library.consortia().standing_staff(&id)? {
            out.push((id, post));
        }
    }
    Ok(out)
}

/// A post's reference as people write it: `CODE/item` (the author's code, or its key's
/// fingerprint where two members share a code).
fn reference(library: &Library, post: &Signed<StaffPost>) -> String {
    let consortia = library.consortia();
    let code = consortia.list().iter().find_map(|c| {
        let members = consortia.members(&c.id).ok()?.members;
        let code = members.get(&post.author)?.code.clone();
        let shared = members
            .values()
            .filter(|m| m.code.eq_ignore_ascii_case(&code))
            .count();
        Some(if shared == 1 {
            code
        } else {
            post.author.fingerprint()
        })
    });
    format!(
        "{}/{}",
        code.unwrap_or_else(|| post.author.fingerprint()),
        post.body.item
    )
}

/// Finds a standing post by its reference (`CODE/item`; the author by its code,
/// fingerprint or key) for which `kind` holds.
fn find(
    library: &Library,
    text: &str,
    what: &str,
    kind: fn(&Post) -> bool,
) -> Result<(Hash32, Signed<StaffPost>), LibraryError> {
    let (who, item) = text
        .trim()
        .split_once('/')
        .ok_or_else(|| StaffError::Invalid(format!("{text:?}: write a {what} as CODE/ITEM")))?;
    for (id, post) in standing(library)? {
        if post.body.item != item || !kind(&post.body.post) {
            continue;
        }
        let author = library.consortia().find_member(&id, who);
        if author.is_ok_and(|a| a == post.author) {
            return Ok((id, post));
        }
    }
    Err(StaffError::NotFound(format!("{what} {text:?}")).into())
}

/// A training as shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainingView {
    /// Its reference (`CODE/item`).
    pub reference: String,
    /// The organiser's name.
    pub library_name: String,
    /// Whether this library organises it.
    pub own: bool,
    /// The training.
    pub training: Training,
    /// When, as shown.
    pub when: String,
    /// Whether its time has come.
    pub past: bool,
    /// The libraries signed up, each once: (name, staff coming).
    pub signups: Vec<(String, u32)>,
    /// Staff signed up, over those libraries.
    pub people: u32,
    /// This library's sign-up, if it has one.
    pub own_signup: Option<u32>,
}

/// One member's skills directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkillsView {
    /// The library's name.
    pub library_name: String,
    /// Whether it is this library.
    pub own: bool,
    /// Its people.
    pub people: Vec<Person>,
}

/// An answer as shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerView {
    /// Who answered.
    pub library_name: String,
    /// Whether this library did.
    pub own: bool,
    /// The answer.
    pub text: String,
    /// When.
    pub when: String,
}

/// A question as shown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AskView {
    /// Its reference (`CODE/item`).
    pub reference: String,
    /// Who asks.
    pub library_name: String,
    /// Whether this library does.
    pub own: bool,
    /// On what.
    pub topic: String,
    /// The question.
    pub question: String,
    /// When it was asked, as shown.
    pub when: String,
    /// The answers, first first.
    pub answers: Vec<AnswerView>,
    /// Hours from the question to its first answer.
    pub first_answer_hours: Option<f64>,
}

/// The figures of staff development over a period (ISO 2789 counts where it defines them:
/// a training session counts once, attendances are people).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StaffFigures {
    /// Trainings starting in the period, not cancelled.
    pub trainings_planned: u32,
    /// Of those, held: the organiser recorded the attendance.
    pub trainings_held: u32,
    /// Of those planned, past and with no attendance recorded: planned and not held.
    pub trainings_not_held: u32,
    /// People who attended the trainings held.
    pub attendance: u32,
    /// Sign-ups to the period's trainings: libraries, each once per training.
    pub signups: u32,
    /// Questions asked in the period.
    pub help_requests: u32,
    /// Of those, answered by a partner.
    pub help_answered: u32,
    /// The median time from a question to its first answer, in hours.
    pub median_hours_to_answer: Option<f64>,
    /// Answers given in the period, by library (key hex).
    pub answers_by_library: BTreeMap<String, u32>,
    /// Trainings held in the period, by organising library (key hex).
    pub held_by_library: BTreeMap<String, u32>,
}

/// The figures over `[from_ms, to_ms)` from the standing posts, as of `now_ms`: a pure
/// function of the posts, so every member's node finds the same.
pub fn figures(posts: &[Signed<StaffPost>], from_ms: u64, to_ms: u64, now_ms: u64) -> StaffFigures {
    let mut out = StaffFigures::default();
    let in_period = |ms: u64| from_ms <= ms && ms < to_ms;
    let mut asks: BTreeMap<PostRef, u64> = BTreeMap::new();
    let mut first_answer: BTreeMap<PostRef, u64> = BTreeMap::new();
    let mut trainings: BTreeMap<PostRef, bool> = BTreeMap::new();
    for post in posts {
        match &post.body.post {
            Post::Training(t) if in_period(t.starts_ms) => {
                out.trainings_planned += 1;
                trainings.insert(StaffPost::reference(post), true);
                match t.attended {
                    Some(people) => {
                        out.trainings_held += 1;
                        out.attendance = out.attendance.saturating_add(people);
                        *out.held_by_library.entry(post.author.to_hex()).or_default() += 1;
                    }
                    None if t.starts_ms <= now_ms => out.trainings_not_held += 1,
                    None => {}
                }
            }
            Post::Ask { .. } if in_period(post.body.time_ms) => {
                out.help_requests += 1;
                asks.insert(StaffPost::reference(post), post.body.time_ms);
            }
            _ => {}
        }
    }
    // Every question standing, of any period: an answer counts only to one of them, by
    // another library, dated after it.
    let asked: BTreeMap<PostRef, u64> = posts
        .iter()
        .filter(|p| matches!(p.body.post, Post::Ask { .. }))
        .map(|p| (StaffPost::reference(p), p.body.time_ms))
        .collect();
    for post in posts {
        match &post.body.post {
            Post::Signup { training, .. } if trainings.contains_key(training) => {
                out.signups += 1;
            }
            Post::Answer { ask, .. }
                if ask.author != post.author
                    && asked.get(ask).is_some_and(|at| *at <= post.body.time_ms) =>
            {
                if in_period(post.body.time_ms) {
                    *out.answers_by_library
                        .entry(post.author.to_hex())
                        .or_default() += 1;
                }
                if asks.contains_key(ask) {
                    let first = first_answer.entry(ask.clone()).or_insert(u64::MAX);
                    *first = (*first).min(post.body.time_ms);
                }
            }
            _ => {}
        }
    }
    out.help_answered = first_answer.len() as u32;
    let mut hours: Vec<f64> = first_answer
        .iter()
        .map(|(ask, answered)| answered.saturating_sub(asks[ask]) as f64 / 3_600_000.0)
        .collect();
    hours.sort_by(f64::total_cmp);
    out.median_hours_to_answer = match hours.len() {
        0 => None,
        n if n % 2 == 1 => Some(hours[n / 2]),
        n => Some((hours[n / 2 - 1] + hours[n / 2]) / 2.0),
    };
    out
}

/// Everything of staff development this node holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StaffAnswer {
    /// What happened, in a sentence.
    pub message: String,
    /// Whether any partnership here covers staff development.
    pub on: bool,
    /// The trainings, soonest first (past ones after the coming ones, newest first).
    pub trainings: Vec<TrainingView>,
    /// The skills directories, this library's first.
    pub skills: Vec<SkillsView>,
    /// The questions, newest first.
    pub asks: Vec<AskView>,
    /// The figures since twelve months ago (trainings planned ahead included).
    pub figures: StaffFigures,
}

/// A request about staff development, from the CLI, the API or the pages.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum StaffRequest {
    /// Everything: the calendar, the directory, the questions, the figures.
    List,
    /// Post a training this library organises.
    AddTraining {
        /// The consortium (default: the only one).
        #[serde(default)]
        consortium: Option<String>,
        /// The training (its `attended` is ignored).
        training: Training,
    },
    /// Record a training of this library's as held, with how many attended.
    Held {
        /// The training (`CODE/item`).
        training: String,
        /// People who attended.
        attended: u32,
    },
    /// Cancel a training of this library's.
    Cancel {
        /// The training (`CODE/item`).
        training: String,
    },
    /// Sign up this library's staff for a training (0 takes the sign-up back).
    Signup {
        /// The training (`CODE/item`).
        training: String,
        /// How many of its staff come.
        attendees: u32,
    },
    /// Set this library's skills directory (in every partnership with staff development).
    SetSkills {
        /// Its people.
        people: Vec<Person>,
    },
    /// Ask the partners for help.
    Ask {
        /// The consortium (default: the only one).
        #[serde(default)]
        consortium: Option<String>,
        /// On what.
        topic: String,
        /// The question.
        question: String,
    },
    /// Answer a partner's question.
    Answer {
        /// The question (`CODE/item`).
        ask: String,
        /// The answer.
        text: String,
    },
}

fn name_of(names: &BTreeMap<LibraryId, String>, library: &LibraryId) -> String {
    names
        .get(library)
        .cloned()
        .unwrap_or_else(|| library.fingerprint())
}

/// Everything standing, as shown.
pub fn list(library: &Library) -> Result<StaffAnswer, LibraryError> {
    let own = library.id();
    let now = library.now_ms();
    let names = library.library_names();
    let posts = standing(library)?;
    let mut signups: BTreeMap<PostRef, Vec<(LibraryId, u32)>> = BTreeMap::new();
    let mut answers: BTreeMap<PostRef, Vec<&Signed<StaffPost>>> = BTreeMap::new();
    for (_, post) in &posts {
        match &post.body.post {
            Post::Signup {
                training,
                attendees,
            } => signups
                .entry(training.clone())
                .or_default()
                .push((post.author, *attendees)),
            Post::Answer { ask, .. } => answers.entry(ask.clone()).or_default().push(post),
            _ => {}
        }
    }
    let mut out = StaffAnswer {
        on: !staff_consortia(library).is_empty(),
        ..StaffAnswer::default()
    };
    for (_, post) in &posts {
        let reference = || reference(library, post);
        match &post.body.post {
            Post::Training(t) => {
                let signed = signups
                    .get(&StaffPost::reference(post))
                    .cloned()
                    .unwrap_or_default();
                out.trainings.push(TrainingView {
                    reference: reference(),
                    library_name: name_of(&names, &post.author),
                    own: post.author == own,
                    when: show_time(t.starts_ms),
                    past: t.starts_ms <= now,
                    people: signed.iter().map(|(_, n)| n).sum(),
                    own_signup: signed.iter().find(|(l, _)| *l == own).map(|(_, n)| *n),
                    signups: signed
                        .iter()
                        .map(|(l, n)| (name_of(&names, l), *n))
                        .collect(),
                    training: t.clone(),
                });
            }
            Post::Skills(people) => out.skills.push(SkillsView {
                library_name: name_of(&names, &post.author),
                own: post.author == own,
                people: people.clone(),
            }),
            Post::Ask { topic, question } => {
                let mut given: Vec<&Signed<StaffPost>> = answers
                    .get(&StaffPost::reference(post))
                    .cloned()
                    .unwrap_or_default();
                given.sort_by_key(|a| a.body.time_ms);
                let first = given
                    .iter()
                    .find(|a| a.author != post.author)
                    .map(|a| a.body.time_ms.saturating_sub(post.body.time_ms) as f64 / 3_600_000.0);
                out.asks.push(AskView {
                    reference: reference(),
                    library_name: name_of(&names, &post.author),
                    own: post.author == own,
                    topic: topic.clone(),
                    question: question.clone(),
                    when: show_time(post.body.time_ms),
                    first_answer_hours: first,
                    answers: given
                        .iter()
                        .filter_map(|a| match &a.body.post {
                            Post::Answer { text, .. } => Some(AnswerView {
                                library_name: name_of(&names, &a.author),
                                own: a.author == own,
                                text: text.clone(),
                                when: show_time(a.body.time_ms),
                            }),
                            _ => None,
                        })
                        .collect(),
                });
            }
            _ => {}
        }
    }
    out.trainings.sort_by(|a, b| {
        (a.past, a.training.starts_ms)
            .cmp(&(b.past, b.training.starts_ms))
            .then_with(|| {
                if a.past {
                    b.training.starts_ms.cmp(&a.training.starts_ms)
                } else {
                    std::cmp::Ordering::Equal
                }
            })
    });
    out.skills
        .sort_by(|a, b| (!a.own, &a.library_name).cmp(&(!b.own, &b.library_name)));
    out.asks.reverse();
    let all: Vec<Signed<StaffPost>> = posts.into_iter().map(|(_, p)| p).collect();
    // The last twelve months, and the trainings planned ahead.
    out.figures = figures(&all, now.saturating_sub(365 * 86_400_000), u64::MAX, now);
    out.message = format!(
        "{} training(s), {} skills director(ies), {} question(s).",
        out.trainings.len(),
        out.skills.len(),
        out.asks.len()
    );
    Ok(out)
}

/// A text from a form or a terminal as posts keep it: line breaks as `\n`.
fn lines(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

fn publish(
    library: &Library,
    id: &Hash32,
    item: String,
    post: Post,
    withdrawn: bool,
) -> Result<Signed<StaffPost>, LibraryError> {
    let post = match post {
        Post::Training(t) => Post::Training(Training {
            description: lines(&t.description),
            ..t
        }),
        Post::Ask { topic, question } => Post::Ask {
            topic,
            question: lines(&question),
        },
        Post::Answer { ask, text } => Post::Answer {
            ask,
            text: lines(&text),
        },
        other => other,
    };
    Ok(library.consortia().publish_staff(
        id,
        StaffPost {
            consortium: *id,
            item,
            post,
            withdrawn,
            time_ms: library.now_ms(),
        },
    )?)
}

fn own_training(
    library: &Library,
    reference: &str,
) -> Result<(Hash32, Signed<StaffPost>, Training), LibraryError> {
    let (id, post) = find(library, reference, "training", |p| {
        matches!(p, Post::Training(_))
    })?;
    if post.author != library.id() {
        return Err(StaffError::Invalid(format!(
            "training {reference} is another library's: only its organiser changes it"
        ))
        .into());
    }
    let Post::Training(training) = post.body.post.clone() else {
        return Err(StaffError::NotFound(format!("training {reference:?}")).into());
    };
    Ok((id, post, training))
}

/// Carries out a request.
pub fn execute(library: &Library, request: StaffRequest) -> Result<StaffAnswer, LibraryError> {
    let done = |message: String| -> Result<StaffAnswer, LibraryError> {
        let mut answer = list(library)?;
        answer.message = message;
        Ok(answer)
    };
    match request {
        StaffRequest::List => list(library),
        StaffRequest::AddTraining {
            consortium,
            mut training,
        } => {
            let id = library.consortia().resolve(consortium.as_deref())?;
            training.attended = None;
            let post = publish(
                library,
                &id,
                random_item("t"),
                Post::Training(training),
                false,
            )?;
            done(format!(
                "Training {} posted to the partners.",
                reference(library, &post)
            ))
        }
        StaffRequest::Held { training, attended } => {
            let (id, post, mut t) = own_training(library, &training)?;
            t.attended = Some(attended);
            publish(library, &id, post.body.item, Post::Training(t), false)?;
            done(format!(
                "Training {training} recorded as held, {attended} attended."
            ))
        }
        StaffRequest::Cancel { training } => {
            let (id, post, t) = own_training(library, &training)?;
            publish(library, &id, post.body.item, Post::Training(t), true)?;
            done(format!("Training {training} cancelled."))
        }
        StaffRequest::Signup {
            training,
            attendees,
        } => {
            let (id, post) = find(library, &training, "training", |p| {
                matches!(p, Post::Training(_))
            })?;
            let target = StaffPost::reference(&post);
            publish(
                library,
                &id,
                signup_item(&target),
                Post::Signup {
                    training: target,
                    attendees: attendees.max(1),
                },
                attendees == 0,
            )?;
            done(if attendees == 0 {
                format!("Sign-up for {training} taken back.")
            } else {
                format!("Signed up {attendees} for {training}.")
            })
        }
        StaffRequest::SetSkills { people } => {
            let ids = staff_consortia(library);
            if ids.is_empty() {
                return Err(LibraryError::Consortium(ConsortiumError::Refused(
                    crate::consortium::Refusal::NoStaffDevelopment,
                )));
            }
            for id in &ids {
                publish(
                    library,
                    id,
                    SKILLS_ITEM.into(),
                    Post::Skills(people.clone()),
                    false,
                )?;
            }
            done(format!(
                "The skills directory ({} people) is shared with the partners.",
                people.len()
            ))
        }
        StaffRequest::Ask {
            consortium,
            topic,
            question,
        } => {
            let id = library.consortia().resolve(consortium.as_deref())?;
            let post = publish(
                library,
                &id,
                random_item("q"),
                Post::Ask { topic, question },
                false,
            )?;
            done(format!(
                "Question {} sent to the partners.",
                reference(library, &post)
            ))
        }
        StaffRequest::Answer { ask, text } => {
            let (id, post) = find(library, &ask, "question", |p| matches!(p, Post::Ask { .. }))?;
            let target = StaffPost::reference(&post);
            publish(
                library,
                &id,
                answer_item(&target),
                Post::Answer { ask: target, text },
                false,
            )?;
            done(format!("Answer to {ask} sent."))
        }
    }
}
