//! The web interface, served by every node beside its API: the union catalog for patrons
//! (no login), and the node for its librarians (login with the node's API token).
//!
//! Pages are made on the server (minijinja templates in `node/web/templates`, compiled
//! into the binary) and work without JavaScript: a slow old PC, no internet, a phone. All
//! text comes from `node/web/i18n/{id,en}.json`; Bahasa Indonesia unless the reader
//! chose English (a cookie). Forms that change anything need the session's CSRF token.
//! Errors are pages that say what went wrong in words, never a trace.

use crate::consortium::ConsortiumError;
use crate::consortium_requests::Request;
use crate::edit::Editable;
use crate::library::{ImportOptions, ImportSummary, LibraryError, Progress, Source};
use crate::server::AppState;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use jalin_protocol::consortium::document::Hash32;
use jalin_protocol::consortium::log::Role;
use jalin_protocol::format::Format;
use jalin_protocol::signing::LibraryId;
use minijinja::{context, Environment, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

const TEMPLATES: [(&str, &str); 11] = [
    ("base.html", include_str!("../web/templates/base.html")),
    ("search.html", include_str!("../web/templates/search.html")),
    ("record.html", include_str!("../web/templates/record.html")),
    (
        "message.html",
        include_str!("../web/templates/message.html"),
    ),
    ("login.html", include_str!("../web/templates/login.html")),
    ("status.html", include_str!("../web/templates/status.html")),
    ("import.html", include_str!("../web/templates/import.html")),
    (
        "import_job.html",
        include_str!("../web/templates/import_job.html"),
    ),
    ("edit.html", include_str!("../web/templates/edit.html")),
    (
        "consortium.html",
        include_str!("../web/templates/consortium.html"),
    ),
    (
        "agreement.html",
        include_str!("../web/templates/agreement.html"),
    ),
];
const INVITE_TEMPLATE: (&str, &str) = ("invite.html", include_str!("../web/templates/invite.html"));
const CSS: &str = include_str!("../web/static/jalin.css");
/// The translations: language code and its strings.
pub const LANGUAGES: [(&str, &str); 2] = [
    ("id", include_str!("../web/i18n/id.json")),
    ("en", include_str!("../web/i18n/en.json")),
];
/// The session cookie's name: with the node's port in it, since a browser sends a host's
/// cookies to every port (two nodes on one machine keep apart).
fn session_cookie(headers: &HeaderMap) -> String {
    let port = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.rsplit_once(':'))
        .map(|(_, port)| port)
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    match port {
        Some(port) => format!("jalin_session_{port}"),
        None => "jalin_session".to_string(),
    }
}
const LANG_COOKIE: &str = "jalin_lang";
/// A librarian's session lasts this long.
const SESSION_MS: u64 = 12 * 3600 * 1000;
/// Most librarians' sessions kept at once (a library has a few librarians, each with a
/// browser or two).
const SESSIONS_MAX: usize = 64;
const RESULTS_PER_PAGE: usize = 20;
/// Imports whose report the web interface keeps.
const JOBS_KEPT: usize = 32;
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES.iter().chain([&INVITE_TEMPLATE]) {
            if let Err(e) = env.add_template(name, source) {
                tracing::error!("web template {name}: {e}");
            }
        }
        env
    })
}

/// The strings of a language (Bahasa Indonesia for any other code).
pub fn strings(lang: &str) -> &'static serde_json::Map<String, serde_json::Value> {
    static PARSED: OnceLock<Vec<(String, serde_json::Map<String, serde_json::Value>)>> =
        OnceLock::new();
    let all = PARSED.get_or_init(|| {
        LANGUAGES
            .iter()
            .map(|(code, json)| {
                let map = serde_json::from_str(json).unwrap_or_else(|e| {
                    tracing::error!("translations {code}: {e}");
                    serde_json::Map::new()
                });
                (code.to_string(), map)
            })
            .collect()
    });
    all.iter()
        .find(|(code, _)| code == lang)
        .or_else(|| all.first())
        .map(|(_, map)| map)
        .unwrap_or_else(|| {
            static EMPTY: OnceLock<serde_json::Map<String, serde_json::Value>> = OnceLock::new();
            EMPTY.get_or_init(serde_json::Map::new)
        })
}

fn text(lang: &str, key: &str) -> String {
    strings(lang)
        .get(key)
        .and_then(|v| v.as_str())
        .unwrap_or(key)
        .to_string()
}

struct Session {
    csrf: String,
    expires_ms: u64,
}

/// An import started from the web, as it goes.
#[derive(Default)]
struct Job {
    file: String,
    bytes: u64,
    progress: Option<Progress>,
    /// The summary, or what failed: its kind (`LibraryError::code`) and the core's words.
    done: Option<Result<ImportSummary, (&'static str, String)>>,
}

/// What the web interface keeps in memory: librarians' sessions and imports under way.
#[derive(Default)]
pub struct WebState {
    sessions: Mutex<HashMap<String, Session>>,
    jobs: Mutex<HashMap<String, Arc<Mutex<Job>>>>,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 24];
    if getrandom::fill(&mut bytes).is_err() {
        // No randomness: a session could be guessed; refuse to make one.
        return String::new();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Who is asking, in which language, from which page.
struct Visitor {
    lang: &'static str,
    /// The session's CSRF token, when a librarian is logged in.
    csrf: Option<String>,
    path: String,
}

impl Visitor {
    fn of(state: &AppState, headers: &HeaderMap, path: &str) -> Visitor {
        let lang = match cookie(headers, LANG_COOKIE) {
            Some("en") => "en",
            _ => "id",
        };
        let now = crate::server::now_ms();
        let csrf = cookie(headers, &session_cookie(headers)).and_then(|id| {
            let mut sessions = state.web.sessions.lock().unwrap_or_else(|p| p.into_inner());
            sessions.retain(|_, s| s.expires_ms > now);
            sessions.get(id).map(|s| s.csrf.clone())
        });
        Visitor {
            lang,
            csrf,
            path: path.to_string(),
        }
    }

    fn t(&self, key: &str) -> String {
        text(self.lang, key)
    }

    /// A page: the template with the page's values and what every page needs.
    fn page(&self, state: &AppState, template: &str, title: &str, values: Value) -> Response {
        self.page_with(state, template, title, values, StatusCode::OK)
    }

    fn page_with(
        &self,
        state: &AppState,
        template: &str,
        title: &str,
        values: Value,
        status: StatusCode,
    ) -> Response {
        let config = &state.library.data().config.library;
        let base = context! {
            lang => self.lang,
            other_lang => if self.lang == "en" { "id" } else { "en" },
            tr => Value::from_serialize(strings(self.lang)),
            logged_in => self.csrf.is_some(),
            csrf => self.csrf.clone().unwrap_or_default(),
            path => self.path.clone(),
            title => title,
            library_name => format!("{} ({})", config.name, config.code),
        };
        let rendered = templates()
            .get_template(template)
            .and_then(|t| t.render(context! { ..values, ..base }));
        match rendered {
            Ok(html) => (
                status,
                [
                    (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                    (header::CACHE_CONTROL, "no-store"),
                    // Nothing from elsewhere, no script: an agreement's text or a record
                    // written by another library cannot run in this page.
                    (header::CONTENT_SECURITY_POLICY, CSP),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                ],
                html,
            )
                .into_response(),
            Err(e) => {
                tracing::error!("web page {template}: {e:#}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    self.t("error_title"),
                )
                    .into_response()
            }
        }
    }

    /// An error page: what went wrong, in words.
    fn error(&self, state: &AppState, status: StatusCode, detail: &str) -> Response {
        self.page_with(
            state,
            "message.html",
            &self.t("error_title"),
            context! { heading => self.t("error_title"), detail => detail, hint => self.t("error_back") },
            status,
        )
    }

    /// The page for a failure the node's core reported: what it means, in the visitor's
    /// language, when its kind is known, and the core's own words beneath (for whoever
    /// looks after the node).
    fn failure(&self, state: &AppState, error: &crate::server::ApiError) -> Response {
        let detail = error.to_string();
        match error.code().and_then(|code| self.explain(code)) {
            Some(explanation) => self.page_with(
                state,
                "message.html",
                &self.t("error_title"),
                context! {
                    heading => self.t("error_title"),
                    detail => explanation,
                    technical => detail,
                    hint => self.t("error_back"),
                },
                error.status(),
            ),
            None => self.error(state, error.status(), &detail),
        }
    }

    /// What a kind of failure (`invite_expired`, `marc_truncated`, ...) means, in the
    /// visitor's language, when the translations say.
    fn explain(&self, code: &str) -> Option<String> {
        self.translation(&format!("why_{code}"))
    }

    /// The translation of `key`, when there is one.
    fn translation(&self, key: &str) -> Option<String> {
        strings(self.lang)
            .get(key)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    }

    fn message(&self, state: &AppState, heading: &str, detail: Option<&str>) -> Response {
        self.page(
            state,
            "message.html",
            heading,
            context! { heading => heading, notice => detail },
        )
    }

    /// For a librarian's page: the login page instead when not logged in.
    fn librarian(&self) -> Result<String, Box<Response>> {
        match &self.csrf {
            Some(csrf) => Ok(csrf.clone()),
            None => Err(Box::new(redirect(&format!(
                "/login?next={}",
                form_urlencoded::byte_serialize(self.path.as_bytes()).collect::<String>()
            )))),
        }
    }

    /// A librarian's form: logged in, and the form's CSRF token the session's.
    fn check_form(
        &self,
        state: &AppState,
        form: &HashMap<String, String>,
    ) -> Result<(), Box<Response>> {
        let csrf = self.librarian()?;
        let given = form.get("csrf").map_or("", String::as_str);
        if !crate::server::same_secret(given, &csrf) {
            return Err(Box::new(self.error(
                state,
                StatusCode::FORBIDDEN,
                &self.t("error_csrf"),
            )));
        }
        Ok(())
    }
}

/// A form's field, trimmed ("" when absent).
fn field(form: &HashMap<String, String>, name: &str) -> String {
    form.get(name)
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

/// Only a path on this site (`/...`, not `//host`) is followed after login or a language
/// change.
fn local_path(path: Option<&str>) -> String {
    match path {
        // Browsers drop tabs and line breaks from an address (`/\t/evil.example` is
        // `//evil.example`) and read `\` as `/`: a path with any of them is not followed.
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p
                    .chars()
                    .any(|c| c.is_control() || c.is_whitespace() || c == '\\') =>
        {
            p.to_string()
        }
        _ => "/".to_string(),
    }
}

/// The web interface's routes; an import's upload may be `upload_limit` bytes.
pub fn routes(upload_limit: usize) -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(search_page))
        .route("/static/jalin.css", get(css))
        .route("/favicon.ico", get(favicon))
        .route("/lang/{code}", get(set_language))
        .route("/record/{owner}/{id}", get(record_page))
        .route("/record/{owner}/{id}/export", get(record_export))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/librarian", get(status_page))
        .route(
            "/librarian/import",
            get(import_page)
                .post(import_start)
                .layer(axum::extract::DefaultBodyLimit::max(upload_limit)),
        )
        .route("/librarian/import/{job}", get(import_job_page))
        .route(
            "/librarian/record/{id}/edit",
            get(edit_page).post(edit_save),
        )
        .route("/librarian/record/{id}/delete", post(delete_record))
        .route("/librarian/consortium", get(consortium_page))
        .route("/librarian/consortium/{action}", post(consortium_action))
        .route(
            "/librarian/agreement/{consortium}/{agreement}",
            get(agreement_page),
        )
        .route(
            "/librarian/agreement/{consortium}/{agreement}/sign",
            post(agreement_sign),
        )
        .route(
            "/librarian/agreement/{consortium}/{agreement}/amend",
            post(agreement_amend),
        )
        .route(
            "/librarian/agreement/{consortium}/{agreement}/export",
            get(agreement_export),
        )
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

/// The page for an address the node does not serve.
pub fn not_found_page(state: &AppState, headers: &HeaderMap) -> Response {
    let visitor = Visitor::of(state, headers, "/");
    let heading = visitor.t("page_not_found");
    visitor.page_with(
        state,
        "message.html",
        &heading,
        context! { heading => heading.clone(), hint => visitor.t("page_not_found_hint") },
        StatusCode::NOT_FOUND,
    )
}

/// The icon browsers ask for (pages made elsewhere, such as an agreement's export, ask).
async fn favicon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\"><rect width=\"16\" height=\"16\" fill=\"#0b5394\"/><text x=\"5\" y=\"13\" fill=\"#fff\" font-size=\"12\" font-family=\"sans-serif\">J</text></svg>",
    )
        .into_response()
}

async fn set_language(
    Path(code): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let code = if code == "en" { "en" } else { "id" };
    let back = local_path(query.get("back").map(String::as_str));
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, back),
            (
                header::SET_COOKIE,
                format!("{LANG_COOKIE}={code}; Path=/; Max-Age=31536000; SameSite=Lax"),
            ),
        ],
    )
        .into_response()
}

/// Runs blocking work (sled, tantivy) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("the node failed while doing this: {e}"))?
}

fn facet_filter(name: &str, value: &str) -> String {
    match name {
        "subject" => format!("subject:\"{}\"", value.replace('"', "")),
        "year" => format!("year:{value}"),
        "lang" => format!("lang:{value}"),
        _ => format!("class:{value}"),
    }
}

async fn search_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    // Control characters (a NUL typed into an address) are no part of a search, nor of
    // the page that shows it again.
    let q: String = query
        .get("q")
        .map(|q| {
            q.chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect()
        })
        .unwrap_or_default();
    let only = query
        .get("lib")
        .filter(|l| LibraryId::from_hex(l).is_ok())
        .cloned();
    let page: usize = query
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .clamp(1, 500);
    // A search's address: the query, maybe a library, maybe a page.
    let href = |q: &str, lib: Option<&str>, page: usize| {
        let mut out = format!("/?q={}", urlencode(q));
        if let Some(lib) = lib {
            out.push_str(&format!("&lib={lib}"));
        }
        if page > 1 {
            out.push_str(&format!("&page={page}"));
        }
        out
    };
    let visitor = Visitor::of(&state, &headers, &href(&q, only.as_deref(), page));
    let title = visitor.t("union_catalog");
    if q.trim().is_empty() {
        return visitor.page(&state, "search.html", &title, context! { q => q });
    }
    let library = state.library.clone();
    let own = library.id().to_hex();
    let (query_text, only_q) = (q.clone(), only.clone());
    let results = crate::server::heavy(&state, move || {
        let results = library.search_in(&query_text, page, RESULTS_PER_PAGE, only_q.as_deref())?;
        let names: HashMap<String, String> = library
            .library_names()
            .into_iter()
            .map(|(id, name)| (id.to_hex(), name))
            .collect();
        Ok((results, names))
    })
    .await;
    let (results, names) = match results {
        Ok(r) => r,
        Err(e) => return visitor.failure(&state, &e),
    };
    let name_of = |hex: &str| {
        names
            .get(hex)
            .cloned()
            .unwrap_or_else(|| format!("{}…", &hex[..hex.len().min(8)]))
    };
    let hits: Vec<Value> = results
        .hits
        .iter()
        .map(|hit| {
            context! {
                owner => hit.library.clone().unwrap_or_else(|| own.clone()),
                ..Value::from_serialize(hit)
            }
        })
        .collect();
    let facets: Vec<Value> = ["library", "lang", "year", "subject", "class"]
        .iter()
        .map(|name| {
            let values: Vec<Value> = results
                .facets
                .get(*name)
                .into_iter()
                .flatten()
                .map(|v| {
                    let (label, link) = if *name == "library" {
                        (name_of(&v.value), href(&q, Some(&v.value), 1))
                    } else {
                        let narrowed = format!("{q} {}", facet_filter(name, &v.value));
                        // A language by its name (MARC codes: `ind`, `jav`, ...) where the
                        // translations have it.
                        let label = match *name {
                            "lang" => visitor.translation(&format!("lang_{}", v.value)),
                            _ => None,
                        };
                        (
                            label.unwrap_or_else(|| v.value.clone()),
                            href(&narrowed, only.as_deref(), 1),
                        )
                    };
                    context! { label => label, count => v.count, href => link }
                })
                .collect();
            context! { label => visitor.t(&format!("facet_{name}")), values => values }
        })
        .collect();
    let more = page * RESULTS_PER_PAGE < results.total;
    visitor.page(
        &state,
        "search.html",
        &format!("{q} · {title}"),
        context! {
            q => q,
            page => page,
            only => only.as_deref().map(name_of),
            all_libraries => href(&q, None, 1),
            previous => (page > 1).then(|| href(&q, only.as_deref(), page - 1)),
            next => more.then(|| href(&q, only.as_deref(), page + 1)),
            first_number => (page - 1) * RESULTS_PER_PAGE + 1,
            results => context! { total => results.total, hits => hits },
            facets => facets,
        },
    )
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

async fn record_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((owner, id)): Path<(String, String)>,
) -> Response {
    let visitor = Visitor::of(
        &state,
        &headers,
        &format!("/record/{owner}/{}", urlencode(&id)),
    );
    let library = state.library.clone();
    let (owner_q, id_q) = (owner.clone(), id.clone());
    let view = blocking(move || {
        library
            .record_view(&owner_q, &id_q)
            .map_err(|e| e.to_string())
    })
    .await;
    let (stored, record, hit) = match view {
        Ok(Some(view)) => view,
        Ok(None) => {
            return visitor.page_with(
                &state,
                "message.html",
                &visitor.t("not_found"),
                context! { heading => visitor.t("not_found") },
                StatusCode::NOT_FOUND,
            )
        }
        Err(e) => return visitor.error(&state, StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let Some(record) = record else {
        return visitor.error(
            &state,
            StatusCode::INTERNAL_SERVER_ERROR,
            &visitor.t("error_record_unreadable"),
        );
    };
    let d = &record.description;
    let own = owner == state.library.id().to_hex();
    let holdings: Vec<Value> = hit
        .map(|hit| hit.holdings)
        .unwrap_or_default()
        .into_iter()
        .map(|h| {
            let fresh = h
                .last_change_ms
                .map(jalin_protocol::consortium::agreement::format_time);
            context! { fresh => fresh, ..Value::from_serialize(&h) }
        })
        .collect();
    let publication = [
        d.publication.place.clone(),
        d.publication.publisher.clone(),
        d.publication.date.clone(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(", ");
    let classes: Vec<String> = d
        .classification
        .ddc
        .iter()
        .chain(&d.classification.lcc)
        .cloned()
        .collect();
    let title = d.title.clone();
    visitor.page(
        &state,
        "record.html",
        &title,
        context! {
            d => Value::from_serialize(d),
            record_id => stored.record_id,
            owner => owner,
            own => own,
            deleted => stored.deleted,
            publication => publication,
            classes => classes,
            holdings => holdings,
        },
    )
}

async fn record_export(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((owner, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/");
    let format = query.get("format").map_or("marcxml", String::as_str);
    let Some(format) =
        Format::from_name(format).filter(|f| matches!(f, Format::Marc | Format::Marcxml))
    else {
        return visitor.error(
            &state,
            StatusCode::BAD_REQUEST,
            &visitor.t("error_export_format"),
        );
    };
    let library = state.library.clone();
    let view = blocking(move || library.record_view(&owner, &id).map_err(|e| e.to_string())).await;
    let (stored, record) = match view {
        Ok(Some((stored, Some(record), _))) => (stored, record),
        Ok(_) => return visitor.error(&state, StatusCode::NOT_FOUND, &visitor.t("not_found")),
        Err(e) => return visitor.error(&state, StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let safe: String = stored
        .record_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let (body, kind, extension) = match format {
        Format::Marc => (stored.marc, "application/marc", "mrc"),
        _ => (
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}",
                jalin_protocol::marc::marcxml::record_to_xml(&record.marc, true)
            )
            .into_bytes(),
            "application/marcxml+xml",
            "xml",
        ),
    };
    (
        [
            (header::CONTENT_TYPE, kind.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{safe}.{extension}\""),
            ),
        ],
        body,
    )
        .into_response()
}

async fn login_page(
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

async fn login(
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

async fn logout(
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

async fn status_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian");
    if let Err(response) = visitor.librarian() {
        return *response;
    }
    let library = state.library.clone();
    let status = match blocking(move || library.status().map_err(|e| e.to_string())).await {
        Ok(s) => s,
        Err(e) => return visitor.error(&state, StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let peers = match &state.net {
        Some(net) => net.peers().await.map(|p| p.len()).unwrap_or(0),
        None => 0,
    };
    let replicas: u64 = status.replicas.iter().map(|r| r.records).sum();
    visitor.page(
        &state,
        "status.html",
        &visitor.t("status_title"),
        context! {
            status => context! {
                library_name => status.name.clone(),
                library_code => status.code.clone(),
                records => status.records,
                deleted => status.deleted,
            },
            replicas => replicas,
            storage => format!("{:.1} MB", status.store_bytes as f64 / 1e6),
            version => status.version.clone(),
            network => state.net.is_some(),
            peers => peers,
        },
    )
}

async fn import_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/import");
    if let Err(response) = visitor.librarian() {
        return *response;
    }
    visitor.page(
        &state,
        "import.html",
        &visitor.t("import_title"),
        context! {},
    )
}

/// Whether an upload to `/librarian/import` is refused from its headers alone, before
/// its body is read: not logged in, or not a form with a file.
pub(crate) fn upload_refused(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let visitor = Visitor::of(state, headers, "/librarian/import");
    if let Err(response) = visitor.librarian() {
        return Some(*response);
    }
    let multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    (!multipart).then(|| {
        visitor.error(
            state,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &visitor.t("error_upload_broken"),
        )
    })
}

async fn import_start(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/import");
    let mut form = HashMap::new();
    let mut file: Option<(String, Vec<u8>)> = None;
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_string();
                if name == "file" {
                    // The form sends its CSRF token before the file: a request that does
                    // not is refused before the file is read.
                    if let Err(response) = visitor.check_form(&state, &form) {
                        return *response;
                    }
                    let file_name = field.file_name().unwrap_or("upload").to_string();
                    match field.bytes().await {
                        Ok(bytes) => file = Some((file_name, bytes.to_vec())),
                        Err(e) => {
                            return visitor.error(
                                &state,
                                StatusCode::BAD_REQUEST,
                                &format!("{} ({e})", visitor.t("error_upload_broken")),
                            )
                        }
                    }
                } else {
                    form.insert(name, field.text().await.unwrap_or_default());
                }
            }
            Ok(None) => break,
            Err(e) => {
                return visitor.error(
                    &state,
                    StatusCode::BAD_REQUEST,
                    &format!("{} ({e})", visitor.t("error_upload_broken")),
                )
            }
        }
    }
    if let Err(response) = visitor.check_form(&state, &form) {
        return *response;
    }
    let Some((file_name, bytes)) = file.filter(|(_, b)| !b.is_empty()) else {
        return visitor.error(
            &state,
            StatusCode::BAD_REQUEST,
            &visitor.t("error_upload_empty"),
        );
    };
    let format = match form.get("format").map(String::as_str) {
        None | Some("") => None,
        Some(name) => match Format::from_name(name) {
            Some(f) => Some(f),
            None => {
                return visitor.error(
                    &state,
                    StatusCode::BAD_REQUEST,
                    &format!("{} {name:?}", visitor.t("error_format_unknown")),
                )
            }
        },
    };
    let job_id = random_hex();
    let job = Arc::new(Mutex::new(Job {
        file: file_name,
        bytes: bytes.len() as u64,
        ..Job::default()
    }));
    {
        let mut jobs = state.web.jobs.lock().unwrap_or_else(|p| p.into_inner());
        // Finished imports are kept for their report; past JOBS_KEPT, finished ones are
        // forgotten (any of them: the map keeps no order).
        if jobs.len() >= JOBS_KEPT {
            let finished: Vec<String> = jobs
                .iter()
                .filter(|(_, j)| j.lock().map(|j| j.done.is_some()).unwrap_or(true))
                .map(|(id, _)| id.clone())
                .collect();
            for id in finished.iter().take(jobs.len() + 1 - JOBS_KEPT) {
                jobs.remove(id);
            }
        }
        jobs.insert(job_id.clone(), job.clone());
    }
    let admitted = match state.admission.admit().await {
        Ok(admitted) => admitted,
        Err(busy) => return visitor.failure(&state, &busy),
    };
    let library = state.library.clone();
    tokio::task::spawn_blocking(move || {
        let _admitted = admitted;
        let options = ImportOptions {
            format,
            ..ImportOptions::default()
        };
        let result = library.import(&Source::Bytes(bytes), &options, |progress| {
            job.lock().unwrap_or_else(|p| p.into_inner()).progress = Some(progress.clone());
        });
        job.lock().unwrap_or_else(|p| p.into_inner()).done =
            Some(result.map_err(|e: LibraryError| (e.code(), e.to_string())));
    });
    redirect(&format!("/librarian/import/{job_id}"))
}

async fn import_job_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(job_id): Path<String>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/import");
    if let Err(response) = visitor.librarian() {
        return *response;
    }
    let job = state
        .web
        .jobs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&job_id)
        .cloned();
    let Some(job) = job else {
        return visitor.error(&state, StatusCode::NOT_FOUND, &visitor.t("error_no_import"));
    };
    let job = job.lock().unwrap_or_else(|p| p.into_inner());
    let title = visitor.t("import_title");
    match &job.done {
        None => {
            let (read, bytes_read) = job
                .progress
                .as_ref()
                .map_or((0, 0), |p| (p.read, p.bytes.unwrap_or(0)));
            let percent = (bytes_read * 100)
                .checked_div(job.bytes)
                .unwrap_or(0)
                .min(100);
            visitor.page(
                &state,
                "import_job.html",
                &title,
                context! { running => true, read => read, percent => percent },
            )
        }
        Some(Ok(summary)) => visitor.page(
            &state,
            "import_job.html",
            &title,
            context! { s => Value::from_serialize(summary), file => job.file.clone() },
        ),
        Some(Err((code, failure))) => visitor.page(
            &state,
            "import_job.html",
            &title,
            match visitor.explain(code) {
                Some(explanation) => context! { failure => explanation, technical => failure },
                None => context! { failure => failure },
            },
        ),
    }
}

async fn edit_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let visitor = Visitor::of(
        &state,
        &headers,
        &format!("/librarian/record/{}/edit", urlencode(&id)),
    );
    if let Err(response) = visitor.librarian() {
        return *response;
    }
    let library = state.library.clone();
    let id_q = id.clone();
    let found = blocking(move || library.get(&id_q).map_err(|e| e.to_string())).await;
    let record = match found {
        Ok(Some((_, Some(record)))) => record,
        Ok(_) => return visitor.error(&state, StatusCode::NOT_FOUND, &visitor.t("not_found")),
        Err(e) => return visitor.error(&state, StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let shown = Editable::of(&record.description);
    visitor.page(
        &state,
        "edit.html",
        &visitor.t("edit_title"),
        context! {
            record_id => id,
            subjects => shown.subjects_text(),
            e => Value::from_serialize(&shown),
        },
    )
}

async fn edit_save(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian");
    if let Err(response) = visitor.check_form(&state, &form) {
        return *response;
    }
    let field = |name: &str| field(&form, name);
    let edited = Editable {
        title: field("title"),
        subtitle: field("subtitle"),
        author: field("author"),
        publisher: field("publisher"),
        year: field("year"),
        call_number: field("call_number"),
        subjects: Editable::parse_subjects(&field("subjects")),
    };
    let (title, year) = (&edited.title, &edited.year);
    if title.is_empty() {
        return visitor.error(
            &state,
            StatusCode::BAD_REQUEST,
            &visitor.t("error_title_required"),
        );
    }
    let four_digits = year.len() == 4 && year.bytes().all(|b| b.is_ascii_digit());
    if !year.is_empty() && !four_digits {
        return visitor.error(
            &state,
            StatusCode::BAD_REQUEST,
            &format!("{} {year:?}", visitor.t("error_year")),
        );
    }
    let library = state.library.clone();
    let id_q = id.clone();
    let saved = blocking(move || {
        let Some((_, Some(record))) = library.get(&id_q).map_err(|e| e.to_string())? else {
            return Err("there is no such record".to_string());
        };
        let mut marc = record.marc;
        // The record keeps its id, also one derived from its title for want of a 001.
        if marc.control("001").is_none_or(|v| v.trim().is_empty()) {
            marc.set_control("001", &id_q);
        }
        // Only what the librarian changed is written (against what the form showed).
        crate::edit::apply(&mut marc, &Editable::of(&record.description), &edited);
        library.put(marc).map_err(|e| e.to_string())
    })
    .await;
    match saved {
        Ok(_) => redirect(&format!(
            "/record/{}/{}",
            state.library.id().to_hex(),
            urlencode(&id)
        )),
        Err(e) => visitor.error(&state, StatusCode::UNPROCESSABLE_ENTITY, &e),
    }
}

async fn delete_record(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian");
    if let Err(response) = visitor.check_form(&state, &form) {
        return *response;
    }
    let library = state.library.clone();
    match blocking(move || library.delete(&id).map_err(|e| e.to_string())).await {
        Ok(()) => visitor.message(&state, &visitor.t("deleted"), None),
        Err(e) => visitor.error(&state, StatusCode::UNPROCESSABLE_ENTITY, &e),
    }
}

async fn consortium_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/consortium");
    if let Err(response) = visitor.librarian() {
        return *response;
    }
    let library = state.library.clone();
    let built = blocking(move || {
        let consortia = &library.consortia();
        let own = library.id();
        let mut out = Vec::new();
        for summary in consortia.list() {
            let members = consortia.members(&summary.id).map_err(|e| e.to_string())?;
            let held = consortia.get(&summary.id).map_err(|e| e.to_string())?;
            let rows: Vec<Value> = members
                .members
                .values()
                .map(|m| {
                    let fresh = library.freshness(&m.library);
                    let records = library.store().count_of(&m.library).map(|(live, _)| live).unwrap_or(0);
                    context! {
                        name => m.name.clone(),
                        code => m.code.clone(),
                        role => m.role.to_string(),
                        key => m.library.to_hex(),
                        own => m.library == own,
                        since => jalin_protocol::consortium::agreement::format_time(m.added_ms),
                        last_seen => fresh.last_seen_ms.map(jalin_protocol::consortium::agreement::format_time),
                        records => records,
                    }
                })
                .collect();
            let agreements: Vec<Value> = held
                .agreements
                .ids()
                .into_iter()
                .map(|aid| {
                    let title = held.agreements.versions.get(&aid).map(|v| v.body.title.clone()).unwrap_or_default();
                    let in_force = held
                        .agreements
                        .status(&aid, &held.log.state())
                        .is_some_and(|s| s.in_force.is_some());
                    context! { id => aid.to_hex(), title => title, in_force => in_force }
                })
                .collect();
            out.push(context! {
                id => summary.id.to_hex(),
                name => summary.name.clone(),
                admin => summary.role == Some(Role::Admin),
                members => rows,
                agreements => agreements,
            });
        }
        Ok(out)
    })
    .await;
    match built {
        Ok(consortia) => visitor.page(
            &state,
            "consortium.html",
            &visitor.t("consortium_title"),
            context! { consortia => consortia },
        ),
        Err(e) => visitor.error(&state, StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

fn qr_svg(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(256, 256)
            .build(),
    )
}

async fn consortium_action(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(action): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/consortium");
    if let Err(response) = visitor.check_form(&state, &form) {
        return *response;
    }
    let field = |name: &str| field(&form, name);
    let consortium = form.get("consortium").cloned();
    let request = match action.as_str() {
        "create" => Request::Create {
            name: field("name"),
        },
        "invite" => Request::Invite {
            consortium,
            role: if field("role") == "admin" {
                Role::Admin
            } else {
                Role::Member
            },
            expires_s: field("days").parse::<u64>().unwrap_or(14).clamp(1, 90) * 86_400,
            note: String::new(),
        },
        "accept" => Request::Accept {
            acceptance: field("acceptance"),
        },
        "remove" => Request::Remove {
            consortium,
            member: field("member"),
            reason: field("reason"),
        },
        "draft" => Request::Draft {
            consortium,
            text: form.get("text").cloned().unwrap_or_default(),
        },
        "join" => return join(&state, &visitor, &field("ticket")).await,
        other => {
            return visitor.error(
                &state,
                StatusCode::NOT_FOUND,
                &format!("{} {other:?}", visitor.t("error_no_action")),
            )
        }
    };
    match crate::server::run_request(&state, request).await {
        Ok(answer) if action == "invite" => {
            let ticket = answer.text.unwrap_or_default();
            visitor.page(
                &state,
                "invite.html",
                &visitor.t("invite_title"),
                context! { qr_svg => qr_svg(&ticket).unwrap_or_default(), ticket => ticket },
            )
        }
        Ok(_) => redirect("/librarian/consortium"),
        Err(e) => visitor.failure(&state, &e),
    }
}

/// Joins with a ticket: the acceptance goes to the inviter's node over the network, and
/// the consortium's documents come back.
async fn join(state: &Arc<AppState>, visitor: &Visitor, ticket: &str) -> Response {
    use crate::joining::{join_with_ticket, Joined};
    use crate::network::{JoinError, NetError};
    let joined = join_with_ticket(
        ticket,
        false,
        |_| {},
        |request| {
            let state = state.clone();
            async move { crate::server::run_request(&state, request).await }
        },
    )
    .await;
    match joined {
        Ok(Joined::OverNetwork { .. }) => redirect("/librarian/consortium"),
        Ok(Joined::ByHand {
            acceptance,
            failure: None,
            ..
        }) => visitor.message(state, &visitor.t("join_title"), Some(&acceptance)),
        Ok(Joined::ByHand {
            acceptance,
            failure: Some(e),
            ..
        }) => {
            // A refusal is the inviter's answer (ask for a new ticket); anything else is
            // the way there (send the acceptance by hand).
            let (status, words) = match &e {
                NetError::Join(JoinError::Refused(_)) => {
                    (StatusCode::CONFLICT, "error_join_refused")
                }
                _ => (StatusCode::BAD_GATEWAY, "error_join_unreachable"),
            };
            visitor.error(
                state,
                status,
                &format!("{} ({e})\n{acceptance}", visitor.t(words)),
            )
        }
        Err(e) => visitor.failure(state, &e),
    }
}

/// The ids of a consortium and its agreement, from the page's path.
fn agreement_ids(
    state: &AppState,
    consortium: &str,
    agreement: &str,
) -> Result<(Hash32, Hash32), ConsortiumError> {
    let consortia = &state.library.consortia();
    let id = consortia.resolve(Some(consortium))?;
    let aid = consortia.resolve_agreement(&id, Some(agreement))?;
    Ok((id, aid))
}

async fn agreement_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((consortium, agreement)): Path<(String, String)>,
) -> Response {
    let visitor = Visitor::of(
        &state,
        &headers,
        &format!("/librarian/agreement/{consortium}/{agreement}"),
    );
    if let Err(response) = visitor.librarian() {
        return *response;
    }
    let (id, aid) = match agreement_ids(&state, &consortium, &agreement) {
        Ok(ids) => ids,
        Err(e) => return visitor.failure(&state, &e.into()),
    };
    let (status, held) = match state.library.consortia().agreement_status(&id, &aid) {
        Ok(s) => s,
        Err(e) => return visitor.failure(&state, &e.into()),
    };
    let own = state.library.id();
    let members = held.log.state();
    let name_of = |library: &LibraryId| {
        members.members.get(library).map_or_else(
            || library.fingerprint(),
            |m| format!("{} ({})", m.name, m.code),
        )
    };
    let chain = held.agreements.chain(&aid);
    let lang = visitor.lang;
    let mut versions = Vec::new();
    let mut previous: Option<&str> = None;
    for (version, (_, signed)) in status.versions.iter().zip(&chain) {
        let body = &signed.body;
        let yes_no = |b: bool| text(lang, if b { "yes" } else { "no" });
        let terms = vec![
            context! { label => text(lang, "term_union_catalog"), value => yes_no(body.terms.union_catalog) },
            context! { label => text(lang, "term_interlibrary_loan"), value => yes_no(body.terms.interlibrary_loan) },
            context! { label => text(lang, "term_coordinated_acquisition"), value => yes_no(body.terms.coordinated_acquisition) },
            context! { label => text(lang, "term_staff_development"), value => yes_no(body.terms.staff_development) },
            context! { label => text(lang, "term_loan_period_days"), value => body.terms.loan_period_days },
            context! { label => text(lang, "term_items_per_request"), value => body.terms.items_per_request },
            context! { label => text(lang, "term_evaluation_period_months"), value => body.terms.evaluation_period_months },
        ];
        let diff: Vec<Value> = previous
            .map(|before| {
                similar::TextDiff::from_lines(before, body.text.as_str())
                    .iter_all_changes()
                    .map(|change| {
                        let (kind, sign) = match change.tag() {
                            similar::ChangeTag::Insert => ("add", "+ "),
                            similar::ChangeTag::Delete => ("del", "- "),
                            similar::ChangeTag::Equal => ("same", "  "),
                        };
                        context! { kind => kind, text => format!("{sign}{}", change.value().trim_end_matches('\n')) }
                    })
                    .collect()
            })
            .unwrap_or_default();
        previous = Some(body.text.as_str());
        let signatures: Vec<Value> = version
            .signed_by
            .iter()
            .map(|(library, ms)| context! { name => name_of(library), when => jalin_protocol::consortium::agreement::format_time(*ms) })
            .collect();
        versions.push(context! {
            id => version.id.to_hex(),
            number => version.number,
            in_force => version.in_force,
            terms => terms,
            html => jalin_protocol::consortium::agreement::markdown(&body.text),
            diff => diff,
            signatures => signatures,
            signed => version.signed_by.len(),
            required => version.required,
            can_sign => members.members.contains_key(&own) && !version.signed_by.contains_key(&own),
        });
    }
    let title = chain
        .first()
        .map(|(_, v)| v.body.title.clone())
        .unwrap_or_default();
    let current_file = chain
        .last()
        .map(|(_, v)| jalin_protocol::consortium::agreement::draft_file(&v.body))
        .unwrap_or_default();
    visitor.page(
        &state,
        "agreement.html",
        &title,
        context! {
            title => title,
            consortium_name => held.log.name(),
            in_force => status.in_force.is_some(),
            versions => versions,
            consortium => id.to_hex(),
            agreement => aid.to_hex(),
            current_file => current_file,
        },
    )
}

async fn agreement_sign(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((consortium, agreement)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/consortium");
    if let Err(response) = visitor.check_form(&state, &form) {
        return *response;
    }
    let request = Request::Sign {
        consortium: Some(consortium.clone()),
        agreement: Some(agreement.clone()),
        version: form.get("version").cloned(),
    };
    match crate::server::run_request(&state, request).await {
        Ok(_) => redirect(&format!("/librarian/agreement/{consortium}/{agreement}")),
        Err(e) => visitor.failure(&state, &e),
    }
}

async fn agreement_amend(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((consortium, agreement)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/consortium");
    if let Err(response) = visitor.check_form(&state, &form) {
        return *response;
    }
    let request = Request::Amend {
        consortium: Some(consortium.clone()),
        agreement: agreement.clone(),
        text: form.get("text").cloned().unwrap_or_default(),
    };
    match crate::server::run_request(&state, request).await {
        Ok(_) => redirect(&format!("/librarian/agreement/{consortium}/{agreement}")),
        Err(e) => visitor.failure(&state, &e),
    }
}

async fn agreement_export(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((consortium, agreement)): Path<(String, String)>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/consortium");
    if let Err(response) = visitor.librarian() {
        return *response;
    }
    let request = Request::ExportAgreement {
        consortium: Some(consortium),
        agreement: Some(agreement),
    };
    match crate::server::run_request(&state, request).await {
        Ok(answer) => crate::server::agreement_page(answer.text.unwrap_or_default()),
        Err(e) => visitor.failure(&state, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_on_this_node_are_followed() {
        for kept in ["/", "/librarian", "/record/ab/12?x=1"] {
            assert_eq!(local_path(Some(kept)), kept);
        }
        for refused in [
            "//evil.example/x",
            "/\t/evil.example/x",
            "/\n/evil.example",
            "/ /evil.example",
            "/\\evil.example",
            "\\/evil.example",
            "https://evil.example",
            "evil.example",
            "",
        ] {
            assert_eq!(local_path(Some(refused)), "/", "{refused:?}");
        }
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn both_languages_have_every_string_and_every_template_parses() {
        let id = strings("id");
        let en = strings("en");
        assert!(id.len() > 100);
        let missing: Vec<_> = id
            .keys()
            .filter(|k| !en.contains_key(*k))
            .chain(en.keys().filter(|k| !id.contains_key(*k)))
            .collect();
        assert!(missing.is_empty(), "{missing:?}");
        for (name, _) in TEMPLATES.iter().chain([&INVITE_TEMPLATE]) {
            assert!(templates().get_template(name).is_ok(), "{name}");
        }
        // Every key a template uses exists.
        for (name, source) in TEMPLATES.iter().chain([&INVITE_TEMPLATE]) {
            for part in source.split("tr.").skip(1) {
                let key: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    id.contains_key(&key),
                    "{name} uses tr.{key}, which id.json lacks"
                );
            }
        }
    }

    /// Each kind of failure the core names (`code()` of its errors) has its explanation in
    /// both languages: a librarian never meets a bare English message.
    #[test]
    fn every_kind_of_failure_is_explained_in_both_languages() {
        use crate::search::SearchError;
        use crate::store::StoreError;
        use jalin_protocol::consortium::document::DocError;
        use jalin_protocol::csv::RowError;
        use jalin_protocol::format::{Location, ParseError, ParseErrorKind};
        use jalin_protocol::marc::charset::DecodeError;
        use jalin_protocol::marc::iso2709::{RecordError, WriteError};
        use jalin_protocol::marc::marcxml::XmlRecordError;
        let hash = Hash32([0; 32]);
        let text = || "x".to_string();
        let documents = [
            DocError::NotArmored { expected: text() },
            DocError::WrongKind {
                expected: text(),
                found: text(),
            },
            DocError::BadCharacter {
                position: 1,
                character: '!',
            },
            DocError::Checksum,
            DocError::TooLarge { size: 2, max: 1 },
            DocError::Malformed(text()),
            DocError::NonCanonical,
            DocError::Signature(jalin_protocol::signing::SignatureError::BadSignature),
            DocError::WrongConsortium {
                expected: hash,
                found: hash,
            },
            DocError::Expired {
                expired_ms: 0,
                at_ms: 1,
            },
            DocError::InviteUsed {
                invite: hash,
                by: hash,
            },
            DocError::Rejected(text()),
            DocError::Invalid(text()),
        ];
        let mut codes: Vec<&str> = documents.iter().map(DocError::code).collect();
        let consortium = [
            ConsortiumError::NotFound(text()),
            ConsortiumError::Refused(text()),
            ConsortiumError::Storage(sled::Error::Unsupported(text())),
        ];
        codes.extend(consortium.iter().map(ConsortiumError::code));
        let parse = [
            ParseErrorKind::Marc(RecordError::BadLength { found: text() }),
            ParseErrorKind::Marc(RecordError::Truncated {
                expected: 2,
                have: 1,
            }),
            ParseErrorKind::Marc(RecordError::NoTerminator),
            ParseErrorKind::Marc(RecordError::BadBaseAddress {
                found: text(),
                record_len: 1,
            }),
            ParseErrorKind::Marc(RecordError::BadDirectoryLength { len: 1 }),
            ParseErrorKind::Marc(RecordError::BadDirectoryEntry {
                index: 0,
                entry: text(),
            }),
            ParseErrorKind::Marc(RecordError::NoFields),
            ParseErrorKind::Marc(RecordError::Decode {
                tag: text(),
                source: DecodeError::InvalidUtf8 { offset: 0 },
            }),
            ParseErrorKind::Xml(XmlRecordError::Syntax { reason: text() }),
            ParseErrorKind::Xml(XmlRecordError::MissingTag { element: text() }),
            ParseErrorKind::Xml(XmlRecordError::MissingCode { tag: text() }),
            ParseErrorKind::Xml(XmlRecordError::BadTag { tag: text() }),
            ParseErrorKind::Xml(XmlRecordError::NoFields),
            ParseErrorKind::Csv(RowError::Syntax { reason: text() }),
            ParseErrorKind::Csv(RowError::NoTitle),
            ParseErrorKind::Csv(RowError::UnknownHeader),
            ParseErrorKind::WriteOnly,
        ];
        codes.extend(parse.iter().map(ParseErrorKind::code));
        let location = Location {
            number: 1,
            offset: 0,
            is_line: false,
        };
        let library = [
            LibraryError::Store(StoreError::Locked { path: text() }),
            LibraryError::Search(SearchError::Panicked),
            LibraryError::Consortium(ConsortiumError::Refused(text())),
            LibraryError::Io {
                path: text().into(),
                source: std::io::Error::other(text()),
            },
            LibraryError::StrictRejected {
                count: 1,
                first: ParseError {
                    location,
                    kind: ParseErrorKind::WriteOnly,
                },
            },
            LibraryError::Unwritable {
                record_id: text(),
                source: WriteError::TooLong { len: 100_000 },
            },
            LibraryError::NotFound(text()),
            LibraryError::Export(jalin_protocol::format::WriteError::Io(
                std::io::Error::other(text()),
            )),
        ];
        codes.extend(library.iter().map(LibraryError::code));
        // What an import says of a record too long to keep.
        codes.push("too_long");
        for lang in ["id", "en"] {
            let missing: Vec<&&str> = codes
                .iter()
                .filter(|code| !strings(lang).contains_key(&format!("why_{code}")))
                .collect();
            assert!(missing.is_empty(), "{lang}.json lacks why_ of {missing:?}");
        }
    }
}
