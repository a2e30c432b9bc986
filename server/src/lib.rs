//! Portcullis server crate: the gRPC decision server (`portcullis serve`), its snapshot
//! store and admin API, and the command line for authors and operators.

pub mod activity;
pub mod api;
pub mod audit;
pub mod auth;
pub mod authzen;
pub mod bundle_file;
pub mod cli;
pub mod client;
pub mod clock;
pub mod coalesce;
pub mod convert;
pub mod edge;
pub mod engine;
pub mod follow;
pub mod low_priority;
pub mod metrics;
pub mod otel;
pub mod scopes;
pub mod serve;
pub mod status;
pub mod store;
