//! The librarian's interlibrary-loan pages: the queues (this library's requests and
//! those made to it, by state, each with its next steps as buttons), one loan with its
//! history, the printable pull slip and book band, and the request from a record's page.

use super::*;
use crate::ill_requests::{execute, IllAnswer, IllRequest, LoanView, SimpleStep};
use crate::server::blocking;

/// The steps a queue's row offers as a button (those that need no text).
const SIMPLE_STEPS: [&str; 9] = [
    "will_supply",
    "ship",
    "accept_conditions",
    "receive",
    "renew",
    "return",
    "checkin",
    "cancel_answer",
    "recall",
];
/// Closed loans the queues show, per queue (the most recent); every loan is in
/// `jalin ill list` and the API.
const CLOSED_SHOWN: usize = 50;

/// The steps whose form has a text field.
const WITH_TEXT: [&str; 4] = ["will_supply", "unfilled", "cancel", "notify"];

async fn run(
    state: &Arc<AppState>,
    request: IllRequest,
) -> Result<IllAnswer, crate::server::ApiError> {
    let library = state.library.clone();
    blocking(move || Ok(execute(&library, request)?)).await
}

/// `GET /librarian/ill`: the queues and the figures.
pub(super) async fn ill_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/ill");
    if let Err(response) = visitor.librarian() {
        return *response;
    }
    let listed = run(
        &state,
        IllRequest::List {
            incoming: false,
            outgoing: false,
            state: None,
        },
    )
    .await;
    let report = run(&state, IllRequest::Report { since: None }).await;
    let (listed, report) = match (listed, report) {
        (Ok(listed), Ok(report)) => (listed, report),
        (Err(e), _) | (_, Err(e)) => return visitor.failure(&state, &e),
    };
    // Open loans first (by state, in a loan's order), closed ones after.
    let mut loans = listed.loans;
    let rank = |l: &LoanView| {
        jalin_protocol::ill::Status::ALL
            .iter()
            .position(|s| s.name() == l.state)
            .unwrap_or(usize::MAX)
    };
    // The last change first within a state.
    let last = |l: &LoanView| l.events.last().map(|e| e.at.clone()).unwrap_or_default();
    loans.sort_by(|a, b| {
        (!a.overdue, rank(a))
            .cmp(&(!b.overdue, rank(b)))
            .then_with(|| last(b).cmp(&last(a)))
    });
    let closed = |l: &LoanView| {
        jalin_protocol::ill::Status::ALL
            .iter()
            .any(|s| s.name() == l.state && s.is_final())
    };
    let queue = |role: &str| -> (Vec<Value>, usize) {
        let mine: Vec<&LoanView> = loans.iter().filter(|l| l.role == role).collect();
        let mut recent: Vec<&LoanView> = mine.iter().copied().filter(|l| closed(l)).collect();
        recent.sort_by_key(|l| std::cmp::Reverse(last(l)));
        let hidden = recent.len().saturating_sub(CLOSED_SHOWN);
        let cutoff: std::collections::HashSet<&str> = recent
            .iter()
            .skip(CLOSED_SHOWN)
            .map(|l| l.id.as_str())
            .collect();
        let shown = mine
            .into_iter()
            .filter(|l| !cutoff.contains(l.id.as_str()))
            .map(Value::from_serialize)
            .collect();
        (shown, hidden)
    };
    let (outgoing, outgoing_hidden) = queue("borrower");
    let (incoming, incoming_hidden) = queue("lender");
    let queues = vec![
        context! { id => "outgoing", heading => "ill_outgoing", loans => outgoing, hidden => outgoing_hidden },
        context! { id => "incoming", heading => "ill_incoming", loans => incoming, hidden => incoming_hidden },
    ];
    visitor.page(
        &state,
        "ill.html",
        &visitor.t("ill_title"),
        context! {
            queues => queues,
            external => Value::from_serialize(&listed.external),
            report => Value::from_serialize(&report.report),
            simple => SIMPLE_STEPS.to_vec(),
        },
    )
}

/// `GET /librarian/ill/{id}`: one loan, its next steps and its history.
pub(super) async fn loan_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/ill");
    if let Err(response) = visitor.librarian() {
        return *response;
    }
    match run(&state, IllRequest::Show { id }).await {
        Ok(mut answer) => {
            let loan = answer.loans.remove(0);
            visitor.page(
                &state,
                "ill_loan.html",
                &loan.title.clone(),
                context! {
                    loan => Value::from_serialize(&loan),
                    with_text => WITH_TEXT.to_vec(),
                },
            )
        }
        Err(e) => visitor.failure(&state, &e),
    }
}

/// `GET /librarian/ill/{id}/slip` and `/band`: what the lender prints.
pub(super) async fn print_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((id, what)): Path<(String, String)>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/ill");
    if let Err(response) = visitor.librarian() {
        return *response;
    }
    let band = match what.as_str() {
        "slip" => false,
        "band" => true,
        _ => return not_found_page(&state, &headers),
    };
    let loan = match run(&state, IllRequest::Show { id }).await {
        Ok(mut answer) => answer.loans.remove(0),
        Err(e) => return visitor.failure(&state, &e),
    };
    // The call number from this library's own record, where it has one.
    let library = state.library.clone();
    let record_id = loan.record_id.clone();
    let call_number = blocking(move || Ok(library.get(&record_id)?))
        .await
        .ok()
        .flatten()
        .and_then(|(_, record)| record?.description.call_number);
    let heading = visitor.t(if band {
        "ill_band_title"
    } else {
        "ill_slip_title"
    });
    visitor.page(
        &state,
        "ill_print.html",
        &heading.clone(),
        context! {
            heading => heading,
            loan => Value::from_serialize(&loan),
            band => band,
            band_to => visitor.t(if band { "ill_lent_to" } else { "ill_for_library" }),
            call_number => call_number,
        },
    )
}

/// `POST /librarian/ill/{id}/{step}`: a step of a loan, then its page again.
pub(super) async fn loan_step(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((id, step)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/ill");
    if let Err(response) = visitor.check_form(&state, &form) {
        return *response;
    }
    let text = field(&form, "text");
    let simple = |s: SimpleStep| IllRequest::Step {
        id: id.clone(),
        step: s,
    };
    let request = match step.as_str() {
        "will_supply" => IllRequest::Answer {
            id: id.clone(),
            will_supply: true,
            unfilled: None,
            conditions: (!text.is_empty()).then_some(text),
        },
        "unfilled" => IllRequest::Answer {
            id: id.clone(),
            will_supply: false,
            unfilled: Some(text),
            conditions: None,
        },
        "accept_conditions" => IllRequest::Conditions {
            id: id.clone(),
            accept: true,
        },
        "decline_conditions" => IllRequest::Conditions {
            id: id.clone(),
            accept: false,
        },
        "cancel" => IllRequest::Cancel {
            id: id.clone(),
            reason: text,
        },
        "cancel_answer" => IllRequest::CancelAnswer {
            id: id.clone(),
            accept: true,
        },
        "notify" => IllRequest::Notify {
            id: id.clone(),
            note: text,
        },
        "ship" => simple(SimpleStep::Ship),
        "receive" => simple(SimpleStep::Receive),
        "renew" => simple(SimpleStep::Renew),
        "return" => simple(SimpleStep::Return),
        "checkin" => simple(SimpleStep::Checkin),
        "lost" => simple(SimpleStep::Lost),
        "recall" => simple(SimpleStep::Recall),
        "overdue" => simple(SimpleStep::Overdue),
        _ => {
            return visitor.error(
                &state,
                StatusCode::NOT_FOUND,
                &visitor.t("ill_unknown_step"),
            )
        }
    };
    match run(&state, request).await {
        Ok(answer) => match answer.loans.first() {
            Some(loan) => redirect(&format!("/librarian/ill/{}", loan.id)),
            None => redirect("/librarian/ill"),
        },
        Err(e) => visitor.failure(&state, &e),
    }
}

/// `POST /librarian/ill/request`: a request for a book seen on its record's page.
pub(super) async fn request(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/ill");
    if let Err(response) = visitor.check_form(&state, &form) {
        return *response;
    }
    let optional = |name: &str| Some(field(&form, name)).filter(|v| !v.is_empty());
    let request = IllRequest::Request {
        record: format!("{}:{}", field(&form, "owner"), field(&form, "record_id")),
        patron: optional("patron"),
        need_before: optional("need_before"),
        note: field(&form, "note"),
        lenders: Vec::new(),
        items: 1,
    };
    match run(&state, request).await {
        Ok(answer) => match answer.loans.first() {
            Some(loan) => redirect(&format!("/librarian/ill/{}", loan.id)),
            None => redirect("/librarian/ill"),
        },
        Err(e) => visitor.failure(&state, &e),
    }
}

/// `POST /librarian/ill/external`: a step on a request from a system outside Jalin,
/// then the queues again.
pub(super) async fn external_step(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/ill");
    if let Err(response) = visitor.check_form(&state, &form) {
        return *response;
    }
    let request = IllRequest::External {
        agency: field(&form, "agency"),
        request_id: field(&form, "request_id"),
        step: field(&form, "step"),
        text: field(&form, "text"),
    };
    match run(&state, request).await {
        Ok(_) => redirect("/librarian/ill#q-external"),
        Err(e) => visitor.failure(&state, &e),
    }
}
