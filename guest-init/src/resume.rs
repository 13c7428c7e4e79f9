//! A restored microVM's first step: the host's Resume message. Every VM restored from
//! one snapshot wakes with the same memory, so the same kernel random state (the CRNG's
//! key and the input pool) and a wall clock stopped when the snapshot was taken. Before
//! flint-init reads anything else it mixes the host's fresh seed into the kernel's pool
//! (RNDADDENTROPY on /dev/urandom), forces the CRNG to rekey from it (RNDRESEEDCRNG), so
//! the next getrandom(2) of any process differs between siblings, and sets
//! CLOCK_REALTIME to the host's time.

use flint_proto::init::Resume;
use std::os::fd::AsRawFd;

/// Fewest seed bytes accepted: the CRNG's key is 32 bytes.
pub const MIN_SEED: usize = 32;
/// Most seed bytes accepted (the kernel's own limit on one RNDADDENTROPY is far above).
pub const MAX_SEED: usize = 512;

/// `RNDADDENTROPY` = `_IOW('R', 0x03, int[2])` (linux/random.h).
const RNDADDENTROPY: libc::c_ulong = 0x4008_5203;
/// `RNDRESEEDCRNG` = `_IO('R', 0x07)` (linux/random.h).
const RNDRESEEDCRNG: libc::c_ulong = 0x5207;

/// Errors refreshing a restored guest.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// The seed has the wrong length
    #[error("Resume carried a {0}-byte seed; the host must send {MIN_SEED} to {MAX_SEED} bytes")]
    SeedLength(usize),
    /// The host sent no time
    #[error("Resume carried no host time (unix_time_ns 0)")]
    NoTime,
    /// Opening /dev/urandom failed
    #[error("opening /dev/urandom: {0}")]
    Open(std::io::Error),
    /// RNDADDENTROPY failed
    #[error("adding the host's seed (RNDADDENTROPY): {0}")]
    AddEntropy(nix::Error),
    /// RNDRESEEDCRNG failed
    #[error("reseeding the CRNG (RNDRESEEDCRNG): {0}")]
    Reseed(nix::Error),
    /// clock_settime failed
    #[error("setting CLOCK_REALTIME: {0}")]
    SetClock(nix::Error),
}

/// What a Resume changes in the kernel; [`Live`] does it, tests record it.
pub trait GuestKernel {
    /// Mixes `info` (a `struct rand_pool_info`, see [`pool_info`]) into the input pool.
    fn add_entropy(&mut self, info: &[u32]) -> Result<(), ResumeError>;
    /// Rekeys the CRNG from the input pool.
    fn reseed(&mut self) -> Result<(), ResumeError>;
    /// Sets CLOCK_REALTIME.
    fn set_clock(&mut self, secs: i64, nanos: i64) -> Result<(), ResumeError>;
}

/// Checks `r` and applies it: seed, reseed, clock, in that order (a failure stops it).
pub fn apply(r: &Resume, kernel: &mut dyn GuestKernel) -> Result<(), ResumeError> {
    if !(MIN_SEED..=MAX_SEED).contains(&r.seed.len()) {
        return Err(ResumeError::SeedLength(r.seed.len()));
    }
    if r.unix_time_ns == 0 {
        return Err(ResumeError::NoTime);
    }
    // The host's bytes come from its own CSPRNG: credit them in full.
    kernel.add_entropy(&pool_info(&r.seed, r.seed.len() as u32 * 8))?;
    kernel.reseed()?;
    let (secs, nanos) = split_ns(r.unix_time_ns);
    kernel.set_clock(secs, nanos)
}

/// `struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }` holding
/// `seed`, crediting `bits` of entropy; built of u32 words so it is aligned for the
/// kernel's int fields.
pub fn pool_info(seed: &[u8], bits: u32) -> Vec<u32> {
    let mut words = vec![bits, seed.len() as u32];
    words.extend(seed.chunks(4).map(|c| {
        let mut w = [0u8; 4];
        w[..c.len()].copy_from_slice(c);
        u32::from_ne_bytes(w)
    }));
    words
}

/// Nanoseconds since the epoch as (seconds, nanoseconds).
pub fn split_ns(ns: u64) -> (i64, i64) {
    ((ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as i64)
}

/// The running kernel.
pub struct Live;

impl Live {
    fn urandom() -> Result<std::fs::File, ResumeError> {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/urandom")
            .map_err(ResumeError::Open)
    }
}

impl GuestKernel for Live {
    fn add_entropy(&mut self, info: &[u32]) -> Result<(), ResumeError> {
        let f = Self::urandom()?;
        // SAFETY: `info` is a live, u32-aligned rand_pool_info whose buf_size (word 1)
        // never exceeds the words that follow it (pool_info builds it so); the kernel
        // only reads it during the call.
        let rc = unsafe { libc::ioctl(f.as_raw_fd(), RNDADDENTROPY, info.as_ptr()) };
        if rc < 0 {
            return Err(ResumeError::AddEntropy(nix::Error::last()));
        }
        Ok(())
    }

    fn reseed(&mut self) -> Result<(), ResumeError> {
        let f = Self::urandom()?;
        // SAFETY: RNDRESEEDCRNG takes no argument.
        let rc = unsafe { libc::ioctl(f.as_raw_fd(), RNDRESEEDCRNG) };
        if rc < 0 {
            return Err(ResumeError::Reseed(nix::Error::last()));
        }
        Ok(())
    }

    fn set_clock(&mut self, secs: i64, nanos: i64) -> Result<(), ResumeError> {
        let ts = libc::timespec {
            tv_sec: secs,
            tv_nsec: nanos,
        };
        // SAFETY: `ts` is a live timespec the kernel only reads during the call.
        let rc = unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &ts) };
        if rc < 0 {
            return Err(ResumeError::SetClock(nix::Error::last()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what [`apply`] asked of the kernel.
    #[derive(Default)]
    struct Recorder {
        calls: Vec<String>,
        info: Vec<u32>,
        clock: Option<(i64, i64)>,
    }

    impl GuestKernel for Recorder {
        fn add_entropy(&mut self, info: &[u32]) -> Result<(), ResumeError> {
            self.calls.push("add".into());
            self.info = info.to_vec();
            Ok(())
        }
        fn reseed(&mut self) -> Result<(), ResumeError> {
            self.calls.push("reseed".into());
            Ok(())
        }
        fn set_clock(&mut self, secs: i64, nanos: i64) -> Result<(), ResumeError> {
            self.calls.push("clock".into());
            self.clock = Some((secs, nanos));
            Ok(())
        }
    }

    fn resume(seed_len: usize, ns: u64) -> Resume {
        Resume {
            seed: (0..seed_len).map(|i| i as u8).collect(),
            unix_time_ns: ns,
        }
    }

    #[test]
    fn seeds_then_reseeds_then_sets_the_clock() {
        let mut k = Recorder::default();
        apply(&resume(33, 1_765_000_000_123_456_789), &mut k).unwrap();
        assert_eq!(k.calls, ["add", "reseed", "clock"]);
        assert_eq!(k.clock, Some((1_765_000_000, 123_456_789)));
        // entropy_count in bits, buf_size in bytes, then the seed (33 bytes: 9 words).
        assert_eq!(k.info[0], 33 * 8);
        assert_eq!(k.info[1], 33);
        assert_eq!(k.info.len(), 2 + 9);
        let bytes: Vec<u8> = k.info[2..].iter().flat_map(|w| w.to_ne_bytes()).collect();
        assert_eq!(&bytes[..33], &resume(33, 1).seed[..]);
        assert_eq!(&bytes[33..], &[0, 0, 0]);
    }

    #[test]
    fn bad_resume_changes_nothing() {
        for (r, want) in [
            (resume(31, 1), "31-byte seed"),
            (resume(513, 1), "513-byte seed"),
            (resume(0, 1), "0-byte seed"),
            (resume(32, 0), "no host time"),
        ] {
            let mut k = Recorder::default();
            let e = apply(&r, &mut k).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
            assert!(k.calls.is_empty(), "{:?}", k.calls);
        }
    }

    /// The real ioctls on this machine's kernel accept what [`pool_info`] builds (with
    /// no entropy credited, so the host's accounting is untouched). Needs root, as
    /// flint-init in the guest has.
    #[test]
    fn the_kernel_accepts_the_seed_and_the_reseed() {
        if !nix::unistd::geteuid().is_root() {
            panic!("this test needs root (RNDADDENTROPY needs CAP_SYS_ADMIN)");
        }
        let seed = [0x5au8; 64];
        Live.add_entropy(&pool_info(&seed, 0)).unwrap();
        Live.reseed().unwrap();
    }

    #[test]
    fn split_keeps_every_nanosecond() {
        assert_eq!(split_ns(0), (0, 0));
        assert_eq!(split_ns(1_999_999_999), (1, 999_999_999));
    }
}
