//! The HTTP JSON API, on 127.0.0.1. Reads are open; writes need the node's API token
//! (`Authorization: Bearer TOKEN`). Every error is one [`ApiError`]: a status and a
//! message a librarian can act on.

use crate::consortium::ConsortiumError;
use crate::consortium_requests::{execute, Answer, Request};
use crate::library::{ImportOptions, Library, LibraryError, Source};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jalin_protocol::format::Format;
use jalin_protocol::marc::{marcxml, Charset, MarcRecord};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

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
        let admission = Admission::new(&library.data.config.limits);
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
    details: Option<serde_json::Value>,
    /// What kind of failure, when the node's core said (`invite_expired`, ...).
    code: Option<&'static str>,
    /// For a 503: when to ask again.
    retry_after_s: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            details: None,
            code: None,
            retry_after_s: None,
        }
    }

    fn with_code(mut self, code: &'static str) -> Self {
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

    fn bad_request(message: impl Into<String>) -> Self {
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

type ApiResult<T> = Result<T, ApiError>;

/// The API's routes.
pub fn router(state: Arc<AppState>) -> Router {
    let upload_limit = usize::try_from(
        state
            .library
            .data
            .config
            .limits
            .upload_size_max_mb
            .saturating_mul(1024 * 1024),
    )
    .unwrap_or(usize::MAX);
    Router::new()
        .route("/api/status", get(status))
        .route("/api/search", get(search))
        .route("/api/sync", get(sync_status))
        .route(
            "/api/records/{id}",
            get(get_record).put(put_record).delete(delete_record),
        )
        .route(
            "/api/import",
            post(import).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/api/export", get(export))
        .route("/oai", get(oai).post(oai))
        .route("/sru", get(sru).post(sru))
        .route("/api/consortium", post(consortium_request))
        .route("/api/network", get(network_status))
        .route("/api/network/dial", post(network_dial))
        .route("/api/consortia", get(consortia_list))
        .route("/api/consortia/{id}", get(consortium_members))
        .route("/api/consortia/{id}/documents", get(consortium_documents))
        .route(
            "/api/consortia/{id}/agreements/{agreement}",
            get(agreement_show),
        )
        .route(
            "/api/consortia/{id}/agreements/{agreement}/export",
            get(agreement_export),
        )
        .merge(crate::web::routes(upload_limit))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            before_the_body,
        ))
        .with_state(state)
}

/// Largest request body but an import's: a record, a consortium document, a form.
const BODY_BYTES_MAX: usize = 1024 * 1024;

/// Whether a request carries a file to import (the routes without a time limit).
fn is_upload(method: &axum::http::Method, path: &str) -> bool {
    method == axum::http::Method::POST && matches!(path, "/api/import" | "/librarian/import")
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
        let limit_mb = state.library.data.config.limits.upload_size_max_mb;
        if declared.is_some_and(|bytes| bytes > limit_mb.saturating_mul(1024 * 1024)) {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the upload is larger than {limit_mb} MB (upload_size_max_mb in \
                     config.toml); import the file with `jalin import` on the node's machine"
                ),
            )
            .with_code("upload_too_large")
            .into_response();
        }
        if path == "/librarian/import" {
            if let Some(refused) = crate::web::upload_refused(&state, request.headers()) {
                return refused;
            }
        }
        return next.run(request).await;
    }
    let limit = Duration::from_secs(state.library.data.config.limits.request_timeout_s);
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

fn authorize(state: &AppState, headers: &HeaderMap) -> ApiResult<()> {
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

async fn status(State(state): State<Arc<AppState>>) -> ApiResult<Json<crate::library::Status>> {
    let library = state.library.clone();
    Ok(Json(blocking(move || Ok(library.status()?)).await?))
}

#[derive(Deserialize)]
struct SearchParams {
    q: Option<String>,
    page: Option<usize>,
    per_page: Option<usize>,
    /// Only this library's records (its key, hex).
    library: Option<String>,
}

async fn search(
    State(state): State<Arc<AppState>>,
    Query(params): Query<SearchParams>,
) -> ApiResult<Json<crate::search::SearchResults>> {
    let query = params.q.unwrap_or_default();
    if query.trim().is_empty() {
        return Err(ApiError::bad_request("give a query: /api/search?q=words"));
    }
    let page = params.page.unwrap_or(1).max(1);
    let per_page = params.per_page.unwrap_or(20);
    let library = state.library.clone();
    Ok(Json(
        heavy(&state, move || {
            Ok(library.search_in(&query, page, per_page, params.library.as_deref())?)
        })
        .await?,
    ))
}

#[derive(Deserialize)]
struct FormatParam {
    format: Option<String>,
}

fn format_param(name: Option<&str>, default: Format) -> ApiResult<Format> {
    match name {
        None => Ok(default),
        Some(name) => Format::from_name(name).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown format {name:?}; one of: marc, marcxml, csv, slims-csv, dc"
            ))
        }),
    }
}

async fn get_record(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(params): Query<FormatParam>,
) -> ApiResult<Response> {
    let wanted = params.format.as_deref().unwrap_or("json").to_string();
    let library = state.library.clone();
    let found = blocking({
        let id = id.clone();
        move || Ok(library.get(&id)?)
    })
    .await?;
    let Some((stored, record)) = found else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no record with id {id:?}"),
        ));
    };
    let record = record.ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("record {id:?} is stored damaged"),
        )
    })?;
    Ok(match wanted.as_str() {
        "json" => Json(serde_json::json!({
            "record_id": stored.record_id,
            "deleted": stored.deleted,
            "updated_ms": stored.updated_ms,
            "description": record.description,
            "marc": record.marc,
        }))
        .into_response(),
        "marcxml" | "xml" => {
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}",
                marcxml::record_to_xml(&record.marc, true)
            );
            (
                [(
                    header::CONTENT_TYPE,
                    "application/marcxml+xml; charset=utf-8",
                )],
                body,
            )
                .into_response()
        }
        "marc" | "mrc" => {
            ([(header::CONTENT_TYPE, "application/marc")], stored.marc).into_response()
        }
        "dc" => (
            [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
            jalin_protocol::dc::to_oai_dc(&record.marc),
        )
            .into_response(),
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown format {other:?}; one of: json, marcxml, marc, dc"
            )))
        }
    })
}

/// The body of `PUT /api/records/{id}`: MARCXML (`Content-Type: application/marcxml+xml`
/// or any XML type), or JSON: a MARC record as `GET ...?format=json` gives it under `marc`.
fn record_from_body(headers: &HeaderMap, body: &[u8]) -> ApiResult<MarcRecord> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.contains("xml") {
        let mut reader = marcxml::Reader::new(body);
        return match reader.next() {
            Some(Ok(read)) => Ok(read.record),
            Some(Err(error)) => Err(ApiError::bad_request(format!("MARCXML: {error}"))),
            None => Err(ApiError::bad_request("MARCXML: no <record> in the body")),
        };
    }
    #[derive(Deserialize)]
    struct Body {
        marc: MarcRecord,
    }
    match serde_json::from_slice::<Body>(body) {
        Ok(body) => Ok(body.marc),
        Err(error) => Err(ApiError::bad_request(format!(
            "the body is not a record: {error} (send JSON {{\"marc\": {{\"leader\": ..., \"fields\": [...]}}}} or MARCXML with Content-Type: application/marcxml+xml)"
        ))),
    }
}

async fn put_record(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    authorize(&state, &headers)?;
    let marc = record_from_body(&headers, &body)?;
    if marc.fields.is_empty() {
        return Err(ApiError::bad_request("the record has no fields"));
    }
    let record_id = jalin_protocol::record::Record::from_marc(marc.clone())
        .id()
        .to_string();
    if record_id != id {
        return Err(ApiError::bad_request(format!(
            "the record's id (001) is {record_id:?}, but the URL names {id:?}"
        )));
    }
    let library = state.library.clone();
    let record_id = blocking(move || Ok(library.put(marc)?)).await?;
    announce_catalog(&state).await;
    Ok(Json(serde_json::json!({ "record_id": record_id })))
}

async fn delete_record(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    authorize(&state, &headers)?;
    let library = state.library.clone();
    blocking(move || Ok(library.delete(&id)?)).await?;
    announce_catalog(&state).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct ImportParams {
    format: Option<String>,
    charset: Option<String>,
    #[serde(default)]
    delete_missing: bool,
    #[serde(default)]
    strict: bool,
}

async fn import(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<ImportParams>,
    body: Bytes,
) -> ApiResult<Response> {
    authorize(&state, &headers)?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "the upload is empty: send the file as the request body",
        ));
    }
    let format = match params.format.as_deref() {
        None => None,
        Some(name) => Some(format_param(Some(name), Format::Marc)?),
    };
    let charset = match params.charset.as_deref() {
        None => None,
        Some(name) => Some(
            Charset::from_name(name)
                .ok_or_else(|| ApiError::bad_request(format!("unknown charset {name:?}")))?,
        ),
    };
    let options = ImportOptions {
        format,
        charset,
        delete_missing: params.delete_missing,
        strict: params.strict,
    };
    let library = state.library.clone();
    let summary = heavy(&state, move || {
        Ok(library.import(&Source::Bytes(Vec::from(body)), &options, |_| {})?)
    })
    .await?;
    if summary.read == 0 && !summary.rejected.is_empty() {
        let mut error = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "no record could be read from the upload ({} damaged); nothing was changed",
                summary.rejected.len()
            ),
        );
        let mut details = serde_json::to_value(&summary).unwrap_or_default();
        if let Some(rejected) = details.get_mut("rejected").and_then(|r| r.as_array_mut()) {
            rejected.truncate(100);
        }
        error.details = Some(details);
        return Err(error);
    }
    if summary.added + summary.updated + summary.deleted > 0 {
        announce_catalog(&state).await;
    }
    Ok(Json(summary).into_response())
}

async fn export(
    State(state): State<Arc<AppState>>,
    Query(params): Query<FormatParam>,
) -> ApiResult<Response> {
    let format = format_param(params.format.as_deref(), Format::Marc)?;
    let content_type = match format {
        Format::Marc => "application/marc",
        Format::Marcxml | Format::Dc => "application/xml; charset=utf-8",
        Format::Csv | Format::SlimsCsv => "text/csv; charset=utf-8",
    };
    let admitted = state.admission.admit().await?;
    let library = state.library.clone();
    let runtime = tokio::runtime::Handle::current();
    // The catalog is written as it is read, a chunk at a time, into a small queue the
    // response drains: an export holds a few chunks, not the catalog.
    let (chunks, body) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(EXPORT_CHUNKS_QUEUED);
    tokio::task::spawn_blocking(move || {
        let _admitted = admitted;
        let sink = ChunkSink {
            chunks: chunks.clone(),
            buffer: Vec::with_capacity(EXPORT_CHUNK_BYTES),
            runtime,
        };
        let finished = library
            .export(sink, format)
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|(_, mut sink)| std::io::Write::flush(&mut sink));
        if let Err(error) = finished {
            // The client sees a broken transfer, not a short file taken for whole.
            tracing::error!(%error, "export failed");
            let _ = chunks.blocking_send(Err(error));
        }
    });
    let stream = futures_util::stream::unfold(body, |mut body| async move {
        body.recv().await.map(|chunk| (chunk, body))
    });
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

/// Bytes of an export sent at a time.
const EXPORT_CHUNK_BYTES: usize = 64 * 1024;
/// Chunks of an export that wait for a slow client before the export pauses.
const EXPORT_CHUNKS_QUEUED: usize = 4;

/// A writer that hands what is written to a response body, a chunk at a time, waiting
/// while the client is slow and failing once it has gone.
struct ChunkSink {
    chunks: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
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
        let chunk = Bytes::from(std::mem::replace(
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

/// The base URL a client reached this node at (from its `Host`), with `path`.
fn base_url(headers: &HeaderMap, path: &str) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("http://{host}{path}")
}

/// The arguments of a request: its form-encoded body for POST, else its query.
fn request_pairs(
    method: &axum::http::Method,
    query: Option<String>,
    body: &[u8],
) -> Vec<(String, String)> {
    let bytes = if method == axum::http::Method::POST {
        body
    } else {
        query.as_deref().unwrap_or_default().as_bytes()
    };
    form_urlencoded::parse(bytes)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn xml_response(xml: String) -> Response {
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], xml).into_response()
}

/// OAI-PMH (GET with a query, or POST with a form body): [`crate::oai`].
async fn oai(
    State(state): State<Arc<AppState>>,
    method: axum::http::Method,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    body: Bytes,
) -> ApiResult<Response> {
    let pairs = request_pairs(&method, query, &body);
    let base = base_url(&headers, "/oai");
    let library = state.library.clone();
    let xml = heavy(&state, move || {
        let provider = crate::oai::Provider::new(&library, base)
            .map_err(|e| ApiError::from(LibraryError::from(e)))?;
        Ok(provider.respond(&pairs, now_ms()))
    })
    .await?;
    Ok(xml_response(xml))
}

/// SRU (GET with a query, or POST with a form body): [`crate::sru`].
async fn sru(
    State(state): State<Arc<AppState>>,
    method: axum::http::Method,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    body: Bytes,
) -> ApiResult<Response> {
    let pairs = request_pairs(&method, query, &body);
    let base = base_url(&headers, "/sru");
    let library = state.library.clone();
    let xml = heavy(&state, move || {
        Ok(crate::sru::Server::new(&library, base).respond(&pairs))
    })
    .await?;
    Ok(xml_response(xml))
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
        &state.library.data.config.http.hosts,
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
            ConsortiumError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, error.to_string()).with_code(error.code())
    }
}

pub(crate) async fn run_request(state: &Arc<AppState>, request: Request) -> ApiResult<Answer> {
    let library = state.library.clone();
    let writes = request.writes();
    let addresses = match &state.net {
        Some(net) => net
            .listen_addresses()
            .await
            .map(|a| a.iter().map(ToString::to_string).collect())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let answer =
        blocking(move || Ok(execute(&library.consortia, request, now_ms(), addresses)?)).await?;
    if writes {
        if let Some(net) = &state.net {
            // Membership and documents may have changed: tell the network and the members.
            let _ = net.members_changed().await;
            let _ = net.announce(None).await;
        }
    }
    Ok(answer)
}

/// Tells the members this library's catalog changed.
async fn announce_catalog(state: &Arc<AppState>) {
    if let Some(net) = &state.net {
        let _ = net.announce(Some(state.library.store.library())).await;
    }
}

#[derive(Serialize)]
struct NetworkStatus {
    peer_id: String,
    listen: Vec<String>,
    peers: Vec<NetworkPeer>,
    traffic: crate::codec::TrafficCounts,
}

/// `GET /api/sync`: every catalog held, how current it is, and the sync protocol's traffic.
#[derive(Serialize)]
struct SyncStatus {
    catalogs: Vec<crate::library::CatalogSync>,
    traffic: Option<crate::codec::TrafficCounts>,
}

async fn sync_status(State(state): State<Arc<AppState>>) -> ApiResult<Json<SyncStatus>> {
    let library = state.library.clone();
    let mut catalogs = blocking(move || Ok(library.sync_status()?)).await?;
    let mut traffic = None;
    if let Some(net) = &state.net {
        if let Ok(peers) = net.peers().await {
            for catalog in &mut catalogs {
                if catalog.own {
                    continue;
                }
                let connected = jalin_protocol::signing::LibraryId::from_hex(&catalog.library_id)
                    .ok()
                    .and_then(|id| crate::network::peer_id_of(&id))
                    .is_some_and(|peer| peers.contains(&peer));
                catalog.connected = Some(connected);
            }
        }
        traffic = Some(net.traffic.counts());
    }
    Ok(Json(SyncStatus { catalogs, traffic }))
}

#[derive(Serialize)]
struct NetworkPeer {
    peer_id: String,
    library: Option<String>,
}

/// `GET /api/network`: this node's peer id, addresses and connected members.
async fn network_status(State(state): State<Arc<AppState>>) -> ApiResult<Json<NetworkStatus>> {
    let Some(net) = &state.net else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this node runs no network",
        ));
    };
    let stopped = |_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the network has stopped");
    let listen = net.listen_addresses().await.map_err(stopped)?;
    let peers = net.peers().await.map_err(stopped)?;
    let library = state.library.clone();
    let members: std::collections::BTreeMap<String, String> = blocking(move || {
        let mut out = std::collections::BTreeMap::new();
        for c in library.consortia.list() {
            if let Ok(state) = library.consortia.members(&c.id) {
                for m in state.members.values() {
                    if let Some(peer) = crate::network::peer_id_of(&m.library) {
                        out.insert(peer.to_string(), format!("{} ({})", m.name, m.code));
                    }
                }
            }
        }
        Ok(out)
    })
    .await?;
    Ok(Json(NetworkStatus {
        peer_id: net.peer_id.to_string(),
        listen: listen.iter().map(ToString::to_string).collect(),
        peers: peers
            .iter()
            .map(|p| NetworkPeer {
                peer_id: p.to_string(),
                library: members.get(&p.to_string()).cloned(),
            })
            .collect(),
        traffic: net.traffic.counts(),
    }))
}

#[derive(Deserialize)]
struct DialBody {
    address: String,
}

/// `POST /api/network/dial`: connect to a member at an address (`/ip4/.../tcp/.../p2p/...`).
async fn network_dial(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    authorize(&state, &headers)?;
    let Some(net) = &state.net else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this node runs no network",
        ));
    };
    let body: DialBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!("send JSON {{\"address\": \"/ip4/...\"}}: {e}"))
    })?;
    let address: libp2p::Multiaddr = body.address.trim().parse().map_err(|e| {
        ApiError::bad_request(format!("{:?} is not a libp2p address: {e}", body.address))
    })?;
    net.dial(address)
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(Json(serde_json::json!({ "dialing": body.address })))
}

/// `POST /api/consortium`: any consortium request (JSON, `{"action": ...}`); the token for
/// those that write.
async fn consortium_request(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Answer>> {
    let request: Request = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "not a consortium request ({e}); send JSON like {{\"action\": \"members\"}}"
        ))
    })?;
    if request.writes() {
        authorize(&state, &headers)?;
    }
    Ok(Json(run_request(&state, request).await?))
}

async fn consortia_list(State(state): State<Arc<AppState>>) -> ApiResult<Json<Answer>> {
    Ok(Json(run_request(&state, Request::List).await?))
}

async fn consortium_members(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Answer>> {
    let request = Request::Members {
        consortium: Some(id),
    };
    Ok(Json(run_request(&state, request).await?))
}

async fn consortium_documents(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let request = Request::Export {
        consortium: Some(id),
    };
    let answer = run_request(&state, request).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        answer.text.unwrap_or_default(),
    )
        .into_response())
}

async fn agreement_show(
    State(state): State<Arc<AppState>>,
    Path((id, agreement)): Path<(String, String)>,
) -> ApiResult<Json<Answer>> {
    let request = Request::Show {
        consortium: Some(id),
        agreement: Some(agreement),
    };
    Ok(Json(run_request(&state, request).await?))
}

async fn agreement_export(
    State(state): State<Arc<AppState>>,
    Path((id, agreement)): Path<(String, String)>,
) -> ApiResult<Response> {
    let request = Request::ExportAgreement {
        consortium: Some(id),
        agreement: Some(agreement),
    };
    let answer = run_request(&state, request).await?;
    Ok(agreement_page(answer.text.unwrap_or_default()))
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
