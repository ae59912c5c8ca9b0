//! Imports started from the web: the upload, the job as it runs, its report.

use super::*;
use crate::library::{ImportOptions, ImportSummary, Progress, Source};
use axum::extract::Multipart;
use jalin_protocol::format::Format;

/// An import started from the web, as it goes.
#[derive(Default)]
pub(super) struct Job {
    file: String,
    bytes: u64,
    progress: Option<Progress>,
    /// The summary, or what failed: its kind (`LibraryError::code`) and the core's words.
    done: Option<Result<ImportSummary, (&'static str, String)>>,
}

pub(super) async fn import_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Response {
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

/// A form with a file, as the librarian's upload forms send it: the fields, and the file
/// (its name and bytes) when there is one. The form sends its CSRF token before the
/// file: a request that does not is refused before the file is read.
pub(super) async fn read_upload(
    state: &AppState,
    visitor: &Visitor,
    multipart: &mut Multipart,
) -> Result<(HashMap<String, String>, Option<(String, Vec<u8>)>), Box<Response>> {
    let mut form = HashMap::new();
    let mut file: Option<(String, Vec<u8>)> = None;
    let broken = |e: &dyn std::fmt::Display| {
        Box::new(visitor.error(
            state,
            StatusCode::BAD_REQUEST,
            &format!("{} ({e})", visitor.t("error_upload_broken")),
        ))
    };
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_string();
                if name == "file" {
                    visitor.check_form(state, &form)?;
                    let file_name = field.file_name().unwrap_or("upload").to_string();
                    match field.bytes().await {
                        Ok(bytes) => file = Some((file_name, bytes.to_vec())),
                        Err(e) => return Err(broken(&e)),
                    }
                } else {
                    form.insert(name, field.text().await.unwrap_or_default());
                }
            }
            Ok(None) => break,
            Err(e) => return Err(broken(&e)),
        }
    }
    visitor.check_form(state, &form)?;
    Ok((form, file))
}

/// The file of an upload form, refused (the page to answer) when it is missing or empty.
pub(super) async fn read_file(
    state: &AppState,
    visitor: &Visitor,
    multipart: &mut Multipart,
) -> Result<Vec<u8>, Box<Response>> {
    let (_, file) = read_upload(state, visitor, multipart).await?;
    match file.filter(|(_, b)| !b.is_empty()) {
        Some((_, bytes)) => Ok(bytes),
        None => Err(Box::new(visitor.error(
            state,
            StatusCode::BAD_REQUEST,
            &visitor.t("error_upload_empty"),
        ))),
    }
}

pub(super) async fn import_start(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/import");
    let (form, file) = match read_upload(&state, &visitor, &mut multipart).await {
        Ok(read) => read,
        Err(response) => return *response,
    };
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

pub(super) async fn import_job_page(
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
