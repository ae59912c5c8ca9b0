//! What a member's patrons look for, as a member shares it (`JALIN-NEEDS:`): the queries
//! of its catalog's search page asked by at least [`SESSIONS_MIN`] distinct sessions over
//! a period, with how many sessions asked and how many books the last search found. Never
//! the log: no time of a search, no session, no query fewer sessions asked. Shared only
//! under an agreement with `share_needs` (the node checks); a summary listing a query of
//! fewer sessions is refused by every member, so a node that breaks the rule does not
//! spread what it leaked. The newest summary of each member stands.

use super::document::{DocError, Hash32, Kind, Signed};
use crate::signing::Domain;
use serde::{Deserialize, Serialize};

/// Distinct sessions that must have asked a query before it leaves the node.
pub const SESSIONS_MIN: u32 = 3;
/// Queries one summary lists, at most.
pub const QUERIES_MAX: usize = 200;
/// Longest query listed, in bytes.
pub const QUERY_MAX: usize = 200;

/// A query as shared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedQuery {
    /// The query, folded (lower case, spaces collapsed).
    pub query: String,
    /// Distinct sessions that asked it in the period (at least [`SESSIONS_MIN`]).
    pub sessions: u32,
    /// Books the union catalog found for it at the member, the last time it was asked.
    pub hits: u64,
}

/// A total of a member's patron survey as shared: how many answers chose an option (at
/// least [`SESSIONS_MIN`]; smaller counts stay home).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedTotal {
    /// The question, as asked.
    pub question: String,
    /// The option.
    pub option: String,
    /// Answers choosing it.
    pub count: u32,
}

/// A member's summary of its patrons' searches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeedsSummary {
    /// The consortium.
    pub consortium: Hash32,
    /// The period summarised: from (ms since 1970).
    pub from_ms: u64,
    /// To.
    pub to_ms: u64,
    /// The queries, most sessions first.
    pub queries: Vec<SharedQuery>,
    /// Its patron survey's totals (choices only, never free text), each of three answers
    /// or more.
    pub survey: Vec<SharedTotal>,
    /// When (ms since 1970, the member's clock): the newest stands.
    pub time_ms: u64,
}

impl Kind for NeedsSummary {
    const DOMAIN: Domain = Domain::NeedsSummary;
    const LABEL: &'static str = "NEEDS";
}

impl NeedsSummary {
    /// Checks the signature, the consortium and the rule: every query asked by at least
    /// [`SESSIONS_MIN`] sessions, bounded in number and length.
    pub fn check(summary: &Signed<NeedsSummary>, consortium: Hash32) -> Result<(), DocError> {
        summary.verify()?;
        let body = &summary.body;
        if body.consortium != consortium {
            return Err(DocError::WrongConsortium {
                expected: consortium,
                found: body.consortium,
            });
        }
        if body.queries.len() > QUERIES_MAX || body.survey.len() > QUERIES_MAX {
            return Err(DocError::Invalid(format!(
                "a needs summary lists at most {QUERIES_MAX} queries"
            )));
        }
        if body.from_ms > body.to_ms {
            return Err(DocError::Invalid(
                "a needs summary's period ends before it starts".into(),
            ));
        }
        for q in &body.queries {
            if q.sessions < SESSIONS_MIN {
                return Err(DocError::Invalid(format!(
                    "a needs summary lists a query fewer than {SESSIONS_MIN} sessions asked: \
                     only aggregates of {SESSIONS_MIN} or more leave a library"
                )));
            }
            if q.query.trim().is_empty()
                || q.query.len() > QUERY_MAX
                || q.query.chars().any(char::is_control)
            {
                return Err(DocError::Invalid(format!(
                    "a shared query is 1 to {QUERY_MAX} bytes, no control characters"
                )));
            }
        }
        for t in &body.survey {
            if t.count < SESSIONS_MIN {
                return Err(DocError::Invalid(format!(
                    "a needs summary lists a survey total of fewer than {SESSIONS_MIN} answers: \
                     only totals of {SESSIONS_MIN} or more leave a library"
                )));
            }
            for text in [&t.question, &t.option] {
                if text.trim().is_empty()
                    || text.len() > crate::consortium::needs::QUERY_MAX * 5
                    || text.chars().any(char::is_control)
                {
                    return Err(DocError::Invalid(
                        "a shared survey total names its question and option in 1 to 1000 bytes"
                            .into(),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    #[test]
    fn a_summary_lists_only_queries_of_three_sessions_or_more() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let c = Hash32([7; 32]);
        let summary = |sessions: u32, query: &str| {
            Signed::sign(
                &key,
                NeedsSummary {
                    consortium: c,
                    from_ms: 0,
                    to_ms: 10,
                    queries: vec![SharedQuery {
                        query: query.into(),
                        sessions,
                        hits: 0,
                    }],
                    survey: Vec::new(),
                    time_ms: 10,
                },
            )
        };
        assert!(NeedsSummary::check(&summary(3, "budidaya jamur"), c).is_ok());
        let error = NeedsSummary::check(&summary(2, "budidaya jamur"), c).unwrap_err();
        assert!(
            error.to_string().contains("fewer than 3 sessions"),
            "{error}"
        );
        assert!(NeedsSummary::check(&summary(5, " "), c).is_err());
        assert!(NeedsSummary::check(&summary(5, &"x".repeat(QUERY_MAX + 1)), c).is_err());
        assert!(NeedsSummary::check(&summary(3, "jamur"), Hash32([8; 32])).is_err());
        let mut few = summary(3, "jamur").body;
        few.survey.push(SharedTotal {
            question: "Apa pekerjaan Anda?".into(),
            option: "Petani".into(),
            count: 2,
        });
        let error = NeedsSummary::check(&Signed::sign(&key, few), c).unwrap_err();
        assert!(
            error.to_string().contains("fewer than 3 answers"),
            "{error}"
        );
    }
}
