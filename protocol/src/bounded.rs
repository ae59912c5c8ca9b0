//! A list with a most-items bound its decoding enforces as it reads: the items past the
//! bound are never pushed, so a message cannot make a node allocate more than its items
//! would take, whatever the wire form costs (postcard spends one byte on an empty list,
//! which takes 24 in memory).

use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};
use serde::ser::{Serialize, Serializer};

/// A `Vec<T>` of at most `N` items once decoded.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bounded<T, const N: usize>(pub Vec<T>);

impl<T, const N: usize> Default for Bounded<T, N> {
    fn default() -> Self {
        Bounded(Vec::new())
    }
}

impl<T, const N: usize> std::ops::Deref for Bounded<T, N> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        &self.0
    }
}

impl<T, const N: usize> std::ops::DerefMut for Bounded<T, N> {
    fn deref_mut(&mut self) -> &mut Vec<T> {
        &mut self.0
    }
}

impl<T, const N: usize> AsRef<[T]> for Bounded<T, N> {
    fn as_ref(&self) -> &[T] {
        &self.0
    }
}

impl<T, const N: usize> From<Vec<T>> for Bounded<T, N> {
    fn from(items: Vec<T>) -> Self {
        Bounded(items)
    }
}

impl<T, const N: usize> FromIterator<T> for Bounded<T, N> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Bounded(iter.into_iter().collect())
    }
}

impl<T, const N: usize> IntoIterator for Bounded<T, N> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a, T, const N: usize> IntoIterator for &'a Bounded<T, N> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<T: Serialize, const N: usize> Serialize for Bounded<T, N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

struct BoundedVisitor<T, const N: usize>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for BoundedVisitor<T, N> {
    type Value = Bounded<T, N>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "a list of at most {N} items")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        if seq.size_hint().is_some_and(|n| n > N) {
            return Err(serde::de::Error::custom(format!(
                "a list of {} items, over {N}",
                seq.size_hint().unwrap_or_default()
            )));
        }
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(N).min(1024));
        while let Some(item) = seq.next_element()? {
            if items.len() == N {
                return Err(serde::de::Error::custom(format!(
                    "a list of more than {N} items"
                )));
            }
            items.push(item);
        }
        Ok(Bounded(items))
    }
}

impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for Bounded<T, N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(BoundedVisitor::<T, N>(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_over_its_bound_is_refused_from_its_length_alone() {
        let many: Vec<Vec<u8>> = vec![Vec::new(); 5];
        let bytes = postcard::to_stdvec(&many).expect("encodes");
        assert!(postcard::from_bytes::<Bounded<Vec<u8>, 4>>(&bytes).is_err());
        let back: Bounded<Vec<u8>, 5> = postcard::from_bytes(&bytes).expect("decodes");
        assert_eq!(back.0, many);
        // A length claiming billions of items, with one byte behind it.
        let mut lying = vec![0xff, 0xff, 0xff, 0xff, 0x0f];
        lying.push(0);
        assert!(postcard::from_bytes::<Bounded<Vec<u8>, 1024>>(&lying).is_err());
    }
}
