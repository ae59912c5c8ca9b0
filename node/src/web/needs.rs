//! What patrons look for: the "Usulkan buku" form a search that found nothing offers,
//! and the librarian's page of top searches, searches that found nothing and
//! suggestions, each set beside who holds it in the union catalog.

use super::*;
use crate::needs::{execute, NeedsRequest, Suggestion};
use crate::server::blocking;

/// Whether a form post comes from this node's own pages: a browser says where a post
/// came from (`Sec-Fetch-Site`, `Origin`); a page elsewhere may not post a patron's
/// suggestion in their name.
pub(super) fn same_site(headers: &HeaderMap) -> bool {
    let site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("same-origin");
    if !["same-origin", "none"].contains(&site) {
        return false;
    }
    match (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host),
        (Some(_), None) => false,
    }
}

/// `POST /suggest`: a patron's suggestion (no login).
pub(super) async fn suggest(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/");
    if !same_site(&headers) {
        return visitor.error(&state, StatusCode::FORBIDDEN, &visitor.t("error_csrf"));
    }
    let suggestion = Suggestion {
        at_ms: 0,
        title: field(&form, "title"),
        author: field(&form, "author"),
        why: field(&form, "why"),
        query: field(&form, "q"),
    };
    let library = state.library.clone();
    let taken = blocking(move || {
        let now = library.now_ms();
        Ok(library
            .needs()
            .suggest(suggestion, now)
            .map_err(LibraryError::from)?)
    })
    .await;
    match taken {
        Ok(_) => {
            let heading = visitor.t("suggest_thanks");
            visitor.page(
                &state,
                "message.html",
                &heading.clone(),
                context! { heading => heading, hint => visitor.t("suggest_thanks_hint") },
            )
        }
        Err(e) => visitor.failure(&state, &e),
    }
}

/// `GET /librarian/needs`: what the patrons asked for.
pub(super) async fn needs_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/needs");
    if let Err(response) = visitor.librarian() {
        return *response;
    }
    let since = query.get("since").filter(|s| !s.trim().is_empty()).cloned();
    let library = state.library.clone();
    let request = NeedsRequest::Report {
        since: since.clone(),
    };
    match crate::server::heavy(&state, move || {
        Ok((
            execute(&library, request)?,
            super::plans::planning(&library),
        ))
    })
    .await
    {
        Ok((answer, planning)) => visitor.page(
            &state,
            "needs.html",
            &visitor.t("needs_title"),
            context! {
                since => since,
                report => Value::from_serialize(&answer.report),
                held => Value::from_serialize(&answer.held),
                partners => Value::from_serialize(&answer.partners),
                keep_months => state.library.data().config.needs.keep_months,
                logging => state.library.data().config.needs.log_searches,
                planning => planning,
            },
        ),
        Err(e) => visitor.failure(&state, &e),
    }
}

/// `POST /librarian/needs/forget`: deletes what was logged before a day.
pub(super) async fn forget(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/needs");
    if let Err(response) = visitor.check_form(&state, &form) {
        return *response;
    }
    let library = state.library.clone();
    let request = NeedsRequest::Forget {
        before: field(&form, "before"),
    };
    match blocking(move || Ok(execute(&library, request)?)).await {
        Ok(_) => redirect("/librarian/needs"),
        Err(e) => visitor.failure(&state, &e),
    }
}
