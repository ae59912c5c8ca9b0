//! A consortium's documents: invites, acceptances, the membership log, agreements.
//!
//! Every fact of a partnership is a document signed by the library that asserts it
//! ([`document::Signed`]); every member can check every signature, and the documents
//! travel as one line of text each, so a consortium works by chat or on paper before (and
//! without) the network.

pub mod agreement;
pub mod assertion;
pub mod conspectus;
pub mod document;
pub mod evaluation;
pub mod invitation;
pub mod log;
pub mod needs;
pub mod plan;
pub mod staff;
pub mod tally;

use agreement::{AgreementSignature, AgreementVersion};
use assertion::MatchAssertion;
use document::{dearmor, DocError, Signed};
use log::{Acceptance, Invite, Op};

/// Any consortium document, as read from text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Document {
    /// A membership operation.
    Op(Op),
    /// An invite (a ticket).
    Invite(Signed<Invite>),
    /// An acceptance of an invite.
    Acceptance(Signed<Acceptance>),
    /// A version of an agreement.
    Version(Signed<AgreementVersion>),
    /// A signature on a version.
    Signature(Signed<AgreementSignature>),
    /// An assertion that two records are (not) the same book.
    Match(Signed<MatchAssertion>),
    /// A member's tally of loans lent and borrowed.
    Tally(Signed<tally::LoanTally>),
    /// A title a member plans to buy (or no longer does).
    Plan(Signed<plan::PlanItem>),
    /// A member's collecting levels by division.
    Conspectus(Signed<conspectus::Conspectus>),
    /// What a member's patrons look for, aggregated.
    Needs(Signed<needs::NeedsSummary>),
    /// A member's post about staff development.
    Staff(Signed<staff::StaffPost>),
    /// A member's own figures for an evaluation period.
    Figures(Signed<evaluation::MemberFigures>),
    /// A member's signature on an evaluation period's report.
    Evaluation(Signed<evaluation::EvaluationSignature>),
}

impl Document {
    /// Reads one document in text form, whichever its kind.
    pub fn from_text(text: &str) -> Result<Document, DocError> {
        let (label, _) = dearmor(text)?;
        Ok(match label.as_str() {
            "OP" => Document::Op(Signed::from_text(text)?),
            "INVITE" => Document::Invite(Signed::from_text(text)?),
            "ACCEPTANCE" => Document::Acceptance(Signed::from_text(text)?),
            "AGREEMENT" => Document::Version(Signed::from_text(text)?),
            "SIGNATURE" => Document::Signature(Signed::from_text(text)?),
            "MATCH" => Document::Match(Signed::from_text(text)?),
            "TALLY" => Document::Tally(Signed::from_text(text)?),
            "PLAN" => Document::Plan(Signed::from_text(text)?),
            "CONSPECTUS" => Document::Conspectus(Signed::from_text(text)?),
            "NEEDS" => Document::Needs(Signed::from_text(text)?),
            "STAFF" => Document::Staff(Signed::from_text(text)?),
            "FIGURES" => Document::Figures(Signed::from_text(text)?),
            "EVALUATION" => Document::Evaluation(Signed::from_text(text)?),
            other => {
                return Err(DocError::WrongKind {
                    expected: "op, invite, acceptance, agreement, signature, match, tally, \
                               plan, conspectus, needs, staff, figures or evaluation"
                        .into(),
                    found: other.to_lowercase(),
                })
            }
        })
    }

    /// The consortium the document belongs to (a founding operation's is its own id).
    pub fn consortium(&self) -> document::Hash32 {
        match self {
            Document::Op(op) => op.body.consortium.unwrap_or_else(|| op.id()),
            Document::Invite(d) => d.body.consortium,
            Document::Acceptance(d) => d.body.consortium,
            Document::Version(d) => d.body.consortium,
            Document::Signature(d) => d.body.consortium,
            Document::Match(d) => d.body.consortium,
            Document::Tally(d) => d.body.consortium,
            Document::Plan(d) => d.body.consortium,
            Document::Conspectus(d) => d.body.consortium,
            Document::Needs(d) => d.body.consortium,
            Document::Staff(d) => d.body.consortium,
            Document::Figures(d) => d.body.consortium,
            Document::Evaluation(d) => d.body.consortium,
        }
    }

    /// The document's id (SHA-256 of its kind's domain and its bytes).
    pub fn id(&self) -> document::Hash32 {
        match self {
            Document::Op(d) => d.id(),
            Document::Invite(d) => d.id(),
            Document::Acceptance(d) => d.id(),
            Document::Version(d) => d.id(),
            Document::Signature(d) => d.id(),
            Document::Match(d) => d.id(),
            Document::Tally(d) => d.id(),
            Document::Plan(d) => d.id(),
            Document::Conspectus(d) => d.id(),
            Document::Needs(d) => d.id(),
            Document::Staff(d) => d.id(),
            Document::Figures(d) => d.id(),
            Document::Evaluation(d) => d.id(),
        }
    }

    /// The document's text form.
    pub fn to_text(&self) -> String {
        match self {
            Document::Op(d) => d.to_text(),
            Document::Invite(d) => d.to_text(),
            Document::Acceptance(d) => d.to_text(),
            Document::Version(d) => d.to_text(),
            Document::Signature(d) => d.to_text(),
            Document::Match(d) => d.to_text(),
            Document::Tally(d) => d.to_text(),
            Document::Plan(d) => d.to_text(),
            Document::Conspectus(d) => d.to_text(),
            Document::Needs(d) => d.to_text(),
            Document::Staff(d) => d.to_text(),
            Document::Figures(d) => d.to_text(),
            Document::Evaluation(d) => d.to_text(),
        }
    }
}

/// Reads every document in a text (one per line; blank lines and lines starting with `#`
/// are skipped), each with its line number or the error that line has.
pub fn read_documents(text: &str) -> Vec<(usize, Result<Document, DocError>)> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let line = line.trim();
            !line.is_empty() && !line.starts_with('#')
        })
        .map(|(n, line)| (n + 1, Document::from_text(line)))
        .collect()
}
