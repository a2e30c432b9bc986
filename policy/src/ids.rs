//! Interning of external ids (tenants, resource ids) to dense `u32`s for roaring bitmaps.

use rustc_hash::FxHashMap;
use std::borrow::Cow;

/// Maps external string ids to `u32` keys and back.
///
/// When every id seen is a canonical decimal `u32` (no sign, no leading zero), the key
/// *is* the number, so bitmaps over keys are meaningful to callers (a portable roaring
/// bitmap of row ids). Otherwise ids are numbered densely in order of first sight.
#[derive(Debug, Clone)]
pub enum IdSpace {
    /// Key = the id read as a number.
    Numeric,
    /// Key = position in `names`.
    Dense {
        /// id -> key.
        keys: FxHashMap<Box<str>, u32>,
        /// key -> id. INVARIANT: `keys[names[k]] == k` for every k.
        names: Vec<Box<str>>,
    },
}

/// Reads a canonical decimal `u32` (`0`, `17`; not `017`, `+1`, ` 1`).
pub fn canonical_u32(id: &str) -> Option<u32> {
    let b = id.as_bytes();
    if b.is_empty() || b.len() > 10 || (b.len() > 1 && b.first() == Some(&b'0')) || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    id.parse().ok()
}

impl IdSpace {
    /// Builds the space for a set of ids (duplicates allowed). `None` if there are more than `u32::MAX`.
    pub fn build<'a>(ids: impl Iterator<Item = &'a str> + Clone) -> Option<IdSpace> {
        if ids.clone().all(|id| canonical_u32(id).is_some()) {
            return Some(IdSpace::Numeric);
        }
        let mut keys = FxHashMap::default();
        let mut names = Vec::new();
        for id in ids {
            if !keys.contains_key(id) {
                keys.insert(Box::from(id), u32::try_from(names.len()).ok()?);
                names.push(Box::from(id));
            }
        }
        Some(IdSpace::Dense { keys, names })
    }

    /// The key of `id`, if the space can hold it (unknown dense ids have none).
    #[inline]
    pub fn key(&self, id: &str) -> Option<u32> {
        match self {
            IdSpace::Numeric => canonical_u32(id),
            IdSpace::Dense { keys, .. } => keys.get(id).copied(),
        }
    }

    /// The external id of `key`.
    pub fn name(&self, key: u32) -> Option<Cow<'_, str>> {
        match self {
            IdSpace::Numeric => Some(Cow::Owned(key.to_string())),
            IdSpace::Dense { names, .. } => names.get(key as usize).map(|n| Cow::Borrowed(&**n)),
        }
    }

    /// Whether keys are the ids themselves (bitmaps are portable to callers).
    pub fn is_numeric(&self) -> bool {
        matches!(self, IdSpace::Numeric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_space_is_byte_exact() {
        let space = IdSpace::build(["1", "22", "4294967295"].into_iter()).unwrap();
        assert!(space.is_numeric());
        assert_eq!(space.key("22"), Some(22));
        assert_eq!(space.key("022"), None);
        assert_eq!(space.key("+22"), None);
        assert_eq!(space.key("4294967296"), None);
    }

    #[test]
    fn dense_space_round_trips() {
        let space = IdSpace::build(["Alice", "alice", "Alice"].into_iter()).unwrap();
        let a = space.key("Alice").unwrap();
        let b = space.key("alice").unwrap();
        assert_ne!(a, b);
        assert_eq!(space.name(b).unwrap(), "alice");
        assert_eq!(space.key("ALICE"), None);
    }
}
