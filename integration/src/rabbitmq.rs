//! A real RabbitMQ broker for the tests (Debian's `rabbitmq-server`, installed by
//! images/host-deps.sh): started as a child process in its own process group, with
//! its own temporary directories, Erlang cookie, unique node name and free ports, a
//! user and virtual host of its own; stopped (the whole group) when dropped, even
//! when the test failed. The shared epmd daemon, if the broker started it, is left
//! running: other brokers on this host may use it.

use lapin::{Connection, ConnectionProperties};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Where Debian installs the broker's own scripts (the /usr/sbin wrappers switch to
/// the rabbitmq user, which cannot write the test's directories).
const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
const CTL: &str = "/usr/lib/rabbitmq/bin/rabbitmqctl";
/// How long the broker may take to accept AMQP connections (cold Erlang VM start on
/// a busy 2-core host).
const START_WITHIN: Duration = Duration::from_secs(90);

/// A running broker.
pub struct Broker {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub port: u16,
    pub node: String,
    pub user: String,
    pub password: String,
    pub vhost: String,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

impl Broker {
    /// Starts a broker and waits until it accepts an AMQP connection as its user;
    /// panics with the broker's log when it does not.
    pub async fn start() -> Broker {
        assert!(
            Path::new(SERVER).exists(),
            "{SERVER} missing: install rabbitmq-server (images/host-deps.sh)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let node = format!("flint-test-{}-{n}@localhost", std::process::id());
        let (port, dist_port) = (free_port(), free_port());
        let password = format!("pw-{}", uuid_like());
        let (user, vhost) = ("flint".to_string(), "flint-test".to_string());
        let home = dir.path().join("home");
        for d in ["home", "mnesia", "log"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("broker dir");
        }
        let cookie = home.join(".erlang.cookie");
        std::fs::write(&cookie, format!("FLINTTEST{}", uuid_like())).expect("cookie");
        std::fs::set_permissions(&cookie, std::fs::Permissions::from_mode(0o400))
            .expect("cookie mode");
        std::fs::write(dir.path().join("enabled_plugins"), "[].\n").expect("plugins file");
        std::fs::write(
            dir.path().join("rabbitmq.conf"),
            format!(
                "listeners.tcp.default = 127.0.0.1:{port}\n\
                 default_user = {user}\ndefault_pass = {password}\n\
                 default_vhost = {vhost}\nloopback_users = none\n"
            ),
        )
        .expect("rabbitmq.conf");
        let p = |s: &str| dir.path().join(s);
        let child = Command::new(SERVER)
            .env("HOME", &home)
            .env("RABBITMQ_NODENAME", &node)
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", p("mnesia"))
            .env("RABBITMQ_LOG_BASE", p("log"))
            .env("RABBITMQ_CONFIG_FILE", p("rabbitmq"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", p("enabled_plugins"))
            .env("RABBITMQ_PID_FILE", p("broker.pid"))
            // No busy-waiting schedulers: the host has 2 cores for everything.
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "+sbwt none +sbwtdcpu none +sbwtdio none",
            )
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(p("console.log")).expect("console log"))
            .stderr(std::fs::File::create(p("console.err")).expect("console err"))
            .process_group(0)
            .spawn()
            .expect("spawn rabbitmq-server");
        let mut b = Broker {
            child: Some(child),
            dir,
            port,
            node,
            user,
            password,
            vhost,
        };
        let t0 = Instant::now();
        loop {
            if let Some(st) = b.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("rabbitmq-server exited during start-up: {st}\n{}", b.log());
            }
            if let Ok(Ok(c)) = tokio::time::timeout(Duration::from_secs(2), b.try_connect()).await {
                let _ = c.close(200, "ready".into()).await;
                eprintln!("rabbitmq {} up in {:?}", b.node, t0.elapsed());
                return b;
            }
            if t0.elapsed() > START_WITHIN {
                panic!(
                    "rabbitmq-server did not accept connections within {START_WITHIN:?}\n{}",
                    b.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `amqp://USER:PASSWORD@127.0.0.1:PORT/VHOST`.
    pub fn url(&self) -> String {
        format!(
            "amqp://{}:{}@127.0.0.1:{}/{}",
            self.user, self.password, self.port, self.vhost
        )
    }

    async fn try_connect(&self) -> lapin::Result<Connection> {
        Connection::connect(&self.url(), ConnectionProperties::default()).await
    }

    /// A client connection as the broker's user.
    pub async fn connect(&self) -> Connection {
        self.try_connect()
            .await
            .unwrap_or_else(|e| panic!("connect to rabbitmq: {e}\n{}", self.log()))
    }

    /// Runs `rabbitmqctl ARGS` against this broker (its node name and cookie);
    /// panics with its output and the broker's log when it fails.
    pub fn ctl(&self, args: &[&str]) -> String {
        let out = Command::new(CTL)
            .env("HOME", self.dir.path().join("home"))
            .arg("-n")
            .arg(&self.node)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run rabbitmqctl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "rabbitmqctl {args:?} failed: {}\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        text
    }

    /// The broker's console output and log files (for failure messages).
    pub fn log(&self) -> String {
        let mut out = String::new();
        let mut files: Vec<PathBuf> = vec![
            self.dir.path().join("console.log"),
            self.dir.path().join("console.err"),
        ];
        if let Ok(rd) = std::fs::read_dir(self.dir.path().join("log")) {
            files.extend(rd.flatten().map(|e| e.path()));
        }
        for f in files {
            if let Ok(s) = std::fs::read_to_string(&f) {
                let tail: String = s
                    .lines()
                    .rev()
                    .take(60)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n");
                out.push_str(&format!("--- {} ---\n{tail}\n", f.display()));
            }
        }
        out
    }

    /// Stops the broker: SIGTERM to its process group, SIGKILL after 10 s.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let group = nix::unistd::Pid::from_raw(-(child.id() as i32));
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGTERM);
        let t0 = Instant::now();
        while child.try_wait().ok().flatten().is_none() && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        // The VM's helpers (erl_child_setup, inet_gethost) share the group.
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        let _ = child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// 16 hex digits from the clock and pid (no random crate needed).
fn uuid_like() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "{:016x}",
        (t as u64) ^ (u64::from(std::process::id()) << 32)
    )
}
