//! An invitation: a ticket with the agreement the consortium proposes, so the library
//! invited reads the terms before it joins. Text, one document per line: the ticket, then
//! the consortium's membership log and the agreement's versions and signatures (what the
//! agreement's printable page is built from, [`agreement::bundle`]). A ticket alone is an
//! invitation with no agreement.

use super::agreement::{self, Proposed};
use super::document::{dearmor, DocError, Signed};
use super::log::Invite;

/// The longest invitation read (bytes): a long log and a long agreement fit.
pub const INVITATION_MAX: usize = 4 << 20;
/// Documents in an invitation, at most.
pub const LINES_MAX: usize = 20_000;

/// An invitation as read.
#[derive(Clone, Debug)]
pub struct Invitation {
    /// The invite.
    pub invite: Signed<Invite>,
    /// The ticket's text (what `join` takes).
    pub ticket: String,
    /// The agreement proposed, if the invitation carries one.
    pub agreement: Option<Proposed>,
}

/// The text of an invitation: `ticket`, and the agreement's documents (`bundle`).
pub fn write(ticket: &str, consortium_name: &str, bundle: &[String]) -> String {
    let mut out = format!(
        "# Undangan bergabung dengan konsorsium \"{consortium_name}\" (Jalin).\n\
         # An invitation to join the consortium \"{consortium_name}\" (Jalin).\n\
         # Baca perjanjiannya lalu gabung: jalin join BERKAS-INI\n\
         # Read the agreement, then join: jalin join THIS-FILE\n{ticket}\n"
    );
    if !bundle.is_empty() {
        out.push_str("# Perjanjian yang diusulkan / the agreement proposed:\n");
        for line in bundle {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Reads an invitation (or a ticket alone): the invite checked, and the agreement's every
/// signature; refused when the agreement is of another consortium than the invite or the
/// inviter is not one of its members.
pub fn read(text: &str) -> Result<Invitation, DocError> {
    if text.len() > INVITATION_MAX {
        return Err(DocError::TooLarge {
            size: text.len(),
            max: INVITATION_MAX,
        });
    }
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let labelled = lines
        .iter()
        .filter(|l| l.to_ascii_uppercase().starts_with("JALIN-"))
        .count();
    // A ticket alone (its comment lines aside) may be broken over lines, as copied
    // from paper.
    if labelled <= 1 {
        let invite = Signed::<Invite>::from_text(&lines.concat())?;
        return Ok(Invitation {
            ticket: invite.to_text(),
            invite,
            agreement: None,
        });
    }
    if lines.len() > LINES_MAX {
        return Err(DocError::Invalid(format!(
            "an invitation holds at most {LINES_MAX} documents, this one {}",
            lines.len()
        )));
    }
    let mut invite = None;
    let mut bundle = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let (label, _) =
            dearmor(line).map_err(|e| DocError::Invalid(format!("document {}: {e}", n + 1)))?;
        if label == "INVITE" {
            if invite.is_some() {
                return Err(DocError::Invalid(
                    "an invitation carries one ticket, this one more".into(),
                ));
            }
            invite = Some(Signed::<Invite>::from_text(line)?);
        } else {
            bundle.push(line.to_string());
        }
    }
    let invite = invite.ok_or_else(|| DocError::Invalid("the invitation has no ticket".into()))?;
    let agreement = agreement::proposed(&bundle)?;
    if agreement.consortium != invite.body.consortium {
        return Err(DocError::WrongConsortium {
            expected: invite.body.consortium,
            found: agreement.consortium,
        });
    }
    if !agreement.member_keys.contains(&invite.author) {
        return Err(DocError::Invalid(
            "the ticket's author is not a member of the consortium the agreement is of".into(),
        ));
    }
    Ok(Invitation {
        ticket: invite.to_text(),
        invite,
        agreement: Some(agreement),
    })
}
