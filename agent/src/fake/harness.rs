//! An agent on the fake backend, in a temporary directory: a data directory, an
//! images directory holding one runtime (`fake3.x`, an empty rootfs) and an empty file
//! standing in for flint-init. Helpers to create functions and invoke them with a
//! deadline, an observer that keeps every invocation record, and a poll for what
//! happens in the background (destroys, warm-pool refills).

use super::backend::FakeBackend;
use super::guest::Script;
use crate::config::{Config, RawConfig};
use crate::core::Agent;
use crate::functions::NewFunction;
use crate::invoke::{InvocationType, InvokeError, InvokeInput, InvokeOutput};
use crate::observe::{InvocationObserver, InvocationRecord};
use clap::Parser;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The runtime of the fake images directory.
pub(crate) const RUNTIME: &str = "fake3.x";

/// Longest a background effect may take to show before the test fails (not hangs).
const STEP: Duration = Duration::from_secs(5);

/// Longest one invocation may take before the test fails: the init timeout (which
/// tests reach on tokio's paused clock, in no real time) and some.
const INVOKE_MAX: Duration = Duration::from_secs(crate::limits::INIT_TIMEOUT_S + 5);

/// Keeps every invocation record and every throttle.
#[derive(Default)]
pub(crate) struct Recorder {
    pub records: Mutex<Vec<InvocationRecord>>,
    pub throttles: Mutex<Vec<(String, String)>>,
}

impl InvocationObserver for Recorder {
    fn invocation(&self, rec: &InvocationRecord) {
        self.records.lock().unwrap().push(rec.clone());
    }

    fn throttled(&self, function: &str, limit: &str) {
        self.throttles
            .lock()
            .unwrap()
            .push((function.to_string(), limit.to_string()));
    }
}

/// An agent on a fake backend.
pub(crate) struct Harness {
    pub agent: Arc<Agent>,
    pub backend: Arc<FakeBackend>,
    pub recorder: Arc<Recorder>,
    pub dir: tempfile::TempDir,
}

/// A code bundle whose version.txt says `version`.
pub(crate) fn bundle(version: &str) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    w.start_file("version.txt", opts).unwrap();
    w.write_all(version.as_bytes()).unwrap();
    w.start_file("main.py", opts).unwrap();
    w.write_all(b"def handler(event, context):\n    return event\n")
        .unwrap();
    w.finish().unwrap().into_inner()
}

impl Harness {
    /// An agent whose sandboxes run `script`, configured by flintd `flags` on top of
    /// test defaults (warm pool off, no host-memory floor, 60 s keep-alive).
    pub fn open(script: Script, flags: &[&str]) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images");
        let rt = images.join(RUNTIME);
        std::fs::create_dir_all(rt.join("rootfs")).unwrap();
        std::fs::write(
            rt.join("runtime.json"),
            format!(
                r#"{{"name":"{RUNTIME}","bootstrap":["/var/runtime/bootstrap"],"prestart":true}}"#
            ),
        )
        .unwrap();
        let init = dir.path().join("flint-init");
        std::fs::write(&init, b"").unwrap();
        let data = dir.path().join("data");
        let (data, images, init) = (
            data.to_str().unwrap().to_string(),
            images.to_str().unwrap().to_string(),
            init.to_str().unwrap().to_string(),
        );
        let mut args = vec![
            "flintd",
            "--data-dir",
            &data,
            "--images-dir",
            &images,
            "--init-path",
            &init,
            "--sandbox",
            "namespace",
            "--pool-max",
            "0",
            "--start-min-free-mb",
            "0",
            "--keep-alive",
            "60",
        ];
        args.extend_from_slice(flags);
        let config = Config::try_from(RawConfig::try_parse_from(args).unwrap()).unwrap();
        let backend = FakeBackend::new(script);
        let agent = Agent::open_with(config, backend.clone()).unwrap();
        let recorder = Arc::new(Recorder::default());
        agent.observe(recorder.clone());
        Harness {
            agent,
            backend,
            recorder,
            dir,
        }
    }

    /// Creates function `name` (128 MB, 1 s timeout) with code version `version`.
    pub fn create(&self, name: &str, version: &str) {
        self.agent
            .create_function(NewFunction {
                name: name.into(),
                runtime: RUNTIME.into(),
                handler: "main.handler".into(),
                memory_mb: 128,
                timeout_s: 1,
                code_zip: bundle(version),
                ..Default::default()
            })
            .unwrap();
    }

    /// Invokes `function` synchronously with `payload`, asking for the log tail.
    pub async fn invoke(&self, function: &str, payload: &str) -> Result<InvokeOutput, InvokeError> {
        invoke_on(&self.agent, function, payload).await
    }

    /// The same in a task of its own (an invocation the test holds while it looks on).
    pub fn spawn_invoke(
        &self,
        function: &str,
        payload: &str,
    ) -> tokio::task::JoinHandle<Result<InvokeOutput, InvokeError>> {
        let (agent, function, payload) = (
            self.agent.clone(),
            function.to_string(),
            payload.to_string(),
        );
        tokio::spawn(async move { invoke_on(&agent, &function, &payload).await })
    }

    /// Invokes and expects the function to answer (successfully or not).
    pub async fn invoke_ok(&self, function: &str, payload: &str) -> InvokeOutput {
        match self.invoke(function, payload).await {
            Ok(out) => out,
            Err(e) => panic!("invoking {function}: {e}"),
        }
    }

    /// The function's log file, once the log writer has written what it was handed.
    pub fn log_file(&self, function: &str) -> String {
        self.agent.logs().flush();
        let path = self
            .dir
            .path()
            .join("data/logs")
            .join(format!("{function}.log"));
        std::fs::read_to_string(&path).unwrap_or_default()
    }

    /// The invocation records observed so far.
    pub fn records(&self) -> Vec<InvocationRecord> {
        self.recorder.records.lock().unwrap().clone()
    }

    /// The throttles observed so far: (function, limit).
    pub fn throttles(&self) -> Vec<(String, String)> {
        self.recorder.throttles.lock().unwrap().clone()
    }
}

/// A synchronous invocation with the log tail, failing the test after [`INVOKE_MAX`].
async fn invoke_on(
    agent: &Arc<Agent>,
    function: &str,
    payload: &str,
) -> Result<InvokeOutput, InvokeError> {
    let input = InvokeInput {
        function_name: function.into(),
        invocation_type: InvocationType::RequestResponse,
        log_tail: true,
        payload: payload.as_bytes().to_vec(),
        client_context: String::new(),
    };
    tokio::time::timeout(INVOKE_MAX, agent.invoke(input))
        .await
        .unwrap_or_else(|_| panic!("invoking {function} took more than {INVOKE_MAX:?}"))
}

/// Waits (polling every few ms, at most [`STEP`]) until `cond` holds; fails the test
/// with `what` otherwise.
pub(crate) async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < STEP, "waited {STEP:?} for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The JSON document of an invocation's payload.
pub(crate) fn json(out: &InvokeOutput) -> serde_json::Value {
    serde_json::from_slice(&out.payload).unwrap_or_else(|e| {
        panic!(
            "payload is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.payload)
        )
    })
}
