//! The Portcullis gRPC API, package `portcullis.v1`, generated at build time.

pub mod codec;

/// Messages and services of `portcullis.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic, reason = "generated code")]
pub mod v1 {
    tonic::include_proto!("portcullis.v1");
}

/// The encoded file descriptor set, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("portcullis_descriptor");
