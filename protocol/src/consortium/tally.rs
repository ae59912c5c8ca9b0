//! A member's interlibrary-loan tally (`JALIN-TALLY:`): how many loans it has lent and
//! borrowed, signed and shared with the consortium's other documents, so every
//! borrower's rota can put first the library that has lent least relative to what it
//! borrowed (as ReShare balances its lenders), and every member's union catalog can show
//! which of its copies are out on interlibrary loan. The newest tally of each member
//! stands.

use super::document::{DocError, Hash32, Kind, Signed};
use crate::signing::Domain;
use serde::{Deserialize, Serialize};

/// Records a tally may list as out on loan.
pub const ON_LOAN_MAX: usize = 1_000;

/// One member's counts of loans shipped, as of a moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoanTally {
    /// The consortium.
    pub consortium: Hash32,
    /// Loans the member has shipped to other members.
    pub lent: u32,
    /// Loans other members have shipped to it.
    pub borrowed: u32,
    /// Its records whose copy is out on interlibrary loan now (sorted).
    pub on_loan: Vec<String>,
    /// When (ms since 1970, the member's clock): the newest stands.
    pub time_ms: u64,
}

impl Kind for LoanTally {
    const DOMAIN: Domain = Domain::LoanTally;
    const LABEL: &'static str = "TALLY";
}

impl LoanTally {
    /// Checks a tally's signature and that it is of `consortium`.
    pub fn check(tally: &Signed<LoanTally>, consortium: Hash32) -> Result<(), DocError> {
        tally.verify()?;
        if tally.body.consortium != consortium {
            return Err(DocError::WrongConsortium {
                expected: consortium,
                found: tally.body.consortium,
            });
        }
        let on_loan = &tally.body.on_loan;
        if on_loan.len() > ON_LOAN_MAX
            || on_loan
                .iter()
                .any(|id| id.is_empty() || id.len() > crate::ill::RECORD_ID_MAX)
        {
            return Err(DocError::Invalid(format!(
                "a tally lists at most {ON_LOAN_MAX} records out on loan, each 1 to {} bytes",
                crate::ill::RECORD_ID_MAX
            )));
        }
        Ok(())
    }

    /// Lent relative to borrowed, as a rota compares members (lower asks first): both
    /// counted from one, so a new member is neither first nor last for want of loans.
    pub fn balance(lent: u32, borrowed: u32) -> u64 {
        (u64::from(lent) + 1) * 1000 / (u64::from(borrowed) + 1)
    }
}
