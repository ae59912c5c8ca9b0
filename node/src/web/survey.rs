//! The questionnaire (angket): the patron's form on the search pages (anonymous: no
//! login, no cookie kept with the answer), and the librarian's page of results, with a
//! form for paper answers and a CSV upload.

use super::import::read_file;
use super::*;
use crate::server::blocking;
use crate::survey::{Answer, Source, Survey, SurveyRequest};
use axum::extract::Multipart;
use std::collections::BTreeMap;

/// The fields of a form as question id -> values (checkboxes send one value each).
fn fields_of(form: &[(String, String)]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in form {
        out.entry(name.clone()).or_default().push(value.clone());
    }
    out
}

/// `GET /survey`: the questionnaire, for a patron.
pub(super) async fn survey_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/survey");
    let library = state.library.clone();
    match blocking(move || Ok(library.surveys().current().map_err(LibraryError::from)?)).await {
        Ok(survey) => visitor.page(
            &state,
            "survey.html",
            &visitor.t("survey_title"),
            context! { survey => Value::from_serialize(&survey), action => "/survey" },
        ),
        Err(e) => visitor.failure(&state, &e),
    }
}

/// Takes an answer from a form: a patron's (`Source::Opac`) or a paper one.
async fn take(
    state: &Arc<AppState>,
    visitor: &Visitor,
    form: Vec<(String, String)>,
    source: Source,
) -> Result<(), Response> {
    let library = state.library.clone();
    let fields = fields_of(&form);
    blocking(move || {
        let surveys = library.surveys();
        let survey: Survey = surveys
            .current()
            .map_err(LibraryError::from)?
            .ok_or(crate::survey::SurveyError::NoSurvey)
            .map_err(LibraryError::from)?;
        let answer: Answer = survey
            .answer(&fields, source, library.now_ms())
            .map_err(LibraryError::from)?;
        surveys.take(&answer).map_err(LibraryError::from)?;
        Ok(())
    })
    .await
    .map_err(|e| visitor.failure(state, &e))
}

/// `POST /survey`: a patron's answer (from this node's own page only).
pub(super) async fn survey_answer(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/survey");
    if !super::needs::same_site(&headers) {
        return visitor.error(&state, StatusCode::FORBIDDEN, &visitor.t("error_csrf"));
    }
    if let Err(response) = take(&state, &visitor, form, Source::Opac).await {
        return response;
    }
    let heading = visitor.t("survey_thanks");
    visitor.page(
        &state,
        "message.html",
        &heading.clone(),
        context! { heading => heading, hint => visitor.t("survey_thanks_hint") },
    )
}

/// The librarian's page, with `extra` merged in.
async fn render(state: &Arc<AppState>, visitor: &Visitor, extra: Value) -> Response {
    let library = state.library.clone();
    let report = crate::server::heavy(state, move || {
        Ok(crate::survey::execute(&library, SurveyRequest::Report)?)
    })
    .await;
    match report {
        Ok(answer) => visitor.page(
            state,
            "survey_report.html",
            &visitor.t("survey_results"),
            context! {
                report => Value::from_serialize(&answer.report),
                survey => Value::from_serialize(answer.report.as_ref().map(|r| &r.survey)),
                action => "/librarian/survey/paper",
                ..extra
            },
        ),
        Err(e) => visitor.failure(state, &e),
    }
}

/// `GET /librarian/survey`: the results.
pub(super) async fn report_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/survey");
    if let Err(response) = visitor.librarian() {
        return *response;
    }
    render(&state, &visitor, context! {}).await
}

/// `GET /librarian/survey.csv`: the results as CSV.
pub(super) async fn report_csv(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/survey");
    if let Err(response) = visitor.librarian() {
        return *response;
    }
    let library = state.library.clone();
    match crate::server::heavy(&state, move || {
        Ok(crate::survey::execute(&library, SurveyRequest::Report)?)
    })
    .await
    {
        Ok(answer) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"angket.csv\"",
                ),
            ],
            answer
                .report
                .as_ref()
                .map(crate::survey::report_csv)
                .unwrap_or_default(),
        )
            .into_response(),
        Err(e) => visitor.failure(&state, &e),
    }
}

/// `POST /librarian/survey/create`: the ready questionnaire.
pub(super) async fn create(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/survey");
    if let Err(response) = visitor.check_form(&state, &form) {
        return *response;
    }
    let library = state.library.clone();
    let request = SurveyRequest::Create { definition: None };
    match blocking(move || Ok(crate::survey::execute(&library, request)?)).await {
        Ok(_) => redirect("/librarian/survey"),
        Err(e) => visitor.failure(&state, &e),
    }
}

/// `POST /librarian/survey/paper`: an answer from a paper form.
pub(super) async fn paper(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/survey");
    let single: HashMap<String, String> =
        form.iter().filter(|(k, _)| k == "csrf").cloned().collect();
    if let Err(response) = visitor.check_form(&state, &single) {
        return *response;
    }
    let answers: Vec<(String, String)> = form.into_iter().filter(|(k, _)| k != "csrf").collect();
    match take(&state, &visitor, answers, Source::Paper).await {
        Ok(()) => redirect("/librarian/survey#survey-answers"),
        Err(response) => response,
    }
}

/// `POST /librarian/survey/import`: answers from a CSV.
pub(super) async fn import(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/survey");
    let bytes = match read_file(&state, &visitor, &mut multipart).await {
        Ok(bytes) => bytes,
        Err(response) => return *response,
    };
    let library = state.library.clone();
    match crate::server::heavy(&state, move || Ok(crate::survey::import(&library, &bytes)?)).await {
        Ok(taken) => render(&state, &visitor, context! { imported => taken }).await,
        Err(e) => visitor.failure(&state, &e),
    }
}
