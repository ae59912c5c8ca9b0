//! A member's conspectus (`JALIN-CONSPECTUS:`): for each division of the collection
//! ([`crate::collection::DIVISIONS`]), the level it collects at now and the level it
//! commits to, on the conspectus scale (0-5, as the RLG/WLN conspectus defines them).
//! Signed and shared with the consortium's other documents, so "who collects what" is
//! agreed and visible beside what each catalog shows. The newest of each member stands.

use super::document::{DocError, Hash32, Kind, Signed};
use crate::collection::DIVISIONS;
use crate::signing::Domain;
use serde::{Deserialize, Serialize};

/// The conspectus levels: number, Indonesian name, English name.
pub const LEVELS: [(u8, &str, &str); 6] = [
    (0, "Tidak dikoleksi", "Out of scope"),
    (1, "Minimal", "Minimal level"),
    (2, "Informasi dasar", "Basic information level"),
    (
        3,
        "Pendukung pembelajaran",
        "Study or instructional support level",
    ),
    (4, "Penelitian", "Research level"),
    (5, "Menyeluruh", "Comprehensive level"),
];

/// A member's levels in one division.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DivisionLevel {
    /// The division's code (`"600"`).
    pub division: String,
    /// The level the collection is at now (current collecting strength).
    pub current: u8,
    /// The level the member commits to collect at (collecting intensity).
    pub commitment: u8,
}

/// One member's conspectus.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conspectus {
    /// The consortium.
    pub consortium: Hash32,
    /// Per division, at most once each, in the divisions' order.
    pub levels: Vec<DivisionLevel>,
    /// When (ms since 1970, the member's clock): the newest stands.
    pub time_ms: u64,
}

impl Kind for Conspectus {
    const DOMAIN: Domain = Domain::Conspectus;
    const LABEL: &'static str = "CONSPECTUS";
}

impl Conspectus {
    /// Checks the signature and content, and that it is of `consortium`.
    pub fn check(conspectus: &Signed<Conspectus>, consortium: Hash32) -> Result<(), DocError> {
        conspectus.verify()?;
        let body = &conspectus.body;
        if body.consortium != consortium {
            return Err(DocError::WrongConsortium {
                expected: consortium,
                found: body.consortium,
            });
        }
        let mut last: Option<usize> = None;
        for level in &body.levels {
            let Some(at) = DIVISIONS.iter().position(|(c, _, _)| *c == level.division) else {
                return Err(DocError::Invalid(format!(
                    "{:?} is not a division (000, 100, ... 900)",
                    level.division.chars().take(16).collect::<String>()
                )));
            };
            if last.is_some_and(|l| l >= at) {
                return Err(DocError::Invalid(
                    "a conspectus names each division once, in order".into(),
                ));
            }
            last = Some(at);
            if level.current > 5 || level.commitment > 5 {
                return Err(DocError::Invalid(format!(
                    "division {}: levels are 0 to 5",
                    level.division
                )));
            }
        }
        Ok(())
    }

    /// The levels of a division, if the conspectus states them.
    pub fn level(&self, division: &str) -> Option<&DivisionLevel> {
        self.levels.iter().find(|l| l.division == division)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn level(division: &str, current: u8, commitment: u8) -> DivisionLevel {
        DivisionLevel {
            division: division.into(),
            current,
            commitment,
        }
    }

    #[test]
    fn a_conspectus_names_divisions_once_in_order_with_levels_0_to_5() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let c = Hash32([7; 32]);
        let sign = |levels| {
            Signed::sign(
                &key,
                Conspectus {
                    consortium: c,
                    levels,
                    time_ms: 1,
                },
            )
        };
        let good = sign(vec![level("300", 2, 3), level("600", 1, 3)]);
        assert!(Conspectus::check(&good, c).is_ok());
        assert_eq!(good.body.level("600").map(|l| l.commitment), Some(3));
        for (levels, why) in [
            (vec![level("650", 1, 1)], "not a division"),
            (
                vec![level("600", 1, 1), level("300", 1, 1)],
                "once, in order",
            ),
            (
                vec![level("600", 1, 1), level("600", 2, 2)],
                "once, in order",
            ),
            (vec![level("600", 6, 1)], "0 to 5"),
        ] {
            let error = Conspectus::check(&sign(levels), c).unwrap_err().to_string();
            assert!(error.contains(why), "{error}");
        }
        assert!(Conspectus::check(&good, Hash32([8; 32])).is_err());
    }
}
