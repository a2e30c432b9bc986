//! Portcullis server crate: the command line (policy tooling, checks) and, in time, the
//! gRPC decision server.

pub mod bundle_file;
pub mod cli;
