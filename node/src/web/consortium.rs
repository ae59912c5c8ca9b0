//! The partnership's pages: consortia, invites and joining, agreements.

use super::*;
use crate::consortium_requests::Request;
use crate::server::blocking;
use jalin_protocol::consortium::log::Role;
use jalin_protocol::signing::LibraryId;

pub(super) async fn consortium_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/consortium");
    if let Err(response) = visitor.librarian() {
        return *response;
    }
    let library = state.library.clone();
    let built = blocking(move || {
        let consortia = &library.consortia();
        let own = library.id();
        let mut out = Vec::new();
        for summary in consortia.list() {
            let members = consortia.members(&summary.id)?;
            let held = consortia.get(&summary.id)?;
            let rows: Vec<Value> = members
                .members
                .values()
                .map(|m| {
                    let fresh = library.freshness(&m.library);
                    let records = library.store().count_of(&m.library).map(|(live, _)| live).unwrap_or(0);
                    context! {
                        name => m.name.clone(),
                        code => m.code.clone(),
                        role => m.role.to_string(),
                        key => m.library.to_hex(),
                        own => m.library == own,
                        since => jalin_protocol::consortium::agreement::format_time(m.added_ms),
                        last_seen => fresh.last_seen_ms.map(jalin_protocol::consortium::agreement::format_time),
                        records => records,
                    }
                })
                .collect();
            let agreements: Vec<Value> = held
                .agreements
                .ids()
                .into_iter()
                .map(|aid| {
                    let title = held.agreements.versions.get(&aid).map(|v| v.body.title.clone()).unwrap_or_default();
                    let in_force = held
                        .agreements
                        .status(&aid, &held.log.state())
                        .is_some_and(|s| s.in_force.is_some());
                    context! { id => aid.to_hex(), title => title, in_force => in_force }
                })
                .collect();
            out.push(context! {
                id => summary.id.to_hex(),
                name => summary.name.clone(),
                admin => summary.role == Some(Role::Admin),
                members => rows,
                agreements => agreements,
            });
        }
        Ok(out)
    })
    .await;
    match built {
        Ok(consortia) => visitor.page(
            &state,
            "consortium.html",
            &visitor.t("consortium_title"),
            context! { consortia => consortia },
        ),
        Err(e) => visitor.failure(&state, &e),
    }
}

pub(super) fn qr_svg(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(256, 256)
            .build(),
    )
}

/// The page of an invite just made: its ticket, its QR code, and the invitation with the
/// agreement proposed (for `invited`, when the invite was made for a candidate).
pub(super) fn invite_page(
    state: &AppState,
    visitor: &Visitor,
    answer: crate::consortium_requests::Answer,
    invited: Option<String>,
) -> Response {
    let ticket = answer.text.unwrap_or_default();
    let invitation = answer.data["invitation"].as_str().map(str::to_string);
    let code = answer.data["code"].as_str().map(str::to_string);
    let code_until = answer.data["code_expires_ms"]
        .as_u64()
        .map(jalin_protocol::consortium::agreement::format_time);
    visitor.page(
        state,
        "invite.html",
        &visitor.t("invite_title"),
        context! {
            qr_svg => qr_svg(&ticket).unwrap_or_default(),
            ticket => ticket,
            invitation => invitation,
            invited => invited,
            code => code,
            code_until => code_until,
        },
    )
}

pub(super) async fn consortium_action(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(action): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/consortium");
    if let Err(response) = visitor.check_form(&state, &form) {
        return *response;
    }
    let field = |name: &str| field(&form, name);
    let consortium = form.get("consortium").cloned();
    let request = match action.as_str() {
        "create" => Request::Create {
            name: field("name"),
        },
        "invite" => Request::Invite {
            consortium,
            role: if field("role") == "admin" {
                Role::Admin
            } else {
                Role::Member
            },
            expires_s: field("days").parse::<u64>().unwrap_or(14).clamp(1, 90) * 86_400,
            note: field("note").chars().take(200).collect(),
            with_agreement: true,
            code: field("code") == "1",
        },
        "accept" => Request::Accept {
            acceptance: field("acceptance"),
        },
        "remove" => Request::Remove {
            consortium,
            member: field("member"),
            reason: field("reason"),
        },
        "draft" => Request::Draft {
            consortium,
            text: form.get("text").cloned().unwrap_or_default(),
        },
        "join_code" => return join_code(&state, &visitor, &field("code")).await,
        "join" => {
            let text = form.get("ticket").cloned().unwrap_or_default();
            return match jalin_protocol::consortium::invitation::read(&text) {
                // An invitation with an agreement: read it first.
                Ok(invitation) if field("agree") != "1" && invitation.agreement.is_some() => {
                    join_preview(&state, &visitor, invitation)
                }
                Ok(invitation) => join(&state, &visitor, &invitation.ticket).await,
                // The join says what is wrong with a ticket, as it always has.
                Err(_) => join(&state, &visitor, &text).await,
            };
        }
        other => {
            return visitor.error(
                &state,
                StatusCode::NOT_FOUND,
                &format!("{} {other:?}", visitor.t("error_no_action")),
            )
        }
    };
    match crate::server::run_request(&state, request).await {
        Ok(answer) if action == "invite" => invite_page(&state, &visitor, answer, None),
        Ok(_) => redirect("/librarian/consortium"),
        Err(e) => visitor.failure(&state, &e),
    }
}

/// The agreement an invitation carries, for the librarian to read before joining.
fn join_preview(
    state: &Arc<AppState>,
    visitor: &Visitor,
    invitation: jalin_protocol::consortium::invitation::Invitation,
) -> Response {
    let Some(proposed) = invitation.agreement else {
        return redirect("/librarian/consortium");
    };
    let t = &proposed.terms;
    let yes = |b: bool| visitor.t(if b { "yes" } else { "no" });
    let terms = vec![
        (visitor.t("term_union_catalog"), yes(t.union_catalog)),
        (
            visitor.t("term_interlibrary_loan"),
            yes(t.interlibrary_loan),
        ),
        (
            visitor.t("term_coordinated_acquisition"),
            yes(t.coordinated_acquisition),
        ),
        (
            visitor.t("term_staff_development"),
            yes(t.staff_development),
        ),
        (
            visitor.t("term_loan_period_days"),
            t.loan_period_days.to_string(),
        ),
        (
            visitor.t("term_items_per_request"),
            t.items_per_request.to_string(),
        ),
        (
            visitor.t("term_evaluation_period_months"),
            t.evaluation_period_months.to_string(),
        ),
    ];
    visitor.page(
        state,
        "join_preview.html",
        &visitor.t("join_preview_title"),
        context! {
            proposed => Value::from_serialize(&proposed),
            terms => terms,
            ticket => invitation.ticket,
        },
    )
}

/// Joins with a ticket: the acceptance goes to the inviter's node over the network, and
/// the consortium's documents come back.
pub(super) async fn join(state: &Arc<AppState>, visitor: &Visitor, ticket: &str) -> Response {
    let joined = crate::joining::join_with_ticket(
        ticket,
        false,
        |_| {},
        |request| {
            let state = state.clone();
            async move { crate::server::run_request(&state, request).await }
        },
    )
    .await;
    joined_page(state, visitor, joined)
}

/// Joins with a code read over the phone: the inviting node looked for on the local
/// network (`[partners] announce_to`) and through `[network] relays`.
async fn join_code(state: &Arc<AppState>, visitor: &Visitor, text: &str) -> Response {
    let code = match crate::join_code::JoinCode::parse(text) {
        Ok(code) => code,
        Err(e) => {
            return visitor.error(
                state,
                StatusCode::BAD_REQUEST,
                &format!("{}: {e}", visitor.t("error_code_failed")),
            )
        }
    };
    let config = &state.library.data().config;
    let lan: Vec<std::net::SocketAddr> = config
        .partners
        .announce_to
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect();
    let relays: Vec<libp2p::Multiaddr> = config
        .network
        .relays
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect();
    let joined = crate::joining::join_with_code(
        &code,
        &lan,
        &relays,
        false,
        |_| {},
        |request| {
            let state = state.clone();
            async move { crate::server::run_request(&state, request).await }
        },
    )
    .await;
    match joined {
        Ok(Err(e)) => visitor.error(
            state,
            StatusCode::BAD_GATEWAY,
            &format!("{}: {e}", visitor.t("error_code_failed")),
        ),
        Ok(Ok(joined)) => joined_page(state, visitor, Ok(joined)),
        Err(e) => visitor.failure(state, &e),
    }
}

/// Where a join leaves the librarian: the consortium page, the acceptance to send by
/// hand, or why not.
fn joined_page(
    state: &Arc<AppState>,
    visitor: &Visitor,
    joined: Result<crate::joining::Joined, crate::server::ApiError>,
) -> Response {
    use crate::joining::Joined;
    use crate::network::{JoinError, NetError};
    match joined {
        // The code opened an invitation with an agreement: read it first (its form joins
        // with the invitation, as a pasted one does).
        Ok(Joined::Proposed { invitation }) => {
            match jalin_protocol::consortium::invitation::read(&invitation) {
                Ok(invitation) => join_preview(state, visitor, invitation),
                Err(e) => visitor.error(state, StatusCode::BAD_GATEWAY, &e.to_string()),
            }
        }
        Ok(Joined::OverNetwork { .. }) => redirect("/librarian/consortium"),
        Ok(Joined::ByHand {
            acceptance,
            failure: None,
            ..
        }) => visitor.message(state, &visitor.t("join_title"), Some(&acceptance)),
        Ok(Joined::ByHand {
            acceptance,
            failure: Some(e),
            ..
        }) => {
            // A refusal is the inviter's answer (ask for a new ticket); anything else is
            // the way there (send the acceptance by hand).
            let (status, words) = match &e {
                NetError::Join(JoinError::Refused(_)) => {
                    (StatusCode::CONFLICT, "error_join_refused")
                }
                _ => (StatusCode::BAD_GATEWAY, "error_join_unreachable"),
            };
            visitor.error(
                state,
                status,
                &format!("{} ({e})\n{acceptance}", visitor.t(words)),
            )
        }
        Err(e) => visitor.failure(state, &e),
    }
}

/// The ids of a consortium and its agreement, from the page's path.
pub(super) fn agreement_ids(
    state: &AppState,
    consortium: &str,
    agreement: &str,
) -> Result<(Hash32, Hash32), ConsortiumError> {
    let consortia = &state.library.consortia();
    let id = consortia.resolve(Some(consortium))?;
    let aid = consortia.resolve_agreement(&id, Some(agreement))?;
    Ok((id, aid))
}

pub(super) async fn agreement_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((consortium, agreement)): Path<(String, String)>,
) -> Response {
    let visitor = Visitor::of(
        &state,
        &headers,
        &format!("/librarian/agreement/{consortium}/{agreement}"),
    );
    if let Err(response) = visitor.librarian() {
        return *response;
    }
    let (id, aid) = match agreement_ids(&state, &consortium, &agreement) {
        Ok(ids) => ids,
        Err(e) => return visitor.failure(&state, &e.into()),
    };
    let (status, held) = match state.library.consortia().agreement_status(&id, &aid) {
        Ok(s) => s,
        Err(e) => return visitor.failure(&state, &e.into()),
    };
    let own = state.library.id();
    let members = held.log.state();
    let name_of = |library: &LibraryId| {
        members.members.get(library).map_or_else(
            || library.fingerprint(),
            |m| format!("{} ({})", m.name, m.code),
        )
    };
    let chain = held.agreements.chain(&aid);
    let lang = visitor.lang;
    let mut versions = Vec::new();
    let mut previous: Option<&str> = None;
    for (version, (_, signed)) in status.versions.iter().zip(&chain) {
        let body = &signed.body;
        let yes_no = |b: bool| text(lang, if b { "yes" } else { "no" });
        let terms = vec![
            context! { label => text(lang, "term_union_catalog"), value => yes_no(body.terms.union_catalog) },
            context! { label => text(lang, "term_interlibrary_loan"), value => yes_no(body.terms.interlibrary_loan) },
            context! { label => text(lang, "term_coordinated_acquisition"), value => yes_no(body.terms.coordinated_acquisition) },
            context! { label => text(lang, "term_staff_development"), value => yes_no(body.terms.staff_development) },
            context! { label => text(lang, "term_loan_period_days"), value => body.terms.loan_period_days },
            context! { label => text(lang, "term_items_per_request"), value => body.terms.items_per_request },
            context! { label => text(lang, "term_evaluation_period_months"), value => body.terms.evaluation_period_months },
        ];
        let diff: Vec<Value> = previous
            .map(|before| {
                similar::TextDiff::from_lines(before, body.text.as_str())
                    .iter_all_changes()
                    .map(|change| {
                        let (kind, sign) = match change.tag() {
                            similar::ChangeTag::Insert => ("add", "+ "),
                            similar::ChangeTag::Delete => ("del", "- "),
                            similar::ChangeTag::Equal => ("same", "  "),
                        };
                        context! { kind => kind, text => format!("{sign}{}", change.value().trim_end_matches('\n')) }
                    })
                    .collect()
            })
            .unwrap_or_default();
        previous = Some(body.text.as_str());
        let signatures: Vec<Value> = version
            .signed_by
            .iter()
            .map(|(library, ms)| context! { name => name_of(library), when => jalin_protocol::consortium::agreement::format_time(*ms) })
            .collect();
        versions.push(context! {
            id => version.id.to_hex(),
            number => version.number,
            in_force => version.in_force,
            terms => terms,
            html => jalin_protocol::consortium::agreement::markdown(&body.text),
            diff => diff,
            signatures => signatures,
            signed => version.signed_by.len(),
            required => version.required,
            can_sign => members.members.contains_key(&own) && !version.signed_by.contains_key(&own),
        });
    }
    let title = chain
        .first()
        .map(|(_, v)| v.body.title.clone())
        .unwrap_or_default();
    let current_file = chain
        .last()
        .map(|(_, v)| jalin_protocol::consortium::agreement::draft_file(&v.body))
        .unwrap_or_default();
    visitor.page(
        &state,
        "agreement.html",
        &title,
        context! {
            title => title,
            consortium_name => held.log.name(),
            in_force => status.in_force.is_some(),
            versions => versions,
            consortium => id.to_hex(),
            agreement => aid.to_hex(),
            current_file => current_file,
        },
    )
}

pub(super) async fn agreement_sign(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((consortium, agreement)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/consortium");
    if let Err(response) = visitor.check_form(&state, &form) {
        return *response;
    }
    let request = Request::Sign {
        consortium: Some(consortium.clone()),
        agreement: Some(agreement.clone()),
        version: form.get("version").cloned(),
    };
    match crate::server::run_request(&state, request).await {
        Ok(_) => redirect(&format!("/librarian/agreement/{consortium}/{agreement}")),
        Err(e) => visitor.failure(&state, &e),
    }
}

pub(super) async fn agreement_amend(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((consortium, agreement)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/consortium");
    if let Err(response) = visitor.check_form(&state, &form) {
        return *response;
    }
    let request = Request::Amend {
        consortium: Some(consortium.clone()),
        agreement: agreement.clone(),
        text: form.get("text").cloned().unwrap_or_default(),
    };
    match crate::server::run_request(&state, request).await {
        Ok(_) => redirect(&format!("/librarian/agreement/{consortium}/{agreement}")),
        Err(e) => visitor.failure(&state, &e),
    }
}

pub(super) async fn agreement_export(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((consortium, agreement)): Path<(String, String)>,
) -> Response {
    let visitor = Visitor::of(&state, &headers, "/librarian/consortium");
    if let Err(response) = visitor.librarian() {
        return *response;
    }
    let request = Request::ExportAgreement {
        consortium: Some(consortium),
        agreement: Some(agreement),
    };
    match crate::server::run_request(&state, request).await {
        Ok(answer) => crate::server::agreement_page(answer.text.unwrap_or_default()),
        Err(e) => visitor.failure(&state, &e),
    }
}
