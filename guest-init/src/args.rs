//! Command-line parsing: raw arguments to a validated `Command`.

use crate::launcher::{SandboxArgs, SandboxNet};
use std::os::fd::RawFd;
use std::path::PathBuf;

/// Usage text.
pub const USAGE: &str = "usage: flint-init sandbox --rootfs DIR --fd N [--cgroup PATH]... [--hostname NAME] [--uid-base UID] [--netns-fd N --resolv-conf FILE] [--ro-bind HOST:/mnt/...]... [--tmp-fd N]\n       flint-init sandbox-parked --control-fd N [--cgroup PATH]...\n       flint-init            (as PID 1 of a microVM guest)";

/// Hostname inside a sandbox when none is given.
pub const DEFAULT_HOSTNAME: &str = "flint";

/// What to run.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// PID 1 of a microVM.
    Guest,
    /// The namespace sandbox launcher.
    Sandbox(SandboxArgs),
    /// A launcher started ahead of need, waiting in its cgroups (parked.rs).
    Parked(ParkedArgs),
    /// Print usage.
    Help,
}

/// Bad command line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgsError {
    /// No arguments and not PID 1
    #[error("without arguments flint-init must run as PID 1")]
    NotPid1,
    /// Unknown subcommand or flag
    #[error("unknown argument {0:?}")]
    Unknown(String),
    /// A flag without its value
    #[error("{0} needs a value")]
    MissingValue(String),
    /// A required flag is absent
    #[error("{0} is required")]
    Required(&'static str),
    /// The --fd value is not a descriptor number above 2
    #[error("--fd must be a descriptor number above 2, got {0:?}")]
    BadFd(String),
    /// The hostname is empty or longer than 64 bytes
    #[error("--hostname must be 1 to 64 bytes")]
    BadHostname,
    /// The --netns-fd value is not a descriptor number above 2
    #[error("--netns-fd must be a descriptor number above 2, got {0:?}")]
    BadNetnsFd(String),
    /// --netns-fd and --resolv-conf go together
    #[error("--netns-fd and --resolv-conf must be given together")]
    NetPair,
    /// A --ro-bind value that is not HOST:GUEST with absolute paths and GUEST under /mnt
    #[error(
        "--ro-bind must be HOST:GUEST, both absolute, GUEST under /mnt/ without '..', got {0:?}"
    )]
    BadBind(String),
    /// The --tmp-fd value is not a descriptor number above 2
    #[error("--tmp-fd must be a descriptor number above 2, got {0:?}")]
    BadTmpFd(String),
    /// The --uid-base value is not a host uid with 65,536 uids above it
    #[error("--uid-base must be a uid from 1 to 4294901759 (65,536 uids follow it), got {0:?}")]
    BadUidBase(String),
}

/// Parses `argv` (without the program name).
pub fn parse(argv: &[String], is_pid1: bool) -> Result<Command, ArgsError> {
    let Some(first) = argv.first() else {
        return if is_pid1 {
            Ok(Command::Guest)
        } else {
            Err(ArgsError::NotPid1)
        };
    };
    match first.as_str() {
        "sandbox" => parse_sandbox(&argv[1..]).map(Command::Sandbox),
        "sandbox-parked" => parse_parked(&argv[1..]).map(Command::Parked),
        "-h" | "--help" | "help" => Ok(Command::Help),
        // The kernel may pass its unknown command-line words to init.
        _ if is_pid1 => Ok(Command::Guest),
        other => Err(ArgsError::Unknown(other.to_string())),
    }
}

pub(crate) fn parse_sandbox(argv: &[String]) -> Result<SandboxArgs, ArgsError> {
    let mut rootfs = None;
    let mut fd = None;
    let mut cgroups = Vec::new();
    let mut hostname = DEFAULT_HOSTNAME.to_string();
    let mut uid_base = None;
    let mut netns_fd = None;
    let mut resolv_conf = None;
    let mut ro_binds = Vec::new();
    let mut tmp_fd = None;
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| ArgsError::MissingValue(flag.clone()))
        };
        match flag.as_str() {
            "--rootfs" => rootfs = Some(PathBuf::from(value()?)),
            "--fd" => {
                let v = value()?;
                match v.parse::<i32>() {
                    Ok(n) if n > 2 => fd = Some(n),
                    _ => return Err(ArgsError::BadFd(v)),
                }
            }
            "--cgroup" => cgroups.push(PathBuf::from(value()?)),
            "--hostname" => hostname = value()?,
            "--netns-fd" => {
                let v = value()?;
                match v.parse::<i32>() {
                    Ok(n) if n > 2 => netns_fd = Some(n),
                    _ => return Err(ArgsError::BadNetnsFd(v)),
                }
            }
            "--resolv-conf" => resolv_conf = Some(PathBuf::from(value()?)),
            "--ro-bind" => ro_binds.push(parse_bind(&value()?)?),
            "--tmp-fd" => {
                let v = value()?;
                match v.parse::<i32>() {
                    Ok(n) if n > 2 => tmp_fd = Some(n),
                    _ => return Err(ArgsError::BadTmpFd(v)),
                }
            }
            "--uid-base" => {
                let v = value()?;
                match v.parse::<u32>() {
                    Ok(n) if n > 0 && n.checked_add(crate::userns::RANGE).is_some() => {
                        uid_base = Some(n)
                    }
                    _ => return Err(ArgsError::BadUidBase(v)),
                }
            }
            other => return Err(ArgsError::Unknown(other.to_string())),
        }
    }
    if hostname.is_empty() || hostname.len() > 64 {
        return Err(ArgsError::BadHostname);
    }
    let net = match (netns_fd, resolv_conf) {
        (Some(fd), Some(resolv_conf)) => Some(SandboxNet { fd, resolv_conf }),
        (None, None) => None,
        _ => return Err(ArgsError::NetPair),
    };
    Ok(SandboxArgs {
        rootfs: rootfs.ok_or(ArgsError::Required("--rootfs"))?,
        fd: fd.ok_or(ArgsError::Required("--fd"))?,
        cgroups,
        hostname,
        uid_base,
        net,
        ro_binds,
        tmp_fd,
    })
}

/// Validated `sandbox-parked` arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedArgs {
    /// The control socket (inherited from flintd).
    pub control_fd: RawFd,
    /// `cgroup.procs` files to join while parked.
    pub cgroups: Vec<PathBuf>,
}

/// Parses the flags after `sandbox-parked`.
pub(crate) fn parse_parked(argv: &[String]) -> Result<ParkedArgs, ArgsError> {
    let mut control_fd = None;
    let mut cgroups = Vec::new();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| ArgsError::MissingValue(flag.clone()))
        };
        match flag.as_str() {
            "--control-fd" => {
                let v = value()?;
                match v.parse::<i32>() {
                    Ok(n) if n > 2 => control_fd = Some(n),
                    _ => return Err(ArgsError::BadFd(v)),
                }
            }
            "--cgroup" => cgroups.push(PathBuf::from(value()?)),
            other => return Err(ArgsError::Unknown(other.to_string())),
        }
    }
    Ok(ParkedArgs {
        control_fd: control_fd.ok_or(ArgsError::Required("--control-fd"))?,
        cgroups,
    })
}

/// `HOST:GUEST` (split at the last colon, so HOST may hold colons).
fn parse_bind(v: &str) -> Result<(PathBuf, PathBuf), ArgsError> {
    let bad = || ArgsError::BadBind(v.to_string());
    let (host, guest) = v.rsplit_once(':').ok_or_else(bad)?;
    let (host, guest) = (PathBuf::from(host), PathBuf::from(guest));
    let plain = guest
        .components()
        .all(|c| !matches!(c, std::path::Component::ParentDir));
    if !host.is_absolute() || !guest.starts_with("/mnt/") || guest == *"/mnt/" || !plain {
        return Err(bad());
    }
    Ok((host, guest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn sandbox_flags_are_parsed() {
        let c = parse(
            &v(&[
                "sandbox",
                "--rootfs",
                "/r",
                "--fd",
                "5",
                "--cgroup",
                "/a",
                "--cgroup",
                "/b",
                "--hostname",
                "h",
                "--uid-base",
                "1073741824",
            ]),
            false,
        )
        .unwrap();
        assert_eq!(
            c,
            Command::Sandbox(SandboxArgs {
                rootfs: "/r".into(),
                fd: 5,
                cgroups: vec!["/a".into(), "/b".into()],
                hostname: "h".into(),
                uid_base: Some(1 << 30),
                net: None,
                ro_binds: vec![],
                tmp_fd: None,
            })
        );
        let c = parse(
            &v(&[
                "sandbox",
                "--rootfs",
                "/r",
                "--fd",
                "5",
                "--netns-fd",
                "6",
                "--resolv-conf",
                "/x",
            ]),
            false,
        )
        .unwrap();
        let Command::Sandbox(a) = c else {
            panic!("{c:?}")
        };
        assert_eq!(
            a.net,
            Some(SandboxNet {
                fd: 6,
                resolv_conf: "/x".into()
            })
        );
        assert_eq!(
            parse(
                &v(&["sandbox", "--rootfs", "/r", "--fd", "5", "--netns-fd", "6"]),
                false
            ),
            Err(ArgsError::NetPair)
        );
        assert_eq!(
            parse(
                &v(&["sandbox", "--rootfs", "/r", "--fd", "5", "--netns-fd", "2"]),
                false
            ),
            Err(ArgsError::BadNetnsFd("2".into()))
        );
    }

    #[test]
    fn read_only_binds_are_parsed_and_checked() {
        let c = parse(
            &v(&[
                "sandbox",
                "--rootfs",
                "/r",
                "--fd",
                "5",
                "--ro-bind",
                "/srv/a:b:/mnt/flint/up",
            ]),
            false,
        )
        .unwrap();
        let Command::Sandbox(a) = c else {
            panic!("{c:?}")
        };
        assert_eq!(
            a.ro_binds,
            [("/srv/a:b".into(), "/mnt/flint/up".into())] as [(PathBuf, PathBuf); 1]
        );
        for bad in [
            "/srv",
            "rel:/mnt/x",
            "/srv:/etc",
            "/srv:/mnt/../etc",
            "/srv:/mnt/",
        ] {
            assert_eq!(
                parse(
                    &v(&["sandbox", "--rootfs", "/r", "--fd", "3", "--ro-bind", bad]),
                    false
                ),
                Err(ArgsError::BadBind(bad.into()))
            );
        }
    }

    #[test]
    fn bad_command_lines_are_rejected() {
        assert_eq!(parse(&[], false), Err(ArgsError::NotPid1));
        assert_eq!(parse(&[], true), Ok(Command::Guest));
        assert_eq!(parse(&v(&["x"]), true), Ok(Command::Guest));
        assert!(matches!(
            parse(&v(&["x"]), false),
            Err(ArgsError::Unknown(_))
        ));
        assert_eq!(
            parse(&v(&["sandbox", "--fd", "5"]), false),
            Err(ArgsError::Required("--rootfs"))
        );
        assert_eq!(
            parse(&v(&["sandbox", "--rootfs", "/r", "--fd", "1"]), false),
            Err(ArgsError::BadFd("1".into()))
        );
        assert_eq!(
            parse(&v(&["sandbox", "--rootfs"]), false),
            Err(ArgsError::MissingValue("--rootfs".into()))
        );
        assert_eq!(
            parse(
                &v(&["sandbox", "--rootfs", "/r", "--fd", "3", "--hostname", ""]),
                false
            ),
            Err(ArgsError::BadHostname)
        );
        for bad in ["0", "4294967295", "-1", "x"] {
            assert_eq!(
                parse(
                    &v(&["sandbox", "--rootfs", "/r", "--fd", "3", "--uid-base", bad]),
                    false
                ),
                Err(ArgsError::BadUidBase(bad.into()))
            );
        }
    }

    #[test]
    fn parked_flags_are_parsed() {
        assert_eq!(
            parse_parked(&v(&[
                "--control-fd",
                "4",
                "--cgroup",
                "/a",
                "--cgroup",
                "/b"
            ]))
            .unwrap(),
            ParkedArgs {
                control_fd: 4,
                cgroups: vec!["/a".into(), "/b".into()]
            }
        );
        assert_eq!(
            parse_parked(&v(&["--cgroup", "/a"])),
            Err(ArgsError::Required("--control-fd"))
        );
        assert_eq!(
            parse_parked(&v(&["--control-fd", "1"])),
            Err(ArgsError::BadFd("1".into()))
        );
    }
}
