//! A member's interlibrary-loan tally (`JALIN-TALLY:`): how many loans it has lent and
//! borrowed, signed and shared with the consortium's other documents, so every
//! borrower's rota can put first the library that has lent least relative to what it
//! borrowed (as ReShare balances its lenders). The newest tally of each member stands.

use super::document::{DocError, Hash32, Kind, Signed};
use crate::signing::Domain;
use serde::{Deserialize, Serialize};

/// One member's counts of loans shipped, as of a moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoanTally {
    /// The consortium.
    pub consortium: Hash32,
    /// Loans the member has shipped to other members.
    pub lent: u32,
    /// Loans other members have shipped to it.
    pub borrowed: u32,
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
        Ok(())
    }

    /// Lent relative to borrowed, as a rota compares members (lower asks first): both
    /// counted from one, so a new member is neither first nor last for want of loans.
    pub fn balance(lent: u32, borrowed: u32) -> u64 {
        (u64::from(lent) + 1) * 1000 / (u64::from(borrowed) + 1)
    }
}
