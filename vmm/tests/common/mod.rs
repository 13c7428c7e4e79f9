//! Test support: writes tiny ELF64 guests (with or without a PVH entry note) and runs the
//! real `flint-vmm` binary on them with a deadline.

#![allow(dead_code)]

pub mod snapshot_guests;
pub mod stall;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Where tiny guests are linked and entered.
pub const LOAD_ADDR: u64 = 0x10_0000;

const EHDR_LEN: usize = 64;
const PHDR_LEN: usize = 56;
const CODE_OFFSET: usize = 0x1000;
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

fn push_u16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn push_u32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn push_u64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}

fn phdr(v: &mut Vec<u8>, kind: u32, flags: u32, offset: u64, addr: u64, size: u64, align: u64) {
    push_u32(v, kind);
    push_u32(v, flags);
    push_u64(v, offset);
    push_u64(v, addr);
    push_u64(v, addr);
    push_u64(v, size);
    push_u64(v, size);
    push_u64(v, align);
}

/// An x86_64 ELF executable holding `code` at [`LOAD_ADDR`], entered there; with `pvh`,
/// a Xen PHYS32_ENTRY note makes the VMM use the PVH (32-bit) entry.
pub fn elf_image(code: &[u8], pvh: bool) -> Vec<u8> {
    let phnum: u16 = if pvh { 2 } else { 1 };
    let mut note = Vec::new();
    if pvh {
        push_u32(&mut note, 4);
        push_u32(&mut note, 4);
        push_u32(&mut note, XEN_ELFNOTE_PHYS32_ENTRY);
        note.extend_from_slice(b"Xen\0");
        push_u32(&mut note, LOAD_ADDR as u32);
    }
    let note_offset = EHDR_LEN + PHDR_LEN * usize::from(phnum);

    let mut v = Vec::new();
    v.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    v.extend_from_slice(&[0u8; 8]);
    push_u16(&mut v, 2); // ET_EXEC
    push_u16(&mut v, 0x3e); // EM_X86_64
    push_u32(&mut v, 1);
    push_u64(&mut v, LOAD_ADDR);
    push_u64(&mut v, EHDR_LEN as u64);
    push_u64(&mut v, 0);
    push_u32(&mut v, 0);
    push_u16(&mut v, EHDR_LEN as u16);
    push_u16(&mut v, PHDR_LEN as u16);
    push_u16(&mut v, phnum);
    push_u16(&mut v, 0);
    push_u16(&mut v, 0);
    push_u16(&mut v, 0);
    phdr(
        &mut v,
        1,
        5,
        CODE_OFFSET as u64,
        LOAD_ADDR,
        code.len() as u64,
        0x1000,
    );
    if pvh {
        phdr(&mut v, 4, 4, note_offset as u64, 0, note.len() as u64, 4);
    }
    v.extend_from_slice(&note);
    v.resize(CODE_OFFSET, 0);
    v.extend_from_slice(code);
    v
}

/// What a flint-vmm run left behind.
#[derive(Debug)]
pub struct Run {
    /// Exit status (None if killed by a signal).
    pub status: Option<i32>,
    /// Everything on stdout.
    pub stdout: String,
    /// Everything on stderr.
    pub stderr: String,
    /// The serial log, when `--serial-log` pointed into the run's directory.
    pub serial: String,
    /// The parsed JSON summary (last stdout line), if any.
    pub summary: Option<serde_json::Value>,
}

/// The flint-vmm binary Cargo built for these tests.
pub fn vmm_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_flint-vmm"))
}

/// Starts flint-vmm with `args`, stdout and stderr piped.
pub fn spawn_vmm(args: &[&str]) -> Child {
    Command::new(vmm_bin())
        .args(args)
        .env("FLINT_VMM_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("flint-vmm starts")
}

/// Runs flint-vmm with `args`, killing it after `deadline`; the serial log is read from
/// `serial_log` if given.
pub fn run_vmm(args: &[&str], serial_log: Option<&Path>, deadline: Duration) -> Run {
    let mut child = spawn_vmm(args);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let status = child.wait().expect("wait after kill");
            let serial = serial_log
                .and_then(|p| std::fs::read_to_string(p).ok())
                .unwrap_or_default();
            panic!(
                "flint-vmm did not finish within {deadline:?} (status after kill: {status}); \
                 serial log:\n{serial}"
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    collect(child, status, serial_log)
}

/// Runs flint-vmm with `args` under stall detection ([`stall::watch`]): a run whose
/// `serial_log` stops growing for `stall`, or that is still going at `until`, is killed
/// and reported as [`stall::Try::Stalled`] with its serial log.
pub fn run_vmm_watched(
    args: &[&str],
    serial_log: &Path,
    stall: Duration,
    until: Instant,
) -> stall::Try<Run> {
    let mut child = spawn_vmm(args);
    let watched = stall::watch(&mut child, serial_log, None, stall, until);
    if let Some(why) = stall::stall_reason(&watched, stall) {
        let serial = std::fs::read_to_string(serial_log).unwrap_or_default();
        return stall::Try::Stalled { why, serial };
    }
    let stall::Watched::Exited(status) = watched else {
        unreachable!("no marker was asked for")
    };
    stall::Try::Done(collect(child, status, Some(serial_log)))
}

/// Reads what an exited flint-vmm left: its output, serial log and JSON summary.
pub fn collect(mut child: Child, status: ExitStatus, serial_log: Option<&Path>) -> Run {
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    let serial = serial_log
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    let summary = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .and_then(|l| serde_json::from_str(l).ok());
    Run {
        status: status.code(),
        stdout,
        stderr,
        serial,
        summary,
    }
}

/// A minimal bzImage: a setup header (boot protocol 2.00, loaded high at 1 MiB, four setup
/// sectors) followed by a protected-mode kernel whose 64-bit entry (offset 0x200) is
/// `entry64`; the bytes before it are `hlt`.
pub fn bzimage(entry64: &[u8]) -> Vec<u8> {
    const SETUP_SECTS: u8 = 4;
    let setup_len = (usize::from(SETUP_SECTS) + 1) * 512;
    let mut v = vec![0u8; setup_len];
    v[0x1f1] = SETUP_SECTS;
    v[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
    v[0x202..0x206].copy_from_slice(b"HdrS");
    v[0x206..0x208].copy_from_slice(&0x0200u16.to_le_bytes());
    v[0x211] = 0x01; // LOADED_HIGH
    v[0x214..0x218].copy_from_slice(&(LOAD_ADDR as u32).to_le_bytes());
    v.extend_from_slice(&[0xf4u8; 0x200]);
    v.extend_from_slice(entry64);
    v
}
