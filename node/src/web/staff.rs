//! The staff development page (pengembangan SDM): the training calendar with sign-ups,
//! the partners' skills directory, help asked and answered, and their figures with what
//! each counts.

use super::*;
use crate::server::heavy;
use crate::staff::{self, parse_time, StaffRequest};
use jalin_protocol::consortium::staff::{Person, Training};

/// `GET /librarian/staff`.
pub(super) async fn staff_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/staff");
    if let Err(response) = visitor.librarian() {
        return *response;
    }
    let library = state.library.clone();
    match heavy(&state, move || Ok(staff::list(&library)?)).await {
        Ok(answer) => {
            let own_skills = answer
                .skills
                .iter()
                .find(|s| s.own)
                .map(|s| {
                    s.people
                        .iter()
                        .map(|p| {
                            let mut line = format!("{}={}", p.name, p.topics.join(", "));
                            if !p.contact.is_empty() {
                                line.push(';');
                                line.push_str(&p.contact);
                            }
                            line
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default();
            visitor.page(
                &state,
                "staff.html",
                &visitor.t("staff_title"),
                context! {
                    staff => Value::from_serialize(&answer),
                    median => answer.figures.median_hours_to_answer.map(|h| format!("{h:.1}")),
                    own_skills => own_skills,
                },
            )
        }
        Err(e) => visitor.failure(&state, &e),
    }
}

/// Reads the skills form: one person a line, `NAME=TOPIC, TOPIC;CONTACT`.
fn people(text: &str) -> Vec<Person> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (name, rest) = line.split_once('=').unwrap_or((line, ""));
            let (topics, contact) = rest.split_once(';').unwrap_or((rest, ""));
            Person {
                name: name.trim().to_string(),
                topics: topics
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect(),
                contact: contact.trim().to_string(),
            }
        })
        .collect()
}

fn number(form: &HashMap<String, String>, name: &str) -> Option<u32> {
    field(form, name).parse().ok()
}

/// `POST /librarian/staff/{action}`: add a training, sign up, record one held, cancel,
/// set the skills, ask, answer.
pub(super) async fn staff_action(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(action): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/staff");
    if let Err(response) = visitor.check_form(&state, &form) {
        return *response;
    }
    let f = |name: &str| field(&form, name);
    let request = match action.as_str() {
        "training" => {
            let starts = match parse_time(&f("starts")) {
                Ok(ms) => ms,
                Err(e) => {
                    return visitor.failure(&state, &LibraryError::from(e).into());
                }
            };
            StaffRequest::AddTraining {
                consortium: None,
                training: Training {
                    title: f("title"),
                    description: form.get("description").cloned().unwrap_or_default(),
                    starts_ms: starts,
                    minutes: number(&form, "minutes").unwrap_or(120),
                    place: f("place"),
                    online: form.contains_key("online"),
                    leader: f("leader"),
                    audience: f("audience"),
                    seats: number(&form, "seats"),
                    attended: None,
                },
            }
        }
        "signup" => StaffRequest::Signup {
            training: f("training"),
            attendees: number(&form, "people").unwrap_or(1),
        },
        "held" => StaffRequest::Held {
            training: f("training"),
            attended: number(&form, "attended").unwrap_or(0),
        },
        "cancel" => StaffRequest::Cancel {
            training: f("training"),
        },
        "skills" => StaffRequest::SetSkills {
            people: people(&form.get("people").cloned().unwrap_or_default()),
        },
        "ask" => StaffRequest::Ask {
            consortium: None,
            topic: f("topic"),
            question: form.get("question").cloned().unwrap_or_default(),
        },
        "answer" => StaffRequest::Answer {
            ask: f("ask"),
            text: form.get("text").cloned().unwrap_or_default(),
        },
        other => {
            return visitor.error(
                &state,
                StatusCode::NOT_FOUND,
                &format!("{} {other:?}", visitor.t("error_no_action")),
            )
        }
    };
    let library = state.library.clone();
    let anchor = match action.as_str() {
        "skills" => "#skills",
        "ask" | "answer" => "#help",
        _ => "#calendar",
    };
    match heavy(&state, move || Ok(staff::execute(&library, request)?)).await {
        Ok(_) => redirect(&format!("/librarian/staff{anchor}")),
        Err(e) => visitor.failure(&state, &e),
    }
}
