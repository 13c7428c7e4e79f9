//! Every typed error the API can return, mapped to a gRPC status code. The message is
//! the error's own text, which says what to change.

use crate::code::CodeError;
use crate::functions::FunctionError;
use crate::invoke::InvokeError;
use crate::runtimes::RuntimeError;
use crate::store::StoreError;
use tonic::{Code, Status};

fn store_code(e: &StoreError) -> Code {
    match e {
        StoreError::NotFound(_) => Code::NotFound,
        StoreError::Exists(_) => Code::AlreadyExists,
        StoreError::Sqlite(_) | StoreError::Corrupt(_) => Code::Internal,
    }
}

fn code_code(e: &CodeError) -> Code {
    match e {
        CodeError::Io { .. } | CodeError::Missing(_) => Code::Internal,
        _ => Code::InvalidArgument,
    }
}

fn runtime_code(e: &RuntimeError) -> Code {
    match e {
        RuntimeError::Unknown { .. } => Code::InvalidArgument,
        RuntimeError::Io { .. } => Code::Internal,
    }
}

impl From<FunctionError> for Status {
    fn from(e: FunctionError) -> Status {
        let code = match &e {
            FunctionError::Invalid(_) => Code::InvalidArgument,
            FunctionError::Code(c) => code_code(c),
            FunctionError::Runtime(r) => runtime_code(r),
            FunctionError::Store(s) => store_code(s),
            FunctionError::Reserve(_) => Code::ResourceExhausted,
        };
        Status::new(code, e.to_string())
    }
}

impl From<InvokeError> for Status {
    fn from(e: InvokeError) -> Status {
        let code = match &e {
            InvokeError::Store(s) => store_code(s),
            InvokeError::PayloadTooLarge { .. } => Code::InvalidArgument,
            InvokeError::PayloadNotJson(_) | InvokeError::ClientContext(_) => Code::InvalidArgument,
            InvokeError::Runtime(r) => match r {
                RuntimeError::Unknown { .. } => Code::FailedPrecondition,
                RuntimeError::Io { .. } => Code::Internal,
            },
            InvokeError::Code(_) => Code::Internal,
            InvokeError::Sandbox { .. } => Code::Unavailable,
            InvokeError::Throttled(crate::limiter::Throttle::Draining) => Code::Unavailable,
            InvokeError::Throttled(_) => Code::ResourceExhausted,
        };
        Status::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_and_invalid_map_to_the_right_codes() {
        let s: Status = FunctionError::Store(StoreError::NotFound("f".into())).into();
        assert_eq!(s.code(), Code::NotFound);
        assert!(s.message().contains("flint create"));
        let s: Status = InvokeError::PayloadTooLarge {
            size: 7,
            limit: 6,
            kind: "synchronous",
        }
        .into();
        assert_eq!(s.code(), Code::InvalidArgument);
    }
}
