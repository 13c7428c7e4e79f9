//! Stall detection for tests that boot the real guest kernel: a run is watched through its
//! serial log, killed when the log stops growing for a bounded time, and retried a bounded
//! number of times. Under this host's emulation the kernel's boot is slow and sometimes
//! stops for good (seen: 900 s without output after "NET: Registered PF_NETLINK/PF_ROUTE
//! protocol family" on a loaded machine); such a try is cut after [`Patience::stall`]
//! instead of the whole deadline. A try that keeps printing is never cut by the stall
//! check, only by the overall budget.

use std::path::Path;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// How long a watched run may go on.
#[derive(Clone, Copy, Debug)]
pub struct Patience {
    /// A try whose serial log has not grown for this long is stalled.
    pub stall: Duration,
    /// Tries before giving up (a stalled try is killed and the next one started).
    pub tries: u32,
    /// All tries together end within this time.
    pub budget: Duration,
}

impl Patience {
    /// For the real guest kernel: 120 s without serial output is a stall (a quiet
    /// machine prints something at least every few seconds), three tries, 25 minutes in
    /// all. Overridable for a slower machine with `FLINT_BOOT_STALL_SECS`,
    /// `FLINT_BOOT_TRIES` and `FLINT_BOOT_BUDGET_SECS`.
    pub fn kernel_boot() -> Patience {
        let secs = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(default)
        };
        Patience {
            stall: Duration::from_secs(secs("FLINT_BOOT_STALL_SECS", 120)),
            tries: u32::try_from(secs("FLINT_BOOT_TRIES", 3))
                .unwrap_or(3)
                .max(1),
            budget: Duration::from_secs(secs("FLINT_BOOT_BUDGET_SECS", 1500)),
        }
    }
}

/// How one watched wait ended.
#[derive(Debug)]
pub enum Watched {
    /// The process exited by itself.
    Exited(ExitStatus),
    /// The serial log contains the awaited marker (the process still runs).
    Marker,
    /// No new serial output for `idle`; the process was killed.
    Stalled { idle: Duration },
    /// The try's time ran out while the log was still growing; the process was killed.
    OutOfTime,
}

/// Waits for `child` (whose serial log is `serial`) to exit or, with `marker`, to print
/// it; kills it on a stall or at `until`.
pub fn watch(
    child: &mut Child,
    serial: &Path,
    marker: Option<&str>,
    stall: Duration,
    until: Instant,
) -> Watched {
    let mut len = 0u64;
    let mut grew = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return Watched::Exited(status);
        }
        let now_len = std::fs::metadata(serial).map(|m| m.len()).unwrap_or(0);
        if now_len != len {
            len = now_len;
            grew = Instant::now();
            if let Some(marker) = marker {
                let log = std::fs::read_to_string(serial).unwrap_or_default();
                if log.contains(marker) {
                    return Watched::Marker;
                }
            }
        }
        let idle = grew.elapsed();
        let end = if idle >= stall {
            Some(Watched::Stalled { idle })
        } else if Instant::now() >= until {
            Some(Watched::OutOfTime)
        } else {
            None
        };
        if let Some(end) = end {
            let _ = child.kill();
            let _ = child.wait();
            return end;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last `lines` lines of a serial log, for a failure message.
pub fn tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// What one try of a retried run reports.
pub enum Try<T> {
    /// The try ran to its end (pass or fail is the caller's to assert).
    Done(T),
    /// The try stalled or ran out of time: `why` and the serial log it left.
    Stalled { why: String, serial: String },
}

/// Runs `attempt` (given the try number from 1 and the instant its try must end by) until
/// one try is [`Try::Done`], at most `patience.tries` times within `patience.budget`;
/// panics with every try's reason and the last try's serial log tail when all stall.
pub fn with_retries<T>(
    what: &str,
    patience: Patience,
    mut attempt: impl FnMut(u32, Instant) -> Try<T>,
) -> T {
    let started = Instant::now();
    let end = started + patience.budget;
    let mut reasons = Vec::new();
    let mut last_serial = String::new();
    for n in 1..=patience.tries {
        if Instant::now() >= end {
            break;
        }
        match attempt(n, end) {
            Try::Done(v) => {
                if n > 1 {
                    eprintln!("{what}: try {n} finished after {} stalled", n - 1);
                }
                return v;
            }
            Try::Stalled { why, serial } => {
                eprintln!(
                    "{what}: try {n} of {} stalled ({why}) after {:?} in all; last serial lines:\n{}",
                    patience.tries,
                    started.elapsed(),
                    tail(&serial, 5)
                );
                reasons.push(format!("try {n}: {why}"));
                last_serial = serial;
            }
        }
    }
    panic!(
        "{what}: every try stalled ({}; stall limit {:?}, budget {:?}, {:?} spent). \
         The emulated kernel boot made no progress; last 40 serial lines:\n{}",
        reasons.join("; "),
        patience.stall,
        patience.budget,
        started.elapsed(),
        tail(&last_serial, 40)
    );
}

/// The reason text of a stalled or timed-out [`Watched`] end, or `None` for the others.
pub fn stall_reason(w: &Watched, stall: Duration) -> Option<String> {
    match w {
        Watched::Stalled { idle } => Some(format!(
            "no new serial output for {idle:?} (limit {stall:?})"
        )),
        Watched::OutOfTime => Some("the time budget ran out while the guest still printed".into()),
        _ => None,
    }
}
