//! Staff development (pengembangan SDM) between members: a training calendar with
//! sign-ups, a skills directory, and help asked of the partners and answered. Each is a
//! post (`JALIN-STAFF:`), signed by its member; the newest post of each (member, item)
//! stands, so a post is changed or withdrawn by a newer one of the same item. Posts count
//! only while an agreement in force has `staff_development` (the node checks).
//!
//! Item ids are chosen so the rules hold without coordination: a sign-up's item names the
//! training (`signup.<training's author>.<training's item>`), so a library signs up for a
//! training once however often it changes its sign-up; an answer's item names the
//! question likewise.

use super::document::{DocError, Hash32, Kind, Signed};
use crate::signing::{Domain, LibraryId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest item id.
pub const ITEM_MAX: usize = 120;
/// Longest title, topic, place, name or other short text, in bytes.
pub const SHORT_MAX: usize = 200;
/// Longest description, question or answer, in bytes.
pub const LONG_MAX: usize = 2_000;
/// People in one member's skills directory, at most.
pub const PEOPLE_MAX: usize = 50;
/// Topics of one person, at most.
pub const TOPICS_MAX: usize = 20;
/// Staff one library signs up for one training, at most.
pub const ATTENDEES_MAX: u32 = 100;
/// Posts a member may have in one consortium (withdrawn ones included).
pub const POSTS_MAX: usize = 2_000;

/// A post of another member named by a post: its author and item.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PostRef {
    /// The post's author.
    pub author: LibraryId,
    /// Its item.
    pub item: String,
}

/// A training: what, when, where (or online), who leads it, for whom.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Training {
    /// What ("Katalogisasi dengan MARC 21").
    pub title: String,
    /// What it is about, for whom, what to bring.
    pub description: String,
    /// When it starts (ms since 1970).
    pub starts_ms: u64,
    /// How long, in minutes.
    pub minutes: u32,
    /// Where ("Perpustakaan SMPN 1 Kemiri, ruang baca"); empty when online.
    pub place: String,
    /// Online (a meeting link or a phone group in `place` or the description).
    pub online: bool,
    /// Who leads it.
    pub leader: String,
    /// For whom ("pustakawan sekolah", "semua").
    pub audience: String,
    /// Seats, if limited.
    pub seats: Option<u32>,
    /// Once held: how many attended (its organiser says so after it).
    pub attended: Option<u32>,
}

/// One person in a member's skills directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// Name.
    pub name: String,
    /// What they can help with ("katalogisasi", "MARC", "SLiMS", "node Jalin").
    pub topics: Vec<String>,
    /// How to reach them, if they say.
    pub contact: String,
}

/// What a post says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Post {
    /// A training the author organises.
    Training(Training),
    /// The author's library signs up for a training.
    Signup {
        /// The training.
        training: PostRef,
        /// How many of its staff come.
        attendees: u32,
    },
    /// The author's skills directory (one per member: item `skills`).
    Skills(Vec<Person>),
    /// The author asks the partners for help.
    Ask {
        /// On what ("MARC 245", "impor SLiMS").
        topic: String,
        /// The question.
        question: String,
    },
    /// The author answers a question.
    Answer {
        /// The question.
        ask: PostRef,
        /// The answer.
        text: String,
    },
}

/// A member's post about staff development.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffPost {
    /// The consortium.
    pub consortium: Hash32,
    /// The member's id for this post: newer posts of the same item change or withdraw it.
    pub item: String,
    /// What it says.
    pub post: Post,
    /// Withdrawn: a training cancelled, a sign-up or an answer taken back.
    pub withdrawn: bool,
    /// When (ms since 1970, the member's clock): the newest of an item stands.
    pub time_ms: u64,
}

impl Kind for StaffPost {
    const DOMAIN: Domain = Domain::StaffPost;
    const LABEL: &'static str = "STAFF";
}

fn text_ok(text: &str, max: usize) -> bool {
    text.len() <= max && !text.chars().any(|c| c.is_control() && c != '\n')
}

fn line_ok(text: &str, max: usize) -> bool {
    !text.trim().is_empty() && text.len() <= max && !text.chars().any(char::is_control)
}

/// The item of `library`'s sign-up for `training`.
pub fn signup_item(training: &PostRef) -> String {
    format!(
        "signup.{}.{}",
        &training.author.to_hex()[..16],
        training.item
    )
}

/// The item of `library`'s answer to `ask`.
pub fn answer_item(ask: &PostRef) -> String {
    format!("answer.{}.{}", &ask.author.to_hex()[..16], ask.item)
}

/// The item of a member's skills directory.
pub const SKILLS_ITEM: &str = "skills";

impl StaffPost {
    /// Checks a post's signature and content, and that it is of `consortium`.
    pub fn check(post: &Signed<StaffPost>, consortium: Hash32) -> Result<(), DocError> {
        post.verify()?;
        let body = &post.body;
        let invalid = |why: String| Err(DocError::Invalid(why));
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
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return invalid(format!(
                "a staff post's item id is 1 to {ITEM_MAX} letters, digits, '-', '_' or '.'"
            ));
        }
        match &body.post {
            Post::Training(t) => {
                for (what, text) in [("title", &t.title), ("leader", &t.leader)] {
                    if !line_ok(text, SHORT_MAX) {
                        return invalid(format!(
                            "a training's {what} is 1 to {SHORT_MAX} bytes on one line"
                        ));
                    }
                }
                for (what, text) in [("place", &t.place), ("audience", &t.audience)] {
                    if !text_ok(text, SHORT_MAX) || text.contains('\n') {
                        return invalid(format!(
                            "a training's {what} is at most {SHORT_MAX} bytes on one line"
                        ));
                    }
                }
                if !text_ok(&t.description, LONG_MAX) {
                    return invalid(format!(
                        "a training's description is at most {LONG_MAX} bytes"
                    ));
                }
                if t.place.trim().is_empty() && !t.online {
                    return invalid("a training is somewhere, or online".into());
                }
                if t.minutes == 0 || t.minutes > 7 * 24 * 60 {
                    return invalid("a training lasts 1 minute to 7 days".into());
                }
                if t.seats == Some(0) || t.seats.is_some_and(|s| s > 10_000) {
                    return invalid("a training has 1 to 10,000 seats, or no limit".into());
                }
                if t.attended.is_some_and(|a| a > 100_000) {
                    return invalid("a training's attendance is at most 100,000".into());
                }
            }
            Post::Signup {
                training,
                attendees,
            } => {
                if body.item != signup_item(training) {
                    return invalid("a sign-up's item names its training".into());
                }
                if *attendees == 0 || *attendees > ATTENDEES_MAX {
                    return invalid(format!(
                        "a library signs up 1 to {ATTENDEES_MAX} of its staff"
                    ));
                }
            }
            Post::Skills(people) => {
                if body.item != SKILLS_ITEM {
                    return invalid(format!("a skills directory's item is {SKILLS_ITEM:?}"));
                }
                if people.len() > PEOPLE_MAX {
                    return invalid(format!(
                        "a skills directory lists at most {PEOPLE_MAX} people"
                    ));
                }
                for person in people {
                    if !line_ok(&person.name, SHORT_MAX)
                        || !text_ok(&person.contact, SHORT_MAX)
                        || person.contact.contains('\n')
                        || person.topics.is_empty()
                        || person.topics.len() > TOPICS_MAX
                        || person.topics.iter().any(|t| !line_ok(t, SHORT_MAX))
                    {
                        return invalid(format!(
                            "each person of a skills directory has a name, 1 to {TOPICS_MAX} \
                             topics and a contact, each at most {SHORT_MAX} bytes on one line"
                        ));
                    }
                }
            }
            Post::Ask { topic, question } => {
                if !line_ok(topic, SHORT_MAX)
                    || question.trim().is_empty()
                    || !text_ok(question, LONG_MAX)
                {
                    return invalid(format!(
                        "a question has a topic (at most {SHORT_MAX} bytes) and a text (at \
                         most {LONG_MAX})"
                    ));
                }
            }
            Post::Answer { ask, text } => {
                if body.item != answer_item(ask) {
                    return invalid("an answer's item names its question".into());
                }
                if text.trim().is_empty() || !text_ok(text, LONG_MAX) {
                    return invalid(format!("an answer is 1 to {LONG_MAX} bytes"));
                }
            }
        }
        Ok(())
    }

    /// The reference other posts name this one by.
    pub fn reference(post: &Signed<StaffPost>) -> PostRef {
        PostRef {
            author: post.author,
            item: post.body.item.clone(),
        }
    }
}

/// The posts that stand: per (member, item) the newest, of current members, not
/// withdrawn.
pub fn standing<'a>(
    posts: impl IntoIterator<Item = &'a Signed<StaffPost>>,
    is_member: impl Fn(&LibraryId) -> bool,
) -> BTreeMap<PostRef, &'a Signed<StaffPost>> {
    let mut newest: BTreeMap<PostRef, &Signed<StaffPost>> = BTreeMap::new();
    for post in posts {
        if !is_member(&post.author) {
            continue;
        }
        let slot = newest.entry(StaffPost::reference(post)).or_insert(post);
        if (post.body.time_ms, post.id()) > (slot.body.time_ms, slot.id()) {
            *slot = post;
        }
    }
    newest.retain(|_, p| !p.body.withdrawn);
    newest
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn training(item: &str, t: u64) -> StaffPost {
        StaffPost {
            consortium: Hash32([7; 32]),
            item: item.into(),
            post: Post::Training(Training {
                title: "Katalogisasi dengan MARC 21".into(),
                description: "Bawa laptop.\nSatu hari.".into(),
                starts_ms: 1_000,
                minutes: 180,
                place: "SMPN 1 Kemiri".into(),
                online: false,
                leader: "Bu Sri".into(),
                audience: "pustakawan sekolah".into(),
                seats: Some(20),
                attended: None,
            }),
            withdrawn: false,
            time_ms: t,
        }
    }

    #[test]
    fn a_post_is_checked_before_it_is_taken() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let c = Hash32([7; 32]);
        let good = Signed::sign(&key, training("t1", 1));
        StaffPost::check(&good, c).expect("valid");
        let mut forged = good.clone();
        forged.body.time_ms = 2;
        assert!(StaffPost::check(&forged, c).is_err());
        assert!(StaffPost::check(&good, Hash32([8; 32])).is_err());
        let mut nowhere = training("t1", 1);
        if let Post::Training(t) = &mut nowhere.post {
            t.place = String::new();
        }
        assert!(StaffPost::check(&Signed::sign(&key, nowhere), c).is_err());
        // A sign-up under another item than its training's: refused, so a library's
        // sign-ups to one training are one item.
        let author = LibraryId::from_key(&key.verifying_key());
        let training_ref = PostRef {
            author,
            item: "t1".into(),
        };
        let signup = |item: String| StaffPost {
            consortium: c,
            item,
            post: Post::Signup {
                training: training_ref.clone(),
                attendees: 2,
            },
            withdrawn: false,
            time_ms: 1,
        };
        assert!(StaffPost::check(&Signed::sign(&key, signup("s2".into())), c).is_err());
        StaffPost::check(&Signed::sign(&key, signup(signup_item(&training_ref))), c)
            .expect("valid");
        let bell = StaffPost {
            consortium: c,
            item: "ask-1".into(),
            post: Post::Ask {
                topic: "MARC\u{7}".into(),
                question: "?".into(),
            },
            withdrawn: false,
            time_ms: 1,
        };
        assert!(StaffPost::check(&Signed::sign(&key, bell), c).is_err());
    }

    #[test]
    fn the_newest_post_of_an_item_stands_and_a_withdrawal_removes_it() {
        let a = SigningKey::from_bytes(&[1; 32]);
        let mut cancelled = training("t2", 3);
        cancelled.withdrawn = true;
        let posts = [
            Signed::sign(&a, training("t1", 1)),
            Signed::sign(&a, training("t1", 2)),
            Signed::sign(&a, training("t2", 1)),
            Signed::sign(&a, cancelled),
        ];
        let standing = standing(&posts, |_| true);
        assert_eq!(standing.len(), 1);
        assert_eq!(standing.values().next().unwrap().body.time_ms, 2);
        assert!(super::standing(&posts, |_| false).is_empty());
    }
}
