//! A function instance: one sandbox running flint-init, configured for one function
//! revision, spoken to with the flint.init.v1 protocol. One invocation at a time.

use crate::conn::{Conn, Event};
use crate::sandbox::{SandboxBackend, SandboxError, SandboxSpec};
use flint_proto::init::{guest_message::Msg as G, host_message::Msg as H, Configure, Invoke};
use std::time::{Duration, Instant};

/// Why an instance could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The sandbox could not be made
    #[error("could not create a sandbox: {0}")]
    Sandbox(#[from] SandboxError),
    /// flint-init spoke an unexpected protocol
    #[error("flint-init protocol error: {0}")]
    Protocol(String),
    /// The runtime failed during its init phase (a function error, not an agent error)
    #[error("runtime init failed: {error_type}")]
    Init {
        error_type: String,
        payload: Vec<u8>,
        log: Vec<u8>,
    },
    /// Init did not finish in time
    #[error("the runtime did not initialise within {0:?}")]
    Timeout(Duration, Vec<u8>),
}

/// How one invocation ended.
#[derive(Debug)]
pub enum Outcome {
    /// The function returned this payload.
    Response(Vec<u8>),
    /// The function reported an error (error type, error document).
    FunctionError(String, Vec<u8>),
    /// The runtime died (or the sandbox with it) mid-invocation.
    Crashed {
        exit_code: i32,
        signal: i32,
        oom: bool,
    },
    /// The deadline passed; the instance must be destroyed.
    TimedOut,
}

impl Outcome {
    /// True when the instance may serve another invocation.
    pub fn reusable(&self) -> bool {
        matches!(self, Outcome::Response(_) | Outcome::FunctionError(..))
    }
}

/// Where a cold start's time went, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StartTimings {
    /// Sandbox creation until Hello.
    pub sandbox_ns: u64,
    /// flint-init's own start until Hello (as it measured).
    pub init_boot_ns: u64,
    /// Unpacking the code.
    pub code_load_ns: u64,
    /// Configure until the runtime's first /next.
    pub runtime_init_ns: u64,
}

/// What `start` needs.
pub struct StartSpec<'a> {
    pub sandbox: SandboxSpec,
    pub configure: Configure,
    pub function: &'a str,
    pub revision: u64,
}

/// A started instance.
pub struct Instance {
    conn: Conn,
    pub function: String,
    pub revision: u64,
    pub memory_mb: u32,
    /// Time from sandbox creation (or from taking a pool sandbox) to the runtime's
    /// first /next.
    pub init_duration: Duration,
    /// Phase timings of this instance's start.
    pub timings: StartTimings,
    /// Whether the instance came from a warm-pool sandbox.
    pub pool_hit: bool,
    pub last_used: Instant,
}

impl Instance {
    /// Creates a sandbox, configures it and waits for the runtime to be ready.
    pub async fn start(
        backend: &dyn SandboxBackend,
        spec: StartSpec<'_>,
        init_timeout: Duration,
    ) -> Result<Instance, StartError> {
        let conn = Conn::open(backend, &spec.sandbox).await?;
        Self::finish(
            conn,
            spec.configure,
            spec.function,
            spec.revision,
            init_timeout,
            false,
        )
        .await
    }

    /// Binds a warm-pool sandbox to a function.
    pub(crate) async fn from_pool(
        conn: Conn,
        configure: Configure,
        function: &str,
        revision: u64,
        init_timeout: Duration,
    ) -> Result<Instance, StartError> {
        Self::finish(conn, configure, function, revision, init_timeout, true).await
    }

    async fn finish(
        mut conn: Conn,
        configure: Configure,
        function: &str,
        revision: u64,
        init_timeout: Duration,
        pool_hit: bool,
    ) -> Result<Instance, StartError> {
        let t0 = if pool_hit {
            Instant::now()
        } else {
            conn.created
        };
        let memory_mb = configure.memory_mb;
        if pool_hit {
            // Output of the pool sandbox's own start belongs to no function.
            conn.pending_log.clear();
            conn.timings.sandbox_ns = 0;
            conn.timings.init_boot_ns = 0;
        }
        match conn.configure(configure, init_timeout).await {
            Ok(()) => Ok(Instance {
                init_duration: t0.elapsed(),
                timings: conn.timings,
                conn,
                function: function.to_string(),
                revision,
                memory_mb,
                pool_hit,
                last_used: Instant::now(),
            }),
            Err(e) => {
                conn.destroy().await;
                Err(e)
            }
        }
    }

    /// True when the instance can take an invocation.
    pub fn is_alive(&mut self) -> bool {
        self.conn.is_alive()
    }

    /// Output of the init phase and while idle (bounded), for the next invocation's log.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.conn.pending_log)
    }

    /// Runs one invocation; `log` receives the function's output.
    pub async fn invoke(
        &mut self,
        invoke: Invoke,
        deadline: Instant,
        log: &mut Vec<u8>,
    ) -> Outcome {
        let request_id = invoke.request_id.clone();
        if let Err(e) = self.conn.send(H::Invoke(invoke)).await {
            tracing::warn!(function = %self.function, request_id, error = %e, "sending Invoke failed");
            self.conn.dead = true;
            return self.crash(-1, 0);
        }
        let deadline = tokio::time::Instant::from_std(deadline);
        loop {
            let Ok(ev) = tokio::time::timeout_at(deadline, self.conn.events.recv()).await else {
                self.conn.dead = true;
                return Outcome::TimedOut;
            };
            match ev {
                Some(Event::Msg(G::Log(l))) => crate::logs::push_capped(log, &l.data),
                Some(Event::Msg(G::Response(r))) if r.request_id == request_id => {
                    self.last_used = Instant::now();
                    return Outcome::Response(r.payload);
                }
                Some(Event::Msg(G::Error(e))) if e.request_id == request_id => {
                    self.last_used = Instant::now();
                    return Outcome::FunctionError(e.error_type, e.payload);
                }
                Some(Event::Msg(G::RuntimeExit(x))) => {
                    self.conn.dead = true;
                    // Let the last output arrive before reporting.
                    while let Ok(Event::Msg(G::Log(l))) = self.conn.events.try_recv() {
                        crate::logs::push_capped(log, &l.data);
                    }
                    return self.crash(x.exit_code, x.signal);
                }
                Some(Event::Closed(_)) | None => {
                    self.conn.dead = true;
                    return self.crash(-1, 9);
                }
                Some(Event::Msg(other)) => {
                    tracing::debug!(function = %self.function, request_id, "ignoring {other:?}");
                }
            }
        }
    }

    fn crash(&self, exit_code: i32, signal: i32) -> Outcome {
        Outcome::Crashed {
            exit_code,
            signal,
            oom: self.conn.sandbox.oom_killed(),
        }
    }

    /// Peak memory of the instance's sandbox so far, in MB.
    pub fn max_memory_used_mb(&self) -> Option<u64> {
        self.conn
            .sandbox
            .memory_peak()
            .map(|b| b.div_ceil(1024 * 1024))
    }

    /// The sandbox id.
    pub fn sandbox_id(&self) -> &str {
        self.conn.sandbox.id()
    }

    /// Stops the runtime and removes the sandbox.
    pub async fn destroy(self) {
        self.conn.destroy().await;
    }
}

/// Lambda's wording for a runtime that exited.
pub fn exit_text(exit_code: i32, signal: i32) -> String {
    if signal > 0 {
        let name = nix::sys::signal::Signal::try_from(signal)
            .map(|s| s.as_str().trim_start_matches("SIG").to_lowercase())
            .unwrap_or_else(|_| signal.to_string());
        let name = if name == "kill" {
            "killed".to_string()
        } else {
            name
        };
        format!("Runtime exited with error: signal: {name}")
    } else {
        format!("Runtime exited with error: exit status {exit_code}")
    }
}

/// A Lambda error document.
pub fn error_doc(error_type: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"errorType": error_type, "errorMessage": message}))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_texts_match_lambda() {
        assert_eq!(exit_text(0, 9), "Runtime exited with error: signal: killed");
        assert_eq!(exit_text(3, 0), "Runtime exited with error: exit status 3");
        assert_eq!(exit_text(0, 11), "Runtime exited with error: signal: segv");
    }
}
