//! The gRPC services of `portcullis.v1`.

mod admin;
mod authorization;
mod observe;

pub use admin::AdminApi;
pub use authorization::AuthorizationApi;
pub use observe::{CallAudit, Caller, Telemetry};

/// Input limits enforced by the services (the transport enforces message size).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most requests in one BatchCheck.
    pub max_batch: usize,
    /// Largest bundle a push or validation accepts, in bytes.
    pub max_bundle_bytes: usize,
    /// Largest decoded request message on the check service, in bytes.
    pub max_message_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_batch: 1_000,
            max_bundle_bytes: 64 << 20,
            max_message_bytes: 4 << 20,
        }
    }
}
