//! The union catalog's pages (search, a record, its export) and the librarian's catalog
//! pages (status, edit, delete).

use super::*;
use crate::edit::Editable;
use crate::library::LibraryError;
use crate::server::blocking;
use jalin_protocol::format::Format;
use jalin_protocol::signing::LibraryId;

pub(super) fn facet_filter(name: &str, value: &str) -> String {
    match name {
        "subject" => format!("subject:\"{}\"", value.replace('"', "")),
        "year" => format!("year:{value}"),
        "lang" => format!("lang:{value}"),
        _ => format!("class:{value}"),
    }
}

pub(super) async fn search_page(
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
    // The visit: a random token the search page carries in its form and links (no
    // cookie), so the needs log can count distinct visits asking a query before the query
    // may be shared; a new one for a page opened without it.
    let visit = query
        .get("v")
        .filter(|v| (16..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .cloned()
        .unwrap_or_else(random_hex);
    // A search's address: the query, maybe a library, maybe a page, and the visit.
    let href = |q: &str, lib: Option<&str>, page: usize| {
        let mut out = format!("/?q={}&v={visit}", urlencode(q));
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
        return visitor.page(
            &state,
            "search.html",
            &title,
            context! { q => q, visit => visit },
        );
    }
    let library = state.library.clone();
    let own = library.id().to_hex();
    let (query_text, only_q, visit_token) = (q.clone(), only.clone(), visit.clone());
    // A patron's search: the first page, all libraries, asked from a page of this node
    // or typed in (another site's page cannot fill the log with its words).
    let cross_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|site| site == "cross-site");
    let log_it = page == 1 && only.is_none() && !cross_site;
    let results = crate::server::heavy(&state, move || {
        let results = library.search_in(&query_text, page, RESULTS_PER_PAGE, only_q.as_deref())?;
        // The OPAC's searches are what the patrons look for: the first page of each
        // (the query, its hits, the time; nothing about who asked).
        if log_it && library.data().config.needs.log_searches {
            if let Err(error) = library.needs().log_search(
                &query_text,
                results.total as u64,
                Some(&visit_token),
                library.now_ms(),
            ) {
                tracing::warn!(%error, "logging a search failed");
            }
        }
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
            visit => visit,
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

pub(super) fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

pub(super) async fn record_page(
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
    let view = blocking(move || Ok(library.record_view(&owner_q, &id_q)?)).await;
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
        Err(e) => return visitor.failure(&state, &e),
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
    // Copies out on interlibrary loan: this node's own loans (at once), and what the
    // members' tallies say (`LibraryHolding::on_ill`).
    let library = state.library.clone();
    let out = blocking(move || Ok(library.loans().out_on_loan().map_err(LibraryError::from)?))
        .await
        .unwrap_or_default();
    let holdings: Vec<Value> = hit
        .map(|hit| hit.holdings)
        .unwrap_or_default()
        .into_iter()
        .map(|h| {
            let fresh = h
                .last_change_ms
                .map(jalin_protocol::consortium::agreement::format_time);
            let on_ill = h.on_ill
                || LibraryId::from_hex(&h.library)
                    .is_ok_and(|library| out.contains(&(library, h.record_id.clone())));
            context! { fresh => fresh, on_ill => on_ill, ..Value::from_serialize(&h) }
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

pub(super) async fn record_export(
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
    let view = blocking(move || Ok(library.record_view(&owner, &id)?)).await;
    let (stored, record) = match view {
        Ok(Some((stored, Some(record), _))) => (stored, record),
        Ok(_) => return visitor.error(&state, StatusCode::NOT_FOUND, &visitor.t("not_found")),
        Err(e) => return visitor.failure(&state, &e),
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

pub(super) async fn status_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian");
    if let Err(response) = visitor.librarian() {
        return *response;
    }
    let library = state.library.clone();
    let (status, clock, syncing) = match blocking(move || {
        Ok((
            library.status()?,
            library.clock_report(),
            library.sync_status()?,
        ))
    })
    .await
    {
        Ok(s) => s,
        Err(e) => return visitor.failure(&state, &e),
    };
    let clock_warning = if let Some(off) = clock.this_node_off_ms {
        let (n, unit) = crate::clock::amount(off.unsigned_abs());
        Some(context! { own => true, n => n, unit => unit, ahead => off > 0 })
    } else {
        clock.differing.first().map(|peer| {
            let (n, unit) = crate::clock::amount(peer.offset_ms.unsigned_abs());
            context! { own => false, n => n, unit => unit, name => peer.name.clone().unwrap_or_else(|| peer.library.clone()) }
        })
    };
    let routes = match &state.net {
        Some(net) => net.routes().await.unwrap_or_default(),
        None => Default::default(),
    };
    let peers = routes.len();
    // Each member connected, by name, and whether directly or through a relay.
    let connected: Vec<_> = syncing
        .iter()
        .filter(|c| !c.own)
        .filter_map(|c| {
            let id = jalin_protocol::signing::LibraryId::from_hex(&c.library_id).ok()?;
            let route = routes.get(&crate::network::peer_id_of(&id)?)?;
            Some(context! {
                name => c.name.clone().unwrap_or_else(|| c.library_id.chars().take(16).collect()),
                relay => *route == crate::network::Route::Relay,
            })
        })
        .collect();
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
            connected => connected,
            clock_warning => clock_warning,
            syncing => syncing.iter().filter(|c| c.to_go.is_some()).map(|c| {
                let eta = c.eta_s.map(|s| crate::clock::amount(s.saturating_mul(1000).max(60_000)));
                context! {
                    name => c.name.clone().unwrap_or_else(|| c.library_id.chars().take(16).collect()),
                    to_go => c.to_go,
                    of => c.member_holds,
                    kb => c.bytes_to_go.unwrap_or_default().div_ceil(1024),
                    eta_n => eta.map(|(n, _)| n),
                    eta_unit => eta.map(|(_, u)| u),
                }
            }).collect::<Vec<_>>(),
        },
    )
}

pub(super) async fn edit_page(
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
    let found = blocking(move || Ok(library.get(&id_q)?)).await;
    let record = match found {
        Ok(Some((_, Some(record)))) => record,
        Ok(_) => return visitor.error(&state, StatusCode::NOT_FOUND, &visitor.t("not_found")),
        Err(e) => return visitor.failure(&state, &e),
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

pub(super) async fn edit_save(
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
        let Some((_, Some(record))) = library.get(&id_q)? else {
            return Err(LibraryError::NotFound(id_q).into());
        };
        let mut marc = record.marc;
        // The record keeps its id, also one derived from its title for want of a 001.
        if marc.control("001").is_none_or(|v| v.trim().is_empty()) {
            marc.set_control("001", &id_q);
        }
        // Only what the librarian changed is written (against what the form showed).
        crate::edit::apply(&mut marc, &Editable::of(&record.description), &edited);
        Ok(library.put(marc)?)
    })
    .await;
    match saved {
        Ok(_) => redirect(&format!(
            "/record/{}/{}",
            state.library.id().to_hex(),
            urlencode(&id)
        )),
        Err(e) => visitor.failure(&state, &e),
    }
}

pub(super) async fn delete_record(
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
    match blocking(move || Ok(library.delete(&id)?)).await {
        Ok(()) => visitor.message(&state, &visitor.t("deleted"), None),
        Err(e) => visitor.failure(&state, &e),
    }
}
