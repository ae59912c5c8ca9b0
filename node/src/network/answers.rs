//! The sync protocol's answers, from the catalogs as the trust rule lets them go to a
//! peer ([`crate::catalogs::SharedCatalogs`]), and what taking in a peer's answer calls
//! for. Blocking work: run on the event loop's workers.

use super::*;

pub(super) use crate::consortium::documents_digest;

/// The shards of group `group`.
pub(super) fn group_shards(group: u8) -> std::ops::Range<u16> {
    let first = u16::from(group) * SHARDS_PER_GROUP;
    first..first + SHARDS_PER_GROUP
}

/// Each shard's digest: the first [`DIGEST_BYTES`] of SHA-256 over its heads (zeros for
/// an empty shard).
pub(super) fn shard_digests(
    catalogs: &SharedCatalogs,
    namespace: &LibraryId,
    shards: std::ops::Range<u16>,
) -> Result<Vec<[u8; DIGEST_BYTES]>, CatalogError> {
    shards
        .map(|shard| {
            let heads = catalogs.shard_heads(namespace, shard)?;
            if heads.is_empty() {
                return Ok([0u8; DIGEST_BYTES]);
            }
            let mut hasher = Sha256::new();
            for head in heads {
                hasher.update(head);
            }
            let mut digest = [0u8; DIGEST_BYTES];
            digest.copy_from_slice(&hasher.finalize()[..DIGEST_BYTES]);
            Ok(digest)
        })
        .collect()
}

/// Each group's digest over its shards' digests, concatenated.
pub(super) fn group_digests(shards: &[[u8; DIGEST_BYTES]]) -> Vec<u8> {
    shards
        .chunks(usize::from(SHARDS_PER_GROUP))
        .flat_map(|group| {
            let mut hasher = Sha256::new();
            for digest in group {
                hasher.update(digest);
            }
            hasher.finalize()[..DIGEST_BYTES].to_vec()
        })
        .collect()
}

/// The shards of `namespace` written since the last announcement, with their heads, for
/// a `Changed` notice; empty when too many to name (the receivers catch up in full).
pub(super) fn written_shards(
    library: &Library,
    namespace: &LibraryId,
) -> Vec<(u16, Vec<ByteArray<32>>)> {
    let touched = library.take_touched(namespace);
    if touched.len() > SHARDS_PER_REQUEST {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(touched.len());
    for shard in touched {
        match library.shard_heads(namespace, shard) {
            Ok(heads) if heads.len() <= NOTICE_HEADS_MAX => {
                out.push((shard, heads.into_iter().map(ByteArray::new).collect()));
            }
            _ => return Vec::new(),
        }
    }
    out
}

/// Whether a `Changed` notice's shards can be fetched directly: some, and within limits.
pub(super) fn notice_is_usable<L: AsRef<[ByteArray<32>]>>(shards: &[(u16, L)]) -> bool {
    !shards.is_empty()
        && shards.len() <= SHARDS_PER_REQUEST
        && shards
            .iter()
            .all(|(shard, heads)| *shard < SHARD_COUNT && heads.as_ref().len() <= NOTICE_HEADS_MAX)
}

/// The `Changes` request for the shards of a notice whose heads differ from this node's
/// (blocking work); `None` when all are the same here.
pub(super) fn changes_for_notice(
    catalogs: &SharedCatalogs,
    namespace: LibraryId,
    shards: Vec<(u16, Vec<ByteArray<32>>)>,
) -> Option<SyncRequest> {
    let mut differ = Vec::new();
    for (shard, theirs) in shards {
        let Ok(mine) = catalogs.shard_heads(&namespace, shard) else {
            continue;
        };
        let mut theirs: Vec<[u8; 32]> = theirs.into_iter().map(ByteArray::into_array).collect();
        let mut sorted = mine.clone();
        theirs.sort_unstable();
        sorted.sort_unstable();
        if theirs != sorted {
            differ.push((shard, mine.into_iter().map(ByteArray::new).collect()));
        }
    }
    (!differ.is_empty()).then_some(SyncRequest::Changes {
        namespace,
        shards: differ.into(),
        // Sized to the link as it is sent (`NetLoop::send`).
        max_bytes: 0,
    })
}

/// Answers a request of `peer` from the stored catalog and consortia (blocking work): only
/// what the trust rule lets go to it, the catalogs and documents of the consortia it
/// shares with this library.
pub(super) fn answer(library: &Library, peer: &LibraryId, request: SyncRequest) -> SyncResponse {
    let refused = |e: &dyn std::fmt::Display| SyncResponse::Refused {
        reason: e.to_string(),
    };
    // Every catalog read goes through the view, which asks the trust rule; documents are
    // asked here.
    let shared = library.shared_with(peer);
    let trust = shared.trust();
    if let SyncRequest::Documents { consortium } = &request {
        if !trust.shares(peer, consortium) {
            return refused(&CatalogError::NotShared);
        }
    }
    match request {
        SyncRequest::Hello => {
            let catalogs = match shared.digests() {
                Ok(digests) => digests
                    .into_iter()
                    .map(|(ns, digest)| {
                        let held = shared.held(&ns).unwrap_or(0);
                        (ns, ByteArray::new(digest), held)
                    })
                    .collect(),
                Err(e) => return refused(&e),
            };
            let consortia = trust
                .consortia()
                .filter(|c| trust.shares(peer, c))
                .filter_map(|c| {
                    let text = library.consortia().export(c).ok()?;
                    Some((*c, ByteArray::new(documents_digest(&text))))
                })
                .collect();
            SyncResponse::Hello {
                catalogs,
                consortia,
                time_ms: library.now_ms(),
            }
        }
        SyncRequest::Summary { namespace } => {
            match shard_digests(&shared, &namespace, 0..SHARD_COUNT) {
                Ok(digests) => SyncResponse::Summary {
                    namespace,
                    groups: ByteBuf::from(group_digests(&digests)),
                },
                Err(e) => refused(&e),
            }
        }
        SyncRequest::Group { namespace, group } => {
            // The group's bounds were checked as the request was read (`sync::decode`).
            match shard_digests(&shared, &namespace, group_shards(group)) {
                Ok(digests) => SyncResponse::Group {
                    namespace,
                    group,
                    shards: ByteBuf::from(digests.concat()),
                },
                Err(e) => refused(&e),
            }
        }
        SyncRequest::Changes {
            namespace,
            shards,
            max_bytes,
        } => {
            // As much as the asker's link carries in a few seconds (it says), never more
            // than the protocol's answer, and at least one change: a shard's changes go in
            // their order, so a prefix of them applies, and the rest follows (`more`).
            // Never under 16 KiB: an asker cannot make this node read a shard's changes
            // once for each of them.
            // Nor more than this node's own memory budget gives an answer in the air
            // (`[limits] memory_mb`): it holds what it sends until it has gone.
            let most =
                usize::try_from(library.data().config.limits.memory_plan().sync_answer_bytes)
                    .unwrap_or(CHANGES_BYTES_PER_RESPONSE)
                    .min(CHANGES_BYTES_PER_RESPONSE);
            let limit = match usize::try_from(max_bytes) {
                Ok(0) | Err(_) => most,
                Ok(asked) => asked.clamp(16 * 1024, most.max(16 * 1024)),
            };
            let mut out = Vec::new();
            let mut rest = Vec::new();
            let mut bytes = 0usize;
            for (shard, have) in shards {
                if !rest.is_empty() || bytes >= limit {
                    rest.push(shard);
                    continue;
                }
                let have: Vec<[u8; 32]> = have.into_iter().map(ByteArray::into_array).collect();
                // Only what fits is read (with its envelopes); the answer's first change
                // always, so a change larger than the limit still goes.
                let budget = limit.saturating_sub(bytes);
                match shared.changes_since_within(&namespace, shard, &have, budget) {
                    Ok((changes, all)) => {
                        if bytes > 0
                            && changes
                                .first()
                                .is_some_and(|c| bytes + c.bytes.len() + 256 > limit)
                        {
                            rest.push(shard);
                            continue;
                        }
                        bytes += changes.iter().map(|c| c.bytes.len() + 256).sum::<usize>();
                        if !all {
                            rest.push(shard);
                        }
                        out.push((shard, changes));
                    }
                    Err(e) => return refused(&e),
                }
            }
            SyncResponse::Changes {
                namespace,
                shards: out.into(),
                rest: rest.into(),
            }
        }
        SyncRequest::Documents { consortium } => match library.consortia().export(&consortium) {
            Ok(text) => SyncResponse::Documents { text },
            Err(e) => refused(&e),
        },
        SyncRequest::Join { .. } => refused(&"this library is a member already"),
        SyncRequest::Code { .. } => refused(&"this library is a member already"),
        // Answered in the swarm task; not here.
        SyncRequest::Left { .. } => SyncResponse::Noted,
        // Answered in the swarm task; not here.
        SyncRequest::Changed { .. } => SyncResponse::Noted,
    }
}

/// Answers a joiner: accepts its acceptance of an open invite of `consortium`, and sends
/// the consortium's documents (blocking work).
/// A joiner's one try at code number `nameplate`: the code is spent first, whatever
/// follows; only the right words open the sealed ticket it gets.
pub(super) fn answer_code(library: &Library, nameplate: u16, request: SyncRequest) -> SyncResponse {
    let (asked, message) = match request {
        SyncRequest::Code { nameplate, message } => (nameplate, message),
        // The joiner that opened the ticket sends its acceptance on the same connection
        // (a relay lets in the code number's identity, not the invite's).
        SyncRequest::Join { acceptance } => {
            let Some(spent) = library.join_codes().spent_for(nameplate, library.now_ms()) else {
                return SyncResponse::Refused {
                    reason: format!("code {nameplate} was not tried here, or has expired"),
                };
            };
            // Only the acceptance of the invite this code carried.
            let of_this_invite = Signed::<Acceptance>::from_text(&acceptance)
                .ok()
                .zip(jalin_protocol::consortium::invitation::read(&spent.ticket).ok())
                .is_some_and(|(a, invitation)| a.body.invite.id() == invitation.invite.id());
            if !of_this_invite {
                return SyncResponse::Refused {
                    reason: format!("not an acceptance of the invite code {nameplate} is for"),
                };
            }
            let response =
                answer_joiner(library, spent.consortium, SyncRequest::Join { acceptance });
            if matches!(response, SyncResponse::Joined { .. }) {
                library.join_codes().close(nameplate);
            }
            return response;
        }
        _ => {
            return SyncResponse::Refused {
                reason: "not a member: only a join code's exchange is possible here".into(),
            }
        }
    };
    if asked != nameplate {
        return SyncResponse::Refused {
            reason: format!("code {asked} is not the one this connection is for"),
        };
    }
    let Some(open) = library.join_codes().take(nameplate, library.now_ms()) else {
        return SyncResponse::Refused {
            reason: format!("code {nameplate} is not open here (used, expired or never made)"),
        };
    };
    tracing::info!(nameplate, "a join code was tried; it is spent");
    match crate::join_code::answer(&open.code, &message, &open.ticket) {
        Ok((message, sealed)) => SyncResponse::Code { message, sealed },
        Err(error) => SyncResponse::Refused {
            reason: error.to_string(),
        },
    }
}

pub(super) fn answer_joiner(
    library: &Library,
    consortium: Hash32,
    request: SyncRequest,
) -> SyncResponse {
    let SyncRequest::Join { acceptance } = request else {
        return SyncResponse::Refused {
            reason: "not a member: only joining is possible with an invite's identity".into(),
        };
    };
    let accepted = Signed::<Acceptance>::from_text(&acceptance)
        .map_err(|e| e.to_string())
        .and_then(|a| {
            if a.body.consortium == consortium {
                Ok(())
            } else {
                Err("this acceptance is of another consortium".to_string())
            }
        })
        .and_then(|()| {
            library
                .consortia()
                .accept(&acceptance, now_ms())
                .map_err(|e| e.to_string())
        });
    match accepted.and_then(|_| {
        library
            .consortia()
            .export(&consortium)
            .map_err(|e| e.to_string())
    }) {
        Ok(documents) => SyncResponse::Joined { documents },
        Err(reason) => SyncResponse::Refused { reason },
    }
}

/// What taking in an answer calls for.
#[derive(Default)]
pub(super) struct FollowUp {
    /// Requests to make of the same peer.
    pub(super) requests: Vec<SyncRequest>,
    /// The consortium documents changed: membership may have.
    pub(super) documents_changed: bool,
    /// New changes of this catalog were stored: tell the other members.
    pub(super) catalog_changed: Option<LibraryId>,
}

/// Takes in an answer of `peer` (blocking work): only what the trust rule lets come from
/// it, asked again here, since membership may have changed while the answer travelled.
pub(super) fn take_answer(library: &Library, peer: &LibraryId, response: SyncResponse) -> FollowUp {
    let own = library.id();
    let shared = library.shared_with(peer);
    let trust = shared.trust();
    match &response {
        SyncResponse::Summary { namespace, .. }
        | SyncResponse::Group { namespace, .. }
        | SyncResponse::Changes { namespace, .. }
            if !shared.is_shared(namespace) =>
        {
            tracing::warn!(
                peer = %peer.fingerprint(),
                catalog = %namespace.fingerprint(),
                "refused a catalog from a peer that does not share it with this library"
            );
            return FollowUp::default();
        }
        _ => {}
    }
    match response {
        SyncResponse::Hello {
            catalogs,
            consortia,
            time_ms: _,
        } => {
            let mut next = Vec::new();
            for (consortium, digest) in consortia {
                // A consortium this library is no member of, or the peer is not, is
                // never fetched.
                if !trust.shares(peer, &consortium) {
                    continue;
                }
                let mine = library
                    .consortia()
                    .export(&consortium)
                    .map(|t| documents_digest(&t))
                    .ok();
                if mine != Some(digest.into_array()) {
                    next.push(SyncRequest::Documents { consortium });
                }
            }
            for (namespace, digest, held) in catalogs {
                if namespace == own || !shared.is_shared(&namespace) {
                    continue;
                }
                library.note_member_holds(&namespace, held);
                if shared.digest(&namespace).ok() != Some(digest.into_array()) {
                    next.push(SyncRequest::Summary { namespace });
                }
            }
            FollowUp {
                requests: next,
                ..FollowUp::default()
            }
        }
        SyncResponse::Summary { namespace, groups } => {
            if namespace == own {
                return FollowUp::default();
            }
            let Ok(mine) = shard_digests(&shared, &namespace, 0..SHARD_COUNT) else {
                return FollowUp::default();
            };
            let mine = group_digests(&mine);
            let requests = (0..GROUPS as u8)
                .filter(|&g| {
                    let range = usize::from(g) * DIGEST_BYTES..(usize::from(g) + 1) * DIGEST_BYTES;
                    groups
                        .get(range.clone())
                        .is_some_and(|theirs| theirs != &mine[range])
                })
                .map(|group| SyncRequest::Group { namespace, group })
                .collect();
            FollowUp {
                requests,
                ..FollowUp::default()
            }
        }
        SyncResponse::Group {
            namespace,
            group,
            shards,
        } => {
            if namespace == own || u16::from(group) >= GROUPS {
                return FollowUp::default();
            }
            let Ok(mine) = shard_digests(&shared, &namespace, group_shards(group)) else {
                return FollowUp::default();
            };
            let mut differ = Vec::new();
            for ((shard, theirs), mine) in group_shards(group)
                .zip(shards.chunks_exact(DIGEST_BYTES))
                .zip(&mine)
            {
                if theirs == [0u8; DIGEST_BYTES] || theirs == mine {
                    continue;
                }
                let Ok(heads) = shared.shard_heads(&namespace, shard) else {
                    continue;
                };
                differ.push((shard, heads.into_iter().map(ByteArray::new).collect()));
            }
            let requests = differ
                .chunks(SHARDS_PER_REQUEST)
                .map(|chunk| SyncRequest::Changes {
                    namespace,
                    shards: chunk.to_vec().into(),
                    // Sized to the link as it is sent (`NetLoop::send`).
                    max_bytes: 0,
                })
                .collect();
            FollowUp {
                requests,
                ..FollowUp::default()
            }
        }
        SyncResponse::Changes {
            namespace,
            shards,
            rest,
        } => {
            let shards: Vec<(u16, Vec<SignedChange>)> =
                shards.into_iter().filter(|(_, c)| !c.is_empty()).collect();
            let mut new = 0;
            // The membership may change while this is written: a catalog no longer
            // shared leaves again at once (`store_from`).
            let Ok(results) = shared.store_from(&namespace, &shards) else {
                return FollowUp::default();
            };
            let mut refused = Vec::new();
            for ((shard, _), result) in shards.iter().zip(results) {
                match result {
                    Ok(applied) => new += applied.changes,
                    Err(error) => {
                        refused.push(*shard);
                        tracing::warn!(%namespace, shard, %error, "refused a member's changes")
                    }
                }
            }
            // What the answer did not finish, asked again from where this node is now:
            // within the round, nothing that arrived comes twice. Only while it brings
            // something new (a shard refused would otherwise be asked for forever; the
            // next round tries again).
            let mut requests = Vec::new();
            if !rest.is_empty() && new > 0 {
                // A shard refused is not asked for again in this round: the others
                // behind it are.
                let shards: Vec<_> = rest
                    .iter()
                    .filter(|shard| !refused.contains(shard))
                    .filter_map(|&shard| {
                        let heads = shared.shard_heads(&namespace, shard).ok()?;
                        Some((shard, heads.into_iter().map(ByteArray::new).collect()))
                    })
                    .collect();
                requests.push(SyncRequest::Changes {
                    namespace,
                    shards: shards.into(),
                    // Sized to the link as it is sent (`NetLoop::send`).
                    max_bytes: 0,
                });
            }
            FollowUp {
                requests,
                documents_changed: false,
                catalog_changed: (new > 0).then_some(namespace),
            }
        }
        SyncResponse::Documents { text } => {
            match library.consortia().import_from_member(&text, peer) {
                Ok(report) => {
                    for (_, why) in &report.refused {
                        tracing::warn!(reason = %why, "refused a member's document");
                    }
                    FollowUp {
                        documents_changed: report.new > 0,
                        ..FollowUp::default()
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "taking a member's documents failed");
                    FollowUp::default()
                }
            }
        }
        SyncResponse::Joined { .. } | SyncResponse::Code { .. } | SyncResponse::Noted => {
            FollowUp::default()
        }
        SyncResponse::Refused { reason } => {
            tracing::debug!(%reason, "a member refused a sync request");
            FollowUp::default()
        }
    }
}
