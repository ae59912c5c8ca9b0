//! The HTTP JSON API, on 127.0.0.1, with OAI-PMH and SRU. Reads are open; writes need the
//! node's API token (`Authorization: Bearer TOKEN`). Every error is one
//! [`ApiError`](crate::server::ApiError): a status and a message a librarian can act on.

use crate::consortium_requests::{Answer, Request};
use crate::library::{ImportOptions, LibraryError, Source};
use crate::server::{
    after_bundle, agreement_page, authorize, blocking, heavy, now_ms, run_request, streamed,
    ApiError, ApiResult, AppState,
};
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

/// The API's routes (JSON under `/api`, OAI-PMH, SRU); uploads up to `upload_limit`
/// bytes.
pub fn routes(upload_limit: usize) -> Router<Arc<AppState>> {
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
        .route("/api/bundle", get(bundle_list))
        .route("/api/bundle/export", post(bundle_export))
        .route(
            "/api/bundle/import",
            post(bundle_import).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/oai", get(oai).post(oai))
        .route("/sru", get(sru).post(sru))
        .route("/api/consortium", post(consortium_request))
        .route("/api/ill", post(ill_request))
        .route("/api/needs", post(needs_request))
        .route("/api/plans", post(plans_request))
        .route("/api/profile", post(profile_request))
        .route("/api/staff", post(staff_request))
        .route("/api/evaluation", post(evaluation_request))
        .route("/api/survey", post(survey_request))
        .route(
            "/api/survey/import",
            post(survey_import).layer(DefaultBodyLimit::max(crate::survey::CSV_BYTES_MAX)),
        )
        .route(
            "/api/plans/import",
            post(plans_import).layer(DefaultBodyLimit::max(crate::plans::IMPORT_BYTES_MAX)),
        )
        .route("/api/collection/overlap", get(collection_overlap))
        .route("/api/collection/conspectus", post(conspectus_request))
        .route(
            "/iso18626",
            post(iso18626).layer(DefaultBodyLimit::max(
                jalin_protocol::ill::iso::INCOMING_BYTES_MAX,
            )),
        )
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

/// Results per page of `/api/search` when the client names none.
const PER_PAGE_DEFAULT: usize = 20;
/// Damaged records listed in a refused upload's answer (the rest are counted): enough to
/// see what is wrong, small enough to read.
const REJECTED_SHOWN_MAX: usize = 100;

async fn search(
    State(state): State<Arc<AppState>>,
    Query(params): Query<SearchParams>,
) -> ApiResult<Json<crate::search::SearchResults>> {
    let query = params.q.unwrap_or_default();
    if query.trim().is_empty() {
        return Err(ApiError::bad_request("give a query: /api/search?q=words"));
    }
    let page = params.page.unwrap_or(1).max(1);
    let per_page = params.per_page.unwrap_or(PER_PAGE_DEFAULT);
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
    // The store announces the write to the members itself (`Store::watch_own_writes`).
    let record_id = blocking(move || Ok(library.put(marc)?)).await?;
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
            rejected.truncate(REJECTED_SHOWN_MAX);
        }
        error.details = Some(details);
        return Err(error);
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
    // The catalog is written as it is read, a chunk at a time: an export holds a few
    // chunks, not the catalog.
    Ok(streamed(
        admitted,
        [(header::CONTENT_TYPE, content_type.to_string())],
        move |sink| {
            library
                .export(sink, format)
                .map(|_| ())
                .map_err(|e| std::io::Error::other(e.to_string()))
        },
    ))
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
    /// Members' clocks beside this node's.
    clock: crate::clock::ClockReport,
    /// What they say, in words, when something is off.
    clock_warning: Option<String>,
}

async fn sync_status(State(state): State<Arc<AppState>>) -> ApiResult<Json<SyncStatus>> {
    let library = state.library.clone();
    let mut catalogs = blocking(move || Ok(library.sync_status()?)).await?;
    let mut traffic = None;
    if let Some(net) = &state.net {
        if let Ok(routes) = net.routes().await {
            for catalog in &mut catalogs {
                if catalog.own {
                    continue;
                }
                let route = jalin_protocol::signing::LibraryId::from_hex(&catalog.library_id)
                    .ok()
                    .and_then(|id| crate::network::peer_id_of(&id))
                    .and_then(|peer| routes.get(&peer).copied());
                catalog.connected = Some(route.is_some());
                catalog.route = route;
            }
        }
        traffic = Some(net.traffic.counts());
    }
    let library = state.library.clone();
    let clock = blocking(move || Ok(library.clock_report())).await?;
    Ok(Json(SyncStatus {
        catalogs,
        traffic,
        clock_warning: clock.warning(),
        clock,
    }))
}

#[derive(Serialize)]
struct NetworkPeer {
    peer_id: String,
    library: Option<String>,
    /// `direct`, or `relay` when every connection to it goes through a relay.
    route: crate::network::Route,
}

/// `GET /api/network`: this node's peer id, addresses and connected members, and how each
/// is reached (the API token: who is behind a NAT is the members' business).
async fn network_status(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> ApiResult<Json<NetworkStatus>> {
    authorize(&state, &headers)?;
    let Some(net) = &state.net else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this node runs no network",
        ));
    };
    let stopped = |_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the network has stopped");
    let listen = net.listen_addresses().await.map_err(stopped)?;
    let peers = net.routes().await.map_err(stopped)?;
    let library = state.library.clone();
    let members: std::collections::BTreeMap<String, String> = blocking(move || {
        let mut out = std::collections::BTreeMap::new();
        for c in library.consortia().list() {
            if let Ok(state) = library.consortia().members(&c.id) {
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
            .map(|(p, route)| NetworkPeer {
                peer_id: p.to_string(),
                library: members.get(&p.to_string()).cloned(),
                route: *route,
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

/// `POST /iso18626`: an ISO 18626 message from an agency of `[iso18626] peers`, answered
/// with the standard's confirmation (XML) whatever happens.
async fn iso18626(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let secret = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|s| s.trim().to_string());
    let library = state.library.clone();
    let (status, xml) = blocking(move || {
        let config = library.data().config.iso18626.clone();
        let now = library.now_ms();
        Ok(library
            .gateway()
            .receive(&config, &library.agency_id(), &body, secret.as_deref(), now))
    })
    .await?;
    Ok((
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        xml,
    )
        .into_response())
}

/// `POST /api/ill`: any interlibrary-loan request (JSON, `{"action": ...}`). Every one
/// needs the token: the loans carry the library's own patron references.
/// `GET /api/collection/overlap`: the collection overlap of the union this node holds
/// (needs the token: it reads every catalog, one at a time).
async fn collection_overlap(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> ApiResult<Json<jalin_protocol::collection::OverlapReport>> {
    authorize(&state, &headers)?;
    let library = state.library.clone();
    let report = crate::server::heavy(&state, move || Ok(library.collection_overlap()?)).await?;
    Ok(Json(report))
}

/// `POST /api/collection/conspectus`: every member's stated collecting levels beside its
/// catalog, after stating this library's (`{"action": "set", "levels": [...]}`) or not
/// (`{"action": "show"}`). Needs the token.
async fn conspectus_request(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Vec<crate::conspectus::MemberConspectus>>> {
    authorize(&state, &headers)?;
    let request: crate::conspectus::ConspectusRequest =
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "not a conspectus request ({e}); send JSON like {{\"action\": \"show\"}}"
            ))
        })?;
    let library = state.library.clone();
    let answer = heavy(&state, move || {
        Ok(crate::conspectus::execute(&library, request)?)
    })
    .await?;
    Ok(Json(answer))
}

/// `POST /api/needs`: the needs log's report, or forgetting (JSON, `{"action": ...}`).
/// Needs the token: what patrons searched for is the library's alone.
async fn needs_request(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<crate::needs::NeedsAnswer>> {
    authorize(&state, &headers)?;
    let request: crate::needs::NeedsRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "not a needs request ({e}); send JSON like {{\"action\": \"report\"}}"
        ))
    })?;
    let library = state.library.clone();
    let answer = heavy(&state, move || {
        Ok(crate::needs::execute(&library, request)?)
    })
    .await?;
    Ok(Json(answer))
}

/// `POST /api/plans`: this library's purchase plan: add, check, list, remove (JSON,
/// `{"action": ...}`). Needs the token.
async fn plans_request(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<crate::plans::PlanAnswer>> {
    authorize(&state, &headers)?;
    let request: crate::plans::PlanRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "not a purchase-plan request ({e}); send JSON like {{\"action\": \"list\"}}"
        ))
    })?;
    let library = state.library.clone();
    let answer = heavy(&state, move || {
        Ok(crate::plans::execute(&library, request)?)
    })
    .await?;
    Ok(Json(answer))
}

/// `POST /api/profile`: this library's profile and the candidate partners: show, set,
/// import, forget, partners (JSON, `{"action": ...}`). Needs the token.
async fn profile_request(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<crate::profiles::ProfileAnswer>> {
    authorize(&state, &headers)?;
    let request: crate::profiles::ProfileRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "not a profile request ({e}); send JSON like {{\"action\": \"show\"}}"
        ))
    })?;
    let library = state.library.clone();
    let answer = heavy(&state, move || {
        Ok(crate::profiles::execute(&library, request)?)
    })
    .await?;
    Ok(Json(answer))
}

/// `POST /api/staff`: staff development with the partners: trainings, sign-ups, skills,
/// help (JSON, `{"action": ...}`). Needs the token.
async fn staff_request(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<crate::staff::StaffAnswer>> {
    authorize(&state, &headers)?;
    let request: crate::staff::StaffRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "not a staff-development request ({e}); send JSON like {{\"action\": \"list\"}}"
        ))
    })?;
    let library = state.library.clone();
    let answer = heavy(&state, move || {
        Ok(crate::staff::execute(&library, request)?)
    })
    .await?;
    Ok(Json(answer))
}

/// `POST /api/evaluation`: the periodic evaluation: report, figures, sign (JSON,
/// `{"action": ...}`). Needs the token.
async fn evaluation_request(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<crate::evaluation::EvaluationAnswer>> {
    authorize(&state, &headers)?;
    let request: crate::evaluation::EvaluationRequest =
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "not an evaluation request ({e}); send JSON like {{\"action\": \"report\"}}"
            ))
        })?;
    let library = state.library.clone();
    let answer = heavy(&state, move || {
        Ok(crate::evaluation::execute(&library, request)?)
    })
    .await?;
    Ok(Json(answer))
}

/// `POST /api/plans/import`: adds every title of a list (the body: MARC, CSV or plain
/// lines) to this library's purchase plan. Needs the token.
async fn plans_import(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<crate::plans::PlanAnswer>> {
    authorize(&state, &headers)?;
    let library = state.library.clone();
    let answer = heavy(&state, move || Ok(crate::plans::import(&library, &body)?)).await?;
    Ok(Json(answer))
}

/// `POST /api/survey`: the questionnaire: create (from the template) or report (JSON,
/// `{"action": ...}`). Needs the token.
async fn survey_request(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<crate::survey::SurveyAnswer>> {
    authorize(&state, &headers)?;
    let request: crate::survey::SurveyRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "not a survey request ({e}); send JSON like {{\"action\": \"report\"}}"
        ))
    })?;
    let library = state.library.clone();
    let answer = heavy(&state, move || {
        Ok(crate::survey::execute(&library, request)?)
    })
    .await?;
    Ok(Json(answer))
}

/// `POST /api/survey/import`: the answers of a CSV (the body), all or none. Needs the
/// token.
async fn survey_import(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    authorize(&state, &headers)?;
    let library = state.library.clone();
    let taken = heavy(&state, move || Ok(crate::survey::import(&library, &body)?)).await?;
    Ok(Json(serde_json::json!({ "taken": taken })))
}

async fn ill_request(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<crate::ill_requests::IllAnswer>> {
    authorize(&state, &headers)?;
    let request: crate::ill_requests::IllRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "not an interlibrary-loan request ({e}); send JSON like {{\"action\": \"list\"}}"
        ))
    })?;
    let library = state.library.clone();
    let answer = blocking(move || Ok(crate::ill_requests::execute(&library, request)?)).await?;
    Ok(Json(answer))
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

/// `GET /api/bundle`: the bundles exchanged with each current co-member.
async fn bundle_list(
    State(state): State<Arc<AppState>>,
) -> ApiResult<Json<Vec<crate::bundle::Exchange>>> {
    let library = state.library.clone();
    Ok(Json(
        blocking(move || Ok(crate::bundle::exchanges(&library).map_err(LibraryError::from)?))
            .await?,
    ))
}

/// What `POST /api/bundle/export` takes.
#[derive(Deserialize)]
struct BundleFor {
    /// The member the bundle is for: its code, fingerprint or key.
    #[serde(rename = "for")]
    to: String,
}

/// `POST /api/bundle/export` (`{"for": "CODE"}`): a bundle for that member, streamed as
/// it is made.
async fn bundle_export(State(state): State<Arc<AppState>>, body: Bytes) -> ApiResult<Response> {
    let request: BundleFor = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "not a bundle request ({e}); send JSON like {{\"for\": \"SMPN1\"}}"
        ))
    })?;
    let library = state.library.clone();
    let to = blocking(move || {
        Ok(crate::bundle::find_co_member(&library, &request.to).map_err(LibraryError::from)?)
    })
    .await?;
    let admitted = state.admission.admit().await?;
    let library = state.library.clone();
    let number = match crate::bundle::reserve(&library, &to) {
        Ok(number) => number,
        Err(e) => return Err(LibraryError::from(e).into()),
    };
    let name = crate::bundle::file_name(&library, &to, number);
    Ok(streamed(
        admitted,
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        move |sink| {
            crate::bundle::export_numbered(&library, &to, number, sink)
                .map(|_| ())
                .map_err(|e| std::io::Error::other(e.to_string()))
        },
    ))
}

/// What `POST /api/bundle/import` takes in its query.
#[derive(Deserialize)]
struct BundleImportParams {
    /// Only read it and say what it holds.
    #[serde(default)]
    preview: bool,
}

/// `POST /api/bundle/import[?preview=true]`: a bundle as the body, taken in (or only
/// read).
async fn bundle_import(
    State(state): State<Arc<AppState>>,
    Query(params): Query<BundleImportParams>,
    body: Bytes,
) -> ApiResult<Json<crate::bundle::BundleReport>> {
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "the upload is empty: send the bundle file as the request body",
        ));
    }
    let library = state.library.clone();
    let report = heavy(&state, move || {
        Ok(if params.preview {
            crate::bundle::preview(&library, &body[..]).map_err(LibraryError::from)?
        } else {
            crate::bundle::import(&library, || Ok(&body[..])).map_err(LibraryError::from)?
        })
    })
    .await?;
    if report.applied {
        after_bundle(&state, &report).await;
    }
    Ok(Json(report))
}
