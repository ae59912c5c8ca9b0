//! Librarians' sessions: login with the node's API token, logout, the session table.

use super::*;

pub(super) struct Session {
    pub(super) csrf: String,
    pub(super) expires_ms: u64,
}

pub(super) async fn login_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/login");
    let next = local_path(query.get("next").map(String::as_str));
    visitor.page(
        &state,
        "login.html",
        &visitor.t("login_title"),
        context! { next => next, notice => query.contains_key("next").then(|| visitor.t("login_needed")) },
    )
}

pub(super) async fn login(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/login");
    let given = form.get("token").map_or("", |t| t.trim());
    let matches = crate::server::same_secret(given, &state.api_token);
    let (id, csrf) = (random_hex(), random_hex());
    if !matches || id.is_empty() || csrf.is_empty() {
        return visitor.page_with(
            &state,
            "login.html",
            &visitor.t("login_title"),
            context! { failed => true, next => local_path(form.get("next").map(String::as_str)) },
            // The form again, with what was wrong: a page, not a failed request.
            StatusCode::OK,
        );
    }
    let now = crate::server::now_ms();
    let mut sessions = state.web.sessions.lock().unwrap_or_else(|p| p.into_inner());
    sessions.retain(|_, s| s.expires_ms > now);
    // A full table gives up its oldest session: a login never fails for want of room,
    // and logging in again and again cannot grow the node's memory.
    if sessions.len() >= SESSIONS_MAX {
        if let Some(oldest) = sessions
            .iter()
            .min_by_key(|(_, s)| s.expires_ms)
            .map(|(id, _)| id.clone())
        {
            sessions.remove(&oldest);
        }
    }
    sessions.insert(
        id.clone(),
        Session {
            csrf,
            expires_ms: now + SESSION_MS,
        },
    );
    drop(sessions);
    let next = local_path(form.get("next").map(String::as_str));
    let next = if next == "/" {
        "/librarian".to_string()
    } else {
        next
    };
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, next),
            (
                header::SET_COOKIE,
                format!(
                    "{}={id}; Path=/; HttpOnly; SameSite=Strict",
                    session_cookie(&headers)
                ),
            ),
        ],
    )
        .into_response()
}

pub(super) async fn logout(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/");
    if let Err(response) = visitor.check_form(&state, &form) {
        return *response;
    }
    if let Some(id) = cookie(&headers, &session_cookie(&headers)) {
        state
            .web
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/".to_string()),
            (
                header::SET_COOKIE,
                format!(
                    "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict",
                    session_cookie(&headers)
                ),
            ),
        ],
    )
        .into_response()
}
