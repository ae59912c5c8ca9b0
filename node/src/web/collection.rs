//! The collections together: how the members' collections overlap, as tables, as
//! charts the node draws (SVG, no script, readable printed) and as CSV.

use super::*;
use jalin_protocol::collection::{OverlapReport, Share, DIVISIONS};

/// Width of a chart's bar area, in SVG units.
const BAR_WIDTH: f64 = 600.0;

/// A bar's three parts (alone, some, all) as `(x, width, count)`, scaled to `largest`.
fn segments(share: &Share, largest: u64) -> Vec<(f64, f64, u64)> {
    let scale = if largest == 0 {
        0.0
    } else {
        BAR_WIDTH / largest as f64
    };
    let mut x = 0.0;
    [share.alone, share.some, share.all]
        .into_iter()
        .map(|n| {
            let w = n as f64 * scale;
            let part = (x, w, n);
            x += w;
            part
        })
        .collect()
}

fn division_name(code: &str, lang: &str) -> String {
    DIVISIONS
        .iter()
        .find(|(c, _, _)| *c == code)
        .map(|(c, id, en)| format!("{c} {}", if lang == "en" { en } else { id }))
        .unwrap_or_else(|| code.to_string())
}

/// The visitor (a librarian) and the overlap, or the page to answer instead.
async fn librarian_report(
    state: &Arc<AppState>,
    headers: &HeaderMap,
) -> Result<(Visitor, OverlapReport), Response> {
    let visitor = Visitor::of(state, headers, "/librarian/collection");
    visitor.librarian().map_err(|response| *response)?;
    let library = state.library.clone();
    match crate::server::heavy(state, move || Ok(library.collection_overlap()?)).await {
        Ok(report) => Ok((visitor, report)),
        Err(e) => Err(visitor.failure(state, &e)),
    }
}

/// `GET /librarian/collection`: the overlap, each library's titles held alone, with
/// some partners or by all, as a chart and by division.
pub(super) async fn collection_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Response {
    let (visitor, report) = match librarian_report(&state, &headers).await {
        Ok(both) => both,
        Err(response) => return response,
    };
    let largest = report
        .libraries
        .iter()
        .map(|l| l.titles.total())
        .max()
        .unwrap_or(0);
    let libraries: Vec<Value> = report
        .libraries
        .iter()
        .map(|l| {
            let divisions: Vec<Value> = l
                .by_division
                .iter()
                .map(|(code, share)| {
                    context! {
                        name => if code == "none" { visitor.t("collection_no_class") } else { division_name(code, visitor.lang) },
                        alone => share.alone, some => share.some, all => share.all,
                    }
                })
                .collect();
            let rows = |by: &std::collections::BTreeMap<String, Share>, none: &str| -> Vec<Value> {
                by.iter()
                    .map(|(value, share)| {
                        context! {
                            name => if value == "none" { none.to_string() } else { value.clone() },
                            alone => share.alone, some => share.some, all => share.all,
                        }
                    })
                    .collect()
            };
            context! {
                name => l.name.clone().unwrap_or_else(|| l.library.chars().take(12).collect()),
                alone => l.titles.alone, some => l.titles.some, all => l.titles.all,
                total => l.titles.total(),
                bars => segments(&l.titles, largest),
                divisions => divisions,
                languages => rows(&l.by_language, &visitor.t("collection_no_language")),
                decades => rows(&l.by_decade, &visitor.t("collection_no_year")),
            }
        })
        .collect();
    let height = 30 * libraries.len().max(1) + 10;
    let conspectus = {
        let library = state.library.clone();
        let report = report.clone();
        match crate::server::blocking(move || Ok(crate::conspectus::view(&library, &report)?)).await
        {
            Ok(view) => view,
            Err(e) => return visitor.failure(&state, &e),
        }
    };
    let levels: Vec<Value> = jalin_protocol::consortium::conspectus::LEVELS
        .iter()
        .map(|(n, id, en)| context! { level => n, name => if visitor.lang == "en" { *en } else { *id } })
        .collect();
    visitor.page(
        &state,
        "collection.html",
        &visitor.t("collection_title"),
        context! {
            report => Value::from_serialize(&report),
            libraries => libraries,
            chart_height => height,
            bar_width => BAR_WIDTH,
            conspectus => Value::from_serialize(&conspectus),
            levels => levels,
            divisions => DIVISIONS.iter().map(|(c, id, en)| context! { code => c, name => if visitor.lang == "en" { *en } else { *id } }).collect::<Vec<_>>(),
        },
    )
}

/// `POST /librarian/collection/conspectus`: states this library's collecting levels.
pub(super) async fn conspectus_set(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/collection");
    if let Err(response) = visitor.check_form(&state, &form) {
        return *response;
    }
    let mut levels = Vec::new();
    for (code, _, _) in DIVISIONS {
        let (current, commitment) = (
            field(&form, &format!("current-{code}")),
            field(&form, &format!("commitment-{code}")),
        );
        if current.is_empty() && commitment.is_empty() {
            continue;
        }
        match crate::conspectus::parse_level(&format!("{code}={current}/{commitment}")) {
            Ok(level) => levels.push(level),
            Err(why) => return visitor.error(&state, StatusCode::BAD_REQUEST, &why),
        }
    }
    let library = state.library.clone();
    match crate::server::blocking(move || Ok(crate::conspectus::set(&library, levels)?)).await {
        Ok(_) => redirect("/librarian/collection#conspectus"),
        Err(e) => visitor.failure(&state, &e),
    }
}

/// `GET /librarian/collection.csv`: every library's figures, overall and by division,
/// language and decade.
pub(super) async fn collection_csv(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Response {
    let (visitor, report) = match librarian_report(&state, &headers).await {
        Ok(both) => both,
        Err(response) => return response,
    };
    let mut out = csv::Writer::from_writer(Vec::new());
    let mut rows = vec![[
        "library".to_string(),
        "by".into(),
        "value".into(),
        "alone".into(),
        "some".into(),
        "all".into(),
    ]];
    for l in &report.libraries {
        let name = l.name.clone().unwrap_or_else(|| l.library.clone());
        let row = |by: &str, value: &str, s: &Share| {
            [
                name.clone(),
                by.to_string(),
                value.to_string(),
                s.alone.to_string(),
                s.some.to_string(),
                s.all.to_string(),
            ]
        };
        rows.push(row("all", "titles", &l.titles));
        for (by, map) in [
            ("class", &l.by_division),
            ("lang", &l.by_language),
            ("decade", &l.by_decade),
        ] {
            for (value, share) in map {
                rows.push(row(by, value, share));
            }
        }
    }
    for row in rows {
        if let Err(e) = out.write_record(&row) {
            return visitor.error(&state, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string());
        }
    }
    match out.into_inner() {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"koleksi-bersama.csv\"",
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => visitor.error(&state, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}
