//! Portcullis policy engine: the bundle format, validation, the compiled snapshot, the
//! evaluator, row filters, access-review queries and the reference evaluator they are
//! tested against. Pure library: no I/O, no clocks except [`Timestamp::now`], and no threads
//! but the self-check's scoped ones (joined before it returns).
//!
//! ```
//! use portcullis_policy::{compile, parse_bundle, Format, Overlay, Request, Resource};
//! let bundle = parse_bundle(br#"
//! resource_types: [{name: note, actions: [read]}]
//! roles: [{name: reader, permissions: {note: [read]}}]
//! principals: [{id: ann}]
//! grants: [{principal: ann, role: reader, scope: all}]
//! "#, Format::Yaml).unwrap();
//! let snapshot = compile(&bundle, 1).unwrap();
//! let req = Request { principal: "ann".into(), action: "read".into(),
//!     resource: Resource { resource_type: "note".into(), id: "n1".into(), ..Default::default() },
//!     ..Default::default() };
//! assert!(snapshot.check(&req, Overlay::empty()).is_allowed());
//! ```

#![deny(missing_docs)]

mod access;
pub mod activity;
pub mod bundle;
mod compile;
pub mod decision;
mod eval;
pub mod filter;
pub mod ids;
pub mod name;
pub mod overlay;
mod parse;
mod principal_keys;
mod principals;
pub mod reference;
pub mod request;
pub mod review;
pub mod selfcheck;
mod snapshot;
mod stream;
pub mod synth;
pub mod time;
mod validate;

pub use access::{AccessPath, Condition, Listing, Need, Target};
pub use activity::Activity;
pub use bundle::{Bundle, PolicyTest, PolicyTestFile, Scope};
pub use compile::{CompileError, CompileOptions, compile, compile_owned, compile_source, compile_with};
pub use decision::{Decision, Effect, Flags, Reason, RuleRef};
pub use filter::{RowFilter, SqlParam, SqlPredicate};
pub use overlay::{Overlay, TemporaryGrant};
pub use parse::{Format, ParseError, parse_bundle, parse_tests, read_bundle};
pub use request::{Factor, Request, Resource, Session};
pub use snapshot::{Snapshot, Stats};
pub use time::{Seconds, Timestamp};
pub use validate::{MAX_ACTIONS, Problem, ValidationError, ValidationErrors, validate};
