//! Every typed error the API can return, mapped to a gRPC status code. The message is
//! the error's own text, which says what to change, except for host I/O failures:
//! their text names host paths, which a client must not see, so the client gets an
//! error id and flintd's log gets the whole text under that id.

use crate::code::CodeError;
use crate::functions::FunctionError;
use crate::invoke::InvokeError;
use crate::layers::LayerError;
use crate::roles::RoleError;
use crate::runtimes::RuntimeError;
use crate::store::StoreError;
use tonic::{Code, Status};

fn store_code(e: &StoreError) -> Code {
    match e {
        StoreError::NotFound(_) => Code::NotFound,
        StoreError::Exists(_) => Code::AlreadyExists,
        StoreError::HasTriggers { .. } => Code::FailedPrecondition,
        StoreError::Sqlite(_) | StoreError::Schema(_) | StoreError::Corrupt(_) => Code::Internal,
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

fn role_code(e: &RoleError) -> Code {
    match e {
        RoleError::Invalid(_) => Code::InvalidArgument,
        RoleError::Exists(_) => Code::AlreadyExists,
        RoleError::NotFound(_) | RoleError::SecretNotFound(_) => Code::NotFound,
        RoleError::InUse { .. } | RoleError::NoOperatorKey => Code::FailedPrecondition,
        RoleError::Seal(_) | RoleError::Token(_) | RoleError::Sqlite(_) | RoleError::Corrupt(_) => {
            Code::Internal
        }
    }
}

impl From<RoleError> for Status {
    fn from(e: RoleError) -> Status {
        // The signing key's errors name its host path.
        if matches!(e, RoleError::Token(_)) {
            return hidden(&e);
        }
        Status::new(role_code(&e), e.to_string())
    }
}

/// True for errors whose text names a host path.
fn names_host_path(e: &FunctionError) -> bool {
    matches!(
        e,
        FunctionError::Code(CodeError::Io { .. })
            | FunctionError::Runtime(RuntimeError::Io { .. })
            | FunctionError::Role(RoleError::Token(_))
            | FunctionError::Layer(LayerError::Code(CodeError::Io { .. }))
    )
}

fn layer_code(e: &LayerError) -> Code {
    match e {
        LayerError::NotFound(_) => Code::NotFound,
        LayerError::LowDisk(_) => Code::ResourceExhausted,
        LayerError::Code(c) => code_code(c),
        LayerError::Store(s) => store_code(s),
        _ => Code::InvalidArgument,
    }
}

impl From<LayerError> for Status {
    fn from(e: LayerError) -> Status {
        FunctionError::Layer(e).into()
    }
}

/// An INTERNAL status that hides `e`'s text from the client and logs it.
pub(crate) fn hidden(e: &dyn std::error::Error) -> Status {
    let id = uuid::Uuid::new_v4();
    tracing::error!(error_id = %id, error = %e, "internal error");
    Status::internal(format!(
        "flintd could not complete the call because of a host I/O failure; \
         the host's log has the details under error id {id}"
    ))
}

impl From<FunctionError> for Status {
    fn from(e: FunctionError) -> Status {
        let code = match &e {
            FunctionError::Invalid(_) => Code::InvalidArgument,
            FunctionError::Code(c) => code_code(c),
            FunctionError::Runtime(r) => runtime_code(r),
            FunctionError::Store(s) => store_code(s),
            FunctionError::Reserve(_) => Code::ResourceExhausted,
            FunctionError::Role(r) => role_code(r),
            FunctionError::LowDisk(_) => Code::ResourceExhausted,
            FunctionError::Layer(l) => layer_code(l),
        };
        if names_host_path(&e) {
            return hidden(&e);
        }
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
            InvokeError::Queue(crate::events::QueueError::Full { .. }) => Code::ResourceExhausted,
            InvokeError::Queue(_) => Code::Unavailable,
            InvokeError::Role(r) => role_code(r),
            InvokeError::LowDisk(_) => Code::ResourceExhausted,
        };
        if matches!(
            e,
            InvokeError::Code(CodeError::Io { .. })
                | InvokeError::Runtime(RuntimeError::Io { .. })
                | InvokeError::Role(RoleError::Token(_) | RoleError::Sqlite(_))
                | InvokeError::Queue(
                    crate::events::QueueError::Sqlite { .. }
                        | crate::events::QueueError::Migration { .. }
                        | crate::events::QueueError::Corrupt { .. }
                )
        ) {
            return hidden(&e);
        }
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

    #[test]
    fn host_paths_never_reach_the_client() {
        let io = || CodeError::Io {
            path: "/var/lib/flint/code/abc.zip".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        let s: Status = FunctionError::Code(io()).into();
        assert_eq!(s.code(), Code::Internal);
        assert!(!s.message().contains("/var/lib"), "{}", s.message());
        assert!(s.message().contains("error id"), "{}", s.message());
        let s: Status = InvokeError::Code(io()).into();
        assert!(!s.message().contains("/var/lib"), "{}", s.message());
        let full: Status = InvokeError::Queue(crate::events::QueueError::Full {
            path: "/var/lib/flint/data/events.db".into(),
        })
        .into();
        assert_eq!(full.code(), Code::ResourceExhausted);
        assert!(
            full.message().contains("not accepted"),
            "{}",
            full.message()
        );
        assert!(!full.message().contains("/var/lib"), "{}", full.message());
        let broken: Status = InvokeError::Queue(crate::events::QueueError::Corrupt {
            path: "/var/lib/flint/data/events.db".into(),
            request_id: "r".into(),
            what: "x".into(),
        })
        .into();
        assert_eq!(broken.code(), Code::Internal);
        assert!(
            !broken.message().contains("/var/lib"),
            "{}",
            broken.message()
        );
    }
}
