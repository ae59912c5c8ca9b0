//! The HTTP edge the API ([`crate::http`]) and the web pages ([`crate::web`]) both stand
//! on: the state they share ([`AppState`]), the node-wide admission of heavy requests
//! ([`Admission`]), the one error answer ([`ApiError`]), the checks made from a request's
//! headers before its body is read, the `Host` allow-list, and [`serve`]. `http` and `web`
//! each use this module and never each other.

use crate::consortium::ConsortiumError;
use crate::consortium_requests::{execute, Answer, Request};
use crate::library::{Library, LibraryError};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// Shared by every handler.
pub struct AppState {
    /// The library.
    pub library: Arc<Library>,
    /// The token writes need.
    pub api_token: String,
    /// The network, when the node runs one.
    pub net: Option<crate::network::NetHandle>,
    /// The web interface's sessions and imports under way.
    pub web: crate::web::WebState,
    /// How many heavy requests run and wait at once.
    pub admission: Admission,
}

impl AppState {
    /// The state of a node's HTTP edge, its limits from the library's configuration.
    pub fn new(
        library: Arc<Library>,
        api_token: String,
        net: Option<crate::network::NetHandle>,
    ) -> AppState {
        let admission = Admission::new(&library.data().config.limits);
        AppState {
            library,
            api_token,
            net,
            web: Default::default(),
            admission,
        }
    }
}

/// The node-wide limit on heavy requests (search, SRU, OAI-PMH, export, import): a few
/// run, a few more wait, the rest are told at once to come back (503, `Retry-After`).
pub struct Admission {
    running: Arc<tokio::sync::Semaphore>,
    /// Places for the running and the waiting together.
    places: Arc<tokio::sync::Semaphore>,
}

/// A heavy request's place; the work holds it until it ends (also when the client has
/// gone: the work still runs).
pub struct Admitted {
    _running: tokio::sync::OwnedSemaphorePermit,
    _place: tokio::sync::OwnedSemaphorePermit,
}

/// Seconds a client refused for load is told to wait.
const RETRY_AFTER_S: u64 = 2;

impl Admission {
    fn new(limits: &crate::config::LimitsSection) -> Admission {
        let running = limits.heavy_requests_max.max(1);
        Admission {
            running: Arc::new(tokio::sync::Semaphore::new(running)),
            places: Arc::new(tokio::sync::Semaphore::new(
                running.saturating_add(limits.heavy_requests_waiting_max),
            )),
        }
    }

    /// A place for a heavy request: at once if one is free, after a wait if a waiting
    /// place is, else a 503 the client can act on.
    pub async fn admit(&self) -> ApiResult<Admitted> {
        let busy = || {
            let mut error = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the node is busy with other searches and exports; try again in \
                     {RETRY_AFTER_S} seconds"
                ),
            )
            .with_code("busy");
            error.retry_after_s = Some(RETRY_AFTER_S);
            error
        };
        let place = self
            .places
            .clone()
            .try_acquire_owned()
            .map_err(|_| busy())?;
        let running = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| busy())?;
        Ok(Admitted {
            _running: running,
            _place: place,
        })
    }
}

/// An error answer: status and message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    pub(crate) details: Option<serde_json::Value>,
    /// What kind of failure, when the node's core said (`invite_expired`, ...).
    code: Option<&'static str>,
    /// For a 503: when to ask again.
    retry_after_s: Option<u64>,
}

impl ApiError {
    /// An error answered with `status`.
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            details: None,
            code: None,
            retry_after_s: None,
        }
    }

    /// The same, naming its kind.
    pub(crate) fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// What kind of failure this is (see `ConsortiumError::code`), when known.
    pub fn code(&self) -> Option<&'static str> {
        self.code
    }

    /// The HTTP status it answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// A 400.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.message });
        if let Some(code) = self.code {
            body["code"] = code.into();
        }
        if let Some(details) = self.details {
            body["details"] = details;
        }
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after_s {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<LibraryError> for ApiError {
    fn from(error: LibraryError) -> Self {
        let status = match &error {
            LibraryError::NotFound(_) => StatusCode::NOT_FOUND,
            LibraryError::Search(crate::search::SearchError::Limit(_)) => StatusCode::BAD_REQUEST,
            LibraryError::StrictRejected { .. } | LibraryError::Unwritable { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            LibraryError::Survey(survey) => match survey {
                crate::survey::SurveyError::NoSurvey => StatusCode::NOT_FOUND,
                crate::survey::SurveyError::TooManyToday(_) => StatusCode::TOO_MANY_REQUESTS,
                crate::survey::SurveyError::Invalid(_) | crate::survey::SurveyError::BadCsv(_) => {
                    StatusCode::BAD_REQUEST
                }
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            LibraryError::Staff(crate::staff::StaffError::NotFound(_)) => StatusCode::NOT_FOUND,
            LibraryError::Staff(_) => StatusCode::BAD_REQUEST,
            LibraryError::Evaluation(crate::evaluation::EvaluationError::NoPeriod(_)) => {
                StatusCode::NOT_FOUND
            }
            LibraryError::Evaluation(_) => StatusCode::CONFLICT,
            LibraryError::Bundle(bundle) => match bundle {
                crate::bundle::BundleFailure::NoSuchMember(_) => StatusCode::NOT_FOUND,
                crate::bundle::BundleFailure::Replayed { .. } => StatusCode::CONFLICT,
                crate::bundle::BundleFailure::NotAMember(_)
                | crate::bundle::BundleFailure::NotForUs(_)
                | crate::bundle::BundleFailure::OwnBundle => StatusCode::FORBIDDEN,
                failure if failure.is_bad_input() => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            LibraryError::Profile(profile) => match profile {
                crate::profiles::ProfileError::NotFound(_) => StatusCode::NOT_FOUND,
                crate::profiles::ProfileError::Older(_) => StatusCode::CONFLICT,
                crate::profiles::ProfileError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            },
            LibraryError::Plan(plan) => match plan {
                crate::plans::PlanError::NoSuchItem(_) => StatusCode::NOT_FOUND,
                _ => StatusCode::BAD_REQUEST,
            },
            LibraryError::Needs(needs) => match needs {
                crate::needs::NeedsError::NoTitle | crate::needs::NeedsError::BadDate(_) => {
                    StatusCode::BAD_REQUEST
                }
                crate::needs::NeedsError::TooManyToday(_) => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            LibraryError::Loan(loan) => {
                use crate::ill::LoanError;
                match loan {
                    LoanError::NotFound(_) => StatusCode::NOT_FOUND,
                    LoanError::Storage(_) | LoanError::Damaged(_) => {
                        StatusCode::INTERNAL_SERVER_ERROR
                    }
                    LoanError::Consortium(_) => StatusCode::CONFLICT,
                    LoanError::External(external) => {
                        use crate::gateway::StepError;
                        match external {
                            StepError::NotFound { .. } => StatusCode::NOT_FOUND,
                            StepError::NotNow(_) => StatusCode::BAD_REQUEST,
                            StepError::NoAddress(_) => StatusCode::CONFLICT,
                            StepError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
                        }
                    }
                    LoanError::Ill(_)
                    | LoanError::Document(_)
                    | LoanError::Ambiguous(_)
                    | LoanError::PatronTooLong => StatusCode::BAD_REQUEST,
                    _ => StatusCode::CONFLICT,
                }
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!("{error}");
        }
        ApiError::new(status, error.to_string()).with_code(error.code())
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(error: tokio::task::JoinError) -> Self {
        tracing::error!("worker task failed: {error}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the node failed while doing this; see its log",
        )
    }
}

/// What a handler returns.
pub type ApiResult<T> = Result<T, ApiError>;

/// The whole HTTP edge: the API's routes ([`crate::http::routes`]) and the web pages'
/// ([`crate::web::routes`]), an unknown address answered by [`not_found`], the body limit,
/// the checks made from the headers ([`before_the_body`]).
pub fn router(state: Arc<AppState>) -> Router {
    let upload_limit = usize::try_from(
        state
            .library
            .data()
            .config
            .limits
            .upload_size_max_mb
            .saturating_mul(MIB),
    )
    .unwrap_or(usize::MAX);
    crate::http::routes(upload_limit)
        .merge(crate::web::routes(upload_limit))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            before_the_body,
        ))
        .with_state(state)
}

/// Bytes in a MiB (`upload_size_max_mb` is in MiB).
const MIB: u64 = 1024 * 1024;

/// Largest request body but an import's: a record, a consortium document, a form.
const BODY_BYTES_MAX: usize = 1024 * 1024;

/// Whether a request carries a file to import (the routes without a time limit).
fn is_upload(method: &axum::http::Method, path: &str) -> bool {
    method == axum::http::Method::POST
        && matches!(
            path,
            "/api/import"
                | "/librarian/import"
                | "/api/plans/import"
                | "/librarian/plans/import"
                | "/api/survey/import"
                | "/librarian/survey/import"
                | "/api/bundle/import"
                | "/librarian/bundle/receive"
        )
}

/// What is decided from a request's headers alone, before its body is read: the API's
/// writes need the token (an unauthenticated upload is refused before a byte of it is
/// taken), an upload's declared length must fit, and every request but an upload has
/// `request_timeout_s` to be answered.
async fn before_the_body(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let span = tracing::debug_span!("request", %method, path);
    before_the_body_in(state, request, next, method, path)
        .instrument(span)
        .await
}

async fn before_the_body_in(
    state: Arc<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
    method: axum::http::Method,
    path: String,
) -> Response {
    // Reads are open; `/api/consortium` says in its body whether it writes (and its
    // body is small).
    let writes = !matches!(method, axum::http::Method::GET | axum::http::Method::HEAD);
    if writes && path.starts_with("/api/") && path != "/api/consortium" {
        if let Err(refused) = authorize(&state, request.headers()) {
            return refused.into_response();
        }
    }
    if is_upload(&method, &path) {
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let limit_mb = state.library.data().config.limits.upload_size_max_mb;
        if declared.is_some_and(|bytes| bytes > limit_mb.saturating_mul(MIB)) {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the upload is larger than {limit_mb} MB (upload_size_max_mb in \
                     config.toml); take the file in with `jalin {}` on the node's machine",
                    if path.contains("bundle") {
                        "bundle import"
                    } else {
                        "import"
                    }
                ),
            )
            .with_code("upload_too_large")
            .into_response();
        }
        if path.starts_with("/librarian/") {
            if let Some(refused) = crate::web::upload_refused(&state, request.headers()) {
                return refused;
            }
        }
        return next.run(request).await;
    }
    // Applying a bundle shown takes as long as the bundle is large, like an import.
    if method == axum::http::Method::POST && path == "/librarian/bundle/apply" {
        return next.run(request).await;
    }
    let limit = Duration::from_secs(state.library.data().config.limits.request_timeout_s);
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(%method, path, "request timed out");
            let mut error = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the node took longer than {} s to answer; try again later",
                    limit.as_secs()
                ),
            )
            .with_code("busy");
            error.retry_after_s = Some(RETRY_AFTER_S);
            error.into_response()
        }
    }
}

/// The names a request may give as its `Host`: loopback, the configured names, and the
/// address the node listens on when that is one address (not `0.0.0.0`).
#[derive(Clone, Debug)]
pub struct HostAllowList {
    names: Vec<String>,
}

impl HostAllowList {
    /// For a node listening on `address`, with `[http] hosts`.
    pub fn new(address: std::net::SocketAddr, configured: &[String]) -> HostAllowList {
        let mut names: Vec<String> = ["localhost", "127.0.0.1", "[::1]"]
            .iter()
            .map(|n| n.to_string())
            .collect();
        if !address.ip().is_unspecified() {
            names.push(match address.ip() {
                std::net::IpAddr::V4(ip) => ip.to_string(),
                std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            });
        }
        // A name configured with a port or a trailing dot means the name.
        names.extend(configured.iter().map(|n| {
            let n = n.trim().to_ascii_lowercase();
            let n = match n.rsplit_once(':') {
                Some((name, port))
                    if port.bytes().all(|b| b.is_ascii_digit())
                        && !name.is_empty()
                        && !name.ends_with(':') =>
                {
                    name.to_string()
                }
                _ => n,
            };
            n.trim_end_matches('.').to_string()
        }));
        HostAllowList { names }
    }

    /// Whether a `Host` header (name and maybe a port) is one of them.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        // `name:port`, `[v6]:port`, or either without a port.
        let name = match host.rsplit_once(':') {
            Some((name, port))
                if !port.is_empty()
                    && port.bytes().all(|b| b.is_ascii_digit())
                    && (!name.starts_with('[') || name.ends_with(']')) =>
            {
                name
            }
            _ => host.as_str(),
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        self.names.iter().any(|allowed| allowed == name)
            || name
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

async fn check_host(
    State(hosts): State<Arc<HostAllowList>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    // A browser always sends `Host`; a request without one cannot come from a page.
    let host = request
        .headers()
        .get(header::HOST)
        .map(|h| h.to_str().unwrap_or("\u{fffd}").to_string());
    match host {
        Some(host) if !hosts.allows(&host) => {
            tracing::warn!(host, "request for a host this node is not");
            ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "this node does not answer to {host:?}; add it to [http] hosts in \
                     config.toml to reach the node under that name"
                ),
            )
            .with_code("unknown_host")
            .into_response()
        }
        _ => next.run(request).await,
    }
}

/// An unknown address: a JSON error under `/api`, a page in words elsewhere.
async fn not_found(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    if uri.path().starts_with("/api") {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "no such API endpoint; see README.md for the API",
        )
        .into_response();
    }
    crate::web::not_found_page(&state, &headers)
}

/// Whether the request carries the node's API token.
pub(crate) fn authorize(state: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(token) if same_secret(token.trim(), &state.api_token) => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "the API token is wrong (see the data dir's api-token file)",
        )),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this needs the node's API token: Authorization: Bearer TOKEN",
        )),
    }
}

/// Whether a secret given (a token, a CSRF token) is the one expected, in time that does
/// not depend on where they differ.
pub(crate) fn same_secret(given: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// Runs blocking work (store, index) off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await?
}

/// Runs a heavy request's blocking work once the node admits it (see [`Admission`]).
pub(crate) async fn heavy<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> ApiResult<T> {
    let admitted = state.admission.admit().await?;
    blocking(move || {
        let _admitted = admitted;
        f()
    })
    .await
}

/// A listen address other machines reach, refused for want of `--expose` (or `[http]
/// expose = true`).
#[derive(Debug, thiserror::Error)]
#[error(
    "{address} is reachable from other machines, which would be served this node's \
     search, OAI-PMH, SRU and librarian login; listen on 127.0.0.1, or pass --expose \
     (or set expose = true under [http] in config.toml) to mean it"
)]
pub struct NotExposed {
    /// The address.
    pub address: std::net::SocketAddr,
}

/// Whether the node may listen on `address`: loopback always; any other only when
/// `expose`, and then with a warning to print that names what is exposed.
pub fn exposure(address: std::net::SocketAddr, expose: bool) -> Result<Option<String>, NotExposed> {
    if address.ip().is_loopback() {
        return Ok(None);
    }
    if !expose {
        return Err(NotExposed { address });
    }
    Ok(Some(format!(
        "warning: listening on {address}: every machine that reaches it can search this \
         node's union catalog, harvest it over OAI-PMH and SRU, and reach the librarian \
         login (the API token guards every change); requests must name this node as \
         localhost, {ip} or one of [http] hosts",
        ip = address.ip()
    )))
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let hosts = Arc::new(HostAllowList::new(
        listener.local_addr()?,
        &state.library.data().config.http.hosts,
    ));
    let app = router(state).layer(axum::middleware::from_fn_with_state(hosts, check_host));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

impl From<ConsortiumError> for ApiError {
    fn from(error: ConsortiumError) -> Self {
        let status = match &error {
            ConsortiumError::Document(_) => StatusCode::BAD_REQUEST,
            ConsortiumError::NotFound(_) => StatusCode::NOT_FOUND,
            ConsortiumError::Refused(_) => StatusCode::CONFLICT,
            ConsortiumError::Storage(_) | ConsortiumError::Damaged(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        ApiError::new(status, error.to_string()).with_code(error.code())
    }
}

pub(crate) async fn run_request(state: &Arc<AppState>, mut request: Request) -> ApiResult<Answer> {
    let library = state.library.clone();
    let writes = request.writes();
    // A join code lives in this running node's memory, and is answered by its network:
    // the invite is made as any other, the code opened here after it. Without the
    // network the request keeps asking for a code, and is refused as such.
    let code = match &mut request {
        Request::Invite { code, .. } if *code && state.net.is_some() => {
            *code = false;
            true
        }
        _ => false,
    };
    if code && !state.library.join_codes().has_room(state.library.now_ms()) {
        // Said before an invite is made whose ticket no one would see.
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            crate::join_code::CodeError::TooMany.to_string(),
        ));
    }
    let addresses = match &state.net {
        Some(net) => net
            .listen_addresses()
            .await
            .map(|a| a.iter().map(ToString::to_string).collect())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let mut answer =
        blocking(move || Ok(execute(library.consortia(), request, now_ms(), addresses)?)).await?;
    if code {
        open_code(&state.library, &mut answer)?;
    }
    if writes {
        if let Some(net) = &state.net {
            // Membership and documents may have changed: tell the network and the members.
            let _ = net.members_changed().await;
            let _ = net.announce(None).await;
        }
    }
    Ok(answer)
}

/// Opens a join code for the invite `answer` holds, and says it in the answer
/// (`data.code`, `data.code_expires_ms` and the message).
fn open_code(library: &Library, answer: &mut Answer) -> ApiResult<()> {
    use jalin_protocol::consortium::document::Signed;
    use jalin_protocol::consortium::log::Invite;
    let ticket = answer.text.clone().unwrap_or_default();
    let invite = Signed::<Invite>::from_text(&ticket)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    // The invitation (with the agreement proposed, to read before joining) when there is
    // one and it fits in a sealed answer; else the ticket alone.
    let sealed = answer.data["invitation"]
        .as_str()
        .filter(|text| text.len() + 16 <= jalin_protocol::sync::CODE_SEALED_MAX)
        .map_or(ticket, str::to_string);
    let open = library
        .join_codes()
        .open(
            sealed,
            invite.body.consortium,
            invite.body.expires_ms,
            library.now_ms(),
        )
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, e.to_string()))?;
    let code = open.code.to_string();
    answer.message.push_str(&format!(
        "\nJoin code (read it over the phone; one try, valid until {}): {code}\nThe other library runs: jalin join --code \"{code}\"",
        jalin_protocol::consortium::agreement::format_time(open.expires_ms)
    ));
    if let Some(data) = answer.data.as_object_mut() {
        data.insert("code".into(), code.into());
        data.insert("code_expires_ms".into(), open.expires_ms.into());
    }
    Ok(())
}

/// After a bundle was taken in: membership may have changed, and what is new here the
/// connected members may lack; tell the network at once rather than at the next catch-up.
pub(crate) async fn after_bundle(state: &Arc<AppState>, report: &crate::bundle::BundleReport) {
    let Some(net) = &state.net else {
        return;
    };
    if report.new_documents() > 0 {
        let _ = net.members_changed().await;
        let _ = net.announce(None).await;
    }
    for catalog in report.catalogs.iter().filter(|c| c.new > 0) {
        if let Ok(id) = jalin_protocol::signing::LibraryId::from_hex(&catalog.library) {
            let _ = net.announce(Some(id)).await;
        }
    }
}

/// An agreement's printable page, with its own content security policy (the page carries
/// it too, for when it is opened as a file).
pub(crate) fn agreement_page(html: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                jalin_protocol::consortium::agreement::EXPORT_CSP,
            ),
        ],
        html,
    )
        .into_response()
}

/// Milliseconds since 1970, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A response whose body blocking work writes as it goes (`write` on a worker thread),
/// a chunk at a time into a small queue the response drains: a catalog's export or a
/// bundle holds a few chunks in memory, not the whole. A failure midway breaks the
/// transfer, so the client never takes a short file for a whole one. `admitted` is held
/// until the writing ends.
pub(crate) fn streamed(
    admitted: Admitted,
    headers: impl axum::response::IntoResponseParts + Send + 'static,
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()> + Send + 'static,
) -> Response {
    let runtime = tokio::runtime::Handle::current();
    let (chunks, body) =
        tokio::sync::mpsc::channel::<std::io::Result<axum::body::Bytes>>(EXPORT_CHUNKS_QUEUED);
    tokio::task::spawn_blocking(move || {
        let _admitted = admitted;
        let mut sink = ChunkSink {
            chunks: chunks.clone(),
            buffer: Vec::with_capacity(EXPORT_CHUNK_BYTES),
            runtime,
        };
        let finished = write(&mut sink).and_then(|()| std::io::Write::flush(&mut sink));
        if let Err(error) = finished {
            tracing::error!(%error, "a streamed answer failed");
            let _ = chunks.blocking_send(Err(error));
        }
    });
    let stream = futures_util::stream::unfold(body, |mut body| async move {
        body.recv().await.map(|chunk| (chunk, body))
    });
    (headers, axum::body::Body::from_stream(stream)).into_response()
}

/// Bytes of an export sent at a time.
const EXPORT_CHUNK_BYTES: usize = 64 * 1024;
/// Chunks of an export that wait for a slow client before the export pauses.
const EXPORT_CHUNKS_QUEUED: usize = 4;

/// A writer that hands what is written to a response body, a chunk at a time, waiting
/// while the client is slow and failing once it has gone.
struct ChunkSink {
    chunks: tokio::sync::mpsc::Sender<std::io::Result<axum::body::Bytes>>,
    buffer: Vec<u8>,
    runtime: tokio::runtime::Handle,
}

/// How long an export waits for a client to take its next chunk before giving up.
const EXPORT_CHUNK_WAIT: Duration = Duration::from_secs(60);

impl std::io::Write for ChunkSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= EXPORT_CHUNK_BYTES {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = axum::body::Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(EXPORT_CHUNK_BYTES),
        ));
        // A client that stops reading is given up on, so it cannot hold its place.
        let send = tokio::time::timeout(EXPORT_CHUNK_WAIT, self.chunks.send(Ok(chunk)));
        match self.runtime.block_on(send) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the client has gone",
            )),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client stopped reading the export",
            )),
        }
    }
}

#[cfg(test)]
mod host_tests {
    use super::*;

    #[test]
    fn hosts_are_loopback_the_listen_address_and_the_configured_names() {
        let configured = [
            "Perpus-Desa.local.".to_string(),
            "192.168.1.10:8080".to_string(),
        ];
        let any: std::net::SocketAddr = "0.0.0.0:8080".parse().expect("address");
        let hosts = HostAllowList::new(any, &configured);
        for allowed in [
            "localhost",
            "localhost:8080",
            "LOCALHOST.",
            "127.0.0.1:8080",
            "127.9.9.9",
            "[::1]:8080",
            "perpus-desa.local",
            "perpus-desa.local:8080",
            "192.168.1.10:8080",
        ] {
            assert!(hosts.allows(allowed), "{allowed}");
        }
        for refused in [
            "evil.example",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "192.168.1.11",
            "0.0.0.0:8080",
            "",
        ] {
            assert!(!hosts.allows(refused), "{refused}");
        }
        let one: std::net::SocketAddr = "192.168.1.20:80".parse().expect("address");
        assert!(HostAllowList::new(one, &[]).allows("192.168.1.20"));
    }
}
