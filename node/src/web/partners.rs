//! The partners page (mencari mitra): this library's profile (a form for what the
//! librarian states, the catalog's figures, the text and its QR code), profiles of other
//! libraries taken in (pasted, from a file), and the candidates set beside this catalog,
//! each with an invitation carrying the agreement proposed.

use super::consortium::{invite_page, qr_svg};
use super::import::read_file;
use super::*;
use crate::consortium_requests::Request;
use crate::profiles::{self, DetailsInput, ProfileRequest};
use crate::server::{blocking, heavy};
use axum::extract::Multipart;
use jalin_protocol::collection::DIVISIONS;
use jalin_protocol::consortium::log::Role;
use jalin_protocol::profile::LibraryType;

fn division_label(code: &str, lang: &str) -> String {
    DIVISIONS
        .iter()
        .find(|(c, _, _)| *c == code)
        .map(|(c, id, en)| format!("{c} {}", if lang == "en" { en } else { id }))
        .unwrap_or_else(|| code.to_string())
}

/// The page, with `extra` (a profile just taken in) merged in.
async fn render(state: &Arc<AppState>, visitor: &Visitor, extra: Value) -> Response {
    let library = state.library.clone();
    let built = heavy(state, move || {
        let own = profiles::execute(&library, ProfileRequest::Show)?;
        let candidates = profiles::candidates(&library)?;
        let details = library.profiles().details();
        // The consortia this library may invite to (as an admin).
        let consortia: Vec<(String, String)> = library
            .consortia()
            .list()
            .into_iter()
            .filter(|c| c.role == Some(Role::Admin))
            .map(|c| (c.id.to_hex(), c.name))
            .collect();
        Ok((own, candidates, details, consortia))
    })
    .await;
    let (own, candidates, details, consortia) = match built {
        Ok(built) => built,
        Err(e) => return visitor.failure(state, &e),
    };
    let lang = visitor.lang;
    let text = own.text.unwrap_or_default();
    let candidates: Vec<Value> = candidates
        .iter()
        .map(|c| {
            context! {
                profile => Value::from_serialize(&c.profile),
                partner => c.partner,
                source => Value::from_serialize(c.source),
                text => c.text.clone(),
                distance => c.complement.distance_km.map(|km| format!("{km:.1}")),
                their_titles => c.complement.their_titles,
                new_titles => c.complement.new_titles,
                share_new => format!("{:.0}", c.complement.share_new * 100.0),
                divisions => c.complement.divisions.iter().map(|d| context! {
                    name => division_label(&d.division, lang),
                    theirs => d.their_titles,
                    ours => d.our_titles,
                    lacking => format!("{:.0}", d.share_lacking * 100.0),
                    new_titles => d.new_titles,
                    exact => d.exact,
                    sampled => d.sampled,
                }).collect::<Vec<_>>(),
            }
        })
        .collect();
    visitor.page(
        state,
        "partners.html",
        &visitor.t("partners_title"),
        context! {
            own => Value::from_serialize(&own.profile),
            own_divisions => own.profile.as_ref().map(|p| p.divisions.iter()
                .filter(|(_, n)| *n > 0)
                .map(|(code, n)| context! { name => division_label(code, lang), titles => n })
                .collect::<Vec<_>>()),
            details => Value::from_serialize(&details),
            coordinates => details.coordinates.map(|c| c.to_string()).unwrap_or_default(),
            kind => details.kind.as_str(),
            kinds => LibraryType::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
            text => text.clone(),
            qr_svg => qr_svg(&text).unwrap_or_default(),
            candidates => candidates,
            consortia => consortia,
            ..extra
        },
    )
}

/// `GET /librarian/partners`.
pub(super) async fn partners_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/partners");
    if let Err(response) = visitor.librarian() {
        return *response;
    }
    render(&state, &visitor, context! {}).await
}

/// `GET /librarian/partners/profile.txt`: this library's profile text, to save and give.
pub(super) async fn profile_text(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/partners");
    if let Err(response) = visitor.librarian() {
        return *response;
    }
    let library = state.library.clone();
    match heavy(&state, move || {
        Ok(profiles::execute(&library, ProfileRequest::Show)?)
    })
    .await
    {
        Ok(answer) => (
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"profil-perpustakaan.txt\"",
                ),
            ],
            format!("{}\n", answer.text.unwrap_or_default()),
        )
            .into_response(),
        Err(e) => visitor.failure(&state, &e),
    }
}

/// `POST /librarian/partners/profile`: changes what the profile states.
pub(super) async fn set_profile(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/partners");
    if let Err(response) = visitor.check_form(&state, &form) {
        return *response;
    }
    let text = |name: &str| Some(field(&form, name));
    let input = DetailsInput {
        kind: text("kind"),
        address: text("address"),
        district: text("district"),
        hours: text("hours"),
        contact: text("contact"),
        interlibrary_loan: Some(form.contains_key("interlibrary_loan")),
        reading_space: Some(form.contains_key("reading_space")),
        internet: Some(form.contains_key("internet")),
        coordinates: text("coordinates"),
    };
    let library = state.library.clone();
    match blocking(move || Ok(profiles::set_details(&library, input)?)).await {
        Ok(_) => redirect("/librarian/partners#own-profile"),
        Err(e) => visitor.failure(&state, &e),
    }
}

async fn take(state: &Arc<AppState>, visitor: &Visitor, text: String) -> Response {
    let library = state.library.clone();
    match blocking(move || {
        Ok(profiles::execute(
            &library,
            ProfileRequest::Import { text },
        )?)
    })
    .await
    {
        Ok(answer) => {
            render(
                state,
                visitor,
                context! { taken => Value::from_serialize(&answer.profile) },
            )
            .await
        }
        Err(e) => visitor.failure(state, &e),
    }
}

/// `POST /librarian/partners/import`: takes in a pasted profile.
pub(super) async fn import_text(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/partners");
    if let Err(response) = visitor.check_form(&state, &form) {
        return *response;
    }
    take(&state, &visitor, field(&form, "text")).await
}

/// `POST /librarian/partners/upload`: takes in a profile from a file.
pub(super) async fn import_file(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/partners");
    let bytes = match read_file(&state, &visitor, &mut multipart).await {
        Ok(bytes) => bytes,
        Err(response) => return *response,
    };
    let text = String::from_utf8_lossy(&bytes).into_owned();
    take(&state, &visitor, text).await
}

/// `POST /librarian/partners/forget`: forgets a candidate's profile.
pub(super) async fn forget(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/partners");
    if let Err(response) = visitor.check_form(&state, &form) {
        return *response;
    }
    let library = field(&form, "library");
    let node = state.library.clone();
    match blocking(move || {
        Ok(profiles::execute(
            &node,
            ProfileRequest::Forget { library },
        )?)
    })
    .await
    {
        Ok(_) => redirect("/librarian/partners#candidates"),
        Err(e) => visitor.failure(&state, &e),
    }
}

/// `POST /librarian/partners/invite`: an invitation for a candidate: a ticket with the
/// agreement the consortium proposes, for it to read before it joins.
pub(super) async fn invite(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/partners");
    if let Err(response) = visitor.check_form(&state, &form) {
        return *response;
    }
    let request = Request::Invite {
        consortium: form.get("consortium").cloned(),
        role: Role::Member,
        expires_s: field(&form, "days")
            .parse::<u64>()
            .unwrap_or(14)
            .clamp(1, 90)
            * 86_400,
        note: field(&form, "name").chars().take(200).collect(),
        with_agreement: true,
        code: false,
    };
    match crate::server::run_request(&state, request).await {
        Ok(answer) => invite_page(&state, &visitor, answer, Some(field(&form, "name"))),
        Err(e) => visitor.failure(&state, &e),
    }
}
