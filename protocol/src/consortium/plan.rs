//! Purchase plans (rencana pengadaan): the titles a member plans to buy, one signed
//! document per title (`JALIN-PLAN:`), shared with the consortium's other documents so
//! partners see what is planned before they order the same book. A member changes or
//! withdraws a planned title with a newer document of the same item; the newest of each
//! (member, item) stands. Plans count only while an agreement in force has
//! `coordinated_acquisition` (the node checks; the document does not know the agreement).

use super::document::{DocError, Hash32, Kind, Signed};
use crate::dedup;
use crate::record::{Description, Name, NameKind};
use crate::signing::{Domain, LibraryId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest item id.
pub const ITEM_MAX: usize = 64;
/// Longest title, author or note, in bytes.
pub const TEXT_MAX: usize = 500;
/// Most copies one plan names.
pub const COPIES_MAX: u32 = 1_000;
/// Planned titles a member may have in one consortium (withdrawn ones included).
pub const ITEMS_MAX: usize = 10_000;

/// One title a member plans to buy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanItem {
    /// The consortium.
    pub consortium: Hash32,
    /// The member's id for this planned title: later documents of the same item change
    /// or withdraw it.
    pub item: String,
    /// Title.
    pub title: String,
    /// Author (as catalogued or as written), if known.
    pub author: Option<String>,
    /// ISBN-13, if known.
    pub isbn: Option<String>,
    /// Year of publication, if known.
    pub year: Option<i32>,
    /// Copies planned.
    pub copies: u32,
    /// Why, or anything partners should know.
    pub note: Option<String>,
    /// Withdrawn: no longer planned.
    pub withdrawn: bool,
    /// When (ms since 1970, the member's clock): the newest of an item stands.
    pub time_ms: u64,
}

impl Kind for PlanItem {
    const DOMAIN: Domain = Domain::PlanItem;
    const LABEL: &'static str = "PLAN";
}

fn text_ok(text: &str) -> bool {
    !text.trim().is_empty() && text.len() <= TEXT_MAX && !text.chars().any(char::is_control)
}

impl PlanItem {
    /// Checks a plan's signature and content, and that it is of `consortium`.
    pub fn check(plan: &Signed<PlanItem>, consortium: Hash32) -> Result<(), DocError> {
        plan.verify()?;
        let body = &plan.body;
        if body.consortium != consortium {
            return Err(DocError::WrongConsortium {
                expected: consortium,
                found: body.consortium,
            });
        }
        if body.item.is_empty()
            || body.item.len() > ITEM_MAX
            || !body
                .item
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(DocError::Invalid(format!(
                "a plan's item id is 1 to {ITEM_MAX} letters, digits, '-' or '_'"
            )));
        }
        if !text_ok(&body.title) {
            return Err(DocError::Invalid(format!(
                "a plan's title is 1 to {TEXT_MAX} bytes, no control characters"
            )));
        }
        for text in [&body.author, &body.note].into_iter().flatten() {
            if !text_ok(text) {
                return Err(DocError::Invalid(format!(
                    "a plan's author and note are 1 to {TEXT_MAX} bytes, no control characters"
                )));
            }
        }
        if let Some(isbn) = &body.isbn {
            let valid = crate::isbn::parse_isbn(isbn);
            if valid != Some(crate::isbn::Isbn::Valid(isbn.clone())) {
                return Err(DocError::Invalid(format!(
                    "a plan's ISBN is a valid ISBN-13, digits only: {isbn:?} is not"
                )));
            }
        }
        if body.copies == 0 || body.copies > COPIES_MAX {
            return Err(DocError::Invalid(format!(
                "a plan names 1 to {COPIES_MAX} copies"
            )));
        }
        Ok(())
    }

    /// The plan as a description, for matching it against records and other plans.
    pub fn description(&self) -> Description {
        described(
            &self.title,
            self.author.as_deref(),
            self.year,
            self.isbn.as_deref(),
        )
    }
}

/// A planned title (title, author, year, ISBN-13) as a description, for matching.
pub fn described(
    title: &str,
    author: Option<&str>,
    year: Option<i32>,
    isbn: Option<&str>,
) -> Description {
    Description {
        title: title.to_string(),
        names: author
            .map(|a| Name {
                name: a.to_string(),
                kind: NameKind::Personal,
                main: true,
                ..Name::default()
            })
            .into_iter()
            .collect(),
        year,
        isbns: isbn.map(str::to_string).into_iter().collect(),
        ..Description::default()
    }
}

/// Whether a plan and a record (or another plan) name the same title: a shared ISBN;
/// else, when not both carry ISBNs, the same main title and first author (and the same
/// year when both give one). Looser than [`dedup::compare`], which needs a year: a
/// librarian planning a title often does not know it.
pub fn same_title(a: &Description, b: &Description) -> bool {
    if !a.isbns.is_empty() && !b.isbns.is_empty() {
        return a.isbns.iter().any(|i| b.isbns.contains(i));
    }
    let title = dedup::title_words(&a.title);
    if title.is_empty() || title != dedup::title_words(&b.title) {
        return false;
    }
    let author = |d: &Description| {
        d.names
            .iter()
            .find(|n| n.main)
            .or(d.names.first())
            .map(|n| dedup::author_words(&n.name))
    };
    let authors_agree = match (author(a), author(b)) {
        (Some(x), Some(y)) => x == y,
        // No author on either side: a title alone is enough only when long.
        _ => title.iter().map(String::len).sum::<usize>() >= 8,
    };
    let years_agree = match (a.year, b.year) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    };
    authors_agree && years_agree
}

/// The plans that stand: per (member, item) the newest document, of current members,
/// not withdrawn.
pub fn standing<'a>(
    plans: impl IntoIterator<Item = &'a Signed<PlanItem>>,
    is_member: impl Fn(&LibraryId) -> bool,
) -> Vec<&'a Signed<PlanItem>> {
    let mut newest: BTreeMap<(LibraryId, &str), &Signed<PlanItem>> = BTreeMap::new();
    for plan in plans {
        if !is_member(&plan.author) {
            continue;
        }
        let slot = newest
            .entry((plan.author, plan.body.item.as_str()))
            .or_insert(plan);
        if (plan.body.time_ms, plan.id()) > (slot.body.time_ms, slot.id()) {
            *slot = plan;
        }
    }
    newest.into_values().filter(|p| !p.body.withdrawn).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn plan(item: &str, title: &str, isbn: Option<&str>, withdrawn: bool, t: u64) -> PlanItem {
        PlanItem {
            consortium: Hash32([7; 32]),
            item: item.into(),
            title: title.into(),
            author: Some("Hirata, Andrea".into()),
            isbn: isbn.map(str::to_string),
            year: None,
            copies: 2,
            note: None,
            withdrawn,
            time_ms: t,
        }
    }

    #[test]
    fn a_plan_is_checked_before_it_is_taken() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let c = Hash32([7; 32]);
        let good = Signed::sign(
            &key,
            plan("p1", "Laskar pelangi", Some("9789793062792"), false, 1),
        );
        assert!(PlanItem::check(&good, c).is_ok());
        for (bad, why) in [
            (plan("", "Laskar pelangi", None, false, 1), "item id"),
            (plan("p 1", "Laskar pelangi", None, false, 1), "item id"),
            (plan("p1", " ", None, false, 1), "title"),
            (
                plan("p1", &"x".repeat(TEXT_MAX + 1), None, false, 1),
                "title",
            ),
            (plan("p1", "Laskar\u{7}", None, false, 1), "title"),
            (
                plan("p1", "Laskar pelangi", Some("9789793062793"), false, 1),
                "ISBN",
            ),
            (
                plan("p1", "Laskar pelangi", Some("979-3062-79-6"), false, 1),
                "ISBN",
            ),
        ] {
            let signed = Signed::sign(&key, bad);
            let error = PlanItem::check(&signed, c).unwrap_err().to_string();
            assert!(error.contains(why), "{error}");
        }
        let mut none = plan("p1", "Laskar pelangi", None, false, 1);
        none.copies = 0;
        assert!(PlanItem::check(&Signed::sign(&key, none), c).is_err());
        assert!(PlanItem::check(&good, Hash32([8; 32])).is_err());
        let mut forged = good.clone();
        forged.body.copies = 3;
        assert!(PlanItem::check(&forged, c).is_err());
    }

    #[test]
    fn the_newest_document_of_an_item_stands_and_a_withdrawal_removes_it() {
        let a = SigningKey::from_bytes(&[1; 32]);
        let b = SigningKey::from_bytes(&[2; 32]);
        let docs = [
            Signed::sign(&a, plan("p1", "Laskar pelangi", None, false, 1)),
            Signed::sign(&a, plan("p1", "Sang pemimpi", None, false, 2)),
            Signed::sign(&a, plan("p2", "Edensor", None, false, 1)),
            Signed::sign(&a, plan("p2", "Edensor", None, true, 3)),
            Signed::sign(&b, plan("p1", "Maryamah karpov", None, false, 1)),
        ];
        let all = standing(&docs, |_| true);
        let titles: Vec<&str> = all.iter().map(|p| p.body.title.as_str()).collect();
        assert_eq!(titles.len(), 2, "{titles:?}");
        assert!(titles.contains(&"Sang pemimpi") && titles.contains(&"Maryamah karpov"));
        let b_id = LibraryId::from_key(&b.verifying_key());
        let without_b = standing(&docs, |l| *l != b_id);
        assert_eq!(without_b.len(), 1);
    }

    #[test]
    fn titles_match_by_isbn_else_by_title_and_author() {
        let d = |title: &str, author: Option<&str>, isbn: Option<&str>, year: Option<i32>| {
            let mut p = plan("p", title, isbn, false, 1);
            p.author = author.map(str::to_string);
            p.year = year;
            p.description()
        };
        let laskar = d("Laskar pelangi", Some("Hirata, Andrea"), None, None);
        assert!(same_title(
            &laskar,
            &d(
                "LASKAR PELANGI : sebuah novel",
                Some("Andrea Hirata"),
                None,
                Some(2005)
            )
        ));
        assert!(!same_title(
            &laskar,
            &d("Laskar pelangi", Some("Toer, Pramoedya"), None, None)
        ));
        let a = d("Laskar pelangi", None, Some("9789793062792"), None);
        assert!(same_title(
            &a,
            &d("Other", None, Some("9789793062792"), None)
        ));
        assert!(!same_title(
            &a,
            &d("Laskar pelangi", None, Some("9780000000002"), None)
        ));
        assert!(!same_title(
            &d("Laskar pelangi", Some("Hirata"), None, Some(2005)),
            &d("Laskar pelangi", Some("Hirata"), None, Some(2008))
        ));
        // A short title with no author matches nothing by title alone.
        assert!(!same_title(
            &d("Puisi", None, None, None),
            &d("Puisi", None, None, None)
        ));
    }
}
