//! The principal table, laid out for the check's memory traffic: one hash slot, then one
//! contiguous record (account state, id, and the principal's entries), so a check on a
//! snapshot of a million principals costs about two cache misses, as on a small one.

use crate::bundle::AccountStatus;
use crate::ids::{SlotIndex, hash_id};
use crate::snapshot::Entry;
use crate::time::{Seconds, Timestamp};
use rustc_hash::FxHashMap;

/// Longest id stored inline in its record; longer ids live in a side table.
const INLINE_ID: usize = 19;

/// One 32-byte cell of the record arena.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cell {
    /// First cell of a record.
    Head(Head),
    /// Second cell: the principal's dense key and id.
    Id(IdCell),
    /// The remaining cells. INVARIANT: sorted by (type key, grant index).
    Entry(Entry),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Head {
    status: AccountStatus,
    shared: bool,
    entries: u32,
    /// R7: last activity and cut-off; `i64::MAX` cut-off when dormancy does not apply.
    last_activity: i64,
    dormant_after: i64,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct IdCell {
    key: u32,
    /// Length of the inline id, or `u8::MAX` when the id is in `long_ids`.
    len: u8,
    bytes: [u8; INLINE_ID],
}

/// A principal as the evaluator sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PrincipalRef<'a> {
    /// Dense key (position in the bundle's `principals`).
    pub key: u32,
    pub id: &'a str,
    pub status: AccountStatus,
    pub shared: bool,
    /// R7: (last activity, cut-off), when dormancy applies.
    pub dormancy: Option<(Timestamp, Seconds)>,
    cells: &'a [Cell],
}

impl<'a> PrincipalRef<'a> {
    /// The principal's entries on one resource type, in grant order.
    #[inline]
    pub fn entries_for(&self, type_key: u16) -> impl Iterator<Item = &'a Entry> + use<'a> {
        // A forward scan, not a binary search: records are short, and reading them in
        // order lets the hardware prefetcher stream the cache lines in.
        let start = self
            .cells
            .iter()
            .position(|c| !matches!(c, Cell::Entry(e) if e.type_key < type_key))
            .unwrap_or(self.cells.len());
        self.cells
            .get(start..)
            .unwrap_or(&[])
            .iter()
            .map_while(move |c| match c {
                Cell::Entry(e) if e.type_key == type_key => Some(e),
                _ => None,
            })
    }

    /// All the principal's entries.
    pub fn entries(&self) -> impl Iterator<Item = &'a Entry> + use<'a> {
        self.cells.iter().filter_map(|c| match c {
            Cell::Entry(e) => Some(e),
            _ => None,
        })
    }
}

/// What the compiler knows of one principal.
#[derive(Debug)]
pub(crate) struct PrincipalRecord<'b> {
    pub id: &'b str,
    pub status: AccountStatus,
    pub shared: bool,
    pub dormancy: Option<(Timestamp, Seconds)>,
    pub tenant: Option<&'b str>,
    pub groups: Vec<u32>,
    /// How many entries the record holds, placed after with [`TableBuilder::place`].
    pub entries: u32,
}

/// Principals by id and by dense key.
#[derive(Debug, Default)]
pub(crate) struct PrincipalTable {
    /// Id -> offset of the record's head in `arena`.
    index: SlotIndex,
    arena: Vec<Cell>,
    /// Dense key -> offset of the record's head in `arena`.
    offsets: Vec<u32>,
    long_ids: FxHashMap<u32, Box<str>>,
    tenants: FxHashMap<u32, Box<str>>,
    groups: FxHashMap<u32, Box<[u32]>>,
}

impl PrincipalTable {
    /// Lays out one record per principal, keyed in order, with room for the entries each
    /// says it holds (`entries` in all); [`TableBuilder::place`] fills them. `None` if the
    /// arena would outgrow 32-bit offsets.
    pub fn build<'b>(
        records: impl ExactSizeIterator<Item = PrincipalRecord<'b>>,
        entries: usize,
    ) -> Option<TableBuilder> {
        let n = records.len();
        let mut table = PrincipalTable {
            index: SlotIndex::with_capacity(n),
            arena: Vec::with_capacity(entries.saturating_add(2 * n)),
            offsets: Vec::with_capacity(n),
            ..PrincipalTable::default()
        };
        let mut next = Vec::with_capacity(n);
        for (key, r) in records.enumerate() {
            let key = u32::try_from(key).ok()?;
            let offset = u32::try_from(table.arena.len()).ok()?;
            let (last, cut) = r.dormancy.map_or((0, i64::MAX), |(t, s)| (t.0, s.0));
            table.arena.push(Cell::Head(Head {
                status: r.status,
                shared: r.shared,
                entries: r.entries,
                last_activity: last,
                dormant_after: cut,
            }));
            let mut id = IdCell {
                key,
                len: u8::MAX,
                bytes: [0; INLINE_ID],
            };
            match id.bytes.get_mut(..r.id.len()) {
                Some(dst) => {
                    dst.copy_from_slice(r.id.as_bytes());
                    id.len = u8::try_from(r.id.len()).ok()?;
                }
                None => {
                    table.long_ids.insert(key, Box::from(r.id));
                }
            }
            table.arena.push(Cell::Id(id));
            next.push(offset.checked_add(2)?);
            let end = table.arena.len().checked_add(r.entries as usize)?;
            table.arena.resize(end, Cell::Entry(UNPLACED));
            table.offsets.push(offset);
            if let Some(t) = r.tenant {
                table.tenants.insert(key, Box::from(t));
            }
            if !r.groups.is_empty() {
                table.groups.insert(key, r.groups.into_boxed_slice());
            }
            table.index.insert(hash_id(r.id), offset)?;
        }
        Some(TableBuilder { table, next })
    }

    /// Number of principals.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// The principal with this byte-exact id.
    #[inline]
    pub fn get(&self, id: &str) -> Option<PrincipalRef<'_>> {
        if id.is_empty() {
            return None;
        }
        // Inline ids are compared as whole zero-padded arrays: a few wide loads, no call.
        let mut padded = [0u8; INLINE_ID];
        let inline = padded.get_mut(..id.len()).map(|dst| dst.copy_from_slice(id.as_bytes()));
        let offset = self
            .index
            .find(hash_id(id), |offset| match self.arena.get(offset as usize + 1) {
                Some(Cell::Id(cell)) if cell.len == u8::MAX => {
                    inline.is_none() && self.long_ids.get(&cell.key).is_some_and(|long| **long == *id)
                }
                Some(Cell::Id(cell)) => inline.is_some() && usize::from(cell.len) == id.len() && cell.bytes == padded,
                _ => false,
            })?;
        self.at(offset)
    }

    /// The principal with this dense key.
    pub fn by_key(&self, key: u32) -> Option<PrincipalRef<'_>> {
        self.at(*self.offsets.get(key as usize)?)
    }

    /// Home tenant (R16).
    pub fn tenant(&self, key: u32) -> Option<&str> {
        self.tenants.get(&key).map(|t| &**t)
    }

    /// Sorted group keys, when some deny rule selects by group.
    pub fn groups(&self, key: u32) -> &[u32] {
        self.groups.get(&key).map_or(&[], |g| &**g)
    }

    /// Approximate heap bytes.
    pub fn approx_bytes(&self) -> usize {
        self.index.bytes() + self.arena.len() * std::mem::size_of::<Cell>() + self.offsets.len() * 4
    }

    fn at(&self, offset: u32) -> Option<PrincipalRef<'_>> {
        let start = offset as usize;
        let (Some(Cell::Head(head)), Some(Cell::Id(id))) = (self.arena.get(start), self.arena.get(start + 1)) else {
            return None;
        };
        let id_str = match id.bytes.get(..usize::from(id.len)) {
            Some(bytes) => std::str::from_utf8(bytes).ok()?,
            None => self.long_ids.get(&id.key)?,
        };
        let cells = self.arena.get(start + 2..start + 2 + head.entries as usize)?;
        Some(PrincipalRef {
            key: id.key,
            id: id_str,
            status: head.status,
            shared: head.shared,
            dormancy: (head.dormant_after != i64::MAX)
                .then_some((Timestamp(head.last_activity), Seconds(head.dormant_after))),
            cells,
        })
    }
}

/// What an entry cell holds until [`TableBuilder::place`] fills it.
const UNPLACED: Entry = Entry {
    actions: 0,
    scope: crate::snapshot::CScope::All,
    grant: u32::MAX,
    type_key: u16::MAX,
    break_glass: false,
    plain: false,
};

/// A principal table whose records are laid out and are being filled with entries.
#[derive(Debug)]
pub(crate) struct TableBuilder {
    table: PrincipalTable,
    /// Per dense key: the arena index the record's next entry goes to.
    next: Vec<u32>,
}

impl TableBuilder {
    /// Puts one of principal `key`'s entries in its record; `None` when the record has no
    /// room left (more entries than it was built to hold).
    pub fn place(&mut self, key: u32, entry: Entry) -> Option<()> {
        let next = self.next.get_mut(key as usize)?;
        let offset = *self.table.offsets.get(key as usize)? as usize;
        let Some(Cell::Head(head)) = self.table.arena.get(offset) else {
            return None;
        };
        if *next as usize >= offset + 2 + head.entries as usize {
            return None;
        }
        *self.table.arena.get_mut(*next as usize)? = Cell::Entry(entry);
        *next += 1;
        Some(())
    }

    /// The finished table, each record's entries sorted by (type key, grant); `None` when
    /// a record was left with room unfilled.
    pub fn finish(mut self) -> Option<PrincipalTable> {
        for (&offset, &next) in self.table.offsets.iter().zip(&self.next) {
            let start = offset as usize + 2;
            let Some(Cell::Head(head)) = self.table.arena.get(offset as usize) else {
                return None;
            };
            let end = start + head.entries as usize;
            if next as usize != end {
                return None;
            }
            self.table.arena.get_mut(start..end)?.sort_unstable_by_key(|c| match c {
                Cell::Entry(e) => (e.type_key, e.grant),
                _ => (u16::MAX, u32::MAX),
            });
        }
        Some(self.table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> PrincipalRecord<'_> {
        PrincipalRecord {
            id,
            status: AccountStatus::Active,
            shared: false,
            dormancy: None,
            tenant: None,
            groups: Vec::new(),
            entries: 0,
        }
    }

    #[test]
    fn finds_every_id_byte_exactly() {
        let long = "a-principal-id-longer-than-nineteen-bytes";
        let ids: Vec<String> = (0..5000)
            .map(|i| format!("p{i}"))
            .chain([long.to_owned(), "P1".to_owned()])
            .collect();
        let table = PrincipalTable::build(ids.iter().map(|id| record(id)), 0)
            .unwrap()
            .finish()
            .unwrap();
        for (k, id) in ids.iter().enumerate() {
            let p = table.get(id).unwrap();
            assert_eq!((p.key as usize, p.id), (k, id.as_str()));
            assert_eq!(table.by_key(k as u32).unwrap().id, id);
        }
        assert!(table.get("p5000").is_none());
        assert!(table.get("").is_none());
        assert_ne!(table.get("P1").unwrap().key, table.get("p1").unwrap().key);
    }

    #[test]
    fn entries_fill_their_records_sorted_and_exactly() {
        let entry = |type_key: u16, grant: u32| Entry {
            type_key,
            grant,
            ..UNPLACED
        };
        let records = || {
            [("a", 2), ("b", 0), ("c", 1)]
                .into_iter()
                .map(|(id, n)| PrincipalRecord {
                    entries: n,
                    ..record(id)
                })
        };
        let mut builder = PrincipalTable::build(records(), 3).unwrap();
        builder.place(0, entry(1, 0)).unwrap();
        builder.place(2, entry(0, 1)).unwrap();
        builder.place(0, entry(0, 2)).unwrap();
        assert!(builder.place(0, entry(0, 3)).is_none(), "a full record takes no more");
        assert!(builder.place(1, entry(0, 3)).is_none());
        assert!(builder.place(3, entry(0, 3)).is_none(), "no such key");
        let table = builder.finish().unwrap();
        let of = |id: &str| -> Vec<(u16, u32)> {
            table
                .get(id)
                .unwrap()
                .entries()
                .map(|e| (e.type_key, e.grant))
                .collect()
        };
        assert_eq!(of("a"), [(0, 2), (1, 0)]);
        assert_eq!(of("b"), []);
        assert_eq!(of("c"), [(0, 1)]);
        // A record left short is a broken table, not one with a made-up entry.
        let mut short = PrincipalTable::build(records(), 3).unwrap();
        short.place(0, entry(0, 0)).unwrap();
        short.place(2, entry(0, 1)).unwrap();
        assert!(short.finish().is_none());
    }
}
