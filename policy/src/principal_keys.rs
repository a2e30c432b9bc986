//! Principals' keys by id, and each grant's principal resolved to one. Validation and the
//! compiler both need every grant's principal looked up, ten million random reads of a
//! table too large for the caches on a large bundle: the lookups are done once, on the
//! validating thread, and the keys streamed to the thread resolving the grants.

use crate::bundle::{Bundle, Grant};
use rustc_hash::FxHashMap;

/// In the grant keys: the grant is given to a group, not to one principal.
pub(crate) const NO_PRINCIPAL: u32 = u32::MAX;
/// In the grant keys: the grant names a principal the bundle does not define.
pub(crate) const UNKNOWN_PRINCIPAL: u32 = u32::MAX - 1;

/// Grants per batch of keys handed from the looking-up thread to the resolving one.
const BATCH: usize = 1 << 16;

/// Each principal's key (its place in `principals`) by id. A repeated id keeps its first
/// place; validation refuses such a bundle. Ids past the last key that can be told apart
/// from the markers above are left out (and are refused as too many by the compiler).
pub(crate) struct PrincipalKeys<'a>(FxHashMap<&'a str, u32>);

impl<'a> PrincipalKeys<'a> {
    /// The keys of `bundle`'s principals.
    pub(crate) fn of(bundle: &'a Bundle) -> Self {
        let mut keys = FxHashMap::default();
        keys.reserve(bundle.principals.len());
        for (p, key) in bundle.principals.iter().zip(0..UNKNOWN_PRINCIPAL) {
            keys.entry(p.id.as_str()).or_insert(key);
        }
        PrincipalKeys(keys)
    }

    /// The key of principal `id`.
    pub(crate) fn get(&self, id: &str) -> Option<u32> {
        self.0.get(id).copied()
    }

    /// Whether `id` is a principal.
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.0.contains_key(id)
    }

    /// Each grant's principal key (or one of the markers), handed to `send` in order in
    /// batches; returns the places of the grants whose principal is unknown, ascending.
    pub(crate) fn of_grants(&self, grants: &[Grant], mut send: impl FnMut(Vec<u32>)) -> Vec<usize> {
        let mut unknown = Vec::new();
        for (b, batch) in grants.chunks(BATCH).enumerate() {
            let keys = batch
                .iter()
                .enumerate()
                .map(|(i, g)| match &g.principal {
                    None => NO_PRINCIPAL,
                    Some(p) => self.get(p).unwrap_or_else(|| {
                        unknown.push(b * BATCH + i);
                        UNKNOWN_PRINCIPAL
                    }),
                })
                .collect();
            send(keys);
        }
        unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Format, parse_bundle};

    #[test]
    fn grants_get_their_principals_keys_in_batches_in_order() {
        let mut yaml = String::from(
            "resource_types: [{name: doc, actions: [read]}]\nroles: [{name: r, permissions: {doc: [read]}}]\n\
             groups: [{name: g, members: [p1]}]\nprincipals: [{id: p0}, {id: p1}, {id: p0}]\ngrants:\n",
        );
        let count = BATCH + 3;
        for i in 0..count {
            let subject = match i % 4 {
                0 => "principal: p0",
                1 => "principal: p1",
                2 => "group: g",
                _ => "principal: nobody",
            };
            yaml.push_str(&format!("  - {{{subject}, role: r, scope: all}}\n"));
        }
        let bundle = parse_bundle(yaml.as_bytes(), Format::Yaml).unwrap();
        let keys = PrincipalKeys::of(&bundle);
        // The repeated id keeps its first place.
        assert_eq!(
            (keys.get("p0"), keys.get("p1"), keys.get("nobody")),
            (Some(0), Some(1), None)
        );
        let mut batches = Vec::new();
        let unknown = keys.of_grants(&bundle.grants, |b| batches.push(b));
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [BATCH, 3]);
        let all: Vec<u32> = batches.concat();
        let expected: Vec<u32> = (0..count)
            .map(|i| [0, 1, NO_PRINCIPAL, UNKNOWN_PRINCIPAL][i % 4])
            .collect();
        assert_eq!(all, expected);
        assert_eq!(unknown, (0..count).filter(|i| i % 4 == 3).collect::<Vec<_>>());
    }
}
