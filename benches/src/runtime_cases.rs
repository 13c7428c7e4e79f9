//! The functions and floors of the per-runtime cold-start scenario: for each runtime the
//! images provide, a hello function (returns its event) in that runtime's handler
//! convention, and the runtime's bare start in bubblewrap on the same image (the floor):
//! `python3 -c pass`, `node -e 0`, `ruby -e 0`, a trivial Java class under the JVM flags
//! the image's bootstrap uses, and the Go and Rust `provided` binaries (the integration
//! tests' fixtures) started with an empty environment, in which each exits at once.

use crate::procs::{self, ProcError};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);
/// PATH inside the floors' sandboxes (bwrap --clearenv).
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const NODE_JS: &str = "exports.handler = async (event) => event;\n";
const RUBY_RB: &str = "def handler(event:, context:)\n  event\nend\n";
const JAVA_HELLO: &str = "package example;
import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import java.util.Map;
public class Hello implements RequestHandler<Map<String, Object>, Map<String, Object>> {
    @Override
    public Map<String, Object> handleRequest(Map<String, Object> event, Context context) {
        return event;
    }
}
";
const JAVA_FLOOR: &str =
    "package floor;\npublic class Floor {\n    public static void main(String[] args) {}\n}\n";

/// Why a runtime's case cannot be measured here.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// The runtime image is not built
    #[error("no {0} image in {1} (run images/build-rootfs.sh, or pass --images-dir)")]
    NoImage(&'static str, PathBuf),
    /// A fixture or tool is missing
    #[error("{path} is missing: {hint}")]
    Missing { path: PathBuf, hint: String },
    /// Local I/O failed
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// A build step or the floor failed
    #[error(transparent)]
    Proc(#[from] ProcError),
    /// The floor did not end as it should
    #[error("floor {label}: {what}")]
    Floor { label: String, what: String },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CaseError {
    let what = what.into();
    move |e| CaseError::Io(what, e)
}

/// How the floor process must end.
#[derive(Debug, Clone)]
enum Expect {
    Success,
    /// A failure whose stderr holds this text (the binary ran and gave up at once).
    Fails(&'static str),
}

/// The runtime's bare start in bubblewrap on its image.
pub struct Floor {
    /// e.g. `bwrap node -e 0`.
    pub label: String,
    rootfs: PathBuf,
    argv: Vec<String>,
    expect: Expect,
}

/// One runtime's function and floor.
pub struct Case {
    /// The row's name: the runtime, or `provided (Go)` / `provided (Rust)`.
    pub label: &'static str,
    /// The runtime name functions are created with.
    pub runtime: &'static str,
    pub handler: &'static str,
    /// The code bundle (zip).
    pub code: Vec<u8>,
    /// runtime.json's `prestart`: the pool keeps this runtime started ahead of its function.
    pub prestart: bool,
    pub floor: Floor,
    /// Bound at /var/task in the floor's sandbox.
    task: tempfile::TempDir,
}

impl Case {
    /// Runs the floor once: its wall time from spawn to reap.
    pub fn floor(&self) -> Result<Duration, CaseError> {
        let f = &self.floor;
        let mut c = Command::new("/usr/bin/bwrap");
        c.args(["--unshare-all", "--die-with-parent", "--clearenv"])
            .args(["--setenv", "PATH", PATH])
            .arg("--ro-bind")
            .arg(&f.rootfs)
            .arg("/")
            .args(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"])
            .arg("--ro-bind")
            .arg(self.task.path())
            .arg("/var/task")
            .args(["--chdir", "/var/task"])
            .args(&f.argv);
        let r = procs::run(&mut c, DEADLINE)?;
        let stderr = String::from_utf8_lossy(&r.stderr);
        let bad = |what: String| CaseError::Floor {
            label: f.label.clone(),
            what,
        };
        match f.expect {
            Expect::Success if r.status != 0 => {
                Err(bad(format!("exit status {}: {}", r.status, stderr.trim())))
            }
            Expect::Fails(marker) if r.status == 0 || !stderr.contains(marker) => {
                Err(bad(format!(
                    "expected a failure saying {marker:?}, got status {} and {stderr:?}",
                    r.status
                )))
            }
            _ => Ok(r.wall),
        }
    }
}

/// The `${FLINT_CACHE_DIR:-/var/cache/flint}` the fixture scripts build into.
fn cache_dir() -> PathBuf {
    std::env::var_os("FLINT_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/flint"))
}

/// Every runtime's case, in table order; a runtime that cannot be measured here gives
/// its reason instead.
pub fn all(images_dir: &Path) -> Vec<(&'static str, Result<Case, CaseError>)> {
    let prestart = |name: &str| prestart(images_dir, name);
    let image = |name: &'static str| -> Result<PathBuf, CaseError> {
        let rootfs = images_dir.join(name).join("rootfs");
        if rootfs.is_dir() && images_dir.join(name).join("runtime.json").is_file() {
            Ok(rootfs)
        } else {
            Err(CaseError::NoImage(name, images_dir.to_path_buf()))
        }
    };
    let interp = |label, runtime, handler, file: (&str, &str), argv: &[&str]| {
        let rootfs = image(runtime)?;
        let task = tempdir()?;
        write(&task.path().join(file.0), file.1)?;
        Ok(Case {
            label,
            runtime,
            handler,
            code: bundle(task.path())?,
            prestart: prestart(runtime),
            floor: Floor {
                label: format!("bwrap {}", argv.join(" ")),
                rootfs,
                argv: argv.iter().map(|s| s.to_string()).collect(),
                expect: Expect::Success,
            },
            task,
        })
    };
    let native = |label, fixture: &str, script: &str, marker| {
        let rootfs = image("provided")?;
        let bin = cache_dir().join(fixture).join("bootstrap");
        if !bin.is_file() {
            return Err(CaseError::Missing {
                path: bin,
                hint: format!("run integration/fixtures/{script} (benches/run.sh and test.sh do)"),
            });
        }
        let task = tempdir()?;
        let dst = task.path().join("bootstrap");
        std::fs::copy(&bin, &dst).map_err(io(format!("copy {}", bin.display())))?;
        Ok(Case {
            label,
            runtime: "provided",
            handler: "bootstrap",
            code: bundle(task.path())?,
            prestart: prestart("provided"),
            floor: Floor {
                label: format!("bwrap {fixture}/bootstrap, empty environment"),
                rootfs,
                argv: vec!["/var/task/bootstrap".into()],
                expect: Expect::Fails(marker),
            },
            task,
        })
    };
    vec![
        (
            "python3.11",
            interp(
                "python3.11",
                "python3.11",
                "app.handler",
                ("app.py", crate::agent::HELLO_PY),
                &["/usr/bin/python3", "-c", "pass"],
            ),
        ),
        (
            "nodejs18.x",
            interp(
                "nodejs18.x",
                "nodejs18.x",
                "index.handler",
                ("index.js", NODE_JS),
                &["/usr/bin/node", "-e", "0"],
            ),
        ),
        (
            "ruby3.2",
            interp(
                "ruby3.2",
                "ruby3.2",
                "app.handler",
                ("app.rb", RUBY_RB),
                &["/usr/bin/ruby", "-e", "0"],
            ),
        ),
        ("java17", java(image("java17"), prestart("java17"))),
        (
            "provided (Go)",
            native(
                "provided (Go)",
                "go-lambda",
                "build-go-lambda.sh",
                "no Host in request URL",
            ),
        ),
        (
            "provided (Rust)",
            native(
                "provided (Rust)",
                "rust-lambda",
                "build-rust-lambda.sh",
                "AWS_LAMBDA_FUNCTION_NAME",
            ),
        ),
    ]
}

/// runtime.json's `prestart` flag of the image `name`, read as flintd reads it
/// (`images_dir/<name>/runtime.json`, absent means false): whether flintd's warm pool
/// starts that runtime before its function is known.
pub fn prestart(images_dir: &Path, name: &str) -> bool {
    std::fs::read(images_dir.join(name).join("runtime.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["prestart"].as_bool())
        .unwrap_or(false)
}

/// The memory size the cases' functions get (MB): one vCPU, so that a first invocation
/// is not paced by Lambda's CPU share (0.072 vCPU at 128 MB) and the JVM flags match.
pub const MEMORY_MB: u32 = 1769;

fn java(rootfs: Result<PathBuf, CaseError>, prestart: bool) -> Result<Case, CaseError> {
    let rootfs = rootfs?;
    let api = rootfs.join("var/runtime/runtime.jar");
    for (p, hint) in [
        (
            PathBuf::from("/usr/bin/javac"),
            "apt-get install openjdk-17-jdk-headless (images/host-deps.sh)",
        ),
        (
            api.clone(),
            "rebuild the image: images/build-rootfs.sh java17",
        ),
    ] {
        if !p.is_file() {
            return Err(CaseError::Missing {
                path: p,
                hint: hint.into(),
            });
        }
    }
    let src = tempdir()?;
    write(&src.path().join("Hello.java"), JAVA_HELLO)?;
    write(&src.path().join("Floor.java"), JAVA_FLOOR)?;
    let task = tempdir()?;
    procs::run_ok(
        Command::new("/usr/bin/javac")
            .args(["--release", "17", "-cp"])
            .arg(&api)
            .arg("-d")
            .arg(task.path())
            .arg(src.path().join("Hello.java"))
            .arg(src.path().join("Floor.java")),
        Duration::from_secs(120),
    )?;
    // The handler's classes go into the bundle; floor/Floor.class stays for the floor.
    let code_dir = tempdir()?;
    let (from, to) = (task.path().join("example"), code_dir.path().join("example"));
    std::fs::rename(&from, &to).map_err(io(format!("move {}", from.display())))?;
    let code = bundle(code_dir.path())?;
    let mut argv = vec!["/usr/bin/java".to_string()];
    argv.extend(jvm_flags(&rootfs)?);
    argv.extend(["-cp", "/var/task", "floor.Floor"].map(String::from));
    Ok(Case {
        label: "java17",
        runtime: "java17",
        handler: "example.Hello::handleRequest",
        code,
        prestart,
        floor: Floor {
            label: "bwrap java (the bootstrap's JVM flags) floor.Floor".into(),
            rootfs,
            argv,
            expect: Expect::Success,
        },
        task,
    })
}

/// The JVM flags of the image's java17 bootstrap at [`MEMORY_MB`]: the bootstrap script
/// is run in bubblewrap on the image with `/usr/bin/java` replaced by `printf '%s\n'`,
/// so it prints the argv it would start the JVM with; the flags are the arguments before
/// the class path.
fn jvm_flags(rootfs: &Path) -> Result<Vec<String>, CaseError> {
    let boot = rootfs.join("var/runtime/bootstrap");
    let script = std::fs::read_to_string(&boot).map_err(io(boot.display().to_string()))?;
    let bad = |what: String| CaseError::Floor {
        label: "java17 JVM flags".into(),
        what,
    };
    if !script.contains("/usr/bin/java") {
        return Err(bad(format!(
            "{} does not start /usr/bin/java: cannot read its JVM flags",
            boot.display()
        )));
    }
    let printing = script.replace("/usr/bin/java", "/usr/bin/printf '%s\\n'");
    let r = procs::run_ok(
        Command::new("/usr/bin/bwrap")
            .args(["--unshare-all", "--die-with-parent", "--clearenv"])
            .args(["--setenv", "PATH", PATH])
            .args([
                "--setenv",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                &MEMORY_MB.to_string(),
            ])
            .arg("--ro-bind")
            .arg(rootfs)
            .arg("/")
            .args(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"])
            .args(["/bin/sh", "-c", &printing]),
        Duration::from_secs(10),
    )?;
    let out = String::from_utf8_lossy(&r.stdout);
    let args: Vec<&str> = out.lines().collect();
    let end = args
        .iter()
        .position(|a| ["-cp", "-classpath", "--class-path", "-jar"].contains(a))
        .ok_or_else(|| {
            bad(format!(
                "no class path in the bootstrap's java command {args:?}"
            ))
        })?;
    Ok(args[..end].iter().map(|s| s.to_string()).collect())
}

fn tempdir() -> Result<tempfile::TempDir, CaseError> {
    tempfile::Builder::new()
        .prefix("flint-bench-rt-")
        .tempdir()
        .map_err(io("temporary directory"))
}

fn write(path: &Path, body: &str) -> Result<(), CaseError> {
    std::fs::write(path, body).map_err(io(path.display().to_string()))
}

fn bundle(dir: &Path) -> Result<Vec<u8>, CaseError> {
    flint_agent::client::bundle(dir).map_err(io(format!("zip {}", dir.display())))
}
