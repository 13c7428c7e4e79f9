//! A function instance: one sandbox running flint-init, configured for one function
//! revision, spoken to with the flint.init.v1 protocol. One invocation at a time.

use crate::conn::{Conn, Event};
use crate::sandbox::{SandboxBackend, SandboxSpec};
use crate::start_error::{StartError, StartTimings};
use flint_proto::init::{guest_message::Msg as G, host_message::Msg as H, Configure, Invoke};
use std::time::{Duration, Instant};

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
        let configured = conn.configure(configure, init_timeout).await;
        if configured.is_ok() {
            // Init ran unthrottled, as on Lambda; invocations get memory's CPU share.
            if let Err(e) = conn.sandbox.limit_cpu() {
                tracing::warn!(sandbox = %conn.sandbox.id(), function, error = %e, "CPU quota not applied");
            }
        }
        match configured {
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

    /// Freezes the idle instance's sandbox: nothing it left running uses CPU until
    /// [`thaw`](Self::thaw). A failure is logged; the instance stays usable.
    pub fn freeze(&self) {
        if let Err(e) = self.conn.sandbox.freeze() {
            tracing::warn!(sandbox = %self.conn.sandbox.id(), function = %self.function, error = %e, "instance not frozen");
        }
    }

    /// Thaws the instance before an invocation; false (logged) when it cannot be.
    pub fn thaw(&self) -> bool {
        match self.conn.sandbox.thaw() {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(sandbox = %self.conn.sandbox.id(), function = %self.function, error = %e, "instance not thawed");
                false
            }
        }
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
