//! The evaluation page (evaluasi berkala): the period's report with its charts (SVG drawn
//! here, no script), what the figures flag, the decisions before and what became of
//! them, the signatures; forms for this library's hand-entered figures and for signing;
//! a printable page (also what `jalin evaluation report --out` writes), CSV, and the
//! Perpusnas literacy-index (IPLM) fields as JSON.

use super::*;
use crate::evaluation::{self, EvaluationAnswer, EvaluationRequest, HandInput};
use crate::server::heavy;
use jalin_protocol::consortium::evaluation::{Decision, Outcome, Report, Totals};

fn number_text(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v}"))
}

/// The rows of the totals table: figure, this period, the period before.
fn totals_rows(report: &Report, t: &dyn Fn(&str) -> String) -> Vec<(String, String, String)> {
    type Row = (&'static str, fn(&Totals) -> String);
    let rows: Vec<Row> = vec![
        ("eval_records", |x| x.records.to_string()),
        ("eval_added", |x| x.added.to_string()),
        ("eval_corrected", |x| x.corrected.to_string()),
        ("eval_unique_total", |x| x.unique_titles.to_string()),
        ("eval_requests", |x| x.requests_received.to_string()),
        ("eval_lent", |x| x.lent.to_string()),
        ("eval_fill", |x| number_text(x.fill_rate)),
        ("eval_late", |x| x.answered_late.to_string()),
        ("eval_searches_total", |x| x.searches.to_string()),
        ("eval_empty_share", |x| number_text(x.empty_share)),
        ("eval_planned", |x| x.planned.to_string()),
        ("eval_avoided", |x| x.duplicates_avoided.to_string()),
        ("eval_hand_visits", |x| x.visits.to_string()),
        ("eval_hand_registered_members", |x| {
            x.registered_members.to_string()
        }),
    ];
    rows.into_iter()
        .map(|(key, get)| {
            (
                t(key),
                get(&report.totals),
                report.previous.as_ref().map_or_else(|| "-".into(), get),
            )
        })
        .collect()
}

/// One horizontal bar chart: a bar per member.
fn chart(title: String, color: &str, values: Vec<(String, f64)>) -> Value {
    let max = values.iter().map(|(_, v)| *v).fold(0.0f64, f64::max);
    let bars: Vec<Value> = values
        .iter()
        .enumerate()
        .map(|(i, (label, value))| {
            let width = if max > 0.0 { value / max * 360.0 } else { 0.0 };
            context! {
                label => label.chars().take(30).collect::<String>(),
                value => format!("{value}"),
                width => format!("{width:.1}"),
                text_x => format!("{:.1}", 206.0 + width),
                y => i * 24 + 4,
            }
        })
        .collect();
    context! {
        title => title,
        color => color,
        height => values.len() * 24 + 8,
        bars => bars,
    }
}

/// What the report's templates need, in `lang`.
fn values(answer: &EvaluationAnswer, lang: &str, own: &str) -> Value {
    let t = |key: &str| text(lang, key);
    let report = &answer.report;
    let per_member =
        |get: fn(&jalin_protocol::consortium::evaluation::MemberRow) -> Option<f64>| {
            report
                .members
                .iter()
                .map(|m| (m.name.clone(), get(m).unwrap_or(0.0)))
                .collect::<Vec<_>>()
        };
    let charts = vec![
        chart(
            t("eval_chart_records"),
            "#1f618d",
            per_member(|m| m.figures.as_ref().map(|f| f64::from(f.records))),
        ),
        chart(
            t("eval_chart_lent"),
            "#1e8449",
            per_member(|m| m.figures.as_ref().map(|f| f64::from(f.lent))),
        ),
        chart(
            t("eval_chart_borrowed"),
            "#7d3c98",
            per_member(|m| m.figures.as_ref().map(|f| f64::from(f.borrowed))),
        ),
        chart(
            t("eval_chart_empty"),
            "#b03a2e",
            per_member(|m| m.empty_share),
        ),
    ];
    let flags: Vec<(String, String)> = report
        .flags
        .iter()
        .map(|f| (t(&format!("eval_flag_{}", f.kind)), f.detail.clone()))
        .collect();
    let own_hand = report
        .members
        .iter()
        .find(|m| m.library == own)
        .and_then(|m| m.figures.as_ref())
        .map(|f| Value::from_serialize(f.hand));
    context! {
        report => Value::from_serialize(report),
        number => answer.number,
        periods => Value::from_serialize(&answer.periods),
        period_text => evaluation::show_period(&report.period),
        totals => totals_rows(report, &t),
        charts => charts,
        flags => flags,
        median => report.staff.median_hours_to_answer.map(|h| format!("{h:.1}")),
        decisions_before => Value::from_serialize(&report.decisions_before),
        signatures => Value::from_serialize(&answer.signatures),
        digest => answer.digest.to_hex(),
        own_hand => own_hand,
        here => Value::from_serialize(&answer.here),
    }
}

/// The printable report, a page of its own (what `--out` writes).
/// `library_name` made it at `made_ms`.
pub fn printable(
    answer: &EvaluationAnswer,
    lang: &str,
    library_name: &str,
    made_ms: u64,
) -> String {
    let rendered = templates()
        .get_template("evaluation_print.html")
        .and_then(|template| {
            template.render(context! {
                lang => lang,
                tr => Value::from_serialize(strings(lang)),
                library_name => library_name,
                made => crate::staff::show_time(made_ms),
                ..values(answer, lang, "")
            })
        });
    rendered.unwrap_or_else(|e| format!("the report could not be rendered: {e:#}"))
}

async fn answer_of(
    state: &Arc<AppState>,
    query: &HashMap<String, String>,
) -> Result<EvaluationAnswer, crate::server::ApiError> {
    let library = state.library.clone();
    let period = query.get("period").cloned();
    heavy(state, move || {
        Ok(evaluation::execute(
            &library,
            EvaluationRequest::Report {
                consortium: None,
                period,
            },
        )?)
    })
    .await
}

/// For the librarian's pages: the report of the period asked for, or the page to show
/// instead (the login, or what went wrong).
async fn librarian_report(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<(Visitor, EvaluationAnswer), Response> {
    let visitor = Visitor::of(state, headers, "/librarian/evaluation");
    if let Err(response) = visitor.librarian() {
        return Err(*response);
    }
    match answer_of(state, query).await {
        Ok(answer) => Ok((visitor, answer)),
        Err(e) => Err(visitor.failure(state, &e)),
    }
}

/// A file to download.
fn attachment(content_type: &'static str, name: &'static str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, name),
        ],
        body,
    )
        .into_response()
}

/// `GET /librarian/evaluation?period=N`.
pub(super) async fn evaluation_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match librarian_report(&state, &headers, &query).await {
        Ok((visitor, answer)) => visitor.page(
            &state,
            "evaluation.html",
            &visitor.t("eval_title"),
            values(&answer, visitor.lang, &state.library.id().to_hex()),
        ),
        Err(response) => response,
    }
}

/// `GET /librarian/evaluation/print?period=N`: the printable page.
pub(super) async fn print_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match librarian_report(&state, &headers, &query).await {
        Ok((visitor, answer)) => {
            let config = &state.library.data().config.library;
            crate::server::agreement_page(printable(
                &answer,
                visitor.lang,
                &format!("{} ({})", config.name, config.code),
                state.library.now_ms(),
            ))
        }
        Err(response) => response,
    }
}

/// `GET /librarian/evaluation.csv?period=N`.
pub(super) async fn csv_file(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match librarian_report(&state, &headers, &query).await {
        Ok((_, answer)) => attachment(
            "text/csv; charset=utf-8",
            "attachment; filename=\"evaluasi.csv\"",
            evaluation::csv(&answer.report),
        ),
        Err(response) => response,
    }
}

/// `GET /librarian/evaluation.json?period=N`: the report and the IPLM fields.
pub(super) async fn json_file(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match librarian_report(&state, &headers, &query).await {
        Ok((_, answer)) => attachment(
            "application/json",
            "attachment; filename=\"evaluasi.json\"",
            evaluation::json(&answer),
        ),
        Err(response) => response,
    }
}

fn number(form: &HashMap<String, String>, name: &str) -> Option<u32> {
    field(form, name).parse().ok()
}

/// Reads the decisions written one a line: `WHAT | WHO | YYYY-MM-DD`.
fn decisions(text: &str) -> Result<Vec<Decision>, crate::server::ApiError> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut parts = line.split('|').map(str::trim);
            let what = parts.next().unwrap_or_default().to_string();
            let who = parts.next().unwrap_or_default().to_string();
            let by = parts.next().unwrap_or_default();
            let by_ms = if by.is_empty() {
                0
            } else {
                crate::staff::parse_time(&format!("{by} 23:59")).map_err(|e| {
                    crate::server::ApiError::from(crate::library::LibraryError::from(e))
                })?
            };
            Ok(Decision { what, who, by_ms })
        })
        .collect()
}

/// `POST /librarian/evaluation/{action}`: `figures` (this library's, with what it counts
/// by hand) or `sign`.
pub(super) async fn evaluation_action(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(action): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/evaluation");
    if let Err(response) = visitor.check_form(&state, &form) {
        return *response;
    }
    let period = Some(field(&form, "period"));
    let request = match action.as_str() {
        "figures" => EvaluationRequest::Figures {
            consortium: None,
            period: period.clone(),
            hand: HandInput {
                visits: number(&form, "visits"),
                registered_members: number(&form, "registered_members"),
                opening_days: number(&form, "opening_days"),
                staff: number(&form, "staff"),
            },
        },
        "sign" => {
            let decided = match decisions(&form.get("decisions").cloned().unwrap_or_default()) {
                Ok(d) => d,
                Err(e) => return visitor.failure(&state, &e),
            };
            // Outcomes of the decisions before, each naming its decision (the signature
            // that made it, and its place there).
            let outcomes = (0..jalin_protocol::consortium::evaluation::DECISIONS_MAX * 4)
                .filter_map(|i| {
                    let (signature, index) = field(&form, &format!("decision-{i}"))
                        .split_once(':')
                        .and_then(|(s, n)| Some((Hash32::from_hex(s)?, n.parse().ok()?)))?;
                    let note = field(&form, &format!("outcome-{i}"));
                    let done = form.contains_key(&format!("done-{i}"));
                    (done || !note.is_empty()).then_some(Outcome {
                        signature,
                        index,
                        done,
                        note,
                    })
                })
                .take(jalin_protocol::consortium::evaluation::DECISIONS_MAX)
                .collect();
            EvaluationRequest::Sign {
                consortium: None,
                period: period.clone(),
                seen: Hash32::from_hex(&field(&form, "digest")),
                notes: form.get("notes").cloned().unwrap_or_default(),
                decisions: decided,
                outcomes,
            }
        }
        other => {
            return visitor.error(
                &state,
                StatusCode::NOT_FOUND,
                &format!("{} {other:?}", visitor.t("error_no_action")),
            )
        }
    };
    let library = state.library.clone();
    match heavy(&state, move || Ok(evaluation::execute(&library, request)?)).await {
        Ok(answer) => redirect(&format!("/librarian/evaluation?period={}", answer.number)),
        Err(e) => visitor.failure(&state, &e),
    }
}
