//! Shared names: the strings a bundle repeats on every grant (the role, the tenant, the
//! group, a listed resource type), held once. While [`interning`] runs (parsing a bundle does), every
//! [`Name`] deserialized with the same text shares one allocation, so ten million grants
//! over ten roles and ten thousand tenants hold ten and ten thousand strings, not twenty
//! million. Outside it a `Name` is simply a reference-counted string.

use rustc_hash::FxHashSet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cell::RefCell;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// An immutable, cheaply cloned string; equal to and hashed as its text. One pointer wide
/// (the text sits behind the shared allocation), so the ten million grants of a large
/// bundle hold 8 bytes per name, not 16.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Name(Arc<Box<str>>);

impl Name {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Name {
        Name(Arc::new(Box::from(s)))
    }
}

impl From<String> for Name {
    fn from(s: String) -> Name {
        Name(Arc::new(s.into_boxed_str()))
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Name, D::Error> {
        d.deserialize_str(Text)
    }
}

/// Reads a string as a [`Name`], shared through [`interning`]'s table.
struct Text;

impl serde::de::Visitor<'_> for Text {
    type Value = Name;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Name, E> {
        Ok(intern(v))
    }
}

thread_local! {
    /// The names seen by the [`interning`] call running on this thread, if any.
    static SEEN: RefCell<Option<FxHashSet<Name>>> = const { RefCell::new(None) };
}

/// The shared `Name` for `text` while [`interning`] runs; a new one otherwise.
fn intern(text: &str) -> Name {
    SEEN.with_borrow_mut(|seen| match seen {
        Some(set) => match set.get(text) {
            Some(shared) => shared.clone(),
            None => {
                let shared = Name::from(text);
                set.insert(shared.clone());
                shared
            }
        },
        None => Name::from(text),
    })
}

/// Runs `f` with names deserialized on this thread shared by text; the table is dropped
/// when `f` returns (or unwinds), so nothing outlives the parse but the names themselves.
pub(crate) fn interning<T>(f: impl FnOnce() -> T) -> T {
    interning_in(&mut Table::default(), f)
}

/// A table of shared names that outlives one [`interning`] call: a helper thread that
/// parses part of a bundle keeps its names in one across the parts it is given.
#[derive(Default)]
pub(crate) struct Table(FxHashSet<Name>);

/// Runs `f` with names deserialized on this thread shared through `table`, on whatever
/// thread it runs; the thread's own table (if any) is back in place when `f` returns.
pub(crate) fn interning_in<T>(table: &mut Table, f: impl FnOnce() -> T) -> T {
    struct Lend<'t> {
        table: &'t mut Table,
        previous: Option<FxHashSet<Name>>,
    }
    impl Drop for Lend<'_> {
        fn drop(&mut self) {
            let previous = self.previous.take();
            if let Some(used) = SEEN.with_borrow_mut(|seen| std::mem::replace(seen, previous)) {
                self.table.0 = used;
            }
        }
    }
    let lent = std::mem::take(&mut table.0);
    let _lend = Lend {
        previous: SEEN.with_borrow_mut(|seen| seen.replace(lent)),
        table,
    };
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parsed_together_share_their_text() {
        let (a, b): (Vec<Name>, Vec<Name>) = interning(|| {
            (
                serde_json::from_str(r#"["x","y","x"]"#).unwrap(),
                serde_json::from_str(r#"["x"]"#).unwrap(),
            )
        });
        assert!(Arc::ptr_eq(&a[0].0, &a[2].0));
        assert!(Arc::ptr_eq(&a[0].0, &b[0].0));
        assert!(!Arc::ptr_eq(&a[0].0, &a[1].0));
        assert_eq!(a[1].as_str(), "y");
        // Outside `interning` nothing is shared, and nothing was left behind.
        let c: Vec<Name> = serde_json::from_str(r#"["x","x"]"#).unwrap();
        assert!(!Arc::ptr_eq(&c[0].0, &c[1].0));
        assert!(SEEN.with_borrow(Option::is_none));
    }

    #[test]
    fn escaped_text_is_read_as_text() {
        let n: Name = interning(|| serde_json::from_str(r#""a\"b""#).unwrap());
        assert_eq!(&*n, "a\"b");
        assert_eq!(serde_json::to_string(&n).unwrap(), r#""a\"b""#);
    }
}
