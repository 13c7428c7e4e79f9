//! flint-init: PID 1 of every Flint sandbox. `flint-init sandbox ...` launches a
//! namespace sandbox (run by flintd on the host); with no arguments as PID 1 it is the
//! microVM guest's /sbin/init. Both end in the same loop serving the Lambda Runtime API.

mod args;
mod aws_local;
mod control;
mod env;
mod fd_stream;
mod guest;
mod guest_net;
mod handoff;
mod host_calls;
mod host_link;
mod host_mount;
mod http;
mod launcher;
mod layers;
mod logs;
mod mounts;
mod net;
mod parked;
mod process;
mod reaper;
mod resume;
mod runtime_api;
mod sandbox_fs;
mod sandbox_mask;
mod seccomp;
mod state;
mod unpack;
mod userns;
mod vsock;

use args::Command;

fn main() {
    // Files created by init (unpacked code) get exact modes; keep the umask predictable.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let command = match args::parse(&argv, std::process::id() == 1) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("flint-init: {e}\n{}", args::USAGE);
            std::process::exit(2);
        }
    };
    match command {
        Command::Guest => guest::run(),
        Command::Sandbox(a) => match launcher::run(&a) {
            Ok(code) => std::process::exit(code),
            Err(e) => {
                eprintln!("flint-init: {e}");
                std::process::exit(1);
            }
        },
        Command::Parked(p) => match parked::run(&p) {
            Ok(code) => std::process::exit(code),
            Err(e) => {
                eprintln!("flint-init: sandbox-parked: {e}");
                std::process::exit(1);
            }
        },
        Command::Help => println!("{}", args::USAGE),
    }
}
