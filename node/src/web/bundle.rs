//! The flash-disk page: "Kirim lewat flashdisk" (a bundle for a member, downloaded) and
//! "Terima dari flashdisk" (a bundle uploaded, shown with what it holds, applied only when
//! the librarian says so).
//!
//! An uploaded bundle waits in the data directory (`pending-bundle.jalin`, one at a time:
//! a new upload replaces it) under a random token the confirming form carries, so the
//! bundle applied is the one the librarian was shown.

use super::import::read_file;
use super::*;
use crate::bundle::{self, BundleReport};
use crate::server::{after_bundle, blocking, heavy, streamed, ApiError};
use axum::extract::Multipart;
use jalin_protocol::consortium::agreement::format_time;
use jalin_protocol::signing::LibraryId;

const PENDING_FILE: &str = "pending-bundle.jalin";

fn pending_path(state: &AppState) -> std::path::PathBuf {
    state.library.data().path.join(PENDING_FILE)
}

/// The report as the page shows it.
fn report_value(report: &BundleReport) -> Value {
    context! {
        from => report.from_name.clone().unwrap_or_else(|| report.from.chars().take(16).collect()),
        number => report.number,
        made => format_time(report.made_ms),
        documents => report.documents.iter().map(|d| context! {
            name => d.name.clone().unwrap_or_else(|| d.consortium.chars().take(16).collect()),
            documents => d.documents,
            new => d.new,
            refused => d.refused.clone(),
        }).collect::<Vec<_>>(),
        catalogs => report.catalogs.iter().map(|c| context! {
            name => c.name.clone().unwrap_or_else(|| c.library.chars().take(16).collect()),
            changes => c.changes,
            kb => c.bytes.div_ceil(1024),
            new => c.new,
            refused => c.refused.clone(),
        }).collect::<Vec<_>>(),
        ill_messages => report.ill_messages,
        ill_taken => report.ill_taken,
        ill_refused => report.ill_refused.clone(),
        file_kb => report.file_bytes.div_ceil(1024),
        applied => report.applied,
        new_changes => report.new_changes(),
        new_documents => report.new_documents(),
        clock_warning => report.clock_warning.is_some(),
        empty => report.documents.is_empty() && report.catalogs.is_empty() && report.ill_messages == 0,
    }
}

async fn render(state: &Arc<AppState>, visitor: &Visitor, extra: Value) -> Response {
    let library = state.library.clone();
    let exchanges = match blocking(move || {
        bundle::exchanges(&library).map_err(|e| ApiError::from(LibraryError::from(e)))
    })
    .await
    {
        Ok(list) => list,
        Err(e) => return visitor.failure(state, &e),
    };
    let members: Vec<Value> = exchanges
        .iter()
        .map(|e| {
            context! {
                library => e.library.clone(),
                name => e.name.clone().unwrap_or_else(|| e.library.chars().take(16).collect()),
                made => e.made,
                taken => e.taken,
                taken_made => e.taken_made_ms.map(format_time),
            }
        })
        .collect();
    visitor.page(
        state,
        "bundle.html",
        &visitor.t("bundle_title"),
        context! { members => members, ..extra },
    )
}

/// `GET /librarian/bundle`.
pub(super) async fn bundle_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/bundle");
    if let Err(response) = visitor.librarian() {
        return *response;
    }
    render(&state, &visitor, context! {}).await
}

/// `POST /librarian/bundle/send`: the bundle for one member, as a download.
pub(super) async fn send(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/bundle");
    if let Err(response) = visitor.check_form(&state, &form) {
        return *response;
    }
    let library = state.library.clone();
    let who = field(&form, "library");
    let to = match blocking(move || {
        let to = LibraryId::from_hex(&who)
            .ok()
            .filter(|id| library.consortia().trust().is_co_member(id));
        match to {
            Some(to) => Ok(to),
            None => Ok(bundle::find_co_member(&library, &who).map_err(LibraryError::from)?),
        }
    })
    .await
    {
        Ok(to) => to,
        Err(e) => return visitor.failure(&state, &e),
    };
    let admitted = match state.admission.admit().await {
        Ok(admitted) => admitted,
        Err(e) => return visitor.failure(&state, &e),
    };
    let library = state.library.clone();
    let number = match bundle::reserve(&library, &to) {
        Ok(number) => number,
        Err(e) => return visitor.failure(&state, &LibraryError::from(e).into()),
    };
    let name = bundle::file_name(&library, &to, number);
    streamed(
        admitted,
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        move |sink| {
            bundle::export_numbered(&library, &to, number, sink)
                .map(|_| ())
                .map_err(|e| std::io::Error::other(e.to_string()))
        },
    )
}

/// `POST /librarian/bundle/receive`: an uploaded bundle, read and shown; kept until the
/// librarian applies it or uploads another.
pub(super) async fn receive(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/bundle");
    let bytes = match read_file(&state, &visitor, &mut multipart).await {
        Ok(bytes) => bytes,
        Err(response) => return *response,
    };
    let path = pending_path(&state);
    let shared = state.clone();
    let read = heavy(&state, move || {
        let report = bundle::preview(&shared.library, &bytes[..]).map_err(LibraryError::from)?;
        // The file and its token change together: the form shown applies this file.
        let mut pending = shared
            .web
            .pending_bundle
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        write_private(&path, &bytes).map_err(|e| LibraryError::Io {
            path: path.clone(),
            source: e,
        })?;
        let token = random_hex();
        *pending = Some(token.clone());
        Ok((report, token))
    })
    .await;
    let (report, token) = match read {
        Ok(read) => read,
        Err(e) => return visitor.failure(&state, &e),
    };
    render(
        &state,
        &visitor,
        context! { preview => report_value(&report), token => token },
    )
    .await
}

/// `POST /librarian/bundle/apply`: takes in the bundle shown (or cancels it).
pub(super) async fn apply(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/bundle");
    if let Err(response) = visitor.check_form(&state, &form) {
        return *response;
    }
    let token = field(&form, "token");
    let path = pending_path(&state);
    // Taken out of the way under the lock: an upload made now cannot replace the file
    // being applied.
    let applying = state.library.data().path.join("applying-bundle.jalin");
    let taken_out = {
        let mut pending = state
            .web
            .pending_bundle
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match pending.take_if(|t| !token.is_empty() && crate::server::same_secret(t, &token)) {
            Some(_) if form.contains_key("cancel") => {
                let _ = std::fs::remove_file(&path);
                return redirect("/librarian/bundle");
            }
            Some(_) => std::fs::rename(&path, &applying).is_ok(),
            None => false,
        }
    };
    if !taken_out {
        return visitor.error(&state, StatusCode::CONFLICT, &visitor.t("bundle_gone"));
    }
    let path = applying;
    let library = state.library.clone();
    let taken = heavy(&state, move || {
        let result = bundle::import(&library, || {
            std::fs::File::open(&path).map(std::io::BufReader::new)
        });
        let _ = std::fs::remove_file(&path);
        Ok(result.map_err(LibraryError::from)?)
    })
    .await;
    match taken {
        Ok(report) => {
            after_bundle(&state, &report).await;
            render(&state, &visitor, context! { done => report_value(&report) }).await
        }
        Err(e) => visitor.failure(&state, &e),
    }
}

/// Writes a file readable by this account alone.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
