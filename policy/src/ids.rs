//! Interning of external ids (tenants, resource ids) to dense `u32`s for roaring bitmaps,
//! and the open-addressed index that the id spaces and the principal table share.

use rustc_hash::FxHasher;
use std::borrow::Cow;
use std::hash::Hasher;

/// Maps external string ids to `u32` keys and back.
///
/// When every id seen is a canonical decimal `u32` (no sign, no leading zero), the key
/// *is* the number, so bitmaps over keys are meaningful to callers (a portable roaring
/// bitmap of row ids). Otherwise ids are numbered densely in order of first sight.
#[derive(Debug, Clone)]
pub enum IdSpace {
    /// Key = the id read as a number.
    Numeric,
    /// Key = order of first sight.
    Dense(DenseIds),
}

/// Ids numbered in order of first sight, their text back to back in one buffer: a lookup
/// reads one slot, one end offset and the id's bytes, where a map of boxed strings chases
/// a pointer to each id's own allocation.
#[derive(Debug, Clone, Default)]
pub struct DenseIds {
    index: SlotIndex,
    /// Every id's bytes, in key order.
    text: String,
    /// `ends[k]`: where id `k` ends in `text` (it starts where id `k - 1` ends).
    ends: Vec<u32>,
}

impl DenseIds {
    /// Number of distinct ids.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether no id was added.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The id of `key`.
    pub fn name(&self, key: u32) -> Option<&str> {
        let k = key as usize;
        let end = *self.ends.get(k)? as usize;
        let start = match k.checked_sub(1) {
            Some(prev) => *self.ends.get(prev)? as usize,
            None => 0,
        };
        self.text.get(start..end)
    }

    /// The key of `id`, if it was added.
    #[inline]
    pub fn key(&self, id: &str) -> Option<u32> {
        self.index.find(hash_id(id), |k| self.name(k) == Some(id))
    }

    /// The key of `id`, adding it when new; `None` once there are more than `u32::MAX`
    /// ids or 4 GiB of their text.
    pub fn intern(&mut self, id: &str) -> Option<u32> {
        let h = hash_id(id);
        if let Some(k) = self.index.find(h, |k| self.name(k) == Some(id)) {
            return Some(k);
        }
        let key = u32::try_from(self.ends.len()).ok()?;
        self.text.push_str(id);
        self.ends.push(u32::try_from(self.text.len()).ok()?);
        if !self.index.has_room(self.ends.len()) {
            self.index = SlotIndex::with_capacity(self.ends.len() * 2);
            for k in 0..key {
                self.index.insert(hash_id(self.name(k)?), k)?;
            }
        }
        self.index.insert(h, key)?;
        Some(key)
    }
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
        let mut dense = DenseIds::default();
        for id in ids {
            dense.intern(id)?;
        }
        Some(IdSpace::Dense(dense))
    }

    /// The key of `id`, if the space can hold it (unknown dense ids have none).
    #[inline]
    pub fn key(&self, id: &str) -> Option<u32> {
        match self {
            IdSpace::Numeric => canonical_u32(id),
            IdSpace::Dense(dense) => dense.key(id),
        }
    }

    /// The external id of `key`.
    pub fn name(&self, key: u32) -> Option<Cow<'_, str>> {
        match self {
            IdSpace::Numeric => Some(Cow::Owned(key.to_string())),
            IdSpace::Dense(dense) => dense.name(key).map(Cow::Borrowed),
        }
    }

    /// Whether keys are the ids themselves (bitmaps are portable to callers).
    pub fn is_numeric(&self) -> bool {
        matches!(self, IdSpace::Numeric)
    }
}

/// The hash both id indexes use: Fx over the bytes and a terminator, its high half folded
/// into the low bits (Fx alone mixes them poorly, and the low bits pick the slot).
pub(crate) fn hash_id(id: &str) -> u64 {
    let mut h = FxHasher::default();
    h.write(id.as_bytes());
    h.write_u8(0xff);
    let x = h.finish();
    x ^ (x >> 29).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Open addressing with linear probing from an id's hash to a `u32` value; the owner keeps
/// the ids and confirms each candidate. A slot holds the hash's high half and `value + 1`,
/// so a probe rejects most strangers without reading their ids; 0 is empty.
#[derive(Debug, Clone, Default)]
pub(crate) struct SlotIndex {
    /// INVARIANT: empty, or a power of two in length with at least one empty slot.
    slots: Vec<u64>,
}

impl SlotIndex {
    /// An index for up to `n` values at most half full.
    pub fn with_capacity(n: usize) -> SlotIndex {
        SlotIndex {
            slots: vec![0; n.saturating_mul(2).next_power_of_two().max(2)],
        }
    }

    /// Whether `n` values keep the index at most half full.
    pub fn has_room(&self, n: usize) -> bool {
        n.saturating_mul(2) <= self.slots.len()
    }

    /// Adds `value` under hash `h`; `None` when `value` is `u32::MAX` or the index is full.
    pub fn insert(&mut self, h: u64, value: u32) -> Option<()> {
        let tagged = (h & 0xffff_ffff_0000_0000) | (u64::from(value.checked_add(1)?));
        let mask = self.slots.len().checked_sub(1)?;
        let mut i = (h as usize) & mask;
        for _ in 0..self.slots.len() {
            let slot = self.slots.get_mut(i)?;
            if *slot == 0 {
                *slot = tagged;
                return Some(());
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// The first value under hash `h` that `is` accepts.
    #[inline]
    pub fn find(&self, h: u64, mut is: impl FnMut(u32) -> bool) -> Option<u32> {
        let mask = self.slots.len().checked_sub(1)?;
        let mut i = (h as usize) & mask;
        for _ in 0..self.slots.len() {
            let slot = *self.slots.get(i)?;
            if slot == 0 {
                return None;
            }
            if slot & 0xffff_ffff_0000_0000 == h & 0xffff_ffff_0000_0000
                && let Some(value) = (slot as u32).checked_sub(1)
                && is(value)
            {
                return Some(value);
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// Heap bytes.
    pub fn bytes(&self) -> usize {
        self.slots.len() * 8
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
    fn dense_ids_keep_their_keys_as_the_index_grows() {
        let mut dense = DenseIds::default();
        let ids: Vec<String> = (0..5_000).map(|i| format!("tenant-{i}")).collect();
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(dense.intern(id), Some(i as u32));
        }
        // Seen again: the same key, nothing added.
        assert_eq!(dense.intern("tenant-17"), Some(17));
        assert_eq!(dense.len(), ids.len());
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(dense.key(id), Some(i as u32), "{id}");
            assert_eq!(dense.name(i as u32), Some(id.as_str()));
        }
        assert_eq!(dense.key("tenant-5000"), None);
        assert_eq!(dense.key("tenant-1 "), None);
        assert_eq!(dense.key(""), None);
        assert_eq!(dense.name(5_000), None);
    }

    #[test]
    fn an_index_refuses_what_it_cannot_hold() {
        let mut index = SlotIndex::with_capacity(1);
        assert_eq!(index.insert(7, u32::MAX), None, "u32::MAX has no tagged form");
        assert!(index.insert(7, 1).is_some());
        assert!(index.insert(7, 2).is_some());
        assert_eq!(index.insert(7, 3), None, "full");
        // A full index still answers, without probing forever.
        assert_eq!(index.find(7, |v| v == 2), Some(2));
        assert_eq!(index.find(7, |_| false), None);
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
