//! `jalin training`, `jalin skills`, `jalin support`: staff development (pengembangan SDM)
//! with the partners.

use crate::backend::Backend;
use clap::Subcommand;
use jalin_node::staff::{parse_time, StaffAnswer, StaffRequest};
use jalin_protocol::consortium::staff::{Person, Training};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum TrainingAction {
    /// Post a training this library organises.
    Add {
        /// What ("Katalogisasi dengan MARC 21").
        #[arg(long)]
        title: String,
        /// When it starts: YYYY-MM-DD HH:MM (WIB), or RFC 3339 with an offset.
        #[arg(long)]
        starts: String,
        /// How long, in minutes.
        #[arg(long, default_value_t = 120)]
        minutes: u32,
        /// Where.
        #[arg(long, default_value = "")]
        place: String,
        /// Online (give the link or group in --place or --description).
        #[arg(long)]
        online: bool,
        /// Who leads it.
        #[arg(long)]
        leader: String,
        /// For whom.
        #[arg(long, default_value = "")]
        audience: String,
        /// Seats, if limited.
        #[arg(long)]
        seats: Option<u32>,
        /// What it is about, what to bring.
        #[arg(long, default_value = "")]
        description: String,
        /// The consortium.
        #[arg(long)]
        consortium: Option<String>,
    },
    /// The training calendar: coming trainings first, with who signed up.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sign this library's staff up for a training (--people 0 takes it back).
    Signup {
        /// The training (CODE/ITEM, as `list` shows it).
        training: String,
        /// How many of this library's staff come.
        #[arg(long, default_value_t = 1)]
        people: u32,
    },
    /// Record one of this library's trainings as held, with how many attended.
    Held {
        /// The training (CODE/ITEM).
        training: String,
        /// People who attended.
        #[arg(long)]
        attended: u32,
    },
    /// Cancel one of this library's trainings.
    Cancel {
        /// The training (CODE/ITEM).
        training: String,
    },
}

#[derive(Subcommand)]
pub enum SkillsAction {
    /// Set this library's skills directory: who can help with what.
    Set {
        /// A person: "NAME=TOPIC,TOPIC" or "NAME=TOPIC,TOPIC;CONTACT" (repeat for each).
        #[arg(long = "person", required = true)]
        people: Vec<String>,
    },
    /// Every partner's skills directory.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum SupportAction {
    /// Ask the partners for help.
    Ask {
        /// On what ("MARC 245", "impor SLiMS").
        #[arg(long)]
        topic: String,
        /// The question.
        question: String,
        /// The consortium.
        #[arg(long)]
        consortium: Option<String>,
    },
    /// Answer a partner's question.
    Answer {
        /// The question (CODE/ITEM, as `list` shows it).
        ask: String,
        /// The answer.
        text: String,
    },
    /// The questions and their answers, newest first.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn person(text: &str) -> anyhow::Result<Person> {
    let (name, rest) = text
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("{text:?}: write a person as NAME=TOPIC,TOPIC[;CONTACT]"))?;
    let (topics, contact) = rest.split_once(';').unwrap_or((rest, ""));
    Ok(Person {
        name: name.trim().to_string(),
        topics: topics
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect(),
        contact: contact.trim().to_string(),
    })
}

fn print_trainings(answer: &StaffAnswer) {
    if !answer.on {
        println!("No partnership here has an agreement in force with staff_development = true.");
    }
    for t in &answer.trainings {
        let tr = &t.training;
        println!(
            "{}  {}  {} ({} min), {}{}",
            t.reference,
            t.when,
            tr.title,
            tr.minutes,
            if tr.online { "online " } else { "" },
            tr.place
        );
        println!(
            "    by {} for {}; led by {}{}",
            t.library_name,
            if tr.audience.is_empty() {
                "everyone"
            } else {
                &tr.audience
            },
            tr.leader,
            tr.seats.map(|s| format!("; {s} seats")).unwrap_or_default()
        );
        let signed: Vec<String> = t
            .signups
            .iter()
            .map(|(name, n)| format!("{name} ({n})"))
            .collect();
        println!(
            "    signed up: {} librar{}, {} people{}{}",
            t.signups.len(),
            if t.signups.len() == 1 { "y" } else { "ies" },
            t.people,
            if signed.is_empty() {
                String::new()
            } else {
                format!(": {}", signed.join(", "))
            },
            match tr.attended {
                Some(n) => format!("; held, {n} attended"),
                None if t.past => "; past, attendance not recorded".to_string(),
                None => String::new(),
            }
        );
    }
}

fn print_asks(answer: &StaffAnswer) {
    for ask in &answer.asks {
        println!(
            "{}  {}  [{}] {}: {}",
            ask.reference, ask.when, ask.topic, ask.library_name, ask.question
        );
        for a in &ask.answers {
            println!("    {} ({}): {}", a.library_name, a.when, a.text);
        }
        if ask.answers.is_empty() {
            println!("    no answer yet");
        }
    }
}

fn print_figures(answer: &StaffAnswer) {
    let f = &answer.figures;
    println!(
        "Since 12 months ago (trainings ahead included): {} training(s) planned, {} held ({} attended), {} planned and not held; \
         {} sign-up(s); {} question(s), {} answered{}.",
        f.trainings_planned,
        f.trainings_held,
        f.attendance,
        f.trainings_not_held,
        f.signups,
        f.help_requests,
        f.help_answered,
        f.median_hours_to_answer
            .map(|h| format!(", median {h:.1} h to a first answer"))
            .unwrap_or_default()
    );
}

fn json_or(
    answer: &StaffAnswer,
    json: bool,
    text: impl Fn(&StaffAnswer),
) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(answer)?);
    } else {
        text(answer);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn training(backend: Backend, action: TrainingAction) -> anyhow::Result<ExitCode> {
    let answer = match action {
        TrainingAction::Add {
            title,
            starts,
            minutes,
            place,
            online,
            leader,
            audience,
            seats,
            description,
            consortium,
        } => backend.staff(StaffRequest::AddTraining {
            consortium,
            training: Training {
                title,
                description,
                starts_ms: parse_time(&starts)?,
                minutes,
                place,
                online,
                leader,
                audience,
                seats,
                attended: None,
            },
        })?,
        TrainingAction::List { json } => {
            let answer = backend.staff(StaffRequest::List)?;
            return json_or(&answer, json, |a| {
                print_trainings(a);
                print_figures(a);
            });
        }
        TrainingAction::Signup { training, people } => backend.staff(StaffRequest::Signup {
            training,
            attendees: people,
        })?,
        TrainingAction::Held { training, attended } => {
            backend.staff(StaffRequest::Held { training, attended })?
        }
        TrainingAction::Cancel { training } => backend.staff(StaffRequest::Cancel { training })?,
    };
    println!("{}", answer.message);
    Ok(ExitCode::SUCCESS)
}

pub fn skills(backend: Backend, action: SkillsAction) -> anyhow::Result<ExitCode> {
    match action {
        SkillsAction::Set { people } => {
            let people = people
                .iter()
                .map(|p| person(p))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let answer = backend.staff(StaffRequest::SetSkills { people })?;
            println!("{}", answer.message);
            Ok(ExitCode::SUCCESS)
        }
        SkillsAction::List { json } => {
            let answer = backend.staff(StaffRequest::List)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&answer.skills)?);
                return Ok(ExitCode::SUCCESS);
            }
            for directory in &answer.skills {
                println!("{}", directory.library_name);
                for p in &directory.people {
                    println!(
                        "    {}: {}{}",
                        p.name,
                        p.topics.join(", "),
                        if p.contact.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", p.contact)
                        }
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn support(backend: Backend, action: SupportAction) -> anyhow::Result<ExitCode> {
    let answer = match action {
        SupportAction::Ask {
            topic,
            question,
            consortium,
        } => backend.staff(StaffRequest::Ask {
            consortium,
            topic,
            question,
        })?,
        SupportAction::Answer { ask, text } => backend.staff(StaffRequest::Answer { ask, text })?,
        SupportAction::List { json } => {
            let answer = backend.staff(StaffRequest::List)?;
            return json_or(&answer, json, |a| {
                print_asks(a);
                print_figures(a);
            });
        }
    };
    println!("{}", answer.message);
    Ok(ExitCode::SUCCESS)
}
