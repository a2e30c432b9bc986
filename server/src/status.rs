//! The one place errors become gRPC statuses.

use crate::clock::TimeError;
use crate::engine::EngineError;
use portcullis_policy::CompileError;
use tonic::{Code, Status};

impl From<EngineError> for Status {
    fn from(e: EngineError) -> Status {
        let code = match &e {
            EngineError::Parse(_) | EngineError::BadRequest(_) => Code::InvalidArgument,
            EngineError::Compile(CompileError::Invalid(_)) => Code::InvalidArgument,
            EngineError::Compile(CompileError::TooLarge(_)) => Code::ResourceExhausted,
            EngineError::Compile(CompileError::SelfCheck(_)) => Code::Internal,
            EngineError::Conflict { .. } => Code::Aborted,
            EngineError::UnknownVersion(..) => Code::NotFound,
            EngineError::NotServing => Code::Unavailable,
            EngineError::Io(_) => Code::Internal,
        };
        Status::new(code, e.to_string())
    }
}

impl From<TimeError> for Status {
    fn from(e: TimeError) -> Status {
        Status::invalid_argument(e.to_string())
    }
}

/// No snapshot yet: the server must not answer with a decision.
pub fn not_serving() -> Status {
    Status::unavailable("no policy snapshot is loaded; push one first")
}

/// The caller asked for a newer snapshot than this server has.
pub fn behind(live: u64, wanted: u64) -> Status {
    Status::failed_precondition(format!(
        "server is at snapshot version {live}; the request needs at least {wanted}"
    ))
}
