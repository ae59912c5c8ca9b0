//! The web interface, served by every node beside its API: the union catalog for patrons
//! (no login), and the node for its librarians (login with the node's API token).
//!
//! Pages are made on the server (minijinja templates in `node/web/templates`, compiled
//! into the binary) and work without JavaScript: a slow old PC, no internet, a phone. All
//! text comes from `node/web/i18n/{id,en}.json`; Bahasa Indonesia unless the reader
//! chose English (a cookie). Forms that change anything need the session's CSRF token.
//! Errors are pages that say what went wrong in words, never a trace.

use crate::consortium::ConsortiumError;
use crate::library::LibraryError;
use crate::server::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use jalin_protocol::consortium::document::Hash32;
use minijinja::{context, Environment, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

mod bundle;
mod catalog;
mod collection;
mod consortium;
pub mod evaluation;
mod ill;
mod import;
mod needs;
mod partners;
mod plans;
mod session;
mod staff;
mod survey;

use catalog::{
    delete_record, edit_page, edit_save, record_export, record_page, search_page, status_page,
};
use consortium::{
    agreement_amend, agreement_export, agreement_page, agreement_sign, consortium_action,
    consortium_page,
};
pub(crate) use import::upload_refused;
use import::{import_job_page, import_page, import_start, Job};
use session::{login, login_page, logout, Session};

const TEMPLATES: [(&str, &str); 27] = [
    ("base.html", include_str!("../../web/templates/base.html")),
    (
        "search.html",
        include_str!("../../web/templates/search.html"),
    ),
    (
        "record.html",
        include_str!("../../web/templates/record.html"),
    ),
    (
        "message.html",
        include_str!("../../web/templates/message.html"),
    ),
    ("login.html", include_str!("../../web/templates/login.html")),
    (
        "status.html",
        include_str!("../../web/templates/status.html"),
    ),
    (
        "import.html",
        include_str!("../../web/templates/import.html"),
    ),
    (
        "import_job.html",
        include_str!("../../web/templates/import_job.html"),
    ),
    ("edit.html", include_str!("../../web/templates/edit.html")),
    (
        "consortium.html",
        include_str!("../../web/templates/consortium.html"),
    ),
    (
        "agreement.html",
        include_str!("../../web/templates/agreement.html"),
    ),
    ("ill.html", include_str!("../../web/templates/ill.html")),
    (
        "ill_loan.html",
        include_str!("../../web/templates/ill_loan.html"),
    ),
    (
        "ill_print.html",
        include_str!("../../web/templates/ill_print.html"),
    ),
    ("needs.html", include_str!("../../web/templates/needs.html")),
    ("plans.html", include_str!("../../web/templates/plans.html")),
    ("staff.html", include_str!("../../web/templates/staff.html")),
    (
        "evaluation.html",
        include_str!("../../web/templates/evaluation.html"),
    ),
    (
        "evaluation_body.html",
        include_str!("../../web/templates/evaluation_body.html"),
    ),
    (
        "evaluation_print.html",
        include_str!("../../web/templates/evaluation_print.html"),
    ),
    (
        "bundle.html",
        include_str!("../../web/templates/bundle.html"),
    ),
    (
        "partners.html",
        include_str!("../../web/templates/partners.html"),
    ),
    (
        "join_preview.html",
        include_str!("../../web/templates/join_preview.html"),
    ),
    (
        "survey.html",
        include_str!("../../web/templates/survey.html"),
    ),
    (
        "survey_form.html",
        include_str!("../../web/templates/survey_form.html"),
    ),
    (
        "survey_report.html",
        include_str!("../../web/templates/survey_report.html"),
    ),
    (
        "collection.html",
        include_str!("../../web/templates/collection.html"),
    ),
];
const INVITE_TEMPLATE: (&str, &str) = (
    "invite.html",
    include_str!("../../web/templates/invite.html"),
);
const CSS: &str = include_str!("../../web/static/jalin.css");
/// The translations: language code and its strings.
pub const LANGUAGES: [(&str, &str); 2] = [
    ("id", include_str!("../../web/i18n/id.json")),
    ("en", include_str!("../../web/i18n/en.json")),
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

/// What the web interface keeps in memory: librarians' sessions and imports under way.
#[derive(Default)]
pub struct WebState {
    sessions: Mutex<HashMap<String, Session>>,
    jobs: Mutex<HashMap<String, Arc<Mutex<Job>>>>,
    /// The token of the bundle uploaded and shown, waiting to be applied.
    pending_bundle: Mutex<Option<String>>,
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
        .route("/suggest", post(needs::suggest))
        .route("/librarian/collection", get(collection::collection_page))
        .route("/librarian/collection.csv", get(collection::collection_csv))
        .route(
            "/librarian/collection/conspectus",
            post(collection::conspectus_set),
        )
        .route("/librarian/needs", get(needs::needs_page))
        .route("/librarian/needs/forget", post(needs::forget))
        .route(
            "/survey",
            get(survey::survey_page).post(survey::survey_answer),
        )
        .route("/librarian/survey", get(survey::report_page))
        .route("/librarian/survey.csv", get(survey::report_csv))
        .route("/librarian/survey/create", post(survey::create))
        .route("/librarian/survey/paper", post(survey::paper))
        .route(
            "/librarian/survey/import",
            post(survey::import).layer(axum::extract::DefaultBodyLimit::max(
                crate::survey::CSV_BYTES_MAX,
            )),
        )
        .route("/librarian/evaluation", get(evaluation::evaluation_page))
        .route("/librarian/evaluation/print", get(evaluation::print_page))
        .route("/librarian/evaluation.csv", get(evaluation::csv_file))
        .route("/librarian/evaluation.json", get(evaluation::json_file))
        .route(
            "/librarian/evaluation/{action}",
            post(evaluation::evaluation_action),
        )
        .route("/librarian/staff", get(staff::staff_page))
        .route("/librarian/staff/{action}", post(staff::staff_action))
        .route("/librarian/bundle", get(bundle::bundle_page))
        .route("/librarian/bundle/send", post(bundle::send))
        .route(
            "/librarian/bundle/receive",
            post(bundle::receive).layer(axum::extract::DefaultBodyLimit::max(upload_limit)),
        )
        .route("/librarian/bundle/apply", post(bundle::apply))
        .route("/librarian/partners", get(partners::partners_page))
        .route(
            "/librarian/partners/profile.txt",
            get(partners::profile_text),
        )
        .route("/librarian/partners/profile", post(partners::set_profile))
        .route("/librarian/partners/import", post(partners::import_text))
        .route("/librarian/partners/upload", post(partners::import_file))
        .route("/librarian/partners/forget", post(partners::forget))
        .route("/librarian/partners/invite", post(partners::invite))
        .route("/librarian/plans", get(plans::plans_page))
        .route("/librarian/plans/add", post(plans::add))
        .route("/librarian/plans/remove", post(plans::remove))
        .route(
            "/librarian/plans/import",
            post(plans::import).layer(axum::extract::DefaultBodyLimit::max(
                crate::plans::IMPORT_BYTES_MAX,
            )),
        )
        .route("/librarian/ill", get(ill::ill_page))
        .route("/librarian/ill/request", post(ill::request))
        .route("/librarian/ill/external", post(ill::external_step))
        .route("/librarian/ill/{id}", get(ill::loan_page))
        .route(
            "/librarian/ill/{id}/{step}",
            get(ill::print_page).post(ill::loan_step),
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
            ConsortiumError::Refused(crate::consortium::Refusal::NoName),
            ConsortiumError::Storage(sled::Error::Unsupported(text())),
        ];
        codes.extend(consortium.iter().map(ConsortiumError::code));
        codes.extend(
            crate::consortium::Refusal::examples()
                .iter()
                .map(crate::consortium::Refusal::code),
        );
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
            LibraryError::Consortium(ConsortiumError::Refused(crate::consortium::Refusal::NoName)),
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
            LibraryError::Plan(crate::plans::PlanError::Invalid(text())),
            LibraryError::Plan(crate::plans::PlanError::NoSuchItem(text())),
            LibraryError::Plan(crate::plans::PlanError::BadFile(text())),
            LibraryError::Survey(crate::survey::SurveyError::NoSurvey),
            LibraryError::Staff(crate::staff::StaffError::Invalid(text())),
            LibraryError::Evaluation(crate::evaluation::EvaluationError::NoAgreement),
            LibraryError::Evaluation(crate::evaluation::EvaluationError::NoPeriod(text())),
            LibraryError::Evaluation(crate::evaluation::EvaluationError::Invalid(text())),
            LibraryError::Staff(crate::staff::StaffError::NotFound(text())),
            LibraryError::Profile(crate::profiles::ProfileError::Own),
            LibraryError::Profile(crate::profiles::ProfileError::Older(text())),
            LibraryError::Profile(crate::profiles::ProfileError::TooMany(1)),
            LibraryError::Profile(crate::profiles::ProfileError::Invalid(text())),
            LibraryError::Profile(crate::profiles::ProfileError::NotFound(text())),
            LibraryError::Profile(crate::profiles::ProfileError::Refused(
                jalin_protocol::consortium::document::DocError::Checksum,
            )),
            LibraryError::Profile(crate::profiles::ProfileError::Refused(
                jalin_protocol::consortium::document::DocError::NonCanonical,
            )),
            LibraryError::Profile(crate::profiles::ProfileError::Refused(
                jalin_protocol::consortium::document::DocError::Signature(
                    jalin_protocol::signing::SignatureError::BadSignature,
                ),
            )),
            LibraryError::Survey(crate::survey::SurveyError::Invalid(text())),
            LibraryError::Survey(crate::survey::SurveyError::TooManyToday(1)),
            LibraryError::Survey(crate::survey::SurveyError::BadCsv(text())),
            LibraryError::Export(jalin_protocol::format::WriteError::Io(
                std::io::Error::other(text()),
            )),
        ];
        codes.extend(library.iter().map(LibraryError::code));
        use crate::ill::LoanError;
        let loans = [
            LoanError::Ill(jalin_protocol::ill::IllError::NotAParty),
            LoanError::Ill(jalin_protocol::ill::IllError::NotNow {
                action: "Renew",
                why: text(),
            }),
            LoanError::NotFound(text()),
            LoanError::Ambiguous(text()),
            LoanError::NoLender(text()),
            LoanError::NotAllowed(text()),
            LoanError::TooManyItems { items: 2, max: 1 },
            LoanError::TooManyOpen { open: 2, max: 1 },
            LoanError::TooManyToday(201),
            LoanError::NotFromSender,
            LoanError::NotForUs,
            LoanError::Replayed,
            LoanError::UnknownTransaction,
            LoanError::PatronTooLong,
            LoanError::WrongRole("lender"),
            LoanError::Damaged(text()),
        ];
        codes.extend(loans.iter().map(LoanError::code));
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
