//! Lambda's limits, in one place. Every number a user can run into is here.

/// Smallest memory size a function may have, in MB.
pub const MEMORY_MIN_MB: u32 = 128;
/// Largest memory size a function may have, in MB.
pub const MEMORY_MAX_MB: u32 = 10_240;
/// Memory size when the request leaves it unset.
pub const MEMORY_DEFAULT_MB: u32 = 128;
/// Shortest timeout, in seconds.
pub const TIMEOUT_MIN_S: u32 = 1;
/// Longest timeout, in seconds.
pub const TIMEOUT_MAX_S: u32 = 900;
/// Timeout when the request leaves it unset.
pub const TIMEOUT_DEFAULT_S: u32 = 3;
/// Largest synchronous (RequestResponse) payload: 6 MB.
pub const SYNC_PAYLOAD_MAX: usize = 6 * 1024 * 1024;
/// Largest asynchronous (Event) payload: 256 KB.
pub const ASYNC_PAYLOAD_MAX: usize = 256 * 1024;
/// Largest code bundle (zip) accepted directly: 50 MB.
pub const CODE_ZIP_MAX: usize = 50 * 1024 * 1024;
/// Largest unpacked code bundle: 250 MB.
pub const CODE_UNZIPPED_MAX: u64 = 250 * 1024 * 1024;
/// Most entries in a code bundle.
pub const CODE_ENTRIES_MAX: usize = 20_000;
/// Longest function name.
pub const NAME_MAX: usize = 64;
/// Longest handler string.
pub const HANDLER_MAX: usize = 128;
/// Longest description.
pub const DESCRIPTION_MAX: usize = 256;
/// Total size of a function's environment variables (keys + values): 4 KB.
pub const ENV_TOTAL_MAX: usize = 4 * 1024;
/// Size of the invocation log tail returned with LogType Tail: 4 KB.
pub const LOG_TAIL: usize = 4 * 1024;
/// Processes and threads one instance may have (the cgroup pids limit).
pub const PIDS_MAX: u64 = 1024;
/// Size of the writable /tmp of an instance, in MB (Lambda's default ephemeral storage).
pub const TMP_MB: u32 = 512;
/// Largest ephemeral storage (/tmp) a function may ask for, in MB (Lambda's).
pub const TMP_MAX_MB: u32 = 10240;
/// How long an instance may take to start its runtime before the invocation fails.
pub const INIT_TIMEOUT_S: u64 = 10;
/// gRPC messages the server accepts: the largest code bundle plus headroom. Larger
/// payloads than the invoke limits still arrive, so the caller gets a precise error.
pub const GRPC_MESSAGE_MAX: usize = CODE_ZIP_MAX + 8 * 1024 * 1024;
