//! A sandbox backend without sandboxes: each sandbox is a tokio Unix socket pair whose
//! guest end is served by a scripted flint-init ([`super::guest`]) on the test's own
//! runtime. It records every create and destroy, and can be told to fail creation,
//! to take its time, or to report the kernel's OOM killer.

use super::guest::{self, GuestCtx, Journal, Script, Scripts};
use crate::sandbox::{BoxFuture, Sandbox, SandboxBackend, SandboxError, SandboxSpec};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UnixStream;
use tokio::task::JoinHandle;

#[derive(Default)]
struct Records {
    /// Specs of the sandboxes made, in order.
    created: Vec<SandboxSpec>,
    /// Ids of the sandboxes destroyed, in order.
    destroyed: Vec<String>,
    /// The OOM flags of every sandbox made.
    oom_flags: Vec<Arc<AtomicBool>>,
    /// CPU-quota, freeze and thaw calls, as (sandbox id, call), in order.
    lifecycle: Vec<(String, &'static str)>,
}

struct Settings {
    fail: Option<String>,
    delay: Duration,
    oom: bool,
    memory_peak: Option<u64>,
}

/// The fake backend.
pub(crate) struct FakeBackend {
    settings: Mutex<Settings>,
    scripts: Arc<Mutex<Scripts>>,
    records: Arc<Mutex<Records>>,
    journal: Journal,
}

impl FakeBackend {
    /// A backend whose sandboxes run `script`.
    pub fn new(script: Script) -> Arc<Self> {
        Arc::new(Self {
            scripts: Arc::new(Mutex::new(Scripts {
                default: script,
                by_function: Default::default(),
            })),
            settings: Mutex::new(Settings {
                fail: None,
                delay: Duration::ZERO,
                oom: false,
                memory_peak: None,
            }),
            records: Arc::default(),
            journal: Arc::default(),
        })
    }

    fn settings(&self) -> std::sync::MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn records(&self) -> std::sync::MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn scripts(&self) -> std::sync::MutexGuard<'_, Scripts> {
        self.scripts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sandboxes made from now on run `script` (unless their function has its own).
    pub fn set_script(&self, script: Script) {
        self.scripts().default = script;
    }

    /// Sandboxes configured for `function` from now on run `script`.
    pub fn script_for(&self, function: &str, script: Script) {
        self.scripts()
            .by_function
            .insert(function.to_string(), script);
    }

    /// Creation fails with `message` (None: succeeds again).
    pub fn fail_creates(&self, message: Option<&str>) {
        self.settings().fail = message.map(str::to_string);
    }

    /// Creation takes `delay` before the sandbox exists.
    pub fn set_delay(&self, delay: Duration) {
        self.settings().delay = delay;
    }

    /// Every sandbox, made before or after, reports (or stops reporting) that the
    /// OOM killer struck in it.
    pub fn set_oom_killed(&self, oom: bool) {
        self.settings().oom = oom;
        for f in &self.records().oom_flags {
            f.store(oom, Ordering::SeqCst);
        }
    }

    /// Sandboxes report this peak memory use, in bytes.
    pub fn set_memory_peak(&self, bytes: Option<u64>) {
        self.settings().memory_peak = bytes;
    }

    /// Specs of the sandboxes made so far.
    pub fn created(&self) -> Vec<SandboxSpec> {
        self.records().created.clone()
    }

    /// Ids of the sandboxes made so far.
    pub fn created_ids(&self) -> Vec<String> {
        self.records()
            .created
            .iter()
            .map(|s| s.id.clone())
            .collect()
    }

    /// Ids of the sandboxes destroyed so far.
    pub fn destroyed(&self) -> Vec<String> {
        self.records().destroyed.clone()
    }

    /// The CPU-quota, freeze and thaw calls `sandbox` received, in order.
    pub fn lifecycle(&self, sandbox: &str) -> Vec<&'static str> {
        self.records()
            .lifecycle
            .iter()
            .filter(|(id, _)| id == sandbox)
            .map(|(_, call)| *call)
            .collect()
    }

    /// The host messages `sandbox` received, in order.
    pub fn messages(&self, sandbox: &str) -> Vec<&'static str> {
        self.journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(id, _)| id == sandbox)
            .map(|(_, m)| *m)
            .collect()
    }
}

impl SandboxBackend for FakeBackend {
    fn kind(&self) -> &'static str {
        "fake"
    }

    fn create<'a>(
        &'a self,
        spec: &'a SandboxSpec,
    ) -> BoxFuture<'a, Result<Box<dyn Sandbox>, SandboxError>> {
        Box::pin(async move {
            let (fail, delay, oom, memory_peak) = {
                let s = self.settings();
                (s.fail.clone(), s.delay, s.oom, s.memory_peak)
            };
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if let Some(message) = fail {
                return Err(SandboxError::Spawn {
                    path: PathBuf::from("fake-flint-init"),
                    source: std::io::Error::other(message),
                });
            }
            let (host, guest_end) = UnixStream::pair()?;
            let oom = Arc::new(AtomicBool::new(oom));
            {
                let mut r = self.records();
                r.created.push(spec.clone());
                r.oom_flags.push(oom.clone());
            }
            let ctx = GuestCtx {
                sandbox_id: spec.id.clone(),
                journal: self.journal.clone(),
                scripts: self.scripts.clone(),
            };
            let guest = tokio::spawn(guest::run(guest_end, ctx));
            Ok(Box::new(FakeSandbox {
                id: spec.id.clone(),
                stream: Some(host),
                oom,
                memory_peak,
                guest: Some(guest),
                records: self.records.clone(),
            }) as Box<dyn Sandbox>)
        })
    }
}

/// One fake sandbox: the host end of the pair and the guest task.
struct FakeSandbox {
    id: String,
    stream: Option<UnixStream>,
    oom: Arc<AtomicBool>,
    memory_peak: Option<u64>,
    /// The guest task; None once destroyed.
    guest: Option<JoinHandle<()>>,
    records: Arc<Mutex<Records>>,
}

impl Sandbox for FakeSandbox {
    fn id(&self) -> &str {
        &self.id
    }

    fn take_stream(&mut self) -> Option<UnixStream> {
        self.stream.take()
    }

    fn oom_killed(&self) -> bool {
        self.oom.load(Ordering::SeqCst)
    }

    fn memory_peak(&self) -> Option<u64> {
        self.memory_peak
    }

    fn limit_cpu(&self) -> Result<(), SandboxError> {
        self.note("limit_cpu");
        Ok(())
    }

    fn freeze(&self) -> Result<(), SandboxError> {
        self.note("freeze");
        Ok(())
    }

    fn thaw(&self) -> Result<(), SandboxError> {
        self.note("thaw");
        Ok(())
    }

    fn destroy(&mut self) -> BoxFuture<'_, Result<(), SandboxError>> {
        Box::pin(async move {
            // Like killing everything in a real sandbox: the guest stops mid-step.
            if let Some(guest) = self.guest.take() {
                guest.abort();
                self.records
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .destroyed
                    .push(self.id.clone());
            }
            Ok(())
        })
    }
}

impl FakeSandbox {
    fn note(&self, call: &'static str) {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .lifecycle
            .push((self.id.clone(), call));
    }
}

impl Drop for FakeSandbox {
    fn drop(&mut self) {
        if let Some(guest) = self.guest.take() {
            guest.abort();
        }
    }
}
