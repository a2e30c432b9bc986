//! The one place errors become gRPC statuses.

use crate::clock::TimeError;
use crate::engine::EngineError;
use crate::store::StoreError;
use portcullis_policy::CompileError;
use tonic::{Code, Status};

impl From<EngineError> for Status {
    fn from(e: EngineError) -> Status {
        if let EngineError::Store(StoreError::Io(io)) = &e
            && io.kind() == std::io::ErrorKind::StorageFull
        {
            return Status::resource_exhausted("the data directory is full: nothing was stored; free space and retry");
        }
        let code = match &e {
            EngineError::BadRequest(_) => Code::InvalidArgument,
            EngineError::Compile(CompileError::Invalid(_) | CompileError::Parse(_)) => Code::InvalidArgument,
            EngineError::Compile(CompileError::TooLarge(_)) => Code::ResourceExhausted,
            EngineError::Compile(CompileError::SelfCheck(_) | CompileError::Internal { .. }) => Code::Internal,
            EngineError::Compile(CompileError::Cancelled) => Code::Cancelled,
            EngineError::Conflict { .. } => Code::FailedPrecondition,
            EngineError::UnknownVersion(..) => Code::NotFound,
            EngineError::NotServing => Code::Unavailable,
            EngineError::Store(e) => match e {
                StoreError::NotFound(_) => Code::NotFound,
                StoreError::Conflict { .. } => Code::Aborted,
                StoreError::Unavailable(_) => Code::Unavailable,
                StoreError::Corrupt(_) | StoreError::Incompatible(_) | StoreError::Io(_) => Code::Internal,
            },
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

/// The caller asked for a newer snapshot or overlay than this server has (after waiting).
pub fn behind(what: &str, have: u64, wanted: u64) -> Status {
    Status::failed_precondition(format!(
        "server is at {what} {have}; the request needs at least {wanted}"
    ))
}

/// A replica cut off from its shared store past `store_max_staleness`: it may have missed
/// a revocation (R6), so it refuses rather than risk a stale allow.
pub fn stale(since_ms: u64) -> Status {
    Status::unavailable(format!(
        "this replica has not heard from its store for {:.1}s (past store_max_staleness): it may have missed a revocation",
        since_ms as f64 / 1e3
    ))
}

/// The HTTP status the AuthZEN binding answers for a gRPC code, so both transports share
/// one mapping from errors (400 for the caller's mistakes, 429/503 to retry).
pub fn http_status(code: Code) -> u16 {
    match code {
        Code::Ok => 200,
        Code::InvalidArgument | Code::OutOfRange => 400,
        Code::Unauthenticated => 401,
        Code::PermissionDenied => 403,
        Code::NotFound => 404,
        Code::AlreadyExists | Code::Aborted => 409,
        Code::FailedPrecondition => 412,
        Code::ResourceExhausted => 429,
        Code::Cancelled => 499,
        Code::Unavailable => 503,
        Code::DeadlineExceeded => 504,
        Code::Unimplemented => 501,
        Code::Unknown | Code::Internal | Code::DataLoss => 500,
    }
}
