//! The invocation state shared by the control loop, the Runtime API server, the log
//! forwarder and the reaper: queued invocations, the one in flight, the runtime's pid,
//! and the init milestones (Ready / InitError) that are reported to the host once.

use crate::handoff::{self, Answer, Awaits, Parked};
use crate::host_link::HostLink;
use crate::http::Response;
use crate::logs::LogPipe;
use flint_proto::init::{
    guest_message::Msg, InitError, Invoke, InvokeError, InvokeResponse, Ready, RuntimeExit,
};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

/// Error type reported when the runtime asks for the next invocation without
/// answering the one it holds.
pub const NO_RESPONSE: &str = flint_proto::lambda::NO_RESPONSE;

/// Everything protected by the state lock. Lock order: state, then host link.
#[derive(Debug, Default)]
pub struct State {
    /// When Configure arrived (start of init).
    pub configured_at: Option<Instant>,
    /// Nanoseconds spent unpacking the code bundle.
    pub unpack_ns: u64,
    /// Layers unpacked into /opt from Layer frames (reported in Ready).
    pub layers: u32,
    /// Ready was sent to the host.
    pub ready_sent: bool,
    /// InitError was sent to the host.
    pub init_failed: bool,
    /// Invocations from the host not yet handed to the runtime.
    pub queue: VecDeque<Invoke>,
    /// Request id of the invocation the runtime is working on.
    pub in_flight: Option<String>,
    /// Pid of the runtime (leader of its own session and process group).
    pub runtime_pid: Option<i32>,
    /// The sandbox is shutting down: no more invocations are handed out.
    pub shutdown: bool,
    /// When Prepare arrived (warm pool).
    pub prepared_at: Option<Instant>,
    /// Prepared was sent to the host.
    pub prepared_sent: bool,
    /// The function's environment as JSON, for a runtime started before Configure.
    pub function_env: Option<Vec<u8>>,
    /// The runtime's request waiting for the host, for the control loop to answer.
    pub parked: Option<Parked>,
    /// How far the answer to a parked request has come.
    pub answer: Answer,
}

/// What a runtime's request that waited for the host came to.
#[derive(Debug)]
pub enum Waited<T> {
    /// What it waited for; its connection thread answers.
    Got(T),
    /// The control loop answered on the connection, all but `rest` (the connection
    /// thread writes that); `ok` is false when the connection failed.
    Answered { rest: Vec<u8>, ok: bool },
    /// Shutting down, or init failed: nothing is coming.
    Nothing,
}

impl State {
    /// Takes connection `conn`'s answer once it is written; `None` while there is none
    /// or another thread is still writing it.
    fn answered(&mut self, conn: Option<i32>) -> Option<(Vec<u8>, bool)> {
        let conn = conn?;
        match &self.answer {
            Answer::Sent { conn: c, .. } if *c == conn => {}
            _ => return None,
        }
        match std::mem::take(&mut self.answer) {
            Answer::Sent { rest, ok, .. } => Some((rest, ok)),
            _ => None,
        }
    }

    /// True while connection `conn`'s answer is being written by another thread.
    fn being_answered(&self, conn: Option<i32>) -> bool {
        matches!(self.answer, Answer::Writing(c) if Some(c) == conn)
    }

    /// Offers `parked` to the control loop, when no other request is parked and no
    /// answer is under way; returns its connection when it was taken.
    fn park(&mut self, parked: &mut Option<Parked>) -> Option<i32> {
        if self.parked.is_some() || !matches!(self.answer, Answer::None) {
            return None;
        }
        let p = parked.take()?;
        let conn = p.conn;
        self.parked = Some(p);
        Some(conn)
    }

    /// Takes back connection `conn`'s parked request (its thread answers it now).
    fn unpark(&mut self, conn: Option<i32>) {
        if conn.is_some() && self.parked.as_ref().map(|p| p.conn) == conn {
            self.parked = None;
        }
    }

    /// The parked request when it waits for `awaits` and may be answered now.
    fn take_parked(&mut self, awaits: Awaits) -> Option<Parked> {
        let ready = !self.shutdown
            && matches!(self.answer, Answer::None)
            && self.parked.as_ref().is_some_and(|p| p.awaits == awaits);
        if !ready {
            return None;
        }
        let p = self.parked.take()?;
        self.answer = Answer::Writing(p.conn);
        Some(p)
    }
}

/// How the runtime finished an invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// POST .../response
    Response(Vec<u8>),
    /// POST .../error, or a response that could not be accepted.
    Error {
        /// Lambda error type.
        error_type: String,
        /// Error document (JSON).
        payload: Vec<u8>,
    },
}

/// The request id does not name the invocation in flight.
#[derive(Debug, thiserror::Error)]
#[error("invalid request id {0:?}: not the invocation in flight")]
pub struct StaleRequestId(pub String);

/// State plus the link to the host, shared by all of init's threads.
pub struct Shared {
    /// The host stream (sending side).
    pub link: HostLink,
    state: Mutex<State>,
    cv: Condvar,
    /// The runtime's output pipe, once the runtime is started.
    log_pipe: OnceLock<Arc<LogPipe>>,
}

impl crate::logs::Sink for Shared {
    fn link(&self) -> &HostLink {
        &self.link
    }

    fn current_request_id(&self) -> String {
        Shared::current_request_id(self)
    }
}

impl Shared {
    /// New state around `link`.
    pub fn new(link: HostLink) -> Self {
        Shared {
            link,
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
            log_pipe: OnceLock::new(),
        }
    }

    /// Records the runtime's output pipe, so results are preceded by their output.
    pub fn set_log_pipe(&self, pipe: Arc<LogPipe>) {
        let _ = self.log_pipe.set(pipe);
    }

    /// Forwards pending runtime output for `request_id` to the host.
    fn drain_logs(&self, request_id: &str) {
        if let Some(p) = self.log_pipe.get() {
            p.drain(&self.link, request_id);
        }
    }

    /// Locks the state. Poisoning is ignored: no code path panics while holding it,
    /// and a consistent-enough state beats a dead init.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that Configure arrived at `at` and that unpacking took `unpack_ns`;
    /// wakes a runtime waiting for its first invocation.
    pub fn mark_configured(&self, at: Instant, unpack_ns: u64) {
        let mut st = self.lock();
        st.configured_at = Some(at);
        st.unpack_ns = unpack_ns;
        self.cv.notify_all();
    }

    /// Records that Prepare arrived at `at`.
    pub fn mark_prepared(&self, at: Instant) {
        self.lock().prepared_at = Some(at);
    }

    /// Tells the host the sandbox is ready for Configure (once).
    pub fn report_prepared(&self) {
        let mut st = self.lock();
        if st.prepared_sent {
            return;
        }
        st.prepared_sent = true;
        let prepare_ns = st
            .prepared_at
            .map(|t| t.elapsed().as_nanos() as u64)
            .unwrap_or(0);
        self.link
            .report(Msg::Prepared(flint_proto::init::Prepared { prepare_ns }));
    }

    /// Hands the function's environment (JSON) to a pre-started runtime: written to its
    /// parked request here, else left for its connection thread.
    pub fn set_function_env(&self, json: Vec<u8>) {
        let mut st = self.lock();
        st.function_env = Some(json.clone());
        if let Some(p) = st.take_parked(Awaits::Function) {
            drop(st);
            let sent = handoff::answer(&p, &Response::json(200, json));
            st = self.lock();
            st.answer = sent;
        }
        drop(st);
        self.cv.notify_all();
    }

    /// A pre-started runtime waits for its function: reports Prepared the first time,
    /// then blocks until the environment is set, offering `parked` to be answered by
    /// the control loop meanwhile.
    pub fn wait_function_env(&self, mut parked: Option<Parked>) -> Waited<Vec<u8>> {
        self.report_prepared();
        let mut st = self.lock();
        let mut conn = None;
        loop {
            if let Some((rest, ok)) = st.answered(conn) {
                return Waited::Answered { rest, ok };
            }
            if !st.being_answered(conn) {
                if let Some(env) = st.function_env.clone() {
                    st.unpark(conn);
                    return Waited::Got(env);
                }
                if st.shutdown || st.init_failed {
                    st.unpark(conn);
                    return Waited::Nothing;
                }
                if conn.is_none() {
                    conn = st.park(&mut parked);
                }
            }
            st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Hands an invocation from the host to the runtime: written to its parked `/next`
    /// here, else queued for its connection thread.
    pub fn push_invoke(&self, inv: Invoke) {
        let mut st = self.lock();
        match st.take_parked(Awaits::Invocation) {
            Some(p) => {
                st.in_flight = Some(inv.request_id.clone());
                drop(st);
                let sent = handoff::answer(&p, &handoff::next_response(inv));
                self.lock().answer = sent;
            }
            None => {
                st.queue.push_back(inv);
                drop(st);
            }
        }
        self.cv.notify_all();
    }

    /// Stops handing out invocations and wakes every waiting `/next`.
    pub fn begin_shutdown(&self) {
        self.lock().shutdown = true;
        self.cv.notify_all();
    }

    /// The runtime asks for work: sends Ready on the first call, then blocks until an
    /// invocation comes, offering `parked` to be answered by the control loop
    /// meanwhile. An invocation still in flight is reported to the host as failed with
    /// `NO_RESPONSE`.
    pub fn next_invocation(&self, mut parked: Option<Parked>) -> Waited<Invoke> {
        let mut st = self.lock();
        // A runtime started before Configure has no function yet: wait for it.
        while st.configured_at.is_none() && !st.shutdown && !st.init_failed {
            st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        // Shutting down or failed before the function arrived: no invocation.
        if st.configured_at.is_none() {
            return Waited::Nothing;
        }
        if !st.ready_sent {
            st.ready_sent = true;
            let init_ns = st
                .configured_at
                .map(|t| t.elapsed().as_nanos() as u64)
                .unwrap_or(0);
            self.link.report(Msg::Ready(Ready {
                init_ns,
                unpack_ns: st.unpack_ns,
                layers: st.layers,
            }));
        }
        if let Some(prev) = st.in_flight.take() {
            let doc = error_doc(
                NO_RESPONSE,
                "the runtime asked for the next invocation without answering this one",
            );
            self.link.report(Msg::Error(InvokeError {
                request_id: prev,
                error_type: NO_RESPONSE.into(),
                payload: doc,
            }));
        }
        let mut conn = None;
        loop {
            if let Some((rest, ok)) = st.answered(conn) {
                return Waited::Answered { rest, ok };
            }
            if !st.being_answered(conn) {
                if st.shutdown {
                    st.unpark(conn);
                    return Waited::Nothing;
                }
                if let Some(inv) = st.queue.pop_front() {
                    st.unpark(conn);
                    st.in_flight = Some(inv.request_id.clone());
                    return Waited::Got(inv);
                }
                if conn.is_none() {
                    conn = st.park(&mut parked);
                }
            }
            st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Finishes the invocation `request_id` and reports it to the host.
    pub fn complete(&self, request_id: &str, outcome: Outcome) -> Result<(), StaleRequestId> {
        let mut st = self.lock();
        if st.in_flight.as_deref() != Some(request_id) || request_id.is_empty() {
            return Err(StaleRequestId(request_id.to_string()));
        }
        self.drain_logs(request_id);
        st.in_flight = None;
        let msg = match outcome {
            Outcome::Response(payload) => Msg::Response(InvokeResponse {
                request_id: request_id.to_string(),
                payload,
            }),
            Outcome::Error {
                error_type,
                payload,
            } => Msg::Error(InvokeError {
                request_id: request_id.to_string(),
                error_type,
                payload,
            }),
        };
        self.link.report(msg);
        Ok(())
    }

    /// Reports an init failure (once; later ones are dropped), after the output the
    /// runtime wrote before it (its own account of the error, usually).
    pub fn init_error(&self, error_type: &str, payload: Vec<u8>) {
        let mut st = self.lock();
        self.drain_logs("");
        report_init_error(&mut st, &self.link, error_type, payload);
    }

    /// Request id of the invocation in flight, or "" during init and between
    /// invocations (for log attribution).
    pub fn current_request_id(&self) -> String {
        self.lock().in_flight.clone().unwrap_or_default()
    }

    /// Called by the reaper for every child reaped. Reports the runtime's exit, and an
    /// init failure when it exits before asking for its first invocation.
    pub fn child_exited(&self, pid: i32, exit_code: i32, signal: i32) {
        let mut st = self.lock();
        if st.runtime_pid != Some(pid) {
            return;
        }
        st.runtime_pid = None;
        let request_id = st.in_flight.take().unwrap_or_default();
        self.drain_logs(&request_id);
        self.link.report(Msg::RuntimeExit(RuntimeExit {
            request_id,
            exit_code,
            signal,
        }));
        if !st.ready_sent {
            let message = flint_proto::lambda::exit_message(exit_code, signal);
            let error_type = flint_proto::lambda::EXIT_ERROR;
            let doc = error_doc(error_type, &format!("RequestId: none Error: {message}"));
            report_init_error(&mut st, &self.link, error_type, doc);
        }
    }
}

/// Sends InitError unless one was already sent; for callers already holding the lock.
pub fn report_init_error(st: &mut State, link: &HostLink, error_type: &str, payload: Vec<u8>) {
    if st.init_failed {
        return;
    }
    st.init_failed = true;
    link.report(Msg::InitError(InitError {
        error_type: error_type.to_string(),
        payload,
    }));
}

/// A Lambda error document (Lambda's vocabulary lives in flint-proto).
pub use flint_proto::lambda::error_doc;
