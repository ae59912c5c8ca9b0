//! The purchase plan page (rencana pengadaan): this library's planned titles and its
//! partners', each with who holds or plans it; a form that flags a title already held
//! or planned before adding it; a list added from a file.

use super::import::read_file;
use super::*;
use crate::plans::{self, PlanInput, PlanRequest};
use crate::server::{blocking, heavy};
use axum::extract::Multipart;

pub(super) fn planning(library: &crate::library::Library) -> bool {
    library.consortia().list().iter().any(|c| {
        c.role.is_some()
            && library
                .consortia()
                .terms_in_force(&c.id)
                .ok()
                .flatten()
                .is_some_and(|t| t.coordinated_acquisition)
    })
}

/// The page, with `extra` (a title waiting for confirmation, a file's report) merged in.
async fn render(state: &Arc<AppState>, visitor: &Visitor, extra: Value) -> Response {
    let library = state.library.clone();
    let listed = heavy(state, move || {
        let on = planning(&library);
        let answer = plans::execute(&library, PlanRequest::List)?;
        Ok((on, answer.plans))
    })
    .await;
    match listed {
        Ok((on, all)) => {
            let (own, partners): (Vec<_>, Vec<_>) = all.into_iter().partition(|p| p.own);
            visitor.page(
                state,
                "plans.html",
                &visitor.t("plans_title"),
                context! {
                    planning => on,
                    own => Value::from_serialize(&own),
                    partners => Value::from_serialize(&partners),
                    ..extra
                },
            )
        }
        Err(e) => visitor.failure(state, &e),
    }
}

/// `GET /librarian/plans`.
pub(super) async fn plans_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/plans");
    if let Err(response) = visitor.librarian() {
        return *response;
    }
    render(&state, &visitor, context! {}).await
}

fn input_of(form: &HashMap<String, String>) -> PlanInput {
    let optional = |name: &str| Some(field(form, name)).filter(|v| !v.is_empty());
    PlanInput {
        title: field(form, "title"),
        author: optional("author"),
        isbn: optional("isbn"),
        year: optional("year").and_then(|y| y.parse().ok()),
        copies: optional("copies").and_then(|c| c.parse().ok()),
        note: optional("note"),
    }
}

/// `POST /librarian/plans/add`: adds a title, or shows who holds or plans it and asks
/// the librarian to confirm.
pub(super) async fn add(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/plans");
    if let Err(response) = visitor.check_form(&state, &form) {
        return *response;
    }
    let input = input_of(&form);
    let confirm = field(&form, "confirm") == "1";
    let library = state.library.clone();
    let asked = input.clone();
    match blocking(move || Ok(plans::add(&library, &asked, confirm)?)).await {
        Ok((Some(item), _)) => redirect(&format!("/librarian/plans#{item}")),
        Ok((None, flags)) => {
            render(
                &state,
                &visitor,
                context! {
                    pending => Value::from_serialize(&input),
                    flags => Value::from_serialize(&flags),
                },
            )
            .await
        }
        Err(e) => visitor.failure(&state, &e),
    }
}

/// `POST /librarian/plans/remove`: withdraws one of this library's planned titles.
pub(super) async fn remove(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/plans");
    if let Err(response) = visitor.check_form(&state, &form) {
        return *response;
    }
    let item = field(&form, "item");
    let library = state.library.clone();
    match blocking(move || Ok(plans::remove(&library, &item)?)).await {
        Ok(()) => redirect("/librarian/plans"),
        Err(e) => visitor.failure(&state, &e),
    }
}

/// `POST /librarian/plans/import`: adds every title of an uploaded list.
pub(super) async fn import(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/plans");
    let bytes = match read_file(&state, &visitor, &mut multipart).await {
        Ok(bytes) => bytes,
        Err(response) => return *response,
    };
    let library = state.library.clone();
    match heavy(&state, move || Ok(plans::import(&library, &bytes)?)).await {
        Ok(answer) => {
            render(
                &state,
                &visitor,
                context! { imported => Value::from_serialize(&answer) },
            )
            .await
        }
        Err(e) => visitor.failure(&state, &e),
    }
}
